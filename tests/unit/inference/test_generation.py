"""Generation: cached decoding equals uncached, sampling controls behave as defined, batching
with left padding changes nothing, beam search is consistent with greedy."""

from __future__ import annotations

import pytest
import torch

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.inference.generation import GenerationConfig, generate_ids
from xformers_lab.inference.sampling import choose_next, top_p_filter

EOS, PAD, VOCAB = 1, 0, 90
SHAPE = {"vocab_size": VOCAB, "d_model": 32, "n_heads": 4, "n_layers": 2, "max_seq_len": 64}
MODELS = {
    "gpt": {"position": "learned", "ffn": "gelu_tanh"},
    "llama": {"position": "rope", "ffn": "swiglu", "norm": "rms", "n_kv_heads": 2, "bias": False},
    "alibi": {"position": "alibi"},
    "sinusoidal": {"position": "sinusoidal"},
    "t5": {"arch": "encoder_decoder", "position": "t5", "ffn": "geglu", "norm": "rms",
           "bias": False, "tie_embeddings": False},
}  # fmt: skip
PROMPTS = [[EOS, 20, 21, 22, 23, 24], [EOS, 30, 31], [EOS, 40, 41, 42, 43]]


def model_of(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(TransformerConfig(**SHAPE, **MODELS[name])).eval()


def run(model, prompts=PROMPTS, **cfg):
    return generate_ids(model, prompts, GenerationConfig(**cfg), eos_id=EOS, pad_id=PAD)


@pytest.mark.parametrize("name", list(MODELS))
def test_cached_greedy_equals_uncached(name: str) -> None:
    model = model_of(name)
    cached = run(model, max_new_tokens=20, use_cache=True)
    assert cached == run(model, max_new_tokens=20, use_cache=False)
    assert any(len(rows[0]) > 5 for rows in cached)


@pytest.mark.parametrize("name", list(MODELS))
def test_left_padded_batch_equals_each_prompt_alone(name: str) -> None:
    model = model_of(name)
    batched = run(model, max_new_tokens=12)
    alone = [run(model, [prompt], max_new_tokens=12)[0] for prompt in PROMPTS]
    assert batched == alone


def test_top_k_1_equals_greedy() -> None:
    model = model_of("gpt")
    greedy = run(model, max_new_tokens=15)
    assert run(model, max_new_tokens=15, do_sample=True, top_k=1, seed=3) == greedy


def test_temperature_near_zero_equals_greedy() -> None:
    model = model_of("llama")
    greedy = run(model, max_new_tokens=15)
    cold = run(model, max_new_tokens=15, do_sample=True, temperature=1e-4, seed=3)
    assert cold == greedy
    assert run(model, max_new_tokens=15, do_sample=True, temperature=0.0) == greedy


def test_the_same_seed_gives_the_same_samples() -> None:
    model = model_of("gpt")
    first = run(model, max_new_tokens=15, do_sample=True, seed=11, num_samples=2)
    assert first == run(model, max_new_tokens=15, do_sample=True, seed=11, num_samples=2)
    assert first != run(model, max_new_tokens=15, do_sample=True, seed=12, num_samples=2)


def test_top_p_keeps_exactly_the_smallest_set_reaching_p() -> None:
    probs = torch.tensor([[0.05, 0.4, 0.1, 0.3, 0.15]])
    kept = lambda p: torch.isfinite(top_p_filter(probs.log(), p))[0].nonzero().flatten().tolist()  # noqa: E731
    assert kept(0.4) == [1]  # 0.4 alone reaches 0.4
    assert kept(0.5) == [1, 3]  # 0.4 + 0.3
    assert kept(0.7) == [1, 3]  # exactly 0.7
    assert kept(0.71) == [1, 3, 4]
    assert kept(1.0) == [0, 1, 2, 3, 4]


def test_sampling_only_draws_from_the_nucleus() -> None:
    logits = torch.tensor([[0.05, 0.4, 0.1, 0.3, 0.15]]).log().expand(2000, -1)
    draws = choose_next(logits, do_sample=True, temperature=1.0, top_k=None, top_p=0.7,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert set(draws.tolist()) == {1, 3}
    assert abs((draws == 1).float().mean().item() - 0.4 / 0.7) < 0.04


def test_repetition_penalty_discourages_repeats() -> None:
    model = model_of("gpt")
    plain = run(model, max_new_tokens=30)[0][0]
    penalised = run(model, max_new_tokens=30, repetition_penalty=5.0)[0][0]
    assert len(set(penalised)) > len(set(plain))


@pytest.mark.parametrize("name", ["gpt", "t5"])
def test_one_beam_is_greedy_and_more_beams_are_ranked(name: str) -> None:
    model = model_of(name)
    greedy = run(model, max_new_tokens=10)
    assert run(model, max_new_tokens=10, num_beams=1) == greedy
    cached = run(model, max_new_tokens=10, num_beams=4, num_samples=3, length_penalty=0.0)
    assert cached == run(model, max_new_tokens=10, num_beams=4, num_samples=3,
                         length_penalty=0.0, use_cache=False)  # fmt: skip
    assert all(len(rows) == 3 for rows in cached)
    for prompt, rows in zip(PROMPTS, cached, strict=True):
        scores = [sequence_logprob(model, prompt, row) for row in rows]
        assert scores == sorted(scores, reverse=True)


def sequence_logprob(model, prompt: list[int], continuation: list[int]) -> float:
    """Sum of log-probabilities of `continuation` (+ EOS when it ended early) after `prompt`."""
    target = continuation + ([EOS] if len(continuation) < 10 else [])
    with torch.no_grad():
        if model.config.arch == "encoder_decoder":
            decoder_in = torch.tensor([[PAD, *target[:-1]]])
            logits = model(torch.tensor([prompt]), decoder_input_ids=decoder_in)[0]
        else:
            logits = model(torch.tensor([prompt + target[:-1]]))[0, len(prompt) - 1 :]
    logprobs = logits.float().log_softmax(-1)
    return sum(logprobs[i, t].item() for i, t in enumerate(target))
