/*
 * The shared library the `dynamic` test program links against
 * (libdynamic_lib.so.1). The image puts it in /opt/cairn/lib, which is no
 * system directory: the loader finds it only through the image's
 * generated /etc/ld.so.cache. Thread-local state (initial-exec TLS of a
 * library in the static TLS block) and a constructor check the loader's
 * relocation and initialisation work.
 */
#include <stdint.h>

static int constructed;
__thread uint64_t dyn_lib_tls = 7;

__attribute__((constructor)) static void init(void) { constructed = 1; }

int dyn_lib_constructed(void) { return constructed; }

uint64_t dyn_lib_mix(uint64_t x)
{
    dyn_lib_tls = dyn_lib_tls * 31 + x;
    return dyn_lib_tls;
}
