#!/usr/bin/env bash
# Upload benchmark (issue 4): a 1 GiB file sent to the local endpoint (`ingestd emulator`, release
# build) over loopback, by `ingestd upload` and by a shell loop of `curl -F` sending the same
# 64 MiB chunks with the same Content-Range headers, alternately, same endpoint, same run.
# Then ingestd's peak RSS with 4 workers and 64 MiB chunks uploading several files at once.
#
# Prints a table: wall seconds, throughput (MiB/s), client CPU seconds (user+sys, per GiB) and
# peak RSS (ru_maxrss, via /usr/bin/time) for each run, and the ratios against the goals
# (>= 0.95x curl's throughput, <= 1.2x curl's CPU per GiB, <= 32 MiB RSS). Every upload is
# checked: the endpoint's SHA-256 of the video must equal the file's.
#
# Usage: benches/upload.sh            (from the repository root)
# Env:   ROUNDS=3 (rounds of curl, ingestd, ingestd with hash = "sha256"), SIZE_MIB=1024, CHUNK_MIB=64, RSS_FILES=4, RSS_FILE_MIB=256,
#        BENCH_DIR=target/bench-upload (same disk as the emulator's data), SKIP_BUILD=1,
#        KEEP=1 (keep BENCH_DIR afterwards).
# The files are random bytes named .mp4: `--no-check-container` (they are not recordings).
# Needs: cargo, curl, jq, sha256sum, split, GNU /usr/bin/time; optional: openssl, b3sum.

set -euo pipefail

ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
CHUNK_MIB=${CHUNK_MIB:-64}
RSS_FILES=${RSS_FILES:-4}
RSS_FILE_MIB=${RSS_FILE_MIB:-256}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=$REPO/target/release/ingestd
TIME=/usr/bin/time

# shellcheck source=benches/lib.sh
source "$REPO/benches/lib.sh"
bench_needs upload.sh curl jq sha256sum split "$TIME"

if [[ -z ${SKIP_BUILD:-} ]]; then
    (cd "$REPO" && cargo build --release --quiet)
fi

bench_dir upload

# --- the endpoint ---------------------------------------------------------------------------
bench_emulator upload.sh
bench_token

# config NAME WORKERS [HASH]: a config with its own journal (each run uploads the file as a new
# video); HASH is upload.hash (default blake3).
config() {
    local name=$1 workers=$2 hash=${3:-blake3}
    mkdir -p "$BENCH_DIR/inbox"
    cat >"$BENCH_DIR/$name.toml" <<EOF
[api]
endpoint = "$URL"
upload_token_file = "$BENCH_DIR/token"

[journal]
path = "$BENCH_DIR/$name.sqlite"

[upload]
workers = $workers
chunk_size = "$CHUNK_MIB MiB"
hash = "$hash"

[[watch]]
path = "$BENCH_DIR/inbox"
EOF
    echo "$BENCH_DIR/$name.toml"
}

# --- the data -------------------------------------------------------------------------------
FILE=$BENCH_DIR/big.mp4
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$FILE"
TOTAL=$(stat -c %s "$FILE")
SHA=$(sha256sum "$FILE" | cut -d' ' -f1)
CHUNK=$((CHUNK_MIB * 1024 * 1024))
# curl reads each chunk from its own file (streamed, as ingestd streams from its file); cutting
# them is not timed.
mkdir -p "$BENCH_DIR/chunks"
split -b "$CHUNK" -d -a 4 "$FILE" "$BENCH_DIR/chunks/c"

video_sha() { curl -sS "$URL/_emulator/videos/$1" | jq -r '.sha256'; }
latest_video() { curl -sS "$URL/_emulator/videos" | jq -r '.data[-1].videoId'; }
# cpu_of TIMEFILE: user+sys seconds summed over every line "U S" in the file.
cpu_of() { awk '{u += $1; s += $2} END {printf "%.2f", u + s}' "$1"; }
rss_of() { awk '{if ($3 > m) m = $3} END {printf "%.1f", m / 1024}' "$1"; }
now() { date +%s.%N; }

RESULTS=$BENCH_DIR/results
: >"$RESULTS"

run_curl() {
    local round=$1 times=$BENCH_DIR/curl-$round.time vid= off=0 start end chunk
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
    [[ $(video_sha "$vid") == "$SHA" ]] || { echo "upload.sh: curl video $vid: wrong SHA-256" >&2; exit 1; }
    echo "curl $round $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') $(cpu_of "$times") $(rss_of "$times") $(uptime | sed 's/.*average: //; s/,.*//')" >>"$RESULTS"
}

# run_ingestd ROUND [HASH]: `ingestd upload` with upload.hash = HASH (blake3, the default).
run_ingestd() {
    local round=$1 hash=${2:-blake3} label=ingestd cfg times start end vid
    [[ $hash == blake3 ]] || label=ingestd-$hash
    times=$BENCH_DIR/$label-$round.time
    cfg=$(config "$label-$round" 1 "$hash")
    start=$(now)
    "$TIME" -o "$times" -f '%U %S %M' "$BIN" --config "$cfg" upload --no-check-container "$FILE" \
        >"$BENCH_DIR/$label-$round.out" 2>&1
    end=$(now)
    vid=$(latest_video)
    [[ $(video_sha "$vid") == "$SHA" ]] || { echo "upload.sh: ingestd video $vid: wrong SHA-256" >&2; exit 1; }
    echo "$label $round $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') $(cpu_of "$times") $(rss_of "$times") $(uptime | sed 's/.*average: //; s/,.*//')" >>"$RESULTS"
}

