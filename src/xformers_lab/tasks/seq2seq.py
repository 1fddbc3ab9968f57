"""Supervised sequence-to-sequence fine-tuning of encoder-decoders (T5): translation,
summarization, question answering, NER as text-to-text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from xformers_lab.data.collators import IGNORE_INDEX
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.errors import UserError
from xformers_lab.estimates import RowShape
from xformers_lab.tasks.objective import (
    Batch,
    ExampleCollator,
    ExampleEncoder,
    GenerationEval,
    GenerativeObjective,
    LossSums,
)
from xformers_lab.tasks.span import FP16_WARNING

if TYPE_CHECKING:
    from datasets import Dataset

    from xformers_lab.data.config import DataConfig, TokenizerConfig


@dataclass(frozen=True, kw_only=True)
class Seq2SeqOptions(GenerationEval):
    """`task=seq2seq` keys (and the generation-based validation keys of `GenerationEval`)."""

    source_prefix: str = ""
    """Text put before every source, in training and by `generate` (T5's `"summarize: "`,
    `"translate English to German: "`)."""
    max_target_len: int = 128
    """Target tokens at most, `</s>` included; longer targets are cut (counted, reported)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_target_len < 2:
            raise ValueError(f"max_target_len must leave room for </s>, got {self.max_target_len}")


class EncodeSourceTarget(ExampleEncoder):
    """`source`, `target` -> their ids (the source after `source_prefix`; no specials, no
    truncation: the collator frames them), keeping both texts for validation records."""

    consumes = ("source", "target")

    def __init__(self, tokenizer: Tokenizer, source_prefix: str) -> None:
        super().__init__(tokenizer)
        self.source_prefix = source_prefix

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        sources = [self.source_prefix + source for source in batch["source"]]
        return {
            "input_ids": self.tokenizer.encode_batch(sources),
            "labels": self.tokenizer.encode_batch(batch["target"]),
            "source": batch["source"],
            "reference": batch["target"],
        }


