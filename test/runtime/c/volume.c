/* volume: a data volume mounted on data/ (by the manifest's mounts tuple on
 * cairn, by the init script on the Linux guest) is a filesystem of its
 * own: its own st_dev and statfs, renames and hard links to the root fail
 * with EXDEV, the mount point cannot be removed or renamed (EBUSY), ".."
 * of the volume's root is the root, and what is written and fsync'd there
 * persists; advisory locks and /proc/self/fd tell a volume file from a root
 * file with the same inode number, and /proc/mounts lists the volume. The
 * first boot (no marker on the volume) writes and exits with
 * ST_FIRST_BOOT (42); the second verifies and exits 0. */
#include "cairn_test.h"

#include <dirent.h>
#include <limits.h>
#include <sys/statfs.h>
#include <sys/vfs.h>

#define V_LEN (1024 * 1024 + 512)

static void same_file(const struct stat *a, const struct stat *b, const char *what)
{
    CHECK(a->st_dev == b->st_dev && a->st_ino == b->st_ino, "%s: dev %lx ino %lu vs dev %lx ino %lu",
          what, (unsigned long)a->st_dev, (unsigned long)a->st_ino, (unsigned long)b->st_dev,
          (unsigned long)b->st_ino);
}

/* The root and the volume are different filesystems. */
static void separate(void)
{
    struct stat r, d;
    SYS(stat(".", &r));
    SYS(stat("data", &d));
    CHECK(S_ISDIR(d.st_mode), "data is not a directory");
    CHECK(r.st_dev != d.st_dev, "data has the root's st_dev %lx", (unsigned long)r.st_dev);
    struct statfs fr, fd;
    SYS(statfs(".", &fr));
    SYS(statfs("data", &fd));
    CHECK(memcmp(&fr.f_fsid, &fd.f_fsid, sizeof fr.f_fsid) != 0, "same f_fsid");
    CHECK(fr.f_blocks * fr.f_bsize != fd.f_blocks * fd.f_bsize,
          "root and volume report the same size: %llu bytes",
          (unsigned long long)(fr.f_blocks * fr.f_bsize));
    /* The volume is made 24 MiB (mkfs pads it; ext4 keeps some for itself). */
    unsigned long long bytes = (unsigned long long)fd.f_blocks * fd.f_bsize;
    CHECK(bytes > 18ull << 20 && bytes <= 26ull << 20, "volume size %llu bytes", bytes);
}

static int listed(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    if (!d)
        FAIL("opendir %s", dir);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)))
        found |= strcmp(e->d_name, name) == 0;
    closedir(d);
    return found;
}

static void expect_errno(int r, int want, const char *what)
{
    CHECK(r == -1 && errno == want, "%s: returned %d errno %d (%s), expected errno %d", what, r,
          errno, strerror(errno), want);
}

/* What the POSIX layer keys by file it keys by volume and inode: a root file
 * and a volume file with the same st_ino are two files to open-file-
 * description locks and to /proc/self/fd. /proc/mounts lists the volume. */
static void twins(void)
{
    enum { N = 200 };
    static ino_t rino[N], vino[N];
    char rp[64], vp[64];
    int r = -1, v = -1, made = 0;
    for (int i = 0; i < N && r < 0; i++, made++) {
        snprintf(rp, sizeof rp, "twin-r%d", i);
        snprintf(vp, sizeof vp, "data/twin-v%d", i);
        SYS(close(SYS(open(rp, O_CREAT | O_EXCL | O_WRONLY, 0644))));
        SYS(close(SYS(open(vp, O_CREAT | O_EXCL | O_WRONLY, 0644))));
        struct stat a, b;
        SYS(stat(rp, &a));
        SYS(stat(vp, &b));
        rino[i] = a.st_ino;
        vino[i] = b.st_ino;
        for (int j = 0; j <= i && r < 0; j++) {
            if (rino[j] == vino[i])
                r = j, v = i;
            else if (vino[j] == rino[i])
                r = i, v = j;
        }
    }
    CHECK(r >= 0, "no root file and volume file share an inode number in %d of each", N);
    snprintf(rp, sizeof rp, "twin-r%d", r);
    snprintf(vp, sizeof vp, "data/twin-v%d", v);

    /* The volume's file opened first: the root's must not take its name. */
    int vfd = SYS(open(vp, O_RDWR));
    int rfd = SYS(open(rp, O_RDWR));
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    SYS(fcntl(rfd, F_OFD_SETLK, &l));
    CHECK(fcntl(vfd, F_OFD_SETLK, &l) == 0,
          "an OFD lock on %s conflicts with one on %s (same st_ino, other volume): errno %d", vp,
          rp, errno);
    const char *paths[2] = {vp, rp};
    int fds[2] = {vfd, rfd};
    for (int k = 0; k < 2; k++) {
        char link[64], got[PATH_MAX], want[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fds[k]);
        ssize_t n = SYS(readlink(link, got, sizeof got - 1));
        got[n] = 0;
        CHECK(realpath(paths[k], want) != NULL, "realpath %s", paths[k]);
        CHECK(strcmp(got, want) == 0, "%s -> %s, expected %s", link, got, want);
    }
    SYS(close(vfd));
    SYS(close(rfd));
    for (int i = 0; i < made; i++) {
        snprintf(rp, sizeof rp, "twin-r%d", i);
        snprintf(vp, sizeof vp, "data/twin-v%d", i);
        SYS(c_unlink(rp));
        SYS(c_unlink(vp));
    }

    char want[PATH_MAX], line[512];
    CHECK(realpath("data", want) != NULL, "realpath data");
    FILE *f = fopen("/proc/mounts", "r");
    if (!f)
        FAIL("fopen /proc/mounts");
    int listed = 0;
    while (fgets(line, sizeof line, f)) {
        char dev[128], dir[256];
        if (sscanf(line, "%127s %255s", dev, dir) == 2 && strcmp(dir, want) == 0)
            listed = 1;
    }
    fclose(f);
    CHECK(listed, "/proc/mounts does not list %s", want);
}

