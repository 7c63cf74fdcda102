/* SPDX-License-Identifier: MIT */
/*
 * memblk's stream loader (devices/memblk/memblk_stream.c), pure: no server,
 * no device. A test-side writer builds streams record by record, so the
 * loader's own checks are reached directly (the core's framing crc would
 * catch most corruptions first when going through a server).
 *
 * Two variants: v2 (memblk, format 2 with ZERO records, loads v1 state
 * too) and v1 (memblk1, format 1, refuses format 2 and v2 state).
 *
 * With MEMBLK_STREAM_SEED_DIR=<dir> the test "fuzz_seeds" writes the seed
 * corpus of fuzz/fuzz_memblk_stream.c there.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "memblk/memblk_stream.h"
#include "stream.h"

#define VERSION "1af4:10f1-memblk-v2"
#define VERSION1 "1af4:10f1-memblk-v1"

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- a test-side stream writer ---- */

struct sb {
	uint8_t *p;
	size_t len, cap;
	uint64_t nrec;
};

static void sb_put(struct sb *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 4096;
		while (nc < b->len + n)
			nc *= 2;
		b->p = realloc(b->p, nc);
		assert_non_null(b->p);
		b->cap = nc;
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void sb_rec(struct sb *b, uint32_t type, const void *a, size_t alen, const void *c,
		   size_t clen)
{
	uint8_t h[MB_REC_HDR], crc[4];
	mb_rec_begin(h, type, (uint32_t)(alen + clen));
	uint32_t x = devmig_crc32c(0, h, sizeof(h));
	if (alen)
		x = devmig_crc32c(x, a, alen);
	if (clen)
		x = devmig_crc32c(x, c, clen);
	mb_put32(crc, x);
	sb_put(b, h, sizeof(h));
	sb_put(b, a, alen);
	sb_put(b, c, clen);
	sb_put(b, crc, 4);
	b->nrec++;
}

static void sb_header(struct sb *b, const struct mb_geom *g, const char *version,
		      uint32_t format)
{
	uint8_t rec[MB_REC_OVERHEAD + MB_HEADER_FIXED + MB_VERSION_MAX];
	size_t n = mb_header_record(rec, g, version, format);
	sb_put(b, rec, n);
	b->nrec++;
}

static void sb_chunk(struct sb *b, uint32_t idx, const uint8_t *data, size_t len)
{
	uint8_t pre[8];
	mb_put32(pre, idx);
	mb_put32(pre + 4, 0);
	sb_rec(b, data ? MB_REC_CHUNK : MB_REC_ZERO, pre, 8, data, data ? len : 0);
}

static void sb_regs(struct sb *b, const struct mb_regs *r)
{
	uint8_t p[MB_REGS_LEN];
	mb_regs_encode(r, p);
	sb_rec(b, MB_REC_REGS, p, sizeof(p), NULL, 0);
}

static void sb_inflight(struct sb *b, const struct mb_sqe *e, unsigned n)
{
	uint8_t p[8 + MB_MAX_INFLIGHT * MB_SQE_SIZE + 64];
	mb_put32(p, n);
	mb_put32(p + 4, 0);
	for (unsigned i = 0; i < n; i++)
		mb_sqe_encode(&e[i], p + 8 + i * MB_SQE_SIZE);
	sb_rec(b, MB_REC_INFLIGHT, p, 8 + (size_t)n * MB_SQE_SIZE, NULL, 0);
}

static void sb_end(struct sb *b)
{
	uint8_t p[16];
	mb_put64(p, b->nrec);
	mb_put64(p + 8, 0);
	sb_rec(b, MB_REC_END, p, 16, NULL, 0);
}

/* ---- a reference device state and its stream ---- */

struct ref {
	struct mb_geom g;
	uint8_t *storage;
	bool zero[64];
	struct mb_regs regs;
	struct mb_sqe infl[MB_MAX_INFLIGHT];
	unsigned ninfl;
};

static void ref_init(struct ref *r, uint64_t size, uint32_t chunk, uint64_t seed)
{
	memset(r, 0, sizeof(*r));
	r->g = (struct mb_geom){ size, MB_BLOCK_SIZE, chunk };
	r->storage = calloc(1, size);
	assert_non_null(r->storage);
	for (size_t i = 0; i < size; i++)
		r->storage[i] = (uint8_t)rnd(&seed);
	/* chunk 1 all zeros, sent as a ZERO record */
	if (mb_geom_nchunks(&r->g) > 2) {
		r->zero[1] = true;
		memset(r->storage + chunk, 0, chunk);
	}
	r->regs = (struct mb_regs){
		.control = MB_CTRL_EN, .status = MB_STS_READY, .sq_base = 0x10000,
		.cq_base = 0x20000, .sq_size = 64, .cq_size = 32, .sq_tail = 9, .sq_head = 7,
		.cq_tail = 3, .cq_head = 1, .cq_phase = 1, .completed = 35,
	};
	r->ninfl = 3;
	for (unsigned i = 0; i < r->ninfl; i++)
		r->infl[i] = (struct mb_sqe){ .opcode = MB_OP_WRITE, .tag = 100 + i, .lba = i,
					      .nblocks = 1, .buf_len = 4096, .buf = 0x40000 };
}

static void ref_free(struct ref *r)
{
	free(r->storage);
}

/* The stream of r as variant id writes it: chunks in reverse order, chunk 2
 * (if any) sent twice, the first time with junk (the last record of a chunk
 * wins); the zero chunk as a ZERO record in format 2, its zeros in format 1. */
static void ref_stream_raw(const struct ref *r, const char *version, uint32_t format,
			   bool zero_records, struct sb *b)
{
	uint32_t n = mb_geom_nchunks(&r->g);
	memset(b, 0, sizeof(*b));
	sb_header(b, &r->g, version, format);
	uint8_t *junk = malloc(r->g.chunk_size);
	assert_non_null(junk);
	memset(junk, 0xa5, r->g.chunk_size);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t j = n - 1 - i, len = mb_chunk_len(&r->g, j);
		if (j == 2)
			sb_chunk(b, j, junk, len);
		if (j < 64 && r->zero[j] && zero_records)
			sb_chunk(b, j, NULL, 0);
		else
			sb_chunk(b, j, r->storage + (uint64_t)j * r->g.chunk_size, len);
	}
	free(junk);
	sb_regs(b, &r->regs);
	sb_inflight(b, r->infl, r->ninfl);
	sb_end(b);
}

