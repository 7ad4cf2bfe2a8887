#!/usr/bin/env bash
# Python workers side by side: the same .mar served by TorchServe 0.12 (its Java frontend) and by
# oxserve (python=.venv-python-torch/bin/python), both driving TorchServe's own Python worker, one
# server at a time on this machine, with the same config.properties (1 worker, batch size 1).
#
#   bash scripts/torchserve/python-workers.sh [out-dir]        # default: python-workers-compare
#
# Models (built into <out-dir>/work at run time from tests/fixtures/pytorch, nothing downloaded):
#   cnn  tests/fixtures/pytorch/cnn: a TorchScript CNN through TorchServe's default image_classifier;
#        input: tests/fixtures/handlers/vision/classifier/photos/coffee.jpg (image/jpeg)
#   mlp  the fixture's TinyMlp (4 -> 8 -> 2, weights from mlp.pt) saved as TorchScript, through the
#        fixture's custom handler mlp_handler.py, unchanged; input: [0.5, -1.0, 2.0, 0.25] (JSON)
# For each model and server: start it with the model loaded at start and time launch -> first 200
# from POST /predictions/<model> (START_RUNS starts; the last one stays up), sum VmRSS over the
# server's process tree (frontend + Python workers) once loaded and again after the load, run
# `oxserve bench` closed-loop at each concurrency for DURATION seconds after WARMUP requests
# (server CPU per request read from /proc around each row), stop it and wait until every process of
# its tree is gone. Writes <out-dir>/results.md, results.csv (load rows), startup.csv (start and
# memory), raw/ (each bench's result.json and ab_report.csv) and logs/.
#
# Environment: DURATION (seconds per row, 15), WARMUP (requests before each row, 200),
# CONCURRENCY ("1 10 64"), MODELS ("cnn mlp"), START_RUNS (3), PORT (inference port, 18080;
# management +1, metrics +2, gRPC +3/+4), OXSERVE (./target/release/oxserve, built if missing;
# OXSERVE_REV names the commit it was built from, for results.md),
# VENV (.venv-python-torch, from scripts/install-python-torch.sh). TorchServe needs Java 17+.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${1:-python-workers-compare}
OUT_ARG=$OUT
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-200}
CONCURRENCY=${CONCURRENCY:-"1 10 64"}
MODELS=${MODELS:-"cnn mlp"}
START_RUNS=${START_RUNS:-3}
PORT=${PORT:-18080}
START_TIMEOUT=${START_TIMEOUT:-180}
OXSERVE=${OXSERVE:-./target/release/oxserve}
VENV=${VENV:-.venv-python-torch}

[ -x "$VENV/bin/torchserve" ] || { echo "run scripts/install-python-torch.sh first ($VENV/bin/torchserve missing)" >&2; exit 1; }
command -v java >/dev/null || { echo "TorchServe needs a Java 17+ runtime on PATH" >&2; exit 1; }
[ -x "$OXSERVE" ] || cargo build --release -p oxserve
OXSERVE=$(realpath "$OXSERVE")
PY=$(realpath -s "$VENV/bin/python")
URL=http://127.0.0.1:$PORT
CLK_TCK=$(getconf CLK_TCK)

mkdir -p "$OUT"
OUT=$(realpath "$OUT")
WORK=$OUT/work
rm -rf "$OUT/raw" "$OUT/logs" "$WORK"
mkdir -p "$OUT/raw" "$OUT/logs" "$WORK/store" "$WORK/models" "$WORK/inputs" "$WORK/ts-tmp"
# Run a fixed copy of the binary (a hard link when possible): a rebuild during the run cannot swap it.
OXSERVE_BUILT=$(date -u -r "$OXSERVE" '+%Y-%m-%d %H:%M UTC')
ln -f "$OXSERVE" "$WORK/oxserve" 2>/dev/null || cp "$OXSERVE" "$WORK/oxserve"
OXSERVE_SRC=$OXSERVE
OXSERVE=$WORK/oxserve

