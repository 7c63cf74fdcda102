/* SPDX-License-Identifier: MIT */
/*
 * memblk: a guest workload for the demo, the tests and the benchmarks.
 *
 * One workload drives one memblk device through the guest driver
 * (memblk_guest.h) from its own thread, the way a guest would while it is
 * being live-migrated:
 *  - random READs and WRITEs (1..max_io blocks, up to `depth` in flight,
 *    never two in flight on the same block; WRITEs optionally confined to a
 *    working set of write_span blocks); a WRITE carries pattern data
 *    derived from (lba, version) (mbw_pattern); its version is recorded in
 *    a shadow table only once its completion has been reaped (acknowledged);
 *    every READ is checked against that table;
 *  - every CPU store into guest memory (data buffers, SQ entries) is
 *    reported with devmig_guest_mem_mark_dirty (what KVM's dirty log does
 *    for vCPUs), so the engine copies those pages again;
 *  - it measures the longest gap between two completed I/Os: the downtime
 *    the guest saw.
 *
 * The workload owns a window [win_off, win_off + win_size) of guest memory
 * (rings at its start, then data buffers); several workloads may share one
 * guest memory with disjoint windows. Guest memory is DMA-mapped in the
 * device at guest_iova, so the window is at IOVA guest_iova + win_off.
 *
 * Migration: mbw_pause parks the thread between requests (nothing in
 * flight) and returns once it is parked; mbw_resume(true) switches to the
 * destination given by mbw_set_destination (new MMIO route, interrupt and
 * guest memory: the copy is now the guest's RAM) and continues there;
 * mbw_resume(false) continues on the source. These fit the engine's
 * pause_guest/resume_guest callbacks. After a move, before any new request,
 * the thread checks the destination's copy of its window: the rings as the
 * guest last wrote and read them, and each buffer's last data (WRITE data
 * stored by the CPU, READ data stored by the device's DMA).
 *
 * Errors are negative errnos, with the reason in the stats' `error`.
 */
#ifndef DEVMIG_MEMBLK_WORKLOAD_H
#define DEVMIG_MEMBLK_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memblk_guest.h"

struct devmig_guest_mem;

struct mbw_config {
	struct mbg_mmio io;            /* the device's BAR0 (mbg_mmio_client) */
	int irq_fd;                    /* MSI-X vector 0 eventfd, or -1 (polling) */
	struct devmig_guest_mem *mem;  /* guest memory */
	uint64_t guest_iova;           /* where mem is DMA-mapped in the device */
	uint64_t win_off, win_size;    /* this workload's window; win_size 0: all of mem */
	unsigned depth;                /* requests in flight; 0: 8 (at most 64) */
	unsigned max_io;               /* largest random READ/WRITE in blocks; 0: 8 */
	unsigned write_pct;            /* share of WRITEs in percent; 0: 50 (101: none) */
	uint64_t write_span;           /* WRITEs go to this many blocks in the middle of
	                                * the device (a working set); 0: anywhere */
	uint64_t seed;                 /* random stream; 0: fixed default */
	uint64_t max_ops_per_sec;      /* 0: as fast as the device goes */
	int timeout_ms;                /* no completion for this long is an error; 0: 10 s */
};

struct mbw_stats {
	uint64_t ops;             /* completed READs + WRITEs while running */
	uint64_t reads, writes;
	uint64_t bytes;           /* data moved by those */
	uint64_t acked_writes;    /* every acknowledged WRITE (fill pass included) */
	uint64_t mismatches;      /* READ blocks whose content was not the acknowledged version */
	uint64_t errors;          /* failed completions or driver errors */
	uint64_t max_gap_ns;      /* longest gap between two completed I/Os while running */
	uint64_t max_gap_end;     /* when it ended (CLOCK_MONOTONIC ns) */
	uint64_t switch_gap_ns;   /* the gap across the last pause (last I/O -> first after) */
	uint64_t pauses;
	uint64_t mem_checked;     /* guest memory bytes checked after the move (rings, buffers) */
	uint64_t run_ns;          /* time spent running (start -> stop) */
	bool on_destination;
	char error[256];          /* the first failure, or "" */
};

struct mbw_verify_result {
	uint64_t blocks;          /* blocks read back */
	uint64_t written_blocks;  /* of those, blocks with an acknowledged version */
	uint64_t mismatches;      /* blocks whose content differed */
	uint64_t ns;
	char first[256];          /* the first mismatch, or "" */
};

struct mbw;

/* Program the rings (mbg_init + mbg_setup_queues); NULL with the reason in err. */
struct mbw *mbw_new(const struct mbw_config *cfg, char *err, size_t errlen);
/* Stops the thread if it runs; the device is left as it is. */
void mbw_free(struct mbw *w);
/* The driver (for its geometry: capacity, max_blocks). */
struct mbg *mbw_driver(struct mbw *w);

/* Before mbw_start: WRITE every block once, in the largest transfers the
 * device allows. 0, or -errno with the reason in err. */
int mbw_fill(struct mbw *w, char *err, size_t errlen);

int mbw_start(struct mbw *w);
/* Stop the thread (in-flight requests are reaped first); returns 0, or the
 * thread's first error. */
int mbw_stop(struct mbw *w);

/* Park between requests; returns 0 once nothing is in flight, -ETIMEDOUT. */
int mbw_pause(struct mbw *w, int timeout_ms);
/* Where mbw_resume(true) goes. mem: the destination's copy of guest memory. */
void mbw_set_destination(struct mbw *w, const struct mbg_mmio *io, int irq_fd,
			 struct devmig_guest_mem *mem);
void mbw_resume(struct mbw *w, bool on_destination);

void mbw_get_stats(struct mbw *w, struct mbw_stats *st);

/* With the thread stopped: read every block back (largest transfers, depth
 * in flight) on the current route and compare with the shadow table.
 * 0 when everything matches, -EIO on mismatches, else -errno (err). */
int mbw_verify(struct mbw *w, struct mbw_verify_result *res, char *err, size_t errlen);

/* The content of block lba at version ver (ver 0: never written, zeros). */
void mbw_pattern(void *block, uint64_t lba, uint32_t ver);

#endif /* DEVMIG_MEMBLK_WORKLOAD_H */
