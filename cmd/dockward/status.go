package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/config"
)

// runStatus is `dockward status`: the resident agent's state as it
// published it in the state directory, whether it still runs, and the last
// run report. It reads only: no lock is waited for, nothing is created.
func runStatus(g *globals, stdout, stderr io.Writer) int {
	src, cfg, diags, err := readConfig(g)
	if err != nil {
		fmt.Fprintf(stderr, "dockward status: %v\n", err)
		return agent.ExitUsage
	}
	if diags.HasErrors() {
		// The moment status matters most may be right after a bad edit: a
		// running agent refused it and keeps the configuration it had. So
		// the errors are shown, and the state directory is still read
		// (the file's agent.state_dir when it decoded, else the default).
		_ = config.WriteDiagnostics(stderr, cfg.Files, diags, isTerminal(stderr))
		if cfg.Agent == nil {
			cfg.Agent = config.DefaultAgent()
		}
		fmt.Fprintf(stderr, "dockward status: %s has errors (dockward validate lists them; a running agent keeps the configuration it had); reading the state directory %s\n",
			src.Filename, stateDirOf(g, cfg))
	}
	v, err := agent.ReadStatus(g.root, stateDirOf(g, cfg))
	if err != nil {
		fmt.Fprintf(stderr, "dockward status: %v\n", err)
		return agent.ExitUsage
	}
	if g.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	} else {
		_ = agent.WriteStatusText(stdout, v, time.Now(), time.Local)
	}
	return v.ExitCode()
}
