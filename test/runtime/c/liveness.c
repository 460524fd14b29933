/* liveness (issue 10): sleepers, fsyncs and every thread keep making
 * progress while CPU-bound threads keep every vCPU busy.
 *
 * For each load shape (a pure user loop, a syscall loop, an mmap/munmap
 * loop) and each load size (as many spinning threads as vCPUs, then twice
 * as many), the program runs the spinners next to a sleeper (50 ms sleeps)
 * and an fsync thread (4 KiB pwrite + fsync), the way a server keeps busy
 * workers next to a timer thread and a journal.
 *
 * Checked (never against a clock): every sleep and every fsync completes
 * while the spinners spin (on a kernel that schedules only when threads
 * block they never do, and the test hangs until the runner's timeout);
 * every spinner progresses during the second half of each phase (round-robin
 * time slices: with 2x vCPUs spinners, a thread that only runs after others
 * exit fails this); the watchdog, itself a sleeping thread, keeps running.
 * Printed, for `cargo xtask bench sched` and the closing notes: each phase's
 * sleep lateness (median, max) and fsync latency (median, max) next to the
 * unloaded figures. With --strict (argv[2] = "strict"), the bounds
 * are asserted too: each sleep at most 2 quanta (20 ms) late and each fsync
 * at most 10x its unloaded median; only for quiet machines.
 *
 * With "bench" as argv[2] it is the workload of `cargo xtask bench sched`
 * instead: 0, N and 2N user-loop spinners, 100 sleeps of 20 ms and 40
 * fsyncs each, printing `schedbench` lines (wake-up and fsync latency
 * percentiles).
 *
 * argv[1]: vCPUs; argv[2]: "strict" or "bench" (optional). */
#include "cairn_test.h"
#include <sys/syscall.h>

#define SLEEPS_MAX 100
#define FSYNCS_MAX 40
#define MAX_SPIN 8
#define QUANTUM_NS 10000000L

enum shape { SHAPE_USER, SHAPE_SYSCALL, SHAPE_MMAP };
static const char *shape_name[] = {"user loop", "syscall loop", "mmap/munmap loop"};

static volatile int stop;
static volatile unsigned long counts[MAX_SPIN];
static struct worker_progress *w_spin[MAX_SPIN];
static int fsync_fd;

struct spin_arg {
    int index;
    enum shape shape;
};

static void *spinner(void *p)
{
    struct spin_arg *a = p;
    unsigned long n = 0;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        switch (a->shape) {
        case SHAPE_USER:
            for (volatile int i = 0; i < 20000; i++)
                ;
            break;
        case SHAPE_SYSCALL:
            for (int i = 0; i < 50; i++)
                syscall(SYS_getppid);
            break;
        case SHAPE_MMAP: {
            char *m = SYSP(mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
            m[0] = 1;
            m[15 * PAGE] = 2;
            SYS(munmap(m, 16 * PAGE));
            break;
        }
        }
        n++;
        __atomic_store_n(&counts[a->index], n, __ATOMIC_RELAXED);
        tick(w_spin[a->index], "spin");
    }
    return NULL;
}

