/* seed_mman_race (seeds/000, Mystikos mman races and mman/fs/fd-table
 * lock inversions): threads race mmap/munmap/mremap of file and anonymous
 * mappings while others open/read/close files and msync shared mappings.
 * Every thread checks the data it sees; each runs at least `iters`
 * iterations. A lock-order inversion between the fd table, the filesystem
 * and the address space shows up as a hang the watchdog names.
 *
 * argv[1]: iterations (default 200). race-map.dat and race-io.dat come
 * with the image (64 pages of patterns 41 and 42). */
#include "cairn_test.h"

#define MAP_PAGES 64
static long iters;
static struct worker_progress *w_file, *w_anon, *w_io, *w_sync;

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* File mappings: map, fault, grow and shrink with mremap, unmap. */
static void *file_mapper(void *arg)
{
    uint32_t s = 0x1234567;
    for (long i = 0; i < iters; i++) {
        tick(w_file, "open");
        int fd = SYS(open("race-map.dat", O_RDONLY));
        size_t first = rnd(&s) % (MAP_PAGES / 2), n = 1 + rnd(&s) % 8;
        int shared = i % 2;
        tick(w_file, "mmap");
        char *p = SYSP(mmap(NULL, n * PAGE, PROT_READ, shared ? MAP_SHARED : MAP_PRIVATE, fd,
                            (off_t)(first * PAGE)));
        tick(w_file, "fault");
        for (size_t k = 0; k < n; k++)
            CHECK(pat_check(p + k * PAGE, 64, (first + k) * PAGE, 41) < 0,
                  "file map data iter %ld page %zu", i, k);
        size_t m = n + 1 + rnd(&s) % 8;
        tick(w_file, "mremap grow");
        char *q = SYSP(mremap(p, n * PAGE, m * PAGE, MREMAP_MAYMOVE));
        tick(w_file, "fault grown");
        for (size_t k = 0; k < m; k++)
            CHECK(pat_check(q + k * PAGE, 64, (first + k) * PAGE, 41) < 0,
                  "grown map data iter %ld page %zu", i, k);
        tick(w_file, "mremap shrink");
        q = SYSP(mremap(q, m * PAGE, PAGE, 0));
        CHECK(pat_check(q, PAGE, first * PAGE, 41) < 0, "shrunk map iter %ld", i);
        tick(w_file, "close");
        SYS(close(fd)); /* the mapping outlives the descriptor */
        CHECK(pat_check(q, PAGE, first * PAGE, 41) < 0, "map after close iter %ld", i);
        tick(w_file, "munmap");
        SYS(munmap(q, PAGE));
    }
    w_file->done = 1;
    return arg;
}

