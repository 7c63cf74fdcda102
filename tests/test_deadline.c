/* SPDX-License-Identifier: MIT */
/*
 * Deadlines and rates as pure logic, with made-up clocks: pacing (GCRA),
 * the transfer-rate and change-rate meters (lib/util/pace.c), a deadline
 * request's plan and admission per arc, overrun, the core's default arc
 * estimate (lib/core/deadline.c), and a path's cost from the state machine
 * or from a device's table of arc estimates (lib/protocol).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "deadline.h"
#include "devmig/wire.h"
#include "pace.h"

#define MS (1000ull * 1000)
#define S (1000ull * MS)

/* ---- pacing ---- */

static void pace_unlimited_never_waits(void **state)
{
	struct devmig_pace p;
	(void)state;
	devmig_pace_init(&p, 0, 0);
	assert_int_equal(devmig_pace_charge(&p, 0, 1ull << 40), 0);
}

static void pace_waits_what_the_rate_takes_beyond_the_burst(void **state)
{
	struct devmig_pace p;
	(void)state;
	devmig_pace_init(&p, 1000000, 10 * MS); /* 1 MB/s, 10 ms ahead allowed */
	/* 5 KB: 5 ms of the rate, within the burst. */
	assert_int_equal(devmig_pace_charge(&p, S, 5000), 0);
	/* 10 KB more at the same instant: due 15 ms from now, 5 beyond the burst. */
	assert_int_equal(devmig_pace_charge(&p, S, 10000), 5 * MS);
	/* 15 ms later it is all due: 1 KB more waits nothing. */
	assert_int_equal(devmig_pace_charge(&p, S + 15 * MS, 1000), 0);
}

static void pace_idle_time_earns_no_credit(void **state)
{
	struct devmig_pace p;
	(void)state;
	devmig_pace_init(&p, 1000000, 0);
	assert_int_equal(devmig_pace_charge(&p, S, 1000), 1 * MS);
	/* A minute idle, then 2 KB at once: 2 ms, not free. */
	assert_int_equal(devmig_pace_charge(&p, 61 * S, 2000), 2 * MS);
}

static void pace_huge_charges_saturate(void **state)
{
	struct devmig_pace p;
	(void)state;
	devmig_pace_init(&p, 1, 0);
	uint64_t w = devmig_pace_charge(&p, 1, UINT64_MAX);
	assert_true(w > 1000000 * S);
	assert_true(devmig_pace_charge(&p, 2, UINT64_MAX) >= w - 1);
}

static void muldiv_does_not_overflow(void **state)
{
	(void)state;
	assert_int_equal(devmig_muldiv(1ull << 40, 1000000000ull, 1ull << 30), 1024ull * 1000000000);
	assert_int_equal(devmig_muldiv(UINT64_MAX, UINT64_MAX, 1), UINT64_MAX);
}

/* ---- the transfer-rate meter ---- */

static void xfer_counts_the_time_after_full_reads_only(void **state)
{
	struct devmig_xfer_meter m;
	(void)state;
	devmig_xfer_meter_reset(&m);
	assert_int_equal(devmig_xfer_meter_rate(&m), 0);
	/* Full 1 MB reads every 10 ms: 100 MB/s. */
	for (int i = 0; i <= 10; i++)
		devmig_xfer_meter_read(&m, S + (uint64_t)i * 10 * MS, 1000000, 1000000);
	assert_int_equal(devmig_xfer_meter_rate(&m), 100000000);
	/* A short read, then a long idle gap: not counted. */
	devmig_xfer_meter_read(&m, S + 110 * MS, 1000000, 500);
	devmig_xfer_meter_read(&m, 60 * S, 1000000, 1000000);
	assert_int_equal(devmig_xfer_meter_rate(&m), 100000000);
	/* The next full read's interval counts again: 1 MB in 20 ms. */
	devmig_xfer_meter_read(&m, 60 * S + 20 * MS, 1000000, 1000000);
	uint64_t r = devmig_xfer_meter_rate(&m);
	assert_true(r < 100000000 && r > 50000000);
}

