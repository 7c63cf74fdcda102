/* SPDX-License-Identifier: MIT */
/*
 * Deadlines on state changes and dirty-rate limiting, end to end: devices
 * served on sockets, the client's calls, and the engine.
 *
 * "gauge", a test variant, has tracked memory (4 MiB), an estimate the test
 * adds to per arc (extra_ns), arcs the test makes slow (sleep_ns), a count
 * of the arcs it ran, and a "hog" worker that rewrites its memory in
 * order, up to 64 MiB/s, holding each chunk's completion under a VMM's cap
 * (devmig_device_throttle). memblk is the real device: its declared arc
 * costs, and its WRITE completions held under a cap.
 *
 * Timing: assertions are on what the device and the engine decided and
 * reported. Where time matters it is made to pass (an arc that sleeps
 * 150 ms takes at least that), and bounds are one-sided: a capped device
 * writes at most so much, however slow the machine; the engine's link is
 * capped so rounds take the same time everywhere.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices.h"
#include "devmig/client.h"
#include "devmig/engine.h"
#include "devmig/server.h"
#include "fixture.h"
#include "memblk/memblk_workload.h"

#define MS (1000ull * 1000)
#define S (1000ull * MS)
#define GAUGE_SIZE (4u << 20)
#define GAUGE_CHUNK (64u << 10)
#define R DEVMIG_STATE_RUNNING
#define RP DEVMIG_STATE_RUNNING_P2P
#define ST DEVMIG_STATE_STOP
#define SC DEVMIG_STATE_STOP_COPY
#define PC DEVMIG_STATE_PRE_COPY
#define PCP DEVMIG_STATE_PRE_COPY_P2P

static char dir[FX_PATH_MAX];

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * S + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / S), (long)(ns % S) };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---------------------------------------------------------------- gauge */

struct gauge {
	struct devmig_device dev;
	struct devmig_tracker *trk;
	_Atomic uint64_t extra_ns[DEVMIG_STATE_COUNT][DEVMIG_STATE_COUNT];
	_Atomic uint64_t sleep_ns[DEVMIG_STATE_COUNT][DEVMIG_STATE_COUNT];
	_Atomic unsigned arcs;
	_Atomic uint64_t written;

	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool hog, paused, busy, exiting;
	pthread_t worker;
	uint64_t pos;
	uint32_t pass;
};

static struct gauge *to_gauge(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct gauge, dev);
}

static void *hog_main(void *arg)
{
	struct gauge *g = arg;
	static _Thread_local uint8_t buf[GAUGE_CHUNK];

	pthread_mutex_lock(&g->lock);
	while (!g->exiting) {
		if (!g->hog || g->paused) {
			g->busy = false;
			pthread_cond_broadcast(&g->cv);
			pthread_cond_wait(&g->cv, &g->lock);
			continue;
		}
		g->busy = true;
		uint64_t pos = g->pos;
		uint32_t pass = g->pass;
		g->pos = (pos + GAUGE_CHUNK) % GAUGE_SIZE;
		if (!g->pos)
			g->pass++;
		pthread_mutex_unlock(&g->lock);
		memset(buf, (int)(pass + 1), sizeof(buf));
		memcpy(buf, &pos, sizeof(pos));
		devmig_tracker_write(g->trk, pos, buf, sizeof(buf));
		atomic_fetch_add(&g->written, sizeof(buf));
		/* The "completion" waits under a cap; then a breather (64 MiB/s at most). */
		devmig_device_throttle(&g->dev, sizeof(buf));
		sleep_ns(1 * MS);
		pthread_mutex_lock(&g->lock);
	}
	g->busy = false;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

static int gauge_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	struct gauge *g = to_gauge(dev);
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10fe);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 0, 4096, 0);
	if (!rc && !(g->trk = devmig_tracker_new(dev, GAUGE_SIZE, GAUGE_CHUNK, 0)))
		rc = -errno;
	return rc;
}

static int gauge_arc(struct devmig_device *dev, enum devmig_state from, enum devmig_state to,
		     struct devmig_arc_result *res)
{
	struct gauge *g = to_gauge(dev);
	bool qf = devmig_state_is_quiesced(from), qt = devmig_state_is_quiesced(to);

	(void)res;
	pthread_mutex_lock(&g->lock);
	if (!qf && qt) {
		g->paused = true;
		pthread_cond_broadcast(&g->cv);
		while (g->busy)
			pthread_cond_wait(&g->cv, &g->lock);
	} else if (qf && !qt) {
		g->paused = false;
		pthread_cond_broadcast(&g->cv);
	}
	pthread_mutex_unlock(&g->lock);
	uint64_t ns = atomic_load(&g->sleep_ns[from][to]);
	if (ns)
		sleep_ns(ns);
	atomic_fetch_add(&g->arcs, 1);
	return 0;
}

