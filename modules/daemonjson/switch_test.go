package daemonjson

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/dockward/dockward/agent/moduletest"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/agenttest"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// fakeEngine is the Docker Engine API as far as the switch detection reads
// it, served over HTTP to the real client.
type fakeEngine struct {
	root        string
	liveRestore bool
	stopped     []string // container IDs stopped, then started ("+ID")
	containers  []map[string]any
	images      []map[string]any
	networks    []string
	volumes     []map[string]any
	calls       int
}

var apiVersion = regexp.MustCompile(`^/v[0-9.]+`)

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls++
	w.Header().Set("Api-Version", "1.45")
	w.Header().Set("Content-Type", "application/json")
	var body any
	path := apiVersion.ReplaceAllString(r.URL.Path, "")
	if id, ok := strings.CutSuffix(strings.TrimPrefix(path, "/containers/"), "/stop"); ok && r.Method == http.MethodPost {
		f.stopped = append(f.stopped, id)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if id, ok := strings.CutSuffix(strings.TrimPrefix(path, "/containers/"), "/start"); ok && r.Method == http.MethodPost {
		f.stopped = append(f.stopped, "+"+id)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	switch path {
	case "/_ping":
		_, _ = w.Write([]byte("OK"))
		return
	case "/info":
		body = map[string]any{"DockerRootDir": f.root, "LiveRestoreEnabled": f.liveRestore}
	case "/containers/json":
		var cs []map[string]any
		for _, c := range f.containers {
			if r.URL.Query().Get("all") == "1" || c["State"] == "running" {
				cs = append(cs, c)
			}
		}
		body = cs
	case "/images/json":
		body = f.images
	case "/networks":
		var ns []map[string]any
		for _, n := range append([]string{"bridge", "host", "none"}, f.networks...) {
			ns = append(ns, map[string]any{"Name": n, "Id": n + "-id", "Driver": "bridge"})
		}
		body = ns
	case "/volumes":
		body = map[string]any{"Volumes": f.volumes}
	default:
		http.Error(w, `{"message":"not in the fake"}`, http.StatusNotFound)
		return
	}
	_ = json.NewEncoder(w).Encode(body)
}

// adoptedHost is the host: two running containers, an image, a
// user-defined network and a named volume (plus an anonymous one).
func adoptedHost(root string) *fakeEngine {
	return &fakeEngine{
		root: root,
		containers: []map[string]any{
			{"Id": strings.Repeat("a", 64), "Names": []string{"/web"}, "State": "running"},
			{"Id": strings.Repeat("b", 64), "Names": []string{"/db"}, "State": "exited"},
		},
		images:   []map[string]any{{"Id": "sha256:" + strings.Repeat("c", 64), "RepoTags": []string{"busybox:local"}}},
		networks: []string{"appnet"},
		volumes: []map[string]any{
			{"Name": "appdata", "Driver": "local"},
			{"Name": strings.Repeat("d", 64), "Driver": "local"},
		},
	}
}

type noUnit struct{}

func (noUnit) ReadUnit(context.Context, string) (*UnitExec, error) { return nil, ErrNoUnit }

// switchCase is a live (not --root) run whose files live in a tree: the
// module reads daemon.json, the ID files and data roots under it, and the
// Engine API from srv.
type switchCase struct {
	t    testing.TB
	tree string
	env  *agent.Env
	m    *Module
}

func newSwitchCase(t testing.TB, hcl string, api http.Handler) *switchCase {
	t.Helper()
	tree := t.TempDir()
	log, _ := test.NewNullLogger()
	env := &agent.Env{StateDir: filepath.Join(tree, "var/lib/dockward"), Log: logrus.NewEntry(log), Facts: agent.NewFacts()}
	b := mustDecode(t, hcl)
	b.Path = filepath.Join(tree, "etc/docker/daemon.json")
	m := New(b)
	m.Units = noUnit{}
	m.hostRoot = tree
	host := "tcp://127.0.0.1:1" // nothing listens: docker not running
	if api != nil {
		srv := httptest.NewServer(api)
		t.Cleanup(srv.Close)
		host = "tcp://" + srv.Listener.Addr().String()
	}
	m.Engine = func() (*client.Client, error) { return client.New(client.WithHost(host)) }
	return &switchCase{t: t, tree: tree, env: env, m: m}
}

func (c *switchCase) file(path, data string) { writeFile(c.t, filepath.Join(c.tree, path), data) }

// subIDsPlanned is what subordinate_ids.dockremap publishes when its plan
// gives dockremap the range at start.
func (c *switchCase) subIDsPlanned(start uint64, changed bool) {
	r := []agent.IDRange{{Start: start, Count: 65536}}
	c.env.Facts.PublishSubordinateIDs(agent.SubordinateIDs{User: "dockremap", UID: r, GID: r, Module: "subordinate_ids.dockremap", Changed: changed})
}

// planText is the plan as `dockward plan` prints it.
func (c *switchCase) planText() (string, *agent.Plan) {
	c.t.Helper()
	p, err := c.m.Plan(context.Background(), c.env)
	if err != nil {
		c.t.Fatalf("plan: %v", err)
	}
	rep := &agent.Report{Command: "plan", Modules: []agent.ModuleResult{{ID: c.m.ID(), Status: agent.StatusChanged, Changes: p.Changes}}}
	if p.Empty() {
		rep.Modules[0].Status = agent.StatusOK
	}
	var sb strings.Builder
	if err := agent.WriteText(&sb, rep); err != nil {
		c.t.Fatal(err)
	}
	return strings.ReplaceAll(sb.String(), c.tree, "$TREE"), p
}

const remapConfig = `
docker_daemon {
  userns_remap = "default"
  log_driver   = "json-file"
%s
}
`

func withSwitch(mode string) string {
	if mode == "" {
		return strings.Replace(remapConfig, "%s", "", 1)
	}
	return strings.Replace(remapConfig, "%s", `  on_data_root_switch = "`+mode+`"`, 1)
}

func TestSwitchRefusedByDefault(t *testing.T) {
	api := adoptedHost("/var/lib/docker")
	c := newSwitchCase(t, withSwitch(""), api)
	c.file("etc/docker/daemon.json", `{"log-driver": "json-file"}`)
	c.subIDsPlanned(100000, true)

	text, p := c.planText()
	agenttest.Golden(t, "testdata/switch/refuse.golden", text)

	err := c.m.Gate(context.Background(), c.env, c.m.ID(), p)
	var refused *SwitchRefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("Gate(docker_daemon) = %v, want a SwitchRefusedError", err)
	}
	agenttest.Golden(t, "testdata/switch/refuse-message.golden", err.Error()+"\n")
	if err := c.m.Apply(context.Background(), c.env, p); !errors.As(err, &refused) {
		t.Errorf("Apply without the engine's gate = %v, want the refusal too", err)
	}
	if got := readFile(t, filepath.Join(c.tree, "etc/docker/daemon.json")); got != `{"log-driver": "json-file"}` {
		t.Errorf("daemon.json written after a refusal: %s", got)
	}

	// subordinate_ids' new range is part of the switch: not written either.
	err = c.m.Gate(context.Background(), c.env, "subordinate_ids.dockremap", &agent.Plan{})
	if err == nil || !strings.Contains(err.Error(), "docker_daemon refuses that switch") {
		t.Errorf("Gate(subordinate_ids.dockremap) = %v, want a refusal pointing at docker_daemon", err)
	}
	// The firewall is not: it converges.
	calls := api.calls
	if err := c.m.Gate(context.Background(), c.env, "firewall", &agent.Plan{}); err != nil {
		t.Errorf("Gate(firewall) = %v, want nil", err)
	}
	if api.calls != calls {
		t.Errorf("Gate(firewall) asked the Engine API (%d calls)", api.calls-calls)
	}
}

