package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dockward/dockward/agent/managedfile"
	"github.com/sirupsen/logrus"
)

// What the resident agent knows, for `dockward status` and the metrics:
// the agent publishes its state (AgentState) to the state directory after
// every converge, reload and change of its schedule, and holds a lock there
// for its lifetime, so that a reader can tell a running agent from the
// stale file of a dead one.

const (
	// agentLockFile is flocked (exclusive) by the resident agent for its
	// whole life, with its PID in it. The kernel releases the lock when
	// the process dies however it dies, so its being held is the one sign
	// of life that cannot go stale. It is not the run lock ("lock"), which
	// every apply, the agent's converges included, takes only while it runs.
	agentLockFile = "agent.lock"
	// agentStateFile is the published AgentState.
	agentStateFile = "agent-state.json"
	// agentLockWait is how long a starting agent waits for the agent lock:
	// `dockward status` holds it shared for the microseconds of its check,
	// and must not make an agent that starts at that moment refuse.
	agentLockWait = time.Second
	// stateLimit caps what status reads of the state and report files.
	stateLimit = 16 << 20
)

// StatusFormatVersion is the version of agent-state.json and of `dockward
// status --format json`. An API: fields are only ever added.
const StatusFormatVersion = "1"

// Exit codes of `dockward status` (README.md, `dockward help status`); 0
// and 1 are ExitOK and ExitUsage, 4 is ExitFailed's "failed".
const (
	ExitNotRunning = 3 // no agent runs (the LSB's "program is not running")
)

// AgentState is what the resident agent publishes in
// STATE_DIR/agent-state.json, and the "agent" object of `dockward status
// --format json`. An API: fields are only ever added.
type AgentState struct {
	FormatVersion string    `json:"format_version"`
	PID           int       `json:"pid"`
	Started       time.Time `json:"started"`
	// Updated is when the agent last wrote this state: a reader sees how
	// old the picture is, and when a dead agent was last seen.
	Updated time.Time `json:"updated"`
	// Stopped is set when the agent stopped cleanly (SIGTERM); an agent
	// that is gone without it was killed or crashed.
	Stopped time.Time `json:"stopped,omitzero"`

	Config ConfigState `json:"config"`
	// LastRun is the last converge, whatever it covered (an event's
	// converge covers the modules the event concerns); absent before the
	// first converge ends.
	LastRun *RunState `json:"last_run,omitempty"`
	// Converging are the converges running as the state was written: a
	// docker restart being verified can take minutes, and meanwhile the
	// last run is an older one.
	Converging []InFlight `json:"converging,omitempty"`
	// LastSuccess is the start of the last converge that did not fail.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// NextBackstop is the next full converge of the interval.
	NextBackstop time.Time `json:"next_backstop,omitzero"`
	// Retry is set while modules fail: when they are tried again.
	Retry *RetryState `json:"retry,omitempty"`
	// Modules are the running configuration's modules, in run order.
	Modules []ModuleState `json:"modules"`
}

// ConfigState is the running configuration.
type ConfigState struct {
	// Files are the files it was read from: the main file (or "<embedded
	// default>") and its conf.d drop-ins, in merge order.
	Files  []string  `json:"files"`
	Loaded time.Time `json:"loaded"`
	// ReloadError is why the last reload was refused (the running
	// configuration was kept), cleared by a successful one.
	ReloadError  string    `json:"reload_error,omitempty"`
	ReloadFailed time.Time `json:"reload_failed,omitzero"`
}

// RunState is one converge.
type RunState struct {
	Start    time.Time `json:"start"`
	Duration float64   `json:"duration_seconds"`
	// Trigger is what set it off: "start", "interval", "reload", "event:
	// ...", "retry: ...".
	Trigger string `json:"trigger"`
	// Result is ok, changed or failed; ExitCode is what `dockward apply`
	// would have exited with.
	Result   string `json:"result"`
	ExitCode int    `json:"exit_code"`
	// Error is an error of the run as a whole (the run lock, the report);
	// modules' errors are theirs.
	Error   string   `json:"error,omitempty"`
	Modules []string `json:"modules"`
}

