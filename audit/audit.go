// Package audit is `dockward audit`: read-only checks of the live host and
// its running containers against the CIS Docker Benchmark (sections 1 to
// 5, numbered as v1.6.0, which docker-bench-security follows) and against
// what dockward itself stands for. It changes nothing.
//
// Gather reads the host once (the Engine API, files, /proc) into a
// Snapshot; every check is a pure function over it, so the checks are
// tested on recorded Engine API answers. A check that cannot be decided is
// skipped with its reason, never passed; a waived check is reported as
// waived, never passed.
package audit

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules/subid"
	"github.com/moby/moby/client"
)

// Benchmark is the benchmark version the check numbers follow.
const Benchmark = "CIS Docker Benchmark v1.6.0"

// Status is a finding's verdict.
type Status string

// The verdicts. Only Fail makes the audit fail.
const (
	Pass   Status = "pass"
	Fail   Status = "fail"
	Skip   Status = "skip"   // could not be decided here; Reason says why
	Waived Status = "waived" // waived in the configuration; Reason is the waiver's
)

// Finding is one check's verdict on one target. An API (audit --format
// json): fields are only added. Check is a stable name; ID the benchmark's
// number (or dockward.NAME for dockward's own checks).
type Finding struct {
	Check  string `json:"check"`
	Target string `json:"target"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail,omitempty"`

	ID      string `json:"id"`
	Title   string `json:"title"`
	Section string `json:"section"`
	Status  Status `json:"status"`
	// Field names what is wrong in the inspect document or daemon
	// configuration ("HostConfig.Privileged"), when one thing is.
	Field string `json:"field,omitempty"`
	// Reason is why a finding was skipped or waived.
	Reason string `json:"reason,omitempty"`
}

// Report is audit's output.
type Report struct {
	FormatVersion string    `json:"format_version"`
	Findings      []Finding `json:"findings"`
	Passed        int       `json:"passed"`
	Failed        int       `json:"failed"`

	Benchmark string `json:"benchmark"`
	Skipped   int    `json:"skipped"`
	Waived    int    `json:"waived"`
	// Checks is how many checks ran (a check yields a finding per target).
	Checks   int       `json:"checks"`
	Start    time.Time `json:"start"`
	Duration float64   `json:"duration_seconds"`
}

// FormatVersion of the audit report.
const FormatVersion = "1"

func newReport(fs []Finding, checks int) *Report {
	r := &Report{FormatVersion: FormatVersion, Findings: fs, Benchmark: Benchmark, Checks: checks}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		f.Pass = f.Status == Pass
		switch f.Status {
		case Pass:
			r.Passed++
		case Fail:
			r.Failed++
		case Skip:
			r.Skipped++
		case Waived:
			r.Waived++
		}
	}
	return r
}

// Options say what to look at and how to judge it.
type Options struct {
	// Root is --root: only the file checks run under it.
	Root string
	// RemapUser is the user whose subordinate ranges must exist ("" skips).
	RemapUser string
	// Timeout bounds the Engine API calls.
	Timeout time.Duration
	// Policy is the container policy (nil: DefaultPolicy).
	Policy *Policy
	// Waivers by check ID.
	Waivers map[string]Waiver
	// Firewall plans the configured firewall read-only (nil: none
	// configured, the check is skipped).
	Firewall FirewallPlanner
	// Only limits the run to these checks (IDs or names); empty: all.
	Only []string
}

// DefaultRemapUser is the user userns-remap = "default" means, checked when
// there is no configuration to read.
const DefaultRemapUser = "dockremap"

// RemapUser is the remap user a configuration declares: the label of its
// (last) subordinate_ids block, or DefaultRemapUser when it has none.
func RemapUser(cfg *config.File) string {
	user := DefaultRemapUser
	for _, b := range cfg.Blocks {
		if sb, ok := b.(*subid.Block); ok {
			user = sb.User
		}
	}
	return user
}

// Run gathers the host's state once and judges it. It changes nothing.
func Run(ctx context.Context, opt Options) *Report {
	start := time.Now()
	if opt.Timeout == 0 {
		opt.Timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	snap := gather(ctx, gatherOptions{root: opt.Root, firewall: opt.Firewall,
		engine: func() (*client.Client, error) { return client.New(client.FromEnv) }})
	rep := Judge(snap, opt)
	rep.Start = start.UTC()
	rep.Duration = time.Since(start).Seconds()
	return rep
}

// Judge runs the checks over a snapshot and applies the waivers: pure.
func Judge(s *Snapshot, opt Options) *Report {
	pol := opt.Policy
	if pol == nil {
		pol = DefaultPolicy()
	}
	env := &judgeEnv{s: s, policy: pol, remapUser: opt.RemapUser}
	var fs []Finding
	n := 0
	for _, c := range Catalogue {
		if len(opt.Only) > 0 && !containsAny(opt.Only, c.ID, c.Name) {
			continue
		}
		n++
		for _, r := range c.run(env) {
			f := Finding{Check: c.Name, ID: c.ID, Title: c.Title, Section: c.Section(), Target: r.target,
				Status: r.status, Detail: r.detail, Field: r.field, Reason: r.reason}
			if f.Target == "" {
				f.Target = c.target
			}
			if w, ok := opt.Waivers[c.ID]; ok && f.Status != Skip && (len(w.Targets) == 0 || slices.Contains(w.Targets, f.Target)) {
				verdict := "would pass"
				if f.Status == Fail {
					verdict = "would fail"
				}
				if f.Status == Waived {
					verdict = "relaxed by the container policy"
				}
				f.Status, f.Reason = Waived, w.Reason
				f.Detail = strings.TrimSpace(verdict + ": " + f.Detail)
			}
			fs = append(fs, f)
		}
	}
	return newReport(fs, n)
}

func containsAny(list []string, vs ...string) bool {
	for _, l := range list {
		for _, v := range vs {
			if l == v {
				return true
			}
		}
	}
	return false
}

// WriteText prints one line per finding and a summary:
// VERDICT  NAME  TARGET  ID  DETAIL.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, f := range r.Findings {
		verdict := map[Status]string{Pass: "PASS", Fail: "FAIL", Skip: "SKIP", Waived: "WAIV"}[f.Status]
		detail := f.Detail
		if f.Field != "" && f.Status != Pass {
			detail = f.Field + ": " + detail
		}
		if f.Reason != "" {
			label := "skipped"
			if f.Status == Waived {
				label = "waived"
			}
			detail = strings.TrimSpace(detail + " (" + label + ": " + f.Reason + ")")
		}
		fmt.Fprintf(&b, "%s  %-20s %-24s %-8s %s\n", verdict, f.Check, f.Target, f.ID, detail)
	}
	fmt.Fprintf(&b, "\nAudit (%s, %d checks): %d passed, %d failed, %d waived, %d skipped.\n",
		r.Benchmark, r.Checks, r.Passed, r.Failed, r.Waived, r.Skipped)
	_, err := io.WriteString(w, b.String())
	return err
}
