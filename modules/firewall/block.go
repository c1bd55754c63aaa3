// Package firewall is the firewall module: an nftables table of dockward's
// own (`table inet <table>`) that narrows what containers on declared Docker
// networks may reach (egress_allow), keeps internal networks off the outside
// and the host, and lets published ports be reached only from listed sources
// (ingress_allow). It talks netlink through google/nftables, never nft, and
// replaces its table in one atomic batch; every other table is left alone.
//
// The desired table is built by pure functions (build.go) into a small IR
// (ir.go) whose rules are google/nftables expressions, rendered as nft
// text (render.go) and compared with the live table on that text
// (diff.go). nft.go sends it as one batch and reads the table back;
// nftrules.go holds the read-back parts done by hand (rules, because of a
// decoding bug in google/nftables v0.3.0; set elements and dumps, for
// speed). Network names are resolved to bridge interfaces through the
// Docker Engine API (docker.go); module.go is Plan and Apply.
package firewall

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/dockward/dockward/config"
	"github.com/hashicorp/hcl/v2"
)

// Block is the decoded firewall block.
type Block struct {
	Table string
	// LogPrefix, when set, makes every drop rule log (rate-limited) with
	// this prefix before it drops.
	LogPrefix string
	Networks  []*Network
	Range     hcl.Range
}

// Network is one `network "NAME"` block.
type Network struct {
	Name     string
	Internal bool
	Create   bool
	// Bridge, when set, names the bridge interface directly and Docker is
	// not asked (a bridge managed outside Docker, or a pinned name).
	Bridge  string
	Egress  []*Allow
	Ingress []*Allow
	Range   hcl.Range
}

// Allow is one egress_allow or ingress_allow block: proto and ports, and the
// destination (egress) or source (ingress) addresses.
type Allow struct {
	Proto string // "tcp", "udp" or "icmp"
	// Ports is sorted and without duplicates; empty means every port.
	Ports []uint16
	Addrs []netip.Prefix
	Range hcl.Range
}

// ID implements config.Block.
func (b *Block) ID() string { return "firewall" }

// DefRange implements config.Block.
func (b *Block) DefRange() hcl.Range { return b.Range }

// DefaultTable is the table name when the block sets none.
const DefaultTable = "dockward"

var (
	blockSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "table"}, {Name: "log_prefix"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "network", LabelNames: []string{"name"}}},
	}
	networkSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "internal"}, {Name: "create"}, {Name: "bridge"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "egress_allow"}, {Type: "ingress_allow"}},
	}
	egressSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "proto"}, {Name: "ports"}, {Name: "to", Required: true},
	}}
	ingressSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "proto"}, {Name: "ports"}, {Name: "from", Required: true},
	}}
)

var (
	// nft identifiers: what `nft -f` accepts unquoted as a table name.
	tableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
	// Docker's own rule for network names.
	networkRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// reservedTables are the conventional names of tables other tools own
// (Debian's /etc/nftables.conf has `table inet filter`): dockward replaces
// its table whole, so taking one of these would wipe someone else's rules.
var reservedTables = []string{"filter", "nat", "mangle", "raw", "security"}

// Kind is the firewall block kind.
var Kind = config.Kind{Type: "firewall", Decode: decode}

var errAt = config.ErrAt

func decode(hb *hcl.Block) (config.Block, hcl.Diagnostics) {
	b := &Block{Table: DefaultTable, Range: hb.DefRange}
	content, diags := hb.Body.Content(blockSchema)
	if a, ok := content.Attributes["table"]; ok {
		s, d := config.String(a)
		diags = append(diags, d...)
		if !d.HasErrors() {
			switch {
			case !tableRE.MatchString(s) || len(s) > 64:
				diags = append(diags, errAt(a.Expr.Range(), "Invalid table name",
					fmt.Sprintf("%q is not an nftables identifier: a letter or _, then letters, digits, _ . or -, at most 64 bytes.", s)))
			case slices.Contains(reservedTables, s):
				diags = append(diags, errAt(a.Expr.Range(), "Invalid table name",
					fmt.Sprintf("%q is conventionally another tool's table (Debian's nftables.service loads `table inet filter`); dockward replaces its table whole, so give it a name of its own.", s)))
			default:
				b.Table = s
			}
		}
	}
	if a, ok := content.Attributes["log_prefix"]; ok {
		s, d := config.String(a)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if msg := checkLogPrefix(s); msg != "" {
				diags = append(diags, errAt(a.Expr.Range(), "Invalid log prefix", msg))
			} else {
				b.LogPrefix = s
			}
		}
	}
	seen := map[string]*Network{}
	bridges := map[string]hcl.Range{}
	for _, nb := range content.Blocks {
		n, d := decodeNetwork(nb)
		diags = append(diags, d...)
		if first, dup := seen[n.Name]; dup {
			diags = append(diags, errAt(nb.LabelRanges[0], "Duplicate network block",
				fmt.Sprintf("network %q was already declared at %s; declare each network once.", n.Name, first.Range)))
			continue
		}
		seen[n.Name] = n
		if n.Bridge != "" {
			if first, dup := bridges[n.Bridge]; dup {
				diags = append(diags, errAt(n.Range, "Duplicate bridge",
					fmt.Sprintf("bridge %q is already used by the network declared at %s.", n.Bridge, first)))
				continue
			}
			bridges[n.Bridge] = n.Range
		}
		b.Networks = append(b.Networks, n)
	}
	return b, diags
}

