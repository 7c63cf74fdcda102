/* SPDX-License-Identifier: MIT */
/*
 * The engine's data path: see datamove.h.
 *
 * Splicing: the data fds are non-blocking, and splice(2) then does not
 * block on the other end either, so EAGAIN may mean either side: poll
 * says which. A source pipe that is empty is either waiting for its
 * server's pump or at the PRE_COPY temporary end; the client's data_wait
 * tells them apart (devmig_client_data_wait).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"
#include "crc32c.h"
#include "data_io.h"
#include "datamove.h"
#include "engine_internal.h"
#include "le.h"
#include "transport.h"

/* Bytes moved per splice or read: a pipe's worth. */
#define MOVE_CHUNK (1u << 20)

bool dm_src_has_session(struct devmig_client *c)
{
	struct devmig_data_session s;
	return devmig_client_data_session(c, &s) == 0 && s.save;
}

static int errf(int rc, char *why, size_t wl, const char *fmt, const char *detail)
{
	snprintf(why, wl, fmt, detail);
	return rc < 0 ? rc : -EIO;
}

/* The source read 0: its end, or in PRE_COPY from a devmig server (whose
 * temporary end is an empty pipe, not a closed one) a save that failed. */
static int src_eof(const struct dm_src *src, bool checked, struct dm_result *res, char *why,
		   size_t wl)
{
	if (src->precopy && checked) {
		char reason[DEVMIG_MIG_STATUS_REASON] = "";
		uint64_t b;
		int le;
		devmig_client_mig_status(src->c, &b, &le, reason, sizeof(reason));
		return errf(-EIO, why, wl, "its stream ended in PRE_COPY: %s",
			    reason[0] ? reason : "saving failed");
	}
	res->ended = true;
	return 0;
}

/* The source had nothing: 0 when data comes, 1 at the temporary end (or
 * the round's end: what was pending when it began has moved). */
static int src_wait(const struct dm_src *src, struct dm_result *res, char *why, size_t wl)
{
	if (src->precopy && src->round && res->bytes >= src->round)
		return 1;
	int rc = devmig_client_data_wait(src->c, src->timeout_ms);
	if (rc == -ENOMSG)
		return 1;
	res->src_silent = rc == -ETIMEDOUT;
	if (rc)
		return errf(rc, why, wl, "waiting for its data: %s", strerror(-rc));
	return 0;
}

