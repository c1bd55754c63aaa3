package audit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/dockward/dockward/config"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Kinds are the blocks that configure `dockward audit`. They are settings,
// not modules: decoded and checked with the rest of the configuration,
// built into no module.
var Kinds = []config.Kind{AuditKind, PolicyKind}

// Waiver is one waived check.
type Waiver struct {
	Reason string
	// Targets limits the waiver to these targets (container names, paths);
	// empty: every target of the check.
	Targets []string
	Range   hcl.Range
}

// AuditBlock is the audit block: audit { waive "2.13" { reason = "..." } }.
type AuditBlock struct {
	Waivers map[string]Waiver
	Range   hcl.Range
}

// ID implements config.Block.
func (b *AuditBlock) ID() string { return AuditKind.Type }

// DefRange implements config.Block.
func (b *AuditBlock) DefRange() hcl.Range { return b.Range }

// AuditKind is the audit block.
var AuditKind = config.Kind{Type: "audit", Decode: decodeAudit, Setting: true}

var auditSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "waive", LabelNames: []string{"check"}}}}
var waiveSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "reason", Required: true}, {Name: "targets"}}}

func decodeAudit(b *hcl.Block) (config.Block, hcl.Diagnostics) {
	out := &AuditBlock{Waivers: map[string]Waiver{}, Range: b.DefRange}
	content, diags := b.Body.Content(auditSchema)
	ids := CheckIDs()
	for _, wb := range content.Blocks {
		id := wb.Labels[0]
		lr := wb.LabelRanges[0]
		wc, d := wb.Body.Content(waiveSchema)
		diags = append(diags, d...)
		if !slices.Contains(ids, id) {
			detail := fmt.Sprintf("There is no check %q (%s numbering, or dockward.NAME for dockward's own).", id, Benchmark)
			if s := suggest(id, ids); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown check", Detail: detail, Subject: &lr})
			continue
		}
		if first, dup := out.Waivers[id]; dup {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate waiver",
				Detail: fmt.Sprintf("%s was already waived at %s.", id, first.Range), Subject: &lr})
			continue
		}
		w := Waiver{Range: wb.DefRange}
		if a, ok := wc.Attributes["reason"]; ok {
			s, d := config.String(a)
			diags = append(diags, d...)
			if !d.HasErrors() && strings.TrimSpace(s) == "" {
				r := a.Expr.Range()
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Empty reason",
					Detail: "A waiver says why the check does not apply here.", Subject: &r})
			}
			w.Reason = s
		}
		if a, ok := wc.Attributes["targets"]; ok {
			ts, d := stringList(a)
			diags = append(diags, d...)
			w.Targets = ts
		}
		out.Waivers[id] = w
	}
	return out, diags
}

