/* GET /metrics: the Prometheus exposition (observability/metrics.h), on the HTTP port and, with
 * --metrics-port, on a port of its own served by one small thread (scrapes are rare and short,
 * and must not queue behind inference traffic's connections). */
#include "frontends/http/metrics_http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* ---------------------------------------------------------------------------------------- */
/* --metrics-port */

struct metrics_port {
  app *app;
  int fd;
  int port;
  int stop_pipe[2];
  pthread_t thread;
};

/* Writes all of buf (the socket is blocking, with a send timeout). */
static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    buf += w;
    len -= (size_t)w;
  }
}

static void reply(int fd, int status, const char *reason, const char *type, const char *body, size_t len) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
                   reason, type, len);
  write_all(fd, head, (size_t)n);
  write_all(fd, body, len);
}

/* One connection: reads the request head (bounded in size and time) and answers it. */
static void serve_one(metrics_port *mp, int fd) {
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  char req[8192];
  size_t len = 0;
  while (len < sizeof req - 1) {
    ssize_t r = recv(fd, req + len, sizeof req - 1 - len, 0);
    if (r <= 0) return; /* gone, or too slow */
    len += (size_t)r;
    req[len] = '\0';
    if (strstr(req, "\r\n\r\n")) break;
  }
  static const char json[] = "application/json";
  if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0) {
    metrics_text t;
    metrics_text_init(&t);
    metrics_render(mp->app->metrics, &t);
    if (t.oom) {
      static const char e[] = "{\"error\": \"out of memory for the metrics page\"}";
      reply(fd, 500, "Internal Server Error", json, e, sizeof e - 1);
    } else {
      reply(fd, 200, "OK", METRICS_CONTENT_TYPE, t.buf, t.len);
    }
    metrics_text_free(&t);
  } else if (strncmp(req, "GET ", 4) == 0) {
    static const char e[] = "{\"error\": \"the metrics port serves GET /metrics only\"}";
    reply(fd, 404, "Not Found", json, e, sizeof e - 1);
  } else {
    static const char e[] = "{\"error\": \"the metrics port serves GET /metrics only\"}";
    reply(fd, 405, "Method Not Allowed", json, e, sizeof e - 1);
  }
}

static void *port_main(void *arg) {
  metrics_port *mp = arg;
  for (;;) {
    struct pollfd pf[2] = {{mp->fd, POLLIN, 0}, {mp->stop_pipe[0], POLLIN, 0}};
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pf[1].revents) break;
    if (!(pf[0].revents & POLLIN)) continue;
    int fd = accept4(mp->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) continue;
    serve_one(mp, fd);
    shutdown(fd, SHUT_WR);
    close(fd);
  }
  return NULL;
}

inferd_status metrics_port_start(const char *host, int port, app *a, metrics_port **out) {
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *ai = NULL;
  int gai = getaddrinfo(host, ps, &hints, &ai);
  if (gai != 0) return status_make(INFERD_INVALID_ARGUMENT, "--metrics-port: cannot resolve '%s': %s", host, gai_strerror(gai));
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
    int e = errno;
    freeaddrinfo(ai);
    if (fd >= 0) close(fd);
    return status_make(INFERD_UNAVAILABLE, "cannot listen on %s:%d for metrics: %s", host, port, strerror(e));
  }
  freeaddrinfo(ai);
  metrics_port *mp = calloc(1, sizeof *mp);
  if (mp == NULL || pipe2(mp->stop_pipe, O_CLOEXEC) != 0) {
    free(mp);
    close(fd);
    return status_make(INFERD_INTERNAL, "out of memory");
  }
  mp->app = a;
  mp->fd = fd;
  struct sockaddr_storage got;
  socklen_t glen = sizeof got;
  getsockname(fd, (struct sockaddr *)&got, &glen);
  char hb[NI_MAXHOST], sb[NI_MAXSERV];
  mp->port = getnameinfo((struct sockaddr *)&got, glen, hb, sizeof hb, sb, sizeof sb, NI_NUMERICHOST | NI_NUMERICSERV) == 0
                 ? atoi(sb)
                 : port;
  if (pthread_create(&mp->thread, NULL, port_main, mp) != 0) {
    close(mp->stop_pipe[0]);
    close(mp->stop_pipe[1]);
    close(fd);
    free(mp);
    return status_make(INFERD_INTERNAL, "cannot start the metrics port's thread");
  }
  pthread_setname_np(mp->thread, "metrics-port");
  *out = mp;
  return status_ok();
}

int metrics_port_port(const metrics_port *mp) { return mp->port; }

void metrics_port_stop(metrics_port *mp) {
  if (mp == NULL) return;
  ssize_t w = write(mp->stop_pipe[1], "x", 1);
  (void)w;
  pthread_join(mp->thread, NULL);
  close(mp->stop_pipe[0]);
  close(mp->stop_pipe[1]);
  close(mp->fd);
  free(mp);
}
