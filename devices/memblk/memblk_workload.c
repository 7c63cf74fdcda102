/* SPDX-License-Identifier: MIT */
/* memblk: a guest workload that checks every READ (see memblk_workload.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devmig/engine.h"
#include "memblk_workload.h"

#define MBW_MAX_DEPTH 64u
#define MBW_RING 128u               /* SQ and CQ entries: more than MBW_MAX_DEPTH */
#define MBW_CQ_OFF 4096u            /* SQ at the window's start, CQ on the next page */
#define MBW_BUF_OFF (64u << 10)     /* data buffers from here */
#define MBW_WAIT_MS 20              /* one interrupt wait; then the CQ is looked at anyway */

_Static_assert(MBW_RING * MB_SQE_SIZE <= MBW_CQ_OFF, "SQ fits before the CQ");
_Static_assert(MBW_CQ_OFF + MBW_RING * MB_CQE_SIZE <= MBW_BUF_OFF, "CQ fits before the buffers");

struct slot {
	bool busy;
	uint8_t op;
	uint32_t n;
	uint32_t ver;       /* WRITE: the version it carries */
	uint64_t lba;
	uint64_t buf_iova;  /* the slot's buffer (slot_blocks blocks) */
	uint64_t io_iova;   /* where this request's data is */
	unsigned rec;       /* which of data[] describes it */
	/* What the buffer holds, for the check after a move. Random READs use
	 * the buffer's start and random WRITEs its end (when it is big enough),
	 * so that WRITE data pages are dirtied by CPU stores only. */
	struct {
		bool valid;
		uint32_t n;
		uint64_t lba, iova;
		uint32_t *ver; /* blocks [lba, lba+n) at these versions */
	} data[2];
};

struct mbw {
	struct mbw_config cfg;
	struct mbg g;
	bool g_init;
	struct devmig_guest_mem *mem; /* the guest memory the workload now runs in */
	uint64_t win_iova;
	uint32_t slot_blocks;         /* buffer per slot, in blocks */
	uint32_t max_io;
	uint64_t span_lba, span;      /* where WRITEs go */

	/* shadow state: the thread's (or the caller's while it is stopped) */
	uint32_t *ver;                /* acknowledged version per block (0: never written) */
	uint8_t *busy;                /* a request on this block is in flight */
	uint32_t next_ver;
	struct slot slot[MBW_MAX_DEPTH];
	unsigned inflight;
	uint64_t rng;
	uint64_t last_done_ns;        /* the last completion while running */
	bool after_pause;
	struct mbw_verify_result *vres; /* set while mbw_verify runs */
	bool check_mem;               /* just moved: check the guest memory copy */
	/* The rings as the guest last wrote (SQ) and read (CQ) them. */
	struct mb_sqe sq_shadow[MBW_RING];
	struct mb_cqe cq_shadow[MBW_RING];

	pthread_t thread;
	bool started;
	int rc;                       /* the first error */

