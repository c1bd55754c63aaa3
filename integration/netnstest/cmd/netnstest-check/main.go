// Command netnstest-check fails when a test left a network namespace (or a
// host link) behind. `make test` runs it last: a harness that leaks would
// otherwise go unnoticed until the machine fills with namespaces.
package main

import (
	"fmt"
	"os"

	"github.com/dockward/dockward/integration/netnstest"
)

func main() {
	left, err := netnstest.Leftovers()
	if err != nil {
		fmt.Fprintln(os.Stderr, "netnstest-check:", err)
		os.Exit(1)
	}
	if len(left) > 0 {
		for _, l := range left {
			fmt.Fprintln(os.Stderr, "netnstest-check: left behind by a test:", l)
		}
		os.Exit(1)
	}
}
