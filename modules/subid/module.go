package subid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/managedfile"
	"github.com/sirupsen/logrus"
)

// The files, as paths on the host; env.Path maps them under --root.
const (
	subuidPath = "/etc/subuid"
	subgidPath = "/etc/subgid"
	passwdPath = "/etc/passwd"
	groupPath  = "/etc/group"
)

// defaultLockWait matches shadow-utils' own patience (15 tries, 1 s apart).
const defaultLockWait = 15 * time.Second

// Module is a subordinate_ids block's module.
type Module struct {
	want       Want
	createUser bool

	// UserAdd and UserDel are the commands run to create the user and, on
	// rollback, to remove it again: a path or a name looked up in PATH.
	UserAdd, UserDel string
	// LockWait bounds the wait for a shadow-utils lock someone else holds.
	LockWait time.Duration
	// writeFile, when set, replaces the atomic write of the range files
	// (path as shown, under --root joined with it); tests make it fail on
	// purpose.
	writeFile func(path string, data []byte, perm os.FileMode) error

	// applied is what this run's Apply changed, for Rollback.
	applied *applied
}

// NewModule makes the module for a decoded block.
func NewModule(b *Block) *Module {
	return &Module{
		want:       Want{User: b.User, Count: b.Count, Start: b.Start},
		createUser: b.CreateUser,
		UserAdd:    "useradd",
		UserDel:    "userdel",
		LockWait:   defaultLockWait,
	}
}

// ID implements agent.Module.
func (m *Module) ID() string { return Kind.Type + "." + m.want.User }

// fileState is one range file as read, and what it should become.
type fileState struct {
	name    string // "/etc/subuid", as plan shows it
	path    string // the real path (under --root), as messages show it
	data    []byte
	existed bool
	mode    os.FileMode // kept when the file exists, newMode when created
	out     []byte      // the new content; nil when unchanged
}

// newMode is a created subuid/subgid's mode, whatever the umask: world-
// readable, as shadow-utils makes them, since unprivileged tools (newuidmap,
// rootless podman) read them. An existing file keeps its mode exactly: an
// operator's 0640 is theirs.
const newMode os.FileMode = 0o644

// fileLimit caps what is read of subuid, subgid, passwd and group.
const fileLimit = managedfile.DefaultLimit

// state is what Plan computed and Apply acts on.
type state struct {
	files       [2]*fileState
	addUser     bool
	groupExists bool // then useradd --gid NAME, since --user-group would fail
}

type applied struct {
	files       []*fileState // changed files, with their original bytes
	createdUser bool
}

// Plan implements agent.Module. It reads the files without taking their
// locks: taking one writes FILE.lock, and Plan changes nothing. Readers
// need no lock here because every writer replaces the files by rename.
func (m *Module) Plan(ctx context.Context, env *agent.Env) (*agent.Plan, error) {
	st, changes, err := m.compute(env)
	if err != nil {
		return nil, err
	}
	m.publish(env, st, len(changes) > 0)
	return &agent.Plan{Changes: changes, State: st}, nil
}

