/* SPDX-License-Identifier: MIT */
/*
 * Shared body of fuzz_decode_server.c and fuzz_decode_client.c.
 *
 * Input: byte 0 picks the number of file descriptors (0..3) that "arrived"
 * with the message; the rest is one whole message. When the decoder accepts
 * it, the harness checks the codec's contract:
 *  - every pointer the decoder hands back lies inside the input buffer;
 *  - devmig_encode of the result writes exactly msg_size bytes, fails with
 *    E_NOSPC (writing nothing past cap) when one byte short, and
 *    devmig_encode_head plus its tail gives the same bytes;
 *  - re-decoding the encoding gives the same fields (pointers compared by
 *    their offset in their buffer and by the bytes they cover), and
 *    encoding that again gives the same bytes;
 *  - the accessors for REGION_WRITE_MULTI entries and DMA logging ranges
 *    return entries that honour the limits the decoder claims to enforce.
 * A violation prints what broke and aborts, so libFuzzer keeps the input.
 */
#ifndef DEVMIG_FUZZ_DECODE_H
#define DEVMIG_FUZZ_DECODE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devmig/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond, ...)                                                    \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz check failed: %s (%s:%d): ", #cond, \
				__FILE__, __LINE__);                           \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

/* The variable parts of a decoded message: pointer and the bytes it covers. */
struct fz_span {
	const char *what;
	const void *p;
	uint64_t n;
};

#define FZ_MAX_SPANS 4

static size_t fz_spans(const struct devmig_msg *m, struct fz_span *s)
{
	size_t k = 0;

	if (m->hdr.flags & DEVMIG_HDR_ERROR)
		return 0;
	switch (m->hdr.cmd) {
	case DEVMIG_CMD_VERSION:
		/* NUL included: the header promises it lies within the buffer. */
		if (m->u.version.json)
			s[k++] = (struct fz_span){ "version.json", m->u.version.json,
						   (uint64_t)m->u.version.json_len + 1 };
		break;
	case DEVMIG_CMD_DEVICE_GET_REGION_INFO:
		s[k++] = (struct fz_span){ "region_info.caps", m->u.region_info.caps,
					   m->u.region_info.caps_len };
		break;
	case DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS:
		s[k++] = (struct fz_span){ "io_fds.subs", m->u.io_fds.subs, m->u.io_fds.subs_len };
		break;
	case DEVMIG_CMD_DEVICE_SET_IRQS:
		s[k++] = (struct fz_span){ "irq_set.bools", m->u.irq_set.bools,
					   m->u.irq_set.set.count };
		break;
	case DEVMIG_CMD_REGION_READ:
	case DEVMIG_CMD_REGION_WRITE:
		s[k++] = (struct fz_span){ "region.data", m->u.region.data, m->u.region.acc.count };
		break;
	case DEVMIG_CMD_DMA_READ:
	case DEVMIG_CMD_DMA_WRITE:
		s[k++] = (struct fz_span){ "dma.data", m->u.dma.data, m->u.dma.acc.count };
		break;
	case DEVMIG_CMD_REGION_WRITE_MULTI:
		/* wr_cnt is bounded before the multiplication can matter (<= 2^64 / 24 checked below). */
		s[k++] = (struct fz_span){ "write_multi.wrs", m->u.write_multi.wrs,
					   m->u.write_multi.wr_cnt > UINT32_MAX ? UINT64_MAX :
					   m->u.write_multi.wr_cnt * sizeof(struct devmig_write_one) };
		break;
	case DEVMIG_CMD_DEVICE_FEATURE:
		s[k++] = (struct fz_span){ "feature.data", m->u.feature.data,
					   m->u.feature.data_len };
		if (m->u.feature.data && m->u.feature.index == DEVMIG_FEATURE_DMA_LOGGING_START)
			s[k++] = (struct fz_span){
				"feature.log_start.ranges", m->u.feature.u.log_start.ranges,
				(uint64_t)m->u.feature.u.log_start.ctl.num_ranges *
					sizeof(struct devmig_dma_logging_range) };
		if (m->u.feature.data && m->u.feature.index == DEVMIG_FEATURE_DMA_LOGGING_REPORT)
			s[k++] = (struct fz_span){ "feature.log_report.bitmap",
						   m->u.feature.u.log_report.bitmap,
						   m->u.feature.u.log_report.bitmap_len };
		break;
	case DEVMIG_CMD_MIG_DATA_READ:
	case DEVMIG_CMD_MIG_DATA_WRITE:
		s[k++] = (struct fz_span){ "mig_data.data", m->u.mig_data.data, m->u.mig_data.md.size };
		break;
	default:
		break;
	}
	return k;
}

