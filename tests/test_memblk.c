/* SPDX-License-Identifier: MIT */
/*
 * memblk end to end: source and destination devices in-process behind
 * devmig servers on temporary sockets, driven by devmig clients (the VMM)
 * and the memblk guest library (the guest driver). Guest memory is one
 * memfd mapped by both devices, standing for guest RAM that the VMM
 * migrates on its own; MSI-X vector 0 is an eventfd.
 *
 * No sleeps: every wait is on a condition or a device register, with a
 * timeout. Randomised parts use fixed seeds.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core.h" /* devmig_core_last_error: the reason behind a refused arc */
#include "devices.h"
#include "devmig/client.h"
#include "devmig/server.h"
#include "fixture.h"
#include "memblk/memblk_guest.h"
#include "memblk/memblk_stream.h"
#include "stream.h"

#define TMO 20000 /* ms, for anything that should take far less */
#define GIOVA 0x100000000ull
#define MEM_SIZE (24u << 20)
#define SQ_OFF 0x0u
#define CQ_OFF 0x10000u
#define SQ2_OFF 0x20000u /* a second driver's rings */
#define CQ2_OFF 0x30000u
#define BUF_OFF (1u << 20)   /* data buffers: 1 MiB .. 8 MiB */
#define BUF2_OFF (8u << 20)  /* a second region: 8 MiB .. 16 MiB */
#define BUF3_OFF (16u << 20) /* a third: 16 MiB .. 24 MiB */
#define CHUNK (1u << 20)

/* ---------------------------------------------------------------- helpers */

/* Block contents: version 0 is all zeros. */
static void fill_block(uint8_t *p, uint64_t block, uint32_t ver)
{
	if (!ver) {
		memset(p, 0, MB_BLOCK_SIZE);
		return;
	}
	uint64_t s = block * 0x100000001b3ull ^ (uint64_t)ver << 40;
	for (size_t i = 0; i < MB_BLOCK_SIZE; i += 8) {
		uint64_t v = fx_rnd(&s);
		memcpy(p + i, &v, 8);
	}
}

static bool block_is(const uint8_t *p, uint64_t block, uint32_t ver)
{
	uint8_t want[MB_BLOCK_SIZE];
	fill_block(want, block, ver);
	return !memcmp(p, want, MB_BLOCK_SIZE);
}

/* ---------------------------------------------------------------- the rig */

struct side {
	struct fx_server fx;
	struct devmig_device *dev;
	struct devmig_client *cl;
	int efd;
};

struct rig {
	char dir[FX_PATH_MAX];
	struct fx_guest guest;
	uint8_t *mem;
	struct side src, dst;
};

static void side_open(struct rig *r, struct side *s, const char *name, const char *args)
{
	memset(s, 0, sizeof(*s));
	fx_serve_variant(&s->fx, r->dir, name, &devmig_variant_memblk, args);
	s->dev = s->fx.dev;
	s->cl = fx_connect(&s->fx, NULL);
	fx_guest_map(&r->guest, s->cl, GIOVA);
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(s->efd >= 0);
	assert_int_equal(mbg_client_enable_msix(s->cl, s->efd), 0);
}

static void side_close(struct side *s)
{
	if (!s->dev)
		return;
	devmig_client_close(s->cl);
	fx_unserve(&s->fx);
	close(s->efd);
	memset(s, 0, sizeof(*s));
}

static void rig_open(struct rig *r, const char *src_args, const char *dst_args)
{
	memset(r, 0, sizeof(*r));
	fx_tmpdir(r->dir, "memblk");
	fx_guest_new(&r->guest, MEM_SIZE);
	r->mem = r->guest.mem;
	side_open(r, &r->src, "src", src_args);
	if (dst_args)
		side_open(r, &r->dst, "dst", dst_args);
}

static void rig_close(struct rig *r)
{
	side_close(&r->src);
	side_close(&r->dst);
	fx_guest_free(&r->guest);
	fx_rmdir(r->dir);
}

static void *gmem(struct rig *r, uint64_t off)
{
	return r->mem + off;
}

static void guest_open(struct rig *r, struct side *s, struct mbg *g, uint32_t sq_off,
		       uint32_t cq_off, uint32_t qsize)
{
	struct mbg_mmio io = mbg_mmio_client(s->cl);
	assert_int_equal(mbg_init(g, &io, r->mem, GIOVA, MEM_SIZE, s->efd), 0);
	uint32_t err = 0;
	int rc = mbg_setup_queues(g, GIOVA + sq_off, qsize, GIOVA + cq_off, qsize, &err);
	if (rc)
		fail_msg("setup queues: %d, ERR_CODE %u", rc, err);
}

static void guest_route(struct mbg *g, struct side *s)
{
	struct mbg_mmio io = mbg_mmio_client(s->cl);
	mbg_set_route(g, &io, s->efd);
}

/* WRITE blocks [lba, lba+n) with versions ver (one per block) via buf_off. */
static void write_blocks(struct rig *r, struct mbg *g, uint64_t lba, uint32_t n,
			 const uint32_t *ver, uint32_t buf_off)
{
	while (n) {
		uint32_t k = n < MB_MAX_BLOCKS ? n : MB_MAX_BLOCKS;
		for (uint32_t i = 0; i < k; i++)
			fill_block(gmem(r, buf_off + i * MB_BLOCK_SIZE), lba + i, ver[i]);
		assert_int_equal(mbg_write(g, lba, k, GIOVA + buf_off, TMO), MB_SC_OK);
		lba += k;
		ver += k;
		n -= k;
	}
}

/* READ all blocks of the device into out (capacity blocks). */
static void read_all(struct rig *r, struct mbg *g, uint8_t *out, uint32_t buf_off)
{
	for (uint64_t lba = 0; lba < g->capacity;) {
		uint32_t k = g->capacity - lba < MB_MAX_BLOCKS ? (uint32_t)(g->capacity - lba)
							       : MB_MAX_BLOCKS;
		assert_int_equal(mbg_read(g, lba, k, GIOVA + buf_off, TMO), MB_SC_OK);
		memcpy(out + lba * MB_BLOCK_SIZE, gmem(r, buf_off), (size_t)k * MB_BLOCK_SIZE);
		lba += k;
	}
}

static void check_blocks(const uint8_t *data, uint64_t nblocks, const uint32_t *ver)
{
	for (uint64_t b = 0; b < nblocks; b++)
		if (!block_is(data + b * MB_BLOCK_SIZE, b, ver[b]))
			fail_msg("block %llu differs from version %u", (unsigned long long)b, ver[b]);
}

#define NREGS (MB_REG_COMPLETED / 4 + 1)

static void read_regs(struct side *s, uint32_t *regs)
{
	for (unsigned i = 0; i < NREGS; i++)
		assert_int_equal(devmig_client_region_read(s->cl, 0, i * 4, &regs[i], 4), 0);
}

static uint32_t reg(struct side *s, uint32_t off)
{
	uint32_t v = 0;
	assert_int_equal(devmig_client_region_read(s->cl, 0, off, &v, 4), 0);
	return v;
}

static void set_state(struct side *s, enum devmig_state st)
{
	int rc = devmig_client_set_state(s->cl, st);
	if (rc) {
		char why[256];
		devmig_core_last_error(s->dev, why, sizeof(why));
		fail_msg("-> %s: %d (%s)", devmig_state_name(st), rc, why);
	}
}

/* Write bytes to the destination in random pieces of 1 B .. max_piece. */
static void write_pieces(struct side *dst, const uint8_t *p, size_t n, uint64_t *seed,
			 size_t max_piece)
{
	while (n) {
		size_t k = fx_rnd_size(seed, max_piece);
		if (k > n)
			k = n;
		assert_int_equal(devmig_client_mig_write(dst->cl, p, k), 0);
		p += k;
		n -= k;
	}
}

/* One MIG_DATA_READ of up to 1 MiB, forwarded to dst (if any) and kept (if out). */
static ssize_t pump(struct side *src, struct side *dst, uint8_t *buf, uint64_t *seed,
		    struct fx_buf *out)
{
	ssize_t n = devmig_client_mig_read(src->cl, buf, CHUNK);
	assert_true(n >= 0);
	if (dst)
		write_pieces(dst, buf, (size_t)n, seed, CHUNK);
	if (out)
		fx_buf_add(out, buf, (size_t)n);
	return n;
}

