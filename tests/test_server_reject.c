/* SPDX-License-Identifier: MIT */
/*
 * The server refuses bad input over a real socket: each case sends one
 * malformed or out-of-place message and checks the exact errno of the error
 * reply, that the device did not change, and that the same connection still
 * serves (or, for framing the server cannot resync from, that it dropped the
 * connection and a new client sees the device unchanged).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/vfio.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices.h"
#include "devmig/client.h"
#include "devmig/server.h"
#include "fixture.h"
#include "devmig/wire.h"

#define REG_COUNT 0x00
#define REG_SCRATCH0 0x08
#define SCRATCH_VAL 0x1234u
#define COUNT_VAL 5u
#define WAIT_MS 30000 /* upper bound for a hang-up to show; not a sleep */

struct fx {
	char dir[FX_PATH_MAX];
	struct fx_server s;
	const char *path;           /* s.path */
	struct devmig_device *dev;  /* s.dev */
	struct devmig_server *srv;  /* s.srv */
	struct devmig_client *c;
};

/* ---- helpers ---- */

static struct devmig_client *connect_client(const char *path)
{
	char err[256] = "";
	struct devmig_client *c = devmig_client_connect(path, NULL, err, sizeof err);
	if (!c)
		fail_msg("connect %s: %s", path, err);
	return c;
}

static uint32_t rd32(struct devmig_client *c, uint64_t off)
{
	uint32_t v = 0xdeadbeef;
	assert_int_equal(devmig_client_region_read(c, 0, off, &v, 4), 0);
	return v;
}

static void wr32(struct devmig_client *c, uint64_t off, uint32_t v)
{
	assert_int_equal(devmig_client_region_write(c, 0, off, &v, 4), 0);
}

static enum devmig_state get_state(struct devmig_client *c)
{
	enum devmig_state st = DEVMIG_STATE_ERROR;
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	return st;
}

/* The registers the fixture set are as they were, and the state is st. */
static void check_device(struct devmig_client *c, enum devmig_state st)
{
	assert_int_equal(rd32(c, REG_SCRATCH0), SCRATCH_VAL);
	assert_int_equal(rd32(c, REG_COUNT), COUNT_VAL);
	assert_int_equal(get_state(c), st);
}

/* The connection still serves a valid command. */
static void check_serves(struct devmig_client *c)
{
	struct devmig_device_info info;
	memset(&info, 0, sizeof info);
	assert_int_equal(devmig_client_device_info(c, &info), 0);
	assert_true(info.num_regions >= 9);
	assert_true(info.num_irqs >= 5);
}

/* After a rejection on a connection that must survive. */
static void after_reject(struct fx *f)
{
	check_serves(f->c);
	check_device(f->c, DEVMIG_STATE_RUNNING);
}

static void init_cmd(struct devmig_msg *m, uint16_t cmd, uint16_t id)
{
	memset(m, 0, sizeof *m);
	m->hdr.cmd = cmd;
	m->hdr.msg_id = id;
	m->hdr.flags = DEVMIG_HDR_TYPE_COMMAND;
}

static size_t enc(void *buf, size_t cap, const struct devmig_msg *m)
{
	enum devmig_wire_err e = DEVMIG_WIRE_OK;
	size_t n = devmig_encode(buf, cap, m, &e);
	if (!n)
		fail_msg("encode cmd %u: %s", m->hdr.cmd, devmig_wire_strerror(e));
	return n;
}

