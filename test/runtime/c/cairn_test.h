/*
 * Shared helpers of cairn's runtime test programs.
 *
 * Every program is an ordinary static Linux x86-64 program: it runs on
 * cairn from a TFS image and natively on Linux (in a scratch directory),
 * and is judged by its exit status alone: 0 passes; a failed check prints
 * "FAIL <test>: <file>:<line>: <what>" on stderr and exits with 1; a pass
 * prints "PASS <test>" (the runner looks for it, so that a kernel that
 * exits 0 without running the program does not pass). A hang
 * is caught by the watchdog (a thread watching progress counters, which
 * names the stuck worker and exits with 3) and, behind it, by alarm()
 * (SIGALRM: 128 + 14 on cairn).
 *
 * Only syscalls from issue 7 item 3 are used (plus what static glibc's
 * start-up and pthreads call). Paths are relative: cairn starts programs
 * in "/", native runs in a scratch directory.
 */
#ifndef CAIRN_TEST_H
#define CAIRN_TEST_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Exit statuses with a meaning beyond pass/fail. */
#define ST_PASS 0
#define ST_FAIL 1
#define ST_HANG 3         /* the watchdog found a stuck worker */
#define ST_FIRST_BOOT 42  /* persistence tests: first boot done, data written */

#define PAGE 4096

static const char *test_name = "?";

static __attribute__((unused)) void test_init(const char *name)
{
    test_name = name;
    /* Serial output: line-buffered so a hang still shows the last line. */
    setvbuf(stdout, NULL, _IOLBF, 0);
}

__attribute__((noreturn, format(printf, 3, 4)))
static __attribute__((unused)) void fail_at(const char *file, int line, const char *fmt, ...)
{
    int e = errno;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "FAIL %s: %s:%d: %s (errno %d %s)\n", test_name, file, line, msg, e,
            strerror(e));
    fflush(stdout);
    _exit(ST_FAIL);
}

#define FAIL(...) fail_at(__FILE__, __LINE__, __VA_ARGS__)
#define CHECK(cond, fmt, ...)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FAIL("check failed: %s: " fmt, #cond, ##__VA_ARGS__);                                  \
    } while (0)
/* A call that must not fail (returns -1 on failure); yields its value. */
#define SYS(call)                                                                                  \
    ({                                                                                             \
        errno = 0;                                                                                 \
        __typeof__(call) _r = (call);                                                              \
        if (_r == (__typeof__(call))-1)                                                            \
            FAIL("%s", #call);                                                                     \
        _r;                                                                                        \
    })
#define SYSP(call)                                                                                 \
    ({                                                                                             \
        void *_p = (call);                                                                         \
        if (_p == MAP_FAILED)                                                                      \
            FAIL("%s", #call);                                                                     \
        _p;                                                                                        \
    })

__attribute__((noreturn)) static void pass(void)
{
    printf("PASS %s\n", test_name);
    fflush(stdout);
    exit(ST_PASS);
}

/* A persistence test's first boot is done: say so and exit 42. */
__attribute__((noreturn, unused)) static void first_boot_done(void)
{
    printf("FIRST-BOOT %s: data written; boot the same image again to verify\n", test_name);
    fflush(stdout);
    exit(ST_FIRST_BOOT);
}

/*
 * The data pattern: the 32-bit word at byte offset `off` (a multiple of 4)
 * of a file made with `seed`. The Rust side (cairn-runtime-tests'
 * `pattern_word`) makes data files with the same function.
 */
static inline uint32_t pat32(uint64_t off, uint32_t seed)
{
    uint32_t x = (uint32_t)(off >> 2) * 2654435761u ^ seed * 0x9e3779b9u ^ (uint32_t)(off >> 34);
    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    x ^= x >> 12;
    return x;
}

static inline void pat_fill(void *buf, size_t len, uint64_t off, uint32_t seed)
{
    uint32_t *w = buf;
    for (size_t i = 0; i < len / 4; i++)
        w[i] = pat32(off + 4 * i, seed);
}

/* Offset of the first mismatch, or -1 if `buf` holds the pattern. */
static __attribute__((unused)) long pat_check(const void *buf, size_t len, uint64_t off, uint32_t seed)
{
    const uint32_t *w = buf;
    for (size_t i = 0; i < len / 4; i++)
        if (w[i] != pat32(off + 4 * i, seed))
            return (long)(4 * i);
    return -1;
}

static __attribute__((unused)) void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            FAIL("write of %zu bytes returned %zd", len, n);
        p += n;
        len -= (size_t)n;
    }
}