// compute reads the host and works out the changes.
func (m *Module) compute(env *agent.Env) (*state, []agent.Change, error) {
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return nil, nil, err
	}
	defer root.Close()
	name := m.want.User
	passwd, err := readInput(root, passwdPath)
	if err != nil {
		return nil, nil, err
	}
	uid, userExists := lookupUID(passwd, name)
	group, err := readInput(root, groupPath)
	if err != nil {
		return nil, nil, err
	}
	st := &state{addUser: m.createUser && !userExists, groupExists: hasName(group, name)}

	owner := Owner{Name: name, UID: uid}
	var as [2]Assessment
	for i, n := range []string{subuidPath, subgidPath} {
		fl, err := readFileState(root, n)
		if err != nil {
			return nil, nil, err
		}
		f, err := Parse(fl.path, fl.data)
		if err != nil {
			return nil, nil, fmt.Errorf("read subordinate IDs: %w; %s is left as it is", err, fl.path)
		}
		st.files[i] = fl
		as[i] = Assess(f, owner, m.want)
	}

	// Prefer the same start in both files: operators expect container
	// root to be host UID N and GID N alike (dockerd names its data root
	// /var/lib/docker/N.N), and one number makes `ls -ln` on the host
	// readable. A range one file already keeps comes first; else the lowest
	// start free in both; else each file's own first free range.
	var prefer []uint64
	for _, a := range as {
		if a.Keeper >= 0 {
			prefer = append(prefer, a.File.Lines[a.Keeper].Range.Start)
		}
	}
	if s, ok := FirstFree(append(slices.Clone(as[0].Others), as[1].Others...), m.want.Count, MinAutoStart); ok {
		prefer = append(prefer, s)
	}

	var changes []agent.Change
	for i, a := range as {
		if a.Converged() {
			continue
		}
		var r Range
		if a.Keeper < 0 {
			if r, err = a.Choose(m.want, prefer...); err != nil {
				return nil, nil, err
			}
		}
		edits := a.Edits(m.want, r)
		st.files[i].out = a.File.Render(edits)
		changes = append(changes, describe(st.files[i].name, a, edits)...)
	}
	if st.addUser {
		detail := "system user, no login shell, no home, own group (useradd --system)"
		if st.groupExists {
			detail = "system user, no login shell, no home, in the existing group " + name + " (useradd --system)"
		}
		changes = append(changes, agent.Change{Action: agent.Create, Target: "user " + name, Detail: detail})
	} else if !userExists && len(changes) > 0 {
		for i := range changes {
			changes[i].Detail = strings.TrimPrefix(changes[i].Detail+"; user "+name+" does not exist and create_user = false", "; ")
		}
	}
	return st, changes, nil
}

// describe renders a file's edits as plan changes.
func describe(name string, a Assessment, edits []Edit) []agent.Change {
	why := map[int]string{}
	for _, rm := range a.Remove {
		why[rm.Line] = rm.Why
	}
	var out []agent.Change
	for _, e := range edits {
		switch {
		case e.Line < 0:
			out = append(out, agent.Change{Action: agent.Create, Target: name, New: e.New})
		case e.New == "":
			d := why[e.Line]
			if d == "" {
				d = "the user gets one new range"
			}
			out = append(out, agent.Change{Action: agent.Delete, Target: name, Old: a.File.Text(e.Line),
				Detail: fmt.Sprintf("line %d: %s", a.File.Lines[e.Line].Num, d)})
		default:
			out = append(out, agent.Change{Action: agent.Update, Target: name, Old: a.File.Text(e.Line), New: e.New,
				Detail: fmt.Sprintf("line %d: %s", a.File.Lines[e.Line].Num, a.Why)})
		}
	}
	return out
}

