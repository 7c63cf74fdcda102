/* SPDX-License-Identifier: MIT */
/*
 * The vfio-user message codec: header, dispatch, every command but
 * DEVICE_FEATURE (wire_feature.c), encoding, errors and names.
 *
 * Every fixed part is copied out of the buffer with memcpy (the wire structs
 * are packed and the buffer may be at any alignment); every length is checked
 * against the bytes present before it is used; every sum that could wrap is
 * checked with __builtin_add_overflow.
 */
#include <errno.h>
#include <string.h>

#include "wire_internal.h"

#define E(x) DEVMIG_WIRE_E_##x
#define OK DEVMIG_WIRE_OK

/* VFIO_REGION_INFO_FLAG_* and VFIO_REGION_INFO_CAP_SPARSE_MMAP. */
#define REGION_INFO_FLAG_MMAP (1u << 2)
#define REGION_INFO_FLAG_CAPS (1u << 3)
#define REGION_INFO_CAP_SPARSE_MMAP 1u

/* VFIO_IRQ_SET_* */
#define IRQ_DATA_NONE (1u << 0)
#define IRQ_DATA_BOOL (1u << 1)
#define IRQ_DATA_EVENTFD (1u << 2)
#define IRQ_DATA_MASK (IRQ_DATA_NONE | IRQ_DATA_BOOL | IRQ_DATA_EVENTFD)
#define IRQ_ACTION_MASK_BIT (1u << 3)
#define IRQ_ACTION_UNMASK (1u << 4)
#define IRQ_ACTION_TRIGGER (1u << 5)
#define IRQ_ACTION_MASK (IRQ_ACTION_MASK_BIT | IRQ_ACTION_UNMASK | IRQ_ACTION_TRIGGER)

#define SUB_REGION_IO_FD_SIZE sizeof(struct devmig_sub_region_io_fd)
#define WRITE_ONE_SIZE sizeof(struct devmig_write_one)

_Static_assert(sizeof(struct devmig_hdr) == DEVMIG_HDR_SIZE, "hdr");
_Static_assert(sizeof(struct devmig_dma_map) == 32, "dma_map");
_Static_assert(sizeof(struct devmig_dma_unmap) == 24, "dma_unmap");
_Static_assert(sizeof(struct devmig_region_info) == 32, "region_info");
_Static_assert(sizeof(struct devmig_sub_region_io_fd) == 40, "sub_region_io_fd");
_Static_assert(sizeof(struct devmig_irq_set) == 20, "irq_set");
_Static_assert(sizeof(struct devmig_write_one) == 24, "write_one");
_Static_assert(sizeof(struct devmig_feature_dma_logging_report) == 24, "report");

/* ---- errors and names ---- */

int devmig_wire_errno(enum devmig_wire_err err)
{
	switch (err) {
	case DEVMIG_WIRE_OK:
		return 0;
	case DEVMIG_WIRE_E_TOO_BIG:
	case DEVMIG_WIRE_E_TOO_MANY:
		return E2BIG;
	case DEVMIG_WIRE_E_UNKNOWN_CMD:
		return ENOSYS;
	case DEVMIG_WIRE_E_OVERFLOW:
		return EOVERFLOW;
	case DEVMIG_WIRE_E_FEATURE:
		return ENOTTY;
	case DEVMIG_WIRE_E_VERSION:
		return ENOTSUP;
	case DEVMIG_WIRE_E_NOSPC:
		return ENOSPC;
	default:
		return EINVAL;
	}
}

const char *devmig_wire_strerror(enum devmig_wire_err err)
{
	switch (err) {
	case DEVMIG_WIRE_OK: return "no error";
	case DEVMIG_WIRE_E_SHORT: return "message shorter than its layout";
	case DEVMIG_WIRE_E_MSG_SIZE: return "message size does not match its contents";
	case DEVMIG_WIRE_E_TOO_BIG: return "message larger than the configured maximum";
	case DEVMIG_WIRE_E_HDR_FLAGS: return "invalid header flags";
	case DEVMIG_WIRE_E_UNKNOWN_CMD: return "unknown command";
	case DEVMIG_WIRE_E_DIRECTION: return "command sent in the wrong direction";
	case DEVMIG_WIRE_E_ARGSZ: return "argsz inconsistent with the payload";
	case DEVMIG_WIRE_E_FIELD: return "invalid flags or reserved field";
	case DEVMIG_WIRE_E_INDEX: return "region or IRQ index out of range";
	case DEVMIG_WIRE_E_COUNT: return "count zero or above the transfer limit";
	case DEVMIG_WIRE_E_OVERFLOW: return "address range wraps around";
	case DEVMIG_WIRE_E_ALIGN: return "address or length not page aligned";
	case DEVMIG_WIRE_E_OVERLAP: return "DMA logging ranges overlap";
	case DEVMIG_WIRE_E_PAGE_SIZE: return "page size not a power of two of at least 4096";
	case DEVMIG_WIRE_E_TOO_MANY: return "too many ranges or entries";
	case DEVMIG_WIRE_E_FEATURE: return "unknown device feature";
	case DEVMIG_WIRE_E_FEATURE_OP: return "operation not valid for this device feature";
	case DEVMIG_WIRE_E_FDS: return "missing or surplus file descriptors";
	case DEVMIG_WIRE_E_JSON: return "VERSION JSON malformed or mistyped";
	case DEVMIG_WIRE_E_VERSION: return "version or capability negotiation failed";
	case DEVMIG_WIRE_E_NOSPC: return "output buffer too small";
	case DEVMIG_WIRE_E_STATE: return "device state out of range";
	}
	return "unknown codec error";
}

