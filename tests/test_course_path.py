"""docs/45-minute-path.md: linked from the README, and its (a) times are the reference runs' runtime_s."""

from __future__ import annotations

import json
import re

from .conftest import REPO

PATH = REPO / "docs" / "45-minute-path.md"


def _runtime(nb: str) -> int:
    (path,) = (REPO / "results").glob(f"{nb}_*.json")
    return round(json.loads(path.read_text(encoding="utf-8"))["runtime_s"])


def test_readme_links_the_path():
    assert "(docs/45-minute-path.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def test_path_times_are_the_reference_runtimes():
    """Every whole-notebook time the path quotes from the reference (a) is that notebook's runtime_s:
    refreshing the reference results without updating the path fails here."""
    text = PATH.read_text(encoding="utf-8")
    claims = re.findall(r"\*\*(\d\d) ·[^|\n]*(?:\|[^|\n]*){2}\|\s*(\d+) s", text)
    claims += re.findall(r"\b(\d\d): (\d+) s", text) + re.findall(r"\b(\d\d) \((\d+) s \(a\)\)", text)
    assert len(claims) >= 8, claims
    for nb, seconds in claims:
        assert int(seconds) == _runtime(nb), (
            f"notebook {nb}: the path says {seconds} s, results/ says {_runtime(nb)} s"
        )
    assert "MEASURE" not in text