/* Send bytes (+fds); the reply must be an error reply to it with errno err. */
static void expect_error(struct devmig_client *c, const void *bytes, size_t len, const int *fds,
			 unsigned nfds, int err)
{
	uint8_t reply[256];
	struct devmig_hdr sent, h;

	memcpy(&sent, bytes, sizeof sent);
	ssize_t r = devmig_client_raw(c, bytes, len, fds, nfds, reply, sizeof reply);
	if (r < 0)
		fail_msg("raw cmd %u: %s (wanted an error reply %s)", sent.cmd, strerror((int)-r),
			 strerror(err));
	assert_true(r >= (ssize_t)DEVMIG_HDR_SIZE);
	memcpy(&h, reply, sizeof h);
	if (!(h.flags & DEVMIG_HDR_ERROR))
		fail_msg("cmd %u accepted (wanted %s)", sent.cmd, strerror(err));
	if ((int)h.error_no != err)
		fail_msg("cmd %u: error %s (%u), wanted %s (%d)", sent.cmd, strerror((int)h.error_no),
			 h.error_no, strerror(err), err);
	assert_int_equal(r, DEVMIG_HDR_SIZE);
	assert_int_equal(h.msg_size, DEVMIG_HDR_SIZE);
	assert_int_equal(h.flags & DEVMIG_HDR_TYPE_MASK, DEVMIG_HDR_TYPE_REPLY);
	assert_int_equal(h.msg_id, sent.msg_id);
	assert_int_equal(h.cmd, sent.cmd);
}

static void expect_msg_error(struct devmig_client *c, const struct devmig_msg *m, const int *fds,
			     unsigned nfds, int err)
{
	uint8_t buf[4096];
	size_t n = enc(buf, sizeof buf, m);
	expect_error(c, buf, n, fds, nfds, err);
}

/* Wait until the peer hangs up fd: read returns 0 (or ECONNRESET). */
static void wait_hangup(int fd)
{
	uint8_t b[256];
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, WAIT_MS);
		assert_true(n >= 0 || errno == EINTR);
		if (n == 0)
			fail_msg("server did not drop the connection");
		if (n < 0)
			continue;
		ssize_t r = read(fd, b, sizeof b);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return;
		if (r < 0 && errno == EINTR)
			continue;
		/* An error reply before the drop is allowed; anything else is not. */
		assert_true(r > 0);
	}
}

