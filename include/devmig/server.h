/* SPDX-License-Identifier: MIT */
/*
 * devmig: serving one device over a vfio-user socket.
 *
 * A server owns an AF_UNIX stream socket (created mode 0600) and serves one
 * client at a time; a second one gets EBUSY as the answer to its VERSION.
 * When the client disconnects, its DMA mappings and interrupt fds are
 * dropped and the device state is kept, so a new client can connect. Each
 * server runs in its own thread; many servers (devices) can run in one
 * process.
 *
 * A client cannot crash or hang a server: every send to it and every message
 * from it has a deadline (io_timeout_ms), it must send VERSION within that
 * time, only eventfds become interrupts, and DMA mappings must lie inside
 * their file. A mapping whose file the client shrinks later fails the
 * accesses that reach the lost pages (-EFAULT): the library installs a
 * SIGBUS handler for that, once, chaining to the one it replaces. The
 * embedding program should ignore SIGPIPE (devmig serve does); the server
 * itself never raises it.
 */
#ifndef DEVMIG_SERVER_H
#define DEVMIG_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmig/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libdevmig, which hides everything else. */
#pragma GCC visibility push(default)

struct devmig_server_config {
	const char *socket_path;     /* created; a stale socket there (nobody answers) is
				      * replaced, a live one or any other file refused */
	bool allow_other_uids;       /* accept peers whose uid differs from ours */
	uint32_t max_data_xfer_size; /* 0: 1 MiB (the specification's default) */
	uint32_t max_msg_size;       /* 0: max_data_xfer_size + 4 KiB */
	bool verbose;                /* log connections and refusals to stderr */
	uint32_t io_timeout_ms;      /* a send, a message begun, VERSION; 0: 10 s */
};

struct devmig_server;

/* Bind and listen. NULL on failure with the reason in err. */
struct devmig_server *devmig_server_new(struct devmig_device *dev,
					const struct devmig_server_config *cfg, char *err,
					size_t errlen);
/* Serve in a new thread. */
int devmig_server_start(struct devmig_server *srv);
/* Serve in the calling thread until devmig_server_stop. */
int devmig_server_run(struct devmig_server *srv);
/* Stop serving (from any thread or a signal-safe wrapper) and wait for it. */
void devmig_server_stop(struct devmig_server *srv);
/* Stop if needed, close and unlink the socket (if it is still ours), free.
 * The device is not freed. */
void devmig_server_free(struct devmig_server *srv);

struct devmig_server_stats {
	uint64_t connections;
	uint64_t messages;
	uint64_t errors_replied;    /* error replies sent */
	uint64_t disconnects_bad;   /* connections dropped for framing errors */
};
void devmig_server_get_stats(struct devmig_server *srv, struct devmig_server_stats *st);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_SERVER_H */
