package config_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent/agenttest"
	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules"
	"github.com/dockward/dockward/modules/daemonjson"
	"github.com/dockward/dockward/modules/firewall"
	"github.com/google/go-cmp/cmp"
)

func parts(files ...string) []config.Part {
	var ps []config.Part
	for i, src := range files {
		name := "main.hcl"
		if i > 0 {
			name = fmt.Sprintf("conf.d/%d0-part.hcl", i)
		}
		ps = append(ps, config.Part{Filename: name, Bytes: []byte(src)})
	}
	return ps
}

func managed(t *testing.T, f *config.File) []string {
	t.Helper()
	b, ok := f.Block("docker_daemon").(*daemonjson.Block)
	if !ok {
		t.Fatalf("no docker_daemon block")
	}
	var out []string
	for _, m := range b.Managed {
		out = append(out, m.Key+"="+string(m.Value))
	}
	return out
}

func networks(t *testing.T, f *config.File) []string {
	t.Helper()
	b, ok := f.Block("firewall").(*firewall.Block)
	if !ok {
		t.Fatalf("no firewall block")
	}
	var out []string
	for _, n := range b.Networks {
		out = append(out, n.Name)
	}
	return out
}

// TestDropInMergeRules: what merges across files and what is an error
// naming both places.
func TestDropInMergeRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		// check runs on a valid result; errs are the errors expected
		// instead, each as |-separated parts: where (file:line,col), the
		// summary, and the detail naming the other place.
		check func(t *testing.T, f *config.File)
		errs  []string
	}{{
		name: "settings merge key by key, a later file winning",
		files: []string{
			"docker_daemon {\n  settings = { \"live-restore\" = true, debug = false }\n}\n",
			"docker_daemon {\n  settings = { debug = true }\n}\n",
			"docker_daemon {\n  settings = { \"log-level\" = \"warn\" }\n}\n",
		},
		check: func(t *testing.T, f *config.File) {
			want := []string{"live-restore=true", "debug=true", "log-level=\"warn\""}
			if d := cmp.Diff(want, managed(t, f)); d != "" {
				t.Errorf("managed keys (-want +got):\n%s", d)
			}
		},
	}, {
		name: "a drop-in's docker_daemon may set what the main file leaves out",
		files: []string{
			"docker_daemon {\n  settings = { debug = false }\n}\n",
			"docker_daemon {\n  log_driver = \"journald\"\n}\n",
		},
		check: func(t *testing.T, f *config.File) {
			// Both, in an order daemonjson chooses by byte offset (see README).
			want := []string{"debug=false", "log-driver=\"journald\""}
			got := managed(t, f)
			sort.Strings(got)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("managed keys (-want +got):\n%s", d)
			}
		},
	}, {
		name: "another docker_daemon attribute set twice names both places",
		files: []string{
			"docker_daemon {\n  path = \"/etc/docker/daemon.json\"\n}\n",
			"docker_daemon {\n\n  path = \"/srv/daemon.json\"\n}\n",
		},
		errs: []string{"conf.d/10-part.hcl:3,3|Duplicate argument|Argument \"path\" was already set at main.hcl:2,3"},
	}, {
		name: "a settings value that is not a literal map cannot merge",
		files: []string{
			"docker_daemon {\n  settings = { debug = false }\n}\n",
			"docker_daemon {\n  settings = merge({}, {})\n}\n",
		},
		errs: []string{"conf.d/10-part.hcl:2,14|Map cannot be merged"},
	}, {
		name: "firewall networks add up",
		files: []string{
			"firewall {\n  network \"bridge\" {\n  }\n}\n",
			"firewall {\n  network \"isolated\" {\n    internal = true\n    create = true\n  }\n}\n",
		},
		check: func(t *testing.T, f *config.File) {
			if d := cmp.Diff([]string{"bridge", "isolated"}, networks(t, f)); d != "" {
				t.Errorf("networks (-want +got):\n%s", d)
			}
		},
	}, {
		name: "the same network in two files names both places",
		files: []string{
			"firewall {\n  network \"bridge\" {\n  }\n}\n",
			"firewall {\n  network \"bridge\" {\n  }\n}\n",
		},
		errs: []string{"conf.d/10-part.hcl:2,11|Duplicate network block|network \"bridge\" was already declared at main.hcl:2,3"},
	}, {
		name: "firewall table set twice names both places",
		files: []string{
			"firewall {\n  table = \"a\"\n}\n",
			"firewall {\n  table = \"b\"\n}\n",
		},
		errs: []string{"conf.d/10-part.hcl:2,3|Duplicate argument|Argument \"table\" was already set at main.hcl:2,3"},
	}, {
		name: "other blocks twice across files name both places",
		files: []string{
			"subordinate_ids \"dockremap\" {\n  count = 65536\n}\n",
			"\nsubordinate_ids \"dockremap\" {\n  count = 65536\n}\n",
		},
		errs: []string{"conf.d/10-part.hcl:2,1|Duplicate subordinate_ids block|subordinate_ids.dockremap was already declared at main.hcl:1,1"},
	}, {
		name:  "the agent block twice names both places",
		files: []string{"agent {\n}\n", "agent {\n}\n"},
		errs:  []string{"conf.d/10-part.hcl:1,1|Duplicate agent block|agent was already declared at main.hcl:1,1"},
	}, {
		name: "within one drop-in a mergeable block twice is still an error",
		files: []string{
			"",
			"firewall {\n}\nfirewall {\n}\n",
		},
		errs: []string{"conf.d/10-part.hcl:3,1|Duplicate firewall block|firewall was already declared at conf.d/10-part.hcl:1,1"},
	}, {
		name: "references resolve across files",
		files: []string{
			"docker_daemon {\n}\n",
			"service \"docker.service\" {\n  restart_on = [docker_daemon]\n}\n",
		},
		check: func(t *testing.T, f *config.File) {
			if f.Block("service.docker.service") == nil {
				t.Error("no service block")
			}
		},
	}, {
		name:  "a syntax error in a drop-in names it",
		files: []string{"docker_daemon {\n}\n", "docker_daemon {\n"},
		errs:  []string{"conf.d/10-part.hcl:1,15|Unclosed configuration block"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f, diags := config.DecodeParts(parts(tc.files...), modules.Kinds)
			if tc.errs == nil {
				if diags.HasErrors() {
					t.Fatalf("unexpected errors: %s", diags.Error())
				}
				tc.check(t, f)
				return
			}
			var got []string
			for _, d := range diags {
				got = append(got, d.Error())
			}
			if len(got) != len(tc.errs) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(tc.errs), strings.Join(got, "\n"))
			}
			for i, want := range tc.errs {
				parts := strings.Split(want, "|")
				ok := strings.HasPrefix(got[i], parts[0])
				for _, p := range parts[1:] {
					ok = ok && strings.Contains(got[i], p)
				}
				if !ok {
					t.Errorf("diagnostic %d:\n got %s\nwant %s", i, got[i], want)
				}
			}
		})
	}
}

