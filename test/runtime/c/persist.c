/* persist: data written and fsync'd in the first boot is there, intact,
 * in the second boot of the same image. The first boot (no marker file)
 * writes and exits with ST_FIRST_BOOT (42); the second verifies and
 * exits 0. */
#include "cairn_test.h"

#define A_LEN (300 * 1024 + 17)
#define B_LEN (64 * PAGE)

static void first_boot(void)
{
    /* Sequentially written, fsync'd. */
    make_pattern_file("pa.dat", A_LEN, 101, 1);

    /* Written backwards with pwrite, fdatasync'd. */
    static char buf[PAGE];
    int fd = SYS(open("pb.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    for (int i = B_LEN / PAGE - 1; i >= 0; i--) {
        pat_fill(buf, PAGE, (uint64_t)i * PAGE, 102);
        pwrite_all(fd, buf, PAGE, (off_t)i * PAGE);
    }
    SYS(fdatasync(fd));
    SYS(close(fd));

    /* A file in a new directory, and a rename, with the directories synced. */
    SYS(c_mkdir("pdir"));
    make_pattern_file("pdir/pc.dat", 5000, 103, 1);
    fsync_dir("pdir");
    make_pattern_file("ptmp.dat", 8192, 104, 1);
    SYS(c_rename("ptmp.dat", "pr.dat"));
    fsync_dir(".");

    /* Shrunk after its data was synced; the shrink is synced too. */
    make_pattern_file("pt.dat", 4 * PAGE, 105, 1);
    fd = SYS(open("pt.dat", O_RDWR));
    SYS(ftruncate(fd, PAGE + 8));
    SYS(fsync(fd));
    SYS(close(fd));

    /* Overwritten in the middle after a sync, then synced again. */
    make_pattern_file("po.dat", 8 * PAGE, 106, 1);
    fd = SYS(open("po.dat", O_RDWR));
    pat_fill(buf, PAGE, 0, 107);
    pwrite_all(fd, buf, PAGE, 3 * PAGE);
    SYS(fsync(fd));
    SYS(close(fd));

    /* The marker last: if it is there, so is everything above. */
    fd = SYS(open("persist.marker", O_CREAT | O_EXCL | O_WRONLY, 0644));
    write_all(fd, "boot 1 done\n", 12);
    SYS(fsync(fd));
    SYS(close(fd));
    fsync_dir(".");
    first_boot_done();
}

static void second_boot(void)
{
    char m[32] = {0};
    int fd = SYS(open("persist.marker", O_RDONLY));
    CHECK(read(fd, m, sizeof m) == 12 && memcmp(m, "boot 1 done\n", 12) == 0, "marker: %s", m);
    close(fd);
    check_pattern_file("pa.dat", A_LEN, 101);
    check_pattern_file("pb.dat", B_LEN, 102);
    check_pattern_file("pdir/pc.dat", 5000, 103);
    CHECK(!file_exists("ptmp.dat"), "the rename's source is still there");
    check_pattern_file("pr.dat", 8192, 104);

    static char buf[8 * PAGE];
    fd = SYS(open("pt.dat", O_RDONLY));
    CHECK(pread(fd, buf, sizeof buf, 0) == PAGE + 8, "pt.dat size after the synced shrink");
    CHECK(pat_check(buf, PAGE + 8, 0, 105) < 0, "pt.dat data");
    close(fd);

    fd = SYS(open("po.dat", O_RDONLY));
    pread_all(fd, buf, 8 * PAGE, 0);
    for (int p = 0; p < 8; p++)
        CHECK(pat_check(buf + p * PAGE, PAGE, p == 3 ? 0 : (uint64_t)p * PAGE,
                        p == 3 ? 107 : 106) < 0,
              "po.dat page %d", p);
    close(fd);
    printf("persist: second boot found everything the first one synced\n");
    pass();
}

int main(void)
{
    test_init("persist");
    if (file_exists("persist.marker"))
        second_boot();
    first_boot();
}
