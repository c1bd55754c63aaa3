package firewall

// Real packets through the real kernel. Namespaces joined by veth pairs
// stand for the parts of a Docker host:
//
//	c1, c3 (172.30.0.2, .3; fd30::2) ─┐
//	                                  br-app ─┐
//	c2 (172.31.0.2; fd31::2) ─── br-secure ───┤ host ── wan0 ── wan  (198.51.100.1, 2001:db8:2::1)
//	                                          │     └── wan1 ── wan2 (203.0.113.1)
//
// host routes between them like dockerd's host does, and a nat table in it
// publishes c1:80 as host:8080, like `docker run -p 8080:80`. Every check
// is made once before dockward's table exists (everything must get
// through, or the check would prove nothing) and once after.

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/integration/netnstest"
	"golang.org/x/sys/unix"
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
	h.Addr(t, "br-secure", "fd31::1/64")
	for _, c := range []struct {
		ns      *netnstest.NS
		port    string
		bridge  string
		addrs   []string
		gateway []string
	}{
		{tp.c1, "v-c1", "br-app", []string{"172.30.0.2/24", "fd30::2/64"}, []string{"172.30.0.1", "fd30::1"}},
		{tp.c3, "v-c3", "br-app", []string{"172.30.0.3/24"}, []string{"172.30.0.1"}},
		{tp.c2, "v-c2", "br-secure", []string{"172.31.0.2/24", "fd31::2/64"}, []string{"172.31.0.1", "fd31::1"}},
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
	tp.wan.Route(t, "fd31::/64", "via", "2001:db8:2::2")
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
	tp.c2.ServeTCP(t, ":80")
	return tp
}

// forgetNeighbours empties the host's and c2's neighbour caches (ARP and
// IPv6 ND), so that the next connection between them resolves its
// link-layer addresses anew, through whatever table is in place; a cached
// entry would let it by without. "nud all" takes permanent entries too
// (c2MustSolicitHost's): a plain flush leaves them.
func forgetNeighbours(t *testing.T, tp *topology) {
	tp.host.IP(t, "neigh", "flush", "dev", "br-secure", "nud", "all")
	tp.c2.IP(t, "neigh", "flush", "dev", "eth0", "nud", "all")
}

// c2MustSolicitHost makes the host know c2's link-layer address for good
// (a permanent entry: the host sends it no solicitation) and c2 forget the
// host's, so that c2 must send a neighbour solicitation to the host before
// it can answer the host at all.
func c2MustSolicitHost(t *testing.T, tp *topology) {
	forgetNeighbours(t, tp)
	mac := strings.TrimSpace(tp.c2.Exec(t, "cat", "/sys/class/net/eth0/address"))
	tp.host.IP(t, "neigh", "replace", "fd31::2", "lladdr", mac, "dev", "br-secure", "nud", "permanent")
}

// flow is one connection attempt and whether it must get through once the
// firewall is in place.
type flow struct {
	name  string
	from  func(*topology) *netnstest.NS
	proto string
	to    string
	pass  bool
	prep  func(*testing.T, *topology) // before the attempt; nil: nothing
}

var flows = []flow{
	{"app to allowed tcp/80", func(tp *topology) *netnstest.NS { return tp.c1 }, "tcp", "198.51.100.1:80", true, nil},
	{"app to tcp/8080, not allowed", func(tp *topology) *netnstest.NS { return tp.c1 }, "tcp", "198.51.100.1:8080", false, nil},
	{"app to allowed tcp/80 over IPv6", func(tp *topology) *netnstest.NS { return tp.c1 }, "tcp", "[2001:db8:2::1]:80", true, nil},
	{"app to tcp/8080 over IPv6, not allowed", func(tp *topology) *netnstest.NS { return tp.c1 }, "tcp", "[2001:db8:2::1]:8080", false, nil},
	{"app to allowed udp/53", func(tp *topology) *netnstest.NS { return tp.c1 }, "udp", "198.51.100.1:53", true, nil},
	{"app to udp/5353, not allowed", func(tp *topology) *netnstest.NS { return tp.c1 }, "udp", "198.51.100.1:5353", false, nil},
	{"app to a container on its own bridge", func(tp *topology) *netnstest.NS { return tp.c1 }, "tcp", "172.30.0.3:8080", true, nil},
	{"app to the host (not internal)", func(tp *topology) *netnstest.NS { return tp.c1 }, "tcp", "172.30.0.1:80", true, nil},
	{"internal to the outside", func(tp *topology) *netnstest.NS { return tp.c2 }, "tcp", "198.51.100.1:80", false, nil},
	{"internal to the host's gateway address", func(tp *topology) *netnstest.NS { return tp.c2 }, "tcp", "172.31.0.1:80", false, nil},
	{"internal to the host's other address", func(tp *topology) *netnstest.NS { return tp.c2 }, "tcp", "198.51.100.2:80", false, nil},
	{"internal to the host's gateway address over IPv6", func(tp *topology) *netnstest.NS { return tp.c2 }, "tcp", "[fd31::1]:80", false, nil},
	{"internal to the outside over IPv6", func(tp *topology) *netnstest.NS { return tp.c2 }, "tcp", "[2001:db8:2::1]:80", false, nil},
	// The host may open connections into an internal network: from the
	// container's side they are replies (established). Its neighbours are
	// forgotten first, so that address resolution goes through the table
	// too: ARP never meets an inet table, but IPv6 neighbour discovery
	// does, and conntrack leaves it untracked.
	{"host to an internal container (ARP)", func(tp *topology) *netnstest.NS { return tp.host }, "tcp", "172.31.0.2:80", true, forgetNeighbours},
	{"host to an internal container over IPv6 (its neighbour advertisement)", func(tp *topology) *netnstest.NS { return tp.host }, "tcp", "[fd31::2]:80", true, forgetNeighbours},
	{"host to an internal container over IPv6 (its neighbour solicitation)", func(tp *topology) *netnstest.NS { return tp.host }, "tcp", "[fd31::2]:80", true, c2MustSolicitHost},
	// Neighbour discovery is the only ICMPv6 let through to the host, and
	// only as RFC 4861 has it (hop limit 255). "icmpv6/TYPE/HOPLIMIT".
	{"internal ICMPv6 echo request to the host", func(tp *topology) *netnstest.NS { return tp.c2 }, "icmpv6/128/64", "fd31::1", false, nil},
	{"internal router solicitation to the host", func(tp *topology) *netnstest.NS { return tp.c2 }, "icmpv6/133/255", "fd31::1", false, nil},
	{"internal neighbour solicitation, hop limit not 255", func(tp *topology) *netnstest.NS { return tp.c2 }, "icmpv6/135/64", "fd31::1", false, nil},
	{"internal neighbour solicitation", func(tp *topology) *netnstest.NS { return tp.c2 }, "icmpv6/135/255", "fd31::1", true, nil},
	{"allowed source to the published port", func(tp *topology) *netnstest.NS { return tp.wan }, "tcp", "198.51.100.2:8080", true, nil},
	{"other source to the published port", func(tp *topology) *netnstest.NS { return tp.wan2 }, "tcp", "203.0.113.2:8080", false, nil},
	{"allowed source straight to the container port", func(tp *topology) *netnstest.NS { return tp.wan }, "tcp", "172.30.0.2:80", false, nil},
}

