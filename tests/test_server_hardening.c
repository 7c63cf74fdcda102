/* SPDX-License-Identifier: MIT */
/*
 * No client can crash or hang a server: each case plays one hostile or
 * unlucky client against an in-process server and checks that the server
 * refuses it (or survives it) and goes on serving. Every wait is bounded;
 * a server that hangs shows as a client call timing out.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "devices.h"
#include "devmig/client.h"
#include "devmig/server.h"
#include "fixture.h"
#include "devmig/wire.h"
#include "memblk/memblk_guest.h"

#define IO_TIMEOUT_MS 300u   /* the servers' here: short, so drops show quickly */
#define CLIENT_TMO_MS 5000   /* a client call that takes this long: the server hung */
#define REG_COUNT 0x00
#define REG_THRESHOLD 0x04
#define REG_SCRATCH0 0x08
#define GIOVA 0x100000000ull
#define RING_SIZE (1u << 20)
#define DATA_IOVA (GIOVA + RING_SIZE)
#define DATA_SIZE (1u << 20)

struct fx {
	char dir[FX_PATH_MAX];
	struct fx_server s;
	const char *path; /* s.path */
	struct devmig_device *dev;
};

static void fx_open(struct fx *f, const struct devmig_variant *v, const char *args)
{
	struct devmig_server_config cfg = { .io_timeout_ms = IO_TIMEOUT_MS,
					    .verbose = getenv("DEVMIG_TEST_VERBOSE") != NULL };

	memset(f, 0, sizeof(*f));
	fx_tmpdir(f->dir, "hard");
	fx_serve_variant_cfg(&f->s, f->dir, "dev", v, args, &cfg);
	f->path = f->s.path;
	f->dev = f->s.dev;
}

static void fx_close(struct fx *f)
{
	fx_unserve(&f->s);
	fx_rmdir(f->dir);
}

static struct devmig_client *client(struct fx *f)
{
	struct devmig_client_config cc = { .timeout_ms = CLIENT_TMO_MS };
	return fx_connect(&f->s, &cc);
}

/* A client connects within ms, however long the server takes to drop another. */
static struct devmig_client *client_within(struct fx *f, int ms)
{
	uint64_t end = fx_now_ms() + (uint64_t)ms;
	char err[256] = "";
	struct devmig_client_config cc = { .timeout_ms = CLIENT_TMO_MS };

	for (;;) {
		struct devmig_client *c = devmig_client_connect(f->path, &cc, err, sizeof(err));
		if (c)
			return c;
		if (fx_now_ms() > end)
			fail_msg("no client got in within %d ms: %s", ms, err);
		poll(NULL, 0, 20);
	}
}