static __attribute__((unused)) void pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n <= 0)
            FAIL("pwrite of %zu bytes at %lld returned %zd", len, (long long)off, n);
        p += n;
        len -= (size_t)n;
        off += n;
    }
}

/* Reads exactly `len` bytes (fails on a short read). */
static __attribute__((unused)) void pread_all(int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, off);
        if (n <= 0)
            FAIL("pread of %zu bytes at %lld returned %zd", len, (long long)off, n);
        p += n;
        len -= (size_t)n;
        off += n;
    }
}

/* Creates `path` holding `len` bytes of pattern `seed`. */
static __attribute__((unused)) void make_pattern_file(const char *path, size_t len, uint32_t seed, int do_fsync)
{
    static char buf[65536];
    int fd = SYS(open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644));
    for (size_t off = 0; off < len; off += sizeof buf) {
        size_t n = len - off < sizeof buf ? len - off : sizeof buf;
        pat_fill(buf, sizeof buf, off, seed);
        write_all(fd, buf, n);
    }
    if (do_fsync)
        SYS(fsync(fd));
    SYS(close(fd));
}

/* Checks that `path` holds exactly `len` bytes of pattern `seed`. */
static __attribute__((unused)) void check_pattern_file(const char *path, size_t len, uint32_t seed)
{
    static char buf[65536];
    struct stat st;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        FAIL("open %s", path);
    SYS(fstat(fd, &st));
    if ((size_t)st.st_size != len)
        FAIL("%s: size %lld, expected %zu", path, (long long)st.st_size, len);
    for (size_t off = 0; off < len; off += sizeof buf) {
        size_t n = len - off < sizeof buf ? len - off : sizeof buf;
        pread_all(fd, buf, n, (off_t)off);
        long bad = pat_check(buf, n, off, seed);
        if (bad >= 0)
            FAIL("%s: wrong data at offset %lld", path, (long long)(off + (size_t)bad));
    }
    SYS(close(fd));
}

/*
 * Directory operations through the *at syscalls only: glibc's unlink,
 * rmdir, mkdir and rename use the legacy x86-64 syscalls, which cairn need
 * not provide.
 */
#include <sys/syscall.h>
static __attribute__((unused)) int c_unlink(const char *p) { return unlinkat(AT_FDCWD, p, 0); }
static __attribute__((unused)) int c_rmdir(const char *p) { return unlinkat(AT_FDCWD, p, AT_REMOVEDIR); }
static __attribute__((unused)) int c_mkdir(const char *p) { return mkdirat(AT_FDCWD, p, 0755); }
static __attribute__((unused)) int c_rename(const char *a, const char *b)
{
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 0);
}

/* fsync of a directory (its entries). */
static __attribute__((unused)) void fsync_dir(const char *path)
{
    int fd = SYS(open(path, O_RDONLY | O_DIRECTORY));
    SYS(fsync(fd));
    SYS(close(fd));
}

static __attribute__((unused)) int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static __attribute__((unused)) double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static __attribute__((unused)) void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* argv[i] as a number, or `dflt` if absent. */
static __attribute__((unused)) long arg_long(int argc, char **argv, int i, long dflt)
{
    return argc > i ? strtol(argv[i], NULL, 0) : dflt;
}

