/*
 * bufflood: a program that holds as much kernel buffer memory as the
 * system calls let it, as a leaky server would: with RLIMIT_NOFILE at its
 * maximum it opens pipes (each grown with F_SETPIPE_SZ to 1 MiB and
 * filled), AF_UNIX socketpairs (filled both ways) and TCP/UDP sockets
 * until a call says no. Every "no" must be an errno (EMFILE, ENFILE,
 * ENOMEM, ENOBUFS, EPERM, EAGAIN for a full buffer), never a kernel
 * panic; then everything is closed and the same again must work (nothing
 * kept), and the program's own memory still works.
 *
 *   bufflood ROUNDS
 */
#include "cairn_test.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>

#define MAXFD 4096
static int fds[MAXFD];
static int nfds;

static int ok_errno(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOMEM || e == ENOBUFS || e == EPERM ||
           e == EAGAIN;
}

/* Writes into `fd` until it would block; returns the bytes written. */
static long fill(int fd)
{
    static char chunk[65536];
    long total = 0;
    for (;;) {
        ssize_t w = write(fd, chunk, sizeof chunk);
        if (w < 0) {
            CHECK(ok_errno(errno), "write errno %d", errno);
            return total;
        }
        total += w;
    }
}

/* Pipes grown to 1 MiB and filled, up to `max` of them. */
static long pipes(int max, int *made)
{
    long bytes = 0;
    *made = 0;
    while (nfds + 2 <= MAXFD && *made < max) {
        int p[2];
        if (pipe2(p, O_NONBLOCK) != 0) {
            CHECK(ok_errno(errno), "pipe2 errno %d", errno);
            break;
        }
        fds[nfds++] = p[0];
        fds[nfds++] = p[1];
        if (fcntl(p[1], F_SETPIPE_SZ, 1 << 20) < 0)
            CHECK(ok_errno(errno) || errno == EBUSY, "F_SETPIPE_SZ errno %d", errno);
        bytes += fill(p[1]);
        (*made)++;
    }
    return bytes;
}

/* AF_UNIX stream pairs filled both ways, up to `max`. */
static long pairs(int max, int *made)
{
    long bytes = 0;
    *made = 0;
    while (nfds + 2 <= MAXFD && *made < max) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) {
            CHECK(ok_errno(errno), "socketpair errno %d", errno);
            break;
        }
        fds[nfds++] = sv[0];
        fds[nfds++] = sv[1];
        bytes += fill(sv[0]) + fill(sv[1]);
        (*made)++;
    }
    return bytes;
}

/* TCP listeners (backlog 16) and bound UDP sockets, up to `max`; returns
 * how many a buffer shortage refused. */
static int sockets(int max, int *made)
{
    int refused = 0;
    *made = 0;
    while (nfds + 1 <= MAXFD && *made < max) {
        int udp = *made & 1;
        int s = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK, 0);
        if (s < 0) {
            CHECK(ok_errno(errno), "socket errno %d", errno);
            break;
        }
        fds[nfds++] = s;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(20000 + *made)};
        if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || (!udp && listen(s, 16) != 0)) {
            CHECK(ok_errno(errno), "bind/listen errno %d", errno);
            refused++;
        }
        (*made)++;
    }
    return refused;
}

/* One round: the three kinds in an order that changes with the round, so
 * that each meets the budget both fresh and exhausted. */
static void round_once(int round)
{
    long bytes = 0;
    int np = 0, nu = 0, ns = 0, refused = 0;
    nfds = 0;
    for (int k = 0; k < 3; k++) {
        switch ((round + k) % 3) {
        case 0:
            bytes += pipes(600, &np);
            break;
        case 1:
            bytes += pairs(600, &nu);
            break;
        default:
            refused += sockets(400, &ns);
            break;
        }
    }
    printf("bufflood: round %d: %d pipes, %d socketpairs, %d sockets (%d refused a buffer), %ld "
           "bytes buffered, %d fds\n",
           round, np, nu, ns, refused, bytes, nfds);
    /* The program's own memory still works. */
    char *m = malloc(4 << 20);
    CHECK(m != NULL, "malloc");
    memset(m, 1, 4 << 20);
    free(m);
    for (int i = 0; i < nfds; i++)
        SYS(close(fds[i]));
}

/* The kernel's charged buffer capacity (kstats), -1 natively. */
static long long charged(void)
{
    struct kstats k;
    if (kstats_read(&k) != 0)
        return -1;
    for (int i = 0; i < k.n; i++)
        if (strcmp(k.name[i], "buffers.charged") == 0)
            return k.val[i];
    FAIL("no buffers.charged in /proc/cairn/kstats");
    return -1;
}

int main(int argc, char **argv)
{
    test_init("bufflood");
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    struct rlimit r = {MAXFD, MAXFD};
    SYS(setrlimit(RLIMIT_NOFILE, &r));
    long long before = charged();
    for (int i = 0; i < rounds; i++)
        round_once(i);
    long long after = charged();
    printf("bufflood: buffer capacity charged %lld bytes before, %lld after\n", before, after);
    CHECK(after == before, "%lld bytes of buffers still charged after closing everything",
          after - before);
    pass();
}
