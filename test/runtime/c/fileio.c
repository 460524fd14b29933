/* fileio: read, write, O_APPEND, pread, pwrite, readv, writev, lseek,
 * fstat, holes, partial-page overwrites, fd duplication and the errors of
 * the common misuses. */
#include "cairn_test.h"

static char a[3 * PAGE + 123], b[sizeof a];

int main(void)
{
    test_init("fileio");
    struct stat st;
    int fd = SYS(open("f1", O_CREAT | O_EXCL | O_RDWR, 0644));

    /* Sequential write, offset, size, read back. */
    pat_fill(a, sizeof a, 0, 1);
    write_all(fd, a, sizeof a);
    CHECK(lseek(fd, 0, SEEK_CUR) == (off_t)sizeof a, "offset after write");
    SYS(fstat(fd, &st));
    CHECK(st.st_size == (off_t)sizeof a, "size %lld", (long long)st.st_size);
    CHECK(S_ISREG(st.st_mode), "mode %o", st.st_mode);
    CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek set");
    CHECK(read(fd, b, sizeof b) == (ssize_t)sizeof b, "read back");
    CHECK(memcmp(a, b, sizeof a) == 0, "read data");
    CHECK(read(fd, b, 10) == 0, "read at EOF must return 0");
    CHECK(lseek(fd, -100, SEEK_END) == (off_t)sizeof a - 100, "lseek end");
    CHECK(read(fd, b, 1000) == 100, "short read at the tail");
    CHECK(memcmp(b, a + sizeof a - 100, 100) == 0, "tail data");

    /* Partial-page overwrite across a page boundary. */
    memset(b, 0x5a, 5000);
    pwrite_all(fd, b, 5000, 4000);
    memset(a + 4000, 0x5a, 5000);
    static char c[48 * 1024];
    pread_all(fd, c, sizeof a, 0);
    CHECK(memcmp(a, c, sizeof a) == 0, "data after a partial overwrite");

    /* pread/pwrite leave the offset alone; pwrite past EOF makes a hole. */
    off_t cur = lseek(fd, 77, SEEK_SET);
    CHECK(cur == 77, "lseek 77");
    pwrite_all(fd, "tail", 4, 40000);
    CHECK(lseek(fd, 0, SEEK_CUR) == 77, "pwrite moved the offset");
    SYS(fstat(fd, &st));
    CHECK(st.st_size == 40004, "size after pwrite past EOF: %lld", (long long)st.st_size);
    pread_all(fd, c, 40004 - sizeof a, sizeof a);
    for (size_t i = 0; i < 40000 - sizeof a; i++)
        CHECK(c[i] == 0, "hole byte %zu is %d", i, c[i]);
    CHECK(memcmp(c + 40000 - sizeof a, "tail", 4) == 0, "data after the hole");
    CHECK(lseek(fd, 0, SEEK_CUR) == 77, "pread moved the offset");

    /* writev / readv with three buffers. */
    char v1[10], v2[PAGE + 1], v3[333];
    memset(v1, 1, sizeof v1);
    memset(v2, 2, sizeof v2);
    memset(v3, 3, sizeof v3);
    struct iovec iov[3] = {{v1, sizeof v1}, {v2, sizeof v2}, {v3, sizeof v3}};
    int fd2 = SYS(open("f2", O_CREAT | O_TRUNC | O_RDWR, 0600));
    CHECK(writev(fd2, iov, 3) == (ssize_t)(sizeof v1 + sizeof v2 + sizeof v3), "writev");
    memset(v1, 0, sizeof v1);
    memset(v2, 0, sizeof v2);
    memset(v3, 0, sizeof v3);
    SYS(lseek(fd2, 0, SEEK_SET));
    CHECK(readv(fd2, iov, 3) == (ssize_t)(sizeof v1 + sizeof v2 + sizeof v3), "readv");
    for (size_t i = 0; i < sizeof v2; i++)
        CHECK(v2[i] == 2 && (i >= sizeof v1 || v1[i] == 1) && (i >= sizeof v3 || v3[i] == 3),
              "readv data at %zu", i);

    /* O_APPEND writes go to the end whatever the offset. */
    int fa = SYS(open("f2", O_WRONLY | O_APPEND));
    SYS(lseek(fa, 0, SEEK_SET));
    write_all(fa, "APPENDED", 8);
    SYS(fstat(fa, &st));
    CHECK(st.st_size == (off_t)(sizeof v1 + sizeof v2 + sizeof v3 + 8), "size after append");
    pread_all(fd2, c, 8, st.st_size - 8);
    CHECK(memcmp(c, "APPENDED", 8) == 0, "appended data");
    close(fa);

    /* fd duplication (fcntl F_DUPFD, dup3) shares the offset. */
    int d1 = SYS(fcntl(fd2, F_DUPFD, 10));
    CHECK(d1 >= 10, "F_DUPFD gave %d", d1);
    int d2 = SYS(dup3(fd2, 20, O_CLOEXEC));
    CHECK(d2 == 20, "dup3 gave %d", d2);
    CHECK(fcntl(d2, F_GETFD) == FD_CLOEXEC, "dup3 O_CLOEXEC");
    SYS(lseek(d1, 5, SEEK_SET));
    CHECK(lseek(d2, 0, SEEK_CUR) == 5, "duplicates share the offset");
    CHECK((fcntl(fd2, F_GETFL) & O_ACCMODE) == O_RDWR, "F_GETFL");
    close(d1);
    close(d2);

    /* Data survives close and reopen. */
    close(fd);
    fd = SYS(open("f1", O_RDONLY));
    pread_all(fd, c, sizeof a, 0);
    CHECK(memcmp(a, c, sizeof a) == 0, "data after reopen");

    /* Errors. */
    errno = 0;
    CHECK(write(fd, "x", 1) == -1 && errno == EBADF, "write on O_RDONLY must fail with EBADF");
    errno = 0;
    CHECK(open("f1", O_CREAT | O_EXCL | O_RDWR, 0644) == -1 && errno == EEXIST, "O_EXCL");
    errno = 0;
    CHECK(open("no-such-file", O_RDONLY) == -1 && errno == ENOENT, "ENOENT");
    errno = 0;
    CHECK(read(12345, c, 1) == -1 && errno == EBADF, "read on a bad fd");
    errno = 0;
    CHECK(lseek(fd, -1, SEEK_SET) == -1 && errno == EINVAL, "negative lseek");
    errno = 0;
    void *volatile bad_ptr = (void *)16;
    CHECK(read(fd, bad_ptr, 10) == -1 && errno == EFAULT, "read into a bad pointer");
    /* A buffer running into an unmapped page: the read stops exactly at
     * the first unreachable byte (an odd start, so no word copy lines up
     * with the page end) and reports what it copied. */
    char *two = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(two != MAP_FAILED, "mmap two pages");
    SYS(munmap(two + PAGE, PAGE));
    ssize_t part = pread(fd, two + 3, 6000, 0);
    CHECK(part == PAGE - 3, "read across into an unmapped page returned %zd, not %d", part,
          PAGE - 3);
    CHECK(memcmp(two + 3, a, PAGE - 3) == 0, "data of the partial read");
    SYS(munmap(two, PAGE));
    SYS(close(fd));
    errno = 0;
    CHECK(close(fd) == -1 && errno == EBADF, "double close");
    close(fd2);

    /* Opening past the descriptor limit fails with EMFILE (the refused
     * file is released without deadlocking the fd table against the
     * filesystem), and the descriptors all close again. */
    static int fds[70000];
    int n = 0;
    for (;;) {
        CHECK(n < (int)(sizeof fds / sizeof fds[0]), "no EMFILE after %d opens", n);
        int f = open("f1", O_RDONLY);
        if (f < 0) {
            CHECK(errno == EMFILE, "open %d failed with errno %d, not EMFILE", n, errno);
            break;
        }
        fds[n++] = f;
    }
    CHECK(n > 100, "EMFILE after only %d opens", n);
    for (int i = 0; i < n; i++)
        SYS(close(fds[i]));
    SYS(close(SYS(open("f1", O_RDONLY))));
    pass();
}
