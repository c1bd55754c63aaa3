package subid

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOverlaps(t *testing.T) {
	tests := []struct {
		a, b Range
		want bool
	}{
		{Range{100000, 65536}, Range{165536, 65536}, false}, // adjacent
		{Range{100000, 65536}, Range{165535, 1}, true},      // last ID shared
		{Range{100000, 65536}, Range{99999, 1}, false},      // just below
		{Range{100000, 65536}, Range{99999, 2}, true},       // first ID shared
		{Range{100000, 65536}, Range{120000, 10}, true},     // contained
		{Range{120000, 10}, Range{100000, 65536}, true},     // containing
		{Range{100000, 0}, Range{100000, 65536}, false},     // empty range
		{Range{0, MaxID}, Range{MaxID - 1, 1}, true},        // whole space, no wrap
	}
	for _, tt := range tests {
		if got := tt.a.Overlaps(tt.b); got != tt.want {
			t.Errorf("%v.Overlaps(%v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.Overlaps(tt.a); got != tt.want {
			t.Errorf("%v.Overlaps(%v) = %v, want %v (symmetry)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestFirstFree(t *testing.T) {
	r := func(s, c uint64) Range { return Range{s, c} }
	tests := []struct {
		name   string
		taken  []Range
		count  uint64
		want   uint64
		wantOK bool
	}{
		{"empty", nil, 65536, 100000, true},
		{"below from is ignored", []Range{r(1000, 5000)}, 65536, 100000, true},
		{"straddling from", []Range{r(90000, 20000)}, 65536, 110000, true},
		{"first user taken", []Range{r(100000, 65536)}, 65536, 165536, true},
		{"adjacent ranges", []Range{r(165536, 65536), r(100000, 65536)}, 65536, 231072, true},
		{"gap exactly count", []Range{r(100000, 65536), r(231072, 10)}, 65536, 165536, true},
		{"gap one short", []Range{r(100000, 65536), r(231071, 10)}, 65536, 231081, true},
		{"overlapping taken ranges", []Range{r(100000, 100000), r(150000, 10)}, 10, 200000, true},
		{"zero count ignored", []Range{r(100000, 0)}, 10, 100000, true},
		{"huge count fits exactly", nil, MaxID - 100000, 100000, true},
		{"huge count one too many", nil, MaxID - 100000 + 1, 0, false},
		{"top of space: exactly fits", []Range{r(100000, MaxID-100000-10)}, 10, MaxID - 10, true},
		{"top of space: one past 2^32-1", []Range{r(100000, MaxID-100000-10)}, 11, 0, false},
		{"zero count never fits", nil, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FirstFree(tt.taken, tt.count, MinAutoStart)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("FirstFree = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
			if ok && !Free(tt.taken, Range{got, tt.count}) {
				t.Errorf("FirstFree returned a range that is not Free")
			}
		})
	}
}

// TestReconcile covers Assess, Choose and Edits on one file: the rendered
// result, or the error.
func TestReconcile(t *testing.T) {
	dock := Owner{Name: "dockremap"}
	dockUID := Owner{Name: "dockremap", UID: "998"}
	w := Want{User: "dockremap", Count: 65536}
	tests := []struct {
		name    string
		in      string
		owner   Owner
		want    Want
		prefer  []uint64
		out     string // the file afterwards; == in when converged
		errText string
	}{
		{name: "empty file", in: "", owner: dock, want: w, out: "dockremap:100000:65536\n"},
		{name: "after other users", in: "alice:100000:65536\nbob:165536:65536\n", owner: dock, want: w,
			out: "alice:100000:65536\nbob:165536:65536\ndockremap:231072:65536\n"},
		{name: "already good", in: "alice:100000:65536\ndockremap:165536:65536\n", owner: dock, want: w,
			out: "alice:100000:65536\ndockremap:165536:65536\n"},
		{name: "good and larger than asked", in: "dockremap:500000:131072\n", owner: dock, want: w,
			out: "dockremap:500000:131072\n"},
		{name: "good below 100000 is kept", in: "dockremap:70000:65536\n", owner: dock, want: w,
			out: "dockremap:70000:65536\n"},
		{name: "overlapping someone: replaced in place", in: "alice:100000:65536\ndockremap:150000:65536\n# end\n", owner: dock, want: w,
			out: "alice:100000:65536\ndockremap:165536:65536\n# end\n"},
		{name: "too small: replaced in place", in: "dockremap:100000:1000\nalice:200000:65536\n", owner: dock, want: w,
			out: "dockremap:100000:65536\nalice:200000:65536\n"},
		{name: "numeric entry of the user is its range", in: "998:300000:65536\n", owner: dockUID, want: w,
			out: "998:300000:65536\n"},
		{name: "numeric entry of the user, too small: rewritten by name", in: "alice:100000:65536\n998:300000:5\n", owner: dockUID, want: w,
			out: "alice:100000:65536\ndockremap:165536:65536\n"},
		{name: "numeric entry of someone else is avoided", in: "1000:100000:65536\n", owner: dockUID, want: w,
			out: "1000:100000:65536\ndockremap:165536:65536\n"},
		{name: "numeric entry while the user does not exist is someone else", in: "998:100000:65536\n", owner: dock, want: w,
			out: "998:100000:65536\ndockremap:165536:65536\n"},
		{name: "keeper plus an extra overlapping someone: extra removed", in: "dockremap:300000:65536\nalice:100000:65536\ndockremap:100000:10\n", owner: dock, want: w,
			out: "dockremap:300000:65536\nalice:100000:65536\n"},
		{name: "keeper plus an extra overlapping the keeper: extra removed", in: "dockremap:300000:65536\ndockremap:300010:10\n", owner: dock, want: w,
			out: "dockremap:300000:65536\n"},
		{name: "keeper plus a harmless extra: converged", in: "dockremap:300000:65536\ndockremap:900000:10\n", owner: dock, want: w,
			out: "dockremap:300000:65536\ndockremap:900000:10\n"},
		{name: "no keeper, two entries: first replaced, second removed", in: "dockremap:1:10\nalice:100000:65536\ndockremap:5:5\n", owner: dock, want: w,
			out: "dockremap:165536:65536\nalice:100000:65536\n"},
		{name: "given start, free", in: "alice:100000:65536\n", owner: dock, want: Want{User: "dockremap", Count: 65536, Start: 165536},
			out: "alice:100000:65536\ndockremap:165536:65536\n"},
		{name: "given start, own range elsewhere: moved", in: "dockremap:500000:65536\n", owner: dock, want: Want{User: "dockremap", Count: 65536, Start: 165536},
			out: "dockremap:165536:65536\n"},
		{name: "given start, own range there already", in: "dockremap:165536:65536\n", owner: dock, want: Want{User: "dockremap", Count: 65536, Start: 165536},
			out: "dockremap:165536:65536\n"},
		{name: "given start overlapping someone", in: "# x\nalice:100000:65536\n", owner: dock, want: Want{User: "dockremap", Count: 65536, Start: 150000},
			errText: `/etc/subuid: start = 150000 with count = 65536 for dockremap overlaps "alice:100000:65536" (line 2)`},
		{name: "given start past the ID space", in: "", owner: dock, want: Want{User: "dockremap", Count: 65536, Start: MaxID - 10},
			errText: "ends beyond 4294967294"},
		{name: "preferred start taken here: first free instead", in: "alice:100000:65536\n", owner: dock, want: w, prefer: []uint64{100000},
			out: "alice:100000:65536\ndockremap:165536:65536\n"},
		{name: "preferred start free here", in: "alice:100000:65536\n", owner: dock, want: w, prefer: []uint64{300000},
			out: "alice:100000:65536\ndockremap:300000:65536\n"},
		{name: "preferred start below 100000 ignored", in: "", owner: dock, want: w, prefer: []uint64{1000},
			out: "dockremap:100000:65536\n"},
		{name: "huge count fills the space", in: "", owner: dock, want: Want{User: "dockremap", Count: MaxID - 100000},
			out: "dockremap:100000:4294867295\n"},
		{name: "no room left", in: "alice:100000:4294867000\n", owner: dock, want: w,
			errText: "no free range of 65536 IDs for dockremap between 100000 and 4294967294"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("/etc/subuid", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			a := Assess(f, tt.owner, tt.want)
			var r Range
			if !a.Converged() && a.Keeper < 0 {
				r, err = a.Choose(tt.want, tt.prefer...)
			}
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err = %v, want %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			edits := a.Edits(tt.want, r)
			if a.Converged() != (len(edits) == 0) {
				t.Errorf("Converged() = %v with %d edits", a.Converged(), len(edits))
			}
			if diff := cmp.Diff(tt.out, string(f.Render(edits))); diff != "" {
				t.Errorf("file afterwards (-want +got):\n%s", diff)
			}
			// What Apply wrote, Plan must find converged.
			g, err := Parse("/etc/subuid", f.Render(edits))
			if err != nil {
				t.Fatal(err)
			}
			if a2 := Assess(g, tt.owner, tt.want); !a2.Converged() {
				t.Errorf("not converged after the edits: %+v", a2)
			}
		})
	}
}

func TestOwnerIs(t *testing.T) {
	o := Owner{Name: "dockremap", UID: "998"}
	for owner, want := range map[string]bool{"dockremap": true, "998": true, "0998": true, "999": false, "dockremap2": false, "": false} {
		if got := o.Is(owner); got != want {
			t.Errorf("Is(%q) = %v, want %v", owner, got, want)
		}
	}
	if (Owner{Name: "dockremap"}).Is("998") {
		t.Error("a numeric entry cannot be the user's before it has a UID")
	}
}

// FuzzReconcile: for any file Parse accepts, the edits leave every other
// user's entry in place, give the user a range that overlaps nobody, and
// are converged when planned again.
func FuzzReconcile(f *testing.F) {
	f.Add([]byte("alice:100000:65536\ndockremap:120000:10\n"), uint32(65536), uint32(0))
	f.Add([]byte("998:100000:65536\n# c\nx:0:4294967295"), uint32(1), uint32(5))
	f.Add([]byte("dockremap:165536:65536\ndockremap:165540:1\n"), uint32(65536), uint32(165536))
	f.Fuzz(func(t *testing.T, in []byte, count, start uint32) {
		p, err := Parse("f", in)
		if err != nil || count == 0 {
			return
		}
		o := Owner{Name: "dockremap", UID: "998"}
		w := Want{User: "dockremap", Count: uint64(count), Start: uint64(start)}
		a := Assess(p, o, w)
		var r Range
		if a.Keeper < 0 {
			if r, err = a.Choose(w); err != nil {
				return // no room, or the given start is taken: an error, not a guess
			}
			if !Free(a.Others, r) {
				t.Fatalf("chose %v, which is not free", r)
			}
		}
		out := p.Render(a.Edits(w, r))
		q, err := Parse("f", out)
		if err != nil {
			t.Fatalf("rendered file does not parse: %v\n%q", err, out)
		}
		var before, after []string
		for i, l := range p.Lines {
			if l.Kind != Entry || !o.Is(l.Owner) {
				before = append(before, p.Text(i))
			}
		}
		for i, l := range q.Lines {
			if l.Kind != Entry || !o.Is(l.Owner) {
				after = append(after, q.Text(i))
			}
		}
		if diff := cmp.Diff(before, after); diff != "" {
			t.Fatalf("other lines changed (-before +after):\n%s", diff)
		}
		if a2 := Assess(q, o, w); !a2.Converged() {
			t.Fatalf("not converged after edits:\n%q -> %q", in, out)
		}
	})
}
