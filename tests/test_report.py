"""camlib.tools.report: results/*.json + results/paper.yaml -> results/README.md; and paper.yaml itself."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from camlib.evaluation.stats import Estimate
from camlib.tools.report import (
    NOT_COMPARABLE,
    build_report,
    collect_results,
    flatten,
    format_delta,
    format_estimate,
    load_paper,
    main,
)
from camlib.tools.results import DataSource, write_results

REPO = Path(__file__).resolve().parent.parent
PAPER_YAML = REPO / "results" / "paper.yaml"
NUMBERS_MD = Path("/work/shared/paper/numbers.md")
PAPER = (
    "table2.googlenet_gap.top5_loc_err: {value: 43.00, unit: '%', what: GoogLeNet-GAP, source: Table 2}\n"
    "table1.googlenet_gap.top1_err: {value: 35.0, unit: '%', what: GoogLeNet-GAP, source: Table 1}\n"
)


def _results(folder: Path, ref: str = "table2.googlenet_gap.top5_loc_err") -> Path:
    """Two hand-made results files in ``folder``; returns the paper.yaml beside them. The first row
    is marked comparable, the second is not (no flag)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_results(
        "02_localization",
        metrics={"loc": {"top5_loc_err": 47.256, "n": 100}, "curve": [1.0, 2.0]},
        profile="quick",
        parameters={"PROFILE": "quick", "SEED": 0},
        started=time.time() - 3,
        comparisons=[
            {
                "metric": "top-5 loc. error",
                "paper_ref": ref,
                "reproduced": 47.256,
                "setting": "EfficientNet-Lite0, 100 val images",
                "comparable": True,
            }
        ],
        data=[DataSource("ilsvrc-val-sample", "shared", 100, "small objects")],
        results_dir=folder,
    )
    write_results(
        "01_classification",
        metrics={"top1_err": 33.0},
        profile="paper",
        parameters={"PROFILE": "paper"},
        started=time.time() - 1,
        comparisons=[
            {
                "metric": "top-1 error",
                "paper_ref": "table1.googlenet_gap.top1_err",
                "reproduced": 33.0,
                "setting": "GoogLeNet-GAP | retrained",
            }
        ],
        options={"upsample": "bicubic"},
        results_dir=folder,
    )
    paper = folder.parent / "paper.yaml"
    paper.write_text(PAPER)
    return paper


def _row(text: str, metric: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {metric}"))
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]


def _main(tmp_path: Path, *extra: str, results: str = "results", reference: str = "results") -> int:
    return main(
        [
            "--results",
            str(tmp_path / results),
            "--reference",
            str(tmp_path / reference),
            "--paper",
            str(tmp_path / "paper.yaml"),
            "--out",
            str(tmp_path / "README.md"),
            *extra,
        ]
    )


def test_delta_and_tables(tmp_path):
    _results(tmp_path / "results")
    out = tmp_path / "README.md"
    assert _main(tmp_path) == 0  # --results is the reference: the reference page
    text = out.read_text()
    assert "do not edit" in text.lower() and "make report" in text
    assert "| Metric | Paper | Reference | Δ | Setting | Profile |" in text
    row = _row(text, "top-5 loc. error")
    assert row[1:] == ["43.00 (Table 2)", "47.26", "+4.26", "EfficientNet-Lite0, 100 val images", "quick"]
    row = _row(text, "top-1 error")  # no comparable flag: no Δ, a footnote says why
    assert row[1:4] == ["35.00 (Table 1)", "33.00", "—"]
    assert text.count(NOT_COMPARABLE) == 1 and text.index("## 01_classification") < text.index(NOT_COMPARABLE)
    assert "| ilsvrc-val-sample | shared | 100 | small objects |" in text
    assert "| _not recorded_ |" in text  # 01_classification was written without data=
    assert "GoogLeNet-GAP \\| retrained" in text  # pipes escaped inside cells
    assert "| `loc.top5_loc_err` | 47.256 |" in text and "| `loc.n` | 100 |" in text
    assert "| `curve` | [1, 2] |" in text
    assert text.index("## 01_classification") < text.index("## 02_localization")
    assert "Profile `paper`" in text and '`upsample="bicubic"`' in text


def test_format_delta():
    assert format_delta(47.256, 43.0) == "+4.26"
    assert format_delta(40.0, 43.0) == "-3.00"
    assert format_delta(43.001, 43.0) == "+0.00"
    assert format_delta(42.999, 43.0) == "+0.00"
    assert format_delta(Estimate(47.0, 38.0, 56.5, 100).to_dict(), 43.0) == "+4.00 [-5.00, +13.50]"


