/* SPDX-License-Identifier: MIT */
/*
 * The API for device authors, through the public headers and the shared
 * library only (the way an out-of-tree device sees it): BAR memory a client
 * maps, tracked device memory and its PRE_COPY figures, the lifecycle rules,
 * and variants loaded from shared objects (the example device of
 * examples/out-of-tree, and two that must be refused).
 */
#include <errno.h>
#include <linux/vfio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices.h"
#include "devmig/client.h"
#include "devmig/device.h"
#include "devmig/variant.h"
#include "fixture.h"

static char dir[FX_PATH_MAX];

static int setup(void **state)
{
	(void)state;
	fx_tmpdir(dir, "api");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fx_rmdir(dir);
	return 0;
}

static void set_state(struct devmig_client *c, enum devmig_state st)
{
	int rc = devmig_client_set_state(c, st);
	if (rc)
		fail_msg("-> %s: %s", devmig_state_name(st), strerror(-rc));
}

/* src (RUNNING or PRE_COPY) -> STOP_COPY, the stream into dst, dst RUNNING. */
static void migrate(struct devmig_client *src, struct devmig_client *dst)
{
	static uint8_t buf[1 << 20];
	set_state(dst, DEVMIG_STATE_RESUMING);
	set_state(src, DEVMIG_STATE_STOP_COPY);
	for (;;) {
		ssize_t n = devmig_client_mig_read(src, buf, sizeof(buf));
		assert_true(n >= 0);
		assert_int_equal(devmig_client_mig_write(dst, buf, (size_t)n), 0);
		if ((size_t)n < sizeof(buf))
			break;
	}
	set_state(dst, DEVMIG_STATE_RUNNING);
}

static uint32_t rd32(struct devmig_client *c, uint32_t region, uint64_t off)
{
	uint32_t v = 0xdeadbeef;
	assert_int_equal(devmig_client_region_read(c, region, off, &v, 4), 0);
	return v;
}

/* ---- BAR memory: part mapped, part trapped ---- */

