/* SPDX-License-Identifier: MIT */
/*
 * memblk's records and their parser (devices/memblk/memblk_stream.c), pure:
 * no server, no device. The core hands memblk whole, checked records, so
 * what is tested here is what their bytes mean: REGS and INFLIGHT, their
 * order, and the consistency check at the end. (The storage is the core's
 * tracked memory: tests/test_memblk.c and tests/test_device_api.c.)
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

static void geometry_and_regs_helpers(void **state)
{
	(void)state;
	char why[160];
	struct mb_geom g = { 1 << 20, 4096, 65536 };
	assert_int_equal(mb_geom_check(&g, why, sizeof(why)), 0);
	g.chunk_size = 3 * 4096;
	assert_int_equal(mb_geom_check(&g, why, sizeof(why)), -EINVAL);
	g.chunk_size = 2u << 20;
	assert_int_equal(mb_geom_check(&g, why, sizeof(why)), -EINVAL);
	g = (struct mb_geom){ 4095, 4096, 4096 };
	assert_int_equal(mb_geom_check(&g, why, sizeof(why)), -EINVAL);

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

/* A live device: rings of 8, CQ holding cq_used completions not reaped. */
static struct mb_regs live_regs(uint32_t cq_used)
{
	struct mb_regs r = {
		.control = MB_CTRL_EN, .status = MB_STS_READY, .sq_size = 8, .cq_size = 8,
		.sq_base = 0x10000, .cq_base = 0x20000, .sq_tail = 5, .sq_head = 5,
		.cq_tail = cq_used, .cq_head = 0, .cq_phase = 1, .completed = 1234,
	};
	return r;
}

static size_t regs_rec(const struct mb_regs *r, uint8_t *out)
{
	mb_regs_encode(r, out);
	return MB_REGS_LEN;
}

static size_t inflight_rec(unsigned n, uint8_t *out)
{
	struct mb_sqe q[MB_MAX_INFLIGHT];
	for (unsigned i = 0; i < n; i++)
		q[i] = (struct mb_sqe){ .opcode = MB_OP_WRITE, .tag = 100 + i, .lba = i,
					.nblocks = 1, .buf_len = 4096, .buf = 0x40000 + 4096 * i };
	return mb_inflight_encode(q, n, out);
}

static void state_roundtrip(void **state)
{
	(void)state;
	uint8_t regs[MB_REGS_LEN], infl[MB_INFLIGHT_MAX_LEN];
	char why[256];

	for (unsigned n = 0; n <= 7; n++) {
		struct mb_state st;
		struct mb_regs r = live_regs(0);
		mb_state_reset(&st);
		assert_int_equal(mb_state_load(&st, MB_REC_REGS, regs, regs_rec(&r, regs), why,
					       sizeof(why)), 0);
		assert_int_equal(mb_state_load(&st, MB_REC_INFLIGHT, infl, inflight_rec(n, infl), why,
					       sizeof(why)), 0);
		if (mb_state_check(&st, why, sizeof(why)))
			fail_msg("%u in flight: %s", n, why);
		assert_memory_equal(&st.regs, &r, sizeof(r));
		assert_int_equal(st.ninflight, n);
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(st.inflight[i].tag, 100 + i);
	}
	/* a disabled device with nothing queued */
	struct mb_state st;
	struct mb_regs r = { .cq_phase = 1 };
	mb_state_reset(&st);
	assert_int_equal(mb_state_load(&st, MB_REC_REGS, regs, regs_rec(&r, regs), why, sizeof(why)),
			 0);
	assert_int_equal(mb_state_load(&st, MB_REC_INFLIGHT, infl, inflight_rec(0, infl), why,
				       sizeof(why)), 0);
	assert_int_equal(mb_state_check(&st, why, sizeof(why)), 0);
}

/* A refused record names its class and leaves the state as it was. */
static void expect_load_refused(struct mb_state *st, unsigned type, const uint8_t *p, size_t len,
				const char *want)
{
	struct mb_state before = *st;
	char why[256] = "";
	int rc = mb_state_load(st, type, p, len, why, sizeof(why));
	if (rc != -EINVAL || !strstr(why, want))
		fail_msg("type %u len %zu: rc %d '%s', wanted '%s'", type, len, rc, why, want);
	assert_memory_equal(&before, st, sizeof(before));
}

