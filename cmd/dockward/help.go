package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/agext/levenshtein"
	"github.com/dockward/dockward/agent"
)

// helpWidth is where help text wraps: a terminal's 80 columns.
const helpWidth = 80

// parseArgs parses the global flags, the command and its flags into g. ok
// is false when the run ends here, with code: -h/--help (0, help on
// stdout) or a usage error (1, a hint on stderr).
func parseArgs(g *globals, args []string, stdout, stderr io.Writer) (cmd *command, operands []string, code int, ok bool) {
	top := flag.NewFlagSet("dockward", flag.ContinueOnError)
	top.SetOutput(stderr)
	top.Usage = func() {} // help and hints are printed below, on the right stream
	registerFlags(top, g, globalFlags)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText())
			return nil, nil, agent.ExitOK, false
		}
		fmt.Fprintln(stderr, "Run 'dockward help' for usage.")
		return nil, nil, agent.ExitUsage, false
	}
	if top.NArg() == 0 {
		fmt.Fprint(stderr, usageText())
		return nil, nil, agent.ExitUsage, false
	}
	name := top.Arg(0)
	if cmd = lookupCommand(name); cmd == nil {
		fmt.Fprintf(stderr, "dockward: unknown command %q%s\nRun 'dockward help' for the list of commands.\n", name, suggest(name))
		return nil, nil, agent.ExitUsage, false
	}
	fs := flag.NewFlagSet("dockward "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	registerFlags(fs, g, flagsOf(cmd))
	if err := fs.Parse(top.Args()[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, commandHelp(cmd))
			return nil, nil, agent.ExitOK, false
		}
		fmt.Fprintf(stderr, "Run 'dockward help %s' for its flags.\n", name)
		return nil, nil, agent.ExitUsage, false
	}
	if cmd.operands == "" && fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dockward %s: unexpected argument %q\nRun 'dockward help %s' for usage.\n", name, fs.Arg(0), name)
		return nil, nil, agent.ExitUsage, false
	}
	return cmd, fs.Args(), agent.ExitOK, true
}

func registerFlags(fs *flag.FlagSet, g *globals, flags []*flagSpec) {
	for _, f := range flags {
		p := f.bind(g)
		fs.StringVar(p, f.name, *p, f.usage)
	}
}

