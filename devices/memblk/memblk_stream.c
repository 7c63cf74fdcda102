/* SPDX-License-Identifier: MIT */
/*
 * memblk's records and their parser: see memblk_stream.h. The core hands
 * each record over whole and checked; what is left to check here is what
 * the bytes mean.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "memblk_stream.h"

/* ---------------------------------------------------------------- helpers */

int mb_geom_check(const struct mb_geom *g, char *why, size_t whylen)
{
	if (g->block_size != MB_BLOCK_SIZE) {
		snprintf(why, whylen, "block size %" PRIu32 " (must be %u)", g->block_size,
			 MB_BLOCK_SIZE);
		return -EINVAL;
	}
	if (g->chunk_size < MB_MIN_CHUNK || g->chunk_size > MB_MAX_CHUNK ||
	    (g->chunk_size & (g->chunk_size - 1))) {
		snprintf(why, whylen, "chunk size %" PRIu32 " (must be a power of two, %u..%u)",
			 g->chunk_size, MB_MIN_CHUNK, MB_MAX_CHUNK);
		return -EINVAL;
	}
	if (!g->size || g->size % g->block_size ||
	    g->size / g->chunk_size >= UINT32_MAX) {
		snprintf(why, whylen, "storage size %" PRIu64 " (must be a non-zero multiple of %u)",
			 g->size, MB_BLOCK_SIZE);
		return -EINVAL;
	}
	return 0;
}

int mb_regs_check(const struct mb_regs *r, char *why, size_t whylen)
{
	if (r->rsvd) {
		snprintf(why, whylen, "reserved field 0x%08" PRIx32 " must be 0", r->rsvd);
		return -EINVAL;
	}
	if (r->control & ~MB_CTRL_EN) {
		snprintf(why, whylen, "CONTROL 0x%08" PRIx32 " has unknown bits", r->control);
		return -EINVAL;
	}
	if (r->status & ~MB_STS_ALL) {
		snprintf(why, whylen, "STATUS 0x%08" PRIx32 " has unknown bits", r->status);
		return -EINVAL;
	}
	if (r->err_code > MB_ERR_CQ_DMA) {
		snprintf(why, whylen, "ERR_CODE %" PRIu32 " unknown", r->err_code);
		return -EINVAL;
	}
	if (r->cq_phase > 1) {
		snprintf(why, whylen, "CQ phase %" PRIu32 " (must be 0 or 1)", r->cq_phase);
		return -EINVAL;
	}
	bool live = r->status & (MB_STS_READY | MB_STS_FATAL);
	if ((r->status & MB_STS_READY) && (r->status & (MB_STS_FATAL | MB_STS_CFS))) {
		snprintf(why, whylen, "STATUS 0x%08" PRIx32 " is READY and failed at once",
			 r->status);
		return -EINVAL;
	}
	if (live && !(r->control & MB_CTRL_EN)) {
		snprintf(why, whylen, "queues live while CONTROL.EN is clear");
		return -EINVAL;
	}
	if (!live) {
		if (r->sq_tail || r->sq_head || r->cq_tail || r->cq_head) {
			snprintf(why, whylen, "ring indexes set while the queues are not live");
			return -EINVAL;
		}
		return 0;
	}
	if (!mb_ring_size_ok(r->sq_size) || !mb_ring_size_ok(r->cq_size)) {
		snprintf(why, whylen, "live ring sizes %" PRIu32 "/%" PRIu32 " invalid", r->sq_size,
			 r->cq_size);
		return -EINVAL;
	}
	if (r->sq_base % MB_RING_ALIGN || r->cq_base % MB_RING_ALIGN ||
	    r->sq_base + (uint64_t)r->sq_size * MB_SQE_SIZE < r->sq_base ||
	    r->cq_base + (uint64_t)r->cq_size * MB_CQE_SIZE < r->cq_base) {
		snprintf(why, whylen, "live ring base misaligned or wrapping");
		return -EINVAL;
	}
	if (r->sq_tail >= r->sq_size || r->sq_head >= r->sq_size || r->cq_tail >= r->cq_size ||
	    r->cq_head >= r->cq_size) {
		snprintf(why, whylen, "ring index beyond its ring (SQ %" PRIu32 "/%" PRIu32
			 " of %" PRIu32 ", CQ %" PRIu32 "/%" PRIu32 " of %" PRIu32 ")",
			 r->sq_head, r->sq_tail, r->sq_size, r->cq_head, r->cq_tail, r->cq_size);
		return -EINVAL;
	}
	return 0;
}

void mb_regs_encode(const struct mb_regs *r, uint8_t out[MB_REGS_LEN])
{
	memset(out, 0, MB_REGS_LEN);
	mb_put32(out + 0, r->control);
	mb_put32(out + 4, r->status);
	mb_put32(out + 8, r->err_code);
	mb_put32(out + 12, r->sq_size);
	mb_put64(out + 16, r->sq_base);
	mb_put64(out + 24, r->cq_base);
	mb_put32(out + 32, r->cq_size);
	mb_put32(out + 36, r->sq_tail);
	mb_put32(out + 40, r->sq_head);
	mb_put32(out + 44, r->cq_tail);
	mb_put32(out + 48, r->cq_head);
	mb_put32(out + 52, r->cq_phase);
	mb_put32(out + 56, r->completed);
	mb_put32(out + 60, r->rsvd);
}

