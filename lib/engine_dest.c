/* SPDX-License-Identifier: MIT */
/*
 * The destination half of the engine: the work on destination devices (the
 * direct peer), the channel peer that carries the same calls as frames to
 * another host or into a checkpoint file, the receiver that turns frames
 * back into calls, and the public entry points.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "channel.h"
#include "engine_internal.h"
#include "le.h"
#include "stream.h" /* devmig_crc32c */





/* ---- direct: the destination devices, in this process ---- */

static struct dest *to_dest(struct peer *p)
{
	return (struct dest *)(void *)p;
}

static void dst_event(struct dest *d, unsigned i, enum devmig_state from, enum devmig_state to)
{
	struct devmig_engine_event ev = {
		.type = DEVMIG_EV_ARC, .dev = i, .destination = true, .from = from, .to = to,
	};
	engine_event(d->cfg, &ev);
}

/* The destination's reason for a refusal, in words when it can tell. */
static void dst_reason(struct dest *d, unsigned i, int rc, char *why, size_t wl)
{
	char reason[DEVMIG_MIG_STATUS_REASON] = "";
	uint64_t b;
	int le;

	if (devmig_client_mig_status(d->c[i], &b, &le, reason, sizeof(reason)) || !reason[0])
		snprintf(reason, sizeof(reason), "%s", strerror(-rc));
	snprintf(why, wl, "destination device %u: %s", i, reason);
}

static int dst_set(struct dest *d, unsigned i, enum devmig_state from, enum devmig_state to,
		   char *why, size_t wl)
{
	dst_event(d, i, from, to);
	int rc = devmig_client_set_state(d->c[i], to);
	if (rc)
		dst_reason(d, i, rc, why, wl);
	return rc;
}

static int direct_hello(struct peer *p, unsigned n, const struct devmig_compat_info *src,
			uint64_t guest_size, char *why, size_t wl)
{
	struct dest *d = to_dest(p);

	if (n != d->n) {
		snprintf(why, wl, "the source sends %u devices, the destination has %u", n, d->n);
		return -EINVAL;
	}
	if (guest_size != (d->mem ? devmig_guest_mem_size(d->mem) : 0)) {
		snprintf(why, wl, "guest memory differs: %llu bytes at the source, %zu here",
			 (unsigned long long)guest_size, d->mem ? devmig_guest_mem_size(d->mem) : 0);
		return -EINVAL;
	}
	/* Every pair is checked before any device changes state. */
	for (unsigned i = 0; i < n; i++) {
		struct devmig_compat_info target;
		char reason[256];
		if (!src[i].version[0] || devmig_client_compat_info(d->c[i], &target))
			continue; /* not known on one side: the stream header will decide */
		if (devmig_compat_check(&target, src[i].version, src[i].config_fingerprint, reason,
					sizeof(reason))) {
			snprintf(why, wl, "destination device %u cannot take this source: %s", i, reason);
			return -EINVAL;
		}
	}
	d->touched = true;
	for (unsigned i = 0; i < n; i++) {
		enum devmig_state st;
		int rc = devmig_client_mig_caps(d->c[i], &d->caps[i]);
		if (!rc)
			rc = devmig_client_get_state(d->c[i], &st);
		if (rc) {
			snprintf(why, wl, "destination device %u is not migratable: %s", i,
				 strerror(-rc));
			return rc;
		}
		rc = dst_set(d, i, st, DEVMIG_STATE_RESUMING, why, wl);
		if (rc)
			return rc;
	}
	return 0;
}

static int direct_data(struct peer *p, unsigned dev, const void *buf, size_t len, char *why,
		       size_t wl)
{
	struct dest *d = to_dest(p);

	if (dev >= d->n) {
		snprintf(why, wl, "data for device %u, the destination has %u", dev, d->n);
		return -EINVAL;
	}
	/* Without waiting when the server can report afterwards; else each write waits. */
	int rc = devmig_client_mig_write_nowait(d->c[dev], buf, len);
	if (rc == -ENOTSUP)
		rc = devmig_client_mig_write(d->c[dev], buf, len);
	if (rc)
		dst_reason(d, dev, rc, why, wl);
	if (d->report)
		d->report->device_bytes += len;
	return rc;
}

