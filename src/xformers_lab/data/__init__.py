"""Data: corpora, tokenizers, packing, collators and the LightningDataModule that serves them."""
