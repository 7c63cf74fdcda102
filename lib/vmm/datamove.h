/* SPDX-License-Identifier: MIT */
/*
 * The engine's data path (private to the vmm layer): device data moved
 * from one data session's descriptor to another (devmig_client_data_session),
 * or onto and off the migration channel, with splice(2) wherever both ends
 * are a pipe or a socket, so the engine never touches the bytes; a
 * descriptor splice does not work on (a kernel driver's migration file)
 * goes through one bounded buffer. Memory stays bounded whatever the device
 * size. Every call returns 0 or -errno with why filled.
 */
#ifndef DEVMIG_LIB_DATAMOVE_H
#define DEVMIG_LIB_DATAMOVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmig/client.h"

/* Where a source's save session is read from, and how. */
struct dm_src {
	struct devmig_client *c;
	bool precopy;   /* the device is in PRE_COPY(_P2P): an end there is a temporary one */
	int timeout_ms; /* the longest wait for data or room */
	uint64_t limit; /* stop after about this many bytes (0: at the end only) */
	/*
	 * PRE_COPY: what the device had pending when the round began. Once that
	 * much has moved, an empty fd ends the round: data the guest dirties
	 * meanwhile waits for the next one, instead of being chased for ever.
	 */
	uint64_t round;
};

/* What a move did: bytes moved, and whether the stream came to its end or
 * (PRE_COPY) its temporary end. */
struct dm_result {
	uint64_t bytes;
	bool ended;
	bool src_silent; /* the source did not answer in time */
	bool dst_silent; /* a local destination took no data in time */
};

/* True when src has a save session on a descriptor (the fd path applies). */
bool dm_src_has_session(struct devmig_client *c);

/* Source to a destination client's load session (both in this process). */
int dm_move_local(const struct dm_src *src, struct devmig_client *dst, struct dm_result *res,
		  char *why, size_t wl);

struct devmig_transport;

/*
 * Source to the channel t as frames for device dev: DEV_DATA_RAW (header
 * CRC only; spliced onto a plain socket) when raw is allowed and the stream
 * checks itself (a devmig stream), else DEV_DATA with the frame CRC over
 * bytes read here. *frames counts the frames sent.
 */
int dm_move_to_channel(const struct dm_src *src, struct devmig_transport *t, uint32_t dev,
		       bool raw, uint64_t *frames, struct dm_result *res, char *why, size_t wl);

/*
 * A DEV_DATA_RAW payload arriving on sock: len bytes into dst's load
 * session (spliced when it is a pipe), or dropped when dst is NULL (a
 * refusal already happened). 0 when all len bytes were taken off the
 * channel, with *dst_error set (and why) if the destination refused them
 * (the rest was dropped); -errno when the channel failed.
 */
int dm_move_from_channel(struct devmig_transport *t, uint64_t len, struct devmig_client *dst,
			 int timeout_ms, int *dst_error, char *why, size_t wl);

#endif /* DEVMIG_LIB_DATAMOVE_H */
