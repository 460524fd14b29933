/* cached_write (issue 17): writes into a cached file from every vCPU,
 * which on cairn run without the kernel lock when they overwrite cached
 * pages whose storage a write reserved (pwrite, pwritev, write, writev),
 * while another thread truncates and regrows the file's tail
 * (ftruncate, and truncate by path) and fstats it.
 *
 * Layout of the file: one region of REGION bytes per writer thread,
 * rewritten whole each round with the thread's pattern of that round in
 * pieces cut at odd offsets (pwrite and pwritev with three vectors, by
 * turns), then read back with readv/preadv and checked; a shared region
 * every writer overwrites at random spots with one fixed pattern (so any
 * interleaving must still read as that pattern); a tail that the
 * truncater shrinks and regrows while the writers also write the fixed
 * pattern into it (each 4-byte word there reads as the pattern or as
 * zero, never anything else).
 *
 * Then, after an fsync, every writer rewrites its region once more (the
 * pages are clean and cached: a lockless overwrite must dirty them
 * again), an fsync, and the file is read back through O_DIRECT (from the
 * disk, no reboot) and compared with what the threads wrote and with a
 * buffered read. fstat: the size, and mtime/ctime moving forward with a
 * write into a cached page, staying after fsync. On cairn, kstats must
 * show writes and fstats served without the kernel lock. Last, one thread
 * per vCPU fstats its own unchanged file 4,000 times: on cairn at least
 * 90% of those go without the kernel lock.
 *
 * argv[1]: vCPUs (default 2); argv[2]: rounds (default 150). */
#include "cairn_test.h"
#include <sys/uio.h>

#define REGION (8 * PAGE)
#define SHARED (8 * PAGE)
#define TAIL (8 * PAGE)
#define MAX_T 16
#define FIXED 77u

static int fd, nthreads;
static long rounds;
static off_t shared_at, tail_at, full_size;
static volatile int writers_done;
static pthread_barrier_t go;
/* The fixed pattern of the shared region and the tail, from shared_at. */
static char fixed[SHARED + TAIL];

static uint32_t seed_of(int t, long round) { return 1000u + (uint32_t)t * 100000u + (uint32_t)round; }

static uint32_t rnd_next(uint32_t *r)
{
    *r = *r * 1664525u + 1013904223u;
    return *r >> 8;
}

/* pwrite or pwritev (three vectors) of `buf` at `off`, all of it. */
static void put(const char *buf, size_t len, off_t off, int vectors)
{
    while (len > 0) {
        ssize_t n;
        if (vectors && len >= 3) {
            size_t a = len / 3, b = len / 3;
            struct iovec iov[3] = {{(void *)buf, a}, {(void *)(buf + a), b},
                                   {(void *)(buf + a + b), len - a - b}};
            n = pwritev(fd, iov, 3, off);
        } else {
            n = pwrite(fd, buf, len, off);
        }
        CHECK(n > 0, "pwrite%s at %lld: %s", vectors ? "v" : "", (long long)off, strerror(errno));
        buf += n;
        len -= (size_t)n;
        off += n;
    }
}

/* readv or preadv of `len` bytes at `off` into `buf` through three vectors. */
static void get(char *buf, size_t len, off_t off, int positioned, int myfd)
{
    size_t done = 0;
    while (done < len) {
        size_t left = len - done, a = left / 3, b = left / 3;
        struct iovec iov[3] = {{buf + done, a}, {buf + done + a, b}, {buf + done + a + b, left - a - b}};
        ssize_t n;
        if (positioned) {
            n = preadv(myfd, iov, 3, off + (off_t)done);
        } else {
            CHECK(lseek(myfd, off + (off_t)done, SEEK_SET) == off + (off_t)done, "lseek");
            n = readv(myfd, iov, 3);
        }
        CHECK(n > 0, "read%s at %lld: %zd %s", positioned ? "pv" : "v", (long long)(off + done), n,
              strerror(errno));
        done += (size_t)n;
    }
}

/* The words of the tail read as the fixed pattern or as zero (at rest);
 * while writers copy into them, byte by byte (`racing`: a copy may be
 * seen half done). */
