package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAuditWatches(t *testing.T) {
	got := parseAuditWatches([]byte(`# docker
-w /usr/bin/dockerd -k docker
-a exit,always -F path=/run/containerd -F perm=war -k docker
-a always,exit -F dir=/var/lib/docker -F perm=war -k docker
#-w /etc/docker -k docker
-w
`))
	want := map[string]bool{"/usr/bin/dockerd": true, "/run/containerd": true, "/var/lib/docker": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
}

func TestParseMountPoints(t *testing.T) {
	got := parseMountPoints([]byte("22 1 0:21 / / rw - ext4 /dev/sda1 rw\n" +
		"30 22 0:30 / /var/lib/docker rw - xfs /dev/sdb1 rw\n" +
		"31 22 0:31 / /mnt/with\\040space rw - tmpfs tmpfs rw\nshort line\n"))
	want := map[string]bool{"/": true, "/var/lib/docker": true, "/mnt/with space": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
}

func TestParseGroups(t *testing.T) {
	got := parseGroups([]byte("root:x:0:\ndocker:x:995:alice, bob\nbad:x:notanumber:\n"))
	want := map[string]Group{"root": {GID: 0}, "docker": {GID: 995, Members: []string{"alice", "bob"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
}

func TestDaemonSetting(t *testing.T) {
	s := &Snapshot{DaemonJSON: map[string]any{"icc": false, "log-level": "warn", "hosts": []any{"unix:///run/docker.sock"}},
		DockerdArgs: []string{"/usr/bin/dockerd", "--icc", "-H", "tcp://0.0.0.0:2376", "--log-level=debug", "--live-restore"}}
	for key, want := range map[string]string{"icc": "true", "log-level": "debug", "live-restore": "true", "userns-remap": ""} {
		if got := s.DaemonSetting(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got := s.DaemonList("hosts", "-H", "--host"); !cmp.Equal(got, []string{"tcp://0.0.0.0:2376", "unix:///run/docker.sock"}) {
		t.Errorf("hosts %v", got)
	}
}

// gatherFiles under a --root tree: units in systemd's order, binaries once
// each however many directories lead to them, certificates, audit rules.
func TestGatherFiles(t *testing.T) {
	root := t.TempDir()
	put := func(p, data string, mode os.FileMode) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	put("/etc/systemd/system/docker.service", "", 0o664)
	put("/usr/bin/runc", "", 0o755)
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	put("/etc/docker/daemon.json", `{"tlscacert": "/etc/docker/ca.pem"}`, 0o644)
	put("/etc/docker/certs.d/reg:5000/ca.crt", "", 0o444)
	put("/etc/audit/rules.d/docker.rules", "-w /usr/bin/runc -k docker\n-w /usr/lib/systemd/system/docker.socket -k docker\n", 0o640)
	put("/usr/lib/systemd/system/docker.socket", "", 0o644)
	if err := os.Symlink("usr/lib", filepath.Join(root, "lib")); err != nil {
		t.Fatal(err)
	}
	s := gather(t.Context(), gatherOptions{root: root})
	if s.Units["docker.service"] != "/etc/systemd/system/docker.service" || s.Files["/etc/systemd/system/docker.service"].Mode.Perm() != 0o664 {
		t.Errorf("units %v", s.Units)
	}
	if !cmp.Equal(s.Binaries["runc"], []string{"/usr/bin/runc"}) {
		t.Errorf("runc %v", s.Binaries["runc"])
	}
	if !cmp.Equal(s.CertFiles, []string{"/etc/docker/certs.d/reg:5000/ca.crt"}) || s.Files["/etc/docker/ca.pem"].Exists {
		t.Errorf("certs %v, ca %+v", s.CertFiles, s.Files["/etc/docker/ca.pem"])
	}
	if !s.AuditWatches["/usr/bin/runc"] || !strings.HasSuffix(s.AuditRuleFiles[0], "docker.rules") {
		t.Errorf("audit %v %v", s.AuditWatches, s.AuditRuleFiles)
	}
	// /lib/systemd/system/docker.socket is found first (systemd's order)
	// and is watched through /usr/lib, where /lib leads.
	if s.Units["docker.socket"] != "/lib/systemd/system/docker.socket" {
		t.Errorf("docker.socket at %q", s.Units["docker.socket"])
	}
	if r := auditWatch(s, "/lib/systemd/system/docker.socket"); r.status != Pass || !strings.Contains(r.detail, "auditd is not installed") {
		t.Errorf("docker.socket watched through /usr/lib, no auditd: %+v", r)
	}
}

func FuzzParsers(f *testing.F) {
	f.Add([]byte("-w /usr/bin/dockerd -k docker\n"))
	f.Add([]byte("22 1 0:21 / /a\\040b rw - ext4 /dev/sda1 rw\n"))
	f.Add([]byte("docker:x:995:alice,bob\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseAuditWatches(b)
		parseMountPoints(b)
		parseGroups(b)
		flagValues(strings.Fields(string(b)), "--icc", "-H", "-l")
	})
}
