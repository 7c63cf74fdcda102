/* SPDX-License-Identifier: MIT */
/*
 * The core's framing of a device's migration data: see stream.h.
 *
 * Writer: the magic and HEADER are queued at creation. Each read first
 * drains queued bytes, then asks the source for records. A record that fits
 * the room left in the caller's buffer is built there (header, payload
 * copied once, crc); in segment mode a body the source lets us reference
 * gets a segment of its own and is not copied at all. A record that does
 * not fit is built in the queue and handed out over the following reads,
 * and so is every record after it in the same call, which keeps the order.
 *
 * Reader: a state machine fed any segmentation. A record whose payload and
 * crc are wholly inside the current segment is checked and dispatched from
 * the caller's bytes; otherwise its payload is gathered in one buffer that
 * grows with the bytes that arrive, up to the record's length (never
 * beyond DEVMIG_STREAM_MAX_RECORD): a length alone allocates nothing.
 * Nothing reaches the sink before its crc checked.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "stream.h"
#include "le.h"

#define HEADER_MIN DEVMIG_STREAM_HEADER_FIXED /* format, reserved, flags, caps, fingerprint,
						* and the two length bytes */
#define HEADER_MAX (HEADER_MIN + DEVMIG_STREAM_NAME_MAX + DEVMIG_STREAM_VERSION_MAX)
#define END_LEN DEVMIG_STREAM_END_LEN
/* A referenced body smaller than this is copied: a segment costs more. */
#define REF_MIN 512u

/* Frame a record whose payload already sits at rec + 8; returns its size. */
static size_t frame(uint8_t *rec, uint32_t type, size_t len)
{
	put32(rec, type);
	put32(rec + 4, (uint32_t)len);
	put32(rec + DEVMIG_STREAM_REC_HDR + len,
	      devmig_crc32c(0, rec, DEVMIG_STREAM_REC_HDR + len));
	return DEVMIG_STREAM_REC_OVERHEAD + len;
}

/* ---------------------------------------------------------------- writer */

enum wphase {
	W_BODY,    /* pulling body records */
	W_TRAILER, /* the body ended: CONFIG and END next */
	W_DONE,    /* END queued or returned */
};

struct devmig_stream_writer {
	struct devmig_stream_source src;
	enum wphase phase;
	int err;
	uint8_t *q; /* queued stream bytes: q[qoff .. qoff+qlen) */
	size_t qcap, qoff, qlen;
	uint64_t total;
	uint64_t dev_bytes;
	uint64_t dev_count;
	uint8_t *scratch; /* segment mode's framing and copies */
	size_t scratch_cap;
};

/* Make room for need more bytes at the end of the queue. */
static int queue_reserve(struct devmig_stream_writer *w, size_t need)
{
	if (w->qlen == 0)
		w->qoff = 0;
	if (w->qoff + w->qlen + need <= w->qcap)
		return 0;
	if (w->qoff) {
		memmove(w->q, w->q + w->qoff, w->qlen);
		w->qoff = 0;
		if (w->qlen + need <= w->qcap)
			return 0;
	}
	size_t ncap = w->qlen + need;
	uint8_t *nq = realloc(w->q, ncap);

	if (!nq)
		return -ENOMEM;
	w->q = nq;
	w->qcap = ncap;
	return 0;
}

static inline uint8_t *queue_tail(struct devmig_stream_writer *w)
{
	return w->q + w->qoff + w->qlen;
}

