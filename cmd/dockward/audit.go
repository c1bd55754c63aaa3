package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/audit"
	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules"
	"github.com/sirupsen/logrus"
)

// runAudit is `dockward audit`: read-only checks, 0 when all pass, 4 when any
// fails. The remap users checked are the configuration's subordinate_ids
// blocks (dockremap when there is no configuration to read).
func runAudit(ctx context.Context, g *globals, log *logrus.Logger, stdout, stderr io.Writer) int {
	opt := audit.Options{Root: g.root, RemapUser: "dockremap"}
	if src, err := config.Read(g.config, g.root); err == nil {
		if cfg, diags := config.Decode(src.Filename, src.Bytes, modules.Kinds); !diags.HasErrors() {
			for _, b := range cfg.Blocks {
				if user, ok := strings.CutPrefix(b.ID(), "subordinate_ids."); ok {
					opt.RemapUser = user
				}
			}
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
