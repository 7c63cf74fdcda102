/* SPDX-License-Identifier: MIT */
/*
 * Deadlines on state changes (the "deadline" extension), the device's
 * side, as pure logic: the caller passes the time and the estimates. The
 * core (device.c) walks a request with it; tests drive it with made-up
 * clocks.
 *
 * A request to go to req within deadline_ns of start_ns is planned as the
 * state machine's path; before each arc the estimate of what is left of
 * the path (that arc and the rest) must fit in what is left of the
 * deadline, else the request is refused with ETIME and the arc is not
 * started. An arc started completes; the overrun is how late the last one
 * ended.
 */
#ifndef DEVMIG_LIB_DEADLINE_H
#define DEVMIG_LIB_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

#include "devmig/migration.h"

struct devmig_deadline_plan {
	uint64_t start_ns, deadline_ns;
	unsigned narcs, done;            /* arcs in the path; arcs completed */
	enum devmig_state from[DEVMIG_FSM_MAX_PATH], to[DEVMIG_FSM_MAX_PATH];
	uint64_t est[DEVMIG_FSM_MAX_PATH];
	bool partial;                    /* some estimate left a part out */
	uint64_t refused_ns;             /* when admission refused an arc (0: never) */
};

/* One arc's estimate in ns; *partial when part of it is unknown. */
typedef uint64_t (*devmig_arc_estimate_fn)(void *opaque, enum devmig_state from,
					   enum devmig_state to, bool *partial);

/* The path cur -> req with each arc's estimate. 0, or the FSM's refusal. */
enum devmig_fsm_err devmig_deadline_plan_init(struct devmig_deadline_plan *p, uint64_t start_ns,
					      uint64_t deadline_ns, uint32_t cur, uint32_t req,
					      uint64_t caps, devmig_arc_estimate_fn est,
					      void *opaque);
/* The estimate of the arcs not done yet (saturating). */
uint64_t devmig_deadline_plan_left(const struct devmig_deadline_plan *p);
/* A refused plan's projected time from receipt: what had elapsed when it
 * was refused plus what was left. Greater than the deadline by definition. */
uint64_t devmig_deadline_plan_needed(const struct devmig_deadline_plan *p);
/* May the next arc start at now: does what is left fit before the deadline? */
bool devmig_deadline_plan_admit(const struct devmig_deadline_plan *p, uint64_t now);
/* How late at now (0: in time). */
uint64_t devmig_deadline_overrun(uint64_t start_ns, uint64_t deadline_ns, uint64_t now);

/*
 * The core's estimate of an arc: the variant's fixed cost, and for an arc
 * into STOP_COPY the stop-copy bytes at rate bytes/s (rate 0: unknown,
 * *partial set when there are bytes).
 */
uint64_t devmig_arc_default_estimate(uint64_t fixed_ns, enum devmig_state to,
				     uint64_t stop_copy_bytes, uint64_t rate, bool *partial);

#endif /* DEVMIG_LIB_DEADLINE_H */