static const char *const cmd_names[DEVMIG_CMD_MAX + 1] = {
	[DEVMIG_CMD_VERSION] = "VERSION",
	[DEVMIG_CMD_DMA_MAP] = "DMA_MAP",
	[DEVMIG_CMD_DMA_UNMAP] = "DMA_UNMAP",
	[DEVMIG_CMD_DEVICE_GET_INFO] = "DEVICE_GET_INFO",
	[DEVMIG_CMD_DEVICE_GET_REGION_INFO] = "DEVICE_GET_REGION_INFO",
	[DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS] = "DEVICE_GET_REGION_IO_FDS",
	[DEVMIG_CMD_DEVICE_GET_IRQ_INFO] = "DEVICE_GET_IRQ_INFO",
	[DEVMIG_CMD_DEVICE_SET_IRQS] = "DEVICE_SET_IRQS",
	[DEVMIG_CMD_REGION_READ] = "REGION_READ",
	[DEVMIG_CMD_REGION_WRITE] = "REGION_WRITE",
	[DEVMIG_CMD_DMA_READ] = "DMA_READ",
	[DEVMIG_CMD_DMA_WRITE] = "DMA_WRITE",
	[DEVMIG_CMD_DEVICE_RESET] = "DEVICE_RESET",
	[DEVMIG_CMD_REGION_WRITE_MULTI] = "REGION_WRITE_MULTI",
	[DEVMIG_CMD_DEVICE_FEATURE] = "DEVICE_FEATURE",
	[DEVMIG_CMD_MIG_DATA_READ] = "MIG_DATA_READ",
	[DEVMIG_CMD_MIG_DATA_WRITE] = "MIG_DATA_WRITE",
};

const char *devmig_cmd_name(uint32_t cmd)
{
	if (cmd > DEVMIG_CMD_MAX || !cmd_names[cmd])
		return "UNKNOWN";
	return cmd_names[cmd];
}

static bool cmd_known(uint32_t cmd)
{
	return cmd <= DEVMIG_CMD_MAX && cmd_names[cmd] != NULL;
}

void devmig_wire_limits_default(struct devmig_wire_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->role = DEVMIG_WIRE_ROLE_ANY;
	lim->max_msg_size = DEVMIG_DEFAULT_MAX_MSG_SIZE;
	lim->max_data_xfer_size = DEVMIG_DEFAULT_MAX_DATA_XFER;
	lim->max_msg_fds = DEVMIG_DEFAULT_MAX_MSG_FDS;
	lim->num_regions = 9;
	lim->num_irqs = 5;
	lim->dma_pgsize = DEVMIG_DEFAULT_PGSIZES;
}

/* ---- header ---- */

/* The header rules shared by decoder and encoder (not the sizes). */
static enum devmig_wire_err hdr_flags_check(const struct devmig_hdr *h)
{
	uint32_t type = h->flags & DEVMIG_HDR_TYPE_MASK;

	if (type != DEVMIG_HDR_TYPE_COMMAND && type != DEVMIG_HDR_TYPE_REPLY)
		return E(HDR_FLAGS);
	if (h->flags & ~(DEVMIG_HDR_TYPE_MASK | DEVMIG_HDR_NO_REPLY | DEVMIG_HDR_ERROR))
		return E(HDR_FLAGS);
	if (type == DEVMIG_HDR_TYPE_COMMAND && ((h->flags & DEVMIG_HDR_ERROR) || h->error_no != 0))
		return E(HDR_FLAGS);
	if (type == DEVMIG_HDR_TYPE_REPLY && (h->flags & DEVMIG_HDR_NO_REPLY))
		return E(HDR_FLAGS);
	return OK;
}

enum devmig_wire_err devmig_decode_hdr(const void *buf, size_t len,
				       const struct devmig_wire_limits *lim,
				       struct devmig_hdr *out)
{
	struct devmig_wire_limits def;

	if (!lim) {
		devmig_wire_limits_default(&def);
		lim = &def;
	}
	if (len < DEVMIG_HDR_SIZE)
		return E(SHORT);
	memcpy(out, buf, sizeof(*out));
	if (out->msg_size < DEVMIG_HDR_SIZE)
		return E(MSG_SIZE);
	if (out->msg_size > lim->max_msg_size)
		return E(TOO_BIG);
	return hdr_flags_check(out);
}

/* ---- per-command decoders: p/plen is the payload after the header ---- */

static enum devmig_wire_err no_fds(unsigned nfds)
{
	return nfds ? E(FDS) : OK;
}

static enum devmig_wire_err dec_version(const uint8_t *p, size_t plen, unsigned nfds,
					struct devmig_msg *out)
{
	if (plen < sizeof(out->u.version.v))
		return E(SHORT);
	memcpy(&out->u.version.v, p, sizeof(out->u.version.v));
	if (plen > sizeof(out->u.version.v)) {
		const char *json = (const char *)p + sizeof(out->u.version.v);
		size_t jlen = plen - sizeof(out->u.version.v);

		if (json[jlen - 1] != '\0' || memchr(json, '\0', jlen - 1))
			return E(JSON);
		out->u.version.json = json;
		out->u.version.json_len = jlen - 1;
	}
	return no_fds(nfds);
}

static enum devmig_wire_err dec_dma_map(const uint8_t *p, size_t plen, bool reply,
					unsigned nfds, const struct devmig_wire_limits *lim,
					struct devmig_msg *out)
{
	struct devmig_dma_map *d = &out->u.dma_map;
	enum devmig_wire_err err;
	uint64_t pg;

