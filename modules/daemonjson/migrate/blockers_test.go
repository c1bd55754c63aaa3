package migrate

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// ctr is a container of the inventory with the given host configuration.
func ctr(name string, hc container.HostConfig, mod ...func(*Container)) Container {
	c := Container{
		Name: name, ID: "id-" + name + "-0123456789abcdef", Image: "app:1", ImageID: "sha256:app",
		Inspect: container.InspectResponse{
			ID: "id-" + name + "-0123456789abcdef", Name: "/" + name,
			Config: &container.Config{Image: "app:1"}, HostConfig: &hc,
		},
	}
	for _, f := range mod {
		f(&c)
	}
	return c
}

func TestBlockers(t *testing.T) {
	enable := Shift{To: remap100k}
	base := func(cs ...Container) *Inventory {
		return &Inventory{
			Images:     []Image{{ID: "sha256:app", Tags: []string{"app:1"}}},
			Networks:   []Network{{Name: "front", Inspect: network.Inspect{Network: network.Network{Name: "front", Scope: "local", Driver: "bridge"}}}},
			Volumes:    []Volume{{Name: "data", Driver: "local"}},
			Containers: cs,
		}
	}
	tests := []struct {
		name  string
		inv   *Inventory
		shift Shift
		want  []Blocker
	}{
		{"plain container moves", base(ctr("web", container.HostConfig{NetworkMode: "front"})), enable, nil},
		{"writable layer changes", base(ctr("web", container.HostConfig{}, func(c *Container) {
			c.Changes, c.ChangeCount = []string{"C /etc", "A /etc/motd"}, 2
		})), enable, []Blocker{{KindContainer, "web", "its writable layer holds 2 change(s) that recreating it would lose (C /etc, A /etc/motd); commit them to an image or move them into a volume"}}},
		{"writable layer unreadable", base(ctr("web", container.HostConfig{}, func(c *Container) {
			c.ChangesError = "Error response from daemon: layer does not exist"
		})), enable, []Blocker{{KindContainer, "web", "its writable layer could not be read, so what recreating it would lose is unknown: Error response from daemon: layer does not exist"}}},
		{"privileged under remap", base(ctr("p", container.HostConfig{Privileged: true})), enable,
			[]Blocker{{KindContainer, "p", "--privileged is refused under userns-remap unless the container runs with userns_mode = host"}}},
		{"privileged with userns host", base(ctr("p", container.HostConfig{Privileged: true, UsernsMode: "host"})), enable, nil},
		{"privileged when remap is switched off", base(ctr("p", container.HostConfig{Privileged: true})), Shift{From: remap100k}, nil},
		{"host namespaces", base(ctr("h", container.HostConfig{NetworkMode: "host", PidMode: "host", IpcMode: "host", UTSMode: "host"})), enable, []Blocker{
			{KindContainer, "h", "shares the host's network namespace, which needs userns_mode = host under userns-remap"},
			{KindContainer, "h", "shares the host's PID namespace, which needs userns_mode = host under userns-remap"},
			{KindContainer, "h", "shares the host's IPC namespace, which needs userns_mode = host under userns-remap"},
			{KindContainer, "h", "shares the host's UTS namespace, which needs userns_mode = host under userns-remap"},
		}},
		{"bind owned by host root", base(ctr("b", container.HostConfig{}, func(c *Container) {
			c.Binds = []Bind{{Source: "/srv/x", Destination: "/x", RW: true}}
		})), enable, []Blocker{{KindContainer, "b", "bind mount /srv/x -> /x: its owner 0:0 on the host is nobody:nogroup to the container's processes after the switch, 0:0 before"}}},
		{"bind already owned by the remapped root", base(ctr("b", container.HostConfig{}, func(c *Container) {
			c.Binds = []Bind{{Source: "/srv/x", Destination: "/x", UID: 100000, GID: 100000}}
		})), Shift{From: remap100k, To: remap100k}, nil},
		{"bind in the new range but not the old", base(ctr("b", container.HostConfig{}, func(c *Container) {
			c.Binds = []Bind{{Source: "/srv/x", Destination: "/x", UID: 101000, GID: 101000}}
		})), enable, []Blocker{{KindContainer, "b", "bind mount /srv/x -> /x: its owner 101000:101000 on the host is 1000:1000 to the container's processes after the switch, 101000:101000 before"}}},
		{"missing bind source is Docker's to make", base(ctr("b", container.HostConfig{}, func(c *Container) {
			c.Binds = []Bind{{Source: "/srv/x", Destination: "/x", StatError: "stat /srv/x: no such file or directory"}}
		})), enable, nil},
		{"image not in the root", base(ctr("i", container.HostConfig{}, func(c *Container) { c.ImageID = "sha256:0123456789abcdef0" })), enable,
			[]Blocker{{KindContainer, "i", "its image app:1 (0123456789ab) is not in the data root"}}},
		{"no host configuration", base(Container{Name: "x", ImageID: "sha256:app"}), enable,
			[]Blocker{{KindContainer, "x", "the daemon reported no host configuration for it"}}},
		{"volume driver, and its user", func() *Inventory {
			inv := base(ctr("v", container.HostConfig{}, func(c *Container) {
				c.Inspect.Mounts = []container.MountPoint{{Type: "volume", Name: "nfsdata", Destination: "/d"}}
			}))
			inv.Volumes = append(inv.Volumes, Volume{Name: "nfsdata", Driver: "netapp"})
			return inv
		}(), enable, []Blocker{
			{KindVolume, "nfsdata", `volume driver "netapp" keeps the data outside the data root; recreate it by hand`},
			{KindContainer, "v", "uses volume nfsdata, which cannot move"},
		}},
		{"swarm network, and its user", func() *Inventory {
			inv := base(ctr("s", container.HostConfig{NetworkMode: "ov"}, func(c *Container) {
				c.Inspect.NetworkSettings = &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{"ov": {}, "front": {}}}
			}))
			inv.Networks = append(inv.Networks, Network{Name: "ov", Inspect: network.Inspect{Network: network.Network{Name: "ov", Scope: "swarm", Driver: "overlay"}}})
			return inv
		}(), enable, []Blocker{
			{KindNetwork, "ov", "swarm-scoped network (driver overlay): the swarm manages it"},
			{KindContainer, "s", "is on network ov, which cannot move"},
		}},
		{"a chain of shared namespaces", base(
			ctr("a", container.HostConfig{Privileged: true}),
			ctr("b", container.HostConfig{NetworkMode: "container:id-a-0123456789abcdef"}),
			ctr("c", container.HostConfig{VolumesFrom: []string{"b:ro"}}),
			ctr("d", container.HostConfig{Links: []string{"/c:/d/cee"}}),
		), enable, []Blocker{
			{KindContainer, "a", "--privileged is refused under userns-remap unless the container runs with userns_mode = host"},
			{KindContainer, "b", "needs container a, which cannot move"},
			{KindContainer, "c", "needs container b, which cannot move"},
			{KindContainer, "d", "needs container c, which cannot move"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.inv.Blockers(tt.shift)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Blockers (-want +got):\n%s", diff)
			}
		})
	}
}
