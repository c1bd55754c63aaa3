package sandbox

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
)

// DefaultSuite is the Debian release a machine runs unless Options.Suite
// says otherwise: the nearest to Ubuntu 24.04 (systemd 255, docker.io 24-28,
// nftables 1.0.9) that these hosts can fetch (trixie: systemd 257, Docker
// 26). "sid" gives Docker 28 and the newest systemd; it moves daily, so its
// tree may fail to build on a given day (see TreeBuildError).
const DefaultSuite = "trixie"

// suiteOr is suite, or DefaultSuite when empty.
func suiteOr(suite string) string {
	if suite == "" {
		return DefaultSuite
	}
	return suite
}

// Packages is what debootstrap installs on top of minbase. Changing it
// changes the cache key, so a new tree is built next time.
var Packages = []string{
	"systemd", "systemd-sysv", "dbus",
	"docker.io", "docker-cli", "nftables", "uidmap",
	"iproute2", "procps", "busybox-static",
}

// recipe is the version of what prepareTree does to the tree after
// debootstrap; bump it when that changes so old caches are not reused.
const recipe = "2"

// CacheDir holds the built trees, outside any checkout so that every
// worktree and test binary on this host shares them.
const CacheDir = "/var/cache/dockward-testbed"

// Marker is a file in the machine's tree that says "this is a throwaway
// test machine": the scenario runner refuses to tamper with a host without
// it (or DOCKWARD_THROWAWAY=1, which the Vagrant VM sets).
const Marker = "/etc/dockward-testbed"

// BuildTimeout bounds debootstrap (measured: about 50 s; a slow mirror can
// take a few minutes).
var BuildTimeout = 15 * time.Minute

// TreeKey is the cache key of a suite's tree ("" = DefaultSuite): the suite,
// the sorted package list and the preparation recipe. The mirror is not part
// of it: any Debian mirror gives the same tree.
func TreeKey(suite string) string {
	suite = suiteOr(suite)
	pk := append([]string(nil), Packages...)
	sort.Strings(pk)
	h := sha256.New()
	fmt.Fprintf(h, "suite=%s\nvariant=minbase\nrecipe=%s\npackages=%s\n", suite, recipe, strings.Join(pk, ","))
	return hex.EncodeToString(h.Sum(nil))
}

// TreePath is where the cached root file system of a suite's tree lives.
func TreePath(suite string) string { return filepath.Join(CacheDir, TreeKey(suite), "rootfs") }

// TreeCached reports whether a suite's tree is already built.
func TreeCached(suite string) bool {
	_, err := os.Stat(filepath.Join(CacheDir, TreeKey(suite), "complete"))
	return err == nil
}

// TreeBuildError is a tree that could not be built: debootstrap failed (for
// sid, often a transition in the archive on that day) or the mirror is
// unknown. Reason is debootstrap's own error lines ("E: ..."), or the last
// line of its log; Log is the log's tail.
type TreeBuildError struct {
	Suite  string
	Reason string
	Log    string
	Err    error
}

func (e *TreeBuildError) Error() string {
	msg := fmt.Sprintf("build the Debian %s tree: %v", e.Suite, e.Err)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Log != "" {
		msg += "\n--- debootstrap log (tail) ---\n" + e.Log
	}
	return msg
}

func (e *TreeBuildError) Unwrap() error { return e.Err }

// debootstrapReason picks debootstrap's error lines out of its log: "E: "
// lines (debootstrap's and apt's), and "W: Failure" ones; else the last line.
func debootstrapReason(log string) string {
	var out []string
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: Failure") {
			out = append(out, l)
		}
	}
	if len(out) == 0 && len(lines) > 0 {
		out = append(out, strings.TrimSpace(lines[len(lines)-1]))
	}
	return strings.Join(out, "; ")
}

// EnsureTree returns a suite's cached tree ("" = DefaultSuite), building it
// first if needed; a failed build is a *TreeBuildError. Building
// is atomic (a temp directory renamed into place once complete) and
// serialised by a file lock, so concurrent test processes build it once and
// a crashed build leaves nothing that looks usable. built says whether this
// call built it; logf receives progress lines.
func EnsureTree(ctx context.Context, suite string, logf func(format string, args ...any)) (root string, built bool, err error) {
	suite = suiteOr(suite)
	if TreeCached(suite) {
		return TreePath(suite), false, nil
	}
	if err := os.MkdirAll(CacheDir, 0o755); err != nil {
		return "", false, fmt.Errorf("create %s: %w", CacheDir, err)
	}
	key := TreeKey(suite)
	lock := flock.New(filepath.Join(CacheDir, key+".lock"))
	lctx, cancel := context.WithTimeout(ctx, BuildTimeout+time.Minute)
	defer cancel()
	ok, err := lock.TryLockContext(lctx, 500*time.Millisecond)
	if err != nil || !ok {
		return "", false, fmt.Errorf("lock %s (another process building the tree?): %w", lock.Path(), errors.Join(err, lctx.Err()))
	}
	defer lock.Unlock() //nolint:errcheck // released on close anyway
	// Built by whoever held the lock before us?
	if TreeCached(suite) {
		return TreePath(suite), false, nil
	}
	removeStaleBuilds(key)

	tmp, err := os.MkdirTemp(CacheDir, key+".build-")
	if err != nil {
		return "", false, fmt.Errorf("create build dir in %s: %w", CacheDir, err)
	}
	defer os.RemoveAll(tmp) //nolint:errcheck // gone after the rename; left only on failure
	start := time.Now()
	if err := BuildTree(ctx, suite, filepath.Join(tmp, "rootfs"), logf); err != nil {
		return "", false, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "complete"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", false, fmt.Errorf("mark tree complete: %w", err)
	}
	final := filepath.Join(CacheDir, key)
	if err := os.Rename(tmp, final); err != nil {
		return "", false, fmt.Errorf("move built tree to %s: %w", final, err)
	}
	logf("sandbox: built the Debian %s tree in %s: %s", suite, time.Since(start).Round(100*time.Millisecond), final)
	return TreePath(suite), true, nil
}

