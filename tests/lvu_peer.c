/* SPDX-License-Identifier: MIT */
/* A vfio-user server with libvfio-user's personality, for tests: see lvu_peer.h. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "devmig/migration.h"
#include "devmig/wire.h"
#include "lvu_peer.h"
#include "msgio.h"

#define BLOCK 4096u
#define NREGIONS 9u
#define NIRQS 5u
#define BAR0_SIZE 4096u
#define CFG_SIZE 256u
#define MAX_MAPS 16u
#define XFER_MAX (1u << 20)
#define MSG_MAX (XFER_MAX + 4096u)

enum { REC_BAR1 = 1, REC_REGS = 2, REC_END = 3 };
#define REC_HDR 12u

/* VFIO_IRQ_SET_* */
#define IRQ_DATA_NONE (1u << 0)
#define IRQ_DATA_EVENTFD (1u << 2)
#define IRQ_ACTION_TRIGGER (1u << 5)

struct map {
	uint64_t iova, size;
	uint8_t *va;
	uint32_t prot;
	uint64_t *dirty; /* one bit per page while logging */
};

struct lvu_peer {
	struct lvu_peer_config cfg;
	char path[108];
	int listen_fd;
	pthread_t thread;
	atomic_bool stopping;

	pthread_mutex_t lock; /* everything below */
	pthread_cond_t idle_cv;
	int sock;             /* the client, -1 */
	uint8_t config[CFG_SIZE];
	uint32_t scratch, dma_addr;
	uint8_t *bar1;
	uint8_t *bar1_dirty;  /* per block: written since the last pre-copy pass */
	int intx_fd;
	struct map maps[MAX_MAPS];
	unsigned nmaps;
	bool logging;

	int state;            /* enum devmig_state */
	uint8_t *out;         /* the save stream: built, then read */
	size_t out_len, out_pos, out_cap;
	bool precopied;       /* the whole of BAR1 went out in PRE_COPY */
	uint8_t *in;          /* the load stream */
	size_t in_len, in_cap;

	uint8_t *txbuf;       /* one message out (MSG_MAX + 4096) */
	uint8_t *data;        /* region data, REPORT answers (XFER_MAX) */

	enum lvu_fault fault;
	uint32_t fault_arg;
	unsigned reads, writes; /* MIG_DATA_READ/WRITE counts, for faults */
	struct lvu_peer_stats st;
};

/* ---- libvfio-user's state machine: its transitions and next hops ---- */

static bool direct_arc(int from, int to)
{
	switch (from) {
	case DEVMIG_STATE_STOP:
		return to == DEVMIG_STATE_RUNNING || to == DEVMIG_STATE_STOP_COPY ||
		       to == DEVMIG_STATE_RESUMING;
	case DEVMIG_STATE_RUNNING:
		return to == DEVMIG_STATE_STOP || to == DEVMIG_STATE_PRE_COPY;
	case DEVMIG_STATE_STOP_COPY:
	case DEVMIG_STATE_RESUMING:
		return to == DEVMIG_STATE_STOP;
	case DEVMIG_STATE_PRE_COPY:
		return to == DEVMIG_STATE_RUNNING || to == DEVMIG_STATE_STOP_COPY;
	}
	return false;
}

/* The next hop towards req, or ERROR when there is none. */
static int next_hop(int cur, int req)
{
	if (cur == req)
		return cur;
	if (direct_arc(cur, req))
		return req;
	switch (cur) {
	case DEVMIG_STATE_STOP:
		return req == DEVMIG_STATE_PRE_COPY ? DEVMIG_STATE_RUNNING : DEVMIG_STATE_ERROR;
	case DEVMIG_STATE_RUNNING:
		return req == DEVMIG_STATE_STOP_COPY || req == DEVMIG_STATE_RESUMING
			       ? DEVMIG_STATE_STOP
			       : DEVMIG_STATE_ERROR;
	case DEVMIG_STATE_STOP_COPY:
		return req == DEVMIG_STATE_RUNNING || req == DEVMIG_STATE_RESUMING
			       ? DEVMIG_STATE_STOP
			       : DEVMIG_STATE_ERROR;
	case DEVMIG_STATE_RESUMING:
		return req == DEVMIG_STATE_RUNNING || req == DEVMIG_STATE_STOP_COPY ||
				       req == DEVMIG_STATE_PRE_COPY
			       ? DEVMIG_STATE_STOP
			       : DEVMIG_STATE_ERROR;
	case DEVMIG_STATE_PRE_COPY:
		return req == DEVMIG_STATE_STOP || req == DEVMIG_STATE_RESUMING
			       ? DEVMIG_STATE_RUNNING
			       : DEVMIG_STATE_ERROR;
	}
	return DEVMIG_STATE_ERROR;
}