static void first_boot(void)
{
    separate();
    twins();
    struct statfs before, after;
    SYS(statfs("data", &before));

    make_pattern_file("data/v.dat", V_LEN, 201, 1);
    SYS(statfs("data", &after));
    CHECK((before.f_bfree - after.f_bfree) * after.f_bsize >= V_LEN,
          "1 MiB written to the volume used %llu bytes of it",
          (unsigned long long)((before.f_bfree - after.f_bfree) * after.f_bsize));

    SYS(c_mkdir("data/dir"));
    make_pattern_file("data/dir/b.dat", 5000, 202, 1);
    SYS(c_rename("data/dir/b.dat", "data/dir/c.dat"));
    fsync_dir("data/dir");

    /* Across volumes: EXDEV, both ways, and nothing moved. */
    make_pattern_file("rootfile.dat", 4096, 203, 1);
    expect_errno(c_rename("data/v.dat", "moved.dat"), EXDEV, "rename volume -> root");
    expect_errno(c_rename("rootfile.dat", "data/rootfile.dat"), EXDEV, "rename root -> volume");
    expect_errno(link("data/v.dat", "lnk.dat"), EXDEV, "link volume -> root");
    expect_errno(link("rootfile.dat", "data/lnk.dat"), EXDEV, "link root -> volume");
    CHECK(file_exists("data/v.dat") && file_exists("rootfile.dat"), "a failed rename moved a file");
    CHECK(!file_exists("moved.dat") && !file_exists("data/rootfile.dat"), "half a rename");

    /* The mount point is busy. */
    expect_errno(c_rmdir("data"), EBUSY, "rmdir of the mount point");
    expect_errno(c_rename("data", "elsewhere"), EBUSY, "rename of the mount point");

    /* ".." leaves the volume; a directory of it lists its own entries. */
    struct stat r, d, s;
    SYS(stat(".", &r));
    SYS(stat("data", &d));
    SYS(stat("data/..", &s));
    same_file(&s, &r, "data/..");
    SYS(chdir("data/dir"));
    SYS(stat("..", &s));
    same_file(&s, &d, "data/dir/..");
    SYS(chdir("../.."));
    SYS(stat(".", &s));
    same_file(&s, &r, "back at the root");
    CHECK(listed("data", "v.dat") && listed("data", "dir"), "data/ lists its files");
    CHECK(!listed(".", "v.dat"), "the root lists the volume's file");

    /* The marker last, on the volume. */
    int fd = SYS(open("data/volume.marker", O_CREAT | O_EXCL | O_WRONLY, 0644));
    write_all(fd, "boot 1 done\n", 12);
    SYS(fsync(fd));
    SYS(close(fd));
    fsync_dir("data");
    fsync_dir(".");
    first_boot_done();
}

static void second_boot(void)
{
    separate();
    char m[32] = {0};
    int fd = SYS(open("data/volume.marker", O_RDONLY));
    CHECK(read(fd, m, sizeof m) == 12 && memcmp(m, "boot 1 done\n", 12) == 0, "marker: %s", m);
    close(fd);
    check_pattern_file("data/v.dat", V_LEN, 201);
    check_pattern_file("data/dir/c.dat", 5000, 202);
    CHECK(!file_exists("data/dir/b.dat"), "the rename's source is back");
    check_pattern_file("rootfile.dat", 4096, 203);
    CHECK(!file_exists("moved.dat") && !file_exists("lnk.dat"), "a refused rename/link happened");
    pass();
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_init("volume");
    if (file_exists("data/volume.marker"))
        second_boot();
    first_boot();
}
