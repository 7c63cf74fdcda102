/* SPDX-License-Identifier: MIT */
/*
 * devmig: a migration conformance checker for any device the client API
 * reaches (devmig/client.h).
 *
 * It drives one device (A), and optionally a second, fresh instance of the
 * same device (B) for the round trips, through the whole migration protocol
 * v2 and reports one result per check with its evidence: capabilities, every
 * (current, requested) pair of the state machine against the next-hop table,
 * refused requests leaving the state unchanged, reset from every state, a
 * save loaded with random segmentation and the device's registers compared,
 * truncated and corrupted streams refused with nothing applied, PRE_COPY
 * progress, the STOP_COPY size estimate, migration data moved in the wrong
 * state, DMA logging ranges. Without B the round trips load into A itself
 * after a reset.
 *
 * Every step is bounded: the client's reply timeout bounds one call, a
 * per-check deadline and a byte limit bound every loop. A connection that
 * times out or breaks fails the check that saw it; later checks on that
 * device are skipped. The devices are left RUNNING (reset) at the end.
 *
 * "State compared" means what the client can read back: every readable
 * region (BARs, and config space when the device's stream carries it, as
 * devmig's do) up to compare_limit bytes each, in the access width the
 * region accepts. Registers whose reads change the device are read in the
 * same order on both sides, so equal devices read equal.
 */
#ifndef DEVMIG_CHECK_H
#define DEVMIG_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "devmig/client.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libdevmig, which hides everything else. */
#pragma GCC visibility push(default)

enum devmig_check_status {
	DEVMIG_CHECK_PASS = 0,
	DEVMIG_CHECK_FAIL,
	DEVMIG_CHECK_SKIP, /* the device lacks what the check needs; evidence says what */
};

/* "ok", "FAIL", "skip". */
const char *devmig_check_status_name(enum devmig_check_status s);

/* One register write: device state the source gets before each save. */
struct devmig_check_write {
	uint32_t region; /* VFIO region index: BARs 0-5, ROM 6, config 7 */
	uint64_t offset;
	uint32_t width; /* 1, 2, 4 or 8 bytes, little-endian */
	uint64_t value;
};

/* Bytes left out of every comparison (registers that change by themselves). */
struct devmig_check_range {
	uint32_t region;
	uint64_t offset, length;
};

struct devmig_check_result {
	const char *name; /* e.g. "fsm.from.STOP" */
	enum devmig_check_status status;
	const char *evidence;
};

struct devmig_check_config {
	uint64_t seed;              /* random segmentation and corruption points */
	unsigned step_timeout_ms;   /* deadline of one check; 0: 60 s */
	uint64_t max_stream_bytes;  /* a stream longer than this fails; 0: 1 GiB */
	uint64_t compare_limit;     /* bytes compared per region; 0: 64 KiB */
	const struct devmig_check_write *writes; /* applied to the source before each save */
	unsigned nwrites;
	const struct devmig_check_range *ignore;
	unsigned nignore;
	/* Comma-separated name prefixes to run ("fsm,load"); NULL: every check. */
	const char *only;
	/* Called once per check as it completes; the strings live for the call. */
	void (*result)(void *opaque, const struct devmig_check_result *r);
	void *opaque;
};

struct devmig_check_summary {
	unsigned passed, failed, skipped;
};

/*
 * Run every check (or those cfg->only selects) on a, with b (may be NULL)
 * as the destination of the round trips. Returns 0 when the checks ran
 * (whatever they found: see sum), -EINVAL for a bad configuration.
 */
int devmig_check_run(struct devmig_client *a, struct devmig_client *b,
		     const struct devmig_check_config *cfg, struct devmig_check_summary *sum);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_CHECK_H */
