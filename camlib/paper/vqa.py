"""Visual question answering with class activation maps (Zhou et al., CVPR 2016, section 4.2, Fig. 12).

The paper plugs the GAP features of its CAM network into the "simple baseline for VQA" (a
bag-of-words question vector concatenated with the image feature, one linear softmax layer over the
answers) and shows the CAM of the predicted answer. :class:`BowGAPVQA` is that model:

    f_k(x, y)     image features of the backbone (k = 1..K, h x w grid)
    q             bag-of-words vector of the question (length V)
    s_a = sum_k w_k^a (1/hw) sum_{x,y} f_k(x, y)  +  sum_j u_j^a q_j  +  b_a
          `----------- image part -------------'    `- question -'
    M_a(x, y) = sum_k w_k^a f_k(x, y)                       (the CAM of answer a)
    s_a = (1/hw) sum_{x,y} M_a(x, y) + o_a(q) + b_a          (o_a(q) = u^a . q, the question offset)

``w^a`` are answer ``a``'s weights on the image part of the concatenation and ``u^a`` those on the
question part. The question cannot change WHERE the map looks, only how much the answer is favoured
overall (the offset): a limit of the additive baseline. ``question_gate=True`` is an optional
variant, not the paper's: a per-channel gate ``g(q) = sigmoid(G q + c)`` multiplies the features
before pooling, so ``f_k`` becomes ``g_k(q) f_k`` everywhere above; the identity still holds exactly,
and the question now selects which channels (hence which objects) the CAM of an answer is made of.

Also here: the question/answer :class:`Vocabulary`, the official VQA accuracy (10-answer consensus
with the official answer normalisation), a training loop for ``(image, question, answer)`` data
(:func:`fit_vqa`), CAM pointing evaluation, the Figure-12-style plot, and the pieces of the paper
profile (VQA v1/v2 folder reader, a torchvision GAP backbone, pooled-feature extraction).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import default_collate
from tqdm.auto import tqdm

from camlib.core.cam import CAM, CAMOptions, NotCAMCompatibleError, postprocess
from camlib.models.train import TrainConfig, TrainState, fit

__all__ = [
    "UNK",
    "VQA_DOWNLOAD",
    "BowGAPVQA",
    "FeatureVQASet",
    "GAPBackbone",
    "VQACAMResult",
    "VQADataError",
    "VQARecords",
    "Vocabulary",
    "accuracy_by_group",
    "answer_strings",
    "attach_head",
    "extract_pooled_features",
    "find_vqa_split",
    "fit_multilabel",
    "fit_vqa",
    "gap_backbone",
    "load_vqa_split",
    "normalize_answer",
    "plot_vqa_cams",
    "pointing_summary",
    "points_in_boxes",
    "pool_features",
    "predict_vqa",
    "process_digit_article",
    "process_punctuation",
    "records_feature_set",
    "small_backbone",
    "tokenize",
    "torchvision_gap_backbone",
    "vqa_accuracy",
    "vqa_cam_pointing",
    "vqa_scores",
]

UNK = "<unk>"
VQA_DOWNLOAD = "https://visualqa.org/download.html"


# ============================================================================ vocabulary


def tokenize(text: str) -> list[str]:
    """Lower-case words of a question: runs of letters/digits (an inner apostrophe kept: ``what's``)."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


class Vocabulary:
    """An indexed list of tokens (question words, or answers).

    With ``unk`` set (question words), index 0 is the unknown token and every unseen word maps to it.
    Without (answers), an unseen token maps to -1 (an answer the model cannot give).
    """

    def __init__(self, tokens: Iterable[str], unk: str | None = None) -> None:
        toks = list(tokens)
        if unk is not None:
            toks = [unk, *[t for t in toks if t != unk]]
        if len(set(toks)) != len(toks):
            raise ValueError("vocabulary tokens must be unique")
        self.tokens: tuple[str, ...] = tuple(toks)
        self.unk = unk
        self._index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        """Question words of ``texts`` (seen at least ``min_count`` times; the ``max_size`` most frequent),
        sorted by decreasing count then alphabetically, after ``<unk>``."""
        counts = Counter(w for t in texts for w in tokenize(t))
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(words[:max_size] if max_size else words, unk=UNK)

    @classmethod
    def from_labels(cls, labels: Iterable[str], top_k: int | None = None) -> Vocabulary:
        """Answers: the ``top_k`` most frequent labels (all when None), by decreasing count then name."""
        counts = Counter(labels)
        names = sorted(counts, key=lambda a: (-counts[a], a))
        return cls(names[:top_k] if top_k else names, unk=None)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and (self.tokens, self.unk) == (other.tokens, other.unk)

    def __hash__(self) -> int:
        return hash((self.tokens, self.unk))

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, unk={self.unk!r})"

    def index(self, token: str) -> int:
        """Index of ``token``: 0 (``<unk>``) or -1 (no unk) when unseen."""
        i = self._index.get(token)
        if i is not None:
            return i
        return 0 if self.unk is not None else -1

    def lookup(self, tokens: Iterable[str]) -> list[int]:
        return [self.index(t) for t in tokens]

    def encode(self, text: str) -> list[int]:
        """Word indices of a question (unknown words -> ``<unk>``)."""
        return self.lookup(tokenize(text))

    def bow(self, texts: Sequence[str] | Sequence[Sequence[int]]) -> np.ndarray:
        """(N, len(self)) float32 word counts of questions (strings, or lists of word indices)."""
        out = np.zeros((len(texts), len(self)), dtype=np.float32)
        for i, t in enumerate(texts):
            ids = self.encode(t) if isinstance(t, str) else t
            np.add.at(out[i], np.asarray(ids, dtype=np.int64), 1.0)
        return out

    def to_list(self) -> list[str]:
        return list(self.tokens)


