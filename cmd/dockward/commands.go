package main

// The command table: the one place that says which commands exist, what
// each takes and what its exit codes mean. The flag sets, the top-level
// usage, `dockward help COMMAND` and the shell completion scripts are all
// generated from it, and tests hold README.md's command-line block and
// main.go's dispatch to it.

import (
	"slices"
	"strings"
)

// flagSpec is one flag. Every flag takes a value; Go's flag package accepts
// it as -name, --name, -name=value and --name=value.
type flagSpec struct {
	name   string   // without dashes
	meta   string   // the value's placeholder in synopses: FILE, DIR, text|json
	usage  string   // one line for help
	values []string // enumerated values, for completion (and meta when set)
	files  bool     // complete file names
	dirs   bool     // complete directory names
	bind   func(g *globals) *string
}

// dashed is how help and completion spell the flag: -c, but --format.
func (f *flagSpec) dashed() string {
	if len(f.name) == 1 {
		return "-" + f.name
	}
	return "--" + f.name
}

// globalFlags work before or after any command.
var globalFlags = []*flagSpec{
	{name: "root", meta: "DIR", dirs: true, bind: func(g *globals) *string { return &g.root },
		usage: "work on the files under DIR (an image, a test tree); modules that touch the live system are skipped"},
	{name: "log-format", values: []string{"text", "json"}, bind: func(g *globals) *string { return &g.logFormat },
		usage: "log format on stderr (default text)"},
	{name: "log-level", values: []string{"debug", "info", "warn", "error"}, bind: func(g *globals) *string { return &g.logLevel },
		usage: "least severe log level shown (default info)"},
}

// Flags that commands take; each command names the ones it takes.
var (
	flagConfig = &flagSpec{name: "c", meta: "FILE", files: true, bind: func(g *globals) *string { return &g.config },
		usage: "configuration file (default /etc/dockward/dockward.hcl, or the embedded default when it does not exist)"}
	flagFormat = &flagSpec{name: "format", values: []string{"text", "json"}, bind: func(g *globals) *string { return &g.format },
		usage: "output format on stdout (default text)"}
	// audit's --format adds the formats CI systems and code-scanning
	// dashboards read.
	flagAuditFormat = &flagSpec{name: "format", values: []string{"text", "json", "junit", "sarif"}, bind: func(g *globals) *string { return &g.format },
		usage: "output format on stdout (default text): junit for CI systems, sarif (2.1.0) for code-scanning dashboards"}
	flagOnly = &flagSpec{name: "only", meta: "ID,...", bind: func(g *globals) *string { return &g.only },
		usage: "only these modules (default all), e.g. docker_daemon,subordinate_ids.dockremap"}
)

// formatsOf lists the --format values a command takes (text when it takes
// no --format).
func formatsOf(c *command) []string {
	for _, f := range c.flags {
		if f.name == "format" {
			return f.values
		}
	}
	return []string{"text"}
}

// orList joins values as "a, b or c".
func orList(vs []string) string {
	if len(vs) < 2 {
		return strings.Join(vs, "")
	}
	return strings.Join(vs[:len(vs)-1], ", ") + " or " + vs[len(vs)-1]
}

// exitCode is one documented exit status of a command.
type exitCode struct {
	code    int
	meaning string
}

// Exit statuses most commands share (agent.Exit*).
var (
	exitDone  = exitCode{0, "done"}
	exitUsage = exitCode{1, "usage error"}
)

type command struct {
	name     string
	group    string
	operands string   // after the flags in the synopsis: COMMAND, bash|zsh
	values   []string // the operand's values, for completion
	valueIs  string   // what the operand is, for zsh's completion listing
	summary  string   // one line for the command list
	text     string   // help: what it does; wrapped, but lines that start with two spaces are kept
	flags    []*flagSpec
	exits    []exitCode
	example  string
}

// groups are the headings of the top-level usage, in order.
var groups = []string{"Configuration", "Converging the host", "Inspecting the host", "This program"}

