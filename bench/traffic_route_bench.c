/* The route stage's policy work per request, in process: a 3-way split with a sticky header key
 * (hash the key, pick the arm, resolve its alias), CPU time per call. The runtime adds a
 * snapshot reference (one uncontended mutex lock/unlock and two atomics) around it.
 *   build/traffic_route_bench [iterations] */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "traffic/policy.h"

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 10000000;
  json_t *doc = json_loads("{\"aliases\": {\"production\": 1, \"b\": 2},"
                           "\"arms\": [{\"name\": \"a\", \"version\": \"production\", \"weight\": 50},"
                           "{\"name\": \"b\", \"version\": \"b\", \"weight\": 30},"
                           "{\"name\": \"c\", \"version\": 3, \"weight\": 20}],"
                           "\"sticky_key\": {\"header\": \"X-User-Id\"}}",
                           0, NULL);
  traffic_policy p;
  inferd_status st = traffic_policy_from_json(doc, "$", &p);
  json_decref(doc);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "%s\n", st.msg);
    return 1;
  }
  char keys[1024][24];
  for (int i = 0; i < 1024; i++) snprintf(keys[i], sizeof keys[i], "user-%08d", i * 7919);
  char version[TRAFFIC_NAME_MAX], arm[TRAFFIC_NAME_MAX];
  long per_arm[3] = {0};
  double t0 = cpu_s();
  for (long i = 0; i < n; i++) {
    const char *k = keys[i & 1023];
    double u = traffic_hash_unit(k, strlen(k));
    traffic_route(&p, "m", NULL, u, version, arm);
    per_arm[arm[0] - 'a']++;
  }
  double t = cpu_s() - t0;
  printf("3-way sticky split: %ld calls, %.1f ns CPU per call (arms %ld/%ld/%ld)\n", n, t / (double)n * 1e9, per_arm[0],
         per_arm[1], per_arm[2]);
  return 0;
}
