package firewall

// Declared networks that are not there yet, against the kernel with real
// packets. In one namespace standing for a Docker host:
//
//	c1 (172.30.0.2) ── br-app ─┐
//	                            host ── wan0 ── wan (198.51.100.1)
//	c4 (172.28.0.2) ── br-later ┘      (br-later and c4 only come later)
//
// "ghost" is resolved through Docker, which does not have it. The table
// goes in without it; br-later's rules are in the table before br-later
// exists, and hold from the moment it does, with no second apply.

import (
	"strings"
	"testing"

	"github.com/dockward/dockward/integration/netnstest"
)

const laterHCL = `
firewall {
  network "app" {
    bridge = "br-app"
    egress_allow {
      ports = [80]
      to    = ["198.51.100.0/24"]
    }
  }
  network "later" {
    bridge = "br-later"
    egress_allow {
      ports = [80]
      to    = ["198.51.100.0/24"]
    }
  }
  network "ghost" {
    egress_allow {
      ports = [443]
      to    = ["198.51.100.0/24"]
    }
  }
}`

// countingTables counts the module's table replacements.
type countingTables struct {
	Tables
	replaces int
}

func (c *countingTables) Replace(rs *Ruleset) error {
	c.replaces++
	return c.Tables.Replace(rs)
}

func TestPacketsMissingNetworks(t *testing.T) {
	host, wan, c1, c4 := netnstest.New(t), netnstest.New(t), netnstest.New(t), netnstest.New(t)
	host.Sysctl(t, "net.ipv4.ip_forward", "1")
	host.Bridge(t, "br-app")
	host.Addr(t, "br-app", "172.30.0.1/24")
	netnstest.Veth(t, host, "v-c1", c1, "eth0")
	host.Enslave(t, "v-c1", "br-app")
	c1.Addr(t, "eth0", "172.30.0.2/24")
	c1.Route(t, "default", "via", "172.30.0.1")
	netnstest.Veth(t, host, "wan0", wan, "eth0")
	host.Addr(t, "wan0", "198.51.100.2/24")
	wan.Addr(t, "eth0", "198.51.100.1/24")
	wan.Route(t, "172.16.0.0/12", "via", "198.51.100.2")
	wan.ServeTCP(t, ":80")
	wan.ServeTCP(t, ":8080")

	c1.ExpectTCP(t, "198.51.100.1:8080", true)
	if t.Failed() {
		t.Fatal("the topology does not carry traffic without a firewall; the checks below would prove nothing")
	}

	tables := &countingTables{Tables: NewNFT(host.NFTOpts()...)}
	m := NewWith(decodeHCL(t, laterHCL), tables, &fakeDocker{nets: map[string]DockerNetwork{}})
	plan := mustPlan(t, m)
	if len(plan.Pending) != 1 || plan.Pending[0].Target != "docker network ghost" {
		t.Fatalf("pending: %+v, want docker network ghost", plan.Pending)
	}
	mustApply(t, m, plan)
	if _, err := host.Run("ip", "link", "show", "br-later"); err == nil {
		t.Fatal("br-later exists already; the test would prove nothing")
	}

	// The network that exists is firewalled although another one is missing.
	c1.ExpectTCP(t, "198.51.100.1:80", true)
	c1.ExpectTCP(t, "198.51.100.1:8080", false)

	// br-later's rules are already in the kernel.
	listing := host.Exec(t, "nft", "list", "table", "inet", "dockward")
	if !strings.Contains(listing, `iifname "br-later" jump egress_later`) {
		t.Fatalf("br-later's rules are not in the table before it exists:\n%s", listing)
	}
	if strings.Contains(listing, "ghost") {
		t.Errorf("the table has rules for ghost, which has no bridge:\n%s", listing)
	}

	// Docker (or anyone) creates br-later, and a container on it.
	host.Bridge(t, "br-later")
	host.Addr(t, "br-later", "172.28.0.1/24")
	netnstest.Veth(t, host, "v-c4", c4, "eth0")
	host.Enslave(t, "v-c4", "br-later")
	c4.Addr(t, "eth0", "172.28.0.2/24")
	c4.Route(t, "default", "via", "172.28.0.1")

	// Its rules hold at once: nothing was applied in between.
	c4.ExpectTCP(t, "198.51.100.1:80", true)
	c4.ExpectTCP(t, "198.51.100.1:8080", false)
	if n := dropCount(t, host.Exec(t, "nft", "list", "table", "inet", "dockward"), "egress_later"); n == 0 {
		t.Errorf("egress_later dropped nothing")
	}
	if tables.replaces != 1 {
		t.Errorf("%d table replacements; want the one apply", tables.replaces)
	}
	if p := mustPlan(t, m); !p.Empty() {
		t.Errorf("plan once br-later exists: %+v", p.Changes)
	}

	// Docker creates ghost: its rules go in with the next apply (the
	// agent's, on Docker's network event).
	d := m.docker.(*fakeDocker)
	d.nets["ghost"] = DockerNetwork{ID: "9999999999998888", Name: "ghost", Driver: "bridge"}
	p := mustPlan(t, m)
	if p.Empty() || len(p.Pending) != 0 {
		t.Fatalf("plan once ghost exists: changes %+v, pending %+v", p.Changes, p.Pending)
	}
	mustApply(t, m, p)
	if !strings.Contains(host.Exec(t, "nft", "list", "chain", "inet", "dockward", "forward"), `iifname "br-999999999999" jump egress_ghost`) {
		t.Errorf("ghost's rules are not in the table after apply")
	}
	if p := mustPlan(t, m); !p.Empty() || len(p.Pending) != 0 {
		t.Errorf("plan after the second apply: %+v", p)
	}

	// Without the table, c4's blocked flow gets through: the drop above
	// was the firewall's, not the topology's.
	host.Exec(t, "nft", "delete", "table", "inet", "dockward")
	c4.ExpectTCP(t, "198.51.100.1:8080", true)
}
