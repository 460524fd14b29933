/* edges: Linux edge cases that real programs meet, in two boots of one
 * image (the second checks what the first set persisted).
 *
 * Boot 1: the wall clock (CLOCK_REALTIME, gettimeofday, time) is a date
 * after 2024-01-01 (QEMU's RTC follows the host clock), and so are new
 * files' times; utimensat/futimens/utimes/futimesat/utime set access and
 * modification times (explicit, UTIME_NOW, UTIME_OMIT, NULL, of a symlink
 * itself with AT_SYMLINK_NOFOLLOW), refuse bad nanoseconds and flags;
 * fchdir moves getcwd; a write from a buffer that runs into an unmapped
 * page writes what comes before it (short count); futex calls on
 * kernel-half or unmapped words fail with EFAULT; the *at calls refuse
 * flags Linux refuses. Exits 42.
 * Boot 2: the times set in boot 1 are there. Exits 0.
 */
#include "cairn_test.h"
#include <dirent.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <utime.h>

/* 2024-01-01T00:00:00Z */
#define Y2024 1704067200L

#define A1_SEC 1000000000L
#define A1_NSEC 500000000L /* exactly representable in TFS's 32.32 seconds */
#define M1_SEC 1200000000L
#define M1_NSEC 250000000L

static void check_times(const char *path, int nofollow, long as, long an, long ms, long mn)
{
    struct stat st;
    SYS(fstatat(AT_FDCWD, path, &st, nofollow ? AT_SYMLINK_NOFOLLOW : 0));
    CHECK(st.st_atim.tv_sec == as && st.st_atim.tv_nsec == an, "%s atime %ld.%09ld, want %ld.%09ld",
          path, (long)st.st_atim.tv_sec, st.st_atim.tv_nsec, as, an);
    CHECK(st.st_mtim.tv_sec == ms && st.st_mtim.tv_nsec == mn, "%s mtime %ld.%09ld, want %ld.%09ld",
          path, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, ms, mn);
}

static int make_file(const char *path)
{
    int fd = SYS(open(path, O_CREAT | O_TRUNC | O_RDWR, 0644));
    write_all(fd, "times\n", 6);
    return fd;
}

static void wall_clock(void)
{
    struct timespec ts;
    SYS(clock_gettime(CLOCK_REALTIME, &ts));
    CHECK(ts.tv_sec >= Y2024, "CLOCK_REALTIME %ld is before 2024", (long)ts.tv_sec);
    struct timeval tv;
    SYS(gettimeofday(&tv, NULL));
    CHECK(tv.tv_sec >= Y2024, "gettimeofday %ld is before 2024", (long)tv.tv_sec);
    time_t t = time(NULL);
    CHECK(t >= Y2024, "time() %ld is before 2024", (long)t);
    /* The raw system calls too (the vDSO answers the glibc calls). */
    SYS(syscall(SYS_clock_gettime, CLOCK_REALTIME, &ts));
    CHECK(ts.tv_sec >= Y2024, "clock_gettime syscall %ld is before 2024", (long)ts.tv_sec);
}

static void new_file_times(void)
{
    /* A new file is stamped with the wall clock. */
    int fd = make_file("new.dat");
    struct stat st;
    SYS(fstat(fd, &st));
    CHECK(st.st_mtime >= Y2024, "new file's mtime %ld is before 2024", (long)st.st_mtime);
    SYS(close(fd));
    SYS(c_mkdir("newdir"));
    SYS(stat("newdir", &st));
    CHECK(st.st_mtime >= Y2024, "new directory's mtime %ld is before 2024", (long)st.st_mtime);
}

