// Package subid manages a user's subordinate ID ranges in /etc/subuid and
// /etc/subgid (the subordinate_ids block): the ranges dockerd's userns-remap
// maps container IDs onto. userns-remap = "default" means the user
// dockremap, which is the block's label in the default configuration.
//
// A user that exists without ranges makes dockerd refuse to start, so the
// module makes the user and both ranges together or not at all.
package subid

import (
	"fmt"

	"github.com/dockward/dockward/config"
	"github.com/hashicorp/hcl/v2"
)

const (
	// DefaultCount is what dockerd and useradd give a user: enough for
	// images whose files belong to nobody (65534).
	DefaultCount = 65536
	// MaxCount bounds count to half of the 32-bit ID space; anything larger
	// is a typo, and leaves no room for anyone else.
	MaxCount = 1 << 31
)

// Block is a decoded subordinate_ids block.
type Block struct {
	User       string
	Count      uint64
	Start      uint64 // 0: not given, choose the first free range
	CreateUser bool
	Range      hcl.Range
}

// ID implements config.Block.
func (b *Block) ID() string { return Kind.Type + "." + b.User }

// DefRange implements config.Block.
func (b *Block) DefRange() hcl.Range { return b.Range }

var schema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "count"}, {Name: "start"}, {Name: "create_user"},
}}

// Kind is the subordinate_ids block: subordinate_ids "USER" { count, start, create_user }.
var Kind = config.Kind{Type: "subordinate_ids", Labels: []string{"user"}, Decode: decode}

var errAt = config.ErrAt

var warnAt = config.WarnAt

func decode(b *hcl.Block) (config.Block, hcl.Diagnostics) {
	out := &Block{Count: DefaultCount, CreateUser: true, Range: b.DefRange}
	var diags hcl.Diagnostics
	if len(b.Labels) > 0 {
		out.User = b.Labels[0]
		if !config.ValidUserName(out.User) {
			rng := b.DefRange
			if len(b.LabelRanges) > 0 {
				rng = b.LabelRanges[0]
			}
			diags = append(diags, errAt(rng, "Invalid user name",
				fmt.Sprintf("%q is not a user name useradd accepts: lower-case letters, digits, _ and -, starting with a letter or _, at most 32 characters.", out.User)))
		}
	}
	content, d := b.Body.Content(schema)
	diags = append(diags, d...)

	var startAttr *hcl.Attribute
	if a, ok := content.Attributes["count"]; ok {
		n, d := config.Int(a, 1, MaxCount)
		diags = append(diags, d...)
		if !d.HasErrors() {
			out.Count = uint64(n)
			if n < DefaultCount {
				diags = append(diags, warnAt(a.Expr.Range(), "Small subordinate ID range",
					fmt.Sprintf("With fewer than %d IDs, images with files owned by nobody (65534) fail to unpack under userns-remap.", DefaultCount)))
			}
		}
	}
	if a, ok := content.Attributes["start"]; ok {
		n, d := config.Int(a, 1, MaxID-1)
		diags = append(diags, d...)
		if !d.HasErrors() {
			out.Start, startAttr = uint64(n), a
			if n < MinAutoStart {
				diags = append(diags, warnAt(a.Expr.Range(), "Subordinate IDs among ordinary IDs",
					fmt.Sprintf("A start below %d maps container IDs onto the IDs of host users and groups (system and login accounts live there).", MinAutoStart)))
			}
		}
	}
	if startAttr != nil && out.Start+out.Count > MaxID {
		// Reported at start: count is the more deliberate of the two.
		diags = append(diags, errAt(startAttr.Expr.Range(), "Range beyond the ID space",
			fmt.Sprintf("start + count = %d, but a range must end at or below %d (ID 4294967295 is the invalid ID -1).", out.Start+out.Count, uint64(MaxID))))
	}
	if a, ok := content.Attributes["create_user"]; ok {
		v, d := config.Bool(a)
		diags = append(diags, d...)
		if !d.HasErrors() {
			out.CreateUser = v
		}
	}
	return out, diags
}
