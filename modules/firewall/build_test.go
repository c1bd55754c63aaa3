package firewall

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent/agenttest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

const exampleHCL = `
firewall {
  network "bridge" {
    egress_allow {
      proto = "tcp"
      ports = [80, 443]
      to    = ["0.0.0.0/0", "::/0"]
    }
    egress_allow {
      proto = "udp"
      ports = [53]
      to    = ["10.0.0.2"]
    }
    ingress_allow {
      ports = [8080]
      from  = ["10.0.0.0/8"]
    }
  }
  network "isolated-net" {
    internal = true
    create   = true
  }
}`

var exampleBridges = map[string]string{"bridge": "docker0", "isolated-net": "br-0123456789ab"}

// The rules, expression by expression, for the example in docs/architecture.md: each is
// what nft compiles for the rule in the comment (see `nft --debug=netlink`).
func TestBuildExpressions(t *testing.T) {
	rs, err := Build(decodeHCL(t, exampleHCL), exampleBridges)
	if err != nil {
		t.Fatal(err)
	}
	chains := map[string]*Chain{}
	for _, c := range rs.Chains {
		chains[c.Name] = c
	}
	docker0 := []byte("docker0\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	iif := []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: docker0}}
	oif := []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: docker0}}
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	wantForward := [][]expr.Any{
		// ct state established,related accept
		{&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(6), Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}}, accept},
		// iifname "docker0" oifname "docker0" accept
		append(append(append([]expr.Any{}, iif...), oif...), accept),
		// iifname "docker0" jump egress_bridge
		append(append([]expr.Any{}, iif...), &expr.Verdict{Kind: expr.VerdictJump, Chain: "egress_bridge"}),
		// oifname "docker0" jump ingress_bridge
		append(append([]expr.Any{}, oif...), &expr.Verdict{Kind: expr.VerdictJump, Chain: "ingress_bridge"}),
	}
	var gotForward [][]expr.Any
	for _, r := range chains["forward"].Rules[:4] {
		gotForward = append(gotForward, r.Exprs)
	}
	if d := cmp.Diff(wantForward, gotForward); d != "" {
		t.Errorf("forward chain (-want +got):\n%s", d)
	}
	if d := cmp.Diff(chains["forward"].Hook, nftables.ChainHookForward); d != "" || *chains["forward"].Priority != -10 {
		t.Errorf("forward chain hook/priority: %v %v", d, *chains["forward"].Priority)
	}

	wantEgress := [][]expr.Any{
		// meta nfproto ipv4 ip daddr @egress_bridge_0_v4net meta l4proto tcp th dport @egress_bridge_0_ports accept
		{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: "egress_bridge_0_v4net"},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: "egress_bridge_0_ports"}, accept},
		// meta nfproto ipv6 ip6 daddr @egress_bridge_0_v6net meta l4proto tcp th dport @egress_bridge_0_ports accept
		{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
			&expr.Lookup{SourceRegister: 1, SetName: "egress_bridge_0_v6net"},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: "egress_bridge_0_ports"}, accept},
		// meta nfproto ipv4 ip daddr @egress_bridge_1_v4 meta l4proto udp th dport @egress_bridge_1_ports accept
		{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: "egress_bridge_1_v4"},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: "egress_bridge_1_ports"}, accept},
		// counter drop
		{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}},
	}
	var gotEgress [][]expr.Any
	for _, r := range chains["egress_bridge"].Rules {
		gotEgress = append(gotEgress, r.Exprs)
	}
	if d := cmp.Diff(wantEgress, gotEgress); d != "" {
		t.Errorf("egress chain (-want +got):\n%s", d)
	}

	// meta nfproto ipv4 ip saddr @ingress_bridge_0_v4net meta l4proto tcp ct original proto-dst @ingress_bridge_0_ports accept
	wantIngress := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: "ingress_bridge_0_v4net"},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Ct{Register: 1, Key: expr.CtKeyPROTODST, Direction: 0},
		&expr.Lookup{SourceRegister: 1, SetName: "ingress_bridge_0_ports"}, accept,
	}
	if d := cmp.Diff(wantIngress, chains["ingress_bridge"].Rules[0].Exprs); d != "" {
		t.Errorf("ingress rule (-want +got):\n%s", d)
	}

	// The internal network, on input: neighbour discovery from the bridge
	// passes, everything else new from it is dropped.
	brInt := []byte("br-0123456789ab\x00")
	iifInt := []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: brInt}}
	nd := func(typ byte) []expr.Any {
		return append(append([]expr.Any{}, iifInt...),
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typ}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 7, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{255}},
			accept)
	}
	wantInput := [][]expr.Any{
		// iifname "br-0123456789ab" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit ip6 hoplimit 255 accept
		nd(135),
		// iifname "br-0123456789ab" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert ip6 hoplimit 255 accept
		nd(136),
		// iifname "br-0123456789ab" counter drop
		append(append([]expr.Any{}, iifInt...), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}),
	}
	var gotInput [][]expr.Any
	for _, r := range chains["input"].Rules[1:] {
		gotInput = append(gotInput, r.Exprs)
	}
	if d := cmp.Diff(wantInput, gotInput); d != "" {
		t.Errorf("input rules (-want +got):\n%s", d)
	}
	if d := cmp.Diff(nftables.ChainHookInput, chains["input"].Hook); d != "" {
		t.Errorf("input hook: %s", d)
	}
}

