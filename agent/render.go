package agent

import (
	"fmt"
	"io"
	"strings"
)

// WriteText renders a report the way `terraform plan` reads: changes
// grouped by module, one + ~ - line per change, and one summary line.
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	applied := r.Command == "apply"
	failed := 0
	for _, m := range r.Modules {
		switch m.Status {
		case StatusOK:
			fmt.Fprintf(&b, "%s: up to date\n", m.ID)
			writePending(&b, m.Pending)
			continue
		case StatusSkipped:
			fmt.Fprintf(&b, "%s: %s\n", m.ID, m.Error)
			continue
		case StatusFailed, StatusRolledBack:
			failed++
		}
		label := map[Status]string{StatusChanged: "changes pending", StatusFailed: "FAILED", StatusRolledBack: "ROLLED BACK"}[m.Status]
		if applied && m.Status == StatusChanged {
			label = "changed"
		}
		fmt.Fprintf(&b, "%s: %s\n", m.ID, label)
		for _, c := range m.Changes {
			fmt.Fprintf(&b, "  %s %s\n", c.Action, changeLine(c))
		}
		if m.Error != "" && m.Status != StatusChanged {
			for _, line := range strings.Split(m.Error, "\n") {
				fmt.Fprintf(&b, "  error: %s\n", line)
			}
		}
		writePending(&b, m.Pending)
	}
	add, change, destroy := r.Counts()
	b.WriteString("\n")
	switch {
	case add+change+destroy == 0 && failed == 0 && applied:
		b.WriteString("Nothing changed; the host matches the configuration" + butPending(r.PendingCount()) + ".\n")
	case add+change+destroy == 0 && failed == 0:
		b.WriteString("No changes; the host matches the configuration" + butPending(r.PendingCount()) + ".\n")
	default:
		if applied {
			fmt.Fprintf(&b, "Apply: %d added, %d changed, %d destroyed", add, change, destroy)
		} else {
			fmt.Fprintf(&b, "Plan: %d to add, %d to change, %d to destroy", add, change, destroy)
		}
		if failed > 0 {
			fmt.Fprintf(&b, "; %d module(s) failed", failed)
		}
		b.WriteString(".\n")
		if n := r.PendingCount(); n > 0 {
			fmt.Fprintf(&b, "%s waiting for something outside dockward (above).\n", pendingItems(n))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func butPending(n int) string {
	if n == 0 {
		return ""
	}
	return " but for " + pendingItems(n) + " waiting for something outside dockward (above)"
}

func pendingItems(n int) string {
	if n == 1 {
		return "1 pending item"
	}
	return fmt.Sprintf("%d pending items", n)
}

// writePending lists what a module found declared but not there yet.
func writePending(b *strings.Builder, ps []Pending) {
	for _, p := range ps {
		fmt.Fprintf(b, "  pending: %s", p.Target)
		if p.Detail != "" {
			fmt.Fprintf(b, "  # %s", p.Detail)
		}
		b.WriteString("\n")
	}
}

func changeLine(c Change) string {
	s := describe(c)
	if c.Detail != "" {
		s += "  # " + c.Detail
	}
	return s
}
