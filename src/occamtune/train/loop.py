"""The training loop, on Hugging Face Accelerate (the same code runs under `accelerate launch`).

AdamW (no weight decay on biases and LayerNorm) or SGD, warm-up then linear/cosine decay, gradient
clipping, length-grouped dynamic-padding batches, evaluation on dev every epoch or every N steps,
early stopping with patience, the best weights kept, and exact resume after an interruption: model,
optimizer, scheduler, RNG and the position in the (seeded) data order are checkpointed. With
`train.ema`, an exponential moving average of the weights (torch's `AveragedModel`) is what gets
evaluated, kept and saved.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from occamtune.config import TrainConfig
from occamtune.errors import ConfigError
from occamtune.io import atomic_write_text

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
StepHook = Callable[[int, int], None]
CHECKPOINT = "checkpoint"
STATE_FILE = "state.json"


@dataclass
class TrainState:
    """Counters saved with each checkpoint."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best: float = -math.inf
    best_step: int = -1
    bad_evals: int = 0
    stopped_early: bool = False
    examples_seen: int = 0
    train_seconds: float = 0.0


@dataclass
class FitResult:
    """What `fit` returns: the best model and how training went."""

    model: nn.Module
    state: TrainState
    history: list[dict[str, Any]]

    @property
    def train_examples_per_s(self) -> float:
        return self.state.examples_seen / max(self.state.train_seconds, 1e-9)


def fresh_parameters(model: nn.Module) -> set[str]:
    """The names (in `model`) of the parameters a pretrained checkpoint did not give: those its
    submodules list in `fresh_parameters` (a warm-started decoder's cross-attention,
    models.seq2seq)."""
    return {f"{prefix}.{name}" if prefix else name
            for prefix, module in model.named_modules()
            for name in getattr(module, "fresh_parameters", ())}


def param_groups(model: nn.Module, weight_decay: float, head_lr: float | None, lr: float) -> list[dict]:
    """Weight decay on matrices only: biases and LayerNorm weights (1-d) are not decayed.
    `head_lr` (None: `lr`) for the task head and the weights the checkpoint lacked: new weights
    start from noise and learn faster at a higher rate than the pretrained ones bear."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    fresh = fresh_parameters(model)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = (p.ndim >= 2 and "LayerNorm" not in name, name.startswith("head.") or name in fresh)
        groups.setdefault(key, []).append(p)
    out = []
    for (decay, is_head), params in groups.items():
        group_lr = head_lr if (is_head and head_lr) else lr
        out.append({"params": params, "weight_decay": weight_decay if decay else 0.0, "lr": group_lr})
    return out


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.head_lr, cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    # The fused kernel updates all parameters in one pass, much faster on CPU than the for-each
    # default, which is the fallback.
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=cfg.lr)


def ema_update(decay: float) -> Callable[..., None]:
    """`AveragedModel`'s multi_avg_fn for an EMA whose decay warms up as min(decay, (1 + n) / (10 + n))
    after n updates (TensorFlow's ExponentialMovingAverage with num_updates): torch's own
    get_ema_multi_avg_fn keeps a fixed decay, so the average would hold on to the pretrained
    weights for thousands of steps, longer than a fine-tune of a few epochs lasts."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        steps = float(n)
        keep = min(decay, (1 + steps) / (10 + steps))
        torch._foreach_lerp_(averaged, current, 1 - keep)

    return update


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total: int) -> Any:
    from transformers import get_scheduler

    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[cfg.schedule]
    return get_scheduler(name, optimizer, num_warmup_steps=int(cfg.warmup * total),
                         num_training_steps=total)


