"""`occamtune compress`: load a trained run, build the compression context from the run's own data
and settings, apply a pipeline, write the packed artifact and its evaluation."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from occamtune.config import RunConfig
from occamtune.train.run import evaluate_split, fit_model, load_run_data


def make_context(cfg: RunConfig, splits: dict, tokenizer: Any = None, progress: bool = True,
                 calib_batches: int = 8, refit_batches: int = 32, teacher: Any = None) -> Any:
    """A CompressContext whose finetune trains on the run's training data with its settings;
    `teacher`: the run's fine-tuned model, when pipelines are applied piece by piece to it."""
    from occamtune.compress.base import CompressContext
    from occamtune.tasks import get_task

    train = splits["train"].features

    def finetune(model: Any, *, loss_fn: Any = None, step_hook: Any = None,
                 epochs: float | None = None, lr: float | None = None) -> Any:
        # no weight averaging in compression's fine-tunes: not measured there, and QAT would
        # average float weights whose rounding is what counts. A method's own learning rate
        # (QAT's is a tenth of the run's) scales the head's too, keeping the run's ratio.
        rate = lr or cfg.train.lr
        head_lr = cfg.train.head_lr and cfg.train.head_lr * rate / cfg.train.lr
        tcfg = dataclasses.replace(cfg.train, epochs=epochs or cfg.train.epochs, lr=rate,
                                   head_lr=head_lr, ema=0.0)
        return fit_model(model, splits, cfg, progress=progress, loss_fn=loss_fn,
                         step_hook=step_hook, train_cfg=tcfg).model

    def batches(n: int) -> Any:
        collate = get_task(cfg.task).collator(int(getattr(tokenizer, "pad_token_id", 0) or 0))
        bs = cfg.train.batch_size
        for i in range(0, min(len(train), n * bs), bs):
            yield collate(train[i:i + bs])

    def token_counts() -> dict[int, int]:
        counts: Counter = Counter()
        for f in train:
            counts.update(f["input_ids"] if isinstance(f, dict) else f.input_ids)
            if isinstance(f, dict) and "decoder_input_ids" in f:  # an encoder-decoder's target
                counts.update(f["labels"])
        return dict(counts)

    return CompressContext(finetune=finetune, calibration=lambda: batches(calib_batches),
                           refit_batches=lambda: batches(refit_batches), token_counts=token_counts,
                           seed=cfg.train.seed, tokenizer=tokenizer, lr=cfg.train.lr, teacher=teacher,
                           max_length=cfg.data.max_length)


def compress_run(folder: str | Path, pipeline: str, output: str | Path, overwrite: bool = False,
                 evaluate: bool = True, progress: bool = True,
                 decoding: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compress the model in `folder` with `pipeline` (string form or a YAML file) into `output`.
    `decoding`: a generator's decoding settings for the artifact (scored and kept with them)
    instead of the run's (`inference.set_decoding`)."""
    from occamtune.compress.artifact import save_artifact
    from occamtune.compress.base import compress
    from occamtune.compress.pipeline import parse_pipeline, pipeline_from_yaml
    from occamtune.inference import set_decoding
    from occamtune.io import check_apart, clear_output, portable_path
    from occamtune.models import WEIGHTS_FILE, load_model
    from occamtune.tasks import get_task

    output, p = Path(output), Path(pipeline)
    check_apart(output, {"model": folder, "pipeline": p if p.is_file() else None})
    clear_output(output, overwrite)
    configs = pipeline_from_yaml(p.read_text()) if p.suffix in (".yaml", ".yml") and p.is_file() \
        else parse_pipeline(pipeline)
    model, tok, meta = load_model(folder, runtime=False)
    set_decoding(model, decoding, folder)
    cfg, splits = load_run_data(folder, tok, model.labels, model.head_config)
    small = compress(model, configs, make_context(cfg, splits, tok, progress))
    fp32 = (Path(folder) / WEIGHTS_FILE).stat().st_size
    # written and scored in a sibling folder, renamed into place last: a kill leaves `output`
    # empty, so the same command runs again, never a folder half loadable
    part = output.with_name(f".{output.name}.partial")
    shutil.rmtree(part, ignore_errors=True)
    sizes = save_artifact(small, tok, part,
                          meta=meta.derived("artifact", fp32_bytes=fp32, source=portable_path(folder)))
    shutil.copy(Path(folder) / "config.yaml", part / "config.yaml")
    result: dict[str, Any] = {"output": str(output), "sizes": sizes, "fp32_bytes": fp32}
    if evaluate and "test" in splits:
        loaded, _, _ = load_model(part)
        test = evaluate_split(loaded, splits["test"], part, "test")
        result["test"] = {k: test[k] for k in get_task(cfg.task).headline if k in test}
    os.replace(part, output)  # onto the empty folder clear_output left
    return result
