/* SPDX-License-Identifier: MIT */
/*
 * Every vfio-user command, answered by a real server over a real socket,
 * driven by the project's client against the counter device.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
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

#include <linux/vfio.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "devices.h"
#include "devmig/client.h"
#include "devmig/device.h"
#include "devmig/server.h"
#include "fixture.h"
#include "devmig/wire.h"

/* Counter registers (BAR0) and layout. */
#define REG_COUNT 0x00
#define REG_THRESHOLD 0x04
#define REG_SCRATCH0 0x08
#define REG_SCRATCH1 0x0c
#define REG_SCRATCH2 0x10
#define REG_ID 0x18
#define COUNTER_ID 0x434e5452u
#define CFG_REGION 7
#define MIB (1ull << 20)
#define PG 4096ull

/* ---- fixture ---- */

struct fx {
	char dir[FX_PATH_MAX];
	struct fx_server s;
	struct devmig_device *dev; /* s.dev */
	const char *path;          /* s.path */
	struct devmig_client *c;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	fx_tmpdir(f->dir, "tc");
	fx_serve_variant(&f->s, f->dir, "dev", &devmig_variant_counter, NULL);
	f->dev = f->s.dev;
	f->path = f->s.path;
	f->c = fx_connect(&f->s, NULL);
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

/* ---- helpers ---- */

static uint32_t rd32(struct devmig_client *c, uint32_t region, uint64_t off)
{
	uint32_t v = 0xdeadbeef;
	assert_int_equal(devmig_client_region_read(c, region, off, &v, 4), 0);
	return v;
}

static void wr32(struct devmig_client *c, uint32_t region, uint64_t off, uint32_t v)
{
	assert_int_equal(devmig_client_region_write(c, region, off, &v, 4), 0);
}

static uint8_t cfg8(struct devmig_client *c, uint64_t off)
{
	uint8_t v = 0;
	assert_int_equal(devmig_client_region_read(c, CFG_REGION, off, &v, 1), 0);
	return v;
}

/* Offset of standard capability id in config space, 0 when absent. */
static unsigned find_cap(struct devmig_client *c, uint8_t id)
{
	unsigned pos = cfg8(c, 0x34) & ~3u;
	for (int guard = 0; pos && guard < 48; guard++) {
		if (cfg8(c, pos) == id)
			return pos;
		pos = cfg8(c, pos + 1) & ~3u;
	}
	return 0;
}

/* Guest memory: a memfd and the test's own view of it. */
static int guest_mem(size_t size, uint8_t **view)
{
	int fd = memfd_create("guest", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	*view = p;
	return fd;
}

/* Wait up to ms for the eventfd; returns its counter (0 on timeout). */
static uint64_t wait_efd(int efd, int ms)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	int n = poll(&p, 1, ms);
	assert_true(n >= 0);
	if (n == 0)
		return 0;
	uint64_t v = 0;
	assert_int_equal(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	return v;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- 1. VERSION ---- */

static void test_version_negotiates_extensions_and_caps(void **state)
{
	struct fx *f = *state;
	struct devmig_caps caps;

	assert_true(devmig_client_has_ext(f->c, DEVMIG_EXT_PRECOPY_INFO));
	memset(&caps, 0, sizeof(caps));
	devmig_client_server_caps(f->c, &caps);
	assert_int_equal(caps.max_data_xfer_size, 1u << 20);

	/* One client at a time: close the default one before the plain one. */
	devmig_client_close(f->c);
	f->c = fx_connect(&f->s, &(struct devmig_client_config){ .no_ext = true });
	assert_false(devmig_client_has_ext(f->c, DEVMIG_EXT_PRECOPY_INFO));
	memset(&caps, 0, sizeof(caps));
	devmig_client_server_caps(f->c, &caps);
	assert_int_equal(caps.ext, 0);
	assert_int_equal(caps.max_data_xfer_size, 1u << 20);
}

/* VERSION over a bare socket with the capabilities given; returns the reply's. */
static struct devmig_caps raw_version(const char *path, const struct devmig_caps *proposed)
{
	char json[512];
	uint8_t buf[2048];
	struct devmig_msg m, r;
	enum devmig_wire_err e = DEVMIG_WIRE_OK;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	memset(&m, 0, sizeof(m));
	m.hdr.cmd = DEVMIG_CMD_VERSION;
	m.hdr.flags = DEVMIG_HDR_TYPE_COMMAND;
	m.u.version.v.major = DEVMIG_VFIO_USER_MAJOR;
	m.u.version.v.minor = DEVMIG_VFIO_USER_MINOR;
	m.u.version.json = json;
	m.u.version.json_len = devmig_caps_format(proposed, json, sizeof(json));
	size_t n = devmig_encode(buf, sizeof(buf), &m, &e);
	assert_true(n > 0);
	assert_int_equal(send(fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
	struct devmig_hdr h;
	size_t got = 0;
	while (got < sizeof(h) || got < h.msg_size) {
		ssize_t k = recv(fd, buf + got, sizeof(buf) - got, 0);
		assert_true(k > 0);
		got += (size_t)k;
		if (got >= sizeof(h))
			memcpy(&h, buf, sizeof(h));
	}
	struct devmig_wire_limits lim;
	devmig_wire_limits_default(&lim);
	lim.role = DEVMIG_WIRE_ROLE_CLIENT;
	assert_int_equal(devmig_decode(buf, got, 0, &lim, &r), DEVMIG_WIRE_OK);
	struct devmig_caps caps;
	assert_int_equal(devmig_caps_parse(r.u.version.json, r.u.version.json_len, &caps),
			 DEVMIG_WIRE_OK);
	close(fd);
	return caps;
}

/* "migration": a migratable device says so to a client that proposed it. */
static void test_version_advertises_migration(void **state)
{
	struct fx *f = *state;
	struct devmig_caps caps, prop;

	devmig_client_server_caps(f->c, &caps);
	assert_true(caps.migration);
	assert_int_equal(caps.mig_pgsize, 4096);
	/* the smaller of the two largest bitmaps: our client's 1 MiB */
	assert_int_equal(caps.mig_max_bitmap_size, 1u << 20);

	/* QEMU's proposal: pgsize 4096, 256 MiB; the server's bitmap limit is one
	 * message (1 MiB + 4 KiB by default) */
	devmig_client_close(f->c);
	f->c = NULL;
	devmig_caps_default(&prop);
	prop.migration = true;
	caps = raw_version(f->path, &prop);
	assert_true(caps.migration);
	assert_int_equal(caps.mig_pgsize, 4096);
	assert_int_equal(caps.mig_max_bitmap_size, (1u << 20) + 4096);
	/* a client that did not propose it does not get it */
	prop.migration = false;
	caps = raw_version(f->path, &prop);
	assert_false(caps.migration);
	f->c = fx_connect(&f->s, NULL);
}

static int plain_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	(void)dev;
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10fc);
	return rc ? rc : devmig_pci_set_bar(cfg, 0, 4096, 0);
}

/* A device without migration does not claim it. */
static void test_version_no_migration_for_a_plain_device(void **state)
{
	static const struct devmig_device_id plain_id = { .name = "plain", .version = "plain-1" };
	static const struct devmig_device_ops plain_ops = { .realize = plain_realize };
	struct fx *f = *state;
	struct devmig_device dev = { .id = &plain_id, .ops = &plain_ops };
	struct fx_server plain = { 0 };
	struct devmig_caps caps;

	assert_int_equal(devmig_device_init(&dev), 0);
	fx_serve(&plain, f->dir, "plain", &dev);
	struct devmig_client *c = fx_connect(&plain, NULL);
	devmig_client_server_caps(c, &caps);
	assert_false(caps.migration);
	devmig_client_close(c);
	fx_unserve(&plain);
	devmig_device_destroy(&dev);
}

/* ---- 2. DEVICE_GET_INFO ---- */

static void test_device_info_reports_pci_regions_irqs(void **state)
{
	struct fx *f = *state;
	struct devmig_device_info info;

	memset(&info, 0xff, sizeof(info));
	assert_int_equal(devmig_client_device_info(f->c, &info), 0);
	assert_int_equal(info.num_regions, 9);
	assert_int_equal(info.num_irqs, 5);
	assert_int_equal(info.flags, VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI);
}

/* ---- 3. GET_REGION_INFO ---- */

static void region_info(struct devmig_client *c, uint32_t idx, struct devmig_region_info *ri)
{
	int fd = -1;
	unsigned nareas = 0;

	memset(ri, 0, sizeof(*ri));
	assert_int_equal(devmig_client_region_info(c, idx, ri, &fd, NULL, &nareas), 0);
	if (fd >= 0)
		close(fd);
	assert_int_equal(ri->index, idx);
}

static void test_region_info_sizes_and_flags(void **state)
{
	struct fx *f = *state;
	struct devmig_region_info ri;
	const uint32_t rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;

	for (uint32_t bar = 0; bar <= 1; bar++) {
		region_info(f->c, bar, &ri);
		assert_int_equal(ri.size, 4096);
		assert_int_equal(ri.flags & rw, rw);
	}
	region_info(f->c, CFG_REGION, &ri);
	assert_int_equal(ri.size, 4096);
	assert_int_equal(ri.flags & rw, rw);
	region_info(f->c, 6, &ri); /* ROM: none */
	assert_int_equal(ri.size, 0);
	region_info(f->c, 8, &ri); /* VGA: none */
	assert_int_equal(ri.size, 0);
}

/* ---- 4. config space ---- */

static void test_config_space_ids_caps_and_command(void **state)
{
	struct fx *f = *state;
	uint16_t ids[2] = { 0, 0 };

	assert_int_equal(devmig_client_region_read(f->c, CFG_REGION, 0, ids, 4), 0);
	assert_int_equal(ids[0], 0x1af4);
	assert_int_equal(ids[1], 0x10f0);
	assert_int_not_equal(cfg8(f->c, 0x34), 0);
	assert_int_not_equal(find_cap(f->c, 0x11), 0); /* MSI-X */
	assert_int_not_equal(find_cap(f->c, 0x10), 0); /* PCI Express */

	uint16_t cmd = 0;
	assert_int_equal(devmig_client_region_read(f->c, CFG_REGION, 4, &cmd, 2), 0);
	assert_int_equal(cmd & 2, 0);
	cmd |= 2; /* memory space enable */
	assert_int_equal(devmig_client_region_write(f->c, CFG_REGION, 4, &cmd, 2), 0);
	cmd = 0;
	assert_int_equal(devmig_client_region_read(f->c, CFG_REGION, 4, &cmd, 2), 0);
	assert_int_equal(cmd & 2, 2);
}

/* ---- 5. BAR0 ---- */

static void test_bar0_registers_read_write(void **state)
{
	struct fx *f = *state;

	assert_int_equal(rd32(f->c, 0, REG_ID), COUNTER_ID);
	assert_int_equal(rd32(f->c, 0, REG_COUNT), 0);
	wr32(f->c, 0, REG_COUNT, 5);
	wr32(f->c, 0, REG_COUNT, 3);
	assert_int_equal(rd32(f->c, 0, REG_COUNT), 8);
	wr32(f->c, 0, REG_SCRATCH0 + 12, 0x12345678); /* SCRATCH3 */
	assert_int_equal(rd32(f->c, 0, REG_SCRATCH0 + 12), 0x12345678);
	assert_int_equal(rd32(f->c, 0, 4092), 0); /* last dword of the BAR */
}

/* ---- 6. REGION_WRITE_MULTI ---- */

static void test_region_write_multi_raw(void **state)
{
	struct fx *f = *state;
	struct devmig_write_one wrs[3];
	uint8_t msg[256], reply[64];
	enum devmig_wire_err werr = DEVMIG_WIRE_OK;

	memset(wrs, 0, sizeof(wrs));
	for (unsigned i = 0; i < 3; i++) {
		uint32_t v = 0xa0 + i;
		wrs[i].offset = REG_SCRATCH0 + 4 * i;
		wrs[i].region = 0;
		wrs[i].count = 4;
		memcpy(wrs[i].data, &v, 4);
	}
	struct devmig_msg m;
	memset(&m, 0, sizeof(m));
	m.hdr.msg_id = 0x4242;
	m.hdr.cmd = DEVMIG_CMD_REGION_WRITE_MULTI;
	m.hdr.flags = 0;
	m.u.write_multi.wr_cnt = 3;
	m.u.write_multi.wrs = (const uint8_t *)wrs;
	size_t n = devmig_encode(msg, sizeof(msg), &m, &werr);
	assert_int_equal(werr, DEVMIG_WIRE_OK);
	assert_int_equal(n, DEVMIG_HDR_SIZE + 8 + 3 * sizeof(struct devmig_write_one));

	ssize_t r = devmig_client_raw(f->c, msg, n, NULL, 0, reply, sizeof(reply));
	assert_int_equal(r, DEVMIG_HDR_SIZE + 8);
	struct devmig_hdr h;
	memcpy(&h, reply, sizeof(h));
	assert_int_equal(h.msg_id, 0x4242);
	assert_int_equal(h.cmd, DEVMIG_CMD_REGION_WRITE_MULTI);
	assert_int_equal(h.msg_size, DEVMIG_HDR_SIZE + 8);
	assert_int_equal(h.flags & DEVMIG_HDR_TYPE_MASK, DEVMIG_HDR_TYPE_REPLY);
	assert_int_equal(h.flags & DEVMIG_HDR_ERROR, 0);
	assert_int_equal(h.error_no, 0);
	uint64_t cnt;
	memcpy(&cnt, reply + DEVMIG_HDR_SIZE, 8);
	assert_int_equal(cnt, 3);

	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(rd32(f->c, 0, REG_SCRATCH0 + 4 * i), 0xa0 + i);
}

/* ---- 7. DEVICE_RESET ---- */

static void test_device_reset_clears_registers(void **state)
{
	struct fx *f = *state;
	enum devmig_state st = DEVMIG_STATE_ERROR;

	wr32(f->c, 0, REG_SCRATCH0, 0x5555);
	assert_int_equal(rd32(f->c, 0, REG_SCRATCH0), 0x5555);
	assert_int_equal(devmig_client_reset(f->c), 0);
	assert_int_equal(rd32(f->c, 0, REG_SCRATCH0), 0);
	assert_int_equal(devmig_client_get_state(f->c, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_RUNNING);
	assert_int_equal(devmig_device_state(f->dev), DEVMIG_STATE_RUNNING);
}

/* ---- 8. GET_IRQ_INFO ---- */

static void test_irq_info_counts(void **state)
{
	struct fx *f = *state;
	struct devmig_irq_info ii;

	memset(&ii, 0, sizeof(ii));
	assert_int_equal(devmig_client_irq_info(f->c, VFIO_PCI_MSIX_IRQ_INDEX, &ii), 0);
	assert_int_equal(ii.index, VFIO_PCI_MSIX_IRQ_INDEX);
	assert_int_equal(ii.count, 1);
	assert_true(ii.flags & VFIO_IRQ_INFO_EVENTFD);

	memset(&ii, 0xff, sizeof(ii));
	assert_int_equal(devmig_client_irq_info(f->c, VFIO_PCI_INTX_IRQ_INDEX, &ii), 0);
	assert_int_equal(ii.count, 0);

	memset(&ii, 0xff, sizeof(ii));
	assert_int_equal(devmig_client_irq_info(f->c, VFIO_PCI_MSI_IRQ_INDEX, &ii), 0);
	assert_int_equal(ii.count, 0);
}

/* ---- 9. SET_IRQS and a real MSI-X interrupt ---- */

static void test_set_irqs_msix_delivery_mask_pending(void **state)
{
	struct fx *f = *state;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(efd >= 0);

	assert_int_equal(devmig_client_set_irqs(f->c, VFIO_PCI_MSIX_IRQ_INDEX,
						VFIO_IRQ_SET_DATA_EVENTFD |
							VFIO_IRQ_SET_ACTION_TRIGGER,
						0, 1, &efd),
			 0);

	unsigned msix = find_cap(f->c, 0x11);
	assert_int_not_equal(msix, 0);
	uint16_t ctl = 0;
	assert_int_equal(devmig_client_region_read(f->c, CFG_REGION, msix + 2, &ctl, 2), 0);
	ctl |= 0x8000; /* MSI-X enable */
	assert_int_equal(devmig_client_region_write(f->c, CFG_REGION, msix + 2, &ctl, 2), 0);
	/* PCI: MSI-X vectors come out of reset masked (vector control bit 0). */
	assert_int_equal(rd32(f->c, 1, 12) & 1, 1);
	wr32(f->c, 1, 12, 0);

	wr32(f->c, 0, REG_THRESHOLD, 10);
	wr32(f->c, 0, REG_COUNT, 10);
	assert_int_equal(wait_efd(efd, 5000), 1);

	/* Mask vector 0: the interrupt stays pending in the PBA. */
	wr32(f->c, 1, 12, 1);
	wr32(f->c, 0, REG_THRESHOLD, 30);
	wr32(f->c, 0, REG_COUNT, 20);
	assert_int_equal(wait_efd(efd, 200), 0);
	assert_int_equal(rd32(f->c, 1, 2048) & 1, 1);

	/* Unmask: the pending interrupt is delivered. */
	wr32(f->c, 1, 12, 0);
	assert_int_equal(wait_efd(efd, 5000), 1);
	close(efd);
}

/* QEMU's way: it emulates the MSI-X table and never writes ours; it reads the PBA. */
static void test_msix_unwritten_table_delivers(void **state)
{
	struct fx *f = *state;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(efd >= 0);

	assert_int_equal(devmig_client_set_irqs(f->c, VFIO_PCI_MSIX_IRQ_INDEX,
						VFIO_IRQ_SET_DATA_EVENTFD |
							VFIO_IRQ_SET_ACTION_TRIGGER,
						0, 1, &efd),
			 0);
	unsigned msix = find_cap(f->c, 0x11);
	uint16_t ctl = 0x8000; /* MSI-X enable, function unmasked */
	assert_int_equal(devmig_client_region_write(f->c, CFG_REGION, msix + 2, &ctl, 2), 0);
	for (uint32_t i = 1; i <= 20; i++) {
		wr32(f->c, 0, REG_THRESHOLD, i);
		wr32(f->c, 0, REG_COUNT, 1);
		assert_int_equal(wait_efd(efd, 5000), 1);
	}
	assert_int_equal(rd32(f->c, 1, 2048), 0);	/* nothing pending */
	assert_int_equal(rd32(f->c, 1, 12) & 1, 1);	/* the table still reads as reset */
	close(efd);
}

/* ---- 10. DMA_MAP/UNMAP with an fd ---- */

static void test_dma_map_fd_device_access_and_unmap(void **state)
{
	struct fx *f = *state;
	uint8_t *mem;
	int mfd = guest_mem(MIB, &mem);
	char buf[16];

	assert_int_equal(devmig_client_dma_map(f->c, 0x100000, MIB,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, mfd, 0, NULL),
			 0);
	assert_int_equal(devmig_device_dma_write(f->dev, 0x100010, "hello", 5), 0);
	assert_memory_equal(mem + 0x10, "hello", 5);

	memcpy(mem + 0x2000, "from-guest", 10);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(devmig_device_dma_read(f->dev, 0x102000, buf, 10), 0);
	assert_memory_equal(buf, "from-guest", 10);

	assert_int_equal(devmig_client_dma_unmap(f->c, 0x100000, MIB), 0);
	assert_int_equal(devmig_device_dma_read(f->dev, 0x102000, buf, 10), -EFAULT);

	munmap(mem, MIB);
	close(mfd);
}

/* ---- 11. DMA through messages ---- */

struct dma_job {
	struct devmig_device *dev;
	uint8_t data[100];
	uint8_t got[100];
	int wrc, rrc;
	atomic_bool done;
};

static void *dma_thread(void *arg)
{
	struct dma_job *j = arg;

	j->wrc = devmig_device_dma_write(j->dev, 0x200000, j->data, sizeof(j->data));
	j->rrc = devmig_device_dma_read(j->dev, 0x201000, j->got, sizeof(j->got));
	atomic_store(&j->done, true);
	return NULL;
}

static void test_dma_map_without_fd_uses_messages(void **state)
{
	struct fx *f = *state;
	static uint8_t buf[8192];
	static struct dma_job j;
	pthread_t th;

	memset(buf, 0, sizeof(buf));
	for (unsigned i = 0; i < 100; i++)
		buf[4096 + i] = (uint8_t)(0x80 + i);
	memset(&j, 0, sizeof(j));
	j.dev = f->dev;
	for (unsigned i = 0; i < sizeof(j.data); i++)
		j.data[i] = (uint8_t)(i * 7 + 1);
	atomic_init(&j.done, false);

	assert_int_equal(devmig_client_dma_map(f->c, 0x200000, sizeof(buf),
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, -1, 0, buf),
			 0);
	assert_int_equal(pthread_create(&th, NULL, dma_thread, &j), 0);

	int64_t deadline = now_ms() + 10000;
	while (!atomic_load(&j.done) && now_ms() < deadline) {
		int rc = devmig_client_poll(f->c);
		assert_true(rc >= 0);
		struct pollfd p = { .fd = devmig_client_fd(f->c), .events = POLLIN };
		poll(&p, 1, 10);
	}
	bool finished = atomic_load(&j.done);
	if (!finished) {
		/* Let the thread finish (it is blocked on the server) before failing. */
		while (!atomic_load(&j.done)) {
			devmig_client_poll(f->c);
			struct pollfd p = { .fd = devmig_client_fd(f->c), .events = POLLIN };
			poll(&p, 1, 10);
		}
	}
	pthread_join(th, NULL);
	assert_true(finished);
	assert_int_equal(j.wrc, 0);
	assert_int_equal(j.rrc, 0);
	assert_memory_equal(buf, j.data, sizeof(j.data));
	assert_memory_equal(j.got, buf + 4096, sizeof(j.got));

	assert_int_equal(devmig_client_dma_unmap(f->c, 0x200000, sizeof(buf)), 0);
}

/* ---- 12. DEVICE_FEATURE ---- */

static void test_device_feature_migration_queries(void **state)
{
	struct fx *f = *state;
	uint64_t caps = 0, bytes = 0, a = 0, b = 0;
	enum devmig_state st = DEVMIG_STATE_ERROR;

	assert_int_equal(devmig_client_feature_probe(f->c, DEVMIG_FEATURE_MIGRATION,
						     DEVMIG_FEATURE_GET),
			 0);
	assert_int_equal(devmig_client_mig_caps(f->c, &caps), 0);
	assert_int_equal(caps, DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P);
	assert_int_equal(devmig_client_get_state(f->c, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_RUNNING);
	assert_int_equal(devmig_client_stop_copy_size(f->c, &bytes), 0);
	assert_true(bytes > 0);
	assert_int_equal(devmig_client_precopy_info(f->c, &a, &b), -ENOTTY);
	assert_int_equal(devmig_client_feature_probe(f->c, 0x55, DEVMIG_FEATURE_GET), -ENOTTY);
}

/* ---- 13. DMA logging ---- */

static void dirty(struct devmig_device *dev, unsigned page)
{
	uint32_t v = page;
	assert_int_equal(devmig_device_dma_write(dev, 0x100000 + page * PG, &v, 4), 0);
}

static void test_dma_logging_start_report_stop(void **state)
{
	struct fx *f = *state;
	uint8_t *mem;
	int mfd = guest_mem(MIB, &mem);
	uint64_t pgsz = PG, bm[4];
	const struct devmig_dma_logging_range range = { .iova = 0x100000, .length = MIB };

	assert_int_equal(devmig_log_bitmap_size(MIB, PG), sizeof(bm));
	assert_int_equal(devmig_client_dma_map(f->c, 0x100000, MIB,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, mfd, 0, NULL),
			 0);
	assert_int_equal(devmig_client_log_start(f->c, &pgsz, &range, 1), 0);
	assert_int_equal(pgsz, PG);

	dirty(f->dev, 0);
	dirty(f->dev, 5);
	dirty(f->dev, 255);
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(devmig_client_log_report(f->c, 0x100000, MIB, PG, bm), 0);
	assert_int_equal(bm[0], (1ull << 0) | (1ull << 5));
	assert_int_equal(bm[1], 0);
	assert_int_equal(bm[2], 0);
	assert_int_equal(bm[3], 1ull << 63);

	/* Read-and-clear. */
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(devmig_client_log_report(f->c, 0x100000, MIB, PG, bm), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(bm[i], 0);

	/* A coarser page size: page 5 (4 KiB) is page 2 (8 KiB). */
	dirty(f->dev, 5);
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(devmig_client_log_report(f->c, 0x100000, MIB, 8192, bm), 0);
	assert_int_equal(bm[0], 1ull << 2);
	assert_int_equal(bm[1], 0);

	/* A sub-range: one page, 0x105000. */
	dirty(f->dev, 5);
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(devmig_client_log_report(f->c, 0x105000, 0x1000, PG, bm), 0);
	assert_int_equal(bm[0], 1);

	assert_int_equal(devmig_client_log_stop(f->c), 0);
	assert_int_equal(devmig_client_log_report(f->c, 0x100000, MIB, PG, bm), -EINVAL);

	assert_int_equal(devmig_client_dma_unmap(f->c, 0x100000, MIB), 0);
	munmap(mem, MIB);
	close(mfd);
}

/* ---- 14. MIG_DATA_READ / MIG_DATA_WRITE ---- */

static void test_migration_data_read_write_round_trip(void **state)
{
	struct fx *f = *state;
	struct fx_buf st = { 0 };

	wr32(f->c, 0, REG_COUNT, 7);
	wr32(f->c, 0, REG_SCRATCH1, 0xabcd);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_STOP_COPY), 0);
	fx_buf_read_stream(&st, f->c, 100);
	const uint8_t *stream = st.p;
	size_t total = st.len;
	if (total <= 4096)
		fail_msg("migration stream is %zu bytes, expected > 4096", total);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_RUNNING), 0);

	/* The destination: a second device and server in this process. */
	struct fx_server d = { 0 };
	fx_serve_variant(&d, f->dir, "dst", &devmig_variant_counter, NULL);
	struct devmig_client *dc = fx_connect(&d, NULL);

	assert_int_equal(devmig_client_set_state(dc, DEVMIG_STATE_RESUMING), 0);
	for (size_t i = 0; i < total; i++)
		assert_int_equal(devmig_client_mig_write(dc, stream + i, 1), 0);
	assert_int_equal(devmig_client_set_state(dc, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(rd32(dc, 0, REG_COUNT), 7);
	assert_int_equal(rd32(dc, 0, REG_SCRATCH1), 0xabcd);

	devmig_client_close(dc);
	fx_unserve(&d);
	fx_buf_free(&st);
}

/* ---- 15. reconnect ---- */

static void test_reconnect_keeps_state_drops_dma(void **state)
{
	struct fx *f = *state;
	uint8_t *mem;
	int mfd = guest_mem(MIB, &mem);
	uint32_t v;

	wr32(f->c, 0, REG_SCRATCH2, 0x600d);
	assert_int_equal(devmig_client_dma_map(f->c, 0x100000, MIB,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, mfd, 0, NULL),
			 0);
	assert_int_equal(devmig_device_dma_read(f->dev, 0x100000, &v, 4), 0);

	devmig_client_close(f->c);
	f->c = fx_connect(&f->s, NULL);
	assert_int_equal(rd32(f->c, 0, REG_SCRATCH2), 0x600d);
	assert_int_equal(devmig_device_dma_read(f->dev, 0x100000, &v, 4), -EFAULT);

	munmap(mem, MIB);
	close(mfd);
}


/* ---- 16. what libvfio-user's client sends and expects ---- */

/* Send m (encoded here) and read the one reply into rep (cap bytes); its length. */
static size_t raw_xact(struct devmig_client *c, const struct devmig_msg *m, void *rep, size_t cap)
{
	static uint8_t buf[1 << 17];
	enum devmig_wire_err err;
	size_t n = devmig_encode(buf, sizeof(buf), m, &err);
	assert_int_equal(err, DEVMIG_WIRE_OK);
	ssize_t r = devmig_client_raw(c, buf, n, NULL, 0, rep, cap);
	assert_true(r >= (ssize_t)DEVMIG_HDR_SIZE);
	return (size_t)r;
}

static void cmd(struct devmig_msg *m, uint16_t c)
{
	memset(m, 0, sizeof(*m));
	m->hdr.msg_id = 0x77;
	m->hdr.cmd = c;
	m->hdr.flags = DEVMIG_HDR_TYPE_COMMAND;
}

/* One MIG_DATA_READ of ask bytes by hand: the reply's header and fixed part. */
static void raw_mig_read(struct devmig_client *c, uint32_t ask, struct devmig_hdr *h,
			 struct devmig_mig_data *md, uint8_t *rep, size_t cap)
{
	struct devmig_msg m;
	cmd(&m, DEVMIG_CMD_MIG_DATA_READ);
	m.u.mig_data.md.argsz = 8 + ask;
	m.u.mig_data.md.size = ask;
	size_t n = raw_xact(c, &m, rep, cap);
	memcpy(h, rep, sizeof(*h));
	assert_false(h->flags & DEVMIG_HDR_ERROR);
	assert_int_equal(h->msg_size, n);
	memcpy(md, rep + 16, sizeof(*md));
}

static void test_mig_read_padded_for_plain_clients_exact_when_negotiated(void **state)
{
	struct fx *f = *state;
	static uint8_t rep[16 + 8 + 65536];
	struct devmig_hdr h;
	struct devmig_mig_data md;
	const uint32_t ask = 65536;

	/* devmig's client asks for exact replies (the default set of extensions);
	 * without the data_fd one, whose data never comes in MIG_DATA_READ. */
	devmig_client_close(f->c);
	f->c = fx_connect(&f->s, &(struct devmig_client_config){
				 .ext = DEVMIG_EXT_ALL & ~DEVMIG_EXT_DATA_FD });
	assert_true(devmig_client_has_ext(f->c, DEVMIG_EXT_EXACT_MIG_READ));
	wr32(f->c, 0, REG_SCRATCH0, 0x5eed);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_STOP_COPY), 0);
	raw_mig_read(f->c, ask, &h, &md, rep, sizeof(rep));
	uint32_t exact = md.size;
	assert_true(exact > 0 && exact < ask);
	assert_int_equal(h.msg_size, 16 + 8 + exact);
	assert_int_equal(md.argsz, 8 + exact);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_RUNNING), 0);
	devmig_client_close(f->c);

