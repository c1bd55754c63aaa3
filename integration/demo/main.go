// Command demo is `make demo`: it boots a throwaway sandbox machine (Debian
// with systemd and Docker, see integration/sandbox), and walks through
// dockward's main job in plain words: validate, plan, apply, apply again
// (nothing to do), someone edits daemon.json, plan shows the drift, apply
// corrects it. The machine is torn down on every exit path (return, error,
// ^C, SIGTERM; Pdeathsig if the demo itself is killed). Exit 0 when every
// step did what it should.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dockward/dockward/integration/sandbox"
)

func main() {
	bin := flag.String("dockward", os.Getenv("DOCKWARD_BIN"), "dockward binary to demo (default: build it)")
	flag.Parse()
	os.Exit(run(*bin))
}

// stepTimeout bounds each command inside the machine.
const stepTimeout = 3 * time.Minute

type demo struct {
	m      *sandbox.Machine
	failed []string
}

func say(format string, args ...any) { fmt.Printf("\n"+format+"\n", args...) }

func run(bin string) int {
	start := time.Now()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "make demo needs root: it boots a systemd-nspawn machine (sudo make demo)")
		return 1
	}
	if bin != "" {
		os.Setenv("DOCKWARD_BIN", bin)
	}
	fmt.Println("dockward demo: a throwaway Debian machine with systemd and Docker 26, in its own network")
	fmt.Println("namespace. Nothing on this host changes; the machine is removed at the end.")
	if !sandbox.TreeCached(sandbox.DefaultSuite) {
		fmt.Printf("\nFirst demo on this host: building the machine's root file system with debootstrap first\n"+
			"(about a minute, once; cached in %s).\n", sandbox.CacheDir)
	}
	if _, err := sandbox.DockwardBinary(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 1
	}
	m, err := sandbox.Boot(context.Background(), sandbox.Options{Logf: func(f string, a ...any) {
		if strings.Contains(f, "building") || strings.Contains(f, "built") {
			fmt.Printf("  "+f+"\n", a...)
		}
	}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: boot the sandbox machine: %v\n", err)
		return 1
	}
	defer func() {
		if err := m.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: tear down machine %s: %v\n", m.Name(), err)
		}
	}()
	d := &demo{m: m}
	if err := m.CopyIn(mustBin(), sandbox.DockwardPath, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 1
	}
	d.story(m.BootDuration)

	if err := m.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: tear down machine %s: %v\n", m.Name(), err)
		return 1
	}
	say("The machine is powered off and removed. Demo took %s.", time.Since(start).Round(time.Second))
	if len(d.failed) > 0 {
		fmt.Fprintf(os.Stderr, "\ndemo: these steps did not do what they should:\n  %s\n", strings.Join(d.failed, "\n  "))
		return 1
	}
	return 0
}

func mustBin() string {
	b, _ := sandbox.DockwardBinary()
	return b
}

// wanScript makes a stand-in for the internet inside the machine: a network
// namespace "wan" at 198.51.100.1 (TEST-NET-2) behind a veth pair, with
// servers on tcp/80 and tcp/8080 that answer who they are. Containers reach
// it through docker0 and the machine's forwarding, as they would reach the
// internet through a real host.
const wanScript = `set -e
ip netns add wan
ip link add wan0 type veth peer name wan1
ip link set wan1 netns wan
ip addr add 198.51.100.2/24 dev wan0
ip link set wan0 up
ip netns exec wan ip link set lo up
ip netns exec wan ip addr add 198.51.100.1/24 dev wan1
ip netns exec wan ip link set wan1 up
for port in 80 8080; do
	setsid -f ip netns exec wan busybox nc -ll -p $port -e /bin/echo "port $port answered" </dev/null >/dev/null 2>&1
done
`

// dockward's info log lines name every action; the demo keeps the screen to
// the plan and the result.
var quietFlags = []string{"--log-level", "warn"}

