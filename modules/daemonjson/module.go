package daemonjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/sirupsen/logrus"
)

// Module is the docker_daemon module: Plan reads the file and computes the
// merged one, Apply checks it (unit flags, dockerd --validate) and writes it.
type Module struct {
	cfg *Block
	// Dockerd is the dockerd binary run for --version and --validate: a
	// path, or a name looked up in PATH.
	Dockerd string
	// Units reads the unit that starts dockerd; nil means systemd over the
	// system bus.
	Units UnitReader
	// Unit is the systemd service that starts dockerd.
	Unit string
	// ReadEnvFile reads the unit's EnvironmentFiles; nil means os.ReadFile.
	ReadEnvFile func(string) ([]byte, error)

	val *validator
}

// New makes the module for a decoded block.
func New(b *Block) *Module {
	return &Module{cfg: b, Dockerd: "dockerd", Unit: "docker.service"}
}

// ID implements agent.Module.
func (m *Module) ID() string { return Kind.Type }

// The module's files in env.StateDir/docker_daemon.
const (
	ownedFile     = "owned.json"                 // keys dockward wrote, with the values it wrote
	lkgFile       = "last-known-good.json"       // daemon.json before the last write
	lkgAbsentFile = "last-known-good.absent"     // there was no daemon.json before the last write
	lkgOwnedFile  = "owned.last-known-good.json" // owned.json before the last write
	// lkgVerifiedFile marks the last-known-good copy as one a fully
	// successful run left (docker verified running with it, when a service
	// restarts on docker_daemon). Such a copy is not replaced by the file
	// found before a write, which may be a bad hand edit being corrected.
	lkgVerifiedFile = "last-known-good.verified"
)

// unitTimeout bounds the D-Bus read of the unit.
const unitTimeout = 10 * time.Second

// planState is what Apply needs from Plan.
type planState struct {
	path      string // on disk (joined with --root)
	before    []byte // the file as Plan read it
	existed   bool
	candidate []byte
	owned     map[string]json.RawMessage // the record to keep after writing
	fixPerms  bool                       // only mode/owner differ: chmod/chown, no write
	unitArgs  []string                   // dockerd's arguments from the unit, expanded
}

// FileError is an existing daemon.json that is not a JSON object. dockward
// never overwrites it: the operator's file is left byte for byte.
type FileError struct {
	Path string
	Err  *SyntaxError
}

func (e *FileError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s (not valid JSON; left as it is, fix it and run again)", e.Path, e.Err.Line, e.Err.Column, e.Err.Msg)
}

func (e *FileError) Unwrap() error { return e.Err }

func logOf(env *agent.Env) *logrus.Entry {
	if env.Log != nil {
		return env.Log.WithField("module", Kind.Type)
	}
	return logrus.NewEntry(logrus.StandardLogger()).WithField("module", Kind.Type)
}

// readTarget reads the managed file; a missing one is not an error.
func readTarget(path string) (data []byte, existed bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		// The atomic write renames over the path and would replace the
		// link with a file, silently detaching it from its target.
		target, _ := os.Readlink(path)
		return nil, false, fmt.Errorf("read %s: it is a symbolic link to %s; set path to the file itself", path, target)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("read %s: not a regular file", path)
	}
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	return data, true, nil
}

