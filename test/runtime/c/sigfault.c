/* sigfault (issue 12 item 2): synchronous signals and what handlers do with
 * them, the way garbage collectors, JITs and language runtimes use them.
 *
 * - SIGSEGV on a PROT_NONE page: the handler sees si_addr and SEGV_ACCERR,
 *   mprotects the page and returns; the access is retried and succeeds;
 * - SIGSEGV on an unmapped address (SEGV_MAPERR), SIGBUS past the end of a
 *   mapped file (BUS_ADRERR), SIGFPE on integer division by zero
 *   (FPE_INTDIV): the handler siglongjmps out;
 * - SIGILL on ud2: the handler edits the saved context (skips the
 *   instruction, sets a register) and returns into the edited context;
 * - stack overflow in a thread, caught on an alternate stack (sigaltstack,
 *   SA_ONSTACK): the handler runs on it;
 * - x87/SSE state: a periodic signal whose handler clobbers every SSE
 *   register and the rounding mode does not change a floating-point loop's
 *   result, and the handler starts with the default rounding mode.
 * The program passes natively on Linux too.
 */
#define _GNU_SOURCE
#include "cairn_test.h"
#include <fenv.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/time.h>
#include <ucontext.h>

static sigjmp_buf jump;
static volatile int got_sig, got_code;
static void *volatile got_addr;
static volatile int handler_runs;

static void handle_info(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | flags;
    SYS(sigaction(sig, &sa, NULL));
}

static void record(int sig, siginfo_t *si)
{
    got_sig = sig;
    got_code = si->si_code;
    got_addr = si->si_addr;
    handler_runs++;
}

static void on_fault_jump(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    record(sig, si);
    siglongjmp(jump, 1);
}

/* ---- retry after fixing the mapping ---- */
static char *guarded;
static void on_segv_fix(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    record(sig, si);
    /* Make the page accessible: returning retries the store. */
    if (mprotect(guarded, PAGE, PROT_READ | PROT_WRITE) != 0)
        _exit(ST_FAIL);
}

static void test_segv_fix_and_retry(void)
{
    guarded = SYSP(mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    handle_info(SIGSEGV, on_segv_fix, 0);
    handler_runs = 0;
    volatile char *p = guarded + 123;
    *p = 42;
    CHECK(handler_runs == 1, "the handler ran %d times", handler_runs);
    CHECK(got_sig == SIGSEGV && got_code == SEGV_ACCERR, "sig %d code %d", got_sig, got_code);
    CHECK(got_addr == guarded + 123, "si_addr %p, not %p", (void *)got_addr, (void *)(guarded + 123));
    CHECK(guarded[123] == 42, "the retried store did not land");
    SYS(munmap(guarded, PAGE));
}

/* ---- faults escaped with siglongjmp ---- */
static void test_faults_with_longjmp(void)
{
    handle_info(SIGSEGV, on_fault_jump, 0);
    handle_info(SIGBUS, on_fault_jump, 0);
    handle_info(SIGFPE, on_fault_jump, 0);

    /* An unmapped page. */
    char *hole = SYSP(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    SYS(munmap(hole, PAGE));
    handler_runs = 0;
    if (sigsetjmp(jump, 1) == 0) {
        (void)*(volatile char *)(hole + 8);
        FAIL("read of an unmapped page did not fault");
    }
    CHECK(got_sig == SIGSEGV && got_code == SEGV_MAPERR && got_addr == hole + 8,
          "unmapped: sig %d code %d addr %p", got_sig, got_code, (void *)got_addr);

    /* Past the end of a mapped file. */
    int fd = SYS(open("short.dat", O_CREAT | O_RDWR | O_TRUNC, 0644));
    write_all(fd, "tiny", 4);
    char *m = SYSP(mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, fd, 0));
    CHECK(m[0] == 't', "mapped file data");
    if (sigsetjmp(jump, 1) == 0) {
        (void)*(volatile char *)(m + PAGE + 5);
        FAIL("read past the end of a mapped file did not fault");
    }
    CHECK(got_sig == SIGBUS && got_code == BUS_ADRERR && got_addr == m + PAGE + 5,
          "past EOF: sig %d code %d addr %p", got_sig, got_code, (void *)got_addr);
    SYS(munmap(m, 2 * PAGE));
    SYS(close(fd));
    SYS(unlinkat(AT_FDCWD, "short.dat", 0));

    /* Integer division by zero. */
    volatile int zero = 0, x = 7;
    if (sigsetjmp(jump, 1) == 0) {
        x = x / zero;
        FAIL("division by zero did not fault");
    }
    CHECK(got_sig == SIGFPE && got_code == FPE_INTDIV, "divide: sig %d code %d", got_sig, got_code);

    /* The mask saved by sigsetjmp(…, 1) came back: SIGSEGV is not blocked. */
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    CHECK(!sigismember(&cur, SIGSEGV) && !sigismember(&cur, SIGFPE),
          "siglongjmp left the fault signals blocked");
    CHECK(handler_runs == 3, "%d handler runs, not 3", handler_runs);
}

/* ---- editing the saved context ---- */
static void on_ill_skip(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    record(sig, si);
    uc->uc_mcontext.gregs[REG_RIP] += 2; /* ud2 */
    uc->uc_mcontext.gregs[REG_RAX] = 0x1234;
}

static void test_edit_context(void)
{
    handle_info(SIGILL, on_ill_skip, 0);
    handler_runs = 0;
    long rax;
    __asm__ volatile("xor %%eax, %%eax\n\tud2\n\t" : "=a"(rax) : : "memory");
    CHECK(handler_runs == 1 && got_sig == SIGILL && got_code == ILL_ILLOPN,
          "ud2: runs %d sig %d code %d", handler_runs, got_sig, got_code);
    CHECK(rax == 0x1234, "the edited RAX did not come back (%#lx)", rax);
}

/* ---- stack overflow on an alternate stack ---- */
static char *alt_base;
static size_t alt_size = 64 * 1024;
static volatile int on_alt;
static void on_overflow(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    char here;
    on_alt = &here >= alt_base && &here < alt_base + alt_size;
    record(sig, si);
    siglongjmp(jump, 1);
}

static volatile int keep_going = 1;
static int recurse(int n)
{
    volatile char pad[512];
    pad[0] = (char)n;
    return keep_going ? recurse(n + 1) + pad[0] : 0;
}

static void *overflow_thread(void *arg)
{
    (void)arg;
    stack_t ss = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0};
    SYS(sigaltstack(&ss, NULL));
    handle_info(SIGSEGV, on_overflow, SA_ONSTACK);
    if (sigsetjmp(jump, 1) == 0) {
        recurse(0);
        FAIL("unbounded recursion did not fault");
    }
    stack_t now;
    SYS(sigaltstack(NULL, &now));
    CHECK(!(now.ss_flags & SS_ONSTACK), "still on the alternate stack after siglongjmp");
    return NULL;
}