static void xfer_recent_reads_weigh_most(void **state)
{
	struct devmig_xfer_meter m;
	(void)state;
	devmig_xfer_meter_reset(&m);
	uint64_t t = S;
	/* Five seconds at 100 MB/s, then five at 10 MB/s. */
	for (int i = 0; i < 500; i++, t += 10 * MS)
		devmig_xfer_meter_read(&m, t, 1000000, 1000000);
	for (int i = 0; i < 50; i++, t += 100 * MS)
		devmig_xfer_meter_read(&m, t, 1000000, 1000000);
	uint64_t r = devmig_xfer_meter_rate(&m);
	assert_true(r < 20000000); /* near the recent rate, not the average */
	assert_true(r >= 10000000);
}

/* ---- the change-rate meter ---- */

static void change_meter_samples_over_windows(void **state)
{
	struct devmig_change_meter m = { 0 };
	(void)state;
	assert_int_equal(devmig_change_meter_sample(&m, S, 0), 0); /* starts it */
	/* Sooner than the window: the last rate (none yet). */
	assert_int_equal(devmig_change_meter_sample(&m, S + 100 * MS, 5000000), 0);
	/* 500 ms, 50 MB: 100 MB/s. */
	assert_int_equal(devmig_change_meter_sample(&m, S + 500 * MS, 50000000), 100000000);
	/* A sample right after keeps it. */
	assert_int_equal(devmig_change_meter_sample(&m, S + 510 * MS, 50000001), 100000000);
	/* Nothing written for a second: 0. */
	assert_int_equal(devmig_change_meter_sample(&m, S + 1500 * MS, 50000000), 0);
	/* A total that went backwards (a reset device) starts again. */
	assert_int_equal(devmig_change_meter_sample(&m, 3 * S, 10), 0);
}

/* ---- deadline plans ---- */

/* Estimates from a table indexed [from][to] (ns); partial for STOP_COPY when asked. */
struct est_table {
	uint64_t ns[DEVMIG_STATE_COUNT][DEVMIG_STATE_COUNT];
	bool partial_stop_copy;
	unsigned calls;
};

static uint64_t table_est(void *opaque, enum devmig_state from, enum devmig_state to,
			  bool *partial)
{
	struct est_table *t = opaque;
	t->calls++;
	if (to == DEVMIG_STATE_STOP_COPY && t->partial_stop_copy)
		*partial = true;
	return t->ns[from][to];
}

#define R DEVMIG_STATE_RUNNING
#define RP DEVMIG_STATE_RUNNING_P2P
#define ST DEVMIG_STATE_STOP
#define SC DEVMIG_STATE_STOP_COPY
#define PC DEVMIG_STATE_PRE_COPY
#define PCP DEVMIG_STATE_PRE_COPY_P2P

static void plan_follows_the_path_with_each_arcs_estimate(void **state)
{
	struct est_table t = { 0 };
	struct devmig_deadline_plan p;
	(void)state;
	t.ns[R][RP] = 1 * MS;
	t.ns[RP][ST] = 2 * MS;
	t.ns[ST][SC] = 40 * MS;
	assert_int_equal(devmig_deadline_plan_init(&p, S, 100 * MS, R, SC, DEVMIG_MIG_ALL, table_est,
						   &t), DEVMIG_FSM_OK);
	assert_int_equal(p.narcs, 3);
	assert_int_equal(t.calls, 3);
	assert_int_equal(p.from[0], R);
	assert_int_equal(p.to[2], SC);
	assert_int_equal(devmig_deadline_plan_left(&p), 43 * MS);
	assert_false(p.partial);
	/* Without P2P: RUNNING -> STOP -> STOP_COPY. */
	t.ns[R][ST] = 5 * MS;
	assert_int_equal(devmig_deadline_plan_init(&p, S, 100 * MS, R, SC, DEVMIG_MIG_STOP_COPY,
						   table_est, &t), DEVMIG_FSM_OK);
	assert_int_equal(p.narcs, 2);
	assert_int_equal(devmig_deadline_plan_left(&p), 45 * MS);
	/* A request the state machine refuses has no plan. */
	assert_int_not_equal(devmig_deadline_plan_init(&p, S, 100 * MS, SC, PC, DEVMIG_MIG_ALL,
						       table_est, &t), DEVMIG_FSM_OK);
	/* cur == req: nothing to do, always admitted. */
	assert_int_equal(devmig_deadline_plan_init(&p, S, 0, R, R, DEVMIG_MIG_ALL, table_est, &t),
			 DEVMIG_FSM_OK);
	assert_int_equal(p.narcs, 0);
	assert_true(devmig_deadline_plan_admit(&p, S));
}

