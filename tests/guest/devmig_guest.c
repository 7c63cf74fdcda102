// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * devmig_guest: the guest half of `make check-guest`. A PCI driver for the
 * counter (1af4:10f0) and memblk (1af4:10f1) devices as a Linux guest sees
 * them through QEMU's vfio-user-pci: it checks enumeration, ids, BARs and
 * capabilities, every register of both devices, memblk I/O through guest
 * memory (dma_alloc_coherent buffers, data compared) and counts MSI-X
 * interrupts. Each check is one kernel log line "devmig-guest: ok - ..." or
 * "devmig-guest: not ok - ..."; the last is "devmig-guest: done N checks".
 * The init script prints them and the host driver (run.sh) counts them.
 */
#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/wait.h>

#include "memblk_hw.h" /* the memblk guest interface, shared with the device */

static uint memblk_blocks;
module_param(memblk_blocks, uint, 0444);
MODULE_PARM_DESC(memblk_blocks, "memblk capacity the host served, in 4 KiB blocks");
static uint memblk_chunk = 65536;
module_param(memblk_chunk, uint, 0444);
MODULE_PARM_DESC(memblk_chunk, "memblk migration chunk size the host served");

#define COUNTER_DEVICE 0x10f0
#define CNT_COUNT 0x00
#define CNT_THRESHOLD 0x04
#define CNT_SCRATCH 0x08 /* 4 registers */
#define CNT_ID 0x18
#define CNT_FIFO_DATA 0x1c
#define CNT_FIFO_LEVEL 0x20
#define CNT_ID_VALUE 0x434e5452u
#define CNT_FIFO_SIZE 256
#define CNT_MEM_SIZE 4096 /* BAR2: memory the host maps, then MEM_SUM */
#define CNT_MEM_SUM 0x1000

#define PBA_OFFSET 2048 /* both devices: BAR1, table at 0, PBA at 2048 */
#define IRQ_WAIT_MS 3000
#define QUIET_MS 150 /* how long "no interrupt" is watched for */

static int checks, failures;
static bool seen_counter, seen_memblk;

