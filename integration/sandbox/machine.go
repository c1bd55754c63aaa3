// Package sandbox is the tier-2 test harness: a Debian machine with systemd,
// D-Bus, Docker and nftables, booted with systemd-nspawn in its own network
// namespace, on which dockward runs against the real things (TESTBED.md
// explains the flags and why each is needed).
//
// Each machine gets a fresh overlay over a cached tree (built once per host
// with debootstrap, see EnsureTree), so machines never see each other's
// state. The overlay is mounted in a private mount namespace that exists
// only as long as systemd-nspawn runs, so no mount can outlive the machine;
// nspawn gets SIGTERM when the test process dies (Pdeathsig), and Start
// registers t.Cleanup and a signal handler, so a machine is torn down on
// every exit path.
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NamePrefix starts every machine's name (nspawn -M, the host name inside)
// so that leak checks can find them.
const NamePrefix = "dw-"

// Dir is the host directory holding one subdirectory per machine (the
// overlay's upper and work directories, Docker's data root, the console log).
func Dir() string { return filepath.Join(os.TempDir(), "dockward-sandbox") }

// Options tune a machine. The zero value is what most tests want.
type Options struct {
	// Suite is the Debian release the machine runs (default DefaultSuite,
	// trixie); each suite's tree is built once and cached. Building a
	// suite's tree can fail on a given day (sid): Boot then returns a
	// *TreeBuildError, which a test of an optional suite may skip on.
	Suite string
	// Setup runs before boot with a directory laid over the tree: a file
	// written to dir/etc/x appears as /etc/x in the machine (the overlay's
	// upper directory). Use it for what must be in place at first boot,
	// such as a unit that runs before docker.service.
	Setup func(dir string) error
	// NoDocker boots without waiting for docker.service (for a machine
	// whose Setup masked or delayed it); busybox:local is not imported.
	NoDocker bool
	// BootTimeout bounds the boot (default 3 minutes; measured about 10 s).
	BootTimeout time.Duration
	// Logf receives progress lines (default: discarded).
	Logf func(format string, args ...any)
}

// Machine is one booted sandbox machine.
type Machine struct {
	cgroups []string // the machine's own cgroups (see cgroup.go)
	name    string
	suite   string
	dir     string
	logPath string
	overlay bool

	cmd      *exec.Cmd
	nspawn   int    // systemd-nspawn's PID
	pid      int    // the machine's PID 1, as seen from this host
	pidStart string // its start time, to tell it from a reused PID
	exited   chan struct{}
	waitErr  error

	closeOnce sync.Once
	closeErr  error

	// BootDuration is the time from starting nspawn to docker.service
	// active (or to systemd up, with NoDocker).
	BootDuration time.Duration
}

// Name is the machine's name (its host name inside).
func (m *Machine) Name() string { return m.name }

// Suite is the Debian release the machine runs.
func (m *Machine) Suite() string { return m.suite }

// PID is the machine's PID 1 as seen from this host.
func (m *Machine) PID() int { return m.pid }

// Root is the machine's root directory as seen from this host: PID 1's root
// (/proc/PID/root), so it shows the machine's own mounts, /run and /tmp
// included. Write files here to copy them in. Absolute symlinks inside it
// resolve on the host: create files through real paths.
func (m *Machine) Root() string { return fmt.Sprintf("/proc/%d/root", m.pid) }

// BusAddress is the machine's system bus, reachable from this host, for
// driving its systemd over D-Bus from a test (DBUS_SYSTEM_BUS_ADDRESS).
func (m *Machine) BusAddress() string {
	return fmt.Sprintf("unix:path=/proc/%d/root/run/dbus/system_bus_socket", m.pid)
}

// LogPath is the machine's console log (nspawn's output) on this host.
func (m *Machine) LogPath() string { return m.logPath }

// Overlay reports whether the root is an overlay (false: a full copy, when
// overlayfs is not available).
func (m *Machine) Overlay() bool { return m.overlay }

