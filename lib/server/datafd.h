/* SPDX-License-Identifier: MIT */
/*
 * The data_fd extension, server side (private to the server): one pipe per
 * migration data session, and a thread, the pump, that moves the stream
 * between the pipe and the core while the server thread goes on answering
 * commands.
 *
 * Save: the pump reads the core's stream and writes it into the pipe, device
 * memory of a stopped device by reference (vmsplice), the rest by copy; the
 * client reads the other end until 0 (the end of STOP_COPY data). In
 * PRE_COPY, once the core has nothing more for now, the pump waits until a
 * PRE_COPY progress query (or a state change) asks it to look again; the
 * query counts what the pump holds and what the pipe holds, so 0 and 0 mean
 * the pipe is empty and stays so until the device changes more state: the
 * temporary end.
 *
 * Load: the pump reads what the client writes and feeds it to the core.
 * Before a state change (and a status query) everything in the pipe is fed.
 *
 * Every function here is the server thread's; the pump is the only other
 * thread, and a paused pump holds nothing.
 */
#ifndef DEVMIG_LIB_DATAFD_H
#define DEVMIG_LIB_DATAFD_H

#include <stdint.h>

#include "core.h"

struct devmig_datafd;

/* A session of kind (SAVE or LOAD) on dev: its pipe and pump. *client_fd is
 * the end the client gets (the caller sends it, then closes its copy). NULL
 * with why filled on failure. */
struct devmig_datafd *devmig_datafd_open(struct devmig_device *dev, enum devmig_core_session kind,
					 int *client_fd, char *why, size_t whylen);
/*
 * Stop moving data, before the core's session changes (a state change):
 * a save pump keeps what it took from the core and not yet written, for
 * later; a load pump first feeds the core everything in the pipe.
 */
void devmig_datafd_pause(struct devmig_datafd *ds);
void devmig_datafd_resume(struct devmig_datafd *ds);
/* The session is over: stop the pump, empty the pipe (a save's unread data
 * is dropped), close the server's ends. NULL is a no-op. */
void devmig_datafd_close(struct devmig_datafd *ds);
/* PRE_COPY progress as the client sees it: the core's, plus what the pump
 * holds and the pipe holds. Asks the pump to look for new data. */
int devmig_datafd_precopy_info(struct devmig_datafd *ds, uint64_t *initial, uint64_t *dirty);
/* Stream bytes produced and not read by the client (for MIG_DATA_SIZE). */
uint64_t devmig_datafd_unread(struct devmig_datafd *ds);
/* A load: feed the core everything written so far (before MIG_STATUS). */
void devmig_datafd_sync(struct devmig_datafd *ds);
enum devmig_core_session devmig_datafd_kind(const struct devmig_datafd *ds);

#endif /* DEVMIG_LIB_DATAFD_H */
