/* SPDX-License-Identifier: MIT */
/* The migration channel / checkpoint framing: pure, byte-exact checks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "channel.h"

struct buf {
	uint8_t p[1 << 16];
	size_t len;
};

static void add(struct buf *b, const void *d, size_t n)
{
	assert_true(b->len + n <= sizeof(b->p));
	if (n) /* a frame with no payload passes NULL */
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void add_frame(struct buf *b, uint32_t type, uint32_t dev, const void *payload, size_t n)
{
	uint8_t hdr[DEVMIG_CHAN_HDR], crc[4];
	devmig_chan_put_header(hdr, type, dev, n);
	uint32_t c = devmig_chan_crc(hdr, payload, n);
	for (int i = 0; i < 4; i++)
		crc[i] = (uint8_t)(c >> (8 * i));
	add(b, hdr, sizeof(hdr));
	add(b, payload, n);
	add(b, crc, 4);
}

static void sample(struct buf *b)
{
	b->len = 0;
	add(b, DEVMIG_CHAN_MAGIC, DEVMIG_CHAN_MAGIC_LEN);
	add_frame(b, DEVMIG_CHAN_HELLO, 0, "0123456789abcdef", 16);
	add_frame(b, DEVMIG_CHAN_DEV_DATA, 3, "device bytes", 12);
	add_frame(b, DEVMIG_CHAN_SYNC, 0, "", 0);
}

/* Feed in pieces of `step` bytes; collect frame types and device indexes. */
static int feed(const struct buf *b, size_t step, uint32_t *types, uint32_t *devs, int max,
		int *nframes)
{
	struct devmig_chan_reader *r = devmig_chan_reader_new();
	int n = 0, rc = 0;
	for (size_t off = 0; off < b->len && !rc;) {
		size_t k = b->len - off < step ? b->len - off : step;
		size_t used = 0;
		while (used < k) {
			struct devmig_chan_frame f;
			bool have;
			long c = devmig_chan_reader_feed(r, b->p + off + used, k - used, &f, &have);
			if (c < 0) {
				rc = (int)c;
				break;
			}
			used += (size_t)c;
			if (have && n < max) {
				types[n] = f.type;
				devs[n] = f.dev;
				n++;
			}
		}
		off += k;
	}
	if (!rc && !devmig_chan_reader_idle(r))
		rc = -EAGAIN; /* ended inside a frame */
	devmig_chan_reader_free(r);
	*nframes = n;
	return rc;
}

static void frames_arrive_whole_for_any_segmentation(void **state)
{
	(void)state;
	struct buf b;
	sample(&b);
	for (size_t step = 1; step <= b.len; step++) {
		uint32_t t[8], d[8];
		int n;
		assert_int_equal(feed(&b, step, t, d, 8, &n), 0);
		assert_int_equal(n, 3);
		assert_int_equal(t[0], DEVMIG_CHAN_HELLO);
		assert_int_equal(t[1], DEVMIG_CHAN_DEV_DATA);
		assert_int_equal(d[1], 3);
		assert_int_equal(t[2], DEVMIG_CHAN_SYNC);
	}
}

static void every_single_byte_flip_is_refused(void **state)
{
	(void)state;
	struct buf b;
	sample(&b);
	for (size_t i = 0; i < b.len; i++) {
		uint32_t t[8], d[8];
		int n;
		b.p[i] ^= 0x10;
		/* Refused, or (a flipped length) left waiting inside a frame: never accepted whole. */
		int rc = feed(&b, 7, t, d, 8, &n);
		assert_true(rc == -EINVAL || rc == -EAGAIN);
		b.p[i] ^= 0x10;
	}
}

static void every_truncation_ends_inside_a_frame(void **state)
{
	(void)state;
	struct buf b, cut;
	sample(&b);
	for (size_t len = 1; len < b.len; len++) {
		uint32_t t[8], d[8];
		int n;
		memcpy(cut.p, b.p, len);
		cut.len = len;
		int rc = feed(&cut, 5, t, d, 8, &n);
		/* Only a cut exactly at a frame boundary looks complete. */
		if (rc == 0)
			assert_true(len == DEVMIG_CHAN_MAGIC_LEN + 20 + 16 ||
				    len == DEVMIG_CHAN_MAGIC_LEN + 20 + 16 + 20 + 12 ||
				    len == DEVMIG_CHAN_MAGIC_LEN);
		else
			assert_int_equal(rc, -EAGAIN);
	}
}

