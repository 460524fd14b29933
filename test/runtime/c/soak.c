/*
 * soak: repeats one operation a program does all day and checks that the
 * kernel's accounting (/proc/cairn/kstats: heap bytes and objects, threads,
 * open files, descriptors, mappings, pagecache nodes) does not grow between
 * the end of a warm-up and the end of the run. A leak of anything per
 * operation grows by at least the operation count, far past the bounds.
 *
 *   soak MODE COUNT
 *
 * MODE: fsync   pwrite 4 KiB + fsync of one file, COUNT times
 *       unlink  create/write 8 KiB/close/unlink cycles, COUNT times, in
 *               turn without fsync, with fsync, and renamed over a dirty
 *               file (whose old inode goes away unlinked while dirty)
 *       threads pthread_create + pthread_join, COUNT times
 *       mmap    mmap (shared, written; private, read) + munmap of a 64 KiB
 *               file, COUNT times
 *       open    open and close 1,000 files, COUNT rounds
 *
 * The warm-up is a tenth of COUNT (at least 20 operations, one round for
 * `open`). The suite runs short counts (the manifests); `cargo xtask test
 * --soak` runs the long ones. Natively (no /proc/cairn/kstats) it only does
 * the work.
 */
#include "cairn_test.h"

#define OPEN_FILES 1000

static char buf[8192];

