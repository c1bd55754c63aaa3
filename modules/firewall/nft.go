package firewall

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// NFT is the netlink side of the module: it replaces dockward's table in
// one batch and reads it back. It never touches another table.
type NFT struct {
	opts []nftables.ConnOption

	mu    sync.Mutex
	cache map[string]cachedRead // by table name
}

// NewNFT returns an NFT whose connections are made with opts: none for the
// caller's own namespace, nftables.WithNetNSFd(fd) for a test namespace,
// nftables.WithTestDial(f) to capture the netlink messages.
func NewNFT(opts ...nftables.ConnOption) *NFT { return &NFT{opts: opts} }

// netlinkTimeout bounds every netlink exchange: an ack the kernel never
// sends must fail the run, not hang it.
const netlinkTimeout = 30 * time.Second

// Batch sizes. Every message of a batch goes out in one sendmsg, which the
// kernel caps at the socket's send buffer (212992 bytes by default), and a
// netlink attribute holds at most 64 KiB: like nft, raise the buffers
// (SO_SNDBUFFORCE, as root) and split set elements over several messages.
const (
	sockBuffer    = 64 << 20
	elemsPerBatch = 1024
)

func (n *NFT) conn() (*nftables.Conn, error) {
	opts := append(slices.Clone(n.opts), nftables.WithSockOptions(socketSetup))
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink connection: %w", err)
	}
	return c, nil
}

// socketSetup raises the buffers and sets a deadline on each netlink socket
// the library opens. A test dialer (nltest) has no socket: it is left alone.
func socketSetup(c *netlink.Conn) error {
	_ = c.SetDeadline(time.Now().Add(netlinkTimeout))
	rc, err := c.SyscallConn()
	if err != nil {
		return nil // nltest connection
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, sockBuffer); e != nil && serr == nil {
				serr = e
			}
		}
	})
	if err == nil && serr != nil && !errors.Is(serr, syscall.EPERM) {
		// Without CAP_NET_ADMIN the forced sizes are refused; the default
		// buffers still carry small tables, so only other errors count.
		err = serr
	}
	if err != nil {
		return fmt.Errorf("set netlink socket buffers: %w", err)
	}
	return nil
}

// Replace makes the live table exactly rs, in one transaction: add the
// table (so that deleting it cannot fail when it is missing), delete it with
// everything in it, add it again with its sets, chains and rules. The kernel
// applies all of it or none: there is never a moment without the old or the
// new rules, and a failed batch leaves the old ones in force.
func (n *NFT) Replace(rs *Ruleset) error { return n.replace(rs, nil) }

// replace is Replace with a hook that appends to the batch before it is
// sent, for tests that need a batch which fails part-way.
func (n *NFT) replace(rs *Ruleset, extra func(*nftables.Conn, *nftables.Table)) error {
	c, err := n.conn()
	if err != nil {
		return err
	}
	t, err := queue(c, rs)
	if err != nil {
		return fmt.Errorf("build batch for table inet %s: %w", rs.Table, err)
	}
	if extra != nil {
		extra(c, t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("replace table inet %s: %w", rs.Table, err)
	}
	return nil
}

// queue adds the replacement of rs to c's batch, without sending it.
func queue(c *nftables.Conn, rs *Ruleset) (*nftables.Table, error) {
	t := &nftables.Table{Name: rs.Table, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	for i, s := range rs.Sets {
		ns := &nftables.Set{
			Table: t, Name: s.Name, KeyType: s.Type, Interval: s.Interval,
			// Fixed IDs (unique within the batch) instead of the library's
			// global counter keep the messages reproducible for golden tests.
			ID:           uint32(i + 1),
			KeyByteOrder: binaryutil.BigEndian,
		}
		if err := c.AddSet(ns, nil); err != nil {
			return nil, fmt.Errorf("add set %s: %w", s.Name, err)
		}
		elems, err := setElements(s)
		if err != nil {
			return nil, err
		}
		for len(elems) > 0 {
			k := min(len(elems), elemsPerBatch)
			if s.Interval && k < len(elems) && elems[k].IntervalEnd {
				k++ // keep a range's start and end in one message
			}
			if err := c.SetAddElements(ns, elems[:k]); err != nil {
				return nil, fmt.Errorf("add elements to set %s: %w", s.Name, err)
			}
			elems = elems[k:]
		}
	}
	chains := map[string]*nftables.Chain{}
	for _, ch := range rs.Chains {
		chains[ch.Name] = c.AddChain(&nftables.Chain{
			Name: ch.Name, Table: t, Type: ch.Type, Hooknum: ch.Hook, Priority: ch.Priority, Policy: ch.Policy,
		})
	}
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			nr := &nftables.Rule{Table: t, Chain: chains[ch.Name], Exprs: r.Exprs}
			if r.Comment != "" {
				nr.UserData = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
			}
			c.AddRule(nr)
		}
	}
	return t, nil
}

