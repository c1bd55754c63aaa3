// Package modules wires the module packages to the engine: the list of block
// kinds the configuration schema is assembled from, and the order modules run in.
package modules

import (
	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules/daemonjson"
	"github.com/dockward/dockward/modules/firewall"
	"github.com/dockward/dockward/modules/service"
	"github.com/dockward/dockward/modules/subid"
)

// Kinds is every module-owned block kind (the agent block is config's own).
var Kinds = []config.Kind{subid.Kind, daemonjson.Kind, service.Kind, firewall.Kind}

// Block is a decoded block that can make its module.
type Block interface {
	config.Block
	Module() agent.Module
}

// stage orders modules: subordinate_ids before docker_daemon (dockerd
// needs the ranges when it reads userns-remap), both before service (which
// restarts on them), and firewall last because it resolves network names
// through a running Docker.
var stage = map[string]int{subid.Kind.Type: 0, daemonjson.Kind.Type: 1, service.Kind.Type: 2, firewall.Kind.Type: 3}

// Build makes the engine's modules from a decoded configuration, in run order.
func Build(f *config.File) []agent.Module {
	var out [4][]agent.Module
	for _, b := range f.Blocks {
		mb, ok := b.(Block)
		if !ok {
			continue
		}
		s := stage[kindOf(b.ID())]
		out[s] = append(out[s], mb.Module())
	}
	var mods []agent.Module
	for _, ms := range out {
		mods = append(mods, ms...)
	}
	return mods
}

func kindOf(id string) string {
	for i := range len(id) {
		if id[i] == '.' {
			return id[:i]
		}
	}
	return id
}
