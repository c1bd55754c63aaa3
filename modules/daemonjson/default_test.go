package daemonjson

import (
	"testing"

	"github.com/dockward/dockward/config"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The embedded default's docker_daemon block decodes without diagnostics
// and manages what the example in docs/architecture.md manages.
func TestEmbeddedDefault(t *testing.T) {
	f, diags := hclsyntax.ParseConfig(config.Default, config.DefaultFilename, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	content, _, _ := f.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: Kind.Type}}})
	if len(content.Blocks) != 1 {
		t.Fatalf("default has %d docker_daemon blocks, want 1", len(content.Blocks))
	}
	blk, diags := Kind.Decode(content.Blocks[0])
	if len(diags) != 0 {
		t.Fatal(diags)
	}
	want := mustDecode(t, designExample)
	got := blk.(*Block)
	if got.Path != want.Path || got.Validate != want.Validate {
		t.Errorf("path, validate = %q, %v", got.Path, got.Validate)
	}
	if diff := cmp.Diff(memberStrings(want.Managed), memberStrings(got.Managed)); diff != "" {
		t.Errorf("default manages (-design +default):\n%s", diff)
	}
}