	if (reply) {
		if ((err = devmig__exact(plen, 0)))
			return err;
		return no_fds(nfds);
	}
	if ((err = devmig__exact(plen, sizeof(*d))))
		return err;
	memcpy(d, p, sizeof(*d));
	if (d->argsz != sizeof(*d))
		return E(ARGSZ);
	if (d->flags & ~(DEVMIG_DMA_READ | DEVMIG_DMA_WRITE))
		return E(FIELD);
	if (d->size == 0)
		return E(FIELD);
	if (devmig__wraps64(d->addr, d->size) || devmig__wraps64(d->offset, d->size))
		return E(OVERFLOW);
	pg = lim->dma_pgsize ? lim->dma_pgsize : DEVMIG_MIN_PAGE_SIZE;
	if (d->addr % pg || d->size % pg || d->offset % pg)
		return E(ALIGN);
	if (nfds > 1)
		return E(FDS);
	if (nfds == 0 && d->offset != 0)
		return E(FIELD);
	return OK;
}

static enum devmig_wire_err dec_dma_unmap(const uint8_t *p, size_t plen, unsigned nfds,
					  struct devmig_msg *out)
{
	struct devmig_dma_unmap *d = &out->u.dma_unmap;
	enum devmig_wire_err err;

	/* The reply echoes the request: same layout, same rules. */
	if ((err = devmig__exact(plen, sizeof(*d))))
		return err;
	memcpy(d, p, sizeof(*d));
	if (d->argsz < sizeof(*d))
		return E(ARGSZ);
	if (d->flags == DEVMIG_DMA_UNMAP_ALL) {
		/* Every mapping: the kernel's rule, addr and size zero. */
		if (d->addr || d->size)
			return E(FIELD);
		return no_fds(nfds);
	}
	if (d->flags != 0 || d->size == 0)
		return E(FIELD);
	if (devmig__wraps64(d->addr, d->size))
		return E(OVERFLOW);
	return no_fds(nfds);
}

static enum devmig_wire_err dec_device_info(const uint8_t *p, size_t plen, bool reply,
					    unsigned nfds, struct devmig_msg *out)
{
	struct devmig_device_info *d = &out->u.device_info;
	enum devmig_wire_err err;

	if ((err = devmig__exact(plen, sizeof(*d))))
		return err;
	memcpy(d, p, sizeof(*d));
	if (d->argsz < sizeof(*d))
		return E(ARGSZ);
	if (!reply && (d->flags || d->num_regions || d->num_irqs))
		return E(FIELD);
	return no_fds(nfds);
}

/* Walk the region info capability chain starting at offset first. */
static enum devmig_wire_err walk_region_caps(const uint8_t *p, size_t plen, uint32_t first)
{
	uint64_t off = first;

	if (off < sizeof(struct devmig_region_info))
		return E(FIELD);
	for (;;) {
		struct devmig_info_cap_hdr h;

		if (off > plen || plen - off < sizeof(h))
			return E(FIELD);
		memcpy(&h, p + off, sizeof(h));
		if (h.id == REGION_INFO_CAP_SPARSE_MMAP) {
			uint32_t nr_areas;
			uint64_t room;

			/* u32 nr_areas, u32 reserved, then the areas. */
			if (plen - off - sizeof(h) < 8)
				return E(FIELD);
			memcpy(&nr_areas, p + off + sizeof(h), sizeof(nr_areas));
			room = plen - off - sizeof(h) - 8;
			if (room / sizeof(struct devmig_sparse_mmap_area) < nr_areas)
				return E(FIELD);
		}
		if (h.next == 0)
			return OK;
		if (h.next <= off)
			return E(FIELD); /* backwards or self: a loop */
		off = h.next;
	}
}

static enum devmig_wire_err dec_region_info(const uint8_t *p, size_t plen, bool reply,
					    unsigned nfds, const struct devmig_wire_limits *lim,
					    struct devmig_msg *out)
{
	struct devmig_region_info *r = &out->u.region_info.info;
	enum devmig_wire_err err;

	if (!reply) {
		/* libvfio-user's client sends its whole argsz buffer: like the
		 * kernel's ioctl, read the 32 bytes needed and ignore the rest. */
		if (plen < sizeof(*r))
			return E(SHORT);
		memcpy(r, p, sizeof(*r));
		if (r->argsz < sizeof(*r))
			return E(ARGSZ);
		if (plen > r->argsz)
			return E(MSG_SIZE);
		if (r->index >= lim->num_regions)
			return E(INDEX);
		if (r->flags || r->cap_offset || r->size || r->offset)
			return E(FIELD);
		return no_fds(nfds);
	}
	if (plen < sizeof(*r))
		return E(SHORT);
	memcpy(r, p, sizeof(*r));
	if (r->argsz < sizeof(*r))
		return E(ARGSZ);
	if ((r->flags & REGION_INFO_FLAG_CAPS) && r->cap_offset != 0) {
		if ((err = walk_region_caps(p, plen, r->cap_offset)))
			return err;
	}
	if (plen > sizeof(*r)) {
		out->u.region_info.caps = p + sizeof(*r);
		out->u.region_info.caps_len = plen - sizeof(*r);
	}
	if (nfds > ((r->flags & REGION_INFO_FLAG_MMAP) ? 1u : 0u))
		return E(FDS);
	return OK;
}

