package sandbox

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTreeKeyIgnoresPackageOrder(t *testing.T) {
	k1 := TreeKey(DefaultSuite)
	saved := Packages
	t.Cleanup(func() { Packages = saved })
	rev := append([]string(nil), saved...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	Packages = rev
	if k2 := TreeKey(DefaultSuite); k2 != k1 {
		t.Errorf("key depends on package order: %s vs %s", k1, k2)
	}
	Packages = append(rev, "jq")
	if k3 := TreeKey(DefaultSuite); k3 == k1 {
		t.Errorf("key unchanged by an added package")
	}
}

func TestTreeKeyPerSuite(t *testing.T) {
	if TreeKey("") != TreeKey(DefaultSuite) {
		t.Errorf("the empty suite is not the default one")
	}
	if TreeKey("sid") == TreeKey(DefaultSuite) {
		t.Errorf("sid and %s share a cache key", DefaultSuite)
	}
}

func TestDebootstrapReason(t *testing.T) {
	log := "I: Retrieving InRelease \nI: Checking Release signature\nE: Couldn't find these debs: docker-cli\n"
	if got, want := debootstrapReason(log), "E: Couldn't find these debs: docker-cli"; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
	if got := debootstrapReason("I: a\nsomething went wrong\n"); got != "something went wrong" {
		t.Errorf("reason without E: lines = %q, want the last line", got)
	}
}

// TestBuildTreeFailureSaysWhy: a debootstrap that fails (here a suite it has
// no script for: no network needed) is a *TreeBuildError carrying
// debootstrap's own words, which an optional suite's tier reports when it
// skips.
func TestBuildTreeFailureSaysWhy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: debootstrap")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("debootstrap not installed (integration/hostdeps.sh test installs it)")
	}
	err := BuildTree(context.Background(), "dockward-no-such-suite", filepath.Join(t.TempDir(), "rootfs"), t.Logf)
	var be *TreeBuildError
	if !errors.As(err, &be) {
		t.Fatalf("BuildTree error = %v (%T), want a *TreeBuildError", err, err)
	}
	if be.Suite != "dockward-no-such-suite" || !strings.Contains(be.Reason, "E: ") {
		t.Errorf("TreeBuildError{Suite: %q, Reason: %q}, want the suite and debootstrap's E: line\n%s", be.Suite, be.Reason, be.Log)
	}
	t.Logf("reason: %s", be.Reason)
}

func TestMirrorFromSources(t *testing.T) {
	dir := t.TempDir()
	deb822 := filepath.Join(dir, "debian.sources")
	os.WriteFile(deb822, []byte("Types: deb\nURIs: http://security.example/debian-security\nSuites: x\n\nTypes: deb\nURIs: http://mirror.example/debian/\nSuites: trixie\n"), 0o644)
	uris := deb822URIs(deb822)
	if len(uris) != 2 || uris[1] != "http://mirror.example/debian/" {
		t.Errorf("deb822URIs = %q", uris)
	}
	one := filepath.Join(dir, "sources.list")
	os.WriteFile(one, []byte("# c\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\ndeb-src http://s.example/debian bookworm main\n"), 0o644)
	if got := oneLineURIs(one); len(got) != 1 || got[0] != "http://m.example/debian" {
		t.Errorf("oneLineURIs = %q", got)
	}
}