func TestSwitchLeaveBehindProceedsAndSaysWhat(t *testing.T) {
	c := newSwitchCase(t, withSwitch(SwitchLeaveBehind), adoptedHost("/var/lib/docker"))
	c.file("etc/docker/daemon.json", `{"log-driver": "json-file"}`)
	c.subIDsPlanned(100000, true)
	text, p := c.planText()
	agenttest.Golden(t, "testdata/switch/leave-behind.golden", text)
	for _, id := range []string{c.m.ID(), "subordinate_ids.dockremap"} {
		if err := c.m.Gate(context.Background(), c.env, id, p); err != nil {
			t.Errorf("Gate(%s) = %v, want nil", id, err)
		}
	}
	if err := c.m.Apply(context.Background(), c.env, p); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(c.tree, "etc/docker/daemon.json")); !strings.Contains(got, `"userns-remap": "default"`) {
		t.Errorf("daemon.json after leave_behind: %s", got)
	}
}

// Switching back: daemon.json has userns-remap (dockward wrote it), the
// configuration drops it; /var/lib/docker was used before and still holds
// the old workloads, read from its files.
func TestSwitchBackShowsWhatTheOldRootHolds(t *testing.T) {
	api := &fakeEngine{root: "/var/lib/docker/100000.100000", networks: []string{"isolated"}}
	c := newSwitchCase(t, `
docker_daemon {
  log_driver          = "json-file"
  on_data_root_switch = "leave_behind"
}
`, api)
	c.file("etc/docker/daemon.json", "{\n  \"userns-remap\": \"default\",\n  \"log-driver\": \"json-file\"\n}\n")
	c.file("var/lib/dockward/docker_daemon/owned.json", `{"format_version":"1","path":"`+c.m.cfg.Path+`","keys":{"userns-remap":"default","log-driver":"json-file"}}`)
	c.file("etc/subuid", "dockremap:100000:65536\n")
	c.file("etc/subgid", "dockremap:100000:65536\n")
	c.file("var/lib/docker/containers/"+strings.Repeat("a", 64)+"/config.v2.json", `{"Name":"/web","State":{"Running":true}}`)
	c.file("var/lib/docker/containers/"+strings.Repeat("b", 64)+"/config.v2.json", `{"Name":"/db","State":{"Running":false}}`)
	c.file("var/lib/docker/image/overlay2/repositories.json", `{"Repositories":{"busybox":{"busybox:local":"sha256:cc","busybox@sha256:dd":"sha256:cc"}}}`)
	c.file("var/lib/docker/volumes/appdata/_data/hello", "hello\n")
	c.file("var/lib/docker/volumes/"+strings.Repeat("e", 64)+"/_data/x", "")
	c.file("var/lib/docker/volumes/metadata.db", "")
	c.file("var/lib/docker/network/files/local-kv.db", "")
	text, _ := c.planText()
	agenttest.Golden(t, "testdata/switch/switch-back.golden", text)
}

