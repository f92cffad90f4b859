"""Every figure has a caption: figures/captions.yaml against the committed PNGs and the save_figure calls."""

from __future__ import annotations

import re

import pytest

from camlib.tools import figures as F
from camlib.tools.notebook_tools import read

from .conftest import REPO

CAPTIONS = F.load_captions()
SAVED = re.compile(
    r"save_figure\(.*?[\"']((?:\d\d|bench)_[^\"']*)[\"']"
)  # the figure name: first "NN_..." literal
FSTRING = re.compile(r"save_figure\(.*?f[\"']((?:\d\d)_[^\"']*)[\"']")


def _save_calls() -> dict[str, set[str]]:
    """Notebook / benchmark -> the figure names its save_figure calls pass (f-strings keep their {...})."""
    sources = {
        p.stem: "\n".join(c.source for c in read(p).cells if c.cell_type == "code")
        for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")
    }
    sources["benchmarks/bench.py"] = (REPO / "benchmarks" / "plots.py").read_text(encoding="utf-8")
    calls: dict[str, set[str]] = {}
    for owner, text in sources.items():
        found = (
            FSTRING.search(line) or SAVED.search(line)
            for line in text.splitlines()
            if "save_figure(" in line and "def save_figure" not in line
        )
        calls[owner] = {m.group(1) for m in found if m}
    return calls


def _rx(name: str) -> re.Pattern:
    """A saved name with ``{...}`` placeholders as a regex of the names it can produce."""
    return re.compile(r"\w+".join(re.escape(p) for p in re.split(r"\{[^}]*\}", name)) + "$")


def _probe(name: str) -> str:
    return re.sub(r"\{[^}]*\}", "probe", name)


def test_every_committed_figure_has_a_caption_and_none_is_stale():
    committed = {p.stem for p in (REPO / "figures").glob("*.png")}
    exact = {n for n, c in CAPTIONS.items() if c.profile in ("quick", "bench")}
    assert not committed - exact, (
        f"figures without a caption in figures/captions.yaml: {sorted(committed - exact)}"
    )
    assert not exact - committed, (
        f"captions of quick/bench figures with no PNG in figures/ (stale?): {sorted(exact - committed)}"
    )


def test_every_caption_names_a_figure_its_notebook_saves():
    calls = _save_calls()
    for name, c in CAPTIONS.items():
        assert c.notebook in calls, f"{name}: notebook {c.notebook!r} does not exist"
        assert any(_rx(s).match(_probe(name)) for s in calls[c.notebook]), (
            f"{name}: no save_figure call of {c.notebook} makes it (it saves {sorted(calls[c.notebook])})"
        )


def test_every_saved_figure_has_a_caption():
    for owner, names in _save_calls().items():
        for s in names:
            assert any(_rx(s).match(_probe(n)) for n, c in CAPTIONS.items() if c.notebook == owner), (
                f"{owner} saves {s!r}: add its caption to figures/captions.yaml"
            )


def test_one_headline_per_notebook():
    notebooks = sorted(p.stem[:2] for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    heads = [c.section for c in CAPTIONS.values() if c.headline]
    assert sorted(heads) == notebooks, (
        f"headline figures per section: {sorted(heads)}, expected one for each of {notebooks}"
    )
    for c in F.headlines(CAPTIONS).values():
        assert c.profile == "quick", f"{c.name}: a headline must be a committed (quick-profile) figure"


def test_readme_is_generated_from_the_table():
    assert F.main(["--check"]) == 0, "figures/README.md is out of date: run python -m camlib.tools.figures"
    text = (REPO / "figures" / "README.md").read_text(encoding="utf-8")
    for name in CAPTIONS:
        assert name in text


def test_malformed_captions_are_refused(tmp_path):
    bad = tmp_path / "captions.yaml"
    bad.write_text("x_fig:\n  notebook: 01_cam_basics\n  shows: s\n  profile: quick\n")
    with pytest.raises(ValueError, match="missing \\['data'\\]"):
        F.load_captions(bad)
    bad.write_text("x_fig:\n  notebook: n\n  shows: s\n  data: d\n  profile: weekly\n")
    with pytest.raises(ValueError, match="profile"):
        F.load_captions(bad)
