#!/usr/bin/env bash
# Side by side: the same sweep against TorchServe and against oxserve on the same model, merged
# into one report. Usage: bash scripts/torchserve/compare.sh [sweep.yaml] [out-dir]
# Needs scripts/torchserve/install.sh to have run, and a release build of oxserve.
set -euo pipefail
cd "$(dirname "$0")/../.."
SWEEP=${1:-examples/tune/tiny.yaml}
OUT=${2:-tune-compare}
VENV=.venv-torchserve
OXSERVE=${OXSERVE:-./target/release/oxserve}
[ -x "$VENV/bin/torchserve" ] || { echo "run scripts/torchserve/install.sh first" >&2; exit 1; }
[ -x "$OXSERVE" ] || cargo build --release -p oxserve
mkdir -p "$OUT"

# TorchServe registers .mar files: point the sweep's url at the archive of the same model.
model_url=$("$VENV/bin/python" -c "import sys,yaml;d=yaml.safe_load(open(sys.argv[1]));m=next(iter(d.values()));print(next(iter(m.values()))['url'])" "$SWEEP")
sed "s#url: *${model_url}\b.*#url: ${model_url}.mar#" "$SWEEP" > "$OUT/sweep-torchserve.yaml"

# Stops TorchServe and waits until its frontend has exited (`torchserve --stop` only signals it),
# so that the oxserve run does not share the machine with a JVM shutting down.
stop_torchserve() {
    "$VENV/bin/torchserve" --stop >/dev/null 2>&1 || true
    for _ in $(seq 120); do
        pgrep -f org.pytorch.serve.ModelServer >/dev/null || return 0
        sleep 0.5
    done
    echo "warning: TorchServe was still running 60 s after --stop" >&2
}

# TorchServe writes its logs under LOG_LOCATION (./logs by default); keep them with the report.
LOG_LOCATION="$OUT/torchserve-logs" METRICS_LOCATION="$OUT/torchserve-logs" \
    "$VENV/bin/torchserve" --start --ncs --disable-token-auth --enable-model-api \
    --ts-config scripts/torchserve/config.properties \
    --model-store .torchserve/model-store > "$OUT/torchserve.log" 2>&1
trap stop_torchserve EXIT
up=false
for _ in $(seq 60); do curl -sf http://127.0.0.1:8080/ping >/dev/null && up=true && break; sleep 1; done
$up || { echo "TorchServe did not answer /ping within 60 s; see $OUT/torchserve.log" >&2; exit 1; }
"$OXSERVE" tune --config "$OUT/sweep-torchserve.yaml" --label torchserve --out "$OUT/torchserve" \
    --url http://127.0.0.1:8080 --management-url http://127.0.0.1:8081 \
    --metrics-url http://127.0.0.1:8082/metrics
stop_torchserve
trap - EXIT

"$OXSERVE" tune --config "$SWEEP" --label oxserve --model-store examples/model-store --out "$OUT/oxserve"
"$OXSERVE" tune --merge "$OUT/torchserve" --merge "$OUT/oxserve" --out "$OUT"
echo "combined report: $OUT/report.md"
