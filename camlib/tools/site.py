"""``make site``: a static course site from the last run — executed notebooks, the results table, the figures.

    python -m camlib.tools.site --notebooks build/notebooks --results build/results \
        --figures build/figures --out build/site

Nothing executes: the pages are made from the executed copies ``make quick`` leaves in ``NB_OUT``
(``build/notebooks``), converted by nbconvert's HTML exporter (the ``lab`` template; outputs, images
included, are embedded in each page). Why nbconvert and not Jupyter Book or MkDocs: it is already
installed with JupyterLab (no new dependency), it renders exactly the notebook the user ran, and it
builds offline in seconds; the little this site needs beyond it (a landing page, the results page, a
captioned gallery) is the small index below.

The site (``--out``):

- ``index.html``: the paper's idea in five lines, the notebooks found (and the ones not run), the
  headline figure of each section with its caption (``figures/captions.yaml``);
- ``notebooks/<name>.html``: one page per executed notebook, with its outputs;
- ``results.html``: the Paper | Reference | Your-run table (``<results>/README.md`` from ``make report``;
  the committed ``results/README.md`` when the run has none);
- ``gallery.html`` + ``figures/``: every captioned figure, the run's own where it made one, else the
  committed reference, each labelled with where it came from.

Without any executed notebook it stops (exit 2) and says to run ``make quick`` first. ``--out`` is
replaced only when it is empty or a site made here before (it holds :data:`MARKER`).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from camlib.tools.figures import CAPTIONS, FIGURES, Caption, headlines, load_captions

__all__ = ["IDEA", "SiteError", "build_site", "executed_notebooks", "main"]

REPO = Path(__file__).resolve().parents[2]
MARKS = (".incomplete", ".failed", ".interrupted")  #: executed copies that did not finish (run_notebooks)
MARKER = ".camlib-site"  #: a folder holding this file is a site and may be replaced; any other is refused

#: The paper's idea in five lines (the landing page).
IDEA = (
    "A convolutional network trained only to classify images also learns where the objects are.",
    "End it with global average pooling (GAP) and one linear layer: the score of class c is the average "
    "over positions of M_c(x, y) = Σ_k w_k^c f_k(x, y), the class activation map (CAM).",
    "Upsampled to the image, M_c shows the regions that made the network say c; a threshold turns it into a box.",
    "Zhou et al. (CVPR 2016) show that GAP localizes better than max pooling, and that the same maps work for "
    "fine-grained recognition, generic features, pattern discovery, VQA and class-specific units.",
    "Each notebook below reruns one part of the paper, with the numbers, their intervals and where they disagree.",
)

NAV_CSS = (
    "nav.camlib-nav{position:sticky;top:0;background:#f5f5f7;border-bottom:1px solid #ddd;padding:.5em 1em;"
    "z-index:10;font-family:system-ui,sans-serif;font-size:14px}nav.camlib-nav a{margin-right:1.2em}"
)
CSS = (
    NAV_CSS
    + """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:0 auto;padding:0 1.2em;
color:#1d1d1f;line-height:1.45}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.92em;color:#444}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top}
.muted{color:#777}.tag{font-size:.8em;background:#eef;border-radius:3px;padding:0 .3em}
"""
)


class SiteError(RuntimeError):
    """The site cannot be built (no executed notebooks); the message says what to run."""


@dataclass(frozen=True)
class Page:
    """One executed notebook: its file, its title (first heading) and its results file if any."""

    path: Path
    name: str
    title: str
    runtime_s: float | None


def executed_notebooks(folder: str | Path) -> list[Path]:
    """The executed copies ``NN_*.ipynb`` in ``folder`` that ran to their end (no .failed / .incomplete)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if not any(m in p.name for m in MARKS))


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return ""


def _runtime(results: Path, name: str) -> float | None:
    path = results / f"{name}.json"
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["runtime_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _nav(prefix: str = "") -> str:
    return (
        f'<nav class="camlib-nav"><a href="{prefix}index.html">camlib course</a>'
        f'<a href="{prefix}results.html">Results: paper | reference | your run</a>'
        f'<a href="{prefix}gallery.html">Figures</a><a href="{prefix}path.html">45-minute path</a></nav>'
    )


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body>{_nav()}\n{body}\n</body></html>\n"
    )


