/* fatal: ends by the fatal signal argv[1] names, so the runner can check
 * that cairn reports it and exits with 128 + N (issue 7 item 6):
 *   segv  - a store to an unmapped address        -> 139
 *   bus   - a load beyond the end of a mapped file -> 135
 *   abrt  - abort()                                -> 134
 *   alrm  - alarm(1) expiring                      -> 142
 * Printing "FAIL" and exiting 1 means the signal did not come. */
#include "cairn_test.h"
#include <signal.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
    test_init("fatal");
    const char *what = argc > 1 ? argv[1] : "";
    printf("fatal: raising %s\n", what);
    fflush(stdout);
    if (!strcmp(what, "segv")) {
        volatile uintptr_t addr = 16;
        *(volatile int *)addr = 1;
    } else if (!strcmp(what, "bus")) {
        int fd = SYS(open("short.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
        SYS(ftruncate(fd, 4096));
        volatile char *p = mmap(0, 2 * 4096, PROT_READ, MAP_SHARED, fd, 0);
        CHECK(p != MAP_FAILED, "mmap");
        (void)p[0];
        (void)p[4096]; /* past the end of the file: SIGBUS */
    } else if (!strcmp(what, "abrt")) {
        abort();
    } else if (!strcmp(what, "alrm")) {
        alarm(1);
        for (int i = 0; i < 50; i++) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, 0);
        }
    }
    if (!strcmp(what, "none"))
        pass(); /* a plain run, for checking the program itself */
    FAIL("%s did not end the program", what);
}
