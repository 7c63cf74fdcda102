/* SPDX-License-Identifier: MIT */
/*
 * The migration stream framing (lib/core/stream.c) and crc32c (lib/util/crc32c.c).
 * A test source emits the data as variant records of random sizes and
 * types (1 + n % 5 for the n-th), some with their body referenced.
 *
 * The portable crc32c is reached through devmig_crc32c_sw() (a private hook
 * declared in stream.h); devmig_crc32c() itself takes SSE4.2 when the CPU
 * has it, unless DEVMIG_CRC32C_SW=1 is in the environment.
 *
 * Randomised tests use a fixed seed so that a failure reproduces; set
 * DEVMIG_TEST_SEED=<n> to explore others (the seed is printed).
 *
 * With DEVMIG_STREAM_SEED_DIR=<dir> the test "fuzz_seeds" also writes the
 * seed corpus of fuzz/fuzz_stream_reader.c there (one leading byte, which
 * the target uses as its segmentation seed, then a valid stream).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <cmocka.h>

#include "fixture.h"
#include "stream.h"

/* ---------------------------------------------------------------- helpers */

static uint64_t seed_base = 0x5eed0001;

static void fill_random(uint64_t *s, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)fx_rnd(s);
}

/* ---- the device side (writer source) ---- */

struct src {
	const uint8_t *data;
	size_t len, pos;
	size_t avail;        /* PRE_COPY: bytes the device has now (<= len) */
	size_t nrec;         /* records emitted */
	bool use_ref;        /* emit some records with devmig_save_record_ref */
	const uint8_t *cfg;
	size_t cfg_len;
	uint64_t rng;
	int config_calls;
	int fail_after;      /* records calls before one fails (<0: never) */
	int fail_err;
	int cfg_err;
};

/* Largest record a test source emits (0: 100000), for streams that must
 * have many records. */
static size_t src_max_piece;

static unsigned src_type(size_t nrec)
{
	return 1 + (unsigned)(nrec % 5);
}

static int src_records(void *opaque, struct devmig_save *sv)
{
	struct src *s = opaque;

	if (s->fail_after == 0)
		return s->fail_err;
	if (s->fail_after > 0)
		s->fail_after--;
	while (s->pos < s->avail && devmig_save_room(sv)) {
		size_t left = s->avail - s->pos;
		size_t max = src_max_piece ? src_max_piece : 100000;
		size_t n = fx_rnd_size(&s->rng, max < left ? max : left);
		unsigned t = src_type(s->nrec);
		int rc;

		if (fx_rnd(&s->rng) % 50 == 0)
			n = 0; /* empty records are records too */
		if (s->use_ref && n > 8 && fx_rnd(&s->rng) % 4)
			rc = devmig_save_record_ref(sv, t, s->data + s->pos, 8, s->data + s->pos + 8,
						    n - 8);
		else
			rc = devmig_save_record(sv, t, s->data + s->pos, n);
		assert_int_equal(rc, 0);
		s->pos += n;
		s->nrec++;
		if (fx_rnd(&s->rng) % 8 == 0)
			break; /* a source may stop early: the writer asks again */
	}
	return 0;
}

static ssize_t src_config(void *opaque, void *buf, size_t cap)
{
	struct src *s = opaque;

	s->config_calls++;
	if (s->cfg_err)
		return s->cfg_err;
	assert_true(cap >= s->cfg_len);
	memcpy(buf, s->cfg, s->cfg_len);
	return (ssize_t)s->cfg_len;
}

static void src_init(struct src *s, const uint8_t *data, size_t len, const uint8_t *cfg,
		     size_t cfg_len, uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	s->data = data;
	s->len = s->avail = len;
	s->cfg = cfg;
	s->cfg_len = cfg_len;
	s->rng = seed;
	s->fail_after = -1;
}

static struct devmig_stream_source src_ops(struct src *s)
{
	struct devmig_stream_source o = {
		.opaque = s,
		.records = src_records,
		.config_data = src_config,
		.config_size = s->cfg_len,
	};
	return o;
}

static void test_header(struct devmig_stream_header *h)
{
	memset(h, 0, sizeof(*h));
	h->caps = 0x0000000700000001ull;
	h->config_fingerprint = 0x0123456789abcdefull;
	strcpy(h->name, "devmig-test-nic");
	strcpy(h->version, "1.2.3+g0ddba11");
}

/*
 * Drain a writer with final=true into out, each read with a fresh buffer of
 * exactly the cap (so ASan sees any overrun), caps 1 .. maxcap log-uniform.
 */
static void drain_writer_min(struct devmig_stream_writer *w, struct fx_buf *out, uint64_t *rng,
			     size_t mincap, size_t maxcap, bool final)
{
	for (int guard = 0;; guard++) {
		assert_true(guard < 50000000);
		size_t cap = mincap - 1 + fx_rnd_size(rng, maxcap - mincap + 1);
		uint8_t *b = malloc(cap);

		assert_non_null(b);
		ssize_t n = devmig_stream_writer_read(w, b, cap, final);

		assert_true(n >= 0);
		assert_true((size_t)n <= cap);
		fx_buf_add(out, b, (size_t)n);
		free(b);
		/* A short read tells the reader the data ended: only at the end. */
		if (final && (size_t)n < cap)
			assert_true(devmig_stream_writer_done(w));
		if (final && devmig_stream_writer_done(w))
			break;
		if (!final && n == 0)
			break;
		/* final: 0 only once done (the source never says "none now"). */
		assert_true(!final || n > 0);
	}
}

static void drain_writer(struct devmig_stream_writer *w, struct fx_buf *out, uint64_t *rng,
			 size_t maxcap, bool final)
{
	drain_writer_min(w, out, rng, 1, maxcap, final);
}

static void make_stream_min(struct fx_buf *out, const uint8_t *data, size_t len,
			    const uint8_t *cfg, size_t cfg_len, uint64_t seed, size_t mincap,
			    size_t maxcap)
{
	struct devmig_stream_header h;
	struct src s;
	uint64_t rng = seed ^ 0xabcdef;

	test_header(&h);
	src_init(&s, data, len, cfg, cfg_len, seed);
	struct devmig_stream_source ops = src_ops(&s);
	struct devmig_stream_writer *w = devmig_stream_writer_new(&h, &ops);

	assert_non_null(w);
	drain_writer_min(w, out, &rng, mincap, maxcap, true);
	assert_int_equal(s.config_calls, 1);
	assert_int_equal(s.pos, len);
	assert_int_equal(devmig_stream_writer_total(w), out->len);
	assert_int_equal(devmig_stream_writer_pending(w), 0);
	devmig_stream_writer_free(w);
}

static void make_stream(struct fx_buf *out, const uint8_t *data, size_t len, const uint8_t *cfg,
			size_t cfg_len, uint64_t seed, size_t maxcap)
{
	make_stream_min(out, data, len, cfg, cfg_len, seed, 1, maxcap);
}

/* ---- the loader side (reader sink) ---- */

struct sink {
	int headers, configs;
	struct devmig_stream_header hdr;
	struct fx_buf dev, cfg;
	/* When set, every payload must match these (tracks unchecked payloads). */
	const uint8_t *want_dev;
	size_t want_dev_len;
	const uint8_t *want_cfg;
	size_t want_cfg_len;
	const struct devmig_stream_header *want_hdr;
	int bad; /* payloads or headers that differ from the original */
	int order_bad;
	/* Refusals. */
	int refuse_header;
	const char *refuse_why;
	int refuse_device_at; /* refuse the n-th body record (1-based), 0: never */
	int device_calls;
	int types_bad;        /* records whose type is not the source's n-th */
};

static int sink_header(void *opaque, const struct devmig_stream_header *h, char *why,
		       size_t whylen)
{
	struct sink *k = opaque;

	if (k->headers || k->configs || k->dev.len)
		k->order_bad++;
	k->headers++;
	k->hdr = *h;
	if (k->want_hdr &&
	    (h->format != DEVMIG_STREAM_FORMAT || h->caps != k->want_hdr->caps ||
	     h->config_fingerprint != k->want_hdr->config_fingerprint ||
	     strcmp(h->name, k->want_hdr->name) || strcmp(h->version, k->want_hdr->version)))
		k->bad++;
	if (k->refuse_header) {
		if (k->refuse_why)
			snprintf(why, whylen, "%s", k->refuse_why);
		return k->refuse_header;
	}
	return 0;
}

static int sink_record(void *opaque, uint32_t type, const void *buf, size_t len, char *why,
		       size_t whylen)
{
	struct sink *k = opaque;

	if (type != DEVMIG_REC_VARIANT + src_type((size_t)k->device_calls))
		k->types_bad++;
	k->device_calls++;
	if (!k->headers || k->configs)
		k->order_bad++;
	if (k->want_dev && (k->dev.len + len > k->want_dev_len ||
			    memcmp(k->want_dev + k->dev.len, buf, len)))
		k->bad++;
	fx_buf_add(&k->dev, buf, len);
	if (k->refuse_device_at == k->device_calls) {
		snprintf(why, whylen, "device rejected record %d", k->device_calls);
		return -EIO;
	}
	return 0;
}

