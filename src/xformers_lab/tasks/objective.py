"""The objective contract: everything the training shell, the estimates and `load()` need to know
about one objective, declared in one class.

An objective is one module in `xformers_lab/tasks/` named as its `task.name`, defining one
`Objective` subclass, plus one YAML in `conf/task/`. Nothing else names it: the shell finds the
class by that name (`objective_class`), and `load()` finds it by the name saved in a checkpoint.
Objectives import torch and the data helpers only, never Lightning, so `load()` can rebuild a
task head without it; the Lightning shell (`training/module.py`) wraps any of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.estimates import RowShape
from xformers_lab.inference.generation import GenerationConfig, frame_prompt, generate_ids
from xformers_lab.typed_config import build

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

    from xformers_lab.data.config import DataConfig, TokenizerConfig

Batch = dict[str, Tensor]
Collate = Callable[[Any], Batch]
"""A batch of packed rows (packed objectives) or of encoded examples -> the tensors of one step."""


@dataclass(frozen=True, kw_only=True)
class NoOptions:
    """For objectives whose task config holds nothing but `name`."""


@dataclass(frozen=True)
class Tracked:
    """The validation metric that picks `best.ckpt` and the summary's `best_*` figures."""

    metric: str = "loss"
    """Logged as `val/<metric>`."""
    mode: Literal["min", "max"] = "min"

    def better(self, a: float, b: float) -> bool:
        return a < b if self.mode == "min" else a > b


@dataclass(frozen=True)
class Windows:
    """How a packed objective cuts the token stream: windows of `block_len` tokens whose starts
    are `stride` apart."""

    block_len: int
    stride: int


GENERATION_METRICS = ("exact_match", "rougeL", "bleu", "chrf")
"""What generation-based validation reports (`inference/text_metrics.py`), higher is better."""


@dataclass(frozen=True, kw_only=True)
class GenerationEval:
    """Task keys of objectives whose validation also generates (`GenerativeObjective`): a
    subclass's `Options` inherits them."""

    eval_examples: int = 64
    """Validation examples the model completes at every validation (greedy, or beam search),
    scored against their references; 0 turns generation off (teacher-forced val/loss only)."""
    eval_num_beams: int = 1
    """1: greedy decoding; more: beam search with this many beams."""
    eval_max_new_tokens: int = 128
    """Tokens generated per example at most (`</s>` ends one sooner)."""
    monitor: str = "exact_match"
    """The val metric that picks best.ckpt, the summary's best_* and predictions.jsonl:
    exact_match, rougeL, bleu, chrf (higher is better) or loss (lower is better)."""

    def __post_init__(self) -> None:
        if self.eval_examples < 0:
            raise ValueError(f"eval_examples must be >= 0, got {self.eval_examples}")
        if self.eval_num_beams < 1 or self.eval_max_new_tokens < 1:
            raise ValueError("eval_num_beams and eval_max_new_tokens must be positive")
        if self.monitor not in ("loss", *GENERATION_METRICS):
            choices = ", ".join(("loss", *GENERATION_METRICS))
            raise ValueError(f"unknown monitor {self.monitor!r}; choose one of: {choices}")
        if self.monitor != "loss" and self.eval_examples == 0:
            raise ValueError(
                f"monitor={self.monitor} is measured on generated examples: set eval_examples "
                "> 0, or monitor=loss"
            )

    @property
    def tracked(self) -> Tracked:
        return Tracked(self.monitor, "min" if self.monitor == "loss" else "max")


class LossSums(NamedTuple):
    """A batch's loss as the shell normalises it over micro-batches and ranks."""

    nats: Tensor
    """Summed loss over the batch's targets (scalar, differentiable)."""
    targets: Tensor
    """How many targets `nats` sums over (scalar, on device: read without a host sync)."""
    slots: int
    """Target positions the batch has room for, from shapes alone: the unit the backward pass
    divides by, which keeps gradients at the usual magnitude (fp16 loss scaling)."""


