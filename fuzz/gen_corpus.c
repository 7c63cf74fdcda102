/* SPDX-License-Identifier: MIT */
/*
 * Writes the fuzzers' seed corpus: a few valid messages per command, built
 * with devmig_encode and checked with devmig_decode, plus VERSION JSON seeds.
 *
 *   gen_corpus DIR      (normally fuzz/corpus)
 *
 * DIR/decode_server/NAME  byte 0 = nfds, then a message a server accepts
 * DIR/decode_client/NAME  the same for a client
 * DIR/hdr/NAME            a bare message (the header fuzzer reads 16 bytes)
 * DIR/caps/NAME           VERSION capabilities JSON text
 *
 * The output is deterministic, so re-running it leaves git clean.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "devmig/migration.h"
#include "devmig/wire.h"

static const char *top;
static int failures;
static uint16_t next_id = 1;

static void mkdir_p(const char *path)
{
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
}

static void write_file(const char *dir, const char *name, const void *a, size_t alen,
		       const void *b, size_t blen)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s/%s", top, dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || (alen && fwrite(a, 1, alen, f) != alen) ||
	    (blen && fwrite(b, 1, blen, f) != blen) || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* Encode m, check the role decodes it with nfds fds, write the seeds. */
static void seed(const char *name, struct devmig_msg *m, enum devmig_wire_role role,
		 unsigned nfds, bool hdr_seed)
{
	uint8_t buf[8192];
	enum devmig_wire_err err;

	m->hdr.msg_id = next_id++;
	size_t n = devmig_encode(buf, sizeof(buf), m, &err);
	if (!n) {
		fprintf(stderr, "gen_corpus: %s: encode: %s\n", name, devmig_wire_strerror(err));
		failures++;
		return;
	}
	struct devmig_wire_limits lim;
	struct devmig_msg back;
	devmig_wire_limits_default(&lim);
	lim.role = role;
	if ((err = devmig_decode(buf, n, nfds, &lim, &back)) != DEVMIG_WIRE_OK) {
		fprintf(stderr, "gen_corpus: %s: does not decode: %s\n", name,
			devmig_wire_strerror(err));
		failures++;
		return;
	}
	uint8_t fds = (uint8_t)nfds;
	write_file(role == DEVMIG_WIRE_ROLE_SERVER ? "decode_server" : "decode_client", name, &fds,
		   1, buf, n);
	if (hdr_seed)
		write_file("hdr", name, buf, n, NULL, 0);
}

static void init(struct devmig_msg *m, uint16_t cmd, bool reply)
{
	memset(m, 0, sizeof(*m));
	m->hdr.cmd = cmd;
	m->hdr.flags = reply ? DEVMIG_HDR_TYPE_REPLY : DEVMIG_HDR_TYPE_COMMAND;
}

#define SRV DEVMIG_WIRE_ROLE_SERVER
#define CLI DEVMIG_WIRE_ROLE_CLIENT

static const uint8_t bytes64[64] = {
	0x00, 0x01, 0x02, 0x03, 0xde, 0xad, 0xbe, 0xef, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70,
	0x80, 0xff, 0xfe, 0xfd, 0xfc, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
	0xbb, 0xcc,
};

static const char version_json[] =
	"{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576,"
	"\"max_dma_maps\":1024,\"pgsizes\":4096,\"write_multiple\":true,"
	"\"devmig\":{\"precopy_info\":true}}}";

static void version(void)
{
	struct devmig_msg m;

	init(&m, DEVMIG_CMD_VERSION, false);
	m.u.version.v.major = DEVMIG_VFIO_USER_MAJOR;
	m.u.version.v.minor = DEVMIG_VFIO_USER_MINOR;
	m.u.version.json = version_json;
	m.u.version.json_len = strlen(version_json);
	seed("version_req", &m, SRV, 0, true);
	m.u.version.json = NULL;
	m.u.version.json_len = 0;
	seed("version_req_nojson", &m, SRV, 0, false);

	init(&m, DEVMIG_CMD_VERSION, true);
	m.u.version.v.major = DEVMIG_VFIO_USER_MAJOR;
	m.u.version.v.minor = DEVMIG_VFIO_USER_MINOR;
	static const char reply_json[] =
		"{\"capabilities\":{\"max_msg_fds\":1,\"max_data_xfer_size\":1048576,"
		"\"pgsizes\":4096,\"devmig\":{\"precopy_info\":true}}}";
	m.u.version.json = reply_json;
	m.u.version.json_len = strlen(reply_json);
	seed("version_reply", &m, CLI, 0, false);
}

