package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent/agenttest"
	"github.com/dockward/dockward/config"
	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"
)

// The testdata answers were recorded from the sandbox machine's dockerd
// (Docker 26.1.5, userns-remap, after `dockward apply` of the embedded
// default) with curl on its socket: GET /info, /containers/json and
// /containers/{name}/json of four containers:
//
//	dw-priv      docker run --privileged --userns=host busybox:local
//	dw-sock      docker run -v /run/docker.sock:/var/run/docker.sock -p 80:8080 busybox:local
//	dw-nolimits  docker run busybox:local
//	dw-good      docker run --cap-drop ALL --cap-add NET_BIND_SERVICE --security-opt no-new-privileges
//	             --read-only --memory 64m --cpu-shares 512 --pids-limit 64 --health-cmd true
//	             --user 1000:1000 --restart on-failure:5 busybox:local
//
// That machine's kernel has no memory, pids or cpu controller in its
// cgroup v2 tree, so dockerd discarded dw-good's limits (it said so), and
// the recorded document has none: the checks say why.

func load[T any](t testing.TB, name string) T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// recorded is a snapshot of the recorded answers plus a converged file tree.
func recorded(t testing.TB) *Snapshot {
	t.Helper()
	info := load[system.Info](t, "info.json")
	s := &Snapshot{Info: &info, Files: map[string]FileStat{}, Units: map[string]string{}, Binaries: map[string][]string{},
		DaemonJSON: map[string]any{}, MountPoints: map[string]bool{"/": true}, SSHD: map[string][]int{},
		Groups: map[string]Group{"docker": {GID: 995}}, AuditWatches: map[string]bool{}}
	for _, n := range []string{"dw-priv", "dw-sock", "dw-nolimits", "dw-good"} {
		s.Containers = append(s.Containers, load[container.InspectResponse](t, "inspect-"+n+".json"))
	}
	list := load[[]container.Summary](t, "containers.json")
	if len(list) != len(s.Containers) {
		t.Fatalf("recorded list has %d containers, %d inspected", len(list), len(s.Containers))
	}
	b, err := os.ReadFile("testdata/daemon.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s.DaemonJSON); err != nil {
		t.Fatal(err)
	}
	s.DockerdArgs = []string{"/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"}
	return s
}

// byTarget indexes findings: ID -> target -> finding.
func byTarget(r *Report) map[string]map[string]Finding {
	out := map[string]map[string]Finding{}
	for _, f := range r.Findings {
		if out[f.ID] == nil {
			out[f.ID] = map[string]Finding{}
		}
		out[f.ID][f.Target] = f
	}
	return out
}

