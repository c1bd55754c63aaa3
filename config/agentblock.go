package config

import (
	"fmt"
	"path/filepath"
	"strings"
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
	// Flapping (agent.FlapPolicy): FlapCorrections corrections of one
	// target within FlapWindow make its module flap, and the agent leaves
	// it alone for FlapBackoff, doubling up to an hour (or FlapBackoff
	// when longer). FlapCorrections = 0 never backs off.
	FlapCorrections int
	FlapWindow      time.Duration
	FlapBackoff     time.Duration
	Range           hcl.Range
}

// ID implements Block.
func (a *AgentBlock) ID() string { return "agent" }

// DefRange implements Block.
func (a *AgentBlock) DefRange() hcl.Range { return a.Range }

// DefaultAgent is the agent block used when the file has none.
func DefaultAgent() *AgentBlock {
	return &AgentBlock{StateDir: "/var/lib/dockward", Interval: 5 * time.Minute, Splay: 30 * time.Second, Watch: true,
		FlapCorrections: 3, FlapWindow: 10 * time.Minute, FlapBackoff: 5 * time.Minute}
}

var agentSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "state_dir"}, {Name: "interval"}, {Name: "splay"}, {Name: "watch"}, {Name: "metrics_textfile"},
	{Name: "flap_corrections"}, {Name: "flap_window"}, {Name: "flap_backoff"},
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
		case "flap_corrections":
			// 2 at least: one correction is what the agent is for, and
			// a second can be an operator's slip repeated.
			var n int64
			n, d = Int(attr, 0, 1000)
			if !d.HasErrors() && n == 1 {
				d = hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid number", "flap_corrections must be 0 (never back off) or at least 2: with 1, every correction would count as flapping.")}
			}
			a.FlapCorrections = int(n)
		case "flap_window":
			a.FlapWindow, d = Duration(attr, false)
		case "flap_backoff":
			a.FlapBackoff, d = Duration(attr, false)
		case "metrics_textfile":
			a.MetricsTextfile, d = String(attr)
			if !d.HasErrors() && a.MetricsTextfile != "" {
				if msg := metricsTextfileProblem(a.MetricsTextfile); msg != "" {
					d = hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid path", msg)}
				}
			}
		}
		diags = append(diags, d...)
	}
	return a, diags
}}

// systemDirs are where a metrics file never belongs: dockward runs as root
// and rewrites the file on every run, so a typo or a hostile value there
// would replace a system file.
var systemDirs = []string{"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin", "/sys", "/usr"}

// metricsTextfileProblem says why p cannot be the metrics textfile, or ""
// when it can: an absolute, clean path to a *.prom file (node_exporter's
// textfile collector reads nothing else) in a directory of its own, not
// in a system directory.
func metricsTextfileProblem(p string) string {
	for _, c := range p {
		if c < 0x20 || c == 0x7f {
			return fmt.Sprintf("metrics_textfile must not contain control characters (%q).", p)
		}
	}
	if !filepath.IsAbs(p) {
		return "metrics_textfile must be an absolute path, or empty."
	}
	if clean := filepath.Clean(p); clean != p {
		return fmt.Sprintf("metrics_textfile must be a clean path, without \"..\", \"//\" or a trailing \"/\". Did you mean %q?", clean)
	}
	base, dir := filepath.Base(p), filepath.Dir(p)
	if filepath.Ext(base) != ".prom" || base == ".prom" {
		return fmt.Sprintf("metrics_textfile must name a *.prom file: node_exporter's textfile collector reads only those. Did you mean %q?",
			filepath.Join(dir, strings.TrimSuffix(base, filepath.Ext(base))+".prom"))
	}
	if dir == "/" {
		return "metrics_textfile must be in a directory for textfiles, like /var/lib/node_exporter/textfile_collector/dockward.prom, not in /."
	}
	for _, sys := range systemDirs {
		if dir == sys || strings.HasPrefix(dir, sys+"/") {
			return fmt.Sprintf("metrics_textfile must not be under %s, a system directory: dockward rewrites the file as root on every run. Use a directory for textfiles, like /var/lib/node_exporter/textfile_collector/dockward.prom.", sys)
		}
	}
	return ""
}
