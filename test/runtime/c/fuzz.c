/*
 * fuzz: calls every system call cairn implements (the dispatch table of
 * src/kernel/src/syscall/mod.rs), plus unimplemented and out-of-range
 * numbers, with random and boundary arguments from a fixed seed: NULL,
 * kernel-half, non-canonical and unmapped pointers, buffers that run into
 * an unmapped page, negative and huge lengths and offsets, bad flags,
 * closed and out-of-range descriptors, long and odd paths. The kernel must
 * never panic or hang (the watchdog names the call a hang is stuck in) and
 * the results the program can predict are checked: EFAULT for kernel-half
 * pointers a call must read or write, EBADF for closed descriptors,
 * ENOSYS for unknown numbers.
 *
 *   fuzz SEED COUNT [pos+]
 *
 * What it leaves out, to protect itself (it must survive to judge the
 * kernel): exit, exit_group, clone (a thread on a random stack), execve,
 * pause and rt_sigsuspend (they wait for a signal that never comes), kill
 * and friends with SIGKILL/SIGSTOP (other signals stay pending: every
 * signal is blocked), rt_sigaction with a handler other than SIG_DFL /
 * SIG_IGN, rt_sigprocmask that unblocks (and the masks ppoll, pselect6 and
 * epoll_pwait(2) install while they wait), arch_prctl(ARCH_SET_FS) with a
 * user address, brk other than 0 and kernel addresses, dup2/dup3/F_DUPFD
 * onto descriptors outside its own range, and memory calls anywhere but a
 * dedicated arena (reset after every call) or known-bad addresses; the
 * program's text, stack, heap and scratch buffer are never handed to a
 * call that could unmap or reprotect them. Waits are bounded: zero
 * timeouts for poll/select/epoll/sigtimedwait, sleeps of at most 1 ms,
 * futex waits on a value that does not match, non-blocking descriptors,
 * LOCK_NB for flock and F_SETLK for F_SETLKW. Sockets (a phase of their
 * own after the main sequence): only the calls that neither wait nor
 * reach the network (no accept, connect or send; sockets non-blocking,
 * receives with MSG_DONTWAIT).
 *
 * Natively on Linux it runs the same calls (the predicted results are
 * Linux's). Paths are relative to the working directory (fz/...) plus
 * /proc and /dev files.
 */
#include "cairn_test.h"

#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif
#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

/* ---- the random source (xorshift64*) ---- */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }
static int one_in(int n) { return below((uint64_t)n) == 0; }

/* ---- memory the calls may touch ---- */
#define SCRATCH (64 * 1024)
#define ARENA (1024 * 1024)
static char *scratch;   /* read/write, followed by an unmapped guard page */
static char *guard;     /* never mapped while fuzzing */
static char *arena;     /* PROT_NONE between calls; memory calls play here */
static char *arena_file_path = "fz/map";

static const uint64_t bad_ptrs[] = {
    0xffff800000000000ull, /* kernel half */
    0xffffffff80000000ull,
    0xfffffffffffff000ull,
    0x0000800000000000ull, /* non-canonical */
    0x8000000000000000ull,
    0xdead000000000000ull,
};
#define N_BAD (sizeof bad_ptrs / sizeof bad_ptrs[0])

static uint64_t kernel_ptr(void) { return bad_ptrs[below(3)]; }

/* A pointer the call may read or write: mostly into scratch. */
static uint64_t any_ptr(void)
{
    switch (below(10)) {
    case 0:
        return 0;
    case 1:
        return bad_ptrs[below(N_BAD)];
    case 2:
        return (uint64_t)(uintptr_t)guard + below(PAGE);
    case 3: /* runs into the guard page */
        return (uint64_t)(uintptr_t)scratch + SCRATCH - 1 - below(64);
    default:
        return (uint64_t)(uintptr_t)scratch + (below(SCRATCH / 2) & ~7ull);
    }
}

/* A length: mostly small, sometimes past the scratch or absurd. */
static uint64_t any_len(void)
{
    switch (below(10)) {
    case 0:
        return 0;
    case 1:
        return (uint64_t)-1;
    case 2:
        return 1ull << (20 + below(44));
    case 3:
        return (uint64_t)(int64_t)-(int64_t)below(5000);
    case 4:
        return 0x7fffffffull + below(3);
    case 5:
        return SCRATCH + below(PAGE);
    default:
        return below(SCRATCH / 2);
    }
}

static uint64_t any_off(void)
{
    switch (below(8)) {
    case 0:
        return 0;
    case 1:
        return (uint64_t)-1 - below(PAGE);
    case 2:
        return 0x7fffffffffffffffull - below(PAGE);
    case 3:
        return 1ull << below(64);
    case 4:
        return (uint64_t)(int64_t)-(int64_t)below(1 << 20);
    default:
        return below(1 << 20);
    }
}

static uint64_t any_flags(void)
{
    switch (below(6)) {
    case 0:
        return 0;
    case 1:
        return (uint64_t)-1;
    case 2:
        return rnd();
    case 3:
        return 1ull << below(64);
    default:
        return rnd() & 0xffffffff;
    }
}

static uint64_t any_int(void)
{
    switch (below(6)) {
    case 0:
        return 0;
    case 1:
        return (uint64_t)-1;
    case 2:
        return (uint64_t)(int64_t)(int32_t)rnd();
    case 3:
        return 0x80000000ull;
    default:
        return below(70);
    }
}

/* ---- descriptors ---- */
#define POOL_BASE 200
enum { P_FILE, P_RDONLY, P_DIR, P_PIPE_R, P_PIPE_W, P_EVENT, P_EPOLL, P_TIMER, P_NULL,
       P_PROC, P_MEMFD, N_POOL };
#define CLOSED_FD 150 /* never open */
#define ORACLE_FD 180 /* a file of the predictable checks, never fuzzed */
#define NO_PID 0x3ffffff0ull /* no such process */

static int open_pool_fd(int which)
{
    int p[2];
    switch (which) {
    case P_FILE:
        return open("fz/file", O_RDWR | O_CREAT, 0644);
    case P_RDONLY:
        return open("fz/ro", O_RDONLY | O_CREAT, 0644);
    case P_DIR:
        return open("fz", O_RDONLY | O_DIRECTORY);
    case P_PIPE_R:
    case P_PIPE_W:
        if (pipe2(p, O_NONBLOCK) < 0)
            return -1;
        if (which == P_PIPE_R) {
            close(p[1]);
            return p[0];
        }
        close(p[0]);
        return p[1];
    case P_EVENT:
        return (int)syscall(SYS_eventfd2, 0, O_NONBLOCK);
    case P_EPOLL:
        return (int)syscall(SYS_epoll_create1, 0);
    case P_TIMER:
        return (int)syscall(SYS_timerfd_create, CLOCK_MONOTONIC, O_NONBLOCK);
    case P_NULL:
        return open("/dev/null", O_RDWR);
    case P_PROC:
        return open("/proc/self/maps", O_RDONLY);
    case P_MEMFD:
        return (int)syscall(SYS_memfd_create, "fuzz", 0);
    }
    return -1;
}

