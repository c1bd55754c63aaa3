package daemonjson

// PLACEHOLDER: replaced by the module's real Kind/Block/Module. Delete this file.

import (
	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/config"
	"github.com/hashicorp/hcl/v2"
)

type placeholderBlock struct{ b *hcl.Block }

func (p *placeholderBlock) ID() string           { return config.BlockID(p.b) }
func (p *placeholderBlock) DefRange() hcl.Range  { return p.b.DefRange }
func (p *placeholderBlock) Module() agent.Module { return nil }

// Kind is the docker_daemon block.
var Kind = config.Kind{Type: "docker_daemon", Labels: []string{}, Decode: func(b *hcl.Block) (config.Block, hcl.Diagnostics) {
	_, d := b.Body.JustAttributes()
	_ = d
	return &placeholderBlock{b}, nil
}}
