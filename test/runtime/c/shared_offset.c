/* shared_offset (issue 17): lseek of a cached file (the end moves with
 * appends and truncates), then threads read() one open file description in
 * 4 KiB calls, the way worker threads split a log or a dump that one
 * descriptor feeds them. The description's offset moves atomically per
 * call (Linux's f_pos_lock, since 3.14): across all threads, every block
 * of the file is read exactly once per pass, whole and from its own
 * offset; every other thread uses readv into three buffers. The file is cached (written by the test), so on cairn the reads
 * run without the kernel lock; many passes make a lost or doubled offset
 * update show.
 *
 * argv[1]: vCPUs (default 2); argv[2]: passes (default 60). */
#include "cairn_test.h"

#define BLOCK 4096
#define BLOCKS 256
#define MAX_T 16

static int fd, nthreads;
static long passes;
static pthread_barrier_t start, end;
static unsigned char seen[BLOCKS];

/* One block read with readv into three buffers (a header, a body, a
 * trailer), put back together in `buf`. */
static ssize_t read_vectors(char *buf)
{
    static __thread char head[100], body[3000], tail[BLOCK - 3100];
    struct iovec iov[3] = {{head, sizeof head}, {body, sizeof body}, {tail, sizeof tail}};
    ssize_t n = readv(fd, iov, 3);
    if (n > 0) {
        memcpy(buf, head, sizeof head);
        memcpy(buf + sizeof head, body, sizeof body);
        memcpy(buf + sizeof head + sizeof body, tail, sizeof tail);
    }
    return n;
}

static void *reader(void *arg)
{
    int vectors = (int)(intptr_t)arg % 2; /* every other thread uses readv */
    static __thread char buf[BLOCK];
    for (long p = 0; p < passes; p++) {
        pthread_barrier_wait(&start);
        for (;;) {
            ssize_t n = vectors ? read_vectors(buf) : read(fd, buf, BLOCK);
            CHECK(n >= 0, "read");
            if (n == 0)
                break;
            CHECK(n == BLOCK, "read returned %zd", n);
            uint32_t block = *(uint32_t *)buf;
            CHECK(block < BLOCKS, "block number %u", block);
            CHECK(pat_check(buf + 4, BLOCK - 4, (uint64_t)block * BLOCK + 4, 7) < 0,
                  "block %u data", block);
            __atomic_add_fetch(&seen[block], 1, __ATOMIC_RELAXED);
        }
        pthread_barrier_wait(&end);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    test_init("shared_offset");
    nthreads = 2 * (int)arg_long(argc, argv, 1, 2);
    passes = arg_long(argc, argv, 2, 60);
    CHECK(nthreads <= MAX_T, "threads %d", nthreads);
    fd = SYS(open("blocks.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    static char b[BLOCK];
    for (uint32_t i = 0; i < BLOCKS; i++) {
        pat_fill(b, BLOCK, (uint64_t)i * BLOCK, 7);
        *(uint32_t *)b = i;
        CHECK(pwrite(fd, b, BLOCK, (off_t)i * BLOCK) == BLOCK, "pwrite");
    }
    /* lseek of the cached file: the end moves with appends and truncates,
     * the current offset with reads; a negative result is EINVAL. */
    off_t size = (off_t)BLOCKS * BLOCK;
    CHECK(SYS(lseek(fd, 0, SEEK_END)) == size, "SEEK_END");
    CHECK(SYS(write(fd, b, 100)) == 100, "append");
    CHECK(SYS(lseek(fd, 0, SEEK_END)) == size + 100, "SEEK_END after an append");
    CHECK(SYS(lseek(fd, -100, SEEK_CUR)) == size, "SEEK_CUR back");
    SYS(ftruncate(fd, size));
    CHECK(SYS(lseek(fd, 0, SEEK_END)) == size, "SEEK_END after a truncate");
    CHECK(SYS(lseek(fd, 4096, SEEK_SET)) == 4096, "SEEK_SET");
    CHECK(SYS(read(fd, b, 10)) == 10, "read 10");
    CHECK(SYS(lseek(fd, 0, SEEK_CUR)) == 4106, "SEEK_CUR after a read");
    errno = 0;
    CHECK(lseek(fd, -4107, SEEK_CUR) == -1 && errno == EINVAL, "a negative offset is EINVAL");
    CHECK(SYS(lseek(fd, 0, SEEK_CUR)) == 4106, "a failed seek moved the offset");
    /* preadv across vectors, short at the end of the file; readv moves
     * the offset by what it read. */
    char v1[12], v2[5000]; /* the pattern is in 4-byte words */
    struct iovec pv[2] = {{v1, sizeof v1}, {v2, sizeof v2}};
    CHECK(SYS(preadv(fd, pv, 2, size - 3000)) == 3000, "preadv at the end");
    CHECK(pat_check(v1, sizeof v1, (uint64_t)size - 3000, 7) < 0, "preadv first vector");
    CHECK(pat_check(v2, 2988, (uint64_t)size - 2988, 7) < 0, "preadv second vector");
    CHECK(SYS(lseek(fd, size - 20, SEEK_SET)) == size - 20, "SEEK_SET near the end");
    CHECK(SYS(readv(fd, pv, 2)) == 20, "readv at the end");
    CHECK(SYS(lseek(fd, 0, SEEK_CUR)) == size, "readv moved the offset to the end");
    CHECK(SYS(readv(fd, pv, 2)) == 0, "readv at end of file");
    pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&end, NULL, (unsigned)nthreads + 1);
    pthread_t t[MAX_T];
    for (int i = 0; i < nthreads; i++)
        CHECK(pthread_create(&t[i], NULL, reader, (void *)(intptr_t)i) == 0, "pthread_create");
    for (long p = 0; p < passes; p++) {
        memset(seen, 0, sizeof seen);
        SYS(lseek(fd, 0, SEEK_SET));
        pthread_barrier_wait(&start);
        pthread_barrier_wait(&end);
        for (int i = 0; i < BLOCKS; i++)
            CHECK(seen[i] == 1, "pass %ld: block %d read %d times", p, i, seen[i]);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("shared_offset: %d threads, %ld passes of %d blocks\n", nthreads, passes, BLOCKS);
    pass();
}
