/* aio: Linux native AIO as a database or fio's libaio engine uses it,
 * through the raw system calls (what libaio wraps).
 *
 * io_setup (EINVAL for a non-zero *ctxp or 0 events); io_submit of
 * PWRITE, PWRITEV, FSYNC, FDSYNC, PREAD, PREADV in one batch and in
 * several, each completion reaped by io_getevents with its aio_data, its
 * iocb and its result; O_DIRECT requests (a misaligned one completes with
 * -EINVAL); IOCB_FLAG_RESFD adds one to an eventfd per request;
 * io_getevents with a short timeout and nothing pending returns 0;
 * io_submit refuses a bad opcode (EINVAL) and a closed descriptor
 * (EBADF); io_cancel of a completed request is EINVAL; io_destroy, then
 * the context is gone (EINVAL); O_DIRECT PREAD/PWRITE/PREADV/PWRITEV
 * in flight after io_submit returns (some submission's events not all
 * there right after it), data checked; io_destroy with requests in
 * flight waits for them.
 */
#include "cairn_test.h"
#include <linux/aio_abi.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>

#define K 1024

static long io_setup_(unsigned n, aio_context_t *ctx) { return syscall(SYS_io_setup, n, ctx); }
static long io_destroy_(aio_context_t ctx) { return syscall(SYS_io_destroy, ctx); }
static long io_submit_(aio_context_t ctx, long n, struct iocb **cbs)
{
    return syscall(SYS_io_submit, ctx, n, cbs);
}
static long io_getevents_(aio_context_t ctx, long min, long max, struct io_event *ev,
                          struct timespec *ts)
{
    return syscall(SYS_io_getevents, ctx, min, max, ev, ts);
}
static long io_cancel_(aio_context_t ctx, struct iocb *cb, struct io_event *ev)
{
    return syscall(SYS_io_cancel, ctx, cb, ev);
}

static void prep(struct iocb *cb, int op, int fd, void *buf, size_t len, off_t off, uint64_t tag)
{
    memset(cb, 0, sizeof *cb);
    cb->aio_lio_opcode = (uint16_t)op;
    cb->aio_fildes = (uint32_t)fd;
    cb->aio_buf = (uint64_t)(uintptr_t)buf;
    cb->aio_nbytes = len;
    cb->aio_offset = off;
    cb->aio_data = tag;
}

/* Reaps exactly `n` events (waiting up to 10 s) and checks each against
 * its iocb: data tag and result. */
static void reap(aio_context_t ctx, struct iocb **cbs, const long *want, int n)
{
    struct io_event ev[16];
    int got = 0;
    int seen[16] = {0};
    while (got < n) {
        struct timespec ts = {10, 0};
        long r = io_getevents_(ctx, 1, 16, ev, &ts);
        CHECK(r > 0, "io_getevents returned %ld with %d of %d reaped", r, got, n);
        for (long i = 0; i < r; i++) {
            int k = -1;
            for (int j = 0; j < n; j++)
                if ((uint64_t)(uintptr_t)cbs[j] == ev[i].obj)
                    k = j;
            CHECK(k >= 0 && !seen[k], "event for an unknown or repeated iocb");
            seen[k] = 1;
            CHECK(ev[i].data == cbs[k]->aio_data, "event data %llu, want %llu",
                  (unsigned long long)ev[i].data, (unsigned long long)cbs[k]->aio_data);
            CHECK(ev[i].res == want[k], "request %d (op %d): res %lld, want %ld", k,
                  cbs[k]->aio_lio_opcode, (long long)ev[i].res, want[k]);
        }
        got += (int)r;
    }
}

/* O_DIRECT requests go in flight: io_submit returns once they are
 * started. 40 rounds of 32 writes then 32 reads of 16 KiB on a
 * preallocated O_DIRECT file; a submission counts when io_getevents
 * right after it (min_nr 0, zero timeout) finds fewer than 32 events,
 * or, for reads, when a buffer is still unfilled right after io_submit
 * (checked in user memory, before any other system call).
 * At least one must (no clocks); the data is checked. Then io_destroy
 * with 32 writes in flight: it waits for them, so the data is there at
 * once, and the buffers are unmapped right after. */
