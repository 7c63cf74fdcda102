/* SPDX-License-Identifier: MIT */
/*
 * Acceptance tests of the migration engine (include/devmig/engine.h).
 *
 * memblk devices are served in-process on sockets in a temporary directory,
 * one client (the VMM's) per device. Guest memory is devmig_guest_mem on
 * each side, DMA-mapped at IOVA 0; MSI-X vector 0 is an eventfd per side.
 * A guest workload thread drives each device with the memblk guest driver,
 * one request at a time: WRITEs of pattern data keyed by (device, lba,
 * version), recorded as acknowledged once complete, and READs checked
 * against that record. It reports its own CPU writes to guest memory to the
 * engine. pause_guest parks it between requests; resume_guest moves it to
 * the destination (or lets it go on at the source).
 *
 * Faults are injected from the engine's event callback (destination
 * servers killed at chosen points, the channel socket shut down), by a
 * proxy thread between the two halves of a two-host migration (one byte
 * flipped, the connection dropped after N bytes), and by damaging a
 * checkpoint file.
 *
 * No sleeps: every wait is on a condition with a timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "channel.h" /* the channel's framing, for the proxy that damages it */
#include "devices.h"
#include "devmig/client.h"
#include "devmig/engine.h"
#include "devmig/server.h"
#include "devmig/transport.h"
#include "fixture.h"
#include "memblk/memblk_guest.h"

#define TMO 10000              /* ms: for anything that should take far less */
#define DEV_ARGS "size=16M"
#define MEM_SIZE (4u << 20)    /* guest memory on each side */
#define MAXDEV 2
#define NLBA 512u              /* blocks the workload uses per device (2 MiB) */
#define MAXNB 4u               /* blocks per workload request */
#define QSIZE 16u
#define AREA(k) ((uint64_t)(k) << 20) /* each device's 1 MiB of guest memory */
#define SQ_OFF 0x0u
#define CQ_OFF 0x1000u
#define WBUF_OFF 0x2000u       /* workload WRITE buffer: MAXNB blocks */
#define RBUF_OFF 0x6000u       /* workload READ buffer: MAXNB blocks */
#define VBUF_OFF 0x10000u      /* verification buffer: VBLK blocks */
#define VBLK 64u
#define PAT_OFF (2u << 20)     /* 2..4 MiB: guest data nobody touches */
#define NREGS (MB_REG_COMPLETED / 4 + 1)
#define MAXEV 2048

static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

/* ---------------------------------------------------------------- patterns */

/* Block contents of (device tag, lba, version); version 0 is all zeros. */
static void fill_block(uint8_t *p, unsigned tag, uint64_t lba, uint32_t ver)
{
	if (!ver) {
		memset(p, 0, MB_BLOCK_SIZE);
		return;
	}
	uint64_t s = (uint64_t)(tag + 1) << 56 ^ lba * 0x100000001b3ull ^ (uint64_t)ver << 24;
	for (size_t i = 0; i < MB_BLOCK_SIZE; i += 8) {
		uint64_t v = fx_rnd(&s);
		memcpy(p + i, &v, 8);
	}
}

static bool block_is(const uint8_t *p, unsigned tag, uint64_t lba, uint32_t ver)
{
	uint8_t want[MB_BLOCK_SIZE];
	fill_block(want, tag, lba, ver);
	return !memcmp(p, want, MB_BLOCK_SIZE);
}

/* ---------------------------------------------------------------- hosts */

/* One device on one side: the device served (its server NULL once killed),
 * the VMM's client. */
struct side {
	struct fx_server fx;
	struct devmig_client *cl;
	int efd;
};

/* One side of a migration: its devices and its guest memory. */
struct host {
	unsigned n;
	struct side s[MAXDEV];
	struct devmig_guest_mem *mem;
	bool open;
};

/* ---------------------------------------------------------------- the workload */

struct wdev {
	struct mbg g;
	uint32_t ver[NLBA]; /* acknowledged version of every block */
};

struct workload {
	pthread_t th;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool stop, pause_req, paused, on_dst;
	unsigned n;
	struct wdev d[MAXDEV];
	struct devmig_guest_mem *mem; /* where the guest runs now */
	uint64_t seed;
	uint32_t next_ver;
	uint64_t ops_src, ops_dst, writes, reads, mismatches, errors;
	char problem[256];
};

/* ---------------------------------------------------------------- two-host helpers */

struct rx {
	pthread_t th;
	bool started;
	int listen_fd, fd;
	struct devmig_engine_config cfg;
	struct host *h;
	int rc;
	struct devmig_migration_report rep;
};

struct proxy {
	pthread_t th;
	bool started;
	int a, b;              /* a: towards the source, b: towards the receiver */
	uint64_t flip_at;      /* flip the first payload byte of DEV_DATA/MEM at or after */
	bool flip_raw;         /* ... of DEV_DATA_RAW instead */
	uint64_t drop_after;   /* forward this many bytes, then drop both sides */
	uint64_t fwd;          /* source -> receiver bytes forwarded */
	bool cut_after_run;    /* once RUN went forward, drop every answer and both sides */
	bool saw_run;
	bool flipped, dropped;
	/* the forward stream's framing */
	int st;                /* 0 magic, 1 header, 2 payload+trailer */
	size_t need;
	uint8_t hdr[DEVMIG_CHAN_HDR];
	size_t hl;
	uint32_t ftype;
	uint64_t body_left, trailer_left;
};

/* ---------------------------------------------------------------- the fixture */

enum inject {
	INJ_NONE,
	INJ_KILL_AT_ROUND,      /* kill the destination at the first ROUND event */
	INJ_KILL_AT_STOP_COPY,  /* ... at the source arc to STOP_COPY */
	INJ_KILL_AT_COMMIT,     /* ... at the destination arc RESUMING -> STOP */
	INJ_SHUT_AT_STOP_COPY,  /* shutdown(shut_fd) at the source arc to STOP_COPY */
};

struct ev {
	enum devmig_engine_event_type type;
	unsigned dev, round;
	bool destination;
	enum devmig_state from, to;
};

struct fx {
	char dir[FX_PATH_MAX];
	unsigned n;
	unsigned ndst;           /* destinations opened so far (socket names) */
	struct host src, dst, old_dst;
	struct workload w;

	pthread_mutex_t ev_lock;
	struct ev evs[MAXEV];
	unsigned nev;
	unsigned rounds_seen, switchovers, unwinds, dones;
	char unwind_why[512];

	enum inject inject;
	bool injected;
	int shut_fd;
	/* Clients without the data_fd extension: 1 the source's, 2 the destination's. */
	unsigned no_data_fd;
	bool flip_raw;           /* the proxy flips device data in DEV_DATA_RAW frames */
	unsigned hold_ops_at_round1; /* let the guest do this many requests after round 1 */
	bool held;

	unsigned pauses, resumes;
	bool resumed_on_dst;
	int switch_mem_diff;     /* -1: equal at the switch; else first differing page */

	bool snap;               /* snapshot the guest at pause (checkpoint tests) */
	bool snapped;
	uint32_t snap_ver[MAXDEV][NLBA];
	uint32_t snap_regs[MAXDEV][NREGS];
	uint8_t *snap_mem;

	struct rx rx;
	struct proxy px;
	int fds[8];
	unsigned nfds;
	char ckpt[128];
};


static void wl_lock(struct workload *w)
{
	pthread_mutex_lock(&w->lock);
}

static void wl_unlock(struct workload *w)
{
	pthread_mutex_unlock(&w->lock);
}

