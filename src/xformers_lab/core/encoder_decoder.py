"""Encoder-decoder language model (T5)."""

from __future__ import annotations

from torch import Tensor, nn

from xformers_lab.core.block import Stack
from xformers_lab.core.config import TransformerConfig
from xformers_lab.core.heads import LMHead
from xformers_lab.core.init import check_input_ids, init_weights
from xformers_lab.core.kv_cache import KVCache


class EncoderDecoderLM(nn.Module):
    """Encoder-decoder LM (T5): a bidirectional encoder reads the input; a causal decoder with
    cross-attention over the encoder output predicts the target. One token embedding is shared
    by both stacks and (when tied) the head; each stack has its own position scheme, so T5's
    relative-bias table is one per stack.

        input_ids ──embed──► encoder (bidirectional) ──► memory (B, S, D) ──┐
        decoder_input_ids ──embed──► decoder (causal; cross-attends memory) ──► head ──► logits

    `encode` and `decode` are separate so generation runs the encoder once per prompt.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
        self.encoder = Stack(cfg, cfg.n_layers, causal=False, cross=False)
        self.decoder = Stack(cfg, cfg.decoder_layers, causal=True, cross=True)
        self.head = LMHead(cfg, self.embed)
        init_weights(self, cfg)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        decoder_input_ids: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
        document_ids: Tensor | None = None,
        decoder_document_ids: Tensor | None = None,
    ) -> Tensor:
        """input_ids: (B, S), decoder_input_ids: (B, T) -> logits (B, T, V_padded).

        Masks are (B, S) / (B, T), 1 for real tokens; the encoder mask also hides padded
        encoder positions from cross-attention. document_ids (B, S) / decoder_document_ids
        (B, T): the document of each token of packed rows; every attention then stays within
        its document (the decoder reads only its document's encoder tokens).
        """
        return self.head(
            self.hidden_states(
                input_ids,
                attention_mask,
                decoder_input_ids,
                decoder_attention_mask,
                document_ids,
                decoder_document_ids,
            )
        )

    def summed_nats(self, input_ids: Tensor, labels: Tensor, **inputs: Tensor | None) -> Tensor:
        """Training loss: summed cross-entropy of `labels` (B, T) (-100: none) in nats, without
        materialising the logits (`LMHead.summed_nats`); keyword inputs as in `forward`."""
        return self.head.summed_nats(self.hidden_states(input_ids, **inputs), labels)

    def hidden_states(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        decoder_input_ids: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
        document_ids: Tensor | None = None,
        decoder_document_ids: Tensor | None = None,
    ) -> Tensor:
        """Final-norm decoder hidden states (B, T, D), before the LM head."""
        if decoder_input_ids is None:
            raise ValueError("an encoder-decoder needs decoder_input_ids (the shifted targets)")
        memory = self.encode(input_ids, attention_mask, document_ids)
        return self.decoder_hidden_states(
            decoder_input_ids,
            memory,
            memory_mask=attention_mask,
            attention_mask=decoder_attention_mask,
            document_ids=decoder_document_ids,
            memory_document_ids=document_ids,
        )

    def encode(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        document_ids: Tensor | None = None,
    ) -> Tensor:
        """Encoder output (B, S, D), final norm applied: the memory the decoder reads."""
        check_input_ids(input_ids, self.config)
        return self.encoder(
            self.embed(input_ids), attention_mask=attention_mask, document_ids=document_ids
        )

    def decode(self, decoder_input_ids: Tensor, memory: Tensor, **kwargs: Tensor | None) -> Tensor:
        """Logits (B, T, V_padded) of the decoder over `memory` (B, S, D) from `encode`;
        keyword arguments as in `decoder_hidden_states`."""
        return self.head(self.decoder_hidden_states(decoder_input_ids, memory, **kwargs))

    def decoder_hidden_states(
        self,
        decoder_input_ids: Tensor,
        memory: Tensor,
        *,
        memory_mask: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        cache: KVCache | None = None,
        document_ids: Tensor | None = None,
        memory_document_ids: Tensor | None = None,
    ) -> Tensor:
        """Final-norm decoder hidden states (B, T, D) over `memory` (B, S, D) from `encode`.

        memory_mask: (B, S) real encoder tokens; attention_mask: (B, T) real decoder tokens;
        position_ids: (T,) or (B, T) decoder positions (default 0..T-1). With a `cache` (from
        `new_cache`), decoder_input_ids are only the new tokens and the cross-attention keys
        and values of `memory` are computed once.
        """
        check_input_ids(decoder_input_ids, self.config)
        return self.decoder(
            self.embed(decoder_input_ids),
            attention_mask=attention_mask,
            position_ids=position_ids,
            memory=memory,
            memory_mask=memory_mask,
            cache=cache,
            document_ids=document_ids,
            memory_document_ids=memory_document_ids,
        )

    def new_cache(self) -> KVCache:
        """An empty KV cache for the decoder stack."""
        return KVCache(len(self.decoder.blocks))
