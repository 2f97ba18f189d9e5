"""Text as the model writes and reads it: the transcript normal form (normalize), text <-> token ids (tokenizer) and
the locale names a request may use (locales). Pure and small: every other sub-package builds on it."""
