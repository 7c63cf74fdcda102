/* SPDX-License-Identifier: MIT */
/*
 * The stream reader (lib/core/stream.c), the core's record parser, fed
 * hostile bytes.
 *
 * Input: one byte that seeds the segmentation, then the stream. When bit 7
 * of that byte is set the target first rewrites every record's crc so that
 * it checks (walking the records as the reader would): otherwise mutations
 * almost never get past the crc, and the header, order and END checks
 * behind it would go unexplored. The stream
 * goes to one reader in segments of 1..N bytes (sizes from a PRNG seeded by
 * that byte) and to a second reader in a single write. Both must agree on
 * everything: success or failure, the failure reason, and the records
 * delivered (types and payloads). Sinks check the record order, types and
 * header bounds the reader
 * promises; a header whose caps have bit 63 set is refused by the sink, to
 * reach the refusal paths. Seeds: fuzz/corpus/stream_reader (written by
 * tests/test_stream.c with DEVMIG_STREAM_SEED_DIR set).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct obs {
	int headers, configs;
	uint64_t dev_calls, dev_bytes;
	uint32_t dev_crc, cfg_crc;
	size_t cfg_len;
};

static int on_header(void *opaque, const struct devmig_stream_header *h, char *why,
		     size_t whylen)
{
	struct obs *o = opaque;

	CHECK(o->headers == 0 && o->configs == 0 && o->dev_calls == 0);
	o->headers++;
	CHECK(h->format == DEVMIG_STREAM_FORMAT);
	CHECK(strnlen(h->name, sizeof(h->name)) <= DEVMIG_STREAM_NAME_MAX);
	CHECK(strnlen(h->version, sizeof(h->version)) <= DEVMIG_STREAM_VERSION_MAX);
	if (h->caps >> 63) {
		snprintf(why, whylen, "caps 0x%llx not supported", (unsigned long long)h->caps);
		return -EOPNOTSUPP;
	}
	return 0;
}

static int on_record(void *opaque, uint32_t type, const void *buf, size_t len, char *why,
		     size_t whylen)
{
	struct obs *o = opaque;

	(void)why;
	(void)whylen;
	CHECK(o->headers == 1 && o->configs == 0);
	CHECK(devmig_stream_body_type(type));
	CHECK(len <= DEVMIG_STREAM_MAX_RECORD);
	o->dev_calls++;
	o->dev_bytes += len;
	o->dev_crc = devmig_crc32c(o->dev_crc, &type, sizeof(type));
	o->dev_crc = devmig_crc32c(o->dev_crc, buf, len);
	return 0;
}

static int on_config(void *opaque, const void *buf, size_t len, char *why, size_t whylen)
{
	struct obs *o = opaque;

	(void)why;
	(void)whylen;
	CHECK(o->headers == 1 && o->configs == 0);
	CHECK(len <= DEVMIG_STREAM_MAX_RECORD);
	o->configs++;
	o->cfg_len = len;
	o->cfg_crc = devmig_crc32c(0, buf, len);
	return 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Make every complete record's crc right. */
static void fix_crcs(uint8_t *p, size_t size)
{
	size_t off = DEVMIG_STREAM_MAGIC_LEN;

	while (off + DEVMIG_STREAM_REC_HDR <= size) {
		size_t len = le32(p + off + 4);

		if (len > size - off - DEVMIG_STREAM_REC_HDR ||
		    size - off - DEVMIG_STREAM_REC_HDR - len < DEVMIG_STREAM_REC_TRAILER)
			return;
		uint32_t crc = devmig_crc32c(0, p + off, DEVMIG_STREAM_REC_HDR + len);
		uint8_t *c = p + off + DEVMIG_STREAM_REC_HDR + len;

		for (int i = 0; i < 4; i++)
			c[i] = (uint8_t)(crc >> (8 * i));
		off += DEVMIG_STREAM_REC_OVERHEAD + len;
	}
}

