/* The traffic admin API over REST (admin routes, kept together so one guard can cover them):
 * GET/PUT /v1/models/{m}/traffic, POST .../traffic/{promote,rollback,pause,resume},
 * GET .../traffic/history and .../traffic/report. The work is traffic/'s (traffic.h); this file
 * only moves JSON in and out. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/principal.h"
#include "frontends/http/routes.h"
#include "traffic/traffic.h"

static const char *who_of(const http_call *c) { return c->principal ? c->principal->name : "anonymous"; }

static bool traffic_on(http_call *c) {
  if (c->app->traffic) return true;
  inferd_status st = status_make(INFERD_UNAVAILABLE, "traffic management is not running on this server");
  http_call_reply_error(c, &st);
  return false;
}

static void reply(http_call *c, inferd_status st, json_t *doc) {
  if (status_is_ok(&st)) http_call_reply_json(c, 200, doc);
  else http_call_reply_error(c, &st);
}

/* The body as JSON; an empty body is an empty object. NULL after replying 400. */
static json_t *body_json(http_call *c) {
  size_t len;
  const char *body = http_call_body(c, &len);
  if (len == 0) return json_object();
  json_error_t je;
  json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (doc && json_is_object(doc)) return doc;
  inferd_status st = doc ? status_make(INFERD_INVALID_ARGUMENT, "the body must be a JSON object")
                         : status_make(INFERD_INVALID_ARGUMENT, "the body is not valid JSON: line %d, column %d: %s",
                                       je.line, je.column, je.text);
  json_decref(doc);
  http_call_reply_error(c, &st);
  return NULL;
}

void traffic_api_policy(void *call, const route_params *p) {
  http_call *c = call;
  if (!traffic_on(c)) return;
  json_t *out = NULL;
  if (strcmp(c->method, "PUT") == 0) {
    json_t *body = body_json(c);
    if (body == NULL) return;
    inferd_status st = traffic_put(c->app->traffic, p->model, body, who_of(c), &out);
    json_decref(body);
    reply(c, st, out);
    return;
  }
  inferd_status st = traffic_get(c->app->traffic, p->model, &out);
  reply(c, st, out);
}

static void action(http_call *c, const route_params *p, const char *name) {
  if (!traffic_on(c)) return;
  json_t *body = body_json(c);
  if (body == NULL) return;
  const json_t *r = json_object_get(body, "reason");
  inferd_status st = status_ok();
  json_t *out = NULL;
  if (json_object_size(body) > (r ? 1u : 0u))
    st = status_make(INFERD_INVALID_ARGUMENT, "the body takes only \"reason\" (a string)");
  else if (r && !json_is_string(r))
    st = status_make(INFERD_INVALID_ARGUMENT, "$.reason must be a string");
  if (status_is_ok(&st))
    st = traffic_action(c->app->traffic, p->model, name, r ? json_string_value(r) : NULL, who_of(c), &out);
  json_decref(body);
  reply(c, st, out);
}

void traffic_api_promote(void *call, const route_params *p) { action(call, p, "promote"); }
void traffic_api_rollback(void *call, const route_params *p) { action(call, p, "rollback"); }
void traffic_api_pause(void *call, const route_params *p) { action(call, p, "pause"); }
void traffic_api_resume(void *call, const route_params *p) { action(call, p, "resume"); }

void traffic_api_history(void *call, const route_params *p) {
  http_call *c = call;
  if (!traffic_on(c)) return;
  int limit = 100;
  const char *q = strchr(c->target, '?');
  const char *l = q ? strstr(q, "limit=") : NULL;
  if (l) {
    char *end;
    long v = strtol(l + 6, &end, 10);
    if (end == l + 6 || (*end && *end != '&') || v < 1 || v > 10000) {
      inferd_status st = status_make(INFERD_INVALID_ARGUMENT, "the query parameter limit must be an integer from 1 to 10000");
      http_call_reply_error(c, &st);
      return;
    }
    limit = (int)v;
  }
  json_t *out = NULL;
  inferd_status st = traffic_history(c->app->traffic, p->model, limit, &out);
  reply(c, st, out);
}

void traffic_api_report(void *call, const route_params *p) {
  http_call *c = call;
  if (!traffic_on(c)) return;
  json_t *out = NULL;
  inferd_status st = traffic_report(c->app->traffic, p->model, &out);
  reply(c, st, out);
}