static void ref_stream_as(const struct ref *r, const struct mb_stream_id *id, struct sb *b)
{
	ref_stream_raw(r, id->version, id->format, id->format >= MB_FORMAT_2, b);
}

static void ref_stream(const struct ref *r, struct sb *b)
{
	ref_stream_as(r, &mb_stream_v2, b);
}

/* Feed in pieces from a PRNG (max_seg 0: whole). Returns the first error. */
static int feed(struct mb_loader *l, const uint8_t *p, size_t len, uint64_t seed, size_t max_seg)
{
	size_t off = 0;
	while (off < len) {
		size_t n = max_seg ? 1 + (size_t)(rnd(&seed) % max_seg) : len - off;
		if (n > len - off)
			n = len - off;
		int rc = mb_loader_write(l, p + off, n);
		if (rc)
			return rc;
		off += n;
	}
	return 0;
}

static void check_loaded(const struct ref *r, struct mb_loader *l, const uint8_t *stage)
{
	bool zero_records = mb_loader_format(l) >= MB_FORMAT_2;
	assert_memory_equal(stage, r->storage, r->g.size);
	assert_memory_equal(mb_loader_regs(l), &r->regs, sizeof(r->regs));
	struct mb_sqe got[MB_MAX_INFLIGHT];
	assert_int_equal(mb_loader_inflight(l, got), r->ninfl);
	assert_memory_equal(got, r->infl, r->ninfl * sizeof(got[0]));
	for (uint32_t i = 0; i < mb_geom_nchunks(&r->g); i++)
		assert_int_equal(mb_loader_chunk_data(l, i), !(zero_records && i < 64 && r->zero[i]));
}

/* Load s into a fresh loader of variant id; 0 or -EINVAL with why copied out. */
static int load_as(const struct mb_stream_id *id, const struct ref *r, const uint8_t *s,
		   size_t len, uint8_t *stage, uint64_t seed, size_t max_seg, char *why, size_t wl)
{
	struct mb_loader *l = mb_loader_new_id(&r->g, id, stage);
	assert_non_null(l);
	int rc = feed(l, s, len, seed, max_seg);
	if (!rc)
		rc = mb_loader_finish(l);
	snprintf(why, wl, "%s", mb_loader_error(l));
	if (!rc)
		check_loaded(r, l, stage);
	mb_loader_free(l);
	return rc;
}

