/*
 * Pipes and waiting, as servers and tools use them: pipe2 (flags, EOF,
 * EPIPE, O_NONBLOCK, capacity, atomic PIPE_BUF writes from two threads, a
 * 4 MiB transfer between threads), poll/ppoll/select/pselect (timeouts,
 * readiness, POLLHUP, POLLNVAL, a regular file always ready, a sleeper
 * woken by another thread), eventfd (counter, semaphore, overflow,
 * blocking), epoll (level, edge, one-shot, MOD/DEL, items dropped with
 * their file, EPERM for regular files, a waiter woken by another thread)
 * and timerfd (one-shot, periodic counts, absolute realtime, gettime,
 * disarm, poll).
 *
 * Timing checks are lower bounds only (a sleep of N ms lets at least N ms
 * pass), so a loaded machine cannot fail them.
 */
#include "cairn_test.h"
#include <limits.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/timerfd.h>

static int pfd[2];
static volatile int wrote;

static void *late_writer(void *arg)
{
    sleep_ms((long)(intptr_t)arg);
    wrote = 1;
    write_all(pfd[1], "late", 4);
    return NULL;
}

static void *drainer(void *arg)
{
    (void)arg;
    char buf[8192];
    sleep_ms(100);
    wrote = 1;
    ssize_t n = read(pfd[0], buf, sizeof buf);
    CHECK(n > 0, "drainer read %zd", n);
    return NULL;
}

#define BLOCKS 200
static void *block_writer(void *arg)
{
    char blk[PIPE_BUF];
    memset(blk, (int)(intptr_t)arg, sizeof blk);
    for (int i = 0; i < BLOCKS; i++)
        CHECK(write(pfd[1], blk, sizeof blk) == (ssize_t)sizeof blk, "atomic write short");
    return NULL;
}

#define BIG (4u << 20)
static void *big_writer(void *arg)
{
    (void)arg;
    static char buf[65536 + 7];
    for (size_t off = 0; off < BIG;) {
        size_t n = BIG - off < sizeof buf ? BIG - off : sizeof buf;
        n &= ~3ul;
        pat_fill(buf, n, off, 77);
        write_all(pfd[1], buf, n);
        off += n;
    }
    SYS(close(pfd[1]));
    return NULL;
}

static int efd;
static void *event_poster(void *arg)
{
    (void)arg;
    sleep_ms(100);
    wrote = 1;
    uint64_t one = 1;
    CHECK(write(efd, &one, 8) == 8, "eventfd write");
    return NULL;
}

static void test_pipe_basics(void)
{
    int p[2];
    SYS(pipe2(p, O_CLOEXEC));
    CHECK(fcntl(p[0], F_GETFD) == FD_CLOEXEC && fcntl(p[1], F_GETFD) == FD_CLOEXEC, "cloexec");
    CHECK((fcntl(p[1], F_GETFL) & O_ACCMODE) == O_WRONLY, "write end mode");
    struct stat st;
    SYS(fstat(p[0], &st));
    CHECK(S_ISFIFO(st.st_mode), "mode %o", st.st_mode);
    CHECK(lseek(p[0], 0, SEEK_SET) < 0 && errno == ESPIPE, "lseek on a pipe");
    CHECK(pread(p[0], &st, 1, 0) < 0 && errno == ESPIPE, "pread on a pipe");
    write_all(p[1], "hello", 5);
    char b[16];
    CHECK(read(p[0], b, sizeof b) == 5 && memcmp(b, "hello", 5) == 0, "read back");
    CHECK(read(p[1], b, 1) < 0 && errno == EBADF, "read of the write end");
    SYS(close(p[1]));
    CHECK(read(p[0], b, sizeof b) == 0, "EOF after the writer closed");
    SYS(close(p[0]));

    /* EPIPE with SIGPIPE ignored. */
    signal(SIGPIPE, SIG_IGN);
    SYS(pipe(p));
    SYS(close(p[0]));
    CHECK(write(p[1], "x", 1) < 0 && errno == EPIPE, "write with no reader");
    SYS(close(p[1]));

    /* O_NONBLOCK and capacity. */
    SYS(pipe2(p, O_NONBLOCK));
    CHECK(read(p[0], b, 1) < 0 && errno == EAGAIN, "empty non-blocking read");
    int cap = SYS(fcntl(p[1], F_GETPIPE_SZ));
    CHECK(cap == 65536, "capacity %d", cap);
    static char chunk[4096];
    long total = 0;
    for (;;) {
        ssize_t n = write(p[1], chunk, sizeof chunk);
        if (n < 0) {
            CHECK(errno == EAGAIN, "full pipe: errno %d", errno);
            break;
        }
        total += n;
    }
    CHECK(total == cap, "filled %ld of %d", total, cap);
    int fionread = 0;
    SYS(ioctl(p[0], FIONREAD, &fionread));
    CHECK(fionread == cap, "FIONREAD %d", fionread);
    CHECK(fcntl(p[1], F_SETPIPE_SZ, 4096) < 0 && errno == EBUSY, "shrinking below the content");
    SYS(close(p[0]));
    SYS(close(p[1]));
}

