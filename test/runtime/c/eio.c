/* eio: the image's bad.dat sits on sectors that fail on read (QEMU
 * blkdebug); reading it must give -1/EIO, and the system must stay up:
 * good.dat still reads, a new file can be written and synced. Exits 0
 * when the error was seen and reported; 1 otherwise. */
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
    close(fd);
    CHECK(seen, "read all %lld bytes of bad.dat without an I/O error (no injection?)",
          (long long)off);

    /* Still up. */
    check_pattern_file("good.dat", 64 * 1024, 11);
    make_pattern_file("after.dat", 32 * 1024, 14, 1);
    check_pattern_file("after.dat", 32 * 1024, 14);
    pass();
}
