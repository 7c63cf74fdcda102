/* SPDX-License-Identifier: MIT */
/*
 * Whole-message I/O on a vfio-user stream socket, shared by server and client.
 *
 * Reading is buffered: one recvmsg() usually brings a whole message (or
 * several), and a message body that arrives in many pieces is reassembled,
 * whatever its size. File descriptors (SCM_RIGHTS) are attributed to the
 * message that contains the last byte of the read that brought them: the
 * kernel ends a read right after a segment carrying descriptors, and peers
 * send each message with one sendmsg(), descriptors attached.
 */
#ifndef DEVMIG_LIB_MSGIO_H
#define DEVMIG_LIB_MSGIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devmig/wire.h"

#define DEVMIG_MSGIO_MAX_FDS 16u
#define DEVMIG_MSGIO_MAX_IOV 136 /* a head and the core's migration data segments */
/* An oversized message is skipped (so the peer gets an error reply) up to this size; past it we disconnect. */
#define DEVMIG_MSGIO_MAX_SKIP (64u << 20)

struct devmig_msg_reader {
	int sock;
	uint8_t *buf;
	size_t cap;
	size_t start, end;  /* unconsumed bytes are buf[start, end) */
	uint64_t base;      /* stream offset of buf[0] */
	int fds[DEVMIG_MSGIO_MAX_FDS];
	unsigned nfds;
	uint64_t fds_pos;   /* stream offset of the last byte of the read that brought them */
	bool fds_overflow;  /* more descriptors arrived than we hold: they were closed */
};

/* One received message; msg points into the reader's buffer until the next call. */
struct devmig_rx {
	struct devmig_hdr hdr;
	const uint8_t *msg; /* whole message, header included (or only its head, see tail_len) */
	uint8_t head[80];   /* the head of a message whose bulk went to a tail buffer */
	size_t len;
	int fds[DEVMIG_MSGIO_MAX_FDS]; /* owned by the caller now */
	unsigned nfds;
	size_t tail_len;    /* bulk bytes delivered to the caller's tail buffer */
	bool skipped;       /* refused header (oversized, bad flags) or lost fds: body
			     * discarded, hdr holds the raw header, hdr_err says why */
	enum devmig_wire_err hdr_err;
};

int devmig_msg_reader_init(struct devmig_msg_reader *r, int sock, size_t cap);
void devmig_msg_reader_free(struct devmig_msg_reader *r);

/*
 * Next whole message. Returns 1 with *rx filled, 0 on orderly EOF between
 * messages, or -errno: -EPROTO (header that cannot be resynchronised:
 * msg_size < 16, bad flags), -ECONNRESET (EOF inside a message), or the
 * socket's error. After a negative return the connection must be dropped.
 * A header refused for anything but its msg_size is returned skipped, so
 * the caller can send an error reply and carry on.
 */
int devmig_msg_recv(struct devmig_msg_reader *r, const struct devmig_wire_limits *lim,
		    struct devmig_rx *rx);

/*
 * Where the bulk data of an expected reply should land: a message matching
 * cmd and msg_id (a reply, not an error) whose size exceeds the header plus
 * head_len bytes by at most cap gets those bytes received straight into buf
 * (rx->msg then holds only the header and head_len bytes; decode it with
 * devmig_decode_head). Any other message is received as usual.
 */
struct devmig_rx_tail {
	uint16_t cmd, msg_id;
	size_t head_len;
	void *buf;
	size_t cap;
};
int devmig_msg_recv_tail(struct devmig_msg_reader *r, const struct devmig_wire_limits *lim,
			 struct devmig_rx *rx, const struct devmig_rx_tail *tail);

/* Close the descriptors still owned by rx. */
void devmig_rx_close_fds(struct devmig_rx *rx);

/* Socket buffers large enough for a whole max-size message, so a 1 MiB
 * reply is queued in one go instead of in many wake-up rounds. */
#define DEVMIG_SOCK_BUF (4u << 20)
void devmig_msg_tune_socket(int sock);

/* Send iov (and fds) completely: handles partial writes and EINTR, never SIGPIPE. */
int devmig_msg_send(int sock, const struct iovec *iov, int iovcnt, const int *fds,
		    unsigned nfds);
/* The same within timeout_ms for the whole message (-ETIMEDOUT), whatever the
 * socket's mode; timeout_ms < 0: no limit (devmig_msg_send). */
int devmig_msg_send_timed(int sock, const struct iovec *iov, int iovcnt, const int *fds,
			  unsigned nfds, int timeout_ms);

/* Bytes already read and not yet returned (poll() on the socket cannot see them). */
bool devmig_msg_reader_buffered(const struct devmig_msg_reader *r);

#endif /* DEVMIG_LIB_MSGIO_H */
