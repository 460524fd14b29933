/* threads_files: several threads write their own files at once (and
 * their own stripes of one shared file), fsync, and read back. */
#include "cairn_test.h"

#define THREADS 4
#define FILE_LEN (1 << 20)
#define CHUNK 16384
#define STRIPE (64 * 1024)

static struct worker_progress *wp[THREADS];

static void *writer(void *arg)
{
    long t = (long)arg;
    static __thread char buf[CHUNK];
    char name[32];
    snprintf(name, sizeof name, "thr%ld.dat", t);
    int fd = SYS(open(name, O_CREAT | O_TRUNC | O_RDWR, 0644));
    for (size_t off = 0; off < FILE_LEN; off += CHUNK) {
        pat_fill(buf, CHUNK, off, (uint32_t)(200 + t));
        write_all(fd, buf, CHUNK);
        tick(wp[t], "write");
    }
    SYS(fsync(fd));
    for (size_t off = 0; off < FILE_LEN; off += CHUNK) {
        pread_all(fd, buf, CHUNK, (off_t)off);
        CHECK(pat_check(buf, CHUNK, off, (uint32_t)(200 + t)) < 0, "%s at %zu", name, off);
        tick(wp[t], "read");
    }
    close(fd);

    /* Stripes of the shared file: thread t owns every THREADS-th stripe. */
    fd = SYS(open("shared.dat", O_RDWR));
    for (size_t s = (size_t)t; s < 16; s += THREADS) {
        for (size_t off = s * STRIPE; off < (s + 1) * STRIPE; off += CHUNK) {
            pat_fill(buf, CHUNK, off, 250);
            pwrite_all(fd, buf, CHUNK, (off_t)off);
            tick(wp[t], "stripe");
        }
    }
    SYS(fdatasync(fd));
    close(fd);
    wp[t]->done = 1;
    return NULL;
}

int main(void)
{
    test_init("threads_files");
    int fd = SYS(open("shared.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    close(fd);
    for (int t = 0; t < THREADS; t++)
        wp[t] = worker("writer");
    watchdog_start(60, 150);
    pthread_t th[THREADS];
    for (long t = 0; t < THREADS; t++)
        CHECK(pthread_create(&th[t], NULL, writer, (void *)t) == 0, "pthread_create");
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < THREADS; t++) {
        char name[32];
        snprintf(name, sizeof name, "thr%d.dat", t);
        check_pattern_file(name, FILE_LEN, (uint32_t)(200 + t));
    }
    check_pattern_file("shared.dat", 16 * STRIPE, 250);
    pass();
}
