package auditrules

import (
	"github.com/dockward/dockward/agent/moduletest"
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
	moduletest.Converge(b, m, env)
	b.ResetTimer()
	for b.Loop() {
		moduletest.PlanEmpty(b, m, env)
	}
}
