"""Generate server/_proto/ from the .proto files beside this script.

    python protos/generate.py            # write server/_proto/
    python protos/generate.py --out DIR  # write elsewhere (the test compares the two)

The generated modules register their messages in a private descriptor pool rather than
protobuf's default one: tritonclient registers the same ``inference.*`` names in the
default pool, and both must be importable in one process (tests, benchmarks, embedding).
Imports between the generated modules are made package-relative.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = PROTO_DIR.parent / "server" / "_proto"
PROTOS = ("model_config.proto", "grpc_service.proto")
HEADER = '"""Generated from protos/ by protos/generate.py; do not edit."""\n'
INIT = (
    HEADER
    + "\nfrom google.protobuf import descriptor_pool\n\n"
    + "# ortserve's own pool: tritonclient registers the same names in the default pool.\n"
    + "POOL = descriptor_pool.DescriptorPool()\n"
)
MODULES = [Path(p).stem + "_pb2" for p in PROTOS]


def _rewrite(text: str) -> str:
    for module in MODULES:
        text = re.sub(rf"^import {module} as ", f"from . import {module} as ", text, flags=re.M)
    text = text.replace("_descriptor_pool.Default()", "_private_pool")
    if "_private_pool" in text:
        text = text.replace(
            "from google.protobuf import descriptor_pool as _descriptor_pool\n",
            "from google.protobuf import descriptor_pool as _descriptor_pool\n"
            "from . import POOL as _private_pool\n",
        )
    return text


def generate(out: Path) -> None:
    """Run protoc (from grpcio-tools) and write the post-processed modules into ``out``."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *[str(PROTO_DIR / p) for p in PROTOS],
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*_pb2*"):
            old.unlink()
        (out / "__init__.py").write_text(INIT)
        (out / "py.typed").write_text("")
        for path in sorted(Path(tmp).iterdir()):
            if path.name == "model_config_pb2_grpc.py":
                continue  # no service in that file: nothing to generate
            if path.suffix in (".py", ".pyi"):
                (out / path.name).write_text(_rewrite(path.read_text()))
            else:
                shutil.copy(path, out / path.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
