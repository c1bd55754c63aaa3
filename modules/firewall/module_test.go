package firewall

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent"
	"github.com/google/go-cmp/cmp"
)

// fakeDocker is an Engine API with networks in memory.
type fakeDocker struct {
	down      error // what every call answers while set (dockerd restarting)
	createErr error
	nets      map[string]DockerNetwork
	created   []string
	nextID    string
}

func (f *fakeDocker) Network(_ context.Context, name string) (DockerNetwork, bool, error) {
	if f.down != nil {
		return DockerNetwork{}, false, f.down
	}
	n, ok := f.nets[name]
	return n, ok, nil
}

func (f *fakeDocker) CreateNetwork(_ context.Context, name string, internal bool) error {
	if f.createErr != nil {
		return f.createErr
	}
	if _, ok := f.nets[name]; ok {
		return errors.New("network exists")
	}
	f.nets[name] = DockerNetwork{ID: f.nextID, Name: name, Driver: "bridge", Internal: internal}
	f.created = append(f.created, name)
	return nil
}

// fakeTables is the kernel side in memory; Replace keeps the ruleset as
// given (rulesets are never mutated after Build).
type fakeTables struct {
	live     map[string]*Ruleset
	replaces int
	fail     error
}

func (f *fakeTables) Read(table string) (*Ruleset, error) { return f.live[table], nil }

func (f *fakeTables) Replace(rs *Ruleset) error {
	f.replaces++
	if f.fail != nil {
		return f.fail
	}
	f.live[rs.Table] = rs
	return nil
}

func newFakes() (*fakeDocker, *fakeTables) {
	return &fakeDocker{
			nets: map[string]DockerNetwork{
				"bridge": {ID: "f00dfeedf00dfeedf00d", Name: "bridge", Driver: "bridge",
					Options: map[string]string{"com.docker.network.bridge.name": "docker0"}},
				"app": {ID: "0123456789abcdef0123", Name: "app", Driver: "bridge"},
			},
			nextID: "abcdefabcdef99999999",
		},
		&fakeTables{live: map[string]*Ruleset{}}
}

const moduleHCL = `
firewall {
  network "bridge" {
    egress_allow {
      ports = [443]
      to    = ["0.0.0.0/0"]
    }
  }
  network "app" {
    ingress_allow {
      ports = [8080]
      from  = ["10.0.0.0/8"]
    }
  }
  network "isolated" {
    internal = true
    create   = true
  }
}`

var liveEnv = &agent.Env{}

func TestModuleConverges(t *testing.T) {
	d, tables := newFakes()
	m := NewWith(decodeHCL(t, moduleHCL), tables, d)
	ctx := context.Background()
	plan, err := m.Plan(ctx, liveEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Changes[0]; got != (agent.Change{Action: "+", Target: "docker network isolated", New: "driver bridge, internal", Detail: "create = true"}) {
		t.Errorf("first change = %+v", got)
	}
	if got := plan.Changes[1]; got.Target != "table inet dockward" || got.Action != "+" {
		t.Errorf("second change = %+v", got)
	}
	if !hasChange(plan.Changes, `rule iifname "(new isolated)" counter drop`) {
		t.Errorf("plan does not show the new network's rules with a stand-in bridge: %+v", plan.Changes)
	}
	if len(d.created) != 0 || tables.replaces != 0 {
		t.Fatalf("Plan changed something: created %v, replaces %d", d.created, tables.replaces)
	}

	if err := m.Apply(ctx, liveEnv, plan); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"isolated"}, d.created); d != "" {
		t.Errorf("created networks (-want +got):\n%s", d)
	}
	if !d.nets["isolated"].Internal {
		t.Errorf("isolated was not created internal")
	}
	text := Render(tables.live["dockward"])
	for _, want := range []string{`iifname "docker0" jump egress_bridge`, `oifname "br-0123456789ab" jump ingress_app`, `iifname "br-abcdefabcdef" counter drop`} {
		if !strings.Contains(text, want) {
			t.Errorf("applied table lacks %q:\n%s", want, text)
		}
	}

	again, err := m.Plan(ctx, liveEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Empty() {
		t.Errorf("plan after apply: %+v", again.Changes)
	}
	if err := m.Apply(ctx, liveEnv, again); err != nil || tables.replaces != 1 {
		t.Errorf("applying an empty plan: err %v, %d replaces", err, tables.replaces)
	}
}

func hasChange(cs []agent.Change, s string) bool {
	for _, c := range cs {
		if c.New == s || c.Old == s {
			return true
		}
	}
	return false
}

