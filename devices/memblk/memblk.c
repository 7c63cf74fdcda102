/* SPDX-License-Identifier: MIT */
/*
 * memblk: a migratable block device whose storage lives inside the device
 * (think of an accelerator's local memory). Register and ring layout:
 * memblk_hw.h and README.md; its migration records: memblk_stream.h.
 *
 * The storage is device memory the core tracks (devmig_tracker): the core
 * streams it in PRE_COPY rounds and STOP_COPY, stages a load and swaps it
 * in, and answers precopy_info and most of the stop-copy size. memblk adds
 * its registers and queued requests (two records, once stopped).
 *
 * Threads and locks.
 *  - The server thread calls the ops (bar_access, arc, save_state, load...).
 *  - One worker thread per device fetches and executes requests; it is
 *    woken by doorbells and never runs inside a message handler.
 *  - m->lock guards the registers, the fetched-request queue and the
 *    worker's run/pause flags. It is never held across DMA or an interrupt.
 *  - The worker is the only writer of the storage (devmig_tracker_write,
 *    which the core's saver is atomic against), so its READs need no lock.
 *
 * Dirty-rate limiting. Under a VMM's cap the worker holds a WRITE's
 * completion back (devmig_device_throttle) after executing it, so the
 * guest's writes slow down; the core lets it go when the device leaves
 * PRE_COPY, so quiescing never waits for a throttled request.
 *
 * Quiescing. An arc into a quiesced state sets `paused` and waits until the
 * worker is idle: the request being executed completes (its data moved, its
 * completion posted, its interrupt raised), fetched requests not yet started
 * stay in the queue and travel in the stream (INFLIGHT). An arc back to a
 * running state clears `paused` and wakes the worker, which picks up
 * doorbells rung in the meantime: the core has published the state being
 * entered before the arc, so the worker's DMA is allowed at once.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devices.h"
#include "devmig/device.h"
#include "devmig/variant.h"
#include "memblk_hw.h"
#include "memblk_stream.h"

#define MB_DEFAULT_SIZE (256ull << 20)
#define MB_DEFAULT_CHUNK (64u << 10)
#define MB_MAX_SIZE (64ull << 30)
#define MB_MSIX_VECTORS 1u

struct memblk {
	struct devmig_device dev;
	struct devmig_device_id id;       /* the variant's name, version and accepts */
	const struct mb_stream_id *sid;   /* v1 or v2 */
	struct mb_geom g;
	unsigned tracker_flags;
	struct devmig_tracker *trk;       /* the storage */

	pthread_mutex_t lock;
	pthread_cond_t wake, idle;
	struct mb_regs r;
	uint64_t gen;        /* bumped when the queues are torn down or replaced */
	bool paused, exiting, busy, disable_pending, worker_started;
	struct mb_sqe q[MB_MAX_INFLIGHT];
	unsigned qhead, qcount;
	pthread_t worker;
	uint8_t *bounce;     /* the worker's WRITE buffer (MB_MAX_BLOCKS blocks) */

	struct mb_state loaded; /* load session: server thread only */
};

static struct memblk *to_mb(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct memblk, dev);
}

static uint64_t cap_blocks(const struct memblk *m)
{
	return m->g.size / MB_BLOCK_SIZE;
}

/* ---------------------------------------------------------------- worker */

static uint32_t cq_used(const struct mb_regs *r)
{
	return (r->cq_tail - r->cq_head) & (r->cq_size - 1);
}

static bool has_work_locked(const struct memblk *m)
{
	const struct mb_regs *r = &m->r;

	if (m->paused || !(r->status & MB_STS_READY))
		return false;
	if (m->qcount)
		return true;
	return r->sq_head != r->sq_tail && cq_used(r) < r->cq_size - 1;
}

/* EN cleared: drop the queues. m->lock held, worker not executing. */
static void disable_locked(struct memblk *m)
{
	m->r.status = 0;
	m->r.err_code = MB_ERR_NONE;
	m->r.sq_tail = m->r.sq_head = m->r.cq_tail = m->r.cq_head = 0;
	m->r.cq_phase = 1;
	m->qcount = m->qhead = 0;
	m->disable_pending = false;
	m->gen++;
}

