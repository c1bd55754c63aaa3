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
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/managedfile"
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

	val       *validator
	switching // the data-root switch: switch.go
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

// fileLimit caps daemon.json as read: real ones are a few KB.
const fileLimit = managedfile.DefaultLimit

// filePerm is daemon.json's mode and owner: dockerd reads it as root, and
// tools of the docker group read it too; nobody but root writes it.
var filePerm = managedfile.RootOwned(0o644)

// readTarget reads the managed file; a missing one is not an error. Links
// and special files are refused (managedfile.Root.Read).
func (m *Module) readTarget(root *managedfile.Root) (*managedfile.File, error) {
	return root.Read(m.cfg.Path, fileLimit)
}

// planFile is Plan's daemon.json part. It reads the file and the owned-key record,
// merges, and when something would change checks the result against the
// flags docker.service gives dockerd. It does not run dockerd --validate,
// which has side effects (see validate.go); Apply does.
func (m *Module) planFile(ctx context.Context, env *agent.Env) (*agent.Plan, error) {
	log := env.Logger()
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	cur, err := m.readTarget(root)
	if err != nil {
		return nil, err
	}
	path, before, existed := cur.Path, cur.Data, cur.Exists
	doc, err := Parse(before)
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			return nil, &FileError{Path: path, Err: se}
		}
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	owned, err := loadOwnedIn(env.Root, env.StateDir, m.cfg.Path)
	if err != nil {
		// Forgetting what we own only means keys dropped from the
		// configuration stay in the file: the safe side.
		log.WithError(err).Warn("owned-key record unreadable; treating no key as written by dockward")
		owned = nil
	}
	after := Merge(doc, m.cfg.Managed, owned)
	changes := markReloads(Diff(doc, after))
	for i, c := range changes {
		if o, ok := m.cfg.Origins[c.Target]; ok && c.Action != agent.Delete && c.Detail == "" {
			changes[i].Detail = "set in " + o
		}
	}
	if len(changes) == 0 {
		// The content is right; its mode and owner must be too: a
		// group- or world-writable daemon.json lets others configure a
		// root daemon.
		if old, want, ok := managedfile.Drift(cur, filePerm); ok {
			c := agent.Change{Action: agent.Update, Target: "permissions", Old: old, New: want, Metadata: true}
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

// applyFile is Apply's daemon.json part: it validates the candidate, keeps the
// current file as last-known-good, writes atomically, then records the keys
// it owns. Any failure before the write leaves the file untouched.
func (m *Module) applyFile(ctx context.Context, env *agent.Env, plan *agent.Plan) error {
	if plan.Empty() {
		return nil
	}
	st, ok := plan.State.(*planState)
	if !ok {
		return fmt.Errorf("apply %s: plan has no docker_daemon state", m.cfg.Path)
	}
	log := env.Logger().WithField("target", m.cfg.Path)
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return err
	}
	defer root.Close()

	// Never overwrite an edit made since the plan was computed.
	cur, err := m.readTarget(root)
	if err != nil {
		return err
	}
	if cur.Exists != st.existed || !bytes.Equal(cur.Data, st.before) {
		return fmt.Errorf("write %s: the file changed since it was planned; nothing written, run again", st.path)
	}
	cleanLitter(root, m.cfg.Path, log)
	if st.fixPerms {
		return root.FixPerm(m.cfg.Path, filePerm)
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

	sd, err := managedfile.OpenStateDir(env.Root, env.StateDir, true)
	if err != nil {
		return fmt.Errorf("write %s: keep last-known-good copy: %w", st.path, err)
	}
	defer sd.Close()
	if _, err := lastKnownGood(sd).Save(cur); err != nil {
		return fmt.Errorf("write %s: keep last-known-good copy: %w", st.path, err)
	}
	// /etc/docker before docker is installed: 0755 whatever the umask,
	// dockerd and the docker group's tools read it.
	if err := root.MkdirAll(filepath.Dir(m.cfg.Path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", st.path, err)
	}
	if err := CheckCandidate(st.candidate); err != nil {
		return fmt.Errorf("write %s: %w", st.path, err)
	}
	if err := root.WriteAtomic(m.cfg.Path, st.candidate, filePerm); err != nil {
		return err
	}
	log.WithField("keys", len(plan.Changes)).Info("daemon.json written")
	// Only now: a key is ours once it is in the file. The file is written,
	// so Apply succeeded (the engine takes a failed Apply as "nothing
	// changed" and would withdraw the restart owed); a lost record only
	// means keys added now stay if later dropped from the configuration.
	if err := saveOwned(sd, m.cfg.Path, st.owned); err != nil {
		log.WithError(err).Error("daemon.json written, but the keys dockward wrote were not recorded: dropping them from the configuration later will leave them in the file")
	}
	return nil
}

var (
	_ agent.Rollbacker = (*Module)(nil)
	_ agent.Committer  = (*Module)(nil)
)

// Commit implements agent.Committer: the file as it is now, after a run in
// which nothing failed, becomes the verified last-known-good copy. It also
// removes the temp files a killed run left next to daemon.json: Commit runs
// after every successful apply, also one with nothing to do.
func (m *Module) Commit(ctx context.Context, env *agent.Env) error {
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	cleanLitter(root, m.cfg.Path, env.Logger())
	cur, err := m.readTarget(root)
	if err != nil {
		return err
	}
	sd, err := managedfile.OpenStateDir(env.Root, env.StateDir, true)
	if err != nil {
		return fmt.Errorf("commit %s: %w", cur.Path, err)
	}
	defer sd.Close()
	if err := lastKnownGood(sd).Commit(cur); err != nil {
		return fmt.Errorf("commit %s: %w", cur.Path, err)
	}
	return nil
}

// Rollback implements agent.Rollbacker: it puts back the file as it was
// before the last write (removing it if there was none) and the owned-key
// record with it.
func (m *Module) Rollback(ctx context.Context, env *agent.Env) error {
	log := env.Logger().WithField("target", m.cfg.Path)
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	path := root.Path(m.cfg.Path)
	sd, err := managedfile.OpenStateDir(env.Root, env.StateDir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("roll back %s: %w in %s", path, managedfile.ErrNoCopy, stateDir(env.StateDir))
	}
	if err != nil {
		return fmt.Errorf("roll back %s: %w", path, err)
	}
	defer sd.Close()
	data, existed, err := lastKnownGood(sd).Restore()
	if err != nil {
		return fmt.Errorf("roll back %s: %w", path, err)
	}
	if !existed {
		if err := root.Remove(m.cfg.Path); err != nil {
			return fmt.Errorf("roll back %s: %w", path, err)
		}
		if err := root.SyncDir(filepath.Dir(m.cfg.Path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("roll back %s: %w", path, err)
		}
	} else if err := root.WriteAtomic(m.cfg.Path, data, filePerm); err != nil {
		return fmt.Errorf("roll back %s: %w", path, err)
	}
	if err := restoreOwned(sd); err != nil {
		return fmt.Errorf("roll back %s: %w", path, err)
	}
	log.Info("daemon.json rolled back to last-known-good")
	return nil
}

// cleanLitter removes the temp files of killed runs next to daemon.json.
func cleanLitter(root *managedfile.Root, path string, log *logrus.Entry) {
	removed, _, err := root.CleanTemp(filepath.Dir(path))
	for _, p := range removed {
		log.WithField("file", p).Info("removed a temp file an earlier, killed run left")
	}
	if err != nil {
		log.WithError(err).Warn("could not remove what an earlier, killed run left")
	}
}

// lastKnownGood is daemon.json's copy in the state directory, kept with
// the owned-key record as it was (rollback restores both).
func lastKnownGood(sd *managedfile.Root) *managedfile.LastKnownGood {
	return &managedfile.LastKnownGood{
		State:    sd,
		Copy:     Kind.Type + "/" + lkgFile,
		Absent:   Kind.Type + "/" + lkgAbsentFile,
		Verified: Kind.Type + "/" + lkgVerifiedFile,
		Limit:    fileLimit,
		Along:    func() error { return saveOwnedCopy(sd) },
	}
}

// saveOwnedCopy keeps owned.json as it is with the last-known-good copy.
func saveOwnedCopy(sd *managedfile.Root) error {
	f, err := sd.Read(Kind.Type+"/"+ownedFile, fileLimit)
	if err != nil {
		return err
	}
	if !f.Exists {
		return sd.Remove(Kind.Type + "/" + lkgOwnedFile)
	}
	return sd.WriteAtomic(Kind.Type+"/"+lkgOwnedFile, f.Data, managedfile.RootOwned(0o600))
}

func restoreOwned(sd *managedfile.Root) error {
	prev, err := sd.Read(Kind.Type+"/"+lkgOwnedFile, fileLimit)
	if err != nil {
		return err
	}
	if !prev.Exists {
		return sd.Remove(Kind.Type + "/" + ownedFile)
	}
	return sd.WriteAtomic(Kind.Type+"/"+ownedFile, prev.Data, managedfile.RootOwned(0o600))
}

// ownedRecord is owned.json: per daemon.json path (as configured), the keys
// dockward wrote and the values it wrote.
type ownedRecord struct {
	FormatVersion string                     `json:"format_version"`
	Path          string                     `json:"path"`
	Keys          map[string]json.RawMessage `json:"keys"`
}

// loadOwned reads the owned-key record of a state directory on the live
// system (tests read it so).
func loadOwned(stateRoot, path string) (map[string]json.RawMessage, error) {
	return loadOwnedIn("", stateRoot, path)
}

// loadOwnedIn reads the owned-key record; no state directory, no record.
func loadOwnedIn(root, stateRoot, path string) (map[string]json.RawMessage, error) {
	sd, err := managedfile.OpenStateDir(root, stateRoot, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer sd.Close()
	f, err := sd.Read(Kind.Type+"/"+ownedFile, fileLimit)
	if err != nil || !f.Exists {
		return nil, err
	}
	var rec ownedRecord
	if err := json.Unmarshal(f.Data, &rec); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Path, err)
	}
	if rec.Path != path {
		// Ownership is of keys in one file; another file's keys are not ours.
		return nil, nil
	}
	return rec.Keys, nil
}

func saveOwned(sd *managedfile.Root, path string, keys map[string]json.RawMessage) error {
	if err := sd.MkdirAll(Kind.Type, 0o700); err != nil {
		return err
	}
	if keys == nil {
		keys = map[string]json.RawMessage{}
	}
	data, err := json.MarshalIndent(ownedRecord{FormatVersion: "1", Path: path, Keys: keys}, "", "  ")
	if err != nil {
		return err
	}
	return sd.WriteAtomic(Kind.Type+"/"+ownedFile, append(data, '\n'), managedfile.RootOwned(0o600))
}
