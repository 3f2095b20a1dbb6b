#!/usr/bin/env bash
# Peak RSS of a 32-bit ingestd (issue 15): the goals for a 1 GiB board are <= 24 MiB while
# uploading (4 workers, 64 MiB chunks, 4 files at once) and <= 48 MiB with 100k files tracked.
#
#   1. `ingestd upload` of RSS_FILES files of RSS_FILE_MIB MiB at once, 4 workers, 64 MiB chunks,
#      to the local endpoint: peak RSS from GNU time (ru_maxrss); `upload` exits 1 unless every
#      file was uploaded.
#   2. `ingestd run` on a tree of FILES one-byte files (settle 1 s) whose token the endpoint
#      rejects, so nothing uploads and every file ends queued: VmHWM of the daemon once `status`
#      counts FILES queued (scan, settle, queue, the paused pool, one status read of the journal).
#
# Usage: benches/rss32.sh [BIN]   BIN defaults to the i686 build that scripts/test-32bit makes
#        (target/i686-unknown-linux-gnu/i686-unknown-linux-gnu/debug/ingestd); pass a release
#        build for release figures. The endpoint runs from the same binary.
# Env:   RSS_FILES=4 RSS_FILE_MIB=256 FILES=100000 BENCH_DIR=target/bench-rss32 KEEP=1
# Needs: jq, bc, GNU /usr/bin/time. The files are `.avi` (random bytes): an `.mp4` would be held as
# an unfinished recording by the container check.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$REPO/target/i686-unknown-linux-gnu/i686-unknown-linux-gnu/debug/ingestd}
RSS_FILES=${RSS_FILES:-4}
RSS_FILE_MIB=${RSS_FILE_MIB:-256}
FILES=${FILES:-100000}
# shellcheck source=benches/lib.sh
source "$REPO/benches/lib.sh"
bench_needs rss32.sh jq bc /usr/bin/time
[[ -x $BIN ]] || { echo "rss32.sh: no binary at $BIN (run scripts/test-32bit first)" >&2; exit 2; }
echo "binary: $BIN ($(od -An -tu1 -j4 -N1 "$BIN" | awk '{print ($1 == 1) ? "32-bit" : "64-bit"}'))"

DAEMON_PID=
BENCH_KILL="DAEMON_PID EMU_PID"
bench_dir rss32
bench_emulator rss32.sh
bench_token
printf 'to0000000000000000000000' >"$BENCH_DIR/rejected-token"
chmod 600 "$BENCH_DIR/rejected-token"

# sample PID OUT: peak RssAnon and RssFile (KiB) of PID, every 0.2 s until it exits. A debug
# build's code pages (RssFile) are several times a release build's; RssAnon is the heap.
sample() {
    local pid=$1 out=$2 anon=0 file=0 a f
    while [ -r "/proc/$pid/status" ]; do
        a=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        f=$(awk '/^RssFile/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "${a:-0}" -gt "$anon" ] && anon=$a
        [ "${f:-0}" -gt "$file" ] && file=$f
        echo "$anon $file" >"$out"
        sleep 0.2
    done
}

config() { # NAME TOKEN_FILE ROOT
    cat >"$BENCH_DIR/$1.toml" <<EOT
[api]
endpoint = "$URL"
upload_token_file = "$2"

[journal]
path = "$BENCH_DIR/$1.sqlite"

[upload]
workers = 4
chunk_size = "64 MiB"

[[watch]]
path = "$3"
settle = "1s"
EOT
    echo "$BENCH_DIR/$1.toml"
}

# --- 1. uploading -----------------------------------------------------------------------------
mkdir -p "$BENCH_DIR/up"
files=()
for i in $(seq 1 "$RSS_FILES"); do
    head -c "$((RSS_FILE_MIB * 1024 * 1024))" /dev/urandom >"$BENCH_DIR/up/f$i.avi"
    files+=("$BENCH_DIR/up/f$i.avi")
done
cfg=$(config up "$BENCH_DIR/token" "$BENCH_DIR/up")
start=$(date +%s.%N)
/usr/bin/time -o "$BENCH_DIR/up.time" -f '%e %U %S %M' "$BIN" --config "$cfg" upload "${files[@]}" \
    >"$BENCH_DIR/up.out" 2>&1 &
up_pid=$!
sleep 0.1
sample "$(pgrep -P "$up_pid" | head -n1)" "$BENCH_DIR/up.peaks" &
sampler=$!
wait "$up_pid" || { cat "$BENCH_DIR/up.out" >&2; exit 1; }
wait "$sampler"
read -r wall user sys maxrss <"$BENCH_DIR/up.time"
read -r anon file <"$BENCH_DIR/up.peaks"
printf 'upload: %d x %d MiB, 4 workers, 64 MiB chunks: %.1f s wall, %.1f s CPU, peak RSS %.1f MiB (peak RssAnon %.1f MiB, RssFile %.1f MiB)\n' \
    "$RSS_FILES" "$RSS_FILE_MIB" "$wall" "$(echo "$user + $sys" | bc)" "$(echo "$maxrss / 1024" | bc -l)" \
    "$(echo "$anon / 1024" | bc -l)" "$(echo "$file / 1024" | bc -l)"
rm -rf "$BENCH_DIR/up" "$BENCH_DIR/emulator/videos"

# --- 2. 100k files tracked --------------------------------------------------------------------
tree="$BENCH_DIR/tree"
for d in $(seq 1 $(( (FILES + 999) / 1000 ))); do
    mkdir -p "$tree/d$d"
    (cd "$tree/d$d" && for f in $(seq 1 1000); do printf x >"f$f.avi"; done)
done
n=$(find "$tree" -type f | wc -l)
cfg=$(config tree "$BENCH_DIR/rejected-token" "$tree")
start=$(date +%s.%N)
"$BIN" --config "$cfg" run >"$BENCH_DIR/tree.log" 2>&1 &
DAEMON_PID=$!
sample "$DAEMON_PID" "$BENCH_DIR/tree.peaks" &
queued=0
while [ "$queued" -lt "$n" ]; do
    sleep 1
    kill -0 "$DAEMON_PID" || { tail "$BENCH_DIR/tree.log" >&2; exit 1; }
    queued=$("$BIN" --config "$cfg" status --json | jq '.counts.queued + .counts.uploading + .counts.failed')
done
end=$(date +%s.%N)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")
read -r anon file <"$BENCH_DIR/tree.peaks"
printf 'tracked: %d files queued after %.1f s (token rejected, pool paused): VmHWM %.1f MiB, VmRSS %.1f MiB (peak RssAnon %.1f MiB, RssFile %.1f MiB), journal %.1f MiB\n' \
    "$n" "$(echo "$end - $start" | bc)" "$(echo "$hwm / 1024" | bc -l)" "$(echo "$rss / 1024" | bc -l)" \
    "$(echo "$anon / 1024" | bc -l)" "$(echo "$file / 1024" | bc -l)" \
    "$(echo "$(stat -c %s "$BENCH_DIR/tree.sqlite") / 1048576" | bc -l)"