static int sink_config(void *opaque, const void *buf, size_t len, char *why, size_t whylen)
{
	struct sink *k = opaque;

	(void)why;
	(void)whylen;
	if (!k->headers || k->configs)
		k->order_bad++;
	k->configs++;
	if (k->want_cfg && (len != k->want_cfg_len || memcmp(k->want_cfg, buf, len)))
		k->bad++;
	fx_buf_add(&k->cfg, buf, len);
	return 0;
}

static struct devmig_stream_sink sink_ops(struct sink *k)
{
	struct devmig_stream_sink o = {
		.opaque = k,
		.header = sink_header,
		.record = sink_record,
		.config_data = sink_config,
	};
	return o;
}

static void sink_free(struct sink *k)
{
	fx_buf_free(&k->dev);
	fx_buf_free(&k->cfg);
}

/* Feed p[0..len) in random segments; returns the first failing rc or 0. */
static int feed(struct devmig_stream_reader *r, const uint8_t *p, size_t len, uint64_t *rng,
		size_t maxseg)
{
	size_t off = 0;

	while (off < len) {
		size_t n = fx_rnd_size(rng, maxseg);

		if (n > len - off)
			n = len - off;
		/* A private copy of exactly n bytes: ASan catches over-reads. */
		uint8_t *seg = malloc(n);

		assert_non_null(seg);
		memcpy(seg, p + off, n);
		int rc = devmig_stream_reader_write(r, seg, n);

		free(seg);
		if (rc)
			return rc;
		off += n;
	}
	return 0;
}

/* Feed a whole stream in one write to a fresh reader; returns finish() (or the write's rc). */
static int read_all(const uint8_t *p, size_t len, struct sink *k, char *why, size_t whylen)
{
	struct devmig_stream_sink ops = sink_ops(k);
	struct devmig_stream_reader *r = devmig_stream_reader_new(&ops);

	assert_non_null(r);
	int rc = devmig_stream_reader_write(r, p, len);

	if (rc == 0)
		rc = devmig_stream_reader_finish(r);
	snprintf(why, whylen, "%s", devmig_stream_reader_error(r));
	if (rc)
		assert_true(why[0] != '\0');
	else
		assert_string_equal(why, "");
	devmig_stream_reader_free(r);
	return rc;
}

static void expect_refused(const uint8_t *p, size_t len, const char *needle)
{
	struct sink k = { 0 };
	char why[512];
	int rc = read_all(p, len, &k, why, sizeof(why));

	if (rc != -EINVAL || !strstr(why, needle))
		fail_msg("expected -EINVAL with \"%s\", got %d \"%s\"", needle, rc, why);
	assert_int_equal(k.order_bad, 0);
	sink_free(&k);
}

/* ---- crafting streams record by record ---- */

#define REC_V1 (DEVMIG_REC_VARIANT + 1)

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void add_rec(struct fx_buf *v, uint32_t type, const void *payload, uint32_t len)
{
	uint8_t h[8], c[4];

	put_le(h, type, 4);
	put_le(h + 4, len, 4);
	uint32_t crc = devmig_crc32c(devmig_crc32c(0, h, 8), payload, len);

	put_le(c, crc, 4);
	fx_buf_add(v, h, 8);
	fx_buf_add(v, payload, len);
	fx_buf_add(v, c, 4);
}

struct hdr_fields {
	uint16_t format, reserved;
	uint32_t flags;
	uint8_t name_len, version_len;
	const char *name, *version;
	int extra; /* trailing bytes beyond the fields */
};

static const struct hdr_fields good_hdr = {
	.format = DEVMIG_STREAM_FORMAT, .name = "nic", .version = "v1",
	.name_len = 3, .version_len = 2,
};

static uint32_t hdr_payload(uint8_t *p, const struct hdr_fields *f)
{
	put_le(p, f->format, 2);
	put_le(p + 2, f->reserved, 2);
	put_le(p + 4, f->flags, 4);
	put_le(p + 8, 0x11, 8);
	put_le(p + 16, 0x22, 8);
	p[24] = f->name_len;
	memcpy(p + 25, f->name, f->name_len);
	p[25 + f->name_len] = f->version_len;
	memcpy(p + 26 + f->name_len, f->version, f->version_len);
	uint32_t len = 26u + f->name_len + f->version_len;

	memset(p + len, 'x', (size_t)f->extra);
	return len + (uint32_t)f->extra;
}

static void add_header(struct fx_buf *v, const struct hdr_fields *f)
{
	uint8_t p[600];

	fx_buf_add(v, DEVMIG_STREAM_MAGIC, DEVMIG_STREAM_MAGIC_LEN);
	add_rec(v, DEVMIG_REC_HEADER, p, hdr_payload(p, f));
}

static void add_end(struct fx_buf *v, uint64_t bytes, uint32_t count, uint32_t zero)
{
	uint8_t p[16];

	put_le(p, bytes, 8);
	put_le(p + 8, count, 4);
	put_le(p + 12, zero, 4);
	add_rec(v, DEVMIG_REC_END, p, 16);
}

/* ---------------------------------------------------------------- crc32c */

static void check_vector(const void *buf, size_t len, uint32_t want)
{
	assert_int_equal(devmig_crc32c(0, buf, len), want);
	assert_int_equal(devmig_crc32c_sw(0, buf, len), want);
}

static void crc_known_vectors(void **state)
{
	(void)state;
	uint8_t b[32];

	check_vector("123456789", 9, 0xE3069283u);
	check_vector("", 0, 0);
	check_vector("a", 1, 0xC1D04330u);
	/* RFC 3720 (iSCSI) appendix B.4. */
	memset(b, 0, sizeof(b));
	check_vector(b, 32, 0x8A9136AAu);
	memset(b, 0xff, sizeof(b));
	check_vector(b, 32, 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	check_vector(b, 32, 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	check_vector(b, 32, 0x113FDB5Cu);
	/* A long vector through the interleaved path: 1 MiB of 'a' (the
	 * value was computed with a plain bitwise implementation, below). */
	size_t n = 1u << 20;
	uint8_t *big = malloc(n);

	assert_non_null(big);
	memset(big, 'a', n);
	uint32_t ref = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		ref ^= big[i];
		for (int k = 0; k < 8; k++)
			ref = (ref >> 1) ^ (0x82F63B78u & (0u - (ref & 1)));
	}
	ref = ~ref;
	check_vector(big, n, ref);
	free(big);
}

static void crc_chaining(void **state)
{
	(void)state;
	uint64_t rng = seed_base ^ 1;
	size_t n = 200000;
	uint8_t *b = malloc(n);

	assert_non_null(b);
	fill_random(&rng, b, n);
	/* Every split of a short buffer. */
	uint32_t whole = devmig_crc32c(0, b, 300);

	for (size_t i = 0; i <= 300; i++) {
		assert_int_equal(devmig_crc32c(devmig_crc32c(0, b, i), b + i, 300 - i), whole);
		assert_int_equal(devmig_crc32c_sw(devmig_crc32c_sw(0, b, i), b + i, 300 - i),
				 whole);
	}
	/* Random three-way splits of a long one. */
	whole = devmig_crc32c(0, b, n);
	for (int t = 0; t < 200; t++) {
		size_t i = (size_t)(fx_rnd(&rng) % (n + 1));
		size_t j = i + (size_t)(fx_rnd(&rng) % (n - i + 1));
		uint32_t c = devmig_crc32c(0, b, i);

		c = devmig_crc32c(c, b + i, j - i);
		c = devmig_crc32c(c, b + j, n - j);
		assert_int_equal(c, whole);
	}
	/* The chained value is not the same as restarting. */
	assert_int_not_equal(devmig_crc32c(devmig_crc32c(0, b, 10), b + 10, 10),
			     devmig_crc32c(0, b + 10, 10));
	free(b);
}

static void crc_hw_sw_agree(void **state)
{
	(void)state;
	if (!devmig_crc32c_hw_active()) {
		print_message("# no SSE4.2 path active: comparing the portable path with itself\n");
	}
	uint64_t rng = seed_base ^ 2;
	size_t n = 400000;
	uint8_t *b = malloc(n + 64);

	assert_non_null(b);
	fill_random(&rng, b, n + 64);
	for (int t = 0; t < 3000; t++) {
		size_t align = (size_t)(fx_rnd(&rng) % 64);
		size_t len = fx_rnd_size(&rng, n) - 1 + (size_t)(fx_rnd(&rng) % 2);

		if (len > n)
			len = n;
		uint32_t init = (uint32_t)fx_rnd(&rng);
		uint32_t hw = devmig_crc32c(init, b + align, len);
		uint32_t sw = devmig_crc32c_sw(init, b + align, len);

		if (hw != sw)
			fail_msg("len %zu align %zu init 0x%08x: 0x%08x vs 0x%08x", len, align,
				 init, hw, sw);
	}
	/* Lengths right around the interleaving block sizes. */
	static const size_t edges[] = { 767, 768, 769, 775, 776, 1535, 1536, 24575, 24576,
					24577, 24583, 24584, 49152, 49152 + 768 + 7 };
	for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++)
		for (size_t a = 0; a < 8; a++)
			assert_int_equal(devmig_crc32c(7, b + a, edges[e]),
					 devmig_crc32c_sw(7, b + a, edges[e]));
	free(b);
}