// While this process restarts docker, the firewall does not wait for
// dockerd: a deleted table is rebuilt from the bridges Docker reported
// last. Without a last answer, or when docker is not restarting, Docker's
// error stands.
func TestModuleRebuildsTheTableWhileDockerRestarts(t *testing.T) {
	d, tables := newFakes()
	m := NewWith(decodeHCL(t, moduleHCL), tables, d)
	ctx := context.Background()
	restarting := &agent.Env{UnitsRestarting: func(unit string) bool { return unit == "docker.service" }}
	d.down = errors.New("dockerd is starting")
	if _, err := m.Plan(ctx, restarting); err == nil {
		t.Fatal("planned without ever having asked Docker")
	}
	d.down = nil
	converge(t, m, liveEnv)
	want := Render(tables.live["dockward"])

	delete(tables.live, "dockward") // someone deletes the table during the restart
	d.down = errors.New("dockerd is starting")
	if _, err := m.Plan(ctx, liveEnv); err == nil {
		t.Fatal("docker is not restarting, yet its error was ignored")
	}
	converge(t, m, restarting)
	if got := Render(tables.live["dockward"]); got != want {
		t.Fatalf("table rebuilt during the restart differs:\n%s\nwant:\n%s", got, want)
	}
}

func converge(t *testing.T, m *Module, env *agent.Env) {
	t.Helper()
	p, err := m.Plan(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(context.Background(), env, p); err != nil {
		t.Fatal(err)
	}
}

func TestModuleOffline(t *testing.T) {
	d, tables := newFakes()
	m := NewWith(decodeHCL(t, moduleHCL), tables, d)
	if _, err := m.Plan(context.Background(), &agent.Env{Root: "/srv/image"}); !errors.Is(err, agent.ErrOffline) {
		t.Errorf("Plan under --root: %v", err)
	}
}

// A declared network Docker does not have keeps nobody's rules out: the
// others' go in, it is pending (in the plan, not as a change), the plan
// after apply is empty, and once Docker has it, it gets its rules.
func TestModuleMissingNetwork(t *testing.T) {
	d, tables := newFakes()
	// moduleHCL with network "ghost", which Docker does not have.
	m := NewWith(decodeHCL(t, strings.Replace(moduleHCL, `  network "isolated" {`, "  network \"ghost\" {\n    internal = true\n  }\n  network \"isolated\" {", 1)), tables, d)
	ctx := context.Background()
	plan, err := m.Plan(ctx, liveEnv)
	if err != nil {
		t.Fatalf("a missing network failed the plan: %v", err)
	}
	wantPending := []agent.Pending{{Target: "docker network ghost",
		Detail: "declared at test.hcl:15,3-18; does not exist in Docker yet, so it has no rules; they go in when it is created (dockward run: on Docker's network event)"}}
	if d := cmp.Diff(wantPending, plan.Pending); d != "" {
		t.Errorf("pending (-want +got):\n%s", d)
	}
	for _, c := range plan.Changes {
		if strings.Contains(c.Target+c.New, "ghost") {
			t.Errorf("a change for the missing network: %+v", c)
		}
	}
	if err := m.Apply(ctx, liveEnv, plan); err != nil {
		t.Fatal(err)
	}
	text := Render(tables.live["dockward"])
	for _, want := range []string{`iifname "docker0" jump egress_bridge`, `oifname "br-0123456789ab" jump ingress_app`, `iifname "br-abcdefabcdef" counter drop`} {
		if !strings.Contains(text, want) {
			t.Errorf("applied table lacks %q:\n%s", want, text)
		}
	}
	if d := cmp.Diff(wantPending, plan.Pending); d != "" {
		t.Errorf("pending after apply (-want +got):\n%s", d)
	}

	again, err := m.Plan(ctx, liveEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Empty() || len(again.Pending) != 1 {
		t.Errorf("plan after apply: changes %+v, pending %+v", again.Changes, again.Pending)
	}

	// Someone (compose) creates it.
	d.nets["ghost"] = DockerNetwork{ID: "5555555555556666", Name: "ghost", Driver: "bridge", Internal: true}
	later, err := m.Plan(ctx, liveEnv)
	if err != nil {
		t.Fatal(err)
	}
	if later.Empty() || len(later.Pending) != 0 {
		t.Fatalf("plan once the network exists: changes %+v, pending %+v", later.Changes, later.Pending)
	}
	if !hasChange(later.Changes, `rule iifname "br-555555555555" jump egress_ghost`) {
		t.Errorf("plan lacks the new network's rules: %+v", later.Changes)
	}
	if err := m.Apply(ctx, liveEnv, later); err != nil {
		t.Fatal(err)
	}
	if p, err := m.Plan(ctx, liveEnv); err != nil || !p.Empty() || len(p.Pending) != 0 {
		t.Errorf("plan after the second apply: %v %+v", err, p)
	}
	if slices.Contains(d.created, "ghost") {
		t.Errorf("dockward created ghost, which is not create = true")
	}
}

// A network that cannot be created does not keep the others' rules out
// either: they are applied, and the failure is returned.
func TestModuleCreateFailureAppliesTheOthers(t *testing.T) {
	d, tables := newFakes()
	d.createErr = errors.New("create docker network \"isolated\": all predefined address pools have been fully subnetted")
	m := NewWith(decodeHCL(t, moduleHCL), tables, d)
	ctx := context.Background()
	plan, err := m.Plan(ctx, liveEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(ctx, liveEnv, plan); !errors.Is(err, d.createErr) {
		t.Fatalf("Apply = %v, want the creation's error", err)
	}
	text := Render(tables.live["dockward"])
	if !strings.Contains(text, `iifname "docker0" jump egress_bridge`) || strings.Contains(text, "isolated") {
		t.Errorf("table after a failed create:\n%s", text)
	}
	if len(plan.Pending) != 1 || plan.Pending[0].Target != "docker network isolated" || !strings.Contains(plan.Pending[0].Detail, "creating it failed") {
		t.Errorf("pending after a failed create: %+v", plan.Pending)
	}

	// The retry fails the same way, and writes nothing: the live table is
	// already the one without it (a write would set off the agent's
	// nftables monitor, and another failing run).
	retry, err := m.Plan(ctx, liveEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(ctx, liveEnv, retry); !errors.Is(err, d.createErr) {
		t.Fatalf("retry: Apply = %v, want the creation's error", err)
	}
	if tables.replaces != 1 {
		t.Errorf("%d replacements; want 1: the retry had nothing to write", tables.replaces)
	}

	// Once creating works, it is created and gets its rules.
	d.createErr = nil
	ok, err := m.Plan(ctx, liveEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(ctx, liveEnv, ok); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(Render(tables.live["dockward"]), `iifname "br-abcdefabcdef" counter drop`) || len(ok.Pending) != 0 {
		t.Errorf("after a create that worked: pending %+v, table:\n%s", ok.Pending, Render(tables.live["dockward"]))
	}
}

func TestModuleNotABridge(t *testing.T) {
	d, tables := newFakes()
	d.nets["ov"] = DockerNetwork{ID: "0123456789abcdef", Name: "ov", Driver: "overlay"}
	m := NewWith(decodeHCL(t, "firewall {\n  network \"ov\" {\n    internal = true\n  }\n}"), tables, d)
	if _, err := m.Plan(context.Background(), liveEnv); err == nil || !strings.Contains(err.Error(), `uses the "overlay" driver`) {
		t.Errorf("err = %v", err)
	}
}

// Networks with an explicit bridge need no Docker at all.
func TestModuleBridgeOverrideNeedsNoDocker(t *testing.T) {
	_, tables := newFakes()
	m := NewWith(decodeHCL(t, "firewall {\n  network \"x\" {\n    bridge = \"br-x\"\n    internal = true\n  }\n}"), tables, nil)
	m.newDocker = func() (Docker, error) { return nil, errors.New("no docker here") }
	plan, err := m.Plan(context.Background(), liveEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(context.Background(), liveEnv, plan); err != nil {
		t.Fatal(err)
	}
	if p, err := m.Plan(context.Background(), liveEnv); err != nil || !p.Empty() {
		t.Errorf("plan after apply: %v %+v", err, p)
	}
}

func TestModuleApplyError(t *testing.T) {
	d, tables := newFakes()
	tables.fail = errors.New("replace table inet dockward: conn.Receive: netlink receive: invalid argument")
	m := NewWith(decodeHCL(t, moduleHCL), tables, d)
	plan, err := m.Plan(context.Background(), liveEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(context.Background(), liveEnv, plan); !errors.Is(err, tables.fail) {
		t.Errorf("Apply = %v", err)
	}
}

func TestBridgeName(t *testing.T) {
	tests := []struct {
		n       DockerNetwork
		want    string
		wantErr string
	}{
		{DockerNetwork{Name: "bridge", Driver: "bridge", ID: "0123456789abcdef", Options: map[string]string{bridgeNameOption: "docker0"}}, "docker0", ""},
		{DockerNetwork{Name: "bridge", Driver: "bridge", ID: "0123456789abcdef"}, "docker0", ""},
		{DockerNetwork{Name: "app", Driver: "bridge", ID: "0123456789abcdef"}, "br-0123456789ab", ""},
		{DockerNetwork{Name: "app", Driver: "bridge", ID: "0123456789abcdef", Options: map[string]string{bridgeNameOption: "app0"}}, "app0", ""},
		{DockerNetwork{Name: "app", Driver: "bridge", ID: "0123"}, "", "too short"},
		{DockerNetwork{Name: "host", Driver: "host", ID: "0123456789abcdef"}, "", `"host" driver`},
	}
	for _, tt := range tests {
		got, err := BridgeName(tt.n)
		if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("BridgeName(%+v) = %q, %v; want %q, %q", tt.n, got, err, tt.want, tt.wantErr)
		}
	}
}