// BuildTree builds a suite's root file system ("" = DefaultSuite) into
// rootfs (which must not exist yet): debootstrap from this host's Debian
// mirror, then the preparation that makes it a fresh host. EnsureTree
// caches its result. A failed debootstrap is a *TreeBuildError.
func BuildTree(ctx context.Context, suite, rootfs string, logf func(format string, args ...any)) error {
	suite = suiteOr(suite)
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("debootstrap not installed (integration/hostdeps.sh installs it; or apt-get install debootstrap): %w", err)
	}
	mirror := Mirror()
	logf("sandbox: building the Debian %s tree with debootstrap from %s (about a minute, once per host)", suite, mirror)
	bctx, cancel := context.WithTimeout(ctx, BuildTimeout)
	defer cancel()
	logPath := filepath.Join(filepath.Dir(rootfs), "debootstrap.log")
	if err := debootstrap(bctx, suite, rootfs, mirror, logPath); err != nil {
		log := tail(logPath, 40)
		return &TreeBuildError{Suite: suite, Reason: debootstrapReason(log), Log: log,
			Err: fmt.Errorf("debootstrap %s into %s: %w", suite, rootfs, err)}
	}
	if err := prepareTree(rootfs); err != nil {
		return fmt.Errorf("prepare tree %s: %w", rootfs, err)
	}
	return nil
}

// removeStaleBuilds deletes build directories that a killed build left; we
// hold the lock, so none of them is in progress.
func removeStaleBuilds(key string) {
	old, _ := filepath.Glob(filepath.Join(CacheDir, key+".build-*"))
	for _, d := range old {
		_ = os.RemoveAll(d)
	}
}

func debootstrap(ctx context.Context, suite, rootfs, mirror, logPath string) error {
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase",
		"--include="+strings.Join(Packages, ","), suite, rootfs, mirror)
	cmd.Stdout, cmd.Stderr = lf, lf
	// debootstrap mounts /proc and /sys inside the target; in a private
	// mount namespace they vanish with it even when it is killed midway.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	return cmd.Run()
}

// prepareTree makes the freshly bootstrapped tree a "fresh host": no machine
// id (each boot gets its own, and systemd sees a first boot), the throwaway
// marker, and no apt caches.
func prepareTree(rootfs string) error {
	if err := os.WriteFile(filepath.Join(rootfs, "etc/machine-id"), nil, 0o444); err != nil {
		return fmt.Errorf("empty machine-id: %w", err)
	}
	_ = os.Remove(filepath.Join(rootfs, "var/lib/dbus/machine-id"))
	if err := os.WriteFile(filepath.Join(rootfs, strings.TrimPrefix(Marker, "/")),
		[]byte("dockward sandbox machine: scenarios may change docker, subuid and the firewall here\n"), 0o644); err != nil {
		return fmt.Errorf("write marker: %w", err)
	}
	for _, d := range []string{"var/cache/apt/archives", "var/lib/apt/lists"} {
		ents, _ := os.ReadDir(filepath.Join(rootfs, d))
		for _, e := range ents {
			if e.Type().IsRegular() {
				_ = os.Remove(filepath.Join(rootfs, d, e.Name()))
			}
		}
	}
	return nil
}

// Mirror is the Debian mirror this host's apt sources name (deb822 files in
// /etc/apt/sources.list.d, then the one-line /etc/apt/sources.list), so the
// repository never hard-codes a local one. DOCKWARD_TESTBED_MIRROR overrides
// it; a host whose sources name no Debian mirror (Ubuntu) uses FallbackMirror.
func Mirror() string {
	if m := os.Getenv("DOCKWARD_TESTBED_MIRROR"); m != "" {
		return m
	}
	var uris []string
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		uris = append(uris, deb822URIs(f)...)
	}
	uris = append(uris, oneLineURIs("/etc/apt/sources.list")...)
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, f := range lists {
		uris = append(uris, oneLineURIs(f)...)
	}
	for _, u := range uris {
		// The main archive, not debian-security, debian-debug or a backports host.
		if strings.HasSuffix(strings.TrimRight(u, "/"), "/debian") {
			return strings.TrimRight(u, "/")
		}
	}
	return FallbackMirror
}

// FallbackMirror is Debian's own redirector, for hosts whose apt sources
// name no Debian mirror (an Ubuntu host: debootstrap then checks the
// signatures with debian-archive-keyring, which integration/hostdeps.sh
// installs).
const FallbackMirror = "http://deb.debian.org/debian"

// fileLines returns a file's lines; an unreadable file has none.
func fileLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func deb822URIs(path string) []string {
	var out []string
	for _, line := range fileLines(path) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && strings.EqualFold(strings.TrimSpace(k), "URIs") {
			out = append(out, strings.Fields(v)...)
		}
	}
	return out
}

func oneLineURIs(path string) []string {
	var out []string
	for _, line := range fileLines(path) {
		fs := strings.Fields(line)
		if len(fs) < 3 || fs[0] != "deb" {
			continue
		}
		i := 1
		if strings.HasPrefix(fs[i], "[") { // [signed-by=... arch=...]
			for i < len(fs) && !strings.HasSuffix(fs[i], "]") {
				i++
			}
			i++
		}
		if i < len(fs) {
			out = append(out, fs[i])
		}
	}
	return out
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