// Apply implements agent.Module.
//
// Order, and why: the user and both ranges are made together or not at
// all, because a user without ranges makes dockerd refuse to start, while
// ranges without their user are inert (nothing reads them). So the files
// go first and the user last:
//
//  1. lock subuid, then subgid (shadow-utils' order), re-read both and check
//     that they still are what Plan saw;
//  2. copy both originals to state_dir (last-known-good);
//  3. write subuid; if that fails nothing changed;
//  4. write subgid; if that fails, put subuid back;
//  5. run useradd; if it fails, put both files back.
//
// A step that fails after an undo returns a plain error: nothing changed.
// A crash between 3 and 5 leaves ranges without a user, which the next run
// finishes (it plans only "+ user"). The locks are held through useradd:
// useradd --system neither reads nor locks subuid/subgid (shadow-utils adds
// subordinate IDs to system users only with -F), and holding them keeps
// other tools from building on ranges we may still have to take back.
func (m *Module) Apply(ctx context.Context, env *agent.Env, plan *agent.Plan) (err error) {
	m.applied = nil
	if plan.Empty() {
		return nil
	}
	log := env.Logger().WithField("module", m.ID())
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	unlock, err := m.lockBoth(ctx, root)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, unlock()) }()
	m.cleanLitter(root, log)

	st, changes, err := m.compute(env)
	if err != nil {
		return err
	}
	if !slices.Equal(changes, plan.Changes) {
		return fmt.Errorf("%s or %s or the user changed since plan; nothing written, plan again", env.Path(subuidPath), env.Path(subgidPath))
	}

	var changed []*fileState
	for _, fl := range st.files {
		if fl.out != nil {
			changed = append(changed, fl)
		}
	}
	if err := m.saveLastKnownGood(env, changed); err != nil {
		return err
	}
	for i, fl := range changed {
		log.WithField("target", fl.name).Info("writing subordinate ID ranges")
		if err := m.write(root, fl, fl.out); err != nil {
			return m.undo(root, changed[:i], err)
		}
	}
	if st.addUser {
		log.WithField("target", "user "+m.want.User).Info("creating system user")
		if err := m.useradd(ctx, env, root, st.groupExists); err != nil {
			return m.undo(root, changed, err)
		}
	}
	m.applied = &applied{files: changed, createdUser: st.addUser}
	return nil
}

// undo puts back the files this Apply already wrote, after cause. The
// result is a plain error, not an agent.RolledBackError: the host is as it
// was before Apply (all or nothing), so the engine withdraws the restart it
// recorded as owed, which it does for failed modules only.
func (m *Module) undo(root *managedfile.Root, written []*fileState, cause error) error {
	if len(written) == 0 {
		return cause
	}
	names := make([]string, len(written))
	for i, fl := range written {
		names[i] = fl.path
	}
	if err := m.restore(root, written); err != nil {
		return fmt.Errorf("%w; putting back %s failed too: %w", cause, strings.Join(names, " and "), err)
	}
	was := " as it was"
	if len(names) > 1 {
		was = " as they were"
	}
	return fmt.Errorf("%w; put back %s%s", cause, strings.Join(names, " and "), was)
}

// restore writes back original bytes (or removes a file that did not exist).
func (m *Module) restore(root *managedfile.Root, files []*fileState) error {
	var errs []error
	for _, fl := range slices.Backward(files) {
		if !fl.existed {
			if err := root.Remove(fl.name); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := m.write(root, fl, fl.data); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// write replaces a range file atomically, root:root with its mode.
func (m *Module) write(root *managedfile.Root, fl *fileState, data []byte) error {
	if m.writeFile != nil {
		return m.writeFile(fl.path, data, fl.mode)
	}
	return root.WriteAtomic(fl.name, data, managedfile.RootOwned(fl.mode))
}

// Rollback implements agent.Rollbacker: it undoes this run's Apply. The
// user goes first and the files second, the reverse of Apply, so that at no
// point a user exists without ranges; if userdel fails the files stay.
// The files come back from their last-known-good copies in state_dir (the
// verified ones, when a run in which nothing failed committed them).
func (m *Module) Rollback(ctx context.Context, env *agent.Env) (err error) {
	a := m.applied
	if a == nil {
		return nil
	}
	if a.createdUser {
		if err := m.userdel(ctx, env); err != nil {
			return err
		}
		a.createdUser = false
	}
	if len(a.files) == 0 {
		m.applied = nil
		return nil
	}
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	sd, err := managedfile.OpenStateDir(env.Root, env.StateDir, false)
	if err != nil {
		return fmt.Errorf("roll back %s: %w", m.ID(), err)
	}
	defer sd.Close()
	unlock, err := m.lockBoth(ctx, root)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, unlock()) }()
	restored := make([]*fileState, 0, len(a.files))
	for _, fl := range a.files {
		r := *fl
		data, existed, err := m.lastKnownGood(sd, fl.name).Restore()
		if err != nil {
			return fmt.Errorf("roll back %s: read last-known-good copy: %w", fl.path, err)
		}
		r.data, r.existed = data, existed
		restored = append(restored, &r)
	}
	if err := m.restore(root, restored); err != nil {
		return fmt.Errorf("roll back %s: %w", m.ID(), err)
	}
	m.applied = nil
	return nil
}

var (
	_ agent.Rollbacker = (*Module)(nil)
	_ agent.Committer  = (*Module)(nil)
)

// Commit implements agent.Committer: after a run in which nothing failed,
// subuid and subgid as they are become the verified last-known-good copies
// (as daemon.json's do), so that a later rollback goes back to ranges the
// host was known to run with. It also cleans what a killed run left: stale
// shadow-utils locks of dead processes and temp files of atomic writes;
// Commit runs after every successful apply, also one with nothing to do.
func (m *Module) Commit(ctx context.Context, env *agent.Env) error {
	log := env.Logger().WithField("module", m.ID())
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	m.cleanLitter(root, log)
	sd, err := managedfile.OpenStateDir(env.Root, env.StateDir, true)
	if err != nil {
		return err
	}
	defer sd.Close()
	var errs []error
	for _, name := range []string{subuidPath, subgidPath} {
		cur, err := root.Read(name, fileLimit)
		if err == nil {
			err = m.lastKnownGood(sd, name).Commit(cur)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("commit %s: %w", root.Path(name), err))
		}
	}
	return errors.Join(errs...)
}