static void dma(void)
{
	struct devmig_msg m;

	init(&m, DEVMIG_CMD_DMA_MAP, false);
	m.u.dma_map = (struct devmig_dma_map){ .argsz = sizeof(struct devmig_dma_map),
					       .flags = DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
					       .offset = 0x2000, .addr = 0x100000, .size = 0x40000 };
	seed("dma_map_req", &m, SRV, 1, true);
	m.u.dma_map.offset = 0;
	m.u.dma_map.flags = DEVMIG_DMA_READ;
	seed("dma_map_req_nofd", &m, SRV, 0, false);
	init(&m, DEVMIG_CMD_DMA_MAP, true);
	seed("dma_map_reply", &m, CLI, 0, false);

	init(&m, DEVMIG_CMD_DMA_UNMAP, false);
	m.u.dma_unmap = (struct devmig_dma_unmap){ .argsz = sizeof(struct devmig_dma_unmap),
						   .addr = 0x100000, .size = 0x40000 };
	seed("dma_unmap_req", &m, SRV, 0, false);
	m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	seed("dma_unmap_reply", &m, CLI, 0, false);

	/* Server -> client: the server decodes the replies, the client the commands. */
	init(&m, DEVMIG_CMD_DMA_READ, false);
	m.u.dma.acc = (struct devmig_dma_access){ .addr = 0x100010, .count = 32 };
	seed("dma_read_req", &m, CLI, 0, true);
	m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	m.u.dma.data = bytes64;
	seed("dma_read_reply", &m, SRV, 0, false);

	init(&m, DEVMIG_CMD_DMA_WRITE, false);
	m.u.dma.acc = (struct devmig_dma_access){ .addr = 0x100020, .count = 16 };
	m.u.dma.data = bytes64;
	seed("dma_write_req", &m, CLI, 0, false);
	m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	m.u.dma.data = NULL;
	seed("dma_write_reply", &m, SRV, 0, false);

	struct devmig_hdr eh, rq = { .cmd = DEVMIG_CMD_DMA_READ, .msg_id = 7 };
	devmig_encode_error_reply(&eh, &rq, 14 /* EFAULT */);
	init(&m, DEVMIG_CMD_DMA_READ, true);
	m.hdr = eh;
	seed("dma_read_error_reply", &m, SRV, 0, true);
}

