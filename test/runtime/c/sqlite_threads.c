/*
 * SQLite (Debian's amalgamation, linked in by xtask) from two threads, each
 * with its own connection to one database, in rollback-journal (DELETE)
 * mode and then in WAL mode: each thread inserts its rows in small
 * BEGIN IMMEDIATE transactions while the other does the same, and in WAL
 * mode a reader connection checks that every snapshot it sees is
 * consistent. Afterwards the counts and sums per thread and
 * PRAGMA integrity_check must be right. SQLite serialises the writers with
 * its unix VFS's POSIX locks on the database (and the -shm file in WAL
 * mode), shared by both connections of the process.
 */
#include "cairn_test.h"
#include "sqlite3.h"

#define ROWS 400
#define PER_TX 8

static const char *DB = "threads.db";

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        FAIL("%s: %s", sql, err ? err : "?");
}

static sqlite3 *open_db(void)
{
    sqlite3 *db;
    if (sqlite3_open_v2(DB, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        FAIL("open %s", DB);
    sqlite3_busy_timeout(db, 60000);
    return db;
}

static long long query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        FAIL("prepare %s: %s", sql, sqlite3_errmsg(db));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_BUSY)
        sleep_ms(1);
    if (rc != SQLITE_ROW)
        FAIL("step %s: %s", sql, sqlite3_errmsg(db));
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static struct worker_progress *workers[2];

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    sqlite3 *db = open_db();
    sqlite3_stmt *ins;
    if (sqlite3_prepare_v2(db, "INSERT INTO t(who, n, pad) VALUES(?1, ?2, randomblob(200))", -1,
                           &ins, NULL) != SQLITE_OK)
        FAIL("prepare insert: %s", sqlite3_errmsg(db));
    for (int i = 0; i < ROWS; i += PER_TX) {
        exec(db, "BEGIN IMMEDIATE");
        for (int k = i; k < i + PER_TX; k++) {
            sqlite3_bind_int(ins, 1, id);
            sqlite3_bind_int(ins, 2, k);
            if (sqlite3_step(ins) != SQLITE_DONE)
                FAIL("insert: %s", sqlite3_errmsg(db));
            sqlite3_reset(ins);
        }
        exec(db, "COMMIT");
        tick(workers[id], "transaction");
    }
    sqlite3_finalize(ins);
    sqlite3_close(db);
    workers[id]->done = 1;
    return NULL;
}

static volatile int writers_done;

/* WAL: snapshots are consistent (whole transactions only). */
static void *reader(void *arg)
{
    (void)arg;
    sqlite3 *db = open_db();
    long long reads = 0;
    while (!writers_done) {
        long long c = query_int(db, "SELECT count(*) FROM t");
        if (c % PER_TX != 0)
            FAIL("reader saw %lld rows: a partial transaction", c);
        reads++;
        sleep_ms(2);
    }
    sqlite3_close(db);
    CHECK(reads > 0, "the reader never read");
    return NULL;
}

static void run(const char *mode, int with_reader)
{
    c_unlink(DB);
    sqlite3 *db = open_db();
    char sql[128];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", mode);
    exec(db, sql);
    exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, who INTEGER, n INTEGER, pad BLOB)");
    pthread_t w[2], r;
    writers_done = 0;
    for (int i = 0; i < 2; i++)
        pthread_create(&w[i], NULL, writer, (void *)(intptr_t)i);
    if (with_reader)
        pthread_create(&r, NULL, reader, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(w[i], NULL);
    writers_done = 1;
    if (with_reader)
        pthread_join(r, NULL);
    long long n = (long long)ROWS * (ROWS - 1) / 2;
    CHECK(query_int(db, "SELECT count(*) FROM t") == 2 * ROWS, "%s: row count", mode);
    for (int i = 0; i < 2; i++) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM t WHERE who=%d", i);
        CHECK(query_int(db, sql) == ROWS, "%s: rows of writer %d", mode, i);
        snprintf(sql, sizeof sql, "SELECT sum(n) FROM t WHERE who=%d", i);
        CHECK(query_int(db, sql) == n, "%s: sum of writer %d", mode, i);
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        FAIL("integrity_check: %s", sqlite3_errmsg(db));
    const char *ok = (const char *)sqlite3_column_text(st, 0);
    CHECK(ok && strcmp(ok, "ok") == 0, "%s: integrity_check says %s", mode, ok ? ok : "NULL");
    sqlite3_finalize(st);
    sqlite3_close(db);
    printf("sqlite_threads: %s mode: %d rows from 2 threads, integrity ok\n", mode, 2 * ROWS);
}

int main(void)
{
    test_init("sqlite_threads");
    CHECK(sqlite3_threadsafe() != 0, "SQLite built without threads");
    workers[0] = worker("writer0");
    workers[1] = worker("writer1");
    watchdog_start(60, 280);
    run("DELETE", 0);
    workers[0]->done = workers[1]->done = 0;
    run("WAL", 1);
    pass();
}