static uint64_t gauge_estimate(struct devmig_device *dev, enum devmig_state from,
			       enum devmig_state to, bool *partial)
{
	return devmig_device_default_arc_estimate(dev, from, to, partial) +
	       atomic_load(&to_gauge(dev)->extra_ns[from][to]);
}

static const struct devmig_device_id gauge_id = { .name = "gauge", .version = "gauge-v1" };
static const struct devmig_device_ops gauge_ops = { .realize = gauge_realize };
static const struct devmig_migration_ops gauge_mig = {
	.caps = DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P | DEVMIG_MIG_PRE_COPY,
	.arc = gauge_arc,
	.arc_estimate = gauge_estimate,
	.dirty_rate_limit = true,
};

static struct gauge *gauge_new(bool hog)
{
	struct gauge *g = calloc(1, sizeof(*g));
	assert_non_null(g);
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->hog = hog;
	g->dev.id = &gauge_id;
	g->dev.ops = &gauge_ops;
	g->dev.mig = &gauge_mig;
	assert_int_equal(devmig_device_init(&g->dev), 0);
	assert_int_equal(pthread_create(&g->worker, NULL, hog_main, g), 0);
	return g;
}

static void gauge_free(struct gauge *g)
{
	pthread_mutex_lock(&g->lock);
	g->exiting = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->worker, NULL);
	devmig_device_destroy(&g->dev);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

/* A gauge served on dir/name.sock, and a client. */
struct host {
	struct gauge *g;
	struct fx_server fx;
	struct devmig_client *c;
};

static void host_open(struct host *h, const char *name, bool hog,
		      const struct devmig_client_config *cfg)
{
	memset(h, 0, sizeof(*h));
	h->g = gauge_new(hog);
	fx_serve(&h->fx, dir, name, &h->g->dev);
	h->c = fx_connect(&h->fx, cfg);
}

static void host_close(struct host *h)
{
	devmig_client_close(h->c);
	fx_unserve(&h->fx);
	gauge_free(h->g);
}

static int setup(void **state)
{
	(void)state;
	fx_tmpdir(dir, "deadline");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fx_rmdir(dir);
	return 0;
}

static enum devmig_state state_of(struct devmig_client *c)
{
	enum devmig_state st = DEVMIG_STATE_ERROR;
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	return st;
}

static void set_state(struct devmig_client *c, enum devmig_state st)
{
	int rc = devmig_client_set_state(c, st);
	if (rc)
		fail_msg("-> %s: %s", devmig_state_name(st), strerror(-rc));
}

/* Read the stream until a short read; the bytes read. */
static uint64_t read_out(struct devmig_client *c)
{
	static uint8_t buf[1 << 20];
	uint64_t total = 0;
	for (;;) {
		ssize_t n = devmig_client_mig_read(c, buf, sizeof(buf));
		assert_true(n >= 0);
		total += (uint64_t)n;
		if ((size_t)n < sizeof(buf))
			return total;
	}
}

/* ---------------------------------------------------------------- the device's side */

static void a_deadline_too_short_is_refused_with_etime_and_nothing_changes(void **state)
{
	struct host h;
	struct devmig_deadline_result res;
	(void)state;
	host_open(&h, "short", false, NULL);
	assert_true(devmig_client_has_ext(h.c, DEVMIG_EXT_DEADLINE));
	/* Its first arc takes 10 s by its estimate: 50 ms is refused before it. */
	atomic_store(&h.g->extra_ns[R][RP], 10 * S);
	assert_int_equal(devmig_client_set_state_deadline(h.c, ST, 50 * MS, &res), -ETIME);
	assert_true(res.flags & DEVMIG_DEADLINE_REFUSED);
	assert_int_equal(res.state, R);
	assert_true(res.estimate_ns >= 10 * S);
	assert_int_equal(res.overrun_ns, 0);
	assert_int_equal(state_of(h.c), R);
	assert_int_equal(atomic_load(&h.g->arcs), 0);
	char reason[DEVMIG_MIG_STATUS_REASON];
	uint64_t b;
	int le;
	assert_int_equal(devmig_client_mig_status(h.c, &b, &le, reason, sizeof(reason)), 0);
	assert_non_null(strstr(reason, "deadline"));
	/* The device's record of it. */
	struct devmig_feature_arc_estimates est;
	assert_int_equal(devmig_client_arc_estimates(h.c, &est), 0);
	assert_int_equal(est.last_state, ST);
	assert_true(est.last_flags & DEVMIG_DEADLINE_REFUSED);
	assert_int_equal(est.last_deadline_ns, 50 * MS);
	/* With room, the same request goes through; without a deadline too. */
	assert_int_equal(devmig_client_set_state_deadline(h.c, ST, 20 * S, &res), 0);
	assert_int_equal(res.state, ST);
	assert_false(res.flags & DEVMIG_DEADLINE_REFUSED);
	assert_int_equal(state_of(h.c), ST);
	set_state(h.c, R);
	/* A request the state machine refuses is EINVAL, as without a deadline. */
	assert_int_equal(devmig_client_set_state_deadline(h.c, DEVMIG_STATE_ERROR, S, &res),
			 -EINVAL);
	host_close(&h);
}

