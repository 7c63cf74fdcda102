/* SPDX-License-Identifier: MIT */
/*
 * The receiver: frames from the source's channel (a socket or a checkpoint
 * file) turned back into calls on the destination devices.
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
#include "transport.h"

/* Where our answers go: a channel of their own, opened with the magic before
 * the first one (not before anything came: a stray connection gets nothing). */
struct acker {
	struct devmig_transport *t;
	bool opened;
};

static int send_ack(struct acker *ack, uint32_t type, int status, const char *why)
{
	uint8_t a[12];
	if (!ack->opened) {
		struct iovec magic = { (void *)DEVMIG_CHAN_MAGIC, DEVMIG_CHAN_MAGIC_LEN };
		int rc = transport_sendv(ack->t, &magic, 1);
		if (rc)
			return rc;
		ack->opened = true;
	}
	put32(a, type);
	put32(a + 4, (uint32_t)status);
	put32(a + 8, 0);
	return chan_send(ack->t, DEVMIG_CHAN_ACK, 0, a, 12, why, status ? strlen(why) : 0);
}

/* HELLO from the source: check its shape, then hand it to the destination. */
static int parse_hello(struct dest *d, const struct devmig_chan_frame *f, char *why, size_t wl)
{
	struct devmig_chan_hello_dev devs[DEVMIG_CHAN_MAX_DEVICES];
	struct peer_dev src[DEVMIG_CHAN_MAX_DEVICES];
	uint32_t n;
	uint64_t guest_size;

	int rc = devmig_chan_parse_hello(f->payload, f->len, &n, &guest_size, devs, why, wl);
	if (rc)
		return rc;
	memset(src, 0, sizeof(src[0]) * n);
	for (uint32_t i = 0; i < n; i++) {
		src[i].compat.config_fingerprint = devs[i].fingerprint;
		memcpy(src[i].compat.version, devs[i].version, sizeof(src[i].compat.version));
		src[i].id_known = devs[i].id_known;
		src[i].id = devs[i].id;
	}
	return d->peer.ops->hello(&d->peer, n, src, guest_size, why, wl);
}

/*
 * Apply one frame to the destination. Returns 1 when the migration is over
 * (RUN done, or END of a checkpoint), 0 to go on, -errno to stop.
 */