static void check_tail_words(const char *buf, size_t len, off_t off, int racing, const char *when)
{
    for (size_t i = 0; i + 4 <= len; i += 4) {
        uint32_t w, p;
        uint64_t at = (uint64_t)off + i;
        memcpy(&w, buf + i, 4);
        p = pat32(at, FIXED);
        int ok = w == 0 || w == p;
        for (int k = 0; racing && k < 4; k++) {
            unsigned b = (w >> (8 * k)) & 0xff;
            ok = (k == 0 || ok) && (b == 0 || b == ((p >> (8 * k)) & 0xff));
        }
        CHECK(ok, "%s: tail word at %#llx is %#x", when, (unsigned long long)at, w);
    }
}

/* Writes the whole region of thread `t` with the pattern of `round`, in
 * pieces cut at pseudo-random odd offsets. */
static void write_region(int t, long round, uint32_t *r, char *buf)
{
    off_t base = (off_t)t * REGION;
    uint32_t seed = seed_of(t, round);
    pat_fill(buf, REGION, (uint64_t)base, seed);
    size_t at = 0;
    int k = 0;
    while (at < REGION) {
        size_t n = 1 + rnd_next(r) % (3 * PAGE);
        if (n > REGION - at)
            n = REGION - at;
        put(buf + at, n, base + (off_t)at, k++ % 2);
        at += n;
    }
}

static void *writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint32_t r = 0x12345u * (uint32_t)(t + 1);
    int myfd = SYS(open("cw.dat", O_RDWR)); /* its own description for readv */
    static __thread char buf[REGION], back[REGION], piece[2 * PAGE];
    off_t base = (off_t)t * REGION;
    pthread_barrier_wait(&go);
    for (long round = 1; round <= rounds; round++) {
        write_region(t, round, &r, buf);
        get(back, REGION, base, round % 2, myfd);
        CHECK(pat_check(back, REGION, (uint64_t)base, seed_of(t, round)) < 0,
              "thread %d round %ld: its region reads back wrong at %ld", t, round,
              pat_check(back, REGION, (uint64_t)base, seed_of(t, round)));
        /* The shared region: the fixed pattern at a random spot. */
        size_t n = 1 + rnd_next(&r) % sizeof piece;
        off_t off = shared_at + (off_t)(rnd_next(&r) % (SHARED - n + 1));
        put(fixed + (off - shared_at), n, off, round % 2);
        n = 1 + rnd_next(&r) % sizeof piece;
        off = shared_at + (off_t)(rnd_next(&r) % (SHARED - n + 1));
        get(piece, n, off, 1, myfd);
        CHECK(memcmp(piece, fixed + (off - shared_at), n) == 0, "shared region at %lld",
              (long long)off);
        /* The tail, whole words of the fixed pattern (this may regrow a
         * file the truncater just shrank). */
        n = 4 * (1 + rnd_next(&r) % (PAGE / 2));
        off = tail_at + 4 * (off_t)(rnd_next(&r) % ((TAIL - n) / 4 + 1));
        put(fixed + (off - shared_at), n, off, 0);
    }
    SYS(close(myfd));
    return NULL;
}

static void *truncater(void *arg)
{
    (void)arg;
    uint32_t r = 0xabcdu;
    static char buf[TAIL];
    long cuts = 0;
    pthread_barrier_wait(&go);
    while (!writers_done || cuts < 10) {
        off_t len = tail_at + 4 * (off_t)(rnd_next(&r) % (TAIL / 4 + 1));
        if (cuts % 3 == 2)
            SYS(truncate("cw.dat", len));
        else
            SYS(ftruncate(fd, len));
        struct stat st;
        SYS(fstat(fd, &st));
        CHECK(st.st_size >= tail_at, "fstat size %lld under the tail's start", (long long)st.st_size);
        SYS(ftruncate(fd, full_size));
        ssize_t got = pread(fd, buf, TAIL, tail_at);
        CHECK(got >= 0, "pread of the tail");
        check_tail_words(buf, (size_t)got & ~(size_t)3, tail_at, 1, "under the writers");
        cuts++;
    }
    printf("cached_write: %ld truncates under the writers\n", cuts);
    return NULL;
}

/* fstat from every vCPU at once, each thread its own unchanged file
 * (what a server's worker threads do before sending a file): every
 * answer must agree with the first, and on cairn nearly all must go
 * without the kernel lock. A locked fstat must not make the other files'
 * remembered stats stale (they ping-ponged: each locked fstat moved the
 * volume's generation, so the other thread's next fstat was locked too). */
#define STATS_PER_THREAD 4000
static pthread_barrier_t stat_go;

