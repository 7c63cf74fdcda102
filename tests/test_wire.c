/* SPDX-License-Identifier: MIT */
/*
 * The vfio-user codec (lib/wire.c): header rules, every command's request
 * and reply layout, round trips, truncations, encoding, names and errnos.
 * DEVICE_FEATURE payloads are in test_wire_feature.c.
 */
#include <errno.h>

#include "wire_test_util.h"

/* ---- valid base messages, one or more per command and direction ---- */

static const char version_json[] = "{\"capabilities\":{\"max_msg_fds\":8,\"pgsizes\":4096}}";

static void b_version_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_VERSION, false);
	f->m.u.version.v.major = 0;
	f->m.u.version.v.minor = 1;
	memcpy(f->json, version_json, sizeof(version_json));
	f->m.u.version.json = f->json;
	f->m.u.version.json_len = strlen(version_json);
}

static void b_version_req_nojson(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_VERSION, false);
	f->m.u.version.v.minor = 1;
}

static void b_version_rep(struct fx *f)
{
	b_version_req(f);
	fx_hdr(f, DEVMIG_CMD_VERSION, true);
}

static void b_dma_map_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DMA_MAP, false);
	f->m.u.dma_map.argsz = 32;
	f->m.u.dma_map.flags = DEVMIG_DMA_READ | DEVMIG_DMA_WRITE;
	f->m.u.dma_map.offset = 0x2000;
	f->m.u.dma_map.addr = 0x100000;
	f->m.u.dma_map.size = 0x4000;
	f->nfds = 1;
}

static void b_dma_map_req_nofd(struct fx *f)
{
	b_dma_map_req(f);
	f->m.u.dma_map.offset = 0;
	f->nfds = 0;
}

static void b_dma_map_rep(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DMA_MAP, true);
}

static void b_dma_unmap_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DMA_UNMAP, false);
	f->m.u.dma_unmap.argsz = 24;
	f->m.u.dma_unmap.addr = 0x100000;
	f->m.u.dma_unmap.size = 0x4000;
}

static void b_dma_unmap_rep(struct fx *f)
{
	b_dma_unmap_req(f);
	fx_hdr(f, DEVMIG_CMD_DMA_UNMAP, true);
}

/* VFIO_DMA_UNMAP_FLAG_ALL, as libvfio-user's client and QEMU send it. */
static void b_dma_unmap_all_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DMA_UNMAP, false);
	f->m.u.dma_unmap.argsz = 24;
	f->m.u.dma_unmap.flags = DEVMIG_DMA_UNMAP_ALL;
}

static void b_dma_unmap_all_rep(struct fx *f)
{
	b_dma_unmap_all_req(f);
	fx_hdr(f, DEVMIG_CMD_DMA_UNMAP, true);
}

static void b_dev_info_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_GET_INFO, false);
	f->m.u.device_info.argsz = 16;
}

static void b_dev_info_rep(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_GET_INFO, true);
	f->m.u.device_info.argsz = 16;
	f->m.u.device_info.flags = 3;
	f->m.u.device_info.num_regions = 9;
	f->m.u.device_info.num_irqs = 5;
}

static void b_region_info_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_GET_REGION_INFO, false);
	f->m.u.region_info.info.argsz = 32;
	f->m.u.region_info.info.index = 2;
}

/* Sparse mmap capability at offset 32: header, nr_areas 2, reserved, 2 areas. */
static void b_region_info_rep(struct fx *f)
{
	struct devmig_info_cap_hdr h = { .id = 1, .version = 1, .next = 0 };
	uint32_t nr = 2, rsv = 0;
	struct devmig_sparse_mmap_area a[2] = { { 0x0, 0x1000 }, { 0x3000, 0x1000 } };

	fx_hdr(f, DEVMIG_CMD_DEVICE_GET_REGION_INFO, true);
	memcpy(f->caps, &h, 8);
	memcpy(f->caps + 8, &nr, 4);
	memcpy(f->caps + 12, &rsv, 4);
	memcpy(f->caps + 16, a, sizeof(a));
	f->m.u.region_info.info.argsz = 32 + 48;
	f->m.u.region_info.info.flags = T_REGION_READ | T_REGION_WRITE | T_REGION_MMAP | T_REGION_CAPS;
	f->m.u.region_info.info.index = 2;
	f->m.u.region_info.info.cap_offset = 32;
	f->m.u.region_info.info.size = 0x4000;
	f->m.u.region_info.info.offset = 0x20000;
	f->m.u.region_info.caps = f->caps;
	f->m.u.region_info.caps_len = 48;
	f->nfds = 1;
}

/* Two capabilities chained: an unknown id 3 at 32, sparse mmap at 48. */
static void b_region_info_rep_chain(struct fx *f)
{
	struct devmig_info_cap_hdr h1 = { .id = 3, .version = 1, .next = 48 };
	struct devmig_info_cap_hdr h2 = { .id = 1, .version = 1, .next = 0 };
	uint32_t nr = 1, rsv = 0;
	struct devmig_sparse_mmap_area a = { 0x1000, 0x1000 };

	b_region_info_rep(f);
	memset(f->caps, 0, sizeof(f->caps));
	memcpy(f->caps, &h1, 8);
	memcpy(f->caps + 16, &h2, 8);
	memcpy(f->caps + 24, &nr, 4);
	memcpy(f->caps + 28, &rsv, 4);
	memcpy(f->caps + 32, &a, sizeof(a));
	f->m.u.region_info.caps_len = 48;
	f->m.u.region_info.info.argsz = 80;
}

static void b_region_info_rep_plain(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_GET_REGION_INFO, true);
	f->m.u.region_info.info.argsz = 32;
	f->m.u.region_info.info.flags = T_REGION_READ | T_REGION_WRITE;
	f->m.u.region_info.info.index = 7;
	f->m.u.region_info.info.size = 256;
	f->m.u.region_info.info.offset = 0x70000;
}

static void b_io_fds_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS, false);
	f->m.u.io_fds.io.argsz = 16 + 2 * 40;
	f->m.u.io_fds.io.index = 0;
}

static void b_io_fds_rep(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS, true);
	f->m.u.io_fds.io.argsz = 16 + 2 * 40;
	f->m.u.io_fds.io.count = 2;
	f->subs[0] = (struct devmig_sub_region_io_fd){ .offset = 0x10, .size = 4, .fd_index = 0 };
	f->subs[1] = (struct devmig_sub_region_io_fd){ .offset = 0x20, .size = 4, .fd_index = 1,
						       .datamatch = 7 };
	f->m.u.io_fds.subs = (const uint8_t *)f->subs;
	f->m.u.io_fds.subs_len = 2 * 40;
	f->nfds = 2;
}

static void b_io_fds_rep_omitted(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS, true);
	f->m.u.io_fds.io.argsz = 16 + 2 * 40;
	f->m.u.io_fds.io.count = 2;
}

static void b_irq_info_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_GET_IRQ_INFO, false);
	f->m.u.irq_info.argsz = 16;
	f->m.u.irq_info.index = 4;
}

static void b_irq_info_rep(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_GET_IRQ_INFO, true);
	f->m.u.irq_info.argsz = 16;
	f->m.u.irq_info.flags = 1;
	f->m.u.irq_info.index = 4;
	f->m.u.irq_info.count = 1;
}

static void b_set_irqs_eventfd(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_SET_IRQS, false);
	f->m.u.irq_set.set.argsz = 20;
	f->m.u.irq_set.set.flags = T_IRQ_DATA_EVENTFD | T_IRQ_ACTION_TRIGGER;
	f->m.u.irq_set.set.index = 2;
	f->m.u.irq_set.set.start = 0;
	f->m.u.irq_set.set.count = 1;
	f->nfds = 1;
}

static void b_set_irqs_bool(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_SET_IRQS, false);
	f->m.u.irq_set.set.argsz = 23;
	f->m.u.irq_set.set.flags = T_IRQ_DATA_BOOL | T_IRQ_ACTION_MASK;
	f->m.u.irq_set.set.index = 1;
	f->m.u.irq_set.set.start = 1;
	f->m.u.irq_set.set.count = 3;
	f->bools[0] = 1;
	f->bools[2] = 1;
	f->m.u.irq_set.bools = f->bools;
}

static void b_set_irqs_disable(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_SET_IRQS, false);
	f->m.u.irq_set.set.argsz = 20;
	f->m.u.irq_set.set.flags = T_IRQ_DATA_NONE | T_IRQ_ACTION_TRIGGER;
	f->m.u.irq_set.set.index = 3;
}

static void b_set_irqs_rep(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_SET_IRQS, true);
}

static void fill_data(struct fx *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		f->data[i] = (uint8_t)(0xa0 + i);
}

static void b_region_read_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_REGION_READ, false);
	f->m.u.region.acc.offset = 0x10;
	f->m.u.region.acc.region = 0;
	f->m.u.region.acc.count = 4;
}

static void b_region_read_rep(struct fx *f)
{
	b_region_read_req(f);
	fx_hdr(f, DEVMIG_CMD_REGION_READ, true);
	fill_data(f, 4);
	f->m.u.region.data = f->data;
}

static void b_region_write_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_REGION_WRITE, false);
	f->m.u.region.acc.offset = 0x20;
	f->m.u.region.acc.region = 1;
	f->m.u.region.acc.count = 8;
	fill_data(f, 8);
	f->m.u.region.data = f->data;
}

static void b_region_write_req_noreply(struct fx *f)
{
	b_region_write_req(f);
	f->m.hdr.flags |= DEVMIG_HDR_NO_REPLY;
}

