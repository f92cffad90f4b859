"""`make site`: the static course site from executed notebooks, and its browser check.

The fast tests build a site from a small executed-looking notebook (a title, a printed line, one PNG
output) written here, so they need no `make quick`. The browser test opens the landing page and one
notebook page in headless Chromium (Debian's, driven by playwright, as tests/test_browser.py does),
checks that every <img> loaded (naturalWidth > 0; the figure gallery too) and saves screenshots under build/site-check/. It
builds from the executed notebooks of the last `make quick` (build/notebooks) when there are any, from
$CAMLIB_SITE_NOTEBOOKS when set, and from the small notebook otherwise.
"""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import nbformat
import pytest

from camlib.tools import site as S
from camlib.tools.browser import CHROMIUM_FLAGS
from camlib.tools.figures import load_captions

from .conftest import REPO

CHECK_DIR = REPO / "build" / "site-check"


def _png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 0, 2])
    ax.set(xlabel="threshold", ylabel="accuracy (%)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def executed_notebook(folder: Path, name: str = "05_generic_features") -> Path:
    """A notebook as papermill leaves it: a title, a stream output and an image output."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    code = nbformat.v4.new_code_cell("print('accuracy 71.0%')\nplt.show()", execution_count=1)
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="accuracy 71.0%\n"),
        nbformat.v4.new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"}),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name[:2]} · A test notebook\n\nText."), code]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_site_from_executed_notebooks(tmp_path):
    nbs = tmp_path / "nb"
    executed_notebook(nbs)
    executed_notebook(nbs, "08_class_specific_units")
    (nbs / "09_video_cam.failed.ipynb").write_text("{}")  # a failed copy is not a page
    lines = []
    t0 = time.time()
    index = S.build_site(
        nbs,
        tmp_path / "site",
        results=tmp_path / "no-results",
        figures=tmp_path / "no-figs",
        log=lines.append,
    )
    assert time.time() - t0 < 120
    out = index.parent
    assert "2 executed notebook(s)" in lines[0] and "05_generic_features, 08_class_specific_units" in lines[0]
    assert "09_video_cam" in lines[1] and "not run" in lines[1]
    page = (out / "notebooks" / "05_generic_features.html").read_text()
    assert "data:image/png;base64," in page and "accuracy 71.0%" in page and 'href="../index.html"' in page
    assert not (out / "notebooks" / "09_video_cam.html").exists()
    home = index.read_text()
    assert 'href="notebooks/05_generic_features.html"' in home and "09_video_cam" in home
    assert all(line.split(":")[0][:20] in home for line in S.IDEA[:1]) and home.count("<li>") == len(S.IDEA)
    caps = load_captions()
    heads = [c for c in caps.values() if c.headline]
    assert sum(f'src="figures/{c.name}.png"' in home for c in heads) == len(heads)
    gallery = (out / "gallery.html").read_text()
    committed = {p.stem for p in (REPO / "figures").glob("*.png")}
    for name in committed:
        assert f'src="figures/{name}.png"' in gallery and (out / "figures" / f"{name}.png").is_file()
    results = (out / "results.html").read_text()
    assert "committed reference" in results and "<table>" in results and "Paper" in results
    assert "45-minute path" in (out / "path.html").read_text()


def test_site_prefers_the_runs_figures_and_results(tmp_path):
    executed_notebook(tmp_path / "nb")
    figs, res = tmp_path / "figs", tmp_path / "res"
    figs.mkdir()
    res.mkdir()
    (figs / "05_quick_targets.png").write_bytes(base64.b64decode(_png()))
    (res / "README.md").write_text(
        "# Results\n\n| Metric | Paper | Reference | Your run |\n| --- | --- | --- | --- |\n| a | 1 | 2 | 3 |\n"
    )
    out = S.build_site(
        tmp_path / "nb", tmp_path / "site", results=res, figures=figs, log=lambda *_: None
    ).parent
    gallery = (out / "gallery.html").read_text()
    block = gallery[gallery.index('id="05_quick_targets"') :][:600]
    assert "your run" in block
    assert "Your run" in (out / "results.html").read_text()


def test_no_executed_notebooks_names_make_quick(tmp_path, capsys):
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "01_cam_basics.incomplete.ipynb").write_text("{}")
    with pytest.raises(S.SiteError, match="make quick"):
        S.build_site(tmp_path / "nb", tmp_path / "site")
    assert S.main(["--notebooks", str(tmp_path / "missing"), "--out", str(tmp_path / "site")]) == 2
    assert "run `make quick` first" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()


def test_site_never_replaces_a_folder_it_did_not_make(tmp_path):
    executed_notebook(tmp_path / "nb")
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    with pytest.raises(S.SiteError, match="not replacing"):
        S.build_site(tmp_path / "nb", precious, log=lambda *_: None)
    assert (precious / "thesis.tex").read_text() == "x"
    S.build_site(tmp_path / "nb", tmp_path / "site", log=lambda *_: None)
    S.build_site(tmp_path / "nb", tmp_path / "site", log=lambda *_: None)  # its own site: replaced


def _site_source(tmp_path: Path) -> Path:
    env = os.environ.get("CAMLIB_SITE_NOTEBOOKS")
    if env:
        return Path(env)
    if S.executed_notebooks(REPO / "build" / "notebooks"):
        return REPO / "build" / "notebooks"
    return executed_notebook(tmp_path / "nb").parent


def _broken_images(page) -> list[str]:
    page.wait_for_load_state("load")
    return page.evaluate("""() => Array.from(document.images)
        .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src.slice(0, 80))""")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_site_in_a_browser(tmp_path, chromium_playwright):
    chromium, sync_api = chromium_playwright
    source = _site_source(tmp_path)
    results = os.environ.get("CAMLIB_SITE_RESULTS", str(REPO / "build" / "results"))
    figures = os.environ.get("CAMLIB_SITE_FIGURES", str(REPO / "build" / "figures"))
    index = S.build_site(source, tmp_path / "site", results=results, figures=figures, log=print)
    first = sorted((index.parent / "notebooks").glob("*.html"))[0]
    CHECK_DIR.mkdir(parents=True, exist_ok=True)
    seen = {}
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=list(CHROMIUM_FLAGS))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # the notebook pages ask a CDN for MathJax / require.js: offline, answer those requests at once
        page.route("http*://**", lambda route: route.abort())
        try:
            for name, path in (
                ("index", index),
                ("notebook", first),
                ("gallery", index.parent / "gallery.html"),
            ):
                page.goto(path.as_uri(), wait_until="load", timeout=60_000)
                n = page.evaluate("document.images.length")
                broken = _broken_images(page)
                page.screenshot(path=str(CHECK_DIR / f"{name}.png"), full_page=name == "index")
                seen[name] = n
                assert n > 0, f"{path.name}: no images"
                assert not broken, f"{path.name}: images that did not load: {broken}"
            page.click("nav.camlib-nav >> text=camlib course")  # the notebook page's navigation leads home
            page.wait_for_load_state("load")
            assert page.url.endswith("/index.html")
        finally:
            browser.close()
    print(f"site check: {seen} images loaded; screenshots in {CHECK_DIR}")
    assert (CHECK_DIR / "index.png").stat().st_size > 20_000


def _make_site(*variables: str):
    """``make site`` with these ``NAME=value`` variables, without the setup step or the git hook."""
    import subprocess
    import sys

    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.camlib-setup", "site", "GIT_HOOK=", f"PY={sys.executable}",
         *variables],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip


def test_make_site_builds_from_nb_out(tmp_path):
    """The README's `make site`, for real: NB_OUT / RESULTS / FIGURES / SITE as make quick leaves them."""
    executed_notebook(tmp_path / "nb")
    done = _make_site(
        f"NB_OUT={tmp_path / 'nb'}",
        f"RESULTS={tmp_path / 'res'}",
        f"FIGURES={tmp_path / 'fig'}",
        f"SITE={tmp_path / 'site'}",
    )
    assert done.returncode == 0, done.stderr
    assert "1 executed notebook(s)" in done.stdout and (tmp_path / "site" / "index.html").is_file()
    empty = _make_site(f"NB_OUT={tmp_path / 'none'}", f"SITE={tmp_path / 'site2'}")
    assert empty.returncode != 0 and "make quick" in empty.stderr
