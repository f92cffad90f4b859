"""Every notebook's PAPER profile, executed on real JPEGs through ``camlib.run_notebooks``, with tiny budgets.

``../shared/data`` is laid out (symlinks and small manifest files in ``tmp_path``, never copies into the
repository) as the real datasets' official layouts, each cut to a few dozen images:

- ILSVRC val: ``images/`` + the wsolevaluation manifests (``image_ids.txt``, ``class_labels.txt``,
  ``image_sizes.txt``, ``localization.txt``) of the first images of ``ilsvrc-val-sample`` (01, 02, 03);
- ILSVRC train: imagenette2's ``train/<wnid>/`` class folders (02's fine-tuning; ``ilsvrc_train_folder``
  maps the ten Imagenette wnids to their indices in the 1000-class order), ILSVRC val files left out;
- CUB-200-2011's text layout (``images.txt``, ``classes.txt``, ``image_class_labels.txt``,
  ``train_test_split.txt``, ``images/``) for a few species of ``cub-100`` (04);
- Caltech-101's ``caltech101/101_ObjectCategories/<category>/`` for a few categories (05);
- SVT's ``svt1/{train,test}.xml`` + ``img/`` from the ten ``scene-text`` street photos and their word boxes,
  with ILSVRC photos as the no-text negatives (06, its ``text`` part: SUN2012 and caption sets are not in
  ``../shared``);
- VQA v2's ``v2_OpenEnded_mscoco_<split>_questions.json`` / ``v2_mscoco_<split>_annotations.json`` +
  ``<split>/COCO_<split>_<id>.jpg`` over ILSVRC photos, with questions made from their ILSVRC labels
  (07: a stand-in, the real VQA is not in ``../shared``; it checks the path, not VQA accuracy);
- a folder of ILSVRC photos (08) and the street video's first 40 frames (09).

Weights: torchvision weights cannot be downloaded here, so ``CAMLIB_WEIGHTS=random`` gives every
torchvision network random weights (recorded as such in the results) and 01/03/08 use the embedded
EfficientNet-Lite0 where a notebook lets one choose (``PAPER_MODEL(S)``). 02 fine-tunes GoogLeNet-GAP
for two iterations into ``$CAMLIB_CHECKPOINTS``, and 03, 04 and 05 pick that checkpoint up by default
(the chaining of ``make reproduce``). The numbers mean nothing; the test checks that every paper path
runs to its end and writes its results file with ``profile: paper``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import REPO

SHARED = REPO.parent / "shared" / "data"
NEEDED = ("ilsvrc-val-sample", "imagenette", "cub-100", "caltech101", "scene-text", "video")
N_VAL = 16  # ILSVRC val images of the paper-profile runs


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src.resolve())


def ilsvrc_val(shared: Path, out: Path, n: int = N_VAL) -> Path:
    """The first ``n`` images of the ILSVRC val sample with their wsolevaluation manifest lines."""
    src = shared / "ilsvrc-val-sample"
    ids = (src / "image_ids.txt").read_text().split()[:n]
    keep = set(ids)
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
        lines = [ln for ln in (src / name).read_text().splitlines() if ln.split(",")[0] in keep]
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("\n".join(lines) + "\n")
    for i in ids:
        _link(src / "images" / Path(i).name, out / "images" / Path(i).name)
    return out


def imagenette_train(shared: Path, out: Path, per_class: int = 3) -> Path:
    """imagenette2's ``train/<wnid>/`` layout, ``per_class`` training images per class (no ILSVRC val files)."""
    for cls in sorted((shared / "imagenette" / "train").iterdir()):
        files = sorted(p for p in cls.iterdir() if not p.name.startswith("ILSVRC2012_val_"))[:per_class]
        for f in files:
            _link(f, out / cls.name / f.name)
    return out


