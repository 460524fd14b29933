/* fsync_flush (issue 14): a database calls fsync after every transaction,
 * and again on files nothing changed in; each device flush costs a round
 * trip to the disk's cache. Checks, through cairn's count of device
 * flushes (/proc/cairn/kstats `block.flushes`), that:
 *   - an fsync after a write flushes at least once (the data and its
 *     metadata commit must reach stable storage) and at most twice (the
 *     commit's flush before and after the record that makes it reachable);
 *   - an fsync, fdatasync or syncfs with nothing written since the last
 *     one flushes nothing;
 *   - an overwrite of data already on disk (no new blocks) still flushes.
 * The data is read back after each step. On Linux (no kstats) only the
 * calls and the data are checked. */
#include "cairn_test.h"

static struct kstats k;

static long long flushes(void)
{
    if (kstats_read(&k) != 0)
        return -1;
    return kstat(&k, "block.flushes");
}

/* Flushes made by `what` (-1: not counted here). */
#define FLUSHES(what)                                                                              \
    ({                                                                                             \
        long long before_ = flushes();                                                             \
        SYS(what);                                                                                 \
        long long after_ = flushes();                                                              \
        before_ < 0 || after_ < 0 ? -1 : after_ - before_;                                         \
    })

int main(void)
{
    test_init("fsync_flush");
    static char buf[65536], back[65536];
    int fd = SYS(open("tx.db", O_CREAT | O_TRUNC | O_RDWR, 0644));
    int dir = SYS(open(".", O_RDONLY));
    long long n, first = -2, clean = 0;
    for (int round = 0; round < 20; round++) {
        pat_fill(buf, sizeof buf, (uint64_t)round * sizeof buf, 31);
        pwrite_all(fd, buf, sizeof buf, (off_t)round * (off_t)sizeof buf);
        n = FLUSHES(fsync(fd));
        CHECK(n < 0 || (n >= 1 && n <= 2), "round %d: fsync after a write made %lld flushes", round,
              n);
        if (round == 0)
            first = n;
        n = FLUSHES(fsync(fd));
        clean += n;
        CHECK(n <= 0, "round %d: an fsync with nothing written made %lld flushes", round, n);
        n = FLUSHES(fdatasync(fd));
        CHECK(n <= 0, "round %d: an fdatasync with nothing written made %lld flushes", round, n);
        n = FLUSHES(syncfs(dir));
        CHECK(n <= 0, "round %d: a syncfs with nothing written made %lld flushes", round, n);
        pread_all(fd, back, sizeof back, (off_t)round * (off_t)sizeof back);
        CHECK(memcmp(buf, back, sizeof buf) == 0, "round %d: data", round);
    }
    /* Overwrite in place: the blocks exist, the data still needs a flush. */
    pat_fill(buf, sizeof buf, 0, 32);
    pwrite_all(fd, buf, sizeof buf, 0);
    n = FLUSHES(fsync(fd));
    CHECK(n < 0 || (n >= 1 && n <= 2), "fsync after an overwrite made %lld flushes", n);
    pread_all(fd, back, sizeof back, 0);
    CHECK(memcmp(buf, back, sizeof buf) == 0, "overwritten data");
    if (flushes() < 0)
        printf("fsync_flush: flushes not counted (no kstats)\n");
    else
        printf("fsync_flush: %lld flushes for the first fsync after a write, %lld for 20 clean "
               "fsyncs\n",
               first, clean);
    SYS(close(fd));
    SYS(close(dir));
    pass();
}
