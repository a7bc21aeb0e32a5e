/* /docs (Swagger UI) and /redoc (ReDoc): two small pages over /openapi.json, with the browser
 * assets served from the npm packages scripts/bootstrap.sh installs into web/node_modules
 * (swagger-ui-dist, redoc): nothing is fetched from a CDN. The assets are looked up in
 * $INFERD_UI_ASSETS, else web/node_modules beside the binary's build folder, else under the
 * working directory. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontends/http/routes.h"
#include "util/fs.h"

static const char SWAGGER_HTML[] =
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>inferd API - Swagger UI</title>\n"
    "<link rel=\"stylesheet\" href=\"/docs/swagger-ui.css\">\n"
    "<link rel=\"icon\" type=\"image/png\" href=\"/docs/favicon-32x32.png\">\n"
    "</head>\n<body>\n<div id=\"swagger-ui\"></div>\n"
    "<script src=\"/docs/swagger-ui-bundle.js\"></script>\n"
    "<script>\n"
    "window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true,\n"
    "  validatorUrl: null, displayRequestDuration: true, tryItOutEnabled: false});\n"
    "</script>\n</body>\n</html>\n";

static const char REDOC_HTML[] =
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>inferd API - ReDoc</title>\n"
    "<style>body { margin: 0; padding: 0; }</style>\n"
    "</head>\n<body>\n<redoc spec-url=\"/openapi.json\"></redoc>\n"
    "<script src=\"/redoc/redoc.standalone.js\"></script>\n</body>\n</html>\n";

static void reply_text(http_call *c, const char *type, const char *text, size_t len) {
  c->body = evbuffer_new();
  if (c->body) evbuffer_add(c->body, text, len);
  c->status = 200;
  c->content_type = type;
  c->header_len = -1;
  http_call_add_reply_header(c, "Cache-Control", "no-cache");
  /* Everything comes from this server: the browser refuses anything else (ReDoc's footer
   * would otherwise fetch its logo from a CDN). Inline styles and the init script are ours. */
  http_call_add_reply_header(c, "Content-Security-Policy",
                             "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
                             "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
                             "frame-ancestors 'none'; base-uri 'self'; form-action 'self'");
  /* no framing (clickjacking), no content sniffing, no Referer with the page's URL elsewhere */
  http_call_add_reply_header(c, "X-Frame-Options", "DENY");
  http_call_add_reply_header(c, "X-Content-Type-Options", "nosniff");
  http_call_add_reply_header(c, "Referrer-Policy", "no-referrer");
  http_call_reply(c);
}

void docs_swagger_ui(void *call, const route_params *p) {
  (void)p;
  reply_text(call, "text/html; charset=utf-8", SWAGGER_HTML, sizeof SWAGGER_HTML - 1);
}

void docs_redoc(void *call, const route_params *p) {
  (void)p;
  reply_text(call, "text/html; charset=utf-8", REDOC_HTML, sizeof REDOC_HTML - 1);
}

/* The node_modules folder holding the assets, into buf; false when none is found. */
static bool assets_dir(char *buf, size_t len) {
  const char *env = getenv("INFERD_UI_ASSETS");
  if (env && *env) {
    snprintf(buf, len, "%s", env);
    return fs_is_dir(buf);
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0'; /* the binary's folder, e.g. <repo>/build */
    snprintf(buf, len, "%s/../web/node_modules", exe);
    if (fs_is_dir(buf)) return true;
  }
  snprintf(buf, len, "web/node_modules");
  return fs_is_dir(buf);
}

void docs_asset(void *call, const route_params *p) {
  (void)p;
  http_call *c = call;
  static const struct {
    const char *path, *file, *type;
  } assets[] = {
      {"/docs/swagger-ui.css", "swagger-ui-dist/swagger-ui.css", "text/css; charset=utf-8"},
      {"/docs/swagger-ui-bundle.js", "swagger-ui-dist/swagger-ui-bundle.js", "application/javascript; charset=utf-8"},
      {"/docs/favicon-32x32.png", "swagger-ui-dist/favicon-32x32.png", "image/png"},
      {"/redoc/redoc.standalone.js", "redoc/bundles/redoc.standalone.js", "application/javascript; charset=utf-8"},
  };
  inferd_status st;
  for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
    size_t n = strlen(assets[i].path);
    if (strncmp(c->path, assets[i].path, n) != 0 || (c->path[n] != '\0' && strcmp(c->path + n, "/") != 0)) continue;
    char dir[PATH_MAX - 64], file[PATH_MAX];
    if (!assets_dir(dir, sizeof dir)) {
      st = status_make(INFERD_NOT_FOUND, "the documentation assets are not installed (npm ci in web/, which scripts/bootstrap.sh runs; or set INFERD_UI_ASSETS)");
      http_call_reply_error(c, &st);
      return;
    }
    snprintf(file, sizeof file, "%s/%s", dir, assets[i].file);
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
      if (fd >= 0) close(fd);
      st = status_make(INFERD_NOT_FOUND, "documentation asset %s is missing (npm ci in web/)", assets[i].file);
      http_call_reply_error(c, &st);
      return;
    }
    c->body = evbuffer_new();
    /* the buffer reads the file as it goes out (sendfile or mmap), so the loop never copies it */
    if (c->body == NULL || evbuffer_add_file(c->body, fd, 0, sb.st_size) != 0) {
      if (c->body == NULL) close(fd);
      st = status_make(INFERD_INTERNAL, "cannot read %s", assets[i].file);
      http_call_reply_error(c, &st);
      return;
    }
    c->status = 200;
    c->content_type = assets[i].type;
    c->header_len = -1;
    http_call_add_reply_header(c, "Cache-Control", "public, max-age=3600");
    http_call_add_reply_header(c, "X-Content-Type-Options", "nosniff");
    http_call_reply(c);
    return;
  }
  st = status_make(INFERD_NOT_FOUND, "no asset %s", c->path);
  http_call_reply_error(c, &st);
}
