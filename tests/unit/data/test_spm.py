"""SentencePiece tokenizers: one special layout for every kind, the training cache, one-line
errors, and the checkpoint/tokenizer pairing check."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import sentencepiece
from datasets import Dataset

from xformers_lab.data import special_tokens as sp
from xformers_lab.data.config import TokenizerConfig
from xformers_lab.data.tokenizers import (
    TOKENIZERS,
    SentencePieceTokenizer,
    Tokenizer,
    build_tokenizer,
    check_same_tokenizer,
    tokenizer_cache_dir,
)
from xformers_lab.data.tokenizers import spm as spm_module
from xformers_lab.errors import UserError
from xformers_lab.typed_config import build

OneLine = Callable[[pytest.ExceptionInfo[BaseException]], str]
SPM_KINDS = ["spm_unigram", "spm_bpe"]
LINES = [
    "Beautiful is better than ugly.",
    "Explicit is better than implicit.",
    "Simple is better than complex.",
    "Complex is better than complicated.",
    "Flat is better than nested; sparse is better than dense.",
    "Readability counts. Errors should never pass silently.",
    "In the face of ambiguity, refuse the temptation to guess.",
]
CORPUS = ["\n".join(LINES[i:] + LINES[:i]) + "\n" for i in range(len(LINES))]
VOCAB = 7 + 100 + 256 + 60  # specials, the default 100 sentinels, bytes, 60 learned pieces


def spm(kind: str = "spm_unigram", texts: object = CORPUS, **options: object) -> Tokenizer:
    cfg = TokenizerConfig(kind=kind, **{"vocab_size": VOCAB, **options})  # type: ignore[arg-type]
    return build_tokenizer(cfg, texts)  # type: ignore[arg-type]


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls into the sentencepiece trainer."""
    calls: list[int] = []
    real = sentencepiece.SentencePieceTrainer.train
    monkeypatch.setattr(
        sentencepiece.SentencePieceTrainer,
        "train",
        lambda *a, **k: calls.append(1) or real(*a, **k),
    )
    return calls


def test_every_kind_has_the_same_special_layout_at_the_default_sentinel_count() -> None:
    layouts = {}
    for kind in TOKENIZERS:
        cfg = TokenizerConfig(kind=kind, **({"vocab_size": VOCAB} if kind in SPM_KINDS else {}))
        tok = build_tokenizer(cfg, CORPUS)
        first = tok.first_regular_id
        assert first == sp.first_regular_id(sp.DEFAULT_N_SENTINELS) == 107
        layouts[kind] = (
            [tok.pad_id, tok.eos_id, tok.unk_id, tok.bos_id, tok.mask_id, tok.cls_id, tok.sep_id],
            [tok.sentinel_id(i) for i in range(100)],
            [tok.decode([i]) for i in range(first)],
            tok.encode("<mask><extra_id_99></s>", parse_special=True),
        )
    expected = (
        list(range(7)),
        list(range(7, 107)),
        sp.special_tokens(100),
        [sp.MASK_ID, sp.sentinel_id(99), sp.EOS_ID],
    )
    assert all(layout == expected for layout in layouts.values()), layouts


@pytest.mark.parametrize("kind", SPM_KINDS)
def test_the_model_has_the_requested_size_and_specials_are_never_produced_from_text(
    kind: str,
) -> None:
    tok = spm(kind)
    assert isinstance(tok, SentencePieceTokenizer) and tok.vocab_size == VOCAB
    ids = tok.encode("<mask> <cls> <sep> <extra_id_0> <pad> <unk> <s> </s> ".join(CORPUS))
    assert min(ids) >= tok.first_regular_id
    assert len(tok.encode(CORPUS[0])) < 0.7 * len(CORPUS[0])  # learned pieces, not characters


def test_the_second_run_reuses_the_cached_model(trainings: list[int]) -> None:
    first = spm()
    second = spm()
    assert (first.from_cache, second.from_cache) == (False, True)
    assert len(trainings) == 1 and first.fingerprint() == second.fingerprint()
    assert len(list(tokenizer_cache_dir().glob("spm_unigram-*.model"))) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"vocab_size": VOCAB - 10},
        {"character_coverage": 1.0},
        {"input_sentence_size": 3},
        {"n_sentinels": 5},
        {"kind": "spm_bpe"},
        {"texts": [*CORPUS, "one more document"]},
    ],
)
def test_other_settings_or_text_train_again(
    change: dict[str, object], trainings: list[int]
) -> None:
    spm()
    options = {"vocab_size": VOCAB - 100 + 5} if change.get("n_sentinels") == 5 else {}
    tok = spm(**{**options, **change})  # type: ignore[arg-type]
    assert not tok.from_cache and len(trainings) == 2


