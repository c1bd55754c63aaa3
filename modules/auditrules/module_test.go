package auditrules

import (
	"context"
	"fmt"
	"github.com/dockward/dockward/agent/moduletest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent"
	"github.com/dockward/dockward/agent/agenttest"
	"github.com/dockward/dockward/config"
)

// newModule plans a temp tree as the live host, the fakes standing for
// systemd and auditd: nothing of this machine is asked or loaded.
func newModule(t *testing.T, src string, a *fakeAuditd) *Module {
	m := New(decodeBlock(t, src))
	m.units = debianUnits
	m.auditd = a
	m.treeIsLive = true
	return m
}

func TestPlanApplyPlanAuditdStates(t *testing.T) {
	for _, tc := range []struct {
		name      string
		state     AuditdState
		wantLoads int
		note      string
	}{
		{"running", AuditdRunning, 1, ""},
		{"stopped", AuditdStopped, 0, "auditd is not running"},
		{"missing", AuditdMissing, 0, "auditd is not installed"},
		{"no systemd", AuditdUnknown, 0, "cannot tell whether auditd runs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := rootEnv(t)
			debianTree(t, env.Root)
			a := &fakeAuditd{state: tc.state, file: env.Path(DefaultPath)}
			m := newModule(t, `audit_rules {}`, a)
			p := moduletest.Plan(t, m, env)
			c := change(p, DefaultPath)
			if c == nil || c.Action != agent.Create || change(p, TmpfilesPath) == nil {
				t.Fatalf("plan: %+v", p.Changes)
			}
			if tc.note != "" && (len(p.Pending) != 1 || p.Pending[0].Target != targetLoad || !strings.Contains(p.Pending[0].Detail, tc.note)) {
				t.Errorf("plan does not say %q as pending: %+v", tc.note, p.Pending)
			}
			if tc.note == "" && len(p.Pending) != 0 {
				t.Errorf("pending: %+v", p.Pending)
			}
			if err := m.Apply(context.Background(), env, p); err != nil {
				t.Fatal(err)
			}
			if a.loads != tc.wantLoads {
				t.Errorf("loads = %d, want %d", a.loads, tc.wantLoads)
			}
			fi, err := os.Stat(env.Path(DefaultPath))
			if err != nil || fi.Mode().Perm() != 0o640 {
				t.Fatalf("rules file: %v %v", fi, err)
			}
			p = moduletest.Plan(t, m, env)
			if !p.Empty() {
				t.Fatalf("plan after apply: %+v", p.Changes)
			}
			// Converged, the plan still says what waits for auditd.
			if (tc.note != "") != (len(p.Pending) == 1) {
				t.Fatalf("pending after apply: %+v", p.Pending)
			}
		})
	}
}

// A kernel that lost the rules (auditctl -D by someone) is drift: the
// file is right, the load is planned again.
func TestKernelDriftIsReloaded(t *testing.T) {
	env := rootEnv(t)
	debianTree(t, env.Root)
	a := &fakeAuditd{state: AuditdRunning, file: env.Path(DefaultPath)}
	m := newModule(t, `audit_rules {}`, a)
	if err := m.Apply(context.Background(), env, moduletest.Plan(t, m, env)); err != nil {
		t.Fatal(err)
	}
	a.kernel = nil
	p := moduletest.Plan(t, m, env)
	if len(p.Changes) != 1 || p.Changes[0].Target != targetLoad || !strings.Contains(p.Changes[0].Detail, "/usr/sbin/dockerd") {
		t.Fatalf("plan: %+v", p.Changes)
	}
	if err := m.Apply(context.Background(), env, p); err != nil || a.loads != 2 {
		t.Fatalf("apply: %v, loads %d", err, a.loads)
	}
}

