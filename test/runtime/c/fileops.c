/* fileops: the file system calls a database, a package manager or a
 * benchmark meets beyond read and write, in two boots of one image.
 *
 * Boot 1: creat (write-only, truncates); the legacy getdents
 * (struct linux_dirent, d_type in the last byte of each record);
 * renameat2 RENAME_NOREPLACE (EEXIST, target untouched) and
 * RENAME_EXCHANGE (two files across directories, a file with a
 * directory; ENOENT without a target, EINVAL with both flags);
 * fallocate PUNCH_HOLE|KEEP_SIZE (zeros read back, the length kept,
 * SEEK_HOLE finds the hole, fewer blocks) and ZERO_RANGE (with and
 * without KEEP_SIZE), EOPNOTSUPP for a punch without KEEP_SIZE and for
 * UNSHARE_RANGE; lseek SEEK_DATA/SEEK_HOLE over a sparse file whose data
 * is still dirty (and a preallocated, unwritten range, a hole), then
 * after fsync, ENXIO at and past the end;
 * posix_fadvise DONTNEED drops the cached pages so that the next read
 * goes to the device (on cairn: /proc/cairn/kstats pagecache.fills
 * rises, and does not on a re-read without it; on Linux: mincore of a
 * mapping shows the pages gone). Everything is fsync'd; exits 42.
 * Boot 2: the exchanged names, the punched and zeroed files are as boot
 * 1 left them (TFS log replay). Exits 0.
 */
#include "cairn_test.h"
#include <dirent.h>
#include <sys/syscall.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE 2
#endif
#ifndef SEEK_DATA
#define SEEK_DATA 3
#define SEEK_HOLE 4
#endif
#define FL_KEEP_SIZE 0x01
#define FL_PUNCH_HOLE 0x02
#define FL_ZERO_RANGE 0x10
#define FL_UNSHARE_RANGE 0x40

#define PUNCH_LEN 65536
#define PUNCH_OFF 8292   /* 8192 + 100: a partial page first */
#define PUNCH_END 40000  /* a partial page last */
#define ZERO_LEN 32768
#define ZERO_OFF 5000
#define ZERO_END 20000

static int on_cairn(void)
{
    return access("/proc/cairn/kstats", R_OK) == 0;
}

static long renameat2_(const char *a, const char *b, unsigned flags)
{
    return syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags);
}

static void put_file(const char *path, const char *text)
{
    int fd = SYS(open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644));
    write_all(fd, text, strlen(text));
    SYS(fsync(fd));
    SYS(close(fd));
}

static void check_file(const char *path, const char *text)
{
    char buf[128] = {0};
    int fd = SYS(open(path, O_RDONLY));
    ssize_t n = SYS(read(fd, buf, sizeof buf - 1));
    SYS(close(fd));
    CHECK((size_t)n == strlen(text) && memcmp(buf, text, (size_t)n) == 0, "%s holds '%s', want '%s'",
          path, buf, text);
}

static void test_creat(void)
{
    put_file("creat.dat", "old contents, longer");
    int fd = SYS(creat("creat.dat", 0644));
    struct stat st;
    SYS(fstat(fd, &st));
    CHECK(st.st_size == 0, "creat did not truncate: size %ld", (long)st.st_size);
    char c;
    errno = 0;
    CHECK(read(fd, &c, 1) == -1 && errno == EBADF, "read from a creat descriptor worked");
    write_all(fd, "new", 3);
    SYS(close(fd));
    check_file("creat.dat", "new");
    fd = SYS(creat("creat2.dat", 0600));
    SYS(close(fd));
    CHECK(file_exists("creat2.dat"), "creat made no file");
}

/* The legacy getdents: every record's d_type is its last byte. */
struct linux_dirent {
    unsigned long d_ino;
    unsigned long d_off;
    unsigned short d_reclen;
    char d_name[];
};