// TestDropInDiagnosticsGolden: errors across files, rendered with the
// source of each file.
func TestDropInDiagnosticsGolden(t *testing.T) {
	src, err := config.Read("testdata/dropin/dockward.hcl", "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range src.Parts() {
		names = append(names, p.Filename)
	}
	// Lexical order; the backup, the packaging leftover and the hidden
	// file are not read.
	want := []string{"testdata/dropin/dockward.hcl", "testdata/dropin/conf.d/10-site.hcl", "testdata/dropin/conf.d/20-role.hcl"}
	if d := cmp.Diff(want, names); d != "" {
		t.Fatalf("files read (-want +got):\n%s", d)
	}
	f, diags := config.DecodeParts(src.Parts(), modules.Kinds)
	var text bytes.Buffer
	if err := config.WriteDiagnostics(&text, f.Files, diags, false); err != nil {
		t.Fatal(err)
	}
	agenttest.Golden(t, "testdata/dropin.text.golden", text.String())
}

func writeConf(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func TestReadDropIns(t *testing.T) {
	t.Run("lexical order, only *.hcl regular files", func(t *testing.T) {
		dir := t.TempDir()
		main := filepath.Join(dir, "dockward.hcl")
		writeConf(t, main, "", 0o600)
		for _, n := range []string{"2-b.hcl", "10-a.hcl", "a.hcl.dpkg-old", "a.hcl~", ".a.hcl", "notes.txt", ".hcl"} {
			writeConf(t, filepath.Join(dir, "conf.d", n), "", 0o600)
		}
		src, err := config.Read(main, "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range src.DropIns {
			got = append(got, filepath.Base(p.Filename))
		}
		if d := cmp.Diff([]string{"10-a.hcl", "2-b.hcl"}, got); d != "" {
			t.Fatalf("drop-ins (-want +got):\n%s", d)
		}
	})
	t.Run("a group-writable drop-in is refused", func(t *testing.T) {
		dir := t.TempDir()
		main := filepath.Join(dir, "dockward.hcl")
		writeConf(t, main, "", 0o600)
		bad := filepath.Join(dir, "conf.d", "50-x.hcl")
		writeConf(t, bad, "", 0o664)
		_, err := config.Read(main, "")
		if err == nil || !strings.Contains(err.Error(), bad+": refusing a configuration that is group- or world-writable") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a world-writable conf.d is refused", func(t *testing.T) {
		dir := t.TempDir()
		main := filepath.Join(dir, "dockward.hcl")
		writeConf(t, main, "", 0o600)
		writeConf(t, filepath.Join(dir, "conf.d", "50-x.hcl"), "", 0o600)
		if err := os.Chmod(filepath.Join(dir, "conf.d"), 0o777); err != nil {
			t.Fatal(err)
		}
		_, err := config.Read(main, "")
		if err == nil || !strings.Contains(err.Error(), "conf.d: refusing") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a directory named *.hcl is refused", func(t *testing.T) {
		dir := t.TempDir()
		main := filepath.Join(dir, "dockward.hcl")
		writeConf(t, main, "", 0o600)
		if err := os.MkdirAll(filepath.Join(dir, "conf.d", "x.hcl"), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := config.Read(main, "")
		if err == nil || !strings.Contains(err.Error(), "x.hcl: not a regular file") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("too many drop-ins", func(t *testing.T) {
		dir := t.TempDir()
		main := filepath.Join(dir, "dockward.hcl")
		writeConf(t, main, "", 0o600)
		for i := 0; i <= config.MaxDropIns; i++ {
			writeConf(t, filepath.Join(dir, "conf.d", fmt.Sprintf("%04d.hcl", i)), "", 0o600)
		}
		_, err := config.Read(main, "")
		if err == nil || !strings.Contains(err.Error(), "more than the 256 read") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("drop-ins merge onto the embedded default", func(t *testing.T) {
		root := t.TempDir()
		writeConf(t, filepath.Join(root, "etc/dockward/conf.d/10-x.hcl"), "docker_daemon {\n  settings = { \"log-level\" = \"warn\" }\n}\n", 0o600)
		src, err := config.Read("", root)
		if err != nil {
			t.Fatal(err)
		}
		if !src.Embedded || len(src.DropIns) != 1 {
			t.Fatalf("got %+v", src)
		}
		f, diags := config.LoadSource(src, modules.Kinds)
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		got := strings.Join(managed(t, f), " ")
		if !strings.Contains(got, `log-level="warn"`) || strings.Contains(got, `"info"`) || !strings.Contains(got, "live-restore=true") {
			t.Fatalf("log-level not overridden: %v", got)
		}
	})
	t.Run("a too large drop-in is refused at its name", func(t *testing.T) {
		big := strings.Repeat("# x\n", config.MaxFileSize/4+1)
		_, diags := config.DecodeParts(parts("", big), modules.Kinds)
		if !diags.HasErrors() || diags[0].Subject == nil || diags[0].Subject.Filename != "conf.d/10-part.hcl" {
			t.Fatalf("got %v", diags)
		}
	})
}