static void a_later_arc_that_no_longer_fits_is_not_started(void **state)
{
	struct host h;
	struct devmig_deadline_result res;
	(void)state;
	host_open(&h, "later", false, NULL);
	/* RUNNING -> RUNNING_P2P is estimated free but takes 150 ms; the next
	 * arc is estimated at 100 ms: 0 + 100 fits 200 ms, 150 + 100 does not. */
	atomic_store(&h.g->sleep_ns[R][RP], 150 * MS);
	atomic_store(&h.g->extra_ns[RP][ST], 100 * MS);
	assert_int_equal(devmig_client_set_state_deadline(h.c, ST, 200 * MS, &res), -ETIME);
	assert_true(res.flags & DEVMIG_DEADLINE_REFUSED);
	assert_int_equal(res.state, RP); /* the arc started was finished, the next not started */
	/* What it needed from receipt: the 150 ms spent and the 100 ms left. */
	assert_true(res.estimate_ns >= 250 * MS && res.estimate_ns <= res.elapsed_ns + 100 * MS);
	assert_true(res.estimate_ns > 200 * MS);
	assert_true(res.elapsed_ns >= 150 * MS);
	assert_int_equal(state_of(h.c), RP);
	assert_int_equal(atomic_load(&h.g->arcs), 1);
	set_state(h.c, R);
	host_close(&h);
}

static void a_committed_arc_that_overruns_reports_it(void **state)
{
	struct host h;
	struct devmig_deadline_result res;
	(void)state;
	host_open(&h, "overrun", false, NULL);
	/* Estimated free, takes 80 ms, 20 ms given: started, finished, late. */
	atomic_store(&h.g->sleep_ns[R][RP], 80 * MS);
	assert_int_equal(devmig_client_set_state_deadline(h.c, RP, 20 * MS, &res), 0);
	assert_int_equal(res.state, RP);
	assert_true(res.flags & DEVMIG_DEADLINE_OVERRUN);
	assert_false(res.flags & DEVMIG_DEADLINE_REFUSED);
	assert_true(res.overrun_ns >= 60 * MS);
	assert_true(res.elapsed_ns >= 80 * MS);
	assert_int_equal(state_of(h.c), RP);
	struct devmig_feature_arc_estimates est;
	assert_int_equal(devmig_client_arc_estimates(h.c, &est), 0);
	assert_true(est.last_flags & DEVMIG_DEADLINE_OVERRUN);
	assert_true(est.last_overrun_ns >= 60 * MS);
	/* In time: no overrun. */
	atomic_store(&h.g->sleep_ns[R][RP], 0);
	set_state(h.c, R);
	assert_int_equal(devmig_client_set_state_deadline(h.c, RP, 20 * S, &res), 0);
	assert_false(res.flags & DEVMIG_DEADLINE_OVERRUN);
	assert_int_equal(res.overrun_ns, 0);
	set_state(h.c, R);
	host_close(&h);
}

static const struct devmig_arc_estimate *find_arc(const struct devmig_feature_arc_estimates *e,
						  enum devmig_state from, enum devmig_state to)
{
	for (uint32_t i = 0; i < e->narcs; i++)
		if (e->arcs[i].from == from && e->arcs[i].to == to)
			return &e->arcs[i];
	fail_msg("no estimate of %s -> %s", devmig_state_name(from), devmig_state_name(to));
	return NULL;
}

