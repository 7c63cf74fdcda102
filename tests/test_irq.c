/* SPDX-License-Identifier: MIT */
/*
 * The interrupt rule, over a real socket with the client library: raising a
 * vector signals its eventfd unless the client masked it in a way the
 * server sees (SET_IRQS MASK, the MSI-X function mask or an MSI mask bit in
 * config space, or the MSI-X table's mask bit once the client writes the
 * table). A masked vector is left pending (PBA, MSI pending bits) and sent
 * when its last mask goes. A client that emulates the MSI-X table itself
 * (QEMU, kernel VFIO) never writes it and must still get its interrupts.
 *
 * The device is a probe with INTx, 4 MSI vectors and 4 MSI-X vectors; a
 * write of v to BAR0 offset 0 raises vector v, offset 4 reads the result.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/vfio.h>

#include <cmocka.h>

#include "devmig/client.h"
#include "devmig/device.h"
#include "devmig/server.h"

#define NVEC 4
#define REG_RAISE 0x0
#define REG_RESULT 0x4
#define CFG_REGION VFIO_PCI_CONFIG_REGION_INDEX
#define MSIX_BAR 1
#define PBA_OFF 2048

struct irqdev {
	struct devmig_device dev;
	unsigned msi_flags;
	int result; /* of the last raise */
	uint8_t state[16], staged[16];
};

static struct irqdev *to_irqdev(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct irqdev, dev);
}

static int irqdev_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10fd);
	if (!rc)
		rc = devmig_pci_set_intx_pin(cfg, 1);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 0, 4096, 0);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 1, 4096, 0);
	if (!rc)
		rc = devmig_pci_add_msi(cfg, 0, NVEC, to_irqdev(dev)->msi_flags);
	if (rc >= 0)
		rc = devmig_pci_add_msix(cfg, 0, NVEC, MSIX_BAR, 0, MSIX_BAR, PBA_OFF);
	return rc < 0 ? rc : 0;
}

static int irqdev_bar_access(struct devmig_device *dev, unsigned bar, uint64_t offset, void *buf,
			     size_t len, bool is_write)
{
	struct irqdev *d = to_irqdev(dev);
	uint32_t v = 0;

	if (bar != 0 || len != 4)
		return -EINVAL;
	if (is_write) {
		memcpy(&v, buf, 4);
		if (offset == REG_RAISE)
			d->result = devmig_device_irq(dev, v);
		return 0;
	}
	v = offset == REG_RESULT ? (uint32_t)d->result : 0;
	memcpy(buf, &v, 4);
	return 0;
}

static int irqdev_save_state(struct devmig_device *dev, struct devmig_save *s)
{
	return devmig_save_record(s, 1, to_irqdev(dev)->state, sizeof(to_irqdev(dev)->state));
}

static int irqdev_load(struct devmig_device *dev, unsigned type, const void *data, size_t len,
		       char *why, size_t whylen)
{
	if (type != 1 || len != sizeof(to_irqdev(dev)->state)) {
		snprintf(why, whylen, "irqdev: record %u of %zu bytes", type, len);
		return -EINVAL;
	}
	memcpy(to_irqdev(dev)->staged, data, len);
	return 0;
}

static void irqdev_load_apply(struct devmig_device *dev)
{
	memcpy(to_irqdev(dev)->state, to_irqdev(dev)->staged, sizeof(to_irqdev(dev)->state));
}

static const struct devmig_device_id irqdev_id = { .name = "irqdev", .version = "irqdev-v1" };
static const struct devmig_device_ops irqdev_ops = {
	.realize = irqdev_realize,
	.bar_access = irqdev_bar_access,
};
static const struct devmig_migration_ops irqdev_mig = {
	.caps = DEVMIG_MIG_STOP_COPY,
	.save_state = irqdev_save_state,
	.load = irqdev_load,
	.load_apply = irqdev_load_apply,
};

/* ---- fixture ---- */