/* The same with the current variant (v2). */
static int load(const struct ref *r, const uint8_t *s, size_t len, uint8_t *stage, uint64_t seed,
		size_t max_seg, char *why, size_t wl)
{
	return load_as(&mb_stream_v2, r, s, len, stage, seed, max_seg, why, wl);
}

/* ---- tests ---- */

static void roundtrip_any_segmentation(void **state)
{
	(void)state;
	struct ref r;
	struct sb b;
	char why[256];

	ref_init(&r, 5 * 4096 + 8192, 8192, 1); /* last chunk partial (4096 of 8192) */
	ref_stream(&r, &b);
	uint8_t *stage = calloc(1, r.g.size);
	static const size_t segs[] = { 0, 1, 2, 3, 7, 13, 100, 4099, 9000 };
	for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
		memset(stage, 0, r.g.size); /* the loader's contract: stage starts zeroed */
		if (load(&r, b.p, b.len, stage, 42 + i, segs[i], why, sizeof(why)))
			fail_msg("segmentation %zu: %s", segs[i], why);
	}
	free(stage);
	free(b.p);
	ref_free(&r);
}

static void every_truncation_refused(void **state)
{
	(void)state;
	struct ref r;
	struct sb b;
	char why[256];

	ref_init(&r, 4 * 4096, 4096, 2);
	ref_stream(&r, &b);
	uint8_t *stage = calloc(1, r.g.size);
	for (size_t cut = 0; cut < b.len; cut++) {
		int rc = load(&r, b.p, cut, stage, cut, cut % 3 ? 0 : 1 + cut % 97, why, sizeof(why));
		if (rc != -EINVAL || strncmp(why, "truncated:", 10))
			fail_msg("cut at %zu of %zu: rc %d, '%s'", cut, b.len, rc, why);
	}
	assert_int_equal(load(&r, b.p, b.len, stage, 0, 0, why, sizeof(why)), 0);
	free(stage);
	free(b.p);
	ref_free(&r);
}

static bool known_class(const char *why)
{
	static const char *const cls[] = { "version:", "geometry:", "CRC:", "truncated:",
					   "incomplete:", "format:", "order:", "range:",
					   "registers:" };
	for (size_t i = 0; i < sizeof(cls) / sizeof(cls[0]); i++)
		if (!strncmp(why, cls[i], strlen(cls[i])))
			return true;
	return false;
}

static void every_flip_refused(void **state)
{
	(void)state;
	struct ref r;
	struct sb b;
	char why[256];
	uint64_t seed = 3;

	ref_init(&r, 4 * 4096, 4096, 3);
	ref_stream(&r, &b);
	uint8_t *stage = calloc(1, r.g.size);
	unsigned crc = 0, other = 0;
	for (size_t off = 0; off < b.len; off++) {
		uint8_t mask = (uint8_t)(1u << (rnd(&seed) % 8));
		b.p[off] ^= mask;
		int rc = load(&r, b.p, b.len, stage, off, off % 2 ? 0 : 64, why, sizeof(why));
		b.p[off] ^= mask;
		if (rc != -EINVAL || !known_class(why))
			fail_msg("flip 0x%02x at %zu: rc %d, '%s'", mask, off, rc, why);
		if (!strncmp(why, "CRC:", 4))
			crc++;
		else
			other++;
	}
	print_message("# %zu flips: %u refused by CRC, %u by an earlier check\n", b.len, crc, other);
	assert_true(crc > b.len / 2);
	assert_true(other > 0); /* flips in type/len fields are caught before the crc */
	free(stage);
	free(b.p);
	ref_free(&r);
}

/* Build a stream with one thing wrong (crcs all valid) and expect class. */
enum bad {
	BAD_FORMAT_VERSION, BAD_DEVICE_VERSION, BAD_SIZE, BAD_CHUNK_SIZE, BAD_BLOCK_SIZE,
	BAD_MAGIC, BAD_INDEX, BAD_CHUNK_LEN, MISSING_CHUNK, REGS_FIRST, CHUNK_AFTER_REGS,
	END_COUNT, INFLIGHT_COUNT, INFLIGHT_NOT_READY, INFLIGHT_NO_ROOM, REGS_INDEX, REGS_BITS,
	AFTER_END, UNKNOWN_TYPE, HUGE_LEN, NO_INFLIGHT, TWO_HEADERS, ZERO_LEN,
	BAD_COUNT
};