static void device(void)
{
	struct devmig_msg m;

	init(&m, DEVMIG_CMD_DEVICE_GET_INFO, false);
	m.u.device_info.argsz = sizeof(struct devmig_device_info);
	seed("device_get_info_req", &m, SRV, 0, false);
	m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	m.u.device_info = (struct devmig_device_info){ .argsz = sizeof(struct devmig_device_info),
						       .flags = 3, .num_regions = 9, .num_irqs = 5 };
	seed("device_get_info_reply", &m, CLI, 0, false);

	init(&m, DEVMIG_CMD_DEVICE_GET_REGION_INFO, false);
	m.u.region_info.info.argsz = 256;
	m.u.region_info.info.index = 2;
	seed("region_info_req", &m, SRV, 0, true);

	/* Reply: MMAP|CAPS, a sparse mmap capability with two areas, one fd. */
	struct {
		struct devmig_info_cap_hdr h;
		uint32_t nr_areas, reserved;
		struct devmig_sparse_mmap_area a[2];
	} __attribute__((packed)) cap = {
		.h = { .id = 1, .version = 1, .next = 0 },
		.nr_areas = 2,
		.a = { { 0, 0x1000 }, { 0x3000, 0x1000 } },
	};
	init(&m, DEVMIG_CMD_DEVICE_GET_REGION_INFO, true);
	m.u.region_info.info = (struct devmig_region_info){
		.argsz = sizeof(struct devmig_region_info) + sizeof(cap),
		.flags = 1 | 2 | 4 | 8, .index = 2, .cap_offset = sizeof(struct devmig_region_info),
		.size = 0x4000, .offset = 0 };
	m.u.region_info.caps = (const uint8_t *)&cap;
	m.u.region_info.caps_len = sizeof(cap);
	seed("region_info_reply_sparse", &m, CLI, 1, false);
	m.u.region_info.info = (struct devmig_region_info){ .argsz = 32, .flags = 3, .index = 7,
							    .size = 256 };
	m.u.region_info.caps = NULL;
	m.u.region_info.caps_len = 0;
	seed("region_info_reply", &m, CLI, 0, false);

	init(&m, DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS, false);
	m.u.io_fds.io = (struct devmig_region_io_fds){ .argsz = 256, .index = 0 };
	seed("region_io_fds_req", &m, SRV, 0, false);
	struct devmig_sub_region_io_fd sub = { .offset = 0x10, .size = 4, .fd_index = 0 };
	init(&m, DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS, true);
	m.u.io_fds.io = (struct devmig_region_io_fds){
		.argsz = sizeof(struct devmig_region_io_fds) + sizeof(sub), .index = 0, .count = 1 };
	m.u.io_fds.subs = (const uint8_t *)&sub;
	m.u.io_fds.subs_len = sizeof(sub);
	seed("region_io_fds_reply", &m, CLI, 1, false);

	init(&m, DEVMIG_CMD_DEVICE_GET_IRQ_INFO, false);
	m.u.irq_info = (struct devmig_irq_info){ .argsz = 16, .index = 4 };
	seed("irq_info_req", &m, SRV, 0, false);
	m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	m.u.irq_info = (struct devmig_irq_info){ .argsz = 16, .flags = 9, .index = 4, .count = 16 };
	seed("irq_info_reply", &m, CLI, 0, false);

	init(&m, DEVMIG_CMD_DEVICE_SET_IRQS, false);
	m.u.irq_set.set = (struct devmig_irq_set){ .argsz = sizeof(struct devmig_irq_set),
						   .flags = (1u << 2) | (1u << 5), /* EVENTFD, TRIGGER */
						   .index = 4, .start = 0, .count = 1 };
	seed("set_irqs_eventfd_req", &m, SRV, 1, true);
	m.u.irq_set.set = (struct devmig_irq_set){ .argsz = sizeof(struct devmig_irq_set) + 4,
						   .flags = (1u << 1) | (1u << 3), /* BOOL, MASK */
						   .index = 2, .start = 1, .count = 4 };
	m.u.irq_set.bools = (const uint8_t *)"\1\0\1\1";
	seed("set_irqs_bool_req", &m, SRV, 0, false);
	m.u.irq_set.set = (struct devmig_irq_set){ .argsz = sizeof(struct devmig_irq_set),
						   .flags = (1u << 0) | (1u << 5), /* NONE, TRIGGER */
						   .index = 0, .start = 0, .count = 0 };
	m.u.irq_set.bools = NULL;
	seed("set_irqs_none_req", &m, SRV, 0, false);
	init(&m, DEVMIG_CMD_DEVICE_SET_IRQS, true);
	seed("set_irqs_reply", &m, CLI, 0, false);

	init(&m, DEVMIG_CMD_DEVICE_RESET, false);
	seed("device_reset_req", &m, SRV, 0, true);
	m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	seed("device_reset_reply", &m, CLI, 0, false);
	m.hdr.flags = DEVMIG_HDR_TYPE_COMMAND | DEVMIG_HDR_NO_REPLY;
	seed("device_reset_noreply_req", &m, SRV, 0, false);
}

