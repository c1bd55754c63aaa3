package main

// `dockward reload` and the agent's side of it: how `systemctl reload
// dockward` waits for the agent's reload and fails when the agent refuses
// the new configuration.
//
// systemd has one way for a reload to fail: the exit status of ExecReload=.
// A notify-reload service cannot report a failed reload (ERRNO= only sets
// the StatusErrno property), and from systemd 253 to at least 257
// ExecReload= of such a service runs beside the signal systemd has already
// sent, so a command there cannot tell that reload from an earlier one
// (later versions run it first, then signal). So the unit is Type=notify
// on every systemd version, and ExecReload= is this command: it sends
// SIGHUP itself, at a CLOCK_MONOTONIC time T, and waits until the agent
// reports a reload that began at T or later. The agent still speaks the
// reload protocol (RELOADING=1 with MONOTONIC_USEC=, READY=1), which
// systemd honours for Type=notify too: a reload the agent starts on its
// own (a conf.d file changed) shows as "reloading".
//
// The agent reports in a file of the runtime directory, which holds no
// configuration: the configuration being reloaded may be the bad one, and
// it names the state directory.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/managedfile"
)

// runtimeDir is the agent's runtime directory (the unit's
// RuntimeDirectory=, under --root inside DIR): what it keeps for the
// lifetime of one process, gone when the service stops.
const runtimeDir = "/run/dockward"

// reloadStateFile is where the running agent says who it is and how its
// last reload went, for `dockward reload`.
const reloadStateFile = runtimeDir + "/reload.json"

// reloadState is reloadStateFile's content.
type reloadState struct {
	PID    int           `json:"pid"`
	Reload *reloadRecord `json:"reload,omitempty"` // none yet
}

type reloadRecord struct {
	// StartedUsec is CLOCK_MONOTONIC in µs as the reload began (its
	// RELOADING=1's MONOTONIC_USEC=).
	StartedUsec uint64 `json:"started_usec"`
	OK          bool   `json:"ok"`
	Error       string `json:"error,omitempty"` // why the configuration was refused
}

// writeReloadState is the agent's side: at start (no reload yet) and after
// every reload.
func writeReloadState(g *globals, st reloadState) error {
	root, err := managedfile.Open(g.root)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.MkdirAll(runtimeDir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return root.WriteAtomic(reloadStateFile, append(b, '\n'), managedfile.RootOwned(0o600))
}

// removeReloadState is the agent's as it stops (systemd removes the
// runtime directory too): a `dockward reload` then finds no agent rather
// than a dead one's pid.
func removeReloadState(g *globals) {
	root, err := managedfile.Open(g.root)
	if err != nil {
		return
	}
	defer root.Close()
	if st, err := readReloadState(g); err == nil && st != nil && st.PID == os.Getpid() {
		_ = root.Remove(reloadStateFile)
	}
}

func readReloadState(g *globals) (*reloadState, error) {
	root, err := managedfile.Open(g.root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Read(reloadStateFile, 64<<10)
	if err != nil {
		return nil, err
	}
	if !f.Exists {
		return nil, nil
	}
	var st reloadState
	if err := json.Unmarshal(f.Data, &st); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Path, err)
	}
	return &st, nil
}

// reloadPoll is how often `dockward reload` looks at the agent's report.
const reloadPoll = 20 * time.Millisecond

// runReload is `dockward reload`: SIGHUP to the running agent, then wait
// for its verdict on a reload begun after the signal. The agent is
// $MAINPID (systemd sets it for ExecReload=) or the one that wrote
// reloadStateFile. systemd's timeout for the reload (TimeoutStartSec=)
// ends the wait with SIGTERM (ctx).
func runReload(ctx context.Context, g *globals, stdout, stderr io.Writer) int {
	path := managedfile.Join(g.root, reloadStateFile)
	st, err := readReloadState(g)
	if err != nil {
		fmt.Fprintf(stderr, "dockward reload: %v\n", err)
		return agent.ExitFailed
	}
	pid := 0
	if s := os.Getenv("MAINPID"); s != "" {
		if pid, err = strconv.Atoi(s); err != nil || pid <= 1 {
			fmt.Fprintf(stderr, "dockward reload: MAINPID=%q is not a process ID\n", s)
			return agent.ExitUsage
		}
	} else if st != nil {
		pid = st.PID
	}
	if pid == 0 {
		fmt.Fprintf(stderr, "dockward reload: no agent is running (no MAINPID, and no %s)\n", path)
		return agent.ExitFailed
	}
	if st == nil || st.PID != pid {
		// An agent that does not report reloads: started by an older
		// dockward that a package upgrade replaced on disk. It still
		// reloads on SIGHUP; only the wait is lost.
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			fmt.Fprintf(stderr, "dockward reload: signal the agent (pid %d): %v\n", pid, err)
			return agent.ExitFailed
		}
		fmt.Fprintf(stderr, "dockward reload: the agent (pid %d) does not report its reloads in %s (an older dockward's?): sent it SIGHUP without waiting for the result; restart it to get reloads that wait\n", pid, path)
		return agent.ExitOK
	}

	asked := agent.MonotonicUsec()
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		fmt.Fprintf(stderr, "dockward reload: signal the agent (pid %d): %v\n", pid, err)
		return agent.ExitFailed
	}
	tick := time.NewTicker(reloadPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(stderr, "dockward reload: stopped waiting for the agent (pid %d) to reload (a timeout?); it goes on with the reload, its log says how it ends\n", pid)
			return agent.ExitFailed
		case <-tick.C:
		}
		st, err := readReloadState(g)
		if err != nil {
			fmt.Fprintf(stderr, "dockward reload: %v\n", err)
			return agent.ExitFailed
		}
		if st != nil && st.PID == pid && st.Reload != nil && st.Reload.StartedUsec >= asked {
			took := time.Duration(agent.MonotonicUsec()-asked) * time.Microsecond
			if !st.Reload.OK {
				fmt.Fprintf(stderr, "dockward reload: the agent (pid %d) refused the new configuration and keeps running the previous one: %s\n", pid, st.Reload.Error)
				return agent.ExitUsage
			}
			fmt.Fprintf(stdout, "dockward reload: the agent (pid %d) runs the new configuration; its converge finished (%s)\n", pid, took.Round(time.Millisecond))
			return agent.ExitOK
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			fmt.Fprintf(stderr, "dockward reload: the agent (pid %d) exited before it reloaded\n", pid)
			return agent.ExitFailed
		}
	}
}
