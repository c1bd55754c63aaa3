package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/integration/sandbox"
)

// The agent's units on fresh sandbox machines: first boot (a machine booted
// for the first time, as an image is), and the Debian package. The running
// agent's drift correction is scenario 60-agent, run by TestAcceptance here
// and in the Vagrant VM.

// startedMessage is systemd's catalog ID of "Started UNIT" (a start job
// finished), so that counting starts does not depend on the wording.
const startedMessage = "39f53479d3a045ac8e11786248231fbf"

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: boots a systemd-nspawn sandbox machine")
	}
	if testing.Short() {
		t.Skip("boots a sandbox machine; skipped with -short")
	}
}

// show reads a unit property inside the machine.
func show(t *testing.T, m *sandbox.Machine, unit, prop string) string {
	t.Helper()
	return strings.TrimSpace(m.MustRun(t, "systemctl", "show", "-p", prop, "--value", unit))
}

// waitUnit polls until the unit's ActiveState is want (bounded).
func waitUnit(t *testing.T, m *sandbox.Machine, unit, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := show(t, m, unit, "ActiveState")
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			out, _, _, _ := m.Run(context.Background(), "journalctl", "--no-pager", "-o", "cat", "-u", unit, "-n", "60")
			t.Fatalf("%s is %s after %s, want %s; its journal:\n%s", unit, got, within, want, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The first-boot unit on a machine booted for the first time: an image
// with docker.io and dockward installed, dockward-firstboot.service and
// dockward.service enabled, docker.service enabled as the package leaves
// it. Nothing was ever started in it: /etc/machine-id is empty (systemd's
// first boot), /var/lib/docker is empty, there is no daemon.json and no
// dockremap user. That is what a cloud image's first boot is, more so than
// a machine where docker was stopped and its state wiped: nothing of an
// earlier run (a daemon.json, a journal, a data root) can leak in.
//
// dockward-firstboot runs before docker's first start, so docker starts
// exactly once, already with userns-remap; the resident agent then finds
// the restart the first boot journaled already done (docker started after
// the files were written) and does not restart docker.
func TestFirstBoot(t *testing.T) {
	needRoot(t)
	bin, err := sandbox.DockwardBinary()
	if err != nil {
		t.Fatal(err)
	}
	m := sandbox.StartWith(t, sandbox.Options{Setup: func(dir string) error {
		if err := copyFile(bin, filepath.Join(dir, "usr/bin/dockward"), 0o755); err != nil {
			return err
		}
		for _, u := range []string{"dockward-firstboot.service", "dockward.service"} {
			// Installed as the package installs them, enabled as its
			// postinst and an image build would.
			if err := copyFile(filepath.Join("..", "dist", u), filepath.Join(dir, "usr/lib/systemd/system", u), 0o644); err != nil {
				return err
			}
			if err := enable(dir, u); err != nil {
				return err
			}
		}
		return nil
	}})

	// The agent is ordered after docker; READY once its first converge ran.
	waitUnit(t, m, "dockward.service", "active", 3*time.Minute)

	if got := show(t, m, "dockward-firstboot.service", "Result"); got != "success" {
		t.Errorf("dockward-firstboot.service Result = %s", got)
	}
	mid := strings.TrimSpace(m.MustRun(t, "cat", "/etc/machine-id"))
	if _, _, code, _ := m.Run(context.Background(), "test", "-e", "/var/lib/dockward/firstboot-"+mid); code != 0 {
		t.Errorf("no first-boot stamp /var/lib/dockward/firstboot-%s", mid)
	}
	// Ordering: no cycle broken by deleting a job at boot. systemd logs it
	// to the console before journald runs, so look in both.
	console, _ := os.ReadFile(m.LogPath())
	if out := m.MustRun(t, "journalctl", "-b", "--no-pager", "-o", "cat") + string(console); strings.Contains(out, "ordering cycle") {
		t.Errorf("systemd found an ordering cycle at boot:\n%s", grepLines(out, "cycle"))
	}
	fbEnd := show(t, m, "dockward-firstboot.service", "ExecMainExitTimestampMonotonic")
	dockerStart := show(t, m, "docker.service", "InactiveExitTimestampMonotonic")
	if atoi(fbEnd) == 0 || atoi(fbEnd) > atoi(dockerStart) {
		t.Errorf("dockward-firstboot ended at %s µs, docker started at %s µs: not before", fbEnd, dockerStart)
	}

	info := m.MustRun(t, "docker", "info", "--format", "{{json .SecurityOptions}}")
	if !strings.Contains(info, "name=userns") {
		t.Errorf("docker info security options %s: no userns", info)
	}
	// Let the agent's first converge and anything it might set off settle.
	time.Sleep(5 * time.Second)
	starts := strings.TrimSpace(m.MustRun(t, "sh", "-c",
		"journalctl -b -q --no-pager -o cat MESSAGE_ID="+startedMessage+" UNIT=docker.service | grep -c . || true"))
	if starts != "1" {
		t.Errorf("docker.service started %s times this boot, want exactly 1", starts)
	}
	if n := show(t, m, "docker.service", "NRestarts"); n != "0" {
		t.Errorf("docker.service NRestarts = %s", n)
	}
	agent := m.MustRun(t, "journalctl", "-b", "--no-pager", "-o", "cat", "-u", "dockward.service")
	if !strings.Contains(agent, "owed restart not needed: docker.service started at ") {
		t.Errorf("the agent did not settle the owed restart as not needed:\n%s", agent)
	}
	if strings.Contains(agent, "restart docker.service") {
		t.Errorf("the agent restarted docker:\n%s", grepLines(agent, "docker.service"))
	}
	if _, _, code, _ := m.Run(context.Background(), "test", "-e", "/var/lib/dockward/restart-owed.json"); code == 0 {
		t.Error("the restart journal still owes a restart")
	}
	// And the host is converged: a plan finds nothing to do.
	if out, errOut, code, err := m.Run(context.Background(), "dockward", "plan"); err != nil || code != 0 {
		t.Errorf("dockward plan after first boot: exit %d %v\n%s\n%s", code, err, out, errOut)
	}
	t.Logf("first boot: machine booted in %s; firstboot took %s",
		m.BootDuration.Round(10*time.Millisecond), unitDuration(t, m, "dockward-firstboot.service"))
}

// `make package` builds the .deb; installed with dpkg on a machine that has
// its dependencies (and no network), it puts the binary, the units and the
// default configuration in place, enables first boot, and its agent unit
// starts and reports READY.
func TestPackage(t *testing.T) {
	needRoot(t)
	deb := buildPackage(t)
	m := sandbox.Start(t)
	if err := m.CopyIn(deb, "/root/dockward.deb", 0o644); err != nil {
		t.Fatal(err)
	}
	out := m.MustRun(t, "dpkg", "-i", "/root/dockward.deb")
	t.Logf("dpkg -i:\n%s", out)
	if st := m.MustRun(t, "dpkg-query", "-W", "-f", "${Status}", "dockward"); st != "install ok installed" {
		t.Errorf("dpkg status %q", st)
	}
	for path, want := range map[string]string{
		"/usr/bin/dockward":                                  "755 root root",
		"/usr/lib/systemd/system/dockward.service":           "644 root root",
		"/usr/lib/systemd/system/dockward-firstboot.service": "644 root root",
		"/usr/lib/systemd/system/dockward-apply.service":     "644 root root",
		"/usr/lib/systemd/system/dockward-apply.timer":       "644 root root",
		"/etc/dockward/dockward.hcl":                         "600 root root",
		"/var/lib/dockward":                                  "700 root root",
		"/usr/share/bash-completion/completions/dockward":    "644 root root",
		"/usr/share/zsh/vendor-completions/_dockward":        "644 root root",
	} {
		got := strings.TrimSpace(m.MustRun(t, "stat", "-c", "%a %U %G", path))
		if got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	if conf := m.MustRun(t, "dpkg-query", "-W", "-f", "${Conffiles}", "dockward"); !strings.Contains(conf, "/etc/dockward/dockward.hcl") {
		t.Errorf("the configuration is not a conffile (an upgrade would overwrite edits): %q", conf)
	}
	if got, err := os.ReadFile(filepath.Join("..", "config", "default.hcl")); err != nil {
		t.Fatal(err)
	} else if inst := m.MustRun(t, "cat", "/etc/dockward/dockward.hcl"); inst != string(got) {
		t.Error("the installed configuration is not the embedded default")
	}
	if en := strings.TrimSpace(m.MustRun(t, "sh", "-c", "systemctl is-enabled dockward-firstboot.service || true")); en != "enabled" {
		t.Errorf("dockward-firstboot.service is %s after install, want enabled", en)
	}
	m.MustRun(t, "dockward", "validate")
	// The binary says the package's version, and the bash completion the
	// package installed completes (bash alone, as the script needs nothing
	// of the bash-completion package).
	if v, first := m.MustRun(t, "dpkg-query", "-W", "-f", "${Version}", "dockward"), strings.SplitN(m.MustRun(t, "dockward", "version"), "\n", 2)[0]; first != "dockward "+v {
		t.Errorf("dockward version says %q, the package is %s", first, v)
	}
	if got := m.MustRun(t, "bash", "-c", `source /usr/share/bash-completion/completions/dockward && COMP_WORDS=(dockward pl) COMP_CWORD=1 && _dockward && echo "${COMPREPLY[*]}"`); strings.TrimSpace(got) != "plan" {
		t.Errorf("installed bash completion of 'dockward pl': %q, want plan", got)
	}
	m.MustRun(t, "systemd-analyze", "verify", "dockward.service", "dockward-firstboot.service", "dockward-apply.service", "dockward-apply.timer")
	m.MustRun(t, "timeout", "150", "systemctl", "start", "dockward.service")
	if st := show(t, m, "dockward.service", "ActiveState"); st != "active" {
		t.Errorf("dockward.service from the package: %s", st)
	}
	if s := show(t, m, "dockward.service", "StatusText"); !strings.HasPrefix(s, "last run ") {
		t.Errorf("StatusText %q", s)
	}
	m.MustRun(t, "timeout", "150", "systemctl", "stop", "dockward.service")
	if r := show(t, m, "dockward.service", "Result"); r != "success" {
		t.Errorf("stop: Result %s", r)
	}
	// Removal takes the units and binary, keeps the configuration (purge
	// removes it).
	m.MustRun(t, "dpkg", "-r", "dockward")
	if _, _, code, _ := m.Run(context.Background(), "test", "-e", "/usr/bin/dockward"); code == 0 {
		t.Error("/usr/bin/dockward left after dpkg -r")
	}
	if _, _, code, _ := m.Run(context.Background(), "test", "-e", "/etc/dockward/dockward.hcl"); code != 0 {
		t.Error("dpkg -r removed the configuration")
	}
}

// buildPackage runs `make package` in the repository and returns the .deb.
func buildPackage(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("needs make")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out := t.TempDir()
	cmd := exec.CommandContext(ctx, "make", "-C", "..", "package")
	b, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(b), "dial tcp") || strings.Contains(string(b), "proxy.golang.org") {
			t.Skipf("make package needs the Go module proxy to fetch nfpm, unreachable here: %s", lastLines(string(b), 5))
		}
		t.Fatalf("make package: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join("..", "dist", "out", "*.deb"))
	var newest string
	var newestMod time.Time
	for _, d := range debs {
		if fi, err := os.Stat(d); err == nil && fi.ModTime().After(newestMod) {
			newest, newestMod = d, fi.ModTime()
		}
	}
	if newest == "" {
		t.Fatalf("make package made no dist/out/*.deb:\n%s", b)
	}
	// Copy it out: another make package may replace dist/out meanwhile.
	dst := filepath.Join(out, filepath.Base(newest))
	if err := copyFile(newest, dst, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func copyFile(src, dst string, perm os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(dst, b, perm); err != nil {
		return err
	}
	return os.Chmod(dst, perm)
}

// enable makes the [Install] WantedBy=multi-user.target link, as
// `systemctl enable` does, in a tree that is not running.
func enable(root, unit string) error {
	dir := filepath.Join(root, "etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err := os.Symlink("/usr/lib/systemd/system/"+unit, filepath.Join(dir, unit))
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	return err
}

func unitDuration(t *testing.T, m *sandbox.Machine, unit string) time.Duration {
	start := atoi(show(t, m, unit, "ExecMainStartTimestampMonotonic"))
	end := atoi(show(t, m, unit, "ExecMainExitTimestampMonotonic"))
	return time.Duration(end-start) * time.Microsecond
}

func atoi(s string) int64 {
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

func grepLines(text, needle string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, needle) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
