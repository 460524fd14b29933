/*
 * The special files programs open: /dev/null, zero, full, urandom,
 * random (and mapping /dev/zero), /proc/self/exe, cmdline, comm, status,
 * maps, fd/ (listing, links, reopening through them), cwd, /proc/cpuinfo,
 * /proc/meminfo, /sys/devices/system/cpu/online, and that glibc's CPU
 * count agrees with them.
 */
#include "cairn_test.h"
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>

static char *slurp(const char *path, size_t *len)
{
    static char buf[1 << 16];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        FAIL("open %s", path);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        CHECK(r >= 0, "read %s", path);
        if (r == 0)
            break;
        n += (size_t)r;
    }
    SYS(close(fd));
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

static int ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

static void *idle_thread(void *arg)
{
    (void)arg;
    sleep_ms(300);
    return NULL;
}

static void test_dev(void)
{
    char buf[4096];
    int fd = SYS(open("/dev/null", O_RDWR));
    CHECK(write(fd, buf, 10) == 10, "write /dev/null");
    CHECK(read(fd, buf, sizeof buf) == 0, "read /dev/null");
    struct stat st;
    SYS(fstat(fd, &st));
    CHECK(S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3,
          "/dev/null mode %o rdev %u:%u", st.st_mode, major(st.st_rdev), minor(st.st_rdev));
    SYS(close(fd));
    SYS(stat("/dev/zero", &st));
    CHECK(S_ISCHR(st.st_mode) && minor(st.st_rdev) == 5, "stat /dev/zero");

    fd = SYS(open("/dev/zero", O_RDONLY));
    memset(buf, 1, sizeof buf);
    CHECK(read(fd, buf, sizeof buf) == (ssize_t)sizeof buf, "read /dev/zero");
    for (size_t i = 0; i < sizeof buf; i++)
        CHECK(buf[i] == 0, "non-zero byte from /dev/zero");
    SYS(close(fd));
    fd = SYS(open("/dev/zero", O_RDWR));
    char *m = SYSP(mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
    CHECK(m[0] == 0 && m[2 * PAGE - 1] == 0, "mapped /dev/zero");
    m[5] = 7;
    CHECK(m[5] == 7, "store to mapped /dev/zero");
    SYS(munmap(m, 2 * PAGE));
    SYS(close(fd));

    fd = SYS(open("/dev/full", O_RDWR));
    CHECK(write(fd, buf, 1) < 0 && errno == ENOSPC, "write /dev/full");
    CHECK(read(fd, buf, 16) == 16 && buf[0] == 0, "read /dev/full");
    SYS(close(fd));

    for (int k = 0; k < 2; k++) {
        const char *dev = k ? "/dev/random" : "/dev/urandom";
        unsigned char a[64], b[64];
        fd = SYS(open(dev, O_RDONLY));
        CHECK(read(fd, a, sizeof a) == 64 && read(fd, b, sizeof b) == 64, "read %s", dev);
        CHECK(memcmp(a, b, sizeof a) != 0, "%s repeats itself", dev);
        SYS(close(fd));
    }

    DIR *d = opendir("/dev");
    CHECK(d != NULL, "opendir /dev");
    int saw_null = 0;
    for (struct dirent *e; (e = readdir(d));)
        saw_null |= strcmp(e->d_name, "null") == 0;
    closedir(d);
    CHECK(saw_null, "/dev lists no null");
}

static void test_proc_self(const char *argv0)
{
    char link[4096];
    ssize_t n = SYS(readlink("/proc/self/exe", link, sizeof link - 1));
    link[n] = 0;
    CHECK(link[0] == '/' && ends_with(link, "/special"), "/proc/self/exe -> %s", link);
    n = SYS(readlink("/proc/self/cwd", link, sizeof link - 1));
    link[n] = 0;
    CHECK(link[0] == '/', "/proc/self/cwd -> %s", link);

    size_t len;
    char *s = slurp("/proc/self/cmdline", &len);
    CHECK(len == strlen(argv0) + 1 + strlen("proc-arg") + 1 && strcmp(s, argv0) == 0 &&
              strcmp(s + strlen(argv0) + 1, "proc-arg") == 0,
          "cmdline");

    SYS(prctl(PR_SET_NAME, "special-main"));
    char name[16] = {0};
    SYS(prctl(PR_GET_NAME, name));
    CHECK(strcmp(name, "special-main") == 0, "PR_GET_NAME %s", name);
    s = slurp("/proc/self/comm", NULL);
    CHECK(strcmp(s, "special-main\n") == 0, "comm %s", s);

    s = slurp("/proc/self/status", NULL);
    CHECK(strstr(s, "Name:\tspecial-main\n") != NULL, "status Name:\n%s", s);
    CHECK(strstr(s, "Threads:\t1\n") != NULL, "status Threads (1):\n%s", s);
    pthread_t t;
    pthread_create(&t, NULL, idle_thread, NULL);
    s = slurp("/proc/self/status", NULL);
    CHECK(strstr(s, "Threads:\t2\n") != NULL, "status Threads (2):\n%s", s);
    pthread_join(t, NULL);

    /* maps: the stack, the program, a mapped file. */
    make_pattern_file("maps.dat", 3 * PAGE, 5, 0);
    int fd = SYS(open("maps.dat", O_RDONLY));
    char *m = SYSP(mmap(NULL, 3 * PAGE, PROT_READ, MAP_SHARED, fd, 0));
    CHECK(pat_check(m, 3 * PAGE, 0, 5) < 0, "mapped data");
    s = slurp("/proc/self/maps", NULL);
    CHECK(strstr(s, "[stack]") != NULL, "maps without [stack]:\n%s", s);
    CHECK(strstr(s, "/special\n") != NULL, "maps without the program:\n%s", s);
    char want[64];
    snprintf(want, sizeof want, "%lx-%lx r--s 00000000 ", (unsigned long)m,
             (unsigned long)m + 3 * PAGE);
    char *line = strstr(s, want);
    CHECK(line != NULL, "maps without %s:\n%s", want, s);
    char *eol = strchr(line, '\n');
    CHECK(eol && eol - line > 9 && memcmp(eol - 9, "/maps.dat", 9) == 0, "maps line of the file");
    SYS(munmap(m, 3 * PAGE));

    /* fd/: listing, links, reopening. */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    n = SYS(readlink(path, link, sizeof link - 1));
    link[n] = 0;
    CHECK(ends_with(link, "/maps.dat"), "%s -> %s", path, link);
    int again = SYS(open(path, O_RDONLY));
    char buf[PAGE];
    CHECK(read(again, buf, PAGE) == PAGE && pat_check(buf, PAGE, 0, 5) < 0, "reopened data");
    CHECK(lseek(fd, 0, SEEK_CUR) == 0, "a reopened description moved the original offset");
    SYS(close(again));
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL, "opendir /proc/self/fd");
    int saw = 0, saw0 = 0;
    char mine[16];
    snprintf(mine, sizeof mine, "%d", fd);
    for (struct dirent *e; (e = readdir(d));) {
        saw |= strcmp(e->d_name, mine) == 0;
        saw0 |= strcmp(e->d_name, "0") == 0;
    }
    closedir(d);
    CHECK(saw && saw0, "/proc/self/fd lists %s: %d, 0: %d", mine, saw, saw0);
    SYS(close(fd));
    CHECK(readlink(path, link, sizeof link) < 0 && errno == ENOENT, "link of a closed fd");
    SYS(c_unlink("maps.dat"));
    struct stat st;
    CHECK(stat("/proc/self/nonexistent", &st) < 0 && errno == ENOENT, "missing proc file");
}

