/* `inferd tokenize --tokenizer FILE`: text on stdin to a JSON array of ids on stdout; with
 * --decode, a JSON array of ids on stdin to the text as a JSON string; with --stream, that text
 * as the JSON array of pieces incremental decoding gives, one per id. --batch: a JSON array of
 * inputs on stdin, a JSON array of the outputs on stdout (one process for a whole test corpus). */
#include "generate/tokenize_cli.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate/tokenizer.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: inferd tokenize --tokenizer FILE [--decode [--stream] [--skip-special-tokens]]\n"
          "  text on stdin -> its ids as a JSON array on stdout\n"
          "  --decode                a JSON array of ids on stdin -> the text as a JSON string\n"
          "  --stream                with --decode: the JSON array of the pieces incremental\n"
          "                          decoding gives (one per id, then what finishing adds)\n"
          "  --skip-special-tokens   with --decode: leave special tokens out\n"
          "  --batch                 stdin is a JSON array of inputs (texts, or id arrays with\n"
          "                          --decode); stdout the JSON array of their outputs\n");
}

/* All of stdin, up to limit bytes (one more is an error). */
static char *read_stdin(size_t limit, size_t *len) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (n == cap) {
      char *grown = cap > limit ? NULL : realloc(buf, cap * 2);
      if (!grown) break;
      buf = grown;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, stdin);
    n += got;
    if (got == 0) {
      if (ferror(stdin) || n > limit) break;
      *len = n;
      return buf;
    }
  }
  free(buf);
  return NULL;
}

static int encode_text(const tokenizer *t, const char *text, size_t len) {
  uint32_t *ids;
  size_t n;
  inferd_status st = tokenizer_encode(t, text, len, &ids, &n);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "inferd tokenize: %s\n", st.msg);
    return 1;
  }
  putchar('[');
  for (size_t i = 0; i < n; i++) printf(i ? ",%u" : "%u", ids[i]);
  putchar(']');
  free(ids);
  return 0;
}

static int print_json_string(const char *s, size_t len) {
  json_t *j = json_stringn(s, len);
  char *out = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  if (!out) return 1;
  fputs(out, stdout);
  free(out);
  return 0;
}

static int decode_ids(const tokenizer *t, const json_t *arr, bool stream, bool skip_special) {
  if (!json_is_array(arr)) {
    fprintf(stderr, "inferd tokenize: --decode reads a JSON array of ids\n");
    return 1;
  }
  size_t n = json_array_size(arr);
  uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
  for (size_t i = 0; ids && i < n; i++) {
    const json_t *v = json_array_get(arr, i);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX) {
      fprintf(stderr, "inferd tokenize: [%zu] is not an id (an integer from 0 to %u)\n", i, UINT32_MAX);
      free(ids);
      return 1;
    }
    ids[i] = (uint32_t)json_integer_value(v);
  }
  if (!ids) return 1;
  int rc = 0;
  if (stream) {
    static char piece[TOKENIZER_STREAM_MAX_OUT];
    tokenizer_stream s;
    tokenizer_stream_init(&s, t, skip_special);
    putchar('[');
    for (size_t i = 0; i <= n && rc == 0; i++) {
      size_t plen;
      if (i < n)
        tokenizer_stream_push(&s, ids[i], piece, sizeof piece, &plen);
      else
        tokenizer_stream_finish(&s, piece, sizeof piece, &plen);
      if (i) putchar(',');
      rc = print_json_string(piece, plen);
    }
    putchar(']');
  } else {
    char *out;
    size_t out_len;
    inferd_status st = tokenizer_decode(t, ids, n, skip_special, &out, &out_len);
    if (!status_is_ok(&st)) {
      fprintf(stderr, "inferd tokenize: %s\n", st.msg);
      rc = 1;
    } else {
      rc = print_json_string(out, out_len);
      free(out);
    }
  }
  free(ids);
  return rc;
}

static int run(const tokenizer *t, bool do_decode, bool stream, bool skip, bool batch) {
  size_t len;
  char *in = read_stdin(do_decode || batch ? 64u << 20 : TOKENIZER_MAX_INPUT_BYTES, &len);
  if (!in) {
    fprintf(stderr, "inferd tokenize: cannot read stdin (or it is too long)\n");
    return 1;
  }
  if (!do_decode && !batch) {
    int rc = encode_text(t, in, len);
    free(in);
    putchar('\n');
    return rc;
  }
  json_error_t err;
  json_t *doc = json_loadb(in, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  free(in);
  if (!doc || (batch && !json_is_array(doc))) {
    fprintf(stderr, "inferd tokenize: stdin is not %s\n", batch ? "a JSON array" : "JSON");
    json_decref(doc);
    return 1;
  }
  int rc = 0;
  if (!batch) {
    rc = decode_ids(t, doc, stream, skip);
  } else {
    putchar('[');
    for (size_t i = 0; i < json_array_size(doc) && rc == 0; i++) {
      const json_t *item = json_array_get(doc, i);
      if (i) putchar(',');
      if (do_decode)
        rc = decode_ids(t, item, stream, skip);
      else if (json_is_string(item))
        rc = encode_text(t, json_string_value(item), json_string_length(item));
      else {
        fprintf(stderr, "inferd tokenize: [%zu] is not a string\n", i);
        rc = 1;
      }
    }
    putchar(']');
  }
  json_decref(doc);
  putchar('\n');
  return rc;
}

int tokenize_cli_main(int argc, char **argv) {
  static const struct option opts[] = {{"tokenizer", required_argument, NULL, 't'},
                                       {"decode", no_argument, NULL, 'd'},
                                       {"stream", no_argument, NULL, 's'},
                                       {"skip-special-tokens", no_argument, NULL, 'k'},
                                       {"batch", no_argument, NULL, 'b'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *path = NULL;
  bool do_decode = false, stream = false, skip = false, batch = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 't': path = optarg; break;
    case 'd': do_decode = true; break;
    case 's': stream = true; break;
    case 'k': skip = true; break;
    case 'b': batch = true; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!path || optind != argc || ((stream || skip) && !do_decode)) {
    usage(stderr);
    return 2;
  }
  tokenizer *t;
  inferd_status st = tokenizer_load_file(path, &t);
  if (!status_is_ok(&st)) {
    fprintf(stderr, "inferd tokenize: %s\n", st.msg);
    return 1;
  }
  int rc = run(t, do_decode, stream, skip, batch);
  tokenizer_destroy(t);
  return rc;
}
