#!/bin/sh
# Installs the Debian packages pg2qdrant needs to build and test.
# Does nothing (and needs no root) when they are all installed already.
#   scripts/install-deps.sh               build + test packages (CI, scripts/test.sh)
#   scripts/install-deps.sh --build-only  only what a Release build with -DP2Q_TESTS=OFF
#                                         needs (deploy/Dockerfile)
set -eu

PACKAGES="cmake gcc clang pkg-config libpq-dev libcurl4-openssl-dev libjansson-dev libinih-dev
libmicrohttpd-dev libcmocka-dev postgresql-15 python3 python3-jsonschema python3-yaml valgrind gdb"

# make and libc6-dev are only Recommends of cmake and gcc: name them for a bare image.
BUILD_PACKAGES="cmake make gcc libc6-dev pkg-config libpq-dev libcurl4-openssl-dev libjansson-dev
libinih-dev libmicrohttpd-dev"

case "${1:-}" in
    "") ;;
    --build-only) PACKAGES=$BUILD_PACKAGES ;;
    -h|--help) sed -n '2,6s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown option '$1' (use --build-only or nothing)" >&2; exit 2 ;;
esac

missing=""
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "installed" ] || missing="$missing $pkg"
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages are installed"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps: missing:$missing; run as root or install sudo" >&2
    exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086  # word splitting of the package list is intended
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
