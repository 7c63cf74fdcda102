/* SPDX-License-Identifier: MIT */
/*
 * memblk's migration stream: encoding helpers and the streaming loader.
 * See memblk_stream.h for the format.
 *
 * The loader is a byte-driven state machine. It gathers each record header
 * (8 bytes); a CHUNK's 8-byte prefix is gathered next, its index checked,
 * and its data then copied straight into the caller's staging memory as it
 * arrives while the crc runs over it; every other record's payload (at most
 * MB_SMALL_MAX bytes) is gathered in one fixed buffer and parsed only after
 * its crc checked. So at most one record is buffered and a chunk is never
 * buffered at all. A chunk whose crc then fails has already reached the
 * staging memory, which is harmless: the load fails and the staging memory
 * is thrown away whole.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memblk_stream.h"
#include "devmig/device.h" /* devmig_crc32c */

#define MB_INFLIGHT_MAX_LEN (8u + MB_MAX_INFLIGHT * MB_SQE_SIZE)
#define MB_SMALL_MAX (MB_HEADER_FIXED + MB_VERSION_MAX > MB_INFLIGHT_MAX_LEN \
			      ? MB_HEADER_FIXED + MB_VERSION_MAX                   \
			      : MB_INFLIGHT_MAX_LEN)

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

void mb_rec_begin(uint8_t out[MB_REC_HDR], uint32_t type, uint32_t len)
{
	mb_put32(out, type);
	mb_put32(out + 4, len);
}

size_t mb_rec_frame(uint8_t *out, uint32_t type, uint32_t len)
{
	mb_rec_begin(out, type, len);
	mb_put32(out + MB_REC_HDR + len, devmig_crc32c(0, out, MB_REC_HDR + (size_t)len));
	return MB_REC_OVERHEAD + len;
}

/* ---------------------------------------------------------------- variants */

static const char *const mb_v2_accepts[] = { "1af4:10f1-memblk-v1", NULL };

const struct mb_stream_id mb_stream_v1 = {
	.version = "1af4:10f1-memblk-v1",
	.format = MB_FORMAT_1,
	.accepts = NULL,
};

const struct mb_stream_id mb_stream_v2 = {
	.version = "1af4:10f1-memblk-v2",
	.format = MB_FORMAT_2,
	.accepts = mb_v2_accepts,
};

const struct mb_stream_id *mb_stream_id_find(const char *version)
{
	static const struct mb_stream_id *const all[] = { &mb_stream_v1, &mb_stream_v2 };
	for (size_t i = 0; version && i < sizeof(all) / sizeof(all[0]); i++)
		if (!strcmp(all[i]->version, version))
			return all[i];
	return NULL;
}

bool mb_stream_id_accepts(const struct mb_stream_id *id, const char *version)
{
	if (!strcmp(id->version, version))
		return true;
	for (size_t i = 0; id->accepts && id->accepts[i]; i++)
		if (!strcmp(id->accepts[i], version))
			return true;
	return false;
}

size_t mb_header_len(const char *version)
{
	size_t vl = strnlen(version, MB_VERSION_MAX);
	return MB_HEADER_FIXED + vl;
}

size_t mb_header_record(uint8_t *out, const struct mb_geom *g, const char *version,
			uint32_t format)
{
	size_t vl = strnlen(version, MB_VERSION_MAX);
	uint8_t *p = out + MB_REC_HDR;

	memcpy(p, MB_STREAM_MAGIC, 8);
	p[8] = (uint8_t)format;
	p[9] = (uint8_t)(format >> 8);
	p[10] = p[11] = 0;
	mb_put32(p + 12, 0);
	mb_put64(p + 16, g->size);
	mb_put32(p + 24, g->block_size);
	mb_put32(p + 28, g->chunk_size);
	mb_put32(p + 32, (uint32_t)vl);
	memcpy(p + MB_HEADER_FIXED, version, vl);
	return mb_rec_frame(out, MB_REC_HEADER, (uint32_t)(MB_HEADER_FIXED + vl));
}

/* ---------------------------------------------------------------- loader */

enum lstate {
	L_RECHDR,  /* gathering type + len */
	L_SMALL,   /* gathering a small payload into buf */
	L_PREFIX,  /* gathering a CHUNK's index + reserved */
	L_DATA,    /* copying a CHUNK's data into the staging memory */
	L_CRC,     /* gathering the crc */
	L_AFTER,   /* END seen */
	L_FAILED,
};

/* Where in the record order we are (what may come next). */
enum lphase {
	P_START,   /* HEADER next */
	P_CHUNKS,  /* CHUNK/ZERO, or REGS */
	P_REGS,    /* REGS seen: INFLIGHT next */
	P_INFL,    /* INFLIGHT seen: END next */
	P_END,
};