void mb_regs_decode(const uint8_t in[MB_REGS_LEN], struct mb_regs *r)
{
	r->control = mb_get32(in + 0);
	r->status = mb_get32(in + 4);
	r->err_code = mb_get32(in + 8);
	r->sq_size = mb_get32(in + 12);
	r->sq_base = mb_get64(in + 16);
	r->cq_base = mb_get64(in + 24);
	r->cq_size = mb_get32(in + 32);
	r->sq_tail = mb_get32(in + 36);
	r->sq_head = mb_get32(in + 40);
	r->cq_tail = mb_get32(in + 44);
	r->cq_head = mb_get32(in + 48);
	r->cq_phase = mb_get32(in + 52);
	r->completed = mb_get32(in + 56);
	r->rsvd = mb_get32(in + 60);
}

void mb_sqe_encode(const struct mb_sqe *e, uint8_t out[MB_SQE_SIZE])
{
	out[0] = e->opcode;
	out[1] = e->flags;
	out[2] = (uint8_t)e->rsvd;
	out[3] = (uint8_t)(e->rsvd >> 8);
	mb_put32(out + 4, e->tag);
	mb_put64(out + 8, e->lba);
	mb_put32(out + 16, e->nblocks);
	mb_put32(out + 20, e->buf_len);
	mb_put64(out + 24, e->buf);
}

void mb_sqe_decode(const uint8_t in[MB_SQE_SIZE], struct mb_sqe *e)
{
	e->opcode = in[0];
	e->flags = in[1];
	e->rsvd = (uint16_t)(in[2] | in[3] << 8);
	e->tag = mb_get32(in + 4);
	e->lba = mb_get64(in + 8);
	e->nblocks = mb_get32(in + 16);
	e->buf_len = mb_get32(in + 20);
	e->buf = mb_get64(in + 24);
}

size_t mb_inflight_encode(const struct mb_sqe *q, unsigned n, uint8_t *out)
{
	mb_put32(out, n);
	mb_put32(out + 4, 0);
	for (unsigned i = 0; i < n; i++)
		mb_sqe_encode(&q[i], out + 8 + i * MB_SQE_SIZE);
	return 8 + (size_t)n * MB_SQE_SIZE;
}

/* ---------------------------------------------------------------- variants */

static const char *const mb_v2_accepts[] = { "1af4:10f1-memblk-v1", NULL };

const struct mb_stream_id mb_stream_v1 = {
	.version = "1af4:10f1-memblk-v1",
	.zero_records = false,
	.accepts = NULL,
};

const struct mb_stream_id mb_stream_v2 = {
	.version = "1af4:10f1-memblk-v2",
	.zero_records = true,
	.accepts = mb_v2_accepts,
};

/* ---------------------------------------------------------------- parser */

__attribute__((format(printf, 4, 5)))
static int refuse(char *why, size_t whylen, const char *cls, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(why, whylen, "%s %s", cls, msg);
	return -EINVAL;
}

void mb_state_reset(struct mb_state *st)
{
	memset(st, 0, sizeof(*st));
}

int mb_state_load(struct mb_state *st, unsigned type, const uint8_t *p, size_t len, char *why,
		  size_t whylen)
{
	char reason[160];

	switch (type) {
	case MB_REC_REGS: {
		struct mb_regs r;
		if (st->have_regs)
			return refuse(why, whylen, "order:", "a second REGS record");
		if (len != MB_REGS_LEN)
			return refuse(why, whylen, "format:", "REGS of %zu bytes, expected %u", len,
				      MB_REGS_LEN);
		mb_regs_decode(p, &r);
		if (mb_regs_check(&r, reason, sizeof(reason)))
			return refuse(why, whylen, "registers:", "%s", reason);
		st->regs = r;
		st->have_regs = true;
		return 0;
	}
	case MB_REC_INFLIGHT: {
		if (!st->have_regs)
			return refuse(why, whylen, "order:", "INFLIGHT before REGS");
		if (st->have_inflight)
			return refuse(why, whylen, "order:", "a second INFLIGHT record");
		uint32_t n = len >= 8 ? mb_get32(p) : 0;
		if (len < 8 || mb_get32(p + 4))
			return refuse(why, whylen, "format:", "INFLIGHT of %zu bytes", len);
		if (n > MB_MAX_INFLIGHT || 8 + (uint64_t)n * MB_SQE_SIZE != len)
			return refuse(why, whylen, "format:",
				      "count %" PRIu32 " disagrees with the %zu-byte payload", n, len);
		for (uint32_t i = 0; i < n; i++)
			mb_sqe_decode(p + 8 + i * MB_SQE_SIZE, &st->inflight[i]);
		st->ninflight = n;
		st->have_inflight = true;
		return 0;
	}
	}
	return refuse(why, whylen, "format:", "unknown record type %u", type);
}

int mb_state_check(const struct mb_state *st, char *why, size_t whylen)
{
	if (!st->have_regs || !st->have_inflight)
		return refuse(why, whylen, "incomplete:", "no %s record",
			      st->have_regs ? "INFLIGHT" : "REGS");
	const struct mb_regs *r = &st->regs;
	unsigned n = st->ninflight;
	if (n && !(r->status & MB_STS_READY))
		return refuse(why, whylen, "registers:",
			      "%u requests in flight on queues that are not ready", n);
	uint32_t used = n ? (r->cq_tail - r->cq_head) & (r->cq_size - 1) : 0;
	if (n && used + n > r->cq_size - 1)
		return refuse(why, whylen, "registers:",
			      "%u requests in flight but only %" PRIu32 " free completion slots", n,
			      r->cq_size - 1 - used);
	return 0;
}