func (d *demo) story(boot time.Duration) {
	dockerVersion := strings.TrimSpace(d.quiet("docker", "version", "--format", "{{.Server.Version}}"))
	say("Machine %s is up (%s to Docker running): Docker %s with the distribution's defaults:",
		d.m.Name(), boot.Round(100*time.Millisecond), dockerVersion)
	fmt.Println("no /etc/docker/daemon.json, no user namespaces, logs uncapped, no firewall of ours.")
	d.show("security options in `docker info`:", "docker", "info", "--format", "{{json .SecurityOptions}}")
	d.quiet("sh", "-c", wanScript)
	fmt.Println("   A container can reach any port on the \"internet\" (198.51.100.1, a namespace standing in for it):")
	d.probe(80, true)
	d.probe(8080, true)

	say("1. Install the default configuration where dockward looks for it, and check it.")
	fmt.Println("   The default (`dockward init`) is what a fresh Docker host should get: user namespaces,")
	fmt.Println("   capped json-file logs, no-new-privileges, no inter-container traffic, the dockremap ID")
	fmt.Println("   ranges, docker restarted only when needed, and a firewall whitelist for containers.")
	d.quiet("sh", "-c", "mkdir -p /etc/dockward && dockward init > /etc/dockward/dockward.hcl && chmod 0644 /etc/dockward/dockward.hcl")
	d.step("validate", 0, "dockward", "validate")

	say("2. Plan: what would change on this host? Nothing is touched yet (exit 2: changes pending).")
	inv := d.invocation()
	d.step("plan", 2, "dockward", "plan")

	say("3. Apply: write daemon.json and the ID ranges, restart docker once, load the firewall (exit 2: changed).")
	d.stepBrief("apply", 2, append([]string{"dockward", "apply"}, quietFlags...)...)
	inv2 := d.invocation()
	d.expect(inv2 != inv, "docker.service was restarted by apply")
	d.show("security options in `docker info` now (userns: container root is UID 100000 on the host):",
		"docker", "info", "--format", "{{json .SecurityOptions}}")
	d.show("the file dockward wrote:", "cat", "/etc/docker/daemon.json")
	d.quiet("sh", "-c", sandbox.BusyboxScript) // the remapped data root starts empty
	fmt.Println("   Containers on the default bridge may now reach DNS, HTTP and HTTPS only:")
	d.probe(80, true)
	d.probe(8080, false)
	d.show("the firewall's drop counter:", "sh", "-c", "nft list chain inet dockward egress_bridge | grep -E 'drop' | sed 's/^[[:space:]]*//'")

	say("4. Apply again: the host is already right, so nothing is written and docker is not restarted (exit 0).")
	d.step("apply", 0, append([]string{"dockward", "apply"}, quietFlags...)...)
	d.expect(d.invocation() == inv2, "docker.service was not restarted by the second apply")
	fmt.Println("   docker.service kept running: same InvocationID as before.")

	say(`5. Someone edits daemon.json by hand: max-size "10m" becomes "500m".`)
	d.quiet("sed", "-E", "-i", `s/("max-size"[[:space:]]*:[[:space:]]*)"[^"]*"/\1"500m"/`, "/etc/docker/daemon.json")
	d.show("", "grep", "max-size", "/etc/docker/daemon.json")

	say("6. Plan sees the drift (exit 2) and changes nothing.")
	d.step("plan", 2, "dockward", "plan")

	say("7. Apply puts it back and restarts docker, so new containers get the cap again.")
	d.step("apply", 2, append([]string{"dockward", "apply"}, quietFlags...)...)
	d.show("", "grep", "max-size", "/etc/docker/daemon.json")
	d.step("plan: converged again (exit 0)", 0, "dockward", "plan")

	d.agent()
}

// agentUnit is the resident agent's unit, installed as the package does.
const agentUnit = "dist/dockward.service"

// agent shows `dockward run` under systemd correcting drift with nobody
// running apply: a hand edit of daemon.json, a removed subuid line, a
// deleted firewall table.
func (d *demo) agent() {
	unit, err := os.ReadFile(agentUnit)
	if err != nil {
		fmt.Printf("\n(no %s here: skipping the resident agent)\n", agentUnit)
		return
	}
	say("8. The resident agent: dockward.service runs `dockward run`, which watches the files, the firewall")
	fmt.Println("   table, docker.service and Docker's networks, and corrects drift as it happens.")
	fmt.Println("   (The demo uses systemctl to start it, as an operator would; dockward itself never does.)")
	if err := d.m.CopyIn(mustBin(), "/usr/bin/dockward", 0o755); err != nil {
		d.failed = append(d.failed, err.Error())
		return
	}
	if err := d.m.PutFile("/etc/systemd/system/dockward.service", unit, 0o644); err != nil {
		d.failed = append(d.failed, err.Error())
		return
	}
	d.step("start the agent", 0, "systemctl", "start", "dockward.service")
	d.show("", "systemctl", "show", "-p", "ActiveState", "-p", "StatusText", "dockward.service")

	fmt.Println("\n   Someone edits daemon.json again (max-size \"500m\"); nobody runs apply:")
	d.watchFix(`sed -E -i 's/("max-size"[[:space:]]*:[[:space:]]*)"[^"]*"/\1"500m"/' /etc/docker/daemon.json`,
		`grep -q '"max-size": *"10m"' /etc/docker/daemon.json`, "daemon.json back at max-size 10m")
	fmt.Println("\n   Someone removes the dockremap line from /etc/subuid:")
	d.watchFix(`sed -i '/^dockremap:/d' /etc/subuid`, `grep -q '^dockremap:' /etc/subuid`, "the dockremap range back in /etc/subuid")
	fmt.Println("\n   Someone deletes dockward's firewall table (nft delete table inet dockward):")
	d.watchFix(`nft delete table inet dockward`, `nft list chain inet dockward forward >/dev/null 2>&1`, "the firewall table back, rule for rule")
	d.show("\n   what the agent logged:", "sh", "-c",
		"journalctl -u dockward.service -o cat --no-pager | grep -e 'converged' | tail -n 4")
	// Once the subuid correction's docker restart is verified, the agent
	// is idle again; what it knows is one command away.
	d.waitFor(30*time.Second, `dockward status --format json | grep -q '"health": "ok"' && ! dockward status | grep -q '^Converging:'`)
	d.show("\n   what the agent knows:", "dockward", "status")
	d.quiet("systemctl", "stop", "dockward.service")
}

