package dockerfiles

import (
	"context"
	"testing"
)

// BenchmarkPlanConverged is a converged host's plan: the table resolved on
// a tree with unit files, TLS files, certificates, stat of each.
func BenchmarkPlanConverged(b *testing.B) {
	env := rootEnv(b)
	looseTree(b, env.Root)
	m := New(&Block{Files: map[string]Spec{}})
	m.units = units
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
