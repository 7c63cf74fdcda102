/* SPDX-License-Identifier: MIT */
/*
 * The plain transport (a socket as it is, or a checkpoint file) and what
 * every transport shares: deadlines.
 *
 * A deadline bounds one operation (a frame sent, one wait for input), not
 * each system call: a peer that takes a byte now and then cannot stretch
 * it, as SO_SNDTIMEO would (it restarts on every partial write).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"

uint64_t transport_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void transport_arm(struct devmig_transport *t, unsigned ms)
{
	if (!ms)
		ms = t->timeout_ms;
	t->deadline_ns = ms ? transport_now_ns() + (uint64_t)ms * 1000000ull : 0;
}

int transport_wait(struct devmig_transport *t, short events)
{
	for (;;) {
		int ms = -1;
		if (t->deadline_ns) {
			uint64_t now = transport_now_ns();
			if (now >= t->deadline_ns)
				return 0;
			ms = (int)((t->deadline_ns - now + 999999) / 1000000);
		}
		struct pollfd pf = { t->fd, events, 0 };
		int k = poll(&pf, 1, ms);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k > 0)
			return 1; /* ready, or an error/hang-up the next call reports */
	}
}

/* Skip n sent bytes in iov. */
static void iov_advance(struct iovec **iov, int *n, size_t k)
{
	while (*n && k >= (*iov)->iov_len) {
		k -= (*iov)->iov_len;
		(*iov)++;
		(*n)--;
	}
	if (*n) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + k;
		(*iov)->iov_len -= k;
	}
}

static int plain_send(struct devmig_transport *t, struct iovec *iov, int n)
{
	while (n) {
		ssize_t k;
		if (t->is_socket) {
			struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
			k = sendmsg(t->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		} else {
			k = writev(t->fd, iov, n);
		}
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (t->is_socket && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				int w = transport_wait(t, POLLOUT);
				if (w < 0)
					return w;
				if (!w)
					return -ETIMEDOUT;
				continue;
			}
			return -errno;
		}
		iov_advance(&iov, &n, (size_t)k);
	}
	return 0;
}

static long plain_recv(struct devmig_transport *t, void *buf, size_t len)
{
	for (;;) {
		/* Read first, wait (until the deadline) only when nothing is there. */
		ssize_t k = t->is_socket ? recv(t->fd, buf, len, MSG_DONTWAIT) : read(t->fd, buf, len);
		if (k >= 0)
			return (long)k;
		if (errno == EINTR)
			continue;
		if (!t->is_socket || (errno != EAGAIN && errno != EWOULDBLOCK))
			return -errno;
		int w = transport_wait(t, POLLIN);
		if (w < 0)
			return w;
		if (!w)
			return -ETIMEDOUT;
	}
}

static void plain_free(struct devmig_transport *t)
{
	free(t);
}

static const struct transport_ops plain_ops = {
	.send = plain_send,
	.recv = plain_recv,
	.free = plain_free,
	.name = "plain",
};

struct devmig_transport *devmig_transport_plain(int fd, unsigned timeout_ms)
{
	struct devmig_transport *t = calloc(1, sizeof(*t));
	struct stat st;

	if (!t)
		return NULL;
	t->ops = &plain_ops;
	t->fd = fd;
	t->is_socket = !fstat(fd, &st) && S_ISSOCK(st.st_mode);
	t->timeout_ms = timeout_ms;
	snprintf(t->desc, sizeof(t->desc), "plain (no encryption, no authentication)");
	return t;
}

/* ---- the pre-shared key file (here: the parser is fuzzed in every build) ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int devmig_tls_parse_psk(const char *text, size_t len, char *identity, size_t idlen,
			 uint8_t *key, size_t *key_len, char *err, size_t errlen)
{
	char line[512];

	/* The first line, without its end. */
	size_t n = 0;
	while (n < len && text[n] != '\n' && text[n] != '\r' && text[n])
		n++;
	if (n >= sizeof(line)) {
		snprintf(err, errlen, "the key line is longer than %zu bytes", sizeof(line) - 1);
		return -1;
	}
	memcpy(line, text, n);
	line[n] = '\0';
	char *hex = strrchr(line, ':');
	if (hex) {
		*hex++ = '\0';
		if (!line[0] || strlen(line) >= idlen) {
			snprintf(err, errlen, "the identity before ':' must be 1 to %zu characters",
				 idlen - 1);
			return -1;
		}
		snprintf(identity, idlen, "%s", line);
	} else {
		hex = line;
		snprintf(identity, idlen, "devmig");
	}
	size_t hl = strlen(hex);
	if (hl % 2 || hl / 2 < DEVMIG_TLS_PSK_MIN || hl / 2 > DEVMIG_TLS_PSK_MAX) {
		snprintf(err, errlen, "the key must be %u to %u bytes in hex (e.g. 'devmig:' and "
				      "64 hex digits)", DEVMIG_TLS_PSK_MIN, DEVMIG_TLS_PSK_MAX);
		explicit_bzero(line, sizeof(line));
		return -1;
	}
	for (size_t i = 0; i < hl / 2; i++) {
		int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
		if (a < 0 || b < 0) {
			snprintf(err, errlen, "the key is not hex");
			explicit_bzero(line, sizeof(line));
			return -1;
		}
		key[i] = (uint8_t)(a << 4 | b);
	}
	*key_len = hl / 2;
	explicit_bzero(line, sizeof(line));
	return 0;
}

int transport_sendv(struct devmig_transport *t, struct iovec *iov, int n)
{
	if (t->broken)
		return -EPIPE;
	transport_arm(t, 0);
	int rc = t->ops->send(t, iov, n);
	if (rc)
		t->broken = true; /* part of a frame may have gone: nothing can follow */
	return rc;
}

int transport_sendv_brief(struct devmig_transport *t, struct iovec *iov, int n, unsigned ms)
{
	if (t->broken)
		return -EPIPE;
	if (t->timeout_ms && t->timeout_ms < ms)
		ms = t->timeout_ms;
	transport_arm(t, ms);
	int rc = t->ops->send(t, iov, n);
	if (rc)
		t->broken = true;
	return rc;
}

long transport_recv(struct devmig_transport *t, void *buf, size_t len)
{
	transport_arm(t, 0);
	return t->ops->recv(t, buf, len);
}

int devmig_transport_send(struct devmig_transport *t, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };
	return transport_sendv(t, &iov, 1);
}

long devmig_transport_recv(struct devmig_transport *t, void *buf, size_t len)
{
	return transport_recv(t, buf, len);
}

const char *devmig_transport_peer(const struct devmig_transport *t)
{
	return t->peer;
}

const char *devmig_transport_desc(const struct devmig_transport *t)
{
	return t->desc;
}

void devmig_transport_free(struct devmig_transport *t)
{
	if (t)
		t->ops->free(t);
}