static void region(void)
{
	struct devmig_msg m;

	init(&m, DEVMIG_CMD_REGION_READ, false);
	m.u.region.acc = (struct devmig_region_access){ .offset = 0x40, .region = 0, .count = 4 };
	seed("region_read_req", &m, SRV, 0, true);
	m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	m.u.region.data = bytes64;
	seed("region_read_reply", &m, CLI, 0, false);

	init(&m, DEVMIG_CMD_REGION_WRITE, false);
	m.u.region.acc = (struct devmig_region_access){ .offset = 0x1000, .region = 7, .count = 8 };
	m.u.region.data = bytes64;
	seed("region_write_req", &m, SRV, 0, true);
	m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	m.u.region.data = NULL;
	seed("region_write_reply", &m, CLI, 0, false);

	struct devmig_write_one w[3] = {
		{ .offset = 0x10, .region = 0, .count = 4, .data = { 1, 2, 3, 4 } },
		{ .offset = 0x18, .region = 0, .count = 8, .data = { 1, 2, 3, 4, 5, 6, 7, 8 } },
		{ .offset = 0x3004, .region = 2, .count = 2, .data = { 0xaa, 0x55 } },
	};
	init(&m, DEVMIG_CMD_REGION_WRITE_MULTI, false);
	m.u.write_multi.wr_cnt = 3;
	m.u.write_multi.wrs = (const uint8_t *)w;
	seed("region_write_multi_req", &m, SRV, 0, true);
	init(&m, DEVMIG_CMD_REGION_WRITE_MULTI, true);
	m.u.write_multi.wr_cnt = 3;
	seed("region_write_multi_reply", &m, CLI, 0, false);
}

static void mig_data(void)
{
	struct devmig_msg m;

	init(&m, DEVMIG_CMD_MIG_DATA_READ, false);
	m.u.mig_data.md = (struct devmig_mig_data){ .argsz = 8 + 4096, .size = 4096 };
	seed("mig_data_read_req", &m, SRV, 0, true);
	init(&m, DEVMIG_CMD_MIG_DATA_READ, true);
	m.u.mig_data.md = (struct devmig_mig_data){ .argsz = 8 + 48, .size = 48 };
	m.u.mig_data.data = bytes64;
	seed("mig_data_read_reply", &m, CLI, 0, false);
	m.u.mig_data.md = (struct devmig_mig_data){ .argsz = 8, .size = 0 };
	m.u.mig_data.data = NULL;
	seed("mig_data_read_reply_empty", &m, CLI, 0, false);

	init(&m, DEVMIG_CMD_MIG_DATA_WRITE, false);
	m.u.mig_data.md = (struct devmig_mig_data){ .argsz = 8 + 64, .size = 64 };
	m.u.mig_data.data = bytes64;
	seed("mig_data_write_req", &m, SRV, 0, true);
	init(&m, DEVMIG_CMD_MIG_DATA_WRITE, true);
	seed("mig_data_write_reply", &m, CLI, 0, false);

	struct devmig_hdr eh, rq = { .cmd = DEVMIG_CMD_MIG_DATA_WRITE, .msg_id = 9 };
	devmig_encode_error_reply(&eh, &rq, 22 /* EINVAL */);
	init(&m, DEVMIG_CMD_MIG_DATA_WRITE, true);
	m.hdr = eh;
	seed("mig_data_write_error_reply", &m, CLI, 0, false);
}

/* DEVICE_FEATURE: one request (and reply) per feature and operation. */
static void feature_msg(const char *name, enum devmig_wire_role role, bool reply,
			uint32_t flags, const void *data, size_t data_len, size_t room)
{
	struct devmig_msg m;
	init(&m, DEVMIG_CMD_DEVICE_FEATURE, reply);
	/* argsz: the data sent, or the room a GET request offers for the reply. */
	m.u.feature.f.argsz = (uint32_t)(sizeof(struct devmig_feature) +
					 (room > data_len ? room : data_len));
	m.u.feature.f.flags = flags;
	m.u.feature.index = flags & DEVMIG_FEATURE_MASK;
	m.u.feature.data = data_len ? data : NULL;
	m.u.feature.data_len = data_len;
	seed(name, &m, role, 0, false);
}

