"""NER tables as the Hugging Face `datasets` library writes them: one sentence a row, a list of
tokens and a list of tags (integers named by the ClassLabel metadata, or strings)."""

from __future__ import annotations

from pathlib import Path

from occamtune.data.conll import TokenDataset, token_dataset
from occamtune.data.tables import Table, read_table
from occamtune.errors import DataError

TOKEN_KEYS = ("tokens", "words")
TAG_KEYS = ("ner_tags", "tags", "labels", "ner")


def read_token_table(path: str | Path, has_labels: bool = True, encoding: str = "utf-8",
                     input_field: str | None = None, label_field: str | None = None,
                     labels: list[str] | None = None) -> TokenDataset:
    """Read an NER table: Parquet, JSON lines or a `datasets` save_to_disk folder.

    Args:
        path: the file or folder.
        has_labels: False for unlabelled input (the tag column may then be missing).
        encoding: the text encoding of a JSON lines file (`data.encoding`).
        input_field: the token-list column (`data.input_field`); None: tokens or words.
        label_field: the tag-list column (`data.label_field`); None: ner_tags, tags, labels, ner.
        labels: names of integer tags (`data.labels`) when the data's metadata has none.

    Returns:
        The sentences with IOB2 tags; each sentence's `line` is its line (JSON lines) or row.

    Raises:
        DataError: a missing column, a row whose tokens are not a list of strings, tags of another
            length, integer tags without names, or a malformed tag (naming the line or row).
    """
    table = read_table(path, encoding)
    tokens_key = table.column(0, input_field, TOKEN_KEYS, "data.input_field")
    tags_key = table.column(0, label_field, TAG_KEYS, "data.label_field", required=has_labels)
    names = table.label_names(tags_key, labels) if tags_key is not None else None
    words, tags, numbers = [], [], []
    for i, row in enumerate(table.rows):
        if row.get(tokens_key) == []:
            continue  # an empty sentence, like two blank lines in a CoNLL file
        words.append(_tokens(table, i, row.get(tokens_key)))
        numbers.append(table.numbers[i])
        if tags_key is not None and has_labels:
            tags.append(_tags(table, i, row.get(tags_key), len(words[-1]), names))
    if not words:
        raise DataError(table.path, f"no sentences: every row's {tokens_key!r} is empty")
    return token_dataset(table.path, words, tags if has_labels and tags_key else None,
                         numbers, label_column=None, unit=table.unit)


def _tokens(table: Table, index: int, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise table.error(index, f"the tokens must be a list of strings, got {value!r}")
    return value


def _tags(table: Table, index: int, value: object, n: int,
          names: list[str] | None) -> list[str]:
    if not isinstance(value, list) or len(value) != n:
        raise table.error(index, f"expected a list of {n} tags (one per token), got {value!r}")
    return [table.label(index, v, names, needs_names=True) for v in value]
