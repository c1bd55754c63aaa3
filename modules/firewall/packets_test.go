package firewall

// Real packets through the real kernel. Namespaces joined by veth pairs
// stand for the parts of a Docker host:
//
//	c1, c3 (172.30.0.2, .3; fd30::2) ─┐
//	                                  br-app ─┐
//	c2 (172.31.0.2) ──────────── br-secure ───┤ host ── wan0 ── wan  (198.51.100.1, 2001:db8:2::1)
//	                                          │     └── wan1 ── wan2 (203.0.113.1)
//
// host routes between them like dockerd's host does, and a nat table in it
// publishes c1:80 as host:8080, like `docker run -p 8080:80`. Every check
// is made once before dockward's table exists (everything must get
// through, or the check would prove nothing) and once after.

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dockward/dockward/integration/netnstest"
)

const packetsHCL = `
firewall {
  network "app" {
    bridge = "br-app"
    egress_allow {
      proto = "tcp"
      ports = [80]
      to    = ["198.51.100.0/24", "2001:db8:2::/64"]
    }
    egress_allow {
      proto = "udp"
      ports = [53]
      to    = ["198.51.100.1"]
    }
    ingress_allow {
      ports = [8080]
      from  = ["198.51.100.0/24"]
    }
  }
  network "secure" {
    bridge   = "br-secure"
    internal = true
  }
}`

const natSim = `
table ip natsim {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname { "wan0", "wan1" } tcp dport 8080 dnat to 172.30.0.2:80
	}
}
`

type topology struct {
	host, wan, wan2, c1, c2, c3 *netnstest.NS
}

func buildTopology(t *testing.T) *topology {
	tp := &topology{netnstest.New(t), netnstest.New(t), netnstest.New(t), netnstest.New(t), netnstest.New(t), netnstest.New(t)}
	h := tp.host
	h.Sysctl(t, "net.ipv4.ip_forward", "1")
	h.Sysctl(t, "net.ipv6.conf.all.forwarding", "1")
	h.Bridge(t, "br-app")
	h.Bridge(t, "br-secure")
	h.Addr(t, "br-app", "172.30.0.1/24")
	h.Addr(t, "br-app", "fd30::1/64")
	h.Addr(t, "br-secure", "172.31.0.1/24")
	for _, c := range []struct {
		ns      *netnstest.NS
		port    string
		bridge  string
		addrs   []string
		gateway []string
	}{
		{tp.c1, "v-c1", "br-app", []string{"172.30.0.2/24", "fd30::2/64"}, []string{"172.30.0.1", "fd30::1"}},
		{tp.c3, "v-c3", "br-app", []string{"172.30.0.3/24"}, []string{"172.30.0.1"}},
		{tp.c2, "v-c2", "br-secure", []string{"172.31.0.2/24"}, []string{"172.31.0.1"}},
	} {
		netnstest.Veth(t, h, c.port, c.ns, "eth0")
		h.Enslave(t, c.port, c.bridge)
		for _, a := range c.addrs {
			c.ns.Addr(t, "eth0", a)
		}
		for _, g := range c.gateway {
			c.ns.Route(t, "default", "via", g)
		}
	}
	netnstest.Veth(t, h, "wan0", tp.wan, "eth0")
	h.Addr(t, "wan0", "198.51.100.2/24")
	h.Addr(t, "wan0", "2001:db8:2::2/64")
	tp.wan.Addr(t, "eth0", "198.51.100.1/24")
	tp.wan.Addr(t, "eth0", "2001:db8:2::1/64")
	tp.wan.Route(t, "172.16.0.0/12", "via", "198.51.100.2")
	tp.wan.Route(t, "fd30::/64", "via", "2001:db8:2::2")
	netnstest.Veth(t, h, "wan1", tp.wan2, "eth0")
	h.Addr(t, "wan1", "203.0.113.2/24")
	tp.wan2.Addr(t, "eth0", "203.0.113.1/24")
	tp.wan2.Route(t, "172.16.0.0/12", "via", "203.0.113.2")
	h.ExecStdin(t, natSim, "nft", "-f", "-")

	tp.wan.ServeTCP(t, ":80")
	tp.wan.ServeTCP(t, ":8080")
	tp.wan.ServeUDP(t, ":53")
	tp.wan.ServeUDP(t, ":5353")
	h.ServeTCP(t, ":80")
	tp.c1.ServeTCP(t, ":80")
	tp.c3.ServeTCP(t, ":8080")
	return tp
}

