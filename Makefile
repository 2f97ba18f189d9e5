# Two commands for a newcomer: `make serve` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
SYSTEM_PACKAGES := espeak-ng sox fortunes wamerican wbritish libsndfile1 prometheus chromium fonts-noto-cjk g++ python3-dev

.PHONY: serve test install system-deps corpus train evaluate bundle bundle-backbone bench clean

# System packages the tests and the corpus builder use (Debian/Ubuntu; needs root or sudo): fortunes holds the English
# sentences of the synthetic corpus and wamerican / wbritish the spelling dictionaries of the English lexicon (`bundle`);
# chromium runs the browser tests of the web page (tests/service/test_web.py); fonts-noto-cjk gives its screenshots CJK glyphs;
# g++ and python3-dev (the headers of Debian's Python) compile the first-pass search (setup.py).
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch 2.14.1 is a CUDA build: the finished .venv takes about 6.5 GB. Say so up front rather than let pip fail
# half-way with "No space left on device" (what a nearly full CI disk once did).
VENV_NEED_MB ?= 7000
# The install also compiles the first-pass search (setup.py; g++, about half a minute): its source is a prerequisite, so
# that `make test` after editing it tests the new build.
$(VENV)/.installed: pyproject.toml setup.py model/decoding/_ctc_search.cpp | $(BIN)/python
	@have=$$(df -Pm $(VENV) | awk 'NR==2 {print $$4}'); used=$$(du -sm $(VENV) | cut -f1); \
	if [ $$((have + used)) -lt $(VENV_NEED_MB) ]; then \
	  echo "install: .venv needs about $(VENV_NEED_MB) MB (torch's CUDA build); $$have MB free on $$(df -P $(VENV) | awk 'NR==2 {print $$6}') with $$used MB already in .venv. Free some disk and rerun." >&2; \
	  exit 1; \
	fi
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,corpus]'
	touch $@

install: system-deps $(VENV)/.installed

serve: install
	ASR_PORT=$(PORT) $(BIN)/python -m service

test: install
	$(BIN)/ruff check --quiet model service bench tests
	$(BIN)/lint-imports --no-logo
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# --- model pipeline (see README "Training your own model") ---
corpus: install
	$(BIN)/python -m model.corpus.build --out data/synth --hours-per-locale 30 --jobs 2 --seed 0

train: install
	$(BIN)/python -m model.training.train --config model/configs/synth_small.toml

evaluate: install
	$(BIN)/python -m model.evaluation.evaluate --checkpoint model/checkpoints/default.pt --manifest data/synth/test.jsonl

# Package a run of the espeak-ng-only recipe as the synthetic-voices model (the default's companion, served by name):
# average the last snapshots (float16), continuing the previous release's history; add the n-gram LMs and the English
# lexicon (its LM text's words and two spelling dictionaries); tune the LM weights, beams and finals' n-best ranking on
# dev (150 utterances per locale); evaluate on test; measure where the Chinese errors come from (tones) and the English
# ones (sound-alike words) on dev; store every result in the checkpoint and write the model card from it.
# BUNDLE_AVERAGE_ARGS: what the averaging step needs besides, e.g. for 0.14.0
#   make bundle BUNDLE_AVERAGE_ARGS="--set 'output_dir=\"runs/s18\"' --interpolate-with runs/init_v0130.pt"
BUNDLE := model/checkpoints/synthetic/synthetic_voices.pt
BUNDLE_DIR = $(dir $(BUNDLE))
BUNDLE_AVERAGE_ARGS ?=
bundle: install
	$(BIN)/python -m model.training.train --config model/configs/synth_small.toml --average 2 --half --history-from $(BUNDLE) --export $(BUNDLE) $(BUNDLE_AVERAGE_ARGS)
	$(BIN)/python -m model.training.build_lm --checkpoint $(BUNDLE) --order 4 en-US=5 --lexicon en-US \
	  --word-list en-US=/usr/share/dict/american-english en-US=/usr/share/dict/british-english \
	  --exclude data/synth/dev.jsonl data/synth/test.jsonl
	$(BIN)/python -m model.evaluation.evaluate --checkpoint $(BUNDLE) --manifest data/synth/test.jsonl \
	  --tune-lm-on data/synth/dev.jsonl --tune-per-locale 150 --store --out $(BUNDLE_DIR)eval.json
	$(BIN)/python -m model.evaluation.tone_errors --checkpoint $(BUNDLE) --manifest data/synth/dev.jsonl --store  # served split: after tuning
	$(BIN)/python -m model.evaluation.sound_alike --checkpoint $(BUNDLE) --manifest data/synth/dev.jsonl --store
	$(BIN)/python -m model.evaluation.model_card --checkpoint $(BUNDLE) --out $(BUNDLE_DIR)MODEL_CARD.md

