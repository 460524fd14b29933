/* hello: the smallest workload. Checks argv and the environment the
 * manifest passes, prints one line, exits 0. */
#include "cairn_test.h"

int main(int argc, char **argv)
{
    test_init("hello");
    CHECK(argc >= 2, "argc %d", argc);
    CHECK(strcmp(argv[1], "hello-arg") == 0, "argv[1] %s", argv[1]);
    const char *v = getenv("CAIRN_TEST");
    CHECK(v && strcmp(v, "hello") == 0, "CAIRN_TEST=%s", v ? v : "(unset)");
    CHECK(getpid() > 0, "getpid");
    printf("hello from a static Linux program (%s, argv[1]=%s)\n", argv[0], argv[1]);
    pass();
}
