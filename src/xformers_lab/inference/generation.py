"""Text generation for decoders and encoder-decoders: greedy, sampling (temperature, top-k,
top-p, repetition penalty), beam search; batched left-padded prompts; stop strings and EOS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.inference.sampling import choose_next, repetition_penalty
from xformers_lab.inference.sessions import DecoderSession, EncoderDecoderSession

StopTest = Callable[[list[int]], bool]
"""Given the ids a row has generated so far: has it finished (e.g. a stop string appeared)?"""


@dataclass(frozen=True, kw_only=True)
class GenerationConfig:
    """How to continue a prompt."""

    max_new_tokens: int = 64
    """Tokens to generate at most (EOS or a stop string may end a sequence sooner)."""
    do_sample: bool = False
    """Sample from the distribution instead of taking the most likely token."""
    temperature: float = 1.0
    """Divide logits by this before sampling; 0 means greedy."""
    top_k: int | None = None
    """Sample among the k most likely tokens only."""
    top_p: float | None = None
    """Sample among the smallest set of tokens whose probability reaches p."""
    repetition_penalty: float = 1.0
    """> 1 discourages tokens already in the sequence (CTRL)."""
    num_beams: int = 1
    """Beam search with this many hypotheses (> 1), deterministic."""
    length_penalty: float = 1.0
    """Beam scores are log-probability sums divided by length ** length_penalty."""
    num_samples: int = 1
    """Completions per prompt (samples, or the best beams)."""
    stop: tuple[str, ...] = ()
    """Strings that end a completion (not included in it)."""
    seed: int | None = None
    """Seed of the sampling generator; the same seed gives the same samples."""
    use_cache: bool = True
    """Reuse past keys/values (fast); off recomputes the whole sequence every step."""

    def __post_init__(self) -> None:
        checks = {
            "max_new_tokens must be positive": self.max_new_tokens > 0,
            "temperature must be >= 0": self.temperature >= 0,
            "top_k must be positive": self.top_k is None or self.top_k > 0,
            "top_p must be in (0, 1]": self.top_p is None or 0 < self.top_p <= 1,
            "repetition_penalty must be positive": self.repetition_penalty > 0,
            "num_beams must be positive": self.num_beams > 0,
            "num_samples must be positive": self.num_samples > 0,
            "num_samples must not exceed num_beams with beam search": self.num_beams == 1
            or self.num_samples <= self.num_beams,
            "beam search does not sample: set do_sample=false or num_beams=1": not (
                self.do_sample and self.num_beams > 1
            ),
        }
        for message, ok in checks.items():
            if not ok:
                raise ValueError(message)


@torch.no_grad()
def generate_ids(
    model: nn.Module,
    prompts: list[list[int]],
    cfg: GenerationConfig,
    *,
    eos_id: int,
    pad_id: int,
    suppress_ids: list[int] | None = None,
    stopped: StopTest | None = None,
) -> list[list[list[int]]]:
    """For each prompt (token ids), `cfg.num_samples` generated continuations (ids, EOS and
    what follows it removed). `suppress_ids` are never generated. `stopped(ids so far)` ends a
    row early when true (greedy and sampling; see `stop_strings`), so a batch finishes when every
    row has, not at `max_new_tokens`."""
    copies = cfg.num_beams if cfg.num_beams > 1 else cfg.num_samples
    ids, mask = left_pad([p for p in prompts for _ in range(copies)], pad_id, _device(model))
    session = _session(model, cfg.use_cache, pad_id)
    if suppress_ids:
        session = _Suppressing(session, torch.tensor(suppress_ids, device=ids.device))
    logits = session.start(ids, mask)
    if cfg.num_beams > 1:
        return _beam_search(session, logits, cfg, len(prompts), eos_id)
    generated = _sample(session, logits, cfg, eos_id, stopped)
    rows = [_until_eos(row, eos_id) for row in generated.tolist()]
    return [rows[i * copies : (i + 1) * copies] for i in range(len(prompts))]


def frame_prompt(tokenizer: Tokenizer, prompt: str, encoder_decoder: bool) -> list[int]:
    """The ids a pretrained model reads for `prompt`: a decoder continues `</s> prompt`
    (documents follow EOS in training; an imported Llama's `<s>`: `document_start_id`); an
    encoder-decoder reads `prompt </s>`, where `<extra_id_N>` sentinels mark spans to fill."""
    encoded = tokenizer.encode(prompt, parse_special=True)
    if encoder_decoder:
        return [*encoded, tokenizer.eos_id]
    return [tokenizer.document_start_id, *encoded]


def generate_text(
    model: nn.Module,
    tokenizer: Tokenizer,
    prompts: list[str],
    cfg: GenerationConfig,
    prompt_ids: list[list[int]] | None = None,
    decode: Callable[[list[int]], str] | None = None,
) -> list[list[str]]:
    """For each prompt, `cfg.num_samples` completions as text (the prompt not repeated).

    Prompts are framed by `frame_prompt`, unless `prompt_ids` gives their ids already framed,
    and completions are `tokenizer.decode`d (specials shown), unless `decode` is given (as a
    fine-tuned objective frames and reads them: `Objective.prompt_ids`, `completion_text`).
    """
    encoder_decoder = model.config.arch == "encoder_decoder"
    ids = prompt_ids or [frame_prompt(tokenizer, p, encoder_decoder) for p in prompts]
    suppress = tokenizer.never_generated(encoder_decoder)
    results = generate_ids(
        model,
        ids,
        cfg,
        eos_id=tokenizer.eos_id,
        pad_id=tokenizer.pad_id,
        suppress_ids=suppress,
        stopped=stop_strings(tokenizer, cfg.stop),
    )
    decode = decode or tokenizer.decode
    return [[cut_at_stop(decode(r), cfg.stop) for r in rows] for rows in results]


def stop_strings(tokenizer: Tokenizer, stops: tuple[str, ...]) -> StopTest | None:
    """A `stopped` test for `generate_ids`: the text of the last few generated ids holds a stop
    string. Looking at a tail keeps each step's cost flat; a stop it misses (split oddly across
    tokens) only costs the early exit, since `cut_at_stop` cuts the whole text afterwards."""
    stops = tuple(s for s in stops if s)
    if not stops:
        return None
    tail = 4 * max(len(s) for s in stops) + 8  # a character is at most 4 byte tokens

    def stopped(ids: list[int]) -> bool:
        text = tokenizer.decode(ids[-tail:])
        return any(s in text for s in stops)

    return stopped


def left_pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(ids, mask) of shape (B, max_len), padded on the left so every row ends at the edge."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, device=device)
            mask[i, width - len(row) :] = 1
    return ids, mask


def _sample(
    session,
    logits: Tensor,
    cfg: GenerationConfig,
    eos_id: int,
    stopped: StopTest | None = None,
) -> Tensor:
    """Greedy or sampled continuation (B, <= max_new_tokens); finished rows repeat EOS."""
    generator = None
    if cfg.seed is not None:
        generator = torch.Generator(device=logits.device).manual_seed(cfg.seed)
    finished = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
    rows: list[list[int]] = [[] for _ in range(logits.shape[0])]
    out = []
    for step in range(cfg.max_new_tokens):
        logits = repetition_penalty(logits, session.tokens, cfg.repetition_penalty)
        next_ids = choose_next(
            logits,
            do_sample=cfg.do_sample,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            generator=generator,
        )
        next_ids = next_ids.masked_fill(finished, eos_id)
        out.append(next_ids)
        finished |= next_ids == eos_id
        if stopped is not None:
            finished |= _stopped_rows(rows, next_ids, finished, stopped)
        if bool(finished.all()) or step == cfg.max_new_tokens - 1:
            break
        logits = session.step(next_ids)
    return torch.stack(out, dim=1)


def _stopped_rows(
    rows: list[list[int]], next_ids: Tensor, finished: Tensor, stopped: StopTest
) -> Tensor:
    """Extend each unfinished row's ids by its new token; which of them `stopped` now ends."""
    done = []
    for row, token, is_finished in zip(rows, next_ids.tolist(), finished.tolist(), strict=True):
        if not is_finished:
            row.append(token)
        done.append(is_finished or stopped(row))
    return torch.tensor(done, device=finished.device)


