package dockerfiles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/managedfile"
	"github.com/dockward/dockward/modules/internal/systemd"
	"golang.org/x/sys/unix"
)

// Units names the file systemd loaded a unit from ("" when it does not
// know the unit, or there is no systemd to ask).
type Units interface {
	FragmentPath(ctx context.Context, unit string) (string, error)
}

// Module converges the owner and mode of Docker's files.
type Module struct {
	b     *Block
	units Units // nil: systemd over D-Bus (none under --root)
}

// New makes the module for a decoded block (the registry's constructor).
func New(b *Block) *Module { return &Module{b: b} }

// ID implements agent.Module.
func (m *Module) ID() string { return m.b.ID() }

// File is one file found with what it may be at most.
type File struct {
	CIS, What, Path string
	Spec            Spec
}

// fix is one correction Apply makes.
type fix struct {
	path     string
	dev, ino uint64 // the file Plan saw: Apply refuses another
	socket   bool
	mode     fs.FileMode
	uid, gid int
	chown    bool
}

type systemdUnits struct{ conn *systemd.Conn }

func (s systemdUnits) FragmentPath(ctx context.Context, unit string) (string, error) {
	if s.conn == nil {
		return "", nil
	}
	st, err := s.conn.State(ctx, unit)
	if err != nil {
		return "", err
	}
	return st.FragmentPath, nil
}

func (m *Module) host(env *agent.Env) (Units, func()) {
	if m.units != nil {
		return m.units, func() {}
	}
	if env.Offline() {
		return systemdUnits{}, func() {}
	}
	if os.Getenv("DBUS_SYSTEM_BUS_ADDRESS") == "" {
		if _, err := os.Stat("/run/dbus/system_bus_socket"); err != nil {
			return systemdUnits{}, func() {}
		}
	}
	conn := systemd.New(systemd.DialSystem)
	return systemdUnits{conn}, conn.Close
}