def test_format_estimate():
    est = Estimate(62.5, 25.0, 100.0, 5).to_dict()
    assert format_estimate(est) == "62.50 [25.00, 100.00] (n=5)"
    assert format_estimate({**est, "level": 0.9}) == "62.50 [25.00, 100.00] (n=5, 90%)"
    assert flatten({"a": {"acc": est}}) == {"a.acc": est}  # an Estimate is one value


def test_reference_and_your_run(tmp_path):
    """Paper · reference · your run: values side by side, Δ per side only where comparable, the
    run's own setting and data shown, metrics in two columns, a notebook only one side has."""
    _results(tmp_path / "results")
    run = tmp_path / "run"
    write_results(
        "02_localization",
        metrics={"loc": {"top5_loc_err": Estimate(60.0, 50.0, 70.0, 100)}, "n": 100},
        profile="quick",
        parameters={"PROFILE": "quick", "SEED": 0},
        started=time.time() - 1,
        comparisons=[
            {
                "metric": "top-5 loc. error",
                "paper_ref": "table2.googlenet_gap.top5_loc_err",
                "reproduced": Estimate(60.0, 50.0, 70.0, 100),
                "setting": "SmallGAPNet, procedural shapes",
            }
        ],
        data=[DataSource("procedural shapes", "procedural", 400, "not ILSVRC")],
        results_dir=run,
    )
    write_results(
        "03_only_here", metrics={}, profile="quick", parameters={}, started=time.time(), results_dir=run
    )
    assert _main(tmp_path, results="run") == 0
    text = (tmp_path / "README.md").read_text()
    assert "| Metric | Paper | Reference | Δ ref | Your run | Δ run | Setting |" in text
    row = _row(text, "top-5 loc. error")
    # the reference row is comparable (Δ), the run's is not (—): Lite0 on 100 images vs a procedural stand-in
    assert row[1:6] == ["43.00 (Table 2)", "47.26", "+4.26", "60.00 [50.00, 70.00] (n=100)", "—"]
    assert (
        row[6] == "reference: EfficientNet-Lite0, 100 val images · your run: SmallGAPNet, procedural shapes"
    )
    assert _row(text, "top-1 error")[1:6] == ["35.00 (Table 1)", "33.00", "—", "not run", ""]
    assert "| your run | procedural shapes | procedural | 400 | not ILSVRC |" in text
    assert "| reference | ilsvrc-val-sample | shared | 100 | small objects |" in text
    assert "| `loc.top5_loc_err` | 47.256 | 60 [50, 70] (n=100) |" in text
    assert "## 03_only_here" in text and "Reference: not run" in text
    assert "Your run: Profile `quick`" in text


def test_empty_or_mistyped_results_folder_is_an_error_and_the_page_stays(tmp_path, capsys):
    """A mistyped --results used to replace the page with "No results yet" and exit 0."""
    _results(tmp_path / "results")
    (tmp_path / "run").mkdir()
    out = tmp_path / "README.md"
    assert _main(tmp_path) == 0
    page = out.read_bytes()
    assert _main(tmp_path, results="run") == 1  # empty: says how to fill it
    err = capsys.readouterr().err
    assert f"results folder {tmp_path / 'run'}" in err and "holds no NN_*.json" in err and "make quick" in err
    assert _main(tmp_path, results="resutls") == 1  # mistyped: does not exist
    err = capsys.readouterr().err
    assert (
        f"results folder {tmp_path / 'resutls'} does not exist" in err and "Fix: check the --results" in err
    )
    assert _main(tmp_path, results="resutls", reference="resutls") == 1  # the reference page alone, too
    assert _main(tmp_path, results="results", reference="nowhere") == 1  # a mistyped reference
    assert "results folder " + str(tmp_path / "nowhere") in capsys.readouterr().err
    assert out.read_bytes() == page  # left intact every time
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "README.md",
        "paper.yaml",
        "results",
        "run",
    ]  # no temp file


