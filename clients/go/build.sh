#!/usr/bin/env bash
# Generates Go code from ../../protos and builds bin/mlmd-go-client, offline, in
# GOPATH mode against Debian's Go packages (/usr/share/gocode):
#
#   bash clients/go/build.sh        # then: clients/go/build/bin/mlmd-go-client HOST:PORT
#
# The .proto files have no go_package option and must stay byte-for-byte MLMD's,
# so the Go import path is given to protoc with M mappings instead.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PROTOS="$(cd "$HERE/../../protos" && pwd)"
BUILD="$HERE/build"
GOPKG=lineagedb/mlmdpb                    # import path of the generated package (GOPATH mode)
OUT="$BUILD/gopath/src/$GOPKG"

for tool in go protoc protoc-gen-go protoc-gen-go-grpc; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing $tool: run clients/setup.sh" >&2; exit 127; }
done

rm -rf "$OUT" && mkdir -p "$OUT" "$BUILD/bin" "$BUILD/gocache"
MAPS=""
for f in ml_metadata/proto/metadata_store.proto ml_metadata/proto/metadata_store_service.proto; do
  MAPS="$MAPS,M$f=$GOPKG"
done
MAPS="${MAPS#,}"
# paths=source_relative would mirror ml_metadata/proto/; import mode puts both files
# straight into $OUT because the M mapping names the package directly.
protoc -I "$PROTOS" -I /usr/include \
  --go_out="$BUILD/gopath/src" --go_opt="$MAPS" \
  --go-grpc_out="$BUILD/gopath/src" --go-grpc_opt="$MAPS" \
  ml_metadata/proto/metadata_store.proto ml_metadata/proto/metadata_store_service.proto

mkdir -p "$BUILD/gopath/src/mlmdclient"
cp "$HERE"/main.go "$BUILD/gopath/src/mlmdclient/"
export GO111MODULE=off GOFLAGS= GOPROXY=off
export GOPATH="$BUILD/gopath:/usr/share/gocode"
export GOCACHE="$BUILD/gocache"
go build -o "$BUILD/bin/mlmd-go-client" mlmdclient
echo "built $BUILD/bin/mlmd-go-client"
