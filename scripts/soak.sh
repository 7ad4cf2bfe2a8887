#!/usr/bin/env bash
# Soak run: serves the example `tiny` model, measures its peak with `oxserve bench`, then holds an
# open-loop load at 70% of that peak for SOAK_SECONDS (default 600) while a mixer sends 1% malformed
# requests and 1% requests whose client hangs up at once. RSS, open file descriptors and threads of
# the server are sampled every 5 s. Writes everything to $OUT (default target/soak) and prints a
# summary (the figures in docs/reliability.md come from here).
#   bash scripts/soak.sh            # needs a built binary: cargo build --release -p oxserve
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECONDS=${SOAK_SECONDS:-600}
OUT=${OUT:-target/soak}
BIN=${OXSERVE_BIN:-target/release/oxserve}
PORT=${PORT:-18080}
mkdir -p "$OUT"
rm -f "$OUT"/*.csv "$OUT"/*.log
"$BIN" serve --model-store examples/model-store --models tiny=tiny --disable-token-auth \
  --inference-address "127.0.0.1:$PORT" --management-address "127.0.0.1:$((PORT + 1))" \
  --metrics-address "127.0.0.1:$((PORT + 2))" --log-dir "$OUT/logs" > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "Model server started" "$OUT/server.log" && break; sleep 0.2; done
URL="http://127.0.0.1:$PORT"
"$BIN" bench --url "$URL" --model tiny --input examples/inputs/tiny.json -c 8 --duration 10 \
  --no-progress --out "$OUT/peak" > "$OUT/peak.log"
PEAK=$(python3 -c "import json;print(json.load(open('$OUT/peak/result.json'))['throughput_rps'])")
RATE=$(python3 -c "print(round($PEAK * 0.7))")
echo "peak $PEAK req/s, soak rate $RATE req/s for $SOAK_SECONDS s"
python3 - "$SERVER" "$SOAK_SECONDS" "$OUT/samples.csv" <<'PY' &
import os, sys, time
pid, seconds, path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
end = time.time() + seconds
with open(path, "w") as f:
    f.write("t,rss_kib,fds,threads\n")
    start = time.time()
    while time.time() < end:
        status = open(f"/proc/{pid}/status").read()
        rss = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS:"))
        threads = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("Threads:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        f.write(f"{time.time() - start:.1f},{rss},{fds},{threads}\n"); f.flush()
        time.sleep(5)
PY
SAMPLER=$!
python3 - "$PORT" "$SOAK_SECONDS" "$RATE" "$OUT/mixer.csv" <<'PY' &
# 1% malformed bodies and 1% clients that hang up right after sending.
import http.client, json, socket, sys, time
port, seconds, rate, path = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
interval = 1.0 / max(rate * 0.01, 0.1)
bad = [b"[1, 2", b"{\"data\": \"x\"}", b"\xff\xfe", json.dumps([0.5] * 63).encode()]
good = open("examples/inputs/tiny.json", "rb").read()
counts = {}
end = time.time() + seconds
i = 0
while time.time() < end:
    body = bad[i % len(bad)]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/predictions/tiny", body, {"Content-Type": "application/json"})
    status = c.getresponse().status
    c.close()
    counts[f"malformed_{status}"] = counts.get(f"malformed_{status}", 0) + 1
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /predictions/tiny HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              + f"Content-Length: {len(good)}\r\n\r\n".encode() + good)
    s.close()
    counts["hung_up"] = counts.get("hung_up", 0) + 1
    i += 1
    time.sleep(interval)
with open(path, "w") as f:
    f.write("kind,count\n" + "".join(f"{k},{v}\n" for k, v in sorted(counts.items())))
PY
MIXER=$!
# At most SOAK_CONNECTIONS requests in flight (oha -c 32 in the reference run), so the client holds
# at most that many connections (the server closes those left idle for 10 s; the pool reopens them).
"$BIN" bench --url "$URL" --model tiny --input examples/inputs/tiny.json --rate "$RATE" \
  --max-in-flight "${SOAK_CONNECTIONS:-32}" --duration "$SOAK_SECONDS" --window 60 --no-progress --metrics-url "http://127.0.0.1:$((PORT + 2))/metrics" \
  --out "$OUT/soak" > "$OUT/soak.log"
wait $SAMPLER $MIXER
curl -s "http://127.0.0.1:$((PORT + 2))/metrics" > "$OUT/metrics.txt"
python3 - "$OUT" <<'PY'
import csv, json, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/samples.csv")))
half = rows[len(rows) // 2:]
rss = sorted(int(r["rss_kib"]) for r in half)
cut = max(1, len(rss) // 20)
trimmed = rss[cut:-cut] if len(rss) > 2 * cut + 2 else rss
mean = sum(trimmed) / len(trimmed)
last = [r for r in rows if float(r["t"]) >= float(rows[-1]["t"]) - 300]
n = len(last)
xs = [float(r["t"]) / 60 for r in last]; ys = [int(r["rss_kib"]) / 1024 for r in last]
mx, my = sum(xs) / n, sum(ys) / n
slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(sum((x - mx) ** 2 for x in xs), 1e-9)
fds = [int(r["fds"]) for r in rows]; threads = [int(r["threads"]) for r in rows]
result = json.load(open(f"{out}/soak/result.json"))
mixer = dict(csv.reader(open(f"{out}/mixer.csv")))
five = [l for l in open(f"{out}/metrics.txt") if l.startswith("ts_inference_requests_total") or l.startswith("Requests5XX")]
print(f"samples: {len(rows)} over {rows[-1]['t']} s")
print(f"RSS second half (trimmed 5%): max - mean = {(trimmed[-1] - mean) / 1024:.1f} MiB; "
      f"slope over the last 5 min = {slope:.2f} MiB/min; first {int(rows[0]['rss_kib'])//1024} MiB, last {int(rows[-1]['rss_kib'])//1024} MiB")
print(f"FDs min/max {min(fds)}/{max(fds)}; threads min/max {min(threads)}/{max(threads)}")
def spread(values):
    values = sorted(values); median = values[len(values) // 2]
    return f"median {median}, within {100 * max(abs(v - median) for v in values) / max(median, 1):.0f}% of it"
print(f"second half: FDs {spread([int(r['fds']) for r in half])}; threads {spread([int(r['threads']) for r in half])}")
windows = result.get("timeline", [])
windows = [w for w in windows if w["duration_s"] >= 0.5 * windows[0]["duration_s"]] if windows else []
if len(windows) >= 2:
    first, last = windows[0], windows[-1]
    print(f"p99 first minute {first['p99_ms']:.2f} ms, last minute {last['p99_ms']:.2f} ms "
          f"({last['p99_ms'] / max(first['p99_ms'], 1e-9):.2f}x; the target is at most 1.5x)")
print("bench:", json.dumps({k: result[k] for k in result if k in ("requests", "ok", "failed", "throughput_rps", "errors", "latency_ms", "generator", "server_counts")}, default=str)[:1500])
print("mixer:", mixer)
print("server:", "".join(five).strip())
PY
