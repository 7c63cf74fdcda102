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
/* Switchovers the devices may refuse before the migration is abandoned. */
#define MAX_REFUSALS 3u
/* Dirty-rate caps (QEMU's auto-converge defaults, as a cut of the rate):
 * the first cap is 20% under the rate, each later one 10 points more, up
 * to 99%. */
#define THROTTLE_FIRST_PCT 20u
#define THROTTLE_STEP_PCT 10u
#define THROTTLE_MAX_PCT 99u

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
	bool deadline;        /* the deadline extension is there */
	bool dirty_rate;      /* the dirty_rate extension is there */
	uint64_t stop_ns;     /* its estimate of the path to STOP_COPY, reading it out included */
	uint64_t p2p_ns;      /*   of which the arc into its P2P state */
	uint64_t base_rate;   /* the rate its caps are cut from (0: not yet capped) */
	uint64_t cap;         /* its dirty-rate cap now (0: none) */
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
	bool held;            /* the budget was given: it is held to */
	bool deadlines;       /* the switchover passes the budget as deadlines */
	bool switched;        /* every device reached STOP_COPY and was read out */
	double rate;          /* bytes/s moved in pre-copy */
	unsigned throttle_pct;  /* the cut the caps make now (0: none) */
	uint64_t t_throttle;    /* when the first cap was set */
	uint64_t bytes_at_pause;
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
	if (rc) {
		/* As with a silent reply: the unwind does not wait for it again. */
		e->d[i].unreachable = res.src_silent;
		return fail(e, rc, "source device %u: %s", i, why);
	}
	return res.ended ? 0 : fail(e, -EIO, "source device %u: its data stopped short", i);
}

/*
 * Read device i's stream until a short reply, or, in a pre-copy round,
 * once about `limit` bytes were read (0: no limit): what was due when the
 * round began, so a device dirtied faster than it is read still ends its
 * rounds. While the guest runs, in batches, so its own commands on the
 * connection get their turn; once it is paused, in one go, so the reads in
 * flight never drain between batches.
 */
static int drain_paced(struct engine *e, unsigned i, uint64_t limit);

static int drain_device(struct engine *e, unsigned i, uint64_t limit)
{
	bool ended = false;
	uint64_t got = 0;

	int rc = drain_device_fd(e, i);
	if (rc <= 0)
		return rc;
	e->cur_dev = i;
	if (e->cfg.link_rate)
		return drain_paced(e, i, limit);
	while (!ended && (!limit || got < limit)) {
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
		got += (uint64_t)n;
	}
	return 0;
}

/*
 * Over a slow link (link_rate): one read at a time, each sent (and paced)
 * before the next is asked for, so the client is never held while the
 * link is busy (the guest's own commands on it go on) and the device sees
 * its data read at the link's rate.
 */
