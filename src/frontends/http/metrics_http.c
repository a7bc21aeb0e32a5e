/* GET /metrics: the Prometheus exposition (observability/metrics.h), on the HTTP port and on the
 * --metrics-port server (a second http_server, its own loop thread, serving this path alone, so
 * that scrapes never queue behind inference traffic's connections). */
#include "frontends/http/metrics_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/http/routes.h"
#include "observability/metrics.h"
#include "util/log.h"

static void free_page(const void *data, size_t len, void *page) {
  (void)data;
  (void)len;
  free(page);
}

void metrics_get(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  if (c->app->metrics == NULL) {
    inferd_status st = status_make(INFERD_NOT_FOUND, "metrics are off");
    http_call_reply_error(c, &st);
    return;
  }
  metrics_text t;
  metrics_text_init(&t);
  metrics_render(c->app->metrics, &t);
  /* the page (megabytes with many models) goes out without a copy: the body refers to it */
  if (t.oom || (c->body = evbuffer_new()) == NULL ||
      evbuffer_add_reference(c->body, t.buf, t.len, free_page, t.buf) != 0) {
    metrics_text_free(&t);
    inferd_status st = status_make(INFERD_INTERNAL, "out of memory for the metrics page");
    http_call_reply_error(c, &st);
    return;
  }
  c->status = 200;
  c->content_type = METRICS_CONTENT_TYPE;
  c->header_len = -1;
  http_call_reply(c);
}

void http_metrics_collect(void *ctx, metrics_text *out) {
  metrics_text_family(out, "inferd_http_connections", "gauge", "HTTP connections open now.");
  metrics_text_printf(out, "inferd_http_connections %ld\n", http_server_open_connections(ctx));
}
