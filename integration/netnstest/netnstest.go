// Package netnstest is the tier-1 test harness: throwaway named network
// namespaces joined by veth pairs and bridges, so that tests can load
// nftables rules into a kernel and send real packets through them without
// ever touching the network of the machine they run on.
//
// Every command that creates a link runs with `ip -n NAME`, inside a
// namespace this package made; nothing is created in the caller's own
// namespace. Everything is removed in t.Cleanup, also when the test fails;
// Leftovers reports what a crashed test binary may have left behind.
package netnstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
)

// Prefix starts the name of every namespace this package creates, so that
// Leftovers can tell them from anyone else's.
const Prefix = "dwtest-"

// cmdTimeout bounds every command this package runs: a hung `ip` must fail
// the test, not stall the suite.
const cmdTimeout = 30 * time.Second

// RequireRoot skips the test unless it runs as root with what namespaces
// need (ip netns add needs CAP_SYS_ADMIN, links need CAP_NET_ADMIN).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces (ip netns add)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2: the ip command is not installed")
	}
}

// NS is one named network namespace made for a test.
type NS struct {
	Name   string
	handle netns.NsHandle
}

// New makes a fresh named namespace (only lo, which is brought up) and
// removes it when the test ends. It skips the test when not root.
func New(t testing.TB) *NS {
	t.Helper()
	RequireRoot(t)
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random namespace name: %v", err)
	}
	name := Prefix + hex.EncodeToString(b[:])
	if out, err := run(context.Background(), "ip", "netns", "add", name); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, handle: netns.None()}
	// Registered before anything else can fail, so the namespace goes away
	// on every path out of the test.
	t.Cleanup(func() {
		if ns.handle.IsOpen() {
			_ = ns.handle.Close()
		}
		if out, err := run(context.Background(), "ip", "netns", "del", name); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	ns.handle = h
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// Path is the namespace's bind mount, as `ip netns` made it.
func (n *NS) Path() string { return filepath.Join("/run/netns", n.Name) }

// Fd is an open file descriptor of the namespace, valid until the test
// ends; pass it to nftables.WithNetNSFd.
func (n *NS) Fd() int { return int(n.handle) }

// NFTOpts are the nftables connection options that reach this namespace,
// for code that makes its own connections (nftables.New(opts...)).
func (n *NS) NFTOpts() []nftables.ConnOption {
	return []nftables.ConnOption{nftables.WithNetNSFd(n.Fd())}
}

// NFT returns an nftables connection that talks to this namespace. The
// netlink library switches a locked thread into the namespace when it opens
// its socket, so the caller's thread never changes namespace.
func (n *NS) NFT(t testing.TB, opts ...nftables.ConnOption) *nftables.Conn {
	t.Helper()
	c, err := nftables.New(append([]nftables.ConnOption{nftables.WithNetNSFd(n.Fd())}, opts...)...)
	if err != nil {
		t.Fatalf("nftables connection to %s: %v", n.Name, err)
	}
	return c
}

// Run runs a command inside the namespace (ip netns exec) and returns its
// combined output. It does not fail the test.
func (n *NS) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return run(ctx, append([]string{"ip", "netns", "exec", n.Name}, args...)...)
}

// Exec runs a command inside the namespace and fails the test when it fails.
func (n *NS) Exec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Run(args...)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// ExecStdin is Exec with the given standard input (for `nft -f -`).
func (n *NS) ExecStdin(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// IP runs `ip -n NAME ARGS...`: link and address changes made this way can
// only ever affect this namespace.
func (n *NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := run(ctx, append([]string{"ip", "-n", n.Name}, args...)...)
	if err != nil {
		t.Fatalf("ip -n %s %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// Sysctl sets a per-namespace sysctl (net.*) inside the namespace.
func (n *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	if !strings.HasPrefix(key, "net.") {
		// Anything outside net.* is global: setting it here would change
		// the machine the tests run on.
		t.Fatalf("sysctl %s: only per-namespace net.* keys may be set", key)
	}
	n.Exec(t, "sysctl", "-q", "-w", key+"="+value)
}

// Bridge creates a bridge in the namespace and brings it up.
func (n *NS) Bridge(t testing.TB, name string) {
	t.Helper()
	n.IP(t, "link", "add", name, "type", "bridge")
	n.IP(t, "link", "set", name, "up")
}

// Enslave attaches dev to bridge (both in this namespace).
func (n *NS) Enslave(t testing.TB, dev, bridge string) {
	t.Helper()
	n.IP(t, "link", "set", dev, "master", bridge)
}

// Addr adds an address (CIDR) to dev. IPv6 addresses skip duplicate
// address detection, so they are usable at once.
func (n *NS) Addr(t testing.TB, dev, cidr string) {
	t.Helper()
	args := []string{"addr", "add", cidr, "dev", dev}
	if strings.Contains(cidr, ":") {
		args = append(args, "nodad")
	}
	n.IP(t, args...)
}

// Route adds a route: Route(t, "default", "via", "10.0.0.1").
func (n *NS) Route(t testing.TB, args ...string) {
	t.Helper()
	family := "-4"
	for _, a := range args {
		if strings.Contains(a, ":") {
			family = "-6"
		}
	}
	n.IP(t, append([]string{family, "route", "add"}, args...)...)
}

// Veth creates a veth pair: aName in namespace a, bName in namespace b, both
// up. The pair is created inside a and its peer moved straight into b, so no
// end ever exists in the caller's namespace. Deleting either namespace
// destroys the pair.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	a.IP(t, "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
	a.IP(t, "link", "set", aName, "up")
	b.IP(t, "link", "set", bName, "up")
}

// Do runs fn on an OS thread that has joined the namespace, for code that
// must create sockets there (listeners, dialers). The thread is never
// handed back to the Go scheduler: its goroutine exits still locked, and the
// runtime then ends the thread instead of reusing it in the wrong namespace.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(n.handle); err != nil {
			errc <- fmt.Errorf("join namespace %s: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func run(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return string(out), err
}

// Leftovers lists the namespaces this package created that still exist, and
// links in the caller's own namespace whose name this package's tests use
// (there should never be any: links are created inside namespaces only).
// `make test` calls it at its end (through cmd/netnstest-check) to prove
// that every test cleaned up.
func Leftovers() ([]string, error) {
	var left []string
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read /run/netns: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), Prefix) {
			left = append(left, "netns "+e.Name())
		}
	}
	links, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return nil, fmt.Errorf("read /sys/class/net: %w", err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Name(), "dwt") {
			left = append(left, "link "+l.Name())
		}
	}
	return left, nil
}
