package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
)

// fakeEngine is the new daemon as Import sees it: objects by name, volume
// data in a directory, failures on demand. The real daemon is in
// integration/migrate_test.go; this one makes the partial failures that a
// real one gives only by accident.
type fakeEngine struct {
	root     string // DockerRootDir it reports
	volDir   string // where its volumes' data is
	images   map[string]string
	networks map[string]client.NetworkCreateOptions
	volumes  map[string]volume.Volume
	created  map[string]client.ContainerCreateOptions
	running  map[string]bool
	failOn   map[string]error // "create:NAME", "start:NAME", "load", "network:NAME"
	loaded   []string         // archive contents seen by ImageLoad
}

func newFake(t *testing.T) *fakeEngine {
	return &fakeEngine{
		root: "/var/lib/docker/100000.100000", volDir: t.TempDir(),
		images: map[string]string{}, networks: map[string]client.NetworkCreateOptions{}, volumes: map[string]volume.Volume{},
		created: map[string]client.ContainerCreateOptions{}, running: map[string]bool{}, failOn: map[string]error{},
	}
}

var errNotFound = cerrdefs.ErrNotFound.WithMessage("no such object")

func (f *fakeEngine) Ping(context.Context, client.PingOptions) (client.PingResult, error) {
	return client.PingResult{APIVersion: "1.45"}, nil
}
func (f *fakeEngine) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{Info: system.Info{DockerRootDir: f.root}}, nil
}
func (f *fakeEngine) ImageList(context.Context, client.ImageListOptions) (client.ImageListResult, error) {
	return client.ImageListResult{}, nil
}
func (f *fakeEngine) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	id, ok := f.images[ref]
	if !ok {
		return client.ImageInspectResult{}, errNotFound
	}
	return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: id}}, nil
}
func (f *fakeEngine) ImageSave(context.Context, []string, ...client.ImageSaveOption) (client.ImageSaveResult, error) {
	return nil, errors.New("not the old daemon")
}
func (f *fakeEngine) ImageLoad(_ context.Context, r io.Reader, _ ...client.ImageLoadOption) (client.ImageLoadResult, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	f.loaded = append(f.loaded, string(b))
	if err := f.failOn["load"]; err != nil {
		return io.NopCloser(strings.NewReader(fmt.Sprintf(`{"errorDetail":{"message":%q}}`, err.Error()))), nil
	}
	// The archive's content is "ref id" in this test.
	ref, id, _ := strings.Cut(string(b), " ")
	f.images[ref] = id
	return io.NopCloser(strings.NewReader(`{"stream":"Loaded image: ` + ref + `\n"}`)), nil
}
func (f *fakeEngine) ImageTag(context.Context, client.ImageTagOptions) (client.ImageTagResult, error) {
	return client.ImageTagResult{}, nil
}
func (f *fakeEngine) NetworkList(context.Context, client.NetworkListOptions) (client.NetworkListResult, error) {
	return client.NetworkListResult{}, nil
}
func (f *fakeEngine) NetworkInspect(_ context.Context, name string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	if _, ok := f.networks[name]; !ok {
		return client.NetworkInspectResult{}, errNotFound
	}
	return client.NetworkInspectResult{Network: network.Inspect{Network: network.Network{Name: name}}}, nil
}
func (f *fakeEngine) NetworkCreate(_ context.Context, name string, o client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
	if err := f.failOn["network:"+name]; err != nil {
		return client.NetworkCreateResult{}, err
	}
	f.networks[name] = o
	return client.NetworkCreateResult{ID: "n-" + name}, nil
}
func (f *fakeEngine) VolumeList(context.Context, client.VolumeListOptions) (client.VolumeListResult, error) {
	return client.VolumeListResult{}, nil
}
func (f *fakeEngine) VolumeInspect(_ context.Context, name string, _ client.VolumeInspectOptions) (client.VolumeInspectResult, error) {
	v, ok := f.volumes[name]
	if !ok {
		return client.VolumeInspectResult{}, errNotFound
	}
	return client.VolumeInspectResult{Volume: v}, nil
}
func (f *fakeEngine) VolumeCreate(_ context.Context, o client.VolumeCreateOptions) (client.VolumeCreateResult, error) {
	mp := filepath.Join(f.volDir, o.Name, "_data")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return client.VolumeCreateResult{}, err
	}
	v := volume.Volume{Name: o.Name, Driver: o.Driver, Labels: o.Labels, Options: o.DriverOpts, Mountpoint: mp}
	f.volumes[o.Name] = v
	return client.VolumeCreateResult{Volume: v}, nil
}
func (f *fakeEngine) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	return client.ContainerListResult{}, nil
}
func (f *fakeEngine) ContainerInspect(_ context.Context, name string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	if _, ok := f.created[name]; !ok {
		return client.ContainerInspectResult{}, errNotFound
	}
	return client.ContainerInspectResult{Container: container.InspectResponse{ID: "new-" + name, Name: "/" + name, State: &container.State{Running: f.running[name]}}}, nil
}
func (f *fakeEngine) ContainerDiff(context.Context, string, client.ContainerDiffOptions) (client.ContainerDiffResult, error) {
	return client.ContainerDiffResult{}, nil
}
func (f *fakeEngine) ContainerCreate(_ context.Context, o client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	if err := f.failOn["create:"+o.Name]; err != nil {
		return client.ContainerCreateResult{}, err
	}
	if _, ok := f.images[o.Config.Image]; !ok {
		return client.ContainerCreateResult{}, errNotFound
	}
	f.created[o.Name] = o
	return client.ContainerCreateResult{ID: "new-" + o.Name}, nil
}
func (f *fakeEngine) ContainerStart(_ context.Context, id string, _ client.ContainerStartOptions) (client.ContainerStartResult, error) {
	name := strings.TrimPrefix(id, "new-")
	if err := f.failOn["start:"+name]; err != nil {
		return client.ContainerStartResult{}, err
	}
	f.running[name] = true
	return client.ContainerStartResult{}, nil
}

