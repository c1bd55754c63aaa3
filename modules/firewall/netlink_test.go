package firewall

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockward/dockward/agent/agenttest"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// recorder captures the netlink messages a connection sends and acks each,
// as the kernel would on success.
type recorder struct{ msgs []netlink.Message }

func (r *recorder) dial(req []netlink.Message) ([]netlink.Message, error) {
	r.msgs = append(r.msgs, req...)
	var acks []netlink.Message
	for _, m := range req {
		if m.Header.Flags&netlink.Acknowledge != 0 {
			acks = append(acks, netlink.Message{
				Header: netlink.Header{Length: 4, Type: netlink.Error, Sequence: m.Header.Sequence, PID: m.Header.PID},
				Data:   []byte{0, 0, 0, 0},
			})
		}
	}
	return acks, nil
}

var msgNames = map[int]string{
	unix.NFT_MSG_NEWTABLE: "NEWTABLE", unix.NFT_MSG_DELTABLE: "DELTABLE", unix.NFT_MSG_NEWCHAIN: "NEWCHAIN",
	unix.NFT_MSG_NEWRULE: "NEWRULE", unix.NFT_MSG_NEWSET: "NEWSET", unix.NFT_MSG_NEWSETELEM: "NEWSETELEM",
}

// dumpMsgs prints messages without their sequence numbers and port IDs (which
// vary from run to run): type, flags, then the payload in hex.
func dumpMsgs(msgs []netlink.Message) string {
	var b strings.Builder
	for _, m := range msgs {
		name := fmt.Sprintf("type 0x%x", uint16(m.Header.Type))
		switch m.Header.Type {
		case netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN):
			name = "BATCH_BEGIN"
		case netlink.HeaderType(unix.NFNL_MSG_BATCH_END):
			name = "BATCH_END"
		default:
			if n, ok := msgNames[int(m.Header.Type&0xff)]; ok && int(m.Header.Type>>8) == unix.NFNL_SUBSYS_NFTABLES {
				name = "NFT_MSG_" + n
			}
		}
		fmt.Fprintf(&b, "%s flags=%s\n", name, m.Header.Flags)
		for i := 0; i < len(m.Data); i += 16 {
			fmt.Fprintf(&b, "  %04x  % x\n", i, m.Data[i:min(i+16, len(m.Data))])
		}
	}
	return b.String()
}

// TestNetlinkGolden records the batch Replace sends for small tables and
// compares it with testdata/netlink/*.golden. Each golden file starts with
// the equivalent nft command (the table as `nft -f` input, after
// `add table; delete table`), and TestKernelRenderMatchesNft proves that
// nft loading that text makes the same table in a kernel.
func TestNetlinkGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		hcl  string
	}{
		// nft -f: add table inet dockward; delete table inet dockward;
		//         table inet dockward { chain forward { type filter hook forward priority filter - 10; policy accept;
		//             ct state established,related accept } }
		{"empty", `firewall {}`},
		// nft -f: ... set egress_app_0_v4 { type ipv4_addr; flags interval; elements = { 192.0.2.0/24, 198.51.100.1 } }
		//         set egress_app_0_ports { type inet_service; elements = { 443 } }
		//         chain egress_app { meta nfproto ipv4 ip daddr @egress_app_0_v4 meta l4proto tcp th dport @egress_app_0_ports accept; counter drop }
		//         chain forward { ...; iifname "br-app" oifname "br-app" accept; iifname "br-app" jump egress_app }
		{"egress", `
firewall {
  network "app" {
    egress_allow {
      ports = [443]
      to    = ["192.0.2.0/24", "198.51.100.1"]
    }
  }
}`},
		// nft -f: ... chain ingress_app { meta nfproto ipv6 ip6 saddr @ingress_app_0_v6 meta l4proto udp ct original proto-dst @ingress_app_0_ports accept; counter drop }
		{"ingress", `
firewall {
  network "app" {
    ingress_allow {
      proto = "udp"
      ports = [5353]
      from  = ["2001:db8::/32"]
    }
  }
}`},
		// nft -f: ... chain input { type filter hook input priority filter - 10; policy accept;
		//             ct state established,related accept
		//             iifname "br-app" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit ip6 hoplimit 255 accept
		//             iifname "br-app" meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert ip6 hoplimit 255 accept
		//             iifname "br-app" limit rate 10/minute burst 5 packets log prefix "dw: input_app " level warn; iifname "br-app" counter drop }
		{"internal", `
firewall {
  log_prefix = "dw: "
  network "app" {
    internal = true
  }
}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Build(decodeHCL(t, tt.hcl), map[string]string{"app": "br-app"})
			if err != nil {
				t.Fatal(err)
			}
			var rec recorder
			if err := NewNFT(nftables.WithTestDial(rec.dial)).Replace(rs); err != nil {
				t.Fatal(err)
			}
			// One batch, and it starts by replacing the table.
			var types []string
			for _, m := range rec.msgs {
				types = append(types, strings.Fields(dumpMsgs([]netlink.Message{m}))[0])
			}
			if len(types) < 5 || strings.Join(types[:4], " ") != "BATCH_BEGIN NFT_MSG_NEWTABLE NFT_MSG_DELTABLE NFT_MSG_NEWTABLE" ||
				types[len(types)-1] != "BATCH_END" || strings.Count(strings.Join(types, " "), "BATCH_") != 2 {
				t.Errorf("messages are not one replacing batch: %v", types)
			}
			var b strings.Builder
			b.WriteString("# The batch dockward sends; the same as\n#   nft -f - <<'EOF'\n#   add table inet " + rs.Table + "\n#   delete table inet " + rs.Table + "\n")
			for _, l := range strings.Split(strings.TrimRight(Render(rs), "\n"), "\n") {
				b.WriteString("#   " + l + "\n")
			}
			b.WriteString("#   EOF\n\n")
			b.WriteString(dumpMsgs(rec.msgs))
			agenttest.Golden(t, filepath.Join("testdata", "netlink", tt.name+".golden"), b.String())
		})
	}
}

// Big sets are split over several messages (a netlink attribute holds at
// most 64 KiB), never splitting a range's start from its end.
func TestNetlinkSplitsElements(t *testing.T) {
	// 3000 separate /31 networks: 6000 interval elements.
	b := whitelist(3000)
	for i, p := range b.Networks[0].Egress[0].Addrs {
		a := p.Addr().As4()
		a[2], a[3] = byte(i>>6), byte(i<<2)
		b.Networks[0].Egress[0].Addrs[i] = netip.PrefixFrom(netip.AddrFrom4(a), 31)
	}
	rs, err := Build(b, map[string]string{"app": "br-app"})
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	if err := NewNFT(nftables.WithTestDial(rec.dial)).Replace(rs); err != nil {
		t.Fatal(err)
	}
	elemMsgs := 0
	for _, m := range rec.msgs {
		if m.Header.Type == netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM) {
			elemMsgs++
			if len(m.Data) > 65535 {
				t.Errorf("element message of %d bytes", len(m.Data))
			}
		}
	}
	// 3000 ranges = 6000 elements in messages of up to 1025, plus one for
	// the port set.
	if elemMsgs != 7 {
		t.Errorf("%d element messages, want 7", elemMsgs)
	}
	elems, _ := setElements(setNamed(rs, "egress_app_0_v4net"))
	for i := 0; i < len(elems); i += 2 {
		if elems[i].IntervalEnd || !elems[i+1].IntervalEnd {
			t.Fatalf("element %d: start/end out of order", i)
		}
	}
}
