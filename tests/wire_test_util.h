/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the codec tests (test_wire.c, test_wire_feature.c):
 * a fixture holding one valid message with mutable backing storage,
 * encode/decode helpers that put the bytes in an exactly-sized malloc (so
 * ASan sees any overread), a field-by-field message comparison, and the
 * runners for round trips, truncations and single-mutation rejections.
 */
#ifndef DEVMIG_WIRE_TEST_UTIL_H
#define DEVMIG_WIRE_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "devmig/wire.h"

#define W(x) DEVMIG_WIRE_##x

/* VFIO constants the tests need (the library keeps its own private copies). */
#define T_REGION_READ (1u << 0)
#define T_REGION_WRITE (1u << 1)
#define T_REGION_MMAP (1u << 2)
#define T_REGION_CAPS (1u << 3)
#define T_IRQ_DATA_NONE (1u << 0)
#define T_IRQ_DATA_BOOL (1u << 1)
#define T_IRQ_DATA_EVENTFD (1u << 2)
#define T_IRQ_ACTION_MASK (1u << 3)
#define T_IRQ_ACTION_UNMASK (1u << 4)
#define T_IRQ_ACTION_TRIGGER (1u << 5)

#define SCRATCH_CAP (DEVMIG_DEFAULT_MAX_MSG_SIZE + 65536u)

/* One message under test and everything it points at. */
struct fx {
	struct devmig_msg m;
	struct devmig_wire_limits lim; /* passed to the decoder */
	unsigned nfds;                 /* fds "received" with the message */

	/* Byte edits applied after encoding, in this order. */
	long adjust;       /* > 0: append zero bytes; < 0: cut bytes (msg_size follows) */
	int npoke;
	struct {
		size_t off;
		uint8_t val;
	} poke[8];

	/* Backing storage for the message's pointers. */
	char json[256];
	uint8_t caps[128];
	struct devmig_sub_region_io_fd subs[4];
	uint8_t bools[8];
	uint8_t data[256];
	struct devmig_write_one wrs[DEVMIG_MULTI_MAX + 1];
	struct devmig_dma_logging_range ranges[DEVMIG_LOG_MAX_RANGES + 1];
	uint8_t fdata[512]; /* raw DEVICE_FEATURE data */
	uint8_t bitmap[256];
};

typedef void (*base_fn)(struct fx *f);

static inline struct fx *fx_new(base_fn base)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	devmig_wire_limits_default(&f->lim);
	base(f);
	return f;
}

static inline void fx_hdr(struct fx *f, uint16_t cmd, bool reply)
{
	f->m.hdr.msg_id = 0x1234;
	f->m.hdr.cmd = cmd;
	f->m.hdr.flags = reply ? DEVMIG_HDR_TYPE_REPLY : DEVMIG_HDR_TYPE_COMMAND;
}

static inline void fx_poke(struct fx *f, size_t off, uint8_t val)
{
	assert_true(f->npoke < 8);
	f->poke[f->npoke].off = off;
	f->poke[f->npoke].val = val;
	f->npoke++;
}

static inline void fx_poke32(struct fx *f, size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		fx_poke(f, off + i, (uint8_t)(v >> (8 * i)));
}

/* Encode m; the bytes in an exactly-sized malloc. */
static inline uint8_t *encode_exact(const struct devmig_msg *m, size_t *len)
{
	static uint8_t *scratch;
	enum devmig_wire_err err = W(E_NOSPC);
	uint8_t *out;
	size_t n;

	if (!scratch)
		scratch = malloc(SCRATCH_CAP);
	assert_non_null(scratch);
	n = devmig_encode(scratch, SCRATCH_CAP, m, &err);
	assert_int_equal(err, W(OK));
	assert_true(n >= DEVMIG_HDR_SIZE);
	out = malloc(n);
	assert_non_null(out);
	memcpy(out, scratch, n);
	*len = n;
	return out;
}

/* Decode a copy of bytes[0..len) held in an exactly-sized malloc (*keep, to free). */
static inline enum devmig_wire_err decode_exact(const uint8_t *bytes, size_t len, unsigned nfds,
						const struct devmig_wire_limits *lim,
						struct devmig_msg *out, uint8_t **keep)
{
	uint8_t *copy = malloc(len ? len : 1);

	assert_non_null(copy);
	if (len)
		memcpy(copy, bytes, len);
	*keep = copy;
	return devmig_decode(copy, len, nfds, lim, out);
}

