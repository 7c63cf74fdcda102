/* SPDX-License-Identifier: MIT */
/*
 * devmig demo: live-migrate memblk devices while a guest workload runs on
 * them, then prove that no acknowledged write was lost.
 *
 * Everything runs in this process: a source and a destination server per
 * device, one VMM client to each, guest memory on each side (a memfd that
 * is DMA-mapped into that side's devices at IOVA 0), and one workload
 * thread per device standing in for the guest (memblk_workload.h). The
 * engine (devmig_migrate_local) pauses the workload at switchover and
 * resumes it on the destination, where it keeps running for a while; then
 * every block is read back from the destination and compared with the
 * last acknowledged write.
 *
 * --scenario non-converging: a guest that rewrites memblk faster than a
 * capped link copies it, migrated three times from scratch with a held
 * downtime budget: as a VMM without devmig's extensions would (no
 * deadlines, no caps), with deadlines only, and with deadlines and
 * dirty-rate limiting; every acknowledged write is checked each time, on
 * whichever side the guest ended up.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "devices.h"
#include "devmig/client.h"
#include "devmig/engine.h"
#include "devmig/server.h"
#include "memblk/memblk_scenario.h"
#include "memblk/memblk_workload.h"

#define MAX_DEVS 2u
#define WARMUP_MS 200
#define AFTER_MS 1000
#define PAUSE_TIMEOUT_MS 5000
#define MIB (1024.0 * 1024.0)

struct side {
	struct devmig_device *dev;
	struct devmig_server *srv;
	struct devmig_client *cl;
	int efd;
	char path[160];
};

struct demo {
	uint64_t size, guest_mem, working_set;
	unsigned n;
	bool no_precopy, json, tty;
	/* the guest's pace (0: the workload's defaults) */
	unsigned write_pct;
	uint64_t ops_per_sec;
	char dir[64];
	struct side src[MAX_DEVS], dst[MAX_DEVS];
	struct devmig_guest_mem *src_mem, *dst_mem;
	struct mbw *w[MAX_DEVS];
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: devmig demo [--size SIZE] [--guest-mem SIZE] [--devices N]\n"
		"                   [--working-set SIZE] [--no-precopy] [--json]\n"
		"       devmig demo --scenario non-converging [--json]\n"
		"\n"
		"Live-migrate memblk devices (served in this process) while a guest workload\n"
		"reads and writes them, then check every acknowledged write on the destination.\n"
		"\n"
		"  --scenario NAME   another demonstration instead:\n"
		"      non-converging  a guest rewrites a 48 MiB working set of a 64 MiB memblk\n"
		"                    at ~3000 writes/s, faster than the link (capped at 64 MiB/s)\n"
		"                    copies it, with a 300 ms downtime budget; migrated three\n"
		"                    times: without limiting or deadlines (rounds never shrink,\n"
		"                    it switches over past the budget), with deadlines (the\n"
		"                    device refuses; the guest keeps running at the source) and\n"
		"                    with dirty-rate limiting too (switches over within it);\n"
		"                    every write is checked each time\n"
		"\n"
		"  --size SIZE       storage of each device (default 256M)\n"
		"  --guest-mem SIZE  guest memory, migrated with the devices (default 64M)\n"
		"  --devices N       1 or 2 devices migrated together (default 1)\n"
		"  --working-set SIZE  where the guest's writes go, in each device\n"
		"                    (default SIZE/32; reads go anywhere)\n"
		"  --no-precopy      stop-and-copy only (compare the downtime)\n"
		"  --json            print the report as JSON\n"
		"SIZE: bytes, or with K, M or G (binary multiples).\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	uint64_t mul = 1;
	switch (*end | 0x20) {
	case 'k':
		mul = 1ull << 10;
		break;
	case 'm':
		mul = 1ull << 20;
		break;
	case 'g':
		mul = 1ull << 30;
		break;
	default:
		if (*end)
			return -1;
	}
	if (*end) {
		end++;
		if ((*end | 0x20) == 'i')
			end++;
		if ((*end | 0x20) == 'b')
			end++;
		if (*end)
			return -1;
	}
	if (v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- the engine's callbacks ---- */

static void on_event(void *opaque, const struct devmig_engine_event *ev)
{
	struct demo *d = opaque;
	if (!d->tty || d->json)
		return;
	switch (ev->type) {
	case DEVMIG_EV_ROUND:
		printf("  round %-3u %9.1f MiB moved  %6.2f GB/s  ~%.1f MiB left\n", ev->round,
		       ev->bytes / MIB, ev->rate / 1e9, ev->remaining / MIB);
		break;
	case DEVMIG_EV_SWITCHOVER:
		printf("  switchover: guest paused, ~%.1f MiB to move\n", ev->remaining / MIB);
		break;
	case DEVMIG_EV_UNWIND:
		printf("  migration failed, back to the source: %s\n", ev->why);
		break;
	case DEVMIG_EV_THROTTLE:
		if (ev->cap)
			printf("  dirty rate capped at %.1f MiB/s: rounds were not shrinking\n",
			       ev->cap / MIB);
		else
			printf("  dirty-rate cap lifted\n");
		break;
	case DEVMIG_EV_REFUSED:
		printf("  the device refused the switchover: it needs ~%.0f ms, %.0f ms were left; "
		       "the guest runs on\n", ev->estimate_ns / 1e6, ev->deadline_ns / 1e6);
		break;
	default:
		break;
	}
	fflush(stdout);
}

static int pause_guest(void *opaque)
{
	struct demo *d = opaque;
	for (unsigned i = 0; i < d->n; i++) {
		if (mbw_pause(d->w[i], PAUSE_TIMEOUT_MS)) {
			/* The engine does not resume a guest it could not pause. */
			for (unsigned j = 0; j <= i; j++)
				mbw_resume(d->w[j], false);
			return -1;
		}
	}
	return 0;
}

static int resume_guest(void *opaque, bool on_destination)
{
	struct demo *d = opaque;
	for (unsigned i = 0; i < d->n; i++)
		mbw_resume(d->w[i], on_destination);
	return 0;
}

/* ---- setup ---- */

static int side_open(struct demo *d, struct side *s, const char *name, unsigned i,
		     struct devmig_guest_mem *gm)
{
	char err[512] = "", args[64];

	s->efd = -1;
	snprintf(args, sizeof(args), "size=%" PRIu64, d->size);
	s->dev = devmig_variant_memblk.create(args, err, sizeof(err));
	if (!s->dev) {
		fprintf(stderr, "devmig demo: %s device: %s\n", name, err);
		return -1;
	}
	snprintf(s->path, sizeof(s->path), "%s/%s%u.sock", d->dir, name, i);
	struct devmig_server_config cfg = { .socket_path = s->path };
	s->srv = devmig_server_new(s->dev, &cfg, err, sizeof(err));
	if (!s->srv || devmig_server_start(s->srv)) {
		fprintf(stderr, "devmig demo: %s server: %s\n", name, err[0] ? err : "cannot start");
		return -1;
	}
	s->cl = devmig_client_connect(s->path, NULL, err, sizeof(err));
	if (!s->cl) {
		fprintf(stderr, "devmig demo: connecting to the %s device: %s\n", name, err);
		return -1;
	}
	int rc = devmig_client_dma_map(s->cl, 0, devmig_guest_mem_size(gm),
				       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, devmig_guest_mem_fd(gm), 0,
				       NULL);
	if (rc) {
		fprintf(stderr, "devmig demo: mapping guest memory into the %s device: %s\n", name,
			strerror(-rc));
		return -1;
	}
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0 || (rc = mbg_client_enable_msix(s->cl, s->efd))) {
		fprintf(stderr, "devmig demo: MSI-X on the %s device: %s\n", name,
			strerror(s->efd < 0 ? errno : -rc));
		return -1;
	}
	return 0;
}

