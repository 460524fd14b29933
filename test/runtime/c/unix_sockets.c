/*
 * AF_UNIX sockets as servers, runtimes and tools use them within one
 * program: socketpair (stream, datagram, seqpacket), a stream server on a
 * filesystem path with client threads, the abstract namespace, names in
 * use, connects to names nobody holds, datagram boundaries and truncation,
 * shutdown, EPIPE and SIGPIPE, MSG_NOSIGNAL, non-blocking sockets, FIONREAD,
 * MSG_PEEK, SO_TYPE, SO_PEERCRED, getsockname/getpeername, poll and epoll
 * (edge-triggered), SO_RCVTIMEO/SO_SNDTIMEO/SO_LINGER (also on AF_INET
 * sockets), descriptor passing (SCM_RIGHTS), ping-pong between more
 * threads than vCPUs, and bad pointers (EFAULT, never a crash).
 *
 * Timing checks are lower bounds only.
 */
#include "cairn_test.h"
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

/* A pointer nothing is mapped at (volatile: the compiler does not see it). */
static void *volatile bad_ptr = (void *)8;
#define BAD bad_ptr

static volatile int sigpipes;
static void on_sigpipe(int sig)
{
    (void)sig;
    sigpipes++;
}

static socklen_t path_addr(struct sockaddr_un *a, const char *path)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    strcpy(a->sun_path, path);
    return offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path + 1, name, strlen(name));
    return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
}

static void pair(int type, int sv[2])
{
    SYS(socketpair(AF_UNIX, type, 0, sv));
}

static void test_stream_pair(void)
{
    int sv[2];
    pair(SOCK_STREAM | SOCK_CLOEXEC, sv);
    CHECK(fcntl(sv[0], F_GETFD) & FD_CLOEXEC, "SOCK_CLOEXEC");
    CHECK(write(sv[0], "hello ", 6) == 6, "write");
    CHECK(send(sv[0], "world", 5, 0) == 5, "send");
    int n = -1;
    SYS(ioctl(sv[1], FIONREAD, &n));
    CHECK(n == 11, "FIONREAD %d", n);
    char buf[64] = {0};
    CHECK(recv(sv[1], buf, sizeof buf, MSG_PEEK) == 11, "peek");
    CHECK(memcmp(buf, "hello world", 11) == 0, "peeked bytes");
    memset(buf, 0, sizeof buf);
    CHECK(read(sv[1], buf, 4) == 4 && memcmp(buf, "hell", 4) == 0, "read part");
    CHECK(read(sv[1], buf, sizeof buf) == 7 && memcmp(buf, "o world", 7) == 0, "read rest");
    /* The other direction too. */
    CHECK(write(sv[1], "back", 4) == 4, "write back");
    CHECK(read(sv[0], buf, sizeof buf) == 4, "read back");

    int v = 0;
    socklen_t l = sizeof v;
    SYS(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &l));
    CHECK(v == SOCK_STREAM && l == sizeof v, "SO_TYPE %d", v);
    struct ucred cr;
    l = sizeof cr;
    SYS(getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cr, &l));
    CHECK(l == sizeof cr && cr.pid == getpid() && cr.uid == getuid() && cr.gid == getgid(),
          "SO_PEERCRED pid %d uid %u", cr.pid, cr.uid);
    l = sizeof v;
    SYS(getsockopt(sv[0], SOL_SOCKET, SO_ERROR, &v, &l));
    CHECK(v == 0, "SO_ERROR %d", v);
    struct sockaddr_un a;
    l = sizeof a;
    SYS(getsockname(sv[0], (struct sockaddr *)&a, &l));
    CHECK(l == sizeof(sa_family_t) && a.sun_family == AF_UNIX, "unnamed getsockname len %u", l);
    l = sizeof a;
    SYS(getpeername(sv[0], (struct sockaddr *)&a, &l));
    CHECK(l == sizeof(sa_family_t), "unnamed getpeername len %u", l);

    /* readv/writev and sendmsg/recvmsg with iovecs. */
    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};
    CHECK(sendmsg(sv[0], &m, 0) == 5, "sendmsg");
    char x[2], y[8];
    struct iovec riov[2] = {{x, 2}, {y, 8}};
    struct msghdr rm = {.msg_iov = riov, .msg_iovlen = 2};
    CHECK(recvmsg(sv[1], &rm, 0) == 5, "recvmsg");
    CHECK(memcmp(x, "ab", 2) == 0 && memcmp(y, "cde", 3) == 0, "scattered");
    SYS(close(sv[0]));
    SYS(close(sv[1]));
}