static enum devmig_wire_err dec_io_fds(const uint8_t *p, size_t plen, bool reply,
				       unsigned nfds, const struct devmig_wire_limits *lim,
				       struct devmig_msg *out)
{
	struct devmig_region_io_fds *io = &out->u.io_fds.io;
	enum devmig_wire_err err;
	uint64_t need;

	if (!reply) {
		if ((err = devmig__exact(plen, sizeof(*io))))
			return err;
		memcpy(io, p, sizeof(*io));
		if (io->argsz < sizeof(*io))
			return E(ARGSZ);
		if (io->flags || io->count)
			return E(FIELD);
		if (io->index >= lim->num_regions)
			return E(INDEX);
		return no_fds(nfds);
	}
	if (plen < sizeof(*io))
		return E(SHORT);
	memcpy(io, p, sizeof(*io));
	if (io->argsz < sizeof(*io))
		return E(ARGSZ);
	if (plen == sizeof(*io))
		return no_fds(nfds); /* argsz was too small: entries omitted */
	need = sizeof(*io) + (uint64_t)io->count * SUB_REGION_IO_FD_SIZE;
	if ((err = devmig__exact(plen, need)))
		return err;
	/* Every fd must be used by some entry, so at most count of them. */
	if (nfds == 0 || nfds > io->count)
		return E(FDS);
	for (uint32_t i = 0; i < io->count; i++) {
		uint32_t fd_index;

		memcpy(&fd_index, p + sizeof(*io) + (size_t)i * SUB_REGION_IO_FD_SIZE +
			       offsetof(struct devmig_sub_region_io_fd, fd_index),
		       sizeof(fd_index));
		if (fd_index >= nfds)
			return E(FDS);
	}
	out->u.io_fds.subs = p + sizeof(*io);
	out->u.io_fds.subs_len = plen - sizeof(*io);
	return OK;
}

static enum devmig_wire_err dec_irq_info(const uint8_t *p, size_t plen, bool reply,
					 unsigned nfds, const struct devmig_wire_limits *lim,
					 struct devmig_msg *out)
{
	struct devmig_irq_info *q = &out->u.irq_info;
	enum devmig_wire_err err;

	if ((err = devmig__exact(plen, sizeof(*q))))
		return err;
	memcpy(q, p, sizeof(*q));
	if (q->argsz < sizeof(*q))
		return E(ARGSZ);
	if (!reply) {
		if (q->flags || q->count)
			return E(FIELD);
		if (q->index >= lim->num_irqs)
			return E(INDEX);
	}
	return no_fds(nfds);
}

static enum devmig_wire_err dec_set_irqs(const uint8_t *p, size_t plen, bool reply,
					 unsigned nfds, const struct devmig_wire_limits *lim,
					 struct devmig_msg *out)
{
	struct devmig_irq_set *s = &out->u.irq_set.set;
	enum devmig_wire_err err;
	uint32_t data, action;

	if (reply) {
		if ((err = devmig__exact(plen, 0)))
			return err;
		return no_fds(nfds);
	}
	if (plen < sizeof(*s))
		return E(SHORT);
	memcpy(s, p, sizeof(*s));
	if (s->argsz != plen)
		return E(ARGSZ);
	data = s->flags & IRQ_DATA_MASK;
	action = s->flags & IRQ_ACTION_MASK;
	if ((s->flags & ~(IRQ_DATA_MASK | IRQ_ACTION_MASK)) ||
	    __builtin_popcount(data) != 1 || __builtin_popcount(action) != 1)
		return E(FIELD);
	if (s->index >= lim->num_irqs)
		return E(INDEX);
	if (devmig__wraps32(s->start, s->count))
		return E(OVERFLOW);
	if (s->count == 0 && !(data == IRQ_DATA_NONE && s->start == 0))
		return E(COUNT);
	if (data == IRQ_DATA_BOOL) {
		if ((err = devmig__exact(plen, sizeof(*s) + (uint64_t)s->count)))
			return err;
		out->u.irq_set.bools = p + sizeof(*s);
	} else if ((err = devmig__exact(plen, sizeof(*s)))) {
		return err;
	}
	if (data == IRQ_DATA_EVENTFD) {
		if (nfds > lim->max_msg_fds)
			return E(FDS);
		if (nfds != 0 && nfds != s->count)
			return E(FDS);
		return OK;
	}
	return no_fds(nfds);
}

static enum devmig_wire_err dec_region_rw(const uint8_t *p, size_t plen, bool with_data,
					  unsigned nfds, const struct devmig_wire_limits *lim,
					  struct devmig_msg *out)
{
	struct devmig_region_access *a = &out->u.region.acc;
	enum devmig_wire_err err;

	if (plen < sizeof(*a))
		return E(SHORT);
	memcpy(a, p, sizeof(*a));
	if (a->region >= lim->num_regions)
		return E(INDEX);
	if (a->count == 0 || a->count > lim->max_data_xfer_size)
		return E(COUNT);
	if (devmig__wraps64(a->offset, a->count))
		return E(OVERFLOW);
	if ((err = devmig__exact(plen, sizeof(*a) + (with_data ? (uint64_t)a->count : 0))))
		return err;
	if (with_data)
		out->u.region.data = p + sizeof(*a);
	return no_fds(nfds);
}

static enum devmig_wire_err dec_dma_rw(const uint8_t *p, size_t plen, bool with_data,
				       unsigned nfds, const struct devmig_wire_limits *lim,
				       struct devmig_msg *out)
{
	struct devmig_dma_access *a = &out->u.dma.acc;
	enum devmig_wire_err err;

