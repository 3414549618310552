"""occamtune's relation and qa tasks against the Hugging Face `Trainer` recipes, side by side.

    python -m benchmarks.tasks                       # both tasks -> results/tasks.json + .md
    python -m benchmarks.tasks --task qa             # one task -> results/tasks_qa.json + .md
    python -m benchmarks.tasks --task relation --max-train 2000 --max-test 500   # a slice

relation: SemEval-2010 Task 8 (../shared/data/semeval2010_task8). The reference is run_glue's
recipe on the marked sentence (`AutoModelForSequenceClassification`, [CLS], the `<e1>` markup left
to the tokenizer as text); occamtune adds the markers as tokens and reads the entity-start
vectors. Both are scored with the official score (macro F1 over the relations, Other excluded,
direction counted).
qa: XQuAD-en in SQuAD v1.1 form (../shared/data/xquad_en). The reference is run_qa's recipe
(`AutoModelForQuestionAnswering`, windows of 384 sub-words with a doc stride of 128, n-best 20,
answers of at most 30 sub-words); occamtune runs the same windows. Both are scored with SQuAD's
exact match and F1.

Same model (all-MiniLM-L6-v2), epochs, batch size, learning rate, warm-up, weight decay and seed
on both sides. The training files have no dev split: the script holds out the same seeded 10%
of the training examples (qa: of the paragraphs) for both sides; occamtune early-stops on it,
the reference trains on the remaining 90% for the fixed epochs, as its recipe does. Each side
runs in its own subprocess. --max-train / --max-test / --limit take a slice (say so when
quoting it: a slice is not the benchmark); --data and --model point at other files (the smoke
test: tiny ones).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from benchmarks.results_io import measured_side, write_results
from benchmarks.vs_hf import COMMON, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FOLDERS = {"relation": "semeval2010_task8", "qa": "xquad_en"}
SUFFIX = {"relation": ".tsv", "qa": ".json"}
LENGTH = {"relation": (128, 32), "qa": (384, 128)}  # (max_length, stride)
METRICS = {"relation": ("macro_f1", "accuracy"), "qa": ("f1", "exact_match")}
# run_qa's own example trains with batches of 12; at the common 32, XQuAD's 786 training
# questions make 24 steps an epoch, too few for either side to learn the task
BATCH = {"relation": COMMON["batch_size"], "qa": 12}


def _split_lines(lines: list[str], rng: random.Random) -> tuple[list[str], list[str]]:
    order = list(range(len(lines)))
    rng.shuffle(order)
    dev = set(order[: max(1, len(lines) // 10)])
    return ([x for i, x in enumerate(lines) if i not in dev], [x for i, x in enumerate(lines) if i in dev])


def prepare(task: str, source: Path, folder: Path, max_train: int, max_test: int) -> Path:
    """train/dev/test files of `task` in `folder`: the same 90/10 split for both sides, each
    file cut to its slice (`max_*`, 0: all)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(COMMON["seed"])
    if task == "relation":
        train = [ln for ln in (source / "train.tsv").read_text().splitlines() if ln.strip()]
        test = [ln for ln in (source / "test.tsv").read_text().splitlines() if ln.strip()]
        train, dev = _split_lines(train[: max_train or None], rng)
        for name, rows in (("train", train), ("dev", dev), ("test", test[: max_test or None])):
            (folder / f"{name}.tsv").write_text("\n".join(rows) + "\n")
        return folder
    train_doc, test_doc = (json.loads((source / f).read_text()) for f in ("train.json", "test.json"))
    paras = _cut([p for a in train_doc["data"] for p in a["paragraphs"]], max_train)
    rest, dev = _split_lines(paras, rng)
    tests = _cut([p for a in test_doc["data"] for p in a["paragraphs"]], max_test)
    for name, ps in (("train", rest), ("dev", dev), ("test", tests)):
        doc = {"version": "1.1", "data": [{"title": name, "paragraphs": ps}]}
        (folder / f"{name}.json").write_text(json.dumps(doc))
    return folder


def _cut(paragraphs: list[dict], questions: int) -> list[dict]:
    """The first paragraphs holding `questions` questions (0: all)."""
    if not questions:
        return paragraphs
    out, n = [], 0
    for p in paragraphs:
        if n >= questions:
            break
        out.append(p)
        n += len(p["qas"])
    return out


def run_occamtune(task: str, data: Path, out: Path, args: argparse.Namespace) -> dict:
    import occamtune
    from occamtune.config import load_config

    max_length, stride = LENGTH[task]
    overrides = [f"task={task}", f"data.path={data}", f"output={out}", "overwrite=true",
                 f"data.max_length={max_length}", f"data.stride={stride}",
                 f"train.epochs={args.epochs}", f"model.name={args.model or 'minilm'}",
                 *(f"train.{k}={v}" for k, v in common(task, args).items())]
    if args.limit:
        overrides.append(f"train.max_steps={args.limit}")
    start = time.perf_counter()
    run = occamtune.train(load_config(None, overrides), progress=False)
    test = run.metrics["test"]
    return {**{k: test[k] for k in METRICS[task]}, "train_sents_per_s": run.train_sents_per_s,
            "wall_s": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(), "model_dir": str(out)}