// waitFor polls a shell condition in the machine until it holds or the
// timeout passes.
func (d *demo) waitFor(timeout time.Duration, cond string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		if _, _, code, err := d.m.Run(ctx, "sh", "-c", cond); err == nil && code == 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// watchFix makes the drift, then polls (bounded) until fixed holds again,
// and says how long the agent took.
func (d *demo) watchFix(drift, fixed, what string) {
	start := time.Now()
	d.quiet("sh", "-c", drift)
	if d.waitFor(30*time.Second, fixed) {
		fmt.Printf("   | %s after %s, corrected by the agent\n", what, time.Since(start).Round(time.Millisecond))
		// The correction goes on with a docker restart: let it finish
		// before the next drift, as the next person's edit would.
		d.waitFor(30*time.Second, "dockward plan >/dev/null 2>&1")
		return
	}
	fmt.Printf("   NOT AS EXPECTED: %s: not corrected within 30s\n", what)
	d.failed = append(d.failed, what+": not corrected by the agent within 30s")
}

// probe tries tcp/port on the stand-in internet from a new container on
// the default bridge and says whether it got through, as expected or not.
func (d *demo) probe(port int, wantOpen bool) {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	out, errOut, code, err := d.m.Run(ctx, "docker", "run", "--rm", "busybox:local",
		"nc", "-w", "3", "198.51.100.1", fmt.Sprint(port))
	open := err == nil && code == 0 && strings.Contains(out, "answered")
	verdict := "blocked"
	if open {
		verdict = "reached: " + strings.TrimSpace(out)
	}
	fmt.Printf("   | container -> 198.51.100.1:%d  %s\n", port, verdict)
	if open != wantOpen {
		printIndented(fmt.Sprintf("docker run exit %d, %v\n%s", code, err, errOut))
		d.failed = append(d.failed, fmt.Sprintf("container to tcp/%d: %s, want open=%v", port, verdict, wantOpen))
	}
}

// step runs a command in the machine, shows it and its output, and checks
// its exit code.
func (d *demo) step(title string, want int, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	fmt.Printf("\n   $ %s\n", strings.Join(args, " "))
	out, errOut, code, err := d.m.Run(ctx, args...)
	printIndented(out + errOut)
	if err != nil {
		d.failed = append(d.failed, fmt.Sprintf("%s: %v", title, err))
		return
	}
	fmt.Printf("   (exit %d)\n", code)
	if code != want {
		d.failed = append(d.failed, fmt.Sprintf("%s: `%s` exited %d, want %d", title, strings.Join(args, " "), code, want))
	}
}

// stepBrief is step showing only the per-module status and the summary
// (the changes are those plan just listed).
func (d *demo) stepBrief(title string, want int, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	fmt.Printf("\n   $ %s\n", strings.Join(args, " "))
	out, errOut, code, err := d.m.Run(ctx, args...)
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "  ") {
			keep = append(keep, line)
		}
	}
	printIndented(strings.Join(keep, "\n") + errOut)
	if err != nil {
		d.failed = append(d.failed, fmt.Sprintf("%s: %v", title, err))
		return
	}
	fmt.Printf("   (exit %d)\n", code)
	if code != want {
		d.failed = append(d.failed, fmt.Sprintf("%s: `%s` exited %d, want %d", title, strings.Join(args, " "), code, want))
	}
}

// show runs a command and prints its output, for the reader.
func (d *demo) show(title string, args ...string) {
	if title != "" {
		fmt.Printf("   %s\n", title)
	}
	printIndented(d.quiet(args...))
}

func (d *demo) quiet(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	out, errOut, _, err := d.m.Run(ctx, args...)
	if err != nil {
		return err.Error()
	}
	return out + errOut
}

func (d *demo) invocation() string {
	return strings.TrimSpace(d.quiet("systemctl", "show", "-p", "InvocationID", "--value", "docker.service"))
}

func (d *demo) expect(ok bool, what string) {
	if !ok {
		fmt.Printf("   NOT AS EXPECTED: %s\n", what)
		d.failed = append(d.failed, what)
	}
}

func printIndented(s string) {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return
	}
	for _, line := range strings.Split(s, "\n") {
		fmt.Printf("   | %s\n", line)
	}
}
