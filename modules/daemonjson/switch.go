package daemonjson

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/managedfile"
	"github.com/dockward/dockward/config"
	"github.com/hashicorp/hcl/v2"
	"github.com/moby/moby/client"
)

// The data-root switch. A run that would make dockerd use another data
// root (userns-remap on or off, another remap user, other ranges for it,
// another data-root) hides everything the current root holds: containers,
// images, networks, volumes stay on disk, but dockerd no longer shows
// them. Plan shows what stays behind and what the new root already holds;
// apply then does what on_data_root_switch says:
//
//   - refuse (the default): when the switch would hide workloads
//     (containers, user-defined networks, named volumes), nothing that owes
//     docker a restart is written (neither daemon.json nor the remap user's
//     new ranges; see Gate) and docker keeps running as it is;
//   - leave_behind: proceed, and say what was hidden;
//   - migrate: move them across (migrate.go).

// The values of on_data_root_switch.
const (
	SwitchRefuse      = "refuse"
	SwitchLeaveBehind = "leave_behind"
	SwitchMigrate     = "migrate"
)

var switchModes = []string{SwitchRefuse, SwitchLeaveBehind, SwitchMigrate}

func decodeOnSwitch(attr *hcl.Attribute) (string, hcl.Diagnostics) {
	s, d := config.String(attr)
	if d.HasErrors() {
		return SwitchRefuse, d
	}
	if !slices.Contains(switchModes, s) {
		return SwitchRefuse, hcl.Diagnostics{errAt(attr.Expr.Range(), "Invalid on_data_root_switch",
			fmt.Sprintf("on_data_root_switch must be %q (the default: do not switch when it would hide workloads), %q (switch, and leave them hidden in the old root) or %q (move them to the new root); got %q.",
				SwitchRefuse, SwitchLeaveBehind, SwitchMigrate, s))}
	}
	return s, nil
}

// engineTimeout bounds the Engine API reads of the switch detection.
const engineTimeout = 30 * time.Second

// switching is the module's data-root switch state: how it reaches the
// Engine API, and the migration under way in this run.
type switching struct {
	// Engine connects to the Docker Engine API; nil means as the docker
	// CLI does (DOCKER_HOST, else the local socket).
	Engine func() (*client.Client, error)
	// hostRoot prefixes the paths the switch detection reads besides
	// daemon.json (ID files, data roots); tests point it at a tree.
	hostRoot string

	mig *migration
}

// hostPath is p as the switch detection reads it.
func (m *Module) hostPath(env *agent.Env, p string) string {
	return filepath.Join(m.hostRoot, env.Path(p))
}

func (m *Module) engine() (*client.Client, error) {
	if m.Engine != nil {
		return m.Engine()
	}
	return client.New(client.FromEnv)
}

// dataSwitch is a pending move of dockerd's data root.
type dataSwitch struct {
	From string // the root the running dockerd reports
	// FromRoot is how the files say dockerd got there, when they agree
	// with From (they do unless someone changed them since its start).
	FromRoot *dataRoot
	To       dataRoot
	// Current is what From holds now (read over the Engine API).
	Current Inventory
	// Hidden is what From holds and To lacks.
	Hidden Inventory
	// Holds is what To already holds (read from its files), when Used.
	Holds Inventory
	Used  bool
	// Blockers are, under migrate, what cannot move (object: reason).
	Blockers []string
	// Stopped: docker is not running; Current was read from From's files.
	Stopped bool
	// LiveRestore is the running dockerd's live-restore: its containers
	// would outlive the restart, running but unseen by the dockerd on the
	// new root, so they are stopped before it (stopRunning).
	LiveRestore bool
}

// switchState wraps the file plan when the run switches data roots.
type switchState struct {
	file *agent.Plan
	sw   *dataSwitch
}

// Plan implements agent.Module: the daemon.json plan (planFile), plus what
// a data-root switch the run would cause leaves behind.
func (m *Module) Plan(ctx context.Context, env *agent.Env) (*agent.Plan, error) {
	p, err := m.planFile(ctx, env)
	if err != nil {
		return nil, err
	}
	sw, err := m.detectSwitch(ctx, env, true)
	if err != nil {
		return nil, err
	}
	if sw == nil {
		return p, nil
	}
	changes := append(slices.Clone(p.Changes), sw.changes(m.cfg.OnSwitch)...)
	return &agent.Plan{Changes: changes, State: &switchState{file: p, sw: sw}}, nil
}