static void ring_fault_locked(struct memblk *m, uint32_t code)
{
	m->r.status = (m->r.status & ~MB_STS_READY) | MB_STS_FATAL;
	m->r.err_code = code;
	m->qcount = m->qhead = 0;
}

/* Fetch a batch of SQ entries into the queue. Called with m->lock held,
 * returns with it held; drops it around the DMA. */
static void fetch_locked(struct memblk *m)
{
	struct mb_regs *r = &m->r;
	uint32_t mask = r->sq_size - 1;
	uint32_t avail = (r->sq_tail - r->sq_head) & mask;
	uint32_t room = r->cq_size - 1 - cq_used(r) - m->qcount;
	uint32_t n = avail < room ? avail : room;
	if (n > MB_MAX_INFLIGHT - m->qcount)
		n = MB_MAX_INFLIGHT - m->qcount;
	if (!n)
		return;
	uint64_t gen = m->gen, base = r->sq_base;
	uint32_t head = r->sq_head;
	uint8_t raw[MB_MAX_INFLIGHT * MB_SQE_SIZE];
	uint32_t first = r->sq_size - head < n ? r->sq_size - head : n;

	pthread_mutex_unlock(&m->lock);
	int rc = devmig_device_dma_read(&m->dev, base + (uint64_t)head * MB_SQE_SIZE, raw,
					(size_t)first * MB_SQE_SIZE);
	if (!rc && first < n)
		rc = devmig_device_dma_read(&m->dev, base, raw + first * MB_SQE_SIZE,
					    (size_t)(n - first) * MB_SQE_SIZE);
	pthread_mutex_lock(&m->lock);
	if (gen != m->gen)
		return; /* the queues were torn down meanwhile */
	if (rc) {
		ring_fault_locked(m, MB_ERR_SQ_DMA);
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		mb_sqe_decode(raw + i * MB_SQE_SIZE,
			      &m->q[(m->qhead + m->qcount + i) % MB_MAX_INFLIGHT]);
	m->qcount += n;
	r->sq_head = (head + n) & mask;
}

static uint16_t dma_status(int rc)
{
	return rc ? MB_SC_DMA_ERROR : MB_SC_OK;
}

/* Execute one request (no lock held). */
static void execute(struct memblk *m, const struct mb_sqe *e, struct mb_cqe *c)
{
	memset(c, 0, sizeof(*c));
	c->tag = e->tag;
	if (e->flags || e->rsvd) {
		c->status = MB_SC_BAD_FIELD;
		return;
	}
	switch (e->opcode) {
	case MB_OP_READ:
	case MB_OP_WRITE: {
		if (!e->nblocks || e->nblocks > MB_MAX_BLOCKS) {
			c->status = MB_SC_BAD_LENGTH;
			return;
		}
		if (e->lba >= cap_blocks(m) || e->nblocks > cap_blocks(m) - e->lba) {
			c->status = MB_SC_LBA_RANGE;
			return;
		}
		size_t len = (size_t)e->nblocks * MB_BLOCK_SIZE;
		if (e->buf_len < len) {
			c->status = MB_SC_BAD_LENGTH;
			return;
		}
		uint64_t off = e->lba * MB_BLOCK_SIZE;
		int rc;
		if (e->opcode == MB_OP_READ) {
			rc = devmig_device_dma_write(&m->dev, e->buf,
						     (uint8_t *)devmig_tracker_mem(m->trk) + off, len);
		} else {
			rc = devmig_device_dma_read(&m->dev, e->buf, m->bounce, len);
			if (!rc)
				devmig_tracker_write(m->trk, off, m->bounce, len);
		}
		c->status = dma_status(rc);
		c->result = rc ? 0 : (uint32_t)len;
		return;
	}
	case MB_OP_FLUSH:
		/* Storage is device memory: every completed write is already there. */
		c->status = MB_SC_OK;
		return;
	case MB_OP_IDENTIFY: {
		struct mb_identify id = {
			.id = MB_ID,
			.version = MB_HW_VERSION,
			.capacity_blocks = cap_blocks(m),
			.block_size = MB_BLOCK_SIZE,
			.max_blocks = MB_MAX_BLOCKS,
			.chunk_size = m->g.chunk_size,
			.max_ring = MB_MAX_RING,
		};
		snprintf(id.model, sizeof(id.model), "devmig memblk");
		if (e->buf_len < sizeof(id)) {
			c->status = MB_SC_BAD_LENGTH;
			return;
		}
		int rc = devmig_device_dma_write(&m->dev, e->buf, &id, sizeof(id));
		c->status = dma_status(rc);
		c->result = rc ? 0 : (uint32_t)sizeof(id);
		return;
	}
	default:
		c->status = MB_SC_BAD_OPCODE;
		return;
	}
}

/* Post a completion. m->lock held on entry and exit; dropped around DMA/irq. */
static void post_locked(struct memblk *m, struct mb_cqe *c)
{
	struct mb_regs *r = &m->r;
	uint64_t gen = m->gen, addr = r->cq_base + (uint64_t)r->cq_tail * MB_CQE_SIZE;

	c->sq_head = r->sq_head;
	c->flags = (uint16_t)r->cq_phase;
	pthread_mutex_unlock(&m->lock);
	int rc = devmig_device_dma_write(&m->dev, addr, c, sizeof(*c));
	pthread_mutex_lock(&m->lock);
	if (gen != m->gen)
		return;
	if (rc) {
		ring_fault_locked(m, MB_ERR_CQ_DMA);
		return;
	}
	r->cq_tail = (r->cq_tail + 1) & (r->cq_size - 1);
	if (!r->cq_tail)
		r->cq_phase ^= 1;
	r->completed++;
	pthread_mutex_unlock(&m->lock);
	devmig_device_irq(&m->dev, 0); /* -ENOENT/-EINVAL without MSI-X: the guest polls */
	pthread_mutex_lock(&m->lock);
}

static void *worker_main(void *arg)
{
	struct memblk *m = arg;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		if (m->exiting)
			break;
		if (m->disable_pending) {
			disable_locked(m);
			continue;
		}
		if (!has_work_locked(m)) {
			m->busy = false;
			pthread_cond_broadcast(&m->idle);
			pthread_cond_wait(&m->wake, &m->lock);
			continue;
		}
		m->busy = true;
		if (!m->qcount) {
			fetch_locked(m);
			continue;
		}
		struct mb_sqe e = m->q[m->qhead];
		uint64_t gen = m->gen;
		m->qhead = (m->qhead + 1) % MB_MAX_INFLIGHT;
		m->qcount--;
		pthread_mutex_unlock(&m->lock);
		struct mb_cqe c;
		execute(m, &e, &c);
		/* A VMM's dirty-rate cap: the WRITE is done, its completion waits
		 * (the guest sees slower I/O, never an error). */
		if (e.opcode == MB_OP_WRITE && c.status == MB_SC_OK)
			devmig_device_throttle(&m->dev, c.result);
		pthread_mutex_lock(&m->lock);
		if (gen == m->gen && !m->disable_pending)
			post_locked(m, &c);
	}
	m->busy = false;
	pthread_cond_broadcast(&m->idle);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* Stop the worker at a request boundary and wait until it is idle. */
static void pause_locked(struct memblk *m)
{
	m->paused = true;
	pthread_cond_broadcast(&m->wake);
	while (m->busy)
		pthread_cond_wait(&m->idle, &m->lock);
}

static void resume_locked(struct memblk *m)
{
	m->paused = false;
	pthread_cond_broadcast(&m->wake);
}

/* ---------------------------------------------------------------- registers */

static uint32_t enable_check(const struct mb_regs *r)
{
	if (!mb_ring_size_ok(r->sq_size))
		return MB_ERR_SQ_SIZE;
	if (!mb_ring_size_ok(r->cq_size))
		return MB_ERR_CQ_SIZE;
	if (r->sq_base % MB_RING_ALIGN ||
	    r->sq_base + (uint64_t)r->sq_size * MB_SQE_SIZE < r->sq_base)
		return MB_ERR_SQ_ALIGN;
	if (r->cq_base % MB_RING_ALIGN ||
	    r->cq_base + (uint64_t)r->cq_size * MB_CQE_SIZE < r->cq_base)
		return MB_ERR_CQ_ALIGN;
	return MB_ERR_NONE;
}

static void doorbell_error_locked(struct memblk *m, uint32_t code)
{
	m->r.status |= MB_STS_DBERR;
	m->r.err_code = code;
}

static void reg_write_locked(struct memblk *m, uint64_t off, uint32_t v)
{
	struct mb_regs *r = &m->r;
	bool en = r->control & MB_CTRL_EN;

	switch (off) {
	case MB_REG_CONTROL:
		if ((v & MB_CTRL_EN) && !en) {
			r->control = MB_CTRL_EN;
			uint32_t err = enable_check(r);
			if (err) {
				r->status = MB_STS_CFS;
				r->err_code = err;
				return;
			}
			r->status = MB_STS_READY;
			r->err_code = MB_ERR_NONE;
			r->sq_tail = r->sq_head = r->cq_tail = r->cq_head = 0;
			r->cq_phase = 1;
			r->completed = 0;
			m->qcount = m->qhead = 0;
			m->gen++;
		} else if (!(v & MB_CTRL_EN) && en) {
			r->control = 0;
			if (m->busy)
				m->disable_pending = true; /* READY drops when the request ends */
			else
				disable_locked(m);
		}
		break;
	case MB_REG_STATUS:
		r->status &= ~(v & MB_STS_DBERR);
		break;
	case MB_REG_SQ_BASE_LO:
	case MB_REG_SQ_BASE_HI:
	case MB_REG_CQ_BASE_LO:
	case MB_REG_CQ_BASE_HI: {
		if (en)
			break; /* ring configuration is read-only while enabled */
		uint64_t *b = off < MB_REG_CQ_BASE_LO ? &r->sq_base : &r->cq_base;
		if (off == MB_REG_SQ_BASE_LO || off == MB_REG_CQ_BASE_LO)
			*b = (*b & ~0xffffffffull) | v;
		else
			*b = (*b & 0xffffffffull) | (uint64_t)v << 32;
		break;
	}
	case MB_REG_SQ_SIZE:
		if (!en)
			r->sq_size = v;
		break;
	case MB_REG_CQ_SIZE:
		if (!en)
			r->cq_size = v;
		break;
	case MB_REG_SQ_TAIL:
		if (!(r->status & MB_STS_READY) || v >= r->sq_size)
			doorbell_error_locked(m, MB_ERR_SQ_TAIL);
		else
			r->sq_tail = v;
		break;
	case MB_REG_CQ_HEAD:
		if (!(r->status & MB_STS_READY) || v >= r->cq_size)
			doorbell_error_locked(m, MB_ERR_CQ_HEAD);
		else
			r->cq_head = v;
		break;
	default:
		break; /* read-only or unassigned: dropped */
	}
	pthread_cond_broadcast(&m->wake);
}

static uint32_t reg_read_locked(struct memblk *m, uint64_t off)
{
	const struct mb_regs *r = &m->r;

	switch (off) {
	case MB_REG_ID:
		return MB_ID;
	case MB_REG_VERSION:
		return MB_HW_VERSION;
	case MB_REG_CAP_LO:
		return (uint32_t)cap_blocks(m);
	case MB_REG_CAP_HI:
		return (uint32_t)(cap_blocks(m) >> 32);
	case MB_REG_BLOCK_SIZE:
		return MB_BLOCK_SIZE;
	case MB_REG_MAX_BLOCKS:
		return MB_MAX_BLOCKS;
	case MB_REG_MAX_RING:
		return MB_MAX_RING;
	case MB_REG_CHUNK_SIZE:
		return m->g.chunk_size;
	case MB_REG_CONTROL:
		return r->control;
	case MB_REG_STATUS:
		return r->status;
	case MB_REG_ERR_CODE:
		return r->err_code;
	case MB_REG_SQ_BASE_LO:
		return (uint32_t)r->sq_base;
	case MB_REG_SQ_BASE_HI:
		return (uint32_t)(r->sq_base >> 32);
	case MB_REG_SQ_SIZE:
		return r->sq_size;
	case MB_REG_CQ_BASE_LO:
		return (uint32_t)r->cq_base;
	case MB_REG_CQ_BASE_HI:
		return (uint32_t)(r->cq_base >> 32);
	case MB_REG_CQ_SIZE:
		return r->cq_size;
	case MB_REG_SQ_TAIL:
		return r->sq_tail;
	case MB_REG_SQ_HEAD:
		return r->sq_head;
	case MB_REG_CQ_TAIL:
		return r->cq_tail;
	case MB_REG_CQ_HEAD:
		return r->cq_head;
	case MB_REG_COMPLETED:
		return r->completed;
	}
	return 0;
}

static int mb_bar_access(struct devmig_device *dev, unsigned bar, uint64_t offset, void *buf,
			 size_t len, bool is_write)
{
	struct memblk *m = to_mb(dev);
	uint32_t v = 0;

	if (bar != 0 || len != 4 || (offset & 3))
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (is_write) {
		memcpy(&v, buf, 4);
		reg_write_locked(m, offset, v);
	} else {
		v = reg_read_locked(m, offset);
		memcpy(buf, &v, 4);
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* ---------------------------------------------------------------- migration */

/* Stopped, after the storage: the registers and the requests still queued. */
static int mb_save_state(struct devmig_device *dev, struct devmig_save *s)
{
	struct memblk *m = to_mb(dev);
	uint8_t regs[MB_REGS_LEN], infl[MB_INFLIGHT_MAX_LEN];
	struct mb_sqe q[MB_MAX_INFLIGHT];

	pthread_mutex_lock(&m->lock);
	mb_regs_encode(&m->r, regs);
	for (unsigned i = 0; i < m->qcount; i++)
		q[i] = m->q[(m->qhead + i) % MB_MAX_INFLIGHT];
	size_t n = mb_inflight_encode(q, m->qcount, infl);
	pthread_mutex_unlock(&m->lock);
	int rc = devmig_save_record(s, MB_REC_REGS, regs, sizeof(regs));
	return rc ? rc : devmig_save_record(s, MB_REC_INFLIGHT, infl, n);
}

/* The core's figure (the storage, config, framing) plus the two records. */
static uint64_t mb_stop_copy_size(struct devmig_device *dev)
{
	return devmig_device_default_stop_copy_size(dev) + 2 * DEVMIG_RECORD_OVERHEAD +
	       MB_REGS_LEN + MB_INFLIGHT_MAX_LEN;
}

static int mb_load(struct devmig_device *dev, unsigned type, const void *data, size_t len,
		   char *why, size_t whylen)
{
	char reason[200];
	int rc = mb_state_load(&to_mb(dev)->loaded, type, data, len, reason, sizeof(reason));

	if (rc)
		snprintf(why, whylen, "memblk: %s", reason);
	return rc;
}

static int mb_load_check(struct devmig_device *dev, char *why, size_t whylen)
{
	char reason[200];
	int rc = mb_state_check(&to_mb(dev)->loaded, reason, sizeof(reason));

	if (rc)
		snprintf(why, whylen, "memblk: %s", reason);
	return rc;
}

/* The core has swapped the loaded storage in; the worker is idle (stopped). */
static void mb_load_apply(struct devmig_device *dev)
{
	struct memblk *m = to_mb(dev);

	pthread_mutex_lock(&m->lock);
	m->r = m->loaded.regs;
	memcpy(m->q, m->loaded.inflight, sizeof(m->q));
	m->qcount = m->loaded.ninflight;
	m->qhead = 0;
	m->disable_pending = false;
	m->gen++;
	pthread_mutex_unlock(&m->lock);
	mb_state_reset(&m->loaded);
}

static void mb_load_abort(struct devmig_device *dev)
{
	mb_state_reset(&to_mb(dev)->loaded);
}

/* ---------------------------------------------------------------- lifecycle */

static int mb_arc(struct devmig_device *dev, enum devmig_state from, enum devmig_state to,
		  struct devmig_arc_result *res)
{
	struct memblk *m = to_mb(dev);
	bool qf = devmig_state_is_quiesced(from), qt = devmig_state_is_quiesced(to);

	(void)res;
	pthread_mutex_lock(&m->lock);
	if (!qf && qt)
		pause_locked(m);
	else if (qf && !qt)
		resume_locked(m);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static void mb_reset(struct devmig_device *dev)
{
	struct memblk *m = to_mb(dev);

	pthread_mutex_lock(&m->lock);
	pause_locked(m);
	memset(&m->r, 0, sizeof(m->r));
	m->r.cq_phase = 1;
	m->qcount = m->qhead = 0;
	m->disable_pending = false;
	m->gen++;
	resume_locked(m); /* the core has published RUNNING */
	pthread_mutex_unlock(&m->lock);
	mb_state_reset(&m->loaded);
}

static int mb_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	struct memblk *m = to_mb(dev);
	int rc = devmig_pci_set_ids(cfg, MB_PCI_VENDOR, MB_PCI_DEVICE);
	if (!rc)
		rc = devmig_pci_set_class(cfg, MB_PCI_CLASS, 1);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 0, MB_BAR0_SIZE, 0);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 1, 4096, 0);
	if (rc >= 0)
		rc = devmig_pci_add_pm(cfg, 0);
	if (rc >= 0)
		rc = devmig_pci_add_msix(cfg, 0, MB_MSIX_VECTORS, 1, 0, 1, 2048);
	if (rc >= 0)
		rc = devmig_pci_add_pcie(cfg, 0, PCI_EXP_LNKCAP_SLS_8_0GB, 4);
	if (rc >= 0 && !(m->trk = devmig_tracker_new(dev, m->g.size, m->g.chunk_size,
						     m->tracker_flags)))
		rc = -errno;
	return rc < 0 ? rc : 0;
}

static void stop_worker(struct memblk *m)
{
	if (!m->worker_started)
		return;
	pthread_mutex_lock(&m->lock);
	m->exiting = true;
	pthread_cond_broadcast(&m->wake);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->worker, NULL);
	m->worker_started = false;
}

