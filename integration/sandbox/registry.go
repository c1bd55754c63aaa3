package sandbox

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Live machines of this process, so that an interrupt (^C, SIGTERM from a
// CI timeout) tears them down before the process exits.
var (
	liveMu sync.Mutex
	live   = map[*Machine]struct{}{}
	sigOne sync.Once
)

func register(m *Machine) {
	liveMu.Lock()
	defer liveMu.Unlock()
	live[m] = struct{}{}
}

func unregister(m *Machine) {
	liveMu.Lock()
	defer liveMu.Unlock()
	delete(live, m)
}

// CloseAll tears down every machine this process booted and has not
// closed yet. The signal handler calls it; a TestMain may too.
func CloseAll() {
	liveMu.Lock()
	ms := make([]*Machine, 0, len(live))
	for m := range live {
		ms = append(ms, m)
	}
	liveMu.Unlock()
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "sandbox: %v\n", err)
			}
		}()
	}
	wg.Wait()
}

// installSignalHandler makes SIGINT, SIGTERM and SIGHUP tear down the live
// machines and then exit, as the default action would have, minus the leak.
func installSignalHandler() {
	sigOne.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		go func() {
			s := <-ch
			fmt.Fprintf(os.Stderr, "sandbox: %v: tearing down sandbox machines\n", s)
			CloseAll()
			os.Exit(128 + int(s.(syscall.Signal)))
		}()
	})
}

// removeStaleMachines deletes the directories of machines whose nspawn is
// gone (a test process killed with SIGKILL: Pdeathsig powered the machine
// off and its mounts went with its namespace, but the files stayed).
// Directories of machines still running, maybe another process's, stay.
func removeStaleMachines() {
	dirs, _ := filepath.Glob(filepath.Join(Dir(), NamePrefix+"*"))
	for _, d := range dirs {
		if machineRunning(d) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// machineRunning says whether the machine of directory d still has a
// systemd-nspawn or a PID 1 alive. A directory without a pid file is a
// machine being set up right now, unless it is old.
func machineRunning(d string) bool {
	b, err := os.ReadFile(filepath.Join(d, "nspawn.pid"))
	if err != nil {
		fi, serr := os.Stat(d)
		return serr == nil && time.Since(fi.ModTime()) < time.Minute
	}
	if pid := atoi(b); pid > 0 && strings.Contains(readFile(fmt.Sprintf("/proc/%d/cmdline", pid)), filepath.Base(d)) {
		return true
	}
	// nspawn killed, PID 1 orphaned: its mount table names our directory.
	b, _ = os.ReadFile(filepath.Join(d, "init.pid"))
	if pid := atoi(b); pid > 0 && strings.Contains(readFile(fmt.Sprintf("/proc/%d/mountinfo", pid)), d) {
		return true
	}
	return false
}

func atoi(b []byte) int {
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return n
}
