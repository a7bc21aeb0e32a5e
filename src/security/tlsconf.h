/* security/tlsconf: the server's TLS configuration (certificate chain, key, client CA, client
 * certificate mode) read from files into one OpenSSL context that the HTTP port's connections
 * share, and the same PEM bytes for gRPC core's credentials; reloaded on SIGHUP, swapped
 * atomically so open connections keep the context they started with. */
#ifndef INFERD_TLSCONF_H
#define INFERD_TLSCONF_H

#include <openssl/ssl.h>
#include <stdint.h>

#include "core/status.h"

typedef enum {
  TLSCONF_CLIENT_NONE,     /* no client certificate asked for (no --tls-client-ca) */
  TLSCONF_CLIENT_OPTIONAL, /* asked for; none: accepted, no subject; an invalid one: refused */
  TLSCONF_CLIENT_REQUIRED, /* a valid one is needed to connect */
} tlsconf_client_auth;

typedef struct tlsconf_options {
  const char *cert_file;      /* PEM: the server certificate, then its intermediates */
  const char *key_file;       /* PEM: its private key */
  const char *client_ca_file; /* PEM: CAs that sign client certificates; NULL: no mTLS */
  tlsconf_client_auth client_auth; /* ignored (NONE) without client_ca_file */
} tlsconf_options;

typedef struct tlsconf tlsconf;

/* Reads and checks the files (the key matches the certificate, the CA file holds at least one
 * certificate); INVALID_ARGUMENT naming the file and what is wrong. */
inferd_status tlsconf_create(const tlsconf_options *o, tlsconf **out);
/* Reads the same files again; on success new connections (HTTP and gRPC) take the new
 * certificates, open ones keep theirs; on failure the old configuration stays and the status
 * says why. Any thread. */
inferd_status tlsconf_reload(tlsconf *t);
/* After every user of t (the frontends) is gone. */
void tlsconf_destroy(tlsconf *t);

tlsconf_client_auth tlsconf_client_mode(const tlsconf *t);

/* A server-side SSL for an accepted socket from the current context (it holds a reference to
 * that context, so a reload never frees it under the connection); NULL when out of memory. */
SSL *tlsconf_new_ssl(tlsconf *t, int fd);

/* The client certificate's subject as RFC 2253 text ("CN=alice,O=Example"), malloc'd, when the
 * handshake asked for one and it verified against the client CA; NULL otherwise. */
char *tlsconf_peer_subject(SSL *ssl);

/* How many times the configuration has loaded (1 after create): a consumer that keeps its own
 * copy (gRPC's credentials) compares it with the one it last took. */
uint64_t tlsconf_generation(tlsconf *t);
/* Copies of the current PEM texts (each malloc'd, NUL-terminated; client_ca NULL without mTLS)
 * and their generation; false when out of memory. */
bool tlsconf_pem(tlsconf *t, uint64_t *generation, char **cert_chain, char **key, char **client_ca);
/* Frees tlsconf_pem's copies, wiping the key's. */
void tlsconf_pem_free(char *cert_chain, char *key, char *client_ca);

#endif