/* Puts every pool descriptor back (open, non-blocking). */
static void pool_refresh(void)
{
    for (int k = 0; k < N_POOL; k++) {
        int fd = POOL_BASE + k;
        if (fcntl(fd, F_SETFL, O_NONBLOCK) == 0)
            continue;
        int n = open_pool_fd(k);
        if (n < 0) {
            /* The calls may have made its path a link loop, a directory,
             * or removed fz/: put the tree back and try again. */
            static int junk;
            char name[32];
            const char *p = k == P_FILE ? "fz/file" : k == P_RDONLY ? "fz/ro" : "fz";
            snprintf(name, sizeof name, "junk%d", junk++);
            c_rename(p, name); /* whatever is there now: moved aside */
            c_mkdir("fz");
            n = open_pool_fd(k);
            if (n < 0 && k != P_DIR) {
                /* fz itself is not a usable directory. */
                snprintf(name, sizeof name, "junk%d", junk++);
                c_rename("fz", name);
                c_mkdir("fz");
                n = open_pool_fd(k);
            }
        }
        if (n < 0)
            FAIL("reopening pool descriptor %d", k);
        if (n != fd) {
            SYS(dup2(n, fd));
            close(n);
        }
        fcntl(fd, F_SETFL, O_NONBLOCK);
    }
}

/* Closes what the calls opened: they get the lowest free numbers, and
 * dup2/dup3/F_DUPFD targets are kept below SWEEP_TOP. */
#define SWEEP_TOP 64
static void sweep(void)
{
    for (int fd = 3; fd < SWEEP_TOP; fd++)
        close(fd);
}

static uint64_t any_fd(void)
{
    switch (below(12)) {
    case 0:
        return CLOSED_FD;
    case 1:
        return (uint64_t)-1;
    case 2:
        return (uint64_t)(int64_t)(int32_t)rnd();
    case 3:
        return 1 << 20;
    case 4:
        return (uint64_t)AT_FDCWD;
    default:
        return POOL_BASE + below(N_POOL);
    }
}

static uint64_t any_newfd(void)
{
    switch (below(4)) {
    case 0:
        return (uint64_t)-1;
    case 1:
        return 1u << 20;
    case 2:
        return POOL_BASE + below(N_POOL);
    default:
        return 3 + below(SWEEP_TOP - 3);
    }
}

/* ---- paths (copied into scratch) ---- */
static const char *paths[] = {
    "fz/file", "fz/ro", "fz/a", "fz/b", "fz/d", "fz/d/x", "fz/none/x", "fz/file/", "fz/d/",
    "fz", "fz/..", "fz/../fz/a", "", ".", "..", "/", "/proc/self/maps", "/proc/self/fd/200",
    "/proc/self/fd", "/proc/cairn/kstats", "/proc", "/dev/null", "/dev", "/dev/fd/201",
    "fz/l", "fz/l/", "/proc/self/cwd", "/proc/1/exe/x", "fz/d/../../fz/b",
};
#define N_PATHS (sizeof paths / sizeof paths[0])

static uint64_t any_path(void)
{
    char *s = scratch + SCRATCH / 2 + (below(4) * 8192);
    switch (below(12)) {
    case 0:
        return any_ptr();
    case 1: /* a component longer than NAME_MAX */
        strcpy(s, "fz/");
        memset(s + 3, 'n', 300);
        s[303] = 0;
        return (uint64_t)(uintptr_t)s;
    case 2: /* a path longer than PATH_MAX */
        memset(s, 'p', 5000);
        for (int i = 100; i < 5000; i += 100)
            s[i] = '/';
        s[5000] = 0;
        return (uint64_t)(uintptr_t)s;
    case 3: { /* not terminated before the guard page */
        char *t = scratch + SCRATCH - 16;
        memset(t, 'x', 16);
        return (uint64_t)(uintptr_t)t;
    }
    default:
        strcpy(s, paths[below(N_PATHS)]);
        return (uint64_t)(uintptr_t)s;
    }
}

/* An iovec array in scratch, its entries good, bad or huge. */
static uint64_t any_iov(void)
{
    if (one_in(8))
        return any_ptr();
    struct iovec *v = (struct iovec *)(scratch + 4096);
    for (int i = 0; i < 8; i++) {
        v[i].iov_base = (void *)(uintptr_t)(one_in(4) ? any_ptr()
                                                      : (uint64_t)(uintptr_t)scratch + 16384 +
                                                            below(8192));
        v[i].iov_len = one_in(5) ? any_len() : below(2048);
    }
    return (uint64_t)(uintptr_t)v;
}

static uint64_t iov_count(void)
{
    switch (below(6)) {
    case 0:
        return 0;
    case 1:
        return (uint64_t)-1;
    case 2:
        return 1025;
    default:
        return 1 + below(8);
    }
}

/* A zero timespec, a short one, or a bad pointer (never "forever"). */
static uint64_t short_timeout(void)
{
    struct timespec *t = (struct timespec *)(scratch + 3 * 1024);
    switch (below(6)) {
    case 0:
        return kernel_ptr();
    case 1:
        t->tv_sec = 0;
        t->tv_nsec = 1000000000 + (long)below(5); /* invalid */
        return (uint64_t)(uintptr_t)t;
    case 2:
        t->tv_sec = -1;
        t->tv_nsec = 0;
        return (uint64_t)(uintptr_t)t;
    case 3:
        t->tv_sec = 0;
        t->tv_nsec = (long)below(1000000);
        return (uint64_t)(uintptr_t)t;
    default:
        t->tv_sec = 0;
        t->tv_nsec = 0;
        return (uint64_t)(uintptr_t)t;
    }
}

/* An address in the memory arena (page-aligned or not), and a length
 * that keeps the range inside it (at most 16 pages from an address at
 * least 16 pages before its end), or one no address space holds. Linux
 * unmaps whatever a valid range covers, so a range must never reach the
 * program's own memory. */