/* The server dropped f->c: it cannot serve anymore; a new client sees the device unchanged. */
static void check_dropped_then_new_client(struct fx *f)
{
	wait_hangup(devmig_client_fd(f->c));
	struct devmig_device_info info;
	assert_true(devmig_client_device_info(f->c, &info) < 0);
	devmig_client_close(f->c);
	f->c = connect_client(f->path);
	check_device(f->c, DEVMIG_STATE_RUNNING);
	check_serves(f->c);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int make_memfd(size_t size)
{
	int fd = memfd_create("server-reject", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t r = send(fd, p, len, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		assert_true(r > 0);
		p += r;
		len -= (size_t)r;
	}
}

static void region_read_msg(struct devmig_msg *m, uint32_t region, uint64_t off, uint32_t count)
{
	init_cmd(m, DEVMIG_CMD_REGION_READ, 0x100);
	m->u.region.acc.region = region;
	m->u.region.acc.offset = off;
	m->u.region.acc.count = count;
}

static void feature_msg(struct devmig_msg *m, uint32_t flags, const void *data, size_t len,
			uint32_t argsz)
{
	init_cmd(m, DEVMIG_CMD_DEVICE_FEATURE, 0x200);
	m->u.feature.f.argsz = argsz;
	m->u.feature.f.flags = flags;
	m->u.feature.data = data;
	m->u.feature.data_len = len;
}

/* A raw SET MIG_DEVICE_STATE, so that the server (not the client library) decides. */
static void expect_set_state_error(struct devmig_client *c, uint32_t state, int err)
{
	struct devmig_feature_mig_state ms = { .device_state = state, .data_fd = 0 };
	struct devmig_msg m;
	feature_msg(&m, DEVMIG_FEATURE_SET | DEVMIG_FEATURE_MIG_DEVICE_STATE, &ms, sizeof ms,
		    (uint32_t)(sizeof(struct devmig_feature) + sizeof ms));
	expect_msg_error(c, &m, NULL, 0, err);
}

/* ---- fixture ---- */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	fx_tmpdir(f->dir, "reject");
	fx_serve_variant(&f->s, f->dir, "sock", &devmig_variant_counter, NULL);
	f->path = f->s.path;
	f->dev = f->s.dev;
	f->srv = f->s.srv;
	f->c = fx_connect(&f->s, NULL);
	wr32(f->c, REG_SCRATCH0, SCRATCH_VAL);
	wr32(f->c, REG_COUNT, COUNT_VAL);
	check_device(f->c, DEVMIG_STATE_RUNNING);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->c)
		devmig_client_close(f->c);
	fx_unserve(&f->s);
	fx_rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- framing ---- */

static void truncated_header_drops_client(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	uint8_t buf[64];
	init_cmd(&m, DEVMIG_CMD_DEVICE_RESET, 1);
	size_t n = enc(buf, sizeof buf, &m);
	assert_int_equal(n, DEVMIG_HDR_SIZE);
	/* 10 bytes of a DEVICE_RESET header, then EOF: the reset must not run. */
	send_all(devmig_client_fd(f->c), buf, 10);
	assert_int_equal(shutdown(devmig_client_fd(f->c), SHUT_WR), 0);
	check_dropped_then_new_client(f);
}

static void msg_size_below_header_drops_client(void **state)
{
	struct fx *f = *state;
	struct devmig_server_stats before, after;
	struct devmig_msg m;
	uint8_t buf[64], reply[64];
	devmig_server_get_stats(f->srv, &before);
	init_cmd(&m, DEVMIG_CMD_DEVICE_RESET, 2);
	size_t n = enc(buf, sizeof buf, &m);
	uint32_t sz = 8;
	memcpy(buf + offsetof(struct devmig_hdr, msg_size), &sz, 4);
	ssize_t r = devmig_client_raw(f->c, buf, n, NULL, 0, reply, sizeof reply);
	if (r >= 0) {
		/* An error reply before the drop is fine; it must say EINVAL. */
		struct devmig_hdr h;
		assert_true(r >= (ssize_t)DEVMIG_HDR_SIZE);
		memcpy(&h, reply, sizeof h);
		assert_true(h.flags & DEVMIG_HDR_ERROR);
		assert_int_equal(h.error_no, EINVAL);
	} else {
		assert_int_equal(r, -ECONNRESET);
	}
	check_dropped_then_new_client(f);
	devmig_server_get_stats(f->srv, &after);
	assert_int_equal(after.disconnects_bad, before.disconnects_bad + 1);
}

static void msg_size_above_max_is_e2big_and_resyncs(void **state)
{
	struct fx *f = *state;
	const size_t total = 2u << 20;
	uint8_t *buf = calloc(1, total);
	assert_non_null(buf);
	/* A REGION_WRITE header claiming 2 MiB (max is 1 MiB + 4 KiB), then the 2 MiB. */
	struct devmig_hdr h = { .msg_id = 3, .cmd = DEVMIG_CMD_REGION_WRITE,
				.msg_size = (uint32_t)total, .flags = DEVMIG_HDR_TYPE_COMMAND };
	memcpy(buf, &h, sizeof h);
	/* The body looks like a REGION_WRITE of SCRATCH0, in case it were obeyed. */
	struct devmig_region_access acc = { .offset = REG_SCRATCH0, .region = 0, .count = 4 };
	memcpy(buf + sizeof h, &acc, sizeof acc);
	expect_error(f->c, buf, total, NULL, 0, E2BIG);
	free(buf);
	after_reject(f);
}

/* ---- header ---- */

static void unknown_commands_are_enosys(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	uint8_t buf[256];
	uint16_t cmds[] = { 14, 99 };
	for (size_t i = 0; i < 2; i++) {
		/* Header-only: a DEVICE_RESET renumbered (would clear SCRATCH0 if run). */
		init_cmd(&m, DEVMIG_CMD_DEVICE_RESET, (uint16_t)(10 + i));
		size_t n = enc(buf, sizeof buf, &m);
		memcpy(buf + offsetof(struct devmig_hdr, cmd), &cmds[i], 2);
		expect_error(f->c, buf, n, NULL, 0, ENOSYS);
		after_reject(f);
		/* With a body: the server must skip it and stay in sync. */
		init_cmd(&m, DEVMIG_CMD_REGION_WRITE, (uint16_t)(20 + i));
		uint32_t v = 0;
		m.u.region.acc.offset = REG_SCRATCH0;
		m.u.region.acc.count = 4;
		m.u.region.data = (const uint8_t *)&v;
		n = enc(buf, sizeof buf, &m);
		memcpy(buf + offsetof(struct devmig_hdr, cmd), &cmds[i], 2);
		expect_error(f->c, buf, n, NULL, 0, ENOSYS);
		after_reject(f);
	}
}

static void error_flag_or_errno_on_command_is_einval(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	uint8_t buf[256];
	init_cmd(&m, DEVMIG_CMD_DEVICE_RESET, 30);
	size_t n = enc(buf, sizeof buf, &m);
	uint32_t flags = DEVMIG_HDR_TYPE_COMMAND | DEVMIG_HDR_ERROR;
	memcpy(buf + offsetof(struct devmig_hdr, flags), &flags, 4);
	expect_error(f->c, buf, n, NULL, 0, EINVAL);
	after_reject(f);

	init_cmd(&m, DEVMIG_CMD_DEVICE_RESET, 31);
	n = enc(buf, sizeof buf, &m);
	uint32_t eno = EIO;
	memcpy(buf + offsetof(struct devmig_hdr, error_no), &eno, 4);
	expect_error(f->c, buf, n, NULL, 0, EINVAL);
	after_reject(f);
}

static void reply_type_message_is_ignored(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	uint8_t buf[256], reply[256];
	init_cmd(&m, DEVMIG_CMD_DEVICE_GET_INFO, 40);
	m.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	m.u.device_info = (struct devmig_device_info){ sizeof(struct devmig_device_info), 0, 9, 5 };
	size_t n = enc(buf, sizeof buf, &m);
	send_all(devmig_client_fd(f->c), buf, n);

	/* The next reply read must be the one to this command, not one to the reply above. */
	init_cmd(&m, DEVMIG_CMD_DEVICE_GET_INFO, 0x7777);
	m.u.device_info.argsz = sizeof(struct devmig_device_info);
	n = enc(buf, sizeof buf, &m);
	ssize_t r = devmig_client_raw(f->c, buf, n, NULL, 0, reply, sizeof reply);
	assert_true(r >= (ssize_t)DEVMIG_HDR_SIZE);
	struct devmig_hdr h;
	memcpy(&h, reply, sizeof h);
	assert_int_equal(h.msg_id, 0x7777);
	assert_int_equal(h.cmd, DEVMIG_CMD_DEVICE_GET_INFO);
	assert_false(h.flags & DEVMIG_HDR_ERROR);
	assert_int_equal(h.flags & DEVMIG_HDR_TYPE_MASK, DEVMIG_HDR_TYPE_REPLY);
	after_reject(f);
}

/* ---- argsz ---- */

static void wrong_argsz_is_einval(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;

	init_cmd(&m, DEVMIG_CMD_DEVICE_GET_INFO, 50);
	m.u.device_info.argsz = 8;
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	after_reject(f);

	int mfd = make_memfd(0x1000);
	init_cmd(&m, DEVMIG_CMD_DMA_MAP, 51);
	m.u.dma_map = (struct devmig_dma_map){ .argsz = 31,
					       .flags = DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
					       .offset = 0, .addr = 0x100000, .size = 0x1000 };
	expect_msg_error(f->c, &m, &mfd, 1, EINVAL);
	after_reject(f);
	/* Nothing was mapped: the same range maps now. */
	assert_int_equal(devmig_client_dma_map(f->c, 0x100000, 0x1000,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, mfd, 0, NULL), 0);
	close(mfd);

	init_cmd(&m, DEVMIG_CMD_MIG_DATA_READ, 52);
	m.u.mig_data.md.argsz = 8 + 16 - 1;
	m.u.mig_data.md.size = 16;
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	after_reject(f);
}

static void mig_data_read_short_argsz_in_stop_copy_is_einval(void **state)
{
	/* The same argsz refusal where MIG_DATA_READ is otherwise allowed. */
	struct fx *f = *state;
	struct devmig_msg m;
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_STOP_COPY), 0);
	init_cmd(&m, DEVMIG_CMD_MIG_DATA_READ, 53);
	m.u.mig_data.md.argsz = 8;
	m.u.mig_data.md.size = 16;
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	check_serves(f->c);
	assert_int_equal(get_state(f->c), DEVMIG_STATE_STOP_COPY);
	uint8_t data[4096];
	assert_true(devmig_client_mig_read(f->c, data, sizeof data) > 0);
}

