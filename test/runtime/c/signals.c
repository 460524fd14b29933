/* signals (issue 12 item 2): what programs do with signal handlers.
 *
 * - alarm() and setitimer() SIGALRM handlers interrupting a thread that
 *   spins in user mode (asynchronous delivery to a busy CPU);
 * - kill/raise/pthread_kill with SA_SIGINFO (si_code, si_pid, which thread
 *   runs the handler);
 * - per-thread masks: a blocked signal stays pending (sigpending) and runs
 *   when unblocked; SIG_IGN discards; a process signal goes to the one
 *   thread that does not block it;
 * - SA_RESTART: a pipe read interrupted by a handler continues; without it
 *   the read fails with EINTR; nanosleep returns EINTR with the time left;
 * - sigsuspend, sigtimedwait with queued real-time signals and their values
 *   (sigqueue), ppoll with a temporary mask;
 * - SA_RESETHAND, SA_NODEFER;
 * - POSIX timers: SIGEV_SIGNAL with a value, periodic, delete; SIGEV_THREAD
 *   (glibc's helper thread);
 * - a thread blocked in pthread_cond_wait takes a handler and goes on.
 * The program passes natively on Linux too.
 */
#include "cairn_test.h"
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

static void handle(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    SYS(sigaction(sig, &sa, NULL));
}

static void handle_info(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | flags;
    SYS(sigaction(sig, &sa, NULL));
}

static void block(int sig, int how)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    CHECK(pthread_sigmask(how, &s, NULL) == 0, "pthread_sigmask");
}

/* ---- asynchronous delivery to a spinning thread ---- */
static volatile sig_atomic_t alarm_hits;
static void on_alarm(int sig) { (void)sig; alarm_hits++; }

static void test_alarm_interrupts_a_spinning_loop(void)
{
    handle(SIGALRM, on_alarm, 0);
    alarm_hits = 0;
    alarm(1);
    /* Spin in user mode: only an interrupt can bring the handler in. */
    double t0 = now_s();
    while (!alarm_hits)
        CHECK(now_s() - t0 < 120, "the alarm handler never ran");
    CHECK(alarm_hits == 1, "alarm handler ran %d times", (int)alarm_hits);

    /* setitimer: a periodic SIGALRM, three ticks, then disarm. */
    struct itimerval it = {{0, 20000}, {0, 20000}}, off = {{0, 0}, {0, 0}}, was;
    alarm_hits = 0;
    SYS(setitimer(ITIMER_REAL, &it, NULL));
    t0 = now_s();
    while (alarm_hits < 3)
        CHECK(now_s() - t0 < 120, "the interval timer stopped after %d ticks", (int)alarm_hits);
    SYS(setitimer(ITIMER_REAL, &off, &was));
    CHECK(was.it_interval.tv_usec == 20000, "interval read back %ld", (long)was.it_interval.tv_usec);
    int seen = alarm_hits;
    sleep_ms(100);
    CHECK(alarm_hits == seen, "the disarmed timer kept firing");
}

/* ---- siginfo, and which thread runs the handler ---- */
static volatile sig_atomic_t usr1_hits;
static volatile int usr1_code, usr1_pid, usr1_tid;
static void on_usr1_info(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (sig != SIGUSR1)
        _exit(ST_FAIL);
    usr1_code = si->si_code;
    usr1_pid = si->si_pid;
    usr1_tid = gettid_();
    usr1_hits++;
}
static void on_usr1(int sig) { (void)sig; usr1_tid = gettid_(); usr1_hits++; }

static volatile int worker_tid, worker_go;
/* A thread that waits for `worker_go`; with a non-null argument it
 * unblocks SIGUSR2 (which it inherited blocked). */
static void *spare_thread(void *arg)
{
    if (arg != NULL)
        block(SIGUSR2, SIG_UNBLOCK);
    worker_tid = gettid_();
    while (!__atomic_load_n(&worker_go, __ATOMIC_ACQUIRE))
        sleep_ms(1);
    return NULL;
}