// Boot builds the tree if needed and boots a machine on a fresh overlay.
// The caller must Close it. Most tests use Start instead.
func Boot(ctx context.Context, opts Options) (m *Machine, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("sandbox machines need root")
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bootTimeout := opts.BootTimeout
	if bootTimeout == 0 {
		bootTimeout = 3 * time.Minute
	}
	for _, bin := range []string{"systemd-nspawn", "nsenter", "mount"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s not installed (apt-get install systemd-container util-linux): %w", bin, err)
		}
	}
	installSignalHandler()
	removeStaleMachines()

	suite := suiteOr(opts.Suite)
	lower, _, err := EnsureTree(ctx, suite, logf)
	if err != nil {
		return nil, err
	}

	name := NamePrefix + randomHex(4)
	m = &Machine{name: name, suite: suite, dir: filepath.Join(Dir(), name), exited: make(chan struct{})}
	m.logPath = filepath.Join(m.dir, "console.log")
	upper, work, merged, docker := filepath.Join(m.dir, "upper"), filepath.Join(m.dir, "work"),
		filepath.Join(m.dir, "merged"), filepath.Join(m.dir, "docker")
	for _, d := range []string{upper, work, merged, docker} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			_ = os.RemoveAll(m.dir)
			return nil, fmt.Errorf("create machine dir %s: %w", d, err)
		}
	}
	// From here on Close removes everything, whatever fails.
	register(m)
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n--- console log of %s (tail) ---\n%s", err, name, tail(m.logPath, 60))
			_ = m.Close()
		}
	}()
	// The tree's /etc/hostname is debootstrap's host's name; each machine
	// answers to its own.
	if err := os.MkdirAll(filepath.Join(upper, "etc"), 0o755); err != nil {
		return m, fmt.Errorf("set up machine %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(upper, "etc/hostname"), []byte(name+"\n"), 0o644); err != nil {
		return m, fmt.Errorf("set up machine %s: %w", name, err)
	}
	if opts.Setup != nil {
		if err := opts.Setup(upper); err != nil {
			return m, fmt.Errorf("set up machine %s: %w", name, err)
		}
	}

	start := time.Now()
	if err := m.startNspawn(lower, upper, work, merged, docker); err != nil {
		return m, err
	}
	bctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	if err := m.findInit(bctx); err != nil {
		return m, err
	}
	m.overlay = !strings.Contains(readFile(m.logPath), "overlayfs unavailable")
	if opts.NoDocker {
		err = m.waitSystemd(bctx)
	} else {
		err = m.waitDocker(bctx)
	}
	if err != nil {
		return m, err
	}
	m.BootDuration = time.Since(start)
	logf("sandbox: machine %s (Debian %s) booted in %s (overlay root: %v)", name, suite, m.BootDuration.Round(10*time.Millisecond), m.overlay)
	if !opts.NoDocker {
		if err := m.importBusybox(bctx); err != nil {
			return m, err
		}
	}
	return m, nil
}

// startScript mounts the overlay (or, without overlayfs, copies the tree)
// in the private mount namespace it runs in, then becomes systemd-nspawn.
const startScript = `set -e
lower=$1 upper=$2 work=$3 merged=$4
shift 4
for cg in $DW_CGROUPS; do echo $$ >"$cg/cgroup.procs"; done
if ! mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"; then
	echo "sandbox: overlayfs unavailable, copying the tree" >&2
	cp -a "$lower/." "$merged/"
	cp -a "$upper/." "$merged/"
fi
exec "$@"
`

