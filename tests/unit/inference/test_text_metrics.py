"""Generation metrics on answers known by hand."""

from __future__ import annotations

import pytest

from xformers_lab.inference.text_metrics import text_metrics


def test_identical_texts_score_full_marks() -> None:
    texts = ["the cat sat on the mat", "PER: Ada Lovelace; LOC: Paris"]
    scores = text_metrics(texts, texts)
    assert scores == pytest.approx(
        {"exact_match": 1.0, "rougeL": 1.0, "bleu": 100.0, "chrf": 100.0}
    )


def test_exact_match_ignores_surrounding_whitespace_only() -> None:
    scores = text_metrics([" abc\n", "abd", "ABC"], ["abc", "abc", "abc"])
    assert scores["exact_match"] == pytest.approx(1 / 3)


def test_rouge_l_is_the_f1_of_the_longest_common_subsequence() -> None:
    # words: prediction "a b c d", reference "a c d e": LCS "a c d" = 3; P = 3/4, R = 3/4
    scores = text_metrics(["a b c d"], ["a c d e"])
    assert scores["rougeL"] == pytest.approx(0.75)
    assert 0 < scores["chrf"] < 100 and scores["exact_match"] == 0


def test_no_records_no_metrics_and_a_length_mismatch_is_refused() -> None:
    assert text_metrics([], []) == {}
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        text_metrics(["a", "b"], ["a"])


def test_scoring_leaves_no_handler_bound_to_a_passing_stream() -> None:
    """absl (rouge-score's) would close the sys.stderr of its import when Hydra reconfigures
    logging for the next job: under pytest, the capture of all later tests."""
    import logging
    import sys

    from absl import logging as absl_logging

    before = list(logging.root.handlers)
    text_metrics(["a b"], ["a c"])
    assert absl_logging.get_absl_handler().python_handler.stream is sys.__stderr__
    assert logging.root.handlers == before
