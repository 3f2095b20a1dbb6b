#!/usr/bin/env bash
# Parallel lanes benchmark (issue 16): one SIZE_MIB file sent to the local endpoint
# (`ingestd emulator`, release build) over loopback by `ingestd upload` with
# `[upload] lanes_per_file` = 1, 2, 4 and 8, and by curl (one stream: a shell loop of `curl -F`
# sending the same chunks with the same Content-Range headers, one after the other).
#
# Part 1: the endpoint reads every connection at most at CONN_BPS bytes/s (fault
#         `conn_rate_bps`, a per-stream ceiling such as window / RTT on a long path).
# Part 2: the endpoint unlimited: 1 lane against LANES2 lanes, ROUNDS rounds each.
#
# Prints one line per run: wall seconds, MiB/s, client CPU seconds (user+sys) and CPU s/GiB, peak
# RSS (ru_maxrss via /usr/bin/time); then the ratios against the goals (4 lanes >= 3.5x one lane
# and >= 3.5x curl at the ceiling; unlimited: LANES2 lanes >= 0.95x one lane, CPU/GiB <= 1.1x).
# Every upload is checked: the endpoint's SHA-256 of the video equals the file's.
#
# Usage: benches/lanes.sh            (from the repository root)
# Env:   SIZE_MIB=1024, CHUNK_MIB=64, CONN_BPS=20000000, LANES="1 2 4 8", LANES2=4, ROUNDS=3,
#        BENCH_DIR=target/bench-lanes, SKIP_BUILD=1, KEEP=1.
# Needs: cargo, curl, jq, sha256sum, split, GNU /usr/bin/time.

