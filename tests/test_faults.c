/* SPDX-License-Identifier: MIT */
/*
 * Fault injection across processes: a two-host migration of a memblk device
 * (`devmig serve` source and destination, `devmig receive` on a unix channel,
 * `devmig migrate --to`), and one participant killed (SIGKILL) or stopped
 * (SIGSTOP) when a phase is announced: pre-copy (the source asked for
 * PRE_COPY), stop-copy (STOP_COPY), commit (the destination asked RESUMING
 * -> STOP) and run (STOP -> RUNNING_P2P). Every participant, every phase,
 * both signals.
 *
 * After each fault: a stopped participant stalls the migration for at most
 * the timeout (the engine unwinds, the source runs on); the destination runs
 * either its own old content or the whole source content, never a mix; the
 * source, when it lives, still holds its content; and one retry (a new
 * receive and migrate, with whatever the fault left behind) succeeds and
 * delivers the source's content. A killed source server takes its device
 * with it: that trial retries with a new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "devmig/client.h"
#include "memblk/memblk_guest.h"
#include "proc_test_util.h"

#define DEV_ARGS "size=8M"
#define GIOVA 0x100000000ull
#define GMEM (2u << 20)
#define BUF_OFF (1u << 20)
#define TIMEOUT_S 1            /* --timeout of the faulted run */
#define BUDGET_MS 300          /* the engine's default downtime budget */
#define SLACK_MS 1500          /* scheduling on a loaded 2-core machine */

enum who { SRC, DST, ENGINE, RECV, NWHO };
enum phase { PRECOPY, STOPCOPY, COMMIT, RUN, NPHASE };
static const char *const who_name[] = { "source server", "destination server", "migrate",
					"receive" };
static const char *const phase_name[] = { "pre-copy", "stop-copy", "commit", "run" };

/* ---- the guest's view of a device: content written and read through rings ---- */

struct gview {
	struct devmig_client *c;
	int memfd;
	uint8_t *mem;
	struct mbg g;
};

static void gv_open(struct gview *v, const struct dev *d)
{
	v->c = pt_open_dev(d);
	v->memfd = memfd_create("guest", MFD_CLOEXEC);
	assert_true(v->memfd >= 0);
	assert_int_equal(ftruncate(v->memfd, GMEM), 0);
	v->mem = mmap(NULL, GMEM, PROT_READ | PROT_WRITE, MAP_SHARED, v->memfd, 0);
	assert_true(v->mem != MAP_FAILED);
	assert_int_equal(devmig_client_dma_map(v->c, GIOVA, GMEM, DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
					       v->memfd, 0, NULL),
			 0);
	struct mbg_mmio io = mbg_mmio_client(v->c);
	assert_int_equal(mbg_init(&v->g, &io, v->mem, GIOVA, GMEM, -1), 0);
	uint32_t err = 0;
	assert_int_equal(mbg_setup_queues(&v->g, GIOVA, 16, GIOVA + 0x10000, 16, &err), 0);
}

static void gv_close(struct gview *v)
{
	mbg_destroy(&v->g);
	devmig_client_close(v->c);
	munmap(v->mem, GMEM);
	close(v->memfd);
}