#define MM_MAX_PAGES 16
static uint64_t arena_addr(void)
{
    uint64_t a = (uint64_t)(uintptr_t)arena +
                 (below(ARENA - MM_MAX_PAGES * PAGE) & ~(uint64_t)(PAGE - 1));
    return one_in(8) ? a + 1 + below(PAGE - 1) : a;
}
static uint64_t arena_len(void)
{
    switch (below(8)) {
    case 0:
        return 0;
    case 1:
        return (uint64_t)-1 - below(PAGE);
    case 2:
        return (1ull << 47) + below(1ull << 40);
    case 3:
        return 1ull << (48 + below(16));
    default:
        return 1 + below(MM_MAX_PAGES * PAGE - PAGE);
    }
}
static uint64_t mm_addr(void) { return one_in(6) ? bad_ptrs[below(N_BAD)] : arena_addr(); }

static void arena_reset(void)
{
    void *p = mmap(arena, ARENA, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p != arena)
        FAIL("resetting the arena");
}

/* Keeps a memory call's new mapping inside the arena: MAP_FIXED only
 * there; anything else placed by the kernel is unmapped afterwards. */
static uint64_t mmap_flags(void)
{
    static const uint64_t base[] = {MAP_PRIVATE | MAP_ANONYMOUS, MAP_SHARED | MAP_ANONYMOUS,
                                    MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, 0};
    uint64_t f = base[below(6)];
    if (one_in(3))
        f |= MAP_FIXED;
    if (one_in(4))
        f |= (uint64_t)1 << below(32);
    /* MAP_FIXED_NOREPLACE outside the arena could land anywhere free. */
    f &= ~(uint64_t)MAP_FIXED_NOREPLACE;
    return f;
}

/* ---- the call table ---- */
enum kind { NONE, FD, NEWFD, PTR, LEN, OFF, FLAGS, INT, PATH, IOV, IOVCNT, TIMEOUT, ZERO,
            MMADDR, MMLEN, SIG0, PID, CLOCK };

struct call {
    const char *name;
    long nr;
    unsigned char arg[6];
};

#define C(n, ...) {#n, SYS_##n, {__VA_ARGS__}}
static const struct call calls[] = {
    C(read, FD, PTR, LEN), C(write, FD, PTR, LEN), C(open, PATH, FLAGS, INT),
    C(creat, PATH, INT), C(close, FD), C(stat, PATH, PTR), C(fstat, FD, PTR),
    C(lstat, PATH, PTR), C(lseek, FD, OFF, INT), C(mmap, MMADDR, MMLEN, INT, FLAGS, FD, OFF),
    C(mprotect, MMADDR, MMLEN, INT), C(munmap, MMADDR, MMLEN), C(brk, NONE),
    C(rt_sigaction, SIG0, PTR, PTR, INT), C(rt_sigprocmask, INT, PTR, PTR, INT),
    C(rt_sigpending, PTR, INT), C(rt_sigtimedwait, PTR, PTR, TIMEOUT, INT),
    C(rt_sigqueueinfo, PID, SIG0, PTR), C(rt_tgsigqueueinfo, PID, PID, SIG0, PTR),
    C(setitimer, INT, PTR, PTR), C(getitimer, INT, PTR), C(timer_create, CLOCK, PTR, PTR),
    C(timer_settime, INT, FLAGS, PTR, PTR), C(timer_gettime, INT, PTR),
    C(timer_getoverrun, INT), C(timer_delete, INT), C(ioctl, FD, FLAGS, PTR),
    C(pread64, FD, PTR, LEN, OFF), C(pwrite64, FD, PTR, LEN, OFF), C(readv, FD, IOV, IOVCNT),
    C(writev, FD, IOV, IOVCNT), C(preadv, FD, IOV, IOVCNT, OFF), C(pwritev, FD, IOV, IOVCNT, OFF),
    C(access, PATH, INT), C(sched_yield, NONE), C(mremap, MMADDR, MMLEN, MMLEN, FLAGS, MMADDR),
    C(msync, MMADDR, MMLEN, INT), C(mincore, MMADDR, MMLEN, PTR), C(madvise, MMADDR, MMLEN, INT),
    C(dup, FD), C(dup2, FD, NEWFD), C(nanosleep, TIMEOUT, PTR), C(alarm, ZERO), C(getpid, NONE),
    C(kill, PID, SIG0), C(tgkill, PID, PID, SIG0), C(tkill, PID, SIG0), C(uname, PTR),
    C(fcntl, FD, INT, INT), C(fsync, FD), C(fdatasync, FD), C(truncate, PATH, OFF),
    C(ftruncate, FD, OFF), C(getcwd, PTR, LEN), C(chdir, PATH), C(fchdir, FD),
    C(rename, PATH, PATH), C(mkdir, PATH, INT), C(rmdir, PATH), C(link, PATH, PATH),
    C(unlink, PATH), C(symlink, PATH, PATH), C(readlink, PATH, PTR, LEN), C(chmod, PATH, INT),
    C(fchmod, FD, INT), C(chown, PATH, INT, INT), C(umask, INT), C(gettimeofday, PTR, PTR),
    C(getrlimit, INT, PTR), C(setrlimit, INT, PTR), C(getuid, NONE), C(getppid, NONE),
    C(getpgrp, NONE), C(sigaltstack, PTR, PTR), C(statfs, PATH, PTR), C(fstatfs, FD, PTR),
    C(arch_prctl, INT, PTR), C(sync, NONE), C(gettid, NONE), C(time, PTR),
    C(futex, PTR, INT, INT, TIMEOUT, PTR, INT), C(set_tid_address, PTR),
    C(getdents64, FD, PTR, LEN), C(getdents, FD, PTR, LEN), C(io_setup, INT, PTR),
    C(io_destroy, INT), C(io_submit, INT, INT, PTR), C(io_getevents, INT, INT, INT, PTR, TIMEOUT),
    C(io_cancel, INT, PTR, PTR), C(fadvise64, FD, OFF, LEN, INT), C(clock_gettime, CLOCK, PTR),
    C(clock_getres, CLOCK, PTR), C(clock_nanosleep, CLOCK, FLAGS, TIMEOUT, PTR),
    C(openat, FD, PATH, FLAGS, INT), C(mkdirat, FD, PATH, INT),
    C(newfstatat, FD, PATH, PTR, FLAGS), C(unlinkat, FD, PATH, FLAGS),
    C(renameat, FD, PATH, FD, PATH), C(linkat, FD, PATH, FD, PATH, FLAGS),
    C(symlinkat, PATH, FD, PATH), C(readlinkat, FD, PATH, PTR, LEN),
    C(faccessat, FD, PATH, INT), C(faccessat2, FD, PATH, INT, FLAGS), C(set_robust_list, PTR, LEN),
    C(utimensat, FD, PATH, PTR, FLAGS), C(fallocate, FD, INT, OFF, LEN), C(dup3, FD, NEWFD, FLAGS),
    C(prlimit64, PID, INT, PTR, PTR), C(syncfs, FD), C(renameat2, FD, PATH, FD, PATH, FLAGS),
    C(getrandom, PTR, LEN, FLAGS), C(statx, FD, PATH, FLAGS, FLAGS, PTR), C(sysinfo, PTR),
    C(preadv2, FD, IOV, IOVCNT, OFF, OFF, FLAGS), C(pwritev2, FD, IOV, IOVCNT, OFF, OFF, FLAGS),
    C(pipe, PTR), C(pipe2, PTR, FLAGS), C(eventfd, INT), C(eventfd2, INT, FLAGS),
    C(timerfd_create, CLOCK, FLAGS), C(timerfd_settime, FD, FLAGS, PTR, PTR),
    C(timerfd_gettime, FD, PTR), C(poll, PTR, INT, ZERO), C(ppoll, PTR, INT, TIMEOUT, PTR, INT),
    C(select, INT, PTR, PTR, PTR, TIMEOUT), C(pselect6, INT, PTR, PTR, PTR, TIMEOUT, PTR),
    C(epoll_create, INT), C(epoll_create1, FLAGS), C(epoll_ctl, FD, INT, FD, PTR),
    C(epoll_wait, FD, PTR, INT, ZERO), C(epoll_pwait, FD, PTR, INT, ZERO, PTR, INT),
    C(epoll_pwait2, FD, PTR, INT, TIMEOUT, PTR, INT), C(flock, FD, INT),
    C(sendfile, FD, FD, PTR, LEN), C(copy_file_range, FD, PTR, FD, PTR, LEN, FLAGS),
    C(sync_file_range, FD, OFF, OFF, FLAGS), C(getrusage, INT, PTR), C(times, PTR),
    C(prctl, INT, INT, PTR, INT, INT), C(wait4, PID, PTR, FLAGS, PTR),
    C(waitid, INT, PID, PTR, FLAGS, PTR), C(sched_setaffinity, PID, LEN, PTR),
    C(sched_getaffinity, PID, LEN, PTR), C(sched_getscheduler, PID), C(sched_getparam, PID, PTR),
    C(sched_setscheduler, PID, INT, PTR), C(sched_setparam, PID, PTR),
    C(sched_get_priority_max, INT), C(sched_get_priority_min, INT),
    C(sched_rr_get_interval, PID, PTR), C(getpriority, INT, PID), C(setpriority, INT, PID, INT),
    C(membarrier, INT, FLAGS, INT), C(mlock, MMADDR, MMLEN), C(mlock2, MMADDR, MMLEN, FLAGS),
    C(munlock, MMADDR, MMLEN), C(mlockall, FLAGS), C(munlockall, NONE),
    C(memfd_create, PATH, FLAGS), C(clone3, PTR, LEN), C(getcpu, PTR, PTR, PTR),
    C(shmget, INT, LEN, FLAGS), C(shmat, INT, MMADDR, FLAGS), C(shmdt, MMADDR),
    C(shmctl, INT, INT, PTR), C(getxattr, PATH, PATH, PTR, LEN), C(setxattr, PATH, PATH, PTR, LEN, FLAGS),
    C(removexattr, PATH, PATH), C(fgetxattr, FD, PATH, PTR, LEN), C(listxattr, PATH, PTR, LEN),
    C(flistxattr, FD, PTR, LEN), C(execve, PATH, PTR, PTR),
};
#define N_CALLS (sizeof calls / sizeof calls[0])

