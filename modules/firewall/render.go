package firewall

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Render prints the ruleset in nft syntax. It is the normal form that plan
// compares (desired and live tables are both rendered by it, so counters and
// handles, which it never prints, cannot cause drift), the golden-test
// output, and valid input for `nft -f` (the benchmark loads it so).
func Render(rs *Ruleset) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", rs.Table)
	for i, s := range rs.Sets {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tset %s {\n", s.Name)
		for _, l := range setHeader(s) {
			fmt.Fprintf(&b, "\t\t%s\n", l)
		}
		if len(s.Elems)+len(s.Long) > 0 {
			elems := make([]string, 0, len(s.Elems)+len(s.Long))
			for _, e := range s.Elems {
				elems = append(elems, renderElem(s.Type, e))
			}
			for _, k := range s.Long {
				elems = append(elems, renderLong(k))
			}
			if len(elems) <= 4 {
				fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(elems, ", "))
			} else {
				fmt.Fprintf(&b, "\t\telements = {\n\t\t\t%s\n\t\t}\n", strings.Join(elems, ",\n\t\t\t"))
			}
		}
		b.WriteString("\t}\n")
	}
	for i, c := range rs.Chains {
		if i > 0 || len(rs.Sets) > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if h := chainHeader(c); h != "" {
			fmt.Fprintf(&b, "\t\t%s\n", h)
		}
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", RenderRule(r))
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// setHeader is a set's declaration without elements, one nft line each.
func setHeader(s *Set) []string {
	lines := []string{"type " + s.Type.Name}
	var flags []string
	if s.Constant {
		flags = append(flags, "constant")
	}
	if s.Dynamic {
		flags = append(flags, "dynamic")
	}
	if s.Interval {
		flags = append(flags, "interval")
	}
	if s.Timeout {
		flags = append(flags, "timeout")
	}
	if len(flags) > 0 {
		lines = append(lines, "flags "+strings.Join(flags, ","))
	}
	return lines
}

// chainHeader is a base chain's "type ... hook ... priority ...; policy
// ...;" line, or "" for a regular chain.
func chainHeader(c *Chain) string {
	if c.Hook == nil {
		return ""
	}
	s := fmt.Sprintf("type %s hook %s", c.Type, hookName(*c.Hook))
	if c.Priority != nil {
		s += " priority " + priorityName(int32(*c.Priority))
	}
	s += ";"
	if c.Policy != nil {
		p := "accept"
		if *c.Policy == nftables.ChainPolicyDrop {
			p = "drop"
		}
		s += " policy " + p + ";"
	}
	return s
}

func hookName(h nftables.ChainHook) string {
	switch h {
	case unix.NF_INET_PRE_ROUTING:
		return "prerouting"
	case unix.NF_INET_LOCAL_IN:
		return "input"
	case unix.NF_INET_FORWARD:
		return "forward"
	case unix.NF_INET_LOCAL_OUT:
		return "output"
	case unix.NF_INET_POST_ROUTING:
		return "postrouting"
	}
	return strconv.Itoa(int(h))
}

func priorityName(p int32) string {
	switch {
	case p == 0:
		return "filter"
	case p < 0 && p > -100:
		return fmt.Sprintf("filter - %d", -p)
	case p > 0 && p < 50:
		return fmt.Sprintf("filter + %d", p)
	}
	return strconv.Itoa(int(p))
}

// renderElem prints an element as nft does for the set's type.
func renderElem(t nftables.SetDatatype, e Elem) string {
	size := int(t.Bytes)
	if size < 1 || size > 16 {
		size = 16
	}
	switch {
	case (t.Name == nftables.TypeIPAddr.Name || t.Name == nftables.TypeIP6Addr.Name) && (size == 4 || size == 16):
		lo, hi := keyAddr(e.Lo, size), keyAddr(e.Hi, size)
		if lo == hi {
			return lo.String()
		}
		if p, ok := asPrefix(lo, hi); ok {
			return p.String()
		}
		return lo.String() + "-" + hi.String()
	case t.Name == nftables.TypeInetService.Name && size == 2 && e.Lo.fits(2) && e.Hi.fits(2):
		if e.single() {
			return strconv.FormatUint(e.Lo.lo, 10)
		}
		return fmt.Sprintf("%d-%d", e.Lo.lo, e.Hi.lo)
	}
	if e.single() {
		return fmt.Sprintf("0x%x", e.Lo.bytes(size))
	}
	return fmt.Sprintf("0x%x-0x%x", e.Lo.bytes(size), e.Hi.bytes(size))
}

// renderLong prints a key over 16 bytes (Set.Long).
func renderLong(k []byte) string { return fmt.Sprintf("0x%x", k) }

// keyAddr is the address a 4- or 16-byte key holds.
func keyAddr(k Key, size int) netip.Addr {
	if size == 4 {
		v := uint32(k.lo)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	var b [16]byte
	copy(b[:], k.bytes(16))
	return netip.AddrFrom16(b)
}

// asPrefix reports whether [lo, hi] is exactly one CIDR prefix.
func asPrefix(lo, hi netip.Addr) (netip.Prefix, bool) {
	for bits := 0; bits <= lo.BitLen(); bits++ {
		p := netip.PrefixFrom(lo, bits)
		if p.Masked().Addr() == lo && lastAddr(p) == hi {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// operand is what a load expression put in a register, waiting for the
// cmp or lookup that uses it.
type operand struct {
	text string
	kind string // how to print a value compared with it
	mask []byte // a bitwise mask applied to it (ct state)
}

// RenderRule prints one rule in nft syntax. It reads the expressions in
// order, remembering what each load put in its register, so the match
// `meta nfproto ipv4 ip daddr @s` comes out of [meta][cmp][payload][lookup].
// Explicit dependencies (meta nfproto, meta l4proto) are printed as they
// are, so the text maps one to one onto the expressions. An expression it
// does not know is printed raw rather than dropped: unknown edits must show.
func RenderRule(r Rule) string {
	regs := map[uint32]*operand{}
	var parts []string
	// The protocols matched so far: a payload load means a different
	// field after meta nfproto ipv6, or after meta l4proto ipv6-icmp.
	var nf, l4 byte
	raw := func(e expr.Any) string {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		return fmt.Sprintf("<%s %+v>", strings.ToLower(v.Type().Name()), v.Interface())
	}
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Meta:
			if e.SourceRegister {
				parts = append(parts, raw(e))
				continue
			}
			regs[e.Register] = metaOperand(e.Key)
		case *expr.Payload:
			if e.OperationType != expr.PayloadLoad {
				parts = append(parts, raw(e))
				continue
			}
			regs[e.DestRegister] = payloadOperand(e, nf, l4)
		case *expr.Ct:
			if e.SourceRegister {
				parts = append(parts, raw(e))
				continue
			}
			regs[e.Register] = ctOperand(e)
		case *expr.Bitwise:
			op := regs[e.SourceRegister]
			if op == nil || e.SourceRegister != e.DestRegister || !allZero(e.Xor) {
				parts = append(parts, raw(e))
				continue
			}
			op.mask = e.Mask
		case *expr.Cmp:
			op := regs[e.Register]
			if op == nil {
				parts = append(parts, raw(e))
				continue
			}
			parts = append(parts, renderCmp(op, e))
			if e.Op == expr.CmpOpEq && len(e.Data) == 1 && op.mask == nil {
				switch op.kind {
				case "nfproto":
					nf = e.Data[0]
				case "l4proto":
					l4 = e.Data[0]
				}
			}
		case *expr.Lookup:
			op := regs[e.SourceRegister]
			if op == nil || e.IsDestRegSet {
				parts = append(parts, raw(e))
				continue
			}
			neg := ""
			if e.Invert {
				neg = "!= "
			}
			parts = append(parts, fmt.Sprintf("%s %s@%s", op.text, neg, e.SetName))
		case *expr.Counter:
			parts = append(parts, "counter")
		case *expr.Limit:
			parts = append(parts, renderLimit(e))
		case *expr.Log:
			parts = append(parts, renderLog(e))
		case *expr.Verdict:
			parts = append(parts, renderVerdict(e))
		default:
			parts = append(parts, raw(e))
		}
	}
	s := strings.Join(parts, " ")
	if r.Comment != "" {
		s += fmt.Sprintf(" comment %q", r.Comment)
	}
	return s
}

func metaOperand(k expr.MetaKey) *operand {
	switch k {
	case expr.MetaKeyIIFNAME:
		return &operand{text: "iifname", kind: "ifname"}
	case expr.MetaKeyOIFNAME:
		return &operand{text: "oifname", kind: "ifname"}
	case expr.MetaKeyNFPROTO:
		return &operand{text: "meta nfproto", kind: "nfproto"}
	case expr.MetaKeyL4PROTO:
		return &operand{text: "meta l4proto", kind: "l4proto"}
	}
	return &operand{text: fmt.Sprintf("meta <key %d>", k), kind: "hex"}
}

// payloadOperand names a payload field, given the protocols matched
// before it (nfproto, l4proto: 0 when none).
func payloadOperand(p *expr.Payload, nf, l4 byte) *operand {
	switch p.Base {
	case expr.PayloadBaseNetworkHeader:
		switch {
		case nf == unix.NFPROTO_IPV6 && p.Offset == 7 && p.Len == 1:
			return &operand{text: "ip6 hoplimit", kind: "decimal"}
		case p.Offset == 12 && p.Len == 4:
			return &operand{text: "ip saddr", kind: "addr"}
		case p.Offset == 16 && p.Len == 4:
			return &operand{text: "ip daddr", kind: "addr"}
		case p.Offset == 8 && p.Len == 16:
			return &operand{text: "ip6 saddr", kind: "addr"}
		case p.Offset == 24 && p.Len == 16:
			return &operand{text: "ip6 daddr", kind: "addr"}
		}
		return &operand{text: fmt.Sprintf("@nh,%d,%d", p.Offset*8, p.Len*8), kind: "hex"}
	case expr.PayloadBaseTransportHeader:
		switch {
		case l4 == unix.IPPROTO_ICMPV6 && p.Offset == 0 && p.Len == 1:
			return &operand{text: "icmpv6 type", kind: "icmpv6type"}
		case p.Offset == 0 && p.Len == 2:
			return &operand{text: "th sport", kind: "port"}
		case p.Offset == 2 && p.Len == 2:
			return &operand{text: "th dport", kind: "port"}
		}
		return &operand{text: fmt.Sprintf("@th,%d,%d", p.Offset*8, p.Len*8), kind: "hex"}
	case expr.PayloadBaseLLHeader:
		return &operand{text: fmt.Sprintf("@ll,%d,%d", p.Offset*8, p.Len*8), kind: "hex"}
	}
	return &operand{text: fmt.Sprintf("<payload base %d,%d,%d>", p.Base, p.Offset*8, p.Len*8), kind: "hex"}
}

func ctOperand(c *expr.Ct) *operand {
	dir := "original"
	if c.Direction == ctDirReply {
		dir = "reply"
	}
	switch c.Key {
	case expr.CtKeySTATE:
		return &operand{text: "ct state", kind: "ctstate"}
	case expr.CtKeyPROTODST:
		return &operand{text: "ct " + dir + " proto-dst", kind: "port"}
	case expr.CtKeyPROTOSRC:
		return &operand{text: "ct " + dir + " proto-src", kind: "port"}
	}
	return &operand{text: fmt.Sprintf("ct <key %d>", c.Key), kind: "hex"}
}

func renderCmp(op *operand, c *expr.Cmp) string {
	if op.kind == "ctstate" && op.mask != nil && c.Op == expr.CmpOpNeq && allZero(c.Data) {
		// ct state a,b: (state & mask) != 0
		return op.text + " " + ctStateNames(op.mask)
	}
	ops := map[expr.CmpOp]string{expr.CmpOpEq: "", expr.CmpOpNeq: "!= ", expr.CmpOpLt: "< ",
		expr.CmpOpLte: "<= ", expr.CmpOpGt: "> ", expr.CmpOpGte: ">= "}
	s := op.text
	if op.mask != nil {
		s += fmt.Sprintf(" & 0x%x ==", op.mask)
	}
	return fmt.Sprintf("%s %s%s", s, ops[c.Op], renderValue(op.kind, c.Data))
}

func renderValue(kind string, d []byte) string {
	switch kind {
	case "ifname":
		return strconv.Quote(string(bytes.TrimRight(d, "\x00")))
	case "nfproto":
		if len(d) == 1 {
			switch d[0] {
			case unix.NFPROTO_IPV4:
				return "ipv4"
			case unix.NFPROTO_IPV6:
				return "ipv6"
			}
		}
	case "l4proto":
		if len(d) == 1 {
			switch d[0] {
			case unix.IPPROTO_TCP:
				return "tcp"
			case unix.IPPROTO_UDP:
				return "udp"
			case unix.IPPROTO_ICMP:
				return "icmp"
			case unix.IPPROTO_ICMPV6:
				return "ipv6-icmp"
			}
			return strconv.Itoa(int(d[0]))
		}
	case "addr":
		if a, ok := netip.AddrFromSlice(d); ok {
			return a.String()
		}
	case "port":
		if len(d) == 2 {
			return strconv.Itoa(int(binary.BigEndian.Uint16(d)))
		}
	case "decimal":
		if len(d) == 1 {
			return strconv.Itoa(int(d[0]))
		}
	case "icmpv6type":
		if len(d) == 1 {
			if name, ok := icmpv6Types[d[0]]; ok {
				return name
			}
			return strconv.Itoa(int(d[0]))
		}
	}
	return fmt.Sprintf("0x%x", d)
}

// icmpv6Types are nft's names for ICMPv6 types.
var icmpv6Types = map[byte]string{
	1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
	128: "echo-request", 129: "echo-reply", 130: "mld-listener-query", 131: "mld-listener-report",
	132: "mld-listener-done", ndRouterSolicit: "nd-router-solicit", 134: "nd-router-advert",
	ndNeighborSolicit: "nd-neighbor-solicit", ndNeighborAdvert: "nd-neighbor-advert", 137: "nd-redirect",
	138: "router-renumbering", 141: "ind-neighbor-solicit", 142: "ind-neighbor-advert", 143: "mld2-listener-report",
}

func ctStateNames(mask []byte) string {
	if len(mask) != 4 {
		return fmt.Sprintf("0x%x", mask)
	}
	bits := binaryutil.NativeEndian.Uint32(mask)
	var names []string
	for _, s := range []struct {
		bit  uint32
		name string
	}{
		{expr.CtStateBitINVALID, "invalid"}, {expr.CtStateBitESTABLISHED, "established"},
		{expr.CtStateBitRELATED, "related"}, {expr.CtStateBitNEW, "new"}, {expr.CtStateBitUNTRACKED, "untracked"},
	} {
		if bits&s.bit != 0 {
			names = append(names, s.name)
			bits &^= s.bit
		}
	}
	if bits != 0 {
		names = append(names, fmt.Sprintf("0x%x", bits))
	}
	return strings.Join(names, ",")
}

func renderLimit(l *expr.Limit) string {
	units := map[expr.LimitTime]string{expr.LimitTimeSecond: "second", expr.LimitTimeMinute: "minute",
		expr.LimitTimeHour: "hour", expr.LimitTimeDay: "day", expr.LimitTimeWeek: "week"}
	over := ""
	if l.Over {
		over = "over "
	}
	if l.Type == expr.LimitTypePktBytes {
		return fmt.Sprintf("limit rate %s%d bytes/%s burst %d bytes", over, l.Rate, units[l.Unit], l.Burst)
	}
	return fmt.Sprintf("limit rate %s%d/%s burst %d packets", over, l.Rate, units[l.Unit], l.Burst)
}

func renderLog(l *expr.Log) string {
	s := "log"
	if l.Key&(1<<unix.NFTA_LOG_PREFIX) != 0 {
		s += fmt.Sprintf(" prefix %q", string(bytes.TrimRight(l.Data, "\x00")))
	}
	if l.Key&(1<<unix.NFTA_LOG_GROUP) != 0 {
		s += fmt.Sprintf(" group %d", l.Group)
	}
	if l.Key&(1<<unix.NFTA_LOG_LEVEL) != 0 {
		levels := []string{"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug", "audit"}
		if int(l.Level) < len(levels) {
			s += " level " + levels[l.Level]
		} else {
			s += fmt.Sprintf(" level %d", l.Level)
		}
	}
	if l.Key&(1<<unix.NFTA_LOG_FLAGS) != 0 {
		s += fmt.Sprintf(" flags 0x%x", uint32(l.Flags))
	}
	return s
}

func renderVerdict(v *expr.Verdict) string {
	switch v.Kind {
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictContinue:
		return "continue"
	case expr.VerdictJump:
		return "jump " + v.Chain
	case expr.VerdictGoto:
		return "goto " + v.Chain
	}
	return fmt.Sprintf("<verdict %d %s>", v.Kind, v.Chain)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