	if (plen < sizeof(*a))
		return E(SHORT);
	memcpy(a, p, sizeof(*a));
	if (a->count == 0 || a->count > lim->max_data_xfer_size)
		return E(COUNT);
	if (devmig__wraps64(a->addr, a->count))
		return E(OVERFLOW);
	if ((err = devmig__exact(plen, sizeof(*a) + (with_data ? a->count : 0))))
		return err;
	if (with_data)
		out->u.dma.data = p + sizeof(*a);
	return no_fds(nfds);
}

static enum devmig_wire_err dec_write_multi(const uint8_t *p, size_t plen, bool reply,
					    unsigned nfds, const struct devmig_wire_limits *lim,
					    struct devmig_msg *out)
{
	uint64_t n;
	enum devmig_wire_err err;

	if (reply) {
		if ((err = devmig__exact(plen, sizeof(n))))
			return err;
		memcpy(&out->u.write_multi.wr_cnt, p, sizeof(n));
		return no_fds(nfds);
	}
	if (plen < sizeof(n))
		return E(SHORT);
	memcpy(&n, p, sizeof(n));
	out->u.write_multi.wr_cnt = n;
	if (n == 0)
		return E(COUNT);
	if (n > DEVMIG_MULTI_MAX)
		return E(TOO_MANY);
	if ((err = devmig__exact(plen, sizeof(n) + n * WRITE_ONE_SIZE)))
		return err;
	for (uint64_t i = 0; i < n; i++) {
		struct devmig_write_one w;

		memcpy(&w, p + sizeof(n) + i * WRITE_ONE_SIZE, sizeof(w));
		if (w.region >= lim->num_regions)
			return E(INDEX);
		if (w.count == 0 || w.count > DEVMIG_MULTI_DATA)
			return E(COUNT);
		if (devmig__wraps64(w.offset, w.count))
			return E(OVERFLOW);
	}
	out->u.write_multi.wrs = p + sizeof(n);
	return no_fds(nfds);
}

static enum devmig_wire_err dec_mig_data(const uint8_t *p, size_t plen, bool read, bool reply,
					 unsigned nfds, const struct devmig_wire_limits *lim,
					 struct devmig_msg *out)
{
	struct devmig_mig_data *md = &out->u.mig_data.md;
	enum devmig_wire_err err;

	if (!read && reply) { /* MIG_DATA_WRITE reply: empty */
		if ((err = devmig__exact(plen, 0)))
			return err;
		return no_fds(nfds);
	}
	if (plen < sizeof(*md))
		return E(SHORT);
	memcpy(md, p, sizeof(*md));
	if (read && reply) {
		/* size may be below the request's (no more data now), even 0; the
		 * message may be padded past the data to the size asked for. */
		if (md->size > lim->max_data_xfer_size)
			return E(COUNT);
		if (plen < sizeof(*md) + (uint64_t)md->size)
			return E(SHORT);
		if (md->argsz != sizeof(*md) + (uint64_t)md->size)
			return E(ARGSZ);
		out->u.mig_data.pad = plen - sizeof(*md) - md->size;
		if (out->u.mig_data.pad > lim->max_data_xfer_size)
			return E(MSG_SIZE); /* more than any request could have asked */
		if (md->size)
			out->u.mig_data.data = p + sizeof(*md);
		return no_fds(nfds);
	}
	if (md->size == 0 || md->size > lim->max_data_xfer_size)
		return E(COUNT);
	if ((err = devmig__exact(plen, sizeof(*md) + (read ? 0 : (uint64_t)md->size))))
		return err;
	if ((uint64_t)md->argsz < sizeof(*md) + (uint64_t)md->size)
		return E(ARGSZ);
	if (!read)
		out->u.mig_data.data = p + sizeof(*md);
	return no_fds(nfds);
}

/* Fixed bytes before the bulk data of a message that ends in some, else 0. */
static size_t bulk_fixed_len(uint32_t cmd, bool reply)
{
	switch (cmd) {
	case DEVMIG_CMD_REGION_READ:
	case DEVMIG_CMD_DMA_READ:
		return reply ? sizeof(struct devmig_region_access) : 0;
	case DEVMIG_CMD_REGION_WRITE:
	case DEVMIG_CMD_DMA_WRITE:
		return reply ? 0 : sizeof(struct devmig_region_access);
	case DEVMIG_CMD_MIG_DATA_READ:
		return reply ? sizeof(struct devmig_mig_data) : 0;
	case DEVMIG_CMD_MIG_DATA_WRITE:
		return reply ? 0 : sizeof(struct devmig_mig_data);
	}
	return 0;
}

enum devmig_wire_err devmig_decode_head(const void *buf, size_t len, size_t msg_len,
					unsigned nfds, const struct devmig_wire_limits *lim,
					struct devmig_msg *out)
{
	struct devmig_hdr h;
	enum devmig_wire_err err;

	if (len == msg_len)
		return devmig_decode(buf, len, nfds, lim, out);
	memset(out, 0, sizeof(*out));
	if ((err = devmig_decode_hdr(buf, len, lim, &h)))
		return err;
	bool reply = (h.flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_REPLY;
	size_t fixed = (h.flags & DEVMIG_HDR_ERROR) ? 0 : bulk_fixed_len(h.cmd, reply);
	if (!fixed || msg_len != h.msg_size || len != DEVMIG_HDR_SIZE + fixed || len > msg_len)
		return E(MSG_SIZE);
	/*
	 * The decoders of these messages read only the fixed part and check
	 * the bulk length arithmetically, so the missing bytes are never read.
	 */
	err = devmig_decode(buf, msg_len, nfds, lim, out);
	switch (h.cmd) {
	case DEVMIG_CMD_REGION_READ:
	case DEVMIG_CMD_REGION_WRITE:
		out->u.region.data = NULL;
		break;
	case DEVMIG_CMD_DMA_READ:
	case DEVMIG_CMD_DMA_WRITE:
		out->u.dma.data = NULL;
		break;
	default:
		out->u.mig_data.data = NULL;
	}
	return err;
}

enum devmig_wire_err devmig_decode(const void *buf, size_t len, unsigned nfds,
				   const struct devmig_wire_limits *lim,
				   struct devmig_msg *out)
{
	struct devmig_wire_limits def;
	enum devmig_wire_err err;
	const uint8_t *p;
	size_t plen;
	bool reply, s2c;
	uint32_t cmd;