static void estimates_carry_fixed_costs_the_rate_and_the_drain(void **state)
{
	struct fx_server s = { 0 };
	struct devmig_feature_arc_estimates est;
	struct devmig_deadline_result res;
	(void)state;
	/* memblk1 sends every chunk whole: a stream of full reads to time. */
	fx_serve_variant(&s, dir, "est", &devmig_variant_memblk1, "size=8M");
	/* By messages: the device sees each read, so the drain ends at the
	 * client's last one. Over a data fd it ends when the device has put its
	 * last bytes into the pipe (the pipe may still hold up to its size). */
	struct devmig_client_config cc = { .ext = DEVMIG_EXT_ALL & ~DEVMIG_EXT_DATA_FD };
	struct devmig_client *c = fx_connect(&s, &cc);
	assert_int_equal(devmig_client_arc_estimates(c, &est), 0);
	/* Every primitive arc of a device with P2P and PRE_COPY. */
	assert_int_equal(est.narcs, 15);
	/* memblk declares 1 ms for a quiescing arc; the rest are free. */
	assert_int_equal(find_arc(&est, R, RP)->ns, 1 * MS);
	assert_int_equal(find_arc(&est, PC, PCP)->ns, 1 * MS);
	assert_int_equal(find_arc(&est, RP, ST)->ns, 0);
	/* Nothing read yet: no rate, the STOP_COPY arcs leave their data out. */
	assert_int_equal(est.rate, 0);
	assert_true(find_arc(&est, ST, SC)->flags & DEVMIG_DEADLINE_PARTIAL);
	assert_true(est.stop_copy_bytes > 0);
	/* A PRE_COPY session read out: the rate is known, the data counted. */
	set_state(c, PC);
	assert_true(read_out(c) > 0);
	assert_int_equal(devmig_client_arc_estimates(c, &est), 0);
	assert_true(est.rate > 0);
	const struct devmig_arc_estimate *a = find_arc(&est, PCP, SC);
	assert_false(a->flags & DEVMIG_DEADLINE_PARTIAL);
	uint64_t data_ns = (uint64_t)((double)est.stop_copy_bytes * 1e9 / (double)est.rate);
	assert_true(a->ns + 1000 >= data_ns && a->ns <= data_ns + 1000);
	uint64_t path;
	bool partial;
	assert_int_equal(devmig_arc_estimates_path(&est, PC, SC, DEVMIG_MIG_ALL, &path, &partial), 0);
	assert_int_equal(path, 1 * MS + a->ns);
	assert_false(partial);
	/* Into STOP_COPY with a deadline: the drain is held to it too. */
	assert_int_equal(devmig_client_set_state_deadline(c, SC, 60 * S, &res), 0);
	assert_int_equal(devmig_client_arc_estimates(c, &est), 0);
	assert_false(est.last_flags & DEVMIG_DEADLINE_DRAINED);
	read_out(c);
	assert_int_equal(devmig_client_arc_estimates(c, &est), 0);
	assert_int_equal(est.last_state, SC);
	assert_true(est.last_flags & DEVMIG_DEADLINE_DRAINED);
	assert_false(est.last_flags & DEVMIG_DEADLINE_OVERRUN);
	assert_int_equal(est.last_overrun_ns, 0);
	assert_true(est.last_elapsed_ns >= res.elapsed_ns);
	set_state(c, R);
	devmig_client_close(c);
	fx_unserve(&s);
}

/* memblk with a guest writing as fast as it can (every I/O a WRITE). */
struct mb_host {
	struct fx_server fx;
	struct devmig_client *c;
	struct devmig_guest_mem *mem;
	int efd;
	struct mbw *w;
};

static void mb_open(struct mb_host *m, const char *name)
{
	char err[256] = "";
	memset(m, 0, sizeof(*m));
	fx_serve_variant(&m->fx, dir, name, &devmig_variant_memblk, "size=16M");
	m->c = fx_connect(&m->fx, NULL);
	m->mem = devmig_guest_mem_new(4u << 20, err, sizeof(err));
	assert_non_null(m->mem);
	assert_int_equal(devmig_client_dma_map(m->c, 0, 4u << 20, DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
					       devmig_guest_mem_fd(m->mem), 0, NULL), 0);
	m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_int_equal(mbg_client_enable_msix(m->c, m->efd), 0);
	struct mbw_config wc = {
		.io = mbg_mmio_client(m->c), .irq_fd = m->efd, .mem = m->mem, .write_pct = 100,
	};
	m->w = mbw_new(&wc, err, sizeof(err));
	if (!m->w)
		fail_msg("workload: %s", err);
}

static void mb_close(struct mb_host *m)
{
	mbw_free(m->w);
	devmig_client_close(m->c);
	fx_unserve(&m->fx);
	devmig_guest_mem_free(m->mem);
	close(m->efd);
}

