"""Scores of generated text against references: exact match, ROUGE-L (rouge-score), BLEU and
chrF (sacrebleu), as generation-based validation reports them."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import cache
from typing import Any


def text_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus-level scores of `predictions` against one reference each.

    exact_match: share of predictions equal to their reference (surrounding whitespace
    ignored); rougeL: mean ROUGE-L F1 (rouge-score's tokenizer: lower-cased words); bleu and
    chrf: sacrebleu's corpus BLEU and chrF (0 to 100).
    """
    import sacrebleu

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        return {}
    predictions = [p.strip() for p in predictions]
    references = [r.strip() for r in references]
    scorer = _rouge_scorer()
    pairs = zip(predictions, references, strict=True)
    rouge = [scorer.score(r, p)["rougeL"].fmeasure for p, r in pairs]
    exact = [p == r for p, r in zip(predictions, references, strict=True)]
    return {
        "exact_match": sum(exact) / len(exact),
        "rougeL": sum(rouge) / len(rouge),
        "bleu": sacrebleu.corpus_bleu(predictions, [references]).score,
        "chrf": sacrebleu.corpus_chrf(predictions, [references]).score,
    }


@cache
def _rouge_scorer() -> Any:
    from absl import logging as absl_logging
    from rouge_score import rouge_scorer, tokenizers

    # rouge-score imports absl, whose handler keeps the sys.stderr of that moment and closes it
    # when logging is reconfigured (Hydra does, for every job) unless it is sys.stderr then: a
    # captured or redirected stream, closed under its owner. Bind it to the process's own.
    absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__
    # rouge-score's default tokenizer (stemmer off) given explicitly: without one it logs
    # "Using default tokenizer." through absl, which first calls logging.basicConfig().
    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizers.DefaultTokenizer())
