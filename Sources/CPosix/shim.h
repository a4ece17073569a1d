#ifndef COHORT_POSIX_SHIM_H
#define COHORT_POSIX_SHIM_H
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/auxv.h>
#include <sys/prctl.h>

/* Swaps two paths atomically (Linux renameat2 with RENAME_EXCHANGE), which glibc declares only
   under _GNU_SOURCE. Returns 0 or -1 with errno set. */
static inline int cohort_rename_exchange(const char *a, const char *b) {
    return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

/* The CPUs this thread may run on (its affinity mask, as taskset or a batch scheduler sets it), or 0
   where the mask cannot be read. CPU_COUNT is a macro. */
static inline int cohort_allowed_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set);
}

/* The index-th CPU (from 0) of this thread's affinity mask, or -1 past the last. */
static inline int cohort_allowed_cpu(int index) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &set) && index-- == 0) return cpu;
    }
    return -1;
}

/* Binds the calling thread to one CPU. Returns 0 or an error number. */
static inline int cohort_bind_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* Tells the core that the thread is spinning on a memory location (x86 `pause`), which spares the
   memory system and the sibling hyperthread; nothing elsewhere. */
static inline void cohort_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Asks for the cache line holding p ahead of its use (a hint: never faults). */
static inline void cohort_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

/* Whether the program was started as the dynamic loader's argument (`ld-linux-x86-64.so.2 prog`):
   the kernel then ran the loader as the program and gave it no interpreter's base (AT_BASE 0), and
   /proc/self/exe is the loader, not the program. */
static inline int cohort_started_by_loader(void) {
    return getauxval(AT_BASE) == 0;
}

/* The calling thread's name (what ps and pgrep show of a process's main thread), at most 15 bytes,
   into name[16]. */
static inline void cohort_process_name(char name[16]) {
    name[0] = 0;
    prctl(PR_GET_NAME, name, 0, 0, 0);
    name[15] = 0;
}

/* Names the calling thread (the first 15 bytes of name). */
static inline void cohort_set_process_name(const char *name) {
    prctl(PR_SET_NAME, name, 0, 0, 0);
}

/* Whether a signal's disposition is to ignore it (SIG_IGN), as nohup leaves SIGHUP for the program
   it starts; SIG_IGN is a macro Swift cannot import. */
static inline int cohort_action_ignores(const struct sigaction *action) {
    return action->sa_handler == SIG_IGN;
}
#endif
