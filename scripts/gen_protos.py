"""Generate Python code (messages, gRPC stubs, typed .pyi stubs) from protos/.

The output lands in src/lineagedb/proto/, which git ignores. protoc writes imports
as `from ml_metadata.proto import ...`; we rewrite them to
`from lineagedb.proto.ml_metadata.proto import ...` so our generated modules can
never shadow the official `ml_metadata` package when both are installed.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "src" / "lineagedb" / "proto"
IMPORT_RE = re.compile(r"^(from|import) ml_metadata\.", re.MULTILINE)
# LineageDB's own protos (package lineagedb.v1) are generated under lineagedb.proto too.
OWN_IMPORT_RE = re.compile(r"^(from|import) lineagedb\.v1", re.MULTILINE)
# In stubs, qualified type names (ml_metadata.proto.x_pb2.Foo) must follow the move too.
# Never apply this to .py files: their serialized descriptors contain the package name.
STUB_NAME_RE = re.compile(r"(?<![\w.])ml_metadata\.proto\.")


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    # The mypy-protobuf plugins are installed next to the interpreter running us.
    bindir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *sources,
    ]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    for path in OUT.rglob("*.py*"):
        text = path.read_text()
        fixed = IMPORT_RE.sub(r"\1 lineagedb.proto.ml_metadata.", text)
        fixed = OWN_IMPORT_RE.sub(r"\1 lineagedb.proto.lineagedb.v1", fixed)
        if path.suffix == ".pyi":
            fixed = STUB_NAME_RE.sub("lineagedb.proto.ml_metadata.proto.", fixed)
        if fixed != text:
            path.write_text(fixed)
    for directory in [OUT, *[p for p in OUT.rglob("*") if p.is_dir()]]:
        (directory / "__init__.py").touch()
    (OUT / "py.typed").touch()
    print(f"generated {len(sources)} proto files into {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
