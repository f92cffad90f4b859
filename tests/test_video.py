"""Video: the writer (camlib.core.video_out), reading (camlib.datasets.video), streamed CAM processing and the
command line (camlib.paper.video)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from camlib.core.video_out import GifPreview, VideoError, VideoWriter, pick_codec
from camlib.datasets.video import count_frames, iter_frames, probe, read_frames, synthesize_clip
from camlib.models import ImageNetModel, SmallGAPNet
from camlib.paper.video import main, process_video


def _frames(n, h, w):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return [np.roll(base, 3 * i, axis=1) for i in range(n)]


@pytest.mark.parametrize("codec", [None, "mpeg4"])
def test_writer_round_trips_frame_count_and_size(tmp_path, codec):
    path = tmp_path / "v.mp4"
    with VideoWriter(path, fps=12, codec=codec) as w:
        for f in _frames(7, 48, 64):
            w.write(f)
    assert w.frames == 7
    info = probe(path)
    assert (info.height, info.width) == (48, 64) and info.fps == pytest.approx(12)
    assert count_frames(path) == 7
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in iter_frames(path))
    assert sorted(read_frames(path, [0, 5])) == [0, 5]


def test_writer_pads_odd_sizes_and_codec_fallback(tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, fps=5) as w:
        for f in _frames(3, 21, 33):
            w.write(f)
    assert w.size == (22, 34) and (probe(path).height, probe(path).width) == (22, 34)
    assert pick_codec(("no-such-encoder", "mpeg4")) == "mpeg4"
    with pytest.raises(VideoError, match="encoders"):
        pick_codec(("no-such-encoder",))


def test_missing_and_corrupt_videos_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        probe(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="corrupt"):
        probe(junk)
    with pytest.raises(VideoError, match="corrupt"):
        list(iter_frames(junk))
    good = tmp_path / "good.mp4"
    synthesize_clip(good, size=(64, 48), fps=5, seconds_per_image=1.0)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(VideoError):
        list(iter_frames(truncated))


def test_gif_preview_is_bounded(tmp_path):
    g = GifPreview(tmp_path / "p.gif", fps=10, max_frames=8, width=32)
    for f in _frames(100, 24, 40):
        g.add(f)
        assert len(g.frames) <= 8
    path = g.close()
    from PIL import Image

    with Image.open(path) as im:
        assert im.size == (32, 19) and 4 <= im.n_frames <= 8


def test_synthesized_clip_has_the_planned_length(tmp_path):
    info = synthesize_clip(
        tmp_path / "c.mp4", ("astronaut", "coffee"), size=(64, 48), fps=6, seconds_per_image=1.0
    )
    assert info.frames == 12 and count_frames(tmp_path / "c.mp4") == 12


def _tiny_model() -> ImageNetModel:
    torch.manual_seed(0)
    net = SmallGAPNet(4, channels=(4, 8), width=8).eval()

    def pre(x):  # uint8 (3, H, W) -> float (3, 32, 32)
        return F.interpolate(x[None].float() / 255, size=(32, 32), mode="bilinear", align_corners=False)[0]

    return ImageNetModel("tiny", net, pre, (32, 32), ["a", "b", "c", "d"], "random init")


def test_process_video_streams_every_frame(tmp_path):
    src = tmp_path / "in.mp4"
    synthesize_clip(src, ("coffee", "chelsea"), size=(64, 48), fps=6, seconds_per_image=1.0)
    model = _tiny_model()
    st = process_video(
        src,
        tmp_path / "out.mp4",
        model,
        batch_size=5,
        gif=tmp_path / "out.gif",
        progress=False,
        measure_memory=True,
    )
    assert st.frames == 12 and count_frames(tmp_path / "out.mp4") == 12
    assert (probe(tmp_path / "out.mp4").height, probe(tmp_path / "out.mp4").width) == (48, 64)
    assert len(st.records) == 12 and (tmp_path / "out.gif").is_file() and st.rss_peak_mb >= st.rss_start_mb
    # without smoothing the label is the model's own top-1 on the frame
    frames = np.stack(list(iter_frames(src)))
    x = torch.stack([model.preprocess(torch.from_numpy(f).permute(2, 0, 1)) for f in frames])
    with torch.no_grad():
        top1 = model.model(x).argmax(1).tolist()
    assert [r["class"] for r in st.records] == top1
    assert all(0 <= r["peak_x"] <= 1 and 0 <= r["peak_y"] <= 1 for r in st.records)
    sm = process_video(src, tmp_path / "sm.mp4", model, smooth=0.9, batch_size=4, progress=False)
    assert sm.records[0]["score"] == pytest.approx(st.records[0]["score"], rel=1e-5)
    assert [r["score"] for r in sm.records] != [r["score"] for r in st.records]
    with pytest.raises(ValueError, match="smooth"):
        process_video(src, tmp_path / "x.mp4", model, smooth=1.0)


def test_raw_records_are_the_unsmoothed_run_from_the_same_passes(tmp_path):
    """Smoothing runs after the network: the smoothed run's raw_records are exactly a smooth=0 run's records,
    and a run's first frames are those of a shorter run (the EMA runs forward), as notebook 09 uses them."""
    src = tmp_path / "in.mp4"
    synthesize_clip(src, ("coffee", "chelsea"), size=(64, 48), fps=6, seconds_per_image=1.0)
    model = _tiny_model()
    sm = process_video(
        src, tmp_path / "sm.mp4", model, smooth=0.9, batch_size=4, progress=False, raw_records=True
    )
    plain = process_video(src, tmp_path / "raw.mp4", model, smooth=0.0, batch_size=4, progress=False)
    assert sm.raw_records == plain.records and sm.records != plain.records
    assert plain.raw_records is None and "raw_records" not in sm.to_dict(records=False)
    first = process_video(
        src, tmp_path / "f.mp4", model, smooth=0.9, batch_size=4, max_frames=5, progress=False
    )
    assert first.records == sm.records[:5]


