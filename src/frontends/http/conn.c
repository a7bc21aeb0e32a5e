/* HTTP/1.1 on a socket driven by libevent events: parses requests (Content-Length or chunked bodies,
 * keep-alive, pipelining one at a time), refuses an oversized body from its Content-Length
 * before reading it, answers malformed requests with JSON errors, and notices a client that
 * leaves while its request is being answered. */
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <sys/uio.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "frontends/http/server_internal.h"

#define MAX_HEAD_BYTES (64 * 1024)
#define IDLE_TIMEOUT_S 120

typedef enum { READ_HEAD, READ_BODY, READ_CHUNK_SIZE, READ_CHUNK_DATA, READ_CHUNK_END, READ_TRAILER, ANSWERING } conn_state;

struct http_conn {
  http_loop *loop;
  /* Our own reads and writes rather than a bufferevent's: it asks the kernel how much is
   * readable (an ioctl) before each read and re-arms write interest (two epoll_ctl) for each
   * reply, and on a virtual machine every system call counts. */
  evutil_socket_t fd;
  struct event *readable; /* persistent; its timeout closes an idle connection */
  struct event *writable; /* added only while a reply is still being written */
  struct evbuffer *in, *out;
  conn_state state;
  http_call *call;   /* the request being read or answered */
  size_t to_read;    /* body or chunk bytes still expected */
  bool keep_alive;
  bool closing;      /* close once the output is written */
  http_conn *prev, *next;
};

static void conn_free(http_conn *conn) {
  http_loop *l = conn->loop;
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    l->conns = conn->next;
  if (conn->next) conn->next->prev = conn->prev;
  if (conn->call) {
    if (conn->state == ANSWERING) { /* the handler still has it; its reply will be dropped */
      atomic_store(&conn->call->client_gone, true);
      conn->call->conn = NULL;
    }
    else
      http_call_free(conn->call);
  }
  event_free(conn->readable);
  event_free(conn->writable);
  evbuffer_free(conn->in);
  evbuffer_free(conn->out);
  evutil_closesocket(conn->fd);
  free(conn);
}

static void stop_reading(http_conn *conn) { event_del(conn->readable); }

static void start_reading(http_conn *conn) {
  struct timeval idle = {IDLE_TIMEOUT_S, 0};
  event_add(conn->readable, &idle);
}

/* Writes what it can of conn->out now; the rest when the socket is writable. Returns false
 * when the connection was freed. */
static bool flush_output(http_conn *conn) {
  while (evbuffer_get_length(conn->out) > 0) {
    int n = evbuffer_write(conn->out, conn->fd);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        event_add(conn->writable, NULL);
        return true;
      }
      conn_free(conn);
      return false;
    }
  }
  event_del(conn->writable);
  if (conn->closing) {
    conn_free(conn);
    return false;
  }
  return true;
}

static http_call *call_new(http_conn *conn) {
  http_call *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->conn = conn;
  c->loop = conn->loop;
  c->srv = conn->loop->srv;
  c->app = c->srv->app;
  c->status = 200;
  c->header_len = -1;
  c->request_body = evbuffer_new();
  if (c->request_body == NULL) {
    free(c);
    return NULL;
  }
  return c;
}

/* The wire found the request wrong: answer it (JSON) and close afterwards. */
static void fail_request(http_conn *conn, inferd_code code, const char *msg) {
  http_call *c = conn->call;
  if (c == NULL) c = conn->call = call_new(conn);
  if (c == NULL) {
    conn_free(conn);
    return;
  }
  if (c->method[0] == '\0') snprintf(c->method, sizeof c->method, "-");
  if (c->path == NULL) c->path = strdup("-");
  conn->state = ANSWERING;
  conn->keep_alive = false;
  c->close_after = true;
  inferd_status st = status_make(code, "%s", msg);
  http_call_set_error(c, &st);
  stop_reading(conn);
  http_server_handle(c);
}

static bool token_char(char ch) {
  return ch > 0x20 && ch < 0x7f && !strchr("()<>@,;:\\\"/[]?={}", ch);
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
  return s;
}

/* Parses the request line and headers in head (NUL-terminated, CRLF lines, no final blank
 * line). Returns NULL or an error message. */