// Apply implements agent.Module. A switching plan is checked once more
// (the engine's Gate already did, for runs it drives), then the file is
// written as planned.
func (m *Module) Apply(ctx context.Context, env *agent.Env, plan *agent.Plan) error {
	st, ok := plan.State.(*switchState)
	if !ok {
		return m.applyFile(ctx, env, plan)
	}
	if err := m.decide(ctx, env, st.sw, m.ID()); err != nil {
		return err
	}
	if !st.file.Empty() { // else only the ranges change (subordinate_ids writes them)
		if err := m.applyFile(ctx, env, st.file); err != nil {
			return err
		}
	}
	return nil
}

var _ agent.Gatekeeper = (*Module)(nil)

// Gate implements agent.Gatekeeper. It is asked before docker_daemon's own
// write and before any module whose planned ranges for the remap user move
// the data root (subordinate_ids): a refused switch writes none of them,
// so no restart is owed and docker keeps its root.
func (m *Module) Gate(ctx context.Context, env *agent.Env, id string, plan *agent.Plan) error {
	if id == m.ID() {
		st, ok := plan.State.(*switchState)
		if !ok {
			return nil
		}
		return m.decide(ctx, env, st.sw, id)
	}
	if !env.Facts.ChangedBy(id) {
		return nil
	}
	sw, err := m.detectSwitch(ctx, env, false)
	if err != nil {
		return fmt.Errorf("not written: %s could not tell whether this change moves Docker's data root: %w", m.ID(), err)
	}
	if sw == nil || sw.To.By != id {
		return nil
	}
	return m.decide(ctx, env, sw, id)
}

// decide applies on_data_root_switch to a switch, for module id's write.
func (m *Module) decide(ctx context.Context, env *agent.Env, sw *dataSwitch, id string) error {
	log := env.Logger()
	switch m.cfg.OnSwitch {
	case SwitchLeaveBehind:
		if !sw.Hidden.Empty() {
			log.Warnf("moving Docker's data root from %s to %s (on_data_root_switch = %q): %s stay behind in %s",
				sw.From, sw.To.Path, SwitchLeaveBehind, sw.Hidden.Summary(), sw.From)
		}
		m.pending(env, sw)
		return nil
	case SwitchMigrate:
		return m.exportOnce(ctx, env, sw, id)
	}
	if !sw.Hidden.Workloads() {
		m.pending(env, sw)
		return nil
	}
	if id != m.ID() {
		return fmt.Errorf("not written: with docker_daemon's configuration this change moves Docker's data root from %s to %s, and docker_daemon refuses that switch (see its error); nothing that owes docker a restart was written", sw.From, sw.To.Path)
	}
	return &SwitchRefusedError{From: sw.From, To: sw.To.Path, Cause: sw.To.cause(), Hidden: sw.Hidden}
}

// SwitchRefusedError is a data-root switch refused because it would hide
// workloads.
type SwitchRefusedError struct {
	From, To, Cause string
	Hidden          Inventory
}

func (e *SwitchRefusedError) Error() string {
	return fmt.Sprintf("refused to move Docker's data root from %s to %s (%s): it would hide %s, which stay in %s. "+
		"Nothing that owes docker a restart was written; docker stays on %s as it was. "+
		"To move them, set in docker_daemon: on_data_root_switch = %q (or %q to switch and leave them hidden; switching back shows them again)",
		e.From, e.To, e.Cause, e.Hidden.Summary(), e.From, e.From, SwitchMigrate, SwitchLeaveBehind)
}

