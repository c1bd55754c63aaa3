package daemonjson

import (
	"testing"

	"github.com/dockward/dockward/agent"
)

// Which daemon.json key changes say a reload takes them in. That the engine
// owes a reload only when every owed change says so (subordinate_ids'
// changes never do) is tested in agent (TestDueKind).
func TestReloadable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		targets []string
		want    bool
	}{
		{"live-restore only", []string{"live-restore"}, true},
		{"registry settings", []string{"registry-mirrors", "insecure-registries", "debug", "labels"}, true},
		{"nested key of a reloadable one", []string{"runtimes.crun"}, true},
		{"log-opts needs a restart", []string{"live-restore", "log-opts"}, false},
		{"userns-remap needs a restart", []string{"userns-remap"}, false},
		{"features are read at start", []string{"features"}, false},
		{"builder is read at start", []string{"builder"}, false},
		{"the file as a whole", []string{"/etc/docker/daemon.json"}, false},
	} {
		var cs []agent.Change
		for _, tg := range tc.targets {
			cs = append(cs, agent.Change{Action: agent.Update, Target: tg})
		}
		all := true
		for _, c := range markReloads(cs) {
			all = all && c.Reload
		}
		if all != tc.want {
			t.Errorf("%s: every change reloadable = %v, want %v", tc.name, all, tc.want)
		}
	}
}