static void side_open(struct fx *f, struct host *h, unsigned i, const char *name,
		      const struct devmig_variant *var, const char *args)
{
	struct side *s = &h->s[i];
	char sock[32];

	memset(s, 0, sizeof(*s));
	s->efd = -1;
	snprintf(sock, sizeof(sock), "%s-%u", name, i);
	fx_serve_variant(&s->fx, f->dir, sock, var, args);
	struct devmig_client_config cc = { .ext = DEVMIG_EXT_ALL };
	if (f->no_data_fd & (strcmp(name, "src") ? 2u : 1u))
		cc.ext &= ~DEVMIG_EXT_DATA_FD;
	s->cl = fx_connect(&s->fx, &cc);
	if (var != &devmig_variant_memblk)
		return;
	assert_int_equal(devmig_client_dma_map(s->cl, 0, MEM_SIZE,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
					       devmig_guest_mem_fd(h->mem), 0, NULL), 0);
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(s->efd >= 0);
	assert_int_equal(mbg_client_enable_msix(s->cl, s->efd), 0);
}

static void host_open(struct fx *f, struct host *h, const char *name, unsigned n,
		      const struct devmig_variant *var, const char *args)
{
	char err[256] = "";

	memset(h, 0, sizeof(*h));
	for (unsigned i = 0; i < MAXDEV; i++)
		h->s[i].efd = -1;
	h->mem = devmig_guest_mem_new(MEM_SIZE, err, sizeof(err));
	if (!h->mem)
		fail_msg("guest memory: %s", err);
	h->open = true;
	h->n = n;
	for (unsigned i = 0; i < n; i++)
		side_open(f, h, i, name, var, args);
}

/* The destination dies: its servers stop and close the VMM's connections. */
static void host_kill(struct host *h)
{
	for (unsigned i = 0; i < h->n; i++)
		fx_kill(&h->s[i].fx);
}

static void host_close(struct host *h)
{
	if (!h->open)
		return;
	for (unsigned i = 0; i < h->n; i++) {
		struct side *s = &h->s[i];
		if (s->cl)
			devmig_client_close(s->cl);
		fx_unserve(&s->fx);
		if (s->efd >= 0)
			close(s->efd);
	}
	devmig_guest_mem_free(h->mem);
	memset(h, 0, sizeof(*h));
}

static void clients_of(struct host *h, struct devmig_client **c)
{
	for (unsigned i = 0; i < h->n; i++)
		c[i] = h->s[i].cl;
}

/* A fresh destination of n devices of var; the previous one is kept for the end. */
static void dst_open(struct fx *f, const struct devmig_variant *var, const char *args)
{
	char name[16];
	if (f->dst.open) {
		host_close(&f->old_dst);
		f->old_dst = f->dst;
		memset(&f->dst, 0, sizeof(f->dst));
	}
	snprintf(name, sizeof(name), "dst%u", f->ndst++);
	host_open(f, &f->dst, name, f->n, var, args);
}

static uint8_t *mem_of(struct host *h)
{
	return devmig_guest_mem_ptr(h->mem);
}

/* ---------------------------------------------------------------- workload thread */

/* One request on device k. Called without the lock; only this thread runs the driver. */
static void wl_one(struct workload *w, struct devmig_guest_mem *mem, unsigned k)
{
	struct wdev *d = &w->d[k];
	uint8_t *base = devmig_guest_mem_ptr(mem);
	uint32_t nb = 1 + (uint32_t)(fx_rnd(&w->seed) % MAXNB);
	uint64_t lba = fx_rnd(&w->seed) % (NLBA - nb + 1);
	bool write = fx_rnd(&w->seed) % 8 < 5;
	int rc;

	if (write) {
		uint32_t v = ++w->next_ver;
		for (uint32_t i = 0; i < nb; i++)
			fill_block(base + AREA(k) + WBUF_OFF + i * MB_BLOCK_SIZE, k, lba + i, v);
		devmig_guest_mem_mark_dirty(mem, AREA(k) + WBUF_OFF, nb * MB_BLOCK_SIZE);
		rc = mbg_write(&d->g, lba, nb, AREA(k) + WBUF_OFF, TMO);
		devmig_guest_mem_mark_dirty(mem, AREA(k) + SQ_OFF, QSIZE * MB_SQE_SIZE);
		wl_lock(w);
		w->writes++;
		if (rc == MB_SC_OK) {
			for (uint32_t i = 0; i < nb; i++)
				d->ver[lba + i] = v;
		} else if (!w->errors++) {
			snprintf(w->problem, sizeof(w->problem), "dev %u: WRITE lba %llu+%u: %d", k,
				 (unsigned long long)lba, nb, rc);
		}
		wl_unlock(w);
		return;
	}
	rc = mbg_read(&d->g, lba, nb, AREA(k) + RBUF_OFF, TMO);
	devmig_guest_mem_mark_dirty(mem, AREA(k) + SQ_OFF, QSIZE * MB_SQE_SIZE);
	wl_lock(w);
	w->reads++;
	if (rc != MB_SC_OK) {
		if (!w->errors++)
			snprintf(w->problem, sizeof(w->problem), "dev %u: READ lba %llu+%u: %d", k,
				 (unsigned long long)lba, nb, rc);
	} else {
		for (uint32_t i = 0; i < nb; i++) {
			const uint8_t *p = base + AREA(k) + RBUF_OFF + i * MB_BLOCK_SIZE;
			if (!block_is(p, k, lba + i, d->ver[lba + i]) && !w->mismatches++)
				snprintf(w->problem, sizeof(w->problem),
					 "dev %u: READ of lba %llu is not version %u (on %s)", k,
					 (unsigned long long)(lba + i), d->ver[lba + i],
					 w->on_dst ? "destination" : "source");
		}
	}
	wl_unlock(w);
}

static void *wl_main(void *arg)
{
	struct workload *w = arg;

	wl_lock(w);
	for (;;) {
		while (w->pause_req && !w->stop) {
			if (!w->paused) {
				w->paused = true;
				pthread_cond_broadcast(&w->cv);
			}
			pthread_cond_wait(&w->cv, &w->lock);
		}
		w->paused = false;
		if (w->stop)
			break;
		struct devmig_guest_mem *mem = w->mem;
		unsigned k = (unsigned)(fx_rnd(&w->seed) % w->n);
		bool dst = w->on_dst;
		wl_unlock(w);
		wl_one(w, mem, k);
		wl_lock(w);
		if (dst)
			w->ops_dst++;
		else
			w->ops_src++;
		pthread_cond_broadcast(&w->cv);
	}
	w->paused = true;
	pthread_cond_broadcast(&w->cv);
	wl_unlock(w);
	return NULL;
}

static void wl_start(struct fx *f)
{
	struct workload *w = &f->w;
	assert_false(w->running);
	w->stop = w->pause_req = w->paused = false;
	assert_int_equal(pthread_create(&w->th, NULL, wl_main, w), 0);
	w->running = true;
}

static void wl_stop(struct fx *f)
{
	struct workload *w = &f->w;
	if (!w->running)
		return;
	wl_lock(w);
	w->stop = true;
	pthread_cond_broadcast(&w->cv);
	wl_unlock(w);
	pthread_join(w->th, NULL);
	w->running = false;
}

/* Wait until the guest has done k more requests on the given side. */
static bool wl_wait_ops_quiet(struct workload *w, uint64_t k, bool on_dst)
{
	struct timespec ts;
	bool ok = true;

	fx_deadline(&ts, TMO);
	wl_lock(w);
	uint64_t *ops = on_dst ? &w->ops_dst : &w->ops_src;
	uint64_t want = *ops + k;
	while (*ops < want && ok)
		ok = pthread_cond_timedwait(&w->cv, &w->lock, &ts) == 0;
	ok = *ops >= want;
	wl_unlock(w);
	return ok;
}

static void wl_wait_ops(struct fx *f, uint64_t k, bool on_dst)
{
	if (!wl_wait_ops_quiet(&f->w, k, on_dst))
		fail_msg("the guest did not make %llu requests on the %s within %d ms (errors %llu: %s)",
			 (unsigned long long)k, on_dst ? "destination" : "source", TMO,
			 (unsigned long long)f->w.errors, f->w.problem);
}