// setElements encodes a set's elements as the kernel stores them: for an
// interval set, each range [lo, hi] is a start element lo and an end
// element hi+1 flagged interval-end (none when hi is the last address).
func setElements(s *Set) ([]nftables.SetElement, error) {
	var out []nftables.SetElement
	for _, e := range s.Elems {
		if len(e.Lo) != int(s.Type.Bytes) || len(e.Hi) != int(s.Type.Bytes) {
			return nil, fmt.Errorf("set %s: element of %d bytes in a set of %s", s.Name, len(e.Lo), s.Type.Name)
		}
		if !s.Interval {
			if !e.single() {
				return nil, fmt.Errorf("set %s: range element in a set without flags interval", s.Name)
			}
			out = append(out, nftables.SetElement{Key: e.Lo})
			continue
		}
		out = append(out, nftables.SetElement{Key: e.Lo})
		if end, ok := increment(e.Hi); ok {
			out = append(out, nftables.SetElement{Key: end, IntervalEnd: true})
		}
	}
	return out, nil
}

// increment returns b+1 as a big-endian number, and false on overflow.
func increment(b []byte) ([]byte, bool) {
	out := slices.Clone(b)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]++
		if out[i] != 0 {
			return out, true
		}
	}
	return nil, false
}

func decrement(b []byte) []byte {
	out := slices.Clone(b)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]--
		if out[i] != 0xff {
			break
		}
	}
	return out
}

// Read returns the live table, or nil when there is none.
//
// A full read dumps every set element, which for 10,000 addresses is most
// of a plan's time. The kernel numbers every committed nftables
// transaction in the namespace (the ruleset generation, NFT_MSG_GETGEN):
// while it is unchanged, nothing in any table has changed, so the table
// read last time is still the live one and Read returns it without
// dumping anything. Counters move without a new generation, but they are
// not part of the comparison.
func (n *NFT) Read(table string) (*Ruleset, error) {
	nl, err := n.dial()
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	gen, err := getGen(nl)
	if err != nil {
		return nil, fmt.Errorf("read nftables generation: %w", err)
	}
	n.mu.Lock()
	cached, ok := n.cache[table]
	n.mu.Unlock()
	if ok && cached.gen == gen {
		return cached.rs, nil
	}
	rs, err := n.read(nl, table)
	if err != nil {
		return nil, err
	}
	// Cache only a read that no transaction interleaved with.
	if after, err := getGen(nl); err == nil && after == gen {
		n.mu.Lock()
		if n.cache == nil {
			n.cache = map[string]cachedRead{}
		}
		n.cache[table] = cachedRead{gen: gen, rs: rs}
		n.mu.Unlock()
	}
	return rs, nil
}

type cachedRead struct {
	gen uint32
	rs  *Ruleset // never modified once read
}

