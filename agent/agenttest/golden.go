package agenttest

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files from the current output")

// Golden compares got with the golden file at path, or rewrites the file
// when the test runs with -update. Output holding a fmt error ("%!") fails
// either way.
func Golden(t testing.TB, path, got string) {
	t.Helper()
	if strings.Contains(got, "%!") {
		t.Errorf("formatting error in output:\n%s", got)
	}
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; -update rewrites it):\n%s", path, diff)
	}
}