struct devmig_stream_writer *devmig_stream_writer_new(const struct devmig_stream_header *hdr,
						      const struct devmig_stream_source *src)
{
	if (!hdr || !src) {
		errno = EINVAL;
		return NULL;
	}
	size_t nl = strnlen(hdr->name, sizeof(hdr->name));
	size_t vl = strnlen(hdr->version, sizeof(hdr->version));

	if (nl > DEVMIG_STREAM_NAME_MAX || vl > DEVMIG_STREAM_VERSION_MAX ||
	    src->config_size > DEVMIG_STREAM_MAX_RECORD) {
		errno = EINVAL;
		return NULL;
	}
	struct devmig_stream_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->src = *src;
	w->phase = W_BODY;

	size_t plen = HEADER_MIN + nl + vl;

	if (queue_reserve(w, DEVMIG_STREAM_MAGIC_LEN + DEVMIG_STREAM_REC_OVERHEAD + plen)) {
		free(w);
		errno = ENOMEM;
		return NULL;
	}
	memcpy(w->q, DEVMIG_STREAM_MAGIC, DEVMIG_STREAM_MAGIC_LEN);
	uint8_t *rec = w->q + DEVMIG_STREAM_MAGIC_LEN;
	uint8_t *p = rec + DEVMIG_STREAM_REC_HDR;

	put16(p, DEVMIG_STREAM_FORMAT);
	put16(p + 2, 0);
	put32(p + 4, 0);
	put64(p + 8, hdr->caps);
	put64(p + 16, hdr->config_fingerprint);
	p[24] = (uint8_t)nl;
	memcpy(p + 25, hdr->name, nl);
	p[25 + nl] = (uint8_t)vl;
	memcpy(p + 26 + nl, hdr->version, vl);
	w->qlen = DEVMIG_STREAM_MAGIC_LEN + frame(rec, DEVMIG_REC_HEADER, plen);
	return w;
}

void devmig_stream_writer_free(struct devmig_stream_writer *w)
{
	if (!w)
		return;
	free(w->q);
	free(w->scratch);
	free(w);
}

static ssize_t writer_fail(struct devmig_stream_writer *w, ssize_t err)
{
	if (err >= 0 || err < -4095)
		err = -EIO;
	w->err = (int)err;
	return err;
}

/*
 * Where a read's bytes go. Copy mode (devmig_stream_writer_read): scratch is
 * the caller's buffer and nothing is referenced. Segment mode
 * (devmig_stream_writer_read_iov): scratch is the writer's own, and device
 * bodies the source lets us reference are pointed at by a segment of their own.
 */
struct wout {
	uint8_t *scratch;  /* bytes built here */
	size_t pos;        /* scratch bytes used */
	size_t seg_start;  /* first scratch byte not yet in a segment */
	size_t total;      /* bytes of stream produced, references included */
	struct iovec *iov; /* NULL in copy mode */
	bool *ref;         /* segment mode, may be NULL: which segments are references */
	int max_iov, niov;
};

/* Close the pending scratch bytes into a segment. */
static void flush_scratch(struct wout *o)
{
	if (o->iov && o->pos > o->seg_start) {
		if (o->ref)
			o->ref[o->niov] = false;
		o->iov[o->niov++] = (struct iovec){ o->scratch + o->seg_start, o->pos - o->seg_start };
		o->seg_start = o->pos;
	}
}

static void put_bytes(struct wout *o, const void *p, size_t n)
{
	memcpy(o->scratch + o->pos, p, n);
	o->pos += n;
	o->total += n;
}

/* The sink of one records() call: see devmig_save_* in device.h. */
struct devmig_save {
	struct devmig_stream_writer *w;
	struct wout *o;
	size_t cap;   /* o->total may reach cap */
	bool final;
	bool queued;  /* a record of this call went to the queue: so do the rest */
	size_t emitted;
};

/* Frame a record in dst: header, head, body copied, crc. */
static size_t build_copy(uint8_t *dst, uint32_t type, const void *head, size_t hlen,
			 const void *body, size_t blen)
{
	if (hlen)
		memcpy(dst + DEVMIG_STREAM_REC_HDR, head, hlen);
	if (blen)
		memcpy(dst + DEVMIG_STREAM_REC_HDR + hlen, body, blen);
	return frame(dst, type, hlen + blen);
}

