package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/integration/sandbox"
)

// hostdepsOuter runs in a private mount namespace (unshare -m): it lays an
// overlay over a Debian root (so that root stays untouched), mounts what
// apt, dpkg and systemd-nspawn need, and makes the overlay the namespace's
// root to run the inner script. Every mount dies with the namespace,
// whatever happens. pivot_root, not a plain chroot: the kernel refuses a
// user namespace to a chrooted process (measured: Docker's userns-remapped
// containers in a machine started from a chroot failed with runc's "can't
// get final child's PID from pipe: EOF").
const hostdepsOuter = `set -eu
tree=$1 dir=$2 script=$3 inner=$4
mkdir -p "$dir/upper" "$dir/work" "$dir/root" "$dir/tmp"
mount -t overlay overlay -o "lowerdir=$tree,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
r=$dir/root
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount -t tmpfs tmpfs "$r/run"
chmod 1777 "$dir/tmp"
mount --bind "$dir/tmp" "$r/tmp"
cp /etc/resolv.conf "$r/etc/resolv.conf"
# An installed host has a machine id (the sandbox tree is emptied of its own).
tr -d - </proc/sys/kernel/random/uuid >"$r/etc/machine-id"
# No service starts from a package's postinst in here.
printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
chmod 755 "$r/usr/sbin/policy-rc.d"
install -m 0755 "$script" "$r/usr/local/bin/hostdeps.sh"
install -m 0755 "$inner" "$r/root/inner.sh"
if [ -n "${DW_SRC:-}" ]; then
	# make demo: the newcomer's Go (with this host's module and build
	# caches, to spare the downloads and compiles), this checkout's files,
	# and /sys for systemd-nspawn and the machine's cgroups.
	mount --rbind /sys "$r/sys"
	mkdir -p "$r/usr/local/go" "$r/root/go/pkg/mod" "$r/root/.cache/go-build" "$r/src"
	mount --bind -o ro "$DW_GOROOT" "$r/usr/local/go"
	mount --bind "$DW_GOMODCACHE" "$r/root/go/pkg/mod"
	mount --bind "$DW_GOCACHE" "$r/root/.cache/go-build"
	(cd "$DW_SRC" && git ls-files -z | tar --null -T - -c) | tar -C "$r/src" -x
fi
unset DW_SRC DW_GOROOT DW_GOMODCACHE DW_GOCACHE
mkdir -p "$r/.oldroot"
cd "$r"
pivot_root . .oldroot
exec chroot . /bin/bash -c 'umount -l /.oldroot && rmdir /.oldroot && exec /bin/bash /root/inner.sh'
`

// hostdepsInner is the fresh Debian host: no debootstrap, no systemd-nspawn
// (the tree never had them) and, once dpkg removed it, no nftables. Each
// step prints "--- NAME" and ends with "exit=CODE".
const hostdepsInner = `set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
step() { echo "--- $1"; shift; "$@" 2>&1; echo "exit=$?"; }
dpkg -r nftables >/dev/null 2>&1
for c in debootstrap systemd-nspawn nft; do
	if command -v "$c" >/dev/null; then echo "precondition: $c is present"; exit 3; fi
done
step user-demo setpriv --reuid=65534 --regid=65534 --clear-groups /usr/local/bin/hostdeps.sh demo
step user-test setpriv --reuid=65534 --regid=65534 --clear-groups /usr/local/bin/hostdeps.sh test
step root-demo hostdeps.sh demo
step root-test hostdeps.sh test
step debootstrap debootstrap --version
step systemd-nspawn systemd-nspawn --version
step nft nft --version
step root-test-again hostdeps.sh test
step user-demo-again setpriv --reuid=65534 --regid=65534 --clear-groups /usr/local/bin/hostdeps.sh demo
`

