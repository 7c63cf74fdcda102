/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "msgio.h"

int devmig_msg_reader_init(struct devmig_msg_reader *r, int sock, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->sock = sock;
	r->cap = cap;
	r->buf = malloc(cap);
	return r->buf ? 0 : -ENOMEM;
}

static void close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

void devmig_msg_reader_free(struct devmig_msg_reader *r)
{
	close_fds(r->fds, r->nfds);
	r->nfds = 0;
	free(r->buf);
	r->buf = NULL;
}

void devmig_rx_close_fds(struct devmig_rx *rx)
{
	close_fds(rx->fds, rx->nfds);
	rx->nfds = 0;
}

/* Take the descriptors out of one control message batch. */
static void collect_fds(struct devmig_msg_reader *r, struct msghdr *mh, uint64_t last_pos)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[64];
		if (n > 64)
			n = 64;
		memcpy(fds, CMSG_DATA(c), n * sizeof(int));
		for (unsigned i = 0; i < n; i++) {
			if (r->nfds < DEVMIG_MSGIO_MAX_FDS) {
				r->fds[r->nfds++] = fds[i];
			} else {
				close(fds[i]);
				r->fds_overflow = true;
			}
		}
		r->fds_pos = last_pos;
	}
	if (mh->msg_flags & MSG_CTRUNC)
		r->fds_overflow = true; /* the kernel closed what did not fit */
}

