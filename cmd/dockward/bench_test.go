package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkProcess measures whole processes side by side in one run: the
// floor (`dockward version`), a no-op apply of docker_daemon and
// subordinate_ids on a converged --root tree (the target is at most 10 ms
// between the two), and `dockward status` of an agent running on that
// tree. Each reports its CPU time (user and system) as cpu-ms/op.
func BenchmarkProcess(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "dockward")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	t := &testing.T{}
	root := newRoot(t)
	cfg := filepath.Join(b.TempDir(), "c.hcl")
	src := "docker_daemon {\n  userns_remap = \"default\"\n  log_driver = \"json-file\"\n  log_opts = { max-size = \"10m\", max-file = 3 }\n}\nsubordinate_ids \"dockremap\" {\n  create_user = false\n}\n"
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := exec.Command(bin, "apply", "-c", cfg, "--root", root).Run(); err == nil {
		b.Fatal("first apply should exit 2")
	}
	runs := map[string][]string{
		"version":    {"version"},
		"noop-apply": {"apply", "-c", cfg, "--root", root, "--log-level", "warn"},
		"status":     {"status", "-c", cfg, "--root", root},
	}
	// status of a running agent: the agent lock held, its state and the
	// report there to read (exit 0).
	agent := exec.Command(bin, "run", "-c", cfg, "--root", root)
	if err := agent.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = agent.Process.Kill()
		_ = agent.Wait()
	}()
	for deadline := time.Now().Add(30 * time.Second); exec.Command(bin, runs["status"]...).Run() != nil; {
		if time.Now().After(deadline) {
			b.Fatal("the agent did not publish its state in 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, name := range []string{"version", "noop-apply", "status"} {
		b.Run(name, func(b *testing.B) {
			var cpu time.Duration
			for b.Loop() {
				cmd := exec.Command(bin, runs[name]...)
				if err := cmd.Run(); err != nil {
					b.Fatalf("%s: %v", name, err)
				}
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			// CPU time of the process itself (user and system), beside the
			// wall time ns/op.
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}
