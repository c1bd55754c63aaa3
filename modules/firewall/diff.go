package firewall

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dockward/dockward/agent"
	"github.com/google/nftables"
)

// maxElemChanges caps the element lines listed per set and direction: a
// first run that loads 10,000 addresses should say so in one line, not in
// 10,000.
const maxElemChanges = 20

// Diff compares the desired table with the live one (nil when the table
// does not exist) on their rendered forms and returns the differences as
// nft-like lines: Action "+" for what Apply will add, "-" for what it will
// remove, "~" for a declaration it will change. An empty result means the
// live table is exactly the desired one (counters and handles aside).
func Diff(want, have *Ruleset) []agent.Change {
	var out []agent.Change
	if have == nil {
		rules, elems := want.Counts()
		out = append(out, agent.Change{Action: agent.Create, Target: "table inet " + want.Table,
			New: fmt.Sprintf("%d chains, %d rules, %d sets with %d elements", len(want.Chains), rules, len(want.Sets), elems)})
		have = &Ruleset{Table: want.Table}
	}
	out = append(out, diffSets(want, have)...)
	out = append(out, diffChains(want, have)...)
	return out
}

func diffSets(want, have *Ruleset) []agent.Change {
	var out []agent.Change
	haveBy := map[string]*Set{}
	for _, s := range have.Sets {
		haveBy[s.Name] = s
	}
	wantBy := map[string]bool{}
	for _, w := range want.Sets {
		wantBy[w.Name] = true
		target := fmt.Sprintf("set inet %s %s", want.Table, w.Name)
		h := haveBy[w.Name]
		wh := strings.Join(setHeader(w), "; ")
		if h == nil {
			out = append(out, agent.Change{Action: agent.Create, Target: target, New: fmt.Sprintf("%s; %d elements", wh, len(w.Elems)+len(w.Long))})
			out = append(out, elemChanges(agent.Create, target, w.Type, w.Elems, w.Long)...)
			continue
		}
		if hh := strings.Join(setHeader(h), "; "); hh != wh {
			out = append(out, agent.Change{Action: agent.Update, Target: target, Old: hh, New: wh})
		}
		add, del, addLong, delLong := elemDiff(w, h)
		out = append(out, elemChanges(agent.Create, target, w.Type, add, addLong)...)
		out = append(out, elemChanges(agent.Delete, target, h.Type, del, delLong)...)
	}
	for _, h := range have.Sets {
		if !wantBy[h.Name] {
			out = append(out, agent.Change{Action: agent.Delete, Target: fmt.Sprintf("set inet %s %s", have.Table, h.Name),
				Old: fmt.Sprintf("%s; %d elements", strings.Join(setHeader(h), "; "), len(h.Elems)+len(h.Long))})
		}
	}
	return out
}

// elemDiff returns the elements of w missing from h, and those of h that w
// does not have; two elements are the same when they print the same.
func elemDiff(w, h *Set) (add, del []Elem, addLong, delLong [][]byte) {
	addLong, delLong = longDiff(w.Long, h.Long)
	if w.Type.Name != h.Type.Name {
		// The same bytes mean something else: compare them as printed.
		hs := make(map[string]bool, len(h.Elems))
		for _, e := range h.Elems {
			hs[renderElem(h.Type, e)] = true
		}
		ws := make(map[string]bool, len(w.Elems))
		for _, e := range w.Elems {
			k := renderElem(w.Type, e)
			ws[k] = true
			if !hs[k] {
				add = append(add, e)
			}
		}
		for _, e := range h.Elems {
			if !ws[renderElem(h.Type, e)] {
				del = append(del, e)
			}
		}
		return add, del, addLong, delLong
	}
	// Of one type, elements print the same exactly when they are equal.
	// Both sides are normally sorted (Build's and read-back's canonical
	// form), so the common case, no change, is one comparison of two flat
	// arrays, and a change one merge pass; nothing is printed but the few
	// differences shown.
	if slices.Equal(w.Elems, h.Elems) {
		return nil, nil, addLong, delLong
	}
	if ascending(w.Elems) && ascending(h.Elems) {
		i, j := 0, 0
		for i < len(w.Elems) && j < len(h.Elems) {
			switch c := cmpElem(w.Elems[i], h.Elems[j]); {
			case c == 0:
				i++
				j++
			case c < 0:
				add = append(add, w.Elems[i])
				i++
			default:
				del = append(del, h.Elems[j])
				j++
			}
		}
		add = append(add, w.Elems[i:]...)
		del = append(del, h.Elems[j:]...)
		return add, del, addLong, delLong
	}
	hs := make(map[Elem]bool, len(h.Elems))
	for _, e := range h.Elems {
		hs[e] = true
	}
	ws := make(map[Elem]bool, len(w.Elems))
	for _, e := range w.Elems {
		ws[e] = true
		if !hs[e] {
			add = append(add, e)
		}
	}
	for _, e := range h.Elems {
		if !ws[e] {
			del = append(del, e)
		}
	}
	return add, del, addLong, delLong
}