/* src (RUNNING or PRE_COPY) -> STOP_COPY, everything to dst (RESUMING), commit. */
static void finish_migration(struct side *src, struct side *dst, uint64_t seed, struct fx_buf *out)
{
	uint8_t *buf = malloc(CHUNK);
	assert_non_null(buf);
	set_state(src, DEVMIG_STATE_STOP_COPY);
	while (pump(src, dst, buf, &seed, out) > 0)
		;
	free(buf);
	if (dst)
		set_state(dst, DEVMIG_STATE_STOP);
	set_state(src, DEVMIG_STATE_STOP);
}

static void migrate(struct side *src, struct side *dst, uint64_t seed, struct fx_buf *out)
{
	if (dst)
		set_state(dst, DEVMIG_STATE_RESUMING);
	finish_migration(src, dst, seed, out);
}

/* ---- the core's framing, parsed and rebuilt (its format: lib/core/stream.h) ---- */

#define MAX_RECS 4096

struct core_stream {
	struct fx_buf header;  /* magic + HEADER record, raw */
	struct fx_buf body;    /* the body records, raw, concatenated */
	struct fx_buf config;  /* the CONFIG record, raw */
	size_t n;           /* body records: */
	uint32_t type[MAX_RECS];
	struct fx_buf payload[MAX_RECS];
};

static struct core_stream *core_parse(const struct fx_buf *s)
{
	struct core_stream *cs = calloc(1, sizeof(*cs));
	size_t off = DEVMIG_STREAM_MAGIC_LEN;
	assert_true(s->len > off && !memcmp(s->p, DEVMIG_STREAM_MAGIC, off));
	fx_buf_add(&cs->header, s->p, off);
	while (off < s->len) {
		uint32_t type = mb_get32(s->p + off), len = mb_get32(s->p + off + 4);
		size_t rl = DEVMIG_STREAM_REC_OVERHEAD + len;
		assert_true(off + rl <= s->len);
		if (type == DEVMIG_REC_HEADER) {
			fx_buf_add(&cs->header, s->p + off, rl);
		} else if (devmig_stream_body_type(type)) {
			assert_true(cs->n < MAX_RECS);
			fx_buf_add(&cs->body, s->p + off, rl);
			cs->type[cs->n] = type;
			fx_buf_add(&cs->payload[cs->n++], s->p + off + 8, len);
		} else if (type == DEVMIG_REC_CONFIG) {
			fx_buf_add(&cs->config, s->p + off, rl);
		}
		off += rl;
	}
	return cs;
}

/* The index of the first body record of type (a variant's: DEVMIG_REC_VARIANT + t). */
static size_t core_find(const struct core_stream *cs, uint32_t type)
{
	for (size_t i = 0; i < cs->n; i++)
		if (cs->type[i] == type)
			return i;
	fail_msg("no record of type %#x", type);
	return 0;
}

static void core_rec(struct fx_buf *v, uint32_t type, const uint8_t *p, size_t len)
{
	uint8_t h[8], c[4];
	mb_put32(h, type);
	mb_put32(h + 4, (uint32_t)len);
	mb_put32(c, devmig_crc32c(devmig_crc32c(0, h, 8), p, len));
	fx_buf_add(v, h, 8);
	fx_buf_add(v, p, len);
	fx_buf_add(v, c, 4);
}

/* A valid core stream around body records [0, n) except skip (SIZE_MAX: none). */
static void core_build(const struct core_stream *cs, size_t n, size_t skip, struct fx_buf *out)
{
	uint64_t bytes = 0;
	uint32_t count = 0;
	memset(out, 0, sizeof(*out));
	fx_buf_add(out, cs->header.p, cs->header.len);
	for (size_t i = 0; i < n; i++) {
		if (i == skip)
			continue;
		core_rec(out, cs->type[i], cs->payload[i].p, cs->payload[i].len);
		bytes += cs->payload[i].len;
		count++;
	}
	fx_buf_add(out, cs->config.p, cs->config.len);
	uint8_t end[16];
	mb_put64(end, bytes);
	mb_put32(end + 8, count);
	mb_put32(end + 12, 0);
	core_rec(out, DEVMIG_REC_END, end, 16);
}

static void core_free(struct core_stream *cs)
{
	free(cs->header.p);
	free(cs->body.p);
	free(cs->config.p);
	for (size_t i = 0; i < cs->n; i++)
		free(cs->payload[i].p);
	free(cs);
}

/* ================================================================ tests */

/* 64 MiB of random contents written by the guest, saved and restored with
 * the destination written in random pieces of 1 B .. 1 MiB. */
static void roundtrip_64m(void **state)
{
	(void)state;
	struct rig r;
	struct mbg g;
	const uint32_t nblocks = (64u << 20) / MB_BLOCK_SIZE;

	rig_open(&r, "size=64M", "size=64M");
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 64);
	uint32_t *ver = calloc(nblocks, sizeof(uint32_t));
	uint64_t seed = 11;
	for (uint32_t b = 0; b < nblocks; b++)
		ver[b] = 1 + (uint32_t)(fx_rnd(&seed) % 1000);
	write_blocks(&r, &g, 0, nblocks, ver, BUF_OFF);
	/* leave the rings somewhere in the middle, with the CQ wrapped */
	struct mb_identify id;
	for (int i = 0; i < 90; i++)
		assert_int_equal(mbg_identify(&g, GIOVA + BUF_OFF, &id, TMO), MB_SC_OK);
	assert_int_equal(id.capacity_blocks, nblocks);
	assert_int_equal(id.chunk_size, 64u << 10);

	uint32_t src_regs[NREGS], dst_regs[NREGS];
	migrate(&r.src, &r.dst, 12, NULL);
	read_regs(&r.src, src_regs);
	read_regs(&r.dst, dst_regs);
	assert_memory_equal(src_regs, dst_regs, sizeof(src_regs));
	assert_int_equal(src_regs[MB_REG_COMPLETED / 4], nblocks / MB_MAX_BLOCKS + 90);

	set_state(&r.dst, DEVMIG_STATE_RUNNING);
	guest_route(&g, &r.dst);
	uint8_t *back = malloc((size_t)nblocks * MB_BLOCK_SIZE);
	assert_non_null(back);
	read_all(&r, &g, back, BUF_OFF);
	check_blocks(back, nblocks, ver);
	free(back);
	free(ver);
	mbg_destroy(&g);
	rig_close(&r);
}

/* zerocopy=0 (the core copies every chunk) and zerocopy=1 (chunks sent from
 * where they lie in STOP_COPY) produce the same records from the same device
 * state, and the copying one round-trips. */
static void save_and_save_ref_agree(void **state)
{
	(void)state;
	struct rig a, b;
	struct mbg ga, gb;
	const uint32_t nblocks = (4u << 20) / MB_BLOCK_SIZE;
	uint32_t *ver = calloc(nblocks, sizeof(uint32_t));

	for (uint32_t i = 0; i < nblocks; i++)
		ver[i] = i % 7 == 3 ? 0 : 5 + i % 3; /* some chunks stay zero */
	for (uint32_t i = 16; i < 32; i++)
		ver[i] = 0;
	rig_open(&a, "size=4M,chunk=16K", "size=4M,chunk=16K,zerocopy=0");
	rig_open(&b, "size=4M,chunk=16K,zerocopy=0", NULL);
	guest_open(&a, &a.src, &ga, SQ_OFF, CQ_OFF, 16);
	guest_open(&b, &b.src, &gb, SQ_OFF, CQ_OFF, 16);
	/* blocks 16..31 (chunks 4..7) are never written: they travel as ZERO */
	write_blocks(&a, &ga, 0, 16, ver, BUF_OFF);
	write_blocks(&a, &ga, 32, nblocks - 32, ver + 32, BUF_OFF);
	write_blocks(&b, &gb, 0, 16, ver, BUF_OFF);
	write_blocks(&b, &gb, 32, nblocks - 32, ver + 32, BUF_OFF);

	struct fx_buf sa = { 0 }, sb = { 0 };
	migrate(&a.src, NULL, 1, &sa);
	migrate(&b.src, NULL, 2, &sb);
	struct core_stream *ca = core_parse(&sa), *cb = core_parse(&sb);
	assert_int_equal(ca->body.len, cb->body.len);
	assert_memory_equal(ca->body.p, cb->body.p, ca->body.len);
	/* chunks never written travel as ZERO records: less than the storage */
	assert_int_equal(ca->type[core_find(ca, DEVMIG_REC_MEM_ZERO)], DEVMIG_REC_MEM_ZERO);
	assert_true(ca->body.len < (4u << 20));

	/* the copying device as a destination, fed the zero-copy stream */
	set_state(&a.dst, DEVMIG_STATE_RESUMING);
	uint64_t seed = 3;
	write_pieces(&a.dst, sa.p, sa.len, &seed, 4096);
	set_state(&a.dst, DEVMIG_STATE_STOP);
	set_state(&a.dst, DEVMIG_STATE_RUNNING);
	guest_route(&ga, &a.dst);
	uint8_t *back = malloc(4u << 20);
	read_all(&a, &ga, back, BUF_OFF);
	check_blocks(back, nblocks, ver);

	free(back);
	core_free(ca);
	core_free(cb);
	free(sa.p);
	free(sb.p);
	free(ver);
	mbg_destroy(&ga);
	mbg_destroy(&gb);
	rig_close(&a);
	rig_close(&b);
}

