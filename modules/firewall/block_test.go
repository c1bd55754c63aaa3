package firewall

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/dockward/dockward/config"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"
)

func TestDecodeFull(t *testing.T) {
	b := decodeHCL(t, `
firewall {
  table      = "dw_test"
  log_prefix = "dockward: "
  network "bridge" {
    egress_allow {
      proto = "tcp"
      ports = [443, 80, 80]
      to    = ["0.0.0.0/0", "::/0"]
    }
    egress_allow {
      proto = "udp"
      ports = [53]
      to    = ["10.0.0.2"]
    }
    ingress_allow {
      ports = [8080]
      from  = ["10.0.0.0/8"]
    }
  }
  network "isolated-net" {
    internal = true
    create   = true
  }
  network "pinned" {
    bridge = "br-pinned"
    egress_allow {
      proto = "icmp"
      to    = ["192.0.2.0/24"]
    }
  }
}`)
	want := &Block{
		Table: "dw_test", LogPrefix: "dockward: ",
		Networks: []*Network{
			{Name: "bridge", Egress: []*Allow{
				{Proto: "tcp", Ports: []uint16{80, 443}, Addrs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}},
				{Proto: "udp", Ports: []uint16{53}, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}},
			}, Ingress: []*Allow{
				{Proto: "tcp", Ports: []uint16{8080}, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			}},
			{Name: "isolated-net", Internal: true, Create: true},
			{Name: "pinned", Bridge: "br-pinned", Egress: []*Allow{
				{Proto: "icmp", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
			}},
		},
	}
	if d := cmp.Diff(want, b, cmpopts.IgnoreTypes(hcl.Range{}), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("decoded block (-want +got):\n%s", d)
	}
	if b.ID() != "firewall" || New(b).ID() != "firewall" {
		t.Errorf("ID = %q", b.ID())
	}
}

func TestDecodeDefaults(t *testing.T) {
	b := decodeHCL(t, "firewall {}\n")
	if b.Table != DefaultTable || len(b.Networks) != 0 || b.LogPrefix != "" {
		t.Errorf("empty block decoded as %+v", b)
	}
}

// The embedded default configuration must decode, and give what docs/architecture.md
// promises: DNS, HTTP and HTTPS out of the default bridge, and an internal
// network created.
func TestDecodeEmbeddedDefault(t *testing.T) {
	f, diags := config.Decode("default.hcl", config.Default, []config.Kind{Kind})
	for _, d := range diags {
		if d.Severity == hcl.DiagError && strings.Contains(d.Subject.String(), "firewall") {
			t.Fatalf("default config: %s", d.Error())
		}
	}
	var b *Block
	for _, blk := range f.Blocks {
		if fb, ok := blk.(*Block); ok {
			b = fb
		}
	}
	if b == nil {
		t.Fatal("default config has no firewall block")
	}
	rs, err := Build(b, map[string]string{"bridge": "docker0", "isolated": "br-0123456789ab"})
	if err != nil {
		t.Fatal(err)
	}
	text := Render(rs)
	for _, want := range []string{`iifname "docker0" jump egress_bridge`, `iifname "br-0123456789ab" counter drop`, "elements = { 53, 80, 443 }"} {
		if !strings.Contains(text, want) {
			t.Errorf("default table lacks %q:\n%s", want, text)
		}
	}
}