// cleanLitter removes what an earlier, killed run left: the shadow-utils
// locks of subuid and subgid whose process is gone (a reused PID would make
// them block shadow-utils), the FILE.PID files of the lock protocol, and the
// temp files of atomic writes in /etc. Stale locks are taken and released
// by the lock protocol itself, as shadow-utils would, so that a lock someone
// takes meanwhile is never removed.
func (m *Module) cleanLitter(root *managedfile.Root, log *logrus.Entry) {
	removed, rest, err := root.CleanTemp(filepath.Dir(subuidPath))
	for _, p := range removed {
		log.WithField("file", p).Info("removed a temp file an earlier, killed run left")
	}
	if err != nil {
		log.WithError(err).Warn("could not remove what an earlier, killed run left")
	}
	for _, name := range []string{subuidPath, subgidPath} {
		if err := cleanStaleLock(root, name, rest); err != nil {
			log.WithError(err).Warn("could not remove a stale lock")
		}
	}
}

// lastKnownGood is a range file's copy in state_dir/subordinate_ids/USER.
func (m *Module) lastKnownGood(sd *managedfile.Root, name string) *managedfile.LastKnownGood {
	base := Kind.Type + "/" + m.want.User + "/" + filepath.Base(name)
	return &managedfile.LastKnownGood{State: sd, Copy: base, Absent: base + ".absent", Verified: base + ".verified", Limit: fileLimit}
}

// lockBoth takes subuid's lock, then subgid's; the returned func releases
// them in reverse order.
func (m *Module) lockBoth(ctx context.Context, root *managedfile.Root) (func() error, error) {
	wait := m.LockWait
	if wait <= 0 {
		wait = defaultLockWait
	}
	lu, err := lockFileIn(ctx, root, subuidPath, wait)
	if err != nil {
		return nil, err
	}
	lg, err := lockFileIn(ctx, root, subgidPath, wait)
	if err != nil {
		return nil, errors.Join(err, lu.unlock())
	}
	return func() error { return errors.Join(lg.unlock(), lu.unlock()) }, nil
}