/* The guest's own checks held: no failed request, no READ that saw other data. */
static void wl_assert_clean(struct fx *f)
{
	if (f->w.errors || f->w.mismatches)
		fail_msg("workload: %llu errors, %llu read mismatches; first: %s",
			 (unsigned long long)f->w.errors, (unsigned long long)f->w.mismatches,
			 f->w.problem);
}

/* Read every workload block of every device through the guest (workload stopped). */
static void verify_against(struct fx *f, uint32_t (*ver)[NLBA], const char *where)
{
	struct workload *w = &f->w;
	assert_false(w->running);
	for (unsigned k = 0; k < w->n; k++) {
		struct mbg *g = &w->d[k].g;
		for (uint32_t lba = 0; lba < NLBA; lba += VBLK) {
			int rc = mbg_read(g, lba, VBLK, AREA(k) + VBUF_OFF, TMO);
			if (rc != MB_SC_OK)
				fail_msg("%s dev %u: READ lba %u+%u: %d", where, k, lba, VBLK, rc);
			const uint8_t *p = g->mem + AREA(k) + VBUF_OFF;
			for (uint32_t i = 0; i < VBLK; i++)
				if (!block_is(p + i * MB_BLOCK_SIZE, k, lba + i, ver[k][lba + i]))
					fail_msg("%s dev %u: block %u is not its acknowledged version %u",
						 where, k, lba + i, ver[k][lba + i]);
		}
	}
}

static void verify_acked(struct fx *f, const char *where)
{
	uint32_t (*ver)[NLBA] = calloc(MAXDEV, sizeof(*ver));
	assert_non_null(ver);
	for (unsigned k = 0; k < f->w.n; k++)
		memcpy(ver[k], f->w.d[k].ver, sizeof(ver[k]));
	verify_against(f, ver, where);
	free(ver);
}

/* ---------------------------------------------------------------- engine callbacks */

static void record(struct fx *f, const struct devmig_engine_event *e)
{
	pthread_mutex_lock(&f->ev_lock);
	if (f->nev < MAXEV)
		f->evs[f->nev++] = (struct ev){ e->type, e->dev, e->round, e->destination, e->from,
						e->to };
	switch (e->type) {
	case DEVMIG_EV_ROUND:
		f->rounds_seen++;
		break;
	case DEVMIG_EV_SWITCHOVER:
		f->switchovers++;
		break;
	case DEVMIG_EV_UNWIND:
		f->unwinds++;
		snprintf(f->unwind_why, sizeof(f->unwind_why), "%s", e->why ? e->why : "");
		break;
	case DEVMIG_EV_DONE:
		f->dones++;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&f->ev_lock);
}

static void on_event(void *opaque, const struct devmig_engine_event *e)
{
	struct fx *f = opaque;
	bool arc = e->type == DEVMIG_EV_ARC;

	record(f, e);
	if (e->type == DEVMIG_EV_ROUND && e->round == 1 && f->hold_ops_at_round1 && !f->held) {
		/* The guest keeps writing after the first pass went out. */
		f->held = true;
		wl_wait_ops_quiet(&f->w, f->hold_ops_at_round1, false);
	}
	bool hit = false;
	pthread_mutex_lock(&f->ev_lock);
	if (f->injected) {
		pthread_mutex_unlock(&f->ev_lock);
		return;
	}
	switch (f->inject) {
	case INJ_NONE:
		break;
	case INJ_KILL_AT_ROUND:
		hit = e->type == DEVMIG_EV_ROUND;
		break;
	case INJ_KILL_AT_STOP_COPY:
	case INJ_SHUT_AT_STOP_COPY:
		hit = arc && !e->destination && e->to == DEVMIG_STATE_STOP_COPY;
		break;
	case INJ_KILL_AT_COMMIT:
		hit = arc && e->destination && e->from == DEVMIG_STATE_RESUMING &&
		      e->to == DEVMIG_STATE_STOP;
		break;
	}
	f->injected = hit;
	pthread_mutex_unlock(&f->ev_lock);
	if (!hit)
		return;
	if (f->inject == INJ_SHUT_AT_STOP_COPY)
		shutdown(f->shut_fd, SHUT_RDWR);
	else
		host_kill(&f->dst);
}

static int on_pause(void *opaque)
{
	struct fx *f = opaque;
	struct workload *w = &f->w;
	struct timespec ts;
	int rc = 0;

	f->pauses++;
	fx_deadline(&ts, TMO);
	wl_lock(w);
	w->pause_req = true;
	pthread_cond_broadcast(&w->cv);
	while (w->running && !w->paused && !rc)
		rc = pthread_cond_timedwait(&w->cv, &w->lock, &ts);
	if (!rc && f->snap) {
		/* The guest is parked between requests: what a checkpoint must hold. */
		for (unsigned k = 0; k < f->n; k++) {
			memcpy(f->snap_ver[k], w->d[k].ver, sizeof(f->snap_ver[k]));
			for (unsigned r = 0; r < NREGS; r++)
				devmig_client_region_read(f->src.s[k].cl, 0, r * 4, &f->snap_regs[k][r], 4);
		}
		memcpy(f->snap_mem, mem_of(&f->src), MEM_SIZE);
		f->snapped = true;
	}
	wl_unlock(w);
	return rc ? -ETIMEDOUT : 0;
}

static int on_resume(void *opaque, bool on_dst)
{
	struct fx *f = opaque;
	struct workload *w = &f->w;

	f->resumes++;
	f->resumed_on_dst = on_dst;
	wl_lock(w);
	if (on_dst) {
		/* Devices stopped, guest parked: both memories must be the same now. */
		const uint8_t *a = mem_of(&f->src), *b = mem_of(&f->dst);
		f->switch_mem_diff = -1;
		for (unsigned p = 0; p < MEM_SIZE / 4096; p++)
			if (memcmp(a + (size_t)p * 4096, b + (size_t)p * 4096, 4096)) {
				f->switch_mem_diff = (int)p;
				break;
			}
		for (unsigned k = 0; k < w->n; k++) {
			struct mbg_mmio io = mbg_mmio_client(f->dst.s[k].cl);
			mbg_set_route(&w->d[k].g, &io, f->dst.s[k].efd);
			w->d[k].g.mem = mem_of(&f->dst);
		}
		w->mem = f->dst.mem;
		w->on_dst = true;
	}
	w->pause_req = false;
	pthread_cond_broadcast(&w->cv);
	wl_unlock(w);
	return 0;
}

static struct devmig_engine_config base_cfg(struct fx *f)
{
	struct devmig_engine_config cfg = {
		.guest_iova = 0,
		.timeout_ms = TMO,
		.event = on_event,
		.pause_guest = on_pause,
		.resume_guest = on_resume,
		.opaque = f,
	};
	return cfg;
}

/* ---------------------------------------------------------------- event checks */

static int first_ev(struct fx *f, bool dst, int dev, enum devmig_state to)
{
	for (unsigned i = 0; i < f->nev; i++) {
		const struct ev *e = &f->evs[i];
		if (e->type == DEVMIG_EV_ARC && e->destination == dst && (dev < 0 || e->dev == (unsigned)dev) &&
		    e->to == to)
			return (int)i;
	}
	return -1;
}

static int count_arcs(struct fx *f, bool dst, enum devmig_state to)
{
	int n = 0;
	for (unsigned i = 0; i < f->nev; i++)
		n += f->evs[i].type == DEVMIG_EV_ARC && f->evs[i].destination == dst &&
		     f->evs[i].to == to;
	return n;
}