# ---------------------------------------------------------------------------------------------
# The archives and inputs.
"$PY" - "$ROOT/tests/fixtures/pytorch" "$WORK" <<'EOF'
import json, os, shutil, sys, zipfile
import torch

fixtures, work = sys.argv[1], sys.argv[2]
models = os.path.join(work, "models")

# cnn: the fixture folder as it is.
shutil.copytree(os.path.join(fixtures, "cnn"), os.path.join(models, "cnn"))

# mlp: the fixture's eager TinyMlp with its weights, scripted; the fixture's handler unchanged.
# No modelFile in the manifest, so BaseHandler loads mlp.pt with torch.jit.load.
sys.path.insert(0, os.path.join(fixtures, "mlp"))
from model import TinyMlp  # noqa: E402

net = TinyMlp()
net.load_state_dict(torch.load(os.path.join(fixtures, "mlp", "mlp.pt")))
net.eval()
mlp = os.path.join(models, "mlp")
os.makedirs(os.path.join(mlp, "MAR-INF"))
torch.jit.script(net).save(os.path.join(mlp, "mlp.pt"))
shutil.copy(os.path.join(fixtures, "mlp", "mlp_handler.py"), mlp)
with open(os.path.join(mlp, "MAR-INF", "MANIFEST.json"), "w") as f:
    json.dump({"createdOn": "01/01/2025 00:00:00", "runtime": "python",
               "model": {"modelName": "mlp", "serializedFile": "mlp.pt",
                         "handler": "mlp_handler.py", "modelVersion": "1.0"},
               "archiverVersion": "0.12.0"}, f, indent=2)

# A .mar is a zip of the model folder (MAR-INF/MANIFEST.json included).
for name in ("cnn", "mlp"):
    folder = os.path.join(models, name)
    with zipfile.ZipFile(os.path.join(work, "store", name + ".mar"), "w", zipfile.ZIP_DEFLATED) as z:
        for dirpath, _, files in os.walk(folder):
            for file in sorted(files):
                path = os.path.join(dirpath, file)
                z.write(path, os.path.relpath(path, folder))
EOF
cp tests/fixtures/handlers/vision/classifier/photos/coffee.jpg "$WORK/inputs/cnn.jpg"
echo '[0.5, -1.0, 2.0, 0.25]' > "$WORK/inputs/mlp.json"

input_of() { case $1 in cnn) echo "$WORK/inputs/cnn.jpg" ;; mlp) echo "$WORK/inputs/mlp.json" ;; *) echo "unknown model $1" >&2; exit 1 ;; esac; }
type_of() { case $1 in cnn) echo image/jpeg ;; mlp) echo application/json ;; esac; }

# One config.properties for both servers. TorchServe ignores the oxserve-only keys (job_store,
# key_file); `python` is the workers' interpreter for both.
CONF=$WORK/config.properties
cat > "$CONF" <<EOF
inference_address=http://127.0.0.1:$PORT
management_address=http://127.0.0.1:$((PORT + 1))
metrics_address=http://127.0.0.1:$((PORT + 2))
grpc_inference_port=$((PORT + 3))
grpc_management_port=$((PORT + 4))
default_workers_per_model=1
disable_token_authorization=true
python=$PY
job_store=$WORK/jobs
key_file=$WORK/key_file.json
EOF

# ---------------------------------------------------------------------------------------------
# Process tree, memory and CPU of a running server.

