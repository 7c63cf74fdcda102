/* SPDX-License-Identifier: MIT */
/*
 * The core's load path, end to end: records written into a device in
 * RESUMING (the stream reader, the core's dispatch of its own records:
 * tracked memory, BAR memory, config space with its pending interrupts; the variant's
 * records), then RESUMING->STOP (check, arc, apply).
 *
 * The device has tracked memory (16 KiB in 4 KiB chunks, ZERO records), a
 * BAR whose second half is memory, INTx, and one record of its own (type 1,
 * 8 bytes). The target puts the magic and HEADER of a real stream of the
 * same device first, so inputs reach past the header check.
 *
 * Input: one byte, then records: u32 type (little-endian), u16 length,
 * payload (cut short at the end of the input), each framed with a valid
 * CRC. Bit 0 of the first byte appends the real CONFIG record and an END
 * with the right counts; its other bits choose the segmentation of the
 * writes. Invariant: a refused RESUMING->STOP leaves the device in RESUMING
 * with its tracked memory, BAR memory, its own state and its config space
 * byte for byte as they were: nothing applied.
 *
 * Seeds: fuzz/corpus/core_load, written by this target itself when
 * DEVMIG_CORE_LOAD_SEED_DIR is set (a real stream of the device, as input).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "le.h"
#include "stream.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM_SIZE (16u << 10)
#define BAR_MEM 4096u

struct fdev {
	struct devmig_device dev;
	struct devmig_tracker *trk;
	uint8_t *bar;
	uint64_t state, staged;
	bool have_staged;
};

static struct fdev *to_fdev(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct fdev, dev);
}

static int f_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	struct fdev *f = to_fdev(dev);
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10fd);
	if (!rc)
		rc = devmig_pci_set_intx_pin(cfg, 1);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 0, 2 * BAR_MEM, 0);
	if (!rc && !(f->bar = devmig_device_bar_memory(dev, 0, BAR_MEM, BAR_MEM)))
		rc = -ENOMEM;
	if (!rc && !(f->trk = devmig_tracker_new(dev, MEM_SIZE, 4096, DEVMIG_TRACKER_ZERO)))
		rc = -ENOMEM;
	return rc;
}

static int f_save_state(struct devmig_device *dev, struct devmig_save *s)
{
	return devmig_save_record(s, 1, &to_fdev(dev)->state, 8);
}

static int f_load(struct devmig_device *dev, unsigned type, const void *data, size_t len,
		  char *why, size_t whylen)
{
	struct fdev *f = to_fdev(dev);
	if (type != 1 || len != 8) {
		snprintf(why, whylen, "fuzz device: record %u of %zu bytes", type, len);
		return -EINVAL;
	}
	memcpy(&f->staged, data, 8);
	f->have_staged = true;
	return 0;
}

static int f_load_check(struct devmig_device *dev, char *why, size_t whylen)
{
	if (to_fdev(dev)->have_staged)
		return 0;
	snprintf(why, whylen, "fuzz device: no state record");
	return -EINVAL;
}

static void f_load_apply(struct devmig_device *dev)
{
	struct fdev *f = to_fdev(dev);
	f->state = f->staged;
	f->have_staged = false;
}

static void f_load_abort(struct devmig_device *dev)
{
	to_fdev(dev)->have_staged = false;
}

static const struct devmig_device_id f_id = { .name = "fuzz", .version = "1af4:10fd-fuzz-v1" };
static const struct devmig_device_ops f_ops = { .realize = f_realize };
static const struct devmig_migration_ops f_mig = {
	.caps = DEVMIG_MIG_STOP_COPY,
	.save_state = f_save_state,
	.load = f_load,
	.load_check = f_load_check,
	.load_apply = f_load_apply,
	.load_abort = f_load_abort,
};

static struct fdev src, dst;
static uint8_t prefix[512], config[8192];
static size_t prefix_len, config_len;

static void set_state(struct fdev *f, enum devmig_state st)
{
	enum devmig_state now;
	char why[256];
	CHECK(devmig_core_set_state(&f->dev, st, &now, why, sizeof(why)) == 0);
}

static void dev_init(struct fdev *f)
{
	f->dev.id = &f_id;
	f->dev.ops = &f_ops;
	f->dev.mig = &f_mig;
	CHECK(devmig_device_init(&f->dev) == 0);
}

/* Input records as the target reads them: u32 type, u16 len, payload. */
static size_t seed_rec(uint8_t *out, uint32_t type, const uint8_t *p, size_t len)
{
	put32(out, type);
	put16(out + 4, (uint16_t)len);
	memcpy(out + 6, p, len);
	return 6 + len;
}

/* A real stream of the device: its HEADER and CONFIG for every input, and
 * (with DEVMIG_CORE_LOAD_SEED_DIR) the seeds. */