# ============================================================================ VQA accuracy
# The official evaluation (github.com/GT-Vision-Lab/VQA, PythonEvaluationTools/vqaEvaluation/vqaEval.py):
#   predicted answer: punctuation, then digits/articles/contractions (processDigitArticle);
#   human answers: punctuation only, and only when the 10 answers are not all identical;
#   accuracy = mean over the 10 leave-one-out subsets of min(1, #matches among the other 9 / 3).

_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: the official pattern (drops '.' not before a digit)
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
_ARTICLES = ("a", "an", "the")
# The common entries of the official contraction table (apostrophe-less form -> with apostrophe).
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldnt": "couldn't", "couldve": "could've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't", "hasnt": "hasn't",
    "havent": "haven't", "hes": "he's", "im": "i'm", "isnt": "isn't", "itll": "it'll", "ive": "i've",
    "lets": "let's", "shouldnt": "shouldn't", "thats": "that's", "theres": "there's", "theyre": "they're",
    "wasnt": "wasn't", "werent": "weren't", "whats": "what's", "wheres": "where's", "whos": "who's",
    "wont": "won't", "wouldnt": "wouldn't", "youre": "you're", "youve": "you've",
}


def process_punctuation(text: str) -> str:
    """The official punctuation rule: each mark is deleted when it touches a space (or the answer
    has a ``digit,digit`` group), else replaced by a space; a period not followed by a digit is dropped."""
    out = text
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    # the official call passes re.UNICODE (= 32) as the count: at most 32 periods are removed
    return _PERIOD_STRIP.sub("", out, count=32)


def process_digit_article(text: str) -> str:
    """The official word rule: lower-case, number words -> digits, drop a/an/the, add apostrophes."""
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words)


def normalize_answer(answer: str) -> str:
    """What the official evaluation compares for a predicted answer."""
    a = answer.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(a))


def vqa_accuracy(predicted: str, human_answers: Sequence[str], official: bool = True) -> float:
    """VQA accuracy of one predicted answer against the (usually 10) human answers, in [0, 1].

    ``official=True``: the evaluation server's rule, ``min(1, n/3)`` averaged over the leave-one-out
    subsets of the human answers (with 10 answers: 1 match -> 0.3, 2 -> 0.6, 3 -> 0.9, >= 4 -> 1.0),
    with the official normalisation. ``official=False``: the formula of the VQA paper, ``min(1, n/3)``
    over all answers (3 matches -> 1.0), with the same normalisation.
    """
    if len(human_answers) == 0:
        raise ValueError("no human answers")
    pred = normalize_answer(predicted)
    gts = [a.replace("\n", " ").replace("\t", " ").strip() for a in human_answers]
    if len(set(gts)) > 1:
        gts = [process_punctuation(a) for a in gts]
    matches = [g == pred for g in gts]
    if not official:
        return min(1.0, sum(matches) / 3.0)
    total = sum(matches)
    return float(np.mean([min(1.0, (total - m) / 3.0) for m in matches]))


def vqa_scores(predicted: Sequence[str], human_answers: Sequence[Sequence[str]], official: bool = True) -> np.ndarray:
    """(N,) per-question VQA accuracies in [0, 1]."""
    if len(predicted) != len(human_answers):
        raise ValueError(f"{len(predicted)} predictions for {len(human_answers)} questions")
    return np.asarray([vqa_accuracy(p, h, official) for p, h in zip(predicted, human_answers, strict=True)])


def accuracy_by_group(correct: np.ndarray, groups: Sequence[str]) -> dict[str, float]:
    """Mean of ``correct`` (bool or [0, 1] scores) in percent: ``overall`` and per group name."""
    c = np.asarray(correct, dtype=np.float64)
    g = np.asarray(groups)
    out = {"overall": 100.0 * float(c.mean())}
    for name in sorted(set(g.tolist())):
        out[str(name)] = 100.0 * float(c[g == name].mean())
    return out


