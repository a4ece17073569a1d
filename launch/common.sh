# Shared by launch/local and launch/hosts: finds the binary, runs mpirun, forwards a stop signal to
# it, and turns a worker's death into one line.
# shellcheck shell=bash

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# What rank 0 says once every worker has started (run_mpirun), and how long to wait for it.
start_line="cohort: workers started $$" start_timeout=0

die() { echo "error: $*" >&2; exit 2; }

# split_words VARIABLE: the words of the environment variable VARIABLE (COHORT_MPIRUN_ARGS, ...) as
# a shell reads a command line, into the array `words`: quotes and backslashes honoured (-x 'A=b c'
# is two words), nothing expanded or run (a * stays a *); an unmatched quote is an error.
split_words() {
    local value=${!1:-}
    words=()
    [ -n "$value" ] || return 0
    xargs -r -n1 true <<<"$value" 2>/dev/null || die "$1: unmatched quote in '$value'"
    mapfile -d '' -t words < <(xargs -r -n1 printf '%s\0' <<<"$value")
}

# The user's extra mpirun options.
split_words COHORT_MPIRUN_ARGS
user_args=("${words[@]}")

# user_sets OPTION [MCA_NAME]: whether the user's options already give OPTION (e.g. --bind-to), or
# with MCA_NAME the MCA parameter of that name (--mca, -mca, --gmca, -gmca). mpirun refuses an MCA
# parameter listed twice, so a default of the scripts is passed only when the user gives none.
user_sets() {
    local i
    for ((i = 0; i < ${#user_args[@]}; i++)); do
        if [ $# -eq 1 ]; then
            case ${user_args[i]} in "$1"|"$1"=*) return 0 ;; esac
        else
            case ${user_args[i]} in
                --mca|-mca|--gmca|-gmca) [ "${user_args[i + 1]:-}" = "$2" ] && return 0 ;;
            esac
        fi
    done
    return 1
}

# mca_defaults NAME VALUE ...: "--mca NAME VALUE" for each pair the user does not set, in `defaults`.
defaults=()
mca_defaults() {
    while [ $# -ge 2 ]; do
        user_sets --mca "$1" || defaults+=(--mca "$1" "$2")
        shift 2
    done
}

# shell_words WORD...: the words as a shell reads them back (quoted where they hold spaces and the
# like), for the command a stopped run prints to continue with.
shell_words() {
    local words
    words=$(printf '%q ' "$@")
    echo "${words% }"
}

cohort_bin() {
    local bin=${COHORT_BIN:-$here/.build/release/cohort}
    [ -f "$bin" ] && [ -x "$bin" ] || die "$bin: no cohort binary (build it with 'swift build -c release' or set COHORT_BIN)"
    echo "$bin"
}

# kill_session PID: every process of the session mpirun (PID) leads, its remote shells included
# (each has a process group of its own); mpirun alone where pkill is missing.
kill_session() {
    pkill -KILL -s "$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null || true
}

# pass_on_stop SIGNAL: run_mpirun's handler of a stop signal. Before the workers have started (their
# start line not yet seen) there is nothing to checkpoint, and mpirun, waiting on a host, would keep
# waiting (or end with status 0, the run reported as complete): the launch is ended at once. A
# signal before mpirun has been started is acted on as soon as it has.
pass_on_stop() {
    [ "$stopped" = 1 ] || echo "$1" > "$received"
    stopped=1
    [ -n "$pid" ] || return 0
    if [ ! -e "$started" ] && [ ! -e "$flag" ]; then
        kill_session "$pid"
    else
        kill -USR1 "$pid" 2>/dev/null || true
    fi
}

# held_in_page LINE: whether LINE is part of one of mpirun's messages framed by lines of dashes (a
# reader's state: `page`, the lines of the message so far, empty outside one); the closing line
# appends the message to $said as one line. A message still open when the stream ends was none:
# `release_page` prints its lines as they came.
held_in_page() {
    if [ ${#page[@]} -eq 0 ]; then
        [[ $1 =~ ^-{20,}$ ]] || return 1
        page=("$1")
        return 0
    fi
    if [[ $1 =~ ^-{20,}$ ]]; then
        local held words message=
        for held in "${page[@]:1}"; do
            read -r -a words <<<"$held"
            [ ${#words[@]} -gt 0 ] && message+="${message:+ }${words[*]}"
        done
        printf '%s\n' "$message" >> "$said"
        page=()
        return 0
    fi
    page+=("$1")
}

# release_page: prints the lines of a message still open (`page`), as they came.
release_page() {
    [ ${#page[@]} -eq 0 ] || printf '%s\n' "${page[@]}" 2>/dev/null || true
}

# mpirun_noise LINE: whether LINE is one of mpirun's that tell the user nothing here:
# - "mpirun: Forwarding signal 10 to job": the SIGUSR1 passed on here, not the signal the user sent;
# - "[host:pid] 1 more process has sent help message ..." and "[host:pid] Set MCA parameter
#   "orte_base_help_aggregate" ...": the count of messages held back, and how to see them all;
# - "[host:pid] [[job,0],0] ORTE_ERROR_LOG: ... show_help.c at line N": mpirun mixing up two workers'
#   MPI_Abort notices at once (OpenMPI 4.1).
mpirun_noise() {
    [[ $1 == "mpirun: Forwarding signal "* ]] ||
        [[ $1 =~ ^\[[^]]+\]\ ([0-9]+\ more\ process.*sent\ help\ message|Set\ MCA\ parameter\ \"orte_base_help_aggregate\") ]] ||
        [[ $1 =~ ^\[[^]]+\]\ \[\[[0-9]+,[0-9]+\],[0-9]+\]\ ORTE_ERROR_LOG:\ .*show_help\.c\ at\ line\ [0-9]+$ ]]
}

# copy_mpirun_output: run_mpirun's reader of mpirun's standard output (the workers' lines, and a
# remote daemon's own through its remote shell): every line on to this script's, but mpirun's pages.
# Where that output cannot be written (a full disk, a closed pipe or terminal), the lines are read
# and dropped: mpirun, writing to a reader that had ended, would end the job on SIGPIPE. Both readers
# ignore the stop signals, which reach them too when sent to the script's process group (`timeout`,
# `kill -- -PGID`): they end with mpirun's output, after the stop line.
copy_mpirun_output() {
    trap '' INT HUP TERM PIPE
    local page=() line
    while IFS= read -r line || [ -n "$line" ]; do
        held_in_page "$line" || printf '%s\n' "$line" 2>/dev/null || true
    done
    release_page
    touch "$finished_out"
}

# read_mpirun_errors: run_mpirun's reader of mpirun's standard error: mpirun's pages and noise held
# back, rank 0's start line taken out, and every other line on to this script's, noting for
# run_mpirun a worker's error and the stop line (which names the signal this script got, not the
# SIGUSR1 it passed on).
read_mpirun_errors() {
    trap '' INT HUP TERM PIPE
    local page=() line
    while IFS= read -r line || [ -n "$line" ]; do
        held_in_page "$line" || mpirun_noise "$line" && continue
        if [ "$line" = "$start_line" ]; then
            touch "$started"
            continue
        fi
        if [[ $line == "stopped at step "*" by SIGUSR1;"* ]] && [ -s "$received" ]; then
            line=${line/ by SIGUSR1;/ by $(<"$received");}
        fi
        printf '%s\n' "$line" >&2 2>/dev/null || true
        case $line in
            error:*) touch "$flag" ;;
            "stopped at step "*) touch "$checkpointed" ;;
        esac
    done
    release_page >&2
    touch "$finished"
}

# run_mpirun ARGS...: runs mpirun with ARGS. SIGTERM, SIGINT and SIGHUP are passed on to mpirun once,
# as SIGUSR1, which mpirun hands to every worker, on every host, and goes on: the workers stop at the
# same step, checkpoint it and exit 75, and mpirun with them. (A SIGTERM or SIGINT makes mpirun end
# the job itself: it kills workers whose step outlasts its grace, and stops reading their output, on
# which a worker that prints much then blocks.) mpirun runs in a session of its own, so that a
# terminal's Ctrl-C (sent to the whole foreground process group) does not reach it. Once a worker has
# reported an error, mpirun gets `grace` seconds to end the job (it takes about 1 s on one host):
# past that (its link to a host is cut and it waits on TCP retransmissions) it is ended here, with its
# remote shells, whose daemons then end their workers.
#
# Rank 0 writes `start_line` (passed as COHORT_START_LINE) once every worker has started; until it
# comes, a stop request ends the launch at once, and `start_timeout` seconds (0: no limit; set by
# launch/hosts) end it with an error: a remote shell that hangs leaves mpirun waiting forever.
#
# mpirun's own messages (framed by lines of dashes), on either stream, are held back, each as one
# line: after a worker's error they only repeat that the job ended, and when mpirun fails before any
# worker starts, the first says why (--quiet would hide some of them, such as a refused binding, and
# print others whole). A remote daemon's messages come on standard output, through its remote shell.
run_mpirun() {
    local stopped=0 status grace=5 flag said finished finished_out checkpointed started received
    flag=$(mktemp)
    rm -f "$flag"
    said=$flag.said finished=$flag.finished finished_out=$flag.finished-out checkpointed=$flag.checkpointed started=$flag.started received=$flag.received
    [ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    local pid=
    # `|| true` in the handlers: a signal that comes as mpirun ends finds no process, and under
    # `set -e` the failed kill would end this script with status 1 (a finished run reported as failed).
    trap 'pass_on_stop SIGTERM' TERM
    trap 'pass_on_stop SIGINT' INT
    trap 'pass_on_stop SIGHUP' HUP
    setsid mpirun -x COHORT_START_LINE="$start_line" "$@" > >(copy_mpirun_output) 2> >(read_mpirun_errors) &
    pid=$!
    # Every signal is passed on (a second ends the workers at once, as it does a cohort run itself).
    [ "$stopped" = 0 ] || pass_on_stop
    # Ticks of 0.2 s: a run's end is seen that soon after mpirun's.
    local ticks_per_second=5 waited=0 starting=0 unstarted=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.2 || true  # a Ctrl-C ends the sleep too (the trap runs, the loop goes on)
        if [ -e "$flag" ]; then
            waited=$((waited + 1))
            if [ "$waited" -ge $((grace * ticks_per_second)) ]; then kill_session "$pid"; fi
        elif [ ! -e "$started" ]; then
            starting=$((starting + 1))
            if [ "$start_timeout" -gt 0 ] && [ "$starting" -ge $((start_timeout * ticks_per_second)) ]; then
                unstarted=1
                kill_session "$pid"
            fi
        fi
    done 2>/dev/null  # bash's notice of a job killed, which quotes the whole reader above
    { wait "$pid"; } 2>/dev/null && status=0 || status=$?
    # What mpirun leaves of its session (each remote shell has a process group of its own): the
    # remote shell of a host cut off, with the daemon's session attached, would hold mpirun's output
    # open and this script with it.
    kill_session "$pid"
    # The job is over: a stop request now has nothing to stop, and the end is reported as it was.
    trap '' TERM INT HUP
    # The readers of mpirun's output end when their pipes close, just after mpirun.
    local tries=0
    while { [ ! -e "$finished" ] || [ ! -e "$finished_out" ]; } && [ "$tries" -lt 50 ]; do sleep 0.1 || true; tries=$((tries + 1)); done
    # mpirun's held-back messages, each one line: the first, and those the job's end is told from.
    local reason= daemons= unreachable= unlaunched= killed=
    if [ -s "$said" ]; then
        reason=$(head -n 1 "$said")
        daemons=$(grep -m 1 '^ORTE was unable to reliably start one or more daemons' "$said" || true)
        # Every host that could not connect back (to mpirun's host, the first message's remote).
        local tcp='^A process or daemon was unable to complete a TCP connection to another process: Local host: \([^ ]*\) Remote host: \([^ ]*\) .*'
        unreachable=$(sed -n "s/$tcp/\\1/p" "$said" | sort -u | paste -sd ,)
        [ -z "$unreachable" ] || unreachable="${unreachable//,/, } could not open a TCP connection to $(sed -n "s/$tcp/\\2/p" "$said" | head -n 1)"
        unlaunched=$(sed -n 's/^mpirun was unable to launch the specified application.* Executable: \([^ ]*\) Node: \([^ ]*\) .*/\1 on \2/p' "$said" | head -n 1)
        killed=$(sed -n 's/^mpirun noticed that process rank \([0-9]*\) with PID [0-9]* on node \([^ ]*\) exited on signal \([0-9]* ([^)]*)\).*/(rank \1 on \2) was killed by signal \3/p' "$said" | head -n 1)
    fi
    local took_checkpoint=0 was_started=0
    [ -e "$checkpointed" ] && took_checkpoint=1
    [ -e "$started" ] && was_started=1
    rm -f "$said" "$finished" "$finished_out" "$checkpointed" "$started" "$received"
    if [ -e "$flag" ]; then rm -f "$flag"; exit 1; fi
    if [ "$unstarted" = 1 ]; then
        echo "error: the workers had not started $start_timeout s after mpirun began: a host's remote shell has not come back (a host down or not answering ssh; COHORT_START_TIMEOUT sets the wait); no worker ran" >&2
        exit 1
    fi
    # A stop request that came as the run ended normally changes nothing: the run is complete.
    if [ "$stopped" = 1 ] && [ "$status" != 0 ]; then
        # Rank 0's stop line, or the workers' status passed on by mpirun.
        if [ "$took_checkpoint" = 1 ] || [ "$status" = 75 ]; then exit 75; fi
        # Before a worker had set up its handler (it ends on the signal), or a second signal.
        echo "error: the job ended on the stop request before rank 0 took a checkpoint (during start-up, or a second signal); nothing new to resume from" >&2
        exit 1
    fi
    if [ -n "$daemons" ] && [ -n "$unreachable" ]; then
        echo "error: mpirun could not start its daemon on every host: $unreachable (a firewall there, a link down, or no interface in common: see --mca oob_tcp_if_include); no worker ran" >&2
        exit 1
    elif [ -n "$daemons" ]; then
        echo "error: mpirun could not start its daemon on every host (exit $status; the lines above may say why, as ssh's do, or a host could not connect back to this one: a firewall, a link down); no worker ran" >&2
        exit 1
    elif [ -n "$unlaunched" ]; then
        echo "error: mpirun could not run $unlaunched (no such file there, or not executable); no worker ran" >&2
        exit 1
    elif [ -n "$killed" ]; then
        echo "error: a worker $killed and the job ended; continue with --resume auto" >&2
        exit 1
    elif [ "$status" -gt 127 ] && [ "$was_started" = 0 ]; then
        echo "error: mpirun ended (exit $status) before the workers had started (a host lost, or mpirun killed); no worker ran" >&2
        exit 1
    elif [ "$status" -gt 128 ] && [ "$status" -le 192 ]; then
        echo "error: a worker was killed by signal $((status - 128)) and the job ended; continue with --resume auto" >&2
        exit 1
    elif [ "$status" -gt 127 ]; then
        echo "error: mpirun lost a worker or a host (exit $status) and ended the job; continue with --resume auto" >&2
        exit 1
    fi
    if [ "$status" != 0 ] && [ "$status" != 75 ]; then
        if [ -n "$reason" ]; then
            echo "error: mpirun failed (status $status): $reason" >&2
        else
            echo "error: mpirun failed (status $status) before any worker reported an error" >&2
        fi
    fi
    exit "$status"
}
