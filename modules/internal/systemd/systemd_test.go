package systemd

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// The adapter is exercised end to end by the service module's contract
// tests (a fake systemd over a private dbus-daemon) and against the real
// systemd of a sandbox machine; these pin down its pure parts.

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{dbus.Error{Name: "org.freedesktop.systemd1.NoSuchUnit", Body: []any{"Unit x.service not found."}}, ErrNoSuchUnit},
		{&dbus.Error{Name: "org.freedesktop.systemd1.UnitMasked"}, ErrUnitMasked},
		{fmt.Errorf("wrapped: %w", dbus.Error{Name: "org.freedesktop.DBus.Error.AccessDenied"}), ErrAccessDenied},
		{dbus.ErrClosed, ErrBusUnavailable},
	} {
		got := Classify("restart x.service", tc.err)
		if !errors.Is(got, tc.want) || !strings.Contains(got.Error(), tc.err.Error()) {
			t.Errorf("Classify(%v) = %v, want it to wrap %v and the original", tc.err, got, tc.want)
		}
	}
	if Classify("op", nil) != nil {
		t.Error("Classify(nil) is not nil")
	}
	other := errors.New("something else")
	if got := Classify("op", other); got.Error() != "op: something else" || !errors.Is(got, other) {
		t.Errorf("unclassified: %v", got)
	}
}

func TestUnitState(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	u := ParseUnitState(map[string]any{
		"LoadState": "loaded", "ActiveState": "activating", "SubState": "auto-restart",
		"InvocationID": []byte{0xab, 0xcd}, "CanReload": true,
		"ActiveEnterTimestamp":  uint64(at.Add(2 * time.Second).UnixMicro()),
		"InactiveExitTimestamp": uint64(at.Add(time.Second).UnixMicro()),
		"Job":                   []any{uint32(7), dbus.ObjectPath("/org/freedesktop/systemd1/job/7")},
	})
	if u.InvocationID != "abcd" || u.JobID != 7 || !u.CanReload || !u.Running() || !u.CrashLooping() {
		t.Errorf("parsed %+v", u)
	}
	if !u.StartedAfter(at) || u.StartedAfter(at.Add(time.Second)) || u.StartedAfter(time.Time{}) {
		t.Error("StartedAfter: the unit left inactive 1 s after at and became active 2 s after; a zero time is never")
	}
	if (UnitState{ActiveState: "failed"}).Running() {
		t.Error("a failed unit runs nothing")
	}
}

// FragmentPath and ExecStart as godbus hands them over: the unit file
// audit_rules and docker_files watch and check, and the command lines
// whose argv[0] is the binary.
func TestFragmentPathAndExecStart(t *testing.T) {
	u := ParseUnitState(map[string]any{"FragmentPath": "/usr/lib/systemd/system/docker.service"})
	if u.FragmentPath != "/usr/lib/systemd/system/docker.service" {
		t.Fatalf("FragmentPath %q", u.FragmentPath)
	}
	argv, err := ExecStartArgv(map[string]any{"ExecStart": [][]any{
		{"/usr/sbin/dockerd", []string{"/usr/sbin/dockerd", "-H", "fd://"}, false, uint64(0), uint64(0), uint64(0), uint64(0), uint32(0), int32(0), int32(0)},
	}})
	if err != nil || len(argv) != 1 || argv[0][0] != "/usr/sbin/dockerd" || argv[0][2] != "fd://" {
		t.Fatalf("%v %v", argv, err)
	}
	if argv, err := ExecStartArgv(map[string]any{}); err != nil || argv != nil {
		t.Fatalf("no ExecStart: %v %v", argv, err)
	}
	for _, bad := range []any{"x", [][]any{{"only one"}}, [][]any{{"p", "not argv"}}} {
		if _, err := ExecStartArgv(map[string]any{"ExecStart": bad}); err == nil {
			t.Errorf("%#v: no error", bad)
		}
	}
}