static void clear_events(struct fx *f)
{
	pthread_mutex_lock(&f->ev_lock);
	f->nev = f->rounds_seen = f->switchovers = f->unwinds = f->dones = 0;
	f->unwind_why[0] = 0;
	pthread_mutex_unlock(&f->ev_lock);
	f->pauses = f->resumes = 0;
	f->resumed_on_dst = false;
	f->switch_mem_diff = -2; /* never checked */
	f->injected = f->held = false;
}

static void assert_src_running(struct fx *f)
{
	for (unsigned i = 0; i < f->n; i++) {
		enum devmig_state st = DEVMIG_STATE_ERROR;
		int rc = devmig_client_get_state(f->src.s[i].cl, &st);
		if (rc)
			fail_msg("source device %u: the VMM's connection is unusable after the "
				 "failed migration: GET_STATE %d (%s)", i, rc, strerror(-rc));
		if (st != DEVMIG_STATE_RUNNING)
			fail_msg("source device %u is %s, not RUNNING", i, devmig_state_name(st));
	}
}

static void assert_dst_running(struct host *h)
{
	for (unsigned i = 0; i < h->n; i++) {
		enum devmig_state st = DEVMIG_STATE_ERROR;
		assert_int_equal(devmig_client_get_state(h->s[i].cl, &st), 0);
		if (st != DEVMIG_STATE_RUNNING)
			fail_msg("destination device %u is %s, not RUNNING", i, devmig_state_name(st));
	}
}

static void assert_no_sigpipe(void)
{
	if (sigpipes)
		fail_msg("the engine raised SIGPIPE %d time(s) writing to a closed channel: a VMM "
			 "that does not ignore SIGPIPE would be killed instead of unwinding",
			 (int)sigpipes);
}

/* ---------------------------------------------------------------- setup / teardown */

static void fx_init_guest(struct fx *f)
{
	struct workload *w = &f->w;
	uint8_t *mem = mem_of(&f->src);

	w->n = f->n;
	w->mem = f->src.mem;
	w->seed = 0x5eed0000u + f->n;
	uint64_t s = 99;
	for (size_t o = PAT_OFF; o < MEM_SIZE; o += 8) {
		uint64_t v = fx_rnd(&s);
		memcpy(mem + o, &v, 8);
	}
	for (unsigned k = 0; k < f->n; k++) {
		struct wdev *d = &w->d[k];
		struct mbg_mmio io = mbg_mmio_client(f->src.s[k].cl);
		assert_int_equal(mbg_init(&d->g, &io, mem, 0, MEM_SIZE, f->src.s[k].efd), 0);
		uint32_t err = 0;
		int rc = mbg_setup_queues(&d->g, AREA(k) + SQ_OFF, QSIZE, AREA(k) + CQ_OFF, QSIZE, &err);
		if (rc)
			fail_msg("setup queues: %d, ERR_CODE %u", rc, err);
		/* Every block starts with version 1 of its data. */
		for (uint32_t lba = 0; lba < NLBA; lba += MAXNB) {
			for (uint32_t i = 0; i < MAXNB; i++)
				fill_block(mem + AREA(k) + WBUF_OFF + i * MB_BLOCK_SIZE, k, lba + i, 1);
			assert_int_equal(mbg_write(&d->g, lba, MAXNB, AREA(k) + WBUF_OFF, TMO), MB_SC_OK);
			for (uint32_t i = 0; i < MAXNB; i++)
				d->ver[lba + i] = 1;
		}
	}
	w->next_ver = 1;
}

static int fx_setup_with(void **state, unsigned n, unsigned no_data_fd)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	*state = f;
	f->n = n;
	f->no_data_fd = no_data_fd;
	f->shut_fd = -1;
	f->switch_mem_diff = -2;
	f->rx.listen_fd = f->rx.fd = -1;
	f->px.a = f->px.b = -1;
	pthread_mutex_init(&f->ev_lock, NULL);
	pthread_mutex_init(&f->w.lock, NULL);
	pthread_cond_init(&f->w.cv, NULL);
	fx_tmpdir(f->dir, "engine");
	host_open(f, &f->src, "src", n, &devmig_variant_memblk, DEV_ARGS);
	fx_init_guest(f);
	sigpipes = 0;
	return 0;
}

static int setup1(void **state)
{
	return fx_setup_with(state, 1, 0);
}

static int setup2(void **state)
{
	return fx_setup_with(state, 2, 0);
}

static int setup_no_data_fd_src(void **state)
{
	return fx_setup_with(state, 1, 1);
}

static int setup_no_data_fd_dst(void **state)
{
	return fx_setup_with(state, 1, 2);
}

static int setup_no_data_fd_both(void **state)
{
	return fx_setup_with(state, 1, 3);
}

static void add_fd(struct fx *f, int fd)
{
	assert_true(f->nfds < sizeof(f->fds) / sizeof(f->fds[0]));
	f->fds[f->nfds++] = fd;
}

/* Wake and join the helper threads, then close every fd they used. */
static void threads_end(struct fx *f)
{
	for (unsigned i = 0; i < f->nfds; i++)
		shutdown(f->fds[i], SHUT_RDWR);
	if (f->rx.listen_fd >= 0)
		shutdown(f->rx.listen_fd, SHUT_RDWR);
	if (f->rx.started)
		pthread_join(f->rx.th, NULL);
	if (f->px.started)
		pthread_join(f->px.th, NULL);
	f->rx.started = f->px.started = false;
	for (unsigned i = 0; i < f->nfds; i++)
		close(f->fds[i]);
	f->nfds = 0;
	if (f->rx.listen_fd >= 0) {
		close(f->rx.listen_fd);
		if (f->rx.fd >= 0)
			close(f->rx.fd); /* accepted by the receiver thread */
	}
	f->rx.listen_fd = f->rx.fd = -1;
	f->px.a = f->px.b = -1;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	wl_stop(f);
	threads_end(f);
	for (unsigned k = 0; k < f->w.n; k++)
		mbg_destroy(&f->w.d[k].g);
	host_close(&f->src);
	host_close(&f->dst);
	host_close(&f->old_dst);
	fx_rmdir(f->dir);
	free(f->snap_mem);
	pthread_mutex_destroy(&f->ev_lock);
	pthread_mutex_destroy(&f->w.lock);
	pthread_cond_destroy(&f->w.cv);
	free(f);
	return 0;
}

/* ---------------------------------------------------------------- local migration */

static int migrate_local(struct fx *f, const struct devmig_engine_config *cfg,
			 struct devmig_migration_report *rep)
{
	struct devmig_client *s[MAXDEV], *d[MAXDEV];
	clients_of(&f->src, s);
	clients_of(&f->dst, d);
	clear_events(f);
	return devmig_migrate_local(cfg, s, d, f->n, f->src.mem, f->dst.mem, rep);
}

/* After a successful migration: the guest runs on the destination and every write is there. */
static void after_success(struct fx *f, int rc, const struct devmig_migration_report *rep)
{
	if (rc)
		fail_msg("migration failed: %d: %s", rc, rep->error);
	assert_true(rep->completed);
	assert_int_equal(rep->devices, f->n);
	assert_true(rep->downtime_ns > 0);
	assert_true(rep->total_ns >= rep->downtime_ns);
	assert_int_equal(f->pauses, 1);
	assert_int_equal(f->resumes, 1);
	assert_true(f->resumed_on_dst);
	assert_int_equal(f->unwinds, 0);
	assert_int_equal(f->dones, 1);
	if (f->switch_mem_diff != -1)
		fail_msg("at the switch, guest memory differs at page %d (-2: not checked)",
			 f->switch_mem_diff);
	wl_wait_ops(f, 30, true); /* the guest runs on the destination */
	wl_stop(f);
	wl_assert_clean(f);
	assert_true(f->w.on_dst);
	assert_dst_running(&f->dst);
	verify_acked(f, "destination");
}

