/* SPDX-License-Identifier: MIT */
/*
 * devmig: what carries a two-host migration's channel between the engine's
 * halves (devmig_migrate_over / devmig_receive_over): a connected stream
 * socket as it is, or TLS 1.3 over it; and the socket itself, from an
 * address (devmig_endpoint_*: what `devmig receive --listen` and `devmig
 * migrate --to` do, for a VMM that carries the channel itself).
 *
 * TLS (GnuTLS) authenticates both sides and protects the integrity of every
 * byte: with a pre-shared key (the same key file on both hosts), or with
 * X.509 certificates signed by a CA both trust (for fleets: each host has
 * its certificate, the client checks the server's against the name it
 * connects to, the server requires one from the client). Without either the
 * channel is plain, which is only for a trusted network (--insecure).
 *
 * Every operation on a transport has a deadline: a send of one frame, one
 * wait for input, the handshake. A peer that stops moving shows as
 * -ETIMEDOUT within that time, never as a hang; after any failure the
 * transport refuses further sends at once (-EPIPE).
 */
#ifndef DEVMIG_TRANSPORT_H
#define DEVMIG_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmig/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

struct devmig_transport;

/* The fd as it is (a socket, or a file for checkpoints). timeout_ms: each
 * operation's deadline (0: none). The fd stays the caller's. */
struct devmig_transport *devmig_transport_plain(int fd, unsigned timeout_ms);

struct devmig_tls_config {
	/* Pre-shared key: a file holding "IDENTITY:HEXKEY" (psktool's format)
	 * or only HEXKEY (identity "devmig"); at least 16 bytes of key; the file
	 * must not be readable by group or others. */
	const char *psk_file;
	/* X.509, PEM files: our certificate, its private key (not readable by
	 * group or others), and the CA certificates the peer's must chain to. */
	const char *cert_file, *key_file, *ca_file;
	/* The name the peer's certificate must carry (DNS or IP SAN, or CN).
	 * Client: NULL checks the server against the host it connects to
	 * (devmig_tls_set_host); server: NULL accepts any certificate the CA
	 * signed. */
	const char *peer_name;
	unsigned handshake_timeout_ms; /* 0: 10 s */
};

/* Loaded once, used for every connection (a receiver's many attempts). */
struct devmig_tls_creds;
struct devmig_tls_creds *devmig_tls_creds_load(const struct devmig_tls_config *cfg, bool server,
					       char *err, size_t errlen);
void devmig_tls_creds_free(struct devmig_tls_creds *c);
/* Client with a certificate and no peer_name: the host connected to. */
void devmig_tls_set_host(struct devmig_tls_creds *c, const char *host);

/*
 * TLS 1.3 over the connected fd: handshake (within the handshake timeout),
 * the peer authenticated. NULL with the reason in err (a wrong key, an
 * unknown certificate, a peer that said nothing). The fd stays the caller's.
 */
struct devmig_transport *devmig_transport_tls(int fd, struct devmig_tls_creds *creds,
					      unsigned timeout_ms, char *err, size_t errlen);

/* Who is at the other end: "psk identity NAME", a certificate's subject, or "". */
const char *devmig_transport_peer(const struct devmig_transport *t);
/* "TLS1.3 ..." or "plain". */
const char *devmig_transport_desc(const struct devmig_transport *t);

/* Close TLS politely (bounded) and free. The fd is not closed. */
void devmig_transport_free(struct devmig_transport *t);

/* Whole-buffer I/O with the transport's deadline (tools, benchmarks). */
int devmig_transport_send(struct devmig_transport *t, const void *buf, size_t len);
/* Some bytes (> 0), 0 at the end, or -errno. */
long devmig_transport_recv(struct devmig_transport *t, void *buf, size_t len);

/* ---- where the channel goes: its address and sockets ---- */

/*
 * Where a destination listens and a source connects: a unix socket or a
 * TCP host and port. What `devmig receive --listen` and `devmig migrate
 * --to` take, for a VMM that carries the channel itself.
 */
struct devmig_endpoint {
	bool is_unix;
	char path[108];  /* unix: the socket's path */
	char host[256];  /* TCP: a name or an address, IPv6 without brackets */
	char port[32];   /* TCP: a number or a service name */
	/* Set by devmig_endpoint_listen on a unix path: which socket file is
	 * ours, the one devmig_endpoint_unlisten may remove. */
	uint64_t listen_file[3];
};

/*
 * "tcp://HOST:PORT", "HOST:PORT", "[IPV6]:PORT", "unix:PATH" or
 * "unix://PATH". A listener names its address too: every address is
 * 0.0.0.0:PORT or [::]:PORT, said out loud. 0, or -EINVAL with the reason
 * in err (e is then cleared).
 */
int devmig_endpoint_parse(const char *s, bool listen, struct devmig_endpoint *e, char *err,
			  size_t errlen);

/*
 * A connected stream socket (TCP: TCP_NODELAY, and keepalive so that a
 * vanished host is noticed in about a minute), connect() bounded by
 * timeout_ms for each address tried; or -errno with the reason in err.
 */
int devmig_endpoint_connect(const struct devmig_endpoint *e, int timeout_ms, char *err,
			    size_t errlen);

/*
 * A listening socket, or -errno with the reason in err. shown: the address
 * bound ("192.0.2.1:7000", "[::]:40123" for port 0, "unix:PATH"). TCP on
 * every address takes IPv4 too when the host has IPv6. unix: mode 0600
 * before anyone can connect; the path may hold only a stale socket (one
 * nobody answers on: replaced), anything else there is refused.
 */
int devmig_endpoint_listen(struct devmig_endpoint *e, char *shown, size_t shownlen, char *err,
			   size_t errlen);

/*
 * The next connection on lfd (from devmig_endpoint_listen), tuned like a
 * connected one; peer: who it is ("192.0.2.1:4711", "[::1]:7000", "a local
 * process (uid 1000)"). On a unix endpoint a peer running as another user
 * is closed and refused with -EACCES unless allow_other_uids. -EINTR or
 * -ECONNABORTED: nothing accepted, try again; any other -errno: lfd failed.
 */
int devmig_endpoint_accept(const struct devmig_endpoint *e, int lfd, bool allow_other_uids,
			   char *peer, size_t peerlen);

/* Close lfd; on a unix endpoint remove its socket file if it is still ours. */
void devmig_endpoint_unlisten(const struct devmig_endpoint *e, int lfd);

/* The engine's two halves over a transport (devmig_migrate_to_fd and
 * devmig_receive_from_fd are these over devmig_transport_plain). */
int devmig_migrate_over(const struct devmig_engine_config *cfg,
			struct devmig_client *const *src, unsigned n,
			struct devmig_guest_mem *src_mem, struct devmig_transport *t,
			struct devmig_migration_report *report);
/*
 * Returns -ECONNABORTED when the connection ended, or sent something else,
 * before a migration began (no valid HELLO: no destination device was
 * touched): a receiver may wait for the next connection.
 */
int devmig_receive_over(const struct devmig_engine_config *cfg, struct devmig_transport *t,
			struct devmig_client *const *dst, unsigned n,
			struct devmig_guest_mem *dst_mem, struct devmig_migration_report *report);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_TRANSPORT_H */
