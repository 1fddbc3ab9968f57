"""An HF directory's tokenizer comes in at the model's own ids, encodes as transformers does,
survives the checkpoint's state round trip, and goes back out loadable by AutoTokenizer."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import sentencepiece as spm

from xformers_lab.data.tokenizers import ByteTokenizer, check_same_tokenizer, tokenizer_from_state
from xformers_lab.data.tokenizers.hf import HFTokenizer
from xformers_lab.errors import UserError
from xformers_lab.interop.tokenizer_files import read_tokenizer, write_tokenizer

from .conftest import TEXTS, byte_bpe, sentencepiece_model, wordpiece

transformers = pytest.importorskip("transformers")

SAMPLE = "The lazy fox: def g(y): return y * 3  # ünïcode ✓\n"


def saved(tokenizer: transformers.PreTrainedTokenizerFast, path: Path) -> Path:
    tokenizer.save_pretrained(path)
    return path


def test_tokenizer_json_encodes_and_decodes_as_transformers(tmp_path: Path) -> None:
    hf = byte_bpe(400)
    ours = read_tokenizer(saved(hf, tmp_path), {"model_type": "gpt2"})
    assert isinstance(ours, HFTokenizer)
    for text in [SAMPLE, *TEXTS[:5]]:
        assert ours.encode(text) == hf.encode(text, add_special_tokens=False)
        assert ours.decode(ours.encode(text)) == text
    assert ours.eos_id == ours.bos_id == ours.pad_id == 0  # no pad: padded with eos, as HF does
    assert ours.mask_id is None and ours.vocab_size == len(hf)
    assert ours.encode("a<|endoftext|>b", parse_special=True)[1] == 0
    assert ours.decode([0], skip_special=True) == ""


def test_wordpiece_roles_come_from_the_tokenizer_config(tmp_path: Path) -> None:
    hf = wordpiece(200)
    ours = read_tokenizer(saved(hf, tmp_path), {"model_type": "bert"})
    roles = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
    for role, token in roles.items():
        assert getattr(ours, f"{role}_id") == hf.convert_tokens_to_ids(token)
    assert ours.eos_id == ours.sep_id  # BERT has no eos: documents are joined with [SEP]
    text = "the quick [MASK] fox"
    expected = hf.encode(text, add_special_tokens=False)
    assert ours.encode(text, parse_special=True) == expected


def test_sentencepiece_t5_has_extra_ids_as_sentinels(tmp_path: Path) -> None:
    model = sentencepiece_model(80, bos=False)
    (tmp_path / "spiece.model").write_bytes(model)
    ours = read_tokenizer(tmp_path, {"model_type": "t5"})
    n_pieces = len(spm.SentencePieceProcessor(model_proto=model))
    assert (ours.pad_id, ours.eos_id, ours.unk_id) == (0, 1, 2)
    assert ours.n_sentinels == 100 and ours.vocab_size == n_pieces + 100
    assert ours.sentinel_id(0) == n_pieces + 99 and ours.sentinel_id(99) == n_pieces
    ids = ours.encode("the fox<extra_id_0> dog", parse_special=True)
    assert ours.sentinel_id(0) in ids
    assert ours.decode(ids) == "the fox<extra_id_0> dog"


def test_llama_tokenizer_model_roles_from_config(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.model").write_bytes(sentencepiece_model(80, bos=True))
    ours = read_tokenizer(tmp_path, {"model_type": "llama", "bos_token_id": 1, "eos_token_id": 2})
    assert (ours.unk_id, ours.bos_id, ours.eos_id, ours.pad_id) == (0, 1, 2, 2)
    assert ours.n_sentinels == 0
    text = TEXTS[0].strip()  # trained with default normalisation: the end newline goes
    assert ours.decode(ours.encode(text)) == text


def test_no_tokenizer_file_is_none(tmp_path: Path) -> None:
    assert read_tokenizer(tmp_path, {"model_type": "gpt2"}) is None


def test_state_round_trip_keeps_ids_and_fingerprint(tmp_path: Path) -> None:
    ours = read_tokenizer(saved(byte_bpe(400), tmp_path), {"model_type": "gpt2"})
    restored = tokenizer_from_state(ours.state_dict())
    assert restored.fingerprint() == ours.fingerprint()
    assert restored.encode(SAMPLE) == ours.encode(SAMPLE)
    assert restored.token_bytes() == ours.token_bytes()
    check_same_tokenizer(ours.state_dict(), restored, "init_from=x.ckpt")
    with pytest.raises(UserError, match="differs"):
        check_same_tokenizer(ours, ByteTokenizer(n_sentinels=100), "init_from=x.ckpt")


def test_token_bytes_count_text_and_not_specials(tmp_path: Path) -> None:
    ours = read_tokenizer(saved(wordpiece(200), tmp_path), {"model_type": "bert"})
    counts = ours.token_bytes()
    assert len(counts) == ours.vocab_size
    assert all(counts[i] == 0 for i in ours.specials)
    assert sum(counts[i] for i in ours.encode("quick")) >= len("quick")


@pytest.mark.parametrize("build", [byte_bpe, wordpiece], ids=["bpe", "wordpiece"])
def test_written_tokenizer_loads_in_auto_tokenizer(build, tmp_path: Path) -> None:
    ours = read_tokenizer(saved(build(300), tmp_path / "in"), {"model_type": "x"})
    (tmp_path / "out").mkdir()
    write_tokenizer(ours, tmp_path / "out", "gpt2")
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert auto.encode(SAMPLE, add_special_tokens=False) == ours.encode(SAMPLE)
    assert auto.eos_token_id == ours.eos_id and auto.pad_token_id == ours.pad_id


def test_hf_kind_cannot_be_trained() -> None:
    with pytest.raises(UserError, match="convert from-hf"):
        HFTokenizer.train(TEXTS, n_sentinels=0)


def test_tokenizer_json_without_the_tokenizers_library_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved(byte_bpe(300), tmp_path)
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # as if not installed
    with pytest.raises(UserError, match=r"pip install 'xformers_lab\[interop\]'") as err:
        read_tokenizer(tmp_path, {"model_type": "gpt2"})
    assert "\n" not in str(err.value)


def test_a_chat_template_comes_in_and_goes_back_out(tmp_path: Path) -> None:
    """tokenizer_config.json's chat_template travels in the state; a tokenizer without one keeps
    the state (and fingerprint) it had before templates were read."""
    hf = byte_bpe(300)
    plain = read_tokenizer(saved(hf, tmp_path / "plain"), {"model_type": "gpt2"})
    assert plain.chat_template is None and "chat_template" not in plain.state_dict()
    hf.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    ours = read_tokenizer(saved(hf, tmp_path / "chat"), {"model_type": "gpt2"})
    assert ours.chat_template == hf.chat_template
    assert tokenizer_from_state(ours.state_dict()).chat_template == hf.chat_template
    assert ours.fingerprint() != plain.fingerprint()
    (tmp_path / "out").mkdir()
    write_tokenizer(ours, tmp_path / "out", "gpt2")
    again = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert again.chat_template == hf.chat_template