/* Read more bytes into the buffer; returns bytes read, 0 on EOF, -errno. */
static ssize_t fill(struct devmig_msg_reader *r)
{
	if (r->end == r->cap) {
		/* Make room: move the unconsumed bytes to the front. */
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->base += r->start;
		r->end -= r->start;
		r->start = 0;
		if (r->end == r->cap)
			return -ENOBUFS;
	}
	union {
		char buf[CMSG_SPACE(sizeof(int) * DEVMIG_MSGIO_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { r->buf + r->end, r->cap - r->end };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	ssize_t n;
	do {
		n = recvmsg(r->sock, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (mh.msg_controllen)
		collect_fds(r, &mh, r->base + r->end + (n ? (uint64_t)n - 1 : 0));
	r->end += (size_t)n;
	return n;
}

/* Ensure at least want unconsumed bytes; 1 ok, 0 EOF with none, -errno. */
static int want_bytes(struct devmig_msg_reader *r, size_t want)
{
	if (r->start + want > r->cap) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->base += r->start;
		r->end -= r->start;
		r->start = 0;
	}
	while (r->end - r->start < want) {
		ssize_t n = fill(r);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return r->end == r->start ? 0 : -ECONNRESET;
	}
	return 1;
}

/* Discard n bytes of an oversized message body without buffering them. */
static int skip_bytes(struct devmig_msg_reader *r, uint64_t n)
{
	while (n) {
		size_t have = r->end - r->start;
		if (have) {
			size_t k = have < n ? have : (size_t)n;
			r->start += k;
			n -= k;
			continue;
		}
		r->base += r->end;
		r->start = r->end = 0;
		ssize_t got = fill(r);
		if (got < 0)
			return (int)got;
		if (got == 0)
			return -ECONNRESET;
	}
	return 0;
}

/* Receive tail_len bytes into dst: what is buffered first, then straight from the socket. */
static int recv_direct(struct devmig_msg_reader *r, uint8_t *dst, size_t tail_len)
{
	size_t have = r->end - r->start;
	size_t k = have < tail_len ? have : tail_len;

	memcpy(dst, r->buf + r->start, k);
	r->start += k;
	while (k < tail_len) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * DEVMIG_MSGIO_MAX_FDS)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = { dst + k, tail_len - k };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
		};
		ssize_t n = recvmsg(r->sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		/* Bulk data carries no descriptors: any that come are surplus. */
		if (mh.msg_controllen) {
			collect_fds(r, &mh, r->base + r->end + (uint64_t)n - 1);
			r->fds_overflow = true;
		}
		k += (size_t)n;
		r->base += (size_t)n; /* the stream moved on without the buffer */
	}
	return 0;
}

int devmig_msg_recv_tail(struct devmig_msg_reader *r, const struct devmig_wire_limits *lim,
			 struct devmig_rx *rx, const struct devmig_rx_tail *t)
{
	struct devmig_hdr h;

	int rc = want_bytes(r, DEVMIG_HDR_SIZE);
	if (rc <= 0)
		return rc;
	memcpy(&h, r->buf + r->start, sizeof(h));
	size_t head = DEVMIG_HDR_SIZE + t->head_len;
	if (h.cmd != t->cmd || h.msg_id != t->msg_id ||
	    (h.flags & (DEVMIG_HDR_TYPE_MASK | DEVMIG_HDR_ERROR)) != DEVMIG_HDR_TYPE_REPLY ||
	    h.msg_size <= head || h.msg_size - head > t->cap ||
	    devmig_decode_hdr(&h, sizeof(h), lim, &rx->hdr))
		return devmig_msg_recv(r, lim, rx);

	rc = want_bytes(r, head);
	if (rc <= 0)
		return rc ? rc : -ECONNRESET;
	rx->nfds = 0;
	rx->skipped = false;
	rx->hdr_err = DEVMIG_WIRE_OK;
	/* The head stays in the buffer: copy it aside, as the buffer is reused below. */
	static_assert(sizeof(rx->head) >= DEVMIG_HDR_SIZE + 64, "head room");
	if (head > sizeof(rx->head))
		return -EINVAL;
	memcpy(rx->head, r->buf + r->start, head);
	r->start += head;
	rx->msg = rx->head;
	rx->len = head;
	rx->tail_len = h.msg_size - head;
	rc = recv_direct(r, t->buf, rx->tail_len);
	if (rc)
		return rc;
	if (r->nfds || r->fds_overflow) {
		/* Descriptors with a bulk reply cannot be right. */
		close_fds(r->fds, r->nfds);
		r->nfds = 0;
		r->fds_overflow = false;
		rx->skipped = true;
		rx->hdr_err = DEVMIG_WIRE_E_FDS;
	}
	return 1;
}

int devmig_msg_recv(struct devmig_msg_reader *r, const struct devmig_wire_limits *lim,
		    struct devmig_rx *rx)
{
	memset(rx, 0, sizeof(rx->hdr));
	rx->nfds = 0;
	rx->tail_len = 0;
	rx->skipped = false;
	rx->hdr_err = DEVMIG_WIRE_OK;

	int rc = want_bytes(r, DEVMIG_HDR_SIZE);
	if (rc <= 0)
		return rc;
	uint64_t msg_start = r->base + r->start;
	enum devmig_wire_err err = devmig_decode_hdr(r->buf + r->start, DEVMIG_HDR_SIZE, lim, &rx->hdr);
	if (err) {
		/* Only msg_size frames the stream: with a sane one we can skip the
		 * message and answer it; without one we cannot find the next. */
		memcpy(&rx->hdr, r->buf + r->start, sizeof(rx->hdr));
		if (rx->hdr.msg_size < DEVMIG_HDR_SIZE || rx->hdr.msg_size > DEVMIG_MSGIO_MAX_SKIP)
			return -EPROTO;
		rc = skip_bytes(r, rx->hdr.msg_size);
		if (rc)
			return rc;
		rx->skipped = true;
		rx->hdr_err = err;
	} else {
		rc = want_bytes(r, rx->hdr.msg_size);
		if (rc <= 0)
			return rc ? rc : -ECONNRESET;
		rx->msg = r->buf + r->start;
		rx->len = rx->hdr.msg_size;
		r->start += rx->hdr.msg_size;
	}

	/* Descriptors that came with a byte of this message are its own. */
	uint64_t msg_end = msg_start + rx->hdr.msg_size;
	if (r->nfds && r->fds_pos >= msg_start && r->fds_pos < msg_end) {
		memcpy(rx->fds, r->fds, r->nfds * sizeof(int));
		rx->nfds = r->nfds;
		r->nfds = 0;
	}
	if (r->fds_overflow) {
		/* Descriptors were lost: the message cannot be trusted. */
		r->fds_overflow = false;
		devmig_rx_close_fds(rx);
		rx->skipped = true;
		rx->hdr_err = DEVMIG_WIRE_E_FDS;
	}
	return 1;
}

void devmig_msg_tune_socket(int sock)
{
	int sz = DEVMIG_SOCK_BUF;
	/* Best effort: the kernel caps it at net.core.wmem_max/rmem_max. */
	setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

/* Milliseconds left until deadline_ns (CLOCK_MONOTONIC), at least 0. */
static int ms_left(uint64_t deadline_ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
}

int devmig_msg_send_timed(int sock, const struct iovec *iov_in, int iovcnt, const int *fds,
			  unsigned nfds, int timeout_ms)
{
	struct iovec iov[DEVMIG_MSGIO_MAX_IOV];
	union {
		char buf[CMSG_SPACE(sizeof(int) * DEVMIG_MSGIO_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	uint64_t deadline = 0;

	if (iovcnt > DEVMIG_MSGIO_MAX_IOV || nfds > DEVMIG_MSGIO_MAX_FDS)
		return -EINVAL;
	if (timeout_ms >= 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		deadline = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
			   (uint64_t)timeout_ms * 1000000ull;
	}
	memcpy(iov, iov_in, sizeof(*iov) * (size_t)iovcnt);
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	while (mh.msg_iovlen) {
		/* With a deadline, never block in sendmsg: a peer that stops reading
		 * costs at most the deadline for the whole message, not per piece. */
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL | (timeout_ms >= 0 ? MSG_DONTWAIT : 0));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (timeout_ms >= 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				struct pollfd pf = { sock, POLLOUT, 0 };
				int left = ms_left(deadline);
				if (!left)
					return -ETIMEDOUT;
				int k = poll(&pf, 1, left);
				if (k < 0 && errno != EINTR)
					return -errno;
				if (k == 0 && !ms_left(deadline))
					return -ETIMEDOUT;
				continue;
			}
			return -errno;
		}
		/* Descriptors go with the first bytes only. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		while (mh.msg_iovlen && (size_t)n >= mh.msg_iov->iov_len) {
			n -= (ssize_t)mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + n;
			mh.msg_iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int devmig_msg_send(int sock, const struct iovec *iov, int iovcnt, const int *fds,
		    unsigned nfds)
{
	return devmig_msg_send_timed(sock, iov, iovcnt, fds, nfds, -1);
}

bool devmig_msg_reader_buffered(const struct devmig_msg_reader *r)
{
	return r->end > r->start;
}
