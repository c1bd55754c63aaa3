package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The textfile counts runs, changes, drift corrections and restarts by the
// restarter's unit, from the engine's reports.
func TestMetricsTextfile(t *testing.T) {
	a := &fakeModule{id: "a", have: str("1"), want: "2"}
	u := &fakeUnit{deps: []string{"a"}}
	bad := &fakeModule{id: "bad", have: str("1"), want: "1"}
	e := newEngine(t, a, u, bad)
	m := NewMetrics()
	ctx := context.Background()

	rep, err := e.Apply(ctx, nil) // provisions: a changes, the unit restarts
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(rep, false)
	*a.have = "drifted" // someone edits a; the next run corrects it
	bad.planErr = os.ErrPermission
	rep, err = e.Apply(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(rep, true)

	path := filepath.Join(t.TempDir(), "textfile", "dockward.prom")
	if err := m.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`dockward_runs_total{result="changed"} 1`,
		`dockward_runs_total{result="failed"} 1`,
		`dockward_module_changes_total{module="a"} 2`,
		`dockward_drift_corrections_total{module="a"} 1`,
		`dockward_module_failures_total{module="bad"} 1`,
		`dockward_service_restarts_total{action="restart",unit="unit"} 2`,
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("textfile lacks %q:\n%s", want, b)
		}
	}
}
