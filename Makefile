# dockward: build, test, demo, bench, lint. See README.md.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PKGS    := ./...

.PHONY: build test unit lint bench demo acceptance-vagrant vagrant-validate clean

build: bin/dockward

bin/dockward: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/dockward ./cmd/dockward

FORCE:

# Everything: unit tests, and as root the real-host tiers (kernel nftables in
# network namespaces, the booted sandbox machine with systemd and Docker),
# then a check that no machine, namespace, veth or mount was left behind.
test: build
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "make test: not root: skipping tier 1 (network namespaces) and tier 2 (sandbox machine) tests;"; \
	  echo "           they need CAP_SYS_ADMIN/CAP_NET_ADMIN. Run 'sudo make test' for the full suite."; \
	fi
	DOCKWARD_BIN=$(CURDIR)/bin/dockward $(GO) test -count=1 -timeout 80m $(PKGS)
	@if [ -x integration/leakcheck.sh ]; then integration/leakcheck.sh; fi

# Unit tests only (no root needed, a few seconds).
unit:
	$(GO) test -count=1 -short $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	@if command -v shellcheck >/dev/null; then shellcheck -x -s bash integration/*.sh integration/scenarios/*.sh; else echo "lint: shellcheck not installed, shell scripts not checked"; fi

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -count=1 $(PKGS)
	@if [ -x integration/bench.sh ]; then integration/bench.sh; fi

# The main job: a throwaway sandbox host shown converging, drifting and being corrected.
demo: build
	integration/demo.sh

# Boots the Ubuntu 24.04 VM, runs the scenarios, destroys it on every exit path.
acceptance-vagrant: build
	integration/vagrant.sh

vagrant-validate:
	vagrant validate

clean:
	rm -rf bin

# A .deb with the binary, the units and the default config (nfpm, run at a
# pinned version without adding it to go.mod).
NFPM := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
package: build
	mkdir -p dist/out
	DOCKWARD_VERSION=$$(echo $(VERSION) | sed 's/^v//; s/^\([^0-9]\)/0.0.0~\1/') $(GO) run $(NFPM) package -f dist/nfpm.yaml -p deb -t dist/out/
