// Package fakesystemd is a stand-in for systemd's manager, for tests: a
// small state machine of units and jobs with the behaviour the service
// module depends on (job results done, failed, timeout; jobs that never end;
// NoSuchUnit; the start limit; enablement), reachable two ways:
//
//   - over a real, private dbus-daemon as org.freedesktop.systemd1 (Serve),
//     so that go-systemd's client runs exactly as against systemd;
//   - in memory (Direct), for fast tests and benchmarks of the module alone.
package fakesystemd

import (
	"crypto/rand"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// Job results, as systemd reports them in JobRemoved, plus the fake's own
// script words.
const (
	Done    = "done"
	Failed  = "failed"
	Timeout = "timeout"
	// Hang is a job that never ends (no JobRemoved); the unit stays
	// activating.
	Hang = "hang"
	// CrashLoop is a start whose process exits: the job fails and the unit
	// sits in activating (auto-restart), as docker.service does when dockerd
	// refuses its configuration.
	CrashLoop = "crashloop"
)

// Unit is a unit's state as the fake reports it.
type Unit struct {
	Name          string
	LoadState     string // "loaded" unless set
	ActiveState   string
	SubState      string
	UnitFileState string
	Result        string // Service.Result
	CanReload     bool
	InvocationID  []byte
	// JobID is the job pending on the unit, 0 when none.
	JobID uint32
	// ActiveEnter and InactiveExit are ActiveEnterTimestamp and
	// InactiveExitTimestamp: when the unit last became active and last left
	// inactive. Start jobs set them; AddUnit sets both to now for an active
	// unit that has neither.
	ActiveEnter, InactiveExit time.Time
}

// Systemd is the fake manager. Its zero value is not usable: call New.
type Systemd struct {
	mu     sync.Mutex
	units  map[string]*Unit
	script map[string][]string
	starts map[string]int
	calls  []string
	nextID uint32

	startLimitBurst int
	jobDelay        time.Duration

	// emit is set by the D-Bus transport to send JobRemoved and
	// PropertiesChanged.
	emit func(path dbus.ObjectPath, name string, values ...any)
	// signals waiting to be sent, in order, by one goroutine at a time.
	signals []func()
	sending bool
}

// New returns a manager with the given units. Units default to loaded,
// and InvocationID is set for active ones.
func New(units ...Unit) *Systemd {
	s := &Systemd{units: map[string]*Unit{}, script: map[string][]string{}, starts: map[string]int{}}
	for _, u := range units {
		s.AddUnit(u)
	}
	return s
}

// SetStartLimitBurst sets how many start attempts a unit may make before
// ResetFailedUnit; further starts fail with Result "start-limit-hit", as
// with systemd's StartLimitBurst. 0 (the default) means no limit.
func (s *Systemd) SetStartLimitBurst(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startLimitBurst = n
}

// SetJobDelay sets how long jobs queued from now on run before they end.
func (s *Systemd) SetJobDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobDelay = d
}

// AddUnit adds or replaces a unit.
func (s *Systemd) AddUnit(u Unit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.LoadState == "" {
		u.LoadState = "loaded"
	}
	if u.ActiveState == "" {
		u.ActiveState = "inactive"
	}
	if u.SubState == "" {
		u.SubState = map[string]string{"active": "running", "failed": "failed", "inactive": "dead"}[u.ActiveState]
	}
	if u.Result == "" {
		u.Result = "success"
	}
	if u.ActiveState == "active" && u.InvocationID == nil {
		u.InvocationID = newInvocation()
	}
	if u.ActiveState == "active" && u.ActiveEnter.IsZero() && u.InactiveExit.IsZero() {
		now := time.Now()
		u.InactiveExit, u.ActiveEnter = now, now
	}
	s.units[u.Name] = &u
}

// RemoveUnit makes a unit unknown, as if its package were removed.
func (s *Systemd) RemoveUnit(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.units, name)
}