static void test_altstack_overflow(void)
{
    alt_base = SYSP(mmap(NULL, alt_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    pthread_t t;
    on_alt = 0;
    CHECK(pthread_create(&t, &a, overflow_thread, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
    CHECK(got_sig == SIGSEGV, "the overflow raised %d", got_sig);
    CHECK(on_alt, "the overflow handler did not run on the alternate stack");
    SYS(munmap(alt_base, alt_size));
}

/* ---- x87/SSE state across handlers ---- */
static volatile sig_atomic_t fp_ticks;
static volatile int handler_round;
static void on_tick_clobber(int sig)
{
    (void)sig;
    handler_round = fegetround();
    fesetround(FE_UPWARD);
    /* Use many SSE registers. */
    volatile double seed = 1.25;
    double a = seed, b = seed * 2, c = seed * 3, d = seed * 4, e = seed * 5, f = seed * 6,
           g = seed * 7, h = seed * 8;
    for (int i = 0; i < 200; i++) {
        a = a * 1.1 + b;
        b = b * 0.9 + c;
        c = c * 1.01 + d;
        d = d * 0.99 + e;
        e = e * 1.001 + f;
        f = f * 0.999 + g;
        g = g * 1.0001 + h;
        h = h * 0.9999 + a;
    }
    volatile double sink = a + b + c + d + e + f + g + h;
    (void)sink;
    fp_ticks++;
}

static __attribute__((noinline)) double fp_loop(volatile long n)
{
    double x = 0.1, y = 0.2, z = 0.3;
    for (long i = 0; i < n; i++) {
        x = x * 0.9999999 + y * 1e-7;
        y = y * 0.9999998 + z * 1e-7;
        z = z * 0.9999997 + 0.001;
    }
    return x + y + z;
}

static void test_fpu_state(void)
{
    long n = 4000000;
    double quiet = fp_loop(n);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tick_clobber;
    SYS(sigaction(SIGALRM, &sa, NULL));
    fesetround(FE_DOWNWARD);
    double ref_down = fp_loop(n / 4);
    fp_ticks = 0;
    struct itimerval it = {{0, 2000}, {0, 2000}}, off = {{0, 0}, {0, 0}};
    SYS(setitimer(ITIMER_REAL, &it, NULL));
    double down = fp_loop(n / 4);
    fesetround(FE_TONEAREST);
    fp_ticks = 0;
    double t0 = now_s();
    int reps = 0;
    while (fp_ticks < 20) {
        double noisy = fp_loop(n);
        CHECK(noisy == quiet, "a handler changed a floating-point result: %.17g vs %.17g", noisy,
              quiet);
        reps++;
        CHECK(now_s() - t0 < 120, "only %d timer signals arrived in 120 s", (int)fp_ticks);
    }
    SYS(setitimer(ITIMER_REAL, &off, NULL));
    CHECK(reps > 0, "no loop ran");
    CHECK(down == ref_down, "a handler changed the rounding mode of the interrupted code");
    CHECK(fegetround() == FE_TONEAREST, "rounding mode after the handlers");
    CHECK(handler_round == FE_TONEAREST, "a handler started with rounding mode %d", handler_round);
}

int main(void)
{
    test_init("sigfault");
    test_segv_fix_and_retry();
    test_faults_with_longjmp();
    test_edit_context();
    test_altstack_overflow();
    test_fpu_state();
    pass();
}
