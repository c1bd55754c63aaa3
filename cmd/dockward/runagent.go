package main

import (
	"context"
	"fmt"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/config"
	"github.com/sirupsen/logrus"
)

// runAgent is `dockward run`, the resident agent (issue 6: not built yet).
func runAgent(ctx context.Context, g *globals, cfg *config.File, log *logrus.Logger) int {
	_ = ctx
	_ = g
	_ = cfg
	log.Error(fmt.Sprint("dockward run: the resident agent is not implemented yet; use apply from a timer"))
	return agent.ExitUsage
}
