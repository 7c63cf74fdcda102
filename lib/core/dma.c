/* SPDX-License-Identifier: MIT */
/*
 * The DMA map table and DMA dirty logging. See dma.h for the contract.
 *
 * Table: a sorted array of pointers to non-overlapping regions, searched by
 * binary search under dma->lock (a writer-preferring rwlock, so a stream of
 * device accesses cannot starve map/unmap).
 *
 * Lifetime of a region: refcount 1 is the table's; every accessor/pin takes
 * one more under the (shared) lock. Unmap removes the region from the array
 * under the exclusive lock (no new reference can be taken after that), marks
 * it dying, releases the lock, waits on dma->drain_cv until only the table's
 * reference is left, then drops it: the last reference munmaps and frees. For
 * fd-less regions that do not wait (transport.unmap_waits false) the last
 * accessor frees the region instead.
 *
 * Log: the configuration (ranges, bitmaps) changes only under the exclusive
 * lock; bits change under the shared lock with atomic RMW only, so device
 * writes, mark_dirty and reports run concurrently without losing a bit.
 *
 * Guest memory belongs to the client, which may shrink the file behind a
 * mapping at any time: touching the lost pages raises SIGBUS. Every copy to
 * or from a mapping is guarded (guarded_copy): such a fault fails that one
 * access with -EFAULT and the server lives on.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dma.h"

#define DMA_ALIGN 4096ull
#define INLINE_SEGS 8

struct devmig_dma_region {
	uint64_t iova;
	uint64_t size;
	uint32_t prot;
	void *va; /* NULL: fd-less, reached through the transport */
	atomic_ulong refs;
	atomic_bool dying;
};

struct log_range {
	uint64_t iova;
	uint64_t len;
	_Atomic uint64_t *bits; /* len >> shift bits */
};

struct devmig_dma {
	pthread_rwlock_t lock;
	struct devmig_dma_transport t;
	struct devmig_dma_region **regs; /* sorted by iova */
	size_t n, cap;
	uint32_t max_maps;
	uint64_t bytes_mapped;

	bool logging;
	unsigned shift; /* log2 of the tracking page size */
	uint32_t nranges;
	struct log_range *ranges; /* sorted by iova */
	atomic_uint_fast64_t dirty_pages;

	pthread_mutex_t drain_mu;
	pthread_cond_t drain_cv;
};

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* [a, a+len) is non-empty and a+len does not wrap (so a range never ends at 2^64). */
static bool range_ok(uint64_t a, uint64_t len)
{
	return len != 0 && a + len > a;
}

/* ---- guarded copies ---- */

/* The copy this thread is in, if any: where a SIGBUS goes back to. */
static __thread sigjmp_buf *volatile copy_guard __attribute__((tls_model("initial-exec")));
static struct sigaction prev_sigbus;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	sigjmp_buf *jb = copy_guard;

	if (jb) {
		copy_guard = NULL;
		siglongjmp(*jb, 1);
	}
	/* Not a guarded copy: what would have happened without us. */
	if ((prev_sigbus.sa_flags & SA_SIGINFO) && prev_sigbus.sa_sigaction) {
		prev_sigbus.sa_sigaction(sig, si, uc);
	} else if (!(prev_sigbus.sa_flags & SA_SIGINFO) && prev_sigbus.sa_handler != SIG_DFL &&
		   prev_sigbus.sa_handler != SIG_IGN) {
		prev_sigbus.sa_handler(sig);
	} else {
		/* The faulting access runs again and ends the process as before. */
		signal(SIGBUS, SIG_DFL);
	}
}

/*
 * Ours must be the SIGBUS handler while mappings exist. Checked at every
 * fd mapping: whoever replaced it since (the embedding program, a test
 * harness) is chained to instead.
 */
