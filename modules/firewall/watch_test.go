package firewall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dockward/dockward/agent/agenttest"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/integration/netnstest"
	"github.com/moby/moby/client"
)

// watchHCL has sets (so that element notifications can be tested), a
// network named by its bridge and two resolved through Docker.
const watchHCL = `
firewall {
  network "app" {
    bridge = "br-app"
    egress_allow {
      proto = "tcp"
      ports = [80, 443]
      to    = ["198.51.100.0/24", "203.0.113.7"]
    }
  }
  network "later" {
    egress_allow {
      proto = "udp"
      ports = [53]
      to    = ["198.51.100.1"]
    }
  }
  network "isolated" {
    internal = true
  }
}`

var watchEnv = &agent.Env{}

func runWatch(t *testing.T, m *Module) (*agenttest.Events, func() error) {
	t.Helper()
	ev := agenttest.NewEvents(1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Watch(ctx, watchEnv, ev.Emit) }()
	var once sync.Once
	var result error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(10 * time.Second):
				result = errors.New("Watch did not return within 10s of its context ending")
			}
		})
		return result
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return ev, stop
}

// The monitor against the kernel, in a throwaway network namespace: only
// changes to `table inet dockward` are reported, one event per transaction,
// whoever makes them; other tables, and a table of the same name in
// another family, are not.
func TestWatchTableKernel(t *testing.T) {
	ns := netnstest.New(t)
	b := decodeHCL(t, watchHCL)
	for _, n := range b.Networks {
		n.Bridge = "br-" + n.Name // no Docker here
	}
	nft := NewNFT(ns.NFTOpts()...)
	m := NewWith(b, nft, nil)
	converge := func() {
		t.Helper()
		p, err := m.Plan(context.Background(), watchEnv)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Apply(context.Background(), watchEnv, p); err != nil {
			t.Fatal(err)
		}
	}
	converge()
	live, err := nft.Read("dockward")
	if err != nil || live == nil {
		t.Fatalf("table after apply: %v %+v", err, live)
	}
	set := ""
	for _, s := range live.Sets {
		if s.Type.Name == "ipv4_addr" && len(s.Elems) > 0 {
			set = s.Name
		}
	}
	if set == "" {
		t.Fatalf("no IPv4 address set with elements in %s", Render(live))
	}

	ev, stop := runWatch(t, m)
	// The monitor has joined once a change of ours is seen: probe until then.
	for i := 0; ; i++ {
		ns.Exec(t, "nft", "add", "chain", "inet", "dockward", fmt.Sprintf("probe%d", i))
		select {
		case r := <-ev.C:
			if !strings.HasPrefix(r, "nftables: table inet dockward: chain added") {
				t.Fatalf("probe: %q", r)
			}
		case <-time.After(100 * time.Millisecond):
			if i > 100 {
				t.Fatal("the monitor reported nothing within 10s")
			}
			continue
		}
		break
	}
	converge() // our own replace is an event too: the run loop ignores it as its echo
	if r := ev.Next(t, "dockward's own replace"); !strings.HasPrefix(r, "nftables: table inet dockward: ") {
		t.Errorf("replace: %q", r)
	}
	ev.Drain(200 * time.Millisecond)
	// One transaction, one event: Replace deletes and re-adds every object.
	// (drained above; checked by the tampering cases below, each one event)

	for _, tc := range []struct {
		name   string
		script string
		want   string // "" = no event
	}{
		{"table deleted", "delete table inet dockward", "nftables: table inet dockward: "},
		{"set flushed", "flush set inet dockward " + set, "nftables: table inet dockward: set elements deleted"},
		{"element added", "add element inet dockward " + set + " { 192.0.2.99 }", "nftables: table inet dockward: set elements added"},
		{"rule added", "add rule inet dockward forward accept", "nftables: table inet dockward: rule added"},
		{"other table", "add table inet other\nadd chain inet other c\nadd set inet other s { type ipv4_addr; }\nadd element inet other s { 192.0.2.1 }\nadd rule inet other c accept\ndelete table inet other", ""},
		{"same name, other family", "add table ip dockward\nadd chain ip dockward c\nadd rule ip dockward c accept\ndelete table ip dockward", ""},
		{"flush ruleset", "flush ruleset", "nftables: table inet dockward: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns.ExecStdin(t, tc.script+"\n", "nft", "-f", "-")
			if tc.want == "" {
				ev.None(t, 300*time.Millisecond, tc.name)
				return
			}
			if r := ev.Next(t, tc.name); !strings.HasPrefix(r, tc.want) {
				t.Errorf("event %q, want %q...", r, tc.want)
			}
			// A whole transaction is one event, however many objects it touched.
			ev.None(t, 200*time.Millisecond, tc.name+": second event for one transaction")
			converge()
			ev.Drain(200 * time.Millisecond)
		})
	}
	if err := stop(); err != nil {
		t.Errorf("Watch returned %v after its context ended, want nil", err)
	}
}

