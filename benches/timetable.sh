#!/usr/bin/env bash
# Bandwidth timetable benchmark (issue 16): `ingestd upload` of one large file to the local
# endpoint with `[upload] max_rate` set to an rclone timetable whose rate changes during the run
# (RATE1 until the next local minute, then RATE2). The process runs with a TZ whose UTC offset has
# seconds, chosen so that the change comes LEAD seconds after the start: a 20-odd-second run
# crosses it without waiting for a wall-clock minute. The endpoint's count of upload body bytes
# is sampled every 0.25 s; printed: the bytes of each second around the change, and the average
# rate of every 10 s window that lies wholly on one side of it, against the goal (±5 %).
#
# Usage: benches/timetable.sh               (from the repository root; dev build is enough)
# Env:   BIN=target/debug/ingestd, RATE1=2M, RATE2=5M (rclone units: M = MiB/s), LEAD=13,
#        AFTER=13 (seconds sampled after the change), BENCH_DIR=target/bench-timetable, KEEP=1.
# Needs: curl, jq, python3.

set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$REPO/target/debug/ingestd}
RATE1=${RATE1:-2M}
RATE2=${RATE2:-5M}
LEAD=${LEAD:-13}
AFTER=${AFTER:-13}

# shellcheck source=benches/lib.sh
source "$REPO/benches/lib.sh"
bench_needs timetable.sh curl jq python3
[[ -x $BIN ]] || { echo "timetable.sh: build first (cargo build), or set BIN" >&2; exit 2; }

UP_PID=
BENCH_KILL="UP_PID EMU_PID"
bench_dir timetable
bench_emulator timetable.sh
bench_token

# Enough bytes for the whole run at the higher rate.
SIZE_MIB=$(( (LEAD + AFTER + 10) * 12 ))
head -c $(( SIZE_MIB << 20 )) /dev/urandom >"$BENCH_DIR/big.mp4"

# A TZ east of UTC by OFFSET seconds so that local time is :(60-LEAD) now: the change is due at
# the next local minute. POSIX TZ offsets are west-positive, hence the minus sign.
NOW=$(date +%s)
OFFSET=$(( ( (60 - LEAD) - NOW % 60 + 120 ) % 60 ))
export TZ="BEN-0:00:$(printf %02d "$OFFSET")"
T0=$(date +%H:%M)
T1=$(date -d "@$(( NOW + LEAD + 1 ))" +%H:%M)
cat >"$BENCH_DIR/config.toml" <<EOF
[api]
endpoint = "$URL"
upload_token_file = "$BENCH_DIR/token"

[journal]
path = "$BENCH_DIR/journal.sqlite"

[upload]
chunk_size = "64 MiB"
max_rate = "$T0,$RATE1 $T1,$RATE2"
EOF
echo "timetable.sh: TZ=$TZ, max_rate = \"$T0,$RATE1 $T1,$RATE2\" (local now $(date +%T))"

START=$(date +%s.%N)
"$BIN" --config "$BENCH_DIR/config.toml" upload --no-check-container "$BENCH_DIR/big.mp4" \
    >"$BENCH_DIR/upload.out" 2>"$BENCH_DIR/upload.err" &
UP_PID=$!
# The change: the start of local minute T1, in epoch seconds.
CHANGE=$(( NOW + LEAD ))
: >"$BENCH_DIR/samples"
while :; do
    t=$(date +%s.%N)
    b=$(curl -fsS "$URL/_emulator/stats" | jq -r '.uploadBodyBytes')
    echo "$t $b" >>"$BENCH_DIR/samples"
    python3 -c "import sys; sys.exit(0 if float('$t') < $CHANGE + $AFTER else 1)" || break
    kill -0 "$UP_PID" 2>/dev/null || break
    sleep 0.25
done
kill "$UP_PID" 2>/dev/null || true

python3 - "$BENCH_DIR/samples" "$CHANGE" "$START" "$RATE1" "$RATE2" <<'EOF'
import sys
path, change, start, r1, r2 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
def rate(t):
    return float(t[:-1]) * {"K": 1024, "M": 1 << 20}[t[-1].upper()]
want1, want2 = rate(r1), rate(r2)
s = [tuple(map(float, l.split())) for l in open(path) if l.strip()]
def at(t):
    # bytes at time t, linear between samples
    for (ta, ba), (tb, bb) in zip(s, s[1:]):
        if ta <= t <= tb:
            return ba + (bb - ba) * (t - ta) / (tb - ta)
    return None
MiB = 1 << 20
print(f"{'second':>8} {'MiB/s':>8}   (0 = the change)")
first = s[0][0]
t = change - 12
while t + 1 <= s[-1][0]:
    a, b = at(t), at(t + 1)
    if a is not None and b is not None and t >= first:
        print(f"{t - change:>+8.0f} {(b - a) / MiB:>8.2f}")
    t += 1
# The first byte: the upload starts a moment after the process.
started = next(t for t, b in s if b > 0)
print(f"first byte at {started - start:.2f} s after start; change at {change - start:.2f} s")
def window(lo, hi, want, name):
    a, b = at(lo), at(hi)
    if a is None or b is None:
        print(f"{name}: window [{lo - change:+.1f}, {hi - change:+.1f}] s not covered")
        return
    got = (b - a) / (hi - lo)
    print(f"{name}: {got / MiB:.3f} MiB/s over [{lo - change:+.1f}, {hi - change:+.1f}] s "
          f"vs {want / MiB:.3f}: {100 * (got / want - 1):+.2f} %")
window(change - 10.5, change - 0.5, want1, "before")
window(change + 1.0, change + 11.0, want2, "after ")
EOF
