"""Decoder-only language model (GPT, Llama)."""

from __future__ import annotations

from torch import Tensor, nn

from xformers_lab.core.block import Stack
from xformers_lab.core.config import TransformerConfig
from xformers_lab.core.heads import LMHead
from xformers_lab.core.init import check_input_ids, init_weights
from xformers_lab.core.kv_cache import KVCache


class DecoderLM(nn.Module):
    """Decoder-only causal LM (GPT, Llama): embed -> causal stack -> LM head."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
        self.decoder = Stack(cfg, cfg.n_layers, causal=True, cross=False)
        self.head = LMHead(cfg, self.embed)
        init_weights(self, cfg)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        document_ids: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """input_ids: (B, T) -> logits (B, T, V_padded).

        document_ids: (B, T) document of each token of a packed row; attention and positions
        then stay within each document. cache: see `hidden_states`.
        """
        hidden = self.hidden_states(input_ids, attention_mask, position_ids, document_ids, cache)
        return self.head(hidden)

    def summed_nats(
        self, input_ids: Tensor, labels: Tensor, document_ids: Tensor | None = None
    ) -> Tensor:
        """Training loss: summed next-token cross-entropy of `labels` (B, T) (-100: none), in
        nats, without materialising the logits (`LMHead.summed_nats`)."""
        hidden = self.hidden_states(input_ids, document_ids=document_ids)
        return self.head.summed_nats(hidden, labels)

    def hidden_states(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        document_ids: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Final-norm hidden states (B, T, D), before the LM head.

        With a `cache` (from `new_cache`), input_ids are only the new tokens; attention_mask
        then covers every token so far (B, S).
        """
        check_input_ids(input_ids, self.config)
        return self.decoder(
            self.embed(input_ids),
            attention_mask=attention_mask,
            position_ids=position_ids,
            document_ids=document_ids,
            cache=cache,
        )

    def new_cache(self) -> KVCache:
        """An empty KV cache for incremental decoding."""
        return KVCache(len(self.decoder.blocks))