static void build_bad_as(const struct ref *r, const struct mb_stream_id *id, enum bad what,
			 struct sb *b)
{
	struct mb_geom g = r->g;
	struct mb_regs regs = r->regs;
	uint32_t n = mb_geom_nchunks(&g);
	const char *ver = id->version;

	memset(b, 0, sizeof(*b));
	if (what == BAD_SIZE)
		g.size += 4096;
	if (what == BAD_CHUNK_SIZE)
		g.chunk_size *= 2;
	if (what == BAD_BLOCK_SIZE)
		g.block_size = 512;
	if (what == BAD_DEVICE_VERSION)
		ver = "1af4:10f1-memblk-v3";
	if (what == REGS_FIRST) {
		sb_regs(b, &regs);
	}
	sb_header(b, &g, ver, id->format);
	if (what == BAD_FORMAT_VERSION || what == BAD_MAGIC) {
		/* rewrite the header payload and reseal its crc */
		uint8_t *p = b->p + MB_REC_HDR;
		if (what == BAD_FORMAT_VERSION)
			p[8] = (uint8_t)(id->format + 1);
		else
			p[0] = 'X';
		size_t plen = b->len - MB_REC_OVERHEAD;
		mb_put32(b->p + MB_REC_HDR + plen, devmig_crc32c(0, b->p, MB_REC_HDR + plen));
	}
	if (what == TWO_HEADERS)
		sb_header(b, &g, ver, id->format);
	for (uint32_t i = 0; i < n; i++) {
		if (what == MISSING_CHUNK && i == n - 1)
			continue;
		uint32_t idx = what == BAD_INDEX && i == 0 ? n : i;
		size_t len = mb_chunk_len(&r->g, i);
		if (what == BAD_CHUNK_LEN && i == 0)
			len -= 1;
		sb_chunk(b, idx, r->storage + (uint64_t)i * r->g.chunk_size, len);
	}
	if (what == HUGE_LEN) {
		uint8_t h[8];
		mb_rec_begin(h, MB_REC_CHUNK, 0xfffffff0u);
		sb_put(b, h, 8);
		return;
	}
	if (what == ZERO_LEN) {
		uint8_t h[8];
		mb_rec_begin(h, MB_REC_ZERO, 9);
		sb_put(b, h, 8);
		return;
	}
	if (what == UNKNOWN_TYPE)
		sb_rec(b, 99, "x", 1, NULL, 0);
	if (what == REGS_INDEX)
		regs.sq_tail = regs.sq_size;
	if (what == REGS_BITS)
		regs.control |= 0x80;
	if (what == INFLIGHT_NOT_READY) {
		regs.status = 0;
		regs.control = 0;
		regs.sq_tail = regs.sq_head = regs.cq_tail = regs.cq_head = 0;
	}
	if (what == INFLIGHT_NO_ROOM) {
		regs.cq_size = 4;
		regs.cq_tail = 2;
		regs.cq_head = 3; /* 3 used of 3 usable */
	}
	if (what != REGS_FIRST)
		sb_regs(b, &regs);
	if (what == CHUNK_AFTER_REGS)
		sb_chunk(b, 0, r->storage, mb_chunk_len(&r->g, 0));
	if (what == INFLIGHT_COUNT) {
		uint8_t p[8];
		mb_put32(p, MB_MAX_INFLIGHT + 1);
		mb_put32(p + 4, 0);
		sb_rec(b, MB_REC_INFLIGHT, p, 8, NULL, 0);
	} else if (what == BAD_COUNT) {
		uint8_t p[8 + MB_SQE_SIZE] = { 0 };
		mb_put32(p, 2); /* says 2, carries 1 */
		sb_rec(b, MB_REC_INFLIGHT, p, sizeof(p), NULL, 0);
	} else if (what != NO_INFLIGHT) {
		sb_inflight(b, r->infl, r->ninfl);
	}
	if (what == END_COUNT)
		b->nrec++;
	sb_end(b);
	if (what == AFTER_END)
		sb_put(b, "z", 1);
}


