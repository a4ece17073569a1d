/* Build and run: gcc -O1 -o race Tests/scripts/hwloc-shmem-race.c -lhwloc && ./race 100 [same]
   Two processes write the topology into one shared file at once, as two ORTE daemons with the same
   session directory do (rtc_hwloc: <tmp>/ompi.<hostname>.<uid>/jf.<job>/hwloc.sm), each at its own
   address (as vmhole "biggest" picks under ASLR). Counts the writers killed by a signal. */
#include <hwloc.h>
#include <hwloc/shmem.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int writer(const char *path, unsigned long address, struct timespec start) {
    hwloc_topology_t topology;
    hwloc_topology_init(&topology);
    hwloc_topology_load(topology);
    size_t length;
    if (hwloc_shmem_topology_get_length(topology, &length, 0)) return 2;
    int fd = open(path, O_CREAT | O_RDWR, 0600);
    if (fd < 0) return 3;
    while (clock_gettime(CLOCK_REALTIME, &(struct timespec){0}), 1) {   /* spin to the common start */
        struct timespec now; clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec > start.tv_sec || (now.tv_sec == start.tv_sec && now.tv_nsec >= start.tv_nsec)) break;
    }
    int rc = hwloc_shmem_topology_write(topology, fd, 0, (void *)address, length, 0);
    return rc ? 4 : 0;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 100, same = argc > 2 && argv[2][0] == 's';
    int killed = 0, failed = 0;
    for (int r = 0; r < rounds; r++) {
        char path[64]; snprintf(path, sizeof path, "/tmp/hwloc-shmem-race.%d", r);
        unlink(path);
        struct timespec start; clock_gettime(CLOCK_REALTIME, &start);
        start.tv_nsec += 200000000; if (start.tv_nsec >= 1000000000) { start.tv_sec++; start.tv_nsec -= 1000000000; }
        pid_t pids[2];
        for (int i = 0; i < 2; i++) {
            unsigned long address = 0x7f0000000000UL + (same ? 0 : i * 0x10000000UL);
            if ((pids[i] = fork()) == 0) _exit(writer(path, address, start));
        }
        for (int i = 0; i < 2; i++) {
            int status; waitpid(pids[i], &status, 0);
            if (WIFSIGNALED(status)) { killed++; fprintf(stderr, "round %d: writer %d killed by signal %d\n", r, i, WTERMSIG(status)); }
            else if (WEXITSTATUS(status)) failed++;
        }
        unlink(path);
    }
    printf("%s addresses: %d rounds, %d writers killed by a signal, %d failed cleanly\n", same ? "same" : "different", rounds, killed, failed);
    return 0;
}
