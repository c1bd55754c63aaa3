package agent

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/dockward/dockward/agent/managedfile"
)

// Status is a module's outcome in a run. An API: values are only added.
type Status string

const (
	StatusOK         Status = "ok"          // converged, nothing to do
	StatusChanged    Status = "changed"     // apply made changes (plan: changes pending)
	StatusFailed     Status = "failed"      // plan or apply failed
	StatusSkipped    Status = "skipped"     // not run (offline under --root)
	StatusRolledBack Status = "rolled_back" // changed, failed, and the previous state was restored
)

// ReportFormatVersion is the version of the JSON run report and of
// plan/apply --format json. Never change a field's meaning.
const ReportFormatVersion = "1"

// ModuleResult is one module's part of a Report.
type ModuleResult struct {
	ID       string   `json:"id"`
	Status   Status   `json:"status"`
	Changes  []Change `json:"changes"`
	Error    string   `json:"error,omitempty"`
	Duration float64  `json:"duration_seconds"`
	// Pending is what the module found declared but waiting for something
	// outside dockward (see Plan.Pending); it changes neither the status
	// nor the exit code.
	Pending []Pending `json:"pending,omitempty"`

	// err is the error behind Error, for callers in the same process
	// (tests that check an error's type); never serialised.
	err error
	// unit is the unit the module restarts when it is a Restarter (the
	// metrics count its restarts by unit); never serialised.
	unit string
}

// Err returns the error behind Error, nil when the module did not fail or
// the result was read back from JSON.
func (m ModuleResult) Err() error { return m.err }

// Report is the outcome of one plan or apply. Apply writes it to
// StateDir/last-report.json.
type Report struct {
	FormatVersion string         `json:"format_version"`
	Command       string         `json:"command"` // "plan" or "apply"
	Start         time.Time      `json:"start"`
	Duration      float64        `json:"duration_seconds"`
	Modules       []ModuleResult `json:"modules"`
}

// Exit codes, an API from the first release (README.md, "Command line").
const (
	ExitOK             = 0 // nothing to do / nothing changed / valid
	ExitUsage          = 1 // config or usage error; plan: error
	ExitChanged        = 2 // apply: changed; plan: changes pending
	ExitFailed         = 4 // apply: failed
	ExitChangedAndFail = 6 // apply: some changed, some failed
)

// Changed reports whether any module changed (apply) or has changes pending (plan).
func (r *Report) Changed() bool {
	for _, m := range r.Modules {
		if m.Status == StatusChanged {
			return true
		}
	}
	return false
}

// Failed reports whether any module failed or was rolled back.
func (r *Report) Failed() bool {
	for _, m := range r.Modules {
		if m.Status == StatusFailed || m.Status == StatusRolledBack {
			return true
		}
	}
	return false
}

// ExitCode maps the report to the exit codes of its command (README.md).
func (r *Report) ExitCode() int {
	if r.Command == "plan" {
		switch {
		case r.Failed():
			return ExitUsage
		case r.Changed():
			return ExitChanged
		}
		return ExitOK
	}
	switch {
	case r.Failed() && r.Changed():
		return ExitChangedAndFail
	case r.Failed():
		return ExitFailed
	case r.Changed():
		return ExitChanged
	}
	return ExitOK
}

// PendingCount returns how many declared items wait for something outside
// dockward, over all modules. They count neither as changed nor as failed.
func (r *Report) PendingCount() int {
	n := 0
	for _, m := range r.Modules {
		n += len(m.Pending)
	}
	return n
}

// Counts returns how many changes add, change and destroy something, over
// the modules that changed (or would): a rolled-back change is no change.
func (r *Report) Counts() (add, change, destroy int) {
	for _, m := range r.Modules {
		if m.Status != StatusChanged {
			continue
		}
		for _, c := range m.Changes {
			switch c.Action {
			case Create:
				add++
			case Update:
				change++
			case Delete:
				destroy++
			}
		}
	}
	return
}

// ReportPath is where apply leaves its report.
func ReportPath(stateDir string) string { return filepath.Join(stateDir, reportFile) }

const reportFile = "last-report.json"

// WriteReport is WriteReportIn on the live system.
func WriteReport(stateDir string, r *Report) error { return WriteReportIn("", stateDir, r) }

// WriteReportIn stores r atomically as the last report in stateDir (under
// --root root).
func WriteReportIn(root, stateDir string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	sd, err := managedfile.OpenStateDir(root, stateDir, true)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	defer sd.Close()
	return sd.WriteAtomic(reportFile, append(b, '\n'), managedfile.RootOwned(0o644))
}