/* ---- the save stream ---- */

static int out_put(struct lvu_peer *p, uint32_t type, uint32_t off, const void *data, uint32_t len)
{
	if (p->out_len + REC_HDR + len > p->out_cap) {
		size_t cap = (p->out_len + REC_HDR + len) * 2;
		uint8_t *o = realloc(p->out, cap);
		if (!o)
			return -ENOMEM;
		p->out = o;
		p->out_cap = cap;
	}
	uint32_t h[3] = { type, off, len };
	memcpy(p->out + p->out_len, h, REC_HDR);
	if (len)
		memcpy(p->out + p->out_len + REC_HDR, data, len);
	p->out_len += REC_HDR + len;
	return 0;
}

/* BAR1 blocks: every one (all) or those written since the last pass. */
static int out_blocks(struct lvu_peer *p, bool all)
{
	for (size_t b = 0; b < p->cfg.bar1_size / BLOCK; b++) {
		if (!all && !p->bar1_dirty[b])
			continue;
		p->bar1_dirty[b] = 0;
		int rc = out_put(p, REC_BAR1, (uint32_t)(b * BLOCK), p->bar1 + b * BLOCK, BLOCK);
		if (rc)
			return rc;
	}
	return 0;
}

static void out_reset(struct lvu_peer *p)
{
	p->out_len = p->out_pos = 0;
}

/* Drop what was read, so a pass appends after what is still unread. */
static void out_compact(struct lvu_peer *p)
{
	if (p->out_len > p->out_pos)
		memmove(p->out, p->out + p->out_pos, p->out_len - p->out_pos);
	p->out_len -= p->out_pos;
	p->out_pos = 0;
}

/* ---- the load stream ---- */

/* Whole and valid: every record inside BAR1 or the registers, then END. */
static bool load_apply(struct lvu_peer *p, bool apply)
{
	size_t off = 0;
	while (off + REC_HDR <= p->in_len) {
		uint32_t h[3];
		memcpy(h, p->in + off, REC_HDR);
		off += REC_HDR;
		if (h[2] > p->in_len - off)
			return false;
		switch (h[0]) {
		case REC_BAR1:
			if (h[1] > p->cfg.bar1_size || h[2] > p->cfg.bar1_size - h[1])
				return false;
			if (apply)
				memcpy(p->bar1 + h[1], p->in + off, h[2]);
			break;
		case REC_REGS:
			if (h[2] != 8)
				return false;
			if (apply) {
				memcpy(&p->scratch, p->in + off, 4);
				memcpy(&p->dma_addr, p->in + off + 4, 4);
			}
			break;
		case REC_END:
			return h[2] == 0 && off == p->in_len;
		default:
			return false;
		}
		off += h[2];
	}
	return false;
}

/* ---- one arc: what the device does (the sample's "transition" callback) ---- */

static int arc(struct lvu_peer *p, int to)
{
	int from = p->state;

	switch (to) {
	case DEVMIG_STATE_PRE_COPY:
		out_reset(p);
		memset(p->bar1_dirty, 0, p->cfg.bar1_size / BLOCK);
		if (out_blocks(p, true))
			return -ENOMEM;
		p->precopied = true;
		break;
	case DEVMIG_STATE_STOP_COPY: {
		/* What is unread, then what changed (all of it without a pre-copy). */
		out_compact(p);
		int rc = out_blocks(p, !p->precopied);
		uint32_t regs[2] = { p->scratch, p->dma_addr };
		if (!rc)
			rc = out_put(p, REC_REGS, 0, regs, 8);
		if (!rc)
			rc = out_put(p, REC_END, 0, NULL, 0);
		if (rc)
			return rc;
		break;
	}
	case DEVMIG_STATE_RUNNING:
		if (from == DEVMIG_STATE_PRE_COPY)
			out_reset(p); /* the session ends */
		p->precopied = false;
		break;
	case DEVMIG_STATE_STOP:
		if (from == DEVMIG_STATE_STOP_COPY) {
			out_reset(p);
			p->precopied = false;
		} else if (from == DEVMIG_STATE_RESUMING) {
			/* The sample applies what it got; this device applies only a whole stream. */
			if (load_apply(p, false)) {
				load_apply(p, true);
				p->st.loads++;
			} else {
				p->st.loads_discarded++;
			}
			p->in_len = 0;
		}
		break;
	case DEVMIG_STATE_RESUMING:
		p->in_len = 0;
		break;
	}
	p->state = to;
	return 0;
}

