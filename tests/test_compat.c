/* SPDX-License-Identifier: MIT */
/*
 * Migration compatibility: the rule (lib/protocol/compat.c), then memblk's
 * two variants in both directions: v1 ("memblk1", every chunk sent whole)
 * and v2 ("memblk", never-written chunks as ZERO records, accepts v1).
 * v1 -> v1, v1 -> v2 and v2 -> v2 migrate; v2 -> v1 is refused by the
 * engine's HELLO check before the source stops, when a stream is written by
 * hand by the core's stream header check, and with the header forged by
 * v1's tracked memory, which takes no ZERO records.
 * Last, the operator's view: `devmig info --json` reports of three hosts
 * fed to `devmig compat --fleet`, and `devmig compat` for one pair.
 *
 * Devices in-process behind real servers on temporary sockets, or as
 * `devmig serve` processes (DEVMIG_BIN). Guest memory: one memfd mapped at
 * IOVA 0 in every memblk; the guest driver (memblk_guest) polls (no MSI-X).
 * No sleeps: every wait is bounded and on a condition.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices.h"
#include "devmig/client.h"
#include "devmig/compat.h"
#include "devmig/device.h"
#include "devmig/engine.h"
#include "devmig/server.h"
#include "fixture.h"
#include "memblk/memblk_guest.h"

extern char **environ;

#define V1 "1af4:10f1-memblk-v1"
#define V2 "1af4:10f1-memblk-v2"
#define COUNTER_V "1af4:10f0-counter-v2"
#define DEV_ARGS "size=16M"
#define DEV_SIZE (16u << 20)
#define DEV_BLOCKS (DEV_SIZE / MB_BLOCK_SIZE)
#define TMO 20000             /* ms, for anything that should take far less */
#define MEM_SIZE (4u << 20)   /* guest memory, at IOVA 0 */
#define SQ_OFF 0x0u
#define CQ_OFF 0x10000u
#define BUF_OFF (1u << 20)    /* one MAX_BLOCKS (1 MiB) data buffer */
#define QSIZE 64u

/* ================================================================ the rule */

static struct devmig_compat_info info_of(const char *version, uint64_t fp,
					 const char *const *accepts)
{
	struct devmig_compat_info ci;
	memset(&ci, 0, sizeof(ci));
	snprintf(ci.version, sizeof(ci.version), "%s", version);
	ci.config_fingerprint = fp;
	for (unsigned i = 0; accepts && accepts[i]; i++)
		snprintf(ci.accepts[ci.naccepts++], DEVMIG_VERSION_MAX, "%s", accepts[i]);
	return ci;
}

static void rule(void **state)
{
	(void)state;
	static const char *const v2_accepts[] = { V1, NULL };
	struct devmig_compat_info v1 = info_of(V1, 0x1234, NULL);
	struct devmig_compat_info v2 = info_of(V2, 0x1234, v2_accepts);
	char why[256];

	/* equal versions, equal fingerprints */
	strcpy(why, "untouched");
	assert_int_equal(devmig_compat_check(&v1, V1, 0x1234, why, sizeof(why)), 0);
	assert_int_equal(devmig_compat_check(&v2, V2, 0x1234, why, sizeof(why)), 0);
	/* an accepted older version */
	assert_int_equal(devmig_compat_check(&v2, V1, 0x1234, why, sizeof(why)), 0);

	/* not accepted: the reason names both versions */
	why[0] = 0;
	assert_int_equal(devmig_compat_check(&v1, V2, 0x1234, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "does not accept"));
	assert_non_null(strstr(why, V1));
	assert_non_null(strstr(why, V2));
	/* accepts is not symmetric, nor transitive through the target's own list */
	assert_int_equal(devmig_compat_check(&v2, "1af4:10f1-memblk-v3", 0x1234, why,
					     sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "1af4:10f1-memblk-v3"));

	/* different device: the reason names both common parts */
	why[0] = 0;
	assert_int_equal(devmig_compat_check(&v1, COUNTER_V, 0x1234, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "different device"));
	assert_non_null(strstr(why, "1af4:10f0"));
	assert_non_null(strstr(why, "1af4:10f1"));
	/* even when the target lists it among its accepts */
	static const char *const odd[] = { COUNTER_V, NULL };
	struct devmig_compat_info v1odd = info_of(V1, 0x1234, odd);
	assert_int_equal(devmig_compat_check(&v1odd, COUNTER_V, 0x1234, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "different device"));

	/* config space differs */
	why[0] = 0;
	assert_int_equal(devmig_compat_check(&v2, V1, 0x1235, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "give both the same profile"));
	assert_non_null(strstr(why, "0000000000001235"));
	assert_non_null(strstr(why, "0000000000001234"));
	assert_int_equal(devmig_compat_check(&v1, V1, 0, why, sizeof(why)), -EINVAL);

	/* a short reason buffer is cut, not overrun */
	char tiny[8];
	memset(tiny, 'x', sizeof(tiny));
	assert_int_equal(devmig_compat_check(&v1, V2, 0x1234, tiny, sizeof(tiny)), -EINVAL);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);

	/* the common part: up to the first '-' */
	char c[64];
	assert_int_equal(devmig_version_common(V2, c, sizeof(c)), 9);
	assert_string_equal(c, "1af4:10f1");
	assert_int_equal(devmig_version_common("nodash", c, sizeof(c)), 6);
	assert_string_equal(c, "nodash");
	assert_int_equal(devmig_version_common("-x", c, sizeof(c)), 0);
	assert_string_equal(c, "");
	assert_int_equal(devmig_version_common(V2, c, 5), 9); /* the length, even when cut */
	assert_string_equal(c, "1af4");
	assert_int_equal(devmig_version_common(V2, NULL, 0), 9);
}