static void refusals_name_their_class(void **state)
{
	(void)state;
	uint8_t regs[MB_REGS_LEN], infl[MB_INFLIGHT_MAX_LEN + 8];
	struct mb_regs r = live_regs(0);
	struct mb_state st;
	char why[256];

	mb_state_reset(&st);
	regs_rec(&r, regs);
	expect_load_refused(&st, 3, regs, 4, "format: unknown record type 3");
	expect_load_refused(&st, MB_REC_INFLIGHT, infl, inflight_rec(1, infl),
			    "order: INFLIGHT before REGS");
	expect_load_refused(&st, MB_REC_REGS, regs, MB_REGS_LEN - 1, "format: REGS of 63 bytes");
	expect_load_refused(&st, MB_REC_REGS, regs, 0, "format: REGS of 0 bytes");
	struct mb_regs bad = r;
	bad.control = 0x10;
	regs_rec(&bad, regs);
	expect_load_refused(&st, MB_REC_REGS, regs, MB_REGS_LEN, "registers: CONTROL");
	bad = r;
	bad.sq_head = 8;
	regs_rec(&bad, regs);
	expect_load_refused(&st, MB_REC_REGS, regs, MB_REGS_LEN, "registers: ring index");
	regs_rec(&r, regs);
	assert_int_equal(mb_state_load(&st, MB_REC_REGS, regs, MB_REGS_LEN, why, sizeof(why)), 0);
	expect_load_refused(&st, MB_REC_REGS, regs, MB_REGS_LEN, "order: a second REGS");

	size_t n = inflight_rec(2, infl);
	expect_load_refused(&st, MB_REC_INFLIGHT, infl, n - 1, "format: count 2 disagrees");
	expect_load_refused(&st, MB_REC_INFLIGHT, infl, n + 32, "format: count 2 disagrees");
	expect_load_refused(&st, MB_REC_INFLIGHT, infl, 7, "format: INFLIGHT of 7 bytes");
	mb_put32(infl, MB_MAX_INFLIGHT + 1);
	expect_load_refused(&st, MB_REC_INFLIGHT, infl, 8 + (MB_MAX_INFLIGHT + 1) * MB_SQE_SIZE,
			    "format: count 33");
	inflight_rec(2, infl);
	mb_put32(infl + 4, 1);
	expect_load_refused(&st, MB_REC_INFLIGHT, infl, n, "format: INFLIGHT of");
	inflight_rec(2, infl);
	assert_int_equal(mb_state_load(&st, MB_REC_INFLIGHT, infl, n, why, sizeof(why)), 0);
	expect_load_refused(&st, MB_REC_INFLIGHT, infl, n, "order: a second INFLIGHT");
	assert_int_equal(mb_state_check(&st, why, sizeof(why)), 0);
}

