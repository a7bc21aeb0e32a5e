/* security/token_cli: `inferd token verify --jwks FILE|--secret-file FILE [...] TOKEN|-`: verifies
 * one token with security/token and prints {"principal", "kind", "scopes", "expires_at"}. */
#include "security/token_cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "security/token.h"

static void token_cli_usage(FILE *f) {
  fprintf(f,
          "usage: inferd token verify (--jwks FILE | --secret-file FILE)... [options] TOKEN|-\n"
          "  --jwks FILE          JWKS document with the RS256 / ES256 public keys\n"
          "  --secret-file FILE   HS256 shared secret (the file's bytes, a final newline dropped)\n"
          "  --issuer ISS         require \"iss\" to be ISS\n"
          "  --audience AUD       require \"aud\" to be or contain AUD\n"
          "  --scope-claim NAME   take scopes from claim NAME (default: \"scope\", else \"scp\")\n"
          "  --leeway SECONDS     clock skew allowed for exp and nbf (default 30)\n"
          "  --max-bytes N        largest token accepted (default 8192)\n"
          "  --now UNIX_SECONDS   verify as at this time instead of now\n"
          "TOKEN '-' reads the token from standard input (keeps it out of the process list).\n"
          "Prints the principal as JSON and exits 0; exits 1 with the reason when it is refused.\n");
}

static int token_cli_num(const char *opt, const char *s, long long lo, long long hi, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "inferd token: %s must be an integer from %lld to %lld\n", opt, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

/* The token from stdin: one line, surrounding whitespace dropped; NULL when over max. */
static char *token_cli_stdin(size_t max) {
  char *buf = malloc(max + 2);
  if (buf == NULL) return NULL;
  size_t n = fread(buf, 1, max + 1, stdin);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) n--;
  buf[n] = '\0';
  return buf;
}

int token_cli_main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "verify") != 0) {
    bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    token_cli_usage(help ? stdout : stderr);
    return help ? 0 : 2;
  }
  argc--;
  argv++;
  static const struct option opts[] = {
      {"jwks", required_argument, NULL, 'j'},     {"secret-file", required_argument, NULL, 's'},
      {"issuer", required_argument, NULL, 'i'},   {"audience", required_argument, NULL, 'a'},
      {"scope-claim", required_argument, NULL, 'c'}, {"leeway", required_argument, NULL, 'l'},
      {"max-bytes", required_argument, NULL, 'm'}, {"now", required_argument, NULL, 'n'},
      {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
  };
  const char *jwks = NULL, *secret = NULL;
  token_options o = {0};
  long long now = (long long)time(NULL), v;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case 'j': jwks = optarg; break;
      case 's': secret = optarg; break;
      case 'i': o.issuer = optarg; break;
      case 'a': o.audience = optarg; break;
      case 'c': o.scope_claim = optarg; break;
      case 'l':
        if (token_cli_num("--leeway", optarg, 0, 86400, &v) != 0) return 2;
        o.leeway_s = v == 0 ? -1 : v; /* token_options: 0 means the default, negative none */
        break;
      case 'm':
        if (token_cli_num("--max-bytes", optarg, 16, 1 << 20, &v) != 0) return 2;
        o.max_token_bytes = (size_t)v;
        break;
      case 'n':
        if (token_cli_num("--now", optarg, 0, 253402300799LL, &now) != 0) return 2;
        break;
      case 'h': token_cli_usage(stdout); return 0;
      default: token_cli_usage(stderr); return 2;
    }
  }
  if ((jwks == NULL && secret == NULL) || optind != argc - 1) {
    token_cli_usage(stderr);
    return 2;
  }
  token_keyset *ks;
  inferd_status st = token_keyset_load(jwks, secret, &ks);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "inferd token: %s\n", st.msg);
    return 1;
  }
  char *from_stdin = NULL;
  const char *tok = argv[optind];
  if (strcmp(tok, "-") == 0) {
    tok = from_stdin = token_cli_stdin(o.max_token_bytes ? o.max_token_bytes : TOKEN_DEFAULT_MAX_BYTES);
    if (tok == NULL) {
      token_keyset_free(ks);
      fprintf(stderr, "inferd token: out of memory\n");
      return 1;
    }
  }
  principal *p;
  st = token_verify(ks, &o, tok, now, &p);
  free(from_stdin);
  token_keyset_free(ks);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "inferd token: refused: %s\n", st.msg);
    return 1;
  }
  json_t *scopes = json_array();
  for (size_t i = 0; i < p->n_scopes; i++) json_array_append_new(scopes, json_string(p->scopes[i]));
  json_t *doc = json_pack("{s:s, s:s, s:o, s:I}", "principal", p->name, "kind", principal_kind_name(p->kind), "scopes", scopes,
                          "expires_at", (json_int_t)p->expires_at);
  char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  principal_unref(p);
  if (text == NULL) {
    fprintf(stderr, "inferd token: out of memory\n");
    return 1;
  }
  printf("%s\n", text);
  free(text);
  return 0;
}
