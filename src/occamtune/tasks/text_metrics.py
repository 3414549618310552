"""Scores of generated text, from the field's own libraries: ROUGE with Google's `rouge-score`
(Porter stemming, the best score over an example's references), BLEU and chrF with `sacrebleu`
(detokenized text, its default 13a tokenizer; several references per example allowed)."""

from __future__ import annotations

from typing import Any

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def text_scores(references: list[list[str]], predictions: list[str]) -> dict[str, Any]:
    """ROUGE-1/2/L F-measure, BLEU and chrF, each in points (0-100), over the examples; the mean
    words of a generated text, and the percentage of the examples' generated texts that differ.

    Args:
        references: per example its reference texts (at least one).
        predictions: per example the generated text.
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references for {len(predictions)} predictions")
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for refs, pred in zip(references, predictions):
        # score_multi keeps the reference with the best F-measure, per ROUGE type
        scores = scorer.score_multi(refs, pred)
        for kind in ROUGE_TYPES:
            totals[kind] += scores[kind].fmeasure
    n = max(len(predictions), 1)
    out: dict[str, Any] = {kind: 100 * totals[kind] / n for kind in ROUGE_TYPES}
    width = max((len(r) for r in references), default=1)
    # sacrebleu takes one stream per reference position; None where an example has fewer
    streams = [[r[k] if k < len(r) else None for r in references] for k in range(width)]
    out["bleu"] = float(sacrebleu.corpus_bleu(predictions, streams).score)
    out["chrf"] = float(sacrebleu.corpus_chrf(predictions, streams).score)
    out["mean_words"] = sum(len(p.split()) for p in predictions) / n
    out["distinct"] = distinct_share(predictions)
    out["repeated"] = repeated_share(predictions)
    return out


def repeated_share(predictions: list[str], n: int = 3) -> float:
    """The percentage of the generated texts' word n-grams that repeat an earlier n-gram of the
    same text (Welleck et al. 2020's "seq-rep-n", pooled over the texts): a text that says
    the same thing twice. Counted here: neither rouge-score nor sacrebleu reports it."""
    total = repeats = 0
    for text in predictions:
        words = text.lower().split()
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        repeats += len(grams) - len(set(grams))
    return 100 * repeats / max(total, 1)


def distinct_share(predictions: list[str]) -> float:
    """The percentage of the generated texts that differ from one another: a generator that has
    not learnt to read its source writes one text for all (its scores are then those of a
    fixed sentence)."""
    return 100 * len({p.strip() for p in predictions}) / max(len(predictions), 1)
