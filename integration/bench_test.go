package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dockward/dockward/integration/sandbox"
	"github.com/google/nftables"
)

// BenchmarkAgent measures the resident agent (dockward.service, as the
// package installs it) in a sandbox machine:
//
//   - drift reaction: from a tampering write (an edited daemon.json, a
//     removed dockremap line in /etc/subuid, `nft delete table inet
//     dockward`) to the corrected state on disk or in the kernel, polled
//     from this host every 200 µs through the machine's root and network
//     namespace (no process started per poll). Docker's restart, which
//     follows the file corrections, is not part of it. Median and worst of
//     driftSamples each.
//   - idle: context switches of all the agent's threads over 60 s with
//     nothing happening (each one a wake-up), and its resident memory.
//
// It reports figures; it asserts nothing about them (make bench runs it;
// `go test -run '^$' -bench Agent ./integration` alone).
func BenchmarkAgent(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: boots a systemd-nspawn sandbox machine")
	}
	m := sandbox.Start(b)
	a := installAgent(b, m)

	b.Run("drift=daemon.json", func(b *testing.B) {
		path := filepath.Join(m.Root(), "etc/docker/daemon.json")
		good := mustRead(b, path)
		bad := bytes.Replace(good, []byte(`"10m"`), []byte(`"99m"`), 1)
		if bytes.Equal(bad, good) {
			b.Fatalf("daemon.json has no max-size 10m:\n%s", good)
		}
		for b.Loop() {
			a.measure(b, "daemon.json", func() error { return os.WriteFile(path, bad, 0o644) },
				func() bool { return bytes.Equal(readOr(path), good) })
		}
	})
	b.Run("drift=subuid", func(b *testing.B) {
		path := filepath.Join(m.Root(), "etc/subuid")
		good := mustRead(b, path)
		var kept []string
		for _, l := range strings.SplitAfter(string(good), "\n") {
			if !strings.HasPrefix(l, "dockremap:") {
				kept = append(kept, l)
			}
		}
		bad := []byte(strings.Join(kept, ""))
		if bytes.Equal(bad, good) {
			b.Fatalf("/etc/subuid has no dockremap line:\n%s", good)
		}
		for b.Loop() {
			a.measure(b, "subuid", func() error { return os.WriteFile(path, bad, 0o644) },
				func() bool { return bytes.Equal(readOr(path), good) })
		}
	})
	b.Run("drift=nft-table", func(b *testing.B) {
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", m.PID()))
		if err != nil {
			b.Fatal(err)
		}
		defer ns.Close()
		c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())), nftables.AsLasting())
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseLasting() //nolint:errcheck
		table := &nftables.Table{Name: "dockward", Family: nftables.TableFamilyINet}
		exists := func() bool {
			_, err := c.ListTableOfFamily("dockward", nftables.TableFamilyINet)
			return err == nil
		}
		if !exists() {
			b.Fatal("no table inet dockward in the machine")
		}
		for b.Loop() {
			a.measure(b, "nft", func() error { c.DelTable(table); return c.Flush() }, exists)
		}
	})
	// `systemctl reload dockward`, which returns once the agent has
	// converged on the configuration it read again (61-reload): with the
	// configuration unchanged, and with a conf.d drop-in that adds or
	// removes a firewall network (the agent also sees that file change by
	// itself; the reload waits for that reload too).
	b.Run("reload=unchanged", func(b *testing.B) {
		for b.Loop() {
			a.reloads(b, "unchanged", func(int) {})
		}
	})
	b.Run("reload=firewall", func(b *testing.B) {
		dropin := "/etc/dockward/conf.d/bench.hcl"
		m.MustRun(b, "mkdir", "-p", "/etc/dockward/conf.d")
		defer m.MustRun(b, "rm", "-f", dropin)
		for b.Loop() {
			a.reloads(b, "firewall", func(i int) {
				if i%2 == 1 {
					m.MustRun(b, "rm", "-f", dropin)
					return
				}
				m.WriteFile(b, dropin, []byte("firewall {\n  network \"bench\" {\n    bridge = \"br-bench\"\n    internal = true\n  }\n}\n"), 0o600)
			})
		}
	})
	b.Run("idle", func(b *testing.B) {
		for b.Loop() {
			a.idle(b, 60*time.Second)
		}
	})
	// What the two execs of dockerd (--version, --validate) cost in the
	// daemon.json figure: the same with validate = false.
	b.Run("drift=daemon.json,validate=false", func(b *testing.B) {
		a.reconfigure(b, func(c string) string { return strings.Replace(c, "validate = true", "validate = false", 1) })
		path := filepath.Join(m.Root(), "etc/docker/daemon.json")
		good := mustRead(b, path)
		bad := bytes.Replace(good, []byte(`"10m"`), []byte(`"99m"`), 1)
		for b.Loop() {
			a.measure(b, "daemon.json (validate = false)", func() error { return os.WriteFile(path, bad, 0o644) },
				func() bool { return bytes.Equal(readOr(path), good) })
		}
	})
	// Idle without the watchdog, to tell its pings from anything else.
	b.Run("idle,WatchdogSec=0", func(b *testing.B) {
		m.WriteFile(b, "/etc/systemd/system/dockward.service.d/bench.conf", []byte("[Service]\nWatchdogSec=0\n"), 0o644)
		m.MustRun(b, "systemctl", "daemon-reload")
		// Type=notify: restart returns once the new process is READY.
		m.MustRun(b, "timeout", "180", "systemctl", "restart", "dockward.service")
		time.Sleep(2 * time.Second)
		for b.Loop() {
			a.idle(b, 60*time.Second)
		}
	})
}

