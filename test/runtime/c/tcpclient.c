/*
 * A TCP client against a server on the host (QEMU's user networking puts
 * the host at 10.0.2.2): blocking and non-blocking connect (EINPROGRESS,
 * poll, SO_ERROR), 1 MiB echoed through a poll loop on a non-blocking
 * socket, MSG_PEEK, shutdown(SHUT_WR) and the end of file it brings back,
 * a refused connection both ways, EPIPE with MSG_NOSIGNAL and SIGPIPE
 * without, the socket options a client sets, and an AF_INET6 (dual-stack)
 * socket reaching the host through its IPv4-mapped address, and a reset
 * from the peer (ECONNRESET, then end of file), SO_RCVTIMEO.
 *
 * Usage: tcpclient ECHO_PORT CLOSED_PORT (the runner passes both)
 */
#include "cairn_test.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

static struct sockaddr_in host(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "10.0.2.2", &a.sin_addr);
    return a;
}

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int s)
{
    (void)s;
    sigpipes++;
}

/* Sends `len` pattern bytes and reads the echo back through one poll
 * loop on a non-blocking socket. */
static void echo_through(int s, size_t len, uint32_t seed)
{
    static char out[1 << 20], in[1 << 20];
    CHECK(len <= sizeof out, "len");
    pat_fill(out, len, 0, seed);
    size_t sent = 0, got = 0;
    SYS(fcntl(s, F_SETFL, SYS(fcntl(s, F_GETFL)) | O_NONBLOCK));
    while (got < len) {
        struct pollfd p = {.fd = s, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        int n = poll(&p, 1, 60000);
        CHECK(n == 1, "poll %d (sent %zu, got %zu)", n, sent, got);
        CHECK(!(p.revents & (POLLERR | POLLNVAL)), "revents %#x", p.revents);
        if ((p.revents & POLLOUT) && sent < len) {
            ssize_t w = send(s, out + sent, len - sent > 20000 ? 20000 : len - sent, 0);
            CHECK(w > 0 || errno == EAGAIN, "send");
            if (w > 0)
                sent += w;
        }
        if (p.revents & POLLIN) {
            ssize_t r = recv(s, in + got, len - got, 0);
            CHECK(r > 0 || (r < 0 && errno == EAGAIN), "recv %zd", r);
            if (r > 0)
                got += r;
        }
    }
    CHECK(memcmp(in, out, len) == 0, "the echo differs");
    SYS(fcntl(s, F_SETFL, SYS(fcntl(s, F_GETFL)) & ~O_NONBLOCK));
}

int main(int argc, char **argv)
{
    test_init("tcpclient");
    CHECK(argc == 3, "usage: tcpclient ECHO_PORT CLOSED_PORT");
    int port = atoi(argv[1]), closed = atoi(argv[2]);
    struct sockaddr_in echo = host(port), none = host(closed);
    signal(SIGPIPE, on_sigpipe);

    /* Blocking connect, names, options. */
    char b0[1];
    int s = SYS(socket(AF_INET, SOCK_STREAM, 0));
    SYS(connect(s, (struct sockaddr *)&echo, sizeof echo));
    struct sockaddr_in me, peer;
    socklen_t l = sizeof me;
    SYS(getsockname(s, (struct sockaddr *)&me, &l));
    char ip[32];
    inet_ntop(AF_INET, &me.sin_addr, ip, sizeof ip);
    CHECK(strcmp(ip, "10.0.2.15") == 0 && ntohs(me.sin_port) != 0, "getsockname %s:%d", ip,
          ntohs(me.sin_port));
    l = sizeof peer;
    SYS(getpeername(s, (struct sockaddr *)&peer, &l));
    CHECK(peer.sin_addr.s_addr == echo.sin_addr.s_addr && peer.sin_port == echo.sin_port,
          "getpeername");
    int one = 1, v = 0;
    SYS(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    SYS(setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one));
    l = sizeof v;
    SYS(getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, &l));
    CHECK(v == 1, "TCP_NODELAY %d", v);
    l = sizeof v;
    SYS(getsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &v, &l));
    CHECK(v == 1, "SO_KEEPALIVE %d", v);
    int rb = 100000;
    SYS(setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb));
    l = sizeof v;
    SYS(getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &l));
    CHECK(v >= rb, "SO_RCVBUF %d", v);
    CHECK(connect(s, (struct sockaddr *)&echo, sizeof echo) < 0 && errno == EISCONN, "EISCONN");

    /* SO_RCVTIMEO: a receive the echo server has nothing for gives up
     * with EAGAIN; cleared again (0) for the rest. */
    struct timeval tv = {0, 200000};
    SYS(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    double t0 = now_s();
    CHECK(recv(s, b0, 1, 0) < 0 && errno == EAGAIN, "recv past SO_RCVTIMEO");
    CHECK(now_s() - t0 >= 0.19, "SO_RCVTIMEO waited %.3f s", now_s() - t0);
    tv.tv_usec = 0;
    SYS(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));

    echo_through(s, 1 << 20, 7);

    /* MSG_PEEK leaves the bytes for the next read. */
    SYS(send(s, "peekaboo", 8, 0));
    char b[16] = {0};
    size_t have = 0;
    while (have < 8) {
        ssize_t r = recv(s, b, 8, MSG_PEEK);
        CHECK(r > 0, "peek");
        have = r;
    }
    CHECK(memcmp(b, "peekaboo", 8) == 0, "peeked %.8s", b);
    memset(b, 0, sizeof b);
    CHECK(recv(s, b, 8, MSG_WAITALL) == 8 && memcmp(b, "peekaboo", 8) == 0, "read after peek");

    /* Half close: the server sees the end and closes; we see ours. */
    SYS(shutdown(s, SHUT_WR));
    CHECK(recv(s, b, sizeof b, 0) == 0, "EOF after the server closed");
    CHECK(send(s, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "EPIPE after SHUT_WR");
    CHECK(sigpipes == 0, "no SIGPIPE with MSG_NOSIGNAL");
    CHECK(write(s, "x", 1) < 0 && errno == EPIPE, "write: EPIPE");
    CHECK(sigpipes == 1, "SIGPIPE on write (%d)", (int)sigpipes);
    close(s);

    /* Non-blocking connect. */
    s = SYS(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK(connect(s, (struct sockaddr *)&echo, sizeof echo) < 0 && errno == EINPROGRESS,
          "EINPROGRESS");
    struct pollfd p = {.fd = s, .events = POLLOUT};
    CHECK(poll(&p, 1, 60000) == 1 && (p.revents & POLLOUT), "connected (revents %#x)", p.revents);
    l = sizeof v;
    v = -1;
    SYS(getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &l));
    CHECK(v == 0, "SO_ERROR %d", v);
    echo_through(s, 100000, 8);
    close(s);

    /* Dual stack: an AF_INET6 socket reaches the IPv4 host through its
     * mapped address and names both ends as sockaddr_in6. */
    s = SYS(socket(AF_INET6, SOCK_STREAM, 0));
    v = 1;
    l = sizeof v;
    SYS(getsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v, &l));
    CHECK(v == 0, "IPV6_V6ONLY %d", v);
    struct sockaddr_in6 e6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    inet_pton(AF_INET6, "::ffff:10.0.2.2", &e6.sin6_addr);
    SYS(connect(s, (struct sockaddr *)&e6, sizeof e6));
    struct sockaddr_in6 me6, peer6;
    l = sizeof me6;
    SYS(getsockname(s, (struct sockaddr *)&me6, &l));
    inet_ntop(AF_INET6, &me6.sin6_addr, ip, sizeof ip);
    CHECK(l == sizeof me6 && me6.sin6_family == AF_INET6 && strcmp(ip, "::ffff:10.0.2.15") == 0,
          "getsockname (v6) %s", ip);
    l = sizeof peer6;
    SYS(getpeername(s, (struct sockaddr *)&peer6, &l));
    CHECK(memcmp(&peer6.sin6_addr, &e6.sin6_addr, 16) == 0 && peer6.sin6_port == e6.sin6_port,
          "getpeername (v6)");
    echo_through(s, 65536, 9);
    CHECK(connect(s, (struct sockaddr *)&echo, sizeof echo) < 0, "an AF_INET address on AF_INET6");
    close(s);

    /* A reset from the peer: ECONNRESET once, then end of file. The host
     * closes this connection with our second message unread. */
    s = SYS(socket(AF_INET, SOCK_STREAM, 0));
    SYS(connect(s, (struct sockaddr *)&echo, sizeof echo));
    SYS(send(s, "RESET", 5, 0));
    CHECK(recv(s, b, 2, MSG_WAITALL) == 2 && memcmp(b, "OK", 2) == 0, "the host's OK");
    SYS(send(s, "unread", 6, 0));
    ssize_t r = recv(s, b, sizeof b, 0);
    CHECK(r < 0 && errno == ECONNRESET, "recv after a reset: %zd", r);
    CHECK(recv(s, b, sizeof b, 0) == 0, "EOF after ECONNRESET");
    close(s);

    /* Refused, blocking and not. */
    s = SYS(socket(AF_INET, SOCK_STREAM, 0));
    CHECK(connect(s, (struct sockaddr *)&none, sizeof none) < 0 && errno == ECONNREFUSED,
          "ECONNREFUSED");
    close(s);
    s = SYS(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK(connect(s, (struct sockaddr *)&none, sizeof none) < 0 && errno == EINPROGRESS,
          "EINPROGRESS (refused)");
    p.fd = s;
    p.events = POLLOUT;
    CHECK(poll(&p, 1, 60000) == 1 && (p.revents & (POLLERR | POLLHUP)), "revents %#x", p.revents);
    l = sizeof v;
    SYS(getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &l));
    CHECK(v == ECONNREFUSED, "SO_ERROR %d", v);
    close(s);
    CHECK(recv(0 + 100, b, 1, 0) < 0 && errno == EBADF, "EBADF");
    CHECK(recv(1, b, 1, MSG_DONTWAIT) < 0 && errno == ENOTSOCK, "ENOTSOCK");
    pass();
}