/* ---- indexes, offsets, counts ---- */

static void bad_region_and_irq_index_are_einval(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	region_read_msg(&m, 9, 0, 4);
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	after_reject(f);

	init_cmd(&m, DEVMIG_CMD_DEVICE_GET_IRQ_INFO, 60);
	m.u.irq_info.argsz = sizeof(struct devmig_irq_info);
	m.u.irq_info.index = 5;
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	after_reject(f);
}

static void offset_plus_count_overflow_is_eoverflow(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	region_read_msg(&m, 0, 0xfffffffffffffffeull, 4);
	expect_msg_error(f->c, &m, NULL, 0, EOVERFLOW);
	after_reject(f);
}

static void access_past_region_is_einval(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	region_read_msg(&m, 0, 4094, 4);
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	after_reject(f);
	region_read_msg(&m, 6, 0, 4); /* ROM: the counter has none (size 0) */
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	after_reject(f);
	/* A write past the end must not land anywhere either. */
	uint32_t v = 0;
	init_cmd(&m, DEVMIG_CMD_REGION_WRITE, 61);
	m.u.region.acc = (struct devmig_region_access){ .offset = 4094, .region = 0, .count = 4 };
	m.u.region.data = (const uint8_t *)&v;
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	after_reject(f);
}

static void count_zero_or_above_max_xfer_is_einval(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	region_read_msg(&m, 0, 0, 0);
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	after_reject(f);
	region_read_msg(&m, 0, 0, (1u << 20) + 1);
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	after_reject(f);
}

