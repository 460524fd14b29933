/* dio: O_DIRECT as a database or a benchmark uses it, in two boots.
 *
 * Boot 1: statx reports STATX_DIOALIGN; O_DIRECT shows in F_GETFL;
 * a direct write replaces what a buffered reader had cached (the next
 * buffered read sees it); a direct read sees buffered writes not yet
 * written back; misaligned buffer, offset or length is EINVAL; a direct
 * read stops at the end of the file and reads holes as zeros; a direct
 * write past the end grows the file; a buffer in a shared file mapping
 * works (also past cairn's bounce buffer); large buffers of scattered
 * pages round-trip (also past cairn's pin window); on cairn a
 * direct read fills no pagecache page (/proc/cairn/kstats). fdatasync;
 * exits 42.
 * Boot 2: everything written directly is there, read directly and
 * buffered. Exits 0.
 */
#include "cairn_test.h"
#include <linux/stat.h>
#include <sys/syscall.h>

#define K 1024
#define M (1024 * 1024)
#define BIG (4 * M)
#define HUGE (12 * M)

static size_t align = 512;

static void *aligned(size_t len)
{
    void *p = NULL;
    CHECK(posix_memalign(&p, 4096, len) == 0, "posix_memalign");
    return p;
}

static void check_dioalign(void)
{
    struct statx stx;
    SYS((int)syscall(SYS_statx, AT_FDCWD, "dio.dat", 0, STATX_BASIC_STATS | STATX_DIOALIGN, &stx));
    int cairn = access("/proc/cairn/kstats", R_OK) == 0;
    if (!(stx.stx_mask & STATX_DIOALIGN)) {
        CHECK(!cairn, "statx without STATX_DIOALIGN");
        printf("dio: statx has no STATX_DIOALIGN here; alignment 512 assumed\n");
        return;
    }
    CHECK(stx.stx_dio_mem_align > 0 && stx.stx_dio_offset_align > 0, "dio align %u %u",
          stx.stx_dio_mem_align, stx.stx_dio_offset_align);
    if (cairn)
        CHECK(stx.stx_dio_mem_align == 512 && stx.stx_dio_offset_align == 512, "dio align %u %u",
              stx.stx_dio_mem_align, stx.stx_dio_offset_align);
    align = stx.stx_dio_offset_align > stx.stx_dio_mem_align ? stx.stx_dio_offset_align
                                                            : stx.stx_dio_mem_align;
    CHECK(align <= 4096, "alignment %zu", align);
}

static void expect_pattern(const char *buf, size_t len, uint64_t off, uint32_t seed, const char *what)
{
    long bad = pat_check(buf, len, off, seed);
    CHECK(bad < 0, "%s: byte %ld differs (seed %u)", what, bad, seed);
}

static void expect_zero(const char *buf, size_t len, const char *what)
{
    for (size_t i = 0; i < len; i++)
        CHECK(buf[i] == 0, "%s: byte %zu is %d, want 0", what, i, buf[i]);
}