	/* A client that negotiated nothing gets libvfio-user's shape: padded to the ask. */
	f->c = fx_connect(&f->s, &(struct devmig_client_config){ .no_ext = true });
	assert_false(devmig_client_has_ext(f->c, DEVMIG_EXT_EXACT_MIG_READ));
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_STOP_COPY), 0);
	raw_mig_read(f->c, ask, &h, &md, rep, sizeof(rep));
	assert_int_equal(h.msg_size, 16 + 8 + ask);
	assert_int_equal(md.size, exact);       /* size and argsz give the real amount */
	assert_int_equal(md.argsz, 8 + exact);
	for (size_t i = 24 + exact; i < h.msg_size; i++)
		assert_int_equal(rep[i], 0);
	/* The end: an empty reply, still padded. */
	raw_mig_read(f->c, 4096, &h, &md, rep, sizeof(rep));
	assert_int_equal(md.size, 0);
	assert_int_equal(h.msg_size, 16 + 8 + 4096);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_RUNNING), 0);

	/* devmig's own client reads through the padding: the stream loads elsewhere. */
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_STOP_COPY), 0);
	struct fx_buf st = { 0 };
	fx_buf_read_stream(&st, f->c, 4096);
	assert_int_equal(st.len, exact);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_RUNNING), 0);
	struct fx_server dst;
	fx_serve_variant(&dst, f->dir, "dst", &devmig_variant_counter, NULL);
	struct devmig_client *dc = fx_connect(&dst, NULL);
	assert_int_equal(devmig_client_set_state(dc, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(dc, st.p, st.len), 0);
	assert_int_equal(devmig_client_set_state(dc, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(rd32(dc, 0, REG_SCRATCH0), 0x5eed);
	devmig_client_close(dc);
	fx_unserve(&dst);
	fx_buf_free(&st);
}

/* A DEVICE_FEATURE carrying data; reply into rep, its payload compared with what was sent. */
static size_t raw_feature(struct devmig_client *c, uint32_t flags, uint32_t argsz,
			  const void *data, size_t len, uint8_t *rep, size_t cap)
{
	struct devmig_msg m;
	cmd(&m, DEVMIG_CMD_DEVICE_FEATURE);
	m.u.feature.f.flags = flags;
	m.u.feature.f.argsz = argsz;
	m.u.feature.data = data;
	m.u.feature.data_len = len;
	return raw_xact(c, &m, rep, cap);
}

static void test_feature_extra_data_accepted_and_set_probe_echo_it(void **state)
{
	struct fx *f = *state;
	uint8_t rep[512];
	struct devmig_hdr h;
	struct devmig_feature fh;

	/* DMA_LOGGING_STOP with START's control structure, as libvfio-user sends it. */
	struct devmig_feature_dma_logging_control ctl = { .page_size = PG };
	size_t n = raw_feature(f->c, DEVMIG_FEATURE_SET | DEVMIG_FEATURE_DMA_LOGGING_STOP,
			       8 + sizeof(ctl), &ctl, sizeof(ctl), rep, sizeof(rep));
	memcpy(&h, rep, sizeof(h));
	assert_false(h.flags & DEVMIG_HDR_ERROR);
	assert_int_equal(n, 16 + 8 + sizeof(ctl)); /* the whole request echoed */
	memcpy(&fh, rep + 16, sizeof(fh));
	assert_int_equal(fh.argsz, 8 + sizeof(ctl));
	assert_memory_equal(rep + 24, &ctl, sizeof(ctl));

	/* SET MIG_DEVICE_STATE with 8 bytes more than it needs: done, echoed. */
	uint8_t st[16] = { 0 };
	st[0] = DEVMIG_STATE_STOP;
	memset(st + 8, 0xa5, 8);
	n = raw_feature(f->c, DEVMIG_FEATURE_SET | DEVMIG_FEATURE_MIG_DEVICE_STATE, 8 + 16, st, 16,
			rep, sizeof(rep));
	memcpy(&h, rep, sizeof(h));
	assert_false(h.flags & DEVMIG_HDR_ERROR);
	assert_int_equal(n, 16 + 8 + 16);
	/* Echoed, but for data_fd: this client has the data_fd extension, and
	 * the server says no descriptor came (the arc opened no session). */
	assert_memory_equal(rep + 24, st, 4);
	uint32_t dfd;
	memcpy(&dfd, rep + 28, 4);
	assert_int_equal(dfd, DEVMIG_DATA_FD_NONE);
	assert_memory_equal(rep + 32, st + 8, 8);
	enum devmig_state now;
	assert_int_equal(devmig_client_get_state(f->c, &now), 0);
	assert_int_equal(now, DEVMIG_STATE_STOP);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_RUNNING), 0);

	/* A GET carrying room for its answer (QEMU's shape): answered normally. */
	uint64_t room = 0xffffffffffffffffull, caps;
	n = raw_feature(f->c, DEVMIG_FEATURE_GET | DEVMIG_FEATURE_MIGRATION, 16, &room, 8, rep,
			sizeof(rep));
	assert_int_equal(n, 16 + 8 + 8);
	memcpy(&caps, rep + 24, 8);
	assert_int_equal(caps, DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P);

	/* PROBE with data: echoed too. */
	n = raw_feature(f->c, DEVMIG_FEATURE_PROBE | DEVMIG_FEATURE_SET |
			DEVMIG_FEATURE_DMA_LOGGING_START, 24, &ctl, sizeof(ctl), rep, sizeof(rep));
	memcpy(&h, rep, sizeof(h));
	assert_false(h.flags & DEVMIG_HDR_ERROR);
	assert_int_equal(n, 16 + 8 + sizeof(ctl));

	/* START with one range and 16 bytes past it: started; the echo has the page size. */
	uint8_t *mem;
	int mfd = guest_mem(MIB, &mem);
	assert_int_equal(devmig_client_dma_map(f->c, 0x100000, MIB,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, mfd, 0, NULL),
			 0);
	uint8_t start[16 + 16 + 16];
	struct devmig_feature_dma_logging_control sc = { .page_size = PG, .num_ranges = 1 };
	struct devmig_dma_logging_range r = { 0x100000, MIB };
	memcpy(start, &sc, 16);
	memcpy(start + 16, &r, 16);
	memset(start + 32, 0x5a, 16);
	n = raw_feature(f->c, DEVMIG_FEATURE_SET | DEVMIG_FEATURE_DMA_LOGGING_START,
			8 + sizeof(start), start, sizeof(start), rep, sizeof(rep));
	memcpy(&h, rep, sizeof(h));
	assert_false(h.flags & DEVMIG_HDR_ERROR);
	assert_int_equal(n, 16 + 8 + sizeof(start));
	assert_memory_equal(rep + 24, start, sizeof(start));
	dirty(f->dev, 3);
	uint64_t bm[4];
	assert_int_equal(devmig_client_log_report(f->c, 0x100000, MIB, PG, bm), 0);
	assert_int_equal(bm[0], 1ull << 3);
	assert_int_equal(devmig_client_log_stop(f->c), 0);
	assert_int_equal(devmig_client_dma_unmap(f->c, 0x100000, MIB), 0);
	munmap(mem, MIB);
	close(mfd);

	/* What a feature needs is still needed: SET MIG_DEVICE_STATE with 4 bytes. */
	n = raw_feature(f->c, DEVMIG_FEATURE_SET | DEVMIG_FEATURE_MIG_DEVICE_STATE, 8 + 4, st, 4,
			rep, sizeof(rep));
	memcpy(&h, rep, sizeof(h));
	assert_true(h.flags & DEVMIG_HDR_ERROR);
	assert_int_equal(h.error_no, EINVAL);
	assert_int_equal(devmig_client_get_state(f->c, &now), 0);
	assert_int_equal(now, DEVMIG_STATE_RUNNING);
}