// Unit returns a copy of a unit's state.
func (s *Systemd) Unit(name string) Unit {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.units[name]; ok {
		return *u
	}
	return Unit{Name: name, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}
}

// Script sets the results of the unit's coming start and restart jobs, in
// order; once used up, jobs end "done".
func (s *Systemd) Script(unit string, results ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script[unit] = append([]string(nil), results...)
}

// Calls returns the Manager methods called so far, as "Method unit".
func (s *Systemd) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// Count returns how many times method was called (for unit, when not "").
func (s *Systemd) Count(method, unit string) int {
	n := 0
	for _, c := range s.Calls() {
		m, u, _ := strings.Cut(c, " ")
		if m == method && (unit == "" || u == unit) {
			n++
		}
	}
	return n
}

// ResetCalls forgets the calls recorded so far.
func (s *Systemd) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

func (s *Systemd) record(method, unit string) {
	s.calls = append(s.calls, strings.TrimSpace(method+" "+unit))
}

// D-Bus errors as systemd names them.
func errNoSuchUnit(name string) *dbus.Error {
	return dbus.NewError("org.freedesktop.systemd1.NoSuchUnit", []any{fmt.Sprintf("Unit %s not found.", name)})
}

func errMasked(name string) *dbus.Error {
	return dbus.NewError("org.freedesktop.systemd1.UnitMasked", []any{fmt.Sprintf("Unit %s is masked.", name)})
}

func errNotApplicable(name string) *dbus.Error {
	return dbus.NewError("org.freedesktop.systemd1.JobTypeNotApplicable", []any{fmt.Sprintf("Job type reload is not applicable for unit %s.", name)})
}

// UnitPath is the object path of a unit, escaped as systemd does.
func UnitPath(name string) dbus.ObjectPath {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02x", c)
	}
	return dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + b.String())
}

// unitName is UnitPath's inverse.
func unitName(p dbus.ObjectPath) string {
	s := string(p)
	s = s[strings.LastIndexByte(s, '/')+1:]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '_' && i+2 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+3], "%02x", &c); err == nil {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func jobPath(id uint32) dbus.ObjectPath {
	return dbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
}

func newInvocation() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return b
}

