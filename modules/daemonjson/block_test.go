package daemonjson

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dockward/dockward/config"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

func decodeHCL(t testing.TB, src string) (*Block, hcl.Diagnostics) {
	t.Helper()
	f, diags := config.Decode("test.hcl", []byte(src), []config.Kind{Kind})
	if f == nil {
		return nil, diags
	}
	for _, b := range f.Blocks {
		if db, ok := b.(*Block); ok {
			return db, diags
		}
	}
	return nil, diags
}

func mustDecode(t testing.TB, src string) *Block {
	t.Helper()
	b, diags := decodeHCL(t, src)
	if diags.HasErrors() || b == nil {
		t.Fatalf("decode: %v", diags)
	}
	return b
}

// The example in docs/architecture.md.
const designExample = `
docker_daemon {
  path         = "/etc/docker/daemon.json"
  userns_remap = "default"
  log_driver   = "json-file"
  log_opts     = { max-size = "10m", max-file = 3 }
  settings = {
    "no-new-privileges" = true
    "live-restore"      = true
    "icc"               = false
    "userland-proxy"    = false
    "log-level"         = "info"
  }
  validate = true
}
`

func TestDecode(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		path     string
		validate bool
		managed  []string // key=compact JSON, in order
	}{
		{"design example", designExample, "/etc/docker/daemon.json", true, []string{
			`userns-remap="default"`, `log-driver="json-file"`, `log-opts={"max-size":"10m","max-file":"3"}`,
			`no-new-privileges=true`, `live-restore=true`, `icc=false`, `userland-proxy=false`,
			`log-level="info"`,
		}},
		{"empty block manages nothing", `docker_daemon {}`, DefaultPath, true, nil},
		{"written order, not attribute order", `docker_daemon {
  settings = { debug = true }
  log_driver = "local"
  validate = false
  path = "/srv/docker//daemon.json"
}`, "/srv/docker/daemon.json", false, []string{`debug=true`, `log-driver="local"`}},
		{"any JSON value in settings", `docker_daemon {
  settings = {
    "default-address-pools" = [{ base = "172.30.0.0/16", size = 24 }, { size = 26, base = "172.31.0.0/16" }]
    "labels"                = ["env=prod", "tier=<db>"]
    "max-concurrent-downloads" = 6
    "default-shm-size" = "64M"
    "ratio" = 0.5
    "big" = 1e30
    "features" = { buildkit = true }
    "log-opts" = { max-size = "1m" }
  }
}`, DefaultPath, true, []string{
			`default-address-pools=[{"base":"172.30.0.0/16","size":24},{"size":26,"base":"172.31.0.0/16"}]`,
			`labels=["env=prod","tier=<db>"]`, `max-concurrent-downloads=6`, `default-shm-size="64M"`,
			`ratio=0.5`, `big=1e+30`, `features={"buildkit":true}`, `log-opts={"max-size":"1m"}`,
		}},
		{"log_opts bools and fractions become strings", `docker_daemon {
  log_opts = { compress = true, "max-file" = 3, x = 1.5 }
}`, DefaultPath, true, []string{`log-opts={"compress":"true","max-file":"3","x":"1.5"}`}},
		{"settings naming a first-class key when its attribute is absent", `docker_daemon {
  settings = { "userns-remap" = "default" }
}`, DefaultPath, true, []string{`userns-remap="default"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustDecode(t, tt.src)
			if b.Path != tt.path || b.Validate != tt.validate {
				t.Errorf("path, validate = %q, %v; want %q, %v", b.Path, b.Validate, tt.path, tt.validate)
			}
			if diff := cmp.Diff(tt.managed, memberStrings(b.Managed)); diff != "" {
				t.Errorf("managed (-want +got):\n%s", diff)
			}
			if b.ID() != "docker_daemon" || New(b).ID() != "docker_daemon" {
				t.Errorf("ID = %q, module ID = %q", b.ID(), New(b).ID())
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // "line:col summary: detail substring", one per error, in order
	}{
		{"relative path", `docker_daemon {
  path = "daemon.json"
}`, []string{"2:10 Invalid path: absolute"}},
		{"wrong types", `docker_daemon {
  userns_remap = 1
  validate = "yes"
  log_driver = ""
}`, []string{"2:18 Incorrect attribute value type: must be a string", "3:14 Incorrect attribute value type: true or false", "4:16 Invalid value: leave the attribute out"}},
		{"unknown attribute", `docker_daemon {
  log_drivr = "local"
}`, []string{`2:3 Unsupported argument: Did you mean "log_driver"?`}},
		{"labels not allowed", `docker_daemon "x" {}`, []string{"1:15 Extraneous label"}},
		{"log_opts not a map", `docker_daemon {
  log_opts = ["max-size"]
}`, []string{"2:14 Incorrect value type: must be a map"}},
		{"log_opts value a list", `docker_daemon {
  log_opts = { max-size = ["1m"], max-file = null }
}`, []string{"2:27 Invalid log option: max-size must be a string, number or bool", "2:46 Invalid log option: max-file must have a value"}},
		{"settings collide with attributes", `docker_daemon {
  userns_remap = "default"
  log_opts = { max-size = "10m" }
  settings = {
    "userns-remap" = "dockremap"
    "log-opts"     = {}
    "icc"          = false
  }
}`, []string{`5:5 Conflicting daemon.json key: "userns-remap" is already set by userns_remap at test.hcl:2,3-15`,
			`6:5 Conflicting daemon.json key: "log-opts" is already set by log_opts at test.hcl:3,3-11`}},
		{"settings not a map", `docker_daemon {
  settings = "icc=false"
}`, []string{"2:14 Incorrect attribute value type: must be a map"}},
		{"null values", `docker_daemon {
  settings = {
    icc = null
    "dns" = ["1.1.1.1", null]
  }
}`, []string{"3:11 Invalid value: null", "4:25 Invalid value: null"}},
		{"log-opts in settings must be strings", `docker_daemon {
  settings = { "log-opts" = { max-file = 3 } }
}`, []string{`2:42 Invalid log option: write max-file = "3", or use the log_opts attribute`}},
		{"duplicate settings key", `docker_daemon {
  settings = {
    icc = false
    icc = true
  }
}`, []string{`4:5 Duplicate key: "icc" was already given at test.hcl:3,5-8`}},
		{"duplicate nested and log_opts keys", `docker_daemon {
  log_opts = { max-file = 3, max-file = 4 }
  settings = { features = { buildkit = true, buildkit = false } }
}`, []string{"2:30 Duplicate key", "3:46 Duplicate key"}},
		{"empty key", `docker_daemon {
  settings = { "" = 1 }
}`, []string{"2:16 Invalid key: must not be empty"}},
		{"reference", `docker_daemon {
  userns_remap = var.user
}`, []string{"2:18 Variables not allowed"}},
		{"every error at once", `docker_daemon {
  path = "x"
  validate = 1
  settings = { a = null }
}`, []string{"2:10 Invalid path", "3:14 Incorrect attribute value type", "4:20 Invalid value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := decodeHCL(t, tt.src)
			var got []string
			for _, d := range diags {
				if d.Severity != hcl.DiagError {
					continue
				}
				got = append(got, fmt.Sprintf("%d:%d %s: %s", d.Subject.Start.Line, d.Subject.Start.Column, d.Summary, d.Detail))
			}
			sortStrings(got)
			want := append([]string(nil), tt.want...)
			sortStrings(want)
			if len(got) != len(want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
			}
			for i := range want {
				pos, rest, _ := strings.Cut(want[i], " ")
				if !strings.HasPrefix(got[i], pos+" ") || !containsAll(got[i], strings.Split(rest, ": ")) {
					t.Errorf("error %d = %q, want %q", i, got[i], want[i])
				}
			}
		})
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func sortStrings(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

func TestDecodeWarnsOnUnderscoreKey(t *testing.T) {
	b, diags := decodeHCL(t, `docker_daemon {
  settings = { live_restore = true }
}`)
	if diags.HasErrors() || b == nil {
		t.Fatalf("decode: %v", diags)
	}
	if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || !strings.Contains(diags[0].Detail, `"live-restore"`) {
		t.Errorf("diags = %v, want one warning suggesting live-restore", diags)
	}
}

func BenchmarkDecode(b *testing.B) {
	for b.Loop() {
		if _, diags := decodeHCL(b, designExample); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}