func (m *Machine) startNspawn(lower, upper, work, merged, docker string) error {
	m.cgroups = machineCgroups(m.name)
	lf, err := os.Create(m.logPath)
	if err != nil {
		return fmt.Errorf("create console log: %w", err)
	}
	args := []string{"-c", startScript, "sandbox-start", lower, upper, work, merged,
		"systemd-nspawn", "-D", merged, "-M", m.name,
		"--private-network", "--register=no", "--keep-unit",
		"--system-call-filter=@keyring bpf",
		// Docker's data root on the host's file system rather than on the
		// overlay: overlay2 cannot stack on overlayfs, and Ubuntu hosts run
		// overlay2.
		"--bind=" + docker + ":/var/lib/docker",
		"-b"}
	started := make(chan error, 1)
	// Pdeathsig fires when the OS thread that started the child exits, not
	// the process: keep this goroutine on its thread for the machine's life.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer lf.Close()
		cmd := exec.Command("/bin/sh", args...)
		cmd.Stdout, cmd.Stderr = lf, lf
		cmd.Env = append(cleanEnv(), "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1", "DW_CGROUPS="+strings.Join(m.cgroups, " "))
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Unshareflags: syscall.CLONE_NEWNS, // the overlay mount dies with nspawn
			Setpgid:      true,                // a ^C to the test is not a ^C to the machine
			Pdeathsig:    syscall.SIGTERM,     // the test died: power the machine off
		}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("start systemd-nspawn: %w", err)
			close(m.exited)
			return
		}
		m.cmd = cmd
		m.nspawn = cmd.Process.Pid
		writeFile(filepath.Join(m.dir, "nspawn.pid"), strconv.Itoa(m.nspawn))
		started <- nil
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()
	return <-started
}

// findInit finds the machine's PID 1: the child of nspawn that is PID 1 of
// its own PID namespace.
func (m *Machine) findInit(ctx context.Context) error {
	for {
		if pid := initOf(m.nspawn); pid > 0 {
			m.pid = pid
			m.pidStart = startTime(pid)
			writeFile(filepath.Join(m.dir, "init.pid"), strconv.Itoa(pid))
			return nil
		}
		if err := m.sleep(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("find PID 1 of machine %s: %w", m.name, err)
		}
	}
}

func initOf(parent int) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st := readFile(fmt.Sprintf("/proc/%d/status", pid))
		if field(st, "PPid:") != strconv.Itoa(parent) {
			continue
		}
		ns := strings.Fields(field(st, "NSpid:"))
		if len(ns) >= 2 && ns[len(ns)-1] == "1" {
			return pid
		}
	}
	return 0
}

// sleep waits d, failing early when the context ends or nspawn exits.
func (m *Machine) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-m.exited:
		return fmt.Errorf("systemd-nspawn exited: %v", m.waitErr)
	case <-t.C:
		return nil
	}
}

func (m *Machine) waitDocker(ctx context.Context) error {
	for {
		out, _, _, _ := m.Run(ctx, "systemctl", "is-active", "docker.service")
		switch strings.TrimSpace(out) {
		case "active":
			return nil
		case "failed":
			status, _, _, _ := m.Run(ctx, "systemctl", "status", "--no-pager", "-l", "docker.service")
			return fmt.Errorf("docker.service failed in machine %s:\n%s", m.name, status)
		}
		if err := m.sleep(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("wait for docker.service active in machine %s (last state %q): %w", m.name, strings.TrimSpace(out), err)
		}
	}
}

func (m *Machine) waitSystemd(ctx context.Context) error {
	for {
		out, _, _, _ := m.Run(ctx, "systemctl", "is-system-running")
		switch strings.TrimSpace(out) {
		case "running", "degraded":
			return nil
		}
		if err := m.sleep(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("wait for systemd in machine %s (last state %q): %w", m.name, strings.TrimSpace(out), err)
		}
	}
}

// BusyboxScript makes busybox:local from the machine's busybox-static, with
// every applet linked, when Docker does not have it. The image lives in the
// data root, which userns-remap changes (/var/lib/docker/100000.100000), so
// run it again after remapping. The scenario runner has the same in lib.sh.
const BusyboxScript = `set -e
docker image inspect busybox:local >/dev/null 2>&1 && exit 0
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/bin" "$d/tmp" "$d/etc"
cp /bin/busybox "$d/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$d/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$d/etc/passwd"
echo 'root:x:0:' > "$d/etc/group"
tar -C "$d" -c . | docker import -c 'CMD ["sh"]' -c 'ENV PATH=/bin' - busybox:local >/dev/null
`

