package auditrules

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/managedfile"
	"github.com/dockward/dockward/modules/internal/systemd"
)

// perm is the rules file's mode and owner: as augenrules makes audit.rules,
// root's alone to write, not for others to read (it tells what is watched).
var perm = managedfile.RootOwned(0o640)

// Module converges the rules file and the kernel's rules.
type Module struct {
	b *Block
	// units and auditd are the host; nil means the real ones (systemd over
	// D-Bus, the audit tools), made per run.
	units  Units
	auditd Auditd
	// treeIsLive, in tests, plans a --root tree as the live system would
	// be planned, with the fakes standing for systemd and auditd.
	treeIsLive bool
}

// offline reports whether nothing live may be asked or loaded.
func (m *Module) offline(env *agent.Env) bool { return env.Offline() && !m.treeIsLive }

// New makes the module for a decoded block (the registry's constructor).
func New(b *Block) *Module { return &Module{b: b} }

// ID implements agent.Module.
func (m *Module) ID() string { return m.b.ID() }

// tmpfilesPerm is the tmpfiles.d entry's, as every file of that directory.
var tmpfilesPerm = managedfile.RootOwned(0o644)

// state is what Apply needs of the plan.
type state struct {
	want  []byte
	seen  *managedfile.File // the file as Plan read it
	write bool              // content differs
	fix   bool              // only mode or owner differ
	load  bool
	// The tmpfiles.d entry: its wanted content (nil: none), as Plan read
	// it, and what to do.
	tmpWant  []byte
	tmpSeen  *managedfile.File
	tmpWrite bool
	tmpFix   bool
}

// targetLoad names the kernel's rules in a plan.
const targetLoad = "kernel audit rules"

// host returns the units and auditd of this run and a closer.
func (m *Module) host(env *agent.Env) (Units, Auditd, func()) {
	if m.units != nil || m.auditd != nil {
		return m.units, m.auditd, func() {}
	}
	if m.offline(env) || !hasSystemBus() {
		return systemdUnits{}, realAuditd{}, func() {}
	}
	conn := systemd.New(systemd.DialSystem)
	return systemdUnits{conn}, realAuditd{conn}, conn.Close
}

