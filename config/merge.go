package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// mergeable names the block types that may be declared once in each of
// several files (the main file and its conf.d drop-ins), and
// the map attribute of each that merges key by key ("" for none). Every
// other block declared twice is an error naming both places.
//
// A merged block is one body made of all of them (hcl.MergeBodies):
//   - nested blocks add up: a later file's firewall network "x" adds a
//     network; the same label twice is the firewall's own "Duplicate
//     network block" error, naming both places. Overriding a network
//     whole from a later file was not chosen: a network is a unit of
//     rules, and one silently replaced by a role file hides the site's.
//   - an attribute set in two of them is HCL's "Duplicate argument",
//     naming both places (docker_daemon's path, firewall's table).
//   - the map attribute (docker_daemon's settings) merges key by key in
//     file order, a later file's key replacing an earlier one; every
//     value keeps its own file:line:col.
//
// The list is kept here, beside the rules, rather than in each Kind: the
// merge is a property of how files combine, and the README documents it.
var mergeable = map[string]string{
	"firewall":      "",
	"docker_daemon": "settings",
}

// mergeBlocks returns the blocks in the order first declared, each
// mergeable one merged with its later declarations, and where each block
// ID was first declared.
func mergeBlocks(all hcl.Blocks) (hcl.Blocks, map[string]hcl.Range, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	seen := map[string]hcl.Range{}
	index := map[string]int{}
	files := map[string]map[string]bool{} // the files declaring each ID
	var out hcl.Blocks
	var bodies [][]hcl.Body
	for _, hb := range all {
		id := BlockID(hb)
		first, dup := seen[id]
		if !dup {
			seen[id] = hb.DefRange
			files[id] = map[string]bool{hb.DefRange.Filename: true}
			index[id] = len(out)
			out = append(out, hb)
			bodies = append(bodies, []hcl.Body{hb.Body})
			continue
		}
		// Merging is for drop-ins: within one file a block is written
		// once, and a second one there is a mistake.
		if _, ok := mergeable[hb.Type]; !ok || files[id][hb.DefRange.Filename] {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate " + hb.Type + " block",
				Detail:   fmt.Sprintf("%s was already declared at %s; each block may appear only once.", id, first),
				Subject:  hb.DefRange.Ptr(),
			})
			continue
		}
		files[id][hb.DefRange.Filename] = true
		i := index[id]
		bodies[i] = append(bodies[i], hb.Body)
	}
	for i, hb := range out {
		if len(bodies[i]) < 2 {
			continue
		}
		merged := *hb
		merged.Body = &mergedBody{bodies: bodies[i], mapAttr: mergeable[hb.Type]}
		out[i] = &merged
	}
	return out, seen, diags
}

// mergedBody is the bodies of one block declared several times: HCL's
// merged body, with one map attribute merged key by key.
type mergedBody struct {
	bodies  []hcl.Body
	mapAttr string
}

func (m *mergedBody) Content(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	rest, attr, diags := m.splitMap(s)
	c, d := hcl.MergeBodies(rest).Content(s)
	diags = append(diags, d...)
	if attr != nil {
		c.Attributes[m.mapAttr] = attr
	}
	return c, diags
}

func (m *mergedBody) PartialContent(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	rest, attr, diags := m.splitMap(s)
	c, remain, d := hcl.MergeBodies(rest).PartialContent(s)
	diags = append(diags, d...)
	if attr != nil {
		c.Attributes[m.mapAttr] = attr
	}
	return c, remain, diags
}

func (m *mergedBody) JustAttributes() (hcl.Attributes, hcl.Diagnostics) {
	return hcl.MergeBodies(m.bodies).JustAttributes()
}

func (m *mergedBody) MissingItemRange() hcl.Range { return m.bodies[0].MissingItemRange() }

// splitMap takes the map attribute out of every body (when the schema asks
// for it) and merges it; the bodies returned no longer have it.
func (m *mergedBody) splitMap(s *hcl.BodySchema) ([]hcl.Body, *hcl.Attribute, hcl.Diagnostics) {
	asked := false
	for _, a := range s.Attributes {
		asked = asked || (m.mapAttr != "" && a.Name == m.mapAttr)
	}
	if !asked {
		return m.bodies, nil, nil
	}
	var diags hcl.Diagnostics
	var attrs []*hcl.Attribute
	rest := make([]hcl.Body, 0, len(m.bodies))
	only := &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: m.mapAttr}}}
	for _, b := range m.bodies {
		c, r, d := b.PartialContent(only)
		diags = append(diags, d...)
		rest = append(rest, r)
		if a, ok := c.Attributes[m.mapAttr]; ok {
			attrs = append(attrs, a)
		}
	}
	attr, d := mergeMaps(attrs)
	return rest, attr, append(diags, d...)
}

// mergeMaps merges map attributes written as literal maps key by key: a
// key of a later one removes the same key of the earlier ones. Keys
// repeated within one map are left for the block's decoder to report.
func mergeMaps(attrs []*hcl.Attribute) (*hcl.Attribute, hcl.Diagnostics) {
	switch len(attrs) {
	case 0:
		return nil, nil
	case 1:
		return attrs[0], nil
	}
	var diags hcl.Diagnostics
	var items []*hclsyntax.ObjectConsItem
	for _, a := range attrs {
		obj, ok := a.Expr.(*hclsyntax.ObjectConsExpr)
		if !ok {
			diags = append(diags, errAt(a.Expr.Range(), "Map cannot be merged",
				fmt.Sprintf("%s is set in more than one file, so each must be written as a literal map, like { \"live-restore\" = true }: its keys merge one by one, a later file's winning.", a.Name)))
			continue
		}
		later := map[string]bool{}
		for i := range obj.Items {
			if k, ok := mapKey(&obj.Items[i]); ok {
				later[k] = true
			}
		}
		kept := items[:0:0]
		for _, it := range items {
			if k, ok := mapKey(it); ok && later[k] {
				continue
			}
			kept = append(kept, it)
		}
		items = kept
		for i := range obj.Items {
			items = append(items, &obj.Items[i])
		}
	}
	first := attrs[0]
	merged := &hclsyntax.ObjectConsExpr{Items: make([]hclsyntax.ObjectConsItem, len(items)), SrcRange: first.Expr.Range(), OpenRange: first.Expr.StartRange()}
	for i, it := range items {
		merged.Items[i] = *it
	}
	return &hcl.Attribute{Name: first.Name, Expr: merged, Range: first.Range, NameRange: first.NameRange}, diags
}

func mapKey(it *hclsyntax.ObjectConsItem) (string, bool) {
	v, d := it.KeyExpr.Value(nil)
	if d.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type().FriendlyName() != "string" {
		return "", false
	}
	return v.AsString(), true
}
