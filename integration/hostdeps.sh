#!/bin/bash
# hostdeps.sh: the host packages `make demo`, `make test` and CI need, checked
# in a few milliseconds and, when some are missing, installed with apt-get
# (as root, on Debian or Ubuntu), saying what and why. As another user it
# prints the one command to run instead.
#
#   hostdeps.sh demo|test|ci
#
# Exit status: 0 when everything the target needs is there (or was just
# installed); 1 when something is missing and could not be installed. For
# `test` run by an ordinary user, missing packages are reported but not
# fatal: without root make test runs only the unit tests, which need none.
set -u

target=${1:-}
case $target in
demo | test | ci) ;;
*)
	echo "usage: $0 demo|test|ci" >&2
	exit 2
	;;
esac

# One line per need: a command (or an absolute path) to look for, the Debian
# and Ubuntu package that provides it, the targets that need it, and why.
needs() {
	cat <<'EOF'
debootstrap|debootstrap|demo test ci|builds the sandbox machine's Debian root file system
systemd-nspawn|systemd-container|demo test ci|boots the sandbox machine
nsenter|util-linux|demo test ci|runs commands inside the sandbox machine
mount|mount|demo test ci|mounts the sandbox machine's overlay root
/usr/share/keyrings/debian-archive-keyring.gpg|debian-archive-keyring|demo test ci|lets debootstrap check Debian's signatures (on Ubuntu too)
ip|iproute2|test ci|network namespaces for the kernel nftables tests
nft|nftables|test ci|the firewall benchmark against nft, and debugging
/etc/protocols|netbase|test ci|nft resolves protocol names (ipv6-icmp) from /etc/protocols
sysctl|procps|test ci|the kernel packet tests turn on forwarding in their namespaces
dbus-daemon|dbus|test ci|private D-Bus buses for the systemd contract tests
useradd|passwd|test ci|the subordinate-ids module's user creation tests
zsh|zsh|test ci|the zsh completion test drives zsh
vagrant|vagrant|ci|vagrant validate checks the Vagrantfile
shellcheck|shellcheck|ci|make lint checks the shell scripts
EOF
}

present() {
	if [[ $1 == /* ]]; then [[ -e $1 ]]; else command -v "$1" >/dev/null 2>&1; fi
}

missing_pkgs=()
missing_lines=()
while IFS='|' read -r what pkg targets why; do
	[[ " $targets " == *" $target "* ]] || continue
	present "$what" && continue
	[[ " ${missing_pkgs[*]} " == *" $pkg "* ]] || missing_pkgs+=("$pkg")
	missing_lines+=("  $pkg ($what): $why")
done < <(needs)

if ((${#missing_pkgs[@]} == 0)); then
	exit 0
fi

say() { echo "hostdeps: $*"; }
install_line="apt-get install -y --no-install-recommends ${missing_pkgs[*]}"

if (($(id -u) != 0)); then
	say "make $target needs packages this machine lacks:"
	printf '%s\n' "${missing_lines[@]}"
	if [[ $target == test ]]; then
		say "without root make test runs only the unit tests, which need none of them."
		say "for the full suite run: sudo make test   (it installs them first)"
		exit 0
	fi
	say "run: sudo make $target   (it installs them first), or install them yourself:"
	say "     sudo apt-get update && sudo $install_line"
	exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
	say "make $target needs packages this machine lacks, and there is no apt-get to install them:"
	printf '%s\n' "${missing_lines[@]}"
	exit 1
fi

say "make $target needs packages this machine lacks; installing them with apt-get:"
printf '%s\n' "${missing_lines[@]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq; then
	say "apt-get update failed; the packages above are still missing"
	exit 1
fi
if ! $install_line -qq >/dev/null; then
	say "'$install_line' failed (run it yourself to see why)"
	exit 1
fi

still=()
while IFS='|' read -r what pkg targets _; do
	[[ " $targets " == *" $target "* ]] || continue
	present "$what" || still+=("$what ($pkg)")
done < <(needs)
if ((${#still[@]} > 0)); then
	say "still missing after the install: ${still[*]}"
	exit 1
fi
say "installed: ${missing_pkgs[*]}"