# The pid and every descendant of it.
tree_pids() {
    ps -e -o pid= -o ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            keep[root] = 1; grown = 1
            while (grown) { grown = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grown = 1 } }
            for (p in keep) if (p in parent) print p
        }'
}
# Sum of VmRSS (KiB) of the given pids.
rss_kib() {
    local total=0 pid v
    for pid in "$@"; do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
# "pid ticks" (user + system CPU, clock ticks) for each given pid that is running.
cpu_snapshot() {
    local pid
    for pid in "$@"; do
        # Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
        sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk -v p="$pid" '{ print p, $12 + $13 }' || true
    done
}
# CPU ticks spent between two snapshots (files): by the pids in both, plus all of those only in
# the second (started in between). A process that started and ended in between is not counted.
cpu_delta() {
    awk 'NR == FNR { before[$1] = $2; next } { total += $2 - (($1 in before) ? before[$1] : 0) } END { print total + 0 }' "$1" "$2"
}
now() { date +%s.%N; }

# POSTs the model's input every 20 ms until a 200; prints the seconds since $1 and keeps the
# answer's body in $3.
first_answer() {
    local t0=$1 model=$2 body=$3 code deadline
    deadline=$(awk -v t="$(now)" -v d="$START_TIMEOUT" 'BEGIN { printf "%.0f", t + d }')
    while :; do
        code=$(curl -s -o "$body" -w '%{http_code}' --max-time 30 -H "Content-Type: $(type_of "$model")" \
            --data-binary @"$(input_of "$model")" "$URL/predictions/$model" || true)
        if [ "$code" = 200 ]; then
            awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'
            return 0
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "no 200 from $URL/predictions/$model within ${START_TIMEOUT} s (last status $code)" >&2
            return 1
        fi
        sleep 0.02
    done
}

# Whether the pid is a live process (a zombie, exited but not yet reaped, is not).
running() { local state; state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) && [ -n "$state" ] && [ "$state" != Z ]; }
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

# ---------------------------------------------------------------------------------------------
# Starting and stopping. SERVER_PID: the frontend (TorchServe's java, or oxserve).
SERVER=""
SERVER_PID=""
START_SECS=""

start_server() { # server model log; sets SERVER_PID and START_SECS (launch to first answer)
    local server=$1 model=$2 log=$3 t0
    for p in $PORT $((PORT + 1)) $((PORT + 2)) $((PORT + 3)) $((PORT + 4)); do
        port_free "$p" || { echo "port $p is in use: stop what listens there or set PORT" >&2; exit 1; }
    done
    SERVER=$server
    case $server in
        torchserve)
            # `torchserve --start` launches java and exits; it writes java's pid to
            # $TMPDIR/.model_server.pid (a private TMPDIR, so another TorchServe's pid file is no matter).
            rm -f "$WORK/ts-tmp/.model_server.pid"
            t0=$(now)
            TMPDIR=$WORK/ts-tmp LOG_LOCATION=$OUT/logs/torchserve-$model \
                METRICS_LOCATION=$OUT/logs/torchserve-$model \
                "$VENV/bin/torchserve" --start --ncs --disable-token-auth --ts-config "$CONF" \
                --model-store "$WORK/store" --models "$model=$model.mar" >> "$log" 2>&1
            SERVER_PID=$(cat "$WORK/ts-tmp/.model_server.pid")
            ;;
        oxserve)
            t0=$(now)
            LOG_LOCATION=$OUT/logs/oxserve-$model "$OXSERVE" serve --ts-config "$CONF" --disable-token-auth \
                --model-store "$WORK/store" --models "$model=$model.mar" >> "$log" 2>&1 &
            SERVER_PID=$!
            ;;
    esac
    START_SECS=$(first_answer "$t0" "$model" "$OUT/raw/$model-$server-answer") || { echo "see $log" >&2; exit 1; }
    grep -q . "/proc/$SERVER_PID/cmdline" 2>/dev/null || { echo "$server (pid $SERVER_PID) is not running" >&2; exit 1; }
    if [ "$server" = torchserve ]; then
        tr '\0' ' ' < "/proc/$SERVER_PID/cmdline" | grep -q org.pytorch.serve.ModelServer \
            || { echo "pid $SERVER_PID is not TorchServe's frontend" >&2; exit 1; }
    fi
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    local pids pid alive
    pids=$(tree_pids "$SERVER_PID")
    case $SERVER in
        torchserve) TMPDIR=$WORK/ts-tmp "$VENV/bin/torchserve" --stop >/dev/null 2>&1 || true ;;
        oxserve) kill -TERM "$SERVER_PID" 2>/dev/null || true ;;
    esac
    for i in $(seq 240); do
        alive=""
        for pid in $pids; do running "$pid" && alive="$alive $pid"; done
        [ -z "$alive" ] && break
        if [ "$i" = 120 ]; then
            echo "warning: $SERVER still running 60 s after the stop (pids$alive); killing them" >&2
            for pid in $alive; do kill -KILL "$pid" 2>/dev/null || true; done
        fi
        sleep 0.5
    done
    [ "$SERVER" = oxserve ] && { wait "$SERVER_PID" 2>/dev/null || true; }
    SERVER_PID=""
}
trap stop_server EXIT