static void test_pipe_threads(void)
{
    pthread_t t, t2;
    char b[16];
    /* A blocking read waits for a writer thread. */
    SYS(pipe(pfd));
    wrote = 0;
    pthread_create(&t, NULL, late_writer, (void *)(intptr_t)100);
    CHECK(read(pfd[0], b, sizeof b) == 4 && wrote, "blocking read");
    pthread_join(t, NULL);
    /* A blocking write waits for room. */
    static char fill[65536];
    write_all(pfd[1], fill, sizeof fill);
    wrote = 0;
    pthread_create(&t, NULL, drainer, NULL);
    write_all(pfd[1], "y", 1);
    CHECK(wrote, "a write to a full pipe returned before the drain");
    pthread_join(t, NULL);
    SYS(close(pfd[0]));
    SYS(close(pfd[1]));

    /* PIPE_BUF writes of two threads never interleave. */
    SYS(pipe(pfd));
    pthread_create(&t, NULL, block_writer, (void *)(intptr_t)'a');
    pthread_create(&t2, NULL, block_writer, (void *)(intptr_t)'b');
    static char got[2 * BLOCKS * PIPE_BUF];
    size_t have = 0;
    while (have < sizeof got) {
        ssize_t n = read(pfd[0], got + have, sizeof got - have);
        CHECK(n > 0, "read %zd", n);
        have += (size_t)n;
    }
    for (size_t i = 0; i < sizeof got; i += PIPE_BUF)
        for (size_t j = 1; j < PIPE_BUF; j++)
            CHECK(got[i + j] == got[i], "block at %zu interleaved", i);
    pthread_join(t, NULL);
    pthread_join(t2, NULL);
    SYS(close(pfd[0]));
    SYS(close(pfd[1]));

    /* 4 MiB through the pipe, every byte checked. */
    SYS(pipe(pfd));
    pthread_create(&t, NULL, big_writer, NULL);
    static char buf[65536];
    size_t off = 0, pend = 0;
    for (;;) {
        ssize_t n = read(pfd[0], buf + pend, sizeof buf - pend);
        CHECK(n >= 0, "read");
        if (n == 0)
            break;
        pend += (size_t)n;
        size_t whole = pend & ~3ul;
        CHECK(pat_check(buf, whole, off, 77) < 0, "wrong data near %zu", off);
        off += whole;
        memmove(buf, buf + whole, pend - whole);
        pend -= whole;
    }
    CHECK(off == BIG && pend == 0, "got %zu bytes", off);
    pthread_join(t, NULL);
    SYS(close(pfd[0]));
}