struct mb_loader {
	struct mb_geom g;
	const struct mb_stream_id *id; /* the loading variant */
	uint32_t fmt;    /* the stream's format, once its HEADER was read */
	uint8_t *stage;
	uint32_t nchunks;
	uint64_t *got;   /* chunk received at least once */
	uint64_t *data;  /* chunk's last record was CHUNK */

	enum lstate state;
	enum lphase phase;
	size_t have;     /* bytes of the current piece gathered */
	uint8_t hdr[MB_REC_HDR];
	uint8_t crcb[MB_REC_CRC];
	uint8_t prefix[MB_CHUNK_PREFIX];
	uint32_t type, len;
	uint32_t crc;    /* running, over header and payload so far */
	uint32_t chunk;  /* index of the CHUNK being copied */
	uint8_t *dst;    /* its staging memory */
	uint64_t index;  /* 1-based number of the current record */
	uint64_t total;

	struct mb_regs regs;
	unsigned ninfl;
	struct mb_sqe infl[MB_MAX_INFLIGHT];
	uint8_t buf[MB_SMALL_MAX];
	char why[256];
};

static const char *rec_name(uint32_t type)
{
	switch (type) {
	case MB_REC_HEADER:
		return "HEADER";
	case MB_REC_CHUNK:
		return "CHUNK";
	case MB_REC_ZERO:
		return "ZERO";
	case MB_REC_REGS:
		return "REGS";
	case MB_REC_INFLIGHT:
		return "INFLIGHT";
	case MB_REC_END:
		return "END";
	}
	return "unknown";
}

__attribute__((format(printf, 3, 4)))
static int lfail(struct mb_loader *l, const char *cls, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(l->why, sizeof(l->why), "%s record %" PRIu64 " (%s type %" PRIu32 "): %s", cls,
		 l->index, rec_name(l->type), l->type, msg);
	l->state = L_FAILED;
	return -EINVAL;
}

struct mb_loader *mb_loader_new_id(const struct mb_geom *g, const struct mb_stream_id *id,
				   uint8_t *stage)
{
	char why[160];

	if (!g || !id || !id->version || !stage || mb_geom_check(g, why, sizeof(why)) ||
	    strlen(id->version) > MB_VERSION_MAX || id->format < MB_FORMAT_1 ||
	    id->format > MB_STREAM_FORMAT)
		return NULL;
	struct mb_loader *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->g = *g;
	l->id = id;
	l->stage = stage;
	l->nchunks = mb_geom_nchunks(g);
	size_t words = (l->nchunks + 63) / 64;
	l->got = calloc(words, sizeof(uint64_t));
	l->data = calloc(words, sizeof(uint64_t));
	if (!l->got || !l->data) {
		mb_loader_free(l);
		return NULL;
	}
	l->state = L_RECHDR;
	l->phase = P_START;
	l->index = 1;
	return l;
}

struct mb_loader *mb_loader_new(const struct mb_geom *g, const char *version, uint8_t *stage)
{
	return mb_loader_new_id(g, mb_stream_id_find(version), stage);
}

void mb_loader_free(struct mb_loader *l)
{
	if (!l)
		return;
	free(l->got);
	free(l->data);
	free(l);
}

static void bit_set(uint64_t *bm, uint32_t i, bool v)
{
	if (v)
		bm[i / 64] |= 1ull << (i % 64);
	else
		bm[i / 64] &= ~(1ull << (i % 64));
}

static bool bit_get(const uint64_t *bm, uint32_t i)
{
	return bm[i / 64] >> (i % 64) & 1;
}