// Resolve lists the files of the table (and the block's) that exist on the
// host, each once, in the table's order, then the block's own files by path.
func Resolve(ctx context.Context, root *managedfile.Root, units Units, b *Block) ([]File, error) {
	var out []File
	seen := map[string]bool{}
	add := func(cis, what, p string, spec Spec) error {
		p = filepath.Clean(p)
		if seen[p] {
			return nil
		}
		if _, err := root.Lstat(p); errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		} else if err != nil {
			return fmt.Errorf("%s (%s %s): %w", root.Path(p), cis, what, err)
		}
		seen[p] = true
		if s, ok := b.Files[p]; ok {
			spec = s
		}
		out = append(out, File{CIS: cis, What: what, Path: p, Spec: spec})
		return nil
	}
	var tls map[string]any
	for _, e := range table {
		var paths []string
		switch {
		case e.Path != "":
			paths = []string{e.Path}
		case e.Unit != "":
			fp, err := units.FragmentPath(ctx, e.Unit)
			if err != nil {
				return nil, fmt.Errorf("find %s's unit file: %w", e.Unit, err)
			}
			if fp != "" {
				paths = append(paths, fp)
			}
			for _, d := range unitDirs {
				paths = append(paths, filepath.Join(d, e.Unit))
			}
		case e.TLS != "":
			if tls == nil {
				var err error
				if tls, err = readDaemonJSON(root); err != nil {
					return nil, err
				}
			}
			if s, ok := tls[e.TLS].(string); ok && filepath.IsAbs(s) {
				paths = []string{s}
			}
		case e.Tree != "":
			var err error
			if paths, err = regularFiles(root, e.Tree); err != nil {
				return nil, err
			}
		}
		for _, p := range paths {
			if err := add(e.CIS, e.What, p, e.Spec); err != nil {
				return nil, err
			}
		}
	}
	var own []string
	for p := range b.Files {
		own = append(own, p)
	}
	sort.Strings(own)
	for _, p := range own {
		if err := add("", "declared", p, b.Files[p]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readDaemonJSON reads the keys of daemon.json; a missing file has none.
// A file dockerd could not read either is an error here too.
func readDaemonJSON(root *managedfile.Root) (map[string]any, error) {
	f, err := root.ReadInput(daemonJSON, managedfile.DefaultLimit)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if !f.Exists || len(strings.TrimSpace(string(f.Data))) == 0 {
		return out, nil
	}
	if err := json.Unmarshal(f.Data, &out); err != nil {
		return nil, fmt.Errorf("read the TLS file names in %s: %w", f.Path, err)
	}
	return out, nil
}

// regularFiles lists the regular files below dir, sorted; links are not
// followed.
func regularFiles(root *managedfile.Root, dir string) ([]string, error) {
	entries, err := root.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root.Path(dir), err)
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir():
			sub, err := regularFiles(root, p)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case e.Type().IsRegular():
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Plan reads each file's mode and owner. A mode with bits the spec does
// not allow is narrowed (never widened: a stricter file stays); a wrong
// owner or group is changed (only when dockward runs as root). A missing
// file is nobody's to create here. Changes are Metadata: nothing reads a
// mode, no restart is owed.
func (m *Module) Plan(ctx context.Context, env *agent.Env) (*agent.Plan, error) {
	units, done := m.host(env)
	defer done()
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	files, err := Resolve(ctx, root, units, m.b)
	if err != nil {
		return nil, err
	}
	ids, err := readIDs(root)
	if err != nil {
		return nil, err
	}
	asRoot := os.Geteuid() == 0
	var changes []agent.Change
	var fixes []fix
	for _, f := range files {
		fi, err := root.Lstat(f.Path)
		if err != nil {
			return nil, fmt.Errorf("read the mode of %s: %w", root.Path(f.Path), err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			// A link's own mode means nothing; its target is another path,
			// which a declared entry can name.
			env.Logger().Warnf("%s is a symbolic link: its target is not followed", f.Path)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		have := fi.Mode().Perm()
		fx := fix{path: f.Path, dev: uint64(st.Dev), ino: st.Ino, socket: fi.Mode()&fs.ModeSocket != 0,
			mode: have & f.Spec.Mode.Perm(), uid: int(st.Uid), gid: int(st.Gid)}
		var old, want []string
		if fx.mode != have {
			old = append(old, fmt.Sprintf("mode %04o", have))
			want = append(want, fmt.Sprintf("mode %04o", fx.mode))
		}
		if asRoot {
			uid, ok1 := ids.users[f.Spec.Owner]
			gid, ok2 := ids.groups[f.Spec.Group]
			if !ok1 || !ok2 {
				// docker.sock's group docker is made by Docker's package; a
				// host without it keeps the owner, and the mode is still
				// narrowed.
				env.Logger().Warnf("%s (%s): owner %s:%s: no such user or group on this host; owner left as it is", f.Path, f.CIS, f.Spec.Owner, f.Spec.Group)
			} else if uid != fx.uid || gid != fx.gid {
				old = append(old, fmt.Sprintf("owner %s:%s", ids.userName(fx.uid), ids.groupName(fx.gid)))
				want = append(want, fmt.Sprintf("owner %s:%s", f.Spec.Owner, f.Spec.Group))
				fx.uid, fx.gid, fx.chown = uid, gid, true
			}
		}
		if len(old) == 0 {
			continue
		}
		if fx.socket && env.Offline() {
			continue // a socket in an image tree is nobody's; --root is for files
		}
		detail := f.CIS + " " + f.What
		if f.CIS == "" {
			detail = "declared in docker_files"
		}
		fixes = append(fixes, fx)
		changes = append(changes, agent.Change{Action: agent.Update, Target: f.Path,
			Old: strings.Join(old, ", "), New: strings.Join(want, ", "), Detail: detail, Metadata: true})
	}
	return &agent.Plan{Changes: changes, State: fixes}, nil
}

// Apply corrects each file in place. Each file is a step of its own: a
// failure part-way leaves the files before it corrected, which is safe,
// and the next plan shows the rest.
func (m *Module) Apply(ctx context.Context, env *agent.Env, plan *agent.Plan) error {
	fixes, _ := plan.State.([]fix)
	root, err := managedfile.Open(env.Root)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, f := range fixes {
		fi, err := root.Lstat(f.path)
		if err != nil {
			return fmt.Errorf("chmod %s: %w", root.Path(f.path), err)
		}
		if st := fi.Sys().(*syscall.Stat_t); uint64(st.Dev) != f.dev || st.Ino != f.ino {
			return fmt.Errorf("%s was replaced since the plan; plan again", root.Path(f.path))
		}
		if f.socket {
			err = fixSocket(f)
		} else {
			p := managedfile.Perm{Mode: f.mode, UID: f.uid, GID: f.gid}
			if !f.chown {
				p.UID, p.GID = int(fi.Sys().(*syscall.Stat_t).Uid), int(fi.Sys().(*syscall.Stat_t).Gid)
			}
			err = root.FixPerm(f.path, p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// fixSocket sets a socket's mode and owner on the live system. A socket
// cannot be opened for FixPerm's descriptor; an O_PATH descriptor, checked
// to be the file Plan saw, is changed through /proc/self/fd (chmod) and
// AT_EMPTY_PATH (chown), so a link put in its place is never followed.
func fixSocket(f fix) error {
	fd, err := unix.Open(f.path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("chmod %s: %w", f.path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("chmod %s: %w", f.path, err)
	}
	if uint64(st.Dev) != f.dev || st.Ino != f.ino || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s was replaced since the plan; plan again", f.path)
	}
	if f.chown {
		if err := unix.Fchownat(fd, "", f.uid, f.gid, unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("chown %s: %w", f.path, err)
		}
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), uint32(f.mode.Perm()), 0); err != nil {
		return fmt.Errorf("chmod %s: %w", f.path, err)
	}
	return nil
}

// ids maps the host's user and group names to IDs and back.
type ids struct {
	users, groups map[string]int
	uname, gname  map[int]string
}

func (i ids) userName(id int) string {
	if n, ok := i.uname[id]; ok {
		return n
	}
	return strconv.Itoa(id)
}

func (i ids) groupName(id int) string {
	if n, ok := i.gname[id]; ok {
		return n
	}
	return strconv.Itoa(id)
}

func readIDs(root *managedfile.Root) (ids, error) {
	out := ids{users: map[string]int{}, groups: map[string]int{}, uname: map[int]string{}, gname: map[int]string{}}
	for _, src := range []struct {
		path  string
		names map[string]int
		back  map[int]string
	}{{"/etc/passwd", out.users, out.uname}, {"/etc/group", out.groups, out.gname}} {
		f, err := root.ReadInput(src.path, managedfile.DefaultLimit)
		if err != nil {
			return out, err
		}
		parseIDs(f.Data, src.names, src.back)
	}
	// root is root even in a tree without /etc/passwd.
	out.users["root"], out.groups["root"] = 0, 0
	return out, nil
}

// parseIDs reads passwd or group lines (NAME:x:ID:...) into names (the
// first line of a name wins, as getpwnam's does) and back (the first name
// of an ID).
func parseIDs(data []byte, names map[string]int, back map[int]string) {
	for line := range strings.Lines(string(data)) {
		fields := strings.Split(strings.TrimSpace(line), ":")
		if len(fields) < 3 || fields[0] == "" {
			continue
		}
		id, err := strconv.Atoi(fields[2])
		if err != nil || id < 0 {
			continue
		}
		if _, dup := names[fields[0]]; !dup {
			names[fields[0]] = id
		}
		if _, dup := back[id]; !dup {
			back[id] = fields[0]
		}
	}
}
