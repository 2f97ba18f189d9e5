"""From CTC posteriors to results: prefix beam search (search) with n-gram LM fusion (lm), the spelling lexicon
(lexicon) and hotword biasing (hotwords, syllables and pronunciation for how Chinese and English sound), attention
rescoring of the n-best (rescoring), and the typed results with times and confidences (results)."""