static int set_state(struct lvu_peer *p, int req)
{
	p->st.state_sets++;
	if (req < 0 || req >= DEVMIG_STATE_COUNT)
		return -EINVAL;
	while (p->state != req) {
		int next = next_hop(p->state, req);
		if (next == DEVMIG_STATE_ERROR)
			return -EINVAL;
		uint32_t want_from = p->fault_arg >> 8;
		if (p->fault == LVU_FAULT_REFUSE_STATE && (int)(p->fault_arg & 0xff) == next &&
		    (!want_from || (int)want_from - 1 == p->state)) {
			p->fault = LVU_FAULT_NONE;
			return -EINVAL; /* as a failed transition callback: the state is kept */
		}
		int rc = arc(p, next);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- replies ---- */

static int send_bytes(struct lvu_peer *p, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };
	return devmig_msg_send(p->sock, &iov, 1, NULL, 0);
}

static int reply(struct lvu_peer *p, struct devmig_msg *r, const struct devmig_hdr *req)
{
	uint8_t *buf = p->txbuf;
	enum devmig_wire_err err;

	if (req->flags & DEVMIG_HDR_NO_REPLY)
		return 0;
	r->hdr.msg_id = req->msg_id;
	r->hdr.cmd = req->cmd;
	r->hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	size_t n = devmig_encode(buf, MSG_MAX + 4096, r, &err);
	if (!n)
		return -EIO;
	return send_bytes(p, buf, n);
}

/* An error reply with the request's payload after the header, as libvfio-user sends some. */
static int reply_error(struct lvu_peer *p, const uint8_t *msg, size_t len, int error_no)
{
	uint8_t *buf = p->txbuf;
	struct devmig_hdr h;

	memcpy(&h, msg, sizeof(h));
	if (h.flags & DEVMIG_HDR_NO_REPLY)
		return 0;
	size_t payload = len - DEVMIG_HDR_SIZE;
	h.flags = DEVMIG_HDR_TYPE_REPLY | DEVMIG_HDR_ERROR;
	h.error_no = (uint32_t)error_no;
	h.msg_size = (uint32_t)len;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), msg + DEVMIG_HDR_SIZE, payload);
	if (payload)
		p->st.error_payloads++;
	return send_bytes(p, buf, len);
}

/* ---- commands ---- */

static void drop_maps(struct lvu_peer *p)
{
	for (unsigned i = 0; i < p->nmaps; i++) {
		munmap(p->maps[i].va, p->maps[i].size);
		free(p->maps[i].dirty);
	}
	p->nmaps = 0;
}

static struct map *map_of(struct lvu_peer *p, uint64_t iova, uint64_t len)
{
	for (unsigned i = 0; i < p->nmaps; i++) {
		struct map *m = &p->maps[i];
		if (iova >= m->iova && len <= m->size && iova - m->iova <= m->size - len)
			return m;
	}
	return NULL;
}

static int dma_write_locked(struct lvu_peer *p, uint64_t iova, const void *buf, size_t len)
{
	struct map *m = map_of(p, iova, len);
	if (!m)
		return -EFAULT;
	if (!(m->prot & DEVMIG_DMA_WRITE))
		return -EACCES;
	memcpy(m->va + (iova - m->iova), buf, len);
	if (p->logging && len) {
		for (uint64_t pg = (iova - m->iova) / BLOCK; pg <= (iova - m->iova + len - 1) / BLOCK; pg++)
			m->dirty[pg / 64] |= 1ull << (pg % 64);
	}
	return 0;
}

static int region_rw(struct lvu_peer *p, uint32_t region, uint64_t off, uint8_t *buf,
		     uint32_t count, bool is_write)
{
	switch (region) {
	case 0: { /* BAR0: 32-bit registers */
		if (count != 4 || (off & 3) || off >= 16)
			return -EINVAL;
		uint32_t v = 0;
		if (is_write)
			memcpy(&v, buf, 4);
		switch (off) {
		case 0x0:
			if (is_write)
				p->scratch = v;
			v = p->scratch;
			break;
		case 0x4:
			if (is_write && p->intx_fd >= 0 && p->state != DEVMIG_STATE_STOP &&
			    p->state != DEVMIG_STATE_STOP_COPY) {
				uint64_t one = 1;
				if (write(p->intx_fd, &one, 8) == 8)
					p->st.irqs++;
			}
			v = 0;
			break;
		case 0x8:
			if (is_write)
				p->dma_addr = v;
			v = p->dma_addr;
			break;
		case 0xc:
			if (is_write) {
				int rc = dma_write_locked(p, p->dma_addr, &v, 4);
				if (rc)
					return rc;
			}
			v = 0;
			break;
		}
		if (!is_write)
			memcpy(buf, &v, 4);
		return 0;
	}
	case 1: /* BAR1: memory */
		if (off > p->cfg.bar1_size || count > p->cfg.bar1_size - off)
			return -EINVAL;
		if (is_write) {
			memcpy(p->bar1 + off, buf, count);
			for (uint64_t b = off / BLOCK; b <= (off + count - 1) / BLOCK; b++)
				p->bar1_dirty[b] = 1;
		} else {
			memcpy(buf, p->bar1 + off, count);
		}
		return 0;
	case 7: /* config space: only the command register is writable */
		if (off > CFG_SIZE || count > CFG_SIZE - off)
			return -EINVAL;
		if (is_write) {
			for (uint32_t i = 0; i < count; i++)
				if (off + i == 4 || off + i == 5)
					p->config[off + i] = buf[i];
		} else {
			memcpy(buf, p->config + off, count);
		}
		return 0;
	}
	return -EINVAL;
}