func (m *Machine) importBusybox(ctx context.Context) error {
	_, stderr, code, err := m.Run(ctx, "sh", "-c", BusyboxScript)
	if err != nil || code != 0 {
		return fmt.Errorf("import busybox:local in machine %s: exit %d: %v: %s", m.name, code, err, stderr)
	}
	return nil
}

// ImportBusybox makes sure busybox:local exists in the machine's current
// Docker data root (needed again after userns-remap was switched on).
func (m *Machine) ImportBusybox(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.importBusybox(ctx); err != nil {
		t.Fatal(err)
	}
}

// Command is a command run inside the machine (nsenter into all of PID 1's
// namespaces, its root and working directory) with a clean environment.
// Cancelling ctx kills the whole process group, not only nsenter.
func (m *Machine) Command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"-t", strconv.Itoa(m.pid), "-a", "-r", "-w", "--"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs a command inside the machine. err is about running it at all;
// a command that ran and failed gives its exit code with err nil.
func (m *Machine) Run(ctx context.Context, args ...string) (stdout, stderr string, exitCode int, err error) {
	return m.RunInput(ctx, nil, args...)
}

// RunInput is Run with stdin.
func (m *Machine) RunInput(ctx context.Context, stdin io.Reader, args ...string) (stdout, stderr string, exitCode int, err error) {
	var o, e bytes.Buffer
	cmd := m.Command(ctx, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &o, &e
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return o.String(), e.String(), ee.ExitCode(), nil
	}
	if err != nil {
		return o.String(), e.String(), -1, fmt.Errorf("run %q in machine %s: %w", strings.Join(args, " "), m.name, err)
	}
	return o.String(), e.String(), 0, nil
}

// MustRunTimeout bounds MustRun.
var MustRunTimeout = 5 * time.Minute