int devmig_save_raw(struct devmig_save *s, uint32_t type, const void *head, size_t hlen,
		    const void *body, size_t blen, bool may_ref)
{
	struct devmig_stream_writer *w = s->w;
	struct wout *o = s->o;

	if (w->err)
		return w->err;
	if (blen > DEVMIG_STREAM_MAX_RECORD || hlen > DEVMIG_STREAM_MAX_RECORD - blen)
		return -E2BIG;
	/* The END record counts body records in a u32. */
	if (w->dev_count >= UINT32_MAX)
		return writer_fail(w, -EOVERFLOW);
	size_t size = DEVMIG_STREAM_REC_OVERHEAD + hlen + blen;

	if (!s->queued && size <= s->cap - o->total) {
		uint8_t *rec = o->scratch + o->pos;

		if (may_ref && s->final && o->iov && blen >= REF_MIN &&
		    o->niov + 3 <= o->max_iov) {
			/* Header and head in scratch, the body where it lies, the crc
			 * back in scratch. */
			put32(rec, type);
			put32(rec + 4, (uint32_t)(hlen + blen));
			if (hlen)
				memcpy(rec + DEVMIG_STREAM_REC_HDR, head, hlen);
			uint32_t crc = devmig_crc32c(0, rec, DEVMIG_STREAM_REC_HDR + hlen);

			crc = devmig_crc32c(crc, body, blen);
			o->pos += DEVMIG_STREAM_REC_HDR + hlen;
			o->total += DEVMIG_STREAM_REC_HDR + hlen;
			flush_scratch(o);
			if (o->ref)
				o->ref[o->niov] = true;
			o->iov[o->niov++] = (struct iovec){ (void *)body, blen };
			o->total += blen;
			uint8_t tail[4];
			put32(tail, crc);
			put_bytes(o, tail, sizeof(tail));
		} else {
			build_copy(rec, type, head, hlen, body, blen);
			o->pos += size;
			o->total += size;
		}
	} else {
		int rc = queue_reserve(w, size);

		if (rc)
			return writer_fail(w, rc);
		build_copy(queue_tail(w), type, head, hlen, body, blen);
		w->qlen += size;
		s->queued = true;
	}
	w->dev_bytes += hlen + blen;
	w->dev_count++;
	s->emitted++;
	return 0;
}

static int save_check(unsigned type, size_t len)
{
	if (type < 1 || type > DEVMIG_RECORD_TYPE_MAX)
		return -EINVAL;
	return len > DEVMIG_RECORD_MAX ? -E2BIG : 0;
}

int devmig_save_record(struct devmig_save *s, unsigned type, const void *data, size_t len)
{
	int rc = save_check(type, len);

	return rc ? rc : devmig_save_raw(s, DEVMIG_REC_VARIANT + type, data, len, NULL, 0, false);
}

int devmig_save_record_ref(struct devmig_save *s, unsigned type, const void *head,
			   size_t head_len, const void *body, size_t body_len)
{
	int rc = save_check(type, 0);

	if (!rc && (body_len > DEVMIG_RECORD_MAX || head_len > DEVMIG_RECORD_MAX - body_len))
		rc = -E2BIG;
	return rc ? rc : devmig_save_raw(s, DEVMIG_REC_VARIANT + type, head, head_len, body,
					 body_len, true);
}

size_t devmig_save_room(const struct devmig_save *s)
{
	return s->queued || s->w->err ? 0 : s->cap - s->o->total;
}

bool devmig_save_final(const struct devmig_save *s)
{
	return s->final;
}

size_t devmig_save_emitted(const struct devmig_save *s)
{
	return s->emitted;
}

/* CONFIG then END at dst (which has room for both); returns bytes built. */
static ssize_t build_trailer(struct devmig_stream_writer *w, uint8_t *dst)
{
	ssize_t n = 0;

	if (w->src.config_data) {
		n = w->src.config_data(w->src.opaque, dst + DEVMIG_STREAM_REC_HDR,
				       w->src.config_size);
		if (n < 0)
			return n;
		if ((size_t)n > w->src.config_size)
			return -EPROTO;
	}
	size_t len = frame(dst, DEVMIG_REC_CONFIG, (size_t)n);
	uint8_t *end = dst + len;
	uint8_t *p = end + DEVMIG_STREAM_REC_HDR;

	put64(p, w->dev_bytes);
	put32(p + 8, (uint32_t)w->dev_count);
	put32(p + 12, 0);
	len += frame(end, DEVMIG_REC_END, END_LEN);
	return (ssize_t)len;
}