static int handle_feature(struct lvu_peer *p, const struct devmig_msg *m, const uint8_t *msg,
			  size_t len)
{
	uint32_t flags = m->u.feature.f.flags, index = m->u.feature.index;
	struct devmig_msg r;

	memset(&r, 0, sizeof(r));
	r.u.feature.f = m->u.feature.f;
	/* Only what libvfio-user knows; the rest (MIG_DATA_SIZE, devmig's): EINVAL. */
	switch (index) {
	case DEVMIG_FEATURE_MIGRATION:
	case DEVMIG_FEATURE_MIG_DEVICE_STATE:
	case DEVMIG_FEATURE_DMA_LOGGING_START:
	case DEVMIG_FEATURE_DMA_LOGGING_STOP:
	case DEVMIG_FEATURE_DMA_LOGGING_REPORT:
		break;
	default:
		if (index >= DEVMIG_FEATURE_EXT_BASE)
			p->st.ext_features++;
		return reply_error(p, msg, DEVMIG_HDR_SIZE, EINVAL); /* no payload, as there */
	}
	if (flags & DEVMIG_FEATURE_PROBE) {
		r.u.feature.data = m->u.feature.data;
		r.u.feature.data_len = m->u.feature.data_len;
		return reply(p, &r, &m->hdr);
	}
	if (flags & DEVMIG_FEATURE_GET) {
		if (index == DEVMIG_FEATURE_MIGRATION) {
			uint64_t caps = DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_PRE_COPY;
			r.u.feature.f.argsz = 16;
			r.u.feature.data = (const uint8_t *)&caps;
			r.u.feature.data_len = 8;
			return reply(p, &r, &m->hdr);
		}
		if (index == DEVMIG_FEATURE_MIG_DEVICE_STATE) {
			struct devmig_feature_mig_state s = { (uint32_t)p->state, 0 };
			r.u.feature.f.argsz = 16;
			r.u.feature.data = (const uint8_t *)&s;
			r.u.feature.data_len = 8;
			return reply(p, &r, &m->hdr);
		}
		if (index != DEVMIG_FEATURE_DMA_LOGGING_REPORT)
			return reply_error(p, msg, len, EINVAL);
		/* REPORT: exactly one whole region, logging on, 4 KiB pages. */
		const struct devmig_feature_dma_logging_report *rep = &m->u.feature.u.log_report.rep;
		struct map *mp = NULL;
		for (unsigned i = 0; i < p->nmaps; i++)
			if (p->maps[i].iova == rep->iova && p->maps[i].size == rep->length)
				mp = &p->maps[i];
		if (!mp || !p->logging || rep->page_size != BLOCK) {
			p->st.log_reports_refused++;
			return reply_error(p, msg, len, EINVAL);
		}
		size_t bm = devmig_log_bitmap_size(rep->length, rep->page_size);
		uint8_t *data = p->data;
		if (24 + bm > XFER_MAX)
			return reply_error(p, msg, len, E2BIG);
		memcpy(data, rep, 24);
		memcpy(data + 24, mp->dirty, bm);
		memset(mp->dirty, 0, bm);
		r.u.feature.f.argsz = (uint32_t)(8 + 24 + bm);
		r.u.feature.data = data;
		r.u.feature.data_len = 24 + bm;
		return reply(p, &r, &m->hdr);
	}
	/* SET: the reply echoes the request, data and all. */
	int rc = 0;
	if (index == DEVMIG_FEATURE_MIG_DEVICE_STATE) {
		rc = set_state(p, (int)m->u.feature.u.mig_state.device_state);
	} else if (index == DEVMIG_FEATURE_DMA_LOGGING_START) {
		/* The ranges are ignored: every region is logged. */
		for (unsigned i = 0; i < p->nmaps; i++) {
			size_t words = (p->maps[i].size / BLOCK + 63) / 64;
			free(p->maps[i].dirty);
			p->maps[i].dirty = calloc(words, 8);
		}
		p->logging = true;
	} else if (index == DEVMIG_FEATURE_DMA_LOGGING_STOP) {
		p->logging = false;
	} else {
		rc = -EINVAL;
	}
	if (rc)
		return reply_error(p, msg, len, -rc);
	r.u.feature.data = m->u.feature.data;
	r.u.feature.data_len = m->u.feature.data_len;
	return reply(p, &r, &m->hdr);
}

