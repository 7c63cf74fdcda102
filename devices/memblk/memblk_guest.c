/* SPDX-License-Identifier: MIT */
/* memblk: the guest-side driver library (see memblk_guest.h). */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devmig/client.h"
#include "memblk_guest.h"

#define MBG_READY_TIMEOUT_MS 5000

static int client_rd(void *opaque, uint32_t off, uint32_t *val)
{
	return devmig_client_region_read(opaque, 0, off, val, 4);
}

static int client_wr(void *opaque, uint32_t off, uint32_t val)
{
	return devmig_client_region_write(opaque, 0, off, &val, 4);
}

struct mbg_mmio mbg_mmio_client(struct devmig_client *c)
{
	struct mbg_mmio io = { c, client_rd, client_wr };
	return io;
}

static int rd(struct mbg *g, uint32_t off, uint32_t *v)
{
	return g->io.read32(g->io.opaque, off, v);
}

static int wr(struct mbg *g, uint32_t off, uint32_t v)
{
	return g->io.write32(g->io.opaque, off, v);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mbg_init(struct mbg *g, const struct mbg_mmio *io, void *mem, uint64_t iova,
	     uint64_t mem_size, int irq_fd)
{
	uint32_t id = 0, ver = 0, lo = 0, hi = 0, bs = 0, mb = 0, cs = 0;

	memset(g, 0, sizeof(*g));
	g->io = *io;
	g->mem = mem;
	g->iova = iova;
	g->mem_size = mem_size;
	g->irq_fd = irq_fd;
	int rc = rd(g, MB_REG_ID, &id);
	if (!rc)
		rc = rd(g, MB_REG_VERSION, &ver);
	if (!rc)
		rc = rd(g, MB_REG_CAP_LO, &lo);
	if (!rc)
		rc = rd(g, MB_REG_CAP_HI, &hi);
	if (!rc)
		rc = rd(g, MB_REG_BLOCK_SIZE, &bs);
	if (!rc)
		rc = rd(g, MB_REG_MAX_BLOCKS, &mb);
	if (!rc)
		rc = rd(g, MB_REG_CHUNK_SIZE, &cs);
	if (rc)
		return rc;
	if (id != MB_ID || (ver >> 16) != (MB_HW_VERSION >> 16) || bs != MB_BLOCK_SIZE)
		return -ENODEV;
	g->capacity = (uint64_t)hi << 32 | lo;
	g->max_blocks = mb;
	g->chunk_size = cs;
	pthread_mutex_init(&g->lock, NULL);
	return 0;
}

void mbg_destroy(struct mbg *g)
{
	pthread_mutex_destroy(&g->lock);
}

void mbg_set_route(struct mbg *g, const struct mbg_mmio *io, int irq_fd)
{
	pthread_mutex_lock(&g->lock);
	g->io = *io;
	g->irq_fd = irq_fd;
	pthread_mutex_unlock(&g->lock);
}

void *mbg_ptr(struct mbg *g, uint64_t iova, uint64_t len)
{
	if (iova < g->iova || len > g->mem_size || iova - g->iova > g->mem_size - len)
		return NULL;
	return g->mem + (iova - g->iova);
}

static int wait_status(struct mbg *g, uint32_t mask, uint32_t want, uint32_t *sts)
{
	int64_t deadline = now_ms() + MBG_READY_TIMEOUT_MS;
	for (;;) {
		int rc = rd(g, MB_REG_STATUS, sts);
		if (rc)
			return rc;
		if ((*sts & mask) == want)
			return 0;
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		sched_yield();
	}
}

int mbg_disable(struct mbg *g)
{
	uint32_t sts;
	int rc = wr(g, MB_REG_CONTROL, 0);
	return rc ? rc : wait_status(g, MB_STS_READY, 0, &sts);
}

int mbg_setup_queues(struct mbg *g, uint64_t sq_iova, uint32_t sq_size, uint64_t cq_iova,
		     uint32_t cq_size, uint32_t *err_code)
{
	uint32_t sts = 0, err = 0;

	pthread_mutex_lock(&g->lock);
	int rc = mbg_disable(g);
	if (!rc)
		rc = wr(g, MB_REG_SQ_BASE_LO, (uint32_t)sq_iova);
	if (!rc)
		rc = wr(g, MB_REG_SQ_BASE_HI, (uint32_t)(sq_iova >> 32));
	if (!rc)
		rc = wr(g, MB_REG_SQ_SIZE, sq_size);
	if (!rc)
		rc = wr(g, MB_REG_CQ_BASE_LO, (uint32_t)cq_iova);
	if (!rc)
		rc = wr(g, MB_REG_CQ_BASE_HI, (uint32_t)(cq_iova >> 32));
	if (!rc)
		rc = wr(g, MB_REG_CQ_SIZE, cq_size);
	if (!rc)
		rc = wr(g, MB_REG_CONTROL, MB_CTRL_EN);
	if (!rc)
		rc = rd(g, MB_REG_STATUS, &sts);
	if (!rc && !(sts & MB_STS_READY)) {
		rd(g, MB_REG_ERR_CODE, &err);
		rc = -EIO;
	}
	if (err_code)
		*err_code = err;
	if (!rc) {
		g->sq_iova = sq_iova;
		g->cq_iova = cq_iova;
		g->sq_size = sq_size;
		g->cq_size = cq_size;
		g->sq_tail = g->sq_head = g->cq_head = 0;
		g->phase = 1;
		g->submitted = g->completed = 0;
		/* Clear the CQ so stale entries can never look valid. */
		void *cq = mbg_ptr(g, cq_iova, (uint64_t)cq_size * MB_CQE_SIZE);
		if (cq)
			memset(cq, 0, (size_t)cq_size * MB_CQE_SIZE);
	}
	pthread_mutex_unlock(&g->lock);
	return rc;
}

int mbg_submit_many(struct mbg *g, const struct mb_sqe *e, unsigned n)
{
	unsigned done = 0;

	pthread_mutex_lock(&g->lock);
	uint32_t tail = g->sq_tail;
	while (done < n && g->sq_size) {
		uint32_t next = (tail + 1) & (g->sq_size - 1);
		if (next == g->sq_head || g->submitted + done - g->completed >= g->cq_size - 1)
			break;
		uint8_t *slot = mbg_ptr(g, g->sq_iova + (uint64_t)tail * MB_SQE_SIZE, MB_SQE_SIZE);
		if (!slot)
			break;
		memcpy(slot, &e[done], MB_SQE_SIZE);
		tail = next;
		done++;
	}
	int rc = done ? wr(g, MB_REG_SQ_TAIL, tail) : 0;
	if (!rc) {
		g->sq_tail = tail;
		g->submitted += done;
	}
	pthread_mutex_unlock(&g->lock);
	return rc ? rc : (int)done;
}

int mbg_submit(struct mbg *g, const struct mb_sqe *e)
{
	int n = mbg_submit_many(g, e, 1);
	return n < 0 ? n : n ? 0 : -EAGAIN;
}

int mbg_reap(struct mbg *g, struct mb_cqe *out, unsigned max)
{
	uint32_t tail;
	int n = 0;
	bool bad = false;

	pthread_mutex_lock(&g->lock);
	int rc = rd(g, MB_REG_CQ_TAIL, &tail);
	if (rc || !g->cq_size || tail >= g->cq_size) {
		pthread_mutex_unlock(&g->lock);
		return rc ? rc : -EIO;
	}
	while (g->cq_head != tail && (unsigned)n < max) {
		const uint8_t *p =
			mbg_ptr(g, g->cq_iova + (uint64_t)g->cq_head * MB_CQE_SIZE, MB_CQE_SIZE);
		struct mb_cqe c;
		memcpy(&c, p, sizeof(c));
		if ((c.flags & 1) != g->phase) {
			bad = true; /* CQ_TAIL says it is there, the phase says it is not */
			break;
		}
		out[n++] = c;
		g->sq_head = c.sq_head & (g->sq_size - 1);
		g->cq_head = (g->cq_head + 1) & (g->cq_size - 1);
		if (!g->cq_head)
			g->phase ^= 1;
		g->completed++;
	}
	if (n > 0)
		rc = wr(g, MB_REG_CQ_HEAD, g->cq_head);
	pthread_mutex_unlock(&g->lock);
	if (rc)
		return rc;
	return n == 0 && bad ? -EIO : n;
}

int mbg_wait(struct mbg *g, int timeout_ms)
{
	pthread_mutex_lock(&g->lock);
	int fd = g->irq_fd;
	uint32_t head = g->cq_head;
	pthread_mutex_unlock(&g->lock);

	if (fd >= 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int n = poll(&p, 1, timeout_ms);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		uint64_t v;
		if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return -errno;
		return 0;
	}
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		uint32_t tail;
		int rc = rd(g, MB_REG_CQ_TAIL, &tail);
		if (rc)
			return rc;
		if (tail != head)
			return 0;
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		sched_yield();
	}
}

