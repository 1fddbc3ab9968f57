"""SFT: completion-only labels, the chat template (ours at reserved ids, or an imported
tokenizer's jinja), packing that changes no example's loss, truncation counted, bad chats in
one line, and prompts framed for `generate` as in training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset

from xformers_lab.core import TransformerConfig
from xformers_lab.data.collators import IGNORE_INDEX
from xformers_lab.data.special_tokens import CHAT_ROLES, sentinel_token
from xformers_lab.data.tokenizers import CharTokenizer, HFTokenizer, tokenizer_from_state
from xformers_lab.errors import UserError
from xformers_lab.tasks.sft import SFT, ChatTemplate, SFTOptions, check_chats

TOKENIZER = CharTokenizer("abcdefgh=", n_sentinels=3)
EOS = TOKENIZER.eos_id
SYSTEM, USER, ASSISTANT = 7, 8, 9


def ids(text: str) -> list[int]:
    return TOKENIZER.encode(text)


def make_task(tokenizer=TOKENIZER, **options: object) -> SFT:
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=tokenizer.vocab_size, d_model=32, n_heads=4, n_layers=2, max_seq_len=64
    )
    return SFT(cfg, tokenizer, SFTOptions(**options)).eval()  # type: ignore[arg-type]


def encode(rows: dict[str, list], task: SFT) -> Dataset:
    raw = task.prepare_examples({"train": Dataset.from_dict(rows)})["train"]  # type: ignore[arg-type]
    return raw.map(SFT.encoder(task.tokenizer, task.options), batched=True)


def pairs(n: int = 6) -> dict[str, list[str]]:
    prompts = ["ab=", "abcdefg=", "h=", "cdcd=", "a=", "bbbbbbbbb="]
    completions = ["ba", "gfedcba", "h", "dcdc", "a", "b"]
    return {"prompt": prompts[:n], "completion": completions[:n]}


def test_completion_only_labels_cover_the_completion_and_its_eos() -> None:
    task = make_task()
    examples = encode(pairs(1), task)
    batch = SFT.collator(TOKENIZER, 16, task.options)(list(examples))
    assert batch["input_ids"].tolist() == [[EOS, *ids("ab=ba")]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX] * 3 + [*ids("ba"), EOS]]
    assert batch["prompt_lens"].tolist() == [4]
    everything = SFT.collator(TOKENIZER, 16, SFTOptions(completion_only=False))(list(examples))
    assert everything["labels"].tolist() == [[*ids("ab=ba"), EOS]]


def test_our_chat_template_uses_the_reserved_marker_ids_and_trains_every_answer() -> None:
    chat = [
        {"role": "system", "content": "h"},
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": "ba"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "cc"},
    ]
    template = ChatTemplate(TOKENIZER)
    tokens, targets, prompt_len = template.encode(chat)
    assert tokens == [EOS, SYSTEM, *ids("h"), USER, *ids("ab"), ASSISTANT, *ids("ba"), EOS,
                      USER, *ids("c"), ASSISTANT, *ids("cc"), EOS]  # fmt: skip
    trained = [t for t, keep in zip(tokens, targets, strict=True) if keep]
    assert trained == [*ids("ba"), EOS, *ids("cc"), EOS]
    assert tokens[:prompt_len] == template.prompt(chat[:-1])
    assert tokens[prompt_len - 1] == ASSISTANT


def test_the_role_markers_move_no_id_of_an_old_tokenizer() -> None:
    """A char tokenizer's state as the first release saved it: the same ids for text and
    sentinels, and the markers are the ids of its first three sentinels."""
    old = {"kind": "char", "n_sentinels": 100, "chars": "abc"}
    tokenizer = tokenizer_from_state(old)
    assert tokenizer.state_dict() == old
    assert tokenizer.encode("abc<extra_id_1>", parse_special=True) == [107, 108, 109, 8]
    assert tokenizer.encode("<|user|>") != [8]  # plain text is never read as a marker
    assert [tokenizer.role_id(role) for role in CHAT_ROLES] == [7, 8, 9]
    assert [tokenizer.decode([i]) for i in (7, 8, 9)] == [sentinel_token(i) for i in range(3)]


def test_a_tokenizer_without_three_sentinels_cannot_render_chats() -> None:
    task = make_task(CharTokenizer("ab", n_sentinels=0))
    chats = {
        "messages": [[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]]
    }
    with pytest.raises(UserError, match=r"chats cannot be rendered: .* this tokenizer has 0"):
        task.prepare_examples({"train": Dataset.from_dict(chats)})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("chat", "message"),
    [
        ([{"role": "bot", "content": "a"}], "train chat 0 has a message of role 'bot'; roles"),
        ([{"role": "user", "content": "a"}], "ends with a user message"),
        ([], "train chat 0 has no messages"),
    ],
)
def test_a_chat_that_cannot_train_is_one_line(chat: list, message: str) -> None:
    with pytest.raises(UserError, match=message):
        check_chats([chat], "train")


def test_prompt_completion_or_messages_and_nothing_else() -> None:
    task = make_task()
    with pytest.raises(UserError, match="found prompt"):
        task.prepare_examples({"train": Dataset.from_dict({"prompt": ["a"]})})  # type: ignore[arg-type]


def test_generate_frames_a_chat_model_prompt_as_a_user_turn() -> None:
    task = make_task()
    plain = task.prompt_ids("ab")
    assert plain == [EOS, *ids("ab")]
    task.format = "chat"
    assert task.prompt_ids("ab") == [EOS, USER, *ids("ab"), ASSISTANT]
    assert task.prompt_ids("ab", chat=False) == plain
    assert SFT.from_head(task.model_config, TOKENIZER, task.head_config()).format == "chat"


def token_losses(task: SFT, batch: dict) -> torch.Tensor:
    logits = task.model(batch["input_ids"], document_ids=batch.get("document_ids"))
    return F.cross_entropy(
        logits.flatten(0, 1), batch["labels"].flatten(), reduction="none"
    ).view_as(batch["labels"])


def test_a_packed_batch_gives_each_example_the_loss_it_has_padded() -> None:
    """Packed rows with the document mask: no example attends to another and positions restart,
    so every example's loss is its padded loss (1e-5), and the examples all come back once."""
    padded_task, packed_task = make_task(), make_task(packing=True)
    examples = encode(pairs(), padded_task)
    padded = SFT.collator(TOKENIZER, 16, padded_task.options)(list(examples))
    collate = SFT.collator(TOKENIZER, 16, packed_task.options)
    rows, notes = collate.prepare(examples, "train")
    assert len(rows) < len(examples) and notes[0].startswith("train: packed 6 examples into")
    assert all(len(row) <= 16 for row in rows["input_ids"])
    packed = collate(list(rows))
    with torch.no_grad():
        padded_losses, packed_losses = (
            token_losses(padded_task, padded),
            token_losses(packed_task, packed),
        )
    per_example = {}
    for row in range(len(packed["input_ids"])):
        docs, labels = packed["document_ids"][row], packed["labels"][row]
        for doc in docs.unique().tolist():
            where = (docs == doc) & (labels != IGNORE_INDEX)
            if where.any():
                key = tuple(packed["input_ids"][row][docs == doc].tolist())
                per_example[key] = packed_losses[row][where].sum() / where.sum()
    assert len(per_example) == len(examples)
    for i, length in enumerate(padded["input_ids"].ne(TOKENIZER.pad_id).sum(1).tolist()):
        key = tuple(padded["input_ids"][i][:length].tolist())
        where = padded["labels"][i] != IGNORE_INDEX
        expected = padded_losses[i][where].sum() / where.sum()
        torch.testing.assert_close(per_example[key], expected, rtol=1e-5, atol=1e-5)