/* Record header complete: type, order and length. */
static int check_rechdr(struct mb_loader *l)
{
	l->type = mb_get32(l->hdr);
	l->len = mb_get32(l->hdr + 4);
	uint32_t t = l->type, len = l->len;

	switch (t) {
	case MB_REC_HEADER:
		if (l->phase != P_START)
			return lfail(l, "order:", "a second HEADER");
		if (len < MB_HEADER_FIXED || len > MB_HEADER_FIXED + MB_VERSION_MAX)
			return lfail(l, "format:", "length %" PRIu32 " outside %u..%u", len,
				     MB_HEADER_FIXED, MB_HEADER_FIXED + MB_VERSION_MAX);
		return 0;
	case MB_REC_CHUNK:
	case MB_REC_ZERO:
	case MB_REC_REGS:
	case MB_REC_INFLIGHT:
	case MB_REC_END:
		break;
	default:
		return lfail(l, "format:", "unknown record type");
	}
	if (l->phase == P_START)
		return lfail(l, "order:", "the stream must begin with a HEADER record");
	switch (t) {
	case MB_REC_CHUNK:
		if (l->phase != P_CHUNKS)
			return lfail(l, "order:", "storage data after the register state");
		if (len <= MB_CHUNK_PREFIX || len > MB_CHUNK_PREFIX + l->g.chunk_size)
			return lfail(l, "format:", "length %" PRIu32 " outside %u..%u", len,
				     MB_CHUNK_PREFIX + 1, MB_CHUNK_PREFIX + l->g.chunk_size);
		return 0;
	case MB_REC_ZERO:
		if (l->phase != P_CHUNKS)
			return lfail(l, "order:", "storage data after the register state");
		if (l->fmt < MB_FORMAT_2)
			return lfail(l, "format:", "a ZERO record in a format %" PRIu32 " stream "
				     "(ZERO records came with format 2)", l->fmt);
		if (len != MB_CHUNK_PREFIX)
			return lfail(l, "format:", "length %" PRIu32 ", expected %u", len,
				     MB_CHUNK_PREFIX);
		return 0;
	case MB_REC_REGS:
		if (l->phase != P_CHUNKS)
			return lfail(l, "order:", "a second REGS record");
		if (len != MB_REGS_LEN)
			return lfail(l, "format:", "length %" PRIu32 ", expected %u", len,
				     MB_REGS_LEN);
		return 0;
	case MB_REC_INFLIGHT:
		if (l->phase != P_REGS)
			return lfail(l, "order:", "INFLIGHT must follow REGS, once");
		if (len < 8 || len > MB_INFLIGHT_MAX_LEN || (len - 8) % MB_SQE_SIZE)
			return lfail(l, "format:", "length %" PRIu32 " is not 8 + n x %u (n <= %u)",
				     len, MB_SQE_SIZE, MB_MAX_INFLIGHT);
		return 0;
	default: /* END */
		if (l->phase != P_INFL)
			return lfail(l, "order:", "END before the REGS and INFLIGHT records");
		if (len != MB_END_LEN)
			return lfail(l, "format:", "length %" PRIu32 ", expected %u", len,
				     MB_END_LEN);
		return 0;
	}
}

/* CHUNK prefix complete: the index decides where the data goes. */
static int check_prefix(struct mb_loader *l)
{
	uint32_t idx = mb_get32(l->prefix);

	if (mb_get32(l->prefix + 4))
		return lfail(l, "format:", "reserved field 0x%08" PRIx32 " must be 0",
			     mb_get32(l->prefix + 4));
	if (idx >= l->nchunks)
		return lfail(l, "range:", "chunk index %" PRIu32 " beyond the %" PRIu32
			     " chunks of this device", idx, l->nchunks);
	uint32_t clen = mb_chunk_len(&l->g, idx);
	if (l->type == MB_REC_CHUNK && l->len != MB_CHUNK_PREFIX + clen)
		return lfail(l, "format:", "chunk %" PRIu32 " carries %" PRIu32
			     " bytes, it has %" PRIu32, idx, l->len - MB_CHUNK_PREFIX, clen);
	l->chunk = idx;
	l->dst = l->stage + (uint64_t)idx * l->g.chunk_size;
	return 0;
}

