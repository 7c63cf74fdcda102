/* SPDX-License-Identifier: MIT */
/* Deadlines on state changes: planning and admission (deadline.h). */
#include <string.h>

#include "deadline.h"
#include "pace.h"

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

enum devmig_fsm_err devmig_deadline_plan_init(struct devmig_deadline_plan *p, uint64_t start_ns,
					      uint64_t deadline_ns, uint32_t cur, uint32_t req,
					      uint64_t caps, devmig_arc_estimate_fn est,
					      void *opaque)
{
	enum devmig_state path[DEVMIG_FSM_MAX_PATH];
	size_t n;

	memset(p, 0, sizeof(*p));
	p->start_ns = start_ns;
	p->deadline_ns = deadline_ns;
	enum devmig_fsm_err err = devmig_fsm_path(cur, req, caps, path, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		bool partial = false;
		p->from[i] = i ? path[i - 1] : (enum devmig_state)cur;
		p->to[i] = path[i];
		p->est[i] = est(opaque, p->from[i], p->to[i], &partial);
		p->partial |= partial;
	}
	p->narcs = (unsigned)n;
	return DEVMIG_FSM_OK;
}

uint64_t devmig_deadline_plan_left(const struct devmig_deadline_plan *p)
{
	uint64_t left = 0;
	for (unsigned i = p->done; i < p->narcs; i++)
		left = add_sat(left, p->est[i]);
	return left;
}

uint64_t devmig_deadline_plan_needed(const struct devmig_deadline_plan *p)
{
	uint64_t elapsed = p->refused_ns > p->start_ns ? p->refused_ns - p->start_ns : 0;
	return add_sat(elapsed, devmig_deadline_plan_left(p));
}

bool devmig_deadline_plan_admit(const struct devmig_deadline_plan *p, uint64_t now)
{
	uint64_t end = add_sat(p->start_ns, p->deadline_ns);
	return add_sat(now, devmig_deadline_plan_left(p)) <= end;
}

uint64_t devmig_deadline_overrun(uint64_t start_ns, uint64_t deadline_ns, uint64_t now)
{
	uint64_t end = add_sat(start_ns, deadline_ns);
	return now > end ? now - end : 0;
}

uint64_t devmig_arc_default_estimate(uint64_t fixed_ns, enum devmig_state to,
				     uint64_t stop_copy_bytes, uint64_t rate, bool *partial)
{
	if (to != DEVMIG_STATE_STOP_COPY || !stop_copy_bytes)
		return fixed_ns;
	if (!rate) {
		*partial = true;
		return fixed_ns;
	}
	return add_sat(fixed_ns, devmig_muldiv(stop_copy_bytes, 1000000000ull, rate));
}