static void memblk_holds_writes_to_a_cap_in_pre_copy_and_the_guest_sees_no_error(void **state)
{
	struct mb_host m;
	struct devmig_feature_dirty_rate dr;
	struct mbw_stats a, b;
	const uint64_t cap = 1u << 20;
	(void)state;
	mb_open(&m, "cap");
	assert_true(devmig_client_has_ext(m.c, DEVMIG_EXT_DIRTY_RATE));
	assert_int_equal(devmig_client_set_dirty_rate(m.c, cap), 0);
	/* Set in RUNNING: it holds only in PRE_COPY. */
	assert_int_equal(devmig_client_dirty_rate(m.c, &dr), 0);
	assert_int_equal(dr.cap, cap);
	assert_false(dr.flags & DEVMIG_DIRTY_RATE_ACTIVE);
	set_state(m.c, PC);
	assert_int_equal(devmig_client_dirty_rate(m.c, &dr), 0);
	assert_true(dr.flags & DEVMIG_DIRTY_RATE_ACTIVE);
	assert_int_equal(mbw_start(m.w), 0);
	sleep_ns(100 * MS);
	mbw_get_stats(m.w, &a);
	uint64_t t0 = now_ns();
	sleep_ns(1 * S);
	mbw_get_stats(m.w, &b);
	uint64_t t1 = now_ns();
	/* At most the cap over the time, a burst and what was in flight at
	 * each end (8 requests of up to 8 blocks); however slow the machine. */
	uint64_t most = (uint64_t)((double)cap * (t1 - t0) / 1e9) + cap / 50 + 2 * 8 * 8 * 4096;
	print_message("# %llu bytes written in %.0f ms under a cap of %llu B/s (at most %llu)\n",
		      (unsigned long long)(b.bytes - a.bytes), (t1 - t0) / 1e6,
		      (unsigned long long)cap, (unsigned long long)most);
	assert_true(b.bytes > a.bytes); /* slowed, not stopped */
	assert_true(b.bytes - a.bytes <= most);
	assert_int_equal(devmig_client_dirty_rate(m.c, &dr), 0);
	assert_true(dr.throttled_ns > 0);
	assert_true(dr.flags & DEVMIG_DIRTY_RATE_ACTIVE);
	/* Lifted: the cap is gone and so is the hold. */
	assert_int_equal(devmig_client_set_dirty_rate(m.c, 0), 0);
	assert_int_equal(devmig_client_dirty_rate(m.c, &dr), 0);
	assert_int_equal(dr.cap, 0);
	assert_false(dr.flags & DEVMIG_DIRTY_RATE_ACTIVE);
	assert_int_equal(mbw_stop(m.w), 0);
	mbw_get_stats(m.w, &b);
	assert_int_equal(b.errors, 0);
	assert_int_equal(b.mismatches, 0);
	/* A cap does not hold the arc out of PRE_COPY: set again, the device
	 * leaves PRE_COPY at once with its writes through. */
	assert_int_equal(devmig_client_set_dirty_rate(m.c, 1), 0);
	set_state(m.c, R);
	assert_int_equal(devmig_client_dirty_rate(m.c, &dr), 0);
	assert_false(dr.flags & DEVMIG_DIRTY_RATE_ACTIVE);
	struct mbw_verify_result vr;
	char err[256];
	assert_int_equal(mbw_verify(m.w, &vr, err, sizeof(err)), 0);
	mb_close(&m);
}

static void the_cap_goes_with_its_client_and_with_a_reset(void **state)
{
	struct host h;
	struct devmig_feature_dirty_rate dr;
	char err[256];
	(void)state;
	host_open(&h, "goes", false, NULL);
	assert_int_equal(devmig_client_set_dirty_rate(h.c, 12345), 0);
	assert_int_equal(devmig_client_reset(h.c), 0);
	assert_int_equal(devmig_client_dirty_rate(h.c, &dr), 0);
	assert_int_equal(dr.cap, 0);
	assert_int_equal(devmig_client_set_dirty_rate(h.c, 12345), 0);
	assert_int_equal(devmig_client_reconnect(h.c, err, sizeof(err)), 0);
	assert_int_equal(devmig_client_dirty_rate(h.c, &dr), 0);
	assert_int_equal(dr.cap, 0);
	host_close(&h);
}

/* A raw DEVICE_FEATURE of index with op; the reply's errno (0 when not an error). */
static int raw_feature(struct devmig_client *c, uint32_t flags, const void *data, size_t len)
{
	struct devmig_msg m;
	uint8_t buf[512], reply[1024];
	enum devmig_wire_err err;
	memset(&m, 0, sizeof(m));
	m.hdr.msg_id = 0x7777;
	m.hdr.cmd = DEVMIG_CMD_DEVICE_FEATURE;
	m.u.feature.f.flags = flags;
	m.u.feature.f.argsz = (uint32_t)(sizeof(struct devmig_feature) + 480);
	m.u.feature.data = data;
	m.u.feature.data_len = len;
	size_t n = devmig_encode(buf, sizeof(buf), &m, &err);
	assert_true(n > 0);
	ssize_t r = devmig_client_raw(c, buf, n, NULL, 0, reply, sizeof(reply));
	assert_true(r >= (ssize_t)DEVMIG_HDR_SIZE);
	struct devmig_hdr h;
	memcpy(&h, reply, sizeof(h));
	return (h.flags & DEVMIG_HDR_ERROR) ? (int)h.error_no : 0;
}

