/* fsbench: the filesystem benchmark of `cargo xtask bench fs`, run on
 * cairn and on a Linux guest from the same kind of image. Prints one
 * machine-readable line per case:
 *
 *   fsbench <case> ops=<n> bytes=<b> ns=<t>
 *
 * Cases: seq_write_fsync (32 MiB in 1 MiB writes, then fsync),
 * seq_read_cold (cold.dat as it came with the image: first touch this
 * boot), seq_read_cached (the same again), rand_read_4k_cold and
 * rand_read_4k_cached (4096 preads of 4 KiB at random page offsets of
 * rand.dat, first touch then again), create_unlink (create, close,
 * unlink), mmap_fault_cold and mmap_fault_cached (one read fault per
 * page of a shared mapping of map.dat, first touch then again after
 * munmap), fsync_4k, fsync_1m and fsync_64m (the latency of one fsync
 * after writing that much: the median of 16, of 8, and one; reported as
 * ops=1 ns=<median>). Every read is checked against the pattern;
 * sequential reads time only their read() calls. */
#include "cairn_test.h"

#define MIB (1 << 20)
#define WRITE_MIB 32
#define RAND_OPS 4096
#define CREATES 500

static double t_start;
/* Starts timing case `name` (and names the profiler's phase). */
static void start(const char *name)
{
    profile_mark(name);
    t_start = now_s();
}
static void report_ns(const char *name, long ops, long long bytes, double ns)
{
    printf("fsbench %s ops=%ld bytes=%lld ns=%.0f\n", name, ops, bytes, ns);
}
static void report(const char *name, long ops, long long bytes)
{
    report_ns(name, ops, bytes, (now_s() - t_start) * 1e9);
}

static long file_size(const char *p)
{
    struct stat st;
    SYS(stat(p, &st));
    return st.st_size;
}

/* Only the read() calls are timed: checking 32 MiB against the pattern
 * costs more than reading it from the cache. */
static void seq_read(const char *name, const char *path, char *buf, uint32_t seed)
{
    long size = file_size(path);
    int fd = SYS(open(path, O_RDONLY));
    profile_mark(name);
    double in_read = 0;
    long off = 0, ops = 0;
    for (;;) {
        double t0 = now_s();
        ssize_t n = read(fd, buf, MIB);
        in_read += now_s() - t0;
        CHECK(n >= 0, "read %s", path);
        if (n == 0)
            break;
        CHECK(pat_check(buf, (size_t)n, (uint64_t)off, seed) < 0, "%s data at %ld", path, off);
        off += n;
        ops++;
    }
    report_ns(name, ops, off, in_read * 1e9);
    CHECK(off == size, "%s: read %ld of %ld bytes", path, off, size);
    close(fd);
}

static void rand_read(const char *name, const char *path, uint32_t seed)
{
    static char buf[PAGE];
    long pages = file_size(path) / PAGE;
    int fd = SYS(open(path, O_RDONLY));
    uint32_t s = 0x2545f491;
    start(name);
    for (int i = 0; i < RAND_OPS; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        off_t off = (off_t)(s % (uint32_t)pages) * PAGE;
        pread_all(fd, buf, PAGE, off);
        CHECK(pat_check(buf, 64, (uint64_t)off, seed) < 0, "%s data at %lld", path,
              (long long)off);
    }
    report(name, RAND_OPS, (long long)RAND_OPS * PAGE);
    close(fd);
}

static void map_faults(const char *name, const char *path, uint32_t seed)
{
    long size = file_size(path);
    int fd = SYS(open(path, O_RDONLY));
    start(name);
    volatile uint32_t *p = SYSP(mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0));
    uint32_t sum = 0;
    for (long off = 0; off < size; off += PAGE)
        sum ^= p[off / 4] ^ pat32((uint64_t)off, seed);
    SYS(munmap((void *)p, (size_t)size));
    report(name, size / PAGE, size);
    CHECK(sum == 0, "%s: mapped data differs", path);
    close(fd);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* `rounds` times: write `bytes` (fresh data over the same range of a file
 * made for it), then time one fsync. Reports the median. `buf` holds 1 MiB. */
static void fsync_latency(const char *name, size_t bytes, int rounds, char *buf)
{
    double t[16];
    int fd = SYS(open("fsync.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    profile_mark(name);
    for (int r = 0; r < rounds; r++) {
        for (size_t off = 0; off < bytes; off += MIB) {
            size_t n = bytes - off < MIB ? bytes - off : MIB;
            pat_fill(buf, n, off, (uint32_t)(100 + r));
            pwrite_all(fd, buf, n, (off_t)off);
        }
        double t0 = now_s();
        SYS(fsync(fd));
        t[r] = now_s() - t0;
    }
    qsort(t, (size_t)rounds, sizeof t[0], cmp_double);
    report_ns(name, 1, (long long)bytes, t[rounds / 2] * 1e9);
    SYS(close(fd));
    SYS(c_unlink("fsync.dat"));
}

int main(void)
{
    test_init("fsbench");
    char *buf = malloc(MIB);
    CHECK(buf != NULL, "malloc");

    int fd = SYS(open("written.dat", O_CREAT | O_TRUNC | O_WRONLY, 0644));
    pat_fill(buf, MIB, 0, 90);
    start("seq_write_fsync");
    for (int i = 0; i < WRITE_MIB; i++)
        write_all(fd, buf, MIB);
    profile_mark("seq_write_fsync:fsync");
    SYS(fsync(fd));
    report("seq_write_fsync", WRITE_MIB, (long long)WRITE_MIB * MIB);
    close(fd);

    seq_read("seq_read_cold", "cold.dat", buf, 91);
    seq_read("seq_read_cached", "cold.dat", buf, 91);

    /* Baselines for the cached rows: writes that only fill the cache, and
     * a plain user-space memcpy of the same size. */
    fd = SYS(open("cached.dat", O_CREAT | O_TRUNC | O_WRONLY, 0644));
    start("seq_write_cached");
    for (int i = 0; i < WRITE_MIB; i++)
        write_all(fd, buf, MIB);
    report("seq_write_cached", WRITE_MIB, (long long)WRITE_MIB * MIB);
    close(fd);
    SYS(c_unlink("cached.dat"));
    char *dst = malloc(MIB);
    CHECK(dst != NULL, "malloc");
    memset(dst, 1, MIB);
    start("memcpy");
    for (int i = 0; i < WRITE_MIB; i++) {
        memcpy(dst, buf, MIB);
        __asm__ volatile("" : : "r"(dst) : "memory");
    }
    report("memcpy", WRITE_MIB, (long long)WRITE_MIB * MIB);
    free(dst);
    rand_read("rand_read_4k_cold", "rand.dat", 92);
    rand_read("rand_read_4k_cached", "rand.dat", 92);

    char name[32];
    start("create_unlink");
    for (int i = 0; i < CREATES; i++) {
        snprintf(name, sizeof name, "c%d", i);
        int f = SYS(open(name, O_CREAT | O_EXCL | O_WRONLY, 0644));
        SYS(close(f));
        SYS(c_unlink(name));
    }
    report("create_unlink", CREATES, 0);

    map_faults("mmap_fault_cold", "map.dat", 93);
    map_faults("mmap_fault_cached", "map.dat", 93);

    fsync_latency("fsync_4k", 4096, 16, buf);
    fsync_latency("fsync_1m", MIB, 8, buf);
    fsync_latency("fsync_64m", 64 * MIB, 1, buf);
    SYS(c_unlink("written.dat"));
    pass();
}
