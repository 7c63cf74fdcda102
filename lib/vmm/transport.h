/* SPDX-License-Identifier: MIT */
/*
 * Inside a transport: the operations the channel code calls, each bounded
 * by the transport's deadline (see devmig/transport.h).
 */
#ifndef DEVMIG_LIB_TRANSPORT_H
#define DEVMIG_LIB_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devmig/transport.h"

struct transport_ops {
	/* All of iov (changed on the way), within the deadline: 0 or -errno. */
	int (*send)(struct devmig_transport *t, struct iovec *iov, int n);
	/* Some bytes (> 0), 0 at the end, or -errno (-ETIMEDOUT). */
	long (*recv)(struct devmig_transport *t, void *buf, size_t len);
	void (*free)(struct devmig_transport *t);
	const char *name;
};

struct devmig_transport {
	const struct transport_ops *ops;
	int fd;
	bool is_socket;
	unsigned timeout_ms;   /* of each operation; 0: none */
	uint64_t deadline_ns;  /* of the operation in progress; 0: none */
	bool broken;           /* a send failed half-way: the stream is lost */
	char peer[256];
	char desc[96];
};

/* Start an operation: its deadline is now + timeout_ms (or ms when not 0). */
void transport_arm(struct devmig_transport *t, unsigned ms);
/* Wait for events on t->fd until the deadline: 1 ready, 0 timed out, -errno. */
int transport_wait(struct devmig_transport *t, short events);

/* The channel's calls: a whole frame, some input. Failures mark t broken. */
int transport_sendv(struct devmig_transport *t, struct iovec *iov, int n);
long transport_recv(struct devmig_transport *t, void *buf, size_t len);
/* A short last send (an ABORT) that must not wait long: ms at most. */
int transport_sendv_brief(struct devmig_transport *t, struct iovec *iov, int n, unsigned ms);

uint64_t transport_now_ns(void);

/*
 * A pre-shared key file's text: its first line, "IDENTITY:HEX" or "HEX"
 * (identity "devmig"), 16 to 64 bytes of key. 0, or -1 with err.
 */
int devmig_tls_parse_psk(const char *text, size_t len, char *identity, size_t idlen,
			 uint8_t *key, size_t *key_len, char *err, size_t errlen);
#define DEVMIG_TLS_PSK_MIN 16u
#define DEVMIG_TLS_PSK_MAX 64u

#endif /* DEVMIG_LIB_TRANSPORT_H */
