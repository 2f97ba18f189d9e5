#!/bin/bash
# Prepares .device/ (git-ignored through .git/info/exclude) for a GPU lease whose machine has torch but no espeak-ng,
# no package index and no text packages: a relocatable espeak-ng (binary, libespeak-ng, libsonic, a stub libpcaudio
# so the PulseAudio/ALSA chain is not needed, and only the cmn/yue/en dictionaries), cp312 wheels for the Python
# packages its image lacks, and the corpus plan. About 26 MB, inside the 64 MiB a call may carry.
# Then, on the lease: command `bash .device/run.sh`, carry [".device"].
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx '/.device/' .git/info/exclude || echo '/.device/' >> .git/info/exclude
E=.device/espeak
mkdir -p $E/bin $E/lib $E/share/espeak-ng-data .device/whl
gcc -shared -fPIC -O2 -o $E/lib/libpcaudio.so.0 tools/gpu_lease/pcaudio_stub.c
cp -L /lib/x86_64-linux-gnu/libespeak-ng.so.1 /lib/x86_64-linux-gnu/libsonic.so.0 $E/lib/
cp "$(command -v espeak-ng)" $E/bin/
D=/usr/lib/x86_64-linux-gnu/espeak-ng-data
cp -r $D/phondata $D/phondata-manifest $D/phonindex $D/phontab $D/intonations $D/voices $D/lang \
  $D/cmn_dict $D/yue_dict $D/en_dict $E/share/espeak-ng-data/
# The same bytes as the system espeak-ng, from the relocated copy:
a=$(echo 你好 | env -i LD_LIBRARY_PATH=$E/lib ESPEAK_DATA_PATH=$E/share $E/bin/espeak-ng -v cmn-latn-pinyin --stdout --stdin | md5sum)
b=$(echo 你好 | espeak-ng -v cmn-latn-pinyin --stdout --stdin | md5sum)
[ "$a" = "$b" ] || { echo "relocated espeak-ng differs"; exit 1; }
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .device/whl soundfile soxr rapidfuzz cffi pycparser
# Most training speech by random espeak-ng voices (model/corpus/random_voices.py): unheard voices cost the model more
# than unheard sentences (docs/model_releases.md, 0.12.0); the lease renders their variant files itself.
.venv/bin/python -m model.corpus.build --out data/synth --hours-per-locale 60 --train-seed 5 \
  --random-voices 5000 --random-voice-share 0.8 --plan-only .device/plan.jsonl.gz
cp tools/gpu_lease/run.sh .device/run.sh
du -sh .device
