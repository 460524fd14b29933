/* uring: io_uring through the raw system calls, as a database or fio's
 * io_uring engine drives it (what liburing wraps).
 *
 * io_uring_setup (sizes rounded up to powers of two, CQ twice the SQ,
 * IORING_SETUP_CQSIZE and CLAMP, EINVAL for 0 entries, too many, reserved
 * fields and unknown flags); the three mmap regions; NOP; WRITE, READ,
 * WRITEV, READV with data checked, a short read at EOF and 0 past it,
 * offset -1 using and moving the file position; FSYNC (and DATASYNC;
 * bad flags -EINVAL); OPENAT, STATX, CLOSE (twice: -EBADF), FALLOCATE,
 * MKDIRAT, RENAMEAT, UNLINKAT; IOSQE_IO_LINK: a failed request (an error,
 * or a short read) completes the rest of its chain with -ECANCELED and
 * the next chain runs; IORING_REGISTER_PROBE, and every opcode the probe
 * calls unsupported completes with -EINVAL; registered buffers
 * (READ_FIXED/WRITE_FIXED, outside the buffer or a bad index -EFAULT,
 * EBUSY twice, ENXIO unregistered) and files (IOSQE_FIXED_FILE, an empty
 * slot and a bad index -EBADF); REGISTER_EVENTFD counts completions; a
 * full CQ keeps every completion (IORING_FEAT_NODROP:
 * IORING_SQ_CQ_OVERFLOW, then flushed by the next io_uring_enter);
 * hostile rings: an SQ array index past the ring counts in `dropped`, a
 * tail far past the head submits at most what was asked, user pointers
 * into nothing or into the kernel half complete with -EFAULT; waits:
 * GETEVENTS interrupted by a signal is EINTR, IORING_ENTER_EXT_ARG's
 * timeout ETIME; sync and syncfs return while a ring is mapped; rings
 * closed and unmapped with completions unreaped, many times over;
 * O_DIRECT READ/WRITE/READV/WRITEV in flight after io_uring_enter
 * returns (some round's CQ not yet full right after the submit), data
 * checked; IOSQE_IO_DRAIN after O_DIRECT writes completes last, a
 * linked O_DIRECT write then read run in order; rings closed with
 * O_DIRECT requests in flight (the
 * writes land, buffers unmapped at once).
 *
 * `uring eio`: reads of bad.dat's injected bad sector (QEMU blkdebug)
 * complete with -EIO, buffered and O_DIRECT, and the ring goes on.
 */
#include "cairn_test.h"
#include <linux/io_uring.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/time.h>

#define K 1024

#ifndef IORING_SETUP_CLAMP
#define IORING_SETUP_CLAMP (1U << 4)
#endif
#ifndef IORING_FEAT_NODROP
#define IORING_FEAT_NODROP (1U << 1)
#endif
#ifndef IORING_FEAT_RW_CUR_POS
#define IORING_FEAT_RW_CUR_POS (1U << 3)
#endif
#ifndef IORING_ENTER_EXT_ARG
#define IORING_ENTER_EXT_ARG (1U << 3)
struct io_uring_getevents_arg {
    uint64_t sigmask;
    uint32_t sigmask_sz;
    uint32_t pad;
    uint64_t ts;
};
#endif
#ifndef IORING_SQ_CQ_OVERFLOW
#define IORING_SQ_CQ_OVERFLOW (1U << 1)
#endif

static long setup_(unsigned n, struct io_uring_params *p)
{
    return syscall(__NR_io_uring_setup, n, p);
}
static long enter_(int fd, unsigned sub, unsigned min, unsigned flags, void *arg, size_t sz)
{
    return syscall(__NR_io_uring_enter, fd, sub, min, flags, arg, sz);
}
static long register_(int fd, unsigned op, void *arg, unsigned n)
{
    return syscall(__NR_io_uring_register, fd, op, arg, n);
}

struct ring {
    int fd;
    struct io_uring_params p;
    void *sq_map, *cq_map;
    size_t sq_len, cq_len, sqes_len;
    struct io_uring_sqe *sqes;
    volatile uint32_t *sq_head, *sq_tail, *sq_flags, *sq_dropped, *sq_array;
    volatile uint32_t *cq_head, *cq_tail, *cq_overflow;
    struct io_uring_cqe *cqes;
    uint32_t sq_mask, cq_mask;
};

static void ring_map(struct ring *r)
{
    struct io_uring_params *p = &r->p;
    r->sq_len = p->sq_off.array + p->sq_entries * sizeof(uint32_t);
    r->cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    r->sqes_len = p->sq_entries * sizeof(struct io_uring_sqe);
    r->sq_map = SYSP(mmap(0, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                          IORING_OFF_SQ_RING));
    r->cq_map = SYSP(mmap(0, r->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                          IORING_OFF_CQ_RING));
    r->sqes = SYSP(mmap(0, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                        IORING_OFF_SQES));
    char *s = r->sq_map, *c = r->cq_map;
    r->sq_head = (uint32_t *)(s + p->sq_off.head);
    r->sq_tail = (uint32_t *)(s + p->sq_off.tail);
    r->sq_flags = (uint32_t *)(s + p->sq_off.flags);
    r->sq_dropped = (uint32_t *)(s + p->sq_off.dropped);
    r->sq_array = (uint32_t *)(s + p->sq_off.array);
    r->sq_mask = *(uint32_t *)(s + p->sq_off.ring_mask);
    r->cq_head = (uint32_t *)(c + p->cq_off.head);
    r->cq_tail = (uint32_t *)(c + p->cq_off.tail);
    r->cq_overflow = (uint32_t *)(c + p->cq_off.overflow);
    r->cqes = (struct io_uring_cqe *)(c + p->cq_off.cqes);
    r->cq_mask = *(uint32_t *)(c + p->cq_off.ring_mask);
    CHECK(*(uint32_t *)(s + p->sq_off.ring_entries) == p->sq_entries, "sq ring_entries");
    CHECK(*(uint32_t *)(c + p->cq_off.ring_entries) == p->cq_entries, "cq ring_entries");
    CHECK(r->sq_mask == p->sq_entries - 1 && r->cq_mask == p->cq_entries - 1, "ring masks");
}

static void ring_init(struct ring *r, unsigned entries, unsigned flags, unsigned cq)
{
    memset(r, 0, sizeof *r);
    r->p.flags = flags;
    r->p.cq_entries = cq;
    r->fd = (int)setup_(entries, &r->p);
    CHECK(r->fd >= 0, "io_uring_setup(%u, flags %#x) failed", entries, flags);
    ring_map(r);
}

