/* traffic/cli: `inferd traffic get|set|promote|rollback|pause|resume|history|report MODEL`,
 * each one request to the server's /v1/models/{m}/traffic API, the answer printed as it came. */
#include "traffic/cli.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/strbuf.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: inferd traffic COMMAND MODEL [options]\n"
          "  get MODEL                 the traffic policy\n"
          "  set MODEL FILE            replace it with the policy in FILE ('-': stdin)\n"
          "  promote|rollback|pause|resume MODEL   act on the model's rollout\n"
          "  history MODEL [--limit N] every change: who, when, action, why, from, to\n"
          "  report MODEL              per arm: requests, errors, latency, labels\n"
          "options:\n"
          "  --server URL     the server (http://host:port)  INFERD_SERVER (http://127.0.0.1:8000)\n"
          "  --reason TEXT    why (kept in the history and the audit log)\n"
          "  --api-key KEY    sent as Authorization: Bearer KEY  INFERD_API_KEY\n");
}

/* "model" with every byte outside [A-Za-z0-9._-] percent-encoded. */
static void path_escape(sbuf *b, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')
      sbuf_appendf(b, "%c", c);
    else
      sbuf_appendf(b, "%%%02X", c);
  }
}

static char *read_all(FILE *f, size_t *len) {
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      char *nb = realloc(buf, cap *= 2);
      if (nb == NULL) free(buf);
      buf = nb;
    }
  }
  *len = n;
  return buf;
}