struct fx {
	char dir[64], path[128];
	struct irqdev d;
	struct devmig_server *srv;
	struct devmig_client *c;
	int efd[3][NVEC]; /* per VFIO index: INTx (1), MSI, MSI-X */
	unsigned msi, msix; /* capability offsets */
};

static uint8_t cfg8(struct devmig_client *c, uint64_t off)
{
	uint8_t v = 0;
	assert_int_equal(devmig_client_region_read(c, CFG_REGION, off, &v, 1), 0);
	return v;
}

static unsigned find_cap(struct devmig_client *c, uint8_t id)
{
	unsigned pos = cfg8(c, PCI_CAPABILITY_LIST) & ~3u;
	for (int guard = 0; pos && guard < 48; guard++) {
		if (cfg8(c, pos) == id)
			return pos;
		pos = cfg8(c, pos + 1) & ~3u;
	}
	return 0;
}

static int setup_with(void **state, unsigned msi_flags)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256] = "";

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/devmig-irq-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/dev.sock", f->dir);
	f->d.dev.id = &irqdev_id;
	f->d.dev.ops = &irqdev_ops;
	f->d.dev.mig = &irqdev_mig;
	f->d.msi_flags = msi_flags;
	assert_int_equal(devmig_device_init(&f->d.dev), 0);
	f->srv = devmig_server_new(&f->d.dev, &(struct devmig_server_config){ .socket_path = f->path },
				   err, sizeof(err));
	if (!f->srv)
		fail_msg("server: %s", err);
	assert_int_equal(devmig_server_start(f->srv), 0);
	f->c = devmig_client_connect(f->path, NULL, err, sizeof(err));
	if (!f->c)
		fail_msg("connect: %s", err);
	f->msi = find_cap(f->c, PCI_CAP_ID_MSI);
	f->msix = find_cap(f->c, PCI_CAP_ID_MSIX);
	assert_int_not_equal(f->msi, 0);
	assert_int_not_equal(f->msix, 0);
	for (unsigned i = 0; i < 3; i++) {
		uint32_t index = i; /* INTx 0, MSI 1, MSI-X 2 */
		unsigned n = index == VFIO_PCI_INTX_IRQ_INDEX ? 1 : NVEC;
		for (unsigned v = 0; v < n; v++) {
			f->efd[i][v] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			assert_true(f->efd[i][v] >= 0);
		}
		/* the server receives its own copies of the fds */
		assert_int_equal(devmig_client_set_irqs(f->c, index,
							VFIO_IRQ_SET_DATA_EVENTFD |
								VFIO_IRQ_SET_ACTION_TRIGGER,
							0, n, f->efd[i]),
				 0);
	}
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT);
}