class Seq2SeqCollator(ExampleCollator):
    """Encoded examples -> one padded batch, as transformers' `DataCollatorForSeq2Seq`:

        input_ids          (B, S)  source </s>, S <= seq_len, right-padded with <pad>
        attention_mask     (B, S)  1 for real tokens
        decoder_input_ids  (B, T)  <pad> target: the labels shifted right (T5 starts from pad)
        labels             (B, T)  target </s>, T <= max_target_len; IGNORE_INDEX at padding

    plus the batch's `sources` and `references` (text) for generation-based validation.
    `prepare` cuts sources and targets to their limits (keeping `</s>`), counting each.
    """

    def __init__(self, tokenizer: Tokenizer, seq_len: int, max_target_len: int) -> None:
        if seq_len < 2:
            raise ValueError(f"seq_len must leave room for </s>, got {seq_len}")
        self.seq_len, self.max_target_len = seq_len, max_target_len
        self.eos_id, self.pad_id = tokenizer.eos_id, tokenizer.pad_id

    def prepare(self, examples: Dataset, split: str) -> tuple[Dataset, list[str]]:
        long_sources = sum(len(ids) >= self.seq_len for ids in examples["input_ids"])
        long_targets = sum(len(ids) >= self.max_target_len for ids in examples["labels"])
        framed = examples.map(self._frame, batched=True, desc="framing")
        notes = []
        if long_sources:
            notes.append(
                f"{split}: {long_sources} of {len(examples)} sources cut to data.seq_len="
                f"{self.seq_len} tokens"
            )
        if long_targets:
            notes.append(
                f"{split}: {long_targets} of {len(examples)} targets cut to "
                f"task.max_target_len={self.max_target_len} tokens"
            )
        return framed, notes

    def _frame(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """`source </s>` and `target </s>` within their limits."""
        return {
            "input_ids": [[*ids[: self.seq_len - 1], self.eos_id] for ids in batch["input_ids"]],
            "labels": [[*ids[: self.max_target_len - 1], self.eos_id] for ids in batch["labels"]],
        }

    def __call__(self, examples: list[dict[str, Any]]) -> Batch:
        sources = [torch.as_tensor(ex["input_ids"], dtype=torch.long) for ex in examples]
        targets = [torch.as_tensor(ex["labels"], dtype=torch.long) for ex in examples]
        start = torch.tensor([self.pad_id])
        shifted = [torch.cat([start, target[:-1]]) for target in targets]
        input_ids = pad_sequence(sources, batch_first=True, padding_value=self.pad_id)
        lengths = torch.tensor([len(source) for source in sources])
        return {
            "input_ids": input_ids,
            "attention_mask": (torch.arange(input_ids.shape[1]) < lengths[:, None]).long(),
            "decoder_input_ids": pad_sequence(shifted, batch_first=True, padding_value=self.pad_id),
            "labels": pad_sequence(targets, batch_first=True, padding_value=IGNORE_INDEX),
            "sources": [ex.get("source", "") for ex in examples],  # type: ignore[dict-item]
            "references": [ex.get("reference", "") for ex in examples],  # type: ignore[dict-item]
        }


class Seq2Seq(GenerativeObjective):
    """Cross-entropy of the decoder over each example's target, teacher-forced on the target
    shifted right, through the fused head (no logits in training). Examples are `source` and
    `target` (`data.source_field`, `data.target_field`), one row each, padded per batch.
    Validation reports `val/loss` and `val/ppl` per target token (`</s>` included) and, on
    `task.eval_examples` generated examples, exact match, ROUGE-L, BLEU and chrF."""

    name = "seq2seq"
    archs = frozenset({"encoder_decoder"})
    Options = Seq2SeqOptions
    fields = {"source": "text", "target": "text"}  # noqa: RUF012 (a ClassVar of the contract)

    @classmethod
    def check(cls, data: DataConfig, tokenizer: TokenizerConfig, options: Seq2SeqOptions) -> None:
        if data.seq_len < 2:
            raise UserError("task=seq2seq needs data.seq_len >= 2 (source and </s>)")

    @classmethod
    def row_shape(cls, seq_len: int, options: Seq2SeqOptions) -> RowShape:
        """At most: batches are padded to their longest example."""
        return RowShape(seq_len=seq_len, target_len=options.max_target_len)

    @classmethod
    def collator(
        cls, tokenizer: Tokenizer, seq_len: int, options: Seq2SeqOptions
    ) -> Seq2SeqCollator:
        return Seq2SeqCollator(tokenizer, seq_len, options.max_target_len)

    @classmethod
    def encoder(cls, tokenizer: Tokenizer, options: Seq2SeqOptions) -> EncodeSourceTarget:
        return EncodeSourceTarget(tokenizer, options.source_prefix)

    def fit_warnings(self, precision: str) -> list[str]:
        return [FP16_WARNING] if precision.startswith("16") else []

    def prompt_ids(self, prompt: str, chat: bool = True) -> list[int]:
        """`source_prefix prompt </s>`, as the sources it trained on."""
        text = self.options.source_prefix + prompt
        return [*self.tokenizer.encode(text, parse_special=True), self.tokenizer.eos_id]

    def batch_tokens(self, batch: Batch) -> int:
        """Encoder input plus decoder target tokens (padding included: from shapes)."""
        return batch["input_ids"].numel() + batch["labels"].numel()

    def summed_loss(self, batch: Batch) -> LossSums:
        labels = batch["labels"]
        nats = self.model.summed_nats(
            batch["input_ids"],
            labels,
            attention_mask=batch["attention_mask"],
            decoder_input_ids=batch["decoder_input_ids"],
        )
        return LossSums(nats, (labels != IGNORE_INDEX).sum(), labels.numel())

    def validation_sums(self, batch: Batch) -> dict[str, Tensor]:
        nats, targets, _ = self.summed_loss(batch)
        return {"nats": nats, "tokens": targets}

    def predict(self, batch: Batch, limit: int) -> list[dict[str, Any]]:
        """Generate the targets of the batch's first `limit` examples from their sources."""
        lengths = batch["attention_mask"][:limit].sum(1).tolist()
        prompts = [row[:n].tolist() for row, n in zip(batch["input_ids"], lengths, strict=False)]
        predictions = self.complete(prompts)
        return [
            {"source": source, "reference": reference, "prediction": prediction}
            for source, reference, prediction in zip(
                batch["sources"], batch["references"], predictions, strict=False
            )
        ]
