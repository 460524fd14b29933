/* mapfault (issues 14 and 17): page faults on a mapped file, the way a
 * database reads its data file through mmap while other threads resize it.
 *
 * 1. Truncate removes mappings: a file mapped shared and private, every
 *    page touched, then shrunk to 3 pages + 100 bytes: the page holding the
 *    new end reads zeros past it; every page past it is SIGBUS through
 *    both mappings, exactly there (as on Linux); grown back, those pages
 *    read as zeros (the old data is gone), and a page written by pwrite
 *    then shows through the old mapping; a punched hole reads as zeros.
 * 2. Races, threads on every vCPU: readers fault pages of one shared
 *    mapping (dropped again and again with MADV_DONTNEED) and of private
 *    ones; a remapper maps, checks and unmaps; a writer rewrites the head
 *    with pwrite (same bytes); a truncater shrinks the file to its head
 *    and grows it again, and right after each shrink finds every page past
 *    the head SIGBUS through its own mapping, even while readers fault
 *    them, then rewrites the tail with a new generation and reads that
 *    generation back through the mapping. The head must always read its
 *    exact pattern, never SIGBUS; the tail reads its pattern (of some
 *    generation) or zeros, or is SIGBUS; past the largest length always
 *    SIGBUS. On cairn, cached faults must have taken the path without the
 *    kernel lock (kstats `faults.file_unlocked`).
 *
 * argv[1]: threads (default 4); argv[2]: rounds (default 200); argv[3]:
 * which parts run, a bit mask (default 3: both). */
#include "cairn_test.h"
#include <setjmp.h>
#include <signal.h>

#define SEED 61
#define HEAD_PAGES 24
#define TAIL_PAGES 8
#define BIG_PAGES (HEAD_PAGES + TAIL_PAGES)
#define MAP_PAGES (BIG_PAGES + 2)
#define MAX_T 8

static __thread sigjmp_buf jb;
static __thread volatile int in_probe;

static void on_bus(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    (void)uc;
    if (!in_probe) {
        fprintf(stderr, "FAIL %s: signal %d outside a probe\n", test_name, sig);
        _exit(ST_FAIL);
    }
    siglongjmp(jb, 1);
}

/* Reads the word at `p`: 0 with *bus = 1 when it is SIGBUS. */
static uint32_t probe(const volatile uint32_t *p, int *bus)
{
    *bus = 0;
    in_probe = 1;
    if (sigsetjmp(jb, 1)) {
        in_probe = 0;
        *bus = 1;
        return 0;
    }
    uint32_t w = *p;
    in_probe = 0;
    return w;
}

/* The words a page of generation `gen` holds (the head is generation 0). */
static uint32_t word_at(uint64_t off, uint32_t gen) { return pat32(off, SEED + gen); }

static void write_page(int fd, uint64_t page, uint32_t gen)
{
    uint32_t b[PAGE / 4];
    for (size_t i = 0; i < PAGE / 4; i++)
        b[i] = word_at(page * PAGE + 4 * i, gen);
    pwrite_all(fd, b, PAGE, (off_t)(page * PAGE));
}

