// Package audit is `dockward audit`: read-only checks of the live host and
// its running containers against the hardening dockward stands for. It
// changes nothing. The checks are pure functions over what the Docker
// Engine API and a few files report, so they are tested without a daemon;
// Gather does the reading.
package audit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"
)

// Finding is one check's verdict on one target. An API (audit --format json).
type Finding struct {
	Check  string `json:"check"`
	Target string `json:"target"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail,omitempty"`
}

// Report is audit's output.
type Report struct {
	FormatVersion string    `json:"format_version"`
	Findings      []Finding `json:"findings"`
	Passed        int       `json:"passed"`
	Failed        int       `json:"failed"`
}

// FormatVersion of the audit report.
const FormatVersion = "1"

func newReport(fs []Finding) *Report {
	r := &Report{FormatVersion: FormatVersion, Findings: fs}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	for _, f := range fs {
		if f.Pass {
			r.Passed++
		} else {
			r.Failed++
		}
	}
	return r
}

func finding(check, target string, pass bool, detail string) Finding {
	return Finding{Check: check, Target: target, Pass: pass, Detail: detail}
}

// CheckDaemon judges the engine's own settings, from GET /info.
func CheckDaemon(info system.Info) []Finding {
	const t = "dockerd"
	userns := slices.ContainsFunc(info.SecurityOptions, func(s string) bool { return s == "name=userns" || strings.HasPrefix(s, "name=userns,") })
	fs := []Finding{
		finding("userns-remap", t, userns, pick(userns, "root in containers is remapped", "containers' root is the host's root: set userns-remap")),
		finding("live-restore", t, info.LiveRestoreEnabled, pick(info.LiveRestoreEnabled, "containers survive a dockerd restart", "live-restore is off")),
	}
	logOK := info.LoggingDriver == "json-file" || info.LoggingDriver == "local" || info.LoggingDriver == "journald"
	fs = append(fs, finding("log-driver", t, logOK, "default log driver "+info.LoggingDriver))
	return fs
}

// dangerousCaps are capabilities that undo most of a container's isolation.
var dangerousCaps = []string{"ALL", "SYS_ADMIN", "CAP_SYS_ADMIN", "NET_ADMIN", "CAP_NET_ADMIN", "SYS_PTRACE", "CAP_SYS_PTRACE", "SYS_MODULE", "CAP_SYS_MODULE"}

// CheckContainer judges one running container, from its inspect document.
func CheckContainer(c container.InspectResponse) []Finding {
	name := strings.TrimPrefix(c.Name, "/")
	if name == "" && len(c.ID) >= 12 {
		name = c.ID[:12]
	}
	hc := c.HostConfig
	if hc == nil {
		return []Finding{finding("inspect", name, false, "no host configuration in the inspect document")}
	}
	var fs []Finding
	fs = append(fs, finding("not-privileged", name, !hc.Privileged, pick(!hc.Privileged, "", "runs --privileged")))

	lc := hc.LogConfig
	capped := true
	detail := "log driver " + lc.Type
	switch lc.Type {
	case "json-file":
		capped = lc.Config["max-size"] != ""
		if capped {
			detail += fmt.Sprintf(", max-size %s, max-file %s", lc.Config["max-size"], orDefault(lc.Config["max-file"], "1"))
		} else {
			detail += " without max-size: its log grows without bound"
		}
	case "none":
		capped = false
		detail += ": no logs kept for audit"
	}
	fs = append(fs, finding("log-caps", name, capped, detail))

	fs = append(fs, finding("no-host-network", name, string(hc.NetworkMode) != "host", pick(string(hc.NetworkMode) != "host", "", "shares the host's network namespace")))
	fs = append(fs, finding("no-host-pid", name, string(hc.PidMode) != "host", pick(string(hc.PidMode) != "host", "", "shares the host's PID namespace")))
	fs = append(fs, finding("userns-not-disabled", name, string(hc.UsernsMode) != "host", pick(string(hc.UsernsMode) != "host", "", "--userns=host: its root is the host's root")))

	var sock []string
	for _, m := range c.Mounts {
		if strings.HasSuffix(m.Source, "/docker.sock") {
			sock = append(sock, m.Source)
		}
	}
	fs = append(fs, finding("no-docker-socket", name, len(sock) == 0, pick(len(sock) == 0, "", "mounts "+strings.Join(sock, ", ")+": it can control the host")))

	var bad []string
	for _, cp := range hc.CapAdd {
		if slices.Contains(dangerousCaps, strings.ToUpper(cp)) {
			bad = append(bad, cp)
		}
	}
	fs = append(fs, finding("no-dangerous-caps", name, len(bad) == 0, pick(len(bad) == 0, "", "adds "+strings.Join(bad, ", "))))
	return fs
}

func pick(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// WriteText prints one line per finding and a summary.
func (r *Report) WriteText(w interface{ Write([]byte) (int, error) }) error {
	var b strings.Builder
	for _, f := range r.Findings {
		verdict := "PASS"
		if !f.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(&b, "%s  %-20s %-24s %s\n", verdict, f.Check, f.Target, f.Detail)
	}
	fmt.Fprintf(&b, "\nAudit: %d passed, %d failed.\n", r.Passed, r.Failed)
	_, err := w.Write([]byte(b.String()))
	return err
}
