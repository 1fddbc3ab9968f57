"""Loss, perplexity and bits per byte of a corpus under a decoder, with a sliding window.

A document longer than the model's context is scored in windows of `max_len + 1` tokens that
start `stride` tokens apart; each window scores only the tokens no earlier window scored, with
the tokens before them as context (transformers' "Perplexity of fixed-length models" guide).
`stride = max_len` gives disjoint windows (fastest); a smaller stride gives every token more
context and a lower, truer perplexity. Each document starts after the token that documents
follow in training (`</s>`, or a distinct BOS), so its first token is scored too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.evaluation.batching import length_batches
from xformers_lab.evaluation.scoring import Pair, score_pairs


@dataclass(frozen=True)
class CorpusScore:
    """Totals over a corpus; the reported figures derive from them."""

    nats: float
    """Summed negative log-likelihood of every scored token."""
    tokens: int
    bytes: int
    """UTF-8 bytes of the documents' text."""
    documents: int
    windows: int

    @property
    def loss(self) -> float:
        """Mean nats per token."""
        return self.nats / self.tokens

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    @property
    def bits_per_byte(self) -> float:
        """Tokenizer-independent: comparable across vocabularies."""
        return self.nats / math.log(2) / self.bytes

    def metrics(self) -> dict[str, float | int]:
        return {
            "loss": self.loss,
            "perplexity": self.perplexity,
            "bits_per_byte": self.bits_per_byte,
            "tokens": self.tokens,
            "bytes": self.bytes,
            "documents": self.documents,
            "windows": self.windows,
        }


def windows(ids: list[int], max_len: int, stride: int) -> list[Pair]:
    """(context, scored tokens) windows over `ids`, whose first id is never scored: every other
    id is scored exactly once, with up to `max_len` ids before it in its window."""
    if not 0 < stride <= max_len:
        raise ValueError(f"stride must be in [1, max_len={max_len}], got {stride}")
    pairs: list[Pair] = []
    scored_until = 1
    for begin in range(0, len(ids), stride):
        end = min(begin + max_len + 1, len(ids))
        if end > scored_until:
            pairs.append((ids[begin:scored_until], ids[scored_until:end]))
            scored_until = end
        if end == len(ids):
            break
    return pairs


def corpus_score(
    model: nn.Module,
    tokenizer: Tokenizer,
    documents: Iterable[str],
    *,
    stride: int,
    batch_size: int | None,
    max_batch_tokens: int,
) -> CorpusScore:
    """Score every document of `documents` (a decoder's `max_seq_len` tokens of context)."""
    max_len = model.config.max_seq_len
    pairs: list[Pair] = []
    n_bytes = n_documents = 0
    for text in documents:
        if not text:
            continue
        ids = [tokenizer.document_start_id, *tokenizer.encode(text)]
        pairs += windows(ids, max_len, stride)
        n_bytes += len(text.encode("utf-8"))
        n_documents += 1
    nats = 0.0
    lengths = [len(context) + len(scored) for context, scored in pairs]
    for batch in length_batches(lengths, batch_size, max_batch_tokens):
        scores = score_pairs(model, [pairs[i] for i in batch], max_len, tokenizer.pad_id)
        nats -= sum(score.logprob for score in scores)
    tokens = sum(len(scored) for _, scored in pairs)
    return CorpusScore(nats, tokens, n_bytes, n_documents, len(pairs))