@pytest.mark.parametrize("text, line, col, problem", [
    ("a.b: {value: 1.0, unit: '%', what: x, source: y}\nc.d: {value: 2.0, unit: '%', what: x: y, source: z}\n",
     2, 37, "flow mapping: expected ',' or '}', but got ':'"),  # an unquoted ':' inside a value
    ("a.b: {value: 1.0, unit: '%', what: x, source: y\n", 2, 1, "but got '<stream end>'; it starts on line 1"),
    ("a.b:\n  value: 1.0\n unit: '%'\n", 3, 2, "block mapping"),  # bad indentation
])  # fmt: skip
def test_malformed_paper_yaml_names_file_line_and_fix(tmp_path, capsys, text, line, col, problem):
    _results(tmp_path / "results")
    out = tmp_path / "README.md"
    out.write_text("previous page")
    (tmp_path / "paper.yaml").write_text(text)
    with pytest.raises(
        ValueError,
        match=rf"paper.yaml:{line}:{col or ''}.*not valid YAML \(.*{problem}.*\)\. Fix: "
        "each entry is one key per line",
    ):
        load_paper(tmp_path / "paper.yaml")
    assert _main(tmp_path) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'paper.yaml'}:{line}:" in err and "Traceback" not in err
    assert out.read_text() == "previous page"
    # write_results checks paper_refs against the same file, with the same message
    with pytest.raises(ValueError, match=rf"paper.yaml:{line}:.*not valid YAML"):
        write_results(
            "03_x",
            metrics={},
            profile="quick",
            parameters={},
            started=0.0,
            results_dir=tmp_path,
            comparisons=[{"metric": "m", "paper_ref": "a.b", "reproduced": 1.0, "setting": "s"}],
        )


@pytest.mark.parametrize("text, line, message", [
    ("a.b: {value: 1.0, unit: '%', what: x, source: y}\nc.d: {value: 2.0, unit: '%', what: x}\n",
     2, r"'c\.d' must be a mapping with value, unit, what, source \(has \['unit', 'value', 'what'\]\)"),
    ("a.b: {value: 1.0, unit: '%', what: x, source: y}\n\nc.d:\n  value: .nan\n  unit: '%'\n  what: x\n"
     "  source: y\n", 3, r"c\.d\.value must be a finite number, got nan"),
    ("a.b: {value: 1.0, unit: '%', what: x, source: y}\nc.d: {value: 2, unit: '%', what: x, source: y}\n"
     "a.b: {value: 9.0, unit: '%', what: x, source: y}\n", 3, r"key 'a\.b' is given again \(first on line 1\)"),
])  # fmt: skip
def test_paper_yaml_bad_entries_name_file_and_line(tmp_path, text, line, message):
    (tmp_path / "paper.yaml").write_text(text)
    with pytest.raises(ValueError, match=rf"paper\.yaml:{line}: {message}"):
        load_paper(tmp_path / "paper.yaml")


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": [1], "f": {}}) == {
        "a.b": 1,
        "a.c.d": "x",
        "e": [1],
        "f": {},
    }


def test_unknown_paper_ref_errors_naming_it(tmp_path, capsys):
    paper = _results(tmp_path / "results", ref="table9.made_up")
    records = collect_results(tmp_path / "results")
    with pytest.raises(ValueError, match="paper_ref 'table9.made_up'"):
        build_report(records, load_paper(paper))
    out = tmp_path / "README.md"
    assert _main(tmp_path) == 1
    assert "table9.made_up" in capsys.readouterr().err
    assert not out.exists()


def test_invalid_results_file_errors_naming_it(tmp_path, capsys):
    paper = _results(tmp_path / "results")
    (tmp_path / "results" / "03_broken.json").write_text('{"notebook": "03_broken"}')
    assert _main(tmp_path) == 1
    assert "03_broken.json" in capsys.readouterr().err
    assert paper.is_file()


def test_deterministic(tmp_path):
    paper = _results(tmp_path / "results")
    out = tmp_path / "README.md"
    args = [
        "--results",
        str(tmp_path / "results"),
        "--reference",
        str(tmp_path / "results"),
        "--paper",
        str(paper),
        "--out",
        str(out),
    ]
    main(args)
    first = out.read_bytes()
    main(args)
    assert out.read_bytes() == first
    # same inputs elsewhere, files listed in another order: same page
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "results", copy)
    records = collect_results(copy)
    assert build_report(list(reversed(records)), load_paper(paper)).encode() == first


