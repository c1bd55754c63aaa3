package config

import (
	"fmt"
	"math/big"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// The helpers below decode one attribute each and check its value, returning
// diagnostics that point at the attribute's expression. They evaluate with a
// nil EvalContext: the configuration has no variables or functions, so a
// reference anywhere but restart_on is an error at its range.

var errAt = ErrAt

// Value evaluates an attribute expression without variables.
func Value(attr *hcl.Attribute) (cty.Value, hcl.Diagnostics) {
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if !v.IsWhollyKnown() || v.IsNull() {
		return cty.NilVal, hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid value", fmt.Sprintf("%q must have a value.", attr.Name))}
	}
	return v, nil
}

// String decodes a string attribute.
func String(attr *hcl.Attribute) (string, hcl.Diagnostics) {
	v, diags := Value(attr)
	if diags.HasErrors() {
		return "", diags
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil || v.Type() != cty.String {
		return "", hcl.Diagnostics{errAt(attr.Expr.Range(), "Incorrect attribute value type", fmt.Sprintf("%q must be a string.", attr.Name))}
	}
	return s.AsString(), nil
}

// Bool decodes a bool attribute.
func Bool(attr *hcl.Attribute) (bool, hcl.Diagnostics) {
	v, diags := Value(attr)
	if diags.HasErrors() {
		return false, diags
	}
	if v.Type() != cty.Bool {
		return false, hcl.Diagnostics{errAt(attr.Expr.Range(), "Incorrect attribute value type", fmt.Sprintf("%q must be true or false.", attr.Name))}
	}
	return v.True(), nil
}

// Int decodes a whole-number attribute within [min, max].
func Int(attr *hcl.Attribute, min, max int64) (int64, hcl.Diagnostics) {
	v, diags := Value(attr)
	if diags.HasErrors() {
		return 0, diags
	}
	return intValue(v, attr.Expr.Range(), attr.Name, min, max)
}

func intValue(v cty.Value, rng hcl.Range, what string, min, max int64) (int64, hcl.Diagnostics) {
	if v.Type() != cty.Number {
		return 0, hcl.Diagnostics{errAt(rng, "Incorrect value type", fmt.Sprintf("%s must be a whole number.", what))}
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		return 0, hcl.Diagnostics{errAt(rng, "Invalid number", fmt.Sprintf("%s must be a whole number, not %s.", what, bf.Text('g', -1)))}
	}
	bi, _ := bf.Int(new(big.Int))
	if !bi.IsInt64() || bi.Int64() < min || bi.Int64() > max {
		return 0, hcl.Diagnostics{errAt(rng, "Number out of range", fmt.Sprintf("%s must be between %d and %d, not %s.", what, min, max, bi.String()))}
	}
	return bi.Int64(), nil
}

// Duration decodes a Go duration string ("90s", "5m") that must be > 0
// unless allowZero.
func Duration(attr *hcl.Attribute, allowZero bool) (time.Duration, hcl.Diagnostics) {
	s, diags := String(attr)
	if diags.HasErrors() {
		return 0, diags
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid duration", fmt.Sprintf("%s = %q is not a duration like \"90s\" or \"5m\".", attr.Name, s))}
	}
	if d < 0 || (d == 0 && !allowZero) {
		return 0, hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid duration", fmt.Sprintf("%s must be greater than zero.", attr.Name))}
	}
	return d, nil
}

// ListElems returns a list or tuple attribute's elements as expressions, so
// that each element's problems point at the element itself.
func ListElems(attr *hcl.Attribute) ([]hcl.Expression, hcl.Diagnostics) {
	exprs, diags := hcl.ExprList(attr.Expr)
	if diags.HasErrors() {
		return nil, hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid list", fmt.Sprintf("%q must be a list, like [a, b].", attr.Name))}
	}
	return exprs, nil
}

// Ports decodes a list of TCP/UDP ports (1-65535).
func Ports(attr *hcl.Attribute) ([]uint16, hcl.Diagnostics) {
	exprs, diags := ListElems(attr)
	if diags.HasErrors() {
		return nil, diags
	}
	var out []uint16
	for _, e := range exprs {
		v, d := e.Value(nil)
		if d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		n, d := intValue(v, e.Range(), "A port", 1, 65535)
		if d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		out = append(out, uint16(n))
	}
	return out, diags
}

// Prefixes decodes a list of IPv4/IPv6 addresses or CIDR prefixes. A bare
// address becomes a /32 or /128. Host bits set in a prefix are an error
// (10.0.0.1/8 is almost always a typo for 10.0.0.0/8 or 10.0.0.1/32).
func Prefixes(attr *hcl.Attribute) ([]netip.Prefix, hcl.Diagnostics) {
	exprs, diags := ListElems(attr)
	if diags.HasErrors() {
		return nil, diags
	}
	var out []netip.Prefix
	for _, e := range exprs {
		v, d := e.Value(nil)
		if d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		if v.Type() != cty.String || v.IsNull() {
			diags = append(diags, errAt(e.Range(), "Invalid address", "An address must be a string like \"10.0.0.0/8\" or \"2001:db8::1\"."))
			continue
		}
		p, err := ParsePrefix(v.AsString())
		if err != nil {
			diags = append(diags, errAt(e.Range(), "Invalid address", err.Error()))
			continue
		}
		out = append(out, p)
	}
	return out, diags
}

// ParsePrefix parses an address or CIDR prefix as Prefixes does.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix like \"10.0.0.0/8\"", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed", s)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %q?", s, p.Masked().String())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

var userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}\$?$`)

// ValidUserName reports whether s is a portable user name, as useradd
// accepts by default (NAME_REGEX of shadow-utils, 32 bytes at most).
func ValidUserName(s string) bool { return userNameRE.MatchString(s) }

// MergeRange returns the range covering a block's type and labels, used for
// errors about the block as a whole.
func MergeRange(b *hcl.Block) hcl.Range {
	r := b.TypeRange
	for _, lr := range b.LabelRanges {
		r = hcl.RangeBetween(r, lr)
	}
	return r
}
