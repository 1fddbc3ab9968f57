"""Sequence classification: fine-tune an encoder to label whole texts (sentiment, topic, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xformers_lab.core import TransformerConfig
from xformers_lab.data.collators import ClassificationCollator
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.errors import UserError
from xformers_lab.estimates import RowShape
from xformers_lab.tasks.objective import Batch, ExampleEncoder, LossSums, Objective

if TYPE_CHECKING:
    from datasets import DatasetDict

POOLINGS = ("cls", "mean")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
INFERENCE_BATCH = 32
"""Texts per forward pass in `classify`."""


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


@dataclass(frozen=True)
class Prediction:
    """One text's class: its label (a name, or an id when the data had ids) and probability."""

    label: str | int
    probability: float
    probabilities: dict[str | int, float]
    """Every class's probability, by label."""


class Classification(Objective):
    """Cross-entropy over classes from the pooled encoder output; the encoder usually starts
    from a pretrained checkpoint (`init_from`). Examples are `text` and `label` (class ids from
    0, or names numbered in sorted order), one `<cls> text <sep>` row each, truncated to
    `data.seq_len`, padded per batch. Validation reports accuracy, and F1 of class 1 when there
    are two classes. `load()` offers `lab.classify(texts)`."""

    name = "classify"
    archs = frozenset({"encoder"})
    Options = ClassifyOptions
    fields = {"text": "text", "label": "any"}  # noqa: RUF012 (a ClassVar of the contract)
    verbs = ("classify",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options: ClassifyOptions = self.options
        self.classifier = ClassifierHead(
            self.model_config.d_model,
            options.num_labels,
            options.classifier_dropout,
            self.model_config.init_std,
        )
        self.label_names: list[str] | None = None
        """Class names by id, when the data named its classes (None: the data used ids)."""
        self.freeze_unused_lm_head()

    @classmethod
    def row_shape(cls, seq_len: int, options: ClassifyOptions) -> RowShape:
        """No vocabulary head: the classifier's FLOPs are negligible."""
        return RowShape(seq_len=seq_len, head_positions=0)

    @classmethod
    def collator(
        cls, tokenizer: Tokenizer, seq_len: int, options: ClassifyOptions
    ) -> ClassificationCollator:
        return ClassificationCollator(tokenizer, seq_len)

    @classmethod
    def encoder(cls, tokenizer: Tokenizer, options: ClassifyOptions) -> EncodeText:
        return EncodeText(tokenizer)

    @classmethod
    def from_head(
        cls, model_config: TransformerConfig, tokenizer: Tokenizer, head: dict[str, Any]
    ) -> Classification:
        objective = super().from_head(model_config, tokenizer, head)
        objective.label_names = head.get("label_names")
        return objective

    def head_config(self) -> dict[str, Any]:
        return {**super().head_config(), "label_names": self.label_names}

    def prepare_examples(self, splits: DatasetDict) -> DatasetDict:
        """Number the labels (names in sorted order, remembered for `classify`) and check they
        fit `task.num_labels`."""
        splits, self.label_names = number_labels(splits)
        largest = max(max(split["label"]) for split in splits.values())
        if largest >= self.options.num_labels:
            raise UserError(
                f"the data has labels up to {largest} but task.num_labels="
                f"{self.options.num_labels}; set task.num_labels={largest + 1}"
            )
        return splits

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, T) ids and mask -> class logits (B, num_labels)."""
        hidden = self.model.hidden_states(input_ids, attention_mask)
        return self.classifier(pool(hidden, attention_mask, self.options.pooling))

    def summed_loss(self, batch: Batch) -> LossSums:
        labels = batch["labels"]
        nats = F.cross_entropy(
            self(batch["input_ids"], batch["attention_mask"]), labels, reduction="sum"
        )
        return LossSums(nats, labels.new_tensor(labels.numel()), labels.numel())

    def validation_sums(self, batch: Batch) -> dict[str, Tensor]:
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
        return sums

    def metrics(self, totals: dict[str, Tensor]) -> dict[str, Tensor]:
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

    @torch.no_grad()
    def classify(self, texts: str | Sequence[str]) -> Prediction | list[Prediction]:
        """The class of each text, with its probability (one text: one `Prediction`)."""
        batch = [texts] if isinstance(texts, str) else list(texts)
        collate = ClassificationCollator(self.tokenizer, self.model_config.max_seq_len)
        device = next(self.parameters()).device
        predictions = []
        for start in range(0, len(batch), INFERENCE_BATCH):
            chunk = batch[start : start + INFERENCE_BATCH]
            rows = collate([{"input_ids": self.tokenizer.encode(t), "label": 0} for t in chunk])
            logits = self(rows["input_ids"].to(device), rows["attention_mask"].to(device))
            predictions += [self._prediction(row) for row in logits.float().softmax(-1).cpu()]
        return predictions[0] if isinstance(texts, str) else predictions

    def _prediction(self, probs: Tensor) -> Prediction:
        names = self.label_names or list(range(len(probs)))
        best = int(probs.argmax())
        return Prediction(
            label=names[best],
            probability=float(probs[best]),
            probabilities={name: float(p) for name, p in zip(names, probs, strict=True)},
        )


class EncodeText(ExampleEncoder):
    """`text` -> `input_ids` (no specials: the collator frames them)."""

    consumes = ("text",)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {"input_ids": self.tokenizer.encode_batch(batch["text"])}


def number_labels(splits: DatasetDict) -> tuple[DatasetDict, list[str] | None]:
    """Labels as int64 class ids, and the class names when the data named them.

    Integer (or boolean, or hub ClassLabel) labels are kept as they are; names (strings) are
    numbered in sorted order of the training split's names, a ClassLabel's in its own order.
    """
    from datasets import ClassLabel, Value

    feature = splits["train"].features["label"]
    if isinstance(feature, ClassLabel) or (
        isinstance(feature, Value) and feature.dtype in (*INT_DTYPES, "bool")
    ):
        ids = [id_ for split in splits.values() for id_ in split.unique("label")]
        if min(ids) < 0:
            raise UserError(f"labels must be class ids from 0 (or class names), found {min(ids)}")
        names = list(feature.names) if isinstance(feature, ClassLabel) else None
        return splits.cast_column("label", Value("int64")), names
    if not (isinstance(feature, Value) and feature.dtype in ("string", "large_string")):
        raise UserError(f"labels must be class ids from 0 or class names, not {feature}")
    names = sorted(splits["train"].unique("label"))
    number = {name: i for i, name in enumerate(names)}
    unseen = sorted(set(splits["validation"].unique("label")) - set(number))
    if unseen:
        raise UserError(f"validation labels {unseen} never occur in training; known: {names}")
    numbered = splits.map(
        lambda batch: {"label": [number[name] for name in batch["label"]]},
        batched=True,
        desc="numbering labels",
    )
    return numbered.cast_column("label", Value("int64")), names