// exportDir writes what Export would have for the inventory: the manifest,
// image archives holding "ref id", and the old root's volume data.
func exportDir(t *testing.T, oldVolumes string) (string, *Inventory) {
	t.Helper()
	dir := t.TempDir()
	mk := func(name string, cfg func(*container.HostConfig), running bool, nets ...string) Container {
		hc := &container.HostConfig{NetworkMode: "front"}
		if cfg != nil {
			cfg(hc)
		}
		eps := map[string]*network.EndpointSettings{}
		for _, n := range nets {
			eps[n] = &network.EndpointSettings{}
		}
		return Container{Name: name, ID: "old-" + name, Image: "app:1", ImageID: "sha256:app", Running: running, Inspect: container.InspectResponse{
			ID: "old-" + name, Name: "/" + name, Config: &container.Config{Image: "app:1"}, HostConfig: hc,
			NetworkSettings: &container.NetworkSettings{Networks: eps},
			Mounts:          []container.MountPoint{{Type: "volume", Name: "data", Destination: "/data", RW: true}},
		}}
	}
	inv := &Inventory{
		FormatVersion: FormatVersion, DockerRootDir: "/var/lib/docker", APIVersion: "1.45",
		Images:   []Image{{ID: "sha256:app", Tags: []string{"app:1"}, File: "images/000-app.tar"}},
		Networks: []Network{{Name: "front", Inspect: network.Inspect{Network: network.Network{Name: "front", Driver: "bridge", Scope: "local"}}}},
		Volumes: []Volume{
			{Name: "data", Driver: "local", Mountpoint: filepath.Join(oldVolumes, "data/_data")},
			{Name: "theirs", Driver: "local", Mountpoint: filepath.Join(oldVolumes, "theirs/_data")},
		},
		Containers: []Container{
			mk("a", nil, true, "front"),
			mk("b", func(hc *container.HostConfig) { hc.RestartPolicy.Name = "always" }, true, "front"),
			mk("c", func(hc *container.HostConfig) { hc.NetworkMode = "container:old-b" }, false),
			func() Container {
				c := mk("p", nil, true, "front")
				c.Changes, c.ChangeCount = []string{"A /etc/motd"}, 1
				return c
			}(),
		},
	}
	for _, v := range inv.Volumes {
		if err := os.MkdirAll(v.Mountpoint, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("old "+v.Name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, inv.Images[0].File), []byte("app:1 sha256:app"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Export without images in the inventory writes only the manifest.
	images := inv.Images
	inv.Images = nil
	if err := Export(t.Context(), nil, inv, dir, Options{}); err != nil {
		t.Fatal(err)
	}
	inv.Images = images
	b, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	b = []byte(strings.Replace(string(b), `"images": null`, `"images": [{"id":"sha256:app","tags":["app:1"],"file":"images/000-app.tar"}]`, 1))
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, inv
}

func statuses(r *Result) map[string]string {
	out := map[string]string{}
	for _, o := range r.Outcomes {
		out[o.Kind+"/"+o.Name] = string(o.Status)
	}
	return out
}

// TestImportPartialThenComplete: a failure midway leaves what moved, says
// what did not, and a second run completes the rest without making
// anything twice.
func TestImportPartialThenComplete(t *testing.T) {
	oldVolumes := t.TempDir()
	dir, _ := exportDir(t, oldVolumes)
	f := newFake(t)
	// The new root already has a volume "theirs" with data of its own.
	if _, err := f.VolumeCreate(t.Context(), client.VolumeCreateOptions{Name: "theirs", Driver: "local"}); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(f.volDir, "theirs/_data/mine"), []byte("new root's own\n"), 0o644)
	f.failOn["create:b"] = errors.New("boom")

	res, err := Import(t.Context(), f, dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "container b: create: boom") {
		t.Fatalf("first import: error %v, want one naming container b", err)
	}
	want := map[string]string{
		"image/app:1": "moved", "network/front": "moved", "volume/data": "moved", "volume/theirs": "present",
		"container/a": "moved", "container/b": "failed", "container/c": "skipped", "container/p": "skipped",
	}
	if got := statuses(res); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("first import:\n got %v\nwant %v", got, want)
	}
	if o, _ := res.Find(KindContainer, "c"); o.Reason != "needs container b, which did not move" {
		t.Errorf("c: %s", o)
	}
	if o, _ := res.Find(KindVolume, "theirs"); !strings.Contains(o.Reason, "data of its own") {
		t.Errorf("theirs: %s", o)
	}
	if b, _ := os.ReadFile(filepath.Join(f.volDir, "data/_data/f")); string(b) != "old data\n" {
		t.Errorf("volume data not copied: %q", b)
	}
	if _, err := os.Stat(filepath.Join(f.volDir, "theirs/_data/f")); err == nil {
		t.Error("the new root's own volume was written into")
	}
	if !f.running["a"] || f.running["b"] {
		t.Errorf("running after the first import: %v", f.running)
	}
	// The result is on disk too.
	if b, err := os.ReadFile(filepath.Join(dir, ResultFile)); err != nil || !strings.Contains(string(b), `"status": "failed"`) {
		t.Errorf("%s: %v\n%s", ResultFile, err, b)
	}

	delete(f.failOn, "create:b")
	loads := len(f.loaded)
	res, err = Import(t.Context(), f, dir, Options{})
	if err != nil {
		t.Fatalf("second import: %v", err)
	}
	want = map[string]string{
		"image/app:1": "present", "network/front": "present", "volume/data": "present", "volume/theirs": "present",
		"container/a": "present", "container/b": "moved", "container/c": "moved", "container/p": "skipped",
	}
	if got := statuses(res); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("second import:\n got %v\nwant %v", got, want)
	}
	if len(f.loaded) != loads {
		t.Error("the image was loaded again")
	}
	if !f.running["b"] || f.running["c"] {
		t.Errorf("running after the second import: %v (c did not run before)", f.running)
	}
	if got := f.created["c"].HostConfig.NetworkMode; got != "container:b" {
		t.Errorf("c's network mode %q, want container:b", got)
	}
	// The old root is as it was.
	if b, _ := os.ReadFile(filepath.Join(oldVolumes, "data/_data/f")); string(b) != "old data\n" {
		t.Errorf("old volume changed: %q", b)
	}
}

