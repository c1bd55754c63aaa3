package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/modules/internal/systemd"
	"github.com/sirupsen/logrus"
)

// Module converges one unit: enablement, state, and the restart (or reload)
// owed when a module in restart_on changed.
type Module struct {
	b  *Block
	sd *systemd.Conn

	// waited is how long the last Apply spent waiting for systemd and
	// dockerd (job results, polls, /_ping); the rest of its time is
	// dockward's own. Read by benchmarks.
	waited time.Duration
}

var (
	_ agent.Module    = (*Module)(nil)
	_ agent.Restarter = (*Module)(nil)
)

// New makes the module for a decoded block; it connects to systemd on the
// system bus when it first needs to.
func New(b *Block) *Module { return newModule(b, DialSystem) }

func newModule(b *Block, dial func(context.Context) (Bus, error)) *Module {
	return &Module{b: b, sd: systemd.New(dial)}
}

// ID implements agent.Module.
func (m *Module) ID() string { return m.b.ID() }

// Unit implements agent.Restarter.
func (m *Module) Unit() string { return m.b.Unit }

// RestartOn implements agent.Restarter.
func (m *Module) RestartOn() []string {
	ids := make([]string, len(m.b.RestartOn))
	for i, r := range m.b.RestartOn {
		ids[i] = r.ID
	}
	return ids
}

// RollsBack implements agent.Restarter: the block's rollback.
func (m *Module) RollsBack() bool { return m.b.Rollback }

// Close drops the D-Bus connection. The module re-connects if used again.
func (m *Module) Close() { m.sd.Close() }

// action is the one job a plan runs on the unit (besides enablement).
type action string

const (
	actNone    action = ""
	actStart   action = "start"
	actStop    action = "stop"
	actRestart action = "restart"
	actReload  action = "reload"
	// actForget clears an owed restart that the unit does not need, because
	// it is not running: it reads the new files when it starts.
	actForget action = "forget"
)

// planState is what Plan hands Apply.
type planState struct {
	before unitState
	enable *bool
	action action
	// due is what the engine says the unit owes, and why.
	due agent.Due
	// forget says why an owed restart is not needed (actForget).
	forget string
}