// Plan implements agent.Module. It reads the file and the owned-key record,
// merges, and when something would change checks the result against the
// flags docker.service gives dockerd. It does not run dockerd --validate,
// which has side effects (see validate.go); Apply does.
func (m *Module) Plan(ctx context.Context, env *agent.Env) (*agent.Plan, error) {
	log := logOf(env)
	path := env.Path(m.cfg.Path)
	before, existed, err := readTarget(path)
	if err != nil {
		return nil, err
	}
	doc, err := Parse(before)
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			return nil, &FileError{Path: path, Err: se}
		}
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	owned, err := loadOwned(env.StateDir, m.cfg.Path)
	if err != nil {
		// Forgetting what we own only means keys dropped from the
		// configuration stay in the file: the safe side.
		log.WithError(err).Warn("owned-key record unreadable; treating no key as written by dockward")
		owned = nil
	}
	after := Merge(doc, m.cfg.Managed, owned)
	changes := markReloads(Diff(doc, after))
	if len(changes) == 0 {
		// The content is right; its mode and owner must be too: a
		// group- or world-writable daemon.json lets others configure a
		// root daemon.
		if c, ok := permissionDrift(path, existed); ok {
			return &agent.Plan{Changes: []agent.Change{c}, State: &planState{path: path, before: before, existed: existed, fixPerms: true}}, nil
		}
		return &agent.Plan{}, nil
	}
	if !existed {
		changes[0].Detail = "creates " + m.cfg.Path
	}
	candidate := Render(after)
	if err := CheckCandidate(candidate); err != nil {
		return nil, fmt.Errorf("plan %s: %w", path, err)
	}
	st := &planState{
		path: path, before: before, existed: existed,
		candidate: candidate,
		owned:     NextOwned(doc, m.cfg.Managed, owned),
	}
	if !env.Offline() {
		args, err := m.unitArgs(ctx, log)
		if err != nil {
			return nil, fmt.Errorf("check %s against %s: %w", m.cfg.Path, m.Unit, err)
		}
		if err := m.preflight(after, args); err != nil {
			return nil, err
		}
		st.unitArgs = args
	}
	return &agent.Plan{Changes: changes, State: st}, nil
}

// unitArgs reads dockerd's arguments from the unit. No system bus (no
// systemd) or no unit (docker not installed yet) means no flags.
func (m *Module) unitArgs(ctx context.Context, log *logrus.Entry) ([]string, error) {
	units := m.Units
	if units == nil {
		units = SystemdUnits{}
	}
	ctx, cancel := context.WithTimeout(ctx, unitTimeout)
	defer cancel()
	ue, err := units.ReadUnit(ctx, m.Unit)
	switch {
	case errors.Is(err, errNoBus):
		log.Debug("no system bus: no unit flags to check against")
		return nil, nil
	case errors.Is(err, ErrNoUnit):
		log.WithField("unit", m.Unit).Debug("unit not found: no unit flags to check against")
		return nil, nil
	case err != nil:
		return nil, err
	}
	readFile := m.ReadEnvFile
	if readFile == nil {
		readFile = os.ReadFile
	}
	return DockerdArgs(ue, readFile)
}

// preflight refuses a candidate that dockerd would refuse at start because
// of the unit's flags.
func (m *Module) preflight(candidate *Document, args []string) error {
	flags := Flags(args)
	if cf, ok := configFileFlag(flags); ok && filepath.Clean(cf) != m.cfg.Path {
		return fmt.Errorf("%s starts dockerd with --config-file %s, so dockerd does not read %s; set path = %q", m.Unit, cf, m.cfg.Path, cf)
	}
	if cs := Conflicts(candidate, flags); len(cs) > 0 {
		return &ConflictError{Unit: m.Unit, Path: m.cfg.Path, Conflicts: cs}
	}
	return nil
}

