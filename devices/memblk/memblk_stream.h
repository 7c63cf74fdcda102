/* SPDX-License-Identifier: MIT */
/*
 * memblk: the device's migration stream (the "device data" the core frames)
 * and its streaming loader. Pure logic: no I/O, no threads, no device.
 *
 * The stream is a sequence of records, little-endian:
 *
 *   u32 type, u32 len, payload[len], u32 crc32c(type, len, payload)
 *
 *   HEADER   (1) first: "MBLKSTRM", u16 format (1 or 2), u16 0, u32 flags (0),
 *                u64 storage size, u32 block size, u32 chunk size,
 *                u32 version_len, version[version_len] (no NUL)
 *   CHUNK    (2) u32 index, u32 0, the chunk's bytes (chunk size, or less
 *                for the last chunk of a storage that is not a multiple)
 *   ZERO     (3) u32 index, u32 0: the chunk is all zeros (format 2 only)
 *   REGS     (4) the registers and ring indexes (struct mb_regs, 64 bytes)
 *   INFLIGHT (5) u32 count, u32 0, count x 32-byte SQEs fetched by the
 *                device but not yet executed (count <= MB_MAX_INFLIGHT)
 *   END      (6) u64 number of records before END, u64 0
 *
 * Order: HEADER, then CHUNK/ZERO records (any order, a chunk may come more
 * than once: the last one wins), then REGS, INFLIGHT, END. Every chunk
 * must have come at least once.
 *
 * Formats. 1 (memblk v1): every chunk travels as a CHUNK with its bytes,
 * never-written ones too; a ZERO record is malformed. 2 (memblk v2): adds
 * the ZERO record, 20 bytes for a chunk that was never written. A variant
 * writes its own format and reads every format up to it; it loads state
 * of its own device version and of the versions it accepts.
 */
#ifndef DEVMIG_MEMBLK_STREAM_H
#define DEVMIG_MEMBLK_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memblk_hw.h"

#define MB_STREAM_MAGIC "MBLKSTRM"
#define MB_FORMAT_1 1u      /* memblk v1: CHUNK records only */
#define MB_FORMAT_2 2u      /* memblk v2: adds ZERO records */
#define MB_STREAM_FORMAT MB_FORMAT_2 /* the newest format this code reads */
#define MB_REC_HDR 8u  /* type + len */
#define MB_REC_CRC 4u
#define MB_REC_OVERHEAD (MB_REC_HDR + MB_REC_CRC)
#define MB_HEADER_FIXED 36u
#define MB_VERSION_MAX 128u
#define MB_CHUNK_PREFIX 8u /* index + reserved, before a CHUNK's data */
#define MB_REGS_LEN 64u
#define MB_END_LEN 16u
#define MB_MIN_CHUNK 4096u
#define MB_MAX_CHUNK (1u << 20)

enum mb_rec {
	MB_REC_HEADER = 1,
	MB_REC_CHUNK = 2,
	MB_REC_ZERO = 3,
	MB_REC_REGS = 4,
	MB_REC_INFLIGHT = 5,
	MB_REC_END = 6,
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
static inline uint32_t mb_geom_nchunks(const struct mb_geom *g)
{
	return (uint32_t)((g->size + g->chunk_size - 1) / g->chunk_size);
}
static inline uint32_t mb_chunk_len(const struct mb_geom *g, uint32_t index)
{
	uint64_t off = (uint64_t)index * g->chunk_size;
	uint64_t left = g->size - off;
	return left < g->chunk_size ? (uint32_t)left : g->chunk_size;
}

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

/*
 * What a memblk variant writes and loads: its device version string (in
 * the HEADER record and the core's stream header), the stream format it
 * writes (it reads formats 1..format), and the other device versions whose
 * state it loads (NULL-terminated, may be NULL).
 */
struct mb_stream_id {
	const char *version;
	uint32_t format;
	const char *const *accepts;
};
extern const struct mb_stream_id mb_stream_v1; /* "1af4:10f1-memblk-v1", format 1 */
extern const struct mb_stream_id mb_stream_v2; /* "1af4:10f1-memblk-v2", format 2, accepts v1 */
/* The variant whose version string this is, or NULL. */
const struct mb_stream_id *mb_stream_id_find(const char *version);
/* Does id load state saved by a device of version? (its own, or accepted) */
bool mb_stream_id_accepts(const struct mb_stream_id *id, const char *version);

/* Write the record header (type, len) at out. */
void mb_rec_begin(uint8_t out[MB_REC_HDR], uint32_t type, uint32_t len);
/* Frame a small record whose payload is already at out + MB_REC_HDR; returns
 * the record's size (MB_REC_OVERHEAD + len). */
size_t mb_rec_frame(uint8_t *out, uint32_t type, uint32_t len);
/* The HEADER payload length for a version string. */
size_t mb_header_len(const char *version);
/* Build the whole HEADER record of a format-`format` stream at out (room:
 * MB_REC_OVERHEAD + mb_header_len); returns its size. */
size_t mb_header_record(uint8_t *out, const struct mb_geom *g, const char *version,
			uint32_t format);

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

/* ---- the loader ---- */

struct mb_loader;

/*
 * A loader for the variant id with geometry g, staging chunk data straight
 * into stage (g->size bytes, owned by the caller, all zero to begin with: a
 * ZERO record of a chunk that got no data writes nothing; its contents are
 * only meaningful once mb_loader_finish succeeded). It reads stream formats
 * 1..id->format and state of id->version or one of id->accepts. NULL on a
 * bad geometry or out of memory. Memory besides stage: one small record
 * buffer (~2 KiB) and two bitmaps of one bit per chunk.
 */
struct mb_loader *mb_loader_new_id(const struct mb_geom *g, const struct mb_stream_id *id,
				   uint8_t *stage);
/* The loader of the variant whose version string this is (mb_stream_id_find);
 * NULL for a version no variant has. */
struct mb_loader *mb_loader_new(const struct mb_geom *g, const char *version, uint8_t *stage);
void mb_loader_free(struct mb_loader *l);

/*
 * Feed the next len bytes (any segmentation). 0, or -EINVAL once the stream
 * is found bad; every later call fails the same and mb_loader_error says why.
 */
int mb_loader_write(struct mb_loader *l, const void *buf, size_t len);

/*
 * The end of input: 0 when the stream was complete and valid (END seen,
 * every chunk received), else -EINVAL with the reason (e.g. truncation).
 */
int mb_loader_finish(struct mb_loader *l);

/* The first failure's reason ("" if none). Reasons begin with a class:
 * "version:", "geometry:", "CRC:", "truncated:", "incomplete:", "format:",
 * "order:", "range:", "registers:". */
const char *mb_loader_error(const struct mb_loader *l);

/* After a successful finish: the loaded registers, in-flight SQEs (count
 * returned, entries decoded into out, room for MB_MAX_INFLIGHT) and whether
 * chunk i holds data (its last record was CHUNK, not ZERO). */
const struct mb_regs *mb_loader_regs(const struct mb_loader *l);
unsigned mb_loader_inflight(const struct mb_loader *l, struct mb_sqe *out);
bool mb_loader_chunk_data(const struct mb_loader *l, uint32_t index);
/* The format of the stream being loaded (0 before its HEADER). */
uint32_t mb_loader_format(const struct mb_loader *l);
/* Bytes accepted so far. */
uint64_t mb_loader_total(const struct mb_loader *l);

#endif /* DEVMIG_MEMBLK_STREAM_H */
