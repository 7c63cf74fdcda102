/* SPDX-License-Identifier: MIT */
/*
 * Faulting fresh memory in ahead of the thread that writes it. A new
 * page's cost is mostly the kernel clearing it; done by a thread of its own
 * (MADV_POPULATE_WRITE) it overlaps the writer's copying instead of
 * stalling it. Only a window ahead of what the writer reached is faulted
 * in, so memory that is never written (a sparse device's zero chunks)
 * mostly stays unallocated. Private to the core.
 */
#ifndef DEVMIG_LIB_PREFAULT_H
#define DEVMIG_LIB_PREFAULT_H

#include <stdint.h>

struct devmig_prefault;

/* Start on [base, base + size), the first window at once. NULL when no
 * thread could start: the writer faults its pages itself, as without. */
struct devmig_prefault *devmig_prefault_start(void *base, uint64_t size, uint64_t window);

/* The writer has reached offset at: fault in up to at + window. Cheap when
 * called for every write (the thread is woken once per step). */
void devmig_prefault_reach(struct devmig_prefault *p, uint64_t at);

/* Stop and join; before the memory is unmapped. p may be NULL. */
void devmig_prefault_stop(struct devmig_prefault *p);

#endif /* DEVMIG_LIB_PREFAULT_H */