// reconfigure edits the agent's configuration, which the agent watches and
// reloads, and waits for the reload's run.
func (a *agent) reconfigure(b *testing.B, edit func(string) string) {
	b.Helper()
	p := "/etc/dockward/dockward.hcl"
	conf := a.m.MustRun(b, "cat", p)
	changed := edit(conf)
	if changed == conf {
		b.Fatal("reconfigure: the edit changed nothing")
	}
	runs := a.runs()
	a.m.WriteFile(b, p, []byte(changed), 0o600)
	a.settle(b, runs+1)
}

// idleSettle is how long the agent is left alone before idle is measured.
const idleSettle = 30 * time.Second

// driftSamples is how many tamperings each drift benchmark makes.
const driftSamples = 20

type agent struct {
	m       *sandbox.Machine
	metrics string // the metrics textfile, as seen from this host
}

// installAgent puts dockward.service in place as the package does, with a
// metrics textfile to count runs by, starts it and waits for READY.
func installAgent(b *testing.B, m *sandbox.Machine) *agent {
	bin, err := sandbox.DockwardBinary()
	if err != nil {
		b.Fatal(err)
	}
	if err := m.CopyIn(bin, "/usr/bin/dockward", 0o755); err != nil {
		b.Fatal(err)
	}
	if err := m.CopyIn(filepath.Join("..", "dist", "dockward.service"), "/etc/systemd/system/dockward.service", 0o644); err != nil {
		b.Fatal(err)
	}
	// flap_corrections = 0: the drift benchmarks tamper the same target
	// driftSamples times in a row, which the default policy rightly takes
	// for a fight and backs off from after three.
	conf := strings.Replace(m.MustRun(b, "dockward", "init"), `metrics_textfile = ""`,
		"metrics_textfile = \"/var/lib/dockward/bench.prom\"\n  flap_corrections = 0", 1)
	m.WriteFile(b, "/etc/dockward/dockward.hcl", []byte(conf), 0o600)
	m.MustRun(b, "systemctl", "daemon-reload")
	m.MustRun(b, "timeout", "180", "systemctl", "start", "dockward.service")
	a := &agent{m: m, metrics: filepath.Join(m.Root(), "var/lib/dockward/bench.prom")}
	a.settle(b, a.runs())
	return a
}

// runs is the agent's dockward_runs_total, all results.
func (a *agent) runs() int {
	n := 0
	for _, l := range strings.Split(string(readOr(a.metrics)), "\n") {
		if strings.HasPrefix(l, "dockward_runs_total{") {
			f := strings.Fields(l)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				n += int(v)
			}
		}
	}
	return n
}