// longDiff is elemDiff for keys over 16 bytes.
func longDiff(w, h [][]byte) (add, del [][]byte) {
	hs := make(map[string]bool, len(h))
	for _, k := range h {
		hs[string(k)] = true
	}
	ws := make(map[string]bool, len(w))
	for _, k := range w {
		ws[string(k)] = true
		if !hs[string(k)] {
			add = append(add, k)
		}
	}
	for _, k := range h {
		if !ws[string(k)] {
			del = append(del, k)
		}
	}
	return add, del
}

func cmpElem(a, b Elem) int {
	if c := a.Lo.cmp(b.Lo); c != 0 {
		return c
	}
	return a.Hi.cmp(b.Hi)
}

// ascending reports whether elems are strictly increasing, so that a merge
// sees every element once.
func ascending(elems []Elem) bool {
	for i := 1; i < len(elems); i++ {
		if cmpElem(elems[i-1], elems[i]) >= 0 {
			return false
		}
	}
	return true
}

// elemChanges lists elements, then long keys, as changes, up to
// maxElemChanges lines and a count of the rest.
func elemChanges(a agent.Action, target string, t nftables.SetDatatype, elems []Elem, long [][]byte) []agent.Change {
	var out []agent.Change
	total := len(elems) + len(long)
	line := func(s string) agent.Change {
		if a == agent.Delete {
			return agent.Change{Action: a, Target: target, Old: s}
		}
		return agent.Change{Action: a, Target: target, New: s}
	}
	for i := range total {
		if i == maxElemChanges {
			return append(out, line(fmt.Sprintf("%d more elements", total-i)))
		}
		if i < len(elems) {
			out = append(out, line("element "+renderElem(t, elems[i])))
		} else {
			out = append(out, line("element "+renderLong(long[i-len(elems)])))
		}
	}
	return out
}

func diffChains(want, have *Ruleset) []agent.Change {
	var out []agent.Change
	haveBy := map[string]*Chain{}
	for _, c := range have.Chains {
		haveBy[c.Name] = c
	}
	wantBy := map[string]bool{}
	for _, w := range want.Chains {
		wantBy[w.Name] = true
		target := fmt.Sprintf("chain inet %s %s", want.Table, w.Name)
		h := haveBy[w.Name]
		if h == nil {
			out = append(out, agent.Change{Action: agent.Create, Target: target, New: headerOrRegular(w)})
			h = &Chain{Name: w.Name, Type: w.Type, Hook: w.Hook, Priority: w.Priority, Policy: w.Policy}
		} else if hh, wh := headerOrRegular(h), headerOrRegular(w); hh != wh {
			out = append(out, agent.Change{Action: agent.Update, Target: target, Old: hh, New: wh})
		}
		out = append(out, ruleDiff(target, renderRules(w), renderRules(h))...)
	}
	for _, h := range have.Chains {
		if !wantBy[h.Name] {
			out = append(out, agent.Change{Action: agent.Delete, Target: fmt.Sprintf("chain inet %s %s", have.Table, h.Name),
				Old: fmt.Sprintf("%s (%d rules)", headerOrRegular(h), len(h.Rules))})
		}
	}
	return out
}

func headerOrRegular(c *Chain) string {
	if h := chainHeader(c); h != "" {
		return h
	}
	return "regular chain"
}

func renderRules(c *Chain) []string {
	out := make([]string, len(c.Rules))
	for i, r := range c.Rules {
		out[i] = RenderRule(r)
	}
	return out
}

// ruleDiff lists the rules to add and remove to turn have into want, in
// order (a longest-common-subsequence diff: chains hold tens of rules, and
// an order change is a change, since rules are evaluated in order).
func ruleDiff(target string, want, have []string) []agent.Change {
	n, m := len(want), len(have)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if want[i] == have[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []agent.Change
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && want[i] == have[j]:
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			out = append(out, agent.Change{Action: agent.Delete, Target: target, Old: "rule " + have[j]})
			j++
		default:
			out = append(out, agent.Change{Action: agent.Create, Target: target, New: "rule " + want[i]})
			i++
		}
	}
	return out
}