static __printf(2, 3) bool check(bool ok, const char *fmt, ...)
{
	char line[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pr_info("devmig-guest: %sok - %s\n", ok ? "" : "not ", line);
	checks++;
	if (!ok)
		failures++;
	return ok;
}

struct gdev {
	struct pci_dev *pdev;
	const char *name;
	void __iomem *bar0, *bar1, *bar2;
	atomic_t irqs;
	wait_queue_head_t wq;
	bool irq_ok;
};

static irqreturn_t gdev_irq(int irq, void *opaque)
{
	struct gdev *g = opaque;

	atomic_inc(&g->irqs);
	wake_up(&g->wq);
	return IRQ_HANDLED;
}

/* Wait until at least want interrupts were counted; the count reached. */
static int wait_irqs(struct gdev *g, int want, unsigned int ms)
{
	wait_event_timeout(g->wq, atomic_read(&g->irqs) >= want, msecs_to_jiffies(ms));
	return atomic_read(&g->irqs);
}

static u32 rd(struct gdev *g, u32 off)
{
	return ioread32(g->bar0 + off);
}

static void wr(struct gdev *g, u32 off, u32 v)
{
	iowrite32(v, g->bar0 + off);
}

/* ---- what both devices share: ids, BARs, capabilities ---- */

/* bar2: the size of BAR2 (counter: 8 KiB, half memory the host maps), or 0. */
static void check_pci(struct gdev *g, u16 device, u32 class, u8 link_speed, u8 link_width,
		      u32 bar2)
{
	struct pci_dev *p = g->pdev;
	u16 sv, sd, flags, lnksta;
	u32 lnkcap, table, pba, bar, ext;
	int pm, msix, exp, i;
	u8 rev;

	pci_read_config_word(p, PCI_SUBSYSTEM_VENDOR_ID, &sv);
	pci_read_config_word(p, PCI_SUBSYSTEM_ID, &sd);
	pci_read_config_byte(p, PCI_REVISION_ID, &rev);
	check(p->vendor == 0x1af4 && p->device == device && p->class == class && rev == 1 &&
		      sv == 0 && sd == 0,
	      "%s: ids %04x:%04x subsystem %04x:%04x class %06x revision %u", g->name, p->vendor,
	      p->device, sv, sd, p->class, rev);

	bool bars_ok = true;
	int nbars = bar2 ? 3 : 2;
	for (i = 0; i < nbars; i++) {
		pci_read_config_dword(p, PCI_BASE_ADDRESS_0 + 4 * i, &bar);
		bars_ok &= pci_resource_len(p, i) == (i == 2 ? bar2 : 4096) &&
			   (pci_resource_flags(p, i) & IORESOURCE_MEM) &&
			   !(pci_resource_flags(p, i) & (IORESOURCE_PREFETCH | IORESOURCE_MEM_64)) &&
			   (bar & ~0xfffu) == (u32)pci_resource_start(p, i) && bar != 0 &&
			   !(bar & 0xf); /* 32-bit, memory, not prefetchable */
	}
	for (i = nbars; i < PCI_STD_NUM_BARS; i++)
		bars_ok &= pci_resource_len(p, i) == 0;
	check(bars_ok, "%s: BAR0 and BAR1 are 4 KiB 32-bit memory at %pa and %pa, BAR2 %u bytes, "
		       "BAR%d-5 absent",
	      g->name, &p->resource[0].start, &p->resource[1].start, bar2, nbars);

	pm = pci_find_capability(p, PCI_CAP_ID_PM);
	msix = pci_find_capability(p, PCI_CAP_ID_MSIX);
	exp = pci_find_capability(p, PCI_CAP_ID_EXP);
	check(pm && msix && exp && !pci_find_capability(p, PCI_CAP_ID_MSI) && !p->pin,
	      "%s: capabilities PM at 0x%x, MSI-X at 0x%x, PCIe at 0x%x; no MSI, no INTx pin",
	      g->name, pm, msix, exp);
	if (pm) {
		u16 pmc;
		pci_read_config_word(p, pm + PCI_PM_PMC, &pmc);
		check((pmc & PCI_PM_CAP_VER_MASK) == 3, "%s: PM capability version %u (3)", g->name,
		      pmc & PCI_PM_CAP_VER_MASK);
	}
	if (msix) {
		pci_read_config_word(p, msix + PCI_MSIX_FLAGS, &flags);
		pci_read_config_dword(p, msix + PCI_MSIX_TABLE, &table);
		pci_read_config_dword(p, msix + PCI_MSIX_PBA, &pba);
		check((flags & PCI_MSIX_FLAGS_QSIZE) == 0 && table == 1 && pba == (PBA_OFFSET | 1),
		      "%s: MSI-X: %u vector, table BAR1+0x%x, PBA BAR1+0x%x", g->name,
		      (flags & PCI_MSIX_FLAGS_QSIZE) + 1, table & ~7u, pba & ~7u);
	}
	if (exp) {
		pcie_capability_read_dword(p, PCI_EXP_LNKCAP, &lnkcap);
		pcie_capability_read_word(p, PCI_EXP_LNKSTA, &lnksta);
		check(pci_pcie_type(p) == PCI_EXP_TYPE_ENDPOINT &&
			      (lnkcap & PCI_EXP_LNKCAP_SLS) == link_speed &&
			      ((lnkcap & PCI_EXP_LNKCAP_MLW) >> 4) == link_width &&
			      (lnksta & PCI_EXP_LNKSTA_CLS) == link_speed &&
			      ((lnksta & PCI_EXP_LNKSTA_NLW) >> PCI_EXP_LNKSTA_NLW_SHIFT) == link_width,
		      "%s: PCIe endpoint, link capable and trained at speed %u width x%u (want %u x%u)",
		      g->name, lnksta & PCI_EXP_LNKSTA_CLS,
		      (lnksta & PCI_EXP_LNKSTA_NLW) >> PCI_EXP_LNKSTA_NLW_SHIFT, link_speed,
		      link_width);
	}
	pci_read_config_dword(p, PCI_CFG_SPACE_SIZE, &ext);
	check(p->cfg_size == PCI_CFG_SPACE_EXP_SIZE && ext == 0,
	      "%s: 4 KiB PCIe config space, no extended capabilities (header 0x%08x)", g->name, ext);
}

/* ---- MSI-X: one vector, counted ---- */

static bool setup_irq(struct gdev *g)
{
	int n = pci_alloc_irq_vectors(g->pdev, 1, 1, PCI_IRQ_MSIX);
	int rc = n == 1 ? request_irq(pci_irq_vector(g->pdev, 0), gdev_irq, 0, g->name, g) : n;

	g->irq_ok = !rc;
	check(g->irq_ok, "%s: MSI-X vector 0 allocated and requested (irq %d, rc %d)", g->name,
	      n == 1 ? pci_irq_vector(g->pdev, 0) : -1, rc);
	if (rc && n == 1)
		pci_free_irq_vectors(g->pdev);
	return g->irq_ok;
}

static void teardown_irq(struct gdev *g)
{
	if (!g->irq_ok)
		return;
	free_irq(pci_irq_vector(g->pdev, 0), g);
	pci_free_irq_vectors(g->pdev);
	g->irq_ok = false;
}

static u32 pba(struct gdev *g)
{
	return ioread32(g->bar1 + PBA_OFFSET);
}

/*
 * The function mask is config space, which QEMU forwards: the server holds
 * the interrupt pending in its PBA (QEMU reads the server's PBA for us) and
 * sends it when the mask goes. raise() makes the device interrupt once.
 */
static void check_function_mask(struct gdev *g, void (*raise)(struct gdev *g))
{
	int msix = pci_find_capability(g->pdev, PCI_CAP_ID_MSIX), before, after_mask, after, i;
	u16 flags;
	u32 pending, cleared;

	if (!g->irq_ok || !msix)
		return;
	pci_read_config_word(g->pdev, msix + PCI_MSIX_FLAGS, &flags);
	pci_write_config_word(g->pdev, msix + PCI_MSIX_FLAGS, flags | PCI_MSIX_FLAGS_MASKALL);
	before = atomic_read(&g->irqs);
	raise(g);
	/* memblk raises from its worker thread: wait for the pending bit */
	for (i = 0; i < IRQ_WAIT_MS && !((pending = pba(g)) & 1); i++)
		usleep_range(500, 1000);
	after_mask = wait_irqs(g, before + 1, QUIET_MS);
	pci_write_config_word(g->pdev, msix + PCI_MSIX_FLAGS, flags & ~PCI_MSIX_FLAGS_MASKALL);
	after = wait_irqs(g, before + 1, IRQ_WAIT_MS);
	cleared = pba(g);
	check(after_mask == before && (pending & 1) && after == before + 1 && !(cleared & 1),
	      "%s: function-masked interrupt held (PBA 0x%x) and delivered on unmask (PBA 0x%x, %d interrupt)",
	      g->name, pending, cleared, after - before);
}

/* ---- counter ---- */

static void counter_raise(struct gdev *g)
{
	u32 c = rd(g, CNT_COUNT);

	wr(g, CNT_THRESHOLD, c + 1);
	wr(g, CNT_COUNT, 1);
}

static void counter_tests(struct gdev *g)
{
	static const u8 word[] = "devmig";
	u32 v, c0, i, n, got;
	bool ok;
	int before;

	v = rd(g, CNT_ID);
	wr(g, CNT_ID, 0);
	check(v == CNT_ID_VALUE && rd(g, CNT_ID) == CNT_ID_VALUE,
	      "counter: ID reads 0x%08x (\"CNTR\") and ignores writes", v);

	ok = true;
	for (i = 0; i < 4; i++)
		wr(g, CNT_SCRATCH + 4 * i, 0xa5a50000u + i * 0x1111u);
	for (i = 0; i < 4; i++)
		ok &= rd(g, CNT_SCRATCH + 4 * i) == 0xa5a50000u + i * 0x1111u;
	wr(g, CNT_SCRATCH + 4, 0xffffffffu);
	ok &= rd(g, CNT_SCRATCH + 4) == 0xffffffffu && rd(g, CNT_SCRATCH) == 0xa5a50000u;
	check(ok, "counter: SCRATCH0-3 each keep what was written");

	c0 = rd(g, CNT_COUNT);
	wr(g, CNT_COUNT, 5);
	v = rd(g, CNT_COUNT);
	wr(g, CNT_COUNT, 7);
	check(c0 == 0 && v == 5 && rd(g, CNT_COUNT) == 12,
	      "counter: COUNT starts at %u after reset and adds what is written (5, then 12)", c0);

	wr(g, CNT_THRESHOLD, 0x12345678);
	v = rd(g, CNT_THRESHOLD);
	wr(g, CNT_THRESHOLD, 0);
	check(v == 0x12345678 && rd(g, CNT_THRESHOLD) == 0, "counter: THRESHOLD reads back");

	ok = rd(g, CNT_FIFO_LEVEL) == 0 && rd(g, CNT_FIFO_DATA) == 0;
	for (i = 0; i < sizeof(word) - 1; i++)
		wr(g, CNT_FIFO_DATA, word[i] | 0xffffff00u); /* only the low byte counts */
	ok &= rd(g, CNT_FIFO_LEVEL) == sizeof(word) - 1;
	for (i = 0; i < sizeof(word) - 1; i++)
		ok &= rd(g, CNT_FIFO_DATA) == word[i];
	ok &= rd(g, CNT_FIFO_LEVEL) == 0 && rd(g, CNT_FIFO_DATA) == 0;
	check(ok, "counter: FIFO_DATA pushes and pops bytes in order, FIFO_LEVEL counts them");

	for (i = 0; i < CNT_FIFO_SIZE + 10; i++)
		wr(g, CNT_FIFO_DATA, i);
	n = rd(g, CNT_FIFO_LEVEL);
	ok = n == CNT_FIFO_SIZE;
	for (i = 0; i < CNT_FIFO_SIZE; i++)
		ok &= rd(g, CNT_FIFO_DATA) == (i & 0xff);
	wr(g, CNT_FIFO_LEVEL, 9);
	check(ok && rd(g, CNT_FIFO_LEVEL) == 0,
	      "counter: FIFO holds %u bytes, drops the rest, FIFO_LEVEL is read-only", n);

	ok = true;
	for (v = 0x24; v < 0x1000; v += 0x1dc) {
		wr(g, v, 0xdeadbeef);
		ok &= rd(g, v) == 0;
	}
	check(ok && rd(g, 0xffc) == 0, "counter: unassigned offsets read 0 and ignore writes");

	if (!setup_irq(g))
		return;
	before = atomic_read(&g->irqs);
	for (i = 1; i <= 100; i++) {
		counter_raise(g);
		if (wait_irqs(g, before + i, IRQ_WAIT_MS) < before + i)
			break;
	}
	got = wait_irqs(g, before + 101, QUIET_MS) - before;
	check(got == 100, "counter: MSI-X vector 0 delivered %u interrupts for 100 threshold crossings",
	      got);

	before = atomic_read(&g->irqs);
	wr(g, CNT_THRESHOLD, 0);
	wr(g, CNT_COUNT, 1);
	v = rd(g, CNT_COUNT);
	wr(g, CNT_THRESHOLD, v + 10);
	wr(g, CNT_COUNT, 9);
	check(wait_irqs(g, before + 1, QUIET_MS) == before,
	      "counter: no interrupt with THRESHOLD 0 or below it");

	before = atomic_read(&g->irqs);
	wr(g, CNT_FIFO_DATA, 'a');
	n = wait_irqs(g, before + 1, IRQ_WAIT_MS) - before;
	wr(g, CNT_FIFO_DATA, 'b');
	got = wait_irqs(g, before + 2, QUIET_MS) - before;
	rd(g, CNT_FIFO_DATA);
	rd(g, CNT_FIFO_DATA);
	check(n == 1 && got == 1,
	      "counter: a push into the empty FIFO interrupts once, a second push does not");

	check_function_mask(g, counter_raise);
	teardown_irq(g);

	/* BAR2: its first 4 KiB are memory the host maps into the guest (no
	 * trap), its second half traps to the device: MEM_SUM adds the words. */
	if (!check(g->bar2 != NULL, "counter: BAR2 mapped"))
		return;
	v = 0;
	for (i = 0; i < CNT_MEM_SIZE / 4; i++) {
		iowrite32(i * 2654435761u, g->bar2 + 4 * i);
		v += i * 2654435761u;
	}
	ok = ioread32(g->bar2 + 4 * 1000) == 1000 * 2654435761u;
	check(ok && ioread32(g->bar2 + CNT_MEM_SUM) == v,
	      "counter: BAR2 memory written by the guest is seen by the device (MEM_SUM 0x%08x)", v);
}

/* ---- memblk ---- */

#define MB_RING 8
#define MB_BUF (MB_MAX_BLOCKS * MB_BLOCK_SIZE) /* 1 MiB */

struct mbq {
	struct gdev *g;
	struct mb_sqe *sq;
	struct mb_cqe *cq;
	dma_addr_t sq_dma, cq_dma;
	u32 size, sq_tail, cq_head, phase, done;
	u8 *a, *b;
	dma_addr_t a_dma, b_dma;
	u32 tag;
};

/* Enable with rings of size entries; returns STATUS. */
static u32 mbq_enable(struct mbq *q, u32 size)
{
	struct gdev *g = q->g;

	wr(g, MB_REG_CONTROL, 0);
	memset(q->cq, 0, MB_RING * sizeof(*q->cq));
	wr(g, MB_REG_SQ_BASE_LO, lower_32_bits(q->sq_dma));
	wr(g, MB_REG_SQ_BASE_HI, upper_32_bits(q->sq_dma));
	wr(g, MB_REG_SQ_SIZE, size);
	wr(g, MB_REG_CQ_BASE_LO, lower_32_bits(q->cq_dma));
	wr(g, MB_REG_CQ_BASE_HI, upper_32_bits(q->cq_dma));
	wr(g, MB_REG_CQ_SIZE, size);
	wr(g, MB_REG_CONTROL, MB_CTRL_EN);
	q->size = size;
	q->sq_tail = q->cq_head = q->done = 0;
	q->phase = 1;
	return rd(g, MB_REG_STATUS);
}

static bool mbq_disable(struct mbq *q)
{
	int i;

	wr(q->g, MB_REG_CONTROL, 0);
	for (i = 0; i < 1000; i++) {
		if (!(rd(q->g, MB_REG_STATUS) & MB_STS_READY))
			return true;
		msleep(1);
	}
	return false;
}

static void mbq_put(struct mbq *q, u8 op, u64 lba, u32 nblocks, u32 buf_len, u64 buf)
{
	struct mb_sqe *e = &q->sq[q->sq_tail];

	memset(e, 0, sizeof(*e));
	e->opcode = op;
	e->tag = ++q->tag;
	e->lba = lba;
	e->nblocks = nblocks;
	e->buf_len = buf_len;
	e->buf = buf;
	q->sq_tail = (q->sq_tail + 1) % q->size;
}

static void mbq_ring(struct mbq *q)
{
	wmb(); /* entries before the doorbell */
	wr(q->g, MB_REG_SQ_TAIL, q->sq_tail);
}

/* Take the next completion (waiting up to IRQ_WAIT_MS); false on timeout or a wrong phase. */
static bool mbq_take(struct mbq *q, struct mb_cqe *out)
{
	int i;

	for (i = 0; i < IRQ_WAIT_MS; i++) {
		if (rd(q->g, MB_REG_CQ_TAIL) != q->cq_head) /* the read orders the entry */
			break;
		usleep_range(200, 1000);
	}
	if (i == IRQ_WAIT_MS)
		return false;
	rmb();
	*out = q->cq[q->cq_head];
	if ((out->flags & 1) != q->phase)
		return false;
	q->cq_head = (q->cq_head + 1) % q->size;
	if (q->cq_head == 0)
		q->phase ^= 1;
	wr(q->g, MB_REG_CQ_HEAD, q->cq_head);
	q->done++;
	return true;
}

/* One command, waited for; its status, or -1 when no completion came. */
static int mbq_cmd(struct mbq *q, u8 op, u64 lba, u32 nblocks, u32 buf_len, u64 buf, u32 *result)
{
	struct mb_cqe c;

	mbq_put(q, op, lba, nblocks, buf_len, buf);
	mbq_ring(q);
	if (!mbq_take(q, &c) || c.tag != q->tag)
		return -1;
	if (result)
		*result = c.result;
	return c.status;
}

/* A pattern no two blocks share. */
static u32 pattern(u64 lba, u32 word, u32 seed)
{
	u32 x = (u32)lba * 0x9e3779b1u ^ word * 0x85ebca6bu ^ seed;

	x ^= x >> 15;
	x *= 0x2c1b3c6du;
	return x ^ (x >> 12);
}

static void fill(u8 *buf, u64 lba, u32 nblocks, u32 seed)
{
	u32 *w = (u32 *)buf, i;

	for (i = 0; i < nblocks * (MB_BLOCK_SIZE / 4); i++)
		w[i] = pattern(lba + i / (MB_BLOCK_SIZE / 4), i % (MB_BLOCK_SIZE / 4), seed);
}

/*
 * WRITE n blocks of pattern at lba from buffer a, READ them into b, compare.
 * NULL when all is well, else what went wrong (into why).
 */
static const char *mbq_roundtrip(struct mbq *q, u64 lba, u32 n, u32 seed, char *why, size_t len)
{
	u32 wres = 0, rres = 0;
	int ws, rs;
	u8 *bad;

	fill(q->a, lba, n, seed);
	memset(q->b, 0x5a, MB_BUF + PAGE_SIZE);
	ws = mbq_cmd(q, MB_OP_WRITE, lba, n, MB_BUF, q->a_dma, &wres);
	rs = mbq_cmd(q, MB_OP_READ, lba, n, MB_BUF, q->b_dma, &rres);
	if (ws != MB_SC_OK || rs != MB_SC_OK || wres != n * MB_BLOCK_SIZE ||
	    rres != n * MB_BLOCK_SIZE)
		snprintf(why, len, "%u blocks at %llu: WRITE status %d (%u bytes), READ status %d (%u bytes)",
			 n, lba, ws, wres, rs, rres);
	else if (memcmp(q->a, q->b, (size_t)n * MB_BLOCK_SIZE))
		snprintf(why, len, "%u blocks at %llu: data differs", n, lba);
	else if ((bad = memchr_inv(q->b + n * MB_BLOCK_SIZE, 0x5a, MB_BUF + PAGE_SIZE - n * MB_BLOCK_SIZE)))
		snprintf(why, len, "%u blocks at %llu: READ wrote past them at +%ld", n, lba,
			 (long)(bad - q->b));
	else
		return NULL;
	return why;
}

static void memblk_registers(struct gdev *g)
{
	static const struct {
		u32 off;
		const char *name;
	} rw[] = {
		{ MB_REG_SQ_BASE_LO, "SQ_BASE_LO" }, { MB_REG_SQ_BASE_HI, "SQ_BASE_HI" },
		{ MB_REG_SQ_SIZE, "SQ_SIZE" },       { MB_REG_CQ_BASE_LO, "CQ_BASE_LO" },
		{ MB_REG_CQ_BASE_HI, "CQ_BASE_HI" }, { MB_REG_CQ_SIZE, "CQ_SIZE" },
	};
	u64 cap = (u64)rd(g, MB_REG_CAP_HI) << 32 | rd(g, MB_REG_CAP_LO);
	bool ok;
	u32 i, v;

	check(rd(g, MB_REG_ID) == MB_ID && rd(g, MB_REG_VERSION) == MB_HW_VERSION,
	      "memblk: ID 0x%08x (\"MBLK\"), VERSION 0x%08x", rd(g, MB_REG_ID),
	      rd(g, MB_REG_VERSION));
	check(cap == memblk_blocks, "memblk: CAP_HI:CAP_LO = %llu blocks (served %u)", cap,
	      memblk_blocks);
	check(rd(g, MB_REG_BLOCK_SIZE) == MB_BLOCK_SIZE && rd(g, MB_REG_MAX_BLOCKS) == MB_MAX_BLOCKS &&
		      rd(g, MB_REG_MAX_RING) == MB_MAX_RING &&
		      rd(g, MB_REG_CHUNK_SIZE) == memblk_chunk,
	      "memblk: BLOCK_SIZE %u, MAX_BLOCKS %u, MAX_RING %u, CHUNK_SIZE %u",
	      rd(g, MB_REG_BLOCK_SIZE), rd(g, MB_REG_MAX_BLOCKS), rd(g, MB_REG_MAX_RING),
	      rd(g, MB_REG_CHUNK_SIZE));
	for (i = MB_REG_ID; i <= MB_REG_CHUNK_SIZE; i += 4)
		wr(g, i, 0x77777777);
	check(rd(g, MB_REG_ID) == MB_ID && rd(g, MB_REG_VERSION) == MB_HW_VERSION &&
		      rd(g, MB_REG_CAP_LO) == (u32)cap && rd(g, MB_REG_BLOCK_SIZE) == MB_BLOCK_SIZE &&
		      rd(g, MB_REG_CHUNK_SIZE) == memblk_chunk,
	      "memblk: ID..CHUNK_SIZE are read-only");
	check(rd(g, MB_REG_CONTROL) == 0 && rd(g, MB_REG_STATUS) == 0 && rd(g, MB_REG_ERR_CODE) == 0 &&
		      rd(g, MB_REG_COMPLETED) == 0,
	      "memblk: CONTROL, STATUS, ERR_CODE, COMPLETED are 0 after reset");

	for (i = 0; i < ARRAY_SIZE(rw); i++) {
		wr(g, rw[i].off, 0x1000u * (i + 1) + 0x40u);
		v = rd(g, rw[i].off);
		check(v == 0x1000u * (i + 1) + 0x40u, "memblk: %s reads back 0x%x while disabled",
		      rw[i].name, v);
	}
	wr(g, MB_REG_CONTROL, 0xfffffffe);
	ok = rd(g, MB_REG_CONTROL) == 0;
	wr(g, MB_REG_SQ_TAIL, 1); /* doorbells while not READY: ignored, DBERR */
	v = rd(g, MB_REG_STATUS);
	check(ok && v == MB_STS_DBERR && rd(g, MB_REG_ERR_CODE) == MB_ERR_SQ_TAIL &&
		      rd(g, MB_REG_SQ_TAIL) == 0,
	      "memblk: CONTROL keeps only EN; SQ_TAIL rung while disabled sets DBERR (STATUS 0x%x)", v);
	wr(g, MB_REG_STATUS, MB_STS_DBERR);
	wr(g, MB_REG_CQ_HEAD, 1);
	ok = rd(g, MB_REG_STATUS) == MB_STS_DBERR && rd(g, MB_REG_ERR_CODE) == MB_ERR_CQ_HEAD;
	wr(g, MB_REG_STATUS, MB_STS_DBERR | MB_STS_READY | MB_STS_FATAL);
	check(ok && rd(g, MB_REG_STATUS) == 0,
	      "memblk: CQ_HEAD rung while disabled sets DBERR; STATUS DBERR is write-1-to-clear");
}

/* Enabling refuses each bad ring configuration with CFS and its ERR_CODE. */
static void memblk_config_errors(struct mbq *q)
{
	static const struct {
		u32 sq_size, cq_size, sq_off, cq_off, err;
		const char *what;
	} bad[] = {
		{ 3, 8, 0, 0, MB_ERR_SQ_SIZE, "SQ_SIZE 3" },
		{ 8, 8192, 0, 0, MB_ERR_CQ_SIZE, "CQ_SIZE 8192" },
		{ 8, 8, 32, 0, MB_ERR_SQ_ALIGN, "SQ base +32" },
		{ 8, 8, 0, 16, MB_ERR_CQ_ALIGN, "CQ base +16" },
	};
	struct gdev *g = q->g;
	u32 i, sts, err;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		wr(g, MB_REG_CONTROL, 0);
		wr(g, MB_REG_SQ_BASE_LO, lower_32_bits(q->sq_dma) + bad[i].sq_off);
		wr(g, MB_REG_SQ_BASE_HI, upper_32_bits(q->sq_dma));
		wr(g, MB_REG_SQ_SIZE, bad[i].sq_size);
		wr(g, MB_REG_CQ_BASE_LO, lower_32_bits(q->cq_dma) + bad[i].cq_off);
		wr(g, MB_REG_CQ_BASE_HI, upper_32_bits(q->cq_dma));
		wr(g, MB_REG_CQ_SIZE, bad[i].cq_size);
		wr(g, MB_REG_CONTROL, MB_CTRL_EN);
		sts = rd(g, MB_REG_STATUS);
		err = rd(g, MB_REG_ERR_CODE);
		wr(g, MB_REG_CONTROL, 0);
		check(sts == MB_STS_CFS && err == bad[i].err && rd(g, MB_REG_STATUS) == 0,
		      "memblk: enable with %s refused: STATUS 0x%x, ERR_CODE %u; EN=0 clears it",
		      bad[i].what, sts, err);
	}
}

