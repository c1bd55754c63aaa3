package subid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dockward/dockward/agent"
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
	// writeFile is agent.WriteFileAtomic; tests make it fail on purpose.
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
		writeFile:  agent.WriteFileAtomic,
	}
}

// ID implements agent.Module.
func (m *Module) ID() string { return Kind.Type + "." + m.want.User }

// fileState is one range file as read, and what it should become.
type fileState struct {
	name    string // "/etc/subuid", as plan shows it
	path    string // the real path (under --root)
	lkg     string // its last-known-good copy in state_dir
	data    []byte
	existed bool
	mode    os.FileMode
	out     []byte // the new content; nil when unchanged
}

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
	name := m.want.User
	passwd, err := readOptional(env.Path(passwdPath))
	if err != nil {
		return nil, nil, err
	}
	uid, userExists := lookupUID(passwd, name)
	group, err := readOptional(env.Path(groupPath))
	if err != nil {
		return nil, nil, err
	}
	st := &state{addUser: m.createUser && !userExists, groupExists: hasName(group, name)}

	owner := Owner{Name: name, UID: uid}
	var as [2]Assessment
	for i, n := range []string{subuidPath, subgidPath} {
		fl, err := readFileState(env, n, name)
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
	log := logger(env).WithField("module", m.ID())
	unlock, err := m.lockBoth(ctx, env)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, unlock()) }()

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
		if err := m.writeFile(fl.path, fl.out, fl.mode); err != nil {
			return m.undo(changed[:i], err)
		}
	}
	if st.addUser {
		log.WithField("target", "user "+m.want.User).Info("creating system user")
		if err := m.useradd(ctx, env, st.groupExists); err != nil {
			return m.undo(changed, err)
		}
	}
	m.applied = &applied{files: changed, createdUser: st.addUser}
	return nil
}

// undo puts back the files this Apply already wrote, after cause. The
// result is a plain error, not an agent.RolledBackError: the host is as it
// was before Apply (all or nothing), so the engine withdraws the restart it
// recorded as owed, which it does for failed modules only.
func (m *Module) undo(written []*fileState, cause error) error {
	if len(written) == 0 {
		return cause
	}
	names := make([]string, len(written))
	for i, fl := range written {
		names[i] = fl.path
	}
	if err := m.restore(written); err != nil {
		return fmt.Errorf("%w; putting back %s failed too: %w", cause, strings.Join(names, " and "), err)
	}
	was := " as it was"
	if len(names) > 1 {
		was = " as they were"
	}
	return fmt.Errorf("%w; put back %s%s", cause, strings.Join(names, " and "), was)
}

// restore writes back original bytes (or removes a file that did not exist).
func (m *Module) restore(files []*fileState) error {
	var errs []error
	for _, fl := range slices.Backward(files) {
		if !fl.existed {
			if err := os.Remove(fl.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove %s: %w", fl.path, err))
			}
			continue
		}
		if err := m.writeFile(fl.path, fl.data, fl.mode); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Rollback implements agent.Rollbacker: it undoes this run's Apply. The
// user goes first and the files second, the reverse of Apply, so that at no
// point a user exists without ranges; if userdel fails the files stay.
// The files come back from their last-known-good copies in state_dir.
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
	unlock, err := m.lockBoth(ctx, env)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, unlock()) }()
	restored := make([]*fileState, 0, len(a.files))
	for _, fl := range a.files {
		r := *fl
		if fl.existed {
			b, err := os.ReadFile(fl.lkg)
			if err != nil {
				return fmt.Errorf("roll back %s: read last-known-good copy: %w", fl.path, err)
			}
			r.data = b
		}
		restored = append(restored, &r)
	}
	if err := m.restore(restored); err != nil {
		return fmt.Errorf("roll back %s: %w", m.ID(), err)
	}
	m.applied = nil
	return nil
}

// lockBoth takes subuid's lock, then subgid's; the returned func releases
// them in reverse order.
func (m *Module) lockBoth(ctx context.Context, env *agent.Env) (func() error, error) {
	wait := m.LockWait
	if wait <= 0 {
		wait = defaultLockWait
	}
	lu, err := lockFile(ctx, env.Path(subuidPath), wait)
	if err != nil {
		return nil, err
	}
	lg, err := lockFile(ctx, env.Path(subgidPath), wait)
	if err != nil {
		return nil, errors.Join(err, lu.unlock())
	}
	return func() error { return errors.Join(lg.unlock(), lu.unlock()) }, nil
}

// saveLastKnownGood copies the originals of the files about to change to
// state_dir/subordinate_ids/USER/{subuid,subgid}, before anything changes.
func (m *Module) saveLastKnownGood(env *agent.Env, files []*fileState) error {
	for _, fl := range files {
		if err := os.MkdirAll(filepath.Dir(fl.lkg), 0o700); err != nil {
			return fmt.Errorf("keep last-known-good copy of %s: %w", fl.path, err)
		}
		if !fl.existed {
			// No previous file: a stale copy must not be restored later.
			if err := os.Remove(fl.lkg); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("keep last-known-good copy of %s: %w", fl.path, err)
			}
			continue
		}
		if err := m.writeFile(fl.lkg, fl.data, 0o600); err != nil {
			return fmt.Errorf("keep last-known-good copy of %s: %w", fl.path, err)
		}
	}
	return nil
}

func (m *Module) useradd(ctx context.Context, env *agent.Env, groupExists bool) error {
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
	passwd, err := readOptional(env.Path(passwdPath))
	if err != nil {
		return err
	}
	if _, ok := lookupUID(passwd, name); !ok {
		return fmt.Errorf("%s %s exited 0 but %s has no user %s", m.UserAdd, name, env.Path(passwdPath), name)
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

func readFileState(env *agent.Env, name, user string) (*fileState, error) {
	base := filepath.Base(name)
	st := &fileState{name: name, path: env.Path(name), mode: 0o644,
		lkg: filepath.Join(env.StateDir, Kind.Type, user, base)}
	b, err := os.ReadFile(st.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return st, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", st.path, err)
	}
	fi, err := os.Stat(st.path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", st.path, err)
	}
	st.data, st.existed, st.mode = b, true, fi.Mode().Perm()
	return st, nil
}

func readOptional(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
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

func logger(env *agent.Env) *logrus.Entry {
	if env.Log != nil {
		return env.Log
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}
