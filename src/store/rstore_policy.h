/* store/rstore_policy: the Redis connection's pure parts: the --redis-url parser, the
 * reconnect backoff and the connected/fallback state machine. No I/O, no clock, no lock, so the
 * unit tests drive them with made-up times and events. */
#ifndef INFERD_RSTORE_POLICY_H
#define INFERD_RSTORE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* redis://[[user]:password@]host[:port][/db]. The password is kept for AUTH and never printed:
 * rstore_url_redacted shows it as "***". */
typedef struct rstore_url {
  char host[256];
  int port;           /* 6379 when absent */
  char user[128];     /* empty: AUTH with the password alone (Redis < 6 style) */
  char password[256]; /* empty: no AUTH */
  int db;             /* 0 when absent */
} rstore_url;

/* INVALID_ARGUMENT naming what is wrong (never echoing the password). */
inferd_status rstore_url_parse(const char *text, rstore_url *out);
/* "redis://:***@host:port/db" (or without the credential part): for logs and /health. */
void rstore_url_redacted(const rstore_url *u, char *buf, size_t cap);

/* The wait before reconnect attempt `attempt` (0 for the first after a loss): 100 ms doubling
 * to 2 s, each scaled by a jitter in [0.5, 1.0) (jitter01 in [0, 1)) so replicas that lost the
 * same Redis do not knock on it in step. */
int64_t rstore_backoff_ms(int attempt, double jitter01);

/* The connection as the features see it. UP: commands go to Redis. DOWN: they fail at once
 * (UNAVAILABLE) and every feature uses its local state. A connection is DOWN from its start
 * until a PING answers; it goes DOWN on a disconnect, and when `max_timeouts` commands in a row
 * time out (a Redis that accepts but does not answer is as good as gone, and each request would
 * otherwise pay the whole timeout). */
typedef enum { RSTORE_DOWN = 0, RSTORE_UP = 1 } rstore_link;

typedef enum {
  RSTORE_EV_READY,      /* connected, authenticated, PING answered */
  RSTORE_EV_LOST,       /* the connection closed or failed to open */
  RSTORE_EV_REPLY,      /* a command was answered (an error reply included: Redis is there) */
  RSTORE_EV_TIMEOUT,    /* a command got no answer in its time */
} rstore_event;

typedef struct rstore_fsm {
  rstore_link link;
  int timeouts_in_row;
  int max_timeouts; /* >= 1 */
} rstore_fsm;

/* Applies ev; true when the link changed (the caller logs once per transition and, on a
 * DOWN by timeouts, drops the connection to reconnect). */
bool rstore_fsm_step(rstore_fsm *f, rstore_event ev);

#endif