static long ns_between(struct timespec a, struct timespec b)
{
    return (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static long median(long *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_long);
    return v[n / 2];
}

static long max_of(const long *v, int n)
{
    long m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

/* Lateness (ns) of `n` sleeps of 50 ms; the spinners' counts are
 * snapshotted after sleep `n / 2` into `mid`. */
static int sleeps = 16, fsyncs = 8;
static long sleep_ns = 50 * 1000000L;

struct sleeper_arg {
    int spinners;
    long late[SLEEPS_MAX];
    unsigned long mid[MAX_SPIN];
};

static void *sleeper(void *p)
{
    struct sleeper_arg *a = p;
    for (int i = 0; i < sleeps; i++) {
        struct timespec t0, t1, d = {0, sleep_ns};
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (nanosleep(&d, &d) < 0 && errno == EINTR)
            ;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long slept = ns_between(t0, t1);
        CHECK(slept >= sleep_ns, "a %ld ns sleep returned after %ld ns", sleep_ns, slept);
        a->late[i] = slept - sleep_ns;
        if (i == sleeps / 2)
            for (int s = 0; s < a->spinners; s++)
                a->mid[s] = __atomic_load_n(&counts[s], __ATOMIC_RELAXED);
    }
    return NULL;
}

struct fsync_arg {
    long ns[FSYNCS_MAX];
};

static void *fsyncer(void *p)
{
    struct fsync_arg *a = p;
    static char buf[PAGE];
    for (int i = 0; i < fsyncs; i++) {
        struct timespec t0, t1;
        pat_fill(buf, sizeof buf, (uint64_t)i * PAGE, 7);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        pwrite_all(fsync_fd, buf, sizeof buf, (off_t)(i % 16) * PAGE);
        SYS(fsync(fsync_fd));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        a->ns[i] = ns_between(t0, t1);
    }
    return NULL;
}

static int strict, bench;
static long unloaded_fsync_median;

/* The value below which `pct` percent of `v[0..n)` lie (sorts `v`). */
static long percentile(long *v, int n, int pct)
{
    qsort(v, (size_t)n, sizeof *v, cmp_long);
    int i = (n * pct + 99) / 100 - 1;
    return v[i < 0 ? 0 : i];
}

/* One phase: `spinners` threads of `shape` beside a sleeper and an fsync
 * thread. */
static void phase(enum shape shape, int spinners)
{
    pthread_t spin[MAX_SPIN], ts, tf;
    struct spin_arg args[MAX_SPIN];
    struct sleeper_arg sa = {.spinners = spinners};
    struct fsync_arg fa;
    __atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
    for (int s = 0; s < spinners; s++) {
        counts[s] = 0;
        w_spin[s]->done = 0;
        args[s] = (struct spin_arg){s, shape};
        CHECK(pthread_create(&spin[s], NULL, spinner, &args[s]) == 0, "pthread_create");
    }
    CHECK(pthread_create(&ts, NULL, sleeper, &sa) == 0, "pthread_create");
    CHECK(pthread_create(&tf, NULL, fsyncer, &fa) == 0, "pthread_create");
    pthread_join(ts, NULL);
    pthread_join(tf, NULL);
    unsigned long end[MAX_SPIN];
    for (int s = 0; s < spinners; s++)
        end[s] = __atomic_load_n(&counts[s], __ATOMIC_RELAXED);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int s = 0; s < spinners; s++) {
        pthread_join(spin[s], NULL);
        w_spin[s]->done = 1;
    }
    for (int s = 0; s < spinners; s++)
        if (end[s] <= sa.mid[s])
            for (int k = 0; k < spinners; k++)
                fprintf(stderr, "liveness: spinner %d: %lu iterations at mid-phase, %lu at the end\n",
                        k, sa.mid[k], end[k]);
    for (int s = 0; s < spinners; s++)
        CHECK(end[s] > sa.mid[s],
              "%s x%d: spinner %d made no progress during the second half of the phase "
              "(%lu then %lu iterations): not scheduled round-robin",
              shape_name[shape], spinners, s, sa.mid[s], end[s]);
    long late_max = max_of(sa.late, sleeps), fs_max = max_of(fa.ns, fsyncs);
    long late_med = median(sa.late, sleeps), fs_med = median(fa.ns, fsyncs);
    if (bench) {
        printf("schedbench spinners=%d wake_p50_ns=%ld wake_p99_ns=%ld fsync_p50_ns=%ld "
               "fsync_p99_ns=%ld\n",
               spinners, percentile(sa.late, sleeps, 50), percentile(sa.late, sleeps, 99),
               percentile(fa.ns, fsyncs, 50), percentile(fa.ns, fsyncs, 99));
        return;
    }
    printf("liveness: %-16s x%d spinners: sleep late median %6.2f ms max %6.2f ms; "
           "fsync median %6.2f ms max %6.2f ms (%.1fx unloaded)\n",
           shape_name[shape], spinners, late_med / 1e6, late_max / 1e6, fs_med / 1e6,
           fs_max / 1e6, (double)fs_med / (double)unloaded_fsync_median);
    if (strict) {
        CHECK(late_max <= 2 * QUANTUM_NS, "%s x%d: a sleep was %.2f ms late (> 2 quanta)",
              shape_name[shape], spinners, late_max / 1e6);
        CHECK(fs_max <= 10 * unloaded_fsync_median,
              "%s x%d: an fsync took %.2f ms (> 10x unloaded %.2f ms)", shape_name[shape],
              spinners, fs_max / 1e6, unloaded_fsync_median / 1e6);
    }
}

int main(int argc, char **argv)
{
    test_init("liveness");
    int vcpus = (int)arg_long(argc, argv, 1, 2);
    strict = argc > 2 && strcmp(argv[2], "strict") == 0;
    bench = argc > 2 && strcmp(argv[2], "bench") == 0;
    if (bench) {
        /* `cargo xtask bench sched`: more samples, user-loop spinners only. */
        sleeps = SLEEPS_MAX;
        fsyncs = FSYNCS_MAX;
        sleep_ns = 20 * 1000000L;
    }
    CHECK(vcpus >= 1 && 2 * vcpus <= MAX_SPIN, "vCPUs %d", vcpus);
    static const char *names[MAX_SPIN] = {"spin0", "spin1", "spin2", "spin3",
                                          "spin4", "spin5", "spin6", "spin7"};
    for (int s = 0; s < 2 * vcpus; s++) {
        w_spin[s] = worker(names[s]);
        w_spin[s]->done = 1;
    }
    watchdog_start(60, 540);
    fsync_fd = SYS(open("liveness.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));

    /* Unloaded figures first. */
    struct sleeper_arg sa = {.spinners = 0};
    struct fsync_arg fa;
    sleeper(&sa);
    fsyncer(&fa);
    unloaded_fsync_median = median(fa.ns, fsyncs);
    printf("liveness: unloaded: sleep late median %.2f ms; fsync median %.2f ms\n",
           median(sa.late, sleeps) / 1e6, unloaded_fsync_median / 1e6);

    if (bench) {
        for (int factor = 0; factor <= 2; factor++)
            phase(SHAPE_USER, factor * vcpus);
    } else {
        for (int shape = SHAPE_USER; shape <= SHAPE_MMAP; shape++)
            for (int factor = 1; factor <= 2; factor++)
                phase((enum shape)shape, factor * vcpus);
    }

    /* The watchdog kept running through it all. */
    watchdog_await_rounds(2);
    SYS(close(fsync_fd));
    SYS(unlinkat(AT_FDCWD, "liveness.dat", 0));
    printf("liveness: %d vCPUs, %d phases, %lu watchdog rounds\n", vcpus, 6,
           (unsigned long)watchdog_rounds);
    pass();
}
