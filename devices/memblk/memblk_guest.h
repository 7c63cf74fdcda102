/* SPDX-License-Identifier: MIT */
/*
 * memblk: a small guest-side driver, for tests, the demo and benchmarks.
 *
 * The driver reaches the device's registers through an MMIO accessor pair
 * (a vfio-user client in this project: mbg_mmio_client) and owns a window
 * of guest memory: a plain pointer plus the guest address (IOVA) it is
 * mapped at for the device. The rings and data buffers live in that window.
 * Completions are found by reading CQ_TAIL (so the driver never depends on
 * the ordering of the device's stores into guest memory); the phase bit of
 * every consumed entry is checked as well.
 *
 * Thread-safe: one mutex per driver. Errors are negative errnos; a
 * completion's own status is MB_SC_*.
 */
#ifndef DEVMIG_MEMBLK_GUEST_H
#define DEVMIG_MEMBLK_GUEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memblk_hw.h"

struct devmig_client;

struct mbg_mmio {
	void *opaque;
	int (*read32)(void *opaque, uint32_t off, uint32_t *val);
	int (*write32)(void *opaque, uint32_t off, uint32_t val);
};

struct mbg {
	struct mbg_mmio io;
	uint8_t *mem;       /* guest memory window ... */
	uint64_t iova;      /* ... as the device addresses it */
	uint64_t mem_size;
	int irq_fd;         /* eventfd of MSI-X vector 0, or -1 (polling) */

	uint64_t capacity;  /* blocks */
	uint32_t max_blocks, chunk_size;

	uint64_t sq_iova, cq_iova;
	uint32_t sq_size, cq_size;
	uint32_t sq_tail, sq_head; /* sq_head: as last reported by a completion */
	uint32_t cq_head, phase;
	uint64_t submitted, completed;
	pthread_mutex_t lock;
};

/* MMIO through a vfio-user client (BAR0 = region 0). */
struct mbg_mmio mbg_mmio_client(struct devmig_client *c);

/* Read and check ID/VERSION and the geometry. irq_fd may be -1. */
int mbg_init(struct mbg *g, const struct mbg_mmio *io, void *mem, uint64_t iova,
	     uint64_t mem_size, int irq_fd);
void mbg_destroy(struct mbg *g);
/* Switch to other MMIO / interrupt routes (after a migration: same guest, new VMM). */
void mbg_set_route(struct mbg *g, const struct mbg_mmio *io, int irq_fd);

/* Disable, program the rings (IOVAs inside the window) and enable. 0, or
 * -EIO with the device's ERR_CODE in *err_code (may be NULL) if refused. */
int mbg_setup_queues(struct mbg *g, uint64_t sq_iova, uint32_t sq_size, uint64_t cq_iova,
		     uint32_t cq_size, uint32_t *err_code);
/* Clear CONTROL.EN and wait (bounded) until READY drops. */
int mbg_disable(struct mbg *g);

/* Queue one request and ring the doorbell; -EAGAIN when the SQ is full. */
int mbg_submit(struct mbg *g, const struct mb_sqe *e);
/* Queue up to n requests and ring the doorbell once; returns how many were
 * queued (0 when the SQ is full) or -errno. */
int mbg_submit_many(struct mbg *g, const struct mb_sqe *e, unsigned n);
/* Consume up to max completions that are ready; returns the count. */
int mbg_reap(struct mbg *g, struct mb_cqe *out, unsigned max);
/* Wait for the interrupt (or timeout_ms, then return -ETIMEDOUT); with no
 * irq_fd, wait until CQ_TAIL moves. */
int mbg_wait(struct mbg *g, int timeout_ms);
/* Requests submitted and not yet reaped. */
uint64_t mbg_outstanding(struct mbg *g);

/* One request, waited for: submit e, reap until its tag completes (other
 * completions reaped meanwhile are dropped; use only without others in
 * flight). Returns 0 with *c filled, or -errno. */
int mbg_sync(struct mbg *g, const struct mb_sqe *e, struct mb_cqe *c, int timeout_ms);

/* Convenience: READ/WRITE nblocks at lba through the buffer at buf_iova,
 * IDENTIFY into buf_iova. Return the completion status (>= 0) or -errno. */
int mbg_read(struct mbg *g, uint64_t lba, uint32_t nblocks, uint64_t buf_iova, int timeout_ms);
int mbg_write(struct mbg *g, uint64_t lba, uint32_t nblocks, uint64_t buf_iova, int timeout_ms);
int mbg_identify(struct mbg *g, uint64_t buf_iova, struct mb_identify *id, int timeout_ms);

/* Pointer to guest memory at iova (NULL outside the window). */
void *mbg_ptr(struct mbg *g, uint64_t iova, uint64_t len);

/*
 * VMM side, for tests and tools: find the MSI-X capability in config space,
 * enable MSI-X, unmask vector 0 and route it to efd. 0 or -errno.
 */
int mbg_client_enable_msix(struct devmig_client *c, int efd);

#endif /* DEVMIG_MEMBLK_GUEST_H */
