/* SPDX-License-Identifier: MIT */
/*
 * The destination's work on its own devices: the "direct" peer the source
 * algorithm calls when both halves run in this process, and what the
 * receiver calls for frames that arrive from another host or a checkpoint.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine_internal.h"

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

/* The destination's reason for a refusal, in words when it can tell (mig_status). */
static void dst_reason_text(struct dest *d, unsigned i, int rc, char *reason, size_t rl)
{
	uint64_t b;
	int le;

	reason[0] = '\0';
	/* One that did not answer in time will not answer this either. */
	if (engine_unanswered(rc))
		d->unanswered[i] = true;
	if (engine_unanswered(rc) || devmig_client_mig_status(d->c[i], &b, &le, reason, rl) ||
	    !reason[0])
		snprintf(reason, rl, "%s", strerror(-rc));
}


static int dst_set(struct dest *d, unsigned i, enum devmig_state from, enum devmig_state to,
		   char *why, size_t wl)
{
	dst_event(d, i, from, to);
	int rc = devmig_client_set_state(d->c[i], to);
	if (rc) {
		char reason[DEVMIG_MIG_STATUS_REASON];
		dst_reason_text(d, i, rc, reason, sizeof(reason));
		snprintf(why, wl, "destination device %u: %s -> %s refused: %s", i,
			 devmig_state_name(from), devmig_state_name(to), reason);
	}
	return rc;
}

static int clean_device(struct dest *d, unsigned i);