/* ---- PRE_COPY under a concurrent guest workload ---- */

struct workload {
	struct rig *r;
	struct mbg *g;
	uint32_t nblocks;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool stop;
	uint64_t writes;
	uint32_t *ver; /* block -> version of its last acknowledged write */
	uint32_t next_ver;
	int error;
};

static void *workload_main(void *arg)
{
	struct workload *w = arg;
	uint64_t seed = 77;

	for (;;) {
		pthread_mutex_lock(&w->lock);
		bool stop = w->stop;
		uint32_t v = ++w->next_ver;
		pthread_mutex_unlock(&w->lock);
		if (stop)
			break;
		uint32_t n = 1 + (uint32_t)(fx_rnd(&seed) % 8);
		uint64_t lba = fx_rnd(&seed) % (w->nblocks - n + 1);
		for (uint32_t i = 0; i < n; i++)
			fill_block(gmem(w->r, BUF2_OFF + i * MB_BLOCK_SIZE), lba + i, v);
		int rc = mbg_write(w->g, lba, n, GIOVA + BUF2_OFF, TMO);
		pthread_mutex_lock(&w->lock);
		if (rc != MB_SC_OK)
			w->error = rc ? rc : -1;
		for (uint32_t i = 0; i < n; i++)
			w->ver[lba + i] = v;
		w->writes++;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->lock);
		if (rc != MB_SC_OK)
			break;
	}
	return NULL;
}

static void wait_writes(struct workload *w, uint64_t target)
{
	struct timespec ts;
	fx_deadline(&ts, TMO);
	pthread_mutex_lock(&w->lock);
	while (w->writes < target && !w->error)
		if (pthread_cond_timedwait(&w->cv, &w->lock, &ts) == ETIMEDOUT)
			break;
	bool ok = w->writes >= target;
	pthread_mutex_unlock(&w->lock);
	assert_true(ok);
}

static void precopy_with_workload(void **state)
{
	(void)state;
	struct rig r;
	struct mbg g;
	const uint64_t size = 16u << 20;
	const uint32_t nblocks = size / MB_BLOCK_SIZE;
	uint64_t initial, dirty, prev, seed = 5;
	uint8_t *buf = malloc(CHUNK);

	rig_open(&r, "size=16M", "size=16M");
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 32);
	struct workload w = { .r = &r, .g = &g, .nblocks = nblocks };
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cv, NULL);
	w.ver = calloc(nblocks, sizeof(uint32_t));
	for (uint32_t b = 0; b < nblocks / 2; b++) /* the second half stays zero */
		w.ver[b] = 1;
	write_blocks(&r, &g, 0, nblocks / 2, w.ver, BUF_OFF);
	w.next_ver = 1;

	set_state(&r.dst, DEVMIG_STATE_RESUMING);
	set_state(&r.src, DEVMIG_STATE_PRE_COPY);
	assert_int_equal(devmig_client_precopy_info(r.src.cl, &initial, &dirty), 0);
	assert_true(initial >= size && initial < size + 4096); /* + the core's queued header */

	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, workload_main, &w), 0);

	/* the first pass, while the guest writes */
	prev = initial;
	uint64_t end = fx_now_ms() + TMO;
	while (initial) {
		assert_true(fx_now_ms() < end);
		pump(&r.src, &r.dst, buf, &seed, NULL);
		assert_int_equal(devmig_client_precopy_info(r.src.cl, &initial, &dirty), 0);
		assert_true(initial <= prev);
		prev = initial;
	}
	/* with no read in between, rewrites after the first pass are dirty */
	pthread_mutex_lock(&w.lock);
	uint64_t w0 = w.writes;
	pthread_mutex_unlock(&w.lock);
	wait_writes(&w, w0 + 16);
	assert_int_equal(devmig_client_precopy_info(r.src.cl, &initial, &dirty), 0);
	assert_int_equal(initial, 0);
	assert_true(dirty >= (64u << 10));
	/* keep streaming while the guest writes */
	for (int i = 0; i < 8; i++)
		pump(&r.src, &r.dst, buf, &seed, NULL);

	pthread_mutex_lock(&w.lock);
	w.stop = true;
	pthread_mutex_unlock(&w.lock);
	pthread_join(t, NULL);
	assert_int_equal(w.error, 0);
	print_message("# workload: %llu writes during PRE_COPY\n", (unsigned long long)w.writes);

	/* the workload stopped: dirty data only falls, to zero */
	assert_int_equal(devmig_client_precopy_info(r.src.cl, &initial, &dirty), 0);
	prev = dirty;
	end = fx_now_ms() + TMO;
	while (initial || dirty) {
		assert_true(fx_now_ms() < end);
		pump(&r.src, &r.dst, buf, &seed, NULL);
		assert_int_equal(devmig_client_precopy_info(r.src.cl, &initial, &dirty), 0);
		assert_int_equal(initial, 0);
		assert_true(dirty <= prev);
		prev = dirty;
	}
	uint64_t sc = 0;
	assert_int_equal(devmig_client_stop_copy_size(r.src.cl, &sc), 0);
	assert_true(sc < (1u << 20)); /* only registers and framing are left */

	finish_migration(&r.src, &r.dst, seed, NULL);
	set_state(&r.dst, DEVMIG_STATE_RUNNING);
	guest_route(&g, &r.dst);
	uint8_t *d = malloc(size), *s = malloc(size);
	read_all(&r, &g, d, BUF_OFF);
	check_blocks(d, nblocks, w.ver);

	/* and byte for byte equal to the source, read by a second driver */
	set_state(&r.src, DEVMIG_STATE_RUNNING);
	struct mbg g2;
	guest_open(&r, &r.src, &g2, SQ2_OFF, CQ2_OFF, 16);
	read_all(&r, &g2, s, BUF3_OFF);
	assert_memory_equal(s, d, size);

	free(d);
	free(s);
	free(buf);
	free(w.ver);
	mbg_destroy(&g);
	mbg_destroy(&g2);
	rig_close(&r);
}

/* initial/dirty are exact: a pass leaves both 0, then rewriting K distinct
 * chunks makes dirty exactly K chunks. */
static void precopy_counts_exact(void **state)
{
	(void)state;
	struct rig r;
	struct mbg g;
	uint64_t initial, dirty, seed = 1;
	uint8_t *buf = malloc(CHUNK);
	const uint32_t chunk = 64u << 10, bpc = chunk / MB_BLOCK_SIZE;

	rig_open(&r, "size=4M", NULL);
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 16);
	uint32_t one = 1;
	write_blocks(&r, &g, 3, 1, &one, BUF_OFF);
	set_state(&r.src, DEVMIG_STATE_PRE_COPY);
	uint64_t end = fx_now_ms() + TMO;
	do {
		assert_true(fx_now_ms() < end);
		pump(&r.src, NULL, buf, &seed, NULL);
		assert_int_equal(devmig_client_precopy_info(r.src.cl, &initial, &dirty), 0);
	} while (initial || dirty);
	/* blocks in chunks 0, 5, 5, 17, 63: four distinct chunks */
	static const uint32_t blocks[] = { 0, 5 * 16 + 1, 5 * 16 + 9, 17 * 16, 63 * 16 + 15 };
	static const uint32_t chunks[] = { 0, 5, 5, 17, 63 };
	for (size_t i = 0; i < 5; i++) {
		uint32_t v = 2 + (uint32_t)i;
		write_blocks(&r, &g, blocks[i], 1, &v, BUF_OFF);
		assert_int_equal(blocks[i] / bpc, chunks[i]);
	}
	assert_int_equal(devmig_client_precopy_info(r.src.cl, &initial, &dirty), 0);
	assert_int_equal(initial, 0);
	/* Four chunks. Over the data fd a pump still awake from the last query
	 * may have put some of their records in the pipe already: those count
	 * as stream bytes still to come, their framing included. */
	if (dirty < 4ull * chunk || dirty > 4ull * chunk + 4 * 64)
		fail_msg("dirty_bytes %llu after 4 chunks of %u were rewritten",
			 (unsigned long long)dirty, chunk);
	ssize_t n = pump(&r.src, NULL, buf, &seed, NULL);
	assert_true(n > (ssize_t)(4 * chunk));
	assert_int_equal(devmig_client_precopy_info(r.src.cl, &initial, &dirty), 0);
	assert_int_equal(initial, 0);
	assert_int_equal(dirty, 0);
	set_state(&r.src, DEVMIG_STATE_RUNNING); /* ends the session */
	assert_int_equal(devmig_client_precopy_info(r.src.cl, &initial, &dirty), -EINVAL);
	free(buf);
	mbg_destroy(&g);
	rig_close(&r);
}

