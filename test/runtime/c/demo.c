/* demo: the default workload of `cargo xtask run`. Tells what it runs on,
 * what the image gave it, and does a little of everything cairn is for:
 * files through the pagecache, a file mapping and threads. */
#include "cairn_test.h"
#include <dirent.h>
#include <sys/random.h>
#include <sys/utsname.h>

static int counter;
static void *count_up(void *arg)
{
    for (int i = 0; i < 1000; i++)
        __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    return arg;
}

int main(int argc, char **argv, char **envp)
{
    test_init("demo");
    struct utsname u;
    double t0 = now_s();
    SYS(uname(&u));
    printf("\n  cairn demo workload: an unmodified static Linux x86-64 ELF\n");
    printf("  kernel     %s %s (%s), node %s\n", u.sysname, u.release, u.machine, u.nodename);
    printf("  pid        %d\n", getpid());
    for (int i = 0; i < argc; i++)
        printf("  argv[%d]    %s\n", i, argv[i]);
    for (char **e = envp; *e; e++)
        printf("  env        %s\n", *e);

    printf("  root tree  ");
    DIR *d = opendir(".");
    CHECK(d != NULL, "opendir");
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            printf("%s%s ", de->d_name, de->d_type == DT_DIR ? "/" : "");
    closedir(d);
    printf("\n");

    int fd = open("etc/motd", O_RDONLY);
    if (fd >= 0) {
        char buf[512];
        ssize_t n = SYS(read(fd, buf, sizeof buf - 1));
        buf[n] = 0;
        printf("  etc/motd   %s", buf);
        if (n && buf[n - 1] != '\n')
            printf("\n");
        close(fd);
    }

    /* A file written, read back and mapped. */
    make_pattern_file("demo.dat", 256 * 1024, 7, 1);
    check_pattern_file("demo.dat", 256 * 1024, 7);
    fd = SYS(open("demo.dat", O_RDONLY));
    uint32_t *m = SYSP(mmap(NULL, 256 * 1024, PROT_READ, MAP_SHARED, fd, 0));
    CHECK(pat_check(m, 256 * 1024, 0, 7) < 0, "mapped data");
    SYS(munmap(m, 256 * 1024));
    close(fd);
    printf("  file I/O   wrote, fsync'd, read back and mapped 256 KiB: ok\n");

    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, count_up, NULL) == 0, "pthread_create");
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK(counter == 2000, "counter %d", counter);
    printf("  threads    2 threads counted to %d\n", counter);

    unsigned r = 0;
    CHECK(getrandom(&r, sizeof r, 0) == sizeof r, "getrandom");
    printf("  random     %08x\n", r);
    printf("  took       %.1f ms\n\n", (now_s() - t0) * 1e3);
    pass();
}
