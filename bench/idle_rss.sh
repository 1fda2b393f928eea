#!/usr/bin/env bash
# Idle-connection memory benchmark: how much server memory does one idle WebSocket cost?
#
# Usage: bench/idle_rss.sh [PW_ECHO] [CONNS] [-- extra pw-bench idle options]
#   PW_ECHO  path to the echo server (default $BUILD/tests/support/pw-echo)
#   CONNS    number of idle connections (default 10000)
#   PW_BENCH=path overrides the client binary (default $BUILD/bench/pw-bench)
#   BUILD    the build directory, from the repository root (default build-bench, Release:
#            bench/README.md)
#
# Builds nothing. Starts `PW_ECHO 0`, reads its port from
# "pw-echo listening on port N", runs `pw-bench idle` with --server-pid against it,
# prints the result and stops the server by its pid. Exits with pw-bench's status.
set -euo pipefail

BUILD=${BUILD:-build-bench}
ECHO=${1:-$BUILD/tests/support/pw-echo}
CONNS=${2:-10000}
shift $(( $# >= 2 ? 2 : $# ))
if [[ ${1:-} == "--" ]]; then shift; fi
PW_BENCH=${PW_BENCH:-$BUILD/bench/pw-bench}

for f in "$ECHO" "$PW_BENCH"; do
  if [[ ! -x $f ]]; then
    echo "idle_rss.sh: $f is not an executable (build the project first)" >&2
    exit 2
  fi
done

# Both ends need CONNS descriptors; the client raises its own limit, and raising
# the shell's here lets the server inherit a high one too (best effort).
want=$(( CONNS + 200 ))
if [[ $(ulimit -Hn) != unlimited ]] && (( $(ulimit -Hn) < want )); then
  ulimit -Hn "$want" 2>/dev/null || true
fi
if [[ $(ulimit -Sn) != unlimited ]] && (( $(ulimit -Sn) < want )); then
  ulimit -Sn "$want" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
fi

out=$(mktemp)
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -f "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ECHO" 0 >"$out" &
server_pid=$!

port=
for _ in $(seq 100); do
  line=$(head -n 1 "$out" 2>/dev/null || true)
  if [[ $line =~ listening\ on\ port\ ([0-9]+)$ ]]; then
    port=${BASH_REMATCH[1]}
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "idle_rss.sh: server exited before listening" >&2
    exit 2
  fi
  sleep 0.1
done
if [[ -z $port ]]; then
  echo "idle_rss.sh: no 'pw-echo listening on port N' line within 10 s" >&2
  exit 2
fi

echo "server: $ECHO (pid $server_pid, port $port, fd limit $(ulimit -n))"
rc=0
# --duration 1: hold the connections a second so the RSS has settled when it is read.
"$PW_BENCH" idle --port "$port" --conns "$CONNS" --duration 1 --server-pid "$server_pid" "$@" || rc=$?
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "idle_rss.sh: the server died during the benchmark" >&2
  rc=1
fi
exit "$rc"