/* A hang-up: the client's mappings and fds go; device and migration state stay. */
static void hang_up(struct lvu_peer *p)
{
	drop_maps(p);
	p->logging = false;
	if (p->intx_fd >= 0)
		close(p->intx_fd);
	p->intx_fd = -1;
	if (p->sock >= 0) {
		shutdown(p->sock, SHUT_RDWR);
		close(p->sock);
	}
	p->sock = -1;
	pthread_cond_broadcast(&p->idle_cv);
}

/* Returns 0 to go on, -1 to hang up. */
static int handle(struct lvu_peer *p, const struct devmig_msg *m, const uint8_t *msg, size_t len,
		  int *fds, unsigned nfds, bool *negotiated)
{
	struct devmig_msg r;
	uint32_t cmd = m->hdr.cmd;
	int rc;

	memset(&r, 0, sizeof(r));
	if (!*negotiated && cmd != DEVMIG_CMD_VERSION)
		return reply_error(p, msg, len, EINVAL) ? -1 : 0;
	/* libvfio-user's gate: a stopped device serves only these. */
	if ((p->state == DEVMIG_STATE_STOP || p->state == DEVMIG_STATE_STOP_COPY) &&
	    cmd != DEVMIG_CMD_REGION_READ && cmd != DEVMIG_CMD_REGION_WRITE &&
	    cmd != DEVMIG_CMD_DEVICE_FEATURE && cmd != DEVMIG_CMD_MIG_DATA_READ &&
	    cmd != DEVMIG_CMD_VERSION) {
		if (cmd == DEVMIG_CMD_DEVICE_RESET)
			p->st.resets_refused++;
		return reply_error(p, msg, len, EINVAL) ? -1 : 0;
	}
	switch (cmd) {
	case DEVMIG_CMD_VERSION: {
		/* Members nobody proposed, no devmig extension. */
		static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8,"
					   "\"max_data_xfer_size\":1048576,"
					   "\"migration\":{\"pgsize\":4096}}}";
		if (*negotiated || m->u.version.v.major != 0)
			return reply_error(p, msg, len, EINVAL) ? -1 : 0;
		r.u.version.v.major = 0;
		r.u.version.v.minor = m->u.version.v.minor < 1 ? m->u.version.v.minor : 1;
		r.u.version.json = json;
		r.u.version.json_len = sizeof(json) - 1;
		*negotiated = true;
		return reply(p, &r, &m->hdr) ? -1 : 0;
	}
	case DEVMIG_CMD_DMA_MAP: {
		const struct devmig_dma_map *d = &m->u.dma_map;
		if (!nfds || p->nmaps == MAX_MAPS || map_of(p, d->addr, 1) ||
		    map_of(p, d->addr + d->size - 1, 1))
			return reply_error(p, msg, len, EINVAL) ? -1 : 0;
		int prot = (d->flags & DEVMIG_DMA_READ ? PROT_READ : 0) |
			   (d->flags & DEVMIG_DMA_WRITE ? PROT_WRITE : 0);
		void *va = mmap(NULL, d->size, prot ? prot : PROT_READ, MAP_SHARED, fds[0],
				(off_t)d->offset);
		if (va == MAP_FAILED)
			return reply_error(p, msg, len, errno) ? -1 : 0;
		struct map *mp = &p->maps[p->nmaps++];
		*mp = (struct map){ d->addr, d->size, va, d->flags, NULL };
		if (p->logging)
			mp->dirty = calloc((d->size / BLOCK + 63) / 64, 8);
		break;
	}
	case DEVMIG_CMD_DMA_UNMAP: {
		const struct devmig_dma_unmap *d = &m->u.dma_unmap;
		if (d->flags & DEVMIG_DMA_UNMAP_ALL) {
			drop_maps(p);
		} else {
			unsigned i;
			for (i = 0; i < p->nmaps; i++)
				if (p->maps[i].iova == d->addr && p->maps[i].size == d->size)
					break;
			if (i == p->nmaps)
				return reply_error(p, msg, len, ENOENT) ? -1 : 0;
			munmap(p->maps[i].va, p->maps[i].size);
			free(p->maps[i].dirty);
			p->maps[i] = p->maps[--p->nmaps];
		}
		r.u.dma_unmap = *d;
		break;
	}
	case DEVMIG_CMD_DEVICE_GET_INFO:
		r.u.device_info.argsz = sizeof(r.u.device_info);
		r.u.device_info.flags = (1u << 0) | (1u << 1); /* RESET | PCI */
		r.u.device_info.num_regions = NREGIONS;
		r.u.device_info.num_irqs = NIRQS;
		break;
	case DEVMIG_CMD_DEVICE_GET_REGION_INFO: {
		struct devmig_region_info *ri = &r.u.region_info.info;
		uint32_t idx = m->u.region_info.info.index;
		ri->argsz = sizeof(*ri);
		ri->index = idx;
		ri->offset = (uint64_t)idx << 40;
		ri->size = idx == 0 ? BAR0_SIZE : idx == 1 ? p->cfg.bar1_size : idx == 7 ? CFG_SIZE : 0;
		if (ri->size)
			ri->flags = 3; /* READ | WRITE */
		break;
	}
	case DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS:
		return reply_error(p, msg, len, EINVAL) ? -1 : 0;
	case DEVMIG_CMD_DEVICE_GET_IRQ_INFO:
		r.u.irq_info.argsz = sizeof(r.u.irq_info);
		r.u.irq_info.index = m->u.irq_info.index;
		r.u.irq_info.count = m->u.irq_info.index == 0 ? 1 : 0;
		r.u.irq_info.flags = 1; /* EVENTFD */
		break;
	case DEVMIG_CMD_DEVICE_SET_IRQS: {
		const struct devmig_irq_set *s = &m->u.irq_set.set;
		if (s->index != 0 || s->start != 0 || s->count > 1 ||
		    !(s->flags & IRQ_ACTION_TRIGGER))
			return reply_error(p, msg, len, EINVAL) ? -1 : 0;
		if (p->intx_fd >= 0)
			close(p->intx_fd);
		p->intx_fd = -1;
		if ((s->flags & IRQ_DATA_EVENTFD) && nfds == 1) {
			p->intx_fd = fds[0];
			fds[0] = -1;
		}
		break;
	}
	case DEVMIG_CMD_REGION_READ:
	case DEVMIG_CMD_REGION_WRITE: {
		uint8_t *data = p->data;
		const struct devmig_region_access *a = &m->u.region.acc;
		bool write = cmd == DEVMIG_CMD_REGION_WRITE;
		if (write)
			memcpy(data, m->u.region.data, a->count);
		rc = region_rw(p, a->region, a->offset, data, a->count, write);
		if (rc)
			return reply_error(p, msg, len, -rc) ? -1 : 0;
		r.u.region.acc = *a;
		r.u.region.data = write ? NULL : data;
		break;
	}
	case DEVMIG_CMD_DEVICE_RESET:
		/* The device resets; its migration state does not (RESUMING stays RESUMING). */
		p->scratch = 0;
		p->dma_addr = 0;
		memset(p->bar1, 0, p->cfg.bar1_size);
		p->st.resets++;
		break;
	case DEVMIG_CMD_DEVICE_FEATURE:
		return handle_feature(p, m, msg, len) ? -1 : 0;
	case DEVMIG_CMD_MIG_DATA_READ: {
		uint32_t ask = m->u.mig_data.md.size;
		p->reads++;
		if (p->fault == LVU_FAULT_DROP_ON_READ && p->reads == p->fault_arg) {
			p->fault = LVU_FAULT_NONE;
			return -1;
		}
		if (p->fault == LVU_FAULT_GARBAGE_ON_READ && p->reads == p->fault_arg) {
			p->fault = LVU_FAULT_NONE;
			struct devmig_hdr g = { m->hdr.msg_id, DEVMIG_CMD_MIG_DATA_READ, 4,
						DEVMIG_HDR_TYPE_REPLY, 0 };
			send_bytes(p, &g, sizeof(g));
			return -1;
		}
		if (p->state != DEVMIG_STATE_PRE_COPY && p->state != DEVMIG_STATE_STOP_COPY)
			return reply_error(p, msg, len, EINVAL) ? -1 : 0;
		if (p->state == DEVMIG_STATE_PRE_COPY && p->out_pos == p->out_len) {
			/* A new pass: what was written since the last one. */
			out_reset(p);
			if (out_blocks(p, false))
				return reply_error(p, msg, len, ENOMEM) ? -1 : 0;
		}
		size_t n = p->out_len - p->out_pos < ask ? p->out_len - p->out_pos : ask;
		r.u.mig_data.md.size = (uint32_t)n;
		r.u.mig_data.md.argsz = (uint32_t)(8 + n);
		r.u.mig_data.data = p->out + p->out_pos;
		r.u.mig_data.pad = ask - n; /* libvfio-user: padded to the size asked for */
		if (p->fault == LVU_FAULT_BAD_READ_REPLY && p->reads == p->fault_arg) {
			p->fault = LVU_FAULT_NONE;
			r.u.mig_data.md.argsz += 1; /* framed, but the codec refuses it */
		}
		p->out_pos += n;
		if (r.u.mig_data.pad)
			p->st.padded_replies++;
		break;
	}
	case DEVMIG_CMD_MIG_DATA_WRITE: {
		uint32_t n = m->u.mig_data.md.size;
		p->writes++;
		if (p->fault == LVU_FAULT_DROP_ON_WRITE && p->writes == p->fault_arg) {
			p->fault = LVU_FAULT_NONE;
			return -1;
		}
		if (p->fault == LVU_FAULT_REFUSE_WRITE && p->writes == p->fault_arg) {
			p->fault = LVU_FAULT_NONE;
			return reply_error(p, msg, len, EINVAL) ? -1 : 0;
		}
		if (p->state != DEVMIG_STATE_RESUMING || p->in_len + n > 4 * p->cfg.bar1_size + 4096)
			return reply_error(p, msg, len, EINVAL) ? -1 : 0;
		if (p->in_len + n > p->in_cap) {
			size_t cap = (p->in_len + n) * 2;
			uint8_t *in = realloc(p->in, cap);
			if (!in)
				return reply_error(p, msg, len, ENOMEM) ? -1 : 0;
			p->in = in;
			p->in_cap = cap;
		}
		memcpy(p->in + p->in_len, m->u.mig_data.data, n);
		p->in_len += n;
		break;
	}
	default:
		return reply_error(p, msg, len, EINVAL) ? -1 : 0;
	}
	return reply(p, &r, &m->hdr) ? -1 : 0;
}

