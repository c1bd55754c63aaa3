package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dockward/dockward/integration/sandbox"
	"github.com/dockward/dockward/modules/daemonjson/migrate"
)

// BenchmarkMigrate measures a migrate across the userns-remap switch in a
// sandbox machine: TestMigrate's workload (a network, a volume, a running
// and a stopped container, busybox:local) plus one image of SIZE MB of
// random data (a tarball imported with docker import, so it does not
// compress). Each iteration starts on the unremapped root and times
//
//   - export: Read, Blockers and Export against the old daemon (the image
//     save streamed to files),
//   - restart: daemon.json with userns-remap and systemctl restart docker,
//   - import: Import into the new root (image loads, network, volume copy
//     with the ownership shift, containers created and started),
//
// reported as seconds each; ns/op is their sum. Between iterations (not
// timed) the machine goes back to the old root and the new root is removed.
// It reports figures and asserts only that the migrate worked:
// go test -run '^$' -bench Migrate -benchtime 1x ./integration
func BenchmarkMigrate(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: boots a systemd-nspawn sandbox machine")
	}
	m := sandbox.Start(b)
	m.MustRun(b, "sh", "-c", migrateWorkload)
	for _, mb := range []int{10, 100, 500} {
		b.Run(fmt.Sprintf("image=%dMB", mb), func(b *testing.B) {
			ref := fmt.Sprintf("random:%dmb", mb)
			m.MustRun(b, "sh", "-c", fmt.Sprintf(`set -e
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
head -c %dM /dev/urandom >"$d/blob"
tar -C "$d" -c blob | docker import - %s >/dev/null`, mb, ref))
			defer m.MustRun(b, "docker", "image", "rm", ref)
			var export, restart, imp time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				e, r, im := migrateOnce(b, m, dir)
				export, restart, imp = export+e, restart+r, imp+im
				b.StopTimer()
				backToOldRoot(b, m)
				_ = os.RemoveAll(dir)
				b.StartTimer()
			}
			n := float64(b.N)
			b.ReportMetric(export.Seconds()/n, "export-s")
			b.ReportMetric(restart.Seconds()/n, "restart-s")
			b.ReportMetric(imp.Seconds()/n, "import-s")
		})
	}
}

// migrateOnce runs one migrate and returns how long each phase took.
func migrateOnce(b *testing.B, m *sandbox.Machine, dir string) (export, restart, imp time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	opts := migrate.Options{HostRoot: m.Root()}
	start := time.Now()
	inv, err := migrate.Read(ctx, engine(b, m), opts)
	if err != nil {
		b.Fatal(err)
	}
	shift := migrate.Shift{To: migrate.RemapRange(100000, 100000, 65536)}
	if bl := inv.Blockers(shift); len(bl) > 0 {
		b.Fatalf("the benchmark's workload has blockers: %v", bl)
	}
	if err := migrate.Export(ctx, engine(b, m), inv, dir, opts); err != nil {
		b.Fatal(err)
	}
	export = time.Since(start)

	start = time.Now()
	switchToRemap(b, m)
	restart = time.Since(start)

	start = time.Now()
	opts.Shift = shift
	res, err := migrate.Import(ctx, engine(b, m), dir, opts)
	if err != nil {
		b.Fatalf("import: %v", err)
	}
	imp = time.Since(start)
	if n := res.Count(migrate.Moved); n != len(res.Outcomes) {
		b.Fatalf("%d of %d objects moved: %v", n, len(res.Outcomes), res.Outcomes)
	}
	return export, restart, imp
}

// backToOldRoot switches userns-remap off again (the old root's containers
// come back, web by its restart policy) and removes the remapped root.
func backToOldRoot(b *testing.B, m *sandbox.Machine) {
	m.WriteFile(b, "/etc/docker/daemon.json", []byte("{}\n"), 0o644)
	restartDocker(b, m)
	m.MustRun(b, "rm", "-rf", "/var/lib/docker/100000.100000")
	if _, err := os.Stat(filepath.Join(m.Root(), "var/lib/docker/100000.100000")); err == nil {
		b.Fatal("the remapped root is still there")
	}
}