// The four recorded containers get the right 5.x numbers, each failure
// naming the field at fault.
func TestRecordedContainers(t *testing.T) {
	rep := Judge(recorded(t), Options{})
	got := byTarget(rep)
	want := []struct {
		id, target string
		status     Status
		field      string
	}{
		{"5.5", "dw-priv", Fail, "HostConfig.Privileged"},
		{"5.31", "dw-priv", Fail, "HostConfig.UsernsMode"},
		{"5.22", "dw-priv", Fail, "HostConfig.Privileged"},
		{"5.32", "dw-priv", Pass, ""},
		{"5.32", "dw-sock", Fail, "Mounts"},
		{"5.8", "dw-sock", Fail, "NetworkSettings.Ports"},
		{"5.14", "dw-sock", Fail, "HostConfig.PortBindings"},
		{"5.5", "dw-sock", Pass, ""},
		{"5.11", "dw-nolimits", Fail, "HostConfig.Memory"},
		{"5.12", "dw-nolimits", Fail, "HostConfig.CpuShares"},
		{"5.29", "dw-nolimits", Fail, "HostConfig.PidsLimit"},
		{"5.13", "dw-nolimits", Fail, "HostConfig.ReadonlyRootfs"},
		{"5.4", "dw-nolimits", Fail, "HostConfig.CapDrop"},
		{"4.1", "dw-nolimits", Fail, "Config.User"},
		{"5.27", "dw-nolimits", Fail, "State.Health"},
		{"5.26", "dw-nolimits", Pass, ""}, // from the daemon's no-new-privileges
		{"5.28", "dw-nolimits", Pass, ""}, // busybox:local
		{"5.2", "dw-nolimits", Skip, ""},  // no AppArmor in the sandbox
		{"4.1", "dw-good", Pass, ""},
		{"4.6", "dw-good", Pass, ""},
		{"5.4", "dw-good", Fail, "HostConfig.CapAdd"}, // NET_BIND_SERVICE: the default policy allows none
		{"5.13", "dw-good", Pass, ""},
		{"5.15", "dw-good", Pass, ""},
		{"5.27", "dw-good", Pass, ""},
		{"5.11", "dw-good", Fail, "HostConfig.Memory"}, // discarded by that dockerd
		{"dockward.log-caps", "dw-good", Pass, ""},
	}
	for _, w := range want {
		f, ok := got[w.id][w.target]
		if !ok {
			t.Errorf("%s %s: no finding", w.id, w.target)
			continue
		}
		if f.Status != w.status || f.Field != w.field {
			t.Errorf("%s %s: %s field %q (%s %s), want %s field %q", w.id, w.target, f.Status, f.Field, f.Detail, f.Reason, w.status, w.field)
		}
	}
	if !strings.Contains(got["5.11"]["dw-good"].Detail, "no memory limit support") {
		t.Errorf("5.11 dw-good does not say the host cannot limit memory: %q", got["5.11"]["dw-good"].Detail)
	}
	// dw-good with the limits a host with cgroup controllers keeps passes
	// every container check.
	s := recorded(t)
	good := s.Containers[3]
	good.HostConfig.Memory, good.HostConfig.CPUShares = 64<<20, 512
	good.HostConfig.PidsLimit = new(int64(64))
	s.Containers = []container.InspectResponse{good}
	s.Info.SecurityOptions = append(s.Info.SecurityOptions, "name=apparmor")
	good.AppArmorProfile = "docker-default"
	s.Containers[0] = good
	pol := DefaultPolicy()
	pol.CapAdd = []string{"NET_BIND_SERVICE"}
	for _, f := range Judge(s, Options{Policy: pol}).Findings {
		if f.Target == "dw-good" && f.Status != Pass && f.ID != "5.3" {
			t.Errorf("compliant dw-good: %s %s %s %s", f.ID, f.Status, f.Field, f.Detail)
		}
	}
}

// Waived checks are reported as waived, never passed, and do not fail the
// audit; the policy's relaxations are waivers too.
func TestWaiversAndRelaxedPolicy(t *testing.T) {
	s := recorded(t)
	pol := DefaultPolicy()
	pol.Privileged = true
	rep := Judge(s, Options{Policy: pol, Waivers: map[string]Waiver{"2.13": {Reason: "json-file kept on purpose"}}})
	got := byTarget(rep)
	if f := got["2.13"]["dockerd"]; f.Status != Waived || f.Reason != "json-file kept on purpose" || f.Pass || !strings.HasPrefix(f.Detail, "would fail") {
		t.Errorf("2.13: %+v", f)
	}
	if f := got["5.5"]["dw-priv"]; f.Status != Waived || !strings.Contains(f.Reason, "container_policy.privileged") {
		t.Errorf("5.5 relaxed: %+v", f)
	}
	if rep.Waived < 2 || rep.Passed+rep.Failed+rep.Waived+rep.Skipped != len(rep.Findings) {
		t.Errorf("counts: %+v", rep)
	}
	// A waiver with targets waives those only.
	rep = Judge(recorded(t), Options{Waivers: map[string]Waiver{"5.13": {Reason: "writes its cache", Targets: []string{"dw-sock"}}}})
	got = byTarget(rep)
	if got["5.13"]["dw-sock"].Status != Waived || got["5.13"]["dw-nolimits"].Status != Fail {
		t.Errorf("5.13 with targets: %+v", got["5.13"])
	}
}

// The text table a reviewer reads: the recorded host, with the default's
// waiver (go test -update rewrites it).
func TestTextGolden(t *testing.T) {
	rep := Judge(recorded(t), Options{Waivers: map[string]Waiver{"2.13": {Reason: "json-file kept on purpose"}}, RemapUser: "dockremap"})
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	agenttest.Golden(t, "testdata/recorded.golden", b.String())
}

