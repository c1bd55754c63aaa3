package agent

import (
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestDebouncerCoalescesABurst(t *testing.T) {
	d := &Debouncer{Quiet: 50 * time.Millisecond, MaxDelay: time.Second}
	if _, ok := d.Take(t0); ok {
		t.Fatal("fired with nothing pending")
	}
	// 20 events 10 ms apart: one converge, 50 ms after the last.
	for i := range 20 {
		d.Add(t0.Add(time.Duration(i)*10*time.Millisecond), "docker_daemon", "write")
		if _, ok := d.Take(t0.Add(time.Duration(i)*10*time.Millisecond + 5*time.Millisecond)); ok {
			t.Fatalf("fired inside the burst at event %d", i)
		}
	}
	d.Add(t0.Add(190*time.Millisecond), "firewall", "table deleted")
	last := t0.Add(190 * time.Millisecond)
	if got := d.Deadline(); !got.Equal(last.Add(50 * time.Millisecond)) {
		t.Fatalf("deadline %v, want %v", got.Sub(t0), last.Add(50*time.Millisecond).Sub(t0))
	}
	p, ok := d.Take(last.Add(50 * time.Millisecond))
	if !ok || len(p) != 2 || p["docker_daemon"] != "write" {
		t.Fatalf("took %v %v", p, ok)
	}
	if d.Pending() {
		t.Fatal("still pending after Take")
	}
}

func TestDebouncerMaxDelayBoundsATrickle(t *testing.T) {
	d := &Debouncer{Quiet: 100 * time.Millisecond, MaxDelay: 300 * time.Millisecond}
	fired := time.Duration(-1)
	for i := range 100 {
		now := t0.Add(time.Duration(i) * 50 * time.Millisecond)
		if _, ok := d.Take(now); ok {
			fired = now.Sub(t0)
			break
		}
		d.Add(now, "subordinate_ids.dockremap", "write")
	}
	if fired != 300*time.Millisecond {
		t.Fatalf("fired at %v, want 300ms", fired)
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	b := Backoff{Base: time.Second, Max: 60 * time.Second}
	want := []time.Duration{0, 1, 2, 4, 8, 16, 32, 60, 60}
	for n, w := range want {
		if got := b.Delay(n); got != w*time.Second {
			t.Errorf("Delay(%d) = %v, want %v", n, got, w*time.Second)
		}
	}
	if got := b.Delay(1000); got != 60*time.Second {
		t.Errorf("Delay(1000) = %v", got)
	}
}

func TestNextBackstopStaysWithinSplay(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	seen := map[bool]bool{}
	for range 1000 {
		n := NextBackstop(t0, 5*time.Minute, 30*time.Second, rnd).Sub(t0)
		if n < 5*time.Minute || n >= 5*time.Minute+30*time.Second {
			t.Fatalf("backstop %v outside [5m, 5m30s)", n)
		}
		seen[n > 5*time.Minute+15*time.Second] = true
	}
	if len(seen) != 2 {
		t.Fatal("splay is not spread")
	}
	if n := NextBackstop(t0, time.Minute, 0, rnd).Sub(t0); n != time.Minute {
		t.Fatalf("no splay: %v", n)
	}
}

func TestSuppressorIgnoresOwnWritesOnly(t *testing.T) {
	s := &Suppressor{Grace: 100 * time.Millisecond}
	s.Begin([]string{"docker_daemon"})
	if !s.Own(t0, "docker_daemon") {
		t.Fatal("event during own apply not suppressed")
	}
	if s.Own(t0, "subordinate_ids.dockremap") {
		t.Fatal("other module's event suppressed")
	}
	s.End(t0, []string{"docker_daemon"})
	if !s.Own(t0.Add(50*time.Millisecond), "docker_daemon") {
		t.Fatal("echo within grace not suppressed")
	}
	if s.Own(t0.Add(150*time.Millisecond), "docker_daemon") {
		t.Fatal("a later tamper was suppressed")
	}
}
