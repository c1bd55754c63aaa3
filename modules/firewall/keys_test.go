package firewall

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/dockward/dockward/agent"
	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
)

func TestKeyBytes(t *testing.T) {
	for size := 1; size <= 16; size++ {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(0xf0 + i)
		}
		k := keyOf(b)
		if got := k.bytes(size); !bytes.Equal(got, b) {
			t.Errorf("size %d: bytes(keyOf(%x)) = %x", size, b, got)
		}
		if !k.fits(size) || (size < 16 && !maxKey(size).fits(size)) {
			t.Errorf("size %d: fits is wrong", size)
		}
		if size < 16 {
			if over, _ := maxKey(size).add1(16); over.fits(size) {
				t.Errorf("size %d: %v fits", size, over)
			}
		}
	}
}

func TestKeyStep(t *testing.T) {
	tests := []struct {
		size   int
		k      Key
		next   Key
		wraps  bool
		prevOf Key // sub1(next) must give k back
	}{
		{4, keyOf([]byte{10, 0, 0, 255}), keyOf([]byte{10, 0, 1, 0}), false, Key{}},
		{4, maxKey(4), Key{0, 1 << 32}, true, Key{}},
		{2, maxKey(2), Key{0, 1 << 16}, true, Key{}},
		{8, maxKey(8), Key{1, 0}, true, Key{}},
		{9, Key{0, ^uint64(0)}, Key{1, 0}, false, Key{}},
		{9, maxKey(9), Key{1 << 8, 0}, true, Key{}},
		{16, Key{0, ^uint64(0)}, Key{1, 0}, false, Key{}},
		{16, maxKey(16), Key{}, true, Key{}},
	}
	for _, tt := range tests {
		next, ok := tt.k.add1(tt.size)
		if next != tt.next || ok == tt.wraps {
			t.Errorf("size %d: add1(%x) = %x, %v; want %x, %v", tt.size, tt.k, next, ok, tt.next, !tt.wraps)
		}
		if next.sub1() != tt.k {
			t.Errorf("size %d: sub1(add1(%x)) = %x", tt.size, tt.k, next.sub1())
		}
	}
}

func TestRadixSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gens := map[string]func() Key{
		"ipv4 in 10/8": func() Key { return Key{0, 10<<24 | r.Uint64N(1<<24)} },
		"ipv6":         func() Key { return Key{r.Uint64(), r.Uint64()} },
		"ipv6 /64":     func() Key { return Key{0x20010db800000000, r.Uint64()} },
		"few values":   func() Key { return Key{r.Uint64N(2), r.Uint64N(3)} },
		"ports":        func() Key { return Key{0, r.Uint64N(1 << 16)} },
	}
	for name, gen := range gens {
		for _, n := range []int{0, 1, 2, 31, 32, 33, 300, 5000} {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				xs := make([]Elem, n)
				for i := range xs {
					k := gen()
					xs[i] = Elem{k, Key{0, uint64(i)}} // Hi: where it came from
				}
				want := slices.Clone(xs)
				slices.SortFunc(want, func(a, b Elem) int { return a.Lo.cmp(b.Lo) })
				radixSort(xs, func(e Elem) Key { return e.Lo })
				// Not stable: compare the keys, and that nothing was
				// lost or duplicated.
				for i := range xs {
					if xs[i].Lo != want[i].Lo {
						t.Fatalf("position %d: %x, want %x", i, xs[i].Lo, want[i].Lo)
					}
				}
				seen := make([]bool, n)
				for _, e := range xs {
					seen[e.Hi.lo] = true
				}
				if slices.Contains(seen, false) {
					t.Fatal("an element was lost")
				}
			})
		}
	}
}