/*
 * The hang detector. Workers bump their progress counter; a watchdog
 * thread checks every second and, when a running worker has not moved for
 * `stall_s` seconds, names it (with its last step) and exits with ST_HANG.
 * alarm(total_s) is the last resort if the watchdog itself cannot run.
 */
#define MAX_WORKERS 16
struct worker_progress {
    const char *name;
    volatile unsigned long count;
    volatile const char *step;
    volatile int done;
};
static struct worker_progress progress[MAX_WORKERS];
static int n_workers;
static int stall_limit_s;

static __attribute__((unused)) struct worker_progress *worker(const char *name)
{
    if (n_workers >= MAX_WORKERS)
        FAIL("too many workers");
    struct worker_progress *w = &progress[n_workers++];
    w->name = name;
    return w;
}

static inline void tick(struct worker_progress *w, const char *step)
{
    w->step = step;
    __atomic_add_fetch(&w->count, 1, __ATOMIC_RELAXED);
}

/* Rounds the watchdog has completed (it must keep running under load). */
static volatile unsigned long watchdog_rounds;

static __attribute__((unused)) void *watchdog_main(void *arg)
{
    (void)arg;
    unsigned long last[MAX_WORKERS] = {0};
    int still[MAX_WORKERS] = {0};
    for (;;) {
        sleep_ms(1000);
        __atomic_add_fetch(&watchdog_rounds, 1, __ATOMIC_RELAXED);
        for (int i = 0; i < n_workers; i++) {
            struct worker_progress *w = &progress[i];
            unsigned long c = __atomic_load_n(&w->count, __ATOMIC_RELAXED);
            if (w->done || c != last[i]) {
                last[i] = c;
                still[i] = 0;
                continue;
            }
            if (++still[i] >= stall_limit_s) {
                fprintf(stderr,
                        "FAIL %s: HANG: worker %s made no progress for %d s (at step %s, "
                        "iteration %lu)\n",
                        test_name, w->name, stall_limit_s, w->step ? (const char *)w->step : "-",
                        c);
                _exit(ST_HANG);
            }
        }
    }
    return NULL;
}

static __attribute__((unused)) void watchdog_start(int stall_s, unsigned total_s)
{
    pthread_t t;
    stall_limit_s = stall_s;
    alarm(total_s);
    if (pthread_create(&t, NULL, watchdog_main, NULL) != 0)
        FAIL("pthread_create(watchdog)");
    pthread_detach(t);
}

/* Waits until the watchdog has completed `n` more rounds: proof that a
 * sleeping thread kept being scheduled (a starved watchdog makes this, and
 * so the test, hang until the runner's timeout). */
static __attribute__((unused)) void watchdog_await_rounds(unsigned long n)
{
    unsigned long until = __atomic_load_n(&watchdog_rounds, __ATOMIC_RELAXED) + n;
    while (__atomic_load_n(&watchdog_rounds, __ATOMIC_RELAXED) < until)
        sleep_ms(100);
}

/*
 * CPU-bound threads that never block, next to a test's own threads: the
 * shape that starves bottom halves, timers and sleepers on a kernel that
 * only schedules when threads block. Each is a watchdog worker, so one that
 * never gets a CPU is named as stuck.
 */
static volatile int spinners_stop;
static pthread_t spinner_threads[MAX_WORKERS];
static int n_spinners;

static void *spinner_main(void *arg)
{
    struct worker_progress *w = arg;
    while (!__atomic_load_n(&spinners_stop, __ATOMIC_RELAXED)) {
        for (volatile int i = 0; i < 10000; i++)
            ;
        tick(w, "spin");
    }
    w->done = 1;
    return NULL;
}

