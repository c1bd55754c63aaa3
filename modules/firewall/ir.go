package firewall

import (
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Ruleset is one nftables table as data: what the builder wants and what
// read-back finds are both expressed in it, and rendered the same way.
// Rules hold google/nftables expressions as they go over netlink and are
// compared as text; sets hold their elements as sorted inclusive ranges of
// numbers, compared as such.
type Ruleset struct {
	Table  string // the table's name; the family is always inet
	Sets   []*Set
	Chains []*Chain
}

// Set is a named set.
type Set struct {
	Name     string
	Type     nftables.SetDatatype
	Interval bool
	// Flags the builder never sets; read-back fills them so that someone
	// else's change to them shows as drift.
	Constant, Timeout, Dynamic bool
	Elems                      []Elem
	// Long holds the elements of a set whose keys are longer than 16
	// bytes (concatenations, which dockward never makes: such a set is
	// someone else's edit), as the kernel dumps them: enough to show it.
	Long [][]byte
}

// Elem is one set element: an inclusive range [Lo, Hi] of keys; Lo equals
// Hi for a single value. It holds no pointers, so a set of 10,000
// addresses is one flat array that the garbage collector need not scan.
type Elem struct{ Lo, Hi Key }

// Chain is a chain; Hook is nil for a regular (jump target) chain.
type Chain struct {
	Name     string
	Type     nftables.ChainType
	Hook     *nftables.ChainHook
	Priority *nftables.ChainPriority
	Policy   *nftables.ChainPolicy
	Rules    []Rule
}

// Rule is one rule: its expressions and its comment (nft keeps comments in
// the rule's user data).
type Rule struct {
	Exprs   []expr.Any
	Comment string
}

// Counts returns the number of rules and set elements (ranges).
func (rs *Ruleset) Counts() (rules, elems int) {
	for _, c := range rs.Chains {
		rules += len(c.Rules)
	}
	for _, s := range rs.Sets {
		elems += len(s.Elems) + len(s.Long)
	}
	return rules, elems
}

// The expression helpers below build the netlink form of one nft match
// each, exactly as nft itself compiles it (compare `nft --debug=netlink`),
// so that `nft list` shows our rules as an operator would write them.

const reg = unix.NFT_REG_1

// ifnameBytes pads an interface name to IFNAMSIZ, as nft does.
func ifnameBytes(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func cmpReg(op expr.CmpOp, data []byte) *expr.Cmp {
	return &expr.Cmp{Op: op, Register: reg, Data: data}
}

// iifname "name" (neq: iifname != "name")
func iifname(name string, neq bool) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg}, cmpReg(eqOp(neq), ifnameBytes(name))}
}

// oifname "name"
func oifname(name string, neq bool) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg}, cmpReg(eqOp(neq), ifnameBytes(name))}
}

func eqOp(neq bool) expr.CmpOp {
	if neq {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

// ct state established,related (any of the bits)
func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		cmpReg(expr.CmpOpNeq, make([]byte, 4)),
	}
}

// meta nfproto ipv4|ipv6
func nfproto(v6 bool) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if v6 {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg}, cmpReg(expr.CmpOpEq, []byte{p})}
}

// meta l4proto tcp|udp|icmp|ipv6-icmp
func l4proto(p byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg}, cmpReg(expr.CmpOpEq, []byte{p})}
}

// ICMPv6 neighbour discovery message types (RFC 4861).
const (
	ndRouterSolicit   = 133
	ndNeighborSolicit = 135
	ndNeighborAdvert  = 136
)

// icmpv6 type t (after meta l4proto ipv6-icmp)
func icmpv6Type(t byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		cmpReg(expr.CmpOpEq, []byte{t}),
	}
}

// ip6 hoplimit n (after meta nfproto ipv6)
func ip6HopLimit(n byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 7, Len: 1},
		cmpReg(expr.CmpOpEq, []byte{n}),
	}
}