static void memblk_io(struct mbq *q)
{
	struct gdev *g = q->g;
	struct mb_identify *id = (struct mb_identify *)q->b;
	u64 cap = memblk_blocks, lba;
	u32 sts, res = 0, i, n;
	struct mb_cqe c;
	int before, got, s;
	const char *err;
	char why[120];
	bool ok;

	sts = mbq_enable(q, MB_RING);
	check(sts == MB_STS_READY && rd(g, MB_REG_CONTROL) == MB_CTRL_EN &&
		      rd(g, MB_REG_SQ_HEAD) == 0 && rd(g, MB_REG_CQ_TAIL) == 0 &&
		      rd(g, MB_REG_COMPLETED) == 0,
	      "memblk: enabled with %u-entry rings in guest memory: STATUS 0x%x (READY)", MB_RING,
	      sts);
	if (sts != MB_STS_READY)
		return;

	memset(q->b, 0, MB_IDENTIFY_SIZE);
	s = mbq_cmd(q, MB_OP_IDENTIFY, 0, 0, MB_IDENTIFY_SIZE, q->b_dma, &res);
	check(s == MB_SC_OK && res == MB_IDENTIFY_SIZE && id->id == MB_ID &&
		      id->version == MB_HW_VERSION && id->capacity_blocks == cap &&
		      id->block_size == MB_BLOCK_SIZE && id->max_blocks == MB_MAX_BLOCKS &&
		      id->chunk_size == memblk_chunk && id->max_ring == MB_MAX_RING &&
		      !strncmp(id->model, "devmig memblk", sizeof(id->model)),
	      "memblk: IDENTIFY into guest memory: status %d, %u bytes, model \"%.32s\"", s, res,
	      id->model);

	for (i = 0, err = NULL; i < 8 && !err; i++) {
		static const u32 sizes[] = { 1, 3, 17, 64, 255, 256, 2, 1 };
		lba = i == 7 ? cap - 1 : (u64)i * 997 % (cap - 256);
		err = mbq_roundtrip(q, lba, sizes[i], 0x1000 + i, why, sizeof(why));
	}
	check(!err, "memblk: WRITE then READ of 1..256 blocks at 8 places (the last block too): %s",
	      err ? err : "data equal, nothing written past them");

	/* Write 256 blocks, then read them back in pieces: the storage, not a cache of the buffer. */
	fill(q->a, 4096, 256, 77);
	ok = mbq_cmd(q, MB_OP_WRITE, 4096, 256, MB_BUF, q->a_dma, NULL) == MB_SC_OK;
	memset(q->a, 0, MB_BUF);
	memset(q->b, 0, MB_BUF);
	for (i = 0; i < 256; i += 32)
		ok &= mbq_cmd(q, MB_OP_READ, 4096 + i, 32, 32 * MB_BLOCK_SIZE,
			      q->b_dma + (u64)i * MB_BLOCK_SIZE, NULL) == MB_SC_OK;
	fill(q->a, 4096, 256, 77);
	check(ok && !memcmp(q->a, q->b, MB_BUF),
	      "memblk: 1 MiB written in one command reads back equal in 8 pieces");

	memset(q->b, 0xee, MB_BLOCK_SIZE);
	s = mbq_cmd(q, MB_OP_READ, cap - 300, 1, MB_BLOCK_SIZE, q->b_dma, NULL);
	check(s == MB_SC_OK && !memchr_inv(q->b, 0, MB_BLOCK_SIZE),
	      "memblk: a block never written reads as zeros");
	check(mbq_cmd(q, MB_OP_FLUSH, 0, 0, 0, 0, &res) == MB_SC_OK, "memblk: FLUSH completes");

	/* Each refusal, in the README's order of checks. */
	mbq_put(q, MB_OP_READ, 0, 1, MB_BLOCK_SIZE, q->b_dma);
	q->sq[(q->sq_tail + q->size - 1) % q->size].flags = 1;
	mbq_ring(q);
	ok = mbq_take(q, &c) && c.status == MB_SC_BAD_FIELD;
	ok &= mbq_cmd(q, 99, 0, 1, MB_BLOCK_SIZE, q->b_dma, NULL) == MB_SC_BAD_OPCODE;
	ok &= mbq_cmd(q, MB_OP_READ, 0, 0, MB_BLOCK_SIZE, q->b_dma, NULL) == MB_SC_BAD_LENGTH;
	ok &= mbq_cmd(q, MB_OP_READ, 0, MB_MAX_BLOCKS + 1, MB_BUF, q->b_dma, NULL) ==
	      MB_SC_BAD_LENGTH;
	ok &= mbq_cmd(q, MB_OP_READ, cap - 1, 2, MB_BUF, q->b_dma, NULL) == MB_SC_LBA_RANGE;
	ok &= mbq_cmd(q, MB_OP_READ, 0, 2, MB_BLOCK_SIZE, q->b_dma, NULL) == MB_SC_BAD_LENGTH;
	ok &= mbq_cmd(q, MB_OP_READ, 0, 1, MB_BLOCK_SIZE, 0x7f0000000000ull, NULL) ==
	      MB_SC_DMA_ERROR;
	check(ok && rd(g, MB_REG_STATUS) == MB_STS_READY,
	      "memblk: bad field, opcode, length, LBA range and an unmapped buffer are refused, device stays READY");

	/* Interrupts: one per completion, with the ring wrapping (phase toggles). */
	before = atomic_read(&g->irqs);
	ok = true;
	for (i = 1; i <= 100 && ok; i++) {
		lba = 8192 + (i % 16);
		fill(q->a, lba, 1, i);
		ok &= mbq_cmd(q, i & 1 ? MB_OP_WRITE : MB_OP_READ, lba, 1, MB_BLOCK_SIZE,
			      i & 1 ? q->a_dma : q->b_dma, NULL) == MB_SC_OK;
		ok &= wait_irqs(g, before + i, IRQ_WAIT_MS) >= before + i;
	}
	got = wait_irqs(g, before + 101, QUIET_MS) - before;
	check(ok && got == 100,
	      "memblk: MSI-X vector 0 delivered %d interrupts for 100 completions (rings wrapped %u times)",
	      got, 100 / MB_RING);

	/* A batch on one doorbell, the ring filled (size - 1 entries). */
	before = atomic_read(&g->irqs);
	for (i = 0; i < MB_RING - 1; i++) {
		fill(q->a + i * MB_BLOCK_SIZE, 12000 + i, 1, 999);
		mbq_put(q, MB_OP_WRITE, 12000 + i, 1, MB_BLOCK_SIZE, q->a_dma + i * MB_BLOCK_SIZE);
	}
	mbq_ring(q);
	ok = true;
	for (i = 0; i < MB_RING - 1; i++)
		ok &= mbq_take(q, &c) && c.status == MB_SC_OK && c.tag == q->tag - (MB_RING - 2) + i;
	got = wait_irqs(g, before + 1, IRQ_WAIT_MS) - before;
	memset(q->b, 0, MB_BUF);
	ok &= mbq_cmd(q, MB_OP_READ, 12000, MB_RING - 1, MB_BUF, q->b_dma, NULL) == MB_SC_OK;
	ok &= !memcmp(q->a, q->b, (MB_RING - 1) * MB_BLOCK_SIZE);
	check(ok && got >= 1 && got <= MB_RING - 1,
	      "memblk: %u WRITEs on one doorbell complete in order (%d interrupts), data equal",
	      MB_RING - 1, got);

	n = rd(g, MB_REG_COMPLETED);
	check(n == q->done && rd(g, MB_REG_SQ_HEAD) == q->sq_tail && rd(g, MB_REG_CQ_TAIL) == q->cq_head,
	      "memblk: COMPLETED %u = completions taken %u; SQ_HEAD, CQ_TAIL caught up", n, q->done);

	wr(g, MB_REG_SQ_TAIL, q->size); /* out of range */
	ok = rd(g, MB_REG_STATUS) == (MB_STS_READY | MB_STS_DBERR) &&
	     rd(g, MB_REG_ERR_CODE) == MB_ERR_SQ_TAIL;
	wr(g, MB_REG_STATUS, MB_STS_DBERR);
	err = mbq_roundtrip(q, 5, 2, 5, why, sizeof(why));
	check(ok && !err, "memblk: SQ_TAIL out of range sets DBERR, the device keeps serving%s%s",
	      err ? ": " : "", err ? err : "");

	check(mbq_disable(q) && rd(g, MB_REG_SQ_HEAD) == 0 && rd(g, MB_REG_CQ_TAIL) == 0,
	      "memblk: EN=0: READY drops, indexes back to 0");
}