/* ================================================================ in-process devices */

struct host {
	struct fx_server fx;
	struct devmig_client *cl;
};

/* Everything a test opens, so that teardown cleans up after a failure too. */
#define MAX_HOSTS 4
static struct host hosts[MAX_HOSTS];
static char dir[FX_PATH_MAX];
static struct fx_guest guest = { .fd = -1 };
static uint8_t *mem;

static void host_close(struct host *h)
{
	if (!h->fx.dev)
		return;
	devmig_client_close(h->cl);
	fx_unserve(&h->fx);
	memset(h, 0, sizeof(*h));
}

static struct host *host_open(const struct devmig_variant *var, const char *name)
{
	struct host *h = NULL;

	for (int i = 0; i < MAX_HOSTS && !h; i++)
		if (!hosts[i].fx.dev)
			h = &hosts[i];
	assert_non_null(h);
	fx_serve_variant(&h->fx, dir, name, var, DEV_ARGS);
	h->cl = fx_connect(&h->fx, NULL);
	fx_guest_map(&guest, h->cl, 0);
	return h;
}

static int setup(void **state)
{
	(void)state;
	memset(hosts, 0, sizeof(hosts));
	fx_tmpdir(dir, "compat");
	fx_guest_new(&guest, MEM_SIZE);
	mem = guest.mem;
	return 0;
}


static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < MAX_HOSTS; i++)
		host_close(&hosts[i]);
	fx_guest_free(&guest);
	fx_rmdir(dir);
	return 0;
}

static enum devmig_state state_of(struct host *h)
{
	enum devmig_state st = DEVMIG_STATE_ERROR;
	assert_int_equal(devmig_client_get_state(h->cl, &st), 0);
	return st;
}

/* ---- the guest: a driver on a device, data through its 1 MiB buffer ---- */

static void guest_open(struct host *h, struct mbg *g)
{
	struct mbg_mmio io = mbg_mmio_client(h->cl);
	assert_int_equal(mbg_init(g, &io, mem, 0, MEM_SIZE, -1), 0);
	assert_int_equal(g->capacity, DEV_BLOCKS);
	uint32_t err = 0;
	int rc = mbg_setup_queues(g, SQ_OFF, QSIZE, CQ_OFF, QSIZE, &err);
	if (rc)
		fail_msg("setup queues: %d, ERR_CODE %u", rc, err);
}

/* The same guest, now talking to another device (after a migration). */
static void guest_route(struct mbg *g, struct host *h)
{
	struct mbg_mmio io = mbg_mmio_client(h->cl);
	mbg_set_route(g, &io, -1);
}

