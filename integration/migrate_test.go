package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockward/dockward/integration/sandbox"
	"github.com/dockward/dockward/modules/daemonjson/migrate"
	"github.com/moby/moby/client"
)

// The workload TestMigrate and BenchmarkMigrate move: a user-defined
// network with options and a fixed subnet, a named volume with files of
// root and of uid 1000, a running container (restart always, published
// port, memory and other limits, static address and alias) and a stopped
// one, and a sidecar in web's network namespace with an anonymous volume
// (its data must follow it). The sandbox machine has no cgroup memory controller (the host's
// cgroup2 hierarchy has none enabled), so Docker discards -m there with a
// warning: the test compares the memory limit with what the old root
// recorded, and checks the limits that need no controller (ulimits, shm).
const migrateWorkload = `set -e
docker network create --driver bridge --subnet 10.77.0.0/24 --gateway 10.77.0.1 \
	-o com.docker.network.bridge.name=br-mig -o com.docker.network.driver.mtu=1400 \
	--label app=mig mignet >/dev/null
docker volume create --label app=mig migvol >/dev/null
docker run --rm -v migvol:/data busybox:local sh -c '
	echo hello-from-root >/data/root.txt && chmod 640 /data/root.txt &&
	mkdir /data/u && echo owned-by-1000 >/data/u/f && chown -R 1000:1000 /data/u &&
	ln -s root.txt /data/link'
docker run -d --name web --restart always --network mignet --ip 10.77.0.10 --network-alias webalias \
	-p 8080:80 -m 64m --ulimit nofile=1024:2048 --shm-size 32m --stop-timeout 2 -v migvol:/data -e FOO=bar --label role=web \
	busybox:local httpd -f -p 80 -h /data >/dev/null
docker run --name worker --network mignet -p 9090:90 -m 32m -v migvol:/data -w /data -u 1000 \
	busybox:local sh -c 'cat /data/u/f' >/dev/null
docker run -d --name sidecar --network container:web -v /cache busybox:local \
	sh -c 'test -f /cache/seen || date >/cache/seen; exec sleep 100000' >/dev/null
`

// What cannot move, on purpose: a privileged container, one whose writable
// layer changed, one with a bind mount of root's directory.
const migrateBlocked = `set -e
mkdir -p /srv/bindsrc
docker create --name priv --privileged busybox:local true >/dev/null
docker run --name dirty busybox:local sh -c 'echo changed >/etc/motd' >/dev/null
docker create --name bindy -v /srv/bindsrc:/data busybox:local true >/dev/null
`