static void test_getdents(void)
{
    SYS(c_mkdir("gd"));
    put_file("gd/file", "x");
    SYS(c_mkdir("gd/sub"));
    SYS(symlink("file", "gd/link"));
    int fd = SYS(open("gd", O_RDONLY | O_DIRECTORY));
    /* A small buffer: several calls, each resuming where the last ended. */
    char buf[64];
    int seen_file = 0, seen_sub = 0, seen_link = 0, seen_dot = 0, total = 0;
    for (;;) {
        long n = syscall(SYS_getdents, fd, buf, sizeof buf);
        CHECK(n >= 0, "getdents");
        if (n == 0)
            break;
        for (long pos = 0; pos < n;) {
            struct linux_dirent *d = (struct linux_dirent *)(buf + pos);
            CHECK(d->d_reclen >= 20 && d->d_reclen % 8 == 0 && pos + d->d_reclen <= n,
                  "bad d_reclen %u", d->d_reclen);
            unsigned char type = (unsigned char)buf[pos + d->d_reclen - 1];
            CHECK(d->d_ino != 0, "d_ino 0 for %s", d->d_name);
            if (strcmp(d->d_name, "file") == 0) {
                seen_file++;
                CHECK(type == DT_REG, "file d_type %u", type);
            } else if (strcmp(d->d_name, "sub") == 0) {
                seen_sub++;
                CHECK(type == DT_DIR, "sub d_type %u", type);
            } else if (strcmp(d->d_name, "link") == 0) {
                seen_link++;
                CHECK(type == DT_LNK, "link d_type %u", type);
            } else if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) {
                seen_dot++;
                CHECK(type == DT_DIR, "%s d_type %u", d->d_name, type);
            } else {
                FAIL("unexpected entry '%s'", d->d_name);
            }
            total++;
            pos += d->d_reclen;
        }
    }
    CHECK(seen_file == 1 && seen_sub == 1 && seen_link == 1 && seen_dot == 2 && total == 5,
          "listing: file %d sub %d link %d dots %d total %d", seen_file, seen_sub, seen_link,
          seen_dot, total);
    /* A buffer too small for one record: EINVAL. */
    SYS(lseek(fd, 0, SEEK_SET));
    errno = 0;
    CHECK(syscall(SYS_getdents, fd, buf, 8) == -1 && errno == EINVAL, "tiny getdents buffer");
    SYS(close(fd));
}

static void test_rename(void)
{
    SYS(c_mkdir("ex"));
    SYS(c_mkdir("ey"));
    put_file("ex/a", "contents of a");
    put_file("ey/b", "contents of b");
    /* NOREPLACE: an existing target is refused and left alone. */
    errno = 0;
    CHECK(renameat2_("ex/a", "ey/b", RENAME_NOREPLACE) == -1 && errno == EEXIST,
          "RENAME_NOREPLACE over a file");
    check_file("ey/b", "contents of b");
    check_file("ex/a", "contents of a");
    put_file("ex/n", "noreplace");
    SYS(renameat2_("ex/n", "ey/n2", RENAME_NOREPLACE));
    check_file("ey/n2", "noreplace");
    CHECK(!file_exists("ex/n"), "ex/n still there");
    /* EXCHANGE needs both names; not with NOREPLACE. */
    errno = 0;
    CHECK(renameat2_("ex/a", "ey/missing", RENAME_EXCHANGE) == -1 && errno == ENOENT,
          "RENAME_EXCHANGE without a target");
    errno = 0;
    CHECK(renameat2_("ex/a", "ey/b", RENAME_EXCHANGE | RENAME_NOREPLACE) == -1 && errno == EINVAL,
          "RENAME_EXCHANGE|RENAME_NOREPLACE");
    /* Two files across directories. */
    SYS(renameat2_("ex/a", "ey/b", RENAME_EXCHANGE));
    check_file("ex/a", "contents of b");
    check_file("ey/b", "contents of a");
    /* A file and a directory: the directory moves (its .. too). */
    SYS(c_mkdir("ey/dir"));
    put_file("ey/dir/inner", "inner");
    put_file("ex/plain", "plain file");
    SYS(renameat2_("ex/plain", "ey/dir", RENAME_EXCHANGE));
    check_file("ex/plain/inner", "inner");
    check_file("ey/dir", "plain file");
    struct stat a, b;
    SYS(stat("ex/plain/..", &a));
    SYS(stat("ex", &b));
    CHECK(a.st_ino == b.st_ino, "the moved directory's .. is not its new parent");
    /* A directory cannot be swapped into itself. */
    errno = 0;
    CHECK(renameat2_("ex", "ex/plain/inner", RENAME_EXCHANGE) == -1 && errno == EINVAL,
          "exchange of a directory with its own descendant");
    fsync_dir("ex");
    fsync_dir("ey");
    fsync_dir(".");
}

