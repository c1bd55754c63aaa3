# dockward: build, test, demo, bench, lint. See README.md.
GO      ?= go
# dist/version.sh: 0.2.0 on a tag, 0.2.0+git<commit time>.<hash> after it,
# 0.0.0~git<commit time>.<hash> before the first; dpkg sorts them in commit order.
VERSION ?= $(shell dist/version.sh 2>/dev/null || echo 0.0.0~dev)
# The commit, for `dockward version` (the toolchain's own VCS stamp is not
# there in every checkout: git worktrees, GOFLAGS=-buildvcs=false).
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null)
COMMIT_TIME ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.commitTime=$(COMMIT_TIME)
PKGS    := ./...

.PHONY: build test unit lint bench fuzz demo acceptance-vagrant vagrant-validate clean

build: bin/dockward

bin/dockward: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/dockward ./cmd/dockward

FORCE:

# Everything: unit tests, and as root the real-host tiers (kernel nftables in
# network namespaces, the booted sandbox machines with systemd and Docker: the
# acceptance scenarios on Debian trixie and sid), then a check that no
# machine, namespace, veth or mount was left behind. hostdeps.sh installs the
# host packages these need first (as root; a fast check when all are there).
# A tier skipped for a reason outside this repository (sid's tree cannot be
# built today) is listed after the tests, as SKIPPED, never as passed.
SKIPLOG := $(CURDIR)/bin/skipped-tiers.txt
test: build
	@integration/hostdeps.sh test
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "make test: not root: skipping tier 1 (network namespaces) and tier 2 (sandbox machine) tests;"; \
	  echo "           they need CAP_SYS_ADMIN/CAP_NET_ADMIN. Run 'sudo make test' for the full suite."; \
	fi
	@rm -f $(SKIPLOG)
	@status=0; \
	DOCKWARD_BIN=$(CURDIR)/bin/dockward DOCKWARD_SKIP_LOG=$(SKIPLOG) $(GO) test -count=1 -timeout 80m $(PKGS) || status=$$?; \
	if [ -s $(SKIPLOG) ]; then echo "make test: SKIPPED tiers (not passed, not failed):"; sed 's/^/  SKIPPED: /' $(SKIPLOG); fi; \
	exit $$status
	@if [ -x integration/leakcheck.sh ]; then integration/leakcheck.sh; fi

# Unit tests only (no root needed, a few seconds).
unit:
	$(GO) test -count=1 -short $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	@if command -v shellcheck >/dev/null; then shellcheck -x -s bash integration/*.sh integration/scenarios/*.sh dist/*.sh; else echo "lint: shellcheck not installed, shell scripts not checked"; fi

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -count=1 $(PKGS)
	@if [ -x integration/bench.sh ]; then integration/bench.sh; fi

# Every fuzz target (func FuzzX in a _test.go file), each for FUZZTIME: go
# test fuzzes one target at a time. The targets cover every parser of
# outside input; their seed corpora hold the hostile inputs of issue 11.
# All run even when one fails; the status is the first failure's. Go 1.26's
# fuzz coordinator can fail a target with a bare "context deadline
# exceeded" when the time runs out mid-run on a loaded machine
# (golang/go#75804, fixed in Go 1.27): that, with no failing input
# written and the seeds and corpus passing when replayed, is not a failure.
FUZZTIME ?= 10s
fuzz:
	@status=0; log=$$(mktemp); \
	for t in $$(git grep -o -E '^func Fuzz[A-Za-z0-9_]*' -- '*_test.go' | sed -E 's|^(.*)/[^/]*:func |./\1:|; s|^[^/.][^:]*_test.go:func |.:|' | sort -u); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "== fuzz $$pkg $$name ($(FUZZTIME))"; \
	  if $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg >$$log 2>&1; then cat $$log; continue; else rc=$$?; cat $$log; fi; \
	  if grep -q 'context deadline exceeded' $$log && ! grep -q -e 'Failing input written' -e 'panic:' $$log && \
	     $(GO) test -count=1 -run "^$$name\$$" $$pkg >/dev/null 2>&1; then \
	    echo "== $$pkg $$name: time ran out mid-run (golang/go#75804); nothing found, seeds and corpus pass"; continue; \
	  fi; \
	  [ $$status != 0 ] || status=$$rc; echo "== FAILED: $$pkg $$name"; \
	done; rm -f $$log; exit $$status

# The main job: a throwaway sandbox host shown converging, drifting and being corrected.
demo: build
	@integration/hostdeps.sh demo
	integration/demo.sh

# Boots the Ubuntu 24.04 VM, runs the scenarios, destroys it on every exit path.
acceptance-vagrant: build
	integration/vagrant.sh

vagrant-validate:
	vagrant validate --ignore-provider

clean:
	rm -rf bin

# A .deb with the binary, the units, the default config and the shell
# completions the binary generates (nfpm, run at a pinned version without
# adding it to go.mod).
NFPM := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
package: build
	mkdir -p dist/out/completions
	bin/dockward completion bash >dist/out/completions/dockward.bash
	bin/dockward completion zsh >dist/out/completions/_dockward
	DOCKWARD_VERSION='$(VERSION)' $(GO) run $(NFPM) package -f dist/nfpm.yaml -p deb -t dist/out/