static void mb_release(struct devmig_device *dev)
{
	stop_worker(to_mb(dev));
}

static const struct devmig_device_ops memblk_ops = {
	.realize = mb_realize,
	.release = mb_release,
	.reset = mb_reset,
	.bar_access = mb_bar_access,
};

/*
 * What the arcs take besides the core's part (the stop-copy data): a
 * quiescing arc waits for the request being executed, at most MB_MAX_BLOCKS
 * blocks copied once (well under a millisecond; 1 ms with a margin).
 */
#define MB_QUIESCE_NS (1000ull * 1000)
static const struct devmig_arc_cost memblk_arc_costs[] = {
	{ DEVMIG_STATE_RUNNING, DEVMIG_STATE_RUNNING_P2P, MB_QUIESCE_NS },
	{ DEVMIG_STATE_PRE_COPY, DEVMIG_STATE_PRE_COPY_P2P, MB_QUIESCE_NS },
	{ DEVMIG_STATE_ERROR, DEVMIG_STATE_ERROR, 0 },
};

static const struct devmig_migration_ops memblk_mig = {
	.caps = DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P | DEVMIG_MIG_PRE_COPY,
	.arc = mb_arc,
	.save_state = mb_save_state,
	.stop_copy_size = mb_stop_copy_size,
	.load = mb_load,
	.load_check = mb_load_check,
	.load_apply = mb_load_apply,
	.load_abort = mb_load_abort,
	.arc_costs = memblk_arc_costs,
	.dirty_rate_limit = true,
};

