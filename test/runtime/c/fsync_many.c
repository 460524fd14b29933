/* fsync_many: what a database does all day: many small writes, each made
 * durable with fsync/fdatasync, plus sync/syncfs with nothing dirty, and
 * many short-lived threads. None of it may cost memory that is not given
 * back: the program runs long enough (argv[1] rounds) that a per-call leak
 * of a kernel stack exhausts a small guest. argv[2]: thread create/join
 * rounds. */
#include "cairn_test.h"

static void *nothing(void *arg) { return arg; }

int main(int argc, char **argv)
{
    test_init("fsync_many");
    long rounds = arg_long(argc, argv, 1, 10000);
    long threads = arg_long(argc, argv, 2, 10000);
    int fd = SYS(open("journal.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    char rec[128];
    for (long i = 0; i < rounds; i++) {
        /* A record rewritten in place (the file stays small), then made
         * durable four ways. */
        pat_fill(rec, sizeof rec, (uint64_t)i * sizeof rec, 71);
        pwrite_all(fd, rec, sizeof rec, (off_t)(i % 64) * (off_t)sizeof rec);
        switch (i % 4) {
        case 0:
            SYS(fsync(fd));
            break;
        case 1:
            SYS(fdatasync(fd));
            break;
        case 2:
            SYS(syncfs(fd));
            break;
        default:
            sync();
            /* And once with nothing dirty at all. */
            SYS(fsync(fd));
            break;
        }
        if (i % 2000 == 0)
            printf("fsync_many: %ld rounds\n", i);
    }
    /* The last records are intact. */
    for (long i = rounds > 64 ? rounds - 64 : 0; i < rounds; i++) {
        pread_all(fd, rec, sizeof rec, (off_t)(i % 64) * (off_t)sizeof rec);
        CHECK(pat_check(rec, sizeof rec, (uint64_t)i * sizeof rec, 71) < 0, "record %ld", i);
    }
    SYS(close(fd));

    for (long i = 0; i < threads; i++) {
        pthread_t t;
        int e = pthread_create(&t, NULL, nothing, (void *)i);
        errno = e;
        CHECK(e == 0, "pthread_create %ld", i);
        void *r;
        CHECK(pthread_join(t, &r) == 0, "pthread_join %ld", i);
        CHECK(r == (void *)i, "thread %ld returned %p", i, r);
        if (i % 2000 == 0)
            printf("fsync_many: %ld threads\n", i);
    }
    pass();
}
