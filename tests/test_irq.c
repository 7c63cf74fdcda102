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
#include "fixture.h"

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

static void f_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- fixture ---- */

/* One irqdev served, a client with an eventfd on every vector. */
struct side {
	struct irqdev d;
	struct fx_server srv;
	struct devmig_client *c;
	int efd[3][NVEC]; /* per VFIO index: INTx (1), MSI, MSI-X */
	unsigned msi, msix; /* capability offsets */
};

struct fx {
	char dir[FX_PATH_MAX];
	struct side a, b; /* b: a destination, for the tests that migrate */
	/* the side the helpers below act on (a) */
	struct devmig_client *c;
	int (*efd)[NVEC];
	unsigned msi, msix;
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

/* An eventfd on every vector of every index (the server takes its own copies). */
static void set_eventfds(struct side *s)
{
	for (unsigned i = 0; i < 3; i++) {
		uint32_t index = i; /* INTx 0, MSI 1, MSI-X 2 */
		unsigned n = index == VFIO_PCI_INTX_IRQ_INDEX ? 1 : NVEC;
		for (unsigned v = 0; v < n; v++) {
			f_close(&s->efd[i][v]);
			s->efd[i][v] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			assert_true(s->efd[i][v] >= 0);
		}
		assert_int_equal(devmig_client_set_irqs(s->c, index,
							VFIO_IRQ_SET_DATA_EVENTFD |
								VFIO_IRQ_SET_ACTION_TRIGGER,
							0, n, s->efd[i]),
				 0);
	}
}

static void side_up(struct fx *f, struct side *s, const char *name, unsigned msi_flags)
{
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < 3; i++)
		for (unsigned v = 0; v < NVEC; v++)
			s->efd[i][v] = -1;
	s->d.dev.id = &irqdev_id;
	s->d.dev.ops = &irqdev_ops;
	s->d.dev.mig = &irqdev_mig;
	s->d.msi_flags = msi_flags;
	assert_int_equal(devmig_device_init(&s->d.dev), 0);
	fx_serve(&s->srv, f->dir, name, &s->d.dev);
	s->c = fx_connect(&s->srv, NULL);
	s->msi = find_cap(s->c, PCI_CAP_ID_MSI);
	s->msix = find_cap(s->c, PCI_CAP_ID_MSIX);
	assert_int_not_equal(s->msi, 0);
	assert_int_not_equal(s->msix, 0);
	set_eventfds(s);
}

static void side_down(struct side *s)
{
	devmig_client_close(s->c);
	fx_unserve(&s->srv);
	devmig_device_destroy(&s->d.dev);
	for (unsigned i = 0; i < 3; i++)
		for (unsigned v = 0; v < NVEC; v++)
			f_close(&s->efd[i][v]);
}

/* The helpers act on side s from now on. */
static void use(struct fx *f, struct side *s)
{
	f->c = s->c;
	f->efd = s->efd;
	f->msi = s->msi;
	f->msix = s->msix;
}

static int setup_with(void **state, unsigned msi_flags)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	fx_tmpdir(f->dir, "irq");
	side_up(f, &f->a, "a", msi_flags);
	side_up(f, &f->b, "b", msi_flags);
	use(f, &f->a);
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

	side_down(&f->a);
	side_down(&f->b);
	fx_rmdir(f->dir);
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

	msix_enable(f, 0);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, NVEC),
			 0);
	assert_int_equal(raise(f, 0), 0);
	assert_int_equal(pba(f), 1); /* pending is device state: it stays */
	devmig_client_close(f->a.c);
	f->a.c = fx_connect(&f->a.srv, NULL);
	use(f, &f->a);
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

/* A stopped device holds what an unmask released, and what it raises itself,
 * both as pending bits (the PBA shows them); both go when the device runs. */
static void unmask_while_stopped_fires_on_running(void **state)
{
	struct fx *f = *state;

	msix_enable(f, 0);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 2, 1),
			 0);
	assert_int_equal(raise(f, 2), 0);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_STOP), 0);
	assert_int_equal(raise(f, 0), 0); /* pending while stopped */
	assert_int_equal(taken(f->efd[2][0]), 0);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 2, 1),
			 0);
	assert_int_equal(taken(f->efd[2][2]), 0);
	assert_int_equal(pba(f), 1u << 2 | 1u << 0);
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

/* ---- migration: pending interrupts travel once ---- */