/* Every pointer of m lies in [buf, buf + len), its whole span included. */
static void fz_check_spans(const struct devmig_msg *m, const uint8_t *buf, size_t len)
{
	struct fz_span s[FZ_MAX_SPANS];
	size_t k = fz_spans(m, s);

	for (size_t i = 0; i < k; i++) {
		if (!s[i].p)
			continue;
		const uint8_t *p = s[i].p;
		FZ_CHECK(p >= buf && p <= buf + len, "%s points outside the message", s[i].what);
		FZ_CHECK(s[i].n <= (uint64_t)(buf + len - p),
			 "%s: %llu bytes at offset %zu overrun a %zu-byte message", s[i].what,
			 (unsigned long long)s[i].n, (size_t)(p - buf), len);
	}
	if (m->hdr.cmd == DEVMIG_CMD_VERSION && !(m->hdr.flags & DEVMIG_HDR_ERROR) &&
	    m->u.version.json) {
		FZ_CHECK(m->u.version.json[m->u.version.json_len] == '\0',
			 "version JSON not NUL-terminated at json_len");
		FZ_CHECK(strlen(m->u.version.json) == m->u.version.json_len,
			 "version json_len is not the string length");
	}
}

#define FZ_SAME(field)                                                          \
	FZ_CHECK(memcmp(&a->field, &b->field, sizeof(a->field)) == 0,           \
		 "re-decoded " #field " differs (cmd %u)", (unsigned)a->hdr.cmd)

/* a (decoded from abuf) and b (from bbuf) carry the same message. */
static void fz_compare(const struct devmig_msg *a, const uint8_t *abuf,
		       const struct devmig_msg *b, const uint8_t *bbuf)
{
	FZ_SAME(hdr);
	if (a->hdr.flags & DEVMIG_HDR_ERROR)
		return;
	switch (a->hdr.cmd) {
	case DEVMIG_CMD_VERSION:
		FZ_SAME(u.version.v);
		FZ_SAME(u.version.json_len);
		break;
	case DEVMIG_CMD_DMA_MAP:
		FZ_SAME(u.dma_map);
		break;
	case DEVMIG_CMD_DMA_UNMAP:
		FZ_SAME(u.dma_unmap);
		break;
	case DEVMIG_CMD_DEVICE_GET_INFO:
		FZ_SAME(u.device_info);
		break;
	case DEVMIG_CMD_DEVICE_GET_REGION_INFO:
		FZ_SAME(u.region_info.info);
		FZ_SAME(u.region_info.caps_len);
		break;
	case DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS:
		FZ_SAME(u.io_fds.io);
		FZ_SAME(u.io_fds.subs_len);
		break;
	case DEVMIG_CMD_DEVICE_GET_IRQ_INFO:
		FZ_SAME(u.irq_info);
		break;
	case DEVMIG_CMD_DEVICE_SET_IRQS:
		FZ_SAME(u.irq_set.set);
		break;
	case DEVMIG_CMD_REGION_READ:
	case DEVMIG_CMD_REGION_WRITE:
		FZ_SAME(u.region.acc);
		break;
	case DEVMIG_CMD_DMA_READ:
	case DEVMIG_CMD_DMA_WRITE:
		FZ_SAME(u.dma.acc);
		break;
	case DEVMIG_CMD_REGION_WRITE_MULTI:
		FZ_SAME(u.write_multi.wr_cnt);
		break;
	case DEVMIG_CMD_DEVICE_FEATURE:
		FZ_SAME(u.feature.f);
		FZ_SAME(u.feature.index);
		FZ_SAME(u.feature.data_len);
		if (!a->u.feature.data)
			break;
		switch (a->u.feature.index) {
		case DEVMIG_FEATURE_MIGRATION:
			FZ_SAME(u.feature.u.migration);
			break;
		case DEVMIG_FEATURE_MIG_DEVICE_STATE:
			FZ_SAME(u.feature.u.mig_state);
			break;
		case DEVMIG_FEATURE_DMA_LOGGING_START:
			FZ_SAME(u.feature.u.log_start.ctl);
			break;
		case DEVMIG_FEATURE_DMA_LOGGING_REPORT:
			FZ_SAME(u.feature.u.log_report.rep);
			FZ_SAME(u.feature.u.log_report.bitmap_len);
			break;
		case DEVMIG_FEATURE_MIG_DATA_SIZE:
			FZ_SAME(u.feature.u.data_size);
			break;
		case DEVMIG_FEATURE_PRECOPY_INFO:
			FZ_SAME(u.feature.u.precopy);
			break;
		default:
			break;
		}
		break;
	case DEVMIG_CMD_MIG_DATA_READ:
	case DEVMIG_CMD_MIG_DATA_WRITE:
		FZ_SAME(u.mig_data.md);
		if (a->hdr.cmd == DEVMIG_CMD_MIG_DATA_READ &&
		    (a->hdr.flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_REPLY)
			FZ_SAME(u.mig_data.pad);
		break;
	default:
		break;
	}

	/* Variable parts: same presence, same place in the message, same bytes. */
	struct fz_span sa[FZ_MAX_SPANS], sb[FZ_MAX_SPANS];
	size_t ka = fz_spans(a, sa), kb = fz_spans(b, sb);
	FZ_CHECK(ka == kb, "span count differs");
	for (size_t i = 0; i < ka; i++) {
		FZ_CHECK(!sa[i].p == !sb[i].p, "%s present in one decode only", sa[i].what);
		FZ_CHECK(sa[i].n == sb[i].n, "%s length differs", sa[i].what);
		if (!sa[i].p)
			continue;
		size_t oa = (size_t)((const uint8_t *)sa[i].p - abuf);
		size_t ob = (size_t)((const uint8_t *)sb[i].p - bbuf);
		FZ_CHECK(oa == ob, "%s at offset %zu, re-decoded at %zu", sa[i].what, oa, ob);
		FZ_CHECK(memcmp(sa[i].p, sb[i].p, (size_t)sa[i].n) == 0, "%s bytes differ",
			 sa[i].what);
	}
}

/* The accessors, and the limits the decoder enforces on what they return. */
static void fz_accessors(const struct devmig_msg *m, const struct devmig_wire_limits *lim)
{
	if ((m->hdr.flags & DEVMIG_HDR_ERROR) ||
	    (m->hdr.flags & DEVMIG_HDR_TYPE_MASK) != DEVMIG_HDR_TYPE_COMMAND)
		return;
	if (m->hdr.cmd == DEVMIG_CMD_REGION_WRITE_MULTI && m->u.write_multi.wrs) {
		FZ_CHECK(m->u.write_multi.wr_cnt >= 1 && m->u.write_multi.wr_cnt <= DEVMIG_MULTI_MAX,
			 "wr_cnt %llu accepted", (unsigned long long)m->u.write_multi.wr_cnt);
		for (uint64_t i = 0; i < m->u.write_multi.wr_cnt; i++) {
			struct devmig_write_one w;
			devmig_write_multi_entry(m, i, &w);
			FZ_CHECK(w.count >= 1 && w.count <= DEVMIG_MULTI_DATA,
				 "write_multi entry %llu: count %u accepted", (unsigned long long)i,
				 w.count);
			FZ_CHECK(w.region < lim->num_regions,
				 "write_multi entry %llu: region %u accepted", (unsigned long long)i,
				 w.region);
			FZ_CHECK(w.offset + w.count >= w.offset,
				 "write_multi entry %llu: offset+count wraps", (unsigned long long)i);
		}
	}
	if (m->hdr.cmd == DEVMIG_CMD_DEVICE_FEATURE && m->u.feature.data &&
	    m->u.feature.index == DEVMIG_FEATURE_DMA_LOGGING_START &&
	    m->u.feature.u.log_start.ranges) {
		const struct devmig_feature_dma_logging_control *ctl = &m->u.feature.u.log_start.ctl;
		uint32_t n = ctl->num_ranges;
		uint64_t ps = ctl->page_size;
		FZ_CHECK(n <= DEVMIG_LOG_MAX_RANGES, "%u logging ranges accepted", n);
		bool ps_ok = ps >= DEVMIG_MIN_PAGE_SIZE && (ps & (ps - 1)) == 0;
		struct devmig_dma_logging_range r[DEVMIG_LOG_MAX_RANGES];
		for (uint32_t i = 0; i < n; i++) {
			devmig_log_range(m, i, &r[i]);
			FZ_CHECK(r[i].iova + r[i].length >= r[i].iova, "logging range %u wraps", i);
			if (ps_ok)
				FZ_CHECK(r[i].iova % ps == 0 && r[i].length % ps == 0,
					 "logging range %u not aligned to %llu", i,
					 (unsigned long long)ps);
		}
		for (uint32_t i = 0; i < n; i++) {
			for (uint32_t j = i + 1; j < n; j++) {
				if (!r[i].length || !r[j].length)
					continue;
				bool apart = r[i].iova + r[i].length <= r[j].iova ||
					     r[j].iova + r[j].length <= r[i].iova;
				FZ_CHECK(apart, "logging ranges %u and %u overlap", i, j);
			}
		}
	}
}

static int fz_decode_one(const uint8_t *data, size_t size, enum devmig_wire_role role)
{
	if (size < 1)
		return 0;
	unsigned nfds = data[0] & 3u;
	const uint8_t *msg = data + 1;
	size_t len = size - 1;

	struct devmig_wire_limits lim;
	devmig_wire_limits_default(&lim);
	lim.role = role;

	struct devmig_msg m1;
	memset(&m1, 0, sizeof(m1));
	if (devmig_decode(msg, len, nfds, &lim, &m1) != DEVMIG_WIRE_OK)
		return 0;

	FZ_CHECK(m1.hdr.msg_size == len, "accepted msg_size %u for %zu bytes", m1.hdr.msg_size,
		 len);
	fz_check_spans(&m1, msg, len);
	fz_accessors(&m1, &lim);
	/*
	 * Not checked: devmig_msg_fds_expected(&m1) <= nfds. The message does
	 * not record nfds, so DMA_MAP without an fd still reports 1 and
	 * SET_IRQS DATA_EVENTFD with no fds (de-assign) reports count.
	 */

	/*
	 * Encode into a buffer with room to spare: exactly msg_size bytes come
	 * out, but for an error reply, whose payload (ignored) is not encoded:
	 * the header alone. From here on m1 is what the encoding says.
	 */
	bool is_reply = (m1.hdr.flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_REPLY;
	if (is_reply && (m1.hdr.flags & DEVMIG_HDR_ERROR))
		m1.hdr.msg_size = DEVMIG_HDR_SIZE;
	/* A REGION_INFO request's bytes beyond its 32 (libvfio-user sends its
	 * whole argsz buffer) are accepted and not kept: they are not encoded. */
	if (!is_reply && m1.hdr.cmd == DEVMIG_CMD_DEVICE_GET_REGION_INFO)
		m1.hdr.msg_size = DEVMIG_HDR_SIZE + sizeof(struct devmig_region_info);
	size_t cap = len + 64;
	uint8_t *enc = malloc(cap);
	FZ_CHECK(enc != NULL, "malloc");
	enum devmig_wire_err err = DEVMIG_WIRE_OK;
	size_t n = devmig_encode(enc, cap, &m1, &err);
	FZ_CHECK(n != 0, "encode of a decoded message failed: %s", devmig_wire_strerror(err));
	FZ_CHECK(n == m1.hdr.msg_size, "encoded %zu bytes, msg_size %u", n, m1.hdr.msg_size);

	/* One byte short: E_NOSPC, and nothing written past cap (ASan watches). */
	uint8_t *tight = malloc(n - 1);
	FZ_CHECK(tight != NULL, "malloc");
	err = DEVMIG_WIRE_OK;
	FZ_CHECK(devmig_encode(tight, n - 1, &m1, &err) == 0, "encode into %zu bytes succeeded",
		 n - 1);
	FZ_CHECK(err == DEVMIG_WIRE_E_NOSPC, "encode short: %s", devmig_wire_strerror(err));
	free(tight);

	/* Head plus tail is the same message. */
	uint8_t *head = malloc(cap);
	FZ_CHECK(head != NULL, "malloc");
	const void *tail = NULL;
	size_t tail_len = 0;
	err = DEVMIG_WIRE_OK;
	size_t nh = devmig_encode_head(head, cap, &m1, &tail, &tail_len, &err);
	FZ_CHECK(nh != 0, "encode_head failed: %s", devmig_wire_strerror(err));
	/* A padded MIG_DATA_READ reply: its padding comes after the tail. */
	bool padded = is_reply && m1.hdr.cmd == DEVMIG_CMD_MIG_DATA_READ &&
		      !(m1.hdr.flags & DEVMIG_HDR_ERROR);
	size_t pad = padded ? m1.u.mig_data.pad : 0;
	FZ_CHECK(nh + tail_len + pad == n, "head %zu + tail %zu + padding %zu != %zu", nh, tail_len,
		 pad, n);
	for (size_t i = nh + tail_len; i < n; i++)
		FZ_CHECK(enc[i] == 0, "padding byte %zu is not zero", i);
	FZ_CHECK(memcmp(head, enc, nh) == 0, "encode_head bytes differ from encode");
	FZ_CHECK(tail_len == 0 || (tail && memcmp(tail, enc + nh, tail_len) == 0),
		 "encode_head tail differs from encode");
	free(head);

	/* Decode the encoding: the same fields. */
	struct devmig_msg m2;
	memset(&m2, 0, sizeof(m2));
	err = devmig_decode(enc, n, nfds, &lim, &m2);
	FZ_CHECK(err == DEVMIG_WIRE_OK, "re-decode of the encoding failed: %s",
		 devmig_wire_strerror(err));
	fz_check_spans(&m2, enc, n);
	fz_compare(&m1, msg, &m2, enc);
	FZ_CHECK(devmig_msg_fds_expected(&m1) == devmig_msg_fds_expected(&m2),
		 "fds expected differ");

	/* And encoding that again is byte-identical. */
	uint8_t *enc2 = malloc(cap);
	FZ_CHECK(enc2 != NULL, "malloc");
	size_t n2 = devmig_encode(enc2, cap, &m2, &err);
	FZ_CHECK(n2 == n && memcmp(enc, enc2, n) == 0, "second encoding differs");
	free(enc2);
	free(enc);
	return 0;
}

#endif /* DEVMIG_FUZZ_DECODE_H */
