package migrate

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/moby/moby/api/types/container"
)

// FuzzInventory: an inventory is the Engine API's answers (outside input)
// and, read back, a file; whatever it holds, Blockers and CreateOptions
// neither panic nor hand back a create request without a name and an
// image.
func FuzzInventory(f *testing.F) {
	f.Add(`{"containers":[{"name":"a","id":"1","image_id":"sha256:x","inspect":{"Config":{"Image":"x"},"HostConfig":{"NetworkMode":"container:1","VolumesFrom":["1:ro"],"Links":["/b:/a/b"]},"Mounts":[{"Type":"volume","Name":"v","Destination":"/d"}],"NetworkSettings":{"Networks":{"n":null,"m":{"Aliases":["1"]}}}}}],"volumes":[{"name":"v","driver":"x"}],"networks":[{"name":"n","inspect":{"Scope":"swarm"}}]}`)
	f.Add(`{"containers":[{"name":"b","inspect":{"HostConfig":{"Privileged":true,"PidMode":"host"}},"binds":[{"source":"/","uid":4294967295}]}]}`)
	f.Add(`{"images":[{"id":"sha256:x","tags":["x:1"]}],"containers":[{"name":"c","image_id":"sha256:x","inspect":{"Config":{"Image":"x:1"},"HostConfig":{}}}]}`)
	shifts := []Shift{{}, {To: remap100k}, {From: remap100k}, {From: remap100k, To: remap200k}}
	f.Fuzz(func(t *testing.T, in string) {
		var inv Inventory
		if json.Unmarshal([]byte(in), &inv) != nil {
			return
		}
		for _, s := range shifts {
			_ = inv.Blockers(s)
		}
		for _, c := range inv.Containers {
			o, err := inv.CreateOptions(c)
			if err != nil {
				continue
			}
			if o.Name != c.Name || o.Config == nil || o.HostConfig == nil {
				t.Fatalf("create request for %q without name or configuration: %+v", c.Name, o)
			}
		}
		byID := map[string]string{}
		for _, c := range inv.Containers {
			byID[c.ID] = c.Name
		}
		if got := orderContainers(inv.Containers, byID); len(got) != len(inv.Containers) {
			t.Fatalf("orderContainers kept %d of %d", len(got), len(inv.Containers))
		}
	})
}

func TestOrderContainers(t *testing.T) {
	mk := func(name, netmode string, from ...string) Container {
		c := ctr(name, container.HostConfig{NetworkMode: container.NetworkMode(netmode), VolumesFrom: from})
		return c
	}
	tests := []struct {
		name string
		in   []Container
		want string
	}{
		{"independent keep their order", []Container{mk("b", ""), mk("a", "")}, "[b a]"},
		{"a namespace owner first", []Container{mk("side", "container:id-web-0123456789abcdef"), mk("web", "")}, "[web side]"},
		{"by name too", []Container{mk("side", "container:web"), mk("web", "")}, "[web side]"},
		{"chains", []Container{mk("c", "", "b"), mk("b", "", "a:ro"), mk("a", "")}, "[a b c]"},
		{"a cycle keeps everyone", []Container{mk("x", "", "y"), mk("y", "", "x")}, "[y x]"},
		{"a reference to nobody", []Container{mk("x", "container:gone")}, "[x]"},
		{"a repeated name keeps both", []Container{mk("x", ""), mk("x", "")}, "[x x]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			byID := map[string]string{}
			for _, c := range tt.in {
				byID[c.ID] = c.Name
			}
			var names []string
			for _, c := range orderContainers(tt.in, byID) {
				names = append(names, c.Name)
			}
			if got := fmt.Sprint(names); got != tt.want {
				t.Errorf("order %s, want %s", got, tt.want)
			}
		})
	}
}