func TestDecodeIntervals(t *testing.T) {
	k := func(b ...byte) Key { return keyOf(b) }
	start := func(b ...byte) rawElem { return rawElem{key: k(b...)} }
	end := func(b ...byte) rawElem { return rawElem{key: k(b...), end: true} }
	tests := []struct {
		name string
		raw  []rawElem
		want []string
	}{
		{"one range", []rawElem{end(10, 0, 1, 0), start(10, 0, 0, 0)}, []string{"10.0.0.0/24"}},
		{"to the last address", []rawElem{start(192, 0, 2, 0), end(10, 0, 1, 0), start(10, 0, 0, 0)},
			[]string{"10.0.0.0/24", "192.0.2.0-255.255.255.255"}},
		{"nft's end at zero", []rawElem{end(0, 0, 0, 0), start(10, 0, 0, 1), end(10, 0, 0, 2)}, []string{"10.0.0.1"}},
		{"a range ends where the next starts", []rawElem{start(10, 0, 0, 4), start(10, 0, 0, 0), end(10, 0, 0, 8), end(10, 0, 0, 4)},
			[]string{"10.0.0.0/30", "10.0.0.4/30"}},
		{"start after start", []rawElem{start(10, 0, 0, 1), start(10, 0, 0, 5), end(10, 0, 0, 6)}, []string{"10.0.0.1", "10.0.0.5"}},
		{"everything", []rawElem{start(0, 0, 0, 0)}, []string{"0.0.0.0/0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range decodeIntervals(slices.Clone(tt.raw), 4) {
				got = append(got, renderElem(nftables.TypeIPAddr, e))
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// The kernel's dump is outside input: whatever it holds, decoding gives
// ranges (Lo <= Hi) in order, and never panics.
func FuzzDecodeIntervals(f *testing.F) {
	f.Add([]byte{0, 10, 0, 0, 0, 1, 10, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var raw []rawElem
		for len(data) >= 5 {
			raw = append(raw, rawElem{key: keyOf(data[1:5]), end: data[0]&1 == 1})
			data = data[5:]
		}
		out := decodeIntervals(raw, 4)
		for i, e := range out {
			if e.Hi.cmp(e.Lo) < 0 || !e.Hi.fits(4) {
				t.Fatalf("element %d: %x-%x", i, e.Lo, e.Hi)
			}
			if i > 0 && out[i-1].Lo.cmp(e.Lo) > 0 {
				t.Fatalf("out of order at %d", i)
			}
		}
	})
}

// textDiff is how elemDiff used to compare: every element printed, looked
// up in maps of text. The merge must give exactly what it gives.
func textDiff(w, h *Set) (add, del []Elem) {
	hs, ws := map[string]bool{}, map[string]bool{}
	for _, e := range h.Elems {
		hs[renderElem(h.Type, e)] = true
	}
	for _, e := range w.Elems {
		ws[renderElem(w.Type, e)] = true
		if !hs[renderElem(w.Type, e)] {
			add = append(add, e)
		}
	}
	for _, e := range h.Elems {
		if !ws[renderElem(h.Type, e)] {
			del = append(del, e)
		}
	}
	return add, del
}

func TestElemDiffMatchesText(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	randomSet := func(n int, interval bool) *Set {
		ps := make([]netip.Prefix, n)
		for i := range ps {
			a := netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(4)), byte(r.IntN(256))})
			bits := 32
			if interval {
				bits = 28 + r.IntN(5)
			}
			ps[i] = netip.PrefixFrom(a, bits)
		}
		return &Set{Type: nftables.TypeIPAddr, Interval: interval, Elems: prefixElems(ps, false)}
	}
	for i := range 200 {
		interval := i%2 == 1
		w, h := randomSet(r.IntN(300), interval), randomSet(r.IntN(300), interval)
		if i%10 == 0 {
			h = &Set{Type: w.Type, Elems: slices.Clone(w.Elems)}
		}
		if i%7 == 0 && len(h.Elems) > 1 {
			// Out of order (someone's odd edit): the map path.
			h.Elems[0], h.Elems[1] = h.Elems[1], h.Elems[0]
		}
		add, del, _, _ := elemDiff(w, h)
		wantAdd, wantDel := textDiff(w, h)
		if d := cmp.Diff(wantAdd, add, cmp.AllowUnexported(Key{})); d != "" {
			t.Fatalf("case %d: add (-text +merge):\n%s", i, d)
		}
		if d := cmp.Diff(wantDel, del, cmp.AllowUnexported(Key{})); d != "" {
			t.Fatalf("case %d: del (-text +merge):\n%s", i, d)
		}
	}
}

// A set of keys over 16 bytes (someone's concatenation in our table) is
// kept as dumped: it prints, counts, and shows in a diff.
func TestLongElements(t *testing.T) {
	want := exampleRuleset(t)
	have := clone(want)
	concat := nftables.SetDatatype{Name: "ipv4_addr . ipv6_addr", Bytes: 20}
	long := [][]byte{bytes.Repeat([]byte{1}, 20), bytes.Repeat([]byte{2}, 20)}
	have.Sets = append(have.Sets, &Set{Name: "extra", Type: concat, Long: long})
	got := Diff(want, have)
	wantChanges := []agent.Change{{Action: "-", Target: "set inet dockward extra", Old: "type ipv4_addr . ipv6_addr; 2 elements"}}
	if d := cmp.Diff(wantChanges, got); d != "" {
		t.Errorf("Diff (-want +got):\n%s", d)
	}
	// Our own set, replaced by one of another type.
	s := setNamed(have, "egress_bridge_1_v4")
	s.Type, s.Elems, s.Long = concat, nil, long[:1]
	got = Diff(want, have)
	wantChanges = []agent.Change{
		{Action: "~", Target: "set inet dockward egress_bridge_1_v4", Old: "type ipv4_addr . ipv6_addr", New: "type ipv4_addr"},
		{Action: "+", Target: "set inet dockward egress_bridge_1_v4", New: "element 10.0.0.2"},
		{Action: "-", Target: "set inet dockward egress_bridge_1_v4", Old: "element 0x" + fmt.Sprintf("%x", long[0])},
		wantChanges[0],
	}
	if d := cmp.Diff(wantChanges, got); d != "" {
		t.Errorf("Diff (-want +got):\n%s", d)
	}
	if r := Render(have); !bytes.Contains([]byte(r), []byte("elements = { 0x0101")) {
		t.Errorf("Render does not list the long keys:\n%s", r)
	}
	rules, elems := have.Counts()
	if _, wantElems := want.Counts(); elems != wantElems+2 || rules == 0 {
		t.Errorf("Counts = %d rules, %d elements", rules, elems)
	}
}