// Plan reads the unit and says what Apply would do. It changes nothing.
func (m *Module) Plan(ctx context.Context, env *agent.Env) (*agent.Plan, error) {
	if env.Offline() {
		return nil, agent.ErrOffline
	}
	unit := m.b.Unit
	u, err := m.sd.State(ctx, unit)
	if err != nil {
		return nil, err
	}
	switch u.LoadState {
	case "loaded":
	case "not-found":
		return nil, fmt.Errorf("read %s: %w: systemd has no unit file for it (LoadState not-found); is the package installed?", unit, ErrNoSuchUnit)
	case "masked":
		if m.b.State == StateRunning || (m.b.Enabled != nil && *m.b.Enabled) {
			return nil, fmt.Errorf("read %s: %w; dockward does not unmask units: run `systemctl unmask %s` if it should run", unit, ErrUnitMasked, unit)
		}
	default:
		return nil, fmt.Errorf("read %s: its unit file could not be loaded (LoadState %s); see `systemctl status %s`", unit, u.LoadState, unit)
	}

	due := env.Due
	st := &planState{before: u, due: due}
	var changes []agent.Change
	if c, enable, err := m.planEnabled(u); err != nil {
		return nil, err
	} else if enable != nil {
		st.enable = enable
		changes = append(changes, c)
	}

	why := due.Why()
	switch {
	case m.b.State == StateStopped && u.Running():
		st.action = actStop
		changes = append(changes, agent.Change{Action: agent.Update, Target: "state", Old: u.ActiveState, New: "inactive",
			Detail: "stop " + unit})
	case m.b.State == StateRunning && (!u.Running() || u.CrashLooping()):
		st.action = actStart
		d := "start " + unit
		if due.Owed() {
			// First boot: the unit has never run the old files, so a start
			// is all it needs.
			d += ": it reads the new files as it starts (" + why + ")"
		}
		changes = append(changes, agent.Change{Action: agent.Update, Target: "state", Old: u.ActiveState, New: "active", Detail: d})
	case due.Owed() && u.Running() && len(due.ChangedNow) == 0 && u.StartedAfter(due.Written):
		// Owed only by the journal, and the unit started after the changes
		// were written: it already runs on the new files. First boot is
		// this case: dockward-firstboot writes the files before docker's
		// first start, and the agent must not restart docker afterwards.
		st.action = actForget
		st.forget = fmt.Sprintf("%s started at %s, after the owed changes were written at %s: it already reads the new files (%s)",
			unit, stamp(u.ActiveEnter), stamp(due.Written), why)
		changes = append(changes, agent.Change{Action: agent.Update, Target: unit, Old: "restart owed", New: "not needed", Detail: st.forget})
	case due.Owed() && u.Running():
		st.action = actRestart
		if due.Kind == agent.Reload && u.ActiveState == "active" && u.CanReload {
			st.action = actReload
		}
		d := string(st.action) + " " + unit + ": " + why
		if len(due.ChangedNow) == 0 && !due.Since.IsZero() {
			d += " (owed since " + due.Since.Format(time.RFC3339) + " by an interrupted run)"
		}
		changes = append(changes, agent.Change{Action: agent.Update, Target: unit, Old: u.ActiveState, New: string(st.action) + "ed", Detail: d})
	case due.Owed():
		st.action = actForget
		st.forget = unit + " is " + u.ActiveState + ": it reads the new files when it starts (" + why + ")"
		changes = append(changes, agent.Change{Action: agent.Update, Target: unit, Old: "restart owed", New: "not needed", Detail: st.forget})
	}
	return &agent.Plan{Changes: changes, State: st}, nil
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func (m *Module) planEnabled(u unitState) (agent.Change, *bool, error) {
	if m.b.Enabled == nil {
		return agent.Change{}, nil, nil
	}
	want := *m.b.Enabled
	c := agent.Change{Action: agent.Update, Target: "enabled", Old: u.UnitFileState}
	switch u.UnitFileState {
	case "disabled", "enabled-runtime":
		if want {
			c.New = "enabled"
			return c, &want, nil
		}
	case "enabled":
		if !want {
			c.New = "disabled"
			return c, &want, nil
		}
	case "masked", "masked-runtime":
		if want {
			return c, nil, fmt.Errorf("enable %s: %w; dockward does not unmask units", m.b.Unit, ErrUnitMasked)
		}
	}
	// static, indirect, generated, transient, alias, linked: no [Install]
	// links of its own that enabling or disabling would change.
	return c, nil, nil
}

// Apply runs what Plan found. A failed restart is rolled back when the block
// says so; the error is then an *agent.RolledBackError.
func (m *Module) Apply(ctx context.Context, env *agent.Env, plan *agent.Plan) error {
	st, ok := plan.State.(*planState)
	if plan.Empty() || !ok {
		return nil
	}
	m.waited = 0
	log := env.Logger().WithFields(logrus.Fields{"module": m.ID(), "target": m.b.Unit})
	if st.enable != nil {
		if err := m.sd.Enable(ctx, m.b.Unit, *st.enable); err != nil {
			return err
		}
		log.WithField("enabled", *st.enable).Info("enablement changed")
	}

	var err error
	switch st.action {
	case actNone:
	case actForget:
		log.Info("owed restart not needed: " + st.forget)
	case actStop:
		err = m.stop(ctx)
	case actStart, actRestart, actReload:
		err = m.bounce(ctx, log, st)
	}
	// A failed restart stays owed: the engine clears what is owed only
	// after this returns nil, and on a *agent.VerifyError it rolls the
	// upstream modules back and calls Retry.
	return err
}

// Retry implements agent.Restarter: the restart of plan once more, after
// the engine restored the upstream modules' files. A failed reload was
// already followed by a restart, so a reload is retried as a restart.
func (m *Module) Retry(ctx context.Context, env *agent.Env, plan *agent.Plan) error {
	st, ok := plan.State.(*planState)
	if !ok {
		return nil
	}
	kind := jobKind(st.action)
	if kind == jobReload {
		kind = jobRestart
	}
	log := env.Logger().WithFields(logrus.Fields{"module": m.ID(), "target": m.b.Unit})
	if err := m.runVerified(ctx, log, kind); err != nil {
		return &agent.VerifyError{Err: err}
	}
	return nil
}

func (m *Module) stop(ctx context.Context) error {
	deadline := time.Now().Add(m.b.Timeout)
	res, err := m.job(ctx, jobStop, deadline)
	if err != nil && !errors.Is(err, errJobLost) {
		return err
	}
	if err == nil && res != "done" {
		return m.failure(ctx, fmt.Errorf("stop %s: job %s", m.b.Unit, res))
	}
	for attempt := 0; ; attempt++ {
		u, err := m.sd.State(ctx, m.b.Unit)
		if err == nil && !u.Running() && u.JobID == 0 {
			return nil
		}
		if err := m.sleep(ctx, deadline, attempt); err != nil {
			return m.failure(ctx, fmt.Errorf("stop %s: still running after %s: %w", m.b.Unit, m.b.Timeout, err))
		}
	}
}

// bounce starts, restarts or reloads the unit and verifies it. A failure is
// an *agent.VerifyError: the engine decides on rollback.
func (m *Module) bounce(ctx context.Context, log *logrus.Entry, st *planState) error {
	kind := jobKind(st.action)
	if kind == jobReload {
		err := m.runVerified(ctx, log, jobReload)
		if err == nil {
			return nil
		}
		// A failed reload leaves dockerd on its old settings; a restart
		// applies them all the same.
		log.WithError(err).Warn("reload failed; restarting instead")
		kind = jobRestart
	}
	if err := m.runVerified(ctx, log, kind); err != nil {
		return &agent.VerifyError{Err: err}
	}
	return nil
}

// runVerified runs one job and verifies the unit: the job ends "done", the
// unit is active, and (verify = "docker") the Engine API answers /_ping, all
// within timeout.
func (m *Module) runVerified(ctx context.Context, log *logrus.Entry, kind jobKind) error {
	unit := m.b.Unit
	deadline := time.Now().Add(m.b.Timeout)
	// A job already queued on the unit (the restart a killed dockward run
	// started, an operator's systemctl) is let finish first: replacing it
	// mid-way kills dockerd in the middle of its start and fails both jobs.
	if err := m.waitIdle(ctx, log, deadline); err != nil {
		return m.failure(ctx, fmt.Errorf("%s %s: %w", kind, unit, err))
	}
	if kind != jobReload {
		// docker.service allows 3 starts in 60 s (StartLimitBurst): a start
		// after a failed one must not be refused with start-limit-hit.
		if err := m.sd.ResetFailed(ctx, unit); err != nil {
			return err
		}
	}
	log.Infof("%s %s", kind, unit)
	res, err := m.job(ctx, kind, deadline)
	switch {
	case errors.Is(err, errJobLost):
		log.Warn("connection to systemd lost during the job; checking the unit's state instead")
	case err != nil:
		return m.failure(ctx, err)
	case res != "done":
		return m.failure(ctx, fmt.Errorf("%s %s: job %s", kind, unit, res))
	}
	t := time.Now()
	u, err := m.waitActive(ctx, deadline)
	m.waited += time.Since(t)
	if err != nil {
		return m.failure(ctx, fmt.Errorf("%s %s: %w", kind, unit, err))
	}
	if m.b.Verify == VerifyDocker {
		t := time.Now()
		err := pingDocker(ctx, m.b.DockerSocket, deadline)
		m.waited += time.Since(t)
		if err != nil {
			return m.failure(ctx, fmt.Errorf("%s %s: %w", kind, unit, err))
		}
	}
	log.WithField("invocation", u.InvocationID).Infof("%s %s: verified", kind, unit)
	return nil
}

func (m *Module) job(ctx context.Context, kind jobKind, deadline time.Time) (string, error) {
	t := time.Now()
	defer func() { m.waited += time.Since(t) }()
	return m.sd.RunJob(ctx, kind, m.b.Unit, deadline)
}

func (m *Module) sleep(ctx context.Context, deadline time.Time, attempt int) error {
	t := time.Now()
	defer func() { m.waited += time.Since(t) }()
	return sleepUntil(ctx, deadline, pollInterval(attempt))
}

// failure adds the unit's state to err, so that the error says what the
// failed step left the host with.
func (m *Module) failure(ctx context.Context, err error) error {
	return fmt.Errorf("%w; %s", err, m.describe(ctx))
}

func (m *Module) describe(ctx context.Context) string {
	// A short budget of its own: ctx may be what just expired.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	u, err := m.sd.StateWithResult(dctx, m.b.Unit)
	if err != nil {
		return fmt.Sprintf("the state of %s is unknown: %v", m.b.Unit, err)
	}
	return fmt.Sprintf("%s was left %s", m.b.Unit, u)
}
