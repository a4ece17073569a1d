# Shared by launch/local and launch/hosts: finds the binary, runs mpirun, forwards a stop signal to
# it, and turns a worker's death into one line.
# shellcheck shell=bash

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "error: $*" >&2; exit 2; }

cohort_bin() {
    local bin=${COHORT_BIN:-$here/.build/release/cohort}
    [ -x "$bin" ] || die "$bin: no cohort binary (build it with 'swift build -c release' or set COHORT_BIN)"
    echo "$bin"
}

# run_mpirun ARGS...: runs mpirun with ARGS, the user's COHORT_MPIRUN_ARGS appended before the binary
# by the caller. SIGTERM and SIGINT are passed on to mpirun, which hands them to every worker: they
# stop at the same step and checkpoint it (exit 75).
run_mpirun() {
    local stopped=0 status
    [ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    mpirun "$@" &
    local pid=$!
    trap 'stopped=1; kill -TERM "$pid" 2>/dev/null' TERM INT
    while true; do
        wait "$pid" && status=0 || status=$?
        kill -0 "$pid" 2>/dev/null || break
    done
    trap - TERM INT
    if [ "$stopped" = 1 ]; then exit 75; fi
    if [ "$status" -gt 128 ]; then
        echo "error: a worker was killed by signal $((status - 128)) and the job ended; continue with --resume auto" >&2
        exit 1
    fi
    exit "$status"
}