static void a_plain_client_sees_none_of_it(void **state)
{
	struct host h;
	struct devmig_client_config plain = { .no_ext = true };
	struct devmig_caps sv;
	struct devmig_deadline_result res;
	struct devmig_feature_dirty_rate dr;
	struct devmig_feature_arc_estimates est;
	(void)state;
	host_open(&h, "plain", false, &plain);
	devmig_client_server_caps(h.c, &sv);
	assert_int_equal(sv.ext, 0);
	assert_false(devmig_client_has_ext(h.c, DEVMIG_EXT_DEADLINE));
	assert_int_equal(devmig_client_set_state_deadline(h.c, ST, S, &res), -ENOTSUP);
	assert_int_equal(devmig_client_arc_estimates(h.c, &est), -ENOTSUP);
	assert_int_equal(devmig_client_set_dirty_rate(h.c, 1), -ENOTSUP);
	assert_int_equal(devmig_client_dirty_rate(h.c, &dr), -ENOTSUP);
	/* Asked anyway, on the wire: the server does not know them. */
	struct devmig_feature_mig_deadline dl = { .device_state = ST, .deadline_ns = S };
	uint64_t cap = 1;
	assert_int_equal(raw_feature(h.c, DEVMIG_FEATURE_SET | DEVMIG_FEATURE_MIG_STATE_DEADLINE,
				     &dl, sizeof(dl)), ENOTTY);
	assert_int_equal(raw_feature(h.c, DEVMIG_FEATURE_GET | DEVMIG_FEATURE_ARC_ESTIMATES, NULL,
				     0), ENOTTY);
	assert_int_equal(raw_feature(h.c, DEVMIG_FEATURE_SET | DEVMIG_FEATURE_DIRTY_RATE, &cap,
				     sizeof(cap)), ENOTTY);
	assert_int_equal(raw_feature(h.c, DEVMIG_FEATURE_GET | DEVMIG_FEATURE_DIRTY_RATE, NULL, 0),
			 ENOTTY);
	assert_int_equal(state_of(h.c), R);
	assert_int_equal(atomic_load(&h.g->arcs), 0);
	host_close(&h);
	/* A device that does not honour a cap does not offer one. */
	struct fx_server s = { 0 };
	fx_serve_variant(&s, dir, "counter", &devmig_variant_counter, NULL);
	struct devmig_client *c = fx_connect(&s, NULL);
	assert_true(devmig_client_has_ext(c, DEVMIG_EXT_DEADLINE));
	assert_false(devmig_client_has_ext(c, DEVMIG_EXT_DIRTY_RATE));
	assert_int_equal(raw_feature(c, DEVMIG_FEATURE_SET | DEVMIG_FEATURE_DIRTY_RATE, &cap,
				     sizeof(cap)), ENOTTY);
	devmig_client_close(c);
	fx_unserve(&s);
}

/* ---------------------------------------------------------------- the engine */

#define MAXEV 4096
struct events {
	unsigned n;
	struct devmig_engine_event ev[MAXEV];
	struct gauge *src;        /* retry test: the source gauge */
	unsigned switchovers;
};

static void on_event(void *opaque, const struct devmig_engine_event *ev)
{
	struct events *e = opaque;
	if (e->n < MAXEV)
		e->ev[e->n++] = *ev;
	if (!e->src)
		return;
	/* The first switchover meets a device whose stop suddenly takes 10 s. */
	if (ev->type == DEVMIG_EV_SWITCHOVER && e->switchovers++ == 0)
		atomic_store(&e->src->extra_ns[PCP][SC], 10 * S);
	if (ev->type == DEVMIG_EV_REFUSED)
		atomic_store(&e->src->extra_ns[PCP][SC], 0);
}

static unsigned count(const struct events *e, enum devmig_engine_event_type t)
{
	unsigned k = 0;
	for (unsigned i = 0; i < e->n; i++)
		k += e->ev[i].type == t;
	return k;
}

static void same_memory(struct gauge *a, struct gauge *b)
{
	assert_memory_equal(devmig_tracker_mem(a->trk), devmig_tracker_mem(b->trk), GAUGE_SIZE);
}

static uint64_t cap_of(struct devmig_client *c)
{
	struct devmig_feature_dirty_rate dr;
	assert_int_equal(devmig_client_dirty_rate(c, &dr), 0);
	return dr.cap;
}