static void test_messages(int type)
{
    int sv[2];
    pair(type, sv);
    CHECK(send(sv[0], "one", 3, 0) == 3, "send one");
    CHECK(send(sv[0], "", 0, 0) == 0, "send empty");
    CHECK(send(sv[0], "three33", 7, 0) == 7, "send three");
    int n = -1;
    SYS(ioctl(sv[1], FIONREAD, &n));
    /* Linux: the next datagram; every queued byte of a seqpacket socket. */
    CHECK(n == (type == SOCK_DGRAM ? 3 : 10), "FIONREAD %d", n);
    char buf[64];
    CHECK(recv(sv[1], buf, sizeof buf, 0) == 3 && memcmp(buf, "one", 3) == 0, "one");
    CHECK(recv(sv[1], buf, sizeof buf, 0) == 0, "empty message");
    struct iovec iov = {buf, 4};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    CHECK(recvmsg(sv[1], &m, 0) == 4, "truncated");
    CHECK(m.msg_flags & MSG_TRUNC, "MSG_TRUNC flag %x", m.msg_flags);
    CHECK(memcmp(buf, "thre", 4) == 0, "truncated bytes");
    CHECK(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT) == -1 && errno == EAGAIN,
          "rest of a datagram dropped");
    CHECK(send(sv[0], "abcdef", 6, 0) == 6, "send");
    CHECK(recv(sv[1], buf, 2, MSG_TRUNC) == 6, "MSG_TRUNC returns the real length");
    int v;
    socklen_t l = sizeof v;
    SYS(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &l));
    CHECK(v == type, "SO_TYPE %d", v);
    /* A message too large for the socket. */
    size_t big = 4 << 20;
    char *b = malloc(big);
    CHECK(b, "malloc");
    memset(b, 1, big);
    CHECK(send(sv[0], b, big, 0) == -1 && errno == EMSGSIZE, "EMSGSIZE");
    /* Fill: non-blocking sends end with EAGAIN, nothing half-sent. */
    int sent = 0;
    for (;;) {
        ssize_t r = send(sv[0], b, 1000, MSG_DONTWAIT);
        if (r < 0) {
            CHECK(errno == EAGAIN, "full: %d", errno);
            break;
        }
        CHECK(r == 1000, "whole message %zd", r);
        sent++;
        CHECK(sent < 100000, "never full");
    }
    for (int i = 0; i < sent; i++)
        CHECK(recv(sv[1], b, big, 0) == 1000, "message %d", i);
    free(b);
    SYS(close(sv[0]));
    SYS(close(sv[1]));
}

static void test_shutdown_epipe(void)
{
    int sv[2];
    pair(SOCK_STREAM, sv);
    char buf[16];
    CHECK(write(sv[0], "bye", 3) == 3, "write");
    SYS(shutdown(sv[0], SHUT_WR));
    CHECK(read(sv[1], buf, sizeof buf) == 3, "data before EOF");
    CHECK(read(sv[1], buf, sizeof buf) == 0, "EOF after SHUT_WR");
    CHECK(send(sv[0], "x", 1, MSG_NOSIGNAL) == -1 && errno == EPIPE, "write after SHUT_WR");
    /* The other direction still works. */
    CHECK(write(sv[1], "ok", 2) == 2, "reverse write");
    CHECK(read(sv[0], buf, sizeof buf) == 2, "reverse read");
    SYS(shutdown(sv[1], SHUT_RDWR));
    CHECK(read(sv[0], buf, sizeof buf) == 0, "EOF after peer SHUT_RDWR");
    struct pollfd p = {sv[0], POLLIN | POLLOUT, 0};
    CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLHUP), "POLLHUP both ways shut: %x",
          p.revents);
    SYS(close(sv[0]));
    SYS(close(sv[1]));

    /* Peer closed: EOF for reads; EPIPE and SIGPIPE for writes. */
    pair(SOCK_STREAM, sv);
    CHECK(write(sv[1], "z", 1) == 1, "write");
    SYS(close(sv[1]));
    CHECK(read(sv[0], buf, sizeof buf) == 1, "data outlives the writer");
    CHECK(read(sv[0], buf, sizeof buf) == 0, "EOF after close");
    p = (struct pollfd){sv[0], POLLIN, 0};
    CHECK(poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP)), "revents %x", p.revents);
    signal(SIGPIPE, on_sigpipe);
    sigpipes = 0;
    CHECK(write(sv[0], "x", 1) == -1 && errno == EPIPE, "EPIPE");
    CHECK(sigpipes == 1, "SIGPIPE raised: %d", sigpipes);
    CHECK(send(sv[0], "x", 1, MSG_NOSIGNAL) == -1 && errno == EPIPE, "EPIPE");
    CHECK(sigpipes == 1, "no SIGPIPE with MSG_NOSIGNAL: %d", sigpipes);
    signal(SIGPIPE, SIG_DFL);
    SYS(close(sv[0]));

    /* Seqpacket peers see EOF too. */
    pair(SOCK_SEQPACKET, sv);
    SYS(close(sv[1]));
    CHECK(recv(sv[0], buf, sizeof buf, 0) == 0, "seqpacket EOF");
    SYS(close(sv[0]));
}