def test_long_examples_are_dropped_or_cut_from_the_left_and_counted() -> None:
    task = make_task()
    examples = encode(pairs(), task)  # lengths, the start and </s> included: 7 17 5 11 5 13
    kept, notes = SFT.collator(TOKENIZER, 8, task.options).prepare(examples, "train")
    assert kept["prompt"] == ["ab=", "h=", "a="]
    assert notes == [
        "train: dropped 3 of 6 examples longer than data.seq_len=8 (+1 shifted) tokens "
        "(task.truncation=left cuts their prompts instead)"
    ]
    left = SFTOptions(truncation="left")
    cut, notes = SFT.collator(TOKENIZER, 8, left).prepare(examples, "train")
    assert notes == [
        "train: 2 of 6 prompts cut from the left to fit data.seq_len=8 (+1 shifted) tokens; "
        "1 dropped: their completion alone is longer"
    ]
    assert cut["prompt"] == ["ab=", "h=", "cdcd=", "a=", "bbbbbbbbb="]
    assert cut[2]["input_ids"] == [EOS, *ids("cd="), *ids("dcdc"), EOS]  # the start stays
    assert cut[2]["targets"] == [0, 0, 0, 0, 1, 1, 1, 1, 1] and cut[2]["prompt_len"] == 4
    assert cut[4]["input_ids"] == [EOS, *ids("bbbbb="), *ids("b"), EOS]


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture
def chatml_tokenizer() -> HFTokenizer:
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    pieces = ["<unk>", "</s>", "<|im_start|>", "<|im_end|>", *"abcdefghijklmnopqrstuvwxyz\n "]
    backend = Tokenizer(models.WordLevel({c: i for i, c in enumerate(pieces)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()
    specials = {"<unk>": 0, "</s>": 1, "<|im_start|>": 2, "<|im_end|>": 3}
    return HFTokenizer(
        backend="tokenizers",
        model=backend.to_str(),
        specials=specials,
        roles={"eos": 1, "pad": 1, "unk": 0},
        sentinels=[],
        chat_template=CHATML,
    )


def test_an_imported_chat_template_trains_its_answers_and_frames_prompts(chatml_tokenizer) -> None:
    template = ChatTemplate(chatml_tokenizer)
    chat = [{"role": "user", "content": "ab"}, {"role": "assistant", "content": "ba"}]
    tokens, targets, prompt_len = template.encode(chat)
    text = chatml_tokenizer.decode(tokens)
    assert text == "<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\nba<|im_end|>\n</s>"
    trained = chatml_tokenizer.decode([t for t, keep in zip(tokens, targets, strict=True) if keep])
    assert trained == "ba<|im_end|>\n</s>"
    assert tokens[:prompt_len] == template.prompt(chat[:1])
    assert chatml_tokenizer.decode(template.prompt(chat[:1])).endswith("<|im_start|>assistant\n")
    state = chatml_tokenizer.state_dict()
    assert tokenizer_from_state(state).chat_template == CHATML
