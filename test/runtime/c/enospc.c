/* enospc: on a small image, writing until the disk is full ends with
 * ENOSPC; data synced before is intact, the accepted part of the filler
 * reads back, and unlinking the filler makes room again. */
#include "cairn_test.h"

#define KEEP_LEN (256 * 1024)
#define CHUNK (64 * 1024)

int main(int argc, char **argv)
{
    test_init("enospc");
    long max_mib = arg_long(argc, argv, 1, 64);
    static char buf[CHUNK];
    make_pattern_file("keep.dat", KEEP_LEN, 61, 1);

    int fd = SYS(open("fill.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    off_t off = 0;
    int err = 0;
    for (;;) {
        pat_fill(buf, CHUNK, (uint64_t)off, 62);
        ssize_t n = write(fd, buf, CHUNK);
        if (n < 0) {
            err = errno;
            break;
        }
        CHECK(n > 0, "write returned 0");
        off += n;
        if (off > max_mib << 20)
            FAIL("wrote %lld bytes without ENOSPC on a small image", (long long)off);
    }
    errno = err;
    CHECK(err == ENOSPC, "the write that failed gave errno %d, not ENOSPC", err);
    printf("enospc: full after %lld KiB\n", (long long)(off >> 10));
    CHECK(off >= 512 * 1024, "only %lld bytes fit", (long long)off);
    /* The accepted part of the filler reads back. */
    for (off_t o = 0; o + CHUNK <= off; o += CHUNK) {
        pread_all(fd, buf, CHUNK, o);
        CHECK(pat_check(buf, CHUNK, (uint64_t)o, 62) < 0, "filler data at %lld", (long long)o);
    }
    int fk = SYS(open("keep.dat", O_RDWR));
    SYS(fsync(fk));
    close(fk);
    check_pattern_file("keep.dat", KEEP_LEN, 61);
    close(fd);

    /* Room again after the filler goes. */
    SYS(c_unlink("fill.dat"));
    make_pattern_file("after.dat", 256 * 1024, 63, 1);
    check_pattern_file("after.dat", 256 * 1024, 63);
    check_pattern_file("keep.dat", KEEP_LEN, 61);
    pass();
}