static uint64_t arg_of(unsigned char k)
{
    switch (k) {
    case FD:
        return any_fd();
    case NEWFD:
        return any_newfd();
    case PTR:
        if (one_in(4))
            for (int i = 0; i < 64; i++)
                ((uint64_t *)scratch)[i] = rnd();
        return any_ptr();
    case LEN:
        return any_len();
    case OFF:
        return any_off();
    case FLAGS:
        return any_flags();
    case INT:
        return any_int();
    case PATH:
        return any_path();
    case IOV:
        return any_iov();
    case IOVCNT:
        return iov_count();
    case TIMEOUT:
        return short_timeout();
    case ZERO:
        return 0;
    case MMADDR:
        return mm_addr();
    case MMLEN:
        return arena_len();
    case SIG0:
        return below(72);
    case PID:
        switch (below(5)) {
        case 0:
            return 0;
        case 1:
            return 1;
        case 2:
            return (uint64_t)-1;
        case 3:
            return (uint64_t)syscall(SYS_gettid);
        default:
            return NO_PID;
        }
    case CLOCK:
        return one_in(3) ? any_int() : below(12);
    }
    return 0;
}

static char start_dir[256];
/* argv[3] "pos+": positioned calls (pread64/pwrite64/preadv/pwritev and
 * the v2 forms) get offsets below 2^62 only: skips the known panics of
 * negative offsets there (another branch's fix) to look further. */
static int pos_nonneg;
static struct rlimit nofile;
static int tid_word;