def test_a_dataset_column_is_identified_by_its_fingerprint_without_reading_it(
    trainings: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    spm(texts=Dataset.from_dict({"text": CORPUS})["text"])
    monkeypatch.setattr(spm_module, "sample_sentences", lambda *a: pytest.fail("read the corpus"))
    again = spm(texts=Dataset.from_dict({"text": CORPUS})["text"])  # rebuilt: same fingerprint
    assert again.from_cache and len(trainings) == 1


def test_cache_dir_setting_overrides_the_environment(tmp_path: Path) -> None:
    spm(cache_dir=str(tmp_path / "mine"))
    assert len(list((tmp_path / "mine").glob("*.model"))) == 1
    assert not tokenizer_cache_dir().exists()


def test_a_corrupt_cached_model_is_retrained(trainings: list[int]) -> None:
    spm()
    (path,) = tokenizer_cache_dir().glob("*.model")
    path.write_bytes(b"not a model")
    tok = spm()
    assert not tok.from_cache and len(trainings) == 2
    assert path.read_bytes() == tok.model


def test_sampling_caps_the_training_sentences() -> None:
    docs = [f"line {i}\n" * 300 for i in range(20)]  # 20 docs of 2400 chars: 40 sentences
    assert len(spm_module.sample_sentences(docs, 0)) == 40
    sample = spm_module.sample_sentences(docs, 7)
    assert len(sample) == 7 and sample == spm_module.sample_sentences(docs, 7)
    assert all(len(s) <= spm_module.SENTENCE_CHARS for s in sample)
    assert spm_module.sample_sentences(["x" * 5000], 0) == ["x" * 2048, "x" * 2048, "x" * 904]


@pytest.mark.parametrize("kind", SPM_KINDS)
def test_pickles_for_worker_processes(kind: str) -> None:
    tok = spm(kind)
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.fingerprint() == tok.fingerprint()
    assert clone.encode(CORPUS[0]) == tok.encode(CORPUS[0])


def test_vocab_sizes_the_corpus_cannot_fill_fail_in_one_line(one_line: OneLine) -> None:
    with pytest.raises(UserError) as err:
        spm(vocab_size=5000)
    assert one_line(err).startswith(
        "tokenizer=spm_unigram: tokenizer.vocab_size=5000 is too large for this corpus (at most "
    )
    with pytest.raises(UserError) as err:
        spm(vocab_size=7 + 100 + 256 + 1)
    assert "is too small: this corpus's characters need" in one_line(err)
    with pytest.raises(UserError) as err:
        spm(texts=["   ", "\n\n"])
    assert one_line(err) == "tokenizer=spm_unigram has no training text; the train split is empty"


def test_a_foreign_model_is_refused_in_one_line(one_line: OneLine) -> None:
    tok = spm()
    with pytest.raises(UserError) as err:
        type(tok)(tok.model, n_sentinels=5)  # the model holds 100 sentinels
    assert "does not have the shared special layout for n_sentinels=5" in one_line(err)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "char", "vocab_size": 1000}, "vocab_size is read by the spm_unigram and spm_"),
        ({"kind": "byte", "cache_dir": "x"}, "cache_dir is read by the spm_unigram and spm_bpe"),
        ({"kind": "spm_bpe", "vocab_size": 300}, "vocab_size must be at least 364"),
        ({"kind": "spm_bpe", "character_coverage": 0.5}, "character_coverage must be in [0.9, 1]"),
        ({"kind": "spm_bpe", "input_sentence_size": -1}, "input_sentence_size must be >= 0"),
    ],
)
def test_bad_settings_fail_in_one_line(fields: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=r"^tokenizer: ") as err:
        build(TokenizerConfig, fields, "tokenizer")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_check_same_tokenizer_accepts_the_same_and_refuses_another(one_line: OneLine) -> None:
    saved = spm()
    check_same_tokenizer(saved.state_dict(), spm(), "init_from=run/last.ckpt")
    check_same_tokenizer(saved, saved, "init_from=run/last.ckpt")
    other = build_tokenizer(TokenizerConfig(kind="char"), CORPUS)
    with pytest.raises(UserError) as err:
        check_same_tokenizer(saved.state_dict(), other, "init_from=run/last.ckpt")
    message = one_line(err)
    assert message.startswith(
        f"init_from=run/last.ckpt: the checkpoint's tokenizer (spm_unigram, {VOCAB} ids, "
        "100 sentinels, fingerprint "
    )
    assert f"differs from this run's (char, {other.vocab_size} ids" in message
    with pytest.raises(UserError, match="differs"):
        check_same_tokenizer(saved, spm("spm_bpe"), "init_from=x")


def test_tokenizing_in_several_processes_gives_the_same_ids() -> None:
    from xformers_lab.data.packing import tokenize

    tok = spm()
    ds = Dataset.from_dict({"text": CORPUS * 4})
    assert list(tokenize(ds, tok, num_proc=2)["input_ids"]) == tok.encode_batch(CORPUS * 4)
