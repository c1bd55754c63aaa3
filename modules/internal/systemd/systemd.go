// Package systemd is the one adapter to systemd's D-Bus API that every
// module uses (service for unit state and jobs, docker_daemon to read
// docker.service's ExecStart): a lazily dialled connection that is re-made
// when it closes, calls and waits that cannot hang, and errors classified by
// their D-Bus names. It is a library under modules/internal, not a module.
package systemd

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Bus is the part of go-systemd's *dbus.Conn dockward uses. The real one is
// dialled by DialSystem; tests use fakes (see service/internal/fakesystemd).
type Bus interface {
	GetUnitPropertiesContext(ctx context.Context, unit string) (map[string]any, error)
	GetUnitTypePropertiesContext(ctx context.Context, unit, unitType string) (map[string]any, error)
	StartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	StopUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	RestartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	ReloadUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	ResetFailedUnitContext(ctx context.Context, name string) error
	EnableUnitFilesContext(ctx context.Context, files []string, runtime, force bool) (bool, []sddbus.EnableUnitFileChange, error)
	DisableUnitFilesContext(ctx context.Context, files []string, runtime bool) ([]sddbus.DisableUnitFileChange, error)
	ReloadContext(ctx context.Context) error
	Connected() bool
	Close()
}

var _ Bus = (*sddbus.Conn)(nil)

