/* sharedfile (issue 17): threads on every vCPU work on one file at once,
 * the way a database's workers share a data file.
 *
 * Phase 1, shared offset: T threads call read(fd, 4 KiB) on ONE open file
 * description until end of file. Each 4 KiB block names its own offset;
 * every block must be read exactly once in all (the offset moves
 * atomically per call, as on Linux since 3.14), and the bytes must match.
 *
 * Phase 2, mixed: each thread owns a region of the file and, in a loop,
 * rewrites it with pwrite (new version each round) or through a shared
 * mapping, reads it back with pread and through the mapping, and checks
 * both against its shadow copy; meanwhile it preads the other threads'
 * regions (any version: checked only for being that block, since a read
 * racing a write of the same page may mix versions, on Linux too), and
 * one thread truncates and regrows a tail past all regions (readers of the
 * tail see zeros, data of some version, or end of file). Finally every
 * region is checked against its owner's last shadow.
 *
 * argv[1]: threads (default 4); argv[2]: rounds (default 40). */
#include "cairn_test.h"

#define BLOCK 4096
#define REGION_BLOCKS 16
#define MAX_T 8
#define TAIL_BLOCKS 8

static int nthreads;
static long rounds;
static int fd_shared;
static char *map;
static size_t region_bytes = (size_t)REGION_BLOCKS * BLOCK;

/* A block: header (owner, version, block index) then a pattern of them. */
static void fill_block(char *b, uint32_t owner, uint32_t version, uint32_t index)
{
    uint32_t *w = (uint32_t *)b;
    w[0] = owner;
    w[1] = version;
    w[2] = index;
    for (size_t i = 3; i < BLOCK / 4; i++)
        w[i] = pat32((uint64_t)i * 4, owner * 7919u + version * 104729u + index);
}

/* Whether `b` holds `owner`'s block `index` (or zeros), judging by the
 * header words that every version shares: a read racing a write of the
 * same page may see a mix of two versions (Linux does not promise
 * otherwise), but never another block's data. */
static int block_of(const char *b, uint32_t owner, uint32_t index)
{
    const uint32_t *w = (const uint32_t *)b;
    return (w[0] == owner && w[2] == index) || (w[0] == 0 && w[2] == 0);
}

/* Whether `b` is a whole block of some version written by `owner` at
 * `index` (or all zeros): for blocks no one writes meanwhile. */
static int whole_block(const char *b, uint32_t owner, uint32_t index)
{
    const uint32_t *w = (const uint32_t *)b;
    if (w[0] == 0 && w[1] == 0 && w[2] == 0) {
        for (size_t i = 3; i < BLOCK / 4; i++)
            if (w[i] != 0)
                return 0;
        return 1;
    }
    if (w[0] != owner || w[2] != index)
        return 0;
    for (size_t i = 3; i < BLOCK / 4; i++)
        if (w[i] != pat32((uint64_t)i * 4, owner * 7919u + w[1] * 104729u + index))
            return 0;
    return 1;
}

/* ---- phase 1 ---- */
#define SHARED_BLOCKS 2048
static volatile int seen[SHARED_BLOCKS];

/* Reads of 16 blocks: long enough that a kernel could copy them without
 * holding its big lock, which must not let two readers share an offset. */
#define SHARED_READ (16 * BLOCK)

static void *shared_reader(void *arg)
{
    (void)arg;
    static __thread char b[SHARED_READ];
    for (;;) {
        ssize_t n = read(fd_shared, b, SHARED_READ);
        CHECK(n >= 0, "read");
        if (n == 0)
            return NULL;
        CHECK(n % BLOCK == 0, "a read of %zd bytes is not whole blocks", n);
        for (ssize_t o = 0; o < n; o += BLOCK) {
            uint32_t idx = ((uint32_t *)(b + o))[2];
            CHECK(idx < SHARED_BLOCKS && whole_block(b + o, 99, idx), "a block read is not whole");
            __atomic_add_fetch(&seen[idx], 1, __ATOMIC_RELAXED);
        }
    }
}