// Plan resolves the paths to watch on this host, renders the rules file and
// compares it with the one on disk; when auditd runs (and load is on), it
// compares the kernel's rules with the file. Under --root it plans the file
// only: nothing is loaded into a tree.
func (m *Module) Plan(ctx context.Context, env *agent.Env) (*agent.Plan, error) {
	units, auditd, done := m.host(env)
	defer done()
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	ws, err := Resolve(ctx, root, units)
	if err != nil {
		return nil, err
	}
	st := &state{want: Render(m.b.Key, ws)}
	if st.seen, err = root.Read(m.b.Path, managedfile.DefaultLimit); err != nil {
		return nil, err
	}
	dirs, err := RuntimeDirs(root, ws)
	if err != nil {
		return nil, err
	}
	st.tmpWant = RenderTmpfiles(dirs)
	if st.tmpSeen, err = root.Read(TmpfilesPath, managedfile.DefaultLimit); err != nil {
		return nil, err
	}
	var changes []agent.Change
	// The tmpfiles.d entry first: Apply writes it before the rules.
	tmpDetail := "so that at boot the directories below /run exist when auditd loads the rules"
	switch {
	case st.tmpWant == nil && st.tmpSeen.Exists:
		st.tmpWrite = true
		changes = append(changes, agent.Change{Action: agent.Delete, Target: TmpfilesPath, Detail: "no watch below /run needs it"})
	case st.tmpWant != nil && !st.tmpSeen.Exists:
		st.tmpWrite = true
		changes = append(changes, agent.Change{Action: agent.Create, Target: TmpfilesPath, New: dirList(dirs), Detail: tmpDetail})
	case st.tmpWant != nil && !bytes.Equal(st.tmpSeen.Data, st.tmpWant):
		st.tmpWrite = true
		changes = append(changes, agent.Change{Action: agent.Update, Target: TmpfilesPath, New: dirList(dirs), Detail: tmpDetail})
	case st.tmpWant != nil:
		if o, w, ok := managedfile.Drift(st.tmpSeen, tmpfilesPerm); ok {
			st.tmpFix = true
			changes = append(changes, agent.Change{Action: agent.Update, Target: TmpfilesPath, Old: o, New: w, Metadata: true})
		}
	}
	switch {
	case !st.seen.Exists:
		st.write = true
		changes = append(changes, agent.Change{Action: agent.Create, Target: m.b.Path,
			New: fmt.Sprintf("%d watch rules", len(ws)), Detail: watchList(ws)})
	case !bytes.Equal(st.seen.Data, st.want):
		st.write = true
		old := ParseRules(st.seen.Data, m.b.Key)
		changes = append(changes, agent.Change{Action: agent.Update, Target: m.b.Path,
			Old: fmt.Sprintf("%d watch rules", len(old)), New: fmt.Sprintf("%d watch rules", len(ws)),
			Detail: ruleDiff(old, ws)})
	default:
		if o, w, ok := managedfile.Drift(st.seen, perm); ok {
			st.fix = true
			changes = append(changes, agent.Change{Action: agent.Update, Target: m.b.Path, Old: o, New: w, Metadata: true})
		}
	}

	// The kernel's side. The file is right for auditd's next start in
	// every case below; only a running auditd needs telling. What auditd
	// being absent or stopped leaves undone is pending: apply cannot make
	// it, and it is no failure.
	var pending []agent.Pending
	note := ""
	switch {
	case m.offline(env):
		note = "offline (--root): the file is written, nothing is loaded"
	case !m.b.Load:
		note = "load = false: auditd reads the file when it next starts"
	default:
		as, why, err := auditd.State(ctx)
		if err != nil {
			return nil, fmt.Errorf("read auditd's state: %w", err)
		}
		switch as {
		case AuditdMissing:
			pending = append(pending, agent.Pending{Target: targetLoad, Detail: "auditd is not installed (" + why +
				"): nothing loads " + m.b.Path + " until it is (dockward installs no packages; its .deb recommends auditd)"})
		case AuditdUnknown:
			pending = append(pending, agent.Pending{Target: targetLoad, Detail: "cannot tell whether auditd runs (" + why +
				"): nothing is loaded; auditd reads " + m.b.Path + " when it starts"})
		case AuditdStopped:
			pending = append(pending, agent.Pending{Target: targetLoad, Detail: "auditd is not running (" + why +
				"): it loads " + m.b.Path + " when it starts"})
		case AuditdRunning:
			loaded, lerr := auditd.Loaded(ctx)
			missing := missingWatches(ParseRules(loaded, m.b.Key), ws)
			switch {
			case lerr != nil:
				st.load = true
				changes = append(changes, agent.Change{Action: agent.Update, Target: targetLoad, New: "augenrules --load",
					Detail: "cannot read the kernel's rules: " + lerr.Error()})
			case st.write || len(missing) > 0:
				st.load = true
				d := "load " + m.b.Path + " into the running auditd"
				if len(missing) > 0 {
					d = "not loaded: " + strings.Join(missing, " ")
				}
				changes = append(changes, agent.Change{Action: agent.Update, Target: targetLoad, New: "augenrules --load", Detail: d})
			}
		}
	}
	if note != "" {
		for i := range changes {
			if changes[i].Target == m.b.Path && !changes[i].Metadata {
				changes[i].Detail = strings.TrimPrefix(changes[i].Detail+"; "+note, "; ")
			}
		}
	}
	for _, p := range pending {
		env.Logger().Debug(p.Detail)
	}
	return &agent.Plan{Changes: changes, State: st, Pending: pending}, nil
}