static void test_siginfo_and_threads(void)
{
    handle_info(SIGUSR1, on_usr1_info, 0);
    usr1_hits = 0;
    SYS(kill(getpid(), SIGUSR1));
    /* Delivered before kill returns to this thread, which does not block it. */
    CHECK(usr1_hits == 1, "kill: handler ran %d times", (int)usr1_hits);
    CHECK(usr1_code == SI_USER, "kill: si_code %d", usr1_code);
    CHECK(usr1_pid == getpid(), "kill: si_pid %d, not %d", usr1_pid, (int)getpid());
    CHECK(raise(SIGUSR1) == 0, "raise");
    CHECK(usr1_hits == 2 && usr1_code == SI_TKILL, "raise: %d runs, si_code %d", (int)usr1_hits,
          usr1_code);
    CHECK(usr1_tid == gettid_(), "raise ran the handler in another thread");

    /* pthread_kill: the handler runs in the target thread. */
    pthread_t t;
    worker_go = 0;
    worker_tid = 0;
    CHECK(pthread_create(&t, NULL, spare_thread, NULL) == 0, "pthread_create");
    while (!worker_tid)
        sleep_ms(1);
    usr1_tid = 0;
    CHECK(pthread_kill(t, SIGUSR1) == 0, "pthread_kill");
    for (int i = 0; i < 10000 && usr1_tid == 0; i++)
        sleep_ms(1);
    CHECK(usr1_tid == worker_tid, "pthread_kill: handler ran in tid %d, not %d", usr1_tid,
          worker_tid);
    __atomic_store_n(&worker_go, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);

    /* A process signal that every thread but one blocks runs in that one. */
    handle(SIGUSR2, on_usr1, 0);
    block(SIGUSR2, SIG_BLOCK);
    worker_go = 0;
    worker_tid = 0;
    CHECK(pthread_create(&t, NULL, spare_thread, (void *)1) == 0, "pthread_create");
    while (!worker_tid)
        sleep_ms(1);
    usr1_tid = 0;
    SYS(kill(getpid(), SIGUSR2));
    for (int i = 0; i < 10000 && usr1_tid == 0; i++)
        sleep_ms(1);
    CHECK(usr1_tid == worker_tid, "kill: handler ran in tid %d, not the unblocking %d", usr1_tid,
          worker_tid);
    __atomic_store_n(&worker_go, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    block(SIGUSR2, SIG_UNBLOCK);
}

/* ---- masks and pending ---- */
static volatile sig_atomic_t usr2_hits;
static void on_usr2(int sig) { (void)sig; usr2_hits++; }

static void test_mask_and_pending(void)
{
    handle(SIGUSR2, on_usr2, 0);
    sigset_t pend;
    block(SIGUSR2, SIG_BLOCK);
    usr2_hits = 0;
    SYS(raise(SIGUSR2));
    SYS(raise(SIGUSR2)); /* a standard signal is pending once */
    CHECK(usr2_hits == 0, "a blocked signal ran its handler");
    SYS(sigpending(&pend));
    CHECK(sigismember(&pend, SIGUSR2), "sigpending does not show the blocked signal");
    block(SIGUSR2, SIG_UNBLOCK);
    CHECK(usr2_hits == 1, "after unblocking: %d runs, not 1", (int)usr2_hits);
    SYS(sigpending(&pend));
    CHECK(!sigismember(&pend, SIGUSR2), "still pending after delivery");

    /* SIG_IGN discards, even what is already pending. */
    block(SIGUSR2, SIG_BLOCK);
    SYS(raise(SIGUSR2));
    handle(SIGUSR2, SIG_IGN, 0);
    SYS(sigpending(&pend));
    CHECK(!sigismember(&pend, SIGUSR2), "ignoring did not discard the pending signal");
    SYS(raise(SIGUSR2));
    block(SIGUSR2, SIG_UNBLOCK);
    CHECK(usr2_hits == 1, "an ignored signal ran the handler");
}

/* ---- restart and EINTR ---- */
struct poke {
    pthread_t target;
    int wfd;
};

/* Signals `target` while it blocks, then (if wfd >= 0) writes a byte. */
static void *poke(void *p)
{
    struct poke *a = p;
    sleep_ms(150);
    pthread_kill(a->target, SIGUSR1);
    if (a->wfd >= 0) {
        sleep_ms(150);
        write_all(a->wfd, "x", 1);
    }
    return NULL;
}

static ssize_t read_with_signal(int restart, int *err)
{
    handle(SIGUSR1, on_usr1, restart ? SA_RESTART : 0);
    int p[2];
    SYS(pipe(p));
    struct poke a = {pthread_self(), p[1]};
    pthread_t t;
    usr1_hits = 0;
    CHECK(pthread_create(&t, NULL, poke, &a) == 0, "pthread_create");
    char c;
    errno = 0;
    ssize_t n = read(p[0], &c, 1);
    *err = errno;
    pthread_join(t, NULL);
    close(p[0]);
    close(p[1]);
    CHECK(usr1_hits == 1, "the handler ran %d times", (int)usr1_hits);
    return n;
}

static void test_restart_and_eintr(void)
{
    int e;
    ssize_t n = read_with_signal(1, &e);
    CHECK(n == 1, "SA_RESTART: the read returned %zd (errno %d), not the byte", n, e);
    n = read_with_signal(0, &e);
    CHECK(n == -1 && e == EINTR, "no SA_RESTART: the read returned %zd errno %d, not EINTR", n, e);

    /* nanosleep: EINTR with the time left, whatever SA_RESTART says. */
    handle(SIGUSR1, on_usr1, SA_RESTART);
    struct poke a = {pthread_self(), -1};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, poke, &a) == 0, "pthread_create");
    struct timespec req = {30, 0}, rem = {0, 0};
    errno = 0;
    int r = nanosleep(&req, &rem);
    CHECK(r == -1 && errno == EINTR, "nanosleep returned %d errno %d", r, errno);
    CHECK(rem.tv_sec > 20 && rem.tv_sec <= 30, "nanosleep left %ld s", (long)rem.tv_sec);
    pthread_join(t, NULL);
}