static void check_rename_after_reboot(void)
{
    check_file("ex/a", "contents of b");
    check_file("ey/b", "contents of a");
    check_file("ex/plain/inner", "inner");
    check_file("ey/dir", "plain file");
    check_file("ey/n2", "noreplace");
}

static void make_pattern(const char *path, size_t len, uint32_t seed)
{
    int fd = SYS(open(path, O_CREAT | O_TRUNC | O_RDWR, 0644));
    char *buf = malloc(len);
    pat_fill(buf, len, 0, seed);
    pwrite_all(fd, buf, len, 0);
    SYS(fsync(fd));
    SYS(close(fd));
    free(buf);
}

/* `path` holds the pattern of `seed` except zeros in [zfrom, zto). */
static void check_zeroed(const char *path, size_t len, uint32_t seed, size_t zfrom, size_t zto)
{
    char *buf = malloc(len), *want = malloc(len);
    int fd = SYS(open(path, O_RDONLY));
    struct stat st;
    SYS(fstat(fd, &st));
    CHECK((size_t)st.st_size == len, "%s size %ld, want %zu", path, (long)st.st_size, len);
    pread_all(fd, buf, len, 0);
    SYS(close(fd));
    pat_fill(want, len, 0, seed);
    memset(want + zfrom, 0, zto - zfrom);
    for (size_t i = 0; i < len; i++)
        CHECK(buf[i] == want[i], "%s byte %zu is %d, want %d", path, i, buf[i], want[i]);
    free(buf);
    free(want);
}

static void test_punch(void)
{
    make_pattern("punch.dat", PUNCH_LEN, 7);
    int fd = SYS(open("punch.dat", O_RDWR));
    struct stat before, after;
    SYS(fstat(fd, &before));
    /* Linux requires KEEP_SIZE with a punch. */
    errno = 0;
    CHECK(fallocate(fd, FL_PUNCH_HOLE, PUNCH_OFF, PUNCH_END - PUNCH_OFF) == -1 &&
              errno == EOPNOTSUPP,
          "punch without KEEP_SIZE");
    errno = 0;
    CHECK(fallocate(fd, FL_UNSHARE_RANGE, 0, 4096) == -1 && errno == EOPNOTSUPP,
          "UNSHARE_RANGE");
    SYS(fallocate(fd, FL_PUNCH_HOLE | FL_KEEP_SIZE, PUNCH_OFF, PUNCH_END - PUNCH_OFF));
    SYS(fstat(fd, &after));
    CHECK(after.st_size == PUNCH_LEN, "punch changed the size to %ld", (long)after.st_size);
    CHECK(after.st_blocks < before.st_blocks, "punch freed nothing: %ld blocks, were %ld",
          (long)after.st_blocks, (long)before.st_blocks);
    /* The whole pages of the range are a hole; the partial ones data. */
    off_t h = SYS(lseek(fd, 0, SEEK_HOLE));
    CHECK(h == 12288, "SEEK_HOLE from 0: %ld, want 12288", (long)h);
    off_t d = SYS(lseek(fd, h, SEEK_DATA));
    CHECK(d == 36864, "SEEK_DATA from the hole: %ld, want 36864", (long)d);
    SYS(fsync(fd));
    SYS(close(fd));
    check_zeroed("punch.dat", PUNCH_LEN, 7, PUNCH_OFF, PUNCH_END);
    /* Punching again (cached pages this time) and past the end. */
    fd = SYS(open("punch.dat", O_RDWR));
    SYS(fallocate(fd, FL_PUNCH_HOLE | FL_KEEP_SIZE, PUNCH_OFF, PUNCH_END - PUNCH_OFF));
    SYS(fallocate(fd, FL_PUNCH_HOLE | FL_KEEP_SIZE, PUNCH_LEN + 4096, 65536));
    SYS(fsync(fd));
    SYS(close(fd));
    check_zeroed("punch.dat", PUNCH_LEN, 7, PUNCH_OFF, PUNCH_END);
}

