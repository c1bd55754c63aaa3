package subid

import (
	"fmt"
	"slices"
	"strconv"
)

const (
	// MinAutoStart is where a range is searched from when start is not
	// given: above the IDs of system and login accounts, as dockerd and
	// useradd do.
	MinAutoStart = 100000
	// MaxID is the exclusive end of usable IDs: 4294967295 is (uid_t)-1,
	// never a valid ID, and the kernel refuses a uid_map extent that reaches
	// 2^32 (its end wraps to 0).
	MaxID = 1<<32 - 1
)

// Range is a run of Count IDs from Start. Arithmetic is in uint64 so that
// start+count never wraps.
type Range struct{ Start, Count uint64 }

// End is the first ID after the range.
func (r Range) End() uint64 { return r.Start + r.Count }

// Overlaps reports whether two ranges share an ID. Empty ranges share none.
func (r Range) Overlaps(o Range) bool {
	return r.Count > 0 && o.Count > 0 && r.Start < o.End() && o.Start < r.End()
}

func (r Range) String() string { return fmt.Sprintf("%d-%d", r.Start, r.End()-1) }

// Want is what the block asks for.
type Want struct {
	User  string
	Count uint64
	Start uint64 // 0: any free range at or above MinAutoStart
}

// Owner decides which entries are the user's: its name, or its numeric UID
// (shadow-utils and dockerd accept both, in subgid as in subuid).
type Owner struct {
	Name string
	UID  string // decimal, "" while the user does not exist
}

// Is reports whether an entry's owner field denotes the user.
func (o Owner) Is(owner string) bool {
	if owner == o.Name {
		return true
	}
	if o.UID == "" {
		return false
	}
	// "0999" is not written by anyone, but compare numerically anyway.
	n, err := strconv.ParseUint(owner, 10, 32)
	return err == nil && strconv.FormatUint(n, 10) == o.UID
}

// Assessment is what one file holds for the user.
type Assessment struct {
	File  *File
	Owner Owner
	// Keeper is the index (in File.Lines) of the user's entry that already
	// satisfies Want, or -1.
	Keeper int
	// Own lists the user's entries, Others every other entry's range.
	Own    []int
	Others []Range
	// Remove lists own entries to delete although a keeper exists, each
	// with why; set only when Keeper >= 0.
	Remove []Removal
	// Why, when Keeper < 0, says why the first own entry is replaced.
	Why string
}

// Removal is an own entry to delete and why.
type Removal struct {
	Line int
	Why  string
}

// Assess decides whether a file already gives the user what it wants.
//
// An own entry is good when it holds at least Count IDs (from exactly
// Start, if given) and overlaps no other user's entry; the first good one
// is kept. Other own entries stay unless they overlap someone else's entry,
// the keeper or an earlier kept entry (the kernel refuses a uid_map whose
// host ranges overlap, so dockerd would fail on them). Without a good entry
// the user is given exactly one new range: see Edits.
func Assess(f *File, o Owner, w Want) Assessment {
	a := Assessment{File: f, Owner: o, Keeper: -1}
	for i, ln := range f.Lines {
		if ln.Kind != Entry {
			continue
		}
		if o.Is(ln.Owner) {
			a.Own = append(a.Own, i)
		} else {
			a.Others = append(a.Others, ln.Range)
		}
	}
	for _, i := range a.Own {
		ln := f.Lines[i]
		why := ""
		switch {
		case w.Start != 0 && ln.Range.Start != w.Start:
			why = fmt.Sprintf("starts at %d, not at %d", ln.Range.Start, w.Start)
		case ln.Range.Count < w.Count:
			why = fmt.Sprintf("holds %d IDs, fewer than %d", ln.Range.Count, w.Count)
		default:
			if j := f.overlapping(ln.Range, o); j >= 0 {
				why = fmt.Sprintf("overlaps %q (line %d)", f.Text(j), f.Lines[j].Num)
			}
		}
		if why == "" {
			a.Keeper = i
			break
		}
		if a.Why == "" {
			a.Why = why
		}
	}
	if a.Keeper < 0 {
		return a
	}
	kept := []Range{f.Lines[a.Keeper].Range}
	for _, i := range a.Own {
		if i == a.Keeper {
			continue
		}
		r := f.Lines[i].Range
		if j := f.overlapping(r, o); j >= 0 {
			a.Remove = append(a.Remove, Removal{i, fmt.Sprintf("overlaps %q (line %d)", f.Text(j), f.Lines[j].Num)})
			continue
		}
		if slices.ContainsFunc(kept, r.Overlaps) {
			a.Remove = append(a.Remove, Removal{i, "overlaps another range of " + o.Name})
			continue
		}
		kept = append(kept, r)
	}
	return a
}