static void *stater(void *arg)
{
    int t = (int)(intptr_t)arg;
    char name[32];
    snprintf(name, sizeof name, "cw-stat-%d.dat", t);
    int f = SYS(open(name, O_CREAT | O_TRUNC | O_RDWR, 0644));
    char b[PAGE];
    memset(b, t + 1, sizeof b);
    pwrite_all(f, b, sizeof b, 0);
    struct stat first, st;
    SYS(fstat(f, &first));
    pthread_barrier_wait(&stat_go);
    for (int i = 0; i < STATS_PER_THREAD; i++) {
        SYS(fstat(f, &st));
        CHECK(st.st_ino == first.st_ino && st.st_size == first.st_size &&
                  st.st_mtim.tv_nsec == first.st_mtim.tv_nsec,
              "thread %d: fstat %d disagrees with its first", t, i);
    }
    SYS(close(f));
    SYS(c_unlink(name));
    return NULL;
}

static void fstat_everywhere(int threads, int have_kstats)
{
    struct kstats a, b;
    pthread_t th[MAX_T];
    CHECK(pthread_barrier_init(&stat_go, NULL, (unsigned)threads + 1) == 0, "barrier");
    for (int t = 0; t < threads; t++)
        CHECK(pthread_create(&th[t], NULL, stater, (void *)(intptr_t)t) == 0, "pthread_create");
    if (have_kstats)
        CHECK(kstats_read(&a) == 0, "kstats");
    pthread_barrier_wait(&stat_go);
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    if (have_kstats) {
        CHECK(kstats_read(&b) == 0, "kstats");
        long long fl = kstat(&b, "syscalls.fstat_lockless") - kstat(&a, "syscalls.fstat_lockless");
        long long all = (long long)threads * STATS_PER_THREAD;
        printf("cached_write: %d threads' fstats of their own files: %lld of %lld without the kernel lock\n",
               threads, fl, all);
        CHECK(fl * 10 >= all * 9, "only %lld of %lld fstats of unchanged files went without the kernel lock",
              fl, all);
    }
}

