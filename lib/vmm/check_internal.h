/* SPDX-License-Identifier: MIT */
/* Inside the conformance checker: what check.c and check_stream.c share. */
#ifndef DEVMIG_LIB_CHECK_INTERNAL_H
#define DEVMIG_LIB_CHECK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "devmig/check.h"
#include "devmig/client.h"
#include "devmig/migration.h"

#define CHK_MAX_REGIONS 16u
#define CHK_EV_MAX 2048u
#define CHK_MAX_WRITES 64u

/* One region as compared: its first len bytes, read unit bytes at a time. */
struct chk_region {
	uint32_t index;
	uint64_t len;
	uint32_t unit;
};

/* What the client read back from a device's regions (bad: the unit's read failed). */
struct chk_snap {
	uint8_t *data[CHK_MAX_REGIONS];
	uint8_t *bad[CHK_MAX_REGIONS];
	bool taken;
};

struct chk;

struct chk_dev {
	struct devmig_client *c;
	struct chk *ch;
	const char *label; /* "A" or "B" */
	bool lost;         /* its connection timed out or broke */
	char lost_at[96];
	/* ERROR seen, and what reset did about it */
	unsigned errors_seen, errors_recovered;
	char error_first[160];    /* where ERROR was first seen */
	char error_unrecovered[160];
};

struct chk {
	struct chk_dev a, b;
	struct chk_dev *dst; /* B, or A itself without B */
	struct devmig_check_config cfg;
	struct devmig_check_summary *sum;
	uint64_t rng;

	uint64_t caps;
	bool caps_ok;
	bool precopy_info;    /* PRE_COPY progress can be asked for */
	bool config_migrates; /* the stream carries config space (devmig's compat extension) */
	struct devmig_check_write writes[CHK_MAX_WRITES];
	unsigned nwrites;
	char writes_desc[256];

	struct chk_region lay[CHK_MAX_REGIONS];
	unsigned nlay;
	bool lay_ok;
	char lay_desc[512];

	/* A's STOP_COPY stream with the writes applied, and A's registers then. */
	uint8_t *stream;
	size_t stream_len;
	bool stream_tried;
	struct chk_snap src;

	bool saw_error; /* a device was seen in ERROR */
	char error_where[160];

	/* the check running now */
	const char *name;
	uint64_t deadline_ns;
	char ev[CHK_EV_MAX];
	size_t evlen;
};

/* ---- running checks ---- */
bool chk_begin(struct chk *ch, const char *name);
/* The same for work whose result is not shown (another check needs it). */
void chk_quiet(struct chk *ch, const char *name);
void chk_end(struct chk *ch, enum devmig_check_status st);
void chk_skip(struct chk *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void chk_ev(struct chk *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool chk_expired(struct chk *ch);
bool chk_alive(struct chk *ch, struct chk_dev *d);
/* Would a check of this name run? */
bool chk_selected(const struct chk *ch, const char *name);

/* ---- calls through the client, each noting a lost connection ---- */
int chk_rc(struct chk_dev *d, int rc, const char *what);
int chk_get(struct chk_dev *d, enum devmig_state *s);
int chk_set(struct chk_dev *d, enum devmig_state s);
ssize_t chk_read(struct chk_dev *d, void *buf, size_t len);
int chk_write(struct chk_dev *d, const void *buf, size_t len);
/* Reset (or, where reset is refused, request RUNNING): 0 once the device is RUNNING. */
int chk_to_running(struct chk *ch, struct chk_dev *d, char *why, size_t wl);
/* From RUNNING to target one arc at a time, each checked. */
int chk_walk(struct chk *ch, struct chk_dev *d, enum devmig_state target, char *why, size_t wl);
int chk_apply_writes(struct chk *ch, struct chk_dev *d, char *why, size_t wl);

/* ---- register snapshots ---- */
int chk_snap_take(struct chk *ch, struct chk_dev *d, struct chk_snap *s);
void chk_snap_free(struct chk_snap *s);
/* Bytes that differ (ignored ranges left out); the first difference in first. */
uint64_t chk_snap_diff(const struct chk *ch, const struct chk_snap *x, const struct chk_snap *y,
		       char *first, size_t fl);

/* ---- randomness and names ---- */
uint64_t chk_rand(struct chk *ch);
/* A random length in 1..max, spread over every power of two up to 1 MiB. */
size_t chk_rand_len(struct chk *ch, size_t max);
const char *chk_errname(int rc);
const char *chk_region_name(uint32_t index, char *buf, size_t len);
const char *chk_bytes(uint64_t n, char *buf, size_t len);

/* ---- the stream checks (check_stream.c) ---- */
/* Read A's stream in STOP_COPY (with the writes) into ch->stream: save.* checks. */
void chk_save(struct chk *ch);
void chk_load(struct chk *ch);
void chk_bad_streams(struct chk *ch);
void chk_precopy(struct chk *ch);

/* Read a stream until its end (a short read) in pieces of random length. */
struct chk_read_stats {
	uint64_t reads;
	size_t min_piece, max_piece;
	bool short_before_end; /* a short read was followed by more data */
};
int chk_read_to_end(struct chk *ch, struct chk_dev *d, uint8_t **buf, size_t *len,
		    struct chk_read_stats *st, char *why, size_t wl);
/* Write buf in pieces of random length; *at: bytes taken before a refusal. */
struct chk_write_stats {
	uint64_t writes;
	size_t min_piece, max_piece;
	size_t refused_at;
	int refused_rc;
};
int chk_write_segmented(struct chk *ch, struct chk_dev *d, const uint8_t *buf, size_t len,
			struct chk_write_stats *st);

#endif /* DEVMIG_LIB_CHECK_INTERNAL_H */
