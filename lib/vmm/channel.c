/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "le.h"
#include "crc32c.h" /* devmig_crc32c */





void devmig_chan_put_header(uint8_t hdr[DEVMIG_CHAN_HDR], uint32_t type, uint32_t dev, uint64_t len)
{
	put32(hdr, type);
	put32(hdr + 4, dev);
	put64(hdr + 8, len);
}

uint32_t devmig_chan_crc(const uint8_t hdr[DEVMIG_CHAN_HDR], const void *payload, uint64_t len)
{
	return devmig_crc32c(devmig_crc32c(0, hdr, DEVMIG_CHAN_HDR), payload, (size_t)len);
}

const char *devmig_chan_type_name(uint32_t type)
{
	switch (type) {
	case DEVMIG_CHAN_HELLO: return "HELLO";
	case DEVMIG_CHAN_DEV_DATA: return "DEV_DATA";
	case DEVMIG_CHAN_MEM: return "MEM";
	case DEVMIG_CHAN_INITIAL_DONE: return "INITIAL_DONE";
	case DEVMIG_CHAN_SYNC: return "SYNC";
	case DEVMIG_CHAN_COMMIT: return "COMMIT";
	case DEVMIG_CHAN_RUN: return "RUN";
	case DEVMIG_CHAN_ABORT: return "ABORT";
	case DEVMIG_CHAN_END: return "END";
	case DEVMIG_CHAN_ACK: return "ACK";
	}
	return "UNKNOWN";
}

enum rstate { R_MAGIC, R_HDR, R_BODY };

struct devmig_chan_reader {
	enum rstate st;
	uint8_t *buf;      /* header + payload + trailer of the current frame */
	size_t cap, have, want;
	uint64_t frames;
	bool failed;
	char why[160];
};

struct devmig_chan_reader *devmig_chan_reader_new(void)
{
	struct devmig_chan_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->want = DEVMIG_CHAN_MAGIC_LEN;
	r->cap = 4096;
	r->buf = malloc(r->cap);
	if (!r->buf) {
		free(r);
		return NULL;
	}
	return r;
}

void devmig_chan_reader_free(struct devmig_chan_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

static long fail(struct devmig_chan_reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static long fail(struct devmig_chan_reader *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	r->failed = true;
	return -EINVAL;
}

static bool known_type(uint32_t t)
{
	return (t >= DEVMIG_CHAN_HELLO && t <= DEVMIG_CHAN_END) || t == DEVMIG_CHAN_ACK;
}

long devmig_chan_reader_feed(struct devmig_chan_reader *r, const void *data, size_t len,
			     struct devmig_chan_frame *f, bool *have)
{
	const uint8_t *in = data;
	size_t used = 0;

	*have = false;
	if (r->failed)
		return -EINVAL;
	while (used < len) {
		size_t k = r->want - r->have;
		if (k > len - used)
			k = len - used;
		memcpy(r->buf + r->have, in + used, k);
		r->have += k;
		used += k;
		if (r->have < r->want)
			break;
		switch (r->st) {
		case R_MAGIC:
			if (memcmp(r->buf, DEVMIG_CHAN_MAGIC, DEVMIG_CHAN_MAGIC_LEN))
				return fail(r, "not a devmig migration channel or checkpoint (bad magic)");
			r->st = R_HDR;
			r->have = 0;
			r->want = DEVMIG_CHAN_HDR;
			break;
		case R_HDR: {
			uint32_t type = get32(r->buf);
			uint64_t plen = get64(r->buf + 8);
			if (!known_type(type))
				return fail(r, "frame %llu: unknown type %u",
					    (unsigned long long)r->frames + 1, type);
			if (plen > DEVMIG_CHAN_MAX_PAYLOAD)
				return fail(r, "frame %llu (%s): %llu-byte payload exceeds the %u-byte limit",
					    (unsigned long long)r->frames + 1, devmig_chan_type_name(type),
					    (unsigned long long)plen, DEVMIG_CHAN_MAX_PAYLOAD);
			size_t need = DEVMIG_CHAN_HDR + (size_t)plen + DEVMIG_CHAN_TRAILER;
			if (need > r->cap) {
				uint8_t *nb = realloc(r->buf, need);
				if (!nb)
					return fail(r, "out of memory for a %zu-byte frame", need);
				r->buf = nb;
				r->cap = need;
			}
			r->st = R_BODY;
			r->want = need;
			break;
		}
		case R_BODY: {
			uint64_t plen = get64(r->buf + 8);
			uint32_t stored = get32(r->buf + DEVMIG_CHAN_HDR + plen);
			uint32_t crc = devmig_chan_crc(r->buf, r->buf + DEVMIG_CHAN_HDR, plen);
			r->frames++;
			if (stored != crc)
				return fail(r, "frame %llu (%s): CRC mismatch (stored 0x%08x, computed 0x%08x)",
					    (unsigned long long)r->frames, devmig_chan_type_name(get32(r->buf)),
					    stored, crc);
			f->type = get32(r->buf);
			f->dev = get32(r->buf + 4);
			f->len = plen;
			f->payload = r->buf + DEVMIG_CHAN_HDR;
			*have = true;
			r->st = R_HDR;
			r->have = 0;
			r->want = DEVMIG_CHAN_HDR;
			return (long)used;
		}
		}
	}
	return (long)used;
}

const char *devmig_chan_reader_error(const struct devmig_chan_reader *r)
{
	return r->failed ? r->why : "";
}

bool devmig_chan_reader_idle(const struct devmig_chan_reader *r)
{
	return !r->failed && r->st == R_HDR && r->have == 0;
}
