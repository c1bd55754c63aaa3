package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
)

func TestOwnChanges(t *testing.T) {
	mounts := []container.MountPoint{{Destination: "/data"}, {Destination: "/srv/app/cache/"}}
	ch := func(k container.ChangeType, p string) container.FilesystemChange {
		return container.FilesystemChange{Kind: k, Path: p}
	}
	tests := []struct {
		name string
		in   []container.FilesystemChange
		want []string
	}{
		{"nothing", nil, nil},
		{"mount points and their parents are Docker's", []container.FilesystemChange{
			ch(container.ChangeAdd, "/data"), ch(container.ChangeModify, "/srv"), ch(container.ChangeAdd, "/srv/app"), ch(container.ChangeAdd, "/srv/app/cache"),
		}, nil},
		{"files beside them are the container's", []container.FilesystemChange{
			ch(container.ChangeAdd, "/data"), ch(container.ChangeModify, "/etc"), ch(container.ChangeAdd, "/etc/motd"), ch(container.ChangeAdd, "/srv/app/log"),
		}, []string{"C /etc", "A /etc/motd", "A /srv/app/log"}},
		{"a deleted parent of a mount point is a change", []container.FilesystemChange{ch(container.ChangeDelete, "/srv")}, []string{"D /srv"}},
		{"the root itself is no mount point parent", []container.FilesystemChange{ch(container.ChangeModify, "/")}, []string{"C /"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := summarizeChanges(ownChanges(tt.in, mounts))
			if diff := cmp.Diff(tt.want, got); diff != "" || n != len(tt.want) {
				t.Errorf("own changes (-want +got), count %d:\n%s", n, diff)
			}
		})
	}
}

func TestSummarizeChangesCaps(t *testing.T) {
	var in []container.FilesystemChange
	for i := range 25 {
		in = append(in, container.FilesystemChange{Kind: container.ChangeAdd, Path: fmt.Sprintf("/f%d", i)})
	}
	got, n := summarizeChanges(in)
	if len(got) != MaxChanges || n != 25 || got[0] != "A /f0" {
		t.Errorf("summarizeChanges of 25: %d kept (%v), count %d; want %d kept, 25", len(got), got, n, MaxChanges)
	}
}

// oldDaemon is the daemon Read looks at: a container removed between list
// and inspect, one whose layer cannot be diffed, a dangling image nobody
// uses, the predefined networks.
type oldDaemon struct {
	*fakeEngine
	inspect map[string]container.InspectResponse
}

func (d oldDaemon) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{Info: system.Info{DockerRootDir: "/var/lib/docker", ServerVersion: "26.1.5", SecurityOptions: []string{"name=seccomp,profile=builtin"}}}, nil
}
func (d oldDaemon) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	return client.ContainerListResult{Items: []container.Summary{{ID: "gone"}, {ID: "dead1"}, {ID: "web1"}}}, nil
}
func (d oldDaemon) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	in, ok := d.inspect[id]
	if !ok {
		return client.ContainerInspectResult{}, errNotFound
	}
	return client.ContainerInspectResult{Container: in}, nil
}
func (d oldDaemon) ContainerDiff(_ context.Context, id string, _ client.ContainerDiffOptions) (client.ContainerDiffResult, error) {
	if id == "dead1" {
		return client.ContainerDiffResult{}, errors.New("layer does not exist")
	}
	return client.ContainerDiffResult{Changes: []container.FilesystemChange{{Kind: container.ChangeAdd, Path: "/data"}}}, nil
}
func (d oldDaemon) ImageList(context.Context, client.ImageListOptions) (client.ImageListResult, error) {
	return client.ImageListResult{Items: []image.Summary{
		{ID: "sha256:web", RepoTags: []string{"web:2", "web:latest"}},
		{ID: "sha256:dangling", RepoTags: []string{"<none>:<none>"}},
		{ID: "sha256:oldweb"},
	}}, nil
}
func (d oldDaemon) NetworkList(context.Context, client.NetworkListOptions) (client.NetworkListResult, error) {
	return client.NetworkListResult{Items: []network.Summary{{Network: network.Network{Name: "bridge", ID: "b"}}, {Network: network.Network{Name: "host", ID: "h"}}, {Network: network.Network{Name: "front", ID: "f"}}}}, nil
}
func (d oldDaemon) NetworkInspect(_ context.Context, id string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	return client.NetworkInspectResult{Network: network.Inspect{Network: network.Network{Name: "front", ID: id, Driver: "bridge"}}}, nil
}
func (d oldDaemon) VolumeList(context.Context, client.VolumeListOptions) (client.VolumeListResult, error) {
	return client.VolumeListResult{Items: []volume.Volume{{Name: "z", Driver: "local"}, {Name: "a", Driver: "local", Mountpoint: "/var/lib/docker/volumes/a/_data"}}}, nil
}

func TestRead(t *testing.T) {
	src := t.TempDir()
	d := oldDaemon{fakeEngine: newFake(t), inspect: map[string]container.InspectResponse{
		"web1": {ID: "web1", Name: "/web", Image: "sha256:oldweb", State: &container.State{Running: true},
			Config: &container.Config{Image: "web:2"}, HostConfig: &container.HostConfig{},
			Mounts: []container.MountPoint{{Type: "volume", Name: "a", Destination: "/data"}, {Type: "bind", Source: "/srv", Destination: "/srv", RW: true}, {Type: "bind", Source: "/nope", Destination: "/nope"}}},
		"dead1": {ID: "dead1", Name: "/dead", Image: "sha256:web", State: &container.State{Dead: true}, Config: &container.Config{Image: "web:2"}, HostConfig: &container.HostConfig{}},
	}}
	if err := os.Mkdir(filepath.Join(src, "srv"), 0o750); err != nil {
		t.Fatal(err)
	}
	inv, err := Read(t.Context(), d, Options{HostRoot: src})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range inv.Containers {
		names = append(names, c.Name)
	}
	var imgs, vols []string
	for _, i := range inv.Images {
		imgs = append(imgs, i.Ref())
	}
	for _, v := range inv.Volumes {
		vols = append(vols, v.Name)
	}
	got := fmt.Sprint(inv.DockerRootDir, " ", inv.Remapped, " ", inv.APIVersion, " ", names, imgs, vols, len(inv.Networks), inv.Networks[0].Name)
	if want := "/var/lib/docker false 1.45 [dead web] [sha256:oldweb web:2] [a z] 1front"; got != want {
		t.Errorf("inventory:\n got %s\nwant %s", got, want)
	}
	dead, web := inv.Containers[0], inv.Containers[1]
	if dead.ChangesError != "layer does not exist" || dead.Running {
		t.Errorf("dead: %+v", dead)
	}
	if !web.Running || web.ChangeCount != 0 || web.Image != "web:2" || web.ImageID != "sha256:oldweb" {
		t.Errorf("web: running %v, %d changes, image %s %s", web.Running, web.ChangeCount, web.Image, web.ImageID)
	}
	me := uint32(os.Geteuid())
	wantBinds := []Bind{
		{Source: "/srv", Destination: "/srv", RW: true, UID: me, GID: uint32(os.Getegid()), Mode: 0o750},
		{Source: "/nope", Destination: "/nope", StatError: "stat /nope: no such file or directory"},
	}
	if diff := cmp.Diff(wantBinds, web.Binds); diff != "" {
		t.Errorf("binds (-want +got):\n%s", diff)
	}
}
