/*
 * A small HTTP/1.1 file server, as a web server would be written: one
 * thread, epoll (the listener level-triggered, connections
 * edge-triggered), non-blocking sockets, keep-alive, responses sent
 * with sendfile from the root filesystem, one request per ready
 * connection per turn of the loop. The host-side client (xtask)
 * fetches many files over a few connections and compares the bytes;
 * `GET /quit` ends the program with status 0 (`GET /fail` with 1).
 *
 * Usage: httpd [PORT]   (default 8080)
 */
#include "cairn_test.h"
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define MAX_CONN 64

struct conn {
    int fd;
    char in[4096];
    size_t in_len;
    char hdr[256];
    size_t hdr_len, hdr_off;
    int file;
    off_t file_off, file_end;
    int quit; /* exit status + 1 once this response is out */
    int more; /* its turn is due: an event came, or a request was served without EAGAIN */
};

static struct conn conns[MAX_CONN];
static long requests;

static struct conn *conn_of(int fd)
{
    for (int i = 0; i < MAX_CONN; i++)
        if (conns[i].fd == fd)
            return &conns[i];
    return NULL;
}

static void drop_conn(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->file >= 0)
        close(c->file);
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->file = -1;
}

/* Sends what is pending; 0 when all is out, 1 when the socket is full,
 * -1 when the connection is gone. */
static int pump(struct conn *c)
{
    while (c->hdr_off < c->hdr_len) {
        ssize_t n = send(c->fd, c->hdr + c->hdr_off, c->hdr_len - c->hdr_off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 1 : -1;
        c->hdr_off += n;
    }
    while (c->file >= 0 && c->file_off < c->file_end) {
        ssize_t n = sendfile(c->fd, c->file, &c->file_off, c->file_end - c->file_off);
        if (n < 0)
            return errno == EAGAIN ? 1 : -1;
        if (n == 0)
            return -1;
    }
    if (c->file >= 0) {
        close(c->file);
        c->file = -1;
    }
    return 0;
}

/* Starts the response to the request line in c->in (up to the blank line). */
static void respond(struct conn *c, const char *req)
{
    char method[8], path[200];
    requests++;
    if (sscanf(req, "%7s %199s", method, path) != 2 || strcmp(method, "GET") != 0) {
        c->hdr_len = snprintf(c->hdr, sizeof c->hdr,
                              "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        c->hdr_off = 0;
        return;
    }
    if (strcmp(path, "/quit") == 0 || strcmp(path, "/fail") == 0) {
        c->quit = strcmp(path, "/quit") == 0 ? 1 : 2;
        c->hdr_len = snprintf(c->hdr, sizeof c->hdr,
                              "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbye\n");
        c->hdr_off = 0;
        return;
    }
    int f = open(path, O_RDONLY);
    struct stat st;
    if (f < 0 || fstat(f, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (f >= 0)
            close(f);
        c->hdr_len = snprintf(c->hdr, sizeof c->hdr,
                              "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        c->hdr_off = 0;
        return;
    }
    c->file = f;
    c->file_off = 0;
    c->file_end = st.st_size;
    c->hdr_len = snprintf(c->hdr, sizeof c->hdr,
                          "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\nContent-Type: "
                          "application/octet-stream\r\n\r\n",
                          (long long)st.st_size);
    c->hdr_off = 0;
}

/* Serves at most one request of the connection: every ready connection
 * gets a turn before any gets a second one, as event-loop servers do
 * (serving one connection until EAGAIN starved the others for up to a
 * second when a fast client sent its next request before the server
 * looked again: `cargo xtask bench net` p99). Returns -1 to drop it, 0
 * when it waits for an event (EAGAIN: edge-triggered, it read until
 * then), 1 when it may have more to do now. */
static int serve(struct conn *c)
{
    int served = 0;
    for (;;) {
        int p = pump(c);
        if (p < 0)
            return -1;
        if (p > 0)
            return 0; /* wait for EPOLLOUT */
        if (c->quit) {
            printf("httpd: %ld requests served\n", requests);
            struct kstats k;
            if (kstats_read(&k) == 0)
                printf("httpd: frames received %lld, sent %lld, dropped for a full transmit ring %lld\n",
                       kstat(&k, "net.rx_frames"), kstat(&k, "net.tx_frames"), kstat(&k, "net.tx_dropped"));
            if (c->quit == 1)
                pass();
            FAIL("the client asked for /fail");
        }
        if (served)
            return 1;
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (end) {
            *end = 0;
            respond(c, c->in);
            size_t used = end + 4 - c->in;
            memmove(c->in, end + 4, c->in_len - used);
            c->in_len -= used;
            served = 1;
            continue;
        }
        if (c->in_len == sizeof c->in)
            return -1; /* request too long */
        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->in_len += n;
    }
}

int main(int argc, char **argv)
{
    test_init("httpd");
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    /* As servers do: a client gone mid-response (sendfile has no
     * MSG_NOSIGNAL) is an EPIPE for that connection, not the end of the
     * server. */
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < MAX_CONN; i++) {
        conns[i].fd = -1;
        conns[i].file = -1;
    }
    int ls = SYS(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int one = 1;
    SYS(setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    SYS(bind(ls, (struct sockaddr *)&a, sizeof a));
    SYS(listen(ls, 16));
    struct sockaddr_in got;
    socklen_t gl = sizeof got;
    SYS(getsockname(ls, (struct sockaddr *)&got, &gl));
    CHECK(gl == sizeof got && ntohs(got.sin_port) == port, "getsockname port %d", ntohs(got.sin_port));
    int ep = SYS(epoll_create1(EPOLL_CLOEXEC));
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    SYS(epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev));
    printf("httpd: listening on port %d\n", port);
    for (;;) {
        /* Connections with a turn due: wait for nothing new then. */
        int due = 0;
        for (int i = 0; i < MAX_CONN; i++)
            due |= conns[i].fd >= 0 && conns[i].more;
        struct epoll_event evs[16];
        int n = epoll_wait(ep, evs, 16, due ? 0 : -1);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n >= 0, "epoll_wait %d", n);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == ls) {
                for (;;) {
                    struct sockaddr_in peer;
                    socklen_t pl = sizeof peer;
                    int fd = accept4(ls, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) {
                        CHECK(errno == EAGAIN, "accept4");
                        break;
                    }
                    CHECK(pl == sizeof peer && peer.sin_family == AF_INET, "accept4 peer");
                    struct conn *c = conn_of(-1);
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    c->more = 1;
                    SYS(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                              .data.fd = fd};
                    SYS(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev));
                }
                continue;
            }
            struct conn *c = conn_of(evs[i].data.fd);
            if (c)
                c->more = 1;
        }
        /* One turn for each connection with something to do. */
        for (int i = 0; i < MAX_CONN; i++) {
            struct conn *c = &conns[i];
            if (c->fd < 0 || !c->more)
                continue;
            int r = serve(c);
            if (r < 0)
                drop_conn(ep, c);
            else
                c->more = r;
        }
    }
}