static double mtime_of(const struct stat *st) { return (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9; }
static double ctime_of(const struct stat *st) { return (double)st->st_ctim.tv_sec + st->st_ctim.tv_nsec / 1e9; }

int main(int argc, char **argv)
{
    test_init("cached_write");
    nthreads = 2 * (int)arg_long(argc, argv, 1, 2);
    rounds = arg_long(argc, argv, 2, 150);
    CHECK(nthreads <= MAX_T, "threads %d", nthreads);
    struct kstats k0, k1;
    int have_kstats = kstats_read(&k0) == 0;
    shared_at = (off_t)nthreads * REGION;
    tail_at = shared_at + SHARED;
    full_size = tail_at + TAIL;

    /* The file, written (so its storage is reserved) and synced. */
    fd = SYS(open("cw.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    static char buf[REGION];
    for (int t = 0; t < nthreads; t++) {
        pat_fill(buf, REGION, (uint64_t)t * REGION, seed_of(t, 0));
        pwrite_all(fd, buf, REGION, (off_t)t * REGION);
    }
    pat_fill(fixed, sizeof fixed, (uint64_t)shared_at, FIXED);
    pwrite_all(fd, fixed, sizeof fixed, shared_at);
    SYS(fsync(fd));

    pthread_t w[MAX_T], tr;
    CHECK(pthread_barrier_init(&go, NULL, (unsigned)nthreads + 1) == 0, "barrier");
    for (int t = 0; t < nthreads; t++)
        CHECK(pthread_create(&w[t], NULL, writer, (void *)(intptr_t)t) == 0, "pthread_create");
    CHECK(pthread_create(&tr, NULL, truncater, NULL) == 0, "pthread_create");
    for (int t = 0; t < nthreads; t++)
        pthread_join(w[t], NULL);
    writers_done = 1;
    pthread_join(tr, NULL);
    SYS(ftruncate(fd, full_size));
    SYS(fsync(fd));

    /* Clean, cached pages: one more whole rewrite of each region (each
     * must dirty its pages again to reach the disk), by write/writev
     * through the shared offset for odd threads. */
    struct stat s0, s1, s2;
    SYS(fstat(fd, &s0));
    CHECK(s0.st_size == full_size, "size %lld after the race, not %lld", (long long)s0.st_size,
          (long long)full_size);
    sleep_ms(20);
    long last = rounds + 1;
    for (int t = 0; t < nthreads; t++) {
        off_t base = (off_t)t * REGION;
        pat_fill(buf, REGION, (uint64_t)base, seed_of(t, last));
        if (t % 2) {
            CHECK(lseek(fd, base, SEEK_SET) == base, "lseek");
            size_t h = REGION / 2;
            struct iovec iov[2] = {{buf, h}, {buf + h, REGION - h}};
            CHECK(writev(fd, iov, 2) == REGION, "writev");
            CHECK(lseek(fd, 0, SEEK_CUR) == base + REGION, "offset after writev");
        } else {
            for (size_t at = 0; at < REGION; at += PAGE)
                CHECK(pwrite(fd, buf + at, PAGE, base + (off_t)at) == PAGE, "pwrite");
        }
    }
    SYS(fstat(fd, &s1));
    CHECK(mtime_of(&s1) > mtime_of(&s0), "mtime did not move with a write: %.9f then %.9f",
          mtime_of(&s0), mtime_of(&s1));
    CHECK(ctime_of(&s1) > ctime_of(&s0), "ctime did not move with a write");
    CHECK(s1.st_size == full_size, "size moved with overwrites");
    SYS(fsync(fd));
    SYS(fstat(fd, &s2));
    CHECK(mtime_of(&s2) > mtime_of(&s0) && mtime_of(&s1) - mtime_of(&s2) < 1e-6 &&
              mtime_of(&s2) - mtime_of(&s1) < 1e-6,
          "mtime after fsync %.9f, before %.9f", mtime_of(&s2), mtime_of(&s1));
    for (int i = 0; i < 20; i++) {
        struct stat again;
        SYS(fstat(fd, &again));
        CHECK(again.st_size == s2.st_size && again.st_mtim.tv_sec == s2.st_mtim.tv_sec &&
                  again.st_mtim.tv_nsec == s2.st_mtim.tv_nsec && again.st_ino == s2.st_ino,
              "fstat %d disagrees with the one before", i);
    }
    struct stat sp;
    SYS(stat("cw.dat", &sp));
    CHECK(sp.st_mtim.tv_sec == s2.st_mtim.tv_sec && sp.st_mtim.tv_nsec == s2.st_mtim.tv_nsec,
          "stat by path disagrees with fstat");

    /* From the disk (O_DIRECT: no reboot), and through the cache. */
    char *disk = NULL, *cached = malloc((size_t)full_size);
    CHECK(posix_memalign((void **)&disk, PAGE, (size_t)full_size) == 0 && cached, "buffers");
    int dfd = SYS(open("cw.dat", O_RDONLY | O_DIRECT));
    ssize_t got = pread(dfd, disk, (size_t)full_size, 0);
    CHECK(got == full_size, "O_DIRECT read %zd of %lld", got, (long long)full_size);
    SYS(close(dfd));
    pread_all(fd, cached, (size_t)full_size, 0);
    for (int t = 0; t < nthreads; t++) {
        off_t base = (off_t)t * REGION;
        long bad = pat_check(disk + base, REGION, (uint64_t)base, seed_of(t, last));
        CHECK(bad < 0, "on disk, thread %d's region is wrong at +%ld (%s)", t, bad,
              pat_check(disk + base, REGION, (uint64_t)base, seed_of(t, rounds)) < 0
                  ? "it holds the write before the last: the rewrite of clean pages was lost"
                  : "not its last two writes");
    }
    CHECK(pat_check(disk + shared_at, SHARED, (uint64_t)shared_at, FIXED) < 0,
          "on disk, the shared region is wrong");
    check_tail_words(disk + tail_at, TAIL, tail_at, 0, "on disk");
    CHECK(memcmp(disk, cached, (size_t)full_size) == 0, "the disk and the cache differ");
    free(disk);
    free(cached);

    if (have_kstats) {
        CHECK(kstats_read(&k1) == 0, "kstats");
        long long wl = kstat(&k1, "syscalls.write_lockless") - kstat(&k0, "syscalls.write_lockless");
        long long fl = kstat(&k1, "syscalls.fstat_lockless") - kstat(&k0, "syscalls.fstat_lockless");
        printf("cached_write: writes without the kernel lock %lld, fstats %lld\n", wl, fl);
        CHECK(kstat(&k1, "syscalls.write_lockless") >= 0, "kstats has no syscalls.write_lockless");
        CHECK(wl >= nthreads, "only %lld writes took the path without the kernel lock", wl);
        CHECK(fl >= 1, "no fstat of an unchanged file took the path without the kernel lock");
    }
    fstat_everywhere(nthreads / 2, have_kstats);
    SYS(close(fd));
    SYS(c_unlink("cw.dat"));
    pass();
}
