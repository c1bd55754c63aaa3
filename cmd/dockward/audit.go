package main

import (
	"context"
	"encoding/json"
	"io"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/audit"
	"github.com/sirupsen/logrus"
)

// runAudit is `dockward audit`: read-only checks, 0 when all pass, 4 when any
// fails. The remap users checked are the configuration's subordinate_ids
// blocks (dockremap when there is no configuration to read).
func runAudit(ctx context.Context, g *globals, log *logrus.Logger, stdout, stderr io.Writer) int {
	opt := audit.Options{Root: g.root, RemapUser: audit.DefaultRemapUser}
	if _, cfg, diags, err := readConfig(g); err == nil {
		if !diags.HasErrors() {
			opt.RemapUser = audit.RemapUser(cfg)
		}
	} else {
		log.WithError(err).Warn("audit: no usable configuration; checking the defaults")
	}
	rep := audit.Run(ctx, opt)
	if g.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		_ = rep.WriteText(stdout)
	}
	if rep.Failed > 0 {
		return agent.ExitFailed
	}
	return agent.ExitOK
}