// flow is one connection attempt and whether it must get through once the
// firewall is in place.
type flow struct {
	name  string
	from  func(*topology) *netnstest.NS
	proto string
	to    string
	pass  bool
}

var flows = []flow{
	{"app to allowed tcp/80", func(tp *topology) *netnstest.NS { return tp.c1 }, "tcp", "198.51.100.1:80", true},
	{"app to tcp/8080, not allowed", func(tp *topology) *netnstest.NS { return tp.c1 }, "tcp", "198.51.100.1:8080", false},
	{"app to allowed tcp/80 over IPv6", func(tp *topology) *netnstest.NS { return tp.c1 }, "tcp", "[2001:db8:2::1]:80", true},
	{"app to tcp/8080 over IPv6, not allowed", func(tp *topology) *netnstest.NS { return tp.c1 }, "tcp", "[2001:db8:2::1]:8080", false},
	{"app to allowed udp/53", func(tp *topology) *netnstest.NS { return tp.c1 }, "udp", "198.51.100.1:53", true},
	{"app to udp/5353, not allowed", func(tp *topology) *netnstest.NS { return tp.c1 }, "udp", "198.51.100.1:5353", false},
	{"app to a container on its own bridge", func(tp *topology) *netnstest.NS { return tp.c1 }, "tcp", "172.30.0.3:8080", true},
	{"app to the host (not internal)", func(tp *topology) *netnstest.NS { return tp.c1 }, "tcp", "172.30.0.1:80", true},
	{"internal to the outside", func(tp *topology) *netnstest.NS { return tp.c2 }, "tcp", "198.51.100.1:80", false},
	{"internal to the host's gateway address", func(tp *topology) *netnstest.NS { return tp.c2 }, "tcp", "172.31.0.1:80", false},
	{"internal to the host's other address", func(tp *topology) *netnstest.NS { return tp.c2 }, "tcp", "198.51.100.2:80", false},
	{"allowed source to the published port", func(tp *topology) *netnstest.NS { return tp.wan }, "tcp", "198.51.100.2:8080", true},
	{"other source to the published port", func(tp *topology) *netnstest.NS { return tp.wan2 }, "tcp", "203.0.113.2:8080", false},
	{"allowed source straight to the container port", func(tp *topology) *netnstest.NS { return tp.wan }, "tcp", "172.30.0.2:80", false},
}

func checkFlows(t *testing.T, tp *topology, firewalled bool) {
	t.Helper()
	for _, f := range flows {
		want := f.pass || !firewalled
		ns := f.from(tp)
		switch f.proto {
		case "tcp":
			ns.ExpectTCP(t, f.to, want)
		case "udp":
			ns.ExpectUDP(t, f.to, want)
		}
		if t.Failed() {
			t.Fatalf("after %q (firewall in place: %v)", f.name, firewalled)
		}
	}
}

func TestPackets(t *testing.T) {
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
		t.Logf("br_netfilter is not loaded: traffic inside a bridge does not reach the forward hook, so that check proves less")
	}
	tp := buildTopology(t)
	t.Run("before", func(t *testing.T) { checkFlows(t, tp, false) })
	if t.Failed() {
		t.Fatal("the topology does not carry traffic without a firewall; the checks below would prove nothing")
	}

	m := NewWith(decodeHCL(t, packetsHCL), NewNFT(tp.host.NFTOpts()...), nil)
	mustApply(t, m, mustPlan(t, m))
	t.Run("after", func(t *testing.T) { checkFlows(t, tp, true) })

	// The drops were ours: every drop counter saw packets.
	out := tp.host.Exec(t, "nft", "list", "table", "inet", "dockward")
	for _, chain := range []string{"egress_app", "ingress_app", "egress_secure", "input"} {
		if n := dropCount(t, out, chain); n == 0 {
			t.Errorf("chain %s dropped nothing:\n%s", chain, out)
		}
	}
	if p := mustPlan(t, m); !p.Empty() {
		t.Errorf("plan after the traffic (counters moved): %+v", p.Changes)
	}
}

var counterRE = regexp.MustCompile(`counter packets (\d+) bytes \d+ drop`)

// dropCount returns the packets counted by the drop rule of chain in an
// `nft list table` output.
func dropCount(t *testing.T, listing, chain string) int {
	t.Helper()
	i := strings.Index(listing, "chain "+chain+" {")
	if i < 0 {
		t.Fatalf("no chain %s in:\n%s", chain, listing)
	}
	body := listing[i:]
	body = body[:strings.Index(body, "}")]
	m := counterRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no counted drop in chain %s:\n%s", chain, body)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
