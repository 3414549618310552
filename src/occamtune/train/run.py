"""A whole training run: read the data, build or continue a model, fit it with early stopping on
dev, save it with its metadata, and evaluate it on test. `occamtune.train` calls `train_run`;
compression methods that train call `fit_model`."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from occamtune import inference
from occamtune.config import RunConfig, dump_config
from occamtune.errors import ConfigError
from occamtune.io import atomic_write_text, check_apart, clear_output, portable_path
from occamtune.models import (
    WEIGHTS_FILE,
    HeadConfig,
    RunMeta,
    TaskModel,
    add_task_tokens,
    build_model,
    check_max_length,
    count_parameters,
    default_pooling,
    load_encoder,
    load_model,
    load_tokenizer,
    resolve_model,
    save_model,
)
from occamtune.models.seq2seq import load_seq2seq, wants_seq2seq
from occamtune.tasks import get_task
from occamtune.train.loop import FitResult, Trainer
from occamtune.train.prepare import Split, encode_splits, read_splits


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


def prepare_output(output: Path, cfg: RunConfig) -> bool:
    """Make the output folder; True when an interrupted run there should be resumed.

    A run is finished once its weights are saved and its checkpoint removed (the last step).
    Short of that, the same config again continues it: from its checkpoint, or (killed before
    the first one) from the start in the same folder; killed during the final test evaluation,
    the checkpoint holds the finished state and only the saving and scoring are redone.
    """
    if not cfg.overwrite:
        checkpoint = (output / "checkpoint" / "state.json").is_file()
        if checkpoint and not (output / WEIGHTS_FILE).exists():
            return True  # the trainer checks that the settings suit the checkpoint
        if _unfinished_run_of(output, cfg):
            if checkpoint:
                return True
            if _only_run_files(output):  # this run, killed before any checkpoint
                clear_output(output, overwrite=True)
        elif output.is_dir() and all(_is_temp(p.name) for p in output.iterdir()):
            clear_output(output, overwrite=True)  # only a killed write's temp files
    clear_output(output, cfg.overwrite)
    return False


RUN_FILES = frozenset({"config.yaml", "metrics.jsonl", "checkpoint"})  # written before the weights


def _is_temp(name: str) -> bool:
    return name.startswith(".") and ".tmp" in name  # io.atomic_write_text's temp names


def _only_run_files(output: Path) -> bool:
    """Whether everything in `output` is what a run writes before its weights (a user's own
    file there is never removed without --overwrite)."""
    return all(p.name in RUN_FILES or _is_temp(p.name) for p in output.iterdir())


def _unfinished_run_of(output: Path, cfg: RunConfig) -> bool:
    """Whether `output` holds an unfinished run of `cfg` (same config, overwrite aside)."""
    from occamtune.config import load_config

    finished = (output / WEIGHTS_FILE).exists() and not (output / "checkpoint").exists()
    if finished or not (output / "config.yaml").is_file():
        return False
    try:
        saved = asdict(load_config(output / "config.yaml"))
    except ConfigError:
        return False
    return {**saved, "overwrite": False} == {**asdict(cfg), "overwrite": False}


def is_main_process() -> bool:
    """False on the other ranks of a multi-process launch (torchrun sets RANK)."""
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
    task = get_task(cfg.task)
    tok = load_tokenizer(name, cfg.task)
    add_task_tokens(tok, cfg.task)
    encoder = pretrained_base(name, cfg, tok)
    model_cfg = replace(cfg.model, pooling=cfg.model.pooling or default_pooling(encoder.config))
    head = HeadConfig(task=cfg.task, labels=labels, **task.head_options(model_cfg, tok, cfg))
    model = build_model(name, head, tok, encoder=encoder)
    task.init_pretrained(model, name)
    check_max_length(model, cfg.data.max_length, name)  # else every load of the result fails
    return model, tok


def pretrained_base(name: str, cfg: RunConfig, tokenizer: Any) -> nn.Module:
    """The pretrained model a fresh run starts from: its encoder (the encoder stack of an
    encoder-decoder), or for the generate task on anything but a causal decoder, a whole
    encoder-decoder (`occamtune.models.seq2seq`)."""
    path = resolve_model(name)
    if get_task(cfg.task).generative and wants_seq2seq(path):
        return load_seq2seq(path, tokenizer, cfg.generate.tie_encoder_decoder)
    if cfg.generate.tie_encoder_decoder:
        raise ConfigError(f"generate.tie_encoder_decoder ties the two halves of an encoder "
                          f"checkpoint warm-started as an encoder-decoder (task generate); "
                          f"{name} with task {cfg.task} has no such halves: leave it false")
    return load_encoder(name)


def run_meta(model: TaskModel, cfg: RunConfig) -> RunMeta:
    """The metadata of a model trained with `cfg`."""
    return RunMeta(head=model.head_config, base_model=portable_path(cfg.model.name),
                   max_length=cfg.data.max_length, stride=cfg.data.stride,
                   context=cfg.data.context, parameters=count_parameters(model))


def run_inputs(cfg: RunConfig) -> dict[str, str | None]:
    """The files and folders a training run reads, by the key that names them."""
    model = cfg.model.name if Path(cfg.model.name).exists() else None
    return {"data.path": cfg.data.path, "data.train": cfg.data.train, "data.dev": cfg.data.dev,
            "data.test": cfg.data.test, "model.name": model}


def train_run(cfg: RunConfig, progress: bool = True) -> Run:
    """Fine-tune `cfg.model.name` on `cfg.data`; save the best model (on dev) into `cfg.output`,
    evaluate it on test, and write metrics as JSON and Markdown."""
    from accelerate import PartialState

    task = get_task(cfg.task)  # an unknown task fails before any work
    PartialState(cpu=not torch.cuda.is_available())  # joins a multi-process launch (no-op alone)
    torch.manual_seed(cfg.train.seed)
    output = Path(cfg.output)
    check_apart(output, run_inputs(cfg))
    main = is_main_process()  # under torchrun / accelerate launch only rank 0 writes files
    resume = prepare_output(output, cfg) if main else False
    resume = _agree(resume)
    splits = read_splits(task, cfg.data)
    labels = task.label_set(splits["train"].dataset)
    model, tok = initial_model(cfg, labels)
    encode_splits(task, splits, tok, model.labels, cfg.data, head=model.head_config)
    if main:
        atomic_write_text(output / "config.yaml", dump_config(cfg))
    fit = fit_model(model, splits, cfg, output=output, progress=progress and main, resume=resume)
    model = fit.model
    # no dev evaluation ran (e.g. a step budget below one epoch with eval_every=0): no score,
    # rather than -inf, which is not JSON
    dev = fit.state.best if math.isfinite(fit.state.best) else None
    metrics = {"dev": dev, "best_step": fit.state.best_step}
    if not main:
        return Run(model, tok, cfg, splits, metrics, fit.train_examples_per_s, output)
    save_model(model, tok, output, run_meta(model, cfg))
    if "test" in splits:
        metrics["test"] = evaluate_split(model, splits["test"], output, "test")
    shutil.rmtree(output / "checkpoint", ignore_errors=True)
    return Run(model, tok, cfg, splits, metrics, fit.train_examples_per_s, output)


def fit_model(model: TaskModel, splits: dict[str, Split], cfg: RunConfig, output: Path | None = None,
              progress: bool = True, resume: bool = False, loss_fn: Any = None,
              step_hook: Any = None, train_cfg: Any = None) -> FitResult:
    """Run the trainer on the encoded train split, early-stopping on dev."""
    task = get_task(model.head_config.task)
    dev = splits["dev"]
    trainer = Trainer(
        model, splits["train"].features, train_cfg or cfg.train,
        collate=task.collator(int(model.encoder.config.pad_token_id or 0)),
        evaluate=lambda m: inference.evaluate(m, dev.dataset, dev.features, cfg.train.eval_batch_size),
        metric=task.metric, loss=loss_fn or task.train_loss,
        output=output, step_hook=step_hook, progress=progress, length=task.feature_length,
    )
    return trainer.fit(resume=resume)


def evaluate_split(model: Any, split: Split, folder: Path, name: str) -> dict[str, Any]:
    """Evaluate on a split; write `eval_<name>.json` and `eval_<name>.md` into `folder`."""
    return inference.write_eval(model, split.dataset, split.features, folder, name, split.path)


def load_run_data(folder: str | Path, tokenizer: Any, labels: list[str],
                  head: Any = None) -> tuple[RunConfig, dict]:
    """A trained run's config and its encoded splits (train, dev, test); `head`: the model's
    HeadConfig (the generate task's prompt settings)."""
    from occamtune.config import load_config

    cfg_file = Path(folder) / "config.yaml"
    if not cfg_file.is_file():
        raise ConfigError(f"{folder} has no config.yaml; give a folder written by `occamtune train`")
    cfg = load_config(cfg_file)
    task = get_task(cfg.task)
    splits = read_splits(task, cfg.data)
    encode_splits(task, splits, tokenizer, labels, cfg.data, head=head)
    return cfg, splits