/* MSI without per-vector masking: no pending bits in config space. */
static int setup_msi_nomask(void **state)
{
	return setup_with(state, PCI_MSI_FLAGS_64BIT);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	devmig_client_close(f->c);
	devmig_server_free(f->srv);
	devmig_device_destroy(&f->d.dev);
	for (unsigned i = 0; i < 3; i++)
		for (unsigned v = 0; v < NVEC; v++)
			if (f->efd[i][v] > 0)
				close(f->efd[i][v]);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static void wr(struct fx *f, uint32_t region, uint64_t off, const void *v, size_t len)
{
	assert_int_equal(devmig_client_region_write(f->c, region, off, v, len), 0);
}

static uint32_t rd32(struct fx *f, uint32_t region, uint64_t off)
{
	uint32_t v = 0xdeadbeef;
	assert_int_equal(devmig_client_region_read(f->c, region, off, &v, 4), 0);
	return v;
}

static void cfg16(struct fx *f, uint64_t off, uint16_t v)
{
	wr(f, CFG_REGION, off, &v, 2);
}

static void cfg32(struct fx *f, uint64_t off, uint32_t v)
{
	wr(f, CFG_REGION, off, &v, 4);
}

/* Raise vector v through the device; returns devmig_device_irq's result. */
static int raise(struct fx *f, uint32_t v)
{
	wr(f, 0, REG_RAISE, &v, 4);
	return (int)rd32(f, 0, REG_RESULT);
}

/* Interrupts counted on an eventfd (reads and clears it). The server signals
 * before it replies to the command that caused the interrupt, so no wait. */
static uint64_t taken(int efd)
{
	uint64_t n = 0;
	if (read(efd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return 0;
	return n;
}

static uint64_t pba(struct fx *f)
{
	uint64_t v = ~0ull;
	assert_int_equal(devmig_client_region_read(f->c, MSIX_BAR, PBA_OFF, &v, 8), 0);
	return v;
}

static uint32_t table_ctrl(struct fx *f, unsigned v)
{
	return rd32(f, MSIX_BAR, v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL);
}

static void table_ctrl_wr(struct fx *f, unsigned v, uint32_t ctrl)
{
	wr(f, MSIX_BAR, v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, &ctrl, 4);
}

static void msix_enable(struct fx *f, uint16_t extra)
{
	cfg16(f, f->msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | extra);
}

static void msi_enable(struct fx *f)
{
	cfg16(f, f->msi + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | 2 << 4); /* 4 vectors */
}

static int set_irqs(struct fx *f, uint32_t index, uint32_t flags, uint32_t start, uint32_t count)
{
	return devmig_client_set_irqs(f->c, index, flags, start, count, NULL);
}

/* ---- MSI-X ---- */

/* QEMU's way: the client emulates the table and never writes ours. */
static void msix_never_written_table_delivers(void **state)
{
	struct fx *f = *state;

	msix_enable(f, 0);
	for (unsigned v = 0; v < NVEC; v++)
		assert_int_equal(table_ctrl(f, v), PCI_MSIX_ENTRY_CTRL_MASKBIT); /* reset value */
	for (unsigned v = 0; v < NVEC; v++) {
		assert_int_equal(raise(f, v), 0);
		assert_int_equal(taken(f->efd[2][v]), 1);
	}
	for (int i = 0; i < 100; i++)
		assert_int_equal(raise(f, 3), 0);
	assert_int_equal(taken(f->efd[2][3]), 100);
	assert_int_equal(pba(f), 0);
	/* a vector outside the table is refused */
	assert_int_equal(raise(f, NVEC), -EINVAL);
}

/* The function mask is config space: the server sees it. */
static void msix_function_mask_holds_pending(void **state)
{
	struct fx *f = *state;

	msix_enable(f, PCI_MSIX_FLAGS_MASKALL);
	assert_int_equal(raise(f, 1), 0);
	assert_int_equal(raise(f, 2), 0);
	assert_int_equal(taken(f->efd[2][1]), 0);
	assert_int_equal(pba(f), 0x6);
	msix_enable(f, 0);
	assert_int_equal(taken(f->efd[2][1]), 1);
	assert_int_equal(taken(f->efd[2][2]), 1);
	assert_int_equal(pba(f), 0);
}

/* A client that writes the table gets the table's masks, reset value included. */
static void msix_table_mask_pending_until_unmask(void **state)
{
	struct fx *f = *state;

	msix_enable(f, 0);
	table_ctrl_wr(f, 1, 0); /* the first table write: every mask bit counts now */
	assert_int_equal(raise(f, 1), 0);
	assert_int_equal(taken(f->efd[2][1]), 1);
	assert_int_equal(raise(f, 2), 0); /* still masked since reset */
	assert_int_equal(taken(f->efd[2][2]), 0);
	assert_int_equal(pba(f), 1u << 2);
	table_ctrl_wr(f, 1, PCI_MSIX_ENTRY_CTRL_MASKBIT);
	assert_int_equal(raise(f, 1), 0);
	assert_int_equal(raise(f, 1), 0); /* one pending bit however many raises */
	assert_int_equal(taken(f->efd[2][1]), 0);
	assert_int_equal(pba(f), 0x6);
	table_ctrl_wr(f, 2, 0);
	assert_int_equal(taken(f->efd[2][2]), 1);
	assert_int_equal(pba(f), 0x2);
	table_ctrl_wr(f, 1, 0);
	assert_int_equal(taken(f->efd[2][1]), 1);
	assert_int_equal(pba(f), 0);
	/* a device reset forgets the writes: back to the never-written rule */
	assert_int_equal(devmig_client_reset(f->c), 0);
	msix_enable(f, 0);
	assert_int_equal(raise(f, 2), 0);
	assert_int_equal(taken(f->efd[2][2]), 1);
}

static void msix_set_irqs_mask_unmask(void **state)
{
	struct fx *f = *state;

	msix_enable(f, 0);
	/* DATA_NONE: mask vectors 1 and 2 */
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 1, 2),
			 0);
	for (unsigned v = 0; v < NVEC; v++)
		assert_int_equal(raise(f, v), 0);
	assert_int_equal(taken(f->efd[2][0]), 1);
	assert_int_equal(taken(f->efd[2][1]), 0);
	assert_int_equal(taken(f->efd[2][2]), 0);
	assert_int_equal(taken(f->efd[2][3]), 1);
	assert_int_equal(pba(f), 0x6);
	/* DATA_BOOL: unmask only where the bool is set */
	const uint8_t only_second[2] = { 0, 1 };
	assert_int_equal(devmig_client_set_irqs_bool(f->c, VFIO_PCI_MSIX_IRQ_INDEX,
						     VFIO_IRQ_SET_ACTION_UNMASK, 1, 2, only_second),
			 0);
	assert_int_equal(taken(f->efd[2][1]), 0);
	assert_int_equal(taken(f->efd[2][2]), 1);
	assert_int_equal(pba(f), 0x2);
	/* a vector masked twice over (SET_IRQS and the function mask) waits for both */
	msix_enable(f, PCI_MSIX_FLAGS_MASKALL);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 1, 1),
			 0);
	assert_int_equal(taken(f->efd[2][1]), 0);
	assert_int_equal(pba(f), 0x2);
	msix_enable(f, 0);
	assert_int_equal(taken(f->efd[2][1]), 1);
	assert_int_equal(pba(f), 0);
	/* unmasking a vector with nothing pending sends nothing */
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, NVEC),
			 0);
	for (unsigned v = 0; v < NVEC; v++)
		assert_int_equal(taken(f->efd[2][v]), 0);
}