/* The fixture's message as bytes, after its byte edits. */
static inline uint8_t *fx_bytes(struct fx *f, size_t *len)
{
	size_t n;
	uint8_t *b = encode_exact(&f->m, &n);

	if (f->adjust > 0) {
		b = realloc(b, n + (size_t)f->adjust);
		assert_non_null(b);
		memset(b + n, 0, (size_t)f->adjust);
		n += (size_t)f->adjust;
	} else if (f->adjust < 0) {
		assert_true((size_t)-f->adjust <= n - DEVMIG_HDR_SIZE);
		n -= (size_t)-f->adjust;
	}
	if (f->adjust) {
		uint32_t sz = (uint32_t)n;
		memcpy(b + offsetof(struct devmig_hdr, msg_size), &sz, sizeof(sz));
	}
	for (int i = 0; i < f->npoke; i++) {
		assert_true(f->poke[i].off < n);
		b[f->poke[i].off] = f->poke[i].val;
	}
	*len = n;
	return b;
}

static inline enum devmig_wire_err fx_decode(struct fx *f, struct devmig_msg *out, uint8_t **keep)
{
	size_t n;
	uint8_t *b = fx_bytes(f, &n);
	enum devmig_wire_err err = decode_exact(b, n, f->nfds, &f->lim, out, keep);

	free(b);
	return err;
}

