package daemonjson

import (
	"context"
	"errors"
	"fmt"
	"github.com/dockward/dockward/agent/moduletest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeFakeDockerd writes a script that answers --version with version and
// --validate by recording its arguments and the candidate it was given
// (beside itself, in args and candidate) and exiting with code after
// printing msg on stderr. The real dockerd is exercised in the sandbox
// machine by the acceptance scenarios; this fake pins down what we run.
func writeFakeDockerd(t testing.TB, dir, version string, code int, msg string) string {
	t.Helper()
	p := filepath.Join(dir, "dockerd")
	script := fmt.Sprintf(`#!/bin/sh
if [ "$1" = "--version" ]; then echo %q; exit 0; fi
printf '%%s\n' "$@" > %q
prev=""
for a in "$@"; do
  if [ "$prev" = "--config-file" ]; then cat "$a" > %q; fi
  prev="$a"
done
if [ %d -ne 0 ]; then echo %q >&2; fi
exit %d
`, version, filepath.Join(dir, "args"), filepath.Join(dir, "candidate"), code, msg, code)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in           string
		major, minor int
		ok           bool
	}{
		{"Docker version 26.1.5, build a72d7cd\n", 26, 1, true},
		{"Docker version 20.10.24+dfsg1, build 297e128", 20, 10, true},
		{"Docker version 28.0.0-rc.1, build abc", 28, 0, true},
		{"dockerd: command not found", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		major, minor, ok := ParseVersion(tt.in)
		if major != tt.major || minor != tt.minor || ok != tt.ok {
			t.Errorf("ParseVersion(%q) = %d, %d, %v; want %d, %d, %v", tt.in, major, minor, ok, tt.major, tt.minor, tt.ok)
		}
	}
}

func TestApplyValidatesWithUnitFlags(t *testing.T) {
	env, dir := liveEnv(t)
	bin := t.TempDir()
	envFile := filepath.Join(dir, "default-docker")
	m := liveModule(t, dir, `userns_remap = "default"`, &fakeUnits{ue: debianUnit(envFile)})
	m.Dockerd = writeFakeDockerd(t, bin, "Docker version 26.1.5, build a72d7cd", 0, "")
	// --config-file naming the managed file passes the pre-flight and is
	// replaced by the candidate's for --validate.
	writeFile(t, envFile, "DOCKER_OPTS='--debug --config-file "+m.cfg.Path+"'\n")

	p := apply(t, m, env)
	args := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(bin, "args"))), "\n")
	if len(args) < 3 || args[0] != "--validate" || args[1] != "--config-file" {
		t.Fatalf("dockerd args = %q", args)
	}
	if dir := filepath.Dir(args[2]); dir != stateDir(env.StateDir) {
		t.Errorf("candidate in %s, want the state dir %s", dir, stateDir(env.StateDir))
	}
	if diff := cmp.Diff([]string{"-H", "fd://", "--containerd=/run/containerd/containerd.sock", "--debug"}, args[3:]); diff != "" {
		t.Errorf("unit flags passed to dockerd (-want +got):\n%s", diff)
	}
	if got, want := readFile(t, filepath.Join(bin, "candidate")), readFile(t, m.cfg.Path); got != want {
		t.Errorf("validated candidate %q, wrote %q", got, want)
	}
	if _, err := os.Stat(args[2]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("candidate temp file left behind: %v", err)
	}
	if p.Empty() {
		t.Error("plan was empty")
	}
}

func TestApplyValidateRejects(t *testing.T) {
	env, dir := liveEnv(t)
	bin := t.TempDir()
	m := liveModule(t, dir, `settings = { "storage-driver" = "nonsense" }`, &fakeUnits{err: ErrNoUnit})
	m.Dockerd = writeFakeDockerd(t, bin, "Docker version 26.1.5, build a72d7cd", 1,
		"unable to configure the Docker daemon with file CANDIDATE: invalid storage driver")
	path := filepath.Join(dir, "etc/docker/daemon.json")
	const old = `{"debug": true}`
	writeFile(t, path, old)

	p := moduletest.Plan(t, m, env)
	err := m.Apply(context.Background(), env, p)
	var ve *ValidateError
	if !errors.As(err, &ve) {
		t.Fatalf("apply err = %v, want *ValidateError", err)
	}
	if !strings.Contains(err.Error(), "invalid storage driver") || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %q, want dockerd's message and the file", err)
	}
	if got := readFile(t, path); got != old {
		t.Errorf("file = %q, want it untouched", got)
	}
	if names := dirNames(t, stateDir(env.StateDir)); len(names) != 0 {
		t.Errorf("state dir holds %v after a refused candidate, want nothing", names)
	}
}