static int parse_header(struct mb_loader *l, const uint8_t *p)
{
	if (memcmp(p, MB_STREAM_MAGIC, 8))
		return lfail(l, "format:", "bad magic (not a memblk stream)");
	unsigned fmt = p[8] | p[9] << 8;
	if (fmt < MB_FORMAT_1 || fmt > l->id->format) {
		if (l->id->format == MB_FORMAT_1)
			return lfail(l, "version:", "memblk stream format %u, this device (%s) "
				     "reads format 1 only", fmt, l->id->version);
		return lfail(l, "version:", "memblk stream format %u, this device (%s) reads "
			     "formats 1 to %" PRIu32, fmt, l->id->version, l->id->format);
	}
	if (p[10] || p[11] || mb_get32(p + 12))
		return lfail(l, "format:", "reserved/flags fields must be 0");
	uint32_t vl = mb_get32(p + 32);
	if (MB_HEADER_FIXED + (uint64_t)vl != l->len)
		return lfail(l, "format:", "version length %" PRIu32 " disagrees with the "
			     "%" PRIu32 "-byte payload", vl, l->len);
	const char *v = (const char *)p + MB_HEADER_FIXED;
	if (memchr(v, 0, vl))
		return lfail(l, "format:", "version string contains a NUL");
	char sv[MB_VERSION_MAX + 1];
	memcpy(sv, v, vl);
	sv[vl] = 0;
	if (!mb_stream_id_accepts(l->id, sv)) {
		char also[100] = "";
		for (size_t i = 0, o = 0; l->id->accepts && l->id->accepts[i] && o < sizeof(also); i++)
			o += (size_t)snprintf(also + o, sizeof(also) - o, "%s%s", i ? ", " : " (also loads ",
					      l->id->accepts[i]);
		if (also[0] && strlen(also) < sizeof(also) - 1)
			strcat(also, ")");
		return lfail(l, "version:", "stream device version '%.*s', this device is '%s'%s",
			     (int)(vl > 64 ? 64 : vl), v, l->id->version, also);
	}
	struct mb_geom g = { mb_get64(p + 16), mb_get32(p + 24), mb_get32(p + 28) };
	if (g.size != l->g.size || g.block_size != l->g.block_size ||
	    g.chunk_size != l->g.chunk_size)
		return lfail(l, "geometry:", "stream storage %" PRIu64 " B / block %" PRIu32
			     " / chunk %" PRIu32 ", this device %" PRIu64 " / %" PRIu32 " / %" PRIu32,
			     g.size, g.block_size, g.chunk_size, l->g.size, l->g.block_size,
			     l->g.chunk_size);
	l->fmt = fmt;
	l->phase = P_CHUNKS;
	return 0;
}

static int parse_inflight(struct mb_loader *l, const uint8_t *p)
{
	uint32_t n = mb_get32(p);

	if (mb_get32(p + 4))
		return lfail(l, "format:", "reserved field must be 0");
	if (n > MB_MAX_INFLIGHT || 8 + (uint64_t)n * MB_SQE_SIZE != l->len)
		return lfail(l, "format:", "count %" PRIu32 " disagrees with the %" PRIu32
			     "-byte payload", n, l->len);
	if (n && !(l->regs.status & MB_STS_READY))
		return lfail(l, "registers:", "%" PRIu32 " requests in flight on queues that "
			     "are not ready", n);
	uint32_t used = (l->regs.cq_tail - l->regs.cq_head) & (l->regs.cq_size - 1);
	if (n && used + n > l->regs.cq_size - 1)
		return lfail(l, "registers:", "%" PRIu32 " requests in flight but only %" PRIu32
			     " free completion slots", n, l->regs.cq_size - 1 - used);
	for (uint32_t i = 0; i < n; i++)
		mb_sqe_decode(p + 8 + i * MB_SQE_SIZE, &l->infl[i]);
	l->ninfl = n;
	l->phase = P_INFL;
	return 0;
}

static int parse_end(struct mb_loader *l, const uint8_t *p)
{
	uint64_t n = mb_get64(p);

	if (mb_get64(p + 8))
		return lfail(l, "format:", "reserved field must be 0");
	if (n != l->index - 1)
		return lfail(l, "incomplete:", "END counts %" PRIu64 " records before it, the "
			     "stream carried %" PRIu64, n, l->index - 1);
	l->phase = P_END;
	return 0;
}

/* The crc of the current record arrived: check it, then act on the record. */
static int complete(struct mb_loader *l)
{
	uint32_t stored = mb_get32(l->crcb);
	char why[160];
	int rc = 0;

	if (stored != l->crc)
		return lfail(l, "CRC:", "mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32
			     ")", stored, l->crc);
	switch (l->type) {
	case MB_REC_HEADER:
		rc = parse_header(l, l->buf);
		break;
	case MB_REC_CHUNK:
	case MB_REC_ZERO:
		if (l->type == MB_REC_ZERO && bit_get(l->data, l->chunk))
			memset(l->dst, 0, mb_chunk_len(&l->g, l->chunk));
		bit_set(l->got, l->chunk, true);
		bit_set(l->data, l->chunk, l->type == MB_REC_CHUNK);
		break;
	case MB_REC_REGS:
		mb_regs_decode(l->buf, &l->regs);
		if (mb_regs_check(&l->regs, why, sizeof(why)))
			return lfail(l, "registers:", "%s", why);
		l->phase = P_REGS;
		break;
	case MB_REC_INFLIGHT:
		rc = parse_inflight(l, l->buf);
		break;
	case MB_REC_END:
		rc = parse_end(l, l->buf);
		break;
	}
	if (rc)
		return rc;
	l->state = l->type == MB_REC_END ? L_AFTER : L_RECHDR;
	l->have = 0;
	l->index++;
	return 0;
}

