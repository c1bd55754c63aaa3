package service

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/modules/service/internal/fakesystemd"
	"github.com/google/go-cmp/cmp"
)

// The contract tests run the module against the fake systemd, over a
// private dbus-daemon (go-systemd's client end to end, as against systemd)
// and in memory. No root needed.

// jobCalls are the Manager calls that touch the unit.
func jobCalls(sd *fakesystemd.Systemd) []string {
	var out []string
	for _, c := range sd.Calls() {
		if !strings.HasPrefix(c, "GetUnit") {
			out = append(out, c)
		}
	}
	return out
}

func each(t *testing.T, f func(t *testing.T, tr transport)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { f(t, tr) })
	}
}

func TestOneRestartWhenTwoUpstreamModulesChanged(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		f := tr.make(t, testBlock(func(b *Block) { b.Verify = VerifyDocker }), activeDocker())
		before := f.sd.Unit(docker).InvocationID
		up := map[string][]agent.Change{
			"docker_daemon":             changes("log-opts", "userns-remap"),
			"subordinate_ids.dockremap": changes("/etc/subuid", "/etc/subgid"),
			"firewall":                  changes("chain forward"), // not in restart_on
		}

		p := f.plan(up)
		want := []agent.Change{{Action: agent.Update, Target: docker, Old: "active", New: "restarted",
			Detail: "restart docker.service: docker_daemon changed log-opts, userns-remap; subordinate_ids.dockremap changed /etc/subuid, /etc/subgid"}}
		if diff := cmp.Diff(want, p.Changes); diff != "" {
			t.Fatalf("plan (-want +got):\n%s", diff)
		}
		if c := jobCalls(f.sd); len(c) != 0 {
			t.Fatalf("plan called %v", c)
		}

		_, err := f.apply(up)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"ResetFailedUnit docker.service", "RestartUnit docker.service"}, jobCalls(f.sd)); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
		if u := f.sd.Unit(docker); u.ActiveState != "active" || string(u.InvocationID) == string(before) {
			t.Errorf("after apply: %+v, invocation before %x", u, before)
		}
		if o := f.owed(); o != nil {
			t.Errorf("journal still owes a restart after a verified one: %+v", o)
		}
		// Plan after Apply is empty: the engine cleared what was owed once
		// the restart verified, and nothing upstream changes any more.
		if p := f.plan(nil); !p.Empty() {
			t.Errorf("plan in the next run: %+v", p.Changes)
		}
		if n := f.sd.Count("RestartUnit", docker); n != 1 {
			t.Errorf("%d restarts, want 1", n)
		}
	})
}

func TestNoRestartWhenNothingChanged(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		f := tr.make(t, testBlock(), activeDocker())
		before := f.sd.Unit(docker).InvocationID
		p := f.plan(map[string][]agent.Change{"docker_daemon": nil, "firewall": changes("set allow")})
		if !p.Empty() {
			t.Fatalf("plan: %+v", p.Changes)
		}
		if _, err := f.apply(nil); err != nil {
			t.Fatal(err)
		}
		if c := jobCalls(f.sd); len(c) != 0 {
			t.Errorf("a run that changed nothing called %v", c)
		}
		if u := f.sd.Unit(docker); string(u.InvocationID) != string(before) {
			t.Errorf("InvocationID changed: %x -> %x", before, u.InvocationID)
		}
	})
}

// A run that crashed between writing daemon.json and the restart left the
// journal entry: the next run restarts although nothing changes any more.
func TestJournalOwedRestartsWithoutUpstreamChange(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		f := tr.make(t, testBlock(), activeDocker())
		if err := agent.NewJournal(f.dir).Owe(docker, "docker_daemon", changes("log-opts")); err != nil {
			t.Fatal(err)
		}
		p := f.plan(nil)
		if len(p.Changes) != 1 || p.Changes[0].New != "restarted" ||
			!strings.HasPrefix(p.Changes[0].Detail, "restart docker.service: docker_daemon changed log-opts (owed since ") ||
			!strings.HasSuffix(p.Changes[0].Detail, "by an interrupted run)") {
			t.Fatalf("plan: %+v", p.Changes)
		}
		if _, err := f.apply(nil); err != nil {
			t.Fatal(err)
		}
		if n := f.sd.Count("RestartUnit", docker); n != 1 {
			t.Errorf("%d restarts, want 1", n)
		}
		if f.owed() != nil {
			t.Error("journal entry not cleared after the verified restart")
		}
		if p := f.plan(nil); !p.Empty() {
			t.Errorf("plan after: %+v", p.Changes)
		}
	})
}

