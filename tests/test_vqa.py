"""VQA with CAM: consensus metric + normalisation, the S_c identity, the shapes data, vocabularies."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from camlib.datasets.vqa import (
    UNK,
    Vocabulary,
    VQADataError,
    load_vqa_split,
    normalize_answer,
    process_punctuation,
    tokenize,
)
from camlib.datasets.vqa_shapes import (
    ANSWER_TYPES,
    BINDING_TYPES,
    CHANCE,
    COLOURS,
    IMAGE_ONLY_TYPES,
    QUESTION_TYPES,
    SHAPES,
    VQAShapes,
    make_vqa_arrays,
    make_vqa_sample,
)
from camlib.models.train import TrainConfig
from camlib.paper.vqa import BowGAPVQA, attach_head, gap_backbone, small_backbone
from camlib.paper.vqa_eval import (
    accuracy_by_group,
    box_union_fraction,
    pointing_summary,
    points_in_boxes,
    vqa_accuracy,
    vqa_cam_pointing,
    vqa_scores,
)
from camlib.paper.vqa_train import FeatureVQASet, answer_strings, fit_vqa, predict_vqa, records_feature_set

# ----------------------------------------------------------------------------- consensus metric


def _humans(ans: str, k: int, other: str = "blue") -> list[str]:
    return [ans] * k + [other] * (10 - k)


@pytest.mark.parametrize("k, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_consensus_with_leave_one_out_averaging(k, expected):
    # 3 of 10: in the 3 subsets that leave out a matching human only 2 match (2/3), else 3 (1):
    # (3 * 2/3 + 7 * 1) / 10 = 0.9. 2 of 10: (2 * 1/3 + 8 * 2/3) / 10 = 0.6.
    assert vqa_accuracy("red", _humans("red", k)) == pytest.approx(expected)


@pytest.mark.parametrize("k, expected", [(1, 1 / 3), (2, 2 / 3), (3, 1.0), (5, 1.0)])
def test_consensus_plain_formula(k, expected):
    assert vqa_accuracy("red", _humans("red", k), official=False) == pytest.approx(expected)


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("Two", "2"),
        ("the dog", "dog"),
        ("A red car.", "red car"),
        ("yes!", "yes"),
        ("  Yes\n", "yes"),
        ("none", "0"),
        ("ten", "10"),
        ("2.5", "2.5"),
        ("1,000", "1000"),
        ("dont", "don't"),
        ("t-shirt", "t shirt"),
        ("black - white", "black white"),
        ("an apple", "apple"),
    ],
)
def test_answer_normalisation(raw, norm):
    assert normalize_answer(raw) == norm


def test_punctuation_rule_details():
    assert process_punctuation("t-shirt") == "t shirt"  # mark inside a word -> space
    assert process_punctuation("yes, sir") == "yes sir"  # mark touching a space -> deleted
    assert process_punctuation("end.") == "end"
    assert process_punctuation("3.5") == "3.5"  # a period before a digit stays


def test_normalised_prediction_matches_humans():
    assert vqa_accuracy("Two", ["2"] * 10) == 1.0
    assert vqa_accuracy("the dog", ["dog"] * 10) == 1.0
    # human answers are only punctuation-processed, and only when they disagree (official rule)
    assert vqa_accuracy("t-shirt", ["t-shirt"] * 3 + ["shirt"] * 7) == pytest.approx(0.9)
    assert vqa_accuracy("t-shirt", ["t-shirt"] * 10) == 0.0  # prediction -> "t shirt", humans untouched
    # a quirk kept from the official script: a trailing mark on a human answer becomes a space
    assert vqa_accuracy("yes", ["yes!"] * 3 + ["no"] * 7) == 0.0
    scores = vqa_scores(["2", "cat"], [["two"] * 10, ["cat"] * 4 + ["dog"] * 6])
    assert scores.tolist() == pytest.approx([0.0, 1.0])  # human "two" is not digit-processed


def test_accuracy_by_group():
    acc = accuracy_by_group(np.array([1, 0, 1, 1]), ["a", "a", "b", "b"])
    assert acc == {"overall": 75.0, "a": 50.0, "b": 100.0}


# ----------------------------------------------------------------------------- vocabulary


def test_tokenize_and_vocabulary():
    assert tokenize("What's the colour of the SQUARE?") == ["what's", "the", "colour", "of", "the", "square"]
    v = Vocabulary.from_texts(["is there a red square?", "what colour is the square?"])
    assert v.tokens[0] == UNK and v.index("square") > 0 and v.index("zebra") == 0
    bow = v.bow(["the square square zebra"])
    assert bow[0, v.index("square")] == 2 and bow[0, 0] == 1 and bow.sum() == 4
    a = Vocabulary.from_labels(["yes", "no", "yes", "red"], top_k=2)
    assert a.tokens == ("yes", "no") and a.index("red") == -1


def test_vocabulary_from_train_split_only():
    tr = VQAShapes(300, seed=3)
    words = {w for q in tr.questions for w in tokenize(q)}
    assert set(tr.vocab.tokens) == words | {UNK}
    assert set(tr.answers.tokens) == set(tr.answer_texts)
    with pytest.raises(ValueError, match="TRAINING split"):
        VQAShapes(10, seed=3, split="test")
    te = VQAShapes(50, seed=3, split="test", vocab=tr.vocab, answers=tr.answers)
    assert te.vocab is tr.vocab and te.bow.shape == (50, len(tr.vocab))
    # a vocabulary missing words: those words become <unk>, never new entries
    small = Vocabulary(["what", "colour", "is", "the"], unk=UNK)
    te2 = VQAShapes(50, seed=3, split="test", vocab=small, answers=tr.answers)
    assert te2.bow.shape[1] == len(small) and te2.bow[:, 0].sum() > 0


# ----------------------------------------------------------------------------- dataset


def test_dataset_deterministic_and_boxes_inside():
    a = make_vqa_arrays(60, seed=7, size=64)
    b = make_vqa_arrays(20, seed=7, size=64, start=40)
    assert np.array_equal(a["images"][40:], b["images"]) and a["questions"][40:] == b["questions"]
    s = make_vqa_sample(45, seed=7)
    assert np.array_equal(s.image, a["images"][45]) and s.answer == a["answers"][45]
    assert not np.array_equal(make_vqa_sample(45, seed=8).image, s.image)
    for i in range(60):
        box, mask, qtype = a["boxes"][i], a["masks"][i], a["qtypes"][i]
        objs, about = a["object_boxes"][i], a["about_boxes"][i]
        assert (objs[objs[:, 0] >= 0] >= 0).all() and (objs < 64).all()
        if qtype in IMAGE_ONLY_TYPES:  # about every object; the mask is their union
            assert box[0] < 0 and np.array_equal(about, objs) and mask.any()
            continue
        if box[0] < 0:
            assert a["answers"][i] == "no" and not mask.any() and (about == -1).all()
            continue
        assert 0 <= box[0] <= box[2] < 64 and 0 <= box[1] <= box[3] < 64
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == tuple(box)
        assert (about[:, 0] >= 0).sum() == 1 and tuple(about[a["targets"][i]]) == tuple(box)
    assert set(a["qtypes"]) == set(QUESTION_TYPES)


def test_questions_are_answerable():
    for i in range(300):
        s = make_vqa_sample(i, seed=1)
        assert s.answer in ANSWER_TYPES[s.qtype]
        words = tokenize(s.question)
        shape = next((w for w in words if w in SHAPES), None)
        colour = next((w for w in words if w in COLOURS), None)
        if s.qtype in IMAGE_ONLY_TYPES:  # the question names no object: the image alone decides
            assert (
                shape is None and colour is None and s.target == -1 and s.about == tuple(range(len(s.shapes)))
            )
            truth = {"count": str(len(s.shapes)), "all_colour": s.colours[0], "all_shape": s.shapes[0]}[
                s.qtype
            ]
            assert s.answer == truth
            assert len(set(s.colours)) == (1 if s.qtype == "all_colour" else len(s.colours))
            assert len(set(s.shapes)) == (1 if s.qtype == "all_shape" else len(s.shapes))
            continue
        assert len(set(s.shapes)) == len(s.shapes) and len(set(s.colours)) == len(s.colours)
        if s.qtype == "colour":
            assert s.answer == s.colours[s.shapes.index(shape)]
        elif s.qtype == "shape":
            assert s.answer == s.shapes[s.colours.index(colour)]
        else:
            assert (s.answer == "yes") == ((colour, shape) in set(zip(s.colours, s.shapes, strict=True)))
            if s.answer == "no":  # a hard negative: both words name objects of the scene
                assert colour in s.colours and shape in s.shapes
        if s.target >= 0:
            assert tuple(s.boxes[s.target]) == s.box and s.about == (s.target,)


def test_chance_levels_and_balanced_answers():
    assert set(CHANCE) == set(QUESTION_TYPES) == set(BINDING_TYPES) | set(IMAGE_ONLY_TYPES)
    assert CHANCE["colour"] == 20.0 and CHANCE["count"] == pytest.approx(100 / 3) and CHANCE["exists"] == 50.0
    a = make_vqa_arrays(1200, seed=2, size=32)
    q, ans = np.asarray(a["qtypes"]), np.asarray(a["answers"])
    for t in QUESTION_TYPES:  # every answer of a type about equally often: chance is 1 / #answers
        share = np.asarray([(ans[q == t] == x).mean() for x in ANSWER_TYPES[t]])
        assert (q == t).sum() > 120 and np.abs(share - 1 / len(share)).max() < 0.12, t


def test_splits_disjoint():
    tr = VQAShapes(30, seed=0)
    te = VQAShapes(30, seed=0, split="test", vocab=tr.vocab, answers=tr.answers)
    assert not any(np.array_equal(x, y) for x, y in zip(tr.images, te.images, strict=True))


# ----------------------------------------------------------------------------- the model and CAM


@pytest.mark.parametrize("gate", [False, True])
def test_sc_identity(gate):
    torch.manual_seed(0)
    bb, k = small_backbone((8, 8), 16)
    m = BowGAPVQA(bb, k, vocab_size=12, num_answers=5, question_gate=gate)
    if gate:
        nn.init.normal_(m.gate.weight)
    x, q = torch.rand(3, 3, 32, 32), torch.rand(3, 12)
    res = m.cam(x, q, all_answers=True)  # in eval mode; the module's own flags are restored
    assert m.training
    logits = m.eval()(x, q)
    assert torch.allclose(res.logits, logits, atol=1e-5)
    rebuilt = res.maps.mean((2, 3)) + res.question_offsets + res.bias
    assert torch.allclose(rebuilt, logits, atol=1e-5)
    assert res.identity_error() < 1e-5
    # the question offset is what remains after the image part and the bias
    w_q = m.fc.weight[:, k:]
    assert torch.allclose(res.question_offsets, q @ w_q.T, atol=1e-5)
    # the image part does not depend on the question without the gate
    res2 = m.cam(x, torch.rand(3, 12), all_answers=True)
    assert torch.allclose(res.maps, res2.maps) != gate
    top = m.cam(x, q, topk=2)
    assert torch.equal(top.answers, logits.topk(2, dim=1).indices)


def test_fit_predict_and_pointing_smoke():
    tr = VQAShapes(96, seed=0, size=32)
    te = VQAShapes(40, seed=0, size=32, split="test", vocab=tr.vocab, answers=tr.answers)
    torch.manual_seed(0)
    bb, k = small_backbone((8, 8), 16)
    m = BowGAPVQA(bb, k, len(tr.vocab), len(tr.answers))
    st = fit_vqa(m, tr, TrainConfig(epochs=1, batch_size=32, lr=0.05), progress=False)
    assert st.finished and st.step == 3 and len(st.history) == 1
    logits = predict_vqa(m, te)
    assert logits.shape == (40, len(tr.answers))
    cand = te.answer_type_mask()[te.qtype_ids()]
    p = vqa_cam_pointing(m, te, cand, batch_size=16)
    assert p["identity_error"] < 1e-4
    assert np.array_equal(p["pred"], logits.argmax(1).numpy())
    assert (p["wrong"] != te.labels).all() and cand[np.arange(40), p["wrong"]].all()
    summ = pointing_summary(p, te.boxes, te.qtypes, (32, 32), te.labels)
    assert summ["n"] == int((te.boxes[:, 0] >= 0).sum()) and set(summ["per_type"]) <= set(QUESTION_TYPES)
    for key in ("cam_answer", "cam_predicted", "cam_wrong_answer", "centre", "random_point"):
        assert 0 <= summ[key] <= 100


def test_points_in_boxes_inclusive():
    boxes = np.array([[2, 2, 4, 4], [2, 2, 4, 4], [-1, -1, -1, -1]])
    pts = np.array([[4, 2], [5, 3], [0, 0]])
    assert points_in_boxes(pts, boxes).tolist() == [True, False, False]
    # several boxes per row: inside ANY of them; -1 rows hold nothing
    many = np.array([[[2, 2, 4, 4], [6, 6, 7, 7]], [[2, 2, 4, 4], [-1, -1, -1, -1]], [[-1] * 4, [-1] * 4]])
    assert points_in_boxes(np.array([[7, 6], [7, 6], [0, 0]]), many).tolist() == [True, False, False]
    assert np.array_equal(points_in_boxes(pts, boxes), points_in_boxes(pts, boxes[:, None]))


def test_box_union_fraction_counts_overlaps_once():
    # a 10 x 10 image; boxes of 3 x 3 = 9 and 2 x 2 = 4 pixels overlapping in 1 pixel: 12 pixels
    boxes = np.array([[[2, 2, 4, 4], [4, 4, 5, 5]], [[0, 0, 9, 9], [-1, -1, -1, -1]], [[-1] * 4, [-1] * 4]])
    assert box_union_fraction(boxes, (10, 10)).tolist() == pytest.approx([0.12, 1.0, 0.0])
    assert box_union_fraction(boxes[:, 0], (10, 20)).tolist() == pytest.approx([9 / 200, 0.5, 0.0])


def test_feature_set_bag_of_words_matches_the_vocabulary():
    tr = VQAShapes(40, seed=0, size=32)
    fs = FeatureVQASet(
        torch.zeros(40, 3),
        np.arange(40),
        [tr.vocab.encode(q) for q in tr.questions],
        tr.labels,
        len(tr.vocab),
    )
    idx = np.array([5, 0, 39, 5])
    x, q, y = fs.batch(idx)
    assert (
        x.shape == (4, 3, 1, 1)
        and np.array_equal(q.numpy(), tr.bow[idx])
        and y.tolist() == tr.labels[idx].tolist()
    )
    fs2 = FeatureVQASet(torch.zeros(1, 3), [0], [[2, 2, 1]], [0], 4)  # a repeated word counts twice
    assert fs2.batch([0])[1].tolist() == [[0.0, 1.0, 2.0, 0.0]]


def test_additive_model_answers_image_only_types_but_not_binding_ones():
    """The point of the image-only types: with ideal image features (which colour-shape PAIRS the scene
    holds, and its object count) the paper's additive answer layer answers them almost always, while on
    the binding types it stays far below (it cannot tie the question's word to the image's pair)."""
    tr = VQAShapes(1500, seed=0, size=32)
    te = VQAShapes(600, seed=0, size=32, split="test", vocab=tr.vocab, answers=tr.answers)

    def feats(ds):
        n_obj = (ds.object_shapes >= 0).sum(1)
        return torch.from_numpy(np.concatenate([ds.object_labels(), np.eye(5, dtype=np.float32)[n_obj]], 1))

    def fset(ds):
        return FeatureVQASet(
            feats(ds),
            np.arange(len(ds)),
            [tr.vocab.encode(q) for q in ds.questions],
            ds.labels,
            len(tr.vocab),
        )

    torch.manual_seed(0)
    head = BowGAPVQA(nn.Identity(), feats(tr).shape[1], len(tr.vocab), len(tr.answers))
    fit_vqa(
        head,
        fset(tr),
        TrainConfig(epochs=40, batch_size=128, lr=0.05, seed=0),
        optimizer="adam",
        progress=False,
    )
    ok = predict_vqa(head, fset(te)).argmax(1).numpy() == te.labels
    acc = accuracy_by_group(ok, te.qtypes)
    assert min(acc[t] for t in IMAGE_ONLY_TYPES) > 90, acc
    assert max(acc[t] for t in ("colour", "shape")) < 65 and acc["exists"] < 70, acc


# ----------------------------------------------------------------------------- paper profile pieces


def test_missing_vqa_folder_says_where_to_get_it(tmp_path):
    with pytest.raises(VQADataError, match="visualqa.org"):
        load_vqa_split(tmp_path / "nope", "val2014")
    with pytest.raises(VQADataError, match="Annotations"):
        load_vqa_split(tmp_path, "val2014")


def test_load_tiny_vqa_folder_and_train_on_features(tmp_path):
    from PIL import Image

    split = "val2014"
    (tmp_path / "Images" / split).mkdir(parents=True)
    qs, anns = [], []
    for i, (iid, q, a) in enumerate(
        [(1, "is it red?", "yes"), (1, "how many dogs?", "two"), (2, "is it red?", "no")]
    ):
        qs.append({"image_id": iid, "question": q, "question_id": 100 + i})
        anns.append(
            {
                "question_id": 100 + i,
                "image_id": iid,
                "question_type": "is it",
                "answer_type": "yes/no",
                "multiple_choice_answer": a,
                "answers": [{"answer": a, "answer_id": j + 1} for j in range(10)],
            }
        )
    for iid in (1, 2):
        Image.fromarray(np.full((40, 40, 3), 60 * iid, np.uint8)).save(
            tmp_path / "Images" / split / f"COCO_{split}_{iid:012d}.jpg"
        )
    (tmp_path / f"v2_OpenEnded_mscoco_{split}_questions.json").write_text(json.dumps({"questions": qs}))
    (tmp_path / f"v2_mscoco_{split}_annotations.json").write_text(json.dumps({"annotations": anns}))
    recs = load_vqa_split(tmp_path, split)
    assert recs.version == "v2" and len(recs) == 3 and recs.answers[1] == ["two"] * 10
    assert all(p.is_file() for p in recs.image_paths.values())

    from camlib.models import SmallGAPNet
    from camlib.paper.vqa_train import extract_pooled_features

    torch.manual_seed(0)
    backbone, k = gap_backbone(SmallGAPNet(4, channels=(8, 8), width=16).eval(), (32, 32))

    def prep(im):
        return torch.from_numpy(np.asarray(im.resize((32, 32)), dtype=np.float32).transpose(2, 0, 1) / 255)

    ids = sorted(recs.image_paths)
    feats = extract_pooled_features(backbone, [recs.image_paths[i] for i in ids], prep, progress=False)
    assert feats.shape == (2, k)
    vocab, answers = Vocabulary.from_texts(recs.questions), Vocabulary.from_labels(recs.majority, top_k=2)
    ds = records_feature_set(recs, ids, feats, vocab, answers)
    assert answers.tokens == ("no", "two")  # ties by name: "yes" is not in the top 2
    assert ds.labels.tolist() == [-1, 1, 0]
    assert torch.equal(ds.batch([2])[0][0, :, 0, 0], feats[1])
    head = BowGAPVQA(nn.Identity(), k, len(vocab), len(answers))
    fit_vqa(head, ds, TrainConfig(epochs=2, batch_size=2, lr=0.05), progress=False)
    full = attach_head(backbone, head)
    logits = predict_vqa(head, ds)
    pred = logits.argmax(1)
    scores = vqa_scores(answer_strings(logits, answers), recs.answers)
    assert scores[0] == 0.0 and set(scores.tolist()) <= {0.0, 1.0}  # "yes" cannot be predicted
    x = torch.stack([prep(Image.open(recs.image_paths[i]).convert("RGB")) for i in recs.image_ids])
    q = ds.batch(np.arange(3))[1]
    res = full.cam(x, q)
    assert torch.equal(res.answers[:, 0], pred) and res.identity_error() < 1e-4


def test_pooled_feature_cache_is_keyed_on_the_weights(tmp_path):
    """The cache of extract_pooled_features keys on a hash of the backbone's WEIGHTS: other weights under
    the same free-text cache_key are a miss (the old one-file cache returned the stale features)."""
    from PIL import Image

    from camlib.core.features import FeatureCache
    from camlib.models import SmallGAPNet
    from camlib.paper.vqa_train import extract_pooled_features

    paths = []
    for i in range(3):
        paths.append(tmp_path / "img" / f"{i}.png")
        paths[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
            paths[-1]
        )

    def prep(im):
        return torch.from_numpy(np.asarray(im.resize((16, 16)), dtype=np.float32).transpose(2, 0, 1) / 255)

    torch.manual_seed(0)
    net = SmallGAPNet(3, channels=(4, 4), width=8).eval()
    backbone, _ = gap_backbone(net, (16, 16))
    cache = FeatureCache(tmp_path / "cache")
    kw = dict(cache=cache, cache_key="same name", preprocessing="16x16", progress=False)
    a = extract_pooled_features(backbone, paths, prep, **kw)
    b = extract_pooled_features(backbone, paths, prep, **kw)
    assert (cache.misses, cache.hits) == (1, 1) and torch.equal(a, b)
    with torch.no_grad():
        net.cam_conv[0].weight.mul_(2.0)  # new weights, same cache_key
    c = extract_pooled_features(backbone, paths, prep, **kw)
    assert (cache.misses, cache.hits) == (2, 1) and not torch.allclose(a, c)
    assert torch.allclose(
        c, backbone(torch.stack([prep(Image.open(p).convert("RGB")) for p in paths])).mean((2, 3))
    )
    # the former one-file form: a .pt path stands for its folder
    d = extract_pooled_features(
        backbone,
        paths,
        prep,
        cache=tmp_path / "cache" / "feats.pt",
        cache_key="same name",
        preprocessing="16x16",
        progress=False,
    )
    assert torch.equal(c, d) and len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_each_vqa_name_has_one_home():
    """The VQA study's modules re-export nothing: every public name is defined where it is listed."""
    import camlib.datasets.vqa as data
    import camlib.paper.vqa as V
    import camlib.paper.vqa_eval as ev
    import camlib.paper.vqa_train as tr

    for module in (data, V, ev, tr):
        for name in module.__all__:
            obj = getattr(module, name)
            assert getattr(obj, "__module__", module.__name__) == module.__name__, f"{module.__name__}.{name}"
    assert not hasattr(V, "fit_vqa") and not hasattr(V, "Vocabulary")


