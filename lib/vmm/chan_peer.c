/* SPDX-License-Identifier: MIT */
/*
 * The channel as a peer: the source algorithm's calls as frames to a
 * receiver on another host, or into a checkpoint file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "channel.h"
#include "crc32c.h"
#include "engine_internal.h"
#include "le.h"
#include "transport.h"

/* A last frame (ABORT) waits at most this long: the unwind must not. */
#define ABORT_SEND_MS 1000u

int chan_send(struct devmig_transport *t, uint32_t type, uint32_t dev, const void *a,
	      size_t alen, const void *b, size_t blen)
{
	uint8_t hdr[DEVMIG_CHAN_HDR], trailer[4];

	devmig_chan_put_header(hdr, type, dev, alen + blen);
	uint32_t crc = devmig_crc32c(devmig_chan_crc(hdr, a, alen), b, blen);
	put32(trailer, crc);
	struct iovec iov[4] = {
		{ hdr, sizeof(hdr) }, { (void *)a, alen }, { (void *)b, blen }, { trailer, 4 },
	};
	return transport_sendv(t, iov, 4);
}

struct chan_peer {
	struct peer peer;
	uint8_t *copy;  /* guest pages, copied so the CRC matches the bytes sent */
	bool opened;    /* the magic went out */
	size_t copy_cap;
	struct devmig_transport *t;
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
	int rc = transport_sendv(cp->t, &magic, 1);
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
	int rc = chan_send(cp->t, type, dev, a, alen, b, blen);
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
			long k = transport_recv(cp->t, cp->buf, sizeof(cp->buf));
			if (k == -ETIMEDOUT) {
				cp->t->broken = true; /* the answer may still come: no more frames */
				snprintf(why, wl, "the destination did not answer %s within %u s",
					 devmig_chan_type_name(type), (cp->t->timeout_ms + 999) / 1000);
				return (int)k;
			}
			if (k <= 0) {
				snprintf(why, wl, "the destination went away before answering %s%s%s",
					 devmig_chan_type_name(type), k < 0 ? ": " : "",
					 k < 0 ? strerror((int)-k) : "");
				return k < 0 ? (int)k : -ECONNRESET;
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

static int chan_hello(struct peer *p, unsigned n, const struct peer_dev *src,
		      uint64_t guest_size, char *why, size_t wl)
{
	struct chan_peer *cp = to_chan(p);
	uint8_t hello[DEVMIG_CHAN_HELLO_FIXED + DEVMIG_CHAN_MAX_DEVICES * DEVMIG_CHAN_HELLO_DEV(DEVMIG_VERSION_MAX)];
	struct devmig_chan_hello_dev devs[DEVMIG_CHAN_MAX_DEVICES];

	if (n > DEVMIG_CHAN_MAX_DEVICES) {
		snprintf(why, wl, "at most %u devices per channel", DEVMIG_CHAN_MAX_DEVICES);
		return -EINVAL;
	}
	for (unsigned i = 0; i < n; i++) {
		memset(&devs[i], 0, sizeof(devs[i]));
		devs[i].fingerprint = src[i].compat.config_fingerprint;
		snprintf(devs[i].version, sizeof(devs[i].version), "%s", src[i].compat.version);
		devs[i].id_known = src[i].id_known;
		devs[i].id = src[i].id;
	}
	size_t len = devmig_chan_put_hello(hello, sizeof(hello), n, guest_size, devs);
	if (!len) {
		snprintf(why, wl, "HELLO does not fit");
		return -EINVAL;
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

/* Best effort and brief: a channel that failed or stalls gets nothing more. */
static void chan_abort(struct peer *p, const char *why)
{
	struct chan_peer *cp = to_chan(p);
	uint8_t hdr[DEVMIG_CHAN_HDR], trailer[4];
	size_t len = strlen(why);

	devmig_chan_put_header(hdr, DEVMIG_CHAN_ABORT, 0, len);
	put32(trailer, devmig_chan_crc(hdr, why, len));
	struct iovec iov[4] = {
		{ (void *)DEVMIG_CHAN_MAGIC, cp->opened ? 0 : DEVMIG_CHAN_MAGIC_LEN },
		{ hdr, sizeof(hdr) }, { (void *)why, len }, { trailer, 4 },
	};
	if (!transport_sendv_brief(cp->t, iov, 4, ABORT_SEND_MS)) {
		cp->opened = true;
		cp->frames++;
	}
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

struct peer *chan_peer_new(struct devmig_transport *t, bool acks)
{
	struct chan_peer *cp = calloc(1, sizeof(*cp));
	if (!cp)
		return NULL;
	cp->peer.ops = &chan_ops;
	cp->t = t;
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