static void b_region_write_rep(struct fx *f)
{
	b_region_write_req(f);
	fx_hdr(f, DEVMIG_CMD_REGION_WRITE, true);
	f->m.u.region.data = NULL;
}

static void b_dma_read_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DMA_READ, false);
	f->m.u.dma.acc.addr = 0x2000;
	f->m.u.dma.acc.count = 16;
}

static void b_dma_read_rep(struct fx *f)
{
	b_dma_read_req(f);
	fx_hdr(f, DEVMIG_CMD_DMA_READ, true);
	fill_data(f, 16);
	f->m.u.dma.data = f->data;
}

static void b_dma_write_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DMA_WRITE, false);
	f->m.u.dma.acc.addr = 0x3000;
	f->m.u.dma.acc.count = 5;
	fill_data(f, 5);
	f->m.u.dma.data = f->data;
}

static void b_dma_write_rep(struct fx *f)
{
	b_dma_write_req(f);
	fx_hdr(f, DEVMIG_CMD_DMA_WRITE, true);
	f->m.u.dma.data = NULL;
}

static void b_reset_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_RESET, false);
}

static void b_reset_rep(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_DEVICE_RESET, true);
}

static void b_multi_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_REGION_WRITE_MULTI, false);
	f->wrs[0] = (struct devmig_write_one){ .offset = 0x10, .region = 0, .count = 4,
					       .data = { 1, 2, 3, 4 } };
	f->wrs[1] = (struct devmig_write_one){ .offset = 0x40, .region = 2, .count = 8,
					       .data = { 1, 2, 3, 4, 5, 6, 7, 8 } };
	f->m.u.write_multi.wr_cnt = 2;
	f->m.u.write_multi.wrs = (const uint8_t *)f->wrs;
}

static void b_multi_rep(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_REGION_WRITE_MULTI, true);
	f->m.u.write_multi.wr_cnt = 2;
}

static void b_mig_read_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_MIG_DATA_READ, false);
	f->m.u.mig_data.md.argsz = 8 + 64;
	f->m.u.mig_data.md.size = 64;
}

static void b_mig_read_rep(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_MIG_DATA_READ, true);
	f->m.u.mig_data.md.argsz = 8 + 10;
	f->m.u.mig_data.md.size = 10;
	fill_data(f, 10);
	f->m.u.mig_data.data = f->data;
}

/* libvfio-user's shape: 10 bytes of data, padded to the 64 asked for. */
static void b_mig_read_rep_padded(struct fx *f)
{
	b_mig_read_rep(f);
	f->m.u.mig_data.pad = 54;
}

static void b_mig_read_rep_empty(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_MIG_DATA_READ, true);
	f->m.u.mig_data.md.argsz = 8;
}

static void b_mig_write_req(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_MIG_DATA_WRITE, false);
	f->m.u.mig_data.md.argsz = 8 + 12;
	f->m.u.mig_data.md.size = 12;
	fill_data(f, 12);
	f->m.u.mig_data.data = f->data;
}

static void b_mig_write_rep(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_MIG_DATA_WRITE, true);
}

static void b_error_rep(struct fx *f)
{
	fx_hdr(f, DEVMIG_CMD_REGION_READ, true);
	f->m.hdr.flags |= DEVMIG_HDR_ERROR;
	f->m.hdr.error_no = EINVAL;
}

/* Every base: one round-trip test and one truncation test each. */
#define BASES(X)                         \
	X(version_req)                   \
	X(version_req_nojson)            \
	X(version_rep)                   \
	X(dma_map_req)                   \
	X(dma_map_req_nofd)              \
	X(dma_map_rep)                   \
	X(dma_unmap_req)                 \
	X(dma_unmap_rep)                 \
	X(dma_unmap_all_req)             \
	X(dma_unmap_all_rep)             \
	X(dev_info_req)                  \
	X(dev_info_rep)                  \
	X(region_info_req)               \
	X(region_info_rep)               \
	X(region_info_rep_chain)         \
	X(region_info_rep_plain)         \
	X(io_fds_req)                    \
	X(io_fds_rep)                    \
	X(io_fds_rep_omitted)            \
	X(irq_info_req)                  \
	X(irq_info_rep)                  \
	X(set_irqs_eventfd)              \
	X(set_irqs_bool)                 \
	X(set_irqs_disable)              \
	X(set_irqs_rep)                  \
	X(region_read_req)               \
	X(region_read_rep)               \
	X(region_write_req)              \
	X(region_write_req_noreply)      \
	X(region_write_rep)              \
	X(dma_read_req)                  \
	X(dma_read_rep)                  \
	X(dma_write_req)                 \
	X(dma_write_rep)                 \
	X(reset_req)                     \
	X(reset_rep)                     \
	X(multi_req)                     \
	X(multi_rep)                     \
	X(mig_read_req)                  \
	X(mig_read_rep)                  \
	X(mig_read_rep_padded)           \
	X(mig_read_rep_empty)            \
	X(mig_write_req)                 \
	X(mig_write_rep)                 \
	X(error_rep)