// Apply writes the file, then loads it. These are two steps, each safe on
// its own: a load that fails leaves the file written and right (auditd
// reads it at its next start, the next plan shows the load again) and the
// error says what failed.
func (m *Module) Apply(ctx context.Context, env *agent.Env, plan *agent.Plan) error {
	st, ok := plan.State.(*state)
	if !ok {
		return fmt.Errorf("audit_rules: apply without a plan of its own")
	}
	_, auditd, done := m.host(env)
	defer done()
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	if st.tmpWrite || st.tmpFix {
		if err := m.applyTmpfiles(root, st); err != nil {
			return err
		}
	}
	if st.write || st.fix {
		cur, err := root.Read(m.b.Path, managedfile.DefaultLimit)
		if err != nil {
			return err
		}
		if cur.Exists != st.seen.Exists || !bytes.Equal(cur.Data, st.seen.Data) {
			return fmt.Errorf("%s changed since the plan; plan again", cur.Path)
		}
	}
	if st.write {
		if err := root.MkdirAll(filepath.Dir(m.b.Path), 0o750); err != nil {
			return err
		}
		if err := root.WriteAtomic(m.b.Path, st.want, perm); err != nil {
			return err
		}
	} else if st.fix {
		if err := root.FixPerm(m.b.Path, perm); err != nil {
			return err
		}
	}
	if st.load {
		if err := auditd.Load(ctx); err != nil {
			return fmt.Errorf("%s is written, but loading it failed: %w", root.Path(m.b.Path), err)
		}
	}
	if _, _, err := root.CleanTemp(filepath.Dir(m.b.Path)); err != nil {
		env.Logger().WithError(err).Warn("cleaning temp files")
	}
	return nil
}

// applyTmpfiles writes, corrects or removes the tmpfiles.d entry. It is a
// step of its own: written before the rules, it is harmless without them
// (it makes a directory containerd makes anyway).
func (m *Module) applyTmpfiles(root *managedfile.Root, st *state) error {
	cur, err := root.Read(TmpfilesPath, managedfile.DefaultLimit)
	if err != nil {
		return err
	}
	if cur.Exists != st.tmpSeen.Exists || !bytes.Equal(cur.Data, st.tmpSeen.Data) {
		return fmt.Errorf("%s changed since the plan; plan again", cur.Path)
	}
	switch {
	case st.tmpWant == nil:
		if err := root.Remove(TmpfilesPath); err != nil {
			return err
		}
		return root.SyncDir(filepath.Dir(TmpfilesPath))
	case st.tmpWrite:
		if err := root.MkdirAll(filepath.Dir(TmpfilesPath), 0o755); err != nil {
			return err
		}
		return root.WriteAtomic(TmpfilesPath, st.tmpWant, tmpfilesPerm)
	}
	return root.FixPerm(TmpfilesPath, tmpfilesPerm)
}

func dirList(dirs []RuntimeDir) string {
	var out []string
	for _, d := range dirs {
		out = append(out, fmt.Sprintf("%s %04o", d.Path, d.Mode))
	}
	return strings.Join(out, ", ")
}

// WatchedFiles implements agent.FileWatcher: the rules file (an edit or a
// removal is drift).
func (m *Module) WatchedFiles(env *agent.Env) []string {
	return []string{env.Path(m.b.Path), env.Path(TmpfilesPath)}
}

var _ agent.FileWatcher = (*Module)(nil)

func watchList(ws []Watch) string {
	var b strings.Builder
	for i, w := range ws {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", w.CIS, w.Path)
	}
	return b.String()
}

// ruleDiff names the watched paths added and removed.
func ruleDiff(old map[string]bool, ws []Watch) string {
	var add, del []string
	now := map[string]bool{}
	for _, w := range ws {
		now[w.Path] = true
		if !old[w.Path] {
			add = append(add, "+"+w.Path)
		}
	}
	for p := range old {
		if !now[p] {
			del = append(del, "-"+p)
		}
	}
	sortStrings(del)
	if len(add)+len(del) == 0 {
		return "same paths, file text differs"
	}
	return strings.Join(append(add, del...), " ")
}

// missingWatches are the paths of ws the kernel does not watch.
func missingWatches(loaded map[string]bool, ws []Watch) []string {
	var out []string
	for _, w := range ws {
		if !loaded[w.Path] {
			out = append(out, w.Path)
		}
	}
	return out
}