/* ---- 1 ---- */
static void truncate_removes_mappings(void)
{
    int fd = SYS(open("trunc.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    for (uint64_t p = 0; p < 8; p++)
        write_page(fd, p, 0);
    volatile uint32_t *sh = SYSP(mmap(NULL, 8 * PAGE, PROT_READ, MAP_SHARED, fd, 0));
    volatile uint32_t *pr = SYSP(mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
    for (uint64_t p = 0; p < 8; p++) {
        CHECK(sh[p * PAGE / 4] == word_at(p * PAGE, 0), "shared page %llu", (unsigned long long)p);
        CHECK(pr[p * PAGE / 4 + 1] == word_at(p * PAGE + 4, 0), "private page %llu",
              (unsigned long long)p);
    }
    pr[7 * PAGE / 4] = 0xdeadbeef; /* a private copy of its own */
    SYS(ftruncate(fd, 3 * PAGE + 100));
    int bus;
    CHECK(probe(&sh[3 * PAGE / 4], &bus) == word_at(3 * PAGE, 0) && !bus,
          "the page holding the new end lost its head");
    CHECK(probe(&sh[3 * PAGE / 4 + 100 / 4], &bus) == 0 && !bus,
          "the page holding the new end is not zero past it");
    for (uint64_t p = 4; p < 8; p++) {
        uint32_t w = probe(&sh[p * PAGE / 4 + 7], &bus);
        CHECK(bus, "shared mapping: page %llu past the end of file read %#x, not SIGBUS",
              (unsigned long long)p, w);
        w = probe(&pr[p * PAGE / 4 + 7], &bus);
        CHECK(bus, "private mapping: page %llu past the end of file read %#x, not SIGBUS",
              (unsigned long long)p, w);
    }
    SYS(ftruncate(fd, 8 * PAGE));
    for (uint64_t p = 4; p < 8; p++) {
        CHECK(probe(&sh[p * PAGE / 4 + 9], &bus) == 0 && !bus,
              "shared mapping: regrown page %llu is not zero", (unsigned long long)p);
        CHECK(probe(&pr[p * PAGE / 4 + 9], &bus) == 0 && !bus,
              "private mapping: regrown page %llu is not zero", (unsigned long long)p);
    }
    write_page(fd, 6, 5);
    CHECK(sh[6 * PAGE / 4 + 3] == word_at(6 * PAGE + 12, 5),
          "a page written after the regrowth does not show through the shared mapping");
    /* A punched hole reads as zeros through the mapping that had it. */
    CHECK(sh[1 * PAGE / 4 + 3] == word_at(1 * PAGE + 12, 0), "page 1 before the hole");
    SYS(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1 * PAGE, PAGE));
    CHECK(sh[1 * PAGE / 4 + 3] == 0, "a punched page still shows its old data through a mapping");
    SYS(munmap((void *)sh, 8 * PAGE));
    SYS(munmap((void *)pr, 8 * PAGE));
    SYS(close(fd));
    SYS(c_unlink("trunc.dat"));
}

/* ---- 2 ---- */
static int nthreads;
static long rounds;
static int fd_race;
static volatile uint32_t *shmap;
static volatile int stop;
static volatile uint32_t generation; /* the tail's newest (1, 2, ...) */
static struct worker_progress *prog[MAX_T + 4];

/* Checks the word at byte `off` read through a mapping. */
static void check_word(uint64_t off, uint32_t w, int bus, const char *who)
{
    uint64_t page = off / PAGE;
    if (page < HEAD_PAGES) {
        CHECK(!bus, "%s: SIGBUS at %#llx, inside the head the file never loses", who,
              (unsigned long long)off);
        CHECK(w == word_at(off, 0), "%s: head word at %#llx is %#x, not %#x", who,
              (unsigned long long)off, w, word_at(off, 0));
    } else if (page < BIG_PAGES) {
        if (bus || w == 0)
            return;
        uint32_t g = generation;
        for (uint32_t k = 0; k <= g + 1; k++)
            if (w == word_at(off, k))
                return;
        FAIL("%s: tail word at %#llx is %#x, of no generation up to %u", who,
             (unsigned long long)off, w, g);
    } else {
        CHECK(bus, "%s: page %llu past the largest length read %#x, not SIGBUS", who,
              (unsigned long long)page, w);
    }
}

static void *reader(void *arg)
{
    int me = (int)(long)arg;
    uint32_t rnd = 0x9e3779b9u * (uint32_t)(me + 1);
    int private = me % 2 == 1;
    volatile uint32_t *m = shmap;
    if (private)
        m = SYSP(mmap(NULL, MAP_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd_race, 0));
    for (long n = 0; !stop; n++) {
        tick(prog[me], "fault");
        for (int i = 0; i < 32; i++) {
            rnd = rnd * 1664525u + 1013904223u;
            uint64_t page = (rnd >> 8) % MAP_PAGES;
            uint64_t off = page * PAGE + 4 * ((rnd >> 3) % 16);
            int bus;
            uint32_t w = probe(&m[off / 4], &bus);
            check_word(off, w, bus, private ? "private reader" : "shared reader");
        }
        tick(prog[me], "drop");
        if (private) {
            if (n % 8 == 7) {
                SYS(munmap((void *)m, MAP_PAGES * PAGE));
                m = SYSP(mmap(NULL, MAP_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd_race,
                              0));
            }
        } else {
            SYS(madvise((void *)shmap, HEAD_PAGES * PAGE, MADV_DONTNEED));
        }
    }
    if (private)
        SYS(munmap((void *)m, MAP_PAGES * PAGE));
    prog[me]->done = 1;
    return NULL;
}

static void *remapper(void *arg)
{
    int me = (int)(long)arg;
    for (long n = 0; !stop; n++) {
        tick(prog[me], "mmap");
        volatile uint32_t *m = SYSP(mmap(NULL, HEAD_PAGES * PAGE, PROT_READ, MAP_SHARED, fd_race, 0));
        for (uint64_t p = (uint64_t)n % 3; p < HEAD_PAGES; p += 3)
            check_word(p * PAGE + 8, m[p * PAGE / 4 + 2], 0, "remapper");
        tick(prog[me], "munmap");
        SYS(munmap((void *)m, HEAD_PAGES * PAGE));
    }
    prog[me]->done = 1;
    return NULL;
}

static void *writer(void *arg)
{
    int me = (int)(long)arg;
    for (long n = 0; !stop; n++) {
        tick(prog[me], "pwrite head");
        write_page(fd_race, (uint64_t)n % HEAD_PAGES, 0);
    }
    prog[me]->done = 1;
    return NULL;
}

static void truncater(int me)
{
    volatile uint32_t *m = SYSP(mmap(NULL, MAP_PAGES * PAGE, PROT_READ, MAP_SHARED, fd_race, 0));
    for (long r = 1; r <= rounds; r++) {
        tick(prog[me], "shrink");
        SYS(ftruncate(fd_race, HEAD_PAGES * PAGE));
        /* Its own mapping, and the one the readers fault meanwhile. */
        for (uint64_t p = HEAD_PAGES; p < MAP_PAGES; p++) {
            int bus;
            uint32_t w = probe(&m[p * PAGE / 4 + 1], &bus);
            CHECK(bus, "round %ld: page %llu past the end of file read %#x, not SIGBUS", r,
                  (unsigned long long)p, w);
            w = probe(&shmap[p * PAGE / 4 + 1], &bus);
            CHECK(bus,
                  "round %ld: page %llu past the end of file read %#x through the readers' "
                  "mapping, not SIGBUS",
                  r, (unsigned long long)p, w);
        }
        tick(prog[me], "grow");
        uint32_t g = (uint32_t)r;
        generation = g;
        SYS(ftruncate(fd_race, BIG_PAGES * PAGE));
        for (uint64_t p = HEAD_PAGES; p < BIG_PAGES; p++)
            write_page(fd_race, p, g);
        for (uint64_t p = HEAD_PAGES; p < BIG_PAGES; p++) {
            int bus;
            uint32_t w = probe(&m[p * PAGE / 4 + 2], &bus);
            CHECK(!bus && w == word_at(p * PAGE + 8, g),
                  "round %ld: the mapping shows %#x (bus %d) at page %llu, not generation %u",
                  r, w, bus, (unsigned long long)p, g);
        }
    }
    SYS(munmap((void *)m, MAP_PAGES * PAGE));
}

static void races(void)
{
    struct kstats k0, k1;
    int have_kstats = kstats_read(&k0) == 0;
    fd_race = SYS(open("race.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    for (uint64_t p = 0; p < BIG_PAGES; p++)
        write_page(fd_race, p, p < HEAD_PAGES ? 0 : 1);
    generation = 1;
    shmap = SYSP(mmap(NULL, MAP_PAGES * PAGE, PROT_READ, MAP_SHARED, fd_race, 0));
    static const char *names[] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"};
    int n = 0;
    pthread_t t[MAX_T + 2];
    for (int i = 0; i < nthreads; i++, n++) {
        prog[n] = worker(names[i]);
        CHECK(pthread_create(&t[n], NULL, reader, (void *)(long)n) == 0, "pthread_create");
    }
    prog[n] = worker("remapper");
    CHECK(pthread_create(&t[n], NULL, remapper, (void *)(long)n) == 0, "pthread_create");
    n++;
    prog[n] = worker("writer");
    CHECK(pthread_create(&t[n], NULL, writer, (void *)(long)n) == 0, "pthread_create");
    n++;
    prog[n] = worker("truncater");
    truncater(n);
    stop = 1;
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    prog[n]->done = 1;
    /* Everything as it should be at the end, through a fresh mapping. */
    volatile uint32_t *m = SYSP(mmap(NULL, BIG_PAGES * PAGE, PROT_READ, MAP_SHARED, fd_race, 0));
    for (uint64_t p = 0; p < BIG_PAGES; p++)
        for (size_t i = 0; i < PAGE / 4; i += 97) {
            uint64_t off = p * PAGE + 4 * i;
            uint32_t want = word_at(off, p < HEAD_PAGES ? 0 : (uint32_t)rounds);
            CHECK(m[off / 4] == want, "at the end, word at %#llx is %#x, not %#x",
                  (unsigned long long)off, m[off / 4], want);
        }
    SYS(munmap((void *)m, BIG_PAGES * PAGE));
    SYS(munmap((void *)shmap, MAP_PAGES * PAGE));
    SYS(close(fd_race));
    SYS(c_unlink("race.dat"));
    if (have_kstats) {
        CHECK(kstats_read(&k1) == 0, "kstats");
        long long un = kstat(&k1, "faults.file_unlocked") - kstat(&k0, "faults.file_unlocked");
        long long lo = kstat(&k1, "faults.file_locked") - kstat(&k0, "faults.file_locked");
        printf("mapfault: file faults without the kernel lock %lld, with it %lld\n", un, lo);
        CHECK(kstat(&k1, "faults.file_unlocked") >= 0, "kstats has no faults.file_unlocked");
        CHECK(un >= rounds, "only %lld cached file faults took the path without the kernel lock",
              un);
    }
}

int main(int argc, char **argv)
{
    test_init("mapfault");
    nthreads = (int)arg_long(argc, argv, 1, 4);
    rounds = arg_long(argc, argv, 2, 200);
    CHECK(nthreads >= 1 && nthreads <= MAX_T, "threads %d", nthreads);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    SYS(sigaction(SIGBUS, &sa, NULL));
    watchdog_start(120, 540);

    long parts = arg_long(argc, argv, 3, 3);
    if (parts & 1)
        truncate_removes_mappings();
    if (parts & 2)
        races();
    printf("mapfault: %d readers x %ld rounds of shrink and grow: faults consistent\n", nthreads,
           rounds);
    pass();
}
