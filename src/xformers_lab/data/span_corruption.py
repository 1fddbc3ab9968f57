"""T5 span corruption (arXiv 1910.10683 sec. 3.1.4): noise masks, fixed lengths, the collator.

A window of raw tokens is split into alternating non-noise and noise spans (it always starts
with non-noise and ends with noise, as T5's `random_spans_noise_mask`). Each noise span is
replaced in the input by a unique sentinel; the target lists the sentinels, each followed by the
span it replaced:

    tokens    The  quick brown  fox jumps over  the lazy  dog
    noise              ^^^^^^^            ^^^^            ^^^
    inputs    The  quick <X0>   fox jumps <X1>  the lazy  <X2>  </s>
    targets   <X0> brown <X1>   over <X2> dog   </s>

The span count is a function of the window length alone, so every window of `tokens` raw tokens
becomes exactly `inputs` and `targets` tokens: batches carry no padding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from xformers_lab.data.collators import Collator, row_documents

if TYPE_CHECKING:
    from xformers_lab.data.tokenizers import Tokenizer


@dataclass(frozen=True)
class SpanLengths:
    """The fixed geometry of span-corrupted examples."""

    tokens: int
    """Raw tokens cut from the stream per example (the window length)."""
    inputs: int
    """Encoder input length: non-noise tokens, one sentinel per span, EOS."""
    targets: int
    """Decoder target length: one sentinel per span, the noise tokens, EOS."""
    noise_tokens: int
    noise_spans: int


def noise_counts(
    length: int, noise_density: float, mean_noise_span_length: float
) -> tuple[int, int]:
    """(noise tokens, noise spans) of a `length`-token window, as T5 rounds them: at least one
    noise and one non-noise token, at least one span."""
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(round(num_noise / mean_noise_span_length), 1)
    return num_noise, num_spans


def span_lengths_of_window(
    tokens_length: int, noise_density: float, mean_noise_span_length: float
) -> SpanLengths:
    """What a window of `tokens_length` raw tokens corrupts into."""
    noise, spans = noise_counts(tokens_length, noise_density, mean_noise_span_length)
    return SpanLengths(
        tokens=tokens_length,
        inputs=tokens_length - noise + spans + 1,
        targets=noise + spans + 1,
        noise_tokens=noise,
        noise_spans=spans,
    )


def compute_span_lengths(
    inputs_length: int,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    n_sentinels: int | None = None,
) -> SpanLengths:
    """The longest window whose corrupted input is `inputs_length` tokens, and its target length
    (T5's `random_spans_helper` / HF's `compute_input_and_target_lengths`).

    Raises ValueError when no window fits, when the noise is too dense for non-noise spans to
    separate the noise spans, or when the spans need more sentinels than `n_sentinels`.
    """
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
    if mean_noise_span_length < 1.0:
        raise ValueError(f"mean_noise_span_length must be >= 1, got {mean_noise_span_length}")
    if inputs_length < 3:
        raise ValueError(f"span corruption needs data.seq_len >= 3, got {inputs_length}")
    tokens_length = inputs_length - 1
    while (
        span_lengths_of_window(tokens_length + 1, noise_density, mean_noise_span_length).inputs
        <= inputs_length
    ):
        tokens_length += 1
    lengths = span_lengths_of_window(tokens_length, noise_density, mean_noise_span_length)
    if lengths.inputs != inputs_length:  # lengths grow by at most one per token: unreachable
        raise ValueError(f"no window corrupts into exactly {inputs_length} input tokens")
    if lengths.tokens - lengths.noise_tokens < lengths.noise_spans:
        raise ValueError(
            f"noise_density={noise_density} leaves {lengths.tokens - lengths.noise_tokens} "
            f"non-noise tokens for {lengths.noise_spans} spans; lower noise_density or raise "
            "mean_noise_span_length"
        )
    if n_sentinels is not None and lengths.noise_spans > n_sentinels:
        raise ValueError(
            f"seq_len={inputs_length} with noise_density={noise_density} and "
            f"mean_noise_span_length={mean_noise_span_length} makes {lengths.noise_spans} noise "
            f"spans but the tokenizer has {n_sentinels} sentinels; lower data.seq_len or "
            "raise mean_noise_span_length or tokenizer.n_sentinels"
        )
    return lengths


def random_spans_noise_mask(
    batch_size: int,
    length: int,
    noise_density: float,
    mean_noise_span_length: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """(batch_size, length) bool, True on noise: T5's `random_spans_noise_mask` for a batch.

    Noise and non-noise tokens are each cut into `noise_spans` segments at uniformly random
    points, then interleaved non-noise first, so the mean noise span is `mean_noise_span_length`.
    """
    num_noise, num_spans = noise_counts(length, noise_density, mean_noise_span_length)
    if min(num_noise, length - num_noise) < num_spans:
        raise ValueError(
            f"{length} tokens at noise_density={noise_density} cannot hold {num_spans} noise spans "
            "separated by non-noise tokens"
        )
    noise_lengths = _random_segmentation(num_noise, num_spans, batch_size, rng)  # (B, S)
    nonnoise_lengths = _random_segmentation(length - num_noise, num_spans, batch_size, rng)
    interleaved = np.stack([nonnoise_lengths, noise_lengths], axis=2).reshape(batch_size, -1)
    span_starts = np.cumsum(interleaved, axis=1)[:, :-1]  # (B, 2S - 1), all in [1, length)
    starts = np.zeros((batch_size, length), dtype=np.int64)
    np.put_along_axis(starts, span_starts, 1, axis=1)
    return np.cumsum(starts, axis=1) % 2 == 1  # odd-numbered spans are noise


def _random_segmentation(
    num_items: int, num_segments: int, batch_size: int, rng: np.random.Generator
) -> np.ndarray:
    """(batch_size, num_segments) lengths >= 1 summing to `num_items`: cuts at a uniformly random
    subset of the num_items - 1 gaps."""
    gaps = rng.random((batch_size, num_items - 1)).argsort(axis=1)[:, : num_segments - 1]
    cuts = np.sort(gaps + 1, axis=1)
    ends = np.full((batch_size, 1), num_items)
    return np.diff(np.concatenate([np.zeros_like(ends), cuts, ends], axis=1), axis=1)


def replace_spans(tokens: np.ndarray, mask: np.ndarray, sentinel_ids: np.ndarray) -> np.ndarray:
    """Each run of masked tokens becomes one sentinel (the i-th run in a row the i-th sentinel).
    Every row must hold the same number of runs and masked tokens (true of span noise masks)."""
    first = _run_starts(mask)
    run_index = np.cumsum(first, axis=1) - 1
    return collapse_spans(np.where(first, sentinel_ids[run_index.clip(min=0)], tokens), mask)


def collapse_spans(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each run of masked positions keeps only its first value: the layout `replace_spans`
    gives tokens, applied to anything aligned with them (their documents, say)."""
    return values[~mask | _run_starts(mask)].reshape(len(values), -1)


