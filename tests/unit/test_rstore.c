/* The Redis connection's pure parts (store/rstore_policy.h): --redis-url parsing and its
 * redaction, the reconnect backoff, and the connected/fallback state machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "store/rstore_policy.h"

static rstore_url parse_ok(const char *text) {
  rstore_url u;
  inferd_status st = rstore_url_parse(text, &u);
  if (!status_is_ok(&st)) fail_msg("%s: %s", text, st.msg);
  return u;
}

static void parse_bad(const char *text, const char *needle) {
  rstore_url u;
  inferd_status st = rstore_url_parse(text, &u);
  assert_int_equal(st.code, INFERD_INVALID_ARGUMENT);
  if (strstr(st.msg, needle) == NULL) fail_msg("%s: '%s' lacks '%s'", text, st.msg, needle);
}

static void test_url_forms(void **state) {
  (void)state;
  rstore_url u = parse_ok("redis://127.0.0.1");
  assert_string_equal(u.host, "127.0.0.1");
  assert_int_equal(u.port, 6379);
  assert_int_equal(u.db, 0);
  assert_string_equal(u.password, "");
  u = parse_ok("redis://redis.default.svc:6380/2");
  assert_string_equal(u.host, "redis.default.svc");
  assert_int_equal(u.port, 6380);
  assert_int_equal(u.db, 2);
  u = parse_ok("redis://:s3cret@localhost:7000/");
  assert_string_equal(u.password, "s3cret");
  assert_string_equal(u.user, "");
  assert_int_equal(u.port, 7000);
  u = parse_ok("redis://app:pw@h"); /* Redis 6 ACL user */
  assert_string_equal(u.user, "app");
  assert_string_equal(u.password, "pw");
  u = parse_ok("redis://justapassword@h"); /* the shorthand: a lone credential is the password */
  assert_string_equal(u.password, "justapassword");
  assert_string_equal(u.user, "");
  u = parse_ok("redis://:p%40ss%3Aw@h:1"); /* '@' and ':' in a password, %-encoded */
  assert_string_equal(u.password, "p@ss:w");
  u = parse_ok("redis://:a@b@h:1"); /* an unencoded '@' stays in the password: the last one splits */
  assert_string_equal(u.password, "a@b");
  assert_string_equal(u.host, "h");
  u = parse_ok("redis://[::1]:6390/3");
  assert_string_equal(u.host, "::1");
  assert_int_equal(u.port, 6390);
  assert_int_equal(u.db, 3);
}

static void test_url_errors(void **state) {
  (void)state;
  parse_bad("http://h:6379", "must look like redis://");
  parse_bad("rediss://h", "must look like redis://");
  parse_bad("", "must look like redis://");
  parse_bad("redis://", "the host is missing");
  parse_bad("redis://:pw@:6379", "the host is missing");
  parse_bad("redis://h:0", "the port must be 1 to 65535");
  parse_bad("redis://h:65536", "the port must be 1 to 65535");
  parse_bad("redis://h:-1", "the port must be 1 to 65535");
  parse_bad("redis://h:", "the port must be 1 to 65535");
  parse_bad("redis://h:12ab", "the port must be 1 to 65535");
  parse_bad("redis://h/one", "the database must be a number");
  parse_bad("redis://h/-1", "the database must be a number");
  parse_bad("redis://:p%4@h", "badly %-encoded");
  parse_bad("redis://[::1:6379", "closing ']'");
  /* a message never carries the password */
  rstore_url u;
  inferd_status st = rstore_url_parse("redis://:hunter2@h:99999", &u);
  assert_null(strstr(st.msg, "hunter2"));
}

static void test_url_redacted(void **state) {
  (void)state;
  char buf[512];
  rstore_url u = parse_ok("redis://:hunter2@cache:6380/1");
  rstore_url_redacted(&u, buf, sizeof buf);
  assert_string_equal(buf, "redis://:***@cache:6380/1");
  u = parse_ok("redis://app:hunter2@cache");
  rstore_url_redacted(&u, buf, sizeof buf);
  assert_string_equal(buf, "redis://app:***@cache:6379/0");
  u = parse_ok("redis://cache");
  rstore_url_redacted(&u, buf, sizeof buf);
  assert_string_equal(buf, "redis://cache:6379/0");
  u = parse_ok("redis://[::1]:7");
  rstore_url_redacted(&u, buf, sizeof buf);
  assert_string_equal(buf, "redis://[::1]:7/0");
}

