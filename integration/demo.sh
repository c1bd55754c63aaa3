#!/bin/bash
# demo.sh: `make demo`: the sandbox demo (integration/demo) with the freshly
# built bin/dockward. Needs root (it boots a systemd-nspawn machine).
set -eu
cd "$(dirname "$0")/.."
exec go run ./integration/demo -dockward "$PWD/bin/dockward" "$@"