#define DEF_RT(b)                                        \
	static void round_trip_##b(void **state)         \
	{                                                \
		(void)state;                             \
		run_round_trip(b_##b);                   \
	}                                                \
	static void every_truncation_of_##b##_is_refused(void **state) \
	{                                                \
		(void)state;                             \
		run_truncations(b_##b);                  \
	}
BASES(DEF_RT)
#define ENT_RT(b) cmocka_unit_test(round_trip_##b), cmocka_unit_test(every_truncation_of_##b##_is_refused),

/* ---- single-mutation rejections ---- */

#define HDR_FLAGS_OFF offsetof(struct devmig_hdr, flags)
#define HDR_SIZE_OFF offsetof(struct devmig_hdr, msg_size)
#define HDR_CMD_OFF offsetof(struct devmig_hdr, cmd)

#define REJECTS(X)                                                                              \
	/* header */                                                                            \
	X(hdr_msg_size_below_16_is_refused, b_reset_req, MSG_SIZE, fx_poke32(f, HDR_SIZE_OFF, 15)) \
	X(hdr_msg_size_above_max_is_too_big, b_region_write_req, TOO_BIG, f->lim.max_msg_size = 39) \
	X(hdr_type_2_is_refused, b_reset_req, HDR_FLAGS, fx_poke(f, HDR_FLAGS_OFF, 2))                       \
	X(hdr_type_15_is_refused, b_reset_req, HDR_FLAGS, fx_poke(f, HDR_FLAGS_OFF, 0x0f))       \
	X(hdr_reserved_flag_bit_6_is_refused, b_reset_req, HDR_FLAGS, fx_poke(f, HDR_FLAGS_OFF, 0x40)) \
	X(hdr_reserved_flag_bit_31_is_refused, b_reset_req, HDR_FLAGS, fx_poke(f, HDR_FLAGS_OFF + 3, 0x80)) \
	X(hdr_command_with_error_flag_is_refused, b_reset_req, HDR_FLAGS, fx_poke(f, HDR_FLAGS_OFF, DEVMIG_HDR_ERROR)) \
	X(hdr_command_with_error_no_is_refused, b_reset_req, HDR_FLAGS, fx_poke(f, 12, 5))        \
	X(hdr_reply_with_no_reply_flag_is_refused, b_reset_rep, HDR_FLAGS, fx_poke(f, HDR_FLAGS_OFF, 1 | DEVMIG_HDR_NO_REPLY)) \
	X(msg_size_above_bytes_present_is_refused, b_reset_req, MSG_SIZE, fx_poke32(f, HDR_SIZE_OFF, 17)) \
	X(msg_size_below_bytes_present_is_refused, b_region_read_req, MSG_SIZE, fx_poke32(f, HDR_SIZE_OFF, 31)) \
	X(cmd_0_is_unknown, b_reset_req, UNKNOWN_CMD, fx_poke(f, HDR_CMD_OFF, 0))                \
	X(cmd_14_dirty_pages_is_unknown, b_reset_req, UNKNOWN_CMD, fx_poke(f, HDR_CMD_OFF, 14))  \
	X(cmd_19_is_unknown, b_reset_req, UNKNOWN_CMD, fx_poke(f, HDR_CMD_OFF, 19))              \
	X(cmd_0x100_is_unknown, b_reset_req, UNKNOWN_CMD, fx_poke(f, HDR_CMD_OFF + 1, 1))         \
	/* direction */                                                                         \
	X(server_refuses_dma_read_command, b_dma_read_req, DIRECTION, f->lim.role = W(ROLE_SERVER)) \
	X(server_refuses_dma_write_command, b_dma_write_req, DIRECTION, f->lim.role = W(ROLE_SERVER)) \
	X(server_refuses_reply_to_region_read, b_region_read_rep, DIRECTION, f->lim.role = W(ROLE_SERVER)) \
	X(server_refuses_error_reply_to_region_read, b_error_rep, DIRECTION, f->lim.role = W(ROLE_SERVER)) \
	X(client_refuses_region_write_command, b_region_write_req, DIRECTION, f->lim.role = W(ROLE_CLIENT)) \
	X(client_refuses_version_command, b_version_req, DIRECTION, f->lim.role = W(ROLE_CLIENT)) \
	X(client_refuses_reply_to_dma_read, b_dma_read_rep, DIRECTION, f->lim.role = W(ROLE_CLIENT)) \
	X(client_refuses_reply_to_dma_write, b_dma_write_rep, DIRECTION, f->lim.role = W(ROLE_CLIENT)) \
	/* error replies */                                                                     \
	X(error_reply_with_fd_is_refused, b_error_rep, FDS, f->nfds = 1)                         \
	/* VERSION */                                                                           \
	X(version_payload_below_4_is_short, b_version_req_nojson, SHORT, f->adjust = -1)         \
	X(version_json_without_nul_is_refused, b_version_req, JSON, f->adjust = -1)              \
	X(version_json_with_inner_nul_is_refused, b_version_req, JSON, fx_poke(f, 16 + 4 + 3, 0)) \
	X(version_json_with_two_trailing_nuls_is_refused, b_version_req, JSON, f->adjust = 1) \
	X(version_with_fd_is_refused, b_version_req, FDS, f->nfds = 1)                           \
	/* DMA_MAP */                                                                           \
	X(dma_map_short_is_refused, b_dma_map_req, SHORT, f->adjust = -1)                        \
	X(dma_map_trailing_byte_is_refused, b_dma_map_req, MSG_SIZE, f->adjust = 1)              \
	X(dma_map_argsz_not_32_is_refused, b_dma_map_req, ARGSZ, m->u.dma_map.argsz = 40)        \
	X(dma_map_argsz_below_32_is_refused, b_dma_map_req, ARGSZ, m->u.dma_map.argsz = 24)      \
	X(dma_map_unknown_flag_is_refused, b_dma_map_req, FIELD, m->u.dma_map.flags |= 4)        \
	X(dma_map_size_zero_is_refused, b_dma_map_req, FIELD, m->u.dma_map.size = 0)             \
	X(dma_map_addr_plus_size_wrap_is_overflow, b_dma_map_req, OVERFLOW, m->u.dma_map.addr = 0xfffffffffffff000ull) \
	X(dma_map_offset_plus_size_wrap_is_overflow, b_dma_map_req, OVERFLOW, m->u.dma_map.offset = 0xffffffffffffe000ull) \
	X(dma_map_unaligned_addr_is_refused, b_dma_map_req, ALIGN, m->u.dma_map.addr += 0x800)   \
	X(dma_map_unaligned_size_is_refused, b_dma_map_req, ALIGN, m->u.dma_map.size += 1)       \
	X(dma_map_unaligned_offset_is_refused, b_dma_map_req, ALIGN, m->u.dma_map.offset = 0x10) \
	X(dma_map_unaligned_to_configured_pgsize_is_refused, b_dma_map_req, ALIGN, f->lim.dma_pgsize = 0x10000) \
	X(dma_map_two_fds_is_refused, b_dma_map_req, FDS, f->nfds = 2)                           \
	X(dma_map_offset_without_fd_is_refused, b_dma_map_req, FIELD, f->nfds = 0)               \
	X(dma_map_reply_with_payload_is_refused, b_dma_map_rep, MSG_SIZE, f->adjust = 1)         \
	X(dma_map_reply_with_fd_is_refused, b_dma_map_rep, FDS, f->nfds = 1)                     \
	/* DMA_UNMAP */                                                                         \
	X(dma_unmap_short_is_refused, b_dma_unmap_req, SHORT, f->adjust = -1)                    \
	X(dma_unmap_trailing_byte_is_refused, b_dma_unmap_req, MSG_SIZE, f->adjust = 1)          \
	X(dma_unmap_argsz_below_24_is_refused, b_dma_unmap_req, ARGSZ, m->u.dma_unmap.argsz = 23) \
	X(dma_unmap_flags_nonzero_is_refused, b_dma_unmap_req, FIELD, m->u.dma_unmap.flags = 1)  \
	X(dma_unmap_size_zero_is_refused, b_dma_unmap_req, FIELD, m->u.dma_unmap.size = 0)       \
	X(dma_unmap_wrap_is_overflow, b_dma_unmap_req, OVERFLOW, m->u.dma_unmap.addr = ~0ull)    \
	X(dma_unmap_with_fd_is_refused, b_dma_unmap_req, FDS, f->nfds = 1)                       \
	X(dma_unmap_all_with_addr_is_refused, b_dma_unmap_all_req, FIELD, m->u.dma_unmap.addr = 0x1000) \
	X(dma_unmap_all_with_size_is_refused, b_dma_unmap_all_req, FIELD, m->u.dma_unmap.size = 0x1000) \
	X(dma_unmap_all_with_another_flag_is_refused, b_dma_unmap_all_req, FIELD, m->u.dma_unmap.flags |= 1) \
	X(dma_unmap_all_argsz_below_24_is_refused, b_dma_unmap_all_req, ARGSZ, m->u.dma_unmap.argsz = 16) \
	X(dma_unmap_all_reply_with_size_is_refused, b_dma_unmap_all_rep, FIELD, m->u.dma_unmap.size = 0x1000) \
	X(dma_unmap_reply_short_is_refused, b_dma_unmap_rep, SHORT, f->adjust = -1)              \
	X(dma_unmap_reply_argsz_below_24_is_refused, b_dma_unmap_rep, ARGSZ, m->u.dma_unmap.argsz = 0) \
	/* DEVICE_GET_INFO */                                                                   \
	X(dev_info_short_is_refused, b_dev_info_req, SHORT, f->adjust = -1)                      \
	X(dev_info_trailing_byte_is_refused, b_dev_info_req, MSG_SIZE, f->adjust = 1)            \
	X(dev_info_argsz_below_16_is_refused, b_dev_info_req, ARGSZ, m->u.device_info.argsz = 15) \
	X(dev_info_request_flags_nonzero_is_refused, b_dev_info_req, FIELD, m->u.device_info.flags = 1) \
	X(dev_info_request_num_regions_nonzero_is_refused, b_dev_info_req, FIELD, m->u.device_info.num_regions = 1) \
	X(dev_info_request_num_irqs_nonzero_is_refused, b_dev_info_req, FIELD, m->u.device_info.num_irqs = 1) \
	X(dev_info_reply_short_is_refused, b_dev_info_rep, SHORT, f->adjust = -1)                \
	X(dev_info_reply_argsz_below_16_is_refused, b_dev_info_rep, ARGSZ, m->u.device_info.argsz = 8) \
	X(dev_info_with_fd_is_refused, b_dev_info_req, FDS, f->nfds = 1)                         \
	/* DEVICE_GET_REGION_INFO */                                                            \
	X(region_info_short_is_refused, b_region_info_req, SHORT, f->adjust = -1)                \
	X(region_info_byte_beyond_argsz_is_refused, b_region_info_req, MSG_SIZE, f->adjust = 1)  \
	X(region_info_argsz_below_32_is_refused, b_region_info_req, ARGSZ, m->u.region_info.info.argsz = 31) \
	X(region_info_index_out_of_range_is_refused, b_region_info_req, INDEX, m->u.region_info.info.index = 9) \
	X(region_info_index_against_limit_is_refused, b_region_info_req, INDEX, f->lim.num_regions = 2) \
	X(region_info_request_flags_nonzero_is_refused, b_region_info_req, FIELD, m->u.region_info.info.flags = 1) \
	X(region_info_request_cap_offset_nonzero_is_refused, b_region_info_req, FIELD, m->u.region_info.info.cap_offset = 32) \
	X(region_info_request_size_nonzero_is_refused, b_region_info_req, FIELD, m->u.region_info.info.size = 1) \
	X(region_info_request_offset_nonzero_is_refused, b_region_info_req, FIELD, m->u.region_info.info.offset = 1) \
	X(region_info_request_with_fd_is_refused, b_region_info_req, FDS, f->nfds = 1)           \
	X(region_info_reply_short_is_refused, b_region_info_rep_plain, SHORT, f->adjust = -1)    \
	X(region_info_reply_argsz_below_32_is_refused, b_region_info_rep, ARGSZ, m->u.region_info.info.argsz = 16) \
	X(region_info_reply_cap_offset_below_32_is_refused, b_region_info_rep, FIELD, m->u.region_info.info.cap_offset = 16) \
	X(region_info_reply_cap_offset_past_payload_is_refused, b_region_info_rep, FIELD, m->u.region_info.info.cap_offset = 200) \
	X(region_info_reply_cap_header_cut_is_refused, b_region_info_rep, FIELD, m->u.region_info.info.cap_offset = 32 + 44) \
	X(region_info_reply_cap_self_loop_is_refused, b_region_info_rep, FIELD, f->caps[4] = 32) \
	X(region_info_reply_cap_backward_next_is_refused, b_region_info_rep_chain, FIELD, f->caps[16 + 4] = 32) \
	X(region_info_reply_cap_next_past_payload_is_refused, b_region_info_rep_chain, FIELD, f->caps[4] = 90) \
	X(region_info_reply_sparse_areas_overrun_is_refused, b_region_info_rep, FIELD, f->caps[8] = 3) \
	X(region_info_reply_sparse_nr_areas_huge_is_refused, b_region_info_rep, FIELD, f->caps[11] = 0xff) \
	X(region_info_reply_sparse_header_cut_is_refused, b_region_info_rep, FIELD, m->u.region_info.caps_len = 12; m->u.region_info.info.argsz = 44) \
	X(region_info_reply_two_fds_is_refused, b_region_info_rep, FDS, f->nfds = 2)            \
	X(region_info_reply_fd_without_mmap_is_refused, b_region_info_rep_plain, FDS, f->nfds = 1) \
	/* DEVICE_GET_REGION_IO_FDS */                                                          \
	X(io_fds_short_is_refused, b_io_fds_req, SHORT, f->adjust = -1)                          \
	X(io_fds_trailing_byte_is_refused, b_io_fds_req, MSG_SIZE, f->adjust = 1)                \
	X(io_fds_argsz_below_16_is_refused, b_io_fds_req, ARGSZ, m->u.io_fds.io.argsz = 4)       \
	X(io_fds_request_flags_nonzero_is_refused, b_io_fds_req, FIELD, m->u.io_fds.io.flags = 1) \
	X(io_fds_request_count_nonzero_is_refused, b_io_fds_req, FIELD, m->u.io_fds.io.count = 1) \
	X(io_fds_index_out_of_range_is_refused, b_io_fds_req, INDEX, m->u.io_fds.io.index = 9)   \
	X(io_fds_request_with_fd_is_refused, b_io_fds_req, FDS, f->nfds = 1)                     \
	X(io_fds_reply_short_is_refused, b_io_fds_rep_omitted, SHORT, f->adjust = -1)            \
	X(io_fds_reply_argsz_below_16_is_refused, b_io_fds_rep, ARGSZ, m->u.io_fds.io.argsz = 0) \
	X(io_fds_reply_partial_entry_is_refused, b_io_fds_rep, SHORT, f->adjust = -1)            \
	X(io_fds_reply_extra_bytes_is_refused, b_io_fds_rep, MSG_SIZE, f->adjust = 40)           \
	X(io_fds_reply_count_below_entries_is_refused, b_io_fds_rep, MSG_SIZE, fx_poke(f, 16 + 12, 1)) \
	X(io_fds_reply_fd_index_not_received_is_refused, b_io_fds_rep, FDS, f->subs[1].fd_index = 2) \
	X(io_fds_reply_entries_without_fds_is_refused, b_io_fds_rep, FDS, f->nfds = 0)           \
	X(io_fds_reply_surplus_fds_is_refused, b_io_fds_rep, FDS, f->nfds = 3)                   \
	X(io_fds_reply_omitted_entries_with_fd_is_refused, b_io_fds_rep_omitted, FDS, f->nfds = 1) \
	/* DEVICE_GET_IRQ_INFO */                                                               \
	X(irq_info_short_is_refused, b_irq_info_req, SHORT, f->adjust = -1)                      \
	X(irq_info_trailing_byte_is_refused, b_irq_info_req, MSG_SIZE, f->adjust = 1)            \
	X(irq_info_argsz_below_16_is_refused, b_irq_info_req, ARGSZ, m->u.irq_info.argsz = 12)   \
	X(irq_info_request_flags_nonzero_is_refused, b_irq_info_req, FIELD, m->u.irq_info.flags = 1) \
	X(irq_info_request_count_nonzero_is_refused, b_irq_info_req, FIELD, m->u.irq_info.count = 1) \
	X(irq_info_index_out_of_range_is_refused, b_irq_info_req, INDEX, m->u.irq_info.index = 5) \
	X(irq_info_index_against_limit_is_refused, b_irq_info_req, INDEX, f->lim.num_irqs = 4)   \
	X(irq_info_with_fd_is_refused, b_irq_info_req, FDS, f->nfds = 1)                         \
	X(irq_info_reply_trailing_byte_is_refused, b_irq_info_rep, MSG_SIZE, f->adjust = 1)      \
	/* DEVICE_SET_IRQS */                                                                   \
	X(set_irqs_short_is_refused, b_set_irqs_eventfd, SHORT, f->adjust = -1)                  \
	X(set_irqs_argsz_not_payload_is_refused, b_set_irqs_eventfd, ARGSZ, m->u.irq_set.set.argsz = 24) \
	X(set_irqs_trailing_byte_is_refused, b_set_irqs_eventfd, MSG_SIZE, f->adjust = 1; m->u.irq_set.set.argsz = 21) \
	X(set_irqs_two_data_types_is_refused, b_set_irqs_eventfd, FIELD, m->u.irq_set.set.flags |= T_IRQ_DATA_NONE) \
	X(set_irqs_no_data_type_is_refused, b_set_irqs_eventfd, FIELD, m->u.irq_set.set.flags &= ~T_IRQ_DATA_EVENTFD) \
	X(set_irqs_two_actions_is_refused, b_set_irqs_eventfd, FIELD, m->u.irq_set.set.flags |= T_IRQ_ACTION_MASK) \
	X(set_irqs_no_action_is_refused, b_set_irqs_eventfd, FIELD, m->u.irq_set.set.flags &= ~T_IRQ_ACTION_TRIGGER) \
	X(set_irqs_unknown_flag_is_refused, b_set_irqs_eventfd, FIELD, m->u.irq_set.set.flags |= 1u << 6) \
	X(set_irqs_index_out_of_range_is_refused, b_set_irqs_eventfd, INDEX, m->u.irq_set.set.index = 5) \
	X(set_irqs_start_plus_count_wrap_is_overflow, b_set_irqs_eventfd, OVERFLOW, m->u.irq_set.set.start = UINT32_MAX; f->nfds = 0) \
	X(set_irqs_count_zero_with_eventfd_is_refused, b_set_irqs_eventfd, COUNT, m->u.irq_set.set.count = 0; f->nfds = 0) \
	X(set_irqs_disable_with_start_is_refused, b_set_irqs_disable, COUNT, m->u.irq_set.set.start = 1) \
	X(set_irqs_bool_short_of_count_is_refused, b_set_irqs_bool, SHORT, m->u.irq_set.set.count = 4; m->u.irq_set.set.argsz = 23; f->adjust = -1) \
	X(set_irqs_bool_beyond_count_is_refused, b_set_irqs_bool, MSG_SIZE, m->u.irq_set.set.count = 2; m->u.irq_set.set.argsz = 23; f->adjust = 1) \
	X(set_irqs_none_with_data_is_refused, b_set_irqs_disable, MSG_SIZE, m->u.irq_set.set.argsz = 21; f->adjust = 1) \
	X(set_irqs_eventfd_fewer_fds_than_count_is_refused, b_set_irqs_eventfd, FDS, m->u.irq_set.set.count = 2; f->lim.max_msg_fds = 4) \
	X(set_irqs_eventfd_more_fds_than_count_is_refused, b_set_irqs_eventfd, FDS, f->nfds = 2; f->lim.max_msg_fds = 4) \
	X(set_irqs_eventfd_fds_above_max_msg_fds_is_refused, b_set_irqs_eventfd, FDS, m->u.irq_set.set.count = 2; f->nfds = 2) \
	X(set_irqs_bool_with_fd_is_refused, b_set_irqs_bool, FDS, f->nfds = 1)                  \
	X(set_irqs_reply_with_payload_is_refused, b_set_irqs_rep, MSG_SIZE, f->adjust = 1)       \
	/* REGION_READ / REGION_WRITE */                                                        \
	X(region_read_short_is_refused, b_region_read_req, SHORT, f->adjust = -1)                \
	X(region_read_trailing_byte_is_refused, b_region_read_req, MSG_SIZE, f->adjust = 1)      \
	X(region_read_region_out_of_range_is_refused, b_region_read_req, INDEX, m->u.region.acc.region = 9) \
	X(region_read_count_zero_is_refused, b_region_read_req, COUNT, m->u.region.acc.count = 0) \
	X(region_read_count_above_max_is_refused, b_region_read_req, COUNT, m->u.region.acc.count = DEVMIG_DEFAULT_MAX_DATA_XFER + 1) \
	X(region_read_count_above_configured_max_is_refused, b_region_read_req, COUNT, f->lim.max_data_xfer_size = 3) \
	X(region_read_offset_wrap_is_overflow, b_region_read_req, OVERFLOW, m->u.region.acc.offset = UINT64_MAX - 2) \
	X(region_read_with_fd_is_refused, b_region_read_req, FDS, f->nfds = 1)                   \
	X(region_read_reply_data_short_is_refused, b_region_read_rep, SHORT, f->adjust = -1)     \
	X(region_read_reply_data_long_is_refused, b_region_read_rep, MSG_SIZE, f->adjust = 1)    \
	X(region_read_reply_region_out_of_range_is_refused, b_region_read_rep, INDEX, m->u.region.acc.region = 100) \
	X(region_read_reply_count_zero_is_refused, b_region_read_rep, COUNT, fx_poke(f, 16 + 12, 0)) \
	X(region_read_reply_offset_wrap_is_overflow, b_region_read_rep, OVERFLOW, m->u.region.acc.offset = UINT64_MAX) \
	X(region_write_data_short_is_refused, b_region_write_req, SHORT, f->adjust = -1)         \
	X(region_write_data_long_is_refused, b_region_write_req, MSG_SIZE, f->adjust = 1)        \
	X(region_write_region_out_of_range_is_refused, b_region_write_req, INDEX, m->u.region.acc.region = 9) \
	X(region_write_count_zero_is_refused, b_region_write_req, COUNT, fx_poke(f, 16 + 12, 0)) \
	X(region_write_count_above_max_is_refused, b_region_write_req, COUNT, f->lim.max_data_xfer_size = 7) \
	X(region_write_offset_wrap_is_overflow, b_region_write_req, OVERFLOW, m->u.region.acc.offset = UINT64_MAX - 6) \
	X(region_write_reply_with_data_is_refused, b_region_write_rep, MSG_SIZE, f->adjust = 8)  \
	X(region_write_reply_short_is_refused, b_region_write_rep, SHORT, f->adjust = -1)        \
	/* DMA_READ / DMA_WRITE */                                                              \
	X(dma_read_short_is_refused, b_dma_read_req, SHORT, f->adjust = -1)                      \
	X(dma_read_trailing_byte_is_refused, b_dma_read_req, MSG_SIZE, f->adjust = 1)            \
	X(dma_read_count_zero_is_refused, b_dma_read_req, COUNT, m->u.dma.acc.count = 0)         \
	X(dma_read_count_above_max_is_refused, b_dma_read_req, COUNT, m->u.dma.acc.count = DEVMIG_DEFAULT_MAX_DATA_XFER + 1ull) \
	X(dma_read_count_above_4g_is_refused, b_dma_read_req, COUNT, m->u.dma.acc.count = 1ull << 32) \
	X(dma_read_addr_wrap_is_overflow, b_dma_read_req, OVERFLOW, m->u.dma.acc.addr = UINT64_MAX - 8) \
	X(dma_read_with_fd_is_refused, b_dma_read_req, FDS, f->nfds = 1)                         \
	X(dma_read_reply_data_short_is_refused, b_dma_read_rep, SHORT, f->adjust = -1)           \
	X(dma_read_reply_data_long_is_refused, b_dma_read_rep, MSG_SIZE, f->adjust = 1)          \
	X(dma_write_data_short_is_refused, b_dma_write_req, SHORT, f->adjust = -1)               \
	X(dma_write_data_long_is_refused, b_dma_write_req, MSG_SIZE, f->adjust = 1)              \
	X(dma_write_count_zero_is_refused, b_dma_write_req, COUNT, fx_poke(f, 16 + 8, 0))        \
	X(dma_write_addr_wrap_is_overflow, b_dma_write_req, OVERFLOW, m->u.dma.acc.addr = UINT64_MAX - 3) \
	X(dma_write_reply_with_data_is_refused, b_dma_write_rep, MSG_SIZE, f->adjust = 5)        \
	/* DEVICE_RESET */                                                                      \
	X(reset_with_payload_is_refused, b_reset_req, MSG_SIZE, f->adjust = 1)                   \
	X(reset_reply_with_payload_is_refused, b_reset_rep, MSG_SIZE, f->adjust = 4)             \
	X(reset_with_fd_is_refused, b_reset_req, FDS, f->nfds = 1)                               \
	/* REGION_WRITE_MULTI */                                                                \
	X(multi_short_is_refused, b_multi_req, SHORT, m->u.write_multi.wr_cnt = 0; f->adjust = -1) \
	X(multi_wr_cnt_zero_is_refused, b_multi_req, COUNT, m->u.write_multi.wr_cnt = 0)         \
	X(multi_wr_cnt_above_max_is_too_many, b_multi_req, TOO_MANY, m->u.write_multi.wr_cnt = DEVMIG_MULTI_MAX + 1) \
	X(multi_wr_cnt_huge_is_too_many, b_multi_req, TOO_MANY, m->u.write_multi.wr_cnt = 1; fx_poke(f, 16 + 7, 0x80)) \
	X(multi_entry_cut_is_refused, b_multi_req, SHORT, f->adjust = -1)                        \
	X(multi_extra_bytes_is_refused, b_multi_req, MSG_SIZE, f->adjust = 1)                    \
	X(multi_wr_cnt_above_entries_is_refused, b_multi_req, SHORT, fx_poke(f, 16, 3))          \
	X(multi_entry_region_out_of_range_is_refused, b_multi_req, INDEX, f->wrs[1].region = 9)  \
	X(multi_entry_count_zero_is_refused, b_multi_req, COUNT, f->wrs[1].count = 0)            \
	X(multi_entry_count_above_8_is_refused, b_multi_req, COUNT, f->wrs[0].count = 9)         \
	X(multi_entry_offset_wrap_is_overflow, b_multi_req, OVERFLOW, f->wrs[1].offset = UINT64_MAX - 6) \
	X(multi_with_fd_is_refused, b_multi_req, FDS, f->nfds = 1)                               \
	X(multi_reply_short_is_refused, b_multi_rep, SHORT, f->adjust = -1)                      \
	X(multi_reply_long_is_refused, b_multi_rep, MSG_SIZE, f->adjust = 1)                     \
	/* MIG_DATA_READ / MIG_DATA_WRITE */                                                    \
	X(mig_read_short_is_refused, b_mig_read_req, SHORT, f->adjust = -1)                      \
	X(mig_read_trailing_byte_is_refused, b_mig_read_req, MSG_SIZE, f->adjust = 1)            \
	X(mig_read_size_zero_is_refused, b_mig_read_req, COUNT, m->u.mig_data.md.size = 0)       \
	X(mig_read_size_above_max_is_refused, b_mig_read_req, COUNT, f->lim.max_data_xfer_size = 63) \
	X(mig_read_argsz_below_reply_is_refused, b_mig_read_req, ARGSZ, m->u.mig_data.md.argsz = 8 + 63) \
	X(mig_read_argsz_wrap_is_refused, b_mig_read_req, ARGSZ, m->u.mig_data.md.size = UINT32_MAX; f->lim.max_data_xfer_size = UINT32_MAX; m->u.mig_data.md.argsz = 7) \
	X(mig_read_with_fd_is_refused, b_mig_read_req, FDS, f->nfds = 1)                         \
	X(mig_read_reply_data_short_is_refused, b_mig_read_rep, SHORT, f->adjust = -1; m->u.mig_data.md.argsz = 17) \
	X(mig_read_reply_padded_with_argsz_over_padding_is_refused, b_mig_read_rep_padded, ARGSZ, m->u.mig_data.md.argsz = 8 + 64) \
	X(mig_read_reply_padded_with_size_over_padding_is_refused, b_mig_read_rep_padded, ARGSZ, m->u.mig_data.md.size = 64) \
	X(mig_read_reply_padding_beyond_any_request_is_refused, b_mig_read_rep_padded, MSG_SIZE, f->lim.max_data_xfer_size = 53) \
	X(mig_read_reply_padded_size_above_max_is_refused, b_mig_read_rep_padded, COUNT, f->lim.max_data_xfer_size = 9) \
	X(mig_read_reply_argsz_not_payload_is_refused, b_mig_read_rep, ARGSZ, m->u.mig_data.md.argsz = 19) \
	X(mig_read_reply_size_above_max_is_refused, b_mig_read_rep, COUNT, f->lim.max_data_xfer_size = 9) \
	X(mig_write_short_is_refused, b_mig_write_req, SHORT, f->adjust = -1)                    \
	X(mig_write_trailing_byte_is_refused, b_mig_write_req, MSG_SIZE, f->adjust = 1)          \
	X(mig_write_size_zero_is_refused, b_mig_write_req, COUNT, fx_poke(f, 16 + 4, 0))         \
	X(mig_write_size_above_max_is_refused, b_mig_write_req, COUNT, f->lim.max_data_xfer_size = 11) \
	X(mig_write_argsz_below_payload_is_refused, b_mig_write_req, ARGSZ, m->u.mig_data.md.argsz = 19) \
	X(mig_write_reply_with_payload_is_refused, b_mig_write_rep, MSG_SIZE, f->adjust = 8)

REJECTS(REJECT_DEFINE)

/* ---- header decoding on its own ---- */

static void decode_hdr_needs_16_bytes(void **state)
{
	struct devmig_hdr h = { .msg_size = 16 }, out;
	uint8_t *b = malloc(15);

	(void)state;
	memcpy(b, &h, 15);
	for (size_t len = 0; len < 16; len++)
		assert_int_equal(devmig_decode_hdr(b, len, NULL, &out), W(E_SHORT));
	free(b);
}

static void decode_hdr_reads_only_the_header(void **state)
{
	struct devmig_wire_limits lim;
	struct devmig_hdr h = { .msg_id = 7, .cmd = DEVMIG_CMD_REGION_READ, .msg_size = 4096 }, out;
	uint8_t *b = malloc(16);

	(void)state;
	devmig_wire_limits_default(&lim);
	memcpy(b, &h, 16);
	assert_int_equal(devmig_decode_hdr(b, 16, &lim, &out), W(OK));
	assert_memory_equal(&h, &out, sizeof(h));
	lim.max_msg_size = 4095;
	assert_int_equal(devmig_decode_hdr(b, 16, &lim, &out), W(E_TOO_BIG));
	free(b);
}

static void decode_hdr_msg_size_below_16_is_refused(void **state)
{
	struct devmig_hdr h = { .cmd = DEVMIG_CMD_DEVICE_RESET }, out;
	uint8_t *b = malloc(16);

	(void)state;
	for (uint32_t sz = 0; sz < 16; sz++) {
		h.msg_size = sz;
		memcpy(b, &h, 16);
		assert_int_equal(devmig_decode_hdr(b, 16, NULL, &out), W(E_MSG_SIZE));
	}
	h.msg_size = 16;
	memcpy(b, &h, 16);
	assert_int_equal(devmig_decode_hdr(b, 16, NULL, &out), W(OK));
	free(b);
}

static void decode_hdr_at_odd_alignment(void **state)
{
	struct devmig_hdr h = { .msg_id = 9, .cmd = DEVMIG_CMD_DEVICE_RESET, .msg_size = 16 }, out;
	struct devmig_msg m;
	uint8_t *b = malloc(17);

	(void)state;
	memcpy(b + 1, &h, 16);
	assert_int_equal(devmig_decode_hdr(b + 1, 16, NULL, &out), W(OK));
	assert_int_equal(out.msg_id, 9);
	assert_int_equal(devmig_decode(b + 1, 16, 0, NULL, &m), W(OK));
	free(b);
}

static void decode_failure_after_header_keeps_header(void **state)
{
	struct fx *f = fx_new(b_region_read_req);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->m.hdr.msg_id = 0xbeef;
	f->m.u.region.acc.count = 0;
	assert_int_equal(fx_decode(f, &d, &keep), W(E_COUNT));
	assert_int_equal(d.hdr.msg_id, 0xbeef);
	assert_int_equal(d.hdr.cmd, DEVMIG_CMD_REGION_READ);
	free(keep);
	free(f);
}

/* ---- decoded pointers and accessors ---- */

static void version_exactly_4_bytes_has_no_json(void **state)
{
	struct fx *f = fx_new(b_version_req_nojson);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_null(d.u.version.json);
	assert_int_equal(d.u.version.json_len, 0);
	assert_int_equal(d.u.version.v.minor, 1);
	free(keep);
	free(f);
}

static void version_json_len_excludes_nul(void **state)
{
	struct fx *f = fx_new(b_version_req);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_int_equal(d.u.version.json_len, strlen(version_json));
	assert_ptr_equal(d.u.version.json, (const char *)keep + 20);
	assert_string_equal(d.u.version.json, version_json);
	free(keep);
	free(f);
}

static void region_read_reply_data_points_into_buffer(void **state)
{
	struct fx *f = fx_new(b_region_read_rep);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_ptr_equal(d.u.region.data, keep + 32);
	free(keep);
	free(f);
}

/* libvfio-user echoes the request with some error replies: the errno is the header's. */
static void error_reply_with_payload_is_accepted_errno_from_header(void **state)
{
	struct fx *f = fx_new(b_error_rep);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->adjust = 24;
	fx_poke(f, 16, 0xff); /* payload bytes mean nothing */
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_true(d.hdr.flags & DEVMIG_HDR_ERROR);
	assert_int_equal(d.hdr.error_no, EINVAL);
	assert_int_equal(d.hdr.msg_size, 16 + 24);
	free(keep);
	free(f);
	/* A server decoding the client's error reply to its DMA_READ: the same. */
	f = fx_new(b_error_rep);
	f->m.hdr.cmd = DEVMIG_CMD_DMA_READ;
	f->lim.role = W(ROLE_SERVER);
	f->adjust = 16;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_int_equal(d.hdr.error_no, EINVAL);
	free(keep);
	free(f);
}

/* libvfio-user's client sends REGION_INFO with its whole argsz buffer: the
 * bytes past the 32 needed are ignored, as the kernel's ioctl does. */
static void region_info_request_up_to_argsz_is_accepted(void **state)
{
	struct fx *f = fx_new(b_region_info_req);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->m.u.region_info.info.argsz = 32 + 48;
	f->adjust = 48;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_int_equal(d.u.region_info.info.argsz, 80);
	assert_int_equal(d.u.region_info.info.index, 2);
	free(keep);
	f->adjust = 49; /* beyond argsz */
	assert_int_equal(fx_decode(f, &d, &keep), W(E_MSG_SIZE));
	free(keep);
	free(f);
}

static void mig_read_reply_padded_gives_data_and_padding(void **state)
{
	struct fx *f = fx_new(b_mig_read_rep_padded);
	struct devmig_msg d;
	uint8_t *keep;
	size_t n;

	(void)state;
	uint8_t *b = fx_bytes(f, &n);
	assert_int_equal(n, 16 + 8 + 64); /* msg_size = 16 + 8 + requested */
	free(b);
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_int_equal(d.u.mig_data.md.size, 10);
	assert_int_equal(d.u.mig_data.md.argsz, 18);
	assert_int_equal(d.u.mig_data.pad, 54);
	assert_ptr_equal(d.u.mig_data.data, keep + 24);
	assert_memory_equal(d.u.mig_data.data, f->data, 10);
	free(keep);
	free(f);
	/* The encoder writes the padding as zeros and counts it in msg_size. */
	f = fx_new(b_mig_read_rep_padded);
	b = encode_exact(&f->m, &n);
	for (size_t i = 24 + 10; i < n; i++)
		assert_int_equal(b[i], 0);
	const void *tail;
	size_t tail_len;
	uint8_t head[64];
	enum devmig_wire_err err;
	assert_int_equal(devmig_encode_head(head, sizeof(head), &f->m, &tail, &tail_len, &err), 24);
	assert_int_equal(tail_len, 10);
	struct devmig_hdr h;
	memcpy(&h, head, sizeof(h));
	assert_int_equal(h.msg_size, 16 + 8 + 64);
	free(b);
	free(f);
}

/* An empty reply padded to the request: the end of the stream, as libvfio-user sends it. */
static void mig_read_reply_empty_padded_is_end_of_data(void **state)
{
	struct fx *f = fx_new(b_mig_read_rep_empty);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->m.u.mig_data.pad = 4096;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_int_equal(d.u.mig_data.md.size, 0);
	assert_null(d.u.mig_data.data);
	assert_int_equal(d.u.mig_data.pad, 4096);
	free(keep);
	free(f);
}

static void set_irqs_bools_point_at_data(void **state)
{
	struct fx *f = fx_new(b_set_irqs_bool);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_ptr_equal(d.u.irq_set.bools, keep + 16 + 20);
	assert_int_equal(d.u.irq_set.bools[0], 1);
	assert_int_equal(d.u.irq_set.bools[1], 0);
	free(keep);
	free(f);
}

static void set_irqs_eventfd_deassign_without_fds_is_accepted(void **state)
{
	struct fx *f = fx_new(b_set_irqs_eventfd);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->nfds = 0;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	free(f);
}

static void set_irqs_eventfd_count_fds_up_to_max_is_accepted(void **state)
{
	struct fx *f = fx_new(b_set_irqs_eventfd);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->m.u.irq_set.set.count = 4;
	f->nfds = 4;
	f->lim.max_msg_fds = 4;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_int_equal(devmig_msg_fds_expected(&d), 4);
	free(keep);
	free(f);
}

static void region_info_caps_flag_without_offset_is_not_walked(void **state)
{
	struct fx *f = fx_new(b_region_info_rep);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->m.u.region_info.info.cap_offset = 0;
	memset(f->caps, 0xff, 48); /* garbage that would fail a walk */
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_int_equal(d.u.region_info.caps_len, 48);
	free(keep);
	free(f);
}

static void region_info_reply_mmap_without_fd_is_accepted(void **state)
{
	struct fx *f = fx_new(b_region_info_rep);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->nfds = 0;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	free(f);
}

static void dma_map_without_fd_or_offset_is_accepted(void **state)
{
	struct fx *f = fx_new(b_dma_map_req_nofd);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_int_equal(d.u.dma_map.addr, 0x100000);
	free(keep);
	free(f);
}

static void dma_map_larger_pgsize_aligned_is_accepted(void **state)
{
	struct fx *f = fx_new(b_dma_map_req);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->lim.dma_pgsize = 0x200000;
	f->m.u.dma_map.addr = 0x40000000;
	f->m.u.dma_map.offset = 0x200000;
	f->m.u.dma_map.size = 0x400000;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	free(f);
}

static void region_read_count_at_max_is_accepted(void **state)
{
	struct fx *f = fx_new(b_region_read_req);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->m.u.region.acc.count = DEVMIG_DEFAULT_MAX_DATA_XFER;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	free(f);
}

static void region_read_offset_to_top_of_address_space_is_accepted(void **state)
{
	struct fx *f = fx_new(b_region_read_req);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	f->m.u.region.acc.offset = UINT64_MAX - 4; /* last byte UINT64_MAX - 1 */
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	free(keep);
	free(f);
}

static void multi_200_entries_are_accepted(void **state)
{
	struct fx *f = fx_new(b_multi_req);
	struct devmig_msg d;
	struct devmig_write_one w;
	uint8_t *keep;

	(void)state;
	for (unsigned i = 0; i < DEVMIG_MULTI_MAX; i++)
		f->wrs[i] = (struct devmig_write_one){ .offset = i * 8, .region = i % 9,
						       .count = 1 + i % 8, .data = { (uint8_t)i } };
	f->m.u.write_multi.wr_cnt = DEVMIG_MULTI_MAX;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_int_equal(d.u.write_multi.wr_cnt, DEVMIG_MULTI_MAX);
	devmig_write_multi_entry(&d, 199, &w);
	assert_memory_equal(&w, &f->wrs[199], sizeof(w));
	free(keep);
	free(f);
}

static void write_multi_entry_copies_each_entry(void **state)
{
	struct fx *f = fx_new(b_multi_req);
	struct devmig_msg d;
	struct devmig_write_one w;
	uint8_t *keep;

	(void)state;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	devmig_write_multi_entry(&d, 0, &w);
	assert_memory_equal(&w, &f->wrs[0], sizeof(w));
	devmig_write_multi_entry(&d, 1, &w);
	assert_int_equal(w.offset, 0x40);
	assert_int_equal(w.region, 2);
	assert_int_equal(w.count, 8);
	assert_int_equal(w.data[7], 8);
	/* Out of range: zeroed, nothing read. */
	devmig_write_multi_entry(&d, 2, &w);
	assert_int_equal(w.count, 0);
	free(keep);
	free(f);
}

static void mig_read_reply_empty_has_no_data(void **state)
{
	struct fx *f = fx_new(b_mig_read_rep_empty);
	struct devmig_msg d;
	uint8_t *keep;

	(void)state;
	assert_int_equal(fx_decode(f, &d, &keep), W(OK));
	assert_null(d.u.mig_data.data);
	assert_int_equal(d.u.mig_data.md.size, 0);
	free(keep);
	free(f);
}

static void role_any_accepts_both_directions(void **state)
{
	base_fn bases[] = { b_dma_read_req, b_dma_read_rep, b_region_read_req, b_region_read_rep };

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		struct fx *f = fx_new(bases[i]);
		struct devmig_msg d;
		uint8_t *keep;

		assert_int_equal(f->lim.role, W(ROLE_ANY));
		assert_int_equal(fx_decode(f, &d, &keep), W(OK));
		free(keep);
		free(f);
	}
}

static void server_accepts_client_commands_and_dma_replies(void **state)
{
	base_fn ok[] = { b_region_read_req, b_version_req, b_dma_read_rep, b_dma_write_rep };

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		struct fx *f = fx_new(ok[i]);
		struct devmig_msg d;
		uint8_t *keep;

		f->lim.role = W(ROLE_SERVER);
		assert_int_equal(fx_decode(f, &d, &keep), W(OK));
		free(keep);
		f->lim.role = W(ROLE_CLIENT);
		assert_int_equal(fx_decode(f, &d, &keep), W(E_DIRECTION));
		free(keep);
		free(f);
	}
}