/* The one algorithm behind both reads: up to cap bytes of stream into o. */
static ssize_t produce(struct devmig_stream_writer *w, struct wout *o, size_t cap, bool final)
{
	if (w->err)
		return w->err;
	if (cap > SSIZE_MAX)
		cap = SSIZE_MAX;
	for (;;) {
		if (w->qlen) {
			size_t n = w->qlen < cap - o->total ? w->qlen : cap - o->total;

			put_bytes(o, w->q + w->qoff, n);
			w->qoff += n;
			w->qlen -= n;
			if (w->qlen)
				break; /* out is full */
		}
		if (w->phase == W_DONE)
			break;
		size_t room = cap - o->total;

		if (w->phase == W_BODY) {
			if (!room)
				break;
			struct devmig_save sv = { .w = w, .o = o, .cap = cap, .final = final };
			uint64_t before = w->dev_count;
			int rc = w->src.records ? w->src.records(w->src.opaque, &sv) : 0;

			if (rc < 0 || w->err)
				return writer_fail(w, w->err ? w->err : rc);
			if (w->dev_count == before) {
				if (!final)
					break;
				w->phase = W_TRAILER;
			}
			continue;
		}
		/* W_TRAILER */
		size_t need = 2 * DEVMIG_STREAM_REC_OVERHEAD + w->src.config_size + END_LEN;
		ssize_t n;

		if (room >= need) {
			n = build_trailer(w, o->scratch + o->pos);
			if (n < 0)
				return writer_fail(w, n);
			o->pos += (size_t)n;
			o->total += (size_t)n;
		} else {
			int rc = queue_reserve(w, need);

			if (rc)
				return writer_fail(w, rc);
			n = build_trailer(w, queue_tail(w));
			if (n < 0)
				return writer_fail(w, n);
			w->qlen += (size_t)n;
		}
		w->phase = W_DONE;
	}
	flush_scratch(o);
	w->total += o->total;
	if (w->phase == W_DONE && !w->qlen) {
		free(w->q);
		w->q = NULL;
		w->qcap = w->qoff = 0;
	}
	return (ssize_t)o->total;
}

ssize_t devmig_stream_writer_read(struct devmig_stream_writer *w, void *out, size_t cap,
				  bool final)
{
	struct wout o = { .scratch = out };

	return produce(w, &o, cap, final);
}

ssize_t devmig_stream_writer_read_iov(struct devmig_stream_writer *w, struct iovec *iov,
				      int max_iov, int *niov, size_t cap, bool final, bool *ref)
{
	*niov = 0;
	if (max_iov < 4)
		return -EINVAL;
	/* Scratch can hold everything when references cannot be kept. */
	if (w->scratch_cap < cap) {
		uint8_t *p = realloc(w->scratch, cap);
		if (!p)
			return -ENOMEM;
		w->scratch = p;
		w->scratch_cap = cap;
	}
	struct wout o = { .scratch = w->scratch, .iov = iov, .ref = ref, .max_iov = max_iov };
	ssize_t n = produce(w, &o, cap, final);

	*niov = o.niov;
	return n;
}

bool devmig_stream_writer_done(const struct devmig_stream_writer *w)
{
	return w->phase == W_DONE && w->qlen == 0 && !w->err;
}

uint64_t devmig_stream_writer_total(const struct devmig_stream_writer *w)
{
	return w->total;
}

size_t devmig_stream_writer_pending(const struct devmig_stream_writer *w)
{
	return w->qlen;
}

/* ---------------------------------------------------------------- reader */

enum rstate {
	R_MAGIC,
	R_RECHDR,  /* gathering the 8-byte type + len */
	R_PAYLOAD, /* gathering the payload */
	R_CRC,     /* gathering the 4-byte crc */
	R_AFTER,   /* END seen: nothing may follow */
	R_FAILED,
};

struct devmig_stream_reader {
	struct devmig_stream_sink sink;
	enum rstate state;
	int err;
	size_t got;           /* bytes of the current piece (magic/header/payload/crc) */
	uint8_t hdr[DEVMIG_STREAM_REC_HDR];
	uint8_t crcb[DEVMIG_STREAM_REC_TRAILER];
	uint32_t type, len;   /* of the current record */
	uint32_t crc;         /* running crc of the current record */
	uint8_t *buf;
	size_t buf_cap;
	uint64_t index;       /* 1-based index of the current record */
	uint64_t rec_start;   /* stream offset where it began */
	uint64_t total;
	bool seen_header, seen_config;
	uint64_t dev_bytes, dev_count;
	char why[384];
};

static const char *type_name(uint32_t type, char *tmp, size_t n)
{
	switch (type) {
	case DEVMIG_REC_HEADER:
		return "HEADER";
	case DEVMIG_REC_CONFIG:
		return "CONFIG";
	case DEVMIG_REC_END:
		return "END";
	case DEVMIG_REC_MEM_INFO:
		return "MEM_INFO";
	case DEVMIG_REC_MEM_DATA:
		return "MEM_DATA";
	case DEVMIG_REC_MEM_ZERO:
		return "MEM_ZERO";
	case DEVMIG_REC_BAR:
		return "BAR";
	}
	if (devmig_stream_body_type(type))
		snprintf(tmp, n, "device type %" PRIu32, type - DEVMIG_REC_VARIANT);
	else
		snprintf(tmp, n, "type %" PRIu32, type);
	return tmp;
}

