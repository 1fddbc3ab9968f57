"""Sequence classification: fine-tune an encoder to label whole texts (sentiment, topic, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xformers_lab.data.collators import ClassificationCollator
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.tasks.base import CHECKPOINT_KEY, LanguageModelTask

POOLINGS = ("cls", "mean")


@dataclass(frozen=True, kw_only=True)
class ClassifyOptions:
    """`task=classify` keys."""

    num_labels: int = 2
    """Classes; labels in the data are ids 0 .. num_labels - 1 (or names, numbered in sorted
    order). With 2, validation also reports F1 of class 1."""
    pooling: str = "cls"
    """One vector per text: the `<cls>` position's hidden state (`cls`, BERT) or the mean over
    its real tokens (`mean`)."""
    classifier_dropout: float = 0.1
    """Dropout before each layer of the classification head."""

    def __post_init__(self) -> None:
        if self.num_labels < 2:
            raise ValueError(f"num_labels must be at least 2, got {self.num_labels}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; choose one of: cls, mean")
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {self.classifier_dropout}")


def classify_collator(
    tokenizer: Tokenizer, seq_len: int, options: ClassifyOptions
) -> ClassificationCollator:
    """Examples -> `<cls> text <sep>` rows of at most `seq_len` tokens, padded, with masks."""
    return ClassificationCollator(tokenizer, seq_len)


class ClassifierHead(nn.Module):
    """RoBERTa's head on the pooled vector: dropout -> dense -> tanh -> dropout -> classes."""

    def __init__(self, d_model: int, num_labels: int, dropout: float, init_std: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.dense = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, num_labels)
        for layer in (self.dense, self.out):
            nn.init.normal_(layer.weight, std=init_std)
            nn.init.zeros_(layer.bias)

    def forward(self, pooled: Tensor) -> Tensor:  # (B, D) -> (B, num_labels)
        return self.out(self.drop(torch.tanh(self.dense(self.drop(pooled)))))


def pool(hidden: Tensor, attention_mask: Tensor, how: str) -> Tensor:
    """(B, T, D) hidden states -> (B, D): the `<cls>` position, or the mean of real tokens."""
    if how == "cls":
        return hidden[:, 0]
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


class ClassifyTask(LanguageModelTask):
    """Cross-entropy over classes from the pooled encoder output; the encoder usually starts
    from a pretrained checkpoint (`init_from`). Validation reports accuracy, and F1 of class 1
    when there are two classes."""

    name = "classify"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        options: ClassifyOptions = self.options
        self.classifier = ClassifierHead(
            self.model_config.d_model,
            options.num_labels,
            options.classifier_dropout,
            self.model_config.init_std,
        )
        # The MLM head plays no part in classifying: frozen, it keeps its pretrained weights and
        # data-parallel training meets no parameter without a gradient. A tied decoder is the
        # token embedding, which trains as usual.
        embedding = {id(p) for p in self.model.embed.parameters()}
        for param in self.model.head.parameters():
            if id(param) not in embedding:
                param.requires_grad_(False)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, T) ids and mask -> class logits (B, num_labels)."""
        hidden = self.model.hidden_states(input_ids, attention_mask)
        return self.classifier(pool(hidden, attention_mask, self.options.pooling))

    def train_nats(self, batch: dict[str, Tensor]) -> Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        return F.cross_entropy(logits, batch["labels"], reduction="sum")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        labels = batch["labels"]
        logits = self(batch["input_ids"], batch["attention_mask"])
        predicted = logits.argmax(-1)
        sums = {
            "nats": F.cross_entropy(logits, labels, reduction="sum"),
            "examples": labels.new_tensor(labels.numel()),
            "correct": (predicted == labels).sum(),
        }
        if self.options.num_labels == 2:
            sums["true_pos"] = ((predicted == 1) & (labels == 1)).sum()
            sums["false_pos"] = ((predicted == 1) & (labels == 0)).sum()
            sums["false_neg"] = ((predicted == 0) & (labels == 1)).sum()
        self.accumulate_val(**sums)

    def val_metrics(self, totals: dict[str, Tensor]) -> dict[str, Tensor]:
        examples = totals["examples"].clamp(min=1)
        metrics = {
            "loss": (totals["nats"] / examples).float(),
            "accuracy": (totals["correct"] / examples).float(),
        }
        if "true_pos" in totals:
            errors = totals["false_pos"] + totals["false_neg"]
            metrics["f1"] = (
                2 * totals["true_pos"] / (2 * totals["true_pos"] + errors).clamp(min=1)
            ).float()
        return metrics

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        options: ClassifyOptions = self.options
        checkpoint[CHECKPOINT_KEY]["classifier"] = {
            "num_labels": options.num_labels,
            "pooling": options.pooling,
        }