static void features(void)
{
	const uint32_t GET = DEVMIG_FEATURE_GET, SET = DEVMIG_FEATURE_SET,
		       PROBE = DEVMIG_FEATURE_PROBE;

	struct devmig_feature_migration mig = { .flags = DEVMIG_MIG_ALL };
	feature_msg("feature_migration_get_req", SRV, false, GET | DEVMIG_FEATURE_MIGRATION, NULL, 0,
		    sizeof(mig));
	feature_msg("feature_migration_probe_req", SRV, false,
		    GET | PROBE | DEVMIG_FEATURE_MIGRATION, NULL, 0, 0);
	feature_msg("feature_migration_get_reply", CLI, true, GET | DEVMIG_FEATURE_MIGRATION, &mig,
		    sizeof(mig), 0);

	struct devmig_feature_mig_state st = { .device_state = DEVMIG_STATE_STOP_COPY };
	feature_msg("feature_mig_state_set_req", SRV, false, SET | DEVMIG_FEATURE_MIG_DEVICE_STATE,
		    &st, sizeof(st), 0);
	feature_msg("feature_mig_state_set_reply", CLI, true,
		    SET | DEVMIG_FEATURE_MIG_DEVICE_STATE, &st, sizeof(st), 0);
	feature_msg("feature_mig_state_get_req", SRV, false, GET | DEVMIG_FEATURE_MIG_DEVICE_STATE,
		    NULL, 0, sizeof(st));
	st.device_state = DEVMIG_STATE_RUNNING;
	feature_msg("feature_mig_state_get_reply", CLI, true,
		    GET | DEVMIG_FEATURE_MIG_DEVICE_STATE, &st, sizeof(st), 0);

	struct {
		struct devmig_feature_dma_logging_control ctl;
		struct devmig_dma_logging_range r[3];
	} __attribute__((packed)) start = {
		.ctl = { .page_size = 4096, .num_ranges = 3 },
		.r = { { 0, 0x100000 }, { 0x200000, 0x1000 }, { 0x7fff0000, 0x10000 } },
	};
	feature_msg("feature_log_start_req", SRV, false, SET | DEVMIG_FEATURE_DMA_LOGGING_START,
		    &start, sizeof(start), 0);
	feature_msg("feature_log_start_reply", CLI, true, SET | DEVMIG_FEATURE_DMA_LOGGING_START,
		    &start, sizeof(start), 0);
	feature_msg("feature_log_start_probe_req", SRV, false,
		    SET | PROBE | DEVMIG_FEATURE_DMA_LOGGING_START, NULL, 0, 0);
	feature_msg("feature_log_stop_req", SRV, false, SET | DEVMIG_FEATURE_DMA_LOGGING_STOP, NULL,
		    0, 0);

	struct devmig_feature_dma_logging_report rep = { .iova = 0x10000, .length = 0x40000,
							 .page_size = 4096 };
	/* 64 pages: one u64 of bitmap in the reply. */
	feature_msg("feature_log_report_req", SRV, false, GET | DEVMIG_FEATURE_DMA_LOGGING_REPORT,
		    &rep, sizeof(rep), sizeof(rep) + 8);
	struct {
		struct devmig_feature_dma_logging_report rep;
		uint64_t bitmap[2];
	} __attribute__((packed)) rep_reply = {
		.rep = { .iova = 0, .length = 0x80000, .page_size = 4096 },
		.bitmap = { 0x8000000000000001ull, 0xff00 },
	};
	feature_msg("feature_log_report_reply", CLI, true, GET | DEVMIG_FEATURE_DMA_LOGGING_REPORT,
		    &rep_reply, sizeof(rep_reply), 0);

	struct devmig_feature_mig_data_size ds = { .stop_copy_length = 1u << 20 };
	feature_msg("feature_data_size_get_req", SRV, false, GET | DEVMIG_FEATURE_MIG_DATA_SIZE, NULL,
		    0, sizeof(ds));
	feature_msg("feature_data_size_get_reply", CLI, true, GET | DEVMIG_FEATURE_MIG_DATA_SIZE,
		    &ds, sizeof(ds), 0);

	struct devmig_feature_precopy_info pi = { .initial_bytes = 65536, .dirty_bytes = 4096 };
	feature_msg("feature_precopy_info_get_req", SRV, false, GET | DEVMIG_FEATURE_PRECOPY_INFO,
		    NULL, 0, sizeof(pi));
	feature_msg("feature_precopy_info_get_reply", CLI, true, GET | DEVMIG_FEATURE_PRECOPY_INFO,
		    &pi, sizeof(pi), 0);
}

/*
 * What libvfio-user and QEMU send that the kernel's rules allow (after the
 * others, so their msg_ids stay as they were): UNMAP_ALL, padded reads,
 * feature data beyond what is needed.
 */