static void serve(struct lvu_peer *p, int sock)
{
	struct devmig_msg_reader rd;
	struct devmig_wire_limits lim;
	bool negotiated = false;

	devmig_wire_limits_default(&lim);
	lim.role = DEVMIG_WIRE_ROLE_SERVER;
	lim.max_msg_size = MSG_MAX;
	lim.max_data_xfer_size = XFER_MAX;
	lim.max_msg_fds = 8;
	lim.num_regions = NREGIONS;
	lim.num_irqs = NIRQS;
	if (devmig_msg_reader_init(&rd, sock, MSG_MAX + 65536u)) {
		close(sock);
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->sock = sock;
	p->st.connections++;
	pthread_mutex_unlock(&p->lock);
	for (;;) {
		struct devmig_rx rx;
		struct devmig_msg m;
		int rc = devmig_msg_recv(&rd, &lim, &rx);
		if (rc <= 0)
			break;
		pthread_mutex_lock(&p->lock);
		if (rx.skipped || devmig_decode(rx.msg, rx.len, rx.nfds, &lim, &m) ||
		    (m.hdr.flags & DEVMIG_HDR_TYPE_MASK) != DEVMIG_HDR_TYPE_COMMAND) {
			/* libvfio-user drops a client that sends what it cannot take. */
			devmig_rx_close_fds(&rx);
			pthread_mutex_unlock(&p->lock);
			break;
		}
		rc = handle(p, &m, rx.msg, rx.len, rx.fds, rx.nfds, &negotiated);
		devmig_rx_close_fds(&rx);
		pthread_mutex_unlock(&p->lock);
		if (rc)
			break;
	}
	pthread_mutex_lock(&p->lock);
	hang_up(p);
	pthread_mutex_unlock(&p->lock);
	devmig_msg_reader_free(&rd);
}

static void *peer_thread(void *arg)
{
	struct lvu_peer *p = arg;

	while (!atomic_load(&p->stopping)) {
		struct pollfd pf = { p->listen_fd, POLLIN, 0 };
		if (poll(&pf, 1, 100) <= 0)
			continue;
		int sock = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (sock < 0)
			continue;
		devmig_msg_tune_socket(sock);
		serve(p, sock);
	}
	return NULL;
}

struct lvu_peer *lvu_peer_start(const struct lvu_peer_config *cfg)
{
	struct lvu_peer *p = calloc(1, sizeof(*p));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (!p || strlen(cfg->socket_path) >= sizeof(sa.sun_path)) {
		free(p);
		return NULL;
	}
	p->cfg = *cfg;
	if (!p->cfg.vendor && !p->cfg.device) {
		p->cfg.vendor = 0xdead;
		p->cfg.device = 0xbeef;
		p->cfg.subsystem_vendor = 0xcafe;
		p->cfg.subsystem_device = 0xbabe;
	}
	if (!p->cfg.bar1_size)
		p->cfg.bar1_size = 0x4000;
	snprintf(p->path, sizeof(p->path), "%s", cfg->socket_path);
	p->sock = -1;
	p->intx_fd = -1;
	p->state = DEVMIG_STATE_RUNNING;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->idle_cv, NULL);
	p->bar1 = calloc(1, p->cfg.bar1_size);
	p->bar1_dirty = calloc(1, p->cfg.bar1_size / BLOCK);
	p->txbuf = malloc(MSG_MAX + 4096);
	p->data = malloc(XFER_MAX);

	/* A type 0 header: ids, class, revision, subsystem, a BAR0 and a BAR1. */
	uint8_t *c = p->config;
	c[0] = (uint8_t)p->cfg.vendor;
	c[1] = (uint8_t)(p->cfg.vendor >> 8);
	c[2] = (uint8_t)p->cfg.device;
	c[3] = (uint8_t)(p->cfg.device >> 8);
	c[8] = p->cfg.revision;
	c[9] = (uint8_t)p->cfg.class_code;
	c[10] = (uint8_t)(p->cfg.class_code >> 8);
	c[11] = (uint8_t)(p->cfg.class_code >> 16);
	c[0x2c] = (uint8_t)p->cfg.subsystem_vendor;
	c[0x2d] = (uint8_t)(p->cfg.subsystem_vendor >> 8);
	c[0x2e] = (uint8_t)p->cfg.subsystem_device;
	c[0x2f] = (uint8_t)(p->cfg.subsystem_device >> 8);
	c[0x3d] = 1; /* INTA */

	strcpy(sa.sun_path, p->path);
	unlink(p->path);
	p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!p->bar1 || !p->bar1_dirty || !p->txbuf || !p->data || p->listen_fd < 0 ||
	    bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(p->listen_fd, 4) ||
	    pthread_create(&p->thread, NULL, peer_thread, p)) {
		fprintf(stderr, "lvu_peer: cannot serve %s: %s\n", p->path, strerror(errno));
		if (p->listen_fd >= 0)
			close(p->listen_fd);
		free(p->bar1);
		free(p->bar1_dirty);
		free(p->txbuf);
		free(p->data);
		free(p);
		return NULL;
	}
	return p;
}