static int direct_mem(struct peer *p, uint64_t offset, const void *buf, size_t len, char *why,
		      size_t wl)
{
	struct dest *d = to_dest(p);
	size_t size = d->mem ? devmig_guest_mem_size(d->mem) : 0;

	if (offset > size || len > size - offset) {
		snprintf(why, wl, "guest memory at %llu+%zu is outside the destination's %zu bytes",
			 (unsigned long long)offset, len, size);
		return -EINVAL;
	}
	memcpy((uint8_t *)devmig_guest_mem_ptr(d->mem) + offset, buf, len);
	if (d->report)
		d->report->guest_bytes += len;
	return 0;
}

static int direct_initial_done(struct peer *p, unsigned dev, char *why, size_t wl)
{
	(void)p;
	(void)dev;
	(void)why;
	(void)wl;
	return 0;
}

static int direct_sync(struct peer *p, char *why, size_t wl)
{
	struct dest *d = to_dest(p);

	for (unsigned i = 0; i < d->n; i++) {
		uint64_t bytes;
		int le;
		char reason[DEVMIG_MIG_STATUS_REASON];
		int rc = devmig_client_mig_status(d->c[i], &bytes, &le, reason, sizeof(reason));
		if (rc == -ENOTSUP)
			continue; /* its writes were answered one by one */
		if (!rc && le)
			rc = le;
		if (rc) {
			snprintf(why, wl, "destination device %u: %s", i,
				 reason[0] && le ? reason : strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int direct_commit(struct peer *p, char *why, size_t wl)
{
	struct dest *d = to_dest(p);

	for (unsigned i = 0; i < d->n; i++) {
		int rc = dst_set(d, i, DEVMIG_STATE_RESUMING, DEVMIG_STATE_STOP, why, wl);
		if (rc)
			return rc;
	}
	return 0;
}

static int direct_run(struct peer *p, char *why, size_t wl)
{
	struct dest *d = to_dest(p);

	/* Every device allows P2P DMA before any one runs again. */
	for (unsigned i = 0; i < d->n; i++) {
		if (!(d->caps[i] & DEVMIG_MIG_P2P))
			continue;
		int rc = dst_set(d, i, DEVMIG_STATE_STOP, DEVMIG_STATE_RUNNING_P2P, why, wl);
		if (rc)
			return rc;
	}
	for (unsigned i = 0; i < d->n; i++) {
		int rc = dst_set(d, i,
				 (d->caps[i] & DEVMIG_MIG_P2P) ? DEVMIG_STATE_RUNNING_P2P
							       : DEVMIG_STATE_STOP,
				 DEVMIG_STATE_RUNNING, why, wl);
		if (rc)
			return rc;
	}
	return 0;
}

static void direct_abort(struct peer *p, const char *why)
{
	struct dest *d = to_dest(p);
	(void)why;
	/* The destination devices go back to their power-on state; devices no
	 * step has touched (e.g. refused by the compatibility check) keep theirs. */
	if (!d->touched)
		return;
	for (unsigned i = 0; i < d->n; i++)
		devmig_client_reset(d->c[i]);
	d->touched = false;
}

static int direct_end(struct peer *p, char *why, size_t wl)
{
	(void)p;
	(void)why;
	(void)wl;
	return 0;
}

static const struct peer_ops direct_ops = {
	.hello = direct_hello,
	.data = direct_data,
	.mem = direct_mem,
	.initial_done = direct_initial_done,
	.sync = direct_sync,
	.commit = direct_commit,
	.run = direct_run,
	.abort = direct_abort,
	.end = direct_end,
};

int dest_init(struct dest *d, const struct devmig_engine_config *cfg,
	      struct devmig_client *const *c, unsigned n, struct devmig_guest_mem *mem,
	      struct devmig_migration_report *report)
{
	memset(d, 0, sizeof(*d));
	d->peer.ops = &direct_ops;
	d->cfg = cfg;
	d->c = c;
	d->n = n;
	d->mem = mem;
	d->report = report;
	d->caps = calloc(n ? n : 1, sizeof(*d->caps));
	return d->caps ? 0 : -ENOMEM;
}

void dest_fini(struct dest *d)
{
	free(d->caps);
}

/* ---- the channel as a peer: frames to a receiver, or into a file ---- */

/* Write everything; a socket never raises SIGPIPE in the embedding VMM. */
static int write_all_iov(int fd, struct iovec *iov, int n)
{
	bool sock = true;

	while (n) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t k = sock ? sendmsg(fd, &mh, MSG_NOSIGNAL) : writev(fd, iov, n);
		if (k < 0 && sock && errno == ENOTSOCK) {
			sock = false; /* a checkpoint file */
			continue;
		}
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (n && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

int chan_send(int fd, uint32_t type, uint32_t dev, const void *a, size_t alen, const void *b,
	      size_t blen)
{
	uint8_t hdr[DEVMIG_CHAN_HDR], trailer[4];

	devmig_chan_put_header(hdr, type, dev, alen + blen);
	uint32_t crc = devmig_crc32c(devmig_chan_crc(hdr, a, alen), b, blen);
	put32(trailer, crc);
	struct iovec iov[4] = {
		{ hdr, sizeof(hdr) }, { (void *)a, alen }, { (void *)b, blen }, { trailer, 4 },
	};
	return write_all_iov(fd, iov, 4);
}

struct chan_peer {
	struct peer peer;
	uint8_t *copy;  /* guest pages, copied so the CRC matches the bytes sent */
	bool opened;    /* the magic went out */
	size_t copy_cap;
	int fd;
	bool acks;
	bool refused;  /* the last answer was an explicit refusal */
	uint64_t frames;
	struct devmig_chan_reader *rd;
	uint8_t buf[4096];
	size_t have, used;
};

static struct chan_peer *to_chan(struct peer *p)
{
	return (struct chan_peer *)(void *)p;
}

/* The channel opens with the magic, once, whatever is sent first. */
static int chan_open(struct chan_peer *cp, char *why, size_t wl)
{
	if (cp->opened)
		return 0;
	struct iovec magic = { (void *)DEVMIG_CHAN_MAGIC, DEVMIG_CHAN_MAGIC_LEN };
	int rc = write_all_iov(cp->fd, &magic, 1);
	if (rc) {
		snprintf(why, wl, "the channel to the destination failed: %s", strerror(-rc));
		return rc;
	}
	cp->opened = true;
	return 0;
}

static int chan_frame(struct chan_peer *cp, uint32_t type, uint32_t dev, const void *a,
		      size_t alen, const void *b, size_t blen, char *why, size_t wl)
{
	int rc = chan_send(cp->fd, type, dev, a, alen, b, blen);
	if (rc)
		snprintf(why, wl, "the channel to the destination failed: %s", strerror(-rc));
	else
		cp->frames++;
	return rc;
}

/* Wait for the receiver's ACK to type; its status and reason are the result. */
static int chan_wait_ack(struct chan_peer *cp, uint32_t type, char *why, size_t wl)
{
	if (!cp->acks)
		return 0;
	for (;;) {
		if (cp->used == cp->have) {
			ssize_t k = recv(cp->fd, cp->buf, sizeof(cp->buf), 0);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				snprintf(why, wl, "the destination went away before answering %s%s%s",
					 devmig_chan_type_name(type), k < 0 ? ": " : "",
					 k < 0 ? strerror(errno) : "");
				return k < 0 ? -errno : -ECONNRESET;
			}
			cp->have = (size_t)k;
			cp->used = 0;
		}
		struct devmig_chan_frame f;
		bool got;
		long k = devmig_chan_reader_feed(cp->rd, cp->buf + cp->used, cp->have - cp->used, &f,
						 &got);
		if (k < 0) {
			snprintf(why, wl, "bad answer from the destination: %s",
				 devmig_chan_reader_error(cp->rd));
			return -EPROTO;
		}
		cp->used += (size_t)k;
		if (!got)
			continue;
		if (f.type != DEVMIG_CHAN_ACK || f.len < 12) {
			snprintf(why, wl, "unexpected %s from the destination", devmig_chan_type_name(f.type));
			return -EPROTO;
		}
		if (get32(f.payload) != type)
			continue; /* an answer to something earlier */
		int32_t status = (int32_t)get32(f.payload + 4);
		if (status) {
			cp->refused = true;
			snprintf(why, wl, "%.*s", (int)(f.len - 12), (const char *)f.payload + 12);
			return status < 0 ? status : -EIO;
		}
		return 0;
	}
}

/* HELLO: u32 version, u32 n, u64 guest size, then per device u64 fingerprint, u8 len, version. */
#define HELLO_FIXED 16u
#define HELLO_DEV(len) (9u + (len))

static int chan_hello(struct peer *p, unsigned n, const struct devmig_compat_info *src,
		      uint64_t guest_size, char *why, size_t wl)
{
	struct chan_peer *cp = to_chan(p);
	uint8_t hello[HELLO_FIXED + DEVMIG_CHAN_MAX_DEVICES * HELLO_DEV(DEVMIG_VERSION_MAX)];
	size_t len = HELLO_FIXED;

	if (n > DEVMIG_CHAN_MAX_DEVICES) {
		snprintf(why, wl, "at most %u devices per channel", DEVMIG_CHAN_MAX_DEVICES);
		return -EINVAL;
	}
	put32(hello, DEVMIG_CHAN_VERSION);
	put32(hello + 4, n);
	put64(hello + 8, guest_size);
	for (unsigned i = 0; i < n; i++) {
		size_t vl = strnlen(src[i].version, DEVMIG_VERSION_MAX - 1);
		put64(hello + len, src[i].config_fingerprint);
		hello[len + 8] = (uint8_t)vl;
		memcpy(hello + len + 9, src[i].version, vl);
		len += HELLO_DEV(vl);
	}
	int rc = chan_open(cp, why, wl);
	if (rc)
		return rc;
	rc = chan_frame(cp, DEVMIG_CHAN_HELLO, 0, hello, len, NULL, 0, why, wl);
	return rc ? rc : chan_wait_ack(cp, DEVMIG_CHAN_HELLO, why, wl);
}

static int chan_data(struct peer *p, unsigned dev, const void *buf, size_t len, char *why,
		     size_t wl)
{
	return chan_frame(to_chan(p), DEVMIG_CHAN_DEV_DATA, dev, buf, len, NULL, 0, why, wl);
}

static int chan_mem(struct peer *p, uint64_t offset, const void *buf, size_t len, char *why,
		    size_t wl)
{
	struct chan_peer *cp = to_chan(p);
	uint8_t off[8];

	/*
	 * The guest may write these pages while they are sent: checksum and send
	 * one stable copy. (A page written after the copy is dirty again and
	 * goes in a later round.)
	 */
	if (len > cp->copy_cap) {
		uint8_t *c = realloc(cp->copy, len);
		if (!c) {
			snprintf(why, wl, "out of memory");
			return -ENOMEM;
		}
		cp->copy = c;
		cp->copy_cap = len;
	}
	memcpy(cp->copy, buf, len);
	put64(off, offset);
	return chan_frame(cp, DEVMIG_CHAN_MEM, 0, off, 8, cp->copy, len, why, wl);
}

static int chan_initial_done(struct peer *p, unsigned dev, char *why, size_t wl)
{
	return chan_frame(to_chan(p), DEVMIG_CHAN_INITIAL_DONE, dev, NULL, 0, NULL, 0, why, wl);
}

static int chan_call(struct peer *p, uint32_t type, char *why, size_t wl)
{
	struct chan_peer *cp = to_chan(p);
	int rc = chan_frame(cp, type, 0, NULL, 0, NULL, 0, why, wl);
	return rc ? rc : chan_wait_ack(cp, type, why, wl);
}

static int chan_sync(struct peer *p, char *why, size_t wl)
{
	return chan_call(p, DEVMIG_CHAN_SYNC, why, wl);
}

static int chan_commit(struct peer *p, char *why, size_t wl)
{
	return chan_call(p, DEVMIG_CHAN_COMMIT, why, wl);
}

static int chan_run(struct peer *p, char *why, size_t wl)
{
	struct chan_peer *cp = to_chan(p);
	cp->refused = false;
	int rc = chan_call(p, DEVMIG_CHAN_RUN, why, wl);
	/* Only an explicit refusal means the destination is not running. */
	p->run_unanswered = rc && !cp->refused;
	return rc;
}

static void chan_abort(struct peer *p, const char *why)
{
	char ignore[64];
	if (chan_open(to_chan(p), ignore, sizeof(ignore)))
		return;
	chan_frame(to_chan(p), DEVMIG_CHAN_ABORT, 0, why, strlen(why), NULL, 0, ignore,
		   sizeof(ignore));
}

static int chan_end(struct peer *p, char *why, size_t wl)
{
	struct chan_peer *cp = to_chan(p);
	uint8_t count[8];
	put64(count, cp->frames);
	return chan_frame(cp, DEVMIG_CHAN_END, 0, count, 8, NULL, 0, why, wl);
}

static const struct peer_ops chan_ops = {
	.hello = chan_hello,
	.data = chan_data,
	.mem = chan_mem,
	.initial_done = chan_initial_done,
	.sync = chan_sync,
	.commit = chan_commit,
	.run = chan_run,
	.abort = chan_abort,
	.end = chan_end,
};

struct peer *chan_peer_new(int fd, bool acks)
{
	struct chan_peer *cp = calloc(1, sizeof(*cp));
	if (!cp)
		return NULL;
	cp->peer.ops = &chan_ops;
	cp->fd = fd;
	cp->acks = acks;
	cp->rd = devmig_chan_reader_new();
	if (!cp->rd) {
		free(cp);
		return NULL;
	}
	/* The receiver's answers open with the magic too. */
	return &cp->peer;
}

void chan_peer_free(struct peer *p)
{
	if (!p)
		return;
	devmig_chan_reader_free(to_chan(p)->rd);
	free(to_chan(p)->copy);
	free(p);
}

/* ---- the receiver: frames back into calls on the destination ---- */

static int send_ack(int fd, uint32_t type, int status, const char *why)
{
	uint8_t a[12];
	put32(a, type);
	put32(a + 4, (uint32_t)status);
	put32(a + 8, 0);
	return chan_send(fd, DEVMIG_CHAN_ACK, 0, a, 12, why, status ? strlen(why) : 0);
}

/* HELLO from the source: check its shape, then hand it to the destination. */
static int parse_hello(struct dest *d, const struct devmig_chan_frame *f, char *why, size_t wl)
{
	struct devmig_compat_info src[DEVMIG_CHAN_MAX_DEVICES];
	size_t off = HELLO_FIXED;

	if (f->len < HELLO_FIXED || get32(f->payload) != DEVMIG_CHAN_VERSION) {
		snprintf(why, wl, "unsupported migration channel version %u",
			 f->len >= 4 ? get32(f->payload) : 0);
		return -EPROTO;
	}
	uint32_t n = get32(f->payload + 4);
	if (n > DEVMIG_CHAN_MAX_DEVICES) {
		snprintf(why, wl, "HELLO announces %u devices, at most %u", n, DEVMIG_CHAN_MAX_DEVICES);
		return -EPROTO;
	}
	memset(src, 0, sizeof(src[0]) * n);
	for (uint32_t i = 0; i < n; i++) {
		if (f->len - off < 9 || f->len - off - 9 < f->payload[off + 8] ||
		    f->payload[off + 8] >= DEVMIG_VERSION_MAX) {
			snprintf(why, wl, "HELLO is cut short at device %u", i);
			return -EPROTO;
		}
		src[i].config_fingerprint = get64(f->payload + off);
		memcpy(src[i].version, f->payload + off + 9, f->payload[off + 8]);
		off += HELLO_DEV(f->payload[off + 8]);
	}
	if (off != f->len) {
		snprintf(why, wl, "HELLO has %llu bytes past its last device",
			 (unsigned long long)(f->len - off));
		return -EPROTO;
	}
	return d->peer.ops->hello(&d->peer, n, src, get64(f->payload + 8), why, wl);
}

/*
 * Apply one frame to the destination. Returns 1 when the migration is over
 * (RUN done, or END of a checkpoint), 0 to go on, -errno to stop.
 */
static int receive_frame(struct dest *d, const struct devmig_chan_frame *f, int ack_fd,
			 uint64_t frames_before, char *why, size_t wl)
{
	struct peer *p = &d->peer;
	int rc = 0;

	switch (f->type) {
	case DEVMIG_CHAN_HELLO:
		rc = parse_hello(d, f, why, wl);
		if (ack_fd >= 0)
			send_ack(ack_fd, f->type, rc, why);
		return rc;
	case DEVMIG_CHAN_DEV_DATA:
		/* A refusal is kept for the next SYNC or COMMIT; later data is dropped. */
		if (!d->first_error) {
			d->first_error = p->ops->data(p, f->dev, f->payload, f->len, d->first_why,
						      sizeof(d->first_why));
		}
		return 0;
	case DEVMIG_CHAN_MEM:
		if (f->len < 8) {
			snprintf(why, wl, "MEM frame too short");
			return -EPROTO;
		}
		rc = p->ops->mem(p, get64(f->payload), f->payload + 8, f->len - 8, why, wl);
		if (rc && !d->first_error) {
			d->first_error = rc;
			snprintf(d->first_why, sizeof(d->first_why), "%s", why);
		}
		return 0;
	case DEVMIG_CHAN_INITIAL_DONE:
		return 0;
	case DEVMIG_CHAN_SYNC:
	case DEVMIG_CHAN_COMMIT:
	case DEVMIG_CHAN_RUN:
		rc = d->first_error;
		if (rc)
			snprintf(why, wl, "%s", d->first_why);
		else if (f->type == DEVMIG_CHAN_SYNC)
			rc = p->ops->sync(p, why, wl);
		else if (f->type == DEVMIG_CHAN_COMMIT)
			rc = p->ops->commit(p, why, wl);
		else
			rc = p->ops->run(p, why, wl);
		if (ack_fd >= 0)
			send_ack(ack_fd, f->type, rc, why);
		if (rc)
			return rc;
		return f->type == DEVMIG_CHAN_RUN ? 1 : 0;
	case DEVMIG_CHAN_ABORT:
		snprintf(why, wl, "the source gave up: %.*s", (int)f->len, (const char *)f->payload);
		return -ECANCELED;
	case DEVMIG_CHAN_END:
		if (f->len != 8 || get64(f->payload) != frames_before) {
			snprintf(why, wl, "checkpoint end record counts %llu frames, %llu were read",
				 f->len == 8 ? (unsigned long long)get64(f->payload) : 0ull,
				 (unsigned long long)frames_before);
			return -EINVAL;
		}
		return 1;
	}
	snprintf(why, wl, "unexpected %s frame", devmig_chan_type_name(f->type));
	return -EPROTO;
}

/*
 * Read frames from fd until the migration is over. apply=false only checks
 * the framing (a checkpoint's first pass). ack_fd: where answers go (-1: none).
 */
static int receive_loop(struct dest *d, int fd, int ack_fd, bool apply, bool want_end,
			char *why, size_t wl)
{
	struct devmig_chan_reader *rd = devmig_chan_reader_new();
	size_t cap = 1u << 20;
	uint8_t *buf = malloc(cap);
	uint64_t frames = 0;
	int rc = 0;

	if (!rd || !buf) {
		snprintf(why, wl, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(why, wl, "%s", n < 0 ? strerror(errno)
					   : devmig_chan_reader_idle(rd)
						   ? (want_end ? "the checkpoint ends without its end record"
							       : "the source went away before the migration completed")
						   : "the input ends in the middle of a frame");
			rc = n < 0 ? -errno : -ECONNRESET;
			goto out;
		}
		for (size_t used = 0; used < (size_t)n;) {
			struct devmig_chan_frame f;
			bool got;
			long k = devmig_chan_reader_feed(rd, buf + used, (size_t)n - used, &f, &got);
			if (k < 0) {
				snprintf(why, wl, "%s", devmig_chan_reader_error(rd));
				rc = -EINVAL;
				goto out;
			}
			used += (size_t)k;
			if (!got)
				continue;
			if (!apply) {
				if (f.type == DEVMIG_CHAN_END) {
					rc = f.len == 8 && get64(f.payload) == frames ? 1 : -EINVAL;
					if (rc < 0)
						snprintf(why, wl, "checkpoint end record counts %llu frames, %llu were read",
							 f.len == 8 ? (unsigned long long)get64(f.payload) : 0ull,
							 (unsigned long long)frames);
					goto out;
				}
				frames++;
				continue;
			}
			rc = receive_frame(d, &f, ack_fd, frames, why, wl);
			frames++;
			if (rc)
				goto out;
		}
	}
out:
	devmig_chan_reader_free(rd);
	free(buf);
	return rc < 0 ? rc : 0;
}

/* ---- entry points ---- */

int devmig_migrate_local(const struct devmig_engine_config *cfg,
			 struct devmig_client *const *src, struct devmig_client *const *dst,
			 unsigned n, struct devmig_guest_mem *src_mem,
			 struct devmig_guest_mem *dst_mem, struct devmig_migration_report *report)
{
	struct dest d;
	struct devmig_migration_report dst_rep = { 0 };

	if (dest_init(&d, cfg, dst, n, dst_mem, &dst_rep))
		return -ENOMEM;
	int rc = engine_run(cfg, src, n, src_mem, &d.peer, false, report);
	dest_fini(&d);
	return rc;
}

int devmig_migrate_to_fd(const struct devmig_engine_config *cfg,
			 struct devmig_client *const *src, unsigned n,
			 struct devmig_guest_mem *src_mem, int fd,
			 struct devmig_migration_report *report)
{
	struct peer *p = chan_peer_new(fd, true);
	if (!p)
		return -ENOMEM;
	int rc = engine_run(cfg, src, n, src_mem, p, false, report);
	chan_peer_free(p);
	return rc;
}

int devmig_save(const struct devmig_engine_config *cfg, struct devmig_client *const *src,
		unsigned n, struct devmig_guest_mem *src_mem, int fd,
		struct devmig_migration_report *report)
{
	struct peer *p = chan_peer_new(fd, false);
	if (!p)
		return -ENOMEM;
	int rc = engine_run(cfg, src, n, src_mem, p, true, report);
	chan_peer_free(p);
	return rc;
}

static int receive_common(const struct devmig_engine_config *cfg, int fd, int ack_fd,
			  bool checkpoint, struct devmig_client *const *dst, unsigned n,
			  struct devmig_guest_mem *dst_mem, struct devmig_migration_report *report)
{
	struct dest d;
	uint64_t t0 = engine_now_ns();

	memset(report, 0, sizeof(*report));
	report->devices = n;
	if (dest_init(&d, cfg, dst, n, dst_mem, report))
		return -ENOMEM;
	/* Our answers are a channel of their own: they open with the magic. */
	if (ack_fd >= 0) {
		struct iovec magic = { (void *)DEVMIG_CHAN_MAGIC, DEVMIG_CHAN_MAGIC_LEN };
		int wrc = write_all_iov(ack_fd, &magic, 1);
		if (wrc) {
			snprintf(report->error, sizeof(report->error), "cannot answer the source: %s",
				 strerror(-wrc));
			dest_fini(&d);
			return wrc;
		}
	}
	int rc = receive_loop(&d, fd, ack_fd, true, checkpoint, report->error,
			      sizeof(report->error));
	if (!rc && checkpoint) {
		/* The file is whole: now the devices validate and apply. */
		rc = direct_commit(&d.peer, report->error, sizeof(report->error));
		if (!rc)
			rc = direct_run(&d.peer, report->error, sizeof(report->error));
	}
	if (rc && d.touched)
		direct_abort(&d.peer, report->error);
	report->completed = rc == 0;
	report->total_ns = engine_now_ns() - t0;
	dest_fini(&d);
	return rc;
}

int devmig_receive_from_fd(const struct devmig_engine_config *cfg, int fd,
			   struct devmig_client *const *dst, unsigned n,
			   struct devmig_guest_mem *dst_mem, struct devmig_migration_report *report)
{
	return receive_common(cfg, fd, fd, false, dst, n, dst_mem, report);
}

int devmig_restore(const struct devmig_engine_config *cfg, int fd,
		   struct devmig_client *const *dst, unsigned n,
		   struct devmig_guest_mem *dst_mem, struct devmig_migration_report *report)
{
	struct dest d;

	memset(report, 0, sizeof(*report));
	/* First pass: every frame's CRC and the end record, touching no device. */
	if (dest_init(&d, cfg, dst, n, dst_mem, report))
		return -ENOMEM;
	int rc = receive_loop(&d, fd, -1, false, true, report->error, sizeof(report->error));
	dest_fini(&d);
	if (rc)
		return rc;
	if (lseek(fd, 0, SEEK_SET) < 0) {
		snprintf(report->error, sizeof(report->error),
			 "the checkpoint must be a seekable file: %s", strerror(errno));
		return -errno;
	}
	return receive_common(cfg, fd, -1, true, dst, n, dst_mem, report);
}