#define INFL_N 32
#define RQ (16 * K)
static void test_inflight(void)
{
    static char wbuf[INFL_N * RQ] __attribute__((aligned(4096)));
    static char rbuf[INFL_N * RQ] __attribute__((aligned(4096)));
    const size_t len = sizeof wbuf;
    int fd = SYS(open("inflight.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    pat_fill(wbuf, len, 0, 60);
    for (int k = 0; k < 9; k++)
        CHECK(SYS(pwrite(fd, wbuf, len, (off_t)(k * len))) == (ssize_t)len, "preallocating");
    SYS(fsync(fd));
    close(fd);
    fd = SYS(open("inflight.dat", O_RDWR | O_DIRECT));
    aio_context_t ctx = 0;
    SYS(io_setup_(64, &ctx));
    static struct iocb cb[INFL_N];
    static struct iovec iov[INFL_N];
    struct iocb *cbs[INFL_N];
    int in_flight = 0;
    for (int round = 0; round < 40; round++) {
        for (int rw = 0; rw < 2; rw++) {
            if (rw == 0)
                pat_fill(wbuf, len, 0, 61 + (uint32_t)round);
            else
                memset(rbuf, 0, len);
            char *b = rw ? rbuf : wbuf;
            for (int i = 0; i < INFL_N; i++) {
                if (i % 2) {
                    iov[i].iov_base = b + i * RQ;
                    iov[i].iov_len = RQ;
                    prep(&cb[i], rw ? IOCB_CMD_PREADV : IOCB_CMD_PWRITEV, fd, &iov[i], 1,
                         i * RQ, (uint64_t)i);
                } else {
                    prep(&cb[i], rw ? IOCB_CMD_PREAD : IOCB_CMD_PWRITE, fd, b + i * RQ, RQ,
                         i * RQ, (uint64_t)i);
                }
                cbs[i] = &cb[i];

            }
            CHECK(SYS(io_submit_(ctx, INFL_N, cbs)) == INFL_N, "in-flight io_submit");
            /* Reads: a buffer still all zeros right after io_submit (no
             * system call in between) is a read not yet done. */
            int unfilled = 0;
            for (int i = 0; rw && i < INFL_N; i++) {
                const volatile char *blk = rbuf + i * RQ;
                int zero = 1;
                for (int j = 0; zero && j < RQ; j += 64)
                    zero = blk[j] == 0;
                unfilled += zero;
            }
            /* Then events already there (a system call: on cairn it
             * queues behind the lander for the kernel lock). */
            struct io_event ev[INFL_N];
            struct timespec zero = {0, 0};
            long got = SYS(io_getevents_(ctx, 0, INFL_N, ev, &zero));
            if (got < INFL_N || unfilled > 0)
                in_flight++;
            /* The ones taken already, then the rest. */
            int seen[INFL_N] = {0};
            for (long e = 0; e < got; e++) {
                CHECK(ev[e].data < INFL_N && !seen[ev[e].data], "event data %llu",
                      (unsigned long long)ev[e].data);
                seen[ev[e].data] = 1;
                CHECK(ev[e].res == RQ, "round %d: res %lld", round, (long long)ev[e].res);
            }
            while (got < INFL_N) {
                struct timespec ts = {10, 0};
                long r = io_getevents_(ctx, 1, INFL_N - got, ev, &ts);
                CHECK(r > 0, "io_getevents: %ld with %ld of %d", r, got, INFL_N);
                for (long e = 0; e < r; e++) {
                    CHECK(ev[e].data < INFL_N && !seen[ev[e].data], "event data %llu",
                          (unsigned long long)ev[e].data);
                    seen[ev[e].data] = 1;
                    CHECK(ev[e].obj == (uint64_t)(uintptr_t)cbs[ev[e].data], "event obj");
                    CHECK(ev[e].res == RQ, "round %d: res %lld", round, (long long)ev[e].res);
                }
                got += r;
            }
        }
        CHECK(pat_check(rbuf, len, 0, 61 + (uint32_t)round) < 0, "round %d: data read back",
              round);
    }
    /* One 4 MiB O_DIRECT read per submission: its last page still
     * unfilled right after io_submit (no system call in between) is a read
     * in flight; the data must equal a plain O_DIRECT pread's. (On cairn a
     * 32-deep batch of small requests is mostly done by the time the
     * submission ends, and io_getevents waits for the kernel lock behind
     * the thread that completes them: the large read is what a program
     * can see in flight.) */
    const size_t big = 4 << 20;
    char *bb = SYSP(mmap(0, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    char *check = SYSP(mmap(0, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    int big_in_flight = 0;
    for (int round = 0; round < 10; round++) {
        memset(bb, 0, big);
        prep(&cb[0], IOCB_CMD_PREAD, fd, bb, big, 0, 77);
        cbs[0] = &cb[0];
        CHECK(SYS(io_submit_(ctx, 1, cbs)) == 1, "4 MiB io_submit");
        const volatile char *tail = bb + big - 4096;
        int zero = 1;
        for (int j = 0; zero && j < 4096; j += 64)
            zero = tail[j] == 0;
        big_in_flight += zero;
        long want_big[1] = {(long)big};
        reap(ctx, cbs, want_big, 1);
        CHECK(SYS(pread(fd, check, big, 0)) == (ssize_t)big, "4 MiB pread");
        CHECK(memcmp(bb, check, big) == 0, "4 MiB aio read data");
    }
    munmap(bb, big);
    munmap(check, big);
    CHECK(in_flight + big_in_flight > 0,
          "io_submit returned after all its O_DIRECT requests completed in every one of 80 "
          "submissions of 32 and 10 of one 4 MiB read");
    SYS(io_destroy_(ctx));

    /* io_destroy with writes (and reads) in flight waits for them. */
    for (int round = 0; round < 8; round++) {
        ctx = 0;
        SYS(io_setup_(64, &ctx));
        char *w = SYSP(mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        char *rd = SYSP(mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        uint64_t base = (uint64_t)(round + 1) * len;
        pat_fill(w, len, base, 100 + (uint32_t)round);
        static struct iocb tcb[INFL_N + 8];
        struct iocb *tcbs[INFL_N + 8];
        for (int i = 0; i < INFL_N; i++) {
            prep(&tcb[i], IOCB_CMD_PWRITE, fd, w + i * RQ, RQ, base + i * RQ,
                 (uint64_t)i);
            tcbs[i] = &tcb[i];
        }
        for (int i = 0; i < 8; i++) {
            prep(&tcb[INFL_N + i], IOCB_CMD_PREAD, fd, rd + i * RQ, RQ, i * RQ,
                 (uint64_t)i);
            tcbs[INFL_N + i] = &tcb[INFL_N + i];
        }
        CHECK(SYS(io_submit_(ctx, INFL_N + 8, tcbs)) == INFL_N + 8, "teardown io_submit");
        SYS(io_destroy_(ctx));
        munmap(w, len);
        munmap(rd, len);
        CHECK(SYS(pread(fd, rbuf, len, (off_t)base)) == (ssize_t)len, "read after io_destroy");
        long bad = pat_check(rbuf, len, base, 100 + (uint32_t)round);
        CHECK(bad < 0, "round %d: io_destroy returned before its writes landed (bad at %ld)",
              round, bad);
    }
    close(fd);
    printf("aio: O_DIRECT in flight after io_submit in %d of 80 submissions of 32 and %d of "
           "10 of a 4 MiB read; io_destroy waits\n",
           in_flight, big_in_flight);
}

int main(void)
{
    test_init("aio");
    aio_context_t ctx = 0;
    errno = 0;
    CHECK(io_setup_(0, &ctx) == -1 && errno == EINVAL, "io_setup(0)");
    SYS(io_setup_(16, &ctx));
    CHECK(ctx != 0, "io_setup left the context 0");
    aio_context_t again = ctx;
    errno = 0;
    CHECK(io_setup_(16, &again) == -1 && errno == EINVAL, "io_setup over a non-zero *ctxp");

    int fd = SYS(open("aio.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    char *a, *b, *c, *back;
    CHECK(posix_memalign((void **)&a, 4096, 64 * K) == 0 &&
              posix_memalign((void **)&b, 4096, 64 * K) == 0 &&
              posix_memalign((void **)&c, 4096, 64 * K) == 0 &&
              posix_memalign((void **)&back, 4096, 256 * K) == 0,
          "posix_memalign");

    /* One batch: a write, a vectored write, an fsync and an fdatasync. */
    pat_fill(a, 64 * K, 0, 1);
    pat_fill(b, 16 * K, 64 * K, 1);
    pat_fill(c, 48 * K, 80 * K, 1);
    struct iovec wv[2] = {{b, 16 * K}, {c, 48 * K}};
    struct iocb w1, w2, s1, s2;
    prep(&w1, IOCB_CMD_PWRITE, fd, a, 64 * K, 0, 11);
    prep(&w2, IOCB_CMD_PWRITEV, fd, wv, 2, 64 * K, 12);
    prep(&s1, IOCB_CMD_FSYNC, fd, NULL, 0, 0, 13);
    prep(&s2, IOCB_CMD_FDSYNC, fd, NULL, 0, 0, 14);
    struct iocb *batch[4] = {&w1, &w2, &s1, &s2};
    /* The writes first (fsync in the same batch may complete before). */
    CHECK(SYS(io_submit_(ctx, 2, batch)) == 2, "io_submit of 2 writes");
    long wres[2] = {64 * K, 64 * K};
    reap(ctx, batch, wres, 2);
    CHECK(SYS(io_submit_(ctx, 2, batch + 2)) == 2, "io_submit of fsync and fdatasync");
    long sres[2] = {0, 0};
    reap(ctx, batch + 2, sres, 2);

    /* Reads back, plain and vectored. */
    struct iovec rv[2] = {{back + 128 * K, 32 * K}, {back + 160 * K, 32 * K}};
    struct iocb r1, r2;
    prep(&r1, IOCB_CMD_PREAD, fd, back, 128 * K, 0, 21);
    prep(&r2, IOCB_CMD_PREADV, fd, rv, 2, 64 * K, 22);
    struct iocb *reads[2] = {&r1, &r2};
    CHECK(SYS(io_submit_(ctx, 2, reads)) == 2, "io_submit of 2 reads");
    long rres[2] = {128 * K, 64 * K};
    reap(ctx, reads, rres, 2);
    CHECK(pat_check(back, 128 * K, 0, 1) < 0, "aio read data");
    CHECK(pat_check(back + 128 * K, 64 * K, 64 * K, 1) < 0, "aio readv data");

    /* O_DIRECT through AIO; a misaligned request completes with -EINVAL. */
    int dfd = SYS(open("aio.dat", O_RDWR | O_DIRECT));
    pat_fill(a, 64 * K, 128 * K, 2);
    struct iocb d1, d2, d3;
    prep(&d1, IOCB_CMD_PWRITE, dfd, a, 64 * K, 128 * K, 31);
    prep(&d2, IOCB_CMD_PREAD, dfd, back, 64 * K, 128 * K, 32);
    prep(&d3, IOCB_CMD_PREAD, dfd, back + 1, 4096, 0, 33);
    struct iocb *dcb[3] = {&d1, &d2, &d3};
    CHECK(SYS(io_submit_(ctx, 1, dcb)) == 1, "io_submit direct write");
    long dres1[1] = {64 * K};
    reap(ctx, dcb, dres1, 1);
    CHECK(SYS(io_submit_(ctx, 2, dcb + 1)) == 2, "io_submit direct reads");
    long dres2[2] = {64 * K, -EINVAL};
    reap(ctx, dcb + 1, dres2, 2);
    CHECK(pat_check(back, 64 * K, 128 * K, 2) < 0, "aio direct read data");

    /* IOCB_FLAG_RESFD: one eventfd count per completed request. */
    int efd = SYS(eventfd(0, EFD_NONBLOCK));
    struct iocb e1, e2;
    prep(&e1, IOCB_CMD_PREAD, fd, back, 4096, 0, 41);
    prep(&e2, IOCB_CMD_PREAD, fd, back + 4096, 4096, 4096, 42);
    e1.aio_flags = e2.aio_flags = IOCB_FLAG_RESFD;
    e1.aio_resfd = e2.aio_resfd = (uint32_t)efd;
    struct iocb *ecb[2] = {&e1, &e2};
    CHECK(SYS(io_submit_(ctx, 2, ecb)) == 2, "io_submit with RESFD");
    long eres[2] = {4096, 4096};
    reap(ctx, ecb, eres, 2);
    uint64_t count = 0;
    CHECK(SYS(read(efd, &count, 8)) == 8 && count == 2, "eventfd count %llu, want 2",
          (unsigned long long)count);

    /* Nothing pending: a short timeout returns 0. */
    struct io_event ev[4];
    struct timespec ts = {0, 50 * 1000 * 1000};
    CHECK(SYS(io_getevents_(ctx, 1, 4, ev, &ts)) == 0, "io_getevents with nothing pending");

    /* Refused at submission. */
    struct iocb bad;
    struct iocb *badp[1] = {&bad};
    prep(&bad, 99, fd, back, 4096, 0, 51);
    errno = 0;
    CHECK(io_submit_(ctx, 1, badp) == -1 && errno == EINVAL, "a bad opcode");
    int closed = SYS(dup(fd));
    SYS(close(closed));
    prep(&bad, IOCB_CMD_PREAD, closed, back, 4096, 0, 52);
    errno = 0;
    CHECK(io_submit_(ctx, 1, badp) == -1 && errno == EBADF, "a closed descriptor");
    /* A completed request cannot be cancelled. */
    errno = 0;
    CHECK(io_cancel_(ctx, &r1, ev) == -1 && errno == EINVAL, "io_cancel of a completed request");

    SYS(io_destroy_(ctx));
    errno = 0;
    CHECK(io_destroy_(ctx) == -1 && errno == EINVAL, "io_destroy twice");
    errno = 0;
    CHECK(io_submit_(ctx, 1, reads) == -1 && errno == EINVAL, "io_submit after io_destroy");
    SYS(close(efd));
    SYS(close(dfd));
    SYS(close(fd));
    test_inflight();
    pass();
}