static void set_irqs_mask_refusals_change_nothing(void **state)
{
	struct fx *f = *state;
	int efd = eventfd(0, EFD_CLOEXEC);

	msix_enable(f, 0);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 3, 2),
			 -EINVAL); /* beyond the vectors */
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, 0),
			 -EINVAL); /* count 0 only disables, with TRIGGER */
	/* masking bound to an eventfd is not offered */
	assert_int_equal(devmig_client_set_irqs(f->c, VFIO_PCI_INTX_IRQ_INDEX,
						VFIO_IRQ_SET_DATA_EVENTFD |
							VFIO_IRQ_SET_ACTION_UNMASK,
						0, 1, &efd),
			 -EINVAL);
	close(efd);
	for (unsigned v = 0; v < NVEC; v++) {
		assert_int_equal(raise(f, v), 0);
		assert_int_equal(taken(f->efd[2][v]), 1);
	}
}

static void irq_info_says_maskable(void **state)
{
	struct fx *f = *state;
	struct devmig_irq_info ii;

	for (uint32_t index = 0; index <= VFIO_PCI_MSIX_IRQ_INDEX; index++) {
		memset(&ii, 0, sizeof(ii));
		assert_int_equal(devmig_client_irq_info(f->c, index, &ii), 0);
		assert_int_equal(ii.count, index == VFIO_PCI_INTX_IRQ_INDEX ? 1 : NVEC);
		assert_true(ii.flags & VFIO_IRQ_INFO_EVENTFD);
		assert_true(ii.flags & VFIO_IRQ_INFO_MASKABLE);
		assert_int_equal(!!(ii.flags & VFIO_IRQ_INFO_AUTOMASKED),
				 index == VFIO_PCI_INTX_IRQ_INDEX);
	}
}

