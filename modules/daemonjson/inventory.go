package daemonjson

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/moby/moby/client"
)

// Inventory is what a Docker data root holds, by name: what an operator
// would miss if dockerd moved to another root.
type Inventory struct {
	Containers []InvContainer `json:"containers"`
	Images     []string       `json:"images"`   // repo:tag, or the short ID of an untagged image
	Networks   []string       `json:"networks"` // user-defined only
	Volumes    []string       `json:"volumes"`  // named only
	// Uncounted says what could not be read (from disk: the networks,
	// which dockerd keeps in a database of its own).
	Uncounted []string `json:"uncounted,omitempty"`
}

// InvContainer is one container and whether it runs (or, read from a root
// dockerd does not use, ran when that root was last used).
type InvContainer struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
	// OnDisk: read from the root's files, not from a running dockerd:
	// Running is then whether it ran when dockerd last used the root.
	OnDisk bool `json:"on_disk,omitempty"`
}

// Workloads reports whether the inventory holds anything an operator made
// and runs or keeps data in: containers, user-defined networks, named
// volumes. Images alone are not workloads: nothing runs from them and
// they hold no data of the operator's (they are pulled or built again).
func (inv Inventory) Workloads() bool {
	return len(inv.Containers)+len(inv.Networks)+len(inv.Volumes) > 0
}

// Empty reports whether there is nothing at all.
func (inv Inventory) Empty() bool { return !inv.Workloads() && len(inv.Images) == 0 }

// Minus returns what inv holds and other lacks, by name.
func (inv Inventory) Minus(other Inventory) Inventory {
	names := func(cs []InvContainer) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.Name
		}
		return out
	}
	var out Inventory
	for _, c := range inv.Containers {
		if !slices.Contains(names(other.Containers), c.Name) {
			out.Containers = append(out.Containers, c)
		}
	}
	out.Images = minus(inv.Images, other.Images)
	out.Networks = minus(inv.Networks, other.Networks)
	out.Volumes = minus(inv.Volumes, other.Volumes)
	return out
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// Summary is a one-line count with the names: "2 containers (web running,
// db stopped), 1 image (busybox:local), 1 network (appnet), 1 volume (data)".
func (inv Inventory) Summary() string {
	var parts []string
	if n := len(inv.Containers); n > 0 {
		cs := make([]string, n)
		for i, c := range inv.Containers {
			cs[i] = c.Name + " " + c.state()
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", plural(n, "container"), strings.Join(cs, ", ")))
	}
	for _, x := range []struct {
		names []string
		what  string
	}{{inv.Images, "image"}, {inv.Networks, "network"}, {inv.Volumes, "volume"}} {
		if len(x.names) > 0 {
			parts = append(parts, fmt.Sprintf("%s (%s)", plural(len(x.names), x.what), strings.Join(x.names, ", ")))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func (c InvContainer) state() string {
	switch {
	case c.Running && c.OnDisk:
		return "ran when last used"
	case c.Running:
		return "running"
	}
	return "stopped"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// builtinNetworks are the networks dockerd makes itself.
var builtinNetworks = []string{"bridge", "host", "none", "docker_gwbridge", "ingress"}

// anonymous matches the names dockerd gives anonymous volumes.
var anonymous = regexp.MustCompile(`^[0-9a-f]{64}$`)

// readAPI reads the inventory of the root the running dockerd uses.
func readAPI(ctx context.Context, c *client.Client) (Inventory, error) {
	var inv Inventory
	cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return inv, fmt.Errorf("list containers: %w", err)
	}
	for _, x := range cs.Items {
		name := x.ID[:min(12, len(x.ID))]
		if len(x.Names) > 0 {
			name = strings.TrimPrefix(x.Names[0], "/")
		}
		inv.Containers = append(inv.Containers, InvContainer{Name: name, Running: x.State == "running" || x.State == "restarting" || x.State == "paused"})
	}
	is, err := c.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return inv, fmt.Errorf("list images: %w", err)
	}
	for _, x := range is.Items {
		tags := slices.DeleteFunc(slices.Clone(x.RepoTags), func(t string) bool { return t == "<none>:<none>" })
		if len(tags) == 0 {
			inv.Images = append(inv.Images, shortImageID(x.ID))
			continue
		}
		inv.Images = append(inv.Images, tags...)
	}
	ns, err := c.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return inv, fmt.Errorf("list networks: %w", err)
	}
	for _, x := range ns.Items {
		if !slices.Contains(builtinNetworks, x.Name) {
			inv.Networks = append(inv.Networks, x.Name)
		}
	}
	vs, err := c.VolumeList(ctx, client.VolumeListOptions{})
	if err != nil {
		return inv, fmt.Errorf("list volumes: %w", err)
	}
	for _, x := range vs.Items {
		if _, anon := x.Labels["com.docker.volume.anonymous"]; anon || anonymous.MatchString(x.Name) {
			continue
		}
		inv.Volumes = append(inv.Volumes, x.Name)
	}
	inv.sort()
	return inv, nil
}

func shortImageID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(12, len(id))]
}

func (inv *Inventory) sort() {
	slices.SortFunc(inv.Containers, func(a, b InvContainer) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range [][]string{inv.Images, inv.Networks, inv.Volumes} {
		slices.Sort(s)
	}
	inv.Images = slices.Compact(inv.Images)
}

// readDisk reads what a data root dockerd does not use now holds, from the
// files dockerd left there: containers/*/config.v2.json (name, and whether
// it ran when dockerd last used the root), image/*/repositories.json (tags)
// and volumes/* (named volumes). Networks live in a bolt database
// (network/files/local-kv.db) that is not read: they are reported
// uncounted. A root that does not exist holds nothing.
func readDisk(root string) (inv Inventory, used bool, err error) {
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return inv, false, nil
	} else if err != nil {
		return inv, false, err
	}
	dirs, err := os.ReadDir(filepath.Join(root, "containers"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return inv, true, err
	}
	for _, d := range dirs {
		var cfg struct {
			Name  string
			State struct{ Running bool }
		}
		b, err := os.ReadFile(filepath.Join(root, "containers", d.Name(), "config.v2.json"))
		if err != nil || json.Unmarshal(b, &cfg) != nil {
			inv.Uncounted = appendOnce(inv.Uncounted, "containers whose config.v2.json is unreadable")
			continue
		}
		inv.Containers = append(inv.Containers, InvContainer{Name: strings.TrimPrefix(cfg.Name, "/"), Running: cfg.State.Running, OnDisk: true})
	}
	repos, _ := filepath.Glob(filepath.Join(root, "image", "*", "repositories.json"))
	for _, p := range repos {
		var r struct{ Repositories map[string]map[string]string }
		b, err := os.ReadFile(p)
		if err != nil || json.Unmarshal(b, &r) != nil {
			inv.Uncounted = appendOnce(inv.Uncounted, "images ("+p+" unreadable)")
			continue
		}
		for _, tags := range r.Repositories {
			for ref := range tags {
				if !strings.Contains(ref, "@") {
					inv.Images = append(inv.Images, ref)
				}
			}
		}
	}
	vols, err := os.ReadDir(filepath.Join(root, "volumes"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return inv, true, err
	}
	for _, v := range vols {
		if v.IsDir() && !anonymous.MatchString(v.Name()) {
			inv.Volumes = append(inv.Volumes, v.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(root, "network", "files", "local-kv.db")); err == nil {
		inv.Uncounted = append(inv.Uncounted, "networks, which dockerd keeps in network/files/local-kv.db, a database dockward does not read")
	}
	inv.sort()
	return inv, true, nil
}

func appendOnce(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}
