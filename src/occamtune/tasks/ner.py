"""Named-entity recognition: a token head, constrained Viterbi decoding, seqeval metrics.

Only the first sub-word of each word carries a label; predictions are made per word. Decoding
keeps to valid IOB2 sequences (an `I-X` only after `B-X` or `I-X`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from occamtune.errors import DataError
from occamtune.tasks.base import Predictions, Task, register_task
from occamtune.tasks.tables import md_table


class TokenHead(nn.Module):
    """Dropout and a linear layer on each sub-word's vector, optionally joined to a word-shape
    embedding (an uncased encoder cannot see capitalisation; the shape tells it)."""

    def __init__(self, config: Any, hidden_size: int) -> None:
        super().__init__()
        from occamtune.data.shapes import SHAPES

        self.shape = nn.Embedding(len(SHAPES), config.shape_dim) if config.shape_features else None
        extra = config.shape_dim if config.shape_features else 0
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(hidden_size + extra, len(config.labels))

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.shape is not None:  # (B, T, H) + (B, T, S) -> (B, T, H+S)
            hidden = torch.cat([hidden, self.shape(batch["shape_ids"])], dim=-1)
        return self.out(self.dropout(hidden))  # (B, T, L)


def allowed_transitions(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """IOB2 constraints: (start[L], trans[L, L]) with 0 where allowed and -inf where not."""
    n = len(labels)
    start = np.zeros(n)
    trans = np.zeros((n, n))
    for j, to in enumerate(labels):
        if not to.startswith("I-"):
            continue
        start[j] = -np.inf
        for i, frm in enumerate(labels):
            if frm[2:] != to[2:] or frm[:2] not in ("B-", "I-"):
                trans[i, j] = -np.inf
    return start, trans


def viterbi(log_probs: np.ndarray, start: np.ndarray, trans: np.ndarray) -> list[int]:
    """Best label path under the constraints. log_probs: (N, L) per-word log-probabilities."""
    n = log_probs.shape[0]
    if n == 0:
        return []
    score = start + log_probs[0]  # (L,)
    back = np.zeros((n, log_probs.shape[1]), dtype=np.int64)
    for t in range(1, n):
        cand = score[:, None] + trans  # (L_from, L_to)
        back[t] = cand.argmax(axis=0)
        score = cand.max(axis=0) + log_probs[t]
    path = [int(score.argmax())]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


@register_task
class NerTask(Task):
    """Token classification with IOB2 labels, scored by entity-level F1 (seqeval, strict).

    Reads CoNLL files (one word a line, the label in `data.label_column`, a blank line between
    sentences) and `datasets` tables (`tokens`, `ner_tags`: Parquet, JSON lines, save_to_disk); long sentences become overlapping windows, and each word is predicted by the
    window that owns it, so no word is dropped.
    """

    name = "ner"
    metric = "f1"
    headline = ("f1", "precision", "recall")
    needs_fast_tokenizer = True
    model_inputs = ("input_ids", "attention_mask", "shape_ids")
    description = "named-entity recognition (CoNLL files, IOB tags), scored by entity F1"

    def read(self, path: str | Path, data: Any = None, has_labels: bool = True) -> Any:
        """A CoNLL file, or a table (Parquet, JSON lines, a `datasets` folder) by its suffix."""
        from occamtune.config import DataConfig
        from occamtune.data.conll import read_conll
        from occamtune.data.tables import is_table
        from occamtune.data.token_table import read_token_table

        data = data or DataConfig()
        if is_table(path):
            dataset = read_token_table(path, has_labels, data.encoding, data.input_field,
                                       data.label_field, data.labels)
        else:
            dataset = read_conll(path, data.label_column, has_labels, data.encoding)
        if dataset.note:
            import sys

            print(f"occamtune: note: {path} {dataset.note}", file=sys.stderr)
        return dataset

    def label_set(self, dataset: Any) -> list[str]:
        """`O` first, then B-/I- by entity type."""
        tags = {t for s in dataset.items for t in (s.labels or [])}
        types = sorted({t[2:] for t in tags if t != "O"})
        return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]

    def example_labels(self, example: Any) -> list[str]:
        return list(example.labels or [])

    def label_line_offset(self, index: int) -> int:
        return index  # one word a line

    def label_error(self, dataset: Any, example: Any, index: int, message: str) -> DataError:
        if dataset.unit is None:  # CoNLL: one word a line
            return super().label_error(dataset, example, index, message)
        return DataError(dataset.path, f"{dataset.unit} {example.line}, token {index + 1}: "
                                       f"{message}")

    def encode(self, dataset: Any, tokenizer: Any, labels: list[str], data: Any,
               head: Any = None) -> list[Any]:
        from occamtune.data.encode import encode_words

        index = {lab: i for i, lab in enumerate(labels)}
        sents = dataset.items
        label_ids = None
        if all(s.labels is not None for s in sents):
            label_ids = [[index[t] for t in s.labels] for s in sents]
        return encode_words([s.words for s in sents], tokenizer, data.max_length,
                            label_ids=label_ids, stride=data.stride, docs=[s.doc for s in sents],
                            context=data.context)

    def take(self, dataset: Any, features: list[Any], n: int) -> tuple[Any, list[Any]]:
        return dataset.with_items(dataset.items[:n]), [f for f in features if f.sentence < n]

    def head_options(self, model: Any, tokenizer: Any, run: Any = None) -> dict[str, Any]:
        from occamtune.data.tokenize import is_uncased

        shape = model.shape_features
        if shape is None:  # an uncased encoder cannot see capitalisation; the shape tells it
            shape = is_uncased(tokenizer)
        return {**super().head_options(model, tokenizer), "shape_features": bool(shape)}

    def build_head(self, config: Any, hidden_size: int) -> nn.Module:
        return TokenHead(config, hidden_size)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    def gather(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per window: (n_first_subwords, L) log-probabilities, in word order."""
        logp = torch.log_softmax(logits.float(), dim=-1)
        return [logp[b][batch["first"][b]].cpu().numpy() for b in range(logp.shape[0])]

    def word_log_probs(self, windows: list[Any], gathered: list[np.ndarray], n_words: list[int],
                       n_labels: int) -> list[np.ndarray]:
        """Assemble each sentence's (N_words, L) log-probs from the windows that own its words."""
        out = [np.zeros((n, n_labels), dtype=np.float32) for n in n_words]
        for win, lp in zip(windows, gathered):
            first_words = [w for w, f in zip(win.word_index, win.first) if f]
            for row, word in enumerate(first_words):
                if win.owned[0] <= word < win.owned[1]:
                    out[win.sentence][word] = lp[row]
        return out

    def decode(self, gathered: list[np.ndarray], dataset: Any, features: list[Any],
               labels: list[str]) -> Predictions:
        n_words = [len(s.words) for s in dataset.items]
        word_lp = self.word_log_probs(features, gathered, n_words, len(labels))
        start, trans = allowed_transitions(labels)
        paths = [viterbi(lp, start, trans) for lp in word_lp]
        return Predictions([[labels[i] for i in p] for p in paths], word_lp)

    def gold(self, dataset: Any) -> list[Any]:
        return [s.labels for s in dataset.items]

    def score(self, gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
        return ner_metrics(gold, pred)

    def render(self, metrics: dict[str, Any], source: str) -> str:
        return ner_markdown(metrics, source)

    def dataset_from_inputs(self, inputs: list[Any]) -> Any:
        from occamtune.data.conll import Sentence, TokenDataset
        from occamtune.data.tokenize import split_words

        # Each text is its own document: independent texts never serve as each other's context.
        return TokenDataset([Sentence([w for w, _, _ in split_words(t)], None, i + 1, doc=i)
                             for i, t in enumerate(inputs)], "<input>", "IOB2")

    def format_predictions(self, inputs: list[Any], dataset: Any, preds: Predictions,
                           labels: list[str]) -> list[dict[str, Any]]:
        from occamtune.data.tokenize import split_words

        out = []
        for text, tags, lp in zip(inputs, preds.labels, preds.log_probs):
            words = split_words(text)
            ents = entities(words, tags, lp, labels)
            for e in ents:
                e["text"] = text[e["start"]:e["end"]]
            out.append({"text": text, "entities": ents,
                        "words": [{"word": w, "start": s, "end": e, "tag": t}
                                  for (w, s, e), t in zip(words, tags)]})
        return out

    def annotate_file(self, path: str | Path, run: Callable[[Any], Predictions]) -> str:
        """Read a CoNLL file (labelled when it has more than one column) and return it with a
        predicted label column added."""
        from occamtune.data.conll import read_conll

        p = Path(path)
        if not p.is_file():
            raise DataError(p, "file does not exist")
        first = next((ln for ln in p.read_text(encoding="utf-8", errors="replace").splitlines()
                      if ln.strip() and not ln.startswith("-DOCSTART-")), "")
        dataset = read_conll(p, has_labels=len(first.split()) > 1)
        lines = []
        for sent, tags in zip(dataset.items, run(dataset).labels):
            gold = sent.labels or [None] * len(sent.words)
            for word, g, t in zip(sent.words, gold, tags):
                lines.append(" ".join(x for x in (word, g, t) if x is not None))
            lines.append("")
        return "\n".join(lines) + "\n"

    def probe_vectors(self, batches: Iterable[tuple[list[int], torch.Tensor, dict]],
                      features: list[Any], dataset: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each word's first-sub-word vector, taken from the window that owns the word."""
        n_words = [len(s.words) for s in dataset.items]
        xs: list[np.ndarray] = []
        ys = [np.zeros(n, dtype=np.int64) for n in n_words]
        for idx, hidden, _ in batches:
            if not xs:
                xs = [np.zeros((n, hidden.shape[-1]), dtype=np.float32) for n in n_words]
            for row, i in enumerate(idx):
                win = features[i]
                pos = [t for t, (w, f) in enumerate(zip(win.word_index, win.first))
                       if f and win.owned[0] <= w < win.owned[1]]
                words = [win.word_index[t] for t in pos]
                xs[win.sentence][words] = hidden[row, pos].numpy()
                ys[win.sentence][words] = [win.label_ids[t] for t in pos]
        return xs, ys


def entities(words: list[tuple[str, int, int]], tags: list[str], log_probs: np.ndarray,
             labels: list[str]) -> list[dict[str, Any]]:
    """Entity spans from IOB2 tags: type, character offsets, word range and a score (the mean
    probability of the entity's word tags)."""
    from seqeval.metrics.sequence_labeling import get_entities

    index = {lab: i for i, lab in enumerate(labels)}
    out = []
    for etype, first, last in get_entities(tags):
        start, end = words[first][1], words[last][2]
        probs = [float(np.exp(log_probs[t, index[tags[t]]])) for t in range(first, last + 1)]
        out.append({"type": etype, "start": start, "end": end, "words": [first, last + 1],
                    "score": round(float(np.mean(probs)), 4)})
    return out


def ner_metrics(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    """Entity-level P/R/F1 per type, micro and macro (seqeval strict IOB2, the CoNLL standard),
    plus the token-level table (flattering: `O` dominates), labelled as such."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True,
                                   zero_division=0)
    entity = {k: {m: float(v) for m, v in d.items()} for k, d in report.items()}
    micro = entity["micro avg"]
    return {
        "f1": 100 * micro["f1-score"],
        "precision": 100 * micro["precision"],
        "recall": 100 * micro["recall"],
        "macro_f1": 100 * entity["macro avg"]["f1-score"],
        "entity": entity,
        "token_level": token_table(gold, pred),
    }


def token_table(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    """Per-tag token precision/recall/F1 and accuracy: written by hand because seqeval only scores
    entities and scikit-learn would be a dependency for ten lines of counting."""
    tp: Counter = Counter()
    n_gold: Counter = Counter()
    n_pred: Counter = Counter()
    for g_seq, p_seq in zip(gold, pred):
        for g, p in zip(g_seq, p_seq):
            n_gold[g] += 1
            n_pred[p] += 1
            tp[g] += g == p
    table = {}
    for tag in sorted(set(n_gold) | set(n_pred)):
        prec = tp[tag] / n_pred[tag] if n_pred[tag] else 0.0
        rec = tp[tag] / n_gold[tag] if n_gold[tag] else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        table[tag] = {"precision": prec, "recall": rec, "f1": f1, "support": n_gold[tag]}
    total = sum(n_gold.values())
    return {"accuracy": sum(tp.values()) / total if total else 0.0, "tags": table}


def ner_markdown(m: dict[str, Any], source: str) -> str:
    rows = [[name, 100 * d["precision"], 100 * d["recall"], 100 * d["f1-score"], int(d["support"])]
            for name, d in m["entity"].items()]
    tok = m["token_level"]
    tok_rows = [[tag, 100 * d["precision"], 100 * d["recall"], 100 * d["f1"], d["support"]]
                for tag, d in tok["tags"].items()]
    return "\n\n".join([
        f"# Evaluation on {source}",
        (f"Entity-level micro F1 **{m['f1']:.2f}** (seqeval, strict IOB2 spans: the CoNLL standard); "
         f"macro F1 {m['macro_f1']:.2f}. Data code length {m['data_bits']:.0f} bits over {m['n']} sentences."),
        "## Entities (strict spans)",
        md_table(["type", "precision", "recall", "F1", "support"], rows),
        f"## Token level (flatters the model: `O` dominates); accuracy {100 * tok['accuracy']:.2f}",
        md_table(["tag", "precision", "recall", "F1", "support"], tok_rows),
    ]) + "\n"
