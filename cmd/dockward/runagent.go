package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/managedfile"
	"github.com/dockward/dockward/config"
	"github.com/hashicorp/hcl/v2"
	"github.com/sirupsen/logrus"
)

// runAgent is `dockward run`, the resident agent: converge now, then on
// events and on the interval. SIGHUP reloads the configuration (and the
// outcome goes to reloadStateFile, for `dockward reload`); SIGTERM
// cancels the runs in flight (see agent.Loop.Run) and exits 0.
func runAgent(ctx context.Context, g *globals, first *config.File, log *logrus.Logger) int {
	collectByMemory()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()

	notify := func(state string) {
		if _, err := daemon.SdNotify(false, state); err != nil {
			log.WithError(err).Debug("sd_notify")
		}
	}
	// WATCHDOG=1 at half the interval systemd expects, from its own
	// goroutine: a converge that takes long must not be mistaken for a hang,
	// but a wedged process stops the pings.
	if wd, err := daemon.SdWatchdogEnabled(false); err == nil && wd > 0 {
		go func() {
			t := time.NewTicker(wd / 2)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					notify("WATCHDOG=1")
				}
			}
		}()
	}

	cfg := first
	if err := checkStateDir(g, cfg); err != nil {
		log.WithError(err).Error("dockward run")
		return agent.ExitUsage
	}
	// The agent lock, for the agent's life: `dockward status` tells a live
	// agent from a dead one's state by it, and a second agent is refused.
	// It stays in the state directory the agent started with; a reload that
	// changes agent.state_dir takes effect for it at the next start.
	resident, err := agent.StartResident(g.root, stateDirOf(g, cfg), configFiles(cfg), logrus.NewEntry(log))
	if err != nil {
		log.WithError(err).Error("dockward run")
		return agent.ExitUsage
	}
	defer resident.Close() //nolint:errcheck
	// Who this agent is, for `dockward reload` (ExecReload=): it waits
	// for this process's reports. Without the file the agent still runs
	// and reloads on SIGHUP; only a reload that waits is lost.
	reported := true
	if err := writeReloadState(g, reloadState{PID: os.Getpid()}); err != nil {
		reported = false
		log.WithError(err).Warn("dockward reload cannot wait for this agent's reloads")
	} else {
		defer removeReloadState(g)
	}
	metrics := agent.NewMetrics()
	metrics.Root = g.root
	loads := 0
	loop := &agent.Loop{
		Load: func() (*agent.Engine, agent.LoopSettings, error) {
			loads++
			if loads > 1 {
				c, err := reloadConfig(g, log)
				if err != nil {
					return nil, agent.LoopSettings{}, err
				}
				cfg = c
			}
			set := agent.LoopSettings{Interval: cfg.Agent.Interval, Splay: cfg.Agent.Splay, Watch: cfg.Agent.Watch}
			// A host path: Metrics.Root resolves it inside --root.
			set.MetricsTextfile = cfg.Agent.MetricsTextfile
			set.Flap = &agent.FlapPolicy{Count: cfg.Agent.FlapCorrections, Window: cfg.Agent.FlapWindow,
				Backoff: agent.Backoff{Base: cfg.Agent.FlapBackoff, Max: max(time.Hour, cfg.Agent.FlapBackoff)}}
			set.ConfigFiles = configFiles(cfg)
			return engineFor(g, cfg, log), set, nil
		},
		Reload:   reload,
		Notify:   notify,
		Metrics:  metrics,
		Resident: resident,
		Log:      log,
		Reloaded: func(r agent.ReloadResult) {
			if !reported {
				return
			}
			rec := &reloadRecord{StartedUsec: r.Started, OK: r.Err == nil}
			if r.Err != nil {
				rec.Error = r.Err.Error()
			}
			if err := writeReloadState(g, reloadState{PID: os.Getpid(), Reload: rec}); err != nil {
				log.WithError(err).Error("reload: could not report the reload to dockward reload, which waits for it until its timeout")
			}
		},
	}
	switch {
	case first.Filename != config.DefaultFilename:
		loop.ConfigPath = first.Filename
		loop.ConfigDir = config.DropInDir(first.Filename)
	case g.config == "":
		// Running on the embedded default: a configuration file that
		// appears where it is looked for is loaded, as a changed one is.
		p := managedfile.Join(g.root, config.DefaultPath)
		if _, err := os.Stat(filepath.Dir(p)); err == nil {
			loop.ConfigPath = p
			loop.ConfigDir = config.DropInDir(p)
		}
	}
	if err := loop.Run(ctx); err != nil {
		log.WithError(err).Error("dockward run")
		return agent.ExitFailed
	}
	return agent.ExitOK
}

// configFiles are the files cfg was read from: the main file (or the
// embedded default), then its drop-ins in merge order (lexical, and all in
// one directory).
func configFiles(cfg *config.File) []string {
	var dropIns []string
	for name := range cfg.Files {
		if name != cfg.Filename {
			dropIns = append(dropIns, abs(name))
		}
	}
	slices.Sort(dropIns)
	main := cfg.Filename
	if main != config.DefaultFilename {
		main = abs(main)
	}
	return append([]string{main}, dropIns...)
}

// abs is path made absolute (the agent's -c may be relative to where it
// was started; status runs elsewhere), or path when that fails.
func abs(path string) string {
	if p, err := filepath.Abs(path); err == nil {
		return p
	}
	return path
}

// reloadConfig re-reads and re-validates the configuration for SIGHUP.
func reloadConfig(g *globals, log *logrus.Logger) (*config.File, error) {
	src, cfg, diags, err := readConfig(g)
	if err != nil {
		return nil, err
	}
	if diags.HasErrors() {
		// One log entry that names every error where it is; `dockward
		// validate` shows them with their source lines.
		var errs []string
		for _, d := range diags {
			if d.Severity != hcl.DiagError {
				continue
			}
			e := d.Summary
			if d.Detail != "" {
				e += ": " + d.Detail
			}
			if d.Subject != nil {
				e = d.Subject.String() + ": " + e
			}
			errs = append(errs, e)
		}
		return nil, fmt.Errorf("%s: %d error(s) (dockward validate shows them): %s", src.Filename, len(errs), strings.Join(errs, "; "))
	}
	return cfg, nil
}

// agentMemoryLimit is the resident agent's soft limit for Go-managed memory
// (GOMEMLIMIT): garbage is collected when it is approached. Measured in the
// sandbox machine: about 9 MiB of it is the runtime's own (stacks, data),
// the live heap after a converge under 1 MiB, so the heap may grow to about
// 7 MiB between collections (one every converge or two, each about 1 ms),
// and RSS stays near 22 MB, under the 30 MB target and the unit's
// MemoryMax. With 12 MiB, RSS was 18 MB; with 20 MiB, 27 MB.
const agentMemoryLimit = 16 << 20

// collectByMemory makes the agent's garbage collection depend on memory,
// not time: with the default settings Go collects every two minutes even
// when nothing was allocated, waking an idle agent for nothing. With GOGC
// off and a memory limit, an agent that allocates nothing never collects.
// GOGC or GOMEMLIMIT in the environment win.
func collectByMemory() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(agentMemoryLimit)
}