func TestReloadOnlyForReloadableKeys(t *testing.T) {
	for _, tc := range []struct {
		name      string
		up        map[string][]agent.Change
		canReload bool
		want      string // the job run
	}{
		{"live-restore and debug", map[string][]agent.Change{"docker_daemon": reloads("live-restore", "debug")}, true, "ReloadUnit"},
		{"registry mirrors", map[string][]agent.Change{"docker_daemon": reloads("registry-mirrors")}, true, "ReloadUnit"},
		{"live-restore and log-opts", map[string][]agent.Change{"docker_daemon": append(reloads("live-restore"), changes("log-opts")...)}, true, "RestartUnit"},
		{"debug and subuid", map[string][]agent.Change{"docker_daemon": reloads("debug"), "subordinate_ids.dockremap": changes("/etc/subuid")}, true, "RestartUnit"},
		{"unit cannot reload", map[string][]agent.Change{"docker_daemon": reloads("debug")}, false, "RestartUnit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			each(t, func(t *testing.T, tr transport) {
				u := activeDocker()
				u.CanReload = tc.canReload
				f := tr.make(t, testBlock(func(b *Block) { b.Verify = VerifyDocker }), u)
				before := f.sd.Unit(docker).InvocationID
				p, err := f.apply(tc.up)
				if err != nil {
					t.Fatal(err)
				}
				verb := map[string]string{"ReloadUnit": "reload", "RestartUnit": "restart"}[tc.want]
				if !strings.HasPrefix(p.Changes[0].Detail, verb+" docker.service: ") {
					t.Errorf("plan says %q, want %s", p.Changes[0].Detail, verb)
				}
				if f.sd.Count(tc.want, docker) != 1 || f.sd.Count("ReloadUnit", "")+f.sd.Count("RestartUnit", "") != 1 {
					t.Errorf("calls %v, want one %s", jobCalls(f.sd), tc.want)
				}
				same := string(f.sd.Unit(docker).InvocationID) == string(before)
				if same != (tc.want == "ReloadUnit") {
					t.Errorf("InvocationID unchanged = %v after %s", same, tc.want)
				}
				if f.owed() != nil {
					t.Error("journal entry not cleared")
				}
			})
		})
	}
}

// A restart that fails is rolled back: the engine restores the files,
// the unit's failed state and start limit are reset, it restarts on the old
// files and the module reports rolled back.
func TestFailedRestartRollsBack(t *testing.T) {
	for _, result := range []string{fakesystemd.Failed, fakesystemd.Timeout, fakesystemd.CrashLoop} {
		t.Run(result, func(t *testing.T) {
			each(t, func(t *testing.T, tr transport) {
				f := tr.make(t, testBlock(func(b *Block) { b.Verify = VerifyDocker }), activeDocker())
				// docker.service's StartLimitBurst, spent by the failed
				// start: without ResetFailedUnit the rollback's restart
				// would be refused.
				f.sd.SetStartLimitBurst(1)
				f.sd.Script(docker, result)
				up := map[string][]agent.Change{"docker_daemon": changes("storage-driver")}
				_, err := f.apply(up)
				var rb *agent.RolledBackError
				if !errors.As(err, &rb) {
					t.Fatalf("want a RolledBackError, got %v", err)
				}
				wantJob := "job " + map[string]string{fakesystemd.CrashLoop: "failed"}[result]
				if wantJob == "job " {
					wantJob += result
				}
				if !strings.Contains(rb.Err.Error(), "restart docker.service: "+wantJob) {
					t.Errorf("first failure = %q, want it to name %q", rb.Err, wantJob)
				}
				if !strings.HasSuffix(err.Error(), "; restored the last-known-good files of docker_daemon, and docker.service is active again (verified)") {
					t.Errorf("error does not say the host is back: %v", err)
				}
				// Of the restart_on modules, only docker_daemon changed.
				if diff := cmp.Diff([]string{"docker_daemon"}, f.rollbacks); diff != "" {
					t.Errorf("rollbacks (-want +got):\n%s", diff)
				}
				want := []string{"ResetFailedUnit docker.service", "RestartUnit docker.service", "ResetFailedUnit docker.service", "RestartUnit docker.service"}
				if diff := cmp.Diff(want, jobCalls(f.sd)); diff != "" {
					t.Errorf("calls (-want +got):\n%s", diff)
				}
				if u := f.sd.Unit(docker); u.ActiveState != "active" {
					t.Errorf("after rollback: %+v", u)
				}
				// The unit runs the restored files: nothing is owed.
				if f.owed() != nil {
					t.Error("journal entry kept after a verified rollback")
				}
			})
		})
	}
}