func checkFlows(t *testing.T, tp *topology, firewalled bool) {
	t.Helper()
	for _, f := range flows {
		want := f.pass || !firewalled
		ns := f.from(tp)
		if f.prep != nil {
			f.prep(t, tp)
		}
		switch proto, _, _ := strings.Cut(f.proto, "/"); proto {
		case "tcp":
			ns.ExpectTCP(t, f.to, want)
		case "udp":
			ns.ExpectUDP(t, f.to, want)
		case "icmpv6":
			if got := icmpv6ReachesHost(t, tp, ns, f.proto, f.to); got != want {
				t.Errorf("%s to %s from %s: reached the host: %v, want %v", f.proto, f.to, ns.Name, got, want)
			}
		default:
			t.Fatalf("flow %q: unknown protocol %q", f.name, f.proto)
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

// icmpv6ReachesHost sends one ICMPv6 message from ns to addr, spec being
// "icmpv6/TYPE/HOPLIMIT", and reports whether the host's IP stack got it:
// a raw ICMPv6 socket in the host sees what passed the input hook, and
// sees it before the kernel's own checks (neighbour discovery's hop limit
// rule among them) can discard it.
func icmpv6ReachesHost(t *testing.T, tp *topology, ns *netnstest.NS, spec, addr string) bool {
	t.Helper()
	parts := strings.Split(spec, "/")
	if len(parts) != 3 {
		t.Fatalf("bad ICMPv6 flow %q", spec)
	}
	typ, err1 := strconv.Atoi(parts[1])
	hops, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil {
		t.Fatalf("bad ICMPv6 flow %q", spec)
	}
	var listener net.PacketConn
	if err := tp.host.Do(func() (err error) {
		listener, err = net.ListenPacket("ip6:ipv6-icmp", "::")
		return err
	}); err != nil {
		t.Fatalf("raw ICMPv6 socket in the host: %v", err)
	}
	defer listener.Close()

	// A marker in the body tells our message from the namespace's own
	// ICMPv6 (neighbour discovery, MLD).
	var marker [8]byte
	if _, err := rand.Read(marker[:]); err != nil {
		t.Fatal(err)
	}
	msg := append([]byte{byte(typ), 0, 0, 0, 0, 0, 0, 0}, marker[:]...) // the kernel fills in the checksum
	if typ == 135 {
		// A neighbour solicitation's body is the target address.
		target := net.ParseIP(addr).To16()
		msg = append(append([]byte{byte(typ), 0, 0, 0, 0, 0, 0, 0}, target...), marker[:]...)
	}
	err := ns.Do(func() error {
		c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		defer c.Close()
		rc, err := c.(*net.IPConn).SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, hops)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("set hop limit: %w", serr)
		}
		_, err = c.WriteTo(msg, &net.IPAddr{IP: net.ParseIP(addr)})
		return err
	})
	if err != nil {
		t.Fatalf("send %s from %s: %v", spec, ns.Name, err)
	}
	_ = listener.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	buf := make([]byte, 1500)
	for {
		n, _, err := listener.ReadFrom(buf)
		if err != nil {
			return false // nothing of ours within the deadline
		}
		if n == len(msg) && buf[0] == byte(typ) && bytes.HasSuffix(buf[:n], marker[:]) {
			return true
		}
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