// Apply implements agent.Module: it validates the candidate, keeps the
// current file as last-known-good, writes atomically, then records the keys
// it owns. Any failure before the write leaves the file untouched.
func (m *Module) Apply(ctx context.Context, env *agent.Env, plan *agent.Plan) error {
	if plan.Empty() {
		return nil
	}
	st, ok := plan.State.(*planState)
	if !ok {
		return fmt.Errorf("apply %s: plan has no docker_daemon state", m.cfg.Path)
	}
	log := logOf(env).WithField("target", m.cfg.Path)

	// Never overwrite an edit made since the plan was computed.
	now, existed, err := readTarget(st.path)
	if err != nil {
		return err
	}
	if existed != st.existed || !bytes.Equal(now, st.before) {
		return fmt.Errorf("write %s: the file changed since it was planned; nothing written, run again", st.path)
	}
	if st.fixPerms {
		return fixPermissions(st.path)
	}

	if m.cfg.Validate && !env.Offline() {
		if m.val == nil {
			m.val = &validator{bin: m.Dockerd}
		}
		skipped, err := m.val.validate(ctx, stateDir(env.StateDir), m.cfg.Path, st.candidate, st.unitArgs)
		if err != nil {
			return err
		}
		if skipped != "" {
			log.WithField("reason", skipped).Info("dockerd --validate skipped")
		}
	}

	if err := saveLastKnownGood(env.StateDir, st); err != nil {
		return fmt.Errorf("write %s: keep last-known-good copy: %w", st.path, err)
	}
	if err := makeParent(st.path); err != nil {
		return fmt.Errorf("write %s: %w", st.path, err)
	}
	if err := CheckCandidate(st.candidate); err != nil {
		return fmt.Errorf("write %s: %w", st.path, err)
	}
	if err := agent.WriteFileAtomic(st.path, st.candidate, 0o644); err != nil {
		return err
	}
	log.WithField("keys", len(plan.Changes)).Info("daemon.json written")
	// Only now: a key is ours once it is in the file. The file is written,
	// so Apply succeeded (the engine takes a failed Apply as "nothing
	// changed" and would withdraw the restart owed); a lost record only
	// means keys added now stay if later dropped from the configuration.
	if err := saveOwned(env.StateDir, m.cfg.Path, st.owned); err != nil {
		log.WithError(err).Error("daemon.json written, but the keys dockward wrote were not recorded: dropping them from the configuration later will leave them in the file")
	}
	return nil
}

// makeParent creates the file's directory (/etc/docker before docker is
// installed) as 0755 whatever the umask: dockerd and the docker group's
// tools read it.
func makeParent(path string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

var (
	_ agent.Rollbacker = (*Module)(nil)
	_ agent.Committer  = (*Module)(nil)
)

// Commit implements agent.Committer: the file as it is now, after a run in
// which nothing failed, becomes the verified last-known-good copy.
func (m *Module) Commit(ctx context.Context, env *agent.Env) error {
	path := env.Path(m.cfg.Path)
	data, existed, err := readTarget(path)
	if err != nil {
		return err
	}
	st := &planState{path: path, before: data, existed: existed}
	dir := stateDir(env.StateDir)
	if _, err := os.Stat(filepath.Join(dir, lkgVerifiedFile)); err == nil {
		// Already committed this content: nothing to write (no-op runs stay cheap).
		lkg, lerr := os.ReadFile(filepath.Join(dir, lkgFile))
		_, aerr := os.Stat(filepath.Join(dir, lkgAbsentFile))
		if (existed && lerr == nil && bytes.Equal(lkg, data)) || (!existed && aerr == nil) {
			return nil
		}
	}
	if err := os.Remove(filepath.Join(dir, lkgVerifiedFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("commit %s: %w", path, err)
	}
	if err := saveLastKnownGood(env.StateDir, st); err != nil {
		return fmt.Errorf("commit %s: %w", path, err)
	}
	if err := agent.WriteFileAtomic(filepath.Join(dir, lkgVerifiedFile), []byte("the last-known-good copy is from a run in which nothing failed\n"), 0o600); err != nil {
		return fmt.Errorf("commit %s: %w", path, err)
	}
	return nil
}

// Rollback implements agent.Rollbacker: it puts back the file as it was
// before the last write (removing it if there was none) and the owned-key
// record with it.
func (m *Module) Rollback(ctx context.Context, env *agent.Env) error {
	log := logOf(env).WithField("target", m.cfg.Path)
	path := env.Path(m.cfg.Path)
	dir := stateDir(env.StateDir)
	if _, err := os.Stat(filepath.Join(dir, lkgAbsentFile)); err == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("roll back %s: remove: %w", path, err)
		}
		if err := agent.SyncDir(filepath.Dir(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("roll back %s: %w", path, err)
		}
	} else {
		lkg, err := os.ReadFile(filepath.Join(dir, lkgFile))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("roll back %s: no last-known-good copy in %s", path, dir)
		}
		if err != nil {
			return fmt.Errorf("roll back %s: %w", path, err)
		}
		if err := agent.WriteFileAtomic(path, lkg, 0o644); err != nil {
			return fmt.Errorf("roll back %s: %w", path, err)
		}
	}
	if err := restoreOwned(env.StateDir); err != nil {
		return fmt.Errorf("roll back %s: %w", path, err)
	}
	log.Info("daemon.json rolled back to last-known-good")
	return nil
}

