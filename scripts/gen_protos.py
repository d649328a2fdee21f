"""Regenerate node/wire/ewx_pb2.py(i) from proto/ewx/v1/ewx.proto.

`--check` regenerates into a temporary folder and exits 1 if the committed
files differ (CI runs it through tests/node/wire/test_generated.py).

The proto is one file with no local imports, so the generated module can sit
inside the `node` package unchanged: no import rewriting, no sys.path tricks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO = PROTO_ROOT / "ewx" / "v1" / "ewx.proto"
OUT = ROOT / "node" / "wire"
GENERATED = ("ewx_pb2.py", "ewx_pb2.pyi")


def generate(dest: Path) -> None:
    """Run protoc (from grpcio-tools) and put the generated files in `dest`."""
    from grpc_tools import protoc  # dev dependency: only the generator needs it

    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{Path(protoc.__file__).parent / '_proto'}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            str(PROTO),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        for name in GENERATED:
            data = (Path(tmp) / "ewx" / "v1" / name).read_bytes()
            (dest / name).write_bytes(data)


def stale_files() -> list[str]:
    """Names of committed generated files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        return [
            name
            for name in GENERATED
            if not (OUT / name).exists() or (OUT / name).read_bytes() != (Path(tmp) / name).read_bytes()
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        if stale:
            print(f"stale generated code: {', '.join(stale)}; run scripts/gen_protos.py", file=sys.stderr)
            return 1
        print("generated code is fresh")
        return 0
    generate(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