/* After a failed migration: the source runs on, intact. */
static void after_failure(struct fx *f, int rc, const struct devmig_migration_report *rep,
			  const char *must_name)
{
	if (rc >= 0)
		fail_msg("the migration succeeded (%d) where it had to fail", rc);
	print_message("# failed as it should: %s\n", rep->error);
	assert_false(rep->completed);
	if (!rep->error[0])
		fail_msg("failure without a reason");
	if (must_name && !strstr(rep->error, must_name))
		fail_msg("the error does not name '%s': %s", must_name, rep->error);
	assert_int_equal(f->unwinds, 1);
	assert_int_equal(f->dones, 0);
	assert_src_running(f);
	assert_int_equal(f->pauses, f->resumes);
	assert_false(f->resumed_on_dst);
	assert_false(f->w.on_dst);
	wl_wait_ops(f, 30, false); /* the guest runs on at the source */
	wl_stop(f);
	wl_assert_clean(f);
	assert_false(f->w.on_dst);
	verify_acked(f, "source after the failed migration");
}

/* ================================================================ tests */

static void live_migration_under_workload_keeps_every_acknowledged_write(void **state)
{
	struct fx *f = *state;
	struct devmig_migration_report rep;

	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	wl_start(f);
	wl_wait_ops(f, 50, false);
	f->hold_ops_at_round1 = 40;
	struct devmig_engine_config cfg = base_cfg(f);
	int rc = migrate_local(f, &cfg, &rep);
	if (rc)
		fail_msg("migration failed: %d: %s", rc, rep.error);
	assert_true(f->held);
	assert_true(rep.completed);
	assert_true(rep.precopy);
	assert_true(rep.rounds >= 1);
	assert_int_equal(rep.rounds, f->rounds_seen);
	assert_true(rep.downtime_ns > 0);
	assert_true(rep.device_bytes > 0);
	/* Every byte of device data went data fd to data fd (spliced). */
	assert_int_equal(rep.device_fd_bytes, rep.device_bytes);
	assert_true(rep.guest_bytes >= MEM_SIZE);
	assert_int_equal(count_arcs(f, false, DEVMIG_STATE_PRE_COPY), 1);
	assert_int_equal(f->switchovers, 1);
	after_success(f, rc, &rep);
}

static void two_devices_quiesce_all_before_stopping_any(void **state)
{
	struct fx *f = *state;
	struct devmig_migration_report rep;

	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	wl_start(f);
	wl_wait_ops(f, 50, false);
	f->hold_ops_at_round1 = 40;
	struct devmig_engine_config cfg = base_cfg(f);
	int rc = migrate_local(f, &cfg, &rep);
	if (rc)
		fail_msg("migration failed: %d: %s", rc, rep.error);

	/* Source: every device RUNNING_P2P / PRE_COPY_P2P before any STOP / STOP_COPY. */
	int last_p2p = -1, first_stop = -1;
	for (unsigned k = 0; k < f->n; k++) {
		int a = first_ev(f, false, (int)k, DEVMIG_STATE_PRE_COPY_P2P);
		int b = first_ev(f, false, (int)k, DEVMIG_STATE_RUNNING_P2P);
		int p = a < 0 ? b : b < 0 ? a : a < b ? a : b;
		if (p < 0)
			fail_msg("source device %u was never asked for RUNNING_P2P or PRE_COPY_P2P", k);
		if (p > last_p2p)
			last_p2p = p;
	}
	for (unsigned i = 0; i < f->nev; i++) {
		const struct ev *e = &f->evs[i];
		if (e->type == DEVMIG_EV_ARC && !e->destination &&
		    (e->to == DEVMIG_STATE_STOP || e->to == DEVMIG_STATE_STOP_COPY)) {
			first_stop = (int)i;
			break;
		}
	}
	assert_true(first_stop >= 0);
	if (last_p2p > first_stop)
		fail_msg("a source device was stopped (event %d) before another left P2P (event %d)",
			 first_stop, last_p2p);
	/* Destination: every device RUNNING_P2P before any RUNNING. */
	int last_rp2p = -1;
	for (unsigned k = 0; k < f->n; k++) {
		int p = first_ev(f, true, (int)k, DEVMIG_STATE_RUNNING_P2P);
		if (p < 0)
			fail_msg("destination device %u was never asked for RUNNING_P2P", k);
		if (p > last_rp2p)
			last_rp2p = p;
		if (first_ev(f, true, (int)k, DEVMIG_STATE_RUNNING) < 0)
			fail_msg("destination device %u was never asked for RUNNING", k);
	}
	int first_run = first_ev(f, true, -1, DEVMIG_STATE_RUNNING);
	if (first_run < last_rp2p)
		fail_msg("a destination device ran (event %d) before another was RUNNING_P2P (event %d)",
			 first_run, last_rp2p);
	after_success(f, rc, &rep);
}

static void stop_and_copy_only_migrates_and_reports_no_device_precopy(void **state)
{
	struct fx *f = *state;
	struct devmig_migration_report rep;

	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	wl_start(f);
	wl_wait_ops(f, 50, false);
	struct devmig_engine_config cfg = base_cfg(f);
	cfg.no_precopy = true;
	int rc = migrate_local(f, &cfg, &rep);
	if (rc)
		fail_msg("migration failed: %d: %s", rc, rep.error);
	assert_int_equal(count_arcs(f, false, DEVMIG_STATE_PRE_COPY), 0);
	assert_int_equal(count_arcs(f, false, DEVMIG_STATE_PRE_COPY_P2P), 0);
	assert_true(count_arcs(f, false, DEVMIG_STATE_STOP_COPY) >= 1);
	/* Every device byte moved while the guest was paused. */
	assert_true(rep.stop_copy_bytes >= rep.device_bytes);
	after_success(f, rc, &rep);
	/* engine.h: "precopy: some device was pre-copied" -- none was. */
	if (rep.precopy)
		fail_msg("report.precopy is true with no_precopy, although engine.h documents it as "
			 "'some device was pre-copied' and no device entered PRE_COPY "
			 "(guest memory pre-copy is counted as device pre-copy)");
}

/* 4a-c: the destination dies at a chosen point; then a fresh one succeeds. */
static void kill_destination_then_retry(struct fx *f, enum inject where)
{
	struct devmig_migration_report rep;

	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	wl_start(f);
	wl_wait_ops(f, 50, false);
	f->inject = where;
	struct devmig_engine_config cfg = base_cfg(f);
	int rc = migrate_local(f, &cfg, &rep);
	assert_true(f->injected);
	after_failure(f, rc, &rep, "destination device 0");
	if (where == INJ_KILL_AT_ROUND)
		assert_int_equal(f->pauses, 0); /* it failed before the stop phase */
	else
		assert_int_equal(f->pauses, 1);

	/* A second attempt to a fresh destination succeeds. */
	f->inject = INJ_NONE;
	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	wl_start(f);
	wl_wait_ops(f, 20, false);
	rc = migrate_local(f, &cfg, &rep);
	after_success(f, rc, &rep);
}

static void destination_killed_during_precopy_source_runs_on(void **state)
{
	kill_destination_then_retry(*state, INJ_KILL_AT_ROUND);
}

static void destination_killed_during_stop_copy_drain_source_runs_on(void **state)
{
	kill_destination_then_retry(*state, INJ_KILL_AT_STOP_COPY);
}

static void destination_killed_before_commit_source_runs_on(void **state)
{
	kill_destination_then_retry(*state, INJ_KILL_AT_COMMIT);
}

/* ---------------------------------------------------------------- two-host path */

static void *rx_main(void *arg)
{
	struct rx *r = arg;
	struct devmig_client *c[MAXDEV];

	if (r->listen_fd >= 0) {
		r->fd = accept(r->listen_fd, NULL, NULL);
		if (r->fd < 0) {
			r->rc = -errno;
			snprintf(r->rep.error, sizeof(r->rep.error), "accept: %s", strerror(errno));
			return NULL;
		}
	}
	clients_of(r->h, c);
	r->rc = devmig_receive_from_fd(&r->cfg, r->fd, c, r->h->n, r->h->mem, &r->rep);
	/* The destination process ends: its side of the channel closes. */
	shutdown(r->fd, SHUT_RDWR);
	return NULL;
}