OBJECTIVES: dict[str, type[Objective]] = {}
"""Every objective class imported so far, by name (filled by `Objective.__init_subclass__`)."""


class Objective(nn.Module):
    """Base of every objective: the model it trains, its heads, its loss and its metrics.

    Class attributes declare the objective to the shell; methods split into config time
    (classmethods: checks, data layout, FLOPs), training (loss, validation sums, metrics) and
    inference (`from_head`, the `verbs` `load()` exposes). Submodules are the checkpoint's
    weights (`model.*`, heads); frozen helper models (a teacher, a reference policy) are passed
    in `helpers`, kept apart from the submodules, so they are neither saved nor trained.
    Objectives hold no parameters or buffers of their own outside submodules.

    Args:
        model_config: the architecture; `self.model` is built from it.
        tokenizer: the run's tokenizer (it travels inside the checkpoint).
        options: an instance of `Options`, the task config's typed keys.
        helpers: frozen models by name, as `helper_checkpoints` named them.
    """

    name: ClassVar[str]
    """`task=<name>`; also the module's name in `xformers_lab.tasks`."""
    archs: ClassVar[frozenset[str]]
    """`model.arch` values it trains: decoder, encoder, encoder_decoder."""
    Options: ClassVar[type] = NoOptions
    """Frozen dataclass of the task config's keys besides `name`, validated like every group."""
    fields: ClassVar[Mapping[str, str]] = {}
    """Empty: trains on a packed stream of text. Otherwise examples with named fields, one per
    row: role -> what it holds (`text`, `words` or `any`; see `data/sources.py`), read from
    the column `data.<role>_field` (default: the role's name)."""
    best: Tracked = Tracked()
    """The metric that picks `best.ckpt`; an instance's may come from its options (`tracked`)."""
    generative: ClassVar[bool] = False
    """Its model writes text worth sampling during training (the W&B samples table)."""
    verbs: ClassVar[tuple[str, ...]] = ()
    """Methods `load()` offers on a checkpoint of this objective (`lab.classify(...)`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            OBJECTIVES[cls.name] = cls

    def __init__(
        self,
        model_config: TransformerConfig,
        tokenizer: Tokenizer,
        options: Any,
        helpers: Mapping[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.model_config = model_config
        self.tokenizer = tokenizer
        self.options = options
        self.model = build_model(model_config)
        self.helpers = dict(helpers or {})  # a dict, not submodules: never saved or trained
        for helper in self.helpers.values():
            helper.eval().requires_grad_(False)
        self.best = self.tracked(options)
        self._token_bytes: Tensor | None = None

    # -- config time -------------------------------------------------------------------------

    @classmethod
    def check(cls, data: DataConfig, tokenizer: TokenizerConfig, options: Any) -> None:
        """Raise `UserError` when this objective cannot train on `data` with `tokenizer`."""

    @classmethod
    def tracked(cls, options: Any) -> Tracked:
        """The validation metric that picks `best.ckpt` for these options (`best` unless the
        options choose one, as `task.monitor` does)."""
        return cls.best

    @classmethod
    def helper_checkpoints(cls, options: Any) -> dict[str, str]:
        """Checkpoints of the frozen helper models it needs, by name (read once, at config
        time)."""
        return {}

    @classmethod
    def windows(cls, seq_len: int, options: Any) -> Windows:
        """Packed objectives: the stream windows that become rows of `data.seq_len`."""
        return Windows(seq_len, seq_len)

    @classmethod
    def row_shape(cls, seq_len: int, options: Any) -> RowShape:
        """What one training row feeds the model: the FLOPs and memory estimates read it."""
        return RowShape(seq_len=seq_len)

    @classmethod
    def collator(cls, tokenizer: Tokenizer, seq_len: int, options: Any) -> Collate:
        """The collate function of its batches."""
        raise NotImplementedError

    @classmethod
    def encoder(cls, tokenizer: Tokenizer, options: Any) -> ExampleEncoder:
        """Examples objectives: tokenizes a batch of examples once, before training."""
        raise NotImplementedError

    @classmethod
    def from_head(
        cls, model_config: TransformerConfig, tokenizer: Tokenizer, head: dict[str, Any]
    ) -> Objective:
        """The objective rebuilt from a checkpoint's `head_config()`, for inference (without
        helpers: inference needs none)."""
        names = {f.name for f in fields(cls.Options)}
        options = build(cls.Options, {k: v for k, v in head.items() if k in names}, "task")
        return cls(model_config, tokenizer, options)

    # -- data --------------------------------------------------------------------------------

    def prepare_examples(self, splits: DatasetDict) -> DatasetDict:
        """Examples objectives: check and convert the loaded splits (columns named by role)
        before they are encoded; may learn head config from them (a classifier's labels)."""
        return splits

    def head_config(self) -> dict[str, Any]:
        """What `from_head` needs beyond the model config, saved in every checkpoint: the
        options, and whatever the objective learnt from its data."""
        return asdict(self.options)

    def fit_warnings(self, precision: str) -> list[str]:
        """Advice printed once when training starts under `precision`."""
        return []

    # -- inference ---------------------------------------------------------------------------

    def prompt_ids(self, prompt: str, chat: bool = True) -> list[int]:
        """The ids the model reads for a user's prompt, framed as this objective trained it (a
        chat template, a source prefix); `generate` and `lab.generate` use it. `chat=False`
        turns a chat template off. Default: `frame_prompt` (`</s> prompt` for a decoder,
        `prompt </s>` for an encoder-decoder)."""
        return frame_prompt(self.tokenizer, prompt, self.model_config.arch == "encoder_decoder")

    def completion_text(self, ids: list[int]) -> str:
        """The text of generated ids, as `generate` shows it. Default: specials shown (a span
        corruption T5 answers in sentinels)."""
        return self.tokenizer.decode(ids)

    # -- training ----------------------------------------------------------------------------

    def batch_tokens(self, batch: Batch) -> int:
        """Tokens this batch trains on, from its shape (no device sync)."""
        return batch["input_ids"].numel()

    def summed_loss(self, batch: Batch) -> LossSums:
        """The batch's summed training loss and its target count."""
        raise NotImplementedError

    def validation_sums(self, batch: Batch) -> dict[str, Tensor]:
        """Per-batch sums (nats, counts, ...) that `metrics` turns into the epoch's metrics."""
        raise NotImplementedError

    def prediction_budget(self) -> int:
        """Validation examples to generate and score per validation (0: none)."""
        return 0

    def predict(self, batch: Batch, limit: int) -> list[dict[str, Any]]:
        """Generation-based validation: complete up to `limit` examples of this validation
        batch; one record per example, `{"source", "reference", "prediction"}` (the shell
        scores them with `prediction_metrics` and writes the best validation's records to
        `predictions.jsonl`)."""
        return []

    def prediction_metrics(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """The epoch's generation metrics from every rank's records."""
        from xformers_lab.inference.text_metrics import text_metrics

        return text_metrics([r["prediction"] for r in records], [r["reference"] for r in records])

    def metrics(self, totals: dict[str, Tensor]) -> dict[str, Tensor]:
        """Validation metrics from the epoch's summed counters (all batches, all ranks);
        `nats`/`tokens` give loss and perplexity, `byte_nats`/`bytes` bits per byte."""
        loss = totals["nats"] / totals["tokens"].clamp(min=1)
        metrics = {"loss": loss.float(), "ppl": loss.exp().float()}
        if "byte_nats" in totals:
            bits = totals["byte_nats"] / math.log(2)
            metrics["bpb"] = (bits / totals["bytes"].clamp(min=1)).float()
        return metrics

    def freeze_unused_lm_head(self) -> None:
        """For objectives with a head of their own (classifier, tagger, ...): the LM head plays
        no part, so it keeps its pretrained weights and data-parallel training meets no
        parameter without a gradient. A tied decoder is the token embedding, which trains."""
        embedding = {id(p) for p in self.model.embed.parameters()}
        for param in self.model.head.parameters():
            if id(param) not in embedding:
                param.requires_grad_(False)

    def byte_sums(self, token_losses: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """Nats and UTF-8 bytes of the targets that stand for text (special tokens excluded)."""
        if self._token_bytes is None or self._token_bytes.device != targets.device:
            table = torch.tensor(self.tokenizer.token_bytes(), dtype=torch.long)
            self._token_bytes = table.to(targets.device)
        n_bytes = self._token_bytes[targets.clamp(min=0)] * (targets >= 0)
        return {"byte_nats": (token_losses * (n_bytes > 0)).sum(), "bytes": n_bytes.sum()}


class ExampleEncoder:
    """Tokenizes examples once (a `datasets.map` function over batches). A class, not a
    closure, so `datasets` can pickle it and fingerprint its cache by the tokenizer and options.

    Subclasses return new columns from `__call__` and list the raw columns they consume in
    `consumes` (dropped after encoding).
    """

    consumes: tuple[str, ...] = ()

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        raise NotImplementedError


class ExampleCollator:
    """Base of collators of encoded examples that shape them to `data.seq_len` once, before
    batching: `prepare` sees each encoded split whole (truncate, drop, pack) and says what it
    changed; `__call__` pads a batch of what it returned."""

    def prepare(self, examples: Dataset, split: str) -> tuple[Dataset, list[str]]:
        """Once per run and split ("train" or "validation"): the examples as batches will
        take them, and one line per change made (the data module reports them, so a
        truncation or a drop is counted, never silent)."""
        return examples, []

    def __call__(self, examples: list[dict[str, Any]]) -> Batch:
        raise NotImplementedError


class GenerativeObjective(Objective):
    """Base of objectives whose validation generates (`Options` inherit `GenerationEval`):
    `task.monitor` picks the tracked metric, `task.eval_examples` of each validation are
    completed with the project's batched, KV-cached generator (`complete`)."""

    generative = True

    @classmethod
    def tracked(cls, options: GenerationEval) -> Tracked:
        return options.tracked

    def prediction_budget(self) -> int:
        return self.options.eval_examples

    def generation_config(self, longest_prompt: int) -> GenerationConfig:
        """Greedy or beam search, as long as `task.eval_max_new_tokens` and, for a decoder,
        the room its positions leave after the longest prompt."""
        new_tokens = self.options.eval_max_new_tokens
        if self.model_config.arch == "decoder":
            new_tokens = min(new_tokens, self.model_config.max_seq_len - longest_prompt)
        return GenerationConfig(
            max_new_tokens=max(1, new_tokens), num_beams=self.options.eval_num_beams
        )

    @torch.no_grad()
    def complete(self, prompts: list[list[int]]) -> list[str]:
        """The text each prompt (framed ids) continues with (`completion_text`)."""
        if not prompts:
            return []
        encoder_decoder = self.model_config.arch == "encoder_decoder"
        results = generate_ids(
            self.model,
            prompts,
            self.generation_config(max(len(p) for p in prompts)),
            eos_id=self.tokenizer.eos_id,
            pad_id=self.tokenizer.pad_id,
            suppress_ids=self.tokenizer.never_generated(encoder_decoder),
        )
        return [self.completion_text(rows[0]) for rows in results]

    def completion_text(self, ids: list[int]) -> str:
        """Text only: a fine-tuned model's answer holds no special tokens (an imported chat
        template's end-of-turn marker is left out)."""
        return self.tokenizer.decode(ids, skip_special=True)
