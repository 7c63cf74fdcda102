/* SPDX-License-Identifier: MIT */
/*
 * DEVICE_FEATURE (lib/wire_feature.c): every feature's GET/SET/PROBE
 * request and reply, typed and raw encoding, and every refusal.
 */
#include <errno.h>
#include <stdio.h>

#include "devmig/migration.h"
#include "wire_test_util.h"

#define FEAT(op, idx) (DEVMIG_FEATURE_##op | (idx))
#define GET DEVMIG_FEATURE_GET
#define SET DEVMIG_FEATURE_SET
#define PROBE DEVMIG_FEATURE_PROBE
#define MIGRATION DEVMIG_FEATURE_MIGRATION
#define STATE DEVMIG_FEATURE_MIG_DEVICE_STATE
#define LOG_START DEVMIG_FEATURE_DMA_LOGGING_START
#define LOG_STOP DEVMIG_FEATURE_DMA_LOGGING_STOP
#define REPORT DEVMIG_FEATURE_DMA_LOGGING_REPORT
#define DATA_SIZE DEVMIG_FEATURE_MIG_DATA_SIZE
#define PRECOPY DEVMIG_FEATURE_PRECOPY_INFO
#define DEADLINE DEVMIG_FEATURE_MIG_STATE_DEADLINE
#define ESTIMATES DEVMIG_FEATURE_ARC_ESTIMATES
#define DIRTY DEVMIG_FEATURE_DIRTY_RATE
#define DL_LEN sizeof(struct devmig_feature_mig_deadline)
#define EST_LEN sizeof(struct devmig_feature_arc_estimates)
#define DR_LEN sizeof(struct devmig_feature_dirty_rate)

#define FU (m->u.feature.u)
#define FF (m->u.feature.f)

static void feat(struct fx *f, bool reply, uint32_t flags, uint32_t argsz)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_FEATURE, reply);
	f->m.u.feature.f.flags = flags;
	f->m.u.feature.f.argsz = argsz;
}

static void raw(struct fx *f, const void *p, size_t n)
{
	memcpy(f->fdata, p, n);
	f->m.u.feature.data = f->fdata;
	f->m.u.feature.data_len = n;
}

/* ---- bases ---- */

static void b_get_migration_req(struct fx *f)
{
	feat(f, false, GET | MIGRATION, 16);
}

static void b_get_migration_rep(struct fx *f)
{
	feat(f, true, GET | MIGRATION, 16);
	f->m.u.feature.u.migration.flags = 7;
}

static void b_get_migration_rep_raw(struct fx *f)
{
	uint64_t flags = 5;

	feat(f, true, GET | MIGRATION, 16);
	raw(f, &flags, 8);
}

static void b_get_state_req(struct fx *f)
{
	feat(f, false, GET | STATE, 16);
}

static void b_get_state_rep(struct fx *f)
{
	feat(f, true, GET | STATE, 16);
	f->m.u.feature.u.mig_state.device_state = 2;
}

static void b_set_state_req(struct fx *f)
{
	feat(f, false, SET | STATE, 16);
	f->m.u.feature.u.mig_state.device_state = 3;
}

static void b_set_state_req_raw(struct fx *f)
{
	struct devmig_feature_mig_state s = { .device_state = 7, .data_fd = 0xffffffff };

	feat(f, false, SET | STATE, 16);
	raw(f, &s, sizeof(s));
}

static void b_set_state_rep(struct fx *f)
{
	b_set_state_req(f);
	f->m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
}

static void b_log_start_req(struct fx *f)
{
	feat(f, false, SET | LOG_START, 8 + 16 + 32);
	f->m.u.feature.u.log_start.ctl.page_size = 4096;
	f->m.u.feature.u.log_start.ctl.num_ranges = 2;
	f->ranges[0] = (struct devmig_dma_logging_range){ 0x100000, 0x10000 };
	f->ranges[1] = (struct devmig_dma_logging_range){ 0x200000, 0x2000 };
	f->m.u.feature.u.log_start.ranges = (const uint8_t *)f->ranges;
}

static void b_log_start_req_all(struct fx *f)
{
	feat(f, false, SET | LOG_START, 8 + 16);
	f->m.u.feature.u.log_start.ctl.page_size = 4096;
}

/* The device chose 2 MiB pages: the echoed ranges are not aligned to them. */
static void b_log_start_rep(struct fx *f)
{
	b_log_start_req(f);
	f->m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	f->m.u.feature.u.log_start.ctl.page_size = 2u << 20;
}

static void b_log_stop_req(struct fx *f)
{
	feat(f, false, SET | LOG_STOP, 8);
}

static void b_log_stop_rep(struct fx *f)
{
	feat(f, true, SET | LOG_STOP, 8);
}

/* 65 pages of 4 KiB: a 2-word (16-byte) bitmap. */
static void b_report_req(struct fx *f)
{
	feat(f, false, GET | REPORT, 8 + 24 + 16);
	f->m.u.feature.u.log_report.rep.iova = 0x100000;
	f->m.u.feature.u.log_report.rep.length = 65 * 4096;
	f->m.u.feature.u.log_report.rep.page_size = 4096;
}

static void b_report_rep(struct fx *f)
{
	b_report_req(f);
	f->m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	for (int i = 0; i < 16; i++)
		f->bitmap[i] = (uint8_t)(i * 17);
	f->m.u.feature.u.log_report.bitmap = f->bitmap;
	f->m.u.feature.u.log_report.bitmap_len = 16;
}

static void b_report_rep_raw(struct fx *f)
{
	struct devmig_feature_dma_logging_report r = { 0x200000, 64 * 8192, 8192 };
	uint8_t d[32];

	feat(f, true, GET | REPORT, 8 + 32);
	memcpy(d, &r, 24);
	memset(d + 24, 0x5a, 8);
	raw(f, d, 32);
}

static void b_data_size_req(struct fx *f)
{
	feat(f, false, GET | DATA_SIZE, 16);
}

static void b_data_size_rep(struct fx *f)
{
	feat(f, true, GET | DATA_SIZE, 16);
	f->m.u.feature.u.data_size.stop_copy_length = 12345;
}

static void b_precopy_req(struct fx *f)
{
	feat(f, false, GET | PRECOPY, 24);
}

static void b_precopy_rep(struct fx *f)
{
	feat(f, true, GET | PRECOPY, 24);
	f->m.u.feature.u.precopy.initial_bytes = 100;
	f->m.u.feature.u.precopy.dirty_bytes = 200;
}

static void b_mig_status_req(struct fx *f)
{
	feat(f, false, GET | DEVMIG_FEATURE_MIG_STATUS, 8 + 256);
}

