package daemonjson

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/agenttest"
)

// TestPlanGolden plans each case in testdata/plan/NAME (config.hcl, and
// optionally daemon.json and owned.json) on a temporary root and compares
// the changes and the file apply would write with testdata/plan/NAME.golden.
func TestPlanGolden(t *testing.T) {
	ents, err := os.ReadDir("testdata/plan")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		dir := filepath.Join("testdata/plan", name)
		t.Run(name, func(t *testing.T) {
			env := rootEnv(t)
			b := mustDecode(t, readFile(t, filepath.Join(dir, "config.hcl")))
			if data, err := os.ReadFile(filepath.Join(dir, "daemon.json")); err == nil {
				writeFile(t, env.Path(b.Path), string(data))
			}
			if data, err := os.ReadFile(filepath.Join(dir, "owned.json")); err == nil {
				writeFile(t, filepath.Join(stateDir(env.StateDir), ownedFile), string(data))
			}
			got := renderPlan(New(b), env)
			agenttest.Golden(t, filepath.Join("testdata/plan", name+".golden"), got)
		})
	}
}

// renderPlan shows a plan as the golden files hold it: one line per
// change in terraform's symbols, then the file apply would write.
func renderPlan(m agent.Module, env *agent.Env) string {
	var sb strings.Builder
	p, err := m.Plan(context.Background(), env)
	if err != nil {
		fmt.Fprintf(&sb, "# error\n%s\n", strings.ReplaceAll(err.Error(), env.Root, "$ROOT"))
		return sb.String()
	}
	sb.WriteString("# changes\n")
	for _, c := range p.Changes {
		switch c.Action {
		case agent.Create:
			fmt.Fprintf(&sb, "%s %s = %s", c.Action, c.Target, c.New)
		case agent.Update:
			fmt.Fprintf(&sb, "%s %s: %s -> %s", c.Action, c.Target, c.Old, c.New)
		case agent.Delete:
			fmt.Fprintf(&sb, "%s %s = %s", c.Action, c.Target, c.Old)
		}
		if c.Detail != "" {
			fmt.Fprintf(&sb, "  # %s", c.Detail)
		}
		sb.WriteString("\n")
	}
	if st, ok := p.State.(*planState); ok {
		sb.WriteString("# daemon.json\n")
		sb.Write(st.candidate)
	}
	return sb.String()
}