static struct mbq *memblk_q; /* for memblk_raise */

static void memblk_raise(struct gdev *g)
{
	struct mbq *q = memblk_q;

	mbq_put(q, MB_OP_FLUSH, 0, 0, 0, 0);
	mbq_ring(q);
}

static void memblk_tests(struct gdev *g)
{
	struct device *dev = &g->pdev->dev;
	struct mbq q = { .g = g };
	struct mb_cqe c;

	memblk_registers(g);
	if (!check(!dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64)), "memblk: 64-bit DMA mask set"))
		return;
	q.sq = dma_alloc_coherent(dev, MB_RING * MB_SQE_SIZE, &q.sq_dma, GFP_KERNEL);
	q.cq = dma_alloc_coherent(dev, MB_RING * MB_CQE_SIZE, &q.cq_dma, GFP_KERNEL);
	q.a = dma_alloc_coherent(dev, MB_BUF + PAGE_SIZE, &q.a_dma, GFP_KERNEL);
	q.b = dma_alloc_coherent(dev, MB_BUF + PAGE_SIZE, &q.b_dma, GFP_KERNEL);
	if (check(q.sq && q.cq && q.a && q.b,
		  "memblk: rings and two 1 MiB buffers from dma_alloc_coherent")) {
		memblk_config_errors(&q);
		if (setup_irq(g)) {
			memblk_io(&q);
			/* the function mask: a FLUSH's completion interrupt held, then sent */
			if (mbq_enable(&q, MB_RING) == MB_STS_READY) {
				memblk_q = &q;
				check_function_mask(g, memblk_raise);
				check(mbq_take(&q, &c) && c.status == MB_SC_OK,
				      "memblk: the FLUSH behind the held interrupt completed");
				mbq_disable(&q);
			}
			teardown_irq(g);
		}
	}
	if (q.b)
		dma_free_coherent(dev, MB_BUF + PAGE_SIZE, q.b, q.b_dma);
	if (q.a)
		dma_free_coherent(dev, MB_BUF + PAGE_SIZE, q.a, q.a_dma);
	if (q.cq)
		dma_free_coherent(dev, MB_RING * MB_CQE_SIZE, q.cq, q.cq_dma);
	if (q.sq)
		dma_free_coherent(dev, MB_RING * MB_SQE_SIZE, q.sq, q.sq_dma);
}