/* Makes a call's arguments safe for the program (see the header). */
static void tame(const struct call *c, uint64_t *a)
{
    long n = c->nr;
    /* Sockets never wait. */
    if (n == SYS_socket)
        a[1] |= SOCK_NONBLOCK;
    if (n == SYS_recvfrom)
        a[3] |= MSG_DONTWAIT;
    if (n == SYS_recvmsg)
        a[2] |= MSG_DONTWAIT;
    /* Signals go to this program or to no one (on a Linux guest, -1 and
     * 0 would reach other processes). */
    if (n == SYS_kill || n == SYS_rt_sigqueueinfo || n == SYS_tgkill || n == SYS_rt_tgsigqueueinfo)
        a[0] = one_in(2) ? (uint64_t)getpid() : NO_PID;
    if (n == SYS_tkill || n == SYS_tgkill || n == SYS_rt_tgsigqueueinfo) {
        int k = n == SYS_tkill ? 0 : 1;
        a[k] = one_in(2) ? (uint64_t)syscall(SYS_gettid) : NO_PID;
    }
    if (n == SYS_kill || n == SYS_tkill || n == SYS_rt_sigqueueinfo) {
        if (a[1] == SIGKILL || a[1] == SIGSTOP)
            a[1] = 0;
    } else if (n == SYS_tgkill || n == SYS_rt_tgsigqueueinfo) {
        if (a[2] == SIGKILL || a[2] == SIGSTOP)
            a[2] = 0;
    } else if (n == SYS_rt_sigaction) {
        /* A new action from scratch has SIG_DFL or SIG_IGN as handler. */
        if (a[1] >= (uint64_t)(uintptr_t)scratch && a[1] < (uint64_t)(uintptr_t)guard) {
            uint64_t *act = (uint64_t *)(scratch + 2560);
            act[0] = one_in(2) ? (uint64_t)(uintptr_t)SIG_IGN : (uint64_t)(uintptr_t)SIG_DFL;
            act[1] = rnd() & ~(uint64_t)0x04000000; /* no SA_RESTORER */
            act[3] = rnd();
            a[1] = (uint64_t)(uintptr_t)act;
        }
        a[3] = one_in(4) ? any_int() : 8;
        if (a[0] == 32 || a[0] == 33)
            a[1] = 0; /* stay ignored (see main) */
    } else if (n == SYS_rt_sigprocmask) {
        /* Never unblock: SIG_BLOCK, or SIG_SETMASK with every bit set. */
        uint64_t *set = (uint64_t *)(scratch + 2048);
        *set = ~0ull;
        a[0] = one_in(3) ? any_int() : below(2) * 2; /* SIG_BLOCK or SIG_SETMASK */
        if (a[0] == SIG_UNBLOCK)
            a[0] = SIG_BLOCK;
        if (a[1] >= (uint64_t)(uintptr_t)scratch && a[1] < (uint64_t)(uintptr_t)guard + PAGE)
            a[1] = (uint64_t)(uintptr_t)set;
        a[3] = one_in(4) ? any_int() : 8;
    } else if (n == SYS_ppoll || n == SYS_epoll_pwait || n == SYS_epoll_pwait2 ||
               n == SYS_pselect6) {
        /* The mask these calls install while they wait would unblock the
         * signals earlier calls sent this program (SIGBUS, SIGSEGV, ... at
         * their default action) and Linux would end it as cairn does:
         * a readable mask blocks everything. pselect6 takes the mask
         * through a {sigset pointer, size} pair. */
        uint64_t *set = (uint64_t *)(scratch + 2048);
        *set = ~0ull;
        int k = n == SYS_ppoll ? 3 : n == SYS_pselect6 ? 5 : 4;
        if (a[k] >= (uint64_t)(uintptr_t)scratch && a[k] < (uint64_t)(uintptr_t)guard + PAGE) {
            if (n == SYS_pselect6) {
                uint64_t *pair = (uint64_t *)(scratch + 2064);
                pair[0] = (uint64_t)(uintptr_t)set;
                pair[1] = one_in(4) ? any_int() : 8;
                a[k] = (uint64_t)(uintptr_t)pair;
            } else {
                a[k] = (uint64_t)(uintptr_t)set;
            }
        }
    } else if (n == SYS_arch_prctl) {
        if (a[0] == 0x1001 || a[0] == 0x1002) /* ARCH_SET_GS, ARCH_SET_FS */
            a[1] = kernel_ptr();
    } else if (n == SYS_brk) {
        a[0] = one_in(2) ? 0 : bad_ptrs[below(N_BAD)];
    } else if (n == SYS_fcntl) {
        static const int cmds[] = {F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK, F_SETLK,
                                   F_OFD_GETLK, F_OFD_SETLK, F_DUPFD_CLOEXEC, F_ADD_SEALS,
                                   F_GET_SEALS, F_GETPIPE_SZ, F_SETPIPE_SZ};
        if (!one_in(6))
            a[1] = (uint64_t)cmds[below(sizeof cmds / sizeof cmds[0])];
        if ((int)a[1] == F_SETLKW)
            a[1] = F_SETLK;
        if ((int)a[1] == F_OFD_SETLKW)
            a[1] = F_OFD_SETLK;
        if ((int)a[1] == F_DUPFD || (int)a[1] == F_DUPFD_CLOEXEC)
            a[2] = one_in(4) ? any_int() : below(SWEEP_TOP);
        if ((int)a[1] == F_DUPFD || (int)a[1] == F_DUPFD_CLOEXEC)
            if ((int64_t)(int32_t)a[2] >= SWEEP_TOP)
                a[2] = (uint64_t)-1;
        if ((int)a[1] == F_GETLK || (int)a[1] == F_SETLK || (int)a[1] == F_OFD_GETLK ||
            (int)a[1] == F_OFD_SETLK)
            a[2] = any_ptr();
    } else if (n == SYS_flock) {
        a[1] |= LOCK_NB;
    } else if (n == SYS_futex) {
        /* A wait never matches the word (EAGAIN), PI operations are left
         * out (a random owner could be the watchdog). */
        static const int ops[] = {0, 1, 3, 4, 5, 9, 10};
        int op = ops[below(sizeof ops / sizeof ops[0])];
        if (one_in(2))
            op |= 128; /* FUTEX_PRIVATE_FLAG */
        if (one_in(8))
            op |= 256; /* FUTEX_CLOCK_REALTIME */
        a[1] = (uint64_t)op;
        uint32_t *w = (uint32_t *)(scratch + 1024);
        if (a[0] >= (uint64_t)(uintptr_t)scratch && a[0] < (uint64_t)(uintptr_t)guard)
            a[0] = (uint64_t)(uintptr_t)w;
        *w = (uint32_t)a[2] + 1;
        uint32_t *w2 = (uint32_t *)(scratch + 1028);
        if (a[4] >= (uint64_t)(uintptr_t)scratch && a[4] < (uint64_t)(uintptr_t)guard)
            a[4] = (uint64_t)(uintptr_t)w2;
        *w2 = (uint32_t)rnd();
        if ((op & 127) == 9)
            a[5] |= 1; /* a zero bitset is EINVAL; keep it interesting */
        if ((op & 127) == 3 || (op & 127) == 4) /* REQUEUE: a[3] is a count */
            a[3] = below(4);
    } else if (n == SYS_dup2 || n == SYS_dup3) {
        /* The targets any_newfd picks are ours already. */
    } else if (n == SYS_setrlimit || n == SYS_prlimit64) {
        /* A new limit from scratch keeps the hard limit (NOFILE's soft one
         * is restored after the call). */
        int k = n == SYS_setrlimit ? 1 : 2;
        if (a[k] >= (uint64_t)(uintptr_t)scratch && a[k] < (uint64_t)(uintptr_t)guard) {
            static const uint64_t cur[] = {0, 3, 256, 1ull << 40, ~0ull};
            uint64_t *l = (uint64_t *)(scratch + 2816);
            l[0] = cur[below(5)];
            l[1] = ~0ull;
            a[k] = (uint64_t)(uintptr_t)l;
        }
        if (n == SYS_setrlimit || !one_in(4)) {
            if (a[k - 1] != RLIMIT_NOFILE && !one_in(8))
                a[k - 1] = RLIMIT_NOFILE; /* others could stop the program */
        }
        if (a[k - 1] == RLIMIT_CPU || a[k - 1] == RLIMIT_AS || a[k - 1] == RLIMIT_STACK ||
            a[k - 1] == RLIMIT_DATA || a[k - 1] == RLIMIT_FSIZE || a[k - 1] == RLIMIT_RTTIME)
            a[k] = 0;
    } else if (n == SYS_prctl) {
        /* What cairn implements, plus numbers no one does; not seccomp,
         * PR_SET_MM, PR_SET_TSC or syscall user dispatch (Linux guest). */
        static const int ops[] = {1, 2, 3, 4, 8, 15, 16, 36, 37, 38, 39, 42, 1000, 0x59616d61};
        a[0] = (uint64_t)ops[below(sizeof ops / sizeof ops[0])];
    } else if (n == SYS_mremap) {
        if (!(a[3] & MREMAP_FIXED))
            a[4] = 0;
    } else if (n == SYS_mmap) {
        a[3] = mmap_flags();
        a[2] = one_in(4) ? any_int() : below(8);
        if (!(a[3] & MAP_FIXED) && one_in(2))
            a[0] = 0;
        if (!(a[3] & MAP_ANONYMOUS) && one_in(2))
            a[4] = POOL_BASE + (one_in(2) ? P_FILE : P_MEMFD);
        if (one_in(2))
            a[5] &= ~(uint64_t)(PAGE - 1) & 0xffff;
    } else if (n == SYS_shmat) {
        if (one_in(2))
            a[1] = 0;
    } else if (n == SYS_shmget) {
        if (one_in(2))
            a[1] = below(8) * PAGE;
        a[2] &= 0x1ff | IPC_CREAT | IPC_EXCL;
    } else if (n == SYS_set_tid_address) {
        if (a[0] >= (uint64_t)(uintptr_t)scratch && a[0] < (uint64_t)(uintptr_t)guard + PAGE)
            a[0] = (uint64_t)(uintptr_t)&tid_word;
    } else if (n == SYS_clone3) {
        /* Only sizes and pointers it must refuse. */
        if (a[0] >= (uint64_t)(uintptr_t)scratch && a[0] < (uint64_t)(uintptr_t)guard)
            a[1] = below(64);
    } else if (n == SYS_mlockall) {
        a[0] &= 7;
    } else if (n == SYS_sched_setaffinity) {
        if (a[2] >= (uint64_t)(uintptr_t)scratch && a[2] < (uint64_t)(uintptr_t)guard - 128)
            memset((void *)(uintptr_t)a[2], 0xff, 128); /* keep every CPU */
    } else if (pos_nonneg && (n == SYS_pread64 || n == SYS_pwrite64)) {
        a[3] &= (1ull << 62) - 1;
    } else if (pos_nonneg && (n == SYS_preadv || n == SYS_pwritev || n == SYS_preadv2 ||
                              n == SYS_pwritev2)) {
        a[3] &= (1ull << 62) - 1;
        a[4] = 0;
    } else if (n == SYS_execve) {
        a[1] = kernel_ptr();
    }
}