static void check_zero_file(void);

static void test_zero_range(void)
{
    make_pattern("zero.dat", ZERO_LEN, 9);
    int fd = SYS(open("zero.dat", O_RDWR));
    if (fallocate(fd, FL_ZERO_RANGE | FL_KEEP_SIZE, ZERO_OFF, ZERO_END - ZERO_OFF) == -1) {
        /* Linux filesystems without it (tmpfs) say EOPNOTSUPP. */
        CHECK(errno == EOPNOTSUPP && !on_cairn(), "ZERO_RANGE|KEEP_SIZE");
        printf("fileops: ZERO_RANGE not supported here, skipped\n");
        SYS(close(fd));
        unlink("zero.dat");
        return;
    }
    struct stat st;
    SYS(fstat(fd, &st));
    CHECK(st.st_size == ZERO_LEN, "ZERO_RANGE|KEEP_SIZE changed the size to %ld", (long)st.st_size);
    /* Without KEEP_SIZE, a range past the end grows the file. */
    SYS(fallocate(fd, FL_ZERO_RANGE, ZERO_LEN - 100, 8292));
    SYS(fstat(fd, &st));
    CHECK(st.st_size == ZERO_LEN - 100 + 8292, "ZERO_RANGE past the end: size %ld",
          (long)st.st_size);
    SYS(ftruncate(fd, ZERO_LEN));
    SYS(fsync(fd));
    SYS(close(fd));
    check_zero_file();
}

static void check_zero_file(void)
{
    if (!file_exists("zero.dat"))
        return;
    char *buf = malloc(ZERO_LEN), *want = malloc(ZERO_LEN);
    int fd = SYS(open("zero.dat", O_RDONLY));
    pread_all(fd, buf, ZERO_LEN, 0);
    SYS(close(fd));
    pat_fill(want, ZERO_LEN, 0, 9);
    memset(want + ZERO_OFF, 0, ZERO_END - ZERO_OFF);
    memset(want + ZERO_LEN - 100, 0, 100);
    for (size_t i = 0; i < ZERO_LEN; i++)
        CHECK(buf[i] == want[i], "zero.dat byte %zu is %d, want %d", i, buf[i], want[i]);
    free(buf);
    free(want);
}