static void test_system(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK(online >= 1 && online == get_nprocs(), "sysconf %ld get_nprocs %d", online, get_nprocs());
    CHECK(sysconf(_SC_NPROCESSORS_CONF) >= online, "configured CPUs");
    char *s = slurp("/proc/cpuinfo", NULL);
    long processors = 0;
    for (char *p = s; (p = strstr(p, "processor\t:")); p++)
        processors++;
    CHECK(processors == online, "cpuinfo lists %ld processors, %ld online", processors, online);
    CHECK(strstr(s, "flags\t\t:") != NULL && strstr(s, " sse2") != NULL, "cpuinfo flags");
    s = slurp("/sys/devices/system/cpu/online", NULL);
    long last = 0;
    char *dash = strchr(s, '-');
    if (dash)
        last = strtol(dash + 1, NULL, 10);
    CHECK(s[0] == '0' && last + 1 == online, "cpu/online %s with %ld online", s, online);
    s = slurp("/proc/meminfo", NULL);
    char *mt = strstr(s, "MemTotal:");
    CHECK(mt && strtol(mt + 9, NULL, 10) > 1024, "MemTotal: %s", s);
    CHECK(strstr(s, "MemAvailable:") != NULL, "MemAvailable");
    struct stat st;
    SYS(stat("/proc/self/fd", &st));
    CHECK(S_ISDIR(st.st_mode), "/proc/self/fd is a directory");
    SYS(lstat("/proc/self", &st));
    CHECK(S_ISLNK(st.st_mode), "/proc/self is a link");
}

int main(int argc, char **argv)
{
    test_init("special");
    CHECK(argc == 2 && strcmp(argv[1], "proc-arg") == 0, "arguments");
    test_dev();
    test_proc_self(argv[0]);
    test_system();
    pass();
}