void lvu_peer_stop(struct lvu_peer *p)
{
	if (!p)
		return;
	atomic_store(&p->stopping, true);
	pthread_mutex_lock(&p->lock);
	if (p->sock >= 0)
		shutdown(p->sock, SHUT_RDWR); /* wakes the server thread's read */
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	close(p->listen_fd);
	unlink(p->path);
	drop_maps(p);
	if (p->intx_fd >= 0)
		close(p->intx_fd);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->idle_cv);
	free(p->bar1);
	free(p->bar1_dirty);
	free(p->out);
	free(p->in);
	free(p->txbuf);
	free(p->data);
	free(p);
}

void lvu_peer_fault(struct lvu_peer *p, enum lvu_fault f, uint32_t arg)
{
	pthread_mutex_lock(&p->lock);
	p->fault = f;
	p->fault_arg = arg;
	p->reads = p->writes = 0;
	pthread_mutex_unlock(&p->lock);
}

int lvu_peer_state(struct lvu_peer *p)
{
	pthread_mutex_lock(&p->lock);
	int s = p->state;
	pthread_mutex_unlock(&p->lock);
	return s;
}

void lvu_peer_stats(struct lvu_peer *p, struct lvu_peer_stats *st)
{
	pthread_mutex_lock(&p->lock);
	*st = p->st;
	pthread_mutex_unlock(&p->lock);
}

