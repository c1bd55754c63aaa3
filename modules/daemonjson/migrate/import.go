package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/google/renameio/v2"
	"github.com/moby/moby/client"
)

// Status is what happened to one object.
type Status string

const (
	// Moved: made in the new root by this run.
	Moved Status = "moved"
	// Present: the new root already had it (an earlier run moved it, or
	// the root had one of that name of its own); left as it is.
	Present Status = "present"
	// Skipped: not moved, for the Reason given (a blocker, or an object it
	// needs did not move).
	Skipped Status = "skipped"
	// Failed: trying to move it failed with Error.
	Failed Status = "failed"
)

// Outcome is what Import did with one object.
type Outcome struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
	// Detail says more of a move: a volume's copy counts, a container
	// started or not.
	Detail string `json:"detail,omitempty"`
}

func (o Outcome) String() string {
	s := fmt.Sprintf("%s %s: %s", o.Kind, o.Name, o.Status)
	for _, x := range []string{o.Reason, o.Error, o.Detail} {
		if x != "" {
			s += " (" + x + ")"
		}
	}
	return s
}

// Result is what Import did, one Outcome per object of the inventory,
// images first, then networks, volumes and containers.
type Result struct {
	// Root is the data root the objects moved into.
	Root     string    `json:"root"`
	Outcomes []Outcome `json:"outcomes"`
}

// Count returns how many outcomes have the status.
func (r *Result) Count(s Status) int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Status == s {
			n++
		}
	}
	return n
}

// Find returns the outcome for an object.
func (r *Result) Find(kind, name string) (Outcome, bool) {
	for _, o := range r.Outcomes {
		if o.Kind == kind && o.Name == name {
			return o, true
		}
	}
	return Outcome{}, false
}

// Err joins the failures, or is nil when nothing failed.
func (r *Result) Err() error {
	var errs []error
	for _, o := range r.Outcomes {
		if o.Status == Failed {
			errs = append(errs, fmt.Errorf("%s %s: %s", o.Kind, o.Name, o.Error))
		}
	}
	return errors.Join(errs...)
}

// importState is what Import remembers in dir between runs: the volumes
// whose copy it began and finished, per target root, so that a run after
// an interruption copies again what it had begun and recognises what it
// finished, without taking a volume the new root had of its own for one
// of ours.
type importState struct {
	Began    map[string]bool `json:"began"`
	Finished map[string]bool `json:"finished"`
}

const stateFile = "import-state.json"

// Import moves what Export saved in dir into the daemon now running, after
// the switch, on its new data root: images loaded from their archives
// (streamed), user-defined networks created with the same configuration,
// volumes created and their data copied from the old root with ownership
// shifted by o.Shift, containers created from their configuration and the
// ones that ran started. What inv.Blockers(o.Shift) names is skipped with
// its reason, as is whatever needs an object that did not move.
//
// The old root is only read. Import goes on past a failed object, and the
// Result says per object what happened (also written to dir/result.json);
// the error joins the failures. Run again, it recognises what is already
// there and completes the rest.
func Import(ctx context.Context, e Engine, dir string, o Options) (*Result, error) {
	inv, err := ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if err := o.Shift.From.Validate(); err != nil {
		return nil, fmt.Errorf("import: the old root's ID map: %w", err)
	}
	if err := o.Shift.To.Validate(); err != nil {
		return nil, fmt.Errorf("import: the new root's ID map: %w", err)
	}
	info, err := e.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("import: docker info: %w", err)
	}
	res := &Result{Root: info.Info.DockerRootDir}
	if info.Info.DockerRootDir == inv.DockerRootDir {
		return res, fmt.Errorf("import: the daemon still runs on %s, the root the inventory was read from; import after the switch", inv.DockerRootDir)
	}
	im := &importer{e: e, o: o, dir: dir, inv: inv, res: res, root: info.Info.DockerRootDir, blocked: map[string][]string{}}
	if err := im.loadState(); err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	for _, b := range inv.Blockers(o.Shift) {
		k := b.Kind + "/" + b.Name
		im.blocked[k] = append(im.blocked[k], b.Reason)
	}
	steps := []func(context.Context) error{im.images, im.networks, im.volumes, im.containers}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			im.writeResult()
			return res, fmt.Errorf("import: %w", err)
		}
	}
	im.writeResult()
	if err := res.Err(); err != nil {
		return res, fmt.Errorf("import into %s: %w", res.Root, err)
	}
	return res, nil
}