class Trainer:
    """Fine-tunes a task model on encoded examples.

    Args:
        model: the task model to train (modified in place; the best weights are loaded at the end).
        features: encoded training examples (windows or dicts).
        cfg: optimisation settings.
        collate: turns a list of examples into a batch of tensors.
        evaluate: model -> metrics dict on dev; `metric` names the key to maximise.
        loss: (model, batch) -> loss; the task loss by default.
        output: folder for checkpoints (resume) and `metrics.jsonl`; None keeps all in memory.
        step_hook: called as hook(step, total_steps) after each optimizer step.
        length: feature -> its length in sub-words, for length-grouped batches (default: the
            length of its `input_ids`).
    """

    def __init__(self, model: nn.Module, features: list[Any], cfg: TrainConfig,
                 collate: Callable[[list[Any]], dict[str, torch.Tensor]],
                 evaluate: Callable[[nn.Module], dict[str, Any]] | None, metric: str, loss: LossFn,
                 output: str | Path | None = None, step_hook: StepHook | None = None,
                 progress: bool = True, length: Callable[[Any], int] | None = None) -> None:
        from accelerate import Accelerator

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.acc = Accelerator(cpu=not torch.cuda.is_available())
        self.cfg, self.features, self.collate = cfg, features, collate
        self.evaluate_fn, self.metric, self.loss_fn = evaluate, metric, loss
        self.output = Path(output) if output else None
        self.step_hook, self.progress = step_hook, progress
        self.lengths = [(length or _input_length)(f) for f in features]
        self.steps_per_epoch = max(1, len(self._order(0)))
        total = math.ceil(cfg.epochs * self.steps_per_epoch)
        self.total = min(total, cfg.max_steps) if cfg.max_steps else total
        self.model = model
        optimizer = make_optimizer(model, cfg)
        self.scheduler = make_scheduler(optimizer, cfg, self.total)
        self.model, self.optimizer = self.acc.prepare(model, optimizer)
        self.ema = None
        if cfg.ema:
            from torch.optim.swa_utils import AveragedModel

            self.ema = AveragedModel(self.acc.unwrap_model(self.model), multi_avg_fn=ema_update(cfg.ema))
            self.ema.requires_grad_(False)
        self.state = TrainState()
        self.history: list[dict[str, Any]] = []
        self.best_weights: dict[str, torch.Tensor] | None = None

    def _order(self, epoch: int) -> list[list[int]]:
        """This process's batches for `epoch`: fixed by (seed, epoch), so resume can skip ahead."""
        from occamtune.data.encode import length_grouped_order

        bs = self.cfg.batch_size
        if self.cfg.group_by_length:
            batches = length_grouped_order(self.lengths, bs, self.cfg.seed, epoch)
        else:
            g = torch.Generator().manual_seed(self.cfg.seed + epoch)
            perm = torch.randperm(len(self.lengths), generator=g).tolist()
            batches = [perm[i:i + bs] for i in range(0, len(perm), bs)]
        world, rank = self.acc.num_processes, self.acc.process_index
        usable = len(batches) - len(batches) % world if len(batches) >= world else len(batches)
        return batches[:usable][rank::world]

    def fit(self, resume: bool = True) -> FitResult:
        """Train until the step budget or early stopping; return the best model."""
        from occamtune.io import progress

        if resume:
            self._maybe_resume()
        bar = progress(self.total, "train", "step", self.progress and self.acc.is_main_process,
                       initial=self.state.global_step)
        while self.state.global_step < self.total and not self.state.stopped_early:
            self._run_epoch(bar)
        bar.close()
        model = self.acc.unwrap_model(self.model)
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)
        elif self.ema is not None:  # no dev evaluation: the average is the result
            model.load_state_dict(self.ema.module.state_dict())
        model.eval()
        return FitResult(model, self.state, self.history)

    def _run_epoch(self, bar: Any) -> None:
        order = self._order(self.state.epoch)
        self.model.train()
        loss_sum, n_loss = 0.0, 0
        for batch_idx in order[self.state.step_in_epoch:]:
            start = time.perf_counter()
            batch = self.collate([self.features[i] for i in batch_idx])
            loss = self._step(batch)
            self.state.train_seconds += time.perf_counter() - start
            self.state.examples_seen += len(batch_idx) * self.acc.num_processes
            self.state.global_step += 1
            self.state.step_in_epoch += 1
            loss_sum, n_loss = loss_sum + loss, n_loss + 1
            bar.update(1)
            best = f"{self.state.best:.2f}" if self.state.best_step >= 0 else "none yet"  # (dev)
            bar.set_postfix(loss=f"{loss_sum / n_loss:.4f}", best_dev=best,
                            sents_s=f"{self.state.examples_seen / self.state.train_seconds:.1f}")
            end_of_epoch = self.state.step_in_epoch >= len(order)
            if self._due(end_of_epoch):
                self._log({"loss": loss_sum / n_loss})
                loss_sum, n_loss = 0.0, 0
                if self.evaluate_fn is not None:
                    self._evaluate()
                self._checkpoint(next_epoch=end_of_epoch)
                self.model.train()
            if self.state.global_step >= self.total or self.state.stopped_early:
                return
        self.state.epoch += 1
        self.state.step_in_epoch = 0

    def _due(self, end_of_epoch: bool) -> bool:
        every = self.cfg.eval_every
        last = self.state.global_step >= self.total
        return last or (end_of_epoch if every <= 0 else self.state.global_step % every == 0)

    def _step(self, batch: dict[str, torch.Tensor]) -> float:
        batch = {k: v.to(self.acc.device) for k, v in batch.items()}
        loss = self.loss_fn(self.model, batch)
        self.acc.backward(loss)
        if self.cfg.max_grad_norm > 0:
            self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update_parameters(self.acc.unwrap_model(self.model))
        if self.step_hook is not None:
            self.step_hook(self.state.global_step + 1, self.total)
        return float(loss.detach())

    def _evaluated_model(self) -> nn.Module:
        """The weights evaluated, kept as best and returned: the moving average when on."""
        return self.ema.module if self.ema is not None else self.acc.unwrap_model(self.model)

    def _evaluate(self) -> None:
        model = self._evaluated_model()
        model.eval()
        with torch.no_grad():
            metrics = self.evaluate_fn(model)
        score = float(metrics[self.metric])
        improved = score > self.state.best
        if improved:
            self.state.best, self.state.best_step, self.state.bad_evals = score, self.state.global_step, 0
            self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.state.bad_evals += 1
            self.state.stopped_early = self.state.bad_evals >= self.cfg.patience
        self._log({f"dev_{self.metric}": score, "improved": improved,
                   "stopped_early": self.state.stopped_early})

    def _log(self, record: dict[str, Any]) -> None:
        record = {"step": self.state.global_step, "epoch": self.state.epoch,
                  "lr": self.scheduler.get_last_lr()[0],
                  "train_sents_per_s": self.state.examples_seen / max(self.state.train_seconds, 1e-9),
                  **record}
        self.history.append(record)
        if self.output is not None and self.acc.is_main_process:
            self.output.mkdir(parents=True, exist_ok=True)
            with open(self.output / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def _checkpoint(self, next_epoch: bool) -> None:
        """Save everything needed to continue exactly from here (after this step).

        Why a folder per step and `state.json` last: a process killed mid-write must leave the
        previous checkpoint whole. Every file goes into `checkpoint/step-<N>/`; `state.json`,
        replaced atomically once all ranks are done, names the folder, so it never points at
        weights of another step. Nothing is pickled: tensors in safetensors or torch files read
        back with `weights_only=True`, the rest in JSON.
        """
        if self.output is None:
            return
        state = TrainState(**asdict(self.state))
        if next_epoch:
            state.epoch, state.step_in_epoch = state.epoch + 1, 0
        folder = self.output / CHECKPOINT
        step_dir = folder / f"step-{state.global_step:08d}"
        if self.acc.is_main_process:
            shutil.rmtree(step_dir, ignore_errors=True)  # a half-written one from a killed run
            step_dir.mkdir(parents=True)
        self.acc.wait_for_everyone()
        save_rng_state(step_dir / f"rng-{self.acc.process_index}.pt")
        if self.acc.is_main_process:
            self._save_weights(step_dir)
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            record = {**asdict(state), "folder": step_dir.name}
            atomic_write_text(folder / STATE_FILE, json.dumps(record))
            for old in folder.glob("step-*"):
                if old != step_dir:
                    shutil.rmtree(old, ignore_errors=True)

    def _save_weights(self, step_dir: Path) -> None:
        from safetensors.torch import save_file, save_model

        save_model(self.acc.unwrap_model(self.model), str(step_dir / "model.safetensors"))
        torch.save(self.optimizer.state_dict(), step_dir / "optimizer.pt")
        (step_dir / "scheduler.json").write_text(json.dumps(self.scheduler.state_dict()),
                                                 encoding="utf-8")
        if self.best_weights is not None:
            save_file({k: v.contiguous() for k, v in self.best_weights.items()},
                      str(step_dir / "best.safetensors"))
        if self.ema is not None:
            save_file({k: v.contiguous() for k, v in self.ema.state_dict().items()},
                      str(step_dir / "ema.safetensors"))

    def _maybe_resume(self) -> None:
        folder = self.output / CHECKPOINT if self.output else None
        if folder is None or not (folder / STATE_FILE).is_file():
            return
        record = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        step_dir = folder / str(record.pop("folder", ""))
        if not record or not (step_dir / "model.safetensors").is_file():
            raise ConfigError(f"the checkpoint in {folder} was written by an older occamtune (or is "
                              "damaged) and cannot be resumed safely; start over with --overwrite")
        try:
            self._load_weights(step_dir)
            load_rng_state(step_dir / f"rng-{self.acc.process_index}.pt")
        except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
            raise ConfigError(f"the checkpoint in {step_dir} cannot be read ({exc}); start over "
                              "with --overwrite") from exc
        self.state = TrainState(**record)
        self.acc.print(f"resuming from {folder} at step {self.state.global_step}")

    def _load_weights(self, step_dir: Path) -> None:
        from safetensors.torch import load_file, load_model

        load_model(self.acc.unwrap_model(self.model), str(step_dir / "model.safetensors"))
        self.optimizer.load_state_dict(torch.load(step_dir / "optimizer.pt", weights_only=True))
        self.scheduler.load_state_dict(json.loads((step_dir / "scheduler.json").read_text("utf-8")))
        if (step_dir / "best.safetensors").is_file():
            self.best_weights = load_file(str(step_dir / "best.safetensors"))
        if self.ema is not None:
            if not (step_dir / "ema.safetensors").is_file():
                raise ConfigError(f"the checkpoint in {step_dir} was written without train.ema: "
                                  "resume with the settings it was started with, or start over "
                                  "(--overwrite)")
            self.ema.load_state_dict(load_file(str(step_dir / "ema.safetensors")))


def save_rng_state(path: Path) -> None:
    """This process's random generators (torch, CUDA, Python, NumPy) as tensors and numbers."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": [version, list(py_state), py_gauss],
             "numpy": [kind, torch.from_numpy(keys.astype("int64")), pos, has_gauss, gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(state, path)


def load_rng_state(path: Path) -> None:
    import random

    import numpy as np

    state = torch.load(path, weights_only=True)
    torch.set_rng_state(state["torch"])
    version, py_state, py_gauss = state["python"]
    random.setstate((version, tuple(py_state), py_gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _input_length(feature: Any) -> int:
    return len(feature["input_ids"] if isinstance(feature, dict) else feature.input_ids)