# ---------------------------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "model,server,concurrency,duration_s,ok,failed,req_per_s,p50_ms,p99_ms,server_cpu_ms_per_req,frontend_cpu_ms_per_req,worker_cpu_ms_per_req,generator_cores_busy" > "$OUT/results.csv"
echo "model,server,start_runs,start_s_median,start_s_min,start_s_max,start_s_all,rss_loaded_mib,rss_loaded_frontend_mib,rss_loaded_workers_mib,processes_loaded,rss_after_mib,rss_after_frontend_mib,rss_after_workers_mib" > "$OUT/startup.csv"

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

for model in $MODELS; do
    input=$(input_of "$model")
    ctype=$(type_of "$model")
    for server in torchserve oxserve; do
        echo "== $model on $server" >&2
        log=$OUT/logs/$server-$model.log
        starts=()
        for run in $(seq "$START_RUNS"); do
            start_server "$server" "$model" "$log"
            starts+=("$START_SECS")
            echo "   start $run: first answer after $START_SECS s" >&2
            if [ "$run" -lt "$START_RUNS" ]; then stop_server; fi
        done
        # The last start stays up. Memory once loaded and answered once.
        sleep 1
        pids=$(tree_pids "$SERVER_PID")
        workers=$(echo "$pids" | grep -vx "$SERVER_PID" || true)
        rss_fe=$(rss_kib "$SERVER_PID")
        rss_wk=$(rss_kib $workers)
        nproc_loaded=$(echo "$pids" | wc -w)
        echo "   RSS loaded: $(mib $((rss_fe + rss_wk))) MiB in $nproc_loaded processes" >&2

        for c in $CONCURRENCY; do
            raw=$OUT/raw/$model-$server-c$c
            warm=$(( WARMUP > 4 * c ? WARMUP : 4 * c ))
            cpu_snapshot "$SERVER_PID" > "$raw.fe0"
            cpu_snapshot $(tree_pids "$SERVER_PID" | grep -vx "$SERVER_PID") > "$raw.wk0"
            "$OXSERVE" bench --url "$URL" --model "$model" --input "$input" --content-type "$ctype" \
                -c "$c" --duration "$DURATION" --warmup "$warm" --workers 1 --batch-size 1 \
                --no-progress --out "$raw" > "$raw.txt" 2>&1 \
                || { echo "bench failed, see $raw.txt" >&2; cat "$raw.txt" >&2; exit 1; }
            cpu_snapshot "$SERVER_PID" > "$raw.fe1"
            cpu_snapshot $(tree_pids "$SERVER_PID" | grep -vx "$SERVER_PID") > "$raw.wk1"
            fe=$(cpu_delta "$raw.fe0" "$raw.fe1"); wk=$(cpu_delta "$raw.wk0" "$raw.wk1")
            rm -f "$raw".fe[01] "$raw".wk[01]
            # The CPU counters include the warm-up; count its requests too.
            row=$(jq -r --argjson fe "$fe" --argjson wk "$wk" --argjson hz "$CLK_TCK" \
                --argjson warm "$warm" --arg m "$model" --arg s "$server" '
                (.ok + $warm) as $n
                | [$m, $s, .concurrency, (.duration_s * 100 | round / 100), .ok, .failed,
                   (.ok / .duration_s * 10 | round / 10),
                   (.latency_ms.p50 * 1000 | round / 1000), (.latency_ms.p99 * 1000 | round / 1000),
                   (($fe + $wk) * 1000 / $hz / $n * 1000 | round / 1000),
                   ($fe * 1000 / $hz / $n * 1000 | round / 1000),
                   ($wk * 1000 / $hz / $n * 1000 | round / 1000),
                   ((.generator.cores_busy // 0) * 100 | round / 100)] | @csv' "$raw/result.json" | tr -d '"')
            echo "$row" >> "$OUT/results.csv"
            echo "   c=$c: $row" >&2
            failed=$(jq .failed "$raw/result.json")
            [ "$failed" = 0 ] || echo "warning: $failed failed requests in $raw (see result.json errors)" >&2
        done

        pids=$(tree_pids "$SERVER_PID")
        workers=$(echo "$pids" | grep -vx "$SERVER_PID" || true)
        rss_fe2=$(rss_kib "$SERVER_PID")
        rss_wk2=$(rss_kib $workers)
        stop_server
        gzip -1 -f "$log" "$OUT/logs/$server-$model"/*.log 2>/dev/null || true
        sorted=$(printf '%s\n' "${starts[@]}" | sort -g)
        median=$(echo "$sorted" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
        echo "$model,$server,$START_RUNS,$median,$(echo "$sorted" | head -1),$(echo "$sorted" | tail -1),$(echo "${starts[*]}" | tr ' ' ';'),$(mib $((rss_fe + rss_wk))),$(mib "$rss_fe"),$(mib "$rss_wk"),$nproc_loaded,$(mib $((rss_fe2 + rss_wk2))),$(mib "$rss_fe2"),$(mib "$rss_wk2")" >> "$OUT/startup.csv"
    done
done
trap - EXIT

# ---------------------------------------------------------------------------------------------
# results.md
{
    echo "# Python workers: TorchServe 0.12 against oxserve"
    echo
    echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores (nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'),"
    echo "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory. TorchServe $("$PY" -c 'import ts.version; print(ts.version.__version__)' 2>/dev/null || echo '?'),"
    echo "torch $("$PY" -c 'import torch; print(torch.__version__)'), $(java -version 2>&1 | head -1),"
    if [ -n "${OXSERVE_REV:-}" ]; then
        echo "oxserve: $OXSERVE_SRC, a release build of $OXSERVE_REV made $OXSERVE_BUILT."
    else
        echo "oxserve: $OXSERVE_SRC built $OXSERVE_BUILT; the checkout was at $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' with uncommitted changes') when the run ended."
    fi
    echo
    echo "Load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "Command: \`DURATION=$DURATION WARMUP=$WARMUP START_RUNS=$START_RUNS bash scripts/torchserve/python-workers.sh $OUT_ARG\`"
    echo "(1 worker, batch size 1, same .mar and config.properties for both; closed loop, $DURATION s per row after"
    echo "max($WARMUP, 4 × concurrency) warm-up requests; load generator \`oxserve bench\` on the same machine)."
    echo
} > "$OUT/results.md"
"$PY" - "$OUT" >> "$OUT/results.md" <<'EOF'
import csv, os, sys

out = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
starts = list(csv.DictReader(open(os.path.join(out, "startup.csv"))))


def ratio(a, b):
    a, b = float(a), float(b)
    return f"{a / b:.2f}" if b else "-"


print("## Throughput and latency\n")
print("| model | concurrency | TorchServe req/s | oxserve req/s | req/s ratio | TorchServe P50 ms | oxserve P50 ms | "
      "TorchServe P99 ms | oxserve P99 ms | P99 ratio | server CPU ms/req TorchServe (frontend + worker) | "
      "oxserve (frontend + worker) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
by = {(r["model"], r["server"], r["concurrency"]): r for r in rows}
for (model, server, c), ts in by.items():
    if server != "torchserve" or (model, "oxserve", c) not in by:
        continue
    ox = by[(model, "oxserve", c)]
    fail = ""
    if ts["failed"] != "0" or ox["failed"] != "0":
        fail = f" (failed: TorchServe {ts['failed']}, oxserve {ox['failed']})"
    print(f"| {model}{fail} | {c} | {float(ts['req_per_s']):,.1f} | {float(ox['req_per_s']):,.1f} | "
          f"{ratio(ox['req_per_s'], ts['req_per_s'])} | {ts['p50_ms']} | {ox['p50_ms']} | {ts['p99_ms']} | "
          f"{ox['p99_ms']} | {ratio(ox['p99_ms'], ts['p99_ms'])} | {ts['server_cpu_ms_per_req']} "
          f"({ts['frontend_cpu_ms_per_req']} + {ts['worker_cpu_ms_per_req']}) | {ox['server_cpu_ms_per_req']} "
          f"({ox['frontend_cpu_ms_per_req']} + {ox['worker_cpu_ms_per_req']}) |")
print("\nRatios are oxserve over TorchServe (req/s above 1 and P99 below 1: oxserve ahead). Server CPU is")
print("user + system time of the frontend and of its Python worker processes over the row, warm-up included, per request.\n")

same = []
for model in dict.fromkeys(r["model"] for r in rows):
    try:
        a = open(os.path.join(out, "raw", f"{model}-torchserve-answer"), "rb").read()
        b = open(os.path.join(out, "raw", f"{model}-oxserve-answer"), "rb").read()
    except OSError:
        continue
    if a == b:
        same.append(f"{model}: the same bytes from both servers ({a.decode(errors='replace')[:120]!r})")
    else:
        same.append(f"{model}: DIFFERENT answers: TorchServe {a[:200]!r}, oxserve {b[:200]!r}")
print("Answers to the benchmark input (the first 200 of the last start): " + "; ".join(same) + ".\n")

print("## Start to first answer and memory\n")
print("| model | server | start to first answer, median (min–max) s | RSS loaded MiB (frontend + workers) | "
      "processes | RSS after the load MiB (frontend + workers) |")
print("|---|---|---|---|---|---|")
sb = {(s["model"], s["server"]): s for s in starts}
for s in starts:
    print(f"| {s['model']} | {s['server']} | {float(s['start_s_median']):.2f} ({float(s['start_s_min']):.2f}–"
          f"{float(s['start_s_max']):.2f}) | {s['rss_loaded_mib']} ({s['rss_loaded_frontend_mib']} + "
          f"{s['rss_loaded_workers_mib']}) | {s['processes_loaded']} | {s['rss_after_mib']} "
          f"({s['rss_after_frontend_mib']} + {s['rss_after_workers_mib']}) |")
print()
for model in dict.fromkeys(s["model"] for s in starts):
    ts, ox = sb.get((model, "torchserve")), sb.get((model, "oxserve"))
    if ts and ox:
        print(f"- {model}: start to first answer oxserve/TorchServe {ratio(ox['start_s_median'], ts['start_s_median'])}, "
              f"RSS loaded {ratio(ox['rss_loaded_mib'], ts['rss_loaded_mib'])}, "
              f"RSS after the load {ratio(ox['rss_after_mib'], ts['rss_after_mib'])}.")
print("\nStart to first answer: from launching the server's start command (`torchserve --start …`, "
      "`oxserve serve …`) with the model named at start, to the first 200 from POST /predictions/<model> "
      "(polled every 20 ms). RSS: VmRSS summed over the frontend process and its descendants (the Python workers).")
EOF
echo "wrote $OUT/results.md, $OUT/results.csv and $OUT/startup.csv" >&2
cat "$OUT/results.md"