def cub(shared: Path, out: Path, n_classes: int = 3, per_split: int = 4) -> Path:
    """CUB's text layout for the first ``n_classes`` species, ``per_split`` train and test images each."""
    src = shared / "cub-100"
    path = dict(ln.split(" ", 1) for ln in (src / "images.txt").read_text().splitlines() if ln.strip())
    label = dict(ln.split() for ln in (src / "image_class_labels.txt").read_text().splitlines() if ln.strip())
    split = dict(ln.split() for ln in (src / "train_test_split.txt").read_text().splitlines() if ln.strip())
    classes = [ln for ln in (src / "classes.txt").read_text().splitlines() if ln.strip()][:n_classes]
    wanted = {c.split()[0] for c in classes}
    keep: list[str] = []
    for cid in sorted(wanted, key=int):
        for flag in ("1", "0"):
            keep += [i for i in sorted(path, key=int) if label[i] == cid and split[i] == flag][:per_split]
    keep.sort(key=int)
    out.mkdir(parents=True, exist_ok=True)
    (out / "images.txt").write_text("".join(f"{i} {path[i]}\n" for i in keep))
    (out / "image_class_labels.txt").write_text("".join(f"{i} {label[i]}\n" for i in keep))
    (out / "train_test_split.txt").write_text("".join(f"{i} {split[i]}\n" for i in keep))
    (out / "classes.txt").write_text("\n".join(classes) + "\n")
    for i in keep:
        _link(src / "images" / path[i], out / "images" / path[i])
    return out


def caltech101(shared: Path, root: Path, n_classes: int = 2, per_class: int = 32) -> Path:
    """``<root>/caltech101/101_ObjectCategories/<category>/image_0001.jpg ...`` for the first categories (and
    BACKGROUND_Google, which the protocol drops). The archive numbers each category's files 1..n without
    gaps and torchvision's reader relies on it; the shared folder keeps 40 of them, so the links are
    numbered 1..per_class (the protocol needs more than 30 per class)."""
    src = shared / "caltech101" / "101_ObjectCategories"
    cats = sorted(p for p in src.iterdir() if p.is_dir() and p.name != "BACKGROUND_Google")[:n_classes]
    for cat in [*cats, src / "BACKGROUND_Google"]:
        for k, f in enumerate(sorted(cat.iterdir())[:per_class], 1):
            _link(f, root / "caltech101" / "101_ObjectCategories" / cat.name / f"image_{k:04d}.jpg")
    return root


def svt(shared: Path, root: Path) -> Path:
    """SVT's layout (``svt1/train.xml``, ``svt1/test.xml``, ``svt1/img/``) from the street photos' word boxes."""
    src = shared / "scene-text"
    data = json.loads((src / "textdet_test.json").read_text())["data_list"]
    folder = root / "svt1"
    docs = {"train": [], "test": []}
    for k, item in enumerate(data):
        name = Path(item["img_path"]).name
        _link(src / "imgs" / "test" / name, folder / "img" / name)
        rects = "".join(
            f'<taggedRectangle x="{b[0]}" y="{b[1]}" width="{b[2] - b[0] + 1}" height="{b[3] - b[1] + 1}">'
            f"<tag>WORD</tag></taggedRectangle>"
            for b in (inst["bbox"] for inst in item["instances"] if not inst.get("ignore"))
        )
        docs["train" if k % 2 == 0 else "test"].append(
            f'<image><imageName>img/{name}</imageName><Resolution x="{item["width"]}" y="{item["height"]}"/>'
            f"<taggedRectangles>{rects}</taggedRectangles></image>"
        )
    for part, images in docs.items():
        (folder / f"{part}.xml").write_text("<tagset>" + "".join(images) + "</tagset>\n")
    return root