# Page cache warm for both: read the file and the chunks once.
cat "$FILE" "$BENCH_DIR"/chunks/c* >/dev/null
# What hashing the file costs on its own (ingestd hashes what it sends; curl does not): the
# baselines "curl + BLAKE3" and "curl + SHA-256" do the same work as ingestd with upload.hash
# blake3 (default) and sha256. `b3sum --num-threads 1` (Debian package b3sum) and `openssl dgst`
# use the same SIMD / SHA instructions as ingestd's blake3 and sha2 crates.
SHA_CPU=0 B3_CPU=0
if command -v openssl >/dev/null; then
    "$TIME" -o "$BENCH_DIR/sha.time" -f '%U %S %M' openssl dgst -sha256 "$FILE" >/dev/null
    SHA_CPU=$(cpu_of "$BENCH_DIR/sha.time")
fi
if command -v b3sum >/dev/null; then
    "$TIME" -o "$BENCH_DIR/b3.time" -f '%U %S %M' b3sum --num-threads 1 "$FILE" >/dev/null
    B3_CPU=$(cpu_of "$BENCH_DIR/b3.time")
fi
for round in $(seq 1 "$ROUNDS"); do
    run_curl "$round"
    run_ingestd "$round"
    run_ingestd "$round" sha256
done

# --- peak RSS: RSS_FILES files at once, 4 workers, CHUNK_MIB chunks ---------------------------
RSS_LIST=()
for i in $(seq 1 "$RSS_FILES"); do
    f=$BENCH_DIR/rss-$i.mp4
    head -c "$((RSS_FILE_MIB * 1024 * 1024))" /dev/urandom >"$f"
    RSS_LIST+=("$f")
done
cfg=$(config rss 4)
start=$(now)
"$TIME" -o "$BENCH_DIR/rss.time" -f '%U %S %M' "$BIN" --config "$cfg" upload --no-check-container "${RSS_LIST[@]}" \
    >"$BENCH_DIR/rss.out" 2>&1
end=$(now)
complete=$(curl -sS "$URL/_emulator/videos" | jq '[.data[] | select(.complete)] | length')
echo "rss 1 $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') $(cpu_of "$BENCH_DIR/rss.time") $(rss_of "$BENCH_DIR/rss.time") $(uptime | sed 's/.*average: //; s/,.*//')" >>"$RESULTS"

# --- the table --------------------------------------------------------------------------------
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo "file: $SIZE_MIB MiB random, chunks of $CHUNK_MIB MiB ($(ls "$BENCH_DIR"/chunks | wc -l) requests), endpoint $URL (release), $complete videos complete"
awk -v size="$SIZE_MIB" -v files="$RSS_FILES" -v fmib="$RSS_FILE_MIB" -v shacpu="$SHA_CPU" -v b3cpu="$B3_CPU" '
    BEGIN {
        printf "%-8s %5s %8s %9s %9s %12s %10s %6s\n", "client", "round", "wall s", "MiB/s", "CPU s", "CPU s/GiB", "RSS MiB", "load"
    }
    $1 != "rss" {
        gib = size / 1024
        printf "%-8s %5s %8.2f %9.1f %9.2f %12.2f %10.1f %6s\n", $1, $2, $3, size / $3, $4, $4 / gib, $5, $6
        wall[$1] += $3; cpu[$1] += $4; n[$1]++
        if ($5 > rss[$1]) rss[$1] = $5
    }
    $1 == "rss" {
        gib = files * fmib / 1024
        r = sprintf("%-8s %5s %8.2f %9.1f %9.2f %12.2f %10.1f %6s   (%d files x %d MiB, 4 workers)", "ingestd", "rss", $3, files * fmib / $3, $4, $4 / gib, $5, $6, files, fmib)
        peak = $5
    }
    END {
        print r
        tc = size * n["curl"] / wall["curl"]; ti = size * n["ingestd"] / wall["ingestd"]
        cc = cpu["curl"] / n["curl"] / (size / 1024); ci = cpu["ingestd"] / n["ingestd"] / (size / 1024)
        printf "\nmean throughput: curl %.1f MiB/s, ingestd %.1f MiB/s -> ingestd/curl = %.2fx (goal >= 0.95x)\n", tc, ti, ti / tc
        printf "mean CPU per GiB: curl %.2f s, ingestd %.2f s -> ingestd/curl = %.2fx (goal <= 1.2x)\n", cc, ci, ci / cc
        hs = shacpu / (size / 1024); hb = b3cpu / (size / 1024)
        cs = cpu["ingestd-sha256"] / n["ingestd-sha256"] / (size / 1024)
        ts = size * n["ingestd-sha256"] / wall["ingestd-sha256"]
        printf "with upload.hash = \"sha256\": %.1f MiB/s (%.2fx curl), %.2f s CPU per GiB (%.2fx curl)\n", ts, ts / tc, cs, cs / cc
        if (hb > 0) printf "BLAKE3 of the file (b3sum, 1 thread): %.2f s CPU per GiB; curl + BLAKE3 %.2f s -> ingestd/(curl + BLAKE3) = %.2fx\n", hb, cc + hb, ci / (cc + hb)
        printf "SHA-256 of the file (openssl dgst): %.2f s CPU per GiB; curl + SHA-256 %.2f s -> ingestd-sha256/(curl + SHA-256) = %.2fx\n", hs, cc + hs, cs / (cc + hs)
        printf "ingestd peak RSS, 4 workers, %d files at once: %.1f MiB (goal <= 32 MiB)\n", files, peak
    }' "$RESULTS"