static void client_accepts_server_commands_and_replies(void **state)
{
	base_fn ok[] = { b_dma_read_req, b_dma_write_req, b_region_read_rep, b_version_rep, b_error_rep };

	(void)state;
	for (size_t i = 0; i < 5; i++) {
		struct fx *f = fx_new(ok[i]);
		struct devmig_msg d;
		uint8_t *keep;

		f->lim.role = W(ROLE_CLIENT);
		assert_int_equal(fx_decode(f, &d, &keep), W(OK));
		free(keep);
		free(f);
	}
}

/* ---- fds_expected ---- */

static void fds_expected_follows_the_message(void **state)
{
	struct {
		base_fn base;
		unsigned fds;
	} t[] = {
		{ b_dma_map_req, 1 },   { b_dma_map_req_nofd, 1 }, { b_set_irqs_eventfd, 1 },
		{ b_set_irqs_bool, 0 }, { b_set_irqs_disable, 0 }, { b_region_info_rep, 1 },
		{ b_region_info_rep_plain, 0 }, { b_io_fds_rep, 2 }, { b_io_fds_rep_omitted, 0 },
		{ b_region_write_req, 0 }, { b_dma_map_rep, 0 }, { b_error_rep, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct fx *f = fx_new(t[i].base);
		struct devmig_msg d;
		uint8_t *keep;

		assert_int_equal(fx_decode(f, &d, &keep), W(OK));
		assert_int_equal(devmig_msg_fds_expected(&d), t[i].fds);
		free(keep);
		free(f);
	}
}

/* ---- encoding ---- */

static void encode_computes_msg_size(void **state)
{
	struct fx *f = fx_new(b_region_write_req);
	struct devmig_hdr h;
	uint8_t buf[64];
	enum devmig_wire_err err;

	(void)state;
	f->m.hdr.msg_size = 9999; /* ignored */
	assert_int_equal(devmig_encode(buf, sizeof(buf), &f->m, &err), 16 + 16 + 8);
	assert_int_equal(err, W(OK));
	memcpy(&h, buf, sizeof(h));
	assert_int_equal(h.msg_size, 40);
	assert_int_equal(h.msg_id, 0x1234);
	assert_memory_equal(buf + 32, f->data, 8);
	free(f);
}

static void encode_is_byte_exact_for_dma_map(void **state)
{
	struct fx *f = fx_new(b_dma_map_req);
	uint8_t buf[48], want[48] = { 0x34, 0x12, 2, 0, 48, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
				      32, 0, 0, 0, 3, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0,
				      0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0 };
	enum devmig_wire_err err;

	(void)state;
	assert_int_equal(devmig_encode(buf, sizeof(buf), &f->m, &err), 48);
	assert_memory_equal(buf, want, 48);
	free(f);
}

static void encode_cap_too_small_is_nospc_and_writes_nothing(void **state)
{
	struct fx *f = fx_new(b_region_write_req);
	uint8_t buf[64];
	enum devmig_wire_err err = W(OK);

	(void)state;
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(devmig_encode(buf, 39, &f->m, &err), 0);
	assert_int_equal(err, W(E_NOSPC));
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xee);
	assert_int_equal(devmig_encode(NULL, 0, &f->m, &err), 0);
	assert_int_equal(err, W(E_NOSPC));
	free(f);
}

