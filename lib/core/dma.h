/* SPDX-License-Identifier: MIT */
/*
 * devmig: the DMA map table and DMA dirty logging (private to the library).
 *
 * The server thread feeds DMA_MAP / DMA_UNMAP from the client into the table;
 * device threads reach guest memory only through the accessors below, which
 * may be called from any thread concurrently with map/unmap/logging calls.
 *
 * Locking. One writer-preferring rwlock guards the table and the log
 * configuration; accessors hold it (shared) only for the binary search and to
 * take a reference on each mapping they touch, never while copying or while
 * calling the transport. Unmap removes the mapping under the lock, drops the
 * lock, then waits for the references to drain before munmap(); dirty bits
 * are set with atomic fetch-or and read-and-cleared with atomic fetch-and.
 *
 * Errors are negative errnos. Addresses are guest IOVAs.
 */
#ifndef DEVMIG_DMA_H
#define DEVMIG_DMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmig/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

struct devmig_dma;
struct devmig_dma_region;

/* How to reach mappings that came without an fd (DMA_READ/DMA_WRITE messages). */
struct devmig_dma_transport {
	/*
	 * Copy len bytes between buf and the client's memory at iova; return 0
	 * or -errno (buf is not modified when is_write: it may be the const
	 * buffer of devmig_dma_write). Called without any devmig_dma lock
	 * held, from the accessing device thread. len may be
	 * anything up to the access length: splitting it into max_data_xfer_size
	 * messages is the transport's job.
	 */
	int (*xfer)(void *opaque, bool is_write, uint64_t iova, void *buf, size_t len);
	void *opaque;
	/*
	 * false (the usual case): unmap of an fd-less mapping does NOT wait for
	 * transfers in flight on it, because the reply to such a transfer
	 * arrives on the socket the unmapping server thread reads, so waiting
	 * would deadlock. Such a late transfer reaches the client after its
	 * DMA_UNMAP reply and the client must refuse it (it owns that memory).
	 * true: unmap waits for them too; only safe when the replies are read
	 * by a thread other than the one calling unmap (e.g. a twin socket).
	 */
	bool unmap_waits;
};

/* t may be NULL (fd-less mappings are then accepted but not accessible: -ENOTSUP). */
struct devmig_dma *devmig_dma_create(const struct devmig_dma_transport *t);
/*
 * Unmaps everything (waiting for pins/accessors as unmap does) and frees.
 * No accessor may be called on dma during or after destroy.
 */
void devmig_dma_destroy(struct devmig_dma *dma);

/* Is some mapping reached through the transport (no fd)? */
bool devmig_dma_has_fdless(struct devmig_dma *dma);

/* Largest number of mappings accepted (default DEVMIG_DEFAULT_MAX_DMA_MAPS). */
void devmig_dma_set_max_mappings(struct devmig_dma *dma, uint32_t max);

/*
 * Map [iova, iova+size) with prot (DEVMIG_DMA_READ|DEVMIG_DMA_WRITE, or 0).
 * fd >= 0: mmap(MAP_SHARED) fd at file_offset. fd < 0: reached through the
 * transport; file_offset is ignored.
 *
 * FD OWNERSHIP: on success (0) the table owns fd and has already closed it;
 * on any failure the caller still owns fd and must close it.
 *
 * Refused with no change: -EINVAL (size 0, iova+size wraps, iova/size/
 * file_offset not 4096-aligned, unknown prot bits), -EEXIST (overlaps a
 * mapping), -ENOSPC (max mappings reached), -ENOMEM, or mmap()'s errno.
 */
int devmig_dma_map(struct devmig_dma *dma, uint64_t iova, uint64_t size, uint32_t prot,
		   int fd, uint64_t file_offset);

/*
 * Unmap the mapping that is exactly [iova, iova+size). -ENOENT: nothing
 * mapped there; -EINVAL: size 0/wraps, or the range overlaps mappings
 * without being exactly one (partial unmaps are not supported). Waits for
 * pins and accessors in flight on an fd-backed mapping (see
 * devmig_dma_transport.unmap_waits for fd-less ones); never holds a lock
 * while waiting.
 */
int devmig_dma_unmap(struct devmig_dma *dma, uint64_t iova, uint64_t size);
/* Unmap everything (client disconnect); same waiting rules. */
void devmig_dma_unmap_all(struct devmig_dma *dma);

