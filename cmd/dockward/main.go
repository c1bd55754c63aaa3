// Command dockward is the host provisioning agent for Docker hosts: it reads
// an HCL desired state and brings the host there (validate, plan, apply),
// and keeps it there (run). This file is the command line only: flags,
// output and exit codes; the work is in agent, config and modules.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/managedfile"
	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules"
	"github.com/hashicorp/hcl/v2"
	"github.com/sirupsen/logrus"
	"golang.org/x/term"
)

type globals struct {
	root      string
	logFormat string
	logLevel  string
	config    string
	format    string
	only      string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{logFormat: "text", logLevel: "info", format: "text"}
	cmd, operands, code, ok := parseArgs(g, args, stdout, stderr)
	if !ok {
		return code
	}
	cmdName := cmd.name
	if formats := formatsOf(cmd); !slices.Contains(formats, g.format) {
		fmt.Fprintf(stderr, "dockward: --format must be %s, not %q\n", orList(formats), g.format)
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
		// Every path resolves inside DIR (agent/managedfile), so DIR
		// itself must be there: dockward makes files in a tree, not the tree.
		fi, err := os.Stat(abs)
		if usesFiles := cmdName != "version" && cmdName != "init" && cmdName != "help"; usesFiles && (err != nil || !fi.IsDir()) {
			if err == nil {
				err = errors.New("not a directory")
			}
			fmt.Fprintf(stderr, "dockward: --root %s: %v\n", g.root, err)
			return agent.ExitUsage
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmdName {
	case "version":
		return printVersion(g.format, stdout)
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
	case "reload":
		return runReload(ctx, g, stdout, stderr)
	case "audit":
		return runAudit(ctx, g, log, stdout, stderr)
	case "status":
		return runStatus(g, stdout, stderr)
	case "help":
		return runHelp(operands, stdout, stderr)
	case "completion":
		return runCompletion(operands, stdout, stderr)
	}
	// commands.go lists a command main.go does not run (a test prevents it).
	fmt.Fprintf(stderr, "dockward: command %q is not implemented\n", cmdName)
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
	src, cfg, diags, err := readConfig(g)
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
	for _, p := range src.DropIns {
		log.Infof("merging drop-in %s", p.Filename)
	}
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

// readConfig reads the configuration (-c, or the default path under
// --root, or the embedded default, and the conf.d drop-ins beside it) and
// decodes it against the registry's block kinds: the one place the
// command line does, for validate, plan, apply and the agent's reloads.
func readConfig(g *globals) (*config.Source, *config.File, hcl.Diagnostics, error) {
	src, err := config.Read(g.config, g.root)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, diags := config.DecodeParts(src.Parts(), modules.Kinds)
	return src, cfg, diags, nil
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
	return &agent.Engine{Modules: modules.Build(cfg), Root: g.root, StateDir: stateDirOf(g, cfg), Log: log}
}

// stateDirOf is agent.state_dir on the host, or inside --root: cleaned as
// an absolute path first, so that no ".." climbs out of DIR.
func stateDirOf(g *globals, cfg *config.File) string {
	return managedfile.Join(g.root, cfg.Agent.StateDir)
}

// checkStateDir refuses a state directory others could write or that is a
// link, as the configuration file is refused (exit 1). A missing one is
// fine: apply creates it.
func checkStateDir(g *globals, cfg *config.File) error {
	sd, err := managedfile.OpenStateDir(g.root, stateDirOf(g, cfg), false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return sd.Close()
}

func converge(ctx context.Context, cmd string, g *globals, cfg *config.File, log *logrus.Logger, stdout, stderr io.Writer) int {
	if err := checkStateDir(g, cfg); err != nil {
		fmt.Fprintf(stderr, "dockward %s: %v\n", cmd, err)
		return agent.ExitUsage
	}
	eng := engineFor(g, cfg, log)
	var only agent.Selection
	if g.only != "" {
		only = agent.Selection{}
		for _, id := range strings.Split(g.only, ",") {
			id = strings.TrimSpace(id)
			if cfg.Block(id) == nil {
				fmt.Fprintf(stderr, "dockward %s: --only: no module %q in %s\n", cmd, id, cfg.Filename)
				return agent.ExitUsage
			}
			only[id] = true
		}
	}
	var rep *agent.Report
	var err error
	if cmd == "plan" {
		rep, err = eng.Plan(ctx, only)
	} else {
		rep, err = eng.Apply(ctx, only)
	}
	if rep == nil {
		fmt.Fprintf(stderr, "dockward %s: %v\n", cmd, err)
		var unsafe *managedfile.StateDirError
		if cmd == "plan" || errors.As(err, &unsafe) {
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