static void oversized_unknown_and_bad_magic_are_refused_with_reasons(void **state)
{
	(void)state;
	struct devmig_chan_reader *r = devmig_chan_reader_new();
	struct devmig_chan_frame f;
	bool have;
	uint8_t hdr[DEVMIG_CHAN_HDR];

	assert_int_equal(devmig_chan_reader_feed(r, "NOTMAGIC", 8, &f, &have), -EINVAL);
	assert_non_null(strstr(devmig_chan_reader_error(r), "bad magic"));
	/* Sticky. */
	assert_int_equal(devmig_chan_reader_feed(r, DEVMIG_CHAN_MAGIC, 8, &f, &have), -EINVAL);
	devmig_chan_reader_free(r);

	r = devmig_chan_reader_new();
	assert_int_equal(devmig_chan_reader_feed(r, DEVMIG_CHAN_MAGIC, 8, &f, &have), 8);
	devmig_chan_put_header(hdr, DEVMIG_CHAN_DEV_DATA, 0, DEVMIG_CHAN_MAX_PAYLOAD + 1ull);
	assert_int_equal(devmig_chan_reader_feed(r, hdr, sizeof(hdr), &f, &have), -EINVAL);
	assert_non_null(strstr(devmig_chan_reader_error(r), "exceeds"));
	devmig_chan_reader_free(r);

	r = devmig_chan_reader_new();
	assert_int_equal(devmig_chan_reader_feed(r, DEVMIG_CHAN_MAGIC, 8, &f, &have), 8);
	devmig_chan_put_header(hdr, 77, 0, 0);
	assert_int_equal(devmig_chan_reader_feed(r, hdr, sizeof(hdr), &f, &have), -EINVAL);
	assert_non_null(strstr(devmig_chan_reader_error(r), "unknown type 77"));
	devmig_chan_reader_free(r);
}

/* ---- DEV_DATA_RAW: a payload handed on in pieces, its header checked ---- */

static void add_raw(struct buf *b, uint32_t dev, const void *payload, size_t n)
{
	uint8_t hdr[DEVMIG_CHAN_HDR], crc[4];
	devmig_chan_put_header(hdr, DEVMIG_CHAN_DEV_DATA_RAW, dev, n);
	uint32_t c = devmig_chan_crc(hdr, NULL, 0); /* the header only */
	for (int i = 0; i < 4; i++)
		crc[i] = (uint8_t)(c >> (8 * i));
	add(b, hdr, sizeof(hdr));
	add(b, payload, n);
	add(b, crc, 4);
}

/* A RAW frame between two others, fed in steps: its pieces are the payload,
 * in order, pointing into the input; then one raw_end; nothing buffered. */
static void raw_payload_comes_in_pieces_then_a_checked_end(void **state)
{
	(void)state;
	struct buf b;
	uint8_t payload[3000];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	b.len = 0;
	add(&b, DEVMIG_CHAN_MAGIC, DEVMIG_CHAN_MAGIC_LEN);
	add_frame(&b, DEVMIG_CHAN_SYNC, 0, "", 0);
	add_raw(&b, 5, payload, sizeof(payload));
	add_raw(&b, 6, NULL, 0);
	add_frame(&b, DEVMIG_CHAN_DEV_DATA, 1, "xy", 2);
	for (size_t step = 1; step <= b.len; step += step < 40 ? 1 : 97) {
		struct devmig_chan_reader *r = devmig_chan_reader_new();
		uint8_t got[sizeof(payload)];
		size_t glen = 0;
		unsigned ends = 0, others = 0;
		for (size_t off = 0; off < b.len;) {
			size_t k = b.len - off < step ? b.len - off : step;
			for (size_t used = 0; used < k;) {
				struct devmig_chan_frame f;
				bool have;
				long c = devmig_chan_reader_feed(r, b.p + off + used, k - used, &f, &have);
				assert_true(c >= 0);
				used += (size_t)c;
				if (!have)
					continue;
				if (f.raw && !f.raw_end) {
					assert_int_equal(f.dev, 5);
					assert_true(f.payload >= b.p && f.payload + f.len <= b.p + b.len);
					memcpy(got + glen, f.payload, f.len);
					glen += f.len;
				} else if (f.raw_end) {
					assert_int_equal(f.dev, ends ? 6 : 5);
					assert_int_equal(f.len, 0);
					ends++;
				} else {
					others++;
				}
			}
			off += k;
		}
		assert_int_equal(glen, sizeof(payload));
		assert_memory_equal(got, payload, sizeof(payload));
		assert_int_equal(ends, 2);
		assert_int_equal(others, 2);
		assert_true(devmig_chan_reader_idle(r));
		devmig_chan_reader_free(r);
	}
}