// read dumps the table: its sets with their elements, its chains with
// their rules.
func (n *NFT) read(nl *netlink.Conn, table string) (*Ruleset, error) {
	c, err := n.conn()
	if err != nil {
		return nil, err
	}
	t, err := c.ListTableOfFamily(table, nftables.TableFamilyINet)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read table inet %s: %w", table, err)
	}
	rs := &Ruleset{Table: table}
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("read sets of table inet %s: %w", table, err)
	}
	for _, s := range sets {
		elems, err := getElements(nl, table, s.Name)
		if err != nil {
			return nil, fmt.Errorf("read elements of set %s in table inet %s: %w", s.Name, table, err)
		}
		rs.Sets = append(rs.Sets, &Set{
			Name: s.Name, Type: s.KeyType, Interval: s.Interval,
			Constant: s.Constant, Timeout: s.HasTimeout, Dynamic: s.Dynamic,
			Elems: decodeElements(s, elems),
		})
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("read chains of table inet %s: %w", table, err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != table {
			continue
		}
		rules, err := n.getRules(nl, table, ch.Name)
		if err != nil {
			return nil, fmt.Errorf("read rules of chain %s in table inet %s: %w", ch.Name, table, err)
		}
		rs.Chains = append(rs.Chains, &Chain{Name: ch.Name, Type: ch.Type, Hook: ch.Hooknum, Priority: ch.Priority, Policy: ch.Policy, Rules: rules})
	}
	return rs, nil
}

// decodeElements turns the kernel's elements back into ranges. The kernel
// dumps interval sets in no useful order; sorted, every start is followed
// by its end element, or by nothing when the range runs to the last
// address. Anything else (someone's odd edit) still decodes to something
// that differs from what we want, so it shows as drift.
func decodeElements(s *nftables.Set, elems []rawElem) []Elem {
	if !s.Interval {
		return sortedSingles(elems)
	}
	slices.SortFunc(elems, func(a, b rawElem) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		// An end at k closes the range before a start at k opens one.
		switch {
		case a.end && !b.end:
			return -1
		case !a.end && b.end:
			return 1
		}
		return 0
	})
	var out []Elem
	var open []byte
	last := bytes.Repeat([]byte{0xff}, int(s.KeyType.Bytes))
	for _, e := range elems {
		switch {
		case e.end && open != nil:
			out = append(out, Elem{Lo: open, Hi: decrement(e.key)})
			open = nil
		case e.end:
			// An end without a start: nft adds one at 0 for some sets;
			// it matches nothing, so it changes nothing.
		default:
			if open != nil {
				out = append(out, Elem{Lo: open, Hi: open})
			}
			open = e.key
		}
	}
	if open != nil {
		out = append(out, Elem{Lo: open, Hi: last})
	}
	return out
}

// sortedSingles turns the elements of a set without intervals (dumped in
// hash order) into sorted single-value Elems. Keys are sorted as pairs of
// big-endian integers, which compare like the bytes and move no pointers:
// sorting 10,000 Elems (two slices each) cost a no-op plan a third of its
// time.
func sortedSingles(elems []rawElem) []Elem {
	type key struct{ hi, lo uint64 }
	keys := make([]key, 0, len(elems))
	size := 0
	var odd []Elem // keys longer than 16 bytes: none of our types
	for _, e := range elems {
		if len(e.key) > 16 {
			odd = append(odd, Elem{Lo: e.key, Hi: e.key})
			continue
		}
		var b [16]byte
		copy(b[:], e.key)
		keys = append(keys, key{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])})
		size = max(size, len(e.key))
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmpUint(a.hi, b.hi); c != 0 {
			return c
		}
		return cmpUint(a.lo, b.lo)
	})
	arena := make([]byte, len(keys)*16)
	out := make([]Elem, 0, len(elems))
	for i, k := range keys {
		b := arena[i*16 : i*16+16]
		binary.BigEndian.PutUint64(b[:8], k.hi)
		binary.BigEndian.PutUint64(b[8:], k.lo)
		out = append(out, Elem{Lo: b[:size:size], Hi: b[:size:size]})
	}
	slices.SortFunc(odd, func(a, b Elem) int { return bytes.Compare(a.Lo, b.Lo) })
	return append(out, odd...)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
