/*
 * A dynamically linked program started through glibc's dynamic loader on
 * cairn. Checks, from the program's side, what the kernel's ELF loader and
 * the image builder must get right:
 *
 *  - the auxiliary vector: AT_BASE is the loader's load address (as the
 *    loader reports it), AT_ENTRY the program's entry, AT_PHDR/AT_PHNUM/
 *    AT_PHENT the program's headers, the program loaded as a PIE;
 *  - libdynamic_lib.so.1, found only through /etc/ld.so.cache (it is in
 *    /opt/cairn/lib, no system directory), with its constructor run and its
 *    TLS per thread;
 *  - dlopen() of a library found through LD_LIBRARY_PATH, its symbols and
 *    dynamic TLS; a missing library fails with the loader's message;
 *  - the C library's clocks (the vDSO when AT_SYSINFO_EHDR is there, the
 *    system call otherwise) agree with the system calls and never go back;
 *  - getcpu() names an online CPU.
 */
#include "cairn_test.h"

#include <dlfcn.h>
#include <link.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>

int dyn_lib_constructed(void);
uint64_t dyn_lib_mix(uint64_t x);
extern __thread uint64_t dyn_lib_tls;
extern char _start[];

struct seen {
    int n;
    const ElfW(Phdr) *main_phdr;
    ElfW(Half) main_phnum;
    ElfW(Addr) main_addr;
    ElfW(Addr) loader_addr;
    ElfW(Addr) lib_addr;
    int vdso;
};

static int each(struct dl_phdr_info *i, size_t size, void *arg)
{
    struct seen *s = arg;
    (void)size;
    if (s->n++ == 0) {
        s->main_phdr = i->dlpi_phdr;
        s->main_phnum = i->dlpi_phnum;
        s->main_addr = i->dlpi_addr;
    }
    if (strstr(i->dlpi_name, "ld-linux-x86-64.so.2"))
        s->loader_addr = i->dlpi_addr;
    if (strstr(i->dlpi_name, "libdynamic_lib.so.1"))
        s->lib_addr = i->dlpi_addr;
    if (strstr(i->dlpi_name, "linux-vdso.so.1"))
        s->vdso = 1;
    return 0;
}

static void *thread_main(void *arg)
{
    uint64_t *out = arg;
    /* A new thread starts with the library's initial TLS value. */
    CHECK(dyn_lib_tls == 7, "fresh thread's TLS %lu", (unsigned long)dyn_lib_tls);
    *out = dyn_lib_mix(5);
    return NULL;
}

static int64_t ts_ns(const struct timespec *t) { return t->tv_sec * 1000000000LL + t->tv_nsec; }

static void clocks(void)
{
    static const clockid_t ids[] = {CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME,
                                    CLOCK_MONOTONIC_RAW};
    for (unsigned k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        for (int round = 0; round < 200; round++) {
            struct timespec a, b, c;
            SYS(clock_gettime(ids[k], &a));
            SYS(syscall(SYS_clock_gettime, ids[k], &b));
            SYS(clock_gettime(ids[k], &c));
            CHECK(ts_ns(&a) <= ts_ns(&b) && ts_ns(&b) <= ts_ns(&c),
                  "clock %d: libc %lld, syscall %lld, libc %lld", (int)ids[k],
                  (long long)ts_ns(&a), (long long)ts_ns(&b), (long long)ts_ns(&c));
            CHECK(a.tv_nsec >= 0 && a.tv_nsec < 1000000000L, "tv_nsec %ld", a.tv_nsec);
        }
    }
    /* Coarse clocks: within a tick of the precise ones. */
    struct timespec coarse, fine;
    SYS(clock_gettime(CLOCK_MONOTONIC_COARSE, &coarse));
    SYS(clock_gettime(CLOCK_MONOTONIC, &fine));
    CHECK(ts_ns(&coarse) <= ts_ns(&fine) + 1 && ts_ns(&fine) - ts_ns(&coarse) < 100000000LL,
          "coarse %lld fine %lld", (long long)ts_ns(&coarse), (long long)ts_ns(&fine));
    /* gettimeofday and time agree with CLOCK_REALTIME. */
    struct timeval tv;
    struct timespec r1, r2;
    SYS(clock_gettime(CLOCK_REALTIME, &r1));
    SYS(gettimeofday(&tv, NULL));
    time_t t = time(NULL);
    SYS(clock_gettime(CLOCK_REALTIME, &r2));
    int64_t tv_ns = tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL;
    CHECK(ts_ns(&r1) / 1000 <= tv_ns / 1000 && tv_ns <= ts_ns(&r2), "gettimeofday %lld",
          (long long)tv_ns);
    CHECK(r1.tv_sec <= t && t <= r2.tv_sec, "time() %lld", (long long)t);
    CHECK(t > 1600000000, "wall clock %lld is before 2020", (long long)t);
    /* An invalid clock fails as the system call does. */
    struct timespec x;
    errno = 0;
    CHECK(clock_gettime((clockid_t)12345, &x) == -1 && errno == EINVAL, "bad clock");
    /* A sleep moves the monotonic clock at least that far. */
    SYS(clock_gettime(CLOCK_MONOTONIC, &r1));
    sleep_ms(20);
    SYS(clock_gettime(CLOCK_MONOTONIC, &r2));
    CHECK(ts_ns(&r2) - ts_ns(&r1) >= 20000000LL, "slept %lld ns",
          (long long)(ts_ns(&r2) - ts_ns(&r1)));
}