void lvu_peer_bar1(struct lvu_peer *p, size_t off, void *buf, size_t len, bool write)
{
	pthread_mutex_lock(&p->lock);
	if (off <= p->cfg.bar1_size && len <= p->cfg.bar1_size - off) {
		if (write) {
			memcpy(p->bar1 + off, buf, len);
			for (size_t b = off / BLOCK; len && b <= (off + len - 1) / BLOCK; b++)
				p->bar1_dirty[b] = 1;
		} else {
			memcpy(buf, p->bar1 + off, len);
		}
	}
	pthread_mutex_unlock(&p->lock);
}

uint32_t lvu_peer_scratch(struct lvu_peer *p)
{
	pthread_mutex_lock(&p->lock);
	uint32_t v = p->scratch;
	pthread_mutex_unlock(&p->lock);
	return v;
}

int lvu_peer_dma_write(struct lvu_peer *p, uint64_t iova, const void *buf, size_t len)
{
	pthread_mutex_lock(&p->lock);
	int rc = dma_write_locked(p, iova, buf, len);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

bool lvu_peer_wait_idle(struct lvu_peer *p, int ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&p->lock);
	int rc = 0;
	while (p->sock >= 0 && rc == 0)
		rc = pthread_cond_timedwait(&p->idle_cv, &p->lock, &dl);
	bool idle = p->sock < 0;
	pthread_mutex_unlock(&p->lock);
	return idle;
}
