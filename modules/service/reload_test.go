package service

import (
	"testing"

	"github.com/dockward/dockward/agent"
)

func TestReloadable(t *testing.T) {
	dj := func(targets ...string) []agent.Change {
		var cs []agent.Change
		for _, t := range targets {
			cs = append(cs, agent.Change{Action: agent.Update, Target: t})
		}
		return cs
	}
	for _, tc := range []struct {
		name string
		owed map[string][]agent.Change
		want bool
	}{
		{"live-restore only", map[string][]agent.Change{"docker_daemon": dj("live-restore")}, true},
		{"registry settings", map[string][]agent.Change{"docker_daemon": dj("registry-mirrors", "insecure-registries", "debug", "labels")}, true},
		{"nested key of a reloadable one", map[string][]agent.Change{"docker_daemon": dj("runtimes.crun")}, true},
		{"log-opts needs a restart", map[string][]agent.Change{"docker_daemon": dj("live-restore", "log-opts")}, false},
		{"userns-remap needs a restart", map[string][]agent.Change{"docker_daemon": dj("userns-remap")}, false},
		{"features are read at start", map[string][]agent.Change{"docker_daemon": dj("features")}, false},
		{"builder is read at start", map[string][]agent.Change{"docker_daemon": dj("builder")}, false},
		{"the file as a whole", map[string][]agent.Change{"docker_daemon": dj("/etc/docker/daemon.json")}, false},
		{"subordinate ids always restart", map[string][]agent.Change{"subordinate_ids.dockremap": dj("debug")}, false},
		{"mixed modules", map[string][]agent.Change{"docker_daemon": dj("debug"), "subordinate_ids.dockremap": dj("/etc/subuid")}, false},
		{"nothing owed", map[string][]agent.Change{}, false},
	} {
		if got := onlyReloadable(tc.owed); got != tc.want {
			t.Errorf("%s: onlyReloadable = %v, want %v", tc.name, got, tc.want)
		}
	}
}