static void op_fsync(long i)
{
    static int fd = -1;
    if (fd < 0)
        fd = SYS(open("soak-fsync.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    pat_fill(buf, PAGE, (uint64_t)i * PAGE, 7);
    pwrite_all(fd, buf, PAGE, (off_t)(i % 16) * PAGE);
    SYS(fsync(fd));
}

static void write_file(const char *path, uint32_t seed, int do_fsync)
{
    int fd = SYS(open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644));
    pat_fill(buf, sizeof buf, 0, seed);
    write_all(fd, buf, sizeof buf);
    if (do_fsync)
        SYS(fsync(fd));
    SYS(close(fd));
}

static void op_unlink(long i)
{
    switch (i % 3) {
    case 0:
        write_file("soak-a", (uint32_t)i, 0);
        SYS(c_unlink("soak-a"));
        break;
    case 1:
        write_file("soak-a", (uint32_t)i, 1);
        SYS(c_unlink("soak-a"));
        break;
    default:
        /* b is dirty when a replaces it. */
        write_file("soak-b", (uint32_t)i, 0);
        write_file("soak-a", (uint32_t)i + 1, 0);
        SYS(c_rename("soak-a", "soak-b"));
        check_pattern_file("soak-b", sizeof buf, (uint32_t)i + 1);
        SYS(c_unlink("soak-b"));
        break;
    }
}

static void *thread_main(void *arg)
{
    return (char *)arg + 1;
}

static void op_threads(long i)
{
    pthread_t t;
    void *ret;
    char *arg = (char *)(uintptr_t)(i * 2);
    if (pthread_create(&t, NULL, thread_main, arg) != 0)
        FAIL("pthread_create (iteration %ld)", i);
    if (pthread_join(t, &ret) != 0)
        FAIL("pthread_join (iteration %ld)", i);
    CHECK(ret == arg + 1, "thread %ld returned the wrong value", i);
}

#define MAP_BYTES (16 * PAGE)

static void op_mmap(long i)
{
    static int fd = -1;
    if (fd < 0) {
        make_pattern_file("soak-map.dat", MAP_BYTES, 9, 0);
        fd = SYS(open("soak-map.dat", O_RDWR));
    }
    uint32_t *p = SYSP(mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    size_t w = (size_t)(i % (MAP_BYTES / 4));
    p[w] = pat32(4 * w, 9); /* the same value: the file keeps its pattern */
    for (size_t off = 0; off < MAP_BYTES; off += PAGE)
        CHECK(p[off / 4] == pat32(off, 9), "shared mapping: wrong word at %zu", off);
    SYS(munmap(p, MAP_BYTES));
    const uint32_t *q = SYSP(mmap(NULL, MAP_BYTES, PROT_READ, MAP_PRIVATE, fd, 0));
    CHECK(q[(i % 16) * PAGE / 4] == pat32((uint64_t)(i % 16) * PAGE, 9),
          "private mapping: wrong word");
    SYS(munmap((void *)q, MAP_BYTES));
}

static void op_open(long round)
{
    static int fds[OPEN_FILES];
    static int made;
    char name[32];
    if (!made) {
        SYS(c_mkdir("soak-files"));
        for (int f = 0; f < OPEN_FILES; f++) {
            snprintf(name, sizeof name, "soak-files/%d", f);
            int fd = SYS(open(name, O_CREAT | O_WRONLY, 0644));
            SYS(close(fd));
        }
        made = 1;
    }
    for (int f = 0; f < OPEN_FILES; f++) {
        snprintf(name, sizeof name, "soak-files/%d", f);
        fds[f] = open(name, (round + f) % 2 ? O_RDONLY : O_RDWR);
        if (fds[f] < 0)
            FAIL("open %s (round %ld)", name, round);
    }
    for (int f = 0; f < OPEN_FILES; f++)
        SYS(close(fds[f]));
}

struct mode {
    const char *name;
    void (*op)(long);
};

static const struct mode modes[] = {
    {"fsync", op_fsync},     {"unlink", op_unlink}, {"threads", op_threads},
    {"mmap", op_mmap},       {"open", op_open},
};

int main(int argc, char **argv)
{
    test_init("soak");
    if (argc < 3)
        FAIL("usage: soak MODE COUNT");
    const struct mode *m = NULL;
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++)
        if (strcmp(argv[1], modes[k].name) == 0)
            m = &modes[k];
    if (!m)
        FAIL("unknown mode %s", argv[1]);
    long count = arg_long(argc, argv, 2, 100);
    long warm = strcmp(m->name, "open") == 0 ? 1 : (count / 10 > 20 ? count / 10 : 20);

    struct worker_progress *w = worker(m->name);
    /* A stuck operation is named after 120 s; the alarm is for the short
     * counts of the suite: a long (--soak) run leaves the last resort to
     * the runner's timeout. */
    watchdog_start(120, 240);
    if (count > (strcmp(m->name, "open") == 0 ? 10 : 1000))
        alarm(0);

    for (long i = 0; i < warm; i++) {
        m->op(i);
        tick(w, "warm-up");
    }
    /* Both snapshots follow a sync: work still queued (TFS records not yet
     * committed, space freed at the next commit) is done, so what the
     * snapshots differ by is what the kernel keeps. */
    sync();
    struct kstats a, b;
    int have = kstats_read(&a) == 0;
    if (have)
        kstats_print("after warm-up", &a);
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        m->op(warm + i);
        tick(w, m->name);
        if (have && count >= 10 && (i + 1) % (count / 10) == 0) {
            struct kstats k;
            kstats_read(&k);
            printf("soak %s: %ld of %ld, threads %lld, files %lld, heap.general.bytes %lld\n",
                   m->name, i + 1, count, kstat(&k, "threads"), kstat(&k, "files"),
                   kstat(&k, "heap.general.bytes"));
        }
    }
    double secs = now_s() - t0;
    w->done = 1;
    printf("soak %s: %ld operations in %.1f s\n", m->name, count, secs);
    if (!have)
        pass();
    sync();
    kstats_read(&b);
    kstats_print("at the end", &b);

    /* Bounds: a little slack for caches that settle (and the pagecache,
     * whose frames are physical pages), none for what one operation
     * makes. */
    int bad = 0;
    /* Creating and removing files adds records to TFS's log, whose
     * dictionary (an index entry per entity the log chain names) is kept in
     * memory until compaction rewrites the chain, every 8,192 obsolete
     * entries: up to ~1,000 objects of metadata that a short run sees grow
     * and a long run (--soak: 20,000 cycles, several compactions) sees come
     * back. A leak of one object per cycle still passes this slack only in
     * the short run. */
    long long log_slack = strcmp(m->name, "unlink") == 0 ? 1024 : 0;
    long long pages = kstat(&b, "pagecache.pages") - kstat(&a, "pagecache.pages");
    long long cache_bytes = pages > 0 ? pages * PAGE : 0;
    for (int i = 0; i < b.n; i++) {
        const char *n = b.name[i];
        size_t l = strlen(n);
        if (strncmp(n, "heap.", 5) != 0)
            continue;
        if (l > 8 && strcmp(n + l - 8, ".objects") == 0)
            bad |= kstats_grew(&a, &b, n, 128 + log_slack + (cache_bytes ? pages : 0));
        else if (l > 6 && strcmp(n + l - 6, ".bytes") == 0)
            bad |= kstats_grew(&a, &b, n, (1 << 20) + cache_bytes);
    }
    bad |= kstats_grew(&a, &b, "threads", 2);
    bad |= kstats_grew(&a, &b, "user_threads", 0);
    bad |= kstats_grew(&a, &b, "files", 0);
    bad |= kstats_grew(&a, &b, "fds", 0);
    bad |= kstats_grew(&a, &b, "vmaps", 2);
    bad |= kstats_grew(&a, &b, "pagecache.nodes", 16);
    if (bad)
        FAIL("soak %s: the kernel's accounting grew over %ld operations (see GROWTH)", m->name,
             count);
    pass();
}
