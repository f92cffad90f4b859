"""The paper profiles' library paths: one localization input for every input kind (maps on exactly the
pixels they are laid on), ten crops on torchvision networks and -GAP checkpoints, partial results, the
checkpoint folder that chains 02 -> 03/04/05, ``make reproduce`` stopping at a failing notebook, a report
that never puts two profiles in one table, and the parameter messages of 08 / 09."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from PIL import Image

from .conftest import REPO
from .test_paper_profiles import SHARED, ilsvrc_val


@pytest.fixture(scope="module")
def random_resnet():
    from camlib.models import load_torchvision

    torch.manual_seed(0)
    return load_torchvision("resnet18", weights=None)  # the weights' preset, random weights: offline


def test_every_input_kind_goes_through_one_whole_image_transform(random_resnet):
    """numpy, PIL and uint8-tensor photos give the same input: the WHOLE image resized to 224 (no centre
    crop; torchvision's preset refuses numpy and crops), with the preset's mean/std."""
    from camlib.datasets.transforms import WholeImage, input_normalizer, localization_input

    pre = localization_input(random_resnet.preprocess)
    assert isinstance(pre, WholeImage) and pre.size == 224
    photo = (np.random.default_rng(0).random((300, 180, 3)) * 255).astype(np.uint8)
    xs = [pre(photo), pre(Image.fromarray(photo)), pre(torch.from_numpy(photo).permute(2, 0, 1).contiguous())]
    assert all(x.shape == (3, 224, 224) for x in xs)
    torch.testing.assert_close(xs[0], xs[1]) and torch.testing.assert_close(xs[0], xs[2])
    with pytest.raises(TypeError):
        random_resnet.preprocess(photo)  # the preset itself: what notebook 01's paper profile hit
    # the whole image: the left and right edges of the photo are in the input (a centre crop cuts them)
    edge = photo.copy()
    edge[:, :20] = 255
    assert (pre(edge) - pre(photo))[:, :, :10].abs().mean() > 1.0
    assert localization_input(pre) is pre and input_normalizer(pre) is pre.normalize


def test_maps_are_computed_and_evaluated_on_the_pixels_they_are_laid_on(random_resnet):
    """explain_image and evaluate_ilsvrc_val with a torchvision preset: the network sees the whole image
    resized (the same tensor WholeImage makes), and the maps have the image's size, where its boxes are."""
    from camlib.core.cam import CAM
    from camlib.datasets.transforms import WholeImage, input_normalizer
    from camlib.evaluation.localize import explain_image

    seen = []
    hook = random_resnet.model.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    try:
        photo = (np.random.default_rng(1).random((240, 320, 3)) * 255).astype(np.uint8)
        out = explain_image(
            CAM(random_resnet.model), photo, random_resnet.preprocess, random_resnet.classes, k=2
        )
    finally:
        hook.remove()
    whole = WholeImage(input_normalizer(random_resnet.preprocess), 224)(photo)
    torch.testing.assert_close(seen[0][0], whole)
    assert out["maps"].shape == (2, 240, 320) and np.asarray(out["boxes"]).shape == (2, 4)


def test_ilsvrc_evaluation_uses_the_whole_image(tmp_path, random_resnet):
    if not (SHARED / "ilsvrc-val-sample").is_dir():
        pytest.skip("../shared/data not present")
    from camlib.datasets.transforms import WholeImage
    from camlib.evaluation.localize import evaluate_ilsvrc_val

    root = ilsvrc_val(SHARED, tmp_path / "val", n=4)
    data, result = evaluate_ilsvrc_val(random_resnet.model, root, random_resnet.preprocess, batch_size=2)
    assert isinstance(data.preprocess, WholeImage) and result["n_images"] == 4


@pytest.mark.slow
def test_ten_crops_on_a_torchvision_network_and_a_gap_checkpoint_with_partial_results(
    tmp_path, random_resnet, monkeypatch
):
    """Notebook 03's paper profile: ten crops ran into "cannot find the normalisation in <WholeImage>" for
    torchvision networks and -GAP checkpoints. Both run now, the checkpoint found in the checkpoint folder
    by default, and the partial results file lists every finished setting as it finishes."""
    if not (SHARED / "ilsvrc-val-sample").is_dir():
        pytest.skip("../shared/data not present")
    from camlib.datasets.ilsvrc import open_ilsvrc_val
    from camlib.evaluation.localize import Protocols
    from camlib.evaluation.study import LocalizationStudy, load_networks
    from camlib.models import checkpoint_path, gap_variant

    monkeypatch.setenv("CAMLIB_CHECKPOINTS", str(tmp_path / "ckpt"))
    monkeypatch.setenv("CAMLIB_WEIGHTS", "random")
    torch.manual_seed(0)
    ckpt = checkpoint_path("googlenet_gap", "avg")
    ckpt.parent.mkdir(parents=True)
    torch.save(
        {"model": gap_variant("googlenet_gap").state_dict(), "step": 2, "config": {"max_iters": 2}}, ckpt
    )
    nets, desc = load_networks("paper", "ilsvrc", paper_models=["resnet18"], gap_checkpoints=None)
    assert set(nets) == {"resnet18", "googlenet_gap"} and str(ckpt) in desc["googlenet_gap"]
    base = open_ilsvrc_val(ilsvrc_val(SHARED, tmp_path / "val", n=2))
    study = LocalizationStudy("paper", nets, desc, base=base, batch_size=5, backprop=False, num_workers=None)
    assert study.num_workers >= 1  # the paper profile loads with workers
    study.num_workers = 0  # (here: no worker start-up on a busy machine)
    partial = tmp_path / "results" / "03.partial.json"
    results = study.run(Protocols(fractions=(0.2,)), keep_maps=0, partial=partial)
    assert {"resnet18/cam_ten_crop", "googlenet_gap/cam_ten_crop"} <= set(results)
    saved = json.loads(partial.read_text())
    assert (
        set(saved["finished"]) == set(results) and saved["not_yet_run"] == [] and saved["profile"] == "paper"
    )


def test_the_checkpoint_folder_chains_02_to_04_and_05(tmp_path, monkeypatch, capsys):
    from camlib.models import checkpoint_dir, find_checkpoint, gap_variant

    monkeypatch.delenv("CAMLIB_CHECKPOINTS", raising=False)
    assert checkpoint_dir() == REPO / "build" / "checkpoints"
    monkeypatch.setenv("CAMLIB_CHECKPOINTS", str(tmp_path))
    assert find_checkpoint("googlenet_gap") is None and "notebook 02" in capsys.readouterr().out
    torch.save(
        {"model": gap_variant("googlenet_gap").state_dict(), "step": 1, "config": {"max_iters": 5}},
        tmp_path / "googlenet_gap_avg.pt",
    )
    assert find_checkpoint("googlenet_gap") == tmp_path / "googlenet_gap_avg.pt"
    assert "UNFINISHED" in capsys.readouterr().out  # step 1 of 5: said, not hidden
    from camlib.paper.fine_grained import load_table4_network

    net = load_table4_network("googlenet_gap", None)
    assert net.name == "googlenet_gap" and "googlenet_gap_avg.pt" in net.description
    nb = nbformat.read(str(REPO / "notebooks" / "02_gap_vs_gmp.ipynb"), as_version=4)
    params = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "CHECKPOINT_DIR = None" in params  # 02 writes where 03-05 read, unless told otherwise
    for stem, line in (
        ("03_ilsvrc_localization", "GAP_CHECKPOINTS = None"),
        ("04_fine_grained_cub", "GAP_CHECKPOINT = None"),
        ("05_generic_features", "GAP_CHECKPOINT = None"),
    ):
        nb = nbformat.read(str(REPO / "notebooks" / f"{stem}.ipynb"), as_version=4)
        assert line in next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", [])), stem


def _notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    nb.cells = [nbformat.v4.new_code_cell('PROFILE = "paper"', metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_reproduce_stops_at_the_first_failing_notebook(tmp_path, capsys):
    """What `make reproduce` runs (--stop-on-failure): 02 fails, so 03 (which would read 02's output) is
    not run, and the summary says which failed and which were not run."""
    from camlib.tools.run_notebooks import main

    nbs = [
        _notebook(tmp_path / "nb" / "01_ok.ipynb", "x = 1"),
        _notebook(tmp_path / "nb" / "02_fails.ipynb", 'raise RuntimeError("no ILSVRC train folder")'),
        _notebook(tmp_path / "nb" / "03_after.ipynb", 'open("ran.txt", "w").write("ran")'),
    ]
    rc = main(
        [
            "--profile",
            "paper",
            "--stop-on-failure",
            "--out",
            str(tmp_path / "out"),
            "--results-dir",
            str(tmp_path / "res"),
            *map(str, nbs),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "FAILED" in err and "02_fails.ipynb" in err
    assert "STOPPED at 02_fails.ipynb" in err and "not run: 03_after.ipynb" in err
    assert not (tmp_path / "nb" / "ran.txt").exists()
    assert (
        main(
            [
                "--profile",
                "paper",
                "--stop-on-failure",
                "--jobs",
                "2",
                "--out",
                str(tmp_path / "o"),
                str(nbs[0]),
            ]
        )
        == 2
    )
    # a stamp newer than every prerequisite: `STAMP=Makefile` made make remake its own makefile whenever
    # pyproject.toml was newer (a fresh checkout writes it after the Makefile), and a makefile is remade
    # even under -n: pip really ran
    stamp = tmp_path / "setup-stamp"
    stamp.touch()
    done = subprocess.run(
        ["make", "-n", "reproduce", "PY=python", f"STAMP={stamp}", "GIT_HOOK="],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(ln for ln in done.stdout.splitlines() if "camlib.run_notebooks" in ln)
    assert "--stop-on-failure" in line and "--results-dir build/results-paper" in line


def test_report_never_puts_two_profiles_in_one_table(tmp_path):
    from camlib.tools.report import write_report
    from camlib.tools.results import write_results

    def one(folder, profile, value):
        write_results("03_ilsvrc_localization", metrics={"x": value}, profile=profile, parameters={"PROFILE": profile},
                      started=time.time() - 1, results_dir=folder,
                      comparisons=[{"metric": "top-5 localization error (%)", "paper_ref": "table2.googlenet_gap.top5_loc_err",
                                    "reproduced": value, "setting": f"{profile} run"}])  # fmt: skip

    one(tmp_path / "ref", "quick", 60.0)
    one(tmp_path / "run", "paper", 45.0)
    page = write_report(
        tmp_path / "run", REPO / "results" / "paper.yaml", tmp_path / "page.md", tmp_path / "ref"
    ).read_text()
    section = page.split("## 03_ilsvrc_localization")[1].split("## Not compared")[0]
    assert (
        "45.00" in section and "60.00" not in section
    )  # the quick reference is not in the paper run's table
    assert "## Not compared: another profile" in page and "`quick` profile" in page


def test_paper_parameter_messages_give_the_syntax_that_works():
    import camlib as cl
    from camlib.tools.run_notebooks import build_parser, parse_params

    msg = str(cl.missing_parameter("IMAGE_FOLDER", "/path/to/images", "08_class_specific_units"))
    cmd = next(ln for ln in msg.splitlines() if "camlib.run_notebooks" in ln).split()
    args = build_parser().parse_args(cmd[cmd.index("camlib.run_notebooks") + 1 :])
    assert parse_params(args.param) == {"IMAGE_FOLDER": "/path/to/images"} and args.profile == "paper"
    assert "-p IMAGE_FOLDER" not in msg
    for stem, key in (("08_class_specific_units", "IMAGE_FOLDER"), ("09_video_cam", "VIDEO_PATH")):
        text = (REPO / "notebooks" / f"{stem}.ipynb").read_text()
        assert f'cl.missing_parameter(\\"{key}\\"' in text and f"-p {key}" not in text


def test_imagenette_class_folders_serve_as_an_ilsvrc_train_folder(tmp_path, capsys):
    """imagenette2's train/ (ten of the 1000 wnids) trains a 1000-way network: labels are the classes'
    ImageNet indices; any other partial folder is still refused."""
    from camlib.datasets.ilsvrc import ilsvrc_train_folder

    for wnid in ("n01440764", "n03888257"):
        (tmp_path / "nette" / wnid).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "nette" / wnid / "a.JPEG")
    ds = ilsvrc_train_folder(tmp_path / "nette")
    assert ds.labels.tolist() == [0, 701] and "Imagenette class folders" in capsys.readouterr().out
    (tmp_path / "other" / "n09999999").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "other" / "n09999999" / "a.JPEG")
    with pytest.raises(ValueError, match="expected 1000"):
        ilsvrc_train_folder(tmp_path / "other")