// Every problem is reported, each at the range of what is wrong.
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // "line:col summary" of each diagnostic, in order
	}{
		{"table not an identifier", `firewall { table = "9lives" }`, []string{"1:20 Invalid table name"}},
		{"table too long", `firewall { table = "` + strings.Repeat("t", 65) + `" }`, []string{"1:20 Invalid table name"}},
		{"table of another tool", `firewall { table = "filter" }`, []string{"1:20 Invalid table name"}},
		{"unknown attribute", "firewall {\n  tabel = \"x\"\n}", []string{"2:3 Unsupported argument"}},
		{"bad log prefix", `firewall { log_prefix = "a\"b" }`, []string{"1:25 Invalid log prefix"}},
		{"network name", "firewall {\n  network \"-x\" {}\n}", []string{"2:11 Invalid network name"}},
		{"duplicate network", "firewall {\n  network \"a\" {}\n  network \"a\" {}\n}", []string{"3:11 Duplicate network block"}},
		{"interface name too long", "firewall {\n  network \"a\" {\n    bridge = \"br-0123456789abcdef\"\n  }\n}", []string{"3:14 Invalid bridge name"}},
		{"create with bridge", "firewall {\n  network \"a\" {\n    bridge = \"br-a\"\n    create = true\n  }\n}", []string{"4:5 Conflicting network settings"}},
		{"duplicate bridge", "firewall {\n  network \"a\" { bridge = \"br-a\" }\n  network \"b\" { bridge = \"br-a\" }\n}", []string{"3:3 Duplicate bridge"}},
		{"internal with egress", "firewall {\n  network \"a\" {\n    internal = true\n    egress_allow { to = [\"10.0.0.0/8\"] }\n  }\n}", []string{"4:5 Contradictory egress_allow"}},
		{"internal with ingress", "firewall {\n  network \"a\" {\n    internal = true\n    ingress_allow { from = [\"10.0.0.0/8\"] }\n  }\n}", []string{"4:5 Contradictory ingress_allow"}},
		{"unknown protocol", "firewall {\n  network \"a\" {\n    egress_allow {\n      proto = \"sctp\"\n      to = [\"10.0.0.0/8\"]\n    }\n  }\n}", []string{"4:15 Unknown protocol"}},
		{"port out of range", "firewall {\n  network \"a\" {\n    egress_allow {\n      ports = [80, 70000]\n      to = [\"10.0.0.0/8\"]\n    }\n  }\n}", []string{"4:20 Number out of range"}},
		{"port zero", "firewall {\n  network \"a\" {\n    egress_allow {\n      ports = [0]\n      to = [\"10.0.0.0/8\"]\n    }\n  }\n}", []string{"4:16 Number out of range"}},
		{"empty ports", "firewall {\n  network \"a\" {\n    egress_allow {\n      ports = []\n      to = [\"10.0.0.0/8\"]\n    }\n  }\n}", []string{"4:15 Empty port list"}},
		{"icmp with ports", "firewall {\n  network \"a\" {\n    egress_allow {\n      proto = \"icmp\"\n      ports = [1]\n      to = [\"10.0.0.0/8\"]\n    }\n  }\n}", []string{"5:7 Ports with icmp"}},
		{"invalid CIDR", "firewall {\n  network \"a\" {\n    egress_allow {\n      to = [\"10.0.0.0/8\", \"10.0.0.0/33\", \"10.1.2.3/8\"]\n    }\n  }\n}", []string{"4:27 Invalid address", "4:42 Invalid address"}},
		{"missing to", "firewall {\n  network \"a\" {\n    egress_allow {\n      ports = [80]\n    }\n  }\n}", []string{"3:18 Missing required argument"}},
		{"empty from", "firewall {\n  network \"a\" {\n    ingress_allow {\n      from = []\n    }\n  }\n}", []string{"4:14 Empty address list"}},
		{"unknown block", "firewall {\n  network \"a\" {\n    egres_allow {}\n  }\n}", []string{"3:5 Unsupported block type"}},
		{"several at once", "firewall {\n  table = \"1\"\n  network \"a\" {\n    egress_allow {\n      proto = \"gre\"\n      ports = [99999]\n      to = [\"nope\"]\n    }\n  }\n}",
			[]string{"2:11 Invalid table name", "5:15 Unknown protocol", "6:16 Number out of range", "7:13 Invalid address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := config.Decode("test.hcl", []byte(tt.src), []config.Kind{Kind})
			var got []string
			for _, d := range diags {
				if d.Severity != hcl.DiagError {
					continue
				}
				if d.Subject == nil {
					t.Errorf("diagnostic without range: %s", d.Error())
					continue
				}
				got = append(got, sprintPos(d.Subject.Start)+" "+d.Summary)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("diagnostics (-want +got):\n%s\nall: %s", d, diags.Error())
			}
		})
	}
}

func sprintPos(p hcl.Pos) string { return fmt.Sprintf("%d:%d", p.Line, p.Column) }

// The duplicate network error says where the first one is.
func TestDecodeDuplicateSaysWhere(t *testing.T) {
	_, diags := config.Decode("test.hcl", []byte("firewall {\n  network \"a\" {}\n  network \"a\" {}\n}"), []config.Kind{Kind})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "test.hcl:2,") {
		t.Errorf("want the first declaration's position in %s", diags.Error())
	}
}
