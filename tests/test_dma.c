/* SPDX-License-Identifier: MIT */
/* The DMA map table and DMA dirty logging (lib/dma.c). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "dma.h"

#define PG 4096ull
#define R DEVMIG_DMA_READ
#define W DEVMIG_DMA_WRITE
#define RW (R | W)

/* ---- helpers ---- */

/* Guest memory: a memfd plus the test's own view of it. */
struct guest {
	int fd;
	uint8_t *view;
	size_t size;
};

static void guest_new(struct guest *g, size_t size)
{
	g->fd = memfd_create("guest", MFD_CLOEXEC);
	assert_true(g->fd >= 0);
	assert_int_equal(ftruncate(g->fd, (off_t)size), 0);
	g->view = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
	assert_true(g->view != MAP_FAILED);
	g->size = size;
}

static void guest_free(struct guest *g)
{
	munmap(g->view, g->size);
	close(g->fd);
}

/* Map [iova, iova+size) to g at off; the table gets a dup of g->fd. */
static int map_guest(struct devmig_dma *dma, struct guest *g, uint64_t iova, uint64_t size,
		     uint32_t prot, uint64_t off)
{
	int fd = dup(g->fd);
	int rc;

	assert_true(fd >= 0);
	rc = devmig_dma_map(dma, iova, size, prot, fd, off);
	if (rc)
		close(fd);
	return rc;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void stats(struct devmig_dma *dma, struct devmig_dma_stats *st)
{
	devmig_dma_get_stats(dma, st);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static bool bit(const uint64_t *bm, uint64_t n)
{
	return bm[n / 64] >> (n % 64) & 1;
}

/* Fake transport: client memory at [base, base+sizeof(mem)). */
struct fake {
	uint64_t base;
	uint8_t mem[8 * 4096];
	atomic_int calls;
	atomic_int started, finished;
	atomic_bool release;
	bool block; /* wait for .release inside xfer */
	int fail;   /* negative: return it */
};

static int fake_xfer(void *opaque, bool is_write, uint64_t iova, void *buf, size_t len)
{
	struct fake *f = opaque;

	atomic_fetch_add(&f->calls, 1);
	atomic_fetch_add(&f->started, 1);
	if (f->block)
		while (!atomic_load(&f->release))
			sleep_ms(1);
	if (f->fail) {
		atomic_fetch_add(&f->finished, 1);
		return f->fail;
	}
	/* The table must never send an access outside the mapping it checked. */
	if (iova < f->base || iova + len > f->base + sizeof(f->mem))
		return -ERANGE;
	if (is_write)
		memcpy(f->mem + (iova - f->base), buf, len);
	else
		memcpy(buf, f->mem + (iova - f->base), len);
	atomic_fetch_add(&f->finished, 1);
	return 0;
}

static struct devmig_dma *fake_dma(struct fake *f, uint64_t base, bool unmap_waits)
{
	struct devmig_dma_transport t = { .xfer = fake_xfer, .opaque = f,
					  .unmap_waits = unmap_waits };

	memset(f, 0, sizeof(*f));
	f->base = base;
	return devmig_dma_create(&t);
}

/* ---- map / unmap ---- */

static void t_map_unmap(void **s)
{
	(void)s;
	struct devmig_dma *dma = devmig_dma_create(NULL);
	struct devmig_dma_stats st;
	struct guest g;
	int fd;

	guest_new(&g, 4 * PG);
	fd = dup(g.fd);
	assert_int_equal(devmig_dma_map(dma, 0x10000, 2 * PG, RW, fd, 0), 0);
	assert_false(fd_open(fd)); /* the table took it and closed it */
	assert_int_equal(map_guest(dma, &g, 0x20000, 2 * PG, R, 2 * PG), 0);
	assert_int_equal(devmig_dma_map(dma, 0x40000, PG, RW, -1, 0), 0); /* fd-less */
	stats(dma, &st);
	assert_int_equal(st.mappings, 3);
	assert_int_equal(st.bytes_mapped, 5 * PG);
	assert_false(st.logging);

	assert_int_equal(devmig_dma_unmap(dma, 0x20000, 2 * PG), 0);
	assert_int_equal(devmig_dma_unmap(dma, 0x20000, 2 * PG), -ENOENT);
	/* The same range can be mapped again. */
	assert_int_equal(map_guest(dma, &g, 0x20000, 2 * PG, R, 0), 0);
	stats(dma, &st);
	assert_int_equal(st.mappings, 3);

	devmig_dma_unmap_all(dma);
	stats(dma, &st);
	assert_int_equal(st.mappings, 0);
	assert_int_equal(st.bytes_mapped, 0);
	assert_int_equal(map_guest(dma, &g, 0x20000, 2 * PG, R, 0), 0);
	devmig_dma_destroy(dma); /* with a mapping still present */
	guest_free(&g);
}

static void t_map_refusals(void **s)
{
	(void)s;
	struct devmig_dma *dma = devmig_dma_create(NULL);
	struct devmig_dma_stats st;
	struct guest g;
	int fd, pfd[2];
	const struct {
		uint64_t iova, size;
		uint32_t prot;
		uint64_t off;
		int err;
	} bad[] = {
		{ 0x100000, 0, RW, 0, -EINVAL },            /* size 0 */
		{ 0x100800, PG, RW, 0, -EINVAL },           /* iova unaligned */
		{ 0x100000, 100, RW, 0, -EINVAL },          /* size unaligned */
		{ 0x100000, PG, RW, 100, -EINVAL },         /* offset unaligned */
		{ 0x100000, PG, 4, 0, -EINVAL },            /* unknown prot bit */
		{ UINT64_MAX - PG + 1, PG, RW, 0, -EINVAL }, /* ends at 2^64 */
		{ UINT64_MAX - PG + 1, 2 * PG, RW, 0, -EINVAL }, /* wraps */
		{ 0x10000, PG, RW, 0, -EEXIST },            /* identical start */
		{ 0x10000, 4 * PG, RW, 0, -EEXIST },        /* identical */
		{ 0x0f000, 2 * PG, RW, 0, -EEXIST },        /* overlaps the front */
		{ 0x13000, 2 * PG, RW, 0, -EEXIST },        /* overlaps the back */
		{ 0x11000, PG, RW, 0, -EEXIST },            /* inside */
		{ 0x0f000, 8 * PG, RW, 0, -EEXIST },        /* around */
		{ 0x16000, 8 * PG, RW, 0, -EEXIST },        /* around the second */
	};

	guest_new(&g, 4 * PG);
	assert_int_equal(map_guest(dma, &g, 0x10000, 4 * PG, RW, 0), 0);
	assert_int_equal(devmig_dma_map(dma, 0x18000, PG, RW, -1, 0), 0);
	/* Adjacent on both sides is fine. */
	assert_int_equal(devmig_dma_map(dma, 0x0f000, PG, R, -1, 0), 0);
	assert_int_equal(devmig_dma_map(dma, 0x14000, PG, R, -1, 0), 0);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = dup(g.fd);
		assert_int_equal(devmig_dma_map(dma, bad[i].iova, bad[i].size, bad[i].prot, fd,
						 bad[i].off), bad[i].err);
		assert_true(fd_open(fd)); /* still the caller's */
		close(fd);
		/* fd-less too, where the check applies */
		if (bad[i].off == 0)
			assert_int_equal(devmig_dma_map(dma, bad[i].iova, bad[i].size,
							bad[i].prot, -1, 0), bad[i].err);
		stats(dma, &st);
		assert_int_equal(st.mappings, 4);
		assert_int_equal(st.bytes_mapped, 7 * PG);
	}

	/* mmap failures: a pipe cannot be mapped; write on a read-only fd. */
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(devmig_dma_map(dma, 0x100000, PG, R, pfd[0], 0), -ENODEV);
	assert_true(fd_open(pfd[0]));
	close(pfd[0]);
	close(pfd[1]);
	{
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", g.fd);
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(devmig_dma_map(dma, 0x100000, PG, RW, fd, 0), -EACCES);
		assert_true(fd_open(fd));
		assert_int_equal(devmig_dma_map(dma, 0x100000, PG, R, fd, 0), 0);
		assert_false(fd_open(fd));
	}
	assert_int_equal(devmig_dma_unmap(dma, 0x100000, PG), 0);

	/* ENOSPC at the configured maximum. */
	devmig_dma_set_max_mappings(dma, 5);
	assert_int_equal(devmig_dma_map(dma, 0x200000, PG, RW, -1, 0), 0);
	fd = dup(g.fd);
	assert_int_equal(devmig_dma_map(dma, 0x300000, PG, RW, fd, 0), -ENOSPC);
	assert_true(fd_open(fd));
	close(fd);
	stats(dma, &st);
	assert_int_equal(st.mappings, 5);
	devmig_dma_destroy(dma);
	guest_free(&g);
}

static void t_unmap_refusals(void **s)
{
	(void)s;
	struct devmig_dma *dma = devmig_dma_create(NULL);
	struct devmig_dma_stats st;

	assert_int_equal(devmig_dma_map(dma, 0x10000, 4 * PG, RW, -1, 0), 0);
	assert_int_equal(devmig_dma_unmap(dma, 0x20000, PG), -ENOENT);
	assert_int_equal(devmig_dma_unmap(dma, 0x0f000, PG), -ENOENT);  /* adjacent below */
	assert_int_equal(devmig_dma_unmap(dma, 0x14000, PG), -ENOENT);  /* adjacent above */
	assert_int_equal(devmig_dma_unmap(dma, 0x10000, PG), -EINVAL);  /* partial */
	assert_int_equal(devmig_dma_unmap(dma, 0x11000, PG), -EINVAL);  /* inside */
	assert_int_equal(devmig_dma_unmap(dma, 0x10000, 8 * PG), -EINVAL); /* larger */
	assert_int_equal(devmig_dma_unmap(dma, 0x0f000, 2 * PG), -EINVAL); /* straddles */
	assert_int_equal(devmig_dma_unmap(dma, 0x10000, 0), -EINVAL);
	assert_int_equal(devmig_dma_unmap(dma, UINT64_MAX - PG + 1, 2 * PG), -EINVAL);
	stats(dma, &st);
	assert_int_equal(st.mappings, 1);
	assert_int_equal(st.bytes_mapped, 4 * PG);
	assert_int_equal(devmig_dma_unmap(dma, 0x10000, 4 * PG), 0);
	devmig_dma_destroy(dma);
}

/* ---- accessors ---- */

static void t_rw_fd(void **s)
{
	(void)s;
	struct devmig_dma *dma = devmig_dma_create(NULL);
	struct guest g;
	uint8_t buf[300], out[300];

	guest_new(&g, 4 * PG);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 1);
	/* Map file pages 1..2 at 0x10000. */
	assert_int_equal(map_guest(dma, &g, 0x10000, 2 * PG, RW, PG), 0);
	assert_int_equal(devmig_dma_write(dma, 0x10000 + PG - 100, buf, sizeof(buf)), 0);
	assert_memory_equal(g.view + 2 * PG - 100, buf, sizeof(buf));
	memset(out, 0, sizeof(out));
	assert_int_equal(devmig_dma_read(dma, 0x10000 + PG - 100, out, sizeof(out)), 0);
	assert_memory_equal(out, buf, sizeof(buf));
	/* Memory written by the client is read back. */
	g.view[PG + 5] = 0xab;
	assert_int_equal(devmig_dma_read(dma, 0x10005, out, 1), 0);
	assert_int_equal(out[0], 0xab);
	/* Last byte of the mapping. */
	assert_int_equal(devmig_dma_write(dma, 0x10000 + 2 * PG - 1, buf, 1), 0);
	assert_int_equal(g.view[3 * PG - 1], buf[0]);
	/* len 0 is a no-op success, even unmapped. */
	assert_int_equal(devmig_dma_write(dma, 0x999999, buf, 0), 0);
	assert_int_equal(devmig_dma_read(dma, 0x999999, out, 0), 0);
	devmig_dma_destroy(dma);
	guest_free(&g);
}

