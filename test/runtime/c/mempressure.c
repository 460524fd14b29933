/* mempressure: a program that first fills the page cache (a database
 * scanning its files, a build reading sources) and then needs memory of
 * other kinds must get it: clean cached file pages are the kernel's to
 * drop, as on Linux. Sized by argv[1] (MiB of file to cache; the
 * catalogue uses about 3/4 of the guest's RAM):
 *
 *  1. write a file of that size, fsync it and read it back twice, so its
 *     pages fill the page cache (scattered over physical memory);
 *  2. allocate and touch anonymous memory of half that size (malloc of a
 *     big buffer: a sort, a hash join);
 *  3. start 200 threads that all stay alive at once, then join them
 *     (each needs a kernel stack and thread state from the kernel heap);
 *  4. create 10,000 small files in one directory, list it, delete them
 *     (TFS metadata, directory entries and open files in the kernel
 *     heap; the kernel must not keep a cache node per closed file);
 *  5. read the big file again and check every byte;
 *  6. a server starting a thread per client until the system says no:
 *     pthread_create fails with EAGAIN (the thread limit, RLIMIT_NPROC,
 *     as Linux's threads-max; never a kernel panic), and after joining
 *     them all, as many can be started again.
 *
 * Before the kernel gave cached pages back to other allocations, step 2
 * or 3 died: anonymous faults found no free frame (SIGBUS) and the kernel
 * heap could not grow (a kernel panic, "memory allocation ... failed"). */
#include "cairn_test.h"
#include <dirent.h>
#include <sys/resource.h>

#define THREADS 200
#define FILES 10000

static pthread_barrier_t all_started;

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_open = PTHREAD_COND_INITIALIZER;
static int gate;

