/* SPDX-License-Identifier: MIT */
/*
 * The source half of the migration engine: pre-copy rounds, the stop
 * phase, and the unwind. It talks to the destination only through a peer
 * (engine_internal.h), so a local migration, a two-host one and a
 * checkpoint run the same steps.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devmig/transport.h"
#include "engine_internal.h"

#define DEFAULT_BUDGET_NS (300ull * 1000 * 1000)
#define DEFAULT_ROUNDS 30u
#define DEFAULT_CHUNK (1u << 20)
#define DEFAULT_DEPTH 2u
/* Bytes read from one device per hold of its client: the guest's own
 * commands on that connection wait at most this long (~1-2 ms). */
#define READ_BATCH (2u << 20)
#define MEM_FRAME (1u << 20)
#define DEFAULT_TIMEOUT_MS 30000u

uint64_t engine_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

unsigned engine_timeout_ms(const struct devmig_engine_config *cfg)
{
	return cfg->timeout_ms ? (unsigned)cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
}

void engine_event(const struct devmig_engine_config *cfg, const struct devmig_engine_event *ev)
{
	if (cfg->event)
		cfg->event(cfg->opaque, ev);
}

struct src_dev {
	struct devmig_client *c;
	uint64_t caps;
	enum devmig_state state;
	bool stopped;         /* found stopped (an interrupted migration): never run again here */
	bool unreachable;     /* it did not answer in time, or the unwind could not reach it */
	bool precopy;         /* this device is pre-copied */
	bool initial_done;    /* its initial data has all been read and sent */
	bool logging;         /* DMA logging started on it */
	bool progress;        /* the precopy_info extension is there */
	struct devmig_compat_info compat; /* version "" when the server does not say */
	struct devmig_pci_identity id;    /* from config space, for a peer without compat */
	bool id_known;
	uint64_t initial, dirty, stop_copy;
};

struct engine {
	struct devmig_engine_config cfg;
	struct src_dev *d;
	unsigned n;
	struct devmig_guest_mem *mem;
	struct peer *peer;
	struct devmig_migration_report *rep;
	uint64_t t0, t_pause;
	bool paused;
	uint64_t *bitmap;     /* guest pages to send */
	size_t words;
	uint64_t mem_dirty_last; /* dirty guest bytes found by the last pass */
	bool mem_sent;        /* a whole first pass of guest memory went out */
	unsigned cur_dev;     /* for the data sink */
	char why[400];
};

static int fail(struct engine *e, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct engine *e, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->rep->error, sizeof(e->rep->error), fmt, ap);
	va_end(ap);
	return rc < 0 ? rc : -EIO;
}

static void progress(struct engine *e, enum devmig_engine_event_type type, unsigned round,
		     uint64_t remaining)
{
	uint64_t moved = e->rep->device_bytes + e->rep->guest_bytes;
	uint64_t el = engine_now_ns() - e->t0;
	struct devmig_engine_event ev = {
		.type = type, .round = round, .bytes = moved, .remaining = remaining,
		.rate = el ? moved * 1e9 / el : 0, .elapsed_ns = el,
	};
	engine_event(&e->cfg, &ev);
}

bool engine_unanswered(int rc)
{
	/* A lost connection fails fast and may be reconnected: only a silence costs. */
	return rc == -ETIMEDOUT;
}

/* One state change request on a source device, announced first. */
static int src_set(struct engine *e, unsigned i, enum devmig_state to)
{
	struct devmig_engine_event ev = {
		.type = DEVMIG_EV_ARC, .dev = i, .from = e->d[i].state, .to = to,
	};
	engine_event(&e->cfg, &ev);
	int rc = devmig_client_set_state(e->d[i].c, to);
	if (rc) {
		char reason[DEVMIG_MIG_STATUS_REASON] = "";
		uint64_t b;
		int le;
		/* A device that did not answer in time will not answer these either:
		 * asking would cost a timeout each, before the unwind. */
		if (!engine_unanswered(rc)) {
			devmig_client_mig_status(e->d[i].c, &b, &le, reason, sizeof(reason));
			devmig_client_get_state(e->d[i].c, &e->d[i].state);
		} else {
			e->d[i].unreachable = true;
		}
		return fail(e, rc, "source device %u: %s -> %s refused: %s", i,
			    devmig_state_name(ev.from), devmig_state_name(to),
			    reason[0] ? reason : strerror(-rc));
	}
	e->d[i].state = to;
	return 0;
}

