// Command dockward is the host provisioning agent for Docker hosts: it reads
// an HCL desired state and brings the host there (validate, plan, apply),
// and keeps it there (run). This file is the command line only: flags,
// output and exit codes; the work is in agent, config and modules.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules"
	"github.com/hashicorp/hcl/v2"
	"github.com/sirupsen/logrus"
	"golang.org/x/term"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `dockward: keep a Docker host hardened, as an HCL file declares.

Usage:
  dockward validate [-c FILE] [--format text|json]   0 valid, 1 invalid
  dockward plan     [-c FILE] [--format text|json]   0 nothing to do, 2 changes pending, 1 error
  dockward apply    [-c FILE] [--format text|json]   0 nothing changed, 2 changed, 4 failed,
                                                     6 changed and failed, 1 config or usage error
  dockward run      [-c FILE]                        converge now, then on events and on an interval

plan and apply take --only ID[,ID...] to work on some modules only (first boot
applies files before docker's first start: --only subordinate_ids.dockremap,docker_daemon).
  dockward audit    [--format text|json]             read-only checks of the live host and its
                                                     containers: 0 all pass, 4 any fail
  dockward init                                      print the embedded default configuration
  dockward version

Global flags (before or after the command):
  --root DIR          work on the files under DIR (an image, a test tree); modules that
                      touch the live system (D-Bus, netlink, dockerd) are skipped
  --log-format text|json
  --log-level  debug|info|warn|error

-c defaults to /etc/dockward/dockward.hcl, or the embedded default when it does not exist.
`

type globals struct {
	root      string
	logFormat string
	logLevel  string
	config    string
	format    string
	only      string
}

