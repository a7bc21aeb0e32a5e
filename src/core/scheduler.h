/* The scheduler: requests wait in a queue and a fixed set of worker threads runs them, so no
 * frontend thread ever waits for a model. */
#ifndef INFERD_SCHEDULER_H
#define INFERD_SCHEDULER_H

#include "core/infer.h"

typedef struct scheduler scheduler;

inferd_status sched_create(int n_workers, scheduler **out);
/* Takes the request; its on_done runs later on a worker thread, exactly once. */
void sched_submit(scheduler *s, infer_request *req);
/* Waits for the runs under way, fails what is still queued (UNAVAILABLE: shutting down),
 * and frees the scheduler. Every request submitted has had its on_done called after it. */
void sched_destroy(scheduler *s);

#endif