/* ---- device data ---- */

static int forward(void *opaque, const void *data, size_t len)
{
	struct engine *e = opaque;
	char why[256];
	int rc = e->peer->ops->data(e->peer, e->cur_dev, data, len, why, sizeof(why));
	if (rc)
		return fail(e, rc, "%s", why); /* names the device or the channel */
	e->rep->device_bytes += len;
	return 0;
}

/*
 * Device i's data session on a descriptor, moved fd to fd by the peer until
 * its end or temporary end. 1: the device or the peer has no such path.
 */
static int drain_device_fd(struct engine *e, unsigned i)
{
	struct dm_src src = {
		.c = e->d[i].c,
		.precopy = e->d[i].state == DEVMIG_STATE_PRE_COPY ||
			   e->d[i].state == DEVMIG_STATE_PRE_COPY_P2P,
		.timeout_ms = e->cfg.timeout_ms < INT_MAX ? (int)e->cfg.timeout_ms : INT_MAX,
	};
	struct dm_result res;
	char why[300];

	if (!e->peer->ops->data_from || !dm_src_has_session(e->d[i].c))
		return 1;
	struct devmig_precopy_progress pp;
	if (src.precopy && e->d[i].progress && !devmig_client_precopy_progress(e->d[i].c, &pp))
		src.round = pp.initial_bytes + pp.dirty_bytes + 1;
	int rc = e->peer->ops->data_from(e->peer, i, &src, &res, why, sizeof(why));
	e->rep->device_bytes += res.bytes;
	e->rep->device_fd_bytes += res.bytes;
	if (rc == -EOPNOTSUPP && !res.bytes)
		return 1;
	if (rc)
		return fail(e, rc, "source device %u: %s", i, why);
	return res.ended ? 0 : fail(e, -EIO, "source device %u: its data stopped short", i);
}

/*
 * Read device i's stream until a short reply. While the guest runs, in
 * batches, so its own commands on the connection get their turn; once it is
 * paused, in one go, so the reads in flight never drain between batches.
 */
static int drain_device(struct engine *e, unsigned i)
{
	bool ended = false;

	int rc = drain_device_fd(e, i);
	if (rc <= 0)
		return rc;
	e->cur_dev = i;
	while (!ended) {
		ssize_t n = devmig_client_mig_read_stream(e->d[i].c, e->cfg.chunk, e->cfg.read_depth,
							  e->paused ? 0 : READ_BATCH, &ended,
							  forward, e);
		if (n < 0 && e->rep->error[0])
			return (int)n; /* the destination failed the data: said already */
		if (n < 0) {
			e->d[i].unreachable = engine_unanswered((int)n);
			return fail(e, (int)n, "source device %u: reading its state: %s", i,
				    strerror((int)-n));
		}
	}
	return 0;
}

/* ---- guest memory ---- */

static int mem_collect(struct engine *e, bool all)
{
	if (!e->mem)
		return 0;
	if (all) {
		memset(e->bitmap, 0xff, e->words * 8);
	}
	guest_mem_take_dirty(e->mem, e->bitmap);
	uint64_t size = devmig_guest_mem_size(e->mem);
	uint64_t *rep = calloc(e->words, 8);
	if (!rep)
		return fail(e, -ENOMEM, "out of memory for a dirty bitmap");
	for (unsigned i = 0; i < e->n; i++) {
		if (!e->d[i].logging) {
			/* A device that can DMA without a log may have written any page
			 * since the last round: all of memory is dirty, every round. */
			memset(e->bitmap, 0xff, e->words * 8);
			continue;
		}
		int rc = devmig_client_log_report(e->d[i].c, e->cfg.guest_iova, size, GUEST_PAGE, rep);
		if (rc) {
			/* The log is lost: every page must be treated as dirty. */
			e->d[i].logging = false;
			memset(e->bitmap, 0xff, e->words * 8);
			continue;
		}
		for (size_t w = 0; w < e->words; w++)
			e->bitmap[w] |= rep[w];
	}
	free(rep);
	return 0;
}

