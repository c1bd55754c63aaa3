package subid

import (
	"strings"
	"testing"

	"github.com/dockward/dockward/config"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

func decodeHCL(t *testing.T, src string) (*Block, hcl.Diagnostics) {
	t.Helper()
	f, diags := config.Decode("test.hcl", []byte(src), []config.Kind{Kind})
	if f == nil || len(f.Blocks) == 0 {
		return nil, diags
	}
	return f.Blocks[0].(*Block), diags
}

func TestDecode(t *testing.T) {
	b, diags := decodeHCL(t, `subordinate_ids "dockremap" {}`)
	if diags.HasErrors() || len(diags) != 0 {
		t.Fatalf("diags: %v", diags)
	}
	want := &Block{User: "dockremap", Count: 65536, CreateUser: true}
	if diff := cmp.Diff(want, b, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Range" }, cmp.Ignore())); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if b.ID() != "subordinate_ids.dockremap" || b.DefRange().Start.Line != 1 {
		t.Errorf("ID %q, DefRange %v", b.ID(), b.DefRange())
	}
	if id := NewModule(b).ID(); id != "subordinate_ids.dockremap" {
		t.Errorf("NewModule(b).ID() = %q", id)
	}

	b, diags = decodeHCL(t, `subordinate_ids "podman" {
  count       = 131072
  start       = 300000
  create_user = false
}`)
	if len(diags) != 0 {
		t.Fatalf("diags: %v", diags)
	}
	if b.Count != 131072 || b.Start != 300000 || b.CreateUser {
		t.Errorf("decoded %+v", b)
	}
}

// TestDecodeErrors checks that every problem is reported, each at the range
// of what is wrong.
func TestDecodeErrors(t *testing.T) {
	type diag struct {
		Sev     hcl.DiagnosticSeverity
		Summary string
		Line    int
		Col     int
		Detail  string // part of
	}
	tests := []struct {
		name string
		src  string
		want []diag
	}{
		{"bad user name", `subordinate_ids "Dock Remap" {}`,
			[]diag{{hcl.DiagError, "Invalid user name", 1, 17, "not a user name"}}},
		{"count zero", "subordinate_ids \"d\" {\n  count = 0\n}",
			[]diag{{hcl.DiagError, "Number out of range", 2, 11, "between 1 and 2147483648"}}},
		{"count too large", "subordinate_ids \"d\" {\n  count = 4294967296\n}",
			[]diag{{hcl.DiagError, "Number out of range", 2, 11, ""}}},
		{"count not a number", "subordinate_ids \"d\" {\n  count = \"lots\"\n}",
			[]diag{{hcl.DiagError, "Incorrect value type", 2, 11, ""}}},
		{"count fractional", "subordinate_ids \"d\" {\n  count = 1.5\n}",
			[]diag{{hcl.DiagError, "Invalid number", 2, 11, ""}}},
		{"start zero", "subordinate_ids \"d\" {\n  start = 0\n}",
			[]diag{{hcl.DiagError, "Number out of range", 2, 11, ""}}},
		{"start plus count beyond 2^32-1", "subordinate_ids \"d\" {\n  count = 65536\n  start = 4294967000\n}",
			[]diag{{hcl.DiagError, "Range beyond the ID space", 3, 11, "4295032536"}}},
		{"create_user not bool", "subordinate_ids \"d\" {\n  create_user = \"yes\"\n}",
			[]diag{{hcl.DiagError, "Incorrect attribute value type", 2, 17, "true or false"}}},
		{"misspelt attribute", "subordinate_ids \"d\" {\n  cont = 65536\n}",
			[]diag{{hcl.DiagError, "Unsupported argument", 2, 3, `Did you mean "count"?`}}},
		{"nested block", "subordinate_ids \"d\" {\n  range {}\n}",
			[]diag{{hcl.DiagError, "Unsupported block type", 2, 3, ""}}},
		{"small count warns", "subordinate_ids \"d\" {\n  count = 1000\n}",
			[]diag{{hcl.DiagWarning, "Small subordinate ID range", 2, 11, "65534"}}},
		{"low start warns", "subordinate_ids \"d\" {\n  start = 1000\n}",
			[]diag{{hcl.DiagWarning, "Subordinate IDs among ordinary IDs", 2, 11, ""}}},
		{"everything at once", "subordinate_ids \"9x\" {\n  count = -1\n  start = \"a\"\n  create_user = 1\n  extra = 1\n}",
			[]diag{
				{hcl.DiagError, "Invalid user name", 1, 17, ""},
				{hcl.DiagError, "Unsupported argument", 5, 3, ""},
				{hcl.DiagError, "Number out of range", 2, 11, ""},
				{hcl.DiagError, "Incorrect value type", 3, 11, ""},
				{hcl.DiagError, "Incorrect attribute value type", 4, 17, ""},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := decodeHCL(t, tt.src)
			got := map[string]diag{}
			for _, d := range diags {
				got[d.Summary] = diag{d.Severity, d.Summary, d.Subject.Start.Line, d.Subject.Start.Column, ""}
				for _, w := range tt.want {
					if w.Summary == d.Summary && !strings.Contains(d.Detail, w.Detail) {
						t.Errorf("%s: detail %q does not contain %q", d.Summary, d.Detail, w.Detail)
					}
				}
			}
			if len(diags) != len(tt.want) {
				t.Errorf("%d diagnostics, want %d: %v", len(diags), len(tt.want), diags)
			}
			for _, w := range tt.want {
				w.Detail = ""
				if got[w.Summary] != w {
					t.Errorf("want %+v, got %+v", w, got[w.Summary])
				}
			}
		})
	}
}
