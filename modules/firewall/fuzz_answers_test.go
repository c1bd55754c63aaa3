package firewall

import (
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
)

// More answers from outside: the nftables monitor's messages (tableOf),
// the user data of rules read back (ruleComment), and Docker's network
// inspect answers (BridgeName). None may panic.

func FuzzTableOf(f *testing.F) {
	ae := netlink.NewAttributeEncoder()
	ae.String(1, "dockward")
	ae.String(2, "forward")
	b, err := ae.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 1, 0})       // a length past the end
	f.Add([]byte{4, 0, 1, 0})             // an empty name
	f.Add([]byte{5, 0, 1, 0, 0, 0, 0, 0}) // a name of one NUL
	f.Fuzz(func(t *testing.T, attrs []byte) {
		if name := tableOf(attrs); len(name) > len(attrs) {
			t.Fatalf("table name %q longer than the message", name)
		}
	})
}

func FuzzRuleComment(f *testing.F) {
	f.Add([]byte{0, 8, 'd', 'o', 'c', 'k', 'w', 'a', 'r', 'd'})
	f.Add([]byte{0, 255, 'x'}) // a record running past the end: userdata.GetString panics here
	f.Add([]byte{1, 0, 0, 2, 'a', 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, udata []byte) {
		if c := ruleComment(udata); len(c) > len(udata) {
			t.Fatalf("comment %q longer than the user data", c)
		}
	})
}

func FuzzBridgeName(f *testing.F) {
	f.Add("0123456789abcdef", "app", "bridge", "")
	f.Add("", "bridge", "bridge", "")
	f.Add("abc", "x", "bridge", "")
	f.Add("0123456789abcdef", "x", "macvlan", "")
	f.Add("0123456789abcdef", "x", "bridge", "../../etc/passwd")
	f.Add("0123456789abcdef", "x", "bridge", strings.Repeat("a", 100))
	f.Fuzz(func(t *testing.T, id, name, driver, bridgeOpt string) {
		n := DockerNetwork{ID: id, Name: name, Driver: driver, Options: map[string]string{}}
		if bridgeOpt != "" {
			n.Options[bridgeNameOption] = bridgeOpt
		}
		br, err := BridgeName(n)
		if err == nil && br == "" {
			t.Fatal("no error and no bridge name")
		}
	})
}
