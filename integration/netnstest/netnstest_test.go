package netnstest

import (
	"os"
	"strings"
	"testing"
)

// TestTopology builds two namespaces joined by a veth pair through a
// bridge, and checks that packets flow and everything is gone afterwards.
func TestTopology(t *testing.T) {
	var names []string
	t.Run("build", func(t *testing.T) {
		host, c := New(t), New(t)
		names = append(names, host.Name, c.Name)
		host.Bridge(t, "br0")
		Veth(t, host, "vc", c, "eth0")
		host.Enslave(t, "vc", "br0")
		host.Addr(t, "br0", "10.99.0.1/24")
		host.Addr(t, "br0", "fd99::1/64")
		c.Addr(t, "eth0", "10.99.0.2/24")
		c.Addr(t, "eth0", "fd99::2/64")
		c.Route(t, "default", "via", "10.99.0.1")
		host.ServeTCP(t, "0.0.0.0:80")
		host.ServeTCP(t, "[::]:81")
		host.ServeUDP(t, "0.0.0.0:53")
		c.ExpectTCP(t, "10.99.0.1:80", true)
		c.ExpectTCP(t, "[fd99::1]:81", true)
		c.ExpectUDP(t, "10.99.0.1:53", true)
		// The host does not forward (ip_forward is 0 in a new namespace): a timeout.
		c.ExpectTCP(t, "192.0.2.1:80", false)
		if out := c.Exec(t, "ip", "-o", "link", "show", "eth0"); !strings.Contains(out, "eth0") {
			t.Errorf("ip netns exec sees no eth0 in %s: %s", c.Name, out)
		}
		// The caller's namespace has no link of ours.
		if _, err := os.Stat("/sys/class/net/vc"); err == nil {
			t.Errorf("veth end vc exists in the caller's namespace")
		}
	})
	for _, n := range names {
		if _, err := os.Stat("/run/netns/" + n); err == nil {
			t.Errorf("namespace %s still exists after its test ended", n)
		}
	}
}

func TestSysctlRefusesGlobalKeys(t *testing.T) {
	ns := New(t)
	ft := &fatalRecorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		ns.Sysctl(ft, "kernel.hostname", "x")
	}()
	if !ft.failed {
		t.Errorf("Sysctl accepted a global key")
	}
}

type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Fatalf(string, ...any) { f.failed = true; panic("fatal") }
func (f *fatalRecorder) Helper()               {}
