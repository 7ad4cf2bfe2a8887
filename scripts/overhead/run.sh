#!/usr/bin/env bash
# Serving overhead: oxserve against a bare hyper server (crates/server/examples/bare_http.rs) in
# one run, on the same machine, with the same external load generator and the same answer bytes.
# The ratio of their throughputs is what oxserve's own work (routing, decoding, queue, worker,
# engine, encoding, metrics, logs) costs; absolute numbers move with the machine and its neighbours.
#
#   bash scripts/overhead/run.sh [SECONDS_PER_ROW]     (default 10; about 25 rows of that)
#
# Rows: TorchServe's `POST /predictions/tiny` (JSON), the Open Inference Protocol's binary REST
# request (`POST /v2/models/tiny/infer`, raw FP32 after a JSON header) and gRPC `ModelInfer`, each
# at one client and at 64 in flight. HTTP/1.1 rows use wrk (one thread, keep-alive); gRPC rows use
# h2load (HTTP/2, 8 connections of 8 streams for 64). The model is examples/models/tiny.onnx with
# one worker and batch size 1, everything else at oxserve's defaults (metric and access logs on).
# Server CPU is read from /proc before and after each row.
#
# Installs what it lacks, idempotently: wrk and h2load (Debian's wrk and nghttp2-client; root or
# sudo), tritonclient (scripts/install-tritonclient.sh, for the gRPC request), a release build.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="${REPO}/scripts/overhead"
DURATION="${1:-10}"
cd "${REPO}"

if ! command -v wrk >/dev/null || ! command -v h2load >/dev/null; then
  sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"
  ${sudo} apt-get install -y wrk nghttp2-client >&2
fi
bash scripts/install-tritonclient.sh >&2
# OXSERVE_BIN names another oxserve binary to measure (an older build, say) instead of this tree's.
cargo build --release --locked -p oxserve -p oxserve-server --bin oxserve --example bare_http >&2
OXSERVE_BIN="${OXSERVE_BIN:-target/release/oxserve}"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "${pid}" 2>/dev/null || true; done
  # The bare servers start in command substitutions, which cannot add to PIDS: by their pid files.
  for file in "${WORK}"/bare.*.pid; do
    [[ -f "${file}" ]] && kill "$(cat "${file}")" 2>/dev/null || true
  done
  rm -rf "${WORK}"
}
trap cleanup EXIT

# The example tiny model, one worker, batch size 1.
mkdir -p "${WORK}/store"
cp -r examples/model-store/tiny "${WORK}/store/tiny"
# ENGINE=tract or ENGINE=onnxruntime picks the engine; unset, the server's default does.
printf 'minWorkers: 1\nmaxWorkers: 1\nbatchSize: 1\nmaxBatchDelay: 0\n%s' \
  "${ENGINE:+engine: ${ENGINE}
}" > "${WORK}/store/tiny/model-config.yaml"
"${OXSERVE_BIN}" serve --model-store "${WORK}/store" --models tiny --disable-token-auth \
  --log-dir "${WORK}/logs" --key-file "${WORK}/keys.json" \
  --inference-address http://127.0.0.1:0 --management-address http://127.0.0.1:0 \
  --metrics-address http://127.0.0.1:0 --grpc-inference-port 0 --grpc-management-port 0 \
  > "${WORK}/oxserve.out" 2> "${WORK}/oxserve.err" &
OXSERVE=$!
PIDS+=("${OXSERVE}")
for _ in $(seq 600); do
  grep -q "Model server started" "${WORK}/oxserve.out" 2>/dev/null && break
  sleep 0.1
done
read -r INFERENCE MANAGEMENT GRPC < <(grep -o 'http://[0-9.:]*' "${WORK}/oxserve.out" | sed -n '1p;2p;4p' | paste -sd' ')
[[ -n "${GRPC:-}" ]] || { cat "${WORK}/oxserve.err" >&2; echo "oxserve did not start" >&2; exit 1; }

# Bodies, and oxserve's own answers for the bare servers to send back.
curl -sf "${INFERENCE}/v2/models/tiny" > "${WORK}/metadata.json"
OIP_HEADER="$(.venv-triton/bin/python "${HERE}/bodies.py" examples/inputs/tiny.json \
  "${WORK}/metadata.json" "${WORK}")"
cp examples/inputs/tiny.json "${WORK}/json.bin"
curl -sf -H 'content-type: application/json' --data-binary @"${WORK}/json.bin" \
  "${INFERENCE}/predictions/tiny" -o "${WORK}/json.answer"
curl -sf -H 'content-type: application/octet-stream' \
  -H "inference-header-content-length: ${OIP_HEADER}" --data-binary @"${WORK}/oip.bin" \
  "${INFERENCE}/v2/models/tiny/infer" -o "${WORK}/oip.answer"
curl -sf --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
  --data-binary @"${WORK}/grpc.bin" "${GRPC}/inference.GRPCInferenceService/ModelInfer" \
  -o "${WORK}/grpc.answer"
[[ -s "${WORK}/json.answer" && -s "${WORK}/oip.answer" && -s "${WORK}/grpc.answer" ]] \
  || { echo "oxserve did not answer the sample requests" >&2; exit 1; }

