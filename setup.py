"""Build hook: generate the gRPC code from proto/ into the package (see doors/grpc/codegen.py).

Everything else about the package is in pyproject.toml. The hook runs on wheel builds (the
generated code and the .proto go into the wheel) and on editable installs (the code is generated
into the source tree, where the package is imported from).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PACKAGE = Path("sentiric_tts") / "doors" / "grpc"


def _codegen():  # type: ignore[no-untyped-def]
    # Loaded by path: the package itself is not importable (nor installed) during its own build.
    spec = importlib.util.spec_from_file_location("_tts_codegen", ROOT / "src" / PACKAGE / "codegen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithGrpc(build_py):
    def run(self) -> None:
        super().run()
        codegen = _codegen()
        proto_root = ROOT / "proto"
        if self.editable_mode:
            codegen.ensure_generated(ROOT / "src" / PACKAGE / codegen.GENERATED_PACKAGE)
            return
        target = Path(self.build_lib) / PACKAGE
        codegen.generate(proto_root, target / codegen.GENERATED_PACKAGE)
        shipped = target / "proto" / codegen.PROTO_NAME
        shipped.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(proto_root / codegen.PROTO_NAME, shipped)


setup(cmdclass={"build_py": BuildPyWithGrpc})
