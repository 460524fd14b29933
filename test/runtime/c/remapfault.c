/* remapfault (issue 17): faults racing a mapping that is replaced under
 * them, the way a program swaps the file behind a mapped window (a
 * database remapping its data file, a loader replacing a segment) while
 * other threads keep reading through it.
 *
 * Two files of different contents, A and B, both cached. Reader threads
 * (one per vCPU and one more) read random pages of a window W without
 * end. A remapper, again and again, maps A or B over W with MAP_FIXED
 * (shared or private, in turn), then, right after mmap returns, reads
 * every page of W itself: each must hold the file just mapped. A page of
 * the file mapped before, installed by a reader's fault that had looked
 * at the old mapping, would show here. It also mprotects W to PROT_NONE
 * and back, and moves a mapping of the other file over it with mremap,
 * checking the same.
 * Readers check that every word they see is A's or B's at its offset
 * (never zeros, never a torn page). On cairn most reader faults take the
 * path without the kernel lock (kstats `faults.file_unlocked`), which is
 * the one that must notice the mapping changed.
 *
 * argv[1]: reader threads (default 3); argv[2]: remap rounds (default 300). */
#include "cairn_test.h"
#include <setjmp.h>
#include <signal.h>

#define SEED_A 71
#define SEED_B 72
#define PAGES 64
#define MAX_T 8

static volatile uint32_t *window;
static volatile int stop;
static int fds[2];

static uint32_t word_of(int which, uint64_t off) { return pat32(off, which ? SEED_B : SEED_A); }

/* Readers' loads may meet the window while it is PROT_NONE (SIGSEGV,
 * counted); any other SIGSEGV fails the test. `protections` is odd while
 * the window is PROT_NONE: a SIGSEGV is allowed when a protection began
 * during the load (the count moved) or was on when it started. */
static __thread sigjmp_buf jb;
static __thread volatile int in_load;
static volatile unsigned long protections;
static volatile long segvs;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    (void)uc;
    if (!in_load) {
        fprintf(stderr, "FAIL %s: signal %d outside a reader's load\n", test_name, sig);
        _exit(ST_FAIL);
    }
    siglongjmp(jb, 1);
}

static void *reader(void *arg)
{
    struct worker_progress *w = arg;
    volatile uint32_t rnd = 0x9e3779b9u ^ (uint32_t)(uintptr_t)arg;
    while (!stop) {
        rnd = rnd * 1664525u + 1013904223u;
        uint64_t off = (uint64_t)(rnd % PAGES) * PAGE + ((rnd >> 16) % (PAGE / 4)) * 4;
        unsigned long before = __atomic_load_n(&protections, __ATOMIC_SEQ_CST);
        in_load = 1;
        if (sigsetjmp(jb, 1)) {
            in_load = 0;
            unsigned long after = __atomic_load_n(&protections, __ATOMIC_SEQ_CST);
            CHECK(before % 2 == 1 || after != before,
                  "reader got SIGSEGV at %#llx with the window mapped readable",
                  (unsigned long long)off);
            __atomic_add_fetch(&segvs, 1, __ATOMIC_RELAXED);
            continue;
        }
        uint32_t v = window[off / 4];
        in_load = 0;
        CHECK(v == word_of(0, off) || v == word_of(1, off),
              "reader saw %#x at %#llx: neither file's word", v, (unsigned long long)off);
        tick(w, "read");
    }
    return NULL;
}

/* Every page of the window holds file `which` (one word a page, two at
 * its ends). */
static void check_window(int which, const char *after, long round)
{
    for (uint64_t p = 0; p < PAGES; p++)
        for (uint64_t off = p * PAGE; off < (p + 1) * PAGE; off += PAGE - 4) {
            uint32_t v = window[off / 4];
            CHECK(v == word_of(which, off),
                  "round %ld, after %s: word at %#llx is %#x, file %c's is %#x (the other's %#x)",
                  round, after, (unsigned long long)off, v, which ? 'B' : 'A',
                  word_of(which, off), word_of(!which, off));
        }
}

