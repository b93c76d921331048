"""Generate the Python code of the gRPC contract (proto/sentiric/tts/v1/tts_coqui.proto).

The generated modules are build outputs, never committed: setup.py's build hook writes them into
the wheel (and into the source tree for an editable install), and `ensure_generated()` runs on
first import as a fallback. A stamp holds the .proto's SHA-256, so the code is regenerated when
the contract changes; content, not file times, because wheel installs do not keep mtimes.

This module imports nothing from sentiric_tts: setup.py loads it by path, before the package is
installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

PROTO_NAME = "sentiric/tts/v1/tts_coqui.proto"
"""The contract's path under a proto root: also its name in the descriptor pool (reflection)."""
MODULE = "tts_coqui"
GENERATED_PACKAGE = "_generated"
STAMP = "PROTO_SHA256"

_HERE = Path(__file__).resolve().parent
_PACKAGED_PROTO_ROOT = _HERE / "proto"  # where the build hook copies the .proto in a wheel
_SOURCE_PROTO_ROOT = _HERE.parents[3] / "proto"  # <repo>/proto, from <repo>/src/sentiric_tts/doors/grpc


def find_proto_root() -> Path | None:
    """The folder holding PROTO_NAME: the repository's proto/ in a checkout, else the packaged copy."""
    for root in (_SOURCE_PROTO_ROOT, _PACKAGED_PROTO_ROOT):
        if (root / PROTO_NAME).is_file():
            return root
    return None


def proto_digest(proto_root: Path) -> str:
    return hashlib.sha256((proto_root / PROTO_NAME).read_bytes()).hexdigest()


def is_current(out_dir: Path, proto_root: Path) -> bool:
    stamp = out_dir / STAMP
    return stamp.is_file() and stamp.read_text().strip() == proto_digest(proto_root)


def generate(proto_root: Path, out_dir: Path) -> None:
    """Compile the contract into `out_dir` (a package: `__init__`, `_pb2`, `_pb2_grpc`, stubs)."""
    from importlib.resources import files

    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".protoc-", dir=out_dir.parent) as scratch:
        include = str(files("grpc_tools") / "_proto")  # the well-known types
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{proto_root}",
                f"-I{include}",
                f"--python_out={scratch}",
                f"--pyi_out={scratch}",
                f"--grpc_python_out={scratch}",
                str(proto_root / PROTO_NAME),
            ]
        )
        if code != 0:
            raise RuntimeError(f"protoc failed ({code}) on {proto_root / PROTO_NAME}")
        made = Path(scratch) / Path(PROTO_NAME).parent
        # protoc writes `from sentiric.tts.v1 import tts_coqui_pb2`: make it relative so the code
        # lives inside our package instead of claiming a top-level `sentiric` package.
        absolute = f"from {'.'.join(Path(PROTO_NAME).parent.parts)} import {MODULE}_pb2"
        grpc_module = made / f"{MODULE}_pb2_grpc.py"
        grpc_module.write_text(grpc_module.read_text().replace(absolute, f"from . import {MODULE}_pb2"))
        (made / "__init__.py").write_text(
            f'"""Generated from {PROTO_NAME} by sentiric_tts.doors.grpc.codegen; do not edit."""\n'
        )
        (made / STAMP).write_text(proto_digest(proto_root) + "\n")
        # One file at a time, each replaced atomically, the stamp last: a process importing
        # meanwhile sees either the old or the new version of each module, never half a file.
        for name in ("__init__.py", f"{MODULE}_pb2.py", f"{MODULE}_pb2.pyi", f"{MODULE}_pb2_grpc.py", STAMP):
            os.replace(made / name, out_dir / name)
    shutil.rmtree(out_dir / "__pycache__", ignore_errors=True)


def ensure_generated(out_dir: Path = _HERE / GENERATED_PACKAGE) -> None:
    """Generate the code unless it is there and made from the current contract."""
    proto_root = find_proto_root()
    if proto_root is None:
        if (out_dir / STAMP).is_file():
            return  # an installation that ships generated code without the .proto
        raise RuntimeError(f"The gRPC contract {PROTO_NAME} is missing from {_SOURCE_PROTO_ROOT}.")
    if not is_current(out_dir, proto_root):
        generate(proto_root, out_dir)
