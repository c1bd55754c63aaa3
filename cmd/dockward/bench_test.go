package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkProcess measures whole processes side by side in one run: the
// floor (`dockward version`) and a no-op apply of docker_daemon and
// subordinate_ids on a converged --root tree. The target is at most 10 ms
// between the two.
func BenchmarkProcess(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "dockward")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	t := &testing.T{}
	root := newRoot(t)
	cfg := filepath.Join(b.TempDir(), "c.hcl")
	src := "docker_daemon {\n  userns_remap = \"default\"\n  log_driver = \"json-file\"\n  log_opts = { max-size = \"10m\", max-file = 3 }\n}\nsubordinate_ids \"dockremap\" {\n  create_user = false\n}\n"
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := exec.Command(bin, "apply", "-c", cfg, "--root", root).Run(); err == nil {
		b.Fatal("first apply should exit 2")
	}
	runs := map[string][]string{
		"version":    {"version"},
		"noop-apply": {"apply", "-c", cfg, "--root", root, "--log-level", "warn"},
	}
	for _, name := range []string{"version", "noop-apply"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				cmd := exec.Command(bin, runs[name]...)
				if err := cmd.Run(); err != nil {
					b.Fatalf("%s: %v", name, err)
				}
			}
		})
	}
}
