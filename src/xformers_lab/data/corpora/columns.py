"""Bring any loaded table to the corpus shape: one "text" column, one non-blank document per row."""

from __future__ import annotations

from typing import Any

from datasets import Dataset, Value

from xformers_lab.errors import UserError

TEXT_DTYPES = ("string", "large_string")


def text_column(ds: Dataset, field: str, where: str) -> Dataset:
    """Keep column `field` of `ds` as "text" and drop blank documents.

    `where` names the data in error messages (e.g. `data.path='a/*.jsonl'`).
    """
    if field not in ds.column_names:
        raise UserError(
            f"data.text_field={field!r} is not a column of {where}; "
            f"its columns are: {', '.join(ds.column_names)}"
        )
    feature = ds.features[field]
    if not isinstance(feature, Value) or feature.dtype not in TEXT_DTYPES:
        raise UserError(f"data.text_field={field!r} of {where} holds {feature}, not text")
    ds = ds.select_columns([field])
    if field != "text":
        ds = ds.rename_column(field, "text")
    if feature.dtype != "string":
        ds = ds.cast_column("text", Value("string"))
    ds = ds.filter(has_text, batched=True, desc="dropping blank documents")
    if len(ds) == 0:
        raise UserError(f"{where} holds no text (empty or whitespace only); point it at some text")
    return ds


def has_text(batch: dict[str, list[Any]]) -> list[bool]:
    """Which rows hold a document: not missing, not empty, not only whitespace."""
    return [bool(text) and not text.isspace() for text in batch["text"]]
