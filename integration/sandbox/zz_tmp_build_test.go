package sandbox

import ("context"; "testing")

func TestZZBuild(t *testing.T) {
	p, built, err := EnsureTree(context.Background(), t.Logf)
	t.Log(p, built, err)
}