static void semantic_corruptions_refused(void **state)
{
	(void)state;
	static const struct {
		enum bad what;
		const char *cls;
		const char *detail;
	} cases[] = {
		{ BAD_FORMAT_VERSION, "version:", "format 3" },
		{ BAD_DEVICE_VERSION, "version:", "memblk-v3" },
		{ BAD_SIZE, "geometry:", "storage" },
		{ BAD_CHUNK_SIZE, "geometry:", "chunk" },
		{ BAD_BLOCK_SIZE, "geometry:", "block 512" },
		{ BAD_MAGIC, "format:", "magic" },
		{ BAD_INDEX, "range:", "chunk index 4" },
		{ BAD_CHUNK_LEN, "format:", "carries 4095" },
		{ MISSING_CHUNK, "incomplete:", "chunk 3" },
		{ REGS_FIRST, "order:", "HEADER" },
		{ CHUNK_AFTER_REGS, "order:", "after the register state" },
		{ END_COUNT, "incomplete:", "END counts" },
		{ INFLIGHT_COUNT, "format:", "count 33" },
		{ BAD_COUNT, "format:", "count 2" },
		{ INFLIGHT_NOT_READY, "registers:", "not ready" },
		{ INFLIGHT_NO_ROOM, "registers:", "free completion" },
		{ REGS_INDEX, "registers:", "index beyond" },
		{ REGS_BITS, "registers:", "CONTROL" },
		{ AFTER_END, "format:", "after the END" },
		{ UNKNOWN_TYPE, "format:", "unknown record type" },
		{ HUGE_LEN, "format:", "length 4294967280" },
		{ ZERO_LEN, "format:", "expected 8" },
		{ NO_INFLIGHT, "order:", "END before" },
		{ TWO_HEADERS, "order:", "second HEADER" },
	};
	struct ref r;
	char why[256];

	ref_init(&r, 4 * 4096, 4096, 4);
	uint8_t *stage = calloc(1, r.g.size);
	/* Both variants' loaders, each fed its own format */
	static const struct mb_stream_id *const ids[] = { &mb_stream_v2, &mb_stream_v1 };
	for (size_t v = 0; v < 2; v++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct sb b;
			const char *cls = cases[i].cls, *detail = cases[i].detail;
			if (ids[v] == &mb_stream_v1 && cases[i].what == BAD_FORMAT_VERSION)
				detail = "format 2";
			if (ids[v] == &mb_stream_v1 && cases[i].what == ZERO_LEN)
				detail = "ZERO record in a format 1"; /* no ZERO records at all */
			build_bad_as(&r, ids[v], cases[i].what, &b);
			for (size_t seg = 0; seg <= 1; seg++) {
				int rc = load_as(ids[v], &r, b.p, b.len, stage, i, seg, why, sizeof(why));
				if (rc != -EINVAL || strncmp(why, cls, strlen(cls)) || !strstr(why, detail))
					fail_msg("%s case %zu (seg %zu): rc %d, '%s', wanted %s ... %s",
						 ids[v]->version, i, seg, rc, why, cls, detail);
			}
			free(b.p);
		}
	}
	free(stage);
	ref_free(&r);
}

static void expect_refused(const struct mb_stream_id *id, const struct ref *r, const struct sb *b,
			   uint8_t *stage, const char *cls, const char *d1, const char *d2)
{
	char why[256];
	for (size_t seg = 0; seg <= 1; seg++) {
		int rc = load_as(id, r, b->p, b->len, stage, 7, seg, why, sizeof(why));
		if (rc != -EINVAL || strncmp(why, cls, strlen(cls)) || !strstr(why, d1) ||
		    (d2 && !strstr(why, d2)))
			fail_msg("%s loader (seg %zu): rc %d, '%s', wanted %s ... %s ... %s", id->version,
				 seg, rc, why, cls, d1, d2 ? d2 : "");
	}
}

/* The two variants: v2 loads v1 streams (format 1: every chunk whole, the
 * zero one too), v1 refuses v2 streams at their HEADER; a ZERO record has
 * no place in a format 1 stream; each refuses versions it does not accept. */