/* Undoes what a call changed that the program relies on. */
static void after(const struct call *c, const uint64_t *a, long r)
{
    long n = c->nr;
    if (n == SYS_mmap && r > 0 && !((uint64_t)r >= (uint64_t)(uintptr_t)arena &&
                                     (uint64_t)r < (uint64_t)(uintptr_t)arena + ARENA))
        munmap((void *)r, a[1]);
    if (n == SYS_mremap && r > 0 && !((uint64_t)r >= (uint64_t)(uintptr_t)arena &&
                                       (uint64_t)r < (uint64_t)(uintptr_t)arena + ARENA))
        munmap((void *)r, a[2]);
    if (n == SYS_shmat && r > 0 && !((uint64_t)r >= (uint64_t)(uintptr_t)arena &&
                                      (uint64_t)r < (uint64_t)(uintptr_t)arena + ARENA))
        syscall(SYS_shmdt, r);
    if (n == SYS_shmget && r >= 0)
        syscall(SYS_shmctl, r, IPC_RMID, 0);
    if (n == SYS_timer_create && r == 0)
        for (int t = 0; t < 64; t++)
            syscall(SYS_timer_delete, t);
    if (n == SYS_mmap || n == SYS_munmap || n == SYS_mprotect || n == SYS_mremap ||
        n == SYS_madvise || n == SYS_msync || n == SYS_mlock || n == SYS_mlock2 ||
        n == SYS_munlock || n == SYS_shmat || n == SYS_shmdt || n == SYS_mincore)
        arena_reset();
    if (n == SYS_chdir || n == SYS_fchdir)
        SYS(chdir(start_dir));
    if (n == SYS_setrlimit || n == SYS_prlimit64)
        setrlimit(RLIMIT_NOFILE, &nofile);
    if (n == SYS_umask)
        umask(022);
    if (n == SYS_sigaltstack) {
        stack_t off = {.ss_flags = SS_DISABLE};
        sigaltstack(&off, NULL);
    }
    if (r >= 0 && r < SWEEP_TOP)
        sweep(); /* the call may have returned a descriptor */
    if (n == SYS_pipe || n == SYS_pipe2 || n == SYS_dup2 || n == SYS_dup3 || n == SYS_fcntl)
        sweep();
}

/* ---- results the program can predict ---- */
static int checks;
static void expect_err(const char *what, long r, int want)
{
    int e = errno;
    checks++;
    if (r != -1 || e != want) {
        errno = e;
        FAIL("%s: returned %ld (errno %d), expected -1 with errno %d", what, r, r == -1 ? e : 0,
             want);
    }
}