// dockerd names the file it was given; the error names the real file.
func TestValidateErrorNamesTheFile(t *testing.T) {
	bin := t.TempDir()
	p := filepath.Join(bin, "dockerd")
	script := "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Docker version 27.0.1, build x'; exit 0; fi\n" +
		"echo \"unable to configure the Docker daemon with file $3: the following directives are specified both as a flag and in the configuration file: log-driver: (from flag: journald, from file: json-file)\" >&2\nexit 1\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	v := &validator{bin: p}
	_, err := v.validate(context.Background(), t.TempDir(), "/etc/docker/daemon.json", []byte("{}\n"), []string{"--log-driver=journald"})
	want := "dockerd --validate rejected the new /etc/docker/daemon.json, nothing written: unable to configure the Docker daemon with file /etc/docker/daemon.json (candidate): the following directives"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v\nwant prefix %s", err, want)
	}
}

func TestValidateSkipped(t *testing.T) {
	tests := []struct {
		name    string
		dockerd func(t *testing.T, bin string) string
		body    string
		reason  string
	}{
		{"old dockerd", func(t *testing.T, bin string) string {
			return writeFakeDockerd(t, bin, "Docker version 20.10.24+dfsg1, build 297e128", 1, "must not run")
		}, "", "has no --validate"},
		{"unreadable version", func(t *testing.T, bin string) string {
			return writeFakeDockerd(t, bin, "something else", 1, "must not run")
		}, "", "cannot read the version"},
		{"no dockerd", func(t *testing.T, bin string) string { return filepath.Join(bin, "missing", "dockerd") }, "", "not found"},
		{"validate = false", func(t *testing.T, bin string) string {
			return writeFakeDockerd(t, bin, "Docker version 26.1.5, build a72d7cd", 1, "must not run")
		}, "validate = false", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, dir := liveEnv(t)
			bin := t.TempDir()
			m := liveModule(t, dir, tt.body+"\nlog_driver = \"local\"", &fakeUnits{err: ErrNoUnit})
			m.Dockerd = tt.dockerd(t, bin)
			apply(t, m, env)
			if _, err := os.Stat(filepath.Join(bin, "args")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("dockerd --validate ran: %v", err)
			}
			if tt.reason != "" {
				v := &validator{bin: m.Dockerd}
				if skipped, err := v.validate(context.Background(), t.TempDir(), "/x", nil, nil); err != nil || !strings.Contains(skipped, tt.reason) {
					t.Errorf("skipped = %q, %v; want %q", skipped, err, tt.reason)
				}
			}
			if got := readFile(t, m.cfg.Path); !strings.Contains(got, `"log-driver": "local"`) {
				t.Errorf("file = %q", got)
			}
		})
	}
}

// The resident agent corrects the same drift with the same candidate again
// and again: one binary's verdict is remembered, a new binary is asked anew.
func TestValidatorRemembersVerdictsPerBinary(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	bin := filepath.Join(dir, "dockerd")
	writeBin := func(version string) {
		script := fmt.Sprintf("#!/bin/sh\necho \"$1\" >> %q\nif [ \"$1\" = --version ]; then echo %q; fi\nexit 0\n", calls, version)
		tmp := bin + ".new"
		if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, bin); err != nil { // a package upgrade: a new inode
			t.Fatal(err)
		}
	}
	writeBin("Docker version 26.1.5, build a")
	v := &validator{bin: bin}
	ctx := context.Background()
	run := func(candidate string) {
		t.Helper()
		if skipped, err := v.validate(ctx, filepath.Join(dir, "state"), "/etc/docker/daemon.json", []byte(candidate), []string{"--debug"}); err != nil || skipped != "" {
			t.Fatalf("validate: %q %v", skipped, err)
		}
	}
	count := func() string {
		b, _ := os.ReadFile(calls)
		return strings.Join(strings.Fields(string(b)), " ")
	}
	run(`{"a":1}`)
	run(`{"a":1}`)
	if got := count(); got != "--version --validate" {
		t.Fatalf("calls after the same candidate twice: %q", got)
	}
	run(`{"a":2}`)
	if got := count(); got != "--version --validate --validate" {
		t.Fatalf("calls after a new candidate: %q", got)
	}
	writeBin("Docker version 27.0.1, build b")
	run(`{"a":1}`)
	if got := count(); got != "--version --validate --validate --version --validate" {
		t.Fatalf("calls after an upgrade: %q", got)
	}
}