static void variants_v1_and_v2(void **state)
{
	(void)state;
	struct ref r;
	struct sb b1, b2, b;
	char why[256];

	assert_ptr_equal(mb_stream_id_find(VERSION1), &mb_stream_v1);
	assert_ptr_equal(mb_stream_id_find(VERSION), &mb_stream_v2);
	assert_null(mb_stream_id_find("1af4:10f1-memblk-v3"));
	assert_int_equal(mb_stream_v1.format, 1);
	assert_int_equal(mb_stream_v2.format, 2);
	assert_true(mb_stream_id_accepts(&mb_stream_v2, VERSION1));
	assert_true(mb_stream_id_accepts(&mb_stream_v2, VERSION));
	assert_true(mb_stream_id_accepts(&mb_stream_v1, VERSION1));
	assert_false(mb_stream_id_accepts(&mb_stream_v1, VERSION));

	ref_init(&r, 4 * 4096, 4096, 6); /* chunk 1 all zeros */
	uint8_t *stage = calloc(1, r.g.size);
	assert_null(mb_loader_new(&r.g, "1af4:10f1-memblk-v3", stage));
	ref_stream_as(&r, &mb_stream_v1, &b1);
	ref_stream_as(&r, &mb_stream_v2, &b2);
	/* format 1 carries the zero chunk's bytes, format 2 a ZERO record */
	assert_int_equal(b1.len, b2.len + 4096);

	static const size_t segs[] = { 0, 1, 97 };
	for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
		memset(stage, 0, r.g.size);
		if (load_as(&mb_stream_v1, &r, b1.p, b1.len, stage, i, segs[i], why, sizeof(why)))
			fail_msg("v1 -> v1: %s", why);
		memset(stage, 0, r.g.size);
		if (load_as(&mb_stream_v2, &r, b1.p, b1.len, stage, i, segs[i], why, sizeof(why)))
			fail_msg("v1 -> v2: %s", why);
		memset(stage, 0, r.g.size);
		if (load_as(&mb_stream_v2, &r, b2.p, b2.len, stage, i, segs[i], why, sizeof(why)))
			fail_msg("v2 -> v2: %s", why);
	}
	/* v2 -> v1: refused at the HEADER, naming the format and the loader */
	expect_refused(&mb_stream_v1, &r, &b2, stage, "version:", "format 2", VERSION1);

	/* The version alone decides too: v2 state written in format 1 */
	ref_stream_raw(&r, VERSION, MB_FORMAT_1, false, &b);
	expect_refused(&mb_stream_v1, &r, &b, stage, "version:", "memblk-v2", VERSION1);
	memset(stage, 0, r.g.size);
	assert_int_equal(load_as(&mb_stream_v2, &r, b.p, b.len, stage, 0, 0, why, sizeof(why)), 0);
	free(b.p);

	/* A ZERO record in a format 1 stream is malformed, for both loaders */
	ref_stream_raw(&r, VERSION1, MB_FORMAT_1, true, &b);
	expect_refused(&mb_stream_v1, &r, &b, stage, "format:", "ZERO record in a format 1", NULL);
	expect_refused(&mb_stream_v2, &r, &b, stage, "format:", "ZERO record in a format 1", NULL);
	free(b.p);

	/* Formats neither reads */
	ref_stream_raw(&r, VERSION1, 0, false, &b);
	expect_refused(&mb_stream_v1, &r, &b, stage, "version:", "format 0", NULL);
	expect_refused(&mb_stream_v2, &r, &b, stage, "version:", "format 0", "formats 1 to 2");
	free(b.p);
	ref_stream_raw(&r, VERSION, 3, true, &b);
	expect_refused(&mb_stream_v2, &r, &b, stage, "version:", "format 3", NULL);
	free(b.p);

	/* A version neither accepts: the reason lists what the loader takes */
	ref_stream_raw(&r, "1af4:10f1-memblk-v3", MB_FORMAT_2, true, &b);
	expect_refused(&mb_stream_v2, &r, &b, stage, "version:", "memblk-v3",
		       "also loads " VERSION1);
	free(b.p);

	free(b1.p);
	free(b2.p);
	free(stage);
	ref_free(&r);
}