static void ring_exit(struct ring *r)
{
    munmap(r->sq_map, r->sq_len);
    munmap(r->cq_map, r->cq_len);
    munmap(r->sqes, r->sqes_len);
    close(r->fd);
}

/* Tears a ring down with requests still in it: its descriptor closed
 * before its mappings go (`fd_first`), or after (ring_exit). */
static void ring_close(struct ring *r, int fd_first)
{
    if (!fd_first) {
        ring_exit(r);
        return;
    }
    close(r->fd);
    munmap(r->sq_map, r->sq_len);
    munmap(r->cq_map, r->cq_len);
    munmap(r->sqes, r->sqes_len);
}

/* The next free SQE, zeroed, queued in the SQ array (published by
 * submit()). */
static uint32_t pending;
static struct io_uring_sqe *sqe_get(struct ring *r)
{
    uint32_t tail = *r->sq_tail + pending;
    CHECK(tail - *r->sq_head < r->p.sq_entries, "SQ full");
    uint32_t i = tail & r->sq_mask;
    struct io_uring_sqe *s = &r->sqes[i];
    memset(s, 0, sizeof *s);
    r->sq_array[i] = i;
    pending++;
    return s;
}

static void prep(struct io_uring_sqe *s, int op, int fd, uint64_t addr, uint32_t len, uint64_t off,
                 uint64_t tag)
{
    s->opcode = (uint8_t)op;
    s->fd = fd;
    s->addr = addr;
    s->len = len;
    s->off = off;
    s->user_data = tag;
}

/* Publishes the queued SQEs and submits them, waiting for `wait`
 * completions; returns io_uring_enter's result (-errno on failure). */
static long submit(struct ring *r, unsigned wait)
{
    unsigned n = pending;
    __atomic_store_n(r->sq_tail, *r->sq_tail + n, __ATOMIC_RELEASE);
    pending = 0;
    long ret = enter_(r->fd, n, wait, wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
    return ret < 0 ? -errno : ret;
}

/* Takes one CQE (waiting for it); CHECKs there is one. */
static struct io_uring_cqe reap(struct ring *r)
{
    uint32_t head = *r->cq_head;
    if (__atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) == head) {
        long e = enter_(r->fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
        CHECK(e >= 0, "io_uring_enter(GETEVENTS) failed");
    }
    CHECK(__atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) != head, "no CQE after waiting");
    struct io_uring_cqe c = r->cqes[head & r->cq_mask];
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return c;
}

/* Submits the one queued SQE and returns its result. */
static int run1(struct ring *r, uint64_t tag)
{
    long n = submit(r, 1);
    CHECK(n == 1, "submitted %ld, not 1 (tag %llu)", n, (unsigned long long)tag);
    struct io_uring_cqe c = reap(r);
    CHECK(c.user_data == tag, "CQE for %llu, not %llu", (unsigned long long)c.user_data,
          (unsigned long long)tag);
    return c.res;
}

/* Reaps `n` CQEs into res[tag] (tags 0..n-1). */
static void reap_n(struct ring *r, int *res, int n)
{
    for (int i = 0; i < n; i++)
        res[i] = 9999;
    for (int i = 0; i < n; i++) {
        struct io_uring_cqe c = reap(r);
        CHECK(c.user_data < (uint64_t)n && res[c.user_data] == 9999, "unexpected CQE %llu",
              (unsigned long long)c.user_data);
        res[c.user_data] = c.res;
    }
}

static void test_setup(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int fd = (int)SYS(setup_(5, &p));
    CHECK(p.sq_entries == 8 && p.cq_entries == 16, "5 entries gave sq %u cq %u", p.sq_entries,
          p.cq_entries);
    CHECK(p.features & IORING_FEAT_SINGLE_MMAP, "no IORING_FEAT_SINGLE_MMAP");
    CHECK(p.features & IORING_FEAT_NODROP, "no IORING_FEAT_NODROP");
    CHECK(p.features & IORING_FEAT_RW_CUR_POS, "no IORING_FEAT_RW_CUR_POS");
    close(fd);

    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = 100;
    fd = (int)SYS(setup_(16, &p));
    CHECK(p.sq_entries == 16 && p.cq_entries == 128, "CQSIZE 100 gave sq %u cq %u", p.sq_entries,
          p.cq_entries);
    close(fd);

    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = 4;
    errno = 0;
    CHECK(setup_(16, &p) < 0 && errno == EINVAL, "a CQ smaller than the SQ was accepted");
    memset(&p, 0, sizeof p);
    errno = 0;
    CHECK(setup_(0, &p) < 0 && errno == EINVAL, "0 entries was accepted");
    memset(&p, 0, sizeof p);
    errno = 0;
    CHECK(setup_(100000, &p) < 0 && errno == EINVAL, "100000 entries was accepted");
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CLAMP;
    fd = (int)SYS(setup_(100000, &p));
    CHECK(p.sq_entries == 32768 && p.cq_entries == 65536, "CLAMP gave sq %u cq %u", p.sq_entries,
          p.cq_entries);
    close(fd);
    memset(&p, 0, sizeof p);
    p.resv[1] = 1;
    errno = 0;
    CHECK(setup_(4, &p) < 0 && errno == EINVAL, "reserved fields were accepted");
    memset(&p, 0, sizeof p);
    p.flags = 1U << 30;
    errno = 0;
    CHECK(setup_(4, &p) < 0 && errno == EINVAL, "an unknown flag was accepted");
    errno = 0;
    CHECK(setup_(4, (void *)8) < 0 && errno == EFAULT, "a bad params pointer was accepted");

    /* Not a ring. */
    int nf = SYS(open("notring", O_CREAT | O_RDWR | O_TRUNC, 0644));
    errno = 0;
    CHECK(enter_(nf, 0, 0, 0, NULL, 0) < 0 && errno == EOPNOTSUPP, "enter on a file");
    close(nf);
    unlink("notring");
    printf("uring: setup sizes, clamps and refusals ok\n");
}

