/* SPDX-License-Identifier: MIT */
/*
 * counter: the smallest complete migratable device, UART-like.
 *
 * BAR0 (4 KiB of registers, all 32-bit, little-endian):
 *   0x00 COUNT      read: the counter; write: add the value written
 *   0x04 THRESHOLD  when COUNT reaches it (non-zero), MSI-X vector 0 fires
 *   0x08 SCRATCH0..SCRATCH3 (0x08, 0x0c, 0x10, 0x14): plain storage
 *   0x18 ID         read-only 0x434e5452 ("CNTR")
 *   0x1c FIFO_DATA  write: push the low byte (dropped when full);
 *                   read: pop one byte (0 when empty)
 *   0x20 FIFO_LEVEL read-only: bytes queued (0..256)
 * A push into an empty FIFO fires MSI-X vector 0 ("data ready").
 * BAR1 holds the MSI-X table (1 vector) and PBA.
 * BAR2 (8 KiB) is part memory, part registers: its first 4 KiB are memory a
 * client maps (a sparse-mmap area; the guest's accesses never trap), the
 * second 4 KiB trap to the device:
 *   0x1000 MEM_SUM  read-only: the sum of the memory's 1024 32-bit words
 *
 * Migration: the ~290 bytes of state travel as one record the device emits
 * once stopped; the core carries BAR2's memory itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"
#include "devmig/device.h"
#include "devmig/variant.h"

#define COUNTER_ID 0x434e5452u
enum {
	REG_COUNT = 0x00, REG_THRESHOLD = 0x04, REG_SCRATCH = 0x08, REG_ID = 0x18,
	REG_FIFO_DATA = 0x1c, REG_FIFO_LEVEL = 0x20, NSCRATCH = 4, FIFO_SIZE = 256,
	MEM_SIZE = 4096, REG_MEM_SUM = 0x1000, REC_STATE = 1,
};

struct counter_state {
	uint32_t count;
	uint32_t threshold;
	uint32_t scratch[NSCRATCH];
	uint32_t fifo_head;  /* index of the oldest byte */
	uint32_t fifo_level; /* bytes queued */
	uint8_t fifo[FIFO_SIZE];
};

struct counter {
	struct devmig_device dev;
	pthread_mutex_t lock; /* registers vs. a concurrent save */
	struct counter_state st;
	const uint32_t *mem;  /* BAR2's memory part */
	struct counter_state loaded; /* the state record of a load */
	bool have_loaded;
};

static struct counter *to_counter(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct counter, dev);
}

static int counter_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10f0);
	if (!rc)
		rc = devmig_pci_set_class(cfg, 0xff0000, 1);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 0, 4096, 0);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 1, 4096, 0);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 2, 2 * MEM_SIZE, 0);
	if (!rc && !(to_counter(dev)->mem = devmig_device_bar_memory(dev, 2, 0, MEM_SIZE)))
		rc = -errno;
	if (rc >= 0)
		rc = devmig_pci_add_pm(cfg, 0);
	if (rc >= 0)
		rc = devmig_pci_add_msix(cfg, 0, 1, 1, 0, 1, 2048);
	if (rc >= 0)
		rc = devmig_pci_add_pcie(cfg, 0, PCI_EXP_LNKCAP_SLS_2_5GB, 1);
	return rc < 0 ? rc : 0;
}

