/* Routing: which handler a method and path reach, captures, 404 versus 405. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "frontends/http/router.h"
#include "frontends/http/routes.h"

static void h_a(void *c, const route_params *p) { (void)c; (void)p; }
static void h_b(void *c, const route_params *p) { (void)c; (void)p; }
static void h_c(void *c, const route_params *p) { (void)c; (void)p; }

static const route table[] = {
    {ROUTE_GET, "/v2/health/live", h_a, NULL, NULL},
    {ROUTE_GET, "/v2/models/{model}", h_b, NULL, NULL},
    {ROUTE_GET, "/v2/models/{model}/versions/{version}", h_b, NULL, NULL},
    {ROUTE_POST, "/v2/models/{model}/versions/{version}/infer", h_c, NULL, NULL},
    {ROUTE_POST, "/v2/models/{model}/infer", h_c, NULL, NULL},
};
#define N (sizeof table / sizeof table[0])

static route_result match(const char *path, unsigned method, const route **r, route_params *p, unsigned *allowed) {
  memset(p, 0, sizeof *p);
  return router_match(table, N, path, method, r, p, allowed);
}

static void test_exact_and_captures(void **state) {
  (void)state;
  const route *r;
  route_params p;
  unsigned allowed = 0;
  assert_int_equal(match("/v2/health/live", ROUTE_GET, &r, &p, &allowed), ROUTE_MATCHED);
  assert_ptr_equal(r->handler, h_a);
  assert_int_equal(match("/v2/models/churn/versions/12/infer", ROUTE_POST, &r, &p, &allowed), ROUTE_MATCHED);
  assert_ptr_equal(r->handler, h_c);
  assert_string_equal(p.model, "churn");
  assert_string_equal(p.version, "12");
  assert_int_equal(match("/v2/models/churn", ROUTE_GET, &r, &p, &allowed), ROUTE_MATCHED);
  assert_ptr_equal(r->handler, h_b);
  assert_string_equal(p.version, "");
}

static void test_url_decoding_and_trailing_slash(void **state) {
  (void)state;
  const route *r;
  route_params p;
  unsigned allowed;
  assert_int_equal(match("/v2/models/my%20model/", ROUTE_GET, &r, &p, &allowed), ROUTE_MATCHED);
  assert_string_equal(p.model, "my model");
  assert_int_equal(match("/v2/models/bad%2", ROUTE_GET, &r, &p, &allowed), ROUTE_BAD_PARAM);
  assert_int_equal(match("/v2/models/nul%00x", ROUTE_GET, &r, &p, &allowed), ROUTE_BAD_PARAM);
}

static void test_not_found_vs_method(void **state) {
  (void)state;
  const route *r;
  route_params p;
  unsigned allowed = 0;
  assert_int_equal(match("/v2/nothing", ROUTE_GET, &r, &p, &allowed), ROUTE_NO_PATH);
  assert_int_equal(match("/v2/models//infer", ROUTE_POST, &r, &p, &allowed), ROUTE_NO_PATH);
  assert_int_equal(match("/v2/health/live/extra", ROUTE_GET, &r, &p, &allowed), ROUTE_NO_PATH);
  assert_int_equal(match("/v2/models/m/infer", ROUTE_GET, &r, &p, &allowed), ROUTE_BAD_METHOD);
  assert_int_equal(allowed, ROUTE_POST);
  assert_int_equal(match("/v2/health/live", ROUTE_DELETE, &r, &p, &allowed), ROUTE_BAD_METHOD);
  char buf[64];
  assert_string_equal(router_methods_str(ROUTE_GET | ROUTE_POST, buf, sizeof buf), "GET, POST");
}

static void test_long_segment_rejected(void **state) {
  (void)state;
  char path[600] = "/v2/models/";
  memset(path + strlen(path), 'a', 400);
  const route *r;
  route_params p;
  unsigned allowed;
  assert_int_equal(match(path, ROUTE_GET, &r, &p, &allowed), ROUTE_BAD_PARAM);
}

/* TF Serving's "{model}:predict": a capture with a literal suffix inside one segment. */
static void h_d(void *c, const route_params *p) { (void)c; (void)p; }
static void h_e(void *c, const route_params *p) { (void)c; (void)p; }

static const route tf_table[] = {
    {ROUTE_GET, "/v1/models/{model}", h_a, NULL, NULL},
    {ROUTE_GET, "/v1/models/{model}/versions/{version}", h_a, NULL, NULL},
    {ROUTE_POST, "/v1/models/{model}/predict", h_b, NULL, NULL},
    {ROUTE_POST, "/v1/models/{model}:predict", h_d, NULL, NULL},
    {ROUTE_POST, "/v1/models/{model}/versions/{version}:predict", h_e, NULL, NULL},
};
#define TF_N (sizeof tf_table / sizeof tf_table[0])