static void pattern(uint8_t *p, uint64_t block, uint32_t seed)
{
	uint64_t x = block * 0x9e3779b97f4a7c15ull ^ (uint64_t)seed << 32;
	for (size_t i = 0; i < MB_BLOCK_SIZE; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

static void fill(const struct dev *d, uint32_t seed)
{
	struct gview v;
	gv_open(&v, d);
	for (uint64_t b = 0; b < v.g.capacity; b += MB_MAX_BLOCKS) {
		uint32_t n = (uint32_t)(v.g.capacity - b < MB_MAX_BLOCKS ? v.g.capacity - b
									  : MB_MAX_BLOCKS);
		for (uint32_t i = 0; i < n; i++)
			pattern(v.mem + BUF_OFF + (size_t)i * MB_BLOCK_SIZE, b + i, seed);
		int rc = mbg_write(&v.g, b, n, GIOVA + BUF_OFF, 10000);
		if (rc != MB_SC_OK) {
			uint32_t st = 0, ec = 0, sqh = 0, cqt = 0;
			devmig_client_region_read(v.c, 0, MB_REG_STATUS, &st, 4);
			devmig_client_region_read(v.c, 0, MB_REG_ERR_CODE, &ec, 4);
			devmig_client_region_read(v.c, 0, MB_REG_SQ_HEAD, &sqh, 4);
			devmig_client_region_read(v.c, 0, MB_REG_CQ_TAIL, &cqt, 4);
			fail_msg("%s: WRITE %llu+%u: %d (status %#x err %u sq_head %u cq_tail %u)",
				 d->path, (unsigned long long)b, n, rc, st, ec, sqh, cqt);
		}
	}
	gv_close(&v);
}

/* Blocks of the device that hold seed a's pattern, and seed b's. */
static void census(const struct dev *d, uint32_t a, uint32_t b, uint64_t *na, uint64_t *nb,
		   uint64_t *total)
{
	struct gview v;
	uint8_t want[MB_BLOCK_SIZE];
	gv_open(&v, d);
	*na = *nb = 0;
	*total = v.g.capacity;
	for (uint64_t blk = 0; blk < v.g.capacity; blk += MB_MAX_BLOCKS) {
		uint32_t n = (uint32_t)(v.g.capacity - blk < MB_MAX_BLOCKS ? v.g.capacity - blk
									    : MB_MAX_BLOCKS);
		assert_int_equal(mbg_read(&v.g, blk, n, GIOVA + BUF_OFF, 10000), MB_SC_OK);
		for (uint32_t i = 0; i < n; i++) {
			const uint8_t *got = v.mem + BUF_OFF + (size_t)i * MB_BLOCK_SIZE;
			pattern(want, blk + i, a);
			if (!memcmp(got, want, MB_BLOCK_SIZE)) {
				(*na)++;
				continue;
			}
			pattern(want, blk + i, b);
			*nb += !memcmp(got, want, MB_BLOCK_SIZE);
		}
	}
	gv_close(&v);
}

/* ---- one trial ---- */

struct rig {
	struct dev src, dst;
	bool src_up, dst_up;
	uint32_t src_seed, dst_seed;
	unsigned trial;
	/* tallies for the closing note */
	unsigned trials, completed, unwound, unknown, retries_ok;
	uint64_t worst_stall_ms;
};

static void ensure_servers(struct rig *r)
{
	if (!r->src_up) {
		pt_serve(&r->src, "src", "memblk", DEV_ARGS);
		r->src_up = true;
		r->src_seed = 0;
	}
	if (!r->dst_up) {
		pt_serve(&r->dst, "dst", "memblk", DEV_ARGS);
		r->dst_up = true;
	}
}

static void start_pair(struct rig *r, const char *chan, bool faulted, struct proc **rx,
		       struct proc **mg)
{
	char at[200], tmo[16];
	snprintf(at, sizeof(at), "unix:%s", chan);
	snprintf(tmo, sizeof(tmo), "%d", faulted ? TIMEOUT_S : 30);
	char *rargv[] = { (char *)pt_bin(), "receive", "--listen", at, "--socket", r->dst.path,
			  "--timeout", tmo, "--verbose", NULL };
	*rx = pt_start(rargv, true);
	if (!pt_wait_stderr(*rx, "listening on", PT_DEADLINE_MS))
		fail_msg("receive exited (%d): %s", pt_finish(*rx, 1000), (*rx)->ebuf);
	char *margv[] = { (char *)pt_bin(), "migrate", "--socket", r->src.path, "--to", at,
			  "--timeout", tmo, "--verbose", NULL };
	*mg = pt_start(margv, true);
}

/* Read both until marker shows in p's stderr; false if both ended first. */
static bool wait_marker(struct proc *p, struct proc *other, const char *marker)
{
	uint64_t end = pt_now_ms() + PT_DEADLINE_MS;
	while (!strstr(p->ebuf, marker)) {
		if (p->err < 0)
			return false;
		if (pt_now_ms() > end)
			fail_msg("no '%s' within %d ms: %s", marker, PT_DEADLINE_MS, p->ebuf);
		pt_pump(p, 2);
		pt_pump(other, 0);
	}
	return true;
}

/* Wait (bounded) for p to end while pumping q. */
static int finish_pumping(struct proc *p, struct proc *q, int ms)
{
	uint64_t end = pt_now_ms() + (uint64_t)ms;
	while (!pt_exited(p)) {
		if (pt_now_ms() > end)
			return -1;
		pt_pump(p, 10);
		if (q)
			pt_pump(q, 0);
	}
	return pt_finish(p, ms);
}

/* RUNNING for the next trial, whatever the last one left (a migrated source
 * is stopped, a destination may be mid-load). */
static void make_running(const struct dev *d)
{
	struct devmig_client *c = pt_open_dev(d);
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	if (st == DEVMIG_STATE_RESUMING || st == DEVMIG_STATE_ERROR)
		assert_int_equal(devmig_client_reset(c), 0);
	else if (st != DEVMIG_STATE_RUNNING)
		assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RUNNING), 0);
	devmig_client_close(c);
}

