/* scalebench: the workload of `cargo xtask bench scale` (issue 17): how
 * aggregate throughput grows with threads, run on cairn and on a Linux
 * guest. Prints one machine-readable line per case and thread count:
 *
 *   scalebench <case> threads=<t> ops=<n> bytes=<b> ns=<wall>
 *
 * Cases (each thread works on its own file or memory, as a server's
 * workers do):
 *   pread_cached  1 MiB preads of a cached 16 MiB file, round and round
 *   pwrite_cached 1 MiB pwrites over a 16 MiB file (no fsync)
 *   pread_4k      4 KiB preads at pseudo-random page offsets of it
 *   anon_fault    first touches of the pages of 16 MiB anonymous mappings
 *   file_fault    read faults on a shared mapping of the cached 16 MiB
 *                 file, one load per page (mapped again each round)
 *   getpid        a trivial syscall, the cost of entering the kernel
 *   pwrite_4k     4 KiB pwrites at pseudo-random page offsets of the
 *                 cached file (overwrites: no growth, no allocation)
 *   fstat         fstat of the open file
 * Each case runs for a fixed amount of work per thread (not a fixed time),
 * so every thread does the same; the wall time covers all threads, from
 * a start barrier to the last one's end. Data read is spot-checked.
 *
 * argv[1..]: thread counts to run (default 1 2 4), and optionally
 * `cases=NAME+NAME` to run only those cases. */
#include "cairn_test.h"
#include <sys/syscall.h>

#define MIB (1 << 20)
#define FILE_MIB 16
#define MAX_THREADS 8

enum kind { PREAD_CACHED, PWRITE_CACHED, PREAD_4K, ANON_FAULT, FILE_FAULT, GETPID, PWRITE_4K, FSTAT };
static const char *names[] = {"pread_cached", "pwrite_cached", "pread_4k",
                              "anon_fault",   "file_fault",    "getpid",
                              "pwrite_4k",    "fstat"};
/* Work per thread: sized so that one thread takes a second or so. */
static const long work[] = {768, 384, 40000, 16, 48, 200000, 40000, 100000};

static pthread_barrier_t barrier;
static volatile enum kind current;

struct worker_arg {
    int index;
    long ops;
    long long bytes;
    double end;
};

static void file_name(char *out, int i) { sprintf(out, "scale-%d.dat", i); }