// Without resetting the failed state, the rollback's restart hits the start
// limit: the fake enforces it, so the previous test proves the reset.
func TestFakeEnforcesStartLimit(t *testing.T) {
	sd := fakesystemd.New(activeDocker())
	sd.SetStartLimitBurst(1)
	sd.Script(docker, fakesystemd.Failed)
	d := sd.Direct()
	for i, want := range []string{"failed", "failed"} {
		ch := make(chan string, 1)
		if _, err := d.RestartUnitContext(context.Background(), docker, "replace", ch); err != nil {
			t.Fatal(err)
		}
		if got := <-ch; got != want {
			t.Errorf("restart %d: %s, want %s", i, got, want)
		}
	}
	if r := sd.Unit(docker).Result; r != "start-limit-hit" {
		t.Errorf("Result = %q, want start-limit-hit", r)
	}
}

func TestVerifyPingFailureRollsBack(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		f := tr.make(t, testBlock(func(b *Block) { b.Verify = VerifyDocker; b.Timeout = 500 * time.Millisecond }), activeDocker())
		f.pingDown.Store(true)
		f.onRollback = func() { f.pingDown.Store(false) }
		_, err := f.apply(map[string][]agent.Change{"docker_daemon": changes("log-opts")})
		var rb *agent.RolledBackError
		if !errors.As(err, &rb) || !strings.Contains(rb.Err.Error(), "did not answer /_ping in time") || !strings.Contains(rb.Err.Error(), "503") {
			t.Fatalf("want a RolledBackError about /_ping, got %v", err)
		}
	})
}

func TestRollbackFailsToo(t *testing.T) {
	t.Run("restart on the old files fails", func(t *testing.T) {
		each(t, func(t *testing.T, tr transport) {
			f := tr.make(t, testBlock(), activeDocker())
			f.sd.Script(docker, fakesystemd.Failed, fakesystemd.Failed)
			_, err := f.apply(map[string][]agent.Change{"docker_daemon": changes("log-opts"), "subordinate_ids.dockremap": changes("/etc/subuid")})
			if err == nil || errors.As(err, new(*agent.RolledBackError)) {
				t.Fatalf("want a plain error, got %v", err)
			}
			for _, want := range []string{
				"restart docker.service: job failed; docker.service was left failed (failed, result exit-code)",
				"restored the last-known-good files of docker_daemon, subordinate_ids.dockremap, but docker.service did not come back with them either",
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\nshould say %q", err, want)
				}
			}
			if f.owed() == nil {
				t.Error("journal entry cleared although docker.service never came back")
			}
		})
	})
	t.Run("restoring the files fails", func(t *testing.T) {
		each(t, func(t *testing.T, tr transport) {
			f := tr.make(t, testBlock(), activeDocker())
			f.sd.Script(docker, fakesystemd.Failed)
			f.rollbackErr = errors.New("write /etc/docker/daemon.json: read-only file system")
			_, err := f.apply(map[string][]agent.Change{"docker_daemon": changes("log-opts")})
			want := "restart docker.service: job failed; docker.service was left failed (failed, result exit-code); " +
				"rollback failed too: roll back docker_daemon: write /etc/docker/daemon.json: read-only file system; " +
				"of docker_daemon, the files of the modules named there may still be the new ones, the others' were restored; " +
				"docker.service is active again (verified) on what is on disk now"
			if err == nil || err.Error() != want || errors.As(err, new(*agent.RolledBackError)) {
				t.Fatalf("error:\n%v\nwant:\n%s", err, want)
			}
			// One more start after the failed rollback: the unit was down.
			if n := f.sd.Count("RestartUnit", docker); n != 2 {
				t.Errorf("%d restarts, want 2", n)
			}
			if f.owed() == nil {
				t.Error("journal entry cleared")
			}
		})
	})
	t.Run("rollback off", func(t *testing.T) {
		each(t, func(t *testing.T, tr transport) {
			f := tr.make(t, testBlock(func(b *Block) { b.Rollback = false }), activeDocker())
			f.sd.Script(docker, fakesystemd.Failed)
			_, err := f.apply(map[string][]agent.Change{"docker_daemon": changes("log-opts")})
			if err == nil || !strings.Contains(err.Error(), "rollback is off") || len(f.rollbacks) != 0 {
				t.Fatalf("err %v, rollbacks %v", err, f.rollbacks)
			}
		})
	})
	t.Run("owed by an earlier run only", func(t *testing.T) {
		each(t, func(t *testing.T, tr transport) {
			f := tr.make(t, testBlock(), activeDocker())
			f.sd.Script(docker, fakesystemd.Failed)
			if err := agent.NewJournal(f.dir).Owe(docker, "docker_daemon", changes("log-opts")); err != nil {
				t.Fatal(err)
			}
			_, err := f.apply(nil)
			if err == nil || !strings.Contains(err.Error(), "not rolled back: no module in restart_on changed in this run") || len(f.rollbacks) != 0 {
				t.Fatalf("err %v, rollbacks %v", err, f.rollbacks)
			}
		})
	})
}