// detectSwitch works out whether applying the configuration (with the
// ranges subordinate_ids plans in this run) moves dockerd to another data
// root, and if so what stays behind. It reads daemon.json and the ID files
// first: when the configuration does not move the root, the Engine API is
// not asked. withBlockers asks the Migrator what cannot move (for plan).
// Docker not running (first boot) means no switch to guard:
// nothing to hide, and dockerd starts on the configured root.
func (m *Module) detectSwitch(ctx context.Context, env *agent.Env, withBlockers bool) (*dataSwitch, error) {
	if env.Offline() {
		return nil, nil
	}
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	target, err := m.readTarget(root)
	if err != nil {
		return nil, err
	}
	doc, err := Parse(target.Data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", env.Path(m.cfg.Path), err)
	}
	owned, err := loadOwned(env.StateDir, m.cfg.Path)
	if err != nil {
		owned = nil // as planFile: the safe side
	}
	after := Merge(doc, m.cfg.Managed, owned)
	ids, err := readIDFiles(env, filepath.Join(m.hostRoot, env.Root))
	if err != nil {
		return nil, err
	}
	now, err := rootOf(doc, ids, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.cfg.Path, err)
	}
	next, err := rootOf(after, ids, true)
	if err != nil {
		return nil, fmt.Errorf("candidate %s: %w", m.cfg.Path, err)
	}
	if now.Path == next.Path {
		return nil, nil
	}
	if fr := m.unitDataRoot(ctx, env); fr != "" {
		if now, err = rootOf(doc, ids, false, fr); err != nil {
			return nil, err
		}
		if next, err = rootOf(after, ids, true, fr); err != nil {
			return nil, err
		}
	}

	if m.dockerStopped(ctx, env) {
		// Not a question for the Engine API: with docker.socket, systemd
		// holds the socket and a request waits for dockerd's start, which
		// (dockward-firstboot is ordered before docker) waits for us.
		return m.detectOnDisk(env, now, next)
	}
	ctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	cli, err := m.engine()
	if err != nil {
		return nil, fmt.Errorf("docker engine API client: %w", err)
	}
	defer cli.Close() //nolint:errcheck
	info, err := cli.Info(ctx, client.InfoOptions{})
	if client.IsErrConnectionFailed(err) {
		return m.detectOnDisk(env, now, next)
	}
	if err != nil {
		return nil, fmt.Errorf("ask docker which data root it uses: %w", err)
	}
	from := filepath.Clean(info.Info.DockerRootDir)
	if from == next.Path || from == "." {
		return nil, nil
	}
	cur, err := readAPI(ctx, cli)
	if err != nil {
		return nil, fmt.Errorf("read what %s holds: %w", from, err)
	}
	sw := &dataSwitch{From: from, To: next, Current: cur, LiveRestore: info.Info.LiveRestoreEnabled}
	if now.Path == from {
		sw.FromRoot = &now
	}
	if next.Known {
		if sw.Holds, sw.Used, err = readDisk(m.hostPath(env, next.Path)); err != nil {
			return nil, fmt.Errorf("read what %s holds: %w", next.Path, err)
		}
	}
	if cur.Empty() && !sw.Used {
		// First boot: an empty root to an unused one. Nothing to show.
		return nil, nil
	}
	sw.Hidden = cur.Minus(sw.Holds)
	if m.cfg.OnSwitch == SwitchMigrate && withBlockers {
		if sw.Blockers, err = m.blockers(ctx, env, cli, sw); err != nil {
			return nil, err
		}
	}
	return sw, nil
}

// detectOnDisk is detectSwitch when docker is not running (stopped, or
// not started yet, as when dockward-firstboot runs): the root it would
// start on today is the one the files name, and what it holds is read
// from its files. An absent or empty root (a first boot) is no switch.
func (m *Module) detectOnDisk(env *agent.Env, now, next dataRoot) (*dataSwitch, error) {
	if !now.Known {
		return nil, nil
	}
	cur, used, err := readDisk(m.hostPath(env, now.Path))
	if err != nil {
		return nil, fmt.Errorf("docker is not running; read what %s holds: %w", now.Path, err)
	}
	if !used || cur.Empty() {
		env.Logger().Debug("docker is not running and its data root holds nothing: no switch to guard")
		return nil, nil
	}
	sw := &dataSwitch{From: now.Path, FromRoot: &now, To: next, Current: cur, Stopped: true}
	if next.Known {
		if sw.Holds, sw.Used, err = readDisk(m.hostPath(env, next.Path)); err != nil {
			return nil, fmt.Errorf("read what %s holds: %w", next.Path, err)
		}
	}
	sw.Hidden = cur.Minus(sw.Holds)
	return sw, nil
}

// dockerStopped reports whether systemd says the docker unit is neither
// running nor starting. Without systemd, or when the unit cannot be read,
// it says false: the Engine API is asked, and a refused connection still
// means stopped.
func (m *Module) dockerStopped(ctx context.Context, env *agent.Env) bool {
	units := m.Units
	if units == nil {
		units = SystemdUnits{}
	}
	ctx, cancel := context.WithTimeout(ctx, unitTimeout)
	defer cancel()
	ue, err := units.ReadUnit(ctx, m.Unit)
	if err != nil || ue.ActiveState == "" {
		return false
	}
	switch ue.ActiveState {
	case "active", "reloading", "activating", "deactivating":
		return false
	}
	env.Logger().WithField("unit", m.Unit).Debugf("%s is %s: reading its data root from its files", m.Unit, ue.ActiveState)
	return true
}