static void encode_head_returns_bulk_as_tail_without_copy(void **state)
{
	base_fn bases[] = { b_region_read_rep, b_region_write_req, b_dma_read_rep,
			    b_dma_write_req, b_mig_read_rep, b_mig_write_req };

	(void)state;
	for (size_t i = 0; i < 6; i++) {
		struct fx *f = fx_new(bases[i]);
		uint8_t buf[64];
		const void *tail;
		size_t tail_len, n;
		enum devmig_wire_err err;
		struct devmig_hdr h;

		n = devmig_encode_head(buf, sizeof(buf), &f->m, &tail, &tail_len, &err);
		assert_int_equal(err, W(OK));
		assert_ptr_equal(tail, f->data); /* the caller's own bytes */
		assert_true(tail_len > 0);
		memcpy(&h, buf, sizeof(h));
		assert_int_equal(h.msg_size, n + tail_len);
		free(f);
	}
}

static void encode_head_without_bulk_has_no_tail(void **state)
{
	struct fx *f = fx_new(b_region_read_req);
	uint8_t buf[64];
	const void *tail = buf;
	size_t tail_len = 5;
	enum devmig_wire_err err;

	(void)state;
	assert_int_equal(devmig_encode_head(buf, sizeof(buf), &f->m, &tail, &tail_len, &err), 32);
	assert_null(tail);
	assert_int_equal(tail_len, 0);
	free(f);
}