uint64_t mbg_outstanding(struct mbg *g)
{
	pthread_mutex_lock(&g->lock);
	uint64_t n = g->submitted - g->completed;
	pthread_mutex_unlock(&g->lock);
	return n;
}

int mbg_sync(struct mbg *g, const struct mb_sqe *e, struct mb_cqe *c, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int rc = mbg_submit(g, e);

	if (rc)
		return rc;
	for (;;) {
		struct mb_cqe got[16];
		int n = mbg_reap(g, got, 16);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			if (got[i].tag == e->tag) {
				*c = got[i];
				return 0;
			}
		}
		if (n > 0)
			continue;
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		rc = mbg_wait(g, (int)(left < 100 ? left : 100));
		if (rc && rc != -ETIMEDOUT)
			return rc;
	}
}

static uint32_t next_tag(void)
{
	static _Atomic uint32_t tag = 0x10000000;
	return tag++;
}

static int rw(struct mbg *g, uint8_t op, uint64_t lba, uint32_t nblocks, uint64_t buf_iova,
	      int timeout_ms)
{
	struct mb_sqe e = {
		.opcode = op,
		.tag = next_tag(),
		.lba = lba,
		.nblocks = nblocks,
		.buf_len = nblocks * MB_BLOCK_SIZE,
		.buf = buf_iova,
	};
	struct mb_cqe c;
	int rc = mbg_sync(g, &e, &c, timeout_ms);
	return rc ? rc : c.status;
}