// InFlight is a converge that runs now, in one of the loop's lanes.
type InFlight struct {
	Lane    string    `json:"lane"` // main, or side: modules no restart is tied to
	Start   time.Time `json:"start"`
	Trigger string    `json:"trigger"`
	Modules []string  `json:"modules"`
}

// RetryState is when failing modules are tried again.
type RetryState struct {
	At time.Time `json:"at"`
	// Backoff is the delay that led to At: it doubles with every failed
	// converge in a row (Failures), up to a cap.
	Backoff  float64  `json:"backoff_seconds"`
	Failures int      `json:"consecutive_failed_runs"`
	Modules  []string `json:"modules"`
}

// ModuleState is one module as the agent last saw it. Objects that need
// more than one field (flapping) go in as objects of their own, omitted
// when there is nothing to say.
type ModuleState struct {
	ID string `json:"id"`
	// Status is the module's status in the last converge that covered it
	// (ok, changed, failed, skipped, rolled_back); absent before one did.
	Status  Status    `json:"status,omitempty"`
	LastRun time.Time `json:"last_run,omitzero"`
	// LastSuccess is the start of the last converge in which it did not
	// fail (ok or changed).
	LastSuccess time.Time `json:"last_success,omitzero"`
	// ConsecutiveFailures counts its converges in a row that failed or
	// were rolled back; FailingSince is the first of them, Error the
	// last one's error.
	ConsecutiveFailures int       `json:"consecutive_failures"`
	FailingSince        time.Time `json:"failing_since,omitzero"`
	Error               string    `json:"error,omitempty"`
	// RetryAt is when the agent tries it again on its own, backing off
	// (Backoff); a rolled-back module has none: its desired state is what
	// failed, and the next backstop (or a new configuration) tries it.
	RetryAt time.Time `json:"retry_at,omitzero"`
	Backoff float64   `json:"backoff_seconds,omitempty"`
	// DriftCorrections counts the converges after the agent's first that
	// changed it: someone had changed it since.
	DriftCorrections int `json:"drift_corrections"`
	// Pending is what it found declared but waiting for something outside
	// dockward, in its last converge.
	Pending []Pending `json:"pending,omitempty"`
	// Flapping is set while something keeps undoing the module's
	// corrections (flapping.go): the targets, how often, since when, and
	// until when the agent leaves it alone. It stays after the back-off
	// ends until a window passes without the module flapping again.
	Flapping *Flapping `json:"flapping,omitempty"`
}

// scheduleState is what status and the metrics show of the loop's schedule.
type scheduleState struct {
	failing  []string // retried on their own at retryAt
	failures int      // converges in a row that failed
	retryAt  time.Time
	backoff  time.Duration
	backstop time.Time
	flapping []Flapping
	running  []InFlight
}

// AgentRunningError refuses a second resident agent on a state directory.
type AgentRunningError struct {
	StateDir string
	PID      int
	Since    time.Time
}

func (e *AgentRunningError) Error() string {
	who := "another dockward agent"
	if e.PID > 0 {
		who += " (pid " + strconv.Itoa(e.PID)
		if !e.Since.IsZero() {
			who += ", since " + e.Since.Local().Format(time.DateTime)
		}
		who += ")"
	}
	return who + " already runs with state directory " + e.StateDir +
		"; two agents would undo each other's corrections: stop it first (systemctl stop dockward)"
}

// Resident is the running agent's presence in its state directory: the
// agent lock, held until Close, and the state it publishes. The run loop
// keeps it up to date (Loop.Resident). A zero Resident keeps the state in
// memory only (the loop's tests, and the metrics without a state
// directory).
type Resident struct {
	root, stateDir string
	lock           *os.File
	log            *logrus.Entry

	mu      sync.Mutex
	st      AgentState
	modules map[string]*ModuleState
	eng     *Engine // the configuration st.Config describes
	written []byte  // the last state written, Updated zeroed
}

