/* SPDX-License-Identifier: MIT */
/*
 * devmig: private interface between the codec's translation units
 * (wire.c, wire_feature.c). Not installed, not part of the API.
 */
#ifndef DEVMIG_WIRE_INTERNAL_H
#define DEVMIG_WIRE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmig/wire.h"

/* Exactly n bytes of layout: fewer is E_SHORT, more is E_MSG_SIZE. */
static inline enum devmig_wire_err devmig__exact(uint64_t have, uint64_t n)
{
	if (have < n)
		return DEVMIG_WIRE_E_SHORT;
	if (have > n)
		return DEVMIG_WIRE_E_MSG_SIZE;
	return DEVMIG_WIRE_OK;
}

static inline bool devmig__wraps64(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_add_overflow(a, b, &r);
}

static inline bool devmig__wraps32(uint32_t a, uint32_t b)
{
	uint32_t r;
	return __builtin_add_overflow(a, b, &r);
}

/* A power of two >= DEVMIG_MIN_PAGE_SIZE. */
static inline bool devmig__page_size_ok(uint64_t ps)
{
	return ps >= DEVMIG_MIN_PAGE_SIZE && (ps & (ps - 1)) == 0;
}

/*
 * An encoding plan: the payload as a list of byte ranges written after the
 * header, then an optional tail (bulk data) that devmig_encode copies and
 * devmig_encode_head hands back to the caller.
 */
#define DEVMIG__PLAN_SEGS 4
struct devmig__plan {
	struct {
		const void *p;
		size_t n;
	} seg[DEVMIG__PLAN_SEGS];
	unsigned nseg;
	const void *tail;
	size_t tail_len;
	size_t pad;     /* zero bytes after the tail (a padded MIG_DATA_READ reply) */
	bool head_only; /* devmig_encode_head: the tail is not read, so it may be NULL */
};

/* Record the bulk tail; without head_only a length needs a pointer. */
static inline bool devmig__plan_tail(struct devmig__plan *pl, const void *p, size_t n)
{
	if (n && !p && !pl->head_only)
		return false;
	pl->tail = p;
	pl->tail_len = n;
	return true;
}

static inline void devmig__plan_add(struct devmig__plan *pl, const void *p, size_t n)
{
	/* Callers never add more than DEVMIG__PLAN_SEGS segments. */
	pl->seg[pl->nseg].p = p;
	pl->seg[pl->nseg].n = n;
	pl->nseg++;
}

/* DEVICE_FEATURE payload (p, plen: the bytes after the header). wire_feature.c */
enum devmig_wire_err devmig__decode_feature(const uint8_t *p, size_t plen, bool reply,
					    unsigned nfds,
					    const struct devmig_wire_limits *lim,
					    struct devmig_msg *out);

/*
 * The payload of a DEVICE_FEATURE error reply: decoded into out->u.feature
 * when it is a valid MIG_STATE_DEADLINE SET reply (a refusal's outcome),
 * else ignored. wire_feature.c
 */
void devmig__decode_feature_error(const uint8_t *p, size_t plen,
				  const struct devmig_wire_limits *lim, struct devmig_msg *out);

/* DEVICE_FEATURE payload plan for m (request or reply). wire_feature.c */
enum devmig_wire_err devmig__plan_feature(const struct devmig_msg *m, bool reply,
					  struct devmig__plan *pl);

#endif /* DEVMIG_WIRE_INTERNAL_H */
