package firewall

import (
	"testing"

	"github.com/dockward/dockward/agent"
	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// clone deep-copies a ruleset's structure (expressions are shared; the
// tests below replace, never mutate them).
func clone(rs *Ruleset) *Ruleset {
	out := &Ruleset{Table: rs.Table}
	for _, s := range rs.Sets {
		c := *s
		c.Elems = append([]Elem(nil), s.Elems...)
		out.Sets = append(out.Sets, &c)
	}
	for _, ch := range rs.Chains {
		c := *ch
		c.Rules = append([]Rule(nil), ch.Rules...)
		out.Chains = append(out.Chains, &c)
	}
	return out
}

func exampleRuleset(t *testing.T) *Ruleset {
	rs, err := Build(decodeHCL(t, exampleHCL), exampleBridges)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func find[T any](xs []*T, name func(*T) string, n string) *T {
	for _, x := range xs {
		if name(x) == n {
			return x
		}
	}
	return nil
}

func setNamed(rs *Ruleset, n string) *Set {
	return find(rs.Sets, func(s *Set) string { return s.Name }, n)
}

func chainNamed(rs *Ruleset, n string) *Chain {
	return find(rs.Chains, func(c *Chain) string { return c.Name }, n)
}

func TestDiff(t *testing.T) {
	want := exampleRuleset(t)
	const tbl = "inet dockward "
	tests := []struct {
		name string
		edit func(have *Ruleset)
		want []agent.Change
	}{
		{"identical", func(*Ruleset) {}, nil},
		{"element removed", func(h *Ruleset) {
			setNamed(h, "egress_bridge_0_ports").Elems = setNamed(h, "egress_bridge_0_ports").Elems[1:]
		},
			[]agent.Change{{Action: "+", Target: "set " + tbl + "egress_bridge_0_ports", New: "element 80"}}},
		{"element added by someone", func(h *Ruleset) {
			s := setNamed(h, "egress_bridge_1_v4")
			s.Elems = append(s.Elems, prefixElems(mustPrefixes("192.0.2.1"), false)...)
		}, []agent.Change{{Action: "-", Target: "set " + tbl + "egress_bridge_1_v4", Old: "element 192.0.2.1"}}},
		{"rule removed", func(h *Ruleset) { c := chainNamed(h, "forward"); c.Rules = c.Rules[1:] },
			[]agent.Change{{Action: "+", Target: "chain " + tbl + "forward", New: "rule ct state established,related accept"}}},
		{"rule added by someone", func(h *Ruleset) {
			c := chainNamed(h, "egress_bridge")
			c.Rules = append([]Rule{{Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}, Comment: "let all out"}}, c.Rules...)
		}, []agent.Change{{Action: "-", Target: "chain " + tbl + "egress_bridge", Old: `rule accept comment "let all out"`}}},
		{"policy changed", func(h *Ruleset) {
			c := chainNamed(h, "input")
			drop := nftables.ChainPolicyDrop
			c.Policy = &drop
		}, []agent.Change{{Action: "~", Target: "chain " + tbl + "input",
			Old: "type filter hook input priority filter - 10; policy drop;",
			New: "type filter hook input priority filter - 10; policy accept;"}}},
		{"chain and set added by someone", func(h *Ruleset) {
			h.Chains = append(h.Chains, &Chain{Name: "extra", Rules: []Rule{{Exprs: []expr.Any{&expr.Counter{}}}}})
			h.Sets = append(h.Sets, &Set{Name: "extra", Type: nftables.TypeInetService, Elems: portElems([]uint16{1, 2})})
		}, []agent.Change{
			{Action: "-", Target: "set " + tbl + "extra", Old: "type inet_service; 2 elements"},
			{Action: "-", Target: "chain " + tbl + "extra", Old: "regular chain (1 rules)"},
		}},
		{"set lost its interval flag", func(h *Ruleset) { setNamed(h, "ingress_bridge_0_v4net").Interval = false },
			[]agent.Change{{Action: "~", Target: "set " + tbl + "ingress_bridge_0_v4net", Old: "type ipv4_addr", New: "type ipv4_addr; flags interval"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			have := clone(want)
			tt.edit(have)
			if d := cmp.Diff(tt.want, Diff(want, have)); d != "" {
				t.Errorf("Diff (-want +got):\n%s", d)
			}
		})
	}
}

func TestDiffMissingTable(t *testing.T) {
	want := exampleRuleset(t)
	got := Diff(want, nil)
	if len(got) == 0 || got[0] != (agent.Change{Action: "+", Target: "table inet dockward", New: "6 chains, 19 rules, 7 sets with 8 elements"}) {
		t.Fatalf("first change = %+v", got)
	}
	for _, c := range got {
		if c.Action != "+" {
			t.Errorf("missing table: non-create change %+v", c)
		}
	}
	// The listing is complete: every rule is there.
	rules := 0
	for _, c := range got {
		if len(c.New) > 5 && c.New[:5] == "rule " {
			rules++
		}
	}
	if rules != 19 {
		t.Errorf("listed %d rules, want 19", rules)
	}
}

// A whitelist of thousands of addresses lists a few elements and a count.
func TestDiffCapsElements(t *testing.T) {
	want, err := Build(whitelist(1000), map[string]string{"app": "br-app"})
	if err != nil {
		t.Fatal(err)
	}
	have := clone(want)
	setNamed(have, "egress_app_0_v4").Elems = nil
	got := Diff(want, have)
	if len(got) != maxElemChanges+1 {
		t.Fatalf("%d changes, want %d", len(got), maxElemChanges+1)
	}
	if last := got[len(got)-1]; last.New != "980 more elements" {
		t.Errorf("last change = %+v", last)
	}
}

func TestRuleDiffOrder(t *testing.T) {
	got := ruleDiff("c", []string{"a", "b", "c"}, []string{"b", "a", "c"})
	want := []agent.Change{
		{Action: "-", Target: "c", Old: "rule b"},
		{Action: "+", Target: "c", New: "rule b"},
	}
	if d := cmp.Diff(want, got); d != "" {
		// Either minimal edit is fine as long as it turns have into want.
		alt := []agent.Change{{Action: "+", Target: "c", New: "rule a"}, {Action: "-", Target: "c", Old: "rule a"}}
		if cmp.Diff(alt, got) != "" {
			t.Errorf("ruleDiff (-want +got):\n%s", d)
		}
	}
}