__attribute__((format(printf, 3, 4)))
static int rfail(struct devmig_stream_reader *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	r->state = R_FAILED;
	r->err = err;
	return err;
}

/* "record N (TYPE): " + message */
__attribute__((format(printf, 2, 3)))
static int recfail(struct devmig_stream_reader *r, const char *fmt, ...)
{
	char tmp[24], msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return rfail(r, -EINVAL, "record %" PRIu64 " (%s): %s", r->index,
		     type_name(r->type, tmp, sizeof(tmp)), msg);
}

struct devmig_stream_reader *devmig_stream_reader_new(const struct devmig_stream_sink *sink)
{
	struct devmig_stream_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	if (sink)
		r->sink = *sink;
	r->state = R_MAGIC;
	return r;
}

void devmig_stream_reader_free(struct devmig_stream_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

/* The record header is complete: check type, order and length. */
static int check_rechdr(struct devmig_stream_reader *r)
{
	uint32_t len = r->len;

	switch (r->type) {
	case DEVMIG_REC_HEADER:
		if (r->seen_header)
			return recfail(r, "a second HEADER record");
		if (len < HEADER_MIN || len > HEADER_MAX)
			return recfail(r, "length %" PRIu32 " is outside the valid %u..%u",
				       len, HEADER_MIN, HEADER_MAX);
		return 0;
	case DEVMIG_REC_CONFIG:
	case DEVMIG_REC_END:
		break;
	default:
		if (!devmig_stream_body_type(r->type))
			return recfail(r, "unknown record type");
	}
	if (!r->seen_header)
		return recfail(r, "the stream must begin with a HEADER record");
	if (devmig_stream_body_type(r->type) && r->seen_config)
		return recfail(r, "device data after the CONFIG record");
	if (r->type == DEVMIG_REC_CONFIG && r->seen_config)
		return recfail(r, "a second CONFIG record");
	if (r->type == DEVMIG_REC_END && !r->seen_config)
		return recfail(r, "END before the CONFIG record");
	if (r->type == DEVMIG_REC_END && len != END_LEN)
		return recfail(r, "length %" PRIu32 ", expected %u", len, END_LEN);
	if (len > DEVMIG_STREAM_MAX_RECORD)
		return recfail(r, "length %" PRIu32 " exceeds the %u-byte maximum", len,
			       DEVMIG_STREAM_MAX_RECORD);
	return 0;
}

static int sink_result(struct devmig_stream_reader *r, int rc, const char *why)
{
	if (rc == 0)
		return 0;
	if (why[0])
		return recfail(r, "refused: %s", why);
	return recfail(r, "refused: %s", strerror(rc < 0 ? -rc : rc));
}

static int parse_header(struct devmig_stream_reader *r, const uint8_t *p)
{
	uint32_t len = r->len;
	struct devmig_stream_header h;
	char why[256] = "";

	memset(&h, 0, sizeof(h));
	h.format = get16(p);
	if (h.format == 2)
		return recfail(r, "stream format 2 is not read: it kept interrupts raised while "
			       "the device was stopped in IRQ records, apart from the pending bits "
			       "in config space; this build reads format %u, where config space "
			       "holds them all (migrate between builds of one format)",
			       DEVMIG_STREAM_FORMAT);
	if (h.format != DEVMIG_STREAM_FORMAT)
		return recfail(r, "stream format %u is not supported (this build reads %u)",
			       h.format, DEVMIG_STREAM_FORMAT);
	if (get16(p + 2))
		return recfail(r, "reserved field is 0x%04x, must be 0", get16(p + 2));
	if (get32(p + 4))
		return recfail(r, "flags are 0x%08" PRIx32 ", must be 0", get32(p + 4));
	h.caps = get64(p + 8);
	h.config_fingerprint = get64(p + 16);

	size_t nl = p[24];

	if (nl > DEVMIG_STREAM_NAME_MAX)
		return recfail(r, "device name length %zu exceeds %u", nl, DEVMIG_STREAM_NAME_MAX);
	if (HEADER_MIN + nl > len)
		return recfail(r, "device name overruns the %" PRIu32 "-byte payload", len);
	size_t vl = p[25 + nl];

	if (vl > DEVMIG_STREAM_VERSION_MAX)
		return recfail(r, "version length %zu exceeds %u", vl,
			       DEVMIG_STREAM_VERSION_MAX);
	if (HEADER_MIN + nl + vl != len)
		return recfail(r, "payload is %" PRIu32 " bytes but its fields take %zu", len,
			       HEADER_MIN + nl + vl);
	if (memchr(p + 25, 0, nl))
		return recfail(r, "device name contains a NUL byte");
	if (memchr(p + 26 + nl, 0, vl))
		return recfail(r, "version contains a NUL byte");
	memcpy(h.name, p + 25, nl);
	memcpy(h.version, p + 26 + nl, vl);

	if (r->sink.header)
		return sink_result(r, r->sink.header(r->sink.opaque, &h, why, sizeof(why)), why);
	return 0;
}

static int parse_end(struct devmig_stream_reader *r, const uint8_t *p)
{
	uint64_t bytes = get64(p);
	uint32_t count = get32(p + 8);

	if (get32(p + 12))
		return recfail(r, "reserved field is 0x%08" PRIx32 ", must be 0", get32(p + 12));
	if (bytes != r->dev_bytes || count != r->dev_count)
		return recfail(r,
			       "END declares %" PRIu32 " device records of %" PRIu64
			       " bytes, the stream carried %" PRIu64 " of %" PRIu64,
			       count, bytes, r->dev_count, r->dev_bytes);
	return 0;
}

/* The payload is complete at p and stored is its crc: check, then dispatch. */
static int complete_record(struct devmig_stream_reader *r, const uint8_t *p, uint32_t stored)
{
	uint32_t crc = devmig_crc32c(r->crc, p, r->len);
	char why[256] = "";
	int rc = 0;

	if (crc != stored)
		return recfail(r, "CRC mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")",
			       stored, crc);
	switch (r->type) {
	case DEVMIG_REC_HEADER:
		rc = parse_header(r, p);
		r->seen_header = true;
		break;
	case DEVMIG_REC_CONFIG:
		r->seen_config = true;
		if (r->sink.config_data)
			rc = sink_result(r, r->sink.config_data(r->sink.opaque, p, r->len, why,
								sizeof(why)), why);
		break;
	case DEVMIG_REC_END:
		rc = parse_end(r, p);
		break;
	default: /* a body record (check_rechdr let nothing else through) */
		r->dev_bytes += r->len;
		r->dev_count++;
		if (r->sink.record)
			rc = sink_result(r, r->sink.record(r->sink.opaque, r->type, p, r->len, why,
							   sizeof(why)), why);
		break;
	}
	if (rc)
		return rc;
	r->state = r->type == DEVMIG_REC_END ? R_AFTER : R_RECHDR;
	r->got = 0;
	r->index++;
	r->rec_start = r->total;
	return 0;
}

