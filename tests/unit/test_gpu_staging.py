"""The GPU machine's staging list in benchmarks/README.md: complete, and pinned within the
project's own requirements."""

from __future__ import annotations

import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
GPU_PYTHON = {"python_version": "3.12", "python_full_version": "3.12.0"}
EXTRAS = {"tritonclient": ("", "grpc", "http")}  # as the dev dependencies install it
ON_THE_GPU_MACHINE = {"numpy", "uvloop", "prometheus-client", "onnxruntime", "onnx"}


def staged() -> dict[str, str]:
    text = (ROOT / "benchmarks" / "README.md").read_text()
    block = text.split("bash ../shared/gpu/prepare.sh", 1)[1].split("```", 1)[0]
    return dict(re.findall(r"([A-Za-z0-9_.\-]+)==([^\s\\]+)", block))


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [Requirement(r) for r in listed]


def test_every_staged_pin_meets_the_project_s_requirements() -> None:
    packages = {canonical(name): version for name, version in staged().items()}
    assert len(packages) > 20
    for requirement in requirements():
        version = packages.get(canonical(requirement.name))
        if version is not None:
            assert requirement.specifier.contains(version, prereleases=True), requirement


def test_the_server_and_test_dependencies_the_gpu_machine_lacks_are_all_staged() -> None:
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {"tritonclient", "pytest", "aiohttp"} | {Requirement(r).name for r in runtime}
    names = {canonical(n) for n in staged()}
    missing = {canonical(n) for n in wanted} - {canonical(n) for n in ON_THE_GPU_MACHINE} - names
    assert not missing
    for name in list(staged()):  # and what they need in turn (as installed here)
        try:
            needs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in needs:
            requirement = Requirement(text)
            extras = EXTRAS.get(name, ("",))
            marker = requirement.marker
            if marker is not None and not any(
                marker.evaluate({**GPU_PYTHON, "extra": extra}) for extra in extras
            ):
                continue
            dependency = canonical(requirement.name)
            assert dependency in names | {canonical(n) for n in ON_THE_GPU_MACHINE}, (
                f"{name} needs {dependency}"
            )


def test_the_gpu_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_run.sh")], check=True)
