/*
 * kmemflood: calls whose kernel memory grows with a count a program
 * chooses, each pushed until the kernel says no, in a 128 MiB guest:
 * mappings (alternating protections so none merge), epoll watches (every
 * descriptor in many epoll instances), extended attributes (where the
 * filesystem has them), io_uring
 * rings and AIO contexts. Each limit must be an errno (ENOMEM, ENOSPC,
 * E2BIG, EAGAIN, EMFILE, ENOBUFS), never a kernel panic; after each kind
 * is released the next must still work, and the program's own memory
 * still works at the end.
 */
#include "cairn_test.h"

#include <linux/aio_abi.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/xattr.h>

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

static int limit_errno(int e)
{
    return e == ENOMEM || e == ENOSPC || e == E2BIG || e == EAGAIN || e == EMFILE ||
           e == ENOBUFS || e == ENFILE;
}

static long mappings(void)
{
    const long page = 4096, max = 4000000;
    char *base = mmap(NULL, max * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
    CHECK(base != MAP_FAILED, "reserve");
    long n = 0;
    for (; n < max; n += 2)
        if (mprotect(base + n * page, page, PROT_READ) != 0) {
            CHECK(limit_errno(errno), "mprotect errno %d", errno);
            break;
        }
    printf("kmemflood: %ld mappings before %s\n", n + 1, n < max ? strerror(errno) : "the end");
    SYS(munmap(base, max * page));
    return n;
}

static long watches(void)
{
    int fds[2000], eps[2000];
    int nf = 0, ne = 0;
    for (; nf < 2000; nf++)
        fds[nf] = SYS(eventfd(0, 0));
    long total = 0;
    int err = 0;
    for (; ne < 2000 && !err; ne++) {
        eps[ne] = epoll_create1(0);
        if (eps[ne] < 0) {
            err = errno;
            break;
        }
        for (int i = 0; i < nf; i++) {
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
            if (epoll_ctl(eps[ne], EPOLL_CTL_ADD, fds[i], &ev) != 0) {
                err = errno;
                break;
            }
            total++;
        }
    }
    CHECK(err == 0 || limit_errno(err), "epoll errno %d", err);
    printf("kmemflood: %ld epoll watches (%s)\n", total, err ? strerror(err) : "all");
    for (int i = 0; i < ne && i < 2000; i++)
        if (eps[i] >= 0)
            close(eps[i]);
    for (int i = 0; i < nf; i++)
        close(fds[i]);
    return total;
}

static void xattrs(void)
{
    int fd = SYS(open("xa", O_RDWR | O_CREAT, 0644));
    static char value[65536];
    memset(value, 'v', sizeof value);
    long n = 0;
    int err = 0;
    for (; n < 20000; n++) {
        char name[64];
        snprintf(name, sizeof name, "user.k%ld", n);
        if (fsetxattr(fd, name, value, sizeof value, 0) != 0) {
            err = errno;
            break;
        }
    }
    /* (cairn's TFS stores no extended attributes: EOPNOTSUPP at once.) */
    CHECK(err == 0 || limit_errno(err) || (err == EOPNOTSUPP && n == 0), "fsetxattr errno %d",
          err);
    printf("kmemflood: %ld xattrs of 64 KiB (%s)\n", n, err ? strerror(err) : "all");
    close(fd);
    SYS(unlink("xa"));
}

static long rings(void)
{
    int fds[2000];
    int n = 0, err = 0;
    for (; n < 2000; n++) {
        unsigned char params[120] = {0};
        fds[n] = (int)syscall(SYS_io_uring_setup, 4096, params);
        if (fds[n] < 0) {
            err = errno;
            break;
        }
    }
    CHECK(err == 0 || limit_errno(err), "io_uring_setup errno %d", err);
    printf("kmemflood: %d io_uring rings of 4096 entries (%s)\n", n, err ? strerror(err) : "all");
    for (int i = 0; i < n; i++)
        close(fds[i]);
    aio_context_t ctx[2000];
    int m = 0;
    err = 0;
    for (; m < 2000; m++) {
        ctx[m] = 0;
        if (syscall(SYS_io_setup, 65536, &ctx[m]) != 0) {
            err = errno;
            break;
        }
    }
    CHECK(err == 0 || limit_errno(err), "io_setup errno %d", err);
    printf("kmemflood: %d AIO contexts of 65536 events (%s)\n", m, err ? strerror(err) : "all");
    for (int i = 0; i < m; i++)
        syscall(SYS_io_destroy, ctx[i]);
    return n * 10000L + m;
}

int main(void)
{
    test_init("kmemflood");
    struct rlimit r = {4096, 4096};
    SYS(setrlimit(RLIMIT_NOFILE, &r));
    long first[3] = {0};
    for (int round = 0; round < 2; round++) {
        long got[3] = {mappings(), watches(), (xattrs(), rings())};
        /* What was released is all there again (nothing kept). */
        for (int k = 0; round > 0 && k < 3; k++)
            CHECK(got[k] == first[k], "round 2 kind %d: %ld, round 1: %ld", k, got[k], first[k]);
        memcpy(first, got, sizeof first);
    }
    char *m = malloc(8 << 20);
    CHECK(m != NULL, "malloc");
    memset(m, 1, 8 << 20);
    free(m);
    pass();
}