static void interop_seeds(void)
{
	const uint32_t GET = DEVMIG_FEATURE_GET, SET = DEVMIG_FEATURE_SET;
	struct devmig_msg m;

	/* VFIO_DMA_UNMAP_FLAG_ALL, as libvfio-user's client and QEMU send it. */
	init(&m, DEVMIG_CMD_DMA_UNMAP, false);
	m.u.dma_unmap = (struct devmig_dma_unmap){ .argsz = sizeof(struct devmig_dma_unmap),
						   .flags = DEVMIG_DMA_UNMAP_ALL };
	seed("dma_unmap_all_req", &m, SRV, 0, false);
	m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	seed("dma_unmap_all_reply", &m, CLI, 0, false);

	init(&m, DEVMIG_CMD_MIG_DATA_READ, true);
	/* libvfio-user's shapes: padded to the 4096 asked for. */
	m.u.mig_data.md = (struct devmig_mig_data){ .argsz = 8 + 48, .size = 48 };
	m.u.mig_data.data = bytes64;
	m.u.mig_data.pad = 4096 - 48;
	seed("mig_data_read_reply_padded", &m, CLI, 0, false);
	m.u.mig_data.md = (struct devmig_mig_data){ .argsz = 8, .size = 0 };
	m.u.mig_data.data = NULL;
	m.u.mig_data.pad = 4096;
	seed("mig_data_read_reply_empty_padded", &m, CLI, 0, false);

	/* The kernel's rule: data beyond what a feature needs is ignored. STOP with
	 * START's structure (libvfio-user, QEMU), its echo, a SET with extra bytes,
	 * a GET with room for the answer, a REPORT with room for the bitmap. */
	struct devmig_feature_dma_logging_control stop_ctl = { .page_size = 4096 };
	feature_msg("feature_log_stop_with_start_req", SRV, false,
		    SET | DEVMIG_FEATURE_DMA_LOGGING_STOP, &stop_ctl, sizeof(stop_ctl), 0);
	feature_msg("feature_log_stop_with_start_reply", CLI, true,
		    SET | DEVMIG_FEATURE_DMA_LOGGING_STOP, &stop_ctl, sizeof(stop_ctl), 0);
	struct {
		struct devmig_feature_mig_state st;
		uint64_t extra;
	} __attribute__((packed)) st_extra = { { DEVMIG_STATE_STOP, 0xffffffff }, ~0ull };
	feature_msg("feature_mig_state_set_extra_req", SRV, false,
		    SET | DEVMIG_FEATURE_MIG_DEVICE_STATE, &st_extra, sizeof(st_extra), 0);
	uint64_t room = 0;
	feature_msg("feature_migration_get_with_room_req", SRV, false,
		    GET | DEVMIG_FEATURE_MIGRATION, &room, sizeof(room), 0);
	struct devmig_feature_dma_logging_report rep = { .iova = 0x10000, .length = 0x40000,
							 .page_size = 4096 };
	struct {
		struct devmig_feature_dma_logging_report rep;
		uint64_t room;
	} __attribute__((packed)) rep_room = { rep, 0 };
	feature_msg("feature_log_report_with_room_req", SRV, false,
		    GET | DEVMIG_FEATURE_DMA_LOGGING_REPORT, &rep_room, sizeof(rep_room), 0);
}

/* An error reply carrying the request's echo, as libvfio-user sends a refused SET. */
static void error_payload(void)
{
	struct {
		struct devmig_hdr h;
		struct devmig_feature f;
		struct devmig_feature_mig_state st;
	} __attribute__((packed)) e = {
		{ .msg_id = 0x66, .cmd = DEVMIG_CMD_DEVICE_FEATURE, .msg_size = 16 + 8 + 8,
		  .flags = DEVMIG_HDR_TYPE_REPLY | DEVMIG_HDR_ERROR, .error_no = 22 },
		{ 16, DEVMIG_FEATURE_SET | DEVMIG_FEATURE_MIG_DEVICE_STATE },
		{ DEVMIG_STATE_RUNNING_P2P, 0 },
	};
	struct devmig_wire_limits lim;
	struct devmig_msg back;
	devmig_wire_limits_default(&lim);
	lim.role = CLI;
	if (devmig_decode(&e, sizeof(e), 0, &lim, &back) != DEVMIG_WIRE_OK) {
		fprintf(stderr, "gen_corpus: error_reply_with_payload does not decode\n");
		failures++;
		return;
	}
	uint8_t fds = 0;
	write_file("decode_client", "error_reply_with_payload", &fds, 1, &e, sizeof(e));
	write_file("hdr", "error_reply_with_payload", &e, sizeof(e), NULL, 0);
}