def vqa(shared: Path, root: Path, n: int = 40) -> Path:
    """VQA v2's layout over ILSVRC photos, two questions per photo from its ILSVRC label (a stand-in)."""
    from camlib.models import imagenet_classes

    src = shared / "ilsvrc-val-sample"
    labels = dict(ln.split(",") for ln in (src / "class_labels.txt").read_text().splitlines() if ln.strip())
    ids = (src / "image_ids.txt").read_text().split()[:n]
    names = imagenet_classes()
    parts = {"train2014": ids[: n * 3 // 4], "val2014": ids[n * 3 // 4 :]}
    for split, part in parts.items():
        qs, anns = [], []
        for k, i in enumerate(part):
            iid = k + 1
            _link(src / "images" / Path(i).name, root / split / f"COCO_{split}_{iid:012d}.jpg")
            name = names[int(labels[i])].lower()
            for j, (q, a, t) in enumerate(
                (
                    ("what is this?", name, "other"),
                    ("is there an animal?", "yes" if int(labels[i]) < 398 else "no", "yes/no"),
                )
            ):
                qid = iid * 10 + j
                qs.append({"image_id": iid, "question": q, "question_id": qid})
                anns.append(
                    {
                        "question_id": qid,
                        "image_id": iid,
                        "answer_type": t,
                        "question_type": q.split()[0],
                        "multiple_choice_answer": a,
                        "answers": [
                            {"answer": a, "answer_confidence": "yes", "answer_id": m + 1} for m in range(10)
                        ],
                    }
                )
        (root / f"v2_OpenEnded_mscoco_{split}_questions.json").write_text(json.dumps({"questions": qs}))
        (root / f"v2_mscoco_{split}_annotations.json").write_text(json.dumps({"annotations": anns}))
    return root


def image_folder(shared: Path, out: Path, n: int = N_VAL) -> Path:
    for f in sorted((shared / "ilsvrc-val-sample" / "images").iterdir())[:n]:
        _link(f, out / f.name)
    return out


def street_clip(shared: Path, out: Path, frames: int = 40) -> Path:
    """The first ``frames`` frames (1.6 s) of the street video, re-encoded at its size and rate: the whole
    250 frames are a 09 run of minutes on 2 busy cores, and the path is the same."""
    from camlib.core.video_out import VideoWriter
    from camlib.datasets.video import iter_frames, probe

    src = shared / "video" / "bikes.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(out, probe(src).fps) as writer:
        for frame in iter_frames(src, max_frames=frames):
            writer.write(frame)
    return out


def paper_parameters(shared: Path, tmp: Path) -> dict[str, dict]:
    """The tiny-budget paper-profile parameters of every notebook, over layouts made under ``tmp``."""
    val = ilsvrc_val(shared, tmp / "ilsvrc-val")
    small = {"N_TRAIN": 64, "N_TEST": 32, "EPOCHS": 1}
    cache = str(tmp / "cache")
    return {
        "01_cam_basics": {"ILSVRC_ROOT": str(val), "PAPER_MODEL": "efficientnet_lite0", **small},
        "02_gap_vs_gmp": {
            "ILSVRC_TRAIN": str(imagenette_train(shared, tmp / "ilsvrc-train")),
            "ILSVRC_VAL": str(val),
            "PAPER_ARCHS": ["googlenet_gap"],
            "PAPER_POOLS": ["avg"],
            "WEIGHTS": None,
            "ITERS": 2,
            "PAPER_BATCH_SIZE": 4,
            "NUM_WORKERS": 0,
            "REAL_PHOTOS": False,
            "N_SEEDS": 1,
            "N_TRAIN": 64,
            "N_VAL": 32,
            "N_TEST": 32,
            "EPOCHS": 1,
            "STUDY_CACHE": cache,
        },
        # 8 images: ten crops of two networks (Lite0 and 02's GoogLeNet-GAP) are 160 forward passes
        "03_ilsvrc_localization": {
            "ILSVRC_ROOT": str(ilsvrc_val(shared, tmp / "ilsvrc-val-8", n=8)),
            "PAPER_MODELS": ["efficientnet_lite0"],
            "BATCH_SIZE": 8,
        },
        "04_fine_grained_cub": {
            "CUB_ROOT": str(cub(shared, tmp / "cub")),
            "PAPER_MODELS": "googlenet_gap",
            "CACHE_DIR": cache,
        },
        "05_generic_features": {
            "DATA_ROOT": str(caltech101(shared, tmp / "table5")),
            # the real-photo Caltech-101 rows on the same two categories (not all of ../shared: 213 s at 224 px)
            "CALTECH101_ROOT": str(tmp / "table5" / "caltech101"),
            "TABLE5_DATASETS": "caltech101",
            "CACHE_DIR": cache,
        },
        "06_pattern_discovery": {
            "PARTS": ["text"],
            "SVT_ROOT": str(svt(shared, tmp / "svt")),
            "TEXT_NEGATIVES_ROOT": str(image_folder(shared, tmp / "negatives")),
            "CACHE_DIR": cache,
        },
        "07_vqa": {
            "VQA_ROOT": str(vqa(shared, tmp / "vqa")),
            "HEAD_EPOCHS": 2,
            "NUM_WORKERS": 0,
            "TOP_ANSWERS": 50,
            "MIN_WORD_COUNT": 1,
        },
        "08_class_specific_units": {
            "IMAGE_FOLDER": str(image_folder(shared, tmp / "photos")),
            "PAPER_MODEL": "efficientnet_lite0",
            "CACHE_DIR": cache,
        },
        "09_video_cam": {
            "VIDEO_PATH": str(street_clip(shared, tmp / "video" / "bikes_40.mp4")),
            "OUT_DIR": str(tmp / "video"),
        },
    }


# two chains run side by side (one process each, one thread each): 02 fine-tunes the checkpoint that 03-05 load
CHAINS = (
    ("02_gap_vs_gmp", "03_ilsvrc_localization", "04_fine_grained_cub", "05_generic_features"),
    ("01_cam_basics", "06_pattern_discovery", "07_vqa", "08_class_specific_units", "09_video_cam"),
)


def run_chain(stems: tuple[str, ...], params: dict, out: Path, results: Path, figures: Path) -> dict:
    """Run ``stems`` one after another in this process; notebook -> (seconds, error or None)."""
    from camlib.tools.run_notebooks import run_notebooks

    done = {}
    for stem in stems:
        nb = REPO / "notebooks" / f"{stem}.ipynb"
        [run] = run_notebooks([nb], out, "paper", params[stem], results_dir=results, figures_dir=figures)
        done[stem] = (round(run.seconds, 1), None if run.ok else f"{run.error} (executed copy {run.output})")
    return done


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 319-395 s measured on 2 busy cores one after another; 771 s at load average 10
def test_every_paper_profile_runs_on_real_jpegs(tmp_path, monkeypatch):
    """All nine notebooks, PROFILE="paper", through run_notebooks, each with its own parameters; each must
    finish and write its results file (profile "paper"); 03-05 must use 02's checkpoint by default. The
    two :data:`CHAINS` run at once in two processes (the order inside a chain is kept)."""
    if not all((SHARED / d).is_dir() for d in NEEDED):
        pytest.skip(f"../shared/data with {', '.join(NEEDED)} not present (a user's fresh clone)")
    from concurrent.futures import ProcessPoolExecutor

    monkeypatch.setenv("CAMLIB_WEIGHTS", "random")
    monkeypatch.setenv("CAMLIB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    params = paper_parameters(SHARED, tmp_path / "data")
    results, out, figures = tmp_path / "results", tmp_path / "executed", tmp_path / "figures"
    only = os.environ.get("CAMLIB_PAPER_NOTEBOOKS")  # e.g. "01,03": a subset while working on one
    chains = [tuple(s for s in chain if not only or s[:2] in only.split(",")) for chain in CHAINS]
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(run_chain, chain, params, out, results, figures) for chain in chains if chain]
        runs = {stem: r for fut in futures for stem, r in fut.result().items()}
    times = {stem: seconds for stem, (seconds, _) in runs.items()}
    print("paper-profile seconds per notebook:", times, "total", round(sum(times.values()), 1))
    failures = [f"{stem}: {error}" for stem, (_, error) in runs.items() if error]
    assert not failures, "\n".join(failures)
    for stem in runs:
        assert json.loads((results / f"{stem}.json").read_text())["profile"] == "paper", stem
    if "03_ilsvrc_localization" in runs:  # 03 wrote its settings as they finished, outside the NN_*.json glob
        files = sorted((results / "partial").glob("03_ilsvrc_localization.*.json"))  # one per ILSVRC set
        assert files, "no partial results of 03"
        for f in files:
            partial = json.loads(f.read_text())
            finished = (
                partial["not_yet_run"] == [] and "efficientnet_lite0/cam_ten_crop" in partial["finished"]
            )
            assert finished, f.name
    if {"02_gap_vs_gmp", "03_ilsvrc_localization"} <= set(runs):
        nets = json.loads((results / "03_ilsvrc_localization.json").read_text())["metrics"]["networks"]
        assert any("googlenet_gap" in k for k in nets), nets  # 02's checkpoint, found by default


def test_layouts_are_links_not_copies(tmp_path):
    """The laid-out folders hold symlinks into ../shared (and small text files), never copied images."""
    if not (SHARED / "ilsvrc-val-sample").is_dir():
        pytest.skip("../shared/data not present")
    val = ilsvrc_val(SHARED, tmp_path / "val", n=5)
    images = list((val / "images").iterdir())
    assert len(images) == 5 and all(p.is_symlink() for p in images)
    assert len((val / "image_ids.txt").read_text().split()) == 5
