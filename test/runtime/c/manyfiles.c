/*
 * manyfiles: what a build tool or a mail spool does to a small machine:
 * create empty files (and a directory per 1,000) until the system says
 * no, then delete them all and create them again. Each file costs the
 * kernel metadata (TFS keeps its tree in memory) and disk log space, so
 * in a 128 MiB guest the creates must end with an error (ENOSPC or
 * ENOMEM), never a kernel panic; after deleting, about as many must fit
 * again (nothing kept per deleted file but its name in the TFS log's
 * dictionary until the next compaction), and the program's own memory
 * still works.
 *
 *   manyfiles MAX
 */
#include "cairn_test.h"

#include <sys/stat.h>

static long fill(long max, int *err)
{
    char path[64];
    long n = 0;
    for (; n < max; n++) {
        if (n % 1000 == 0) {
            snprintf(path, sizeof path, "d%ld", n / 1000);
            if (mkdir(path, 0755) != 0 && errno != EEXIST) {
                *err = errno;
                return n;
            }
        }
        snprintf(path, sizeof path, "d%ld/f%ld", n / 1000, n);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0) {
            *err = errno;
            return n;
        }
        close(fd);
        if ((n + 1) % 20000 == 0) {
            struct kstats k;
            long long heap = -1;
            if (kstats_read(&k) == 0)
                for (int i = 0; i < k.n; i++)
                    if (strcmp(k.name[i], "heap.general.bytes") == 0)
                        heap = k.val[i];
            printf("manyfiles: %ld files, general heap %lld bytes\n", n + 1, heap);
        }
    }
    *err = 0;
    return n;
}

static void empty(long n)
{
    char path[64];
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "d%ld/f%ld", i / 1000, i);
        SYS(unlink(path));
    }
    for (long d = 0; d <= (n ? (n - 1) / 1000 : 0); d++) {
        snprintf(path, sizeof path, "d%ld", d);
        rmdir(path);
    }
}

int main(int argc, char **argv)
{
    test_init("manyfiles");
    long max = argc > 1 ? atol(argv[1]) : 100000;
    SYS(mkdir("/spool", 0755));
    SYS(chdir("/spool"));
    int err;
    long first = fill(max, &err);
    printf("manyfiles: first fill %ld files (%s)\n", first, err ? strerror(err) : "all");
    CHECK(err == 0 || err == ENOSPC || err == ENOMEM, "creat failed with errno %d", err);
    CHECK(first > 1000, "only %ld files", first);
    int dfd = SYS(open(".", O_RDONLY));
    SYS(syncfs(dfd));
    close(dfd);
    empty(first);
    sync();
    long second = fill(first, &err);
    printf("manyfiles: second fill %ld files (%s)\n", second, err ? strerror(err) : "all");
    /* The names stay in the TFS log's dictionary until the log is next
     * compacted (about 20 bytes each): a few percent fewer fit before. */
    CHECK(second >= first - first / 10, "the second fill took %ld of %ld files", second, first);
    sync();
    pass();
}