	/* shared with the controlling thread */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop_req, pause_req, parked, exited, running;
	bool has_dst;
	struct mbg_mmio dst_io;
	int dst_irq;
	struct devmig_guest_mem *dst_mem;
	struct mbw_stats st;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(struct mbw *w)
{
	/* xorshift64* */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 0x2545f4914f6cdd1dull;
}

static int set_error(struct mbw *w, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int set_error(struct mbw *w, int rc, const char *fmt, ...)
{
	pthread_mutex_lock(&w->lock);
	w->st.errors++;
	if (!w->st.error[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(w->st.error, sizeof(w->st.error), fmt, ap);
		va_end(ap);
	}
	if (!w->rc)
		w->rc = rc < 0 ? rc : -EIO;
	pthread_mutex_unlock(&w->lock);
	return rc < 0 ? rc : -EIO;
}

/* ---- the data pattern ---- */

#define PAT_MUL 0x9e3779b97f4a7c15ull
#define WORDS (MB_BLOCK_SIZE / 8u)

void mbw_pattern(void *block, uint64_t lba, uint32_t ver)
{
	uint8_t *p = block;
	if (!ver) {
		memset(p, 0, MB_BLOCK_SIZE);
		return;
	}
	uint64_t base = lba << 32 ^ ver;
	for (uint32_t i = 0; i < WORDS; i++) {
		uint64_t v = base ^ (i * PAT_MUL);
		memcpy(p + 8u * i, &v, 8);
	}
}

static bool pattern_equal(const uint8_t *p, uint64_t lba, uint32_t ver)
{
	uint64_t base = ver ? lba << 32 ^ ver : 0;
	for (uint32_t i = 0; i < WORDS; i++) {
		uint64_t v;
		memcpy(&v, p + 8u * i, 8);
		if (v != (ver ? base ^ (i * PAT_MUL) : 0))
			return false;
	}
	return true;
}

/* What a block that is not the expected one holds, for the error message. */
static void describe(char *out, size_t len, const uint8_t *p, uint64_t lba, uint32_t want)
{
	uint64_t w0;
	memcpy(&w0, p, 8);
	uint64_t other = w0 >> 32;
	uint32_t ver = (uint32_t)w0;
	const char *what;
	char buf[96];
	if (pattern_equal(p, lba, 0)) {
		what = "zeros";
	} else if (ver && pattern_equal(p, other, ver)) {
		if (other == lba)
			snprintf(buf, sizeof(buf), "version %" PRIu32, ver);
		else
			snprintf(buf, sizeof(buf), "block %" PRIu64 "'s version %" PRIu32, other, ver);
		what = buf;
	} else {
		what = "unrecognised data";
	}
	snprintf(out, len, "block %" PRIu64 ": expected version %" PRIu32 ", found %s", lba, want,
		 what);
}

/* ---- requests ---- */

static uint64_t mem_off(struct mbw *w, uint64_t iova)
{
	return iova - w->cfg.guest_iova;
}

/* Queue the prepared slots idx[0..n) with one doorbell. Returns the count queued. */
static int submit(struct mbw *w, const unsigned *idx, unsigned n)
{
	struct mb_sqe e[MBW_MAX_DEPTH];

	for (unsigned k = 0; k < n; k++) {
		struct slot *s = &w->slot[idx[k]];
		e[k] = (struct mb_sqe){
			.opcode = s->op,
			.tag = idx[k],
			.lba = s->lba,
			.nblocks = s->n,
			.buf_len = s->n * MB_BLOCK_SIZE,
			.buf = s->io_iova,
		};
	}
	uint32_t tail = w->g.sq_tail; /* only this thread submits */
	int done = mbg_submit_many(&w->g, e, n);
	if (done < 0)
		return set_error(w, done, "submitting %u requests: %s", n, strerror(-done));
	/* The SQ entries are CPU stores into guest memory too. */
	for (int k = 0; k < done; k++) {
		uint32_t t = (tail + (uint32_t)k) & (w->g.sq_size - 1);
		w->sq_shadow[t] = e[k];
		devmig_guest_mem_mark_dirty(w->mem, mem_off(w, w->g.sq_iova + (uint64_t)t * MB_SQE_SIZE),
					    MB_SQE_SIZE);
	}
	w->inflight += (unsigned)done;
	return done;
}

/* Claim slot i for op on [lba, lba+n); WRITE data is produced here. */
/* sweep: a sequential pass, which uses the slot's whole buffer. */
static void prepare(struct mbw *w, unsigned i, uint8_t op, uint64_t lba, uint32_t n, bool sweep)
{
	struct slot *s = &w->slot[i];
	s->busy = true;
	s->op = op;
	s->lba = lba;
	s->n = n;
	s->ver = 0;
	bool split = !sweep && w->slot_blocks >= 2 * w->max_io;
	s->rec = split && op == MB_OP_WRITE;
	s->io_iova = s->buf_iova + (s->rec ? (uint64_t)(w->slot_blocks - n) * MB_BLOCK_SIZE : 0);
	/* That part of the buffer changes now (WRITE data, or the device's DMA),
	 * and so does any record of the other part that reaches into it: a
	 * sequential pass's record covers the whole buffer. */
	s->data[s->rec].valid = false;
	uint64_t lo = s->io_iova, hi = s->io_iova + (uint64_t)n * MB_BLOCK_SIZE;
	uint64_t olo = s->data[!s->rec].iova,
		 ohi = olo + (uint64_t)s->data[!s->rec].n * MB_BLOCK_SIZE;
	if (!split || (olo < hi && lo < ohi))
		s->data[!s->rec].valid = false;
	memset(w->busy + lba, 1, n);
	if (op == MB_OP_WRITE) {
		s->ver = ++w->next_ver;
		if (!s->ver)
			s->ver = ++w->next_ver;
		uint8_t *buf = mbg_ptr(&w->g, s->io_iova, (uint64_t)n * MB_BLOCK_SIZE);
		for (uint32_t b = 0; b < n; b++)
			mbw_pattern(buf + (size_t)b * MB_BLOCK_SIZE, lba + b, s->ver);
		devmig_guest_mem_mark_dirty(w->mem, mem_off(w, s->io_iova),
					    (uint64_t)n * MB_BLOCK_SIZE);
		s->data[s->rec].lba = lba;
		s->data[s->rec].n = n;
		s->data[s->rec].iova = s->io_iova;
		for (uint32_t b = 0; b < n; b++)
			s->data[s->rec].ver[b] = s->ver;
		s->data[s->rec].valid = true;
	}
}

static void release(struct mbw *w, unsigned i)
{
	struct slot *s = &w->slot[i];
	memset(w->busy + s->lba, 0, s->n);
	s->busy = false;
}

/* Handle one completion (under no lock; stats under w->lock). */
static int complete(struct mbw *w, const struct mb_cqe *c, uint64_t t)
{
	if (c->tag >= w->cfg.depth || !w->slot[c->tag].busy)
		return set_error(w, -EIO, "completion with unknown tag %" PRIu32, c->tag);
	struct slot *s = &w->slot[c->tag];
	const char *name = s->op == MB_OP_WRITE ? "WRITE" : "READ";
	int rc = 0;
	w->inflight--;
	if (c->status != MB_SC_OK) {
		rc = set_error(w, -EIO, "%s of %" PRIu32 " blocks at %" PRIu64 " failed: status %u",
			       name, s->n, s->lba, c->status);
		/* The content of a failed WRITE is unknown: stop checking those blocks. */
		if (s->op == MB_OP_WRITE)
			for (uint32_t b = 0; b < s->n; b++)
				w->ver[s->lba + b] = UINT32_MAX;
		release(w, c->tag);
		return rc;
	}
	uint64_t mism = 0, written = 0;
	char first[256] = "";
	if (s->op == MB_OP_READ) {
		const uint8_t *buf = mbg_ptr(&w->g, s->io_iova, (uint64_t)s->n * MB_BLOCK_SIZE);
		for (uint32_t b = 0; b < s->n; b++) {
			uint32_t want = w->ver[s->lba + b];
			const uint8_t *p = buf + (size_t)b * MB_BLOCK_SIZE;
			if (want == UINT32_MAX)
				continue;
			written += want != 0;
			if (!pattern_equal(p, s->lba + b, want)) {
				if (!mism++)
					describe(first, sizeof(first), p, s->lba + b, want);
			}
		}
		if (!mism) {
			s->data[s->rec].lba = s->lba;
			s->data[s->rec].n = s->n;
			s->data[s->rec].iova = s->io_iova;
			memcpy(s->data[s->rec].ver, w->ver + s->lba, s->n * sizeof(uint32_t));
			s->data[s->rec].valid = true;
		}
	} else {
		for (uint32_t b = 0; b < s->n; b++)
			w->ver[s->lba + b] = s->ver;
	}

	pthread_mutex_lock(&w->lock);
	if (s->op == MB_OP_WRITE)
		w->st.acked_writes++;
	if (w->vres) {
		w->vres->blocks += s->n;
		w->vres->written_blocks += written;
		w->vres->mismatches += mism;
		if (mism && !w->vres->first[0])
			snprintf(w->vres->first, sizeof(w->vres->first), "%s", first);
	} else {
		if (mism) {
			w->st.mismatches += mism;
			if (!w->st.error[0])
				snprintf(w->st.error, sizeof(w->st.error), "READ mismatch: %s", first);
			if (!w->rc)
				w->rc = -EIO;
		}
		if (w->running) {
			w->st.ops++;
			w->st.bytes += (uint64_t)s->n * MB_BLOCK_SIZE;
			if (s->op == MB_OP_WRITE)
				w->st.writes++;
			else
				w->st.reads++;
			if (w->last_done_ns) {
				uint64_t gap = t - w->last_done_ns;
				if (gap > w->st.max_gap_ns) {
					w->st.max_gap_ns = gap;
					w->st.max_gap_end = t;
				}
				if (w->after_pause)
					w->st.switch_gap_ns = gap;
			}
			w->after_pause = false;
			w->last_done_ns = t;
		}
	}
	pthread_mutex_unlock(&w->lock);
	release(w, c->tag);
	return rc;
}

/* Reap what is ready; with nothing ready and wait, wait for the interrupt
 * once. Returns completions handled, or -errno. */
static int reap(struct mbw *w, bool wait, uint64_t *last_progress)
{
	struct mb_cqe c[MBW_MAX_DEPTH];
	uint32_t head = w->g.cq_head; /* only this thread reaps */
	int n = mbg_reap(&w->g, c, MBW_MAX_DEPTH);
	if (n < 0)
		return set_error(w, n, "reaping completions: %s", strerror(-n));
	for (int i = 0; i < n; i++)
		w->cq_shadow[(head + (uint32_t)i) & (w->g.cq_size - 1)] = c[i];
	uint64_t t = now_ns();
	if (n > 0)
		*last_progress = t;
	for (int i = 0; i < n; i++) {
		int rc = complete(w, &c[i], t);
		if (rc)
			return rc;
	}
	if (n == 0 && wait && w->inflight) {
		if (t - *last_progress > (uint64_t)w->cfg.timeout_ms * 1000000ull)
			return set_error(w, -ETIMEDOUT,
					 "no completion for %d ms with %u requests in flight",
					 w->cfg.timeout_ms, w->inflight);
		int rc = mbg_wait(&w->g, MBW_WAIT_MS);
		if (rc && rc != -ETIMEDOUT)
			return set_error(w, rc, "waiting for the interrupt: %s", strerror(-rc));
	}
	return n;
}

static int free_slot(struct mbw *w)
{
	for (unsigned i = 0; i < w->cfg.depth; i++)
		if (!w->slot[i].busy)
			return (int)i;
	return -1;
}

static bool range_free(struct mbw *w, uint64_t lba, uint32_t n)
{
	for (uint32_t b = 0; b < n; b++)
		if (w->busy[lba + b])
			return false;
	return true;
}

/* Submit random requests until depth are in flight (or the rate allows no more). */
static int submit_random(struct mbw *w, unsigned allowed)
{
	unsigned idx[MBW_MAX_DEPTH], k = 0;
	uint64_t cap = w->g.capacity;

	while (w->inflight + k < w->cfg.depth && k < allowed) {
		int i = free_slot(w);
		if (i < 0)
			break;
		bool write = rnd(w) % 100 < w->cfg.write_pct;
		uint64_t first = write ? w->span_lba : 0, span = write ? w->span : cap;
		uint32_t n = 1 + (uint32_t)(rnd(w) % w->max_io);
		if (n > span)
			n = (uint32_t)span;
		uint64_t lba = first + rnd(w) % (span - n + 1);
		if (!range_free(w, lba, n))
			break; /* overlaps a request in flight: try again next time */
		prepare(w, (unsigned)i, write ? MB_OP_WRITE : MB_OP_READ, lba, n, false);
		idx[k++] = (unsigned)i;
	}
	if (!k)
		return 0;
	int done = submit(w, idx, k);
	for (unsigned j = done < 0 ? 0 : (unsigned)done; j < k; j++)
		release(w, idx[j]);
	return done;
}

static int check_data(struct mbw *w, unsigned i, unsigned r, uint64_t *bytes)
{
	struct slot *s = &w->slot[i];
	if (!s->data[r].valid)
		return 0;
	const uint8_t *p = mbg_ptr(&w->g, s->data[r].iova, (uint64_t)s->data[r].n * MB_BLOCK_SIZE);
	for (uint32_t b = 0; p && b < s->data[r].n; b++) {
		const uint8_t *blk = p + (size_t)b * MB_BLOCK_SIZE;
		uint64_t lba = s->data[r].lba + b;
		uint32_t ver = s->data[r].ver[b];
		if (ver == UINT32_MAX)
			continue;
		if (!pattern_equal(blk, lba, ver)) {
			char what[256];
			describe(what, sizeof(what), blk, lba, ver);
			return set_error(w, -EIO,
					 "guest memory on the destination: buffer %u (%s) differs: %s",
					 i, r ? "WRITE data: CPU stores" : "data", what);
		}
		*bytes += MB_BLOCK_SIZE;
	}
	return 0;
}

/*
 * After a move, with nothing in flight: the guest's RAM is now the
 * destination's copy. The rings must be as the guest last wrote (SQ, its
 * CPU stores) and read (CQ, the device's DMA) them, and every buffer must
 * hold the data of its last request: WRITE data (CPU stores) or READ data
 * (the device's DMA). A difference means a dirty page was not copied.
 */
static int check_moved_memory(struct mbw *w)
{
	uint64_t bytes = 0;
	const void *sq = mbg_ptr(&w->g, w->g.sq_iova, sizeof(w->sq_shadow));
	const void *cq = mbg_ptr(&w->g, w->g.cq_iova, sizeof(w->cq_shadow));
	if (!sq || !cq || memcmp(sq, w->sq_shadow, sizeof(w->sq_shadow)))
		return set_error(w, -EIO, "guest memory on the destination: the SQ ring differs "
				 "from what the guest wrote (a CPU-dirtied page was not copied)");
	if (memcmp(cq, w->cq_shadow, sizeof(w->cq_shadow)))
		return set_error(w, -EIO, "guest memory on the destination: the CQ ring differs "
				 "from what the guest read (a DMA-dirtied page was not copied)");
	bytes += sizeof(w->sq_shadow) + sizeof(w->cq_shadow);
	for (unsigned i = 0; i < w->cfg.depth; i++) {
		for (unsigned r = 0; r < 2; r++) {
			int rc = check_data(w, i, r, &bytes);
			if (rc)
				return rc;
		}
	}
	pthread_mutex_lock(&w->lock);
	w->st.mem_checked += bytes;
	pthread_mutex_unlock(&w->lock);
	return 0;
}

static void *thread_main(void *arg)
{
	struct mbw *w = arg;
	uint64_t t0 = now_ns(), last_progress = t0, issued = 0;
	int rc = 0;

	pthread_mutex_lock(&w->lock);
	w->running = true;
	pthread_mutex_unlock(&w->lock);
	for (;;) {
		pthread_mutex_lock(&w->lock);
		if (w->stop_req && !w->inflight) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		if (w->pause_req && !w->inflight) {
			w->parked = true;
			w->st.pauses++;
			pthread_cond_broadcast(&w->cond);
			while (w->pause_req && !w->stop_req)
				pthread_cond_wait(&w->cond, &w->lock);
			w->parked = false;
			w->after_pause = true;
			bool check = w->check_mem;
			w->check_mem = false;
			pthread_mutex_unlock(&w->lock);
			if (check && (rc = check_moved_memory(w)) < 0)
				break;
			last_progress = now_ns();
			continue;
		}
		bool may_submit = !w->pause_req && !w->stop_req;
		pthread_mutex_unlock(&w->lock);

		unsigned allowed = MBW_MAX_DEPTH;
		if (w->cfg.max_ops_per_sec) {
			uint64_t budget = (now_ns() - t0) * w->cfg.max_ops_per_sec / 1000000000ull;
			allowed = budget > issued ? (unsigned)(budget - issued < MBW_MAX_DEPTH
								? budget - issued : MBW_MAX_DEPTH) : 0;
		}
		if (may_submit && allowed) {
			if (!w->inflight)
				last_progress = now_ns();
			rc = submit_random(w, allowed);
			if (rc < 0)
				break;
			issued += (unsigned)rc;
		}
		if (!w->inflight) {
			struct timespec ts = { 0, 200000 }; /* rate-limited: idle a little */
			nanosleep(&ts, NULL);
			continue;
		}
		rc = reap(w, true, &last_progress);
		if (rc < 0)
			break;
	}
	pthread_mutex_lock(&w->lock);
	w->running = false;
	w->exited = true;
	w->st.run_ns = now_ns() - t0;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* ---- sequential passes (the thread is stopped) ---- */

static int sweep(struct mbw *w, uint8_t op, char *err, size_t errlen)
{
	uint64_t cap = w->g.capacity, lba = 0, last_progress = now_ns();

	while (lba < cap || w->inflight) {
		unsigned idx[MBW_MAX_DEPTH], k = 0;
		while (lba < cap && w->inflight + k < w->cfg.depth) {
			int i = free_slot(w);
			if (i < 0)
				break;
			uint32_t n = cap - lba < w->slot_blocks ? (uint32_t)(cap - lba) : w->slot_blocks;
			prepare(w, (unsigned)i, op, lba, n, true);
			idx[k++] = (unsigned)i;
			lba += n;
		}
		if (k) {
			int done = submit(w, idx, k);
			if (done < 0 || (unsigned)done < k) {
				for (unsigned j = done < 0 ? 0 : (unsigned)done; j < k; j++)
					release(w, idx[j]);
				if (done >= 0)
					set_error(w, -EIO, "the SQ is full with %u in flight", w->inflight);
				snprintf(err, errlen, "%s", w->st.error);
				return w->rc;
			}
		}
		int rc = reap(w, true, &last_progress);
		if (rc < 0) {
			snprintf(err, errlen, "%s", w->st.error);
			return rc;
		}
	}
	return 0;
}

int mbw_fill(struct mbw *w, char *err, size_t errlen)
{
	if (w->started) {
		snprintf(err, errlen, "memblk workload: fill while running");
		return -EBUSY;
	}
	return sweep(w, MB_OP_WRITE, err, errlen);
}

int mbw_verify(struct mbw *w, struct mbw_verify_result *res, char *err, size_t errlen)
{
	memset(res, 0, sizeof(*res));
	if (w->started) {
		snprintf(err, errlen, "memblk workload: verify while running");
		return -EBUSY;
	}
	uint64_t t0 = now_ns();
	pthread_mutex_lock(&w->lock);
	w->vres = res;
	pthread_mutex_unlock(&w->lock);
	int rc = sweep(w, MB_OP_READ, err, errlen);
	pthread_mutex_lock(&w->lock);
	w->vres = NULL;
	pthread_mutex_unlock(&w->lock);
	res->ns = now_ns() - t0;
	if (!rc && res->mismatches) {
		snprintf(err, errlen, "%" PRIu64 " of %" PRIu64 " blocks differ; first: %s",
			 res->mismatches, res->blocks, res->first);
		rc = -EIO;
	}
	return rc;
}

/* ---- lifecycle ---- */

struct mbw *mbw_new(const struct mbw_config *cfg, char *err, size_t errlen)
{
	struct mbw *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->cfg = *cfg;
	if (!w->cfg.depth)
		w->cfg.depth = 8;
	if (w->cfg.depth > MBW_MAX_DEPTH)
		w->cfg.depth = MBW_MAX_DEPTH;
	if (!w->cfg.max_io)
		w->cfg.max_io = 8;
	if (!w->cfg.write_pct)
		w->cfg.write_pct = 50;
	else if (w->cfg.write_pct > 100)
		w->cfg.write_pct = 0;
	if (!w->cfg.timeout_ms)
		w->cfg.timeout_ms = 10000;
	w->rng = w->cfg.seed ? w->cfg.seed : 0x6d656d626c6b31ull;
	w->mem = cfg->mem;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);

	uint64_t size = devmig_guest_mem_size(cfg->mem);
	if (!w->cfg.win_size && w->cfg.win_off < size)
		w->cfg.win_size = size - w->cfg.win_off;
	uint64_t win = w->cfg.win_size;
	if (w->cfg.win_off > size || win > size - w->cfg.win_off || w->cfg.win_off % 4096 ||
	    win < MBW_BUF_OFF + (uint64_t)w->cfg.depth * MB_BLOCK_SIZE) {
		snprintf(err, errlen,
			 "memblk workload: window [%" PRIu64 ", +%" PRIu64 ") of %" PRIu64
			 " bytes of guest memory is misplaced or too small for %u buffers",
			 w->cfg.win_off, win, size, w->cfg.depth);
		goto fail;
	}
	w->win_iova = w->cfg.guest_iova + w->cfg.win_off;
	uint8_t *base = (uint8_t *)devmig_guest_mem_ptr(cfg->mem) + w->cfg.win_off;
	int rc = mbg_init(&w->g, &cfg->io, base, w->win_iova, win, cfg->irq_fd);
	if (rc) {
		snprintf(err, errlen, "memblk workload: not a memblk device: %s", strerror(-rc));
		goto fail;
	}
	w->g_init = true;
	uint32_t code = 0;
	rc = mbg_setup_queues(&w->g, w->win_iova, MBW_RING, w->win_iova + MBW_CQ_OFF, MBW_RING,
			      &code);
	/* mbg_setup_queues clears the CQ: a CPU store into guest memory. */
	devmig_guest_mem_mark_dirty(w->mem, w->cfg.win_off + MBW_CQ_OFF, MBW_RING * MB_CQE_SIZE);
	if (rc) {
		snprintf(err, errlen, "memblk workload: ring setup refused: %s (ERR_CODE %u)",
			 strerror(-rc), code);
		goto fail;
	}
	uint64_t per = (win - MBW_BUF_OFF) / w->cfg.depth / MB_BLOCK_SIZE;
	uint32_t maxb = w->g.max_blocks ? w->g.max_blocks : 1;
	w->slot_blocks = per < maxb ? (uint32_t)per : maxb;
	w->max_io = w->cfg.max_io < w->slot_blocks ? w->cfg.max_io : w->slot_blocks;
	for (unsigned i = 0; i < w->cfg.depth; i++) {
		w->slot[i].buf_iova = w->win_iova + MBW_BUF_OFF +
				      (uint64_t)i * w->slot_blocks * MB_BLOCK_SIZE;
		w->slot[i].data[0].ver = calloc(w->slot_blocks, sizeof(uint32_t));
		w->slot[i].data[1].ver = calloc(w->slot_blocks, sizeof(uint32_t));
		if (!w->slot[i].data[0].ver || !w->slot[i].data[1].ver) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	memcpy(w->sq_shadow, mbg_ptr(&w->g, w->g.sq_iova, sizeof(w->sq_shadow)),
	       sizeof(w->sq_shadow));
	memcpy(w->cq_shadow, mbg_ptr(&w->g, w->g.cq_iova, sizeof(w->cq_shadow)),
	       sizeof(w->cq_shadow));
	if (!w->g.capacity || w->g.capacity > SIZE_MAX / sizeof(uint32_t)) {
		snprintf(err, errlen, "memblk workload: capacity %" PRIu64 " blocks", w->g.capacity);
		goto fail;
	}
	w->span = w->cfg.write_span && w->cfg.write_span < w->g.capacity ? w->cfg.write_span
									  : w->g.capacity;
	w->span_lba = (w->g.capacity - w->span) / 2;
	w->ver = calloc(w->g.capacity, sizeof(*w->ver));
	w->busy = calloc(w->g.capacity, 1);
	if (!w->ver || !w->busy) {
		snprintf(err, errlen, "out of memory for %" PRIu64 " blocks", w->g.capacity);
		goto fail;
	}
	return w;
fail:
	mbw_free(w);
	return NULL;
}

struct mbg *mbw_driver(struct mbw *w)
{
	return &w->g;
}

int mbw_start(struct mbw *w)
{
	if (w->started)
		return -EBUSY;
	w->stop_req = w->pause_req = w->exited = false;
	w->last_done_ns = 0;
	int rc = pthread_create(&w->thread, NULL, thread_main, w);
	if (rc)
		return -rc;
	w->started = true;
	return 0;
}

int mbw_stop(struct mbw *w)
{
	if (!w->started)
		return w->rc;
	pthread_mutex_lock(&w->lock);
	w->stop_req = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	w->started = false;
	/* A thread that failed may have left requests in flight: drain them. */
	uint64_t last = now_ns();
	while (w->inflight && reap(w, true, &last) >= 0)
		;
	return w->rc;
}

int mbw_pause(struct mbw *w, int timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	int rc = 0;
	pthread_mutex_lock(&w->lock);
	w->pause_req = true;
	pthread_cond_broadcast(&w->cond);
	while (w->started && !w->parked && !w->exited && !rc)
		rc = pthread_cond_timedwait(&w->cond, &w->lock, &dl);
	if (w->exited && w->rc)
		rc = EIO; /* the thread failed: requests may still be in flight */
	pthread_mutex_unlock(&w->lock);
	return -rc;
}

void mbw_set_destination(struct mbw *w, const struct mbg_mmio *io, int irq_fd,
			 struct devmig_guest_mem *mem)
{
	pthread_mutex_lock(&w->lock);
	w->has_dst = true;
	w->dst_io = *io;
	w->dst_irq = irq_fd;
	w->dst_mem = mem;
	pthread_mutex_unlock(&w->lock);
}

void mbw_resume(struct mbw *w, bool on_destination)
{
	pthread_mutex_lock(&w->lock);
	if (on_destination && w->has_dst && !w->st.on_destination) {
		/* Parked: the thread touches neither the driver nor guest memory. */
		mbg_set_route(&w->g, &w->dst_io, w->dst_irq);
		w->g.mem = (uint8_t *)devmig_guest_mem_ptr(w->dst_mem) + w->cfg.win_off;
		w->mem = w->dst_mem;
		w->st.on_destination = true;
		w->check_mem = true;
	}
	w->pause_req = false;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void mbw_get_stats(struct mbw *w, struct mbw_stats *st)
{
	pthread_mutex_lock(&w->lock);
	*st = w->st;
	pthread_mutex_unlock(&w->lock);
}

void mbw_free(struct mbw *w)
{
	if (!w)
		return;
	if (w->started)
		mbw_stop(w);
	if (w->g_init)
		mbg_destroy(&w->g);
	free(w->ver);
	free(w->busy);
	for (unsigned i = 0; i < MBW_MAX_DEPTH; i++)
		free(w->slot[i].data[0].ver), free(w->slot[i].data[1].ver);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