/* ---- the driver ---- */

static int devmig_guest_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	bool counter = pdev->device == COUNTER_DEVICE;
	struct gdev *g = kzalloc(sizeof(*g), GFP_KERNEL);
	int rc;

	if (!g)
		return -ENOMEM;
	g->pdev = pdev;
	g->name = counter ? "counter" : "memblk";
	atomic_set(&g->irqs, 0);
	init_waitqueue_head(&g->wq);
	if (counter)
		seen_counter = true;
	else
		seen_memblk = true;

	check_pci(g, pdev->device, counter ? 0xff0000 : MB_PCI_CLASS,
		  counter ? PCI_EXP_LNKCAP_SLS_2_5GB : PCI_EXP_LNKCAP_SLS_8_0GB, counter ? 1 : 4,
		  counter ? 2 * CNT_MEM_SIZE : 0);
	rc = pci_enable_device(pdev);
	if (!rc)
		rc = pci_request_regions(pdev, "devmig_guest");
	if (!check(!rc, "%s: enabled, BARs claimed (rc %d)", g->name, rc))
		goto out;
	pci_set_master(pdev);
	g->bar0 = pci_iomap(pdev, 0, 0);
	g->bar1 = pci_iomap(pdev, 1, 0);
	if (counter)
		g->bar2 = pci_iomap(pdev, 2, 0);
	if (check(g->bar0 && g->bar1, "%s: BAR0 and BAR1 mapped", g->name)) {
		if (counter)
			counter_tests(g);
		else
			memblk_tests(g);
	}
	if (g->bar2)
		pci_iounmap(pdev, g->bar2);
	if (g->bar1)
		pci_iounmap(pdev, g->bar1);
	if (g->bar0)
		pci_iounmap(pdev, g->bar0);
	pci_clear_master(pdev);
	pci_release_regions(pdev);
	pci_disable_device(pdev);