/* Send every page marked in the bitmap, in runs, and clear it. */
static int mem_send(struct engine *e)
{
	if (!e->mem)
		return 0;
	const uint8_t *base = devmig_guest_mem_ptr(e->mem);
	uint64_t pages = devmig_guest_mem_size(e->mem) / GUEST_PAGE;
	uint64_t sent = 0;

	for (uint64_t p = 0; p < pages;) {
		if (!(e->bitmap[p / 64] & (1ull << (p % 64)))) {
			p++;
			continue;
		}
		uint64_t q = p;
		while (q < pages && (e->bitmap[q / 64] & (1ull << (q % 64))) &&
		       (q - p + 1) * GUEST_PAGE <= MEM_FRAME)
			q++;
		uint64_t off = p * GUEST_PAGE, len = (q - p) * GUEST_PAGE;
		char why[256];
		int rc = e->peer->ops->mem(e->peer, off, base + off, len, why, sizeof(why));
		if (rc)
			return fail(e, rc, "destination refused guest memory: %s", why);
		sent += len;
		p = q;
	}
	memset(e->bitmap, 0, e->words * 8);
	e->rep->guest_bytes += sent;
	e->mem_dirty_last = sent;
	return 0;
}

/* ---- phases ---- */

static void recover_note(struct engine *e, unsigned i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void recover_note(struct engine *e, unsigned i, const char *fmt, ...)
{
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	struct devmig_engine_event ev = { .type = DEVMIG_EV_RECOVER, .dev = i, .why = why };
	engine_event(&e->cfg, &ev);
}

/*
 * A source device an interrupted migration (a killed engine, a lost
 * connection) left mid-way: end that session cleanly so this one can begin.
 * Running ones go back to RUNNING; stopped ones stay stopped and are
 * migrated from STOP (they never run twice).
 */
static int recover_source(struct engine *e, unsigned i)
{
	struct src_dev *d = &e->d[i];
	enum devmig_state was = d->state;

	switch (was) {
	case DEVMIG_STATE_RUNNING:
		return 0;
	case DEVMIG_STATE_PRE_COPY:
	case DEVMIG_STATE_PRE_COPY_P2P:
	case DEVMIG_STATE_RUNNING_P2P:
		recover_note(e, i, "source device %u was %s, left by an interrupted migration: "
				   "its session is ended, back to RUNNING with its state", i,
			     devmig_state_name(was));
		return src_set(e, i, DEVMIG_STATE_RUNNING);
	case DEVMIG_STATE_STOP_COPY:
		recover_note(e, i, "source device %u was STOP_COPY, left by an interrupted "
				   "migration: its save session is ended and it is migrated from "
				   "STOP, never running here again", i);
		d->stopped = true;
		return src_set(e, i, DEVMIG_STATE_STOP);
	case DEVMIG_STATE_STOP:
		recover_note(e, i, "source device %u was STOP, stopped by an interrupted "
				   "migration: it is migrated from there, never running here again", i);
		d->stopped = true;
		return 0;
	case DEVMIG_STATE_RESUMING:
		return fail(e, -EBUSY, "source device %u is RESUMING: it is a destination "
				      "mid-migration, with no state of its own to send ('devmig "
				      "reset' ends that session)", i);
	default:
		return fail(e, -EBUSY, "source device %u is %s: only a reset recovers it ('devmig "
				      "reset'; its state is lost)", i, devmig_state_name(was));
	}
}

static int prepare(struct engine *e)
{
	for (unsigned i = 0; i < e->n; i++) {
		struct src_dev *d = &e->d[i];
		int rc = devmig_client_mig_caps(d->c, &d->caps);
		if (rc)
			return fail(e, rc, "source device %u is not migratable: %s", i, strerror(-rc));
		rc = devmig_client_get_state(d->c, &d->state);
		if (rc)
			return fail(e, rc, "source device %u: its state cannot be read: %s", i,
				    strerror(-rc));
		rc = recover_source(e, i);
		if (rc)
			return rc;
		if (d->stopped)
			e->cfg.no_precopy = true; /* stopped already: stop-and-copy only */
		d->progress = devmig_client_has_ext(d->c, DEVMIG_EXT_PRECOPY_INFO);
		if (devmig_client_compat_info(d->c, &d->compat))
			memset(&d->compat, 0, sizeof(d->compat));
		/* What the destination compares when either side lacks the compat extension. */
		d->id_known = devmig_client_pci_identity(d->c, &d->id) == 0;
		/* Without progress reports only when asked (see precopy_without_progress). */
		d->precopy = !e->cfg.no_precopy && (d->caps & DEVMIG_MIG_PRE_COPY) &&
			     (d->progress || e->cfg.precopy_without_progress);
		devmig_client_stop_copy_size(d->c, &d->stop_copy);
		e->rep->device_state_bytes += d->stop_copy;
		if (e->mem) {
			struct devmig_dma_logging_range r = { e->cfg.guest_iova,
							      devmig_guest_mem_size(e->mem) };
			uint64_t pgsz = GUEST_PAGE;
			d->logging = devmig_client_log_start(d->c, &pgsz, &r, 1) == 0;
			if (d->logging && pgsz != GUEST_PAGE) {
				devmig_client_log_stop(d->c);
				d->logging = false;
			}
		}
	}
	/* A device found stopped stops pre-copy for all: they switch over together. */
	for (unsigned i = 0; i < e->n && e->cfg.no_precopy; i++)
		e->d[i].precopy = false;
	return 0;
}

/* What more pre-copy rounds could still shrink: dirty guest memory and device data. */
static uint64_t reducible_estimate(struct engine *e)
{
	uint64_t left = e->mem ? e->mem_dirty_last : 0;
	for (unsigned i = 0; i < e->n; i++)
		if (e->d[i].precopy && e->d[i].progress)
			left += e->d[i].initial + e->d[i].dirty;
	return left;
}

/* Bytes that would move while the guest is paused, if we stopped now. */
static uint64_t remaining_estimate(struct engine *e)
{
	uint64_t left = reducible_estimate(e);
	for (unsigned i = 0; i < e->n; i++)
		if (!(e->d[i].precopy && e->d[i].progress))
			left += e->d[i].stop_copy;
	return left;
}

/*
 * Ask every pre-copied device once more before the switchover: 1 when one
 * has new initial data (kernel PRECOPY_INFO v2 REINIT), then marked not
 * done; 0 when none; -errno.
 */
static int reinit_pending(struct engine *e)
{
	int found = 0;

	for (unsigned i = 0; i < e->n; i++) {
		struct src_dev *d = &e->d[i];
		struct devmig_precopy_progress pp;
		if (!d->precopy || !d->progress)
			continue;
		int rc = devmig_client_precopy_progress(d->c, &pp);
		if (rc)
			return fail(e, rc, "source device %u: PRE_COPY progress: %s", i, strerror(-rc));
		d->initial = pp.initial_bytes;
		d->dirty = pp.dirty_bytes;
		if (pp.reinit && pp.initial_bytes) {
			d->initial_done = false;
			found = 1;
		}
	}
	return found;
}

static int precopy(struct engine *e)
{
	bool any = false;
	for (unsigned i = 0; i < e->n; i++)
		any |= e->d[i].precopy;
	e->rep->precopy = any; /* "some device was pre-copied"; guest memory may be anyway */
	if (!any && !e->mem)
		return 0;

	for (unsigned i = 0; i < e->n; i++) {
		if (!e->d[i].precopy)
			continue;
		int rc = src_set(e, i, DEVMIG_STATE_PRE_COPY);
		if (rc)
			return rc;
	}
	uint64_t t_start = engine_now_ns(), moved_start = e->rep->device_bytes + e->rep->guest_bytes;
	unsigned extra_rounds = 0, stalled = 0, reinit_rounds = 0;
	uint64_t prev_reducible = UINT64_MAX;
	for (unsigned round = 1;; round++) {
		for (unsigned i = 0; i < e->n; i++) {
			struct src_dev *d = &e->d[i];
			if (!d->precopy)
				continue;
			int rc = drain_device(e, i);
			if (rc)
				return rc;
			if (d->progress) {
				struct devmig_precopy_progress pp;
				rc = devmig_client_precopy_progress(d->c, &pp);
				if (rc)
					return fail(e, rc, "source device %u: PRE_COPY progress: %s", i,
						    strerror(-rc));
				d->initial = pp.initial_bytes;
				d->dirty = pp.dirty_bytes;
				/* New initial data (kernel PRECOPY_INFO v2 REINIT): it must be
				 * read out again before the switchover. */
				if (pp.reinit && d->initial)
					d->initial_done = false;
			} else {
				/* A plain vfio-user server: a short read ends the first pass. */
				d->initial = 0;
				devmig_client_stop_copy_size(d->c, &d->stop_copy);
			}
			if (!d->initial && !d->initial_done) {
				char why[256];
				rc = e->peer->ops->initial_done(e->peer, i, why, sizeof(why));
				if (rc)
					return fail(e, rc, "destination device %u: %s", i, why);
				d->initial_done = true;
			}
		}
		int rc = mem_collect(e, !e->mem_sent);
		if (!rc)
			rc = mem_send(e);
		if (rc)
			return rc;
		e->mem_sent = e->mem != NULL;
		e->rep->rounds = round;

		uint64_t left = remaining_estimate(e);
		uint64_t el = engine_now_ns() - t_start;
		uint64_t moved = e->rep->device_bytes + e->rep->guest_bytes - moved_start;
		double rate = el ? moved * 1e9 / el : 0;
		progress(e, DEVMIG_EV_ROUND, round, left);

		bool initial = true;
		for (unsigned i = 0; i < e->n; i++)
			initial &= !e->d[i].precopy || e->d[i].initial_done;
		if (!initial)
			continue; /* PRE_COPY is left only once its initial data is out */
		/* The first memory pass says nothing about what is dirty now: look again. */
		if (e->mem && round == 1)
			continue;
		uint64_t est_ns = rate > 0 ? (uint64_t)(left / rate * 1e9) : UINT64_MAX;
		bool done = est_ns <= e->cfg.downtime_budget_ns || ++extra_rounds >= e->cfg.max_rounds;
		if (!done) {
			/* Two rounds without shrinking what rounds can shrink: more will not help. */
			uint64_t reducible = reducible_estimate(e);
			stalled = reducible >= prev_reducible ? stalled + 1 : 0;
			prev_reducible = reducible;
			done = stalled >= 2;
		}
		if (!done)
			continue;
		/* New initial data since the last look (REINIT): another round reads
		 * it, as long as rounds are left; after that STOP_COPY carries it. */
		rc = reinit_pending(e);
		if (rc < 0)
			return rc;
		if (!rc || reinit_rounds++ >= e->cfg.max_rounds)
			break;
	}
	/* Switch over only when the destination has accepted the initial data. */
	char why[256];
	int rc = e->peer->ops->sync(e->peer, why, sizeof(why));
	if (rc)
		return fail(e, rc, "destination did not accept the initial data: %s", why);
	return 0;
}

static int stop_and_copy(struct engine *e, bool checkpoint)
{
	uint64_t before = e->rep->device_bytes + e->rep->guest_bytes;

	if (e->cfg.pause_guest && e->cfg.pause_guest(e->cfg.opaque))
		return fail(e, -EIO, "the guest could not be paused");
	e->paused = true;
	e->t_pause = engine_now_ns();
	progress(e, DEVMIG_EV_SWITCHOVER, e->rep->rounds, remaining_estimate(e));

	/* Every device stops initiating P2P DMA before any one stops. */
	for (unsigned i = 0; i < e->n; i++) {
		if (!(e->d[i].caps & DEVMIG_MIG_P2P) || e->d[i].stopped)
			continue;
		int rc = src_set(e, i, e->d[i].state == DEVMIG_STATE_PRE_COPY
					       ? DEVMIG_STATE_PRE_COPY_P2P
					       : DEVMIG_STATE_RUNNING_P2P);
		if (rc)
			return rc;
	}
	for (unsigned i = 0; i < e->n; i++) {
		int rc = src_set(e, i, DEVMIG_STATE_STOP_COPY);
		if (rc)
			return rc;
	}
	for (unsigned i = 0; i < e->n; i++) {
		int rc = drain_device(e, i);
		if (rc)
			return rc;
	}
	/* Every stream is read: end the save sessions (STOP_COPY -> STOP) so the
	 * source holds no buffers, and a stopped source is in one known state. */
	for (unsigned i = 0; i < e->n; i++) {
		int rc = src_set(e, i, DEVMIG_STATE_STOP);
		if (rc)
			return rc;
	}
	/* The devices are stopped: the last dirty guest pages are final. */
	int rc = mem_collect(e, !e->mem_sent);
	if (!rc)
		rc = mem_send(e);
	if (rc)
		return rc;
	e->rep->stop_copy_bytes = e->rep->device_bytes + e->rep->guest_bytes - before;

	char why[300];
	if (checkpoint) {
		rc = e->peer->ops->end(e->peer, why, sizeof(why));
		return rc ? fail(e, rc, "writing the checkpoint: %s", why) : 0;
	}
	rc = e->peer->ops->commit(e->peer, why, sizeof(why));
	if (rc)
		return fail(e, rc, "%s", why);
	rc = e->peer->ops->run(e->peer, why, sizeof(why));
	if (rc)
		return fail(e, rc, "%s", why);
	return 0;
}

static void note(struct engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct engine *e, const char *fmt, ...)
{
	size_t l = strlen(e->rep->error);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->rep->error + l, sizeof(e->rep->error) - l, fmt, ap);
	va_end(ap);
}