int main(void)
{
    test_init("dynamic");

    /* The auxiliary vector against what the loader says it did. */
    struct seen s = {0};
    dl_iterate_phdr(each, &s);
    unsigned long base = getauxval(AT_BASE);
    CHECK(base != 0 && base % PAGE == 0, "AT_BASE %#lx", base);
    CHECK(s.loader_addr == base, "loader at %#lx, AT_BASE %#lx", (unsigned long)s.loader_addr,
          base);
    CHECK(getauxval(AT_ENTRY) == (unsigned long)_start, "AT_ENTRY %#lx, _start %p",
          getauxval(AT_ENTRY), (void *)_start);
    CHECK(getauxval(AT_PHDR) == (unsigned long)s.main_phdr, "AT_PHDR %#lx vs %p",
          getauxval(AT_PHDR), (const void *)s.main_phdr);
    CHECK(getauxval(AT_PHNUM) == s.main_phnum && getauxval(AT_PHENT) == sizeof(ElfW(Phdr)),
          "AT_PHNUM %lu AT_PHENT %lu", getauxval(AT_PHNUM), getauxval(AT_PHENT));
    CHECK(s.main_addr != 0, "the program is a PIE and was relocated");
    CHECK(s.lib_addr != 0, "libdynamic_lib.so.1 not among the loaded objects");
    CHECK((getauxval(AT_SYSINFO_EHDR) != 0) == s.vdso, "AT_SYSINFO_EHDR %#lx, vdso listed %d",
          getauxval(AT_SYSINFO_EHDR), s.vdso);

    /* The linked library: constructor, TLS in this and a new thread. */
    CHECK(dyn_lib_constructed(), "library constructor did not run");
    CHECK(dyn_lib_tls == 7, "TLS initial value %lu", (unsigned long)dyn_lib_tls);
    uint64_t mine = dyn_lib_mix(3);
    uint64_t theirs = 0;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, thread_main, &theirs) == 0, "pthread_create");
    CHECK(pthread_join(th, NULL) == 0, "pthread_join");
    CHECK(mine == 7 * 31 + 3 && theirs == 7 * 31 + 5 && dyn_lib_tls == mine,
          "TLS not per thread: %lu %lu", (unsigned long)mine, (unsigned long)theirs);

    /* dlopen through LD_LIBRARY_PATH. */
    const char *llp = getenv("LD_LIBRARY_PATH");
    CHECK(llp && strstr(llp, "/opt/cairn/plugins"), "LD_LIBRARY_PATH %s", llp ? llp : "(unset)");
    void *h = dlopen("libdynamic_plugin.so", RTLD_NOW);
    CHECK(h != NULL, "dlopen: %s", dlerror());
    uint64_t (*call)(uint64_t) = (uint64_t (*)(uint64_t))dlsym(h, "dyn_plugin_call");
    CHECK(call != NULL, "dlsym: %s", dlerror());
    uint64_t before = dyn_lib_tls;
    CHECK(call(2) == before * 31 + 2 + 2, "plugin result");
    CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
    CHECK(dlopen("libcairn-nonexistent.so.9", RTLD_NOW) == NULL, "a missing library loaded");
    const char *why = dlerror();
    CHECK(why && strstr(why, "libcairn-nonexistent.so.9"), "dlerror: %s", why ? why : "(none)");

    clocks();
    unsigned cpu = 99, node = 99;
    SYS(getcpu(&cpu, &node));
    CHECK(cpu < (unsigned)sysconf(_SC_NPROCESSORS_ONLN) && node == 0, "getcpu %u node %u", cpu,
          node);

    printf("dynamic: loader at %#lx, program at %#lx, vdso %s\n", base,
           (unsigned long)s.main_addr, s.vdso ? "yes" : "no");
    pass();
}
