package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"
)

func verdicts(fs []Finding) map[string]bool {
	m := map[string]bool{}
	for _, f := range fs {
		m[f.Check] = f.Pass
	}
	return m
}

func TestCheckDaemon(t *testing.T) {
	good := system.Info{SecurityOptions: []string{"name=seccomp,profile=builtin", "name=userns", "name=cgroupns"}, LiveRestoreEnabled: true, LoggingDriver: "json-file"}
	if diff := cmp.Diff(map[string]bool{"userns-remap": true, "live-restore": true, "log-driver": true}, verdicts(CheckDaemon(good))); diff != "" {
		t.Fatal(diff)
	}
	bad := system.Info{SecurityOptions: []string{"name=seccomp,profile=builtin"}, LoggingDriver: "none"}
	if diff := cmp.Diff(map[string]bool{"userns-remap": false, "live-restore": false, "log-driver": false}, verdicts(CheckDaemon(bad))); diff != "" {
		t.Fatal(diff)
	}
}

func TestCheckContainer(t *testing.T) {
	hardened := container.InspectResponse{Name: "/web", HostConfig: &container.HostConfig{
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3"}},
	}}
	for check, pass := range verdicts(CheckContainer(hardened)) {
		if !pass {
			t.Errorf("hardened container fails %s", check)
		}
	}
	loose := container.InspectResponse{Name: "/agent", HostConfig: &container.HostConfig{
		Privileged:  true,
		NetworkMode: "host",
		PidMode:     "host",
		UsernsMode:  "host",
		CapAdd:      []string{"SYS_ADMIN", "CHOWN"},
		LogConfig:   container.LogConfig{Type: "json-file"},
	}}
	loose.Mounts = []container.MountPoint{{Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock"}}
	fs := CheckContainer(loose)
	for check, pass := range verdicts(fs) {
		if pass {
			t.Errorf("loose container passes %s", check)
		}
	}
	for _, f := range fs {
		if f.Target != "agent" || f.Detail == "" {
			t.Errorf("finding without target or detail: %+v", f)
		}
	}
}

func TestSubIDsAndReport(t *testing.T) {
	root := t.TempDir()
	_ = os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	_ = os.WriteFile(filepath.Join(root, "etc/subuid"), []byte("dockremap:100000:65536\n"), 0o644)
	_ = os.WriteFile(filepath.Join(root, "etc/subgid"), []byte("alice:100000:65536\n"), 0o644)
	rep := Run(t.Context(), Options{Root: root, RemapUser: "dockremap"})
	if rep.Passed != 1 || rep.Failed != 1 {
		t.Fatalf("%+v", rep)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "FAIL  subordinate-ids") || !strings.Contains(b.String(), "1 passed, 1 failed") {
		t.Fatalf("text:\n%s", b.String())
	}
}