type importer struct {
	e       Engine
	o       Options
	dir     string
	inv     *Inventory
	res     *Result
	root    string
	blocked map[string][]string // kind/name -> reasons
	state   importState
	status  map[string]Status // kind/name -> outcome so far
}

func (im *importer) add(out Outcome) {
	im.res.Outcomes = append(im.res.Outcomes, out)
	if im.status == nil {
		im.status = map[string]Status{}
	}
	im.status[out.Kind+"/"+out.Name] = out.Status
	switch out.Status {
	case Failed:
		im.o.logf("migrate: %s %s failed: %s", out.Kind, out.Name, out.Error)
	default:
		im.o.logf("migrate: %s", out)
	}
	im.writeResult()
}

// ok reports whether an object is in the new root (moved or present).
func (im *importer) ok(kind, name string) bool {
	s := im.status[kind+"/"+name]
	return s == Moved || s == Present
}

func (im *importer) skipIfBlocked(kind, name string) bool {
	if rs := im.blocked[kind+"/"+name]; len(rs) > 0 {
		im.add(Outcome{Kind: kind, Name: name, Status: Skipped, Reason: strings.Join(rs, "; ")})
		return true
	}
	return false
}

func (im *importer) writeResult() {
	b, err := json.MarshalIndent(im.res, "", "  ")
	if err == nil {
		err = renameio.WriteFile(filepath.Join(im.dir, ResultFile), append(b, '\n'), 0o600)
	}
	if err != nil {
		im.o.logf("migrate: write %s: %v", filepath.Join(im.dir, ResultFile), err)
	}
}

func (im *importer) loadState() error {
	im.state = importState{Began: map[string]bool{}, Finished: map[string]bool{}}
	b, err := os.ReadFile(filepath.Join(im.dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &im.state); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(im.dir, stateFile), err)
	}
	if im.state.Began == nil {
		im.state.Began = map[string]bool{}
	}
	if im.state.Finished == nil {
		im.state.Finished = map[string]bool{}
	}
	return nil
}

func (im *importer) saveState() error {
	b, err := json.Marshal(im.state)
	if err != nil {
		return err
	}
	return renameio.WriteFile(filepath.Join(im.dir, stateFile), b, 0o600)
}

func (im *importer) images(ctx context.Context) error {
	for _, img := range im.inv.Images {
		if err := ctx.Err(); err != nil {
			return err
		}
		if im.skipIfBlocked(KindImage, img.Ref()) {
			continue
		}
		out := Outcome{Kind: KindImage, Name: img.Ref(), Status: Moved}
		if have, err := im.e.ImageInspect(ctx, img.Ref()); err == nil {
			if have.ID == img.ID {
				im.add(Outcome{Kind: KindImage, Name: img.Ref(), Status: Present})
				continue
			}
			// Loading moves the tag; the operator should know which
			// image of the new root lost it.
			out.Detail = fmt.Sprintf("%s named %s in the new root before; it names the moved image now", img.Ref(), shortID(have.ID))
		}
		if err := im.loadImage(ctx, img); err != nil {
			im.add(Outcome{Kind: KindImage, Name: img.Ref(), Status: Failed, Error: err.Error()})
			continue
		}
		im.add(out)
	}
	return nil
}

func (im *importer) loadImage(ctx context.Context, img Image) error {
	f, err := os.Open(filepath.Join(im.dir, img.File))
	if err != nil {
		return err
	}
	defer f.Close()
	rc, err := im.e.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("load %s: %w", img.File, err)
	}
	defer rc.Close()
	// The daemon reports a failed load inside the stream.
	if err := loadStreamError(rc); err != nil {
		return fmt.Errorf("load %s: %w", img.File, err)
	}
	have, err := im.e.ImageInspect(ctx, img.Ref())
	if err != nil {
		return fmt.Errorf("after loading %s: %w", img.File, err)
	}
	if have.ID != img.ID {
		return fmt.Errorf("after loading %s, %s is %s, not %s", img.File, img.Ref(), have.ID, img.ID)
	}
	return nil
}

