#!/usr/bin/env bash
# Builds and runs the Go, Node and C++ example clients against a running server:
#
#   bash clients/run_all.sh 127.0.0.1:8080
#
# Run clients/setup.sh once first. Exits non-zero if any client fails to build or
# reports an unexpected answer; runs all three either way and prints a summary.
set -uo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 HOST:PORT" >&2
  exit 2
fi
ADDRESS=$1
HERE="$(cd "$(dirname "$0")" && pwd)"
failed=()

step() {  # step NAME COMMAND...: run, time and record a failure
  local name=$1; shift
  local start=$SECONDS
  echo "=== $name"
  if "$@"; then
    echo "=== $name: ok ($((SECONDS - start)) s)"
  else
    echo "=== $name: FAILED ($((SECONDS - start)) s)"
    failed+=("$name")
    return 1
  fi
}

step "go: build" bash "$HERE/go/build.sh" && step "go: run" "$HERE/go/build/bin/mlmd-go-client" "$ADDRESS"
step "node: run" node "$HERE/node/client.js" "$ADDRESS"
step "cpp: build" make -s -C "$HERE/cpp" -j"$(nproc 2>/dev/null || echo 2)" && step "cpp: run" "$HERE/cpp/build/mlmd-cpp-client" "$ADDRESS"

if [ ${#failed[@]} -gt 0 ]; then
  echo "clients failed: ${failed[*]}"
  exit 1
fi
echo "all clients passed"
