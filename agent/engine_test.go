package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dockward/dockward/agent/agenttest"
	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
)

// fakeModule converges a value: Plan reports a change while have != want.
type fakeModule struct {
	id       string
	have     *string
	want     string
	planErr  error
	applyErr error
	applied  int
	rolled   int
	onApply  func(env *Env)
}

func (f *fakeModule) ID() string { return f.id }
func (f *fakeModule) Plan(ctx context.Context, env *Env) (*Plan, error) {
	if f.planErr != nil {
		return nil, f.planErr
	}
	if *f.have == f.want {
		return &Plan{}, nil
	}
	return &Plan{Changes: []Change{{Action: Update, Target: f.id + ".value", Old: *f.have, New: f.want}}}, nil
}
func (f *fakeModule) Apply(ctx context.Context, env *Env, p *Plan) error {
	f.applied++
	if f.onApply != nil {
		f.onApply(env)
	}
	if f.applyErr != nil {
		return f.applyErr
	}
	*f.have = f.want
	return nil
}
func (f *fakeModule) Rollback(ctx context.Context, env *Env) error { f.rolled++; return nil }

// fakeUnit restarts when the engine says its unit owes a restart.
type fakeUnit struct {
	deps      []string
	restarts  int
	retries   int
	failFirst bool
	sawOwed   []string
	sawDue    Due
}

func (u *fakeUnit) ID() string          { return "service.unit" }
func (u *fakeUnit) Unit() string        { return "unit" }
func (u *fakeUnit) RestartOn() []string { return u.deps }
func (u *fakeUnit) RollsBack() bool     { return true }
func (u *fakeUnit) Plan(ctx context.Context, env *Env) (*Plan, error) {
	u.sawDue = env.Due
	if !env.Due.Owed() {
		return &Plan{}, nil
	}
	u.sawOwed = nil
	for id := range env.Due.Changes {
		u.sawOwed = append(u.sawOwed, id)
	}
	sort.Strings(u.sawOwed)
	return &Plan{Changes: []Change{{Action: Update, Target: "unit", New: string(env.Due.Kind) + "ed", Detail: string(env.Due.Kind)}}}, nil
}
func (u *fakeUnit) Apply(ctx context.Context, env *Env, p *Plan) error {
	u.restarts++
	if u.failFirst {
		u.failFirst = false
		return &VerifyError{Err: errors.New("unit did not come back")}
	}
	return nil
}
func (u *fakeUnit) Retry(ctx context.Context, env *Env, p *Plan) error {
	u.retries++
	return nil
}

func newEngine(t *testing.T, mods ...Module) *Engine {
	t.Helper()
	log := logrus.New()
	log.SetOutput(&bytes.Buffer{})
	return &Engine{Modules: mods, StateDir: filepath.Join(t.TempDir(), "state"), Log: log, LockWait: time.Second}
}

func str(s string) *string { return &s }