static void t_rw_transport(void **s)
{
	(void)s;
	struct fake f;
	struct devmig_dma *dma = fake_dma(&f, 0x40000, false);
	uint8_t buf[5000], out[5000];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i ^ 0x5a);
	assert_int_equal(devmig_dma_map(dma, 0x40000, sizeof(f.mem), RW, -1, 0), 0);
	assert_int_equal(devmig_dma_write(dma, 0x40010, buf, sizeof(buf)), 0);
	assert_memory_equal(f.mem + 0x10, buf, sizeof(buf));
	assert_int_equal(atomic_load(&f.calls), 1);
	memset(out, 0, sizeof(out));
	assert_int_equal(devmig_dma_read(dma, 0x40010, out, sizeof(out)), 0);
	assert_memory_equal(out, buf, sizeof(buf));
	/* A transport error is returned. */
	f.fail = -EPIPE;
	assert_int_equal(devmig_dma_read(dma, 0x40010, out, 8), -EPIPE);
	f.fail = 0;
	devmig_dma_destroy(dma);

	/* No transport: fd-less memory is mapped but unreachable. */
	dma = devmig_dma_create(NULL);
	assert_int_equal(devmig_dma_map(dma, 0x40000, PG, RW, -1, 0), 0);
	assert_int_equal(devmig_dma_read(dma, 0x40000, out, 8), -ENOTSUP);
	devmig_dma_destroy(dma);
}