// Job queues a start, stop, restart or reload job. done, when not nil, gets
// the result as JobRemoved would carry it; it is registered before the job
// can end, as go-systemd does under its job-listener lock.
func (s *Systemd) Job(kind, name string, done func(result string)) (uint32, *dbus.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	method := map[string]string{"start": "StartUnit", "stop": "StopUnit", "restart": "RestartUnit", "reload": "ReloadUnit"}[kind]
	s.record(method, name)
	u, ok := s.units[name]
	if !ok || u.LoadState == "not-found" {
		return 0, errNoSuchUnit(name)
	}
	if u.LoadState == "masked" && kind != "stop" {
		return 0, errMasked(name)
	}
	if kind == "reload" && (!u.CanReload || u.ActiveState != "active") {
		return 0, errNotApplicable(name)
	}
	// A start or restart replacing one still running kills the daemon in
	// the middle of its start: the new job fails and systemd's own restart
	// logic takes over (measured with systemd 257 and dockerd in the
	// sandbox machine, scenario 53: "job failed", activating (auto-restart),
	// result signal). The replaced job is left to finish.
	replaced := u.JobID != 0 && (kind == "start" || kind == "restart")
	s.nextID++
	id := s.nextID
	if replaced {
		go func() {
			if emit := s.emitter(); emit != nil {
				emit("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager.JobRemoved", id, jobPath(id), name, Failed)
			}
			if done != nil {
				done(Failed)
			}
		}()
		return id, nil
	}
	u.JobID = id

	result := Done
	final := func() {} // the unit's state once the job ends
	switch kind {
	case "stop":
		final = func() { u.ActiveState, u.SubState = "inactive", "dead" }
	case "reload":
		if r := s.pop(name); r != "" {
			result = r
		}
	case "start", "restart":
		if kind == "start" && u.ActiveState == "active" {
			break // already running: nothing to do, same invocation
		}
		if s.startLimitBurst > 0 && s.starts[name] >= s.startLimitBurst {
			result = Failed
			final = func() { u.ActiveState, u.SubState, u.Result = "failed", "failed", "start-limit-hit" }
			break
		}
		s.starts[name]++
		if r := s.pop(name); r != "" {
			result = r
		}
		u.ActiveState, u.SubState = "activating", "start"
		u.InactiveExit = time.Now()
		switch result {
		case Done:
			final = func() {
				u.ActiveState, u.SubState, u.Result = "active", "running", "success"
				u.InvocationID = newInvocation()
				u.ActiveEnter = time.Now()
			}
		case Failed:
			final = func() { u.ActiveState, u.SubState, u.Result = "failed", "failed", "exit-code" }
		case Timeout:
			final = func() { u.ActiveState, u.SubState, u.Result = "failed", "failed", "timeout" }
		case CrashLoop:
			result = Failed
			final = func() {
				u.ActiveState, u.SubState, u.Result = "activating", "auto-restart", "exit-code"
				u.InvocationID = newInvocation()
			}
		}
	}
	s.notifyLocked(u)
	if result == Hang {
		return id, nil
	}
	delay := s.jobDelay
	go func() {
		if delay > 0 {
			time.Sleep(delay)
		}
		s.mu.Lock()
		final()
		u.JobID = 0
		s.notifyLocked(u)
		emit := s.emit
		s.mu.Unlock()
		if done != nil {
			done(result)
		}
		if emit != nil {
			emit("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager.JobRemoved", id, jobPath(id), name, result)
		}
	}()
	return id, nil
}

func (s *Systemd) emitter() func(path dbus.ObjectPath, name string, values ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.emit
}

func (s *Systemd) pop(name string) string {
	q := s.script[name]
	if len(q) == 0 {
		return ""
	}
	s.script[name] = q[1:]
	return q[0]
}

func (s *Systemd) notifyLocked(u *Unit) {
	if s.emit == nil {
		return
	}
	changed := map[string]dbus.Variant{
		"ActiveState": dbus.MakeVariant(u.ActiveState),
		"SubState":    dbus.MakeVariant(u.SubState),
	}
	emit, path := s.emit, UnitPath(u.Name)
	s.signals = append(s.signals, func() {
		emit(path, "org.freedesktop.DBus.Properties.PropertiesChanged", "org.freedesktop.systemd1.Unit", changed, []string{})
	})
	s.kickLocked()
}

// kickLocked starts the goroutine that sends queued signals, one at a time
// and in order, as systemd sends them; never under s.mu, since a client's
// call may be waiting for it.
func (s *Systemd) kickLocked() {
	if s.sending {
		return
	}
	s.sending = true
	go func() {
		for {
			s.mu.Lock()
			if len(s.signals) == 0 {
				s.sending = false
				s.mu.Unlock()
				return
			}
			f := s.signals[0]
			s.signals = s.signals[1:]
			s.mu.Unlock()
			f()
		}
	}()
}

// ResetFailedUnit clears the failed state and the start-limit counter.
func (s *Systemd) ResetFailedUnit(name string) *dbus.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record("ResetFailedUnit", name)
	u, ok := s.units[name]
	if !ok {
		return errNoSuchUnit(name)
	}
	if u.ActiveState == "failed" {
		u.ActiveState, u.SubState = "inactive", "dead"
	}
	u.Result = "success"
	s.starts[name] = 0
	return nil
}

// FileChange is one symlink EnableUnitFiles or DisableUnitFiles made.
type FileChange struct{ Type, Filename, Destination string }

