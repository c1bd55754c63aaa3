package firewall

import (
	"encoding/binary"
	"math/bits"
)

// Key is a set key of up to 16 bytes (an IPv4 or IPv6 address, a port)
// as a big-endian number, right-aligned: IPv4 10.0.0.1 is 0x0a000001. Its
// length in bytes is its set type's (Set.Type.Bytes). Keys compare, sort
// and step (+1, -1) as numbers and hold no pointers: a plan handles tens of
// thousands of them, and a byte slice each (allocating them, sorting them,
// the garbage collector scanning them) cost it milliseconds.
type Key struct{ hi, lo uint64 }

// keyOf reads a big-endian key of up to 16 bytes.
func keyOf(b []byte) Key {
	var buf [16]byte
	copy(buf[16-len(b):], b)
	return Key{binary.BigEndian.Uint64(buf[:8]), binary.BigEndian.Uint64(buf[8:])}
}

// bytes returns the low size bytes of k, big-endian (size <= 16).
func (k Key) bytes(size int) []byte { return k.appendBytes(nil, size) }

// appendBytes appends the low size bytes of k, big-endian, to dst.
func (k Key) appendBytes(dst []byte, size int) []byte {
	var buf [16]byte
	binary.BigEndian.PutUint64(buf[:8], k.hi)
	binary.BigEndian.PutUint64(buf[8:], k.lo)
	return append(dst, buf[16-size:]...)
}

// fits reports whether k has no bits above the low size bytes.
func (k Key) fits(size int) bool {
	m := maxKey(size)
	return k.hi&^m.hi == 0 && k.lo&^m.lo == 0
}

func (k Key) cmp(o Key) int {
	switch {
	case k.hi < o.hi:
		return -1
	case k.hi > o.hi:
		return 1
	case k.lo < o.lo:
		return -1
	case k.lo > o.lo:
		return 1
	}
	return 0
}

// add1 returns k+1; false when that wraps past the largest key of size
// bytes (2^(8*size) - 1).
func (k Key) add1(size int) (Key, bool) {
	lo, carry := bits.Add64(k.lo, 1, 0)
	hi := k.hi + carry
	if size < 16 {
		if size <= 8 {
			return Key{hi, lo}, hi == 0 && (size == 8 || lo>>(8*size) == 0)
		}
		return Key{hi, lo}, hi>>(8*(size-8)) == 0
	}
	return Key{hi, lo}, hi != 0 || lo != 0
}

// sub1 returns k-1 (k must not be 0).
func (k Key) sub1() Key {
	lo, borrow := bits.Sub64(k.lo, 1, 0)
	return Key{k.hi - borrow, lo}
}

// byteAt is byte i of the key, 0 the least significant.
func (k Key) byteAt(i int) byte {
	if i < 8 {
		return byte(k.lo >> (8 * i))
	}
	return byte(k.hi >> (8 * (i - 8)))
}

// maxKey is the largest key of size bytes.
func maxKey(size int) Key {
	switch {
	case size >= 16:
		return Key{^uint64(0), ^uint64(0)}
	case size > 8:
		return Key{1<<(8*(size-8)) - 1, ^uint64(0)}
	case size == 8:
		return Key{0, ^uint64(0)}
	}
	return Key{0, 1<<(8*size) - 1}
}

// radixSort sorts xs by key, in place, without allocating: a
// most-significant-byte-first radix sort (American flag sort) that skips
// the bytes every key shares (the twelve leading zero bytes of an IPv4
// address, the first octet of a whitelist in 10/8), with insertion sort
// for small buckets. For 10,000 addresses it is several times faster than
// a comparison sort, which cost a no-op plan over a millisecond. It is not
// stable: equal keys may come out in any order.
func radixSort[T any](xs []T, key func(T) Key) {
	if len(xs) < 2 {
		return
	}
	// Bytes that differ between keys: set in some key and clear in another.
	or, and := Key{}, Key{^uint64(0), ^uint64(0)}
	for i := range xs {
		k := key(xs[i])
		or.hi, or.lo = or.hi|k.hi, or.lo|k.lo
		and.hi, and.lo = and.hi&k.hi, and.lo&k.lo
	}
	msdSort(xs, key, Key{or.hi ^ and.hi, or.lo ^ and.lo}, 15)
}

// msdSort sorts xs, whose keys agree on every byte above b, by byte b and
// then the bytes below it.
func msdSort[T any](xs []T, key func(T) Key, diff Key, b int) {
	for b >= 0 && diff.byteAt(b) == 0 {
		b--
	}
	if b < 0 || len(xs) < 2 {
		return
	}
	if len(xs) <= 32 {
		for i := 1; i < len(xs); i++ {
			for j := i; j > 0 && key(xs[j]).cmp(key(xs[j-1])) < 0; j-- {
				xs[j], xs[j-1] = xs[j-1], xs[j]
			}
		}
		return
	}
	var start, next [257]int
	for i := range xs {
		start[int(key(xs[i]).byteAt(b))+1]++
	}
	for v := 1; v <= 256; v++ {
		start[v] += start[v-1]
	}
	next = start
	// Move every element into its bucket: take the one at the bucket's
	// next free place and swap it along until one that belongs there
	// comes back.
	for v := range 256 {
		for next[v] < start[v+1] {
			x := xs[next[v]]
			d := int(key(x).byteAt(b))
			for d != v {
				xs[next[d]], x = x, xs[next[d]]
				next[d]++
				d = int(key(x).byteAt(b))
			}
			xs[next[v]] = x
			next[v]++
		}
	}
	for v := range 256 {
		if start[v+1]-start[v] > 1 {
			msdSort(xs[start[v]:start[v+1]], key, diff, b-1)
		}
	}
}