func TestWaiverConfig(t *testing.T) {
	kinds := append([]config.Kind{}, Kinds...)
	f, diags := config.Decode("t.hcl", []byte(`audit {
  waive "2.13" { reason = "json-file kept on purpose for local forensics" }
}
container_policy {
  cap_add         = ["net_bind_service"]
  host_namespaces = ["pid"]
  memory_limit    = false
}
`), kinds)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	pol, w := FromConfig(f)
	if w["2.13"].Reason != "json-file kept on purpose for local forensics" {
		t.Errorf("waivers %+v", w)
	}
	if diff := cmp.Diff([]string{"NET_BIND_SERVICE"}, pol.CapAdd); diff != "" || pol.MemoryLimit || !pol.ReadOnlyRootfs || pol.HostNamespaces[0] != "pid" {
		t.Errorf("policy %+v %s", pol, diff)
	}
	_, diags = config.Decode("t.hcl", []byte("audit {\n  waive \"2.133\" { reason = \"x\" }\n  waive \"2.13\" { reason = \"\" }\n}\ncontainer_policy {\n  host_namespaces = [\"net\"]\n}\n"), kinds)
	var sums []string
	for _, d := range diags {
		sums = append(sums, d.Summary+"@"+d.Subject.String()+": "+d.Detail)
	}
	all := strings.Join(sums, "\n")
	for _, want := range []string{`Unknown check@t.hcl:2,9-16`, `Did you mean "2.13"?`, "Empty reason@t.hcl:3", "Unknown namespace@t.hcl:6"} {
		if !strings.Contains(all, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, all)
		}
	}
}

// The embedded default declares the policy's defaults and waives 2.13 with
// its reason.
func TestDefaultConfiguration(t *testing.T) {
	kinds := append([]config.Kind{}, Kinds...)
	f, diags := config.Decode("default.hcl", extract(t, config.Default, "container_policy", "audit"), kinds)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	pol, w := FromConfig(f)
	if diff := cmp.Diff(DefaultPolicy(), pol); diff != "" {
		t.Errorf("default.hcl's container_policy differs from DefaultPolicy:\n%s", diff)
	}
	if w["2.13"].Reason == "" {
		t.Errorf("default.hcl does not waive 2.13 with a reason: %+v", w)
	}
}

// extract returns the top-level blocks of the given types from src.
func extract(t *testing.T, src []byte, types ...string) []byte {
	t.Helper()
	var out []string
	lines := strings.Split(string(src), "\n")
	for i := 0; i < len(lines); i++ {
		for _, ty := range types {
			if strings.HasPrefix(lines[i], ty+" ") {
				j := i
				for ; j < len(lines) && lines[j] != "}"; j++ {
				}
				out = append(out, strings.Join(lines[i:j+1], "\n"))
				i = j
			}
		}
	}
	if len(out) != len(types) {
		t.Fatalf("found %d of the blocks %v", len(out), types)
	}
	return []byte(strings.Join(out, "\n"))
}

func TestSubIDsAndReport(t *testing.T) {
	root := t.TempDir()
	_ = os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	_ = os.WriteFile(filepath.Join(root, "etc/subuid"), []byte("dockremap:100000:65536\n"), 0o644)
	_ = os.WriteFile(filepath.Join(root, "etc/subgid"), []byte("alice:100000:65536\n"), 0o644)
	rep := Run(t.Context(), Options{Root: root, RemapUser: "dockremap", Only: []string{"subordinate-ids"}})
	if rep.Passed != 1 || rep.Failed != 1 {
		t.Fatalf("%+v", rep)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "FAIL  subordinate-ids") || !strings.Contains(b.String(), "1 passed, 1 failed") {
		t.Fatalf("text:\n%s", b.String())
	}
}

// Under --root only the file checks run; everything needing the live
// system is skipped with its reason, never passed.
func TestOfflineSkipsNeverPass(t *testing.T) {
	rep := Run(t.Context(), Options{Root: t.TempDir()})
	for _, f := range rep.Findings {
		if f.Status == Skip && f.Reason == "" {
			t.Errorf("%s skipped without a reason", f.ID)
		}
		if strings.HasPrefix(f.Section, "5") && f.Status != Skip {
			t.Errorf("%s offline: %s", f.ID, f.Status)
		}
	}
}

// Every check has a unique name and ID, and a title.
func TestCatalogueNames(t *testing.T) {
	names, ids := map[string]bool{}, map[string]bool{}
	for _, c := range Catalogue {
		if names[c.Name] || ids[c.ID] || c.Title == "" {
			t.Errorf("%s %s: duplicate or untitled", c.ID, c.Name)
		}
		names[c.Name], ids[c.ID] = true, true
	}
}

// BenchmarkJudge is the pure part of an audit: every check over the
// recorded host (four containers).
func BenchmarkJudge(b *testing.B) {
	s := recorded(b)
	for b.Loop() {
		Judge(s, Options{RemapUser: "dockremap"})
	}
}
