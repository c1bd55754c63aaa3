package service

import (
	"context"
	"testing"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/modules/service/internal/fakesystemd"
)

// The restart benchmarks report, per restart (a whole engine apply: journal,
// plan, apply, report), the whole time and dockward's own share of it: the time not
// spent waiting for systemd's job result, the unit to become active or the
// Engine API to answer. On the fakes systemd answers at once, so the whole
// time is nearly all dockward's (plus D-Bus marshalling, over the bus).

func benchRestarts(b *testing.B, mod *Module, dir string) {
	b.Helper()
	up := map[string][]agent.Change{"docker_daemon": changes("log-opts"), "subordinate_ids.dockremap": changes("/etc/subuid")}
	ctx := context.Background()
	var total, waited time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := engineRun(ctx, b, dir, mod, up, nil, true); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		waited += mod.waited
	}
	n := float64(b.N)
	b.ReportMetric(float64(total.Microseconds())/n/1000, "ms-total/op")
	b.ReportMetric(float64((total-waited).Microseconds())/n/1000, "ms-dockward/op")
}

func BenchmarkRestartDirect(b *testing.B) {
	sd := fakesystemd.New(activeDocker())
	mod := newModule(testBlock(), func(context.Context) (Bus, error) { return sd.Direct(), nil })
	benchRestarts(b, mod, b.TempDir())
}

func BenchmarkRestartDBus(b *testing.B) {
	sd := fakesystemd.New(activeDocker())
	srv := fakesystemd.Serve(b, sd)
	b.Setenv("DBUS_SYSTEM_BUS_ADDRESS", srv.Address)
	blk := testBlock(func(bl *Block) { bl.Verify = VerifyDocker })
	blk.DockerSocket = fakesystemd.ServePing(b, func() bool { return true })
	mod := New(blk)
	defer mod.Close()
	benchRestarts(b, mod, b.TempDir())
}

// BenchmarkPlanConverged is the no-op run's cost to the module: one GetAll
// over the bus (the engine reads the journal).
func BenchmarkPlanConverged(b *testing.B) {
	sd := fakesystemd.New(activeDocker())
	srv := fakesystemd.Serve(b, sd)
	b.Setenv("DBUS_SYSTEM_BUS_ADDRESS", srv.Address)
	mod := New(testBlock())
	defer mod.Close()
	dir := b.TempDir()
	env := &agent.Env{StateDir: dir}
	for b.Loop() {
		p, err := mod.Plan(context.Background(), env)
		if err != nil || !p.Empty() {
			b.Fatal(err, p)
		}
	}
}

// BenchmarkRealRestart restarts docker.service in a sandbox machine (real
// systemd 257 and dockerd 26): from the start of plan to docker verified
// active, and dockward's share of it.
func BenchmarkRealRestart(b *testing.B) {
	m := realMachine(b)
	mod := New(realBlock(m))
	defer mod.Close()
	benchRestarts(b, mod, b.TempDir())
}
