package firewall

import (
	"fmt"

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
// same inputs give the same table, rule for rule. Every declared network
// must be in bridges; one mapped to "" is declared but does not exist in
// Docker (yet) and gets no rules, while every other network's rules are
// built as if it were not declared. A network's rules match its bridge by
// name (iifname, oifname), never by interface index, and its sets are keyed
// by the network's name: rules for a bridge that does not exist yet are
// valid, and hold from the moment an interface of that name appears.
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
//	    iifname "B" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit ip6 hoplimit 255 accept
//	    iifname "B" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert ip6 hoplimit 255 accept
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
		if !ok {
			return nil, fmt.Errorf("network %q: no bridge interface resolved", n.Name)
		}
		if br == "" {
			continue // Docker has no such network (yet): nothing to match
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
			c, sets := allowChain("egress", n.Name, n.Internal, n.Egress, false, b.LogPrefix)
			rs.Sets = append(rs.Sets, sets...)
			regular = append(regular, c)
			forward.Rules = append(forward.Rules, Rule{Exprs: concat(iifname(br, false), []expr.Any{jump(c.Name)})})
		}
		if in {
			c, sets := allowChain("ingress", n.Name, n.Internal, n.Ingress, true, b.LogPrefix)
			rs.Sets = append(rs.Sets, sets...)
			regular = append(regular, c)
			forward.Rules = append(forward.Rules, Rule{Exprs: concat(oifname(br, false), []expr.Any{jump(c.Name)})})
		}
		if n.Internal {
			// Docker's --internal still lets containers reach the host
			// through the bridge's gateway address: close that, all but
			// neighbour discovery.
			input.Rules = append(input.Rules, neighbourDiscovery(br)...)
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
// allowChain builds a network's egress or ingress chain: its allow rules
// (none for an internal network, which allows nothing), then the counted
// drop. It returns the sets the rules use.
func allowChain(dir, network string, internal bool, allows []*Allow, peerIsSource bool, logPrefix string) (*Chain, []*Set) {
	c := &Chain{Name: dir + "_" + network}
	var sets []*Set
	if !internal {
		for i, a := range allows {
			ss, rules := allowRules(fmt.Sprintf("%s_%s_%d", dir, network, i), a, peerIsSource)
			sets = append(sets, ss...)
			c.Rules = append(c.Rules, rules...)
		}
	}
	c.Rules = append(c.Rules, dropRules(logPrefix, c.Name)...)
	return c, sets
}

func allowRules(prefix string, a *Allow, peerIsSource bool) ([]*Set, []Rule) {
	var addrSets, portSets []*Set
	var portSet string
	if len(a.Ports) > 0 && a.Proto != "icmp" {
		portSet = prefix + "_ports"
		portSets = append(portSets, &Set{Name: portSet, Type: nftables.TypeInetService, Elems: portElems(a.Ports)})
	}
	var rules []Rule
	for _, fam := range [...]struct {
		v6   bool
		name string
		typ  nftables.SetDatatype
		icmp byte
	}{
		{false, prefix + "_v4", nftables.TypeIPAddr, unix.IPPROTO_ICMP},
		{true, prefix + "_v6", nftables.TypeIP6Addr, unix.IPPROTO_ICMPV6},
	} {
		// Singles stay where they are, ranges move out: both keep the
		// sorted order.
		singles := prefixElems(a.Addrs, fam.v6)
		var ranges []Elem
		k := 0
		for _, e := range singles {
			if e.single() {
				singles[k] = e
				k++
			} else {
				ranges = append(ranges, e)
			}
		}
		singles = singles[:k]
		proto := fam.icmp
		switch a.Proto {
		case "tcp":
			proto = unix.IPPROTO_TCP
		case "udp":
			proto = unix.IPPROTO_UDP
		}
		for _, set := range [...]*Set{
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

// neighbourDiscovery accepts IPv6 neighbour solicitations and
// advertisements from bridge br to the host. Conntrack leaves them
// untracked (they are never established), so without these rules an
// internal network's input drop takes them too, and then the host cannot
// resolve a container's link-layer address, nor a container the host's:
// IPv6 between the host and the bridge fails both ways, even for the
// replies to connections the host opens, which "internal" allows (they are
// established). IPv4's ARP needs nothing: it is not IP, and an inet
// table's hooks never see it.
//
// Only these two: router solicitations stay dropped (a container on an
// internal network has no router to ask for, and Docker assigns its
// addresses itself), and so does all other ICMPv6. Hop limit 255 is what
// RFC 4861 requires of a neighbour discovery message (the kernel discards
// others anyway): nothing but genuine on-link ND gets through this.
func neighbourDiscovery(br string) []Rule {
	var rules []Rule
	for _, typ := range []byte{ndNeighborSolicit, ndNeighborAdvert} {
		rules = append(rules, Rule{Exprs: concat(iifname(br, false), nfproto(true), l4proto(unix.IPPROTO_ICMPV6),
			icmpv6Type(typ), ip6HopLimit(255), []expr.Any{verdict(expr.VerdictAccept)})})
	}
	return rules
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