static void test_poll_select(void)
{
    SYS(pipe(pfd));
    int reg = SYS(open("poll.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    struct pollfd fds[4] = {
        {.fd = pfd[0], .events = POLLIN},
        {.fd = pfd[1], .events = POLLOUT},
        {.fd = reg, .events = POLLIN | POLLOUT},
        {.fd = 999, .events = POLLIN},
    };
    int n = SYS(poll(fds, 4, 50));
    CHECK(n == 3 && fds[0].revents == 0 && (fds[1].revents & POLLOUT) &&
              (fds[2].revents & (POLLIN | POLLOUT)) == (POLLIN | POLLOUT) &&
              fds[3].revents == POLLNVAL,
          "poll: n %d revents %x %x %x %x", n, fds[0].revents, fds[1].revents, fds[2].revents,
          fds[3].revents);
    /* Timeout with nothing ready. */
    double t0 = now_s();
    CHECK(poll(fds, 1, 50) == 0 && fds[0].revents == 0, "poll timeout");
    CHECK(now_s() - t0 >= 0.045, "poll returned before its timeout");
    struct timespec ts = {0, 20 * 1000000};
    CHECK(ppoll(fds, 1, &ts, NULL) == 0, "ppoll timeout");
    /* A sleeper woken by a writer. */
    pthread_t t;
    wrote = 0;
    pthread_create(&t, NULL, late_writer, (void *)(intptr_t)100);
    CHECK(poll(fds, 1, -1) == 1 && (fds[0].revents & POLLIN) && wrote, "poll woken");
    pthread_join(t, NULL);
    /* select: readable, writable, timeout. */
    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(pfd[0], &r);
    FD_SET(pfd[1], &w);
    struct timeval tv = {1, 0};
    n = SYS(select(pfd[1] + 1, &r, &w, NULL, &tv));
    CHECK(n == 2 && FD_ISSET(pfd[0], &r) && FD_ISSET(pfd[1], &w), "select %d", n);
    char b[8];
    CHECK(read(pfd[0], b, sizeof b) == 4, "drain");
    FD_ZERO(&r);
    FD_SET(pfd[0], &r);
    tv = (struct timeval){0, 30000};
    CHECK(select(pfd[0] + 1, &r, NULL, NULL, &tv) == 0 && !FD_ISSET(pfd[0], &r), "select timeout");
    FD_ZERO(&r);
    FD_SET(pfd[0], &r);
    ts = (struct timespec){0, 10 * 1000000};
    CHECK(pselect(pfd[0] + 1, &r, NULL, NULL, &ts, NULL) == 0, "pselect timeout");
    int closed_fd = SYS(dup(0));
    SYS(close(closed_fd));
    FD_ZERO(&r);
    FD_SET(closed_fd, &r);
    tv = (struct timeval){0, 0};
    CHECK(select(closed_fd + 1, &r, NULL, NULL, &tv) < 0 && errno == EBADF,
          "select of a closed fd");
    /* POLLHUP once the writer is gone. */
    SYS(close(pfd[1]));
    CHECK(poll(fds, 1, 0) == 1 && (fds[0].revents & POLLHUP), "POLLHUP: %x", fds[0].revents);
    SYS(close(pfd[0]));
    SYS(close(reg));
    SYS(c_unlink("poll.dat"));
}

static void test_eventfd(void)
{
    uint64_t v;
    int e = SYS(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    CHECK(read(e, &v, 8) < 0 && errno == EAGAIN, "empty eventfd");
    v = 3;
    CHECK(write(e, &v, 8) == 8, "write");
    v = 4;
    CHECK(write(e, &v, 8) == 8, "write");
    CHECK(read(e, &v, 8) == 8 && v == 7, "read %llu", (unsigned long long)v);
    CHECK(read(e, &v, 4) < 0 && errno == EINVAL, "short read");
    v = 0xfffffffffffffffeull;
    CHECK(write(e, &v, 8) == 8, "write max");
    v = 1;
    CHECK(write(e, &v, 8) < 0 && errno == EAGAIN, "overflow");
    v = ~0ull;
    CHECK(write(e, &v, 8) < 0 && errno == EINVAL, "write of ~0");
    SYS(close(e));
    e = SYS(eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK));
    CHECK(read(e, &v, 8) == 8 && v == 1, "semaphore 1");
    CHECK(read(e, &v, 8) == 8 && v == 1, "semaphore 2");
    CHECK(read(e, &v, 8) < 0 && errno == EAGAIN, "semaphore empty");
    SYS(close(e));
    /* Blocking read woken by another thread. */
    efd = SYS(eventfd(0, 0));
    pthread_t t;
    wrote = 0;
    pthread_create(&t, NULL, event_poster, NULL);
    CHECK(read(efd, &v, 8) == 8 && v == 1 && wrote, "blocking eventfd read");
    pthread_join(t, NULL);
    SYS(close(efd));
}

static void test_epoll(void)
{
    int ep = SYS(epoll_create1(EPOLL_CLOEXEC));
    struct epoll_event ev, out[8];
    SYS(pipe(pfd));
    efd = SYS(eventfd(0, EFD_NONBLOCK));
    ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 111};
    SYS(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0 && errno == EEXIST, "double ADD");
    ev = (struct epoll_event){.events = EPOLLIN | EPOLLET, .data.u64 = 222};
    SYS(epoll_ctl(ep, EPOLL_CTL_ADD, pfd[0], &ev));
    int reg = SYS(open("epoll.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, reg, &ev) < 0 && errno == EPERM, "regular file");
    CHECK(epoll_wait(ep, out, 8, 0) == 0, "nothing ready");
    /* Level-triggered: reported while ready. */
    uint64_t one = 1;
    CHECK(write(efd, &one, 8) == 8, "post");
    int n = SYS(epoll_wait(ep, out, 8, 0));
    CHECK(n == 1 && out[0].data.u64 == 111 && (out[0].events & EPOLLIN), "eventfd event");
    CHECK(epoll_wait(ep, out, 8, 0) == 1, "level-triggered again");
    uint64_t v;
    CHECK(read(efd, &v, 8) == 8, "consume");
    CHECK(epoll_wait(ep, out, 8, 0) == 0, "consumed");
    /* Edge-triggered: once per change. */
    write_all(pfd[1], "ab", 2);
    n = SYS(epoll_wait(ep, out, 8, 0));
    CHECK(n == 1 && out[0].data.u64 == 222, "pipe event");
    CHECK(epoll_wait(ep, out, 8, 0) == 0, "edge-triggered reported twice");
    write_all(pfd[1], "c", 1);
    CHECK(epoll_wait(ep, out, 8, 0) == 1, "new data, new edge");
    char b[8];
    CHECK(read(pfd[0], b, sizeof b) == 3, "drain");
    /* One-shot, re-armed by MOD. */
    ev = (struct epoll_event){.events = EPOLLIN | EPOLLONESHOT, .data.u64 = 333};
    SYS(epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev));
    CHECK(write(efd, &one, 8) == 8, "post");
    CHECK(epoll_wait(ep, out, 8, 0) == 1 && out[0].data.u64 == 333, "one-shot fires");
    CHECK(epoll_wait(ep, out, 8, 0) == 0, "one-shot fired twice");
    SYS(epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev));
    CHECK(epoll_wait(ep, out, 8, 0) == 1, "re-armed");
    SYS(epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL));
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL) < 0 && errno == ENOENT, "double DEL");
    CHECK(epoll_wait(ep, out, 8, 0) == 0, "deleted item reported");
    CHECK(read(efd, &v, 8) == 8 && v == 1, "consume the one-shot's post");
    /* A sleeper woken by another thread's write. */
    pthread_t t;
    wrote = 0;
    pthread_create(&t, NULL, late_writer, (void *)(intptr_t)100);
    n = SYS(epoll_wait(ep, out, 8, 5000));
    CHECK(n == 1 && out[0].data.u64 == 222 && wrote, "epoll_wait woken: %d", n);
    pthread_join(t, NULL);
    /* epoll_pwait with a timeout and nothing new (edge already seen). */
    CHECK(epoll_pwait(ep, out, 8, 20, NULL) == 0, "epoll_pwait timeout");
    /* Closing the watched file drops its item. */
    write_all(pfd[1], "z", 1);
    SYS(close(pfd[0]));
    CHECK(epoll_wait(ep, out, 8, 0) == 0, "item of a closed file reported");
    /* poll on the epoll descriptor. */
    ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 444};
    SYS(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev));
    struct pollfd pf = {.fd = ep, .events = POLLIN};
    CHECK(poll(&pf, 1, 0) == 0, "epoll fd ready with nothing");
    CHECK(write(efd, &one, 8) == 8, "post");
    CHECK(poll(&pf, 1, 0) == 1 && (pf.revents & POLLIN), "epoll fd readable");
    SYS(close(pfd[1]));
    SYS(close(efd));
    SYS(close(reg));
    SYS(close(ep));
    SYS(c_unlink("epoll.dat"));
}

