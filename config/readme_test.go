package config_test

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/dockward/dockward/config"
	"github.com/dockward/dockward/modules"
	"github.com/google/go-cmp/cmp"
)

// TestReadmeReferenceMatchesTheSchema keeps README.md's configuration
// reference and the decoders in step: every path the decoders accept is
// documented, and every documented path is accepted.
func TestReadmeReferenceMatchesTheSchema(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, ref, ok := strings.Cut(string(b), "## Configuration reference")
	if !ok {
		t.Fatal("README.md has no Configuration reference section")
	}
	ref, _, _ = strings.Cut(ref, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\|")
	var documented []string
	for _, m := range row.FindAllStringSubmatch(ref, -1) {
		documented = append(documented, m[1])
	}
	sort.Strings(documented)
	got := config.SchemaPaths(modules.Kinds)
	if diff := cmp.Diff(got, documented); diff != "" {
		t.Errorf("README reference (-schema +README):\n%s", diff)
	}
}
