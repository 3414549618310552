"""Tables of examples as the Hugging Face `datasets` library writes them: Parquet, JSON lines, or
a `save_to_disk` folder; one example a row, columns by name.

Integer labels are named from the data's own metadata where it has some: the `huggingface` key
of a Parquet file's schema metadata, a `dataset_info.json` beside the file (or inside a
`save_to_disk` folder), each holding the `features` with the ClassLabel names. Else the user gives
them (`data.labels`).

Parquet needs `pyarrow` and a `save_to_disk` folder needs `datasets`: both in the optional extra
`occamtune[hf]`, imported only when such a file is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occamtune.data.files import read_lines
from occamtune.data.folder import shards
from occamtune.errors import DataError

TABLE_SUFFIXES = frozenset({".parquet", ".jsonl", ".json", ".ndjson"})
EXTRA = "pip install 'occamtune[hf]'"


@dataclass
class Table:
    """The rows of one table file.

    Attributes:
        path: the file (or folder) read.
        rows: one mapping of column name to value per example.
        numbers: each row's 1-based position: its file line (JSON lines) or its row (Parquet,
            `datasets` folders).
        unit: "line" or "row", what `numbers` count.
        features: the `datasets` features (as `dataset_info.json` writes them), or None.
        sources: the file of each row when they come from several shards, else None.
    """

    path: Path
    rows: list[dict[str, Any]]
    numbers: list[int]
    unit: str
    features: dict[str, Any] | None
    sources: list[Path] | None = None

    def error(self, index: int, message: str) -> DataError:
        """A DataError naming the file and the line or row of example `index`."""
        if self.unit == "line":
            return DataError(self.path, message, line=self.numbers[index])
        path = self.sources[index] if self.sources else self.path
        return DataError(path, f"row {self.numbers[index]}: {message}")

    def column(self, index: int, given: str | None, usual: tuple[str, ...], option: str,
               required: bool = True) -> str | None:
        """The column of row `index` named `given`, else the first of `usual` it has (JSON lines
        may spell the key differently from row to row).

        Raises:
            DataError: `given` is missing, or (when `required`) none of `usual` is there; the
                message lists the row's columns and names the option to set.
        """
        have = list(self.rows[index])
        if given is not None:
            if given not in have:
                raise self.error(index, f"no column {given!r} ({option}); the columns: {have}")
            return given
        found = next((c for c in usual if c in have), None)
        if found is None and required:
            raise self.error(index, f"no column among {list(usual)}; the columns: {sorted(have)}; "
                                    f"name the one to use with {option}=COLUMN")
        return found

    def label_names(self, column: str, given: list[str] | None) -> list[str] | None:
        """Names of integer labels in `column`: the data's ClassLabel names, else `given`."""
        return class_names(self.features, column) or given

    def label(self, index: int, value: Any, names: list[str] | None, needs_names: bool) -> str:
        """One label as a string: an integer is looked up in `names` (or, unless `needs_names`,
        spelled as it is); a string is kept.

        Raises:
            DataError: an integer without names when they are needed, an integer out of range,
                or a value of another type.
        """
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(index, f"label {value!r} is neither a string nor an integer")
        if names is None:
            if needs_names:
                raise self.error(index, f"integer label {value} and no label names: the data has "
                                        "no `datasets` metadata (Parquet schema, dataset_info.json "
                                        "beside the file); give them in order with "
                                        "data.labels=[O,B-PER,I-PER,...]")
            return str(value)
        if not 0 <= value < len(names):
            raise self.error(index, f"integer label {value} is outside the {len(names)} label "
                                    f"names ({', '.join(names)})")
        return names[value]


def is_table(path: str | Path) -> bool:
    """A Parquet or JSON lines file, or a `datasets` `save_to_disk` folder."""
    path = Path(path)
    return path.suffix.lower() in TABLE_SUFFIXES or path.is_dir()