/*
 * MIG_DATA_SIZE in STOP bounds the STOP_COPY stream that follows and is
 * close to it: a never-written chunk counts as its ZERO record, a written
 * one with its bytes.
 */
static void stop_copy_size_follows_what_was_written(void **state)
{
	(void)state;
	struct rig r;
	struct mbg g;
	const uint32_t chunk = 64u << 10;

	rig_open(&r, "size=4M", NULL);
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 16);
	for (unsigned round = 0; round < 3; round++) {
		if (round) {
			/* round 1: one chunk written; round 2: four more */
			static const uint32_t blocks[] = { 7, 5 * 16, 17 * 16 + 3, 40 * 16, 63 * 16 };
			for (unsigned i = round == 1 ? 0 : 1; i < (round == 1 ? 1u : 5u); i++) {
				uint32_t v = round;
				write_blocks(&r, &g, blocks[i], 1, &v, BUF_OFF);
			}
		}
		uint64_t sc = 0;
		struct fx_buf out = { 0 };
		set_state(&r.src, DEVMIG_STATE_STOP);
		assert_int_equal(devmig_client_stop_copy_size(r.src.cl, &sc), 0);
		finish_migration(&r.src, NULL, 1, &out);
		set_state(&r.src, DEVMIG_STATE_RUNNING);
		print_message("# %u chunks written: stream %zu B, MIG_DATA_SIZE %llu B\n",
			      round ? (round == 1 ? 1u : 5u) : 0u, out.len, (unsigned long long)sc);
		assert_true(sc >= out.len);
		assert_true(sc - out.len <= 4096 + out.len / 64);
		assert_true(out.len >= (round ? (round == 1 ? 1u : 5u) : 0u) * chunk);
		free(out.p);
	}
	mbg_destroy(&g);
	rig_close(&r);
}

/* ---- corruption, through the server ---- */

static void expect_refused(struct side *dst, const uint8_t *p, size_t len, const char *want,
			   const char *what, size_t at)
{
	char why[256];
	int wrc = len ? devmig_client_mig_write(dst->cl, p, len) : 0;
	int rc = devmig_client_set_state(dst->cl, DEVMIG_STATE_STOP);
	devmig_core_last_error(dst->dev, why, sizeof(why));
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(dst->cl, &st), 0);
	if (!rc || st != DEVMIG_STATE_RESUMING || !why[0] || (want && !strstr(why, want)))
		fail_msg("%s at %zu: write %d, commit %d, state %s, reason '%s' (wanted '%s')",
			 what, at, wrc, rc, devmig_state_name(st), why, want ? want : "any");
}

static void corruption_refused_destination_unchanged(void **state)
{
	(void)state;
	struct rig r;
	struct mbg gs, gd;
	uint32_t vs[2] = { 3, 0 }, vd[2] = { 9, 8 };

	rig_open(&r, "size=8K,chunk=4K", "size=8K,chunk=4K");
	guest_open(&r, &r.src, &gs, SQ_OFF, CQ_OFF, 8);
	guest_open(&r, &r.dst, &gd, SQ2_OFF, CQ2_OFF, 4);
	write_blocks(&r, &gs, 0, 2, vs, BUF_OFF);
	write_blocks(&r, &gd, 0, 2, vd, BUF2_OFF);
	uint32_t dst_before[NREGS], dst_after[NREGS], src_regs[NREGS];
	read_regs(&r.dst, dst_before);

	struct fx_buf s = { 0 };
	migrate(&r.src, NULL, 1, &s);
	read_regs(&r.src, src_regs);
	print_message("# stream: %zu bytes\n", s.len);
	set_state(&r.dst, DEVMIG_STATE_STOP);
	set_state(&r.dst, DEVMIG_STATE_RESUMING);

	/* every truncation point */
	for (size_t cut = 0; cut < s.len; cut++)
		expect_refused(&r.dst, s.p, cut, cut ? "truncated" : "empty", "cut", cut);
	/* single-byte flips across header, records and trailer */
	uint64_t seed = 9;
	for (size_t off = 0; off < s.len; off += off < 300 || off + 300 > s.len ? 1 : 37) {
		uint8_t mask = (uint8_t)(1u << (fx_rnd(&seed) % 8));
		s.p[off] ^= mask;
		expect_refused(&r.dst, s.p, s.len, NULL, "flip", off);
		s.p[off] ^= mask;
	}

	/* records resealed so the core's framing passes them on: the loaders
	 * behind it (the tracker's and memblk's) must refuse them */
	struct core_stream *cs = core_parse(&s);
	struct fx_buf v;
	for (size_t k = 0; k < cs->n; k++) {
		core_build(cs, k, SIZE_MAX, &v); /* the first k records only */
		expect_refused(&r.dst, v.p, v.len, "incomplete:", "records cut", k);
		free(v.p);
		core_build(cs, cs->n, k, &v); /* record k left out */
		expect_refused(&r.dst, v.p, v.len, NULL, "record dropped", k);
		free(v.p);
	}
	static const struct {
		uint32_t type;
		size_t off;
		uint32_t value;
		const char *want;
	} bad[] = {
		{ DEVMIG_REC_MEM_INFO, 0, 1, "range: device memory 1" },
		{ DEVMIG_REC_MEM_INFO, 4, 8192, "geometry:" },
		{ DEVMIG_REC_MEM_INFO, 16, 4, "format:" },
		{ DEVMIG_REC_MEM_DATA, 4, 2, "range: memory 0 chunk 2" },
		{ DEVMIG_REC_VARIANT + MB_REC_REGS, 0, 0x80, "memblk: registers:" },
		{ DEVMIG_REC_VARIANT + MB_REC_REGS, 60, 1, "memblk: registers:" },
		{ DEVMIG_REC_VARIANT + MB_REC_INFLIGHT, 0, 33, "memblk: format:" },
		{ DEVMIG_REC_VARIANT + MB_REC_INFLIGHT, 4, 1, "memblk: format:" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t k = core_find(cs, bad[i].type);
		uint8_t *p = cs->payload[k].p + bad[i].off, keep[4];
		memcpy(keep, p, 4);
		mb_put32(p, bad[i].value);
		core_build(cs, cs->n, SIZE_MAX, &v);
		expect_refused(&r.dst, v.p, v.len, bad[i].want, "semantic", i);
		free(v.p);
		memcpy(p, keep, 4);
	}
	/* a record of a type memblk does not have, and REGS twice */
	cs->type[cs->n] = DEVMIG_REC_VARIANT + 9;
	fx_buf_add(&cs->payload[cs->n], "x", 1);
	core_build(cs, cs->n + 1, SIZE_MAX, &v);
	expect_refused(&r.dst, v.p, v.len, "memblk: format: unknown record type 9", "type", 9);
	free(v.p);
	size_t regs = core_find(cs, DEVMIG_REC_VARIANT + MB_REC_REGS);
	free(cs->payload[cs->n].p);
	cs->type[cs->n] = cs->type[regs];
	cs->payload[cs->n] = (struct fx_buf){ 0 };
	fx_buf_add(&cs->payload[cs->n], cs->payload[regs].p, cs->payload[regs].len);
	core_build(cs, cs->n + 1, SIZE_MAX, &v);
	expect_refused(&r.dst, v.p, v.len, "memblk: order: a second REGS", "twice", 0);
	free(v.p);
	free(cs->payload[cs->n].p);
	cs->payload[cs->n] = (struct fx_buf){ 0 };

	/* nothing was applied: registers (readable in RESUMING) ... */
	read_regs(&r.dst, dst_after);
	assert_memory_equal(dst_before, dst_after, sizeof(dst_before));
	/* ... and storage (survives a reset, which is the way out of RESUMING) */
	assert_int_equal(devmig_client_reset(r.dst.cl), 0);
	assert_int_equal(mbg_client_enable_msix(r.dst.cl, r.dst.efd), 0);
	mbg_destroy(&gd);
	guest_open(&r, &r.dst, &gd, SQ2_OFF, CQ2_OFF, 4);
	uint8_t back[2 * MB_BLOCK_SIZE];
	read_all(&r, &gd, back, BUF2_OFF);
	check_blocks(back, 2, vd);

	/* and the intact stream, resealed or as saved, still loads */
	set_state(&r.dst, DEVMIG_STATE_STOP);
	set_state(&r.dst, DEVMIG_STATE_RESUMING);
	core_build(cs, cs->n, SIZE_MAX, &v);
	assert_int_equal(devmig_client_mig_write(r.dst.cl, v.p, v.len), 0);
	set_state(&r.dst, DEVMIG_STATE_STOP);
	free(v.p);
	set_state(&r.dst, DEVMIG_STATE_RESUMING);
	assert_int_equal(devmig_client_mig_write(r.dst.cl, s.p, s.len), 0);
	set_state(&r.dst, DEVMIG_STATE_STOP);
	read_regs(&r.dst, dst_after);
	assert_memory_equal(src_regs, dst_after, sizeof(src_regs));
	set_state(&r.dst, DEVMIG_STATE_RUNNING);
	guest_route(&gs, &r.dst);
	read_all(&r, &gs, back, BUF_OFF);
	check_blocks(back, 2, vs);

	core_free(cs);
	free(s.p);
	mbg_destroy(&gs);
	mbg_destroy(&gd);
	rig_close(&r);
}

/* Geometry differences are refused (by the core's tracker) with a reason. */
static void geometry_mismatch_refused(void **state)
{
	(void)state;
	static const char *const dsts[] = { "size=16K,chunk=4K", "size=8K,chunk=8K" };
	for (size_t i = 0; i < 2; i++) {
		struct rig r;
		struct fx_buf s = { 0 };
		rig_open(&r, "size=8K,chunk=4K", dsts[i]);
		migrate(&r.src, NULL, 1, &s);
		uint32_t before[NREGS], after[NREGS];
		read_regs(&r.dst, before);
		set_state(&r.dst, DEVMIG_STATE_RESUMING);
		expect_refused(&r.dst, s.p, s.len, "geometry:", "geometry", i);
		read_regs(&r.dst, after);
		assert_memory_equal(before, after, sizeof(before));
		free(s.p);
		rig_close(&r);
	}
}

/* The process's mapped bytes (VmSize), from /proc. */
static uint64_t vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kib = 0;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %" SCNu64 " kB", &kib) == 1)
			break;
	fclose(f);
	assert_true(kib > 0);
	return kib << 10;
}

