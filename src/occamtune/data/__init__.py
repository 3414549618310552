"""Data: readers (CoNLL, text classification), tagging schemes, word shapes, encoding, batching."""

from occamtune.data.conll import Sentence, TokenDataset, read_conll, write_conll
from occamtune.data.encode import (
    Collator,
    Window,
    encode_texts,
    encode_words,
    length_grouped_order,
    window_count_report,
)
from occamtune.data.folder import find_splits, split_off_dev
from occamtune.data.schemes import check_labels, detect_scheme, to_iob2
from occamtune.data.shapes import SHAPES, word_shape
from occamtune.data.text import TextDataset, TextExample, read_text
from occamtune.data.tokenize import split_sentences, split_words

__all__ = ["SHAPES", "Collator", "Sentence", "TextDataset", "TextExample", "TokenDataset", "Window",
           "check_labels", "detect_scheme", "encode_texts", "encode_words", "find_splits",
           "length_grouped_order", "read_conll", "read_text", "split_off_dev", "split_sentences",
           "split_words", "to_iob2", "window_count_report", "word_shape", "write_conll"]
