/* SPDX-License-Identifier: MIT */
/*
 * Tracked device memory: see tracker.h and devmig_tracker_* in device.h.
 *
 * Bookkeeping, one bit per chunk in three bitmaps: dirty (to be sent in this
 * session), sent (sent in this session) and written (ever written: else all
 * zero). dirty_bytes counts chunks both sent and dirty, which is the PRE_COPY
 * "dirty" figure, exactly. A writer sets dirty and written after its store
 * under the chunk's stripe lock; the saver clears dirty and copies the chunk
 * under the same lock, so a write racing a copy is either in the copy or
 * marks the chunk to be sent again: no acknowledged write is lost.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "le.h"
#include "prefault.h"
#include "stream.h"
#include "tracker.h"

#define TRACKER_STRIPES 64u
#define MIN_CHUNK 4096u
#define MAX_CHUNK (1u << 20)
#define CHUNK_COST (DEVMIG_STREAM_REC_OVERHEAD + DEVMIG_MEM_PREFIX)
#define INFO_COST (DEVMIG_STREAM_REC_OVERHEAD + DEVMIG_MEM_INFO_LEN)
/* How far ahead of the incoming stream the staging memory is faulted in. */
#define PREFAULT_WINDOW (64ull << 20)

struct devmig_tracker {
	unsigned index, flags;
	uint8_t *mem;
	uint64_t size;
	uint32_t chunk, nchunks, nwords;
	pthread_mutex_t stripe[TRACKER_STRIPES];
	_Atomic uint64_t *dirty, *sent, *written;
	_Atomic uint64_t dirty_bytes;
	_Atomic uint64_t written_total; /* bytes ever written or marked: the change rate's source */

	/* save session */
	bool active, info_sent;
	uint32_t pass_next, scan;

	/* load session */
	uint8_t *stage;
	struct devmig_prefault *prefault; /* the stage's pages, ahead of the stream */
	uint64_t *got, *stage_written;
	bool info_seen;
};

/*
 * Pages cost memory only once written. Huge pages, because a page fault and
 * a TLB miss per 4 KiB dominate copying gigabytes.
 */
static void *map_memory(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, size, MADV_HUGEPAGE);
	return p;
}

static inline uint64_t bit_of(uint32_t ci)
{
	return 1ull << (ci % 64);
}

static uint32_t chunk_len(const struct devmig_tracker *t, uint32_t ci)
{
	uint64_t left = t->size - (uint64_t)ci * t->chunk;
	return left < t->chunk ? (uint32_t)left : t->chunk;
}

struct devmig_tracker *devmig_tracker_create(unsigned index, uint64_t size, uint32_t chunk,
					     unsigned flags)
{
	if (!size || chunk < MIN_CHUNK || chunk > MAX_CHUNK || (chunk & (chunk - 1)) ||
	    (size + chunk - 1) / chunk > UINT32_MAX ||
	    (flags & ~(DEVMIG_TRACKER_ZERO | DEVMIG_TRACKER_COPY))) {
		errno = EINVAL;
		return NULL;
	}
	struct devmig_tracker *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->index = index;
	t->flags = flags;
	t->size = size;
	t->chunk = chunk;
	t->nchunks = (uint32_t)((size + chunk - 1) / chunk);
	t->nwords = (t->nchunks + 63) / 64;
	for (unsigned i = 0; i < TRACKER_STRIPES; i++)
		pthread_mutex_init(&t->stripe[i], NULL);
	t->mem = map_memory(size);
	t->dirty = calloc(t->nwords, sizeof(uint64_t));
	t->sent = calloc(t->nwords, sizeof(uint64_t));
	t->written = calloc(t->nwords, sizeof(uint64_t));
	t->got = calloc(t->nwords, sizeof(uint64_t));
	t->stage_written = calloc(t->nwords, sizeof(uint64_t));
	if (!t->mem || !t->dirty || !t->sent || !t->written || !t->got || !t->stage_written) {
		devmig_tracker_destroy(t);
		errno = ENOMEM;
		return NULL;
	}
	return t;
}

void devmig_tracker_destroy(struct devmig_tracker *t)
{
	if (!t)
		return;
	devmig_prefault_stop(t->prefault);
	if (t->mem)
		munmap(t->mem, t->size);
	if (t->stage)
		munmap(t->stage, t->size);
	free((void *)t->dirty);
	free((void *)t->sent);
	free((void *)t->written);
	free(t->got);
	free(t->stage_written);
	for (unsigned i = 0; i < TRACKER_STRIPES; i++)
		pthread_mutex_destroy(&t->stripe[i]);
	free(t);
}

void *devmig_tracker_mem(const struct devmig_tracker *t)
{
	return t->mem;
}