/*
 * A destination that cannot map its staging area refuses STOP -> RESUMING
 * with the reason, stays in STOP with its state, and enters RESUMING once
 * the memory is there: the source is never stopped for a load that cannot
 * fit. The address-space limit stands in for a host short of memory.
 */
static void resuming_refused_without_room_for_staging(void **state)
{
	(void)state;
	struct rig r;
	struct mbg g;
	rig_open(&r, "size=1G", NULL);
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 16);
	uint32_t ver[4] = { 7, 7, 7, 7 };
	write_blocks(&r, &g, 0, 4, ver, BUF_OFF);
	uint32_t before[NREGS], after[NREGS];
	set_state(&r.src, DEVMIG_STATE_STOP);
	read_regs(&r.src, before);

	struct rlimit old;
	assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
	/* Room for the server's own needs, not for a second 1 GiB. */
	struct rlimit tight = { vm_size() + (256u << 20), old.rlim_max };
	assert_int_equal(setrlimit(RLIMIT_AS, &tight), 0);
	int rc = devmig_client_set_state(r.src.cl, DEVMIG_STATE_RESUMING);
	char why[256];
	devmig_core_last_error(r.src.dev, why, sizeof(why));
	assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);

	print_message("# refused: %s\n", why);
	assert_true(rc < 0);
	if (!strstr(why, "staging area"))
		fail_msg("the refusal does not say why: '%s'", why);
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(r.src.cl, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_STOP);
	read_regs(&r.src, after);
	assert_memory_equal(before, after, sizeof(before));
	/* With the memory back, the same request succeeds. */
	set_state(&r.src, DEVMIG_STATE_RESUMING);
	assert_int_equal(devmig_client_reset(r.src.cl), 0); /* no stream: only reset leaves */
	mbg_destroy(&g);
	rig_close(&r);
}

/* ---- in-flight requests across RUNNING_P2P and STOP ---- */

#define IF_TOTAL 3000u
#define IF_BLOCKS 64u
#define IF_SLOTS 256u

struct inflight {
	struct rig *r;
	struct mbg *g;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool pause_req, paused, finished;
	uint64_t attempts;
	uint32_t next_tag, reaped;
	uint8_t done[IF_TOTAL];
	uint32_t blk[IF_TOTAL];
	uint32_t expect[IF_TOTAL]; /* READ: the version it must see */
	bool is_read[IF_TOTAL];
	uint32_t wver[IF_BLOCKS];  /* last submitted write per block */
	char err[256];
};

static void if_fail(struct inflight *f, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&f->lock);
	if (!f->err[0]) {
		va_start(ap, fmt);
		vsnprintf(f->err, sizeof(f->err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&f->lock);
}

static void *inflight_main(void *arg)
{
	struct inflight *f = arg;
	uint64_t seed = 1234;
	uint64_t deadline = fx_now_ms() + 4 * TMO;

	while (f->reaped < IF_TOTAL && !f->err[0] && fx_now_ms() < deadline) {
		pthread_mutex_lock(&f->lock);
		if (f->pause_req) {
			f->paused = true;
			pthread_cond_broadcast(&f->cv);
			while (f->pause_req)
				pthread_cond_wait(&f->cv, &f->lock);
			f->paused = false;
		}
		pthread_mutex_unlock(&f->lock);

		/* submit a burst of up to 24 (one doorbell), so the device fetches
		 * ahead and requests wait in its queue */
		struct mb_sqe e[24];
		unsigned n = 0;
		while (n < 24 && f->next_tag + n < IF_TOTAL) {
			uint32_t t = f->next_tag + n;
			uint32_t b = (uint32_t)(fx_rnd(&seed) % IF_BLOCKS);
			uint64_t buf = BUF_OFF + (uint64_t)(t % IF_SLOTS) * MB_BLOCK_SIZE;
			f->blk[t] = b;
			f->is_read[t] = t % 3 == 2;
			e[n] = (struct mb_sqe){ .opcode = f->is_read[t] ? MB_OP_READ : MB_OP_WRITE,
						.tag = t, .lba = b, .nblocks = 1,
						.buf_len = MB_BLOCK_SIZE, .buf = GIOVA + buf };
			if (!f->is_read[t])
				fill_block(gmem(f->r, buf), b, t + 1);
			n++;
		}
		int k = n ? mbg_submit_many(f->g, e, n) : 0;
		if (k < 0) {
			if_fail(f, "submit: %d", k);
			break;
		}
		for (int i = 0; i < k; i++) {
			uint32_t t = f->next_tag + (uint32_t)i;
			if (f->is_read[t])
				f->expect[t] = f->wver[f->blk[t]];
			else
				f->wver[f->blk[t]] = t + 1;
		}
		f->next_tag += (uint32_t)k;
		pthread_mutex_lock(&f->lock);
		f->attempts++;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->lock);

		struct mb_cqe c[64];
		int got = mbg_reap(f->g, c, 64);
		if (got < 0) {
			if_fail(f, "reap: %d", got);
			break;
		}
		for (int i = 0; i < got; i++) {
			uint32_t t = c[i].tag;
			if (t >= IF_TOTAL || t >= f->next_tag) {
				if_fail(f, "completion with unknown tag %u", t);
				break;
			}
			if (++f->done[t] != 1)
				if_fail(f, "tag %u completed %u times", t, f->done[t]);
			if (c[i].status != MB_SC_OK)
				if_fail(f, "tag %u status %u", t, c[i].status);
			if (f->is_read[t]) {
				const uint8_t *p =
					gmem(f->r, BUF_OFF + (uint64_t)(t % IF_SLOTS) * MB_BLOCK_SIZE);
				if (!block_is(p, f->blk[t], f->expect[t]))
					if_fail(f, "READ tag %u of block %u: not version %u", t,
						f->blk[t], f->expect[t]);
			}
		}
		pthread_mutex_lock(&f->lock);
		f->reaped += (uint32_t)got;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->lock);
		if (!got && (k == 0 || f->next_tag == IF_TOTAL)) {
			int rc = mbg_wait(f->g, 20); /* the SQ is full or all is submitted */
			if (rc && rc != -ETIMEDOUT) {
				if_fail(f, "wait: %d", rc);
				break;
			}
		}
	}
	pthread_mutex_lock(&f->lock);
	if (f->reaped < IF_TOTAL && !f->err[0])
		snprintf(f->err, sizeof(f->err), "only %u of %u requests completed", f->reaped,
			 IF_TOTAL);
	f->finished = true;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