/* a's whole stream (STOP_COPY) loaded into b: b is left STOP. */
static void migrate_a_to_b(struct fx *f)
{
	struct fx_buf st = { 0 };

	assert_int_equal(devmig_client_set_state(f->a.c, DEVMIG_STATE_STOP_COPY), 0);
	fx_buf_read_stream(&st, f->a.c, 64 << 10);
	assert_int_equal(devmig_client_set_state(f->b.c, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(f->b.c, st.p, st.len), 0);
	assert_int_equal(devmig_client_set_state(f->b.c, DEVMIG_STATE_STOP), 0);
	fx_buf_free(&st);
}

static uint64_t taken_all(const struct side *s)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < 3; i++)
		for (unsigned v = 0; v < NVEC; v++)
			n += s->efd[i][v] >= 0 ? taken(s->efd[i][v]) : 0;
	return n;
}

/*
 * A vector pending because it was masked, raised again while the device
 * was stopped (one pending bit), and one raised only while stopped: both
 * migrate with config space and each fires exactly once on the destination
 * when it runs; nothing is left to fire after.
 */
static void held_vectors_migrate_and_fire_once(void **state)
{
	struct fx *f = *state;

	msix_enable(f, 0);
	/* SET_IRQS masks are the connection's: they do not travel */
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 1, 1),
			 0);
	assert_int_equal(raise(f, 1), 0);
	assert_int_equal(pba(f), 1u << 1);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_STOP), 0);
	assert_int_equal(raise(f, 1), 0);
	assert_int_equal(raise(f, 2), 0);
	assert_int_equal(pba(f), 1u << 1 | 1u << 2);
	assert_int_equal(taken_all(&f->a), 0);

	migrate_a_to_b(f);
	use(f, &f->b);
	assert_int_equal(pba(f), 1u << 1 | 1u << 2); /* pending on b, not fired: stopped */
	assert_int_equal(taken_all(&f->b), 0);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(taken(f->efd[2][1]), 1);
	assert_int_equal(taken(f->efd[2][2]), 1);
	assert_int_equal(pba(f), 0);
	assert_int_equal(taken_all(&f->b), 0);
	/* nothing more: not on another unmask, eventfd or state change */
	assert_int_equal(set_irqs(f, VFIO_PCI_MSIX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, NVEC),
			 0);
	set_eventfds(&f->b);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_STOP), 0);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(taken_all(&f->b), 0);
	/* and the source, stopped, signalled nothing; stopped or not, it
	 * refuses a vector it does not have */
	assert_int_equal(taken_all(&f->a), 0);
	use(f, &f->a);
	assert_int_equal(raise(f, NVEC), -EINVAL);
}

/* MSI without mask bits: its pending bits, kept by the function, travel too. */
static void msi_pending_without_mask_bits_migrates(void **state)
{
	struct fx *f = *state;

	msi_enable(f);
	assert_int_equal(set_irqs(f, VFIO_PCI_MSI_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 1, 1),
			 0);
	assert_int_equal(raise(f, 1), 0); /* masked by SET_IRQS: pending */
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_STOP), 0);
	assert_int_equal(raise(f, 3), 0); /* stopped: pending */
	assert_int_equal(taken_all(&f->a), 0);
	migrate_a_to_b(f);
	use(f, &f->b);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(taken(f->efd[1][1]), 1);
	assert_int_equal(taken(f->efd[1][3]), 1);
	assert_int_equal(taken_all(&f->b), 0);
}

/* INTx: raised while disabled in the command register, then while stopped
 * (one pending flag); fires once on the destination, then automasked. */
static void intx_pending_migrates_and_fires_once(void **state)
{
	struct fx *f = *state;

	cfg16(f, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE);
	assert_int_equal(raise(f, 0), 0);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_STOP), 0);
	cfg16(f, PCI_COMMAND, 0);
	assert_int_equal(raise(f, 0), 0);
	assert_int_equal(taken_all(&f->a), 0);
	migrate_a_to_b(f);
	use(f, &f->b);
	assert_int_equal(taken_all(&f->b), 0);
	assert_int_equal(devmig_client_set_state(f->c, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(taken(f->efd[0][0]), 1);
	assert_int_equal(set_irqs(f, VFIO_PCI_INTX_IRQ_INDEX,
				  VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1),
			 0);
	assert_int_equal(taken_all(&f->b), 0);
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
		T(held_vectors_migrate_and_fire_once),
		cmocka_unit_test_setup_teardown(msi_pending_without_mask_bits_migrates,
						setup_msi_nomask, teardown),
		T(intx_pending_migrates_and_fires_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