// DialSystem connects to systemd on the system bus; DBUS_SYSTEM_BUS_ADDRESS
// overrides where that is, which is how tests reach a private bus or a
// sandbox machine's systemd from outside it.
//
// ctx becomes the connection's lifetime (godbus closes it when ctx ends, even
// mid-authentication), so callers pass a context that outlives one call; the
// Conn type below bounds the dial itself separately.
func DialSystem(ctx context.Context) (Bus, error) {
	c, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Errors of systemd and the bus, classified by their D-Bus error names so
// that callers and tests can tell them apart with errors.Is.
var (
	ErrNoSuchUnit     = errors.New("no such unit")
	ErrUnitMasked     = errors.New("unit is masked")
	ErrAccessDenied   = errors.New("access denied (dockward must run as root)")
	ErrJobNotApplied  = errors.New("job type not applicable to the unit")
	ErrBusUnavailable = errors.New("systemd is not reachable over D-Bus")
	ErrTimeout        = errors.New("timed out")
)

var errorNames = map[string]error{
	"org.freedesktop.systemd1.NoSuchUnit":                         ErrNoSuchUnit,
	"org.freedesktop.systemd1.LoadFailed":                         ErrNoSuchUnit,
	"org.freedesktop.systemd1.UnitMasked":                         ErrUnitMasked,
	"org.freedesktop.DBus.Error.AccessDenied":                     ErrAccessDenied,
	"org.freedesktop.DBus.Error.InteractiveAuthorizationRequired": ErrAccessDenied,
	"org.freedesktop.systemd1.JobTypeNotApplicable":               ErrJobNotApplied,
	"org.freedesktop.DBus.Error.ServiceUnknown":                   ErrBusUnavailable,
	"org.freedesktop.DBus.Error.NameHasNoOwner":                   ErrBusUnavailable,
	"org.freedesktop.DBus.Error.NoReply":                          ErrBusUnavailable,
	"org.freedesktop.DBus.Error.Disconnected":                     ErrBusUnavailable,
	"org.freedesktop.DBus.Error.Timeout":                          ErrBusUnavailable,
}

// Classify wraps a D-Bus error with the sentinel its name maps to, keeping
// systemd's own message: "start docker.service: no such unit: Unit
// docker.service not found."
func Classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var de dbus.Error
	var dep *dbus.Error
	name := ""
	switch {
	case errors.As(err, &de):
		name = de.Name
	case errors.As(err, &dep):
		name = dep.Name
	}
	if s, ok := errorNames[name]; ok {
		return fmt.Errorf("%s: %w: %w", op, s, err)
	}
	if errors.Is(err, dbus.ErrClosed) {
		return fmt.Errorf("%s: %w: %w", op, ErrBusUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// UnitState is what dockward reads of a unit.
type UnitState struct {
	LoadState     string // loaded, not-found, masked, error, ...
	ActiveState   string // active, reloading, inactive, failed, activating, deactivating
	SubState      string // running, dead, failed, auto-restart, ...
	UnitFileState string // enabled, disabled, static, masked, ...
	InvocationID  string // hex; changes with every start
	CanReload     bool
	JobID         uint32 // a queued or running job, 0 when none
	Result        string // Service.Result ("success", "exit-code", ...), when read
	// FragmentPath is the unit file systemd loaded the unit from
	// (/usr/lib/systemd/system/docker.service); empty for a unit without
	// one. audit_rules and docker_files watch and check the real file
	// rather than guessing where a distribution put it.
	FragmentPath string
	// ActiveEnter and InactiveExit are when the unit last became active and
	// last left inactive (began starting); zero when it never did.
	ActiveEnter, InactiveExit time.Time
}

func (u UnitState) String() string {
	s := u.ActiveState + " (" + u.SubState
	if u.Result != "" && u.Result != "success" {
		s += ", result " + u.Result
	}
	return s + ")"
}

// Running reports whether a process of the unit may be running with the old
// files: a restart is owed only then.
func (u UnitState) Running() bool {
	switch u.ActiveState {
	case "active", "reloading", "activating":
		return true
	}
	return false
}

// ParseUnitState reads the properties of org.freedesktop.systemd1.Unit.
func ParseUnitState(p map[string]any) UnitState {
	var u UnitState
	u.LoadState, _ = p["LoadState"].(string)
	u.ActiveState, _ = p["ActiveState"].(string)
	u.SubState, _ = p["SubState"].(string)
	u.UnitFileState, _ = p["UnitFileState"].(string)
	u.FragmentPath, _ = p["FragmentPath"].(string)
	u.CanReload, _ = p["CanReload"].(bool)
	if id, ok := p["InvocationID"].([]byte); ok && len(id) > 0 {
		u.InvocationID = hex.EncodeToString(id)
	}
	u.ActiveEnter = UsecTime(p["ActiveEnterTimestamp"])
	u.InactiveExit = UsecTime(p["InactiveExitTimestamp"])
	// Job is (uo): the job's id and path; (0, "/") when there is none.
	if j, ok := p["Job"].([]any); ok && len(j) == 2 {
		u.JobID, _ = j[0].(uint32)
	}
	return u
}

// UsecTime reads a systemd realtime timestamp property (t, microseconds
// since the epoch; 0 means never).
func UsecTime(v any) time.Time {
	us, ok := v.(uint64)
	if !ok || us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(us))
}

// Conn is a module's connection to systemd: it dials lazily, re-makes the
// connection when it was closed (systemd or dbus-daemon restarted, the
// socket dropped), and bounds every call and every wait.
type Conn struct {
	dial func(ctx context.Context) (Bus, error)
	// CallTimeout bounds connecting and each method call, so that a hung
	// bus or manager cannot hang a run whose context has no deadline
	// (default 25 s, sd-bus's and libdbus's method call timeout).
	CallTimeout time.Duration

	mu  sync.Mutex
	bus Bus
	// end ends the current connection's lifetime context (see DialSystem).
	end context.CancelFunc
}

// conn returns a connected Bus, dialling a new one when there is none or the
// old one was closed. The dial is bounded by ctx; the connection itself lives
// until it is closed (see DialSystem).
func (s *Conn) conn(ctx context.Context) (Bus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bus != nil && s.bus.Connected() {
		return s.bus, nil
	}
	s.closeLocked()
	type result struct {
		bus Bus
		err error
	}
	ch := make(chan result, 1)
	// The connection's own lifetime: ending it also breaks off a dial
	// stuck in authentication, so a hung bus leaks nothing.
	life, end := context.WithCancel(context.Background())
	go func() {
		b, err := s.dial(life)
		ch <- result{b, err}
	}()
	ctx, cancel := context.WithTimeout(ctx, s.Timeout())
	defer cancel()
	select {
	case r := <-ch:
		if r.err != nil {
			end()
			return nil, fmt.Errorf("connect to systemd over D-Bus: %w: %w", ErrBusUnavailable, r.err)
		}
		s.bus, s.end = r.bus, end
		return r.bus, nil
	case <-ctx.Done():
		end()
		go func() {
			if r := <-ch; r.bus != nil {
				r.bus.Close()
			}
		}()
		return nil, fmt.Errorf("connect to systemd over D-Bus: %w", ctx.Err())
	}
}

// call runs f on a connected Bus. When f fails because the connection was
// closed under it, the connection is re-made and f runs once more; only for
// calls that may run twice (reads, reset-failed, enable), since the first
// may have reached systemd before the connection went.
func (s *Conn) call(ctx context.Context, f func(ctx context.Context, b Bus) error) error {
	b, err := s.conn(ctx)
	if err != nil {
		return err
	}
	err = s.bounded(ctx, b, f)
	if err == nil || b.Connected() || ctx.Err() != nil {
		return err
	}
	b, cerr := s.conn(ctx)
	if cerr != nil {
		return err
	}
	return s.bounded(ctx, b, f)
}

func (s *Conn) bounded(ctx context.Context, b Bus, f func(ctx context.Context, b Bus) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout())
	defer cancel()
	return f(ctx, b)
}

// Timeout is the bound of one call (CallTimeout, 25 s by default).
func (s *Conn) Timeout() time.Duration {
	if s.CallTimeout > 0 {
		return s.CallTimeout
	}
	return 25 * time.Second
}

// Close drops the connection; the next call dials again.
func (s *Conn) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
}