/* ---- waiting for signals ---- */
static void *poke_later(void *p)
{
    struct poke *a = p;
    sleep_ms(100);
    pthread_kill(a->target, SIGUSR1);
    return NULL;
}

static void test_waiting(void)
{
    /* sigsuspend: wakes for the handler, EINTR, mask restored. */
    handle(SIGUSR1, on_usr1, 0);
    block(SIGUSR1, SIG_BLOCK);
    struct poke a = {pthread_self(), -1};
    pthread_t t;
    usr1_hits = 0;
    CHECK(pthread_create(&t, NULL, poke_later, &a) == 0, "pthread_create");
    sigset_t none, cur;
    sigemptyset(&none);
    errno = 0;
    int r = sigsuspend(&none);
    CHECK(r == -1 && errno == EINTR, "sigsuspend returned %d errno %d", r, errno);
    CHECK(usr1_hits == 1, "sigsuspend: the handler ran %d times", (int)usr1_hits);
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    CHECK(sigismember(&cur, SIGUSR1), "sigsuspend did not restore the mask");
    pthread_join(t, NULL);

    /* ppoll with a mask that lets SIGUSR1 in: EINTR after the handler. */
    usr1_hits = 0;
    CHECK(pthread_create(&t, NULL, poke_later, &a) == 0, "pthread_create");
    int p[2];
    SYS(pipe(p));
    struct pollfd pf = {p[0], POLLIN, 0};
    struct timespec long_wait = {30, 0};
    errno = 0;
    r = ppoll(&pf, 1, &long_wait, &none);
    CHECK(r == -1 && errno == EINTR, "ppoll returned %d errno %d", r, errno);
    CHECK(usr1_hits == 1, "ppoll: the handler ran %d times", (int)usr1_hits);
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    CHECK(sigismember(&cur, SIGUSR1), "ppoll did not restore the mask");
    pthread_join(t, NULL);
    close(p[0]);
    close(p[1]);
    block(SIGUSR1, SIG_UNBLOCK);

    /* sigtimedwait: queued real-time signals in order, with their values. */
    int rt = SIGRTMIN + 2;
    block(rt, SIG_BLOCK);
    for (int v = 1; v <= 3; v++) {
        union sigval val = {.sival_int = v * 11};
        SYS(sigqueue(getpid(), rt, val));
    }
    sigset_t want;
    sigemptyset(&want);
    sigaddset(&want, rt);
    for (int v = 1; v <= 3; v++) {
        siginfo_t si;
        struct timespec ts = {5, 0};
        int got = sigtimedwait(&want, &si, &ts);
        CHECK(got == rt, "sigtimedwait returned %d errno %d", got, errno);
        CHECK(si.si_code == SI_QUEUE && si.si_value.sival_int == v * 11,
              "instance %d: si_code %d value %d", v, si.si_code, si.si_value.sival_int);
    }
    struct timespec short_wait = {0, 50 * 1000000};
    errno = 0;
    r = sigtimedwait(&want, NULL, &short_wait);
    CHECK(r == -1 && errno == EAGAIN, "sigtimedwait with nothing pending: %d errno %d", r, errno);
    block(rt, SIG_UNBLOCK);
}

/* ---- SA_RESETHAND and SA_NODEFER ---- */
static volatile int depth, max_depth, raised, nested_runs;
static void on_nested(int sig)
{
    nested_runs++;
    depth++;
    if (depth > max_depth)
        max_depth = depth;
    if (!raised) {
        raised = 1;
        raise(sig); /* runs nested at once only with SA_NODEFER */
    }
    depth--;
}

