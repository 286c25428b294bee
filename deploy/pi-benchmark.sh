#!/usr/bin/env bash
# OpenVINO's own benchmark_app on every shipped model, at each inference precision the CPU
# offers, on this device. For a technician choosing a model and precision on a Raspberry Pi
# (or any kiosk PC). Run from the repository with the kiosk's venv active:
#
#   deploy/pi-benchmark.sh [seconds per run, default 15] > pi-benchmark.md
#
# Then paste the table into benchmarks/RESULTS.md under "Raspberry Pi" with the date.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
command -v benchmark_app >/dev/null || { echo "benchmark_app not found: activate the kiosk's venv (pip install .)" >&2; exit 1; }
case "$(uname -m)" in
  aarch64|arm*) precisions="f32 f16" ;;  # ARM: f16 is OpenVINO's default there
  *) precisions="f32 bf16" ;;            # x86: bf16 where the CPU has AVX-512 BF16/AMX, else it falls back to f32
esac
if [ -r /sys/firmware/devicetree/base/model ]; then
  model_name="$(tr -d '\0' < /sys/firmware/devicetree/base/model)"  # e.g. "Raspberry Pi 5 Model B Rev 1.0"
else
  model_name="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
fi
echo "## $(date -u +%Y-%m-%d) ${model_name:-unknown device} ($(uname -m), $(nproc) cores), openvino $(python -c 'import openvino; print(openvino.__version__)')"
echo
echo "command: deploy/pi-benchmark.sh $seconds"
echo
echo "| model | precision hint | latency median ms (1 request, LATENCY) | fps (THROUGHPUT) |"
echo "|---|---|---|---|"
for xml in models/fast-mpoxnet-int8.xml models/fast-mpoxnet.xml models/efficientnet-lite0-int8.xml models/efficientnet-lite0.xml; do
  [ -f "$xml" ] || continue
  for p in $precisions; do
    lat=$(benchmark_app -m "$xml" -d CPU -hint latency -infer_precision "$p" -t "$seconds" 2>&1 | awk '/Median:/ {print $(NF-1); exit}')
    fps=$(benchmark_app -m "$xml" -d CPU -hint throughput -infer_precision "$p" -t "$seconds" 2>&1 | awk '/Throughput:/ {print $(NF-1); exit}')
    echo "| $(basename "$xml") | $p | ${lat:-failed} | ${fps:-failed} |"
  done
done