/* A bare socket to the server. */
static int raw_connect(struct fx *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static size_t enc(void *buf, size_t cap, struct devmig_msg *m, uint16_t cmd, uint16_t id,
		  uint32_t flags)
{
	enum devmig_wire_err e = DEVMIG_WIRE_OK;

	m->hdr.cmd = cmd;
	m->hdr.msg_id = id;
	m->hdr.flags = DEVMIG_HDR_TYPE_COMMAND | flags;
	size_t n = devmig_encode(buf, cap, m, &e);
	if (!n)
		fail_msg("encode cmd %u: %s", cmd, devmig_wire_strerror(e));
	return n;
}

static size_t enc_version(void *buf, size_t cap, uint16_t id, uint32_t flags)
{
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
	struct devmig_msg m;

	memset(&m, 0, sizeof(m));
	m.u.version.v.major = DEVMIG_VFIO_USER_MAJOR;
	m.u.version.v.minor = DEVMIG_VFIO_USER_MINOR;
	m.u.version.json = json;
	m.u.version.json_len = sizeof(json) - 1; /* the encoder adds the NUL */
	return enc(buf, cap, &m, DEVMIG_CMD_VERSION, id, flags);
}

static void send_all(int fd, const void *buf, size_t len)
{
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* The next whole message's header from fd (bounded); its body is skipped. */
static struct devmig_hdr read_reply(int fd)
{
	struct devmig_hdr h;
	uint8_t *p = (uint8_t *)&h;
	size_t got = 0;
	uint64_t end = fx_now_ms() + CLIENT_TMO_MS;

	while (got < sizeof(h)) {
		struct pollfd pf = { fd, POLLIN, 0 };
		if (poll(&pf, 1, 100) == 1) {
			ssize_t k = recv(fd, p + got, sizeof(h) - got, 0);
			if (k <= 0)
				fail_msg("the server hung up (%s)", k ? strerror(errno) : "EOF");
			got += (size_t)k;
		}
		if (fx_now_ms() > end)
			fail_msg("no reply within %d ms", CLIENT_TMO_MS);
	}
	for (size_t left = h.msg_size - sizeof(h); left;) {
		uint8_t skip[4096];
		ssize_t k = recv(fd, skip, left < sizeof(skip) ? left : sizeof(skip), 0);
		assert_true(k > 0);
		left -= (size_t)k;
	}
	return h;
}

static void set_irq_fd(struct devmig_client *c, int fd, int want)
{
	int rc = devmig_client_set_irqs(c, VFIO_PCI_MSIX_IRQ_INDEX,
					VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0,
					1, &fd);
	if (rc != want)
		fail_msg("SET_IRQS with fd %d: %d (%s), wanted %d", fd, rc, strerror(-rc), want);
}

static void trigger_vector0(struct devmig_client *c)
{
	assert_int_equal(devmig_client_set_irqs(c, VFIO_PCI_MSIX_IRQ_INDEX,
						VFIO_IRQ_SET_DATA_NONE |
							VFIO_IRQ_SET_ACTION_TRIGGER,
						0, 1, NULL),
			 0);
}

/* ---- interrupts ---- */

static void only_eventfds_become_interrupts(void **state)
{
	(void)state;
	struct fx f;
	fx_open(&f, &devmig_variant_counter, NULL);
	struct devmig_client *c = client(&f);

	/* A pipe whose reader is gone: writing it would raise SIGPIPE (this test
	 * process does not ignore it) and kill the server with us. */
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	set_irq_fd(c, p[1], -EINVAL);
	trigger_vector0(c);
	close(p[1]);

	/* A pipe nobody reads: the 8193rd write would block. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	set_irq_fd(c, p[1], -EINVAL);
	for (int i = 0; i < 10000; i++)
		trigger_vector0(c);
	close(p[0]);
	close(p[1]);

	/* A socket, a regular file, another anonymous inode: refused too. */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	set_irq_fd(c, sv[0], -EINVAL);
	close(sv[0]);
	close(sv[1]);
	int mfd = memfd_create("not-an-eventfd", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	set_irq_fd(c, mfd, -EINVAL);
	close(mfd);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	assert_true(tfd >= 0);
	set_irq_fd(c, tfd, -EINVAL);
	close(tfd);

	/* An eventfd is taken and signalled. */
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	set_irq_fd(c, efd, 0);
	trigger_vector0(c);
	uint64_t v = 0;
	assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
	assert_int_equal(v, 1);
	close(efd);
	devmig_client_close(c);
	fx_close(&f);
}

static void a_saturated_eventfd_never_blocks_the_server(void **state)
{
	(void)state;
	struct fx f;
	fx_open(&f, &devmig_variant_counter, NULL);
	struct devmig_client *c = client(&f);

	/* Blocking mode, counter at its maximum: one more write would wait for a reader. */
	int efd = eventfd(0, EFD_CLOEXEC);
	uint64_t max = 0xfffffffffffffffeull;
	assert_int_equal(write(efd, &max, sizeof(max)), sizeof(max));
	assert_int_equal(mbg_client_enable_msix(c, efd), 0);
	for (int i = 0; i < 100; i++)
		trigger_vector0(c); /* the client's own triggers */
	/* The device's: COUNT reaching THRESHOLD fires MSI-X vector 0. */
	uint32_t one = 1, thr = 1;
	assert_int_equal(devmig_client_region_write(c, 0, REG_THRESHOLD, &thr, 4), 0);
	for (int i = 0; i < 100; i++) {
		uint32_t cur = 0;
		assert_int_equal(devmig_client_region_read(c, 0, REG_COUNT, &cur, 4), 0);
		uint32_t back = (uint32_t)-cur; /* COUNT adds: bring it to 0, then to 1 */
		assert_int_equal(devmig_client_region_write(c, 0, REG_COUNT, &back, 4), 0);
		assert_int_equal(devmig_client_region_write(c, 0, REG_COUNT, &one, 4), 0);
	}
	/* Still answering, and the counter still reads the maximum. */
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	uint64_t v = 0;
	assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
	assert_true(v == max);
	close(efd);
	devmig_client_close(c);
	fx_close(&f);
}

/* ---- DMA mappings ---- */

static void a_mapping_larger_than_its_file_is_refused(void **state)
{
	(void)state;
	struct fx f;
	fx_open(&f, &devmig_variant_counter, NULL);
	struct devmig_client *c = client(&f);
	int mfd = memfd_create("small", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	assert_int_equal(ftruncate(mfd, 4096), 0);

	assert_int_equal(devmig_client_dma_map(c, GIOVA, 4u << 20, DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
					       mfd, 0, NULL),
			 -EINVAL);
	/* Inside the file but from an offset past it. */
	assert_int_equal(devmig_client_dma_map(c, GIOVA, 4096, DEVMIG_DMA_READ, mfd, 8192, NULL),
			 -EINVAL);
	/* What the file holds is fine. */
	assert_int_equal(devmig_client_dma_map(c, GIOVA, 4096, DEVMIG_DMA_READ, mfd, 0, NULL), 0);
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	close(mfd);
	devmig_client_close(c);
	fx_close(&f);
}

struct guest {
	int ring_fd, data_fd;
	uint8_t *ring, *data;
	int efd;
	struct mbg g;
};

static void guest_open(struct guest *gs, struct devmig_client *c)
{
	gs->ring_fd = memfd_create("rings", MFD_CLOEXEC);
	gs->data_fd = memfd_create("data", MFD_CLOEXEC);
	assert_true(gs->ring_fd >= 0 && gs->data_fd >= 0);
	assert_int_equal(ftruncate(gs->ring_fd, RING_SIZE), 0);
	assert_int_equal(ftruncate(gs->data_fd, DATA_SIZE), 0);
	gs->ring = mmap(NULL, RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gs->ring_fd, 0);
	assert_true(gs->ring != MAP_FAILED);
	assert_int_equal(devmig_client_dma_map(c, GIOVA, RING_SIZE,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, gs->ring_fd, 0,
					       NULL),
			 0);
	assert_int_equal(devmig_client_dma_map(c, DATA_IOVA, DATA_SIZE,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, gs->data_fd, 0,
					       NULL),
			 0);
	gs->efd = -1;
	struct mbg_mmio io = mbg_mmio_client(c);
	assert_int_equal(mbg_init(&gs->g, &io, gs->ring, GIOVA, RING_SIZE, -1), 0);
	uint32_t err = 0;
	assert_int_equal(mbg_setup_queues(&gs->g, GIOVA, 64, GIOVA + 0x10000, 64, &err), 0);
}

static void guest_close(struct guest *gs)
{
	mbg_destroy(&gs->g);
	munmap(gs->ring, RING_SIZE);
	close(gs->ring_fd);
	close(gs->data_fd);
}

static void a_file_shrunk_under_a_mapping_fails_the_access_not_the_server(void **state)
{
	(void)state;
	struct fx f;
	fx_open(&f, &devmig_variant_memblk, "size=16M");
	struct devmig_client *c = client(&f);
	struct guest gs;
	guest_open(&gs, c);

	/* The data buffer's file is cut to nothing after it was mapped. */
	assert_int_equal(mbg_write(&gs.g, 0, 4, DATA_IOVA, CLIENT_TMO_MS), MB_SC_OK);
	assert_int_equal(ftruncate(gs.data_fd, 0), 0);
	assert_int_equal(mbg_write(&gs.g, 0, 4, DATA_IOVA, CLIENT_TMO_MS), MB_SC_DMA_ERROR);
	assert_int_equal(mbg_read(&gs.g, 0, 4, DATA_IOVA, CLIENT_TMO_MS), MB_SC_DMA_ERROR);
	/* Memory still there works on. */
	struct mb_identify id;
	assert_int_equal(mbg_identify(&gs.g, GIOVA + 0x20000, &id, CLIENT_TMO_MS), MB_SC_OK);
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	guest_close(&gs);
	devmig_client_close(c);
	fx_close(&f);
}

/* ---- clients that hold the server ---- */

static void a_second_client_is_told_busy_at_once(void **state)
{
	(void)state;
	struct fx f;
	fx_open(&f, &devmig_variant_counter, NULL);
	struct devmig_client *a = client(&f);
	char err[256] = "";
	struct devmig_client_config cc = { .timeout_ms = 20000 };

	uint64_t t0 = fx_now_ms();
	struct devmig_client *b = devmig_client_connect(f.path, &cc, err, sizeof(err));
	uint64_t took = fx_now_ms() - t0;
	assert_null(b);
	if (!strstr(err, strerror(EBUSY)))
		fail_msg("the second client was not told busy: %s", err);
	/* Told at once: well inside its own 20 s timeout. */
	if (took > 5000)
		fail_msg("the second client waited %llu ms", (unsigned long long)took);
	/* The first goes on; once it leaves the next one gets in. */
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(a, &st), 0);
	devmig_client_close(a);
	devmig_client_close(client_within(&f, CLIENT_TMO_MS));
	fx_close(&f);
}

static void a_silent_connection_is_dropped(void **state)
{
	(void)state;
	struct fx f;
	fx_open(&f, &devmig_variant_counter, NULL);
	int fd = raw_connect(&f); /* and never a byte */
	devmig_client_close(client_within(&f, 20 * IO_TIMEOUT_MS));
	/* The server hung up on it. */
	char b;
	struct pollfd pf = { fd, POLLIN, 0 };
	assert_int_equal(poll(&pf, 1, CLIENT_TMO_MS), 1);
	assert_true(recv(fd, &b, 1, 0) <= 0);
	close(fd);
	fx_close(&f);
}

static void a_message_stalled_half_way_is_dropped(void **state)
{
	(void)state;
	struct fx f;
	fx_open(&f, &devmig_variant_counter, NULL);
	int fd = raw_connect(&f);
	uint8_t buf[512];
	send_all(fd, buf, enc_version(buf, sizeof(buf), 0, 0));
	struct devmig_hdr h = read_reply(fd);
	assert_false(h.flags & DEVMIG_HDR_ERROR);
	/* Half a header, then nothing. */
	struct devmig_msg m;
	memset(&m, 0, sizeof(m));
	size_t n = enc(buf, sizeof(buf), &m, DEVMIG_CMD_DEVICE_GET_INFO, 1, 0);
	assert_true(n > 8);
	send_all(fd, buf, 8);
	devmig_client_close(client_within(&f, 20 * IO_TIMEOUT_MS));
	close(fd);
	fx_close(&f);
}

static void a_client_that_never_reads_is_dropped(void **state)
{
	(void)state;
	struct fx f;
	fx_open(&f, &devmig_variant_counter, NULL);
	int fd = raw_connect(&f);
	uint8_t buf[512];
	send_all(fd, buf, enc_version(buf, sizeof(buf), 0, 0));
	(void)read_reply(fd);
	/* Config space reads, 4 KiB answers each, and never a read of them:
	 * far more than the socket buffers hold. */
	struct devmig_msg m;
	memset(&m, 0, sizeof(m));
	m.u.region.acc.region = VFIO_PCI_CONFIG_REGION_INDEX;
	m.u.region.acc.count = 4096;
	size_t n = enc(buf, sizeof(buf), &m, DEVMIG_CMD_REGION_READ, 1, 0);
	/* Until the server stops taking them (it is stuck, or it dropped us). */
	for (int i = 0; i < 100000; i++) {
		ssize_t k = send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && errno == EAGAIN) {
			struct pollfd pf = { fd, POLLOUT, 0 };
			if (poll(&pf, 1, 2 * IO_TIMEOUT_MS) == 1 && !(pf.revents & (POLLHUP | POLLERR)))
				continue;
			break;
		}
		if (k < 0)
			break;
		assert_int_equal(k, n);
	}
	devmig_client_close(client_within(&f, 40 * IO_TIMEOUT_MS));
	close(fd);
	fx_close(&f);
}

/* ---- NO_REPLY ---- */

static void no_reply_is_honoured(void **state)
{
	(void)state;
	struct fx f;
	fx_open(&f, &devmig_variant_counter, NULL);
	int fd = raw_connect(&f);
	uint8_t buf[4096];
	size_t n = 0;
	struct devmig_msg m;

	/* VERSION, REGION_INFO and DEVICE_FEATURE without replies, then one with. */
	n += enc_version(buf + n, sizeof(buf) - n, 1, DEVMIG_HDR_NO_REPLY);
	memset(&m, 0, sizeof(m));
	m.u.region_info.info.argsz = sizeof(struct devmig_region_info);
	m.u.region_info.info.index = 0;
	n += enc(buf + n, sizeof(buf) - n, &m, DEVMIG_CMD_DEVICE_GET_REGION_INFO, 2,
		 DEVMIG_HDR_NO_REPLY);
	memset(&m, 0, sizeof(m));
	m.u.feature.f.argsz = sizeof(struct devmig_feature) + 8;
	m.u.feature.f.flags = DEVMIG_FEATURE_GET | DEVMIG_FEATURE_MIGRATION;
	n += enc(buf + n, sizeof(buf) - n, &m, DEVMIG_CMD_DEVICE_FEATURE, 3, DEVMIG_HDR_NO_REPLY);
	memset(&m, 0, sizeof(m));
	m.u.device_info.argsz = sizeof(struct devmig_device_info);
	n += enc(buf + n, sizeof(buf) - n, &m, DEVMIG_CMD_DEVICE_GET_INFO, 4, 0);
	send_all(fd, buf, n);

	struct devmig_hdr h = read_reply(fd);
	if (h.msg_id != 4 || h.cmd != DEVMIG_CMD_DEVICE_GET_INFO)
		fail_msg("first reply is to msg %u (cmd %u), not to the only command that asked",
			 h.msg_id, h.cmd);
	assert_false(h.flags & DEVMIG_HDR_ERROR);
	close(fd);
	fx_close(&f);
}

/* ---- DMA through messages ---- */

struct dma_rig {
	struct fx f;
	struct devmig_client *c;
	uint8_t *mem; /* guest memory the client serves by DMA_READ/WRITE */
	struct mbg g;
};

static void a_state_change_is_not_stalled_by_a_dma_wait(void **state)
{
	(void)state;
	struct dma_rig r;
	fx_open(&r.f, &devmig_variant_memblk, "size=16M");
	/* 4 KiB per DMA message: the write below takes 16 round trips, which
	 * only go on while this client is inside a call. */
	char cerr[256] = "";
	struct devmig_client_config cc = { .timeout_ms = CLIENT_TMO_MS * 4,
					   .max_data_xfer_size = 4096 };
	r.c = devmig_client_connect(r.f.path, &cc, cerr, sizeof(cerr));
	if (!r.c)
		fail_msg("connect: %s", cerr);
	r.mem = mmap(NULL, RING_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(r.mem != MAP_FAILED);
	assert_int_equal(devmig_client_dma_map(r.c, GIOVA, RING_SIZE,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, -1, 0, r.mem),
			 0);
	struct mbg_mmio io = mbg_mmio_client(r.c);
	assert_int_equal(mbg_init(&r.g, &io, r.mem, GIOVA, RING_SIZE, -1), 0);
	uint32_t err = 0;
	assert_int_equal(mbg_setup_queues(&r.g, GIOVA, 64, GIOVA + 0x10000, 64, &err), 0);

	/* A write the device fetches by DMA_READ messages: rung, not waited for. */
	struct mb_sqe e = { .opcode = MB_OP_WRITE, .tag = 7, .lba = 0, .nblocks = 16,
			    .buf = GIOVA + 0x40000, .buf_len = 16 * MB_BLOCK_SIZE };
	assert_int_equal(mbg_submit(&r.g, &e), 0);
	/* The doorbell's answer came after a DMA round trip or two at most: the
	 * worker is now blocked for our reply to the next one. */

	/* Stopping the device waits for that worker; our client answers its DMA
	 * while it waits for the state change, and the server must read it. */
	uint64_t t0 = fx_now_ms();
	assert_int_equal(devmig_client_set_state(r.c, DEVMIG_STATE_STOP), 0);
	uint64_t took = fx_now_ms() - t0;
	if (took >= 5000)
		fail_msg("RUNNING -> STOP took %llu ms waiting for a DMA reply",
			 (unsigned long long)took);
	assert_int_equal(devmig_client_set_state(r.c, DEVMIG_STATE_RUNNING), 0);
	/* The write completed, and well. */
	struct mb_cqe cqe;
	uint64_t end = fx_now_ms() + CLIENT_TMO_MS;
	int got = 0;
	while (!got && fx_now_ms() < end) {
		got = mbg_reap(&r.g, &cqe, 1);
		assert_true(got >= 0);
		if (!got)
			poll(NULL, 0, 5);
	}
	assert_int_equal(got, 1);
	assert_int_equal(cqe.tag, 7);
	assert_int_equal(cqe.status, MB_SC_OK);

	mbg_destroy(&r.g);
	devmig_client_close(r.c);
	munmap(r.mem, RING_SIZE);
	fx_close(&r.f);
}

/* ---- the socket path ---- */

static void the_socket_path_is_never_taken_from_another(void **state)
{
	(void)state;
	struct fx f;
	fx_open(&f, &devmig_variant_counter, NULL);
	char err[256] = "";
	struct devmig_device *dev2 = devmig_variant_counter.create(NULL, err, sizeof(err));
	assert_non_null(dev2);

	/* A live server's socket: refused, and the first keeps serving. */
	struct devmig_server_config cfg = { .socket_path = f.path };
	struct devmig_server *s2 = devmig_server_new(dev2, &cfg, err, sizeof(err));
	assert_null(s2);
	assert_non_null(strstr(err, "already answers"));
	devmig_client_close(client(&f));

	/* A regular file: refused and left as it is. */
	char file[160];
	snprintf(file, sizeof(file), "%s/a-file", f.dir);
	FILE *fp = fopen(file, "w");
	assert_non_null(fp);
	fputs("keep me", fp);
	fclose(fp);
	cfg.socket_path = file;
	assert_null(devmig_server_new(dev2, &cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "not a socket"));
	assert_int_equal(access(file, F_OK), 0);
	unlink(file);

	/* A stale socket (its server died) is replaced. */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/stale.sock", f.dir) >=
	    (int)sizeof(sa.sun_path))
		fail_msg("the temporary folder's name is too long for a socket: %s", f.dir);
	const char *stale = sa.sun_path;
	int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(sfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(sfd); /* bound, never listening: nobody answers */
	cfg.socket_path = stale;
	s2 = devmig_server_new(dev2, &cfg, err, sizeof(err));
	if (!s2)
		fail_msg("a stale socket was not replaced: %s", err);
	assert_int_equal(devmig_server_start(s2), 0);

	/* The second server's path taken over after it: freeing the second must
	 * not remove a socket that is no longer its own. */
	unlink(stale);
	struct devmig_device *dev3 = devmig_variant_counter.create(NULL, err, sizeof(err));
	struct devmig_server *s3 = devmig_server_new(dev3, &cfg, err, sizeof(err));
	if (!s3)
		fail_msg("third server: %s", err);
	assert_int_equal(devmig_server_start(s3), 0);
	devmig_server_free(s2);
	assert_int_equal(access(stale, F_OK), 0);
	devmig_server_free(s3);
	assert_int_equal(access(stale, F_OK), -1); /* its own: removed */
	devmig_variant_counter.free(dev3);
	devmig_variant_counter.free(dev2);
	fx_close(&f);
}

int main(void)
{
	/* Deliberately not ignoring SIGPIPE: a server that raised it would kill the test. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(only_eventfds_become_interrupts),
		cmocka_unit_test(a_saturated_eventfd_never_blocks_the_server),
		cmocka_unit_test(a_mapping_larger_than_its_file_is_refused),
		cmocka_unit_test(a_file_shrunk_under_a_mapping_fails_the_access_not_the_server),
		cmocka_unit_test(a_second_client_is_told_busy_at_once),
		cmocka_unit_test(a_silent_connection_is_dropped),
		cmocka_unit_test(a_message_stalled_half_way_is_dropped),
		cmocka_unit_test(a_client_that_never_reads_is_dropped),
		cmocka_unit_test(no_reply_is_honoured),
		cmocka_unit_test(a_state_change_is_not_stalled_by_a_dma_wait),
		cmocka_unit_test(the_socket_path_is_never_taken_from_another),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
