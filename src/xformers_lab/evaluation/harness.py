"""Our checkpoints as an lm-evaluation-harness model, registered as `xformers_lab`.

    lm = XformersLabLM(ckpt="run/checkpoints/best.ckpt", batch_size="auto")
    lm_eval.simple_evaluate(model=lm, tasks=["xlab_mc"])

Text becomes ids the way the harness's Hugging Face backend makes them (`TemplateLM`), so the
same exported model scores the same under `--model hf`: a decoder reads the context as is (a
distinct BOS such as Llama's `<s>` first), an encoder-decoder's context ends in `</s>` and its
continuation is scored on the decoder side. Requests run longest first, in batches
(`length_batches`); `generate_until` runs the project's KV-cached generator, which stops a row at
a stop string.
"""

from __future__ import annotations

import json
from typing import Any

from lm_eval import utils as harness_utils
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import normalize_gen_kwargs
from tqdm import tqdm

import xformers_lab
from xformers_lab.errors import UserError
from xformers_lab.evaluation.batching import length_batches
from xformers_lab.evaluation.scoring import Pair, score_pairs
from xformers_lab.inference.generation import (
    GenerationConfig,
    cut_at_stop,
    generate_ids,
    stop_strings,
)

MODEL_NAME = "xformers_lab"
GENERATION_KEYS = ("do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "seed")
"""Harness generation kwargs we honour (beside `until` and `max_gen_toks`)."""
Request = tuple[Any, list[int], list[int]]
"""What `TemplateLM` hands `_loglikelihood_tokens`: (cache key, context ids, continuation ids)."""


@register_model(MODEL_NAME)
class XformersLabLM(TemplateLM):
    """An `lm_eval` model over one of our checkpoints (a decoder or an encoder-decoder).

    Args:
        ckpt: checkpoint path (`xformers_lab.load`); or `lab`, an already loaded model.
        batch_size: rows per batch, or `auto`: as many rows as fit `max_batch_tokens`.
        max_batch_tokens: padded tokens per batch with `batch_size=auto`.
        max_length: longest input in tokens (default: the model's `max_seq_len`).
        max_gen_toks: tokens `generate_until` produces at most, unless a task sets its own.
        device: where the model runs.
    """

    def __init__(
        self,
        ckpt: str | None = None,
        lab: Any = None,
        batch_size: int | str | None = "auto",
        max_batch_tokens: int = 16384,
        max_length: int | None = None,
        max_gen_toks: int = 256,
        device: str | None = "cpu",
        **unused: Any,
    ) -> None:
        super().__init__()
        if (ckpt is None) == (lab is None):
            raise UserError("the xformers_lab model needs ckpt=<checkpoint path>")
        self.lab = lab if lab is not None else xformers_lab.load(ckpt, device=device or "cpu")
        arch = self.lab.config.arch
        if arch == "encoder":
            raise UserError(
                f"{self.lab.path} is an encoder (a masked LM, task={self.lab.task}); harness "
                "tasks score text left to right: give a decoder or an encoder-decoder"
            )
        self.backend = "seq2seq" if arch == "encoder_decoder" else "causal"
        self.tokenizer = self.lab.tokenizer
        self.batch_rows = _batch_rows(batch_size)
        self.max_batch_tokens = max_batch_tokens
        self.max_length = max_length or self.lab.config.max_seq_len
        self.max_gen_toks = max_gen_toks

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_id

    @property
    def prefix_token_id(self) -> int:
        """What an empty context and each rolling window start from: the token documents follow
        in training (`</s>`, or a distinct BOS such as Llama's `<s>`)."""
        return self.tokenizer.document_start_id

    @property
    def tokenizer_name(self) -> str:
        return f"{MODEL_NAME}-{self.tokenizer.fingerprint()}"

    def tok_encode(
        self, string: str, add_special_tokens: bool | None = None, **_: Any
    ) -> list[int]:
        """Ids of `string`, with the special tokens the model's HF tokenizer would add unless
        `add_special_tokens` is False: `</s>` after an encoder-decoder's input, a distinct BOS
        before a decoder's."""
        ids = self.tokenizer.encode(string, parse_special=True)
        if add_special_tokens is False:
            return ids
        if self.backend == "seq2seq":
            return [*ids, self.tokenizer.eos_id]
        start = self.tokenizer.document_start_id
        return [start, *ids] if start != self.tokenizer.eos_id else ids

    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, **_: Any
    ) -> list[tuple[float, bool]]:
        pairs: list[Pair] = [(context, continuation) for _, context, continuation in requests]
        lengths = [min(len(c) + len(t), self.max_length + 1) for c, t in pairs]
        results: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
        model, start_id = self.lab.model, self.tokenizer.pad_id  # decoders start from pad (T5)
        for batch in self._batches(lengths, "loglikelihood", disable_tqdm):
            scores = score_pairs(model, [pairs[i] for i in batch], self.max_length, start_id)
            for i, score in zip(batch, scores, strict=True):
                results[i] = (score.logprob, score.greedy)
                if requests[i][0] is not None:
                    self.cache_hook.add_partial("loglikelihood", requests[i][0], results[i])
        return results

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Each text's log-likelihood in disjoint windows of `max_length` tokens, every token
        scored once with as much context as fits (the harness's rolling windows)."""
        windows: list[Request] = []
        owners: list[int] = []
        for owner, (text,) in enumerate(request.args for request in requests):
            rolling = harness_utils.get_rolling_token_windows(
                token_list=self.tok_encode(text),
                prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length,
                context_len=1,
            )
            for context, continuation in map(harness_utils.make_disjoint_window, rolling):
                windows.append((None, context, continuation))
                owners.append(owner)
        totals = [0.0] * len(requests)
        scored = self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm)
        for owner, (logprob, _) in zip(owners, scored, strict=True):
            totals[owner] += logprob
        for request, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy (or sampled) continuations, cut at the task's stop strings; requests with the
        same generation settings are batched together."""
        results: list[str] = [""] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            key = json.dumps(request.args[1], sort_keys=True, default=str)
            groups.setdefault(key, []).append(i)
        for members in groups.values():
            context_list = [requests[i].args[0] for i in members]
            texts = self._generate(context_list, requests[members[0]].args[1], disable_tqdm)
            for i, text in zip(members, texts, strict=True):
                results[i] = text
                self.cache_hook.add_partial("generate_until", requests[i].args, text)
        return results

    def get_model_info(self) -> dict[str, Any]:
        """What results.json's `config` records about the model."""
        return {
            "checkpoint": str(self.lab.path),
            "arch": self.lab.config.arch,
            "task": self.lab.task,
            "model_num_parameters": sum(p.numel() for p in self.lab.model.parameters()),
        }

    def _generate(self, contexts: list[str], gen_kwargs: dict, disable_tqdm: bool) -> list[str]:
        cfg = self._generation_config(gen_kwargs)
        budget = self.max_length - (cfg.max_new_tokens if self.backend == "causal" else 0)
        if budget <= 0:
            raise UserError(
                f"max_gen_toks={cfg.max_new_tokens} leaves no room for a prompt in the model's "
                f"{self.max_length} positions; lower max_gen_toks"
            )
        prompts = [self.tok_encode(context)[-budget:] for context in contexts]
        lengths = [len(p) + cfg.max_new_tokens for p in prompts]
        tokenizer, texts = self.tokenizer, [""] * len(contexts)
        suppress = tokenizer.never_generated(self.backend == "seq2seq")
        stopped = stop_strings(tokenizer, cfg.stop)
        for batch in self._batches(lengths, "generate_until", disable_tqdm):
            rows = generate_ids(
                self.lab.model,
                [prompts[i] for i in batch],
                cfg,
                eos_id=tokenizer.eos_id,
                pad_id=tokenizer.pad_id,
                suppress_ids=suppress,
                stopped=stopped,
            )
            for i, (ids,) in zip(batch, rows, strict=True):
                texts[i] = cut_at_stop(tokenizer.decode(ids, skip_special=True), cfg.stop)
        return texts

    def _generation_config(self, gen_kwargs: dict) -> GenerationConfig:
        kwargs = normalize_gen_kwargs(dict(gen_kwargs), self.max_gen_toks)
        until = kwargs.pop("until")  # a list, normalised
        max_new_tokens = kwargs.pop("max_gen_toks")
        unknown = sorted(set(kwargs) - set(GENERATION_KEYS))
        if unknown:
            raise UserError(
                f"generation option {unknown[0]!r} is not supported by the xformers_lab model; "
                f"supported: until, max_gen_toks, {', '.join(GENERATION_KEYS)}"
            )
        return GenerationConfig(max_new_tokens=max_new_tokens, stop=tuple(until), **kwargs)

    def _batches(self, lengths: list[int], what: str, disable_tqdm: bool) -> list[list[int]]:
        batches = length_batches(lengths, self.batch_rows, self.max_batch_tokens)
        return tqdm(batches, desc=f"{what} ({len(lengths)} requests)", disable=disable_tqdm)


def _batch_rows(batch_size: int | str | None) -> int | None:
    """Rows per batch; None for `auto` (and the harness's `auto:N`)."""
    if batch_size is None or str(batch_size).startswith("auto"):
        return None
    try:
        rows = int(batch_size)
    except ValueError:
        raise UserError(f"batch_size must be a positive int or auto, got {batch_size!r}") from None
    if rows <= 0:
        raise UserError(f"batch_size must be a positive int or auto, got {batch_size!r}")
    return rows
