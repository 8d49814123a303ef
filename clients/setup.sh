#!/usr/bin/env bash
# Installs what the example clients in clients/ need to build and run. Idempotent:
# Debian packages are only installed when missing, and `npm ci` only runs when
# clients/node/node_modules is older than package-lock.json.
#
#   bash clients/setup.sh
#
# Everything comes from Debian packages and the npm registry: the Go client builds
# in GOPATH mode against Debian's Go libraries (no Go module proxy needed).
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  # Go client
  golang-go protobuf-compiler protoc-gen-go protoc-gen-go-grpc
  golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev
  # C++ client
  g++ make pkg-config libgrpc++-dev libprotobuf-dev protobuf-compiler-grpc
)
# Node client: Debian's nodejs and npm, unless a node/npm is already on PATH (for
# example NodeSource's nodejs, which bundles npm and conflicts with Debian's npm).
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "clients/setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "clients/setup.sh: Debian packages already installed"
fi

# Node client: exact versions from package-lock.json.
if [ ! -f node/node_modules/.package-lock.json ] || [ node/package-lock.json -nt node/node_modules/.package-lock.json ]; then
  (cd node && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "clients/setup.sh: node_modules up to date"
fi