static int parse_size(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	size_t i = 0;

	if (!n)
		return -1;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (!i)
		return -1;
	if (i < n) {
		switch (s[i] | 0x20) {
		case 'k':
			mul = 1ull << 10;
			break;
		case 'm':
			mul = 1ull << 20;
			break;
		case 'g':
			mul = 1ull << 30;
			break;
		default:
			return -1;
		}
		i++;
		/* optional "iB" / "B" */
		if (i < n && (s[i] | 0x20) == 'i')
			i++;
		if (i < n && (s[i] | 0x20) == 'b')
			i++;
	}
	if (i != n || v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static int parse_args(const char *args, struct mb_geom *g, bool *zerocopy, char *err,
		      size_t errlen)
{
	*zerocopy = true;
	g->size = MB_DEFAULT_SIZE;
	g->block_size = MB_BLOCK_SIZE;
	g->chunk_size = MB_DEFAULT_CHUNK;
	for (const char *p = args; p && *p;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', n);
		uint64_t v;
		if (!eq || parse_size(eq + 1, n - (size_t)(eq + 1 - p), &v)) {
			snprintf(err, errlen, "memblk: bad option '%.*s' (size=N[K|M|G], chunk=N[K|M], "
				 "zerocopy=0|1)",
				 (int)n, p);
			return -EINVAL;
		}
		if ((size_t)(eq - p) == 4 && !strncmp(p, "size", 4)) {
			g->size = v;
		} else if ((size_t)(eq - p) == 8 && !strncmp(p, "zerocopy", 8) && v <= 1) {
			*zerocopy = v;
		} else if ((size_t)(eq - p) == 5 && !strncmp(p, "chunk", 5)) {
			if (v > UINT32_MAX) {
				snprintf(err, errlen, "memblk: chunk too large");
				return -EINVAL;
			}
			g->chunk_size = (uint32_t)v;
		} else {
			snprintf(err, errlen, "memblk: unknown option '%.*s'", (int)(eq - p), p);
			return -EINVAL;
		}
		p = end ? end + 1 : p + n;
	}
	char why[160];
	if (mb_geom_check(g, why, sizeof(why))) {
		snprintf(err, errlen, "memblk: %s", why);
		return -EINVAL;
	}
	if (g->size > MB_MAX_SIZE) {
		snprintf(err, errlen, "memblk: size %" PRIu64 " exceeds %llu", g->size,
			 (unsigned long long)MB_MAX_SIZE);
		return -EINVAL;
	}
	return 0;
}
static void mb_free_mem(struct memblk *m)
{
	free(m->bounce);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->wake);
	pthread_cond_destroy(&m->idle);
	free(m);
}

static struct devmig_device *memblk_create_as(const char *name, const struct mb_stream_id *sid,
					      const char *args, char *err, size_t errlen)
{
	struct mb_geom g;
	bool zerocopy;

	if (parse_args(args, &g, &zerocopy, err, errlen))
		return NULL;
	struct memblk *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "memblk: out of memory");
		return NULL;
	}
	m->sid = sid;
	m->g = g;
	m->tracker_flags = (sid->zero_records ? DEVMIG_TRACKER_ZERO : 0) |
			   (zerocopy ? 0 : DEVMIG_TRACKER_COPY);
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->wake, NULL);
	pthread_cond_init(&m->idle, NULL);
	m->r.cq_phase = 1;
	m->bounce = malloc((size_t)MB_MAX_BLOCKS * MB_BLOCK_SIZE);
	if (!m->bounce) {
		snprintf(err, errlen, "memblk: out of memory");
		mb_free_mem(m);
		return NULL;
	}
	m->id.name = name;
	m->id.version = sid->version;
	m->id.accepts = sid->accepts;
	m->dev.id = &m->id;
	m->dev.ops = &memblk_ops;
	m->dev.mig = &memblk_mig;
	int rc = devmig_device_init(&m->dev);
	if (rc) {
		snprintf(err, errlen, "memblk: %s for %" PRIu64 " bytes of storage", strerror(-rc),
			 g.size);
		mb_free_mem(m);
		return NULL;
	}
	if (pthread_create(&m->worker, NULL, worker_main, m)) {
		snprintf(err, errlen, "memblk: cannot start the worker thread");
		devmig_device_destroy(&m->dev);
		mb_free_mem(m);
		return NULL;
	}
	m->worker_started = true;
	return &m->dev;
}

