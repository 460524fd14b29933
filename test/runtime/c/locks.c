/*
 * Advisory locks as a database's VFS uses them: POSIX record locks
 * (process-owned: never conflict with the process itself, dropped when
 * ANY descriptor of the file closes), OFD locks (owned by the open file
 * description, dropped when its last descriptor closes), their conflicts
 * with each other, F_GETLK reports, range splitting and merging, blocking
 * F_SETLKW / F_OFD_SETLKW woken by an unlock from another thread, flock
 * (shared/exclusive, non-blocking, blocking, independent of fcntl locks),
 * and the errors. On cairn, a cycle of OFD waits is refused with EDEADLK
 * (Linux does not check OFD locks and would hang: skipped there).
 */
#include "cairn_test.h"
#include <sys/file.h>
#include <sys/utsname.h>

static const char *F = "locks.dat";

static int lk(int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

/* F_GETLK / F_OFD_GETLK: the lock blocking a write of [start, start+len). */
static struct flock getlk(int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    SYS(fcntl(fd, cmd, &fl));
    return fl;
}

static volatile int released;

struct hold {
    int fd;
    int cmd;
    short type;
    off_t start, len;
    int flock_op;
};

/* Holds a lock for a while, then releases it (sets `released` first). */
static void *holder(void *arg)
{
    struct hold *h = arg;
    sleep_ms(200);
    released = 1;
    if (h->flock_op)
        SYS(flock(h->fd, LOCK_UN));
    else
        SYS(lk(h->fd, h->cmd, F_UNLCK, h->start, h->len));
    return NULL;
}

static int on_cairn(void)
{
    struct utsname u;
    return uname(&u) == 0 && strstr(u.release, "cairn") != NULL;
}

static int deadlock_a, deadlock_result;
static void *deadlock_waiter(void *arg)
{
    (void)arg;
    /* Blocks: [1,2) is held by the other description. */
    deadlock_result = lk(deadlock_a, F_OFD_SETLKW, F_WRLCK, 1, 1);
    return NULL;
}

int main(void)
{
    test_init("locks");
    watchdog_start(20, 100);
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    int a = SYS(open(F, O_CREAT | O_RDWR | O_TRUNC, 0644));
    write_all(a, buf, sizeof buf);
    int b = SYS(open(F, O_RDWR));

    /* A process lock never conflicts with the process itself. */
    SYS(lk(a, F_SETLK, F_WRLCK, 0, 100));
    struct flock g = getlk(b, F_GETLK, F_WRLCK, 0, 10);
    CHECK(g.l_type == F_UNLCK, "own process lock reported: type %d", g.l_type);
    SYS(lk(b, F_SETLK, F_RDLCK, 10, 10)); /* converts part of our own lock */
    SYS(lk(a, F_SETLK, F_WRLCK, 0, 100));

    /* ...but an OFD lock of another description conflicts with it. */
    g = getlk(b, F_OFD_GETLK, F_WRLCK, 50, 10);
    CHECK(g.l_type == F_WRLCK && g.l_start == 0 && g.l_len == 100 && g.l_pid == getpid(),
          "F_OFD_GETLK: type %d start %lld len %lld pid %d", g.l_type, (long long)g.l_start,
          (long long)g.l_len, g.l_pid);
    errno = 0;
    CHECK(lk(b, F_OFD_SETLK, F_WRLCK, 50, 10) < 0 && (errno == EAGAIN || errno == EACCES),
          "OFD lock over the process lock");
    SYS(lk(b, F_OFD_SETLK, F_RDLCK, 100, 100));
    CHECK(lk(a, F_SETLK, F_WRLCK, 150, 10) < 0 && (errno == EAGAIN || errno == EACCES),
          "process lock over an OFD read lock");
    SYS(lk(a, F_SETLK, F_RDLCK, 150, 10)); /* read locks share */
    g = getlk(a, F_GETLK, F_WRLCK, 120, 1);
    CHECK(g.l_type == F_RDLCK && g.l_start == 100 && g.l_len == 100 && g.l_pid == -1,
          "F_GETLK of an OFD lock: type %d start %lld len %lld pid %d", g.l_type,
          (long long)g.l_start, (long long)g.l_len, g.l_pid);

    /* Closing ANY descriptor of the file drops the process's locks... */
    int c = SYS(open(F, O_RDONLY));
    SYS(close(c));
    g = getlk(b, F_OFD_GETLK, F_WRLCK, 0, 100);
    CHECK(g.l_type == F_UNLCK, "process lock survived the close of another descriptor");
    /* ...but not the OFD locks of other descriptions. */
    g = getlk(a, F_GETLK, F_WRLCK, 100, 1);
    CHECK(g.l_type == F_RDLCK, "OFD lock dropped by a close of another description");

    /* Splitting and merging. */
    SYS(lk(a, F_SETLK, F_WRLCK, 0, 100));
    SYS(lk(a, F_SETLK, F_UNLCK, 40, 20));
    CHECK(getlk(b, F_OFD_GETLK, F_WRLCK, 50, 1).l_type == F_UNLCK, "hole not unlocked");
    g = getlk(b, F_OFD_GETLK, F_WRLCK, 0, 100);
    CHECK(g.l_type == F_WRLCK && g.l_start == 0 && g.l_len == 40, "left part %lld+%lld",
          (long long)g.l_start, (long long)g.l_len);
    g = getlk(b, F_OFD_GETLK, F_WRLCK, 45, 55);
    CHECK(g.l_start == 60 && g.l_len == 40, "right part %lld+%lld", (long long)g.l_start,
          (long long)g.l_len);
    SYS(lk(a, F_SETLK, F_WRLCK, 40, 20));
    g = getlk(b, F_OFD_GETLK, F_WRLCK, 0, 1);
    CHECK(g.l_start == 0 && g.l_len == 100, "not merged: %lld+%lld", (long long)g.l_start,
          (long long)g.l_len);
    /* l_len 0: to the end of any file; SEEK_END and negative lengths. */
    SYS(lk(a, F_SETLK, F_UNLCK, 0, 0));
    SYS(lk(a, F_SETLK, F_WRLCK, 1000000, 0));
    CHECK(getlk(b, F_OFD_GETLK, F_RDLCK, 1LL << 40, 1).l_type == F_WRLCK, "l_len 0");
    struct flock end = {.l_type = F_WRLCK, .l_whence = SEEK_END, .l_start = -10, .l_len = -6};
    SYS(fcntl(a, F_SETLK, &end));
    g = getlk(b, F_OFD_GETLK, F_WRLCK, 4070, 20);
    CHECK(g.l_type == F_WRLCK && g.l_start == 4080 && g.l_len == 6, "SEEK_END lock %lld+%lld",
          (long long)g.l_start, (long long)g.l_len);
    SYS(lk(a, F_SETLK, F_UNLCK, 0, 0));

    /* An OFD lock lives while any descriptor of its description does. */
    int b2 = SYS(dup(b));
    SYS(close(b));
    CHECK(getlk(a, F_GETLK, F_WRLCK, 150, 1).l_type == F_RDLCK, "OFD lock gone with a dup open");
    SYS(close(b2));
    CHECK(getlk(a, F_GETLK, F_WRLCK, 150, 1).l_type == F_UNLCK, "OFD lock outlived its description");

    /* F_OFD_SETLKW waits for an unlock by another thread. */
    int x = SYS(open(F, O_RDWR)), y = SYS(open(F, O_RDWR));
    SYS(lk(x, F_OFD_SETLK, F_WRLCK, 0, 10));
    struct hold h = {.fd = x, .cmd = F_OFD_SETLK, .start = 0, .len = 10};
    pthread_t t;
    released = 0;
    pthread_create(&t, NULL, holder, &h);
    SYS(lk(y, F_OFD_SETLKW, F_WRLCK, 5, 1));
    CHECK(released, "F_OFD_SETLKW returned before the unlock");
    pthread_join(t, NULL);
    /* F_SETLKW (process lock) waits for an OFD lock too. */
    released = 0;
    h = (struct hold){.fd = y, .cmd = F_OFD_SETLK, .start = 5, .len = 1};
    pthread_create(&t, NULL, holder, &h);
    SYS(lk(a, F_SETLKW, F_RDLCK, 0, 10));
    CHECK(released, "F_SETLKW returned before the unlock");
    pthread_join(t, NULL);
    SYS(lk(a, F_SETLK, F_UNLCK, 0, 0));

    /* A cycle of waits. */
    if (on_cairn()) {
        SYS(lk(x, F_OFD_SETLK, F_WRLCK, 0, 1));
        SYS(lk(y, F_OFD_SETLK, F_WRLCK, 1, 1));
        deadlock_a = x;
        pthread_create(&t, NULL, deadlock_waiter, NULL);
        sleep_ms(200); /* let it block (if it has not, the check below still holds) */
        int r = lk(y, F_OFD_SETLKW, F_WRLCK, 0, 1);
        int e = errno;
        if (r == 0) {
            /* The waiter had not blocked yet: no cycle was closed. */
            SYS(lk(y, F_OFD_SETLK, F_UNLCK, 0, 1));
        } else {
            CHECK(e == EDEADLK, "F_OFD_SETLKW closing a cycle: errno %d", e);
        }
        SYS(lk(y, F_OFD_SETLK, F_UNLCK, 0, 2));
        pthread_join(t, NULL);
        CHECK(deadlock_result == 0, "the waiter did not get its lock");
        SYS(lk(x, F_OFD_SETLK, F_UNLCK, 0, 0));
        printf("locks: EDEADLK for a cycle of OFD waits\n");
    } else {
        printf("locks: EDEADLK part skipped (Linux does not check OFD locks)\n");
    }

    /* flock: per description, shared/exclusive, independent of fcntl. */
    int p = SYS(open(F, O_RDONLY)), q = SYS(open(F, O_RDONLY));
    SYS(flock(p, LOCK_EX));
    CHECK(flock(q, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK, "second LOCK_EX");
    CHECK(flock(q, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK, "LOCK_SH over LOCK_EX");
    SYS(lk(a, F_SETLK, F_WRLCK, 0, 0)); /* fcntl locks do not see flock */
    SYS(lk(a, F_SETLK, F_UNLCK, 0, 0));
    SYS(flock(p, LOCK_UN));
    SYS(flock(q, LOCK_SH));
    SYS(flock(p, LOCK_SH | LOCK_NB));
    CHECK(flock(p, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK, "upgrade over another LOCK_SH");
    SYS(close(q)); /* its description goes, and its lock */
    SYS(flock(p, LOCK_EX | LOCK_NB));
    int r2 = SYS(open(F, O_RDONLY));
    released = 0;
    h = (struct hold){.fd = p, .flock_op = 1};
    pthread_create(&t, NULL, holder, &h);
    SYS(flock(r2, LOCK_EX)); /* waits for the holder */
    CHECK(released, "blocking flock returned before the unlock");
    pthread_join(t, NULL);
    SYS(close(r2));
    SYS(close(p));

    /* Errors. */
    int ro = SYS(open(F, O_RDONLY));
    CHECK(lk(ro, F_SETLK, F_WRLCK, 0, 1) < 0 && errno == EBADF, "write lock on O_RDONLY");
    CHECK(lk(a, F_SETLK, 7, 0, 1) < 0 && errno == EINVAL, "bad l_type");
    struct flock bad = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1, .l_pid = 5};
    CHECK(fcntl(a, F_OFD_SETLK, &bad) < 0 && errno == EINVAL, "OFD lock with l_pid set");
    CHECK(lk(a, F_SETLK, F_RDLCK, -5, 1) < 0 && errno == EINVAL, "negative start");
    CHECK(flock(a, 0) < 0 && errno == EINVAL, "flock op 0");
    SYS(close(ro));
    SYS(close(x));
    SYS(close(y));
    SYS(close(a));
    SYS(c_unlink(F));
    pass();
}
