"""Markdown renderings of evaluation metrics."""

from __future__ import annotations

from typing import Any


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub Markdown table; floats shown with two decimals."""
    def cell(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def metrics_markdown(task: str, metrics: dict[str, Any], source: str) -> str:
    """The evaluation report of one model on one file."""
    if task == "ner":
        return _ner_markdown(metrics, source)
    return _classify_markdown(metrics, source)


def _ner_markdown(m: dict[str, Any], source: str) -> str:
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


def _classify_markdown(m: dict[str, Any], source: str) -> str:
    rows = [[c, 100 * d["precision"], 100 * d["recall"], 100 * d["f1"], d["support"]]
            for c, d in m["per_class"].items()]
    conf = m["confusion"]
    conf_rows = [[f"**{g}**", *row] for g, row in zip(conf["labels"], conf["matrix"])]
    return "\n\n".join([
        f"# Evaluation on {source}",
        (f"Accuracy **{m['accuracy']:.2f}**; macro F1 {m['macro_f1']:.2f}. "
        f"Data code length {m['data_bits']:.0f} bits over {m['n']} examples."),
        md_table(["class", "precision", "recall", "F1", "support"], rows),
        "## Confusion matrix (rows: gold, columns: predicted)",
        md_table(["gold \\ pred", *conf["labels"]], conf_rows),
    ]) + "\n"
