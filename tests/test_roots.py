"""One data-root resolution for every real set: param > <NAME>_ROOT > data/ > ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from camlib.datasets import roots as R
from camlib.datasets.download import DatasetNotFoundError


def _cub(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True)
    (folder / "images.txt").write_text("".join(f"{i} a/{i}.jpg\n" for i in range(1, n + 1)))
    return folder


@pytest.fixture
def places(tmp_path):
    """A copy of the set in each of the four places, with a different size so the winner shows."""
    p = {
        "param": _cub(tmp_path / "param_cub", 1),
        "env": _cub(tmp_path / "env_cub", 2),
        "data": _cub(tmp_path / "data" / "CUB_200_2011", 3),
        "shared": _cub(tmp_path / "shared" / "cub-100", 4),
    }
    return tmp_path, p


def test_resolution_order(places):
    tmp, p = places
    kw = dict(data=tmp / "data", shared=tmp / "shared")
    env = {"CUB_ROOT": str(p["env"])}
    r = R.resolve_root("cub", p["param"], environ=env, **kw)
    assert (r.kind, r.path, r.info.n_images) == ("param", p["param"], 1)
    r = R.resolve_root("cub", None, environ=env, **kw)
    assert (r.kind, r.path, r.info.n_images) == ("env", p["env"], 2)
    r = R.resolve_root("cub", None, environ={}, **kw)
    assert (r.kind, r.path, r.info.n_images) == ("data", p["data"], 3)
    assert "5,994 train" in r.info.caveat  # the full set's caveat, by folder name
    r = R.resolve_root("cub", None, environ={}, data=tmp / "nothing", shared=tmp / "shared")
    assert (r.kind, r.path, r.info.n_images) == ("shared", p["shared"], 4)
    assert "NO bounding boxes" in r.info.caveat
    d = r.info.as_dict()
    assert d == {
        "name": "cub",
        "root": str(p["shared"]),
        "kind": "shared",
        "n_images": 4,
        "caveat": r.info.caveat,
        "unit": "images",
    }


def test_not_found_gives_the_fetch_command(tmp_path):
    r = R.resolve_root("cub", None, environ={}, data=tmp_path / "d", shared=tmp_path / "s")
    assert not r and r.path is None and r.kind is None and r.info is None
    assert "python -m camlib.datasets.fetch cub" in r.fetch and "make data" in r.fetch
    with pytest.raises(DatasetNotFoundError, match="CUB_ROOT") as err:
        r.require()
    assert str(tmp_path / "d" / "CUB_200_2011") in str(err.value)
    # sets that cannot be fetched say where to get them instead
    r = R.resolve_root("ilsvrc-1k", None, environ={}, data=tmp_path / "d", shared=tmp_path / "s")
    assert r.path is None and "registration" in r.fetch


def test_explicit_missing_folder_is_an_error_not_a_fallback(places):
    tmp, p = places
    with pytest.raises(DatasetNotFoundError, match="CUB_ROOT"):
        R.resolve_root(
            "cub", None, environ={"CUB_ROOT": str(tmp / "typo")}, data=tmp / "data", shared=tmp / "shared"
        )
    with pytest.raises(DatasetNotFoundError, match="parameter"):
        R.resolve_root("cub", tmp / "typo", environ={}, data=tmp / "data", shared=tmp / "shared")
    with pytest.raises(KeyError, match="known"):
        R.resolve_root("imagenet-21k")


def test_explicit_parent_folder_finds_the_set(places):
    tmp, p = places
    r = R.resolve_root("cub", tmp / "data", environ={})  # CUB_ROOT=data -> data/CUB_200_2011
    assert r.path == p["data"] and r.kind == "param"


def test_env_names_and_every_set_has_a_caveat_and_a_way_to_get_it():
    names = {s.name: s.env for s in R.SETS.values()}
    assert names == {
        "imagenette": "IMAGENETTE_ROOT",
        "cub": "CUB_ROOT",
        "caltech101": "CALTECH101_ROOT",
        "scene-text": "SCENE_TEXT_ROOT",
        "video": "VIDEO_ROOT",
        "ilsvrc": "ILSVRC_ROOT",
        "ilsvrc-1k": "ILSVRC_1K_ROOT",
    }
    for s in R.SETS.values():
        assert s.caveats and s.fetch_command() and s.env in R.__doc__


def test_repo_root_and_default_data_dir(monkeypatch, tmp_path):
    repo = R.repo_root()
    assert repo is not None and (repo / "pyproject.toml").is_file() and (repo / "camlib").is_dir()
    assert Path(R.__file__).is_relative_to(repo) or Path(R.__file__).resolve().is_relative_to(repo.resolve())
    monkeypatch.delenv("CAMLIB_DATA", raising=False)
    assert R.data_dir() == repo / "data"
    monkeypatch.setenv("CAMLIB_DATA", str(tmp_path))
    assert R.data_dir() == tmp_path
    shared = R.shared_data_dir()
    assert shared is None or shared == repo.parent / "shared" / "data"  # beside the checkout, not resolved


def test_default_ilsvrc_root_uses_the_resolution(monkeypatch, tmp_path):
    from camlib.datasets.ilsvrc import default_ilsvrc_root

    (tmp_path / "image_ids.txt").write_text("val/a.JPEG\n")
    monkeypatch.setenv("ILSVRC_ROOT", str(tmp_path))
    assert default_ilsvrc_root() == tmp_path
    monkeypatch.setenv("ILSVRC_ROOT", str(tmp_path / "missing"))
    with pytest.raises(DatasetNotFoundError, match="ILSVRC_ROOT"):
        default_ilsvrc_root()