/* ---- file descriptors ---- */

static void dma_map_with_two_fds_is_einval_and_leaks_nothing(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	int fds[2] = { make_memfd(0x1000), make_memfd(0x1000) };
	int before = count_fds();
	init_cmd(&m, DEVMIG_CMD_DMA_MAP, 70);
	m.u.dma_map = (struct devmig_dma_map){ .argsz = sizeof(struct devmig_dma_map),
					       .flags = DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
					       .offset = 0, .addr = 0x200000, .size = 0x1000 };
	expect_msg_error(f->c, &m, fds, 2, EINVAL);
	after_reject(f); /* a full round trip: the server is done with the message */
	/* The server runs in this process: its copies of both fds are closed. */
	assert_int_equal(count_fds(), before);
	/* Nothing was mapped: a valid map at the same iova succeeds. */
	assert_int_equal(devmig_client_dma_map(f->c, 0x200000, 0x1000,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, fds[0], 0, NULL),
			 0);
	assert_int_equal(devmig_client_dma_unmap(f->c, 0x200000, 0x1000), 0);
	close(fds[0]);
	close(fds[1]);
}

static void set_irqs_with_surplus_eventfd_is_einval(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	int fds[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
	assert_true(fds[0] >= 0 && fds[1] >= 0);
	int before = count_fds();
	init_cmd(&m, DEVMIG_CMD_DEVICE_SET_IRQS, 71);
	m.u.irq_set.set = (struct devmig_irq_set){
		.argsz = sizeof(struct devmig_irq_set),
		.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 1 };
	expect_msg_error(f->c, &m, fds, 2, EINVAL);
	after_reject(f);
	assert_int_equal(count_fds(), before);
	/* The valid form (one eventfd) is accepted on the same connection. */
	assert_int_equal(devmig_client_set_irqs(f->c, VFIO_PCI_MSIX_IRQ_INDEX,
						VFIO_IRQ_SET_DATA_EVENTFD |
							VFIO_IRQ_SET_ACTION_TRIGGER,
						0, 1, fds),
			 0);
	close(fds[0]);
	close(fds[1]);
}

static void device_get_info_with_fd_is_einval(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	int fd = make_memfd(0x1000);
	int before = count_fds();
	init_cmd(&m, DEVMIG_CMD_DEVICE_GET_INFO, 72);
	m.u.device_info.argsz = sizeof(struct devmig_device_info);
	expect_msg_error(f->c, &m, &fd, 1, EINVAL);
	after_reject(f);
	assert_int_equal(count_fds(), before);
	close(fd);
}

/* ---- DMA ---- */

static void dma_map_refusals(void **state)
{
	struct fx *f = *state;
	const uint32_t rw = DEVMIG_DMA_READ | DEVMIG_DMA_WRITE;
	int fd = make_memfd(0x10000);

	assert_int_equal(devmig_client_dma_map(f->c, 0x1001, 0x1000, rw, fd, 0, NULL), -EINVAL);
	after_reject(f);
	assert_int_equal(devmig_client_dma_map(f->c, 0x10000, 0, rw, fd, 0, NULL), -EINVAL);
	after_reject(f);

	assert_int_equal(devmig_client_dma_map(f->c, 0x10000, 0x2000, rw, fd, 0, NULL), 0);
	assert_int_equal(devmig_client_dma_map(f->c, 0x11000, 0x2000, rw, fd, 0x2000, NULL),
			 -EEXIST);
	after_reject(f);
	/* The first mapping is intact: it unmaps exactly once. */
	assert_int_equal(devmig_client_dma_unmap(f->c, 0x10000, 0x2000), 0);

	assert_int_equal(devmig_client_dma_unmap(f->c, 0x40000, 0x1000), -ENOENT);
	after_reject(f);
	assert_int_equal(devmig_client_dma_unmap(f->c, 0x10000, 0x2000), -ENOENT);
	after_reject(f);
	close(fd);
}

static void dma_log_report_before_start_is_einval(void **state)
{
	struct fx *f = *state;
	int fd = make_memfd(0x10000);
	assert_int_equal(devmig_client_dma_map(f->c, 0x10000, 0x10000,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, fd, 0, NULL), 0);
	uint64_t bitmap[1] = { 0 };
	assert_int_equal(devmig_client_log_report(f->c, 0x10000, 0x10000, 4096, bitmap), -EINVAL);
	after_reject(f);
	close(fd);
}

/* ---- DEVICE_FEATURE ---- */

static void mig_state_out_of_range_is_einval(void **state)
{
	struct fx *f = *state;
	expect_set_state_error(f->c, DEVMIG_STATE_COUNT, EINVAL);
	after_reject(f);
}

static void mig_state_error_is_einval(void **state)
{
	struct fx *f = *state;
	expect_set_state_error(f->c, DEVMIG_STATE_ERROR, EINVAL);
	after_reject(f); /* still RUNNING */
}

static void mig_state_pre_copy_unsupported_is_einval(void **state)
{
	struct fx *f = *state;
	expect_set_state_error(f->c, DEVMIG_STATE_PRE_COPY, EINVAL);
	after_reject(f);
	expect_set_state_error(f->c, DEVMIG_STATE_PRE_COPY_P2P, EINVAL);
	after_reject(f);
}

static void feature_get_and_set_without_probe_is_einval(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	struct devmig_feature_mig_state ms = { .device_state = DEVMIG_STATE_STOP };
	feature_msg(&m, DEVMIG_FEATURE_GET | DEVMIG_FEATURE_SET | DEVMIG_FEATURE_MIG_DEVICE_STATE,
		    &ms, sizeof ms, (uint32_t)(sizeof(struct devmig_feature) + sizeof ms));
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	after_reject(f); /* not STOP */
}

static void unknown_feature_is_enotty(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	feature_msg(&m, DEVMIG_FEATURE_GET | 0x1234u, NULL, 0,
		    (uint32_t)sizeof(struct devmig_feature) + 64);
	expect_msg_error(f->c, &m, NULL, 0, ENOTTY);
	after_reject(f);
}

/* ---- migration state ---- */

static void mig_data_read_in_running_is_einval(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	init_cmd(&m, DEVMIG_CMD_MIG_DATA_READ, 80);
	m.u.mig_data.md.argsz = 8 + 4096;
	m.u.mig_data.md.size = 4096;
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	after_reject(f);
}

static void mig_data_write_in_running_is_einval(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	uint8_t data[64];
	memset(data, 0xa5, sizeof data);
	init_cmd(&m, DEVMIG_CMD_MIG_DATA_WRITE, 81);
	m.u.mig_data.md.argsz = 8 + sizeof data;
	m.u.mig_data.md.size = sizeof data;
	m.u.mig_data.data = data;
	expect_msg_error(f->c, &m, NULL, 0, EINVAL);
	after_reject(f);
}

static void pre_copy_from_stop_copy_is_einval(void **state)
{
	struct fx *f = *state;
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_STOP_COPY), 0);
	expect_set_state_error(f->c, DEVMIG_STATE_PRE_COPY, EINVAL);
	check_serves(f->c);
	check_device(f->c, DEVMIG_STATE_STOP_COPY);
}

