"""Encoder-only masked language model (BERT, RoBERTa)."""

from __future__ import annotations

from torch import Tensor, nn

from xformers_lab.core.block import Stack
from xformers_lab.core.config import TransformerConfig
from xformers_lab.core.heads import MLMHead
from xformers_lab.core.init import check_input_ids, init_weights


class EncoderLM(nn.Module):
    """Encoder-only masked LM: embed -> bidirectional stack -> MLM head.

        input_ids (B, T) --embed--> (B, T, D) --Stack(causal=False)--> hidden (B, T, D)
        hidden[masked positions] (N, D) --MLMHead--> logits (N, V_padded)

    `attention_mask` (B, T), 1 for real tokens, keeps padding out of every query's view. Training
    calls `masked_logits`, which runs the head on the masked positions only; `forward` runs it
    everywhere (inference, fill-mask on short texts).
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
        self.encoder = Stack(cfg, cfg.n_layers, causal=False, cross=False)
        self.head = MLMHead(cfg, self.embed)
        init_weights(self, cfg)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        document_ids: Tensor | None = None,
    ) -> Tensor:
        """input_ids: (B, T) -> MLM logits (B, T, V_padded) at every position."""
        hidden = self.hidden_states(input_ids, attention_mask, position_ids, document_ids)
        return self.mlm_logits(hidden)

    def hidden_states(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        document_ids: Tensor | None = None,
    ) -> Tensor:
        """Encoder output (B, T, D), before any head. document_ids: (B, T) document of each
        token of a packed row; attention and positions then stay within each document."""
        check_input_ids(input_ids, self.config)
        return self.encoder(
            self.embed(input_ids),
            attention_mask=attention_mask,
            position_ids=position_ids,
            document_ids=document_ids,
        )

    def masked_logits(
        self,
        input_ids: Tensor,
        positions: Tensor,
        attention_mask: Tensor | None = None,
        document_ids: Tensor | None = None,
    ) -> Tensor:
        """Logits (B, K, V_padded) at `positions` (B, K) only: at 15% masking the head, the
        largest matmul of a small BERT, does a seventh of its work. One call, so FSDP gathers
        the embedding (tied to the head) once for both uses."""
        hidden = self.hidden_states(input_ids, attention_mask, document_ids=document_ids)
        index = positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        return self.mlm_logits(hidden.gather(1, index))

    def mlm_logits(self, hidden: Tensor) -> Tensor:
        """(..., D) hidden states, e.g. gathered at masked positions -> (..., V_padded) logits."""
        return self.head(hidden)