static void test_backoff(void **state) {
  (void)state;
  /* no jitter: 50 % of 100, 200, 400 ... up to 2000 */
  assert_int_equal(rstore_backoff_ms(0, 0), 50);
  assert_int_equal(rstore_backoff_ms(1, 0), 100);
  assert_int_equal(rstore_backoff_ms(4, 0), 800);
  assert_int_equal(rstore_backoff_ms(5, 0), 1000);
  assert_int_equal(rstore_backoff_ms(6, 0), 1000); /* capped at 2000 before jitter */
  assert_int_equal(rstore_backoff_ms(1000, 0), 1000);
  /* the most jitter stays under the uncapped value */
  assert_true(rstore_backoff_ms(0, 0.999) < 100);
  assert_true(rstore_backoff_ms(30, 0.999) < 2000 && rstore_backoff_ms(30, 0.999) >= 1990);
  /* a jitter out of range is none */
  assert_int_equal(rstore_backoff_ms(0, 1.5), 50);
  assert_int_equal(rstore_backoff_ms(0, -1), 50);
}

static void test_fsm(void **state) {
  (void)state;
  rstore_fsm f = {.max_timeouts = 3};
  assert_int_equal(f.link, RSTORE_DOWN); /* down until a PING answers */
  assert_false(rstore_fsm_step(&f, RSTORE_EV_TIMEOUT));
  assert_false(rstore_fsm_step(&f, RSTORE_EV_REPLY));
  assert_int_equal(f.link, RSTORE_DOWN);
  assert_true(rstore_fsm_step(&f, RSTORE_EV_READY));
  assert_int_equal(f.link, RSTORE_UP);
  assert_false(rstore_fsm_step(&f, RSTORE_EV_READY)); /* a keepalive PING: no change */
  /* timeouts must come in a row: a reply in between starts the count again */
  assert_false(rstore_fsm_step(&f, RSTORE_EV_TIMEOUT));
  assert_false(rstore_fsm_step(&f, RSTORE_EV_TIMEOUT));
  assert_false(rstore_fsm_step(&f, RSTORE_EV_REPLY));
  assert_false(rstore_fsm_step(&f, RSTORE_EV_TIMEOUT));
  assert_false(rstore_fsm_step(&f, RSTORE_EV_TIMEOUT));
  assert_int_equal(f.link, RSTORE_UP);
  assert_true(rstore_fsm_step(&f, RSTORE_EV_TIMEOUT)); /* the third in a row */
  assert_int_equal(f.link, RSTORE_DOWN);
  assert_false(rstore_fsm_step(&f, RSTORE_EV_TIMEOUT));
  assert_true(rstore_fsm_step(&f, RSTORE_EV_READY));
  assert_int_equal(f.timeouts_in_row, 0);
  /* a lost connection is down at once, and counts no timeouts over */
  assert_false(rstore_fsm_step(&f, RSTORE_EV_TIMEOUT));
  assert_true(rstore_fsm_step(&f, RSTORE_EV_LOST));
  assert_false(rstore_fsm_step(&f, RSTORE_EV_LOST));
  assert_true(rstore_fsm_step(&f, RSTORE_EV_READY));
  assert_false(rstore_fsm_step(&f, RSTORE_EV_TIMEOUT));
  assert_false(rstore_fsm_step(&f, RSTORE_EV_TIMEOUT));
  assert_int_equal(f.link, RSTORE_UP); /* the count started again at READY */
  /* max_timeouts 0 acts as 1 */
  rstore_fsm g = {0};
  rstore_fsm_step(&g, RSTORE_EV_READY);
  assert_true(rstore_fsm_step(&g, RSTORE_EV_TIMEOUT));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_url_forms),    cmocka_unit_test(test_url_errors), cmocka_unit_test(test_url_redacted),
      cmocka_unit_test(test_backoff),      cmocka_unit_test(test_fsm),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