static void test_dma_unmap_all_drops_every_mapping(void **state)
{
	struct fx *f = *state;
	uint8_t *mem;
	int mfd = guest_mem(2 * MIB, &mem);
	uint8_t rep[64];
	uint32_t v;

	assert_int_equal(devmig_client_dma_map(f->c, 0x100000, MIB,
					       DEVMIG_DMA_READ | DEVMIG_DMA_WRITE, mfd, 0, NULL),
			 0);
	assert_int_equal(devmig_client_dma_map(f->c, 0x400000, MIB, DEVMIG_DMA_READ, mfd, MIB, NULL),
			 0);
	assert_int_equal(devmig_device_dma_read(f->dev, 0x100000, &v, 4), 0);
	assert_int_equal(devmig_device_dma_read(f->dev, 0x400000, &v, 4), 0);

	/* addr or size non-zero with FLAG_ALL: refused, nothing unmapped. */
	struct devmig_msg m;
	cmd(&m, DEVMIG_CMD_DMA_UNMAP);
	m.u.dma_unmap.argsz = 24;
	m.u.dma_unmap.flags = DEVMIG_DMA_UNMAP_ALL;
	m.u.dma_unmap.addr = 0x100000;
	raw_xact(f->c, &m, rep, sizeof(rep));
	struct devmig_hdr h;
	memcpy(&h, rep, sizeof(h));
	assert_true(h.flags & DEVMIG_HDR_ERROR);
	assert_int_equal(h.error_no, EINVAL);
	assert_int_equal(devmig_device_dma_read(f->dev, 0x100000, &v, 4), 0);

	/* addr = size = 0: everything goes; the reply echoes the request. */
	m.u.dma_unmap.addr = 0;
	size_t n = raw_xact(f->c, &m, rep, sizeof(rep));
	memcpy(&h, rep, sizeof(h));
	assert_false(h.flags & DEVMIG_HDR_ERROR);
	assert_int_equal(n, 16 + 24);
	assert_memory_equal(rep + 16, &m.u.dma_unmap, 24);
	assert_int_equal(devmig_device_dma_read(f->dev, 0x100000, &v, 4), -EFAULT);
	assert_int_equal(devmig_device_dma_read(f->dev, 0x400000, &v, 4), -EFAULT);
	/* The same ranges map again: nothing is left behind. */
	assert_int_equal(devmig_client_dma_map(f->c, 0x100000, MIB, DEVMIG_DMA_READ, mfd, 0, NULL), 0);
	assert_int_equal(devmig_client_dma_unmap(f->c, 0x100000, MIB), 0);
	munmap(mem, 2 * MIB);
	close(mfd);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_version_negotiates_extensions_and_caps),
		T(test_version_advertises_migration),
		T(test_version_no_migration_for_a_plain_device),
		T(test_device_info_reports_pci_regions_irqs),
		T(test_region_info_sizes_and_flags),
		T(test_config_space_ids_caps_and_command),
		T(test_bar0_registers_read_write),
		T(test_region_write_multi_raw),
		T(test_device_reset_clears_registers),
		T(test_irq_info_counts),
		T(test_set_irqs_msix_delivery_mask_pending),
		T(test_msix_unwritten_table_delivers),
		T(test_dma_map_fd_device_access_and_unmap),
		T(test_dma_map_without_fd_uses_messages),
		T(test_device_feature_migration_queries),
		T(test_dma_logging_start_report_stop),
		T(test_migration_data_read_write_round_trip),
		T(test_reconnect_keeps_state_drops_dma),
		T(test_mig_read_padded_for_plain_clients_exact_when_negotiated),
		T(test_feature_extra_data_accepted_and_set_probe_echo_it),
		T(test_dma_unmap_all_drops_every_mapping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