static void t_permissions(void **s)
{
	(void)s;
	struct fake f;
	struct devmig_dma *dma = fake_dma(&f, 0x80000, false);
	struct guest g;
	uint8_t buf[64], out[64];

	guest_new(&g, 4 * PG);
	memset(buf, 0x11, sizeof(buf));
	memset(g.view, 0xee, 4 * PG);
	assert_int_equal(map_guest(dma, &g, 0x10000, PG, R, 0), 0);
	assert_int_equal(map_guest(dma, &g, 0x20000, PG, W, PG), 0);
	assert_int_equal(map_guest(dma, &g, 0x30000, PG, 0, 2 * PG), 0);
	assert_int_equal(devmig_dma_map(dma, 0x80000, PG, R, -1, 0), 0);

	assert_int_equal(devmig_dma_write(dma, 0x10000, buf, sizeof(buf)), -EACCES);
	assert_int_equal(g.view[0], 0xee);
	assert_int_equal(devmig_dma_read(dma, 0x10000, out, sizeof(out)), 0);
	memset(out, 0x33, sizeof(out));
	assert_int_equal(devmig_dma_read(dma, 0x20000, out, sizeof(out)), -EACCES);
	assert_int_equal(out[0], 0x33);
	assert_int_equal(devmig_dma_write(dma, 0x20000, buf, sizeof(buf)), 0);
	assert_int_equal(g.view[PG], 0x11);
	assert_int_equal(devmig_dma_read(dma, 0x30000, out, 1), -EACCES);
	assert_int_equal(devmig_dma_write(dma, 0x30000, buf, 1), -EACCES);
	assert_int_equal(devmig_dma_write(dma, 0x80000, buf, 1), -EACCES);
	assert_int_equal(atomic_load(&f.calls), 0);
	devmig_dma_destroy(dma);
	guest_free(&g);
}

static void t_outside(void **s)
{
	(void)s;
	struct fake f;
	struct devmig_dma *dma = fake_dma(&f, 0x80000, false);
	struct guest g;
	uint8_t buf[64], out[64];

	guest_new(&g, 4 * PG);
	memset(buf, 0x11, sizeof(buf));
	memset(g.view, 0xee, 4 * PG);
	assert_int_equal(map_guest(dma, &g, 0x10000, PG, RW, 0), 0);
	assert_int_equal(devmig_dma_map(dma, 0x80000, PG, RW, -1, 0), 0);

	/* Straddling the end of a mapping: nothing copied. */
	assert_int_equal(devmig_dma_write(dma, 0x10000 + PG - 8, buf, 16), -EFAULT);
	assert_int_equal(g.view[PG - 8], 0xee);
	memset(out, 0x33, sizeof(out));
	assert_int_equal(devmig_dma_read(dma, 0x10000 + PG - 8, out, 16), -EFAULT);
	assert_int_equal(out[0], 0x33);
	/* Straddling the start. */
	assert_int_equal(devmig_dma_write(dma, 0x10000 - 8, buf, 16), -EFAULT);
	assert_int_equal(g.view[0], 0xee);
	/* fd-less straddle: the transport is never called. */
	assert_int_equal(devmig_dma_write(dma, 0x80000 + PG - 8, buf, 16), -EFAULT);
	assert_int_equal(devmig_dma_read(dma, 0x80000 + PG - 8, out, 16), -EFAULT);
	assert_int_equal(atomic_load(&f.calls), 0);
	/* Wholly outside, and wrapping. */
	assert_int_equal(devmig_dma_read(dma, 0x50000, out, 1), -EFAULT);
	assert_int_equal(devmig_dma_read(dma, 0, out, 1), -EFAULT);
	assert_int_equal(devmig_dma_read(dma, UINT64_MAX - 3, out, 8), -EFAULT);
	assert_int_equal(devmig_dma_read(dma, UINT64_MAX, out, 1), -EFAULT);
	/* After unmap the memory is gone. */
	assert_int_equal(devmig_dma_unmap(dma, 0x10000, PG), 0);
	assert_int_equal(devmig_dma_read(dma, 0x10000, out, 1), -EFAULT);
	devmig_dma_destroy(dma);
	guest_free(&g);
}

