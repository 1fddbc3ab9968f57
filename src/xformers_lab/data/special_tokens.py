"""The one special-token layout shared by every tokenizer and family, at fixed ids.

    id 0 <pad>   1 </s> (eos)   2 <unk>   3 <s> (bos)   4 <mask>   5 <cls>   6 <sep>
    id 7 .. 7+N-1   <extra_id_0> .. <extra_id_{N-1}>   (T5 sentinels, N = n_sentinels)
    id 7+N ..       the tokenizer's own pieces (characters, bytes, subwords)

Fixed ids mean BERT's <mask>, T5's sentinels and GPT's </s> are where the collators expect,
whatever tokenizer produced the text.

Chat role markers (task=sft's template) take no id of their own: `<|system|>`, `<|user|>` and
`<|assistant|>` are ids 7, 8 and 9, the first three sentinels, which a decoder never reads
otherwise. So no tokenizer's ids move, old checkpoints included, and any tokenizer with at
least three sentinels (the default: 100) can render chats.
"""

from __future__ import annotations

PAD_ID, EOS_ID, UNK_ID, BOS_ID, MASK_ID, CLS_ID, SEP_ID = range(7)
FIXED_SPECIALS: tuple[str, ...] = ("<pad>", "</s>", "<unk>", "<s>", "<mask>", "<cls>", "<sep>")
DEFAULT_N_SENTINELS = 100
CHAT_ROLES: tuple[str, ...] = ("system", "user", "assistant")
"""Roles of the chat template for tokenizers trained here, in the order of their marker ids."""


def sentinel_token(index: int) -> str:
    """The text form of sentinel `index` (T5's `<extra_id_N>`)."""
    return f"<extra_id_{index}>"


def sentinel_id(index: int) -> int:
    """The id of sentinel `index`; sentinels follow the fixed specials."""
    return len(FIXED_SPECIALS) + index


def special_tokens(n_sentinels: int) -> list[str]:
    """All special tokens in id order: the fixed ones, then the sentinels."""
    return [*FIXED_SPECIALS, *(sentinel_token(i) for i in range(n_sentinels))]


def first_regular_id(n_sentinels: int) -> int:
    """The id of the first non-special piece."""
    return len(FIXED_SPECIALS) + n_sentinels


def chat_marker(role: str) -> str:
    """The text form of a chat role's marker: `<|user|>`."""
    return f"<|{role}|>"


def chat_marker_id(role: str) -> int:
    """The id of a chat role's marker: the reserved id of sentinel `CHAT_ROLES.index(role)`."""
    return sentinel_id(CHAT_ROLES.index(role))
