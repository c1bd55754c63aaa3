// Package service keeps a systemd unit enabled and running (or stopped) over
// D-Bus, and restarts (or reloads) it when the engine says a module it
// depends on changed: docker.service after daemon.json or the subuid/subgid
// files. The engine owns the bookkeeping (what is owed, once per run, and
// the rollback of the upstream files when a restart does not verify:
// docs/architecture.md); this package decides what the unit's state makes
// of what is owed and verifies the restart (job done, unit active, the
// Engine API answering /_ping).
//
// It talks to systemd only through go-systemd's D-Bus client, never by
// running systemctl: the outcome of a job arrives as data (JobRemoved
// "done", "failed", ...) instead of exit codes and text to parse.
package service

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/dockward/dockward/config"
	"github.com/hashicorp/hcl/v2"
)

// Defaults of the service block.
const (
	DefaultTimeout      = 90 * time.Second
	DefaultDockerSocket = "/run/docker.sock"
)

// Values of state and verify.
const (
	StateRunning = "running"
	StateStopped = "stopped"

	VerifyDocker = "docker"
	VerifyNone   = "none"
)

// Block is a decoded service "UNIT" block.
type Block struct {
	// Unit is the block's label, a full unit name ("docker.service").
	Unit string
	// State is "running" (the default) or "stopped".
	State string
	// Enabled is nil when the block does not manage enablement.
	Enabled *bool
	// RestartOn are the modules whose changes make the unit restart.
	RestartOn []config.Reference
	// Verify is "docker" (the Engine API must answer /_ping after a start,
	// restart or reload) or "none".
	Verify string
	// Timeout bounds each start, stop, restart or reload, with its
	// verification; a rollback gets a fresh one.
	Timeout time.Duration
	// Rollback restores the restart_on modules' last-known-good files when
	// the unit does not come back after a restart.
	Rollback bool
	// DockerSocket is where verify = "docker" asks for /_ping.
	DockerSocket string

	Range hcl.Range
}

// ID implements config.Block: "service.docker.service".
func (b *Block) ID() string { return Kind.Type + "." + b.Unit }

// DefRange implements config.Block.
func (b *Block) DefRange() hcl.Range { return b.Range }

// References implements config.Referrer: config checks that every
// restart_on entry names a declared block.
func (b *Block) References() []config.Reference { return b.RestartOn }

var schema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "state"},
	{Name: "enabled"},
	{Name: "restart_on"},
	{Name: "verify"},
	{Name: "timeout"},
	{Name: "rollback"},
	{Name: "docker_socket"},
}}

// Kind is the service block: service "docker.service" { ... }.
var Kind = config.Kind{Type: "service", Labels: []string{"unit"}, Decode: decode}

func decode(hb *hcl.Block) (config.Block, hcl.Diagnostics) {
	b := &Block{State: StateRunning, Verify: VerifyNone, Timeout: DefaultTimeout, DockerSocket: DefaultDockerSocket, Range: hb.DefRange}
	var diags hcl.Diagnostics
	if len(hb.Labels) > 0 {
		b.Unit = hb.Labels[0]
		if why := checkUnitName(b.Unit); why != "" {
			diags = append(diags, errAt(hb.LabelRanges[0], "Invalid unit name", why))
		}
	}
	content, d := hb.Body.Content(schema)
	diags = append(diags, d...)
	// Attributes in source order, so diagnostics come out in reading order.
	for _, attr := range sortedAttrs(content.Attributes) {
		var d hcl.Diagnostics
		switch attr.Name {
		case "state":
			b.State, d = oneOf(attr, StateRunning, StateStopped)
		case "enabled":
			var v bool
			v, d = config.Bool(attr)
			b.Enabled = &v
		case "restart_on":
			b.RestartOn, d = config.References(attr)
		case "verify":
			b.Verify, d = oneOf(attr, VerifyDocker, VerifyNone, "")
			if b.Verify == "" {
				b.Verify = VerifyNone
			}
		case "timeout":
			b.Timeout, d = config.Duration(attr, false)
		case "rollback":
			b.Rollback, d = config.Bool(attr)
		case "docker_socket":
			b.DockerSocket, d = config.String(attr)
			if !d.HasErrors() && !filepath.IsAbs(b.DockerSocket) {
				d = hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid path", "docker_socket must be an absolute path to the Docker Engine's unix socket.")}
			}
		}
		diags = append(diags, d...)
	}
	if b.Rollback && len(b.RestartOn) == 0 {
		if attr := content.Attributes["rollback"]; attr != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning, Summary: "rollback without restart_on",
				Detail:  "rollback restores the files of the restart_on modules; with no restart_on there is nothing to roll back.",
				Subject: attr.Expr.Range().Ptr(),
			})
		}
	}
	return b, diags
}

func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Range.Start.Byte < out[j-1].Range.Start.Byte; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func oneOf(attr *hcl.Attribute, allowed ...string) (string, hcl.Diagnostics) {
	s, diags := config.String(attr)
	if diags.HasErrors() {
		return "", diags
	}
	for _, a := range allowed {
		if s == a {
			return s, nil
		}
	}
	var quoted []string
	for _, a := range allowed {
		if a != "" {
			quoted = append(quoted, fmt.Sprintf("%q", a))
		}
	}
	return "", hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid value",
		fmt.Sprintf("%s must be %s, not %q.", attr.Name, strings.Join(quoted, " or "), s))}
}

var errAt = config.ErrAt

// unitSuffixes are the unit types systemd knows (systemd.unit(5)).
var unitSuffixes = []string{"service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path", "slice", "scope"}

// checkUnitName says what is wrong with a unit name, or "" when it is one
// systemd would accept and can start: systemd's unit_name_is_valid rules
// (at most 255 bytes, [a-zA-Z0-9:_.\-\\@] before the type suffix), and no
// template without an instance ("getty@.service" cannot be started).
func checkUnitName(s string) string {
	dot := strings.LastIndexByte(s, '.')
	if dot <= 0 {
		return fmt.Sprintf("%q is not a unit name: it needs a type suffix, as in \"docker.service\".", s)
	}
	suffix := s[dot+1:]
	known := false
	for _, u := range unitSuffixes {
		known = known || suffix == u
	}
	if !known {
		return fmt.Sprintf("%q has an unknown unit type %q; expected one of %s.", s, suffix, strings.Join(unitSuffixes, ", "))
	}
	if len(s) > 255 {
		return fmt.Sprintf("%q is longer than 255 bytes.", s)
	}
	prefix := s[:dot]
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(":_.-\\@", c) >= 0 {
			continue
		}
		return fmt.Sprintf("%q contains %q, which systemd does not allow in unit names.", s, string(c))
	}
	if at := strings.IndexByte(prefix, '@'); at >= 0 {
		if at == 0 {
			return fmt.Sprintf("%q has no name before the '@'.", s)
		}
		if at == len(prefix)-1 {
			return fmt.Sprintf("%q is a template; name an instance of it, like %q.", s, prefix+"name."+suffix)
		}
	}
	return ""
}