static void predictable(long i)
{
    uint64_t k = kernel_ptr();
    int file = ORACLE_FD;
    char *buf = scratch + 8192;
    switch (i % 16) {
    case 0:
        expect_err("fstat(kernel pointer)", syscall(SYS_fstat, file, k), EFAULT);
        break;
    case 1:
        expect_err("uname(kernel pointer)", syscall(SYS_uname, k), EFAULT);
        break;
    case 2:
        expect_err("clock_gettime(kernel pointer)", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, k),
                   EFAULT);
        break;
    case 3:
        expect_err("getcwd(kernel pointer)", syscall(SYS_getcwd, k, 4096), EFAULT);
        break;
    case 4:
        expect_err("openat(kernel pointer path)", syscall(SYS_openat, AT_FDCWD, k, O_RDONLY),
                   EFAULT);
        break;
    case 5:
        expect_err("pipe2(kernel pointer)", syscall(SYS_pipe2, k, 0), EFAULT);
        break;
    case 6:
        expect_err("sysinfo(kernel pointer)", syscall(SYS_sysinfo, k), EFAULT);
        break;
    case 7:
        expect_err("read(closed fd)", syscall(SYS_read, CLOSED_FD, buf, 16), EBADF);
        break;
    case 8:
        expect_err("write(closed fd)", syscall(SYS_write, CLOSED_FD, buf, 16), EBADF);
        break;
    case 9:
        expect_err("fsync(closed fd)", syscall(SYS_fsync, CLOSED_FD), EBADF);
        break;
    case 10:
        expect_err("close(closed fd)", syscall(SYS_close, CLOSED_FD), EBADF);
        break;
    case 11:
        expect_err("lseek(closed fd)", syscall(SYS_lseek, CLOSED_FD, 0, SEEK_SET), EBADF);
        break;
    case 12: {
        /* A file with data: reading it into the kernel half faults. */
        memset(buf, 'z', 64);
        if (pwrite(file, buf, 64, 0) != 64)
            break; /* the disk may be full of fuzzed data */
        expect_err("pread(file, kernel pointer)", syscall(SYS_pread64, file, k, 64, 0), EFAULT);
        break;
    }
    case 13:
        expect_err("write(file, kernel pointer)", syscall(SYS_write, file, k, 64), EFAULT);
        break;
    case 14:
        expect_err("newfstatat(kernel pointer stat)",
                   syscall(SYS_newfstatat, AT_FDCWD, ".", k, 0), EFAULT);
        break;
    case 15:
        expect_err("unknown syscall 1000", syscall(1000, 0, 0, 0), ENOSYS);
        expect_err("getdents64(closed fd)", syscall(SYS_getdents64, CLOSED_FD, buf, 4096), EBADF);
        break;
    }
}

/* Calls that once panicked or hung cairn, each run once before the random
 * ones (the random run found them; these keep them found). */
static void regressions(void)
{
    /* write(2) of (size_t)-1 bytes to /dev/null: the offset update
     * overflowed (kernel panic). Linux moves at most 0x7ffff000 bytes. */
    int null = SYS(open("/dev/null", O_RDWR));
    long r = syscall(SYS_write, null, scratch, (size_t)-1);
    /* Linux refuses the buffer (EFAULT: access_ok before anything else);
     * a short count is fine too. */
#define SHORT_OR_EFAULT(r) (((r) > 0 && (r) <= 0x7ffff000) || ((r) == -1 && errno == EFAULT))
    CHECK(SHORT_OR_EFAULT(r), "write(/dev/null, -1 bytes) returned %ld", r);
    SYS(lseek(null, 0x7fffffffffffff00ll, SEEK_SET));
    r = syscall(SYS_write, null, scratch, (size_t)-1);
    CHECK(r == 0 || SHORT_OR_EFAULT(r), "write(/dev/null at 2^63-256, -1 bytes) returned %ld", r);
    r = syscall(SYS_read, null, scratch, (size_t)-1);
    CHECK(r == 0 || (r == -1 && errno == EFAULT), "read(/dev/null, -1 bytes) returned %ld", r);
    struct iovec big[2] = {{scratch, 1ull << 62}, {scratch, (1ull << 62) - 1}};
    r = syscall(SYS_writev, null, big, 2);
    CHECK(SHORT_OR_EFAULT(r) || (r == -1 && errno == EINVAL), "writev(/dev/null, 2^63 bytes) returned %ld", r);
    SYS(close(null));

    /* copy_file_range of (size_t)-1 bytes between two descriptions of one
     * file: the overlap check's offset + len overflowed (panic, seed 11). */
    make_pattern_file("fz-copy", PAGE, 5, 0);
    int ca = SYS(open("fz-copy", O_RDWR)), cb = SYS(open("fz-copy", O_RDWR));
    loff_t oi = 0, oo = 2 * PAGE;
    r = syscall(SYS_copy_file_range, ca, &oi, cb, &oo, (size_t)-1, 0);
    CHECK(r == PAGE || (r == -1 && (errno == EINVAL || errno == EOVERFLOW)),
          "copy_file_range(-1 bytes) returned %ld", r);
    oi = 0x7ffffffffffff000ll;
    r = syscall(SYS_copy_file_range, ca, &oi, cb, &oo, (size_t)-1, 0);
    CHECK(r == 0 || r == -1, "copy_file_range from 2^63-4096 returned %ld", r);
    r = syscall(SYS_sendfile, cb, ca, NULL, (size_t)-1);
    CHECK(r <= PAGE, "sendfile(-1 bytes) returned %ld", r); /* EINVAL on Linux: one file */
    SYS(close(ca));
    SYS(close(cb));
    SYS(c_unlink("fz-copy"));

    /* A timerfd armed for i64::MAX seconds: the kernel timer's deadline
     * overflowed (panic, seed 2). Also with a huge interval, and a POSIX
     * timer and an itimer the same way. */
    int tfd = SYS((int)syscall(SYS_timerfd_create, CLOCK_MONOTONIC, O_NONBLOCK));
    struct timespec far[2] = {{0x7fffffffffffffffll, 999999999}, {0x7fffffffffffffffll, 0}};
    SYS(syscall(SYS_timerfd_settime, tfd, 0, far, NULL));
    struct timespec soon[2] = {{0x7fffffffffffffffll, 0}, {0, 1}};
    SYS(syscall(SYS_timerfd_settime, tfd, 0, soon, NULL));
    sleep_ms(5);
    uint64_t ticks = 0;
    CHECK(read(tfd, &ticks, 8) == 8 && ticks == 1, "timerfd with a huge interval: %llu ticks",
          (unsigned long long)ticks);
    SYS(close(tfd));
    timer_t tm;
    struct sigevent sev = {.sigev_notify = SIGEV_NONE};
    SYS(timer_create(CLOCK_MONOTONIC, &sev, &tm));
    struct itimerspec its = {{0x7fffffffffffffffll, 0}, {0, 1}};
    SYS(timer_settime(tm, 0, &its, NULL));
    sleep_ms(5);
    its.it_value.tv_sec = 0x7fffffffffffffffll;
    SYS(timer_settime(tm, 0, &its, NULL));
    SYS(timer_delete(tm));
}

