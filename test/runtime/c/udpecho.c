/*
 * A UDP echo server, as a small daemon would be written: bind, then
 * recvfrom/sendto in a loop, with poll for readiness and a second socket
 * that checks the socket calls' answers (getsockname, SO_TYPE, connect on
 * a datagram socket, EDESTADDRREQ, MSG_DONTWAIT, SO_RCVTIMEO). The host-side client
 * sends datagrams of several sizes and checks each echo; "quit" ends the
 * program with status 0.
 *
 * With a TCP_PORT it also listens there (backlog 8) and accepts every
 * connection, reads what has arrived without waiting and closes it: the
 * other end of net_garbage's handshakes and SYN floods.
 *
 * Usage: udpecho [PORT [TCP_PORT]]   (default 7777, no listener)
 */
#include "cairn_test.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
    test_init("udpecho");
    int port = argc > 1 ? atoi(argv[1]) : 7777;

    /* The calls' answers, on a socket of its own. */
    int t = SYS(socket(AF_INET, SOCK_DGRAM, 0));
    int ty = 0;
    socklen_t tl = sizeof ty;
    SYS(getsockopt(t, SOL_SOCKET, SO_TYPE, &ty, &tl));
    CHECK(ty == SOCK_DGRAM, "SO_TYPE %d", ty);
    char c = 'x';
    CHECK(send(t, &c, 1, 0) < 0 && errno == EDESTADDRREQ, "send without a peer");
    CHECK(recv(t, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "recv MSG_DONTWAIT");
    struct sockaddr_in any = {.sin_family = AF_INET};
    SYS(bind(t, (struct sockaddr *)&any, sizeof any));
    struct sockaddr_in got;
    socklen_t gl = sizeof got;
    SYS(getsockname(t, (struct sockaddr *)&got, &gl));
    CHECK(ntohs(got.sin_port) != 0, "an ephemeral port");
    struct sockaddr_in gw = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "10.0.2.2", &gw.sin_addr);
    SYS(connect(t, (struct sockaddr *)&gw, sizeof gw));
    gl = sizeof got;
    SYS(getpeername(t, (struct sockaddr *)&got, &gl));
    CHECK(got.sin_addr.s_addr == gw.sin_addr.s_addr && got.sin_port == gw.sin_port, "getpeername");
    /* SO_RCVTIMEO: a blocking receive nobody answers gives up (EAGAIN). */
    struct timeval tv = {0, 200000};
    SYS(setsockopt(t, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    double t0 = now_s();
    CHECK(recv(t, &c, 1, 0) < 0 && errno == EAGAIN, "recv past SO_RCVTIMEO");
    CHECK(now_s() - t0 >= 0.19, "SO_RCVTIMEO waited %.3f s", now_s() - t0);
    struct sockaddr_in6 six = {.sin6_family = AF_INET6};
    CHECK(bind(t, (struct sockaddr *)&six, sizeof six) < 0, "bind of an AF_INET6 address");
    close(t);
    CHECK(socket(AF_INET, SOCK_RAW, 1) < 0, "SOCK_RAW refused");

    int s = SYS(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    SYS(bind(s, (struct sockaddr *)&a, sizeof a));
    int s2 = SYS(socket(AF_INET, SOCK_DGRAM, 0));
    CHECK(bind(s2, (struct sockaddr *)&a, sizeof a) < 0 && errno == EADDRINUSE, "second bind");
    close(s2);
    int l = -1;
    if (argc > 2) {
        l = SYS(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
        int one = 1;
        SYS(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
        struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        SYS(bind(l, (struct sockaddr *)&la, sizeof la));
        SYS(listen(l, 8));
    }
    printf("udpecho: on port %d\n", port);
    static char buf[65536];
    long echoed = 0, accepted = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = s, .events = POLLIN}, {.fd = l, .events = POLLIN}};
        int n = poll(p, l >= 0 ? 2 : 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n >= 1, "poll %d", n);
        if (l >= 0 && p[1].revents) {
            CHECK(p[1].revents == POLLIN, "listener revents %#x", p[1].revents);
            int c;
            while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                (void)!read(c, buf, sizeof buf);
                close(c);
                accepted++;
            }
            CHECK(errno == EAGAIN || errno == ECONNABORTED, "accept4");
        }
        if (!p[0].revents)
            continue;
        CHECK(p[0].revents & POLLIN, "revents %#x", p[0].revents);
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t len = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        CHECK(len >= 0, "recvfrom");
        CHECK(fl == sizeof from && from.sin_family == AF_INET, "sender address");
        if (len == 4 && memcmp(buf, "quit", 4) == 0) {
            printf("udpecho: %ld datagrams echoed, %ld connections accepted\n", echoed, accepted);
            pass();
        }
        ssize_t w = sendto(s, buf, len, 0, (struct sockaddr *)&from, fl);
        CHECK(w == len, "sendto %zd of %zd", w, len);
        echoed++;
    }
}
