"""The command line's one-line messages for config mistakes, read off Hydra's errors."""

from __future__ import annotations

import pytest

from xformers_lab.cli import compose_config
from xformers_lab.errors import UserError


def test_an_unknown_option_lists_exactly_the_groups_options() -> None:
    with pytest.raises(UserError) as err:
        compose_config("train", ["model=gtp"])
    # Hydra's message goes on with its config search path, which is no option
    options = "bert, bert_original, gpt, llama, t5"
    assert str(err.value) == f"unknown model 'gtp'; choose one of: {options}"
