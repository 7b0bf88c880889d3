#!/usr/bin/env bash
# Proves the container's final stage works without a Docker engine: builds inferd with the
# Dockerfile's flags, lays out exactly what the image holds (scripts/k8s-rootfs.sh, which the
# Dockerfile uses too), and runs the image's command in it:
#   - chroot into the layout, as uid/gid 65532, with an empty environment (env -i);
#   - in a fresh network namespace, so the default ports 8080/8081/8082 are the image's own;
#   - with the root filesystem read-only (as readOnlyRootFilesystem: true);
# then sends the seed's curl, expects {"prediction":[0]}, checks health, metrics and the gRPC
# port, sends SIGTERM and expects readiness to fail at once and a clean exit 0.
# A second run mounts a model repository read-only at /models (as the PVC) and serves from it.
# Needs root (chroot, namespaces), cargo, curl, readelf/strip (binutils), util-linux.
#   tests/k8s/final-stage.sh            # builds with CARGO_TARGET_DIR (default: target)
#   INFERD_STATIC_BIN=path tests/k8s/final-stage.sh   # use an already built static binary
set -euo pipefail
root_dir="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root_dir"

[ "$(id -u)" = 0 ] || { echo "final-stage.sh: needs root (chroot, unshare)" >&2; exit 2; }

triple="$(uname -m)-unknown-linux-gnu"
if [ -z "${INFERD_STATIC_BIN:-}" ]; then
    target_dir="${CARGO_TARGET_DIR:-$root_dir/target}"
    echo "== building: RUSTFLAGS=-C target-feature=+crt-static cargo build --release --locked --target $triple -p inferd"
    RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
        cargo build --release --locked --target "$triple" -p inferd
    INFERD_STATIC_BIN="$target_dir/$triple/release/inferd"
fi

work="$(mktemp -d /tmp/inferd-final-stage.XXXXXX)"
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

rootfs="$work/rootfs"
scripts/k8s-rootfs.sh "$INFERD_STATIC_BIN" "$rootfs"

