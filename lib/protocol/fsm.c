/* SPDX-License-Identifier: MIT */
/*
 * The migration state machine. One table drives everything, as in the
 * kernel's vfio_mig_get_next_state(): no transition is special-cased.
 */
#include <strings.h>

#include "devmig/migration.h"

#define S(x) DEVMIG_STATE_##x

/* next_hop[cur][req]: the next single arc from cur towards req. */
static const uint8_t next_hop[DEVMIG_STATE_COUNT][DEVMIG_STATE_COUNT] = {
	[S(STOP)] = {
		[S(STOP)] = S(STOP),
		[S(RUNNING)] = S(RUNNING_P2P),
		[S(STOP_COPY)] = S(STOP_COPY),
		[S(RESUMING)] = S(RESUMING),
		[S(RUNNING_P2P)] = S(RUNNING_P2P),
		[S(PRE_COPY)] = S(RUNNING_P2P),
		[S(PRE_COPY_P2P)] = S(RUNNING_P2P),
		[S(ERROR)] = S(ERROR),
	},
	[S(RUNNING)] = {
		[S(STOP)] = S(RUNNING_P2P),
		[S(RUNNING)] = S(RUNNING),
		[S(STOP_COPY)] = S(RUNNING_P2P),
		[S(RESUMING)] = S(RUNNING_P2P),
		[S(RUNNING_P2P)] = S(RUNNING_P2P),
		[S(PRE_COPY)] = S(PRE_COPY),
		[S(PRE_COPY_P2P)] = S(RUNNING_P2P),
		[S(ERROR)] = S(ERROR),
	},
	[S(STOP_COPY)] = {
		[S(STOP)] = S(STOP),
		[S(RUNNING)] = S(STOP),
		[S(STOP_COPY)] = S(STOP_COPY),
		[S(RESUMING)] = S(STOP),
		[S(RUNNING_P2P)] = S(STOP),
		[S(PRE_COPY)] = S(ERROR),
		[S(PRE_COPY_P2P)] = S(ERROR),
		[S(ERROR)] = S(ERROR),
	},
	[S(RESUMING)] = {
		[S(STOP)] = S(STOP),
		[S(RUNNING)] = S(STOP),
		[S(STOP_COPY)] = S(STOP),
		[S(RESUMING)] = S(RESUMING),
		[S(RUNNING_P2P)] = S(STOP),
		[S(PRE_COPY)] = S(STOP),
		[S(PRE_COPY_P2P)] = S(STOP),
		[S(ERROR)] = S(ERROR),
	},
	[S(RUNNING_P2P)] = {
		[S(STOP)] = S(STOP),
		[S(RUNNING)] = S(RUNNING),
		[S(STOP_COPY)] = S(STOP),
		[S(RESUMING)] = S(STOP),
		[S(RUNNING_P2P)] = S(RUNNING_P2P),
		[S(PRE_COPY)] = S(RUNNING),
		[S(PRE_COPY_P2P)] = S(PRE_COPY_P2P),
		[S(ERROR)] = S(ERROR),
	},
	[S(PRE_COPY)] = {
		[S(STOP)] = S(RUNNING),
		[S(RUNNING)] = S(RUNNING),
		[S(STOP_COPY)] = S(PRE_COPY_P2P),
		[S(RESUMING)] = S(RUNNING),
		[S(RUNNING_P2P)] = S(RUNNING),
		[S(PRE_COPY)] = S(PRE_COPY),
		[S(PRE_COPY_P2P)] = S(PRE_COPY_P2P),
		[S(ERROR)] = S(ERROR),
	},
	[S(PRE_COPY_P2P)] = {
		[S(STOP)] = S(RUNNING_P2P),
		[S(RUNNING)] = S(RUNNING_P2P),
		[S(STOP_COPY)] = S(STOP_COPY),
		[S(RESUMING)] = S(RUNNING_P2P),
		[S(RUNNING_P2P)] = S(RUNNING_P2P),
		[S(PRE_COPY)] = S(PRE_COPY),
		[S(PRE_COPY_P2P)] = S(PRE_COPY_P2P),
		[S(ERROR)] = S(ERROR),
	},
	/* The ERROR row is all ERROR (zero-initialised). */
};

