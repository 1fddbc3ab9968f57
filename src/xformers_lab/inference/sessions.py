"""Decoding sessions: run a model one new token at a time, with or without a KV cache.

A session owns everything that grows during decoding (tokens, masks, positions, the cache) so
the search algorithms (greedy, sampling, beam) are the same for decoders and encoder-decoders.
With the cache a step costs one position; without it the whole sequence is recomputed (kept for
tests and benchmarks). Logits are computed for the last position only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DecoderSession:
    """Decoder-only LM over left-padded prompts: positions count real tokens only."""

    def __init__(self, model: nn.Module, use_cache: bool) -> None:
        self.model = model
        self.cache = model.new_cache() if use_cache else None

    def start(self, prompt: Tensor, mask: Tensor) -> Tensor:
        """prompt, mask: (B, P) left-padded -> next-token logits (B, V)."""
        self.tokens, self.mask = prompt, mask
        self.padded = not bool(mask.all())  # without padding no mask is needed at any step
        self.positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return self._logits(prompt, self.positions)

    def step(self, next_ids: Tensor) -> Tensor:
        """Append (B,) tokens -> logits (B, V) for the token after them."""
        new_position = self.positions[:, -1:] + 1
        self.tokens = torch.cat((self.tokens, next_ids[:, None]), dim=1)
        self.mask = torch.cat((self.mask, torch.ones_like(self.mask[:, :1])), dim=1)
        self.positions = torch.cat((self.positions, new_position), dim=1)
        if self.cache is None:
            return self._logits(self.tokens, self.positions)
        return self._logits(next_ids[:, None], new_position)

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows `index` (beam search)."""
        self.tokens, self.mask = self.tokens[index], self.mask[index]
        self.positions = self.positions[index]
        if self.cache is not None:
            self.cache.reorder(index)

    def _logits(self, ids: Tensor, positions: Tensor) -> Tensor:
        mask = self.mask if self.padded else None
        hidden = self.model.hidden_states(
            ids, attention_mask=mask, position_ids=positions, cache=self.cache
        )
        return self.model.head(hidden[:, -1])


class EncoderDecoderSession:
    """Encoder-decoder LM: the encoder runs once per prompt; the decoder starts from
    `decoder_start_id` (T5 uses pad) and grows one token per step."""

    def __init__(self, model: nn.Module, use_cache: bool, decoder_start_id: int) -> None:
        self.model = model
        self.cache = model.new_cache() if use_cache else None
        self.decoder_start_id = decoder_start_id

    def start(self, prompt: Tensor, mask: Tensor) -> Tensor:
        """prompt, mask: (B, S) encoder input -> logits (B, V) of the first target token."""
        self.memory, self.memory_mask = self.model.encode(prompt, mask), mask
        self.tokens = torch.full_like(prompt[:, :1], self.decoder_start_id)
        return self._logits(self.tokens)

    def step(self, next_ids: Tensor) -> Tensor:
        self.tokens = torch.cat((self.tokens, next_ids[:, None]), dim=1)
        return self._logits(self.tokens if self.cache is None else next_ids[:, None])

    def reorder(self, index: Tensor) -> None:
        self.tokens = self.tokens[index]
        self.memory, self.memory_mask = self.memory[index], self.memory_mask[index]
        if self.cache is not None:
            self.cache.reorder(index)

    def _logits(self, ids: Tensor) -> Tensor:
        logits = self.model.decode(ids, self.memory, memory_mask=self.memory_mask, cache=self.cache)
        return logits[:, -1]