def run_hf(task: str, data: Path, out: Path, args: argparse.Namespace) -> dict:
    from benchmarks.hf_reference import hf_qa, hf_relation
    from occamtune.tasks.relation import relation_metrics
    from occamtune.tasks.squad import squad_scores

    settings = common(task, args)
    start = time.perf_counter()
    if task == "qa":
        settings.update(max_length=LENGTH["qa"][0], stride=LENGTH["qa"][1])
    fn = hf_relation if task == "relation" else hf_qa
    result = fn(data, out, epochs=args.epochs, limit=args.limit, model=args.model, **settings)
    # scored by the same functions as occamtune's side
    scores = (relation_metrics if task == "relation" else squad_scores)(result.pop("gold"),
                                                                       result.pop("pred"))
    return {**{k: scores[k] for k in METRICS[task]}, **result,
            "wall_s": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


def batch_size(task: str, args: argparse.Namespace) -> int:
    """The training batch of both sides of `task`: --batch-size, else the task's own."""
    return args.batch_size or BATCH[task]


def common(task: str, args: argparse.Namespace) -> dict:
    """The training settings both sides of `task` share (epochs aside)."""
    return {**{k: v for k, v in COMMON.items() if k != "epochs"}, "batch_size": batch_size(task, args)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", choices=["relation", "qa", "both"], default="both")
    parser.add_argument("--epochs", type=float, default=COMMON["epochs"])
    parser.add_argument("--batch-size", type=int, default=0,
                        help="training batch of both sides (default: relation 32, qa 12)")
    parser.add_argument("--limit", type=int, default=0, help="max training steps (smoke test only)")
    parser.add_argument("--max-train", type=int, default=0, help="first N training examples (qa: questions)")
    parser.add_argument("--max-test", type=int, default=0, help="first N test examples (qa: questions)")
    parser.add_argument("--workdir", default=str(ROOT / "benchmarks" / "work" / "tasks"))
    parser.add_argument("--data", default=str(DATA), help="a folder holding semeval2010_task8/ and xquad_en/")
    parser.add_argument("--model", help="model folder for both sides (default: MiniLM-L6)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse sides measured earlier with the same settings (workdir)")
    parser.add_argument("--qa-length", type=int, default=LENGTH["qa"][0],
                        help="QA window in sub-words (stride a third of it) for both sides: the "
                             "run_qa setting, 384, unless a model has fewer positions")
    parser.add_argument("--side", choices=["occamtune", "hf"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    LENGTH["qa"] = (args.qa_length, args.qa_length // 3)
    work = Path(args.workdir)
    if args.side:  # one side of one task, in its own process
        data = work / f"{args.task}-data"
        fn = run_occamtune if args.side == "occamtune" else run_hf
        print(json.dumps(fn(args.task, data, work / f"{args.task}-{args.side}", args)))
        return
    tasks = ["relation", "qa"] if args.task == "both" else [args.task]
    results = {}
    for task in tasks:
        source = Path(args.data) / FOLDERS[task]
        if not source.is_dir():
            sys.exit(f"no data at {source}: this benchmark needs ../shared/data/{FOLDERS[task]}")
        prepare(task, source, work / f"{task}-data", args.max_train, args.max_test)
        results[task] = {name: _side(task, name, args) for name in ("hf", "occamtune")}
    summary = {"tasks": results, "epochs": args.epochs, "limit_steps": args.limit,
               "max_train": args.max_train, "max_test": args.max_test,
               "settings": {t: common(t, args) for t in tasks},
               "lengths": {t: LENGTH[t] for t in tasks}, "data": args.data,
               "model": args.model or "all-MiniLM-L6-v2",
               "slice": bool(args.limit or args.max_train or args.max_test)}
    md = table(summary)
    # one task alone is its own record: it does not replace the other task's numbers
    write_results("tasks" if args.task == "both" else f"tasks_{args.task}", summary, md)
    print(md)


def _settings(task: str, args: argparse.Namespace) -> dict:
    """What a measured side depends on (a cached side is reused only for the same)."""
    return {**{k: getattr(args, k) for k in ("epochs", "limit", "max_train", "max_test", "data",
                                             "model")},
            "batch_size": batch_size(task, args)}


def _side(task: str, name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.tasks", "--task", task, "--side", name,
           "--epochs", str(args.epochs), "--batch-size", str(batch_size(task, args)),
           "--limit", str(args.limit), "--workdir", args.workdir,
           "--qa-length", str(args.qa_length), *(["--model", args.model] if args.model else [])]
    return measured_side(Path(args.workdir) / f"{task}-{name}.json", _settings(task, args), cmd,
                         f"{task} {name}", args.reuse)


def table(summary: dict) -> str:
    """The Markdown table of a tasks results record."""
    lines = ["| task | side | headline (test) | second | train examples/s | peak RSS MB | wall s |",
             "|---|---|---|---|---|---|---|"]
    for task, sides in summary["tasks"].items():
        head, second = METRICS[task]
        for name, label in (("occamtune", "occamtune"), ("hf", "HF Trainer recipe")):
            r = sides[name]
            lines.append(f"| {task} | {label} | {head} {r[head]:.2f} | {second} {r[second]:.2f} | "
                         f"{r['train_sents_per_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['wall_s']:.0f} |")
    note = ("\nA slice (--limit / --max-train / --max-test): not the benchmark.\n"
            if summary.get("slice") else "")
    return "\n".join(lines) + "\n" + note


if __name__ == "__main__":
    main()
