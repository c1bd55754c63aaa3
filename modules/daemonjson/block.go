// Package daemonjson manages /etc/docker/daemon.json: the docker_daemon
// block, the pure document functions (parse, merge, diff, render) and the
// module that plans and applies them. It merges the keys the configuration
// names into the file and leaves every other key, with its value and its
// place, as it was; it removes a key only if dockward wrote it.
package daemonjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/config"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// DefaultPath is where dockerd reads its configuration unless started with
// --config-file.
const DefaultPath = "/etc/docker/daemon.json"

// Block is a decoded docker_daemon block.
type Block struct {
	// Path is the daemon.json path on the host (absolute, not joined with --root).
	Path string
	// Validate runs `dockerd --validate` on the candidate before writing.
	Validate bool
	// Managed holds the daemon.json keys the configuration names, in the
	// order they were written; a key not here is not managed. New keys are
	// appended to the file in this order.
	Managed []Member
	// OnSwitch is what apply does when the run would move dockerd to
	// another data root (see switch.go): SwitchRefuse, SwitchLeaveBehind
	// or SwitchMigrate.
	OnSwitch string
	Range    hcl.Range
	// Origins says where a managed key was set ("file:line") when that is
	// another file than the one first declaring docker_daemon (a conf.d
	// drop-in merged over it): plan names it in the change's Detail.
	Origins map[string]string

	// remap is the userns_remap value as decoded, for the check that its
	// user's subordinate_ids block is declared.
	remap remapUser
}

// ID implements config.Block.
func (b *Block) ID() string { return Kind.Type }

// DefRange implements config.Block.
func (b *Block) DefRange() hcl.Range { return b.Range }

// Module makes the docker_daemon module for this block.
func (b *Block) Module() agent.Module { return New(b) }

// firstClass maps the block's own attributes to the daemon.json keys they
// set. A settings entry naming one of these keys while the attribute is
// also given would say the same thing twice, possibly differently.
var firstClass = map[string]string{
	"userns_remap": "userns-remap",
	"log_driver":   "log-driver",
	"log_opts":     "log-opts",
}

var schema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "path"}, {Name: "userns_remap"}, {Name: "log_driver"}, {Name: "log_opts"},
	{Name: "settings"}, {Name: "validate"}, {Name: "on_data_root_switch"},
}}

// Kind is the docker_daemon block: no labels, one per configuration.
var Kind = config.Kind{Type: "docker_daemon", Labels: []string{}, Decode: decode}

// managedKey is a daemon.json key with where it was written, for ordering
// and for errors.
type managedKey struct {
	Member
	rng hcl.Range
}

