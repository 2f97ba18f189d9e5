"""Training (never imported by the service): the trainer and its config (train, train_config), the feature cache and
batches (dataset), synthesis while training (online_corpus), the Whisper-backbone recipe (train_backbone,
backbone_cache), the greedy dev errors training reports (greedy_eval) and building the n-gram LMs and lexicons a
checkpoint carries (build_lm). The corpus builder is the sibling package model.corpus."""