static void side_close(struct side *s)
{
	if (s->cl)
		devmig_client_close(s->cl);
	if (s->srv)
		devmig_server_free(s->srv);
	if (s->dev)
		devmig_variant_memblk.free(s->dev);
	if (s->efd >= 0)
		close(s->efd);
	memset(s, 0, sizeof(*s));
	s->efd = -1;
}

static void demo_close(struct demo *d)
{
	for (unsigned i = 0; i < MAX_DEVS; i++) {
		mbw_free(d->w[i]);
		d->w[i] = NULL;
		side_close(&d->src[i]);
		side_close(&d->dst[i]);
	}
	devmig_guest_mem_free(d->src_mem);
	devmig_guest_mem_free(d->dst_mem);
	if (d->dir[0])
		rmdir(d->dir);
}

static int demo_open(struct demo *d)
{
	char err[512] = "";

	for (unsigned i = 0; i < MAX_DEVS; i++)
		d->src[i].efd = d->dst[i].efd = -1;
	snprintf(d->dir, sizeof(d->dir), "/tmp/devmig-demo-XXXXXX");
	if (!mkdtemp(d->dir)) {
		fprintf(stderr, "devmig demo: mkdtemp: %s\n", strerror(errno));
		d->dir[0] = 0;
		return -1;
	}
	d->src_mem = devmig_guest_mem_new(d->guest_mem, err, sizeof(err));
	if (d->src_mem)
		d->dst_mem = devmig_guest_mem_new(d->guest_mem, err, sizeof(err));
	if (!d->src_mem || !d->dst_mem) {
		fprintf(stderr, "devmig demo: guest memory: %s\n", err);
		return -1;
	}
	uint64_t win = d->guest_mem / d->n / 4096 * 4096;
	for (unsigned i = 0; i < d->n; i++) {
		if (side_open(d, &d->src[i], "src", i, d->src_mem) ||
		    side_open(d, &d->dst[i], "dst", i, d->dst_mem))
			return -1;
		struct mbw_config wc = {
			.io = mbg_mmio_client(d->src[i].cl),
			.irq_fd = d->src[i].efd,
			.mem = d->src_mem,
			.win_off = i * win,
			.win_size = win,
			.write_span = d->working_set / MB_BLOCK_SIZE,
			.write_pct = d->write_pct,
			.max_ops_per_sec = d->ops_per_sec,
			.seed = 0x5eed0000u + i + (uint64_t)time(NULL) * 1000003u,
		};
		d->w[i] = mbw_new(&wc, err, sizeof(err));
		if (!d->w[i]) {
			fprintf(stderr, "devmig demo: guest driver: %s\n", err);
			return -1;
		}
		struct mbg_mmio io = mbg_mmio_client(d->dst[i].cl);
		mbw_set_destination(d->w[i], &io, d->dst[i].efd, d->dst_mem);
	}
	return 0;
}