/* Wait until pred(f) or the timeout; lock held inside pred. */
static bool if_wait(struct inflight *f, bool (*pred)(struct inflight *, uint64_t), uint64_t arg)
{
	struct timespec ts;
	fx_deadline(&ts, TMO);
	pthread_mutex_lock(&f->lock);
	while (!pred(f, arg) && !f->finished)
		if (pthread_cond_timedwait(&f->cv, &f->lock, &ts) == ETIMEDOUT)
			break;
	bool ok = pred(f, arg);
	pthread_mutex_unlock(&f->lock);
	return ok;
}

static bool p_reaped(struct inflight *f, uint64_t n)
{
	return f->reaped >= n;
}

static bool p_attempts(struct inflight *f, uint64_t n)
{
	return f->attempts >= n;
}

static bool p_paused(struct inflight *f, uint64_t n)
{
	(void)n;
	return f->paused || f->finished;
}

static bool p_finished(struct inflight *f, uint64_t n)
{
	(void)n;
	return f->finished;
}

/* While quiesced: the guest keeps ringing doorbells, the device completes nothing. */
static void check_quiet(struct inflight *f, struct side *s)
{
	uint32_t c0 = reg(s, MB_REG_COMPLETED), t0 = reg(s, MB_REG_CQ_TAIL);
	uint64_t ev0 = 0, ev1 = 0;
	if (read(s->efd, &ev0, 8) < 0)
		ev0 = 0; /* drained: interrupts raised before the arc returned */
	pthread_mutex_lock(&f->lock);
	uint64_t a0 = f->attempts;
	pthread_mutex_unlock(&f->lock);
	assert_true(if_wait(f, p_attempts, a0 + 12));
	assert_int_equal(reg(s, MB_REG_COMPLETED), c0);
	assert_int_equal(reg(s, MB_REG_CQ_TAIL), t0);
	assert_true(read(s->efd, &ev1, 8) < 0 && errno == EAGAIN); /* no interrupt */
}

static void inflight_run(bool migrate_it)
{
	struct rig r;
	struct mbg g;
	struct inflight *f = calloc(1, sizeof(*f));

	rig_open(&r, "size=1M", migrate_it ? "size=1M" : NULL);
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 128);
	f->r = &r;
	f->g = &g;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cv, NULL);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, inflight_main, f), 0);

	assert_true(if_wait(f, p_reaped, 300));
	set_state(&r.src, DEVMIG_STATE_RUNNING_P2P);
	check_quiet(f, &r.src);
	set_state(&r.src, DEVMIG_STATE_STOP);
	check_quiet(f, &r.src);
	if (!migrate_it) {
		set_state(&r.src, DEVMIG_STATE_RUNNING);
	} else {
		/* the VMM stops the vCPUs, then migrates the device */
		pthread_mutex_lock(&f->lock);
		f->pause_req = true;
		pthread_mutex_unlock(&f->lock);
		assert_true(if_wait(f, p_paused, 0));
		struct fx_buf s = { 0 };
		migrate(&r.src, &r.dst, 7, &s);
		/* how many requests travelled as INFLIGHT */
		struct core_stream *cs = core_parse(&s);
		size_t k = core_find(cs, DEVMIG_REC_VARIANT + MB_REC_INFLIGHT);
		print_message("# %u requests in flight in the stream, %u reaped before\n",
			      mb_get32(cs->payload[k].p), f->reaped);
		core_free(cs);
		free(s.p);
		set_state(&r.dst, DEVMIG_STATE_RUNNING);
		guest_route(&g, &r.dst);
		pthread_mutex_lock(&f->lock);
		f->pause_req = false;
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->lock);
	}
	assert_true(if_wait(f, p_finished, 0));
	pthread_join(t, NULL);
	if (f->err[0])
		fail_msg("%s", f->err);
	for (uint32_t i = 0; i < IF_TOTAL; i++)
		assert_int_equal(f->done[i], 1);
	/* every acknowledged write is there: the last one of each block */
	uint8_t *back = malloc(1u << 20);
	read_all(&r, &g, back, BUF2_OFF);
	check_blocks(back, IF_BLOCKS, f->wver);
	free(back);
	mbg_destroy(&g);
	rig_close(&r);
	free(f);
}

static void inflight_across_quiesce(void **state)
{
	(void)state;
	inflight_run(false);
}

static void inflight_across_migration(void **state)
{
	(void)state;
	inflight_run(true);
}

/* A burst of large WRITEs rung with one doorbell, then RUNNING_P2P at once:
 * the device finishes the request it is executing and keeps the fetched
 * rest in its queue, which travels in the stream (INFLIGHT) and runs on the
 * destination. How many were in flight depends on timing; correctness
 * (each exactly once, all data there) does not. */
static void inflight_burst_migration(void **state)
{
	(void)state;
	struct rig r;
	struct mbg g;
	enum { N = 16 };
	struct mb_sqe e[N];
	uint32_t ver[N * MB_MAX_BLOCKS];

	rig_open(&r, "size=16M", "size=16M");
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 64);
	for (uint32_t i = 0; i < N; i++) {
		for (uint32_t b = 0; b < MB_MAX_BLOCKS; b++) {
			ver[i * MB_MAX_BLOCKS + b] = 50 + i;
			fill_block(gmem(&r, BUF_OFF + (i * MB_MAX_BLOCKS + b) * MB_BLOCK_SIZE),
				   i * MB_MAX_BLOCKS + b, 50 + i);
		}
		e[i] = (struct mb_sqe){ .opcode = MB_OP_WRITE, .tag = 900 + i,
					.lba = i * MB_MAX_BLOCKS, .nblocks = MB_MAX_BLOCKS,
					.buf_len = MB_MAX_BLOCKS * MB_BLOCK_SIZE,
					.buf = GIOVA + BUF_OFF + (uint64_t)i * (1u << 20) };
	}
	assert_int_equal(mbg_submit_many(&g, e, N), N);
	/* once the first completes, the worker is (most likely) inside the
	 * second: the arc must wait for it to complete */
	uint64_t end = fx_now_ms() + TMO;
	while (reg(&r.src, MB_REG_COMPLETED) < 1 && fx_now_ms() < end)
		sched_yield();
	set_state(&r.src, DEVMIG_STATE_RUNNING_P2P);
	uint32_t done_src = reg(&r.src, MB_REG_COMPLETED);
	struct fx_buf s = { 0 };
	migrate(&r.src, &r.dst, 3, &s);
	struct core_stream *cs = core_parse(&s);
	size_t infl = mb_get32(cs->payload[core_find(cs, DEVMIG_REC_VARIANT + MB_REC_INFLIGHT)].p);
	print_message("# %u of %u completed on the source, %zu in flight, %u in the SQ\n",
		      done_src, N, infl, (reg(&r.src, MB_REG_SQ_TAIL) - reg(&r.src, MB_REG_SQ_HEAD)) & 63);
	set_state(&r.dst, DEVMIG_STATE_RUNNING);
	guest_route(&g, &r.dst);
	unsigned seen[N] = { 0 }, got = 0;
	end = fx_now_ms() + TMO;
	while (got < N && fx_now_ms() < end) {
		struct mb_cqe c[N];
		int n = mbg_reap(&g, c, N);
		assert_true(n >= 0);
		for (int i = 0; i < n; i++) {
			assert_true(c[i].tag >= 900 && c[i].tag < 900 + N);
			assert_int_equal(c[i].status, MB_SC_OK);
			seen[c[i].tag - 900]++;
		}
		got += (unsigned)n;
		if (!n)
			mbg_wait(&g, 20);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(seen[i], 1);
	uint8_t *back = malloc(16u << 20);
	read_all(&r, &g, back, BUF2_OFF);
	check_blocks(back, N * MB_MAX_BLOCKS, ver);
	free(back);
	core_free(cs);
	free(s.p);
	mbg_destroy(&g);
	rig_close(&r);
}