/* One request over a fresh connection; prints the body; returns the exit code. */
static int http_request(const char *server, const char *method, const char *path, const char *body, size_t body_len,
                        const char *api_key) {
  char host[256] = "127.0.0.1", port[16] = "8000";
  const char *h = server;
  if (strncmp(h, "http://", 7) == 0) h += 7;
  else if (strstr(h, "://")) {
    fprintf(stderr, "inferd traffic: --server must be an http:// URL (got '%s')\n", server);
    return 2;
  }
  const char *colon = strchr(h, ':'), *slash = strchr(h, '/');
  size_t hl = colon ? (size_t)(colon - h) : slash ? (size_t)(slash - h) : strlen(h);
  if (hl == 0 || hl >= sizeof host) {
    fprintf(stderr, "inferd traffic: no host in --server '%s'\n", server);
    return 2;
  }
  memcpy(host, h, hl);
  host[hl] = '\0';
  if (colon) {
    size_t pl = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
    if (pl == 0 || pl >= sizeof port) {
      fprintf(stderr, "inferd traffic: bad port in --server '%s'\n", server);
      return 2;
    }
    memcpy(port, colon + 1, pl);
    port[pl] = '\0';
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int rc = getaddrinfo(host, port, &hints, &ai);
  if (rc != 0) {
    fprintf(stderr, "inferd traffic: cannot resolve %s: %s\n", host, gai_strerror(rc));
    return 2;
  }
  int fd = -1;
  for (struct addrinfo *p = ai; p && fd < 0; p = p->ai_next) {
    fd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
    if (fd >= 0 && connect(fd, p->ai_addr, p->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(ai);
  if (fd < 0) {
    fprintf(stderr, "inferd traffic: cannot connect to %s:%s\n", host, port);
    return 2;
  }
  char head[2048];
  sbuf b;
  sbuf_init(&b, head, sizeof head);
  sbuf_appendf(&b, "%s %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\nContent-Type: application/json\r\n"
               "Content-Length: %zu\r\n", method, path, host, port, body_len);
  if (api_key && *api_key) sbuf_appendf(&b, "Authorization: Bearer %s\r\n", api_key);
  sbuf_appendf(&b, "\r\n");
  bool sent = write(fd, head, b.len) == (ssize_t)b.len && (body_len == 0 || write(fd, body, body_len) == (ssize_t)body_len);
  FILE *in = sent ? fdopen(fd, "r") : NULL;
  if (in == NULL) {
    fprintf(stderr, "inferd traffic: the request could not be sent\n");
    close(fd);
    return 2;
  }
  size_t n;
  char *reply = read_all(in, &n);
  fclose(in);
  int status = 0;
  char *sep = reply ? memmem(reply, n, "\r\n\r\n", 4) : NULL;
  if (reply == NULL || sep == NULL || sscanf(reply, "HTTP/1.%*d %d", &status) != 1) {
    fprintf(stderr, "inferd traffic: no HTTP answer from %s:%s\n", host, port);
    free(reply);
    return 2;
  }
  const char *payload = sep + 4;
  fwrite(payload, 1, n - (size_t)(payload - reply), status / 100 == 2 ? stdout : stderr);
  if (n > 0 && reply[n - 1] != '\n') fputc('\n', status / 100 == 2 ? stdout : stderr);
  free(reply);
  return status / 100 == 2 ? 0 : 1;
}

int traffic_cli_main(int argc, char **argv) {
  const char *server = getenv("INFERD_SERVER"), *api_key = getenv("INFERD_API_KEY"), *reason = NULL, *limit = NULL;
  const char *pos[3];
  int n_pos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    const char **opt = strcmp(a, "--server") == 0    ? &server
                       : strcmp(a, "--reason") == 0  ? &reason
                       : strcmp(a, "--api-key") == 0 ? &api_key
                       : strcmp(a, "--limit") == 0   ? &limit
                                                     : NULL;
    if (opt) {
      if (i + 1 >= argc) {
        fprintf(stderr, "inferd traffic: %s needs a value\n", a);
        return 2;
      }
      *opt = argv[++i];
    } else if (n_pos < 3 && (a[0] != '-' || strcmp(a, "-") == 0)) {
      pos[n_pos++] = a;
    } else {
      fprintf(stderr, "inferd traffic: unexpected argument '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (server == NULL || *server == '\0') server = "http://127.0.0.1:8000";
  if (n_pos < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = pos[0];
  char path[1024];
  sbuf p;
  sbuf_init(&p, path, sizeof path);
  sbuf_appendf(&p, "/v1/models/");
  path_escape(&p, pos[1]);
  sbuf_appendf(&p, "/traffic");
  bool is_set = strcmp(cmd, "set") == 0;
  if (n_pos != (is_set ? 3 : 2)) {
    fprintf(stderr, "inferd traffic %s: %s\n", cmd, is_set ? "needs MODEL and FILE" : "takes one MODEL");
    return 2;
  }
  if (strcmp(cmd, "get") == 0) return http_request(server, "GET", path, NULL, 0, api_key);
  if (strcmp(cmd, "history") == 0 || strcmp(cmd, "report") == 0) {
    sbuf_appendf(&p, "/%s", cmd);
    if (limit && strcmp(cmd, "history") == 0) sbuf_appendf(&p, "?limit=%s", limit);
    return http_request(server, "GET", path, NULL, 0, api_key);
  }
  /* the body: the policy file (set) or {"reason": ...} (actions), with the reason JSON-escaped */
  char *body = NULL;
  size_t len = 0;
  if (is_set) {
    FILE *f = strcmp(pos[2], "-") == 0 ? stdin : fopen(pos[2], "rb");
    if (f == NULL) {
      fprintf(stderr, "inferd traffic set: cannot open %s\n", pos[2]);
      return 2;
    }
    body = read_all(f, &len);
    if (f != stdin) fclose(f);
    if (body == NULL) return 2;
    if (reason) { /* merged in as the document's "reason" field, before its closing brace */
      char *end = body + len;
      while (end > body && end[-1] != '}') end--;
      if (end == body) {
        fprintf(stderr, "inferd traffic set: %s is not a JSON object\n", pos[2]);
        free(body);
        return 2;
      }
      size_t cap = len + strlen(reason) * 6 + 32;
      char *nb = malloc(cap);
      if (nb == NULL) return 2;
      sbuf o;
      sbuf_init(&o, nb, cap);
      const char *last = end - 2; /* the last character inside the object: '{' when it is empty */
      while (last > body && (*last == ' ' || *last == '\n' || *last == '\r' || *last == '\t')) last--;
      sbuf_appendf(&o, "%.*s%s\"reason\": \"", (int)(end - 1 - body), body, *last == '{' ? "" : ", ");
      for (const char *r = reason; *r; r++) {
        unsigned char c = (unsigned char)*r;
        if (c == '"' || c == '\\') sbuf_appendf(&o, "\\%c", c);
        else if (c < 0x20) sbuf_appendf(&o, "\\u%04x", c);
        else sbuf_appendf(&o, "%c", c);
      }
      sbuf_appendf(&o, "\"}");
      free(body);
      body = nb;
      len = o.len;
    }
    int rc = http_request(server, "PUT", path, body, len, api_key);
    free(body);
    return rc;
  }
  if (strcmp(cmd, "promote") && strcmp(cmd, "rollback") && strcmp(cmd, "pause") && strcmp(cmd, "resume")) {
    fprintf(stderr, "inferd traffic: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
  }
  sbuf_appendf(&p, "/%s", cmd);
  char rb[2048];
  sbuf o;
  sbuf_init(&o, rb, sizeof rb);
  if (reason) {
    sbuf_appendf(&o, "{\"reason\": \"");
    for (const char *r = reason; *r && o.len < sizeof rb - 16; r++) {
      unsigned char c = (unsigned char)*r;
      if (c == '"' || c == '\\') sbuf_appendf(&o, "\\%c", c);
      else if (c < 0x20) sbuf_appendf(&o, "\\u%04x", c);
      else sbuf_appendf(&o, "%c", c);
    }
    sbuf_appendf(&o, "\"}");
  }
  return http_request(server, "POST", path, rb, o.len, api_key);
}