static void rx_start(struct fx *f, int fd, int listen_fd)
{
	struct rx *r = &f->rx;
	memset(&r->rep, 0, sizeof(r->rep));
	r->rc = 1;
	r->fd = fd;
	r->listen_fd = listen_fd;
	r->h = &f->dst;
	r->cfg = (struct devmig_engine_config){ .event = on_event, .opaque = f,
						.timeout_ms = TMO };
	assert_int_equal(pthread_create(&r->th, NULL, rx_main, r), 0);
	r->started = true;
}

static void rx_join(struct fx *f)
{
	if (f->rx.started)
		pthread_join(f->rx.th, NULL);
	f->rx.started = false;
}

/* Track the forward stream's framing; flip the chosen payload byte. */
static void px_scan(struct proxy *p, uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n && !p->flipped; i++, p->fwd++) {
		switch (p->st) {
		case 0:
			if (!--p->need) {
				p->st = 1;
				p->hl = 0;
			}
			break;
		case 1:
			p->hdr[p->hl++] = buf[i];
			if (p->hl == DEVMIG_CHAN_HDR) {
				p->ftype = (uint32_t)p->hdr[0] | (uint32_t)p->hdr[1] << 8;
				if (p->ftype == DEVMIG_CHAN_RUN)
					p->saw_run = true;
				p->body_left = 0;
				for (int b = 7; b >= 0; b--)
					p->body_left = p->body_left << 8 | p->hdr[8 + b];
				p->trailer_left = DEVMIG_CHAN_TRAILER;
				p->st = 2;
			}
			break;
		case 2:
			if (p->body_left) {
				bool data = p->flip_raw ? p->ftype == DEVMIG_CHAN_DEV_DATA_RAW
							: p->ftype == DEVMIG_CHAN_DEV_DATA ||
								  p->ftype == DEVMIG_CHAN_MEM;
				if (data && p->fwd >= p->flip_at) {
					buf[i] ^= 0x20;
					p->flipped = true;
				}
				p->body_left--;
			} else if (!--p->trailer_left) {
				p->st = 1;
				p->hl = 0;
			}
			break;
		}
	}
}

static bool send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

static void *px_main(void *arg)
{
	struct proxy *p = arg;
	size_t cap = 256 << 10;
	uint8_t *buf = malloc(cap);

	while (buf) {
		struct pollfd pf[2] = { { p->a, POLLIN, 0 }, { p->b, POLLIN, 0 } };
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents) {
			ssize_t k = recv(p->a, buf, cap, 0);
			if (k <= 0)
				break;
			size_t n = (size_t)k;
			bool drop = false;
			if (p->fwd + n >= p->drop_after) {
				n = (size_t)(p->drop_after - p->fwd);
				drop = true;
			}
			uint64_t before = p->fwd;
			if (!p->flipped)
				px_scan(p, buf, n);
			p->fwd = before + n;
			if (!send_all(p->b, buf, n) || drop) {
				p->dropped = drop;
				break;
			}
		}
		if (pf[1].revents) {
			ssize_t k = recv(p->b, buf, cap, 0);
			if (k > 0 && p->cut_after_run && p->saw_run) {
				p->dropped = true; /* the answer to RUN never reaches the source */
				break;
			}
			if (k <= 0 || !send_all(p->a, buf, (size_t)k))
				break;
		}
	}
	free(buf);
	/* Both sides see the connection go. */
	shutdown(p->a, SHUT_RDWR);
	shutdown(p->b, SHUT_RDWR);
	return NULL;
}

