/* SPDX-License-Identifier: MIT */
/*
 * memblk: a migratable block device whose storage lives inside the device
 * (think of an accelerator's local memory). Register and ring layout:
 * memblk_hw.h and README.md; migration stream: memblk_stream.h.
 *
 * Threads and locks.
 *  - The server thread calls the ops (bar_access, arc, save, load, ...).
 *  - One worker thread per device fetches and executes requests; it is
 *    woken by doorbells and never runs inside a message handler.
 *  - m->lock guards the registers, the fetched-request queue and the
 *    worker's run/pause flags. It is never held across DMA or an interrupt.
 *  - stripe[i % MB_STRIPES] guards storage chunk i against the saver: a
 *    guest WRITE copies into the chunk and sets its dirty bit under the
 *    stripe lock; the saver clears the dirty bit and copies the chunk under
 *    the same lock. A write racing a copy therefore either lands before the
 *    copy (and is in it) or sets the dirty bit again after it (and the chunk
 *    is sent again): no acknowledged write is lost.
 *  - The worker is the only writer of the storage, so its READs need no lock.
 *  - Bitmap words are shared by chunks of different stripes, so they are
 *    changed with atomic read-modify-write operations.
 *
 * Quiescing. An arc into a quiesced state sets `paused` and waits until the
 * worker is idle: the request being executed completes (its data moved, its
 * completion posted, its interrupt raised), fetched requests not yet started
 * stay in the queue and travel in the stream (INFLIGHT). An arc back to a
 * running state clears `paused` and wakes the worker, which picks up
 * doorbells rung in the meantime. The core publishes the new state only
 * after arc() returns, so the worker also checks devmig_device_state() and,
 * while it still reads a quiesced state, waits in short timed steps.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>

#include "devices.h"
#include "devmig/device.h"
#include "memblk_hw.h"
#include "memblk_stream.h"

#define MB_DEFAULT_SIZE (256ull << 20)
#define MB_DEFAULT_CHUNK (64u << 10)
#define MB_MAX_SIZE (64ull << 30)
#define MB_STRIPES 64u
#define MB_MSIX_VECTORS 1u
#define MB_PRE_MAX (MB_REC_OVERHEAD + MB_HEADER_FIXED + MB_VERSION_MAX + 8u + \
		    MB_MAX_INFLIGHT * MB_SQE_SIZE)

enum save_phase { S_HEADER, S_PASS1, S_DIRTY, S_REGS, S_INFL, S_END, S_DONE };

/* What the saver emits next. */
struct pick {
	uint32_t type; /* 0: nothing now */
	uint32_t chunk;
	bool pass1;
};

struct memblk {
	struct devmig_device dev;
	struct devmig_device_ops ops; /* memblk_ops with the variant's identity, without
				       * save_ref for zerocopy=0 */
	const struct mb_stream_id *sid; /* v1 or v2: version, stream format, accepts */
	struct mb_geom g;
	uint32_t nchunks, nwords;
	uint8_t *storage;

	pthread_mutex_t stripe[MB_STRIPES];
	_Atomic uint64_t *dirty;   /* chunk must be (re)sent */
	_Atomic uint64_t *sent;    /* chunk sent in this save session */
	_Atomic uint64_t *written; /* chunk ever written (else all zero) */
	_Atomic uint64_t dirty_bytes; /* bytes of chunks both sent and dirty */

	pthread_mutex_t lock;
	pthread_cond_t wake, idle;
	struct mb_regs r;
	uint64_t gen;        /* bumped when the queues are torn down or replaced */
	bool paused, exiting, busy, disable_pending, worker_started;
	struct mb_sqe q[MB_MAX_INFLIGHT];
	unsigned qhead, qcount;
	pthread_t worker;
	uint8_t *bounce;     /* the worker's WRITE buffer (MB_MAX_BLOCKS blocks) */

	/* save session: server thread only */
	struct {
		bool active;
		enum save_phase phase;
		uint32_t pass_next, scan;
		uint64_t nrec;
		/* the record being emitted: pre, then body, then suf */
		uint8_t pre[MB_PRE_MAX];
		size_t pre_len;
		const uint8_t *body;
		size_t body_len;
		bool body_ref;   /* body points into the storage (zero-copy) */
		uint8_t suf[MB_REC_CRC];
		size_t suf_len;
		size_t pos, total;
		uint32_t type;
		bool pass1;
		uint32_t clen;   /* storage bytes the record stands for */
		uint8_t *cbuf;   /* chunk copy when a record does not fit the caller's buffer */
	} s;