static void first_boot(void)
{
    int bfd = SYS(open("dio.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    check_dioalign();
    int dfd = SYS(open("dio.dat", O_RDWR | O_DIRECT));
    CHECK(SYS(fcntl(dfd, F_GETFL)) & O_DIRECT, "F_GETFL lacks O_DIRECT");
    char *buf = aligned(BIG), *back = aligned(BIG);

    /* A buffered reader caches version 1; a direct write of version 2
     * must be what it reads next. */
    pat_fill(buf, 64 * K, 0, 1);
    pwrite_all(bfd, buf, 64 * K, 0);
    SYS(fsync(bfd));
    pread_all(bfd, back, 64 * K, 0);
    expect_pattern(back, 64 * K, 0, 1, "buffered read of version 1");
    pat_fill(buf, 64 * K, 0, 2);
    CHECK(SYS(pwrite(dfd, buf, 64 * K, 0)) == 64 * K, "direct write short");
    pread_all(bfd, back, 64 * K, 0);
    expect_pattern(back, 64 * K, 0, 2, "buffered read after a direct write");

    /* Buffered version 3 of the first 32K, not written back: a direct
     * read sees it. */
    pat_fill(buf, 32 * K, 0, 3);
    pwrite_all(bfd, buf, 32 * K, 0);
    memset(back, 0xee, 64 * K);
    CHECK(SYS(pread(dfd, back, 64 * K, 0)) == 64 * K, "direct read short");
    expect_pattern(back, 32 * K, 0, 3, "direct read of dirty buffered data");
    expect_pattern(back + 32 * K, 32 * K, 32 * K, 2, "direct read of direct data");

    /* Misalignment: EINVAL, nothing moved. */
    errno = 0;
    CHECK(pread(dfd, back + 1, 4096, 0) == -1 && errno == EINVAL, "misaligned buffer");
    errno = 0;
    CHECK(pwrite(dfd, buf, 4096, 100) == -1 && errno == EINVAL, "misaligned offset");
    errno = 0;
    CHECK(pwrite(dfd, buf, 1000, 0) == -1 && errno == EINVAL, "misaligned length");
    /* Aligned to the block size but not to a page: fine. */
    pat_fill(buf + align, 4096, 64 * K, 4);
    CHECK(SYS(pwrite(dfd, buf + align, 4096, 64 * K)) == 4096, "sub-page-aligned write");
    CHECK(SYS(pread(dfd, back + align, 4096, 64 * K)) == 4096, "sub-page-aligned read");
    expect_pattern(back + align, 4096, 64 * K, 4, "sub-page-aligned round trip");

    /* Past the end: a hole, then direct data at 1 MiB; the file grows. */
    pat_fill(buf, M, M, 5);
    CHECK(SYS(pwrite(dfd, buf, M, M)) == M, "direct write at 1 MiB");
    struct stat st;
    SYS(fstat(bfd, &st));
    CHECK(st.st_size == 2 * M, "size %ld after a direct write past the end", (long)st.st_size);
    /* A buffered reader of the same file (which had read it before, at
     * its old length) sees the grown file. */
    CHECK(SYS(pread(bfd, back, 8192, 2 * M - 4096)) == 4096,
          "buffered read across the new end after a direct write grew the file");
    expect_pattern(back, 4096, 2 * M - 4096, 5, "buffered read of direct data past the old end");
    /* On cairn, a direct read fills no pagecache page. */
    struct kstats k0, k1;
    int cairn = kstats_read(&k0) == 0;
    CHECK(SYS(pread(dfd, back, M, 68 * K)) == M, "direct read over the hole");
    if (cairn) {
        kstats_read(&k1);
        CHECK(kstat(&k1, "pagecache.fills") == kstat(&k0, "pagecache.fills") &&
                  kstat(&k1, "pagecache.read_requests") == kstat(&k0, "pagecache.read_requests"),
              "a direct read went through the pagecache (fills %lld -> %lld)",
              kstat(&k0, "pagecache.fills"), kstat(&k1, "pagecache.fills"));
    }
    expect_zero(back, M - 68 * K, "the hole");
    expect_pattern(back + M - 68 * K, 68 * K, M, 5, "data after the hole");
    CHECK(SYS(pread(dfd, back, 4096, 2 * M)) == 0, "direct read at the end");
    CHECK(SYS(pread(dfd, back, 8192, 2 * M - 4096)) == 4096, "direct read across the end");

    /* A file whose length is not a block multiple: the read is short. */
    int sfd = SYS(open("short.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    pat_fill(buf, 1000, 0, 6);
    pwrite_all(sfd, buf, 1000, 0);
    int sdfd = SYS(open("short.dat", O_RDONLY | O_DIRECT));
    memset(back, 0xee, 4096);
    CHECK(SYS(pread(sdfd, back, 4096, 0)) == 1000, "direct read of a 1000-byte file");
    expect_pattern(back, 1000, 0, 6, "short file");
    SYS(close(sdfd));
    SYS(close(sfd));

    /* The user buffer is a shared mapping of another file. */
    int mfd = SYS(open("map.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    SYS(ftruncate(mfd, 64 * K));
    char *map = SYSP(mmap(NULL, 64 * K, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0));
    CHECK(SYS(pread(dfd, map, 64 * K, M)) == 64 * K, "direct read into a shared mapping");
    expect_pattern(map, 64 * K, M, 5, "direct read into a shared mapping");
    pat_fill(map, 64 * K, 3 * M, 7);
    CHECK(SYS(pwrite(dfd, map, 64 * K, 3 * M)) == 64 * K, "direct write from a shared mapping");
    SYS(munmap(map, 64 * K));
    SYS(close(mfd));

    /* A large buffer (many pages, scattered physically). */
    char *big = malloc(BIG + 4096);
    char *bigp = (char *)(((uintptr_t)big + 4095) & ~(uintptr_t)4095);
    pat_fill(bigp, BIG, 4 * M, 8);
    CHECK(SYS(pwrite(dfd, bigp, BIG, 4 * M)) == BIG, "large direct write");
    memset(bigp, 0, BIG);
    CHECK(SYS(pread(dfd, bigp, BIG, 4 * M)) == BIG, "large direct read");
    expect_pattern(bigp, BIG, 4 * M, 8, "large direct round trip");
    free(big);

    /* Larger than cairn pins at once (8 MiB): several windows. */
    char *huge = malloc(HUGE + 4096);
    char *hugep = (char *)(((uintptr_t)huge + 4095) & ~(uintptr_t)4095);
    pat_fill(hugep, HUGE, 8 * M, 9);
    CHECK(SYS(pwrite(dfd, hugep, HUGE, 8 * M)) == HUGE, "12 MiB direct write");
    memset(hugep, 0, HUGE);
    CHECK(SYS(pread(dfd, hugep, HUGE, 8 * M)) == HUGE, "12 MiB direct read");
    expect_pattern(hugep, HUGE, 8 * M, 9, "12 MiB direct round trip");
    free(huge);

    /* A shared mapping larger than cairn's bounce buffer (256 KiB). */
    mfd = SYS(open("map2.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    SYS(ftruncate(mfd, 1024 * K));
    map = SYSP(mmap(NULL, 1024 * K, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0));
    CHECK(SYS(pread(dfd, map, 1024 * K, 8 * M)) == 1024 * K, "1 MiB direct read into a mapping");
    expect_pattern(map, 1024 * K, 8 * M, 9, "1 MiB direct read into a mapping");
    SYS(munmap(map, 1024 * K));
    SYS(close(mfd));

    SYS(fdatasync(dfd));
    SYS(close(dfd));
    SYS(close(bfd));
    int fd = SYS(open("dio.marker", O_CREAT | O_WRONLY, 0644));
    SYS(fsync(fd));
    SYS(close(fd));
    fsync_dir(".");
    first_boot_done();
}

static void check_all(int fd, const char *how)
{
    char *back = aligned(BIG);
    char what[64];
    snprintf(what, sizeof what, "%s after reboot", how);
    CHECK(SYS(pread(fd, back, 64 * K, 0)) == 64 * K, "%s", what);
    expect_pattern(back, 32 * K, 0, 3, what);
    expect_pattern(back + 32 * K, 32 * K, 32 * K, 2, what);
    CHECK(SYS(pread(fd, back, 4096, 64 * K)) == 4096, "%s", what);
    expect_pattern(back, 4096, 64 * K, 4, what);
    CHECK(SYS(pread(fd, back, M, M)) == M, "%s", what);
    expect_pattern(back, M, M, 5, what);
    CHECK(SYS(pread(fd, back, 64 * K, 3 * M)) == 64 * K, "%s", what);
    expect_pattern(back, 64 * K, 3 * M, 7, what);
    CHECK(SYS(pread(fd, back, BIG, 4 * M)) == BIG, "%s", what);
    expect_pattern(back, BIG, 4 * M, 8, what);
    for (int i = 0; i < 3; i++) {
        CHECK(SYS(pread(fd, back, BIG, 8 * M + i * BIG)) == BIG, "%s", what);
        expect_pattern(back, BIG, 8 * M + (uint64_t)i * BIG, 9, what);
    }
    free(back);
}

static void second_boot(void)
{
    struct stat st;
    SYS(stat("dio.dat", &st));
    CHECK(st.st_size == 20 * M, "size %ld after reboot, want %d", (long)st.st_size, 20 * M);
    int dfd = SYS(open("dio.dat", O_RDONLY | O_DIRECT));
    check_all(dfd, "direct");
    SYS(close(dfd));
    int bfd = SYS(open("dio.dat", O_RDONLY));
    check_all(bfd, "buffered");
    SYS(close(bfd));
    pass();
}

int main(void)
{
    test_init("dio");
    if (file_exists("dio.marker"))
        second_boot();
    else
        first_boot();
    return 0;
}