# Package a model trained on the Whisper backbone, with its companion and gate (docs/training.md), as the bundled
# default, or with BACKBONE_BUNDLE, BACKBONE_NAME and BACKBONE_VERSION as another: its last snapshot in float16,
# decoding tuned on natural voices (Kokoro reading dev sentences, nearer real speech than espeak-ng: BACKBONE_TUNE_ON),
# then the synthetic test, real speech (../shared/realdev, never trained on) and the held-out synthesiser family (flite
# English) evaluated, where the errors come from measured on dev (tones, sound-alike words), all stored, and the model
# card written from them, next to the checkpoint.
BACKBONE_RUN ?= runs/bbg16
BACKBONE_BUNDLE ?= model/checkpoints/default.pt
BACKBONE_NAME ?= openasr-real-speech
BACKBONE_VERSION ?= 0.16.0
BACKBONE_DIR = $(dir $(BACKBONE_BUNDLE))
BACKBONE_TUNE_ON ?= data/kokoro_dev_all/manifest.jsonl
REAL_DEV ?= ../shared/realdev/manifest.jsonl
HELDOUT_SYNTH ?= data/flite_test/manifest.jsonl
# How many of the tuning manifest's utterances per locale the decoding search reads.
BACKBONE_TUNE_PER_LOCALE ?= 100
bundle-backbone: install
	$(BIN)/python -c "from model.network.checkpoint import load_checkpoint, save_checkpoint; m = load_checkpoint('$(BACKBONE_RUN)/last.pt'); \
	  save_checkpoint('$(BACKBONE_BUNDLE)', m.model, m.tokenizer, '$(BACKBONE_NAME)' or m.name, '$(BACKBONE_VERSION)' or m.version, \
	  m.metadata, m.language_models, half=True)"
	$(BIN)/python -m model.evaluation.evaluate --checkpoint $(BACKBONE_BUNDLE) --manifest data/synth/test.jsonl --limit-per-locale 150 \
	  --tune-lm-on $(BACKBONE_TUNE_ON) --tune-per-locale $(BACKBONE_TUNE_PER_LOCALE) --store --out $(BACKBONE_DIR)eval.json
	$(BIN)/python -m model.evaluation.evaluate --checkpoint $(BACKBONE_BUNDLE) --manifest $(REAL_DEV) --store --store-as real_speech_evaluation \
	  --out $(BACKBONE_DIR)eval_real_speech.json
	$(BIN)/python -m model.evaluation.evaluate --checkpoint $(BACKBONE_BUNDLE) --manifest $(HELDOUT_SYNTH) --store \
	  --store-as heldout_synthesiser_evaluation --out $(BACKBONE_DIR)eval_heldout_synthesiser.json
	$(BIN)/python -m model.evaluation.tone_errors --checkpoint $(BACKBONE_BUNDLE) --manifest data/synth/dev.jsonl --store
	$(BIN)/python -m model.evaluation.sound_alike --checkpoint $(BACKBONE_BUNDLE) --manifest data/synth/dev.jsonl --store
	$(BIN)/python -m model.evaluation.model_card --checkpoint $(BACKBONE_BUNDLE) --out $(BACKBONE_DIR)MODEL_CARD.md

bench: install
	$(BIN)/python bench/bench_features.py && $(BIN)/python bench/bench_encoder.py

clean:
	rm -rf $(VENV) .pytest_cache .import_linter_cache
