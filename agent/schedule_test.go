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
	end := t0.Add(2 * time.Second)
	s.Record(t0, end, []string{"docker_daemon"})
	for _, tc := range []struct {
		at     time.Time
		module string
		own    bool
		why    string
	}{
		{t0.Add(-time.Millisecond), "docker_daemon", false, "emitted before the converge began"},
		{t0, "docker_daemon", true, "emitted as the converge began"},
		{t0.Add(time.Second), "docker_daemon", true, "emitted during its apply"},
		{end.Add(50 * time.Millisecond), "docker_daemon", true, "delivered within grace"},
		{end.Add(150 * time.Millisecond), "docker_daemon", false, "a later tamper"},
		{t0.Add(time.Second), "subordinate_ids.dockremap", false, "a module the converge did not write to"},
		{t0.Add(time.Second), "firewall", false, "a module never written"},
	} {
		if got := s.Own(tc.at, tc.module); got != tc.own {
			t.Errorf("%s: Own = %v, want %v", tc.why, got, tc.own)
		}
	}
	// A later converge that did not write docker_daemon leaves its last
	// window as it was; one that did moves it.
	s.Record(end.Add(time.Second), end.Add(2*time.Second), []string{"firewall"})
	if s.Own(end.Add(1500*time.Millisecond), "docker_daemon") {
		t.Error("docker_daemon event during a converge that did not write it was suppressed")
	}
	if !s.Own(end.Add(1500*time.Millisecond), "firewall") {
		t.Error("firewall echo not suppressed")
	}
}
