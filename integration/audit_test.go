package integration

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/audit"
	"github.com/dockward/dockward/audit/audittest"
	"github.com/dockward/dockward/integration/sandbox"
)

// auditHost boots a machine, applies the embedded default and starts the
// containers the audit must flag: privileged, with the Docker socket, and
// without limits.
func auditHost(t testing.TB) *sandbox.Machine {
	m := sandbox.Start(t)
	m.InstallDockward(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, errOut, code, err := m.Run(ctx, "dockward", "apply"); err != nil || code != 0 && code != 2 {
		t.Fatalf("apply: exit %d %v\n%s\n%s", code, err, out, errOut)
	}
	m.ImportBusybox(t) // userns-remap switched to a data root without it
	// Before the machine powers off (cleanups run last first): sleep as a
	// container's PID 1 ignores SIGTERM, and the power-off would wait for
	// docker to give up on each.
	t.Cleanup(func() {
		_, _, _, _ = m.Run(context.Background(), "docker", "rm", "-f", "dw-priv", "dw-sock", "dw-nolimits")
	})
	m.MustRun(t, "docker", "run", "-d", "--name", "dw-priv", "--privileged", "--userns=host", "busybox:local", "sleep", "600")
	m.MustRun(t, "docker", "run", "-d", "--name", "dw-sock", "-v", "/run/docker.sock:/var/run/docker.sock", "busybox:local", "sleep", "600")
	m.MustRun(t, "docker", "run", "-d", "--name", "dw-nolimits", "busybox:local", "sleep", "600")
	return m
}

func auditOut(t testing.TB, m *sandbox.Machine, format string) []byte {
	t.Helper()
	out, errOut, code, err := m.Run(context.Background(), "dockward", "audit", "--format", format)
	if err != nil || code != 4 {
		t.Fatalf("audit --format %s: exit %d, want 4 (%v)\n%s", format, code, err, errOut)
	}
	return []byte(out)
}

// TestAuditRealHost runs `dockward audit` against a real dockerd with the
// embedded default applied: the flagged containers carry the right 5.x
// numbers and fields, 2.13 is waived with the default's reason, and the
// junit and sarif outputs of the run validate (SARIF 2.1.0 schema, JUnit
// structure).
func TestAuditRealHost(t *testing.T) {
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("needs root and no -short: boots a systemd-nspawn sandbox machine")
	}
	m := auditHost(t)
	var rep audit.Report
	if err := json.Unmarshal(auditOut(t, m, "json"), &rep); err != nil {
		t.Fatal(err)
	}
	found := map[string]audit.Finding{}
	for _, f := range rep.Findings {
		found[f.ID+" "+f.Target] = f
	}
	for key, field := range map[string]string{
		"5.5 dw-priv":      "HostConfig.Privileged",
		"5.31 dw-priv":     "HostConfig.UsernsMode",
		"5.32 dw-sock":     "Mounts",
		"5.11 dw-nolimits": "HostConfig.Memory",
		"5.29 dw-nolimits": "HostConfig.PidsLimit",
	} {
		if f := found[key]; f.Status != audit.Fail || f.Field != field {
			t.Errorf("%s: %s %q, want fail %q", key, f.Status, f.Field, field)
		}
	}
	if f := found["2.13 dockerd"]; f.Status != audit.Waived || !strings.HasPrefix(f.Reason, "json-file is kept on purpose") {
		t.Errorf("2.13: %+v", f)
	}
	for _, f := range rep.Findings {
		if f.Status == audit.Skip && f.Reason == "" {
			t.Errorf("%s %s skipped without a reason", f.ID, f.Target)
		}
	}
	if err := audittest.ValidateSARIF(auditOut(t, m, "sarif")); err != nil {
		t.Errorf("sarif: %v", err)
	}
	if err := audittest.ValidateJUnit(auditOut(t, m, "junit")); err != nil {
		t.Errorf("junit: %v", err)
	}
}

// BenchmarkAudit times `dockward audit` inside a sandbox machine with the
// embedded default applied and three running containers (each iteration
// a whole process, nsenter's start included). With DOCKER_BENCH_SECURITY
// naming a checkout of docker/docker-bench-security, it also times one
// run of its sections 1 to 5 on the same machine, for the comparison the
// README quotes (copied into the machine for the run only; never part of
// this repository).
func BenchmarkAudit(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: boots a systemd-nspawn sandbox machine")
	}
	m := auditHost(b)
	b.Run("dockward", func(b *testing.B) {
		for b.Loop() {
			if _, _, code, err := m.Run(context.Background(), "dockward", "audit"); err != nil || code != 4 {
				b.Fatalf("audit: exit %d %v", code, err)
			}
		}
	})
	dir := os.Getenv("DOCKER_BENCH_SECURITY")
	if dir == "" {
		return
	}
	if err := m.CopyDirIn(dir, "/opt/docker-bench-security"); err != nil {
		b.Fatal(err)
	}
	b.Run("docker-bench-security", func(b *testing.B) {
		for b.Loop() {
			m.MustRun(b, "sh", "-c", "cd /opt/docker-bench-security && ./docker-bench-security.sh -c "+
				"host_configuration,docker_daemon_configuration,docker_daemon_files,container_images,container_runtime >/dev/null 2>&1")
		}
	})
}