static void test_rw(struct ring *r)
{
    static char wbuf[16 * K] __attribute__((aligned(4096)));
    static char rbuf[16 * K] __attribute__((aligned(4096)));
    int fd = SYS(open("rw.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));

    prep(sqe_get(r), IORING_OP_NOP, 0, 0, 0, 0, 77);
    CHECK(run1(r, 77) == 0, "NOP");

    pat_fill(wbuf, sizeof wbuf, 0, 31);
    prep(sqe_get(r), IORING_OP_WRITE, fd, (uintptr_t)wbuf, 8 * K, 0, 1);
    CHECK(run1(r, 1) == 8 * K, "WRITE");
    struct iovec wv[2] = {{wbuf + 8 * K, 4 * K}, {wbuf + 12 * K, 4 * K}};
    prep(sqe_get(r), IORING_OP_WRITEV, fd, (uintptr_t)wv, 2, 8 * K, 2);
    CHECK(run1(r, 2) == 8 * K, "WRITEV");

    memset(rbuf, 0, sizeof rbuf);
    prep(sqe_get(r), IORING_OP_READ, fd, (uintptr_t)rbuf, 4 * K, 0, 3);
    CHECK(run1(r, 3) == 4 * K, "READ");
    struct iovec rv[2] = {{rbuf + 4 * K, 6 * K}, {rbuf + 10 * K, 6 * K}};
    prep(sqe_get(r), IORING_OP_READV, fd, (uintptr_t)rv, 2, 4 * K, 4);
    CHECK(run1(r, 4) == 12 * K, "READV");
    CHECK(pat_check(rbuf, sizeof rbuf, 0, 31) < 0, "data read back differs");

    /* Short read at EOF, then 0 past it. */
    prep(sqe_get(r), IORING_OP_READ, fd, (uintptr_t)rbuf, 8 * K, 12 * K, 5);
    CHECK(run1(r, 5) == 4 * K, "READ across EOF is not short");
    prep(sqe_get(r), IORING_OP_READ, fd, (uintptr_t)rbuf, 8 * K, 20 * K, 6);
    CHECK(run1(r, 6) == 0, "READ past EOF");

    /* Offset -1: the file position, which moves. */
    SYS(lseek(fd, 4 * K, SEEK_SET));
    prep(sqe_get(r), IORING_OP_READ, fd, (uintptr_t)rbuf, 2 * K, (uint64_t)-1, 7);
    CHECK(run1(r, 7) == 2 * K, "READ at the file position");
    CHECK(pat_check(rbuf, 2 * K, 4 * K, 31) < 0, "READ at the position: wrong data");
    CHECK(lseek(fd, 0, SEEK_CUR) == 6 * K, "the position did not move");

    prep(sqe_get(r), IORING_OP_FSYNC, fd, 0, 0, 0, 8);
    CHECK(run1(r, 8) == 0, "FSYNC");
    struct io_uring_sqe *s = sqe_get(r);
    prep(s, IORING_OP_FSYNC, fd, 0, 0, 0, 9);
    s->fsync_flags = IORING_FSYNC_DATASYNC;
    CHECK(run1(r, 9) == 0, "FSYNC DATASYNC");
    s = sqe_get(r);
    prep(s, IORING_OP_FSYNC, fd, 0, 0, 0, 10);
    s->fsync_flags = 0x80;
    CHECK(run1(r, 10) == -EINVAL, "FSYNC with bad flags");

    /* Bad descriptors and pointers complete with errors. */
    prep(sqe_get(r), IORING_OP_READ, 999, (uintptr_t)rbuf, 16, 0, 11);
    CHECK(run1(r, 11) == -EBADF, "READ of a bad fd");
    prep(sqe_get(r), IORING_OP_READ, fd, 0x1000, 4 * K, 0, 12);
    CHECK(run1(r, 12) == -EFAULT, "READ into nothing");
    prep(sqe_get(r), IORING_OP_READ, fd, 0xffff800000000000ull, 4 * K, 0, 13);
    CHECK(run1(r, 13) == -EFAULT, "READ into the kernel half");
    prep(sqe_get(r), IORING_OP_WRITE, fd, 0x1000, 4 * K, 0, 14);
    CHECK(run1(r, 14) == -EFAULT, "WRITE from nothing");
    prep(sqe_get(r), IORING_OP_READV, fd, 0x1000, 2, 0, 15);
    CHECK(run1(r, 15) == -EFAULT, "READV of iovecs in nothing");
    s = sqe_get(r);
    prep(s, 250, fd, 0, 0, 0, 16);
    CHECK(run1(r, 16) == -EINVAL, "an unknown opcode");
    close(fd);
    printf("uring: NOP, READ/WRITE/READV/WRITEV, EOF, position, FSYNC, errors ok\n");
}

static void test_files(struct ring *r)
{
    SYS(mkdir("ud", 0755));
    struct io_uring_sqe *s = sqe_get(r);
    prep(s, IORING_OP_OPENAT, AT_FDCWD, (uintptr_t) "ud/a", 0644, 0, 1);
    s->open_flags = O_CREAT | O_RDWR;
    int fd = run1(r, 1);
    CHECK(fd >= 0, "OPENAT: %d", fd);
    static char buf[8 * K];
    pat_fill(buf, sizeof buf, 0, 5);
    pwrite_all(fd, buf, 3000, 0);

    static struct statx sx;
    memset(&sx, 0, sizeof sx);
    s = sqe_get(r);
    prep(s, IORING_OP_STATX, AT_FDCWD, (uintptr_t) "ud/a", STATX_SIZE, (uintptr_t)&sx, 2);
    CHECK(run1(r, 2) == 0, "STATX");
    CHECK(sx.stx_size == 3000, "STATX size %llu", (unsigned long long)sx.stx_size);
    s = sqe_get(r);
    prep(s, IORING_OP_STATX, AT_FDCWD, (uintptr_t) "ud/a", STATX_SIZE, 0x1000, 3);
    CHECK(run1(r, 3) == -EFAULT, "STATX into nothing");
    prep(sqe_get(r), IORING_OP_OPENAT, AT_FDCWD, 0x1000, 0, 0, 4);
    CHECK(run1(r, 4) == -EFAULT, "OPENAT of a path in nothing");

    prep(sqe_get(r), IORING_OP_FALLOCATE, fd, 64 * K, 0, 0, 5); /* addr = len, len = mode */
    CHECK(run1(r, 5) == 0, "FALLOCATE");
    struct stat st;
    SYS(fstat(fd, &st));
    CHECK(st.st_size == 64 * K, "FALLOCATE size %lld", (long long)st.st_size);

    prep(sqe_get(r), IORING_OP_CLOSE, fd, 0, 0, 0, 6);
    CHECK(run1(r, 6) == 0, "CLOSE");
    prep(sqe_get(r), IORING_OP_CLOSE, fd, 0, 0, 0, 7);
    CHECK(run1(r, 7) == -EBADF, "CLOSE twice");

    prep(sqe_get(r), IORING_OP_MKDIRAT, AT_FDCWD, (uintptr_t) "ud/sub", 0755, 0, 8);
    CHECK(run1(r, 8) == 0, "MKDIRAT");
    s = sqe_get(r);
    prep(s, IORING_OP_RENAMEAT, AT_FDCWD, (uintptr_t) "ud/a", AT_FDCWD, (uintptr_t) "ud/sub/b", 9);
    CHECK(run1(r, 9) == 0, "RENAMEAT");
    CHECK(access("ud/sub/b", F_OK) == 0 && access("ud/a", F_OK) != 0, "RENAMEAT did not move");
    prep(sqe_get(r), IORING_OP_UNLINKAT, AT_FDCWD, (uintptr_t) "ud/sub/b", 0, 0, 10);
    CHECK(run1(r, 10) == 0, "UNLINKAT");
    s = sqe_get(r);
    prep(s, IORING_OP_UNLINKAT, AT_FDCWD, (uintptr_t) "ud/sub", 0, 0, 11);
    s->unlink_flags = AT_REMOVEDIR;
    CHECK(run1(r, 11) == 0, "UNLINKAT AT_REMOVEDIR");
    SYS(rmdir("ud"));
    printf("uring: OPENAT, STATX, FALLOCATE, CLOSE, MKDIRAT, RENAMEAT, UNLINKAT ok\n");
}

static void test_links(struct ring *r)
{
    static char buf[8 * K];
    int fd = SYS(open("link.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    pat_fill(buf, sizeof buf, 0, 9);
    pwrite_all(fd, buf, 4 * K + 100, 0);
    int res[8];

    /* NOP -> READ of a bad fd -> NOP -> NOP (chain end), then NOP. */
    struct io_uring_sqe *s;
    s = sqe_get(r);
    prep(s, IORING_OP_NOP, 0, 0, 0, 0, 0);
    s->flags = IOSQE_IO_LINK;
    s = sqe_get(r);
    prep(s, IORING_OP_READ, 999, (uintptr_t)buf, 16, 0, 1);
    s->flags = IOSQE_IO_LINK;
    s = sqe_get(r);
    prep(s, IORING_OP_NOP, 0, 0, 0, 0, 2);
    s->flags = IOSQE_IO_LINK;
    s = sqe_get(r);
    prep(s, IORING_OP_NOP, 0, 0, 0, 0, 3);
    s = sqe_get(r);
    prep(s, IORING_OP_NOP, 0, 0, 0, 0, 4);
    CHECK(submit(r, 5) == 5, "submit of a chain");
    reap_n(r, res, 5);
    CHECK(res[0] == 0 && res[1] == -EBADF && res[2] == -ECANCELED && res[3] == -ECANCELED &&
              res[4] == 0,
          "link results %d %d %d %d %d", res[0], res[1], res[2], res[3], res[4]);

    /* A short read breaks its chain too. */
    s = sqe_get(r);
    prep(s, IORING_OP_READ, fd, (uintptr_t)buf, 4 * K, 4 * K, 0);
    s->flags = IOSQE_IO_LINK;
    s = sqe_get(r);
    prep(s, IORING_OP_WRITE, fd, (uintptr_t)buf, 4 * K, 0, 1);
    CHECK(submit(r, 2) == 2, "submit of a short chain");
    reap_n(r, res, 2);
    CHECK(res[0] == 100 && res[1] == -ECANCELED, "short link: %d %d", res[0], res[1]);

    /* A successful chain runs in order: write then read it back. */
    static char rb[4 * K];
    pat_fill(buf, 4 * K, 0, 10);
    s = sqe_get(r);
    prep(s, IORING_OP_WRITE, fd, (uintptr_t)buf, 4 * K, 0, 0);
    s->flags = IOSQE_IO_LINK;
    s = sqe_get(r);
    prep(s, IORING_OP_READ, fd, (uintptr_t)rb, 4 * K, 0, 1);
    CHECK(submit(r, 2) == 2, "submit of a good chain");
    reap_n(r, res, 2);
    CHECK(res[0] == 4 * K && res[1] == 4 * K, "good chain: %d %d", res[0], res[1]);
    CHECK(pat_check(rb, 4 * K, 0, 10) < 0, "the linked read did not see the linked write");
    close(fd);
    printf("uring: IOSQE_IO_LINK cancels after an error and a short read ok\n");
}

static void test_probe(struct ring *r)
{
    size_t sz = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *p = calloc(1, sz);
    SYS(register_(r->fd, IORING_REGISTER_PROBE, p, 256));
    int need[] = {IORING_OP_NOP,        IORING_OP_READV,  IORING_OP_WRITEV, IORING_OP_FSYNC,
                  IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED, IORING_OP_OPENAT, IORING_OP_CLOSE,
                  IORING_OP_STATX,      IORING_OP_READ,   IORING_OP_WRITE};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        CHECK(need[i] <= p->last_op && need[i] < p->ops_len &&
                  (p->ops[need[i]].flags & IO_URING_OP_SUPPORTED),
              "probe: opcode %d not supported", need[i]);
    /* Every opcode reported unsupported completes with -EINVAL (zeroed
     * SQE but for the opcode and a bad fd). */
    int unsupported = 0;
    for (int op = 0; op < p->ops_len; op++) {
        if (p->ops[op].flags & IO_URING_OP_SUPPORTED)
            continue;
        struct io_uring_sqe *s = sqe_get(r);
        prep(s, op, -1, 0, 0, 0, 1000 + op);
        int res = run1(r, 1000 + op);
        CHECK(res == -EINVAL, "opcode %d reported unsupported completed with %d", op, res);
        unsupported++;
    }
    /* A dirty probe buffer is refused. */
    memset(p, 0, sz);
    p->resv = 1;
    errno = 0;
    CHECK(register_(r->fd, IORING_REGISTER_PROBE, p, 256) < 0 && errno == EINVAL, "dirty probe");
    free(p);
    errno = 0;
    CHECK(register_(r->fd, 999, NULL, 0) < 0 && errno == EINVAL, "unknown register opcode");
    printf("uring: probe ok (%d unsupported opcodes complete with -EINVAL)\n", unsupported);
}

static void test_fixed(struct ring *r)
{
    static char b0[8 * K] __attribute__((aligned(4096)));
    static char b1[8 * K] __attribute__((aligned(4096)));
    struct iovec iov[2] = {{b0, sizeof b0}, {b1, sizeof b1}};
    int fd = SYS(open("fixed.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    SYS(register_(r->fd, IORING_REGISTER_BUFFERS, iov, 2));
    errno = 0;
    CHECK(register_(r->fd, IORING_REGISTER_BUFFERS, iov, 2) < 0 && errno == EBUSY,
          "buffers registered twice");
    pat_fill(b0, sizeof b0, 0, 21);
    struct io_uring_sqe *s = sqe_get(r);
    prep(s, IORING_OP_WRITE_FIXED, fd, (uintptr_t)b0, 8 * K, 0, 1);
    s->buf_index = 0;
    CHECK(run1(r, 1) == 8 * K, "WRITE_FIXED");
    s = sqe_get(r);
    prep(s, IORING_OP_READ_FIXED, fd, (uintptr_t)(b1 + 4 * K), 4 * K, 4 * K, 2);
    s->buf_index = 1;
    CHECK(run1(r, 2) == 4 * K, "READ_FIXED");
    CHECK(pat_check(b1 + 4 * K, 4 * K, 4 * K, 21) < 0, "READ_FIXED data");
    s = sqe_get(r);
    prep(s, IORING_OP_READ_FIXED, fd, (uintptr_t)(b1 + 4 * K), 8 * K, 0, 3);
    s->buf_index = 1;
    CHECK(run1(r, 3) == -EFAULT, "READ_FIXED past its buffer");
    s = sqe_get(r);
    prep(s, IORING_OP_READ_FIXED, fd, (uintptr_t)b0, 4 * K, 0, 4);
    s->buf_index = 1;
    CHECK(run1(r, 4) == -EFAULT, "READ_FIXED outside its buffer");
    s = sqe_get(r);
    prep(s, IORING_OP_READ_FIXED, fd, (uintptr_t)b0, 4 * K, 0, 5);
    s->buf_index = 7;
    CHECK(run1(r, 5) == -EFAULT, "READ_FIXED with a bad index");
    SYS(register_(r->fd, IORING_UNREGISTER_BUFFERS, NULL, 0));
    errno = 0;
    CHECK(register_(r->fd, IORING_UNREGISTER_BUFFERS, NULL, 0) < 0 && errno == ENXIO,
          "unregister with none");
    s = sqe_get(r);
    prep(s, IORING_OP_READ_FIXED, fd, (uintptr_t)b0, 4 * K, 0, 6);
    CHECK(run1(r, 6) == -EFAULT, "READ_FIXED with no buffers");
    struct iovec bad = {(void *)0x1000, 4 * K};
    errno = 0;
    CHECK(register_(r->fd, IORING_REGISTER_BUFFERS, &bad, 1) < 0 && errno == EFAULT,
          "a buffer in nothing was registered");

    /* Files. */
    int fds[2] = {fd, -1};
    SYS(register_(r->fd, IORING_REGISTER_FILES, fds, 2));
    memset(b1, 0, sizeof b1);
    s = sqe_get(r);
    prep(s, IORING_OP_READ, 0, (uintptr_t)b1, 8 * K, 0, 7);
    s->flags = IOSQE_FIXED_FILE;
    CHECK(run1(r, 7) == 8 * K, "READ of a fixed file");
    CHECK(pat_check(b1, 8 * K, 0, 21) < 0, "fixed file data");
    s = sqe_get(r);
    prep(s, IORING_OP_READ, 1, (uintptr_t)b1, 8 * K, 0, 8);
    s->flags = IOSQE_FIXED_FILE;
    CHECK(run1(r, 8) == -EBADF, "READ of an empty slot");
    s = sqe_get(r);
    prep(s, IORING_OP_READ, 9, (uintptr_t)b1, 8 * K, 0, 9);
    s->flags = IOSQE_FIXED_FILE;
    CHECK(run1(r, 9) == -EBADF, "READ of a slot past the table");
    /* The registered file outlives its descriptor. */
    close(fd);
    s = sqe_get(r);
    prep(s, IORING_OP_READ, 0, (uintptr_t)b1, 4 * K, 0, 10);
    s->flags = IOSQE_FIXED_FILE;
    CHECK(run1(r, 10) == 4 * K, "READ of a fixed file whose fd is closed");
    int self = r->fd;
    errno = 0;
    SYS(register_(r->fd, IORING_UNREGISTER_FILES, NULL, 0));
    CHECK(register_(r->fd, IORING_REGISTER_FILES, &self, 1) < 0 && errno == EBADF,
          "a ring registered in itself");
    printf("uring: fixed buffers and files ok\n");
}

static void test_eventfd(struct ring *r)
{
    int efd = SYS(eventfd(0, EFD_NONBLOCK));
    SYS(register_(r->fd, IORING_REGISTER_EVENTFD, &efd, 1));
    errno = 0;
    CHECK(register_(r->fd, IORING_REGISTER_EVENTFD, &efd, 1) < 0 && errno == EBUSY,
          "eventfd registered twice");
    for (int i = 0; i < 3; i++)
        prep(sqe_get(r), IORING_OP_NOP, 0, 0, 0, 0, (uint64_t)i);
    CHECK(submit(r, 3) == 3, "3 NOPs");
    int res[3];
    reap_n(r, res, 3);
    uint64_t v = 0;
    CHECK(read(efd, &v, 8) == 8 && v >= 1 && v <= 3, "eventfd count %llu", (unsigned long long)v);
    SYS(register_(r->fd, IORING_UNREGISTER_EVENTFD, NULL, 0));
    prep(sqe_get(r), IORING_OP_NOP, 0, 0, 0, 0, 5);
    CHECK(run1(r, 5) == 0, "NOP");
    errno = 0;
    CHECK(read(efd, &v, 8) < 0 && errno == EAGAIN, "eventfd signalled after unregister");
    close(efd);
    printf("uring: eventfd notification ok\n");
}

static void test_overflow(void)
{
    struct ring r;
    ring_init(&r, 2, 0, 0); /* sq 2, cq 4 */
    int submitted = 0;
    for (int round = 0; round < 4; round++) {
        prep(sqe_get(&r), IORING_OP_NOP, 0, 0, 0, 0, (uint64_t)submitted);
        prep(sqe_get(&r), IORING_OP_NOP, 0, 0, 0, 0, (uint64_t)submitted + 1);
        long n = submit(&r, 0);
        if (n == -EBUSY) { /* older kernels: the backlog must drain first */
            *r.sq_tail -= 2;
            break;
        }
        CHECK(n == 2, "submit during overflow: %ld", n);
        submitted += 2;
    }
    CHECK(submitted >= 4, "only %d submitted", submitted);
    CHECK(*r.sq_flags & IORING_SQ_CQ_OVERFLOW, "a full CQ did not set IORING_SQ_CQ_OVERFLOW");
    int seen[8] = {0};
    for (int i = 0; i < submitted; i++) {
        struct io_uring_cqe c = reap(&r);
        CHECK(c.user_data < 8 && !seen[c.user_data] && c.res == 0, "CQE %llu",
              (unsigned long long)c.user_data);
        seen[c.user_data] = 1;
    }
    CHECK(*r.cq_overflow == 0, "completions were dropped: %u", *r.cq_overflow);
    CHECK(!(*r.sq_flags & IORING_SQ_CQ_OVERFLOW), "overflow flag still set");
    ring_exit(&r);
    printf("uring: a full CQ kept all %d completions (NODROP)\n", submitted);
}

static void test_hostile(struct ring *r)
{
    /* An SQ array entry past the ring: dropped. */
    uint32_t tail = *r->sq_tail;
    r->sq_array[tail & r->sq_mask] = 100000;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    long n = enter_(r->fd, 1, 0, 0, NULL, 0);
    CHECK(n == 0 || (n < 0 && errno == EAGAIN), "a dropped SQE: enter returned %ld", n);
    CHECK(*r->sq_dropped == 1, "sq dropped is %u", *r->sq_dropped);
    CHECK(*r->sq_head == tail + 1, "the SQ head did not pass the bad entry");
    prep(sqe_get(r), IORING_OP_NOP, 0, 0, 0, 0, 1);
    CHECK(run1(r, 1) == 0, "NOP after a dropped SQE");

    /* A tail far past the head: at most to_submit are taken. */
    tail = *r->sq_tail;
    for (uint32_t i = 0; i < r->p.sq_entries; i++) {
        memset(&r->sqes[i], 0, sizeof r->sqes[i]);
        r->sqes[i].user_data = 2;
        r->sq_array[i] = i;
    }
    __atomic_store_n(r->sq_tail, tail + 0x70000000u, __ATOMIC_RELEASE);
    n = enter_(r->fd, 1, 0, 0, NULL, 0);
    CHECK(n == 1, "a wild tail: enter returned %ld", n);
    __atomic_store_n(r->sq_tail, *r->sq_head, __ATOMIC_RELEASE);
    struct io_uring_cqe c = reap(r);
    CHECK(c.user_data == 2 && c.res == 0, "the NOP under a wild tail");

    /* Bad enter arguments. */
    errno = 0;
    CHECK(enter_(r->fd, 0, 0, 1U << 20, NULL, 0) < 0 && errno == EINVAL, "unknown enter flag");
    errno = 0;
    CHECK(enter_(r->fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, (void *)0x1000,
                 sizeof(struct io_uring_getevents_arg)) < 0 &&
              errno == EFAULT,
          "EXT_ARG in nothing");
    errno = 0;
    CHECK(enter_(r->fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, NULL, 7) < 0 &&
              errno == EINVAL,
          "EXT_ARG of a bad size");
    /* mmap of an unknown offset. */
    CHECK(mmap(0, 4096, PROT_READ, MAP_SHARED, r->fd, 0x20000000) == MAP_FAILED,
          "mmap of an unknown offset");
    printf("uring: hostile indexes, tails and pointers ok\n");
}

static void on_alarm(int sig) { (void)sig; }

static void test_waits(struct ring *r)
{
    /* EXT_ARG timeout with nothing to wait for: ETIME. */
    struct __kernel_timespec ts = {0, 50 * 1000 * 1000};
    struct io_uring_getevents_arg arg = {0, 0, 0, (uint64_t)(uintptr_t)&ts};
    errno = 0;
    long n = enter_(r->fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
    CHECK(n < 0 && errno == ETIME, "EXT_ARG timeout: %ld", n);

    /* A signal interrupts GETEVENTS. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    SYS(sigaction(SIGALRM, &sa, NULL));
    struct itimerval it = {{0, 0}, {0, 100 * 1000}};
    SYS(setitimer(ITIMER_REAL, &it, NULL));
    errno = 0;
    n = enter_(r->fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    CHECK(n < 0 && errno == EINTR, "GETEVENTS under a signal: %ld", n);
    printf("uring: ETIME and EINTR waits ok\n");
}

static void test_teardown(void)
{
    static char buf[4 * K] __attribute__((aligned(4096)));
    int fd = SYS(open("tear.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    struct kstats k0, k1;
    int cairn = kstats_read(&k0) == 0;
    for (int round = 0; round < 40; round++) {
        struct ring r;
        ring_init(&r, 64, 0, 0);
        int efd = SYS(eventfd(0, 0));
        SYS(register_(r.fd, IORING_REGISTER_EVENTFD, &efd, 1));
        struct iovec iov = {buf, sizeof buf};
        SYS(register_(r.fd, IORING_REGISTER_BUFFERS, &iov, 1));
        SYS(register_(r.fd, IORING_REGISTER_FILES, &fd, 1));
        for (int i = 0; i < 48; i++) {
            struct io_uring_sqe *s = sqe_get(&r);
            prep(s, i % 2 ? IORING_OP_WRITE : IORING_OP_READ, 0, (uintptr_t)buf, 4 * K,
                 (uint64_t)(i * 4 * K), (uint64_t)i);
            s->flags = IOSQE_FIXED_FILE;
        }
        /* Submitted and never reaped; half the rings closed before
         * their mappings go, half after. */
        long n = submit(&r, 0);
        CHECK(n == 48, "teardown submit %ld", n);
        ring_close(&r, round % 2);
        close(efd);
    }
    close(fd);
    if (cairn) {
        /* Every ring, its backing file and the files it held are gone
         * (a leak would be two or more descriptions a round). */
        kstats_read(&k1);
        long long before = kstat(&k0, "files"), after = kstat(&k1, "files");
        CHECK(after - before < 10, "open file descriptions %lld before, %lld after 40 rings",
              before, after);
    }
    printf("uring: 40 rings torn down with completions unreaped ok\n");
}

static void test_eio(void)
{
    struct ring r;
    ring_init(&r, 8, 0, 0);
    static char buf[64 * K] __attribute__((aligned(4096)));
    int fd = SYS(open("bad.dat", O_RDONLY));
    const off_t bad = 128 * K;
    prep(sqe_get(&r), IORING_OP_READ, fd, (uintptr_t)buf, 4 * K, bad, 1);
    int res = run1(&r, 1);
    CHECK(res == -EIO, "READ of the bad page: %d", res);
    prep(sqe_get(&r), IORING_OP_READ, fd, (uintptr_t)buf, 4 * K, bad + 8 * K, 2);
    CHECK(run1(&r, 2) == 4 * K, "READ after the bad page");
    CHECK(pat_check(buf, 4 * K, bad + 8 * K, 12) < 0, "data after the bad page");
    close(fd);
    fd = SYS(open("bad.dat", O_RDONLY | O_DIRECT));
    prep(sqe_get(&r), IORING_OP_READ, fd, (uintptr_t)buf, 4 * K, bad, 3);
    res = run1(&r, 3);
    CHECK(res == -EIO, "O_DIRECT READ of the bad page: %d", res);
    prep(sqe_get(&r), IORING_OP_READ, fd, (uintptr_t)buf, 64 * K, 0, 4);
    CHECK(run1(&r, 4) == 64 * K, "O_DIRECT READ of good sectors");
    CHECK(pat_check(buf, 64 * K, 0, 12) < 0, "O_DIRECT data before the bad page");
    close(fd);
    ring_exit(&r);
    check_pattern_file("good.dat", 64 * K, 11);
    printf("uring: -EIO reached the CQE (buffered and O_DIRECT)\n");
}

static void test_direct(struct ring *r)
{
    static char buf[64 * K] __attribute__((aligned(4096)));
    int fd = open("direct.dat", O_CREAT | O_RDWR | O_TRUNC | O_DIRECT, 0644);
    CHECK(fd >= 0, "open O_DIRECT");
    pat_fill(buf, sizeof buf, 0, 41);
    int res[4];
    for (int i = 0; i < 4; i++)
        prep(sqe_get(r), IORING_OP_WRITE, fd, (uintptr_t)(buf + i * 16 * K), 16 * K,
             (uint64_t)(i * 16 * K), (uint64_t)i);
    CHECK(submit(r, 4) == 4, "4 direct writes");
    reap_n(r, res, 4);
    for (int i = 0; i < 4; i++)
        CHECK(res[i] == 16 * K, "direct write %d: %d", i, res[i]);
    memset(buf, 0, sizeof buf);
    for (int i = 0; i < 4; i++)
        prep(sqe_get(r), IORING_OP_READ, fd, (uintptr_t)(buf + i * 16 * K), 16 * K,
             (uint64_t)(i * 16 * K), (uint64_t)i);
    CHECK(submit(r, 4) == 4, "4 direct reads");
    reap_n(r, res, 4);
    for (int i = 0; i < 4; i++)
        CHECK(res[i] == 16 * K, "direct read %d: %d", i, res[i]);
    long bad = pat_check(buf, sizeof buf, 0, 41);
    CHECK(bad < 0, "direct data: bad at %ld (byte %d)", bad, bad >= 0 ? buf[bad] : 0);
    prep(sqe_get(r), IORING_OP_READ, fd, (uintptr_t)(buf + 1), 4 * K, 0, 9);
    CHECK(run1(r, 9) == -EINVAL, "misaligned direct READ");
    close(fd);
    printf("uring: O_DIRECT requests ok\n");
}

/* O_DIRECT requests go in flight: io_uring_enter returns once they are
 * started, and their CQEs come later. 40 rounds of 32 writes then 32
 * reads of 4 KiB on an O_DIRECT file (preallocated: overwrites); a round
 * counts when the CQ does not yet hold all 32 CQEs right after the
 * submit. At least one round must (no clocks); the data is checked. */
#define INFL_N 32
static void test_inflight(void)
{
    static char wbuf[INFL_N * 4 * K] __attribute__((aligned(4096)));
    static char rbuf[INFL_N * 4 * K] __attribute__((aligned(4096)));
    const size_t len = sizeof wbuf;
    int fd = SYS(open("inflight.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    pat_fill(wbuf, len, 0, 60);
    CHECK(SYS(pwrite(fd, wbuf, len, 0)) == (ssize_t)len, "preallocating write");
    /* The regions the teardown rounds write, zeros until then. */
    SYS(ftruncate(fd, 17 * (off_t)len));
    SYS(fsync(fd));
    close(fd);
    fd = SYS(open("inflight.dat", O_RDWR | O_DIRECT));
    struct ring r;
    ring_init(&r, 64, 0, 0);
    int in_flight = 0;
    for (int round = 0; round < 40; round++) {
        for (int rw = 0; rw < 2; rw++) {
            if (rw == 0)
                pat_fill(wbuf, len, 0, 61 + (uint32_t)round);
            else
                memset(rbuf, 0, len);
            char *b = rw ? rbuf : wbuf;
            for (int i = 0; i < INFL_N; i++) {
                /* Every other one vectored (READV/WRITEV). */
                static struct iovec iov[INFL_N];
                struct io_uring_sqe *s = sqe_get(&r);
                if (i % 2) {
                    iov[i].iov_base = b + i * 4 * K;
                    iov[i].iov_len = 4 * K;
                    prep(s, rw ? IORING_OP_READV : IORING_OP_WRITEV, fd, (uintptr_t)&iov[i], 1,
                         (uint64_t)i * 4 * K, (uint64_t)i);
                } else {
                    prep(s, rw ? IORING_OP_READ : IORING_OP_WRITE, fd, (uintptr_t)(b + i * 4 * K),
                         4 * K, (uint64_t)i * 4 * K, (uint64_t)i);
                }
            }
            long n = submit(&r, 0);
            CHECK(n == INFL_N, "in-flight submit %ld", n);
            uint32_t ready = __atomic_load_n(r.cq_tail, __ATOMIC_ACQUIRE) - *r.cq_head;
            if (ready < INFL_N)
                in_flight++;
            int res[INFL_N];
            reap_n(&r, res, INFL_N);
            for (int i = 0; i < INFL_N; i++)
                CHECK(res[i] == 4 * K, "round %d %s %d: %d", round, rw ? "read" : "write", i,
                      res[i]);
        }
        CHECK(pat_check(rbuf, len, 0, 61 + (uint32_t)round) < 0, "round %d: data read back",
              round);
    }
    CHECK(in_flight > 0, "io_uring_enter returned after all 32 O_DIRECT requests completed "
                         "in every one of 80 submissions");
    /* IOSQE_IO_DRAIN: a NOP after 32 O_DIRECT writes completes after
     * all of them; a linked O_DIRECT WRITE then READ of one block runs
     * in order (the read sees the write). */
    for (int round = 0; round < 4; round++) {
        pat_fill(wbuf, len, 0, 90 + (uint32_t)round);
        for (int i = 0; i < INFL_N; i++)
            prep(sqe_get(&r), IORING_OP_WRITE, fd, (uintptr_t)(wbuf + i * 4 * K), 4 * K,
                 (uint64_t)i * 4 * K, (uint64_t)i);
        struct io_uring_sqe *d = sqe_get(&r);
        prep(d, IORING_OP_NOP, -1, 0, 0, 0, 999);
        d->flags = IOSQE_IO_DRAIN;
        CHECK(submit(&r, 0) == INFL_N + 1, "drain submit");
        for (int i = 0; i <= INFL_N; i++) {
            struct io_uring_cqe c = reap(&r);
            CHECK((c.user_data == 999) == (i == INFL_N), "drained NOP's CQE %d of %d", i,
                  INFL_N + 1);
            CHECK(c.res == (c.user_data == 999 ? 0 : 4 * K), "drain round res %d", c.res);
        }
        memset(rbuf, 0, 4 * K);
        pat_fill(wbuf, 4 * K, 0, 95 + (uint32_t)round);
        struct io_uring_sqe *w = sqe_get(&r);
        prep(w, IORING_OP_WRITE, fd, (uintptr_t)wbuf, 4 * K, 0, 0);
        w->flags = IOSQE_IO_LINK;
        prep(sqe_get(&r), IORING_OP_READ, fd, (uintptr_t)rbuf, 4 * K, 0, 1);
        CHECK(submit(&r, 2) == 2, "linked submit");
        int res[2];
        reap_n(&r, res, 2);
        CHECK(res[0] == 4 * K && res[1] == 4 * K, "linked direct write/read %d %d", res[0],
              res[1]);
        CHECK(pat_check(rbuf, 4 * K, 0, 95 + (uint32_t)round) < 0, "linked read saw the write");
    }
    ring_exit(&r);

    /* Rings closed with O_DIRECT writes and reads in flight: round k
     * writes its own 128 KiB region (seed 100 + k) and reads into a
     * buffer unmapped right after the close. The writes complete anyway
     * (checked, allowing them a moment). */
    const int rounds = 16;
    /* Linux reads and writes the buffers of requests it issues late (from
     * its io-wq) through the program's mappings, so there they stay
     * mapped until the end; cairn pins them at submission, and there
     * they are unmapped at once (no device may write into freed
     * memory). */
    int cairn = kstats_read(&(struct kstats){0}) == 0;
    char *keep[2 * 16];
    for (int round = 0; round < rounds; round++) {
        ring_init(&r, 64, 0, 0);
        char *w = SYSP(mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        char *rd = SYSP(mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        uint64_t base = (uint64_t)(round + 1) * len;
        pat_fill(w, len, base, 100 + (uint32_t)round);
        for (int i = 0; i < INFL_N; i++)
            prep(sqe_get(&r), IORING_OP_WRITE, fd, (uintptr_t)(w + i * 4 * K), 4 * K,
                 base + (uint64_t)i * 4 * K, (uint64_t)i);
        for (int i = 0; i < INFL_N / 2; i++)
            prep(sqe_get(&r), IORING_OP_READ, fd, (uintptr_t)(rd + i * 4 * K), 4 * K,
                 (uint64_t)i * 4 * K, 100 + (uint64_t)i);
        long n = submit(&r, 0);
        CHECK(n == INFL_N + INFL_N / 2, "teardown submit %ld", n);
        ring_close(&r, round % 2);
        if (cairn) {
            munmap(w, len);
            munmap(rd, len);
        } else {
            keep[2 * round] = w;
            keep[2 * round + 1] = rd;
        }
    }
    /* On cairn every request started is finished; Linux may cancel
     * requests it had not issued yet (left to its io-wq) when the ring
     * goes: each block holds the new data or the zeros it had. */
    int landed = 0;
    for (int round = 0; round < rounds; round++) {
        uint64_t base = (uint64_t)(round + 1) * len;
        int ok = 0;
        for (int tries = 0; tries < 500 && !ok; tries++) {
            CHECK(SYS(pread(fd, rbuf, len, (off_t)base)) == (ssize_t)len, "teardown read");
            pat_fill(wbuf, len, base, 100 + (uint32_t)round);
            int done = 0, zero = 0;
            for (int i = 0; i < INFL_N; i++) {
                char *blk = rbuf + i * 4 * K;
                if (memcmp(blk, wbuf + i * 4 * K, 4 * K) == 0)
                    done++;
                else if (blk[0] == 0 && memcmp(blk, blk + 1, 4 * K - 1) == 0)
                    zero++;
                else
                    FAIL("region %d block %d: neither the data written nor zeros", round, i);
            }
            ok = done == INFL_N || (!cairn && done + zero == INFL_N && tries > 20);
            if (ok)
                landed += done;
            else
                usleep(10 * 1000);
        }
        CHECK(ok, "region %d: the writes of a ring closed in flight never all landed", round);
    }
    if (!cairn) {
        usleep(100 * 1000);
        for (int i = 0; i < 2 * rounds; i++)
            munmap(keep[i], len);
    }
    close(fd);
    printf("uring: O_DIRECT in flight after io_uring_enter in %d of 80 submissions; rings "
           "closed in flight: %d of %d writes landed\n",
           in_flight, landed, rounds * INFL_N);
}

int main(int argc, char **argv)
{
    test_init("uring");
    alarm(100);
    if (argc > 1 && strcmp(argv[1], "eio") == 0) {
        test_eio();
        pass();
    }
    test_setup();
    struct ring r;
    ring_init(&r, 32, 0, 0);
    test_rw(&r);
    /* A sync with a ring's pages mapped and dirty returns. */
    sync();
    int dot = SYS(open(".", O_RDONLY | O_DIRECTORY));
    SYS(syncfs(dot));
    close(dot);
    test_files(&r);
    test_links(&r);
    test_probe(&r);
    test_fixed(&r);
    test_eventfd(&r);
    test_direct(&r);
    test_hostile(&r);
    test_waits(&r);
    ring_exit(&r);
    test_overflow();
    test_teardown();
    test_inflight();
    pass();
}