/* source fd <-> proxy <-> receiver thread on the destination; returns the source's fd. */
static int proxied_channel(struct fx *f, uint64_t flip_at, uint64_t drop_after)
{
	int a[2], b[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	for (int i = 0; i < 2; i++) {
		add_fd(f, a[i]);
		add_fd(f, b[i]);
	}
	struct proxy *p = &f->px;
	memset(p, 0, sizeof(*p));
	p->a = a[1];
	p->b = b[0];
	p->flip_at = flip_at;
	p->flip_raw = f->flip_raw;
	p->drop_after = drop_after;
	p->st = 0;
	p->need = DEVMIG_CHAN_MAGIC_LEN;
	assert_int_equal(pthread_create(&p->th, NULL, px_main, p), 0);
	p->started = true;
	rx_start(f, b[1], -1);
	return a[0];
}

static int migrate_to_fd(struct fx *f, const struct devmig_engine_config *cfg, int fd,
			 struct devmig_migration_report *rep)
{
	struct devmig_client *s[MAXDEV];
	clients_of(&f->src, s);
	clear_events(f);
	return devmig_migrate_to_fd(cfg, s, f->n, f->src.mem, fd, rep);
}

/* A two-host migration through the proxy that must fail; then a clean one. */
static void two_host_fault_then_retry(struct fx *f, uint64_t flip_at, uint64_t drop_after,
				      const char *rx_reason)
{
	struct devmig_migration_report rep;

	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	wl_start(f);
	wl_wait_ops(f, 50, false);
	struct devmig_engine_config cfg = base_cfg(f);
	int fd = proxied_channel(f, flip_at, drop_after);
	int rc = migrate_to_fd(f, &cfg, fd, &rep);
	shutdown(fd, SHUT_RDWR); /* the source is done with the channel */
	rx_join(f);
	if (flip_at != UINT64_MAX)
		assert_true(f->px.flipped);
	if (drop_after != UINT64_MAX)
		assert_true(f->px.dropped);
	/* The destination refused, with its reason. */
	if (f->rx.rc >= 0)
		fail_msg("the receiver accepted a damaged channel (%d)", f->rx.rc);
	if (!strstr(f->rx.rep.error, rx_reason))
		fail_msg("the receiver's reason does not say '%s': %s", rx_reason, f->rx.rep.error);
	assert_false(f->rx.rep.completed);
	after_failure(f, rc, &rep, "destination");
	threads_end(f);

	/* The same path, undamaged, to a fresh destination. */
	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	wl_start(f);
	wl_wait_ops(f, 20, false);
	fd = proxied_channel(f, UINT64_MAX, UINT64_MAX);
	rc = migrate_to_fd(f, &cfg, fd, &rep);
	rx_join(f);
	if (f->rx.rc)
		fail_msg("receiver: %d: %s", f->rx.rc, f->rx.rep.error);
	assert_true(f->rx.rep.completed);
	after_success(f, rc, &rep);
	threads_end(f);
	assert_no_sigpipe();
}

static void corrupted_channel_is_refused_and_source_unwinds(void **state)
{
	two_host_fault_then_retry(*state, 1u << 20, UINT64_MAX, "CRC mismatch");
}

/*
 * DEV_DATA_RAW frames carry no CRC over their payload: a byte damaged on
 * the way is found by the device's own stream check (every record has its
 * CRC32C) before anything applies, and the migration fails and unwinds.
 */
static void raw_device_data_damaged_on_the_wire_is_refused_by_the_device(void **state)
{
	struct fx *f = *state;
	f->flip_raw = true;
	two_host_fault_then_retry(f, 1u << 20, UINT64_MAX, "CRC mismatch");
}

/* A peer without the data_fd extension: the data moves in MIG_DATA_READ and
 * _WRITE messages as before, and the writes are all there. */
static void peers_without_the_data_fd_extension_migrate_by_messages(void **state)
{
	struct fx *f = *state;
	struct devmig_migration_report rep;

	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	wl_start(f);
	wl_wait_ops(f, 30, false);
	struct devmig_engine_config cfg = base_cfg(f);
	int rc = migrate_local(f, &cfg, &rep);
	print_message("# without data_fd: %s\n", f->no_data_fd == 1 ? "the source"
						    : f->no_data_fd == 2 ? "the destination" : "both");
	assert_true(rep.device_bytes > 0);
	assert_int_equal(rep.device_fd_bytes, 0);
	after_success(f, rc, &rep);
}

static void dropped_channel_is_refused_and_source_unwinds(void **state)
{
	two_host_fault_then_retry(*state, UINT64_MAX, (3u << 20) / 2, "");
}

/*
 * RUN reaches the destination, which runs, but its answer is lost. The source
 * cannot know which side runs the guest: it must not resume (the guest would
 * run twice), and must say the outcome is unknown.
 */
static void lost_run_answer_leaves_the_source_stopped(void **state)
{
	struct fx *f = *state;
	struct devmig_migration_report rep;

	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	wl_start(f);
	wl_wait_ops(f, 50, false);
	struct devmig_engine_config cfg = base_cfg(f);
	int fd = proxied_channel(f, UINT64_MAX, UINT64_MAX);
	f->px.cut_after_run = true;
	int rc = migrate_to_fd(f, &cfg, fd, &rep);
	shutdown(fd, SHUT_RDWR);
	rx_join(f);
	assert_true(f->px.saw_run);
	assert_true(f->px.dropped);
	print_message("# %s\n", rep.error);
	if (rc >= 0)
		fail_msg("the migration reported success without RUN's answer (%d)", rc);
	assert_true(rep.outcome_unknown);
	assert_false(rep.completed);
	if (!strstr(rep.error, "outcome is unknown"))
		fail_msg("the error does not say the outcome is unknown: %s", rep.error);
	/* The destination did run the guest's devices. */
	if (f->rx.rc)
		fail_msg("receiver: %d: %s", f->rx.rc, f->rx.rep.error);
	assert_true(f->rx.rep.completed);
	assert_dst_running(&f->dst);
	/* The source neither resumed the guest nor ran its devices. */
	assert_int_equal(f->pauses, 1);
	assert_int_equal(f->resumes, 0);
	assert_int_equal(f->unwinds, 0);
	for (unsigned i = 0; i < f->n; i++) {
		enum devmig_state st = DEVMIG_STATE_ERROR;
		assert_int_equal(devmig_client_get_state(f->src.s[i].cl, &st), 0);
		if (st != DEVMIG_STATE_STOP)
			fail_msg("source device %u is %s, not STOP", i, devmig_state_name(st));
	}
	threads_end(f);
	assert_no_sigpipe();
}

/* Listen on 127.0.0.1, port 0, as a receiving VMM would (devmig_endpoint_*);
 * the receiver thread accepts. Returns the source's fd. */
static int tcp_channel(struct fx *f)
{
	struct devmig_endpoint at;
	char shown[300], err[256];

	assert_int_equal(devmig_endpoint_parse("127.0.0.1:0", true, &at, err, sizeof(err)), 0);
	int l = devmig_endpoint_listen(&at, shown, sizeof(shown), err, sizeof(err));
	if (l < 0)
		fail_msg("listen: %s", err);
	rx_start(f, -1, l);
	struct devmig_endpoint to;
	assert_int_equal(devmig_endpoint_parse(shown, false, &to, err, sizeof(err)), 0);
	int c = devmig_endpoint_connect(&to, TMO, err, sizeof(err));
	if (c < 0)
		fail_msg("connect to %s: %s", shown, err);
	add_fd(f, c);
	return c;
}

static void tcp_loopback_migrates_and_survives_a_shutdown(void **state)
{
	struct fx *f = *state;
	struct devmig_migration_report rep;

	/* Dropped mid-way: shutdown() of the source's socket once the guest is paused. */
	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	wl_start(f);
	wl_wait_ops(f, 50, false);
	struct devmig_engine_config cfg = base_cfg(f);
	int fd = tcp_channel(f);
	f->shut_fd = fd;
	f->inject = INJ_SHUT_AT_STOP_COPY;
	int rc = migrate_to_fd(f, &cfg, fd, &rep);
	rx_join(f);
	if (!f->injected)
		fail_msg("the migration ended before the stop phase: %d: %s; receiver %d: %s", rc,
			 rep.error, f->rx.rc, f->rx.rep.error);
	assert_int_equal(f->pauses, 1);
	if (f->rx.rc >= 0)
		fail_msg("the receiver completed over a shut-down connection (%d)", f->rx.rc);
	assert_true(f->rx.rep.error[0]);
	after_failure(f, rc, &rep, "destination");
	threads_end(f);

	/* End to end over TCP, to a fresh destination. */
	f->inject = INJ_NONE;
	f->shut_fd = -1;
	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	wl_start(f);
	wl_wait_ops(f, 20, false);
	fd = tcp_channel(f);
	rc = migrate_to_fd(f, &cfg, fd, &rep);
	rx_join(f);
	if (f->rx.rc)
		fail_msg("receiver: %d: %s", f->rx.rc, f->rx.rep.error);
	assert_true(f->rx.rep.completed);
	/* Spliced onto TCP as DEV_DATA_RAW frames, and off it into the pipes. */
	assert_true(rep.device_bytes > 0);
	assert_int_equal(rep.device_fd_bytes, rep.device_bytes);
	assert_int_equal(f->rx.rep.device_bytes, rep.device_bytes);
	after_success(f, rc, &rep);
	threads_end(f);
	assert_no_sigpipe();
}

/* ---------------------------------------------------------------- checkpoints */

static void copy_file(int from, const char *to, off_t len, off_t flip)
{
	uint8_t *buf = malloc((size_t)len);
	assert_non_null(buf);
	assert_int_equal(pread(from, buf, (size_t)len, 0), len);
	if (flip >= 0)
		buf[flip] ^= 0x01;
	int fd = open(to, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, (size_t)len), len);
	close(fd);
	free(buf);
}

static void read_regs(struct side *s, uint32_t *regs)
{
	for (unsigned r = 0; r < NREGS; r++)
		assert_int_equal(devmig_client_region_read(s->cl, 0, r * 4, &regs[r], 4), 0);
}