// A load that fails (the kernel's audit unreachable, as in a container)
// fails the apply with what failed, leaves the file written and right,
// and the next plan shows the load again.
func TestLoadFailure(t *testing.T) {
	env := rootEnv(t)
	debianTree(t, env.Root)
	a := &fakeAuditd{state: AuditdRunning, file: env.Path(DefaultPath),
		listErr: fmt.Errorf("auditctl -l: exit status 1: Error sending rule list data request (Operation not permitted)"),
		loadErr: fmt.Errorf("augenrules --load: exit status 1: There was an error in line 5 of /etc/audit/audit.rules")}
	m := newModule(t, `audit_rules {}`, a)
	p := moduletest.Plan(t, m, env)
	if c := change(p, targetLoad); len(p.Changes) != 3 || c == nil || !strings.Contains(c.Detail, "cannot read the kernel's rules") {
		t.Fatalf("plan: %+v", p.Changes)
	}
	err := m.Apply(context.Background(), env, p)
	if err == nil || !strings.Contains(err.Error(), "is written, but loading it failed") || !strings.Contains(err.Error(), "line 5") {
		t.Fatalf("apply error: %v", err)
	}
	data, _ := os.ReadFile(env.Path(DefaultPath))
	if !strings.Contains(string(data), "-w /usr/sbin/dockerd -p wa -k docker") {
		t.Fatalf("file not written: %s", data)
	}
	p = moduletest.Plan(t, m, env)
	if len(p.Changes) != 1 || p.Changes[0].Target != targetLoad {
		t.Fatalf("plan after a failed load: %+v", p.Changes)
	}
}

// Under --root the file is written and nothing is loaded, whatever auditd
// is: the real module never asks (the fake would count a load).
func TestOfflineWritesOnly(t *testing.T) {
	env := rootEnv(t)
	debianTree(t, env.Root)
	m := New(decodeBlock(t, `audit_rules {}`))
	p := moduletest.Plan(t, m, env)
	if c := change(p, DefaultPath); len(p.Changes) != 2 || c == nil || !strings.Contains(c.Detail, "offline") {
		t.Fatalf("plan: %+v", p.Changes)
	}
	if err := m.Apply(context.Background(), env, p); err != nil {
		t.Fatal(err)
	}
	if p := moduletest.Plan(t, m, env); !p.Empty() {
		t.Fatalf("plan after apply: %+v", p.Changes)
	}
}

// An edited file is rewritten; a loosened mode alone is a metadata change
// fixed in place; other files of the directory are never touched.
func TestDrift(t *testing.T) {
	env := rootEnv(t)
	debianTree(t, env.Root)
	other := env.Path("/etc/audit/rules.d/audit.rules")
	mkfile(t, other)
	if err := os.WriteFile(other, []byte("-D\n-w /etc/passwd -p wa -k identity\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	m := New(decodeBlock(t, `audit_rules {}`))
	if err := m.Apply(context.Background(), env, moduletest.Plan(t, m, env)); err != nil {
		t.Fatal(err)
	}
	path := env.Path(DefaultPath)
	if err := os.WriteFile(path, []byte("-w /etc/docker -p wa -k docker\n-w /tmp -p wa -k docker\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	p := moduletest.Plan(t, m, env)
	if len(p.Changes) != 1 || p.Changes[0].Action != agent.Update || !strings.Contains(p.Changes[0].Detail, "-/tmp") ||
		!strings.Contains(p.Changes[0].Detail, "+/usr/sbin/dockerd") {
		t.Fatalf("plan: %+v", p.Changes)
	}
	if err := m.Apply(context.Background(), env, p); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	p = moduletest.Plan(t, m, env)
	if len(p.Changes) != 1 || !p.Changes[0].Metadata || p.Changes[0].Old != "mode 0666" {
		t.Fatalf("plan: %+v", p.Changes)
	}
	if err := m.Apply(context.Background(), env, p); err != nil {
		t.Fatal(err)
	}
	if p := moduletest.Plan(t, m, env); !p.Empty() {
		t.Fatalf("plan after apply: %+v", p.Changes)
	}
	if data, _ := os.ReadFile(other); string(data) != "-D\n-w /etc/passwd -p wa -k identity\n" {
		t.Fatalf("another rules file was touched: %q", data)
	}
}

// A file changed between plan and apply is not overwritten.
func TestApplyRefusesAChangedFile(t *testing.T) {
	env := rootEnv(t)
	debianTree(t, env.Root)
	m := New(decodeBlock(t, `audit_rules {}`))
	p := moduletest.Plan(t, m, env)
	mkfile(t, env.Path(DefaultPath))
	if err := m.Apply(context.Background(), env, p); err == nil || !strings.Contains(err.Error(), "changed since the plan") {
		t.Fatalf("apply: %v", err)
	}
}

// A link or a FIFO at the rules file is refused by the managed-file layer.
func TestRefusesLinksAndFIFOs(t *testing.T) {
	env := rootEnv(t)
	path := env.Path(DefaultPath)
	mkfile(t, env.Path("/etc/shadow"))
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/shadow", path); err != nil {
		t.Fatal(err)
	}
	m := New(decodeBlock(t, `audit_rules {}`))
	if _, err := m.Plan(context.Background(), env); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("link: %v", err)
	}
	os.Remove(path)
	if err := mkfifo(path); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Plan(context.Background(), env); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("fifo: %v", err)
	}
}

func TestDecode(t *testing.T) {
	b := decodeBlock(t, `audit_rules {}`)
	if b.Path != DefaultPath || b.Key != "docker" || !b.Load {
		t.Fatalf("defaults: %+v", b)
	}
	b = decodeBlock(t, `audit_rules {
  path = "/etc/audit/rules.d/50-docker.rules"
  key  = "container-runtime"
  load = false
}`)
	if b.Path != "/etc/audit/rules.d/50-docker.rules" || b.Key != "container-runtime" || b.Load {
		t.Fatalf("decoded: %+v", b)
	}
	for _, tc := range []struct{ src, summary string }{
		{`path = "/etc/audit/audit.rules"`, "Invalid path"},
		{`path = "/etc/audit/rules.d/docker.conf"`, "Invalid path"},
		{`path = "rules.d/docker.rules"`, "Invalid path"},
		{`key = "has space"`, "Invalid key"},
		{`load = "yes"`, "Incorrect attribute value type"},
	} {
		_, diags := config.Decode("test.hcl", []byte("audit_rules {\n  "+tc.src+"\n}\n"), []config.Kind{Kind})
		if !diags.HasErrors() || diags[0].Summary != tc.summary || diags[0].Subject.Start.Line != 2 {
			t.Errorf("%s: %v", tc.src, diags)
		}
	}
}

// TestPlanGolden is the plan an operator sees on a fresh Debian host with
// auditd running, and on one without auditd.
func TestPlanGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state AuditdState
	}{{"fresh-auditd-running", AuditdRunning}, {"fresh-no-auditd", AuditdMissing}} {
		t.Run(tc.name, func(t *testing.T) {
			env := rootEnv(t)
			debianTree(t, env.Root)
			m := newModule(t, `audit_rules {}`, &fakeAuditd{state: tc.state})
			var sb strings.Builder
			p := moduletest.Plan(t, m, env)
			for _, c := range p.Changes {
				fmt.Fprintf(&sb, "%s %s: %q -> %q\n    %s\n", c.Action, c.Target, c.Old, c.New, c.Detail)
			}
			for _, pe := range p.Pending {
				fmt.Fprintf(&sb, "pending %s: %s\n", pe.Target, pe.Detail)
			}
			agenttest.Golden(t, filepath.Join("testdata", tc.name+".golden"), sb.String())
		})
	}
}