def test_empty_results_dir(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    paper = tmp_path / "paper.yaml"
    paper.write_text(PAPER)
    out = tmp_path / "README.md"
    assert _main(tmp_path) == 1 and not out.exists()
    assert "holds no NN_*.json" in capsys.readouterr().err
    text = build_report([], load_paper(paper))  # the library's page for no records still says how to fill it
    assert "No results yet" in text and "make quick" in text
    assert "| Metric |" not in text


def test_repository_paper_yaml_is_complete():
    paper = load_paper(PAPER_YAML)
    counts = {
        prefix: sum(k.startswith(prefix + ".") for k in paper)
        for prefix in ("table1", "table2", "table3", "table4", "table5", "vqa", "choe", "cutmix")
    }
    assert counts == {
        "table1": 18,
        "table2": 20,
        "table3": 6,
        "table4": 10,
        "table5": 24,
        "vqa": 1,
        "choe": 9,
        "cutmix": 2,
    }
    for key, entry in paper.items():
        assert re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", key), key
        assert entry["unit"] == "%" and entry["what"] and entry["source"], key
    assert paper["table2.googlenet_gap.top5_loc_err"]["value"] == 43.00
    assert paper["table2.backprop_googlenet.top1_loc_err"]["value"] == 61.31
    assert paper["table3.googlenet_gap_heuristics.top5_loc_err"]["value"] == 37.1
    assert paper["table4.googlenet_gap_full.acc"]["value"] == 63.0
    assert paper["table4.cub_loc_iou50"]["value"] == 41.0
    assert paper["table5.gap_googlenet_gap.caltech101"]["value"] == 91.98
    assert paper["vqa.open_ended_test_standard"]["value"] == 55.89
    assert paper["choe.imagenet.resnet50.maxboxaccv2"]["value"] == 63.7
    assert paper["cutmix.imagenet.resnet50.top1_loc"]["value"] == 46.3


@pytest.mark.skipif(not NUMBERS_MD.is_file(), reason="the shared paper notes are not on this machine")
def test_every_table_number_of_the_paper_notes_is_in_paper_yaml():
    values = {round(float(e["value"]), 2) for e in load_paper(PAPER_YAML).values()}
    table_lines, in_table = [], False
    for line in NUMBERS_MD.read_text().splitlines():
        if line.startswith("## "):
            in_table = line.startswith("## Table")
        if (in_table or re.match(r"\s*\| (ImageNet|CUB|OpenImages)", line)) and line.lstrip().startswith("|"):
            table_lines.append(line)
    numbers = {round(float(n), 2) for line in table_lines for n in re.findall(r"(?<![\w.])\d+\.\d+", line)}
    assert numbers and numbers <= values, sorted(numbers - values)


def test_per_set_intervals_and_caveats_are_shown_first(tmp_path):
    """A notebook measuring two ILSVRC sets: each set's headline numbers and its post-stratified
    estimate appear with their intervals and n in the 'measured numbers' table, labelled; the data
    table names both sets with their caveats."""
    sets = {
        "sample": {
            "runs": {
                "cam": {
                    "headline": {"top1_acc": Estimate(69.0, 60.0, 78.0, 100)},
                    "post_stratified": {
                        "gt_known_loc_acc": {"estimate": Estimate(41.0, 30.0, 52.0, 100), "covered": 0.6}
                    },
                }
            }
        },
        "1k": {"runs": {"cam": {"headline": {"top1_acc": Estimate(81.0, 78.5, 83.4, 1000)}}}},
    }
    write_results(
        "03_loc",
        metrics={"sets": sets, "plain": 1.5},
        profile="quick",
        parameters={},
        started=time.time(),
        data=[
            DataSource("ilsvrc-val-sample", "shared", 100, "mostly small objects"),
            DataSource("ilsvrc-val-1k", "shared", 1000, "squashed to 227 x 227"),
        ],
        results_dir=tmp_path / "results",
    )
    (tmp_path / "paper.yaml").write_text(PAPER)
    assert _main(tmp_path) == 0
    text = (tmp_path / "README.md").read_text()
    head = text[text.index("### Measured numbers with 95% intervals") : text.index("### Metrics")]
    assert _row(head, "`sets.1k.runs.cam.headline.top1_acc`")[1] == "81.0 [78.5, 83.4] (n=1000)"
    assert _row(head, "`sets.sample.runs.cam.headline.top1_acc`")[1] == "69.0 [60.0, 78.0] (n=100)"
    row = _row(head, "`sets.sample.runs.cam.post_stratified.gt_known_loc_acc.estimate`")
    assert "ESTIMATE" in row[0] and row[1] == "41.0 [30.0, 52.0] (n=100)"
    assert "plain" not in head and "covered" not in head
    assert _row(text, "ilsvrc-val-1k")[1:] == ["shared", "1000", "squashed to 227 x 227"]
    assert _row(text, "ilsvrc-val-sample")[3] == "mostly small objects"
    # a notebook without intervals gets no such table
    paper = _results(tmp_path / "other" / "results")
    assert "Measured numbers" not in build_report(
        collect_results(tmp_path / "other" / "results"), load_paper(paper)
    )
