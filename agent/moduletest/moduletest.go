// Package moduletest holds what every module's tests share: planning,
// converging, and the contract that planning after applying is empty
// (docs/writing-a-module.md). It is apart from agenttest because it imports
// agent, whose own tests use agenttest.
package moduletest

import (
	"context"
	"testing"

	"github.com/dockward/dockward/agent"
)

// Converge plans and applies m, then checks the module contract: planning
// again gives an empty plan. Tests and benchmarks use it to bring a module
// to its converged state before measuring or looking at it.
func Converge(tb testing.TB, m agent.Module, env *agent.Env) {
	tb.Helper()
	ctx := context.Background()
	p, err := m.Plan(ctx, env)
	if err != nil {
		tb.Fatalf("%s: plan: %v", m.ID(), err)
	}
	if err := m.Apply(ctx, env, p); err != nil {
		tb.Fatalf("%s: apply: %v", m.ID(), err)
	}
	PlanEmpty(tb, m, env)
}

// PlanEmpty fails unless m's plan is empty (converged).
func PlanEmpty(tb testing.TB, m agent.Module, env *agent.Env) {
	tb.Helper()
	p, err := m.Plan(context.Background(), env)
	if err != nil {
		tb.Fatalf("%s: plan: %v", m.ID(), err)
	}
	if !p.Empty() {
		tb.Fatalf("%s: plan after apply not empty: %+v", m.ID(), p.Changes)
	}
}

// Plan returns m's plan, failing the test on an error.
func Plan(tb testing.TB, m agent.Module, env *agent.Env) *agent.Plan {
	tb.Helper()
	p, err := m.Plan(context.Background(), env)
	if err != nil {
		tb.Fatalf("%s: plan: %v", m.ID(), err)
	}
	return p
}
