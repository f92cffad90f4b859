"""VQA data: the VQA v1/v2 folder reader, the question/answer vocabulary and the official answer normalisation.

- :func:`find_vqa_split` / :func:`load_vqa_split`: one split (``train2014``, ``val2014``) of a VQA v1 or
  v2 "Real Images, Open-Ended" folder as :class:`VQARecords` (questions, their 10 human answers, the
  image files); a missing or mis-laid folder raises :class:`VQADataError` saying where to get VQA
  (:data:`VQA_DOWNLOAD`) and how to lay it out.
- :func:`tokenize` and :class:`Vocabulary`: question words (index 0 = :data:`UNK`) or answers (unseen
  -> -1), bag-of-words vectors.
- The official answer normalisation (github.com/GT-Vision-Lab/VQA, ``vqaEval.py``):
  :func:`process_punctuation`, :func:`process_digit_article`, :func:`normalize_answer` (what the
  VQA accuracy, :func:`camlib.paper.vqa_eval.vqa_accuracy`, compares).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "UNK",
    "VQA_DOWNLOAD",
    "VQADataError",
    "VQARecords",
    "Vocabulary",
    "find_vqa_split",
    "load_vqa_split",
    "normalize_answer",
    "process_digit_article",
    "process_punctuation",
    "tokenize",
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


# ============================================================================ answer normalisation
# The official evaluation (github.com/GT-Vision-Lab/VQA, PythonEvaluationTools/vqaEvaluation/vqaEval.py):
#   predicted answer: punctuation, then digits/articles/contractions (processDigitArticle);
#   human answers: punctuation only, and only when the 10 answers are not all identical.

_PUNCT = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: the official pattern (drops '.' not before a digit)
_NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = ("a", "an", "the")
# The common entries of the official contraction table (apostrophe-less form -> with apostrophe).
_CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldnt": "couldn't",
    "couldve": "could've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hes": "he's",
    "im": "i'm",
    "isnt": "isn't",
    "itll": "it'll",
    "ive": "i've",
    "lets": "let's",
    "shouldnt": "shouldn't",
    "thats": "that's",
    "theres": "there's",
    "theyre": "they're",
    "wasnt": "wasn't",
    "werent": "weren't",
    "whats": "what's",
    "wheres": "where's",
    "whos": "who's",
    "wont": "won't",
    "wouldnt": "wouldn't",
    "youre": "you're",
    "youve": "you've",
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


# ============================================================================ VQA v1/v2 folders


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
        raise VQADataError(
            f"no VQA questions+annotations for {split!r} in {root}.\n" + _layout_help(root, split)
        )
    for d in (
        root / split,
        root / "Images" / split,
        root / "Images" / "mscoco" / split,
        root / "images" / split,
    ):
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
    anns = {
        a["question_id"]: a
        for a in json.loads(Path(paths["annotations"]).read_text(encoding="utf-8"))["annotations"]
    }
    if max_questions is not None:
        qs = qs[: int(max_questions)]
    missing = [q["question_id"] for q in qs if q["question_id"] not in anns]
    if missing:
        raise VQADataError(
            f"{len(missing)} questions of {paths['questions']} have no annotation (e.g. {missing[0]})"
        )
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