# ============================================================================ the model


def small_backbone(channels: tuple[int, ...] = (24, 48, 96), width: int = 128) -> tuple[nn.Module, int]:
    """The conv part of :class:`camlib.models.SmallGAPNet` (conv blocks -> 3x3 conv + ReLU), its width.

    64 x 64 input -> ``width`` x 16 x 16 features.
    """
    from camlib.models import SmallGAPNet

    net = SmallGAPNet(1, channels=channels, width=width)
    return nn.Sequential(net.features, net.cam_conv), width


@dataclass
class VQACAMResult:
    """The answer CAMs of one batch. ``maps[b, i]`` is the raw map of answer ``answers[b, i]``.

    ``logits[b, a] == maps[b, i].mean() + question_offsets[b, i] + bias[b, i]`` for ``a = answers[b, i]``
    (:meth:`identity_error` measures it).
    """

    logits: Tensor  # (B, A)
    answers: Tensor  # (B, n) long
    maps: Tensor  # (B, n, h, w)
    question_offsets: Tensor  # (B, n): u^a . q
    bias: Tensor  # (B, n)
    features: Tensor  # (B, K, h, w), after the question gate when there is one
    gates: Tensor | None  # (B, K) or None

    @property
    def image_scores(self) -> Tensor:
        """(B, n) the image part of each logit: the mean of the answer's map."""
        return self.maps.mean((2, 3))

    def identity_error(self) -> float:
        """max |logit - (mean of map + question offset + bias)| over the batch."""
        rebuilt = self.image_scores + self.question_offsets + self.bias
        return float((self.logits.gather(1, self.answers) - rebuilt).abs().max())