def _beam_search(
    session, logits: Tensor, cfg: GenerationConfig, batch: int, eos_id: int
) -> list[list[list[int]]]:
    """Beam search over `batch` prompts of `cfg.num_beams` rows each; returns the best
    `cfg.num_samples` hypotheses of each prompt by length-normalised log-probability."""
    beams, device = cfg.num_beams, logits.device
    scores = torch.zeros(batch, beams, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
    scores = scores.flatten()
    hypotheses = [[] for _ in range(batch * beams)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [False] * batch
    for step in range(cfg.max_new_tokens):
        logits = repetition_penalty(logits, session.tokens, cfg.repetition_penalty)
        total = scores[:, None] + logits.float().log_softmax(dim=-1)  # (B*K, V)
        vocab = total.shape[-1]
        top_scores, top_index = total.view(batch, -1).topk(2 * beams, dim=-1)
        rows, tokens, new_scores = [], [], []
        for b in range(batch):
            candidates = list(zip(top_scores[b].tolist(), top_index[b].tolist(), strict=True))
            chosen = _extend(b, beams, vocab, candidates, eos_id, hypotheses, finished[b],
                             step + 1, cfg.length_penalty, done[b])  # fmt: skip
            for row, token, score in chosen:
                rows.append(row)
                tokens.append(token)
                new_scores.append(score)
            best_running = max(score for *_, score in chosen)
            done[b] = done[b] or _is_done(finished[b], beams, best_running, step + 1, cfg)
        index = torch.tensor(rows, device=device)
        hypotheses = [[*hypotheses[r], t] for r, t in zip(rows, tokens, strict=True)]
        scores = torch.tensor(new_scores, device=device)
        if all(done) or step == cfg.max_new_tokens - 1:
            break
        session.reorder(index)
        logits = session.step(torch.tensor(tokens, device=device))
    for row, score in enumerate(scores.tolist()):  # unfinished beams compete too
        if score > float("-inf"):
            normalised = _normalised(score, len(hypotheses[row]), cfg.length_penalty)
            finished[row // beams].append((normalised, hypotheses[row]))
    return [
        [ids for _, ids in sorted(f, key=lambda h: h[0], reverse=True)[: cfg.num_samples]]
        for f in finished
    ]


def _extend(
    b: int,
    beams: int,
    vocab: int,
    candidates: list[tuple[float, int]],
    eos_id: int,
    hypotheses: list[list[int]],
    finished: list[tuple[float, list[int]]],
    length: int,
    length_penalty: float,
    done: bool,
) -> list[tuple[int, int, float]]:
    """The next `beams` (row, token, score) of prompt b; candidates ending in EOS among the top
    `beams` ranks become finished hypotheses instead."""
    if done:  # keep shapes; these rows are never read again
        return [(b * beams, eos_id, float("-inf"))] * beams
    chosen: list[tuple[int, int, float]] = []
    for rank, (score, flat) in enumerate(candidates):
        row, token = b * beams + flat // vocab, flat % vocab
        if token == eos_id:
            if rank < beams:
                finished.append((_normalised(score, length, length_penalty), hypotheses[row]))
        else:
            chosen.append((row, token, score))
        if len(chosen) == beams:
            break
    return chosen


def _is_done(
    finished: list[tuple[float, list[int]]],
    beams: int,
    best_running: float,
    length: int,
    cfg: GenerationConfig,
) -> bool:
    """Enough finished hypotheses, and none still running can beat the worst of the best."""
    if len(finished) < beams:
        return False
    worst_kept = sorted(h[0] for h in finished)[-beams]
    return worst_kept >= _normalised(best_running, length, cfg.length_penalty)


def _normalised(score: float, length: int, length_penalty: float) -> float:
    return score / max(length, 1) ** length_penalty


def _until_eos(row: list[int], eos_id: int) -> list[int]:
    return row[: row.index(eos_id)] if eos_id in row else row


def cut_at_stop(text: str, stops: tuple[str, ...] | list[str]) -> str:
    """`text` up to the first stop string in it."""
    cut = min((text.find(s) for s in stops if s and s in text), default=len(text))
    return text[:cut]


class _Suppressing:
    """A session whose logits never select `ids` (their logits are -inf)."""

    def __init__(self, session, ids: Tensor) -> None:
        self.session, self.ids = session, ids

    @property
    def tokens(self) -> Tensor:
        return self.session.tokens

    def start(self, prompt: Tensor, mask: Tensor) -> Tensor:
        return self._mask(self.session.start(prompt, mask))

    def step(self, next_ids: Tensor) -> Tensor:
        return self._mask(self.session.step(next_ids))

    def reorder(self, index: Tensor) -> None:
        self.session.reorder(index)

    def _mask(self, logits: Tensor) -> Tensor:
        return logits.index_fill(-1, self.ids, float("-inf"))


def _session(model: nn.Module, use_cache: bool, decoder_start_id: int):
    if model.config.arch == "encoder_decoder":
        return EncoderDecoderSession(model, use_cache, decoder_start_id)
    return DecoderSession(model, use_cache)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