// saveLastKnownGood keeps the file as it is before a write. The other form
// is removed first: after a crash in between there is no copy (Rollback
// says so) rather than a stale one.
func saveLastKnownGood(stateRoot string, st *planState) error {
	dir := stateDir(stateRoot)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, lkgVerifiedFile)); err == nil {
		return nil // keep the verified copy
	}
	remove := func(name string) error {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if st.existed {
		if err := remove(lkgAbsentFile); err != nil {
			return err
		}
		if err := agent.WriteFileAtomic(filepath.Join(dir, lkgFile), st.before, 0o600); err != nil {
			return err
		}
	} else {
		if err := remove(lkgFile); err != nil {
			return err
		}
		if err := agent.WriteFileAtomic(filepath.Join(dir, lkgAbsentFile), []byte("no daemon.json before dockward wrote it\n"), 0o600); err != nil {
			return err
		}
	}
	owned, err := os.ReadFile(filepath.Join(dir, ownedFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return remove(lkgOwnedFile)
	case err != nil:
		return err
	}
	return agent.WriteFileAtomic(filepath.Join(dir, lkgOwnedFile), owned, 0o600)
}

func restoreOwned(stateRoot string) error {
	dir := stateDir(stateRoot)
	prev, err := os.ReadFile(filepath.Join(dir, lkgOwnedFile))
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Remove(filepath.Join(dir, ownedFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	return agent.WriteFileAtomic(filepath.Join(dir, ownedFile), prev, 0o600)
}

// ownedRecord is owned.json: per daemon.json path (as configured), the keys
// dockward wrote and the values it wrote.
type ownedRecord struct {
	FormatVersion string                     `json:"format_version"`
	Path          string                     `json:"path"`
	Keys          map[string]json.RawMessage `json:"keys"`
}

func loadOwned(stateRoot, path string) (map[string]json.RawMessage, error) {
	p := filepath.Join(stateDir(stateRoot), ownedFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var rec ownedRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if rec.Path != path {
		// Ownership is of keys in one file; another file's keys are not ours.
		return nil, nil
	}
	return rec.Keys, nil
}

func saveOwned(stateRoot, path string, keys map[string]json.RawMessage) error {
	dir := stateDir(stateRoot)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if keys == nil {
		keys = map[string]json.RawMessage{}
	}
	data, err := json.MarshalIndent(ownedRecord{FormatVersion: "1", Path: path, Keys: keys}, "", "  ")
	if err != nil {
		return err
	}
	return agent.WriteFileAtomic(filepath.Join(dir, ownedFile), append(data, '\n'), 0o600)
}

// wantMode is daemon.json's mode: dockerd reads it as root, and tools of
// the docker group read it too; nobody but root writes it.
const wantMode fs.FileMode = 0o644

// permissionDrift reports a daemon.json whose mode is not 0644 or (when we
// run as root and could fix it) whose owner is not root:root.
func permissionDrift(path string, existed bool) (agent.Change, bool) {
	if !existed {
		return agent.Change{}, false
	}
	fi, err := os.Stat(path)
	if err != nil {
		return agent.Change{}, false
	}
	var old, want []string
	if fi.Mode().Perm() != wantMode {
		old = append(old, fmt.Sprintf("mode %04o", fi.Mode().Perm()))
		want = append(want, fmt.Sprintf("mode %04o", wantMode))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && (st.Uid != 0 || st.Gid != 0) {
		old = append(old, fmt.Sprintf("owner %d:%d", st.Uid, st.Gid))
		want = append(want, "owner 0:0")
	}
	if len(old) == 0 {
		return agent.Change{}, false
	}
	return agent.Change{Action: agent.Update, Target: "permissions", Old: strings.Join(old, ", "), New: strings.Join(want, ", "), Metadata: true}, true
}

// fixPermissions sets daemon.json's mode and owner in place.
func fixPermissions(path string) error {
	if err := os.Chmod(path, wantMode); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 0, 0); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	return nil
}