class BowGAPVQA(nn.Module):
    """The bag-of-words + GAP-image-feature VQA baseline with one linear answer layer (CAM-able).

    ``backbone(x)`` must return (B, K, h, w) features (K = ``feature_dim``). ``forward(x, q)`` takes the
    images and (B, V) bag-of-words vectors and returns (B, A) answer logits:
    ``fc(concat(GAP(features), q))``. ``fc.weight[:, :K]`` is the image part, ``fc.weight[:, K:]`` the
    question part. ``question_gate=True``: see the module docstring (not the paper's model).
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        vocab_size: int,
        num_answers: int,
        *,
        question_gate: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim, self.vocab_size, self.num_answers = int(feature_dim), int(vocab_size), int(num_answers)
        self.gate: nn.Linear | None = None
        if question_gate:
            self.gate = nn.Linear(vocab_size, feature_dim)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, 2.0)  # starts almost open (sigmoid(2) = 0.88)
        self.fc = nn.Linear(feature_dim + vocab_size, num_answers)

    def gates(self, q: Tensor) -> Tensor | None:
        return None if self.gate is None else torch.sigmoid(self.gate(q))

    def features(self, x: Tensor, q: Tensor) -> tuple[Tensor, Tensor | None]:
        """(B, K, h, w) features as the answer layer sees them (gated), and the gates (or None)."""
        f = self.backbone(x)
        if f.ndim != 4 or f.shape[1] != self.feature_dim:
            raise ValueError(f"backbone returned {tuple(f.shape)}, expected (B, {self.feature_dim}, h, w)")
        g = self.gates(q)
        if g is not None:
            f = f * g[:, :, None, None]
        return f, g

    def forward(self, x: Tensor, q: Tensor) -> Tensor:
        f, _ = self.features(x, q)
        return self.fc(torch.cat([f.mean((2, 3)), q.to(f.dtype)], dim=1))

    def cam(
        self,
        x: Tensor,
        q: Tensor,
        answers: Tensor | Sequence[int] | Sequence[Sequence[int]] | None = None,
        *,
        topk: int | None = None,
        all_answers: bool = False,
    ) -> VQACAMResult:
        """Answer CAMs in one forward pass (eval mode, no grad; train/eval flags restored).

        ``answers``: one answer per image (B,) or a (B, n) table; else the ``topk`` best answers
        (default top-1), or every answer with ``all_answers=True``.
        """
        flags = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            with torch.no_grad():
                f, g = self.features(x, q)
                K = self.feature_dim
                w, b = self.fc.weight, self.fc.bias
                qf = q.to(f.dtype)
                logits = F.linear(torch.cat([f.mean((2, 3)), qf], dim=1), w, b)
                B, A = logits.shape
                if all_answers:
                    classes = torch.arange(A, device=x.device).expand(B, A)
                elif answers is not None:
                    classes = torch.as_tensor(answers, dtype=torch.long, device=x.device)
                    classes = classes[:, None] if classes.ndim == 1 else classes
                    if classes.shape[0] != B or classes.ndim != 2:
                        raise ValueError(f"answers must be (B,) or (B, n) with B={B}, got {tuple(classes.shape)}")
                    if classes.numel() and (classes.min() < 0 or classes.max() >= A):
                        raise ValueError(f"answer index out of range [0, {A})")
                else:
                    classes = logits.topk(1 if topk is None else int(topk), dim=1).indices
                maps = torch.einsum("bkhw,bnk->bnhw", f, w[classes, :K])
                offsets = torch.einsum("bv,bnv->bn", qf, w[classes, K:])
                return VQACAMResult(logits, classes, maps, offsets, b[classes], f, g)
        finally:
            for m, flag in flags:
                m.training = flag


# ============================================================================ training / prediction


def _vqa_batch(dataset, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    if hasattr(dataset, "batch"):
        x, q, y = dataset.batch(idx.numpy() if isinstance(idx, Tensor) else idx)
    else:
        x, q, y = default_collate([dataset[int(i)] for i in idx])
    return x, q.float(), torch.as_tensor(y, dtype=torch.long)


def fit_vqa(
    model: BowGAPVQA,
    dataset,
    config: TrainConfig,
    *,
    device: str | torch.device = "cpu",
    head_prefixes: Sequence[str] = (),
    optimizer: str = "sgd",
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> TrainState:
    """Train on ``(image, question_bow, answer)`` data with cross-entropy (answer -1 = ignored).

    Runs :func:`camlib.models.train.fit` with a VQA batch and step: the sample order of epoch ``e`` is seeded
    by ``(config.seed, e)``, the torch RNG before step ``s`` by ``(config.seed, s)``, step
    learning-rate decay, ``head_lr_mult`` for ``head_prefixes``, optional ``checkpoint`` with exact
    resume. No augmentation. ``optimizer``: ``"sgd"``
    (momentum ``config.momentum``) or ``"adam"`` (AdamW with ``config.lr`` and decoupled
    ``config.weight_decay``). ``dataset`` either has ``batch(indices)`` returning ``(x, q, y)``
    tensors, or items ``(x, q, y)``. Returns the state with the per-epoch history (loss, train_acc
    over the known answers, lr, seconds).
    """
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)

    def step(m, x, q, y):
        known = y >= 0
        if not bool(known.any()):
            return None, 0, 0
        logits = m(x, q)
        return loss_fn(logits, y), float((logits.argmax(1) == y)[known].sum()), int(known.sum())

    return fit(model, dataset, config, device=device, augment=None, head_prefixes=head_prefixes, progress=progress,
               optimizer=optimizer, batch_fn=lambda idx: _vqa_batch(dataset, idx), step_fn=step, desc="train vqa",
               checkpoint=checkpoint)


def fit_multilabel(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    config: TrainConfig,
    *,
    device: str | torch.device = "cpu",
    optimizer: str = "adam",
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> TrainState:
    """Train an image classifier on multi-hot ``targets`` (N, C) with a sigmoid cross-entropy per class.

    The quick profile's stand-in for ImageNet pretraining: a GAP network learns which objects a scene
    holds, and its frozen features then feed the VQA answer layer (the paper puts the features of its
    ImageNet CAM network into the VQA baseline). ``images``: (N, 3, H, W) float or (N, H, W, 3) uint8.
    Same seeding conventions as :func:`fit_vqa`; ``train_acc`` in the history is the per-label accuracy.
    """
    imgs = torch.as_tensor(images)
    if imgs.dtype == torch.uint8:
        imgs = imgs.permute(0, 3, 1, 2)
    tgt = torch.as_tensor(targets, dtype=torch.float32)
    if len(imgs) != len(tgt):
        raise ValueError(f"{len(imgs)} images for {len(tgt)} target rows")
    loss_fn = nn.BCEWithLogitsLoss()

    def get_batch(idx):
        x = imgs[idx]
        return (x.float() / 255.0 if x.dtype == torch.uint8 else x.float()), tgt[idx]

    def step(m, x, t):
        logits = m(x)
        return loss_fn(logits, t), float(((logits > 0) == (t > 0.5)).float().mean(1).sum()), len(t)

    return fit(model, tgt, config, device=device, augment=None, progress=progress, optimizer=optimizer,
               batch_fn=get_batch, step_fn=step, desc="pretrain", checkpoint=checkpoint)


@torch.no_grad()
def pool_features(
    backbone: nn.Module, images, batch_size: int = 256, device: str | torch.device = "cpu"
) -> Tensor:
    """(N, K) global-average-pooled ``backbone`` features of in-memory images, in eval mode.

    ``images``: (N, H, W, 3) uint8 (scaled to [0, 1]) or (N, 3, H, W) float.
    """
    imgs = torch.as_tensor(images)
    was = backbone.training
    backbone.eval().to(device)
    try:
        out = []
        for s in range(0, len(imgs), batch_size):
            x = imgs[s : s + batch_size]
            x = x.permute(0, 3, 1, 2).float() / 255.0 if x.dtype == torch.uint8 else x.float()
            out.append(backbone(x.to(device)).float().mean((2, 3)).cpu())
        return torch.cat(out)
    finally:
        backbone.train(was)


def attach_head(backbone: nn.Module, head: BowGAPVQA) -> BowGAPVQA:
    """The full image model: ``backbone`` under the answer layer (and gate) of a ``head`` trained on
    pooled features (``BowGAPVQA(nn.Identity(), ...)``). The layers are shared, not copied."""
    full = BowGAPVQA(backbone, head.feature_dim, head.vocab_size, head.num_answers, question_gate=head.gate is not None)
    full.fc = head.fc
    full.gate = head.gate
    return full


@torch.no_grad()
def predict_vqa(model: nn.Module, dataset, batch_size: int = 256, device: str | torch.device = "cpu") -> Tensor:
    """(N, A) answer logits of a whole dataset, in order, in eval mode (flags restored)."""
    was = model.training
    model.eval()
    try:
        out = []
        for s in range(0, len(dataset), batch_size):
            x, q, _ = _vqa_batch(dataset, torch.arange(s, min(len(dataset), s + batch_size)))
            out.append(model(x.to(device), q.to(device)).float().cpu())
        return torch.cat(out)
    finally:
        model.train(was)


# ============================================================================ CAM pointing


def _peaks(maps: Tensor, size: tuple[int, int], upsample: str) -> Tensor:
    """(B, n, 2) integer (x, y) pixel of each map's maximum after upsampling to ``size``."""
    up = postprocess(maps, CAMOptions(upsample=upsample, size=size, normalize="none"))
    B, n, H, W = up.shape
    flat = up.reshape(B, n, H * W).argmax(-1)
    return torch.stack([flat % W, flat // W], dim=-1)


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) bool: (x, y) inside the inclusive box; ``-1`` boxes contain nothing."""
    p, b = np.asarray(points), np.asarray(boxes)
    return (b[:, 0] >= 0) & (p[:, 0] >= b[:, 0]) & (p[:, 0] <= b[:, 2]) & (p[:, 1] >= b[:, 1]) & (p[:, 1] <= b[:, 3])


@torch.no_grad()
def vqa_cam_pointing(
    model: BowGAPVQA,
    dataset,
    wrong_candidates: np.ndarray,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    upsample: str = "bilinear",
) -> dict[str, np.ndarray | float]:
    """Where the answer CAMs peak, for every question of ``dataset`` (which needs ``batch``, ``labels``).

    Three maps per question: of the ground-truth answer, of the predicted answer, and of the WRONG
    answer the model scores highest among ``wrong_candidates[i]`` (a (N, A) bool table, e.g. the other
    answers of the same question type; the ground truth is always excluded). Maps are upsampled to the
    image size (``upsample``) and their argmax pixel taken. Returns ``logits`` (N, A), ``pred`` (N,),
    ``wrong`` (N,), ``peak_answer``/``peak_pred``/``peak_wrong`` (N, 2) (x, y) and
    ``identity_error`` (max |logit - mean map - question offset - bias| over all maps).
    """
    n = len(dataset)
    labels = torch.as_tensor(np.asarray(dataset.labels), dtype=torch.long)
    cand = torch.as_tensor(np.asarray(wrong_candidates, dtype=bool))
    if cand.shape[0] != n:
        raise ValueError(f"wrong_candidates has {cand.shape[0]} rows for {n} questions")
    out = {k: [] for k in ("logits", "pred", "wrong", "peak_answer", "peak_pred", "peak_wrong")}
    err = 0.0
    for s in range(0, n, batch_size):
        idx = torch.arange(s, min(n, s + batch_size))
        x, q, _ = _vqa_batch(dataset, idx)
        x, q = x.to(device), q.to(device)
        y = labels[idx].to(device)
        first = model.cam(x, q, topk=1)
        logits = first.logits
        pred = logits.argmax(1)
        c = cand[idx].to(device).clone()
        c[torch.arange(len(idx)), y.clamp_min(0)] &= ~(y >= 0)
        masked = logits.masked_fill(~c, -torch.inf)
        wrong = masked.argmax(1)
        y_safe = torch.where(y >= 0, y, pred)
        res = model.cam(x, q, torch.stack([y_safe, pred, wrong], dim=1))
        err = max(err, res.identity_error())
        peaks = _peaks(res.maps, tuple(x.shape[-2:]), upsample).cpu()
        out["logits"].append(logits.cpu())
        out["pred"].append(pred.cpu())
        out["wrong"].append(wrong.cpu())
        out["peak_answer"].append(peaks[:, 0])
        out["peak_pred"].append(peaks[:, 1])
        out["peak_wrong"].append(peaks[:, 2])
    result: dict[str, np.ndarray | float] = {k: torch.cat(v).numpy() for k, v in out.items()}
    result["identity_error"] = err
    return result


def pointing_summary(
    pointing: dict, boxes: np.ndarray, groups: Sequence[str], size: tuple[int, int], labels: np.ndarray | None = None
) -> dict:
    """Pointing accuracy (%) over the questions that have a box (and a known answer when ``labels``).

    ``cam_answer``: the ground-truth answer's CAM peaks inside the box; ``cam_predicted``: the
    predicted answer's; ``cam_wrong_answer``: the best-scoring wrong answer's (a baseline: an
    answer-specific map should point elsewhere); ``centre``: the image's centre pixel
    ``(W // 2, H // 2)``; ``random_point``: a uniformly random pixel, in expectation (box area / image
    area). Also per group (question type) and ``n``.
    """
    boxes = np.asarray(boxes)
    H, W = size
    has = boxes[:, 0] >= 0
    if labels is not None:
        has &= np.asarray(labels) >= 0
    centre = np.tile([W // 2, H // 2], (len(boxes), 1))
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1) / float(H * W)
    hits = {
        "cam_answer": points_in_boxes(pointing["peak_answer"], boxes),
        "cam_predicted": points_in_boxes(pointing["peak_pred"], boxes),
        "cam_wrong_answer": points_in_boxes(pointing["peak_wrong"], boxes),
        "centre": points_in_boxes(centre, boxes),
        "random_point": area,
    }
    g = np.asarray(groups)

    def rates(sel: np.ndarray) -> dict:
        r = {k: 100.0 * float(np.mean(v[sel])) for k, v in hits.items()} if sel.any() else {}
        r["n"] = int(sel.sum())
        return r

    out = rates(has)
    out["per_type"] = {str(t): rates(has & (g == t)) for t in sorted(set(g[has].tolist()))}
    return out


# ============================================================================ figures


def plot_vqa_cams(
    images,
    questions: Sequence[str],
    answers: Sequence[str],
    maps,
    *,
    truths: Sequence[str] | None = None,
    boxes=None,
    ncols: int = 4,
    title: str | None = None,
):
    """The paper's Figure 12 layout: per example the image with its question, then the CAM of the
    predicted answer (named above it, with the true answer when it differs), the question's object
    boxed in red when ``boxes`` is given. ``maps`` at the image size (see :func:`postprocess`)."""
    import matplotlib.pyplot as plt

    from camlib.core.viz import FIG_DPI, GT_COLOR, draw_box, overlay, to_image

    n = len(questions)
    nrows = int(math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, 2 * ncols, figsize=(2.0 * 2 * ncols, 2.45 * nrows), dpi=FIG_DPI, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, ncols)
        a0, a1 = axes[r, 2 * c], axes[r, 2 * c + 1]
        a0.axis("on")
        a1.axis("on")
        a0.imshow(to_image(images[i]))
        a0.set_title("\n".join(_wrap(questions[i], 24)), fontsize=7)
        a1.imshow(overlay(images[i], maps[i]))
        label = f"A: {answers[i]}"
        ok = truths is None or answers[i] == truths[i]
        if not ok:
            label += f" (true: {truths[i]})"
        a1.set_title(label, fontsize=7, color="darkgreen" if ok else "darkred")
        if boxes is not None:
            draw_box(a1, boxes[i], GT_COLOR, lw=1.2)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int) -> list[str]:
    lines, cur = [], ""
    for w in text.split():
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return [*lines, cur]


# ============================================================================ paper profile: VQA v1/v2


class VQADataError(FileNotFoundError):
    """The VQA folder is missing or not laid out as expected."""


def _layout_help(root: Path, split: str) -> str:
    return (
        f"Get VQA (v2 or v1 'Real Images', Open-Ended) from {VQA_DOWNLOAD}: the questions and annotations "
        f"zips, and the MS-COCO images ({split}.zip) linked from the same page. Lay it out as\n"
        f"  {root}/\n"
        f"    v2_OpenEnded_mscoco_{split}_questions.json   (v1: OpenEnded_mscoco_{split}_questions.json)\n"
        f"    v2_mscoco_{split}_annotations.json           (v1: mscoco_{split}_annotations.json)\n"
        f"    {split}/COCO_{split}_000000000009.jpg ...\n"
        "(the JSON files may also sit in Questions/ and Annotations/ subfolders, and the images in "
        f"Images/{split}/ or Images/mscoco/{split}/, as in the official zips), then pass VQA_ROOT='{root}'."
    )


def find_vqa_split(root: str | Path, split: str) -> dict:
    """Locate one split (``train2014``, ``val2014``) of a VQA v1/v2 folder.

    Returns ``{"questions": Path, "annotations": Path, "images": Path, "version": "v1" | "v2"}`` or
    raises :class:`VQADataError` saying where to get VQA and how to lay it out.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise VQADataError(f"VQA folder {root} does not exist.\n" + _layout_help(root, split))
    dirs = [root, root / "Questions", root / "Annotations", root / "questions", root / "annotations"]
    found: dict = {}
    for version, qname, aname in (
        ("v2", f"v2_OpenEnded_mscoco_{split}_questions.json", f"v2_mscoco_{split}_annotations.json"),
        ("v1", f"OpenEnded_mscoco_{split}_questions.json", f"mscoco_{split}_annotations.json"),
    ):
        q = next((d / qname for d in dirs if (d / qname).is_file()), None)
        a = next((d / aname for d in dirs if (d / aname).is_file()), None)
        if q is not None and a is not None:
            found = {"questions": q, "annotations": a, "version": version}
            break
    if not found:
        raise VQADataError(f"no VQA questions+annotations for {split!r} in {root}.\n" + _layout_help(root, split))
    for d in (root / split, root / "Images" / split, root / "Images" / "mscoco" / split, root / "images" / split):
        if d.is_dir():
            found["images"] = d
            return found
    raise VQADataError(f"no image folder {split}/ for {split!r} in {root}.\n" + _layout_help(root, split))


@dataclass
class VQARecords:
    """The questions of one VQA split with their 10 human answers (aligned lists) and image files."""

    split: str
    version: str
    question_ids: list[int]
    image_ids: list[int]
    questions: list[str]
    answers: list[list[str]]  # the human answers (10 each)
    majority: list[str]  # multiple_choice_answer: the most common human answer
    answer_types: list[str]  # yes/no, number, other
    question_types: list[str]
    image_paths: dict[int, Path]

    def __len__(self) -> int:
        return len(self.question_ids)


def load_vqa_split(root: str | Path, split: str, max_questions: int | None = None) -> VQARecords:
    """Read a VQA v1/v2 split (see :func:`find_vqa_split`); ``max_questions`` keeps the first ones."""
    paths = find_vqa_split(root, split)
    qs = json.loads(Path(paths["questions"]).read_text(encoding="utf-8"))["questions"]
    anns = {a["question_id"]: a for a in json.loads(Path(paths["annotations"]).read_text(encoding="utf-8"))["annotations"]}
    if max_questions is not None:
        qs = qs[: int(max_questions)]
    missing = [q["question_id"] for q in qs if q["question_id"] not in anns]
    if missing:
        raise VQADataError(f"{len(missing)} questions of {paths['questions']} have no annotation (e.g. {missing[0]})")
    recs = VQARecords(split, paths["version"], [], [], [], [], [], [], [], {})
    img_dir = Path(paths["images"])
    for q in qs:
        a = anns[q["question_id"]]
        recs.question_ids.append(int(q["question_id"]))
        recs.image_ids.append(int(q["image_id"]))
        recs.questions.append(q["question"])
        recs.answers.append([x["answer"] for x in a["answers"]])
        recs.majority.append(a["multiple_choice_answer"])
        recs.answer_types.append(a.get("answer_type", "?"))
        recs.question_types.append(a.get("question_type", "?"))
        iid = int(q["image_id"])
        if iid not in recs.image_paths:
            recs.image_paths[iid] = img_dir / f"COCO_{split}_{iid:012d}.jpg"
    return recs


class GAPBackbone(nn.Module):
    """The feature maps that a CAM-compatible classifier global-average-pools (the layer CAM uses).

    Runs the whole classifier and returns the hooked feature layer's output (ReLU'd when the head
    applies one in its forward code), so any model :class:`camlib.core.cam.CAM` accepts with an average
    pooling head works.
    """

    def __init__(self, model: nn.Module, feature_layer: str, relu: bool = False) -> None:
        super().__init__()
        self.model, self.feature_layer, self.relu = model, feature_layer, relu
        self._layer = dict(model.named_modules())[feature_layer]

    def forward(self, x: Tensor) -> Tensor:
        store: list[Tensor] = []
        h = self._layer.register_forward_hook(lambda _m, _i, o: store.append(o))
        try:
            self.model(x)
        finally:
            h.remove()
        f = store[-1]
        return f.relu() if self.relu else f


def gap_backbone(model: nn.Module, input_size: tuple[int, int] = (224, 224)) -> tuple[GAPBackbone, int]:
    """Wrap a classifier as a :class:`GAPBackbone`, finding its feature layer with :class:`CAM`."""
    p = next(model.parameters())
    cam = CAM(model)
    out = cam(torch.zeros(1, 3, *input_size, device=p.device, dtype=p.dtype))
    head = cam.head
    assert head is not None
    if head.kind != "linear" or head.pool != "avg":
        raise NotCAMCompatibleError(f"need a global AVERAGE pooling + linear head, found {head}")
    return GAPBackbone(model, head.feature_layer, head.relu), int(out.features.shape[1])


def torchvision_gap_backbone(name: str = "googlenet", weights: str = "DEFAULT", device: str | torch.device = "cpu"):
    """A pretrained torchvision GAP classifier (via :func:`camlib.models.load_torchvision`) as a frozen
    feature extractor. Returns ``(backbone, feature_dim, preprocess, description)``."""
    from camlib.models import load_torchvision

    m = load_torchvision(name, weights=weights, device=device)
    for p in m.model.parameters():
        p.requires_grad_(False)
    backbone, k = gap_backbone(m.model, m.input_size)
    return backbone.eval(), k, m.preprocess, m.description


class _ImageFiles(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[Path], preprocess) -> None:
        self.paths, self.preprocess = list(paths), preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tensor:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.preprocess(im.convert("RGB"))


@torch.no_grad()
def extract_pooled_features(
    backbone: nn.Module,
    paths: Sequence[str | Path],
    preprocess,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    cache: str | Path | None = None,
    cache_key: str = "",
    progress: bool = True,
) -> Tensor:
    """(N, K) float32 global-average-pooled backbone features of image files (in order).

    ``cache``: a ``.pt`` file; reused when it holds the same file list and ``cache_key`` (say, the
    backbone's description), else (re)written.
    """
    names = [str(p) for p in paths]
    if cache is not None and Path(cache).is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        if saved.get("paths") == names and saved.get("key") == cache_key:
            return saved["features"]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise VQADataError(f"{len(missing)} image files are missing, e.g. {missing[0]}")
    loader = torch.utils.data.DataLoader(
        _ImageFiles([Path(p) for p in paths], preprocess), batch_size=batch_size, num_workers=num_workers
    )
    backbone.eval().to(device)
    out = [backbone(x.to(device)).float().mean((2, 3)).cpu() for x in tqdm(loader, desc="features", disable=not progress)]
    feats = torch.cat(out)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"paths": names, "key": cache_key, "features": feats}, cache)
    return feats


