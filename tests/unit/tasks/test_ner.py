import itertools

import numpy as np
import pytest

from occamtune.tasks.ner import allowed_transitions, ner_metrics, viterbi

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def _valid(tags: list[str]) -> bool:
    prev = "O"
    for t in tags:
        if t.startswith("I-") and prev[2:] != t[2:]:
            return False
        prev = t
    return True


def test_viterbi_repairs_an_invalid_argmax() -> None:
    # argmax alone would say O I-PER: not valid IOB2
    lp = np.log(np.array([[0.9, 0.025, 0.025, 0.025, 0.025], [0.1, 0.05, 0.05, 0.3, 0.5]]))
    start, trans = allowed_transitions(LABELS)
    tags = [LABELS[i] for i in viterbi(lp, start, trans)]
    assert tags == ["O", "B-PER"]


@pytest.mark.parametrize("seed", range(5))
def test_viterbi_is_the_best_valid_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lp = np.log(rng.dirichlet(np.ones(len(LABELS)), size=4))
    start, trans = allowed_transitions(LABELS)
    best = [LABELS[i] for i in viterbi(lp, start, trans)]
    brute = max((p for p in itertools.product(range(len(LABELS)), repeat=4)
                 if _valid([LABELS[i] for i in p])),
                key=lambda p: sum(lp[t, i] for t, i in enumerate(p)))
    assert best == [LABELS[i] for i in brute]
    assert _valid(best)


def test_metrics_entity_level_and_token_table() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "O", "O", "B-LOC"]]  # PER span wrong, LOC right
    m = ner_metrics(gold, pred)
    assert m["precision"] == pytest.approx(50.0)
    assert m["recall"] == pytest.approx(50.0)
    assert m["entity"]["LOC"]["f1-score"] == pytest.approx(1.0)
    assert m["token_level"]["accuracy"] == pytest.approx(0.75)  # token level flatters: 3 of 4