static void dst_note(struct dest *d, unsigned i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void dst_note(struct dest *d, unsigned i, const char *fmt, ...)
{
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	struct devmig_engine_event ev = { .type = DEVMIG_EV_RECOVER, .dev = i,
					  .destination = true, .why = why };
	engine_event(d->cfg, &ev);
}

/*
 * A destination device an interrupted migration left mid-way: a load
 * session half written (RESUMING) or a device in ERROR is reset, so the new
 * migration opens a fresh session; one loaded but never run (STOP) gets a
 * fresh session by STOP -> RESUMING. *st: the state to start from.
 */
static int recover_dest(struct dest *d, unsigned i, enum devmig_state *st, char *why, size_t wl)
{
	switch (*st) {
	case DEVMIG_STATE_RESUMING:
	case DEVMIG_STATE_ERROR: {
		dst_note(d, i, "destination device %u was %s, left by an interrupted migration: "
			       "reset, then a fresh RESUMING session", i, devmig_state_name(*st));
		/* As after a failure: reset (walked first where a peer refuses it). */
		int now = clean_device(d, i);
		if (now != DEVMIG_STATE_RUNNING) {
			snprintf(why, wl, "destination device %u could not be reset (it is %s)", i,
				 now == DEVMIG_STATE_UNKNOWN ? "unreachable"
							     : devmig_state_name((enum devmig_state)now));
			return -EIO;
		}
		*st = DEVMIG_STATE_RUNNING;
		return 0;
	}
	case DEVMIG_STATE_STOP:
		dst_note(d, i, "destination device %u was STOP, loaded by an interrupted migration "
			       "and never run: a fresh RESUMING session replaces that", i);
		return 0;
	case DEVMIG_STATE_PRE_COPY:
	case DEVMIG_STATE_PRE_COPY_P2P:
	case DEVMIG_STATE_STOP_COPY:
		dst_note(d, i, "destination device %u was %s (a source mid-migration): its save "
			       "session is ended on the way to RESUMING", i, devmig_state_name(*st));
		return 0;
	default:
		return 0;
	}
}

static int direct_hello(struct peer *p, unsigned n, const struct peer_dev *src,
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
		struct devmig_pci_identity tid;
		char reason[256];
		if (src[i].compat.version[0] && !devmig_client_compat_info(d->c[i], &target)) {
			if (devmig_compat_check(&target, src[i].compat.version,
						src[i].compat.config_fingerprint, reason,
						sizeof(reason))) {
				snprintf(why, wl, "destination device %u cannot take this source: %s",
					 i, reason);
				return -EINVAL;
			}
			continue;
		}
		/* One side lacks devmig's compat extension (a foreign peer): its
		 * config space must say it is the same device. */
		int rc = devmig_client_pci_identity(d->c[i], &tid);
		if (rc || !src[i].id_known) {
			snprintf(why, wl, "destination device %u cannot be checked against source "
				 "device %u: the %s config space could not be read (%s)", i, i,
				 rc ? "destination's" : "source's", rc ? strerror(-rc) : "unknown");
			return rc ? rc : -EINVAL;
		}
		if (devmig_pci_identity_check(&src[i].id, &tid, reason, sizeof(reason))) {
			snprintf(why, wl, "destination device %u cannot take source device %u's state: %s",
				 i, i, reason);
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
		rc = recover_dest(d, i, &st, why, wl);
		if (rc)
			return rc;
		/* Always a new load session: RESUMING -> RESUMING would keep a stale one. */
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
	if (rc) {
		char reason[DEVMIG_MIG_STATUS_REASON];
		dst_reason_text(d, dev, rc, reason, sizeof(reason));
		snprintf(why, wl, "destination device %u refused %zu bytes of migration data: %s",
			 dev, len, reason);
	}
	if (d->report)
		d->report->device_bytes += len;
	return rc;
}

static int direct_data_from(struct peer *p, unsigned dev, const struct dm_src *src,
			    struct dm_result *res, char *why, size_t wl)
{
	struct dest *d = to_dest(p);
	struct devmig_data_session ds;

	memset(res, 0, sizeof(*res));
	if (dev >= d->n) {
		snprintf(why, wl, "data for device %u, the destination has %u", dev, d->n);
		return -EINVAL;
	}
	if (devmig_client_data_session(d->c[dev], &ds) || ds.save)
		return -EOPNOTSUPP;
	char w[200];
	int rc = dm_move_local(src, d->c[dev], res, w, sizeof(w));
	if (rc)
		snprintf(why, wl, "to destination device %u: %s", dev, w);
	if (res->dst_silent)
		d->unanswered[dev] = true; /* its unwind does not wait for it again */
	if (d->report)
		d->report->device_bytes += res->bytes;
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
			if (engine_unanswered(rc) && !le)
				d->unanswered[i] = true;
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

/* One destination device back to RUNNING with nothing loaded; its final state. */
static int clean_device(struct dest *d, unsigned i)
{
	struct devmig_client *c = d->c[i];
	/* One that did not answer in time is asked nothing more (each try would
	 * cost the timeout): left as it is, the next migration resets it. */
	int st = d->unanswered[i] ? DEVMIG_STATE_UNKNOWN : engine_probe_state(c, NULL);

	if (st == DEVMIG_STATE_UNKNOWN)
		return st;
	/* devmig's reset works in any state and ends in RUNNING. */
	devmig_client_reset(c);
	st = engine_probe_state(c, NULL);
	/*
	 * libvfio-user refuses a reset in STOP and STOP_COPY and keeps RESUMING
	 * through one: walk it to RUNNING as the table allows (RESUMING->STOP
	 * may refuse incomplete data: then STOP alone first), then reset what
	 * the walk may have applied.
	 */
	for (int tries = 0; st != DEVMIG_STATE_RUNNING && st != DEVMIG_STATE_UNKNOWN && tries < 2;
	     tries++) {
		dst_event(d, i, (enum devmig_state)st, DEVMIG_STATE_RUNNING);
		if (devmig_client_set_state(c, DEVMIG_STATE_RUNNING)) {
			st = engine_probe_state(c, NULL);
			if (st == DEVMIG_STATE_RESUMING || st == DEVMIG_STATE_STOP_COPY) {
				dst_event(d, i, (enum devmig_state)st, DEVMIG_STATE_STOP);
				devmig_client_set_state(c, DEVMIG_STATE_STOP);
			}
		}
		st = engine_probe_state(c, NULL);
		if (st == DEVMIG_STATE_RUNNING) {
			devmig_client_reset(c);
			st = engine_probe_state(c, NULL);
		}
	}
	return st;
}

void dest_cleanup(struct dest *d)
{
	for (unsigned i = 0; i < d->n; i++) {
		int st = clean_device(d, i);
		if (d->report && i < DEVMIG_ENGINE_MAX_DEVICES)
			d->report->dst_state[i] = st;
	}
	d->cleaned = true;
	d->touched = false;
}

static void direct_abort(struct peer *p, const char *why)
{
	struct dest *d = to_dest(p);
	(void)why;
	/* The destination devices go back to their power-on state; devices no
	 * step has touched (e.g. refused by the compatibility check) keep theirs. */
	if (!d->touched)
		return;
	dest_cleanup(d);
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
	.data_from = direct_data_from,
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
	d->unanswered = calloc(n ? n : 1, sizeof(*d->unanswered));
	return d->caps && d->unanswered ? 0 : -ENOMEM;
}

void dest_fini(struct dest *d)
{
	free(d->caps);
	free(d->unanswered);
}
