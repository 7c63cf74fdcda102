/* SPDX-License-Identifier: MIT */
/*
 * A bounded socket-level fuzz run: random and mutated vfio-user messages,
 * with random file descriptors (eventfds, pipes, sockets, memfds of any
 * size, /dev/null), against in-process servers of the counter and memblk
 * devices. Batches of messages on one connection, then a probe: a proper
 * client must get in and be answered. A crash, a sanitizer report or a
 * probe that fails ends the test with the seed and batch to replay.
 *
 * Some batches play a memblk driver first (guest memory mapped, rings set
 * up, requests rung) and then shrink the memory's file under the device, so
 * the device's DMA meets hostile memory as well as hostile messages.
 *
 * DEVMIG_SOCKET_FUZZ_SECONDS (default 20) bounds the run;
 * DEVMIG_SOCKET_FUZZ_SEED replays a seed (default: the time).
 */
#include <errno.h>
#include <fcntl.h>
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
#include "devmig/wire.h"
#include "fixture.h"
#include "memblk/memblk_hw.h"

#define GIOVA 0x100000000ull
#define MSGS_PER_BATCH 150
#define MAXMSG (70u << 10)
#define NPOOL 10

static uint64_t below(uint64_t *s, uint64_t n)
{
	return n ? fx_rnd(s) % n : 0;
}

/* ---- descriptors to attach ---- */

struct pool {
	int fd[NPOOL];
	int memfd[3];
};