/* Requests in the INFLIGHT record are executed by the destination once it
 * runs, in order, before anything in the SQ: a stream is edited to carry
 * five of them (memblk's and the core's crcs resealed). */
static void inflight_restored_from_stream(void **state)
{
	(void)state;
	struct rig r;
	struct mbg g;
	struct mb_identify id;

	rig_open(&r, "size=1M", "size=1M");
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 16);
	for (int i = 0; i < 11; i++)
		assert_int_equal(mbg_identify(&g, GIOVA + BUF_OFF, &id, TMO), MB_SC_OK);
	struct fx_buf s = { 0 };
	migrate(&r.src, NULL, 1, &s);
	/* the INFLIGHT record replaced by one with five WRITEs queued */
	struct core_stream *cs = core_parse(&s);
	struct fx_buf *infl = &cs->payload[core_find(cs, DEVMIG_REC_VARIANT + MB_REC_INFLIGHT)];
	struct mb_sqe q[5];
	uint32_t ver[5];
	for (uint32_t i = 0; i < 5; i++) {
		ver[i] = 77 + i;
		fill_block(gmem(&r, BUF3_OFF + i * MB_BLOCK_SIZE), 10 + i, ver[i]);
		q[i] = (struct mb_sqe){ .opcode = MB_OP_WRITE, .tag = 500 + i, .lba = 10 + i,
					.nblocks = 1, .buf_len = MB_BLOCK_SIZE,
					.buf = GIOVA + BUF3_OFF + i * MB_BLOCK_SIZE };
	}
	infl->len = 0;
	uint8_t rec[MB_INFLIGHT_MAX_LEN];
	fx_buf_add(infl, rec, mb_inflight_encode(q, 5, rec));
	struct fx_buf v;
	core_build(cs, cs->n, SIZE_MAX, &v);
	set_state(&r.dst, DEVMIG_STATE_RESUMING);
	assert_int_equal(devmig_client_mig_write(r.dst.cl, v.p, v.len), 0);
	set_state(&r.dst, DEVMIG_STATE_STOP);
	set_state(&r.dst, DEVMIG_STATE_RUNNING);
	guest_route(&g, &r.dst);
	g.submitted += 5; /* the guest's view: it had submitted them */
	struct mb_cqe c[5];
	unsigned got = 0;
	uint64_t end = fx_now_ms() + TMO;
	while (got < 5 && fx_now_ms() < end) {
		int n = mbg_reap(&g, c + got, 5 - got);
		assert_true(n >= 0);
		got += (unsigned)n;
		if (!n)
			mbg_wait(&g, 20);
	}
	assert_int_equal(got, 5);
	for (uint32_t i = 0; i < 5; i++) {
		assert_int_equal(c[i].tag, 500 + i);
		assert_int_equal(c[i].status, MB_SC_OK);
	}
	assert_int_equal(reg(&r.dst, MB_REG_COMPLETED), 11 + 5);
	uint8_t back[5 * MB_BLOCK_SIZE];
	assert_int_equal(mbg_read(&g, 10, 5, GIOVA + BUF_OFF, TMO), MB_SC_OK);
	memcpy(back, gmem(&r, BUF_OFF), sizeof(back));
	for (uint32_t i = 0; i < 5; i++)
		assert_true(block_is(back + i * MB_BLOCK_SIZE, 10 + i, ver[i]));
	free(v.p);
	core_free(cs);
	free(s.p);
	mbg_destroy(&g);
	rig_close(&r);
}

/* ---- guest errors ---- */

static uint16_t submit_status(struct mbg *g, struct mb_sqe e)
{
	struct mb_cqe c;
	static uint32_t tag = 1;
	e.tag = tag++;
	assert_int_equal(mbg_sync(g, &e, &c, TMO), 0);
	assert_int_equal(c.tag, e.tag);
	return c.status;
}

static void guest_errors(void **state)
{
	(void)state;
	struct rig r;
	struct mbg g;
	uint64_t buf = GIOVA + BUF_OFF;

	rig_open(&r, "size=1M", NULL);
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 8);
	const uint64_t cap = 256;
	struct {
		struct mb_sqe e;
		uint16_t want;
	} cases[] = {
		{ { MB_OP_READ, 0, 0, 0, cap, 1, 4096, buf }, MB_SC_LBA_RANGE },
		{ { MB_OP_WRITE, 0, 0, 0, cap - 1, 2, 8192, buf }, MB_SC_LBA_RANGE },
		{ { MB_OP_READ, 0, 0, 0, UINT64_MAX, 1, 4096, buf }, MB_SC_LBA_RANGE },
		{ { MB_OP_READ, 0, 0, 0, 1ull << 62, 1, 4096, buf }, MB_SC_LBA_RANGE },
		{ { MB_OP_READ, 0, 0, 0, 0, 0, 4096, buf }, MB_SC_BAD_LENGTH },
		{ { MB_OP_WRITE, 0, 0, 0, 0, MB_MAX_BLOCKS + 1, UINT32_MAX, buf }, MB_SC_BAD_LENGTH },
		{ { MB_OP_READ, 0, 0, 0, 0, 1, 4095, buf }, MB_SC_BAD_LENGTH },
		{ { 0, 0, 0, 0, 0, 1, 4096, buf }, MB_SC_BAD_OPCODE },
		{ { 99, 0, 0, 0, 0, 1, 4096, buf }, MB_SC_BAD_OPCODE },
		{ { MB_OP_READ, 1, 0, 0, 0, 1, 4096, buf }, MB_SC_BAD_FIELD },
		{ { MB_OP_READ, 0, 7, 0, 0, 1, 4096, buf }, MB_SC_BAD_FIELD },
		{ { MB_OP_READ, 0, 0, 0, 0, 1, 4096, 0x1000 }, MB_SC_DMA_ERROR },
		{ { MB_OP_WRITE, 0, 0, 0, 0, 2, 8192, GIOVA + MEM_SIZE - 4096 }, MB_SC_DMA_ERROR },
		{ { MB_OP_IDENTIFY, 0, 0, 0, 0, 0, 63, buf }, MB_SC_BAD_LENGTH },
		{ { MB_OP_IDENTIFY, 0, 0, 0, 0, 0, 64, 0x40 }, MB_SC_DMA_ERROR },
		{ { MB_OP_FLUSH, 0, 0, 0, 0, 0, 0, 0 }, MB_SC_OK },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint16_t st = submit_status(&g, cases[i].e);
		if (st != cases[i].want)
			fail_msg("case %zu: status %u, wanted %u", i, st, cases[i].want);
	}
	/* still working */
	uint32_t v[4] = { 4, 5, 6, 7 };
	write_blocks(&r, &g, cap - 4, 4, v, BUF_OFF);
	struct mb_identify id;
	assert_int_equal(mbg_identify(&g, buf, &id, TMO), MB_SC_OK);
	assert_int_equal(id.id, MB_ID);
	assert_int_equal(id.capacity_blocks, cap);
	assert_int_equal(id.max_blocks, MB_MAX_BLOCKS);
	assert_string_equal(id.model, "devmig memblk");

	/* bad ring configurations are refused at enable with a reason */
	struct {
		uint64_t sq;
		uint32_t sqn;
		uint64_t cq;
		uint32_t cqn;
		uint32_t err;
	} rings[] = {
		{ GIOVA, 3, GIOVA + CQ_OFF, 8, MB_ERR_SQ_SIZE },
		{ GIOVA, 0, GIOVA + CQ_OFF, 8, MB_ERR_SQ_SIZE },
		{ GIOVA, 8192, GIOVA + CQ_OFF, 8, MB_ERR_SQ_SIZE },
		{ GIOVA, 1, GIOVA + CQ_OFF, 8, MB_ERR_SQ_SIZE },
		{ GIOVA, 8, GIOVA + CQ_OFF, 0, MB_ERR_CQ_SIZE },
		{ GIOVA + 8, 8, GIOVA + CQ_OFF, 8, MB_ERR_SQ_ALIGN },
		{ GIOVA, 8, GIOVA + CQ_OFF + 16, 8, MB_ERR_CQ_ALIGN },
		{ UINT64_MAX - 63, 8, GIOVA + CQ_OFF, 8, MB_ERR_SQ_ALIGN },
	};
	for (size_t i = 0; i < sizeof(rings) / sizeof(rings[0]); i++) {
		uint32_t err = 0;
		assert_int_equal(mbg_setup_queues(&g, rings[i].sq, rings[i].sqn, rings[i].cq,
						  rings[i].cqn, &err), -EIO);
		assert_int_equal(err, rings[i].err);
		assert_int_equal(reg(&r.src, MB_REG_STATUS) & (MB_STS_CFS | MB_STS_READY),
				 MB_STS_CFS);
	}
	/* rings that are not mapped: the device stops with FATAL and the reason */
	assert_int_equal(mbg_setup_queues(&g, 0x10000, 8, GIOVA + CQ_OFF, 8, NULL), 0);
	assert_int_equal(devmig_client_region_write(r.src.cl, 0, MB_REG_SQ_TAIL, &(uint32_t){ 1 }, 4),
			 0);
	uint64_t end = fx_now_ms() + TMO;
	while (!(reg(&r.src, MB_REG_STATUS) & MB_STS_FATAL) && fx_now_ms() < end)
		sched_yield();
	assert_int_equal(reg(&r.src, MB_REG_STATUS), MB_STS_FATAL);
	assert_int_equal(reg(&r.src, MB_REG_ERR_CODE), MB_ERR_SQ_DMA);
	assert_int_equal(mbg_setup_queues(&g, GIOVA, 8, 0x20000, 8, NULL), 0);
	struct mb_sqe fl = { .opcode = MB_OP_FLUSH, .tag = 1 };
	assert_int_equal(mbg_submit(&g, &fl), 0);
	end = fx_now_ms() + TMO;
	while (!(reg(&r.src, MB_REG_STATUS) & MB_STS_FATAL) && fx_now_ms() < end)
		sched_yield();
	assert_int_equal(reg(&r.src, MB_REG_ERR_CODE), MB_ERR_CQ_DMA);

	/* doorbells out of range are ignored and flagged (write 1 to clear) */
	mbg_destroy(&g);
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 8);
	assert_int_equal(devmig_client_region_write(r.src.cl, 0, MB_REG_SQ_TAIL, &(uint32_t){ 8 }, 4),
			 0);
	assert_int_equal(reg(&r.src, MB_REG_STATUS), MB_STS_READY | MB_STS_DBERR);
	assert_int_equal(reg(&r.src, MB_REG_ERR_CODE), MB_ERR_SQ_TAIL);
	assert_int_equal(reg(&r.src, MB_REG_SQ_TAIL), 0);
	assert_int_equal(devmig_client_region_write(r.src.cl, 0, MB_REG_CQ_HEAD, &(uint32_t){ 99 }, 4),
			 0);
	assert_int_equal(reg(&r.src, MB_REG_ERR_CODE), MB_ERR_CQ_HEAD);
	assert_int_equal(devmig_client_region_write(r.src.cl, 0, MB_REG_STATUS,
						    &(uint32_t){ MB_STS_DBERR }, 4), 0);
	assert_int_equal(reg(&r.src, MB_REG_STATUS), MB_STS_READY);
	/* ring registers are read-only while enabled; RO registers ignore writes */
	assert_int_equal(devmig_client_region_write(r.src.cl, 0, MB_REG_SQ_SIZE, &(uint32_t){ 64 }, 4),
			 0);
	assert_int_equal(reg(&r.src, MB_REG_SQ_SIZE), 8);
	assert_int_equal(devmig_client_region_write(r.src.cl, 0, MB_REG_ID, &(uint32_t){ 0 }, 4), 0);
	assert_int_equal(reg(&r.src, MB_REG_ID), MB_ID);
	/* only aligned 32-bit accesses */
	uint64_t wide = 0;
	assert_int_not_equal(devmig_client_region_read(r.src.cl, 0, 0, &wide, 8), 0);
	assert_int_not_equal(devmig_client_region_read(r.src.cl, 0, 2, &wide, 4), 0);
	uint32_t back[4] = { 0 };
	assert_int_equal(mbg_read(&g, cap - 4, 4, buf, TMO), MB_SC_OK);
	for (int i = 0; i < 4; i++)
		assert_true(block_is(gmem(&r, BUF_OFF + i * MB_BLOCK_SIZE), cap - 4 + i, v[i]));
	(void)back;
	mbg_destroy(&g);
	rig_close(&r);
}