/* The deadline and dirty_rate extensions (after the others: their msg_ids stay). */
static void deadline_seeds(void)
{
	const uint32_t GET = DEVMIG_FEATURE_GET, SET = DEVMIG_FEATURE_SET;
	struct devmig_feature_mig_deadline dl = { .device_state = DEVMIG_STATE_STOP_COPY,
						  .deadline_ns = 290000000 };
	feature_msg("feature_deadline_set_req", SRV, false, SET | DEVMIG_FEATURE_MIG_STATE_DEADLINE,
		    &dl, DEVMIG_MIG_DEADLINE_REQ_LEN, sizeof(dl));
	dl.flags = DEVMIG_DEADLINE_OVERRUN | DEVMIG_DEADLINE_PARTIAL;
	dl.estimate_ns = 120000000;
	dl.elapsed_ns = 300000000;
	dl.overrun_ns = 10000000;
	feature_msg("feature_deadline_set_reply", CLI, true, SET | DEVMIG_FEATURE_MIG_STATE_DEADLINE,
		    &dl, sizeof(dl), 0);

	struct devmig_feature_arc_estimates est = {
		.rate = 1u << 30, .stop_copy_bytes = 1u << 24, .narcs = 3,
		.arcs = {
			{ .from = DEVMIG_STATE_RUNNING, .to = DEVMIG_STATE_RUNNING_P2P, .ns = 1000000 },
			{ .from = DEVMIG_STATE_PRE_COPY, .to = DEVMIG_STATE_PRE_COPY_P2P, .ns = 1000000 },
			{ .from = DEVMIG_STATE_PRE_COPY_P2P, .to = DEVMIG_STATE_STOP_COPY,
			  .flags = DEVMIG_DEADLINE_PARTIAL, .ns = 16000000 },
		},
		.last_state = DEVMIG_STATE_STOP_COPY, .last_flags = DEVMIG_DEADLINE_DRAINED,
		.last_deadline_ns = 290000000, .last_estimate_ns = 17000000,
	};
	feature_msg("feature_estimates_get_req", SRV, false, GET | DEVMIG_FEATURE_ARC_ESTIMATES,
		    NULL, 0, sizeof(est));
	feature_msg("feature_estimates_get_reply", CLI, true, GET | DEVMIG_FEATURE_ARC_ESTIMATES,
		    &est, sizeof(est), 0);

	struct devmig_feature_dirty_rate dr = { .cap = 20u << 20, .measured = 30u << 20,
						.throttled_ns = 1000000000,
						.flags = DEVMIG_DIRTY_RATE_ACTIVE };
	feature_msg("feature_dirty_rate_set_req", SRV, false, SET | DEVMIG_FEATURE_DIRTY_RATE, &dr,
		    sizeof(dr.cap), 0);
	feature_msg("feature_dirty_rate_set_reply", CLI, true, SET | DEVMIG_FEATURE_DIRTY_RATE, &dr,
		    sizeof(dr.cap), 0);
	feature_msg("feature_dirty_rate_get_req", SRV, false, GET | DEVMIG_FEATURE_DIRTY_RATE, NULL,
		    0, sizeof(dr));
	feature_msg("feature_dirty_rate_get_reply", CLI, true, GET | DEVMIG_FEATURE_DIRTY_RATE, &dr,
		    sizeof(dr), 0);

	/* A refusal: ETIME with the outcome as the error reply's payload. */
	struct {
		struct devmig_hdr h;
		struct devmig_feature f;
		struct devmig_feature_mig_deadline dl;
	} __attribute__((packed)) e = {
		{ .msg_id = 0x67, .cmd = DEVMIG_CMD_DEVICE_FEATURE, .msg_size = 16 + 8 + sizeof(dl),
		  .flags = DEVMIG_HDR_TYPE_REPLY | DEVMIG_HDR_ERROR, .error_no = 62 /* ETIME */ },
		{ 8 + sizeof(dl), SET | DEVMIG_FEATURE_MIG_STATE_DEADLINE },
		{ .device_state = DEVMIG_STATE_PRE_COPY, .flags = DEVMIG_DEADLINE_REFUSED,
		  .deadline_ns = 270000000, .estimate_ns = 560000000, .elapsed_ns = 20000 },
	};
	struct devmig_wire_limits lim;
	struct devmig_msg back;
	devmig_wire_limits_default(&lim);
	lim.role = CLI;
	if (devmig_decode(&e, sizeof(e), 0, &lim, &back) != DEVMIG_WIRE_OK ||
	    back.u.feature.u.deadline.estimate_ns != 560000000) {
		fprintf(stderr, "gen_corpus: deadline_refused_reply does not decode\n");
		failures++;
		return;
	}
	uint8_t fds = 0;
	write_file("decode_client", "deadline_refused_reply", &fds, 1, &e, sizeof(e));
}