static void expect_encode_refused(struct fx *f, enum devmig_wire_err want)
{
	uint8_t *buf = malloc(4096);
	enum devmig_wire_err err = W(OK);
	const void *tail;
	size_t tail_len;

	assert_int_equal(devmig_encode(buf, 4096, &f->m, &err), 0);
	assert_int_equal(err, want);
	err = W(OK);
	assert_int_equal(devmig_encode_head(buf, 4096, &f->m, &tail, &tail_len, &err), 0);
	assert_int_equal(err, want);
	free(buf);
	free(f);
}

/* Full encoding needs the bulk data; head-only encoding does not read it. */
static void expect_bulk_null_only_head(struct fx *f, size_t bulk_len)
{
	uint8_t *buf = malloc(4096);
	enum devmig_wire_err err = W(OK);
	const void *tail = buf;
	size_t tail_len = 0;

	assert_int_equal(devmig_encode(buf, 4096, &f->m, &err), 0);
	assert_int_equal(err, W(E_FIELD));
	size_t head = devmig_encode_head(buf, 4096, &f->m, &tail, &tail_len, &err);
	assert_int_equal(err, W(OK));
	assert_true(head > 0);
	assert_null(tail);
	assert_int_equal(tail_len, bulk_len);
	struct devmig_hdr h;
	memcpy(&h, buf, sizeof(h));
	assert_int_equal(h.msg_size, head + bulk_len);
	free(buf);
	free(f);
}

