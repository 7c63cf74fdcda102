/* SPDX-License-Identifier: MIT */
/*
 * The demo's and the benchmark's guest (devices/memblk/memblk_workload.c)
 * judges a migration by checking, after the move, that every I/O buffer in
 * the destination's guest memory holds the data of its last request. A
 * checker that remembers the wrong thing fails good migrations (or, worse,
 * passes bad ones), so it is tested here against real stop-and-copy
 * migrations of a small memblk, with WRITEs only: each random WRITE puts its
 * data at the end of a buffer that the fill pass had used whole.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
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

/* Buffers of 256 blocks (the device's largest request) that divide the
 * 16 MiB device evenly: the fill pass leaves every buffer's record whole. */
#define GUEST_MEM (64u << 20)

struct side {
	struct fx_server fx;
	struct devmig_client *cl;
	struct devmig_guest_mem *mem;
	int efd;
};

static void side_open(struct side *s, const char *dir, const char *name)
{
	char err[256] = "";

	memset(s, 0, sizeof(*s));
	fx_serve_variant(&s->fx, dir, name, &devmig_variant_memblk, "size=16M");
	s->cl = fx_connect(&s->fx, NULL);
	s->mem = devmig_guest_mem_new(GUEST_MEM, err, sizeof(err));
	if (!s->mem)
		fail_msg("guest memory: %s", err);
	assert_int_equal(devmig_client_dma_map(s->cl, 0, GUEST_MEM,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
					       devmig_guest_mem_fd(s->mem), 0, NULL), 0);
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(s->efd >= 0);
	assert_int_equal(mbg_client_enable_msix(s->cl, s->efd), 0);
}

static void side_close(struct side *s)
{
	devmig_client_close(s->cl);
	fx_unserve(&s->fx);
	devmig_guest_mem_free(s->mem);
	close(s->efd);
}

static int pause_cb(void *o)
{
	return mbw_pause(o, 10000);
}

static int resume_cb(void *o, bool on_dst)
{
	mbw_resume(o, on_dst);
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void writes_after_a_fill_pass_survive_the_memory_check(void **state)
{
	(void)state;
	for (unsigned run = 0; run < 3; run++) {
		char dir[FX_PATH_MAX], err[256] = "";
		fx_tmpdir(dir, "workload");
		struct side src, dst;
		side_open(&src, dir, "src");
		side_open(&dst, dir, "dst");

		struct mbw_config wc = {
			.io = mbg_mmio_client(src.cl), .irq_fd = src.efd, .mem = src.mem,
			.write_pct = 100, .max_ops_per_sec = 500, .seed = 1 + run,
		};
		struct mbw *w = mbw_new(&wc, err, sizeof(err));
		if (!w)
			fail_msg("workload: %s", err);
		if (mbw_fill(w, err, sizeof(err)))
			fail_msg("fill: %s", err);
		struct mbg_mmio dio = mbg_mmio_client(dst.cl);
		mbw_set_destination(w, &dio, dst.efd, dst.mem);
		assert_int_equal(mbw_start(w), 0);
		sleep_ms(50);

		struct devmig_engine_config cfg = {
			.no_precopy = true, .pause_guest = pause_cb, .resume_guest = resume_cb,
			.opaque = w,
		};
		struct devmig_migration_report rep;
		int rc = devmig_migrate_local(&cfg, &src.cl, &dst.cl, 1, src.mem, dst.mem, &rep);
		if (rc)
			fail_msg("migration: %d: %s", rc, rep.error);
		sleep_ms(50); /* the guest checks its memory, then runs on at the destination */
		int wrc = mbw_stop(w);
		struct mbw_stats st;
		mbw_get_stats(w, &st);
		print_message("# run %u: %llu writes, %llu reads, %llu bytes checked, rounds %u\n", run,
			      (unsigned long long)st.writes, (unsigned long long)st.reads,
			      (unsigned long long)st.mem_checked, rep.rounds);
		if (wrc || st.error[0])
			fail_msg("run %u: the guest's check refused a good migration: %s", run,
				 st.error);
		assert_true(st.on_destination);
		assert_true(st.writes > 0);
		assert_true(st.mem_checked > 0);
		mbw_free(w);
		side_close(&src);
		side_close(&dst);
		fx_rmdir(dir);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(writes_after_a_fill_pass_survive_the_memory_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
