package service

import (
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/modules/service/internal/fakesystemd"
)

// The journal's Written rule: a restart owed only by the journal is not
// needed when the unit started after the owed changes were written. This
// is first boot: dockward-firstboot writes daemon.json and the ranges
// before docker's first start, and the agent must not restart docker.

// oweWritten records in the fixture's journal a restart owed by
// docker_daemon, written at the given time.
func oweWritten(t *testing.T, f *fixture, written time.Time) {
	t.Helper()
	j := agent.NewJournal(f.dir)
	if err := j.Owe(docker, "docker_daemon", changes("userns-remap")); err != nil {
		t.Fatal(err)
	}
	if !written.IsZero() {
		if err := j.MarkWritten(docker, written); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOwedRestartNotNeededWhenUnitStartedAfterTheWrite(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		written := time.Now().Add(-time.Minute)
		u := activeDocker()
		u.InactiveExit, u.ActiveEnter = written.Add(2*time.Second), written.Add(3*time.Second)
		f := tr.make(t, testBlock(), u)
		oweWritten(t, f, written)
		before := f.sd.Unit(docker).InvocationID

		p := f.plan(nil)
		if len(p.Changes) != 1 || p.Changes[0].Old != "restart owed" || p.Changes[0].New != "not needed" {
			t.Fatalf("plan: %+v", p.Changes)
		}
		d := p.Changes[0].Detail
		if !strings.HasPrefix(d, "docker.service started at ") || !strings.Contains(d, "after the owed changes were written at ") ||
			!strings.HasSuffix(d, "it already reads the new files (docker_daemon changed userns-remap)") {
			t.Errorf("detail = %q", d)
		}
		if _, err := f.apply(nil); err != nil {
			t.Fatal(err)
		}
		if c := jobCalls(f.sd); len(c) != 0 {
			t.Errorf("calls %v, want none", c)
		}
		if string(f.sd.Unit(docker).InvocationID) != string(before) {
			t.Error("docker.service was restarted")
		}
		if f.owed() != nil {
			t.Error("journal entry kept")
		}
		if p := f.plan(nil); !p.Empty() {
			t.Errorf("plan after: %+v", p.Changes)
		}
	})
}

func TestOwedRestartStillNeeded(t *testing.T) {
	written := time.Now().Add(-time.Minute)
	for _, tc := range []struct {
		name                      string
		inactiveExit, activeEnter time.Time
		written                   time.Time
		upstream                  map[string][]agent.Change
	}{
		// Crash between the write and the restart: docker runs the old files.
		{name: "started before the write", inactiveExit: written.Add(-time.Hour), activeEnter: written.Add(-time.Hour), written: written},
		// dockerd read the old files as it started; it finished starting
		// only after the write.
		{name: "start in flight during the write", inactiveExit: written.Add(-time.Second), activeEnter: written.Add(time.Second), written: written},
		// The run died before recording that its write had finished.
		{name: "write time unknown", inactiveExit: written.Add(time.Hour), activeEnter: written.Add(time.Hour)},
		// This run changes the files again: the unit has not read those.
		{name: "upstream changed now", inactiveExit: written.Add(time.Second), activeEnter: written.Add(time.Second), written: written,
			upstream: map[string][]agent.Change{"docker_daemon": changes("log-opts")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			each(t, func(t *testing.T, tr transport) {
				u := activeDocker()
				u.InactiveExit, u.ActiveEnter = tc.inactiveExit, tc.activeEnter
				f := tr.make(t, testBlock(), u)
				oweWritten(t, f, tc.written)
				p, err := f.apply(tc.upstream)
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Changes) != 1 || p.Changes[0].New != "restarted" {
					t.Fatalf("plan: %+v", p.Changes)
				}
				if n := f.sd.Count("RestartUnit", docker); n != 1 {
					t.Errorf("%d restarts, want 1", n)
				}
				if f.owed() != nil {
					t.Error("journal entry kept after the verified restart")
				}
			})
		})
	}
}

// The fake's timestamps move as systemd's do: a restart sets both after
// the moment it was asked for, so a restart the journal owes satisfies the
// rule in the next run without a second restart.
func TestFakeTimestampsFollowStarts(t *testing.T) {
	sd := fakesystemd.New(activeDocker())
	before := sd.Unit(docker)
	if before.ActiveEnter.IsZero() || before.InactiveExit.IsZero() {
		t.Fatalf("active unit without timestamps: %+v", before)
	}
	asked := time.Now()
	time.Sleep(2 * time.Millisecond)
	ch := make(chan string, 1)
	if _, e := sd.Job("restart", docker, func(r string) { ch <- r }); e != nil {
		t.Fatal(e)
	}
	<-ch
	u := sd.Unit(docker)
	if !u.InactiveExit.After(asked) || !u.ActiveEnter.After(u.InactiveExit) && !u.ActiveEnter.Equal(u.InactiveExit) {
		t.Errorf("after restart: inactive exit %v, active enter %v, asked %v", u.InactiveExit, u.ActiveEnter, asked)
	}
	p := sd.Properties(docker, "org.freedesktop.systemd1.Unit")
	if got := usecTime(p["ActiveEnterTimestamp"]); !got.Equal(u.ActiveEnter.Truncate(time.Microsecond)) {
		t.Errorf("ActiveEnterTimestamp = %v, want %v", got, u.ActiveEnter)
	}
}