static void geometry_and_regs_helpers(void **state)
{
	(void)state;
	char why[160];
	struct mb_geom g = { 1 << 20, 4096, 65536 };
	assert_int_equal(mb_geom_check(&g, why, sizeof(why)), 0);
	assert_int_equal(mb_geom_nchunks(&g), 16);
	g.size = (1 << 20) + 4096;
	assert_int_equal(mb_geom_nchunks(&g), 17);
	assert_int_equal(mb_chunk_len(&g, 16), 4096);
	g.chunk_size = 3 * 4096;
	assert_int_equal(mb_geom_check(&g, why, sizeof(why)), -EINVAL);
	g.chunk_size = 2u << 20;
	assert_int_equal(mb_geom_check(&g, why, sizeof(why)), -EINVAL);
	g = (struct mb_geom){ 4095, 4096, 4096 };
	assert_int_equal(mb_geom_check(&g, why, sizeof(why)), -EINVAL);
	assert_null(mb_loader_new(&g, VERSION, (uint8_t *)why));

	struct mb_regs r = { .cq_phase = 1 }, r2;
	uint8_t enc[MB_REGS_LEN];
	assert_int_equal(mb_regs_check(&r, why, sizeof(why)), 0);
	r.sq_size = 3; /* a disabled device may hold any ring size */
	assert_int_equal(mb_regs_check(&r, why, sizeof(why)), 0);
	r.status = MB_STS_READY;
	assert_int_equal(mb_regs_check(&r, why, sizeof(why)), -EINVAL); /* live without EN */
	r.control = MB_CTRL_EN;
	assert_int_equal(mb_regs_check(&r, why, sizeof(why)), -EINVAL); /* live, size 3 */
	r.sq_size = 4;
	r.cq_size = 8;
	r.sq_base = 1ull << 40;
	r.cq_base = 64;
	assert_int_equal(mb_regs_check(&r, why, sizeof(why)), 0);
	r.cq_base = 65;
	assert_int_equal(mb_regs_check(&r, why, sizeof(why)), -EINVAL);
	r.cq_base = 64;
	mb_regs_encode(&r, enc);
	mb_regs_decode(enc, &r2);
	assert_memory_equal(&r, &r2, sizeof(r));

	struct mb_sqe e = { 2, 0, 0, 0xdeadbeef, 1ull << 50, 7, 28672, 0x123456789ull }, e2;
	uint8_t se[MB_SQE_SIZE];
	mb_sqe_encode(&e, se);
	assert_memory_equal(se, &e, sizeof(e)); /* the wire layout is the struct's (LE host) */
	mb_sqe_decode(se, &e2);
	assert_memory_equal(&e, &e2, sizeof(e));
}

/* Seeds for fuzz/fuzz_memblk_stream.c: one leading byte (segmentation seed;
 * bit 7: the target reseals crcs) then a stream for its fixed geometry
 * (12 KiB storage, 4 KiB chunks). The target loads as "1af4:10f1-memblk-v1"
 * (a v1 loader): seeds 0-4 are v1 streams (format 1), seed 5 a v2 stream
 * (ZERO records), which a v1 loader refuses and a v2 loader loads. */
static void fuzz_seeds(void **state)
{
	(void)state;
	const char *dir = getenv("MEMBLK_STREAM_SEED_DIR");
	struct ref r;
	ref_init(&r, 3 * 4096, 4096, 5);
	static const enum bad bads[] = { BAD_INDEX, INFLIGHT_NO_ROOM, CHUNK_AFTER_REGS };
	uint8_t *stage = calloc(1, r.g.size);
	char why[256];
	for (int i = 0; i < 6; i++) {
		struct sb b;
		if (i < 2) {
			ref_stream_as(&r, &mb_stream_v1, &b);
		} else if (i < 5) {
			build_bad_as(&r, &mb_stream_v1, bads[i - 2], &b);
		} else {
			ref_stream_as(&r, &mb_stream_v2, &b);
		}
		/* what the target will see, without its reseal (valid crcs here) */
		memset(stage, 0, r.g.size);
		int rc = load_as(&mb_stream_v1, &r, b.p, b.len, stage, 0, 0, why, sizeof(why));
		assert_int_equal(rc, i < 2 ? 0 : -EINVAL);
		uint8_t lead = (uint8_t)(i | (i >= 2 ? 0x80 : 0));
		if (dir) {
			char path[4096];
			snprintf(path, sizeof(path), "%s/seed-%d", dir, i);
			FILE *f = fopen(path, "wb");
			assert_non_null(f);
			fwrite(&lead, 1, 1, f);
			fwrite(b.p, 1, b.len, f);
			fclose(f);
		}
		free(b.p);
	}
	free(stage);
	ref_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(geometry_and_regs_helpers),
		cmocka_unit_test(roundtrip_any_segmentation),
		cmocka_unit_test(every_truncation_refused),
		cmocka_unit_test(every_flip_refused),
		cmocka_unit_test(semantic_corruptions_refused),
		cmocka_unit_test(variants_v1_and_v2),
		cmocka_unit_test(fuzz_seeds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
