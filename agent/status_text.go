package agent

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteStatusText renders `dockward status`: the agent, its configuration,
// its last run and schedule, then module by module what failed, what is
// pending and what was corrected. Times are shown in loc, with how long ago
// (or until) at now.
func WriteStatusText(w io.Writer, v *StatusView, now time.Time, loc *time.Location) error {
	var b strings.Builder
	at := func(t time.Time) string {
		return t.In(loc).Format("2006-01-02 15:04:05 MST") + " (" + relative(t, now) + ")"
	}
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-15s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	st := v.Agent
	switch {
	case v.Running && st == nil:
		line("Agent", "running, pid %d (starting: it has published nothing yet)", v.PID)
	case v.Running:
		line("Agent", "running, pid %d, since %s", v.PID, at(st.Started))
	case st == nil:
		line("Agent", "not running (no agent has run with state directory %s)", v.StateDir)
	case !st.Stopped.IsZero():
		line("Agent", "not running (stopped %s; was pid %d)", at(st.Stopped), st.PID)
	default:
		line("Agent", "not running (last seen %s; pid %d is gone without stopping: killed or crashed)", at(st.Updated), st.PID)
	}
	if st != nil {
		for i, f := range st.Config.Files {
			if i == 0 {
				line("Configuration", "%s", f)
			} else {
				fmt.Fprintf(&b, "%-15s %s\n", "", f)
			}
		}
		fmt.Fprintf(&b, "%-15s loaded %s\n", "", at(st.Config.Loaded))
		if st.Config.ReloadError != "" {
			fmt.Fprintf(&b, "%-15s reload REFUSED %s, running the configuration above: %s\n", "", at(st.Config.ReloadFailed), st.Config.ReloadError)
		}
		if r := st.LastRun; r != nil {
			line("Last run", "%s (exit %d), %s, took %s", r.Result, r.ExitCode, at(r.Start), seconds(r.Duration))
			fmt.Fprintf(&b, "%-15s trigger: %s\n", "", r.Trigger)
			if r.Error != "" {
				fmt.Fprintf(&b, "%-15s error: %s\n", "", r.Error)
			}
		} else if v.Running {
			line("Last run", "none yet: the first converge is running")
		}
		if v.Running {
			for i, c := range st.Converging {
				label := ""
				if i == 0 {
					label = "Converging:"
				}
				fmt.Fprintf(&b, "%-15s %s lane since %s: %s (%s)\n", label, c.Lane, at(c.Start), c.Trigger, strings.Join(c.Modules, ", "))
			}
		}
		if !st.LastSuccess.IsZero() && (st.LastRun == nil || st.LastRun.Result == "failed") {
			line("Last success", "%s", at(st.LastSuccess))
		}
		if v.Running && !st.NextBackstop.IsZero() {
			line("Next backstop", "%s", at(st.NextBackstop))
		}
		if r := st.Retry; v.Running && r != nil {
			line("Retry", "%s at %s, backoff %s after %s in a row", strings.Join(r.Modules, ", "), at(r.At), seconds(r.Backoff), plural(r.Failures, "failed run"))
		}
	}
	rep := v.LastReport
	if rep != nil && (st == nil || st.LastRun == nil || rep.Start.After(st.LastRun.Start)) {
		line("Last report", "%s %s, exit %d, took %s", rep.Command, at(rep.Start), rep.ExitCode(), seconds(rep.Duration))
		if st != nil {
			fmt.Fprintf(&b, "%-15s (a run of its own, not the agent's)\n", "")
		}
	}

	var modules []ModuleState
	switch {
	case st != nil:
		modules = st.Modules
	case rep != nil:
		for _, mr := range rep.Modules {
			ms := ModuleState{ID: mr.ID, Status: mr.Status, Pending: mr.Pending, Error: mr.Error}
			if mr.Status == StatusFailed || mr.Status == StatusRolledBack {
				ms.ConsecutiveFailures = 1
			}
			modules = append(modules, ms)
		}
	}
	if len(modules) > 0 {
		b.WriteString("\nModules:\n")
		width := 0
		for _, m := range modules {
			width = max(width, len(m.ID))
		}
		var failing, flapping []string
		pending := 0
		for _, m := range modules {
			status := string(m.Status)
			switch m.Status {
			case "":
				status = "not run yet"
			case StatusFailed:
				status = "FAILED"
			case StatusRolledBack:
				status = "ROLLED BACK"
			}
			if m.ConsecutiveFailures > 0 {
				failing = append(failing, m.ID)
			}
			var notes []string
			if m.ConsecutiveFailures > 0 && !m.FailingSince.IsZero() {
				notes = append(notes, fmt.Sprintf("failing since %s, %s in a row", at(m.FailingSince), plural(m.ConsecutiveFailures, "run")))
			}
			switch {
			case !m.RetryAt.IsZero() && v.Running:
				notes = append(notes, fmt.Sprintf("retry %s (backoff %s)", relative(m.RetryAt, now), seconds(m.Backoff)))
			case m.Status == StatusRolledBack && v.Running:
				notes = append(notes, "retried by the next backstop")
			}
			if m.DriftCorrections > 0 {
				notes = append(notes, plural(m.DriftCorrections, "drift correction"))
			}
			if f := m.Flapping; f != nil {
				flapping = append(flapping, m.ID)
				if now.Before(f.Until) {
					notes = append(notes, fmt.Sprintf("FLAPPING, left alone until %s", at(f.Until)))
				} else {
					notes = append(notes, "FLAPPING until recently: its back-off is over, and it is watched for more")
				}
			}
			fmt.Fprintf(&b, "  %-*s  %s", width, m.ID, status)
			if len(notes) > 0 {
				b.WriteString(": " + strings.Join(notes, "; "))
			}
			b.WriteString("\n")
			if m.ConsecutiveFailures > 0 && m.Error != "" {
				for _, l := range strings.Split(m.Error, "\n") {
					fmt.Fprintf(&b, "  %-*s    error: %s\n", width, "", l)
				}
			}
			if f := m.Flapping; f != nil {
				fmt.Fprintf(&b, "  %-*s    flapping: %s corrected %s within %s (back-off %d), since %s; something else keeps undoing it\n", width, "", strings.Join(f.Targets, ", "), plural(f.Corrections, "time"), f.Window, f.Rounds, at(f.Since))
			}
			for _, p := range m.Pending {
				fmt.Fprintf(&b, "  %-*s    pending: %s", width, "", p.Target)
				if p.Detail != "" {
					fmt.Fprintf(&b, "  # %s", p.Detail)
				}
				b.WriteString("\n")
				pending++
			}
		}
		b.WriteString("\n")
		if len(flapping) > 0 {
			fmt.Fprintf(&b, "%s flapping: %s (corrections keep being undone; the agent backs off instead of fighting).\n", plural(len(flapping), "module"), strings.Join(flapping, ", "))
		}
		switch {
		case len(failing) > 0:
			fmt.Fprintf(&b, "%s failing: %s.\n", plural(len(failing), "module"), strings.Join(failing, ", "))
		case pending > 0:
			fmt.Fprintf(&b, "Nothing failing; %s waiting for something outside dockward (above).\n", pendingItems(pending))
		default:
			b.WriteString("Nothing failing.\n")
		}
	}
	if !v.Running {
		b.WriteString("No agent runs: nothing corrects drift until one starts (systemctl start dockward).\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// relative is "3m17s ago" or "in 3m17s": to the second under an hour, to
// the minute above.
func relative(t, now time.Time) string {
	d := now.Sub(t)
	s := "ago"
	if d < 0 {
		d, s = -d, ""
	}
	var txt string
	switch {
	case d < time.Second:
		return "now"
	case d < time.Hour:
		txt = d.Round(time.Second).String()
	default:
		txt = strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	if s == "" {
		return "in " + txt
	}
	return txt + " " + s
}

// seconds renders a duration in seconds the way Go prints durations, to
// the millisecond.
func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	if d > 0 && d < time.Millisecond {
		return "<1ms"
	}
	return d.Round(time.Millisecond).String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
