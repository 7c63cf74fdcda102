/* SPDX-License-Identifier: MIT */
/*
 * A client with libvfio-user's personality drives devmig servers: what
 * libvfio-user's client (samples/client.c over lib/tran_sock.c) sends, and
 * what its transport insists on:
 *   - each reply is read as a header, then exactly the payload length the
 *     caller expects: a shorter reply drops the connection (ECONNRESET), a
 *     longer one would leave bytes that break the next exchange, an error
 *     reply is read as its header alone;
 *   - VERSION proposes only max_msg_fds and max_data_xfer_size (1024, so
 *     migration data comes in many small reads), no devmig extension; the
 *     reply's JSON is read with libvfio-user's types;
 *   - MIG_DATA_READ expects the reply padded to the size asked for;
 *   - DMA_LOGGING_STOP carries START's control structure; DMA_UNMAP ends
 *     with VFIO_DMA_UNMAP_FLAG_ALL.
 * Against counter and memblk: negotiation, a bogus region refused, device
 * and region info (mapping the sparse areas it is given), config space,
 * reset, DMA maps with an fd, interrupts, DMA logging, a migration into a
 * second server (PRE_COPY when offered) with the state checked there, the
 * destination reconfigured and interrupting, and memblk doing real I/O
 * through the mapped guest memory on both sides.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/vfio.h>

#include "devices.h"
#include "devmig/device.h"
#include "devmig/server.h"
#include "devmig/wire.h"
#include "fixture.h"
#include "memblk/memblk_guest.h"

#define XFER 1024u      /* libvfio-user's sample client: CLIENT_MAX_DATA_XFER_SIZE */
#define PG 4096u
#define NMAPS 4u        /* DMA regions of one page each, as the sample maps */
#define MB_MEM (1u << 20)
#define CFG 7u

/* ---- libvfio-user's client transport, as its rules are ---- */

struct lvu {
	int sock;
	uint16_t id;
	uint32_t server_xfer;
	int server_fds;
};