static void test_nonblocking(void)
{
    int sv[2];
    pair(SOCK_STREAM | SOCK_NONBLOCK, sv);
    CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK, "SOCK_NONBLOCK");
    char buf[4096];
    CHECK(read(sv[0], buf, sizeof buf) == -1 && errno == EAGAIN, "empty: EAGAIN");
    memset(buf, 7, sizeof buf);
    size_t total = 0;
    for (;;) {
        ssize_t r = write(sv[0], buf, sizeof buf);
        if (r < 0) {
            CHECK(errno == EAGAIN, "full: %d", errno);
            break;
        }
        total += r;
        CHECK(total < (64u << 20), "never full");
    }
    CHECK(total >= 4096, "buffered %zu", total);
    struct pollfd p = {sv[0], POLLOUT, 0};
    CHECK(poll(&p, 1, 0) == 0, "full: not writable (%x)", p.revents);
    size_t got = 0;
    while (got < total) {
        ssize_t r = read(sv[1], buf, sizeof buf);
        CHECK(r > 0, "drain %zd at %zu/%zu", r, got, total);
        got += r;
    }
    CHECK(read(sv[1], buf, sizeof buf) == -1 && errno == EAGAIN, "drained");
    CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLOUT), "writable again");
    SYS(close(sv[0]));
    SYS(close(sv[1]));
    /* MSG_DONTWAIT on a blocking socket. */
    pair(SOCK_DGRAM, sv);
    CHECK(recv(sv[0], buf, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN, "MSG_DONTWAIT");
    SYS(close(sv[0]));
    SYS(close(sv[1]));
}

/* A stream server on a filesystem path, clients in threads. */
#define SOCK_PATH "unix_sockets.sock"
#define CLIENTS 6
#define ROUNDS 50

static void *client_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    int fd = SYS(socket(AF_UNIX, SOCK_STREAM, 0));
    struct sockaddr_un a;
    socklen_t l = path_addr(&a, SOCK_PATH);
    SYS(connect(fd, (struct sockaddr *)&a, l));
    struct sockaddr_un pa;
    socklen_t pl = sizeof pa;
    SYS(getpeername(fd, (struct sockaddr *)&pa, &pl));
    CHECK(strcmp(pa.sun_path, SOCK_PATH) == 0, "peer name %s", pa.sun_path);
    char out[3000], in[3000];
    for (int r = 0; r < ROUNDS; r++) {
        size_t n = 1 + (size_t)((id * 131 + r * 17) % (int)sizeof out);
        pat_fill(out, n & ~3ul, r, id);
        write_all(fd, out, n);
        size_t got = 0;
        while (got < n) {
            ssize_t k = read(fd, in + got, n - got);
            CHECK(k > 0, "client %d echo read %zd", id, k);
            got += k;
        }
        CHECK(memcmp(in, out, n) == 0, "client %d round %d echo differs", id, r);
    }
    SYS(close(fd));
    return NULL;
}

static void *echo_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        CHECK(n >= 0, "server read");
        if (n == 0)
            break;
        write_all(fd, buf, n);
    }
    SYS(close(fd));
    return NULL;
}

