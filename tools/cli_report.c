/* SPDX-License-Identifier: MIT */
/* A migration's outcome as the commands tell it (cli_report.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_report.h"

const char *cli_state_name(int state)
{
	return state == DEVMIG_STATE_UNKNOWN ? "unknown" : devmig_state_name((enum devmig_state)state);
}

/* After "source device " or "destination device " at s, the index and its end. */
static const char *device_ref(const char *s, const char *what, unsigned long *idx)
{
	size_t l = strlen(what);
	char *end;

	if (strncmp(s, what, l) || !isdigit((unsigned char)s[l]))
		return NULL;
	*idx = strtoul(s + l, &end, 10);
	return end;
}

void cli_print_error(const char *cmd, const char *error, char *const *src, unsigned nsrc,
		     char *const *dst, unsigned ndst)
{
	char out[2048];
	size_t o = 0;

	if (!error || !error[0])
		error = "failed without saying why";
	for (const char *s = error; *s && o + 1 < sizeof(out);) {
		unsigned long idx;
		const char *end;
		char *const *paths = NULL;
		unsigned np = 0;

		if ((end = device_ref(s, "source device ", &idx)))
			paths = src, np = nsrc;
		else if ((end = device_ref(s, "destination device ", &idx)))
			paths = dst, np = ndst;
		if (end && paths && idx < np) {
			int k = snprintf(out + o, sizeof(out) - o, "%.*s (%s)", (int)(end - s), s,
					 paths[idx]);
			if (k < 0 || (size_t)k >= sizeof(out) - o)
				break;
			o += (size_t)k;
			s = end;
			continue;
		}
		out[o++] = *s++;
	}
	out[o < sizeof(out) ? o : sizeof(out) - 1] = '\0';
	fprintf(stderr, "devmig %s: %s\n", cmd, out);
}

void cli_note_states(struct devmig_migration_report *r, unsigned nsrc, unsigned ndst)
{
	size_t l = strlen(r->error);
	const char *sep = "; left: ";

	for (unsigned side = 0; side < 2; side++) {
		unsigned n = side ? ndst : nsrc;
		for (unsigned i = 0; i < n && i < DEVMIG_ENGINE_MAX_DEVICES; i++) {
			int st = side ? r->dst_state[i] : r->src_state[i];
			if (l < sizeof(r->error))
				l += (size_t)snprintf(r->error + l, sizeof(r->error) - l, "%s%s device %u %s",
						      sep, side ? "destination" : "source", i,
						      cli_state_name(st));
			sep = ", ";
		}
	}
}

void cli_note_timeout(struct devmig_migration_report *r, int rc, unsigned seconds)
{
	if (rc != -EAGAIN && rc != -EWOULDBLOCK && rc != -ETIMEDOUT)
		return;
	if (!strcmp(r->error, strerror(EAGAIN)) || !strcmp(r->error, strerror(ETIMEDOUT))) {
		snprintf(r->error, sizeof(r->error), "the peer sent nothing for %u s (--timeout)",
			 seconds);
		return;
	}
	if (strstr(r->error, "--timeout"))
		return;
	size_t l = strlen(r->error);
	snprintf(r->error + l, sizeof(r->error) - l, " (a step took over %u s: --timeout)",
		 seconds);
}

static json_object *states_json(const int *states, unsigned n)
{
	json_object *a = json_object_new_array();
	for (unsigned i = 0; i < n && i < DEVMIG_ENGINE_MAX_DEVICES; i++)
		json_object_array_add(a, json_object_new_string(cli_state_name(states[i])));
	return a;
}

json_object *cli_report_json(const struct devmig_migration_report *r, bool ok, unsigned nsrc,
			     unsigned ndst)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	json_object_object_add(o, "error", ok || !r->error[0] ? NULL
							    : json_object_new_string(r->error));
	json_object_object_add(o, "completed", json_object_new_boolean(r->completed));
	json_object_object_add(o, "outcome_unknown", json_object_new_boolean(r->outcome_unknown));
	json_object_object_add(o, "devices", json_object_new_int64(r->devices));
	json_object_object_add(o, "rounds", json_object_new_int64(r->rounds));
	json_object_object_add(o, "precopy", json_object_new_boolean(r->precopy));
	json_object_object_add(o, "device_bytes", json_object_new_int64((int64_t)r->device_bytes));
	json_object_object_add(o, "guest_bytes", json_object_new_int64((int64_t)r->guest_bytes));
	json_object_object_add(o, "device_state_bytes",
			       json_object_new_int64((int64_t)r->device_state_bytes));
	json_object_object_add(o, "stop_copy_bytes",
			       json_object_new_int64((int64_t)r->stop_copy_bytes));
	json_object_object_add(o, "total_ns", json_object_new_int64((int64_t)r->total_ns));
	json_object_object_add(o, "downtime_ns", json_object_new_int64((int64_t)r->downtime_ns));
	json_object_object_add(o, "throughput_bytes_per_s", json_object_new_double(r->throughput));
	json_object_object_add(o, "budget_ns", json_object_new_int64((int64_t)r->budget_ns));
	json_object_object_add(o, "budget_met", json_object_new_boolean(r->budget_met));
	json_object_object_add(o, "converged", json_object_new_boolean(r->converged));
	json_object_object_add(o, "deadlines", json_object_new_boolean(r->deadlines));
	json_object_object_add(o, "deadline_refusals", json_object_new_int64(r->deadline_refusals));
	json_object_object_add(o, "refusal_estimate_ns",
			       json_object_new_int64((int64_t)r->refusal_estimate_ns));
	json_object_object_add(o, "refusal_deadline_ns",
			       json_object_new_int64((int64_t)r->refusal_deadline_ns));
	json_object_object_add(o, "overrun_ns", json_object_new_int64((int64_t)r->overrun_ns));
	json_object_object_add(o, "throttle_cap_bytes_per_s",
			       json_object_new_int64((int64_t)r->throttle_cap));
	json_object_object_add(o, "throttle_ns", json_object_new_int64((int64_t)r->throttle_ns));
	json_object_object_add(o, "throttle_steps", json_object_new_int64(r->throttle_steps));
	json_object_object_add(o, "source_states", states_json(r->src_state, nsrc));
	json_object_object_add(o, "destination_states", states_json(r->dst_state, ndst));
	return o;
}