/* Room for need payload bytes: grows geometrically, never beyond the record. */
static int grow_buf(struct devmig_stream_reader *r, size_t need)
{
	if (r->buf_cap >= need)
		return 0;
	/* len was checked against DEVMIG_STREAM_MAX_RECORD before we get here. */
	size_t ncap = r->buf_cap ? r->buf_cap * 2 : 4096;

	if (ncap < need)
		ncap = need;
	if (ncap > r->len)
		ncap = r->len;
	uint8_t *nb = realloc(r->buf, ncap);

	if (!nb)
		return rfail(r, -ENOMEM, "record %" PRIu64 ": out of memory for its %" PRIu32
			     "-byte payload", r->index, r->len);
	r->buf = nb;
	r->buf_cap = ncap;
	return 0;
}

int devmig_stream_reader_write(struct devmig_stream_reader *r, const void *data, size_t len)
{
	const uint8_t *p = data;
	int rc;

	if (r->state == R_FAILED)
		return r->err;
	while (len) {
		size_t n;

		switch (r->state) {
		case R_MAGIC:
			n = DEVMIG_STREAM_MAGIC_LEN - r->got;
			if (n > len)
				n = len;
			if (memcmp(p, &DEVMIG_STREAM_MAGIC[r->got], n))
				return rfail(r, -EINVAL, "bad magic: not a devmig stream");
			r->got += n;
			if (r->got == DEVMIG_STREAM_MAGIC_LEN) {
				r->state = R_RECHDR;
				r->got = 0;
				r->index = 1;
				r->rec_start = r->total + n;
			}
			break;
		case R_RECHDR:
			n = DEVMIG_STREAM_REC_HDR - r->got;
			if (n > len)
				n = len;
			memcpy(r->hdr + r->got, p, n);
			r->got += n;
			if (r->got == DEVMIG_STREAM_REC_HDR) {
				r->type = get32(r->hdr);
				r->len = get32(r->hdr + 4);
				rc = check_rechdr(r);
				if (rc)
					return rc;
				r->crc = devmig_crc32c(0, r->hdr, DEVMIG_STREAM_REC_HDR);
				r->state = R_PAYLOAD;
				r->got = 0;
			}
			break;
		case R_PAYLOAD:
			if (r->got == 0 && len >= (size_t)r->len + DEVMIG_STREAM_REC_TRAILER) {
				/* Whole record here: check and dispatch in place. */
				n = (size_t)r->len + DEVMIG_STREAM_REC_TRAILER;
				r->total += n;
				rc = complete_record(r, p, get32(p + r->len));
				if (rc) {
					r->total -= n;
					return rc;
				}
				p += n;
				len -= n;
				continue;
			}
			n = r->len - r->got;
			if (n > len)
				n = len;
			if (n) {
				rc = grow_buf(r, r->got + n);
				if (rc)
					return rc;
				memcpy(r->buf + r->got, p, n);
				r->got += n;
			}
			if (r->got == r->len) {
				r->state = R_CRC;
				r->got = 0;
			}
			break;
		case R_CRC:
			n = DEVMIG_STREAM_REC_TRAILER - r->got;
			if (n > len)
				n = len;
			memcpy(r->crcb + r->got, p, n);
			r->got += n;
			if (r->got == DEVMIG_STREAM_REC_TRAILER) {
				r->total += n;
				/* An empty payload may have no buffer: never pass NULL. */
				rc = complete_record(r, r->buf ? r->buf : r->crcb, get32(r->crcb));
				if (rc) {
					r->total -= n;
					return rc;
				}
				p += n;
				len -= n;
				continue;
			}
			break;
		case R_AFTER:
			return rfail(r, -EINVAL, "unexpected data after record %" PRIu64
				     " (END), which ends the stream", r->index - 1);
		case R_FAILED:
		default:
			return r->err;
		}
		r->total += n;
		p += n;
		len -= n;
	}
	return 0;
}