// ip|ip6 saddr|daddr @set
func addrInSet(v6, src bool, set string) []expr.Any {
	off, n := uint32(16), uint32(4) // ip daddr
	switch {
	case v6 && src:
		off, n = 8, 16
	case v6:
		off, n = 24, 16
	case src:
		off = 12
	}
	return []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: reg, SetName: set},
	}
}

// th dport @set (after meta l4proto tcp|udp)
func dportInSet(set string) []expr.Any {
	return []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg, SetName: set},
	}
}

// ct original proto-dst @set: the destination port the client connected to,
// before DNAT rewrote it to the container's port. Published ports are what
// an operator names, and Docker's own advice for DOCKER-USER matches the
// same (--ctorigdstport).
func origDportInSet(set string) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg, Key: expr.CtKeyPROTODST, Direction: ctDirOriginal},
		&expr.Lookup{SourceRegister: reg, SetName: set},
	}
}

func verdict(k expr.VerdictKind) *expr.Verdict { return &expr.Verdict{Kind: k} }

func jump(chain string) *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

// logLimited logs at most 10 packets a minute (bursts of 5) with prefix,
// at level warn (nft's default).
func logLimited(prefix string) []expr.Any {
	return []expr.Any{
		&expr.Limit{Type: expr.LimitTypePkts, Rate: 10, Unit: expr.LimitTimeMinute, Burst: 5},
		// The level is explicit because the kernel reports its default
		// (warn) back, and plan compares what it reads with what it wrote.
		&expr.Log{Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_LEVEL, Level: expr.LogLevelWarning, Data: []byte(prefix)},
	}
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// prefixElems turns the prefixes of one family among ps (IPv6 when v6,
// else IPv4) into sorted, disjoint, non-adjacent ranges: what nft's
// auto-merge would store, and a canonical form, so that the same addresses
// written differently compare equal. Plans of 10,000 addresses build this
// every time: it works on numbers, not byte slices, and allocates once.
func prefixElems(ps []netip.Prefix, v6 bool) []Elem {
	n := 0
	for _, p := range ps {
		if p.Addr().Is4() != v6 {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	size := 4
	if v6 {
		size = 16
	}
	elems := make([]Elem, 0, n)
	for _, p := range ps {
		a := p.Addr()
		if a.Is4() == v6 {
			continue
		}
		var k Key
		if v6 {
			b := a.As16()
			k = keyOf(b[:])
		} else {
			b := a.As4()
			k = keyOf(b[:])
		}
		host := hostMask(size*8 - p.Bits())
		lo := Key{k.hi &^ host.hi, k.lo &^ host.lo}
		elems = append(elems, Elem{lo, Key{lo.hi | host.hi, lo.lo | host.lo}})
	}
	radixSort(elems, func(e Elem) Key { return e.Lo })
	merged := elems[:1]
	for _, e := range elems[1:] {
		last := &merged[len(merged)-1]
		next, ok := last.Hi.add1(size)
		if !ok || e.Lo.cmp(next) <= 0 {
			if e.Hi.cmp(last.Hi) > 0 {
				last.Hi = e.Hi
			}
			continue
		}
		merged = append(merged, e)
	}
	return merged
}

// hostMask has the low h bits set (0 <= h <= 128).
func hostMask(h int) Key {
	switch {
	case h <= 0:
		return Key{}
	case h < 64:
		return Key{0, 1<<h - 1}
	case h < 128:
		return Key{1<<(h-64) - 1, ^uint64(0)}
	}
	return Key{^uint64(0), ^uint64(0)}
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// portElems turns sorted, unique ports into single-value elements.
func portElems(ports []uint16) []Elem {
	out := make([]Elem, len(ports))
	for i, p := range ports {
		k := Key{0, uint64(p)}
		out[i] = Elem{Lo: k, Hi: k}
	}
	return out
}

func (e Elem) single() bool { return e.Lo == e.Hi }

// Conntrack directions (enum ip_conntrack_dir), for ct original|reply keys.
const (
	ctDirOriginal = 0
	ctDirReply    = 1
)