echo "== final stage layout"
layout="$(cd "$rootfs" && find . -mindepth 1 | sort | tr '\n' ' ')"
echo "$layout"
expected="./etc ./etc/group ./etc/passwd ./models ./tmp ./usr ./usr/local ./usr/local/bin ./usr/local/bin/inferd "
[ "$layout" = "$expected" ] || { echo "FAIL: layout differs from: $expected" >&2; exit 1; }
size=$(stat -c %s "$rootfs/usr/local/bin/inferd")
total=$(du -sb "$rootfs" | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "binary: $size bytes, $(mib "$size") stripped (unstripped: $(mib "$(stat -c %s "$INFERD_STATIC_BIN")")); final stage total: $(mib "$total")"
[ "$total" -lt $((30 * 1024 * 1024)) ] || { echo "FAIL: final stage is over 30 MiB" >&2; exit 1; }
file "$rootfs/usr/local/bin/inferd" 2>/dev/null || true

# Runs the image's entrypoint with the given arguments (default: the image's CMD, `serve`)
# and leaves its pid in $pid. $1: a directory to bind read-only at /models, or "".
start() {
    local models="$1"
    shift
    local args=("$@")
    [ ${#args[@]} -gt 0 ] || args=(serve)
    : > "$work/log"
    # New network and mount namespaces: loopback only, the rootfs (and /models) read-only.
    # `exec` all the way down keeps one pid: unshare -> sh -> env -> chroot -> inferd.
    unshare --net --mount --propagation private -- sh -c '
        set -e
        ip link set lo up
        mount --bind "$0" "$0"
        if [ -n "$1" ]; then mount --bind "$1" "$0/models"; mount -o remount,bind,ro "$0/models"; fi
        mount -o remount,bind,ro "$0"
        shift 1
        exec env -i /usr/sbin/chroot --userspec=65532:65532 "$0" /usr/local/bin/inferd "$@"
    ' "$rootfs" "$models" "${args[@]}" > "$work/log" 2>&1 &
    pid=$!
}
# Runs a command in inferd's network namespace.
in_ns() { nsenter --net="/proc/$pid/ns/net" -- "$@"; }

wait_ready() {
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "FAIL: inferd exited early:" >&2; cat "$work/log" >&2; exit 1
        fi
        if in_ns curl -fsS -o /dev/null --max-time 1 http://127.0.0.1:8080/v2/health/ready 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "FAIL: not ready after 30 s:" >&2; cat "$work/log" >&2; exit 1
}

seed_request() {
    in_ns curl -sS --max-time 5 -X POST http://127.0.0.1:8080/predict \
        -H "Content-Type: application/json" -d '{"inputs": [5.1, 3.5, 1.4, 0.2]}'
}

check_prediction() {
    local body
    body="$(seed_request)"
    echo "seed request -> $body"
    python3 -c 'import json,sys; b=json.loads(sys.argv[1]); sys.exit(0 if b=={"prediction":[0]} else 1)' "$body" \
        || { echo "FAIL: expected {\"prediction\":[0]}" >&2; cat "$work/log" >&2; exit 1; }
}

stop_and_check_exit() {
    kill -TERM "$pid"
    # Readiness must turn false at once (the pod leaves the load balancers) while the server
    # still answers during --shutdown-delay.
    local code=""
    for _ in $(seq 1 20); do
        code="$(in_ns curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://127.0.0.1:8080/v2/health/ready || true)"
        [ "$code" = 503 ] && break
        sleep 0.05
    done
    echo "readiness after SIGTERM -> $code"
    [ "$code" = 503 ] || { echo "FAIL: readiness did not turn 503 after SIGTERM" >&2; exit 1; }
    check_prediction
    local rc=0
    local waited=0
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt 400 ]; do sleep 0.1; waited=$((waited + 1)); done
    if kill -0 "$pid" 2>/dev/null; then echo "FAIL: still running 40 s after SIGTERM" >&2; exit 1; fi
    wait "$pid" || rc=$?
    pid=""
    echo "exit status after SIGTERM: $rc (after $((waited / 10)).$((waited % 10)) s)"
    [ "$rc" = 0 ] || { echo "FAIL: expected exit 0" >&2; cat "$work/log" >&2; exit 1; }
}

echo "== run 1: the image's default command (serve, built-in model), empty environment, uid 65532"
start ""
wait_ready
check_prediction
in_ns curl -fsS -o /dev/null http://127.0.0.1:8080/v2/health/live && echo "live: 200"
metrics="$(in_ns curl -fsS http://127.0.0.1:8082/metrics)" \
    || { echo "FAIL: no /metrics on 8082" >&2; exit 1; }
grep -q '^inferd_' <<<"$metrics" || { echo "FAIL: /metrics has no inferd_ series" >&2; exit 1; }
echo "metrics: $(grep -c '^inferd_' <<<"$metrics") inferd_ samples on :8082"
in_ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/8081' && echo "grpc: 8081 accepts connections"
user="$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")"
echo "running as uid $user"
[ "$user" = 65532 ] || { echo "FAIL: not running as 65532" >&2; exit 1; }
root_opts="$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | tail -1)"
echo "root filesystem mount options: $root_opts"
case ",$root_opts," in *,ro,*) ;; *) echo "FAIL: root filesystem is not read-only" >&2; exit 1 ;; esac
[ "$(tr '\0' '\n' < "/proc/$pid/environ" | grep -c .)" = 0 ] || { echo "FAIL: environment not empty" >&2; exit 1; }
stop_and_check_exit

echo "== run 2: a model repository mounted read-only at /models"
model="${INFERD_TEST_MODEL:-crates/inferd/assets/iris.onnx}"
if [ -f "$model" ]; then
    repo="$work/models"
    mkdir -p "$repo/iris/1"
    cp "$model" "$repo/iris/1/model.${model##*.}"
    chmod -R a+rX "$repo"
    start "$repo" serve --model-repository /models --default-model iris
    wait_ready
    check_prediction
    stop_and_check_exit
else
    echo "SKIP run 2: no model file at $model"
fi

echo "PASS: final stage runs from an empty environment as 65532, answers the seed, exits 0 on SIGTERM"