static route_result tf_match(const char *path, unsigned method, const route **r, route_params *p, unsigned *allowed) {
  memset(p, 0, sizeof *p);
  return router_match(tf_table, TF_N, path, method, r, p, allowed);
}

static void test_colon_suffix(void **state) {
  (void)state;
  const route *r;
  route_params p;
  unsigned allowed = 0;
  assert_int_equal(tf_match("/v1/models/churn:predict", ROUTE_POST, &r, &p, &allowed), ROUTE_MATCHED);
  assert_ptr_equal(r->handler, h_d);
  assert_string_equal(p.model, "churn");
  assert_string_equal(p.version, "");
  assert_int_equal(tf_match("/v1/models/churn/versions/3:predict", ROUTE_POST, &r, &p, &allowed), ROUTE_MATCHED);
  assert_ptr_equal(r->handler, h_e);
  assert_string_equal(p.model, "churn");
  assert_string_equal(p.version, "3");
  /* a name holding a colon still captures up to the suffix; the suffix is matched undecoded */
  assert_int_equal(tf_match("/v1/models/a:b:predict", ROUTE_POST, &r, &p, &allowed), ROUTE_MATCHED);
  assert_string_equal(p.model, "a:b");
  assert_int_equal(tf_match("/v1/models/my%20model:predict", ROUTE_POST, &r, &p, &allowed), ROUTE_MATCHED);
  assert_string_equal(p.model, "my model");
  /* the plain routes are unaffected */
  assert_int_equal(tf_match("/v1/models/churn/predict", ROUTE_POST, &r, &p, &allowed), ROUTE_MATCHED);
  assert_ptr_equal(r->handler, h_b);
  assert_int_equal(tf_match("/v1/models/churn", ROUTE_GET, &r, &p, &allowed), ROUTE_MATCHED);
  assert_ptr_equal(r->handler, h_a);
  assert_string_equal(p.model, "churn");
}

static void test_colon_suffix_misses(void **state) {
  (void)state;
  const route *r;
  route_params p;
  unsigned allowed = 0;
  /* nothing before the suffix: no model to capture */
  assert_int_equal(tf_match("/v1/models/:predict", ROUTE_POST, &r, &p, &allowed), ROUTE_BAD_METHOD);
  /* another verb is not the predict route (it reads as a model name, which only GET takes) */
  assert_int_equal(tf_match("/v1/models/churn:classify", ROUTE_POST, &r, &p, &allowed), ROUTE_BAD_METHOD);
  assert_int_equal(allowed, ROUTE_GET);
  assert_int_equal(tf_match("/v1/models/churn:predic", ROUTE_POST, &r, &p, &allowed), ROUTE_BAD_METHOD);
  /* an empty version before the suffix: only the GET route (version ":predict") matches */
  assert_int_equal(tf_match("/v1/models/churn/versions/:predict", ROUTE_POST, &r, &p, &allowed), ROUTE_BAD_METHOD);
  assert_int_equal(tf_match("/v1/models/bad%2:predict", ROUTE_POST, &r, &p, &allowed), ROUTE_BAD_PARAM);
}

/* The server's own table: every capture is one the router knows ({model}, {version}, {id}) and
 * opens its segment (the matcher treats any other '{' as a route that never matches), and each
 * route matches its own pattern written as a path. */
static void test_server_table_captures(void **state) {
  (void)state;
  size_t n;
  const route *t = http_routes_table(&n);
  for (size_t i = 0; i < n; i++) {
    const char *pat = t[i].pattern;
    for (const char *b = strchr(pat, '{'); b; b = strchr(b + 1, '{')) {
      if (b[-1] != '/') fail_msg("%s: a capture not at the start of a segment", pat);
      if (strncmp(b, "{model}", 7) && strncmp(b, "{version}", 9) && strncmp(b, "{id}", 4))
        fail_msg("%s: an unknown capture", pat);
    }
    char path[512], *o = path;
    for (const char *c = pat; *c;) {
      if (*c == '{') { /* a capture: a value the decoder takes */
        const char *e = strchr(c, '}');
        o += strlen(strcpy(o, strncmp(c, "{version}", 9) == 0 ? "3" : "x1"));
        c = e + 1;
      } else {
        *o++ = *c++;
      }
    }
    *o = '\0';
    route_params p;
    const route *r = NULL;
    unsigned allowed = 0;
    unsigned m = t[i].methods & -t[i].methods; /* one of its methods */
    if (router_match(t, n, path, m, &r, &p, &allowed) != ROUTE_MATCHED) fail_msg("%s: %s does not match", pat, path);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_colon_suffix),
      cmocka_unit_test(test_colon_suffix_misses),
      cmocka_unit_test(test_exact_and_captures),
      cmocka_unit_test(test_url_decoding_and_trailing_slash),
      cmocka_unit_test(test_not_found_vs_method),
      cmocka_unit_test(test_long_segment_rejected),
      cmocka_unit_test(test_server_table_captures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
