#!/usr/bin/env bash
# Checks the Debian packages tessera needs to build and test. As root it
# installs the missing ones (after apt-get update); otherwise it prints the
# one apt-get line to run and fails.
set -euo pipefail

pkgs=(build-essential cmake ninja-build pkg-config clang libclang-rt-dev
      libsodium-dev libssl-dev libcjson-dev libsqlite3-dev libvips-dev jq openssl)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -eq 0 ]]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "deps: missing packages; run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