static void t_spanning(void **s)
{
	(void)s;
	struct fake f;
	struct devmig_dma *dma = fake_dma(&f, 0x12000, false);
	struct guest g;
	uint8_t buf[3 * 4096], out[3 * 4096];

	guest_new(&g, 32 * PG);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 13);
	/* [0x10000: fd page 5][0x11000: fd page 2][0x12000: fd-less 8 pages] */
	assert_int_equal(map_guest(dma, &g, 0x10000, PG, RW, 5 * PG), 0);
	assert_int_equal(map_guest(dma, &g, 0x11000, PG, RW, 2 * PG), 0);
	assert_int_equal(devmig_dma_map(dma, 0x12000, 8 * PG, RW, -1, 0), 0);

	assert_int_equal(devmig_dma_write(dma, 0x10800, buf, 2 * PG), 0);
	assert_memory_equal(g.view + 5 * PG + 0x800, buf, 0x800);
	assert_memory_equal(g.view + 2 * PG, buf + 0x800, PG);
	assert_memory_equal(f.mem, buf + 0x1800, 0x800);
	memset(out, 0, sizeof(out));
	assert_int_equal(devmig_dma_read(dma, 0x10800, out, 2 * PG), 0);
	assert_memory_equal(out, buf, 2 * PG);

	/* A gap after the span: refused, nothing copied anywhere. */
	memset(g.view, 0, 32 * PG);
	memset(f.mem, 0, sizeof(f.mem));
	assert_int_equal(devmig_dma_write(dma, 0x10000, buf, 10 * PG + 1), -EFAULT);
	assert_int_equal(g.view[5 * PG], 0);
	assert_int_equal(f.mem[0], 0);
	/* A read-only piece in the middle: refused, nothing copied. */
	assert_int_equal(devmig_dma_unmap(dma, 0x11000, PG), 0);
	assert_int_equal(map_guest(dma, &g, 0x11000, PG, R, 2 * PG), 0);
	assert_int_equal(devmig_dma_write(dma, 0x10800, buf, 2 * PG), -EACCES);
	assert_int_equal(g.view[5 * PG + 0x800], 0);
	assert_int_equal(atomic_load(&f.calls), 2);
	devmig_dma_destroy(dma);

	/* Twenty adjacent one-page mappings (more than the inline segment array). */
	dma = devmig_dma_create(NULL);
	for (unsigned i = 0; i < 20; i++)
		assert_int_equal(map_guest(dma, &g, 0x100000 + i * PG, PG, RW, (19 - i) * PG), 0);
	{
		static uint8_t big[20 * 4096], back[20 * 4096];

		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (uint8_t)(i / PG + i);
		assert_int_equal(devmig_dma_write(dma, 0x100000, big, sizeof(big)), 0);
		for (unsigned i = 0; i < 20; i++)
			assert_memory_equal(g.view + (19 - i) * PG, big + i * PG, PG);
		assert_int_equal(devmig_dma_read(dma, 0x100000, back, sizeof(back)), 0);
		assert_memory_equal(back, big, sizeof(big));
	}
	devmig_dma_destroy(dma);
	guest_free(&g);
}

/* ---- logging ---- */

#define LBASE 0x100000ull

static struct devmig_dma *logged_dma(struct guest *g, size_t pages)
{
	struct devmig_dma *dma = devmig_dma_create(NULL);

	guest_new(g, pages * PG);
	assert_int_equal(map_guest(dma, g, LBASE, pages * PG, RW, 0), 0);
	return dma;
}

/* A log over more pages than any memory to migrate is refused, not allocated. */
static void t_log_over_2_32_pages_is_refused(void **s)
{
	(void)s;
	struct guest g;
	struct devmig_dma *dma = logged_dma(&g, 256);
	struct devmig_dma_logging_range r[2] = { { 0, 1ull << 44 }, { 1ull << 50, 4096 } };
	struct devmig_dma_stats st;
	uint64_t ps = 4096;

	/* 2^32 pages in all: the most. One page more (a second range): refused. */
	assert_int_equal(devmig_dma_log_start(dma, &ps, r, 2), -E2BIG);
	stats(dma, &st);
	assert_false(st.logging);
	assert_int_equal(devmig_dma_log_start(dma, &ps, r, 1), 0);
	devmig_dma_log_stop(dma);
	/* Larger pages track more memory in as many bits. */
	ps = 1u << 21;
	r[0].length = 1ull << 53;
	assert_int_equal(devmig_dma_log_start(dma, &ps, r, 1), 0);
	devmig_dma_log_stop(dma);
	r[0].length = 1ull << 54;
	assert_int_equal(devmig_dma_log_start(dma, &ps, r, 1), -E2BIG);
	devmig_dma_destroy(dma);
	guest_free(&g);
}