// TestImportResumesVolumeCopy: a volume whose copy began but did not finish
// is copied again, though the new root has it and it holds data.
func TestImportResumesVolumeCopy(t *testing.T) {
	dir, _ := exportDir(t, t.TempDir())
	f := newFake(t)
	f.failOn["load"] = errors.New("no space left on device")
	if _, err := f.VolumeCreate(t.Context(), client.VolumeCreateOptions{Name: "data", Driver: "local"}); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(f.volDir, "data/_data/f"), []byte("ol"), 0o644) // cut short
	state := fmt.Sprintf(`{"began":{%q:true},"finished":{}}`, f.root+"/volumes/data")
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Import(t.Context(), f, dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "image app:1: load images/000-app.tar: daemon: no space left on device") {
		t.Fatalf("import: %v", err)
	}
	if o, _ := res.Find(KindVolume, "data"); o.Status != Moved {
		t.Errorf("data: %s", o)
	}
	if b, _ := os.ReadFile(filepath.Join(f.volDir, "data/_data/f")); string(b) != "old data\n" {
		t.Errorf("volume data after the resumed copy: %q", b)
	}
	// Without their image no container is made.
	for _, name := range []string{"a", "b", "c"} {
		if o, _ := res.Find(KindContainer, name); o.Status != Skipped || !strings.Contains(o.Reason, "image app:1") && name != "c" {
			t.Errorf("%s: %s", name, o)
		}
	}
	if len(f.created) != 0 {
		t.Errorf("containers created without their image: %v", f.created)
	}
}