int mbg_read(struct mbg *g, uint64_t lba, uint32_t nblocks, uint64_t buf_iova, int timeout_ms)
{
	return rw(g, MB_OP_READ, lba, nblocks, buf_iova, timeout_ms);
}

int mbg_write(struct mbg *g, uint64_t lba, uint32_t nblocks, uint64_t buf_iova, int timeout_ms)
{
	return rw(g, MB_OP_WRITE, lba, nblocks, buf_iova, timeout_ms);
}

int mbg_identify(struct mbg *g, uint64_t buf_iova, struct mb_identify *id, int timeout_ms)
{
	struct mb_sqe e = {
		.opcode = MB_OP_IDENTIFY,
		.tag = next_tag(),
		.buf_len = MB_IDENTIFY_SIZE,
		.buf = buf_iova,
	};
	struct mb_cqe c;
	int rc = mbg_sync(g, &e, &c, timeout_ms);
	if (rc)
		return rc;
	const void *p = mbg_ptr(g, buf_iova, MB_IDENTIFY_SIZE);
	if (!c.status && p)
		memcpy(id, p, sizeof(*id));
	return c.status;
}

int mbg_client_enable_msix(struct devmig_client *c, int efd)
{
	uint8_t ptr = 0;
	int rc = devmig_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_CAPABILITY_LIST,
					   &ptr, 1);
	for (int hops = 0; !rc && ptr && hops < 48; hops++) {
		uint8_t hdr[2];
		rc = devmig_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, ptr, hdr, 2);
		if (rc)
			return rc;
		if (hdr[0] == PCI_CAP_ID_MSIX)
			break;
		ptr = hdr[1];
	}
	if (rc)
		return rc;
	if (!ptr)
		return -ENOENT;
	uint16_t ctl;
	uint32_t table;
	rc = devmig_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, ptr + PCI_MSIX_FLAGS, &ctl,
				       2);
	if (!rc)
		rc = devmig_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX,
					       ptr + PCI_MSIX_TABLE, &table, 4);
	if (rc)
		return rc;
	ctl = (uint16_t)((ctl | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL);
	rc = devmig_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, ptr + PCI_MSIX_FLAGS,
					&ctl, 2);
	uint32_t vctl = 0;
	if (!rc)
		rc = devmig_client_region_write(c, table & PCI_MSIX_TABLE_BIR,
						(table & PCI_MSIX_TABLE_OFFSET) +
							PCI_MSIX_ENTRY_VECTOR_CTRL,
						&vctl, 4);
	if (!rc)
		rc = devmig_client_set_irqs(c, VFIO_PCI_MSIX_IRQ_INDEX,
					    VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					    0, 1, &efd);
	return rc;
}
