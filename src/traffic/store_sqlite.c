/* traffic/store_sqlite: the local traffic store, SQLite in WAL mode with synchronous=FULL, so
 * a policy change the API acknowledged survives kill -9 (and a power cut) of a single node. */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "traffic/store.h"

typedef struct sqlite_store {
  traffic_store base;
  sqlite3 *db;
} sqlite_store;

static inferd_status db_error(sqlite3 *db, const char *what) {
  return status_make(INFERD_INTERNAL, "traffic state store: %s failed: %s", what, sqlite3_errmsg(db));
}

static inferd_status ss_load(traffic_store *base, void (*fn)(void *, const char *, const char *), void *user) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(s->db, "SELECT model, policy FROM policies ORDER BY model", -1, &q, NULL) != SQLITE_OK)
    return db_error(s->db, "reading the policies");
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW)
    fn(user, (const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1));
  sqlite3_finalize(q);
  return rc == SQLITE_DONE ? status_ok() : db_error(s->db, "reading the policies");
}

static inferd_status ss_save(traffic_store *base, const char *model, const char *policy, int64_t at_ms,
                             const char *event) {
  sqlite_store *s = (sqlite_store *)base;
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return db_error(s->db, "a transaction");
  sqlite3_stmt *q = NULL;
  bool ok = sqlite3_prepare_v2(s->db,
                               "INSERT INTO policies(model, policy, updated_ms) VALUES(?1, ?2, ?3) "
                               "ON CONFLICT(model) DO UPDATE SET policy = ?2, updated_ms = ?3",
                               -1, &q, NULL) == SQLITE_OK;
  ok = ok && sqlite3_bind_text(q, 1, model, -1, SQLITE_STATIC) == SQLITE_OK &&
       sqlite3_bind_text(q, 2, policy, -1, SQLITE_STATIC) == SQLITE_OK &&
       sqlite3_bind_int64(q, 3, at_ms) == SQLITE_OK && sqlite3_step(q) == SQLITE_DONE;
  sqlite3_finalize(q);
  q = NULL;
  if (ok && event) {
    ok = sqlite3_prepare_v2(s->db, "INSERT INTO history(model, at_ms, event) VALUES(?1, ?2, ?3)", -1, &q, NULL) ==
             SQLITE_OK &&
         sqlite3_bind_text(q, 1, model, -1, SQLITE_STATIC) == SQLITE_OK && sqlite3_bind_int64(q, 2, at_ms) == SQLITE_OK &&
         sqlite3_bind_text(q, 3, event, -1, SQLITE_STATIC) == SQLITE_OK && sqlite3_step(q) == SQLITE_DONE;
    sqlite3_finalize(q);
  }
  if (!ok) {
    inferd_status st = db_error(s->db, "saving the policy");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
  }
  if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    inferd_status st = db_error(s->db, "committing the policy");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
  }
  return status_ok();
}

static inferd_status ss_history(traffic_store *base, const char *model, int limit, void (*fn)(void *, const char *),
                                void *user) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(s->db,
                         "SELECT event FROM (SELECT id, event FROM history WHERE model = ?1 ORDER BY id DESC LIMIT ?2) "
                         "ORDER BY id",
                         -1, &q, NULL) != SQLITE_OK)
    return db_error(s->db, "reading the history");
  sqlite3_bind_text(q, 1, model, -1, SQLITE_STATIC);
  sqlite3_bind_int(q, 2, limit);
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) fn(user, (const char *)sqlite3_column_text(q, 0));
  sqlite3_finalize(q);
  return rc == SQLITE_DONE ? status_ok() : db_error(s->db, "reading the history");
}

static void ss_close(traffic_store *base) {
  sqlite_store *s = (sqlite_store *)base;
  sqlite3_close(s->db);
  free(s);
}

static const traffic_store_ops sqlite_ops = {ss_load, ss_save, ss_history, ss_close, NULL};

inferd_status traffic_store_sqlite_open(const char *path, traffic_store **out) {
  sqlite_store *s = calloc(1, sizeof *s);
  if (s == NULL) return status_make(INFERD_INTERNAL, "out of memory");
  s->base.ops = &sqlite_ops;
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
      SQLITE_OK) {
    inferd_status st = status_make(INFERD_INTERNAL, "cannot open the traffic state store %s: %s", path,
                                   s->db ? sqlite3_errmsg(s->db) : "out of memory");
    sqlite3_close(s->db);
    free(s);
    return st;
  }
  sqlite3_busy_timeout(s->db, 5000);
  static const char *const setup =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS policies(model TEXT PRIMARY KEY, policy TEXT NOT NULL, updated_ms INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS history(id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, "
      "at_ms INTEGER NOT NULL, event TEXT NOT NULL);"
      "CREATE INDEX IF NOT EXISTS history_model ON history(model, id);";
  if (sqlite3_exec(s->db, setup, NULL, NULL, NULL) != SQLITE_OK) {
    inferd_status st = status_make(INFERD_INTERNAL, "cannot set up the traffic state store %s: %s", path, sqlite3_errmsg(s->db));
    sqlite3_close(s->db);
    free(s);
    return st;
  }
  *out = &s->base;
  return status_ok();
}
