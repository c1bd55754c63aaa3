package firewall

import (
	"bytes"
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

func (n *NFT) conn(extra ...nftables.ConnOption) (*nftables.Conn, error) {
	opts := append(slices.Clone(n.opts), nftables.WithSockOptions(socketSetup))
	opts = append(opts, extra...)
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
	size := int(s.Type.Bytes)
	if size < 1 || size > 16 || len(s.Long) > 0 {
		return nil, fmt.Errorf("set %s: keys of %d bytes are not supported", s.Name, s.Type.Bytes)
	}
	n := len(s.Elems)
	if s.Interval {
		n *= 2
	}
	out := make([]nftables.SetElement, 0, n)
	arena := make([]byte, 0, n*size) // every key, in one allocation
	key := func(k Key) []byte {
		arena = k.appendBytes(arena, size)
		return arena[len(arena)-size : len(arena) : len(arena)]
	}
	for _, e := range s.Elems {
		if !e.Lo.fits(size) || !e.Hi.fits(size) || e.Hi.cmp(e.Lo) < 0 {
			return nil, fmt.Errorf("set %s: element %s does not fit a set of %s", s.Name, renderElem(s.Type, e), s.Type.Name)
		}
		if !s.Interval {
			if !e.single() {
				return nil, fmt.Errorf("set %s: range element in a set without flags interval", s.Name)
			}
			out = append(out, nftables.SetElement{Key: key(e.Lo)})
			continue
		}
		out = append(out, nftables.SetElement{Key: key(e.Lo)})
		if end, ok := e.Hi.add1(size); ok {
			out = append(out, nftables.SetElement{Key: key(end), IntervalEnd: true})
		}
	}
	return out, nil
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
	// One socket for the library's three requests, not one each (in a
	// test's namespace, each also costs a thread switching namespaces).
	c, err := n.conn(nftables.AsLasting())
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.CloseLasting() }()
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
		elems, long, err := readElements(nl, table, s)
		if err != nil {
			return nil, fmt.Errorf("read elements of set %s in table inet %s: %w", s.Name, table, err)
		}
		rs.Sets = append(rs.Sets, &Set{
			Name: s.Name, Type: s.KeyType, Interval: s.Interval,
			Constant: s.Constant, Timeout: s.HasTimeout, Dynamic: s.Dynamic,
			Elems: elems, Long: long,
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

// rawElem is one element of an interval set as the kernel dumps it.
type rawElem struct {
	key Key
	end bool // NFT_SET_ELEM_INTERVAL_END
}

// readElements dumps a set's elements and returns them as sorted Elems
// (or, for keys over 16 bytes, as Long). Keys go from the dump's bytes
// straight into one flat array of Elems: for 10,000 addresses, a slice per
// key cost a no-op plan milliseconds.
func readElements(nl *netlink.Conn, table string, s *nftables.Set) ([]Elem, [][]byte, error) {
	size := int(s.KeyType.Bytes)
	if size < 1 || size > 16 {
		long, err := readLongElements(nl, table, s)
		return nil, long, err
	}
	checkLen := func(key []byte) error {
		if len(key) != size {
			return fmt.Errorf("element key of %d bytes in a set of %d-byte keys", len(key), size)
		}
		return nil
	}
	if !s.Interval {
		// A hash set, dumped in hash order: sort the values.
		var elems []Elem
		err := getElements(nl, table, s.Name, func(n int) { elems = make([]Elem, 0, n) }, func(key []byte, _ bool) error {
			if err := checkLen(key); err != nil {
				return err
			}
			k := keyOf(key)
			elems = append(elems, Elem{k, k})
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		radixSort(elems, func(e Elem) Key { return e.Lo })
		return elems, nil, nil
	}
	var raw []rawElem
	err := getElements(nl, table, s.Name, func(n int) { raw = make([]rawElem, 0, n) }, func(key []byte, end bool) error {
		if err := checkLen(key); err != nil {
			return err
		}
		raw = append(raw, rawElem{keyOf(key), end})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return decodeIntervals(raw, size), nil, nil
}

// decodeIntervals turns the elements of an interval set back into ranges.
// The kernel dumps them in no useful order; sorted, every start is followed
// by its end element, or by nothing when the range runs to the last key.
// Anything else (someone's odd edit) still decodes to something that
// differs from what we want, so it shows as drift.
func decodeIntervals(raw []rawElem, size int) []Elem {
	radixSort(raw, func(e rawElem) Key { return e.key })
	// An end at k closes the range before a start at k opens one: in each
	// run of equal keys, ends first.
	for i := 0; i < len(raw); {
		j, k := i, i
		for ; j < len(raw) && raw[j].key == raw[i].key; j++ {
			if raw[j].end {
				raw[j], raw[k] = raw[k], raw[j]
				k++
			}
		}
		i = j
	}
	out := make([]Elem, 0, len(raw)/2+1)
	var open Key
	opened := false
	for _, e := range raw {
		switch {
		case e.end && opened:
			// open < e.key: an end at open's key sorts before it.
			out = append(out, Elem{open, e.key.sub1()})
			opened = false
		case e.end:
			// An end without a start: nft adds one at 0 for some sets;
			// it matches nothing, so it changes nothing.
		default:
			if opened {
				out = append(out, Elem{open, open})
			}
			open, opened = e.key, true
		}
	}
	if opened {
		out = append(out, Elem{open, maxKey(size)})
	}
	return out
}

// readLongElements reads a set whose keys are longer than 16 bytes
// (concatenations: never dockward's), each key as dumped (an interval's
// end, NFTA_SET_ELEM_KEY_END, is left out), sorted.
func readLongElements(nl *netlink.Conn, table string, s *nftables.Set) ([][]byte, error) {
	var out [][]byte
	err := getElements(nl, table, s.Name, func(int) {}, func(key []byte, _ bool) error {
		out = append(out, key)
		return nil
	})
	slices.SortFunc(out, bytes.Compare)
	return out, err
}
