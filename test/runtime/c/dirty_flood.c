/* dirty_flood: a program that writes far more than the guest's memory in
 * small write()s and never calls fsync (a logger, a naive copier) must
 * not exhaust kernel memory: the kernel throttles the writer and writes
 * dirty data back. Writes argv[1] MiB (4x the guest's RAM in the
 * catalogue) in 512-byte writes to one file, then reads it all back and
 * checks every byte. */
#include "cairn_test.h"

#define W 512

int main(int argc, char **argv)
{
    test_init("dirty_flood");
    long mib = arg_long(argc, argv, 1, 512);
    off_t total = (off_t)mib << 20;
    static char buf[64 * 1024];
    int fd = SYS(open("flood.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    double t0 = now_s();
    for (off_t off = 0; off < total; off += W) {
        if (off % (64 * 1024) == 0)
            pat_fill(buf, sizeof buf, (uint64_t)off, 71);
        write_all(fd, buf + off % (64 * 1024), W);
        if (off % (64 << 20) == 0)
            printf("dirty_flood: %lld MiB written\n", (long long)(off >> 20));
    }
    printf("dirty_flood: wrote %ld MiB in %.1f s\n", mib, now_s() - t0);
    for (off_t off = 0; off < total; off += sizeof buf) {
        pread_all(fd, buf, sizeof buf, off);
        long bad = pat_check(buf, sizeof buf, (uint64_t)off, 71);
        CHECK(bad < 0, "wrong data at offset %lld", (long long)(off + bad));
    }
    SYS(close(fd));
    pass();
}
