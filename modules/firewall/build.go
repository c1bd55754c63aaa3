package firewall

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Base chain names. Not `fwd`: that is an nft keyword.
const (
	forwardChain = "forward"
	inputChain   = "input"
)

// priority filter - 10: ahead of Docker's iptables-nft chains (filter, 0),
// which does not matter for correctness (a packet must pass every base
// chain on a hook, and a drop anywhere is final) but lets our counters see
// what we drop before Docker's rules do.
var basePriority = nftables.ChainPriority(-10)

// Build returns the desired table for the firewall block, given each
// declared network's bridge interface (by network name). It is pure: the
// same inputs give the same table, rule for rule.
//
// Layout, for a network N on bridge B:
//
//	chain forward { type filter hook forward priority filter - 10; policy accept;
//	    ct state established,related accept
//	    iifname "B" oifname "B" accept         # inside one bridge: left alone
//	    iifname "B" jump egress_N              # out of the bridge
//	    oifname "B" jump ingress_N             # into the bridge
//	}
//	chain egress_N { <one rule per egress_allow and family> accept; counter drop }
//	chain ingress_N { <one rule per ingress_allow and family> accept; counter drop }
//	chain input { ...hook input...  ct state established,related accept
//	    iifname "B" counter drop }             # internal networks only
//
// Addresses and ports live in sets, so the number of rules depends on the
// number of networks and allow blocks, never on the number of addresses.
// Everything not established or related that reaches a drop is dropped
// (new, and also invalid or untracked: a whitelist must not leak those).
func Build(b *Block, bridges map[string]string) (*Ruleset, error) {
	rs := &Ruleset{Table: b.Table}
	accept := verdict(expr.VerdictAccept)
	established := ctState(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED)
	forward := baseChain(forwardChain, nftables.ChainHookForward)
	forward.Rules = append(forward.Rules, Rule{Exprs: concat(established, []expr.Any{accept})})
	input := baseChain(inputChain, nftables.ChainHookInput)
	input.Rules = append(input.Rules, Rule{Exprs: concat(established, []expr.Any{accept})})
	var regular []*Chain

	owner := map[string]string{}
	for _, n := range b.Networks {
		br, ok := bridges[n.Name]
		if !ok || br == "" {
			return nil, fmt.Errorf("network %q: no bridge interface resolved", n.Name)
		}
		if other, dup := owner[br]; dup {
			return nil, fmt.Errorf("networks %q and %q both resolve to bridge %s", other, n.Name, br)
		}
		owner[br] = n.Name
		out := n.Internal || len(n.Egress) > 0
		in := n.Internal || len(n.Ingress) > 0
		if !out && !in {
			continue // declared only to be created: nothing to enforce
		}
		forward.Rules = append(forward.Rules, Rule{Exprs: concat(iifname(br, false), oifname(br, false), []expr.Any{accept})})
		if out {
			c := &Chain{Name: "egress_" + n.Name}
			if !n.Internal {
				for i, a := range n.Egress {
					sets, rules := allowRules(fmt.Sprintf("egress_%s_%d", n.Name, i), a, false)
					rs.Sets = append(rs.Sets, sets...)
					c.Rules = append(c.Rules, rules...)
				}
			}
			c.Rules = append(c.Rules, dropRules(b.LogPrefix, c.Name)...)
			regular = append(regular, c)
			forward.Rules = append(forward.Rules, Rule{Exprs: concat(iifname(br, false), []expr.Any{jump(c.Name)})})
		}
		if in {
			c := &Chain{Name: "ingress_" + n.Name}
			if !n.Internal {
				for i, a := range n.Ingress {
					sets, rules := allowRules(fmt.Sprintf("ingress_%s_%d", n.Name, i), a, true)
					rs.Sets = append(rs.Sets, sets...)
					c.Rules = append(c.Rules, rules...)
				}
			}
			c.Rules = append(c.Rules, dropRules(b.LogPrefix, c.Name)...)
			regular = append(regular, c)
			forward.Rules = append(forward.Rules, Rule{Exprs: concat(oifname(br, false), []expr.Any{jump(c.Name)})})
		}
		if n.Internal {
			// Docker's --internal still lets containers reach the host
			// through the bridge's gateway address: close that.
			input.Rules = append(input.Rules, dropMatching(b.LogPrefix, "input_"+n.Name, iifname(br, false))...)
		}
	}
	rs.Chains = append(regular, forward)
	if len(input.Rules) > 1 {
		rs.Chains = append(rs.Chains, input)
	}
	return rs, nil
}