static int lvu_connect(struct lvu *l, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	l->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	l->id = 0x100;
	struct timeval tv = { 10, 0 };
	setsockopt(l->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return connect(l->sock, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
}

static int recv_all(int sock, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = recv(sock, (uint8_t *)buf + got, len - got, MSG_WAITALL);
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

/*
 * One exchange: send cmd with the payload pieces (and fds), then read the
 * reply as libvfio-user's tran_sock_recv_fds does into rbuf (rlen bytes
 * expected). Returns 0, -errno of an error reply, or -ECONNRESET when the
 * reply is shorter than expected. A reply longer than libvfio-user reads
 * fails the test: its client would be out of step from then on.
 */
static int lvu_msg(struct lvu *l, uint16_t cmd, const void *a, size_t alen, const void *b,
		   size_t blen, const int *fds, unsigned nfds, void *rbuf, size_t rlen,
		   struct devmig_hdr *rh)
{
	struct devmig_hdr h = { .msg_id = l->id++, .cmd = cmd,
				.msg_size = (uint32_t)(sizeof(h) + alen + blen),
				.flags = DEVMIG_HDR_TYPE_COMMAND };
	struct iovec iov[3] = { { &h, sizeof(h) }, { (void *)a, alen }, { (void *)b, blen } };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	if (sendmsg(l->sock, &mh, MSG_NOSIGNAL) != (ssize_t)h.msg_size)
		return -ECONNRESET;

	struct devmig_hdr r;
	int rc = recv_all(l->sock, &r, sizeof(r));
	if (rc)
		return rc;
	if (rh)
		*rh = r;
	if (r.msg_id != h.msg_id)
		return -EPROTO;
	if ((r.flags & DEVMIG_HDR_TYPE_MASK) != DEVMIG_HDR_TYPE_REPLY)
		return -EINVAL;
	if (r.flags & DEVMIG_HDR_ERROR) {
		/* libvfio-user returns here, reading no payload: there must be none. */
		if (r.msg_size != sizeof(r))
			fail_msg("%s: error reply with %u payload bytes would desync libvfio-user",
				 devmig_cmd_name(cmd), r.msg_size - 16u);
		return -(int)(r.error_no ? r.error_no : EINVAL);
	}
	if (r.msg_size < sizeof(r))
		return -EINVAL;
	size_t payload = r.msg_size - sizeof(r);
	if (payload && !rlen)
		fail_msg("%s: %zu payload bytes nobody reads", devmig_cmd_name(cmd), payload);
	if (!payload)
		return 0; /* libvfio-user reads nothing when the reply has nothing */
	size_t want = payload < rlen ? payload : rlen;
	rc = recv_all(l->sock, rbuf, want);
	if (rc)
		return rc;
	if (want != rlen)
		return -ECONNRESET; /* what libvfio-user's client does with a short reply */
	if (payload > rlen)
		fail_msg("%s: reply of %zu bytes, libvfio-user reads %zu", devmig_cmd_name(cmd),
			 payload, rlen);
	return 0;
}

/* VERSION as the sample sends it, the reply read with libvfio-user's types. */
static void lvu_negotiate(struct lvu *l)
{
	char caps[256];
	int n = snprintf(caps, sizeof(caps),
			 "{\"capabilities\":{\"max_msg_fds\":%u,\"max_data_xfer_size\":%u}}", 32, XFER);
	struct devmig_version v = { 0, 1 };
	uint8_t rep[1024];
	struct devmig_hdr rh;

	/* The reply's length is not known ahead: read header, then what it says. */
	struct devmig_hdr h = { .msg_id = l->id++, .cmd = DEVMIG_CMD_VERSION,
				.msg_size = (uint32_t)(sizeof(h) + sizeof(v) + (size_t)n + 1),
				.flags = DEVMIG_HDR_TYPE_COMMAND };
	struct iovec iov[3] = { { &h, sizeof(h) }, { &v, sizeof(v) }, { caps, (size_t)n + 1 } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
	assert_int_equal(sendmsg(l->sock, &mh, MSG_NOSIGNAL), h.msg_size);
	assert_int_equal(recv_all(l->sock, &rh, sizeof(rh)), 0);
	assert_false(rh.flags & DEVMIG_HDR_ERROR);
	assert_true(rh.msg_size > 16 + 4 && rh.msg_size - 16 < sizeof(rep));
	assert_int_equal(recv_all(l->sock, rep, rh.msg_size - 16), 0);
	struct devmig_version sv;
	memcpy(&sv, rep, sizeof(sv));
	assert_int_equal(sv.major, 0);
	assert_true(sv.minor <= 1);
	const char *json = (const char *)rep + 4;
	assert_int_equal(json[rh.msg_size - 16 - 4 - 1], '\0');

	struct json_object *top = json_tokener_parse(json), *c, *o, *o2;
	assert_non_null(top);
	assert_true(json_object_object_get_ex(top, "capabilities", &c));
	assert_true(json_object_is_type(c, json_type_object));
	l->server_fds = 1;
	l->server_xfer = 1u << 20;
	if (json_object_object_get_ex(c, "max_msg_fds", &o)) {
		assert_true(json_object_is_type(o, json_type_int));
		l->server_fds = (int)json_object_get_int64(o);
	}
	if (json_object_object_get_ex(c, "max_data_xfer_size", &o)) {
		assert_true(json_object_is_type(o, json_type_int));
		l->server_xfer = (uint32_t)json_object_get_int64(o);
	}
	if (json_object_object_get_ex(c, "migration", &o)) {
		assert_true(json_object_is_type(o, json_type_object));
		if (json_object_object_get_ex(o, "pgsize", &o2))
			assert_true(json_object_is_type(o2, json_type_int));
	}
	if (json_object_object_get_ex(c, "twin_socket", &o))
		assert_true(json_object_is_type(o, json_type_object));
	/* Nothing was proposed beyond the limits: no devmig extension comes back. */
	assert_false(json_object_object_get_ex(c, "devmig", &o));
	json_object_put(top);
}

static int lvu_region(struct lvu *l, uint32_t region, uint64_t off, void *buf, uint32_t count,
		      bool is_write)
{
	struct devmig_region_access a = { off, region, count };
	uint8_t rep[16 + XFER];
	int rc;
	if (is_write)
		rc = lvu_msg(l, DEVMIG_CMD_REGION_WRITE, &a, sizeof(a), buf, count, NULL, 0, rep,
			     sizeof(a), NULL);
	else
		rc = lvu_msg(l, DEVMIG_CMD_REGION_READ, &a, sizeof(a), NULL, 0, NULL, 0, rep,
			     sizeof(a) + count, NULL);
	if (rc)
		return rc;
	struct devmig_region_access ra;
	memcpy(&ra, rep, sizeof(ra));
	if (ra.count != count)
		return -EINVAL;
	if (!is_write)
		memcpy(buf, rep + sizeof(ra), count);
	return 0;
}

static uint32_t rd32(struct lvu *l, uint32_t region, uint64_t off)
{
	uint32_t v = 0xdeadbeef;
	assert_int_equal(lvu_region(l, region, off, &v, 4, false), 0);
	return v;
}

static void wr32(struct lvu *l, uint32_t region, uint64_t off, uint32_t v)
{
	assert_int_equal(lvu_region(l, region, off, &v, 4, true), 0);
}

static int lvu_feature(struct lvu *l, uint32_t flags, const void *data, size_t len, void *rep,
		       size_t rlen)
{
	struct devmig_feature f = { (uint32_t)(sizeof(f) + len), flags };
	return lvu_msg(l, DEVMIG_CMD_DEVICE_FEATURE, &f, sizeof(f), data, len, NULL, 0, rep, rlen,
		       NULL);
}

/* The sample's set_migration_state: the reply must echo the request. */
static void lvu_set_state(struct lvu *l, uint32_t state)
{
	struct devmig_feature f = { 16, DEVMIG_FEATURE_SET | DEVMIG_FEATURE_MIG_DEVICE_STATE };
	struct devmig_feature_mig_state s = { state, 0xffffffff };
	uint8_t rep[16];
	assert_int_equal(lvu_msg(l, DEVMIG_CMD_DEVICE_FEATURE, &f, sizeof(f), &s, sizeof(s), NULL,
				 0, rep, sizeof(rep), NULL),
			 0);
	assert_memory_equal(rep, &f, sizeof(f));
	assert_memory_equal(rep + 8, &s, sizeof(s));
}

/* The sample's read_migr_data: the reply padded to what was asked. */
static ssize_t lvu_mig_read(struct lvu *l, void *buf, uint32_t len)
{
	struct devmig_mig_data req = { 8 + len, len };
	uint8_t rep[8 + XFER];
	struct devmig_hdr rh;
	int rc = lvu_msg(l, DEVMIG_CMD_MIG_DATA_READ, &req, sizeof(req), NULL, 0, NULL, 0, rep,
			 8 + len, &rh);
	if (rc)
		return rc;
	assert_int_equal(rh.msg_size, 16 + 8 + len);
	struct devmig_mig_data md;
	memcpy(&md, rep, sizeof(md));
	assert_true(md.size <= len);
	assert_int_equal(md.argsz, 8 + md.size);
	memcpy(buf, rep + 8, md.size);
	return md.size;
}

static void lvu_mig_write(struct lvu *l, const void *buf, uint32_t len)
{
	struct devmig_mig_data req = { 8 + len, len };
	uint8_t rep[8];
	assert_int_equal(lvu_msg(l, DEVMIG_CMD_MIG_DATA_WRITE, &req, sizeof(req), buf, len, NULL, 0,
				 rep, sizeof(rep), NULL),
			 0);
}

/* ---- the steps of samples/client.c ---- */

static void get_region_infos(struct lvu *l)
{
	struct devmig_device_info di = { sizeof(di), 0, 0, 0 };
	assert_int_equal(lvu_msg(l, DEVMIG_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0, NULL, 0,
				 &di, sizeof(di), NULL),
			 0);
	assert_int_equal(di.num_regions, 9); /* the sample insists */
	for (uint32_t i = 0; i < di.num_regions; i++) {
		struct devmig_region_info ri = { sizeof(ri), 0, i, 0, 0, 0 };
		assert_int_equal(lvu_msg(l, DEVMIG_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL,
					 0, NULL, 0, &ri, sizeof(ri), NULL),
				 0);
		if (ri.argsz <= sizeof(ri))
			continue;
		/* Room for the capabilities: ask again, receive the mappable fd. */
		uint32_t size = ri.argsz;
		uint8_t *big = calloc(1, size);
		struct devmig_region_info *r2 = (void *)big;
		r2->argsz = size;
		r2->index = i;
		struct devmig_hdr h = { .msg_id = l->id++, .cmd = DEVMIG_CMD_DEVICE_GET_REGION_INFO,
					.msg_size = 16 + size, .flags = DEVMIG_HDR_TYPE_COMMAND };
		struct iovec iov[2] = { { &h, 16 }, { big, size } };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
		assert_int_equal(sendmsg(l->sock, &mh, MSG_NOSIGNAL), 16 + size);
		union {
			char buf[CMSG_SPACE(sizeof(int) * 8)];
			struct cmsghdr align;
		} ctl;
		struct devmig_hdr rh;
		struct iovec riov = { &rh, 16 };
		struct msghdr rmh = { .msg_iov = &riov, .msg_iovlen = 1, .msg_control = ctl.buf,
				      .msg_controllen = sizeof(ctl.buf) };
		assert_int_equal(recvmsg(l->sock, &rmh, MSG_WAITALL), 16);
		int fd = -1;
		struct cmsghdr *c = CMSG_FIRSTHDR(&rmh);
		if (c && c->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
		assert_false(rh.flags & DEVMIG_HDR_ERROR);
		assert_int_equal(rh.msg_size, 16 + size); /* exactly what libvfio-user reads */
		assert_int_equal(recv_all(l->sock, big, size), 0);
		assert_int_equal(r2->argsz, size);
		/* The sparse areas given are mappable, as the sample checks. */
		if (fd >= 0 && (r2->flags & 8) && r2->cap_offset >= sizeof(*r2)) {
			struct devmig_info_cap_hdr ch;
			memcpy(&ch, big + r2->cap_offset, sizeof(ch));
			if (ch.id == 1) {
				uint32_t nr;
				memcpy(&nr, big + r2->cap_offset + 8, 4);
				for (uint32_t k = 0; k < nr; k++) {
					struct devmig_sparse_mmap_area a;
					memcpy(&a, big + r2->cap_offset + 16 + 16 * k, sizeof(a));
					void *m = mmap(NULL, a.size, PROT_READ | PROT_WRITE, MAP_SHARED,
						       fd, (off_t)(r2->offset + a.offset));
					assert_true(m != MAP_FAILED);
					munmap(m, a.size);
				}
			}
		}
		if (fd >= 0)
			close(fd);
		free(big);
	}
}

/* MSI-X on, vector 0 unmasked and routed to efd (the client owns the table here). */
static void enable_msix(struct lvu *l, int efd)
{
	uint8_t ptr = 0, hdr[2];
	assert_int_equal(lvu_region(l, CFG, 0x34, &ptr, 1, false), 0);
	for (int hops = 0; ptr && hops < 48; hops++) {
		assert_int_equal(lvu_region(l, CFG, ptr, hdr, 2, false), 0);
		if (hdr[0] == 0x11)
			break;
		ptr = hdr[1];
	}
	assert_int_not_equal(ptr, 0);
	uint16_t ctl;
	uint32_t table;
	assert_int_equal(lvu_region(l, CFG, ptr + 2u, &ctl, 2, false), 0);
	assert_int_equal(lvu_region(l, CFG, ptr + 4u, &table, 4, false), 0);
	ctl = (uint16_t)((ctl | 0x8000) & ~0x4000);
	assert_int_equal(lvu_region(l, CFG, ptr + 2u, &ctl, 2, true), 0);
	wr32(l, table & 7, (table & ~7u) + 12, 0);
	struct devmig_irq_set s = { sizeof(s), VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				    VFIO_PCI_MSIX_IRQ_INDEX, 0, 1 };
	assert_int_equal(lvu_msg(l, DEVMIG_CMD_DEVICE_SET_IRQS, &s, sizeof(s), NULL, 0, &efd, 1, NULL,
				 0, NULL),
			 0);
}

static void configure_irqs(struct lvu *l, int efd)
{
	for (uint32_t i = 0; i < 5; i++) {
		struct devmig_irq_info ii = { sizeof(ii), 0, i, 0 };
		assert_int_equal(lvu_msg(l, DEVMIG_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), NULL, 0,
					 NULL, 0, &ii, sizeof(ii), NULL),
				 0);
		assert_int_equal(ii.index, i);
	}
	enable_msix(l, efd);
}

static uint64_t wait_efd(int efd, int ms)
{
	struct pollfd pf = { efd, POLLIN, 0 };
	uint64_t v = 0;
	if (poll(&pf, 1, ms) == 1 && read(efd, &v, 8) == 8)
		return v;
	return 0;
}

static void map_dma(struct lvu *l, int fd, unsigned first, unsigned n)
{
	for (unsigned i = first; i < first + n; i++) {
		struct devmig_dma_map m = { sizeof(m), DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
					    (uint64_t)i * PG, (uint64_t)i * PG, PG };
		assert_int_equal(lvu_msg(l, DEVMIG_CMD_DMA_MAP, &m, sizeof(m), NULL, 0, &fd, 1, NULL,
					 0, NULL),
				 0);
	}
}

static void unmap_all(struct lvu *l)
{
	struct devmig_dma_unmap u = { sizeof(u), DEVMIG_DMA_UNMAP_ALL, 0, 0 };
	struct devmig_dma_unmap back;
	assert_int_equal(lvu_msg(l, DEVMIG_CMD_DMA_UNMAP, &u, sizeof(u), NULL, 0, NULL, 0, &back,
				 sizeof(back), NULL),
			 0);
	assert_memory_equal(&back, &u, sizeof(u));
}

/* START (no ranges), the device writes region 1, REPORT each whole region, then
 * STOP with START's structure. */
static void dirty_logging(struct lvu *l, struct devmig_device *dev)
{
	uint8_t ctl_buf[16];
	struct devmig_feature_dma_logging_control ctl = { PG, 0, 0 };
	uint8_t rep[8 + 16];
	assert_int_equal(lvu_feature(l, DEVMIG_FEATURE_SET | DEVMIG_FEATURE_DMA_LOGGING_START, &ctl,
				     sizeof(ctl), rep, sizeof(rep)),
			 0);
	memcpy(ctl_buf, rep + 8, 16);
	memcpy(&ctl, ctl_buf, sizeof(ctl));
	assert_int_equal(ctl.page_size, PG);

	uint32_t v = 0x600dda7a;
	assert_int_equal(devmig_device_dma_write(dev, 1 * PG + 16, &v, 4), 0);
	for (unsigned i = 0; i < NMAPS; i++) {
		struct devmig_feature f = { 8 + 24 + 8,
					    DEVMIG_FEATURE_GET | DEVMIG_FEATURE_DMA_LOGGING_REPORT };
		struct devmig_feature_dma_logging_report r = { (uint64_t)i * PG, PG, PG };
		uint8_t out[8 + 24 + 8];
		assert_int_equal(lvu_msg(l, DEVMIG_CMD_DEVICE_FEATURE, &f, sizeof(f), &r, sizeof(r),
					 NULL, 0, out, sizeof(out), NULL),
				 0);
		assert_int_equal(out[8 + 24], i == 1 ? 1 : 0);
	}
	/* STOP with START's control structure; the reply echoes all of it. */
	assert_int_equal(lvu_feature(l, DEVMIG_FEATURE_SET | DEVMIG_FEATURE_DMA_LOGGING_STOP, &ctl,
				     sizeof(ctl), rep, sizeof(rep)),
			 0);
	struct devmig_feature_dma_logging_report r = { PG, PG, PG };
	struct devmig_feature f = { 8 + 24 + 8, DEVMIG_FEATURE_GET | DEVMIG_FEATURE_DMA_LOGGING_REPORT };
	uint8_t out[8 + 24 + 8];
	assert_int_equal(lvu_msg(l, DEVMIG_CMD_DEVICE_FEATURE, &f, sizeof(f), &r, sizeof(r), NULL, 0,
				 out, sizeof(out), NULL),
			 -EINVAL); /* logging is off */
}

/* Read the whole stream in XFER pieces (PRE_COPY first when offered) into *out. */
static size_t migrate_out(struct lvu *l, uint8_t **out, bool *precopied)
{
	uint64_t flags = 0;
	uint8_t rep[16];
	assert_int_equal(lvu_feature(l, DEVMIG_FEATURE_GET | DEVMIG_FEATURE_MIGRATION, &flags, 8, rep,
				     sizeof(rep)),
			 0);
	memcpy(&flags, rep + 8, 8);
	assert_true(flags & DEVMIG_MIG_STOP_COPY);
	size_t cap = 1 << 20, total = 0;
	*out = malloc(cap);
	*precopied = flags & DEVMIG_MIG_PRE_COPY;
	for (int phase = *precopied ? 0 : 1; phase < 2; phase++) {
		lvu_set_state(l, phase ? DEVMIG_STATE_STOP_COPY : DEVMIG_STATE_PRE_COPY);
		for (;;) {
			if (total + XFER > cap) {
				cap *= 2;
				*out = realloc(*out, cap);
			}
			ssize_t n = lvu_mig_read(l, *out + total, XFER);
			assert_true(n >= 0);
			total += (size_t)n;
			if (n == 0)
				break; /* the sample: "finished when we read 0 bytes" */
		}
	}
	lvu_set_state(l, DEVMIG_STATE_STOP);
	return total;
}

static void migrate_in(struct lvu *l, const uint8_t *data, size_t len)
{
	lvu_set_state(l, DEVMIG_STATE_RESUMING);
	for (size_t off = 0; off < len; off += XFER)
		lvu_mig_write(l, data + off, (uint32_t)(len - off < XFER ? len - off : XFER));
	lvu_set_state(l, DEVMIG_STATE_STOP);
}

/* ---- fixture: two devmig servers of one variant ---- */

struct fx {
	char dir[FX_PATH_MAX];
	struct fx_server src, dst;
};

static struct fx *fx_new(const struct devmig_variant *v, const char *args)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	fx_tmpdir(f->dir, "lvuc");
	fx_serve_variant(&f->src, f->dir, "src", v, args);
	fx_serve_variant(&f->dst, f->dir, "dst", v, args);
	return f;
}

static void fx_free(struct fx *f)
{
	fx_unserve(&f->src);
	fx_unserve(&f->dst);
	fx_rmdir(f->dir);
	free(f);
}

static int guest_file(size_t size)
{
	int fd = memfd_create("lvu-guest", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/* What samples/client.c does up to the migration, against any devmig device. */
static void bring_up(struct lvu *l, const char *path, struct devmig_device *dev, uint16_t vendor,
		     uint16_t device, int memfd, int efd)
{
	assert_int_equal(lvu_connect(l, path), 0);
	lvu_negotiate(l);
	int bogus = 0;
	assert_int_equal(lvu_region(l, 0xdeadbeef, 0, &bogus, 4, false), -EINVAL);
	get_region_infos(l);
	uint8_t hdr[64];
	assert_int_equal(lvu_region(l, CFG, 0, hdr, sizeof(hdr), false), 0);
	assert_int_equal(hdr[0] | hdr[1] << 8, vendor);
	assert_int_equal(hdr[2] | hdr[3] << 8, device);
	struct devmig_hdr rh;
	assert_int_equal(lvu_msg(l, DEVMIG_CMD_DEVICE_RESET, NULL, 0, NULL, 0, NULL, 0, NULL, 0, &rh),
			 0);
	map_dma(l, memfd, 0, NMAPS);
	configure_irqs(l, efd);
	(void)dev;
}

static void lvu_client_drives_counter(void **state)
{
	(void)state;
	struct fx *f = fx_new(&devmig_variant_counter, NULL);
	struct lvu l, d;
	int memfd = guest_file(NMAPS * PG);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	bring_up(&l, f->src.path, f->src.dev, 0x1af4, 0x10f0, memfd, efd);
	dirty_logging(&l, f->src.dev);

	/* An interrupt: COUNT reaching THRESHOLD fires vector 0. */
	wr32(&l, 0, 0x04, 5);
	wr32(&l, 0, 0x00, 5);
	assert_int_equal(wait_efd(efd, 5000), 1);
	wr32(&l, 0, 0x08, 0xc0ffee);

	/* The first half of the regions unmapped, one by one, as the sample does. */
	for (unsigned i = 0; i < NMAPS / 2; i++) {
		struct devmig_dma_unmap u = { sizeof(u), 0, (uint64_t)i * PG, PG }, back;
		assert_int_equal(lvu_msg(&l, DEVMIG_CMD_DMA_UNMAP, &u, sizeof(u), NULL, 0, NULL, 0,
					 &back, sizeof(back), NULL),
				 0);
	}

	uint8_t *stream;
	bool pre;
	size_t n = migrate_out(&l, &stream, &pre);
	assert_false(pre); /* counter offers no PRE_COPY */
	assert_true(n > XFER);

	assert_int_equal(lvu_connect(&d, f->dst.path), 0);
	lvu_negotiate(&d);
	migrate_in(&d, stream, n);
	assert_int_equal(rd32(&d, 0, 0x08), 0xc0ffee);
	assert_int_equal(rd32(&d, 0, 0x04), 5);
	lvu_set_state(&d, DEVMIG_STATE_RUNNING);

	/* The destination reconfigured: the other half mapped, interrupts again. */
	int efd2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	map_dma(&d, memfd, NMAPS / 2, NMAPS / 2);
	configure_irqs(&d, efd2);
	uint32_t v = 0x1234;
	assert_int_equal(devmig_device_dma_write(f->dst.dev, (NMAPS / 2) * PG, &v, 4), 0);
	wr32(&d, 0, 0x04, 10);
	wr32(&d, 0, 0x00, 5);
	assert_int_equal(wait_efd(efd2, 5000), 1);
	unmap_all(&d);
	assert_int_equal(devmig_device_dma_read(f->dst.dev, (NMAPS / 2) * PG, &v, 4), -EFAULT);

	free(stream);
	close(l.sock);
	close(d.sock);
	close(efd);
	close(efd2);
	close(memfd);
	fx_free(f);
}

/* MMIO for the memblk guest driver, over the libvfio-user transport. */
static int mmio_rd(void *o, uint32_t off, uint32_t *val)
{
	return lvu_region(o, 0, off, val, 4, false);
}

static int mmio_wr(void *o, uint32_t off, uint32_t val)
{
	return lvu_region(o, 0, off, &val, 4, true);
}

static void lvu_client_drives_memblk_with_precopy_and_io(void **state)
{
	(void)state;
	struct fx *f = fx_new(&devmig_variant_memblk, "size=1M");
	struct lvu l, d;
	int memfd = guest_file(MB_MEM);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint8_t *mem = mmap(NULL, MB_MEM, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	assert_true(mem != MAP_FAILED);

	bring_up(&l, f->src.path, f->src.dev, 0x1af4, 0x10f1, memfd, efd);
	/* The whole guest memory as one more region, above the sample's pages. */
	struct devmig_dma_map m = { sizeof(m), DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, 0, 1u << 30,
				    MB_MEM };
	assert_int_equal(lvu_msg(&l, DEVMIG_CMD_DMA_MAP, &m, sizeof(m), NULL, 0, &memfd, 1, NULL, 0,
				 NULL),
			 0);

	/* Real I/O through guest memory, completions signalled by MSI-X. */
	struct mbg g;
	struct mbg_mmio io = { &l, mmio_rd, mmio_wr };
	assert_int_equal(mbg_init(&g, &io, mem, 1u << 30, MB_MEM, efd), 0);
	assert_int_equal(mbg_setup_queues(&g, (1u << 30) + 0x10000, 16, (1u << 30) + 0x20000, 16,
					  NULL),
			 0);
	for (unsigned i = 0; i < 8 * MB_BLOCK_SIZE; i++)
		mem[0x40000 + i] = (uint8_t)(i * 13 + 7);
	assert_int_equal(mbg_write(&g, 3, 8, (1u << 30) + 0x40000, 5000), MB_SC_OK);

	uint8_t *stream;
	bool pre;
	size_t n = migrate_out(&l, &stream, &pre);
	assert_true(pre); /* memblk offers PRE_COPY: the sample's path */
	assert_true(n > 8 * MB_BLOCK_SIZE);

	assert_int_equal(lvu_connect(&d, f->dst.path), 0);
	lvu_negotiate(&d);
	migrate_in(&d, stream, n);
	lvu_set_state(&d, DEVMIG_STATE_RUNNING);
	assert_int_equal(lvu_msg(&d, DEVMIG_CMD_DMA_MAP, &m, sizeof(m), NULL, 0, &memfd, 1, NULL, 0,
				 NULL),
			 0);
	int efd2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	configure_irqs(&d, efd2);

	/* The guest goes on at the destination: what it wrote is there. */
	struct mbg_mmio io2 = { &d, mmio_rd, mmio_wr };
	mbg_set_route(&g, &io2, efd2);
	memset(mem + 0x80000, 0, 8 * MB_BLOCK_SIZE);
	assert_int_equal(mbg_read(&g, 3, 8, (1u << 30) + 0x80000, 5000), MB_SC_OK);
	assert_memory_equal(mem + 0x80000, mem + 0x40000, 8 * MB_BLOCK_SIZE);
	mbg_destroy(&g);
	unmap_all(&d);

	free(stream);
	munmap(mem, MB_MEM);
	close(l.sock);
	close(d.sock);
	close(efd);
	close(efd2);
	close(memfd);
	fx_free(f);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lvu_client_drives_counter),
		cmocka_unit_test(lvu_client_drives_memblk_with_precopy_and_io),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
