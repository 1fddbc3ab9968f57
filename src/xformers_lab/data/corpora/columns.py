"""Bring any loaded table to the corpus shape: one "text" column, one non-blank document per row."""

from __future__ import annotations

from typing import Any

from datasets import Dataset, IterableDataset, Value

from xformers_lab.errors import UserError

TEXT_DTYPES = ("string", "large_string")


def text_column(ds: Dataset | IterableDataset, field: str, where: str) -> Dataset | IterableDataset:
    """Keep column `field` of `ds` as "text" and drop blank documents.

    `where` names the data in error messages (e.g. `data.path='a/*.jsonl'`). A streamed
    dataset is checked on its first rows (reading errors there are the caller's to report).
    """
    if isinstance(ds, IterableDataset):
        return _streamed_text_column(ds, field, where)
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


def _streamed_text_column(ds: IterableDataset, field: str, where: str) -> IterableDataset:
    first = first_row(ds)
    if first is None:
        raise UserError(f"{where} holds no text (empty); point it at some text")
    if field not in first:
        raise UserError(
            f"data.text_field={field!r} is not a column of {where}; "
            f"its columns are: {', '.join(first)}"
        )
    if first[field] is not None and not isinstance(first[field], str):
        raise UserError(
            f"data.text_field={field!r} of {where} holds {type(first[field]).__name__}, not text"
        )
    ds = ds.select_columns([field])
    if field != "text":
        ds = ds.rename_column(field, "text")
    ds = ds.filter(has_text, batched=True)
    if first_row(ds) is None:
        raise UserError(f"{where} holds no text (empty or whitespace only); point it at some text")
    return ds


def first_row(ds: IterableDataset) -> dict[str, Any] | None:
    """The first row of a streamed dataset (reading only as far as it), or None when empty."""
    return next(iter(ds.take(1)), None)