	/* load session: server thread only */
	uint8_t *stage;
	struct mb_loader *ld;
};

static struct memblk *to_mb(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct memblk, dev);
}

static uint64_t cap_blocks(const struct memblk *m)
{
	return m->g.size / MB_BLOCK_SIZE;
}

/* ---------------------------------------------------------------- storage */

/*
 * Device memory: pages cost memory only once written. Huge pages, because a
 * page fault and a TLB miss per 4 KiB dominate copying gigabytes (the save
 * path sends straight from here; the load path writes a fresh mapping).
 */
static void *map_storage(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, size, MADV_HUGEPAGE);
	return p;
}

static inline uint64_t bit_of(uint32_t chunk)
{
	return 1ull << (chunk % 64);
}

/* Copy a guest WRITE into the storage, chunk by chunk, marking each dirty. */
static void store_write(struct memblk *m, uint64_t off, const uint8_t *src, size_t len)
{
	while (len) {
		uint32_t ci = (uint32_t)(off / m->g.chunk_size);
		uint64_t cend = (uint64_t)(ci + 1) * m->g.chunk_size;
		size_t n = cend - off < len ? (size_t)(cend - off) : len;
		uint64_t bit = bit_of(ci);
		pthread_mutex_t *st = &m->stripe[ci % MB_STRIPES];

		pthread_mutex_lock(st);
		memcpy(m->storage + off, src, n);
		uint64_t old = atomic_fetch_or(&m->dirty[ci / 64], bit);
		atomic_fetch_or(&m->written[ci / 64], bit);
		if (!(old & bit) && (atomic_load(&m->sent[ci / 64]) & bit))
			atomic_fetch_add(&m->dirty_bytes, mb_chunk_len(&m->g, ci));
		pthread_mutex_unlock(st);
		off += n;
		src += n;
		len -= n;
	}
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
			rc = devmig_device_dma_write(&m->dev, e->buf, m->storage + off, len);
		} else {
			rc = devmig_device_dma_read(&m->dev, e->buf, m->bounce, len);
			if (!rc)
				store_write(m, off, m->bounce, len);
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

static void timed_wait(struct memblk *m, long ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += ns;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&m->wake, &m->lock, &ts);
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
		if (devmig_state_is_quiesced(devmig_device_state(&m->dev))) {
			/* Resumed by arc() but the core has not published the running
			 * state yet: DMA would be refused. */
			m->busy = false;
			pthread_cond_broadcast(&m->idle);
			timed_wait(m, 200 * 1000);
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

/* ---------------------------------------------------------------- save */

/*
 * A save session opens: every chunk is to be sent, none has been. Stripe by
 * stripe, so guest writes go on; dirty_bytes is zeroed at the end, when no
 * chunk is marked sent any more, which makes it exact.
 */
static void saver_open(struct memblk *m)
{
	for (uint32_t st = 0; st < MB_STRIPES; st++) {
		pthread_mutex_lock(&m->stripe[st]);
		for (uint32_t ci = st; ci < m->nchunks; ci += MB_STRIPES) {
			atomic_fetch_or(&m->dirty[ci / 64], bit_of(ci));
			atomic_fetch_and(&m->sent[ci / 64], ~bit_of(ci));
		}
		pthread_mutex_unlock(&m->stripe[st]);
	}
	atomic_store(&m->dirty_bytes, 0);
	m->s.active = true;
	m->s.phase = S_HEADER;
	m->s.pass_next = m->s.scan = 0;
	m->s.nrec = 0;
	m->s.pos = m->s.total = 0;
	m->s.type = 0;
}

static void saver_close(struct memblk *m)
{
	m->s.active = false;
	m->s.pos = m->s.total = 0;
	free(m->s.cbuf);
	m->s.cbuf = NULL;
}

/* Next dirty chunk at or after the scan position (wrapping), or -1. */
static int64_t next_dirty(struct memblk *m)
{
	for (uint32_t k = 0; k <= m->nwords; k++) {
		uint32_t w = (m->s.scan / 64 + k) % m->nwords;
		uint64_t bits = atomic_load_explicit(&m->dirty[w], memory_order_relaxed);
		if (k == 0)
			bits &= ~0ull << (m->s.scan % 64);
		if (bits) {
			uint32_t ci = w * 64 + (uint32_t)__builtin_ctzll(bits);
			m->s.scan = ci + 1 < m->nchunks ? ci + 1 : 0;
			return ci;
		}
		if (k == m->nwords - 1 && m->s.scan % 64 == 0)
			break; /* scanned every word from a word boundary */
	}
	return -1;
}

/* Decide the next record (and commit to it). */
static struct pick pick_next(struct memblk *m, bool final)
{
	struct pick p = { 0, 0, false };

	switch (m->s.phase) {
	case S_HEADER:
		p.type = MB_REC_HEADER;
		m->s.phase = S_PASS1;
		return p;
	case S_PASS1:
		if (m->s.pass_next < m->nchunks) {
			p.type = MB_REC_CHUNK;
			p.chunk = m->s.pass_next++;
			p.pass1 = true;
			return p;
		}
		m->s.phase = S_DIRTY;
		/* fall through */
	case S_DIRTY: {
		int64_t ci = next_dirty(m);
		if (ci >= 0) {
			p.type = MB_REC_CHUNK;
			p.chunk = (uint32_t)ci;
			return p;
		}
		if (!final)
			return p;
		m->s.phase = S_REGS;
	}
		/* fall through */
	case S_REGS:
		p.type = MB_REC_REGS;
		m->s.phase = S_INFL;
		return p;
	case S_INFL:
		p.type = MB_REC_INFLIGHT;
		m->s.phase = S_END;
		return p;
	case S_END:
		p.type = MB_REC_END;
		m->s.phase = S_DONE;
		return p;
	case S_DONE:
		break;
	}
	return p;
}

/*
 * Take chunk ci for sending: clear its dirty bit, mark it sent, and (when it
 * is to travel as a CHUNK) copy it to dst under its stripe lock, or with dst
 * NULL only report where it is (zero-copy: the device is stopped). Returns
 * whether it travels as a CHUNK: it holds data, or the stream format has no
 * ZERO record (format 1: a never-written chunk's zeros are sent too).
 */
static bool take_chunk(struct memblk *m, uint32_t ci, uint8_t *dst)
{
	uint64_t bit = bit_of(ci);
	uint32_t clen = mb_chunk_len(&m->g, ci);
	pthread_mutex_t *st = &m->stripe[ci % MB_STRIPES];

	pthread_mutex_lock(st);
	uint64_t d = atomic_fetch_and(&m->dirty[ci / 64], ~bit);
	uint64_t s = atomic_fetch_or(&m->sent[ci / 64], bit);
	if ((d & bit) && (s & bit))
		atomic_fetch_sub(&m->dirty_bytes, clen);
	bool data = (atomic_load(&m->written[ci / 64]) & bit) || m->sid->format < MB_FORMAT_2;
	if (data && dst)
		memcpy(dst, m->storage + (uint64_t)ci * m->g.chunk_size, clen);
	pthread_mutex_unlock(st);
	return data;
}

/* The small records, built whole into s.pre. */
static void build_small(struct memblk *m, uint32_t type)
{
	uint8_t *p = m->s.pre + MB_REC_HDR;
	uint32_t len = 0;

	switch (type) {
	case MB_REC_HEADER:
		m->s.pre_len = mb_header_record(m->s.pre, &m->g, m->sid->version, m->sid->format);
		return;
	case MB_REC_REGS:
		pthread_mutex_lock(&m->lock);
		mb_regs_encode(&m->r, p);
		pthread_mutex_unlock(&m->lock);
		len = MB_REGS_LEN;
		break;
	case MB_REC_INFLIGHT:
		pthread_mutex_lock(&m->lock);
		mb_put32(p, m->qcount);
		mb_put32(p + 4, 0);
		for (unsigned i = 0; i < m->qcount; i++)
			mb_sqe_encode(&m->q[(m->qhead + i) % MB_MAX_INFLIGHT],
				      p + 8 + i * MB_SQE_SIZE);
		len = 8 + m->qcount * MB_SQE_SIZE;
		pthread_mutex_unlock(&m->lock);
		break;
	case MB_REC_END:
		mb_put64(p, m->s.nrec);
		mb_put64(p + 8, 0);
		len = MB_END_LEN;
		break;
	}
	m->s.pre_len = mb_rec_frame(m->s.pre, type, len);
}

static void zero_record(uint8_t *out, uint32_t ci)
{
	mb_put32(out + MB_REC_HDR, ci);
	mb_put32(out + MB_REC_HDR + 4, 0);
	mb_rec_frame(out, MB_REC_ZERO, MB_CHUNK_PREFIX);
}

/*
 * Start the picked record into the cursor. ref: zero-copy (the chunk's body
 * points into the storage); else the chunk is copied to s.cbuf.
 */
static int start_record(struct memblk *m, const struct pick *p, bool ref)
{
	m->s.type = p->type;
	m->s.pass1 = p->pass1;
	m->s.body = NULL;
	m->s.body_ref = false;
	m->s.body_len = m->s.suf_len = 0;
	m->s.clen = 0;
	m->s.pos = 0;
	if (p->type != MB_REC_CHUNK) {
		build_small(m, p->type);
	} else {
		uint32_t clen = mb_chunk_len(&m->g, p->chunk);
		uint8_t *dst = NULL;
		if (!ref) {
			if (!m->s.cbuf)
				m->s.cbuf = malloc(m->g.chunk_size);
			if (!m->s.cbuf)
				return -ENOMEM;
			dst = m->s.cbuf;
		}
		m->s.clen = clen;
		if (!take_chunk(m, p->chunk, dst)) {
			m->s.type = MB_REC_ZERO;
			zero_record(m->s.pre, p->chunk);
			m->s.pre_len = MB_REC_OVERHEAD + MB_CHUNK_PREFIX;
		} else {
			m->s.body = dst ? dst : m->storage + (uint64_t)p->chunk * m->g.chunk_size;
			m->s.body_ref = !dst;
			m->s.body_len = clen;
			mb_rec_begin(m->s.pre, MB_REC_CHUNK, MB_CHUNK_PREFIX + clen);
			mb_put32(m->s.pre + MB_REC_HDR, p->chunk);
			mb_put32(m->s.pre + MB_REC_HDR + 4, 0);
			m->s.pre_len = MB_REC_HDR + MB_CHUNK_PREFIX;
			uint32_t crc = devmig_crc32c(0, m->s.pre, m->s.pre_len);
			mb_put32(m->s.suf, devmig_crc32c(crc, m->s.body, clen));
			m->s.suf_len = MB_REC_CRC;
		}
	}
	m->s.total = m->s.pre_len + m->s.body_len + m->s.suf_len;
	m->s.nrec++;
	return 0;
}

/* The current record's bytes at pos: pointer and contiguous length; *ref
 * tells whether they are storage referenced in place. */
static const uint8_t *cur_piece(struct memblk *m, size_t *n, bool *ref)
{
	size_t pos = m->s.pos;

	*ref = false;
	if (pos < m->s.pre_len) {
		*n = m->s.pre_len - pos;
		return m->s.pre + pos;
	}
	pos -= m->s.pre_len;
	if (pos < m->s.body_len) {
		*n = m->s.body_len - pos;
		*ref = m->s.body_ref;
		return m->s.body + pos;
	}
	pos -= m->s.body_len;
	*n = m->s.suf_len - pos;
	return m->s.suf + pos;
}

/* A whole chunk record built straight into out (room checked by the caller). */
static size_t direct_chunk(struct memblk *m, const struct pick *p, uint8_t *out)
{
	uint32_t clen = mb_chunk_len(&m->g, p->chunk);

	m->s.nrec++;
	if (!take_chunk(m, p->chunk, out + MB_REC_HDR + MB_CHUNK_PREFIX)) {
		zero_record(out, p->chunk);
		return MB_REC_OVERHEAD + MB_CHUNK_PREFIX;
	}
	mb_put32(out + MB_REC_HDR, p->chunk);
	mb_put32(out + MB_REC_HDR + 4, 0);
	return mb_rec_frame(out, MB_REC_CHUNK, MB_CHUNK_PREFIX + clen);
}

static bool final_now(struct memblk *m)
{
	return devmig_device_state(&m->dev) == DEVMIG_STATE_STOP_COPY;
}

static ssize_t mb_save(struct devmig_device *dev, void *buf, size_t len)
{
	struct memblk *m = to_mb(dev);
	uint8_t *out = buf;
	size_t n = 0;
	bool final = final_now(m);

	if (!m->s.active)
		return 0;
	while (n < len) {
		if (m->s.pos < m->s.total) {
			size_t k;
			bool ref;
			const uint8_t *src = cur_piece(m, &k, &ref);
			if (k > len - n)
				k = len - n;
			memcpy(out + n, src, k);
			m->s.pos += k;
			n += k;
			continue;
		}
		struct pick p = pick_next(m, final);
		if (!p.type)
			break;
		uint32_t clen = p.type == MB_REC_CHUNK ? mb_chunk_len(&m->g, p.chunk) : 0;
		if (p.type == MB_REC_CHUNK && len - n >= MB_REC_OVERHEAD + MB_CHUNK_PREFIX + clen) {
			n += direct_chunk(m, &p, out + n);
			continue;
		}
		int rc = start_record(m, &p, false);
		if (rc)
			return rc;
	}
	return (ssize_t)n;
}

/*
 * Zero-copy save (the core uses it in STOP_COPY): the chunk data of a
 * CHUNK record is pointed at where it lies in the storage, which no one
 * changes until the session ends since the device is stopped; framing,
 * ZERO records and the register records are copied into buf, as many as
 * fit before the next referenced chunk.
 */
static ssize_t mb_save_ref(struct devmig_device *dev, void *buf, size_t len, const void **data)
{
	struct memblk *m = to_mb(dev);
	uint8_t *out = buf;
	size_t n = 0;
	bool final = final_now(m);
	bool stopped = devmig_state_is_stopped(devmig_device_state(dev));

	*data = buf;
	if (!m->s.active)
		return 0;
	while (n < len) {
		if (m->s.pos < m->s.total) {
			size_t k;
			bool ref;
			const uint8_t *src = cur_piece(m, &k, &ref);
			if (ref) {
				if (n)
					break; /* hand out the copied bytes first */
				if (k > len)
					k = len;
				*data = src;
				m->s.pos += k;
				return (ssize_t)k;
			}
			if (k > len - n)
				k = len - n;
			memcpy(out + n, src, k);
			m->s.pos += k;
			n += k;
			continue;
		}
		struct pick p = pick_next(m, final);
		if (!p.type)
			break;
		int rc = start_record(m, &p, stopped);
		if (rc)
			return rc;
	}
	return (ssize_t)n;
}

static void mb_precopy_info(struct devmig_device *dev, uint64_t *initial, uint64_t *dirty)
{
	struct memblk *m = to_mb(dev);
	uint64_t done = (uint64_t)m->s.pass_next * m->g.chunk_size;
	uint64_t init = done < m->g.size ? m->g.size - done : 0;
	uint64_t extra = atomic_load(&m->dirty_bytes);
	size_t rem = m->s.total - m->s.pos;

	if (!m->s.active) {
		*initial = *dirty = 0;
		return;
	}
	if (rem && m->s.pass1) {
		/* A first-pass record partly handed out: its storage bytes still to
		 * come are initial data, its framing still to come is counted with
		 * the dirty data (a ZERO record stands for its whole chunk). */
		if (m->s.type == MB_REC_CHUNK) {
			size_t at = m->s.pos;
			size_t body_left = at >= m->s.pre_len + m->s.body_len ? 0
					   : at <= m->s.pre_len ? m->s.body_len
					   : m->s.pre_len + m->s.body_len - at;
			init += body_left;
			extra += rem - body_left;
		} else {
			init += m->s.clen;
		}
	} else {
		extra += rem;
	}
	if (m->s.phase == S_HEADER)
		extra += MB_REC_OVERHEAD + mb_header_len(m->sid->version);
	*initial = init;
	*dirty = extra;
}

/* Storage bytes a save sends for chunks from..nchunks-1 in its first pass: a
 * chunk never written travels as a ZERO record in format 2, without its bytes. */
static uint64_t first_pass_bytes(struct memblk *m, uint32_t from)
{
	bool every = m->sid->format < MB_FORMAT_2;
	uint64_t bytes = 0;

	for (uint32_t ci = from; ci < m->nchunks; ci++)
		if (every || (atomic_load(&m->written[ci / 64]) & bit_of(ci)))
			bytes += mb_chunk_len(&m->g, ci);
	return bytes;
}

static uint64_t mb_stop_copy_size(struct devmig_device *dev)
{
	struct memblk *m = to_mb(dev);
	uint64_t records, bytes;

	if (m->s.active) {
		uint32_t next = m->s.pass_next < m->nchunks ? m->s.pass_next : m->nchunks;
		uint64_t dirty = atomic_load(&m->dirty_bytes);
		bytes = first_pass_bytes(m, next) + dirty + (m->s.total - m->s.pos);
		records = (m->nchunks - next) + (dirty + m->g.chunk_size - 1) / m->g.chunk_size;
	} else {
		bytes = first_pass_bytes(m, 0) + MB_REC_OVERHEAD + mb_header_len(m->sid->version);
		records = m->nchunks;
	}
	return bytes + records * (MB_REC_OVERHEAD + MB_CHUNK_PREFIX) + 3 * MB_REC_OVERHEAD +
	       MB_REGS_LEN + 8 + MB_MAX_INFLIGHT * MB_SQE_SIZE + MB_END_LEN;
}

/* ---------------------------------------------------------------- load */

/* The staging area the stream loads into; committed by swapping it in. */
static int stage_open(struct memblk *m)
{
	if (m->stage)
		return 0;
	m->stage = map_storage(m->g.size);
	return m->stage ? 0 : -ENOMEM;
}

static void load_drop(struct memblk *m)
{
	mb_loader_free(m->ld);
	m->ld = NULL;
	if (m->stage)
		munmap(m->stage, m->g.size);
	m->stage = NULL;
}

static int mb_load(struct devmig_device *dev, const void *buf, size_t len, char *why,
		   size_t whylen)
{
	struct memblk *m = to_mb(dev);

	if (!m->ld) {
		/* Stage into a fresh mapping (opened by the RESUMING arc); commit
		 * swaps it in for the storage, so a refused stream changes nothing. */
		m->ld = stage_open(m) ? NULL : mb_loader_new_id(&m->g, m->sid, m->stage);
		if (!m->ld) {
			load_drop(m);
			snprintf(why, whylen, "memblk: out of memory for the staging area");
			return -ENOMEM;
		}
	}
	if (mb_loader_write(m->ld, buf, len)) {
		snprintf(why, whylen, "memblk: %s", mb_loader_error(m->ld));
		return -EINVAL;
	}
	return 0;
}

static int mb_load_commit(struct devmig_device *dev, char *why, size_t whylen)
{
	struct memblk *m = to_mb(dev);

	if (!m->ld) {
		snprintf(why, whylen, "memblk: truncated: no device data arrived");
		return -EINVAL;
	}
	if (mb_loader_finish(m->ld)) {
		snprintf(why, whylen, "memblk: %s", mb_loader_error(m->ld));
		return -EINVAL;
	}
	/* Valid and complete: apply. The worker is idle (RESUMING is stopped). */
	uint8_t *old = m->storage;
	pthread_mutex_lock(&m->lock);
	m->storage = m->stage;
	m->stage = NULL;
	m->r = *mb_loader_regs(m->ld);
	m->qcount = mb_loader_inflight(m->ld, m->q);
	m->qhead = 0;
	m->disable_pending = false;
	m->gen++;
	for (uint32_t w = 0; w < m->nwords; w++) {
		uint64_t bits = 0;
		for (uint32_t b = 0; b < 64 && w * 64 + b < m->nchunks; b++)
			if (mb_loader_chunk_data(m->ld, w * 64 + b))
				bits |= 1ull << b;
		atomic_store(&m->written[w], bits);
		atomic_store(&m->dirty[w], 0);
		atomic_store(&m->sent[w], 0);
	}
	atomic_store(&m->dirty_bytes, 0);
	pthread_mutex_unlock(&m->lock);
	munmap(old, m->g.size);
	mb_loader_free(m->ld);
	m->ld = NULL;
	return 0;
}

static void mb_load_abort(struct devmig_device *dev)
{
	load_drop(to_mb(dev));
}

/* ---------------------------------------------------------------- lifecycle */

static int mb_arc(struct devmig_device *dev, enum devmig_state from, enum devmig_state to,
		  struct devmig_arc_result *res)
{
	struct memblk *m = to_mb(dev);
	bool qf = devmig_state_is_quiesced(from), qt = devmig_state_is_quiesced(to);
	enum devmig_arc_session sess = devmig_arc_session(from, to);

	if (!qf && qt) {
		pthread_mutex_lock(&m->lock);
		pause_locked(m);
		pthread_mutex_unlock(&m->lock);
	}
	if (sess == DEVMIG_ARC_OPEN_SAVE) {
		saver_open(m); /* PRE_COPY: from here on rewrites of sent chunks are tracked */
	} else if (sess == DEVMIG_ARC_OPEN_LOAD && stage_open(m)) {
		/* Out of address space: better refused now, while the source runs. */
		snprintf(res->why, sizeof(res->why), "memblk: out of memory for the staging area");
		return -ENOMEM;
	} else if (sess == DEVMIG_ARC_END && devmig_state_is_saving(from)) {
		saver_close(m);
	}
	if (qf && !qt) {
		pthread_mutex_lock(&m->lock);
		resume_locked(m);
		pthread_mutex_unlock(&m->lock);
	}
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
	resume_locked(m); /* the core returns the device to RUNNING */
	pthread_mutex_unlock(&m->lock);
	saver_close(m);
	load_drop(m);
}

static int mb_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	(void)dev;
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
	struct memblk *m = to_mb(dev);

	stop_worker(m);
	saver_close(m);
	load_drop(m);
}

/* The variant's name, version and accepts are filled in at create time. */
static const struct devmig_device_ops memblk_ops = {
	.realize = mb_realize,
	.release = mb_release,
	.reset = mb_reset,
	.bar_access = mb_bar_access,
	.migration_caps = DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P | DEVMIG_MIG_PRE_COPY,
	.arc = mb_arc,
	.save = mb_save,
	.save_ref = mb_save_ref,
	.precopy_info = mb_precopy_info,
	.stop_copy_size = mb_stop_copy_size,
	.load = mb_load,
	.load_commit = mb_load_commit,
	.load_abort = mb_load_abort,
};

/* "256M", "64K", "2G", "4096": binary multiples. */
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
	if (m->storage)
		munmap(m->storage, m->g.size);
	free((void *)m->dirty);
	free((void *)m->sent);
	free((void *)m->written);
	free(m->bounce);
	for (unsigned i = 0; i < MB_STRIPES; i++)
		pthread_mutex_destroy(&m->stripe[i]);
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
	m->nchunks = mb_geom_nchunks(&g);
	m->nwords = (m->nchunks + 63) / 64;
	for (unsigned i = 0; i < MB_STRIPES; i++)
		pthread_mutex_init(&m->stripe[i], NULL);
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&m->idle, NULL);
	m->r.cq_phase = 1;
	m->storage = map_storage(g.size);
	m->dirty = calloc(m->nwords, sizeof(uint64_t));
	m->sent = calloc(m->nwords, sizeof(uint64_t));
	m->written = calloc(m->nwords, sizeof(uint64_t));
	m->bounce = malloc((size_t)MB_MAX_BLOCKS * MB_BLOCK_SIZE);
	if (!m->storage || !m->dirty || !m->sent || !m->written || !m->bounce) {
		snprintf(err, errlen, "memblk: out of memory for %" PRIu64 " bytes of storage",
			 g.size);
		mb_free_mem(m);
		return NULL;
	}
	m->ops = memblk_ops;
	m->ops.name = name;
	m->ops.version = sid->version;
	m->ops.accepts = sid->accepts;
	if (!zerocopy)
		m->ops.save_ref = NULL; /* the core then copies through save */
	m->dev.ops = &m->ops;
	int rc = devmig_device_init(&m->dev);
	if (rc) {
		snprintf(err, errlen, "memblk: %s", strerror(-rc));
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

/* v2, the current one: stream format 2 (ZERO records), loads v1 state too. */
static struct devmig_device *memblk_create(const char *args, char *err, size_t errlen)
{
	return memblk_create_as("memblk", &mb_stream_v2, args, err, errlen);
}

/* v1, the first release: stream format 1 (no ZERO records), loads only v1 state. */
static struct devmig_device *memblk1_create(const char *args, char *err, size_t errlen)
{
	return memblk_create_as("memblk1", &mb_stream_v1, args, err, errlen);
}

const struct devmig_variant devmig_variant_memblk = {
	.name = "memblk",
	.summary = "a block device with its storage in device memory, streamed while it runs "
		   "(args: size=256M, chunk=64K, zerocopy=1)",
	.create = memblk_create,
	.free = memblk_free,
};

const struct devmig_variant devmig_variant_memblk1 = {
	.name = "memblk1",
	.summary = "memblk v1, the first release: same device, stream format 1 (every chunk "
		   "sent whole); loads only v1 state, memblk (v2) loads its state (same args)",
	.create = memblk1_create,
	.free = memblk_free,
};