static void test_timerfd(void)
{
    uint64_t n;
    int t = SYS(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
    struct itimerspec its = {.it_value = {0, 50 * 1000000}};
    double t0 = now_s();
    SYS(timerfd_settime(t, 0, &its, NULL));
    CHECK(read(t, &n, 8) == 8 && n == 1, "one-shot: %llu", (unsigned long long)n);
    CHECK(now_s() - t0 >= 0.045, "timerfd fired early");
    struct itimerspec cur;
    SYS(timerfd_gettime(t, &cur));
    CHECK(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0, "one-shot still armed");
    /* Periodic: every 20 ms from 20 ms; after >= 110 ms at least 5. */
    its = (struct itimerspec){.it_interval = {0, 20 * 1000000}, .it_value = {0, 20 * 1000000}};
    SYS(timerfd_settime(t, 0, &its, NULL));
    sleep_ms(110);
    CHECK(read(t, &n, 8) == 8 && n >= 5, "periodic count %llu", (unsigned long long)n);
    SYS(timerfd_gettime(t, &cur));
    CHECK(cur.it_interval.tv_nsec == 20 * 1000000 && cur.it_value.tv_sec == 0 &&
              cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 20 * 1000000,
          "gettime of a periodic timer");
    /* poll sees it. */
    struct pollfd pf = {.fd = t, .events = POLLIN};
    CHECK(poll(&pf, 1, 1000) == 1, "poll on a periodic timerfd");
    /* Disarm. */
    its = (struct itimerspec){0};
    struct itimerspec old;
    SYS(timerfd_settime(t, 0, &its, &old));
    CHECK(old.it_interval.tv_nsec == 20 * 1000000, "old interval");
    SYS(timerfd_gettime(t, &cur));
    CHECK(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0, "disarmed");
    SYS(close(t));
    /* Absolute time on the realtime clock, non-blocking before it fires. */
    t = SYS(timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    its = (struct itimerspec){.it_value = {now.tv_sec + 1, now.tv_nsec}};
    SYS(timerfd_settime(t, TFD_TIMER_ABSTIME, &its, NULL));
    CHECK(read(t, &n, 8) < 0 && errno == EAGAIN, "not yet");
    pf = (struct pollfd){.fd = t, .events = POLLIN};
    CHECK(poll(&pf, 1, 10000) == 1, "absolute timer never fired");
    CHECK(read(t, &n, 8) == 8 && n == 1, "absolute count");
    SYS(close(t));
    CHECK(timerfd_create(12345, 0) < 0 && errno == EINVAL, "bad clock");
}

int main(void)
{
    test_init("pipes");
    watchdog_start(30, 110);
    struct worker_progress *w = worker("main");
    tick(w, "pipe basics");
    test_pipe_basics();
    tick(w, "pipe threads");
    test_pipe_threads();
    tick(w, "poll/select");
    test_poll_select();
    tick(w, "eventfd");
    test_eventfd();
    tick(w, "epoll");
    test_epoll();
    tick(w, "timerfd");
    test_timerfd();
    w->done = 1;
    pass();
}