// subordinate_ids alone moves the root: userns-remap stays, the range
// start changes. docker_daemon's file is converged, its plan is the switch.
func TestSwitchByTheRangesAlone(t *testing.T) {
	c := newSwitchCase(t, withSwitch(""), adoptedHost("/var/lib/docker/100000.100000"))
	c.file("etc/docker/daemon.json", "{\n  \"userns-remap\": \"default\",\n  \"log-driver\": \"json-file\"\n}\n")
	c.file("etc/subuid", "dockremap:100000:65536\n")
	c.file("etc/subgid", "dockremap:100000:65536\n")
	c.subIDsPlanned(200000, true)
	text, p := c.planText()
	agenttest.Golden(t, "testdata/switch/ranges.golden", text)
	if err := c.m.Gate(context.Background(), c.env, "subordinate_ids.dockremap", p); err == nil {
		t.Error("Gate(subordinate_ids.dockremap) = nil, want a refusal")
	}
	// Once subordinate_ids is converged on the files, nothing is pending.
	c.file("etc/subuid", "dockremap:200000:65536\n")
	c.file("etc/subgid", "dockremap:200000:65536\n")
	c.env.Facts = agent.NewFacts()
	c.subIDsPlanned(200000, false)
	c.m.Engine = func() (*client.Client, error) { t.Error("Engine API asked on a converged host"); return client.New() }
	if p := moduletest.Plan(t, c.m, c.env); !p.Empty() {
		t.Errorf("plan after the ranges were written: %+v", p.Changes)
	}
}