// MustRun runs a command inside the machine and fails the test unless it
// exits 0; it returns stdout.
func (m *Machine) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), MustRunTimeout)
	defer cancel()
	out, errOut, code, err := m.Run(ctx, args...)
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if code != 0 {
		t.Fatalf("machine %s: %q exited %d\nstdout:\n%s\nstderr:\n%s", m.name, strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// WriteFile writes a file inside the machine, creating parent directories,
// and fails the test when it cannot.
func (m *Machine) WriteFile(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := m.PutFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
}

// PutFile writes a file inside the machine with exactly perm, creating
// parent directories.
func (m *Machine) PutFile(path string, data []byte, perm os.FileMode) error {
	p := filepath.Join(m.Root(), path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("machine %s: mkdir %s: %w", m.name, filepath.Dir(path), err)
	}
	if err := os.WriteFile(p, data, perm); err != nil {
		return fmt.Errorf("machine %s: write %s: %w", m.name, path, err)
	}
	if err := os.Chmod(p, perm); err != nil { // umask
		return fmt.Errorf("machine %s: chmod %s: %w", m.name, path, err)
	}
	return nil
}

// StopTimeout bounds the clean power-off (measured about 2 s) before the
// machine is killed.
var StopTimeout = 30 * time.Second

// Close powers the machine off (SIGTERM to nspawn), kills it if it does not
// stop in time, and removes its directory. Safe to call more than once.
func (m *Machine) Close() error {
	m.closeOnce.Do(func() {
		defer unregister(m)
		var errs []error
		if m.cmd != nil {
			select {
			case <-m.exited:
			default:
				_ = m.cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-m.exited:
				case <-time.After(StopTimeout):
					errs = append(errs, fmt.Errorf("machine %s did not power off within %s: killed", m.name, StopTimeout))
					m.kill()
					select {
					case <-m.exited:
					case <-time.After(10 * time.Second):
						errs = append(errs, fmt.Errorf("systemd-nspawn %d of machine %s still running after SIGKILL", m.nspawn, m.name))
					}
				}
			}
		}
		// PID 1 of a namespace takes every process in it along when it dies;
		// make sure it did even when nspawn went away first.
		if m.pid > 0 && startTime(m.pid) == m.pidStart && m.pidStart != "" {
			_ = syscall.Kill(m.pid, syscall.SIGKILL)
			deadline := time.Now().Add(10 * time.Second)
			for startTime(m.pid) == m.pidStart && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if startTime(m.pid) == m.pidStart {
				errs = append(errs, fmt.Errorf("PID 1 (%d) of machine %s still running", m.pid, m.name))
			}
		}
		if err := removeCgroups(m.cgroups); err != nil {
			errs = append(errs, fmt.Errorf("remove cgroups of machine %s: %w", m.name, err))
		}
		if err := os.RemoveAll(m.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove machine dir %s: %w", m.dir, err))
		}
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

func (m *Machine) kill() {
	if m.pid > 0 && startTime(m.pid) == m.pidStart {
		_ = syscall.Kill(m.pid, syscall.SIGKILL)
	}
	if m.cmd != nil {
		_ = m.cmd.Process.Kill()
	}
}

// Start boots a machine for a test and tears it down in t.Cleanup; on
// failure the cleanup first logs the machine's journal and console. Without
// root the test is skipped.
func Start(t testing.TB) *Machine { return StartWith(t, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Machine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: boots a systemd-nspawn machine")
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	m, err := Boot(context.Background(), opts)
	if err != nil {
		t.Fatalf("boot sandbox machine: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			m.logDiagnostics(t)
		}
		if err := m.Close(); err != nil {
			t.Errorf("tear down machine %s: %v", m.name, err)
		}
		if leaks := m.leaks(); len(leaks) > 0 {
			t.Errorf("machine %s left behind: %s", m.name, strings.Join(leaks, "; "))
		}
	})
	return m
}

func (m *Machine) logDiagnostics(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, _, _, err := m.Run(ctx, "journalctl", "--no-pager", "-q", "-n", "150", "-o", "short-monotonic"); err == nil {
		t.Logf("--- journal of machine %s (last 150) ---\n%s", m.name, out)
	}
	t.Logf("--- console log of machine %s (tail) ---\n%s", m.name, tail(m.logPath, 40))
}

// leaks lists what of this machine is still there after Close.
func (m *Machine) leaks() []string {
	var out []string
	if m.nspawn > 0 && processAlive(m.nspawn) && strings.Contains(readFile(fmt.Sprintf("/proc/%d/cmdline", m.nspawn)), m.name) {
		out = append(out, fmt.Sprintf("systemd-nspawn %d", m.nspawn))
	}
	if m.pid > 0 && m.pidStart != "" && startTime(m.pid) == m.pidStart {
		out = append(out, fmt.Sprintf("PID 1 %d", m.pid))
	}
	if _, err := os.Stat(m.dir); err == nil {
		out = append(out, "directory "+m.dir)
	}
	if strings.Contains(readFile("/proc/self/mountinfo"), m.dir) {
		out = append(out, "a mount under "+m.dir)
	}
	return out
}

func cleanEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=", "PAGER=cat",
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func writeFile(p, s string) { _ = os.WriteFile(p, []byte(s+"\n"), 0o644) }

func field(status, key string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// startTime is field 22 of /proc/PID/stat ("" when the process is gone),
// which tells a process from a later one that reused its PID.
func startTime(pid int) string {
	s := readFile(fmt.Sprintf("/proc/%d/stat", pid))
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fs := strings.Fields(s[i+1:])
	if len(fs) < 20 {
		return ""
	}
	return fs[19]
}

func processAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }
