/* dirs: mkdir, rename (file, over an existing file, across directories,
 * of a directory), unlink, rmdir, getdents over many entries, chdir and
 * getcwd, and the errors of the common misuses. */
#include "cairn_test.h"
#include <dirent.h>

#define MANY 150

/* Names in `dir` other than "." and "..", one bit per "f<n>" entry. */
static int list(const char *dir, unsigned char *seen, int max, int *others)
{
    DIR *d = opendir(dir);
    if (!d)
        FAIL("opendir %s", dir);
    int n = 0;
    struct dirent *de;
    *others = 0;
    memset(seen, 0, (size_t)max);
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        int k;
        char extra;
        if (sscanf(de->d_name, "f%d%c", &k, &extra) == 1 && k >= 0 && k < max) {
            CHECK(!seen[k], "%s listed twice", de->d_name);
            seen[k] = 1;
        } else {
            (*others)++;
        }
        n++;
    }
    closedir(d);
    return n;
}

int main(void)
{
    test_init("dirs");
    struct stat st;
    unsigned char seen[MANY];
    int others;
    char path[64];

    SYS(c_mkdir("d1"));
    SYS(c_mkdir("d1/d2"));
    errno = 0;
    CHECK(c_mkdir("d1") == -1 && errno == EEXIST, "mkdir of an existing name");
    SYS(stat("d1/d2", &st));
    CHECK(S_ISDIR(st.st_mode), "d1/d2 is not a directory");

    for (int i = 0; i < MANY; i++) {
        snprintf(path, sizeof path, "d1/f%d", i);
        make_pattern_file(path, (size_t)(i % 7) * 100, (uint32_t)i, 0);
    }
    CHECK(list("d1", seen, MANY, &others) == MANY + 1 && others == 1, "listing of d1");
    for (int i = 0; i < MANY; i++)
        CHECK(seen[i], "f%d missing from the listing", i);

    /* Unlink every third; they vanish from the listing and from lookup. */
    for (int i = 0; i < MANY; i += 3) {
        snprintf(path, sizeof path, "d1/f%d", i);
        SYS(c_unlink(path));
        errno = 0;
        CHECK(stat(path, &st) == -1 && errno == ENOENT, "%s still there", path);
    }
    list("d1", seen, MANY, &others);
    for (int i = 0; i < MANY; i++)
        CHECK(seen[i] == (i % 3 != 0), "f%d listing after unlink", i);
    errno = 0;
    CHECK(c_unlink("d1/f0") == -1 && errno == ENOENT, "unlink of a missing file");

    /* Renames: plain, over an existing file, across directories. */
    SYS(c_rename("d1/f1", "d1/g1"));
    CHECK(!file_exists("d1/f1") && file_exists("d1/g1"), "plain rename");
    check_pattern_file("d1/g1", 100, 1);
    SYS(c_rename("d1/f2", "d1/g1"));
    check_pattern_file("d1/g1", 200, 2);
    CHECK(!file_exists("d1/f2"), "rename over a file kept the source");
    SYS(c_rename("d1/g1", "d1/d2/moved"));
    check_pattern_file("d1/d2/moved", 200, 2);

    /* Renaming a directory moves its contents. */
    SYS(c_rename("d1/d2", "d3"));
    check_pattern_file("d3/moved", 200, 2);
    CHECK(!file_exists("d1/d2"), "renamed directory still at its old name");

    /* rmdir: not on a non-empty directory, yes on an empty one. */
    errno = 0;
    CHECK(c_rmdir("d3") == -1 && errno == ENOTEMPTY, "rmdir of a non-empty directory");
    SYS(c_unlink("d3/moved"));
    SYS(c_rmdir("d3"));
    CHECK(!file_exists("d3"), "rmdir");
    errno = 0;
    CHECK(c_unlink("d1") == -1 && (errno == EISDIR || errno == EPERM), "unlink of a directory");

    /* Type errors. */
    errno = 0;
    CHECK(open("d1/f4", O_RDONLY | O_DIRECTORY) == -1 && errno == ENOTDIR, "O_DIRECTORY on a file");
    errno = 0;
    CHECK(open("d1/f4/x", O_RDONLY) == -1 && errno == ENOTDIR, "a file used as a directory");
    errno = 0;
    CHECK(open("nodir/x", O_CREAT | O_RDWR, 0644) == -1 && errno == ENOENT, "create in a missing dir");

    /* chdir and getcwd; relative paths follow the cwd. */
    char cwd[4096], cwd2[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
    SYS(chdir("d1"));
    CHECK(getcwd(cwd2, sizeof cwd2) != NULL, "getcwd in d1");
    size_t l = strlen(cwd2);
    CHECK(l >= 3 && !strcmp(cwd2 + l - 3, "/d1"), "getcwd in d1 gave %s", cwd2);
    check_pattern_file("f4", 400, 4);
    SYS(chdir(".."));
    CHECK(getcwd(cwd2, sizeof cwd2) && !strcmp(cwd, cwd2), "getcwd after chdir ..: %s", cwd2);

    /* An unlinked file stays readable through an open descriptor. */
    int fd = SYS(open("d1/f5", O_RDONLY));
    SYS(c_unlink("d1/f5"));
    char b[500];
    CHECK(pread(fd, b, sizeof b, 0) == 500, "read of an open unlinked file");
    CHECK(pat_check(b, 500, 0, 5) < 0, "data of an open unlinked file");
    close(fd);
    pass();
}