// The whole table as nft text, against a golden file.
func TestBuildGolden(t *testing.T) {
	for _, tt := range []struct{ name, hcl string }{
		{"example.nft", exampleHCL},
		{"logging.nft", `
firewall {
  table = "dw_log"
  log_prefix = "dockward drop "
  network "app" {
    egress_allow {
      proto = "icmp"
      to    = ["192.0.2.0/25", "192.0.2.128/25", "2001:db8::1", "198.51.100.7"]
    }
    egress_allow {
      to = ["203.0.113.0/24"]
    }
  }
  network "secure" {
    internal = true
  }
}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Build(decodeHCL(t, tt.hcl), map[string]string{
				"bridge": "docker0", "isolated-net": "br-0123456789ab", "app": "br-app", "secure": "br-secure"})
			if err != nil {
				t.Fatal(err)
			}
			agenttest.Golden(t, filepath.Join("testdata", tt.name), Render(rs))
		})
	}
}

// Ten addresses or ten thousand: the same rules.
func TestRuleCountIndependentOfAddresses(t *testing.T) {
	var counts []int
	for _, n := range []int{1, 10, 10000} {
		rs, err := Build(whitelist(n), map[string]string{"app": "br-app"})
		if err != nil {
			t.Fatal(err)
		}
		rules, elems := rs.Counts()
		if elems != n+1 { // n addresses and one port
			t.Errorf("%d addresses: %d elements", n, elems)
		}
		counts = append(counts, rules)
	}
	if counts[0] != counts[1] || counts[1] != counts[2] {
		t.Errorf("rule counts for 1, 10, 10000 addresses: %v", counts)
	}
}

// whitelist is a block whose network may reach n separate /32s on tcp/443.
// The addresses are two apart so that none merge into a range.
func whitelist(n int) *Block {
	addrs := make([]netip.Prefix, n)
	for i := range addrs {
		v := uint32(10<<24) + uint32(2*i)
		addrs[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 32)
	}
	return &Block{Table: "dockward", Networks: []*Network{{Name: "app",
		Egress: []*Allow{{Proto: "tcp", Ports: []uint16{443}, Addrs: addrs}}}}}
}

func TestPrefixElems(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{"10.0.0.1/32"}, []string{"10.0.0.1"}},
		{[]string{"10.0.0.0/8", "10.1.0.0/16"}, []string{"10.0.0.0/8"}},                        // contained
		{[]string{"10.0.0.0/25", "10.0.0.128/25"}, []string{"10.0.0.0/24"}},                    // adjacent
		{[]string{"10.0.0.3/32", "10.0.0.1/32", "10.0.0.2/32"}, []string{"10.0.0.1-10.0.0.3"}}, // unsorted, adjacent
		{[]string{"10.0.0.1/32", "10.0.0.3/32"}, []string{"10.0.0.1", "10.0.0.3"}},
		{[]string{"0.0.0.0/0", "192.0.2.0/24"}, []string{"0.0.0.0/0"}},
		{[]string{"255.255.255.255/32", "255.255.255.254/32"}, []string{"255.255.255.254/31"}},
		{[]string{"::/0"}, []string{"::/0"}},
		{[]string{"2001:db8::/33", "2001:db8:8000::/33"}, []string{"2001:db8::/32"}},
	}
	for _, tt := range tests {
		var ps []netip.Prefix
		typ := nftables.TypeIPAddr
		for _, s := range tt.in {
			ps = append(ps, netip.MustParsePrefix(s))
			if strings.Contains(s, ":") {
				typ = nftables.TypeIP6Addr
			}
		}
		var got []string
		for _, e := range prefixElems(ps, typ == nftables.TypeIP6Addr) {
			got = append(got, renderElem(typ, e))
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("prefixElems(%v) (-want +got):\n%s", tt.in, d)
		}
	}
}

// missingHCL declares a network that exists (app), one whose bridge is
// named (later: its interface need not exist) and one Docker has not
// created yet (ghost).
const missingHCL = `
firewall {
  network "app" {
    egress_allow {
      ports = [80]
      to    = ["198.51.100.0/24"]
    }
  }
  network "ghost" {
    egress_allow {
      ports = [443]
      to    = ["192.0.2.0/24"]
    }
  }
  network "later" {
    bridge = "br-later"
    egress_allow {
      ports = [80]
      to    = ["198.51.100.0/24"]
    }
  }
  network "vault" {
    internal = true
  }
}`

// A network Docker does not have (mapped to "") gets no rules, sets or
// chains; every other network's are as if it were not declared at all.
// The named bridge's rules are there whether or not the interface exists:
// Build matches by name and never asks.
func TestBuildMissingNetwork(t *testing.T) {
	b := decodeHCL(t, missingHCL)
	rs, err := Build(b, map[string]string{"app": "br-app", "ghost": "", "later": "br-later", "vault": ""})
	if err != nil {
		t.Fatal(err)
	}
	text := Render(rs)
	agenttest.Golden(t, filepath.Join("testdata", "missing.nft"), text)
	for _, absent := range []string{"ghost", "vault", `""`, "chain input"} {
		if strings.Contains(text, absent) {
			t.Errorf("the table mentions %s, which has no bridge yet:\n%s", absent, text)
		}
	}

	// The same table as for a configuration without the missing networks.
	without := decodeHCL(t, missingHCL)
	without.Networks = slices.DeleteFunc(without.Networks, func(n *Network) bool { return n.Name == "ghost" || n.Name == "vault" })
	want, err := Build(without, map[string]string{"app": "br-app", "later": "br-later"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(Render(want), text); d != "" {
		t.Errorf("with missing networks vs without them (-want +got):\n%s", d)
	}
}

func TestBuildErrors(t *testing.T) {
	b := decodeHCL(t, exampleHCL)
	if _, err := Build(b, map[string]string{"bridge": "docker0"}); err == nil || !strings.Contains(err.Error(), `"isolated-net"`) {
		t.Errorf("missing bridge: got %v", err)
	}
	if _, err := Build(b, map[string]string{"bridge": "docker0", "isolated-net": "docker0"}); err == nil || !strings.Contains(err.Error(), "both resolve to bridge docker0") {
		t.Errorf("shared bridge: got %v", err)
	}
}

// A network declared only to be created gets no rules; no internal network
// means no input chain.
func TestBuildMinimal(t *testing.T) {
	rs, err := Build(decodeHCL(t, "firewall {\n  network \"x\" {\n    create = true\n  }\n}"), map[string]string{"x": "br-x"})
	if err != nil {
		t.Fatal(err)
	}
	want := "table inet dockward {\n\tchain forward {\n\t\ttype filter hook forward priority filter - 10; policy accept;\n\t\tct state established,related accept\n\t}\n}\n"
	if d := cmp.Diff(want, Render(rs)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func ExampleRender() {
	b := &Block{Table: "dockward", Networks: []*Network{{Name: "db", Internal: true}}}
	rs, _ := Build(b, map[string]string{"db": "br-db"})
	fmt.Print(Render(rs))
	// Output:
	// table inet dockward {
	// 	chain egress_db {
	// 		counter drop
	// 	}
	//
	// 	chain ingress_db {
	// 		counter drop
	// 	}
	//
	// 	chain forward {
	// 		type filter hook forward priority filter - 10; policy accept;
	// 		ct state established,related accept
	// 		iifname "br-db" oifname "br-db" accept
	// 		iifname "br-db" jump egress_db
	// 		oifname "br-db" jump ingress_db
	// 	}
	//
	// 	chain input {
	// 		type filter hook input priority filter - 10; policy accept;
	// 		ct state established,related accept
	// 		iifname "br-db" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit ip6 hoplimit 255 accept
	// 		iifname "br-db" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert ip6 hoplimit 255 accept
	// 		iifname "br-db" counter drop
	// 	}
	// }
}

// Interfaces are matched by name, never by index (iif, oif): an index
// exists only once the interface does, and a bridge that is deleted and
// made again gets a new one. Matching by name is what makes a declared
// bridge's rules hold from the moment it appears, with nothing re-applied.
func TestBuildMatchesInterfacesByName(t *testing.T) {
	for _, hcl := range []string{exampleHCL, missingHCL, richHCL, packetsHCL} {
		b := decodeHCL(t, hcl)
		bridges := map[string]string{}
		for _, n := range b.Networks {
			bridges[n.Name] = "br-" + n.Name
		}
		rs, err := Build(b, bridges)
		if err != nil {
			t.Fatal(err)
		}
		names := 0
		for _, c := range rs.Chains {
			for _, r := range c.Rules {
				for _, e := range r.Exprs {
					m, ok := e.(*expr.Meta)
					if !ok {
						continue
					}
					switch m.Key {
					case expr.MetaKeyIIF, expr.MetaKeyOIF:
						t.Errorf("chain %s matches an interface by index: %s", c.Name, RenderRule(r))
					case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME:
						names++
					}
				}
			}
		}
		if names == 0 {
			t.Errorf("no interface name matches at all: the check above proves nothing")
		}
	}
}
