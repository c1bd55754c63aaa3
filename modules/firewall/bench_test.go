package firewall

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dockward/dockward/integration/netnstest"
)

// whitelistModule is a module for whitelist(n) on bridge br-app, talking
// to the namespace ns.
func whitelistModule(n int, ns *netnstest.NS) (*Module, *Ruleset) {
	b := whitelist(n)
	b.Networks[0].Bridge = "br-app"
	rs, err := Build(b, map[string]string{"app": "br-app"})
	if err != nil {
		panic(err)
	}
	return NewWith(b, NewNFT(ns.NFTOpts()...), nil), rs
}

// BenchmarkApplyWhitelist replaces a table whose one network may reach n
// addresses: dockward's batch over netlink, and `nft -f` loading the same
// ruleset (the rendered text, after `add table; delete table`, so it also
// replaces the table in one transaction), side by side in one namespace.
// nft is run inside the namespace directly (forked from a thread that
// joined it), so its figure has no `ip netns exec` in it.
func BenchmarkApplyWhitelist(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("addrs=%d", n), func(b *testing.B) {
			ns := netnstest.New(b)
			_, rs := whitelistModule(n, ns)
			rules, elems := rs.Counts()
			nft := NewNFT(ns.NFTOpts()...)
			b.Run("dockward", func(b *testing.B) {
				cpu := cpuTime()
				for b.Loop() {
					if err := nft.Replace(rs); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu)
				b.ReportMetric(float64(rules), "rules")
				b.ReportMetric(float64(elems), "elements")
			})
			script := filepath.Join(b.TempDir(), "whitelist.nft")
			text := "add table inet " + rs.Table + "\ndelete table inet " + rs.Table + "\n" + Render(rs)
			if err := os.WriteFile(script, []byte(text), 0o644); err != nil {
				b.Fatal(err)
			}
			b.Run("nft-f", func(b *testing.B) {
				if _, err := exec.LookPath("nft"); err != nil {
					b.Skip("nft is not installed (apt-get install nftables)")
				}
				for b.Loop() {
					err := ns.Do(func() error {
						out, err := exec.Command("nft", "-f", script).CombinedOutput()
						if err != nil {
							return fmt.Errorf("nft -f: %v: %s", err, out)
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rules), "rules")
				b.ReportMetric(float64(elems), "elements")
				// What nft loaded is the table dockward wants.
				live, err := nft.Read(rs.Table)
				if err != nil {
					b.Fatal(err)
				}
				if cs := Diff(rs, live); len(cs) != 0 {
					b.Fatalf("nft -f made a different table: %+v", cs[:min(len(cs), 5)])
				}
			})
		})
	}
}

// BenchmarkPlanNoop is a plan of a converged table: read it back, build
// the desired one, compare. Target: under 10 ms for 10,000 addresses.
//
// cold is what a one-shot `dockward plan` does: a fresh module that dumps
// the whole table (every set element) and builds the desired table from
// the configuration. warm is the resident agent's next plan: the same
// module, the kernel's ruleset generation unchanged since its last read.
func BenchmarkPlanNoop(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("addrs=%d", n), func(b *testing.B) {
			ns := netnstest.New(b)
			m, rs := whitelistModule(n, ns)
			if err := NewNFT(ns.NFTOpts()...).Replace(rs); err != nil {
				b.Fatal(err)
			}
			rules, _ := rs.Counts()
			ctx := context.Background()
			plan := func(b *testing.B, m *Module) {
				p, err := m.Plan(ctx, liveEnv)
				if err != nil {
					b.Fatal(err)
				}
				if !p.Empty() {
					b.Fatalf("plan of a converged table: %+v", p.Changes[:min(len(p.Changes), 5)])
				}
			}
			b.Run("cold", func(b *testing.B) {
				cpu := cpuTime()
				for b.Loop() {
					plan(b, NewWith(m.cfg, NewNFT(ns.NFTOpts()...), nil))
				}
				reportCPU(b, cpu)
				b.ReportMetric(float64(rules), "rules")
			})
			b.Run("warm", func(b *testing.B) {
				plan(b, m)
				cpu := cpuTime()
				for b.Loop() {
					plan(b, m)
				}
				reportCPU(b, cpu)
				b.ReportMetric(float64(rules), "rules")
			})
		})
	}
}

// BenchmarkPlanDrift is a cold plan of the 10,000-address table after
// someone's edit: one address added to the whitelist set, one taken out.
// The sorted elements are merged, and only those two are printed.
func BenchmarkPlanDrift(b *testing.B) {
	ns := netnstest.New(b)
	m, rs := whitelistModule(10000, ns)
	if err := NewNFT(ns.NFTOpts()...).Replace(rs); err != nil {
		b.Fatal(err)
	}
	ns.Exec(b, "nft", "add element inet dockward egress_app_0_v4 { 192.0.2.1 }")
	ns.Exec(b, "nft", "delete element inet dockward egress_app_0_v4 { 10.0.0.2 }")
	want := []string{"+ element 10.0.0.2", "- element 192.0.2.1"}
	cpu := cpuTime()
	for b.Loop() {
		p, err := NewWith(m.cfg, NewNFT(ns.NFTOpts()...), nil).Plan(context.Background(), liveEnv)
		if err != nil {
			b.Fatal(err)
		}
		var got []string
		for _, c := range p.Changes {
			got = append(got, string(c.Action)+" "+c.New+c.Old)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			b.Fatalf("plan: %v, want %v", got, want)
		}
	}
	reportCPU(b, cpu)
}

// cpuTime is the process's user and system CPU time so far. The machines
// these benchmarks run on are shared, so wall time per op swings with the
// load; CPU time per op (the kernel's work for our netlink calls included,
// as system time) does not. nft's figure cannot have it (another process),
// which is why both sides also report wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(cpuTime()-since)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}
