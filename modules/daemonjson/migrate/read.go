package migrate

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
)

// Options are what Read, Export and Import need besides the Engine API.
type Options struct {
	// HostRoot is where the daemon's file system is seen from this process:
	// "" or "/" on the host itself; /proc/PID/root for a daemon in another
	// mount namespace (a test's sandbox machine). Paths the daemon reports
	// (volume mountpoints, bind sources) are read and written under it.
	HostRoot string
	// Shift is how file ownership moves from the old root to the new one
	// (Import's volume copies; Blockers take it as an argument).
	Shift Shift
	// Logf receives a line per step (default: discarded).
	Logf func(format string, args ...any)
}

func (o Options) path(p string) string {
	if o.HostRoot == "" || o.HostRoot == "/" {
		return p
	}
	return filepath.Join(o.HostRoot, p)
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// predefinedNetworks exist in every data root; they are not the operator's.
var predefinedNetworks = map[string]bool{"bridge": true, "host": true, "none": true}

// Read asks the running daemon what its data root holds: its containers
// (configuration, running or not, writable-layer changes, bind sources'
// owners), the images that are tagged or used by a container, the
// user-defined networks and the volumes. It changes nothing.
func Read(ctx context.Context, e Engine, o Options) (*Inventory, error) {
	ping, err := e.Ping(ctx, client.PingOptions{})
	if err != nil {
		return nil, fmt.Errorf("ping the docker daemon: %w", err)
	}
	info, err := e.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker info: %w", err)
	}
	inv := &Inventory{
		FormatVersion: FormatVersion,
		DockerRootDir: info.Info.DockerRootDir,
		ServerVersion: info.Info.ServerVersion,
		APIVersion:    ping.APIVersion,
		Remapped:      slices.Contains(info.Info.SecurityOptions, "name=userns"),
	}

	cl, err := e.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	usedImages := map[string]bool{}
	for _, s := range cl.Items {
		c, err := readContainer(ctx, e, o, s.ID)
		if cerrdefs.IsNotFound(err) {
			continue // removed since the list was made
		}
		if err != nil {
			return nil, err
		}
		usedImages[c.ImageID] = true
		inv.Containers = append(inv.Containers, c)
	}
	sort.Slice(inv.Containers, func(i, j int) bool { return inv.Containers[i].Name < inv.Containers[j].Name })

	il, err := e.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	for _, s := range il.Items {
		var tags []string
		for _, t := range s.RepoTags {
			if t != "<none>:<none>" {
				tags = append(tags, t)
			}
		}
		// A dangling image no container uses is garbage, not a workload.
		if len(tags) == 0 && !usedImages[s.ID] {
			continue
		}
		sort.Strings(tags)
		inv.Images = append(inv.Images, Image{ID: s.ID, Tags: tags, Size: s.Size})
	}
	sort.Slice(inv.Images, func(i, j int) bool { return inv.Images[i].Ref() < inv.Images[j].Ref() })

	nl, err := e.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	for _, s := range nl.Items {
		if predefinedNetworks[s.Name] || s.Ingress {
			continue
		}
		ni, err := e.NetworkInspect(ctx, s.ID, client.NetworkInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspect network %s: %w", s.Name, err)
		}
		inv.Networks = append(inv.Networks, Network{Name: ni.Network.Name, Inspect: ni.Network})
	}
	sort.Slice(inv.Networks, func(i, j int) bool { return inv.Networks[i].Name < inv.Networks[j].Name })

	vl, err := e.VolumeList(ctx, client.VolumeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	for _, v := range vl.Items {
		inv.Volumes = append(inv.Volumes, Volume{Name: v.Name, Driver: v.Driver, Labels: v.Labels, Options: v.Options, Mountpoint: v.Mountpoint})
	}
	sort.Slice(inv.Volumes, func(i, j int) bool { return inv.Volumes[i].Name < inv.Volumes[j].Name })
	return inv, nil
}

func readContainer(ctx context.Context, e Engine, o Options, id string) (Container, error) {
	ci, err := e.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return Container{}, fmt.Errorf("inspect container %s: %w", shortID(id), err)
	}
	in := ci.Container
	c := Container{
		Name:    strings.TrimPrefix(in.Name, "/"),
		ID:      in.ID,
		ImageID: in.Image,
		Running: in.State != nil && (in.State.Running || in.State.Restarting),
		Inspect: in,
	}
	if in.Config != nil {
		c.Image = in.Config.Image
	}
	// A container whose layer cannot be read (dead, half removed) is not
	// a reason to read nothing: its blocker says so.
	if diff, err := e.ContainerDiff(ctx, id, client.ContainerDiffOptions{}); err != nil {
		c.ChangesError = err.Error()
	} else {
		c.Changes, c.ChangeCount = summarizeChanges(ownChanges(diff.Changes, in.Mounts))
	}
	for _, m := range in.Mounts {
		if m.Type != mount.TypeBind {
			continue
		}
		b := Bind{Source: m.Source, Destination: m.Destination, RW: m.RW}
		var st syscall.Stat_t
		if err := syscall.Stat(o.path(m.Source), &st); err != nil {
			b.StatError = (&os.PathError{Op: "stat", Path: m.Source, Err: err}).Error()
		} else {
			b.UID, b.GID, b.Mode = st.Uid, st.Gid, st.Mode&0o7777
		}
		c.Binds = append(c.Binds, b)
	}
	return c, nil
}

// ownChanges leaves out of a container's writable-layer changes those the
// daemon made for its mounts: the mount point directories it creates in
// the layer ("A /data" for -v vol:/data) and their parents. Recreating the
// container makes them again; everything else is the container's own.
func ownChanges(ch []container.FilesystemChange, mounts []container.MountPoint) []container.FilesystemChange {
	made := map[string]bool{}
	for _, m := range mounts {
		for p := path.Clean("/" + m.Destination); p != "/"; p = path.Dir(p) {
			made[p] = true
		}
	}
	var out []container.FilesystemChange
	for _, c := range ch {
		if c.Kind != container.ChangeDelete && made[path.Clean("/"+c.Path)] {
			continue
		}
		out = append(out, c)
	}
	return out
}

// summarizeChanges keeps the first MaxChanges of a container's changes,
// as "A /path", and counts them all.
func summarizeChanges(ch []container.FilesystemChange) ([]string, int) {
	var out []string
	for _, c := range ch {
		if len(out) == MaxChanges {
			break
		}
		out = append(out, c.Kind.String()+" "+c.Path)
	}
	return out, len(ch)
}