static void trial(struct rig *r, enum who who, enum phase phase, int sig)
{
	char chan[160];
	struct proc *rx, *mg;

	r->trial++;
	ensure_servers(r);
	make_running(&r->src);
	make_running(&r->dst);
	r->src_seed = 0x1000 + r->trial * 2;
	r->dst_seed = 0x1001 + r->trial * 2;
	fill(&r->src, r->src_seed);
	fill(&r->dst, r->dst_seed);
	snprintf(chan, sizeof(chan), "%s/chan%u.sock", pt_dir, r->trial);
	start_pair(r, chan, true, &rx, &mg);

	static const char *const marker[] = { "-> PRE_COPY\n", "-> STOP_COPY\n",
					      "RESUMING -> STOP\n", "STOP -> RUNNING_P2P\n" };
	struct proc *says = phase == COMMIT || phase == RUN ? rx : mg;
	struct proc *other = says == rx ? mg : rx;
	struct proc *target = who == SRC ? r->src.p : who == DST ? r->dst.p
					  : who == ENGINE ? mg : rx;
	if (!wait_marker(says, other, marker[phase]))
		fail_msg("trial %u: the migration ended before %s (%s; %s)", r->trial,
			 phase_name[phase], mg->ebuf, rx->ebuf);
	uint64_t t_fault = pt_now_ms();
	pt_signal(target, sig);

	/* The run goes on to its end: bounded by the timeout once something stalls. */
	int mst, rst;
	if (sig == SIGSTOP && who == ENGINE) {
		/* The receive gives up on the silent channel; then the engine resumes. */
		rst = finish_pumping(rx, NULL, 20000);
		if (rst < 0)
			fail_msg("trial %u: receive did not give up on a stopped migrate: %s",
				 r->trial, rx->ebuf);
		pt_signal(mg, SIGCONT);
		mst = pt_finish(mg, 20000);
	} else {
		mst = finish_pumping(mg, rx, 20000);
		if (mst < 0)
			fail_msg("trial %u (%s stopped at %s): migrate still runs after 20 s: %s",
				 r->trial, who_name[who], phase_name[phase], mg->ebuf);
		uint64_t took = pt_now_ms() - t_fault;
		if (sig == SIGSTOP && who != ENGINE) {
			if (took > r->worst_stall_ms)
				r->worst_stall_ms = took;
			if (took > (uint64_t)TIMEOUT_S * 1000 + BUDGET_MS + SLACK_MS)
				fail_msg("trial %u: %s stopped at %s held migrate for %llu ms "
					 "(timeout %d s): %s", r->trial, who_name[who],
					 phase_name[phase], (unsigned long long)took, TIMEOUT_S,
					 mg->ebuf);
		}
		pt_signal(target, SIGCONT);
		rst = pt_finish(rx, 20000);
	}
	pt_signal(target, SIGCONT);
	if (sig == SIGKILL && who == SRC) {
		pt_finish(r->src.p, 5000);
		r->src_up = false;
	}
	if (sig == SIGKILL && who == DST) {
		pt_finish(r->dst.p, 5000);
		r->dst_up = false;
	}
	bool engine_dead = sig == SIGKILL && who == ENGINE;
	if (!engine_dead && mst != 0 && mst != 1 && mst != 3)
		fail_msg("trial %u: migrate exited %d: %s", r->trial, mst, mg->ebuf);
	if (!(sig == SIGKILL && who == RECV) && rst != 0 && rst != 1)
		fail_msg("trial %u: receive exited %d: %s", r->trial, rst, rx->ebuf);
	r->trials++;
	r->completed += mst == 0;
	r->unwound += mst == 1;
	r->unknown += mst == 3;

	/* The destination never runs a mix: its own old content or the source's
	 * whole (a reset after a late commit keeps what was committed, as a disk
	 * would: memblk's storage outlives a reset). */
	if (r->dst_up && pt_state(&r->dst) == DEVMIG_STATE_RUNNING) {
		uint64_t na, nb, total;
		census(&r->dst, r->src_seed, r->dst_seed, &na, &nb, &total);
		if (na != total && nb != total)
			fail_msg("trial %u (%s %s at %s): the destination runs %llu blocks of the "
				 "source, %llu of its own, %llu others, of %llu", r->trial,
				 who_name[who], sig == SIGKILL ? "killed" : "stopped",
				 phase_name[phase], (unsigned long long)na, (unsigned long long)nb,
				 (unsigned long long)(total - na - nb), (unsigned long long)total);
	}
	/* A source that lives and runs still holds its content. */
	if (r->src_up && pt_state(&r->src) == DEVMIG_STATE_RUNNING) {
		uint64_t na, nb, total;
		census(&r->src, r->src_seed, r->dst_seed, &na, &nb, &total);
		if (na != total)
			fail_msg("trial %u: the source lost content: %llu of %llu blocks", r->trial,
				 (unsigned long long)na, (unsigned long long)total);
	}

	/* One retry, with whatever was left behind. */
	if (!r->src_up) {
		ensure_servers(r);
		r->src_seed = 0x9000 + r->trial;
		fill(&r->src, r->src_seed);
	}
	ensure_servers(r);
	snprintf(chan, sizeof(chan), "%s/retry%u.sock", pt_dir, r->trial);
	start_pair(r, chan, false, &rx, &mg);
	mst = finish_pumping(mg, rx, PT_DEADLINE_MS);
	rst = pt_finish(rx, PT_DEADLINE_MS);
	if (mst || rst)
		fail_msg("trial %u (%s %s at %s): the retry failed: migrate %d (%s), receive %d (%s)",
			 r->trial, who_name[who], sig == SIGKILL ? "killed" : "stopped",
			 phase_name[phase], mst, mg->ebuf, rst, rx->ebuf);
	r->retries_ok++;
	uint64_t na, nb, total;
	census(&r->dst, r->src_seed, r->dst_seed, &na, &nb, &total);
	if (na != total)
		fail_msg("trial %u: after the retry the destination has %llu of %llu blocks of the "
			 "source", r->trial, (unsigned long long)na, (unsigned long long)total);
}