// A job that never ends costs timeout, not forever.
func TestJobTimeoutIsBounded(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		f := tr.make(t, testBlock(func(b *Block) { b.Timeout = 300 * time.Millisecond; b.Rollback = false }), activeDocker())
		f.sd.Script(docker, fakesystemd.Hang)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		env := f.env(map[string][]agent.Change{"docker_daemon": changes("log-opts")})
		p, err := f.m.Plan(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		err = f.m.Apply(ctx, env, p)
		if !errors.Is(err, ErrTimeout) || ctx.Err() != nil {
			t.Fatalf("want ErrTimeout from the module's own timer, got %v (ctx %v)", err, ctx.Err())
		}
		if !strings.Contains(err.Error(), "restart docker.service: job not finished: timed out; docker.service was left activating (start)") {
			t.Errorf("error does not say what is left: %v", err)
		}
	})
}

// The result of a job the module stopped waiting for arrives later; it must
// not block the connection for the jobs after it (the result channel is
// buffered).
func TestLateJobResultDoesNotBlockConnection(t *testing.T) {
	f := overBus(t, testBlock(func(b *Block) { b.Timeout = 200 * time.Millisecond; b.Rollback = false }), activeDocker())
	f.sd.SetJobDelay(600 * time.Millisecond)
	if _, err := f.apply(map[string][]agent.Change{"docker_daemon": changes("log-opts")}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("first restart: want timeout, got %v", err)
	}
	time.Sleep(800 * time.Millisecond) // the late JobRemoved is delivered
	f.sd.SetJobDelay(0)
	f.m.b.Timeout = 5 * time.Second
	// An unbuffered channel would leave go-systemd's signal goroutine stuck
	// holding its job-listener lock, and this restart would hang for good.
	done := make(chan error, 1)
	go func() { _, err := f.apply(nil); done <- err }() // owed from the journal
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("second restart: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("second restart hangs: the late job result blocked the connection")
	}
}

func TestCancelledContextStopsWaiting(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		f := tr.make(t, testBlock(func(b *Block) { b.Timeout = time.Hour }), activeDocker())
		f.sd.Script(docker, fakesystemd.Hang)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := f.applyCtx(ctx, map[string][]agent.Change{"docker_daemon": changes("log-opts")})
		if !errors.Is(err, context.DeadlineExceeded) || len(f.rollbacks) != 0 {
			t.Fatalf("want the context's error and no rollback, got %v, rollbacks %v", err, f.rollbacks)
		}
	})
}