// TestMigrate moves a workload across the userns-remap switch on a real
// dockerd: Read, Blockers and Export on the daemon without remapping,
// daemon.json with userns-remap and a restart, then Import on the new root
// while another container holds web's port (web fails to start, the
// sidecar cannot follow, the rest moves), Import again once the port is
// free (the rest completes), checks the containers, network and volume
// there, Import a third time (nothing left to do), the old root untouched,
// and switching back shows the old state.
func TestMigrate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: boots a systemd-nspawn sandbox machine")
	}
	m := sandbox.Start(t)
	m.MustRun(t, "sh", "-c", migrateWorkload)
	m.MustRun(t, "sh", "-c", migrateBlocked)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	opts := migrate.Options{HostRoot: m.Root(), Logf: t.Logf}
	inv, err := migrate.Read(ctx, engine(t, m), opts)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Remapped || inv.DockerRootDir != "/var/lib/docker" {
		t.Fatalf("old root: remapped %v, %s; want an unremapped /var/lib/docker", inv.Remapped, inv.DockerRootDir)
	}
	t.Logf("Docker %s (API %s)", inv.ServerVersion, inv.APIVersion)
	names := func(kind string) []string {
		var out []string
		switch kind {
		case migrate.KindContainer:
			for _, c := range inv.Containers {
				out = append(out, c.Name)
			}
		case migrate.KindNetwork:
			for _, n := range inv.Networks {
				out = append(out, n.Name)
			}
		case migrate.KindVolume:
			for _, v := range inv.Volumes {
				out = append(out, v.Name)
			}
		case migrate.KindImage:
			for _, i := range inv.Images {
				out = append(out, i.Ref())
			}
		}
		return out
	}
	for kind, want := range map[string][]string{
		migrate.KindContainer: {"bindy", "dirty", "priv", "sidecar", "web", "worker"},
		migrate.KindNetwork:   {"mignet"},
		migrate.KindVolume:    {anonVolume(t, inv, "sidecar"), "migvol"},
		migrate.KindImage:     {"busybox:local"},
	} {
		if got := names(kind); !slices.Equal(got, want) {
			t.Errorf("inventory %ss = %v, want %v", kind, got, want)
		}
	}

	// dockerd makes the remap user with dockremap:100000:65536 on a host
	// without subordinate ranges; checked after the switch below.
	shift := migrate.Shift{To: migrate.RemapRange(100000, 100000, 65536)}
	blockers := inv.Blockers(shift)
	blockedBy := map[string]string{}
	for _, b := range blockers {
		t.Logf("blocker: %s", b)
		blockedBy[b.Kind+"/"+b.Name] += b.Reason + "; "
	}
	for name, want := range map[string]string{
		"priv":  "--privileged",
		"dirty": "/etc/motd",
		"bindy": "/srv/bindsrc",
	} {
		if got := blockedBy["container/"+name]; !strings.Contains(got, want) {
			t.Errorf("blockers of %s = %q, want one naming %q", name, got, want)
		}
	}
	if len(blockedBy) != 3 {
		t.Errorf("%d objects blocked, want exactly priv, dirty and bindy: %v", len(blockedBy), blockers)
	}

	dir := t.TempDir()
	if err := migrate.Export(ctx, engine(t, m), inv, dir, opts); err != nil {
		t.Fatal(err)
	}

	switchToRemap(t, m)
	subuid := m.MustRun(t, "grep", "^dockremap:", "/etc/subuid")
	subgid := m.MustRun(t, "grep", "^dockremap:", "/etc/subgid")
	if strings.TrimSpace(subuid) != "dockremap:100000:65536" || strings.TrimSpace(subgid) != "dockremap:100000:65536" {
		t.Fatalf("remap ranges: %q %q, the test assumed dockremap:100000:65536", subuid, subgid)
	}
	opts.Shift = shift

	// A failure midway: a service of the host holds web's published port,
	// so web is created but cannot start, and the sidecar in its
	// namespace cannot follow.
	m.MustRun(t, "systemd-run", "--unit=squatter", "--service-type=exec", "/bin/busybox", "httpd", "-f", "-p", "8080")
	res, err := migrate.Import(ctx, engine(t, m), dir, opts)
	for _, o := range resOutcomes(res) {
		t.Logf("outcome: %s", o)
	}
	if err == nil || !strings.Contains(err.Error(), "container web: created but not started") {
		t.Fatalf("import with web's port taken: %v", err)
	}
	if res.Root != "/var/lib/docker/100000.100000" {
		t.Errorf("import went to %s, want /var/lib/docker/100000.100000", res.Root)
	}
	wantStatus := map[string]migrate.Status{
		"image/busybox:local": migrate.Moved, "network/mignet": migrate.Moved, "volume/migvol": migrate.Moved,
		"volume/" + anonVolume(t, inv, "sidecar"): migrate.Moved,
		"container/web": migrate.Failed, "container/worker": migrate.Moved, "container/sidecar": migrate.Skipped,
		"container/priv": migrate.Skipped, "container/dirty": migrate.Skipped, "container/bindy": migrate.Skipped,
	}
	checkOutcomes(t, res, wantStatus)
	if o, _ := res.Find(migrate.KindContainer, "sidecar"); o.Reason != "needs container web, which did not move" {
		t.Errorf("sidecar: %s", o)
	}
	// Docker keeps running, the other objects stay moved.
	if got := inspectJSON(t, m, "worker", "{{.State.Status}}"); got != "created" {
		t.Errorf("worker after the failed import: %s", got)
	}

	// The operator frees the port; the next run completes the rest.
	m.MustRun(t, "systemctl", "stop", "squatter.service")
	res, err = migrate.Import(ctx, engine(t, m), dir, opts)
	for _, o := range resOutcomes(res) {
		t.Logf("outcome: %s", o)
	}
	if err != nil {
		t.Fatalf("import after the port was freed: %v", err)
	}
	for k, s := range wantStatus {
		if s == migrate.Moved {
			wantStatus[k] = migrate.Present
		}
	}
	wantStatus["container/web"] = migrate.Present // made by the first run, started by this one
	wantStatus["container/sidecar"] = migrate.Moved
	checkOutcomes(t, res, wantStatus)
	if o, _ := res.Find(migrate.KindContainer, "web"); o.Detail != "started" {
		t.Errorf("web: %s", o)
	}

	// The containers, as Docker reports them now.
	oldMemory := map[string]int64{}
	for _, c := range inv.Containers {
		oldMemory[c.Name] = c.Inspect.HostConfig.Memory
	}
	if oldMemory["web"] != 64<<20 {
		t.Logf("note: the old root recorded web's memory limit as %d, not 64 MiB: this machine's Docker has no memory controller and discarded -m", oldMemory["web"])
	}
	web := inspectJSON(t, m, "web", `{{.State.Running}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Memory}} `+
		`{{(index .HostConfig.Ulimits 0).Name}}={{(index .HostConfig.Ulimits 0).Soft}}:{{(index .HostConfig.Ulimits 0).Hard}} {{.HostConfig.ShmSize}} `+
		`{{(index (index .HostConfig.PortBindings "80/tcp") 0).HostPort}} {{.NetworkSettings.Networks.mignet.IPAddress}} `+
		`{{.NetworkSettings.Networks.mignet.Aliases}} {{.Config.Env}} {{.Config.Labels.role}} {{.Config.Cmd}} {{.Config.StopTimeout}}`)
	if want := fmt.Sprintf("true always %d nofile=1024:2048 33554432 8080 10.77.0.10 [webalias] [FOO=bar PATH=/bin] web [httpd -f -p 80 -h /data] 2", oldMemory["web"]); web != want {
		t.Errorf("web after the move:\n got %s\nwant %s", web, want)
	}
	worker := inspectJSON(t, m, "worker", `{{.State.Running}} {{.State.Status}} {{.HostConfig.Memory}} {{.Config.User}} {{.Config.WorkingDir}} `+
		`{{(index (index .HostConfig.PortBindings "90/tcp") 0).HostPort}} {{.HostConfig.NetworkMode}}`)
	if want := fmt.Sprintf("false created %d 1000 /data 9090 mignet", oldMemory["worker"]); worker != want {
		t.Errorf("worker after the move:\n got %s\nwant %s", worker, want)
	}
	netw := strings.TrimSpace(m.MustRun(t, "docker", "network", "inspect", "-f",
		`{{.Driver}} {{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}} {{index .Options "com.docker.network.bridge.name"}} {{index .Options "com.docker.network.driver.mtu"}} {{.Labels.app}} {{.Internal}}`, "mignet"))
	if want := "bridge 10.77.0.0/24 10.77.0.1 br-mig 1400 mig false"; netw != want {
		t.Errorf("mignet after the move:\n got %s\nwant %s", netw, want)
	}
	// The sidecar joined the new web's namespace and has its
	// anonymous volume back with the data in it.
	side := inspectJSON(t, m, "sidecar", `{{.State.Running}} {{.HostConfig.NetworkMode}} {{range .Mounts}}{{.Name}}:{{.Destination}}{{end}}`)
	// Docker records the namespace by ID: the new web's.
	webNewID := inspectJSON(t, m, "web", "{{.Id}}")
	if want := "true container:" + webNewID + " " + anonVolume(t, inv, "sidecar") + ":/cache"; side != want {
		t.Errorf("sidecar after the move:\n got %s\nwant %s", side, want)
	}
	oldSeen, err := os.ReadFile(filepath.Join(m.Root(), "var/lib/docker/volumes", anonVolume(t, inv, "sidecar"), "_data/seen"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.MustRun(t, "docker", "exec", "sidecar", "cat", "/cache/seen"); got != string(oldSeen) {
		t.Errorf("sidecar's /cache/seen = %q, the old root has %q", got, oldSeen)
	}

	// The running one serves the moved data through its published port.
	if out := m.MustRun(t, "busybox", "wget", "-q", "-O-", "-T", "10", "http://127.0.0.1:8080/root.txt"); strings.TrimSpace(out) != "hello-from-root" {
		t.Errorf("GET :8080/root.txt = %q", out)
	}
	// The container's root reads and writes what root owned, uid 1000 what
	// uid 1000 owned; on the host they are 100000 and 101000.
	m.MustRun(t, "docker", "exec", "web", "sh", "-c", "cat /data/root.txt && echo more >>/data/root.txt && touch /data/new && test -L /data/link")
	m.MustRun(t, "docker", "run", "--rm", "-u", "1000", "-v", "migvol:/data", "busybox:local", "sh", "-c", "echo more >>/data/u/f")
	newData := filepath.Join(m.Root(), "var/lib/docker/100000.100000/volumes/migvol/_data")
	for p, want := range map[string][2]uint32{"": {100000, 100000}, "root.txt": {100000, 100000}, "new": {100000, 100000}, "u": {101000, 101000}, "u/f": {101000, 101000}} {
		if got := owner(t, filepath.Join(newData, p)); got != want {
			t.Errorf("new volume %s owned by %v on the host, want %v", p, got, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(newData, "root.txt")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("root.txt mode: %v %v, want 0640", fi.Mode(), err)
	}

	// Again: everything is recognised, nothing is made twice.
	res3, err := migrate.Import(ctx, engine(t, m), dir, opts)
	if err != nil {
		t.Fatalf("third import: %v", err)
	}
	wantStatus["container/sidecar"] = migrate.Present
	checkOutcomes(t, res3, wantStatus)
	for _, o := range res3.Outcomes {
		if o.Detail != "" {
			t.Errorf("third import did something: %s", o)
		}
	}

	// The old root is as it was.
	oldData := filepath.Join(m.Root(), "var/lib/docker/volumes/migvol/_data")
	if got := owner(t, filepath.Join(oldData, "u/f")); got != [2]uint32{1000, 1000} {
		t.Errorf("old volume's u/f owned by %v, want 1000:1000", got)
	}
	if b, err := os.ReadFile(filepath.Join(oldData, "root.txt")); err != nil || string(b) != "hello-from-root\n" {
		t.Errorf("old volume's root.txt: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(oldData, "new")); err == nil {
		t.Error("a write in the new volume showed up in the old one")
	}

	// Switching back shows the old state: the same objects, web running
	// again by its restart policy.
	m.WriteFile(t, "/etc/docker/daemon.json", []byte("{}\n"), 0o644)
	restartDocker(t, m)
	back, err := migrate.Read(ctx, engine(t, m), migrate.Options{HostRoot: m.Root()})
	if err != nil {
		t.Fatal(err)
	}
	if back.DockerRootDir != "/var/lib/docker" {
		t.Errorf("after switching back docker runs on %s", back.DockerRootDir)
	}
	inv = back
	for kind, want := range map[string][]string{
		migrate.KindContainer: {"bindy", "dirty", "priv", "sidecar", "web", "worker"},
		migrate.KindNetwork:   {"mignet"},
		migrate.KindImage:     {"busybox:local"},
	} {
		if got := names(kind); !slices.Equal(got, want) {
			t.Errorf("old root after switching back: %ss = %v, want %v", kind, got, want)
		}
	}
	if got := inspectJSON(t, m, "web", "{{.State.Running}}"); got != "true" {
		t.Errorf("web in the old root after switching back: running %s", got)
	}
}

// anonVolume is the name of the anonymous volume of a container.
func anonVolume(t *testing.T, inv *migrate.Inventory, name string) string {
	t.Helper()
	for _, c := range inv.Containers {
		if c.Name == name {
			for _, mp := range c.Inspect.Mounts {
				if mp.Type == "volume" && mp.Name != "migvol" {
					return mp.Name
				}
			}
		}
	}
	t.Fatalf("container %s has no anonymous volume", name)
	return ""
}

func resOutcomes(r *migrate.Result) []migrate.Outcome {
	if r == nil {
		return nil
	}
	return r.Outcomes
}

func checkOutcomes(t *testing.T, res *migrate.Result, want map[string]migrate.Status) {
	t.Helper()
	got := map[string]migrate.Status{}
	for _, o := range res.Outcomes {
		got[o.Kind+"/"+o.Name] = o.Status
	}
	for k, s := range want {
		if got[k] != s {
			t.Errorf("%s: %s, want %s", k, got[k], s)
		}
	}
	if len(got) != len(want) {
		t.Errorf("outcomes for %d objects, want %d: %v", len(got), len(want), res.Outcomes)
	}
}

// engine is an Engine API client for the machine's dockerd, through its
// socket as seen from this host. A new one after each restart of docker.
func engine(t testing.TB, m *sandbox.Machine) *client.Client {
	t.Helper()
	c, err := client.New(client.WithHost("unix://" + filepath.Join(m.Root(), "run/docker.sock")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// switchToRemap writes daemon.json with userns-remap and restarts docker
// in the machine: the data-root switch.
func switchToRemap(t testing.TB, m *sandbox.Machine) {
	t.Helper()
	m.WriteFile(t, "/etc/docker/daemon.json", []byte(`{"userns-remap": "default"}`+"\n"), 0o644)
	restartDocker(t, m)
	if got := strings.TrimSpace(m.MustRun(t, "docker", "info", "-f", "{{.DockerRootDir}}")); got != "/var/lib/docker/100000.100000" {
		t.Fatalf("after the switch docker runs on %s", got)
	}
}

// restartDocker restarts docker.service in the machine. Debian's unit
// allows 3 starts in 60 s; a benchmark switching back and forth makes
// more, so the start counter is reset first.
func restartDocker(t testing.TB, m *sandbox.Machine) {
	t.Helper()
	m.MustRun(t, "systemctl", "reset-failed", "docker.service")
	m.MustRun(t, "systemctl", "restart", "docker.service")
}

func inspectJSON(t *testing.T, m *sandbox.Machine, name, format string) string {
	t.Helper()
	return strings.TrimSpace(m.MustRun(t, "docker", "inspect", "-f", format, name))
}

func owner(t *testing.T, p string) [2]uint32 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return [2]uint32{st.Uid, st.Gid}
}

// TestMigrateBetweenRanges moves the workload from one remapped root to
// another: the remap user's ranges change from 100000 to 200000 (a
// data-root switch too), so file owners move from 100000+u to 200000+u.
func TestMigrateBetweenRanges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: boots a systemd-nspawn sandbox machine")
	}
	m := sandbox.Start(t)
	switchToRemap(t, m)
	m.ImportBusybox(t)
	m.MustRun(t, "sh", "-c", migrateWorkload)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	from, to := migrate.RemapRange(100000, 100000, 65536), migrate.RemapRange(200000, 200000, 65536)
	opts := migrate.Options{HostRoot: m.Root(), Shift: migrate.Shift{From: from, To: to}, Logf: t.Logf}
	inv, err := migrate.Read(ctx, engine(t, m), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Remapped || inv.DockerRootDir != "/var/lib/docker/100000.100000" {
		t.Fatalf("old root: remapped %v, %s", inv.Remapped, inv.DockerRootDir)
	}
	if bl := inv.Blockers(opts.Shift); len(bl) > 0 {
		t.Fatalf("blockers: %v", bl)
	}
	dir := t.TempDir()
	if err := migrate.Export(ctx, engine(t, m), inv, dir, opts); err != nil {
		t.Fatal(err)
	}

	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		m.MustRun(t, "sed", "-i", "s/^dockremap:100000:65536$/dockremap:200000:65536/", f)
	}
	restartDocker(t, m)
	if got := strings.TrimSpace(m.MustRun(t, "docker", "info", "-f", "{{.DockerRootDir}}")); got != "/var/lib/docker/200000.200000" {
		t.Fatalf("after changing the ranges docker runs on %s", got)
	}

	res, err := migrate.Import(ctx, engine(t, m), dir, opts)
	for _, o := range resOutcomes(res) {
		t.Logf("outcome: %s", o)
	}
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if n := res.Count(migrate.Moved); n != len(res.Outcomes) {
		t.Errorf("%d of %d objects moved", n, len(res.Outcomes))
	}
	newData := filepath.Join(m.Root(), "var/lib/docker/200000.200000/volumes/migvol/_data")
	for p, want := range map[string][2]uint32{"": {200000, 200000}, "root.txt": {200000, 200000}, "u/f": {201000, 201000}} {
		if got := owner(t, filepath.Join(newData, p)); got != want {
			t.Errorf("new volume %s owned by %v on the host, want %v", p, got, want)
		}
	}
	if got := inspectJSON(t, m, "web", "{{.State.Running}}"); got != "true" {
		t.Errorf("web running: %s", got)
	}
	m.MustRun(t, "docker", "exec", "web", "sh", "-c", "cat /data/root.txt && echo more >>/data/root.txt")
	m.MustRun(t, "docker", "run", "--rm", "-u", "1000", "-v", "migvol:/data", "busybox:local", "sh", "-c", "echo more >>/data/u/f")
	if got := owner(t, filepath.Join(m.Root(), "var/lib/docker/100000.100000/volumes/migvol/_data/u/f")); got != [2]uint32{101000, 101000} {
		t.Errorf("old volume's u/f owned by %v, want 101000:101000", got)
	}
}