static void check_wants_both_records_consistent(void **state)
{
	(void)state;
	uint8_t regs[MB_REGS_LEN], infl[MB_INFLIGHT_MAX_LEN];
	struct mb_state st;
	char why[256];

	mb_state_reset(&st);
	assert_int_equal(mb_state_check(&st, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "incomplete: no REGS record");
	struct mb_regs r = live_regs(6); /* 6 of 7 usable CQ slots used */
	assert_int_equal(mb_state_load(&st, MB_REC_REGS, regs, regs_rec(&r, regs), why, sizeof(why)),
			 0);
	assert_int_equal(mb_state_check(&st, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "incomplete: no INFLIGHT record");
	/* one slot free: one request may wait, two may not */
	struct mb_state one = st;
	assert_int_equal(mb_state_load(&one, MB_REC_INFLIGHT, infl, inflight_rec(1, infl), why,
				       sizeof(why)), 0);
	assert_int_equal(mb_state_check(&one, why, sizeof(why)), 0);
	assert_int_equal(mb_state_load(&st, MB_REC_INFLIGHT, infl, inflight_rec(2, infl), why,
				       sizeof(why)), 0);
	assert_int_equal(mb_state_check(&st, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "registers: 2 requests in flight but only 1 free"));
	/* queued requests on a device that is not ready */
	struct mb_regs off = { .cq_phase = 1 };
	mb_state_reset(&st);
	assert_int_equal(mb_state_load(&st, MB_REC_REGS, regs, regs_rec(&off, regs), why,
				       sizeof(why)), 0);
	assert_int_equal(mb_state_load(&st, MB_REC_INFLIGHT, infl, inflight_rec(1, infl), why,
				       sizeof(why)), 0);
	assert_int_equal(mb_state_check(&st, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "registers: 1 requests in flight on queues that are not ready"));
}

/* Every single-bit flip of a live REGS payload is either a register state a
 * device can be in (and loads as exactly those bits) or refused as such. */
static void every_regs_flip_loads_exactly_or_is_refused(void **state)
{
	(void)state;
	uint8_t regs[MB_REGS_LEN];
	struct mb_regs r = live_regs(3);
	int refused = 0;

	for (unsigned bit = 0; bit < 8 * MB_REGS_LEN; bit++) {
		struct mb_state st;
		struct mb_regs want;
		char why[256];
		regs_rec(&r, regs);
		regs[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		mb_regs_decode(regs, &want);
		mb_state_reset(&st);
		int rc = mb_state_load(&st, MB_REC_REGS, regs, MB_REGS_LEN, why, sizeof(why));
		if (rc) {
			assert_non_null(strstr(why, "registers: "));
			assert_false(st.have_regs);
			refused++;
		} else {
			assert_memory_equal(&st.regs, &want, sizeof(want));
			assert_int_equal(mb_regs_check(&want, why, sizeof(why)), 0);
		}
	}
	assert_true(refused > 0);
}

/*
 * Seeds for fuzz/fuzz_memblk_stream.c: its input is records, each
 * u8 type, u16 length (little-endian), payload. Seed 0: REGS and INFLIGHT
 * of a live device with requests queued; 1: a disabled device; 2: INFLIGHT
 * first (refused); 3: too many requests for the CQ (refused at the check).
 */
static size_t seed_rec(uint8_t *out, unsigned type, const uint8_t *p, size_t len)
{
	out[0] = (uint8_t)type;
	out[1] = (uint8_t)len;
	out[2] = (uint8_t)(len >> 8);
	memcpy(out + 3, p, len);
	return 3 + len;
}

static void fuzz_seeds(void **state)
{
	(void)state;
	const char *dir = getenv("MEMBLK_STREAM_SEED_DIR");
	uint8_t regs[MB_REGS_LEN], infl[MB_INFLIGHT_MAX_LEN], seed[2 * MB_INFLIGHT_MAX_LEN];
	struct mb_regs live = live_regs(2), off = { .cq_phase = 1 }, full = live_regs(7);
	const struct { const struct mb_regs *r; unsigned n; bool infl_first; } seeds[] = {
		{ &live, 3, false }, { &off, 0, false }, { &live, 1, true }, { &full, 1, false },
	};

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		size_t len = 0, rl = regs_rec(seeds[i].r, regs), il = inflight_rec(seeds[i].n, infl);
		if (seeds[i].infl_first)
			len += seed_rec(seed + len, MB_REC_INFLIGHT, infl, il);
		len += seed_rec(seed + len, MB_REC_REGS, regs, rl);
		if (!seeds[i].infl_first)
			len += seed_rec(seed + len, MB_REC_INFLIGHT, infl, il);
		if (dir) {
			char path[4096];
			snprintf(path, sizeof(path), "%s/seed-%zu", dir, i);
			FILE *f = fopen(path, "wb");
			assert_non_null(f);
			assert_int_equal(fwrite(seed, 1, len, f), len);
			fclose(f);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(geometry_and_regs_helpers),
		cmocka_unit_test(state_roundtrip),
		cmocka_unit_test(refusals_name_their_class),
		cmocka_unit_test(check_wants_both_records_consistent),
		cmocka_unit_test(every_regs_flip_loads_exactly_or_is_refused),
		cmocka_unit_test(fuzz_seeds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
