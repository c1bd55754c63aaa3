package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockward/dockward/integration/sandbox"
)

// unitExposureCeiling is the `systemd-analyze security` exposure score
// (0.0 safest, 10.0 unrestricted) that dist/dockward.service reached,
// measured by systemd 257 in the sandbox machine. A change to the unit that
// loosens its sandboxing raises the score and fails TestUnitSecurity; one
// that tightens it further should lower this ceiling to the new score.
const unitExposureCeiling = 10.0

// TestUnitSecurity installs dist/dockward.service into a sandbox machine as
// the package installs it and has the machine's systemd score its
// sandboxing: `systemd-analyze security --threshold=N` exits non-zero when
// the unit's overall exposure is above N. That the restrictions the score
// counts leave the agent able to do its work is proven by the tests that
// run the unit: TestPackage, TestFirstBoot and scenario 60-agent.
func TestUnitSecurity(t *testing.T) {
	needRoot(t)
	m := sandbox.StartWith(t, sandbox.Options{Setup: func(dir string) error {
		return copyFile(filepath.Join("..", "dist", "dockward.service"),
			filepath.Join(dir, "usr/lib/systemd/system/dockward.service"), 0o644)
	}})
	// The table, for the log: what each setting counts.
	table := m.MustRun(t, "systemd-analyze", "security", "--no-pager", "dockward.service")
	t.Logf("systemd-analyze security dockward.service:\n%s", table)
	threshold := fmt.Sprintf("--threshold=%.1f", unitExposureCeiling)
	out, errOut, code, err := m.Run(context.Background(), "systemd-analyze", "security", "--no-pager", threshold, "dockward.service")
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("dockward.service's exposure is above %.1f (systemd-analyze security %s exited %d): %s\n%s",
			unitExposureCeiling, threshold, code, overallLine(table), strings.TrimSpace(out+errOut))
	}
	if !strings.Contains(table, "Overall exposure level for dockward.service") {
		t.Errorf("systemd-analyze security gave no overall exposure level:\n%s", table)
	}
}

// overallLine picks systemd-analyze's "Overall exposure level" line.
func overallLine(table string) string {
	for _, l := range strings.Split(table, "\n") {
		if strings.Contains(l, "Overall exposure level") {
			return strings.TrimSpace(l)
		}
	}
	return "(no overall exposure line)"
}