static void every_participant_at_every_phase(void **state)
{
	(void)state;
	struct rig r;
	memset(&r, 0, sizeof(r));
	uint64_t t0 = pt_now_ms();

	for (int who = 0; who < NWHO; who++)
		for (int phase = 0; phase < NPHASE; phase++) {
			trial(&r, who, phase, SIGKILL);
			trial(&r, who, phase, SIGSTOP);
		}
	print_message("# %u fault trials in %.1f s: %u completed anyway, %u unwound, %u outcome "
		      "unknown; %u first retries succeeded; longest stall by a stopped "
		      "participant %llu ms (timeout %d s)\n",
		      r.trials, (pt_now_ms() - t0) / 1000.0, r.completed, r.unwound, r.unknown,
		      r.retries_ok, (unsigned long long)r.worst_stall_ms, TIMEOUT_S);
	assert_int_equal(r.retries_ok, NWHO * NPHASE * 2);
	if (r.src_up)
		pt_stop_dev(&r.src);
	if (r.dst_up)
		pt_stop_dev(&r.dst);
}

/*
 * Both ends in one migrate (--to-socket): a destination server stopped at a
 * phase holds the engine's own client, whose sends and replies must have
 * deadlines too.
 */
static void a_stopped_local_destination_is_bounded(void **state)
{
	(void)state;
	struct rig r;
	memset(&r, 0, sizeof(r));
	static const char *const marker[] = { "-> PRE_COPY\n", "-> STOP_COPY\n",
					      "RESUMING -> STOP\n" };
	for (int phase = PRECOPY; phase <= COMMIT; phase++) {
		r.trial++;
		ensure_servers(&r);
		make_running(&r.src);
		make_running(&r.dst);
		r.src_seed = 0x5000 + r.trial * 2;
		r.dst_seed = 0x5001 + r.trial * 2;
		fill(&r.src, r.src_seed);
		fill(&r.dst, r.dst_seed);
		char *argv[] = { (char *)pt_bin(), "migrate", "--socket", r.src.path, "--to-socket",
				 r.dst.path, "--timeout", "1", "--verbose", NULL };
		struct proc *mg = pt_start(argv, true);
		if (!wait_marker(mg, mg, marker[phase]))
			fail_msg("the migration ended before %s: %s", phase_name[phase], mg->ebuf);
		uint64_t t0 = pt_now_ms();
		pt_signal(r.dst.p, SIGSTOP);
		int mst = pt_finish(mg, 20000);
		uint64_t took = pt_now_ms() - t0;
		pt_signal(r.dst.p, SIGCONT);
		uint64_t na, nb, total;
		if (mst == 0) {
			/* The stop came after the last step (a short commit): done, whole. */
			census(&r.dst, r.src_seed, r.dst_seed, &na, &nb, &total);
			assert_int_equal(na, total);
			r.completed++;
			continue;
		}
		if (mst != 1)
			fail_msg("migrate with a stopped destination at %s exited %d: %s",
				 phase_name[phase], mst, mg->ebuf);
		r.unwound++;
		if (took > (uint64_t)TIMEOUT_S * 1000 + BUDGET_MS + SLACK_MS)
			fail_msg("a destination stopped at %s held migrate %llu ms: %s",
				 phase_name[phase], (unsigned long long)took, mg->ebuf);
		if (took > r.worst_stall_ms)
			r.worst_stall_ms = took;
		census(&r.src, r.src_seed, r.dst_seed, &na, &nb, &total);
		assert_int_equal(na, total); /* running on, whole */
		char *retry[] = { (char *)pt_bin(), "migrate", "--socket", r.src.path,
				  "--to-socket", r.dst.path, NULL };
		struct proc *p = pt_run(retry);
		if (p->status)
			fail_msg("the retry after %s failed (%d): %s", phase_name[phase], p->status,
				 p->ebuf);
		census(&r.dst, r.src_seed, r.dst_seed, &na, &nb, &total);
		assert_int_equal(na, total);
	}
	print_message("# local destination stopped at 3 phases: %u unwound (longest stall %llu "
		      "ms, timeout %d s), %u completed before the stop landed\n", r.unwound,
		      (unsigned long long)r.worst_stall_ms, TIMEOUT_S, r.completed);
	assert_true(r.unwound >= 1); /* the stall itself was tried */
	pt_stop_dev(&r.src);
	pt_stop_dev(&r.dst);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(every_participant_at_every_phase, pt_setup,
						pt_teardown),
		cmocka_unit_test_setup_teardown(a_stopped_local_destination_is_bounded, pt_setup,
						pt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