static void pool_open(struct pool *p, uint64_t *s)
{
	int pp[2], sv[2];
	p->fd[0] = eventfd(0, EFD_CLOEXEC);
	p->fd[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	/* One at its maximum: a blocking write to it would wait for a reader. */
	uint64_t max = 0xfffffffffffffffeull;
	assert_int_equal(write(p->fd[0], &max, sizeof(max)), sizeof(max));
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	p->fd[2] = pp[1];
	close(pp[0]); /* a pipe nobody reads: SIGPIPE bait */
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	p->fd[3] = pp[0];
	p->fd[4] = pp[1];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p->fd[5] = sv[0];
	close(sv[1]);
	p->fd[6] = open("/dev/null", O_RDWR | O_CLOEXEC);
	static const off_t sizes[] = { 0, 4096, 65536, 2u << 20 };
	for (int i = 0; i < 3; i++) {
		p->memfd[i] = memfd_create("fuzz", MFD_CLOEXEC);
		assert_true(p->memfd[i] >= 0);
		assert_int_equal(ftruncate(p->memfd[i], sizes[below(s, 4)]), 0);
		p->fd[7 + i] = p->memfd[i];
	}
	for (int i = 0; i < NPOOL; i++)
		assert_true(p->fd[i] >= 0);
}

static void pool_close(struct pool *p)
{
	for (int i = 0; i < NPOOL; i++)
		close(p->fd[i]);
}

/* ---- messages ---- */

struct out {
	uint8_t *b;
	size_t n;
	int fds[4];
	unsigned nfds;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->n + n > MAXMSG)
		n = MAXMSG - o->n;
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

static void put32(struct out *o, uint32_t v) { put(o, &v, 4); }
static void put64(struct out *o, uint64_t v) { put(o, &v, 8); }

/* A value usually sensible, sometimes anything. */
static uint64_t val(uint64_t *s, uint64_t sensible)
{
	switch (below(s, 8)) {
	case 0: return fx_rnd(s);
	case 1: return 0;
	case 2: return sensible + below(s, 3) - 1;
	default: return sensible;
	}
}

static uint64_t addr(uint64_t *s)
{
	return below(s, 6) ? GIOVA + below(s, 512) * 4096 : fx_rnd(s);
}

static void attach(struct out *o, uint64_t *s, struct pool *p, unsigned max)
{
	unsigned n = (unsigned)below(s, max + 1);
	for (unsigned i = 0; i < n && o->nfds < 4; i++)
		o->fds[o->nfds++] = p->fd[below(s, NPOOL)];
}

static const char *const jsons[] = {
	"{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576}}",
	"{\"capabilities\":{\"max_msg_fds\":16,\"devmig\":{\"precopy_info\":true,"
	"\"mig_status\":true,\"compat\":true}}}",
	"{}", "", "{\"capabilities\":{\"max_data_xfer_size\":1}}",
	"{\"capabilities\":{\"max_msg_fds\":-1,\"pgsizes\":\"x\"}}", "[[[[[[[[[[",
	"{\"capabilities\":{\"max_data_xfer_size\":18446744073709551615}}",
};

/* One message (maybe a broken one) into o; its header first. */
static void gen(uint64_t *s, struct out *o, struct pool *p, uint16_t id)
{
	static const uint16_t cmds[] = { 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 10, 11, 12, 13,
					 15, 16, 16, 16, 16, 17, 18, 18, 14, 19, 0, 0xffff };
	uint16_t cmd = cmds[below(s, sizeof(cmds) / sizeof(cmds[0]))];
	uint32_t flags = below(s, 10) ? DEVMIG_HDR_TYPE_COMMAND : (uint32_t)below(s, 64);
	if (!below(s, 8))
		flags |= DEVMIG_HDR_NO_REPLY;
	if (cmd == 11 || cmd == 12)
		flags = DEVMIG_HDR_TYPE_REPLY | (below(s, 5) ? 0 : DEVMIG_HDR_ERROR);
	struct devmig_hdr h = { .msg_id = below(s, 4) ? id : (uint16_t)fx_rnd(s), .cmd = cmd,
				.flags = flags, .error_no = below(s, 10) ? 0 : (uint32_t)fx_rnd(s) };
	o->n = 0;
	o->nfds = 0;
	put(o, &h, sizeof(h));
	switch (cmd) {
	case DEVMIG_CMD_VERSION: {
		uint16_t v[2] = { (uint16_t)val(s, 0), (uint16_t)val(s, 2) };
		const char *j = jsons[below(s, sizeof(jsons) / sizeof(jsons[0]))];
		put(o, v, 4);
		put(o, j, strlen(j) + (below(s, 4) ? 1 : 0));
		break;
	}
	case DEVMIG_CMD_DMA_MAP:
		put32(o, (uint32_t)val(s, 32));
		put32(o, (uint32_t)val(s, 3));
		put64(o, below(s, 4) ? 0 : val(s, 4096));
		put64(o, addr(s));
		put64(o, val(s, 4096ull << below(s, 10)));
		attach(o, s, p, 1);
		if (below(s, 2) && o->nfds < 4)
			o->fds[o->nfds++] = p->memfd[below(s, 3)];
		break;
	case DEVMIG_CMD_DMA_UNMAP:
		put32(o, (uint32_t)val(s, 24));
		put32(o, (uint32_t)val(s, below(s, 2)));
		put64(o, addr(s));
		put64(o, val(s, 4096ull << below(s, 10)));
		break;
	case DEVMIG_CMD_DEVICE_GET_INFO:
	case DEVMIG_CMD_DEVICE_GET_IRQ_INFO:
	case DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS:
		put32(o, (uint32_t)val(s, cmd == DEVMIG_CMD_DEVICE_GET_INFO ? 16 : 16));
		put32(o, (uint32_t)val(s, 0));
		put32(o, (uint32_t)val(s, below(s, 10)));
		put32(o, (uint32_t)val(s, below(s, 4)));
		break;
	case DEVMIG_CMD_DEVICE_GET_REGION_INFO:
		put32(o, (uint32_t)val(s, below(s, 2) ? 32 : 512));
		put32(o, (uint32_t)val(s, 0));
		put32(o, (uint32_t)val(s, below(s, 10)));
		put32(o, 0);
		put64(o, 0);
		put64(o, 0);
		break;
	case DEVMIG_CMD_DEVICE_SET_IRQS: {
		static const uint32_t data[] = { VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_BOOL,
						 VFIO_IRQ_SET_DATA_EVENTFD };
		static const uint32_t act[] = { VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_UNMASK,
						VFIO_IRQ_SET_ACTION_TRIGGER };
		uint32_t d = data[below(s, 3)], count = (uint32_t)below(s, 4);
		put32(o, (uint32_t)val(s, 20 + (d == VFIO_IRQ_SET_DATA_BOOL ? count : 0)));
		put32(o, (uint32_t)val(s, d | act[below(s, 3)]));
		put32(o, (uint32_t)val(s, below(s, 6)));
		put32(o, (uint32_t)val(s, 0));
		put32(o, count);
		for (uint32_t i = 0; d == VFIO_IRQ_SET_DATA_BOOL && i < count; i++) {
			uint8_t b = (uint8_t)below(s, 2);
			put(o, &b, 1);
		}
		if (d == VFIO_IRQ_SET_DATA_EVENTFD)
			attach(o, s, p, count);
		break;
	}
	case DEVMIG_CMD_REGION_READ:
	case DEVMIG_CMD_REGION_WRITE: {
		uint32_t region = (uint32_t)val(s, below(s, 4) ? 0 : below(s, 10));
		uint32_t count = (uint32_t)val(s, below(s, 3) ? 4 : 1u << below(s, 13));
		put64(o, val(s, below(s, 3) ? below(s, 26) * 4 : below(s, 4096)));
		put32(o, region);
		put32(o, count);
		if (cmd == DEVMIG_CMD_REGION_WRITE) {
			size_t n = count < 8192 ? count : below(s, 64);
			for (size_t i = 0; i < n; i += 8)
				put64(o, below(s, 2) ? fx_rnd(s) : GIOVA + below(s, 64) * 64);
		}
		break;
	}
	case DEVMIG_CMD_REGION_WRITE_MULTI: {
		uint64_t n = below(s, 5);
		put64(o, val(s, n));
		for (uint64_t i = 0; i < n; i++) {
			put64(o, below(s, 26) * 4);
			put32(o, (uint32_t)val(s, 0));
			put32(o, (uint32_t)val(s, 4));
			put64(o, fx_rnd(s));
		}
		break;
	}
	case DEVMIG_CMD_DEVICE_FEATURE: {
		static const uint32_t idx[] = { 1, 2, 6, 7, 8, 9, 0xde01, 0xde02, 0xde03, 3 };
		static const uint32_t ops[] = { DEVMIG_FEATURE_GET, DEVMIG_FEATURE_SET,
						DEVMIG_FEATURE_PROBE | DEVMIG_FEATURE_GET };
		uint32_t i = idx[below(s, sizeof(idx) / sizeof(idx[0]))];
		uint32_t op = ops[below(s, 3)];
		size_t before = o->n;
		put32(o, 0);
		put32(o, (uint32_t)val(s, i | op));
		if (i == DEVMIG_FEATURE_MIG_DEVICE_STATE && op == DEVMIG_FEATURE_SET) {
			put32(o, (uint32_t)val(s, below(s, 8)));
			put32(o, 0);
		} else if (i == DEVMIG_FEATURE_DMA_LOGGING_START) {
			uint32_t n = (uint32_t)below(s, 3);
			put64(o, val(s, 4096));
			put32(o, n);
			put32(o, 0);
			for (uint32_t k = 0; k < n; k++) {
				put64(o, addr(s));
				put64(o, val(s, 4096ull << below(s, 9)));
			}
		} else if (i == DEVMIG_FEATURE_DMA_LOGGING_REPORT) {
			put64(o, addr(s));
			put64(o, val(s, 4096ull << below(s, 12)));
			put64(o, val(s, 4096));
		} else if (below(s, 3) == 0) {
			put64(o, fx_rnd(s));
		}
		uint32_t argsz = (uint32_t)val(s, o->n - before);
		memcpy(o->b + before, &argsz, 4);
		break;
	}
	case DEVMIG_CMD_MIG_DATA_READ:
		put32(o, (uint32_t)val(s, 8));
		put32(o, (uint32_t)val(s, 1u << below(s, 21)));
		break;
	case DEVMIG_CMD_MIG_DATA_WRITE: {
		uint32_t n = (uint32_t)below(s, 4096);
		put32(o, (uint32_t)val(s, 8 + n));
		put32(o, (uint32_t)val(s, n));
		for (uint32_t k = 0; k < n; k += 8)
			put64(o, below(s, 4) ? fx_rnd(s) : 0);
		break;
	}
	case DEVMIG_CMD_DMA_READ:
	case DEVMIG_CMD_DMA_WRITE: {
		uint64_t n = below(s, 256);
		put64(o, addr(s));
		put64(o, val(s, n));
		for (uint64_t k = 0; k < n; k += 8)
			put64(o, fx_rnd(s));
		break;
	}
	default:
		for (uint64_t k = below(s, 64); k; k--)
			put(o, &k, 1);
		break;
	}
	if (!below(s, 12))
		attach(o, s, p, 2); /* descriptors where none belong */
	uint32_t size = (uint32_t)o->n;
	memcpy(o->b + 4, &size, 4);
	/* Mutations: bits, bytes, the length, the size field. */
	switch (below(s, 10)) {
	case 0:
		for (uint64_t k = 1 + below(s, 4); k && o->n; k--)
			o->b[below(s, o->n)] ^= (uint8_t)(1u << below(s, 8));
		break;
	case 1:
		if (o->n)
			o->b[below(s, o->n)] = (uint8_t)fx_rnd(s);
		break;
	case 2:
		o->n = below(s, o->n + 1); /* cut short: the stream is then desynchronised */
		break;
	case 3:
		size = (uint32_t)val(s, size);
		memcpy(o->b + 4, &size, 4);
		break;
	default:
		break;
	}
}

/* ---- the connection ---- */

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool send_msg(int fd, const struct out *o)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { o->b, o->n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (!o->n)
		return true;
	if (o->nfds) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * o->nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * o->nfds);
		memcpy(CMSG_DATA(c), o->fds, sizeof(int) * o->nfds);
	}
	/* A server that takes no more within a moment is dropping or has dropped us. */
	struct pollfd pf = { fd, POLLOUT, 0 };
	if (poll(&pf, 1, 2000) != 1)
		return false;
	return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0;
}