bare() { # answer-file content-type -> prints the bare server's address
  target/release/examples/bare_http "$1" "$2" > "${WORK}/bare.$3.out" &
  echo "$!" > "${WORK}/bare.$3.pid"
  for _ in $(seq 100); do
    grep -q listening "${WORK}/bare.$3.out" 2>/dev/null && break
    sleep 0.05
  done
  grep -o 'http://[0-9.:]*' "${WORK}/bare.$3.out"
}
BARE_JSON="$(bare "${WORK}/json.answer" application/json json)"
BARE_OIP="$(bare "${WORK}/oip.answer" application/octet-stream oip)"
BARE_GRPC="$(bare "${WORK}/grpc.answer" application/grpc grpc)"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# One measured row: prints "req/s p50_us p99_us cpu_us_per_request". $1 pid, then the kind and url.
measure() {
  local pid="$1" kind="$2" url="$3" clients="$4" before after out requests seconds
  if [[ "${kind}" == grpc ]]; then
    local conns=$((clients < 8 ? clients : 8)) streams=$((clients < 8 ? 1 : clients / 8))
    run() { h2load -D "$1" -c "${conns}" -m "${streams}" -d "${WORK}/grpc.bin" \
      -H 'content-type: application/grpc' -H 'te: trailers' \
      "${url}/inference.GRPCInferenceService/ModelInfer"; }
  else
    run() { BODY_FILE="${WORK}/${kind}.bin" \
      CONTENT_TYPE="$([[ ${kind} == json ]] && echo application/json || echo application/octet-stream)" \
      EXTRA_HEADER="$([[ ${kind} == oip ]] && echo "Inference-Header-Content-Length: ${OIP_HEADER}")" \
      wrk -t1 -c "${clients}" -d "$1s" -s "${HERE}/wrk.lua" "${url}"; }
  fi
  run 2 > /dev/null # warm-up
  before="$(cpu_ticks "${pid}")"
  out="$(run "${DURATION}")"
  after="$(cpu_ticks "${pid}")"
  if [[ "${kind}" == grpc ]]; then
    requests="$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<< "${out}")"
    seconds="$(sed -n 's/^finished in \([0-9.]*\)s.*/\1/p' <<< "${out}")"
    local failed mean
    failed="$(sed -n 's/^requests: .* \([0-9]*\) failed.*/\1/p' <<< "${out}")"
    [[ "${failed}" == 0 ]] || { echo "${out}" >&2; echo "h2load: requests failed" >&2; exit 1; }
    # h2load reports the mean time per request, not percentiles.
    mean="$(awk '/^time for request:/ {v=$6; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+/, "", v);
      print (u == "ms" ? v * 1000 : u == "s" ? v * 1e6 : v)}' <<< "${out}")"
    echo "$(awk "BEGIN {print ${requests} / ${seconds}}") ${mean} - $(( (after - before) * TICK_US / requests ))"
  else
    local line
    line="$(grep '^RESULT' <<< "${out}")"
    eval "${line#RESULT }"
    [[ "${failed}" == 0 && "${non2xx}" == 0 ]] \
      || { echo "${out}" >&2; echo "wrk: requests failed" >&2; exit 1; }
    echo "$(awk "BEGIN {print ${requests} / ${seconds}}") ${p50_us} ${p99_us} $(( (after - before) * TICK_US / requests ))"
  fi
}

BARE_PID_JSON="$(cat "${WORK}/bare.json.pid")"
BARE_PID_OIP="$(cat "${WORK}/bare.oip.pid")"
BARE_PID_GRPC="$(cat "${WORK}/bare.grpc.pid")"
ENGINE_USED="$(curl -sf "${MANAGEMENT}/models/tiny" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["engine"])')"
echo "${OXSERVE_BIN} ($(git rev-parse --short HEAD) tree), engine ${ENGINE_USED}, $(nproc) cores, ${DURATION} s per row, $(date -u +%FT%TZ)"
echo
echo "| protocol | in flight | bare req/s | oxserve req/s | ratio | bare p50 µs | oxserve p50 µs | bare p99 µs | oxserve p99 µs | bare CPU µs/req | oxserve CPU µs/req |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
row() { # label kind path clients bare-url bare-pid
  local b o server="${INFERENCE}"
  [[ "$2" == grpc ]] && server="${GRPC}"
  b=($(measure "$6" "$2" "$5$3" "$4"))
  o=($(measure "${OXSERVE}" "$2" "${server}$3" "$4"))
  printf '| %s | %s | %.0f | %.0f | **%.2f** | %s | %s | %s | %s | %s | %s |\n' "$1" "$4" \
    "${b[0]}" "${o[0]}" "$(awk "BEGIN {print ${o[0]} / ${b[0]}}")" "${b[1]}" "${o[1]}" "${b[2]}" "${o[2]}" \
    "${b[3]}" "${o[3]}"
}
for c in 1 10 64; do row "TorchServe JSON" json /predictions/tiny "${c}" "${BARE_JSON}" "${BARE_PID_JSON}"; done
for c in 1 64; do row "OIP binary REST" oip /v2/models/tiny/infer "${c}" "${BARE_OIP}" "${BARE_PID_OIP}"; done
for c in 1 64; do row "gRPC ModelInfer (mean latency)" grpc "" "${c}" "${BARE_GRPC}" "${BARE_PID_GRPC}"; done
