package firewall

import (
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The read-back parsers take what the kernel sends; they must reject
// anything malformed with an error, never panic. Seeds: the rules and
// elements of a real table, as dockward sends them (the kernel dumps the
// same attributes).
func fuzzSeeds(f *testing.F, typ int) {
	rs, err := Build(whitelist(3), map[string]string{"app": "br-app"})
	if err != nil {
		f.Fatal(err)
	}
	var rec recorder
	if err := NewNFT(nftables.WithTestDial(rec.dial)).Replace(rs); err != nil {
		f.Fatal(err)
	}
	for _, m := range rec.msgs {
		if m.Header.Type == netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|typ) && len(m.Data) > 4 {
			f.Add(m.Data[4:])
		}
	}
}

func FuzzDecodeRule(f *testing.F) {
	fuzzSeeds(f, unix.NFT_MSG_NEWRULE)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRule(byte(nftables.TableFamilyINet), data)
		if err == nil {
			_ = RenderRule(r)
		}
	})
}

func FuzzWalkAttrs(f *testing.F) {
	fuzzSeeds(f, unix.NFT_MSG_NEWSETELEM)
	f.Fuzz(func(t *testing.T, data []byte) {
		var walk func(b []byte, depth int)
		walk = func(b []byte, depth int) {
			_ = walkAttrs(b, func(_ uint16, d []byte) error {
				if depth < 4 {
					walk(d, depth+1)
				}
				return nil
			})
		}
		walk(data, 0)
	})
}
