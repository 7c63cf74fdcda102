/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.3 (GnuTLS) as a transport: a pre-shared key, or X.509 certificates
 * on both sides. Only TLS 1.3; with a PSK only the (EC)DHE key exchanges, so
 * a key that leaks later does not open recorded migrations. No session
 * tickets (nothing to resume), no 0-RTT.
 *
 * GnuTLS reads and writes the socket through our push/pull functions, which
 * never block past the transport's deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport.h"

#define DEFAULT_HANDSHAKE_MS 10000u
#define BYE_MS 1000u
#define RECORD 16384u /* TLS's largest record: frames are gathered into records */
#define PSK_MAX DEVMIG_TLS_PSK_MAX

/*
 * AES-GCM first: the CPU does it (AES-NI), ChaCha20 is software here, and a
 * PSK's SHA-256 binder rules out the SHA-384 suite. Forward secrecy with a
 * PSK: psk_dhe_ke only.
 */
#define PRIO_CIPHERS "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"
#define PRIO_PSK "NORMAL:-VERS-ALL:+VERS-TLS1.3:" PRIO_CIPHERS ":-KX-ALL:+ECDHE-PSK:+DHE-PSK"
#define PRIO_X509 "NORMAL:-VERS-ALL:+VERS-TLS1.3:" PRIO_CIPHERS

struct devmig_tls_creds {
	bool server;
	bool psk;
	gnutls_psk_server_credentials_t psk_srv;
	gnutls_psk_client_credentials_t psk_cli;
	gnutls_certificate_credentials_t x509;
	char identity[128];
	uint8_t key[PSK_MAX];
	size_t key_len;
	char peer_name[256];
	unsigned handshake_ms;
};

struct tls_transport {
	struct devmig_transport t;
	gnutls_session_t s;
	bool timed_out;      /* the last push/pull hit the deadline */
	uint8_t stage[RECORD];
};

static struct tls_transport *to_tls(struct devmig_transport *t)
{
	return (struct tls_transport *)(void *)t;
}

/* ---- credentials ---- */

/* A secret must be ours alone: refuse a file group or others can read. */
static int private_file(const char *path, const char *what, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st)) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s is not a regular file", what, path);
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s %s can be read by others (mode %03o): chmod 600 it",
			 what, path, (unsigned)(st.st_mode & 0777));
		return -1;
	}
	return 0;
}

static int load_psk(struct devmig_tls_creds *c, const char *path, char *err, size_t errlen)
{
	char text[512], why[200];

	if (private_file(path, "key file", err, errlen))
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		return -1;
	}
	ssize_t n = read(fd, text, sizeof(text));
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		return -1;
	}
	int rc = devmig_tls_parse_psk(text, (size_t)n, c->identity, sizeof(c->identity), c->key,
				      &c->key_len, why, sizeof(why));
	explicit_bzero(text, sizeof(text));
	if (rc)
		snprintf(err, errlen, "key file %s: %s", path, why);
	return rc;
}

/* Server: the key for the identity the client names (only ours exists). */
static int psk_lookup(gnutls_session_t s, const char *username, gnutls_datum_t *key)
{
	struct devmig_tls_creds *c = gnutls_session_get_ptr(s);

	if (!c || strcmp(username, c->identity))
		return -1;
	key->data = gnutls_malloc(c->key_len);
	if (!key->data)
		return -1;
	memcpy(key->data, c->key, c->key_len);
	key->size = (unsigned)c->key_len;
	return 0;
}

void devmig_tls_creds_free(struct devmig_tls_creds *c)
{
	if (!c)
		return;
	if (c->psk_srv)
		gnutls_psk_free_server_credentials(c->psk_srv);
	if (c->psk_cli)
		gnutls_psk_free_client_credentials(c->psk_cli);
	if (c->x509)
		gnutls_certificate_free_credentials(c->x509);
	explicit_bzero(c->key, sizeof(c->key));
	free(c);
}