static void plan_refuses_before_the_first_arc_when_the_path_does_not_fit(void **state)
{
	struct est_table t = { 0 };
	struct devmig_deadline_plan p;
	(void)state;
	t.ns[PC][PCP] = 1 * MS;
	t.ns[PCP][SC] = 600 * MS;
	devmig_deadline_plan_init(&p, S, 300 * MS, PC, SC, DEVMIG_MIG_ALL, table_est, &t);
	assert_int_equal(devmig_deadline_plan_left(&p), 601 * MS);
	assert_false(devmig_deadline_plan_admit(&p, S));
	/* Exactly fitting is in time. */
	devmig_deadline_plan_init(&p, S, 601 * MS, PC, SC, DEVMIG_MIG_ALL, table_est, &t);
	assert_true(devmig_deadline_plan_admit(&p, S));
	assert_false(devmig_deadline_plan_admit(&p, S + 1));
}

static void plan_refuses_a_later_arc_when_time_ran_out(void **state)
{
	struct est_table t = { 0 };
	struct devmig_deadline_plan p;
	(void)state;
	t.ns[PC][PCP] = 10 * MS;
	t.ns[PCP][SC] = 50 * MS;
	devmig_deadline_plan_init(&p, S, 100 * MS, PC, SC, DEVMIG_MIG_ALL, table_est, &t);
	assert_true(devmig_deadline_plan_admit(&p, S));
	/* The first arc took 70 ms, not 10: 70 + 50 > 100. */
	p.done = 1;
	assert_int_equal(devmig_deadline_plan_left(&p), 50 * MS);
	assert_false(devmig_deadline_plan_admit(&p, S + 70 * MS));
	/* It took 40: 40 + 50 <= 100, the last arc starts. */
	assert_true(devmig_deadline_plan_admit(&p, S + 40 * MS));
}

static void overrun_is_how_late(void **state)
{
	(void)state;
	assert_int_equal(devmig_deadline_overrun(S, 100 * MS, S + 99 * MS), 0);
	assert_int_equal(devmig_deadline_overrun(S, 100 * MS, S + 100 * MS), 0);
	assert_int_equal(devmig_deadline_overrun(S, 100 * MS, S + 130 * MS), 30 * MS);
	/* A deadline beyond the clock's range never overruns. */
	assert_int_equal(devmig_deadline_overrun(S, UINT64_MAX, UINT64_MAX), 0);
}

static void plan_estimates_saturate(void **state)
{
	struct est_table t = { 0 };
	struct devmig_deadline_plan p;
	(void)state;
	t.ns[R][RP] = UINT64_MAX;
	t.ns[RP][ST] = UINT64_MAX;
	devmig_deadline_plan_init(&p, S, 3600 * S, R, ST, DEVMIG_MIG_ALL, table_est, &t);
	assert_int_equal(devmig_deadline_plan_left(&p), UINT64_MAX);
	assert_false(devmig_deadline_plan_admit(&p, S));
	/* The largest deadline is no deadline: anything fits. */
	p.deadline_ns = UINT64_MAX;
	assert_true(devmig_deadline_plan_admit(&p, S));
}

static void default_estimate_is_fixed_cost_and_data_at_the_rate(void **state)
{
	bool partial = false;
	(void)state;
	/* Only an arc into STOP_COPY carries the data. */
	assert_int_equal(devmig_arc_default_estimate(3 * MS, PCP, 1 << 20, 1 << 20, &partial),
			 3 * MS);
	assert_int_equal(devmig_arc_default_estimate(3 * MS, SC, 50000000, 100000000, &partial),
			 503 * MS);
	assert_false(partial);
	/* No rate measured: the data is left out, and it says so. */
	assert_int_equal(devmig_arc_default_estimate(3 * MS, SC, 50000000, 0, &partial), 3 * MS);
	assert_true(partial);
	partial = false;
	assert_int_equal(devmig_arc_default_estimate(3 * MS, SC, 0, 0, &partial), 3 * MS);
	assert_false(partial);
}