// TestHostDepsOnAFreshHost: integration/hostdeps.sh, which make demo, make
// test and CI run first, on a fresh Debian host (a chroot of the sandbox's
// Debian tree, which lacks debootstrap and systemd-nspawn, with nftables
// removed): as a user it names the packages and prints the sudo line; as
// root it installs them from the Debian mirror, saying what and why, after
// which debootstrap, systemd-nspawn and nft run; a second run is silent.
// The chroot shares this host's network only to download; nothing in it
// starts a service or touches a firewall.
func TestHostDepsOnAFreshHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chroot and apt-get in a copy of the sandbox tree")
	}
	if testing.Short() {
		t.Skip("downloads packages from the Debian mirror; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), sandbox.BuildTimeout+10*time.Minute)
	defer cancel()
	tree, _, err := sandbox.EnsureTree(ctx, sandbox.DefaultSuite, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	out := runFreshHost(ctx, t, tree, hostdepsInner, nil)
	steps := splitSteps(string(out))

	want := func(step, code string, contains ...string) {
		t.Helper()
		s, ok := steps[step]
		if !ok {
			t.Errorf("step %s did not run", step)
			return
		}
		if !strings.HasSuffix(strings.TrimSpace(s), "exit="+code) {
			t.Errorf("step %s: want exit=%s:\n%s", step, code, s)
		}
		for _, c := range contains {
			if !strings.Contains(s, c) {
				t.Errorf("step %s: output lacks %q:\n%s", step, c, s)
			}
		}
	}
	want("user-demo", "1", "debootstrap", "systemd-container",
		"sudo make demo", "sudo apt-get update && sudo apt-get install -y --no-install-recommends")
	want("user-test", "0", "sudo make test")
	want("root-demo", "0", "installing them with apt-get", "debootstrap (debootstrap): builds the sandbox machine's Debian root file system",
		"systemd-container (systemd-nspawn): boots the sandbox machine", "installed: ")
	want("root-test", "0", "nftables (nft)", "installed: nftables")
	want("debootstrap", "0", "debootstrap")
	want("systemd-nspawn", "0", "systemd ")
	want("nft", "0", "nftables v")
	// Once installed, the check is silent: nothing missing, nothing said.
	for _, s := range []string{"root-test-again", "user-demo-again"} {
		if got := strings.TrimSpace(steps[s]); got != "exit=0" {
			t.Errorf("step %s: want no output and exit=0, got:\n%s", s, got)
		}
	}
	if strings.Contains(steps["root-demo"], "nftables") {
		t.Errorf("make demo's check installed nftables, which only make test needs:\n%s", steps["root-demo"])
	}
}

// runFreshHost runs inner as a script in a chroot of an overlay over tree,
// in a private mount namespace, and returns its output.
func runFreshHost(ctx context.Context, t *testing.T, tree, inner string, env []string) string {
	t.Helper()
	script, err := filepath.Abs("hostdeps.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	innerPath := filepath.Join(dir, "inner.sh")
	if err := os.WriteFile(innerPath, []byte(inner), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Its own PID namespace too: the fresh host's /proc shows its processes
	// only, and they all die with its first one.
	cmd := exec.CommandContext(ctx, "unshare", "-m", "-p", "-f", "--propagation", "private",
		"/bin/bash", "-c", hostdepsOuter, "fresh-host", tree, filepath.Join(dir, "host"), script, innerPath)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("chroot run (%s):\n%s", time.Since(start).Round(100*time.Millisecond), out)
	if err != nil {
		t.Fatalf("chroot run: %v", err)
	}
	return string(out)
}

// freshDemoInner: a newcomer's fresh Debian host with Go and make, and
// nothing else of ours: make demo, as root.
const freshDemoInner = `set -u
then_test=${DOCKWARD_FRESH_HOST_TEST:-}
# The make test below must not run this test again inside.
unset DOCKWARD_FRESH_HOST_DEMO DOCKWARD_FRESH_HOST_ROOT DOCKWARD_FRESH_HOST_TEST DOCKWARD_BIN
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root GOTOOLCHAIN=local
dpkg -r nftables >/dev/null 2>&1
for c in debootstrap systemd-nspawn nft; do
	if command -v "$c" >/dev/null; then echo "precondition: $c is present"; exit 3; fi
done
if ! command -v make >/dev/null; then
	apt-get update -qq && apt-get install -y -qq --no-install-recommends make >/dev/null || exit 4
fi
cd /src
echo "--- make-demo"
make demo 2>&1
echo "exit=$?"
if [ "$then_test" = 1 ]; then
	echo "--- make-test"
	make test 2>&1
	echo "exit=$?"
fi
`

// TestFreshHostMakeDemo is issue 13's "make demo on a fresh machine", run
// for real: in a fresh Debian 12 root (DOCKWARD_FRESH_HOST_ROOT, or one
// this test debootstraps: minbase bookworm), without debootstrap,
// systemd-nspawn and nftables, with Go (this host's) and make, `make demo`
// as root installs what it needs, builds the machine's tree with the
// debootstrap it installed, boots the machine with the systemd-nspawn it
// installed and runs the demo to the end. It downloads packages and two
// Debian trees (minutes): only with DOCKWARD_FRESH_HOST_DEMO=1. With
// DOCKWARD_FRESH_HOST_TEST=1 as well, `make test` runs there afterwards
// (every test; its leak check sees the whole host's cgroups and links, so
// run it on a host where nothing else runs tests).
//
// Why bookworm: measured, with trixie's systemd-nspawn 257 as the host's,
// userns-remapped containers inside the machine fail (runc: mount proc
// "operation not permitted"); the harness is proven with nspawn 252.
func TestFreshHostMakeDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chroot, apt-get and systemd-nspawn")
	}
	if os.Getenv("DOCKWARD_FRESH_HOST_DEMO") != "1" {
		t.Skip("set DOCKWARD_FRESH_HOST_DEMO=1: downloads packages and a Debian tree, several minutes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	tree := os.Getenv("DOCKWARD_FRESH_HOST_ROOT")
	if tree == "" {
		tree = filepath.Join(t.TempDir(), "bookworm")
		start := time.Now()
		cmd := exec.CommandContext(ctx, "unshare", "-m", "debootstrap", "--variant=minbase", "bookworm", tree, sandbox.Mirror())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("debootstrap a fresh bookworm host: %v\n%s", err, out)
		}
		t.Logf("debootstrapped a fresh bookworm host in %s", time.Since(start).Round(time.Second))
	}
	src, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	goEnv := func(k string) string {
		out, err := exec.Command("go", "env", k).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", k, err)
		}
		return strings.TrimSpace(string(out))
	}
	out := runFreshHost(ctx, t, tree, freshDemoInner, []string{"DW_SRC=" + src,
		"DW_GOROOT=" + goEnv("GOROOT"), "DW_GOMODCACHE=" + goEnv("GOMODCACHE"), "DW_GOCACHE=" + goEnv("GOCACHE")})
	demo := splitSteps(out)["make-demo"]
	for _, want := range []string{
		"hostdeps: make demo needs packages this machine lacks; installing them with apt-get:",
		"hostdeps: installed: debootstrap systemd-container",
		"sandbox: built the Debian trixie tree",
		"The machine is powered off and removed.",
	} {
		if !strings.Contains(demo, want) {
			t.Errorf("make demo's output lacks %q", want)
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(demo), "exit=0") {
		t.Errorf("make demo on the fresh host did not exit 0")
	}
	if os.Getenv("DOCKWARD_FRESH_HOST_TEST") == "1" {
		if tst := splitSteps(out)["make-test"]; !strings.HasSuffix(strings.TrimSpace(tst), "exit=0") {
			t.Errorf("make test on the fresh host, after make demo, did not exit 0")
		}
	}
}

var stepLine = regexp.MustCompile(`(?m)^--- (\S+)$`)

// splitSteps maps "--- NAME" sections of the chroot's output to their text.
func splitSteps(out string) map[string]string {
	steps := map[string]string{}
	idx := stepLine.FindAllStringSubmatchIndex(out, -1)
	for i, m := range idx {
		end := len(out)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		steps[out[m[2]:m[3]]] = out[m[1]:end]
	}
	return steps
}