def _convert(path: Path, out: Path) -> str:
    """One executed notebook -> a standalone HTML page (outputs embedded) with the site's navigation bar."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(path), as_version=4)
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb)
    nav = f"<style>{NAV_CSS}</style>{_nav('../')}"
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, body, count=1)
    out.write_text(body, encoding="utf-8")
    return _title(nb)


def _markdown(text: str) -> str:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(text)


def _figure_sources(run_figures: Path | None) -> dict[str, tuple[Path, str]]:
    """Figure stem -> (PNG, "your run" | "reference"): the run's own figure wins over the reference."""
    found = {p.stem: (p, "reference") for p in FIGURES.glob("*.png")}
    if run_figures is not None and run_figures.resolve() != FIGURES.resolve() and run_figures.is_dir():
        found.update({p.stem: (p, "your run") for p in run_figures.glob("*.png")})
    return found


def _figure_html(c: Caption, src: str, origin: str) -> str:
    return (
        f'<figure id="{html.escape(c.name)}"><img src="{html.escape(src)}" alt="{html.escape(c.name)}">'
        f"<figcaption><b>{html.escape(c.name)}</b> ({html.escape(c.notebook)}, <span class=tag>{origin}</span>): "
        f"{html.escape(c.line())}</figcaption></figure>"
    )


def build_site(
    notebooks: str | Path,
    out: str | Path,
    results: str | Path | None = None,
    figures: str | Path | None = None,
    captions: str | Path = CAPTIONS,
    log=print,
) -> Path:
    """Build the site into ``out`` (replaced); SiteError when ``notebooks`` holds no executed notebook."""
    t0 = time.time()
    notebooks, out = Path(notebooks), Path(out)
    found = executed_notebooks(notebooks)
    if not found:
        raise SiteError(
            f"no executed notebooks in {notebooks} (looked for NN_*.ipynb that ran to their end): "
            "run `make quick` first, it writes them there (or pass --notebooks / NB_OUT=...)"
        )
    sources = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [p.stem for p in sources if p.stem not in {f.stem for f in found}]
    log(f"site: {len(found)} executed notebook(s) in {notebooks}: {', '.join(p.stem for p in found)}")
    if missing:
        log(f"site: not run (no executed copy; their pages are left out): {', '.join(missing)}")
    results = Path(results) if results else None
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise SiteError(
                f"{out} exists and is not a site made by camlib.tools.site (no {MARKER}): not replacing "
                "it; pass another --out / SITE=..."
            )
        shutil.rmtree(out)
    (out / "notebooks").mkdir(parents=True)
    (out / MARKER).write_text("made by python -m camlib.tools.site; `make site` replaces this folder\n")
    (out / "figures").mkdir()
    pages = []
    for path in found:
        title = _convert(path, out / "notebooks" / f"{path.stem}.html")
        pages.append(Page(path, path.stem, title, _runtime(results, path.stem) if results else None))
    _results_page(out, results)
    _path_page(out)
    caps = load_captions(captions)
    figs = _figure_sources(Path(figures) if figures else None)
    copied = {}
    for stem, (png, origin) in figs.items():
        shutil.copy2(png, out / "figures" / png.name)
        copied[stem] = origin
    _gallery(out, caps, copied)
    _index(out, pages, missing, caps, copied)
    log(
        f"site: wrote {out}/index.html ({len(pages)} notebook pages, {len(copied)} figures) in {time.time() - t0:.1f} s"
    )
    return out / "index.html"


