package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/integration/sandbox"
)

// unitExposureCeiling is the `systemd-analyze security` exposure score
// (0.0 safest, 10.0 unrestricted) that dist/dockward.service reached,
// measured by systemd 257 in the sandbox machine, in tenths as --threshold
// takes it: 2.8. It was 6.0 before the unit got a system call filter,
// NoNewPrivileges, RestrictNamespaces, PrivateDevices,
// ProtectKernelTunables, no IP, UMask=0077 and no CAP_KILL. A change that
// loosens the unit's sandboxing raises the score and fails
// TestUnitSecurity; one that tightens it further should lower this.
const unitExposureCeiling = 28

// TestUnitSecurity installs dist/dockward.service and the binary into a
// sandbox machine as the package does and has the machine's systemd score
// the unit's sandboxing: `systemd-analyze security --threshold=N` exits
// non-zero when the overall exposure is above N (N in tenths, 0-100). It
// then starts the agent and reads from its process that the restrictions
// the score counts are in force, not just written: a seccomp filter, no new
// privileges, no CAP_KILL. That they leave the agent able to do its work is
// proven by the tests that run the unit: TestPackage, TestFirstBoot and
// scenarios 16-cis-files and 60-agent.
func TestUnitSecurity(t *testing.T) {
	needRoot(t)
	bin, err := sandbox.DockwardBinary()
	if err != nil {
		t.Fatal(err)
	}
	m := sandbox.StartWith(t, sandbox.Options{Setup: func(dir string) error {
		if err := copyFile(bin, filepath.Join(dir, "usr/bin/dockward"), 0o755); err != nil {
			return err
		}
		if err := copyFile(filepath.Join("..", "config", "default.hcl"), filepath.Join(dir, "etc/dockward/dockward.hcl"), 0o600); err != nil {
			return err
		}
		return copyFile(filepath.Join("..", "dist", "dockward.service"),
			filepath.Join(dir, "usr/lib/systemd/system/dockward.service"), 0o644)
	}})

	// The table, for the log: what each setting counts.
	table := m.MustRun(t, "systemd-analyze", "security", "--no-pager", "dockward.service")
	t.Logf("systemd-analyze security dockward.service:\n%s", table)
	if !strings.Contains(table, "Overall exposure level for dockward.service") {
		t.Fatalf("systemd-analyze security gave no overall exposure level:\n%s", table)
	}
	threshold := fmt.Sprintf("--threshold=%d", unitExposureCeiling)
	out, errOut, code, err := m.Run(context.Background(), "systemd-analyze", "security", "--no-pager", threshold, "dockward.service")
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("dockward.service's exposure is above %d.%d (systemd-analyze security %s exited %d): %s\n%s",
			unitExposureCeiling/10, unitExposureCeiling%10, threshold, code, overallLine(table), lastLines(out+errOut, 3))
	}

	// The running agent carries them.
	m.MustRun(t, "timeout", "150", "systemctl", "start", "dockward.service")
	waitUnit(t, m, "dockward.service", "active", time.Minute)
	pid := show(t, m, "dockward.service", "MainPID")
	status := m.MustRun(t, "cat", "/proc/"+pid+"/status")
	for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(status, want+"\n") {
			t.Errorf("the agent's /proc/%s/status lacks %q:\n%s", pid, want, status)
		}
	}
	// CapBnd is hex; CAP_KILL is bit 5.
	for _, l := range strings.Split(status, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "CapBnd:" {
			var bnd uint64
			if _, err := fmt.Sscanf(f[1], "%x", &bnd); err != nil {
				t.Fatalf("CapBnd %q: %v", f[1], err)
			}
			if bnd&(1<<5) != 0 {
				t.Errorf("the agent's bounding set %s has CAP_KILL", f[1])
			}
		}
	}
	m.MustRun(t, "timeout", "150", "systemctl", "stop", "dockward.service")
	if r := show(t, m, "dockward.service", "Result"); r != "success" {
		t.Errorf("stop: Result %s", r)
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