/* Anonymous mappings: map, fill, grow (moving), shrink, unmap. */
static void *anon_mapper(void *arg)
{
    uint32_t s = 0x89abcdef;
    for (long i = 0; i < iters; i++) {
        size_t n = 1 + rnd(&s) % 16;
        tick(w_anon, "mmap");
        uint32_t *p = SYSP(mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        for (size_t k = 0; k < n * PAGE / 4; k += 256)
            p[k] = (uint32_t)(i * 1000 + k);
        /* A neighbour to block growth in place now and then. */
        void *block = NULL;
        if (i % 3 == 0)
            block = mmap((char *)p + n * PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                         0);
        tick(w_anon, "mremap grow");
        uint32_t *q = SYSP(mremap(p, n * PAGE, 2 * n * PAGE, MREMAP_MAYMOVE));
        for (size_t k = 0; k < n * PAGE / 4; k += 256)
            CHECK(q[k] == (uint32_t)(i * 1000 + k), "anon data moved wrongly, iter %ld", i);
        for (size_t k = n * PAGE / 4; k < 2 * n * PAGE / 4; k += 256)
            CHECK(q[k] == 0, "grown anon memory not zero, iter %ld", i);
        tick(w_anon, "mremap shrink");
        q = SYSP(mremap(q, 2 * n * PAGE, PAGE, 0));
        CHECK(q[0] == (uint32_t)(i * 1000), "shrunk anon, iter %ld", i);
        tick(w_anon, "munmap");
        SYS(munmap(q, PAGE));
        if (block && block != MAP_FAILED)
            SYS(munmap(block, PAGE));
    }
    w_anon->done = 1;
    return arg;
}

/* Files: open/read/close, and create/write/unlink of scratch files. */
static void *io_worker(void *arg)
{
    static char buf[4 * PAGE];
    uint32_t s = 0x5555;
    for (long i = 0; i < iters; i++) {
        tick(w_io, "open");
        int fd = SYS(open("race-io.dat", O_RDONLY));
        size_t page = rnd(&s) % (MAP_PAGES - 4);
        tick(w_io, "read");
        pread_all(fd, buf, sizeof buf, (off_t)(page * PAGE));
        CHECK(pat_check(buf, sizeof buf, page * PAGE, 42) < 0, "race-io data, iter %ld", i);
        tick(w_io, "close");
        SYS(close(fd));
        if (i % 4 == 0) {
            char name[32];
            snprintf(name, sizeof name, "race-tmp%ld", i % 8);
            tick(w_io, "create");
            fd = SYS(open(name, O_CREAT | O_TRUNC | O_RDWR, 0644));
            pat_fill(buf, PAGE, 0, (uint32_t)i);
            write_all(fd, buf, PAGE);
            tick(w_io, "close tmp");
            SYS(close(fd));
            tick(w_io, "unlink");
            SYS(c_unlink(name));
        }
    }
    w_io->done = 1;
    return arg;
}

/* A shared mapping of its own file: store, msync, check through read(). */
static void *syncer(void *arg)
{
    static char buf[PAGE];
    int fd = SYS(open("race-sync.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    SYS(ftruncate(fd, 8 * PAGE));
    for (long i = 0; i < iters; i++) {
        tick(w_sync, "mmap");
        char *p = SYSP(mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        size_t page = (size_t)i % 8;
        pat_fill(p + page * PAGE, PAGE, page * PAGE, (uint32_t)(300 + i));
        tick(w_sync, "msync");
        SYS(msync(p + page * PAGE, PAGE, i % 2 ? MS_SYNC : MS_ASYNC));
        tick(w_sync, "pread");
        pread_all(fd, buf, PAGE, (off_t)(page * PAGE));
        CHECK(pat_check(buf, PAGE, page * PAGE, (uint32_t)(300 + i)) < 0,
              "read() after msync, iter %ld", i);
        tick(w_sync, "munmap");
        SYS(munmap(p, 8 * PAGE));
    }
    close(fd);
    w_sync->done = 1;
    return arg;
}

int main(int argc, char **argv)
{
    test_init("seed_mman_race");
    iters = arg_long(argc, argv, 1, 200);
    w_file = worker("file-mapper");
    w_anon = worker("anon-mapper");
    w_io = worker("io");
    w_sync = worker("msync");
    /* argv[4]: seconds before alarm() ends a hung run (default 240). */
    watchdog_start((int)arg_long(argc, argv, 2, 30), (unsigned)arg_long(argc, argv, 4, 240));
    /* argv[3]: CPU-bound threads to run beside the test's own (default 0). */
    int spin = (int)arg_long(argc, argv, 3, 0);
    spinners_start(spin);
    void *(*fns[])(void *) = {file_mapper, anon_mapper, io_worker, syncer};
    pthread_t th[4];
    for (int t = 0; t < 4; t++)
        CHECK(pthread_create(&th[t], NULL, fns[t], NULL) == 0, "pthread_create");
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    printf("seed_mman_race: %ld iterations x 4 threads\n", iters);
    if (spin) {
        /* The watchdog, a sleeping thread, must have kept running. */
        watchdog_await_rounds(2);
        spinners_stop_all();
    }
    pass();
}