// EnableUnitFiles enables (on) or disables the units' files.
func (s *Systemd) EnableUnitFiles(files []string, on bool) ([]FileChange, *dbus.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	method := "EnableUnitFiles"
	if !on {
		method = "DisableUnitFiles"
	}
	var out []FileChange
	for _, f := range files {
		s.record(method, f)
		u, ok := s.units[f]
		if !ok {
			return nil, dbus.NewError("org.freedesktop.DBus.Error.FileNotFound", []any{"Unit file " + f + " does not exist."})
		}
		if strings.HasPrefix(u.UnitFileState, "masked") {
			return nil, errMasked(f)
		}
		link := "/etc/systemd/system/multi-user.target.wants/" + f
		switch {
		case on && u.UnitFileState != "enabled":
			u.UnitFileState = "enabled"
			out = append(out, FileChange{"symlink", link, "/usr/lib/systemd/system/" + f})
		case !on && u.UnitFileState == "enabled":
			u.UnitFileState = "disabled"
			out = append(out, FileChange{"unlink", link, ""})
		}
	}
	if len(out) > 0 {
		s.emitManagerLocked("UnitFilesChanged")
	}
	return out, nil
}

// Reload is daemon-reload.
func (s *Systemd) Reload() *dbus.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record("Reload", "")
	s.emitManagerLocked("Reloading", true)
	s.emitManagerLocked("Reloading", false)
	return nil
}

// Subscribe is Manager.Subscribe: systemd sends unit and manager signals
// on the system bus only while someone is subscribed. The fake always
// sends them; it records the call so that tests can wait for a watcher.
func (s *Systemd) Subscribe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record("Subscribe", "")
}

// emitManagerLocked sends a Manager signal (UnitFilesChanged, Reloading),
// in order with the unit signals queued before it.
func (s *Systemd) emitManagerLocked(member string, values ...any) {
	if s.emit == nil {
		return
	}
	emit := s.emit
	s.signals = append(s.signals, func() { emit("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager."+member, values...) })
	s.kickLocked()
}

// SetUnitState changes a unit's state as something other than a job of
// this fake would (a process that died, an operator's systemctl elsewhere),
// and sends PropertiesChanged.
func (s *Systemd) SetUnitState(name, active, sub string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.units[name]
	if !ok {
		return
	}
	u.ActiveState, u.SubState = active, sub
	s.notifyLocked(u)
}

// Properties returns a unit's properties on interface iface
// (org.freedesktop.systemd1.Unit or .Service), as systemd's GetAll does:
// unknown units answer with LoadState not-found.
func (s *Systemd) Properties(name, iface string) map[string]any {
	u := s.Unit(name)
	jobPathOf := dbus.ObjectPath("/")
	if u.JobID != 0 {
		jobPathOf = jobPath(u.JobID)
	}
	switch iface {
	case "org.freedesktop.systemd1.Unit":
		inv := u.InvocationID
		if inv == nil {
			inv = []byte{}
		}
		return map[string]any{
			"Id":            name,
			"LoadState":     u.LoadState,
			"ActiveState":   u.ActiveState,
			"SubState":      u.SubState,
			"UnitFileState": u.UnitFileState,
			"CanReload":     u.CanReload,
			"InvocationID":  inv,
			"Job":           JobRef{u.JobID, jobPathOf},
			// Realtime microseconds, 0 for never, as systemd has them.
			"ActiveEnterTimestamp":  usec(u.ActiveEnter),
			"InactiveExitTimestamp": usec(u.InactiveExit),
		}
	case "org.freedesktop.systemd1.Service":
		return map[string]any{"Result": u.Result, "NRestarts": uint32(0), "MainPID": uint32(0)}
	}
	return map[string]any{}
}

// JobRef is the (uo) of the Unit.Job property.
type JobRef struct {
	ID   uint32
	Path dbus.ObjectPath
}

// Units lists the known unit names, sorted.
func (s *Systemd) Units() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.units {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func usec(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixMicro())
}