// StartResident takes the agent lock in stateDir (under --root root) for
// the agent's lifetime and publishes a first state (running, no converge
// yet). A second agent is refused (*AgentRunningError): two agents on one
// host would each correct the other's writes as drift, and with different
// configurations (an operator trying `dockward run -c new.hcl` while the
// service runs) would fight forever, restarting docker each time. The
// previous agent's per-module failure streaks and last successes carry
// over, so that "failing since" outlives a restart of the agent.
func StartResident(root, stateDir string, configFiles []string, log *logrus.Entry) (*Resident, error) {
	sd, err := managedfile.OpenStateDir(root, stateDir, true)
	if err != nil {
		return nil, err
	}
	defer sd.Close()
	f, err := sd.OpenFile(agentLockFile, os.O_RDWR|os.O_CREATE|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent lock %s: %w", sd.Path(agentLockFile), err)
	}
	deadline := time.Now().Add(agentLockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("agent lock %s: %w", sd.Path(agentLockFile), err)
		}
		if time.Now().After(deadline) {
			e := &AgentRunningError{StateDir: stateDir, PID: lockPID(f)}
			if prev, _ := readState(sd); prev != nil && prev.PID == e.PID {
				e.Since = prev.Started
			}
			f.Close()
			return nil, e
		}
		time.Sleep(10 * time.Millisecond)
	}
	now := time.Now().UTC()
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	r := &Resident{root: root, stateDir: stateDir, lock: f, log: log}
	r.st = AgentState{FormatVersion: StatusFormatVersion, PID: os.Getpid(), Started: now,
		Config: ConfigState{Files: configFiles, Loaded: now}, Modules: []ModuleState{}}
	r.modules = map[string]*ModuleState{}
	if prev, err := readState(sd); err == nil && prev != nil {
		for _, m := range prev.Modules {
			r.modules[m.ID] = &ModuleState{ID: m.ID, Status: m.Status, LastRun: m.LastRun, LastSuccess: m.LastSuccess,
				ConsecutiveFailures: m.ConsecutiveFailures, FailingSince: m.FailingSince, Error: m.Error, Pending: m.Pending}
		}
	}
	if err := r.write(r.st); err != nil {
		log.WithError(err).Warn("could not publish the agent state")
	}
	return r, nil
}

// lockPID is the PID in the agent lock file.
func lockPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	return pid
}

// Close marks the state stopped and releases the agent lock.
func (r *Resident) Close() error {
	if r == nil || r.lock == nil {
		return nil
	}
	r.mu.Lock()
	st := r.st
	r.mu.Unlock()
	st.Stopped = time.Now().UTC()
	st.Updated = st.Stopped
	if err := r.write(st); err != nil {
		r.log.WithError(err).Warn("could not publish the agent state")
	}
	_ = r.lock.Truncate(0) // released, not killed
	return r.lock.Close()
}

// ran records a converge of the modules ids: trigger is what set it off,
// rep its report (never nil), err an error of the run as a whole.
func (r *Resident) ran(trigger string, ids []string, rep *Report, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.modules == nil {
		r.modules = map[string]*ModuleState{}
	}
	failed := err != nil || rep.Failed()
	run := &RunState{Start: rep.Start.UTC(), Duration: rep.Duration, Trigger: trigger, Result: "ok", ExitCode: rep.ExitCode(), Modules: ids}
	switch {
	case failed:
		run.Result = "failed"
	case rep.Changed():
		run.Result = "changed"
	}
	if err != nil {
		run.Error = err.Error()
		run.ExitCode |= ExitFailed
	}
	if run.Modules == nil {
		run.Modules = []string{}
	}
	r.st.LastRun = run
	if !failed {
		r.st.LastSuccess = run.Start
	}
	results := rep.Modules
	if len(results) == 0 && err != nil {
		// The run did not get to the modules (the run lock): each failed.
		for _, id := range ids {
			results = append(results, ModuleResult{ID: id, Status: StatusFailed, Error: err.Error()})
		}
	}
	for _, mr := range results {
		m := r.modules[mr.ID]
		if m == nil {
			m = &ModuleState{ID: mr.ID}
			r.modules[mr.ID] = m
		}
		m.Status, m.LastRun, m.Pending = mr.Status, run.Start, mr.Pending
		switch mr.Status {
		case StatusFailed, StatusRolledBack:
			if m.ConsecutiveFailures == 0 {
				m.FailingSince = run.Start
			}
			m.ConsecutiveFailures++
			m.Error = mr.Error
		case StatusOK, StatusChanged:
			m.LastSuccess = run.Start
			m.ConsecutiveFailures, m.FailingSince, m.Error = 0, time.Time{}, ""
			if mr.Status == StatusChanged && trigger != "start" {
				m.DriftCorrections++
			}
		}
	}
}