static void memblk_free(struct devmig_device *dev)
{
	struct memblk *m = to_mb(dev);

	devmig_device_destroy(dev); /* calls release: stops the worker */
	mb_free_mem(m);
}

/* v2, the current one: never-written chunks travel as ZERO records; loads v1 state too. */
static struct devmig_device *memblk_create(const char *args, char *err, size_t errlen)
{
	return memblk_create_as("memblk", &mb_stream_v2, args, err, errlen);
}

/* v1, the first release: every chunk travels with its bytes; loads only v1 state. */
static struct devmig_device *memblk1_create(const char *args, char *err, size_t errlen)
{
	return memblk_create_as("memblk1", &mb_stream_v1, args, err, errlen);
}

const struct devmig_variant devmig_variant_memblk = {
	DEVMIG_VARIANT_INIT,
	.name = "memblk",
	.summary = "a block device with its storage in device memory, streamed while it runs "
		   "(args: size=256M, chunk=64K, zerocopy=1)",
	.create = memblk_create,
	.free = memblk_free,
};

const struct devmig_variant devmig_variant_memblk1 = {
	DEVMIG_VARIANT_INIT,
	.name = "memblk1",
	.summary = "memblk v1, the first release: same device, every chunk sent whole; loads "
		   "only v1 state, memblk (v2) loads its state (same args)",
	.create = memblk1_create,
	.free = memblk_free,
};