static uint64_t mix(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void fill(uint8_t *p, uint64_t lba, uint32_t seed)
{
	for (size_t i = 0; i < MB_BLOCK_SIZE; i += 8) {
		uint64_t v = mix(lba * 0x9e3779b97f4a7c15ull + i + ((uint64_t)seed << 40) + 1);
		memcpy(p + i, &v, 8);
	}
}

/* Write a few scattered runs (most chunks stay never written: ZERO records in v2). */
static void write_pattern(struct mbg *g, uint32_t seed)
{
	static const struct {
		uint64_t lba;
		uint32_t n;
	} runs[] = { { 0, 1 }, { 1, 3 }, { 17, 1 }, { 300, 40 }, { 1000, 256 }, { 4095, 1 } };
	for (size_t r = 0; r < sizeof(runs) / sizeof(runs[0]); r++) {
		for (uint32_t i = 0; i < runs[r].n; i++)
			fill(mem + BUF_OFF + (size_t)i * MB_BLOCK_SIZE, runs[r].lba + i, seed);
		assert_int_equal(mbg_write(g, runs[r].lba, runs[r].n, BUF_OFF, TMO), MB_SC_OK);
	}
}

/* The whole storage, read by the guest (DEV_SIZE bytes, caller frees). */
static uint8_t *read_all(struct mbg *g)
{
	uint8_t *out = malloc(DEV_SIZE);
	assert_non_null(out);
	for (uint64_t lba = 0; lba < DEV_BLOCKS; lba += MB_MAX_BLOCKS) {
		assert_int_equal(mbg_read(g, lba, MB_MAX_BLOCKS, BUF_OFF, TMO), MB_SC_OK);
		memcpy(out + lba * MB_BLOCK_SIZE, mem + BUF_OFF, MB_MAX_BLOCKS * MB_BLOCK_SIZE);
	}
	return out;
}

/* Storage a never-touched device has: all zeros. */
static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void check_pattern(const uint8_t *data, uint32_t seed)
{
	uint8_t want[MB_BLOCK_SIZE];
	fill(want, 1000, seed);
	assert_memory_equal(data + 1000 * MB_BLOCK_SIZE, want, MB_BLOCK_SIZE);
	fill(want, 4095, seed);
	assert_memory_equal(data + 4095ull * MB_BLOCK_SIZE, want, MB_BLOCK_SIZE);
	assert_true(all_zero(data + 2000ull * MB_BLOCK_SIZE, MB_BLOCK_SIZE)); /* never written */
}

static const struct devmig_variant *variant(int v)
{
	return v == 1 ? &devmig_variant_memblk1 : &devmig_variant_memblk;
}

/* ---- (a) what the devices report, and the rule on it, for every pair ---- */

static void matrix_compat_info(void **state)
{
	(void)state;
	struct host *src[3], *dst[3];
	struct devmig_compat_info si[3], di[3];

	for (int v = 1; v <= 2; v++) {
		char n[16];
		snprintf(n, sizeof(n), "src%d", v);
		src[v] = host_open(variant(v), n);
		snprintf(n, sizeof(n), "dst%d", v);
		dst[v] = host_open(variant(v), n);
		assert_int_equal(devmig_client_compat_info(src[v]->cl, &si[v]), 0);
		assert_int_equal(devmig_client_compat_info(dst[v]->cl, &di[v]), 0);
	}
	/* what each variant says about itself */
	assert_string_equal(si[1].version, V1);
	assert_int_equal(si[1].naccepts, 0);
	assert_string_equal(si[2].version, V2);
	assert_int_equal(si[2].naccepts, 1);
	assert_string_equal(si[2].accepts[0], V1);
	assert_memory_equal(&si[1], &di[1], sizeof(si[1]));
	assert_memory_equal(&si[2], &di[2], sizeof(si[2]));
	/* same device, same config space: only the stream differs */
	assert_true(si[1].config_fingerprint != 0);
	assert_true(si[1].config_fingerprint == si[2].config_fingerprint);
	uint64_t want = DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P | DEVMIG_MIG_PRE_COPY;
	assert_true((si[1].caps & want) == want && (si[2].caps & want) == want);

	for (int s = 1; s <= 2; s++) {
		for (int d = 1; d <= 2; d++) {
			char why[256] = "";
			int rc = devmig_compat_check(&di[d], si[s].version, si[s].config_fingerprint, why,
						     sizeof(why));
			print_message("# v%d -> v%d: %s%s\n", s, d, rc ? "no: " : "yes", why);
			if (s == 2 && d == 1) {
				assert_int_equal(rc, -EINVAL);
				assert_non_null(strstr(why, "does not accept"));
				assert_non_null(strstr(why, V1));
				assert_non_null(strstr(why, V2));
			} else if (rc) {
				fail_msg("v%d -> v%d refused: %s", s, d, why);
			}
		}
	}
}

/* ---- (b) real migrations, for every pair ---- */

struct watch {
	atomic_int paused, resumed, src_arcs, dst_arcs;
	atomic_bool resumed_on_dest;
};

static int w_pause(void *opaque)
{
	struct watch *w = opaque;
	atomic_fetch_add(&w->paused, 1);
	return 0;
}

static int w_resume(void *opaque, bool on_destination)
{
	struct watch *w = opaque;
	atomic_fetch_add(&w->resumed, 1);
	atomic_store(&w->resumed_on_dest, on_destination);
	return 0;
}

static void w_event(void *opaque, const struct devmig_engine_event *ev)
{
	struct watch *w = opaque;
	if (ev->type == DEVMIG_EV_ARC)
		atomic_fetch_add(ev->destination ? &w->dst_arcs : &w->src_arcs, 1);
}

static void migrate_pair(int s, int d)
{
	struct host *src = host_open(variant(s), "msrc");
	struct host *dst = host_open(variant(d), "mdst");
	struct mbg g;
	uint32_t seed = (uint32_t)(s * 10 + d);

	guest_open(src, &g);
	write_pattern(&g, seed);
	uint8_t *before = read_all(&g);
	check_pattern(before, seed);

	struct watch w;
	memset(&w, 0, sizeof(w));
	struct devmig_engine_config cfg = {
		.timeout_ms = TMO,
		.pause_guest = w_pause,
		.resume_guest = w_resume,
		.event = w_event,
		.opaque = &w,
	};
	struct devmig_migration_report rep;
	memset(&rep, 0, sizeof(rep));
	int rc = devmig_migrate_local(&cfg, &src->cl, &dst->cl, 1, NULL, NULL, &rep);
	print_message("# v%d -> v%d: rc %d, %llu device bytes%s%s\n", s, d, rc,
		      (unsigned long long)rep.device_bytes, rep.error[0] ? ": " : "", rep.error);

	if (s == 2 && d == 1) {
		/* refused in HELLO: before the source leaves RUNNING or the guest stops */
		assert_int_equal(rc, -EINVAL);
		assert_false(rep.completed);
		assert_non_null(strstr(rep.error, "cannot take this source"));
		assert_non_null(strstr(rep.error, "does not accept"));
		assert_non_null(strstr(rep.error, V1));
		assert_non_null(strstr(rep.error, V2));
		assert_int_equal(atomic_load(&w.paused), 0);
		assert_int_equal(atomic_load(&w.src_arcs), 0);
		assert_int_equal(atomic_load(&w.dst_arcs), 0);
		assert_int_equal(rep.device_bytes, 0);
		assert_int_equal(state_of(src), DEVMIG_STATE_RUNNING);
		assert_int_equal(state_of(dst), DEVMIG_STATE_RUNNING);
		/* the source runs on with its data */
		uint8_t *again = read_all(&g);
		assert_memory_equal(again, before, DEV_SIZE);
		free(again);
		/* and the destination got nothing */
		struct mbg g2;
		guest_open(dst, &g2);
		uint8_t *d_data = read_all(&g2);
		assert_true(all_zero(d_data, DEV_SIZE));
		free(d_data);
		mbg_destroy(&g2);
	} else {
		if (rc)
			fail_msg("v%d -> v%d failed: %s", s, d, rep.error);
		assert_true(rep.completed);
		assert_int_equal(atomic_load(&w.paused), 1);
		assert_true(atomic_load(&w.resumed_on_dest));
		assert_true(atomic_load(&w.src_arcs) > 0);
		assert_int_equal(state_of(dst), DEVMIG_STATE_RUNNING);
		/* v1 sends every chunk whole, v2 only what was written (ZERO records) */
		if (s == 1)
			assert_true(rep.device_bytes > DEV_SIZE);
		else
			assert_true(rep.device_bytes < DEV_SIZE / 4);
		/* the guest goes on, on the destination: same storage, and it still writes */
		guest_route(&g, dst);
		uint8_t *after = read_all(&g);
		assert_memory_equal(after, before, DEV_SIZE);
		free(after);
		fill(mem + BUF_OFF, 2000, 99);
		assert_int_equal(mbg_write(&g, 2000, 1, BUF_OFF, TMO), MB_SC_OK);
		memset(mem + BUF_OFF, 0, MB_BLOCK_SIZE);
		assert_int_equal(mbg_read(&g, 2000, 1, BUF_OFF, TMO), MB_SC_OK);
		uint8_t want[MB_BLOCK_SIZE];
		fill(want, 2000, 99);
		assert_memory_equal(mem + BUF_OFF, want, MB_BLOCK_SIZE);
	}
	free(before);
	mbg_destroy(&g);
	host_close(dst);
	host_close(src);
}

static void matrix_migrations(void **state)
{
	(void)state;
	for (int s = 1; s <= 2; s++)
		for (int d = 1; d <= 2; d++)
			migrate_pair(s, d);
}

/* ---- the stream header: the second line of defence ---- */

/* STOP_COPY, read to the short reply, back to RUNNING. */
static void save_stream(struct host *h, struct fx_buf *v)
{
	memset(v, 0, sizeof(*v));
	assert_int_equal(devmig_client_set_state(h->cl, DEVMIG_STATE_STOP_COPY), 0);
	fx_buf_read_stream(v, h->cl, 1u << 20);
	assert_int_equal(devmig_client_set_state(h->cl, DEVMIG_STATE_RUNNING), 0);
}

static void stream_header_check(void **state)
{
	(void)state;
	struct host *s2 = host_open(&devmig_variant_memblk, "s2");
	struct host *d1 = host_open(&devmig_variant_memblk1, "d1");
	struct mbg g, gd;
	struct fx_buf v;
	char reason[512] = "";
	uint64_t loaded = 0;
	int load_err = 0;

	guest_open(s2, &g);
	write_pattern(&g, 21);
	uint8_t *s_before = read_all(&g);
	mbg_destroy(&g);
	guest_open(d1, &gd);
	write_pattern(&gd, 11); /* the destination has data of its own */
	uint8_t *d_before = read_all(&gd);
	mbg_destroy(&gd);

	/* v2 -> v1 by hand: refused at the stream header, nothing applied */
	save_stream(s2, &v);
	assert_true(v.len > 1000 && v.len < DEV_SIZE / 4); /* v2: ZERO records */
	assert_int_equal(devmig_client_set_state(d1->cl, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(d1->cl, v.p, v.len), -EINVAL);
	assert_int_equal(devmig_client_mig_status(d1->cl, &loaded, &load_err, reason,
						  sizeof(reason)), 0);
	print_message("# v2 stream into v1, writing: %s\n", reason);
	assert_int_equal(load_err, -EINVAL);
	assert_non_null(strstr(reason, "HEADER"));
	assert_non_null(strstr(reason, "does not accept"));
	assert_non_null(strstr(reason, V1));
	assert_non_null(strstr(reason, V2));
	assert_true(loaded < 4096); /* refused at its header: no device data taken */
	/* RESUMING -> STOP refused for the same reason (the core then opens a fresh
	 * load session, so load_error reads 0 again) */
	assert_int_equal(devmig_client_set_state(d1->cl, DEVMIG_STATE_STOP), -EINVAL);
	assert_int_equal(state_of(d1), DEVMIG_STATE_RESUMING);
	reason[0] = 0;
	assert_int_equal(devmig_client_mig_status(d1->cl, &loaded, &load_err, reason,
						  sizeof(reason)), 0);
	print_message("# v2 stream into v1, RESUMING -> STOP: %s\n", reason);
	assert_non_null(strstr(reason, "RESUMING -> STOP"));
	assert_non_null(strstr(reason, "does not accept"));
	assert_non_null(strstr(reason, V1));
	assert_non_null(strstr(reason, V2));
	/* the destination is unchanged: reset leaves RESUMING, the storage stays */
	assert_int_equal(devmig_client_reset(d1->cl), 0);
	assert_int_equal(state_of(d1), DEVMIG_STATE_RUNNING);
	guest_open(d1, &gd);
	uint8_t *d_after = read_all(&gd);
	assert_memory_equal(d_after, d_before, DEV_SIZE);
	free(d_after);
	mbg_destroy(&gd);
	/* and the source too */
	guest_open(s2, &g);
	uint8_t *s_after = read_all(&g);
	assert_memory_equal(s_after, s_before, DEV_SIZE);
	free(s_after);
	mbg_destroy(&g);

	/* v2 -> v1 with the header forged to say v1 (and resealed): v1's tracked
	 * memory refuses the first ZERO record */
	{
		uint8_t *h = memmem(v.p, 200, V2, strlen(V2));
		assert_non_null(h);
		memcpy(h, V1, strlen(V1));
		uint32_t hl;
		memcpy(&hl, v.p + 12, 4); /* the HEADER record's length, after the magic */
		uint32_t crc = devmig_crc32c(0, v.p + 8, 8 + hl);
		memcpy(v.p + 16 + hl, &crc, 4);
		assert_int_equal(devmig_client_set_state(d1->cl, DEVMIG_STATE_RESUMING), 0);
		assert_int_equal(devmig_client_mig_write(d1->cl, v.p, v.len), -EINVAL);
		assert_int_equal(devmig_client_mig_status(d1->cl, &loaded, &load_err, reason,
							  sizeof(reason)), 0);
		print_message("# v2 stream forged as v1: %s\n", reason);
		assert_non_null(strstr(reason, "takes no ZERO records"));
		assert_int_equal(devmig_client_reset(d1->cl), 0);
		guest_open(d1, &gd);
		d_after = read_all(&gd);
		assert_memory_equal(d_after, d_before, DEV_SIZE);
		free(d_after);
		mbg_destroy(&gd);
	}
	free(v.p);

	/* v1 -> v2 by hand: loads (every chunk whole, never-written ones too) */
	save_stream(d1, &v);
	assert_true(v.len > DEV_SIZE);
	assert_int_equal(devmig_client_set_state(s2->cl, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(s2->cl, v.p, v.len), 0);
	assert_int_equal(devmig_client_set_state(s2->cl, DEVMIG_STATE_STOP), 0);
	assert_int_equal(devmig_client_set_state(s2->cl, DEVMIG_STATE_RUNNING), 0);
	guest_open(s2, &g);
	uint8_t *loaded_data = read_all(&g);
	assert_memory_equal(loaded_data, d_before, DEV_SIZE);
	check_pattern(loaded_data, 11);
	free(loaded_data);
	mbg_destroy(&g);
	free(v.p);

	/* a second hop, v2 -> v2, of the state that came from v1: every chunk of
	 * it is data now (v1 does not say which were never written) */
	struct host *s2b = host_open(&devmig_variant_memblk, "s2b");
	save_stream(s2, &v);
	assert_true(v.len > DEV_SIZE);
	assert_int_equal(devmig_client_set_state(s2b->cl, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(s2b->cl, v.p, v.len), 0);
	assert_int_equal(devmig_client_set_state(s2b->cl, DEVMIG_STATE_RUNNING), 0);
	guest_open(s2b, &g);
	loaded_data = read_all(&g);
	assert_memory_equal(loaded_data, d_before, DEV_SIZE);
	free(loaded_data);
	mbg_destroy(&g);
	free(v.p);

	/* and v1 -> v1 by hand, for symmetry: loads */
	struct host *d1b = host_open(&devmig_variant_memblk1, "d1b");
	save_stream(d1, &v);
	assert_int_equal(devmig_client_set_state(d1b->cl, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(d1b->cl, v.p, v.len), 0);
	assert_int_equal(devmig_client_set_state(d1b->cl, DEVMIG_STATE_RUNNING), 0);
	guest_open(d1b, &g);
	loaded_data = read_all(&g);
	assert_memory_equal(loaded_data, d_before, DEV_SIZE);
	free(loaded_data);
	mbg_destroy(&g);
	free(v.p);

	free(s_before);
	free(d_before);
	host_close(d1b);
	host_close(s2b);
	host_close(d1);
	host_close(s2);
}

/* ================================================================ processes */

struct proc {
	pid_t pid; /* 0: none, or reaped */
	char name[32];
	char path[128];
};

#define MAX_PROCS 8
static struct proc procs[MAX_PROCS];

static const char *bin(void)
{
	const char *b = getenv("DEVMIG_BIN");
	if (!b)
		fail_msg("DEVMIG_BIN is not set");
	return b;
}

/* Wait (bounded) for pid to exit; its exit code, or -1 on timeout (then killed). */
static int wait_exit(pid_t pid, int timeout_ms)
{
	uint64_t end = fx_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0)
			return -1;
		if (fx_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return -1;
		}
		poll(NULL, 0, 2); /* re-check shortly */
	}
}

static void procs_kill_all(void)
{
	for (int i = 0; i < MAX_PROCS; i++) {
		if (procs[i].pid <= 0)
			continue;
		kill(procs[i].pid, SIGTERM);
		if (wait_exit(procs[i].pid, 5000) < 0)
			print_message("# %s did not stop on SIGTERM: killed\n", procs[i].name);
		procs[i].pid = 0;
	}
}

/* `devmig serve --device device` on dir/name.sock, up once it accepts a client. */
static struct proc *serve(const char *device, const char *name)
{
	struct proc *p = NULL;
	for (int i = 0; i < MAX_PROCS && !p; i++)
		if (procs[i].pid <= 0)
			p = &procs[i];
	assert_non_null(p);
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->path, sizeof(p->path), "%s/%s.sock", dir, name);
	char *argv[] = { (char *)bin(), "serve", "--device", (char *)device, "--socket", p->path,
			 "--args", DEV_ARGS, NULL };
	posix_spawn_file_actions_t fa;
	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	int rc = posix_spawn(&p->pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		p->pid = 0;
		fail_msg("cannot start %s: %s", argv[0], strerror(rc));
	}
	uint64_t end = fx_now_ms() + TMO;
	for (;;) {
		char err[256];
		struct devmig_client *c = devmig_client_connect(p->path, NULL, err, sizeof(err));
		if (c) {
			devmig_client_close(c);
			return p;
		}
		int st;
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->pid = 0;
			fail_msg("devmig serve %s %s exited early (status 0x%x)", device, name, st);
		}
		if (fx_now_ms() > end)
			fail_msg("devmig serve %s %s never came up: %s", device, name, err);
		poll(NULL, 0, 2); /* re-check shortly */
	}
}

/* Run argv (bounded) with stdout to out_path; stderr into err (may be NULL). Exit code. */
static int run_to(char *const argv[], const char *out_path, char *err, size_t errlen)
{
	char err_path[160];
	snprintf(err_path, sizeof(err_path), "%s/stderr.txt", dir);
	posix_spawn_file_actions_t fa;
	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc)
		fail_msg("cannot start %s: %s", argv[0], strerror(rc));
	int code = wait_exit(pid, TMO);
	if (code < 0)
		fail_msg("%s %s did not finish within %d ms", argv[0], argv[1], TMO);
	if (err) {
		err[0] = 0;
		FILE *f = fopen(err_path, "r");
		if (f) {
			size_t n = fread(err, 1, errlen - 1, f);
			err[n] = 0;
			fclose(f);
		}
	}
	return code;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char buf[64 * 1024];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* `devmig info --socket S --json` into out_path, checked; its JSON. */
static json_object *info_report(const struct proc *p, const char *out_path)
{
	char err[2048];
	char *argv[] = { (char *)bin(), "info", "--socket", (char *)p->path, "--json", NULL };
	int code = run_to(argv, out_path, err, sizeof(err));
	if (code)
		fail_msg("devmig info %s: exit %d: %s", p->name, code, err);
	json_object *o = json_object_from_file(out_path);
	if (!o)
		fail_msg("devmig info %s: not JSON: %s", p->name, slurp(out_path));
	json_object *c, *v;
	assert_true(json_object_object_get_ex(o, "compat", &c));
	assert_true(json_object_object_get_ex(c, "version", &v));
	return o;
}

/* The device named host:socket-path of proc p. */
static void dev_name(char *out, size_t n, const char *host, const struct proc *p)
{
	snprintf(out, n, "%s:%s", host, p->path);
}

static void expect_targets(json_object *fleet, const char *source, const char *const *want)
{
	size_t n = json_object_array_length(fleet);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(fleet, i), *s, *t;
		assert_true(json_object_object_get_ex(e, "source", &s));
		if (strcmp(json_object_get_string(s), source))
			continue;
		assert_true(json_object_object_get_ex(e, "targets", &t));
		size_t nt = json_object_array_length(t), nw = 0;
		while (want[nw])
			nw++;
		for (size_t k = 0; k < nt; k++) {
			const char *got = json_object_get_string(json_object_array_get_idx(t, k));
			bool expected = false;
			for (size_t w = 0; w < nw; w++)
				expected |= !strcmp(got, want[w]);
			if (!expected)
				fail_msg("%s: unexpected target %s", source, got);
		}
		for (size_t w = 0; w < nw; w++) {
			bool found = false;
			for (size_t k = 0; k < nt; k++)
				found |= !strcmp(json_object_get_string(json_object_array_get_idx(t, k)),
						 want[w]);
			if (!found)
				fail_msg("%s: target %s missing", source, want[w]);
		}
		return;
	}
	fail_msg("source %s not in the fleet report", source);
}