// settle waits until the agent has done at least want runs, docker is
// active, and the echo grace of its last run is over.
func (a *agent) settle(b *testing.B, want int) {
	b.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for a.runs() < want {
		if time.Now().After(deadline) {
			b.Fatalf("the agent did %d runs within 3 minutes, want %d", a.runs(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for strings.TrimSpace(a.m.MustRun(b, "systemctl", "is-active", "docker.service")) != "active" {
		if time.Now().After(deadline) {
			b.Fatal("docker.service not active again within 3 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
}

// measure tampers driftSamples times and reports how long the host took to
// be corrected, polled every 200 µs.
func (a *agent) measure(b *testing.B, what string, tamper func() error, corrected func() bool) {
	var took []time.Duration
	for range driftSamples {
		before := a.runs()
		start := time.Now()
		if err := tamper(); err != nil {
			b.Fatalf("tamper %s: %v", what, err)
		}
		deadline := start.Add(30 * time.Second)
		for !corrected() {
			if time.Now().After(deadline) {
				b.Fatalf("%s not corrected within 30s", what)
			}
			time.Sleep(200 * time.Microsecond)
		}
		took = append(took, time.Since(start))
		a.settle(b, before+1)
	}
	slices.Sort(took)
	med := took[len(took)/2]
	if len(took)%2 == 0 {
		med = (took[len(took)/2-1] + took[len(took)/2]) / 2
	}
	b.ReportMetric(ms(med), "ms-median")
	b.ReportMetric(ms(took[len(took)-1]), "ms-worst")
	b.ReportMetric(ms(took[0]), "ms-best")
	b.Logf("%s: %d samples, median %s, worst %s, best %s", what, len(took),
		med.Round(100*time.Microsecond), took[len(took)-1].Round(100*time.Microsecond), took[0].Round(100*time.Microsecond))
}

// reloadSamples is how many reloads each reload benchmark makes.
const reloadSamples = 10

// reloads times `systemctl reload dockward.service` reloadSamples times
// (through nsenter, whose start is part of each figure), calling edit(i)
// before reload i.
func (a *agent) reloads(b *testing.B, what string, edit func(i int)) {
	var took []time.Duration
	for i := range reloadSamples {
		edit(i)
		start := time.Now()
		a.m.MustRun(b, "timeout", "330", "systemctl", "reload", "dockward.service")
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	med := (took[len(took)/2-1] + took[len(took)/2]) / 2
	b.ReportMetric(ms(med), "ms-median")
	b.ReportMetric(ms(took[len(took)-1]), "ms-worst")
	b.ReportMetric(ms(took[0]), "ms-best")
	b.Logf("systemctl reload, %s: %d samples, median %s, worst %s, best %s", what, len(took),
		med.Round(100*time.Microsecond), took[len(took)-1].Round(100*time.Microsecond), took[0].Round(100*time.Microsecond))
}

// idle counts the context switches (voluntary and not) of every thread of
// the agent over d, and reads its resident memory.
func (a *agent) idle(b *testing.B, d time.Duration) {
	pid := strings.TrimSpace(a.m.MustRun(b, "systemctl", "show", "-p", "MainPID", "--value", "dockward.service"))
	switches := func() int {
		out := a.m.MustRun(b, "sh", "-c", "cat /proc/"+pid+"/task/*/status")
		n := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "voluntary_ctxt_switches:") || strings.HasPrefix(l, "nonvoluntary_ctxt_switches:") {
				v, _ := strconv.Atoi(strings.TrimSpace(l[strings.IndexByte(l, ':')+1:]))
				n += v
			}
		}
		return n
	}
	// Quiet first: right after a run, Go's runtime still returns memory
	// to the system and winds its monitor thread down.
	time.Sleep(idleSettle)
	since := fmt.Sprintf("@%d", time.Now().Unix())
	runsBefore := a.runs()
	s0 := switches()
	// Sampled every 5 s, so that the log shows when the wake-ups come.
	var steps []string
	last := s0
	for t := 5 * time.Second; t <= d; t += 5 * time.Second {
		time.Sleep(5 * time.Second)
		n := switches()
		steps = append(steps, strconv.Itoa(n-last))
		last = n
	}
	s1 := last
	status := a.m.MustRun(b, "cat", "/proc/"+pid+"/status")
	rss := 0
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rss, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	threads := 0
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if n := a.runs() - runsBefore; n > 0 {
		// Not idle after all: say what woke it.
		out, _, _, _ := a.m.Run(context.Background(), "journalctl", "-u", "dockward.service", "--since", since, "--no-pager", "-o", "cat")
		b.Logf("%d runs while idle; the agent's journal:\n%s", n, out)
	}
	b.ReportMetric(float64(s1-s0), "wakeups/60s")
	b.ReportMetric(float64(rss)/1024, "MB-RSS")
	b.Logf("idle %s after %s quiet: %d context switches over %d threads, %d runs, VmRSS %d kB (WatchdogSec=%s); per 5 s: %s", d, idleSettle, s1-s0, threads,
		a.runs()-runsBefore, rss, strings.TrimSpace(a.m.MustRun(b, "systemctl", "show", "-p", "WatchdogUSec", "--value", "dockward.service")),
		strings.Join(steps, " "))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mustRead(b *testing.B, p string) []byte {
	b.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func readOr(p string) []byte {
	data, _ := os.ReadFile(p)
	return data
}