// scriptedDocker is a Docker whose event stream the test drives: each
// NetworkEvents call gets the next stream; since is recorded.
type scriptedDocker struct {
	mu      sync.Mutex
	since   []time.Time
	streams chan *stream
}

type stream struct {
	evs  chan NetworkEvent
	errs chan error
}

func (s *scriptedDocker) Network(context.Context, string) (DockerNetwork, bool, error) {
	return DockerNetwork{}, false, errors.New("not used")
}
func (s *scriptedDocker) CreateNetwork(context.Context, string, bool) error {
	return errors.New("not used")
}

func (s *scriptedDocker) NetworkEvents(ctx context.Context, since time.Time) (<-chan NetworkEvent, <-chan error) {
	s.mu.Lock()
	s.since = append(s.since, since)
	s.mu.Unlock()
	select {
	case st := <-s.streams:
		return st.evs, st.errs
	case <-ctx.Done():
		errs := make(chan error, 1)
		errs <- ctx.Err()
		return nil, errs
	}
}

// noTables is a kernel side with nothing to monitor.
type noTables struct{}

func (noTables) Read(string) (*Ruleset, error) { return nil, nil }
func (noTables) Replace(*Ruleset) error        { return nil }

func TestWatchNetworks(t *testing.T) {
	d := &scriptedDocker{streams: make(chan *stream)}
	m := NewWith(decodeHCL(t, watchHCL), noTables{}, nil)
	m.newDocker = func() (Docker, error) { return d, nil }
	ev, _ := runWatch(t, m)

	s1 := &stream{evs: make(chan NetworkEvent), errs: make(chan error, 1)}
	d.streams <- s1
	now := time.Now().UnixNano() // after the stream opened: later than its since
	s1.evs <- NetworkEvent{Name: "other", Action: "create", TimeNano: now + 1}
	s1.evs <- NetworkEvent{Name: "later", Action: "create", TimeNano: now + 2}
	if r := ev.Next(t, "declared network created"); r != "docker: network later: create" {
		t.Errorf("event %q", r)
	}
	s1.evs <- NetworkEvent{Name: "isolated", Action: "destroy", TimeNano: now + 3}
	if r := ev.Next(t, "declared network destroyed"); r != "docker: network isolated: destroy" {
		t.Errorf("event %q", r)
	}
	ev.None(t, 100*time.Millisecond, "an undeclared network")

	// dockerd restarts: the stream breaks, and the next one is asked for
	// the events since the last one seen. Docker replays that one (its
	// since is inclusive): it is not reported twice.
	s1.errs <- errors.New("unexpected EOF")
	s2 := &stream{evs: make(chan NetworkEvent), errs: make(chan error, 1)}
	select {
	case d.streams <- s2:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnect within 10s")
	}
	d.mu.Lock()
	since := d.since[len(d.since)-1]
	d.mu.Unlock()
	if since.UnixNano() != now+3 {
		t.Errorf("reconnected with since %d, want %d (the last event seen)", since.UnixNano(), now+3)
	}
	s2.evs <- NetworkEvent{Name: "isolated", Action: "destroy", TimeNano: now + 3}
	s2.evs <- NetworkEvent{Name: "isolated", Action: "create", TimeNano: now + 4}
	if r := ev.Next(t, "after reconnect"); r != "docker: network isolated: create" {
		t.Errorf("event %q", r)
	}
}