static void shared_offset(void)
{
    int fd = SYS(open("shared.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    char b[BLOCK];
    for (uint32_t i = 0; i < SHARED_BLOCKS; i++) {
        fill_block(b, 99, 1, i);
        write_all(fd, b, BLOCK);
    }
    SYS(lseek(fd, 0, SEEK_SET));
    fd_shared = fd;
    pthread_t t[MAX_T];
    for (int i = 0; i < nthreads; i++)
        CHECK(pthread_create(&t[i], NULL, shared_reader, NULL) == 0, "pthread_create");
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < SHARED_BLOCKS; i++)
        CHECK(seen[i] == 1, "block %d was read %d times through the shared offset", i, seen[i]);
    SYS(close(fd));
    SYS(unlinkat(AT_FDCWD, "shared.dat", 0));
}

/* ---- phase 2 ---- */
static struct worker_progress *prog[MAX_T];

static off_t region_off(int t) { return (off_t)t * (off_t)region_bytes; }

static void *mixed(void *arg)
{
    int me = (int)(long)arg;
    static __thread char shadow[REGION_BLOCKS * BLOCK];
    char b[BLOCK], r[BLOCK];
    uint32_t rnd = 0x1234567u + (uint32_t)me;
    memset(shadow, 0, sizeof shadow);
    for (long round = 1; round <= rounds; round++) {
        tick(prog[me], "write");
        for (uint32_t k = 0; k < REGION_BLOCKS; k++) {
            fill_block(b, (uint32_t)me + 1, (uint32_t)round, k);
            off_t off = region_off(me) + (off_t)k * BLOCK;
            if ((round + k) % 3 == 0)
                memcpy(map + off, b, BLOCK); /* through the mapping */
            else
                pwrite_all(fd_shared, b, BLOCK, off);
            memcpy(shadow + k * BLOCK, b, BLOCK);
        }
        tick(prog[me], "check own");
        for (uint32_t k = 0; k < REGION_BLOCKS; k++) {
            off_t off = region_off(me) + (off_t)k * BLOCK;
            pread_all(fd_shared, r, BLOCK, off);
            CHECK(memcmp(r, shadow + k * BLOCK, BLOCK) == 0,
                  "thread %d round %ld block %u: pread differs from what it wrote", me, round, k);
            CHECK(memcmp(map + off, shadow + k * BLOCK, BLOCK) == 0,
                  "thread %d round %ld block %u: the mapping differs from what it wrote", me,
                  round, k);
        }
        tick(prog[me], "read others");
        for (int i = 0; i < 8; i++) {
            rnd = rnd * 1664525u + 1013904223u;
            int other = (int)(rnd % (uint32_t)nthreads);
            uint32_t k = (rnd >> 8) % REGION_BLOCKS;
            pread_all(fd_shared, r, BLOCK, region_off(other) + (off_t)k * BLOCK);
            CHECK(block_of(r, (uint32_t)other + 1, k), "thread %d read another block in %d's", me,
                  other);
        }
        if (me == 0) {
            tick(prog[me], "truncate tail");
            off_t tail = region_off(nthreads);
            SYS(ftruncate(fd_shared, tail));
            for (uint32_t k = 0; k < TAIL_BLOCKS; k++) {
                fill_block(b, 77, (uint32_t)round, k);
                pwrite_all(fd_shared, b, BLOCK, tail + (off_t)k * BLOCK);
            }
        } else {
            tick(prog[me], "read tail");
            off_t tail = region_off(nthreads);
            uint32_t k = rnd % TAIL_BLOCKS;
            ssize_t n = pread(fd_shared, r, BLOCK, tail + (off_t)k * BLOCK);
            CHECK(n == 0 || n == BLOCK, "tail read of %zd", n);
            if (n == BLOCK)
                CHECK(block_of(r, 77, k), "thread %d read another block in the tail", me);
        }
    }
    prog[me]->done = 1;
    return NULL;
}

int main(int argc, char **argv)
{
    test_init("sharedfile");
    nthreads = (int)arg_long(argc, argv, 1, 4);
    rounds = arg_long(argc, argv, 2, 40);
    CHECK(nthreads >= 1 && nthreads <= MAX_T, "threads %d", nthreads);
    static const char *names[MAX_T] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"};
    for (int i = 0; i < nthreads; i++)
        prog[i] = worker(names[i]);
    watchdog_start(120, 540);

    shared_offset();

    fd_shared = SYS(open("mixed.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    size_t mapped = (size_t)nthreads * region_bytes;
    SYS(ftruncate(fd_shared, (off_t)mapped));
    map = SYSP(mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_SHARED, fd_shared, 0));
    pthread_t t[MAX_T];
    for (int i = 0; i < nthreads; i++)
        CHECK(pthread_create(&t[i], NULL, mixed, (void *)(long)i) == 0, "pthread_create");
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    /* The last versions, through a fresh descriptor. */
    int fd = SYS(open("mixed.dat", O_RDONLY));
    char r[BLOCK], b[BLOCK];
    for (int i = 0; i < nthreads; i++)
        for (uint32_t k = 0; k < REGION_BLOCKS; k++) {
            pread_all(fd, r, BLOCK, region_off(i) + (off_t)k * BLOCK);
            fill_block(b, (uint32_t)i + 1, (uint32_t)rounds, k);
            CHECK(memcmp(r, b, BLOCK) == 0, "region %d block %u is not the last version", i, k);
        }
    SYS(close(fd));
    SYS(munmap(map, mapped));
    SYS(close(fd_shared));
    printf("sharedfile: %d threads x %ld rounds, shared offset and mixed I/O consistent\n",
           nthreads, rounds);
    pass();
}
