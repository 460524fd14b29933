/*
 * A library the `dynamic` test program loads with dlopen(): the image puts
 * it in /opt/cairn/plugins, which the program's environment names in
 * LD_LIBRARY_PATH. It uses the program's library (a symbol resolved
 * against an object already loaded) and has dynamic TLS of its own.
 */
#include <stdint.h>

uint64_t dyn_lib_mix(uint64_t x);
static __thread uint64_t plugin_tls[64];

uint64_t dyn_plugin_call(uint64_t x)
{
    plugin_tls[x % 64] += x;
    return dyn_lib_mix(x) + plugin_tls[x % 64];
}