func TestNoSwitchWithoutWorkloadsOrDocker(t *testing.T) {
	for name, api := range map[string]http.Handler{
		"docker not running": nil,
		"empty root":         &fakeEngine{root: "/var/lib/docker"},
	} {
		t.Run(name, func(t *testing.T) {
			c := newSwitchCase(t, withSwitch(""), api)
			c.subIDsPlanned(100000, true)
			text, p := c.planText()
			if _, ok := p.State.(*switchState); ok || strings.Contains(text, "data root") {
				t.Errorf("first boot shows a switch:\n%s", text)
			}
			if err := c.m.Gate(context.Background(), c.env, "subordinate_ids.dockremap", p); err != nil {
				t.Errorf("Gate = %v", err)
			}
		})
	}
}

func TestImagesAloneAreNotRefused(t *testing.T) {
	api := &fakeEngine{root: "/var/lib/docker", images: adoptedHost("").images}
	c := newSwitchCase(t, withSwitch(""), api)
	c.subIDsPlanned(100000, true)
	text, p := c.planText()
	if !strings.Contains(text, "- image busybox:local") || !strings.Contains(text, "only images stay behind") {
		t.Errorf("plan:\n%s", text)
	}
	if err := c.m.Gate(context.Background(), c.env, c.m.ID(), p); err != nil {
		t.Errorf("Gate = %v, want nil", err)
	}
}

func TestEngineAPIErrorFailsThePlan(t *testing.T) {
	c := newSwitchCase(t, withSwitch(""), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			return
		}
		http.Error(w, `{"message":"boom"}`, http.StatusInternalServerError)
	}))
	c.subIDsPlanned(100000, true)
	if _, err := c.m.Plan(context.Background(), c.env); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("plan = %v, want the Engine API's error: an unknown root is not guessed", err)
	}
}

func TestRootOf(t *testing.T) {
	ids := &idFiles{
		env:    &agent.Env{},
		subuid: []byte("# comment\nalice:300000:65536\ndockremap:165536:65536\ndockremap:100000:65536\n1001:400000:65536\n"),
		subgid: []byte("alice:310000:65536\nstaff:500000:65536\ndockremap:100000:65536\n"),
		passwd: []byte("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n"),
		group:  []byte("staff:x:50:\n"),
	}
	for doc, want := range map[string]string{
		`{}`:                              "/var/lib/docker",
		`{"userns-remap": ""}`:            "/var/lib/docker",
		`{"userns-remap": "default"}`:     "/var/lib/docker/100000.100000", // lowest range
		`{"userns-remap": "alice"}`:       "/var/lib/docker/300000.310000",
		`{"userns-remap": "alice:staff"}`: "/var/lib/docker/300000.500000",
		`{"userns-remap": "1000:50"}`:     "/var/lib/docker/300000.500000",
		`{"userns-remap": "bob"}`:         "/var/lib/docker/<uid>.<gid>", // uid line only, no subgid
		`{"userns-remap": "nobody"}`:      "/var/lib/docker/<uid>.<gid>",
		`{"data-root": "/srv/docker/"}`:   "/srv/docker",
		`{"data-root": "/srv/docker", "userns-remap": "default"}`: "/srv/docker/100000.100000",
	} {
		d, err := Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		r, err := rootOf(d, ids, false)
		if err != nil || r.Path != want {
			t.Errorf("%s: %q, %v; want %q", doc, r.Path, err, want)
		}
	}
	d, _ := Parse([]byte(`{"data-root": "relative"}`))
	if _, err := rootOf(d, ids, false); err == nil {
		t.Error("a relative data-root was accepted")
	}
}

