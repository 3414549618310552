"""Pipelines as text: `"distill(layers=3), prune(sparsity=0.8), quantize(bits=4)"` and YAML
(a list of `{method: name, **fields}`), both round-tripping to lists of configs."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from occamtune.compress.base import METHODS, CompressionConfig, config_fields
from occamtune.config import yaml_number
from occamtune.errors import ConfigError

_OPEN, _CLOSE = "([{", ")]}"


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets: 'a(x=1, y=[1, 2]), b' -> ['a(x=1, y=[1, 2])', 'b']."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in _OPEN) - (ch in _CLOSE)
        if depth < 0:
            raise ConfigError(f"unbalanced brackets in pipeline {text!r}")
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ConfigError(f"unbalanced brackets in pipeline {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def make_config(method: str, values: dict[str, Any]) -> CompressionConfig:
    """A config from a method name and field values; unknown names or keys list the valid ones."""
    if method not in METHODS:
        raise ConfigError(f"unknown compression method {method!r}; choose one of "
                          f"{', '.join(sorted(METHODS))}")
    cls = METHODS[method]
    valid = config_fields(cls)
    for key in values:
        if key not in valid:
            raise ConfigError(f"{method}: unknown option {key!r}; valid options: {', '.join(valid)}")
    values = {k: tuple(v) if isinstance(v, list) else yaml_number(v) for k, v in values.items()}
    return cls(**values)


def _parse_step(step: str) -> CompressionConfig:
    method, paren, rest = step.partition("(")
    method = method.strip()
    if paren and not rest.rstrip().endswith(")"):
        raise ConfigError(f"pipeline step {step!r} must look like method(key=value, ...)")
    values: dict[str, Any] = {}
    for item in _split_top(rest.rstrip()[:-1]) if paren else []:
        key, eq, raw = item.partition("=")
        if not eq:
            raise ConfigError(f"{method}: option {item!r} must be key=value")
        try:
            values[key.strip()] = yaml.safe_load(raw.strip())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{method}: cannot read the value of {key.strip()!r}: {raw!r}") from exc
    return make_config(method, values)


def parse_pipeline(text: str) -> list[CompressionConfig]:
    """Configs from the string form, e.g. `"distill(layers=3), prune(sparsity=0.8), quantize"`.

    Values are read as YAML scalars (`true`, `0.5`, `null`, `[query, value]`).

    Raises:
        ConfigError: unknown method or option (listing the valid ones), or a bad value.
    """
    return [_parse_step(step) for step in _split_top(text)]


def _format_value(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def format_pipeline(configs: list[CompressionConfig]) -> str:
    """The string form, showing the fields that differ from their defaults."""
    steps = []
    for config in configs:
        changed = [f"{f.name}={_format_value(getattr(config, f.name))}"
                   for f in dataclasses.fields(config) if getattr(config, f.name) != f.default]
        steps.append(f"{config.name}({', '.join(changed)})" if changed else config.name)
    return ", ".join(steps)


def pipeline_to_yaml(configs: list[CompressionConfig]) -> str:
    """YAML: a list of `{method: name, **fields}`."""
    return yaml.safe_dump([c.to_dict() for c in configs], sort_keys=False)


def pipeline_from_dicts(items: list[dict[str, Any]]) -> list[CompressionConfig]:
    """Configs from `[{method: name, **fields}, ...]` (the YAML and artifact form)."""
    if not isinstance(items, list):
        raise ConfigError(f"a pipeline must be a list of {{method: name, ...}}, got {items!r}")
    configs = []
    for item in items:
        if not isinstance(item, dict) or "method" not in item:
            raise ConfigError(f"pipeline step {item!r} needs a `method` key")
        values = {k: v for k, v in item.items() if k != "method"}
        configs.append(make_config(str(item["method"]), values))
    return configs


def pipeline_from_yaml(text: str) -> list[CompressionConfig]:
    """Configs from `pipeline_to_yaml`'s output (or a hand-written list of the same shape)."""
    try:
        items = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"pipeline YAML does not parse: {exc}") from exc
    return pipeline_from_dicts(items or [])
