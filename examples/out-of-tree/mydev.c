/* SPDX-License-Identifier: MIT */
/*
 * mydev: a migratable device built out of the devmig tree (Makefile: pkg-config).
 * BAR0 registers: 0x00 ID (RO), 0x04 SEED, 0x08 WRITES (RO: buffer writes),
 *   0x0c DOORBELL (WO: CHECKSUM := SEED folded over the buffer, MSI-X 0),
 *   0x10 CHECKSUM (RO). BAR1: MSI-X table and PBA (the core's).
 * BAR2: a 64 KiB buffer, tracked device memory: the core streams it in
 *   PRE_COPY and sends again only chunks written after they were sent.
 * The registers travel as one record, saved once the device is stopped.
 * Every op runs on the device's server thread, one at a time: no locks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devmig/device.h"
#include "devmig/variant.h"

enum { REG_ID = 0x00, REG_SEED = 0x04, REG_WRITES = 0x08, REG_DOORBELL = 0x0c,
       REG_CHECKSUM = 0x10, MYDV_ID = 0x5644594d, BUF_SIZE = 64 << 10, REC_REGS = 1 };

struct regs {
	uint32_t seed, writes, checksum;
};

struct mydev {
	struct devmig_device dev;
	struct regs r, loaded;
	int have_loaded;
	struct devmig_tracker *buf;
};

static struct mydev *to_my(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct mydev, dev);
}

static int my_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10e0);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 0, 4096, 0);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 1, 4096, 0);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 2, BUF_SIZE, 0);
	if (rc >= 0)
		rc = devmig_pci_add_msix(cfg, 0, 1, 1, 0, 1, 2048);
	if (rc >= 0 && !(to_my(dev)->buf = devmig_tracker_new(dev, BUF_SIZE, 4096, 0)))
		rc = -errno;
	return rc < 0 ? rc : 0;
}

static int my_bar_access(struct devmig_device *dev, unsigned bar, uint64_t off, void *data,
			 size_t len, bool is_write)
{
	struct mydev *m = to_my(dev);
	uint32_t v = 0;
	bool ring = false;

	if (len != 4 || off % 4)
		return -EINVAL;
	if (is_write)
		memcpy(&v, data, 4);
	if (bar == 2 && is_write) {
		devmig_tracker_write(m->buf, off, &v, 4); /* marks the chunk dirty */
		m->r.writes++;
	} else if (bar == 2) {
		memcpy(&v, (uint8_t *)devmig_tracker_mem(m->buf) + off, 4);
	} else if (is_write && off == REG_SEED) {
		m->r.seed = v;
	} else if (is_write && off == REG_DOORBELL) {
		const uint32_t *w = devmig_tracker_mem(m->buf);
		m->r.checksum = m->r.seed;
		for (unsigned i = 0; i < BUF_SIZE / 4; i++)
			m->r.checksum = (m->r.checksum << 5 | m->r.checksum >> 27) ^ w[i];
		ring = true;
	} else if (!is_write) {
		v = off == REG_ID ? MYDV_ID : off == REG_SEED ? m->r.seed
		  : off == REG_WRITES ? m->r.writes : off == REG_CHECKSUM ? m->r.checksum : 0;
	}
	if (!is_write)
		memcpy(data, &v, 4);
	if (ring)
		devmig_device_irq(dev, 0); /* kept pending by the core while stopped */
	return 0;
}

static void my_reset(struct devmig_device *dev)
{
	to_my(dev)->r = (struct regs){ 0 };
}

static int my_save_state(struct devmig_device *dev, struct devmig_save *s)
{
	return devmig_save_record(s, REC_REGS, &to_my(dev)->r, sizeof(struct regs));
}

/* The core's stop-copy estimate (the buffer, config, framing) plus ours. */
static uint64_t my_stop_copy_size(struct devmig_device *dev)
{
	return devmig_device_default_stop_copy_size(dev) + DEVMIG_RECORD_OVERHEAD +
	       sizeof(struct regs);
}

/* A whole, checked record from the source: staged until load_apply. */
static int my_load(struct devmig_device *dev, unsigned type, const void *data, size_t len,
		   char *why, size_t whylen)
{
	if (type != REC_REGS || len != sizeof(struct regs))
		return snprintf(why, whylen, "mydev: record %u of %zu bytes", type, len), -EINVAL;
	memcpy(&to_my(dev)->loaded, data, len);
	to_my(dev)->have_loaded = 1;
	return 0;
}

static int my_load_check(struct devmig_device *dev, char *why, size_t whylen)
{
	if (to_my(dev)->have_loaded)
		return 0;
	return snprintf(why, whylen, "mydev: no registers in the stream"), -EINVAL;
}

static void my_load_apply(struct devmig_device *dev)
{
	to_my(dev)->r = to_my(dev)->loaded;
	to_my(dev)->have_loaded = 0;
}

static void my_load_abort(struct devmig_device *dev)
{
	to_my(dev)->have_loaded = 0;
}

static const struct devmig_device_id my_id = { .name = "mydev", .version = "1af4:10e0-mydev-v1" };
static const struct devmig_device_ops my_ops = {
	.realize = my_realize, .reset = my_reset, .bar_access = my_bar_access,
};
static const struct devmig_migration_ops my_mig = {
	.caps = DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P | DEVMIG_MIG_PRE_COPY,
	.save_state = my_save_state, .stop_copy_size = my_stop_copy_size, .load = my_load,
	.load_check = my_load_check, .load_apply = my_load_apply, .load_abort = my_load_abort,
};

static struct devmig_device *my_create(const char *args, char *err, size_t errlen)
{
	struct mydev *m = calloc(1, sizeof(*m));
	int rc = !m ? -ENOMEM : args && *args ? -E2BIG : 0;
	if (!rc) {
		m->dev = (struct devmig_device){ .id = &my_id, .ops = &my_ops, .mig = &my_mig };
		rc = devmig_device_init(&m->dev);
	}
	if (!rc)
		return &m->dev;
	snprintf(err, errlen, "mydev: %s", rc == -E2BIG ? "takes no options" : strerror(-rc));
	free(m);
	return NULL;
}

static void my_free(struct devmig_device *dev)
{
	devmig_device_destroy(dev);
	free(to_my(dev));
}

static const struct devmig_variant mydev_variant = {
	DEVMIG_VARIANT_INIT,
	.name = "mydev",
	.summary = "an example out-of-tree device: registers, a 64 KiB buffer, MSI-X, PRE_COPY",
	.create = my_create,
	.free = my_free,
};

const struct devmig_variant *devmig_variant_entry(void)
{
	return &mydev_variant;
}