func baseChain(name string, hook *nftables.ChainHook) *Chain {
	policy := nftables.ChainPolicyAccept
	prio := basePriority
	return &Chain{Name: name, Type: nftables.ChainTypeFilter, Hook: hook, Priority: &prio, Policy: &policy}
}

// allowRules makes the sets and rules of one allow block. Per address
// family, single addresses go to a hash set (<prefix>_v4) and networks and
// ranges to an interval set (<prefix>_v4net), each with one rule that
// accepts when the peer address is in the set and the port in the port
// set: at most two rules per family whatever the number of addresses.
// Singles are kept out of the interval set because an interval set stores
// two elements per address, and the kernel dumps a hash set of 10,000
// addresses several times faster than that, which is most of a plan's time.
// peerIsSource is true for ingress (match the source; ports are the
// published ports before DNAT).
func allowRules(prefix string, a *Allow, peerIsSource bool) ([]*Set, []Rule) {
	var v4, v6 []netip.Prefix
	for _, p := range a.Addrs {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	var addrSets, portSets []*Set
	var portSet string
	if len(a.Ports) > 0 && a.Proto != "icmp" {
		portSet = prefix + "_ports"
		portSets = append(portSets, &Set{Name: portSet, Type: nftables.TypeInetService, Elems: portElems(a.Ports)})
	}
	var rules []Rule
	for _, fam := range []struct {
		v6    bool
		addrs []netip.Prefix
		name  string
		typ   nftables.SetDatatype
		icmp  byte
	}{
		{false, v4, prefix + "_v4", nftables.TypeIPAddr, unix.IPPROTO_ICMP},
		{true, v6, prefix + "_v6", nftables.TypeIP6Addr, unix.IPPROTO_ICMPV6},
	} {
		elems := prefixElems(fam.addrs)
		singles := make([]Elem, 0, len(elems))
		var ranges []Elem
		for _, e := range elems {
			if e.single() {
				singles = append(singles, e)
			} else {
				ranges = append(ranges, e)
			}
		}
		proto := fam.icmp
		switch a.Proto {
		case "tcp":
			proto = unix.IPPROTO_TCP
		case "udp":
			proto = unix.IPPROTO_UDP
		}
		for _, set := range []*Set{
			{Name: fam.name, Type: fam.typ, Elems: singles},
			{Name: fam.name + "net", Type: fam.typ, Interval: true, Elems: ranges},
		} {
			if len(set.Elems) == 0 {
				continue
			}
			addrSets = append(addrSets, set)
			e := concat(nfproto(fam.v6), addrInSet(fam.v6, peerIsSource, set.Name), l4proto(proto))
			if portSet != "" {
				if peerIsSource {
					e = append(e, origDportInSet(portSet)...)
				} else {
					e = append(e, dportInSet(portSet)...)
				}
			}
			rules = append(rules, Rule{Exprs: append(e, verdict(expr.VerdictAccept))})
		}
	}
	return append(addrSets, portSets...), rules
}

// dropRules ends a network chain: an optional rate-limited log, then a
// counted drop.
func dropRules(logPrefix, where string) []Rule {
	return dropMatching(logPrefix, where, nil)
}

func dropMatching(logPrefix, where string, match []expr.Any) []Rule {
	var rules []Rule
	if logPrefix != "" {
		p := logPrefix + where + " "
		if len(p) > 127 {
			p = p[:127]
		}
		rules = append(rules, Rule{Exprs: concat(match, logLimited(p))})
	}
	drop := concat(match, []expr.Any{&expr.Counter{}, verdict(expr.VerdictDrop)})
	return append(rules, Rule{Exprs: drop})
}