func TestDecodeOnSwitch(t *testing.T) {
	if b := mustDecode(t, `docker_daemon {}`); b.OnSwitch != SwitchRefuse {
		t.Errorf("default = %q", b.OnSwitch)
	}
	_, diags := decodeHCL(t, "docker_daemon {\n  on_data_root_switch = \"move\"\n}\n")
	if !diags.HasErrors() || !strings.Contains(diags.Error(), `"leave_behind"`) || diags[0].Subject.Start.Line != 2 {
		t.Errorf("diags = %v", diags)
	}
}

// recordingMigrator stands in for package migrate: it records the order
// of calls and what they were given.
type recordingMigrator struct {
	calls     []string
	exportErr error
}

func (r *recordingMigrator) Blockers(ctx context.Context, log *logrus.Entry, cli *client.Client, sw *dataSwitch) ([]string, error) {
	r.calls = append(r.calls, "blockers")
	return []string{"container db: its writable layer holds changes (/etc/motd)"}, nil
}

func (r *recordingMigrator) Export(ctx context.Context, log *logrus.Entry, cli *client.Client, sw *dataSwitch, dir string) error {
	r.calls = append(r.calls, "export "+sw.From+" -> "+sw.To.Path)
	return r.exportErr
}

func (r *recordingMigrator) Import(ctx context.Context, log *logrus.Entry, cli *client.Client, sw *dataSwitch, dir string) ([]string, error) {
	r.calls = append(r.calls, "import")
	return []string{"container web: moved", "container db: skipped (its writable layer holds changes)"}, nil
}

func withMigrator(t *testing.T, m Migrator) {
	prev := migrator
	SetMigrator(m)
	t.Cleanup(func() { SetMigrator(prev) })
}

func TestMigrateExportsOnceBeforeTheWriteAndImportsAfterTheRestart(t *testing.T) {
	rec := &recordingMigrator{}
	withMigrator(t, rec)
	api := adoptedHost("/var/lib/docker")
	c := newSwitchCase(t, withSwitch(SwitchMigrate), api)
	c.file("etc/docker/daemon.json", `{"log-driver": "json-file"}`)
	c.subIDsPlanned(100000, true)
	text, p := c.planText()
	agenttest.Golden(t, "testdata/switch/migrate.golden", text)

	ctx := context.Background()
	// subordinate_ids' write comes first: the export happens there, once.
	for _, id := range []string{"subordinate_ids.dockremap", c.m.ID()} {
		if err := c.m.Gate(ctx, c.env, id, p); err != nil {
			t.Fatalf("Gate(%s) = %v", id, err)
		}
	}
	if err := c.m.Apply(ctx, c.env, p); err != nil {
		t.Fatal(err)
	}
	if want := []string{"blockers", "export /var/lib/docker -> /var/lib/docker/100000.100000"}; !slicesEqual(rec.calls, want) {
		t.Fatalf("calls %v, want %v", rec.calls, want)
	}
	// The restart did not come back on the new root: nothing imported.
	if _, err := c.m.Follow(ctx, c.env, "docker.service", true); err == nil || !strings.Contains(err.Error(), "migration not done: after the restart docker still uses /var/lib/docker, not /var/lib/docker/100000.100000") {
		t.Errorf("Follow on the old root = %v", err)
	}
	if len(rec.calls) != 2 {
		t.Errorf("imported on the old root: %v", rec.calls)
	}
}