static void t_log_exact_pages(void **s)
{
	(void)s;
	struct guest g;
	struct devmig_dma *dma = logged_dma(&g, 256);
	struct devmig_dma_logging_range r = { LBASE, 256 * PG };
	struct devmig_dma_stats st;
	uint64_t ps = 4096, bm[4];
	uint8_t buf[2 * 4096] = { 1 };

	/* Writes before start are not logged. */
	assert_int_equal(devmig_dma_write(dma, LBASE, buf, 1), 0);
	assert_int_equal(devmig_dma_log_start(dma, &ps, &r, 1), 0);
	assert_int_equal(ps, 4096);
	assert_int_equal(devmig_dma_write(dma, LBASE + 3 * PG + 10, buf, 1), 0);      /* page 3 */
	assert_int_equal(devmig_dma_write(dma, LBASE + 63 * PG + 4000, buf, 200), 0); /* 63, 64 */
	assert_int_equal(devmig_dma_write(dma, LBASE + 200 * PG, buf, PG), 0);        /* 200 only */
	assert_int_equal(devmig_dma_read(dma, LBASE + 100 * PG, buf, PG), 0);         /* not logged */
	assert_int_equal(devmig_dma_mark_dirty(dma, LBASE + 255 * PG, 1), 0);         /* 255 */
	stats(dma, &st);
	assert_true(st.logging);
	assert_int_equal(st.dirty_pages, 5);
	assert_int_equal(st.log_bytes, 256 * PG);

	assert_int_equal(devmig_log_bitmap_size(256 * PG, PG), sizeof(bm));
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(devmig_dma_log_report(dma, LBASE, 256 * PG, PG, bm), 0);
	assert_int_equal(bm[0], 1ull << 3 | 1ull << 63);
	assert_int_equal(bm[1], 1ull);
	assert_int_equal(bm[2], 0);
	assert_int_equal(bm[3], 1ull << (200 - 192) | 1ull << 63);
	/* Read and clear: the second report is empty. */
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(devmig_dma_log_report(dma, LBASE, 256 * PG, PG, bm), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(bm[i], 0);
	/* Stop: reports refused, writes fine. */
	assert_int_equal(devmig_dma_log_stop(dma), 0);
	assert_int_equal(devmig_dma_log_report(dma, LBASE, 256 * PG, PG, bm), -EINVAL);
	assert_int_equal(devmig_dma_write(dma, LBASE, buf, 1), 0);
	stats(dma, &st);
	assert_false(st.logging);
	devmig_dma_destroy(dma);
	guest_free(&g);
}

static void t_log_subrange(void **s)
{
	(void)s;
	struct guest g;
	struct devmig_dma *dma = logged_dma(&g, 256);
	struct devmig_dma_logging_range r = { LBASE, 200 * PG };
	uint64_t ps = 4096, bm[4];

	assert_int_equal(devmig_dma_log_start(dma, &ps, &r, 1), 0);
	for (uint64_t p = 0; p < 200; p++)
		assert_int_equal(devmig_dma_mark_dirty(dma, LBASE + p * PG, PG), 0);
	/* Report pages 70..129: partial words on both edges. */
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(devmig_dma_log_report(dma, LBASE + 70 * PG, 60 * PG, PG, bm), 0);
	assert_int_equal(bm[0], (1ull << 60) - 1);
	assert_int_equal(devmig_dma_log_report(dma, LBASE + 70 * PG, 60 * PG, PG, bm), 0);
	assert_int_equal(bm[0], 0);
	/* The neighbours are still dirty: whole range shows all but 70..129. */
	assert_int_equal(devmig_dma_log_report(dma, LBASE, 200 * PG, PG, bm), 0);
	for (uint64_t p = 0; p < 256; p++)
		assert_int_equal(bit(bm, p), p < 70 || (p >= 130 && p < 200));
	/* One page in the middle of a word. */
	assert_int_equal(devmig_dma_mark_dirty(dma, LBASE + 65 * PG, 3 * PG), 0); /* 65..67 */
	assert_int_equal(devmig_dma_log_report(dma, LBASE + 66 * PG, PG, PG, bm), 0);
	assert_int_equal(bm[0], 1);
	assert_int_equal(devmig_dma_log_report(dma, LBASE + 64 * PG, 64 * PG, PG, bm), 0);
	assert_int_equal(bm[0], 1ull << 1 | 1ull << 3);
	devmig_dma_destroy(dma);
	guest_free(&g);
}

static void t_log_page_sizes(void **s)
{
	(void)s;
	struct guest g;
	struct devmig_dma *dma = logged_dma(&g, 256);
	struct devmig_dma_logging_range r = { LBASE, 256 * PG };
	uint64_t ps = 8192, bm[8];

	/* Tracking at 8 KiB. */
	assert_int_equal(devmig_dma_log_start(dma, &ps, &r, 1), 0);
	assert_int_equal(ps, 8192);
	/* Finer report (4 KiB): a dirty 8 KiB page shows as two bits. */
	assert_int_equal(devmig_dma_mark_dirty(dma, LBASE + 10 * PG + 1, 1), 0); /* 8K page 5 */
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(devmig_dma_log_report(dma, LBASE, 256 * PG, PG, bm), 0);
	assert_int_equal(bm[0], 3ull << 10);
	for (int i = 1; i < 4; i++)
		assert_int_equal(bm[i], 0);
	/* Coarser report (64 KiB = 8 tracking pages): ORed. */
	assert_int_equal(devmig_dma_mark_dirty(dma, LBASE + 17 * PG, 1), 0);  /* 64K page 1 */
	assert_int_equal(devmig_dma_mark_dirty(dma, LBASE + 30 * PG, 1), 0);  /* 64K page 1 */
	assert_int_equal(devmig_dma_mark_dirty(dma, LBASE + 255 * PG, 1), 0); /* 64K page 15 */
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(devmig_dma_log_report(dma, LBASE, 256 * PG, 16 * PG, bm), 0);
	assert_int_equal(bm[0], 1ull << 1 | 1ull << 15);
	assert_int_equal(devmig_dma_log_report(dma, LBASE, 256 * PG, 16 * PG, bm), 0);
	assert_int_equal(bm[0], 0);
	/* A finer report over half a tracking page: reported, but left set. */
	assert_int_equal(devmig_dma_mark_dirty(dma, LBASE + 40 * PG, 1), 0); /* pages 40,41 */
	assert_int_equal(devmig_dma_log_report(dma, LBASE + 41 * PG, PG, PG, bm), 0);
	assert_int_equal(bm[0], 1);
	assert_int_equal(devmig_dma_log_report(dma, LBASE + 40 * PG, PG, PG, bm), 0);
	assert_int_equal(bm[0], 1);
	assert_int_equal(devmig_dma_log_report(dma, LBASE + 40 * PG, 2 * PG, PG, bm), 0);
	assert_int_equal(bm[0], 3);
	assert_int_equal(devmig_dma_log_report(dma, LBASE + 40 * PG, 2 * PG, PG, bm), 0);
	assert_int_equal(bm[0], 0);
	assert_int_equal(devmig_dma_log_stop(dma), 0);

	/* Page size hints: not a power of two / too small -> 4096; large honoured. */
	ps = 3000;
	assert_int_equal(devmig_dma_log_start(dma, &ps, &r, 1), 0);
	assert_int_equal(ps, 4096);
	assert_int_equal(devmig_dma_log_stop(dma), 0);
	ps = 0;
	assert_int_equal(devmig_dma_log_start(dma, &ps, &r, 1), 0);
	assert_int_equal(ps, 4096);
	assert_int_equal(devmig_dma_log_stop(dma), 0);
	ps = 1 << 20;
	assert_int_equal(devmig_dma_log_start(dma, &ps, &r, 1), 0);
	assert_int_equal(ps, 1 << 20);
	assert_int_equal(devmig_dma_mark_dirty(dma, LBASE + 1, 1), 0);
	assert_int_equal(devmig_dma_log_report(dma, LBASE, 256 * PG, PG, bm), 0);
	assert_int_equal(bm[0], ~0ull); /* tracking page 0 = report pages 0..255 */
	assert_int_equal(bm[3], ~0ull);
	devmig_dma_destroy(dma); /* while logging */
	guest_free(&g);
}

static void t_log_refusals(void **s)
{
	(void)s;
	struct guest g;
	struct devmig_dma *dma = logged_dma(&g, 256);
	struct devmig_dma_logging_range rs[3] = {
		{ LBASE, 16 * PG }, { LBASE + 16 * PG, 16 * PG }, { LBASE + 64 * PG, 16 * PG }
	};
	struct devmig_dma_logging_range bad[][2] = {
		{ { LBASE + 1, PG }, { 0, 0 } },               /* unaligned iova */
		{ { LBASE, PG + 1 }, { 0, 0 } },               /* unaligned length */
		{ { LBASE, 0 }, { 0, 0 } },                    /* empty */
		{ { UINT64_MAX - PG + 1, PG }, { 0, 0 } },     /* ends at 2^64 */
		{ { LBASE, 4 * PG }, { LBASE + 3 * PG, PG } }, /* overlap */
		{ { LBASE + 3 * PG, PG }, { LBASE, 8 * PG } }, /* overlap, out of order */
	};
	struct devmig_dma_stats st;
	uint64_t ps = 4096, bm[2];

	assert_int_equal(devmig_dma_log_report(dma, LBASE, PG, PG, bm), -EINVAL); /* not started */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ps = 4096;
		assert_int_equal(devmig_dma_log_start(dma, &ps, bad[i], bad[i][1].length ? 2 : 1),
				 -EINVAL);
		stats(dma, &st);
		assert_false(st.logging);
	}
	ps = 8192; /* ranges must be aligned to the chosen page size */
	assert_int_equal(devmig_dma_log_start(dma, &ps, &(struct devmig_dma_logging_range){
							   LBASE + PG, 2 * PG }, 1), -EINVAL);

	ps = 4096; /* given out of order on purpose */
	struct devmig_dma_logging_range rev[3] = { rs[2], rs[0], rs[1] };
	assert_int_equal(devmig_dma_log_start(dma, &ps, rev, 3), 0);
	assert_int_equal(devmig_dma_log_start(dma, &ps, rs, 3), -EBUSY);
	assert_int_equal(devmig_dma_mark_dirty(dma, LBASE + 15 * PG, 2 * PG), 0); /* 15, 16 */
	assert_int_equal(devmig_dma_mark_dirty(dma, LBASE + 40 * PG, PG), 0);   /* not logged */
	assert_int_equal(devmig_dma_mark_dirty(dma, UINT64_MAX, 2), -EINVAL);

	const struct { uint64_t iova, len, ps; } rep[] = {
		{ LBASE, 33 * PG, PG },            /* past the end of the second range */
		{ LBASE + 30 * PG, 40 * PG, PG },  /* spans the hole */
		{ LBASE + 40 * PG, PG, PG },       /* in the hole */
		{ LBASE - PG, 2 * PG, PG },        /* before the first */
		{ LBASE + 100 * PG, PG, PG },      /* after the last */
		{ LBASE + 1, PG, PG },             /* unaligned */
		{ LBASE, PG + 1, PG },
		{ LBASE + PG, 2 * PG, 2 * PG },    /* unaligned to the report page size */
		{ LBASE, PG, 3 * PG },             /* page size not a power of two */
		{ LBASE, PG, 2048 },               /* too small */
		{ LBASE, 0, PG },                  /* empty */
		{ UINT64_MAX - PG + 1, PG, PG },   /* ends at 2^64 */
	};
	for (size_t i = 0; i < sizeof(rep) / sizeof(rep[0]); i++)
		assert_int_equal(devmig_dma_log_report(dma, rep[i].iova, rep[i].len, rep[i].ps, bm),
				 -EINVAL);
	assert_int_equal(devmig_dma_log_report(dma, LBASE, PG, PG, NULL), -EINVAL);
	/* Nothing was cleared by the refusals; a report may span adjacent ranges. */
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(devmig_dma_log_report(dma, LBASE + 8 * PG, 16 * PG, PG, bm), 0);
	assert_int_equal(bm[0], 3ull << 7);
	assert_int_equal(devmig_dma_log_report(dma, LBASE, 32 * PG, PG, bm), 0);
	assert_int_equal(bm[0], 0);
	stats(dma, &st);
	assert_int_equal(st.log_ranges, 3);
	assert_int_equal(st.dirty_pages, 2);
	devmig_dma_destroy(dma);
	guest_free(&g);
}