/* Read whatever came back (closing any descriptors) without waiting. */
static void drain(int fd)
{
	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * 16)];
			struct cmsghdr align;
		} ctl;
		static uint8_t sink[1 << 16];
		struct iovec iov = { sink, sizeof(sink) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
				     .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n <= 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int i = 0; i < k; i++) {
				int x;
				memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				close(x);
			}
		}
	}
}

/* An interrupt routed to one of the pool's descriptors, then triggered. */
static void irq_scenario(int fd, uint64_t *s, struct pool *p, uint8_t *buf)
{
	for (int step = 0; step < 4; step++) {
		struct out o = { .b = buf };
		struct devmig_hdr h = { .msg_id = (uint16_t)(100 + step),
					.cmd = DEVMIG_CMD_DEVICE_SET_IRQS,
					.flags = DEVMIG_HDR_TYPE_COMMAND | DEVMIG_HDR_NO_REPLY };
		put(&o, &h, sizeof(h));
		put32(&o, 20);
		put32(&o, (step ? VFIO_IRQ_SET_DATA_NONE : VFIO_IRQ_SET_DATA_EVENTFD) |
				  VFIO_IRQ_SET_ACTION_TRIGGER);
		put32(&o, VFIO_PCI_MSIX_IRQ_INDEX);
		put32(&o, 0);
		put32(&o, 1);
		if (!step) {
			o.fds[0] = p->fd[below(s, NPOOL)];
			o.nfds = 1;
		}
		uint32_t size = (uint32_t)o.n;
		memcpy(buf + 4, &size, 4);
		if (!send_msg(fd, &o))
			return;
	}
}