set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
CHUNK_MIB=${CHUNK_MIB:-64}
CONN_BPS=${CONN_BPS:-20000000}
LANES=${LANES:-1 2 4 8}
LANES2=${LANES2:-4}
ROUNDS=${ROUNDS:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=$REPO/target/release/ingestd
TIME=/usr/bin/time

# shellcheck source=benches/lib.sh
source "$REPO/benches/lib.sh"
bench_needs lanes.sh curl jq sha256sum split "$TIME"
if [[ -z ${SKIP_BUILD:-} ]]; then
    (cd "$REPO" && cargo build --release --quiet)
fi
bench_dir lanes
bench_emulator lanes.sh
bench_token

cap() { # cap BPS: every upload connection read at most at BPS bytes/s (0: unlimited)
    if [[ $1 == 0 ]]; then
        curl -sS -X DELETE "$URL/_emulator/faults" >/dev/null
    else
        curl -sS -X POST "$URL/_emulator/faults" -H 'content-type: application/json' \
            -d "[{\"path\": \"/upload\", \"count\": 1000000000, \"action\": \"conn_rate_bps\", \"bytes_per_sec\": $1}]" >/dev/null
    fi
}

config() { # config NAME LANES
    mkdir -p "$BENCH_DIR/inbox"
    cat >"$BENCH_DIR/$1.toml" <<EOF
[api]
endpoint = "$URL"
upload_token_file = "$BENCH_DIR/token"

[journal]
path = "$BENCH_DIR/$1.sqlite"

[upload]
workers = 1
chunk_size = "$CHUNK_MIB MiB"
lanes_per_file = $2
max_connections = 8

[[watch]]
path = "$BENCH_DIR/inbox"
EOF
    echo "$BENCH_DIR/$1.toml"
}

FILE=$BENCH_DIR/big.mp4
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$FILE"
TOTAL=$(stat -c %s "$FILE")
SHA=$(sha256sum "$FILE" | cut -d' ' -f1)
mkdir -p "$BENCH_DIR/chunks"
split -b "$((CHUNK_MIB * 1024 * 1024))" -d -a 4 "$FILE" "$BENCH_DIR/chunks/c"
cat "$FILE" "$BENCH_DIR"/chunks/c* >/dev/null

video_sha() { curl -sS "$URL/_emulator/videos/$1" | jq -r '.sha256'; }
latest_video() { curl -sS "$URL/_emulator/videos" | jq -r '.data[-1].videoId'; }
cpu_of() { awk '{u += $1; s += $2} END {printf "%.2f", u + s}' "$1"; }
rss_of() { awk '{if ($3 > m) m = $3} END {printf "%.1f", m / 1024}' "$1"; }
now() { date +%s.%N; }
RESULTS=$BENCH_DIR/results
: >"$RESULTS"

run_curl() { # run_curl PART
    local times=$BENCH_DIR/curl-$1.time vid= off=0 start end chunk
    : >"$times"
    start=$(now)
    for chunk in "$BENCH_DIR"/chunks/c*; do
        local len last answer
        len=$(stat -c %s "$chunk")
        last=$((off + len - 1))
        local args=(-sS --fail-with-body -X POST "$URL/upload?token=$TOKEN"
            -H "Content-Range: bytes $off-$last/$TOTAL"
            -F "file=@$chunk;filename=big.mp4;type=application/octet-stream")
        [[ -n $vid ]] && args+=(-F "videoId=$vid")
        answer=$("$TIME" -a -o "$times" -f '%U %S %M' curl "${args[@]}")
        [[ -n $vid ]] || vid=$(jq -r '.videoId' <<<"$answer")
        off=$((last + 1))
    done
    end=$(now)
    [[ $(video_sha "$vid") == "$SHA" ]] || { echo "lanes.sh: curl video $vid: wrong SHA-256" >&2; exit 1; }
    echo "$1 curl $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') $(cpu_of "$times") $(rss_of "$times")" >>"$RESULTS"
}

run_ingestd() { # run_ingestd PART LANES NAME
    local times=$BENCH_DIR/$3.time cfg start end vid
    cfg=$(config "$3" "$2")
    start=$(now)
    "$TIME" -o "$times" -f '%U %S %M' "$BIN" --config "$cfg" upload --no-check-container "$FILE" >"$BENCH_DIR/$3.out" 2>&1
    end=$(now)
    vid=$(latest_video)
    [[ $(video_sha "$vid") == "$SHA" ]] || { echo "lanes.sh: $3 video $vid: wrong SHA-256" >&2; exit 1; }
    echo "$1 lanes-$2 $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') $(cpu_of "$times") $(rss_of "$times")" >>"$RESULTS"
}

cap "$CONN_BPS"
run_curl capped
for n in $LANES; do run_ingestd capped "$n" "capped-$n"; done
cap 0
for round in $(seq 1 "$ROUNDS"); do
    run_ingestd unlimited 1 "free-1-$round"
    run_ingestd unlimited "$LANES2" "free-$LANES2-$round"
done

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r), load $(uptime | sed 's/.*average: //')"
echo "file: $SIZE_MIB MiB random, chunk_size $CHUNK_MIB MiB; capped part: conn_rate_bps = $CONN_BPS B/s per connection"
awk -v size="$SIZE_MIB" -v l2="$LANES2" '
    BEGIN { printf "%-10s %-9s %8s %9s %8s %10s %8s\n", "part", "client", "wall s", "MiB/s", "CPU s", "CPU s/GiB", "RSS MiB" }
    {
        gib = size / 1024
        printf "%-10s %-9s %8.2f %9.1f %8.2f %10.2f %8.1f\n", $1, $2, $3, size / $3, $4, $4 / gib, $5
        k = $1 " " $2; wall[k] += $3; cpu[k] += $4; n[k]++
    }
    END {
        c1 = wall["capped lanes-1"]; c4 = wall["capped lanes-4"]; cc = wall["capped curl"]
        if (c4 > 0) printf "capped: 4 lanes = %.2fx one lane (goal >= 3.5), %.2fx curl (goal >= 3.5)\n", c1 / c4, cc / c4
        f1 = "unlimited lanes-1"; f4 = "unlimited lanes-" l2
        if (n[f4] > 0) printf "unlimited: %d lanes = %.3fx one lane throughput (goal >= 0.95), CPU/GiB %.3fx (goal <= 1.1), mean of %d rounds\n", l2, (wall[f1] / n[f1]) / (wall[f4] / n[f4]), (cpu[f4] / n[f4]) / (cpu[f1] / n[f1]), n[f4]
    }' "$RESULTS"
