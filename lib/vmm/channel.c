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

size_t devmig_chan_put_hello(uint8_t *out, size_t cap, uint32_t n, uint64_t guest_size,
			     const struct devmig_chan_hello_dev *devs)
{
	size_t len = DEVMIG_CHAN_HELLO_FIXED;

	if (n > DEVMIG_CHAN_MAX_DEVICES || cap < len)
		return 0;
	put32(out, DEVMIG_CHAN_VERSION);
	put32(out + 4, n);
	put64(out + 8, guest_size);
	for (uint32_t i = 0; i < n; i++) {
		const struct devmig_chan_hello_dev *d = &devs[i];
		size_t vl = strnlen(d->version, DEVMIG_VERSION_MAX - 1);
		if (cap - len < DEVMIG_CHAN_HELLO_DEV(vl))
			return 0;
		uint8_t *o = out + len;
		put64(o, d->fingerprint);
		o[8] = d->id_known;
		o[9] = d->id.revision;
		put16(o + 10, d->id.vendor);
		put16(o + 12, d->id.device);
		put16(o + 14, d->id.subsystem_vendor);
		put16(o + 16, d->id.subsystem_device);
		put32(o + 18, d->id.class_code);
		o[8 + DEVMIG_CHAN_HELLO_ID] = (uint8_t)vl;
		memcpy(o + 9 + DEVMIG_CHAN_HELLO_ID, d->version, vl);
		len += DEVMIG_CHAN_HELLO_DEV(vl);
	}
	return len;
}

int devmig_chan_parse_hello(const uint8_t *p, uint64_t len, uint32_t *n, uint64_t *guest_size,
			    struct devmig_chan_hello_dev *devs, char *why, size_t wl)
{
	uint32_t version = len >= 4 ? get32(p) : 0;
	uint64_t off = DEVMIG_CHAN_HELLO_FIXED;

	/* Version 1 (before the PCI identity) is read too: its devices' identity is unknown. */
	if (len < DEVMIG_CHAN_HELLO_FIXED || (version != DEVMIG_CHAN_VERSION && version != 1)) {
		snprintf(why, wl, "unsupported migration channel version %u", version);
		return -EPROTO;
	}
	uint64_t id_len = version == 1 ? 0 : DEVMIG_CHAN_HELLO_ID;
	*n = get32(p + 4);
	*guest_size = get64(p + 8);
	if (*n > DEVMIG_CHAN_MAX_DEVICES) {
		snprintf(why, wl, "HELLO announces %u devices, at most %u", *n,
			 DEVMIG_CHAN_MAX_DEVICES);
		return -EPROTO;
	}
	for (uint32_t i = 0; i < *n; i++) {
		const uint8_t *o = p + off;
		struct devmig_chan_hello_dev *d = &devs[i];
		if (len - off < 9 + id_len || len - off - 9 - id_len < o[8 + id_len] ||
		    o[8 + id_len] >= DEVMIG_VERSION_MAX) {
			snprintf(why, wl, "HELLO is cut short at device %u", i);
			return -EPROTO;
		}
		memset(d, 0, sizeof(*d));
		d->fingerprint = get64(o);
		if (id_len) {
			if (o[8] > 1) {
				snprintf(why, wl, "HELLO: device %u's identity flag is %u", i, o[8]);
				return -EPROTO;
			}
			d->id_known = o[8];
			d->id.revision = o[9];
			d->id.vendor = get16(o + 10);
			d->id.device = get16(o + 12);
			d->id.subsystem_vendor = get16(o + 14);
			d->id.subsystem_device = get16(o + 16);
			d->id.class_code = get32(o + 18);
		}
		memcpy(d->version, o + 9 + id_len, o[8 + id_len]);
		off += 9 + id_len + o[8 + id_len];
	}
	if (off != len) {
		snprintf(why, wl, "HELLO has %llu bytes past its last device",
			 (unsigned long long)(len - off));
		return -EPROTO;
	}
	return 0;
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
