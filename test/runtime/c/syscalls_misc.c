/*
 * The rest of what real programs call: getrusage, times, prctl names,
 * wait4/waitid without children, sendfile (file to file with and without
 * an offset pointer, file to pipe), copy_file_range, sync_file_range,
 * preadv2/pwritev2, mlock/munlock/mlockall/munlockall (pages resident),
 * CPU affinity, scheduler queries, nice values, memfd_create (read,
 * write, truncate, shared mapping), mremap of PROT_NONE pages,
 * membarrier, futex FUTEX_WAKE_OP and clone3 (glibc's thread creation
 * goes through it).
 */
#include "cairn_test.h"
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <sys/wait.h>

static void test_process_info(void)
{
    struct rusage ru;
    SYS(getrusage(RUSAGE_SELF, &ru));
    CHECK(ru.ru_maxrss > 0, "ru_maxrss %ld", ru.ru_maxrss);
    SYS(getrusage(RUSAGE_THREAD, &ru));
    SYS(getrusage(RUSAGE_CHILDREN, &ru));
    CHECK(getrusage(7, &ru) < 0 && errno == EINVAL, "bad who");
    struct tms tm;
    CHECK(times(&tm) != (clock_t)-1, "times");
    CHECK(pthread_setname_np(pthread_self(), "misc-main") == 0, "setname");
    char name[16];
    CHECK(pthread_getname_np(pthread_self(), name, sizeof name) == 0 &&
              strcmp(name, "misc-main") == 0,
          "getname %s", name);
    CHECK(prctl(PR_SET_NAME, "0123456789abcdefXYZ") == 0, "long name");
    SYS(prctl(PR_GET_NAME, name));
    CHECK(strcmp(name, "0123456789abcde") == 0, "name cut to 15: %s", name);
    CHECK(prctl(PR_GET_DUMPABLE) == 1, "dumpable");
    SYS(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs");
    CHECK(prctl(0x7fff) < 0 && errno == EINVAL, "unknown prctl");
    int st;
    CHECK(wait4(-1, &st, WNOHANG, NULL) < 0 && errno == ECHILD, "wait4");
    siginfo_t si;
    CHECK(waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0 && errno == ECHILD, "waitid");
    CHECK(waitpid(-1, &st, 0) < 0 && errno == ECHILD, "waitpid");
}

static int sf_pipe[2];
static void *pipe_reader(void *arg)
{
    static char buf[65536];
    size_t want = (size_t)(intptr_t)arg, got = 0;
    while (got < want) {
        ssize_t n = read(sf_pipe[0], buf, sizeof buf);
        CHECK(n > 0, "pipe read %zd", n);
        CHECK(pat_check(buf, (size_t)n & ~3ul, got, 8) < 0, "sendfile data via pipe at %zu", got);
        got += (size_t)n;
    }
    return NULL;
}

static void test_copies(void)
{
    const size_t len = 1 << 20;
    make_pattern_file("src.dat", len, 8, 0);
    int in = SYS(open("src.dat", O_RDONLY));
    int out = SYS(open("dst.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    CHECK(sendfile(out, in, NULL, len) == (ssize_t)len, "sendfile");
    CHECK(lseek(in, 0, SEEK_CUR) == (off_t)len && lseek(out, 0, SEEK_CUR) == (off_t)len,
          "sendfile moved the offsets");
    check_pattern_file("dst.dat", len, 8);
    off_t off = 4096;
    SYS(ftruncate(out, 0));
    SYS(lseek(out, 0, SEEK_SET));
    CHECK(sendfile(out, in, &off, 8192) == 8192 && off == 4096 + 8192, "sendfile with offset");
    CHECK(lseek(in, 0, SEEK_CUR) == (off_t)len, "offset pointer left the file offset alone");
    char buf[8192];
    pread_all(out, buf, sizeof buf, 0);
    CHECK(pat_check(buf, sizeof buf, 4096, 8) < 0, "sendfile with offset: data");
    CHECK(sendfile(out, in, NULL, 100) == 0, "sendfile at EOF");

    /* File to pipe. */
    SYS(pipe(sf_pipe));
    pthread_t t;
    pthread_create(&t, NULL, pipe_reader, (void *)(intptr_t)len);
    off = 0;
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = sendfile(sf_pipe[1], in, &off, len - sent);
        CHECK(n > 0, "sendfile to a pipe %zd", n);
        sent += (size_t)n;
    }
    pthread_join(t, NULL);
    SYS(close(sf_pipe[0]));
    SYS(close(sf_pipe[1]));

    /* copy_file_range. */
    SYS(ftruncate(out, 0));
    loff_t ioff = 8192, ooff = 100;
    CHECK(copy_file_range(in, &ioff, out, &ooff, 65536, 0) == 65536, "copy_file_range");
    CHECK(ioff == 8192 + 65536 && ooff == 100 + 65536, "copy_file_range offsets");
    static char big[65536];
    pread_all(out, big, sizeof big, 100);
    CHECK(pat_check(big, sizeof big, 8192, 8) < 0, "copy_file_range data");
    struct stat stt;
    SYS(fstat(out, &stt));
    CHECK(stt.st_size == 100 + 65536, "size %lld", (long long)stt.st_size);
    ioff = 0;
    ooff = 10;
    CHECK(copy_file_range(out, &ioff, out, &ooff, 100, 0) < 0 && errno == EINVAL, "overlap");
    CHECK(copy_file_range(in, NULL, out, NULL, 10, 1) < 0 && errno == EINVAL, "flags");
    SYS(sync_file_range(out, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                        SYNC_FILE_RANGE_WAIT_AFTER));
    CHECK(sync_file_range(out, 0, 0, 0x100) < 0 && errno == EINVAL, "sync_file_range flags");

    /* preadv2 / pwritev2 (-1: the file offset). */
    char a[100], b[100];
    memset(a, 'a', sizeof a);
    struct iovec iov = {a, sizeof a};
    SYS(lseek(out, 0, SEEK_SET));
    CHECK(pwritev2(out, &iov, 1, -1, RWF_DSYNC) == 100, "pwritev2 at the offset");
    CHECK(lseek(out, 0, SEEK_CUR) == 100, "pwritev2 moved the offset");
    CHECK(pwritev2(out, &iov, 1, 5000, RWF_HIPRI) == 100, "pwritev2 at 5000");
    iov = (struct iovec){b, sizeof b};
    CHECK(preadv2(out, &iov, 1, 5000, 0) == 100 && memcmp(a, b, 100) == 0, "preadv2");
    SYS(close(in));
    SYS(close(out));
    SYS(c_unlink("src.dat"));
    SYS(c_unlink("dst.dat"));
}

/* mremap moves pages an mprotect(PROT_NONE) keeps without an entry: their
 * data is at the new address once access is granted again, and the old
 * address, mapped anew, reads zeros. */
static void test_mremap_prot_none(void)
{
    enum { N = 4 };
    unsigned char *p = SYSP(mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    for (int i = 0; i < N; i++)
        memset(p + i * PAGE, 0xa0 + i, PAGE);
    SYS(mprotect(p, N * PAGE, PROT_NONE));
    unsigned char *to = SYSP(mmap(NULL, 2 * N * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    unsigned char *q = SYSP(mremap(p, N * PAGE, 2 * N * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to));
    CHECK(q == to, "mremap to %p gave %p", (void *)to, (void *)q);
    SYS(mprotect(q, 2 * N * PAGE, PROT_READ | PROT_WRITE));
    for (int i = 0; i < N; i++)
        CHECK(q[i * PAGE] == 0xa0 + i && q[i * PAGE + PAGE - 1] == 0xa0 + i,
              "moved PROT_NONE page %d reads %#x", i, q[i * PAGE]);
    CHECK(q[N * PAGE] == 0, "the grown part reads zeros");
    unsigned char *old = SYSP(mmap(p, N * PAGE, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    for (int i = 0; i < N; i++)
        CHECK(old[i * PAGE] == 0, "the old address, mapped again, page %d reads %#x", i,
              old[i * PAGE]);
    old[0] = 1;
    CHECK(q[0] == 0xa0, "the old and new addresses share a page");
    SYS(munmap(old, N * PAGE));
    SYS(munmap(q, 2 * N * PAGE));
}

static void test_memory(void)
{
    size_t len = 16 * PAGE;
    char *p = SYSP(mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    unsigned char vec[16];
    SYS(mincore(p, len, vec));
    SYS(mlock(p, len));
    SYS(mincore(p, len, vec));
    for (int i = 0; i < 16; i++)
        CHECK(vec[i] & 1, "page %d not resident after mlock", i);
    CHECK(p[5 * PAGE] == 0, "locked page reads zero");
    SYS(munlock(p, len));
    SYS(munmap(p, len));
    CHECK(mlock((void *)PAGE, PAGE) < 0 && errno == ENOMEM, "mlock of unmapped memory");
    SYS(mlockall(MCL_CURRENT));
    SYS(munlockall());
    CHECK(mlockall(0) < 0 && errno == EINVAL, "mlockall(0)");

    /* memfd: a file with no name. */
    int fd = SYS(memfd_create("scratch", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    CHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC, "memfd cloexec");
    char link[256], path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = SYS(readlink(path, link, sizeof link - 1));
    link[n] = 0;
    CHECK(strncmp(link, "/memfd:scratch", 14) == 0, "memfd link %s", link);
    SYS(ftruncate(fd, 2 * PAGE));
    char *m = SYSP(mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    memcpy(m + PAGE, "shared", 6);
    char buf[8] = {0};
    CHECK(pread(fd, buf, 6, PAGE) == 6 && memcmp(buf, "shared", 6) == 0, "memfd mapping");
    write_all(fd, "written", 7);
    CHECK(memcmp(m, "written", 7) == 0, "write seen through the mapping");
    SYS(munmap(m, 2 * PAGE));
    CHECK(fcntl(fd, F_GET_SEALS) == 0, "seals %d", fcntl(fd, F_GET_SEALS));
    SYS(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK));
    CHECK(fcntl(fd, F_GET_SEALS) == F_SEAL_SHRINK, "seal added");
    SYS(close(fd));
    fd = SYS(memfd_create("plain", 0));
    CHECK(fcntl(fd, F_GET_SEALS) == F_SEAL_SEAL, "unsealable memfd");
    CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW) < 0 && errno == EPERM, "sealing an unsealable memfd");
    SYS(close(fd));

    int q = (int)syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    CHECK(q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED), "membarrier query %x", q);
    CHECK(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) < 0 && errno == EPERM,
          "unregistered private expedited");
    SYS(syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0));
    SYS(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0));
}

static void test_sched(void)
{
    cpu_set_t all, one, got;
    SYS(sched_getaffinity(0, sizeof all, &all));
    CHECK(CPU_COUNT(&all) == sysconf(_SC_NPROCESSORS_ONLN), "affinity %d CPUs", CPU_COUNT(&all));
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    SYS(sched_setaffinity(0, sizeof one, &one));
    SYS(sched_getaffinity(0, sizeof got, &got));
    CHECK(CPU_COUNT(&got) == 1 && CPU_ISSET(0, &got), "affinity after set");
    SYS(sched_setaffinity(0, sizeof all, &all));
    CPU_ZERO(&one);
    CHECK(sched_setaffinity(0, sizeof one, &one) < 0 && errno == EINVAL, "empty affinity");
    CHECK(sched_getscheduler(0) == SCHED_OTHER, "policy");
    struct sched_param sp = {.sched_priority = 5};
    SYS(sched_getparam(0, &sp));
    CHECK(sp.sched_priority == 0, "priority %d", sp.sched_priority);
    CHECK(sched_get_priority_max(SCHED_FIFO) == 99 && sched_get_priority_min(SCHED_OTHER) == 0,
          "priority range");
    sp.sched_priority = 0;
    SYS(sched_setscheduler(0, SCHED_OTHER, &sp));
    errno = 0;
    CHECK(getpriority(PRIO_PROCESS, 0) == 0 && errno == 0, "nice 0");
    SYS(setpriority(PRIO_PROCESS, 0, 5));
    CHECK(getpriority(PRIO_PROCESS, 0) == 5, "nice 5: %d", getpriority(PRIO_PROCESS, 0));
    SYS(setpriority(PRIO_PROCESS, 0, 0));
}

static uint32_t fa, fb;
static volatile int waiter_done;
static void *futex_waiter(void *arg)
{
    (void)arg;
    while (__atomic_load_n(&fa, __ATOMIC_ACQUIRE) == 0)
        syscall(SYS_futex, &fa, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    waiter_done = 1;
    return NULL;
}

static void *nop_thread(void *arg)
{
    return arg;
}

static void test_threads(void)
{
    /* FUTEX_WAKE_OP: fb += 1, wake fa's waiter; fb was 0, so "== 0" holds
     * and fb's (absent) waiters are woken too. */
    pthread_t t;
    pthread_create(&t, NULL, futex_waiter, NULL);
    sleep_ms(100);
    __atomic_store_n(&fa, 1, __ATOMIC_RELEASE);
    long woken;
    do {
        woken = syscall(SYS_futex, &fa, FUTEX_WAKE_OP_PRIVATE, 1, 1, &fb,
                        FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_EQ, 0));
        CHECK(woken >= 0, "FUTEX_WAKE_OP");
        if (woken == 0)
            sleep_ms(10); /* the waiter had not slept yet */
    } while (woken == 0 && !waiter_done);
    pthread_join(t, NULL);
    CHECK(fb >= 1, "FUTEX_WAKE_OP did not add: %u", fb);
    uint32_t before = fb;
    CHECK(syscall(SYS_futex, &fa, FUTEX_WAKE_OP_PRIVATE, 1, 1, &fb,
                  FUTEX_OP(FUTEX_OP_OR, 0x100, FUTEX_OP_CMP_GT, 1000)) == 0,
          "no waiters");
    CHECK(fb == (before | 0x100), "FUTEX_OP_OR: %x", fb);

    /* clone3 exists (size 0 is EINVAL, not ENOSYS), and threads start. */
    CHECK(syscall(SYS_clone3, NULL, 0) < 0 && errno == EINVAL, "clone3 size 0: errno %d", errno);
    for (int i = 0; i < 8; i++) {
        void *r;
        CHECK(pthread_create(&t, NULL, nop_thread, (void *)(intptr_t)(i + 1)) == 0, "thread %d", i);
        pthread_join(t, &r);
        CHECK(r == (void *)(intptr_t)(i + 1), "thread result");
    }
}

int main(void)
{
    test_init("syscalls_misc");
    watchdog_start(30, 110);
    struct worker_progress *w = worker("main");
    tick(w, "process info");
    test_process_info();
    tick(w, "copies");
    test_copies();
    tick(w, "memory");
    test_memory();
    tick(w, "mremap");
    test_mremap_prot_none();
    tick(w, "sched");
    test_sched();
    tick(w, "threads");
    test_threads();
    w->done = 1;
    pass();
}