// Networks that name their bridge need no Docker: no stream is opened.
func TestWatchNoDockerNeeded(t *testing.T) {
	b := decodeHCL(t, watchHCL)
	for _, n := range b.Networks {
		n.Bridge = "br-" + n.Name
	}
	m := NewWith(b, noTables{}, nil)
	m.newDocker = func() (Docker, error) {
		t.Error("Docker connected although no network needs it")
		return nil, errors.New("no")
	}
	runWatch(t, m)
	time.Sleep(50 * time.Millisecond)
}

func TestWatchOffline(t *testing.T) {
	m := NewWith(decodeHCL(t, watchHCL), noTables{}, nil)
	if err := m.Watch(context.Background(), &agent.Env{Root: t.TempDir()}, func(string) {}); !errors.Is(err, agent.ErrOffline) {
		t.Errorf("Watch under --root = %v, want ErrOffline", err)
	}
}

// eventsEngine serves the Engine API's /events as dockerd does: JSON lines,
// flushed one by one, the stream kept open.
type eventsEngine struct {
	mu      sync.Mutex
	queries []string
	lines   chan string
}

func (e *eventsEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", "1.45")
	switch {
	case strings.HasSuffix(r.URL.Path, "/_ping"):
		_, _ = w.Write([]byte("OK"))
	case strings.HasSuffix(r.URL.Path, "/events"):
		e.mu.Lock()
		e.queries = append(e.queries, r.URL.RawQuery)
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case l, ok := <-e.lines:
				if !ok {
					return // dockerd going away
				}
				_, _ = w.Write([]byte(l + "\n"))
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	default:
		w.WriteHeader(http.StatusNotImplemented)
	}
}

// The Engine API side: the real client asks for network create and
// destroy events, from since, over a unix socket as to dockerd.
func TestNetworkEventsEngineAPI(t *testing.T) {
	dir, err := os.MkdirTemp("", "dockerapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	eng := &eventsEngine{lines: make(chan string, 10)}
	srv := &http.Server{Handler: eng}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	d, err := newDockerAPI(client.WithHost("unix://" + sock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	since := time.Unix(1700000000, 5)
	evs, errs := d.(networkEventer).NetworkEvents(ctx, since)
	msg := map[string]any{"Type": "network", "Action": "create", "Actor": map[string]any{"ID": "abc", "Attributes": map[string]string{"name": "later", "type": "bridge"}},
		"scope": "local", "time": 1700000001, "timeNano": 1700000001000000123}
	b, _ := json.Marshal(msg)
	eng.lines <- string(b)
	select {
	case ev := <-evs:
		if ev != (NetworkEvent{Name: "later", Action: "create", TimeNano: 1700000001000000123}) {
			t.Errorf("event %+v", ev)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("no event")
	}
	eng.mu.Lock()
	q := eng.queries[0]
	eng.mu.Unlock()
	for _, want := range []string{"since=1700000000.000000005", "filters="} {
		if !strings.Contains(q, want) {
			t.Errorf("query %q lacks %q", q, want)
		}
	}
	if !strings.Contains(q, "%22type%22%3A%7B%22network%22%3Atrue%7D") || !strings.Contains(q, "%22create%22%3Atrue") || !strings.Contains(q, "%22destroy%22%3Atrue") {
		t.Errorf("filters in %q: want type=network, event=create,destroy", q)
	}
	// dockerd stops: the stream ends with an error for the caller to reconnect.
	close(eng.lines)
	select {
	case err := <-errs:
		if err == nil || !strings.Contains(err.Error(), "docker events") {
			t.Errorf("stream end: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("stream end not reported")
	}
}