func (s *Conn) closeLocked() {
	if s.bus != nil {
		s.bus.Close()
		s.bus = nil
	}
	if s.end != nil {
		s.end()
		s.end = nil
	}
}

// State reads the unit's properties in one GetAll call.
func (s *Conn) State(ctx context.Context, unit string) (UnitState, error) {
	var p map[string]any
	err := s.call(ctx, func(ctx context.Context, b Bus) error {
		var err error
		p, err = b.GetUnitPropertiesContext(ctx, unit)
		return err
	})
	if err != nil {
		return UnitState{}, Classify("read "+unit, err)
	}
	return ParseUnitState(p), nil
}

// StateWithResult is State plus Service.Result, which explains a failure
// ("exit-code", "start-limit-hit", "timeout").
func (s *Conn) StateWithResult(ctx context.Context, unit string) (UnitState, error) {
	u, err := s.State(ctx, unit)
	if err != nil {
		return u, err
	}
	_ = s.call(ctx, func(ctx context.Context, b Bus) error {
		p, err := b.GetUnitTypePropertiesContext(ctx, unit, "Service")
		if err == nil {
			u.Result, _ = p["Result"].(string)
		}
		return err
	})
	return u, nil
}

// ResetFailed resets the unit's failed state and start-limit counter.
func (s *Conn) ResetFailed(ctx context.Context, unit string) error {
	return Classify("reset-failed "+unit, s.call(ctx, func(ctx context.Context, b Bus) error { return b.ResetFailedUnitContext(ctx, unit) }))
}

// Enable enables (on) or disables the unit's [Install] links and reloads the
// manager.
func (s *Conn) Enable(ctx context.Context, unit string, on bool) error {
	op := "enable " + unit
	err := s.call(ctx, func(ctx context.Context, b Bus) error {
		if on {
			_, _, err := b.EnableUnitFilesContext(ctx, []string{unit}, false, false)
			return err
		}
		op = "disable " + unit
		_, err := b.DisableUnitFilesContext(ctx, []string{unit}, false)
		return err
	})
	if err != nil {
		return Classify(op, err)
	}
	// As systemctl enable does: make the manager see the new symlinks.
	return Classify("daemon-reload after "+op, s.call(ctx, func(ctx context.Context, b Bus) error { return b.ReloadContext(ctx) }))
}

// JobKind names a unit job and the Manager method that queues it.
type JobKind string

const (
	JobStart   JobKind = "start"
	JobStop    JobKind = "stop"
	JobRestart JobKind = "restart"
	JobReload  JobKind = "reload"
)