/* ---- a memblk driver's prologue, then the memory pulled away ---- */

static bool reg_write(int fd, uint16_t id, uint32_t off, uint32_t v)
{
	uint8_t b[64];
	struct out o = { .b = b };
	struct devmig_hdr h = { .msg_id = id, .cmd = DEVMIG_CMD_REGION_WRITE,
				.flags = DEVMIG_HDR_TYPE_COMMAND | DEVMIG_HDR_NO_REPLY };
	put(&o, &h, sizeof(h));
	put64(&o, off);
	put32(&o, 0);
	put32(&o, 4);
	put32(&o, v);
	uint32_t size = (uint32_t)o.n;
	memcpy(b + 4, &size, 4);
	return send_msg(fd, &o);
}

static void memblk_prologue(int fd, uint64_t *s, struct pool *p, uint8_t *buf)
{
	int mem = p->memfd[0];
	if (ftruncate(mem, 2u << 20))
		return;
	struct out o = { .b = buf };
	struct devmig_hdr h = { .msg_id = 1, .cmd = DEVMIG_CMD_DMA_MAP,
				.flags = DEVMIG_HDR_TYPE_COMMAND | DEVMIG_HDR_NO_REPLY };
	put(&o, &h, sizeof(h));
	put32(&o, 32);
	put32(&o, 3);
	put64(&o, 0);
	put64(&o, GIOVA);
	put64(&o, 2u << 20);
	uint32_t size = (uint32_t)o.n;
	memcpy(buf + 4, &size, 4);
	o.fds[0] = mem;
	o.nfds = 1;
	send_msg(fd, &o);
	/* Requests in the guest's SQ: random reads and writes into that memory. */
	uint8_t *g = mmap(NULL, 2u << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mem, 0);
	if (g == MAP_FAILED)
		return;
	for (unsigned i = 0; i < 16; i++) {
		struct mb_sqe e = { .opcode = (uint8_t)(1 + below(s, 4)), .tag = i,
				    .lba = below(s, 64), .nblocks = (uint32_t)(1 + below(s, 8)),
				    .buf = GIOVA + (1u << 20) + below(s, 128) * 4096,
				    .buf_len = 32 * 4096 };
		memcpy(g + i * MB_SQE_SIZE, &e, MB_SQE_SIZE);
	}
	munmap(g, 2u << 20);
	reg_write(fd, 2, MB_REG_CONTROL, 0);
	reg_write(fd, 3, MB_REG_SQ_BASE_LO, (uint32_t)GIOVA);
	reg_write(fd, 4, MB_REG_SQ_BASE_HI, (uint32_t)(GIOVA >> 32));
	reg_write(fd, 5, MB_REG_SQ_SIZE, 16);
	reg_write(fd, 6, MB_REG_CQ_BASE_LO, (uint32_t)(GIOVA + 0x10000));
	reg_write(fd, 7, MB_REG_CQ_BASE_HI, (uint32_t)(GIOVA >> 32));
	reg_write(fd, 8, MB_REG_CQ_SIZE, 16);
	reg_write(fd, 9, MB_REG_CONTROL, MB_CTRL_EN);
	reg_write(fd, 10, MB_REG_SQ_TAIL, (uint32_t)(1 + below(s, 15)));
	/* And the memory goes, while the device works on it. */
	if (below(s, 2) && ftruncate(mem, below(s, 2) ? 0 : 8192)) {
		/* The size stays: the run goes on anyway. */
	}
}

