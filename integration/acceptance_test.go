package integration

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/integration/sandbox"
)

// scenarioDir is where the scenarios go inside the machine.
const scenarioDir = "/opt/dockward-scenarios"

// groupTimeout bounds one group's run.sh (docker restarts dominate it).
const groupTimeout = 20 * time.Minute

// TestAcceptance runs integration/scenarios/run.sh in sandbox machines: one
// fresh machine per group of scenarios that share a tens digit (1x: the
// daemon.json and subuid lifecycle, 4x firewall, 5x service, 6x agent), the
// scenarios of a group in order; then all of them in one machine, in order,
// as the Vagrant VM runs them.
// DOCKWARD_SCENARIOS="10 12" runs only those (prefixes, as run.sh takes them).
func TestAcceptance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: boots systemd-nspawn sandbox machines")
	}
	groups := scenarioGroups(t, strings.Fields(os.Getenv("DOCKWARD_SCENARIOS")))
	if len(groups) == 0 {
		t.Fatal("no scenarios selected")
	}
	if _, err := sandbox.DockwardBinary(); err != nil {
		t.Fatalf("dockward binary: %v", err)
	}
	var all []string
	for _, g := range groups {
		all = append(all, g.files...)
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			runGroup(t, g.files)
		})
	}
	// The Vagrant VM runs every scenario on one host, in order: so does this,
	// so that a scenario that leaves the host unlike it found it shows here.
	if len(groups) > 1 {
		t.Run("all-in-one", func(t *testing.T) {
			t.Parallel()
			runGroup(t, all)
		})
	}
}

type group struct {
	name  string
	files []string
}

var scenarioName = regexp.MustCompile(`^([0-9])[0-9]-.*\.sh$`)

// scenarioGroups lists scenario files grouped by their tens digit.
func scenarioGroups(t *testing.T, only []string) []group {
	t.Helper()
	ents, err := os.ReadDir("scenarios")
	if err != nil {
		t.Fatalf("read scenarios: %v", err)
	}
	byTens := map[string][]string{}
	for _, e := range ents {
		mm := scenarioName.FindStringSubmatch(e.Name())
		if mm == nil {
			continue
		}
		if len(only) > 0 && !hasPrefixAny(e.Name(), only) {
			continue
		}
		byTens[mm[1]] = append(byTens[mm[1]], e.Name())
	}
	var gs []group
	for tens, files := range byTens {
		sort.Strings(files)
		gs = append(gs, group{name: tens + "x", files: files})
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].name < gs[j].name })
	return gs
}

func hasPrefixAny(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

var tookLine = regexp.MustCompile(`^--- (\S+) took (\S+)$`)

func runGroup(t *testing.T, files []string) {
	m := sandbox.Start(t)
	m.InstallDockward(t)
	if err := m.CopyDirIn("scenarios", scenarioDir); err != nil {
		t.Fatalf("copy scenarios into machine %s: %v", m.Name(), err)
	}
	// The agent scenarios (6x) install dist's units where no package did.
	for _, u := range []string{"dockward.service", "dockward-firstboot.service", "dockward-apply.service", "dockward-apply.timer"} {
		if err := m.CopyIn(filepath.Join("..", "dist", u), scenarioDir+"/dist/"+u, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	args := append([]string{scenarioDir + "/run.sh"}, files...)
	start := time.Now()
	stdout, stderr, code, err := m.Run(ctx, args...)
	t.Logf("machine %s (boot %s), %s: %s", m.Name(), m.BootDuration.Round(10*time.Millisecond),
		strings.Join(files, " "), time.Since(start).Round(100*time.Millisecond))
	if err != nil {
		t.Fatalf("run.sh: %v\n%s\n%s", err, stdout, stderr)
	}

	var fails []string
	var summary string
	sc := bufio.NewScanner(bytes.NewBufferString(stdout))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "FAIL: "):
			fails = append(fails, line)
		case tookLine.MatchString(line):
			mm := tookLine.FindStringSubmatch(line)
			t.Logf("scenario %s took %s", mm[1], mm[2])
		case strings.HasSuffix(line, " failed") && strings.Contains(line, " passed, "):
			summary = line
		}
	}
	t.Logf("run.sh output:\n%s", stdout)
	if stderr != "" {
		t.Logf("run.sh stderr:\n%s", stderr)
	}
	if summary == "" {
		t.Errorf("run.sh printed no summary line (exit %d)", code)
	} else {
		t.Logf("%s", summary)
	}
	if len(fails) > 0 || code != 0 {
		t.Errorf("scenarios failed (run.sh exit %d):\n%s", code, strings.Join(fails, "\n"))
	}
	if !strings.Contains(stdout, "PASS: ") {
		t.Errorf("no scenario assertion passed")
	}
}

// TestScenariosSyntax checks that every scenario script parses (bash -n):
// cheap, no root needed.
func TestScenariosSyntax(t *testing.T) {
	files, _ := filepath.Glob("scenarios/*.sh")
	if len(files) == 0 {
		t.Fatal("no scenario scripts")
	}
	for _, f := range files {
		if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", f, err, out)
		}
	}
}