static const char *parse_head(http_conn *conn, char *head) {
  http_call *c = conn->call;
  char *save = NULL;
  char *line = strtok_r(head, "\n", &save);
  if (line == NULL) return "empty request";
  size_t n = strlen(line);
  if (n && line[n - 1] == '\r') line[n - 1] = '\0';
  char *sp1 = strchr(line, ' ');
  char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  if (!sp1 || !sp2 || strchr(sp2 + 1, ' ')) return "malformed request line";
  *sp1 = *sp2 = '\0';
  const char *method = line, *target = sp1 + 1, *version = sp2 + 1;
  if (strlen(method) == 0 || strlen(method) >= sizeof c->method) return "malformed method";
  for (const char *p = method; *p; p++)
    if (!token_char(*p)) return "malformed method";
  snprintf(c->method, sizeof c->method, "%s", method);
  if (target[0] != '/') return "the request target must be a path starting with /";
  for (const char *p = target; *p; p++)
    if ((unsigned char)*p <= 0x20 || *p == 0x7f) return "malformed request target";
  if (strcmp(version, "HTTP/1.1") == 0)
    conn->keep_alive = true;
  else if (strcmp(version, "HTTP/1.0") == 0)
    conn->keep_alive = false;
  else
    return "unsupported HTTP version (HTTP/1.0 and HTTP/1.1 are served)";
  c->target = strdup(target);
  c->path = strndup(target, strcspn(target, "?#"));
  while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
    n = strlen(line);
    if (n && line[n - 1] == '\r') line[--n] = '\0';
    if (n == 0) continue;
    if (line[0] == ' ' || line[0] == '\t') return "obsolete header line folding is not accepted";
    char *colon = strchr(line, ':');
    if (colon == NULL || colon == line) return "malformed header line";
    *colon = '\0';
    for (const char *p = line; *p; p++)
      if (!token_char(*p)) return "malformed header name";
    if (c->n_headers == HTTP_MAX_HEADERS) return "too many headers";
    c->headers[c->n_headers].name = strdup(line);
    c->headers[c->n_headers].value = strdup(trim(colon + 1));
    c->n_headers++;
  }
  const char *conn_hdr = http_call_header(c, "Connection");
  if (conn_hdr && strcasecmp(conn_hdr, "close") == 0) conn->keep_alive = false;
  if (conn_hdr && strcasecmp(conn_hdr, "keep-alive") == 0) conn->keep_alive = true;
  return NULL;
}

/* Decides how the body is framed after the head. Returns false when the request was failed. */
static bool start_body(http_conn *conn) {
  http_call *c = conn->call;
  size_t max = c->srv->opts.max_body_bytes;
  const char *te = http_call_header(c, "Transfer-Encoding");
  const char *cl = http_call_header(c, "Content-Length");
  if (te) {
    if (strcasecmp(te, "chunked") != 0) {
      fail_request(conn, INFERD_INVALID_ARGUMENT, "Transfer-Encoding other than chunked is not supported");
      return false;
    }
    if (cl) {
      fail_request(conn, INFERD_INVALID_ARGUMENT, "a request may not have both Content-Length and Transfer-Encoding");
      return false;
    }
    conn->state = READ_CHUNK_SIZE;
    return true;
  }
  if (cl == NULL) {
    conn->to_read = 0;
    conn->state = READ_BODY;
    return true;
  }
  for (int i = 0; i < c->n_headers; i++) /* repeated Content-Length must agree */
    if (strcasecmp(c->headers[i].name, "Content-Length") == 0 && strcmp(c->headers[i].value, cl) != 0) {
      fail_request(conn, INFERD_INVALID_ARGUMENT, "conflicting Content-Length headers");
      return false;
    }
  char *end;
  errno = 0;
  unsigned long long n = strtoull(cl, &end, 10);
  if (!isdigit((unsigned char)cl[0]) || *end != '\0' || errno) {
    fail_request(conn, INFERD_INVALID_ARGUMENT, "Content-Length is not a number");
    return false;
  }
  if (n > max) {
    char msg[160];
    snprintf(msg, sizeof msg, "the body is %llu bytes, more than the limit of %zu (--max-body-bytes)", n, max);
    fail_request(conn, INFERD_TOO_LARGE, msg);
    return false;
  }
  conn->to_read = (size_t)n;
  conn->state = READ_BODY;
  return true;
}

/* Answers "Expect: 100-continue" when a body is to come; false when the connection was freed. */
static bool maybe_continue(http_conn *conn) {
  const char *expect = http_call_header(conn->call, "Expect");
  if (expect && strcasecmp(expect, "100-continue") == 0 && conn->to_read + (conn->state != READ_BODY) > 0) {
    evbuffer_add_printf(conn->out, "HTTP/1.1 100 Continue\r\n\r\n");
    return flush_output(conn);
  }
  return true;
}