def read_table(path: str | Path, encoding: str = "utf-8") -> Table:
    """Read a table: by suffix a Parquet file, else a folder from `save_to_disk`, else JSON lines
    (or one JSON array of objects).

    Raises:
        DataError: a missing file, bad JSON (naming the line), no rows, or the optional extra
            missing for Parquet / `datasets` folders.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file does not exist; check the path")
    if path.is_dir():
        table = _read_saved(path)
    elif path.suffix.lower() == ".parquet":
        table = _read_parquet(path)
    else:
        table = json_table(path, read_lines(path, encoding))
    if not table.rows:
        raise DataError(path, "no examples found (the table has no rows)")
    return table


def _import(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DataError(what, f"reading it needs `{module.split('.')[0]}`, which is not "
                              f"installed; install the extra: {EXTRA}") from exc


def _read_parquet(path: Path) -> Table:
    """A Parquet file, or all shards of its set (`train-00000-of-00002.parquet`, ...)."""
    pq = _import("pyarrow.parquet", str(path))
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    sources: list[Path] = []
    features = None
    for shard in shards(path):
        try:
            table = pq.read_table(shard)
        except Exception as exc:  # pyarrow raises its own ArrowInvalid, OSError, ...
            raise DataError(shard, f"not a readable Parquet file: {exc}") from exc
        features = features or _schema_features(table.schema.metadata or {})
        part = table.to_pylist()
        rows += part
        numbers += range(1, len(part) + 1)
        sources += [shard] * len(part)
    return Table(path, rows, numbers, "row", features or _info_features(path.parent), sources)


def _schema_features(meta: dict[bytes, bytes]) -> dict[str, Any] | None:
    """The features `datasets` keeps under the `huggingface` key of a Parquet schema."""
    try:
        return json.loads(meta[b"huggingface"])["info"]["features"]
    except (ValueError, KeyError, TypeError):
        return None


def _read_saved(path: Path) -> Table:
    if not (path / "state.json").is_file():
        raise DataError(path, "is a folder but not one `datasets`' save_to_disk wrote (no "
                              "state.json); give a file, or the folder as --data")
    datasets = _import("datasets", str(path))
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError, ValueError, its own errors
        raise DataError(path, f"`datasets` cannot load this folder: {exc}") from exc
    rows = ds.to_list()
    return Table(path, rows, list(range(1, len(rows) + 1)), "row", _info_features(path))


def json_table(path: Path, lines: list[str]) -> Table:
    """The rows of a JSON lines file given as lines; a `.json` file may also hold one JSON array
    of objects (pandas' `orient="records"`)."""
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    if first.startswith("[") and path.suffix.lower() == ".json":
        try:
            array = json.loads("\n".join(lines))
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from exc
        if not isinstance(array, list) or not all(isinstance(o, dict) for o in array):
            raise DataError(path, "a JSON array must hold one object per example")
        return Table(path, array, list(range(1, len(array) + 1)), "row",
                     _info_features(path.parent))
    rows, numbers = [], []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            rows.append(json_object(path, line, number))
            numbers.append(number)
    return Table(path, rows, numbers, "line", _info_features(path.parent))


def json_object(path: Path, line: str, number: int) -> dict[str, Any]:
    """Parse one JSON lines line into an object, or raise naming the line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        hint = "; write one JSON object per line (JSONL), not an array" \
            if line.lstrip()[:1] == "[" else ""
        raise DataError(path, f"not valid JSON: {exc.msg} at column {exc.colno}{hint}",
                        line=number) from exc
    if not isinstance(obj, dict):
        raise DataError(path, "each line must be a JSON object like "
                              '{"text": "...", "label": "..."} or {"tokens": [...], '
                              '"ner_tags": [...]}', line=number)
    return obj


def _info_features(folder: Path) -> dict[str, Any] | None:
    """The features of a `dataset_info.json` (or `dataset_infos.json`) in `folder`, if any."""
    for name in ("dataset_info.json", "dataset_infos.json"):
        info = folder / name
        if not info.is_file():
            continue
        try:
            data = json.loads(info.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DataError(info, f"not valid JSON: {exc}") from exc
        if isinstance(data, dict) and "features" in data:
            return data["features"]
        configs = [v for v in data.values() if isinstance(v, dict) and "features" in v] \
            if isinstance(data, dict) else []
        if len(configs) == 1:  # dataset_infos.json: {config_name: info}
            return configs[0]["features"]
    return None


def class_names(features: dict[str, Any] | None, column: str) -> list[str] | None:
    """The ClassLabel names of `column` (or of its items, for a sequence), or None.

    Reads the serialised features of every `datasets` version: `{"_type": "ClassLabel",
    "names": [...]}`, inside `{"_type": "Sequence" | "List", "feature": ...}` or a one-item list.
    """
    feature = (features or {}).get(column)
    for _ in range(2):
        if isinstance(feature, list) and len(feature) == 1:
            feature = feature[0]
        elif isinstance(feature, dict) and "feature" in feature:
            feature = feature["feature"]
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and feature.get("names"):
        return [str(n) for n in feature["names"]]
    return None