/*
 * Copy between buf and guest memory. [iova, iova+len) may span adjacent
 * mappings (fd-backed and fd-less mixed); every byte must be mapped with the
 * needed permission, else nothing is copied: -EFAULT (some byte unmapped, or
 * iova+len wraps), -EACCES (a mapping lacks READ / WRITE), -ENOTSUP (fd-less
 * mapping and no transport); checked in address order, first problem wins.
 * len 0: 0. A transport error mid-way is returned as is; the fd-backed
 * segments before it are copied. A write marks its pages dirty in the DMA
 * log (if logging) once the data is in place, even if the transport failed.
 */
int devmig_dma_read(struct devmig_dma *dma, uint64_t iova, void *buf, size_t len);
int devmig_dma_write(struct devmig_dma *dma, uint64_t iova, const void *buf, size_t len);

/*
 * For devices that write guest memory another way (e.g. through a pin).
 * Pages outside the logged ranges, or logging off: ignored. -EINVAL if
 * iova+len wraps; len 0 is a no-op.
 */
int devmig_dma_mark_dirty(struct devmig_dma *dma, uint64_t iova, uint64_t len);

/* Zero-copy access: a pin keeps its mapping alive (unmap waits for it). */
struct devmig_dma_pin {
	struct devmig_dma *dma;
	struct devmig_dma_region *region;
	uint64_t iova;
	uint64_t len;
	uint32_t prot;
};
/*
 * Pointer to [iova, iova+len) inside one fd-backed mapping with prot
 * (non-zero subset of READ|WRITE). NULL with errno: EINVAL (len 0, bad prot),
 * EFAULT (not inside one single mapping: pins never span), EACCES, ENOTSUP
 * (fd-less mapping). Unpin promptly: unmap blocks until then.
 */
void *devmig_dma_pin(struct devmig_dma *dma, uint64_t iova, uint64_t len, uint32_t prot,
		     struct devmig_dma_pin *pin);
/* Drop the pin; with DEVMIG_DMA_WRITE in its prot the range is marked dirty. */
void devmig_dma_unpin(struct devmig_dma_pin *pin);

/*
 * DMA logging (DEVICE_FEATURE 6/7/8).
 *
 * start: *page_size in: hint, out: the tracking page size (the hint if it is
 * a power of two >= 4096, else 4096). n ranges (any order) must each be
 * non-empty, aligned to that page size, not wrap and not overlap (else
 * -EINVAL). n == 0: log the memory mapped now (each mapping rounded out to
 * the page size; later mappings are not logged). -EBUSY if started;
 * -E2BIG for more than 2^32 pages in all; -ENOMEM. One bitmap per range.
 */
int devmig_dma_log_start(struct devmig_dma *dma, uint64_t *page_size,
			 const struct devmig_dma_logging_range *ranges, uint32_t n);
/* Stop and free the log. 0 even if it was not started. */
int devmig_dma_log_stop(struct devmig_dma *dma);
/*
 * Read and clear the dirty bits of [iova, iova+length) into bitmap
 * (devmig_log_bitmap_size(length, page_size) bytes, fully written): bit n =
 * page at iova + n*page_size. page_size: any power of two >= 4096; coarser
 * than tracking ORs pages, finer replicates them. -EINVAL: not started, bad
 * page_size, length 0, iova/length not multiples of page_size, wraps, or
 * some byte outside the logged ranges (which may be adjacent: a report may
 * span them). Only tracking pages wholly inside the range are cleared; a
 * tracking page the range only partly covers (possible when page_size is
 * finer) is reported and left set, so nothing is ever lost.
 */
int devmig_dma_log_report(struct devmig_dma *dma, uint64_t iova, uint64_t length,
			  uint64_t page_size, uint64_t *bitmap);

struct devmig_dma_stats {
	uint64_t bytes_mapped;
	uint32_t mappings;
	bool logging;
	uint64_t log_page_size;  /* 0 when not logging */
	uint32_t log_ranges;
	uint64_t log_bytes;      /* bytes covered by the logged ranges */
	uint64_t dirty_pages;    /* tracking pages turned dirty (0 -> 1) since start */
};
void devmig_dma_get_stats(struct devmig_dma *dma, struct devmig_dma_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* DEVMIG_DMA_H */
