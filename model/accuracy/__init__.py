"""How right a transcript is: error counts (CER for Chinese, WER for English) over normalised text (scoring) and how
sure a rate measured on a sample is (bootstrap). Offline evaluation and the live service's feedback count alike."""
