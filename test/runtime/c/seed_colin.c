/* seed_colin (seeds/002, QNX "Colin's scenario"): one thread faults on a
 * mapped file (never-touched pages, so the faults wait for the disk)
 * while another reads and writes a different file into buffers that
 * themselves fault: fresh anonymous memory and a fresh mapping of a third
 * file. A kernel that holds the address-space lock (or any lock) across
 * the fault's I/O deadlocks or stalls the second thread; the watchdog
 * names it.
 *
 * argv[1]: iterations (default 200; colin-map.dat and colin-buf.dat must
 * hold iterations x 4 pages of patterns 31 and 33). */
#include "cairn_test.h"

#define N 4
static long iters;
static struct worker_progress *wf, *wr;

static void *faulter(void *arg)
{
    int fd = SYS(open("colin-map.dat", O_RDWR));
    for (long i = 0; i < iters; i++) {
        off_t r = (off_t)(i * N * PAGE);
        int shared = i % 2 == 0;
        tick(wf, "mmap");
        char *p = SYSP(mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE,
                            shared ? MAP_SHARED : MAP_PRIVATE, fd, r));
        for (int k = 0; k < N; k++) {
            tick(wf, "fault");
            CHECK(pat_check(p + k * PAGE, PAGE, (uint64_t)(r + k * PAGE), 31) < 0,
                  "mapped data, iter %ld page %d", i, k);
            p[k * PAGE + 8] ^= 1; /* a store: dirty shared page or COW */
        }
        if (shared && i % 8 == 0) {
            tick(wf, "msync");
            SYS(msync(p, N * PAGE, MS_SYNC));
        }
        tick(wf, "munmap");
        SYS(munmap(p, N * PAGE));
    }
    close(fd);
    wf->done = 1;
    return arg;
}

static void *reader(void *arg)
{
    static char src[N * PAGE];
    int fd = SYS(open("colin-rw.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    int fb = SYS(open("colin-buf.dat", O_RDWR));
    for (long i = 0; i < iters; i++) {
        off_t r = (off_t)((i % 16) * N * PAGE);
        pat_fill(src, sizeof src, (uint64_t)r, (uint32_t)(32 + i));
        tick(wr, "pwrite");
        pwrite_all(fd, src, sizeof src, r);

        /* Into untouched anonymous memory. */
        tick(wr, "mmap anon");
        char *a = SYSP(mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        tick(wr, "pread into fresh anon");
        CHECK(pread(fd, a, N * PAGE, r) == N * PAGE, "pread into anon, iter %ld", i);
        CHECK(!memcmp(a, src, sizeof src), "anon data, iter %ld", i);

        /* Into an untouched shared mapping of a third file. */
        off_t br = (off_t)(i * N * PAGE);
        tick(wr, "mmap buffer file");
        char *b = SYSP(mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fb, br));
        tick(wr, "pread into fresh file mapping");
        CHECK(pread(fd, b, N * PAGE, r) == N * PAGE, "pread into file map, iter %ld", i);
        CHECK(!memcmp(b, src, sizeof src), "file-map data, iter %ld", i);
        /* And from it: write the mapped buffer back to the first file. */
        tick(wr, "pwrite from file mapping");
        pwrite_all(fd, b, N * PAGE, r);
        tick(wr, "munmap");
        SYS(munmap(b, N * PAGE));
        SYS(munmap(a, N * PAGE));
    }
    close(fb);
    close(fd);
    wr->done = 1;
    return arg;
}

int main(int argc, char **argv)
{
    test_init("seed_colin");
    iters = arg_long(argc, argv, 1, 200);
    struct stat st;
    SYS(stat("colin-map.dat", &st));
    CHECK(st.st_size >= iters * N * PAGE, "colin-map.dat too small");
    SYS(stat("colin-buf.dat", &st));
    CHECK(st.st_size >= iters * N * PAGE, "colin-buf.dat too small");
    wf = worker("faulter");
    wr = worker("reader-writer");
    /* argv[4]: seconds before alarm() ends a hung run (default 240). */
    watchdog_start((int)arg_long(argc, argv, 2, 30), (unsigned)arg_long(argc, argv, 4, 240));
    /* argv[3]: CPU-bound threads to run beside the test's own (default 0). */
    int spin = (int)arg_long(argc, argv, 3, 0);
    spinners_start(spin);
    pthread_t a, b;
    CHECK(pthread_create(&a, NULL, faulter, NULL) == 0, "pthread_create");
    CHECK(pthread_create(&b, NULL, reader, NULL) == 0, "pthread_create");
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("seed_colin: %ld iterations\n", iters);
    if (spin) {
        /* The watchdog, a sleeping thread, must have kept running. */
        watchdog_await_rounds(2);
        spinners_stop_all();
    }
    pass();
}