/* A held budget over a link of 8 MiB/s: 4 MiB of gauge is 500 ms. */
static struct devmig_engine_config held(struct events *ev, bool throttle)
{
	struct devmig_engine_config cfg = {
		.downtime_budget_ns = 200 * MS,
		.max_rounds = 40,
		.link_rate = 8u << 20,
		.no_throttle = !throttle,
		.event = on_event,
		.opaque = ev,
	};
	return cfg;
}

static void limiting_makes_a_non_converging_migration_converge(void **state)
{
	static struct events ev;
	struct devmig_migration_report rep;
	struct host src, dst;
	(void)state;

	/* Without limiting: the hog dirties everything every round; the device
	 * refuses the budget and the migration is abandoned, the source running. */
	host_open(&src, "src", true, NULL);
	host_open(&dst, "dst", false, NULL);
	memset(&ev, 0, sizeof(ev));
	struct devmig_engine_config cfg = held(&ev, false);
	int rc = devmig_migrate_local(&cfg, &src.c, &dst.c, 1, NULL, NULL, &rep);
	print_message("# without limiting: rc %d, %u rounds, %u refusals: %s\n", rc, rep.rounds,
		      rep.deadline_refusals, rep.error);
	assert_int_equal(rc, -ETIME);
	assert_false(rep.completed);
	assert_false(rep.converged);
	assert_true(rep.deadlines);
	assert_true(rep.deadline_refusals >= 1);
	assert_true(rep.refusal_estimate_ns > rep.refusal_deadline_ns);
	assert_int_equal(rep.throttle_steps, 0);
	assert_int_equal(rep.src_state[0], R);
	assert_int_equal(state_of(src.c), R);
	uint64_t w = atomic_load(&src.g->written);
	sleep_ns(50 * MS);
	assert_true(atomic_load(&src.g->written) > w); /* it runs on */
	host_close(&src);
	host_close(&dst);

	/* With limiting: capped lower until the rounds shrink, then within the budget. */
	host_open(&src, "src", true, NULL);
	host_open(&dst, "dst", false, NULL);
	memset(&ev, 0, sizeof(ev));
	cfg = held(&ev, true);
	rc = devmig_migrate_local(&cfg, &src.c, &dst.c, 1, NULL, NULL, &rep);
	print_message("# with limiting: rc %d, %u rounds, cap %llu B/s for %.1f s in %u steps, "
		      "downtime %.1f ms: %s\n", rc, rep.rounds,
		      (unsigned long long)rep.throttle_cap, rep.throttle_ns / 1e9,
		      rep.throttle_steps, rep.downtime_ns / 1e6, rep.error);
	assert_int_equal(rc, 0);
	assert_true(rep.completed);
	assert_true(rep.converged);
	assert_true(rep.throttle_steps >= 1);
	assert_true(rep.throttle_cap > 0 && rep.throttle_cap <= 8u << 20);
	assert_true(rep.throttle_ns > 0);
	assert_true(count(&ev, DEVMIG_EV_THROTTLE) >= 2); /* set, then lifted */
	same_memory(src.g, dst.g);
	/* Lifted after the success. */
	assert_int_equal(cap_of(src.c), 0);
	assert_int_equal(state_of(dst.c), R);
	host_close(&src);
	host_close(&dst);
}

static void the_engine_retries_after_a_refusal(void **state)
{
	static struct events ev;
	struct devmig_migration_report rep;
	struct host src, dst;
	(void)state;
	host_open(&src, "src", false, NULL);
	host_open(&dst, "dst", false, NULL);
	/* Some state to move. */
	uint8_t pat[GAUGE_CHUNK];
	memset(pat, 0x5a, sizeof(pat));
	for (uint64_t off = 0; off < GAUGE_SIZE; off += 2 * GAUGE_CHUNK)
		devmig_tracker_write(src.g->trk, off, pat, sizeof(pat));
	memset(&ev, 0, sizeof(ev));
	ev.src = src.g;
	struct devmig_engine_config cfg = held(&ev, true);
	cfg.downtime_budget_ns = 500 * MS;
	int rc = devmig_migrate_local(&cfg, &src.c, &dst.c, 1, NULL, NULL, &rep);
	print_message("# rc %d, %u rounds, %u refusals (%.0f ms needed, %.0f ms left): %s\n", rc,
		      rep.rounds, rep.deadline_refusals, rep.refusal_estimate_ns / 1e6,
		      rep.refusal_deadline_ns / 1e6, rep.error);
	assert_int_equal(rc, 0);
	assert_true(rep.completed);
	assert_int_equal(rep.deadline_refusals, 1);
	assert_true(rep.refusal_estimate_ns >= 10 * S);
	assert_true(rep.refusal_deadline_ns <= 500 * MS);
	assert_int_equal(count(&ev, DEVMIG_EV_SWITCHOVER), 2);
	assert_int_equal(count(&ev, DEVMIG_EV_REFUSED), 1);
	/* After the refusal: back to PRE_COPY, another round, then the switchover. */
	unsigned i = 0;
	while (ev.ev[i].type != DEVMIG_EV_REFUSED)
		i++;
	bool back = false, round = false;
	for (i++; i < ev.n && ev.ev[i].type != DEVMIG_EV_SWITCHOVER; i++) {
		back |= ev.ev[i].type == DEVMIG_EV_ARC && ev.ev[i].from == PCP && ev.ev[i].to == PC;
		round |= ev.ev[i].type == DEVMIG_EV_ROUND && back;
	}
	assert_true(back);
	assert_true(round);
	assert_int_equal(ev.ev[ev.n - 1].type, DEVMIG_EV_DONE);
	same_memory(src.g, dst.g);
	host_close(&src);
	host_close(&dst);
}