func TestNoSuchUnit(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		f := tr.make(t, testBlock())
		_, err := f.m.Plan(context.Background(), f.env(nil))
		if !errors.Is(err, ErrNoSuchUnit) || !strings.Contains(err.Error(), "read docker.service: no such unit: systemd has no unit file for it") {
			t.Fatalf("plan: %v", err)
		}
	})
	t.Run("gone between plan and apply", func(t *testing.T) {
		each(t, func(t *testing.T, tr transport) {
			f := tr.make(t, testBlock(), activeDocker())
			env := f.env(map[string][]agent.Change{"docker_daemon": changes("log-opts")})
			p, err := f.m.Plan(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			f.sd.RemoveUnit(docker)
			err = f.m.Apply(context.Background(), env, p)
			if !errors.Is(err, ErrNoSuchUnit) || !strings.Contains(err.Error(), "reset-failed docker.service: no such unit: ") {
				t.Fatalf("apply: %v", err)
			}
		})
	})
}

// First boot: docker has never run the old files. Enable and start it; no
// restart.
func TestInactiveUnitIsStartedNotRestarted(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		f := tr.make(t, testBlock(func(b *Block) { b.Verify = VerifyDocker }),
			fakesystemd.Unit{Name: docker, ActiveState: "inactive", UnitFileState: "disabled", CanReload: true})
		up := map[string][]agent.Change{"docker_daemon": changes("log-opts"), "subordinate_ids.dockremap": changes("/etc/subuid")}
		p := f.plan(up)
		want := []agent.Change{
			{Action: agent.Update, Target: "enabled", Old: "disabled", New: "enabled"},
			{Action: agent.Update, Target: "state", Old: "inactive", New: "active",
				Detail: "start docker.service: it reads the new files as it starts (docker_daemon changed log-opts; subordinate_ids.dockremap changed /etc/subuid)"},
		}
		if diff := cmp.Diff(want, p.Changes); diff != "" {
			t.Fatalf("plan (-want +got):\n%s", diff)
		}
		if _, err := f.apply(up); err != nil {
			t.Fatal(err)
		}
		wantCalls := []string{"EnableUnitFiles docker.service", "Reload", "ResetFailedUnit docker.service", "StartUnit docker.service"}
		if diff := cmp.Diff(wantCalls, jobCalls(f.sd)); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
		if f.owed() != nil {
			t.Error("journal entry not cleared after the verified start")
		}
		if p := f.plan(nil); !p.Empty() {
			t.Errorf("plan after: %+v", p.Changes)
		}
	})
}

func TestStateStopped(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		no := false
		f := tr.make(t, testBlock(func(b *Block) { b.State = StateStopped; b.Enabled = &no }), activeDocker())
		up := map[string][]agent.Change{"docker_daemon": changes("log-opts")}
		p := f.plan(up)
		want := []agent.Change{
			{Action: agent.Update, Target: "enabled", Old: "enabled", New: "disabled"},
			{Action: agent.Update, Target: "state", Old: "active", New: "inactive", Detail: "stop docker.service"},
		}
		if diff := cmp.Diff(want, p.Changes); diff != "" {
			t.Fatalf("plan (-want +got):\n%s", diff)
		}
		if _, err := f.apply(up); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"DisableUnitFiles docker.service", "Reload", "StopUnit docker.service"}, jobCalls(f.sd)); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
		if f.owed() != nil {
			t.Error("journal entry kept for a stopped unit")
		}
		if p := f.plan(nil); !p.Empty() {
			t.Errorf("plan after: %+v", p.Changes)
		}
	})
}

// A unit that is to stay stopped owes no restart: the entry is dropped,
// nothing is started.
func TestStoppedUnitForgetsRestart(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		f := tr.make(t, testBlock(func(b *Block) { b.State = StateStopped; b.Enabled = nil }),
			fakesystemd.Unit{Name: docker, ActiveState: "inactive", UnitFileState: "disabled"})
		p, err := f.apply(map[string][]agent.Change{"docker_daemon": changes("log-opts")})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Changes) != 1 || p.Changes[0].New != "not needed" {
			t.Errorf("plan: %+v", p.Changes)
		}
		if c := jobCalls(f.sd); len(c) != 0 {
			t.Errorf("calls: %v", c)
		}
		if f.owed() != nil {
			t.Error("journal entry kept")
		}
	})
}