static void fleet(void **state)
{
	(void)state;
	/* hostA: one v1; hostB: a v2 and a counter; hostC: v1, v2, counter */
	struct proc *a1 = serve("memblk1", "a-v1");
	struct proc *b2 = serve("memblk", "b-v2");
	struct proc *bc = serve("counter", "b-cnt");
	struct proc *c1 = serve("memblk1", "c-v1");
	struct proc *c2 = serve("memblk", "c-v2");
	struct proc *cc = serve("counter", "c-cnt");
	char pa[160], pb[160], pc[160], tmp[160], out[160];

	/* hostA.json: the single device object `devmig info --json` prints */
	snprintf(pa, sizeof(pa), "%s/hostA.json", dir);
	json_object_put(info_report(a1, pa));

	/* hostB.json: {"host": "hostB", "devices": [...]} */
	json_object *hb = json_object_new_object(), *lb = json_object_new_array();
	snprintf(tmp, sizeof(tmp), "%s/info.json", dir);
	json_object_array_add(lb, info_report(b2, tmp));
	json_object_array_add(lb, info_report(bc, tmp));
	json_object_object_add(hb, "host", json_object_new_string("hostB"));
	json_object_object_add(hb, "devices", lb);
	snprintf(pb, sizeof(pb), "%s/hostB.json", dir);
	assert_int_equal(json_object_to_file(pb, hb), 0);
	json_object_put(hb);

	/* hostC.json: a plain array of devices (the host named after the file) */
	json_object *lc = json_object_new_array();
	json_object_array_add(lc, info_report(c1, tmp));
	json_object_array_add(lc, info_report(c2, tmp));
	json_object_array_add(lc, info_report(cc, tmp));
	snprintf(pc, sizeof(pc), "%s/hostC.json", dir);
	assert_int_equal(json_object_to_file(pc, lc), 0);
	json_object_put(lc);

	/* the versions the reports carry */
	json_object *ra = json_object_from_file(pa), *rc_, *rv;
	assert_true(json_object_object_get_ex(ra, "compat", &rc_));
	assert_true(json_object_object_get_ex(rc_, "version", &rv));
	assert_string_equal(json_object_get_string(rv), V1);
	json_object_put(ra);

	snprintf(out, sizeof(out), "%s/fleet.json", dir);
	char err[2048];
	char *fa[] = { (char *)bin(), "compat", "--fleet", pa, pb, pc, "--json", NULL };
	int code = run_to(fa, out, err, sizeof(err));
	if (code)
		fail_msg("devmig compat --fleet: exit %d: %s", code, err);
	json_object *fl = json_object_from_file(out);
	if (!fl || !json_object_is_type(fl, json_type_array))
		fail_msg("devmig compat --fleet --json: not an array: %s", slurp(out));
	assert_int_equal(json_object_array_length(fl), 6);

	char A1[200], B2[200], BC[200], C1[200], C2[200], CC[200];
	dev_name(A1, sizeof(A1), "hostA", a1);
	dev_name(B2, sizeof(B2), "hostB", b2);
	dev_name(BC, sizeof(BC), "hostB", bc);
	dev_name(C1, sizeof(C1), "hostC", c1);
	dev_name(C2, sizeof(C2), "hostC", c2);
	dev_name(CC, sizeof(CC), "hostC", cc);
	/* v1 -> the other v1 and every v2; v2 -> the other v2 only; counter -> counter */
	expect_targets(fl, A1, (const char *const[]){ B2, C1, C2, NULL });
	expect_targets(fl, C1, (const char *const[]){ A1, B2, C2, NULL });
	expect_targets(fl, B2, (const char *const[]){ C2, NULL });
	expect_targets(fl, C2, (const char *const[]){ B2, NULL });
	expect_targets(fl, BC, (const char *const[]){ CC, NULL });
	expect_targets(fl, CC, (const char *const[]){ BC, NULL });
	json_object_put(fl);

	/* one pair, against live sockets: v2 -> v1 is not compatible (exit 1) */
	char *p21[] = { (char *)bin(), "compat", "--source", c2->path, "--target", c1->path, NULL };
	code = run_to(p21, out, err, sizeof(err));
	const char *said = slurp(out);
	print_message("# compat v2 -> v1: exit %d: %s", code, said);
	assert_int_equal(code, 1);
	assert_non_null(strstr(said, "not compatible"));
	assert_non_null(strstr(said, "does not accept"));
	assert_non_null(strstr(said, V1));
	assert_non_null(strstr(said, V2));
	/* the same as JSON */
	char *p21j[] = { (char *)bin(), "compat", "--source", c2->path, "--target", c1->path,
			 "--json", NULL };
	assert_int_equal(run_to(p21j, out, err, sizeof(err)), 1);
	json_object *pj = json_object_from_file(out), *x;
	assert_non_null(pj);
	assert_true(json_object_object_get_ex(pj, "compatible", &x));
	assert_false(json_object_get_boolean(x));
	assert_true(json_object_object_get_ex(pj, "reason", &x));
	assert_non_null(strstr(json_object_get_string(x), "does not accept"));
	json_object_put(pj);

	/* a version string as the source: v1 state into a v2 device is fine (exit 0) */
	char *p12[] = { (char *)bin(), "compat", "--source", V1, "--target", b2->path, NULL };
	code = run_to(p12, out, err, sizeof(err));
	said = slurp(out);
	print_message("# compat %s -> v2: exit %d: %s", V1, code, said);
	assert_int_equal(code, 0);
	assert_non_null(strstr(said, "compatible"));
	assert_null(strstr(said, "not compatible"));
	/* and the other way round, by version string: exit 1 */
	char *p2s[] = { (char *)bin(), "compat", "--source", V2, "--target", a1->path, NULL };
	assert_int_equal(run_to(p2s, out, err, sizeof(err)), 1);
	/* the counter is a different device */
	char *pcm[] = { (char *)bin(), "compat", "--source", bc->path, "--target", b2->path, NULL };
	assert_int_equal(run_to(pcm, out, err, sizeof(err)), 1);
	assert_non_null(strstr(slurp(out), "different device"));

	procs_kill_all();
}