	if (!lim) {
		devmig_wire_limits_default(&def);
		lim = &def;
	}
	memset(out, 0, sizeof(*out));
	if ((err = devmig_decode_hdr(buf, len, lim, &out->hdr)))
		return err;
	if (len != out->hdr.msg_size)
		return E(MSG_SIZE);
	cmd = out->hdr.cmd;
	if (!cmd_known(cmd))
		return E(UNKNOWN_CMD);
	reply = (out->hdr.flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_REPLY;
	s2c = cmd == DEVMIG_CMD_DMA_READ || cmd == DEVMIG_CMD_DMA_WRITE;
	/* A server receives client commands and replies to its own commands. */
	if (lim->role == DEVMIG_WIRE_ROLE_SERVER && reply != s2c)
		return E(DIRECTION);
	if (lim->role == DEVMIG_WIRE_ROLE_CLIENT && reply == s2c)
		return E(DIRECTION);

	p = (const uint8_t *)buf + DEVMIG_HDR_SIZE;
	plen = len - DEVMIG_HDR_SIZE;
	if (reply && (out->hdr.flags & DEVMIG_HDR_ERROR)) {
		/* The errno is in the header; a payload (libvfio-user sends the
		 * request's echo with some errors) is ignored, but for a deadline
		 * refusal's outcome. */
		if ((err = no_fds(nfds)))
			return err;
		if (cmd == DEVMIG_CMD_DEVICE_FEATURE)
			devmig__decode_feature_error(p, plen, lim, out);
		return OK;
	}

	switch (cmd) {
	case DEVMIG_CMD_VERSION:
		return dec_version(p, plen, nfds, out);
	case DEVMIG_CMD_DMA_MAP:
		return dec_dma_map(p, plen, reply, nfds, lim, out);
	case DEVMIG_CMD_DMA_UNMAP:
		return dec_dma_unmap(p, plen, nfds, out);
	case DEVMIG_CMD_DEVICE_GET_INFO:
		return dec_device_info(p, plen, reply, nfds, out);
	case DEVMIG_CMD_DEVICE_GET_REGION_INFO:
		return dec_region_info(p, plen, reply, nfds, lim, out);
	case DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS:
		return dec_io_fds(p, plen, reply, nfds, lim, out);
	case DEVMIG_CMD_DEVICE_GET_IRQ_INFO:
		return dec_irq_info(p, plen, reply, nfds, lim, out);
	case DEVMIG_CMD_DEVICE_SET_IRQS:
		return dec_set_irqs(p, plen, reply, nfds, lim, out);
	case DEVMIG_CMD_REGION_READ:
		return dec_region_rw(p, plen, reply, nfds, lim, out);
	case DEVMIG_CMD_REGION_WRITE:
		return dec_region_rw(p, plen, !reply, nfds, lim, out);
	case DEVMIG_CMD_DMA_READ:
		return dec_dma_rw(p, plen, reply, nfds, lim, out);
	case DEVMIG_CMD_DMA_WRITE:
		return dec_dma_rw(p, plen, !reply, nfds, lim, out);
	case DEVMIG_CMD_DEVICE_RESET:
		if ((err = devmig__exact(plen, 0)))
			return err;
		return no_fds(nfds);
	case DEVMIG_CMD_REGION_WRITE_MULTI:
		return dec_write_multi(p, plen, reply, nfds, lim, out);
	case DEVMIG_CMD_DEVICE_FEATURE:
		return devmig__decode_feature(p, plen, reply, nfds, lim, out);
	case DEVMIG_CMD_MIG_DATA_READ:
		return dec_mig_data(p, plen, true, reply, nfds, lim, out);
	case DEVMIG_CMD_MIG_DATA_WRITE:
		return dec_mig_data(p, plen, false, reply, nfds, lim, out);
	}
	return E(UNKNOWN_CMD);
}

unsigned devmig_msg_fds_expected(const struct devmig_msg *m)
{
	bool reply = (m->hdr.flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_REPLY;

	if (reply && (m->hdr.flags & DEVMIG_HDR_ERROR))
		return 0;
	switch (m->hdr.cmd) {
	case DEVMIG_CMD_DMA_MAP:
		return reply ? 0 : 1;
	case DEVMIG_CMD_DEVICE_SET_IRQS:
		if (!reply && (m->u.irq_set.set.flags & IRQ_DATA_EVENTFD))
			return m->u.irq_set.set.count;
		return 0;
	case DEVMIG_CMD_DEVICE_GET_REGION_INFO:
		return reply && (m->u.region_info.info.flags & REGION_INFO_FLAG_MMAP) ? 1 : 0;
	case DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS:
		return reply ? (unsigned)(m->u.io_fds.subs_len / SUB_REGION_IO_FD_SIZE) : 0;
	case DEVMIG_CMD_DEVICE_FEATURE:
		/* the data_fd extension's data fd */
		return reply && m->u.feature.index == DEVMIG_FEATURE_MIG_DEVICE_STATE &&
		       (m->u.feature.f.flags & (DEVMIG_FEATURE_GET | DEVMIG_FEATURE_SET |
						DEVMIG_FEATURE_PROBE)) == DEVMIG_FEATURE_SET;
	default:
		return 0;
	}
}

void devmig_write_multi_entry(const struct devmig_msg *m, uint64_t i, struct devmig_write_one *out)
{
	if (!m->u.write_multi.wrs || i >= m->u.write_multi.wr_cnt) {
		memset(out, 0, sizeof(*out));
		return;
	}
	memcpy(out, m->u.write_multi.wrs + i * WRITE_ONE_SIZE, sizeof(*out));
}

void devmig_log_range(const struct devmig_msg *m, uint32_t i, struct devmig_dma_logging_range *out)
{
	const uint8_t *r = m->u.feature.u.log_start.ranges;

	if (!r || i >= m->u.feature.u.log_start.ctl.num_ranges) {
		memset(out, 0, sizeof(*out));
		return;
	}
	memcpy(out, r + (size_t)i * sizeof(*out), sizeof(*out));
}

uint64_t devmig_log_bitmap_size(uint64_t length, uint64_t page_size)
{
	uint64_t pages;

	if (page_size == 0)
		return 0;
	pages = length / page_size + (length % page_size != 0);
	return (pages / 64 + (pages % 64 != 0)) * sizeof(uint64_t);
}

/* ---- encoding ---- */

/* NULL with a non-zero length is a message inconsistent with itself. */
static enum devmig_wire_err need_ptr(const void *p, uint64_t n)
{
	return (n && !p) ? E(FIELD) : OK;
}

static enum devmig_wire_err plan_msg(const struct devmig_msg *m, struct devmig__plan *pl,
				     bool head_only)
{
	const struct devmig_hdr *h = &m->hdr;
	bool reply = (h->flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_REPLY;
	enum devmig_wire_err err;

	memset(pl, 0, sizeof(*pl));
	pl->head_only = head_only;
	if ((err = hdr_flags_check(h)))
		return err;
	if (!cmd_known(h->cmd))
		return E(UNKNOWN_CMD);
	if (reply && (h->flags & DEVMIG_HDR_ERROR))
		return OK; /* the header alone */

	switch (h->cmd) {
	case DEVMIG_CMD_VERSION: {
		const char *json = m->u.version.json;
		size_t jlen = m->u.version.json_len;

		devmig__plan_add(pl, &m->u.version.v, sizeof(m->u.version.v));
		if ((err = need_ptr(json, jlen)))
			return err;
		if (json) {
			if (memchr(json, '\0', jlen))
				return E(FIELD);
			devmig__plan_add(pl, json, jlen);
			devmig__plan_add(pl, "", 1);
		}
		return OK;
	}
	case DEVMIG_CMD_DMA_MAP:
		if (!reply)
			devmig__plan_add(pl, &m->u.dma_map, sizeof(m->u.dma_map));
		return OK;
	case DEVMIG_CMD_DMA_UNMAP:
		devmig__plan_add(pl, &m->u.dma_unmap, sizeof(m->u.dma_unmap));
		return OK;
	case DEVMIG_CMD_DEVICE_GET_INFO:
		devmig__plan_add(pl, &m->u.device_info, sizeof(m->u.device_info));
		return OK;
	case DEVMIG_CMD_DEVICE_GET_REGION_INFO:
		devmig__plan_add(pl, &m->u.region_info.info, sizeof(m->u.region_info.info));
		if (reply) {
			if ((err = need_ptr(m->u.region_info.caps, m->u.region_info.caps_len)))
				return err;
			devmig__plan_add(pl, m->u.region_info.caps, m->u.region_info.caps_len);
		}
		return OK;
	case DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS:
		devmig__plan_add(pl, &m->u.io_fds.io, sizeof(m->u.io_fds.io));
		if (reply) {
			size_t n = m->u.io_fds.subs_len;

			if ((err = need_ptr(m->u.io_fds.subs, n)))
				return err;
			if (n && n != (uint64_t)m->u.io_fds.io.count * SUB_REGION_IO_FD_SIZE)
				return E(FIELD);
			devmig__plan_add(pl, m->u.io_fds.subs, n);
		}
		return OK;
	case DEVMIG_CMD_DEVICE_GET_IRQ_INFO:
		devmig__plan_add(pl, &m->u.irq_info, sizeof(m->u.irq_info));
		return OK;
	case DEVMIG_CMD_DEVICE_SET_IRQS:
		if (reply)
			return OK;
		devmig__plan_add(pl, &m->u.irq_set.set, sizeof(m->u.irq_set.set));
		if (m->u.irq_set.set.flags & IRQ_DATA_BOOL) {
			if ((err = need_ptr(m->u.irq_set.bools, m->u.irq_set.set.count)))
				return err;
			devmig__plan_add(pl, m->u.irq_set.bools, m->u.irq_set.set.count);
		}
		return OK;
	case DEVMIG_CMD_REGION_READ:
	case DEVMIG_CMD_REGION_WRITE:
		devmig__plan_add(pl, &m->u.region.acc, sizeof(m->u.region.acc));
		if (reply == (h->cmd == DEVMIG_CMD_REGION_READ)) {
			if (!devmig__plan_tail(pl, m->u.region.data, m->u.region.acc.count))
				return E(FIELD);
		}
		return OK;
	case DEVMIG_CMD_DMA_READ:
	case DEVMIG_CMD_DMA_WRITE:
		devmig__plan_add(pl, &m->u.dma.acc, sizeof(m->u.dma.acc));
		if (reply == (h->cmd == DEVMIG_CMD_DMA_READ)) {
			if (m->u.dma.acc.count > UINT32_MAX)
				return E(TOO_BIG);
			if (!devmig__plan_tail(pl, m->u.dma.data, (size_t)m->u.dma.acc.count))
				return E(FIELD);
		}
		return OK;
	case DEVMIG_CMD_DEVICE_RESET:
		return OK;
	case DEVMIG_CMD_REGION_WRITE_MULTI:
		devmig__plan_add(pl, &m->u.write_multi.wr_cnt, sizeof(m->u.write_multi.wr_cnt));
		if (!reply) {
			uint64_t n = m->u.write_multi.wr_cnt;

			if (n > UINT32_MAX / WRITE_ONE_SIZE)
				return E(TOO_BIG);
			if ((err = need_ptr(m->u.write_multi.wrs, n)))
				return err;
			devmig__plan_add(pl, m->u.write_multi.wrs, (size_t)n * WRITE_ONE_SIZE);
		}
		return OK;
	case DEVMIG_CMD_DEVICE_FEATURE:
		return devmig__plan_feature(m, reply, pl);
	case DEVMIG_CMD_MIG_DATA_READ:
	case DEVMIG_CMD_MIG_DATA_WRITE:
		if (reply && h->cmd == DEVMIG_CMD_MIG_DATA_WRITE)
			return OK;
		devmig__plan_add(pl, &m->u.mig_data.md, sizeof(m->u.mig_data.md));
		if (reply == (h->cmd == DEVMIG_CMD_MIG_DATA_READ)) {
			if (!devmig__plan_tail(pl, m->u.mig_data.data, m->u.mig_data.md.size))
				return E(FIELD);
			if (reply) {
				if (m->u.mig_data.pad > UINT32_MAX)
					return E(TOO_BIG);
				pl->pad = m->u.mig_data.pad;
			}
		}
		return OK;
	}
	return E(UNKNOWN_CMD);
}

/* Plan m and size it: *head (header + head segments) and *total (msg_size). */
static enum devmig_wire_err plan_sized(const struct devmig_msg *m, struct devmig__plan *pl,
				       uint64_t *head, uint64_t *total, bool head_only)
{
	enum devmig_wire_err err;

	if ((err = plan_msg(m, pl, head_only)))
		return err;
	*head = DEVMIG_HDR_SIZE;
	for (unsigned i = 0; i < pl->nseg; i++)
		*head += pl->seg[i].n; /* each segment is bounded far below 2^64 */
	*total = *head + pl->tail_len + pl->pad;
	if (*total > UINT32_MAX)
		return E(TOO_BIG);
	return OK;
}

/* Write the header (msg_size = total) and the head segments. */
static void write_head(uint8_t *o, const struct devmig_msg *m, const struct devmig__plan *pl,
		       uint64_t total)
{
	struct devmig_hdr h = m->hdr;

	h.msg_size = (uint32_t)total;
	memcpy(o, &h, sizeof(h));
	o += sizeof(h);
	for (unsigned i = 0; i < pl->nseg; i++) {
		if (pl->seg[i].n) {
			memcpy(o, pl->seg[i].p, pl->seg[i].n);
			o += pl->seg[i].n;
		}
	}
}

static size_t fail(enum devmig_wire_err *err, enum devmig_wire_err e)
{
	if (err)
		*err = e;
	return 0;
}

size_t devmig_encode(void *buf, size_t cap, const struct devmig_msg *m,
		     enum devmig_wire_err *err)
{
	struct devmig__plan pl;
	uint64_t head, total;
	enum devmig_wire_err e;

	if ((e = plan_sized(m, &pl, &head, &total, false)))
		return fail(err, e);
	if (total > cap)
		return fail(err, E(NOSPC));
	write_head(buf, m, &pl, total);
	if (pl.tail_len)
		memcpy((uint8_t *)buf + head, pl.tail, pl.tail_len);
	if (pl.pad)
		memset((uint8_t *)buf + head + pl.tail_len, 0, pl.pad);
	if (err)
		*err = OK;
	return (size_t)total;
}

size_t devmig_encode_head(void *buf, size_t cap, const struct devmig_msg *m,
			  const void **tail, size_t *tail_len,
			  enum devmig_wire_err *err)
{
	struct devmig__plan pl;
	uint64_t head, total;
	enum devmig_wire_err e;

	*tail = NULL;
	*tail_len = 0;
	if ((e = plan_sized(m, &pl, &head, &total, true)))
		return fail(err, e);
	if (head > cap)
		return fail(err, E(NOSPC));
	write_head(buf, m, &pl, total);
	if (pl.tail_len) {
		*tail = pl.tail;
		*tail_len = pl.tail_len;
	}
	if (err)
		*err = OK;
	return (size_t)head;
}

void devmig_encode_error_reply(struct devmig_hdr *out, const struct devmig_hdr *req_hdr,
			       int error_no)
{
	struct devmig_hdr h;

	memset(&h, 0, sizeof(h));
	h.msg_id = req_hdr->msg_id;
	h.cmd = req_hdr->cmd;
	h.msg_size = DEVMIG_HDR_SIZE;
	h.flags = DEVMIG_HDR_TYPE_REPLY | DEVMIG_HDR_ERROR;
	h.error_no = (uint32_t)error_no;
	*out = h;
}