/* Region 2's sparse area, mapped from its fd. */
static uint32_t *map_bar2(struct devmig_client *c)
{
	struct devmig_region_info info = { .argsz = sizeof(info) };
	struct devmig_sparse_mmap_area areas[4];
	unsigned n = 4;
	int fd = -1;

	assert_int_equal(devmig_client_region_info(c, 2, &info, &fd, areas, &n), 0);
	assert_int_equal(info.size, 8192);
	assert_true(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_int_equal(n, 1);
	assert_int_equal(areas[0].offset, 0);
	assert_int_equal(areas[0].size, 4096);
	assert_true(fd >= 0);
	void *p = mmap(NULL, areas[0].size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		       (off_t)(info.offset + areas[0].offset));
	assert_true(p != MAP_FAILED);
	close(fd);
	return p;
}

static void counter_bar_memory_is_mapped_seen_and_migrates(void **state)
{
	(void)state;
	struct fx_server a = { 0 }, b = { 0 };
	fx_serve_variant(&a, dir, "a", &devmig_variant_counter, NULL);
	fx_serve_variant(&b, dir, "b", &devmig_variant_counter, NULL);
	struct devmig_client *ca = fx_connect(&a, NULL), *cb = fx_connect(&b, NULL);

	/* registers are trapped: no fd, no area */
	struct devmig_region_info info = { .argsz = sizeof(info) };
	unsigned n = 4;
	int fd = 0;
	struct devmig_sparse_mmap_area areas[4];
	assert_int_equal(devmig_client_region_info(ca, 0, &info, &fd, areas, &n), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(n, 0);
	assert_false(info.flags & VFIO_REGION_INFO_FLAG_MMAP);

	uint32_t *ma = map_bar2(ca), sum = 0;
	for (uint32_t i = 0; i < 1024; i++) {
		ma[i] = i * 2654435761u;
		sum += ma[i];
	}
	/* writes through the map are seen by the device (its trapped SUM) ... */
	assert_int_equal(rd32(ca, 2, 0x1000), sum);
	/* ... and by region accesses, which the core serves from the memory */
	assert_int_equal(rd32(ca, 2, 40), ma[10]);
	uint32_t v = 77;
	assert_int_equal(devmig_client_region_write(ca, 2, 8, &v, 4), 0);
	sum += 77 - 2 * 2654435761u;
	assert_int_equal(ma[2], 77);
	assert_int_equal(rd32(ca, 2, 0x1000), sum);
	/* one access across the boundary: memory, then the trapped register */
	uint32_t two[2];
	assert_int_equal(devmig_client_region_read(ca, 2, 0xffc, two, 8), 0);
	assert_int_equal(two[0], ma[1023]);
	assert_int_equal(two[1], sum);
	assert_int_equal(rd32(ca, 2, 0x1004), 0); /* the rest of the trapped part */

	/* asked with room for no capability: the size to retry with, and no
	 * CAPS flag without an offset (QEMU's vfio-user client refuses that) */
	struct {
		uint16_t id, cmd;
		uint32_t size, flags, error;
		struct devmig_region_info ri;
	} __attribute__((packed)) msg = {
		.cmd = 5, .size = sizeof(msg), .ri = { .argsz = sizeof(msg.ri), .index = 2 },
	}, rep;
	assert_int_equal(devmig_client_raw(ca, &msg, sizeof(msg), NULL, 0, &rep, sizeof(rep)),
			 sizeof(rep));
	assert_int_equal(rep.error, 0);
	assert_true(rep.ri.argsz > sizeof(rep.ri));
	assert_false(rep.ri.flags & VFIO_REGION_INFO_FLAG_CAPS);
	assert_int_equal(rep.ri.size, 8192);

	/* the memory migrates with the device */
	uint32_t *mb = map_bar2(cb);
	assert_int_equal(mb[10], 0);
	migrate(ca, cb);
	assert_memory_equal(mb, ma, 4096);
	assert_int_equal(rd32(cb, 2, 0x1000), sum);

	munmap(ma, 4096);
	munmap(mb, 4096);
	devmig_client_close(ca);
	devmig_client_close(cb);
	fx_unserve(&a);
	fx_unserve(&b);
}

/* ---- lifecycle and argument rules ---- */

struct rules {
	struct devmig_device dev;
	int realizes, releases;
	int what; /* which realize */
	int results[16];
	int nresults;
};

static struct rules *to_rules(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct rules, dev);
}

static void note(struct rules *r, int rc)
{
	r->results[r->nresults++] = rc;
}

static int rules_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	struct rules *r = to_rules(dev);

	r->realizes++;
	assert_int_equal(devmig_pci_set_ids(cfg, 0x1af4, 0x10fb), 0);
	assert_int_equal(devmig_pci_set_bar(cfg, 0, 16384, 0), 0);
	assert_int_equal(devmig_pci_set_bar(cfg, 1, 256, PCI_BASE_ADDRESS_SPACE_IO), 0);
	switch (r->what) {
	case 0: /* half done, then refused: release must run */
		return -EIO;
	case 1: /* BAR memory rules */
		errno = 0;
		note(r, devmig_device_bar_memory(dev, 0, 100, 4096) ? 0 : errno);   /* unaligned */
		note(r, devmig_device_bar_memory(dev, 0, 0, 0) ? 0 : errno);        /* empty */
		note(r, devmig_device_bar_memory(dev, 0, 8192, 16384) ? 0 : errno); /* beyond */
		note(r, devmig_device_bar_memory(dev, 1, 0, 4096) ? 0 : errno);     /* I/O BAR */
		note(r, devmig_device_bar_memory(dev, 3, 0, 4096) ? 0 : errno);     /* undeclared */
		note(r, devmig_device_bar_memory(dev, 0, 4096, 4096) ? 0 : errno);  /* fine */
		note(r, devmig_device_bar_memory(dev, 0, 8192, 4096) ? 0 : errno);  /* twice */
		return 0;
	case 2: /* MSI-X table inside the memory part: refused after realize */
		assert_non_null(devmig_device_bar_memory(dev, 0, 0, 8192));
		return devmig_pci_add_msix(cfg, 0, 4, 0, 4096, 0, 12288) < 0 ? -EINVAL : 0;
	case 3: { /* tracker rules */
		errno = 0;
		note(r, devmig_tracker_new(dev, 0, 4096, 0) ? 0 : errno);
		note(r, devmig_tracker_new(dev, 65536, 3000, 0) ? 0 : errno);
		note(r, devmig_tracker_new(dev, 65536, 2u << 20, 0) ? 0 : errno);
		note(r, devmig_tracker_new(dev, 65536, 4096, 1u << 7) ? 0 : errno);
		for (unsigned i = 0; i < DEVMIG_TRACKERS_MAX; i++)
			assert_non_null(devmig_tracker_new(dev, 4096, 4096, 0));
		note(r, devmig_tracker_new(dev, 4096, 4096, 0) ? 0 : errno);
		return 0;
	}
	}
	return 0;
}

