package daemonjson

import (
	"context"
	"errors"
	"github.com/dockward/dockward/agent/moduletest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent"
	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// fakeUnits is a UnitReader with a fixed answer.
type fakeUnits struct {
	ue    *UnitExec
	err   error
	calls int
}

func (f *fakeUnits) ReadUnit(ctx context.Context, unit string) (*UnitExec, error) {
	f.calls++
	if unit != "docker.service" {
		return nil, ErrNoUnit
	}
	return f.ue, f.err
}

// debianUnit is docker.service as Debian ships it (TESTBED.md), plus
// whatever the test adds.
func debianUnit(envFile string, extra ...string) *UnitExec {
	argv := append([]string{"/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock", "$DOCKER_OPTS"}, extra...)
	return &UnitExec{
		ExecStart:        [][]string{argv},
		EnvironmentFiles: []EnvFile{{Path: envFile, Optional: true}},
	}
}

// liveEnv is a run without --root whose files are still in a temp dir
// (the block's path points there), with fakes for the live parts.
func liveEnv(t testing.TB) (*agent.Env, string) {
	t.Helper()
	dir := t.TempDir()
	log, _ := test.NewNullLogger()
	return &agent.Env{StateDir: filepath.Join(dir, "state"), Log: logrus.NewEntry(log)}, dir
}

func liveModule(t testing.TB, dir, body string, units UnitReader) *Module {
	t.Helper()
	b := mustDecode(t, "docker_daemon {\n  path = \""+filepath.Join(dir, "etc/docker/daemon.json")+"\"\n"+body+"\n}\n")
	m := New(b)
	m.Units = units
	m.Dockerd = filepath.Join(dir, "no-dockerd-here")
	return m
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args []string
		want []Flag
	}{
		{[]string{"-H", "fd://", "--containerd=/run/containerd/containerd.sock"}, []Flag{
			{Name: "host", Value: "fd://", Arg: "-H fd://"},
			{Name: "containerd", Value: "/run/containerd/containerd.sock", Arg: "--containerd=/run/containerd/containerd.sock"},
		}},
		{[]string{"--log-driver", "journald", "--debug", "--icc=false", "--live-restore", "--data-root", "/srv"}, []Flag{
			{Name: "log-driver", Value: "journald", Arg: "--log-driver journald"},
			{Name: "debug", Arg: "--debug"},
			{Name: "icc", Value: "false", Arg: "--icc=false"},
			{Name: "live-restore", Arg: "--live-restore"},
			{Name: "data-root", Value: "/srv", Arg: "--data-root /srv"},
		}},
		{[]string{"-D", "-Htcp://0.0.0.0:2376", "-Dl", "debug", "-s=overlay2"}, []Flag{
			{Name: "debug", Arg: "-D"},
			{Name: "host", Value: "tcp://0.0.0.0:2376", Arg: "-Htcp://0.0.0.0:2376"},
			{Name: "debug", Arg: "-D"},
			{Name: "log-level", Value: "debug", Arg: "-Dl debug"},
			{Name: "storage-driver", Value: "overlay2", Arg: "-s=overlay2"},
		}},
		{[]string{"--log-opt", "max-size=1m", "--log-opt=max-file=2", "positional", "--", "--ignored"}, []Flag{
			{Name: "log-opt", Value: "max-size=1m", Arg: "--log-opt max-size=1m"},
			{Name: "log-opt", Value: "max-file=2", Arg: "--log-opt=max-file=2"},
		}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, Flags(tt.args)); diff != "" {
			t.Errorf("Flags(%q) (-want +got):\n%s", tt.args, diff)
		}
	}
}