def _results_page(out: Path, results: Path | None) -> None:
    candidates = ([results / "README.md"] if results else []) + [REPO / "results" / "README.md"]
    src = next((p for p in candidates if p.is_file()), None)
    if src is None:
        body = "<h1>Results</h1><p>No results table yet: run <code>make quick</code> (it ends with <code>make report</code>).</p>"
    else:
        note = (
            ""
            if results and src == results / "README.md"
            else (
                '<p class="muted">Your run has no results table (run <code>make report</code>); this is the committed '
                "reference, <code>results/README.md</code>.</p>"
            )
        )
        text = re.sub(r"\]\((?:\.\./)?figures/", "](figures/", src.read_text(encoding="utf-8"))
        body = f'<p class="muted">From <code>{html.escape(str(src))}</code>.</p>{note}{_markdown(text)}'
    (out / "results.html").write_text(_page("Results", body), encoding="utf-8")


def _path_page(out: Path) -> None:
    src = REPO / "docs" / "45-minute-path.md"
    text = (
        src.read_text(encoding="utf-8")
        if src.is_file()
        else "# 45-minute path\n\n(docs/45-minute-path.md is missing)"
    )
    text = re.sub(r"\]\((?:\.\./)?notebooks/(\d\d_\w+)\.ipynb\)", r"](notebooks/\1.html)", text)
    (out / "path.html").write_text(_page("45-minute path", _markdown(text)), encoding="utf-8")


def _gallery(out: Path, caps: dict[str, Caption], copied: dict[str, str]) -> None:
    parts = [
        "<h1>Figures</h1><p>Every figure the notebooks save, with its caption (<code>figures/captions.yaml</code>). "
        "<span class=tag>your run</span>: made by the run this site was built from; "
        "<span class=tag>reference</span>: the committed one.</p>"
    ]
    section = None
    for c in sorted(caps.values(), key=lambda c: (c.section == "bench", c.section, not c.headline)):
        if c.profile == "paper" or c.name not in copied:
            continue
        if c.section != section:
            section = c.section
            parts.append(f"<h2>{html.escape(c.notebook)}</h2>")
        parts.append(_figure_html(c, f"figures/{c.name}.png", copied[c.name]))
    (out / "gallery.html").write_text(_page("Figures", "\n".join(parts)), encoding="utf-8")


def _index(
    out: Path, pages: list[Page], missing: list[str], caps: dict[str, Caption], copied: dict[str, str]
) -> None:
    heads = headlines(caps)
    rows = []
    for p in pages:
        rt = f"{p.runtime_s:.0f} s" if p.runtime_s is not None else "—"
        rows.append(
            f'<tr><td><a href="notebooks/{p.name}.html">{html.escape(p.name)}</a></td>'
            f"<td>{html.escape(p.title)}</td><td>{rt}</td></tr>"
        )
    rows += [
        f'<tr><td class="muted">{html.escape(m)}</td><td class="muted">not run: no executed copy</td><td></td></tr>'
        for m in missing
    ]
    figs = [
        _figure_html(c, f"figures/{c.name}.png", copied[c.name])
        for s, c in sorted(heads.items())
        if c.name in copied
    ]
    body = (
        "<h1>Class activation maps: a course companion to Zhou et al., CVPR 2016</h1>"
        "<h2>The idea in five lines</h2><ol>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in IDEA)
        + "</ol>"
        '<p>Short on time? The <a href="path.html">45-minute path</a> says which sections to run in class, '
        "in what order, and how long each takes.</p>"
        "<h2>Notebooks</h2><table><tr><th>Notebook</th><th>Title</th><th>Runtime of this run</th></tr>"
        + "".join(rows)
        + "</table>"
        '<p><a href="results.html">Results: paper | reference | your run</a> · <a href="gallery.html">All figures</a></p>'
        "<h2>One figure per section</h2>" + "\n".join(figs)
    )
    (out / "index.html").write_text(_page("camlib course", body), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m camlib.tools.site", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--notebooks", default="build/notebooks", help="executed notebooks (make quick's NB_OUT)"
    )
    parser.add_argument("--results", default="build/results", help="the run's results folder (its README.md)")
    parser.add_argument("--figures", default="build/figures", help="the run's figures folder")
    parser.add_argument("--out", default="build/site")
    args = parser.parse_args(argv)
    try:
        build_site(args.notebooks, args.out, args.results, args.figures)
    except SiteError as exc:
        print(f"camlib.tools.site: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