static int drain_paced(struct engine *e, unsigned i, uint64_t limit)
{
	uint8_t *buf = malloc(e->cfg.chunk);
	uint64_t got = 0;
	int rc = 0;

	if (!buf)
		return fail(e, -ENOMEM, "out of memory for a read buffer");
	while (!limit || got < limit) {
		ssize_t n = devmig_client_mig_read(e->d[i].c, buf, e->cfg.chunk);
		if (n < 0) {
			rc = fail(e, (int)n, "source device %u: reading its state: %s", i,
				  strerror((int)-n));
			break;
		}
		if (n && (rc = forward(e, buf, (size_t)n)))
			break;
		if ((size_t)n < e->cfg.chunk)
			break;
		got += (uint64_t)n;
	}
	free(buf);
	return rc;
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
		d->deadline = devmig_client_has_ext(d->c, DEVMIG_EXT_DEADLINE);
		d->dirty_rate = devmig_client_has_ext(d->c, DEVMIG_EXT_DIRTY_RATE);
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


/* ---- planning the stop phase with the devices' estimates ---- */

/* The state a device enters first at the switchover (P2P), or its own. */
static enum devmig_state p2p_state(const struct src_dev *d)
{
	if (!(d->caps & DEVMIG_MIG_P2P) || d->stopped)
		return d->state;
	return d->state == DEVMIG_STATE_PRE_COPY ? DEVMIG_STATE_PRE_COPY_P2P
						 : DEVMIG_STATE_RUNNING_P2P;
}

/* Guest memory's last pass at the rate pre-copy moved data. */
static uint64_t mem_estimate_ns(const struct engine *e)
{
	if (!e->mem || !e->mem_dirty_last || e->rate <= 0)
		return 0; /* nothing measured yet (stop-and-copy): as the devices do, left out */
	return (uint64_t)(e->mem_dirty_last / e->rate * 1e9);
}

/* What the destination's commit and run may take, which the source cannot ask. */
static uint64_t dest_reserve_ns(const struct engine *e)
{
	return e->cfg.downtime_budget_ns / 10;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

/*
 * Each device's estimate of its stop (its P2P arc, its arc into STOP_COPY
 * and reading its stream out), from its arc estimates; a part it cannot
 * estimate yet (no transfer rate) at the rate pre-copy moved data, if any
 * (stop-and-copy measured none: the deadlines then hold the fixed costs
 * only, as the devices' own estimates do). The
 * whole stop phase: every device's, guest memory's last pass, and the
 * destination's reserve.
 */
static int stop_plan(struct engine *e, uint64_t *total)
{
	uint64_t sum = add_sat(mem_estimate_ns(e), dest_reserve_ns(e));

	for (unsigned i = 0; i < e->n; i++) {
		struct src_dev *d = &e->d[i];
		struct devmig_feature_arc_estimates est;
		bool pa = false, pb = false;
		uint64_t a = 0, b = 0;
		int rc = devmig_client_arc_estimates(d->c, &est);
		if (rc)
			return fail(e, rc, "source device %u: its arc estimates: %s", i, strerror(-rc));
		enum devmig_state mid = p2p_state(d);
		if (devmig_arc_estimates_path(&est, d->state, mid, d->caps, &a, &pa) ||
		    devmig_arc_estimates_path(&est, mid, DEVMIG_STATE_STOP_COPY, d->caps, &b, &pb))
			return fail(e, -EINVAL, "source device %u: no path from %s to STOP_COPY", i,
				    devmig_state_name(d->state));
		if (pb && e->rate > 0) /* its data at our rate; none measured (no pre-copy): left out */
			b = add_sat(b, (uint64_t)(est.stop_copy_bytes / e->rate * 1e9));
		d->p2p_ns = a;
		d->stop_ns = add_sat(a, b);
		sum = add_sat(sum, d->stop_ns);
	}
	*total = sum;
	return 0;
}

/* ---- dirty-rate caps ---- */

static void throttle_event(struct engine *e, unsigned i, uint64_t cap)
{
	struct devmig_engine_event ev = { .type = DEVMIG_EV_THROTTLE, .dev = i, .cap = cap };
	engine_event(&e->cfg, &ev);
}

/*
 * Rounds stopped shrinking: cap the pre-copied devices' dirty rate, or cap
 * it lower. Each device's cap is cut from the smaller of the rate it
 * measures and the rate pre-copy moves data (a device dirtying faster than
 * the link can never converge). False when no cap could be set or lowered.
 */
static bool throttle_step(struct engine *e)
{
	if (e->cfg.no_throttle || e->throttle_pct >= THROTTLE_MAX_PCT)
		return false;
	unsigned pct = e->throttle_pct ? e->throttle_pct + THROTTLE_STEP_PCT : THROTTLE_FIRST_PCT;
	if (pct > THROTTLE_MAX_PCT)
		pct = THROTTLE_MAX_PCT;
	bool any = false;
	for (unsigned i = 0; i < e->n; i++) {
		struct src_dev *d = &e->d[i];
		if (!d->precopy || !d->dirty_rate)
			continue;
		if (!d->base_rate) {
			struct devmig_feature_dirty_rate dr;
			if (devmig_client_dirty_rate(d->c, &dr))
				continue;
			d->base_rate = dr.measured;
			if (e->rate > 0 && (double)d->base_rate > e->rate)
				d->base_rate = (uint64_t)e->rate;
			if (!d->base_rate)
				continue; /* its state does not change: nothing to cap */
		}
		uint64_t cap = d->base_rate / 100 * (100 - pct);
		if (!cap)
			cap = 1;
		if (devmig_client_set_dirty_rate(d->c, cap))
			continue;
		d->cap = cap;
		any = true;
		if (!e->rep->throttle_cap || cap < e->rep->throttle_cap)
			e->rep->throttle_cap = cap;
		throttle_event(e, i, cap);
	}
	if (!any)
		return false;
	e->throttle_pct = pct;
	e->rep->throttle_steps++;
	if (!e->t_throttle)
		e->t_throttle = engine_now_ns();
	return true;
}

/* Could a cap be set or lowered (throttle_step)? */
static bool throttle_possible(const struct engine *e)
{
	if (e->cfg.no_throttle || e->throttle_pct >= THROTTLE_MAX_PCT)
		return false;
	for (unsigned i = 0; i < e->n; i++)
		if (e->d[i].precopy && e->d[i].dirty_rate)
			return true;
	return false;
}

/* The caps stopped mattering (at the switchover, or the migration ended). */
static void throttle_over(struct engine *e, uint64_t when)
{
	if (e->t_throttle && !e->rep->throttle_ns)
		e->rep->throttle_ns = when > e->t_throttle ? when - e->t_throttle : 0;
}

/* Lift every cap set (success or not: the guest must not stay slowed). */
static void throttle_lift(struct engine *e)
{
	throttle_over(e, engine_now_ns());
	for (unsigned i = 0; i < e->n; i++) {
		struct src_dev *d = &e->d[i];
		if (!d->cap)
			continue;
		devmig_client_set_dirty_rate(d->c, 0);
		d->cap = 0;
		throttle_event(e, i, 0);
	}
}

/* ---- the switchover ---- */

/*
 * Device i to state `to`, with a deadline when the devices take them: what
 * is left of the budget less what must still follow (reserve). 1 when the
 * device refused (ETIME): nothing started, the state is unchanged.
 */
static int stop_set(struct engine *e, unsigned i, enum devmig_state to, uint64_t reserve)
{
	struct src_dev *d = &e->d[i];

	if (!e->deadlines)
		return src_set(e, i, to);
	uint64_t used = engine_now_ns() - e->t_pause, budget = e->cfg.downtime_budget_ns;
	uint64_t left = budget > used ? budget - used : 0;
	uint64_t deadline = left > reserve ? left - reserve : 0;
	struct devmig_engine_event ev = {
		.type = DEVMIG_EV_ARC, .dev = i, .from = d->state, .to = to,
		.deadline_ns = deadline,
	};
	engine_event(&e->cfg, &ev);
	struct devmig_deadline_result res;
	int rc = devmig_client_set_state_deadline(d->c, to, deadline, &res);
	if (rc == -ETIME && res.state == d->state) {
		e->rep->deadline_refusals++;
		e->rep->refusal_estimate_ns = res.estimate_ns;
		e->rep->refusal_deadline_ns = deadline;
		struct devmig_engine_event r = {
			.type = DEVMIG_EV_REFUSED, .dev = i, .from = d->state, .to = to,
			.estimate_ns = res.estimate_ns, .deadline_ns = deadline,
		};
		engine_event(&e->cfg, &r);
		return 1;
	}
	if (rc) {
		char reason[DEVMIG_MIG_STATUS_REASON] = "";
		uint64_t b;
		int le;
		/* As src_set: one that did not answer in time is asked nothing more. */
		if (!engine_unanswered(rc)) {
			devmig_client_mig_status(d->c, &b, &le, reason, sizeof(reason));
			devmig_client_get_state(d->c, &d->state);
		} else {
			d->unreachable = true;
		}
		return fail(e, rc, "source device %u: %s -> %s refused: %s", i,
			    devmig_state_name(ev.from), devmig_state_name(to),
			    reason[0] ? reason : strerror(-rc));
	}
	if (res.overrun_ns > e->rep->overrun_ns)
		e->rep->overrun_ns = res.overrun_ns;
	d->state = to;
	return 0;
}

/* A refused switchover: the devices that moved go back to pre-copy, the guest runs on. */
static int back_out(struct engine *e)
{
	for (unsigned i = 0; i < e->n; i++) {
		struct src_dev *d = &e->d[i];
		enum devmig_state back = d->state == DEVMIG_STATE_PRE_COPY_P2P ? DEVMIG_STATE_PRE_COPY
					 : d->state == DEVMIG_STATE_RUNNING_P2P ? DEVMIG_STATE_RUNNING
										 : d->state;
		if (back != d->state) {
			int rc = src_set(e, i, back);
			if (rc)
				return rc;
		}
	}
	if (e->cfg.resume_guest)
		e->cfg.resume_guest(e->cfg.opaque, false);
	e->paused = false;
	return 0;
}

/* What a device's refusal leaves: the reason, for when no retry is left. */
static int refused(struct engine *e)
{
	return fail(e, -ETIME, "the devices refused the downtime budget of %.1f ms %u time%s: the "
		    "last needed about %.1f ms with %.1f ms left; the guest runs on at the source",
		    e->cfg.downtime_budget_ns / 1e6, e->rep->deadline_refusals,
		    e->rep->deadline_refusals == 1 ? "" : "s", e->rep->refusal_estimate_ns / 1e6,
		    e->rep->refusal_deadline_ns / 1e6);
}

/*
 * Pause the guest, every device to its P2P state, then each to STOP_COPY
 * and its stream read out, within the budget when the devices take
 * deadlines. 0: stopped; 1: a device refused before any stream was read
 * (the devices are back in pre-copy and the guest runs on); -errno.
 */
static int switchover(struct engine *e)
{
	if (e->deadlines) {
		uint64_t total;
		int rc = stop_plan(e, &total); /* fresh estimates for the deadlines */
		if (rc)
			return rc;
	}
	if (e->cfg.pause_guest && e->cfg.pause_guest(e->cfg.opaque))
		return fail(e, -EIO, "the guest could not be paused");
	e->paused = true;
	e->t_pause = engine_now_ns();
	e->bytes_at_pause = e->rep->device_bytes + e->rep->guest_bytes;
	progress(e, DEVMIG_EV_SWITCHOVER, e->rep->rounds, remaining_estimate(e));

	/* What follows every device's part: guest memory, the destination. */
	uint64_t tail = add_sat(mem_estimate_ns(e), dest_reserve_ns(e)), stops = 0;
	for (unsigned i = 0; i < e->n; i++)
		stops = add_sat(stops, e->d[i].stop_ns - e->d[i].p2p_ns);
	/*
	 * Every device stops initiating P2P DMA before any one stops. These
	 * arcs are undone if a later one is refused: each is held to the
	 * budget less the P2P arcs still to come only. An arc into STOP_COPY
	 * cannot be undone: it is held to what is left of the budget less what
	 * must follow it (the later devices' stops, guest memory's last pass,
	 * the destination's reserve), so the first device's answer is the
	 * whole plan's.
	 */
	uint64_t p2p_after = 0;
	for (unsigned i = 0; i < e->n; i++)
		p2p_after = add_sat(p2p_after, e->d[i].p2p_ns);
	for (unsigned i = 0; i < e->n; i++) {
		if (!(e->d[i].caps & DEVMIG_MIG_P2P) || e->d[i].stopped)
			continue;
		p2p_after -= e->d[i].p2p_ns;
		int rc = stop_set(e, i, p2p_state(&e->d[i]), p2p_after);
		if (rc > 0)
			rc = back_out(e) ? : 1;
		if (rc)
			return rc;
	}
	/* Each device in turn: its deadline covers its arc and reading it out. */
	for (unsigned i = 0; i < e->n; i++) {
		stops -= e->d[i].stop_ns - e->d[i].p2p_ns;
		int rc = stop_set(e, i, DEVMIG_STATE_STOP_COPY, add_sat(stops, tail));
		if (rc > 0 && i == 0)
			return back_out(e) ? : 1;
		if (rc > 0)
			return refused(e); /* device 0's stream is gone: no way back but the unwind */
		if (rc)
			return rc;
		rc = drain_device(e, i, 0);
		if (rc)
			return rc;
	}
	e->switched = true;
	throttle_over(e, e->t_pause);
	return 0;
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
		/* What the first round is to read. */
		struct devmig_precopy_progress pp;
		if (e->d[i].progress && !devmig_client_precopy_progress(e->d[i].c, &pp)) {
			e->d[i].initial = pp.initial_bytes;
			e->d[i].dirty = pp.dirty_bytes;
		}
	}
	uint64_t t_start = engine_now_ns(), moved_start = e->rep->device_bytes + e->rep->guest_bytes;
	unsigned extra_rounds = 0, stalled = 0, reinit_rounds = 0, dirty_high = 0;
	uint64_t prev_reducible = UINT64_MAX, moved_prev = moved_start;
	for (unsigned round = 1;; round++) {
		for (unsigned i = 0; i < e->n; i++) {
			struct src_dev *d = &e->d[i];
			if (!d->precopy)
				continue;
			/* What was due as the round began, with room for the framing. */
			uint64_t due = d->initial + d->dirty, limit = 0;
			if (d->progress)
				limit = due + due / 16 + e->cfg.chunk;
			int rc = drain_device(e, i, limit);
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
		e->rate = rate;
		progress(e, DEVMIG_EV_ROUND, round, left);

		bool initial = true;
		for (unsigned i = 0; i < e->n; i++)
			initial &= !e->d[i].precopy || e->d[i].initial_done;
		if (!initial)
			continue; /* PRE_COPY is left only once its initial data is out */
		/* The first memory pass says nothing about what is dirty now: look again. */
		if (e->mem && round == 1)
			continue;
		/* The stop's estimate: the devices' own when they take deadlines. */
		uint64_t est_ns = rate > 0 ? (uint64_t)(left / rate * 1e9) : UINT64_MAX;
		if (e->deadlines && (rc = stop_plan(e, &est_ns)))
			return rc;
		bool fits = est_ns <= e->cfg.downtime_budget_ns;
		bool limit = ++extra_rounds >= e->cfg.max_rounds;
		bool done = fits || limit;
		uint64_t moved_now = e->rep->device_bytes + e->rep->guest_bytes;
		uint64_t moved_round = moved_now - moved_prev;
		moved_prev = moved_now;
		if (!done) {
			/* QEMU's auto-converge rule, for devices: two rounds in a row
			 * that leave dirty more than half of what they moved cap the
			 * devices' dirty rate, or cap it lower. Two rounds without
			 * shrinking what rounds can shrink, and no cap left to lower:
			 * more will not help. */
			uint64_t reducible = reducible_estimate(e);
			stalled = reducible >= prev_reducible ? stalled + 1 : 0;
			prev_reducible = reducible;
			dirty_high = reducible > moved_round / 2 ? dirty_high + 1 : 0;
			if (dirty_high >= 2 && throttle_step(e))
				dirty_high = stalled = 0;
			/* Held to a budget, rounds that dirty more than half of what
			 * they move are as hopeless. */
			done = (stalled >= 2 || (e->held && dirty_high >= 2)) && !throttle_possible(e);
		}
		if (!done)
			continue;
		/* New initial data since the last look (REINIT): another round reads
		 * it, as long as rounds are left; after that STOP_COPY carries it. */
		rc = reinit_pending(e);
		if (rc < 0)
			return rc;
		if (rc && reinit_rounds++ < e->cfg.max_rounds)
			continue;
		/* Switch over only when the destination has accepted the initial data. */
		char why[256];
		rc = e->peer->ops->sync(e->peer, why, sizeof(why));
		if (rc)
			return fail(e, rc, "destination did not accept the initial data: %s", why);
		e->rep->converged = fits;
		rc = switchover(e);
		if (rc <= 0)
			return rc;
		/* Refused: the guest runs on; more rounds (and a lower cap) and again,
		 * unless nothing can change: rounds had stopped shrinking and no cap
		 * is left to lower. */
		if (limit || e->rep->deadline_refusals >= MAX_REFUSALS ||
		    (!fits && !throttle_possible(e)))
			return refused(e);
		throttle_step(e);
		stalled = dirty_high = 0;
		prev_reducible = UINT64_MAX;
	}
}

static int stop_and_copy(struct engine *e, bool checkpoint)
{
	if (!e->switched) {
		/* No pre-copy: one try; a refusal has no rounds to wait for. */
		int rc = switchover(e);
		if (rc > 0)
			return refused(e);
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
	e->rep->stop_copy_bytes = e->rep->device_bytes + e->rep->guest_bytes - e->bytes_at_pause;

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
	/* A budget given is held to (deadlines, caps); the default is only aimed at. */
	bool held = e.held = e.cfg.downtime_budget_ns != 0;
	if (!held) {
		e.cfg.downtime_budget_ns = DEFAULT_BUDGET_NS;
		e.cfg.no_deadline = e.cfg.no_throttle = true;
	}
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
	rep->budget_ns = e.cfg.downtime_budget_ns;
	/* The link cap paces everything sent to the destination. */
	struct peer *inner = peer;
	if (e.cfg.link_rate && !(peer = e.peer = pace_peer_new(inner, e.cfg.link_rate))) {
		free(e.bitmap);
		free(e.d);
		return fail(&e, -ENOMEM, "out of memory");
	}
	rc = prepare(&e);
	if (!rc) {
		/* Deadlines when every device takes them (a checkpoint has no downtime). */
		e.deadlines = !checkpoint && !e.cfg.no_deadline;
		for (unsigned i = 0; i < n; i++)
			e.deadlines &= e.d[i].deadline;
		rep->deadlines = e.deadlines;
	}
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
	if (!rc || inner->run_unanswered)
		stop_logging(&e); /* after the unwind otherwise: the guest first */
	if (rc && inner->run_unanswered) {
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
	/* Caps go whatever happened: the source (or its guest, unwound) runs on. */
	throttle_lift(&e);
	rep->budget_met = rep->completed && !checkpoint && rep->downtime_ns <= rep->budget_ns;
	/* Where each source device was left: what the caller reports. */
	for (unsigned i = 0; i < n; i++)
		rep->src_state[i] = e.d[i].unreachable ? DEVMIG_STATE_UNKNOWN
						       : engine_probe_state(e.d[i].c, NULL);
	rep->total_ns = engine_now_ns() - e.t0;
	rep->throughput = rep->total_ns ? (rep->device_bytes + rep->guest_bytes) * 1e9 / rep->total_ns : 0;
	if (peer != inner)
		pace_peer_free(peer);
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