struct devmig_tls_creds *devmig_tls_creds_load(const struct devmig_tls_config *cfg, bool server,
					       char *err, size_t errlen)
{
	bool psk = cfg->psk_file != NULL;
	bool x509 = cfg->cert_file || cfg->key_file || cfg->ca_file;

	if (psk == x509) {
		snprintf(err, errlen, psk ? "give a pre-shared key or certificates, not both"
					  : "no pre-shared key and no certificates given");
		return NULL;
	}
	if (x509 && (!cfg->cert_file || !cfg->key_file || !cfg->ca_file)) {
		snprintf(err, errlen, "certificates need all three: --cert, --key and --ca");
		return NULL;
	}
	struct devmig_tls_creds *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->server = server;
	c->psk = psk;
	c->handshake_ms = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
	if (cfg->peer_name)
		snprintf(c->peer_name, sizeof(c->peer_name), "%s", cfg->peer_name);

	int rc;
	if (psk) {
		if (load_psk(c, cfg->psk_file, err, errlen))
			goto fail;
		if (server) {
			rc = gnutls_psk_allocate_server_credentials(&c->psk_srv);
			if (!rc)
				gnutls_psk_set_server_credentials_function(c->psk_srv, psk_lookup);
		} else {
			gnutls_datum_t k = { c->key, (unsigned)c->key_len };
			rc = gnutls_psk_allocate_client_credentials(&c->psk_cli);
			if (!rc)
				rc = gnutls_psk_set_client_credentials(c->psk_cli, c->identity, &k,
								       GNUTLS_PSK_KEY_RAW);
		}
		if (rc) {
			snprintf(err, errlen, "pre-shared key: %s", gnutls_strerror(rc));
			goto fail;
		}
		return c;
	}

	if (private_file(cfg->key_file, "private key", err, errlen))
		goto fail;
	rc = gnutls_certificate_allocate_credentials(&c->x509);
	if (rc) {
		snprintf(err, errlen, "certificates: %s", gnutls_strerror(rc));
		goto fail;
	}
	rc = gnutls_certificate_set_x509_key_file(c->x509, cfg->cert_file, cfg->key_file,
						  GNUTLS_X509_FMT_PEM);
	if (rc < 0) {
		snprintf(err, errlen, "certificate %s with key %s: %s", cfg->cert_file,
			 cfg->key_file, gnutls_strerror(rc));
		goto fail;
	}
	rc = gnutls_certificate_set_x509_trust_file(c->x509, cfg->ca_file, GNUTLS_X509_FMT_PEM);
	if (rc <= 0) {
		snprintf(err, errlen, "CA file %s: %s", cfg->ca_file,
			 rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
		goto fail;
	}
	return c;
fail:
	devmig_tls_creds_free(c);
	return NULL;
}

void devmig_tls_set_host(struct devmig_tls_creds *c, const char *host)
{
	if (c && !c->server && !c->peer_name[0] && host)
		snprintf(c->peer_name, sizeof(c->peer_name), "%s", host);
}

/* ---- the socket under GnuTLS, with our deadline ---- */

static ssize_t tls_push(gnutls_transport_ptr_t p, const giovec_t *iov, int n)
{
	struct tls_transport *tt = p;
	struct msghdr mh = { .msg_iov = (struct iovec *)(void *)iov, .msg_iovlen = (size_t)n };

	for (;;) {
		ssize_t k = sendmsg(tt->t.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k >= 0)
			return k;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			gnutls_transport_set_errno(tt->s, errno);
			return -1;
		}
		int w = transport_wait(&tt->t, POLLOUT);
		if (w <= 0) {
			tt->timed_out = w == 0;
			gnutls_transport_set_errno(tt->s, w ? -w : ETIMEDOUT);
			return -1;
		}
	}
}

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct tls_transport *tt = p;

	for (;;) {
		/* Read first: under load the data is usually there already. */
		ssize_t k = recv(tt->t.fd, buf, len, MSG_DONTWAIT);
		if (k >= 0)
			return k;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			gnutls_transport_set_errno(tt->s, errno);
			return -1;
		}
		int w = transport_wait(&tt->t, POLLIN);
		if (w <= 0) {
			tt->timed_out = w == 0;
			gnutls_transport_set_errno(tt->s, w ? -w : ETIMEDOUT);
			return -1;
		}
	}
}

static int tls_pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	struct tls_transport *tt = p;
	struct pollfd pf = { tt->t.fd, POLLIN, 0 };
	int k = poll(&pf, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
	return k < 0 ? -1 : k;
}

