"""Supervised fine-tuning of decoders (GPT, Llama) on prompt/completion pairs or chats."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from xformers_lab.core import TransformerConfig
from xformers_lab.data.collators import IGNORE_INDEX
from xformers_lab.data.special_tokens import CHAT_ROLES
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.errors import UserError
from xformers_lab.tasks.objective import (
    Batch,
    ExampleCollator,
    ExampleEncoder,
    GenerationEval,
    GenerativeObjective,
    LossSums,
)

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

    from xformers_lab.data.config import DataConfig, TokenizerConfig

log = logging.getLogger(__name__)

TRUNCATIONS = ("drop", "left")
FORMATS = ("plain", "chat")
"""How the examples came: prompt/completion pairs joined as they are, or chats (`messages`)
rendered by a chat template."""
Message = dict[str, str]


@dataclass(frozen=True, kw_only=True)
class SFTOptions(GenerationEval):
    """`task=sft` keys (and the generation-based validation keys of `GenerationEval`)."""

    completion_only: bool = True
    """Train on the completion (every assistant turn of a chat) and its `</s>` only; false
    trains on every token after the first, prompt included."""
    packing: bool = False
    """Pack training examples into rows of data.seq_len tokens, each attending only to itself
    with its positions restarting (the document mask); false pads each batch."""
    truncation: str = "drop"
    """An example longer than data.seq_len + 1 tokens: `drop` it, or `left`: cut its prompt
    from the left (the completion is kept whole; examples whose completion alone is too long
    are dropped). Both are counted and reported."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.truncation not in TRUNCATIONS:
            raise ValueError(
                f"unknown truncation {self.truncation!r}; choose one of: {', '.join(TRUNCATIONS)}"
            )