func TestImportRefusesTheOldRoot(t *testing.T) {
	dir, _ := exportDir(t, t.TempDir())
	f := newFake(t)
	f.root = "/var/lib/docker"
	_, err := Import(t.Context(), f, dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "still runs on /var/lib/docker") {
		t.Fatalf("import into the old root: %v", err)
	}
	if len(f.networks)+len(f.volumes)+len(f.created)+len(f.loaded) != 0 {
		t.Error("import into the old root made something")
	}
	if _, err := Import(t.Context(), f, dir, Options{Shift: Shift{To: IDMap{UID: []IDRange{{0, 1, 0}}}}}); err == nil {
		t.Error("an invalid ID map: no error")
	}
}

// TestImportSaysWhichTagMoved: the new root had a different image under
// the same tag; the load moves the tag, and the outcome says so.
func TestImportSaysWhichTagMoved(t *testing.T) {
	dir, _ := exportDir(t, t.TempDir())
	f := newFake(t)
	f.images["app:1"] = "sha256:0123456789abcdef"
	res, err := Import(t.Context(), f, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := res.Find(KindImage, "app:1")
	if o.Status != Moved || o.Detail != "app:1 named 0123456789ab in the new root before; it names the moved image now" {
		t.Errorf("app:1: %s", o)
	}
	if f.images["app:1"] != "sha256:app" {
		t.Errorf("app:1 is %s after the load", f.images["app:1"])
	}
}

// TestImportVolumeWithOptions: a local volume with driver options is made
// with them and nothing is copied; made already, it is present.
func TestImportVolumeWithOptions(t *testing.T) {
	dir, _ := exportDir(t, t.TempDir())
	b, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	b = []byte(strings.Replace(string(b), `"name": "theirs",
      "driver": "local",`, `"name": "theirs",
      "driver": "local",
      "options": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"},`, 1))
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFake(t)
	res, err := Import(t.Context(), f, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := res.Find(KindVolume, "theirs")
	if o.Status != Moved || !strings.Contains(o.Detail, "nothing copied") || f.volumes["theirs"].Options["type"] != "tmpfs" {
		t.Errorf("theirs: %s, options %v", o, f.volumes["theirs"].Options)
	}
	if _, err := os.Stat(filepath.Join(f.volDir, "theirs/_data/f")); err == nil {
		t.Error("data copied into a volume with driver options")
	}
	res, err = Import(t.Context(), f, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := res.Find(KindVolume, "theirs"); o.Status != Present {
		t.Errorf("second run: %s", o)
	}
}
