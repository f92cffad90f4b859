"""Training and feature extraction of the VQA study: the answer layer on pooled image features.

The paper's VQA baseline trains one linear layer on ``concat(GAP image features, bag of words)``
(:class:`camlib.paper.vqa.BowGAPVQA`). With a frozen backbone the GAP features are computed once
(:func:`pool_features` for in-memory images, :func:`extract_pooled_features` for image files, cached
on disk in a :class:`camlib.core.features.FeatureCache` keyed on the backbone's WEIGHTS), and
:class:`FeatureVQASet` serves ``(features as (B, K, 1, 1), question bag of words, answer)`` batches
to :func:`fit_vqa` (cross-entropy, unknown answers ignored) and :func:`predict_vqa`.
:func:`fit_multilabel` pretrains a backbone on multi-hot scene contents (the quick profile's stand-in
for ImageNet pretraining).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, default_collate
from tqdm.auto import tqdm

from camlib.core.cam import eval_mode
from camlib.core.digest import array_digest, model_fingerprint
from camlib.core.features import FEATURES_VERSION, FeatureCache
from camlib.datasets.files import ImageFiles
from camlib.datasets.vqa import Vocabulary, VQADataError, VQARecords
from camlib.models.train import TrainConfig, TrainState, fit

if TYPE_CHECKING:
    from camlib.paper.vqa import BowGAPVQA

__all__ = [
    "FeatureVQASet",
    "answer_strings",
    "extract_pooled_features",
    "fit_multilabel",
    "fit_vqa",
    "pool_features",
    "predict_vqa",
    "records_feature_set",
    "vqa_batch",
]


# ============================================================================ data over pooled features


class FeatureVQASet:
    """Questions over precomputed pooled image features, in the ``batch`` form :func:`fit_vqa` takes.

    ``features`` (M, K) per image, ``image_index`` (N,) row of each question's image, ``bow_ids``
    word indices of each question, ``labels`` (N,) answer indices (-1 = not in the answer vocabulary).
    Images come back as (B, K, 1, 1), so ``BowGAPVQA(nn.Identity(), K, V, A)`` trains the answer layer
    alone (its GAP over a 1 x 1 map is the feature itself); copy its ``fc`` into the model with the
    real backbone to get CAMs.
    """

    def __init__(
        self, features: Tensor, image_index, bow_ids: Sequence[Sequence[int]], labels, vocab_size: int
    ):
        self.features = torch.as_tensor(features, dtype=torch.float32)
        self.image_index = np.asarray(image_index, dtype=np.int64)
        self.bow_ids = [np.asarray(b, dtype=np.int64) for b in bow_ids]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.vocab_size = int(vocab_size)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx) -> tuple[Tensor, Tensor, Tensor]:
        idx = np.asarray(idx, dtype=np.int64)
        ids = [self.bow_ids[i] for i in idx]
        rows = np.repeat(np.arange(len(idx)), [len(b) for b in ids])
        words = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        counts = np.zeros((len(idx), self.vocab_size), dtype=np.float32)
        np.add.at(counts, (rows, words), 1.0)  # a word twice in a question counts twice
        q = torch.from_numpy(counts)
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


def vqa_batch(dataset, idx) -> tuple[Tensor, Tensor, Tensor]:
    """``(x, q (float), y (long))`` of the items ``idx`` of a VQA dataset: its ``batch(indices)`` when it
    has one (e.g. :class:`FeatureVQASet`), else its ``(x, q, y)`` items collated."""
    if hasattr(dataset, "batch"):
        x, q, y = dataset.batch(idx.numpy() if isinstance(idx, Tensor) else idx)
    else:
        x, q, y = default_collate([dataset[int(i)] for i in idx])
    return x, q.float(), torch.as_tensor(y, dtype=torch.long)


# ============================================================================ training / prediction


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

    return fit(
        model,
        dataset,
        config,
        device=device,
        augment=None,
        head_prefixes=head_prefixes,
        progress=progress,
        optimizer=optimizer,
        batch_fn=lambda idx: vqa_batch(dataset, idx),
        step_fn=step,
        desc="train vqa",
        checkpoint=checkpoint,
    )


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

    return fit(
        model,
        tgt,
        config,
        device=device,
        augment=None,
        progress=progress,
        optimizer=optimizer,
        batch_fn=get_batch,
        step_fn=step,
        desc="pretrain",
        checkpoint=checkpoint,
    )


@torch.no_grad()
def pool_features(
    backbone: nn.Module, images, batch_size: int = 256, device: str | torch.device = "cpu"
) -> Tensor:
    """(N, K) global-average-pooled ``backbone`` features of in-memory images, in eval mode.

    ``images``: (N, H, W, 3) uint8 (scaled to [0, 1]) or (N, 3, H, W) float.
    """
    imgs = torch.as_tensor(images)
    backbone.to(device)
    with eval_mode(backbone):
        out = []
        for s in range(0, len(imgs), batch_size):
            x = imgs[s : s + batch_size]
            x = x.permute(0, 3, 1, 2).float() / 255.0 if x.dtype == torch.uint8 else x.float()
            out.append(backbone(x.to(device)).float().mean((2, 3)).cpu())
        return torch.cat(out)


@torch.no_grad()
def predict_vqa(
    model: nn.Module, dataset, batch_size: int = 256, device: str | torch.device = "cpu"
) -> Tensor:
    """(N, A) answer logits of a whole dataset, in order, in eval mode (flags restored)."""
    with eval_mode(model):
        out = []
        for s in range(0, len(dataset), batch_size):
            x, q, _ = vqa_batch(dataset, torch.arange(s, min(len(dataset), s + batch_size)))
            out.append(model(x.to(device), q.to(device)).float().cpu())
        return torch.cat(out)


# ============================================================================ features of image files


def _cache_of(cache: FeatureCache | str | Path | None) -> FeatureCache | None:
    if cache is None or isinstance(cache, FeatureCache):
        return cache
    path = Path(cache)
    return FeatureCache(path.parent if path.suffix == ".pt" else path)


@torch.no_grad()
def extract_pooled_features(
    backbone: nn.Module,
    paths: Sequence[str | Path],
    preprocess: Callable,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    cache: FeatureCache | str | Path | None = None,
    cache_key: str = "",
    preprocessing: str | None = None,
    progress: bool = True,
) -> Tensor:
    """(N, K) float32 global-average-pooled ``backbone`` features of image files (in order), in eval mode.

    The files are read by :class:`camlib.datasets.files.ImageFiles` (an unreadable one raises, naming it)
    through ``preprocess`` (PIL RGB image -> (3, H, W)); ``F_k = mean_{x,y} f_k(x, y)`` of the
    backbone's (B, K, h, w) output.

    ``cache``: a :class:`camlib.core.features.FeatureCache` or its folder (a path ending in ``.pt``, the
    former one-file form, stands for its parent folder). The entry's key holds
    :func:`camlib.core.digest.model_fingerprint` of the backbone (a hash of its WEIGHTS: other weights
    never hit this entry, whatever the name), ``cache_key`` (a description such as the backbone's name),
    ``preprocessing`` (default ``repr(preprocess)``) and a digest of the list of files.
    """
    names = [str(p) for p in paths]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise VQADataError(f"{len(missing)} image files are missing, e.g. {missing[0]}")
    parts = {
        "version": FEATURES_VERSION,
        "model": cache_key,
        "weights_sha256": model_fingerprint(backbone),
        "layer": "backbone output",
        "pool": "avg",
        "relu": False,
        "preprocessing": preprocessing if preprocessing is not None else repr(preprocess),
        "dataset": f"{len(names)} image files, paths {array_digest(np.asarray(names, dtype=str))}",
    }

    def compute() -> dict[str, np.ndarray]:
        loader = DataLoader(
            ImageFiles(names, None, preprocess), batch_size=batch_size, num_workers=num_workers
        )
        backbone.to(device)
        with eval_mode(backbone):
            out = [
                backbone(x.to(device)).float().mean((2, 3)).cpu()
                for x, _ in tqdm(loader, desc="features", disable=not progress)
            ]
        return {"X": torch.cat(out).numpy()}

    store = _cache_of(cache)
    arrays = compute() if store is None else store.get_or_compute(parts, compute)[0]
    return torch.from_numpy(np.asarray(arrays["X"], dtype=np.float32))