# ----------------------------------------------------------------------------- the notebook


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_notebook_07_runs_headless(tmp_path):
    from .conftest import run_notebook

    res = run_notebook(
        "07_vqa", tmp_path, N_TRAIN=400, N_TEST=120, PRETRAIN_EPOCHS=1, HEAD_EPOCHS=2, CACHE_DIR=None
    )
    m = res["metrics"]
    models = {"paper_model", "gated_not_in_paper"}  # the variant's key says it is not the paper's
    assert res["profile"] == "quick" and set(m["accuracy_per_type"]) == models
    acc = m["accuracy_per_type"]["paper_model"]
    assert set(acc) == {"all", *QUESTION_TYPES} and {"accuracy", "chance", "above_chance", "kind"} <= set(
        acc["count"]
    )
    assert set(acc["count"]["accuracy"]) == {"value", "low", "high", "n", "level"}
    assert set(m["pointing_when_correct"]) == models and "all" in m["pointing_when_correct"]["paper_model"]
    assert max(m["identity_max_abs_err"].values()) < 1e-4
    assert {"cam_answer", "cam_wrong_answer", "centre", "random_point"} <= set(m["pointing"]["paper_model"])
    assert (
        res["data"]
        and res["data"][0]["root_kind"] == "procedural"
        and "no real VQA data" in res["data"][0]["caveat"]
    )
    assert (tmp_path / "figures" / "07_vqa_cams_paper_model.png").is_file()
    assert (tmp_path / "figures" / "07_vqa_cams_gated_not_in_paper.png").is_file()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_paper_profile_without_vqa_folder_stops_with_help(tmp_path):
    import papermill as pm

    from .conftest import run_notebook

    with pytest.raises(pm.PapermillExecutionError, match="visualqa.org"):
        run_notebook("07_vqa", tmp_path, PROFILE="paper", VQA_ROOT=str(tmp_path / "missing"))
    assert not (tmp_path / "results" / "07_vqa.json").exists()