static void request_complete(http_conn *conn) {
  http_call *c = conn->call;
  conn->state = ANSWERING;
  c->bytes_in = evbuffer_get_length(c->request_body);
  c->close_after = !conn->keep_alive;
  http_server_handle(c);
}

/* Parses what has arrived; returns when it needs more bytes or a request is being answered. */
static void process_input(http_conn *conn) {
  struct evbuffer *in = conn->in;
  size_t max = conn->loop->srv->opts.max_body_bytes;
  for (;;) {
    switch (conn->state) {
      case ANSWERING:
        return;
      case READ_HEAD: {
        /* tolerate blank lines between pipelined requests */
        while (evbuffer_get_length(in) >= 2) {
          char two[2];
          evbuffer_copyout(in, two, 2);
          if (two[0] == '\r' && two[1] == '\n')
            evbuffer_drain(in, 2);
          else if (two[0] == '\n')
            evbuffer_drain(in, 1);
          else
            break;
        }
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0) {
          if (evbuffer_get_length(in) > MAX_HEAD_BYTES) {
            fail_request(conn, INFERD_INVALID_ARGUMENT, "the request head is larger than 64 KiB");
          }
          return;
        }
        if ((size_t)end.pos > MAX_HEAD_BYTES) {
          fail_request(conn, INFERD_INVALID_ARGUMENT, "the request head is larger than 64 KiB");
          return;
        }
        conn->call = call_new(conn);
        if (conn->call == NULL) {
          conn_free(conn);
          return;
        }
        conn->call->start_ns = monotonic_ns();
        char *head = malloc((size_t)end.pos + 1);
        if (head == NULL) {
          conn_free(conn);
          return;
        }
        evbuffer_remove(in, head, (size_t)end.pos);
        head[end.pos] = '\0';
        evbuffer_drain(in, 4);
        if (memchr(head, '\0', (size_t)end.pos)) {
          free(head);
          fail_request(conn, INFERD_INVALID_ARGUMENT, "the request head contains a NUL byte");
          return;
        }
        const char *err = parse_head(conn, head);
        free(head);
        if (err) {
          fail_request(conn, INFERD_INVALID_ARGUMENT, err);
          return;
        }
        if (!start_body(conn) || !maybe_continue(conn)) return;
        break;
      }
      case READ_BODY: {
        size_t got = evbuffer_get_length(in);
        size_t take = got < conn->to_read ? got : conn->to_read;
        evbuffer_remove_buffer(in, conn->call->request_body, take);
        conn->to_read -= take;
        if (conn->to_read > 0) return;
        request_complete(conn);
        return;
      }
      case READ_CHUNK_SIZE: {
        size_t len;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
        if (line == NULL) {
          if (evbuffer_get_length(in) > 1024) fail_request(conn, INFERD_INVALID_ARGUMENT, "malformed chunk size");
          return;
        }
        char *end;
        errno = 0;
        unsigned long long n = strtoull(line, &end, 16);
        bool ok = isxdigit((unsigned char)line[0]) && (*end == '\0' || *end == ';') && errno == 0;
        free(line);
        if (!ok) {
          fail_request(conn, INFERD_INVALID_ARGUMENT, "malformed chunk size");
          return;
        }
        if (n > max || evbuffer_get_length(conn->call->request_body) + n > max) {
          char msg[128];
          snprintf(msg, sizeof msg, "the chunked body is more than the limit of %zu bytes (--max-body-bytes)", max);
          fail_request(conn, INFERD_TOO_LARGE, msg);
          return;
        }
        conn->to_read = (size_t)n;
        conn->state = n == 0 ? READ_TRAILER : READ_CHUNK_DATA;
        break;
      }
      case READ_CHUNK_DATA: {
        size_t got = evbuffer_get_length(in);
        size_t take = got < conn->to_read ? got : conn->to_read;
        evbuffer_remove_buffer(in, conn->call->request_body, take);
        conn->to_read -= take;
        if (conn->to_read > 0) return;
        conn->state = READ_CHUNK_END;
        break;
      }
      case READ_CHUNK_END: {
        if (evbuffer_get_length(in) < 2) return;
        char crlf[2];
        evbuffer_remove(in, crlf, 2);
        if (crlf[0] != '\r' || crlf[1] != '\n') {
          fail_request(conn, INFERD_INVALID_ARGUMENT, "a chunk does not end with CRLF");
          return;
        }
        conn->state = READ_CHUNK_SIZE;
        break;
      }
      case READ_TRAILER: {
        size_t len;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
        if (line == NULL) {
          if (evbuffer_get_length(in) > MAX_HEAD_BYTES) fail_request(conn, INFERD_INVALID_ARGUMENT, "trailer too large");
          return;
        }
        free(line);
        if (len == 0) {
          request_complete(conn);
          return;
        }
        break;
      }
    }
  }
}