uint64_t devmig_tracker_size(const struct devmig_tracker *t)
{
	return t->size;
}

uint64_t devmig_tracker_written_total(struct devmig_tracker *t)
{
	return atomic_load_explicit(&t->written_total, memory_order_relaxed);
}

/* Chunk ci was written: stripe lock held. */
static void mark_locked(struct devmig_tracker *t, uint32_t ci)
{
	uint64_t bit = bit_of(ci);
	uint64_t old = atomic_fetch_or(&t->dirty[ci / 64], bit);

	atomic_fetch_or(&t->written[ci / 64], bit);
	if (!(old & bit) && (atomic_load(&t->sent[ci / 64]) & bit))
		atomic_fetch_add(&t->dirty_bytes, chunk_len(t, ci));
}

int devmig_tracker_write(struct devmig_tracker *t, uint64_t off, const void *src, size_t len)
{
	const uint8_t *p = src;

	if (off > t->size || len > t->size - off)
		return -ERANGE;
	atomic_fetch_add_explicit(&t->written_total, len, memory_order_relaxed);
	while (len) {
		uint32_t ci = (uint32_t)(off / t->chunk);
		uint64_t cend = (uint64_t)(ci + 1) * t->chunk;
		size_t n = cend - off < len ? (size_t)(cend - off) : len;
		pthread_mutex_t *st = &t->stripe[ci % TRACKER_STRIPES];

		pthread_mutex_lock(st);
		memcpy(t->mem + off, p, n);
		mark_locked(t, ci);
		pthread_mutex_unlock(st);
		off += n;
		p += n;
		len -= n;
	}
	return 0;
}

int devmig_tracker_mark(struct devmig_tracker *t, uint64_t off, uint64_t len)
{
	if (off > t->size || len > t->size - off)
		return -ERANGE;
	if (!len)
		return 0;
	atomic_fetch_add_explicit(&t->written_total, len, memory_order_relaxed);
	uint32_t first = (uint32_t)(off / t->chunk);
	uint32_t last = (uint32_t)((off + len - 1) / t->chunk);

	for (uint32_t ci = first; ci <= last; ci++) {
		pthread_mutex_t *st = &t->stripe[ci % TRACKER_STRIPES];
		pthread_mutex_lock(st);
		mark_locked(t, ci);
		pthread_mutex_unlock(st);
	}
	return 0;
}

/* ---------------------------------------------------------------- save */

/*
 * Stripe by stripe, so writers go on; dirty_bytes is zeroed at the end,
 * when no chunk is marked sent any more, which makes it exact.
 */
void devmig_tracker_save_open(struct devmig_tracker *t)
{
	for (uint32_t st = 0; st < TRACKER_STRIPES; st++) {
		pthread_mutex_lock(&t->stripe[st]);
		for (uint32_t ci = st; ci < t->nchunks; ci += TRACKER_STRIPES) {
			atomic_fetch_or(&t->dirty[ci / 64], bit_of(ci));
			atomic_fetch_and(&t->sent[ci / 64], ~bit_of(ci));
		}
		pthread_mutex_unlock(&t->stripe[st]);
	}
	atomic_store(&t->dirty_bytes, 0);
	t->active = true;
	t->info_sent = false;
	t->pass_next = t->scan = 0;
}

void devmig_tracker_save_close(struct devmig_tracker *t)
{
	t->active = false;
}

/* Next dirty chunk at or after the scan position (wrapping), or -1. */
static int64_t next_dirty(struct devmig_tracker *t)
{
	for (uint32_t k = 0; k <= t->nwords; k++) {
		uint32_t w = (t->scan / 64 + k) % t->nwords;
		uint64_t bits = atomic_load_explicit(&t->dirty[w], memory_order_relaxed);
		if (k == 0)
			bits &= ~0ull << (t->scan % 64);
		if (bits) {
			uint32_t ci = w * 64 + (uint32_t)__builtin_ctzll(bits);
			t->scan = ci + 1 < t->nchunks ? ci + 1 : 0;
			return ci;
		}
		if (k == t->nwords - 1 && t->scan % 64 == 0)
			break; /* every word scanned from a word boundary */
	}
	return -1;
}

/* Take chunk ci (no longer dirty, sent) and emit it, under its stripe lock so
 * a copy sees no write half done. */