static bool connection_lost(int rc)
{
	return rc == -ENOTCONN || rc == -ECONNRESET || rc == -EPIPE || rc == -EPROTO;
}

int engine_probe_state(struct devmig_client *c, bool *reconnected)
{
	enum devmig_state st;
	char err[256];
	int rc = devmig_client_get_state(c, &st);

	if (reconnected)
		*reconnected = false;
	/* A connection lost in the middle of a stream: a new one reaches the same device. */
	if (rc && (devmig_client_broken(c) || connection_lost(rc))) {
		if (devmig_client_reconnect(c, err, sizeof(err)))
			return DEVMIG_STATE_UNKNOWN;
		if (reconnected)
			*reconnected = true;
		rc = devmig_client_get_state(c, &st);
	}
	return rc ? DEVMIG_STATE_UNKNOWN : (int)st;
}

/* Bring one source device back to RUNNING with its state, whatever it went through. */
static void unwind_device(struct engine *e, unsigned i)
{
	struct src_dev *d = &e->d[i];
	bool reconnected;
	/* One that did not answer in time is asked nothing more: each try would
	 * cost the timeout again. */
	int st = d->unreachable ? DEVMIG_STATE_UNKNOWN : engine_probe_state(d->c, &reconnected);

	if (st == DEVMIG_STATE_UNKNOWN) {
		note(e, "; source device %u cannot be reached: its state is unknown", i);
		d->unreachable = true; /* asked no more: each try would cost a timeout */
		return;
	}
	if (reconnected)
		note(e, "; source device %u was reconnected", i);
	if (st == DEVMIG_STATE_ERROR) {
		/* Only a reset recovers, and it loses the device's state: say so. */
		devmig_client_reset(d->c);
		note(e, "; source device %u was in ERROR and had to be reset", i);
		return;
	}
	/* The server walks the table (STOP_COPY->STOP->RUNNING, PRE_COPY->RUNNING);
	 * once more from wherever a failed walk stopped. */
	for (int tries = 0; st != DEVMIG_STATE_RUNNING && st != DEVMIG_STATE_UNKNOWN && tries < 2;
	     tries++) {
		struct devmig_engine_event a = {
			.type = DEVMIG_EV_ARC, .dev = i, .from = (enum devmig_state)st,
			.to = DEVMIG_STATE_RUNNING,
		};
		engine_event(&e->cfg, &a);
		devmig_client_set_state(d->c, DEVMIG_STATE_RUNNING);
		st = engine_probe_state(d->c, NULL);
	}
}

