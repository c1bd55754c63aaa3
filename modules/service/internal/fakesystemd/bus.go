package fakesystemd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// Server is a private dbus-daemon with the fake manager on it as
// org.freedesktop.systemd1. Point DBUS_SYSTEM_BUS_ADDRESS at Address and
// go-systemd's NewSystemConnectionContext talks to the fake.
type Server struct {
	Systemd *Systemd
	// Address is the bus address, "unix:path=...".
	Address string

	t    testing.TB
	dir  string
	cmd  *exec.Cmd
	conn *dbus.Conn
}

// busConfig is a bus that only this test uses: its own socket, EXTERNAL
// authentication (the peer's uid over the socket), everything allowed.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>dockward-test</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// DaemonPath is the dbus-daemon binary Serve runs.
var DaemonPath = "/usr/bin/dbus-daemon"

// Serve starts a private dbus-daemon in a temporary directory and exports s
// on it. Both are stopped in t.Cleanup. It skips the test when dbus-daemon
// is not installed.
func Serve(t testing.TB, s *Systemd) *Server {
	t.Helper()
	if _, err := os.Stat(DaemonPath); err != nil {
		t.Skipf("needs dbus-daemon (apt-get install dbus-daemon): %v", err)
	}
	// Unix socket paths are limited to 108 bytes; t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "fakesystemd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srv := &Server{Systemd: s, t: t, dir: dir}
	srv.start()
	t.Cleanup(srv.stop)
	return srv
}

func (srv *Server) start() {
	t := srv.t
	t.Helper()
	sock := filepath.Join(srv.dir, "bus")
	cfg := filepath.Join(srv.dir, "bus.conf")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(busConfig, sock)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(DaemonPath, "--config-file="+cfg, "--nofork", "--nopidfile", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Its complaints (it cannot raise its fd limit unprivileged, ...)
	// only matter when it fails to start.
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	srv.cmd = cmd
	// The daemon prints its address once it listens.
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			srv.stop()
			t.Fatalf("dbus-daemon exited without printing its address: %s", stderr.String())
		}
		srv.Address = a
	case <-time.After(10 * time.Second):
		srv.stop()
		t.Fatalf("dbus-daemon did not print its address within 10s: %s", stderr.String())
	}
	if err := srv.export(); err != nil {
		srv.stop()
		t.Fatalf("export fake systemd on %s: %v", srv.Address, err)
	}
}

// stop ends the fake's connection and the dbus-daemon this Server started.
func (srv *Server) stop() {
	srv.Systemd.mu.Lock()
	srv.Systemd.emit = nil
	srv.Systemd.mu.Unlock()
	if srv.conn != nil {
		srv.conn.Close()
		srv.conn = nil
	}
	if srv.cmd != nil && srv.cmd.Process != nil {
		_ = srv.cmd.Process.Kill()
		_ = srv.cmd.Wait()
		srv.cmd = nil
	}
}

// RestartBus kills the dbus-daemon and starts a new one on the same socket
// with the fake re-exported, as when the system bus restarts: every client
// connection is closed under its owner.
func (srv *Server) RestartBus() {
	srv.t.Helper()
	srv.stop()
	os.Remove(filepath.Join(srv.dir, "bus"))
	srv.start()
}

func (srv *Server) export() error {
	conn, err := dbus.Connect(srv.Address)
	if err != nil {
		return err
	}
	srv.conn = conn
	s := srv.Systemd
	jobMethod := func(kind string) func(string, string) (dbus.ObjectPath, *dbus.Error) {
		return func(name, mode string) (dbus.ObjectPath, *dbus.Error) {
			id, e := s.Job(kind, name, nil)
			if e != nil {
				return "", e
			}
			return jobPath(id), nil
		}
	}
	type change struct{ Type, Filename, Destination string }
	conv := func(cs []FileChange) []change {
		out := []change{}
		for _, c := range cs {
			out = append(out, change(c))
		}
		return out
	}
	manager := map[string]any{
		"StartUnit":   jobMethod("start"),
		"StopUnit":    jobMethod("stop"),
		"RestartUnit": jobMethod("restart"),
		"ReloadUnit":  jobMethod("reload"),
		"ResetFailedUnit": func(name string) *dbus.Error {
			return s.ResetFailedUnit(name)
		},
		"EnableUnitFiles": func(files []string, runtime, force bool) (bool, []change, *dbus.Error) {
			cs, e := s.EnableUnitFiles(files, true)
			return true, conv(cs), e
		},
		"DisableUnitFiles": func(files []string, runtime bool) ([]change, *dbus.Error) {
			cs, e := s.EnableUnitFiles(files, false)
			return conv(cs), e
		},
		"Reload": func() *dbus.Error { return s.Reload() },
		"GetUnit": func(name string) (dbus.ObjectPath, *dbus.Error) {
			if s.Unit(name).LoadState == "not-found" {
				return "", errNoSuchUnit(name)
			}
			return UnitPath(name), nil
		},
		"LoadUnit":    func(name string) (dbus.ObjectPath, *dbus.Error) { return UnitPath(name), nil },
		"Subscribe":   func() *dbus.Error { s.Subscribe(); return nil },
		"Unsubscribe": func() *dbus.Error { return nil },
	}
	if err := conn.ExportMethodTable(manager, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"); err != nil {
		return err
	}
	props := map[string]any{
		"Get": func(msg dbus.Message, iface, prop string) (dbus.Variant, *dbus.Error) {
			p := s.Properties(unitName(msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)), iface)
			v, ok := p[prop]
			if !ok {
				return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{"Unknown property " + prop})
			}
			return dbus.MakeVariant(v), nil
		},
		"GetAll": func(msg dbus.Message, iface string) (map[string]dbus.Variant, *dbus.Error) {
			p := s.Properties(unitName(msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)), iface)
			out := make(map[string]dbus.Variant, len(p))
			for k, v := range p {
				out[k] = dbus.MakeVariant(v)
			}
			return out, nil
		},
	}
	if err := conn.ExportSubtreeMethodTable(props, "/org/freedesktop/systemd1/unit", "org.freedesktop.DBus.Properties"); err != nil {
		return err
	}
	s.mu.Lock()
	s.emit = func(path dbus.ObjectPath, name string, values ...any) { _ = conn.Emit(path, name, values...) }
	s.mu.Unlock()
	// Take the name last: godbus's object table is not safe to change while
	// calls arrive, and none can arrive before clients can find us.
	reply, err := conn.RequestName("org.freedesktop.systemd1", dbus.NameFlagDoNotQueue)
	if err != nil {
		return err
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("org.freedesktop.systemd1 already owned (reply %d)", reply)
	}
	return nil
}
