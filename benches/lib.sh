# What the bench scripts share (sourced, not run): tool checks, the bench directory and its
# cleanup, the local endpoint, an upload token. Each function says what it sets.
#
#   bench_needs NAME TOOL…   exit 2 naming the first TOOL missing ("NAME: needs TOOL")
#   bench_dir NAME           BENCH_DIR (default target/bench-NAME) made empty; on exit the PIDs
#                            held by the variables named in BENCH_KILL are stopped, and BENCH_DIR
#                            is removed unless KEEP=1
#   bench_emulator NAME      `$BIN emulator` on a free loopback port: EMU_PID, URL
#   bench_token              an upload token from the emulator (its API key): TOKEN, and
#                            $BENCH_DIR/token (mode 600)
#
# The caller sets REPO and BIN first.

bench_needs() {
    local name=$1 tool
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$name: needs $tool" >&2; exit 2; }
    done
}

BENCH_KILL="EMU_PID"
EMU_PID=

bench_cleanup() {
    local v p
    for v in $BENCH_KILL; do
        p=${!v:-}
        if [[ -n $p ]]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
    done
    if [[ -z ${KEEP:-} ]]; then rm -rf "$BENCH_DIR"; fi
}

bench_dir() {
    BENCH_DIR=${BENCH_DIR:-$REPO/target/bench-$1}
    rm -rf "$BENCH_DIR"
    mkdir -p "$BENCH_DIR"
    trap bench_cleanup EXIT
}

bench_emulator() {
    "$BIN" emulator --listen 127.0.0.1:0 --data-dir "$BENCH_DIR/emulator" \
        >"$BENCH_DIR/emulator.out" 2>"$BENCH_DIR/emulator.err" &
    EMU_PID=$!
    for _ in $(seq 1 200); do
        grep -q '^listening on ' "$BENCH_DIR/emulator.out" 2>/dev/null && break
        sleep 0.05
    done
    URL=$(sed -n 's/^listening on //p' "$BENCH_DIR/emulator.out")
    [[ -n $URL ]] || { echo "$1: the emulator did not start" >&2; cat "$BENCH_DIR/emulator.err" >&2; exit 1; }
}

bench_token() {
    TOKEN=$(APIVIDEO_API_KEY=bench-key "$BIN" --config "$BENCH_DIR/none.toml" \
        token create --endpoint "$URL" --json | jq -r '.token')
    [[ $TOKEN == to* ]] || { echo "no upload token from the emulator" >&2; exit 1; }
    printf '%s' "$TOKEN" >"$BENCH_DIR/token"
    chmod 600 "$BENCH_DIR/token"
}