// TestMachine is the harness's own test: a machine boots with docker
// active, runs a real container, exposes its bus and root, and leaves
// nothing behind.
func TestMachine(t *testing.T) {
	m := Start(t)
	t.Logf("boot (nspawn start to docker.service active): %s, overlay root: %v", m.BootDuration.Round(10*time.Millisecond), m.Overlay())

	if out := m.MustRun(t, "docker", "run", "--rm", "busybox:local", "echo", "hi"); strings.TrimSpace(out) != "hi" {
		t.Errorf("docker run busybox:local echo hi = %q", out)
	}
	if out := m.MustRun(t, "hostname"); strings.TrimSpace(out) != m.Name() {
		t.Errorf("hostname = %q, want %q", out, m.Name())
	}
	// The machine has its own network namespace: only lo and docker0.
	if out := m.MustRun(t, "ip", "-o", "link"); strings.Contains(out, "eth0") || !strings.Contains(out, "docker0") {
		t.Errorf("links inside the machine:\n%s", out)
	}
	if _, err := os.Stat(strings.TrimPrefix(m.BusAddress(), "unix:path=")); err != nil {
		t.Errorf("system bus socket: %v", err)
	}
	m.WriteFile(t, "/etc/sandbox-test", []byte("from the host\n"), 0o600)
	if out := m.MustRun(t, "cat", "/etc/sandbox-test"); out != "from the host\n" {
		t.Errorf("file written through Root() reads %q inside", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, code, err := m.Run(ctx, "sh", "-c", "exit 7"); err != nil || code != 7 {
		t.Errorf("Run exit code = %d, %v; want 7, nil", code, err)
	}
	// Nothing written inside reaches the cached tree.
	if _, err := os.Stat(filepath.Join(TreePath(DefaultSuite), "etc/sandbox-test")); err == nil {
		t.Errorf("a file written in the machine appeared in the cached tree")
	}
}

// TestMachinesAreIsolated boots two machines at once: separate roots,
// separate networks.
func TestMachinesAreIsolated(t *testing.T) {
	if testing.Short() {
		t.Skip("boots two machines")
	}
	a, b := Start(t), Start(t)
	a.WriteFile(t, "/etc/only-in-a", []byte("a"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, code, _ := b.Run(ctx, "test", "-e", "/etc/only-in-a"); code == 0 {
		t.Errorf("machine %s sees a file written in %s", b.Name(), a.Name())
	}
	na := a.MustRun(t, "readlink", "/proc/self/ns/net")
	nb := b.MustRun(t, "readlink", "/proc/self/ns/net")
	self, _ := os.Readlink("/proc/self/ns/net")
	if na == nb || strings.TrimSpace(na) == self {
		t.Errorf("network namespaces: a %s b %s host %s", na, nb, self)
	}
}

// TestFailedBootLeavesNothing: a machine whose docker.service fails at
// boot makes Boot fail with docker's status, and is torn down all the same.
func TestFailedBootLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: boots a systemd-nspawn machine")
	}
	setup := func(dir string) error {
		d := filepath.Join(dir, "etc/systemd/system/docker.service.d")
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(d, "fail.conf"), []byte("[Service]\nExecStart=\nExecStart=/bin/false\nRestart=no\n"), 0o644)
	}
	start := time.Now()
	m, err := Boot(context.Background(), Options{Setup: setup, Logf: t.Logf})
	t.Logf("failed boot and teardown took %s", time.Since(start).Round(10*time.Millisecond))
	if err == nil {
		m.Close()
		t.Fatal("Boot succeeded with a docker.service that runs /bin/false")
	}
	if !strings.Contains(err.Error(), "docker.service failed") {
		t.Errorf("Boot error does not say docker.service failed: %v", err)
	}
	if m == nil {
		t.Fatal("Boot returned no machine to inspect")
	}
	if leaks := m.leaks(); len(leaks) > 0 {
		t.Errorf("after a failed boot: %s", strings.Join(leaks, "; "))
	}
}

// BenchmarkBoot measures a machine's boot, from nspawn start to
// docker.service active, on a cached tree.
func BenchmarkBoot(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: boots a systemd-nspawn machine")
	}
	if _, _, err := EnsureTree(context.Background(), DefaultSuite, b.Logf); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for b.Loop() {
		m, err := Boot(context.Background(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		total += m.BootDuration
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-docker-active/op")
}

// BenchmarkTreeBuild measures building the tree from scratch (debootstrap
// from the mirror), into a temporary directory, not the cache. It fetches
// about 100 MB and takes a minute: only with DOCKWARD_BENCH_TREE=1.
func BenchmarkTreeBuild(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: debootstrap")
	}
	if os.Getenv("DOCKWARD_BENCH_TREE") != "1" {
		b.Skip("set DOCKWARD_BENCH_TREE=1: downloads the Debian packages and takes about a minute")
	}
	for b.Loop() {
		dir := b.TempDir()
		if err := BuildTree(context.Background(), os.Getenv("DOCKWARD_BENCH_SUITE"), filepath.Join(dir, "rootfs"), b.Logf); err != nil {
			b.Fatal(err)
		}
	}
}
