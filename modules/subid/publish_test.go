package subid

import (
	"context"
	"github.com/dockward/dockward/agent/moduletest"
	"slices"
	"testing"

	"github.com/dockward/dockward/agent"
)

// Plan publishes the ranges its plan leads to, so that docker_daemon can
// tell where dockerd's data root will be before anything is written.
func TestPlanPublishesTheRangesItLeadsTo(t *testing.T) {
	tr := baseTree(t)
	tr.env.Facts = agent.NewFacts()
	m := newModule(t, dockremap())
	p := moduletest.Plan(t, m, tr.env)
	got, ok := tr.env.Facts.SubordinateIDs("dockremap")
	// alice has 100000+65536, UID 1001 has 231072+65536: the first range
	// free in both files is the gap between them.
	want := []agent.IDRange{{Start: 165536, Count: 65536}}
	if !ok || !got.Changed || got.Module != "subordinate_ids.dockremap" || !slices.Equal(got.UID, want) || !slices.Equal(got.GID, want) {
		t.Fatalf("published %+v (%v), want dockremap %v changed by subordinate_ids.dockremap", got, ok, want)
	}
	if !tr.env.Facts.ChangedBy("subordinate_ids.dockremap") {
		t.Error("ChangedBy = false")
	}

	if err := m.Apply(context.Background(), tr.env, p); err != nil {
		t.Fatal(err)
	}
	tr.env.Facts = agent.NewFacts()
	moduletest.Plan(t, m, tr.env)
	got, _ = tr.env.Facts.SubordinateIDs("dockremap")
	if got.Changed || !slices.Equal(got.UID, want) {
		t.Errorf("after apply: published %+v, want the same range, unchanged", got)
	}
}