static void b_mig_status_rep(struct fx *f)
{
	feat(f, true, GET | DEVMIG_FEATURE_MIG_STATUS, 8 + 256);
	f->m.u.feature.u.mig_status.bytes_loaded = 4096;
	f->m.u.feature.u.mig_status.load_error = -22;
	snprintf(f->m.u.feature.u.mig_status.reason, sizeof(f->m.u.feature.u.mig_status.reason),
		 "record 3 (DEVICE): CRC mismatch");
}

static void b_compat_rep(struct fx *f)
{
	feat(f, true, GET | DEVMIG_FEATURE_COMPAT, 8 + sizeof(struct devmig_feature_compat));
	snprintf(f->m.u.feature.u.compat.version, 128, "1af4:10f1-memblk-v2");
	f->m.u.feature.u.compat.naccepts = 1;
	snprintf(f->m.u.feature.u.compat.accepts[0], 128, "1af4:10f1-memblk-v1");
	f->m.u.feature.u.compat.config_fingerprint = 0x1234;
	f->m.u.feature.u.compat.caps = 7;
}

/* The deadline extension: a state change within 290 ms, its outcome, the estimates. */
static void b_deadline_req(struct fx *f)
{
	feat(f, false, SET | DEADLINE, 8 + DL_LEN); /* room for the outcome */
	f->m.u.feature.u.deadline.device_state = DEVMIG_STATE_STOP_COPY;
	f->m.u.feature.u.deadline.deadline_ns = 290000000;
}

static void b_deadline_rep(struct fx *f)
{
	feat(f, true, SET | DEADLINE, 8 + DL_LEN);
	f->m.u.feature.u.deadline = (struct devmig_feature_mig_deadline){
		.device_state = DEVMIG_STATE_STOP_COPY, .flags = DEVMIG_DEADLINE_OVERRUN,
		.deadline_ns = 290000000, .estimate_ns = 120000000, .elapsed_ns = 300000000,
		.overrun_ns = 10000000,
	};
}

static void b_deadline_refused_rep(struct fx *f)
{
	b_deadline_rep(f);
	f->m.u.feature.u.deadline.device_state = DEVMIG_STATE_PRE_COPY;
	f->m.u.feature.u.deadline.flags = DEVMIG_DEADLINE_REFUSED | DEVMIG_DEADLINE_PARTIAL;
	f->m.u.feature.u.deadline.overrun_ns = 0;
}

static void b_estimates_req(struct fx *f)
{
	feat(f, false, GET | ESTIMATES, 8 + EST_LEN);
}

static void b_estimates_rep(struct fx *f)
{
	struct devmig_feature_arc_estimates *e = &f->m.u.feature.u.estimates;

	feat(f, true, GET | ESTIMATES, 8 + EST_LEN);
	e->rate = 1u << 30;
	e->stop_copy_bytes = 1u << 24;
	e->narcs = 2;
	e->arcs[0] = (struct devmig_arc_estimate){ .from = DEVMIG_STATE_PRE_COPY,
						   .to = DEVMIG_STATE_PRE_COPY_P2P, .ns = 1000000 };
	e->arcs[1] = (struct devmig_arc_estimate){ .from = DEVMIG_STATE_PRE_COPY_P2P,
						   .to = DEVMIG_STATE_STOP_COPY, .ns = 16000000,
						   .flags = DEVMIG_DEADLINE_PARTIAL };
	e->last_state = DEVMIG_STATE_STOP_COPY;
	e->last_flags = DEVMIG_DEADLINE_DRAINED;
	e->last_deadline_ns = 290000000;
}

static void b_dirty_set_req(struct fx *f)
{
	feat(f, false, SET | DIRTY, 16);
	f->m.u.feature.u.dirty_rate.cap = 20u << 20;
}

static void b_dirty_set_rep(struct fx *f)
{
	b_dirty_set_req(f);
	f->m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
}

static void b_dirty_get_req(struct fx *f)
{
	feat(f, false, GET | DIRTY, 8 + DR_LEN);
}

static void b_dirty_get_rep(struct fx *f)
{
	feat(f, true, GET | DIRTY, 8 + DR_LEN);
	f->m.u.feature.u.dirty_rate = (struct devmig_feature_dirty_rate){
		.cap = 20u << 20, .measured = 19u << 20, .throttled_ns = 5000000000ull,
		.flags = DEVMIG_DIRTY_RATE_ACTIVE,
	};
}

static void b_probe_req(struct fx *f)
{
	feat(f, false, PROBE | GET | SET | STATE, 8);
}

static void b_probe_rep(struct fx *f)
{
	feat(f, true, PROBE | GET | SET | STATE, 8);
}

static void b_probe_only_req(struct fx *f)
{
	feat(f, false, PROBE | MIGRATION, 8);
}

static void b_probe_start_with_data(struct fx *f)
{
	feat(f, false, PROBE | SET | LOG_START, 13);
	raw(f, "\x01\xff\x00\x13\x37", 5); /* not a valid LOG_START: ignored */
}

#define BASES(X)                \
	X(get_migration_req)    \
	X(get_migration_rep)    \
	X(get_migration_rep_raw) \
	X(get_state_req)        \
	X(get_state_rep)        \
	X(set_state_req)        \
	X(set_state_req_raw)    \
	X(set_state_rep)        \
	X(log_start_req)        \
	X(log_start_req_all)    \
	X(log_start_rep)        \
	X(log_stop_req)         \
	X(log_stop_rep)         \
	X(report_req)           \
	X(report_rep)           \
	X(report_rep_raw)       \
	X(data_size_req)        \
	X(data_size_rep)        \
	X(precopy_req)          \
	X(precopy_rep)          \
	X(mig_status_req)       \
	X(mig_status_rep)       \
	X(compat_rep)           \
	X(deadline_req)         \
	X(deadline_rep)         \
	X(deadline_refused_rep) \
	X(estimates_req)        \
	X(estimates_rep)        \
	X(dirty_set_req)        \
	X(dirty_set_rep)        \
	X(dirty_get_req)        \
	X(dirty_get_rep)        \
	X(probe_req)            \
	X(probe_rep)            \
	X(probe_only_req)       \
	X(probe_start_with_data)

