package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/dockward/dockward/agent"
	"github.com/godbus/dbus/v5"
)

// The unit's event source for the resident agent: systemd's signals about
// the unit, over a D-Bus connection of its own, so that `dockward run`
// corrects a stopped, failed or disabled unit without polling.

var _ agent.EventSource = (*Module)(nil)

const (
	managerPath  = dbus.ObjectPath("/org/freedesktop/systemd1")
	managerIface = "org.freedesktop.systemd1.Manager"
	unitIface    = "org.freedesktop.systemd1.Unit"
	propsIface   = "org.freedesktop.DBus.Properties"
)

// Watch implements agent.EventSource. It asks systemd for signals
// (Manager.Subscribe: without a subscriber systemd sends none on the system
// bus), listens to PropertiesChanged on the unit's own object path and to
// the manager's UnitFilesChanged and Reloading (UnitFileState is not sent
// in PropertiesChanged), and after each burst re-reads the unit and calls
// emit when it is away from the block's state or enablement.
//
// A unit with a job queued or running is moving on systemd's orders
// (dockward's own restart, an operator's `systemctl restart`): it is judged
// only once the job is gone, so a restart causes no event at all. Watch
// returns an error when the connection closes (dbus-daemon restarted); the
// run loop starts it again.
func (m *Module) Watch(ctx context.Context, env *agent.Env, emit func(reason string)) error {
	if env.Offline() {
		return agent.ErrOffline
	}
	conn, err := m.dialSignals(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	unitPath := dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + sddbus.PathBusEscape(m.b.Unit))
	matches := [][]dbus.MatchOption{
		{dbus.WithMatchObjectPath(unitPath), dbus.WithMatchInterface(propsIface), dbus.WithMatchMember("PropertiesChanged"), dbus.WithMatchArg(0, unitIface)},
		{dbus.WithMatchObjectPath(managerPath), dbus.WithMatchInterface(managerIface), dbus.WithMatchMember("UnitFilesChanged")},
		{dbus.WithMatchObjectPath(managerPath), dbus.WithMatchInterface(managerIface), dbus.WithMatchMember("Reloading")},
	}
	signals := make(chan *dbus.Signal, 64)
	conn.Signal(signals)
	defer conn.RemoveSignal(signals)
	for _, mo := range matches {
		if err := m.busCall(ctx, func(ctx context.Context) error { return conn.AddMatchSignalContext(ctx, mo...) }); err != nil {
			return fmt.Errorf("watch %s: add D-Bus match: %w", m.b.Unit, err)
		}
	}
	manager := conn.Object("org.freedesktop.systemd1", managerPath)
	if err := m.busCall(ctx, func(ctx context.Context) error {
		return manager.CallWithContext(ctx, managerIface+".Subscribe", 0).Err
	}); err != nil {
		return classify("watch "+m.b.Unit+": subscribe to systemd's signals", err)
	}
	unit := conn.Object("org.freedesktop.systemd1", unitPath)

	var last string // the drift last reported; "" while the unit is as wanted
	check := func(trigger string) error {
		var props map[string]dbus.Variant
		err := m.busCall(ctx, func(ctx context.Context) error {
			return unit.CallWithContext(ctx, propsIface+".GetAll", 0, unitIface).Store(&props)
		})
		if err != nil {
			return classify("watch "+m.b.Unit+": read its state", err)
		}
		p := make(map[string]any, len(props))
		for k, v := range props {
			p[k] = v.Value()
		}
		u := parseUnitState(p)
		if u.JobID != 0 {
			return nil // judged when the job is done
		}
		why := m.drift(u)
		if why != "" && why != last {
			emit(trigger + ": " + why)
		}
		last = why
		return nil
	}
	// Whatever happened before the subscription took effect.
	if err := check("systemd"); err != nil {
		return err
	}
	for {
		var sig *dbus.Signal
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case sig, ok = <-signals:
		}
		if !ok {
			return fmt.Errorf("watch %s: %w: the D-Bus connection closed", m.b.Unit, ErrBusUnavailable)
		}
		trigger := signalName(sig)
		// A restart sends a burst of signals; one read settles all of them.
	drain:
		for {
			select {
			case s, ok := <-signals:
				if !ok {
					return fmt.Errorf("watch %s: %w: the D-Bus connection closed", m.b.Unit, ErrBusUnavailable)
				}
				if n := signalName(s); n != trigger {
					trigger = "systemd"
				}
			default:
				break drain
			}
		}
		if err := check(trigger); err != nil {
			return err
		}
	}
}

func signalName(s *dbus.Signal) string {
	switch s.Name {
	case propsIface + ".PropertiesChanged":
		return "systemd: unit state changed"
	case managerIface + ".UnitFilesChanged":
		return "systemd: unit files changed"
	case managerIface + ".Reloading":
		return "systemd: daemon-reload"
	}
	return "systemd: " + s.Name
}

// drift says how u is away from the block's state and enablement, as Plan
// would find it; "" when it is not.
func (m *Module) drift(u unitState) string {
	wantOn := m.b.State == StateRunning || (m.b.Enabled != nil && *m.b.Enabled)
	switch {
	case u.LoadState == "masked" && !wantOn:
		return ""
	case u.LoadState != "loaded":
		return fmt.Sprintf("%s is %s", m.b.Unit, u.LoadState)
	case m.b.State == StateRunning && (!u.Running() || u.CrashLooping()):
		return fmt.Sprintf("%s is %s, want running", m.b.Unit, u)
	case m.b.State == StateStopped && u.Running():
		return fmt.Sprintf("%s is %s, want stopped", m.b.Unit, u)
	}
	if _, enable, err := m.planEnabled(u); err != nil || enable != nil {
		return fmt.Sprintf("%s is %s, want enabled = %v", m.b.Unit, u.UnitFileState, *m.b.Enabled)
	}
	return ""
}

// dialSignals opens the watch's own connection to the system bus
// (DBUS_SYSTEM_BUS_ADDRESS overrides where it is), bounded like the
// module's calls. It lives until ctx ends or it is closed.
func (m *Module) dialSignals(ctx context.Context) (*dbus.Conn, error) {
	type result struct {
		conn *dbus.Conn
		err  error
	}
	life, end := context.WithCancel(ctx)
	ch := make(chan result, 1)
	go func() {
		c, err := dbus.ConnectSystemBus(dbus.WithContext(life))
		ch <- result{c, err}
	}()
	timer := time.NewTimer(m.sd.Timeout())
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			end()
			return nil, fmt.Errorf("watch %s: connect to the system bus: %w: %w", m.b.Unit, ErrBusUnavailable, r.err)
		}
		// The connection ends with life; keep end reachable from it.
		go func() { <-r.conn.Context().Done(); end() }()
		return r.conn, nil
	case <-timer.C:
		end()
		return nil, fmt.Errorf("watch %s: connect to the system bus: %w", m.b.Unit, ErrTimeout)
	case <-ctx.Done():
		end()
		return nil, ctx.Err()
	}
}

// busCall bounds one call like the module's other calls.
func (m *Module) busCall(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, m.sd.Timeout())
	defer cancel()
	err := f(ctx)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}