// suggest is `; did you mean "plan"?` for a misspelt command (the closest
// within two edits, as HCL suggests names), or nothing.
func suggest(name string) string {
	best, bestDist := "", 3
	for _, c := range commands {
		if d := levenshtein.Distance(name, c.name, nil); d < bestDist {
			best, bestDist = c.name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// runHelp is `dockward help [COMMAND]`.
func runHelp(operands []string, stdout, stderr io.Writer) int {
	switch len(operands) {
	case 0:
		fmt.Fprint(stdout, usageText())
		return agent.ExitOK
	case 1:
		if c := lookupCommand(operands[0]); c != nil {
			fmt.Fprint(stdout, commandHelp(c))
			return agent.ExitOK
		}
		fmt.Fprintf(stderr, "dockward help: unknown command %q%s\nRun 'dockward help' for the list of commands.\n", operands[0], suggest(operands[0]))
	default:
		fmt.Fprintf(stderr, "dockward help: one command at a time, not %q\n", operands)
	}
	return agent.ExitUsage
}

// usageText is the top-level usage: the commands by group, the global
// flags and the exit codes. README.md's "Command line" block is this text.
func usageText() string {
	var b strings.Builder
	b.WriteString("dockward keeps a Docker host hardened, as an HCL file declares.\n\n")
	b.WriteString("Usage: dockward [GLOBAL FLAGS] COMMAND [FLAGS]\n")
	nameWidth := 0
	for _, c := range commands {
		nameWidth = max(nameWidth, len(c.name))
	}
	for _, grp := range groups {
		fmt.Fprintf(&b, "\n%s:\n", grp)
		for _, c := range commands {
			if c.group == grp {
				fmt.Fprintf(&b, "  %-*s  %s\n", nameWidth, c.name, c.summary)
			}
		}
	}
	b.WriteString("\nGlobal flags, before or after the command:\n")
	writeFlags(&b, globalFlags)
	b.WriteString("\nCommand flags, after the command:\n")
	writeFlagUse(&b)
	b.WriteString("\nExit codes (an API):\n")
	for _, c := range commands {
		if slices.Equal(c.exits, []exitCode{exitDone, exitUsage}) {
			continue
		}
		fmt.Fprintf(&b, "  %-*s  ", nameWidth, c.name)
		writeWrapped(&b, exitList(c.exits), 2+nameWidth+2, " · ")
	}
	fmt.Fprintf(&b, "  %-*s  ", nameWidth, "others")
	writeWrapped(&b, exitList([]exitCode{exitDone, exitUsage}), 2+nameWidth+2, " · ")
	b.WriteString("\n'dockward help COMMAND' describes a command: flags, exit codes, an example.\n")
	return b.String()
}

// commandHelp is `dockward help NAME` and `dockward NAME --help`.
func commandHelp(c *command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\n", synopsis(c))
	for _, line := range strings.Split(c.text, "\n") {
		if strings.HasPrefix(line, "  ") {
			b.WriteString(line + "\n")
			continue
		}
		writeWrapped(&b, strings.Fields(line), 0, " ")
	}
	if len(c.flags) > 0 {
		b.WriteString("\nFlags:\n")
		writeFlags(&b, c.flags)
	}
	b.WriteString("\nGlobal flags, before or after the command:\n")
	writeFlags(&b, globalFlags)
	b.WriteString("\nExit codes:\n")
	for _, e := range c.exits {
		fmt.Fprintf(&b, "  %d  %s\n", e.code, e.meaning)
	}
	fmt.Fprintf(&b, "\nExample:\n  %s\n", c.example)
	return b.String()
}

// synopsis is a command's usage line: dockward plan [-c FILE] [--format text|json] ...
func synopsis(c *command) string {
	s := "dockward " + c.name
	for _, f := range c.flags {
		s += " [" + f.dashed() + " " + flagMeta(f) + "]"
	}
	if c.operands != "" {
		s += " " + c.operands
	}
	return s
}

// writeFlags writes flags as a two-column list, descriptions wrapped.
func writeFlags(b *strings.Builder, flags []*flagSpec) {
	width := 0
	for _, f := range flags {
		width = max(width, len(f.dashed())+1+len(flagMeta(f)))
	}
	for _, f := range flags {
		fmt.Fprintf(b, "  %-*s  ", width, f.dashed()+" "+flagMeta(f))
		writeWrapped(b, strings.Fields(f.usage), 2+width+2, " ")
	}
}

// writeFlagUse lists the command flags with the commands that take them.
func writeFlagUse(b *strings.Builder) {
	var flags []*flagSpec
	users := map[*flagSpec][]string{}
	for _, c := range commands {
		for _, f := range c.flags {
			if users[f] == nil {
				flags = append(flags, f)
			}
			users[f] = append(users[f], c.name)
		}
	}
	width := 0
	for _, f := range flags {
		width = max(width, len(f.dashed())+1+len(flagMeta(f)))
	}
	for _, f := range flags {
		fmt.Fprintf(b, "  %-*s  ", width, f.dashed()+" "+flagMeta(f))
		writeWrapped(b, users[f], 2+width+2, ", ")
	}
}

func exitList(exits []exitCode) []string {
	var items []string
	for _, e := range exits {
		items = append(items, fmt.Sprintf("%d %s", e.code, e.meaning))
	}
	return items
}

// writeWrapped writes items joined by sep, starting at column indent, and
// wraps before an item that would pass helpWidth; it ends the line.
func writeWrapped(b *strings.Builder, items []string, indent int, sep string) {
	col, sepWidth := indent, utf8.RuneCountInString(sep)
	for i, it := range items {
		w := utf8.RuneCountInString(it)
		if i > 0 {
			if col+sepWidth+w > helpWidth {
				b.WriteString(strings.TrimRight(sep, " ") + "\n" + strings.Repeat(" ", indent))
				col = indent
			} else {
				b.WriteString(sep)
				col += sepWidth
			}
		}
		b.WriteString(it)
		col += w
	}
	b.WriteString("\n")
}
