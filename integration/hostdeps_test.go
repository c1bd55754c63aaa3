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
// overlay over the cached Debian tree (so the cache stays untouched), mounts
// what apt and dpkg need, and chroots into it to run hostdepsInner. Every
// mount dies with the namespace, whatever happens.
const hostdepsOuter = `set -eu
tree=$1 dir=$2 script=$3 inner=$4
mkdir -p "$dir/upper" "$dir/work" "$dir/root"
mount -t overlay overlay -o "lowerdir=$tree,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
r=$dir/root
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount -t tmpfs tmpfs "$r/tmp"
mount -t tmpfs tmpfs "$r/run"
cp /etc/resolv.conf "$r/etc/resolv.conf"
# No service starts from a package's postinst in here.
printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
chmod 755 "$r/usr/sbin/policy-rc.d"
install -m 0755 "$script" "$r/usr/local/bin/hostdeps.sh"
install -m 0755 "$inner" "$r/root/inner.sh"
exec chroot "$r" /bin/bash /root/inner.sh
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
	script, err := filepath.Abs("hostdeps.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	inner := filepath.Join(dir, "inner.sh")
	if err := os.WriteFile(inner, []byte(hostdepsInner), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private",
		"/bin/bash", "-c", hostdepsOuter, "hostdeps-outer", tree, dir, script, inner)
	out, err := cmd.CombinedOutput()
	t.Logf("chroot run (%s):\n%s", time.Since(start).Round(100*time.Millisecond), out)
	if err != nil {
		t.Fatalf("chroot run: %v", err)
	}
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
