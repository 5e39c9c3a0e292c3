#!/usr/bin/env bash
# The GPU machine's whole check in one device call, after the packages are staged (see
# benchmarks/README.md, "On the GPU machine"): the CUDA tests, then the ResNet-50 suite.
# Everything it writes goes under $OUT (the device tool's folder; ./gpu-out elsewhere):
# gpu.txt (the device), tests.txt, suite.log and suite/ (results.json, results.md).
# SUITE_ARGS adds suite options, e.g. SUITE_ARGS="--repeats 1" when time is short.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -f /tmp/gpu-stage/env.sh ] && . /tmp/gpu-stage/env.sh
out=${OUT:-gpu-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())" \
  >> "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/integration/test_gpu.py \
  tests/unit/test_model_runner.py tests/unit/test_providers.py > "$out/tests.txt" 2>&1
echo "tests: exit $?" | tee -a "$out/tests.txt"
tail -5 "$out/tests.txt"
# shellcheck disable=SC2086
python3 -m benchmarks.suite --out "$out/suite" --device cuda --models resnet50 resnet50_fp16 \
  ${SUITE_ARGS:-} > "$out/suite.log" 2>&1
echo "suite: exit $?"
tail -60 "$out/suite/results.md" 2>/dev/null || tail -30 "$out/suite.log"
