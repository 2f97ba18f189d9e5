"""Measuring a model (never imported by the service): the evaluation of a split through the service's pipeline
(evaluate, on the shared toolkit in splits), the model card written from it (model_card), the error analyses
(tone_errors, sound_alike, nbest_oracle, heldout_gap), the release rule (release_rule) and the accelerator check
(device_check)."""
