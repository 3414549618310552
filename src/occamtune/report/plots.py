"""Plots of a shrink search, drawn with matplotlib's Agg backend and returned as PNG bytes.

Inputs are the records the search writes: candidates (one dict per trial, see
`occamtune.search.records`) and the summary of `shrink.json`.
"""

from __future__ import annotations

import io
from typing import Any

BASE_COLOR, CHOSEN_COLOR, PEER_COLOR, FRONT_COLOR = "#444444", "#d62728", "#2ca02c", "#1f77b4"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (smaller x, larger y), sorted by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def frontier_plot(candidates: list[dict], summary: dict[str, Any]) -> bytes:
    """Size on disk (log x) against the dev metric: every candidate, the size/metric frontier,
    the chosen model (dev, and test once confirmed), the uncompressed model and the peer."""
    plt = _pyplot()
    metric = summary.get("metric", "f1")
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    pts = [(c["bytes"], c["dev_metric"]) for c in candidates]
    if pts:
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, color="#9a9a9a",
                   label="candidates (dev)", zorder=2)
        front = [pts[i] for i in pareto_front(pts)]
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color=FRONT_COLOR,
                label="frontier (dev)", zorder=3)
    _reference_points(ax, summary, metric)
    base_dev = summary.get("base_dev_metric")
    if base_dev is not None and summary.get("max_drop") is not None:
        ax.axhline(base_dev - summary["max_drop"], color=BASE_COLOR, ls=":", lw=1,
                   label=f"base dev - {summary['max_drop']:g} (max drop)")
    ax.set_xscale("log")
    ax.set_xlabel("size on disk (bytes, log scale)")
    ax.set_ylabel(f"{metric}")
    ax.set_title(f"Size against {metric}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: no marker hidden
    return _png(fig)


def latency_plot(candidates: list[dict], summary: dict[str, Any]) -> bytes:
    """Size on disk (log x) against latency (log y), coloured by the dev metric: the three
    objectives of the search in one picture. Candidates within the allowed drop are filled,
    the others hollow; the frontier over (bytes, metric, latency) is ringed; the chosen model,
    the uncompressed one and a latency limit are marked."""
    from occamtune.search.records import on_onnx, pareto_records

    plt = _pyplot()
    metric = summary.get("metric", "f1")
    runtime = "ONNX Runtime" if on_onnx(summary) else "torch"
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    rows = [c for c in candidates if c.get("latency_ms") is not None]
    drop = summary.get("max_drop")
    if rows:
        values = [c["dev_metric"] for c in rows]
        lo, hi = min(values), max(values)
        kept = [c for c in rows if drop is None or c["dev_drop"] <= drop + 1e-9]
        missed = [c for c in rows if c not in kept]
        dots = ax.scatter([c["bytes"] for c in kept], [c["latency_ms"] for c in kept],
                          c=[c["dev_metric"] for c in kept], cmap="viridis", vmin=lo, vmax=hi,
                          s=26, label=f"within max drop {drop:g} (dev)" if drop is not None
                          else "candidates (dev)", zorder=3)
        if missed:
            ax.scatter([c["bytes"] for c in missed], [c["latency_ms"] for c in missed],
                       facecolors="none", edgecolors="#9a9a9a", s=26,
                       label="beyond max drop", zorder=2)
        front = pareto_records(rows)
        ax.scatter([c["bytes"] for c in front], [c["latency_ms"] for c in front],
                   facecolors="none", edgecolors=FRONT_COLOR, s=90, linewidths=1.2,
                   label="frontier (bytes, metric, latency)", zorder=4)
        fig.colorbar(dots, ax=ax, label=f"dev {metric}")
    if summary.get("base_bytes") and summary.get("base_latency_ms"):
        ax.scatter([summary["base_bytes"]], [summary["base_latency_ms"]], marker="s", s=60,
                   color=BASE_COLOR, label="uncompressed fp32 (torch)", zorder=5)
    if summary.get("chosen_bytes") and summary.get("chosen_latency_ms"):
        ax.scatter([summary["chosen_bytes"]], [summary["chosen_latency_ms"]], marker="*", s=220,
                   color=CHOSEN_COLOR, label=f"chosen ({summary.get('objective', 'size')})",
                   zorder=6)
    if summary.get("max_latency_ms"):
        ax.axhline(summary["max_latency_ms"], color=BASE_COLOR, ls=":", lw=1,
                   label=f"max latency {summary['max_latency_ms']:g} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter

    for axis_format in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis_format(FormatStrFormatter("%g"))  # 0.6, 1, 2, not 6 x 10^-1
    ax.set_xlabel("size on disk (bytes, log scale)")
    ax.set_ylabel(f"ms per sentence, {runtime} (log scale)")
    ax.set_title(f"Size against latency, coloured by dev {metric}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.25, 1.0))
    return _png(fig)


def _reference_points(ax: Any, summary: dict[str, Any], metric: str) -> None:
    base_bytes = summary.get("base_bytes")
    if base_bytes and summary.get("base_dev_metric") is not None:
        ax.scatter([base_bytes], [summary["base_dev_metric"]], marker="s", s=60, color=BASE_COLOR,
                   label="uncompressed fp32 (dev)", zorder=4)
    if base_bytes and summary.get("base_test_metric") is not None:
        ax.scatter([base_bytes], [summary["base_test_metric"]], marker="s", s=60,
                   facecolors="none", edgecolors=BASE_COLOR, label="uncompressed fp32 (test)",
                   zorder=4)
    chosen = summary.get("chosen_bytes")
    if chosen and summary.get("chosen_dev_metric") is not None:
        ax.scatter([chosen], [summary["chosen_dev_metric"]], marker="*", s=220, color=CHOSEN_COLOR,
                   label="chosen (dev)", zorder=5)
    if chosen and summary.get("chosen_test_metric") is not None:
        ax.scatter([chosen], [summary["chosen_test_metric"]], marker="*", s=220, facecolors="none",
                   edgecolors=CHOSEN_COLOR, label="chosen (test)", zorder=5)
    peer = summary.get("peer") or {}
    peer_metric = peer.get("test_metric", peer.get("dev_metric"))
    if peer.get("bytes") and peer_metric is not None:
        split = "test" if "test_metric" in peer else "dev"
        ax.scatter([peer["bytes"]], [peer_metric], marker="D", s=60, color=PEER_COLOR,
                   label=f"{peer.get('name', 'peer')} ({split})", zorder=4)


def description_length_plot(candidates: list[dict], summary: dict[str, Any],
                            limit: int = 25) -> bytes:
    """Stacked bars of the two-part code (model bits + dev data bits) for the uncompressed model
    and the `limit` candidates with the shortest total, shortest first."""
    plt = _pyplot()
    rows = sorted(candidates, key=lambda c: c["total_bits"])[:limit]
    names = [f"#{c['trial']}" for c in rows]
    model = [c["model_bits"] for c in rows]
    data = [c["data_bits"] for c in rows]
    if summary.get("base_bytes") and summary.get("base_data_bits") is not None:
        names.insert(0, "fp32")
        model.insert(0, 8 * summary["base_bytes"])
        data.insert(0, summary["base_data_bits"])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(names) + 2), 4.2))
    xs = range(len(names))
    ax.bar(xs, [m / 8e6 for m in model], color="#8c8c8c", label="model (artifact bytes x 8)")
    ax.bar(xs, [d / 8e6 for d in data], bottom=[m / 8e6 for m in model], color=FRONT_COLOR,
           label="data (-log2 p(gold) on dev)")
    chosen = summary.get("chosen_trial")
    ticks = [f"{n}*" if n == f"#{chosen}" else n for n in names]
    ax.set_xticks(list(xs), ticks, rotation=60, fontsize=7)
    ax.set_ylabel("description length (MB = 8e6 bits)")
    ax.set_title("Two-part code: model bits + data bits (* = chosen)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _png(fig)