/* ---- options, reset, odd sessions ---- */

static void options_and_sessions(void **state)
{
	(void)state;
	static const char *const bad[] = { "size=0", "size=3K", "size=100G", "chunk=3K",
					   "chunk=2M", "chunk=2K", "foo=1", "size", "size=12Q",
					   "zerocopy=2", "size=-1" };
	char err[256];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		struct devmig_device *d = devmig_variant_memblk.create(bad[i], err, sizeof(err));
		if (d)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(err, "memblk"));
	}
	/* several GiB cost nothing until touched */
	struct devmig_device *big = devmig_variant_memblk.create("size=8G", err, sizeof(err));
	assert_non_null(big);
	devmig_variant_memblk.free(big);
	struct devmig_device *dflt = devmig_variant_memblk.create(NULL, err, sizeof(err));
	assert_non_null(dflt);
	devmig_variant_memblk.free(dflt);
	assert_ptr_equal(devmig_variant_find("memblk"), &devmig_variant_memblk);

	struct rig r;
	struct mbg g;
	uint8_t buf[CHUNK];
	uint64_t seed = 1, sc = 0;
	rig_open(&r, "size=64K,chunk=4K", NULL);
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 8);
	uint64_t caps = 0;
	assert_int_equal(devmig_client_mig_caps(r.src.cl, &caps), 0);
	assert_int_equal(caps, DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P | DEVMIG_MIG_PRE_COPY);
	/* A fresh device's chunks would travel as ZERO records: the estimate
	 * (asked with no session open) counts those, then a written chunk whole. */
	assert_int_equal(devmig_client_stop_copy_size(r.src.cl, &sc), 0);
	assert_true(sc > 16 * 20 && sc < (64u << 10));
	uint32_t v = 42;
	write_blocks(&r, &g, 7, 1, &v, BUF_OFF);
	uint64_t sc2 = 0;
	assert_int_equal(devmig_client_stop_copy_size(r.src.cl, &sc2), 0);
	assert_int_equal(sc2, sc + 4096);
	/* reset in PRE_COPY drops the session; storage survives a reset */
	set_state(&r.src, DEVMIG_STATE_PRE_COPY);
	pump(&r.src, NULL, buf, &seed, NULL);
	assert_int_equal(devmig_client_reset(r.src.cl), 0);
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(r.src.cl, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_RUNNING);
	assert_int_equal(reg(&r.src, MB_REG_STATUS), 0);
	assert_int_equal(mbg_client_enable_msix(r.src.cl, r.src.efd), 0);
	mbg_destroy(&g);
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 8);
	assert_int_equal(mbg_read(&g, 7, 1, GIOVA + BUF_OFF, TMO), MB_SC_OK);
	assert_true(block_is(gmem(&r, BUF_OFF), 7, 42));
	/* a RESUMING with no data refuses to commit, then a reset recovers */
	set_state(&r.src, DEVMIG_STATE_RESUMING);
	expect_refused(&r.src, NULL, 0, "empty", "empty", 0);
	assert_int_equal(devmig_client_reset(r.src.cl), 0);
	/* a PRE_COPY abandoned for RUNNING, then a full STOP_COPY round */
	assert_int_equal(mbg_client_enable_msix(r.src.cl, r.src.efd), 0);
	mbg_destroy(&g);
	guest_open(&r, &r.src, &g, SQ_OFF, CQ_OFF, 8);
	set_state(&r.src, DEVMIG_STATE_PRE_COPY);
	pump(&r.src, NULL, buf, &seed, NULL);
	set_state(&r.src, DEVMIG_STATE_RUNNING);
	assert_int_equal(mbg_read(&g, 7, 1, GIOVA + BUF_OFF, TMO), MB_SC_OK);
	struct fx_buf s = { 0 };
	migrate(&r.src, NULL, 2, &s);
	assert_true(s.len > 0);
	free(s.p);
	mbg_destroy(&g);
	rig_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(options_and_sessions),
		cmocka_unit_test(guest_errors),
		cmocka_unit_test(roundtrip_64m),
		cmocka_unit_test(save_and_save_ref_agree),
		cmocka_unit_test(precopy_counts_exact),
		cmocka_unit_test(stop_copy_size_follows_what_was_written),
		cmocka_unit_test(precopy_with_workload),
		cmocka_unit_test(corruption_refused_destination_unchanged),
		cmocka_unit_test(geometry_mismatch_refused),
		cmocka_unit_test(resuming_refused_without_room_for_staging),
		cmocka_unit_test(inflight_across_quiesce),
		cmocka_unit_test(inflight_across_migration),
		cmocka_unit_test(inflight_burst_migration),
		cmocka_unit_test(inflight_restored_from_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