func (g *globals) register(fs *flag.FlagSet, cmd bool) {
	fs.StringVar(&g.root, "root", g.root, "work under `DIR` instead of /")
	fs.StringVar(&g.logFormat, "log-format", g.logFormat, "log format: text or json")
	fs.StringVar(&g.logLevel, "log-level", g.logLevel, "log level: debug, info, warn, error")
	if cmd {
		fs.StringVar(&g.config, "c", g.config, "configuration `FILE` (default /etc/dockward/dockward.hcl)")
		fs.StringVar(&g.format, "format", g.format, "output format: text or json")
		fs.StringVar(&g.only, "only", g.only, "comma-separated module `IDS` to plan or apply (default all), e.g. docker_daemon,subordinate_ids.dockremap")
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{logFormat: "text", logLevel: "info", format: "text"}
	top := flag.NewFlagSet("dockward", flag.ContinueOnError)
	top.SetOutput(stderr)
	top.Usage = func() { fmt.Fprint(stderr, usage) }
	g.register(top, false)
	if err := top.Parse(args); err != nil {
		return exitUsage(err)
	}
	if top.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return agent.ExitUsage
	}
	cmdName, rest := top.Arg(0), top.Args()[1:]
	fs := flag.NewFlagSet("dockward "+cmdName, flag.ContinueOnError)
	fs.SetOutput(stderr)
	g.register(fs, true)
	if err := fs.Parse(rest); err != nil {
		return exitUsage(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dockward %s: unexpected argument %q\n", cmdName, fs.Arg(0))
		return agent.ExitUsage
	}
	if g.format != "text" && g.format != "json" {
		fmt.Fprintf(stderr, "dockward: --format must be text or json, not %q\n", g.format)
		return agent.ExitUsage
	}
	log, err := newLogger(g, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "dockward: %v\n", err)
		return agent.ExitUsage
	}
	if g.root != "" {
		abs, err := filepath.Abs(g.root)
		if err != nil {
			fmt.Fprintf(stderr, "dockward: --root: %v\n", err)
			return agent.ExitUsage
		}
		g.root = abs
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmdName {
	case "version":
		fmt.Fprintf(stdout, "dockward %s\n", version)
		return agent.ExitOK
	case "init":
		_, _ = stdout.Write(config.Default)
		return agent.ExitOK
	case "validate":
		_, code := load(g, log, stdout, stderr, true)
		return code
	case "plan", "apply":
		cfg, code := load(g, log, stdout, stderr, false)
		if cfg == nil {
			return code
		}
		return converge(ctx, cmdName, g, cfg, log, stdout, stderr)
	case "run":
		cfg, code := load(g, log, stdout, stderr, false)
		if cfg == nil {
			return code
		}
		return runAgent(ctx, g, cfg, log)
	case "audit":
		return runAudit(ctx, g, log, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return agent.ExitOK
	}
	fmt.Fprintf(stderr, "dockward: unknown command %q\n\n%s", cmdName, usage)
	return agent.ExitUsage
}

func exitUsage(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return agent.ExitOK
	}
	return agent.ExitUsage
}

func newLogger(g *globals, w io.Writer) (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(w)
	lvl, err := logrus.ParseLevel(g.logLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	log.SetLevel(lvl)
	switch g.logFormat {
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	case "text":
		tty := false
		if f, ok := w.(*os.File); ok {
			tty = term.IsTerminal(int(f.Fd()))
		}
		log.SetFormatter(&logrus.TextFormatter{ForceColors: tty, DisableColors: !tty, FullTimestamp: !tty})
	default:
		return nil, fmt.Errorf("--log-format must be text or json, not %q", g.logFormat)
	}
	return log, nil
}

// load reads and decodes the configuration, printing diagnostics. With
// report set (validate) it also prints the verdict.
func load(g *globals, log *logrus.Logger, stdout, stderr io.Writer, report bool) (*config.File, int) {
	src, err := config.Read(g.config, g.root)
	if err != nil {
		if report && g.format == "json" {
			_ = config.WriteJSON(stdout, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Configuration refused", Detail: err.Error()}})
		} else {
			fmt.Fprintf(stderr, "dockward: %v\n", err)
		}
		return nil, agent.ExitUsage
	}
	if src.Embedded {
		log.Infof("%s does not exist; using the embedded default configuration (dockward init prints it)", config.DefaultPath)
	}
	cfg, diags := config.Decode(src.Filename, src.Bytes, modules.Kinds)
	if report && g.format == "json" {
		_ = config.WriteJSON(stdout, diags)
	} else if len(diags) > 0 {
		_ = config.WriteDiagnostics(stderr, cfg.Files, diags, isTerminal(stderr))
	}
	if diags.HasErrors() {
		if report && g.format == "text" {
			fmt.Fprintf(stderr, "%s: invalid (%d error(s))\n", src.Filename, countErrors(diags))
		}
		return nil, agent.ExitUsage
	}
	if report && g.format == "text" {
		fmt.Fprintf(stdout, "%s: valid\n", src.Filename)
	}
	return cfg, agent.ExitOK
}

func countErrors(diags hcl.Diagnostics) int {
	n := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			n++
		}
	}
	return n
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func engineFor(g *globals, cfg *config.File, log *logrus.Logger) *agent.Engine {
	stateDir := cfg.Agent.StateDir
	if g.root != "" {
		stateDir = filepath.Join(g.root, stateDir)
	}
	return &agent.Engine{Modules: modules.Build(cfg), Root: g.root, StateDir: stateDir, Log: log}
}

func converge(ctx context.Context, cmd string, g *globals, cfg *config.File, log *logrus.Logger, stdout, stderr io.Writer) int {
	eng := engineFor(g, cfg, log)
	if g.only != "" {
		eng.Only = map[string]bool{}
		for _, id := range strings.Split(g.only, ",") {
			id = strings.TrimSpace(id)
			if cfg.Block(id) == nil {
				fmt.Fprintf(stderr, "dockward %s: --only: no module %q in %s\n", cmd, id, cfg.Filename)
				return agent.ExitUsage
			}
			eng.Only[id] = true
		}
	}
	var rep *agent.Report
	var err error
	if cmd == "plan" {
		rep, err = eng.Plan(ctx)
	} else {
		rep, err = eng.Apply(ctx)
	}
	if rep == nil {
		fmt.Fprintf(stderr, "dockward %s: %v\n", cmd, err)
		if cmd == "plan" {
			return agent.ExitUsage
		}
		return agent.ExitFailed
	}
	if err != nil {
		log.WithError(err).Error("run report")
	}
	if g.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		_ = agent.WriteText(stdout, rep)
	}
	code := rep.ExitCode()
	if err != nil && cmd == "apply" && !rep.Failed() {
		// The host changed as reported but the report could not be kept.
		code |= agent.ExitFailed
	}
	return code
}
