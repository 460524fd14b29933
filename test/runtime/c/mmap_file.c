/* mmap_file: shared and private file mappings. Shared writes are seen by
 * read() and write()s are seen through the mapping; private writes are
 * seen by nobody else; msync'd and fsync'd shared writes persist, which
 * the second boot checks (first boot exits ST_FIRST_BOOT = 42). */
#include "cairn_test.h"

#define M1_PAGES 4
#define M2_PAGES 16

static void first_boot(void)
{
    static char buf[M2_PAGES * PAGE];

    /* m1: shared mapping over data written with write(). */
    make_pattern_file("m1.dat", M1_PAGES * PAGE, 5, 0);
    int fd = SYS(open("m1.dat", O_RDWR));
    char *s = SYSP(mmap(NULL, M1_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    CHECK(pat_check(s, M1_PAGES * PAGE, 0, 5) < 0, "shared mapping shows the written data");

    /* A store through the mapping is seen by read(). */
    memcpy(s + PAGE + 10, "SHARED-STORE", 12);
    CHECK(pread(fd, buf, 12, PAGE + 10) == 12 && !memcmp(buf, "SHARED-STORE", 12),
          "read() does not see a shared store");

    /* A write() is seen through the mapping. */
    pwrite_all(fd, "WRITE-SYSCALL", 13, 2 * PAGE + 100);
    CHECK(!memcmp(s + 2 * PAGE + 100, "WRITE-SYSCALL", 13), "mapping does not see write()");

    /* A second shared mapping (at an offset) sees the same pages. */
    char *s2 = SYSP(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, PAGE));
    CHECK(!memcmp(s2 + 10, "SHARED-STORE", 12), "second shared mapping");
    SYS(munmap(s2, PAGE));

    /* A private mapping: its stores stay private. */
    char *p = SYSP(mmap(NULL, M1_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
    CHECK(!memcmp(p + PAGE + 10, "SHARED-STORE", 12), "private mapping shows the file");
    memcpy(p + 3 * PAGE, "PRIVATE-STORE", 13);
    CHECK(pread(fd, buf, 13, 3 * PAGE) == 13 && memcmp(buf, "PRIVATE-STORE", 13) != 0,
          "a private store reached the file");
    CHECK(memcmp(s + 3 * PAGE, "PRIVATE-STORE", 13) != 0, "a private store reached a shared map");
    CHECK(pat_check(s + 3 * PAGE, PAGE, 3 * PAGE, 5) < 0, "shared page 3 changed");
    SYS(msync(p, M1_PAGES * PAGE, MS_SYNC));
    SYS(munmap(p, M1_PAGES * PAGE));

    /* mprotect to read-only keeps the contents. */
    SYS(mprotect(s, M1_PAGES * PAGE, PROT_READ));
    CHECK(!memcmp(s + PAGE + 10, "SHARED-STORE", 12), "after mprotect");
    SYS(mprotect(s, M1_PAGES * PAGE, PROT_READ | PROT_WRITE));
    memcpy(s, "FSYNCED-STORE", 13);
    /* fsync writes back dirty mapped pages of the file. */
    SYS(fsync(fd));
    SYS(munmap(s, M1_PAGES * PAGE));
    close(fd);

    /* A read-only descriptor cannot be mapped shared and writable. */
    fd = SYS(open("m1.dat", O_RDONLY));
    errno = 0;
    CHECK(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED &&
              errno == EACCES,
          "writable shared map of an O_RDONLY fd");
    close(fd);

    /* m2: made with ftruncate, written only through a mapping, msync'd. */
    fd = SYS(open("m2.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    SYS(ftruncate(fd, M2_PAGES * PAGE));
    uint32_t *w = SYSP(mmap(NULL, M2_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    for (int i = 0; i < M2_PAGES * PAGE / 4; i++)
        CHECK(w[i] == 0, "fresh mapping of a truncated file is not zero at word %d", i);
    pat_fill(w, M2_PAGES * PAGE, 0, 9);
    SYS(msync(w, M2_PAGES * PAGE, MS_SYNC));
    pread_all(fd, buf, M2_PAGES * PAGE, 0);
    CHECK(pat_check(buf, M2_PAGES * PAGE, 0, 9) < 0, "read() after msync");
    SYS(munmap(w, M2_PAGES * PAGE));
    close(fd);

    /* m3: private stores and msync do not reach the file. */
    make_pattern_file("m3.dat", 2 * PAGE, 13, 1);
    fd = SYS(open("m3.dat", O_RDWR));
    p = SYSP(mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
    memset(p, 0x77, 2 * PAGE);
    SYS(msync(p, 2 * PAGE, MS_SYNC));
    SYS(munmap(p, 2 * PAGE));
    SYS(fsync(fd));
    close(fd);
    check_pattern_file("m3.dat", 2 * PAGE, 13);

    /* m4: a shared mapping of a cached file with holes punched into it
     * after mmap: page 2 replaced by anonymous memory, page 4 by the same
     * file at offset 0. The first fault maps the cached pages around it,
     * but only where this file at this offset is still mapped. */
    make_pattern_file("m4.dat", 8 * PAGE, 17, 0);
    fd = SYS(open("m4.dat", O_RDWR));
    char *m = SYSP(mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    (void)SYSP(mmap(m + 2 * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
              -1, 0));
    (void)SYSP(mmap(m + 4 * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0));
    CHECK(pat_check(m, PAGE, 0, 17) < 0, "m4 page 0");
    for (int i = 0; i < PAGE; i++)
        CHECK(m[2 * PAGE + i] == 0, "anonymous page inside a file mapping shows %d at %d",
              m[2 * PAGE + i], i);
    CHECK(pat_check(m + 4 * PAGE, PAGE, 0, 17) < 0, "page 4 does not show file offset 0");
    for (int i = 1; i < 8; i++)
        if (i != 2 && i != 4)
            CHECK(pat_check(m + i * PAGE, PAGE, (uint64_t)i * PAGE, 17) < 0, "m4 page %d", i);
    /* A store to a page first mapped read-only by map-around reaches the
     * file. */
    memcpy(m + 5 * PAGE + 8, "AROUND", 6);
    CHECK(pread(fd, buf, 6, 5 * PAGE + 8) == 6 && !memcmp(buf, "AROUND", 6),
          "a store to a mapped-around page is not seen by read()");
    SYS(munmap(m, 8 * PAGE));
    close(fd);

    fd = SYS(open("mmap.marker", O_CREAT | O_EXCL | O_WRONLY, 0644));
    SYS(fsync(fd));
    close(fd);
    fsync_dir(".");
    first_boot_done();
}

static void second_boot(void)
{
    static char buf[M1_PAGES * PAGE];
    check_pattern_file("m2.dat", M2_PAGES * PAGE, 9);
    check_pattern_file("m3.dat", 2 * PAGE, 13);
    int fd = SYS(open("m1.dat", O_RDONLY));
    pread_all(fd, buf, sizeof buf, 0);
    CHECK(!memcmp(buf, "FSYNCED-STORE", 13), "fsync'd shared store lost");
    CHECK(!memcmp(buf + PAGE + 10, "SHARED-STORE", 12), "shared store lost");
    CHECK(!memcmp(buf + 2 * PAGE + 100, "WRITE-SYSCALL", 13), "write() lost");
    CHECK(pat_check(buf + 3 * PAGE, PAGE, 3 * PAGE, 5) < 0, "page 3 changed");
    /* And through a fresh mapping. */
    uint32_t *w;
    int fd2 = SYS(open("m2.dat", O_RDONLY));
    w = SYSP(mmap(NULL, M2_PAGES * PAGE, PROT_READ, MAP_SHARED, fd2, 0));
    CHECK(pat_check(w, M2_PAGES * PAGE, 0, 9) < 0, "m2 through a mapping");
    SYS(munmap(w, M2_PAGES * PAGE));
    close(fd2);
    close(fd);
    printf("mmap_file: second boot found the msync'd and fsync'd data\n");
    pass();
}

int main(void)
{
    test_init("mmap_file");
    if (file_exists("mmap.marker"))
        second_boot();
    first_boot();
}
