package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
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

// suiteTier is one Debian release the acceptance scenarios run on.
type suiteTier struct {
	name string
	// required: a tree that cannot be built fails the test. An optional
	// suite (sid, which moves daily) is skipped instead, loudly, with
	// debootstrap's reason.
	required bool
	// groups: one machine per group of scenarios as well as the all-in-one
	// machine; without it only the all-in-one machine runs (every scenario,
	// in order, on one host), which keeps make test's time in bounds.
	groups bool
}

// acceptanceSuites are the Docker versions Ubuntu 24.04 hosts run, as near
// as Debian's archive gives them: trixie (Docker 26, systemd 257) and sid
// (Docker 28, systemd 262). DOCKWARD_SUITES="trixie" runs only those named.
var acceptanceSuites = []suiteTier{
	{name: sandbox.DefaultSuite, required: true, groups: true},
	{name: "sid"},
}

// TestAcceptance runs integration/scenarios/run.sh in sandbox machines, on
// each of acceptanceSuites. On trixie: one fresh machine per group of
// scenarios that share a tens digit (1x: the daemon.json and subuid
// lifecycle, 4x firewall, 5x service, 6x agent...), the scenarios of a
// group in order; then all of them in one machine, in order, as the Vagrant
// VM runs them. On sid: the all-in-one machine only.
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
	suites := selectSuites(t, strings.Fields(os.Getenv("DOCKWARD_SUITES")))
	for _, st := range suites {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			runSuite(t, st, groups)
		})
	}
}

func selectSuites(t *testing.T, only []string) []suiteTier {
	t.Helper()
	if len(only) == 0 {
		return acceptanceSuites
	}
	var out []suiteTier
	for _, name := range only {
		st := suiteTier{name: name, groups: true}
		for _, known := range acceptanceSuites {
			if known.name == name {
				st = known
			}
		}
		if name == sandbox.DefaultSuite {
			st.required = true
		}
		out = append(out, st)
	}
	return out
}

func runSuite(t *testing.T, st suiteTier, groups []group) {
	ctx, cancel := context.WithTimeout(context.Background(), sandbox.BuildTimeout+time.Minute)
	defer cancel()
	start := time.Now()
	_, built, err := sandbox.EnsureTree(ctx, st.name, t.Logf)
	var be *sandbox.TreeBuildError
	switch {
	case err != nil && errors.As(err, &be) && !st.required:
		t.Logf("%v", err)
		skipTier(t, fmt.Sprintf("acceptance scenarios on Debian %s: its tree cannot be built today: %s", st.name, be.Reason))
	case err != nil:
		t.Fatalf("the Debian %s tree: %v", st.name, err)
	case built:
		t.Logf("built the Debian %s tree in %s", st.name, time.Since(start).Round(time.Second))
	}

	var all []string
	for _, g := range groups {
		all = append(all, g.files...)
	}
	if st.groups && len(groups) > 1 {
		for _, g := range groups {
			t.Run(g.name, func(t *testing.T) {
				t.Parallel()
				runGroup(t, st.name, g.files)
			})
		}
	}
	// The Vagrant VM runs every scenario on one host, in order: so does this,
	// so that a scenario that leaves the host unlike it found it shows here.
	t.Run("all-in-one", func(t *testing.T) {
		t.Parallel()
		runGroup(t, st.name, all)
	})
}

// skipTier skips a whole tier, loudly: the reason goes to the test log and
// to DOCKWARD_SKIP_LOG (make test prints that file after go test, since go
// test shows a passing package's skips only with -v).
func skipTier(t *testing.T, reason string) {
	t.Helper()
	if p := os.Getenv("DOCKWARD_SKIP_LOG"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			_, err = fmt.Fprintf(f, "%s: %s\n", t.Name(), reason)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			t.Errorf("record the skip in %s: %v", p, err)
		}
	}
	t.Skip("SKIPPED: " + reason)
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

func runGroup(t *testing.T, suite string, files []string) {
	m := sandbox.StartWith(t, sandbox.Options{Suite: suite})
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
	t.Logf("machine %s (Debian %s, boot %s), %s: %s", m.Name(), suite, m.BootDuration.Round(10*time.Millisecond),
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

// TestSelectSuites: trixie is required (a tree that cannot be built fails),
// every other suite is optional (skipped, loudly, when its tree cannot be
// built); sid runs the all-in-one machine only.
func TestSelectSuites(t *testing.T) {
	all := selectSuites(t, nil)
	if len(all) != 2 || all[0] != (suiteTier{name: "trixie", required: true, groups: true}) || all[1] != (suiteTier{name: "sid"}) {
		t.Errorf("default suites = %+v", all)
	}
	got := selectSuites(t, []string{"sid", "trixie", "bookworm"})
	want := []suiteTier{{name: "sid"}, {name: "trixie", required: true, groups: true}, {name: "bookworm", groups: true}}
	if len(got) != len(want) {
		t.Fatalf("selectSuites = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("selectSuites[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}