func TestExpandArgs(t *testing.T) {
	env := map[string]string{
		"DOCKER_OPTS": `--log-driver=journald  --label "a b"`,
		"ROOT":        "/srv/docker",
		"EMPTY":       "",
	}
	tests := []struct {
		in, want []string
	}{
		{[]string{"-H", "fd://", "$DOCKER_OPTS"}, []string{"-H", "fd://", "--log-driver=journald", "--label", "a b"}},
		{[]string{"--data-root=${ROOT}/data"}, []string{"--data-root=/srv/docker/data"}},
		{[]string{"${DOCKER_OPTS}"}, []string{`--log-driver=journald  --label "a b"`}},
		{[]string{"$EMPTY", "$UNSET", "-D"}, []string{"-D"}},
		{[]string{"--x=$$ROOT", "$$ROOT"}, []string{"--x=$ROOT", "$ROOT"}},
		{[]string{"a$ROOT"}, []string{"a$ROOT"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, ExpandArgs(tt.in, env)); diff != "" {
			t.Errorf("ExpandArgs(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseEnvFile(t *testing.T) {
	in := `# Docker Upstart and SysVinit configuration file
#DOCKER_OPTS="--dns 8.8.8.8"
; also a comment

DOCKER_OPTS="--log-driver=journald --label \"x=y\""
export HTTP_PROXY=http://proxy:3128
QUOTED='a $b'
  SPACED = value  
LONG=one \
two
not a line
1BAD=x
`
	want := map[string]string{
		"DOCKER_OPTS": `--log-driver=journald --label "x=y"`,
		"HTTP_PROXY":  "http://proxy:3128",
		"QUOTED":      "a $b",
		"SPACED":      "value",
		"LONG":        "one two",
	}
	if diff := cmp.Diff(want, ParseEnvFile([]byte(in))); diff != "" {
		t.Errorf("ParseEnvFile (-want +got):\n%s", diff)
	}
}

func TestDockerdArgs(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "docker")
	writeFile(t, envFile, "DOCKER_OPTS=--log-driver=journald\n")
	later := filepath.Join(dir, "later")
	writeFile(t, later, "EXTRA=--debug\n")

	ue := &UnitExec{
		ExecStart: [][]string{
			{"/bin/sh", "-c", "true"}, // an ExecStart that is not dockerd
			{"/usr/bin/dockerd", "$DOCKER_OPTS", "$EXTRA", "${MTU}"},
		},
		Environment: []string{"DOCKER_OPTS=--from-environment", "MTU=--mtu=1400", "EXTRA=--overridden"},
		EnvironmentFiles: []EnvFile{
			{Path: envFile}, {Path: filepath.Join(dir, "missing"), Optional: true}, {Path: later},
		},
	}
	got, err := DockerdArgs(ue, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"--log-driver=journald", "--debug", "--mtu=1400"}, got); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}

	ue.EnvironmentFiles = append(ue.EnvironmentFiles, EnvFile{Path: filepath.Join(dir, "required-missing")})
	if _, err := DockerdArgs(ue, os.ReadFile); err == nil || !strings.Contains(err.Error(), "required-missing") {
		t.Errorf("missing required EnvironmentFile: err = %v", err)
	}
}

func TestConflicts(t *testing.T) {
	tests := []struct {
		name string
		file string
		args []string
		want []string // key <- flag as written
	}{
		{"none", `{"log-driver":"json-file"}`, []string{"-H", "fd://", "--containerd=/run/c.sock"}, nil},
		{"same name", `{"log-driver":"json-file","data-root":"/x"}`, []string{"--log-driver=journald", "--data-root", "/srv"},
			[]string{"log-driver <- --log-driver=journald", "data-root <- --data-root /srv"}},
		{"plurals", `{"hosts":["unix:///run/docker.sock"],"log-opts":{"max-size":"1m"},"labels":["a=b"]}`,
			[]string{"-H", "fd://", "--log-opt", "max-file=2", "--label=x=y", "--label=z=w"},
			[]string{"hosts <- -H fd://", "log-opts <- --log-opt max-file=2", "labels <- --label=x=y"}},
		{"bool flag", `{"icc":false,"live-restore":true}`, []string{"--icc=false", "--live-restore"},
			[]string{"icc <- --icc=false", "live-restore <- --live-restore"}},
		{"containerd and userns-remap", `{"containerd":"/run/c.sock","userns-remap":"default"}`,
			[]string{"--containerd=/run/containerd/containerd.sock", "--userns-remap=default"},
			[]string{"containerd <- --containerd=/run/containerd/containerd.sock", "userns-remap <- --userns-remap=default"}},
		{"nested object compared one level down", `{"proxies":{"http-proxy":"http://p:3128"}}`, []string{"--http-proxy=http://q:3128"},
			[]string{"http-proxy <- --http-proxy=http://q:3128"}},
		{"runtimes merge", `{"runtimes":{"crun":{"path":"/usr/bin/crun"}}}`, []string{"--add-runtime", "youki=/usr/bin/youki"}, nil},
		{"config-file is not a setting", `{"config-file":"x"}`, []string{"--config-file=/etc/docker/daemon.json"}, nil},
		{"migrated named option", `{"host-gateway-ips":["10.0.0.1"]}`, []string{"--host-gateway-ip=10.0.0.2"},
			[]string{"host-gateway-ips <- --host-gateway-ip=10.0.0.2"}},
		{"shorthand", `{"storage-driver":"overlay2","debug":true}`, []string{"-s", "vfs", "-D"},
			[]string{"storage-driver <- -s vfs", "debug <- -D"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse([]byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range Conflicts(doc, Flags(tt.args)) {
				got = append(got, c.Key+" <- "+c.Flag.Arg)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("conflicts (-want +got):\n%s", diff)
			}
		})
	}
}

// A --log-driver in the unit (through /etc/default/docker, as operators
// usually add it) and log_driver in the configuration: plan refuses, names
// the key and the flag, and nothing is written.
func TestPlanRefusesFlagConflict(t *testing.T) {
	env, dir := liveEnv(t)
	envFile := filepath.Join(dir, "default-docker")
	writeFile(t, envFile, `DOCKER_OPTS="--log-driver=journald"`+"\n")
	units := &fakeUnits{ue: debianUnit(envFile)}
	m := liveModule(t, dir, `log_driver = "json-file"`, units)
	path := filepath.Join(dir, "etc/docker/daemon.json")
	writeFile(t, path, `{"debug": true}`)

	_, err := m.Plan(context.Background(), env)
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("plan err = %v, want *ConflictError", err)
	}
	for _, want := range []string{`"log-driver"`, "--log-driver=journald", "docker.service", path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q, want it to name %s", err, want)
		}
	}
	if got := readFile(t, path); got != `{"debug": true}` {
		t.Errorf("file = %q", got)
	}
}