static void t_log_all_mapped(void **s)
{
	(void)s;
	struct devmig_dma *dma = devmig_dma_create(NULL);
	struct devmig_dma_stats st;
	uint64_t ps = 8192, bm[1];

	/* Two adjacent mappings, one apart, one not 8K-aligned. */
	assert_int_equal(devmig_dma_map(dma, 0x10000, 4 * PG, RW, -1, 0), 0);
	assert_int_equal(devmig_dma_map(dma, 0x14000, 4 * PG, RW, -1, 0), 0);
	assert_int_equal(devmig_dma_map(dma, 0x31000, PG, RW, -1, 0), 0);
	assert_int_equal(devmig_dma_log_start(dma, &ps, NULL, 0), 0);
	stats(dma, &st);
	assert_int_equal(st.log_page_size, 8192);
	assert_int_equal(st.log_bytes, 8 * PG + 2 * PG);
	assert_int_equal(devmig_dma_mark_dirty(dma, 0x31000, PG), 0);
	assert_int_equal(devmig_dma_mark_dirty(dma, 0x17000, 1), 0);
	assert_int_equal(devmig_dma_log_report(dma, 0x30000, 2 * PG, 2 * PG, bm), 0);
	assert_int_equal(bm[0], 1);
	assert_int_equal(devmig_dma_log_report(dma, 0x10000, 8 * PG, 2 * PG, bm), 0);
	assert_int_equal(bm[0], 1ull << 3);
	/* Memory mapped after start is not logged. */
	assert_int_equal(devmig_dma_map(dma, 0x50000, PG, RW, -1, 0), 0);
	assert_int_equal(devmig_dma_log_report(dma, 0x50000, 2 * PG, 2 * PG, bm), -EINVAL);
	devmig_dma_destroy(dma);

	/* Nothing mapped: logging starts with no ranges. */
	dma = devmig_dma_create(NULL);
	ps = 4096;
	assert_int_equal(devmig_dma_log_start(dma, &ps, NULL, 0), 0);
	assert_int_equal(devmig_dma_log_report(dma, 0, PG, PG, bm), -EINVAL);
	devmig_dma_destroy(dma);
}

