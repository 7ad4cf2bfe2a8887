#!/usr/bin/env bash
# Throughput of `oxserve job --redact` over Contact Lens calls (the held-out synthetic calls,
# ~18 turns each, round and round): documents per second on one core, on every core, and with two
# processes sharing one job (shards + leases), each from a fresh output folder, on a local folder
# (in memory where /dev/shm exists) so the store does not dominate. Writes docs/results/jobs/bench.md.
#
#   bash scripts/jobs/bench.sh [DOCUMENTS]    (default 4000)
set -euo pipefail
cd "$(dirname "$0")/../.."
DOCS="${1:-4000}"
cargo build --release --locked -q -p oxserve
BIN="$PWD/target/release/oxserve"
# In memory (tmpfs) where there is one: the figure is the job's, not this machine's disk's.
if [[ -d /dev/shm && -w /dev/shm ]]; then WORK="$(mktemp -d -p /dev/shm)"; else WORK="$(mktemp -d)"; fi
trap 'rm -rf "${WORK}"' EXIT
python3 - "$WORK/in" "$DOCS" <<'PY'
import json, os, sys
out, count = sys.argv[1], int(sys.argv[2])
calls = [json.loads(l) for l in open("crates/pii/eval/heldout-calls.jsonl")]
for i in range(count):
    c = calls[i % len(calls)]
    folder = os.path.join(out, f"day-{i % 10}")
    os.makedirs(folder, exist_ok=True)
    turns = [{"Id": f"{c['id']}-{j}", "ParticipantId": t["role"], "Content": t["text"]} for j, t in enumerate(c["turns"])]
    json.dump({"Version": "1.1.0", "Transcript": turns}, open(os.path.join(folder, f"call-{i:06}.json"), "w"))
PY
BYTES=$(du -sb "$WORK/in" | cut -f1)
CORES=$(nproc)
seconds() { python3 -c "import time; print(time.time())"; }
run() { # label, then the command(s) to time
  local label="$1"; shift
  rm -rf "$WORK/out"
  local start end
  start=$(seconds)
  "$@"
  end=$(seconds)
  python3 -c "
s = $end - $start
print(f'| $label | {s:.2f} | {$DOCS / s:,.0f} | {$DOCS / s / ${CORES_USED}:,.0f} |')"
}
one_core() { taskset -c 0 "$BIN" job --input "$WORK/in" --output "$WORK/out" --redact --quiet --concurrency 2 2>/dev/null; }
all_cores() { "$BIN" job --input "$WORK/in" --output "$WORK/out" --redact --quiet 2>/dev/null; }
two_processes() {
  "$BIN" job --input "$WORK/in" --output "$WORK/out" --redact --quiet --shard 0/2 --worker-id a --concurrency 2 2>/dev/null &
  "$BIN" job --input "$WORK/in" --output "$WORK/out" --redact --quiet --shard 1/2 --worker-id b --concurrency 2 2>/dev/null
  wait
}
{
  echo "# oxserve job --redact throughput"
  echo
  echo "$DOCS Contact Lens calls ($(( BYTES / DOCS )) bytes, ~18 turns each), local folder in and out ($(df --output=fstype "$WORK" | tail -1)),"
  echo "batches of 1,000, $(date -u +%Y-%m-%d), $CORES cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))."
  echo "Command: \`bash scripts/jobs/bench.sh $DOCS\`."
  echo
  echo "| run | seconds | documents/s | per core |"
  echo "|---|---|---|---|"
  CORES_USED=1 run "1 process, 1 core (taskset)" one_core
  CORES_USED=$CORES run "1 process, $CORES cores" all_cores
  CORES_USED=$CORES run "2 processes (--shard 0/2, 1/2), $CORES cores" two_processes
} | tee /dev/stderr > "$WORK/bench.md"
mkdir -p docs/results/jobs
cp "$WORK/bench.md" docs/results/jobs/bench.md
