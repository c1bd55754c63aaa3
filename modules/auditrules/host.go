package auditrules

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/dockward/dockward/modules/internal/systemd"
)

// hasSystemBus reports whether a system bus is there to dial: none in a
// container or an image build.
func hasSystemBus() bool {
	if os.Getenv("DBUS_SYSTEM_BUS_ADDRESS") != "" {
		return true
	}
	_, err := os.Stat("/run/dbus/system_bus_socket")
	return err == nil
}

// systemdUnits reads units over the shared systemd adapter.
type systemdUnits struct{ conn *systemd.Conn }

func (s systemdUnits) Unit(ctx context.Context, name string) (*Unit, error) {
	if s.conn == nil {
		return nil, ErrNoSystemd
	}
	st, err := s.conn.State(ctx, name)
	if err != nil {
		return nil, err
	}
	if st.LoadState == "not-found" {
		return nil, nil
	}
	u := &Unit{FragmentPath: st.FragmentPath}
	if strings.HasSuffix(name, ".service") {
		props, err := s.conn.ServiceProperties(ctx, name)
		if err != nil {
			return nil, err
		}
		if u.ExecStart, err = systemd.ExecStartArgv(props); err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	return u, nil
}

// AuditdState is auditd's state as systemd reports it.
type AuditdState int

const (
	AuditdMissing AuditdState = iota // auditd.service unknown: auditd not installed
	AuditdStopped                    // installed, not running: it loads the rules when it starts
	AuditdRunning
	AuditdUnknown // no systemd to ask (a container, no system bus)
)

// Auditd is what the module needs of the audit daemon and the kernel's
// rules. The real one asks systemd (auditd's state), runs auditctl -l (the
// rules the kernel holds) and augenrules --load (rebuilds audit.rules from
// rules.d and loads it: auditd's own way to reload rules, without
// restarting it).
type Auditd interface {
	State(ctx context.Context) (AuditdState, string, error)
	// Loaded returns the kernel's rules as auditctl -l prints them.
	Loaded(ctx context.Context) ([]byte, error)
	Load(ctx context.Context) error
}

type realAuditd struct{ conn *systemd.Conn }

func (a realAuditd) State(ctx context.Context) (AuditdState, string, error) {
	if a.conn == nil {
		return AuditdUnknown, "no systemd to ask", nil
	}
	st, err := a.conn.State(ctx, "auditd.service")
	if err != nil {
		return 0, "", err
	}
	switch {
	case st.LoadState == "not-found":
		return AuditdMissing, "auditd.service not found", nil
	case st.ActiveState == "active" || st.ActiveState == "reloading":
		return AuditdRunning, st.String(), nil
	}
	return AuditdStopped, st.String(), nil
}

// run runs an audit tool found in /usr/sbin or /sbin (dockward.service's
// PATH may lack them), returning its output in the error.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	bin := ""
	for _, d := range []string{"/usr/sbin/", "/sbin/"} {
		if _, err := os.Stat(d + name); err == nil {
			bin = d + name
			break
		}
	}
	if bin == "" {
		return nil, fmt.Errorf("%s: not found in /usr/sbin or /sbin (auditd is not installed)", name)
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String() + " " + out.String())
		return nil, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, msg)
	}
	return out.Bytes(), nil
}

func (realAuditd) Loaded(ctx context.Context) ([]byte, error) { return run(ctx, "auditctl", "-l") }

func (realAuditd) Load(ctx context.Context) error {
	_, err := run(ctx, "augenrules", "--load")
	return err
}
