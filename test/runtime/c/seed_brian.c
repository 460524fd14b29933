/* seed_brian (seeds/002, QNX "Brian's scenario"): read(fd, p, n) where p
 * is an untouched MAP_SHARED mapping of the same file, so the copy to the
 * user faults into the very file (and pages) the read is reading. Also
 * the mirror image (write(fd, p) from a mapping of the same file) and a
 * private-mapping variant. Two threads (one per vCPU), each on its own
 * half of brian.dat, every iteration on never-touched pages: the faults
 * need the disk. A kernel that holds a file or pagecache lock across the
 * user copy hangs here; the watchdog reports which thread.
 *
 * argv[1]: iterations per thread (default 200; brian.dat must hold
 * 2 threads x iterations x 2 pages of pattern 21). */
#include "cairn_test.h"

#define SEED 21
static long iters;
static struct worker_progress *wp[2];

static void *run(void *arg)
{
    long t = (long)arg;
    struct worker_progress *w = wp[t];
    int fd = SYS(open("brian.dat", O_RDWR));
    for (long i = 0; i < iters; i++) {
        off_t r = (off_t)((t * iters + i) * 2 * PAGE);
        int variant = (int)(i % 4);
        int flags = variant == 3 ? MAP_PRIVATE : MAP_SHARED;
        tick(w, "mmap");
        char *p = SYSP(mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, flags, fd, r));
        static __thread char buf[PAGE];
        switch (variant) {
        case 0: /* Read the region into its own (untouched) mapping. */
            tick(w, "pread into own mapping");
            CHECK(pread(fd, p, 2 * PAGE, r) == 2 * PAGE, "pread into own mapping, iter %ld", i);
            CHECK(pat_check(p, 2 * PAGE, (uint64_t)r, SEED) < 0, "data, iter %ld", i);
            break;
        case 1: /* Read file page 1 into mapped page 0 (both untouched). */
            tick(w, "read into neighbour page");
            SYS(lseek(fd, r + PAGE, SEEK_SET));
            CHECK(read(fd, p, PAGE) == PAGE, "read into mapping, iter %ld", i);
            CHECK(pat_check(p, PAGE, (uint64_t)(r + PAGE), SEED) < 0, "mapped data, iter %ld", i);
            pread_all(fd, buf, PAGE, r);
            CHECK(pat_check(buf, PAGE, (uint64_t)(r + PAGE), SEED) < 0,
                  "read() does not see the store the read made, iter %ld", i);
            break;
        case 2: /* Write mapped page 0 (untouched) into file page 1. */
            tick(w, "write from own mapping");
            CHECK(pwrite(fd, p, PAGE, r + PAGE) == PAGE, "pwrite from mapping, iter %ld", i);
            CHECK(pat_check(p + PAGE, PAGE, (uint64_t)r, SEED) < 0,
                  "mapping does not see the write, iter %ld", i);
            break;
        case 3: /* Private mapping: the read's store stays private. */
            tick(w, "pread into private mapping");
            CHECK(pread(fd, p, PAGE, r + PAGE) == PAGE, "pread into private map, iter %ld", i);
            CHECK(pat_check(p, PAGE, (uint64_t)(r + PAGE), SEED) < 0, "private data, iter %ld",
                  i);
            pread_all(fd, buf, PAGE, r);
            CHECK(pat_check(buf, PAGE, (uint64_t)r, SEED) < 0,
                  "a private store reached the file, iter %ld", i);
            break;
        }
        tick(w, "munmap");
        SYS(munmap(p, 2 * PAGE));
    }
    close(fd);
    w->done = 1;
    return NULL;
}

int main(int argc, char **argv)
{
    test_init("seed_brian");
    iters = arg_long(argc, argv, 1, 200);
    struct stat st;
    SYS(stat("brian.dat", &st));
    CHECK(st.st_size >= 2 * iters * 2 * PAGE, "brian.dat too small for %ld iterations", iters);
    wp[0] = worker("brian-0");
    wp[1] = worker("brian-1");
    /* argv[4]: seconds before alarm() ends a hung run (default 240). */
    watchdog_start((int)arg_long(argc, argv, 2, 30), (unsigned)arg_long(argc, argv, 4, 240));
    /* argv[3]: CPU-bound threads to run beside the test's own (default 0). */
    int spin = (int)arg_long(argc, argv, 3, 0);
    spinners_start(spin);
    pthread_t th[2];
    for (long t = 0; t < 2; t++)
        CHECK(pthread_create(&th[t], NULL, run, (void *)t) == 0, "pthread_create");
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    printf("seed_brian: %ld iterations x 2 threads\n", iters);
    if (spin) {
        /* The watchdog, a sleeping thread, must have kept running. */
        watchdog_await_rounds(2);
        spinners_stop_all();
    }
    pass();
}
