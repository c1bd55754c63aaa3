// Package auditrules keeps the audit watch rules of CIS Docker Benchmark
// 1.1.3 to 1.1.18 (audit_rules block): one file of its own in
// /etc/audit/rules.d, watching Docker's binaries, units, sockets and
// configuration where they are on this host, loaded with augenrules when
// auditd runs. It never touches another rule file.
package auditrules

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/dockward/dockward/config"
	"github.com/hashicorp/hcl/v2"
)

// DefaultPath is the rules file dockward owns; augenrules reads every
// *.rules file of its directory.
const DefaultPath = "/etc/audit/rules.d/docker.rules"

// rulesDir is the only directory augenrules reads.
const rulesDir = "/etc/audit/rules.d"

// Block is a decoded audit_rules block.
type Block struct {
	// Path is the rules file (absolute, in /etc/audit/rules.d, *.rules).
	Path string
	// Key is the audit key every rule carries (-k), "docker" as the
	// benchmark's remediation and ausearch -k docker expect.
	Key string
	// Load loads the rules into the kernel (augenrules --load) when auditd
	// runs; false only writes the file, which auditd reads when it starts.
	Load  bool
	Range hcl.Range
}

// ID implements config.Block.
func (b *Block) ID() string { return Kind.Type }

// DefRange implements config.Block.
func (b *Block) DefRange() hcl.Range { return b.Range }

var schema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "path"}, {Name: "key"}, {Name: "load"}}}

// Kind is the audit_rules block: no labels, one per configuration.
var Kind = config.Kind{Type: "audit_rules", Labels: []string{}, Decode: decode}

// keyRE is what auditctl takes as a key without quoting trouble in a rules
// file: no spaces, no quotes; the kernel's limit is 256 bytes.
var keyRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

func decode(hb *hcl.Block) (config.Block, hcl.Diagnostics) {
	b := &Block{Path: DefaultPath, Key: "docker", Load: true, Range: hb.DefRange}
	content, diags := hb.Body.Content(schema)
	attrs := make([]*hcl.Attribute, 0, len(content.Attributes))
	for _, a := range content.Attributes {
		attrs = append(attrs, a)
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Range.Start.Byte < attrs[j].Range.Start.Byte })
	for _, a := range attrs {
		var d hcl.Diagnostics
		switch a.Name {
		case "path":
			var p string
			p, d = config.String(a)
			if d.HasErrors() {
				break
			}
			c := filepath.Clean(p)
			if !filepath.IsAbs(p) || filepath.Dir(c) != rulesDir || !strings.HasSuffix(c, ".rules") || c == rulesDir+"/.rules" {
				d = hcl.Diagnostics{config.ErrAt(a.Expr.Range(), "Invalid path",
					fmt.Sprintf("%q: augenrules reads only files named *.rules directly in %s; use a name like %q.", p, rulesDir, DefaultPath))}
				break
			}
			b.Path = c
		case "key":
			var k string
			k, d = config.String(a)
			if !d.HasErrors() && !keyRE.MatchString(k) {
				d = hcl.Diagnostics{config.ErrAt(a.Expr.Range(), "Invalid key",
					fmt.Sprintf("%q: an audit key is 1 to 64 letters, digits or _ . : -, like \"docker\".", k))}
			}
			if !d.HasErrors() {
				b.Key = k
			}
		case "load":
			b.Load, d = config.Bool(a)
		}
		diags = append(diags, d...)
	}
	return b, diags
}