static void encode_refuses_data_pointer_null_with_count(void **state)
{
	struct fx *f = fx_new(b_region_write_req);

	(void)state;
	f->m.u.region.data = NULL;
	expect_bulk_null_only_head(f, f->m.u.region.acc.count);
}

static void encode_refuses_json_with_inner_nul(void **state)
{
	struct fx *f = fx_new(b_version_req);

	(void)state;
	f->json[3] = '\0';
	expect_encode_refused(f, W(E_FIELD));
}

static void encode_refuses_json_null_with_length(void **state)
{
	struct fx *f = fx_new(b_version_req);

	(void)state;
	f->m.u.version.json = NULL;
	expect_encode_refused(f, W(E_FIELD));
}

static void encode_refuses_io_fds_subs_not_count_entries(void **state)
{
	struct fx *f = fx_new(b_io_fds_rep);

	(void)state;
	f->m.u.io_fds.subs_len = 40;
	expect_encode_refused(f, W(E_FIELD));
}

static void encode_refuses_bools_null_with_count(void **state)
{
	struct fx *f = fx_new(b_set_irqs_bool);

	(void)state;
	f->m.u.irq_set.bools = NULL;
	expect_encode_refused(f, W(E_FIELD));
}

static void encode_refuses_wrs_null_with_count(void **state)
{
	struct fx *f = fx_new(b_multi_req);

	(void)state;
	f->m.u.write_multi.wrs = NULL;
	expect_encode_refused(f, W(E_FIELD));
}

static void encode_refuses_caps_null_with_length(void **state)
{
	struct fx *f = fx_new(b_region_info_rep);

	(void)state;
	f->m.u.region_info.caps = NULL;
	expect_encode_refused(f, W(E_FIELD));
}

static void encode_refuses_mig_data_null_with_size(void **state)
{
	struct fx *f = fx_new(b_mig_write_req);

	(void)state;
	f->m.u.mig_data.data = NULL;
	expect_bulk_null_only_head(f, f->m.u.mig_data.md.size);
}

static void encode_refuses_bad_header_flags(void **state)
{
	struct fx *f = fx_new(b_reset_req);

	(void)state;
	f->m.hdr.flags = DEVMIG_HDR_ERROR; /* a command with ERROR */
	expect_encode_refused(f, W(E_HDR_FLAGS));
	f = fx_new(b_reset_rep);
	f->m.hdr.flags |= DEVMIG_HDR_NO_REPLY;
	expect_encode_refused(f, W(E_HDR_FLAGS));
	f = fx_new(b_reset_req);
	f->m.hdr.flags = 3;
	expect_encode_refused(f, W(E_HDR_FLAGS));
}

static void encode_refuses_unknown_command(void **state)
{
	struct fx *f = fx_new(b_reset_req);

	(void)state;
	f->m.hdr.cmd = 14;
	expect_encode_refused(f, W(E_UNKNOWN_CMD));
}

static void encode_refuses_message_above_4g(void **state)
{
	struct fx *f = fx_new(b_dma_write_req);

	(void)state;
	f->m.u.dma.acc.count = 1ull << 32;
	expect_encode_refused(f, W(E_TOO_BIG));
}