static void rules_release(struct devmig_device *dev)
{
	to_rules(dev)->releases++;
}

static const struct devmig_device_id rules_id = { .name = "rules", .version = "rules-1" };
static const struct devmig_device_ops rules_ops = {
	.realize = rules_realize,
	.release = rules_release,
};

static int rules_init(struct rules *r, int what)
{
	memset(r, 0, sizeof(*r));
	r->what = what;
	r->dev.id = &rules_id;
	r->dev.ops = &rules_ops;
	return devmig_device_init(&r->dev);
}

static void release_runs_when_realize_fails(void **state)
{
	(void)state;
	struct rules r;

	assert_int_equal(rules_init(&r, 0), -EIO);
	assert_int_equal(r.realizes, 1);
	assert_int_equal(r.releases, 1);
	assert_null(r.dev.core);
	/* the MSI-X table placed inside BAR memory: refused once realize is done */
	assert_int_equal(rules_init(&r, 2), -EINVAL);
	assert_int_equal(r.releases, 1);
	/* a device needs an identity */
	struct devmig_device anon = { .ops = &rules_ops };
	assert_int_equal(devmig_device_init(&anon), -EINVAL);
	/* and destroy releases once */
	assert_int_equal(rules_init(&r, 1), 0);
	devmig_device_destroy(&r.dev);
	assert_int_equal(r.releases, 1);
}

static void bar_memory_arguments(void **state)
{
	(void)state;
	struct rules r;
	static const int want[] = { EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, 0, EEXIST };

	assert_int_equal(rules_init(&r, 1), 0);
	assert_int_equal(r.nresults, 7);
	assert_memory_equal(r.results, want, sizeof(want));
	devmig_device_destroy(&r.dev);
}

static void tracker_arguments(void **state)
{
	(void)state;
	struct rules r;
	static const int want[] = { EINVAL, EINVAL, EINVAL, EINVAL, ENOSPC };

	assert_int_equal(rules_init(&r, 3), 0);
	assert_int_equal(r.nresults, 5);
	assert_memory_equal(r.results, want, sizeof(want));
	devmig_device_destroy(&r.dev);
}

/* ---- tracked memory: estimates and PRE_COPY figures ---- */

struct tdev {
	struct devmig_device dev;
	struct devmig_tracker *t;
	unsigned flags;
};

static int t_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	struct tdev *t = devmig_container_of(dev, struct tdev, dev);
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10fc);
	if (!rc && !(t->t = devmig_tracker_new(dev, 10 * 4096 + 100, 4096, t->flags)))
		rc = -errno;
	return rc;
}

static const struct devmig_device_id t_id = { .name = "tracked", .version = "tracked-1" };
static const struct devmig_device_ops t_ops = { .realize = t_realize };
static const struct devmig_migration_ops t_mig = {
	.caps = DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_PRE_COPY,
};

