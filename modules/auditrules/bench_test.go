package auditrules

import (
	"context"
	"testing"
)

// BenchmarkPlanConverged is a converged host's plan, as the agent runs it
// on every backstop and event: resolve the paths on a Debian tree, render,
// compare with the file, and ask the (fake) kernel for its rules.
func BenchmarkPlanConverged(b *testing.B) {
	env := rootEnv(b)
	debianTree(b, env.Root)
	a := &fakeAuditd{state: AuditdRunning, file: env.Path(DefaultPath)}
	m := New(&Block{Path: DefaultPath, Key: "docker", Load: true})
	m.units, m.auditd, m.treeIsLive = debianUnits, a, true
	p, err := m.Plan(context.Background(), env)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Apply(context.Background(), env, p); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if p, err := m.Plan(context.Background(), env); err != nil || !p.Empty() {
			b.Fatal(err, p)
		}
	}
}