// The check looks at the whole candidate: an unmanaged key that clashes
// would stop dockerd just as well once the file is rewritten.
func TestPlanRefusesUnmanagedKeyConflict(t *testing.T) {
	env, dir := liveEnv(t)
	units := &fakeUnits{ue: debianUnit(filepath.Join(dir, "none"))}
	m := liveModule(t, dir, `userns_remap = "default"`, units)
	writeFile(t, filepath.Join(dir, "etc/docker/daemon.json"), `{"hosts": ["unix:///run/docker.sock"]}`)
	_, err := m.Plan(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), `"hosts" (docker.service starts dockerd with -H fd://)`) {
		t.Fatalf("plan err = %v", err)
	}
}

func TestPlanConfigFileMismatch(t *testing.T) {
	env, dir := liveEnv(t)
	units := &fakeUnits{ue: &UnitExec{ExecStart: [][]string{{"/usr/bin/dockerd", "--config-file", "/srv/docker.json"}}}}
	m := liveModule(t, dir, `userns_remap = "default"`, units)
	_, err := m.Plan(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "--config-file /srv/docker.json") {
		t.Fatalf("plan err = %v", err)
	}
}

func TestPlanWithoutUnit(t *testing.T) {
	for name, err := range map[string]error{"no unit": ErrNoUnit, "no bus": errNoBus} {
		t.Run(name, func(t *testing.T) {
			env, dir := liveEnv(t)
			units := &fakeUnits{err: err}
			m := liveModule(t, dir, `log_driver = "json-file"`, units)
			apply(t, m, env)
			if units.calls != 1 {
				t.Errorf("unit read %d times, want 1", units.calls)
			}
		})
	}
	env, dir := liveEnv(t)
	m := liveModule(t, dir, `log_driver = "json-file"`, &fakeUnits{err: errors.New("connection refused")})
	if _, err := m.Plan(context.Background(), env); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("D-Bus failure: plan err = %v", err)
	}
}

// Under --root nothing live is touched: no unit read, no dockerd.
func TestOfflineSkipsUnitAndDockerd(t *testing.T) {
	env := rootEnv(t)
	units := &fakeUnits{ue: debianUnit("/nonexistent", "--log-driver=journald")}
	b := mustDecode(t, `docker_daemon {
  log_driver = "json-file"
}`)
	m := New(b)
	m.Units = units
	bin := t.TempDir()
	m.Dockerd = writeFakeDockerd(t, bin, "Docker version 26.1.5, build a72d7cd", 1, "must not run")
	apply(t, m, env)
	if units.calls != 0 {
		t.Errorf("unit read %d times under --root", units.calls)
	}
	if _, err := os.Stat(filepath.Join(bin, "args")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dockerd --validate ran under --root: %v", err)
	}
}

// A converged file is not checked: nothing is written, so there is
// nothing to refuse (and no D-Bus round trip on a no-op run).
func TestNoChangeNoUnitRead(t *testing.T) {
	env, dir := liveEnv(t)
	units := &fakeUnits{ue: debianUnit(filepath.Join(dir, "none"))}
	m := liveModule(t, dir, `log_driver = "json-file"`, units)
	writeFile(t, filepath.Join(dir, "etc/docker/daemon.json"), `{"log-driver": "json-file"}`)
	if p := moduletest.Plan(t, m, env); !p.Empty() || units.calls != 0 {
		t.Errorf("plan = %v, unit reads = %d; want empty and none", p.Changes, units.calls)
	}
}
