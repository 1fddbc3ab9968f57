"""xformers_lab: one modular transformer core, three families (BERT, GPT, T5)."""