class FeatureVQASet:
    """Questions over precomputed pooled image features, in the ``batch`` form :func:`fit_vqa` takes.

    ``features`` (M, K) per image, ``image_index`` (N,) row of each question's image, ``bow_ids``
    word indices of each question, ``labels`` (N,) answer indices (-1 = not in the answer vocabulary).
    Images come back as (B, K, 1, 1), so ``BowGAPVQA(nn.Identity(), K, V, A)`` trains the answer layer
    alone (its GAP over a 1 x 1 map is the feature itself); copy its ``fc`` into the model with the
    real backbone to get CAMs.
    """

    def __init__(self, features: Tensor, image_index, bow_ids: Sequence[Sequence[int]], labels, vocab_size: int):
        self.features = torch.as_tensor(features, dtype=torch.float32)
        self.image_index = np.asarray(image_index, dtype=np.int64)
        self.bow_ids = [np.asarray(b, dtype=np.int64) for b in bow_ids]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.vocab_size = int(vocab_size)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx) -> tuple[Tensor, Tensor, Tensor]:
        idx = np.asarray(idx, dtype=np.int64)
        q = torch.zeros(len(idx), self.vocab_size)
        for r, i in enumerate(idx):
            q[r].index_add_(0, torch.from_numpy(self.bow_ids[i]), torch.ones(len(self.bow_ids[i])))
        x = self.features[torch.from_numpy(self.image_index[idx])][:, :, None, None]
        return x, q, torch.from_numpy(self.labels[idx])


def records_feature_set(
    recs: VQARecords, image_ids: Sequence[int], features: Tensor, vocab: Vocabulary, answers: Vocabulary
) -> FeatureVQASet:
    """The questions of ``recs`` over pooled ``features`` (row ``j`` = image ``image_ids[j]``); the
    target is the most common human answer (``multiple_choice_answer``), -1 outside ``answers``."""
    row = {int(i): j for j, i in enumerate(image_ids)}
    return FeatureVQASet(
        features,
        [row[i] for i in recs.image_ids],
        [vocab.encode(q) for q in recs.questions],
        answers.lookup(recs.majority),
        len(vocab),
    )


def answer_strings(logits: Tensor, answers: Vocabulary) -> list[str]:
    """The top-scoring answer of each row, as text."""
    return [answers.tokens[i] for i in logits.argmax(1).tolist()]
