/* seed_split_merge (seeds/001 Mach in-transition entries, seeds/004
 * Linux VMA rules): threads map, unmap and mprotect adjacent regions so
 * that map entries split and merge while faults are in flight.
 *
 * One reservation of 4 x K pages, split into regions that border each
 * other:
 *   A [0,K)    anonymous, always writable: the "toucher" writes, reads
 *              and drops (MADV_DONTNEED) its pages, faulting them back;
 *   B [K,2K)   anonymous: the "protector" flips single pages between
 *              read-only and read-write (splits) and then the whole A+B
 *              back to read-write (merges), storing a tag while writable;
 *   C [2K,3K)  the "mapper" replaces single pages, in place (MAP_FIXED),
 *              by private file pages of split.dat or fresh anonymous pages;
 *   D [3K,4K)  the mapper unmaps and maps D's pages (its own) again.
 * The "reader" faults on every page of B and C all the while: each word
 * must be one of the values that page can legally hold.
 *
 * argv[1]: iterations of each thread (default 200). */
#include "cairn_test.h"

#define K 16
#define TAG 0xb0000000u
static long iters;
static char *base;
static volatile int stop;
static struct worker_progress *w_touch, *w_prot, *w_map, *w_read;

static void *toucher(void *arg)
{
    uint32_t *a = (uint32_t *)base;
    for (long i = 0; i < iters; i++) {
        int pg = (int)(i % K);
        uint32_t *p = a + pg * (PAGE / 4);
        tick(w_touch, "write A");
        p[0] = (uint32_t)i;
        p[PAGE / 4 - 1] = (uint32_t)~i;
        CHECK(p[0] == (uint32_t)i && p[PAGE / 4 - 1] == (uint32_t)~i, "A store lost, iter %ld", i);
        if (i % 2) {
            tick(w_touch, "madvise DONTNEED");
            SYS(madvise(p, PAGE, MADV_DONTNEED));
            tick(w_touch, "refault");
            CHECK(p[0] == 0 && p[PAGE / 4 - 1] == 0, "A not zero after DONTNEED, iter %ld", i);
        }
    }
    w_touch->done = 1;
    return arg;
}

static void *protector(void *arg)
{
    char *b = base + K * PAGE;
    for (long i = 0; i < iters; i++) {
        tick(w_prot, "split");
        for (int pg = (int)(i % 2); pg < K; pg += 2)
            SYS(mprotect(b + pg * PAGE, PAGE, PROT_READ));
        tick(w_prot, "merge");
        SYS(mprotect(base, 2 * K * PAGE, PROT_READ | PROT_WRITE));
        tick(w_prot, "store tag");
        for (int pg = 0; pg < K; pg++)
            *(volatile uint32_t *)(b + pg * PAGE + 4 * (i % 64)) = TAG | (uint32_t)(i & 0xffff);
    }
    w_prot->done = 1;
    return arg;
}

static void *mapper(void *arg)
{
    char *c = base + 2 * K * PAGE, *d = base + 3 * K * PAGE;
    int fd = SYS(open("split.dat", O_RDONLY));
    for (long i = 0; i < iters; i++) {
        int pg = (int)(i % K);
        tick(w_map, "map file page");
        void *p = SYSP(mmap(c + pg * PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd,
                            (off_t)pg * PAGE));
        CHECK(p == c + pg * PAGE, "MAP_FIXED moved");
        if (i % 3 == 0) {
            tick(w_map, "map anon page");
            SYSP(mmap(c + pg * PAGE, PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
        }
        tick(w_map, "unmap D");
        int dn = 1 + (int)(i % 4), dp = (int)(i % (K - 4));
        SYS(munmap(d + dp * PAGE, (size_t)dn * PAGE));
        tick(w_map, "map D");
        uint32_t *q = SYSP(mmap(d + dp * PAGE, (size_t)dn * PAGE, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
        for (int k = 0; k < dn; k++) {
            CHECK(q[k * PAGE / 4] == 0, "fresh D page not zero, iter %ld", i);
            q[k * PAGE / 4] = 0xd0d0d0d0;
        }
    }
    close(fd);
    w_map->done = 1;
    return arg;
}

static void *reader(void *arg)
{
    const uint32_t *b = (const uint32_t *)(base + K * PAGE);
    const uint32_t *c = (const uint32_t *)(base + 2 * K * PAGE);
    long i = 0;
    while (!stop || i < iters) {
        tick(w_read, "read B and C");
        for (int pg = 0; pg < K; pg++) {
            for (int k = 0; k < 64; k++) {
                uint32_t v = b[pg * PAGE / 4 + k];
                CHECK(v == 0 || (v & 0xffff0000u) == TAG, "B page %d word %d holds %08x", pg, k,
                      v);
            }
            uint32_t v = c[pg * PAGE / 4 + 1];
            CHECK(v == 0 || v == pat32((uint64_t)pg * PAGE + 4, 51),
                  "C page %d holds %08x: neither anonymous nor its file page", pg, v);
        }
        i++;
    }
    w_read->done = 1;
    return arg;
}

int main(int argc, char **argv)
{
    test_init("seed_split_merge");
    iters = arg_long(argc, argv, 1, 200);
    base = SYSP(mmap(NULL, 4 * K * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                     0));
    w_touch = worker("toucher");
    w_prot = worker("protector");
    w_map = worker("mapper");
    w_read = worker("reader");
    /* argv[4]: seconds before alarm() ends a hung run (default 240). */
    watchdog_start((int)arg_long(argc, argv, 2, 30), (unsigned)arg_long(argc, argv, 4, 240));
    /* argv[3]: CPU-bound threads to run beside the test's own (default 0). */
    int spin = (int)arg_long(argc, argv, 3, 0);
    spinners_start(spin);
    void *(*fns[])(void *) = {toucher, protector, mapper, reader};
    pthread_t th[4];
    for (int t = 0; t < 4; t++)
        CHECK(pthread_create(&th[t], NULL, fns[t], NULL) == 0, "pthread_create");
    for (int t = 0; t < 3; t++)
        pthread_join(th[t], NULL);
    stop = 1;
    pthread_join(th[3], NULL);
    SYS(munmap(base, 4 * K * PAGE));
    printf("seed_split_merge: %ld iterations x 4 threads\n", iters);
    if (spin) {
        /* The watchdog, a sleeping thread, must have kept running. */
        watchdog_await_rounds(2);
        spinners_stop_all();
    }
    pass();
}
