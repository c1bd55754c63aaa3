package firewall

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// Rules are read back by this file rather than by nftables.Conn.GetRules:
// google/nftables v0.3.0 decodes a ct expression's direction (a u8 on the
// wire, NFTA_CT_DIRECTION) as a u32 and then fails the whole chain, and the
// ingress rules use `ct original proto-dst`. Upstream fixed it after v0.3.0
// (google/nftables#317), in no release yet. Everything else goes through
// the library's own expression decoders; only that one attribute is widened
// before it is handed over.
//
// (Sending is unaffected in practice: the library writes the direction as a
// big-endian u32, the kernel reads its first byte, and that is 0, original,
// the only direction this module uses.)

// dial opens a raw netfilter netlink socket the way nftables.New(opts...)
// would: the options are applied to a scratch Conn to learn the namespace
// or test dialer they name.
func (n *NFT) dial() (*netlink.Conn, error) {
	var probe nftables.Conn
	for _, o := range n.opts {
		o(&probe)
	}
	var c *netlink.Conn
	if probe.TestDial != nil {
		c = nltest.Dial(probe.TestDial)
	} else {
		var err error
		c, err = netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: probe.NetNS})
		if err != nil {
			return nil, fmt.Errorf("open netfilter netlink socket: %w", err)
		}
	}
	if err := socketSetup(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// getRules dumps the rules of one chain of an inet table.
func (n *NFT) getRules(c *netlink.Conn, table, chain string) ([]Rule, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(table + "\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	fam := byte(nftables.TableFamilyINet)
	msgs, err := dump(c, netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{fam, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return nil, err
	}
	var rules []Rule
	for _, m := range msgs {
		if len(m.Data) < 4 {
			return nil, fmt.Errorf("short rule message (%d bytes)", len(m.Data))
		}
		r, err := decodeRule(fam, m.Data[4:])
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func decodeRule(fam byte, data []byte) (Rule, error) {
	var r Rule
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return r, err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					e, err := decodeExpr(fam, nad.Bytes())
					if err != nil {
						return err
					}
					r.Exprs = append(r.Exprs, e)
				}
				return nil
			})
		case unix.NFTA_RULE_USERDATA:
			r.Comment = ruleComment(ad.Bytes())
		}
	}
	return r, ad.Err()
}

// decodeExpr decodes one NFTA_LIST_ELEM holding an expression's name and
// data.
func decodeExpr(fam byte, b []byte) (expr.Any, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	var name string
	var data []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			name = ad.String()
		case unix.NFTA_EXPR_DATA:
			data = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil {
		return nil, err
	}
	e := newExpr(name)
	if e == nil {
		// Not one the library knows: keep its name so the rule still
		// renders differently from anything we would write.
		return &expr.Target{Name: "unknown expression " + name}, nil
	}
	if name == "ct" {
		if data, err = widenCtDirection(data); err != nil {
			return nil, err
		}
	}
	if err := expr.Unmarshal(fam, data, e); err != nil {
		return nil, fmt.Errorf("decode %s expression: %w", name, err)
	}
	// A verdict is an immediate that writes the verdict register; the
	// library decodes it as one when asked for a Verdict.
	if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT && len(imm.Data) == 0 {
		v := &expr.Verdict{}
		if err := expr.Unmarshal(fam, data, v); err != nil {
			return nil, fmt.Errorf("decode verdict: %w", err)
		}
		return v, nil
	}
	return e, nil
}

// widenCtDirection rewrites NFTA_CT_DIRECTION from the kernel's u8 to the
// u32 the library's decoder expects.
func widenCtDirection(data []byte) ([]byte, error) {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return nil, err
	}
	var attrs []netlink.Attribute
	for ad.Next() {
		a := netlink.Attribute{Type: ad.Type(), Data: ad.Bytes()}
		if a.Type == unix.NFTA_CT_DIRECTION && len(a.Data) == 1 {
			a.Data = binaryutil.BigEndian.PutUint32(uint32(a.Data[0]))
		}
		attrs = append(attrs, a)
	}
	if err := ad.Err(); err != nil {
		return nil, err
	}
	return netlink.MarshalAttributes(attrs)
}