/* ---- peers ---- */

static void peer_gone_mid_message_keeps_server(void **state)
{
	struct fx *f = *state;
	struct devmig_msg m;
	const size_t dlen = 64 * 1024;
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_RESUMING), 0);
	uint8_t *data = malloc(dlen), *buf = malloc(dlen + 64);
	assert_non_null(data);
	assert_non_null(buf);
	memset(data, 0x5a, dlen);
	init_cmd(&m, DEVMIG_CMD_MIG_DATA_WRITE, 90);
	m.u.mig_data.md.argsz = (uint32_t)(8 + dlen);
	m.u.mig_data.md.size = (uint32_t)dlen;
	m.u.mig_data.data = data;
	size_t n = enc(buf, dlen + 64, &m);
	send_all(devmig_client_fd(f->c), buf, n / 2);
	devmig_client_close(f->c);
	f->c = NULL;
	free(data);
	free(buf);

	f->c = connect_client(f->path);
	assert_int_equal(get_state(f->c), DEVMIG_STATE_RESUMING);
	assert_int_equal(devmig_client_reset(f->c), 0);
	assert_int_equal(get_state(f->c), DEVMIG_STATE_RUNNING);
	check_serves(f->c);
}

static void socket_is_mode_0600(void **state)
{
	struct fx *f = *state;
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
}

