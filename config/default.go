package config

import _ "embed"

// DefaultPath is where the configuration is read from unless -c says otherwise.
const DefaultPath = "/etc/dockward/dockward.hcl"

// DefaultFilename names the embedded default in diagnostics.
const DefaultFilename = "<embedded default>"

// Default is the embedded default configuration, printed by `dockward init`
// and used when DefaultPath does not exist.
//
//go:embed default.hcl
var Default []byte