// suggest returns the candidate closest to given, as HCL's "Did you mean"
// does (edit distance under 3).
func suggest(given string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// PolicyBlock is the container_policy block.
type PolicyBlock struct {
	Policy *Policy
	Range  hcl.Range
}

// ID implements config.Block.
func (b *PolicyBlock) ID() string { return PolicyKind.Type }

// DefRange implements config.Block.
func (b *PolicyBlock) DefRange() hcl.Range { return b.Range }

// PolicyKind is the container_policy block.
var PolicyKind = config.Kind{Type: "container_policy", Decode: decodePolicy, Setting: true}

// policyAttrs are the block's attributes: each a field of Policy.
var policyBools = map[string]func(*Policy) *bool{
	"privileged":         func(p *Policy) *bool { return &p.Privileged },
	"no_new_privileges":  func(p *Policy) *bool { return &p.NoNewPrivileges },
	"seccomp":            func(p *Policy) *bool { return &p.Seccomp },
	"apparmor":           func(p *Policy) *bool { return &p.AppArmor },
	"read_only_rootfs":   func(p *Policy) *bool { return &p.ReadOnlyRootfs },
	"memory_limit":       func(p *Policy) *bool { return &p.MemoryLimit },
	"cpu_limit":          func(p *Policy) *bool { return &p.CPULimit },
	"pids_limit":         func(p *Policy) *bool { return &p.PidsLimit },
	"docker_socket":      func(p *Policy) *bool { return &p.DockerSocket },
	"latest_tag":         func(p *Policy) *bool { return &p.LatestTag },
	"health_check":       func(p *Policy) *bool { return &p.HealthCheck },
	"non_root_user":      func(p *Policy) *bool { return &p.NonRootUser },
	"privileged_ports":   func(p *Policy) *bool { return &p.PrivilegedPorts },
	"shared_propagation": func(p *Policy) *bool { return &p.SharedPropagate },
	"host_devices":       func(p *Policy) *bool { return &p.HostDevices },
	"cgroup_parent":      func(p *Policy) *bool { return &p.CgroupParent },
	"all_interfaces":     func(p *Policy) *bool { return &p.AllInterfaces },
}

var policyLists = map[string]func(*Policy) *[]string{
	"cap_drop":        func(p *Policy) *[]string { return &p.CapDrop },
	"cap_add":         func(p *Policy) *[]string { return &p.CapAdd },
	"host_namespaces": func(p *Policy) *[]string { return &p.HostNamespaces },
	"forbidden_paths": func(p *Policy) *[]string { return &p.ForbiddenPaths },
}

var namespaces = []string{"network", "pid", "ipc", "uts", "userns"}

func policySchema() *hcl.BodySchema {
	s := &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "max_restarts"}}}
	for n := range policyBools {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: n})
	}
	for n := range policyLists {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: n})
	}
	slices.SortFunc(s.Attributes, func(a, b hcl.AttributeSchema) int { return strings.Compare(a.Name, b.Name) })
	return s
}

func decodePolicy(b *hcl.Block) (config.Block, hcl.Diagnostics) {
	out := &PolicyBlock{Policy: DefaultPolicy(), Range: b.DefRange}
	content, diags := b.Body.Content(policySchema())
	for name, a := range content.Attributes {
		switch {
		case policyBools[name] != nil:
			v, d := config.Bool(a)
			diags = append(diags, d...)
			*policyBools[name](out.Policy) = v
		case policyLists[name] != nil:
			vs, d := stringList(a)
			diags = append(diags, d...)
			for i, v := range vs {
				switch name {
				case "cap_drop", "cap_add":
					vs[i] = normCap(v)
				case "host_namespaces":
					if !slices.Contains(namespaces, v) {
						r := a.Expr.Range()
						diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown namespace",
							Detail: fmt.Sprintf("%q is not one of %s.", v, strings.Join(namespaces, ", ")), Subject: &r})
					}
				case "forbidden_paths":
					if !strings.HasPrefix(v, "/") {
						r := a.Expr.Range()
						diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid path",
							Detail: fmt.Sprintf("%q is not an absolute path.", v), Subject: &r})
					}
				}
			}
			*policyLists[name](out.Policy) = vs
		case name == "max_restarts":
			n, d := config.Int(a, 1, 1000)
			diags = append(diags, d...)
			out.Policy.MaxRestarts = int(n)
		}
	}
	return out, diags
}

func stringList(a *hcl.Attribute) ([]string, hcl.Diagnostics) {
	elems, diags := config.ListElems(a)
	out := []string{}
	for _, e := range elems {
		v, d := e.Value(nil)
		if d.HasErrors() || !v.Type().Equals(cty.String) || v.IsNull() {
			r := e.Range()
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value",
				Detail: "Each element is a string in quotes.", Subject: &r})
			continue
		}
		out = append(out, v.AsString())
	}
	return out, diags
}

// FromConfig returns the policy and waivers a configuration declares
// (the defaults when it declares none).
func FromConfig(cfg *config.File) (*Policy, map[string]Waiver) {
	pol := DefaultPolicy()
	if pb, ok := cfg.Setting(PolicyKind.Type).(*PolicyBlock); ok {
		pol = pb.Policy
	}
	var w map[string]Waiver
	if ab, ok := cfg.Setting(AuditKind.Type).(*AuditBlock); ok {
		w = ab.Waivers
	}
	return pol, w
}