static void ensure_guard(void)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct sigaction cur, sa;

	pthread_mutex_lock(&mu);
	if (!sigaction(SIGBUS, NULL, &cur) &&
	    !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus)) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_sigbus;
		/* NODEFER: leaving by siglongjmp must not leave SIGBUS blocked. */
		sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		prev_sigbus = cur;
		sigaction(SIGBUS, &sa, NULL);
	}
	pthread_mutex_unlock(&mu);
}

/* memcpy that fails with -EFAULT instead of dying when a page is gone. */
static int guarded_copy(void *dst, const void *src, size_t n)
{
	sigjmp_buf jb;

	if (sigsetjmp(jb, 0))
		return -EFAULT;
	copy_guard = &jb;
	memcpy(dst, src, n);
	copy_guard = NULL;
	return 0;
}

/* ---- table ---- */

/* First index whose region ends after addr (regions are sorted and disjoint). */
static size_t first_ending_after(const struct devmig_dma *dma, uint64_t addr)
{
	size_t lo = 0, hi = dma->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct devmig_dma_region *r = dma->regs[mid];

		if (r->iova + r->size <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void region_free(struct devmig_dma_region *r)
{
	if (r->va)
		munmap(r->va, r->size);
	free(r);
}

static void region_put(struct devmig_dma *dma, struct devmig_dma_region *r)
{
	unsigned long old = atomic_fetch_sub(&r->refs, 1);

	if (old == 1) {
		region_free(r);
	} else if (old == 2 && atomic_load(&r->dying)) {
		/* Only the table's reference is left: wake the unmapper. */
		pthread_mutex_lock(&dma->drain_mu);
		pthread_cond_broadcast(&dma->drain_cv);
		pthread_mutex_unlock(&dma->drain_mu);
	}
}

/* r is already out of the array. Wait if needed, then drop the table's reference. */
static void region_release(struct devmig_dma *dma, struct devmig_dma_region *r)
{
	atomic_store(&r->dying, true);
	if (r->va || dma->t.unmap_waits) {
		pthread_mutex_lock(&dma->drain_mu);
		while (atomic_load(&r->refs) > 1)
			pthread_cond_wait(&dma->drain_cv, &dma->drain_mu);
		pthread_mutex_unlock(&dma->drain_mu);
	}
	region_put(dma, r);
}

struct devmig_dma *devmig_dma_create(const struct devmig_dma_transport *t)
{
	struct devmig_dma *dma = calloc(1, sizeof(*dma));
	pthread_rwlockattr_t attr;

	if (!dma)
		return NULL;
	if (t)
		dma->t = *t;
	dma->max_maps = DEVMIG_DEFAULT_MAX_DMA_MAPS;
	atomic_init(&dma->dirty_pages, 0);
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&dma->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&dma->drain_mu, NULL);
	pthread_cond_init(&dma->drain_cv, NULL);
	return dma;
}

void devmig_dma_destroy(struct devmig_dma *dma)
{
	if (!dma)
		return;
	devmig_dma_unmap_all(dma);
	devmig_dma_log_stop(dma);
	free(dma->regs);
	pthread_cond_destroy(&dma->drain_cv);
	pthread_mutex_destroy(&dma->drain_mu);
	pthread_rwlock_destroy(&dma->lock);
	free(dma);
}

bool devmig_dma_has_fdless(struct devmig_dma *dma)
{
	bool any = false;

	pthread_rwlock_rdlock(&dma->lock);
	for (size_t i = 0; i < dma->n && !any; i++)
		any = !dma->regs[i]->va;
	pthread_rwlock_unlock(&dma->lock);
	return any;
}

void devmig_dma_set_max_mappings(struct devmig_dma *dma, uint32_t max)
{
	pthread_rwlock_wrlock(&dma->lock);
	dma->max_maps = max;
	pthread_rwlock_unlock(&dma->lock);
}

int devmig_dma_map(struct devmig_dma *dma, uint64_t iova, uint64_t size, uint32_t prot,
		   int fd, uint64_t file_offset)
{
	struct devmig_dma_region *r;
	size_t i;
	int err = 0;

	if (!range_ok(iova, size) || (iova | size) & (DMA_ALIGN - 1) ||
	    prot & ~(DEVMIG_DMA_READ | DEVMIG_DMA_WRITE) || size > SIZE_MAX)
		return -EINVAL;
	if (fd >= 0 && (file_offset & (DMA_ALIGN - 1) || file_offset > (uint64_t)INT64_MAX))
		return -EINVAL;
	/* A file must hold what is mapped: past its end is a SIGBUS (refused
	 * after the overlap checks, so their errors keep priority). */
	bool past_end = false;
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st))
			return -errno;
		past_end = S_ISREG(st.st_mode) && (file_offset > (uint64_t)st.st_size ||
						   size > (uint64_t)st.st_size - file_offset);
		ensure_guard();
	}

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->iova = iova;
	r->size = size;
	r->prot = prot;
	atomic_init(&r->refs, 1);
	atomic_init(&r->dying, false);
	if (fd >= 0) {
		int mprot = (prot & DEVMIG_DMA_READ ? PROT_READ : 0) |
			    (prot & DEVMIG_DMA_WRITE ? PROT_WRITE : 0);
		void *va = mmap(NULL, size, mprot ? mprot : PROT_NONE, MAP_SHARED, fd,
				(off_t)file_offset);

		if (va == MAP_FAILED) {
			err = -errno;
			free(r);
			return err;
		}
		r->va = va;
	}

	pthread_rwlock_wrlock(&dma->lock);
	i = first_ending_after(dma, iova);
	if (i < dma->n && dma->regs[i]->iova < iova + size) {
		err = -EEXIST;
	} else if (past_end) {
		err = -EINVAL;
	} else if (dma->n >= dma->max_maps) {
		err = -ENOSPC;
	} else if (dma->n == dma->cap) {
		size_t cap = dma->cap ? dma->cap * 2 : 16;
		struct devmig_dma_region **regs = realloc(dma->regs, cap * sizeof(*regs));

		if (regs) {
			dma->regs = regs;
			dma->cap = cap;
		} else {
			err = -ENOMEM;
		}
	}
	if (!err) {
		memmove(&dma->regs[i + 1], &dma->regs[i], (dma->n - i) * sizeof(*dma->regs));
		dma->regs[i] = r;
		dma->n++;
		dma->bytes_mapped += size;
	}
	pthread_rwlock_unlock(&dma->lock);

	if (err) {
		region_free(r); /* munmap only: the caller keeps fd */
		return err;
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

int devmig_dma_unmap(struct devmig_dma *dma, uint64_t iova, uint64_t size)
{
	struct devmig_dma_region *r;
	size_t i;

	if (!range_ok(iova, size))
		return -EINVAL;
	pthread_rwlock_wrlock(&dma->lock);
	i = first_ending_after(dma, iova);
	if (i >= dma->n || dma->regs[i]->iova >= iova + size) {
		pthread_rwlock_unlock(&dma->lock);
		return -ENOENT;
	}
	r = dma->regs[i];
	if (r->iova != iova || r->size != size) {
		pthread_rwlock_unlock(&dma->lock);
		return -EINVAL;
	}
	memmove(&dma->regs[i], &dma->regs[i + 1], (dma->n - i - 1) * sizeof(*dma->regs));
	dma->n--;
	dma->bytes_mapped -= size;
	pthread_rwlock_unlock(&dma->lock);

	region_release(dma, r);
	return 0;
}

void devmig_dma_unmap_all(struct devmig_dma *dma)
{
	struct devmig_dma_region **regs;
	size_t n;

	pthread_rwlock_wrlock(&dma->lock);
	regs = dma->regs;
	n = dma->n;
	dma->regs = NULL;
	dma->n = dma->cap = 0;
	dma->bytes_mapped = 0;
	pthread_rwlock_unlock(&dma->lock);

	for (size_t i = 0; i < n; i++)
		region_release(dma, regs[i]);
	free(regs);
}

/* ---- dirty bits ---- */

/* Mask of bits [lo, hi] (0 <= lo <= hi <= 63). */
static uint64_t bit_mask(unsigned lo, unsigned hi)
{
	return (~0ull >> (63 - hi)) & (~0ull << lo);
}

/* First logged range ending after addr. Caller holds dma->lock. */
static uint32_t first_range_after(const struct devmig_dma *dma, uint64_t addr)
{
	uint32_t lo = 0, hi = dma->nranges;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (dma->ranges[mid].iova + dma->ranges[mid].len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int devmig_dma_mark_dirty(struct devmig_dma *dma, uint64_t iova, uint64_t len)
{
	uint64_t end = iova + len;
	uint64_t newly = 0;

	if (len == 0)
		return 0;
	if (end < iova)
		return -EINVAL;
	pthread_rwlock_rdlock(&dma->lock);
	if (dma->logging) {
		for (uint32_t k = first_range_after(dma, iova);
		     k < dma->nranges && dma->ranges[k].iova < end; k++) {
			const struct log_range *lr = &dma->ranges[k];
			uint64_t s = iova > lr->iova ? iova : lr->iova;
			uint64_t e = end < lr->iova + lr->len ? end : lr->iova + lr->len;
			uint64_t first = (s - lr->iova) >> dma->shift;
			uint64_t last = (e - 1 - lr->iova) >> dma->shift;

			for (uint64_t w = first / 64; w <= last / 64; w++) {
				uint64_t m = bit_mask(w == first / 64 ? first % 64 : 0,
						      w == last / 64 ? last % 64 : 63);
				uint64_t old = atomic_fetch_or(&lr->bits[w], m);

				newly += (uint64_t)__builtin_popcountll(m & ~old);
			}
		}
	}
	pthread_rwlock_unlock(&dma->lock);
	if (newly)
		atomic_fetch_add(&dma->dirty_pages, newly);
	return 0;
}

/* ---- accessors ---- */

static int dma_access(struct devmig_dma *dma, uint64_t iova, void *buf, size_t len,
		      bool is_write)
{
	struct devmig_dma_region *inline_segs[INLINE_SEGS], **segs = inline_segs;
	uint32_t need = is_write ? DEVMIG_DMA_WRITE : DEVMIG_DMA_READ;
	uint64_t end = iova + len, addr = iova;
	size_t nseg = 0, cap = INLINE_SEGS;
	int err = 0;

	if (len == 0)
		return 0;
	if (end <= iova)
		return -EFAULT;

	/* Validate the whole range and take a reference on every mapping in it. */
	pthread_rwlock_rdlock(&dma->lock);
	for (size_t i = first_ending_after(dma, iova); addr < end; i++) {
		struct devmig_dma_region *r = i < dma->n ? dma->regs[i] : NULL;

		if (!r || r->iova > addr) {
			err = -EFAULT;
			break;
		}
		if (!(r->prot & need)) {
			err = -EACCES;
			break;
		}
		if (!r->va && !dma->t.xfer) {
			err = -ENOTSUP;
			break;
		}
		if (nseg == cap) {
			struct devmig_dma_region **n = malloc(2 * cap * sizeof(*n));

			if (!n) {
				err = -ENOMEM;
				break;
			}
			memcpy(n, segs, nseg * sizeof(*n));
			if (segs != inline_segs)
				free(segs);
			segs = n;
			cap *= 2;
		}
		segs[nseg++] = r;
		addr = r->iova + r->size; /* never wraps: map refuses that */
	}
	if (err)
		nseg = 0;
	for (size_t k = 0; k < nseg; k++)
		atomic_fetch_add(&segs[k]->refs, 1);
	pthread_rwlock_unlock(&dma->lock);

	/* Copy, without any lock. */
	for (size_t k = 0; !err && k < nseg; k++) {
		struct devmig_dma_region *r = segs[k];
		uint64_t s = k == 0 ? iova : r->iova;
		uint64_t e = end - r->iova <= r->size ? end : r->iova + r->size;
		uint8_t *b = (uint8_t *)buf + (s - iova);

		if (r->va) {
			uint8_t *g = (uint8_t *)r->va + (s - r->iova);

			err = is_write ? guarded_copy(g, b, e - s) : guarded_copy(b, g, e - s);
		} else {
			err = dma->t.xfer(dma->t.opaque, is_write, s, b, e - s);
			if (err > 0)
				err = -EIO;
		}
	}
	/* After the data is in place, so a report that clears the bit saw it. */
	if (is_write && nseg)
		devmig_dma_mark_dirty(dma, iova, len);
	for (size_t k = 0; k < nseg; k++)
		region_put(dma, segs[k]);
	if (segs != inline_segs)
		free(segs);
	return err;
}

int devmig_dma_read(struct devmig_dma *dma, uint64_t iova, void *buf, size_t len)
{
	return dma_access(dma, iova, buf, len, false);
}

int devmig_dma_write(struct devmig_dma *dma, uint64_t iova, const void *buf, size_t len)
{
	/* Not written through: the transport's buffer argument is shared with reads. */
	return dma_access(dma, iova, (void *)buf, len, true);
}

/* ---- pins ---- */

void *devmig_dma_pin(struct devmig_dma *dma, uint64_t iova, uint64_t len, uint32_t prot,
		     struct devmig_dma_pin *pin)
{
	struct devmig_dma_region *r = NULL;
	int err = 0;
	size_t i;

	if (len == 0 || !prot || prot & ~(DEVMIG_DMA_READ | DEVMIG_DMA_WRITE) || !pin) {
		errno = EINVAL;
		return NULL;
	}
	if (iova + len <= iova) {
		errno = EFAULT;
		return NULL;
	}
	pthread_rwlock_rdlock(&dma->lock);
	i = first_ending_after(dma, iova);
	if (i >= dma->n || dma->regs[i]->iova > iova ||
	    iova + len - dma->regs[i]->iova > dma->regs[i]->size)
		err = EFAULT;
	else if ((dma->regs[i]->prot & prot) != prot)
		err = EACCES;
	else if (!dma->regs[i]->va)
		err = ENOTSUP;
	else {
		r = dma->regs[i];
		atomic_fetch_add(&r->refs, 1);
	}
	pthread_rwlock_unlock(&dma->lock);
	if (err) {
		errno = err;
		return NULL;
	}
	*pin = (struct devmig_dma_pin){ .dma = dma, .region = r, .iova = iova, .len = len,
					.prot = prot };
	return (uint8_t *)r->va + (iova - r->iova);
}

void devmig_dma_unpin(struct devmig_dma_pin *pin)
{
	if (!pin || !pin->region)
		return;
	if (pin->prot & DEVMIG_DMA_WRITE)
		devmig_dma_mark_dirty(pin->dma, pin->iova, pin->len);
	region_put(pin->dma, pin->region);
	pin->region = NULL;
}

/* ---- logging ---- */

static int cmp_range(const void *a, const void *b)
{
	const struct log_range *x = a, *y = b;

	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/* Pages one log may track in all (16 TiB of 4 KiB pages; 512 MiB of bitmaps). */
#define LOG_MAX_PAGES (1ull << 32)

static void free_ranges(struct log_range *r, uint32_t n)
{
	for (uint32_t i = 0; r && i < n; i++)
		free(r[i].bits);
	free(r);
}

int devmig_dma_log_start(struct devmig_dma *dma, uint64_t *page_size,
			 const struct devmig_dma_logging_range *ranges, uint32_t n)
{
	uint64_t ps;
	unsigned shift;
	struct log_range *lr = NULL;
	uint32_t nr = 0;
	int err = 0;

	if (!page_size || (n && !ranges))
		return -EINVAL;
	ps = is_pow2(*page_size) && *page_size >= DEVMIG_MIN_PAGE_SIZE ? *page_size
								     : DEVMIG_MIN_PAGE_SIZE;
	shift = (unsigned)__builtin_ctzll(ps);

	pthread_rwlock_wrlock(&dma->lock);
	if (dma->logging) {
		err = -EBUSY;
		goto out;
	}
	if (n) {
		lr = calloc(n, sizeof(*lr));
		if (!lr) {
			err = -ENOMEM;
			goto out;
		}
		for (uint32_t i = 0; i < n; i++) {
			struct devmig_dma_logging_range in;

			memcpy(&in, &ranges[i], sizeof(in)); /* packed: copy out aligned */
			if (!range_ok(in.iova, in.length) || (in.iova | in.length) & (ps - 1)) {
				err = -EINVAL;
				goto out;
			}
			lr[nr++] = (struct log_range){ .iova = in.iova, .len = in.length };
		}
		qsort(lr, nr, sizeof(*lr), cmp_range);
	} else if (dma->n) {
		lr = calloc(dma->n, sizeof(*lr));
		if (!lr) {
			err = -ENOMEM;
			goto out;
		}
		/* Every mapping rounded out to the page size, overlaps merged. */
		for (size_t i = 0; i < dma->n; i++) {
			uint64_t s = dma->regs[i]->iova & ~(ps - 1);
			uint64_t e = dma->regs[i]->iova + dma->regs[i]->size;

			e = (e + ps - 1) & ~(ps - 1);
			if (e <= s) { /* rounding wrapped past the top */
				err = -EINVAL;
				goto out;
			}
			if (nr && s <= lr[nr - 1].iova + lr[nr - 1].len)
				lr[nr - 1].len = e - lr[nr - 1].iova;
			else
				lr[nr++] = (struct log_range){ .iova = s, .len = e - s };
		}
	}
	uint64_t total = 0;
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t bits = lr[i].len >> shift;

		if (i && lr[i].iova < lr[i - 1].iova + lr[i - 1].len) {
			err = -EINVAL; /* overlap */
			goto out;
		}
		/* Bitmaps are allocated up front: a log over more pages than any
		 * memory to migrate is refused, not attempted. */
		total += bits;
		if (total > LOG_MAX_PAGES) {
			err = -E2BIG;
			goto out;
		}
		if (bits / 64 + 1 > SIZE_MAX / sizeof(uint64_t) ||
		    !(lr[i].bits = calloc(bits / 64 + 1, sizeof(uint64_t)))) {
			err = -ENOMEM;
			goto out;
		}
	}
	dma->ranges = lr;
	dma->nranges = nr;
	dma->shift = shift;
	dma->logging = true;
	atomic_store(&dma->dirty_pages, 0);
	lr = NULL;
	*page_size = ps;
out:
	pthread_rwlock_unlock(&dma->lock);
	free_ranges(lr, nr);
	return err;
}

int devmig_dma_log_stop(struct devmig_dma *dma)
{
	struct log_range *lr;
	uint32_t nr;

	pthread_rwlock_wrlock(&dma->lock);
	lr = dma->ranges;
	nr = dma->nranges;
	dma->ranges = NULL;
	dma->nranges = 0;
	dma->logging = false;
	pthread_rwlock_unlock(&dma->lock);
	free_ranges(lr, nr);
	return 0;
}

/* Plain (non-atomic) set of bits [lo, hi] in the caller's bitmap. */
static void set_bits(uint64_t *bm, uint64_t lo, uint64_t hi)
{
	for (uint64_t w = lo / 64; w <= hi / 64; w++)
		bm[w] |= bit_mask(w == lo / 64 ? lo % 64 : 0, w == hi / 64 ? hi % 64 : 63);
}

int devmig_dma_log_report(struct devmig_dma *dma, uint64_t iova, uint64_t length,
			  uint64_t page_size, uint64_t *bitmap)
{
	uint64_t end = iova + length, cur = iova;
	unsigned rshift;
	uint32_t k0, k;
	int err = 0;

	if (!bitmap || !is_pow2(page_size) || page_size < DEVMIG_MIN_PAGE_SIZE ||
	    !range_ok(iova, length) || (iova | length) & (page_size - 1))
		return -EINVAL;
	rshift = (unsigned)__builtin_ctzll(page_size);

	pthread_rwlock_rdlock(&dma->lock);
	if (!dma->logging) {
		err = -EINVAL;
		goto out;
	}
	/* The logged ranges must cover [iova, end) without a hole. */
	k0 = first_range_after(dma, iova);
	for (k = k0; k < dma->nranges && cur < end; k++) {
		if (dma->ranges[k].iova > cur)
			break;
		cur = dma->ranges[k].iova + dma->ranges[k].len;
	}
	if (cur < end) {
		err = -EINVAL;
		goto out;
	}

	memset(bitmap, 0, devmig_log_bitmap_size(length, page_size));
	for (k = k0; k < dma->nranges && dma->ranges[k].iova < end; k++) {
		const struct log_range *lr = &dma->ranges[k];
		uint64_t T = 1ull << dma->shift;
		uint64_t s = iova > lr->iova ? iova : lr->iova;
		uint64_t e = end < lr->iova + lr->len ? end : lr->iova + lr->len;
		/* Tracking pages touched: [rd_lo, rd_hi]; wholly covered: [cl_lo, cl_end). */
		uint64_t rd_lo = (s - lr->iova) >> dma->shift;
		uint64_t rd_hi = (e - 1 - lr->iova) >> dma->shift;
		uint64_t cl_lo = rd_lo + (((s - lr->iova) & (T - 1)) != 0);
		uint64_t cl_end = (e - lr->iova) >> dma->shift;

		for (uint64_t w = rd_lo / 64; w <= rd_hi / 64; w++) {
			uint64_t wlo = w * 64, whi = w * 64 + 63;
			uint64_t rmask = bit_mask(rd_lo > wlo ? rd_lo % 64 : 0,
						  rd_hi < whi ? rd_hi % 64 : 63);
			uint64_t cmask = 0, v;

			if (cl_lo < cl_end && cl_lo <= whi && cl_end - 1 >= wlo)
				cmask = bit_mask(cl_lo > wlo ? cl_lo % 64 : 0,
						 cl_end - 1 < whi ? (cl_end - 1) % 64 : 63);
			v = cmask ? atomic_fetch_and(&lr->bits[w], ~cmask)
				  : atomic_load(&lr->bits[w]);
			for (v &= rmask; v; v &= v - 1) {
				uint64_t ps = lr->iova + ((wlo + (uint64_t)__builtin_ctzll(v)) << dma->shift);
				uint64_t x = ps > iova ? ps : iova;
				uint64_t y = ps + T < end ? ps + T : end;

				set_bits(bitmap, (x - iova) >> rshift, (y - 1 - iova) >> rshift);
			}
		}
	}
out:
	pthread_rwlock_unlock(&dma->lock);
	return err;
}

void devmig_dma_get_stats(struct devmig_dma *dma, struct devmig_dma_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_rwlock_rdlock(&dma->lock);
	st->bytes_mapped = dma->bytes_mapped;
	st->mappings = (uint32_t)dma->n;
	st->logging = dma->logging;
	if (dma->logging) {
		st->log_page_size = 1ull << dma->shift;
		st->log_ranges = dma->nranges;
		for (uint32_t i = 0; i < dma->nranges; i++)
			st->log_bytes += dma->ranges[i].len;
	}
	pthread_rwlock_unlock(&dma->lock);
	st->dirty_pages = atomic_load(&dma->dirty_pages);
}