static void test_flags(void)
{
    handle(SIGUSR2, on_usr2, SA_RESETHAND);
    usr2_hits = 0;
    SYS(raise(SIGUSR2));
    CHECK(usr2_hits == 1, "SA_RESETHAND: handler ran %d times", (int)usr2_hits);
    struct sigaction now;
    SYS(sigaction(SIGUSR2, NULL, &now));
    CHECK(now.sa_handler == SIG_DFL, "SA_RESETHAND did not reset the disposition");

    max_depth = depth = raised = nested_runs = 0;
    handle(SIGUSR2, on_nested, SA_NODEFER);
    SYS(raise(SIGUSR2));
    CHECK(max_depth == 2 && nested_runs == 2, "SA_NODEFER: depth %d runs %d, not 2 and 2",
          max_depth, nested_runs);
    max_depth = depth = raised = nested_runs = 0;
    handle(SIGUSR2, on_nested, 0);
    SYS(raise(SIGUSR2));
    /* Blocked while its handler runs: the second one runs after it. */
    CHECK(max_depth == 1 && nested_runs == 2, "without SA_NODEFER: depth %d runs %d", max_depth,
          nested_runs);
    handle(SIGUSR2, SIG_DFL, 0);
}

/* ---- POSIX timers ---- */
static volatile sig_atomic_t timer_hits;
static volatile int timer_value;
static void on_timer(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    timer_value = si->si_value.sival_int;
    if (si->si_code == SI_TIMER)
        timer_hits++;
}

static volatile int thread_timer_hits;
static void on_thread_timer(union sigval v)
{
    if (v.sival_int == 77)
        __atomic_add_fetch(&thread_timer_hits, 1, __ATOMIC_RELAXED);
}

static void test_posix_timers(void)
{
    int sig = SIGRTMIN + 1;
    handle_info(sig, on_timer, 0);
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = sig;
    ev.sigev_value.sival_int = 4242;
    timer_t id;
    SYS(timer_create(CLOCK_MONOTONIC, &ev, &id));
    struct itimerspec its = {{0, 10 * 1000000}, {0, 10 * 1000000}}, cur;
    timer_hits = 0;
    SYS(timer_settime(id, 0, &its, NULL));
    double t0 = now_s();
    while (timer_hits < 5)
        CHECK(now_s() - t0 < 120, "the POSIX timer stopped after %d expiries", (int)timer_hits);
    CHECK(timer_value == 4242, "si_value %d", timer_value);
    SYS(timer_gettime(id, &cur));
    CHECK(cur.it_interval.tv_nsec == 10 * 1000000, "timer_gettime interval %ld",
          (long)cur.it_interval.tv_nsec);
    CHECK(timer_getoverrun(id) >= 0, "timer_getoverrun");
    SYS(timer_delete(id));
    int seen = timer_hits;
    sleep_ms(100);
    CHECK(timer_hits == seen, "a deleted timer kept firing");

    /* SIGEV_THREAD: glibc runs the callback in a helper thread. */
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = on_thread_timer;
    ev.sigev_value.sival_int = 77;
    SYS(timer_create(CLOCK_REALTIME, &ev, &id));
    struct itimerspec once = {{0, 0}, {0, 20 * 1000000}};
    SYS(timer_settime(id, 0, &once, NULL));
    t0 = now_s();
    while (__atomic_load_n(&thread_timer_hits, __ATOMIC_RELAXED) == 0)
        CHECK(now_s() - t0 < 120, "the SIGEV_THREAD callback never ran");
    SYS(timer_delete(id));
}

/* ---- a handler in a thread waiting on a condition variable ---- */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int cond_ready, waiter_in;
static void *cond_waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    waiter_in = 1;
    while (!cond_ready)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void test_cond_wait_takes_a_handler(void)
{
    handle(SIGUSR1, on_usr1, SA_RESTART);
    pthread_t t;
    cond_ready = waiter_in = 0;
    CHECK(pthread_create(&t, NULL, cond_waiter, NULL) == 0, "pthread_create");
    for (;;) {
        pthread_mutex_lock(&mu);
        int in = waiter_in;
        pthread_mutex_unlock(&mu);
        if (in)
            break;
        sleep_ms(1);
    }
    sleep_ms(50);
    usr1_hits = 0;
    usr1_tid = 0;
    pthread_kill(t, SIGUSR1);
    for (int i = 0; i < 10000 && usr1_hits == 0; i++)
        sleep_ms(1);
    CHECK(usr1_hits == 1, "the waiting thread's handler ran %d times", (int)usr1_hits);
    pthread_mutex_lock(&mu);
    cond_ready = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL);
}

int main(void)
{
    test_init("signals");
    test_alarm_interrupts_a_spinning_loop();
    test_siginfo_and_threads();
    test_mask_and_pending();
    test_restart_and_eintr();
    test_waiting();
    test_flags();
    test_posix_timers();
    test_cond_wait_takes_a_handler();
    pass();
}
