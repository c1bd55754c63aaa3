// Package dockerfiles keeps the owner and mode of Docker's own files
// (docker_files block) no looser than CIS Docker Benchmark 3.1 to 3.24
// asks: unit files, /etc/docker, daemon.json, certificates, TLS files, the
// Docker and containerd sockets. It corrects them in place (chmod, chown)
// and never rewrites content; a file already stricter stays as it is.
package dockerfiles

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"

	"github.com/dockward/dockward/config"
	"github.com/hashicorp/hcl/v2"
)

// Spec is what a file may be at most: its owner, group and the mode bits
// it may have. A mode with more bits is narrowed to Mode's.
type Spec struct {
	Owner, Group string
	Mode         fs.FileMode
}

// Block is a decoded docker_files block: the benchmark's table (builtin)
// with the operator's file blocks over it.
type Block struct {
	// Files are the operator's entries by host path, overriding a built-in
	// entry for the same path or adding one.
	Files map[string]Spec
	Range hcl.Range
}

// ID implements config.Block.
func (b *Block) ID() string { return Kind.Type }

// DefRange implements config.Block.
func (b *Block) DefRange() hcl.Range { return b.Range }

var schema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "file", LabelNames: []string{"path"}}}}

var fileSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "owner"}, {Name: "group"}, {Name: "mode"}}}

// Kind is the docker_files block: no labels, one per configuration.
var Kind = config.Kind{Type: "docker_files", Labels: []string{}, Decode: decode}

func decode(hb *hcl.Block) (config.Block, hcl.Diagnostics) {
	b := &Block{Files: map[string]Spec{}, Range: hb.DefRange}
	content, diags := hb.Body.Content(schema)
	seen := map[string]hcl.Range{}
	for _, fb := range content.Blocks {
		p := fb.Labels[0]
		lr := fb.LabelRanges[0]
		fc, d := fb.Body.Content(fileSchema)
		diags = append(diags, d...)
		if !filepath.IsAbs(p) {
			diags = append(diags, config.ErrAt(lr, "Invalid path", fmt.Sprintf("%q: a file is named by its absolute path, like \"/etc/docker/daemon.json\".", p)))
			continue
		}
		p = filepath.Clean(p)
		if first, dup := seen[p]; dup {
			diags = append(diags, config.ErrAt(lr, "Duplicate file", fmt.Sprintf("%s was already declared at %s.", p, first)))
			continue
		}
		seen[p] = lr
		spec, hasBuiltin := builtinByPath(p)
		if a, ok := fc.Attributes["owner"]; ok {
			s, d := config.String(a)
			diags = append(diags, d...)
			if !d.HasErrors() && !config.ValidUserName(s) {
				diags = append(diags, config.ErrAt(a.Expr.Range(), "Invalid owner", fmt.Sprintf("%q is not a user name.", s)))
			}
			spec.Owner = s
		}
		if a, ok := fc.Attributes["group"]; ok {
			s, d := config.String(a)
			diags = append(diags, d...)
			if !d.HasErrors() && !config.ValidUserName(s) {
				diags = append(diags, config.ErrAt(a.Expr.Range(), "Invalid group", fmt.Sprintf("%q is not a group name.", s)))
			}
			spec.Group = s
		}
		if a, ok := fc.Attributes["mode"]; ok {
			s, d := config.String(a)
			diags = append(diags, d...)
			if n, err := strconv.ParseUint(s, 8, 32); err == nil && n <= 0o777 {
				spec.Mode = fs.FileMode(n)
			} else if !d.HasErrors() {
				diags = append(diags, config.ErrAt(a.Expr.Range(), "Invalid mode",
					fmt.Sprintf("%q is not an octal file mode like \"0644\" (at most 0777).", s)))
			}
		} else if !hasBuiltin {
			r := fb.DefRange
			diags = append(diags, config.ErrAt(r, "Missing mode",
				fmt.Sprintf("%s is not in the benchmark's table, so its mode has no default; give mode = \"0644\" or what it may be at most.", p)))
		}
		if spec.Owner == "" {
			spec.Owner = "root"
		}
		if spec.Group == "" {
			spec.Group = "root"
		}
		b.Files[p] = spec
	}
	return b, diags
}
