package config

import (
	"sort"

	"github.com/hashicorp/hcl/v2"
)

// SchemaPaths lists every attribute and nested block the kinds accept, as
// dotted paths ("firewall.network.egress_allow.ports"), by running each
// Kind's decoder over a probe body that records the schemas it is asked
// for. The README's configuration reference is checked against this list,
// so the documentation cannot drift from the decoders.
func SchemaPaths(kinds []Kind) []string {
	seen := map[string]bool{}
	for _, k := range append([]Kind{AgentKind}, kinds...) {
		labels := make([]string, len(k.Labels))
		for i := range labels {
			labels[i] = "probe"
		}
		_, _ = k.Decode(&hcl.Block{Type: k.Type, Labels: labels, LabelRanges: make([]hcl.Range, len(labels)),
			Body: &probeBody{path: k.Type, seen: seen}})
		seen[k.Type] = true
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// probeBody is an hcl.Body that records the schema it is decoded with and
// answers with one empty nested block of every declared type, so that the
// decoder descends into them too.
type probeBody struct {
	path  string
	seen  map[string]bool
	depth int
}

func (p *probeBody) Content(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Diagnostics) {
	c, _, d := p.PartialContent(s)
	return c, d
}

func (p *probeBody) PartialContent(s *hcl.BodySchema) (*hcl.BodyContent, hcl.Body, hcl.Diagnostics) {
	c := &hcl.BodyContent{Attributes: hcl.Attributes{}}
	for _, a := range s.Attributes {
		p.seen[p.path+"."+a.Name] = true
	}
	for _, b := range s.Blocks {
		path := p.path + "." + b.Type
		p.seen[path] = true
		if p.depth > 4 {
			continue
		}
		labels := make([]string, len(b.LabelNames))
		lr := make([]hcl.Range, len(b.LabelNames))
		for i := range labels {
			labels[i] = "probe"
		}
		c.Blocks = append(c.Blocks, &hcl.Block{Type: b.Type, Labels: labels, LabelRanges: lr,
			Body: &probeBody{path: path, seen: p.seen, depth: p.depth + 1}})
	}
	return c, &probeBody{path: p.path, seen: map[string]bool{}, depth: p.depth}, nil
}

func (p *probeBody) JustAttributes() (hcl.Attributes, hcl.Diagnostics) { return hcl.Attributes{}, nil }
func (p *probeBody) MissingItemRange() hcl.Range                       { return hcl.Range{} }
