/*
 * What starting a job in a cgroup of its own costs, without execnode around it: spawns
 * /bin/true N times with clone3(CLONE_VM | CLONE_VFORK) on a stack of its own, as
 * `xnslave`'s confined spawn does, and prints the wall time per job for each way of putting
 * the child in a cgroup (BENCHMARKS.md, round 16). x86_64 only (the clone3 call is inline
 * assembly: glibc exports no clone3 that runs a function on a new stack). Needs root and a
 * cgroup v2 directory to work in:
 *
 *   gcc -O2 -o /tmp/cgroup_spawn scripts/bench/cgroup_spawn.c
 *   mkdir /sys/fs/cgroup/xn-bench          # or under /sys/fs/cgroup/unified on a hybrid mount
 *   /tmp/cgroup_spawn /sys/fs/cgroup/xn-bench 3000
 *   rmdir /sys/fs/cgroup/xn-bench
 *
 * Ways, each run in turn, three times over:
 *   none     no cgroup (the baseline)
 *   write    a new cgroup per job, the child writes "0" to its cgroup.procs (what xnslave
 *            --cgroup does), rmdir after
 *   into     a new cgroup per job, the child born in it (CLONE_INTO_CGROUP), rmdir after
 *   reused   one cgroup for every job, the child writes its cgroup.procs
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum way { NONE, WRITE, INTO, REUSED };
static const char *names[] = {"none", "write", "into", "reused"};

static char *child_argv[] = {"/bin/true", NULL};
static char *child_envp[] = {NULL};

/* The child: into the cgroup through `procs` (if not -1), then exec. */
static int child_main(void *arg) {
    long procs = (long)arg;
    if (procs >= 0 && write((int)procs, "0", 1) != 1)
        return 126;
    execve(child_argv[0], child_argv, child_envp);
    return 127;
}

/* clone3 whose child runs fn(arg) on the stack in `args`, then exits with its result. */
static long clone3_run(struct clone_args *args, int (*fn)(void *), void *arg) {
    long ret;
    register long r12 __asm__("r12") = (long)fn;
    register long r13 __asm__("r13") = (long)arg;
    __asm__ volatile("mov $435, %%eax\n\t" /* SYS_clone3 */
                     "syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "mov %%r13, %%rdi\n\t" /* the child, on its new stack */
                     "call *%%r12\n\t"
                     "mov %%eax, %%edi\n\t"
                     "mov $60, %%eax\n\t" /* SYS_exit */
                     "syscall\n\t"
                     "ud2\n"
                     "1:"
                     : "=a"(ret)
                     : "D"(args), "S"(sizeof *args), "r"(r12), "r"(r13)
                     : "rcx", "r11", "rdx", "memory");
    return ret;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static double run(enum way way, const char *dir, int n, char *stack, size_t stack_size) {
    char cg[4096], procs[4200];
    snprintf(cg, sizeof cg, "%s/cgroup-spawn-%d", dir, getpid());
    snprintf(procs, sizeof procs, "%s/cgroup.procs", cg);
    if (way == REUSED && mkdir(cg, 0755))
        die("mkdir");
    double start = now();
    for (int i = 0; i < n; i++) {
        if ((way == WRITE || way == INTO) && mkdir(cg, 0755))
            die("mkdir");
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = CLONE_VM | CLONE_VFORK;
        args.exit_signal = SIGCHLD;
        args.stack = (unsigned long)stack;
        args.stack_size = stack_size;
        long fd = -1;
        if (way == INTO) {
            fd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = fd;
        } else if (way != NONE) {
            fd = open(procs, O_WRONLY | O_CLOEXEC);
        }
        if (way != NONE && fd < 0)
            die("open");
        long pid = clone3_run(&args, child_main, (void *)(way == INTO ? -1L : fd));
        if (pid < 0) {
            fprintf(stderr, "clone3: %s\n", strerror((int)-pid));
            exit(1);
        }
        if (fd >= 0)
            close((int)fd);
        int status;
        if (waitpid((pid_t)pid, &status, 0) < 0)
            die("waitpid");
        if (status != 0) {
            fprintf(stderr, "child: status %d\n", status);
            exit(1);
        }
        if ((way == WRITE || way == INTO) && rmdir(cg))
            die("rmdir");
    }
    double per_job = (now() - start) / n * 1e6;
    if (way == REUSED && rmdir(cg))
        die("rmdir");
    return per_job;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CGROUP-V2-DIR N\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]);
    size_t stack_size = 64 * 1024;
    char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        die("mmap");
    for (int round = 1; round <= 3; round++)
        for (enum way w = NONE; w <= REUSED; w++)
            printf("round %d, %-6s %6.1f us a job\n", round, names[w],
                   run(w, argv[1], n, stack, stack_size));
    return 0;
}
