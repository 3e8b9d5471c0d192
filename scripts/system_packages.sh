#!/bin/sh
# Installs the Debian packages that the test servers need, when they are missing.
#
# Each argument is COMMAND=PACKAGES: when COMMAND is not on PATH, PACKAGES (comma
# separated) are installed with apt-get. Runs only as root on a machine with apt-get;
# elsewhere it prints what to install and returns 0, and the tests that need the
# server skip with that reason (CI sets TAQUBA_MEMO_REQUIRE_SERVERS=1 so they fail).
set -eu
missing=""
for spec in "$@"; do
    cmd=${spec%%=*}
    pkgs=$(printf '%s' "${spec#*=}" | tr ',' ' ')
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/bin/$cmd" ] && [ ! -x "/usr/sbin/$cmd" ]; then
        missing="$missing $pkgs"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system_packages: not root or no apt-get; install these Debian packages for the full suite:$missing" >&2
    exit 0
fi
echo "system_packages: installing Debian packages for the local test servers:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