/* A GnuTLS error as -errno: timeouts as -ETIMEDOUT, the rest as a reset. */
static int tls_errno(struct tls_transport *tt, int rc)
{
	if (tt->timed_out)
		return -ETIMEDOUT;
	if (rc == GNUTLS_E_PREMATURE_TERMINATION)
		return -ECONNRESET;
	if (rc == GNUTLS_E_PUSH_ERROR)
		return -EPIPE;
	if (rc == GNUTLS_E_MEMORY_ERROR)
		return -ENOMEM;
	return -ECONNRESET;
}

static int tls_send_all(struct tls_transport *tt, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t k = gnutls_record_send(tt->s, p, len);
		if (k == GNUTLS_E_INTERRUPTED || k == GNUTLS_E_AGAIN)
			continue;
		if (k < 0)
			return tls_errno(tt, (int)k);
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

/* Gathered into whole records: fewer, fuller records than one per iov entry. */
static int tls_send(struct devmig_transport *t, struct iovec *iov, int n)
{
	struct tls_transport *tt = to_tls(t);
	size_t fill = 0;
	int rc = 0;

	tt->timed_out = false;
	for (int i = 0; i < n && !rc; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;
		while (left && !rc) {
			if (!fill && left >= RECORD) {
				/* Whole records straight from where the data lies. */
				size_t k = left - left % RECORD;
				rc = tls_send_all(tt, p, k);
				p += k;
				left -= k;
				continue;
			}
			size_t take = RECORD - fill < left ? RECORD - fill : left;
			memcpy(tt->stage + fill, p, take);
			fill += take;
			p += take;
			left -= take;
			if (fill == RECORD) {
				rc = tls_send_all(tt, tt->stage, fill);
				fill = 0;
			}
		}
	}
	if (!rc && fill)
		rc = tls_send_all(tt, tt->stage, fill);
	return rc;
}

static long tls_recv(struct devmig_transport *t, void *buf, size_t len)
{
	struct tls_transport *tt = to_tls(t);

	tt->timed_out = false;
	for (;;) {
		ssize_t k = gnutls_record_recv(tt->s, buf, len);
		if (k >= 0)
			return (long)k;
		if (k == GNUTLS_E_INTERRUPTED || k == GNUTLS_E_AGAIN)
			continue;
		if (k == GNUTLS_E_PREMATURE_TERMINATION && !tt->timed_out)
			return 0; /* the peer closed without saying goodbye: the end all the same */
		return tls_errno(tt, (int)k);
	}
}

static void tls_free(struct devmig_transport *t)
{
	struct tls_transport *tt = to_tls(t);

	if (tt->s) {
		if (!t->broken) {
			transport_arm(t, BYE_MS);
			gnutls_bye(tt->s, GNUTLS_SHUT_WR);
		}
		gnutls_deinit(tt->s);
	}
	free(tt);
}

static const struct transport_ops tls_ops = {
	.send = tls_send,
	.recv = tls_recv,
	.free = tls_free,
	.name = "tls",
};

/* The peer's certificate subject, for the logs. */
static void describe_peer(struct tls_transport *tt, struct devmig_tls_creds *c)
{
	if (c->psk) {
		const char *id = c->server ? gnutls_psk_server_get_username(tt->s) : c->identity;
		snprintf(tt->t.peer, sizeof(tt->t.peer), "psk identity %s", id ? id : "?");
		return;
	}
	unsigned n = 0;
	const gnutls_datum_t *chain = gnutls_certificate_get_peers(tt->s, &n);
	gnutls_x509_crt_t crt;
	if (!chain || !n || gnutls_x509_crt_init(&crt))
		return;
	gnutls_datum_t dn = { NULL, 0 };
	if (!gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) &&
	    !gnutls_x509_crt_get_dn3(crt, &dn, 0)) {
		snprintf(tt->t.peer, sizeof(tt->t.peer), "%.*s", (int)dn.size, (const char *)dn.data);
		gnutls_free(dn.data);
	}
	gnutls_x509_crt_deinit(crt);
}

