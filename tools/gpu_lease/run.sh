#!/bin/bash
# Runs ON a leased GPU machine (python3 there holds torch; nothing can be downloaded): install the carried wheels,
# put the carried espeak-ng on PATH, compare the GPU with the CPU (model.evaluation.device_check), train with synthesis while
# training, average, and split the model for return
# (files come back at most 16 MiB each). Prepare .device/ here first with tools/gpu_lease/prepare.sh.
set -o pipefail
export PYTHONUNBUFFERED=1
[ -n "$SKIP_WHEELS" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD
export PATH=$PWD/.device/espeak/bin:$PATH LD_LIBRARY_PATH=$PWD/.device/espeak/lib ESPEAK_DATA_PATH=$PWD/.device/espeak/share
CONFIG=${CONFIG:-model/configs/synth_small_online.toml}
D=/tmp/runs/gpu_online
{ date; nproc; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c 'import torch,torchaudio;print(torch.__version__,torchaudio.__version__,torch.cuda.is_available())'; espeak-ng --version; } 2>&1 | tee $OUT/env.txt
echo 你好 | espeak-ng -v cmn-latn-pinyin --stdout --stdin | wc -c || exit 4
# First the GPU against the CPU (serving, streaming, training, export; under a minute): the project's CUDA path has
# never run elsewhere, and a failure here is worth knowing even if the training below succeeds.
python3 -m model.evaluation.device_check --device cuda --out $OUT/device_check.json > $OUT/device_check.log 2>&1; echo "device_check rc=$?"
python3 -m model.training.train --config $CONFIG --set online_plan="\".device/plan.jsonl.gz\"" --set output_dir="\"$D\"" ${MAXMIN:+--max-minutes $MAXMIN} 2>&1 | tr '\r' '\n' | grep -v '^train: ' | tee $OUT/train.log
rc=$?
cp $D/log.jsonl $OUT/ 2>/dev/null
ls $D
python3 -m model.training.train --config $CONFIG --set output_dir="\"$D\"" --average 3 --half --export /tmp/model.pt && split -b 15M /tmp/model.pt $OUT/model.pt.part- && sha256sum /tmp/model.pt | tee $OUT/model.sha256
nvidia-smi --query-gpu=memory.used --format=csv
echo "train rc=$rc"
