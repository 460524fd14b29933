/* truncate: ftruncate shrinks and grows (the grown part reads as zeros,
 * including the tail of a page that once held data), O_TRUNC, truncate to
 * zero then a sparse write, and fallocate growing the size. */
#include "cairn_test.h"

static char buf[4 * PAGE];

static void expect_size(int fd, off_t want)
{
    struct stat st;
    SYS(fstat(fd, &st));
    if (st.st_size != want)
        FAIL("size %lld, expected %lld", (long long)st.st_size, (long long)want);
}

int main(void)
{
    test_init("truncate");
    make_pattern_file("t1", 3 * PAGE, 3, 0);
    int fd = SYS(open("t1", O_RDWR));

    /* Shrink into the middle of page 1. */
    SYS(ftruncate(fd, 5000));
    expect_size(fd, 5000);
    CHECK(pread(fd, buf, sizeof buf, 0) == 5000, "read after shrink");
    CHECK(pat_check(buf, 5000 / 4 * 4, 0, 3) < 0, "data kept by the shrink");

    /* Grow again: everything past 5000 reads as zeros. */
    SYS(ftruncate(fd, 3 * PAGE + 100));
    expect_size(fd, 3 * PAGE + 100);
    memset(buf, 0xee, sizeof buf);
    CHECK(pread(fd, buf, sizeof buf, 0) == 3 * PAGE + 100, "read after grow");
    CHECK(pat_check(buf, 5000 / 4 * 4, 0, 3) < 0, "data before the old size");
    for (int i = 5000; i < 3 * PAGE + 100; i++)
        CHECK(buf[i] == 0, "byte %d after regrow is %d (stale data)", i, buf[i]);

    /* Writes after a grow land where they should. */
    pwrite_all(fd, "xyz", 3, 3 * PAGE + 100);
    expect_size(fd, 3 * PAGE + 103);

    /* Truncate to zero, then a sparse write far away. */
    SYS(ftruncate(fd, 0));
    expect_size(fd, 0);
    CHECK(pread(fd, buf, 10, 0) == 0, "read of an empty file");
    pwrite_all(fd, "far", 3, 1 << 20);
    expect_size(fd, (1 << 20) + 3);
    CHECK(pread(fd, buf, sizeof buf, 8192) == sizeof buf, "read in the hole");
    for (size_t i = 0; i < sizeof buf; i++)
        CHECK(buf[i] == 0, "hole byte %zu", i);
    close(fd);

    /* O_TRUNC on open. */
    fd = SYS(open("t1", O_RDWR | O_TRUNC));
    expect_size(fd, 0);

    /* fallocate (mode 0) grows the size with zeros. */
    SYS(fallocate(fd, 0, 0, 3 * PAGE));
    expect_size(fd, 3 * PAGE);
    CHECK(pread(fd, buf, sizeof buf, 0) == 3 * PAGE, "read after fallocate");
    for (int i = 0; i < 3 * PAGE; i++)
        CHECK(buf[i] == 0, "fallocated byte %d", i);
    close(fd);

    /* Sizes persist across close and reopen. */
    fd = SYS(open("t1", O_RDONLY));
    expect_size(fd, 3 * PAGE);
    close(fd);
    pass();
}