struct devmig_transport *devmig_transport_tls(int fd, struct devmig_tls_creds *c,
					      unsigned timeout_ms, char *err, size_t errlen)
{
	struct tls_transport *tt = calloc(1, sizeof(*tt));
	int rc;

	if (!tt) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	tt->t.ops = &tls_ops;
	tt->t.fd = fd;
	tt->t.is_socket = true;
	tt->t.timeout_ms = timeout_ms;
	rc = gnutls_init(&tt->s, (c->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NO_TICKETS |
					 GNUTLS_NO_SIGNAL);
	if (rc) {
		snprintf(err, errlen, "TLS: %s", gnutls_strerror(rc));
		tt->s = NULL;
		goto fail;
	}
	gnutls_session_set_ptr(tt->s, c);
	rc = gnutls_priority_set_direct(tt->s, c->psk ? PRIO_PSK : PRIO_X509, NULL);
	if (!rc)
		rc = c->psk ? (c->server ? gnutls_credentials_set(tt->s, GNUTLS_CRD_PSK, c->psk_srv)
					 : gnutls_credentials_set(tt->s, GNUTLS_CRD_PSK, c->psk_cli))
			    : gnutls_credentials_set(tt->s, GNUTLS_CRD_CERTIFICATE, c->x509);
	if (rc) {
		snprintf(err, errlen, "TLS: %s", gnutls_strerror(rc));
		goto fail;
	}
	if (!c->psk) {
		if (c->server)
			gnutls_certificate_server_set_request(tt->s, GNUTLS_CERT_REQUIRE);
		/* Checked during the handshake: the chain to our CA, and the name. */
		gnutls_session_set_verify_cert(tt->s, c->peer_name[0] ? c->peer_name : NULL, 0);
		if (!c->server && c->peer_name[0] && !strchr(c->peer_name, ':'))
			gnutls_server_name_set(tt->s, GNUTLS_NAME_DNS, c->peer_name,
					       strlen(c->peer_name));
	}
	gnutls_transport_set_ptr(tt->s, tt);
	gnutls_transport_set_vec_push_function(tt->s, tls_push);
	gnutls_transport_set_pull_function(tt->s, tls_pull);
	gnutls_transport_set_pull_timeout_function(tt->s, tls_pull_timeout);

	transport_arm(&tt->t, c->handshake_ms);
	do
		rc = gnutls_handshake(tt->s);
	while (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED);
	if (rc) {
		if (tt->timed_out) {
			snprintf(err, errlen, "no TLS handshake within %u ms", c->handshake_ms);
		} else if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
			gnutls_datum_t why = { NULL, 0 };
			unsigned st = gnutls_session_get_verify_cert_status(tt->s);
			gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &why, 0);
			snprintf(err, errlen, "the peer's certificate is refused: %s",
				 why.data ? (const char *)why.data : "not trusted");
			gnutls_free(why.data);
		} else if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED) {
			const char *alert = gnutls_alert_get_name(gnutls_alert_get(tt->s));
			snprintf(err, errlen, "the peer refused the TLS handshake (%s)%s",
				 alert ? alert : "alert",
				 c->psk ? ": not the same pre-shared key?" : "");
		} else if (rc == GNUTLS_E_PREMATURE_TERMINATION || rc == GNUTLS_E_PULL_ERROR ||
			   rc == GNUTLS_E_PUSH_ERROR) {
			snprintf(err, errlen, "the peer closed the connection during the TLS "
					      "handshake (a wrong key or certificate on its side?)");
		} else {
			snprintf(err, errlen, "TLS handshake failed: %s%s", gnutls_strerror(rc),
				 c->psk ? " (not the same pre-shared key?)" : "");
		}
		/* Tell the peer why (briefly), so it fails now rather than at its deadline. */
		if (!tt->timed_out && rc != GNUTLS_E_FATAL_ALERT_RECEIVED) {
			transport_arm(&tt->t, BYE_MS);
			gnutls_alert_send_appropriate(tt->s, rc);
		}
		tt->t.broken = true; /* no goodbye on a failed handshake */
		goto fail;
	}
	describe_peer(tt, c);
	char *d = gnutls_session_get_desc(tt->s);
	const char *group = gnutls_group_get_name(gnutls_group_get(tt->s));
	snprintf(tt->t.desc, sizeof(tt->t.desc), "%s%s%s", d ? d : "TLS1.3",
		 c->psk ? " with " : "", c->psk ? (group ? group : "no key exchange") : "");
	gnutls_free(d);
	return &tt->t;
fail:
	tls_free(&tt->t);
	return NULL;
}