static inline bool msg_is_reply(const struct devmig_msg *m)
{
	return (m->hdr.flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_REPLY;
}

static inline void assert_ptr_data(const void *a, const void *b, size_t n)
{
	assert_true((a == NULL) == (b == NULL));
	if (a && n)
		assert_memory_equal(a, b, n);
}

/*
 * Which typed member carries DEVICE_FEATURE data, as documented in wire.h:
 * 0 none, else the data length of the typed member (REPORT reply: 24).
 */
static inline size_t feature_typed_len(uint32_t flags, bool reply)
{
	uint32_t index = flags & DEVMIG_FEATURE_MASK;

	if (flags & DEVMIG_FEATURE_PROBE)
		return 0;
	if (flags & DEVMIG_FEATURE_GET) {
		if (index == DEVMIG_FEATURE_DMA_LOGGING_REPORT)
			return 24;
		if (!reply)
			return 0;
		if (index == DEVMIG_FEATURE_PRECOPY_INFO)
			return 16;
		if (index == DEVMIG_FEATURE_ARC_ESTIMATES)
			return sizeof(struct devmig_feature_arc_estimates);
		if (index == DEVMIG_FEATURE_DIRTY_RATE)
			return sizeof(struct devmig_feature_dirty_rate);
		return 8;
	}
	if (index == DEVMIG_FEATURE_MIG_DEVICE_STATE)
		return 8;
	if (index == DEVMIG_FEATURE_DMA_LOGGING_START)
		return 16;
	if (index == DEVMIG_FEATURE_MIG_STATE_DEADLINE)
		return reply ? sizeof(struct devmig_feature_mig_deadline) : DEVMIG_MIG_DEADLINE_REQ_LEN;
	if (index == DEVMIG_FEATURE_DIRTY_RATE)
		return 8;
	return 0;
}

static inline void assert_feature_equal(const struct devmig_msg *a, const struct devmig_msg *b)
{
	const __typeof__(a->u.feature) *x = &a->u.feature, *y = &b->u.feature;
	bool reply = msg_is_reply(a);
	uint32_t index = x->f.flags & DEVMIG_FEATURE_MASK;

	assert_memory_equal(&x->f, &y->f, sizeof(x->f));
	assert_int_equal(y->index, index);
	if (x->data) {
		assert_int_equal(x->data_len, y->data_len);
		assert_memory_equal(x->data, y->data, x->data_len);
		return;
	}
	/* Typed source: the decoded typed member must equal the original. */
	if (!feature_typed_len(x->f.flags, reply)) {
		assert_null(y->data);
		assert_int_equal(y->data_len, 0);
		return;
	}
	assert_non_null(y->data);
	switch (index) {
	case DEVMIG_FEATURE_MIGRATION:
		assert_int_equal(x->u.migration.flags, y->u.migration.flags);
		break;
	case DEVMIG_FEATURE_MIG_DEVICE_STATE:
		assert_memory_equal(&x->u.mig_state, &y->u.mig_state, sizeof(x->u.mig_state));
		break;
	case DEVMIG_FEATURE_MIG_DATA_SIZE:
		assert_int_equal(x->u.data_size.stop_copy_length, y->u.data_size.stop_copy_length);
		break;
	case DEVMIG_FEATURE_PRECOPY_INFO:
		assert_memory_equal(&x->u.precopy, &y->u.precopy, sizeof(x->u.precopy));
		break;
	case DEVMIG_FEATURE_MIG_STATUS:
		assert_memory_equal(&x->u.mig_status, &y->u.mig_status, sizeof(x->u.mig_status));
		break;
	case DEVMIG_FEATURE_COMPAT:
		assert_memory_equal(&x->u.compat, &y->u.compat, sizeof(x->u.compat));
		break;
	case DEVMIG_FEATURE_MIG_STATE_DEADLINE:
		/* A request carries its first 16 bytes, a reply all of it. */
		assert_memory_equal(&x->u.deadline, &y->u.deadline,
				    feature_typed_len(x->f.flags, reply));
		break;
	case DEVMIG_FEATURE_ARC_ESTIMATES:
		assert_memory_equal(&x->u.estimates, &y->u.estimates, sizeof(x->u.estimates));
		break;
	case DEVMIG_FEATURE_DIRTY_RATE:
		assert_memory_equal(&x->u.dirty_rate, &y->u.dirty_rate,
				    feature_typed_len(x->f.flags, reply));
		break;
	case DEVMIG_FEATURE_DMA_LOGGING_START:
		assert_memory_equal(&x->u.log_start.ctl, &y->u.log_start.ctl,
				    sizeof(x->u.log_start.ctl));
		assert_ptr_data(x->u.log_start.ranges, y->u.log_start.ranges,
				x->u.log_start.ctl.num_ranges * sizeof(struct devmig_dma_logging_range));
		break;
	case DEVMIG_FEATURE_DMA_LOGGING_REPORT:
		assert_memory_equal(&x->u.log_report.rep, &y->u.log_report.rep,
				    sizeof(x->u.log_report.rep));
		assert_int_equal(x->u.log_report.bitmap_len, y->u.log_report.bitmap_len);
		assert_ptr_data(x->u.log_report.bitmap, y->u.log_report.bitmap,
				x->u.log_report.bitmap_len);
		break;
	default:
		fail_msg("typed feature %u not covered", index);
	}
}

/* Every field decode() fills, compared with the message that was encoded. */
static inline void assert_msg_equal(const struct devmig_msg *a, const struct devmig_msg *b)
{
	bool reply = msg_is_reply(a);

	assert_int_equal(a->hdr.msg_id, b->hdr.msg_id);
	assert_int_equal(a->hdr.cmd, b->hdr.cmd);
	assert_int_equal(a->hdr.flags, b->hdr.flags);
	assert_int_equal(a->hdr.error_no, b->hdr.error_no);
	if (reply && (a->hdr.flags & DEVMIG_HDR_ERROR))
		return;
	switch (a->hdr.cmd) {
	case DEVMIG_CMD_VERSION:
		assert_memory_equal(&a->u.version.v, &b->u.version.v, sizeof(a->u.version.v));
		assert_int_equal(a->u.version.json_len, b->u.version.json_len);
		assert_ptr_data(a->u.version.json, b->u.version.json, a->u.version.json_len);
		if (b->u.version.json)
			assert_int_equal(b->u.version.json[b->u.version.json_len], '\0');
		break;
	case DEVMIG_CMD_DMA_MAP:
		if (!reply)
			assert_memory_equal(&a->u.dma_map, &b->u.dma_map, sizeof(a->u.dma_map));
		break;
	case DEVMIG_CMD_DMA_UNMAP:
		assert_memory_equal(&a->u.dma_unmap, &b->u.dma_unmap, sizeof(a->u.dma_unmap));
		break;
	case DEVMIG_CMD_DEVICE_GET_INFO:
		assert_memory_equal(&a->u.device_info, &b->u.device_info, sizeof(a->u.device_info));
		break;
	case DEVMIG_CMD_DEVICE_GET_REGION_INFO:
		assert_memory_equal(&a->u.region_info.info, &b->u.region_info.info,
				    sizeof(a->u.region_info.info));
		assert_int_equal(a->u.region_info.caps_len, b->u.region_info.caps_len);
		assert_ptr_data(a->u.region_info.caps, b->u.region_info.caps,
				a->u.region_info.caps_len);
		break;
	case DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS:
		assert_memory_equal(&a->u.io_fds.io, &b->u.io_fds.io, sizeof(a->u.io_fds.io));
		assert_int_equal(a->u.io_fds.subs_len, b->u.io_fds.subs_len);
		assert_ptr_data(a->u.io_fds.subs, b->u.io_fds.subs, a->u.io_fds.subs_len);
		break;
	case DEVMIG_CMD_DEVICE_GET_IRQ_INFO:
		assert_memory_equal(&a->u.irq_info, &b->u.irq_info, sizeof(a->u.irq_info));
		break;
	case DEVMIG_CMD_DEVICE_SET_IRQS:
		if (reply)
			break;
		assert_memory_equal(&a->u.irq_set.set, &b->u.irq_set.set, sizeof(a->u.irq_set.set));
		assert_ptr_data(a->u.irq_set.bools, b->u.irq_set.bools, a->u.irq_set.set.count);
		break;
	case DEVMIG_CMD_REGION_READ:
	case DEVMIG_CMD_REGION_WRITE:
		assert_memory_equal(&a->u.region.acc, &b->u.region.acc, sizeof(a->u.region.acc));
		assert_ptr_data(a->u.region.data, b->u.region.data, a->u.region.acc.count);
		break;
	case DEVMIG_CMD_DMA_READ:
	case DEVMIG_CMD_DMA_WRITE:
		assert_memory_equal(&a->u.dma.acc, &b->u.dma.acc, sizeof(a->u.dma.acc));
		assert_ptr_data(a->u.dma.data, b->u.dma.data, (size_t)a->u.dma.acc.count);
		break;
	case DEVMIG_CMD_DEVICE_RESET:
		break;
	case DEVMIG_CMD_REGION_WRITE_MULTI:
		assert_int_equal(a->u.write_multi.wr_cnt, b->u.write_multi.wr_cnt);
		if (!reply)
			assert_ptr_data(a->u.write_multi.wrs, b->u.write_multi.wrs,
					(size_t)a->u.write_multi.wr_cnt *
						sizeof(struct devmig_write_one));
		break;
	case DEVMIG_CMD_DEVICE_FEATURE:
		assert_feature_equal(a, b);
		break;
	case DEVMIG_CMD_MIG_DATA_READ:
	case DEVMIG_CMD_MIG_DATA_WRITE:
		if (reply && a->hdr.cmd == DEVMIG_CMD_MIG_DATA_WRITE)
			break;
		assert_memory_equal(&a->u.mig_data.md, &b->u.mig_data.md, sizeof(a->u.mig_data.md));
		assert_ptr_data(a->u.mig_data.data, b->u.mig_data.data, a->u.mig_data.md.size);
		if (a->hdr.cmd == DEVMIG_CMD_MIG_DATA_READ && msg_is_reply(a))
			assert_int_equal(a->u.mig_data.pad, b->u.mig_data.pad);
		break;
	default:
		fail_msg("command %u not covered", a->hdr.cmd);
	}
}

/* decode(encode(m)) == m; encode(decode(encode(m))) == encode(m); encode_head agrees. */
static inline void run_round_trip(base_fn base)
{
	struct fx *f = fx_new(base);
	struct devmig_msg d, d2;
	enum devmig_wire_err err = W(E_NOSPC);
	const void *tail = (const void *)1;
	size_t n, n2, hn, tail_len = 99;
	uint8_t *b, *b2, *keep, *keep2, *hb;

	b = encode_exact(&f->m, &n);
	assert_int_equal(decode_exact(b, n, f->nfds, &f->lim, &d, &keep), W(OK));
	assert_int_equal(d.hdr.msg_size, n);
	assert_msg_equal(&f->m, &d);

	/* Re-encoding the decoded message gives the same bytes. */
	b2 = encode_exact(&d, &n2);
	assert_int_equal(n, n2);
	assert_memory_equal(b, b2, n);
	assert_int_equal(decode_exact(b2, n2, f->nfds, &f->lim, &d2, &keep2), W(OK));
	assert_msg_equal(&d, &d2);

	/* The head path: head bytes then tail are the same message. */
	hb = malloc(n);
	assert_non_null(hb);
	hn = devmig_encode_head(hb, n, &f->m, &tail, &tail_len, &err);
	assert_int_equal(err, W(OK));
	/* A padded MIG_DATA_READ reply: the caller sends the padding after the tail. */
	size_t pad = f->m.hdr.cmd == DEVMIG_CMD_MIG_DATA_READ && msg_is_reply(&f->m)
			     ? f->m.u.mig_data.pad : 0;
	assert_int_equal(hn + tail_len + pad, n);
	assert_memory_equal(hb, b, hn);
	if (tail_len) {
		assert_memory_equal(tail, b + hn, tail_len);
		/* Exactly the head fits in hn bytes; the whole message does not. */
		err = W(OK);
		assert_int_equal(devmig_encode(hb, hn, &f->m, &err), 0);
		assert_int_equal(err, W(E_NOSPC));
		assert_int_equal(devmig_encode_head(hb, hn, &f->m, &tail, &tail_len, &err), hn);
		assert_int_equal(err, W(OK));
	} else {
		assert_null(tail);
	}
	/* One byte short of the head is refused without writing past cap. */
	err = W(OK);
	assert_int_equal(devmig_encode_head(hb, hn - 1, &f->m, &tail, &tail_len, &err), 0);
	assert_int_equal(err, W(E_NOSPC));
	err = W(OK);
	assert_int_equal(devmig_encode(hb, n - 1, &f->m, &err), 0);
	assert_int_equal(err, W(E_NOSPC));

	free(hb);
	free(b);
	free(b2);
	free(keep);
	free(keep2);
	free(f);
}

/*
 * Every prefix of a valid message is refused, read from an exactly-sized
 * buffer; and so is every prefix whose msg_size was patched to its length
 * (so the payload decoder sees the short payload) unless that prefix is
 * itself a valid message, which must then re-encode to the same bytes.
 */
static inline void run_truncations(base_fn base)
{
	struct fx *f = fx_new(base);
	struct devmig_msg d;
	size_t n;
	uint8_t *b = encode_exact(&f->m, &n), *keep;

	assert_int_equal(decode_exact(b, n, f->nfds, &f->lim, &d, &keep), W(OK));
	free(keep);
	for (size_t len = 0; len < n; len++) {
		enum devmig_wire_err err = decode_exact(b, len, f->nfds, &f->lim, &d, &keep);

		assert_int_not_equal(err, W(OK));
		free(keep);
		if (len < DEVMIG_HDR_SIZE) {
			assert_int_equal(err, W(E_SHORT));
			continue;
		}
		assert_int_equal(err, W(E_MSG_SIZE));

		uint8_t *c = malloc(len);
		uint32_t sz = (uint32_t)len;

		assert_non_null(c);
		memcpy(c, b, len);
		memcpy(c + offsetof(struct devmig_hdr, msg_size), &sz, sizeof(sz));
		err = decode_exact(c, len, f->nfds, &f->lim, &d, &keep);
		if (err == W(OK)) {
			size_t rn;
			uint8_t *r = encode_exact(&d, &rn);

			assert_int_equal(rn, len);
			assert_memory_equal(r, c, len);
			free(r);
		}
		free(keep);
		free(c);
	}
	free(b);
	free(f);
}

/* A valid base, one mutation, one expected error. */
struct reject_row {
	base_fn base;
	void (*mut)(struct fx *f);
	enum devmig_wire_err expect;
};

static inline void run_reject(const struct reject_row *r)
{
	struct fx *f = fx_new(r->base);
	struct devmig_msg d;
	uint8_t *keep;

	/* The base itself is valid: the mutation alone causes the refusal. */
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	r->mut(f);
	assert_int_equal(fx_decode(f, &d, &keep), r->expect);
	free(keep);
	free(f);
}

/*
 * X(name, base, ERR, body...) declares test `name`: base message, then
 * body (with `f` and `m` in scope) mutates it, decoding fails with E_ERR.
 */
#define REJECT_DEFINE(name, base, err, ...)                                   \
	static void mut_##name(struct fx *f)                                 \
	{                                                                    \
		struct devmig_msg *m = &f->m;                                \
		(void)m;                                                     \
		__VA_ARGS__;                                                 \
	}                                                                    \
	static void name(void **state)                                       \
	{                                                                    \
		static const struct reject_row row = { base, mut_##name,     \
						       DEVMIG_WIRE_E_##err }; \
		(void)state;                                                 \
		run_reject(&row);                                            \
	}
#define REJECT_ENTRY(name, base, err, ...) cmocka_unit_test(name),

#endif /* DEVMIG_WIRE_TEST_UTIL_H */