func (im *importer) networks(ctx context.Context) error {
	for _, n := range im.inv.Networks {
		if err := ctx.Err(); err != nil {
			return err
		}
		if im.skipIfBlocked(KindNetwork, n.Name) {
			continue
		}
		have, err := im.e.NetworkInspect(ctx, n.Name, client.NetworkInspectOptions{})
		if err == nil && have.Network.Name == n.Name {
			im.add(Outcome{Kind: KindNetwork, Name: n.Name, Status: Present})
			continue
		}
		if err != nil && !cerrdefs.IsNotFound(err) {
			im.add(Outcome{Kind: KindNetwork, Name: n.Name, Status: Failed, Error: fmt.Sprintf("inspect: %v", err)})
			continue
		}
		if _, err := im.e.NetworkCreate(ctx, n.Name, NetworkOptions(n, im.inv.APIVersion)); err != nil {
			im.add(Outcome{Kind: KindNetwork, Name: n.Name, Status: Failed, Error: fmt.Sprintf("create: %v", err)})
			continue
		}
		im.add(Outcome{Kind: KindNetwork, Name: n.Name, Status: Moved})
	}
	return nil
}

func (im *importer) volumes(ctx context.Context) error {
	for _, v := range im.inv.Volumes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if im.skipIfBlocked(KindVolume, v.Name) {
			continue
		}
		im.add(im.volume(ctx, v))
	}
	return nil
}

func (im *importer) volume(ctx context.Context, v Volume) Outcome {
	out := Outcome{Kind: KindVolume, Name: v.Name}
	key := path.Join(im.root, "volumes", v.Name) // the volume in the new root
	have, err := im.e.VolumeInspect(ctx, v.Name, client.VolumeInspectOptions{})
	switch {
	case err == nil && im.state.Finished[key]:
		out.Status = Present
		return out
	case err == nil && !im.state.Began[key] && !emptyDir(im.o.path(have.Volume.Mountpoint)):
		out.Status = Present
		out.Reason = "the new root has a volume of this name with data of its own; left as it is, nothing copied"
		return out
	case err != nil && !cerrdefs.IsNotFound(err):
		out.Status, out.Error = Failed, fmt.Sprintf("inspect: %v", err)
		return out
	case err != nil:
		cr, err := im.e.VolumeCreate(ctx, client.VolumeCreateOptions{Name: v.Name, Driver: v.Driver, DriverOpts: v.Options, Labels: v.Labels})
		if err != nil {
			out.Status, out.Error = Failed, fmt.Sprintf("create: %v", err)
			return out
		}
		have.Volume = cr.Volume
		out.Status = Moved
	}
	if len(v.Options) > 0 {
		// The local driver with options mounts its data from elsewhere
		// (a device, NFS, tmpfs): there is nothing in the root to copy.
		if err := im.markFinished(key); err != nil {
			out.Status, out.Error = Failed, fmt.Sprintf("record progress: %v", err)
			return out
		}
		if out.Status != Moved {
			out.Status = Present
			return out
		}
		out.Detail = "created with its driver options; its data lives where they point, nothing copied"
		return out
	}
	im.state.Began[key] = true
	if err := im.saveState(); err != nil {
		out.Status, out.Error = Failed, fmt.Sprintf("record progress: %v", err)
		return out
	}
	st, err := CopyTree(ctx, im.o.path(v.Mountpoint), im.o.path(have.Volume.Mountpoint), im.o.Shift)
	if err != nil {
		out.Status, out.Error = Failed, fmt.Sprintf("copy data: %v", err)
		return out
	}
	if err := im.markFinished(key); err != nil {
		out.Status, out.Error = Failed, fmt.Sprintf("record progress: %v", err)
		return out
	}
	out.Status = Moved
	out.Detail = fmt.Sprintf("copied %d files, %d directories, %d symlinks, %d bytes", st.Files, st.Dirs, st.Symlinks, st.Bytes)
	if st.Unmapped > 0 {
		out.Detail += fmt.Sprintf("; %d entries owned by IDs outside the new map now belong to nobody", st.Unmapped)
	}
	if st.XattrsSkipped > 0 {
		out.Detail += fmt.Sprintf("; %d extended attributes (ACLs, capabilities, security labels) not copied", st.XattrsSkipped)
	}
	if st.Sockets > 0 {
		out.Detail += fmt.Sprintf("; %d sockets left out", st.Sockets)
	}
	return out
}