int main(int argc, char **argv)
{
    test_init("remapfault");
    int threads = (int)arg_long(argc, argv, 1, 3);
    long rounds = arg_long(argc, argv, 2, 300);
    CHECK(threads >= 1 && threads <= MAX_T, "threads %d", threads);
    watchdog_start(120, 500);
    make_pattern_file("a.dat", PAGES * PAGE, SEED_A, 0);
    make_pattern_file("b.dat", PAGES * PAGE, SEED_B, 0);
    fds[0] = SYS(open("a.dat", O_RDONLY));
    fds[1] = SYS(open("b.dat", O_RDONLY));
    /* Cached: faults on them need no I/O. */
    check_pattern_file("a.dat", PAGES * PAGE, SEED_A);
    check_pattern_file("b.dat", PAGES * PAGE, SEED_B);
    struct kstats k0, k1;
    int have_kstats = kstats_read(&k0) == 0;

    struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO};
    SYS(sigaction(SIGSEGV, &sa, NULL));
    window = SYSP(mmap(NULL, PAGES * PAGE, PROT_READ, MAP_SHARED, fds[0], 0));
    int which = 0;
    pthread_t t[MAX_T];
    for (int i = 0; i < threads; i++)
        CHECK(pthread_create(&t[i], NULL, reader, worker("reader")) == 0, "pthread_create");
    struct worker_progress *me = worker("remapper");
    for (long r = 0; r < rounds; r++) {
        which = !which;
        int flags = MAP_FIXED | (r % 4 < 2 ? MAP_SHARED : MAP_PRIVATE);
        tick(me, "mmap");
        void *m = mmap((void *)window, PAGES * PAGE, PROT_READ, flags, fds[which], 0);
        CHECK(m == (void *)window, "mmap MAP_FIXED gave %p", m);
        check_window(which, "mmap", r);
        if (r % 8 == 3) {
            tick(me, "mprotect");
            __atomic_add_fetch(&protections, 1, __ATOMIC_SEQ_CST); /* odd: on */
            SYS(mprotect((void *)window, PAGES * PAGE, PROT_NONE));
            SYS(mprotect((void *)window, PAGES * PAGE, PROT_READ));
            __atomic_add_fetch(&protections, 1, __ATOMIC_SEQ_CST);
            check_window(which, "mprotect", r);
        }
        if (r % 8 == 5) {
            /* The other file, mapped elsewhere and touched there, moved
             * over the window (its pages move; the window's are dropped). */
            tick(me, "mremap");
            which = !which;
            volatile uint32_t *other =
                SYSP(mmap(NULL, PAGES * PAGE, PROT_READ, MAP_SHARED, fds[which], 0));
            for (uint64_t p = 0; p < PAGES; p += 3)
                CHECK(other[p * PAGE / 4] == word_of(which, p * PAGE), "the other mapping");
            void *moved = mremap((void *)other, PAGES * PAGE, PAGES * PAGE,
                                 MREMAP_MAYMOVE | MREMAP_FIXED, (void *)window);
            CHECK(moved == (void *)window, "mremap over the window gave %p", moved);
            check_window(which, "mremap", r);
        }
    }
    stop = 1;
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    me->done = 1;
    if (have_kstats) {
        CHECK(kstats_read(&k1) == 0, "kstats");
        long long un = kstat(&k1, "faults.file_unlocked") - kstat(&k0, "faults.file_unlocked");
        long long lo = kstat(&k1, "faults.file_locked") - kstat(&k0, "faults.file_locked");
        printf("remapfault: %ld rounds, file faults without the kernel lock %lld, with it %lld, "
               "reader SIGSEGVs while PROT_NONE %ld\n",
               rounds, un, lo, segvs);
        CHECK(un >= rounds, "only %lld file faults took the path without the kernel lock", un);
    }
    pass();
}
