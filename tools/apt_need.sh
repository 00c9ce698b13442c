#!/usr/bin/env bash
# Install the Debian packages named on the command line that are not installed yet, for the
# developer targets that need system tools (make test-cpp: doctest-dev; make fuzz: clang and
# libclang-rt). Prints what it does; when a package is missing and cannot be installed (not
# root, no apt-get, no mirror), says which and how, and exits 1.
# Usage: tools/apt_need.sh PACKAGE...
set -euo pipefail
missing=()
for package in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "apt_need: installing ${missing[*]}"
fail() {
  echo "apt_need: ERROR: could not install ${missing[*]}: $1" >&2
  echo "apt_need: install them yourself (as root: apt-get update && apt-get install -y ${missing[*]}), then run this again." >&2
  exit 1
}
command -v apt-get >/dev/null || fail "apt-get not found (not a Debian/Ubuntu system)"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    fail "not root and no password-less sudo"
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine may be empty or stale: refresh once if the first try fails.
if ! "${sudo[@]}" apt-get install -y -q "${missing[@]}"; then
  "${sudo[@]}" apt-get update -q || fail "apt-get update failed (is the Debian mirror reachable?)"
  "${sudo[@]}" apt-get install -y -q "${missing[@]}" || fail "apt-get install failed"
fi
for package in "${missing[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    fail "$package is still not installed after apt-get install"
done
echo "apt_need: installed ${missing[*]}"