// unitDataRoot is the --data-root docker.service gives dockerd, if any.
// Read only when the configuration moves the root; a unit that cannot be
// read counts as none (planFile reports that when it matters).
func (m *Module) unitDataRoot(ctx context.Context, env *agent.Env) string {
	args, err := m.unitArgs(ctx, env.Logger())
	if err != nil {
		env.Logger().WithError(err).Debug("unit flags unreadable: assuming no --data-root")
		return ""
	}
	for _, f := range Flags(args) {
		if f.Name == "data-root" && filepath.IsAbs(f.Value) {
			return f.Value
		}
	}
	return ""
}

// changes renders a switch as plan lines: the root, then every object that
// stays behind (or moves), then what the new root already holds. They are
// Metadata: the restart they need is owed by the changes that cause them.
func (sw *dataSwitch) changes(mode string) []agent.Change {
	var why string
	switch {
	case sw.Hidden.Empty():
		why = "nothing stays behind"
	case mode == SwitchLeaveBehind:
		why = fmt.Sprintf("on_data_root_switch = %q: %s stay behind, hidden", SwitchLeaveBehind, sw.Hidden.Summary())
	case mode == SwitchMigrate:
		why = fmt.Sprintf("on_data_root_switch = %q: %s move", SwitchMigrate, sw.Hidden.Summary())
		if len(sw.Blockers) > 0 {
			why += fmt.Sprintf(", except %d that cannot (below)", len(sw.Blockers))
		}
	case sw.Hidden.Workloads():
		why = fmt.Sprintf("apply refuses this (on_data_root_switch = %q): it would hide %s; on_data_root_switch = %q or %q chooses otherwise",
			SwitchRefuse, sw.Hidden.Summary(), SwitchMigrate, SwitchLeaveBehind)
	default:
		why = fmt.Sprintf("only images stay behind (%s): not refused, images are pulled or built again", strings.Join(sw.Hidden.Images, ", "))
	}
	if sw.Used {
		why += "; " + sw.To.Path + " was used before"
		if len(sw.Holds.Uncounted) > 0 {
			why += "; not counted there: " + strings.Join(sw.Holds.Uncounted, "; ")
		}
	}
	if sw.Stopped {
		why = "docker is not running, what " + sw.From + " holds was read from its files; " + why
	}
	out := []agent.Change{{Action: agent.Update, Target: "data root", Old: sw.From, New: sw.To.Path,
		Detail: sw.To.cause() + "; " + why, Metadata: true}}

	behind := "stays behind in " + sw.From
	if mode == SwitchMigrate {
		behind = "moves to " + sw.To.Path
	}
	blocked := map[string]string{}
	for _, b := range sw.Blockers {
		k, reason, _ := strings.Cut(b, ": ")
		blocked[k] = reason
	}
	add := func(kind, name, label string) {
		detail := behind
		if kind == "container" && strings.HasSuffix(label, "(running)") && sw.LiveRestore {
			detail = "stopped before the restart (with live-restore it would run on unseen); " + detail
		}
		if r, ok := blocked[kind+" "+name]; ok {
			detail = "cannot move: " + r + "; stays behind in " + sw.From
		}
		out = append(out, agent.Change{Action: agent.Delete, Target: kind + " " + label, Detail: detail, Metadata: true})
	}
	for _, c := range sw.Hidden.Containers {
		add("container", c.Name, c.Name+" ("+c.state()+")")
	}
	for _, n := range sw.Hidden.Images {
		add("image", n, n)
	}
	for _, n := range sw.Hidden.Networks {
		add("network", n, n)
	}
	for _, n := range sw.Hidden.Volumes {
		add("volume", n, n)
	}
	back := "reappears: " + sw.To.Path + " already holds it"
	reappear := sw.Holds.Minus(sw.Current) // what both hold is no news
	for _, c := range reappear.Containers {
		out = append(out, agent.Change{Action: agent.Create, Target: "container " + c.Name + " (" + c.state() + ")", Detail: back, Metadata: true})
	}
	for _, x := range []struct {
		kind  string
		names []string
	}{{"image", reappear.Images}, {"volume", reappear.Volumes}} {
		for _, n := range x.names {
			out = append(out, agent.Change{Action: agent.Create, Target: x.kind + " " + n, Detail: back, Metadata: true})
		}
	}
	return out
}