func decode(hb *hcl.Block) (config.Block, hcl.Diagnostics) {
	b := &Block{Path: DefaultPath, Validate: true, OnSwitch: SwitchRefuse, Range: hb.DefRange}
	// Content (not JustAttributes) so that HCL reports unknown attributes
	// and blocks with "Did you mean".
	content, diags := hb.Body.Content(schema)

	// In source order, so diagnostics come out in a stable order.
	attrs := make([]*hcl.Attribute, 0, len(content.Attributes))
	for _, a := range content.Attributes {
		attrs = append(attrs, a)
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Range.Start.Byte < attrs[j].Range.Start.Byte })

	var keys []managedKey
	var settings *hcl.Attribute
	for _, attr := range attrs {
		name := attr.Name
		var d hcl.Diagnostics
		switch name {
		case "path":
			b.Path, d = config.String(attr)
			if !d.HasErrors() && (!filepath.IsAbs(b.Path) || strings.HasSuffix(b.Path, "/")) {
				d = hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid path",
					"path must be an absolute file path, like \"/etc/docker/daemon.json\".")}
			}
			if !d.HasErrors() {
				b.Path = filepath.Clean(b.Path)
			}
		case "validate":
			b.Validate, d = config.Bool(attr)
		case "on_data_root_switch":
			b.OnSwitch, d = decodeOnSwitch(attr)
		case "userns_remap", "log_driver":
			var s string
			s, d = config.String(attr)
			if !d.HasErrors() && strings.TrimSpace(s) == "" {
				d = hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid value",
					fmt.Sprintf("%s must not be empty; leave the attribute out to leave %q unmanaged.", name, firstClass[name]))}
			}
			if !d.HasErrors() && name == "userns_remap" {
				b.remap, d = decodeRemap(s, attr.Expr.Range())
			}
			if !d.HasErrors() {
				keys = append(keys, managedKey{Member{firstClass[name], jsonString(s)}, attr.Range})
			}
		case "log_opts":
			var v json.RawMessage
			v, d = decodeLogOpts(attr.Expr, true)
			if !d.HasErrors() {
				keys = append(keys, managedKey{Member{"log-opts", v}, attr.Range})
			}
		case "settings":
			settings = attr
		}
		diags = append(diags, d...)
	}
	if settings != nil {
		ks, remap, d := decodeSettings(settings, content.Attributes)
		diags = append(diags, d...)
		if remap != nil {
			b.remap = *remap
		}
		keys = append(keys, ks...)
	}

	// Written order: settings entries fall between the attributes around them.
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].rng.Start.Byte < keys[j].rng.Start.Byte })
	for _, k := range keys {
		b.Managed = append(b.Managed, k.Member)
		if k.rng.Filename != hb.DefRange.Filename {
			if b.Origins == nil {
				b.Origins = map[string]string{}
			}
			b.Origins[k.Key] = fmt.Sprintf("%s:%d", k.rng.Filename, k.rng.Start.Line)
		}
	}
	return b, diags
}

// decodeSettings decodes the settings map: daemon.json keys to any JSON
// value. Every problem is reported at the key or value it concerns.
//
// "userns-remap" given here is checked as the userns_remap attribute is,
// and returned for the same cross-block check.
func decodeSettings(attr *hcl.Attribute, attrs hcl.Attributes) ([]managedKey, *remapUser, hcl.Diagnostics) {
	// Evaluate the whole expression first: HCL reports what it finds wrong
	// inside (references, bad operands) with their ranges.
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return nil, nil, diags
	}
	if v.IsNull() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		return nil, nil, hcl.Diagnostics{errAt(attr.Expr.Range(), "Incorrect attribute value type",
			"settings must be a map of daemon.json keys to values, like { \"live-restore\" = true }.")}
	}
	pairs, d := hcl.ExprMap(attr.Expr)
	if d.HasErrors() {
		return nil, nil, hcl.Diagnostics{errAt(attr.Expr.Range(), "Incorrect attribute value type",
			"settings must be written as a map, like { \"live-restore\" = true }.")}
	}
	var out []managedKey
	var remap *remapUser
	seen := map[string]hcl.Range{}
	for _, kv := range pairs {
		key, d := keyString(kv.Key)
		if d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		kr := kv.Key.Range()
		if d := duplicate(seen, key, kr); d != nil {
			diags = append(diags, d)
			continue
		}
		if attrName := attrFor(key); attrName != "" && attrs[attrName] != nil {
			diags = append(diags, errAt(kr, "Conflicting daemon.json key",
				fmt.Sprintf("%q is already set by %s at %s; set it in one place only.", key, attrName, attrs[attrName].NameRange)))
			continue
		}
		if strings.Contains(key, "_") {
			dashed := strings.ReplaceAll(key, "_", "-")
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Unusual daemon.json key",
				Detail: fmt.Sprintf("daemon.json keys are written with dashes; did you mean %q?", dashed), Subject: kr.Ptr()})
		}
		var raw json.RawMessage
		if key == "userns-remap" {
			v, vd := kv.Value.Value(nil)
			if vd.HasErrors() || v.IsNull() || v.Type() != cty.String {
				diags = append(diags, errAt(kv.Value.Range(), "Invalid userns-remap", "userns-remap must be a string, like \"default\"."))
				continue
			}
			r, rd := decodeRemap(v.AsString(), kv.Value.Range())
			diags = append(diags, rd...)
			if rd.HasErrors() {
				continue
			}
			remap = &r
		}
		if key == "log-opts" {
			// dockerd takes log-opts as a map of strings only; unlike the
			// log_opts attribute, settings are written as given, so say so.
			raw, d = decodeLogOpts(kv.Value, false)
		} else {
			raw, d = exprJSON(kv.Value)
		}
		if d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		out = append(out, managedKey{Member{key, raw}, hcl.RangeBetween(kr, kv.Value.Range())})
	}
	return out, remap, diags
}