static int counter_bar_access(struct devmig_device *dev, unsigned bar, uint64_t offset,
			      void *buf, size_t len, bool is_write)
{
	struct counter *c = to_counter(dev);
	uint32_t val = 0;
	bool fire = false;

	if (len != 4 || (offset & 3))
		return -EINVAL; /* 32-bit registers only */
	if (bar == 2) {
		/* The memory may change under us through a client's mapping:
		 * each word is read once. */
		for (unsigned i = 0; i < MEM_SIZE / 4 && offset == REG_MEM_SUM; i++)
			val += __atomic_load_n(&c->mem[i], __ATOMIC_RELAXED);
		if (!is_write)
			memcpy(buf, &val, 4);
		return 0;
	}
	if (is_write)
		memcpy(&val, buf, 4);
	pthread_mutex_lock(&c->lock);
	switch (offset) {
	case REG_COUNT:
		if (is_write) {
			uint32_t before = c->st.count;
			c->st.count += val;
			fire = c->st.threshold && before < c->st.threshold &&
			       c->st.count >= c->st.threshold;
		}
		val = c->st.count;
		break;
	case REG_THRESHOLD:
		if (is_write)
			c->st.threshold = val;
		val = c->st.threshold;
		break;
	case REG_ID:
		val = COUNTER_ID;
		break;
	case REG_FIFO_DATA:
		if (is_write) {
			if (c->st.fifo_level < FIFO_SIZE) {
				fire = c->st.fifo_level == 0;
				c->st.fifo[(c->st.fifo_head + c->st.fifo_level) % FIFO_SIZE] = (uint8_t)val;
				c->st.fifo_level++;
			}
		} else if (c->st.fifo_level) {
			val = c->st.fifo[c->st.fifo_head];
			c->st.fifo_head = (c->st.fifo_head + 1) % FIFO_SIZE;
			c->st.fifo_level--;
		} else {
			val = 0;
		}
		break;
	case REG_FIFO_LEVEL:
		val = c->st.fifo_level;
		break;
	default:
		if (offset >= REG_SCRATCH && offset < REG_SCRATCH + 4 * NSCRATCH) {
			uint32_t *r = &c->st.scratch[(offset - REG_SCRATCH) / 4];
			if (is_write)
				*r = val;
			val = *r;
		} else {
			val = 0;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (!is_write)
		memcpy(buf, &val, 4);
	if (fire)
		devmig_device_irq(dev, 0);
	return 0;
}

static void counter_reset(struct devmig_device *dev)
{
	struct counter *c = to_counter(dev);

	pthread_mutex_lock(&c->lock);
	memset(&c->st, 0, sizeof(c->st));
	pthread_mutex_unlock(&c->lock);
}

/* Stopped in STOP_COPY: the state, whole, as one record. */
static int counter_save_state(struct devmig_device *dev, struct devmig_save *s)
{
	struct counter *c = to_counter(dev);

	pthread_mutex_lock(&c->lock);
	int rc = devmig_save_record(s, REC_STATE, &c->st, sizeof(c->st));
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* The core's figure (BAR2's memory, config space, framing) and the state record. */
static uint64_t counter_stop_copy_size(struct devmig_device *dev)
{
	return devmig_device_default_stop_copy_size(dev) + DEVMIG_RECORD_OVERHEAD +
	       sizeof(struct counter_state);
}

static int counter_load(struct devmig_device *dev, unsigned type, const void *data, size_t len,
			char *why, size_t whylen)
{
	struct counter *c = to_counter(dev);
	struct counter_state st;

	if (type != REC_STATE || len != sizeof(st)) {
		snprintf(why, whylen, "counter: record type %u of %zu bytes, expected type %u of %zu",
			 type, len, REC_STATE, sizeof(st));
		return -EINVAL;
	}
	memcpy(&st, data, len);
	if (st.fifo_head >= FIFO_SIZE || st.fifo_level > FIFO_SIZE) {
		snprintf(why, whylen, "counter FIFO state invalid (head %u, level %u, size %u)",
			 st.fifo_head, st.fifo_level, FIFO_SIZE);
		return -EINVAL;
	}
	c->loaded = st;
	c->have_loaded = true;
	return 0;
}

static int counter_load_check(struct devmig_device *dev, char *why, size_t whylen)
{
	if (to_counter(dev)->have_loaded)
		return 0;
	snprintf(why, whylen, "counter: the stream has no state record");
	return -EINVAL;
}

static void counter_load_apply(struct devmig_device *dev)
{
	struct counter *c = to_counter(dev);

	pthread_mutex_lock(&c->lock);
	c->st = c->loaded;
	pthread_mutex_unlock(&c->lock);
	c->have_loaded = false;
}

static void counter_load_abort(struct devmig_device *dev)
{
	to_counter(dev)->have_loaded = false;
}

static const struct devmig_device_id counter_id = {
	.name = "counter",
	.version = "1af4:10f0-counter-v2",
};

static const struct devmig_device_ops counter_ops = {
	.realize = counter_realize,
	.reset = counter_reset,
	.bar_access = counter_bar_access,
};

static const struct devmig_migration_ops counter_mig = {
	.caps = DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P,
	.save_state = counter_save_state,
	.stop_copy_size = counter_stop_copy_size,
	.load = counter_load,
	.load_check = counter_load_check,
	.load_apply = counter_load_apply,
	.load_abort = counter_load_abort,
};

static struct devmig_device *counter_create(const char *args, char *err, size_t errlen)
{
	(void)args;
	struct counter *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->dev.id = &counter_id;
	c->dev.ops = &counter_ops;
	c->dev.mig = &counter_mig;
	int rc = devmig_device_init(&c->dev);
	if (rc) {
		snprintf(err, errlen, "counter: %s", strerror(-rc));
		free(c);
		return NULL;
	}
	return &c->dev;
}

static void counter_free(struct devmig_device *dev)
{
	struct counter *c = to_counter(dev);

	devmig_device_destroy(dev);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

const struct devmig_variant devmig_variant_counter = {
	DEVMIG_VARIANT_INIT,
	.name = "counter",
	.summary = "a counter with a threshold interrupt: the shortest complete variant",
	.create = counter_create,
	.free = counter_free,
};