/* ---------------------------------------------------------------- round trips */

static void roundtrip(size_t n, int rounds)
{
	for (int round = 0; round < rounds; round++) {
		uint64_t rng = seed_base ^ (n * 1000003u) ^ (uint64_t)round << 40;
		uint8_t *data = malloc(n ? n : 1);
		size_t cfg_len = (size_t)(fx_rnd(&rng) % 300);
		uint8_t cfg[300];
		struct fx_buf st = { 0 };

		assert_non_null(data);
		fill_random(&rng, data, n);
		fill_random(&rng, cfg, cfg_len);
		make_stream(&st, data, n, cfg, cfg_len, fx_rnd(&rng), 1u << 20);

		struct devmig_stream_header h;
		struct sink k = { 0 };

		test_header(&h);
		k.want_hdr = &h;
		struct devmig_stream_sink ops = sink_ops(&k);
		struct devmig_stream_reader *r = devmig_stream_reader_new(&ops);

		assert_non_null(r);
		assert_int_equal(feed(r, st.p, st.len, &rng, 1u << 20), 0);
		if (devmig_stream_reader_finish(r))
			fail_msg("finish: %s", devmig_stream_reader_error(r));
		assert_string_equal(devmig_stream_reader_error(r), "");
		assert_int_equal(devmig_stream_reader_total(r), st.len);
		assert_true(devmig_stream_reader_buffer_size(r) <= DEVMIG_STREAM_MAX_RECORD);
		assert_int_equal(k.headers, 1);
		assert_int_equal(k.configs, 1);
		assert_int_equal(k.bad, 0);
		assert_int_equal(k.order_bad, 0);
		assert_int_equal(k.types_bad, 0);
		assert_int_equal(k.dev.len, n);
		if (n)
			assert_memory_equal(k.dev.p, data, n);
		assert_int_equal(k.cfg.len, cfg_len);
		if (cfg_len)
			assert_memory_equal(k.cfg.p, cfg, cfg_len);
		assert_string_equal(k.hdr.name, h.name);
		assert_string_equal(k.hdr.version, h.version);
		assert_int_equal(k.hdr.caps, h.caps);
		assert_int_equal(k.hdr.config_fingerprint, h.config_fingerprint);
		assert_int_equal(k.hdr.format, DEVMIG_STREAM_FORMAT);
		/* finish is idempotent on success. */
		assert_int_equal(devmig_stream_reader_finish(r), 0);
		devmig_stream_reader_free(r);
		sink_free(&k);
		fx_buf_free(&st);
		free(data);
	}
}

static void roundtrip_0(void **state)
{
	(void)state;
	roundtrip(0, 40);
}

static void roundtrip_1(void **state)
{
	(void)state;
	roundtrip(1, 40);
}

static void roundtrip_1000(void **state)
{
	(void)state;
	roundtrip(1000, 40);
}

static void roundtrip_3m(void **state)
{
	(void)state;
	roundtrip(3u << 20, 4);
}

/* read_iov yields the same kind of valid stream, with record bodies referenced in place. */
static void segments_roundtrip(void **state)
{
	(void)state;
	for (int round = 0; round < 20; round++) {
		uint64_t rng = seed_base ^ 0xabcdef ^ (uint64_t)round << 32;
		size_t n = round == 0 ? 0 : (size_t)(fx_rnd(&rng) % (3u << 20));
		uint8_t *data = malloc(n ? n : 1);
		uint8_t cfg[200];
		struct src s;
		struct fx_buf st = { 0 };
		struct devmig_stream_header h;
		size_t referenced = 0;

		fill_random(&rng, data, n);
		fill_random(&rng, cfg, sizeof(cfg));
		src_init(&s, data, n, cfg, sizeof(cfg), fx_rnd(&rng));
		s.use_ref = true;
		struct devmig_stream_source ops = src_ops(&s);
		test_header(&h);
		struct devmig_stream_writer *w = devmig_stream_writer_new(&h, &ops);
		assert_non_null(w);
		while (!devmig_stream_writer_done(w)) {
			struct iovec iov[64];
			int niov, max_iov = 4 + (int)(fx_rnd(&rng) % 60);
			size_t cap = fx_rnd(&rng) % 4 ? (1u << 20) : 1 + (size_t)(fx_rnd(&rng) % 5000);
			ssize_t got = devmig_stream_writer_read_iov(w, iov, max_iov, &niov, cap, true, NULL);
			assert_true(got >= 0 && (size_t)got <= cap);
			assert_true(niov <= max_iov);
			size_t sum = 0;
			for (int i = 0; i < niov; i++) {
				const uint8_t *b = iov[i].iov_base;
				if (n && b >= data && b < data + n)
					referenced += iov[i].iov_len;
				fx_buf_add(&st, b, iov[i].iov_len);
				sum += iov[i].iov_len;
			}
			assert_int_equal(sum, (size_t)got);
			/* Short only at the very end: a short reply means "no more". */
			if ((size_t)got < cap)
				assert_true(devmig_stream_writer_done(w));
		}
		/* Some (small reads queue records, few segments force copies):
		 * segments_reference_bodies says how many exactly. */
		if (n > 64 * 1024)
			assert_true(referenced > 0);

		struct sink k = { 0 };
		k.want_hdr = &h;
		struct devmig_stream_sink sk = sink_ops(&k);
		struct devmig_stream_reader *r = devmig_stream_reader_new(&sk);
		assert_int_equal(feed(r, st.p, st.len, &rng, 1u << 20), 0);
		if (devmig_stream_reader_finish(r))
			fail_msg("finish: %s", devmig_stream_reader_error(r));
		assert_int_equal(k.dev.len, n);
		if (n)
			assert_memory_equal(k.dev.p, data, n);
		assert_int_equal(k.bad, 0);
		assert_int_equal(k.types_bad, 0);
		devmig_stream_reader_free(r);
		devmig_stream_writer_free(w);
		sink_free(&k);
		fx_buf_free(&st);
		free(data);
	}
}

/* Four 64 KiB bodies emitted for reference: one read of 1 MiB in 64
 * segments points at each of them; a read in 4 segments copies all but the
 * first; in copy mode (writer_read) nothing is referenced at all. */
static uint8_t ref_body[4][64 * 1024];

static int ref_records(void *opaque, struct devmig_save *sv)
{
	int *done = opaque;
	if (*done)
		return 0;
	*done = 1;
	for (int i = 0; i < 4; i++)
		assert_int_equal(devmig_save_record_ref(sv, 1, "head", 4, ref_body[i],
							sizeof(ref_body[i])), 0);
	return 0;
}

static size_t referenced_in(const struct iovec *iov, int niov)
{
	size_t n = 0;
	for (int i = 0; i < niov; i++)
		if ((const uint8_t *)iov[i].iov_base >= ref_body[0] &&
		    (const uint8_t *)iov[i].iov_base < ref_body[4])
			n += iov[i].iov_len;
	return n;
}

static void segments_reference_bodies(void **state)
{
	(void)state;
	struct devmig_stream_header h;
	struct iovec iov[64];
	int done, niov;

	test_header(&h);
	for (int max_iov = 4; max_iov <= 64; max_iov += 60) {
		done = 0;
		struct devmig_stream_source ops = { .opaque = &done, .records = ref_records };
		struct devmig_stream_writer *w = devmig_stream_writer_new(&h, &ops);
		ssize_t got = devmig_stream_writer_read_iov(w, iov, max_iov, &niov, 1u << 20, true, NULL);
		assert_true(got > 4 * 64 * 1024);
		assert_int_equal(referenced_in(iov, niov),
				 (max_iov == 64 ? 4 : 1) * sizeof(ref_body[0]));
		devmig_stream_writer_free(w);
	}
	/* Running (not final), bodies are copied. */
	done = 0;
	struct devmig_stream_source ops = { .opaque = &done, .records = ref_records };
	struct devmig_stream_writer *w = devmig_stream_writer_new(&h, &ops);
	ssize_t got = devmig_stream_writer_read_iov(w, iov, 64, &niov, 1u << 20, false, NULL);
	assert_true(got > 4 * 64 * 1024);
	assert_int_equal(referenced_in(iov, niov), 0);
	devmig_stream_writer_free(w);
}

