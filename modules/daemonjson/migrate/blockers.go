package migrate

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"
)

// Object kinds, as Blocker and Outcome name them.
const (
	KindImage     = "image"
	KindNetwork   = "network"
	KindVolume    = "volume"
	KindContainer = "container"
)

// Blocker is one object that cannot move, and why.
type Blocker struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

func (b Blocker) String() string { return fmt.Sprintf("%s %s: %s", b.Kind, b.Name, b.Reason) }

// Blockers lists, before anything is done, what of the inventory cannot
// move across the switch described by s (s.From: how the inventory's root
// maps IDs, s.To: how the new one will), one entry per reason:
//
//   - a container whose writable layer holds changes: recreating it from
//     its configuration would lose them;
//   - a --privileged container, or one sharing a host namespace (network,
//     PID, IPC, UTS), when the new root is remapped: the daemon refuses
//     them there unless they run with userns_mode = host, which is the
//     operator's decision, not ours;
//   - a bind mount whose source's owner the container would see differently
//     (host root's files are nobody's to a remapped root);
//   - a volume of another driver than local: its data is the driver's;
//   - a network that is not local (swarm);
//   - a container that needs a blocked object (its volume, network, or a
//     container whose namespace or volumes it shares).
//
// Objects without a blocker move; Import skips those with one, giving the
// same reason. The result is sorted by kind and name.
func (inv *Inventory) Blockers(s Shift) []Blocker {
	var out []Blocker
	blockedVol := map[string]bool{}
	for _, v := range inv.Volumes {
		if v.Driver != "local" {
			out = append(out, Blocker{KindVolume, v.Name, fmt.Sprintf("volume driver %q keeps the data outside the data root; recreate it by hand", v.Driver)})
			blockedVol[v.Name] = true
		}
	}
	blockedNet := map[string]bool{}
	for _, n := range inv.Networks {
		if n.Inspect.Scope != "" && n.Inspect.Scope != "local" {
			out = append(out, Blocker{KindNetwork, n.Name, fmt.Sprintf("%s-scoped network (driver %s): the swarm manages it", n.Inspect.Scope, n.Inspect.Driver)})
			blockedNet[n.Name] = true
		}
	}
	images := map[string]bool{}
	for _, im := range inv.Images {
		images[im.ID] = true
	}

	blocked := map[string][]string{} // container name -> reasons
	for _, c := range inv.Containers {
		blocked[c.Name] = containerBlockers(c, s, images, blockedVol, blockedNet)
	}
	// A container that shares another's namespace or volumes, or links to
	// it, cannot move without it; repeat until nothing changes (chains).
	byID := map[string]string{}
	for _, c := range inv.Containers {
		byID[c.ID] = c.Name
	}
	for changed := true; changed; {
		changed = false
		for _, c := range inv.Containers {
			for _, dep := range containerDeps(c.Inspect.HostConfig, byID) {
				if len(blocked[dep]) > 0 && !hasPrefixIn(blocked[c.Name], "needs container "+dep) {
					blocked[c.Name] = append(blocked[c.Name], "needs container "+dep+", which cannot move")
					changed = true
				}
			}
		}
	}
	for _, c := range inv.Containers {
		for _, r := range blocked[c.Name] {
			out = append(out, Blocker{KindContainer, c.Name, r})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return kindOrder(out[i].Kind) < kindOrder(out[j].Kind)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func hasPrefixIn(ss []string, p string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func kindOrder(k string) int {
	switch k {
	case KindImage:
		return 0
	case KindNetwork:
		return 1
	case KindVolume:
		return 2
	}
	return 3
}

func containerBlockers(c Container, s Shift, images, blockedVol, blockedNet map[string]bool) []string {
	var rs []string
	if c.ChangeCount > 0 {
		rs = append(rs, fmt.Sprintf("its writable layer holds %d change(s) that recreating it would lose (%s); commit them to an image or move them into a volume", c.ChangeCount, strings.Join(c.Changes, ", ")))
	}
	if c.ChangesError != "" {
		rs = append(rs, "its writable layer could not be read, so what recreating it would lose is unknown: "+c.ChangesError)
	}
	if c.ImageID != "" && !images[c.ImageID] {
		rs = append(rs, fmt.Sprintf("its image %s (%s) is not in the data root", c.Image, shortID(c.ImageID)))
	}
	hc := c.Inspect.HostConfig
	if hc == nil {
		return append(rs, "the daemon reported no host configuration for it")
	}
	if s.To.Remapped() && !hc.UsernsMode.IsHost() {
		if hc.Privileged {
			rs = append(rs, "--privileged is refused under userns-remap unless the container runs with userns_mode = host")
		}
		for _, ns := range hostNamespaces(hc) {
			rs = append(rs, fmt.Sprintf("shares the host's %s namespace, which needs userns_mode = host under userns-remap", ns))
		}
	}
	for _, b := range c.Binds {
		if b.StatError != "" {
			continue // Docker makes a missing source as it did before
		}
		oldU, _ := s.From.UIDToContainer(b.UID)
		newU, uok := s.To.UIDToContainer(b.UID)
		oldG, _ := s.From.GIDToContainer(b.GID)
		newG, gok := s.To.GIDToContainer(b.GID)
		if !uok || !gok || oldU != newU || oldG != newG {
			rs = append(rs, fmt.Sprintf("bind mount %s -> %s: its owner %d:%d on the host is %s to the container's processes after the switch, %d:%d before",
				b.Source, b.Destination, b.UID, b.GID, viewOf(newU, uok, newG, gok), oldU, oldG))
		}
	}
	for _, m := range c.Inspect.Mounts {
		if m.Type == "volume" && blockedVol[m.Name] {
			rs = append(rs, fmt.Sprintf("uses volume %s, which cannot move", m.Name))
		}
	}
	if c.Inspect.NetworkSettings != nil {
		var nets []string
		for name := range c.Inspect.NetworkSettings.Networks {
			if blockedNet[name] {
				nets = append(nets, name)
			}
		}
		sort.Strings(nets)
		for _, n := range nets {
			rs = append(rs, fmt.Sprintf("is on network %s, which cannot move", n))
		}
	}
	return rs
}

func viewOf(u uint32, uok bool, g uint32, gok bool) string {
	us, gs := fmt.Sprint(u), fmt.Sprint(g)
	if !uok {
		us = "nobody"
	}
	if !gok {
		gs = "nogroup"
	}
	return us + ":" + gs
}

func hostNamespaces(hc *container.HostConfig) []string {
	var ns []string
	if hc.NetworkMode.IsHost() {
		ns = append(ns, "network")
	}
	if hc.PidMode.IsHost() {
		ns = append(ns, "PID")
	}
	if hc.IpcMode.IsHost() {
		ns = append(ns, "IPC")
	}
	if hc.UTSMode.IsHost() {
		ns = append(ns, "UTS")
	}
	return ns
}

// containerDeps names the containers c needs: the one whose network, PID
// or IPC namespace it joins, those it takes volumes from, those it links
// to. Docker records them by ID or by name; byID turns IDs into names.
func containerDeps(hc *container.HostConfig, byID map[string]string) []string {
	if hc == nil {
		return nil
	}
	var refs []string
	if n := hc.NetworkMode.ConnectedContainer(); n != "" {
		refs = append(refs, n)
	}
	if n := hc.PidMode.Container(); n != "" {
		refs = append(refs, n)
	}
	if n := hc.IpcMode.Container(); n != "" {
		refs = append(refs, n)
	}
	for _, v := range hc.VolumesFrom {
		name, _, _ := strings.Cut(v, ":")
		refs = append(refs, name)
	}
	for _, l := range hc.Links {
		name, _, _ := strings.Cut(l, ":")
		refs = append(refs, name)
	}
	var out []string
	seen := map[string]bool{}
	for _, r := range refs {
		r = strings.TrimPrefix(r, "/")
		if n, ok := byID[r]; ok {
			r = n
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