/* All of buf into dst's load session (a kernel driver's file, or a pipe). */
static int write_client(struct devmig_client *dst, const uint8_t *p, size_t len, int timeout_ms,
			char *why, size_t wl)
{
	while (len) {
		ssize_t n = devmig_client_data_write(dst, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		int rc = n == -EAGAIN ? devmig_client_data_wait(dst, timeout_ms) : (int)(n ? n : -EIO);
		if (rc)
			return errf(rc, why, wl, "the destination took no more data: %s", strerror(-rc));
	}
	return 0;
}

/* ---- source to a local destination ---- */

static int local_splice(const struct dm_src *src, int sfd, int dfd, struct dm_result *res,
			char *why, size_t wl)
{
	for (;;) {
		if (src->limit && res->bytes >= src->limit)
			return 0;
		ssize_t n = splice(sfd, NULL, dfd, NULL, MOVE_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			res->bytes += (uint64_t)n;
			continue;
		}
		if (n == 0)
			return src_eof(src, true, res, why, wl);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return errf(-errno, why, wl, "moving its data: %s", strerror(errno));
		struct pollfd p[2] = { { sfd, POLLIN, 0 }, { dfd, POLLOUT, 0 } };
		poll(p, 2, 0);
		if (!(p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			int rc = data_fd_wait(dfd, POLLOUT, src->timeout_ms);
			res->dst_silent = rc == -ETIMEDOUT;
			if (rc)
				return errf(rc, why, wl, "the destination took no more data: %s",
					    strerror(-rc));
			continue;
		}
		if (p[0].revents & (POLLIN | POLLHUP))
			continue; /* data (or the end) came meanwhile */
		int rc = src_wait(src, res, why, wl);
		if (rc < 0)
			return rc;
		if (rc) {
			res->ended = true;
			return 0;
		}
	}
}

/*
 * Where splice does not apply: the source's session read into one bounded
 * buffer, each piece handed to sink (0 or -errno, why filled), until the
 * end, the temporary end, or src->limit.
 */
static int copy_through(const struct dm_src *src, bool checked,
			int (*sink)(void *o, const uint8_t *p, size_t n, struct dm_result *res,
				    char *why, size_t wl),
			void *o, struct dm_result *res, char *why, size_t wl)
{
	uint8_t *buf = malloc(MOVE_CHUNK);
	int rc = 0;

	if (!buf)
		return errf(-ENOMEM, why, wl, "%s", "out of memory");
	for (;;) {
		if (src->limit && res->bytes >= src->limit)
			break;
		ssize_t n = devmig_client_data_read(src->c, buf, MOVE_CHUNK);
		if (n > 0) {
			rc = sink(o, buf, (size_t)n, res, why, wl);
			if (rc)
				break;
			res->bytes += (uint64_t)n;
			continue;
		}
		if (n == 0) {
			rc = src_eof(src, checked, res, why, wl);
			break;
		}
		if (n == -ENOMSG) {
			res->ended = true;
			break;
		}
		if (n != -EAGAIN) {
			rc = errf((int)n, why, wl, "reading its data: %s", strerror((int)-n));
			break;
		}
		rc = src_wait(src, res, why, wl);
		if (rc) {
			res->ended = rc > 0;
			rc = rc > 0 ? 0 : rc;
			break;
		}
	}
	free(buf);
	return rc;
}

struct client_sink {
	struct devmig_client *dst;
	int timeout_ms;
};

static int to_client(void *o, const uint8_t *p, size_t n, struct dm_result *res, char *why,
		     size_t wl)
{
	struct client_sink *k = o;
	int rc = write_client(k->dst, p, n, k->timeout_ms, why, wl);
	res->dst_silent = rc == -ETIMEDOUT;
	return rc;
}

static int local_copy(const struct dm_src *src, bool checked, struct devmig_client *dst,
		      struct dm_result *res, char *why, size_t wl)
{
	struct client_sink k = { dst, src->timeout_ms };
	return copy_through(src, checked, to_client, &k, res, why, wl);
}

int dm_move_local(const struct dm_src *src, struct devmig_client *dst, struct dm_result *res,
		  char *why, size_t wl)
{
	struct devmig_data_session ss, ds;
	struct data_sigpipe g;

	memset(res, 0, sizeof(*res));
	int rc = devmig_client_data_session(src->c, &ss);
	if (rc || !ss.save)
		return errf(rc ? rc : -EINVAL, why, wl, "%s", "no save session on a descriptor");
	rc = devmig_client_data_session(dst, &ds);
	if (rc || ds.save)
		return errf(rc ? rc : -EINVAL, why, wl, "%s",
			    "the destination has no load session on a descriptor");
	/* A destination whose session went has closed its pipe: EPIPE, no signal. */
	data_sigpipe_block(&g);
	if (ss.spliceable && ds.spliceable)
		rc = local_splice(src, ss.fd, ds.fd, res, why, wl);
	else
		rc = local_copy(src, ss.checked, dst, res, why, wl);
	data_sigpipe_unblock(&g, rc == -EPIPE);
	return rc;
}

/* ---- source to the channel ---- */

/*
 * A socket's own O_NONBLOCK, not splice's flag, decides whether splicing to
 * or from it blocks: made non-blocking for the move (the channel's waits
 * have deadlines), as it was after. Returns the flags to restore.
 */
static int nonblock_begin(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	return fl;
}

static void nonblock_end(int fd, int fl)
{
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl);
}

/* len bytes the source pipe holds, spliced onto the channel. */
static int splice_out(int sfd, struct devmig_transport *t, size_t len)
{
	transport_arm(t, 0); /* the channel's deadline, as for any frame sent */
	while (len) {
		ssize_t k = splice(sfd, NULL, t->fd, NULL, len,
				   SPLICE_F_MOVE | SPLICE_F_MORE | SPLICE_F_NONBLOCK);
		if (k > 0) {
			len -= (size_t)k;
			continue;
		}
		if (k == 0)
			return -EIO; /* the pipe held them: cannot happen */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		/* The pipe is non-blocking, which makes the socket's send so too. */
		int w = transport_wait(t, POLLOUT);
		if (w <= 0)
			return w ? w : -ETIMEDOUT;
	}
	return 0;
}

/*
 * A devmig stream from a pipe as DEV_DATA_RAW frames: what the pipe holds,
 * spliced onto a plain socket, or read here and sent through the transport
 * (TLS: its records carry their own integrity).
 */
static int channel_raw(const struct dm_src *src, int sfd, struct devmig_transport *t,
		       uint32_t dev, uint64_t *frames, struct dm_result *res, char *why, size_t wl)
{
	bool spliced = transport_spliceable(t);
	uint8_t *buf = spliced ? NULL : malloc(MOVE_CHUNK);
	if (!spliced && !buf)
		return errf(-ENOMEM, why, wl, "%s", "out of memory");
	int rc = 0;
	for (;;) {
		if (src->limit && res->bytes >= src->limit)
			break;
		int avail = 0;
		if (ioctl(sfd, FIONREAD, &avail) || avail <= 0) {
			struct pollfd p = { sfd, POLLIN, 0 };
			poll(&p, 1, 0);
			if (p.revents & POLLIN)
				continue;
			if (p.revents & POLLHUP) {
				rc = src_eof(src, true, res, why, wl);
				break;
			}
			rc = src_wait(src, res, why, wl);
			if (rc) {
				res->ended = rc > 0;
				rc = rc > 0 ? 0 : rc;
				break;
			}
			continue;
		}
		size_t n = (size_t)avail < MOVE_CHUNK ? (size_t)avail : MOVE_CHUNK;
		uint8_t hdr[DEVMIG_CHAN_HDR], trailer[DEVMIG_CHAN_TRAILER];
		devmig_chan_put_header(hdr, DEVMIG_CHAN_DEV_DATA_RAW, dev, n);
		put32(trailer, devmig_chan_crc(hdr, NULL, 0));
		if (!spliced) {
			/* The pipe holds n bytes and only we read it: one read takes them. */
			ssize_t k = read(sfd, buf, n);
			if (k != (ssize_t)n) {
				rc = errf(k < 0 ? -errno : -EIO, why, wl, "reading its data: %s",
					  k < 0 ? strerror(errno) : "short");
				break;
			}
		}
		struct iovec iov[3] = { { hdr, sizeof(hdr) }, { buf, spliced ? 0 : n },
					{ trailer, sizeof(trailer) } };
		rc = transport_sendv(t, iov, spliced ? 1 : 3);
		if (!rc && spliced) {
			int fl = nonblock_begin(t->fd);
			rc = splice_out(sfd, t, n);
			nonblock_end(t->fd, fl);
			if (rc)
				t->broken = true; /* part of a frame went */
			else
				rc = transport_sendv(t, iov + 2, 1);
		}
		if (rc) {
			rc = errf(rc, why, wl, "the channel to the destination failed: %s",
				  strerror(-rc));
			break;
		}
		(*frames)++;
		res->bytes += n;
	}
	free(buf);
	return rc;
}

struct channel_sink {
	struct devmig_transport *t;
	uint32_t dev;
	uint64_t *frames;
};

static int to_channel(void *o, const uint8_t *p, size_t n, struct dm_result *res, char *why,
		      size_t wl)
{
	struct channel_sink *k = o;
	(void)res;
	int rc = chan_send(k->t, DEVMIG_CHAN_DEV_DATA, k->dev, p, n, NULL, 0);
	if (rc)
		return errf(rc, why, wl, "the channel to the destination failed: %s",
			    strerror(-rc));
	(*k->frames)++;
	return 0;
}

static int channel_copy(const struct dm_src *src, bool checked, struct devmig_transport *t,
			uint32_t dev, uint64_t *frames, struct dm_result *res, char *why, size_t wl)
{
	struct channel_sink k = { t, dev, frames };
	return copy_through(src, checked, to_channel, &k, res, why, wl);
}

int dm_move_to_channel(const struct dm_src *src, struct devmig_transport *t, uint32_t dev,
		       bool raw, uint64_t *frames, struct dm_result *res, char *why, size_t wl)
{
	struct devmig_data_session ss;
	struct data_sigpipe g;

	memset(res, 0, sizeof(*res));
	int rc = devmig_client_data_session(src->c, &ss);
	if (rc || !ss.save)
		return errf(rc ? rc : -EINVAL, why, wl, "%s", "no save session on a descriptor");
	data_sigpipe_block(&g);
	/* Raw frames only for a stream that checks itself: a kernel driver's
	 * (opaque) keeps the frame's CRC over its bytes. */
	if (raw && ss.spliceable && ss.checked)
		rc = channel_raw(src, ss.fd, t, dev, frames, res, why, wl);
	else
		rc = channel_copy(src, ss.checked, t, dev, frames, res, why, wl);
	data_sigpipe_unblock(&g, rc == -EPIPE);
	return rc;
}

/* ---- the channel to a destination ---- */

/* Drop n bytes of the channel: a payload nobody takes. */
static int drop_in(struct devmig_transport *t, uint64_t n)
{
	uint8_t buf[65536];
	while (n) {
		long k = transport_recv(t, buf, n < sizeof(buf) ? (size_t)n : sizeof(buf));
		if (k <= 0)
			return k ? (int)k : -ECONNRESET;
		n -= (uint64_t)k;
	}
	return 0;
}

/* Splice len bytes from the channel into the pipe dfd; *moved: how many
 * left the socket. A failure on the pipe's side is EPIPE (the session went)
 * or a timeout; on the socket's, anything else. */
static int splice_in(struct devmig_transport *t, int dfd, uint64_t len, int timeout_ms,
		     uint64_t *moved)
{
	int sock = t->fd;
	*moved = 0;
	while (*moved < len) {
		uint64_t left = len - *moved;
		ssize_t k = splice(sock, NULL, dfd, NULL, left < MOVE_CHUNK ? (size_t)left : MOVE_CHUNK,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (k > 0) {
			*moved += (uint64_t)k;
			continue;
		}
		if (k == 0)
			return -ECONNRESET; /* the source went in the middle of a frame */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		/* The non-blocking pipe makes the socket's side non-blocking too. */
		struct pollfd p[2] = { { sock, POLLIN, 0 }, { dfd, POLLOUT, 0 } };
		poll(p, 2, 0);
		if (!(p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			if (data_fd_wait(dfd, POLLOUT, timeout_ms))
				return -ETIMEDOUT; /* the destination's side */
		} else {
			transport_arm(t, 0); /* the channel's deadline, as for any read */
			int w = transport_wait(t, POLLIN);
			if (w <= 0)
				return w ? w : -ECONNRESET;
		}
	}
	return 0;
}

int dm_move_from_channel(struct devmig_transport *t, uint64_t len, struct devmig_client *dst,
			 int timeout_ms, int *dst_error, char *why, size_t wl)
{
	struct devmig_data_session ds = { .fd = -1 };
	struct data_sigpipe g;
	int rc = 0;

	*dst_error = 0;
	if (dst && (devmig_client_data_session(dst, &ds) || ds.save)) {
		*dst_error = errf(-EINVAL, why, wl, "%s",
				  "the destination device has no load session on a descriptor");
		dst = NULL;
	}
	data_sigpipe_block(&g);
	if (dst && ds.spliceable && transport_spliceable(t)) {
		uint64_t moved;
		int fl = nonblock_begin(t->fd);
		rc = splice_in(t, ds.fd, len, timeout_ms, &moved);
		nonblock_end(t->fd, fl);
		if (rc == -EPIPE || rc == -ETIMEDOUT) {
			*dst_error = errf(rc, why, wl, "the destination took no more data: %s",
					  strerror(-rc));
			rc = drop_in(t, len - moved);
		}
	} else {
		uint8_t *buf = malloc(MOVE_CHUNK);
		if (!buf)
			rc = -ENOMEM;
		while (!rc && len) {
			long k = transport_recv(t, buf, len < MOVE_CHUNK ? (size_t)len : MOVE_CHUNK);
			if (k <= 0) {
				rc = k ? (int)k : -ECONNRESET;
				break;
			}
			len -= (uint64_t)k;
			if (dst && !*dst_error) {
				*dst_error = write_client(dst, buf, (size_t)k, timeout_ms, why, wl);
				if (*dst_error)
					dst = NULL; /* the rest is dropped */
			}
		}
		free(buf);
	}
	data_sigpipe_unblock(&g, *dst_error == -EPIPE || rc == -EPIPE);
	if (rc)
		snprintf(why, wl, "the channel from the source failed: %s", strerror(-rc));
	return rc;
}