/* ---- a path's cost ---- */

static uint64_t per_arc(void *opaque, enum devmig_state from, enum devmig_state to)
{
	(void)opaque;
	return (uint64_t)from * 10 + (uint64_t)to;
}

static void fsm_path_cost_sums_the_arcs(void **state)
{
	uint64_t total = 77;
	(void)state;
	/* RUNNING(2) -> RUNNING_P2P(5) -> STOP(1) -> STOP_COPY(3): 25 + 51 + 13. */
	assert_int_equal(devmig_fsm_path_cost(R, SC, DEVMIG_MIG_ALL, per_arc, NULL, &total),
			 DEVMIG_FSM_OK);
	assert_int_equal(total, 25 + 51 + 13);
	assert_int_equal(devmig_fsm_path_cost(R, R, DEVMIG_MIG_ALL, per_arc, NULL, &total),
			 DEVMIG_FSM_OK);
	assert_int_equal(total, 0);
	total = 77;
	assert_int_not_equal(devmig_fsm_path_cost(SC, PC, DEVMIG_MIG_ALL, per_arc, NULL, &total),
			     DEVMIG_FSM_OK);
	assert_int_equal(total, 77);
}

static void arc_table_path_sums_and_marks_partial(void **state)
{
	struct devmig_feature_arc_estimates est;
	uint64_t ns;
	bool partial;
	(void)state;
	memset(&est, 0, sizeof(est));
	est.narcs = 2;
	est.arcs[0] = (struct devmig_arc_estimate){ .from = PC, .to = PCP, .ns = 1 * MS };
	est.arcs[1] = (struct devmig_arc_estimate){ .from = PCP, .to = SC, .ns = 20 * MS };
	assert_int_equal(devmig_arc_estimates_path(&est, PC, SC, DEVMIG_MIG_ALL, &ns, &partial), 0);
	assert_int_equal(ns, 21 * MS);
	assert_false(partial);
	est.arcs[1].flags = DEVMIG_DEADLINE_PARTIAL;
	assert_int_equal(devmig_arc_estimates_path(&est, PC, SC, DEVMIG_MIG_ALL, &ns, &partial), 0);
	assert_true(partial);
	/* An arc the table lacks: unknown, so partial. */
	assert_int_equal(devmig_arc_estimates_path(&est, R, ST, DEVMIG_MIG_ALL, &ns, &partial), 0);
	assert_true(partial);
	assert_int_equal(ns, 0);
	/* No path at all. */
	assert_int_equal(devmig_arc_estimates_path(&est, SC, PC, DEVMIG_MIG_ALL, &ns, &partial),
			 -EINVAL);
	/* narcs beyond the table is clamped, never read past it. */
	est.narcs = 1000;
	assert_int_equal(devmig_arc_estimates_path(&est, PC, PCP, DEVMIG_MIG_ALL, &ns, &partial), 0);
	assert_int_equal(ns, 1 * MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pace_unlimited_never_waits),
		cmocka_unit_test(pace_waits_what_the_rate_takes_beyond_the_burst),
		cmocka_unit_test(pace_idle_time_earns_no_credit),
		cmocka_unit_test(pace_huge_charges_saturate),
		cmocka_unit_test(muldiv_does_not_overflow),
		cmocka_unit_test(xfer_counts_the_time_after_full_reads_only),
		cmocka_unit_test(xfer_recent_reads_weigh_most),
		cmocka_unit_test(change_meter_samples_over_windows),
		cmocka_unit_test(plan_follows_the_path_with_each_arcs_estimate),
		cmocka_unit_test(plan_refuses_before_the_first_arc_when_the_path_does_not_fit),
		cmocka_unit_test(plan_refuses_a_later_arc_when_time_ran_out),
		cmocka_unit_test(overrun_is_how_late),
		cmocka_unit_test(plan_estimates_saturate),
		cmocka_unit_test(default_estimate_is_fixed_cost_and_data_at_the_rate),
		cmocka_unit_test(fsm_path_cost_sums_the_arcs),
		cmocka_unit_test(arc_table_path_sums_and_marks_partial),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
