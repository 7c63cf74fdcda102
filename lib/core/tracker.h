/* SPDX-License-Identifier: MIT */
/*
 * Tracked device memory (struct devmig_tracker of device.h): the core's
 * side. The device core owns the trackers of a device and drives their
 * save and load sessions from its own; a tracker's records are MEM_INFO,
 * MEM_DATA and MEM_ZERO of stream.h, tagged with its index.
 *
 * Locks: stripe[i % TRACKER_STRIPES] guards chunk i between a writer
 * (devmig_tracker_write/mark, any thread) and the saver copying it; bitmap
 * words are shared across stripes and changed atomically. Sessions are the
 * server thread's, under the core's migration lock.
 */
#ifndef DEVMIG_LIB_TRACKER_H
#define DEVMIG_LIB_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmig/device.h"

/* NULL with errno set (EINVAL for a bad size or chunk, ENOMEM). */
struct devmig_tracker *devmig_tracker_create(unsigned index, uint64_t size, uint32_t chunk,
					     unsigned flags);
void devmig_tracker_destroy(struct devmig_tracker *t);

/* Bytes written or marked since creation (devmig_tracker_write/mark): how
 * fast the device's state changes is measured from it. Any thread. */
uint64_t devmig_tracker_written_total(struct devmig_tracker *t);

/* ---- save ---- */

/* A save session opens: every chunk is due, none has been sent. */
void devmig_tracker_save_open(struct devmig_tracker *t);
void devmig_tracker_save_close(struct devmig_tracker *t);
/* Emit MEM_INFO (once per session), then due chunks while s has room.
 * Returns the records emitted, or -errno. */
int devmig_tracker_save(struct devmig_tracker *t, struct devmig_save *s);
/* Memory bytes of the first pass not yet emitted, and of chunks written
 * since they were emitted (0, 0 without a session). */
void devmig_tracker_precopy_info(struct devmig_tracker *t, uint64_t *initial, uint64_t *dirty);
/* Stream bytes (records and framing) still to come in a STOP_COPY from now;
 * without a session, the whole memory. */
uint64_t devmig_tracker_stop_copy_size(struct devmig_tracker *t);

/* ---- load ---- */

/* RESUMING opens: a staging mapping of the memory's size. -ENOMEM. */
int devmig_tracker_load_open(struct devmig_tracker *t);
/* A MEM_* record of this tracker (its index already matched). */
int devmig_tracker_load(struct devmig_tracker *t, uint32_t type, const uint8_t *p, size_t len,
			char *why, size_t whylen);
/* Every chunk arrived? */
int devmig_tracker_load_check(struct devmig_tracker *t, char *why, size_t whylen);
/* Swap the staged memory in (cannot fail). */
void devmig_tracker_load_apply(struct devmig_tracker *t);
void devmig_tracker_load_abort(struct devmig_tracker *t);

#endif /* DEVMIG_LIB_TRACKER_H */