static int emit_chunk(struct devmig_tracker *t, struct devmig_save *s, uint32_t ci, bool ref)
{
	uint64_t bit = bit_of(ci);
	uint32_t clen = chunk_len(t, ci);
	pthread_mutex_t *st = &t->stripe[ci % TRACKER_STRIPES];
	uint8_t head[DEVMIG_MEM_PREFIX];
	int rc;

	put32(head, t->index);
	put32(head + 4, ci);
	pthread_mutex_lock(st);
	uint64_t d = atomic_fetch_and(&t->dirty[ci / 64], ~bit);
	uint64_t was = atomic_fetch_or(&t->sent[ci / 64], bit);
	if ((d & bit) && (was & bit))
		atomic_fetch_sub(&t->dirty_bytes, clen);
	if ((t->flags & DEVMIG_TRACKER_ZERO) && !(atomic_load(&t->written[ci / 64]) & bit))
		rc = devmig_save_raw(s, DEVMIG_REC_MEM_ZERO, head, sizeof(head), NULL, 0, false);
	else
		rc = devmig_save_raw(s, DEVMIG_REC_MEM_DATA, head, sizeof(head),
				     t->mem + (uint64_t)ci * t->chunk, clen, ref);
	pthread_mutex_unlock(st);
	return rc;
}

int devmig_tracker_save(struct devmig_tracker *t, struct devmig_save *s)
{
	bool ref = devmig_save_final(s) && !(t->flags & DEVMIG_TRACKER_COPY);
	int n = 0, rc;

	if (!t->active)
		return 0;
	if (!t->info_sent) {
		uint8_t p[DEVMIG_MEM_INFO_LEN];
		put32(p, t->index);
		put32(p + 4, t->chunk);
		put64(p + 8, t->size);
		put32(p + 16, t->flags & DEVMIG_TRACKER_ZERO);
		put32(p + 20, 0);
		rc = devmig_save_raw(s, DEVMIG_REC_MEM_INFO, p, sizeof(p), NULL, 0, false);
		if (rc)
			return rc;
		t->info_sent = true;
		n++;
	}
	while (devmig_save_room(s)) {
		int64_t ci;
		if (t->pass_next < t->nchunks)
			ci = t->pass_next++;
		else if ((ci = next_dirty(t)) < 0)
			break;
		rc = emit_chunk(t, s, (uint32_t)ci, ref);
		if (rc)
			return rc;
		n++;
	}
	return n;
}

void devmig_tracker_precopy_info(struct devmig_tracker *t, uint64_t *initial, uint64_t *dirty)
{
	*initial = *dirty = 0;
	if (!t->active)
		return;
	uint64_t done = (uint64_t)t->pass_next * t->chunk;
	*initial = done < t->size ? t->size - done : 0;
	*dirty = atomic_load(&t->dirty_bytes);
	if (!t->info_sent)
		*dirty += INFO_COST;
}

uint64_t devmig_tracker_stop_copy_size(struct devmig_tracker *t)
{
	uint64_t bytes = t->active && t->info_sent ? 0 : INFO_COST;
	uint32_t last = t->nchunks - 1;
	bool zero = t->flags & DEVMIG_TRACKER_ZERO;

	for (uint32_t w = 0; w < t->nwords; w++) {
		uint64_t valid = w == t->nwords - 1 && t->nchunks % 64 ? (1ull << (t->nchunks % 64)) - 1
								      : ~0ull;
		uint64_t due = valid;
		if (t->active) {
			/* the first pass's rest, and chunks written since they were sent */
			uint64_t unsent = 0;
			if ((uint64_t)w * 64 + 63 >= t->pass_next)
				unsent = (uint64_t)w * 64 >= t->pass_next ? ~0ull
					 : ~0ull << (t->pass_next % 64);
			due = valid & (unsent | (atomic_load(&t->dirty[w]) & atomic_load(&t->sent[w])));
		}
		uint64_t data = zero ? due & atomic_load(&t->written[w]) : due;
		bytes += (uint64_t)__builtin_popcountll(due) * CHUNK_COST +
			 (uint64_t)__builtin_popcountll(data) * t->chunk;
		if (w == last / 64 && (data & bit_of(last)))
			bytes -= t->chunk - chunk_len(t, last);
	}
	return bytes;
}

/* ---------------------------------------------------------------- load */

int devmig_tracker_load_open(struct devmig_tracker *t)
{
	devmig_tracker_load_abort(t);
	t->stage = map_memory(t->size);
	if (!t->stage)
		return -ENOMEM;
	t->prefault = devmig_prefault_start(t->stage, t->size, PREFAULT_WINDOW);
	memset(t->got, 0, t->nwords * sizeof(uint64_t));
	memset(t->stage_written, 0, t->nwords * sizeof(uint64_t));
	t->info_seen = false;
	return 0;
}