static void encode_error_reply_is_header_only(void **state)
{
	struct devmig_hdr req = { .msg_id = 77, .cmd = DEVMIG_CMD_DEVICE_FEATURE, .msg_size = 40 };
	struct devmig_msg m, d;
	uint8_t *b, *keep;
	size_t n;

	(void)state;
	memset(&m, 0, sizeof(m));
	devmig_encode_error_reply(&m.hdr, &req, ENOTTY);
	assert_int_equal(m.hdr.msg_id, 77);
	assert_int_equal(m.hdr.cmd, DEVMIG_CMD_DEVICE_FEATURE);
	assert_int_equal(m.hdr.msg_size, 16);
	assert_int_equal(m.hdr.flags, DEVMIG_HDR_TYPE_REPLY | DEVMIG_HDR_ERROR);
	assert_int_equal(m.hdr.error_no, ENOTTY);
	b = encode_exact(&m, &n);
	assert_int_equal(n, 16);
	assert_int_equal(decode_exact(b, n, 0, NULL, &d, &keep), W(OK));
	assert_int_equal(d.hdr.error_no, ENOTTY);
	free(b);
	free(keep);
}

/* ---- names, errnos, limits ---- */

static void cmd_names_match_the_specification(void **state)
{
	(void)state;
	assert_string_equal(devmig_cmd_name(1), "VERSION");
	assert_string_equal(devmig_cmd_name(2), "DMA_MAP");
	assert_string_equal(devmig_cmd_name(5), "DEVICE_GET_REGION_INFO");
	assert_string_equal(devmig_cmd_name(8), "DEVICE_SET_IRQS");
	assert_string_equal(devmig_cmd_name(9), "REGION_READ");
	assert_string_equal(devmig_cmd_name(12), "DMA_WRITE");
	assert_string_equal(devmig_cmd_name(13), "DEVICE_RESET");
	assert_string_equal(devmig_cmd_name(15), "REGION_WRITE_MULTI");
	assert_string_equal(devmig_cmd_name(16), "DEVICE_FEATURE");
	assert_string_equal(devmig_cmd_name(18), "MIG_DATA_WRITE");
	assert_string_equal(devmig_cmd_name(0), "UNKNOWN");
	assert_string_equal(devmig_cmd_name(14), "UNKNOWN");
	assert_string_equal(devmig_cmd_name(19), "UNKNOWN");
	assert_string_equal(devmig_cmd_name(UINT32_MAX), "UNKNOWN");
}

static void wire_errno_maps_every_error(void **state)
{
	(void)state;
	assert_int_equal(devmig_wire_errno(W(OK)), 0);
	for (int e = W(E_SHORT); e <= W(E_STATE); e++) {
		int want = EINVAL;

		switch (e) {
		case W(E_TOO_BIG): case W(E_TOO_MANY): want = E2BIG; break;
		case W(E_UNKNOWN_CMD): want = ENOSYS; break;
		case W(E_OVERFLOW): want = EOVERFLOW; break;
		case W(E_FEATURE): want = ENOTTY; break;
		case W(E_VERSION): want = ENOTSUP; break;
		case W(E_NOSPC): want = ENOSPC; break;
		}
		assert_int_equal(devmig_wire_errno((enum devmig_wire_err)e), want);
	}
}

static void wire_strerror_names_every_error(void **state)
{
	(void)state;
	for (int e = W(OK); e <= W(E_STATE); e++) {
		const char *s = devmig_wire_strerror((enum devmig_wire_err)e);

		assert_non_null(s);
		assert_true(strlen(s) > 5);
		for (int o = W(OK); o < e; o++)
			assert_string_not_equal(s, devmig_wire_strerror((enum devmig_wire_err)o));
	}
	assert_non_null(devmig_wire_strerror((enum devmig_wire_err)999));
}

static void limits_default_are_the_specification(void **state)
{
	struct devmig_wire_limits lim;

	(void)state;
	memset(&lim, 0xff, sizeof(lim));
	devmig_wire_limits_default(&lim);
	assert_int_equal(lim.role, W(ROLE_ANY));
	assert_int_equal(lim.max_msg_size, (1u << 20) + 4096);
	assert_int_equal(lim.max_data_xfer_size, 1u << 20);
	assert_int_equal(lim.max_msg_fds, 1);
	assert_int_equal(lim.num_regions, 9);
	assert_int_equal(lim.num_irqs, 5);
	assert_int_equal(lim.dma_pgsize, 4096);
}

/* ---- a fuzz-like sweep: every byte of every base at a few values ---- */

static void mutated_bytes_never_read_out_of_bounds(void **state)
{
	base_fn bases[] = {
#define B_PTR(b) b_##b,
		BASES(B_PTR)
	};
	static const uint8_t vals[] = { 0x00, 0x01, 0x08, 0x20, 0x7f, 0x80, 0xff };

	(void)state;
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		struct fx *f = fx_new(bases[i]);
		size_t n;
		uint8_t *b = encode_exact(&f->m, &n);

		for (size_t off = 0; off < n; off++) {
			for (size_t v = 0; v < sizeof(vals); v++) {
				struct devmig_msg d;
				uint8_t *keep, save = b[off];
				enum devmig_wire_err err;

				b[off] = vals[v];
				err = decode_exact(b, n, f->nfds, &f->lim, &d, &keep);
				if (err == W(OK)) {
					/* Whatever decodes re-encodes to the same bytes
					 * (a padded reply's padding means nothing: zeros). */
					size_t rn;
					uint8_t *r = encode_exact(&d, &rn);
					size_t pad = d.hdr.cmd == DEVMIG_CMD_MIG_DATA_READ &&
							     msg_is_reply(&d) ? d.u.mig_data.pad : 0;

					assert_int_equal(rn, n);
					assert_memory_equal(r, b, n - pad);
					free(r);
				}
				free(keep);
				b[off] = save;
			}
		}
		free(b);
		free(f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		BASES(ENT_RT)
		REJECTS(REJECT_ENTRY)
		cmocka_unit_test(decode_hdr_needs_16_bytes),
		cmocka_unit_test(decode_hdr_reads_only_the_header),
		cmocka_unit_test(decode_hdr_msg_size_below_16_is_refused),
		cmocka_unit_test(decode_hdr_at_odd_alignment),
		cmocka_unit_test(decode_failure_after_header_keeps_header),
		cmocka_unit_test(version_exactly_4_bytes_has_no_json),
		cmocka_unit_test(version_json_len_excludes_nul),
		cmocka_unit_test(region_read_reply_data_points_into_buffer),
		cmocka_unit_test(set_irqs_bools_point_at_data),
		cmocka_unit_test(set_irqs_eventfd_deassign_without_fds_is_accepted),
		cmocka_unit_test(set_irqs_eventfd_count_fds_up_to_max_is_accepted),
		cmocka_unit_test(region_info_caps_flag_without_offset_is_not_walked),
		cmocka_unit_test(region_info_reply_mmap_without_fd_is_accepted),
		cmocka_unit_test(dma_map_without_fd_or_offset_is_accepted),
		cmocka_unit_test(error_reply_with_payload_is_accepted_errno_from_header),
		cmocka_unit_test(region_info_request_up_to_argsz_is_accepted),
		cmocka_unit_test(mig_read_reply_padded_gives_data_and_padding),
		cmocka_unit_test(mig_read_reply_empty_padded_is_end_of_data),
		cmocka_unit_test(dma_map_larger_pgsize_aligned_is_accepted),
		cmocka_unit_test(region_read_count_at_max_is_accepted),
		cmocka_unit_test(region_read_offset_to_top_of_address_space_is_accepted),
		cmocka_unit_test(multi_200_entries_are_accepted),
		cmocka_unit_test(write_multi_entry_copies_each_entry),
		cmocka_unit_test(mig_read_reply_empty_has_no_data),
		cmocka_unit_test(role_any_accepts_both_directions),
		cmocka_unit_test(server_accepts_client_commands_and_dma_replies),
		cmocka_unit_test(client_accepts_server_commands_and_replies),
		cmocka_unit_test(fds_expected_follows_the_message),
		cmocka_unit_test(encode_computes_msg_size),
		cmocka_unit_test(encode_is_byte_exact_for_dma_map),
		cmocka_unit_test(encode_cap_too_small_is_nospc_and_writes_nothing),
		cmocka_unit_test(encode_head_returns_bulk_as_tail_without_copy),
		cmocka_unit_test(encode_head_without_bulk_has_no_tail),
		cmocka_unit_test(encode_refuses_data_pointer_null_with_count),
		cmocka_unit_test(encode_refuses_json_with_inner_nul),
		cmocka_unit_test(encode_refuses_json_null_with_length),
		cmocka_unit_test(encode_refuses_io_fds_subs_not_count_entries),
		cmocka_unit_test(encode_refuses_bools_null_with_count),
		cmocka_unit_test(encode_refuses_wrs_null_with_count),
		cmocka_unit_test(encode_refuses_caps_null_with_length),
		cmocka_unit_test(encode_refuses_mig_data_null_with_size),
		cmocka_unit_test(encode_refuses_bad_header_flags),
		cmocka_unit_test(encode_refuses_unknown_command),
		cmocka_unit_test(encode_refuses_message_above_4g),
		cmocka_unit_test(encode_error_reply_is_header_only),
		cmocka_unit_test(cmd_names_match_the_specification),
		cmocka_unit_test(wire_errno_maps_every_error),
		cmocka_unit_test(wire_strerror_names_every_error),
		cmocka_unit_test(limits_default_are_the_specification),
		cmocka_unit_test(mutated_bytes_never_read_out_of_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
