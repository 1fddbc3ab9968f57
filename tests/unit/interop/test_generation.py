"""Greedy decoding from an imported GPT-2 or Llama picks the tokens transformers' generate()
picks, for a batch of left-padded prompts of different lengths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xformers_lab.inference.generation import GenerationConfig, generate_ids
from xformers_lab.interop import import_hf

transformers = pytest.importorskip("transformers")

NEW_TOKENS = 12
EOS = 2


@pytest.mark.parametrize("family", ["gpt2", "llama"], indirect=True)
@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no_cache"])
def test_greedy_generation_matches_transformers(hf_model, hf_dir: Path, use_cache: bool) -> None:
    ours, _, _ = import_hf(hf_dir)
    generator = torch.Generator().manual_seed(3)
    prompts = [torch.randint(3, 100, (n,), generator=generator).tolist() for n in (9, 5)]
    ids, mask = torch.zeros(2, 9, dtype=torch.long), torch.zeros(2, 9, dtype=torch.long)
    for row, prompt in enumerate(prompts):  # left padding, as generate() expects
        ids[row, 9 - len(prompt) :], mask[row, 9 - len(prompt) :] = torch.tensor(prompt), 1
    with torch.no_grad():
        expected = hf_model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            eos_token_id=EOS,
            pad_token_id=0,
        )[:, 9:].tolist()
    cfg = GenerationConfig(max_new_tokens=NEW_TOKENS, use_cache=use_cache)
    got = generate_ids(ours, prompts, cfg, eos_id=EOS, pad_id=0)
    assert [rows[0] for rows in got] == [_until_eos(row) for row in expected]
    assert any(len(rows[0]) > 1 for rows in got)  # the comparison covers several steps


def _until_eos(row: list[int]) -> list[int]:
    return row[: row.index(EOS)] if EOS in row else row