/* SET_IRQS masks belong to the client's interrupt setup: a new client starts without. */
static void set_irqs_masks_go_with_the_client(void **state)
{
	struct fx *f = *state;
	char err[256];

	msix_enable(f, 0);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, NVEC),
			 0);
	assert_int_equal(raise(f, 0), 0);
	assert_int_equal(pba(f), 1); /* pending is device state: it stays */
	devmig_client_close(f->c);
	f->c = devmig_client_connect(f->path, NULL, err, sizeof(err));
	assert_non_null(f->c);
	int fd = f->efd[2][1];
	assert_int_equal(devmig_client_set_irqs(f->c, VFIO_PCI_MSIX_IRQ_INDEX,
						VFIO_IRQ_SET_DATA_EVENTFD |
							VFIO_IRQ_SET_ACTION_TRIGGER,
						1, 1, &fd),
			 0);
	assert_int_equal(raise(f, 1), 0);
	assert_int_equal(taken(f->efd[2][1]), 1);
	/* vector 0 is still pending, waiting for an eventfd: it goes when one comes */
	assert_int_equal(pba(f), 1);
	fd = f->efd[2][0];
	assert_int_equal(devmig_client_set_irqs(f->c, VFIO_PCI_MSIX_IRQ_INDEX,
						VFIO_IRQ_SET_DATA_EVENTFD |
							VFIO_IRQ_SET_ACTION_TRIGGER,
						0, 1, &fd),
			 0);
	assert_int_equal(taken(f->efd[2][0]), 1);
	assert_int_equal(pba(f), 0);
}

/* A stopped device holds what an unmask released, and what it raises itself;
 * both go when the device runs. */
static void unmask_while_stopped_fires_on_running(void **state)
{
	struct fx *f = *state;

	msix_enable(f, 0);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 2, 1),
			 0);
	assert_int_equal(raise(f, 2), 0);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_STOP), 0);
	assert_int_equal(raise(f, 0), 0); /* held by the core */
	assert_int_equal(taken(f->efd[2][0]), 0);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 2, 1),
			 0);
	assert_int_equal(taken(f->efd[2][2]), 0);
	assert_int_equal(pba(f), 1u << 2);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(taken(f->efd[2][2]), 1);
	assert_int_equal(taken(f->efd[2][0]), 1);
	assert_int_equal(pba(f), 0);
}

/* ---- MSI ---- */

static uint32_t msi_pending(struct fx *f)
{
	return rd32(f, CFG_REGION, f->msi + PCI_MSI_PENDING_64);
}

static void msi_set_irqs_and_config_masks(void **state)
{
	struct fx *f = *state;

	msi_enable(f);
	for (unsigned v = 0; v < NVEC; v++) {
		assert_int_equal(raise(f, v), 0);
		assert_int_equal(taken(f->efd[1][v]), 1);
	}
	/* SET_IRQS mask: pending in the MSI pending bits, sent on unmask */
	assert_int_equal(set_irqs(f, VFIO_PCI_MSI_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 2, 1),
			 0);
	assert_int_equal(raise(f, 2), 0);
	assert_int_equal(taken(f->efd[1][2]), 0);
	assert_int_equal(msi_pending(f), 1u << 2);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSI_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 2, 1),
			 0);
	assert_int_equal(taken(f->efd[1][2]), 1);
	assert_int_equal(msi_pending(f), 0);
	/* the config-space mask bit, with a SET_IRQS mask on top */
	cfg32(f, f->msi + PCI_MSI_MASK_64, 1u << 3);
	const uint8_t third[1] = { 1 };
	assert_int_equal(devmig_client_set_irqs_bool(f->c, VFIO_PCI_MSI_IRQ_INDEX,
						     VFIO_IRQ_SET_ACTION_MASK, 3, 1, third),
			 0);
	assert_int_equal(raise(f, 3), 0);
	assert_int_equal(msi_pending(f), 1u << 3);
	cfg32(f, f->msi + PCI_MSI_MASK_64, 0);
	assert_int_equal(taken(f->efd[1][3]), 0);
	assert_int_equal(devmig_client_set_irqs_bool(f->c, VFIO_PCI_MSI_IRQ_INDEX,
						     VFIO_IRQ_SET_ACTION_UNMASK, 3, 1, third),
			 0);
	assert_int_equal(taken(f->efd[1][3]), 1);
	assert_int_equal(msi_pending(f), 0);
	/* MSI-X takes over while enabled: MSI masks do not hold its vectors */
	msix_enable(f, 0);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSI_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, NVEC),
			 0);
	assert_int_equal(raise(f, 0), 0);
	assert_int_equal(taken(f->efd[2][0]), 1);
	assert_int_equal(taken(f->efd[1][0]), 0);
}