/*
 * Put every source device back to RUNNING with its state; the guest runs on.
 * The source first: a destination that stalls (each call on it costs the
 * timeout) must not hold the guest's resumption; it never ran, so it can be
 * cleaned up after.
 */
static void unwind(struct engine *e)
{
	struct devmig_engine_event ev = { .type = DEVMIG_EV_UNWIND, .why = e->rep->error };
	engine_event(&e->cfg, &ev);
	for (unsigned i = 0; i < e->n; i++)
		unwind_device(e, i);
	if (e->paused && e->cfg.resume_guest)
		e->cfg.resume_guest(e->cfg.opaque, false);
	e->paused = false;
	if (e->peer)
		e->peer->ops->abort(e->peer, e->rep->error);
}

static void stop_logging(struct engine *e)
{
	for (unsigned i = 0; i < e->n; i++)
		if (e->d[i].logging && !e->d[i].unreachable)
			devmig_client_log_stop(e->d[i].c), e->d[i].logging = false;
}

int engine_run(const struct devmig_engine_config *cfg_in, struct devmig_client *const *src,
	       unsigned n, struct devmig_guest_mem *mem, struct peer *peer, bool checkpoint,
	       struct devmig_migration_report *rep)
{
	struct engine e = { .n = n, .mem = mem, .peer = peer, .rep = rep };
	int rc;