func TestMigrateFollow(t *testing.T) {
	rec := &recordingMigrator{}
	withMigrator(t, rec)
	api := adoptedHost("/var/lib/docker")
	c := newSwitchCase(t, withSwitch(SwitchMigrate), api)
	c.file("etc/docker/daemon.json", `{"log-driver": "json-file"}`)
	c.subIDsPlanned(100000, true)
	_, p := c.planText()
	ctx := context.Background()
	if err := c.m.Gate(ctx, c.env, c.m.ID(), p); err != nil {
		t.Fatal(err)
	}
	api.root = "/var/lib/docker/100000.100000" // docker restarted on the new root
	cs, err := c.m.Follow(ctx, c.env, "docker.service", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Target != "container web: moved" || cs[0].Detail != "migrate from /var/lib/docker" {
		t.Errorf("changes %+v", cs)
	}
	// Once only: a second Follow in the same run has nothing to do.
	if cs, err := c.m.Follow(ctx, c.env, "docker.service", true); cs != nil || err != nil {
		t.Errorf("second Follow: %v %v", cs, err)
	}

	// A restart that failed or rolled back imports nothing and says so.
	c.env.Facts = agent.NewFacts() // the next run
	c.subIDsPlanned(100000, true)
	api.root = "/var/lib/docker"
	_, p = c.planText()
	if err := c.m.Gate(ctx, c.env, c.m.ID(), p); err != nil {
		t.Fatal(err)
	}
	_, err = c.m.Follow(ctx, c.env, "docker.service", false)
	if err == nil || !strings.Contains(err.Error(), "migration not done: docker.service did not restart (it failed or was rolled back), not /var/lib/docker/100000.100000") {
		t.Errorf("Follow after a failed restart = %v", err)
	}
}

func TestMigrateExportFailureWritesNothing(t *testing.T) {
	withMigrator(t, &recordingMigrator{exportErr: errors.New("disk full")})
	c := newSwitchCase(t, withSwitch(SwitchMigrate), adoptedHost("/var/lib/docker"))
	c.file("etc/docker/daemon.json", `{"log-driver": "json-file"}`)
	c.subIDsPlanned(100000, true)
	_, p := c.planText()
	err := c.m.Gate(context.Background(), c.env, "subordinate_ids.dockremap", p)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("Gate = %v", err)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// With live-restore the running containers of the old root would outlive
// the restart unseen: Apply stops them after the write; a restart that
// failed starts them again.
func TestLiveRestoreContainersStoppedBeforeTheSwitch(t *testing.T) {
	api := adoptedHost("/var/lib/docker")
	api.liveRestore = true
	c := newSwitchCase(t, withSwitch(SwitchLeaveBehind), api)
	c.file("etc/docker/daemon.json", `{"log-driver": "json-file"}`)
	c.subIDsPlanned(100000, true)
	text, p := c.planText()
	if !strings.Contains(text, "- container web (running)  # stopped before the restart (with live-restore it would run on unseen); stays behind in /var/lib/docker") {
		t.Errorf("plan does not say web is stopped:\n%s", text)
	}
	ctx := context.Background()
	if err := c.m.Apply(ctx, c.env, p); err != nil {
		t.Fatal(err)
	}
	if len(api.stopped) != 0 {
		t.Fatalf("stopped %v at the write, before the restart was about to happen", api.stopped)
	}
	c.m.PrepareRestart(ctx, c.env, "docker.service")
	c.m.PrepareRestart(ctx, c.env, "docker.service") // once per run
	web := strings.Repeat("a", 64)
	if !slicesEqual(api.stopped, []string{web}) {
		t.Fatalf("stopped %v, want only the running web, once", api.stopped)
	}
	// The restart "succeeded" but docker is still on the old root (the
	// fake's root did not move): what was stopped is started again.
	cs, err := c.m.Follow(ctx, c.env, "docker.service", true)
	if err != nil || len(cs) != 1 || cs[0].New != "running" {
		t.Errorf("Follow after a restart onto the same root: %+v %v", cs, err)
	}
	if !slicesEqual(api.stopped, []string{web, "+" + web}) {
		t.Errorf("calls %v, want web stopped then started again", api.stopped)
	}
}

// Docker stopped (dockward-firstboot runs before docker starts): what the
// root holds is read from its files, and a switch that would hide it is
// refused all the same. An absent root (a real first boot) is no switch:
// TestNoSwitchWithoutWorkloadsOrDocker.
func TestSwitchRefusedWithDockerStopped(t *testing.T) {
	c := newSwitchCase(t, withSwitch(""), nil)
	c.file("etc/docker/daemon.json", `{"log-driver": "json-file"}`)
	c.file("var/lib/docker/containers/"+strings.Repeat("a", 64)+"/config.v2.json", `{"Name":"/web","State":{"Running":true}}`)
	c.file("var/lib/docker/volumes/appdata/_data/hello", "hello\n")
	c.subIDsPlanned(100000, true)
	text, p := c.planText()
	agenttest.Golden(t, "testdata/switch/docker-stopped.golden", text)
	var refused *SwitchRefusedError
	if err := c.m.Gate(context.Background(), c.env, c.m.ID(), p); !errors.As(err, &refused) {
		t.Errorf("Gate = %v, want a refusal", err)
	}
}

type unitWithDataRoot struct{}

func (unitWithDataRoot) ReadUnit(context.Context, string) (*UnitExec, error) {
	return &UnitExec{ExecStart: [][]string{{"/usr/sbin/dockerd", "-H", "fd://", "--data-root", "/srv/docker"}}}, nil
}

// dockerd's root can come from the unit's --data-root rather than
// daemon.json: the switch is then from and to directories under it.
func TestSwitchUnderTheUnitsDataRoot(t *testing.T) {
	c := newSwitchCase(t, withSwitch(""), adoptedHost("/srv/docker"))
	c.m.Units = unitWithDataRoot{}
	c.file("etc/docker/daemon.json", `{"log-driver": "json-file"}`)
	c.file("srv/docker/100000.100000/volumes/olddata/_data/x", "")
	c.subIDsPlanned(100000, true)
	text, _ := c.planText()
	for _, want := range []string{"~ data root: /srv/docker -> /srv/docker/100000.100000", "+ volume olddata  # reappears: /srv/docker/100000.100000 already holds it"} {
		if !strings.Contains(text, want) {
			t.Errorf("plan lacks %q:\n%s", want, text)
		}
	}
}

type inactiveUnit struct{}

func (inactiveUnit) ReadUnit(context.Context, string) (*UnitExec, error) {
	return &UnitExec{ExecStart: [][]string{{"/usr/sbin/dockerd", "-H", "fd://"}}, ActiveState: "inactive"}, nil
}

// dockward-firstboot runs before docker.service, and docker.socket holds
// the Engine API's socket: a request there waits for a dockerd whose start
// waits for dockward. When systemd says the unit is not running, the switch
// is read from the files and the Engine API is not asked at all.
func TestSwitchWithDockerInactiveDoesNotAskTheEngineAPI(t *testing.T) {
	asked := make(chan struct{}, 1)
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- struct{}{}:
		default:
		}
		<-r.Context().Done() // a socket-activated daemon that never comes
	})
	c := newSwitchCase(t, withSwitch(""), hang)
	c.m.Units = inactiveUnit{}
	c.file("etc/docker/daemon.json", `{"log-driver": "json-file"}`)
	c.file("var/lib/docker/volumes/appdata/_data/hello", "hello\n")
	c.subIDsPlanned(100000, true)
	text, p := c.planText()
	select {
	case <-asked:
		t.Fatal("plan asked the Engine API of a docker that systemd says is inactive")
	default:
	}
	if !strings.Contains(text, "volume appdata") {
		t.Errorf("plan does not show the volume read from the files:\n%s", text)
	}
	var refused *SwitchRefusedError
	if err := c.m.Gate(context.Background(), c.env, c.m.ID(), p); !errors.As(err, &refused) {
		t.Errorf("Gate = %v, want a refusal", err)
	}
}

// The switch check reads the ID files through the managed-file layer: a
// FIFO there is refused at once, not read (an os.ReadFile hung forever).
func TestSwitchRefusesSpecialIDFiles(t *testing.T) {
	c := newSwitchCase(t, withSwitch(""), nil)
	c.file("etc/docker/daemon.json", `{"log-driver": "json-file"}`)
	c.file("etc/passwd", "root:x:0:0::/root:/bin/sh\n")
	if err := syscall.Mkfifo(filepath.Join(c.tree, "etc/group"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.subIDsPlanned(100000, true)
	done := make(chan error, 1)
	go func() {
		_, err := c.m.Plan(context.Background(), c.env)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "etc/group") {
			t.Fatalf("plan with a FIFO as /etc/group: %v, want an error naming it", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("plan hung reading a FIFO as /etc/group")
	}
}