/* Without per-vector masking the pending state lives in the server alone. */
static void msi_without_mask_bits_still_holds_pending(void **state)
{
	struct fx *f = *state;

	msi_enable(f);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSI_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, NVEC),
			 0);
	assert_int_equal(raise(f, 1), 0);
	assert_int_equal(raise(f, 1), 0);
	assert_int_equal(taken(f->efd[1][1]), 0);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSI_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, NVEC),
			 0);
	assert_int_equal(taken(f->efd[1][1]), 1);
	assert_int_equal(taken(f->efd[1][0]), 0);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSI_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, NVEC),
			 0);
	assert_int_equal(taken(f->efd[1][1]), 0); /* sent once */
}

/* ---- INTx ---- */

static void intx_automask_and_set_irqs_mask_unmask(void **state)
{
	struct fx *f = *state;
	const int *e = f->efd[0];

	assert_int_equal(raise(f, 0), 0);
	assert_int_equal(taken(e[0]), 1);
	assert_int_equal(raise(f, 0), 0); /* automasked: held */
	assert_int_equal(taken(e[0]), 0);
	assert_int_equal(set_irqs(f, VFIO_PCI_INTX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1),
			 0);
	assert_int_equal(taken(e[0]), 1); /* the held one, automasked again */
	assert_int_equal(set_irqs(f, VFIO_PCI_INTX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1),
			 0);
	assert_int_equal(taken(e[0]), 0); /* nothing pending */
	/* explicit MASK, then a DATA_BOOL unmask with false does nothing */
	assert_int_equal(set_irqs(f, VFIO_PCI_INTX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, 1),
			 0);
	assert_int_equal(raise(f, 0), 0);
	const uint8_t no[1] = { 0 }, yes[1] = { 1 };
	assert_int_equal(devmig_client_set_irqs_bool(f->c, VFIO_PCI_INTX_IRQ_INDEX,
						     VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, no),
			 0);
	assert_int_equal(taken(e[0]), 0);
	assert_int_equal(devmig_client_set_irqs_bool(f->c, VFIO_PCI_INTX_IRQ_INDEX,
						     VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, yes),
			 0);
	assert_int_equal(taken(e[0]), 1);
	/* INTx disable in the command register holds it too */
	assert_int_equal(set_irqs(f, VFIO_PCI_INTX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1),
			 0);
	cfg16(f, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE);
	assert_int_equal(raise(f, 0), 0);
	assert_int_equal(taken(e[0]), 0);
	cfg16(f, PCI_COMMAND, 0);
	assert_int_equal(set_irqs(f, VFIO_PCI_INTX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1),
			 0);
	assert_int_equal(taken(e[0]), 1);
	assert_int_equal(raise(f, 1), -EINVAL); /* INTx has one vector */
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(msix_never_written_table_delivers),
		T(msix_function_mask_holds_pending),
		T(msix_table_mask_pending_until_unmask),
		T(msix_set_irqs_mask_unmask),
		T(set_irqs_mask_refusals_change_nothing),
		T(irq_info_says_maskable),
		T(set_irqs_masks_go_with_the_client),
		T(unmask_while_stopped_fires_on_running),
		T(msi_set_irqs_and_config_masks),
		cmocka_unit_test_setup_teardown(msi_without_mask_bits_still_holds_pending,
						setup_msi_nomask, teardown),
		T(intx_automask_and_set_irqs_mask_unmask),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
