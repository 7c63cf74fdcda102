/* SPDX-License-Identifier: MIT */
/*
 * memblk's record parser (devices/memblk/memblk_stream.c) fed hostile records.
 *
 * The core hands memblk whole records (type, payload), so the input is a
 * list of them: u8 type, u16 length (little-endian), payload (cut short at
 * the end of the input). Each goes to mb_state_load until one is refused,
 * then mb_state_check runs. Invariants: a refusal gives a reason of a known
 * class and leaves the parsed state untouched; an accepted state passes
 * mb_regs_check, holds at most MB_MAX_INFLIGHT requests, and never more
 * than the completion queue has free slots for; the same records give the
 * same outcome twice.
 * Seeds: fuzz/corpus/memblk_stream (written by tests/test_memblk_stream.c
 * with MEMBLK_STREAM_SEED_DIR set).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memblk/memblk_stream.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool known_class(const char *why)
{
	static const char *const classes[] = { "format: ", "order: ", "registers: ",
					       "incomplete: " };
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (!strncmp(why, classes[i], strlen(classes[i])))
			return true;
	return false;
}

static int run(const uint8_t *p, size_t size, struct mb_state *st, char *why, size_t whylen)
{
	size_t off = 0;

	mb_state_reset(st);
	while (size - off >= 3) {
		unsigned type = p[off];
		size_t len = (size_t)p[off + 1] | (size_t)p[off + 2] << 8;
		off += 3;
		if (len > size - off)
			len = size - off;
		/* a private copy of exactly len bytes: ASan sees any over-read */
		uint8_t *rec = malloc(len ? len : 1);
		CHECK(rec);
		memcpy(rec, p + off, len);
		struct mb_state before = *st;
		int rc = mb_state_load(st, type, rec, len, why, whylen);
		free(rec);
		off += len;
		if (rc) {
			CHECK(known_class(why));
			CHECK(!memcmp(&before, st, sizeof(before)));
			return rc;
		}
	}
	int rc = mb_state_check(st, why, whylen);
	if (rc) {
		CHECK(known_class(why));
		return rc;
	}
	char reason[160];
	CHECK(st->have_regs && st->have_inflight);
	CHECK(mb_regs_check(&st->regs, reason, sizeof(reason)) == 0);
	CHECK(st->ninflight <= MB_MAX_INFLIGHT);
	if (st->ninflight) {
		const struct mb_regs *r = &st->regs;
		uint32_t used = (r->cq_tail - r->cq_head) & (r->cq_size - 1);
		CHECK(r->status & MB_STS_READY);
		CHECK(used + st->ninflight <= r->cq_size - 1);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mb_state a, b;
	char wa[256] = "", wb[256] = "";

	int ra = run(data, size, &a, wa, sizeof(wa));
	int rb = run(data, size, &b, wb, sizeof(wb));
	CHECK(ra == rb);
	CHECK(!strcmp(wa, wb));
	CHECK(!memcmp(&a, &b, sizeof(a)));
	return 0;
}
