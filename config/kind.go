// Package config decodes dockward's HCL desired state. The top-level schema
// is assembled from the block kinds the modules own (each module package
// exports a Kind describing its block and how to decode it); config only
// parses, dispatches, checks what spans blocks (duplicates, restart_on
// references) and renders diagnostics.
package config

import (
	"github.com/hashicorp/hcl/v2"
)

// Kind describes one top-level block type, owned by a module package.
type Kind struct {
	// Type is the block type name ("docker_daemon").
	Type string
	// Labels names the block's labels (none, or e.g. {"user"}).
	Labels []string
	// Decode decodes and checks one block. It must report every problem it
	// finds, each with the range of the offending expression, and return a
	// usable (possibly partial) Block even when it reports errors.
	Decode func(b *hcl.Block) (Block, hcl.Diagnostics)
	// Setting marks a block that configures a command rather than a
	// module (audit's waivers and container policy): it is decoded and
	// checked like any block but kept in File.Settings, so that no module
	// is built from it.
	Setting bool
}

// Block is a decoded top-level block.
type Block interface {
	// ID is the module address: the type, then labels, joined by dots
	// ("docker_daemon", "subordinate_ids.dockremap").
	ID() string
	// DefRange is where the block was declared (type and labels).
	DefRange() hcl.Range
}

// Referrer is a Block that refers to other blocks by address (restart_on).
// Every reference must name a declared block; config checks that.
type Referrer interface {
	Block
	References() []Reference
}

// Reference is one address written in the configuration, with its range.
type Reference struct {
	ID    string
	Range hcl.Range
}

// BlockID builds a module ID from a block's type and labels.
func BlockID(b *hcl.Block) string {
	id := b.Type
	for _, l := range b.Labels {
		id += "." + l
	}
	return id
}

// Requirer is a Block whose settings only work when another block is
// declared too (userns_remap = "bob" needs subordinate_ids "bob"). config
// checks each requirement against the whole file.
type Requirer interface {
	Block
	Requirements() []Requirement
}

// Requirement is one block that must be declared, where the need arises,
// and why, said to the operator when it is missing.
type Requirement struct {
	ID    string
	Range hcl.Range
	Why   string
}
