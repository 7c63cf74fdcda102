/* SPDX-License-Identifier: MIT */
/*
 * memblk: what the device puts in its migration stream, and the parser of
 * it. Pure logic: no I/O, no threads, no device.
 *
 * The storage is device memory tracked by the core (a devmig_tracker): the
 * core streams it (MEM_INFO, MEM_DATA and, for v2, MEM_ZERO records) and
 * checks its geometry. memblk's own records, emitted once stopped, are
 * little-endian:
 *
 *   REGS     (1) the registers and ring indexes (struct mb_regs, 64 bytes)
 *   INFLIGHT (2) u32 count, u32 0, count x 32-byte SQEs fetched by the
 *                device but not yet executed (count <= MB_MAX_INFLIGHT)
 *
 * each exactly once, REGS first. The core frames and checks them (length,
 * CRC, order against its own records) and hands each over whole.
 *
 * Variants. v1 ("1af4:10f1-memblk-v1") sends every chunk of its storage
 * with its bytes; v2 ("1af4:10f1-memblk-v2") sends a chunk never written as
 * a MEM_ZERO record (20 bytes) and loads v1's state too.
 */
#ifndef DEVMIG_MEMBLK_STREAM_H
#define DEVMIG_MEMBLK_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memblk_hw.h"

#define MB_REGS_LEN 64u
#define MB_INFLIGHT_MAX_LEN (8u + MB_MAX_INFLIGHT * MB_SQE_SIZE)
#define MB_MIN_CHUNK 4096u
#define MB_MAX_CHUNK (1u << 20)

enum mb_rec {
	MB_REC_REGS = 1,
	MB_REC_INFLIGHT = 2,
};

struct mb_geom {
	uint64_t size;       /* storage bytes: a multiple of block_size */
	uint32_t block_size; /* MB_BLOCK_SIZE */
	uint32_t chunk_size; /* power of two, MB_MIN_CHUNK..MB_MAX_CHUNK */
};

/* The migrated register file (every register that holds state). */
struct mb_regs {
	uint64_t sq_base, cq_base;
	uint32_t control, status, err_code;
	uint32_t sq_size, cq_size;
	uint32_t sq_tail, sq_head, cq_tail, cq_head;
	uint32_t cq_phase;  /* phase bit the device writes into the next CQE */
	uint32_t completed;
	uint32_t rsvd;      /* 0; keeps the struct free of padding (memcmp-able) */
};
_Static_assert(sizeof(struct mb_regs) == 64, "mb_regs has no padding");

/* 0 when g is usable, else -EINVAL with why. */
int mb_geom_check(const struct mb_geom *g, char *why, size_t whylen);

/* True when a ring size is a power of two in 2..MB_MAX_RING. */
static inline bool mb_ring_size_ok(uint32_t n)
{
	return n >= 2 && n <= MB_MAX_RING && !(n & (n - 1));
}

/* Register state a device can be in: 0, or -EINVAL with why. */
int mb_regs_check(const struct mb_regs *r, char *why, size_t whylen);
void mb_regs_encode(const struct mb_regs *r, uint8_t out[MB_REGS_LEN]);
void mb_regs_decode(const uint8_t in[MB_REGS_LEN], struct mb_regs *r);

/* SQE <-> its 32 wire bytes. */
void mb_sqe_encode(const struct mb_sqe *e, uint8_t out[MB_SQE_SIZE]);
void mb_sqe_decode(const uint8_t in[MB_SQE_SIZE], struct mb_sqe *e);
/* The INFLIGHT payload of n SQEs into out (room: MB_INFLIGHT_MAX_LEN);
 * returns its length. */
size_t mb_inflight_encode(const struct mb_sqe *q, unsigned n, uint8_t *out);

/*
 * What a memblk variant is: its device version string, whether its storage
 * sends never-written chunks as ZERO records, and the other versions whose
 * state it loads (NULL-terminated, may be NULL).
 */
struct mb_stream_id {
	const char *version;
	bool zero_records;
	const char *const *accepts;
};
extern const struct mb_stream_id mb_stream_v1; /* "1af4:10f1-memblk-v1" */
extern const struct mb_stream_id mb_stream_v2; /* "1af4:10f1-memblk-v2", accepts v1 */

static inline void mb_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
static inline void mb_put64(uint8_t *p, uint64_t v)
{
	mb_put32(p, (uint32_t)v);
	mb_put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t mb_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}
static inline uint64_t mb_get64(const uint8_t *p)
{
	return (uint64_t)mb_get32(p) | (uint64_t)mb_get32(p + 4) << 32;
}

/* ---- the parser: memblk's records, whole, as the core hands them over ---- */

struct mb_state {
	bool have_regs, have_inflight;
	struct mb_regs regs;
	unsigned ninflight;
	struct mb_sqe inflight[MB_MAX_INFLIGHT];
};

/* Forget everything loaded (a new load). */
void mb_state_reset(struct mb_state *st);
/*
 * One record: 0, or -EINVAL with the reason, which begins with its class:
 * "format:", "order:", "registers:".
 */
int mb_state_load(struct mb_state *st, unsigned type, const uint8_t *p, size_t len, char *why,
		  size_t whylen);
/* The stream ended: both records there and consistent ("incomplete:",
 * "registers:" otherwise). Changes nothing. */
int mb_state_check(const struct mb_state *st, char *why, size_t whylen);

#endif /* DEVMIG_MEMBLK_STREAM_H */