/* Capabilities each state needs. ERROR needs only the mandatory flag. */
static const uint64_t state_needs[DEVMIG_STATE_COUNT] = {
	[S(ERROR)] = DEVMIG_MIG_STOP_COPY,
	[S(STOP)] = DEVMIG_MIG_STOP_COPY,
	[S(RUNNING)] = DEVMIG_MIG_STOP_COPY,
	[S(STOP_COPY)] = DEVMIG_MIG_STOP_COPY,
	[S(RESUMING)] = DEVMIG_MIG_STOP_COPY,
	[S(RUNNING_P2P)] = DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P,
	[S(PRE_COPY)] = DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_PRE_COPY,
	[S(PRE_COPY_P2P)] = DEVMIG_MIG_ALL,
};

static const char *const state_names[DEVMIG_STATE_COUNT] = {
	[S(ERROR)] = "ERROR",
	[S(STOP)] = "STOP",
	[S(RUNNING)] = "RUNNING",
	[S(STOP_COPY)] = "STOP_COPY",
	[S(RESUMING)] = "RESUMING",
	[S(RUNNING_P2P)] = "RUNNING_P2P",
	[S(PRE_COPY)] = "PRE_COPY",
	[S(PRE_COPY_P2P)] = "PRE_COPY_P2P",
};

bool devmig_caps_valid(uint64_t caps)
{
	return (caps & DEVMIG_MIG_STOP_COPY) && !(caps & ~DEVMIG_MIG_ALL);
}

bool devmig_state_supported(uint32_t state, uint64_t caps)
{
	if (state >= DEVMIG_STATE_COUNT || !devmig_caps_valid(caps))
		return false;
	return (state_needs[state] & caps) == state_needs[state];
}

enum devmig_fsm_err devmig_fsm_next(uint32_t cur, uint32_t req, uint64_t caps,
				    enum devmig_state *next)
{
	if (!devmig_caps_valid(caps))
		return DEVMIG_FSM_E_CAPS;
	if (cur >= DEVMIG_STATE_COUNT || req >= DEVMIG_STATE_COUNT)
		return DEVMIG_FSM_E_RANGE;
	if (cur == DEVMIG_STATE_ERROR)
		return DEVMIG_FSM_E_CUR_ERROR;
	if (req == DEVMIG_STATE_ERROR)
		return DEVMIG_FSM_E_REQ_ERROR;
	if (!devmig_state_supported(cur, caps) || !devmig_state_supported(req, caps))
		return DEVMIG_FSM_E_UNSUPPORTED;

	/*
	 * Skip interior states the device lacks. ERROR is tested inside the
	 * loop so a forbidden arc ends it; the count bounds it regardless.
	 */
	uint32_t hop = next_hop[cur][req];
	for (int guard = 0; hop != DEVMIG_STATE_ERROR && !devmig_state_supported(hop, caps);
	     guard++) {
		if (guard >= DEVMIG_STATE_COUNT)
			return DEVMIG_FSM_E_FORBIDDEN;
		hop = next_hop[hop][req];
	}
	if (hop == DEVMIG_STATE_ERROR)
		return DEVMIG_FSM_E_FORBIDDEN;
	*next = (enum devmig_state)hop;
	return DEVMIG_FSM_OK;
}

enum devmig_fsm_err devmig_fsm_path(uint32_t cur, uint32_t req, uint64_t caps,
				    enum devmig_state path[DEVMIG_FSM_MAX_PATH],
				    size_t *len)
{
	size_t n = 0;

	*len = 0;
	enum devmig_state at;
	enum devmig_fsm_err err = devmig_fsm_next(cur, req, caps, &at);
	if (err)
		return err;
	for (uint32_t from = cur; from != req; from = at) {
		err = devmig_fsm_next(from, req, caps, &at);
		if (err)
			return err;
		if (n == DEVMIG_FSM_MAX_PATH)
			return DEVMIG_FSM_E_FORBIDDEN; /* cannot happen with the table above */
		path[n++] = at;
	}
	*len = n;
	return DEVMIG_FSM_OK;
}