out:
	kfree(g);
	return -ENODEV; /* tested; nothing stays bound */
}

static const struct pci_device_id devmig_guest_ids[] = {
	{ PCI_DEVICE(0x1af4, COUNTER_DEVICE) },
	{ PCI_DEVICE(MB_PCI_VENDOR, MB_PCI_DEVICE) },
	{}
};

static struct pci_driver devmig_guest_driver = {
	.name = "devmig_guest",
	.id_table = devmig_guest_ids,
	.probe = devmig_guest_probe,
};

/* Found on the bus, behind a PCIe root port (not an integrated endpoint). */
static void check_enumerated(const char *name, u16 device)
{
	struct pci_dev *p = pci_get_device(0x1af4, device, NULL);
	struct pci_dev *port = p ? pci_upstream_bridge(p) : NULL;

	check(p && port && pci_pcie_type(port) == PCI_EXP_TYPE_ROOT_PORT,
	      "enumeration: %s 1af4:%04x at %s behind root port %s", name, device,
	      p ? pci_name(p) : "(not found)", port ? pci_name(port) : "(none)");
	pci_dev_put(p);
}

static int __init devmig_guest_init(void)
{
	int rc;

	check_enumerated("counter", COUNTER_DEVICE);
	check_enumerated("memblk", MB_PCI_DEVICE);
	rc = pci_register_driver(&devmig_guest_driver);
	check(!rc && seen_counter && seen_memblk, "driver: probed counter %s, memblk %s (rc %d)",
	      seen_counter ? "yes" : "no", seen_memblk ? "yes" : "no", rc);
	if (!rc)
		pci_unregister_driver(&devmig_guest_driver);
	pr_info("devmig-guest: done %d checks, %d failed\n", checks, failures);
	return 0;
}

static void __exit devmig_guest_exit(void)
{
}

module_init(devmig_guest_init);
module_exit(devmig_guest_exit);
MODULE_DESCRIPTION("devmig guest test: counter and memblk through vfio-user-pci");
MODULE_LICENSE("Dual MIT/GPL");
