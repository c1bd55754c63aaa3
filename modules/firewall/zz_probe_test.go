package firewall

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/dockward/dockward/integration/netnstest"
)

func TestProbeNftListTime(t *testing.T) {
	ns := netnstest.New(t)
	_, rs := whitelistModule(10000, ns)
	if err := NewNFT(ns.NFTOpts()...).Replace(rs); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		start := time.Now()
		ns.Do(func() error {
			c := exec.Command("nft", "list", "set", "inet", "dockward", "egress_app_0_v4")
			c.Stdout = nil
			return c.Run()
		})
		t.Log("nft list set:", time.Since(start))
		start = time.Now()
		ns.Do(func() error { return exec.Command("nft", "list", "chain", "inet", "dockward", "forward").Run() })
		t.Log("nft list chain:", time.Since(start))
		n := NewNFT(ns.NFTOpts()...)
		start = time.Now()
		c, _ := n.conn()
		tb, _ := c.ListTableOfFamily("dockward", 1)
		sets, _ := c.GetSets(tb)
		t.Log("sets:", time.Since(start))
		for _, s := range sets {
			s0 := time.Now()
			e, _ := c.GetSetElements(s)
			t.Log(s.Name, len(e), time.Since(s0))
		}
	}
	_ = os.Stdout
}
