package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/dockward/dockward/agent"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...
// -X main.commitTime=...": the Makefile passes dist/version.sh's version
// (the .deb's; it ends in .dirty when built with uncommitted changes) and
// the commit's hash and time.
var (
	version    = "dev"
	commit     string
	commitTime string
)

// buildVersion is `dockward version --format json`. An API: fields are only
// added.
type buildVersion struct {
	Version    string `json:"version"`
	Commit     string `json:"commit"`                // "" when the build did not record it
	CommitTime string `json:"commit_time,omitempty"` // RFC 3339, UTC
	Modified   bool   `json:"modified"`              // built from a work tree with uncommitted changes
	Go         string `json:"go"`
	Platform   string `json:"platform"`
}

// readBuildVersion takes what the Makefile set and otherwise what the Go
// toolchain stamped into the binary: go build in a plain git clone records
// vcs.revision, vcs.time and vcs.modified, and go install the module version.
func readBuildVersion() buildVersion {
	v := buildVersion{Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if commit != "" {
		v.Commit, v.CommitTime, v.Modified = commit, commitTime, strings.HasSuffix(version, ".dirty")
		return v
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// printVersion is `dockward version`. Its first line, "dockward VERSION", is
// what scripts read (integration/scenarios/run.sh).
func printVersion(format string, stdout io.Writer) int {
	v := readBuildVersion()
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
		return agent.ExitOK
	}
	commit := v.Commit
	switch {
	case commit == "":
		commit = "unknown (built without version control information)"
	case v.Modified:
		commit += " with uncommitted changes"
	}
	if v.CommitTime != "" {
		commit += " (" + v.CommitTime + ")"
	}
	fmt.Fprintf(stdout, "dockward %s\ncommit:   %s\ngo:       %s %s\n", v.Version, commit, v.Go, v.Platform)
	return agent.ExitOK
}