// RunJob queues a job with mode "replace" and waits for its result until
// deadline. It returns systemd's result ("done", "failed", "timeout",
// "canceled", "dependency", "skipped"), or an error when the job could not
// be queued, the deadline passed or ctx ended.
//
// The result channel is buffered: go-systemd delivers JobRemoved from its
// single signal goroutine, and an unbuffered channel nobody reads any more
// would block every later job on the connection.
func (s *Conn) RunJob(ctx context.Context, kind JobKind, unit string, deadline time.Time) (string, error) {
	op := string(kind) + " " + unit
	ch := make(chan string, 1)
	// Not through call: a restart must not be queued twice because the
	// connection dropped after systemd got the first.
	bus, err := s.conn(ctx)
	if err != nil {
		return "", err
	}
	err = s.bounded(ctx, bus, func(ctx context.Context, bus Bus) error {
		var err error
		switch kind {
		case JobStart:
			_, err = bus.StartUnitContext(ctx, unit, "replace", ch)
		case JobStop:
			_, err = bus.StopUnitContext(ctx, unit, "replace", ch)
		case JobRestart:
			_, err = bus.RestartUnitContext(ctx, unit, "replace", ch)
		case JobReload:
			_, err = bus.ReloadUnitContext(ctx, unit, "replace", ch)
		}
		return err
	})
	if err != nil {
		return "", Classify(op, err)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	// The job's outcome arrives as a signal on this connection; if the
	// connection drops meanwhile the signal is lost, so notice that and let
	// the caller verify the unit's state instead of waiting for nothing.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-ch:
			return r, nil
		case <-ctx.Done():
			return "", fmt.Errorf("%s: waiting for the job: %w", op, ctx.Err())
		case <-timer.C:
			return "", fmt.Errorf("%s: job not finished: %w", op, ErrTimeout)
		case <-tick.C:
			if !bus.Connected() {
				return "", ErrJobLost
			}
		}
	}
}

// ErrJobLost says the connection closed while a job ran: its result is
// unknown, the unit's state has to tell.
var ErrJobLost = errors.New("connection to systemd lost while the job ran")

// New returns a connection that dials with dial when first used.
func New(dial func(ctx context.Context) (Bus, error)) *Conn { return &Conn{dial: dial} }

// Bus returns the current connection, nil when there is none (tests).
func (s *Conn) Bus() Bus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bus
}

// CrashLooping reports a unit that systemd keeps restarting because its
// process fails: activating, but only as the next attempt of a failed one.
func (u UnitState) CrashLooping() bool {
	return u.ActiveState == "activating" && u.SubState == "auto-restart"
}

// StartedAfter reports whether the unit's current run began after t: it
// left inactive and became active after t. ActiveEnterTimestamp alone is
// not enough: a unit whose process started (and read its files) before t
// but finished starting after t would pass. A unit restarted by systemd
// itself after a crash (auto-restart does not pass through inactive) fails
// the test and is restarted once more, which is safe.
func (u UnitState) StartedAfter(t time.Time) bool {
	return !t.IsZero() && u.ActiveEnter.After(t) && u.InactiveExit.After(t)
}

// ServiceProperties reads the unit's org.freedesktop.systemd1.Service
// properties (ExecStart, Environment, ...) in one GetAll call.
func (s *Conn) ServiceProperties(ctx context.Context, unit string) (map[string]any, error) {
	var p map[string]any
	err := s.call(ctx, func(ctx context.Context, b Bus) error {
		var err error
		p, err = b.GetUnitTypePropertiesContext(ctx, unit, "Service")
		return err
	})
	if err != nil {
		return nil, Classify("read "+unit+" properties", err)
	}
	return p, nil
}

// ExecStartArgv decodes a service's ExecStart property, a(sasbttttuii):
// each command line's argv, argv[0] first, variables not expanded.
func ExecStartArgv(props map[string]any) ([][]string, error) {
	v, ok := props["ExecStart"]
	if !ok {
		return nil, nil
	}
	lines, ok := v.([][]any)
	if !ok {
		return nil, fmt.Errorf("ExecStart has type %T, want a(sasbttttuii)", v)
	}
	var out [][]string
	for _, l := range lines {
		if len(l) < 2 {
			return nil, fmt.Errorf("ExecStart entry has %d fields", len(l))
		}
		argv, ok := l[1].([]string)
		if !ok {
			return nil, fmt.Errorf("ExecStart argv has type %T", l[1])
		}
		out = append(out, argv)
	}
	return out, nil
}
