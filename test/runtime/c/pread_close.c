/* pread_close (issue 17): threads pread a cached file through one
 * descriptor number while another thread keeps replacing what that number
 * refers to, the way a server's workers read a data file that a reloader
 * reopens (dup2 over the live descriptor) and closes under them.
 *
 * Two files with different patterns; readers (2 per vCPU, more threads
 * than vCPUs) pread random 4 KiB blocks through fd SHARED and check each
 * block is wholly one file's bytes at that offset. The swapper dup2()s a
 * fresh open of either file over SHARED, closes the spare descriptor, and
 * now and then unlinks and recreates the other file. On cairn small cached
 * preads run without the kernel lock, so the description a close drops
 * may be in use by a read on another vCPU at that moment: the read must
 * finish with the old file's bytes (or EBADF if it came after), and no
 * description may leak: after all threads end and the last descriptors
 * close, the kernel's count of open files is back where it started.
 *
 * argv[1]: vCPUs (default 2); argv[2]: swaps (default 3000). */
#include "cairn_test.h"

#define BLOCK 4096
#define FILE_BLOCKS 64
#define SHARED 50
#define MAX_READERS 16

static volatile int stop;
static long swaps;
static const char *names[2] = {"a.dat", "b.dat"};
static const uint32_t seeds[2] = {11, 22};

static void *reader(void *arg)
{
    uint32_t s = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    char *buf = malloc(BLOCK);
    CHECK(buf != NULL, "malloc");
    long reads = 0;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        off_t off = (off_t)(s % FILE_BLOCKS) * BLOCK;
        ssize_t n = pread(SHARED, buf, BLOCK, off);
        if (n < 0) {
            CHECK(errno == EBADF, "pread: errno %d", errno);
            continue;
        }
        CHECK(n == BLOCK, "pread returned %zd", n);
        CHECK(pat_check(buf, BLOCK, (uint64_t)off, seeds[0]) < 0 ||
                  pat_check(buf, BLOCK, (uint64_t)off, seeds[1]) < 0,
              "block at %lld is neither file's", (long long)off);
        reads++;
    }
    free(buf);
    return (void *)reads;
}

int main(int argc, char **argv)
{
    test_init("pread_close");
    int vcpus = (int)arg_long(argc, argv, 1, 2);
    swaps = arg_long(argc, argv, 2, 3000);
    int readers = 2 * vcpus;
    CHECK(readers <= MAX_READERS, "vCPUs %d", vcpus);
    for (int i = 0; i < 2; i++)
        make_pattern_file(names[i], (size_t)FILE_BLOCKS * BLOCK, seeds[i], 0);
    struct kstats before, after;
    int have_kstats = kstats_read(&before) == 0;

    int fd = SYS(open(names[0], O_RDONLY));
    SYS(dup2(fd, SHARED));
    SYS(close(fd));
    struct worker_progress *w = worker("swapper");
    watchdog_start(120, 480);
    pthread_t t[MAX_READERS];
    for (int i = 0; i < readers; i++)
        CHECK(pthread_create(&t[i], NULL, reader, (void *)(uintptr_t)(i + 1)) == 0,
              "pthread_create");
    for (long k = 0; k < swaps; k++) {
        int which = (int)(k & 1);
        if (k % 200 == 199) {
            /* The other file goes and comes back (its old description may
             * still be SHARED's: reads of it go on, unlinked). */
            SYS(c_unlink(names[!which]));
            make_pattern_file(names[!which], (size_t)FILE_BLOCKS * BLOCK, seeds[!which], 0);
        }
        int f = SYS(open(names[which], O_RDONLY));
        SYS(dup2(f, SHARED));
        SYS(close(f));
        tick(w, "swap");
    }
    w->done = 1;
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    long total = 0;
    for (int i = 0; i < readers; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (long)r;
    }
    SYS(close(SHARED));
    /* One more close empties the kernel's list of descriptions closed
     * while a read held them. */
    SYS(close(SYS(open(names[0], O_RDONLY))));
    printf("pread_close: %d readers, %ld swaps, %ld checked reads\n", readers, swaps, total);
    CHECK(total > 0, "no read completed");
    if (have_kstats) {
        CHECK(kstats_read(&after) == 0, "kstats");
        CHECK(!kstats_grew(&before, &after, "files", 0), "open file descriptions leaked");
    }
    pass();
}
