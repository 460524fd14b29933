/* enospc: writing until the disk is full ends with ENOSPC; data synced
 * before is intact, the accepted part of the filler reads back, and
 * unlinking the filler makes room again: a second fill also runs to
 * ENOSPC and reads back (Nanos's fs_full). No fsync while filling, so on
 * a disk larger than the guest's memory (the enospc_lowmem entry) the
 * kernel must throttle and write back dirty data rather than run out of
 * memory. argv[1]: give up after this many MiB without ENOSPC; argv[2]:
 * bytes per write (default 64 KiB). */
#include "cairn_test.h"

#define KEEP_LEN (256 * 1024)
#define MAX_CHUNK (64 * 1024)

static char buf[MAX_CHUNK];

/* Fills `path` until a write fails; checks the failure is ENOSPC and that
 * everything accepted reads back. Returns the bytes accepted. */
static off_t fill(const char *path, uint32_t seed, size_t chunk, long max_mib)
{
    int fd = SYS(open(path, O_CREAT | O_TRUNC | O_RDWR, 0644));
    off_t off = 0;
    int err = 0;
    for (;;) {
        pat_fill(buf, chunk, (uint64_t)off, seed);
        ssize_t n = write(fd, buf, chunk);
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
    CHECK(err == ENOSPC, "the write to %s that failed gave errno %d, not ENOSPC", path, err);
    printf("enospc: %s full after %lld KiB\n", path, (long long)(off >> 10));
    CHECK(off >= 512 * 1024, "only %lld bytes fit", (long long)off);
    /* The accepted part of the filler reads back. */
    for (off_t o = 0; o < off; o += MAX_CHUNK) {
        size_t n = off - o < MAX_CHUNK ? (size_t)(off - o) : MAX_CHUNK;
        pread_all(fd, buf, n, o);
        CHECK(pat_check(buf, n, (uint64_t)o, seed) < 0, "%s: data at %lld", path, (long long)o);
    }
    SYS(close(fd));
    return off;
}

int main(int argc, char **argv)
{
    test_init("enospc");
    long max_mib = arg_long(argc, argv, 1, 64);
    size_t chunk = (size_t)arg_long(argc, argv, 2, MAX_CHUNK);
    CHECK(chunk > 0 && chunk <= MAX_CHUNK, "bad chunk size %zu", chunk);
    make_pattern_file("keep.dat", KEEP_LEN, 61, 1);

    off_t first = fill("fill.dat", 62, chunk, max_mib);
    int fk = SYS(open("keep.dat", O_RDWR));
    SYS(fsync(fk));
    close(fk);
    check_pattern_file("keep.dat", KEEP_LEN, 61);

    /* Room again after the filler goes. */
    SYS(c_unlink("fill.dat"));
    make_pattern_file("after.dat", 256 * 1024, 63, 1);
    check_pattern_file("after.dat", 256 * 1024, 63);
    check_pattern_file("keep.dat", KEEP_LEN, 61);

    /* And the disk fills up again, to about the same size. */
    SYS(c_unlink("after.dat"));
    off_t second = fill("fill2.dat", 64, chunk, max_mib);
    CHECK(second >= first / 2, "the second fill took only %lld of %lld bytes", (long long)second,
          (long long)first);
    SYS(c_unlink("fill2.dat"));
    check_pattern_file("keep.dat", KEEP_LEN, 61);
    pass();
}