int main(int argc, char **argv)
{
    test_init("fuzz");
    uint64_t seed = (uint64_t)arg_long(argc, argv, 1, 1);
    long count = arg_long(argc, argv, 2, 1000);
    pos_nonneg = argc > 3 && strcmp(argv[3], "pos+") == 0;
    rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
    printf("fuzz: seed %llu, %ld calls over %zu syscalls\n", (unsigned long long)seed, count,
           N_CALLS);

    if (!getcwd(start_dir, sizeof start_dir))
        FAIL("getcwd");
    SYS(getrlimit(RLIMIT_NOFILE, &nofile));
    if (nofile.rlim_cur < POOL_BASE + N_POOL + 1)
        FAIL("RLIMIT_NOFILE %llu is too low", (unsigned long long)nofile.rlim_cur);
    c_mkdir("fz");
    c_mkdir("fz/d");
    make_pattern_file("fz/a", 3 * PAGE, 1, 0);
    make_pattern_file("fz/ro", 2 * PAGE, 2, 0);
    symlink("a", "fz/l");
    (void)arena_file_path;

    char *region = SYSP(mmap(NULL, SCRATCH + PAGE, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    scratch = region;
    guard = region + SCRATCH;
    SYS(munmap(guard, PAGE));
    /* The arena, with 1 MiB of reserved space on each side. */
    char *room = SYSP(mmap(NULL, 3 * ARENA, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    arena = room + ARENA;
    close(CLOSED_FD);
    regressions();
    int of = SYS(open("fuzz-oracle", O_RDWR | O_CREAT | O_TRUNC, 0644));
    SYS(dup2(of, ORACLE_FD));
    SYS(close(of));
    pool_refresh();

    /* Every signal blocked (the watchdog inherits the mask): signals the
     * calls send stay pending instead of killing the program. */
    uint64_t all = ~0ull; /* the raw call: glibc's keeps 32 and 33 open */
    SYS(syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, 8));
    struct worker_progress *w = worker("fuzz");
    watchdog_start(60, 240); /* SIGALRM stays blocked: the watchdog and the runner */
    /* glibc unblocks 32 and 33 (its internal signals) in new threads, so
     * the watchdog could take them: ignored, they are discarded. After
     * pthread_create, which installs glibc's handlers. */
    struct {
        uint64_t handler, flags, restorer, mask;
    } ign = {(uint64_t)(uintptr_t)SIG_IGN, 0, 0, 0};
    SYS(syscall(SYS_rt_sigaction, 32, &ign, NULL, 8));
    SYS(syscall(SYS_rt_sigaction, 33, &ign, NULL, 8));

    long per[N_CALLS] = {0};
    long ok = 0;
    for (long i = 0; i < count; i++) {
        if (i % 8 == 0) {
            tick(w, "predictable");
            predictable(i / 8);
        }
        uint64_t a[6];
        const struct call *c;
        long nr;
        if (one_in(200)) {
            /* Numbers cairn does not implement, or out of range. */
            static const long odd[] = {41, 57, 59, 101, 321, 428, 462, 511, 512, 1000, -1};
            nr = odd[below(sizeof odd / sizeof odd[0])];
            c = NULL;
            for (int k = 0; k < 6; k++)
                a[k] = rnd();
        } else {
            c = &calls[below(N_CALLS)];
            nr = c->nr;
            for (int k = 0; k < 6; k++)
                a[k] = arg_of(c->arg[k]);
            tame(c, a);
            per[c - calls]++;
        }
        tick(w, c ? c->name : "unimplemented");
        errno = 0;
        long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (r >= 0)
            ok++;
        if (c)
            after(c, a, r);
        else if (r >= 0 && r < SWEEP_TOP)
            sweep();
        {
            /* 32 and 33 stay ignored: only calls the program tamed can
             * change an action, and they leave those two alone. */
            uint64_t old[4];
            for (int sig = 32; sig <= 33; sig++)
                if (syscall(SYS_rt_sigaction, sig, NULL, old, 8) != 0 ||
                    old[0] != (uint64_t)(uintptr_t)SIG_IGN)
                    FAIL("call %ld (%s %#llx %#llx %#llx %#llx): signal %d's action changed to "
                         "%#llx",
                         i, c ? c->name : "?", (unsigned long long)a[0], (unsigned long long)a[1],
                         (unsigned long long)a[2], (unsigned long long)a[3], sig,
                         (unsigned long long)old[0]);
        }
        pool_refresh();
        if (i % 256 == 255)
            ftruncate(POOL_BASE + P_FILE, 0); /* keep the disk from filling */
        if ((i + 1) % (count / 10 ? count / 10 : 1) == 0)
            printf("fuzz: %ld of %ld calls (%ld succeeded, %d predicted results checked)\n",
                   i + 1, count, ok, checks);
    }

    /* Sockets, in a phase of their own after the main sequence (which
     * stays as it was): only calls that neither wait nor reach the
     * network, since the program also runs natively on a networked host. */
    static const struct call sock_calls[] = {
        C(socket, INT, FLAGS, INT), C(bind, FD, PTR, LEN), C(listen, FD, INT),
        C(shutdown, FD, INT), C(getsockname, FD, PTR, PTR), C(getpeername, FD, PTR, PTR),
        C(setsockopt, FD, INT, INT, PTR, LEN), C(getsockopt, FD, INT, INT, PTR, PTR),
        C(recvfrom, FD, PTR, LEN, FLAGS, PTR, PTR), C(recvmsg, FD, PTR, FLAGS),
    };
    int socks[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    for (long i = 0; i < count / 10; i++) {
        const struct call *c = &sock_calls[below(sizeof sock_calls / sizeof sock_calls[0])];
        uint64_t a[6];
        for (int k = 0; k < 6; k++)
            a[k] = arg_of(c->arg[k]);
        /* Half the time a real socket of each kind, and calls on them. */
        if (c->nr != SYS_socket && one_in(2) && socks[i % 8] >= 0)
            a[0] = (uint64_t)socks[i % 8];
        tame(c, a);
        tick(w, c->name);
        errno = 0;
        long r = syscall(c->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (r >= 0)
            ok++;
        if (c->nr == SYS_socket && r >= 0)
            close((int)r);
        if (i % 64 == 0) {
            int k = (int)(i / 64) % 8;
            if (socks[k] >= 0)
                close(socks[k]);
            socks[k] = socket(k & 1 ? AF_INET6 : AF_INET,
                              (k & 2 ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK, 0);
        }
        pool_refresh();
    }
    for (int k = 0; k < 8; k++)
        if (socks[k] >= 0)
            close(socks[k]);
    w->done = 1;

    /* The kernel still works: a file written, synced and read back. */
    sweep();
    SYS(chdir(start_dir));
    make_pattern_file("fz/after", 5 * PAGE + 100, 77, 1);
    check_pattern_file("fz/after", 5 * PAGE + 100, 77);
    long never = 0;
    for (size_t k = 0; k < N_CALLS; k++)
        never += per[k] == 0;
    printf("fuzz: done: %ld calls, %ld succeeded, %d predicted results checked, %ld of %zu "
           "syscalls never picked\n",
           count, ok, checks, never, N_CALLS);
    pass();
}
