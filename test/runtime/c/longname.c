/* longname: an image made by another tool (Nanos's mkfs) can hold a name
 * longer than NAME_MAX (255), which no Linux system call can create. A
 * listing shows it, as Linux's getdents64 shows whatever name its
 * filesystem holds, and goes on past it; a lookup of it fails with
 * ENAMETOOLONG, as on Linux (the component is too long for a path).
 * Needs its image: not run natively or on the Linux guest. */
#include "cairn_test.h"
#include <dirent.h>

int main(void)
{
    test_init("longname");
    DIR *d = opendir("/d");
    CHECK(d != NULL, "opendir /d");
    int seen_a = 0, seen_z = 0, seen_long = 0, n = 0;
    errno = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        n++;
        if (strcmp(e->d_name, "a") == 0)
            seen_a = 1;
        else if (strcmp(e->d_name, "z") == 0)
            seen_z = 1;
        else if (len == 300) {
            for (size_t i = 0; i < len; i++)
                CHECK(e->d_name[i] == 'L', "long name byte %zu is %d", i, e->d_name[i]);
            CHECK(e->d_type == DT_REG, "long name's type %d", e->d_type);
            seen_long = 1;
        }
        errno = 0;
    }
    CHECK(errno == 0, "readdir of /d ended with an error");
    closedir(d);
    CHECK(seen_a && seen_z && seen_long && n == 5,
          "listing of /d: a %d, z %d, the 300-byte name %d, %d entries", seen_a, seen_z,
          seen_long, n);

    char path[320] = "/d/";
    memset(path + 3, 'L', 300);
    path[303] = 0;
    struct stat st;
    errno = 0;
    CHECK(stat(path, &st) == -1 && errno == ENAMETOOLONG, "stat of the long name");
    SYS(stat("/d/z", &st));
    printf("longname: the 300-byte name is listed and the listing goes on past it\n");
    pass();
}
