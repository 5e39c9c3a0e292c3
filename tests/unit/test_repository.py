"""Scanning a model repository on disk: layout, versions, config, and what is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.errors import ConfigError
from server.repository import scan_repository
from server.settings import BatchingConfig
from tests.onnx_models import scale


def _model_file(path: Path) -> Path:
    """A model.onnx at ``path`` (the scan never opens it; the bytes do not matter)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"onnx")
    return path


def _raises_naming(path: Path, match: str = "") -> pytest.RaisesContext[ConfigError]:
    return pytest.raises(ConfigError, match=re.escape(str(path)) + ".*" + match)


def test_good_repository(tmp_path: Path) -> None:
    for version in (10, 2, 1):
        scale(tmp_path, "b", version, float(version))
    scale(tmp_path, "a", 3, 1.0)
    (tmp_path / "b" / "config.toml").write_text("[batching]\nmax_batch_size = 8\n")
    sources = scan_repository(tmp_path)
    assert [s.name for s in sources] == ["a", "b"]
    a, b = sources
    assert a.versions == {3: tmp_path / "a" / "3" / "model.onnx"}
    assert sorted(b.versions) == [1, 2, 10]
    assert b.versions[10] == tmp_path / "b" / "10" / "model.onnx"
    assert b.config.batching == BatchingConfig(max_batch_size=8)
    assert a.config.batching == BatchingConfig()


def test_versions_come_in_numeric_order(tmp_path: Path) -> None:
    for version in (10, 2, 1, 9):
        _model_file(tmp_path / "m" / str(version) / "model.onnx")
    (source,) = scan_repository(tmp_path)
    assert list(source.versions) == [1, 2, 9, 10]


def test_model_onnx_directly_in_the_model_folder_is_version_1(tmp_path: Path) -> None:
    path = _model_file(tmp_path / "m" / "model.onnx")
    (source,) = scan_repository(tmp_path)
    assert source.versions == {1: path}


def test_version_folders_win_over_a_direct_model_onnx(tmp_path: Path) -> None:
    _model_file(tmp_path / "m" / "model.onnx")
    versioned = _model_file(tmp_path / "m" / "4" / "model.onnx")
    (source,) = scan_repository(tmp_path)
    assert source.versions == {4: versioned}


def test_hidden_entries_and_top_level_files_are_ignored(tmp_path: Path) -> None:
    _model_file(tmp_path / "m" / "1" / "model.onnx")
    (tmp_path / ".git").mkdir()
    (tmp_path / "README.md").write_text("models")
    (tmp_path / "m" / ".cache").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("x")
    (source,) = scan_repository(tmp_path)
    assert source.name == "m"
    assert list(source.versions) == [1]


@pytest.mark.parametrize("folder", ["v1", "0", "00", "1.0", "-1", "latest", "1a", "\u00b2"])
def test_bad_version_folder_names_the_path(tmp_path: Path, folder: str) -> None:
    _model_file(tmp_path / "m" / "1" / "model.onnx")
    _model_file(tmp_path / "m" / folder / "model.onnx")
    with _raises_naming(tmp_path / "m" / folder, "positive integer"):
        scan_repository(tmp_path)


def test_two_folders_for_one_version_are_refused(tmp_path: Path) -> None:
    _model_file(tmp_path / "m" / "1" / "model.onnx")
    _model_file(tmp_path / "m" / "01" / "model.onnx")
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "m"))):
        scan_repository(tmp_path)


def test_version_folder_without_model_onnx_names_the_path(tmp_path: Path) -> None:
    _model_file(tmp_path / "m" / "1" / "model.onnx")
    (tmp_path / "m" / "2").mkdir()
    (tmp_path / "m" / "2" / "model.pt").write_bytes(b"x")
    with _raises_naming(tmp_path / "m" / "2", "no model.onnx"):
        scan_repository(tmp_path)


def test_model_folder_without_versions_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    with _raises_naming(tmp_path / "m", "no versions"):
        scan_repository(tmp_path)


def test_model_onnx_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m" / "1" / "model.onnx").mkdir(parents=True)
    with _raises_naming(tmp_path / "m" / "1", "no model.onnx"):
        scan_repository(tmp_path)


def test_empty_repository_is_refused(tmp_path: Path) -> None:
    with _raises_naming(tmp_path, "no models"):
        scan_repository(tmp_path)


def test_repository_that_is_not_a_folder_is_refused(tmp_path: Path) -> None:
    with _raises_naming(tmp_path / "absent", "not a directory"):
        scan_repository(tmp_path / "absent")
    file = tmp_path / "file"
    file.write_text("x")
    with _raises_naming(file, "not a directory"):
        scan_repository(file)


def test_reserved_name_stats_is_refused(tmp_path: Path) -> None:
    _model_file(tmp_path / "stats" / "1" / "model.onnx")
    with _raises_naming(tmp_path / "stats", "reserved"):
        scan_repository(tmp_path)


def test_bad_model_config_names_its_file(tmp_path: Path) -> None:
    _model_file(tmp_path / "m" / "1" / "model.onnx")
    config = tmp_path / "m" / "config.toml"
    config.write_text("[batching]\nmax_batch_size = -3\n")
    with _raises_naming(config, "max_batch_size"):
        scan_repository(tmp_path)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    _model_file(folder / "1" / "model.onnx")
    _model_file(folder / "model.onnx")
    (folder / "config.toml").write_text("")
    return folder


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    _model_file(root / "ok" / "1" / "model.onnx")
    return root


def test_model_folder_linking_outside_is_refused(repo: Path, outside: Path) -> None:
    (repo / "m").symlink_to(outside, target_is_directory=True)
    with _raises_naming(repo / "m", "outside the model repository"):
        scan_repository(repo)


def test_version_folder_linking_outside_is_refused(repo: Path, outside: Path) -> None:
    (repo / "m").mkdir()
    (repo / "m" / "1").symlink_to(outside / "1", target_is_directory=True)
    with _raises_naming(repo / "m" / "1", "outside the model repository"):
        scan_repository(repo)


def test_model_file_linking_outside_is_refused(repo: Path, outside: Path) -> None:
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.onnx").symlink_to(outside / "1" / "model.onnx")
    with _raises_naming(repo / "m" / "1" / "model.onnx", "outside the model repository"):
        scan_repository(repo)


def test_direct_model_file_linking_outside_is_refused(repo: Path, outside: Path) -> None:
    (repo / "m").mkdir()
    (repo / "m" / "model.onnx").symlink_to(outside / "model.onnx")
    with _raises_naming(repo / "m" / "model.onnx", "outside the model repository"):
        scan_repository(repo)


def test_config_linking_outside_is_refused(repo: Path, outside: Path) -> None:
    (repo / "ok" / "config.toml").symlink_to(outside / "config.toml")
    with _raises_naming(repo / "ok" / "config.toml", "outside the model repository"):
        scan_repository(repo)


def test_links_that_stay_inside_are_followed(repo: Path) -> None:
    (repo / "alias").symlink_to(repo / "ok", target_is_directory=True)
    sources = scan_repository(repo)
    assert [s.name for s in sources] == ["alias", "ok"]
    assert sources[0].versions == {1: repo / "alias" / "1" / "model.onnx"}


def test_repository_reached_through_a_link_is_scanned(repo: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(repo, target_is_directory=True)
    (source,) = scan_repository(link)
    assert source.versions == {1: link / "ok" / "1" / "model.onnx"}