static void on_readable(evutil_socket_t fd, short what, void *arg) {
  http_conn *conn = arg;
  if (what & EV_TIMEOUT) { /* idle too long */
    conn_free(conn);
    return;
  }
  struct evbuffer_iovec vec;
  if (evbuffer_reserve_space(conn->in, 65536, &vec, 1) < 1) {
    conn_free(conn);
    return;
  }
  ssize_t n = read(fd, vec.iov_base, vec.iov_len);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) { /* the client closed, or the connection broke */
    conn_free(conn);
    return;
  }
  vec.iov_len = (size_t)n;
  evbuffer_commit_space(conn->in, &vec, 1);
  if (conn->state == ANSWERING) {
    /* pipelined bytes wait their turn; stop reading if a client floods them */
    if (evbuffer_get_length(conn->in) > MAX_HEAD_BYTES) stop_reading(conn);
    return;
  }
  process_input(conn);
}

static void on_writable(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  flush_output(arg);
}

void http_conn_accept(http_loop *l, evutil_socket_t fd) {
  http_conn *conn = calloc(1, sizeof *conn);
  if (conn == NULL) {
    evutil_closesocket(fd);
    return;
  }
  conn->loop = l;
  conn->fd = fd;
  evutil_make_socket_nonblocking(fd);
  conn->readable = event_new(l->base, fd, EV_READ | EV_PERSIST, on_readable, conn);
  conn->writable = event_new(l->base, fd, EV_WRITE | EV_PERSIST, on_writable, conn);
  conn->in = evbuffer_new();
  conn->out = evbuffer_new();
  if (!conn->readable || !conn->writable || !conn->in || !conn->out) {
    if (conn->readable) event_free(conn->readable);
    if (conn->writable) event_free(conn->writable);
    if (conn->in) evbuffer_free(conn->in);
    if (conn->out) evbuffer_free(conn->out);
    evutil_closesocket(fd);
    free(conn);
    return;
  }
  conn->next = l->conns;
  if (l->conns) l->conns->prev = conn;
  l->conns = conn;
  start_reading(conn);
}

static const char *reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

void http_conn_send_reply(http_call *c) {
  http_conn *conn = c->conn;
  if (conn == NULL) { /* the client left while its request was answered */
    http_call_free(c);
    return;
  }
  struct evbuffer *out = conn->out;
  size_t body_len = c->body ? evbuffer_get_length(c->body) : 0;
  bool close = c->close_after || !conn->keep_alive;
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nX-Request-ID: %s\r\n",
                      c->status, reason_phrase(c->status), date, c->content_type ? c->content_type : "application/json",
                      body_len, c->request_id);
  if (c->header_len >= 0) evbuffer_add_printf(out, "Inference-Header-Content-Length: %lld\r\n", c->header_len);
  for (int i = 0; i < c->n_reply_headers; i++)
    evbuffer_add_printf(out, "%s: %s\r\n", c->reply_headers[i].name, c->reply_headers[i].value);
  if (close) evbuffer_add_printf(out, "Connection: close\r\n");
  evbuffer_add(out, "\r\n", 2);
  if (body_len && strcmp(c->method, "HEAD") != 0) evbuffer_add_buffer(out, c->body);
  conn->call = NULL;
  http_call_free(c);
  if (close) {
    conn->closing = true;
    stop_reading(conn);
    flush_output(conn); /* frees it once the reply is out */
    return;
  }
  if (!flush_output(conn)) return;
  conn->state = READ_HEAD;
  start_reading(conn);
  process_input(conn); /* a pipelined request may be waiting already */
}

void http_conn_drop_call(http_call *c) {
  if (c->conn) c->conn->call = NULL;
  http_call_free(c);
}

void http_conn_close_all(http_loop *l) {
  while (l->conns) conn_free(l->conns);
}
