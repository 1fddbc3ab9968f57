"""`python -m xformers_lab.fill_mask ckpt=<path> text="def <mask>(self):" [top_k=5] [device=cpu]`

Prints the top candidates, with probabilities, for each `<mask>` of the text, from a masked-LM
(BERT) checkpoint; see `inference.fill_mask` for what one `<mask>` stands for per tokenizer.
"""

from __future__ import annotations

import sys

from xformers_lab.errors import UserError, reported_user_errors
from xformers_lab.inference.fill_mask import render
from xformers_lab.inference.loading import load

USAGE = (
    'usage: python -m xformers_lab.fill_mask ckpt=<path> text="... <mask> ..." '
    "[top_k=5] [device=cpu]"
)
KEYS = ("ckpt", "text", "top_k", "device")


def parse_args(argv: list[str]) -> dict[str, str]:
    """`key=value` arguments; an unknown, malformed or missing one is a `UserError`."""
    args: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in KEYS:
            raise UserError(f"unknown argument {arg!r}; {USAGE}")
        args[key] = value
    for key in ("ckpt", "text"):
        if key not in args:
            raise UserError(f"missing {key}=...; {USAGE}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    with reported_user_errors():
        args = parse_args(sys.argv[1:] if argv is None else argv)
        try:
            top_k = int(args.get("top_k", "5"))
        except ValueError:
            raise UserError(f"top_k must be an int, got {args['top_k']!r}") from None
        lab = load(args["ckpt"], device=args.get("device", "cpu"))
        fills = lab.fill_mask(args["text"], top_k=top_k)
        print(render(args["text"], fills, lab.tokenizer.specials[lab.tokenizer.mask_id]))


if __name__ == "__main__":
    main()
