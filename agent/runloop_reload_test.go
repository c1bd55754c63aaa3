package agent

import (
	"bytes"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sirupsen/logrus"
)

// notifyLog records what the loop tells systemd, one entry per sd_notify
// message, and (as "reloaded: ...") when it tells Reloaded, so that a test
// sees the order of the two.
type notifyLog struct {
	mu   sync.Mutex
	msgs []string
}

func (n *notifyLog) add(m string) {
	n.mu.Lock()
	n.msgs = append(n.msgs, m)
	n.mu.Unlock()
}

// since returns the entries from index i on.
func (n *notifyLog) since(i int) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs[i:]...)
}

func (n *notifyLog) len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.msgs)
}

// TestLoopReloadSpeaksSystemdsProtocol: a reload begins with one message
// holding RELOADING=1 and MONOTONIC_USEC= (systemd ignores a RELOADING=1
// without a time at or after its request), ends with READY=1 after the
// reload's converge, and only then is reported to Reloaded, which is what
// `dockward reload` (ExecReload=) waits for. A refused configuration ends
// the same way, with the reason in STATUS= and in the result; a reason
// longer than systemd reads in one notification is cut so READY=1 arrives.
func TestLoopReloadSpeaksSystemdsProtocol(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		mod := &fileModule{path: filepath.Join(dir, "f"), want: "x"}
		log := logrus.New()
		log.SetOutput(&bytes.Buffer{})
		reload := make(chan struct{}, 1)
		var loadErr error
		notes := &notifyLog{}
		results := make(chan ReloadResult, 1)
		converges := make(chan string, 10)
		l := &Loop{
			Load: func() (*Engine, LoopSettings, error) {
				if loadErr != nil {
					return nil, LoopSettings{}, loadErr
				}
				return &Engine{Modules: []Module{mod}, StateDir: filepath.Join(dir, "state"), Log: log}, LoopSettings{Interval: time.Hour}, nil
			},
			Reload: reload, Log: log, WatchFiles: newFakeFiles().watch,
			Notify: notes.add,
			OnConverge: func(rep *Report, trigger string) {
				notes.add("converged: " + trigger)
				converges <- trigger
			},
			Reloaded: func(r ReloadResult) {
				msg := "reloaded: ok"
				if r.Err != nil {
					msg = "reloaded: " + r.Err.Error()
				}
				notes.add(msg)
				results <- r
			},
		}
		defer runLoop(t, l)()
		<-converges
		synctest.Wait()
		if got := notes.since(0); len(got) != 3 || got[2] != "READY=1" {
			t.Fatalf("start: %q, want a STATUS=, the converge, READY=1", got)
		}

		// A good configuration.
		mark, before := notes.len(), MonotonicUsec()
		reload <- struct{}{}
		r := <-results
		got := notes.since(mark)
		want := []string{"RELOADING=1", "STATUS=last run", "converged: reload", "READY=1", "reloaded: ok"}
		if !matchPrefixes(got, want) {
			t.Fatalf("good reload sent %q, want entries starting %q", got, want)
		}
		usec := monotonicOf(t, got[0])
		if usec != r.Started || usec < before {
			t.Errorf("MONOTONIC_USEC=%d, result's Started %d, reload requested at %d: want equal, and not before the request", usec, r.Started, before)
		}
		if r.Err != nil {
			t.Errorf("good reload reported %v", r.Err)
		}

		// A refused configuration: no converge, the old one runs.
		loadErr = errors.New("dockward.hcl:3,1-2: Unclosed configuration block")
		mark, before = notes.len(), MonotonicUsec()
		reload <- struct{}{}
		r = <-results
		got = notes.since(mark)
		want = []string{"RELOADING=1", "READY=1\nSTATUS=reload failed, running the previous configuration: dockward.hcl:3,1-2: Unclosed", "reloaded: dockward.hcl:3,1-2"}
		if !matchPrefixes(got, want) {
			t.Fatalf("bad reload sent %q, want entries starting %q", got, want)
		}
		if !errors.Is(r.Err, loadErr) || r.Started < before || r.Started != monotonicOf(t, got[0]) {
			t.Errorf("bad reload's result %+v, want %v started at or after %d", r, loadErr, before)
		}

		// A reason too long for one notification is cut, READY=1 kept.
		loadErr = errors.New(strings.Repeat("é", 5000))
		mark = notes.len()
		reload <- struct{}{}
		r = <-results
		got = notes.since(mark)
		if len(got) != 3 || !strings.HasPrefix(got[1], "READY=1\nSTATUS=reload failed") || len(got[1]) > 2048 || !strings.HasSuffix(got[1], "é...") {
			t.Errorf("long reason: %d entries, READY message of %d bytes ending %q", len(got), len(got[1]), got[1][max(0, len(got[1])-10):])
		}
		if r.Err != loadErr {
			t.Errorf("the result carries the whole reason, got %v", r.Err)
		}
	})
}

// matchPrefixes says whether got has exactly len(want) entries, each
// starting with its want.
func matchPrefixes(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			return false
		}
	}
	return true
}

// monotonicOf parses the MONOTONIC_USEC= of a RELOADING=1 message, which
// must come in the same message.
func monotonicOf(t *testing.T, msg string) uint64 {
	t.Helper()
	for _, f := range strings.Split(msg, "\n") {
		if v, ok := strings.CutPrefix(f, "MONOTONIC_USEC="); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("MONOTONIC_USEC in %q: %v", msg, err)
			}
			return n
		}
	}
	t.Fatalf("no MONOTONIC_USEC= in %q", msg)
	return 0
}