/* ---- pins ---- */

static void t_pin(void **s)
{
	(void)s;
	struct guest g;
	struct devmig_dma *dma = logged_dma(&g, 16);
	struct devmig_dma_logging_range r = { LBASE, 16 * PG };
	struct devmig_dma_pin pin, pin2;
	uint64_t ps = 4096, bm[1];
	uint8_t *p;

	assert_int_equal(devmig_dma_map(dma, LBASE + 16 * PG, PG, RW, -1, 0), 0);
	assert_int_equal(devmig_dma_log_start(dma, &ps, &r, 1), 0);
	p = devmig_dma_pin(dma, LBASE + 2 * PG + 5, PG, RW, &pin);
	assert_non_null(p);
	p[0] = 0x42;
	assert_int_equal(g.view[2 * PG + 5], 0x42);
	assert_int_equal(devmig_dma_log_report(dma, LBASE, 16 * PG, PG, bm), 0);
	assert_int_equal(bm[0], 0); /* dirtied at unpin */
	devmig_dma_unpin(&pin);
	assert_int_equal(devmig_dma_log_report(dma, LBASE, 16 * PG, PG, bm), 0);
	assert_int_equal(bm[0], 3ull << 2);
	/* A read pin does not dirty. */
	assert_non_null(devmig_dma_pin(dma, LBASE, PG, R, &pin));
	devmig_dma_unpin(&pin);
	assert_int_equal(devmig_dma_log_report(dma, LBASE, 16 * PG, PG, bm), 0);
	assert_int_equal(bm[0], 0);
	/* Refusals. */
	errno = 0;
	assert_null(devmig_dma_pin(dma, LBASE + 15 * PG, 2 * PG, R, &pin2)); /* spans */
	assert_int_equal(errno, EFAULT);
	assert_null(devmig_dma_pin(dma, LBASE + 16 * PG, PG, R, &pin2)); /* fd-less */
	assert_int_equal(errno, ENOTSUP);
	assert_null(devmig_dma_pin(dma, LBASE + 32 * PG, PG, R, &pin2));
	assert_int_equal(errno, EFAULT);
	assert_null(devmig_dma_pin(dma, LBASE, 0, R, &pin2));
	assert_int_equal(errno, EINVAL);
	assert_null(devmig_dma_pin(dma, LBASE, PG, 0, &pin2));
	assert_int_equal(errno, EINVAL);
	devmig_dma_destroy(dma);

	dma = devmig_dma_create(NULL);
	assert_int_equal(map_guest(dma, &g, LBASE, PG, R, 0), 0);
	assert_null(devmig_dma_pin(dma, LBASE, PG, RW, &pin2));
	assert_int_equal(errno, EACCES);
	devmig_dma_destroy(dma);
	guest_free(&g);
}

/* ---- unmap vs accessors in flight ---- */

struct unmapper {
	struct devmig_dma *dma;
	uint64_t iova, size;
	int rc;
	atomic_bool done;
	atomic_bool *released; /* must already be true when unmap returns */
	bool released_at_return;
};

static void *unmap_thread(void *arg)
{
	struct unmapper *u = arg;

	u->rc = devmig_dma_unmap(u->dma, u->iova, u->size);
	u->released_at_return = u->released ? atomic_load(u->released) : true;
	atomic_store(&u->done, true);
	return NULL;
}

static void t_unmap_waits_for_pin(void **s)
{
	(void)s;
	struct guest g;
	struct devmig_dma *dma = logged_dma(&g, 4);
	struct devmig_dma_pin pin;
	atomic_bool released = false;
	struct unmapper u = { .dma = dma, .iova = LBASE, .size = 4 * PG, .released = &released };
	pthread_t th;
	uint8_t *p, buf[8];

	p = devmig_dma_pin(dma, LBASE, PG, RW, &pin);
	assert_non_null(p);
	assert_int_equal(pthread_create(&th, NULL, unmap_thread, &u), 0);
	sleep_ms(100);
	assert_false(atomic_load(&u.done));
	/* The mapping is already gone for new accessors, but the pin still works. */
	for (int i = 0; i < 1000 && devmig_dma_read(dma, LBASE, buf, 1) == 0; i++)
		sleep_ms(1);
	assert_int_equal(devmig_dma_read(dma, LBASE, buf, 1), -EFAULT);
	p[PG - 1] = 7;
	assert_int_equal(g.view[PG - 1], 7);
	atomic_store(&released, true);
	devmig_dma_unpin(&pin);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(u.rc, 0);
	assert_true(u.released_at_return);
	devmig_dma_destroy(dma);
	guest_free(&g);
}

struct reader {
	struct devmig_dma *dma;
	uint64_t iova;
	uint8_t buf[64];
	int rc;
};

static void *read_thread(void *arg)
{
	struct reader *r = arg;

	r->rc = devmig_dma_read(r->dma, r->iova, r->buf, sizeof(r->buf));
	return NULL;
}

