"""camlib.core.io: output paths checked before work, checkpoints read with clear errors (issue 19)."""

from __future__ import annotations

import os

import pytest
import torch

from camlib.core.io import CheckpointError, OutputPathError, check_output_path, load_checkpoint


def test_check_output_path_refuses_inputs_folders_and_unwritable_places(tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(b"data")
    link = tmp_path / "link.bin"
    link.symlink_to(src)
    for out in (src, link, tmp_path / "x" / ".." / "in.bin"):
        with pytest.raises(OutputPathError, match="is the input"):
            check_output_path(out, inputs=[src])
    with pytest.raises(OutputPathError, match="is the input"):
        check_output_path(src, inputs=[link])  # the input given through the link
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_path(tmp_path)
    with pytest.raises(OutputPathError, match="not writable"):
        check_output_path(src / "out.png")  # its folder is a file
    ok = check_output_path(tmp_path / "new" / "deeper" / "out.png", inputs=[src])
    assert ok.parent.is_dir() and not ok.exists() and os.listdir(ok.parent) == []  # no probe file left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_check_output_path_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputPathError, match="not writable"):
        check_output_path(locked / "o.png")


def test_load_checkpoint_errors_name_the_path_and_the_fix(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pt is empty \(0 bytes\).*Train it first"):
        load_checkpoint(empty, fix="Train it first.")  # was: EOFError with no message
    text = tmp_path / "notes.pt"
    text.write_text("hello, this is not a checkpoint\n")
    with pytest.raises(
        CheckpointError, match=r"notes\.pt \(32 bytes\) is not a PyTorch checkpoint \(it starts like text\)"
    ):
        load_checkpoint(text)  # was: KeyError: 101
    truncated = tmp_path / "cut.pt"
    torch.save({"w": torch.arange(1000.0)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=r"cut\.pt .* is not a PyTorch checkpoint"):
        load_checkpoint(truncated)
    code = tmp_path / "code.pt"
    torch.save({"net": torch.nn.Linear(2, 2)}, code)  # a whole module: pickled code, refused
    with pytest.raises(CheckpointError, match=r"code\.pt holds Python objects .*state_dict"):
        load_checkpoint(code)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt not found"):
        load_checkpoint(tmp_path / "missing.pt")
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    assert torch.equal(load_checkpoint(good)["w"], torch.ones(2))


def test_gap_checkpoint_loader_gives_the_clear_error(tmp_path):
    from camlib.evaluation.localize import load_gap_checkpoint

    bad = tmp_path / "vgg.pt"
    bad.write_text("<html>404 not found</html>")
    with pytest.raises(CheckpointError, match=r"vgg\.pt .*not a PyTorch checkpoint.*notebook 02"):
        load_gap_checkpoint("vgg16", bad)