def _run_starts(mask: np.ndarray) -> np.ndarray:
    previous = np.pad(mask, ((0, 0), (1, 0)))[:, :-1]
    return mask & ~previous


class SpanCorruptionCollator(Collator):
    """Windows of `lengths.tokens` raw tokens -> T5 span-corruption examples:

        input_ids          (B, seq_len)     non-noise tokens and sentinels, then EOS
        decoder_input_ids  (B, target_len)  the labels shifted right after the start token (pad)
        labels             (B, target_len)  sentinels, each followed by its span, then EOS

    The random draws of each row come from a generator seeded by `seed`, the row's tokens and,
    from the map-style loader, its stream position: a row is always corrupted the same way
    whatever batch, rank or micro-batch it lands in (validation is comparable across
    evaluations; workers need no coordination; DDP and accumulation see the corruption of the
    equivalent single batch), repeated text differs by position, and training windows, whose
    grid shifts every epoch, get fresh noise.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        seq_len: int,
        *,
        noise_density: float = 0.15,
        mean_noise_span_length: float = 3.0,
        seed: int = 0,
    ) -> None:
        self.lengths = compute_span_lengths(
            seq_len, noise_density, mean_noise_span_length, tokenizer.n_sentinels
        )
        self.noise_density, self.mean_noise_span_length = noise_density, mean_noise_span_length
        self.seed = seed
        spans = self.lengths.noise_spans
        self.sentinel_ids = np.array([tokenizer.sentinel_id(i) for i in range(spans)])
        self.eos_id = tokenizer.eos_id
        self.decoder_start_id = tokenizer.pad_id  # T5 starts decoding from <pad>

    def collate(self, rows: Tensor, keys: Tensor | None = None) -> dict[str, Tensor]:
        # rows: (B, lengths.tokens)
        if rows.shape[1] != self.lengths.tokens:
            raise ValueError(
                f"span corruption expects rows of {self.lengths.tokens} tokens, got {rows.shape[1]}"
            )
        tokens = rows.numpy()
        row_keys = keys.tolist() if keys is not None else [None] * len(tokens)
        noise = np.concatenate(
            [
                random_spans_noise_mask(
                    1,
                    self.lengths.tokens,
                    self.noise_density,
                    self.mean_noise_span_length,
                    self._rng(row, key),
                )
                for row, key in zip(tokens, row_keys, strict=True)
            ]
        )
        eos = np.full((len(tokens), 1), self.eos_id)
        inputs = np.concatenate([replace_spans(tokens, noise, self.sentinel_ids), eos], axis=1)
        labels = np.concatenate([replace_spans(tokens, ~noise, self.sentinel_ids), eos], axis=1)
        start = np.full((len(tokens), 1), self.decoder_start_id)
        decoder_inputs = np.concatenate([start, labels[:, :-1]], axis=1)
        out = {
            "input_ids": torch.from_numpy(inputs).long(),  # (B, seq_len)
            "decoder_input_ids": torch.from_numpy(decoder_inputs).long(),  # (B, target_len)
            "labels": torch.from_numpy(labels).long(),  # (B, target_len)
        }
        if self.document_eos_id is not None:
            out.update(self._documents(row_documents(rows, self.document_eos_id).numpy(), noise))
        return out

    def document_ids(self, documents: Tensor) -> Tensor:
        """Declares data.document_mask support; the ids are laid out in `collate`, since they
        follow the spans drawn there."""
        raise NotImplementedError("span corruption sets document_ids in collate")

    @staticmethod
    def _documents(documents: np.ndarray, noise: np.ndarray) -> dict[str, Tensor]:
        """`document_ids` (B, seq_len) and `decoder_document_ids` (B, target_len) from the
        documents (B, L) of the raw tokens. A sentinel joins the document where its span starts;
        the final `</s>` the row's last document. A decoder position belongs to the document of
        its input token, as in causal LM packing: the position whose input ends a document
        predicts the next one's first target from its own document alone."""
        last = documents[:, -1:]
        encoder = np.concatenate([collapse_spans(documents, noise), last], axis=1)
        # A target's sentinel stands for the noise span that follows the non-noise run it
        # replaces: give each position the document of the next noise token.
        length = noise.shape[1]
        next_noise = np.where(noise, np.arange(length), length - 1)
        next_noise = np.minimum.accumulate(next_noise[:, ::-1], axis=1)[:, ::-1]
        ahead = np.take_along_axis(documents, next_noise, axis=1)
        targets = np.concatenate([collapse_spans(ahead, ~noise), last], axis=1)
        decoder = np.concatenate([targets[:, :1], targets[:, :-1]], axis=1)
        return {
            "document_ids": torch.from_numpy(encoder).long(),
            "decoder_document_ids": torch.from_numpy(decoder).long(),
        }

    def _rng(self, row: np.ndarray, key: int | None) -> np.random.Generator:
        digest = hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=8)
        digest.update(self.seed.to_bytes(8, "little", signed=True))
        if key is not None:
            digest.update(key.to_bytes(8, "little", signed=True))
        return np.random.default_rng(int.from_bytes(digest.digest(), "little"))