class ChatTemplate:
    """Turns a chat into ids, with the tokens to train on (every assistant turn's).

    Tokenizers trained here use the project's template, whose role markers are single
    reserved ids (`special_tokens.CHAT_ROLES`):

        </s> [<|system|> system] <|user|> question <|assistant|> answer </s> <|user|> ...

    where each assistant turn ends with `</s>` (the model learns to stop) and a prompt for
    generation ends with `<|assistant|>`. A tokenizer imported from Hugging Face with its own
    `chat_template` (jinja) renders chats as transformers does; its assistant turns are found
    by rendering the chat turn by turn.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.jinja = tokenizer.chat_template
        if self.jinja is None:
            try:
                self.markers = {role: tokenizer.role_id(role) for role in CHAT_ROLES}
            except ValueError as err:
                raise UserError(f"chats cannot be rendered: {err}") from None

    def encode(self, messages: Sequence[Message]) -> tuple[list[int], list[int], int]:
        """(ids, targets: 1 where the token is trained, the length of the prompt of the last
        assistant turn)."""
        if self.jinja is not None:
            return self._encode_jinja(messages)
        tokenizer = self.tokenizer
        ids, targets, prompt_len = [tokenizer.document_start_id], [0], 1
        for message in messages:
            content = tokenizer.encode(message["content"])
            ids.append(self.markers[message["role"]])
            targets.append(0)
            if message["role"] == "assistant":
                prompt_len = len(ids)
                ids += [*content, tokenizer.eos_id]
                targets += [1] * (len(content) + 1)
            else:
                ids += content
                targets += [0] * len(content)
        return ids, targets, prompt_len

    def prompt(self, messages: Sequence[Message]) -> list[int]:
        """The ids a model reads to write the next assistant turn."""
        if self.jinja is not None:
            return self._piece(self._render(messages, True))
        tokenizer = self.tokenizer
        ids = [tokenizer.document_start_id]
        for message in messages:
            ids += [self.markers[message["role"]], *tokenizer.encode(message["content"])]
            if message["role"] == "assistant":
                ids.append(tokenizer.eos_id)
        return [*ids, self.markers["assistant"]]

    def _encode_jinja(self, messages: Sequence[Message]) -> tuple[list[int], list[int], int]:
        ids: list[int] = []
        targets: list[int] = []
        prompt_len, rendered = 0, ""
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt = self._render(messages[:i], True)
            turn = self._render(messages[: i + 1], False)
            if not (prompt.startswith(rendered) and turn.startswith(prompt)):
                raise UserError(
                    "the tokenizer's chat_template does not render a chat turn by turn (a "
                    "shorter chat is not a prefix of a longer one); use prompt/completion fields"
                )
            head, answer = self._piece(prompt[len(rendered) :]), self._piece(turn[len(prompt) :])
            ids += head
            targets += [0] * len(head)
            prompt_len = len(ids)
            ids += answer
            targets += [1] * len(answer)
            rendered = turn
        tail = self._piece(self._render(messages, False)[len(rendered) :])
        ids += tail
        targets += [0] * len(tail)
        if not ids or ids[-1] != self.tokenizer.eos_id:  # the model learns to stop
            ids.append(self.tokenizer.eos_id)
            targets.append(1)
        return ids, targets, prompt_len

    def _render(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        tokenizer = self.tokenizer
        text_of = tokenizer.specials.get  # type: ignore[attr-defined]
        try:
            return env.from_string(self.jinja).render(
                messages=list(messages),
                add_generation_prompt=add_generation_prompt,
                bos_token=text_of(tokenizer.bos_id, "") if tokenizer.bos_id is not None else "",
                eos_token=text_of(tokenizer.eos_id, ""),
            )
        except TemplateError as err:
            raise UserError(f"the tokenizer's chat_template failed: {err}") from None

    def _piece(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, parse_special=True)


class EncodeSFT(ExampleEncoder):
    """prompt/completion (joined as they are: `</s> prompt completion </s>`) or `messages`
    (through `ChatTemplate`), whichever the examples hold -> `input_ids`, `targets` (1: a
    completion token), `prompt_len` (the ids before the last completion), and the `source`
    and `reference` text of validation records. The raw columns stay (which ones came is
    only known from the data)."""

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if "messages" in batch:
            return self._chats(batch["messages"])
        tokenizer = self.tokenizer
        columns: dict[str, list[Any]] = {"input_ids": [], "targets": [], "prompt_len": []}
        prompts, completions = batch["prompt"], batch["completion"]
        for prompt, completion in zip(prompts, completions, strict=True):
            head = [tokenizer.document_start_id, *tokenizer.encode(prompt)]
            tail = [*tokenizer.encode(completion), tokenizer.eos_id]
            columns["input_ids"].append(head + tail)
            columns["targets"].append([0] * len(head) + [1] * len(tail))
            columns["prompt_len"].append(len(head))
        return {**columns, "source": prompts, "reference": completions}

    def _chats(self, chats: list[list[Message]]) -> dict[str, list[Any]]:
        template = ChatTemplate(self.tokenizer)
        columns: dict[str, list[Any]] = {k: [] for k in ("input_ids", "targets", "prompt_len")}
        for messages in chats:
            for key, value in zip(columns, template.encode(messages), strict=True):
                columns[key].append(value)
        return {
            **columns,
            "source": ["\n".join(f"{m['role']}: {m['content']}" for m in c[:-1]) for c in chats],
            "reference": [c[-1]["content"] for c in chats],
        }


class SFTCollator(ExampleCollator):
    """Encoded examples -> next-token batches, the loss on completions only by default:

        input_ids    (B, T)  the example without its last token, right-padded with <pad>
        labels       (B, T)  the next token where it is trained, else IGNORE_INDEX
        prompt_lens  (B,)    ids before the last completion (generation-based validation)

    (plus `sources` and `references`, text). `prepare` fits examples to seq_len + 1 tokens
    (`task.truncation`) and, with `task.packing`, packs the training split into rows of
    seq_len tokens; their batches carry `document_ids` (one per example, padding its own), so
    each example attends to itself only and its positions restart, as padded. Right padding
    needs no attention mask: a causal token never sees the padding after it.
    """

    def __init__(self, tokenizer: Tokenizer, seq_len: int, options: SFTOptions) -> None:
        self.seq_len, self.pad_id = seq_len, tokenizer.pad_id
        self.completion_only, self.packing = options.completion_only, options.packing
        self.truncation = options.truncation

    def prepare(self, examples: Dataset, split: str) -> tuple[Dataset, list[str]]:
        notes = []
        limit = self.seq_len + 1
        lengths = [len(ids) for ids in examples["input_ids"]]
        long = sum(n > limit for n in lengths)
        if long and self.truncation == "left":
            cut = examples.map(self._cut_left, batched=True, desc="cutting prompts")
            fits = [len(ids) <= limit for ids in cut["input_ids"]]
            kept = cut.select([i for i, ok in enumerate(fits) if ok])
            dropped = len(examples) - len(kept)
            notes.append(
                f"{split}: {long - dropped} of {len(examples)} prompts cut from the left to fit "
                f"data.seq_len={self.seq_len} (+1 shifted) tokens"
                + (f"; {dropped} dropped: their completion alone is longer" if dropped else "")
            )
            examples = kept
        elif long:
            examples = examples.select([i for i, n in enumerate(lengths) if n <= limit])
            notes.append(
                f"{split}: dropped {long} of {long + len(examples)} examples longer than "
                f"data.seq_len={self.seq_len} (+1 shifted) tokens (task.truncation=left cuts "
                "their prompts instead)"
            )
        if len(examples) == 0:
            raise UserError(f"no {split} example fits data.seq_len={self.seq_len}; raise it")
        if self.packing and split == "train":
            examples, note = self._pack(examples)
            notes.append(note)
        return examples, notes

    def _cut_left(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Drop prompt tokens after the first (the document start) until the example fits,
        keeping the last prompt token (the `<|assistant|>` marker of a chat)."""
        out: dict[str, list[Any]] = {"input_ids": [], "targets": [], "prompt_len": []}
        for ids, targets, prompt_len in zip(
            batch["input_ids"], batch["targets"], batch["prompt_len"], strict=True
        ):
            cut = min(max(0, len(ids) - self.seq_len - 1), max(0, prompt_len - 2))
            out["input_ids"].append(ids[:1] + ids[1 + cut :])
            out["targets"].append(targets[:1] + targets[1 + cut :])
            out["prompt_len"].append(prompt_len - cut)
        return out

    def _pack(self, examples: Dataset) -> tuple[Dataset, str]:
        """Best-fit decreasing: rows of at most seq_len (input, label) pairs, each example whole."""
        from datasets import Dataset

        columns = zip(examples["input_ids"], examples["targets"], strict=True)
        pairs = [self._pair(ids, targets) for ids, targets in columns]
        order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]))
        rows: list[list[int]] = []
        room: list[tuple[int, int]] = []  # (space left, row), sorted
        for i in order:
            size = len(pairs[i][0])
            at = bisect.bisect_left(room, (size, -1))
            if at == len(room):
                rows.append([i])
                bisect.insort(room, (self.seq_len - size, len(rows) - 1))
                continue
            space, row = room.pop(at)
            rows[row].append(i)
            bisect.insort(room, (space - size, row))
        packed = {
            "input_ids": [[t for i in row for t in pairs[i][0]] for row in rows],
            "labels": [[t for i in row for t in pairs[i][1]] for row in rows],
            "lengths": [[len(pairs[i][0]) for i in row] for row in rows],
        }
        tokens = sum(len(ids) for ids in packed["input_ids"])
        note = (
            f"train: packed {len(examples)} examples into {len(rows)} rows of data.seq_len="
            f"{self.seq_len} ({tokens / (len(rows) * self.seq_len):.1%} full)"
        )
        return Dataset.from_dict(packed), note

    def _pair(self, ids: list[int], targets: list[int]) -> tuple[list[int], list[int]]:
        """(inputs, labels) of one example: the labels are the next tokens where trained."""
        if not self.completion_only:
            return ids[:-1], ids[1:]
        trained = zip(ids[1:], targets[1:], strict=True)
        return ids[:-1], [token if keep else IGNORE_INDEX for token, keep in trained]

    def __call__(self, examples: list[dict[str, Any]]) -> Batch:
        if "lengths" in examples[0]:
            return self._packed(examples)
        pairs = [self._pair(ex["input_ids"], ex["targets"]) for ex in examples]
        return {
            "input_ids": _pad([inputs for inputs, _ in pairs], self.pad_id),
            "labels": _pad([labels for _, labels in pairs], IGNORE_INDEX),
            "prompt_lens": torch.tensor([ex["prompt_len"] for ex in examples]),
            "sources": [ex["source"] for ex in examples],  # type: ignore[dict-item]
            "references": [ex["reference"] for ex in examples],  # type: ignore[dict-item]
        }

    def _packed(self, rows: list[dict[str, Any]]) -> Batch:
        documents = [
            torch.repeat_interleave(torch.arange(len(row["lengths"])), torch.tensor(row["lengths"]))
            for row in rows
        ]
        width = max(len(row["input_ids"]) for row in rows)
        return {
            "input_ids": _pad([row["input_ids"] for row in rows], self.pad_id),
            "labels": _pad([row["labels"] for row in rows], IGNORE_INDEX),
            "document_ids": torch.stack(  # padding: one more document, never attended to
                [
                    torch.cat([d, d.new_full((width - len(d),), len(r["lengths"]))])
                    for d, r in zip(documents, rows, strict=True)
                ]
            ),
        }