static void writer_in_place(void **state)
{
	(void)state;
	size_t n = 1u << 20, cap = 256u << 10;
	uint8_t *data = malloc(n), *out = malloc(cap);
	struct devmig_stream_header h;
	struct src s;

	assert_non_null(data);
	assert_non_null(out);
	uint64_t rng = seed_base ^ 3;

	fill_random(&rng, data, n);
	test_header(&h);
	src_init(&s, data, n, (const uint8_t *)"cfg", 3, 9);
	struct devmig_stream_source ops = src_ops(&s);
	struct devmig_stream_writer *w = devmig_stream_writer_new(&h, &ops);

	assert_non_null(w);
	ssize_t got = devmig_stream_writer_read(w, out, cap, true);

	/* Fills the buffer completely while data flows: a short read means the end. */
	assert_int_equal(got, (ssize_t)cap);
	/* The first record's payload sits right after its header in out. */
	size_t hdr_rec = 8 + 12 + 26 + strlen(h.name) + strlen(h.version);

	assert_int_equal(out[hdr_rec] | out[hdr_rec + 1] << 8 | out[hdr_rec + 2] << 16,
			 DEVMIG_REC_VARIANT + 1);
	uint32_t len = (uint32_t)out[hdr_rec + 4] | (uint32_t)out[hdr_rec + 5] << 8 |
		       (uint32_t)out[hdr_rec + 6] << 16 | (uint32_t)out[hdr_rec + 7] << 24;

	assert_true(len > 0 && len <= cap);
	assert_memory_equal(out + hdr_rec + 8, data, len);
	devmig_stream_writer_free(w);
	free(data);
	free(out);
}

static void writer_accounting(void **state)
{
	(void)state;
	struct devmig_stream_header h;
	struct src s;
	uint8_t data[100], out[4096];

	memset(data, 0x5a, sizeof(data));
	test_header(&h);
	src_init(&s, data, sizeof(data), (const uint8_t *)"config", 6, 1);
	struct devmig_stream_source ops = src_ops(&s);
	struct devmig_stream_writer *w = devmig_stream_writer_new(&h, &ops);

	assert_non_null(w);
	size_t hdr_bytes = 8 + 12 + 26 + strlen(h.name) + strlen(h.version);

	assert_int_equal(devmig_stream_writer_pending(w), hdr_bytes);
	assert_int_equal(devmig_stream_writer_total(w), 0);
	assert_int_equal(devmig_stream_writer_read(w, out, 0, true), 0);
	assert_int_equal(devmig_stream_writer_read(w, out, 1, true), 1);
	assert_int_equal(out[0], 'D');
	assert_int_equal(devmig_stream_writer_pending(w), hdr_bytes - 1);
	assert_int_equal(devmig_stream_writer_total(w), 1);
	assert_false(devmig_stream_writer_done(w));

	struct fx_buf st = { 0 };

	fx_buf_add(&st, out, 1);
	uint64_t rng = 5;
	size_t before_end = 0;

	while (!devmig_stream_writer_done(w)) {
		size_t cap = 1 + (size_t)(fx_rnd(&rng) % 7);
		ssize_t n = devmig_stream_writer_read(w, out, cap, true);

		assert_true(n > 0);
		fx_buf_add(&st, out, (size_t)n);
		if (!devmig_stream_writer_done(w))
			before_end = st.len;
	}
	assert_int_equal(devmig_stream_writer_total(w), st.len);
	assert_int_equal(devmig_stream_writer_pending(w), 0);
	assert_true(before_end < st.len);
	/* Over: every further read returns 0, final or not, and calls nothing. */
	int calls = s.config_calls;

	assert_int_equal(devmig_stream_writer_read(w, out, sizeof(out), true), 0);
	assert_int_equal(devmig_stream_writer_read(w, out, sizeof(out), false), 0);
	assert_int_equal(s.config_calls, calls);
	assert_int_equal(devmig_stream_writer_total(w), st.len);
	assert_int_equal(memcmp(st.p, DEVMIG_STREAM_MAGIC, 8), 0);

	struct sink k = { 0 };
	char why[512];

	assert_int_equal(read_all(st.p, st.len, &k, why, sizeof(why)), 0);
	assert_int_equal(k.dev.len, sizeof(data));
	assert_memory_equal(k.cfg.p, "config", 6);
	sink_free(&k);
	fx_buf_free(&st);
	devmig_stream_writer_free(w);
}

/* PRE_COPY reads return what there is (0 when nothing), then STOP_COPY ends it. */
static void precopy_then_final(void **state)
{
	(void)state;
	for (int round = 0; round < 20; round++) {
		uint64_t rng = seed_base ^ 0x77 ^ (uint64_t)round << 32;
		size_t n = 200000 + (size_t)(fx_rnd(&rng) % 100000);
		uint8_t *data = malloc(n);
		uint8_t cfg[64];
		struct devmig_stream_header h;
		struct src s;
		struct sink k = { 0 };

		assert_non_null(data);
		fill_random(&rng, data, n);
		fill_random(&rng, cfg, sizeof(cfg));
		test_header(&h);
		src_init(&s, data, n, cfg, sizeof(cfg), fx_rnd(&rng));
		s.avail = 0;
		k.want_dev = data;
		k.want_dev_len = n;
		k.want_cfg = cfg;
		k.want_cfg_len = sizeof(cfg);
		struct devmig_stream_source ops = src_ops(&s);
		struct devmig_stream_writer *w = devmig_stream_writer_new(&h, &ops);
		struct devmig_stream_sink sops = sink_ops(&k);
		struct devmig_stream_reader *r = devmig_stream_reader_new(&sops);

		assert_non_null(w);
		assert_non_null(r);
		/* Pre-copy: the device makes data available in bursts, the stream is
		 * read until "nothing now", fed to the reader as it comes. */
		size_t precopy_limit = n - (size_t)(fx_rnd(&rng) % (n / 2));

		while (s.avail < precopy_limit) {
			size_t burst = fx_rnd_size(&rng, 60000);

			s.avail = s.avail + burst > precopy_limit ? precopy_limit : s.avail + burst;
			struct fx_buf part = { 0 };

			drain_writer(w, &part, &rng, 1u << 17, false);
			assert_int_equal(s.pos, s.avail); /* all it had was taken */
			assert_false(devmig_stream_writer_done(w));
			assert_int_equal(devmig_stream_writer_pending(w), 0);
			assert_int_equal(feed(r, part.p, part.len, &rng, 1u << 16), 0);
			fx_buf_free(&part);
			/* Nothing now: 0, repeatedly, and no CONFIG yet. */
			uint8_t tmp[2048];

			assert_int_equal(devmig_stream_writer_read(w, tmp, sizeof(tmp), false), 0);
			assert_int_equal(devmig_stream_writer_read(w, tmp, 1, false), 0);
			assert_int_equal(s.config_calls, 0);
		}
		/* Everything handed over so far is complete records: the device
		 * bytes are all at the sink already. */
		assert_int_equal(k.dev.len, s.avail);
		assert_int_equal(k.configs, 0);
		/* Stop-copy: the rest, then CONFIG and END. */
		s.avail = n;
		struct fx_buf rest = { 0 };

		drain_writer(w, &rest, &rng, 1u << 17, true);
		assert_int_equal(feed(r, rest.p, rest.len, &rng, 1u << 16), 0);
		if (devmig_stream_reader_finish(r))
			fail_msg("finish: %s", devmig_stream_reader_error(r));
		assert_int_equal(s.config_calls, 1);
		assert_int_equal(k.dev.len, n);
		assert_memory_equal(k.dev.p, data, n);
		assert_int_equal(k.configs, 1);
		assert_int_equal(k.bad, 0);
		assert_int_equal(k.order_bad, 0);
		fx_buf_free(&rest);
		sink_free(&k);
		devmig_stream_reader_free(r);
		devmig_stream_writer_free(w);
		free(data);
	}
}