/*
 * Child: become uid/gid 65534, connect, send VERSION, wait for the answer.
 * Exit 0: the server hung up; 1: a VERSION reply came; >= 10: something else.
 */
static int run_other_uid_child(const char *path, const void *ver, size_t ver_len)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(10);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa))
			_exit(11);
		(void)!send(fd, ver, ver_len, MSG_NOSIGNAL); /* may fail: already closed */
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, WAIT_MS) != 1)
			_exit(12);
		uint8_t b[4096];
		ssize_t r = read(fd, b, sizeof b);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			_exit(0);
		struct devmig_hdr h;
		if (r >= (ssize_t)sizeof h) {
			memcpy(&h, b, sizeof h);
			if (h.cmd == DEVMIG_CMD_VERSION && !(h.flags & DEVMIG_HDR_ERROR) &&
			    (h.flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_REPLY)
				_exit(1);
		}
		_exit(13);
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void other_uid_is_refused_unless_allowed(void **state)
{
	struct fx *f = *state;
	if (geteuid() != 0) {
		print_message("skipped: needs root to connect as another uid\n");
		skip();
	}
	char err[256] = "", json[512], path2[160];
	struct devmig_caps caps;
	devmig_caps_default(&caps);
	size_t jl = devmig_caps_format(&caps, json, sizeof json);
	assert_true(jl > 0);
	struct devmig_msg m;
	uint8_t ver[1024];
	init_cmd(&m, DEVMIG_CMD_VERSION, 1);
	m.u.version.v.major = DEVMIG_VFIO_USER_MAJOR;
	m.u.version.v.minor = DEVMIG_VFIO_USER_MINOR;
	m.u.version.json = json;
	m.u.version.json_len = jl;
	size_t vlen = enc(ver, sizeof ver, &m);

	assert_int_equal(chmod(f->dir, 0711), 0);
	assert_int_equal(chmod(f->path, 0666), 0);
	/* One client at a time: ours leaves so the server accepts (and refuses) the child. */
	devmig_client_close(f->c);
	f->c = NULL;
	assert_int_equal(run_other_uid_child(f->path, ver, vlen), 0);
	f->c = connect_client(f->path);
	after_reject(f);

	/* A second server that allows other uids serves the same child. */
	struct devmig_device *dev2 = devmig_variant_counter.create(NULL, err, sizeof err);
	assert_non_null(dev2);
	snprintf(path2, sizeof path2, "%s/sock2", f->dir);
	struct devmig_server *srv2 = devmig_server_new(
		dev2, &(struct devmig_server_config){ .socket_path = path2, .allow_other_uids = true },
		err, sizeof err);
	if (!srv2)
		fail_msg("server2: %s", err);
	assert_int_equal(devmig_server_start(srv2), 0);
	assert_int_equal(chmod(path2, 0666), 0);
	assert_int_equal(run_other_uid_child(path2, ver, vlen), 1);
	devmig_server_free(srv2);
	devmig_variant_counter.free(dev2);
	unlink(path2);
	after_reject(f);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(truncated_header_drops_client),
		T(msg_size_below_header_drops_client),
		T(msg_size_above_max_is_e2big_and_resyncs),
		T(unknown_commands_are_enosys),
		T(error_flag_or_errno_on_command_is_einval),
		T(reply_type_message_is_ignored),
		T(wrong_argsz_is_einval),
		T(mig_data_read_short_argsz_in_stop_copy_is_einval),
		T(bad_region_and_irq_index_are_einval),
		T(offset_plus_count_overflow_is_eoverflow),
		T(access_past_region_is_einval),
		T(count_zero_or_above_max_xfer_is_einval),
		T(dma_map_with_two_fds_is_einval_and_leaks_nothing),
		T(set_irqs_with_surplus_eventfd_is_einval),
		T(device_get_info_with_fd_is_einval),
		T(dma_map_refusals),
		T(dma_log_report_before_start_is_einval),
		T(mig_state_out_of_range_is_einval),
		T(mig_state_error_is_einval),
		T(mig_state_pre_copy_unsupported_is_einval),
		T(feature_get_and_set_without_probe_is_einval),
		T(unknown_feature_is_enotty),
		T(mig_data_read_in_running_is_einval),
		T(mig_data_write_in_running_is_einval),
		T(pre_copy_from_stop_copy_is_einval),
		T(peer_gone_mid_message_keeps_server),
		T(socket_is_mode_0600),
		T(other_uid_is_refused_unless_allowed),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