	memset(rep, 0, sizeof(*rep));
	rep->devices = n;
	for (unsigned i = 0; i < DEVMIG_ENGINE_MAX_DEVICES; i++)
		rep->src_state[i] = rep->dst_state[i] = DEVMIG_STATE_UNKNOWN;
	e.cfg = *cfg_in;
	if (!e.cfg.downtime_budget_ns)
		e.cfg.downtime_budget_ns = DEFAULT_BUDGET_NS;
	if (!e.cfg.max_rounds)
		e.cfg.max_rounds = DEFAULT_ROUNDS;
	if (!e.cfg.chunk)
		e.cfg.chunk = DEFAULT_CHUNK;
	if (!e.cfg.read_depth)
		e.cfg.read_depth = DEFAULT_DEPTH;
	if (!e.cfg.timeout_ms)
		e.cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
	if (checkpoint)
		e.cfg.no_precopy = true;
	e.t0 = engine_now_ns();
	if (!n || n > DEVMIG_ENGINE_MAX_DEVICES)
		return fail(&e, -EINVAL, "between 1 and %u devices can be migrated, not %u",
			    DEVMIG_ENGINE_MAX_DEVICES, n);
	e.d = calloc(n, sizeof(*e.d));
	if (mem) {
		e.words = guest_mem_bitmap_words(mem);
		e.bitmap = calloc(e.words, 8);
	}
	if (!e.d || (mem && !e.bitmap)) {
		free(e.d);
		return fail(&e, -ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < n; i++)
		e.d[i].c = src[i];

	char why[300];
	rc = prepare(&e);
	if (!rc) {
		struct peer_dev *pd = calloc(n, sizeof(*pd));
		for (unsigned i = 0; pd && i < n; i++) {
			pd[i].compat = e.d[i].compat;
			pd[i].id = e.d[i].id;
			pd[i].id_known = e.d[i].id_known;
		}
		rc = pd ? peer->ops->hello(peer, n, pd, mem ? devmig_guest_mem_size(mem) : 0, why,
					   sizeof(why))
			: -ENOMEM;
		free(pd);
		if (rc)
			rc = fail(&e, rc, "destination not ready: %s", why);
	}
	if (!rc)
		rc = precopy(&e);
	if (!rc)
		rc = stop_and_copy(&e, checkpoint);
	if (!rc || peer->run_unanswered)
		stop_logging(&e); /* after the unwind otherwise: the guest first */
	if (rc && peer->run_unanswered) {
		/* Resuming here could run the guest on both hosts: stay stopped. */
		rep->outcome_unknown = true;
		size_t l = strlen(rep->error);
		snprintf(rep->error + l, sizeof(rep->error) - l,
			 "; the outcome is unknown: the destination may be running, so the source "
			 "devices stay stopped");
	} else if (rc) {
		unwind(&e);
		stop_logging(&e);
	} else if (checkpoint) {
		/* A checkpoint leaves the source running on. The checkpoint is whole
		 * (completed) even if a device then refuses to run: that is an error. */
		for (unsigned i = 0; i < n; i++) {
			int run = devmig_client_set_state(e.d[i].c, DEVMIG_STATE_RUNNING);
			if (run && !rc)
				rc = fail(&e, run, "the checkpoint is complete, but source device %u "
					  "refused to run again: %s", i, strerror(-run));
		}
		if (e.paused && e.cfg.resume_guest)
			e.cfg.resume_guest(e.cfg.opaque, false);
		rep->downtime_ns = engine_now_ns() - e.t_pause;
		rep->completed = true;
	} else {
		if (e.cfg.resume_guest)
			e.cfg.resume_guest(e.cfg.opaque, true);
		rep->downtime_ns = engine_now_ns() - e.t_pause;
		rep->completed = true;
		progress(&e, DEVMIG_EV_DONE, rep->rounds, 0);
	}
	/* Where each source device was left: what the caller reports. */
	for (unsigned i = 0; i < n; i++)
		rep->src_state[i] = e.d[i].unreachable ? DEVMIG_STATE_UNKNOWN
						       : engine_probe_state(e.d[i].c, NULL);
	rep->total_ns = engine_now_ns() - e.t0;
	rep->throughput = rep->total_ns ? (rep->device_bytes + rep->guest_bytes) * 1e9 / rep->total_ns : 0;
	free(e.bitmap);
	free(e.d);
	return rc;
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
	/* Where each destination device was left (its own cleanup read it on a failure). */
	for (unsigned i = 0; i < n && i < DEVMIG_ENGINE_MAX_DEVICES; i++)
		report->dst_state[i] = d.cleaned ? dst_rep.dst_state[i]
						 : engine_probe_state(dst[i], NULL);
	dest_fini(&d);
	return rc;
}

int devmig_migrate_over(const struct devmig_engine_config *cfg,
			struct devmig_client *const *src, unsigned n,
			struct devmig_guest_mem *src_mem, struct devmig_transport *t,
			struct devmig_migration_report *report)
{
	struct peer *p = chan_peer_new(t, true);
	if (!p)
		return -ENOMEM;
	int rc = engine_run(cfg, src, n, src_mem, p, false, report);
	chan_peer_free(p);
	return rc;
}

int devmig_migrate_to_fd(const struct devmig_engine_config *cfg,
			 struct devmig_client *const *src, unsigned n,
			 struct devmig_guest_mem *src_mem, int fd,
			 struct devmig_migration_report *report)
{
	struct devmig_transport *t = devmig_transport_plain(fd, engine_timeout_ms(cfg));
	if (!t)
		return -ENOMEM;
	int rc = devmig_migrate_over(cfg, src, n, src_mem, t, report);
	devmig_transport_free(t);
	return rc;
}

int devmig_save(const struct devmig_engine_config *cfg, struct devmig_client *const *src,
		unsigned n, struct devmig_guest_mem *src_mem, int fd,
		struct devmig_migration_report *report)
{
	struct devmig_transport *t = devmig_transport_plain(fd, 0);
	struct peer *p = t ? chan_peer_new(t, false) : NULL;
	if (!p) {
		devmig_transport_free(t);
		return -ENOMEM;
	}
	int rc = engine_run(cfg, src, n, src_mem, p, true, report);
	chan_peer_free(p);
	devmig_transport_free(t);
	return rc;
}