/* Gather up to want-have bytes of a fixed piece; returns bytes taken. */
static size_t gather(struct mb_loader *l, uint8_t *dst, size_t want, const uint8_t *p, size_t n)
{
	size_t k = want - l->have;
	if (k > n)
		k = n;
	memcpy(dst + l->have, p, k);
	l->have += k;
	return k;
}

int mb_loader_write(struct mb_loader *l, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		size_t k = 0;
		switch (l->state) {
		case L_FAILED:
			return -EINVAL;
		case L_AFTER:
			return lfail(l, "format:", "data after the END record");
		case L_RECHDR:
			k = gather(l, l->hdr, MB_REC_HDR, p, len);
			if (l->have < MB_REC_HDR)
				break;
			if (check_rechdr(l))
				return -EINVAL;
			l->crc = devmig_crc32c(0, l->hdr, MB_REC_HDR);
			l->have = 0;
			l->state = (l->type == MB_REC_CHUNK || l->type == MB_REC_ZERO) ? L_PREFIX
											: L_SMALL;
			break;
		case L_SMALL:
			k = gather(l, l->buf, l->len, p, len);
			if (l->have == l->len) {
				l->crc = devmig_crc32c(l->crc, l->buf, l->len);
				l->have = 0;
				l->state = L_CRC;
			}
			break;
		case L_PREFIX:
			k = gather(l, l->prefix, MB_CHUNK_PREFIX, p, len);
			if (l->have < MB_CHUNK_PREFIX)
				break;
			if (check_prefix(l))
				return -EINVAL;
			l->crc = devmig_crc32c(l->crc, l->prefix, MB_CHUNK_PREFIX);
			l->have = 0;
			l->state = l->type == MB_REC_CHUNK ? L_DATA : L_CRC;
			break;
		case L_DATA: {
			size_t want = l->len - MB_CHUNK_PREFIX - l->have;
			k = len < want ? len : want;
			memcpy(l->dst + l->have, p, k);
			l->crc = devmig_crc32c(l->crc, p, k);
			l->have += k;
			if (k == want) {
				l->have = 0;
				l->state = L_CRC;
			}
			break;
		}
		case L_CRC:
			k = gather(l, l->crcb, MB_REC_CRC, p, len);
			if (l->have == MB_REC_CRC && complete(l))
				return -EINVAL;
			break;
		}
		p += k;
		len -= k;
		l->total += k;
	}
	return 0;
}

int mb_loader_finish(struct mb_loader *l)
{
	if (l->state == L_FAILED)
		return -EINVAL;
	if (l->state != L_AFTER) {
		size_t into = 0;
		switch (l->state) {
		case L_RECHDR:
			into = l->have;
			break;
		case L_SMALL:
		case L_PREFIX:
			into = MB_REC_HDR + l->have;
			break;
		case L_DATA:
			into = MB_REC_HDR + MB_CHUNK_PREFIX + l->have;
			break;
		case L_CRC:
			into = MB_REC_HDR + l->len + l->have;
			break;
		default:
			break;
		}
		if (into == 0)
			snprintf(l->why, sizeof(l->why),
				 "truncated: the stream ends after %" PRIu64 " records (%" PRIu64
				 " bytes), before its END record", l->index - 1, l->total);
		else
			snprintf(l->why, sizeof(l->why),
				 "truncated: the stream ends %zu bytes into record %" PRIu64 " (%s)",
				 into, l->index, into >= MB_REC_HDR ? rec_name(l->type) : "header");
		l->state = L_FAILED;
		return -EINVAL;
	}
	for (uint32_t i = 0; i < l->nchunks; i++) {
		if (!bit_get(l->got, i)) {
			snprintf(l->why, sizeof(l->why),
				 "incomplete: chunk %" PRIu32 " of %" PRIu32 " never arrived", i,
				 l->nchunks);
			l->state = L_FAILED;
			return -EINVAL;
		}
	}
	return 0;
}

const char *mb_loader_error(const struct mb_loader *l)
{
	return l->why;
}

const struct mb_regs *mb_loader_regs(const struct mb_loader *l)
{
	return &l->regs;
}

unsigned mb_loader_inflight(const struct mb_loader *l, struct mb_sqe *out)
{
	memcpy(out, l->infl, l->ninfl * sizeof(*out));
	return l->ninfl;
}

bool mb_loader_chunk_data(const struct mb_loader *l, uint32_t index)
{
	return index < l->nchunks && bit_get(l->data, index);
}

uint32_t mb_loader_format(const struct mb_loader *l)
{
	return l->fmt;
}

uint64_t mb_loader_total(const struct mb_loader *l)
{
	return l->total;
}