// commands is in the order the usage lists them.
var commands = []*command{
	{
		name: "validate", group: "Configuration",
		summary: "check the configuration and report every error",
		text:    "Decode the configuration and report every error at once, each with file:line:col. The file must be owned by root and not group- or world-writable. Touches nothing. --format json prints {\"format_version\":\"1\",\"valid\":...,\"diagnostics\":[...]}.",
		flags:   []*flagSpec{flagConfig, flagFormat},
		exits:   []exitCode{{0, "valid"}, {1, "invalid"}},
		example: "dockward validate -c /etc/dockward/dockward.hcl",
	},
	{
		name: "init", group: "Configuration",
		summary: "print the embedded default configuration",
		text:    "Print the embedded default configuration, the one used when /etc/dockward/dockward.hcl does not exist: a starting point to edit.",
		exits:   []exitCode{exitDone, exitUsage},
		example: "dockward init > /etc/dockward/dockward.hcl",
	},
	{
		name: "plan", group: "Converging the host",
		summary: "show what apply would change; changes nothing",
		text:    "Read the host and show, module by module, the changes apply would make. Changes nothing. --format json prints the run report.",
		flags:   []*flagSpec{flagConfig, flagFormat, flagOnly},
		exits:   []exitCode{{0, "nothing to do"}, {2, "changes pending"}, {1, "configuration, usage or planning error"}},
		example: "dockward plan --only docker_daemon",
	},
	{
		name: "apply", group: "Converging the host",
		summary: "bring the host to the declared state, once",
		text:    "Make the changes plan shows, in module order; restart docker once when its files changed, verify it and roll back when it does not come back. Leaves the run report in STATE_DIR/last-report.json. First boot applies the files before docker's first start: --only subordinate_ids.dockremap,docker_daemon.",
		flags:   []*flagSpec{flagConfig, flagFormat, flagOnly},
		exits: []exitCode{{0, "nothing changed"}, {2, "changed"}, {4, "failed"},
			{6, "changed and failed"}, {1, "configuration or usage error"}},
		example: "dockward apply --format json",
	},
	{
		name: "run", group: "Converging the host",
		summary: "the resident agent: converge now, then on events and an interval",
		text:    "The resident agent (dockward.service): converge now, then on drift events and every agent.interval. SIGHUP re-reads the configuration and keeps the running one when the new one is bad; SIGTERM stops it at once: a write in progress completes, a wait for a docker restart is given up (the restart stays owed for the next start).",
		flags:   []*flagSpec{flagConfig},
		exits:   []exitCode{{0, "stopped by SIGTERM or SIGINT"}, {4, "the agent failed"}, {1, "configuration or usage error, or an agent already runs"}},
		example: "dockward run --log-format json",
	},
	{
		name: "status", group: "Converging the host",
		summary: "what the resident agent knows: running, last run, failing, next",
		text: "Show what the resident agent (dockward run) published in the state directory, and whether it still runs: its pid and since when, its configuration files, its last converge (start, trigger, result, exit code), the converges running now (a docker restart being verified takes a while), the next backstop, and per module the status of its last converge, its failures in a row with the error, the next retry and its backoff, drift corrections, pending items, and flapping: what keeps being undone by something else, and until when the agent leaves it alone. An agent holds a lock in the state directory for its life, which the kernel releases when it dies: a dead agent's state is shown as \"not running (last seen ...)\". Reads only; creates nothing. " +
			"--format json prints it as an object (README.md, \"dockward status\"): format_version, running, pid, health (ok, failing or not_running, as the exit code says), agent (what the agent published), last_report and state_dir; fields are only ever added.",
		flags:   []*flagSpec{flagConfig, flagFormat},
		exits:   []exitCode{{0, "an agent runs, no module failing"}, {3, "no agent runs"}, {4, "an agent runs, a module failing"}, {1, "usage or configuration error"}},
		example: "dockward status --format json",
	},
	{
		name: "reload", group: "Converging the host",
		summary: "make the running agent re-read its configuration; wait for it",
		text:    "Send SIGHUP to the running agent ($MAINPID, as systemd sets it for ExecReload=, or the one in /run/dockward/reload.json) and wait until it has reloaded: read the configuration again and finished a converge with it. When the agent refuses the new configuration it keeps running the previous one, and this command prints why and exits 1. It is dockward.service's ExecReload=, so `systemctl reload dockward` does all this. The converge's own result is in the agent's log and status, not in the exit code.",
		exits:   []exitCode{{0, "the agent runs the new configuration"}, {1, "the agent refused it, or usage error"}, {4, "no agent, or it stopped before it reloaded"}},
		example: "dockward reload",
	},
	{
		name: "audit", group: "Inspecting the host",
		summary: "CIS Docker Benchmark checks of the live host and its containers",
		text:    "Check the live host without changing anything, against the CIS Docker Benchmark (sections 1 to 5, numbered as v1.6.0) and dockward's own checks: audit rules, dockerd's settings, the owner and mode of Docker's files, and each running container against the configuration's container_policy, naming the field at fault. Each finding passes, fails, is skipped with its reason or is waived (the configuration's audit block) with its reason; skipped and waived findings never pass. -c names the configuration (its remap user, container policy, waivers and firewall table; the embedded default without one).",
		flags:   []*flagSpec{flagConfig, flagAuditFormat},
		exits:   []exitCode{{0, "no check failed"}, {4, "a check failed"}, {1, "usage or configuration error"}},
		example: "dockward audit --format json",
	},
	{
		name: "help", group: "This program", operands: "[COMMAND]",
		summary: "describe a command: its flags, exit codes and an example",
		text:    "Describe COMMAND, or list the commands.",
		exits:   []exitCode{exitDone, exitUsage},
		example: "dockward help apply",
	},
	{
		name: "completion", group: "This program", operands: "bash|zsh", values: []string{"bash", "zsh"}, valueIs: "shell",
		summary: "print the shell completion script for bash or zsh",
		text:    "Print a completion script for commands, flags and flag values. The .deb installs both; to load one by hand:\n  bash: source <(dockward completion bash)\n  zsh:  dockward completion zsh > \"${fpath[1]}/_dockward\"",
		exits:   []exitCode{exitDone, exitUsage},
		example: "dockward completion bash > /etc/bash_completion.d/dockward",
	},
	{
		name: "version", group: "This program",
		summary: "print the version, commit and Go version",
		text:    "Print the version (the .deb's), the commit it was built from and the Go version. --format json prints them as an object: version, commit, commit_time, modified, go, platform.",
		flags:   []*flagSpec{flagFormat},
		exits:   []exitCode{exitDone, exitUsage},
		example: "dockward version --format json",
	},
}

func lookupCommand(name string) *command {
	i := slices.IndexFunc(commands, func(c *command) bool { return c.name == name })
	if i < 0 {
		return nil
	}
	return commands[i]
}

// flagsOf is every flag a command's flag set accepts: the global flags and
// its own.
func flagsOf(c *command) []*flagSpec {
	return append(slices.Clip(globalFlags), c.flags...)
}

// flagMeta is a flag's value placeholder: text|json for enumerations.
func flagMeta(f *flagSpec) string {
	if f.meta != "" {
		return f.meta
	}
	s := ""
	for i, v := range f.values {
		if i > 0 {
			s += "|"
		}
		s += v
	}
	return s
}
