/* volume: a data volume mounted on data/ (by the manifest's mounts tuple on
 * cairn, by the init script on the Linux guest) is a filesystem of its
 * own: its own st_dev and statfs, renames and hard links to the root fail
 * with EXDEV, the mount point cannot be removed or renamed (EBUSY), ".."
 * of the volume's root is the root, and what is written and fsync'd there
 * persists. The first boot (no marker on the volume) writes and exits with
 * ST_FIRST_BOOT (42); the second verifies and exits 0. */
#include "cairn_test.h"

#include <dirent.h>
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

static void first_boot(void)
{
    separate();
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