// newExpr returns an empty expression of the library's type for name (the
// same table as the library's own decoder), or nil.
func newExpr(name string) expr.Any {
	switch name {
	case "ct":
		return &expr.Ct{}
	case "range":
		return &expr.Range{}
	case "meta":
		return &expr.Meta{}
	case "cmp":
		return &expr.Cmp{}
	case "counter":
		return &expr.Counter{}
	case "objref":
		return &expr.Objref{}
	case "payload":
		return &expr.Payload{}
	case "lookup":
		return &expr.Lookup{}
	case "immediate":
		return &expr.Immediate{}
	case "bitwise":
		return &expr.Bitwise{}
	case "redir":
		return &expr.Redir{}
	case "nat":
		return &expr.NAT{}
	case "limit":
		return &expr.Limit{}
	case "quota":
		return &expr.Quota{}
	case "dynset":
		return &expr.Dynset{}
	case "log":
		return &expr.Log{}
	case "exthdr":
		return &expr.Exthdr{}
	case "match":
		return &expr.Match{}
	case "target":
		return &expr.Target{}
	case "connlimit":
		return &expr.Connlimit{}
	case "queue":
		return &expr.Queue{}
	case "reject":
		return &expr.Reject{}
	case "masq":
		return &expr.Masq{}
	case "hash":
		return &expr.Hash{}
	case "fib":
		return &expr.Fib{}
	case "numgen":
		return &expr.Numgen{}
	case "notrack":
		return &expr.Notrack{}
	}
	return nil
}

