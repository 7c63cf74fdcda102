/* SPDX-License-Identifier: MIT */
/* Faulting fresh memory in ahead of its writer: see prefault.h. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "prefault.h"

/* One madvise call, and how far the writer moves before it wakes the thread. */
#define STEP (8ull << 20)

struct devmig_prefault {
	uint8_t *base;
	uint64_t size, window;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	uint64_t want, done; /* under lock: fault in [0, want); [0, done) is */
	_Atomic uint64_t told; /* the last want the writer signalled (no lock to read) */
	bool stop;
};

static void *prefault_main(void *arg)
{
	struct devmig_prefault *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		if (p->done >= p->want) {
			pthread_cond_wait(&p->cv, &p->lock);
			continue;
		}
		uint64_t at = p->done, n = p->want - at < STEP ? p->want - at : STEP;
		pthread_mutex_unlock(&p->lock);
		/* Faulting in writes nothing: a page the writer got to first is
		 * left as it is. A kernel without it (before 5.14): stop. */
		bool ok = madvise(p->base + at, n, MADV_POPULATE_WRITE) == 0;
		pthread_mutex_lock(&p->lock);
		p->done = at + n;
		if (!ok)
			break;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static uint64_t upto(const struct devmig_prefault *p, uint64_t at)
{
	uint64_t end = at + p->window;
	return end < at || end > p->size ? p->size : end;
}

struct devmig_prefault *devmig_prefault_start(void *base, uint64_t size, uint64_t window)
{
	struct devmig_prefault *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->base = base;
	p->size = size;
	p->window = window;
	p->want = upto(p, 0);
	atomic_init(&p->told, p->want);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&p->thread, NULL, prefault_main, p)) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	return p;
}

void devmig_prefault_reach(struct devmig_prefault *p, uint64_t at)
{
	if (!p)
		return;
	uint64_t want = upto(p, at);
	if (want < atomic_load_explicit(&p->told, memory_order_relaxed) + STEP && want != p->size)
		return;
	if (want <= atomic_load_explicit(&p->told, memory_order_relaxed))
		return;
	atomic_store_explicit(&p->told, want, memory_order_relaxed);
	pthread_mutex_lock(&p->lock);
	if (want > p->want) {
		p->want = want;
		pthread_cond_signal(&p->cv);
	}
	pthread_mutex_unlock(&p->lock);
}

void devmig_prefault_stop(struct devmig_prefault *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