#define DEF_RT(b)                                                          \
	static void round_trip_feature_##b(void **state)                   \
	{                                                                  \
		(void)state;                                               \
		run_round_trip(b_##b);                                     \
	}                                                                  \
	static void every_truncation_of_feature_##b##_is_refused(void **state) \
	{                                                                  \
		(void)state;                                               \
		run_truncations(b_##b);                                    \
	}
BASES(DEF_RT)
#define ENT_RT(b) cmocka_unit_test(round_trip_feature_##b), \
		  cmocka_unit_test(every_truncation_of_feature_##b##_is_refused),

/* ---- single-mutation rejections ---- */

#define REJECTS(X)                                                                              \
	/* struct vfio_device_feature */                                                        \
	X(feature_payload_below_8_is_short, b_get_migration_req, SHORT, f->adjust = -1)          \
	X(feature_argsz_below_payload_is_refused, b_set_state_req, ARGSZ, FF.argsz = 15)         \
	X(feature_reply_argsz_below_payload_is_refused, b_get_migration_rep, ARGSZ, FF.argsz = 15) \
	X(feature_unknown_flag_bit_is_refused, b_get_migration_req, FIELD, FF.flags |= 1u << 19) \
	X(feature_top_flag_bit_is_refused, b_get_migration_req, FIELD, FF.flags |= 1u << 31)     \
	X(feature_without_get_set_probe_is_refused, b_get_migration_req, FEATURE_OP, FF.flags = MIGRATION) \
	X(feature_get_and_set_without_probe_is_refused, b_get_state_req, FEATURE_OP, FF.flags = GET | SET | STATE) \
	X(feature_index_0_is_unknown, b_get_migration_req, FEATURE, FF.flags = GET | 0)          \
	X(feature_index_3_is_unknown, b_get_migration_req, FEATURE, FF.flags = GET | 3)          \
	X(feature_index_5_is_unknown, b_get_migration_req, FEATURE, FF.flags = GET | 5)          \
	X(feature_index_10_is_unknown, b_get_migration_req, FEATURE, FF.flags = GET | 10)        \
	X(feature_index_0xde7f_is_unknown, b_get_migration_req, FEATURE, FF.flags = GET | 0xde7f) \
	X(feature_probe_unknown_index_is_unknown, b_probe_req, FEATURE, FF.flags = PROBE | 4)    \
	X(feature_set_migration_is_refused, b_get_migration_req, FEATURE_OP, FF.flags = SET | MIGRATION) \
	X(feature_get_log_start_is_refused, b_log_stop_req, FEATURE_OP, FF.flags = GET | LOG_START) \
	X(feature_get_log_stop_is_refused, b_log_stop_req, FEATURE_OP, FF.flags = GET | LOG_STOP) \
	X(feature_set_report_is_refused, b_log_stop_req, FEATURE_OP, FF.flags = SET | REPORT)    \
	X(feature_set_data_size_is_refused, b_log_stop_req, FEATURE_OP, FF.flags = SET | DATA_SIZE) \
	X(feature_set_precopy_is_refused, b_log_stop_req, FEATURE_OP, FF.flags = SET | PRECOPY)  \
	X(feature_probe_set_migration_is_refused, b_probe_req, FEATURE_OP, FF.flags = PROBE | SET | MIGRATION) \
	X(feature_probe_get_set_log_start_is_refused, b_probe_req, FEATURE_OP, FF.flags = PROBE | GET | SET | LOG_START) \
	X(feature_probe_get_report_set_is_refused, b_probe_req, FEATURE_OP, FF.flags = PROBE | SET | REPORT) \
	X(feature_with_fd_is_refused, b_get_migration_req, FDS, f->nfds = 1)                     \
	X(feature_reply_with_fd_is_refused, b_get_migration_rep, FDS, f->nfds = 1)               \
	X(feature_reply_unknown_index_is_refused, b_get_migration_rep, FEATURE, FF.flags = GET | 4) \
	/* GET requests */                                                                      \
	X(get_migration_argsz_below_reply_is_refused, b_get_migration_req, ARGSZ, FF.argsz = 15) \
	X(get_state_argsz_below_reply_is_refused, b_get_state_req, ARGSZ, FF.argsz = 8)          \
	X(get_data_size_argsz_below_reply_is_refused, b_data_size_req, ARGSZ, FF.argsz = 15)     \
	X(get_precopy_argsz_below_reply_is_refused, b_precopy_req, ARGSZ, FF.argsz = 23)         \
	/* REPORT request */                                                                    \
	X(report_data_short_is_refused, b_report_req, SHORT, f->adjust = -1)                     \
	X(report_page_size_2048_is_refused, b_report_req, PAGE_SIZE, FU.log_report.rep.page_size = 2048) \
	X(report_page_size_zero_is_refused, b_report_req, PAGE_SIZE, FU.log_report.rep.page_size = 0) \
	X(report_page_size_not_power_of_two_is_refused, b_report_req, PAGE_SIZE, FU.log_report.rep.page_size = 12288) \
	X(report_length_zero_is_refused, b_report_req, FIELD, FU.log_report.rep.length = 0)      \
	X(report_wrap_is_overflow, b_report_req, OVERFLOW, FU.log_report.rep.iova = 0ull - 4096 * 8) \
	X(report_iova_unaligned_is_refused, b_report_req, ALIGN, FU.log_report.rep.iova += 512)  \
	X(report_length_unaligned_is_refused, b_report_req, ALIGN, FU.log_report.rep.length -= 1) \
	X(report_iova_unaligned_to_larger_page_is_refused, b_report_req, ALIGN, FU.log_report.rep.page_size = 1u << 21; FU.log_report.rep.length = 1u << 21) \
	X(report_bitmap_beyond_max_msg_size_is_too_big, b_report_req, TOO_BIG, FU.log_report.rep.length = 1ull << 40; FF.argsz = UINT32_MAX) \
	X(report_argsz_below_reply_is_refused, b_report_req, ARGSZ, FF.argsz = 47)               \
	/* SET MIG_DEVICE_STATE */                                                              \
	X(set_state_data_short_is_refused, b_set_state_req, SHORT, f->adjust = -1)               \
	X(set_state_without_data_is_refused, b_set_state_req, SHORT, f->adjust = -8)             \
	X(set_state_8_is_refused, b_set_state_req, STATE, FU.mig_state.device_state = 8)         \
	X(set_state_huge_is_refused, b_set_state_req, STATE, FU.mig_state.device_state = UINT32_MAX) \
	/* the deadline extension */                                                            \
	X(deadline_req_below_16_is_refused, b_deadline_req, SHORT, f->adjust = -1) \
	X(deadline_req_flags_are_refused, b_deadline_req, FIELD, FU.deadline.flags = 1)          \
	X(deadline_req_state_8_is_refused, b_deadline_req, STATE, FU.deadline.device_state = 8)  \
	X(deadline_get_is_refused, b_deadline_req, FEATURE_OP, FF.flags = GET | DEADLINE)        \
	X(deadline_rep_short_is_refused, b_deadline_rep, SHORT, f->adjust = -1)                  \
	X(deadline_rep_unknown_flag_is_refused, b_deadline_rep, FIELD, FU.deadline.flags = 1u << 5) \
	X(deadline_rep_state_8_is_refused, b_deadline_rep, STATE, FU.deadline.device_state = 8)  \
	X(estimates_set_is_refused, b_estimates_req, FEATURE_OP, FF.flags = SET | ESTIMATES)     \
	X(estimates_argsz_below_reply_is_refused, b_estimates_req, ARGSZ, FF.argsz = 8 + EST_LEN - 1) \
	X(estimates_rep_short_is_refused, b_estimates_rep, SHORT, f->adjust = -1)                \
	X(estimates_rep_too_many_arcs_is_refused, b_estimates_rep, FIELD, FU.estimates.narcs = DEVMIG_ARC_EST_MAX + 1) \
	X(estimates_rep_reserved_is_refused, b_estimates_rep, FIELD, FU.estimates.reserved = 1) \
	X(estimates_rep_arc_state_8_is_refused, b_estimates_rep, FIELD, FU.estimates.arcs[1].to = 8) \
	X(estimates_rep_arc_flag_is_refused, b_estimates_rep, FIELD, FU.estimates.arcs[0].flags = 2) \
	X(estimates_rep_arc_reserved_is_refused, b_estimates_rep, FIELD, FU.estimates.arcs[0].reserved = 1) \
	X(estimates_rep_last_state_8_is_refused, b_estimates_rep, FIELD, FU.estimates.last_state = 8) \
	X(estimates_rep_last_flag_is_refused, b_estimates_rep, FIELD, FU.estimates.last_flags = 1u << 5) \
	/* the dirty_rate extension */                                                          \
	X(dirty_set_short_is_refused, b_dirty_set_req, SHORT, FF.argsz = 15; f->adjust = -1)     \
	X(dirty_get_argsz_below_reply_is_refused, b_dirty_get_req, ARGSZ, FF.argsz = 8 + DR_LEN - 1) \
	X(dirty_get_rep_short_is_refused, b_dirty_get_rep, SHORT, f->adjust = -1)                \
	X(dirty_get_rep_flag_is_refused, b_dirty_get_rep, FIELD, FU.dirty_rate.flags = 2)        \
	X(dirty_get_rep_reserved_is_refused, b_dirty_get_rep, FIELD, FU.dirty_rate.reserved = 1) \
	/* SET DMA_LOGGING_START */                                                             \
	X(log_start_data_below_16_is_refused, b_log_start_req_all, SHORT, f->adjust = -1)        \
	X(log_start_reserved_nonzero_is_refused, b_log_start_req, FIELD, FU.log_start.ctl.reserved = 1) \
	X(log_start_257_ranges_is_too_many, b_log_start_req, TOO_MANY, FU.log_start.ctl.num_ranges = 257; FF.argsz = 8 + 16 + 257 * 16) \
	X(log_start_huge_num_ranges_is_too_many, b_log_start_req, TOO_MANY, fx_poke(f, 16 + 8 + 8 + 3, 0x80)) \
	X(log_start_fewer_ranges_than_num_is_refused, b_log_start_req, SHORT, fx_poke(f, 16 + 8 + 8, 3)) \
	X(log_start_partial_range_is_refused, b_log_start_req, SHORT, f->adjust = -1)            \
	X(log_start_page_size_2048_is_refused, b_log_start_req, PAGE_SIZE, FU.log_start.ctl.page_size = 2048) \
	X(log_start_page_size_4097_is_refused, b_log_start_req, PAGE_SIZE, FU.log_start.ctl.page_size = 4097) \
	X(log_start_page_size_zero_is_refused, b_log_start_req_all, PAGE_SIZE, FU.log_start.ctl.page_size = 0) \
	X(log_start_range_length_zero_is_refused, b_log_start_req, FIELD, f->ranges[1].length = 0) \
	X(log_start_range_wrap_is_overflow, b_log_start_req, OVERFLOW, f->ranges[1].iova = 0ull - 0x1000) \
	X(log_start_range_iova_unaligned_is_refused, b_log_start_req, ALIGN, f->ranges[1].iova += 8) \
	X(log_start_range_length_unaligned_is_refused, b_log_start_req, ALIGN, f->ranges[0].length += 0x800) \
	X(log_start_ranges_unaligned_to_larger_page_is_refused, b_log_start_req, ALIGN, FU.log_start.ctl.page_size = 0x10000) \
	X(log_start_overlapping_ranges_are_refused, b_log_start_req, OVERLAP, f->ranges[1].iova = 0x10f000) \
	X(log_start_overlap_in_reverse_order_is_refused, b_log_start_req, OVERLAP, f->ranges[1].iova = 0xff000) \
	X(log_start_identical_ranges_are_refused, b_log_start_req, OVERLAP, f->ranges[1] = f->ranges[0]) \
	X(log_start_contained_range_is_refused, b_log_start_req, OVERLAP, f->ranges[1] = (struct devmig_dma_logging_range){ 0x104000, 0x1000 }) \
	X(log_start_containing_range_is_refused, b_log_start_req, OVERLAP, f->ranges[1] = (struct devmig_dma_logging_range){ 0x0, 0x200000 }) \
	X(log_start_overlap_of_first_and_last_is_refused, b_log_start_req, OVERLAP, FU.log_start.ctl.num_ranges = 3; FF.argsz += 16; f->ranges[2] = (struct devmig_dma_logging_range){ 0x10f000, 0x2000 }) \
	/* SET DMA_LOGGING_STOP */                                                              \
	/* replies */                                                                           \
	X(get_migration_reply_short_is_refused, b_get_migration_rep, SHORT, f->adjust = -1)      \
	X(get_migration_reply_without_data_is_refused, b_get_migration_rep, SHORT, f->adjust = -8) \
	X(get_state_reply_state_8_is_refused, b_get_state_rep, STATE, FU.mig_state.device_state = 8) \
	X(get_data_size_reply_short_is_refused, b_data_size_rep, SHORT, f->adjust = -1)          \
	X(get_precopy_reply_8_bytes_is_refused, b_precopy_rep, SHORT, f->adjust = -8)            \
	X(mig_status_reason_unterminated_is_refused, b_mig_status_rep, FIELD, memset(FU.mig_status.reason, 'x', sizeof(FU.mig_status.reason))) \
	X(mig_status_reserved_nonzero_is_refused, b_mig_status_rep, FIELD, FU.mig_status.reserved = 1) \
	X(compat_naccepts_above_8_is_refused, b_compat_rep, FIELD, FU.compat.naccepts = 9) \
	X(compat_version_unterminated_is_refused, b_compat_rep, FIELD, memset(FU.compat.version, 'v', 128)) \
	X(get_mig_status_argsz_below_reply_is_refused, b_mig_status_req, ARGSZ, FF.argsz = 263) \
	X(report_reply_bitmap_short_is_refused, b_report_rep, SHORT, f->adjust = -8)             \
	X(report_reply_without_report_is_refused, b_report_rep, SHORT, f->adjust = -(24 + 16))   \
	X(report_reply_page_size_invalid_is_refused, b_report_rep_raw, PAGE_SIZE, f->fdata[16] = 0x01) \
	X(report_reply_length_zero_is_refused, b_report_rep, FIELD, FU.log_report.rep.length = 0; FU.log_report.bitmap_len = 0) \
	X(report_reply_unaligned_is_refused, b_report_rep, ALIGN, FU.log_report.rep.iova += 1)   \
	X(set_state_reply_state_8_is_refused, b_set_state_rep, STATE, FU.mig_state.device_state = 8) \
	X(set_state_reply_short_is_refused, b_set_state_rep, SHORT, f->adjust = -1)              \
	X(log_start_reply_reserved_nonzero_is_refused, b_log_start_rep, FIELD, FU.log_start.ctl.reserved = 2) \
	X(log_start_reply_page_size_invalid_is_refused, b_log_start_rep, PAGE_SIZE, FU.log_start.ctl.page_size = 1000) \
	X(log_start_reply_range_cut_is_refused, b_log_start_rep, SHORT, f->adjust = -1)

REJECTS(REJECT_DEFINE)


/* ---- the kernel's rule: data beyond what a feature needs is ignored ---- */

/*
 * base, then body mutates f (adding data past what the feature needs),
 * decoding succeeds, then check runs with d (the decoded message) in scope.
 */
#define LIBERAL(name, base, body, check)                                   \
	static void name(void **state)                                     \
	{                                                                  \
		struct fx *f = fx_new(base);                               \
		struct devmig_msg *m = &f->m, d;                           \
		uint8_t *keep;                                             \
		(void)state;                                               \
		(void)m;                                                   \
		body;                                                      \
		assert_int_equal(fx_decode(f, &d, &keep), W(OK));          \
		check;                                                     \
		free(keep);                                                \
		free(f);                                                   \
	}

/* QEMU sends a GET with room for the answer: that data is not looked at. */
LIBERAL(get_migration_with_data_is_accepted, b_get_migration_req, f->adjust = 8,
	assert_int_equal(d.u.feature.data_len, 8))
LIBERAL(get_precopy_with_data_is_accepted, b_precopy_req, f->adjust = 1,
	assert_int_equal(d.u.feature.index, PRECOPY))
/* libvfio-user's REPORT request: argsz counts the bitmap it expects back. */
LIBERAL(report_data_long_is_accepted_fields_from_the_start, b_report_req, f->adjust = 16,
	assert_int_equal(d.u.feature.u.log_report.rep.length, 65 * 4096);
	assert_int_equal(d.u.feature.u.log_report.rep.page_size, 4096);
	assert_null(d.u.feature.u.log_report.bitmap))
LIBERAL(set_state_data_long_is_accepted_state_from_the_start, b_set_state_req,
	f->adjust = 8; FF.argsz = 24,
	assert_int_equal(d.u.feature.u.mig_state.device_state, 3);
	assert_int_equal(d.u.feature.data_len, 16))
/* Bytes past num_ranges' ranges are not ranges. */
LIBERAL(log_start_bytes_past_the_ranges_are_ignored, b_log_start_req,
	f->adjust = 16; FF.argsz = 8 + 16 + 48,
	assert_int_equal(d.u.feature.u.log_start.ctl.num_ranges, 2);
	struct devmig_dma_logging_range r;
	devmig_log_range(&d, 1, &r);
	assert_int_equal(r.iova, 0x200000);
	devmig_log_range(&d, 2, &r);
	assert_int_equal(r.length, 0))
/* libvfio-user's client and QEMU send STOP with START's control structure. */
LIBERAL(log_stop_with_start_structure_is_accepted, b_log_stop_req,
	struct devmig_feature_dma_logging_control ctl;
	memset(&ctl, 0, sizeof(ctl)); ctl.page_size = 4096;
	raw(f, &ctl, sizeof(ctl)); FF.argsz = 8 + 16,
	assert_int_equal(d.u.feature.index, LOG_STOP);
	assert_int_equal(d.u.feature.data_len, 16))
LIBERAL(log_stop_reply_echoing_data_is_accepted, b_log_stop_rep, f->adjust = 16; FF.argsz = 24,
	assert_int_equal(d.u.feature.data_len, 16))
LIBERAL(get_migration_reply_long_is_accepted_flags_from_the_start, b_get_migration_rep,
	f->adjust = 1; FF.argsz = 17,
	assert_int_equal(d.u.feature.u.migration.flags, 7))
LIBERAL(get_precopy_reply_long_is_accepted, b_precopy_rep, f->adjust = 8; FF.argsz = 32,
	assert_int_equal(d.u.feature.data_len, 24))
LIBERAL(report_reply_bitmap_long_is_accepted_bitmap_exact, b_report_rep,
	f->adjust = 8; FF.argsz = 8 + 24 + 16 + 8,
	assert_int_equal(d.u.feature.u.log_report.bitmap_len, 16))

static void liberal_data_never_excuses_what_is_missing(void **state)
{
	struct fx *f;
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	/* argsz below the answer's size: still refused with extra data present. */
	f = fx_new(b_get_migration_req);
	f->adjust = 8;
	f->m.u.feature.f.argsz = 15;
	assert_int_equal(fx_decode(f, &d, &keep), W(E_ARGSZ));
	free(keep);
	free(f);
	/* argsz below the bytes present: refused. */
	f = fx_new(b_set_state_req);
	f->adjust = 8;
	assert_int_equal(fx_decode(f, &d, &keep), W(E_ARGSZ));
	free(keep);
	free(f);
	/* A REPORT whose argsz has no room for the bitmap: extra data does not help. */
	f = fx_new(b_report_req);
	f->adjust = 16;
	f->m.u.feature.f.argsz = 8 + 24 + 16 + 8; /* covers the bytes sent ... */
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	free(f);
	f = fx_new(b_report_req);
	f->m.u.feature.f.argsz = 8 + 24 + 8; /* ... but not the 16-byte bitmap */
	assert_int_equal(fx_decode(f, &d, &keep), W(E_ARGSZ));
	free(keep);
	free(f);
	/* A range cut short is not made whole by anything. */
	f = fx_new(b_log_start_req);
	f->adjust = -1;
	assert_int_equal(fx_decode(f, &d, &keep), W(E_SHORT));
	free(keep);
	free(f);
}

#define LIBERAL_TESTS(X)                                              \
	X(get_migration_with_data_is_accepted)                        \
	X(get_precopy_with_data_is_accepted)                          \
	X(report_data_long_is_accepted_fields_from_the_start)         \
	X(set_state_data_long_is_accepted_state_from_the_start)       \
	X(log_start_bytes_past_the_ranges_are_ignored)                \
	X(log_stop_with_start_structure_is_accepted)                  \
	X(log_stop_reply_echoing_data_is_accepted)                    \
	X(get_migration_reply_long_is_accepted_flags_from_the_start)  \
	X(get_precopy_reply_long_is_accepted)                         \
	X(report_reply_bitmap_long_is_accepted_bitmap_exact)          \
	X(liberal_data_never_excuses_what_is_missing)
#define LIBERAL_ENTRY(name) cmocka_unit_test(name),

/* ---- acceptance and decoded fields ---- */

static struct fx *decode_ok(base_fn base, struct devmig_msg *d, uint8_t **keep)
{
	struct fx *f = fx_new(base);

	assert_int_equal(fx_decode(f, d, keep), W(OK));
	return f;
}

static void typed_fields_are_filled_from_raw_set_state(void **state)
{
	struct devmig_msg d;
	uint8_t *keep;
	struct fx *f = decode_ok(b_set_state_req_raw, &d, &keep);

	(void)state;
	assert_int_equal(d.u.feature.index, STATE);
	assert_int_equal(d.u.feature.data_len, 8);
	assert_ptr_equal(d.u.feature.data, keep + 24);
	assert_int_equal(d.u.feature.u.mig_state.device_state, 7);
	assert_int_equal(d.u.feature.u.mig_state.data_fd, 0xffffffff);
	free(keep);
	free(f);
}

static void typed_fields_are_filled_from_raw_migration_reply(void **state)
{
	struct devmig_msg d;
	uint8_t *keep;
	struct fx *f = decode_ok(b_get_migration_rep_raw, &d, &keep);

	(void)state;
	assert_int_equal(d.u.feature.u.migration.flags, 5);
	free(keep);
	free(f);
}

static void report_reply_bitmap_points_after_report(void **state)
{
	struct devmig_msg d;
	uint8_t *keep;
	struct fx *f = decode_ok(b_report_rep_raw, &d, &keep);

	(void)state;
	assert_int_equal(d.u.feature.u.log_report.rep.page_size, 8192);
	assert_int_equal(d.u.feature.u.log_report.rep.length, 64 * 8192);
	assert_ptr_equal(d.u.feature.u.log_report.bitmap, keep + 16 + 8 + 24);
	assert_int_equal(d.u.feature.u.log_report.bitmap_len, 8);
	assert_int_equal(d.u.feature.data_len, 32);
	free(keep);
	free(f);
}

static void report_request_has_no_bitmap(void **state)
{
	struct devmig_msg d;
	uint8_t *keep;
	struct fx *f = decode_ok(b_report_req, &d, &keep);

	(void)state;
	assert_int_equal(d.u.feature.u.log_report.rep.length, 65 * 4096);
	assert_null(d.u.feature.u.log_report.bitmap);
	assert_int_equal(d.u.feature.u.log_report.bitmap_len, 0);
	free(keep);
	free(f);
}

static void log_range_copies_each_range(void **state)
{
	struct devmig_msg d;
	struct devmig_dma_logging_range r;
	uint8_t *keep;
	struct fx *f = decode_ok(b_log_start_req, &d, &keep);

	(void)state;
	assert_int_equal(d.u.feature.u.log_start.ctl.num_ranges, 2);
	devmig_log_range(&d, 0, &r);
	assert_int_equal(r.iova, 0x100000);
	assert_int_equal(r.length, 0x10000);
	devmig_log_range(&d, 1, &r);
	assert_int_equal(r.iova, 0x200000);
	assert_int_equal(r.length, 0x2000);
	devmig_log_range(&d, 2, &r); /* out of range: zeroed */
	assert_int_equal(r.length, 0);
	free(keep);
	free(f);
}

static void log_start_zero_ranges_means_all_memory(void **state)
{
	struct devmig_msg d;
	uint8_t *keep;
	struct fx *f = decode_ok(b_log_start_req_all, &d, &keep);

	(void)state;
	assert_int_equal(d.u.feature.u.log_start.ctl.num_ranges, 0);
	assert_null(d.u.feature.u.log_start.ranges);
	free(keep);
	free(f);
}

static void log_start_adjacent_ranges_are_accepted(void **state)
{
	struct fx *f = fx_new(b_log_start_req);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->ranges[1] = (struct devmig_dma_logging_range){ 0x110000, 0x1000 };
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	free(f);
}

static void log_start_256_ranges_are_accepted(void **state)
{
	struct fx *f = fx_new(b_log_start_req);
	struct devmig_msg d;
	struct devmig_dma_logging_range r;
	uint8_t *keep;

	(void)state;
	/* Descending order, so a check of neighbours only would still pass. */
	for (unsigned i = 0; i < DEVMIG_LOG_MAX_RANGES; i++)
		f->ranges[i] = (struct devmig_dma_logging_range){ (uint64_t)(300 - i) * 0x2000, 0x1000 };
	f->m.u.feature.u.log_start.ctl.num_ranges = DEVMIG_LOG_MAX_RANGES;
	f->m.u.feature.f.argsz = 8 + 16 + 16 * DEVMIG_LOG_MAX_RANGES;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	devmig_log_range(&d, 255, &r);
	assert_int_equal(r.iova, 45 * 0x2000);
	free(keep);
	/* Overlap between the first and the last. */
	f->ranges[255] = (struct devmig_dma_logging_range){ 300 * 0x2000, 0x2000 };
	assert_int_equal(fx_decode(f, &d, &keep), W(E_OVERLAP));
	free(keep);
	free(f);
}

static void log_start_range_to_top_of_address_space_is_accepted(void **state)
{
	struct fx *f = fx_new(b_log_start_req);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->ranges[1] = (struct devmig_dma_logging_range){ 0ull - 0x2000, 0x1000 };
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	free(f);
}

static void report_with_other_page_size_than_start_is_accepted(void **state)
{
	struct fx *f = fx_new(b_report_req);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->m.u.feature.u.log_report.rep.page_size = 1u << 21;
	f->m.u.feature.u.log_report.rep.iova = 1u << 30;
	f->m.u.feature.u.log_report.rep.length = 1u << 30;
	f->m.u.feature.f.argsz = 8 + 24 + 64; /* 512 pages: 8 words */
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	free(f);
}

/* The largest report whose reply exactly fills max_msg_size, and one page more. */
static void report_reply_size_limit_is_exact(void **state)
{
	struct fx *f = fx_new(b_report_req);
	struct devmig_msg d;
	uint8_t *keep;
	uint64_t words = (f->lim.max_msg_size - 16 - 8 - 24) / 8;

	(void)state;
	assert_int_equal(16 + 8 + 24 + words * 8, f->lim.max_msg_size);
	f->m.u.feature.u.log_report.rep.length = words * 64 * 4096;
	f->m.u.feature.f.argsz = UINT32_MAX;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	f->m.u.feature.u.log_report.rep.length += 4096;
	assert_int_equal(fx_decode(f, &d, &keep), W(E_TOO_BIG));
	free(keep);
	f->lim.max_msg_size += 8;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	free(f);
}

static void report_argsz_exactly_reply_is_accepted(void **state)
{
	struct fx *f = fx_new(b_report_req);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	assert_int_equal(f->m.u.feature.f.argsz, 8 + 24 + 16);
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	f->m.u.feature.u.log_report.rep.length = 64 * 4096; /* one word */
	f->m.u.feature.f.argsz = 8 + 24 + 8;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	free(f);
}

static void probe_ignores_data(void **state)
{
	struct devmig_msg d;
	uint8_t *keep;
	struct fx *f = decode_ok(b_probe_start_with_data, &d, &keep);

	(void)state;
	assert_int_equal(d.u.feature.data_len, 5);
	assert_int_equal(d.u.feature.u.log_start.ctl.page_size, 0); /* not parsed */
	free(keep);
	free(f);
}

static void every_feature_op_pair_matches_the_table(void **state)
{
	static const struct {
		uint32_t index;
		bool get, set;
	} t[] = {
		{ MIGRATION, true, false }, { STATE, true, true },  { LOG_START, false, true },
		{ LOG_STOP, false, true },  { REPORT, true, false }, { DATA_SIZE, true, false },
		{ PRECOPY, true, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct {
			uint32_t flags;
			bool ok;
		} ops[] = {
			{ PROBE | GET, t[i].get },
			{ PROBE | SET, t[i].set },
			{ PROBE | GET | SET, t[i].get && t[i].set },
			{ PROBE, true },
		};

		for (size_t j = 0; j < 4; j++) {
			struct fx *f = fx_new(b_probe_req);
			struct devmig_msg d;
			uint8_t *keep;

			f->m.u.feature.f.flags = ops[j].flags | t[i].index;
			assert_int_equal(fx_decode(f, &d, &keep),
					 ops[j].ok ? W(OK) : W(E_FEATURE_OP));
			free(keep);
			free(f);
		}
	}
}

static void bitmap_size_is_whole_u64_words(void **state)
{
	(void)state;
	assert_int_equal(devmig_log_bitmap_size(4096, 4096), 8);
	assert_int_equal(devmig_log_bitmap_size(64 * 4096, 4096), 8);
	assert_int_equal(devmig_log_bitmap_size(65 * 4096, 4096), 16);
	assert_int_equal(devmig_log_bitmap_size(128 * 4096, 4096), 16);
	assert_int_equal(devmig_log_bitmap_size(1, 4096), 8);
	assert_int_equal(devmig_log_bitmap_size(0, 4096), 0);
	assert_int_equal(devmig_log_bitmap_size(4096, 0), 0);
	assert_int_equal(devmig_log_bitmap_size(1ull << 30, 1u << 21), 64);
	assert_int_equal(devmig_log_bitmap_size(1ull << 27, 1u << 21), 8);
	assert_int_equal(devmig_log_bitmap_size(UINT64_MAX, 4096), (((UINT64_MAX >> 12) + 1) / 64) * 8);
}

/* ---- encoding specifics ---- */

static void encode_report_reply_tail_is_the_bitmap(void **state)
{
	struct fx *f = fx_new(b_report_rep);
	uint8_t buf[64];
	const void *tail;
	size_t tail_len;
	enum devmig_wire_err err;

	(void)state;
	assert_int_equal(devmig_encode_head(buf, sizeof(buf), &f->m, &tail, &tail_len, &err),
			 16 + 8 + 24);
	assert_ptr_equal(tail, f->bitmap);
	assert_int_equal(tail_len, 16);
	free(f);

	f = fx_new(b_report_rep_raw);
	assert_int_equal(devmig_encode_head(buf, sizeof(buf), &f->m, &tail, &tail_len, &err),
			 16 + 8 + 24);
	assert_ptr_equal(tail, f->fdata + 24);
	assert_int_equal(tail_len, 8);
	free(f);
}

static void encode_raw_data_takes_precedence_over_typed(void **state)
{
	struct fx *f = fx_new(b_set_state_req_raw);
	struct devmig_msg d;
	uint8_t *b, *keep;
	size_t n;

	(void)state;
	f->m.u.feature.u.mig_state.device_state = 1; /* ignored: data is set */
	b = encode_exact(&f->m, &n);
	assert_int_equal(decode_exact(b, n, 0, &f->lim, &d, &keep), W(OK));
	assert_int_equal(d.u.feature.u.mig_state.device_state, 7);
	free(b);
	free(keep);
	free(f);
}

static void encode_typed_set_state_writes_8_bytes(void **state)
{
	struct fx *f = fx_new(b_set_state_req);
	uint8_t buf[64], want[8] = { 3, 0, 0, 0, 0, 0, 0, 0 };
	enum devmig_wire_err err;

	(void)state;
	assert_int_equal(devmig_encode(buf, sizeof(buf), &f->m, &err), 16 + 8 + 8);
	assert_memory_equal(buf + 24, want, 8);
	free(f);
}

static void expect_refused(struct fx *f, enum devmig_wire_err want)
{
	uint8_t buf[1024];
	enum devmig_wire_err err = W(OK);

	assert_int_equal(devmig_encode(buf, sizeof(buf), &f->m, &err), 0);
	assert_int_equal(err, want);
	free(f);
}

static void encode_refuses_data_null_with_length(void **state)
{
	struct fx *f = fx_new(b_set_state_req);

	(void)state;
	f->m.u.feature.data_len = 8;
	expect_refused(f, W(E_FIELD));
}

static void encode_refuses_ranges_null_with_num_ranges(void **state)
{
	struct fx *f = fx_new(b_log_start_req);

	(void)state;
	f->m.u.feature.u.log_start.ranges = NULL;
	expect_refused(f, W(E_FIELD));
}

static void encode_refuses_bitmap_len_not_matching_report(void **state)
{
	struct fx *f = fx_new(b_report_rep);

	(void)state;
	f->m.u.feature.u.log_report.bitmap_len = 8;
	expect_refused(f, W(E_FIELD));
}

static void encode_refuses_bitmap_null(void **state)
{
	struct fx *f = fx_new(b_report_rep);

	(void)state;
	f->m.u.feature.u.log_report.bitmap = NULL;
	expect_refused(f, W(E_FIELD));
}

static void encode_probe_ignores_typed_members(void **state)
{
	struct fx *f = fx_new(b_probe_req);
	uint8_t buf[64];
	enum devmig_wire_err err;

	(void)state;
	f->m.u.feature.u.mig_state.device_state = 3;
	assert_int_equal(devmig_encode(buf, sizeof(buf), &f->m, &err), 16 + 8);
	free(f);
}

/* ---- the deadline extension's refusal: an error reply with a payload ---- */

/* The bytes of base's message as an error reply with errno e (payload kept). */
static uint8_t *as_error_reply(base_fn base, int e, size_t *len)
{
	struct fx *f = fx_new(base);
	uint8_t *b = encode_exact(&f->m, len);
	struct devmig_hdr h;

	memcpy(&h, b, sizeof(h));
	h.flags |= DEVMIG_HDR_ERROR;
	h.error_no = (uint32_t)e;
	memcpy(b, &h, sizeof(h));
	free(f);
	return b;
}

static void deadline_refusal_payload_is_decoded_from_the_error_reply(void **state)
{
	struct devmig_msg d;
	uint8_t *keep;
	size_t len;
	uint8_t *b = as_error_reply(b_deadline_refused_rep, ETIME, &len);

	(void)state;
	assert_int_equal(decode_exact(b, len, 0, NULL, &d, &keep), W(OK));
	assert_true(d.hdr.flags & DEVMIG_HDR_ERROR);
	assert_int_equal(d.hdr.error_no, ETIME);
	assert_int_equal(d.u.feature.index, DEADLINE);
	assert_int_equal(d.u.feature.u.deadline.device_state, DEVMIG_STATE_PRE_COPY);
	assert_int_equal(d.u.feature.u.deadline.flags,
			 DEVMIG_DEADLINE_REFUSED | DEVMIG_DEADLINE_PARTIAL);
	assert_int_equal(d.u.feature.u.deadline.estimate_ns, 120000000);
	assert_int_equal(d.u.feature.data_len, DL_LEN);
	free(keep);
	free(b);
}

static void other_error_payloads_are_ignored(void **state)
{
	struct devmig_msg d;
	uint8_t *keep;
	size_t len;
	(void)state;
	/* libvfio-user's echo of a refused SET MIG_DEVICE_STATE: not decoded. */
	uint8_t *b = as_error_reply(b_set_state_rep, 22, &len);
	assert_int_equal(decode_exact(b, len, 0, NULL, &d, &keep), W(OK));
	assert_int_equal(d.hdr.error_no, 22);
	assert_int_equal(d.u.feature.index, 0);
	assert_null(d.u.feature.data);
	free(keep);
	free(b);
	/* A deadline outcome cut short, or with a bad state: ignored, the errno stands. */
	b = as_error_reply(b_deadline_refused_rep, ETIME, &len);
	assert_int_equal(decode_exact(b, len - 1, 0, NULL, &d, &keep), W(E_MSG_SIZE));
	free(keep);
	struct devmig_hdr h;
	memcpy(&h, b, sizeof(h));
	h.msg_size -= 1;
	memcpy(b, &h, sizeof(h));
	assert_int_equal(decode_exact(b, len - 1, 0, NULL, &d, &keep), W(OK));
	assert_int_equal(d.hdr.error_no, ETIME);
	assert_null(d.u.feature.data);
	assert_int_equal(d.u.feature.u.deadline.estimate_ns, 0);
	free(keep);
	h.msg_size += 1;
	memcpy(b, &h, sizeof(h));
	b[DEVMIG_HDR_SIZE + 8] = 9; /* device_state 9 */
	assert_int_equal(decode_exact(b, len, 0, NULL, &d, &keep), W(OK));
	assert_null(d.u.feature.data);
	free(keep);
	/* Not a SET of the deadline feature (a GET's flags): ignored too. */
	b[DEVMIG_HDR_SIZE + 8] = DEVMIG_STATE_PRE_COPY;
	uint32_t fl = DEVMIG_FEATURE_GET | DEVMIG_FEATURE_ARC_ESTIMATES;
	memcpy(b + DEVMIG_HDR_SIZE + 4, &fl, 4);
	assert_int_equal(decode_exact(b, len, 0, NULL, &d, &keep), W(OK));
	assert_null(d.u.feature.data);
	free(keep);
	free(b);
}

static void deadline_request_beyond_16_bytes_is_ignored(void **state)
{
	struct devmig_msg d;
	uint8_t *keep;
	struct devmig_feature_mig_deadline dl = {
		.device_state = DEVMIG_STATE_STOP, .deadline_ns = 5, .estimate_ns = 77,
		.overrun_ns = 88,
	};
	struct fx *f = fx_new(b_deadline_req);

	(void)state;
	raw(f, &dl, sizeof(dl)); /* a client sending the whole struct */
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_int_equal(d.u.feature.u.deadline.device_state, DEVMIG_STATE_STOP);
	assert_int_equal(d.u.feature.u.deadline.deadline_ns, 5);
	assert_int_equal(d.u.feature.u.deadline.estimate_ns, 0);
	assert_int_equal(d.u.feature.u.deadline.overrun_ns, 0);
	free(keep);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(deadline_refusal_payload_is_decoded_from_the_error_reply),
		cmocka_unit_test(other_error_payloads_are_ignored),
		cmocka_unit_test(deadline_request_beyond_16_bytes_is_ignored),
		BASES(ENT_RT)
		REJECTS(REJECT_ENTRY)
		LIBERAL_TESTS(LIBERAL_ENTRY)
		cmocka_unit_test(typed_fields_are_filled_from_raw_set_state),
		cmocka_unit_test(typed_fields_are_filled_from_raw_migration_reply),
		cmocka_unit_test(report_reply_bitmap_points_after_report),
		cmocka_unit_test(report_request_has_no_bitmap),
		cmocka_unit_test(log_range_copies_each_range),
		cmocka_unit_test(log_start_zero_ranges_means_all_memory),
		cmocka_unit_test(log_start_adjacent_ranges_are_accepted),
		cmocka_unit_test(log_start_256_ranges_are_accepted),
		cmocka_unit_test(log_start_range_to_top_of_address_space_is_accepted),
		cmocka_unit_test(report_with_other_page_size_than_start_is_accepted),
		cmocka_unit_test(report_reply_size_limit_is_exact),
		cmocka_unit_test(report_argsz_exactly_reply_is_accepted),
		cmocka_unit_test(probe_ignores_data),
		cmocka_unit_test(every_feature_op_pair_matches_the_table),
		cmocka_unit_test(bitmap_size_is_whole_u64_words),
		cmocka_unit_test(encode_report_reply_tail_is_the_bitmap),
		cmocka_unit_test(encode_raw_data_takes_precedence_over_typed),
		cmocka_unit_test(encode_typed_set_state_writes_8_bytes),
		cmocka_unit_test(encode_refuses_data_null_with_length),
		cmocka_unit_test(encode_refuses_ranges_null_with_num_ranges),
		cmocka_unit_test(encode_refuses_bitmap_len_not_matching_report),
		cmocka_unit_test(encode_refuses_bitmap_null),
		cmocka_unit_test(encode_probe_ignores_typed_members),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