static void t_unmap_transport(void **s)
{
	(void)s;
	struct fake f;
	struct devmig_dma *dma = fake_dma(&f, 0x40000, true);
	atomic_bool released = false;
	struct unmapper u = { .dma = dma, .iova = 0x40000, .size = PG, .released = &released };
	struct reader rd = { .dma = dma, .iova = 0x40000 };
	pthread_t rt, ut;

	/* unmap_waits: the unmap returns only after the slow transport read. */
	f.block = true;
	memset(f.mem, 0x5c, sizeof(f.mem));
	assert_int_equal(devmig_dma_map(dma, 0x40000, PG, RW, -1, 0), 0);
	assert_int_equal(pthread_create(&rt, NULL, read_thread, &rd), 0);
	while (atomic_load(&f.started) == 0)
		sleep_ms(1);
	assert_int_equal(pthread_create(&ut, NULL, unmap_thread, &u), 0);
	sleep_ms(100);
	assert_false(atomic_load(&u.done));
	atomic_store(&released, true);
	atomic_store(&f.release, true);
	assert_int_equal(pthread_join(rt, NULL), 0);
	assert_int_equal(pthread_join(ut, NULL), 0);
	assert_int_equal(rd.rc, 0);
	assert_int_equal(rd.buf[0], 0x5c);
	assert_int_equal(u.rc, 0);
	assert_true(u.released_at_return);
	devmig_dma_destroy(dma);

	/* Default: the unmap does not wait for the transport (it would deadlock a
	 * server whose own thread reads the reply), and the late read is safe. */
	dma = fake_dma(&f, 0x40000, false);
	f.block = true;
	u = (struct unmapper){ .dma = dma, .iova = 0x40000, .size = PG };
	rd = (struct reader){ .dma = dma, .iova = 0x40000 };
	assert_int_equal(devmig_dma_map(dma, 0x40000, PG, RW, -1, 0), 0);
	assert_int_equal(pthread_create(&rt, NULL, read_thread, &rd), 0);
	while (atomic_load(&f.started) == 0)
		sleep_ms(1);
	assert_int_equal(devmig_dma_unmap(dma, 0x40000, PG), 0); /* returns while blocked */
	assert_int_equal(atomic_load(&f.finished), 0);
	atomic_store(&f.release, true);
	assert_int_equal(pthread_join(rt, NULL), 0);
	assert_int_equal(rd.rc, 0);
	devmig_dma_destroy(dma);
}

/* ---- concurrency ---- */

#define CPAGES 8192
#define CPASSES 32

/*
 * Each page is written exactly once per pass, so a single lost dirty bit is
 * a page written but never reported. Pages go in order, so the writer keeps
 * hitting the word the reporter is reading and clearing.
 */
struct writer {
	struct devmig_dma *dma;
	uint8_t written[CPAGES];
	unsigned seed;
	atomic_bool stop;
	atomic_int errors; /* cmocka asserts only work on the main thread */
	uint64_t reported[CPAGES / 64]; /* union of one pass's reports */
};

static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[16] = { 0 };

	for (uint64_t page = 0; page < CPAGES; page++) {
		uint64_t off = (uint64_t)rand_r(&w->seed) % (PG - sizeof(buf));

		buf[0] = (uint8_t)page;
		if (devmig_dma_write(w->dma, LBASE + page * PG + off, buf, sizeof(buf)) != 0)
			atomic_fetch_add(&w->errors, 1);
		else
			w->written[page] = 1;
	}
	atomic_store(&w->stop, true);
	return NULL;
}

static void *churn_thread(void *arg)
{
	struct writer *w = arg;

	/* Map/unmap churn elsewhere, to exercise the table lock. */
	while (!atomic_load(&w->stop)) {
		if (devmig_dma_map(w->dma, 0x10000000, PG, RW, -1, 0) != 0 ||
		    devmig_dma_unmap(w->dma, 0x10000000, PG) != 0)
			atomic_fetch_add(&w->errors, 1);
	}
	return NULL;
}

static void report_into(struct devmig_dma *dma, uint64_t first, uint64_t n, uint64_t *uni)
{
	static uint64_t bm[CPAGES / 64];

	assert_int_equal(devmig_dma_log_report(dma, LBASE + first * PG, n * PG, PG, bm), 0);
	for (uint64_t p = 0; p < n; p++)
		if (bit(bm, p))
			uni[(first + p) / 64] |= 1ull << ((first + p) % 64);
	for (uint64_t p = n; p < (n + 63) / 64 * 64; p++)
		assert_false(bit(bm, p)); /* bits beyond the range are zero */
}

static void t_concurrent_no_lost_page(void **s)
{
	(void)s;
	struct guest g;
	struct devmig_dma *dma = logged_dma(&g, CPAGES);
	struct devmig_dma_logging_range r = { LBASE, CPAGES * PG };
	static struct writer w;
	uint64_t ps = 4096;
	unsigned long reports = 0;

	assert_int_equal(devmig_dma_log_start(dma, &ps, &r, 1), 0);
	for (int pass = 0; pass < CPASSES; pass++) {
		pthread_t wt, ct;

		memset(&w, 0, sizeof(w));
		w.dma = dma;
		w.seed = 12345u + (unsigned)pass;
		assert_int_equal(pthread_create(&wt, NULL, writer_thread, &w), 0);
		assert_int_equal(pthread_create(&ct, NULL, churn_thread, &w), 0);
		while (!atomic_load(&w.stop)) {
			/* Alternate whole-range and odd sub-range reports (partial words). */
			if (reports % 2 == 0) {
				report_into(dma, 0, CPAGES, w.reported);
			} else {
				uint64_t a = (reports * 37) % (CPAGES / 2);

				report_into(dma, a, 1 + (reports * 101) % (CPAGES / 2), w.reported);
			}
			reports++;
		}
		assert_int_equal(pthread_join(wt, NULL), 0);
		assert_int_equal(pthread_join(ct, NULL), 0);
		assert_int_equal(atomic_load(&w.errors), 0);
		report_into(dma, 0, CPAGES, w.reported);
		for (unsigned p = 0; p < CPAGES; p++) {
			if (w.written[p] && !bit(w.reported, p))
				fail_msg("pass %d: page %u written but never reported", pass, p);
			if (!w.written[p] && bit(w.reported, p))
				fail_msg("pass %d: page %u reported but never written", pass, p);
		}
	}
	assert_true(reports > 10);
	devmig_dma_destroy(dma);
	guest_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_map_unmap),
		cmocka_unit_test(t_map_refusals),
		cmocka_unit_test(t_unmap_refusals),
		cmocka_unit_test(t_rw_fd),
		cmocka_unit_test(t_rw_transport),
		cmocka_unit_test(t_permissions),
		cmocka_unit_test(t_outside),
		cmocka_unit_test(t_spanning),
		cmocka_unit_test(t_log_exact_pages),
		cmocka_unit_test(t_log_subrange),
		cmocka_unit_test(t_log_page_sizes),
		cmocka_unit_test(t_log_refusals),
		cmocka_unit_test(t_log_all_mapped),
		cmocka_unit_test(t_pin),
		cmocka_unit_test(t_unmap_waits_for_pin),
		cmocka_unit_test(t_unmap_transport),
		cmocka_unit_test(t_concurrent_no_lost_page),
		cmocka_unit_test(t_log_over_2_32_pages_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
