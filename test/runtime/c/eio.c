/* eio: one sector of the image's bad.dat, at offset 128 KiB, fails on
 * read (QEMU blkdebug). Reading the file in order must return every byte
 * before the bad page (even though readahead fetched them in the same
 * request as the bad sector) and -1/EIO exactly at the bad page; the data
 * after it still reads; a read spanning the bad page ends short before
 * it, as on Linux. The system stays up: good.dat still reads, a new file
 * can be written and synced. Exits 0 when all that held; 1 otherwise. */
#include "cairn_test.h"

int main(void)
{
    test_init("eio");
    static char buf[16384];
    check_pattern_file("good.dat", 64 * 1024, 11);

    int fd = SYS(open("bad.dat", O_RDONLY));
    off_t off = 0;
    int seen = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            CHECK(errno == EIO, "read of bad.dat at %lld failed, but not with EIO",
                  (long long)off);
            printf("eio: read of bad.dat at offset %lld: %s (as injected)\n", (long long)off,
                   strerror(errno));
            seen = 1;
            break;
        }
        if (n == 0)
            break;
        CHECK(pat_check(buf, (size_t)n, (uint64_t)off, 12) < 0,
              "bad.dat returned wrong data at %lld instead of an error", (long long)off);
        off += n;
    }
    CHECK(seen, "read all %lld bytes of bad.dat without an I/O error (no injection?)",
          (long long)off);
    /* Only the bad page fails: everything before it read, and what comes
     * after it still reads. */
    const off_t bad = 128 * 1024;
    CHECK(off == bad, "the first failed read was at %lld, not at the bad page (%lld)",
          (long long)off, (long long)bad);
    errno = 0;
    CHECK(pread(fd, buf, PAGE, bad) < 0 && errno == EIO, "pread of the bad page did not fail with EIO");
    for (off_t at = bad + PAGE; at < 256 * 1024; at += PAGE) {
        pread_all(fd, buf, PAGE, at);
        CHECK(pat_check(buf, PAGE, (uint64_t)at, 12) < 0, "wrong data after the bad page at %lld",
              (long long)at);
    }
    /* A read across the bad page stops short in front of it. */
    static char big[64 * 1024];
    ssize_t n = pread(fd, big, sizeof big, bad - 32 * 1024);
    CHECK(n == 32 * 1024, "a read across the bad page returned %zd (errno %d), not the 32 KiB before it",
          n, errno);
    CHECK(pat_check(big, (size_t)n, (uint64_t)(bad - 32 * 1024), 12) < 0,
          "wrong data before the bad page");
    close(fd);

    /* Still up. */
    check_pattern_file("good.dat", 64 * 1024, 11);
    make_pattern_file("after.dat", 32 * 1024, 14, 1);
    check_pattern_file("after.dat", 32 * 1024, 14);
    pass();
}
