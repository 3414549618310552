"""Prediction on raw text: words with character offsets in, entity spans (or a label) out."""

from __future__ import annotations

from typing import Any

import numpy as np

from occamtune import inference


def entities(words: list[tuple[str, int, int]], tags: list[str], log_probs: np.ndarray,
             labels: list[str]) -> list[dict[str, Any]]:
    """Entity spans from IOB2 tags: type, text, character offsets, word range and a score (the
    mean probability of the entity's word tags)."""
    from seqeval.metrics.sequence_labeling import get_entities

    index = {lab: i for i, lab in enumerate(labels)}
    out = []
    for etype, first, last in get_entities(tags):
        start, end = words[first][1], words[last][2]
        probs = [float(np.exp(log_probs[t, index[tags[t]]])) for t in range(first, last + 1)]
        out.append({"type": etype, "start": start, "end": end, "words": [first, last + 1],
                    "score": round(float(np.mean(probs)), 4)})
    return out


def predict_texts(predictor: Any, texts: list[str]) -> list[dict[str, Any]]:
    """Predictions for raw texts with a loaded `Predictor`."""
    if predictor.task == "ner":
        return _predict_ner(predictor, texts)
    return _predict_classify(predictor, texts)


def _predict_ner(predictor: Any, texts: list[str]) -> list[dict[str, Any]]:
    from occamtune.data.conll import Sentence, TokenDataset
    from occamtune.data.tokenize import split_words

    spans = [split_words(t) for t in texts]
    # Each text is its own document: independent texts never serve as each other's context.
    dataset = TokenDataset([Sentence([w for w, _, _ in s], None, i + 1, doc=i)
                            for i, s in enumerate(spans)], "<input>", "IOB2")
    preds = inference.predict(predictor.model, dataset, predictor.encode(dataset))
    out = []
    for text, words, tags, lp in zip(texts, spans, preds.labels, preds.log_probs):
        ents = entities(words, tags, lp, predictor.labels)
        for e in ents:
            e["text"] = text[e["start"]:e["end"]]
        out.append({"text": text, "entities": ents,
                    "words": [{"word": w, "start": s, "end": e, "tag": t}
                              for (w, s, e), t in zip(words, tags)]})
    return out


def _predict_classify(predictor: Any, texts: list[str]) -> list[dict[str, Any]]:
    from occamtune.data.text import TextDataset, TextExample

    dataset = TextDataset([TextExample(t, None, i + 1) for i, t in enumerate(texts)], "<input>")
    preds = inference.predict(predictor.model, dataset, predictor.encode(dataset))
    return [{"text": t, "label": lab, "score": round(float(np.exp(lp.max())), 4),
             "probs": {c: round(float(np.exp(v)), 4) for c, v in zip(predictor.labels, lp)}}
            for t, lab, lp in zip(texts, preds.labels, preds.log_probs)]
