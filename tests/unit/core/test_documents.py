"""Document masking: in a packed row, each document is computed as if it were alone."""

from __future__ import annotations

import pytest
import torch

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.core.attention import attention_mask
from xformers_lab.core.block import Stack, document_positions
from xformers_lab.core.positions import POSITIONS

LENGTHS = [5, 1, 7, 3]  # documents packed into one row of 16 tokens
D_MODEL = 32


def config(position: str) -> TransformerConfig:
    return TransformerConfig(
        vocab_size=70, d_model=D_MODEL, n_heads=4, n_kv_heads=2, n_layers=2, max_seq_len=16,
        position=position, dropout=0.0,
    )  # fmt: skip


def documents(lengths: list[int], batch: int = 2) -> torch.Tensor:
    row = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    return row.expand(batch, -1)  # (B, T)


def spans(lengths: list[int]) -> list[slice]:
    ends = torch.tensor(lengths).cumsum(0).tolist()
    return [slice(end - n, end) for n, end in zip(lengths, ends, strict=True)]


def test_positions_restart_at_each_document() -> None:
    assert document_positions(documents(LENGTHS, 1)).tolist() == [
        [0, 1, 2, 3, 4, 0, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2]
    ]
    assert document_positions(torch.tensor([3, 3, 9, 9, 3])).tolist() == [0, 1, 0, 1, 0]


def test_the_mask_is_block_diagonal_and_causal_inside_blocks() -> None:
    docs = documents([2, 3], 1)
    mask, is_causal = attention_mask(
        causal=True, q_len=5, k_len=5, key_padding=None, bias=None, device=docs.device,
        document_ids=docs,
    )  # fmt: skip
    assert not is_causal
    assert mask[0, 0].int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 1, 1, 1],
    ]


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("causal", [True, False])
def test_each_document_of_a_packed_row_is_computed_as_if_alone(position: str, causal: bool) -> None:
    torch.manual_seed(0)
    stack = Stack(config(position), n_layers=2, causal=causal, cross=False).eval()
    x = torch.randn(2, sum(LENGTHS), D_MODEL)
    packed = stack(x, document_ids=documents(LENGTHS))
    for span in spans(LENGTHS):
        alone = stack(x[:, span])
        torch.testing.assert_close(packed[:, span], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_changing_one_document_leaves_the_others_unchanged(causal: bool) -> None:
    torch.manual_seed(0)
    stack = Stack(config("rope"), n_layers=2, causal=causal, cross=False).eval()
    docs = documents(LENGTHS)
    x = torch.randn(2, sum(LENGTHS), D_MODEL)
    changed = x.clone()
    target = spans(LENGTHS)[2]
    changed[:, target] = torch.randn_like(changed[:, target])
    before, after = stack(x, document_ids=docs), stack(changed, document_ids=docs)
    others = torch.ones(sum(LENGTHS), dtype=torch.bool)
    others[target] = False
    assert torch.equal(before[:, others], after[:, others])
    assert not torch.allclose(before[:, target], after[:, target])


@pytest.mark.parametrize("position", ["learned", "t5"])
def test_cross_attention_reads_only_the_querys_document(position: str) -> None:
    torch.manual_seed(0)
    decoder = Stack(config(position), n_layers=2, causal=True, cross=True).eval()
    memory_lengths, target_lengths = [4, 6, 2], [3, 2, 5]
    memory = torch.randn(2, sum(memory_lengths), D_MODEL)
    y = torch.randn(2, sum(target_lengths), D_MODEL)
    memory_padding = torch.ones(2, sum(memory_lengths), dtype=torch.long)
    memory_padding[1, -1] = 0  # one padded encoder position
    packed = decoder(
        y,
        memory=memory,
        memory_mask=memory_padding,
        document_ids=documents(target_lengths),
        memory_document_ids=documents(memory_lengths),
    )
    memory_spans, target_spans = spans(memory_lengths), spans(target_lengths)
    for m, t in zip(memory_spans, target_spans, strict=True):
        alone = decoder(y[:, t], memory=memory[:, m], memory_mask=memory_padding[:, m])
        torch.testing.assert_close(packed[:, t], alone, rtol=1e-5, atol=1e-5)


def test_the_decoder_lm_takes_document_ids() -> None:
    torch.manual_seed(0)
    model = build_model(config("learned")).eval()
    ids = torch.randint(7, 70, (2, sum(LENGTHS)))
    packed = model(ids, document_ids=documents(LENGTHS))
    for span in spans(LENGTHS):
        torch.testing.assert_close(packed[:, span], model(ids[:, span]), rtol=1e-5, atol=1e-5)


def test_the_encoder_lm_takes_document_ids() -> None:
    torch.manual_seed(0)
    cfg = TransformerConfig(**{**config("learned").to_dict(), "arch": "encoder"})
    model = build_model(cfg).eval()
    ids = torch.randint(7, 70, (2, sum(LENGTHS)))
    packed = model(ids, document_ids=documents(LENGTHS))
    for span in spans(LENGTHS):
        torch.testing.assert_close(packed[:, span], model(ids[:, span]), rtol=1e-5, atol=1e-5)


def test_the_encoder_decoder_lm_keeps_each_document_to_itself() -> None:
    torch.manual_seed(0)
    cfg = TransformerConfig(**{**config("t5").to_dict(), "arch": "encoder_decoder"})
    model = build_model(cfg).eval()
    source_lengths, target_lengths = [6, 3, 7], [2, 4, 3]
    source = torch.randint(7, 70, (2, sum(source_lengths)))
    target = torch.randint(7, 70, (2, sum(target_lengths)))
    packed = model(
        source,
        decoder_input_ids=target,
        document_ids=documents(source_lengths),
        decoder_document_ids=documents(target_lengths),
    )
    for s, t in zip(spans(source_lengths), spans(target_lengths), strict=True):
        alone = model(source[:, s], decoder_input_ids=target[:, t])
        torch.testing.assert_close(packed[:, t], alone, rtol=1e-5, atol=1e-5)
