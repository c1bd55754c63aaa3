package daemonjson

import (
	"context"
	"testing"

	"github.com/moby/moby/client"
)

// BenchmarkDetectSwitch measures what the data-root check adds to every
// plan of docker_daemon: on a converged host it reads daemon.json and the
// ID files and asks nothing else; with a switch pending it also asks the
// Engine API (here a fake over loopback HTTP) for the root and inventory.
func BenchmarkDetectSwitch(b *testing.B) {
	b.Run("converged", func(b *testing.B) {
		c := newSwitchCase(b, withSwitch(""), nil)
		writeFile(b, c.tree+"/etc/docker/daemon.json", "{\n  \"userns-remap\": \"default\",\n  \"log-driver\": \"json-file\"\n}\n")
		writeFile(b, c.tree+"/etc/subuid", "dockremap:100000:65536\n")
		writeFile(b, c.tree+"/etc/subgid", "dockremap:100000:65536\n")
		c.m.Engine = func() (*client.Client, error) { b.Fatal("Engine API asked on a converged host"); return nil, nil }
		for b.Loop() {
			if sw, err := c.m.detectSwitch(context.Background(), c.env, false); sw != nil || err != nil {
				b.Fatal(sw, err)
			}
		}
	})
	b.Run("pending", func(b *testing.B) {
		c := newSwitchCase(b, withSwitch(""), adoptedHost("/var/lib/docker"))
		writeFile(b, c.tree+"/etc/docker/daemon.json", `{"log-driver": "json-file"}`)
		c.subIDsPlanned(100000, true)
		for b.Loop() {
			if sw, err := c.m.detectSwitch(context.Background(), c.env, false); sw == nil || err != nil {
				b.Fatal(sw, err)
			}
		}
	})
}