enum devmig_fsm_err devmig_fsm_path_cost(uint32_t cur, uint32_t req, uint64_t caps,
					 uint64_t (*cost)(void *opaque, enum devmig_state from,
							  enum devmig_state to),
					 void *opaque, uint64_t *total)
{
	enum devmig_state path[DEVMIG_FSM_MAX_PATH];
	size_t n;
	uint64_t sum = 0;
	enum devmig_fsm_err err = devmig_fsm_path(cur, req, caps, path, &n);

	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		uint64_t c = cost(opaque, i ? path[i - 1] : (enum devmig_state)cur, path[i]);
		sum = c > UINT64_MAX - sum ? UINT64_MAX : sum + c;
	}
	*total = sum;
	return DEVMIG_FSM_OK;
}

bool devmig_fsm_is_arc(uint32_t from, uint32_t to, uint64_t caps)
{
	enum devmig_state next;

	if (from == to || devmig_fsm_next(from, to, caps, &next))
		return false;
	return next == to;
}

enum devmig_arc_session devmig_arc_session(uint32_t from, uint32_t to)
{
	/* Only primitive arcs of the full table have a session effect. */
	if (from >= DEVMIG_STATE_COUNT || to >= DEVMIG_STATE_COUNT || from == to ||
	    from == DEVMIG_STATE_ERROR || to == DEVMIG_STATE_ERROR || next_hop[from][to] != to)
		return DEVMIG_ARC_KEEP;
	if (to == S(RESUMING) && from == S(STOP))
		return DEVMIG_ARC_OPEN_LOAD;
	if (from == S(RESUMING) && to == S(STOP))
		return DEVMIG_ARC_END;
	if (devmig_state_is_saving(to) && !devmig_state_is_saving(from))
		return DEVMIG_ARC_OPEN_SAVE;
	if (devmig_state_is_saving(from) && !devmig_state_is_saving(to))
		return DEVMIG_ARC_END;
	return DEVMIG_ARC_KEEP;
}

bool devmig_state_is_saving(uint32_t state)
{
	return state == S(PRE_COPY) || state == S(PRE_COPY_P2P) || state == S(STOP_COPY);
}

bool devmig_state_is_stopped(uint32_t state)
{
	return state == S(STOP) || state == S(STOP_COPY) || state == S(RESUMING) ||
	       state == S(ERROR);
}

bool devmig_state_is_quiesced(uint32_t state)
{
	return devmig_state_is_stopped(state) || state == S(RUNNING_P2P) ||
	       state == S(PRE_COPY_P2P);
}

const char *devmig_state_name(uint32_t state)
{
	return state < DEVMIG_STATE_COUNT ? state_names[state] : "INVALID";
}

bool devmig_state_parse(const char *name, enum devmig_state *out)
{
	if (!name)
		return false;
	for (uint32_t s = 0; s < DEVMIG_STATE_COUNT; s++) {
		if (strcasecmp(name, state_names[s]) == 0) {
			*out = (enum devmig_state)s;
			return true;
		}
	}
	return false;
}

const char *devmig_fsm_strerror(enum devmig_fsm_err err)
{
	switch (err) {
	case DEVMIG_FSM_OK:
		return "success";
	case DEVMIG_FSM_E_CAPS:
		return "invalid migration capability set (STOP_COPY is mandatory)";
	case DEVMIG_FSM_E_RANGE:
		return "state value out of range";
	case DEVMIG_FSM_E_CUR_ERROR:
		return "device is in ERROR; only a reset recovers it";
	case DEVMIG_FSM_E_REQ_ERROR:
		return "ERROR cannot be requested";
	case DEVMIG_FSM_E_UNSUPPORTED:
		return "state not supported by this device's migration capabilities";
	case DEVMIG_FSM_E_FORBIDDEN:
		return "no legal path between these states (STOP_COPY cannot return to PRE_COPY)";
	}
	return "unknown state machine error";
}
