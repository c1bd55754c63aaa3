package config

import (
	"fmt"
	"github.com/agext/levenshtein"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// File is a decoded configuration.
type File struct {
	Filename string
	// Blocks in the order they were written; the agent block is not among
	// them (see Agent).
	Blocks []Block
	Agent  *AgentBlock
	// Settings are the blocks of Setting kinds, in the order written.
	Settings []Block
	// Files holds the parsed source, for rendering diagnostics.
	Files map[string]*hcl.File
}

// Block returns the block with the given ID, or nil.
func (f *File) Block(id string) Block {
	for _, b := range f.Blocks {
		if b.ID() == id {
			return b
		}
	}
	return nil
}

// Setting returns the setting block with the given ID, or nil.
func (f *File) Setting(id string) Block {
	for _, b := range f.Settings {
		if b.ID() == id {
			return b
		}
	}
	return nil
}

// Load parses and decodes src against the block kinds given. It returns
// every diagnostic it finds, not only the first; a File is returned only
// when there are no errors.
func Load(filename string, src []byte, kinds []Kind) (*File, hcl.Diagnostics) {
	f, diags := Decode(filename, src, kinds)
	if diags.HasErrors() {
		return nil, diags
	}
	return f, diags
}

// Decode is Load, but returns the partial File alongside errors (for
// rendering diagnostics with their source).
//
// Diagnostics come in file order, at most MaxDiagnostics of them and one
// more saying how many were left out.
func Decode(filename string, src []byte, kinds []Kind) (*File, hcl.Diagnostics) {
	return DecodeParts([]Part{{Filename: filename, Bytes: src}}, kinds)
}

// LoadSource is Load over a Source's main file and drop-ins.
func LoadSource(src *Source, kinds []Kind) (*File, hcl.Diagnostics) {
	f, diags := DecodeParts(src.Parts(), kinds)
	if diags.HasErrors() {
		return nil, diags
	}
	return f, diags
}

// DecodeParts is Decode over several files merged in the order given (the
// main file, then its conf.d drop-ins): see mergeBlocks for the rules.
func DecodeParts(parts []Part, kinds []Kind) (*File, hcl.Diagnostics) {
	f, diags := decode(parts, kinds)
	return f, capDiagnostics(diags)
}

func decode(parts []Part, kinds []Kind) (_ *File, diags hcl.Diagnostics) {
	out := &File{Filename: parts[0].Filename, Files: map[string]*hcl.File{}}
	// Every file's size and nesting first, then its syntax: a file that
	// fails either stops the decode, after all of them were looked at.
	var parsed []*hcl.File
	for _, p := range parts {
		if d := checkLimits(p.Filename, p.Bytes); d.HasErrors() {
			diags = append(diags, d...)
			continue
		}
		hf, d := hclsyntax.ParseConfig(p.Bytes, p.Filename, hcl.InitialPos)
		if hf != nil {
			out.Files[p.Filename] = hf
		}
		diags = append(diags, d...)
		parsed = append(parsed, hf)
	}
	if diags.HasErrors() {
		out.Agent = DefaultAgent()
		return out, diags
	}
	// Number literals no float64 holds; what the blocks then say about
	// the rounded value (a count of 0, say) is dropped below.
	var literals hcl.Diagnostics
	for _, hf := range parsed {
		literals = append(literals, checkNumberLiterals(hf)...)
	}
	defer func() { diags = append(literals, dropCovered(diags, literals)...) }()

	byType := map[string]Kind{AgentKind.Type: AgentKind}
	for _, k := range kinds {
		byType[k.Type] = k
	}
	schema := &hcl.BodySchema{}
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: t, LabelNames: byType[t].Labels})
	}
	var all hcl.Blocks
	for _, hf := range parsed {
		content, d := hf.Body.Content(schema)
		diags = append(diags, d...)
		all = append(all, content.Blocks...)
	}
	blocks, seen, d := mergeBlocks(all)
	diags = append(diags, d...)

	for _, hb := range blocks {
		blk, d := byType[hb.Type].Decode(hb)
		diags = append(diags, d...)
		if blk == nil {
			continue
		}
		if ab, ok := blk.(*AgentBlock); ok {
			out.Agent = ab
			continue
		}
		if byType[hb.Type].Setting {
			out.Settings = append(out.Settings, blk)
			continue
		}
		out.Blocks = append(out.Blocks, blk)
	}
	if out.Agent == nil {
		out.Agent = DefaultAgent()
	}

	// restart_on and similar references must name declared blocks.
	declared := keys(seen)
	unresolved := 0
	for _, b := range out.Blocks {
		r, ok := b.(Referrer)
		if !ok {
			continue
		}
		for _, ref := range r.References() {
			if _, ok := seen[ref.ID]; ok && ref.ID != b.ID() {
				continue
			}
			detail := fmt.Sprintf("There is no block %s in this configuration.", ref.ID)
			if ref.ID == b.ID() {
				detail = "A block cannot refer to itself."
			} else if unresolved++; unresolved <= MaxDiagnostics {
				// Suggestions cost a comparison with every block; past
				// the diagnostics shown they would be work for nothing.
				if s := suggest(ref.ID, declared); s != "" {
					detail += fmt.Sprintf(" Did you mean %s?", s)
				}
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Reference to undeclared block",
				Detail: detail, Subject: ref.Range.Ptr(),
			})
		}
	}

	// Settings that need another block.
	for _, b := range out.Blocks {
		r, ok := b.(Requirer)
		if !ok {
			continue
		}
		for _, req := range r.Requirements() {
			if _, ok := seen[req.ID]; ok {
				continue
			}
			detail := req.Why
			if s := suggest(req.ID, declared); s != "" {
				detail += fmt.Sprintf(" Did you mean %s?", s)
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Missing " + req.ID,
				Detail: detail, Subject: req.Range.Ptr(),
			})
		}
	}
	return out, diags
}

func keys(m map[string]hcl.Range) []string {
	var ks []string
	for k := range m {
		if k != AgentKind.Type {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// suggest returns the candidate closest to given, or "" when none is close;
// the same rule HCL uses for its "Did you mean" (edit distance under 3).
func suggest(given string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// References decodes a list of block addresses, as in
// restart_on = [docker_daemon, subordinate_ids.dockremap].
func References(attr *hcl.Attribute) ([]Reference, hcl.Diagnostics) {
	exprs, diags := ListElems(attr)
	if diags.HasErrors() {
		return nil, diags
	}
	var refs []Reference
	for _, e := range exprs {
		tr, d := hcl.AbsTraversalForExpr(e)
		if d.HasErrors() {
			diags = append(diags, errAt(e.Range(), "Invalid reference",
				"Expected a block address like docker_daemon or subordinate_ids.dockremap, without quotes."))
			continue
		}
		parts := []string{tr.RootName()}
		for _, step := range tr[1:] {
			switch s := step.(type) {
			case hcl.TraverseAttr:
				parts = append(parts, s.Name)
			case hcl.TraverseIndex:
				if s.Key.Type().FriendlyName() == "string" {
					parts = append(parts, s.Key.AsString())
					continue
				}
				diags = append(diags, errAt(e.Range(), "Invalid reference", "Block labels in a reference are names, like service[\"docker.service\"]."))
			default:
				diags = append(diags, errAt(e.Range(), "Invalid reference", "Unsupported step in a block address."))
			}
		}
		refs = append(refs, Reference{ID: strings.Join(parts, "."), Range: e.Range()})
	}
	return refs, diags
}
