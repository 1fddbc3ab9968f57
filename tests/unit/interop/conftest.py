"""Tiny random-initialised Hugging Face models of each family we convert, built locally."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

VOCAB = 100
"""Not a multiple of 64: every import pads the vocabulary and every export strips it."""


@dataclass(frozen=True)
class Family:
    """How to build one kind of HF model, and which of its inputs our model takes."""

    name: str
    build: Callable[..., torch.nn.Module]
    """(vocab_size=VOCAB) -> a freshly initialised HF model."""
    arch: str


def _gpt2(vocab_size: int = VOCAB) -> torch.nn.Module:
    config = transformers.GPT2Config(
        vocab_size=vocab_size,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config)


def _bert(vocab_size: int = VOCAB) -> torch.nn.Module:
    config = transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return transformers.BertForMaskedLM(config)


def _t5(gated: bool, vocab_size: int = VOCAB) -> torch.nn.Module:
    config = transformers.T5Config(
        vocab_size=vocab_size,
        d_model=32,
        d_kv=16,  # n_heads * d_kv = 64 != d_model, as in t5-v1_1-small
        d_ff=48,
        num_layers=2,
        num_decoder_layers=3,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        dropout_rate=0.0,
        feed_forward_proj="gated-gelu" if gated else "relu",
        tie_word_embeddings=not gated,  # v1.1 unties the head, v1.0 ties and scales it
        decoder_start_token_id=0,
    )
    return transformers.T5ForConditionalGeneration(config)


def _llama(vocab_size: int = VOCAB) -> torch.nn.Module:
    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention
        max_position_embeddings=64,
        rope_theta=500.0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return transformers.LlamaForCausalLM(config)


FAMILIES = {
    "gpt2": Family("gpt2", _gpt2, "decoder"),
    "bert": Family("bert", _bert, "encoder"),
    "t5_v1.0": Family(
        "t5_v1.0", lambda vocab_size=VOCAB: _t5(False, vocab_size), "encoder_decoder"
    ),
    "t5_v1.1": Family("t5_v1.1", lambda vocab_size=VOCAB: _t5(True, vocab_size), "encoder_decoder"),
    "llama": Family("llama", _llama, "decoder"),
}


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Norm weights away from one and biases away from zero, so a mismapped one shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() != 1:
                continue
            if name.endswith("weight"):
                param.copy_(torch.rand(param.shape, generator=generator) + 0.5)
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.eval()


@pytest.fixture(params=list(FAMILIES))
def family(request: pytest.FixtureRequest) -> Family:
    return FAMILIES[request.param]


@pytest.fixture
def hf_model(family: Family) -> torch.nn.Module:
    """A random HF model of `family`, in eval mode."""
    torch.manual_seed(0)
    return randomise(family.build())


@pytest.fixture
def hf_dir(family: Family, hf_model: torch.nn.Module, tmp_path: Path) -> Path:
    """`hf_model` saved as transformers saves it (safetensors + config.json)."""
    path = tmp_path / f"hf_{family.name}"
    hf_model.save_pretrained(path)
    return path


def make_batch(arch: str) -> dict[str, torch.Tensor]:
    """Random ids with a right-padded second row (and decoder ids for encoder-decoders)."""
    generator = torch.Generator().manual_seed(1)
    batch = {"input_ids": torch.randint(3, VOCAB, (2, 40), generator=generator)}
    mask = torch.ones(2, 40, dtype=torch.long)
    mask[1, 25:] = 0
    batch["attention_mask"] = mask
    if arch == "encoder_decoder":
        batch["decoder_input_ids"] = torch.randint(3, VOCAB, (2, 30), generator=generator)
    return batch


@pytest.fixture
def batch(family: Family) -> dict[str, torch.Tensor]:
    return make_batch(family.arch)


TEXTS = [
    f"The quick brown fox {i} jumps over the lazy dog; def f(x): return x * {i % 7}\n"
    for i in range(300)
]
"""A small corpus the test tokenizers are trained on."""


def byte_bpe(vocab_size: int) -> transformers.PreTrainedTokenizerFast:
    """GPT-2 style: byte-level BPE with `<|endoftext|>` (id 0) as bos, eos and unk."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TEXTS, trainer)
    end = "<|endoftext|>"
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=end, eos_token=end, unk_token=end
    )


def wordpiece(vocab_size: int) -> transformers.PreTrainedTokenizerFast:
    """BERT style: lower-cased WordPiece with [PAD] [UNK] [CLS] [SEP] [MASK] at ids 0-4."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False
    )
    tokenizer.train_from_iterator(TEXTS, trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def sentencepiece_model(vocab_size: int, bos: bool) -> bytes:
    """A unigram model: pad 0, eos 1, unk 2 (T5's layout), or Llama's unk 0, bos 1, eos 2."""
    import io

    import sentencepiece as spm

    ids = {"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1} if bos else {}
    ids = ids or {"pad_id": 0, "eos_id": 1, "unk_id": 2, "bos_id": -1}
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXTS),
        model_writer=out,
        vocab_size=vocab_size,
        model_type="unigram",
        hard_vocab_limit=False,
        minloglevel=2,
        **ids,
    )
    return out.getvalue()


def save_with_tokenizer(name: str, path: Path) -> Path:
    """A random HF model of family `name` with a tokenizer of the kind its family ships
    (tokenizer.json for GPT-2 and BERT, sentencepiece for T5 and Llama), sized to fit."""
    import sentencepiece as spm

    if name in ("gpt2", "bert"):
        tokenizer = byte_bpe(300) if name == "gpt2" else wordpiece(VOCAB)
        tokenizer.save_pretrained(path)
        vocab_size = max(len(tokenizer), VOCAB)
    else:
        model = sentencepiece_model(80, bos=name == "llama")
        vocab_size = len(spm.SentencePieceProcessor(model_proto=model))
        if name.startswith("t5"):
            vocab_size += 100  # <extra_id_0..99> follow the pieces
        path.mkdir(parents=True)
        (path / ("tokenizer.model" if name == "llama" else "spiece.model")).write_bytes(model)
    torch.manual_seed(0)
    randomise(FAMILIES[name].build(vocab_size)).save_pretrained(path)
    return path