func checkLogPrefix(s string) string {
	if s == "" {
		return "log_prefix must not be empty; leave it out to log nothing."
	}
	// The kernel keeps at most 127 bytes (NF_LOG_PREFIXLEN); syslog and
	// the nft parser want printable text without quotes.
	if len(s) > 127 {
		return fmt.Sprintf("log_prefix is %d bytes; the kernel keeps at most 127.", len(s))
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return fmt.Sprintf("log_prefix %q may only hold printable ASCII without quotes or backslashes.", s)
		}
	}
	return ""
}

func decodeNetwork(nb *hcl.Block) (*Network, hcl.Diagnostics) {
	n := &Network{Name: nb.Labels[0], Range: config.MergeRange(nb)}
	var diags hcl.Diagnostics
	if !networkRE.MatchString(n.Name) || len(n.Name) > 128 {
		diags = append(diags, errAt(nb.LabelRanges[0], "Invalid network name",
			fmt.Sprintf("%q is not a Docker network name: a letter or digit, then letters, digits, _ . or -.", n.Name)))
	}
	content, d := nb.Body.Content(networkSchema)
	diags = append(diags, d...)
	var createRange, bridgeRange, internalRange hcl.Range
	for name, a := range content.Attributes {
		var d hcl.Diagnostics
		switch name {
		case "internal":
			n.Internal, d = config.Bool(a)
			internalRange = a.Range
		case "create":
			n.Create, d = config.Bool(a)
			createRange = a.Range
		case "bridge":
			n.Bridge, d = config.String(a)
			bridgeRange = a.Range
			if !d.HasErrors() {
				if msg := checkIfname(n.Bridge); msg != "" {
					d = append(d, errAt(a.Expr.Range(), "Invalid bridge name", msg))
					n.Bridge = ""
				}
			}
		}
		diags = append(diags, d...)
	}
	if n.Create && n.Bridge != "" {
		diags = append(diags, errAt(createRange, "Conflicting network settings",
			fmt.Sprintf("bridge (at %s) names an interface directly, so Docker is not asked about this network and cannot create it; drop one of create and bridge.", bridgeRange)))
	}
	for _, ab := range content.Blocks {
		switch ab.Type {
		case "egress_allow":
			a, d := decodeAllow(ab, egressSchema, "to")
			diags = append(diags, d...)
			if n.Internal {
				diags = append(diags, errAt(ab.DefRange, "Contradictory egress_allow",
					fmt.Sprintf("network %q is internal = true (at %s): nothing leaves it, so egress_allow could never apply. Remove one of them.", n.Name, internalRange)))
				continue
			}
			n.Egress = append(n.Egress, a)
		case "ingress_allow":
			a, d := decodeAllow(ab, ingressSchema, "from")
			diags = append(diags, d...)
			if n.Internal {
				diags = append(diags, errAt(ab.DefRange, "Contradictory ingress_allow",
					fmt.Sprintf("network %q is internal = true (at %s): nothing from outside reaches it, so ingress_allow could never apply. Remove one of them.", n.Name, internalRange)))
				continue
			}
			n.Ingress = append(n.Ingress, a)
		}
	}
	return n, diags
}

// checkIfname applies the kernel's rules for interface names
// (dev_valid_name): 1 to 15 bytes, not "." or "..", no '/', ':' or space.
func checkIfname(s string) string {
	switch {
	case s == "":
		return "An interface name must not be empty."
	case len(s) > 15:
		return fmt.Sprintf("%q is %d bytes; Linux interface names have at most 15.", s, len(s))
	case s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\"\\"):
		return fmt.Sprintf("%q is not a valid interface name.", s)
	}
	return ""
}

var protos = []string{"tcp", "udp", "icmp"}

func decodeAllow(ab *hcl.Block, schema *hcl.BodySchema, addrAttr string) (*Allow, hcl.Diagnostics) {
	a := &Allow{Proto: "tcp", Range: ab.DefRange}
	content, diags := ab.Body.Content(schema)
	if attr, ok := content.Attributes["proto"]; ok {
		s, d := config.String(attr)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if !slices.Contains(protos, s) {
				diags = append(diags, errAt(attr.Expr.Range(), "Unknown protocol",
					fmt.Sprintf("%q is not one of %s. (icmp covers ICMP for IPv4 and ICMPv6 for IPv6.)", s, strings.Join(quote(protos), ", "))))
			} else {
				a.Proto = s
			}
		}
	}
	if attr, ok := content.Attributes["ports"]; ok {
		ports, d := config.Ports(attr)
		diags = append(diags, d...)
		switch {
		case a.Proto == "icmp":
			diags = append(diags, errAt(attr.Range, "Ports with icmp",
				"ICMP has no ports; remove ports, or set proto to \"tcp\" or \"udp\"."))
		case !d.HasErrors() && len(ports) == 0:
			diags = append(diags, errAt(attr.Expr.Range(), "Empty port list",
				"ports = [] would match nothing; list ports, or leave ports out to allow every port."))
		}
		slices.Sort(ports)
		a.Ports = slices.Compact(ports)
	}
	if attr, ok := content.Attributes[addrAttr]; ok {
		addrs, d := config.Prefixes(attr)
		diags = append(diags, d...)
		if !d.HasErrors() && len(addrs) == 0 {
			diags = append(diags, errAt(attr.Expr.Range(), "Empty address list",
				fmt.Sprintf("%s = [] would match nothing; to mean anywhere, write [\"0.0.0.0/0\", \"::/0\"].", addrAttr)))
		}
		a.Addrs = addrs
	}
	return a, diags
}

func quote(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
