/* SPDX-License-Identifier: MIT */
/* Guest memory owned by the engine: a memfd, and the VMM's own dirty marks. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine_internal.h"

struct devmig_guest_mem {
	void *ptr;
	size_t size;
	int fd;
	_Atomic uint64_t *dirty; /* one bit per GUEST_PAGE, set by mark_dirty */
	size_t words;
};

struct devmig_guest_mem *devmig_guest_mem_new(size_t size, char *err, size_t errlen)
{
	struct devmig_guest_mem *gm = calloc(1, sizeof(*gm));

	if (!gm || !size || size % GUEST_PAGE) {
		snprintf(err, errlen, "guest memory size must be a non-zero multiple of %u", GUEST_PAGE);
		free(gm);
		return NULL;
	}
	gm->size = size;
	gm->words = (size / GUEST_PAGE + 63) / 64;
	gm->dirty = calloc(gm->words, sizeof(*gm->dirty));
	gm->fd = memfd_create("devmig-guest", MFD_CLOEXEC);
	if (!gm->dirty || gm->fd < 0 || ftruncate(gm->fd, (off_t)size)) {
		snprintf(err, errlen, "cannot create %zu bytes of guest memory: %s", size,
			 strerror(errno));
		goto fail;
	}
	gm->ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, gm->fd, 0);
	if (gm->ptr == MAP_FAILED) {
		snprintf(err, errlen, "cannot map guest memory: %s", strerror(errno));
		gm->ptr = NULL;
		goto fail;
	}
	return gm;
fail:
	devmig_guest_mem_free(gm);
	return NULL;
}

void devmig_guest_mem_free(struct devmig_guest_mem *gm)
{
	if (!gm)
		return;
	if (gm->ptr)
		munmap(gm->ptr, gm->size);
	if (gm->fd >= 0)
		close(gm->fd);
	free((void *)gm->dirty);
	free(gm);
}

void *devmig_guest_mem_ptr(struct devmig_guest_mem *gm)
{
	return gm->ptr;
}

size_t devmig_guest_mem_size(const struct devmig_guest_mem *gm)
{
	return gm->size;
}

int devmig_guest_mem_fd(const struct devmig_guest_mem *gm)
{
	return gm->fd;
}

void devmig_guest_mem_mark_dirty(struct devmig_guest_mem *gm, uint64_t offset, uint64_t len)
{
	if (!len || offset >= gm->size)
		return;
	if (len > gm->size - offset)
		len = gm->size - offset;
	for (uint64_t p = offset / GUEST_PAGE; p <= (offset + len - 1) / GUEST_PAGE; p++)
		atomic_fetch_or(&gm->dirty[p / 64], 1ull << (p % 64));
}

/* OR the VMM's dirty marks into bitmap and clear them (read-and-clear). */
void guest_mem_take_dirty(struct devmig_guest_mem *gm, uint64_t *bitmap)
{
	for (size_t w = 0; w < gm->words; w++)
		bitmap[w] |= atomic_exchange(&gm->dirty[w], 0);
}

size_t guest_mem_bitmap_words(const struct devmig_guest_mem *gm)
{
	return gm->words;
}
