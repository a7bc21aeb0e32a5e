/* The scheduler: each model version has a bounded queue (with priority levels); a fixed set of
 * worker threads takes work from the queues, at most instance_count runs of a version at once,
 * forming batches when the version has dynamic batching. Requests whose deadline passes, or
 * whose client leaves, while they wait are answered without running. No frontend thread
 * ever waits for a model. */
#ifndef INFERD_SCHEDULER_H
#define INFERD_SCHEDULER_H

#include "core/infer.h"

#define SCHED_DEFAULT_MAX_QUEUE 1024

typedef struct scheduler scheduler;

inferd_status sched_create(int n_workers, scheduler **out);
/* Takes the request (validated; priority within the model's levels); its on_done runs later
 * on a worker thread, exactly once. A full queue answers RESOURCE_EXHAUSTED at once.
 * req->background work (no client waits for it) goes to a queue of its own that only the
 * scheduler's one background worker takes: a thread at nice 19 and SCHED_IDLE, so that the
 * kernel preempts it the moment a live thread has work, instead of a live request queueing
 * behind a run already under way. It still counts against the version's instance_count. */
void sched_submit(scheduler *s, infer_request *req);
/* A version's queue lives and dies with the version. Fails what is queued for mv (UNAVAILABLE
 * with msg): an unload whose drain timeout passed. */
void sched_fail_queued(scheduler *s, model_version *mv, const char *msg);
/* Frees mv's queue; called when nothing holds mv any more (so nothing is queued or running). */
void sched_forget_version(scheduler *s, model_version *mv);
/* Waits for the runs under way, fails what is still queued (UNAVAILABLE: shutting down),
 * and frees the scheduler. Every request submitted has had its on_done called after it. */
void sched_destroy(scheduler *s);

#endif