// A closed connection (systemd or the bus restarted) is re-made.
func TestConnectionRemade(t *testing.T) {
	t.Run("bus restarted", func(t *testing.T) {
		f := overBus(t, testBlock(), activeDocker())
		f.plan(nil)
		old := f.m.sd.Bus()
		f.srv.RestartBus()
		if _, err := f.apply(map[string][]agent.Change{"docker_daemon": changes("log-opts")}); err != nil {
			t.Fatalf("apply after the bus restarted: %v", err)
		}
		if f.m.sd.Bus() == old {
			t.Error("the connection was not re-made")
		}
		if n := f.sd.Count("RestartUnit", docker); n != 1 {
			t.Errorf("%d restarts", n)
		}
	})
	t.Run("closed under the module", func(t *testing.T) {
		each(t, func(t *testing.T, tr transport) {
			f := tr.make(t, testBlock(), activeDocker())
			f.plan(nil)
			f.m.sd.Bus().Close()
			f.plan(nil)
			if tr.name == "direct" && f.dials.Load() != 2 {
				t.Errorf("%d dials, want 2", f.dials.Load())
			}
		})
	})
}

func TestMaskedUnit(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		f := tr.make(t, testBlock(), fakesystemd.Unit{Name: docker, LoadState: "masked", UnitFileState: "masked"})
		_, err := f.m.Plan(context.Background(), f.env(nil))
		if !errors.Is(err, ErrUnitMasked) {
			t.Fatalf("plan: %v", err)
		}
	})
}

func TestOffline(t *testing.T) {
	m := New(testBlock())
	if _, err := m.Plan(context.Background(), &agent.Env{Root: "/tmp/image"}); !errors.Is(err, agent.ErrOffline) {
		t.Fatalf("plan under --root: %v", err)
	}
}

func TestBusUnavailable(t *testing.T) {
	t.Run("no bus", func(t *testing.T) {
		t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+t.TempDir()+"/none")
		m := New(testBlock())
		_, err := m.Plan(context.Background(), &agent.Env{})
		if !errors.Is(err, ErrBusUnavailable) || !strings.Contains(err.Error(), "connect to systemd over D-Bus") {
			t.Fatalf("plan: %v", err)
		}
	})
	// A bus that accepts and never answers must not hang a run whose
	// context has no deadline.
	t.Run("hung bus", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "hungbus")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		l, err := net.Listen("unix", dir+"/bus")
		if err != nil {
			t.Fatal(err)
		}
		conns := make(chan net.Conn, 16)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					close(conns)
					return
				}
				conns <- c
			}
		}()
		t.Cleanup(func() {
			l.Close()
			for c := range conns {
				c.Close()
			}
		})
		t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+dir+"/bus")
		m := New(testBlock())
		m.sd.CallTimeout = 300 * time.Millisecond
		_, err = m.Plan(context.Background(), &agent.Env{})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connect to systemd over D-Bus") {
			t.Fatalf("plan: %v", err)
		}
		// The abandoned dial is broken off: the client hangs up.
		c := <-conns
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Errorf("the abandoned connection stayed open: %v", err)
		}
		c.Close()
	})
}

// A restart already under way (a killed dockward run's, an operator's) is
// let finish before ours: replacing it mid-way kills dockerd as it starts
// and fails both jobs (seen in scenario 53).
func TestQueuedJobIsLetFinishFirst(t *testing.T) {
	each(t, func(t *testing.T, tr transport) {
		f := tr.make(t, testBlock(), activeDocker())
		f.sd.SetJobDelay(300 * time.Millisecond)
		if _, err := f.sd.Job("restart", docker, nil); err != nil {
			t.Fatal(err)
		}
		if f.sd.Unit(docker).JobID == 0 {
			t.Fatal("the fake shows no queued job")
		}
		up := map[string][]agent.Change{"docker_daemon": changes("log-opts")}
		if _, err := f.apply(up); err != nil {
			t.Fatal(err)
		}
		if got := f.sd.Unit(docker).ActiveState; got != "active" {
			t.Fatalf("unit %s after apply", got)
		}
		if n := f.sd.Count("RestartUnit", docker); n != 2 {
			t.Errorf("RestartUnit calls = %d, want 2 (the queued one and ours, after it)", n)
		}
	})
}
