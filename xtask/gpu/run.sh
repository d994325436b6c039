#!/usr/bin/env bash
# Every GPU check, on a machine with an NVIDIA GPU and driver but no Rust toolchain.
#
# Built by `cargo xtask gpu-bundle` into target/gpu-bundle/ (this script and the binaries beside
# it). Runs a bf16 matmul load on GPU 0 (PyTorch, if python3 has it; steady for gpu-check, varying
# for gpu_wrap_check) and:
#   gpu-check        NVML read costs, refresh period, sampler CPU share, 20/50/100/200 ms window errors
#   nvml_hw          the #[ignore]d hardware tests of telemetry-gpu
#   gpu_wrap_check   caller cost with the NVML sampler attached, and overlapping calls' energy vs
#                    the device's energy counter read directly (independent of the sampler)
#   telemetry demo   --realtime --gpu nvml, then the energy method of every record
# Results go to $OUT (default: ./out beside this script). Total: about 3 minutes.
set -u
B="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$B/out}"
mkdir -p "$OUT"
LOAD_S="${LOAD_S:-240}"

# load MODE SECONDS: a bf16 matmul load on GPU 0 in the background, `steady` (8192² matmuls back to
# back) or `varying` (phases of 0.2-1.2 s, each heavy, light (2048²) or idle, so that the power
# changes often within gpu_wrap_check's run). Without PyTorch it says so and exits.
load() {
python3 - "$1" "$2" >> "$OUT/load.log" 2>&1 <<'PY' &
import random, sys, time
try:
    import torch
except ImportError:
    print("no torch: running without a load"); sys.exit(0)
mode, end = sys.argv[1], time.time() + float(sys.argv[2])
rng = random.Random(11)
big = [torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
small = [torch.randn(2048, 2048, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
phases = {"heavy": 0, "light": 0, "idle": 0}
while time.time() < end:
    kind = "heavy" if mode == "steady" else rng.choice(["heavy", "heavy", "light", "idle"])
    until = time.time() + (1.0 if mode == "steady" else rng.uniform(0.2, 1.2))
    phases[kind] += 1
    while time.time() < until:
        if kind == "idle":
            time.sleep(0.01)
            continue
        a, b = big if kind == "heavy" else small
        for _ in range(4):
            c = a @ b
        torch.cuda.synchronize()
print(mode, "load phases", phases)
PY
LOAD=$!
}

load steady "$LOAD_S"
sleep 10  # let the power settle

echo "== gpu-check"
"$B/gpu-check" 12 > "$OUT/gpu-check.json" 2> "$OUT/gpu-check.err"
echo "gpu-check rc=$?"
echo "== nvml_hw (ignored hardware tests)"
"$B/nvml_hw" --ignored --test-threads=1 > "$OUT/nvml-hw-tests.txt" 2>&1
echo "nvml_hw rc=$?"
tail -3 "$OUT/nvml-hw-tests.txt"
kill "$LOAD" 2>/dev/null
wait "$LOAD" 2>/dev/null
load varying "$LOAD_S"
sleep 3
echo "== gpu_wrap_check (varying load)"
"$B/gpu_wrap_check" 12 > "$OUT/gpu-wrap-check.json" 2> "$OUT/gpu-wrap-check.err"
echo "gpu_wrap_check rc=$?"
echo "== telemetry demo --realtime --gpu nvml"
TELEMETRY_NO_PROGRESS=1 "$B/telemetry" --db "$OUT/demo.db" demo --realtime --gpu nvml --calls 24 \
    > "$OUT/demo.txt" 2>&1
echo "demo rc=$?"
head -4 "$OUT/demo.txt"
"$B/telemetry" --db "$OUT/demo.db" export --format ndjson > "$OUT/demo.ndjson" 2>/dev/null
python3 - "$OUT/demo.ndjson" <<'PY'
import collections, json, sys
c = collections.Counter(json.loads(l).get("energy_method") or "none" for l in open(sys.argv[1]))
print("demo records by energy_method:", dict(c))
PY

kill "$LOAD" 2>/dev/null
wait "$LOAD" 2>/dev/null
cat "$OUT/load.log"

echo "== summary"
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
try:
    g = json.load(open(os.path.join(out, "gpu-check.json")))
except Exception as e:
    print("gpu-check.json unreadable:", e); sys.exit(0)
s = g.get("sampler", {})
print("sampler:", {k: s.get(k) for k in ("interval_ms", "counter_interval_ms", "ticks", "counter_ticks", "pct_of_one_core")})
for d in g.get("per_device", []):
    print("device", d.get("index"), "read without counter:", d.get("backend_read_without_counter_us"))
w = g.get("windows", {})
print("reference:", {k: w.get(k) for k in ("reference_s", "reference_mean_power_w", "reference_method")})
for b in w.get("by_length", []):
    print(f'{b["length_ms"]:>4} ms windows: rel err {b["sampler_rel_err"]}')
PY
python3 - "$OUT" <<'PY'
import json, sys, os
try:
    w = json.load(open(os.path.join(sys.argv[1], "gpu-wrap-check.json")))
except Exception as e:
    print("gpu-wrap-check.json unreadable:", e); sys.exit(0)
r = w.get("reference_run", {})
print("gpu_wrap_check vs the counter read directly:",
      {k: r.get(k) for k in ("threads", "seconds", "calls", "records_without_energy", "uncovered_s",
                             "counter_delta_j", "sum_per_call_j", "sum_per_call_over_counter",
                             "sampler_device_over_counter", "load_power_w_between_refreshes")})
for b in r.get("windows", []):
    print(f'  windows >= {b["min_length_s"]} s: {b["windows"]}, rel err {b["rel_err"]}')
PY