func (im *importer) markFinished(key string) error {
	im.state.Finished[key] = true
	return im.saveState()
}

func emptyDir(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) == 0
}

func (im *importer) containers(ctx context.Context) error {
	byID := map[string]string{}
	for _, c := range im.inv.Containers {
		byID[c.ID] = c.Name
	}
	for _, c := range orderContainers(im.inv.Containers, byID) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if im.skipIfBlocked(KindContainer, c.Name) {
			continue
		}
		if missing := im.missingFor(c, byID); len(missing) > 0 {
			im.add(Outcome{Kind: KindContainer, Name: c.Name, Status: Skipped, Reason: "needs " + strings.Join(missing, ", ") + ", which did not move"})
			continue
		}
		im.add(im.container(ctx, c))
	}
	return nil
}

// missingFor names what c needs that is not in the new root.
func (im *importer) missingFor(c Container, byID map[string]string) []string {
	var miss []string
	for _, img := range im.inv.Images {
		if img.ID == c.ImageID && !im.ok(KindImage, img.Ref()) {
			miss = append(miss, "image "+img.Ref())
		}
	}
	if ns := c.Inspect.NetworkSettings; ns != nil {
		for name := range ns.Networks {
			if im.isInventoried(KindNetwork, name) && !im.ok(KindNetwork, name) {
				miss = append(miss, "network "+name)
			}
		}
	}
	for _, m := range c.Inspect.Mounts {
		if m.Type == "volume" && im.isInventoried(KindVolume, m.Name) && !im.ok(KindVolume, m.Name) {
			miss = append(miss, "volume "+m.Name)
		}
	}
	for _, d := range containerDeps(c.Inspect.HostConfig, byID) {
		if !im.ok(KindContainer, d) {
			miss = append(miss, "container "+d)
		}
	}
	return miss
}

func (im *importer) isInventoried(kind, name string) bool {
	switch kind {
	case KindNetwork:
		for _, n := range im.inv.Networks {
			if n.Name == name {
				return true
			}
		}
	case KindVolume:
		for _, v := range im.inv.Volumes {
			if v.Name == name {
				return true
			}
		}
	}
	return false
}

func (im *importer) container(ctx context.Context, c Container) Outcome {
	out := Outcome{Kind: KindContainer, Name: c.Name}
	id := ""
	have, err := im.e.ContainerInspect(ctx, c.Name, client.ContainerInspectOptions{})
	switch {
	case err == nil:
		out.Status = Present
		id = have.Container.ID
		if !c.Running || (have.Container.State != nil && have.Container.State.Running) {
			return out
		}
	case !cerrdefs.IsNotFound(err):
		out.Status, out.Error = Failed, fmt.Sprintf("inspect: %v", err)
		return out
	default:
		opts, err := im.inv.CreateOptions(c)
		if err != nil {
			out.Status, out.Error = Failed, err.Error()
			return out
		}
		cr, err := im.e.ContainerCreate(ctx, opts)
		if err != nil {
			out.Status, out.Error = Failed, fmt.Sprintf("create: %v", err)
			return out
		}
		id = cr.ID
		out.Status = Moved
		if !c.Running {
			out.Detail = "created; it was not running, so it was not started"
			return out
		}
	}
	if _, err := im.e.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		out.Status, out.Error = Failed, fmt.Sprintf("created but not started: %v", err)
		return out
	}
	out.Detail = "started"
	return out
}

// orderContainers puts each container after those it needs (shared
// namespaces, --volumes-from, links), keeping the inventory's order
// otherwise; a cycle, which Docker cannot create, keeps its order.
func orderContainers(cs []Container, byID map[string]string) []Container {
	first := map[string]int{} // name -> index of the first container of that name
	for i := len(cs) - 1; i >= 0; i-- {
		first[cs[i].Name] = i
	}
	out := make([]Container, 0, len(cs))
	state := make([]int, len(cs)) // 1 visiting, 2 done
	var visit func(i int)
	visit = func(i int) {
		if state[i] != 0 {
			return
		}
		state[i] = 1
		for _, d := range containerDeps(cs[i].Inspect.HostConfig, byID) {
			if j, ok := first[d]; ok {
				visit(j)
			}
		}
		state[i] = 2
		out = append(out, cs[i])
	}
	for i := range cs {
		visit(i)
	}
	return out
}