// overlapping returns the index of the first other user's entry that
// overlaps r, or -1.
func (f *File) overlapping(r Range, o Owner) int {
	for j, ln := range f.Lines {
		if ln.Kind == Entry && !o.Is(ln.Owner) && ln.Range.Overlaps(r) {
			return j
		}
	}
	return -1
}

// Converged reports whether the file needs no edit.
func (a Assessment) Converged() bool { return a.Keeper >= 0 && len(a.Remove) == 0 }

// Free reports whether r fits in the ID space and overlaps none of taken.
func Free(taken []Range, r Range) bool {
	return r.Count > 0 && r.End() <= MaxID && !slices.ContainsFunc(taken, r.Overlaps)
}

// FirstFree returns the lowest start at or above from where count IDs
// overlap none of taken and end within the ID space.
func FirstFree(taken []Range, count, from uint64) (uint64, bool) {
	sorted := slices.Clone(taken)
	slices.SortFunc(sorted, func(a, b Range) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	cand := from
	for _, r := range sorted {
		if r.Count == 0 || r.End() <= cand {
			continue
		}
		if r.Start >= cand+count {
			break
		}
		cand = r.End()
	}
	if count == 0 || cand+count > MaxID {
		return 0, false
	}
	return cand, true
}

// Choose picks the user's new range in a file that is not converged.
// With Want.Start it is exactly that range, and an error if it is taken.
// Otherwise the first of prefer that is free (at or above MinAutoStart), or
// else the first free range at or above MinAutoStart.
func (a Assessment) Choose(w Want, prefer ...uint64) (Range, error) {
	if w.Start != 0 {
		r := Range{w.Start, w.Count}
		if r.End() > MaxID {
			return Range{}, fmt.Errorf("%s: range %d+%d for %s ends beyond %d", a.File.Path, w.Start, w.Count, w.User, uint64(MaxID)-1)
		}
		if j := a.File.overlapping(r, a.Owner); j >= 0 {
			return Range{}, fmt.Errorf("%s: start = %d with count = %d for %s overlaps %q (line %d)",
				a.File.Path, w.Start, w.Count, w.User, a.File.Text(j), a.File.Lines[j].Num)
		}
		return r, nil
	}
	for _, p := range prefer {
		if r := (Range{p, w.Count}); p >= MinAutoStart && Free(a.Others, r) {
			return r, nil
		}
	}
	s, ok := FirstFree(a.Others, w.Count, MinAutoStart)
	if !ok {
		return Range{}, fmt.Errorf("%s: no free range of %d IDs for %s between %d and %d", a.File.Path, w.Count, w.User, MinAutoStart, uint64(MaxID)-1)
	}
	return Range{s, w.Count}, nil
}

// Edits turns an assessment into line edits. A converged file gets none.
// With a keeper, only the own entries that must go are deleted. Without
// one, the first own entry is replaced in place by r (keeping its place in
// the file) and every other own entry deleted, so the user ends with
// exactly one range; a user with no entry gets r appended.
func (a Assessment) Edits(w Want, r Range) []Edit {
	if a.Keeper >= 0 {
		var out []Edit
		for _, rm := range a.Remove {
			out = append(out, Edit{Line: rm.Line})
		}
		return out
	}
	line := EntryText(w.User, r)
	if len(a.Own) == 0 {
		return []Edit{{Line: -1, New: line}}
	}
	out := []Edit{{Line: a.Own[0], New: line}}
	for _, i := range a.Own[1:] {
		out = append(out, Edit{Line: i})
	}
	return out
}