static void *bench_thread(void *p)
{
    struct worker_arg *a = p;
    char path[32];
    file_name(path, a->index);
    int fd = -1;
    char *buf = NULL;
    if (current != ANON_FAULT && current != GETPID) {
        fd = SYS(open(path, O_RDWR));
        buf = SYSP(mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        memset(buf, 0, MIB);
    }
    uint32_t rnd = 0x9e3779b9u * (uint32_t)(a->index + 1);
    pthread_barrier_wait(&barrier);
    long n = work[current];
    for (long i = 0; i < n; i++) {
        switch (current) {
        case PREAD_CACHED: {
            off_t off = (off_t)(i % FILE_MIB) * MIB;
            pread_all(fd, buf, MIB, off);
            if (i < FILE_MIB)
                CHECK(pat_check(buf, 64, (uint64_t)off, 5) < 0, "pread data");
            a->bytes += MIB;
            break;
        }
        case PWRITE_CACHED:
            pwrite_all(fd, buf, MIB, (off_t)(i % FILE_MIB) * MIB);
            a->bytes += MIB;
            break;
        case PREAD_4K: {
            rnd = rnd * 1664525u + 1013904223u;
            off_t off = (off_t)(rnd % (FILE_MIB * 256)) * PAGE;
            CHECK(pread(fd, buf, PAGE, off) == PAGE, "pread 4k");
            a->bytes += PAGE;
            break;
        }
        case ANON_FAULT: {
            char *m = SYSP(mmap(NULL, FILE_MIB * MIB, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
            for (long pg = 0; pg < FILE_MIB * 256; pg++)
                m[pg * PAGE] = 1;
            SYS(munmap(m, FILE_MIB * MIB));
            a->bytes += FILE_MIB * MIB;
            break;
        }
        case FILE_FAULT: {
            volatile uint32_t *m =
                SYSP(mmap(NULL, FILE_MIB * MIB, PROT_READ, MAP_SHARED, fd, 0));
            uint32_t sum = 0;
            for (long pg = 0; pg < FILE_MIB * 256; pg++)
                sum += m[pg * PAGE / 4];
            __asm__ volatile("" : : "r"(sum));
            SYS(munmap((void *)m, FILE_MIB * MIB));
            a->bytes += FILE_MIB * MIB;
            break;
        }
        case GETPID:
            syscall(SYS_getpid);
            break;
        case PWRITE_4K: {
            rnd = rnd * 1664525u + 1013904223u;
            off_t off = (off_t)(rnd % (FILE_MIB * 256)) * PAGE;
            CHECK(pwrite(fd, buf, PAGE, off) == PAGE, "pwrite 4k");
            a->bytes += PAGE;
            break;
        }
        case FSTAT: {
            struct stat st;
            CHECK(fstat(fd, &st) == 0 && st.st_size == (off_t)FILE_MIB * MIB, "fstat");
            break;
        }
        }
        a->ops++;
    }
    a->end = now_s();
    if (fd >= 0)
        SYS(close(fd));
    if (buf)
        SYS(munmap(buf, MIB));
    return NULL;
}

static void run(enum kind k, int threads)
{
    pthread_t t[MAX_THREADS];
    struct worker_arg args[MAX_THREADS];
    current = k;
    char phase[48];
    snprintf(phase, sizeof phase, "%s/%d", names[k], threads);
    profile_mark(phase);
    CHECK(pthread_barrier_init(&barrier, NULL, (unsigned)threads + 1) == 0, "barrier");
    for (int i = 0; i < threads; i++) {
        args[i] = (struct worker_arg){.index = i};
        CHECK(pthread_create(&t[i], NULL, bench_thread, &args[i]) == 0, "pthread_create");
    }
    pthread_barrier_wait(&barrier);
    double start = now_s(), end = start;
    long ops = 0;
    long long bytes = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        ops += args[i].ops;
        bytes += args[i].bytes;
        if (args[i].end > end)
            end = args[i].end;
    }
    pthread_barrier_destroy(&barrier);
    printf("scalebench %s threads=%d ops=%ld bytes=%lld ns=%.0f\n", names[k], threads, ops, bytes,
           (end - start) * 1e9);
}

int main(int argc, char **argv)
{
    test_init("scalebench");
    int counts[8], n = 0;
    const char *only = NULL; /* "cases=a+b": run just those */
    for (int i = 1; i < argc && n < 8; i++) {
        if (strncmp(argv[i], "cases=", 6) == 0)
            only = argv[i] + 6;
        else
            counts[n++] = atoi(argv[i]);
    }
    if (n == 0) {
        counts[0] = 1;
        counts[1] = 2;
        counts[2] = 4;
        n = 3;
    }
    int most = 1;
    for (int i = 0; i < n; i++) {
        CHECK(counts[i] >= 1 && counts[i] <= MAX_THREADS, "thread count %d", counts[i]);
        most = counts[i] > most ? counts[i] : most;
    }
    for (int i = 0; i < most; i++) {
        char path[32];
        file_name(path, i);
        make_pattern_file(path, (size_t)FILE_MIB * MIB, 5, 0);
    }
    for (int k = PREAD_CACHED; k <= FSTAT; k++) {
        if (only && !strstr(only, names[k]))
            continue;
        for (int i = 0; i < n; i++)
            run((enum kind)k, counts[i]);
    }
    for (int i = 0; i < most; i++) {
        char path[32];
        file_name(path, i);
        SYS(unlinkat(AT_FDCWD, path, 0));
    }
    pass();
}