func TestApplyThenPlanIsEmptyAndExitCodes(t *testing.T) {
	a := &fakeModule{id: "a", have: str("old"), want: "new"}
	b := &fakeModule{id: "b", have: str("x"), want: "x"}
	u := &fakeUnit{deps: []string{"a", "b"}}
	e := newEngine(t, a, b, u)
	ctx := context.Background()

	plan, err := e.Plan(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.ExitCode(); got != ExitChanged {
		t.Fatalf("plan exit = %d, want 2", got)
	}
	if a.applied != 0 || u.restarts != 0 {
		t.Fatal("plan applied something")
	}
	if _, err := os.Stat(e.StateDir); !os.IsNotExist(err) {
		t.Fatalf("plan created the state directory: %v", err)
	}

	rep, err := e.Apply(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.ExitCode(); got != ExitChanged {
		t.Fatalf("apply exit = %d, want 2", got)
	}
	if u.restarts != 1 {
		t.Fatalf("restarts = %d, want 1", u.restarts)
	}
	rep, err = e.Apply(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.ExitCode(); got != ExitOK || u.restarts != 1 {
		t.Fatalf("second apply exit = %d restarts = %d, want 0 and 1", got, u.restarts)
	}
	plan, _ = e.Plan(ctx, nil)
	if plan.ExitCode() != ExitOK {
		t.Fatalf("plan after apply not empty: %+v", plan)
	}
}

func TestOneRestartWhenTwoUpstreamsChanged(t *testing.T) {
	a := &fakeModule{id: "a", have: str("1"), want: "2"}
	b := &fakeModule{id: "b", have: str("1"), want: "2"}
	u := &fakeUnit{deps: []string{"a", "b"}}
	e := newEngine(t, a, b, u)
	if _, err := e.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if u.restarts != 1 {
		t.Fatalf("restarts = %d, want 1", u.restarts)
	}
	if diff := cmp.Diff([]string{"a", "b"}, u.sawOwed); diff != "" {
		t.Fatalf("journal at restart (-want +got):\n%s", diff)
	}
}

func TestRestartOwedIsRecordedBeforeTheChange(t *testing.T) {
	var owedAtWrite *Owed
	a := &fakeModule{id: "a", have: str("1"), want: "2"}
	a.onApply = func(env *Env) { owedAtWrite, _ = NewJournal(env.StateDir).Get("unit") }
	u := &fakeUnit{deps: []string{"a"}}
	e := newEngine(t, a, u)
	if _, err := e.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if owedAtWrite == nil || len(owedAtWrite.Changes["a"]) != 1 {
		t.Fatalf("restart not owed while a was written: %+v", owedAtWrite)
	}
	if o, _ := NewJournal(e.StateDir).Get("unit"); o != nil {
		t.Fatalf("journal not cleared after the restart: %+v", o)
	}
}

func TestCrashBetweenWriteAndRestartStillRestarts(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "state")
	// A run wrote a's change and died before the restart: the journal says so.
	if err := NewJournal(stateDir).Owe("unit", "a", []Change{{Action: Update, Target: "k"}}); err != nil {
		t.Fatal(err)
	}
	a := &fakeModule{id: "a", have: str("2"), want: "2"} // already written
	u := &fakeUnit{deps: []string{"a"}}
	e := newEngine(t, a, u)
	e.StateDir = stateDir
	rep, err := e.Apply(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if u.restarts != 1 || rep.ExitCode() != ExitChanged {
		t.Fatalf("restarts = %d exit = %d, want 1 and 2", u.restarts, rep.ExitCode())
	}
}

func TestFailedApplyWithdrawsTheOwedRestart(t *testing.T) {
	a := &fakeModule{id: "a", have: str("1"), want: "2", applyErr: errors.New("disk full")}
	u := &fakeUnit{deps: []string{"a"}}
	e := newEngine(t, a, u)
	rep, err := e.Apply(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if u.restarts != 0 {
		t.Fatalf("restarted after a failed write")
	}
	if rep.ExitCode() != ExitFailed {
		t.Fatalf("exit = %d, want 4", rep.ExitCode())
	}
	if o, _ := NewJournal(e.StateDir).Get("unit"); o != nil {
		t.Fatalf("owed restart left behind: %+v", o)
	}
}

func TestRollbackMarksUpstreamAndFailsTheRun(t *testing.T) {
	a := &fakeModule{id: "a", have: str("1"), want: "2"}
	other := &fakeModule{id: "other", have: str("1"), want: "2"}
	u := &fakeUnit{deps: []string{"a"}, failFirst: true}
	e := newEngine(t, a, other, u)
	rep, err := e.Apply(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.rolled != 1 || other.rolled != 0 {
		t.Fatalf("rolled back a=%d other=%d, want 1 and 0", a.rolled, other.rolled)
	}
	if u.retries != 1 {
		t.Fatalf("retries = %d, want 1: the engine restarts again after the rollback", u.retries)
	}
	got := map[string]Status{}
	for _, m := range rep.Modules {
		got[m.ID] = m.Status
	}
	want := map[string]Status{"a": StatusRolledBack, "other": StatusChanged, "service.unit": StatusRolledBack}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s", diff)
	}
	if rep.ExitCode() != ExitChangedAndFail {
		t.Fatalf("exit = %d, want 6", rep.ExitCode())
	}
}

func TestOfflineAndPlanErrors(t *testing.T) {
	a := &fakeModule{id: "a", have: str("1"), want: "1", planErr: ErrOffline}
	b := &fakeModule{id: "b", have: str("1"), want: "1", planErr: errors.New("parse /etc/docker/daemon.json:3:7: invalid character")}
	e := newEngine(t, a, b)
	rep, _ := e.Plan(context.Background(), nil)
	if rep.Modules[0].Status != StatusSkipped || rep.Modules[1].Status != StatusFailed {
		t.Fatalf("statuses: %+v", rep.Modules)
	}
	if rep.ExitCode() != ExitUsage {
		t.Fatalf("plan exit = %d, want 1", rep.ExitCode())
	}
	rep, _ = e.Apply(context.Background(), nil)
	if rep.ExitCode() != ExitFailed {
		t.Fatalf("apply exit = %d, want 4", rep.ExitCode())
	}
}

func TestReportIsWritten(t *testing.T) {
	a := &fakeModule{id: "a", have: str("1"), want: "2"}
	e := newEngine(t, a)
	if _, err := e.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(ReportPath(e.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep["format_version"] != ReportFormatVersion {
		t.Fatalf("format_version = %v", rep["format_version"])
	}
	mods := rep["modules"].([]any)
	m := mods[0].(map[string]any)
	if m["id"] != "a" || m["status"] != "changed" {
		t.Fatalf("module entry: %v", m)
	}
	if _, ok := rep["start"]; !ok {
		t.Fatal("no start")
	}
}

func TestSecondRunWaitsForTheLock(t *testing.T) {
	synctest.Test(t, testSecondRunWaitsForTheLock)
}

func testSecondRunWaitsForTheLock(t *testing.T) {
	stateDir := t.TempDir()
	log := logrus.NewEntry(logrus.New())
	first, err := AcquireLock(context.Background(), stateDir, true, time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(context.Background(), stateDir, true, 200*time.Millisecond, log)
	if !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("second lock: %v, want ErrLockTimeout", err)
	}
	done := make(chan error, 1)
	go func() {
		l, err := AcquireLock(context.Background(), stateDir, true, 5*time.Second, log)
		if err == nil {
			_ = l.Release()
		}
		done <- err
	}()
	// The second run is blocked, polling for the lock, on the bubble's
	// clock; it has not got it.
	synctest.Wait()
	select {
	case err := <-done:
		t.Fatalf("second run went ahead while the lock was held: %v", err)
	default:
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiting run did not get the lock: %v", err)
	}
}

func TestOnlySelectsModulesAndTheirRestarters(t *testing.T) {
	a := &fakeModule{id: "a", have: str("1"), want: "2"}
	b := &fakeModule{id: "b", have: str("1"), want: "2"}
	u := &fakeUnit{deps: []string{"a"}}
	e := newEngine(t, a, b, u)
	if _, err := e.Apply(context.Background(), e.WithRestarters(Selection{"a": true})); err != nil {
		t.Fatal(err)
	}
	if a.applied != 1 || b.applied != 0 || u.restarts != 1 {
		t.Fatalf("applied a=%d b=%d restarts=%d", a.applied, b.applied, u.restarts)
	}
}

func TestPlanTextGolden(t *testing.T) {
	rep := &Report{Command: "plan", Modules: []ModuleResult{
		{ID: "subordinate_ids.dockremap", Status: StatusChanged, Changes: []Change{
			{Action: Create, Target: "user dockremap", New: "system user, no login"},
			{Action: Create, Target: "/etc/subuid", New: "dockremap:100000:65536"},
		}},
		{ID: "docker_daemon", Status: StatusChanged, Changes: []Change{
			{Action: Update, Target: "log-opts", Old: `{"max-size":"20m"}`, New: `{"max-file":"3","max-size":"10m"}`},
			{Action: Delete, Target: "debug", Old: "true"},
		}},
		{ID: "service.docker.service", Status: StatusChanged, Changes: []Change{
			{Action: Update, Target: "docker.service", Detail: "restart: docker_daemon changed log-opts"},
		}},
		{ID: "firewall", Status: StatusSkipped, Error: ErrOffline.Error()},
		{ID: "other", Status: StatusOK},
	}}
	var buf bytes.Buffer
	if err := WriteText(&buf, rep); err != nil {
		t.Fatal(err)
	}
	agenttest.Golden(t, "testdata/plan.golden", buf.String())

	rep.Command = "apply"
	rep.Modules[2].Status = StatusRolledBack
	rep.Modules[2].Error = "rolled back: docker.service did not become active within 90s"
	buf.Reset()
	_ = WriteText(&buf, rep)
	agenttest.Golden(t, "testdata/apply-rolledback.golden", buf.String())
}

func TestOnlyIsStrictForTheCommandLine(t *testing.T) {
	a := &fakeModule{id: "a", have: str("1"), want: "2"}
	u := &fakeUnit{deps: []string{"a"}}
	e := newEngine(t, a, u)
	if _, err := e.Apply(context.Background(), Selection{"a": true}); err != nil {
		t.Fatal(err)
	}
	if a.applied != 1 || u.restarts != 0 {
		t.Fatalf("applied a=%d restarts=%d, want 1 and 0", a.applied, u.restarts)
	}
	if o, _ := NewJournal(e.StateDir).Get("unit"); o == nil {
		t.Fatal("the restart a owes must stay in the journal for the unit's module to settle")
	}
}

type committing struct {
	*fakeModule
	commits int
}

func (c *committing) Commit(ctx context.Context, env *Env) error { c.commits++; return nil }

func TestCommitOnlyAfterARunWithoutFailures(t *testing.T) {
	a := &committing{fakeModule: &fakeModule{id: "a", have: str("1"), want: "2"}}
	bad := &fakeModule{id: "bad", have: str("1"), want: "2", applyErr: errors.New("boom")}
	e := newEngine(t, a, bad)
	if _, err := e.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if a.commits != 0 {
		t.Fatal("committed after a failed run")
	}
	bad.applyErr = nil
	if _, err := e.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if a.commits != 1 {
		t.Fatalf("commits = %d, want 1", a.commits)
	}
}

type metaModule struct{ fakeModule }

func (m *metaModule) Plan(ctx context.Context, env *Env) (*Plan, error) {
	p, err := m.fakeModule.Plan(ctx, env)
	for i := range p.Changes {
		p.Changes[i].Metadata = true
	}
	return p, err
}

func TestMetadataChangesOweNoRestart(t *testing.T) {
	a := &metaModule{fakeModule{id: "a", have: str("0600"), want: "0644"}}
	u := &fakeUnit{deps: []string{"a"}}
	e := newEngine(t, a, u)
	rep, err := e.Apply(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if u.restarts != 0 || rep.ExitCode() != ExitChanged {
		t.Fatalf("restarts = %d exit = %d, want 0 and 2", u.restarts, rep.ExitCode())
	}
}

// reloadModule plans one change whose Reload flag is reload.
type reloadModule struct {
	fakeModule
	reload bool
}

func (m *reloadModule) Plan(ctx context.Context, env *Env) (*Plan, error) {
	p, err := m.fakeModule.Plan(ctx, env)
	for i := range p.Changes {
		p.Changes[i].Reload = m.reload
	}
	return p, err
}

// The unit owes a reload only when every owed change says a reload takes
// it in; a change of any other kind, from any module, makes it a restart.
func TestDueKind(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reloads []bool // one upstream module each
		want    RestartKind
	}{
		{"reloadable keys only", []bool{true}, Reload},
		{"two modules, both reloadable", []bool{true, true}, Reload},
		{"mixed modules", []bool{true, false}, Restart},
		{"not reloadable", []bool{false}, Restart},
		{"nothing owed", nil, NoRestart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mods []Module
			var deps []string
			for i, r := range tc.reloads {
				id := string(rune('a' + i))
				mods = append(mods, &reloadModule{fakeModule{id: id, have: str("1"), want: "2"}, r})
				deps = append(deps, id)
			}
			u := &fakeUnit{deps: deps}
			e := newEngine(t, append(mods, u)...)
			if _, err := e.Plan(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			if u.sawDue.Kind != tc.want {
				t.Errorf("plan: due %q, want %q", u.sawDue.Kind, tc.want)
			}
			if _, err := e.Apply(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			if u.sawDue.Kind != tc.want {
				t.Errorf("apply: due %q, want %q", u.sawDue.Kind, tc.want)
			}
			if diff := cmp.Diff(deps, u.sawDue.ChangedNow); tc.want != NoRestart && diff != "" {
				t.Errorf("changed now (-want +got):\n%s", diff)
			}
		})
	}
}

// A restart that fails verification without rollback stays owed: the
// engine clears the journal only after the module succeeded.
func TestFailedRestartStaysOwed(t *testing.T) {
	a := &fakeModule{id: "a", have: str("1"), want: "2"}
	u := &noRollbackUnit{fakeUnit{deps: []string{"a"}, failFirst: true}}
	e := newEngine(t, a, u)
	rep, err := e.Apply(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ExitCode() != ExitChangedAndFail || a.rolled != 0 {
		t.Fatalf("exit = %d rolled = %d, want 6 and 0", rep.ExitCode(), a.rolled)
	}
	if !strings.HasSuffix(rep.Modules[1].Error, "; rollback is off, the new files stay and the restart stays owed") {
		t.Errorf("error = %q", rep.Modules[1].Error)
	}
	if o, _ := NewJournal(e.StateDir).Get("unit"); o == nil {
		t.Fatal("the failed restart was cleared from the journal")
	}
	// The next run restarts for what the journal owes, and clears it.
	if _, err := e.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if u.restarts != 2 || len(u.sawDue.ChangedNow) != 0 {
		t.Fatalf("restarts = %d, changed now %v; want 2 and none", u.restarts, u.sawDue.ChangedNow)
	}
	if o, _ := NewJournal(e.StateDir).Get("unit"); o != nil {
		t.Fatalf("journal not cleared after the verified restart: %+v", o)
	}
}

type noRollbackUnit struct{ fakeUnit }

func (u *noRollbackUnit) RollsBack() bool { return false }

// pendingModule has something declared that is not there yet: not a
// change, not a failure. Apply refreshes the list (it may find less).
type pendingModule struct {
	fakeModule
	pending      []Pending
	applyPending []Pending
}

func (p *pendingModule) Plan(ctx context.Context, env *Env) (*Plan, error) {
	plan, err := p.fakeModule.Plan(ctx, env)
	if plan != nil {
		plan.Pending = p.pending
	}
	return plan, err
}

func (p *pendingModule) Apply(ctx context.Context, env *Env, plan *Plan) error {
	plan.Pending = p.applyPending
	return p.fakeModule.Apply(ctx, env, plan)
}

func TestPendingIsReportedAndChangesNoExitCode(t *testing.T) {
	waiting := []Pending{{Target: "docker network app", Detail: "does not exist in Docker yet"}}
	m := &pendingModule{fakeModule: fakeModule{id: "firewall", have: str("x"), want: "x"}, pending: waiting}
	e := newEngine(t, m)
	ctx := context.Background()

	plan, err := e.Plan(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if plan.ExitCode() != ExitOK || plan.Modules[0].Status != StatusOK {
		t.Errorf("plan with only a pending item: exit %d, status %s; want 0, ok", plan.ExitCode(), plan.Modules[0].Status)
	}
	if d := cmp.Diff(waiting, plan.Modules[0].Pending); d != "" {
		t.Errorf("plan's pending (-want +got):\n%s", d)
	}
	rep, err := e.Apply(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ExitCode() != ExitOK || len(rep.Modules[0].Pending) != 1 {
		t.Errorf("apply with only a pending item: exit %d, %+v", rep.ExitCode(), rep.Modules[0])
	}
	b, err := os.ReadFile(ReportPath(e.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"pending": [`)) || !bytes.Contains(b, []byte(`"target": "docker network app"`)) {
		t.Errorf("last-report.json lacks the pending item:\n%s", b)
	}

	// With a change, apply exits as for the change, and reports what Apply
	// found pending, not what Plan did.
	m.have, m.applyPending = str("old"), nil
	m.want = "new"
	rep, err = e.Apply(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ExitCode() != ExitChanged || rep.Modules[0].Pending != nil {
		t.Errorf("apply that changed and found nothing pending: exit %d, pending %+v", rep.ExitCode(), rep.Modules[0].Pending)
	}
}

func TestPendingTextGolden(t *testing.T) {
	pending := []Pending{{Target: "docker network app", Detail: "declared at dockward.hcl:12,3-17; does not exist in Docker yet"}}
	rep := &Report{Command: "plan", Modules: []ModuleResult{
		{ID: "docker_daemon", Status: StatusOK},
		{ID: "firewall", Status: StatusOK, Pending: pending},
	}}
	var buf bytes.Buffer
	if err := WriteText(&buf, rep); err != nil {
		t.Fatal(err)
	}
	rep.Command = "apply"
	rep.Modules[1].Status = StatusChanged
	rep.Modules[1].Changes = []Change{{Action: Create, Target: "table inet dockward"}}
	_ = WriteText(&buf, rep)
	agenttest.Golden(t, "testdata/pending.golden", buf.String())
}

// Every module's result carries how long it took, in plan and in apply
// (the deferred assignment once landed on a copy: always 0 in reports).
func TestModuleDurationsAreReported(t *testing.T) {
	a := &fakeModule{id: "a", have: str("old"), want: "new"}
	e := newEngine(t, a)
	ctx := context.Background()
	plan, err := e.Plan(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.Apply(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Report{plan, rep} {
		if d := r.Modules[0].Duration; d <= 0 {
			t.Errorf("%s: module a duration = %v, want > 0", r.Command, d)
		}
	}
}
