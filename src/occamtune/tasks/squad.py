"""SQuAD v1.1 exact match and F1, with the official evaluation script's answer normalization.

Written here (the official `evaluate-v1.1.py` logic, about thirty lines) rather than taken from
the `evaluate` library: `evaluate.load("squad")` fetches the metric's script from the Hugging Face
Hub when it runs, which an offline machine cannot do, and `datasets` no longer ships metrics.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and the articles a/an/the, collapse white space."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> float:
    """F1 of the bags of normalized tokens."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(gold: list[list[str]], pred: list[str]) -> dict[str, Any]:
    """Exact match and F1 in points, each the best over a question's reference answers,
    averaged over the questions."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} questions")
    em = [max((exact_match(p, g) for g in answers), default=0.0) for p, answers in zip(pred, gold)]
    f1 = [max((token_f1(p, g) for g in answers), default=0.0) for p, answers in zip(pred, gold)]
    n = max(1, len(gold))
    return {"exact_match": 100 * sum(em) / n, "f1": 100 * sum(f1) / n}