static void set_times(void)
{
    struct timespec ts[2] = {{A1_SEC, A1_NSEC}, {M1_SEC, M1_NSEC}};

    /* utimensat by path. */
    int fd = make_file("t1.dat");
    SYS(fsync(fd));
    SYS(close(fd));
    SYS(utimensat(AT_FDCWD, "t1.dat", ts, 0));
    check_times("t1.dat", 0, A1_SEC, A1_NSEC, M1_SEC, M1_NSEC);

    /* futimens; then UTIME_OMIT keeps one time. */
    fd = make_file("t2.dat");
    SYS(fsync(fd));
    SYS(futimens(fd, ts));
    check_times("t2.dat", 0, A1_SEC, A1_NSEC, M1_SEC, M1_NSEC);
    struct timespec omit_a[2] = {{0, UTIME_OMIT}, {M1_SEC + 7, 0}};
    SYS(futimens(fd, omit_a));
    check_times("t2.dat", 0, A1_SEC, A1_NSEC, M1_SEC + 7, 0);
    struct timespec omit_m[2] = {{A1_SEC + 3, 0}, {12345, UTIME_OMIT}};
    SYS(syscall(SYS_utimensat, fd, NULL, omit_m, 0));
    check_times("t2.dat", 0, A1_SEC + 3, 0, M1_SEC + 7, 0);
    SYS(close(fd));

    /* UTIME_NOW and NULL times: the wall clock. */
    time_t before = time(NULL);
    struct timespec now_m[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    fd = make_file("t3.dat");
    SYS(close(fd));
    SYS(utimensat(AT_FDCWD, "t3.dat", ts, 0));
    SYS(utimensat(AT_FDCWD, "t3.dat", now_m, 0));
    struct stat st;
    SYS(stat("t3.dat", &st));
    CHECK(st.st_atim.tv_sec == A1_SEC && st.st_atim.tv_nsec == A1_NSEC, "UTIME_OMIT atime changed");
    CHECK(st.st_mtime >= before, "UTIME_NOW mtime %ld < %ld", (long)st.st_mtime, (long)before);
    SYS(utimensat(AT_FDCWD, "t3.dat", ts, 0));
    SYS(utimensat(AT_FDCWD, "t3.dat", NULL, 0));
    SYS(stat("t3.dat", &st));
    CHECK(st.st_atime >= before && st.st_mtime >= before, "NULL times: %ld %ld < %ld",
          (long)st.st_atime, (long)st.st_mtime, (long)before);

    /* utimes / futimesat (struct timeval), utime (whole seconds). */
    fd = make_file("t4.dat");
    SYS(close(fd));
    struct timeval tv[2] = {{A1_SEC, 500000}, {M1_SEC, 250000}};
    SYS(syscall(SYS_utimes, "t4.dat", tv));
    check_times("t4.dat", 0, A1_SEC, A1_NSEC, M1_SEC, M1_NSEC);
    struct timeval tv2[2] = {{A1_SEC + 1, 0}, {M1_SEC + 1, 0}};
    SYS(syscall(SYS_futimesat, AT_FDCWD, "t4.dat", tv2));
    check_times("t4.dat", 0, A1_SEC + 1, 0, M1_SEC + 1, 0);
    struct utimbuf ub = {.actime = A1_SEC + 2, .modtime = M1_SEC + 2};
    SYS(syscall(SYS_utime, "t4.dat", &ub));
    check_times("t4.dat", 0, A1_SEC + 2, 0, M1_SEC + 2, 0);

    /* A directory. */
    SYS(c_mkdir("tdir"));
    SYS(utimensat(AT_FDCWD, "tdir", ts, 0));
    check_times("tdir", 0, A1_SEC, A1_NSEC, M1_SEC, M1_NSEC);

    /* A symlink itself (AT_SYMLINK_NOFOLLOW), its target untouched. */
    fd = make_file("t5.dat");
    SYS(close(fd));
    struct timespec tt[2] = {{A1_SEC + 5, 0}, {M1_SEC + 5, 0}};
    SYS(utimensat(AT_FDCWD, "t5.dat", tt, 0));
    SYS(symlink("t5.dat", "t5.link"));
    SYS(utimensat(AT_FDCWD, "t5.link", ts, AT_SYMLINK_NOFOLLOW));
    check_times("t5.link", 1, A1_SEC, A1_NSEC, M1_SEC, M1_NSEC);
    check_times("t5.dat", 0, A1_SEC + 5, 0, M1_SEC + 5, 0);

    /* Refusals. */
    struct timespec bad1[2] = {{A1_SEC, 1000000000L}, {M1_SEC, 0}};
    struct timespec bad2[2] = {{A1_SEC, 0}, {M1_SEC, -1}};
    errno = 0;
    CHECK(utimensat(AT_FDCWD, "t1.dat", bad1, 0) == -1 && errno == EINVAL, "nsec 1e9 accepted");
    errno = 0;
    CHECK(utimensat(AT_FDCWD, "t1.dat", bad2, 0) == -1 && errno == EINVAL, "nsec -1 accepted");
    errno = 0;
    CHECK(utimensat(AT_FDCWD, "t1.dat", ts, 0x4) == -1 && errno == EINVAL, "bad flags accepted");
    fd = SYS(open("t1.dat", O_RDONLY));
    errno = 0;
    CHECK(syscall(SYS_utimensat, fd, NULL, ts, AT_SYMLINK_NOFOLLOW) == -1 && errno == EINVAL,
          "futimens with AT_SYMLINK_NOFOLLOW accepted");
    SYS(close(fd));
    errno = 0;
    CHECK(utimensat(AT_FDCWD, "no-such-file", ts, 0) == -1 && errno == ENOENT, "missing file");
    struct timespec both_omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    CHECK(utimensat(AT_FDCWD, "no-such-file", both_omit, 0) == 0,
          "both UTIME_OMIT must not even look at the path");
    struct timeval badtv[2] = {{A1_SEC, 1000000}, {M1_SEC, 0}};
    errno = 0;
    CHECK(syscall(SYS_utimes, "t1.dat", badtv) == -1 && errno == EINVAL, "usec 1e6 accepted");
    check_times("t1.dat", 0, A1_SEC, A1_NSEC, M1_SEC, M1_NSEC);

    /* Synced, so that boot 2 can find them. */
    sync();
}

static void fchdir_getcwd(void)
{
    char start[4096], here[4096];
    CHECK(getcwd(start, sizeof start) != NULL, "getcwd");
    SYS(c_mkdir("fcd"));
    SYS(c_mkdir("fcd/sub"));
    int home = SYS(open(".", O_RDONLY | O_DIRECTORY));
    int sub = SYS(open("fcd/sub", O_RDONLY | O_DIRECTORY));
    SYS(fchdir(sub));
    CHECK(getcwd(here, sizeof here) != NULL, "getcwd after fchdir");
    char want[4200];
    snprintf(want, sizeof want, "%s%sfcd/sub", start, strcmp(start, "/") == 0 ? "" : "/");
    CHECK(strcmp(here, want) == 0, "getcwd after fchdir: %s, want %s", here, want);
    /* Relative paths start there, and chdir("..") goes to fcd. */
    int fd = make_file("in-sub.dat");
    SYS(close(fd));
    SYS(chdir(".."));
    CHECK(getcwd(here, sizeof here) != NULL, "getcwd after ..");
    snprintf(want, sizeof want, "%s%sfcd", start, strcmp(start, "/") == 0 ? "" : "/");
    CHECK(strcmp(here, want) == 0, "getcwd after fchdir and ..: %s, want %s", here, want);
    CHECK(file_exists("sub/in-sub.dat"), "file made after fchdir is not in fcd/sub");
    SYS(fchdir(home));
    CHECK(getcwd(here, sizeof here) != NULL && strcmp(here, start) == 0,
          "getcwd after fchdir home: %s, want %s", here, start);
    SYS(close(home));
    SYS(close(sub));
}

static void short_writes(void)
{
    /* Two pages, the second unmapped: a buffer that starts 100 bytes
     * before the hole. */
    char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED, "mmap");
    SYS(munmap(p + PAGE, PAGE));
    memset(p, 'w', PAGE);
    char *edge = p + PAGE - 100;

    int fd = SYS(open("short.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    ssize_t n = write(fd, edge, 300);
    CHECK(n == 100, "write into a hole returned %zd, want 100", n);
    n = pwrite(fd, edge, 5000, 1000);
    CHECK(n == 100, "pwrite into a hole returned %zd, want 100", n);
    errno = 0;
    n = write(fd, p + PAGE, 10);
    CHECK(n == -1 && errno == EFAULT, "write from the hole returned %zd", n);
    /* writev: the first vector whole, the second up to the hole. */
    struct iovec iov[3] = {{p, 50}, {edge, 200}, {p, 50}};
    SYS(lseek(fd, 2000, SEEK_SET));
    n = writev(fd, iov, 3);
    CHECK(n == 150, "writev into a hole returned %zd, want 150", n);
    struct iovec iov2[2] = {{p, 50}, {p + PAGE, 10}};
    n = pwritev(fd, iov2, 2, 3000);
    CHECK(n == 50, "pwritev with a vector in the hole returned %zd, want 50", n);
    struct stat st;
    SYS(fstat(fd, &st));
    CHECK(st.st_size == 3050, "size %ld after the short writes", (long)st.st_size);
    static char back[3050];
    pread_all(fd, back, sizeof back, 0);
    for (int i = 0; i < 3050; i++) {
        int want = (i < 100) || (i >= 1000 && i < 1100) || (i >= 2000 && i < 2150) ||
                   (i >= 3000);
        CHECK((back[i] == 'w') == want, "byte %d is %d", i, back[i]);
    }
    /* A read into a buffer that runs into the hole stops exactly there,
     * wherever the hole falls in the kernel's 64-byte copy blocks. */
    static const int edge_at[] = {1, 7, 8, 9, 63, 64, 65, 100, 127, 128, 129, 1000, 4095};
    for (size_t i = 0; i < sizeof edge_at / sizeof edge_at[0]; i++) {
        int k = edge_at[i];
        memset(p, 0, PAGE);
        int want = k < 3050 ? k : 3050;
        n = pread(fd, p + PAGE - k, 8192, 0);
        CHECK(n == want, "read of 8192 bytes %d bytes before a hole returned %zd", k, n);
        for (int j = 0; j < want; j++)
            CHECK(p[PAGE - k + j] == back[j], "read %d before a hole: byte %d", k, j);
    }
    SYS(close(fd));
    SYS(munmap(p, PAGE));
}

static long futex(void *a, int op, int val, void *a2, int val3)
{
    return syscall(SYS_futex, a, op, val, (void *)0, a2, val3);
}

static void futex_faults(void)
{
    void *kernel = (void *)0xffff800000001000UL;
    static int word;
    errno = 0;
    CHECK(futex(kernel, FUTEX_WAKE, 1, NULL, 0) == -1 && errno == EFAULT,
          "FUTEX_WAKE on a kernel address");
    errno = 0;
    CHECK(futex(kernel, FUTEX_WAKE_PRIVATE, 1, NULL, 0) == -1 && errno == EFAULT,
          "FUTEX_WAKE_PRIVATE on a kernel address");
    errno = 0;
    CHECK(futex(&word, FUTEX_CMP_REQUEUE, 1, NULL, 0) == -1 && errno == EFAULT,
          "FUTEX_CMP_REQUEUE to NULL");
    errno = 0;
    CHECK(futex(&word, FUTEX_REQUEUE, 1, kernel, 0) == -1 && errno == EFAULT,
          "FUTEX_REQUEUE to a kernel address");
    errno = 0;
    CHECK(futex((char *)&word + 1, FUTEX_WAKE, 1, NULL, 0) == -1 && errno == EINVAL,
          "FUTEX_WAKE misaligned");
    CHECK(futex(&word, FUTEX_WAKE_PRIVATE, 1, NULL, 0) == 0, "FUTEX_WAKE with no waiter");
    CHECK(futex(&word, FUTEX_WAKE, 1, NULL, 0) == 0, "shared FUTEX_WAKE with no waiter");
}

static void at_flags(void)
{
    struct stat st;
    int fd = make_file("flags.dat");
    SYS(close(fd));
    errno = 0;
    CHECK(syscall(SYS_newfstatat, AT_FDCWD, "flags.dat", &st, 0x1) == -1 && errno == EINVAL,
          "newfstatat flag 0x1");
    errno = 0;
    CHECK(syscall(SYS_newfstatat, AT_FDCWD, "flags.dat", &st, AT_REMOVEDIR) == -1 &&
              errno == EINVAL,
          "newfstatat AT_REMOVEDIR");
    SYS(syscall(SYS_newfstatat, AT_FDCWD, "flags.dat", &st, AT_NO_AUTOMOUNT | AT_SYMLINK_NOFOLLOW));
    errno = 0;
    CHECK(syscall(SYS_statx, AT_FDCWD, "flags.dat", 0x1, 0x7ff, &st) == -1 && errno == EINVAL,
          "statx flag 0x1");
    static char sx[256];
    errno = 0;
    CHECK(syscall(SYS_statx, AT_FDCWD, "flags.dat", 0x6000, 0x7ff, sx) == -1 && errno == EINVAL,
          "statx FORCE_SYNC|DONT_SYNC");
    errno = 0;
    CHECK(syscall(SYS_unlinkat, AT_FDCWD, "flags.dat", 0x1) == -1 && errno == EINVAL,
          "unlinkat flag 0x1");
    errno = 0;
    CHECK(syscall(SYS_linkat, AT_FDCWD, "flags.dat", AT_FDCWD, "flags2.dat",
                  AT_SYMLINK_NOFOLLOW) == -1 &&
              errno == EINVAL,
          "linkat AT_SYMLINK_NOFOLLOW");
    CHECK(!file_exists("flags2.dat"), "refused linkat made a link");
    errno = 0;
    CHECK(syscall(SYS_faccessat2, AT_FDCWD, "flags.dat", R_OK, 0x1) == -1 && errno == EINVAL,
          "faccessat2 flag 0x1");
    SYS(syscall(SYS_faccessat2, AT_FDCWD, "flags.dat", R_OK, AT_EACCESS | AT_SYMLINK_NOFOLLOW));
    errno = 0;
    CHECK(syscall(SYS_faccessat, AT_FDCWD, "flags.dat", 8) == -1 && errno == EINVAL,
          "faccessat mode 8");
    errno = 0;
    CHECK(syscall(SYS_fchownat, AT_FDCWD, "flags.dat", 0, 0, 0x1) == -1 && errno == EINVAL,
          "fchownat flag 0x1");
    CHECK(file_exists("flags.dat"), "refused unlinkat removed the file");
}

static void first_boot(void)
{
    wall_clock();
    new_file_times();
    set_times();
    fchdir_getcwd();
    short_writes();
    futex_faults();
    at_flags();
    int fd = SYS(open("edges.marker", O_CREAT | O_EXCL | O_WRONLY, 0644));
    write_all(fd, "boot 1 done\n", 12);
    SYS(fsync(fd));
    SYS(close(fd));
    fsync_dir(".");
    first_boot_done();
}

static void second_boot(void)
{
    wall_clock();
    check_times("t1.dat", 0, A1_SEC, A1_NSEC, M1_SEC, M1_NSEC);
    check_times("t2.dat", 0, A1_SEC + 3, 0, M1_SEC + 7, 0);
    check_times("t4.dat", 0, A1_SEC + 2, 0, M1_SEC + 2, 0);
    check_times("tdir", 0, A1_SEC, A1_NSEC, M1_SEC, M1_NSEC);
    check_times("t5.link", 1, A1_SEC, A1_NSEC, M1_SEC, M1_NSEC);
    check_times("t5.dat", 0, A1_SEC + 5, 0, M1_SEC + 5, 0);
    printf("edges: second boot found the times the first one set\n");
    pass();
}

int main(void)
{
    test_init("edges");
    if (file_exists("edges.marker"))
        second_boot();
    else
        first_boot();
    return 0;
}