def test_memory_in_run_reads_the_trace_of_one_run(tmp_path):
    from camlib.paper.video import MEMORY_BOUND, VideoCAMStats, memory_in_run

    src = tmp_path / "in.mp4"
    synthesize_clip(src, ("coffee",), size=(64, 48), fps=10, seconds_per_image=1.0)
    st = process_video(
        src, tmp_path / "o.mp4", _tiny_model(), batch_size=3, progress=False, measure_memory=True
    )
    assert [t["frames"] for t in st.rss_trace] == [3, 6, 9, 10]
    peaks = [t["rss_peak_mb"] for t in st.rss_trace]
    assert peaks == sorted(peaks) and peaks[-1] <= st.rss_peak_mb
    m = memory_in_run(st, short_frames=4)
    assert (m["short"]["frames"], m["long"]["frames"]) == (3, 10) and m["frames_ratio"] == pytest.approx(
        10 / 3
    )
    assert m["peak_rss_ratio"] == pytest.approx(peaks[-1] / peaks[0])
    assert memory_in_run(st, short_frames=1)["short"]["frames"] == 3  # no batch ends sooner: the first
    assert m["peak_within_1p5x"] == (m["peak_rss_ratio"] <= MEMORY_BOUND)
    fake = VideoCAMStats("in", "out", "m", 20, 2.0, 10.0, 10.0, (4, 4), "mpeg4", 0.0, 10, rss_start_mb=100.0)
    fake.rss_trace = [
        {"frames": 10, "seconds": 1.0, "rss_peak_mb": 110.0},
        {"frames": 20, "seconds": 2.0, "rss_peak_mb": 220.0},
    ]
    grown = memory_in_run(fake, short_frames=2)
    assert grown["rss_growth_ratio"] == pytest.approx(12.0) and not grown["peak_within_1p5x"]
    with pytest.raises(ValueError, match="measure_memory"):
        memory_in_run(VideoCAMStats("in", "out", "m", 1, 1.0, 1.0, 1.0, (4, 4), "mpeg4", 0.0, 1), 1)