static void caps_seeds(void)
{
	static const struct {
		const char *name, *text;
	} j[] = {
		{ "version_full", version_json },
		{ "empty_object", "{}" },
		{ "empty_caps", "{\"capabilities\":{}}" },
		{ "twin_socket", "{\"capabilities\":{\"twin_socket\":{\"supported\":true},"
				 "\"max_msg_fds\":16,\"pgsizes\":12288,\"unknown\":[1,2,{}]}}" },
		{ "migration_member", "{\"capabilities\":{\"migration\":{\"pgsize\":4096},"
				      "\"max_data_xfer_size\":65536,\"write_multiple\":false}}" },
		{ "migration_qemu", "{\"capabilities\":{\"migration\":{\"pgsize\":4096,"
				    "\"max_bitmap_size\":268435456},\"max_msg_fds\":16,"
				    "\"multiple_writes\":true}}" },
		{ "migration_bad_pgsize", "{\"capabilities\":{\"migration\":{\"pgsize\":12288}}}" },
		{ "bad_type", "{\"capabilities\":{\"max_msg_fds\":\"8\"}}" },
		{ "negative", "{\"capabilities\":{\"max_dma_maps\":-1}}" },
		{ "big_number", "{\"capabilities\":{\"pgsizes\":18446744073709551615}}" },
		{ "libvfio_user_reply", "{\"capabilities\":{\"max_msg_fds\":8,"
					"\"max_data_xfer_size\":1048576,"
					"\"migration\":{\"pgsize\":4096}}}" },
		{ "exact_mig_read", "{\"capabilities\":{\"devmig\":{\"exact_mig_read\":true,"
				    "\"compat\":true}}}" },
		{ "deadline_dirty_rate", "{\"capabilities\":{\"devmig\":{\"deadline\":true,"
					 "\"dirty_rate\":false,\"unknown\":true}}}" },
	};
	for (size_t i = 0; i < sizeof(j) / sizeof(j[0]); i++)
		write_file("caps", j[i].name, j[i].text, strlen(j[i].text), NULL, 0);

	/* And one the formatter wrote. */
	struct devmig_caps c;
	char out[1024];
	devmig_caps_default(&c);
	c.write_multiple = true;
	c.ext = DEVMIG_EXT_ALL;
	c.max_msg_fds = 4;
	c.migration = true;
	c.mig_max_bitmap_size = 1u << 20;
	size_t n = devmig_caps_format(&c, out, sizeof(out));
	if (!n) {
		fprintf(stderr, "gen_corpus: caps_format failed\n");
		failures++;
		return;
	}
	write_file("caps", "formatted", out, n, NULL, 0);
}

int main(int argc, char **argv)
{
	static const char *const dirs[] = { "decode_server", "decode_client", "hdr", "caps" };
	char path[512];

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	top = argv[1];
	mkdir_p(top);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", top, dirs[i]);
		mkdir_p(path);
	}
	version();
	dma();
	device();
	region();
	mig_data();
	features();
	interop_seeds();
	error_payload();
	caps_seeds();
	deadline_seeds();
	if (failures)
		fprintf(stderr, "gen_corpus: %d seeds failed\n", failures);
	return failures ? 1 : 0;
}
