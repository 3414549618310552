"""The public verbs: train, load, evaluate, predict (compress and shrink live in their packages)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from occamtune import inference
from occamtune.config import RunConfig, dump_config
from occamtune.errors import ConfigError
from occamtune.io import atomic_write_text, clear_output
from occamtune.models import (
    HeadConfig,
    TaskModel,
    build_model,
    check_max_length,
    count_parameters,
    is_uncased,
    load_model,
    load_tokenizer,
    save_model,
)
from occamtune.report.tables import metrics_markdown
from occamtune.tasks import get_task
from occamtune.train.loop import Trainer
from occamtune.train.prepare import (
    Split,
    check_labels,
    encode_split,
    label_set,
    read_file,
    read_splits,
)


@dataclass
class Run:
    """A trained model with what it was trained on."""

    model: TaskModel
    tokenizer: Any
    config: RunConfig
    splits: dict[str, Split]
    metrics: dict[str, Any]
    train_sents_per_s: float
    output: Path


def prepare_output(output: Path, overwrite: bool) -> bool:
    """Make the output folder; True when an interrupted run there should be resumed."""
    interrupted = (output / "checkpoint" / "state.json").is_file() and not (output / "model.safetensors").exists()
    if interrupted and not overwrite:
        return True
    clear_output(output, overwrite)
    output.mkdir(parents=True, exist_ok=True)
    return False


def is_main_process() -> bool:
    """False on the other ranks of a multi-process launch (torchrun sets RANK)."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def _agree(flag: bool) -> bool:
    """Rank 0's decision (e.g. resume or not), shared with every process of a launch."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    box = [flag]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def initial_model(cfg: RunConfig, labels: list[str]) -> tuple[TaskModel, Any]:
    """A fresh head on a pretrained encoder, or (continued training) a saved occamtune model."""
    name = cfg.model.name
    if (Path(name) / "occamtune.json").is_file():
        model, tok, _ = load_model(name, runtime=False)
        check_max_length(model, cfg.data.max_length, name)
        missing = sorted(set(labels) - set(model.labels))
        if missing:
            raise ConfigError(f"the new data has labels {missing} that model {name} does not know "
                              f"({model.labels}); train a new model from the base encoder instead")
        return model, tok
    tok = load_tokenizer(name, cfg.task)
    shape = cfg.model.shape_features
    if shape is None:
        shape = cfg.task == "ner" and is_uncased(tok)
    head = HeadConfig(task=cfg.task, labels=labels, dropout=cfg.model.dropout, shape_features=shape,
                      pooling=cfg.model.pooling)
    return build_model(name, head), tok


def train(cfg: RunConfig, progress: bool = True) -> Run:
    """Fine-tune `cfg.model.name` on `cfg.data`; save the best model (on dev) into `cfg.output`,
    evaluate it on test, and write metrics as JSON and Markdown."""
    from accelerate import PartialState

    PartialState(cpu=not torch.cuda.is_available())  # joins a multi-process launch (no-op alone)
    torch.manual_seed(cfg.train.seed)
    output = Path(cfg.output)
    main = is_main_process()  # under torchrun / accelerate launch only rank 0 writes files
    resume = prepare_output(output, cfg.overwrite) if main else False
    resume = _agree(resume)
    splits = read_splits(cfg.task, cfg.data, cfg.train.seed)
    labels = label_set(cfg.task, splits["train"].dataset)
    model, tok = initial_model(cfg, labels)
    labels = model.labels
    for split in splits.values():
        check_labels(cfg.task, split, labels)
        split.features = encode_split(cfg.task, split.dataset, tok, labels, cfg.data)
    if main:
        atomic_write_text(output / "config.yaml", dump_config(cfg))
    fit = fit_model(model, splits, cfg, output=output, progress=progress and main, resume=resume)
    model = fit.model
    metrics = {"dev": fit.state.best, "best_step": fit.state.best_step}
    if not main:
        return Run(model, tok, cfg, splits, metrics, fit.train_examples_per_s, output)
    save_model(model, tok, output, meta={"base_model": cfg.model.name, "max_length": cfg.data.max_length,
                                         "stride": cfg.data.stride, "context": cfg.data.context,
                                         "parameters": count_parameters(model)})
    if "test" in splits:
        metrics["test"] = write_eval(model, splits["test"], output, "test")
    shutil.rmtree(output / "checkpoint", ignore_errors=True)
    return Run(model, tok, cfg, splits, metrics, fit.train_examples_per_s, output)


def fit_model(model: TaskModel, splits: dict[str, Split], cfg: RunConfig, output: Path | None = None,
              progress: bool = True, resume: bool = False, loss_fn: Any = None,
              step_hook: Any = None, train_cfg: Any = None) -> Any:
    """Run the trainer on the encoded train split, early-stopping on dev."""
    from occamtune.data.encode import Collator

    task = get_task(cfg.task)
    dev = splits["dev"]
    trainer = Trainer(
        model, splits["train"].features, train_cfg or cfg.train,
        collate=Collator(pad_id=int(model.encoder.config.pad_token_id or 0)),
        evaluate=lambda m: inference.evaluate(m, dev.dataset, dev.features, cfg.train.eval_batch_size),
        metric=task.metric, loss=loss_fn or (lambda m, b: task.loss(m(**b), b)),
        output=output, step_hook=step_hook, progress=progress,
    )
    return trainer.fit(resume=resume)


def write_eval(model: TaskModel, split: Split, folder: Path, name: str) -> dict[str, Any]:
    """Evaluate on a split; write `eval_<name>.json` and `eval_<name>.md` into `folder`."""
    start = time.perf_counter()
    metrics = inference.evaluate(model, split.dataset, split.features)
    metrics["seconds"] = time.perf_counter() - start
    metrics["file"] = split.path
    atomic_write_text(folder / f"eval_{name}.json", json.dumps(metrics, indent=2))
    atomic_write_text(folder / f"eval_{name}.md", metrics_markdown(model.head_config.task, metrics, split.path))
    return metrics


class Predictor:
    """A loaded model ready for prediction: `occamtune.load("runs/ner").predict(["some text"])`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.model, self.tokenizer, self.meta = load_model(folder)
        self.task = self.model.head_config.task
        self.max_length = int(self.meta.get("max_length", 128))
        self.stride = int(self.meta.get("stride", 32))
        self.context = int(self.meta.get("context", 0))
        check_max_length(self.model, self.max_length, folder)

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    def encode(self, dataset: Any) -> list[Any]:
        from occamtune.config import DataConfig

        data = DataConfig(max_length=self.max_length, stride=self.stride, context=self.context)
        return encode_split(self.task, dataset, self.tokenizer, self.labels, data)

    def evaluate_file(self, path: str | Path, name: str | None = None, write: bool = True) -> dict:
        """Metrics on a labelled file; written into the model folder as eval_<name>.json/.md."""
        dataset = read_file(self.task, path)
        split = Split(name or Path(path).stem, str(path), dataset)
        check_labels(self.task, split, self.labels)
        split.features = self.encode(dataset)
        if write:
            return write_eval(self.model, split, self.folder, split.name)
        return inference.evaluate(self.model, dataset, split.features)

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Entities (NER) or a label (classify) with scores for each raw text."""
        from occamtune.serve.predict import predict_texts

        return predict_texts(self, texts)


def load(folder: str | Path) -> Predictor:
    """Load a trained or compressed model folder for prediction and evaluation."""
    return Predictor(folder)


def run_summary(run: Run) -> dict[str, Any]:
    return {"output": str(run.output), "metrics": run.metrics, "train_sents_per_s": run.train_sents_per_s,
            "config": asdict(run.config)}