__attribute__((format(printf, 3, 4)))
static int refuse(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int devmig_tracker_load(struct devmig_tracker *t, uint32_t type, const uint8_t *p, size_t len,
			char *why, size_t whylen)
{
	if (!t->stage)
		return refuse(why, whylen, "memory %u: no load session", t->index);
	if (type == DEVMIG_REC_MEM_INFO) {
		if (len != DEVMIG_MEM_INFO_LEN)
			return refuse(why, whylen, "format: MEM_INFO of %zu bytes, expected %u", len,
				      DEVMIG_MEM_INFO_LEN);
		uint32_t chunk = get32(p + 4);
		uint64_t size = get64(p + 8);
		if (chunk != t->chunk || size != t->size)
			return refuse(why, whylen,
				      "geometry: the source's memory %u is %" PRIu64
				      " bytes in chunks of %" PRIu32 ", this device's %" PRIu64
				      " bytes in chunks of %" PRIu32,
				      t->index, size, chunk, t->size, t->chunk);
		if ((get32(p + 16) & ~(uint32_t)DEVMIG_TRACKER_ZERO) || get32(p + 20))
			return refuse(why, whylen, "format: memory %u: unknown flags %#" PRIx32,
				      t->index, get32(p + 16));
		t->info_seen = true;
		return 0;
	}
	if (!t->info_seen)
		return refuse(why, whylen, "order: memory %u data before its MEM_INFO record",
			      t->index);
	if (len < DEVMIG_MEM_PREFIX)
		return refuse(why, whylen, "format: memory record of %zu bytes", len);
	uint32_t ci = get32(p + 4);
	if (ci >= t->nchunks)
		return refuse(why, whylen, "range: memory %u chunk %" PRIu32 " of %" PRIu32,
			      t->index, ci, t->nchunks);
	uint64_t bit = bit_of(ci);
	uint8_t *dst = t->stage + (uint64_t)ci * t->chunk;
	if (type == DEVMIG_REC_MEM_ZERO) {
		if (!(t->flags & DEVMIG_TRACKER_ZERO))
			return refuse(why, whylen,
				      "format: memory %u takes no ZERO records (chunk %" PRIu32 ")",
				      t->index, ci);
		if (len != DEVMIG_MEM_PREFIX)
			return refuse(why, whylen, "format: ZERO record of %zu bytes", len);
		if (t->stage_written[ci / 64] & bit)
			memset(dst, 0, chunk_len(t, ci)); /* the last record of a chunk wins */
		t->stage_written[ci / 64] &= ~bit;
	} else {
		if (len - DEVMIG_MEM_PREFIX != chunk_len(t, ci))
			return refuse(why, whylen,
				      "range: memory %u chunk %" PRIu32 " carries %zu bytes, it has %" PRIu32,
				      t->index, ci, len - DEVMIG_MEM_PREFIX, chunk_len(t, ci));
		memcpy(dst, p + DEVMIG_MEM_PREFIX, len - DEVMIG_MEM_PREFIX);
		t->stage_written[ci / 64] |= bit;
		devmig_prefault_reach(t->prefault, (uint64_t)ci * t->chunk + chunk_len(t, ci));
	}
	t->got[ci / 64] |= bit;
	return 0;
}

int devmig_tracker_load_check(struct devmig_tracker *t, char *why, size_t whylen)
{
	if (!t->info_seen)
		return refuse(why, whylen, "incomplete: memory %u never arrived (%" PRIu64 " bytes)",
			      t->index, t->size);
	for (uint32_t w = 0; w < t->nwords; w++) {
		uint64_t valid = w == t->nwords - 1 && t->nchunks % 64 ? (1ull << (t->nchunks % 64)) - 1
								      : ~0ull;
		uint64_t missing = valid & ~t->got[w];
		if (missing) {
			uint32_t ci = w * 64 + (uint32_t)__builtin_ctzll(missing);
			return refuse(why, whylen,
				      "incomplete: memory %u chunk %" PRIu32 " of %" PRIu32 " never arrived",
				      t->index, ci, t->nchunks);
		}
	}
	return 0;
}

void devmig_tracker_load_apply(struct devmig_tracker *t)
{
	uint8_t *old = t->mem;

	devmig_prefault_stop(t->prefault);
	t->prefault = NULL;
	t->mem = t->stage;
	t->stage = NULL;
	munmap(old, t->size);
	for (uint32_t w = 0; w < t->nwords; w++) {
		atomic_store(&t->written[w], t->stage_written[w]);
		atomic_store(&t->dirty[w], 0);
		atomic_store(&t->sent[w], 0);
	}
	atomic_store(&t->dirty_bytes, 0);
	t->info_seen = false;
}

void devmig_tracker_load_abort(struct devmig_tracker *t)
{
	devmig_prefault_stop(t->prefault);
	t->prefault = NULL;
	if (t->stage)
		munmap(t->stage, t->size);
	t->stage = NULL;
	t->info_seen = false;
}
