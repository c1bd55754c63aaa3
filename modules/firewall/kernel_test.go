package firewall

// Tests against the kernel's nftables, each in a throwaway network
// namespace (root only). The machine's own namespace is never touched.

import (
	"context"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/integration/netnstest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// richHCL uses every feature, for the tests that compare whole tables.
const richHCL = `
firewall {
  log_prefix = "dockward: "
  network "app" {
    bridge = "br-app"
    egress_allow {
      proto = "tcp"
      ports = [80, 443]
      to    = ["198.51.100.0/24", "2001:db8:2::/48"]
    }
    egress_allow {
      proto = "udp"
      ports = [53]
      to    = ["198.51.100.1", "203.0.113.0/25", "203.0.113.128/25"]
    }
    egress_allow {
      proto = "icmp"
      to    = ["0.0.0.0/0", "::/0"]
    }
    ingress_allow {
      ports = [8080, 8443]
      from  = ["198.51.100.0/24", "2001:db8:2::1"]
    }
  }
  network "secure" {
    bridge   = "br-secure"
    internal = true
  }
}`

func kernelSetup(t *testing.T, hcl string) (*netnstest.NS, *NFT, *Module, *Ruleset) {
	t.Helper()
	ns := netnstest.New(t)
	b := decodeHCL(t, hcl)
	n := NewNFT(ns.NFTOpts()...)
	m := NewWith(b, n, nil)
	bridges := map[string]string{}
	for _, nw := range b.Networks {
		bridges[nw.Name] = nw.Bridge
	}
	want, err := Build(b, bridges)
	if err != nil {
		t.Fatal(err)
	}
	return ns, n, m, want
}

func mustPlan(t *testing.T, m *Module) *agent.Plan {
	t.Helper()
	p, err := m.Plan(context.Background(), liveEnv)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

func mustApply(t *testing.T, m *Module, p *agent.Plan) {
	t.Helper()
	if err := m.Apply(context.Background(), liveEnv, p); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// Apply, read back, plan is empty; apply again, nothing changes. Networks
// are resolved through (a fake) Docker here, as in production.
func TestKernelApplyThenPlanEmpty(t *testing.T) {
	ns := netnstest.New(t)
	d, _ := newFakes()
	n := NewNFT(ns.NFTOpts()...)
	m := NewWith(decodeHCL(t, moduleHCL), n, d)

	p := mustPlan(t, m)
	if p.Empty() || p.Changes[0].Target != "docker network isolated" || p.Changes[1].Target != "table inet dockward" {
		t.Fatalf("first plan: %+v", p.Changes)
	}
	mustApply(t, m, p)
	if p := mustPlan(t, m); !p.Empty() {
		t.Fatalf("plan after apply: %+v", p.Changes)
	}

	live, err := n.Read("dockward")
	if err != nil {
		t.Fatal(err)
	}
	want, err := Build(m.cfg, map[string]string{"bridge": "docker0", "app": "br-0123456789ab", "isolated": "br-abcdefabcdef"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(Render(want), Render(live)); d != "" {
		t.Errorf("read back (-want +got):\n%s", d)
	}
	// nft itself can list what we made, and sees our rules.
	if out := ns.Exec(t, "nft", "list", "table", "inet", "dockward"); !strings.Contains(out, `ct original proto-dst @ingress_app_0_ports accept`) {
		t.Errorf("nft list:\n%s", out)
	}

	// Applying the same table again changes nothing.
	if err := n.Replace(want); err != nil {
		t.Fatal(err)
	}
	again, err := n.Read("dockward")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(Render(live), Render(again)); d != "" {
		t.Errorf("second apply changed the table (-first +second):\n%s", d)
	}
	if p := mustPlan(t, m); !p.Empty() {
		t.Fatalf("plan after second apply: %+v", p.Changes)
	}
}

// Deleting or editing the table behind dockward's back shows in plan, and
// apply puts it right.
func TestKernelDriftShowsInPlan(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, ns *netnstest.NS, c *nftables.Conn)
		want agent.Change
	}{
		{"table deleted", func(t *testing.T, _ *netnstest.NS, c *nftables.Conn) {
			c.DelTable(&nftables.Table{Name: "dockward", Family: nftables.TableFamilyINet})
			flush(t, c)
		}, agent.Change{Action: "+", Target: "table inet dockward", New: "6 chains, 28 rules, 11 sets with 13 elements"}},
		{"rule deleted", func(t *testing.T, _ *netnstest.NS, c *nftables.Conn) {
			tbl := &nftables.Table{Name: "dockward", Family: nftables.TableFamilyINet}
			ch := &nftables.Chain{Name: "forward", Table: tbl}
			rules, err := c.GetRules(tbl, ch)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.DelRule(rules[2]); err != nil { // iifname "br-app" jump egress_app
				t.Fatal(err)
			}
			flush(t, c)
		}, agent.Change{Action: "+", Target: "chain inet dockward forward", New: `rule iifname "br-app" jump egress_app`}},
		{"port element deleted", func(t *testing.T, _ *netnstest.NS, c *nftables.Conn) {
			s := &nftables.Set{Name: "egress_app_0_ports", Table: &nftables.Table{Name: "dockward", Family: nftables.TableFamilyINet}, KeyType: nftables.TypeInetService}
			if err := c.SetDeleteElements(s, []nftables.SetElement{{Key: binaryutil.BigEndian.PutUint16(443)}}); err != nil {
				t.Fatal(err)
			}
			flush(t, c)
		}, agent.Change{Action: "+", Target: "set inet dockward egress_app_0_ports", New: "element 443"}},
		{"address range deleted", func(t *testing.T, _ *netnstest.NS, c *nftables.Conn) {
			s := &nftables.Set{Name: "egress_app_0_v4net", Table: &nftables.Table{Name: "dockward", Family: nftables.TableFamilyINet}, KeyType: nftables.TypeIPAddr, Interval: true}
			if err := c.SetDeleteElements(s, []nftables.SetElement{{Key: []byte{198, 51, 100, 0}}, {Key: []byte{198, 51, 101, 0}, IntervalEnd: true}}); err != nil {
				t.Fatal(err)
			}
			flush(t, c)
		}, agent.Change{Action: "+", Target: "set inet dockward egress_app_0_v4net", New: "element 198.51.100.0/24"}},
		{"address added by someone", func(t *testing.T, ns *netnstest.NS, _ *nftables.Conn) {
			ns.Exec(t, "nft", "add element inet dockward egress_app_1_v4 { 192.0.2.99 }")
		}, agent.Change{Action: "-", Target: "set inet dockward egress_app_1_v4", Old: "element 192.0.2.99"}},
		{"set of concatenations added by someone", func(t *testing.T, ns *netnstest.NS, _ *nftables.Conn) {
			// Keys of 20 bytes: read back as they are, not as numbers.
			ns.Exec(t, "nft", "add set inet dockward extra { type ipv4_addr . ipv6_addr; elements = { 192.0.2.1 . 2001:db8::1 } }")
		}, agent.Change{Action: "-", Target: "set inet dockward extra", Old: "type ipv4_addr . ipv6_addr; 1 elements"}},
		{"rule inserted by someone", func(t *testing.T, ns *netnstest.NS, _ *nftables.Conn) {
			ns.Exec(t, "nft", "insert", "rule", "inet", "dockward", "egress_app", "accept")
		}, agent.Change{Action: "-", Target: "chain inet dockward egress_app", Old: "rule accept"}},
		{"policy changed", func(t *testing.T, ns *netnstest.NS, _ *nftables.Conn) {
			ns.Exec(t, "nft", "chain inet dockward input { policy drop ; }")
		}, agent.Change{Action: "~", Target: "chain inet dockward input",
			Old: "type filter hook input priority filter - 10; policy drop;", New: "type filter hook input priority filter - 10; policy accept;"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, _, m, _ := kernelSetup(t, richHCL)
			mustApply(t, m, mustPlan(t, m))
			tt.edit(t, ns, ns.NFT(t))
			p := mustPlan(t, m)
			if len(p.Changes) == 0 || p.Changes[0] != tt.want {
				t.Fatalf("plan after edit: want first change %+v, got %+v", tt.want, p.Changes)
			}
			if tt.name != "table deleted" && len(p.Changes) != 1 {
				t.Errorf("plan shows more than the edit: %+v", p.Changes)
			}
			mustApply(t, m, p)
			if p := mustPlan(t, m); !p.Empty() {
				t.Errorf("plan after repair: %+v", p.Changes)
			}
		})
	}
}

func flush(t *testing.T, c *nftables.Conn) {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A batch that fails part-way (here: its last rule names a chain that does
// not exist) changes nothing: the old table stays, whole.
func TestKernelFailedBatchKeepsOldTable(t *testing.T) {
	ns, n, m, old := kernelSetup(t, richHCL)
	mustApply(t, m, mustPlan(t, m))
	before := ns.Exec(t, "nft", "list", "table", "inet", "dockward")

	other := clone(old)
	other.Sets = other.Sets[:1]
	other.Chains = []*Chain{baseChain(forwardChain, nftables.ChainHookForward)}
	err := n.replace(other, func(c *nftables.Conn, t *nftables.Table) {
		c.AddRule(&nftables.Rule{Table: t, Chain: &nftables.Chain{Name: "no-such-chain", Table: t},
			Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
	})
	if err == nil {
		t.Fatal("the failing batch succeeded")
	}
	t.Logf("failing batch: %v", err)
	live, err := n.Read("dockward")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(Render(old), Render(live)); d != "" {
		t.Errorf("table after a failed batch (-old +now):\n%s", d)
	}
	if after := ns.Exec(t, "nft", "list", "table", "inet", "dockward"); after != before {
		t.Errorf("nft list changed:\n%s\nthen:\n%s", before, after)
	}
	// The connection is usable afterwards: a good batch goes through.
	if err := n.Replace(other); err != nil {
		t.Fatal(err)
	}
}

// dockerLike is a ruleset shaped like what Docker's iptables-nft makes,
// plus an inet table of someone else's.
const dockerLike = `
table ip filter {
	chain DOCKER {
		iifname != "docker0" oifname "docker0" ip daddr 172.17.0.2 tcp dport 80 accept
	}
	chain DOCKER-USER {
		counter return
	}
	chain FORWARD {
		type filter hook forward priority filter; policy drop;
		counter jump DOCKER-USER
		oifname "docker0" ct state related,established accept
		oifname "docker0" jump DOCKER
		iifname "docker0" oifname != "docker0" accept
	}
}
table ip nat {
	chain DOCKER {
		iifname "docker0" return
		iifname != "docker0" tcp dport 8080 dnat to 172.17.0.2:80
	}
	chain PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local jump DOCKER
	}
}
table inet dockward-other {
	set s {
		type ipv4_addr
		elements = { 192.0.2.1 }
	}
	chain c {
		ip saddr @s counter
	}
}
`

// Other tables, Docker's included, are never touched: not by apply, not by
// a re-apply, not by a failed batch.
func TestKernelOtherTablesUntouched(t *testing.T) {
	ns, n, m, want := kernelSetup(t, richHCL)
	ns.ExecStdin(t, dockerLike, "nft", "-f", "-")
	list := func() string {
		var out strings.Builder
		for _, tbl := range [][]string{{"ip", "filter"}, {"ip", "nat"}, {"inet", "dockward-other"}} {
			out.WriteString(ns.Exec(t, "nft", "list", "table", tbl[0], tbl[1]))
		}
		return out.String()
	}
	before := list()
	mustApply(t, m, mustPlan(t, m))
	if err := n.Replace(want); err != nil {
		t.Fatal(err)
	}
	_ = n.replace(want, func(c *nftables.Conn, t *nftables.Table) {
		c.AddRule(&nftables.Rule{Table: t, Chain: &nftables.Chain{Name: "no-such-chain", Table: t}, Exprs: []expr.Any{&expr.Counter{}}})
	})
	if d := cmp.Diff(before, list()); d != "" {
		t.Errorf("other tables changed (-before +after):\n%s", d)
	}
	tables := ns.Exec(t, "nft", "list", "tables")
	if got := strings.Count(tables, "table "); got != 4 {
		t.Errorf("tables now:\n%s", tables)
	}
}

// The rendered text is the table: nft loading it (in one namespace) and
// dockward sending its batch (in another) make tables that read back, and
// that nft lists, identically.
func TestKernelRenderMatchesNft(t *testing.T) {
	nsNft, nftSide, _, want := kernelSetup(t, richHCL)
	nsGo := netnstest.New(t)
	goSide := NewNFT(nsGo.NFTOpts()...)
	nsNft.ExecStdin(t, Render(want), "nft", "-f", "-")
	if err := goSide.Replace(want); err != nil {
		t.Fatal(err)
	}
	byNft, err := nftSide.Read("dockward")
	if err != nil {
		t.Fatal(err)
	}
	if cs := Diff(want, byNft); len(cs) != 0 {
		t.Errorf("the table nft made from the rendered text differs from what dockward wants: %+v", cs)
	}
	listNft := nsNft.Exec(t, "nft", "list", "table", "inet", "dockward")
	listGo := nsGo.Exec(t, "nft", "list", "table", "inet", "dockward")
	if d := cmp.Diff(listNft, listGo); d != "" {
		t.Errorf("nft list (-loaded by nft +sent by dockward):\n%s", d)
	}
}