static void expect_seek(int fd, off_t from, int whence, off_t want)
{
    errno = 0;
    off_t got = lseek(fd, from, whence);
    if (want < 0)
        CHECK(got == -1 && errno == ENXIO, "lseek(%ld, %s) = %ld, want ENXIO", (long)from,
              whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE", (long)got);
    else
        CHECK(got == want, "lseek(%ld, %s) = %ld, want %ld", (long)from,
              whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE", (long)got, (long)want);
}

static void sparse_checks(int fd)
{
    const off_t K = 1024, M = 1024 * 1024;
    expect_seek(fd, 0, SEEK_DATA, 256 * K);
    expect_seek(fd, 0, SEEK_HOLE, 0);
    expect_seek(fd, 256 * K, SEEK_HOLE, 260 * K);
    expect_seek(fd, 258 * K, SEEK_DATA, 258 * K);
    expect_seek(fd, 260 * K, SEEK_DATA, 768 * K);
    expect_seek(fd, 520 * K, SEEK_HOLE, 520 * K);
    expect_seek(fd, 520 * K, SEEK_DATA, 768 * K);
    expect_seek(fd, 768 * K, SEEK_HOLE, 776 * K);
    expect_seek(fd, 776 * K, SEEK_HOLE, 776 * K);
    expect_seek(fd, 776 * K, SEEK_DATA, -1);
    expect_seek(fd, M, SEEK_DATA, -1);
    expect_seek(fd, M, SEEK_HOLE, -1);
    expect_seek(fd, 2 * M, SEEK_HOLE, -1);
}

static void test_seek(void)
{
    int fd = SYS(open("sparse.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    SYS(ftruncate(fd, 1024 * 1024));
    /* Preallocated, never written: still a hole for SEEK_DATA. */
    SYS(fallocate(fd, 0, 512 * 1024, 128 * 1024));
    char buf[8192];
    memset(buf, 0xab, sizeof buf);
    pwrite_all(fd, buf, 4096, 256 * 1024);
    pwrite_all(fd, buf, 8192, 768 * 1024);
    /* Still dirty in the cache. */
    sparse_checks(fd);
    SYS(fsync(fd));
    sparse_checks(fd);
    SYS(close(fd));
}

/* Pages of `path` [0, len) resident in the page cache (Linux: mincore). */
static long resident_pages(int fd, size_t len)
{
    void *p = SYSP(mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0));
    unsigned char vec[256];
    CHECK(len / PAGE <= sizeof vec, "too long");
    SYS(mincore(p, len, vec));
    long n = 0;
    for (size_t i = 0; i < len / PAGE; i++)
        n += vec[i] & 1;
    SYS(munmap(p, len));
    return n;
}

static void read_whole(int fd, size_t len)
{
    char *buf = malloc(len);
    pread_all(fd, buf, len, 0);
    CHECK(pat_check(buf, len, 0, 11) < 0, "fadvise.dat corrupt");
    free(buf);
}

static void test_fadvise(void)
{
    const size_t len = 512 * 1024;
    make_pattern("fadvise.dat", len, 11);
    int fd = SYS(open("fadvise.dat", O_RDONLY));
    read_whole(fd, len);
    errno = 0;
    CHECK(posix_fadvise(fd, 0, 0, 99) == EINVAL, "bad advice accepted");
    int pfd[2];
    SYS(pipe(pfd));
    CHECK(posix_fadvise(pfd[0], 0, 0, POSIX_FADV_DONTNEED) == ESPIPE, "fadvise on a pipe");
    SYS(close(pfd[0]));
    SYS(close(pfd[1]));
    CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED) == 0, "WILLNEED");
    CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) == 0, "SEQUENTIAL");
    struct kstats k0, k1, k2;
    if (on_cairn()) {
        /* Cached: a re-read reads nothing from the device. */
        kstats_read(&k0);
        read_whole(fd, len);
        kstats_read(&k1);
        CHECK(kstat(&k1, "pagecache.fills") == kstat(&k0, "pagecache.fills"),
              "a cached re-read filled %lld pages",
              kstat(&k1, "pagecache.fills") - kstat(&k0, "pagecache.fills"));
        CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0, "DONTNEED");
        read_whole(fd, len);
        kstats_read(&k2);
        long long fills = kstat(&k2, "pagecache.fills") - kstat(&k1, "pagecache.fills");
        long long reqs = kstat(&k2, "pagecache.read_requests") - kstat(&k1, "pagecache.read_requests");
        CHECK(fills >= (long long)(len / PAGE), "after DONTNEED the re-read filled %lld pages", fills);
        CHECK(reqs > 0, "after DONTNEED the re-read made no device request");
        printf("fileops: re-read after DONTNEED filled %lld pages in %lld requests\n", fills, reqs);
    } else {
        CHECK(resident_pages(fd, len) > 0, "nothing cached after a read");
        CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0, "DONTNEED");
        long r = resident_pages(fd, len);
        CHECK(r == 0, "%ld pages still cached after DONTNEED", r);
        read_whole(fd, len);
    }
    SYS(close(fd));
}

static void first_boot(void)
{
    test_creat();
    test_getdents();
    test_rename();
    test_punch();
    test_zero_range();
    test_seek();
    test_fadvise();
    put_file("fileops.marker", "1");
    fsync_dir(".");
    first_boot_done();
}

static void second_boot(void)
{
    check_rename_after_reboot();
    check_zeroed("punch.dat", PUNCH_LEN, 7, PUNCH_OFF, PUNCH_END);
    check_zero_file();
    check_file("creat.dat", "new");
    pass();
}

int main(void)
{
    test_init("fileops");
    if (file_exists("fileops.marker"))
        second_boot();
    else
        first_boot();
    return 0;
}
