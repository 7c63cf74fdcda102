/* SPDX-License-Identifier: MIT */
/*
 * devmig: the VFIO migration protocol v2 state machine.
 *
 * Pure logic, no I/O. The numeric values are the Linux uAPI and vfio-user
 * wire values (enum vfio_device_mig_state, VFIO_MIGRATION_* flags); the uAPI
 * header shipped with Debian 12 predates PRE_COPY, so they are defined here.
 */
#ifndef DEVMIG_MIGRATION_H
#define DEVMIG_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libdevmig, which hides everything else. */
#pragma GCC visibility push(default)

enum devmig_state {
	DEVMIG_STATE_ERROR = 0,
	DEVMIG_STATE_STOP = 1,
	DEVMIG_STATE_RUNNING = 2,
	DEVMIG_STATE_STOP_COPY = 3,
	DEVMIG_STATE_RESUMING = 4,
	DEVMIG_STATE_RUNNING_P2P = 5,
	DEVMIG_STATE_PRE_COPY = 6,
	DEVMIG_STATE_PRE_COPY_P2P = 7,
};
#define DEVMIG_STATE_COUNT 8

/* Capability flags reported by DEVICE_FEATURE MIGRATION (u64 on the wire). */
#define DEVMIG_MIG_STOP_COPY (1ull << 0) /* mandatory */
#define DEVMIG_MIG_P2P (1ull << 1)
#define DEVMIG_MIG_PRE_COPY (1ull << 2)
#define DEVMIG_MIG_ALL (DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P | DEVMIG_MIG_PRE_COPY)

/*
 * Longest path any request can take: four arcs, e.g. RESUMING->PRE_COPY
 * with every capability is STOP, RUNNING_P2P, RUNNING, PRE_COPY.
 */
#define DEVMIG_FSM_MAX_PATH 4

/* Why a transition request was refused. Every refusal maps to EINVAL. */
enum devmig_fsm_err {
	DEVMIG_FSM_OK = 0,
	DEVMIG_FSM_E_CAPS,         /* capability set invalid (no STOP_COPY, unknown bits) */
	DEVMIG_FSM_E_RANGE,        /* state value outside 0..7 */
	DEVMIG_FSM_E_CUR_ERROR,    /* current state is ERROR: only reset recovers */
	DEVMIG_FSM_E_REQ_ERROR,    /* ERROR can never be requested */
	DEVMIG_FSM_E_UNSUPPORTED,  /* current or requested state needs a missing capability */
	DEVMIG_FSM_E_FORBIDDEN,    /* no legal path (STOP_COPY -> PRE_COPY[_P2P]) */
};

/* What a primitive arc does to the migration data session. */
enum devmig_arc_session {
	DEVMIG_ARC_KEEP = 0,    /* no session change (none open, or the saving group keeps it) */
	DEVMIG_ARC_OPEN_SAVE,   /* RUNNING->PRE_COPY, RUNNING_P2P->PRE_COPY_P2P, STOP->STOP_COPY */
	DEVMIG_ARC_OPEN_LOAD,   /* STOP->RESUMING */
	DEVMIG_ARC_END,         /* STOP_COPY->STOP, PRE_COPY->RUNNING, PRE_COPY_P2P->RUNNING_P2P, RESUMING->STOP */
};

/* True when caps has STOP_COPY and no bits beyond DEVMIG_MIG_ALL. */
bool devmig_caps_valid(uint64_t caps);

/* True when state is in range and its required capabilities are in caps. */
bool devmig_state_supported(uint32_t state, uint64_t caps);

/*
 * The next single arc from cur towards req (the kernel's next-hop rule:
 * table lookup, skipping interior states the device does not support).
 * cur == req gives *next = cur. On refusal *next is left untouched.
 */
enum devmig_fsm_err devmig_fsm_next(uint32_t cur, uint32_t req, uint64_t caps,
				    enum devmig_state *next);

/*
 * The whole path from cur to req: path[0..*len-1] are the states entered in
 * order, the last being req; *len is 0 when cur == req. path must hold
 * DEVMIG_FSM_MAX_PATH entries. On refusal *len is 0.
 */
enum devmig_fsm_err devmig_fsm_path(uint32_t cur, uint32_t req, uint64_t caps,
				    enum devmig_state path[DEVMIG_FSM_MAX_PATH],
				    size_t *len);

/*
 * The cost of the path from cur to req: the sum of cost(opaque, from, to)
 * over its arcs, saturating (0 when cur == req). A deadline's planning
 * uses it with arc estimates in ns. On refusal *total is left untouched.
 */
enum devmig_fsm_err devmig_fsm_path_cost(uint32_t cur, uint32_t req, uint64_t caps,
					 uint64_t (*cost)(void *opaque, enum devmig_state from,
							  enum devmig_state to),
					 void *opaque, uint64_t *total);

/* True when from->to is one primitive arc for a device with caps. */
bool devmig_fsm_is_arc(uint32_t from, uint32_t to, uint64_t caps);

/* Session effect of a primitive arc (DEVMIG_ARC_KEEP for anything else). */
enum devmig_arc_session devmig_arc_session(uint32_t from, uint32_t to);

/* True for PRE_COPY, PRE_COPY_P2P and STOP_COPY. */
bool devmig_state_is_saving(uint32_t state);

/* True for states in which the device initiates no DMA and no interrupts. */
bool devmig_state_is_stopped(uint32_t state);

/* True for states in which the device initiates no peer-to-peer DMA. */
bool devmig_state_is_quiesced(uint32_t state);

/* "RUNNING_P2P" for 5; "INVALID" for out-of-range values. */
const char *devmig_state_name(uint32_t state);

/* Case-insensitive parse of a state name; returns false for unknown names. */
bool devmig_state_parse(const char *name, enum devmig_state *out);

const char *devmig_fsm_strerror(enum devmig_fsm_err err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_MIGRATION_H */
