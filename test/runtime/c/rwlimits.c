/* rwlimits: offsets and lengths a program can pass to read and write that
 * no file can satisfy are refused with Linux's errno before anything is
 * done (rw_verify_area): a negative offset or one whose end passes the
 * largest file offset is EINVAL, for pread/pwrite, preadv/pwritev
 * (preadv at -1 included: only preadv2 gives -1 a meaning) and their
 * "2" forms; copy_file_range ranges that wrap are EOVERFLOW. The file is
 * unchanged afterwards, and the kernel is still up. */
#include "cairn_test.h"
#include <limits.h>

static long raw_preadv(int fd, const struct iovec *iov, int n, long off)
{
    return syscall(SYS_preadv, fd, iov, n, off, 0L);
}

static long raw_pwritev(int fd, const struct iovec *iov, int n, long off)
{
    return syscall(SYS_pwritev, fd, iov, n, off, 0L);
}

#define EXPECT_ERR(call, want)                                                                     \
    do {                                                                                           \
        errno = 0;                                                                                 \
        long r_ = (long)(call);                                                                    \
        CHECK(r_ == -1 && errno == (want), "%s returned %ld errno %d (%s), expected %s", #call,   \
              r_, errno, strerror(errno), #want);                                                  \
    } while (0)

int main(void)
{
    test_init("rwlimits");
    make_pattern_file("f.dat", 3 * PAGE, 21, 0);
    int fd = SYS(open("f.dat", O_RDWR));
    char buf[64];
    memset(buf, 'x', sizeof buf);
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};

    EXPECT_ERR(pwrite(fd, buf, 10, -1), EINVAL);
    EXPECT_ERR(pread(fd, buf, 10, -1), EINVAL);
    EXPECT_ERR(pwrite(fd, buf, 10, LLONG_MIN), EINVAL);
    EXPECT_ERR(raw_pwritev(fd, &iov, 1, -4096), EINVAL);
    EXPECT_ERR(raw_pwritev(fd, &iov, 1, -1), EINVAL);
    EXPECT_ERR(raw_preadv(fd, &iov, 1, -1), EINVAL);
    EXPECT_ERR(raw_preadv(fd, &iov, 1, LLONG_MIN), EINVAL);
    /* The end would pass the largest offset. */
    EXPECT_ERR(pwrite(fd, buf, 10, LLONG_MAX - 5), EINVAL);
    EXPECT_ERR(pread(fd, buf, 10, LLONG_MAX - 5), EINVAL);
    EXPECT_ERR(raw_pwritev(fd, &iov, 1, LLONG_MAX - 5), EINVAL);
    EXPECT_ERR(raw_preadv(fd, &iov, 1, LLONG_MAX - 5), EINVAL);
    EXPECT_ERR(pwritev2(fd, &iov, 1, -2, 0), EINVAL);
    /* At the very end: a read there finds nothing; a write is refused. */
    CHECK(pread(fd, buf, 10, LLONG_MAX - 10) == 0, "pread near the largest offset did not read 0");
    errno = 0;
    CHECK(pwrite(fd, buf, 10, LLONG_MAX - 10) < 0, "pwrite near the largest offset succeeded");
    CHECK(errno == EFBIG || errno == EINVAL, "pwrite near the largest offset: errno %d", errno);
    /* A file offset near the largest one (if the filesystem lets lseek put
     * it there: Linux's ext4 does not, EINVAL): read and write there would
     * pass the largest offset. */
    errno = 0;
    if (lseek(fd, LLONG_MAX - 4, SEEK_SET) == LLONG_MAX - 4) {
        EXPECT_ERR(read(fd, buf, 10), EINVAL);
        EXPECT_ERR(write(fd, buf, 10), EINVAL);
    } else {
        CHECK(errno == EINVAL, "lseek near the largest offset: errno %d", errno);
    }
    /* preadv2 at -1 reads at the file offset (here: 0). */
    SYS(lseek(fd, 0, SEEK_SET));
    CHECK(preadv2(fd, &iov, 1, -1, 0) == (ssize_t)sizeof buf, "preadv2 at -1");
    CHECK(pat_check(buf, sizeof buf, 0, 21) < 0, "preadv2 at -1 read the wrong data");
    CHECK(lseek(fd, 0, SEEK_CUR) == (off_t)sizeof buf, "preadv2 at -1 did not move the offset");

    /* copy_file_range: ranges that wrap copy nothing (cairn: EOVERFLOW;
     * Linux versions differ between that, EFBIG and 0 bytes). */
    int out = SYS(open("g.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    for (int k = 0; k < 2; k++) {
        loff_t in_off = k ? 0 : LLONG_MAX - 5, out_off = k ? LLONG_MAX - 5 : 0;
        errno = 0;
        ssize_t r = copy_file_range(fd, &in_off, out, &out_off, 10, 0);
        CHECK(r == 0 || (r < 0 && (errno == EOVERFLOW || errno == EFBIG || errno == EINVAL)),
              "copy_file_range of a wrapping range (%d) returned %zd errno %d", k, r, errno);
    }
    struct stat st;
    SYS(fstat(out, &st));
    CHECK(st.st_size == 0, "copy_file_range of wrapping ranges wrote %lld bytes",
          (long long)st.st_size);
    SYS(close(out));

    SYS(close(fd));
    check_pattern_file("f.dat", 3 * PAGE, 21);
    make_pattern_file("after.dat", 2 * PAGE, 22, 1);
    check_pattern_file("after.dat", 2 * PAGE, 22);
    pass();
}