/* ---- the report ---- */

struct result {
	int rc;
	int mrc;                    /* the migration's: 0, or -errno */
	bool refusal_ok;            /* a refused switchover is an outcome, not a failure */
	char why[640];
	struct devmig_migration_report rep;
	struct mbw_stats st;        /* summed over the devices; gaps: the largest */
	struct mbw_verify_result vr; /* summed */
	bool verified, verify_on_source, verify_failed;
	double fill_s, verify_s;
};

static void row(const char *label, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void row(const char *label, const char *fmt, ...)
{
	va_list ap;
	printf("  %-18s", label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void print_text(const struct demo *d, const struct result *r)
{
	const struct devmig_migration_report *p = &r->rep;
	if (d->n == 1)
		printf("devmig demo: live-migrating a %.0f MiB memblk device under load\n",
		       d->size / MIB);
	else
		printf("devmig demo: live-migrating %u memblk devices of %.0f MiB each under load\n",
		       d->n, d->size / MIB);
	row("device state", "%8.1f MiB", p->device_state_bytes / MIB);
	row("guest memory", "%8.1f MiB", d->guest_mem / MIB);
	if (d->no_precopy)
		row("pre-copy rounds", "%6u     (--no-precopy: devices stop-and-copy; guest memory "
		    "is pre-copied)", p->rounds);
	else
		row("pre-copy rounds", "%6u", p->rounds);
	row("bytes moved", "%8.1f MiB (device %.1f, guest %.1f; %.1f while paused)",
	    (p->device_bytes + p->guest_bytes) / MIB, p->device_bytes / MIB, p->guest_bytes / MIB,
	    p->stop_copy_bytes / MIB);
	row("throughput", "%8.2f GB/s", p->throughput / 1e9);
	row("total time", "%8.3f s", p->total_ns / 1e9);
	if (p->completed) {
		row("downtime (engine)", "%8.1f ms  (guest paused -> resumed)", p->downtime_ns / 1e6);
		row("downtime (guest)", "%8.1f ms  (longest gap between completed I/Os)",
		    r->st.max_gap_ns / 1e6);
		row("  at the switch", "%8.1f ms  (last I/O before the pause -> first after)",
		    r->st.switch_gap_ns / 1e6);
	}
	row("guest I/O", "%6" PRIu64 "     ops (%" PRIu64 " reads, %" PRIu64 " writes to a %.1f MiB "
	    "working set), %" PRIu64 " read mismatches", r->st.ops, r->st.reads, r->st.writes,
	    d->working_set / MIB, r->st.mismatches);
	if (p->completed && !r->rc)
		row("guest RAM check", "PASS: %.0f KiB of rings and I/O buffers intact on the "
		    "destination", r->st.mem_checked / 1024.0);
	if (r->verified && !r->verify_failed)
		row("verification", "%s: all %" PRIu64 " blocks hold their last acknowledged write "
		    "on the %s (%" PRIu64 " writes acknowledged)", r->rc ? "ok" : "PASS",
		    r->vr.blocks, r->verify_on_source ? "source" : "destination",
		    r->st.acked_writes);
	if (r->rc)
		row("result", "FAIL: %s", r->why);
}

static void print_json(const struct demo *d, const struct result *r)
{
	const struct devmig_migration_report *p = &r->rep;
	json_object *o = json_object_new_object();
#define ADD_I(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
#define ADD_B(k, v) json_object_object_add(o, k, json_object_new_boolean(v))
#define ADD_D(k, v) json_object_object_add(o, k, json_object_new_double(v))
	ADD_B("ok", !r->rc);
	json_object_object_add(o, "error", r->rc ? json_object_new_string(r->why) : NULL);
	ADD_I("devices", d->n);
	ADD_I("device_size", d->size);
	ADD_I("guest_mem", d->guest_mem);
	ADD_I("working_set", d->working_set);
	ADD_B("precopy", p->precopy && !d->no_precopy);
	ADD_B("completed", p->completed);
	ADD_I("rounds", p->rounds);
	ADD_I("device_state_bytes", p->device_state_bytes);
	ADD_I("device_bytes", p->device_bytes);
	ADD_I("guest_bytes", p->guest_bytes);
	ADD_I("stop_copy_bytes", p->stop_copy_bytes);
	ADD_D("throughput", p->throughput);
	ADD_I("total_ns", p->total_ns);
	ADD_I("downtime_ns", p->downtime_ns);
	ADD_I("guest_max_gap_ns", r->st.max_gap_ns);
	ADD_I("guest_switch_gap_ns", r->st.switch_gap_ns);
	ADD_I("ops", r->st.ops);
	ADD_I("reads", r->st.reads);
	ADD_I("writes", r->st.writes);
	ADD_I("acked_writes", r->st.acked_writes);
	ADD_I("read_mismatches", r->st.mismatches);
	ADD_I("io_errors", r->st.errors);
	ADD_I("guest_mem_checked", r->st.mem_checked);
	ADD_B("verified", r->verified && !r->verify_failed);
	json_object_object_add(o, "verified_on", !r->verified ? NULL :
			       json_object_new_string(r->verify_on_source ? "source" : "destination"));
	ADD_I("verified_blocks", r->vr.blocks);
	ADD_I("verify_mismatches", r->vr.mismatches);
#undef ADD_I
#undef ADD_B
#undef ADD_D
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void fail_why(struct result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_why(struct result *r, const char *fmt, ...)
{
	if (r->rc)
		return; /* keep the first reason */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	r->rc = 1;
}

static void run(struct demo *d, const struct devmig_engine_config *cfg_in, struct result *r)
{
	char err[512] = "";

	/* A first pass of writes: the device state is all of the storage. */
	double t = now_s();
	for (unsigned i = 0; i < d->n; i++) {
		if (mbw_fill(d->w[i], err, sizeof(err))) {
			fail_why(r, "filling device %u: %s", i, err);
			return;
		}
	}
	r->fill_s = now_s() - t;
	if (d->tty && !d->json)
		printf("  filled %u x %.0f MiB in %.2f s; starting the guest workload\n", d->n,
		       d->size / MIB, r->fill_s);
	for (unsigned i = 0; i < d->n; i++) {
		int rc = mbw_start(d->w[i]);
		if (rc) {
			fail_why(r, "starting the workload: %s", strerror(-rc));
			return;
		}
	}
	sleep_ms(WARMUP_MS);

	struct devmig_engine_config cfg = *cfg_in;
	cfg.event = on_event;
	cfg.pause_guest = pause_guest;
	cfg.resume_guest = resume_guest;
	cfg.opaque = d;
	struct devmig_client *src[MAX_DEVS], *dst[MAX_DEVS];
	for (unsigned i = 0; i < d->n; i++) {
		src[i] = d->src[i].cl;
		dst[i] = d->dst[i].cl;
	}
	int mrc = devmig_migrate_local(&cfg, src, dst, d->n, d->src_mem, d->dst_mem, &r->rep);
	r->mrc = mrc;
	if (!mrc)
		sleep_ms(AFTER_MS); /* the guest runs on at the destination */

	bool io_ok = true;
	for (unsigned i = 0; i < d->n; i++) {
		int rc = mbw_stop(d->w[i]);
		struct mbw_stats st;
		mbw_get_stats(d->w[i], &st);
		if (rc) {
			fail_why(r, "guest I/O on device %u failed: %s", i,
				 st.error[0] ? st.error : strerror(-rc));
			io_ok = false;
		} else if (!mrc && !st.on_destination)
			fail_why(r, "device %u's guest did not move to the destination", i);
		r->st.ops += st.ops;
		r->st.reads += st.reads;
		r->st.writes += st.writes;
		r->st.bytes += st.bytes;
		r->st.acked_writes += st.acked_writes;
		r->st.mismatches += st.mismatches;
		r->st.errors += st.errors;
		r->st.mem_checked += st.mem_checked;
		if (st.max_gap_ns > r->st.max_gap_ns)
			r->st.max_gap_ns = st.max_gap_ns;
		if (st.switch_gap_ns > r->st.switch_gap_ns)
			r->st.switch_gap_ns = st.switch_gap_ns;
	}
	/* A guest that failed is the first reason (it may be why the engine could not pause it). */
	if (mrc && !(r->refusal_ok && mrc == -ETIME))
		fail_why(r, "migration failed: %s", r->rep.error[0] ? r->rep.error : strerror(-mrc));
	if (!io_ok)
		return;

	/* Every block, read back from the destination, is its last acknowledged
	 * write (after a failed migration: from the source, which must have
	 * kept its state). */
	r->verify_on_source = mrc != 0;
	t = now_s();
	for (unsigned i = 0; i < d->n; i++) {
		struct mbw_verify_result vr;
		int rc = mbw_verify(d->w[i], &vr, err, sizeof(err));
		r->vr.blocks += vr.blocks;
		r->vr.written_blocks += vr.written_blocks;
		r->vr.mismatches += vr.mismatches;
		if (rc) {
			fail_why(r, "device %u on the %s: %s", i, mrc ? "source" : "destination", err);
			r->verify_failed = true;
		}
	}
	r->verify_s = now_s() - t;
	r->verified = true;
}

/* ---- --scenario non-converging ---- */

#define NC_SIZE MB_NC_SIZE
#define NC_WORKING_SET MB_NC_WORKING_SET
#define NC_GUEST_MEM MB_NC_GUEST_MEM
#define NC_LINK_RATE MB_NC_LINK_RATE
#define NC_OPS MB_NC_OPS
#define NC_WRITE_PCT MB_NC_WRITE_PCT
#define NC_CASES 3

static const struct {
	const char *label;
	bool deadline, throttle;
} nc_cases[NC_CASES] = {
	{ "no limiting, no deadlines", false, false },
	{ "deadlines, no limiting", true, false },
	{ "deadlines and limiting", true, true },
};

static void nc_outcome(const struct result *r, char *buf, size_t len)
{
	const struct devmig_migration_report *p = &r->rep;
	if (r->rc)
		snprintf(buf, len, "FAILED: %.400s", r->why);
	else if (p->completed && p->budget_met)
		snprintf(buf, len, "switched over within the budget");
	else if (p->completed)
		snprintf(buf, len, "switched over past the budget%s",
			 p->converged ? "" : " (rounds stopped shrinking)");
	else if (r->mrc == -ETIME)
		snprintf(buf, len, "refused %u time%s (needs ~%.0f ms, %.0f ms left): the guest ran on "
			 "at the source", p->deadline_refusals, p->deadline_refusals == 1 ? "" : "s",
			 p->refusal_estimate_ns / 1e6, p->refusal_deadline_ns / 1e6);
	else
		snprintf(buf, len, "the migration failed");
}

static json_object *nc_case_json(unsigned k, const struct result *r)
{
	const struct devmig_migration_report *p = &r->rep;
	json_object *o = json_object_new_object();
	char out[512];
	nc_outcome(r, out, sizeof(out));
#define ADD_I(key, v) json_object_object_add(o, key, json_object_new_int64((int64_t)(v)))
#define ADD_B(key, v) json_object_object_add(o, key, json_object_new_boolean(v))
	json_object_object_add(o, "case", json_object_new_string(nc_cases[k].label));
	ADD_B("deadlines", nc_cases[k].deadline);
	ADD_B("limiting", nc_cases[k].throttle);
	ADD_B("ok", !r->rc);
	json_object_object_add(o, "outcome", json_object_new_string(out));
	ADD_B("completed", p->completed);
	ADD_I("rounds", p->rounds);
	ADD_I("downtime_ns", p->completed ? p->downtime_ns : 0);
	ADD_I("budget_ns", p->budget_ns);
	ADD_B("budget_met", p->budget_met);
	ADD_B("converged", p->converged);
	ADD_I("deadline_refusals", p->deadline_refusals);
	ADD_I("refusal_estimate_ns", p->refusal_estimate_ns);
	ADD_I("refusal_deadline_ns", p->refusal_deadline_ns);
	ADD_I("throttle_cap", p->throttle_cap);
	ADD_I("throttle_ns", p->throttle_ns);
	ADD_I("throttle_steps", p->throttle_steps);
	ADD_I("guest_max_gap_ns", r->st.max_gap_ns);
	ADD_I("acked_writes", r->st.acked_writes);
	ADD_B("verified", r->verified && !r->verify_failed);
	json_object_object_add(o, "verified_on", !r->verified ? NULL :
			       json_object_new_string(r->verify_on_source ? "source" : "destination"));
	ADD_I("verified_blocks", r->vr.blocks);
#undef ADD_I
#undef ADD_B
	return o;
}

static int scenario_non_converging(bool json, bool tty)
{
	static struct result r[NC_CASES];
	int rc = 0;

	if (!json)
		printf("devmig demo --scenario non-converging: a guest rewrites %.0f MiB of a %.0f MiB "
		       "memblk\n(%u%% writes of up to %u I/O/s) while the link carries %.0f MiB/s; "
		       "downtime budget %.0f ms\n", NC_WORKING_SET / MIB, NC_SIZE / MIB, NC_WRITE_PCT,
		       NC_OPS, NC_LINK_RATE / MIB, MB_NC_BUDGET_NS / 1e6);
	for (unsigned k = 0; k < NC_CASES; k++) {
		struct demo d = {
			.size = NC_SIZE, .guest_mem = NC_GUEST_MEM, .working_set = NC_WORKING_SET,
			.n = 1, .json = json, .tty = tty, .write_pct = NC_WRITE_PCT,
			.ops_per_sec = NC_OPS,
		};
		struct devmig_engine_config cfg = {
			.downtime_budget_ns = MB_NC_BUDGET_NS,
			.link_rate = NC_LINK_RATE,
			.no_deadline = !nc_cases[k].deadline,
			.no_throttle = !nc_cases[k].throttle,
		};
		memset(&r[k], 0, sizeof(r[k]));
		r[k].refusal_ok = true;
		if (tty && !json)
			printf("\n%s:\n", nc_cases[k].label);
		fflush(stdout);
		if (demo_open(&d)) {
			demo_close(&d);
			return 1;
		}
		run(&d, &cfg, &r[k]);
		demo_close(&d);
		/* Limiting is what makes this migration converge: without it
		 * succeeding, the demonstration did not happen. */
		if (!r[k].rc && k == NC_CASES - 1 && !r[k].rep.completed)
			fail_why(&r[k], "with limiting the migration did not complete: %s",
				 r[k].rep.error);
		if (r[k].rc)
			rc = 1;
	}
	if (json) {
		json_object *o = json_object_new_object(), *a = json_object_new_array();
		json_object_object_add(o, "scenario", json_object_new_string("non-converging"));
		json_object_object_add(o, "ok", json_object_new_boolean(!rc));
		json_object_object_add(o, "device_size", json_object_new_int64((int64_t)NC_SIZE));
		json_object_object_add(o, "working_set", json_object_new_int64((int64_t)NC_WORKING_SET));
		json_object_object_add(o, "guest_mem", json_object_new_int64((int64_t)NC_GUEST_MEM));
		json_object_object_add(o, "link_rate", json_object_new_int64((int64_t)NC_LINK_RATE));
		json_object_object_add(o, "budget_ns", json_object_new_int64((int64_t)MB_NC_BUDGET_NS));
		for (unsigned k = 0; k < NC_CASES; k++)
			json_object_array_add(a, nc_case_json(k, &r[k]));
		json_object_object_add(o, "cases", a);
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		return rc;
	}
	printf("\n  %-26s %6s %10s %8s  %-24s %s\n", "case", "rounds", "downtime", "budget",
	       "dirty-rate cap (for)", "outcome");
	for (unsigned k = 0; k < NC_CASES; k++) {
		const struct devmig_migration_report *p = &r[k].rep;
		char dt[32] = "-", cap[48] = "-", out[512];
		if (p->completed)
			snprintf(dt, sizeof(dt), "%.1f ms", p->downtime_ns / 1e6);
		if (p->throttle_cap)
			snprintf(cap, sizeof(cap), "%.1f MiB/s (%.1f s)", p->throttle_cap / MIB,
				 p->throttle_ns / 1e9);
		nc_outcome(&r[k], out, sizeof(out));
		printf("  %-26s %6u %10s %5.0f ms  %-24s %s\n", nc_cases[k].label, p->rounds, dt,
		       p->budget_ns / 1e6, cap, out);
	}
	for (unsigned k = 0; k < NC_CASES; k++) {
		const struct result *x = &r[k];
		if (x->verified && !x->verify_failed)
			printf("  %-26s %s: all %" PRIu64 " blocks hold their last acknowledged write on "
			       "the %s (%" PRIu64 " writes acknowledged, longest I/O gap %.1f ms)\n",
			       nc_cases[k].label, x->rc ? "ok" : "PASS", x->vr.blocks,
			       x->verify_on_source ? "source" : "destination", x->st.acked_writes,
			       x->st.max_gap_ns / 1e6);
		else
			printf("  %-26s FAIL: %s\n", nc_cases[k].label, x->why);
	}
	if (rc)
		fprintf(stderr, "devmig demo: the non-converging scenario failed\n");
	return rc;
}

int devmig_cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "guest-mem", required_argument, NULL, 'g' },
		{ "devices", required_argument, NULL, 'n' },
		{ "working-set", required_argument, NULL, 'w' },
		{ "no-precopy", no_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' },
		{ "scenario", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct demo d = { .size = 256ull << 20, .guest_mem = 64ull << 20, .n = 1 };
	const char *scenario = NULL;
	int c, others = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 's' || c == 'g' || c == 'n' || c == 'w' || c == 'P')
			others++; /* the main demo's own options */
		switch (c) {
		case 's':
			if (parse_size(optarg, &d.size) || d.size < (1u << 20) || d.size % 4096) {
				fprintf(stderr, "devmig demo: --size %s: a multiple of 4K, at least 1M\n",
					optarg);
				return 2;
			}
			break;
		case 'g':
			if (parse_size(optarg, &d.guest_mem) || d.guest_mem < (1u << 20) ||
			    d.guest_mem % 4096 || d.guest_mem > (64ull << 30)) {
				fprintf(stderr,
					"devmig demo: --guest-mem %s: a multiple of 4K, 1M to 64G\n",
					optarg);
				return 2;
			}
			break;
		case 'n': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v < 1 || v > MAX_DEVS) {
				fprintf(stderr, "devmig demo: --devices %s: 1 or 2\n", optarg);
				return 2;
			}
			d.n = (unsigned)v;
			break;
		}
		case 'w':
			if (parse_size(optarg, &d.working_set) || d.working_set < MB_BLOCK_SIZE) {
				fprintf(stderr, "devmig demo: --working-set %s: at least 4K\n", optarg);
				return 2;
			}
			break;
		case 'P':
			d.no_precopy = true;
			break;
		case 'j':
			d.json = true;
			break;
		case 'S':
			if (strcmp(optarg, "non-converging")) {
				fprintf(stderr, "devmig demo: --scenario %s: the scenario is "
						"non-converging (devmig demo --help)\n", optarg);
				return 2;
			}
			scenario = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "devmig demo: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (scenario && others) {
		fprintf(stderr, "devmig demo: --scenario takes only --json: its sizes are its own\n");
		return 2;
	}
	if (scenario)
		return scenario_non_converging(d.json, isatty(STDOUT_FILENO));
	if (!d.working_set)
		d.working_set = d.size / 32 / MB_BLOCK_SIZE * MB_BLOCK_SIZE;
	if (d.working_set < MB_BLOCK_SIZE)
		d.working_set = MB_BLOCK_SIZE;
	if (d.working_set > d.size)
		d.working_set = d.size;
	d.tty = isatty(STDOUT_FILENO);

	struct result r;
	memset(&r, 0, sizeof(r));
	if (demo_open(&d)) {
		demo_close(&d);
		return 1;
	}
	/* The budget is aimed at, not held (no deadlines, no caps): see the scenario. */
	struct devmig_engine_config cfg = { .no_precopy = d.no_precopy };
	run(&d, &cfg, &r);
	if (d.json)
		print_json(&d, &r);
	else
		print_text(&d, &r);
	demo_close(&d);
	if (r.rc)
		fprintf(stderr, "devmig demo: %s\n", r.why);
	return r.rc ? 1 : 0;
}