def test_cli_runs_lite0_on_a_tiny_clip(tmp_path, capsys):
    src = tmp_path / "in.mp4"
    synthesize_clip(src, ("chelsea",), size=(64, 48), fps=3, seconds_per_image=1.0)
    out, gif, stats = tmp_path / "out.mp4", tmp_path / "out.gif", tmp_path / "s.json"
    rc = main(
        [
            str(src),
            str(out),
            "--model",
            "efficientnet_lite0",
            "--smooth",
            "0.5",
            "--batch",
            "2",
            "--gif",
            str(gif),
            "--stats",
            str(stats),
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    s = json.loads(stats.read_text())
    assert s["frames"] == 3 and count_frames(out) == 3 and gif.is_file()
    assert all(r["label"] for r in s["records"]) and s["rss_growth_mb"] >= 0


def test_cli_missing_and_corrupt_input(tmp_path, capsys):
    assert main([str(tmp_path / "nope.mp4"), str(tmp_path / "o.mp4"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    assert main([str(bad), str(tmp_path / "o.mp4"), "--no-progress"]) == 2
    assert "corrupt" in capsys.readouterr().err
    done = subprocess.run(
        [sys.executable, "-m", "camlib.video", str(bad), str(tmp_path / "o.mp4")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr


def test_label_segments_and_metrics():
    from camlib.paper.video import VideoCAMStats, label_segments, label_switches, video_metrics

    recs = [{"label": lab, "time_s": t / 10} for t, lab in enumerate("aabbba")]
    assert label_segments(recs) == [("a", 0.0, 0.1), ("b", 0.2, 0.4), ("a", 0.5, 0.5)]
    recs = [{**r, "class": ord(r["label"])} for r in recs]
    st = VideoCAMStats("in", "out", "m", 6, 1.0, 6.0, 10.0, (4, 4), "mpeg4", 0.5, 2, records=recs)
    m = video_metrics(st, st)
    assert m["labels"] == ["a", "b", "a"] and m["label_switches"] == label_switches(recs) == 2
    assert m["label_switches_unsmoothed"] == 2 and "label_switches_unsmoothed" not in video_metrics(st)


def test_quick_clip_uses_the_real_clip_when_found_else_synthesises(tmp_path, monkeypatch):
    from camlib.paper import video as V

    real = tmp_path / "video"
    real.mkdir()
    synthesize_clip(real / "bikes.mp4", ("chelsea",), size=(64, 48), fps=10, seconds_per_image=2.0)
    clip = V.quick_clip(tmp_path / "out", real)
    assert clip.real and clip.path == real / "bikes.mp4" and clip.info.frames == 20
    assert clip.data.name == "bikes.mp4" and clip.data.root_kind == "param" and clip.data.n_images == 20
    assert clip.line.startswith("data: real clip bikes.mp4")

    class Missing:
        fetch = "copy bikes.mp4 to data/video"

        def __bool__(self):
            return False

    monkeypatch.setattr("camlib.datasets.roots.resolve_root", lambda name, root=None: Missing())
    fake = V.quick_clip(
        tmp_path / "out",
        clip_kw={"size": (64, 48), "fps": 5.0, "seconds_per_image": 1.0, "fade_seconds": 0.2},
    )
    assert not fake.real and fake.data.root_kind == "procedural" and fake.info.frames == 15
    assert "copy bikes.mp4 to data/video" in fake.line
    assert probe(fake.path).frames == 15


# --------------------------------------------------------------------------- bad outputs and arguments (issue 19)


def _no_model(*a, **k):
    raise AssertionError("the model was loaded: the check did not come before the work")


@pytest.fixture
def clip(tmp_path):
    src = tmp_path / "in.mp4"
    synthesize_clip(src, ("coffee",), size=(64, 48), fps=4, seconds_per_image=1.0)
    return src


def test_cli_refuses_to_overwrite_its_input_directly_or_through_links(tmp_path, clip, capsys, monkeypatch):
    import os

    monkeypatch.setattr("camlib.paper.video.load_model", _no_model)
    before = clip.read_bytes()
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    hard = tmp_path / "hard.mp4"
    os.link(clip, hard)
    for src, out in (
        (clip, clip),
        (clip, link),
        (link, clip),
        (clip, hard),
        (clip, tmp_path / "sub" / ".." / "in.mp4"),
    ):
        assert main([str(src), str(out), "--no-progress"]) == 2
        assert "is the input" in capsys.readouterr().err
    assert main([str(clip), str(tmp_path / "o.mp4"), "--gif", str(link), "--no-progress"]) == 2
    assert "is the input" in capsys.readouterr().err
    assert clip.read_bytes() == before


def test_cli_max_frames_below_one_is_an_error(tmp_path, clip, capsys, monkeypatch):
    monkeypatch.setattr("camlib.paper.video.load_model", _no_model)
    for bad in ("0", "-3"):
        assert main([str(clip), str(tmp_path / "o.mp4"), "--max-frames", bad, "--no-progress"]) == 2
        assert "max_frames must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()
    with pytest.raises(ValueError, match="max_frames"):
        list(iter_frames(clip, max_frames=0))  # was: one frame
    assert len(list(iter_frames(clip, max_frames=1))) == 1


def test_cli_unwritable_output_is_found_before_any_work(tmp_path, clip, capsys, monkeypatch):
    import os

    monkeypatch.setattr("camlib.paper.video.load_model", _no_model)
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    assert main([str(clip), str(a_file / "out.mp4"), "--no-progress"]) == 2  # its "folder" is a file
    assert "cannot write output video" in capsys.readouterr().err
    assert main([str(clip), str(tmp_path), "--no-progress"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main([str(clip), str(tmp_path / "o.mp4"), "--stats", str(a_file / "s.json"), "--no-progress"]) == 2
    assert "cannot write stats file" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main([str(clip), str(locked / "o.mp4"), "--no-progress"]) == 2
        assert "not writable" in capsys.readouterr().err


def test_cli_huge_frames_give_a_clear_error_not_a_reshape_error(tmp_path, clip, capsys, monkeypatch):
    from camlib.datasets.video import VideoInfo

    monkeypatch.setattr("camlib.paper.video.load_model", _no_model)
    huge = VideoInfo(str(clip), 20000, 20000, 25.0, 10, "h264")  # what probe says of a 20000 x 20000 clip
    monkeypatch.setattr("camlib.paper.video.probe", lambda path: huge)
    assert main([str(clip), str(tmp_path / "o.mp4"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "20000 x 20000" in err and "downscale" in err and "reshape" not in err


def test_failing_or_interrupted_run_keeps_the_earlier_output_and_leaves_no_truncated_mp4(
    tmp_path, clip, monkeypatch
):
    model = _tiny_model()
    out, gif = tmp_path / "out.mp4", tmp_path / "out.gif"
    process_video(clip, out, model, batch_size=1, gif=gif, progress=False)
    earlier, earlier_gif = out.read_bytes(), gif.read_bytes()
    import camlib.paper.video as pv

    real = pv.heat_overlay
    for exc in (RuntimeError("disk full"), KeyboardInterrupt()):
        calls = []

        def failing(frames, maps, alpha, exc=exc, calls=calls):
            calls.append(1)
            if len(calls) == 3:  # after two frames were encoded
                raise exc
            return real(frames, maps, alpha)

        monkeypatch.setattr(pv, "heat_overlay", failing)
        with pytest.raises(type(exc)):
            process_video(clip, out, model, batch_size=1, gif=gif, progress=False)
        assert len(calls) == 3
        assert out.read_bytes() == earlier and gif.read_bytes() == earlier_gif
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "in.mp4",
            "out.gif",
            "out.mp4",
        ]  # no temporary left
    monkeypatch.setattr(pv, "heat_overlay", real)
    fresh = tmp_path / "fresh.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(fresh, fps=4) as w:
            w.write(_frames(1, 48, 64)[0])
            raise RuntimeError("stop")
    assert not fresh.exists() and not list(tmp_path.glob(".fresh*"))