// change returns the plan's change of target, or nil.
func change(p *agent.Plan, target string) *agent.Change {
	for i := range p.Changes {
		if p.Changes[i].Target == target {
			return &p.Changes[i]
		}
	}
	return nil
}

// The tmpfiles.d entry makes, at boot, the directories below /run that the
// watches need, with their mode and owner on the host; it goes away when no
// watch needs it.
func TestTmpfilesEntry(t *testing.T) {
	env := rootEnv(t)
	debianTree(t, env.Root)
	if err := os.Chmod(env.Path("/run/containerd"), 0o711); err != nil {
		t.Fatal(err)
	}
	m := New(decodeBlock(t, `audit_rules {}`))
	if err := m.Apply(context.Background(), env, moduletest.Plan(t, m, env)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(env.Path(TmpfilesPath))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(data), "\nd /run/containerd 0711 root root -\n") {
		t.Fatalf("tmpfiles entry:\n%s", data)
	}
	if fi, _ := os.Stat(env.Path(TmpfilesPath)); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// containerd gone (not installed any more): no watch below /run needs
	// a directory, the entry is removed.
	if err := os.RemoveAll(env.Path("/run/containerd")); err != nil {
		t.Fatal(err)
	}
	p := moduletest.Plan(t, m, env)
	if c := change(p, TmpfilesPath); c == nil || c.Action != agent.Delete {
		t.Fatalf("plan: %+v", p.Changes)
	}
	if err := m.Apply(context.Background(), env, p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(env.Path(TmpfilesPath)); !os.IsNotExist(err) {
		t.Fatalf("entry not removed: %v", err)
	}
	if p := moduletest.Plan(t, m, env); !p.Empty() {
		t.Fatalf("plan after apply: %+v", p.Changes)
	}
}
