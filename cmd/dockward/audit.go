package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/audit"
	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules/firewall"
	"github.com/sirupsen/logrus"
)

// runAudit is `dockward audit`: read-only checks, 0 when none failed, 4
// when any failed. The configuration gives the remap user (its
// subordinate_ids block), the container policy, the waivers and the
// firewall table to compare; without a usable configuration the defaults
// are checked. A configuration with errors (an unknown waived check) is a
// usage error, as for every other command.
func runAudit(ctx context.Context, g *globals, log *logrus.Logger, stdout, stderr io.Writer) int {
	opt := audit.Options{Root: g.root, RemapUser: audit.DefaultRemapUser}
	if _, cfg, diags, err := readConfig(g); err == nil {
		if diags.HasErrors() {
			_ = config.WriteDiagnostics(stderr, cfg.Files, diags, isTerminal(stderr))
			return agent.ExitUsage
		}
		opt.RemapUser = audit.RemapUser(cfg)
		opt.Policy, opt.Waivers = audit.FromConfig(cfg)
		opt.Firewall = firewallPlanner(cfg, log)
	} else {
		log.WithError(err).Warn("audit: no usable configuration; checking the defaults")
	}
	rep := audit.Run(ctx, opt)
	var err error
	switch g.format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	case "junit":
		err = rep.WriteJUnit(stdout)
	case "sarif":
		err = rep.WriteSARIF(stdout, version)
	default:
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "dockward audit: %v\n", err)
		return agent.ExitFailed
	}
	if rep.Failed > 0 {
		return agent.ExitFailed
	}
	return agent.ExitOK
}

// firewallPlanner plans the configured firewall block read-only: an empty
// plan means the live table matches the configuration.
func firewallPlanner(cfg *config.File, log *logrus.Logger) audit.FirewallPlanner {
	var fb *firewall.Block
	for _, b := range cfg.Blocks {
		if b, ok := b.(*firewall.Block); ok {
			fb = b
		}
	}
	if fb == nil {
		return nil
	}
	return func(ctx context.Context) ([]string, error) {
		quiet := logrus.New()
		quiet.SetOutput(io.Discard)
		m := firewall.New(fb)
		p, err := m.Plan(ctx, &agent.Env{Log: logrus.NewEntry(quiet).WithField("module", m.ID())})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, c := range p.Changes {
			out = append(out, fmt.Sprintf("%s %s", c.Action, c.Target))
		}
		return out, nil
	}
}