static void writer_errors(void **state)
{
	(void)state;
	struct devmig_stream_header h;
	struct src s;
	uint8_t data[50000], out[8192];

	memset(data, 1, sizeof(data));
	test_header(&h);
	/* Device error on the 3rd call: propagated, then sticky. */
	src_init(&s, data, sizeof(data), (const uint8_t *)"c", 1, 1);
	s.fail_after = 2;
	s.fail_err = -EIO;
	struct devmig_stream_source ops = src_ops(&s);
	struct devmig_stream_writer *w = devmig_stream_writer_new(&h, &ops);
	ssize_t rc = 0;

	assert_non_null(w);
	for (int i = 0; i < 20 && rc >= 0; i++)
		rc = devmig_stream_writer_read(w, out, sizeof(out), true);
	assert_int_equal(rc, -EIO);
	s.fail_after = -1;
	assert_int_equal(devmig_stream_writer_read(w, out, sizeof(out), true), -EIO);
	assert_int_equal(devmig_stream_writer_read(w, out, 1, false), -EIO);
	assert_false(devmig_stream_writer_done(w));
	devmig_stream_writer_free(w);

	/* Config error. */
	src_init(&s, data, 10, (const uint8_t *)"c", 1, 1);
	s.cfg_err = -ENODEV;
	ops = src_ops(&s);
	w = devmig_stream_writer_new(&h, &ops);
	assert_non_null(w);
	rc = 0;
	for (int i = 0; i < 20 && rc >= 0 && !devmig_stream_writer_done(w); i++)
		rc = devmig_stream_writer_read(w, out, sizeof(out), true);
	assert_int_equal(rc, -ENODEV);
	assert_int_equal(devmig_stream_writer_read(w, out, sizeof(out), true), -ENODEV);
	assert_false(devmig_stream_writer_done(w));
	devmig_stream_writer_free(w);

	/* Header fields that do not fit the format are refused up front. */
	memset(h.name, 'n', sizeof(h.name)); /* 65 chars, no NUL */
	assert_null(devmig_stream_writer_new(&h, &ops));
	test_header(&h);
	memset(h.version, 'v', sizeof(h.version));
	assert_null(devmig_stream_writer_new(&h, &ops));
	test_header(&h);
	ops.config_size = DEVMIG_STREAM_MAX_RECORD + 1;
	assert_null(devmig_stream_writer_new(&h, &ops));
	/* Longest legal name and version. */
	ops = src_ops(&s);
	memset(h.name, 'n', DEVMIG_STREAM_NAME_MAX);
	h.name[DEVMIG_STREAM_NAME_MAX] = 0;
	memset(h.version, 'v', DEVMIG_STREAM_VERSION_MAX);
	h.version[DEVMIG_STREAM_VERSION_MAX] = 0;
	s.cfg_err = 0;
	w = devmig_stream_writer_new(&h, &ops);
	assert_non_null(w);
	struct fx_buf st = { 0 };
	uint64_t rng = 3;

	drain_writer(w, &st, &rng, 4096, true);
	struct sink k = { 0 };
	char why[512];

	if (read_all(st.p, st.len, &k, why, sizeof(why)))
		fail_msg("%s", why);
	assert_string_equal(k.hdr.name, h.name);
	assert_string_equal(k.hdr.version, h.version);
	sink_free(&k);
	fx_buf_free(&st);
	devmig_stream_writer_free(w);
}

/* What devmig_save_record* refuse, and what room says, from inside a save. */
static int limits_records(void *opaque, struct devmig_save *sv)
{
	int *calls = opaque;
	static uint8_t big[DEVMIG_RECORD_MAX + 1];

	if ((*calls)++)
		return 0;
	assert_false(devmig_save_final(sv));
	assert_int_equal(devmig_save_room(sv), 100 - DEVMIG_STREAM_MAGIC_LEN - 12 - 26 - 15 - 14);
	assert_int_equal(devmig_save_record(sv, 0, "x", 1), -EINVAL);
	assert_int_equal(devmig_save_record(sv, DEVMIG_RECORD_TYPE_MAX + 1, "x", 1), -EINVAL);
	assert_int_equal(devmig_save_record(sv, 1, big, DEVMIG_RECORD_MAX + 1), -E2BIG);
	assert_int_equal(devmig_save_record_ref(sv, 1, big, 1, big, DEVMIG_RECORD_MAX), -E2BIG);
	assert_int_equal(devmig_save_record_ref(sv, 1, big, SIZE_MAX, big, 2), -E2BIG);
	assert_int_equal(devmig_save_record_ref(sv, 1, big, 2, big, SIZE_MAX), -E2BIG);
	/* a record that does not fit the read is queued: no room left after it */
	assert_int_equal(devmig_save_record(sv, DEVMIG_RECORD_TYPE_MAX, big, 100), 0);
	assert_int_equal(devmig_save_room(sv), 0);
	return 0;
}

static void save_limits_and_room(void **state)
{
	(void)state;
	struct devmig_stream_header h;
	int calls = 0;
	uint8_t out[100];

	test_header(&h);
	struct devmig_stream_source ops = { .opaque = &calls, .records = limits_records };
	struct devmig_stream_writer *w = devmig_stream_writer_new(&h, &ops);
	assert_non_null(w);
	assert_int_equal(devmig_stream_writer_read(w, out, sizeof(out), false), sizeof(out));
	assert_int_equal(calls, 1);
	/* the queued record is handed out over the next reads, then "none now" */
	size_t got = 0;
	ssize_t n;
	while ((n = devmig_stream_writer_read(w, out, sizeof(out), false)) > 0)
		got += (size_t)n;
	assert_int_equal(got + sizeof(out), 8 + 12 + 26 + 15 + 14 + 12 + 100);
	devmig_stream_writer_free(w);
}

/* ---------------------------------------------------------------- corruption */

/*
 * A small stream with several records: reads of 1100..1500 bytes are
 * large enough for in-place records and small enough to need several.
 */
static void small_stream(struct fx_buf *st, uint8_t *data, size_t n, uint8_t *cfg, size_t cfg_len)
{
	uint64_t rng = seed_base ^ 0x51;

	fill_random(&rng, data, n);
	fill_random(&rng, cfg, cfg_len);
	src_max_piece = 700;
	make_stream_min(st, data, n, cfg, cfg_len, 42, 1100, 1500);
	src_max_piece = 0;
}

static void truncation_refused(void **state)
{
	(void)state;
	uint8_t data[3000], cfg[40];
	struct fx_buf st = { 0 };

	small_stream(&st, data, sizeof(data), cfg, sizeof(cfg));
	uint64_t rng = seed_base ^ 0x99;

	for (size_t cut = 0; cut <= st.len; cut++) {
		struct sink k = { .want_dev = data, .want_dev_len = sizeof(data),
				  .want_cfg = cfg, .want_cfg_len = sizeof(cfg) };
		struct devmig_stream_sink ops = sink_ops(&k);
		struct devmig_stream_reader *r = devmig_stream_reader_new(&ops);

		assert_non_null(r);
		assert_int_equal(feed(r, st.p, cut, &rng, cut % 2 ? 1 : 4096), 0);
		assert_int_equal(devmig_stream_reader_total(r), cut);
		int rc = devmig_stream_reader_finish(r);

		if (cut == st.len) {
			assert_int_equal(rc, 0);
		} else {
			const char *why = devmig_stream_reader_error(r);

			assert_int_equal(rc, -EINVAL);
			if (!strstr(why, "truncated") && !strstr(why, "empty"))
				fail_msg("cut %zu: \"%s\"", cut, why);
			/* The failure sticks. */
			char copy[512];

			snprintf(copy, sizeof(copy), "%s", why);
			assert_int_equal(devmig_stream_reader_finish(r), -EINVAL);
			assert_int_equal(devmig_stream_reader_write(r, "x", 1), -EINVAL);
			assert_string_equal(devmig_stream_reader_error(r), copy);
		}
		assert_int_equal(k.bad, 0);
		assert_int_equal(k.order_bad, 0);
		devmig_stream_reader_free(r);
		sink_free(&k);
	}
	fx_buf_free(&st);
}