static void tracker_ranges_and_estimates(void **state)
{
	(void)state;
	struct tdev z = { .dev = { .id = &t_id, .ops = &t_ops, .mig = &t_mig },
			  .flags = DEVMIG_TRACKER_ZERO };
	struct tdev w = { .dev = { .id = &t_id, .ops = &t_ops, .mig = &t_mig } };

	assert_int_equal(devmig_device_init(&z.dev), 0);
	assert_int_equal(devmig_device_init(&w.dev), 0);
	uint64_t size = devmig_tracker_size(z.t);
	assert_int_equal(size, 10 * 4096 + 100);
	assert_int_equal(devmig_tracker_write(z.t, size - 4, "abcd", 4), 0);
	assert_int_equal(devmig_tracker_write(z.t, size - 3, "abcd", 4), -ERANGE);
	assert_int_equal(devmig_tracker_write(z.t, UINT64_MAX, "a", 1), -ERANGE);
	assert_int_equal(devmig_tracker_mark(z.t, size, 1), -ERANGE);
	assert_int_equal(devmig_tracker_mark(z.t, 0, size), 0);
	assert_int_equal(memcmp((uint8_t *)devmig_tracker_mem(z.t) + size - 4, "abcd", 4), 0);

	/* No session: everything a STOP_COPY would send. A chunk never written
	 * is a 20-byte ZERO record with DEVMIG_TRACKER_ZERO, else its bytes. */
	uint64_t ez = devmig_device_default_stop_copy_size(&z.dev);
	uint64_t ew = devmig_device_default_stop_copy_size(&w.dev);
	/* z has every chunk marked written, w none: the same 11 chunks of data */
	assert_int_equal(ez, ew);
	struct tdev z2 = { .dev = { .id = &t_id, .ops = &t_ops, .mig = &t_mig },
			   .flags = DEVMIG_TRACKER_ZERO };
	assert_int_equal(devmig_device_init(&z2.dev), 0);
	uint64_t e0 = devmig_device_default_stop_copy_size(&z2.dev);
	assert_int_equal(ew - e0, size); /* the bytes of every chunk */
	assert_int_equal(devmig_tracker_write(z2.t, 4096 * 10 + 1, "x", 1), 0);
	assert_int_equal(devmig_device_default_stop_copy_size(&z2.dev) - e0, 100); /* short last */
	assert_int_equal(devmig_tracker_write(z2.t, 4096 * 3, "x", 1), 0);
	assert_int_equal(devmig_device_default_stop_copy_size(&z2.dev) - e0, 100 + 4096);
	/* Without a session there is no PRE_COPY progress. */
	uint64_t initial = 1, dirty = 1;
	devmig_device_default_precopy_info(&z2.dev, &initial, &dirty);
	assert_int_equal(initial, 0);
	assert_int_equal(dirty, 0);
	devmig_device_destroy(&z.dev);
	devmig_device_destroy(&w.dev);
	devmig_device_destroy(&z2.dev);
}

/* ---- variants from shared objects ---- */

static const char *env(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v)
		fail_msg("%s is not set (meson sets it)", name);
	return v;
}

static void refused_shared_objects_say_why(void **state)
{
	(void)state;
	char err[512];

	assert_null(devmig_variant_open(env("DEVMIG_BAD_ABI_SO"), err, sizeof(err)));
	print_message("# %s\n", err);
	char want[64];
	snprintf(want, sizeof(want), "was built for devmig variant ABI %u", DEVMIG_VARIANT_ABI + 6);
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, "rebuild it"));
	assert_null(devmig_variant_open(env("DEVMIG_NO_ENTRY_SO"), err, sizeof(err)));
	assert_non_null(strstr(err, "is not a devmig device variant"));
	assert_non_null(strstr(err, DEVMIG_VARIANT_ENTRY));
	assert_null(devmig_variant_open("/nonexistent/libnothing.so", err, sizeof(err)));
	assert_non_null(strstr(err, "cannot load /nonexistent/libnothing.so"));
	assert_int_equal(devmig_variant_abi(), DEVMIG_VARIANT_ABI);
}

/* The example device, loaded as `devmig serve --device` loads it, migrates
 * with PRE_COPY: its buffer streams while it runs, and only the chunk
 * rewritten after it was sent travels again. */