static uint32_t prng(uint32_t *s)
{
	/* xorshift32 */
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint32_t seed = 0x9e3779b9u ^ ((uint32_t)data[0] * 0x01000193u);
	/* Segment sizes up to 1, 8, 64, ... 2^(3k) bytes, chosen by the seed. */
	size_t maxseg = (size_t)1 << (3 * ((data[0] & 0x7f) % 6));
	bool fixup = data[0] & 0x80;
	uint8_t *copy = NULL;

	data++;
	size--;
	if (fixup && size) {
		copy = malloc(size);
		CHECK(copy);
		memcpy(copy, data, size);
		fix_crcs(copy, size);
		data = copy;
	}

	struct obs oa = { 0 }, ob = { 0 };
	struct devmig_stream_sink sa = { &oa, on_header, on_record, on_config };
	struct devmig_stream_sink sb = { &ob, on_header, on_record, on_config };
	struct devmig_stream_reader *ra = devmig_stream_reader_new(&sa);
	struct devmig_stream_reader *rb = devmig_stream_reader_new(&sb);

	CHECK(ra && rb);

	/* Reader A: segments. */
	size_t off = 0;
	int rca = 0;

	while (off < size) {
		size_t n = 1 + prng(&seed) % maxseg;

		if (n > size - off)
			n = size - off;
		rca = devmig_stream_reader_write(ra, data + off, n);
		CHECK(devmig_stream_reader_buffer_size(ra) <= DEVMIG_STREAM_MAX_RECORD);
		if (rca) {
			CHECK(rca == -EINVAL || rca == -ENOMEM);
			CHECK(devmig_stream_reader_error(ra)[0] != '\0');
			CHECK(devmig_stream_reader_total(ra) <= off + n);
			break;
		}
		CHECK(devmig_stream_reader_error(ra)[0] == '\0');
		off += n;
		CHECK(devmig_stream_reader_total(ra) == off);
	}
	if (rca) {
		/* Sticky: the same code and the same reason, whatever comes next. */
		char why[512];

		snprintf(why, sizeof(why), "%s", devmig_stream_reader_error(ra));
		CHECK(devmig_stream_reader_write(ra, data, size ? 1 : 0) == rca || size == 0);
		CHECK(devmig_stream_reader_finish(ra) == rca);
		CHECK(strcmp(why, devmig_stream_reader_error(ra)) == 0);
	} else {
		rca = devmig_stream_reader_finish(ra);
		if (rca)
			CHECK(devmig_stream_reader_error(ra)[0] != '\0');
	}
	if (rca == 0) {
		CHECK(oa.headers == 1 && oa.configs == 1);
		CHECK(size >= DEVMIG_STREAM_MAGIC_LEN &&
		      memcmp(data, DEVMIG_STREAM_MAGIC, DEVMIG_STREAM_MAGIC_LEN) == 0);
		CHECK(devmig_stream_reader_total(ra) == size);
		CHECK(devmig_stream_reader_error(ra)[0] == '\0');
		CHECK(devmig_stream_reader_finish(ra) == 0);
	}

	/* Reader B: one write. It must see exactly what A saw. */
	int rcb = devmig_stream_reader_write(rb, data, size);

	if (rcb == 0)
		rcb = devmig_stream_reader_finish(rb);
	CHECK(rca == rcb);
	CHECK(strcmp(devmig_stream_reader_error(ra), devmig_stream_reader_error(rb)) == 0);
	CHECK(oa.headers == ob.headers && oa.configs == ob.configs);
	CHECK(oa.dev_calls == ob.dev_calls && oa.dev_bytes == ob.dev_bytes);
	CHECK(oa.dev_crc == ob.dev_crc);
	CHECK(oa.cfg_len == ob.cfg_len && oa.cfg_crc == ob.cfg_crc);

	devmig_stream_reader_free(ra);
	devmig_stream_reader_free(rb);
	free(copy);
	return 0;
}
