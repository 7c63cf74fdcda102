/* SPDX-License-Identifier: MIT */
/*
 * memblk's stream loader (devices/memblk/memblk_stream.c) fed hostile bytes.
 *
 * Input: one byte, then the stream. The byte seeds the segmentation; when
 * its bit 7 is set the target first reseals every record's crc (walking the
 * records as the loader would), so that mutations get past the crc to the
 * format, order, range, geometry and register checks behind it. The stream
 * goes to one loader in a single write and to a second one in segments of
 * 1..N bytes from a PRNG seeded by that byte; both must agree on the outcome
 * and the reason, and on success on everything loaded. A success must also
 * leave registers that pass mb_regs_check and at most MB_MAX_INFLIGHT
 * requests. Fixed geometry: 12 KiB storage, 4 KiB chunks.
 * Seeds: fuzz/corpus/memblk_stream (written by tests/test_memblk_stream.c
 * with MEMBLK_STREAM_SEED_DIR set).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../devices/memblk/memblk_stream.h"
#include "devmig/device.h" /* devmig_crc32c */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c)) {                                                              \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#c);                                                     \
			abort();                                                         \
		}                                                                        \
	} while (0)

#define VERSION "1af4:10f1-memblk-v2" /* reads formats 1 and 2 */
#define SIZE (12u << 10)

static void reseal(uint8_t *p, size_t len)
{
	size_t off = 0;
	while (len - off >= MB_REC_HDR) {
		uint64_t plen = mb_get32(p + off + 4);
		if (plen > len - off - MB_REC_HDR || len - off - MB_REC_HDR - plen < MB_REC_CRC)
			return;
		size_t body = MB_REC_HDR + (size_t)plen;
		mb_put32(p + off + body, devmig_crc32c(0, p + off, body));
		off += body + MB_REC_CRC;
	}
}

struct outcome {
	int rc;
	char why[256];
	struct mb_regs regs;
	unsigned ninfl;
	struct mb_sqe infl[MB_MAX_INFLIGHT];
	bool data[SIZE / 4096];
	uint8_t stage[SIZE];
};

static void run(const uint8_t *p, size_t len, uint64_t seed, size_t maxseg, struct outcome *o)
{
	struct mb_geom g = { SIZE, MB_BLOCK_SIZE, 4096 };
	memset(o, 0, sizeof(*o));
	struct mb_loader *l = mb_loader_new(&g, VERSION, o->stage);
	CHECK(l);
	size_t off = 0;
	o->rc = 0;
	while (off < len && !o->rc) {
		size_t n = len - off;
		if (maxseg) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			n = 1 + (size_t)(seed >> 33) % maxseg;
			if (n > len - off)
				n = len - off;
		}
		o->rc = mb_loader_write(l, p + off, n);
		off += n;
	}
	if (!o->rc)
		o->rc = mb_loader_finish(l);
	snprintf(o->why, sizeof(o->why), "%s", mb_loader_error(l));
	CHECK(o->rc == 0 || o->why[0]);
	CHECK(o->rc != 0 || !o->why[0]);
	if (!o->rc) {
		char why[160];
		o->regs = *mb_loader_regs(l);
		CHECK(mb_regs_check(&o->regs, why, sizeof(why)) == 0);
		o->ninfl = mb_loader_inflight(l, o->infl);
		CHECK(o->ninfl <= MB_MAX_INFLIGHT);
		for (uint32_t i = 0; i < SIZE / 4096; i++)
			o->data[i] = mb_loader_chunk_data(l, i);
	}
	mb_loader_free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct outcome a, b;

	if (size < 1)
		return 0;
	uint8_t lead = data[0];
	size_t len = size - 1;
	uint8_t *p = malloc(len ? len : 1);
	CHECK(p);
	memcpy(p, data + 1, len);
	if (lead & 0x80)
		reseal(p, len);
	run(p, len, 0, 0, &a);
	run(p, len, lead, 1 + (lead & 0x3f) * 17u, &b);
	CHECK(a.rc == b.rc);
	CHECK(!strcmp(a.why, b.why));
	if (!a.rc) {
		CHECK(!memcmp(&a.regs, &b.regs, sizeof(a.regs)));
		CHECK(a.ninfl == b.ninfl);
		CHECK(!memcmp(a.infl, b.infl, a.ninfl * sizeof(a.infl[0])));
		CHECK(!memcmp(a.data, b.data, sizeof(a.data)));
		CHECK(!memcmp(a.stage, b.stage, SIZE));
	}
	free(p);
	return 0;
}