/* want says how much to read so a RAW payload stays in the descriptor; the
 * payload taken elsewhere (raw_skip), the trailer is still checked. */
static void raw_payload_can_be_taken_elsewhere(void **state)
{
	(void)state;
	struct buf b;
	b.len = 0;
	add(&b, DEVMIG_CHAN_MAGIC, DEVMIG_CHAN_MAGIC_LEN);
	add_raw(&b, 2, "0123456789", 10);
	struct devmig_chan_reader *r = devmig_chan_reader_new();
	struct devmig_chan_frame f;
	bool have;
	size_t at = 0;
	assert_int_equal(devmig_chan_reader_want(r), DEVMIG_CHAN_MAGIC_LEN);
	assert_int_equal(devmig_chan_reader_feed(r, b.p, 8, &f, &have), 8);
	at = 8;
	assert_int_equal(devmig_chan_reader_want(r), DEVMIG_CHAN_HDR);
	assert_int_equal(devmig_chan_reader_feed(r, b.p + at, DEVMIG_CHAN_HDR, &f, &have),
			 DEVMIG_CHAN_HDR);
	at += DEVMIG_CHAN_HDR;
	assert_false(have);
	assert_int_equal(devmig_chan_reader_raw_left(r), 10);
	assert_int_equal(devmig_chan_reader_raw_dev(r), 2);
	assert_int_equal(devmig_chan_reader_want(r), 10);
	devmig_chan_reader_raw_skip(r, 4);
	assert_int_equal(devmig_chan_reader_raw_left(r), 6);
	devmig_chan_reader_raw_skip(r, 6);
	at += 10;
	assert_int_equal(devmig_chan_reader_raw_left(r), 0);
	assert_int_equal(devmig_chan_reader_want(r), 4);
	/* A flipped trailer is refused. */
	uint8_t bad[4];
	memcpy(bad, b.p + at, 4);
	bad[1] ^= 1;
	struct devmig_chan_reader *r2 = devmig_chan_reader_new();
	assert_int_equal(devmig_chan_reader_feed(r2, b.p, 8 + DEVMIG_CHAN_HDR, &f, &have),
			 8 + DEVMIG_CHAN_HDR);
	devmig_chan_reader_raw_skip(r2, 10);
	assert_int_equal(devmig_chan_reader_feed(r2, bad, 4, &f, &have), -EINVAL);
	assert_non_null(strstr(devmig_chan_reader_error(r2), "header CRC mismatch"));
	devmig_chan_reader_free(r2);
	assert_int_equal(devmig_chan_reader_feed(r, b.p + at, 4, &f, &have), 4);
	assert_true(have && f.raw_end);
	assert_true(devmig_chan_reader_idle(r));
	devmig_chan_reader_free(r);
}

/* ---- HELLO: what each device is ---- */

static void two_devices(struct devmig_chan_hello_dev *d)
{
	memset(d, 0, 2 * sizeof(*d));
	d[0].fingerprint = 0x1122334455667788ull;
	strcpy(d[0].version, "1af4:10f1-memblk-v2");
	d[0].id_known = true;
	d[0].id = (struct devmig_pci_identity){ 0x1af4, 0x10f1, 0x1af4, 0x1100, 0x018000, 1 };
	/* A foreign device: no version, only its identity. */
	d[1].id_known = true;
	d[1].id = (struct devmig_pci_identity){ 0xdead, 0xbeef, 0xcafe, 0xbabe, 0xff0000, 0 };
}

static void hello_round_trips_every_field(void **state)
{
	struct devmig_chan_hello_dev in[2], out[DEVMIG_CHAN_MAX_DEVICES];
	uint8_t b[1024];
	uint32_t n;
	uint64_t g;
	char why[160];

	(void)state;
	two_devices(in);
	size_t len = devmig_chan_put_hello(b, sizeof(b), DEVMIG_CHAN_VERSION, 2, 1ull << 30, in);
	assert_int_equal(len, 16 + (9 + 14 + 19) + (9 + 14));
	assert_int_equal(devmig_chan_parse_hello(b, len, &n, &g, out, why, sizeof(why)), 0);
	assert_int_equal(n, 2);
	assert_int_equal(g, 1ull << 30);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(out[i].fingerprint, in[i].fingerprint);
		assert_string_equal(out[i].version, in[i].version);
		assert_int_equal(out[i].id_known, in[i].id_known);
		assert_int_equal(out[i].id.vendor, in[i].id.vendor);
		assert_int_equal(out[i].id.device, in[i].id.device);
		assert_int_equal(out[i].id.subsystem_vendor, in[i].id.subsystem_vendor);
		assert_int_equal(out[i].id.subsystem_device, in[i].id.subsystem_device);
		assert_int_equal(out[i].id.class_code, in[i].id.class_code);
		assert_int_equal(out[i].id.revision, in[i].id.revision);
	}
	/* Too small a buffer: nothing. */
	assert_int_equal(devmig_chan_put_hello(b, len - 1, DEVMIG_CHAN_VERSION, 2, 0, in), 0);
}

