"""The generated protobuf modules of shared/grpc, made with grpcio-tools' protoc (``make protos``).

protoc names each file in the descriptor pool by its path under the include folder; the .proto files are
copied under ``mtls_ref/shared/grpc/`` in a scratch folder first, so they register as
``mtls_ref/shared/grpc/health.proto`` (the import name), not as a bare ``health.proto`` that any other
program's file of that name would collide with. tests/test_grpc_protos.py regenerates into a temporary
folder and compares with what is committed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Final

from .peers import REPO

GRPC_DIR: Final = REPO / "shared" / "grpc"
PACKAGE_PATH: Final = Path("mtls_ref", "shared", "grpc")
PROTOS: Final = ("health.proto", "identity.proto")


def generated_names() -> list[str]:
    """The files protoc writes for :data:`PROTOS`: ``health_pb2.py``, ``health_pb2.pyi``..."""
    return [f"{Path(proto).stem}_pb2{suffix}" for proto in PROTOS for suffix in (".py", ".pyi")]


def generate(out_dir: Path) -> None:
    """Run protoc on :data:`PROTOS`, writing the ``_pb2`` modules and their stubs into ``out_dir``."""
    from grpc_tools import protoc  # a test extra: needed to regenerate, never to run

    with tempfile.TemporaryDirectory(prefix="mtls-protos-") as scratch:
        root = Path(scratch)
        (root / PACKAGE_PATH).mkdir(parents=True)
        for proto in PROTOS:
            shutil.copyfile(GRPC_DIR / proto, root / PACKAGE_PATH / proto)
        argv = ["protoc", f"-I{root}", f"--python_out={root}", f"--pyi_out={root}"]
        code = protoc.main([*argv, *(str(PACKAGE_PATH / proto) for proto in PROTOS)])
        if code != 0:
            raise RuntimeError(f"protoc failed ({code}) on {', '.join(PROTOS)}")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in generated_names():
            shutil.copyfile(root / PACKAGE_PATH / name, out_dir / name)


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else GRPC_DIR)