static void example_variant_loads_and_migrates_with_precopy(void **state)
{
	(void)state;
	char err[512];
	const struct devmig_variant *v = devmig_variant_open(env("DEVMIG_EXAMPLE_SO"), err,
							     sizeof(err));
	if (!v)
		fail_msg("%s", err);
	assert_string_equal(v->name, "mydev");
	assert_null(v->create("x=1", err, sizeof(err)));
	assert_non_null(strstr(err, "takes no options"));

	struct fx_server a = { 0 }, b = { 0 };
	fx_serve_variant(&a, dir, "mya", v, NULL);
	fx_serve_variant(&b, dir, "myb", v, NULL);
	struct devmig_client *ca = fx_connect(&a, NULL), *cb = fx_connect(&b, NULL);
	assert_int_equal(rd32(ca, 0, 0), 0x5644594d);
	for (uint32_t off = 0; off < 65536; off += 4096) {
		uint32_t x = off ^ 0x5a5a;
		assert_int_equal(devmig_client_region_write(ca, 2, off, &x, 4), 0);
	}
	uint32_t seed = 99;
	assert_int_equal(devmig_client_region_write(ca, 0, 4, &seed, 4), 0);

	uint64_t initial, dirty;
	static uint8_t buf[1 << 20];
	set_state(cb, DEVMIG_STATE_RESUMING);
	set_state(ca, DEVMIG_STATE_PRE_COPY);
	assert_int_equal(devmig_client_precopy_info(ca, &initial, &dirty), 0);
	assert_true(initial >= 65536 && initial < 65536 + 1024);
	ssize_t n = devmig_client_mig_read(ca, buf, sizeof(buf));
	assert_true(n > 65536 && n < (ssize_t)sizeof(buf));
	assert_int_equal(devmig_client_mig_write(cb, buf, (size_t)n), 0);
	assert_int_equal(devmig_client_precopy_info(ca, &initial, &dirty), 0);
	assert_int_equal(initial, 0);
	assert_int_equal(dirty, 0);
	uint32_t x = 1234567;
	assert_int_equal(devmig_client_region_write(ca, 2, 8192 + 12, &x, 4), 0);
	assert_int_equal(devmig_client_precopy_info(ca, &initial, &dirty), 0);
	/* The chunk: 4096 bytes while the core holds it; over the data fd its
	 * server may already have put the chunk's record in the pipe, counted
	 * as the stream bytes still to come, its framing included. */
	if (dirty != 4096 && (dirty < 4096 || dirty > 4096 + 64))
		fail_msg("dirty_bytes %llu after one 4 KiB chunk was rewritten",
			 (unsigned long long)dirty);
	set_state(ca, DEVMIG_STATE_STOP_COPY);
	for (;;) {
		n = devmig_client_mig_read(ca, buf, sizeof(buf));
		assert_true(n >= 0 && n < 3 * 4096 + 4096 * 2); /* one chunk, registers, config */
		assert_int_equal(devmig_client_mig_write(cb, buf, (size_t)n), 0);
		if ((size_t)n < sizeof(buf))
			break;
	}
	set_state(cb, DEVMIG_STATE_RUNNING);
	assert_int_equal(rd32(cb, 2, 8192 + 12), 1234567);
	assert_int_equal(rd32(cb, 2, 4096), 4096 ^ 0x5a5a);
	assert_int_equal(rd32(cb, 0, 4), 99);
	assert_int_equal(rd32(cb, 0, 8), 17); /* WRITES */
	/* the same checksum on both sides */
	assert_int_equal(devmig_client_region_write(ca, 0, 0x0c, &x, 4), 0);
	assert_int_equal(devmig_client_region_write(cb, 0, 0x0c, &x, 4), 0);
	assert_int_equal(rd32(ca, 0, 0x10), rd32(cb, 0, 0x10));
	devmig_client_close(ca);
	devmig_client_close(cb);
	fx_unserve(&a);
	fx_unserve(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(counter_bar_memory_is_mapped_seen_and_migrates, setup,
						teardown),
		cmocka_unit_test(release_runs_when_realize_fails),
		cmocka_unit_test(bar_memory_arguments),
		cmocka_unit_test(tracker_arguments),
		cmocka_unit_test(tracker_ranges_and_estimates),
		cmocka_unit_test(refused_shared_objects_say_why),
		cmocka_unit_test_setup_teardown(example_variant_loads_and_migrates_with_precopy, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
