/* orphans: files that lose their last name before their pages are written
 * back, as build tools and editors make them all the time (write a
 * temporary, rename it over the target; write, close, delete). Their dirty
 * pages are garbage: sync and syncfs succeed (Linux returns 0), the open
 * but unlinked file works until its last close, and thousands of such
 * cycles (argv[1]) leave the disk's free space where it was. */
#include "cairn_test.h"
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

#define LEN (64 * 1024)

static char buf[LEN];

/* sync(2) with its return value (glibc's sync() returns nothing). */
static void check_sync(const char *when)
{
    errno = 0;
    long r = syscall(SYS_sync);
    CHECK(r == 0, "sync after %s returned %ld", when, r);
    int d = SYS(open(".", O_RDONLY | O_DIRECTORY));
    errno = 0;
    CHECK(syncfs(d) == 0, "syncfs after %s", when);
    SYS(close(d));
}

static void write_file(const char *path, size_t len, uint32_t seed, int do_fsync)
{
    int fd = SYS(open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644));
    pat_fill(buf, len, 0, seed);
    write_all(fd, buf, len);
    if (do_fsync)
        SYS(fsync(fd));
    SYS(close(fd));
}

/* Free 512-byte sectors of the volume; sets *own when the volume is small
 * enough to be this test's alone (its image on cairn; natively the scratch
 * directory is on a shared disk others write to). */
static unsigned long long free_blocks(int *own)
{
    struct statvfs s;
    SYS(statvfs(".", &s));
    *own = (unsigned long long)s.f_blocks * s.f_frsize <= (1ull << 30);
    return (unsigned long long)s.f_bfree * s.f_frsize / 512;
}

int main(int argc, char **argv)
{
    test_init("orphans");
    long cycles = arg_long(argc, argv, 1, 2000);
    check_sync("start");
    int own;
    unsigned long long free0 = free_blocks(&own);

    /* Written, closed, unlinked before writeback. */
    write_file("gone.dat", LEN, 81, 0);
    SYS(c_unlink("gone.dat"));
    check_sync("unlink of a dirty closed file");

    /* A temporary renamed over a dirty target. */
    write_file("target.dat", LEN, 82, 0);
    write_file("target.tmp", LEN / 2, 83, 0);
    SYS(c_rename("target.tmp", "target.dat"));
    check_sync("rename over a dirty file");
    check_pattern_file("target.dat", LEN / 2, 83);
    SYS(c_unlink("target.dat"));

    /* Open and unlinked: still a file until its last close. */
    int fd = SYS(open("open.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    pat_fill(buf, LEN, 0, 84);
    write_all(fd, buf, LEN);
    SYS(c_unlink("open.dat"));
    CHECK(!file_exists("open.dat"), "open.dat still has a name");
    check_sync("unlink of an open dirty file");
    pread_all(fd, buf, LEN, 0);
    CHECK(pat_check(buf, LEN, 0, 84) < 0, "open unlinked file reads back");
    pat_fill(buf, LEN, LEN, 84);
    pwrite_all(fd, buf, LEN, LEN);
    struct stat st;
    SYS(fstat(fd, &st));
    CHECK(st.st_size == 2 * LEN, "size %lld", (long long)st.st_size);
    CHECK(st.st_nlink == 0, "nlink %ld", (long)st.st_nlink);
    uint32_t *map = SYSP(mmap(NULL, 2 * LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    CHECK(map[LEN / 4] == pat32(LEN, 84), "mapped word");
    map[0] = 0xfeedface;
    SYS(fsync(fd));
    pread_all(fd, buf, 4, 0);
    CHECK(*(uint32_t *)buf == 0xfeedface, "store through the mapping seen by read");
    SYS(munmap(map, 2 * LEN));
    SYS(close(fd));
    check_sync("last close of an unlinked file");

    /* Mapped, closed, unlinked, stored to, unmapped. */
    fd = SYS(open("mapped.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
    SYS(ftruncate(fd, LEN));
    map = SYSP(mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    SYS(close(fd));
    SYS(c_unlink("mapped.dat"));
    for (size_t i = 0; i < LEN / 4; i += 1024)
        map[i] = (uint32_t)i;
    check_sync("unlink of a mapped file");
    CHECK(map[1024] == 1024, "mapping of an unlinked file");
    SYS(munmap(map, LEN));
    check_sync("unmap of an unlinked file");

    /* A memfd and a SysV segment with dirty pages, closed / removed. */
    int mfd = SYS(memfd_create("orphans", 0));
    pat_fill(buf, LEN, 0, 85);
    write_all(mfd, buf, LEN);
    SYS(close(mfd));
    int id = SYS(shmget(IPC_PRIVATE, LEN, IPC_CREAT | 0600));
    char *seg = shmat(id, NULL, 0);
    CHECK(seg != (void *)-1, "shmat");
    memset(seg, 0x5a, LEN);
    SYS(shmctl(id, IPC_RMID, NULL));
    SYS(shmdt(seg));
    check_sync("close of a dirty memfd and removal of a dirty segment");

    /* Many cycles: without fsync, with fsync, renamed over. */
    for (long i = 0; i < cycles; i++) {
        write_file("cycle.dat", 16 * 1024, (uint32_t)i, 0);
        SYS(c_unlink("cycle.dat"));
        if (i % 250 == 0)
            check_sync("unlink cycles");
    }
    for (long i = 0; i < cycles / 4; i++) {
        write_file("cycle.dat", 16 * 1024, (uint32_t)i, 1);
        SYS(c_unlink("cycle.dat"));
    }
    for (long i = 0; i < cycles; i++) {
        write_file("cycle.tmp", 8 * 1024, (uint32_t)i, 0);
        SYS(c_rename("cycle.tmp", "cycle.dat"));
        if (i % 250 == 0)
            check_sync("rename cycles");
    }
    check_pattern_file("cycle.dat", 8 * 1024, (uint32_t)(cycles - 1));
    SYS(c_unlink("cycle.dat"));
    for (long i = 0; i < cycles / 4; i++) {
        fd = SYS(open("cycle.dat", O_CREAT | O_TRUNC | O_RDWR, 0644));
        SYS(c_unlink("cycle.dat"));
        write_all(fd, buf, 16 * 1024);
        SYS(close(fd));
    }
    check_sync("cycles");
    /* Twice: space freed by a commit is usable after the next one. */
    check_sync("cycles (again)");
    unsigned long long free1 = free_blocks(&own);
    printf("orphans: free sectors %llu before, %llu after %ld cycles\n", free0, free1, cycles);
    /* The cycles wrote 40 times the test image's size, so the data was
     * freed; what may stay is the metadata log's growth (TFS extends it by
     * 1,024 sectors until it compacts). */
    if (own)
        CHECK(free1 + 4096 >= free0, "free space shrank from %llu to %llu sectors", free0, free1);
    pass();
}