static void setup(void)
{
	static uint8_t stream[1 << 20], seed[1 << 20];
	size_t len = 0, slen = 1;
	struct iovec iov[DEVMIG_CORE_MAX_IOV];
	int niov;

	dev_init(&src);
	dev_init(&dst);
	src.state = 0x1122334455667788ull;
	CHECK(devmig_tracker_write(src.trk, 4096 + 17, "written", 7) == 0);
	memset(src.bar, 0xa5, 100);
	set_state(&src, DEVMIG_STATE_STOP);
	devmig_device_irq(&src.dev, 0); /* stopped: INTx pending, in the config snapshot */
	set_state(&src, DEVMIG_STATE_STOP_COPY);
	for (;;) {
		ssize_t n = devmig_core_mig_read(&src.dev, iov, DEVMIG_CORE_MAX_IOV, &niov, 65536, NULL);
		CHECK(n >= 0);
		for (int i = 0; i < niov; i++) {
			CHECK(len + iov[i].iov_len <= sizeof(stream));
			memcpy(stream + len, iov[i].iov_base, iov[i].iov_len);
			len += iov[i].iov_len;
		}
		if (n < 65536)
			break;
	}
	seed[0] = 1; /* CONFIG and END appended */
	size_t off = DEVMIG_STREAM_MAGIC_LEN;
	while (off < len) {
		uint32_t type = get32(stream + off), rl = get32(stream + off + 4);
		size_t whole = DEVMIG_STREAM_REC_OVERHEAD + rl;
		if (type == DEVMIG_REC_HEADER) {
			prefix_len = off + whole;
			CHECK(prefix_len <= sizeof(prefix));
			memcpy(prefix, stream, prefix_len);
		} else if (type == DEVMIG_REC_CONFIG) {
			CHECK(whole <= sizeof(config));
			memcpy(config, stream + off, whole);
			config_len = whole;
		} else if (type != DEVMIG_REC_END) {
			CHECK(rl <= 0xffff);
			slen += seed_rec(seed + slen, type, stream + off + 8, rl);
		}
		off += whole;
	}
	CHECK(prefix_len && config_len);
	const char *dir = getenv("DEVMIG_CORE_LOAD_SEED_DIR");
	if (dir) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/seed-stream", dir);
		FILE *f = fopen(path, "wb");
		CHECK(f && fwrite(seed, 1, slen, f) == slen && !fclose(f));
		seed[0] = 0; /* the same records, no CONFIG: refused, incomplete */
		snprintf(path, sizeof(path), "%s/seed-no-config", dir);
		f = fopen(path, "wb");
		CHECK(f && fwrite(seed, 1, slen, f) == slen && !fclose(f));
	}
}

struct snapshot {
	uint8_t mem[MEM_SIZE], bar[BAR_MEM], cfg[4096];
	uint64_t state;
};

static void snap(struct fdev *f, struct snapshot *s)
{
	memcpy(s->mem, devmig_tracker_mem(f->trk), MEM_SIZE);
	memcpy(s->bar, f->bar, BAR_MEM);
	CHECK(devmig_core_region_rw(&f->dev, DEVMIG_CONFIG_REGION, 0, s->cfg, 4096, false) == 0);
	s->state = f->state;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct snapshot before, after;
	static bool ready;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	size_t cap = prefix_len + config_len + DEVMIG_STREAM_REC_OVERHEAD + 16 + 2 * size + 64;
	uint8_t *st = malloc(cap);
	CHECK(st);
	memcpy(st, prefix, prefix_len);
	size_t len = prefix_len, off = 1;
	uint64_t bytes = 0;
	uint32_t count = 0;
	while (size - off >= 6) {
		uint32_t type = get32(data + off);
		size_t rl = get16(data + off + 4);
		off += 6;
		if (rl > size - off)
			rl = size - off;
		put32(st + len, type);
		put32(st + len + 4, (uint32_t)rl);
		memcpy(st + len + 8, data + off, rl);
		put32(st + len + 8 + rl, devmig_crc32c(0, st + len, 8 + rl));
		len += DEVMIG_STREAM_REC_OVERHEAD + rl;
		bytes += rl;
		count++;
		off += rl;
	}
	if (flags & 1) {
		uint8_t end[16];
		memcpy(st + len, config, config_len);
		len += config_len;
		put64(end, bytes);
		put32(end + 8, count);
		put32(end + 12, 0);
		put32(st + len, DEVMIG_REC_END);
		put32(st + len + 4, 16);
		memcpy(st + len + 8, end, 16);
		put32(st + len + 24, devmig_crc32c(0, st + len, 24));
		len += DEVMIG_STREAM_REC_OVERHEAD + 16;
	}

	devmig_core_reset(&dst.dev);
	set_state(&dst, DEVMIG_STATE_RESUMING);
	snap(&dst, &before);
	size_t seg = 1 + (size_t)(flags >> 1) * 97;
	for (size_t at = 0; at < len; at += seg)
		if (devmig_core_mig_write(&dst.dev, st + at, len - at < seg ? len - at : seg))
			break; /* refused: the reason is kept for RESUMING->STOP */
	enum devmig_state now;
	char why[256];
	int rc = devmig_core_set_state(&dst.dev, DEVMIG_STATE_STOP, &now, why, sizeof(why));
	if (rc) {
		CHECK(why[0]);
		CHECK(now == DEVMIG_STATE_RESUMING);
		snap(&dst, &after);
		CHECK(!memcmp(&before, &after, sizeof(before)));
	} else {
		CHECK(now == DEVMIG_STATE_STOP);
	}
	free(st);
	return 0;
}