static void checkpoint_restores_equal_and_damaged_files_change_nothing(void **state)
{
	struct fx *f = *state;
	struct devmig_migration_report rep, rrep;

	f->snap_mem = malloc(MEM_SIZE);
	assert_non_null(f->snap_mem);
	wl_start(f);
	wl_wait_ops(f, 50, false);
	snprintf(f->ckpt, sizeof(f->ckpt), "%s/ckpt", f->dir);
	int fd = open(f->ckpt, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	struct devmig_engine_config cfg = base_cfg(f);
	f->snap = true;
	clear_events(f);
	struct devmig_client *s[MAXDEV];
	clients_of(&f->src, s);
	int rc = devmig_save(&cfg, s, f->n, f->src.mem, fd, &rep);
	f->snap = false;
	if (rc) {
		close(fd);
		fail_msg("save: %d: %s", rc, rep.error);
	}
	assert_true(f->snapped);
	assert_true(rep.completed);
	assert_int_equal(f->pauses, 1);
	assert_int_equal(f->resumes, 1);
	assert_false(f->resumed_on_dst);
	/* The source runs on after a checkpoint. */
	assert_src_running(f);
	wl_wait_ops(f, 30, false);
	wl_stop(f);
	wl_assert_clean(f);
	verify_acked(f, "source after the checkpoint");

	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_size > (off_t)MEM_SIZE);

	/* Damaged files, into a destination the guest already uses: refused, nothing changes. */
	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	struct mbg g2;
	struct mbg_mmio io = mbg_mmio_client(f->dst.s[0].cl);
	uint8_t *dm = mem_of(&f->dst);
	assert_int_equal(mbg_init(&g2, &io, dm, 0, MEM_SIZE, f->dst.s[0].efd), 0);
	assert_int_equal(mbg_setup_queues(&g2, SQ_OFF, QSIZE, CQ_OFF, QSIZE, NULL), 0);
	for (uint32_t lba = 0; lba < VBLK; lba++)
		fill_block(dm + VBUF_OFF + lba * MB_BLOCK_SIZE, 7, lba, 1000 + lba);
	assert_int_equal(mbg_write(&g2, 0, VBLK, VBUF_OFF, TMO), MB_SC_OK);
	memset(dm + VBUF_OFF, 0, VBLK * MB_BLOCK_SIZE);
	uint32_t regs0[NREGS], regs1[NREGS];
	read_regs(&f->dst.s[0], regs0);
	uint8_t *mem0 = malloc(MEM_SIZE);
	assert_non_null(mem0);
	memcpy(mem0, dm, MEM_SIZE);

	char bad[160];
	snprintf(bad, sizeof(bad), "%s/bad", f->dir);
	struct { const char *what; off_t len, flip; } cases[] = {
		{ "truncated in the middle", st.st_size / 2, -1 },
		{ "truncated before its end record", st.st_size - 28, -1 },
		{ "one byte flipped", st.st_size, st.st_size / 2 },
	};
	for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		copy_file(fd, bad, cases[c].len, cases[c].flip);
		int bfd = open(bad, O_RDONLY | O_CLOEXEC);
		assert_true(bfd >= 0);
		struct devmig_client *d[MAXDEV];
		clients_of(&f->dst, d);
		clear_events(f);
		rc = devmig_restore(&cfg, bfd, d, f->n, f->dst.mem, &rrep);
		close(bfd);
		unlink(bad);
		if (rc >= 0) {
			free(mem0);
			fail_msg("a checkpoint %s was restored (%d)", cases[c].what, rc);
		}
		if (!rrep.error[0])
			fail_msg("a checkpoint %s was refused without a reason", cases[c].what);
		print_message("# %s: %s\n", cases[c].what, rrep.error);
		assert_false(rrep.completed);
		assert_dst_running(&f->dst);
		read_regs(&f->dst.s[0], regs1);
		if (memcmp(regs0, regs1, sizeof(regs0)))
			fail_msg("a checkpoint %s changed the destination's registers", cases[c].what);
		if (memcmp(mem0, dm, MEM_SIZE))
			fail_msg("a checkpoint %s changed the destination's guest memory", cases[c].what);
		assert_int_equal(mbg_read(&g2, 0, VBLK, VBUF_OFF, TMO), MB_SC_OK);
		for (uint32_t lba = 0; lba < VBLK; lba++)
			if (!block_is(dm + VBUF_OFF + lba * MB_BLOCK_SIZE, 7, lba, 1000 + lba))
				fail_msg("a checkpoint %s changed block %u of the destination",
					 cases[c].what, lba);
		memset(dm + VBUF_OFF, 0, VBLK * MB_BLOCK_SIZE);
		read_regs(&f->dst.s[0], regs0); /* the READ moved the ring indices */
		memcpy(mem0, dm, MEM_SIZE);
	}
	free(mem0);
	mbg_destroy(&g2);

	/* The whole file, into a fresh destination: it equals the source at the checkpoint. */
	dst_open(f, &devmig_variant_memblk, DEV_ARGS);
	struct devmig_client *d[MAXDEV];
	clients_of(&f->dst, d);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	clear_events(f);
	rc = devmig_restore(&cfg, fd, d, f->n, f->dst.mem, &rrep);
	close(fd);
	if (rc)
		fail_msg("restore: %d: %s", rc, rrep.error);
	assert_true(rrep.completed);
	assert_int_equal(f->pauses, 0);
	assert_dst_running(&f->dst);
	for (unsigned k = 0; k < f->n; k++) {
		read_regs(&f->dst.s[k], regs1);
		if (memcmp(f->snap_regs[k], regs1, sizeof(regs1)))
			fail_msg("device %u's registers differ from the source's at the checkpoint", k);
	}
	if (memcmp(f->snap_mem, mem_of(&f->dst), MEM_SIZE))
		fail_msg("guest memory differs from the source's at the checkpoint");
	/* The guest resumes on the restored devices where it was. */
	for (unsigned k = 0; k < f->n; k++) {
		struct mbg_mmio dio = mbg_mmio_client(f->dst.s[k].cl);
		mbg_destroy(&f->w.d[k].g);
		assert_int_equal(mbg_init(&f->w.d[k].g, &dio, mem_of(&f->dst), 0, MEM_SIZE,
					  f->dst.s[k].efd), 0);
		assert_int_equal(mbg_setup_queues(&f->w.d[k].g, AREA(k) + SQ_OFF, QSIZE,
						  AREA(k) + CQ_OFF, QSIZE, NULL), 0);
	}
	verify_against(f, f->snap_ver, "restored destination");
}

/* ---------------------------------------------------------------- incompatible destination */

static void other_device_variant_is_refused_before_the_guest_pauses(void **state)
{
	struct fx *f = *state;
	struct devmig_migration_report rep;

	dst_open(f, &devmig_variant_counter, NULL);
	wl_start(f);
	wl_wait_ops(f, 50, false);
	struct devmig_engine_config cfg = base_cfg(f);
	int rc = migrate_local(f, &cfg, &rep);
	print_message("# refused: %s\n", rep.error);
	assert_int_equal(f->pauses, 0);
	assert_int_equal(f->switchovers, 0);
	assert_int_equal(rep.downtime_ns, 0);
	assert_int_equal(count_arcs(f, false, DEVMIG_STATE_STOP_COPY), 0);
	after_failure(f, rc, &rep, "destination device 0");
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_sigpipe };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			live_migration_under_workload_keeps_every_acknowledged_write, setup1,
			fx_teardown),
		cmocka_unit_test_setup_teardown(two_devices_quiesce_all_before_stopping_any, setup2,
						fx_teardown),
		cmocka_unit_test_setup_teardown(
			stop_and_copy_only_migrates_and_reports_no_device_precopy, setup1, fx_teardown),
		cmocka_unit_test_setup_teardown(destination_killed_during_precopy_source_runs_on,
						setup1, fx_teardown),
		cmocka_unit_test_setup_teardown(
			destination_killed_during_stop_copy_drain_source_runs_on, setup1, fx_teardown),
		cmocka_unit_test_setup_teardown(destination_killed_before_commit_source_runs_on,
						setup1, fx_teardown),
		cmocka_unit_test_setup_teardown(corrupted_channel_is_refused_and_source_unwinds,
						setup1, fx_teardown),
		cmocka_unit_test_setup_teardown(raw_device_data_damaged_on_the_wire_is_refused_by_the_device,
						setup1, fx_teardown),
		cmocka_unit_test_setup_teardown(peers_without_the_data_fd_extension_migrate_by_messages,
						setup_no_data_fd_src, fx_teardown),
		cmocka_unit_test_setup_teardown(peers_without_the_data_fd_extension_migrate_by_messages,
						setup_no_data_fd_dst, fx_teardown),
		cmocka_unit_test_setup_teardown(peers_without_the_data_fd_extension_migrate_by_messages,
						setup_no_data_fd_both, fx_teardown),
		cmocka_unit_test_setup_teardown(dropped_channel_is_refused_and_source_unwinds, setup1,
						fx_teardown),
		cmocka_unit_test_setup_teardown(tcp_loopback_migrates_and_survives_a_shutdown, setup1,
						fx_teardown),
		cmocka_unit_test_setup_teardown(lost_run_answer_leaves_the_source_stopped, setup1,
						fx_teardown),
		cmocka_unit_test_setup_teardown(
			checkpoint_restores_equal_and_damaged_files_change_nothing, setup1, fx_teardown),
		cmocka_unit_test_setup_teardown(
			other_device_variant_is_refused_before_the_guest_pauses, setup1, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
