/* traffic/store_sqlite: what is saved is loaded back after the store is closed and reopened
 * (as after a restart), a policy and its history event land together, the history comes back
 * oldest first and limited to the newest N, and an unopenable path is a clear error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "traffic/store.h"

typedef struct seen {
  char text[8][128];
  int n;
} seen;

static void on_policy(void *user, const char *model, const char *policy) {
  seen *s = user;
  snprintf(s->text[s->n++], sizeof s->text[0], "%s=%s", model, policy);
}

static void on_event(void *user, const char *event) {
  seen *s = user;
  snprintf(s->text[s->n++], sizeof s->text[0], "%s", event);
}

static void test_round_trip_across_reopen(void **state) {
  (void)state;
  char dir[] = "/tmp/traffic-store-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/traffic.db", dir);
  traffic_store *st;
  inferd_status s = traffic_store_sqlite_open(path, &st);
  assert_true(status_is_ok(&s));
  assert_int_equal(st->ops->save(st, "m", "{\"v\":1}", 10, "{\"e\":1}").code, INFERD_OK);
  assert_int_equal(st->ops->save(st, "m", "{\"v\":2}", 20, "{\"e\":2}").code, INFERD_OK);
  assert_int_equal(st->ops->save(st, "n", "{\"w\":1}", 30, "{\"e\":3}").code, INFERD_OK);
  assert_int_equal(st->ops->save(st, "m", "{\"v\":3}", 40, "{\"e\":4}").code, INFERD_OK);
  st->ops->close(st);

  s = traffic_store_sqlite_open(path, &st);
  assert_true(status_is_ok(&s));
  seen p = {0};
  assert_int_equal(st->ops->load(st, on_policy, &p).code, INFERD_OK);
  assert_int_equal(p.n, 2);
  assert_string_equal(p.text[0], "m={\"v\":3}"); /* the latest policy per model */
  assert_string_equal(p.text[1], "n={\"w\":1}");
  seen h = {0};
  assert_int_equal(st->ops->history(st, "m", 100, on_event, &h).code, INFERD_OK);
  assert_int_equal(h.n, 3);
  assert_string_equal(h.text[0], "{\"e\":1}");
  assert_string_equal(h.text[2], "{\"e\":4}");
  seen last2 = {0};
  assert_int_equal(st->ops->history(st, "m", 2, on_event, &last2).code, INFERD_OK);
  assert_int_equal(last2.n, 2);
  assert_string_equal(last2.text[0], "{\"e\":2}"); /* the newest two, oldest first */
  assert_string_equal(last2.text[1], "{\"e\":4}");
  st->ops->close(st);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void test_unopenable_path(void **state) {
  (void)state;
  traffic_store *st;
  inferd_status s = traffic_store_sqlite_open("/nonexistent-dir/for/sure/traffic.db", &st);
  assert_int_equal(s.code, INFERD_INTERNAL);
  assert_non_null(strstr(s.msg, "/nonexistent-dir/for/sure/traffic.db"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_across_reopen),
      cmocka_unit_test(test_unopenable_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
