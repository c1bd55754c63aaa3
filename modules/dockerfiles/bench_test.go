package dockerfiles

import (
	"github.com/dockward/dockward/agent/moduletest"
	"testing"
)

// BenchmarkPlanConverged is a converged host's plan: the table resolved on
// a tree with unit files, TLS files, certificates, stat of each.
func BenchmarkPlanConverged(b *testing.B) {
	env := rootEnv(b)
	looseTree(b, env.Root)
	m := New(&Block{Files: map[string]Spec{}})
	m.units = units
	moduletest.Converge(b, m, env)
	b.ResetTimer()
	for b.Loop() {
		moduletest.PlanEmpty(b, m, env)
	}
}