// duplicate reports a key given twice in one map: HCL keeps the last
// silently, which would hide a typo'd intent.
func duplicate(seen map[string]hcl.Range, key string, rng hcl.Range) *hcl.Diagnostic {
	if first, dup := seen[key]; dup {
		return errAt(rng, "Duplicate key", fmt.Sprintf("%q was already given at %s.", key, first))
	}
	seen[key] = rng
	return nil
}

func attrFor(key string) string {
	for a, k := range firstClass {
		if k == key {
			return a
		}
	}
	return ""
}

// keyString evaluates a map key: a bare name (max-size) or a string.
func keyString(expr hcl.Expression) (string, hcl.Diagnostics) {
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return "", diags
	}
	if v.IsNull() || v.Type() != cty.String {
		return "", hcl.Diagnostics{errAt(expr.Range(), "Invalid key", "A daemon.json key must be a string.")}
	}
	s := v.AsString()
	if strings.TrimSpace(s) == "" {
		return "", hcl.Diagnostics{errAt(expr.Range(), "Invalid key", "A daemon.json key must not be empty.")}
	}
	return s, nil
}

// decodeLogOpts decodes a map of log driver options. dockerd refuses
// anything but strings there ("json: cannot unmarshal number into Go struct
// field ... of type string"), so with convert numbers and bools are written
// as strings (max-file = 3 becomes "3"); without, they are errors.
func decodeLogOpts(expr hcl.Expression, convert bool) (json.RawMessage, hcl.Diagnostics) {
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return nil, diags
	}
	if v.IsNull() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		return nil, hcl.Diagnostics{errAt(expr.Range(), "Incorrect value type",
			"Log options must be a map, like { max-size = \"10m\", max-file = 3 }.")}
	}
	pairs, d := hcl.ExprMap(expr)
	if d.HasErrors() {
		return nil, hcl.Diagnostics{errAt(expr.Range(), "Incorrect value type",
			"Log options must be written as a map, like { max-size = \"10m\", max-file = 3 }.")}
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	n := 0
	seen := map[string]hcl.Range{}
	for _, kv := range pairs {
		key, d := keyString(kv.Key)
		if d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		if d := duplicate(seen, key, kv.Key.Range()); d != nil {
			diags = append(diags, d)
			continue
		}
		val, d := kv.Value.Value(nil)
		if d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		var s string
		switch {
		case val.IsNull():
			diags = append(diags, errAt(kv.Value.Range(), "Invalid log option", fmt.Sprintf("%s must have a value; leave it out instead.", key)))
			continue
		case val.Type() == cty.String:
			s = val.AsString()
		case convert && val.Type() == cty.Number:
			if err := config.CheckNumber(val); err != nil {
				diags = append(diags, errAt(kv.Value.Range(), "Invalid log option", fmt.Sprintf("%s: %v.", key, err)))
				continue
			}
			s = numberText(val.AsBigFloat())
		case convert && val.Type() == cty.Bool:
			s = fmt.Sprint(val.True())
		case val.Type() == cty.Number || val.Type() == cty.Bool:
			diags = append(diags, errAt(kv.Value.Range(), "Invalid log option",
				fmt.Sprintf("dockerd takes log options as strings only: write %s = \"%s\", or use the log_opts attribute, which converts numbers.", key, cty2text(val))))
			continue
		default:
			diags = append(diags, errAt(kv.Value.Range(), "Invalid log option",
				fmt.Sprintf("%s must be a string, number or bool; dockerd takes log options as strings.", key)))
			continue
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		buf.Write(jsonString(key))
		buf.WriteByte(':')
		buf.Write(jsonString(s))
	}
	buf.WriteByte('}')
	return buf.Bytes(), diags
}

func cty2text(v cty.Value) string {
	if v.Type() == cty.Number {
		return numberText(v.AsBigFloat())
	}
	return fmt.Sprint(v.True())
}

// exprJSON converts a settings value to compact JSON. Object and tuple
// constructors are walked so that the keys of nested objects keep the order
// they were written in (cty would sort them) and each problem points at the
// element it concerns.
func exprJSON(expr hcl.Expression) (json.RawMessage, hcl.Diagnostics) {
	switch e := expr.(type) {
	case *hclsyntax.ObjectConsExpr:
		var buf bytes.Buffer
		var diags hcl.Diagnostics
		buf.WriteByte('{')
		seen := map[string]hcl.Range{}
		n := 0
		for _, kv := range e.ExprMap() {
			key, d := keyString(kv.Key)
			if d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			if d := duplicate(seen, key, kv.Key.Range()); d != nil {
				diags = append(diags, d)
				continue
			}
			val, d := exprJSON(kv.Value)
			if d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			if n > 0 {
				buf.WriteByte(',')
			}
			n++
			buf.Write(jsonString(key))
			buf.WriteByte(':')
			buf.Write(val)
		}
		buf.WriteByte('}')
		return buf.Bytes(), diags
	case *hclsyntax.TupleConsExpr:
		var buf bytes.Buffer
		var diags hcl.Diagnostics
		buf.WriteByte('[')
		n := 0
		for _, el := range e.Exprs {
			val, d := exprJSON(el)
			if d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			n++
			if n > 1 {
				buf.WriteByte(',')
			}
			buf.Write(val)
		}
		buf.WriteByte(']')
		return buf.Bytes(), diags
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return nil, diags
	}
	raw, err := ctyJSON(v)
	if err != nil {
		return nil, hcl.Diagnostics{errAt(expr.Range(), "Invalid value", err.Error())}
	}
	return raw, nil
}

// ctyJSON converts an evaluated value (no constructor left to walk).
func ctyJSON(v cty.Value) (json.RawMessage, error) {
	if v.IsNull() {
		return nil, fmt.Errorf("null is not a daemon.json value here; leave the key out instead")
	}
	if !v.IsWhollyKnown() {
		return nil, fmt.Errorf("the value must be known")
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return jsonString(v.AsString()), nil
	case t == cty.Number:
		if err := config.CheckNumber(v); err != nil {
			return nil, err
		}
		return json.RawMessage(numberText(v.AsBigFloat())), nil
	case t == cty.Bool:
		if v.True() {
			return json.RawMessage("true"), nil
		}
		return json.RawMessage("false"), nil
	case t.IsObjectType() || t.IsMapType():
		return ctyJSONElems(v, '{', '}', true)
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		return ctyJSONElems(v, '[', ']', false)
	}
	return nil, fmt.Errorf("a %s cannot be written to daemon.json", t.FriendlyName())
}

// ctyJSONElems writes a collection's elements between open and close,
// each prefixed by its key when keyed (an object).
func ctyJSONElems(v cty.Value, open, close byte, keyed bool) (json.RawMessage, error) {
	var buf bytes.Buffer
	buf.WriteByte(open)
	i := 0
	for it := v.ElementIterator(); it.Next(); i++ {
		k, ev := it.Element()
		val, err := ctyJSON(ev)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		if keyed {
			buf.Write(jsonString(k.AsString()))
			buf.WriteByte(':')
		}
		buf.Write(val)
	}
	buf.WriteByte(close)
	return buf.Bytes(), nil
}

// numberText writes an HCL number the way a person would: 3, 0.5, 1e+30
// rather than 3.000.
func numberText(f *big.Float) string {
	if f.IsInt() {
		if i, acc := f.Int(nil); acc == big.Exact && len(i.String()) <= 30 {
			return i.String()
		}
	}
	return f.Text('g', -1)
}

var errAt = config.ErrAt