int devmig_stream_reader_finish(struct devmig_stream_reader *r)
{
	char tmp[24];

	switch (r->state) {
	case R_FAILED:
		return r->err;
	case R_AFTER:
		return 0;
	case R_MAGIC:
		if (r->got == 0)
			return rfail(r, -EINVAL, "empty stream: no devmig magic");
		return rfail(r, -EINVAL, "stream truncated in its magic (%zu of %u bytes)",
			     r->got, DEVMIG_STREAM_MAGIC_LEN);
	case R_RECHDR:
		if (r->got == 0) {
			if (r->index == 1)
				return rfail(r, -EINVAL,
					     "stream truncated after its magic: no HEADER record");
			return rfail(r, -EINVAL,
				     "stream truncated after record %" PRIu64
				     " (%s): the END record is missing", r->index - 1,
				     type_name(r->type, tmp, sizeof(tmp)));
		}
		return rfail(r, -EINVAL,
			     "stream truncated %zu bytes into record %" PRIu64
			     " (in its 8-byte record header)", r->got, r->index);
	case R_PAYLOAD:
	case R_CRC:
		break;
	}
	return rfail(r, -EINVAL,
		     "stream truncated %" PRIu64 " bytes into record %" PRIu64 " (%s) of %" PRIu64
		     " bytes", r->total - r->rec_start, r->index,
		     type_name(r->type, tmp, sizeof(tmp)),
		     (uint64_t)r->len + DEVMIG_STREAM_REC_OVERHEAD);
}

const char *devmig_stream_reader_error(const struct devmig_stream_reader *r)
{
	return r->state == R_FAILED ? r->why : "";
}

uint64_t devmig_stream_reader_total(const struct devmig_stream_reader *r)
{
	return r->total;
}

size_t devmig_stream_reader_buffer_size(const struct devmig_stream_reader *r)
{
	return r->buf_cap;
}