static __attribute__((unused)) void spinners_start(int n)
{
    static const char *names[] = {"spinner0", "spinner1", "spinner2", "spinner3",
                                  "spinner4", "spinner5", "spinner6", "spinner7"};
    if (n > (int)(sizeof names / sizeof names[0]))
        FAIL("at most %zu spinners", sizeof names / sizeof names[0]);
    for (int i = 0; i < n; i++) {
        struct worker_progress *w = worker(names[i]);
        if (pthread_create(&spinner_threads[i], NULL, spinner_main, w) != 0)
            FAIL("pthread_create(spinner)");
    }
    n_spinners = n;
}

static __attribute__((unused)) void spinners_stop_all(void)
{
    __atomic_store_n(&spinners_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < n_spinners; i++)
        pthread_join(spinner_threads[i], NULL);
}

/*
 * cairn's kernel accounting, /proc/cairn/kstats (see docs/SYSCALLS.md):
 * `name value` lines (per heap `heap.<name>.bytes` and `.objects`; then
 * threads, user_threads, files, fds, vmaps, pagecache.nodes,
 * pagecache.pages, pagecache.fills, pagecache.read_requests, block.flushes).
 * kstats_read returns 0, or -1 when the file does not
 * exist (a native run on Linux): the caller then skips its growth checks.
 */
#define KSTATS_MAX 64
struct kstats {
    int n;
    char name[KSTATS_MAX][48];
    long long val[KSTATS_MAX];
};

static __attribute__((unused)) int kstats_read(struct kstats *k)
{
    static char buf[8192];
    int fd = open("/proc/cairn/kstats", O_RDONLY);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            FAIL("read /proc/cairn/kstats");
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            FAIL("/proc/cairn/kstats longer than %zu bytes", sizeof buf - 1);
    }
    close(fd);
    buf[len] = 0;
    k->n = 0;
    for (char *line = buf; *line && k->n < KSTATS_MAX;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = 0;
        char *sp = strchr(line, ' ');
        if (sp && (size_t)(sp - line) < sizeof k->name[0]) {
            memcpy(k->name[k->n], line, (size_t)(sp - line));
            k->name[k->n][sp - line] = 0;
            k->val[k->n] = strtoll(sp + 1, NULL, 10);
            k->n++;
        }
        if (!end)
            break;
        line = end + 1;
    }
    return 0;
}

/* The value of `name`, or -1 if the snapshot lacks it. */
static __attribute__((unused)) long long kstat(const struct kstats *k, const char *name)
{
    for (int i = 0; i < k->n; i++)
        if (strcmp(k->name[i], name) == 0)
            return k->val[i];
    return -1;
}

static __attribute__((unused)) void kstats_print(const char *label, const struct kstats *k)
{
    printf("kstats %s:", label);
    for (int i = 0; i < k->n; i++)
        printf(" %s=%lld", k->name[i], k->val[i]);
    printf("\n");
}

/*
 * Growth of `name` from `a` to `b`, checked against `bound`: prints both
 * snapshots and fails when it grew by more (a value missing from either
 * snapshot, e.g. a heap whose lock was busy, is not checked).
 */
static __attribute__((unused)) int kstats_grew(const struct kstats *a, const struct kstats *b,
                                               const char *name, long long bound)
{
    long long x = kstat(a, name), y = kstat(b, name);
    if (x < 0 || y < 0 || y - x <= bound)
        return 0;
    fprintf(stderr, "GROWTH %s: %s grew by %lld (%lld -> %lld), bound %lld\n", test_name, name,
            y - x, x, y, bound);
    return 1;
}

/* Names the next phase of the run for cairn's sampling profiler
 * (`cargo xtask profile`): samples from here to the next mark are counted
 * under `name`. Does nothing when the profiler is off or on Linux. */
static __attribute__((unused)) void profile_mark(const char *name)
{
    int fd = open("/proc/cairn/profile", O_WRONLY);
    if (fd < 0)
        return;
    ssize_t n = write(fd, name, strlen(name));
    (void)n;
    close(fd);
}

#endif