/* ---- the run ---- */

struct target {
	const struct devmig_variant *v;
	const char *args;
	struct fx_server fx;
	const char *path; /* fx.path */
};

/* A proper client gets in (the fuzzing one may still be leaving) and is answered. */
static void probe(struct target *t, uint64_t seed, unsigned batch, bool reset)
{
	char err[256] = "";
	struct devmig_client_config cc = { .timeout_ms = 10000 };
	uint64_t end = fx_now_ms() + 15000;
	struct devmig_client *c;
	while (!(c = devmig_client_connect(t->path, &cc, err, sizeof(err)))) {
		if (fx_now_ms() > end)
			fail_msg("seed %llu batch %u: the %s server lets no client in: %s",
				 (unsigned long long)seed, batch, t->v->name, err);
		poll(NULL, 0, 10);
	}
	enum devmig_state st;
	struct devmig_device_info info;
	int rc = devmig_client_get_state(c, &st);
	if (!rc)
		rc = devmig_client_device_info(c, &info);
	if (!rc && reset)
		rc = devmig_client_reset(c);
	devmig_client_close(c);
	if (rc)
		fail_msg("seed %llu batch %u: the %s server does not answer: %s",
			 (unsigned long long)seed, batch, t->v->name, strerror(-rc));
}

static void hostile_messages_never_crash_or_hang_a_server(void **state)
{
	(void)state;
	const char *secs = getenv("DEVMIG_SOCKET_FUZZ_SECONDS");
	const char *seed_s = getenv("DEVMIG_SOCKET_FUZZ_SEED");
	unsigned seconds = secs ? (unsigned)strtoul(secs, NULL, 10) : 20;
	/* A new seed each run (said in the closing line and on failure) explores more. */
	uint64_t seed = seed_s ? strtoull(seed_s, NULL, 0) : (uint64_t)time(NULL);
	char dir[FX_PATH_MAX];
	fx_tmpdir(dir, "sfuzz");
	struct target t[2] = { { &devmig_variant_counter, NULL }, { &devmig_variant_memblk,
								      "size=1M" } };
	const struct devmig_server_config cfg = { .io_timeout_ms = 200 };
	for (int i = 0; i < 2; i++) {
		fx_serve_variant_cfg(&t[i].fx, dir, t[i].v->name, t[i].v, t[i].args, &cfg);
		t[i].path = t[i].fx.path;
	}
	uint8_t *buf = malloc(MAXMSG);
	assert_non_null(buf);
	uint64_t s = seed, msgs = 0, prologues = 0, t0 = fx_now_ms();
	unsigned batch = 0;
	while (fx_now_ms() - t0 < (uint64_t)seconds * 1000) {
		struct target *tg = &t[batch % 2];
		struct pool p;
		pool_open(&p, &s);
		int fd = raw_connect(tg->path);
		if (fd >= 0) {
			struct out o = { .b = buf };
			/* Mostly a proper VERSION first, so the commands behind it are served. */
			if (below(&s, 5)) {
				struct devmig_hdr h = { .cmd = DEVMIG_CMD_VERSION,
							.flags = DEVMIG_HDR_TYPE_COMMAND };
				uint16_t v[2] = { 0, 2 };
				const char *j = jsons[below(&s, 2)];
				put(&o, &h, sizeof(h));
				put(&o, v, 4);
				put(&o, j, strlen(j) + 1);
				uint32_t size = (uint32_t)o.n;
				memcpy(buf + 4, &size, 4);
				send_msg(fd, &o);
			}
			if (!below(&s, 4))
				irq_scenario(fd, &s, &p, buf);
			if (tg->v == &devmig_variant_memblk && !below(&s, 3)) {
				memblk_prologue(fd, &s, &p, buf);
				prologues++;
			}
			for (int k = 0; k < MSGS_PER_BATCH; k++) {
				gen(&s, &o, &p, (uint16_t)k);
				if (!send_msg(fd, &o))
					break; /* the server dropped us: fine, probe */
				msgs++;
				drain(fd);
				/* The memory shrinks under a mapping now and then. */
				if (!below(&s, 40) &&
				    ftruncate(p.memfd[below(&s, 3)], (off_t)below(&s, 3) * 4096)) {
					/* (it cannot fail on a memfd of ours) */
				}
			}
			drain(fd);
			close(fd);
		}
		pool_close(&p);
		probe(tg, seed, batch, below(&s, 2));
		batch++;
	}
	print_message("# %llu hostile messages in %u batches (%llu with a memblk driver whose "
		      "memory was then cut) in %.1f s, seed %#llx; every probe answered\n",
		      (unsigned long long)msgs, batch, (unsigned long long)prologues,
		      (fx_now_ms() - t0) / 1000.0, (unsigned long long)seed);
	for (int i = 0; i < 2; i++)
		fx_unserve(&t[i].fx);
	free(buf);
	fx_rmdir(dir);
	assert_true(msgs > 1000);
}

int main(void)
{
	/* Not ignoring SIGPIPE: a server that raised it would end the run. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hostile_messages_never_crash_or_hang_a_server),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