// reloadFailed records a refused reload: the running configuration stays.
func (r *Resident) reloadFailed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.Config.ReloadError, r.st.Config.ReloadFailed = err.Error(), time.Now().UTC()
}

// update brings the state up to date with the running configuration and the
// schedule, and says whether it differs from what was last written.
func (r *Resident) update(cur *current, sch scheduleState, now time.Time) (AgentState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.modules == nil {
		r.modules = map[string]*ModuleState{}
	}
	if r.st.FormatVersion == "" {
		r.st = AgentState{FormatVersion: StatusFormatVersion, PID: os.Getpid(), Started: now.UTC()}
	}
	if cur.eng != r.eng {
		// Every load makes a new Engine: this is a new configuration (the
		// first, or a reload that was taken).
		if r.eng != nil || r.st.Config.Loaded.IsZero() {
			r.st.Config.Loaded = now.UTC()
		}
		r.eng = cur.eng
		r.st.Config.Files = cur.set.ConfigFiles
		r.st.Config.ReloadError, r.st.Config.ReloadFailed = "", time.Time{}
	}
	if r.st.Config.Files == nil {
		r.st.Config.Files = []string{}
	}
	r.st.NextBackstop = sch.backstop.UTC()
	r.st.Converging = sch.running
	r.st.Retry = nil
	if len(sch.failing) > 0 {
		r.st.Retry = &RetryState{At: sch.retryAt.UTC(), Backoff: sch.backoff.Seconds(), Failures: sch.failures, Modules: sch.failing}
	}
	r.st.Modules = make([]ModuleState, 0, len(cur.eng.Modules))
	for _, mod := range cur.eng.Modules {
		m := r.modules[mod.ID()]
		if m == nil {
			m = &ModuleState{ID: mod.ID()}
			r.modules[mod.ID()] = m
		}
		ms := *m
		if slices.Contains(sch.failing, ms.ID) {
			ms.RetryAt, ms.Backoff = sch.retryAt.UTC(), sch.backoff.Seconds()
		}
		for _, fl := range sch.flapping {
			if fl.Module == ms.ID {
				fl.Since, fl.Until = fl.Since.UTC(), fl.Until.UTC()
				ms.Flapping = &fl
			}
		}
		r.st.Modules = append(r.st.Modules, ms)
	}
	st := r.st
	st.Updated = time.Time{}
	b, _ := json.Marshal(st)
	if bytes.Equal(b, r.written) {
		return r.st, false
	}
	r.written = b
	r.st.Updated = now.UTC()
	return r.st, true
}

