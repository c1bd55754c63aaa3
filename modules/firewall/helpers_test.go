package firewall

import (
	"net/netip"
	"testing"

	"github.com/dockward/dockward/config"
)

// decodeHCL decodes a configuration holding one firewall block.
func decodeHCL(t testing.TB, src string) *Block {
	t.Helper()
	f, diags := config.Load("test.hcl", []byte(src), []config.Kind{Kind})
	if diags.HasErrors() {
		t.Fatalf("decode: %s", diags.Error())
	}
	for _, b := range f.Blocks {
		if fb, ok := b.(*Block); ok {
			return fb
		}
	}
	t.Fatalf("no firewall block in %s", src)
	return nil
}

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := config.ParsePrefix(s)
		if err != nil {
			panic(err)
		}
		out = append(out, p)
	}
	return out
}