static void limits_are_lifted_after_an_unwind(void **state)
{
	static struct events ev;
	struct devmig_migration_report rep;
	struct host src, dst;
	(void)state;
	host_open(&src, "src", true, NULL);
	host_open(&dst, "dst", false, NULL);
	/* A stop that never fits: caps come and go, the migration is abandoned. */
	atomic_store(&src.g->extra_ns[PCP][SC], 10 * S);
	memset(&ev, 0, sizeof(ev));
	struct devmig_engine_config cfg = held(&ev, true);
	cfg.max_rounds = 6;
	int rc = devmig_migrate_local(&cfg, &src.c, &dst.c, 1, NULL, NULL, &rep);
	print_message("# rc %d, %u rounds, %u cap steps, %u refusals: %s\n", rc, rep.rounds,
		      rep.throttle_steps, rep.deadline_refusals, rep.error);
	assert_int_equal(rc, -ETIME);
	assert_false(rep.completed);
	assert_true(rep.throttle_steps >= 1);
	assert_true(count(&ev, DEVMIG_EV_UNWIND) == 1);
	assert_int_equal(state_of(src.c), R);
	assert_int_equal(cap_of(src.c), 0);
	/* The last throttle event lifts it. */
	unsigned last = 0;
	for (unsigned i = 0; i < ev.n; i++)
		if (ev.ev[i].type == DEVMIG_EV_THROTTLE)
			last = i;
	assert_int_equal(ev.ev[last].cap, 0);
	uint64_t w = atomic_load(&src.g->written);
	sleep_ns(50 * MS);
	assert_true(atomic_load(&src.g->written) > w); /* the guest's device runs on, uncapped */
	host_close(&src);
	host_close(&dst);
}

static void plain_clients_migrate_without_deadlines_or_caps(void **state)
{
	static struct events ev;
	struct devmig_migration_report rep;
	struct host src, dst;
	struct devmig_client_config plain = { .no_ext = true };
	(void)state;
	host_open(&src, "src", false, &plain);
	host_open(&dst, "dst", false, &plain);
	memset(&ev, 0, sizeof(ev));
	struct devmig_engine_config cfg = held(&ev, true);
	int rc = devmig_migrate_local(&cfg, &src.c, &dst.c, 1, NULL, NULL, &rep);
	assert_int_equal(rc, 0);
	assert_true(rep.completed);
	assert_false(rep.deadlines);
	assert_int_equal(rep.throttle_steps, 0);
	assert_int_equal(count(&ev, DEVMIG_EV_THROTTLE), 0);
	same_memory(src.g, dst.g);
	/* The device never saw a deadline (one client at a time: the plain one goes). */
	devmig_client_close(src.c);
	struct devmig_client *c = src.c = fx_connect(&src.fx, NULL);
	struct devmig_feature_arc_estimates est;
	assert_int_equal(devmig_client_arc_estimates(c, &est), 0);
	assert_int_equal(est.last_deadline_ns, 0);
	assert_int_equal(est.last_flags, 0);
	host_close(&src);
	host_close(&dst);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(a_deadline_too_short_is_refused_with_etime_and_nothing_changes),
		T(a_later_arc_that_no_longer_fits_is_not_started),
		T(a_committed_arc_that_overruns_reports_it),
		T(estimates_carry_fixed_costs_the_rate_and_the_drain),
		T(memblk_holds_writes_to_a_cap_in_pre_copy_and_the_guest_sees_no_error),
		T(the_cap_goes_with_its_client_and_with_a_reset),
		T(a_plain_client_sees_none_of_it),
		T(limiting_makes_a_non_converging_migration_converge),
		T(the_engine_retries_after_a_refusal),
		T(limits_are_lifted_after_an_unwind),
		T(plain_clients_migrate_without_deadlines_or_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