/* Fleet files of the wrong shape are refused with a sentence (exit 2), never a
 * crash: json-c asserts when asked for the length of a non-array. */
static void fleet_bad_shapes(void **state)
{
	(void)state;
	/* Each ends in a newline, as an editor writes it: json-c needs one after a bare number. */
	static const char *const bodies[] = { "{\"devices\": 5}\n", "7\n", "\"text\"\n",
					      "{\"devices\": {\"a\": 1}}\n" };
	char path[160], out[160], err[2048];
	snprintf(path, sizeof(path), "%s/bad.json", dir);
	snprintf(out, sizeof(out), "%s/out.txt", dir);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(bodies[i], f);
		fclose(f);
		char *argv[] = { (char *)bin(), "compat", "--fleet", path, NULL };
		int code = run_to(argv, out, err, sizeof(err));
		if (code != 2)
			fail_msg("fleet file %s: exit %d (want 2): %s", bodies[i], code, err);
		if (!strstr(err, "is not an array"))
			fail_msg("fleet file %s: unclear error: %s", bodies[i], err);
	}
}

static int proc_teardown(void **state)
{
	procs_kill_all(); /* also after a failure */
	return teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rule),
		cmocka_unit_test_setup_teardown(matrix_compat_info, setup, teardown),
		cmocka_unit_test_setup_teardown(matrix_migrations, setup, teardown),
		cmocka_unit_test_setup_teardown(stream_header_check, setup, teardown),
		cmocka_unit_test_setup_teardown(fleet, setup, proc_teardown),
		cmocka_unit_test_setup_teardown(fleet_bad_shapes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