static int receive_frame(struct dest *d, const struct devmig_chan_frame *f, struct acker *ack,
			 uint64_t frames_before, char *why, size_t wl)
{
	struct peer *p = &d->peer;
	int rc = 0;

	switch (f->type) {
	case DEVMIG_CHAN_HELLO:
		rc = parse_hello(d, f, why, wl);
		if (ack)
			send_ack(ack, f->type, rc, why);
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
		if (ack)
			send_ack(ack, f->type, rc, why);
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
 * Read frames from t until the migration is over. apply=false only checks
 * the framing (a checkpoint's first pass). ack: where answers go (NULL:
 * none). *began: a HELLO frame came (a migration, not a stray connection).
 */
static int receive_loop(struct dest *d, struct devmig_transport *t, struct acker *ack,
			bool apply, bool want_end, bool *began, char *why, size_t wl)
{
	struct devmig_chan_reader *rd = devmig_chan_reader_new();
	size_t cap = 1u << 20;
	uint8_t *buf = malloc(cap);
	uint64_t frames = 0, bytes = 0;
	int rc = 0;

	if (!rd || !buf) {
		snprintf(why, wl, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		long n = transport_recv(t, buf, cap);
		if (n == -ETIMEDOUT) {
			snprintf(why, wl, "the source sent nothing for %u s",
				 (t->timeout_ms + 999) / 1000);
			rc = -ETIMEDOUT;
			goto out;
		}
		if (n <= 0) {
			snprintf(why, wl, "%s", n < 0 ? strerror((int)-n)
					   : !bytes ? (want_end ? "the checkpoint is empty"
								: "the connection closed before "
								  "anything was sent")
					   : devmig_chan_reader_idle(rd)
						   ? (want_end ? "the checkpoint ends without its end record"
							       : "the source went away before the migration completed")
						   : "the input ends in the middle of a frame");
			rc = n < 0 ? (int)n : -ECONNRESET;
			goto out;
		}
		bytes += (uint64_t)n;
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
			if (f.type == DEVMIG_CHAN_HELLO)
				*began = true;
			rc = receive_frame(d, &f, ack, frames, why, wl);
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

static int receive_common(const struct devmig_engine_config *cfg, struct devmig_transport *t,
			  struct devmig_transport *ack, bool checkpoint,
			  struct devmig_client *const *dst, unsigned n,
			  struct devmig_guest_mem *dst_mem, struct devmig_migration_report *report)
{
	struct dest d;
	uint64_t t0 = engine_now_ns();
	bool began = false;
	struct acker acker = { .t = ack };

	memset(report, 0, sizeof(*report));
	report->devices = n;
	for (unsigned i = 0; i < DEVMIG_ENGINE_MAX_DEVICES; i++)
		report->src_state[i] = report->dst_state[i] = DEVMIG_STATE_UNKNOWN;
	if (dest_init(&d, cfg, dst, n, dst_mem, report))
		return -ENOMEM;
	int rc = receive_loop(&d, t, ack ? &acker : NULL, true, checkpoint, &began, report->error,
			      sizeof(report->error));
	if (!rc && checkpoint) {
		/* The file is whole: now the devices validate and apply. */
		rc = d.peer.ops->commit(&d.peer, report->error, sizeof(report->error));
		if (!rc)
			rc = d.peer.ops->run(&d.peer, report->error, sizeof(report->error));
	}
	if (rc && d.touched)
		d.peer.ops->abort(&d.peer, report->error);
	if (rc && !checkpoint && !began && !d.touched)
		rc = -ECONNABORTED; /* no migration began here: the caller may wait for another */
	/* Where each device was left: read back unless the cleanup just did. */
	for (unsigned i = 0; !d.cleaned && i < n && i < DEVMIG_ENGINE_MAX_DEVICES; i++)
		report->dst_state[i] = engine_probe_state(dst[i], NULL);
	report->completed = rc == 0;
	report->total_ns = engine_now_ns() - t0;
	dest_fini(&d);
	return rc;
}

int devmig_receive_over(const struct devmig_engine_config *cfg, struct devmig_transport *t,
			struct devmig_client *const *dst, unsigned n,
			struct devmig_guest_mem *dst_mem, struct devmig_migration_report *report)
{
	return receive_common(cfg, t, t, false, dst, n, dst_mem, report);
}

int devmig_receive_from_fd(const struct devmig_engine_config *cfg, int fd,
			   struct devmig_client *const *dst, unsigned n,
			   struct devmig_guest_mem *dst_mem, struct devmig_migration_report *report)
{
	struct devmig_transport *t = devmig_transport_plain(fd, engine_timeout_ms(cfg));
	if (!t)
		return -ENOMEM;
	int rc = receive_common(cfg, t, t, false, dst, n, dst_mem, report);
	devmig_transport_free(t);
	return rc;
}

int devmig_restore(const struct devmig_engine_config *cfg, int fd,
		   struct devmig_client *const *dst, unsigned n,
		   struct devmig_guest_mem *dst_mem, struct devmig_migration_report *report)
{
	struct dest d;
	bool began = false;

	memset(report, 0, sizeof(*report));
	for (unsigned i = 0; i < DEVMIG_ENGINE_MAX_DEVICES; i++)
		report->src_state[i] = report->dst_state[i] = DEVMIG_STATE_UNKNOWN;
	struct devmig_transport *t = devmig_transport_plain(fd, 0);
	if (!t)
		return -ENOMEM;
	/* First pass: every frame's CRC and the end record, touching no device. */
	int rc = dest_init(&d, cfg, dst, n, dst_mem, report);
	if (!rc) {
		rc = receive_loop(&d, t, NULL, false, true, &began, report->error,
				  sizeof(report->error));
		dest_fini(&d);
	}
	if (!rc && lseek(fd, 0, SEEK_SET) < 0) {
		snprintf(report->error, sizeof(report->error),
			 "the checkpoint must be a seekable file: %s", strerror(errno));
		rc = -errno;
	}
	if (!rc)
		rc = receive_common(cfg, t, NULL, true, dst, n, dst_mem, report);
	devmig_transport_free(t);
	return rc;
}