static void truncation_reasons(void **state)
{
	(void)state;
	uint8_t data[3000], cfg[40];
	struct fx_buf st = { 0 };
	char why[512];

	small_stream(&st, data, sizeof(data), cfg, sizeof(cfg));
	size_t hdr_end = 8 + 12 + 26 + 15 + 14;
	struct sink k = { 0 };

	assert_int_equal(read_all(st.p, 0, &k, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "empty stream: no devmig magic");
	assert_int_equal(read_all(st.p, 5, &k, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "stream truncated in its magic (5 of 8 bytes)");
	assert_int_equal(read_all(st.p, 8, &k, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "stream truncated after its magic: no HEADER record");
	assert_int_equal(read_all(st.p, hdr_end + 3, &k, why, sizeof(why)), -EINVAL);
	assert_string_equal(why,
			    "stream truncated 3 bytes into record 2 (in its 8-byte record header)");
	assert_int_equal(read_all(st.p, hdr_end + 9, &k, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "stream truncated 9 bytes into record 2 (device type 1) of "));
	assert_int_equal(read_all(st.p, 8 + 10, &k, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "stream truncated 10 bytes into record 1 (HEADER) of 67 bytes");
	assert_int_equal(read_all(st.p, st.len - 28, &k, why, sizeof(why)), -EINVAL);
	assert_true(strstr(why, "(CONFIG): the END record is missing") != NULL);
	sink_free(&k);
	fx_buf_free(&st);
}

static void byte_flip_refused(void **state)
{
	(void)state;
	uint8_t data[3000], cfg[40];
	struct fx_buf st = { 0 };
	struct devmig_stream_header h;

	small_stream(&st, data, sizeof(data), cfg, sizeof(cfg));
	test_header(&h);
	uint8_t *m = malloc(st.len);
	uint64_t rng = seed_base ^ 0xf1;
	int crc_reasons = 0, delivered = 0;

	assert_non_null(m);
	for (size_t off = 0; off < st.len; off++) {
		for (int v = 0; v < 3; v++) {
			uint8_t x = v == 0 ? 0xff : v == 1 ? 0x01 : (uint8_t)(1 + fx_rnd(&rng) % 255);
			struct sink k = { .want_dev = data, .want_dev_len = sizeof(data),
					  .want_cfg = cfg, .want_cfg_len = sizeof(cfg),
					  .want_hdr = &h };
			struct devmig_stream_sink ops = sink_ops(&k);
			struct devmig_stream_reader *r = devmig_stream_reader_new(&ops);

			memcpy(m, st.p, st.len);
			m[off] ^= x;
			assert_non_null(r);
			int rc = feed(r, m, st.len, &rng, v == 2 ? 1 : 700);

			if (rc == 0)
				rc = devmig_stream_reader_finish(r);
			if (rc != -EINVAL)
				fail_msg("flip 0x%02x at %zu accepted (rc %d)", x, off, rc);
			const char *why = devmig_stream_reader_error(r);

			assert_true(why[0] != '\0');
			if (strstr(why, "CRC mismatch"))
				crc_reasons++;
			delivered += k.device_calls;
			/* Nothing unchecked reached the sink. */
			if (k.bad)
				fail_msg("flip at %zu: the sink received a corrupted payload", off);
			assert_int_equal(k.order_bad, 0);
			devmig_stream_reader_free(r);
			sink_free(&k);
		}
	}
	/* The flips were caught by the CRC mostly, not by luck elsewhere. */
	assert_true(crc_reasons > (int)st.len);
	assert_true(delivered > 0);
	free(m);
	fx_buf_free(&st);
}

static void crc_mismatch_reason(void **state)
{
	(void)state;
	uint8_t data[3000], cfg[40];
	struct fx_buf st = { 0 };
	char why[512];
	struct sink k = { 0 };

	small_stream(&st, data, sizeof(data), cfg, sizeof(cfg));
	size_t hdr_end = 8 + 12 + 26 + 15 + 14;

	st.p[hdr_end + 8] ^= 0x10; /* record 2's payload */
	assert_int_equal(read_all(st.p, st.len, &k, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "record 2 (device type 1): CRC mismatch (stored 0x"));
	assert_true(strstr(why, ", computed 0x") != NULL);
	assert_int_equal(k.device_calls, 0);
	assert_int_equal(k.headers, 1);
	sink_free(&k);
	fx_buf_free(&st);
}

/* ---------------------------------------------------------------- sink refusals */

static void header_refused_by_sink(void **state)
{
	(void)state;
	uint8_t data[3000], cfg[40];
	struct fx_buf st = { 0 };
	char why[512];

	small_stream(&st, data, sizeof(data), cfg, sizeof(cfg));
	struct sink k = { .refuse_header = -EPERM,
			  .refuse_why = "device model mismatch: this host runs devmig-other" };

	assert_int_equal(read_all(st.p, st.len, &k, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "record 1 (HEADER): refused: "
				 "device model mismatch: this host runs devmig-other");
	assert_int_equal(k.device_calls, 0);
	assert_int_equal(k.configs, 0);
	sink_free(&k);

	/* No reason given: the errno speaks. */
	struct sink k2 = { .refuse_header = -EPERM };

	assert_int_equal(read_all(st.p, st.len, &k2, why, sizeof(why)), -EINVAL);
	assert_true(strstr(why, "record 1 (HEADER): refused: ") == why);
	assert_true(strstr(why, strerror(EPERM)) != NULL);
	sink_free(&k2);

	/* A record refused, mid-stream, byte by byte. */
	struct sink k3 = { .refuse_device_at = 2 };
	struct devmig_stream_sink ops = sink_ops(&k3);
	struct devmig_stream_reader *r = devmig_stream_reader_new(&ops);
	uint64_t rng = 1;

	int frc = feed(r, st.p, st.len, &rng, 1);
	if (frc != -EINVAL)
		fail_msg("rc %d calls %d dev %zu: %s", frc, k3.device_calls, k3.dev.len, devmig_stream_reader_error(r));
	assert_string_equal(devmig_stream_reader_error(r),
			    "record 3 (device type 2): refused: device rejected record 2");
	assert_int_equal(k3.device_calls, 2);
	assert_int_equal(devmig_stream_reader_write(r, st.p, 1), -EINVAL);
	assert_int_equal(devmig_stream_reader_finish(r), -EINVAL);
	assert_string_equal(devmig_stream_reader_error(r),
			    "record 3 (device type 2): refused: device rejected record 2");
	devmig_stream_reader_free(r);
	sink_free(&k3);
	fx_buf_free(&st);
}

/* ---------------------------------------------------------------- crafted streams */

static void crafted_valid(void **state)
{
	(void)state;
	struct fx_buf v = { 0 };
	struct sink k = { 0 };
	char why[512];

	/* The crafting helpers make streams the reader accepts... */
	add_header(&v, &good_hdr);
	add_rec(&v, REC_V1, "abc", 3);
	add_rec(&v, REC_V1 + 1, "", 0);
	add_rec(&v, REC_V1 + 2, "defg", 4);
	add_rec(&v, DEVMIG_REC_CONFIG, "cf", 2);
	add_end(&v, 7, 3, 0);
	if (read_all(v.p, v.len, &k, why, sizeof(why)))
		fail_msg("%s", why);
	assert_int_equal(k.dev.len, 7);
	assert_memory_equal(k.dev.p, "abcdefg", 7);
	assert_int_equal(k.types_bad, 0);
	assert_string_equal(k.hdr.name, "nic");
	assert_string_equal(k.hdr.version, "v1");
	assert_int_equal(k.hdr.caps, 0x11);
	assert_int_equal(k.hdr.config_fingerprint, 0x22);
	sink_free(&k);
	fx_buf_free(&v);
	/* The core's own body records pass the framing to the sink too. */
	add_header(&v, &good_hdr);
	for (uint32_t t = DEVMIG_REC_MEM_INFO; t <= DEVMIG_REC_BAR; t++)
		add_rec(&v, t, "m", 1);
	add_rec(&v, DEVMIG_REC_CONFIG, "cf", 2);
	add_end(&v, 4, 4, 0);
	memset(&k, 0, sizeof(k));
	if (read_all(v.p, v.len, &k, why, sizeof(why)))
		fail_msg("%s", why);
	assert_int_equal(k.device_calls, 4);
	sink_free(&k);
	fx_buf_free(&v);
	/* ...including the smallest one, and empty name/version. */
	struct hdr_fields f = good_hdr;

	f.name_len = f.version_len = 0;
	add_header(&v, &f);
	add_rec(&v, DEVMIG_REC_CONFIG, "", 0);
	add_end(&v, 0, 0, 0);
	memset(&k, 0, sizeof(k));
	if (read_all(v.p, v.len, &k, why, sizeof(why)))
		fail_msg("%s", why);
	sink_free(&k);
	fx_buf_free(&v);
}

static void record_order(void **state)
{
	(void)state;
	struct fx_buf v = { 0 };

	/* No HEADER first. */
	fx_buf_add(&v, DEVMIG_STREAM_MAGIC, 8);
	add_rec(&v, REC_V1, "abc", 3);
	expect_refused(v.p, v.len, "record 1 (device type 1): the stream must begin with a HEADER record");
	fx_buf_free(&v);
	fx_buf_add(&v, DEVMIG_STREAM_MAGIC, 8);
	add_rec(&v, DEVMIG_REC_CONFIG, "abc", 3);
	expect_refused(v.p, v.len, "record 1 (CONFIG): the stream must begin with a HEADER");
	fx_buf_free(&v);
	fx_buf_add(&v, DEVMIG_STREAM_MAGIC, 8);
	add_end(&v, 0, 0, 0);
	expect_refused(v.p, v.len, "record 1 (END): the stream must begin with a HEADER");
	fx_buf_free(&v);
	/* HEADER twice. */
	add_header(&v, &good_hdr);
	add_rec(&v, REC_V1, "abc", 3);
	{
		uint8_t p[300];

		add_rec(&v, DEVMIG_REC_HEADER, p, hdr_payload(p, &good_hdr));
	}
	expect_refused(v.p, v.len, "record 3 (HEADER): a second HEADER record");
	fx_buf_free(&v);
	/* A body record after CONFIG. */
	add_header(&v, &good_hdr);
	add_rec(&v, DEVMIG_REC_CONFIG, "c", 1);
	add_rec(&v, REC_V1, "abc", 3);
	expect_refused(v.p, v.len, "record 3 (device type 1): device data after the CONFIG record");
	fx_buf_free(&v);
	/* CONFIG twice. */
	add_header(&v, &good_hdr);
	add_rec(&v, DEVMIG_REC_CONFIG, "c", 1);
	add_rec(&v, DEVMIG_REC_CONFIG, "c", 1);
	expect_refused(v.p, v.len, "record 3 (CONFIG): a second CONFIG record");
	fx_buf_free(&v);
	/* END without CONFIG. */
	add_header(&v, &good_hdr);
	add_rec(&v, REC_V1, "abc", 3);
	add_end(&v, 3, 1, 0);
	expect_refused(v.p, v.len, "record 3 (END): END before the CONFIG record");
	fx_buf_free(&v);
	/* No END at all. */
	add_header(&v, &good_hdr);
	add_rec(&v, DEVMIG_REC_CONFIG, "c", 1);
	expect_refused(v.p, v.len, "stream truncated after record 2 (CONFIG): the END record is missing");
	fx_buf_free(&v);
	/* Unknown types: format 1's DEVICE, format 2's IRQ, a variant type 0 or
	 * beyond 0xffff. */
	add_header(&v, &good_hdr);
	add_rec(&v, 2, "abc", 3);
	expect_refused(v.p, v.len, "record 2 (type 2): unknown record type");
	fx_buf_free(&v);
	add_header(&v, &good_hdr);
	add_rec(&v, 9, "\1\0\0\0\0\0\0\0\0\0\0\0", 12);
	expect_refused(v.p, v.len, "record 2 (type 9): unknown record type");
	fx_buf_free(&v);
	add_header(&v, &good_hdr);
	add_rec(&v, DEVMIG_REC_VARIANT, "abc", 3);
	expect_refused(v.p, v.len, "record 2 (type 65536): unknown record type");
	fx_buf_free(&v);
	add_header(&v, &good_hdr);
	add_rec(&v, DEVMIG_REC_VARIANT + 0x10000, "abc", 3);
	expect_refused(v.p, v.len, "record 2 (type 131072): unknown record type");
	fx_buf_free(&v);
	add_header(&v, &good_hdr);
	add_rec(&v, 0, "", 0);
	expect_refused(v.p, v.len, "record 2 (type 0): unknown record type");
	fx_buf_free(&v);
}

static void end_counts(void **state)
{
	(void)state;
	struct fx_buf v = { 0 };
	static const struct {
		uint64_t bytes;
		uint32_t count, zero;
		const char *why;
	} cases[] = {
		{ 5, 2, 0, "record 5 (END): END declares 2 device records of 5 bytes, the stream carried 2 of 6" },
		{ 6, 3, 0, "record 5 (END): END declares 3 device records of 6 bytes, the stream carried 2 of 6" },
		{ 6, 2, 1, "record 5 (END): reserved field is 0x00000001, must be 0" },
		{ 6ull << 32 | 6, 2, 0, "the stream carried 2 of 6" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		add_header(&v, &good_hdr);
		add_rec(&v, REC_V1, "abc", 3);
		add_rec(&v, REC_V1, "def", 3);
		add_rec(&v, DEVMIG_REC_CONFIG, "c", 1);
		add_end(&v, cases[i].bytes, cases[i].count, cases[i].zero);
		expect_refused(v.p, v.len, cases[i].why);
		fx_buf_free(&v);
	}
	/* Wrong END length. */
	add_header(&v, &good_hdr);
	add_rec(&v, DEVMIG_REC_CONFIG, "c", 1);
	add_rec(&v, DEVMIG_REC_END, "0123456789abcdefg", 17);
	expect_refused(v.p, v.len, "record 3 (END): length 17, expected 16");
	fx_buf_free(&v);
}

static void header_fields(void **state)
{
	(void)state;
	struct fx_buf v = { 0 };
	struct hdr_fields f;
	char name65[66];

	memset(name65, 'n', 65);
	name65[65] = 0;

	f = good_hdr;
	f.format = 7;
	add_header(&v, &f);
	expect_refused(v.p, v.len,
		       "record 1 (HEADER): stream format 7 is not supported (this build reads 3)");
	fx_buf_free(&v);
	f = good_hdr;
	f.format = 1; /* format 1: opaque device bytes, not records */
	add_header(&v, &f);
	expect_refused(v.p, v.len, "stream format 1 is not supported (this build reads 3)");
	fx_buf_free(&v);
	f = good_hdr;
	f.format = 2; /* format 2: interrupts held apart from config space */
	add_header(&v, &f);
	expect_refused(v.p, v.len, "record 1 (HEADER): stream format 2 is not read: it kept "
				   "interrupts raised while the device was stopped in IRQ records");
	fx_buf_free(&v);
	f = good_hdr;
	f.format = 0;
	add_header(&v, &f);
	expect_refused(v.p, v.len, "stream format 0 is not supported (this build reads 3)");
	fx_buf_free(&v);
	f = good_hdr;
	f.reserved = 2;
	add_header(&v, &f);
	expect_refused(v.p, v.len, "record 1 (HEADER): reserved field is 0x0002, must be 0");
	fx_buf_free(&v);
	f = good_hdr;
	f.flags = 0x100;
	add_header(&v, &f);
	expect_refused(v.p, v.len, "record 1 (HEADER): flags are 0x00000100, must be 0");
	fx_buf_free(&v);
	f = good_hdr;
	f.name = name65;
	f.name_len = 65;
	add_header(&v, &f);
	expect_refused(v.p, v.len, "record 1 (HEADER): device name length 65 exceeds 64");
	fx_buf_free(&v);
	f = good_hdr;
	f.name = "n\0c";
	add_header(&v, &f);
	expect_refused(v.p, v.len, "record 1 (HEADER): device name contains a NUL byte");
	fx_buf_free(&v);
	f = good_hdr;
	f.version = "\0";
	f.version_len = 1;
	add_header(&v, &f);
	expect_refused(v.p, v.len, "record 1 (HEADER): version contains a NUL byte");
	fx_buf_free(&v);
	f = good_hdr;
	f.extra = 1;
	add_header(&v, &f);
	expect_refused(v.p, v.len, "record 1 (HEADER): payload is 32 bytes but its fields take 31");
	fx_buf_free(&v);
	/* name_len pointing past the payload. */
	{
		uint8_t p[300];
		uint32_t len = hdr_payload(p, &good_hdr);

		p[24] = 40;
		fx_buf_add(&v, DEVMIG_STREAM_MAGIC, 8);
		add_rec(&v, DEVMIG_REC_HEADER, p, len);
		expect_refused(v.p, v.len, "record 1 (HEADER): device name overruns the 31-byte payload");
		fx_buf_free(&v);
		len = hdr_payload(p, &good_hdr);
		p[28] = 200; /* version_len */
		fx_buf_add(&v, DEVMIG_STREAM_MAGIC, 8);
		add_rec(&v, DEVMIG_REC_HEADER, p, len);
		expect_refused(v.p, v.len, "record 1 (HEADER): version length 200 exceeds 128");
		fx_buf_free(&v);
		fx_buf_add(&v, DEVMIG_STREAM_MAGIC, 8);
		add_rec(&v, DEVMIG_REC_HEADER, p, 25);
		expect_refused(v.p, v.len, "record 1 (HEADER): length 25 is outside the valid 26..218");
		fx_buf_free(&v);
	}
	/* Bad magic, at the first differing byte. */
	add_header(&v, &good_hdr);
	v.p[3] = 'x';
	expect_refused(v.p, v.len, "bad magic: not a devmig stream");
	{
		struct devmig_stream_reader *r = devmig_stream_reader_new(NULL);

		assert_int_equal(devmig_stream_reader_write(r, v.p, 3), 0);
		assert_int_equal(devmig_stream_reader_write(r, v.p + 3, 1), -EINVAL);
		assert_string_equal(devmig_stream_reader_error(r), "bad magic: not a devmig stream");
		assert_int_equal(devmig_stream_reader_total(r), 3);
		devmig_stream_reader_free(r);
	}
	fx_buf_free(&v);
}

/* An oversized length is refused from the record header, before any buffering. */
static void oversized_record(void **state)
{
	(void)state;
	static const uint32_t lens[] = { DEVMIG_STREAM_MAX_RECORD + 1, 0x7fffffffu, 0xffffffffu };

	for (size_t i = 0; i < 3; i++) {
		struct fx_buf v = { 0 };
		struct sink k = { 0 };
		struct devmig_stream_sink ops = sink_ops(&k);
		struct devmig_stream_reader *r = devmig_stream_reader_new(&ops);
		uint8_t h[8];
		char want[160];

		add_header(&v, &good_hdr);
		assert_int_equal(devmig_stream_reader_write(r, v.p, v.len), 0);
		put_le(h, REC_V1, 4);
		put_le(h + 4, lens[i], 4);
		assert_int_equal(devmig_stream_reader_write(r, h, 7), 0);
		assert_int_equal(devmig_stream_reader_write(r, h + 7, 1), -EINVAL);
		snprintf(want, sizeof(want), "record 2 (device type 1): length %u exceeds the %u-byte maximum",
			 lens[i], DEVMIG_STREAM_MAX_RECORD);
		assert_string_equal(devmig_stream_reader_error(r), want);
		assert_int_equal(devmig_stream_reader_buffer_size(r), 0);
		devmig_stream_reader_free(r);
		sink_free(&k);
		fx_buf_free(&v);
	}
}

/* The largest record is accepted; the buffer grows to it and no further. */
static void max_record(void **state)
{
	(void)state;
	struct fx_buf v = { 0 };
	uint8_t *big = calloc(1, DEVMIG_STREAM_MAX_RECORD);
	struct sink k = { 0 };
	struct devmig_stream_sink ops = sink_ops(&k);
	struct devmig_stream_reader *r = devmig_stream_reader_new(&ops);

	assert_non_null(big);
	big[12345] = 7;
	add_header(&v, &good_hdr);
	add_rec(&v, REC_V1, "small", 5);
	add_rec(&v, REC_V1, big, DEVMIG_STREAM_MAX_RECORD);
	add_rec(&v, DEVMIG_REC_CONFIG, "", 0);
	add_end(&v, DEVMIG_STREAM_MAX_RECORD + 5, 2, 0);
	size_t split = v.len / 2, big_at = 8 + 12 + 31 + 12 + 5;

	/* Up to the big record's header: the small record was checked in place. */
	assert_int_equal(devmig_stream_reader_write(r, v.p, big_at + 8), 0);
	assert_int_equal(k.dev.len, 5);
	assert_int_equal(devmig_stream_reader_buffer_size(r), 0);
	/* Split inside the big record: it has to be buffered. */
	assert_int_equal(devmig_stream_reader_write(r, v.p + big_at + 8, 10), 0);
	assert_true(devmig_stream_reader_buffer_size(r) >= 10);
	assert_true(devmig_stream_reader_buffer_size(r) <= 4096); /* grows with the data */
	assert_int_equal(devmig_stream_reader_write(r, v.p + big_at + 18, split - big_at - 18), 0);
	assert_true(devmig_stream_reader_buffer_size(r) >= split - big_at - 8);
	assert_true(devmig_stream_reader_buffer_size(r) <= DEVMIG_STREAM_MAX_RECORD);
	assert_int_equal(devmig_stream_reader_write(r, v.p + split, v.len - split), 0);
	if (devmig_stream_reader_finish(r))
		fail_msg("%s", devmig_stream_reader_error(r));
	assert_int_equal(devmig_stream_reader_buffer_size(r), DEVMIG_STREAM_MAX_RECORD);
	assert_int_equal(k.dev.len, DEVMIG_STREAM_MAX_RECORD + 5);
	assert_int_equal(k.dev.p[5 + 12345], 7);
	devmig_stream_reader_free(r);
	sink_free(&k);
	fx_buf_free(&v);
	free(big);
}

static void data_after_end(void **state)
{
	(void)state;
	uint8_t data[3000], cfg[40];
	struct fx_buf st = { 0 };

	small_stream(&st, data, sizeof(data), cfg, sizeof(cfg));
	size_t len = st.len;
	/* The END record's index: count records. */
	size_t off = 8, nrec = 0;

	while (off < len) {
		uint32_t rl = (uint32_t)st.p[off + 4] | (uint32_t)st.p[off + 5] << 8 |
			      (uint32_t)st.p[off + 6] << 16 | (uint32_t)st.p[off + 7] << 24;

		off += 12 + rl;
		nrec++;
	}
	assert_int_equal(off, len);
	char want[160];

	snprintf(want, sizeof(want), "unexpected data after record %zu (END), which ends the stream",
		 nrec);
	/* Extra byte in the same write, and in a later write. */
	fx_buf_add(&st, "\0", 1);
	expect_refused(st.p, st.len, want);

	struct sink k = { 0 };
	struct devmig_stream_sink ops = sink_ops(&k);
	struct devmig_stream_reader *r = devmig_stream_reader_new(&ops);

	assert_int_equal(devmig_stream_reader_write(r, st.p, len), 0);
	assert_int_equal(devmig_stream_reader_write(r, NULL, 0), 0);
	assert_int_equal(devmig_stream_reader_write(r, st.p, 1), -EINVAL);
	assert_string_equal(devmig_stream_reader_error(r), want);
	assert_int_equal(devmig_stream_reader_finish(r), -EINVAL);
	assert_int_equal(devmig_stream_reader_total(r), len);
	devmig_stream_reader_free(r);
	sink_free(&k);
	/* A second whole stream appended is data after END too. */
	uint8_t *copy = malloc(len);

	assert_non_null(copy);
	memcpy(copy, st.p, len);
	st.len = len;
	fx_buf_add(&st, copy, len);
	free(copy);
	expect_refused(st.p, st.len, "after record");
	fx_buf_free(&st);
}

/*
 * The fuzz seeds: small valid streams (several shapes of record layout) that
 * the reader accepts; written to $DEVMIG_STREAM_SEED_DIR when it is set.
 */
static void fuzz_seeds(void **state)
{
	(void)state;
	const char *dir = getenv("DEVMIG_STREAM_SEED_DIR");
	static const struct {
		size_t n, cfg, mincap, maxcap;
		uint8_t seg_seed;
	} seeds[] = {
		{ 0, 0, 1, 64, 1 }, { 1, 16, 1, 1 << 20, 0x82 }, { 100, 64, 1, 1500, 3 },
		{ 5000, 256, 1040, 1300, 0x84 }, { 20000, 32, 1, 1 << 20, 5 },
	};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		uint64_t rng = 1000 + i;
		uint8_t *data = malloc(seeds[i].n + 1);
		uint8_t cfg[256];
		struct fx_buf st = { 0 };
		char path[4096], why[512];
		struct sink k = { 0 };

		assert_non_null(data);
		fill_random(&rng, data, seeds[i].n);
		fill_random(&rng, cfg, seeds[i].cfg);
		make_stream_min(&st, data, seeds[i].n, cfg, seeds[i].cfg, rng, seeds[i].mincap,
				seeds[i].maxcap);
		if (read_all(st.p, st.len, &k, why, sizeof(why)))
			fail_msg("seed %zu: %s", i, why);
		assert_int_equal(k.dev.len, seeds[i].n);
		sink_free(&k);
		if (dir && *dir) {
			snprintf(path, sizeof(path), "%s/valid-%zu-%zu", dir, seeds[i].n,
				 seeds[i].cfg);
			FILE *fp = fopen(path, "wb");

			assert_non_null(fp);
			assert_int_equal(fwrite(&seeds[i].seg_seed, 1, 1, fp), 1);
			assert_int_equal(fwrite(st.p, 1, st.len, fp), st.len);
			assert_int_equal(fclose(fp), 0);
		}
		fx_buf_free(&st);
		free(data);
	}
}

int main(void)
{
	const char *s = getenv("DEVMIG_TEST_SEED");

	if (s && *s)
		seed_base = strtoull(s, NULL, 0);
	print_message("# seed 0x%llx, crc32c %s\n", (unsigned long long)seed_base,
		      devmig_crc32c_hw_active() ? "SSE4.2" : "portable");

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(crc_known_vectors),
		cmocka_unit_test(segments_roundtrip),
		cmocka_unit_test(segments_reference_bodies),
		cmocka_unit_test(crc_chaining),
		cmocka_unit_test(crc_hw_sw_agree),
		cmocka_unit_test(roundtrip_0),
		cmocka_unit_test(roundtrip_1),
		cmocka_unit_test(roundtrip_1000),
		cmocka_unit_test(roundtrip_3m),
		cmocka_unit_test(writer_in_place),
		cmocka_unit_test(writer_accounting),
		cmocka_unit_test(precopy_then_final),
		cmocka_unit_test(writer_errors),
		cmocka_unit_test(save_limits_and_room),
		cmocka_unit_test(truncation_refused),
		cmocka_unit_test(truncation_reasons),
		cmocka_unit_test(byte_flip_refused),
		cmocka_unit_test(crc_mismatch_reason),
		cmocka_unit_test(header_refused_by_sink),
		cmocka_unit_test(crafted_valid),
		cmocka_unit_test(record_order),
		cmocka_unit_test(end_counts),
		cmocka_unit_test(header_fields),
		cmocka_unit_test(oversized_record),
		cmocka_unit_test(max_record),
		cmocka_unit_test(data_after_end),
		cmocka_unit_test(fuzz_seeds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