def _pad(rows: list[list[int]], value: int) -> Tensor:
    tensors = [torch.as_tensor(row, dtype=torch.long) for row in rows]
    return pad_sequence(tensors, batch_first=True, padding_value=value)


class SFT(GenerativeObjective):
    """Next-token cross-entropy over completions (by default), through the fused head (no
    logits in training). Examples are `prompt` and `completion` columns, or a `messages`
    column of chats (`{role, content}`, roles system, user, assistant) rendered by
    `ChatTemplate`. Validation reports `val/loss` and `val/ppl` per trained token and, on
    `task.eval_examples` generated completions, exact match, ROUGE-L, BLEU and chrF.
    `generate` frames prompts as the checkpoint trained: a chat model's template."""

    name = "sft"
    archs = frozenset({"decoder"})
    Options = SFTOptions
    fields = {"prompt": "text?", "completion": "text?", "messages": "messages?"}  # noqa: RUF012

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.format = "plain"
        """How its examples came (FORMATS): saved in the checkpoint, read by `prompt_ids`."""

    @classmethod
    def check(cls, data: DataConfig, tokenizer: TokenizerConfig, options: SFTOptions) -> None:
        if data.seq_len < 2:
            raise UserError("task=sft needs data.seq_len >= 2")
        if options.packing and data.group_by_length:
            raise UserError(
                "data.group_by_length is for padded batches; task.packing=true fills rows "
                "instead (drop one of them)"
            )

    @classmethod
    def collator(cls, tokenizer: Tokenizer, seq_len: int, options: SFTOptions) -> SFTCollator:
        return SFTCollator(tokenizer, seq_len, options)

    @classmethod
    def encoder(cls, tokenizer: Tokenizer, options: SFTOptions) -> EncodeSFT:
        return EncodeSFT(tokenizer)

    @classmethod
    def from_head(
        cls, model_config: TransformerConfig, tokenizer: Tokenizer, head: dict[str, Any]
    ) -> SFT:
        objective = super().from_head(model_config, tokenizer, head)
        objective.format = head.get("format", "plain")
        return objective

    def head_config(self) -> dict[str, Any]:
        return {**super().head_config(), "format": self.format}

    def prepare_examples(self, splits: DatasetDict) -> DatasetDict:
        """Which format came (chats or prompt/completion pairs), and chats that can train:
        known roles, ending with an assistant turn that is not blank (blank ones are
        dropped and counted)."""
        columns = set(splits["train"].column_names)
        if "messages" in columns:
            self.format = "chat"
            ChatTemplate(self.tokenizer)  # a tokenizer that cannot render chats: one line
            splits = splits.select_columns(["messages"])
            for name, split in splits.items():
                check_chats(split["messages"], name)
            before = {name: len(split) for name, split in splits.items()}
            splits = splits.filter(
                lambda chats: [bool(c[-1]["content"].strip()) for c in chats["messages"]],
                batched=True,
                desc="dropping blank answers",
            )
            for name, split in splits.items():
                if len(split) < before[name]:
                    dropped = before[name] - len(split)
                    log.warning("%s: dropped %d chats whose last answer is blank", name, dropped)
            return splits
        if columns != {"prompt", "completion"}:
            found = ", ".join(sorted(columns)) or "neither"
            raise UserError(
                "task=sft needs a messages column (data.messages_field) or both prompt and "
                f"completion columns (data.prompt_field, data.completion_field); found {found}"
            )
        return splits

    def prompt_ids(self, prompt: str, chat: bool = True) -> list[int]:
        """A chat model reads the prompt as a user turn of its template (`chat=False`: as
        plain text); a prompt/completion model reads `</s> prompt`, as it trained."""
        if self.format == "chat" and chat:
            return ChatTemplate(self.tokenizer).prompt([{"role": "user", "content": prompt}])
        return super().prompt_ids(prompt)

    def summed_loss(self, batch: Batch) -> LossSums:
        labels = batch["labels"]
        nats = self.model.summed_nats(
            batch["input_ids"], labels, document_ids=batch.get("document_ids")
        )
        return LossSums(nats, (labels != IGNORE_INDEX).sum(), labels.numel())

    def validation_sums(self, batch: Batch) -> dict[str, Tensor]:
        nats, targets, _ = self.summed_loss(batch)
        return {"nats": nats, "tokens": targets}

    def predict(self, batch: Batch, limit: int) -> list[dict[str, Any]]:
        """Complete the batch's first `limit` prompts (everything before the last completion)."""
        lengths = batch["prompt_lens"][:limit].tolist()
        prompts = [row[:n].tolist() for row, n in zip(batch["input_ids"], lengths, strict=False)]
        predictions = self.complete(prompts)
        return [
            {"source": source, "reference": reference, "prediction": prediction}
            for source, reference, prediction in zip(
                batch["sources"], batch["references"], predictions, strict=False
            )
        ]


def check_chats(chats: list[list[Message]], split: str) -> None:
    """One line for the first chat that cannot train: an unknown role, no turn, or a last turn
    that is not the assistant's."""
    for i, messages in enumerate(chats):
        where = f"{split} chat {i}"
        if not messages:
            raise UserError(f"{where} has no messages")
        for message in messages:
            if message.get("role") not in CHAT_ROLES:
                raise UserError(
                    f"{where} has a message of role {message.get('role')!r}; roles are: "
                    f"{', '.join(CHAT_ROLES)}"
                )
            if message.get("content") is None:
                raise UserError(f"{where} has a {message['role']} message without content")
        if messages[-1]["role"] != "assistant":
            raise UserError(
                f"{where} ends with a {messages[-1]['role']} message; a chat trains on its "
                "assistant turns and must end with one"
            )
