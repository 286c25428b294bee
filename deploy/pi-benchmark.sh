#!/usr/bin/env bash
# What a field technician needs to judge a kiosk device (a Raspberry Pi 4/5, or any kiosk PC),
# measured on it. Run from the repository with the kiosk's venv active:
#
#   deploy/pi-benchmark.sh [seconds per benchmark_app run, default 15] [loop frames, default 3000] > pi-benchmark.md
#
# It prints: the device, the temperature before and after, throttling (vcgencmd, Raspberry Pi OS
# only: under-voltage, frequency capped, throttled, soft temperature limit, now and since boot),
# the kiosk loop's frames a second at 640x480 and 1280x720 (benchmarks/bench_pipeline.py: the real
# loop on scripted visits, as fast as it goes; a camera at 15 fps needs at least 15) and its CPU
# use with a camera at 15 fps (15 x the loop's CPU time a frame), the CPU a classified frame costs
# on one inference thread and on OpenVINO's choice (benchmarks/bench_threads.py), then OpenVINO's own
# benchmark_app on every shipped model at each inference precision the CPU offers.
# Paste it into benchmarks/RESULTS.md under "Raspberry Pi" with the date.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
loop_frames="${2:-3000}"
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
echo "command: deploy/pi-benchmark.sh $seconds $loop_frames"
echo

temperature() {
  if command -v vcgencmd > /dev/null; then
    vcgencmd measure_temp | sed 's/^temp=//'
  elif [ -r /sys/class/thermal/thermal_zone0/temp ]; then
    awk '{printf "%.1f'"'"'C\n", $1 / 1000}' /sys/class/thermal/thermal_zone0/temp
  else
    echo "unknown (no vcgencmd, no thermal zone)"
  fi
}

# vcgencmd get_throttled: bits 0-3 now, 16-19 since boot (Raspberry Pi firmware)
throttling() {
  if ! command -v vcgencmd > /dev/null; then
    echo "unknown (no vcgencmd: not Raspberry Pi OS)"
    return
  fi
  local raw value names=() bit
  raw=$(vcgencmd get_throttled | sed 's/^throttled=//')
  value=$((raw))
  local -A what=([0]="under-voltage now" [1]="frequency capped now" [2]="throttled now" [3]="soft temperature limit now"
                 [16]="under-voltage since boot" [17]="frequency capped since boot" [18]="throttled since boot"
                 [19]="soft temperature limit since boot")
  for bit in 0 1 2 3 16 17 18 19; do
    if (( value >> bit & 1 )); then names+=("${what[$bit]}"); fi
  done
  if [ ${#names[@]} -eq 0 ]; then echo "none ($raw)"; else local IFS=,; echo "$raw: ${names[*]}"; fi
}

echo "- temperature before: $(temperature)"
echo "- throttling before: $(throttling)"
echo
echo "The kiosk loop (default model and precision, scripted visits; $loop_frames frames after 1000 of warm-up):"
echo
echo "| frame size | frames/s (as fast as it goes) | CPU ms a frame | CPU at 15 fps (one core = 100%) | precision |"
echo "|---|---|---|---|---|"
for size in 640x480 1280x720; do
  (cd benchmarks && python bench_pipeline.py --size "$size" --frames "$loop_frames" --json) | tail -1 | python -c '
import json, sys
r = json.loads(sys.stdin.read())
ms, cores = r["cpu_ms_per_frame"], r["cores"]
at15 = 15 * ms / 10  # percent of one core: 15 frames a second of ms each
print("| %s | %.0f | %.2f | %.0f%% of one core, %.1f%% of all %d | %s |"
      % (r["size"], r["fps"], ms, at15, at15 / cores, cores, r["precision"]))'
done
echo
echo "Inference threads, a frame classified 15 times a second (benchmarks/bench_threads.py; model.threads is 1 unless the config says):"
echo
echo '```'
(cd benchmarks && python bench_threads.py --rounds 2 2>/dev/null)
echo '```'
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
echo
echo "- temperature after: $(temperature)"
echo "- throttling after: $(throttling)"
