"""`convert_from_hf` writes the checkpoint format training writes: `xformers_lab.load` rebuilds
the model and tokenizer, and fill-mask and generation run on it as on transformers; `to-hf`
reads it back out."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import xformers_lab
from xformers_lab import checkpoints
from xformers_lab.errors import UserError
from xformers_lab.interop import convert_from_hf, convert_to_hf, import_hf

from .conftest import FAMILIES, save_with_tokenizer

transformers = pytest.importorskip("transformers")

TASKS = {"gpt2": "clm", "bert": "mlm", "t5_v1.0": "span", "t5_v1.1": "span", "llama": "clm"}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_checkpoint_loads_with_its_tokenizer(name: str, tmp_path: Path) -> None:
    hf_dir = save_with_tokenizer(name, tmp_path / "hf")
    ckpt = convert_from_hf(hf_dir, tmp_path / "model.ckpt")
    payload = checkpoints.read(ckpt).payload
    assert payload.format == checkpoints.FORMAT and payload.task == TASKS[name]
    lab = xformers_lab.load(ckpt)
    model, tokenizer, _ = import_hf(hf_dir)
    assert lab.config == model.config and lab.task == TASKS[name]
    assert lab.tokenizer.fingerprint() == tokenizer.fingerprint()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(lab.model.state_dict()[key], value, atol=0, rtol=0)


def test_fill_mask_on_imported_bert_ranks_as_transformers(tmp_path: Path) -> None:
    hf_dir = save_with_tokenizer("bert", tmp_path / "hf")
    lab = xformers_lab.load(convert_from_hf(hf_dir, tmp_path / "bert.ckpt"))
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    hf = transformers.AutoModelForMaskedLM.from_pretrained(hf_dir).eval()
    text = "the quick brown [MASK] jumps"
    body = hf_tokenizer.encode(text, add_special_tokens=False)
    ids = torch.tensor([[hf_tokenizer.cls_token_id, *body, hf_tokenizer.sep_token_id]])
    with torch.no_grad():
        probs = hf(input_ids=ids).logits[0, ids[0] == hf_tokenizer.mask_token_id].softmax(-1)
    top = probs.topk(5)
    fills = lab.fill_mask(text, top_k=5)[0]
    assert [c.token for c in fills] == [lab.tokenizer.decode([i]) for i in top.indices[0]]
    torch.testing.assert_close(torch.tensor([c.prob for c in fills]), top.values[0])


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_decoder_generate_continues_as_transformers(name: str, tmp_path: Path) -> None:
    """The prompt follows the model's own start token: GPT-2's <|endoftext|>, Llama's <s>."""
    hf_dir = save_with_tokenizer(name, tmp_path / "hf")
    lab = xformers_lab.load(convert_from_hf(hf_dir, tmp_path / "model.ckpt"))
    prompt = "The quick brown"
    ids = [lab.tokenizer.document_start_id, *lab.tokenizer.encode(prompt)]
    assert ids[0] == (1 if name == "llama" else 0)
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        out = hf.generate(input_ids=torch.tensor([ids]), max_new_tokens=10, do_sample=False)
    expected = out[0, len(ids) :].tolist()
    if lab.tokenizer.eos_id in expected:
        expected = expected[: expected.index(lab.tokenizer.eos_id)]
    assert len(expected) > 1
    assert lab.generate(prompt, max_new_tokens=10) == lab.tokenizer.decode(expected)


@pytest.mark.parametrize("name", ["t5_v1.0", "t5_v1.1"])
def test_t5_generate_fills_sentinels_as_transformers(name: str, tmp_path: Path) -> None:
    hf_dir = save_with_tokenizer(name, tmp_path / "hf")
    lab = xformers_lab.load(convert_from_hf(hf_dir, tmp_path / "t5.ckpt"))
    prompt = "the quick<extra_id_0> fox"
    ids = [*lab.tokenizer.encode(prompt, parse_special=True), lab.tokenizer.eos_id]
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        # no cache: transformers 5 sizes T5's cache by the encoder's depth (2), not the decoder's
        out = hf.generate(
            input_ids=torch.tensor([ids]), max_new_tokens=10, do_sample=False, use_cache=False
        )
    expected = out[0, 1:].tolist()  # after the decoder start (pad)
    if lab.tokenizer.eos_id in expected:
        expected = expected[: expected.index(lab.tokenizer.eos_id)]
    assert len(expected) > 1  # the comparison covers several steps
    assert lab.generate(prompt, max_new_tokens=10) == lab.tokenizer.decode(expected)


def test_to_hf_writes_what_transformers_loads_with_the_tokenizer(tmp_path: Path) -> None:
    hf_dir = save_with_tokenizer("gpt2", tmp_path / "hf")
    out = convert_to_hf(convert_from_hf(hf_dir, tmp_path / "gpt2.ckpt"), tmp_path / "out")
    original = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    exported = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, original(ids).logits)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert tokenizer.eos_token == "<|endoftext|>" and exported.config.eos_token_id == 0


def test_a_directory_without_tokenizer_fails_in_one_line(tmp_path: Path) -> None:
    torch.manual_seed(0)
    FAMILIES["gpt2"].build().save_pretrained(tmp_path / "hf")
    with pytest.raises(UserError, match="has no tokenizer") as err:
        convert_from_hf(tmp_path / "hf", tmp_path / "x.ckpt")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x.ckpt").exists()


@pytest.mark.parametrize("name", ["llama", "t5_v1.1"])
def test_sentencepiece_tokenizer_goes_back_out_for_auto_tokenizer(name: str, tmp_path) -> None:
    hf_dir = save_with_tokenizer(name, tmp_path / "hf")
    ckpt = convert_from_hf(hf_dir, tmp_path / "model.ckpt")
    auto = transformers.AutoTokenizer.from_pretrained(convert_to_hf(ckpt, tmp_path / "out"))
    ours = xformers_lab.load(ckpt).tokenizer
    text = "The quick brown fox jumps"
    assert auto.encode(text, add_special_tokens=False) == ours.encode(text)
    assert (auto.eos_token_id, auto.pad_token_id) == (ours.eos_id, ours.pad_id)
    if ours.n_sentinels:
        assert auto.convert_tokens_to_ids("<extra_id_0>") == ours.sentinel_id(0)