// getElements dumps a set's elements and calls fn with each one's key (which
// points into the dump's buffers) and interval-end flag. It walks the netlink
// attributes by hand instead of through nftables.Conn.GetSetElements: a plan
// reads every element of every set, and for 10,000 addresses the library's
// per-attribute decoders and allocations took most of a no-op plan's time.
// hint is called first with an upper bound of the number of elements.
func getElements(c *netlink.Conn, table, set string, hint func(int), fn func(key []byte, end bool) error) error {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(table + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set + "\x00")},
	})
	if err != nil {
		return err
	}
	msgs, err := dump(c, netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{byte(nftables.TableFamilyINet), unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return err
	}
	size := 0
	for _, m := range msgs {
		size += len(m.Data)
	}
	hint(size / 16) // an element takes at least 16 bytes
	for _, m := range msgs {
		if len(m.Data) < 4 {
			return fmt.Errorf("short set element message (%d bytes)", len(m.Data))
		}
		err := walkAttrs(m.Data[4:], func(typ uint16, b []byte) error {
			if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				return nil
			}
			return walkAttrs(b, func(typ uint16, b []byte) error {
				if typ != unix.NFTA_LIST_ELEM {
					return nil
				}
				var key []byte
				var end bool
				err := walkAttrs(b, func(typ uint16, b []byte) error {
					switch typ {
					case unix.NFTA_SET_ELEM_KEY:
						return walkAttrs(b, func(typ uint16, b []byte) error {
							if typ == unix.NFTA_DATA_VALUE {
								key = b
							}
							return nil
						})
					case unix.NFTA_SET_ELEM_FLAGS:
						if len(b) == 4 {
							end = binary.BigEndian.Uint32(b)&unix.NFT_SET_ELEM_INTERVAL_END != 0
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
				return fn(key, end)
			})
		})
		if err != nil {
			return fmt.Errorf("decode elements of set %s: %w", set, err)
		}
	}
	return nil
}

// walkAttrs calls fn for each netlink attribute in b (type without the
// nested and byte-order flags, and payload).
func walkAttrs(b []byte, fn func(typ uint16, data []byte) error) error {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(b) {
			return fmt.Errorf("malformed netlink attribute (length %d of %d)", l, len(b))
		}
		if err := fn(typ, b[4:l]); err != nil {
			return err
		}
		l = (l + 3) &^ 3
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return nil
}

// dumpBuffer is what each recvmsg of a dump reads into. The kernel sizes
// each round of a dump by the largest buffer recvmsg was called with on the
// socket, up to 32 KiB (SKB_WITH_OVERHEAD(32768) in netlink_recvmsg).
const dumpBuffer = 64 << 10

// dumpBuffers holds the buffers dumps receive into (dumpBuffer bytes each):
// a plan makes a dozen dumps, of a few hundred bytes to 32 KiB a round.
var dumpBuffers = sync.Pool{New: func() any { b := make([]byte, dumpBuffer); return &b }}

// dump sends a dump request and collects the reply. It reads the socket
// itself rather than through netlink.Conn.Receive, which peeks with one
// page and doubles: the kernel then fills 4 KiB rounds, and since a set
// dump walks the set from its start every round, a 20,000-element set cost
// ~140 walks and five syscalls per round. With a 64 KiB read the rounds are
// 32 KiB, one syscall each.
func dump(c *netlink.Conn, m netlink.Message) ([]netlink.Message, error) {
	// A dump that a transaction interrupted (NLM_F_DUMP_INTR) may mix old
	// and new state: ask again, a few times.
	for try := 0; ; try++ {
		msgs, intr, err := dumpOnce(c, m)
		if err != nil || !intr || try == 2 {
			return msgs, err
		}
	}
}

func dumpOnce(c *netlink.Conn, m netlink.Message) (_ []netlink.Message, interrupted bool, _ error) {
	req, err := c.Send(m)
	if err != nil {
		return nil, false, err
	}
	rc, err := c.SyscallConn()
	if err != nil { // nltest: no socket
		msgs, err := c.Receive()
		if err != nil {
			return nil, false, err
		}
		return msgs, false, netlink.Validate(req, msgs)
	}
	var out []netlink.Message
	bp := dumpBuffers.Get().(*[]byte)
	defer dumpBuffers.Put(bp)
	buf := *bp
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, _, _, rerr = unix.Recvmsg(int(fd), buf, nil, unix.MSG_DONTWAIT)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return nil, false, fmt.Errorf("receive dump: %w", err)
		}
		// The messages returned point into their round's bytes: keep those
		// (only as many as came), and read the next round into buf again.
		raw, err := syscall.ParseNetlinkMessage(bytes.Clone(buf[:n]))
		if err != nil {
			return nil, false, fmt.Errorf("parse dump: %w", err)
		}
		for _, r := range raw {
			if r.Header.Seq != req.Header.Sequence {
				continue // a late answer to something else
			}
			if r.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch r.Header.Type {
			case unix.NLMSG_DONE:
				return out, interrupted, nil
			case unix.NLMSG_ERROR:
				if len(r.Data) >= 4 {
					if errno := -int32(binary.NativeEndian.Uint32(r.Data[:4])); errno != 0 {
						return nil, false, syscall.Errno(errno)
					}
				}
				return out, interrupted, nil
			}
			out = append(out, netlink.Message{
				Header: netlink.Header{Length: r.Header.Len, Type: netlink.HeaderType(r.Header.Type),
					Flags: netlink.HeaderFlags(r.Header.Flags), Sequence: r.Header.Seq, PID: r.Header.Pid},
				Data: r.Data,
			})
		}
	}
}

// getGen returns the namespace's nftables ruleset generation, which every
// committed transaction increments.
func getGen(c *netlink.Conn) (uint32, error) {
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: netlink.Request,
		},
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		var gen uint32
		var found bool
		_ = walkAttrs(m.Data[4:], func(typ uint16, b []byte) error {
			if typ == unix.NFTA_GEN_ID && len(b) == 4 {
				gen, found = binary.BigEndian.Uint32(b), true
			}
			return nil
		})
		if found {
			return gen, nil
		}
	}
	return 0, errors.New("no generation in the kernel's answer")
}

// ruleComment returns the comment in a rule's user data (type-length-value
// records of one byte each, as nft writes them). It is
// userdata.GetString with bounds checks: that one panics on a record that
// runs past the end.
func ruleComment(udata []byte) string {
	for len(udata) >= 2 {
		typ, l := udata[0], int(udata[1])
		if 2+l > len(udata) {
			return ""
		}
		if typ == byte(userdata.TypeComment) {
			return string(bytes.TrimRight(udata[2:2+l], "\x00"))
		}
		udata = udata[2+l:]
	}
	return ""
}