// write publishes st in the state directory, atomically and 0600 (the
// directory is root's alone too); a Resident without one writes nothing.
func (r *Resident) write(st AgentState) error {
	if r.stateDir == "" {
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	sd, err := managedfile.OpenStateDir(r.root, r.stateDir, true)
	if err != nil {
		return fmt.Errorf("publish the agent state: %w", err)
	}
	defer sd.Close()
	if err := sd.WriteAtomic(agentStateFile, append(b, '\n'), managedfile.RootOwned(0o600)); err != nil {
		return fmt.Errorf("publish the agent state: %w", err)
	}
	return nil
}

// resident is l.Resident, made in memory when the loop was given none.
func (l *Loop) resident() *Resident {
	if l.Resident == nil {
		l.Resident = &Resident{}
	}
	return l.Resident
}

// publish brings the agent state up to date and, when it changed, writes
// it and the metrics textfile: after a converge, a reload and a change of
// the schedule, once, whatever changed.
func (l *Loop) publish(cur *current, sch *schedule, ln *lanes) {
	snap := sch.snapshot()
	snap.running = ln.inFlight()
	st, changed := l.resident().update(cur, snap, time.Now())
	if !changed {
		return
	}
	l.Metrics.SetState(&st)
	if cur.set.MetricsTextfile != "" {
		if err := l.Metrics.WriteTextfile(cur.set.MetricsTextfile); err != nil {
			l.Log.WithError(err).Warn("could not write the metrics textfile")
		}
	}
	if err := l.Resident.write(st); err != nil {
		l.Log.WithError(err).Warn("could not publish the agent state")
	}
}

func readState(sd *managedfile.Root) (*AgentState, error) {
	f, err := sd.Read(agentStateFile, stateLimit)
	if err != nil || !f.Exists {
		return nil, err
	}
	var st AgentState
	if err := json.Unmarshal(f.Data, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return &st, nil
}

// StatusView is `dockward status`: whether an agent runs, what it last
// published and the last run report. Its JSON is an API: fields are only
// ever added.
type StatusView struct {
	FormatVersion string `json:"format_version"`
	// Running says an agent holds the agent lock now; PID is its PID.
	Running bool `json:"running"`
	PID     int  `json:"pid,omitempty"`
	// Health is "ok" (running, nothing failing), "failing" (running, a
	// module failing) or "not_running"; the exit code says the same.
	Health string `json:"health"`
	// Agent is the state the agent (this one, or the last one) published;
	// null when none ever did.
	Agent *AgentState `json:"agent"`
	// LastReport is STATE_DIR/last-report.json: the last apply's, the
	// agent's or a `dockward apply`'s; null when there is none.
	LastReport *Report `json:"last_report"`
	// StateDir is the state directory read.
	StateDir string `json:"state_dir"`
}

// ExitCode is `dockward status`'s exit code: 0 running and nothing
// failing, 4 running with a module failing, 3 not running.
func (v *StatusView) ExitCode() int {
	switch v.Health {
	case "ok":
		return ExitOK
	case "failing":
		return ExitFailed
	}
	return ExitNotRunning
}

// Failing lists the modules that failed in their last converge.
func (s *AgentState) Failing() []string {
	var ids []string
	for _, m := range s.Modules {
		if m.ConsecutiveFailures > 0 {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// ReadStatus reads the agent's state, whether it runs, and the last report
// from stateDir (under --root root). It creates nothing and takes no run
// lock: it only tries the agent lock, shared, for an instant.
func ReadStatus(root, stateDir string) (*StatusView, error) {
	v := &StatusView{FormatVersion: StatusFormatVersion, StateDir: stateDir, Health: "not_running"}
	sd, err := managedfile.OpenStateDir(root, stateDir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return v, nil
	}
	if err != nil {
		return nil, err
	}
	defer sd.Close()
	if v.Running, v.PID, err = agentAlive(sd); err != nil {
		return nil, err
	}
	if v.Agent, err = readState(sd); err != nil {
		return nil, err
	}
	if v.Running && v.Agent != nil && v.PID != 0 && v.Agent.PID != v.PID {
		// The agent that holds the lock has not published yet: what is
		// there is an earlier agent's.
		v.Agent = nil
	}
	f, err := sd.Read(reportFile, stateLimit)
	if err != nil {
		return nil, err
	}
	if f.Exists {
		v.LastReport = &Report{}
		if err := json.Unmarshal(f.Data, v.LastReport); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	switch {
	case !v.Running:
	case v.Agent != nil && len(v.Agent.Failing()) > 0:
		v.Health = "failing"
	default:
		v.Health = "ok"
	}
	return v, nil
}

// agentAlive tries the agent lock: held means an agent runs, and the lock
// file names it.
func agentAlive(sd *managedfile.Root) (bool, int, error) {
	f, err := sd.OpenFile(agentLockFile, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("agent lock %s: %w", sd.Path(agentLockFile), err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	switch {
	case errors.Is(err, syscall.EWOULDBLOCK):
		return true, lockPID(f), nil
	case err != nil:
		return false, 0, fmt.Errorf("agent lock %s: %w", sd.Path(agentLockFile), err)
	}
	return false, 0, nil // closing f releases it
}