/* Waits until the gate opens. */
static void *wait_gate(void *arg)
{
    pthread_mutex_lock(&gate_lock);
    while (!gate)
        pthread_cond_wait(&gate_open, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return arg;
}

#define MAX_CLIENTS 20000

/* Starts threads until pthread_create refuses; returns how many started. */
static long start_until_refused(pthread_t *t, const pthread_attr_t *attr)
{
    gate = 0;
    long n = 0;
    for (; n < MAX_CLIENTS; n++) {
        int e = pthread_create(&t[n], attr, wait_gate, (void *)n);
        if (e != 0) {
            CHECK(e == EAGAIN, "pthread_create %ld failed with %s, not EAGAIN", n, strerror(e));
            break;
        }
    }
    CHECK(n < MAX_CLIENTS, "%d threads started and none refused", MAX_CLIENTS);
    pthread_mutex_lock(&gate_lock);
    gate = 1;
    pthread_cond_broadcast(&gate_open);
    pthread_mutex_unlock(&gate_lock);
    for (long i = 0; i < n; i++) {
        void *r;
        CHECK(pthread_join(t[i], &r) == 0, "join %ld", i);
        CHECK((long)r == i, "thread %ld returned %p", i, r);
    }
    return n;
}

static void *hold(void *arg)
{
    /* Every thread touches a page of its own stack and waits until all
     * exist, so they are alive at the same time. */
    volatile char mark[4096];
    mark[0] = (char)(uintptr_t)arg;
    pthread_barrier_wait(&all_started);
    return (void *)(uintptr_t)((unsigned char)mark[0] + 1);
}

int main(int argc, char **argv)
{
    test_init("mempressure");
    long mib = arg_long(argc, argv, 1, 96);
    size_t big = (size_t)mib << 20;

    /* 1. Fill the page cache with clean pages of one file. */
    make_pattern_file("cached.dat", big, 23, 1);
    check_pattern_file("cached.dat", big, 23);
    check_pattern_file("cached.dat", big, 23);
    printf("mempressure: %ld MiB cached\n", mib);

    /* 2. Anonymous memory of half that size, every page touched. */
    size_t anon = big / 2;
    unsigned char *a = malloc(anon);
    CHECK(a != NULL, "malloc %zu", anon);
    for (size_t i = 0; i < anon; i += PAGE)
        a[i] = (unsigned char)(i / PAGE);
    for (size_t i = 0; i < anon; i += PAGE)
        CHECK(a[i] == (unsigned char)(i / PAGE), "anonymous page %zu lost its value", i / PAGE);
    printf("mempressure: %zu MiB anonymous touched\n", anon >> 20);

    /* 3. Many threads alive at once. */
    pthread_t t[THREADS];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    CHECK(pthread_barrier_init(&all_started, NULL, THREADS + 1) == 0, "barrier");
    for (long i = 0; i < THREADS; i++) {
        int e = pthread_create(&t[i], &attr, hold, (void *)i);
        if (e != 0) {
            struct kstats kk;
            if (kstats_read(&kk) == 0)
                kstats_print("at the failed pthread_create", &kk);
        }
        CHECK(e == 0, "pthread_create %ld of %d: %s", i, THREADS, strerror(e));
    }
    pthread_barrier_wait(&all_started);
    for (long i = 0; i < THREADS; i++) {
        void *r;
        CHECK(pthread_join(t[i], &r) == 0, "join %ld", i);
        CHECK((uintptr_t)r == (uintptr_t)(unsigned char)i + 1, "thread %ld returned %p", i, r);
    }
    printf("mempressure: %d threads alive at once, joined\n", THREADS);

    /* 4. Many small files. */
    SYS(mkdir("many", 0755));
    char path[64], line[32];
    for (int i = 0; i < FILES; i++) {
        snprintf(path, sizeof path, "many/f%05d", i);
        int fd = SYS(open(path, O_CREAT | O_EXCL | O_WRONLY, 0644));
        int n = snprintf(line, sizeof line, "file %d\n", i);
        write_all(fd, line, (size_t)n);
        SYS(close(fd));
    }
    DIR *d = opendir("many");
    CHECK(d != NULL, "opendir");
    int seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] == 'f')
            seen++;
    closedir(d);
    CHECK(seen == FILES, "listed %d of %d files", seen, FILES);
    /* Once the files' pages are on disk and memory pressure has evicted
     * them (the big file read again through the cache), the kernel keeps
     * no per-file state for them: nobody has them open (before: a
     * pagecache node each, ~3 KiB, for good). The sweep is periodic, so
     * wait for it with a generous bound. */
    sync();
    check_pattern_file("cached.dat", big, 23);
    struct kstats k;
    long long nodes = -1;
    for (int tries = 0; tries < 600; tries++) {
        if (kstats_read(&k) != 0)
            break;
        nodes = kstat(&k, "pagecache.nodes");
        if (nodes < FILES / 2)
            break;
        usleep(100 * 1000);
    }
    if (nodes >= 0) {
        kstats_print("with the files, evicted", &k);
        CHECK(nodes < FILES / 2, "%lld pagecache nodes for %d closed, evicted files", nodes, FILES);
    }
    for (int i = 0; i < FILES; i++) {
        snprintf(path, sizeof path, "many/f%05d", i);
        SYS(unlink(path));
    }
    SYS(rmdir("many"));
    printf("mempressure: %d files created, listed, removed\n", FILES);

    /* 5. The anonymous data and the file are intact. */
    for (size_t i = 0; i < anon; i += PAGE)
        CHECK(a[i] == (unsigned char)(i / PAGE), "anonymous page %zu lost its value", i / PAGE);
    free(a);
    check_pattern_file("cached.dat", big, 23);
    SYS(unlink("cached.dat"));

    /* 6. Threads until refused, twice. */
    static pthread_t clients[MAX_CLIENTS];
    long first = start_until_refused(clients, &attr);
    long second = start_until_refused(clients, &attr);
    printf("mempressure: threads until EAGAIN: %ld, then %ld\n", first, second);
    CHECK(first >= THREADS, "only %ld threads before EAGAIN", first);
    struct rlimit nproc;
    SYS(getrlimit(RLIMIT_NPROC, &nproc));
    CHECK(nproc.rlim_cur == RLIM_INFINITY || (rlim_t)first + 1 >= nproc.rlim_cur,
          "EAGAIN after %ld threads, RLIMIT_NPROC is %llu", first,
          (unsigned long long)nproc.rlim_cur);
    CHECK(second * 10 >= first * 9, "memory did not come back: %ld threads, then %ld", first,
          second);
    if (kstats_read(&k) == 0)
        kstats_print("end", &k);
    pass();
}
