/* bigfile: a 64 MiB sequential write in 1 MiB pieces, fsync, and a
 * sequential read-back that checks every byte. */
#include "cairn_test.h"

#define MIB (1 << 20)

int main(int argc, char **argv)
{
    test_init("bigfile");
    long mib = arg_long(argc, argv, 1, 64);
    char *buf = malloc(MIB);
    CHECK(buf != NULL, "malloc");
    double t0 = now_s();
    int fd = SYS(open("big.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    for (long i = 0; i < mib; i++) {
        pat_fill(buf, MIB, (uint64_t)i * MIB, 77);
        write_all(fd, buf, MIB);
    }
    SYS(fsync(fd));
    double t1 = now_s();
    SYS(close(fd));
    fd = SYS(open("big.dat", O_RDONLY));
    struct stat st;
    SYS(fstat(fd, &st));
    CHECK(st.st_size == mib * MIB, "size %lld", (long long)st.st_size);
    for (long i = 0; i < mib; i++) {
        ssize_t got = 0;
        while (got < MIB) {
            ssize_t n = read(fd, buf + got, (size_t)(MIB - got));
            CHECK(n > 0, "read at %ld MiB returned %zd", i, n);
            got += n;
        }
        long bad = pat_check(buf, MIB, (uint64_t)i * MIB, 77);
        CHECK(bad < 0, "wrong data at offset %lld", (long long)i * MIB + bad);
    }
    CHECK(read(fd, buf, 1) == 0, "data past the end");
    double t2 = now_s();
    close(fd);
    printf("bigfile: %ld MiB written+fsync'd in %.2f s, read back in %.2f s\n", mib, t1 - t0,
           t2 - t1);
    pass();
}
