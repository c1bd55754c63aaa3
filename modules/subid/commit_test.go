package subid

import (
	"context"
	"github.com/dockward/dockward/agent/moduletest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// subid keeps its last-known-good copies on disk, as docker_daemon does,
// and a run in which nothing failed commits them: a later rollback goes
// back to ranges the host was verified to run with, not to a bad hand edit
// that the rolled-back apply had corrected.
func TestVerifiedLastKnownGoodSurvivesDrift(t *testing.T) {
	tr := baseTree(t)
	m := newModule(t, dockremap())
	m.UserAdd, _ = fakeTool(t, addsUser)
	m.UserDel, _ = fakeTool(t, removeUser)
	ctx := context.Background()
	if err := m.Apply(ctx, tr.env, moduletest.Plan(t, m, tr.env)); err != nil {
		t.Fatal(err)
	}
	good := tr.read(t, "etc/subuid")
	if err := m.Commit(ctx, tr.env); err != nil {
		t.Fatal(err)
	}
	lkg := filepath.Join(tr.env.StateDir, "subordinate_ids/dockremap")
	for _, f := range []string{"subuid.verified", "subgid.verified"} {
		if _, err := os.Stat(filepath.Join(lkg, f)); err != nil {
			t.Fatalf("no %s after Commit: %v", f, err)
		}
	}
	// A hand edit takes the range away; apply puts it back, then fails
	// later in the run and is rolled back.
	bad := strings.Replace(good, "dockremap:", "someone:", 1)
	if err := os.WriteFile(filepath.Join(tr.root, "etc/subuid"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(ctx, tr.env, moduletest.Plan(t, m, tr.env)); err != nil {
		t.Fatal(err)
	}
	if err := m.Rollback(ctx, tr.env); err != nil {
		t.Fatal(err)
	}
	if got := tr.read(t, "etc/subuid"); got != good {
		t.Errorf("rolled back to\n%q\nwant the verified\n%q", got, good)
	}
}

// Committing what is already committed writes nothing.
func TestCommitOfUnchangedFilesWritesNothing(t *testing.T) {
	tr := baseTree(t)
	m := newModule(t, dockremap())
	m.UserAdd, _ = fakeTool(t, addsUser)
	ctx := context.Background()
	if err := m.Apply(ctx, tr.env, moduletest.Plan(t, m, tr.env)); err != nil {
		t.Fatal(err)
	}
	if err := m.Commit(ctx, tr.env); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(tr.env.StateDir, "subordinate_ids/dockremap/subuid.verified")
	before, err := os.Stat(marker)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Commit(ctx, tr.env); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(marker)
	if err != nil || !os.SameFile(before, after) {
		t.Errorf("second Commit rewrote the marker (%v)", err)
	}
}
