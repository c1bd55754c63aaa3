package config

import (
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// AgentBlock holds the engine's own settings (the agent block).
type AgentBlock struct {
	StateDir        string
	Interval        time.Duration
	Splay           time.Duration
	Watch           bool
	MetricsTextfile string
	Range           hcl.Range
}

// ID implements Block.
func (a *AgentBlock) ID() string { return "agent" }

// DefRange implements Block.
func (a *AgentBlock) DefRange() hcl.Range { return a.Range }

// DefaultAgent is the agent block used when the file has none.
func DefaultAgent() *AgentBlock {
	return &AgentBlock{StateDir: "/var/lib/dockward", Interval: 5 * time.Minute, Splay: 30 * time.Second, Watch: true}
}

var agentSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "state_dir"}, {Name: "interval"}, {Name: "splay"}, {Name: "watch"}, {Name: "metrics_textfile"},
}}

// AgentKind decodes the agent block.
var AgentKind = Kind{Type: "agent", Decode: func(b *hcl.Block) (Block, hcl.Diagnostics) {
	a := DefaultAgent()
	a.Range = b.DefRange
	content, diags := b.Body.Content(agentSchema)
	for name, attr := range content.Attributes {
		var d hcl.Diagnostics
		switch name {
		case "state_dir":
			a.StateDir, d = String(attr)
			if !d.HasErrors() && !filepath.IsAbs(a.StateDir) {
				d = hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid path", "state_dir must be an absolute path.")}
			}
		case "interval":
			a.Interval, d = Duration(attr, false)
		case "splay":
			a.Splay, d = Duration(attr, true)
		case "watch":
			a.Watch, d = Bool(attr)
		case "metrics_textfile":
			a.MetricsTextfile, d = String(attr)
			if !d.HasErrors() && a.MetricsTextfile != "" && !filepath.IsAbs(a.MetricsTextfile) {
				d = hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid path", "metrics_textfile must be an absolute path, or empty.")}
			}
		}
		diags = append(diags, d...)
	}
	return a, diags
}}