// saveLastKnownGood copies the originals of the files about to change to
// state_dir/subordinate_ids/USER/{subuid,subgid}, before anything changes,
// unless verified copies are kept.
func (m *Module) saveLastKnownGood(env *agent.Env, files []*fileState) error {
	if len(files) == 0 {
		return nil
	}
	sd, err := managedfile.OpenStateDir(env.Root, env.StateDir, true)
	if err != nil {
		return fmt.Errorf("keep last-known-good copies: %w", err)
	}
	defer sd.Close()
	for _, fl := range files {
		cur := &managedfile.File{Path: fl.path, Data: fl.data, Exists: fl.existed, Mode: fl.mode}
		if _, err := m.lastKnownGood(sd, fl.name).Save(cur); err != nil {
			return fmt.Errorf("keep last-known-good copy of %s: %w", fl.path, err)
		}
	}
	return nil
}

func (m *Module) useradd(ctx context.Context, env *agent.Env, root *managedfile.Root, groupExists bool) error {
	name := m.want.User
	args := []string{"--system", "--no-create-home", "--shell", "/usr/sbin/nologin"}
	if groupExists {
		args = append(args, "--gid", name)
	} else {
		args = append(args, "--user-group")
	}
	if err := m.run(ctx, env, m.UserAdd, append(args, name)); err != nil {
		return err
	}
	// Trust the file, not the exit status: the next Plan reads it too.
	passwd, err := readInput(root, passwdPath)
	if err != nil {
		return err
	}
	if _, ok := lookupUID(passwd, name); !ok {
		return fmt.Errorf("%s %s exited 0 but %s has no user %s", m.UserAdd, name, root.Path(passwdPath), name)
	}
	return nil
}

func (m *Module) userdel(ctx context.Context, env *agent.Env) error {
	return m.run(ctx, env, m.UserDel, []string{m.want.User})
}

// run runs a shadow-utils command, with --root under --root (it chroots,
// so it edits the tree's /etc/passwd and honours the tree's locks).
func (m *Module) run(ctx context.Context, env *agent.Env, cmd string, args []string) error {
	if env.Root != "" {
		root, err := filepath.Abs(env.Root)
		if err != nil {
			return err
		}
		args = append([]string{"--root", root}, args...)
	}
	c := exec.CommandContext(ctx, cmd, args...)
	c.Env = append(os.Environ(), "LC_ALL=C")
	out, err := c.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg != "" {
			msg = ": " + msg
		}
		return fmt.Errorf("%s %s: %w%s", cmd, strings.Join(args, " "), err, msg)
	}
	return nil
}

// readFileState reads a range file: a link or anything but a regular file
// is refused, as daemon.json's are (managedfile.Root.Read).
func readFileState(root *managedfile.Root, name string) (*fileState, error) {
	f, err := root.Read(name, fileLimit)
	if err != nil {
		return nil, err
	}
	st := &fileState{name: name, path: f.Path, mode: newMode, data: f.Data, existed: f.Exists}
	if f.Exists {
		st.mode = f.Mode
	}
	return st, nil
}

// readInput reads passwd or group, which dockward only reads: regular
// files, capped, a link followed (inside --root).
func readInput(root *managedfile.Root, name string) ([]byte, error) {
	f, err := root.ReadInput(name, fileLimit)
	if err != nil {
		return nil, err
	}
	return f.Data, nil
}

// lookupUID finds name in passwd-format data and returns its UID, read
// from the file rather than through NSS so that --root sees the tree's
// users. Lines it cannot read are not its concern and are skipped.
func lookupUID(passwd []byte, name string) (string, bool) {
	for line := range bytes.Lines(passwd) {
		f := strings.SplitN(strings.TrimRight(string(line), "\n"), ":", 4)
		if len(f) < 3 || f[0] != name {
			continue
		}
		n, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return "", true
		}
		return strconv.FormatUint(n, 10), true
	}
	return "", false
}

// hasName reports whether a passwd- or group-format file has an entry name.
func hasName(data []byte, name string) bool {
	for line := range bytes.Lines(data) {
		if n, _, ok := bytes.Cut(line, []byte(":")); ok && string(n) == name {
			return true
		}
	}
	return false
}