static void test_server(void)
{
    c_unlink(SOCK_PATH);
    struct sockaddr_un a;
    socklen_t l = path_addr(&a, SOCK_PATH);
    int c = SYS(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK(connect(c, (struct sockaddr *)&a, l) == -1 && errno == ENOENT,
          "connect to a path nobody holds: %d", errno);
    int s = SYS(socket(AF_UNIX, SOCK_STREAM, 0));
    SYS(bind(s, (struct sockaddr *)&a, l));
    CHECK(connect(c, (struct sockaddr *)&a, l) == -1 && errno == ECONNREFUSED,
          "connect to a socket that does not listen: %d", errno);
    SYS(close(c));
    int s2 = SYS(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK(bind(s2, (struct sockaddr *)&a, l) == -1 && errno == EADDRINUSE, "second bind: %d",
          errno);
    SYS(close(s2));
    CHECK(bind(s, (struct sockaddr *)&a, l) == -1 && (errno == EINVAL || errno == EADDRINUSE),
          "bind twice: %d", errno);
    SYS(listen(s, 4));
    struct sockaddr_un n;
    socklen_t nl = sizeof n;
    SYS(getsockname(s, (struct sockaddr *)&n, &nl));
    CHECK(nl == l && strcmp(n.sun_path, SOCK_PATH) == 0, "getsockname %u %s", nl, n.sun_path);
    int v;
    socklen_t vl = sizeof v;
    SYS(getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl));
    CHECK(v == 1, "SO_ACCEPTCONN");

    pthread_t cl[CLIENTS], ec[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        CHECK(pthread_create(&cl[i], NULL, client_main, (void *)(intptr_t)i) == 0, "client");
    for (int i = 0; i < CLIENTS; i++) {
        struct sockaddr_un pa;
        socklen_t pl = sizeof pa;
        int fd = SYS(accept4(s, (struct sockaddr *)&pa, &pl, SOCK_CLOEXEC));
        CHECK(pl == sizeof(sa_family_t), "an unbound client's name: len %u", pl);
        CHECK(pthread_create(&ec[i], NULL, echo_main, (void *)(intptr_t)fd) == 0, "echo");
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(cl[i], NULL);
        pthread_join(ec[i], NULL);
    }
    /* Backlog: a non-blocking connect beyond it is EAGAIN; an accepted
     * connection frees a slot. */
    int queued[16], nq = 0;
    for (; nq < 16; nq++) {
        queued[nq] = SYS(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0));
        if (connect(queued[nq], (struct sockaddr *)&a, l) < 0) {
            CHECK(errno == EAGAIN, "connect past the backlog: %d", errno);
            break;
        }
    }
    CHECK(nq >= 1 && nq < 16, "backlog of 4 took %d", nq);
    SYS(close(queued[nq]));
    /* Data sent before the accept arrives. */
    CHECK(write(queued[0], "early", 5) == 5, "write before accept");
    int fd = SYS(accept(s, NULL, NULL));
    char buf[8];
    CHECK(read(fd, buf, sizeof buf) == 5 && memcmp(buf, "early", 5) == 0, "early data");
    SYS(close(fd));
    /* Closing the listener ends the connections it had not accepted. */
    SYS(close(s));
    for (int i = 0; i < nq; i++) {
        ssize_t r = read(queued[i], buf, sizeof buf);
        CHECK(r == 0 || (r < 0 && errno == ECONNRESET) || (i == 0 && r < 0 && errno == EAGAIN),
              "unaccepted connection %d after the listener closed: %zd %d", i, r, errno);
        SYS(close(queued[i]));
    }
    /* The path outlives its socket until unlinked. */
    c = SYS(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK(connect(c, (struct sockaddr *)&a, l) == -1 && errno == ECONNREFUSED,
          "connect to a closed socket's path: %d", errno);
    SYS(close(c));
    s = SYS(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK(bind(s, (struct sockaddr *)&a, l) == -1 && errno == EADDRINUSE,
          "bind to a closed socket's path: %d", errno);
    SYS(c_unlink(SOCK_PATH));
    CHECK(c_unlink(SOCK_PATH) == -1 && errno == ENOENT, "unlinked twice");
    SYS(bind(s, (struct sockaddr *)&a, l));
    SYS(listen(s, 1));
    SYS(c_unlink(SOCK_PATH));
    c = SYS(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK(connect(c, (struct sockaddr *)&a, l) == -1 && errno == ENOENT, "after unlink: %d",
          errno);
    SYS(close(c));
    SYS(close(s));
}

static void test_abstract_and_dgram_names(void)
{
    struct sockaddr_un a, b, from;
    socklen_t la = abstract_addr(&a, "cairn-unix-a"), lb = abstract_addr(&b, "cairn-unix-b");
    int c = SYS(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK(connect(c, (struct sockaddr *)&a, la) == -1 && errno == ECONNREFUSED,
          "abstract name nobody holds: %d", errno);
    SYS(close(c));
    int x = SYS(socket(AF_UNIX, SOCK_DGRAM, 0)), y = SYS(socket(AF_UNIX, SOCK_DGRAM, 0));
    SYS(bind(x, (struct sockaddr *)&a, la));
    SYS(bind(y, (struct sockaddr *)&b, lb));
    socklen_t nl = sizeof from;
    SYS(getsockname(x, (struct sockaddr *)&from, &nl));
    CHECK(nl == la && from.sun_path[0] == 0 && memcmp(from.sun_path + 1, "cairn-unix-a", 12) == 0,
          "abstract getsockname len %u", nl);
    CHECK(sendto(x, "d1", 2, 0, (struct sockaddr *)&b, lb) == 2, "sendto");
    CHECK(sendto(x, "dgram2", 6, 0, (struct sockaddr *)&b, lb) == 6, "sendto");
    char buf[16];
    nl = sizeof from;
    CHECK(recvfrom(y, buf, sizeof buf, 0, (struct sockaddr *)&from, &nl) == 2, "recvfrom");
    CHECK(nl == la && memcmp(from.sun_path + 1, "cairn-unix-a", 12) == 0, "sender's name");
    CHECK(recv(y, buf, sizeof buf, 0) == 6, "second datagram whole");
    /* connect sets the default destination. */
    SYS(connect(y, (struct sockaddr *)&a, la));
    CHECK(send(y, "back", 4, 0) == 4, "send to connected");
    CHECK(recv(x, buf, sizeof buf, 0) == 4, "got it");
    SYS(close(x));
    CHECK(send(y, "gone", 4, 0) == -1 && errno == ECONNREFUSED, "peer gone: %d", errno);
    SYS(close(y));
    /* An abstract name is free once its socket is closed. */
    x = SYS(socket(AF_UNIX, SOCK_DGRAM, 0));
    SYS(bind(x, (struct sockaddr *)&a, la));
    SYS(close(x));
    /* An unbound datagram socket cannot send without a destination. */
    x = SYS(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK(send(x, "?", 1, 0) == -1 && errno == ENOTCONN, "no destination: %d", errno);
    SYS(close(x));
}

/* Seqpacket over listen/accept. */
static void test_seqpacket_server(void)
{
    struct sockaddr_un a;
    socklen_t l = abstract_addr(&a, "cairn-unix-seq");
    int s = SYS(socket(AF_UNIX, SOCK_SEQPACKET, 0));
    SYS(bind(s, (struct sockaddr *)&a, l));
    SYS(listen(s, 2));
    int c = SYS(socket(AF_UNIX, SOCK_SEQPACKET, 0));
    int st = SYS(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK(connect(st, (struct sockaddr *)&a, l) == -1 && errno == ECONNREFUSED,
          "an abstract name of another type: %d", errno);
    SYS(close(st));
    SYS(connect(c, (struct sockaddr *)&a, l));
    CHECK(connect(c, (struct sockaddr *)&a, l) == -1 && errno == EISCONN, "EISCONN");
    int fd = SYS(accept(s, NULL, NULL));
    CHECK(send(c, "12345", 5, 0) == 5 && send(c, "678", 3, 0) == 3, "send");
    char buf[16];
    CHECK(recv(fd, buf, sizeof buf, 0) == 5, "first packet");
    CHECK(recv(fd, buf, sizeof buf, 0) == 3, "second packet");
    SYS(close(c));
    CHECK(recv(fd, buf, sizeof buf, 0) == 0, "EOF");
    SYS(close(fd));
    SYS(close(s));
}

static void test_epoll(void)
{
    int sv[2];
    pair(SOCK_STREAM | SOCK_NONBLOCK, sv);
    int ep = SYS(epoll_create1(EPOLL_CLOEXEC));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = 5};
    SYS(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev));
    struct epoll_event out[4];
    CHECK(epoll_wait(ep, out, 4, 0) == 0, "nothing yet");
    CHECK(write(sv[0], "abc", 3) == 3, "write");
    CHECK(epoll_wait(ep, out, 4, 1000) == 1 && out[0].data.u32 == 5 && (out[0].events & EPOLLIN),
          "edge reported");
    CHECK(epoll_wait(ep, out, 4, 50) == 0, "edge-triggered: not again without new data");
    CHECK(write(sv[0], "d", 1) == 1, "write more");
    CHECK(epoll_wait(ep, out, 4, 1000) == 1, "new edge");
    char buf[16];
    CHECK(read(sv[1], buf, sizeof buf) == 4, "read all");
    CHECK(read(sv[1], buf, sizeof buf) == -1 && errno == EAGAIN, "drained");
    /* Level-triggered writability of the other end, and a hang-up. */
    struct epoll_event ev2 = {.events = EPOLLOUT | EPOLLRDHUP, .data.u32 = 6};
    SYS(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev2));
    int n = epoll_wait(ep, out, 4, 1000);
    CHECK(n == 1 && out[0].data.u32 == 6 && (out[0].events & EPOLLOUT), "writable: %d", n);
    SYS(close(sv[1]));
    n = epoll_wait(ep, out, 4, 1000);
    CHECK(n == 1 && (out[0].events & (EPOLLHUP | EPOLLRDHUP)), "hang-up: %d %x", n,
          n > 0 ? out[0].events : 0);
    SYS(close(sv[0]));
    SYS(close(ep));
}

/* A reader woken by a writer in another thread through epoll. */
static int wake_fd;
static void *late_send(void *arg)
{
    (void)arg;
    sleep_ms(100);
    CHECK(write(wake_fd, "w", 1) == 1, "late write");
    return NULL;
}

static void test_epoll_wakeup(void)
{
    int sv[2];
    pair(SOCK_DGRAM, sv);
    wake_fd = sv[0];
    int ep = SYS(epoll_create1(0));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
    SYS(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, late_send, NULL) == 0, "thread");
    struct epoll_event out;
    CHECK(epoll_wait(ep, &out, 1, 20000) == 1, "woken by the other thread");
    pthread_join(t, NULL);
    SYS(close(ep));
    SYS(close(sv[0]));
    SYS(close(sv[1]));
}

static void test_timeouts(void)
{
    int sv[2];
    pair(SOCK_STREAM, sv);
    struct timeval tv = {0, 100000}, got;
    SYS(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    socklen_t l = sizeof got;
    SYS(getsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &got, &l));
    CHECK(l == sizeof got && got.tv_sec == 0 && got.tv_usec == 100000, "SO_RCVTIMEO read back");
    char buf[65536];
    double t0 = now_s();
    CHECK(read(sv[0], buf, 1) == -1 && errno == EAGAIN, "receive timeout: %d", errno);
    CHECK(now_s() - t0 >= 0.09, "waited %.3f s", now_s() - t0);
    /* A send timeout once the peer's buffer is full. */
    SYS(setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
    memset(buf, 3, sizeof buf);
    size_t total = 0;
    for (;;) {
        ssize_t r = write(sv[1], buf, sizeof buf);
        if (r < 0) {
            CHECK(errno == EAGAIN, "send timeout: %d", errno);
            break;
        }
        total += r;
        CHECK(total < (64u << 20), "never full");
    }
    struct linger lg = {1, 0}, lgot;
    SYS(setsockopt(sv[0], SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    l = sizeof lgot;
    SYS(getsockopt(sv[0], SOL_SOCKET, SO_LINGER, &lgot, &l));
    CHECK(l == sizeof lgot && lgot.l_onoff == 1 && lgot.l_linger == 0, "SO_LINGER read back");
    tv.tv_usec = 2000000;
    CHECK(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == -1 && errno == EDOM,
          "usec out of range");
    SYS(close(sv[0]));
    SYS(close(sv[1]));

    /* accept with a receive timeout. */
    struct sockaddr_un a;
    socklen_t al = abstract_addr(&a, "cairn-unix-timeo");
    int s = SYS(socket(AF_UNIX, SOCK_STREAM, 0));
    SYS(bind(s, (struct sockaddr *)&a, al));
    SYS(listen(s, 1));
    tv = (struct timeval){0, 50000};
    SYS(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    t0 = now_s();
    CHECK(accept(s, NULL, NULL) == -1 && errno == EAGAIN, "accept timeout: %d", errno);
    CHECK(now_s() - t0 >= 0.04, "accept waited %.3f s", now_s() - t0);
    SYS(close(s));

    /* The options on AF_INET sockets too (no network needed). */
    int i4 = SYS(socket(AF_INET, SOCK_STREAM, 0));
    tv = (struct timeval){3, 500000};
    SYS(setsockopt(i4, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
    l = sizeof got;
    SYS(getsockopt(i4, SOL_SOCKET, SO_SNDTIMEO, &got, &l));
    CHECK(got.tv_sec == 3 && got.tv_usec == 500000, "AF_INET SO_SNDTIMEO %ld.%06ld",
          (long)got.tv_sec, (long)got.tv_usec);
    SYS(setsockopt(i4, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    l = sizeof lgot;
    SYS(getsockopt(i4, SOL_SOCKET, SO_LINGER, &lgot, &l));
    CHECK(lgot.l_onoff == 1 && lgot.l_linger == 0, "AF_INET SO_LINGER");
    SYS(close(i4));
}

static void test_scm_rights(void)
{
    int sv[2], p[2];
    pair(SOCK_STREAM, sv);
    SYS(pipe(p));
    char data = 'R';
    struct iovec iov = {&data, 1};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(2 * sizeof(int))];
    } c;
    memset(&c, 0, sizeof c);
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b,
                       .msg_controllen = CMSG_SPACE(2 * sizeof(int))};
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(2 * sizeof(int));
    memcpy(CMSG_DATA(h), p, 2 * sizeof(int));
    CHECK(sendmsg(sv[0], &m, 0) == 1, "sendmsg SCM_RIGHTS");
    SYS(close(p[0]));
    SYS(close(p[1]));

    char rd = 0;
    struct iovec riov = {&rd, 1};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(4 * sizeof(int))];
    } rc;
    struct msghdr rm = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = rc.b,
                        .msg_controllen = sizeof rc.b};
    CHECK(recvmsg(sv[1], &rm, MSG_CMSG_CLOEXEC) == 1 && rd == 'R', "recvmsg");
    struct cmsghdr *rh = CMSG_FIRSTHDR(&rm);
    CHECK(rh && rh->cmsg_level == SOL_SOCKET && rh->cmsg_type == SCM_RIGHTS &&
              rh->cmsg_len == CMSG_LEN(2 * sizeof(int)),
          "control message");
    CHECK(!(rm.msg_flags & MSG_CTRUNC), "not truncated");
    int q[2];
    memcpy(q, CMSG_DATA(rh), sizeof q);
    CHECK(fcntl(q[0], F_GETFD) & FD_CLOEXEC, "MSG_CMSG_CLOEXEC");
    CHECK(write(q[1], "via", 3) == 3, "write through a passed pipe end");
    char buf[8];
    CHECK(read(q[0], buf, sizeof buf) == 3 && memcmp(buf, "via", 3) == 0, "read it back");
    SYS(close(q[0]));
    SYS(close(q[1]));

    /* No room for the descriptors: MSG_CTRUNC, data still arrives. */
    int e = SYS(eventfd(0, 0));
    memcpy(CMSG_DATA(h), &e, sizeof e);
    h->cmsg_len = CMSG_LEN(sizeof(int));
    m.msg_controllen = CMSG_SPACE(sizeof(int));
    CHECK(sendmsg(sv[0], &m, 0) == 1, "sendmsg");
    rm.msg_control = NULL;
    rm.msg_controllen = 0;
    CHECK(recvmsg(sv[1], &rm, 0) == 1, "recvmsg without control room");
    CHECK(rm.msg_flags & MSG_CTRUNC, "MSG_CTRUNC %x", rm.msg_flags);
    SYS(close(e));
    /* A bad descriptor: EBADF, nothing sent. */
    int bad = 999;
    memcpy(CMSG_DATA(h), &bad, sizeof bad);
    CHECK(sendmsg(sv[0], &m, 0) == -1 && errno == EBADF, "EBADF: %d", errno);
    CHECK(recv(sv[1], buf, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN, "nothing sent");
    /* A socket passed over itself, then closed: no hang, no crash. */
    memcpy(CMSG_DATA(h), &sv[1], sizeof(int));
    CHECK(sendmsg(sv[0], &m, 0) == 1, "send a socket over itself");
    SYS(close(sv[0]));
    SYS(close(sv[1]));
}

/* Ping-pong over socketpairs with more threads than vCPUs. */
#define PAIRS 6
#define PINGS 300
static int pp[PAIRS][2];
static struct worker_progress *ppw[PAIRS * 2];

static void *pinger(void *arg)
{
    int i = (int)(intptr_t)arg;
    uint32_t v = 0;
    for (int k = 0; k < PINGS; k++) {
        v = (uint32_t)k * 2;
        CHECK(write(pp[i][0], &v, 4) == 4, "ping");
        CHECK(read(pp[i][0], &v, 4) == 4, "pong read");
        CHECK(v == (uint32_t)k * 2 + 1, "pong value %u at %d", v, k);
        tick(ppw[2 * i], "ping");
    }
    ppw[2 * i]->done = 1;
    return NULL;
}

static void *ponger(void *arg)
{
    int i = (int)(intptr_t)arg;
    uint32_t v;
    for (int k = 0; k < PINGS; k++) {
        CHECK(read(pp[i][1], &v, 4) == 4, "ping read");
        v++;
        CHECK(write(pp[i][1], &v, 4) == 4, "pong");
        tick(ppw[2 * i + 1], "pong");
    }
    ppw[2 * i + 1]->done = 1;
    return NULL;
}

static void test_pingpong(void)
{
    pthread_t t[PAIRS * 2];
    for (int i = 0; i < PAIRS; i++) {
        pair(i % 2 ? SOCK_SEQPACKET : SOCK_STREAM, pp[i]);
        ppw[2 * i] = worker("pinger");
        ppw[2 * i + 1] = worker("ponger");
    }
    for (int i = 0; i < PAIRS; i++) {
        CHECK(pthread_create(&t[2 * i], NULL, pinger, (void *)(intptr_t)i) == 0, "thread");
        CHECK(pthread_create(&t[2 * i + 1], NULL, ponger, (void *)(intptr_t)i) == 0, "thread");
    }
    for (int i = 0; i < PAIRS * 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < PAIRS; i++) {
        SYS(close(pp[i][0]));
        SYS(close(pp[i][1]));
    }
}

static void test_bad_pointers(void)
{
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, BAD) == -1 && errno == EFAULT, "socketpair sv");
    CHECK(socketpair(AF_INET, SOCK_STREAM, 0, (int[2]){0}) == -1 && errno == EOPNOTSUPP,
          "AF_INET socketpair");
    CHECK(socket(AF_UNIX, 9, 0) == -1 && errno == ESOCKTNOSUPPORT, "bad type: %d", errno);
    int sv[2];
    pair(SOCK_STREAM, sv);
    CHECK(write(sv[0], BAD, 10) == -1 && errno == EFAULT, "write from a bad pointer");
    CHECK(send(sv[0], "ok", 2, 0) == 2, "send");
    CHECK(read(sv[1], BAD, 10) == -1 && errno == EFAULT, "read into a bad pointer");
    CHECK(sendmsg(sv[0], BAD, 0) == -1 && errno == EFAULT, "sendmsg bad msghdr");
    CHECK(recvmsg(sv[1], BAD, 0) == -1 && errno == EFAULT, "recvmsg bad msghdr");
    struct iovec iov = {BAD, 5};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    CHECK(sendmsg(sv[0], &m, 0) == -1 && errno == EFAULT, "sendmsg bad iovec");
    char c;
    iov = (struct iovec){&c, 1};
    m.msg_control = BAD;
    m.msg_controllen = 64;
    CHECK(sendmsg(sv[0], &m, 0) == -1 && errno == EFAULT, "sendmsg bad control");
    CHECK(bind(sv[0], BAD, 20) == -1 && errno == EFAULT, "bind bad address");
    CHECK(connect(sv[0], BAD, 20) == -1 && errno == EFAULT, "connect bad address");
    socklen_t l = 100;
    CHECK(getsockname(sv[0], BAD, &l) == -1 && errno == EFAULT, "getsockname bad");
    CHECK(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, BAD, &l) == -1 && errno == EFAULT, "getsockopt");
    CHECK(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, BAD, 16) == -1 && errno == EFAULT,
          "setsockopt");
    CHECK(ioctl(sv[1], FIONREAD, BAD) == -1 && errno == EFAULT, "FIONREAD bad");
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    CHECK(bind(sv[0], (struct sockaddr *)&a, 200) == -1 && errno == EINVAL, "address too long");
    a.sun_family = AF_INET;
    CHECK(bind(sv[0], (struct sockaddr *)&a, 10) == -1 && errno == EINVAL, "wrong family");
    SYS(close(sv[0]));
    SYS(close(sv[1]));
}

int main(void)
{
    test_init("unix_sockets");
    watchdog_start(60, 110);
    struct worker_progress *w = worker("main");
    tick(w, "stream pair");
    test_stream_pair();
    tick(w, "dgram");
    test_messages(SOCK_DGRAM);
    tick(w, "seqpacket");
    test_messages(SOCK_SEQPACKET);
    tick(w, "shutdown");
    test_shutdown_epipe();
    tick(w, "nonblocking");
    test_nonblocking();
    tick(w, "server");
    test_server();
    tick(w, "abstract");
    test_abstract_and_dgram_names();
    tick(w, "seqpacket server");
    test_seqpacket_server();
    tick(w, "epoll");
    test_epoll();
    test_epoll_wakeup();
    tick(w, "timeouts");
    test_timeouts();
    tick(w, "scm_rights");
    test_scm_rights();
    tick(w, "bad pointers");
    test_bad_pointers();
    tick(w, "pingpong");
    w->done = 1;
    test_pingpong();
    pass();
}