/* A version 1 HELLO (before identities) still reads: identities unknown. */
static void hello_version_1_reads_with_identity_unknown(void **state)
{
	uint8_t b[64] = { 0 };
	struct devmig_chan_hello_dev out[DEVMIG_CHAN_MAX_DEVICES];
	uint32_t n;
	uint64_t g;
	char why[160];

	(void)state;
	b[0] = 1;  /* version */
	b[4] = 1;  /* one device */
	b[8] = 64; /* guest size */
	b[16] = 0xaa; /* fingerprint ... */
	b[24] = 3; /* version length */
	memcpy(b + 25, "x-1", 3);
	assert_int_equal(devmig_chan_parse_hello(b, 28, &n, &g, out, why, sizeof(why)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(g, 64);
	assert_int_equal(out[0].fingerprint, 0xaa);
	assert_string_equal(out[0].version, "x-1");
	assert_false(out[0].id_known);
}

static void hello_refuses_what_is_not_whole(void **state)
{
	struct devmig_chan_hello_dev in[2], out[DEVMIG_CHAN_MAX_DEVICES];
	uint8_t b[1024];
	uint32_t n;
	uint64_t g;
	char why[160];

	(void)state;
	two_devices(in);
	size_t len = devmig_chan_put_hello(b, sizeof(b), DEVMIG_CHAN_VERSION, 2, 0, in);
	/* Every cut, from an exactly-sized copy (ASan sees any read past it). */
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *c = malloc(cut ? cut : 1);
		memcpy(c, b, cut);
		why[0] = '\0';
		assert_int_equal(devmig_chan_parse_hello(c, cut, &n, &g, out, why, sizeof(why)),
				 -EPROTO);
		assert_true(why[0] != '\0');
		free(c);
	}
	/* A byte past the last device. */
	b[len] = 0;
	assert_int_equal(devmig_chan_parse_hello(b, len + 1, &n, &g, out, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "past its last device"));
	/* An identity flag other than 0 or 1. */
	b[16 + 8] = 2;
	assert_int_equal(devmig_chan_parse_hello(b, len, &n, &g, out, why, sizeof(why)), -EPROTO);
	b[16 + 8] = 1;
	/* More devices than a channel carries; an unknown version. */
	b[4] = DEVMIG_CHAN_MAX_DEVICES + 1;
	assert_int_equal(devmig_chan_parse_hello(b, len, &n, &g, out, why, sizeof(why)), -EPROTO);
	b[4] = 2;
	b[0] = DEVMIG_CHAN_VERSION + 1;
	assert_int_equal(devmig_chan_parse_hello(b, len, &n, &g, out, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "version 4"));
	b[0] = 0;
	assert_int_equal(devmig_chan_parse_hello(b, len, &n, &g, out, why, sizeof(why)), -EPROTO);
	b[0] = DEVMIG_CHAN_VERSION;
	/* A version string of DEVMIG_VERSION_MAX bytes. */
	b[16 + 8 + 14] = DEVMIG_VERSION_MAX;
	assert_int_equal(devmig_chan_parse_hello(b, len, &n, &g, out, why, sizeof(why)), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frames_arrive_whole_for_any_segmentation),
		cmocka_unit_test(every_single_byte_flip_is_refused),
		cmocka_unit_test(every_truncation_ends_inside_a_frame),
		cmocka_unit_test(oversized_unknown_and_bad_magic_are_refused_with_reasons),
		cmocka_unit_test(raw_payload_comes_in_pieces_then_a_checked_end),
		cmocka_unit_test(raw_payload_can_be_taken_elsewhere),
		cmocka_unit_test(hello_round_trips_every_field),
		cmocka_unit_test(hello_version_1_reads_with_identity_unknown),
		cmocka_unit_test(hello_refuses_what_is_not_whole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
