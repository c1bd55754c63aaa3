package daemonjson

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
)

// The real UnitReader against a private dbus-daemon that exports a fake
// org.freedesktop.systemd1 with systemd's property types. The real systemd
// in the sandbox machine is covered by the acceptance scenarios; this pins
// down the D-Bus decoding (a(sasbttttuii), a(sb)) without root.

// execCommand has the D-Bus layout of an ExecStart entry: a(sasbttttuii).
type execCommand struct {
	Path                 string
	Argv                 []string
	IgnoreErrors         bool
	StartRT, StartMono   uint64
	ExitRT, ExitMono     uint64
	PID                  uint32
	ExitCode, ExitStatus int32
}

type envFileEntry struct {
	Path     string
	Optional bool
}

// fakeUnitObject serves org.freedesktop.DBus.Properties for one unit path.
type fakeUnitObject struct {
	props map[string]map[string]dbus.Variant // interface -> property -> value
}

func (o *fakeUnitObject) Get(iface, prop string) (dbus.Variant, *dbus.Error) {
	v, ok := o.props[iface][prop]
	if !ok {
		return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{prop})
	}
	return v, nil
}

func (o *fakeUnitObject) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	ps, ok := o.props[iface]
	if !ok {
		return nil, dbus.NewError("org.freedesktop.DBus.Error.UnknownInterface", []any{iface})
	}
	return ps, nil
}

// privateBus starts a dbus-daemon on a socket in a temp dir and points
// DBUS_SYSTEM_BUS_ADDRESS at it for the test.
func privateBus(t *testing.T) string {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skipf("needs dbus-daemon: %v", err)
	}
	dir := t.TempDir()
	addr := "unix:path=" + filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	writeFile(t, conf, fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`, addr))
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--print-address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dbus-daemon stderr:\n%s", stderr.String())
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon did not print its address: %v", err)
	}
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", strings.TrimSpace(line))
	return strings.TrimSpace(line)
}

func TestSystemdUnitsOverDBus(t *testing.T) {
	addr := privateBus(t)
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if reply, err := conn.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.systemd1: %v %v", reply, err)
	}
	docker := &fakeUnitObject{props: map[string]map[string]dbus.Variant{
		"org.freedesktop.systemd1.Unit": {"LoadState": dbus.MakeVariant("loaded")},
		"org.freedesktop.systemd1.Service": {
			"ExecStart": dbus.MakeVariant([]execCommand{{
				Path: "/usr/sbin/dockerd",
				Argv: []string{"/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock", "$DOCKER_OPTS"},
			}}),
			"Environment":      dbus.MakeVariant([]string{"DOCKER_OPTS=--log-driver=journald"}),
			"EnvironmentFiles": dbus.MakeVariant([]envFileEntry{{Path: "/etc/default/docker", Optional: true}}),
			"Type":             dbus.MakeVariant("notify"),
		},
	}}
	missing := &fakeUnitObject{props: map[string]map[string]dbus.Variant{
		"org.freedesktop.systemd1.Unit": {"LoadState": dbus.MakeVariant("not-found")},
	}}
	for path, obj := range map[dbus.ObjectPath]*fakeUnitObject{
		"/org/freedesktop/systemd1/unit/docker_2eservice":  docker,
		"/org/freedesktop/systemd1/unit/missing_2eservice": missing,
	} {
		if err := conn.Export(obj, path, "org.freedesktop.DBus.Properties"); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ue, err := SystemdUnits{}.ReadUnit(ctx, "docker.service")
	if err != nil {
		t.Fatal(err)
	}
	want := &UnitExec{
		ExecStart:        [][]string{{"/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock", "$DOCKER_OPTS"}},
		Environment:      []string{"DOCKER_OPTS=--log-driver=journald"},
		EnvironmentFiles: []EnvFile{{Path: "/etc/default/docker", Optional: true}},
	}
	if diff := cmp.Diff(want, ue); diff != "" {
		t.Errorf("unit (-want +got):\n%s", diff)
	}
	if _, err := (SystemdUnits{}).ReadUnit(ctx, "missing.service"); !errors.Is(err, ErrNoUnit) {
		t.Errorf("missing unit: err = %v, want ErrNoUnit", err)
	}

	// And through Plan: the flag from the unit's Environment clashes.
	env, dir := liveEnv(t)
	m := liveModule(t, dir, `log_driver = "json-file"`, nil) // nil: the real reader
	m.ReadEnvFile = func(string) ([]byte, error) { return nil, os.ErrNotExist }
	_, err = m.Plan(ctx, env)
	if err == nil || !strings.Contains(err.Error(), `"log-driver" (docker.service starts dockerd with --log-driver=journald)`) {
		t.Errorf("plan err = %v", err)
	}
}

func TestUnitExecFromPropsRejectsWrongTypes(t *testing.T) {
	for name, props := range map[string]map[string]any{
		"ExecStart":        {"ExecStart": "dockerd"},
		"ExecStart argv":   {"ExecStart": [][]any{{"/usr/bin/dockerd", "not a list"}}},
		"Environment":      {"Environment": "A=b"},
		"EnvironmentFiles": {"EnvironmentFiles": [][]any{{"/etc/default/docker", "yes"}}},
	} {
		if _, err := unitExecFromProps(props); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
