#!/bin/bash
# vagrant.sh: `make acceptance-vagrant`: bring up the Ubuntu 24.04 VM of the
# Vagrantfile from scratch (the scenarios need a fresh host), which runs the
# acceptance scenarios while provisioning, then destroy it whatever happened.
# Needs vagrant with a provider (VirtualBox or libvirt) and bin/dockward
# (make build) or a dist/*.deb (make package).
set -u
cd "$(dirname "$0")/.." || exit 1
command -v vagrant >/dev/null || { echo "vagrant.sh: vagrant is not installed" >&2; exit 1; }
vagrant validate || exit 1
trap 'vagrant destroy -f >/dev/null 2>&1' EXIT INT TERM
vagrant destroy -f >/dev/null 2>&1
start=$SECONDS
vagrant up --provision
rc=$?
echo "vagrant.sh: VM acceptance run took $((SECONDS - start))s, exit $rc"
exit $rc
