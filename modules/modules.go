// Package modules is the registry: the one list of module kinds, in the
// order their modules run. The configuration schema is assembled from it
// and the engine's modules are built from it. Adding a module is one line
// here (docs/writing-a-module.md).
package modules

import (
	"fmt"
	"strings"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/audit"
	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules/auditrules"
	"github.com/dockward/dockward/modules/daemonjson"
	"github.com/dockward/dockward/modules/dockerfiles"
	"github.com/dockward/dockward/modules/firewall"
	"github.com/dockward/dockward/modules/service"
	"github.com/dockward/dockward/modules/subid"
)

// Def is one module kind: its HCL block and how a decoded block makes the
// module.
type Def struct {
	Kind config.Kind
	// New makes the module from a block Kind.Decode returned.
	New func(config.Block) agent.Module
}

// Registry is every module kind, in run order:
//   - subordinate_ids before docker_daemon: dockerd needs the ranges when
//     it reads userns-remap;
//   - both before service, which restarts on them;
//   - docker_files and audit_rules after service: the sockets and
//     /run/containerd they cover exist once Docker runs, and daemon.json
//     once docker_daemon wrote it;
//   - firewall last: it resolves network names through a running Docker.
//
// Modules of one kind run in the order their blocks are written.
var Registry = []Def{
	def(subid.Kind, subid.NewModule),
	def(daemonjson.Kind, daemonjson.New),
	def(service.Kind, service.New),
	def(dockerfiles.Kind, dockerfiles.New),
	def(auditrules.Kind, auditrules.New),
	def(firewall.Kind, firewall.New),
}

// def ties a kind to its package's typed constructor.
func def[B config.Block, M agent.Module](k config.Kind, newModule func(B) M) Def {
	return Def{Kind: k, New: func(b config.Block) agent.Module {
		tb, ok := b.(B)
		if !ok {
			panic(fmt.Sprintf("modules: %s block decoded as %T, the constructor takes %T", k.Type, b, tb))
		}
		return newModule(tb)
	}}
}

// Kinds is every block kind for config.Decode: the modules' (the agent
// block is config's own) and the settings of `dockward audit` (its
// waivers and container policy), which configure a command and build no
// module.
var Kinds = append(kinds(Registry), audit.Kinds...)

func kinds(reg []Def) []config.Kind {
	out := make([]config.Kind, len(reg))
	for i, d := range reg {
		out[i] = d.Kind
	}
	return out
}

// Build makes the engine's modules from a decoded configuration, in run order.
func Build(f *config.File) []agent.Module {
	return build(Registry, f)
}

func build(reg []Def, f *config.File) []agent.Module {
	byKind := map[string][]config.Block{}
	for _, b := range f.Blocks {
		k := kindOf(b.ID())
		byKind[k] = append(byKind[k], b)
	}
	var mods []agent.Module
	for _, d := range reg {
		for _, b := range byKind[d.Kind.Type] {
			mods = append(mods, d.New(b))
		}
		delete(byKind, d.Kind.Type)
	}
	for k := range byKind {
		// config decodes only the registry's kinds: a block of another
		// kind is a programming error, not something to skip quietly.
		panic(fmt.Sprintf("modules: a %s block has no module in the registry", k))
	}
	return mods
}

// kindOf is the block type of a module ID: its part before the first dot
// (labels may hold dots, types do not).
func kindOf(id string) string {
	k, _, _ := strings.Cut(id, ".")
	return k
}
