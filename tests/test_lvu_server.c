/* SPDX-License-Identifier: MIT */
/*
 * devmig's client, engine and commands against a server with
 * libvfio-user's personality (lvu_peer.h): padded MIG_DATA_READ replies,
 * error replies with a payload, its reset rules, VERSION members nobody
 * proposed, no P2P, no PRE_COPY progress, no stop-copy size, DMA log
 * reports for exactly one whole region.
 *
 * migrate (with and without PRE_COPY), save/restore and compat between two
 * such devices, with the state checked on arrival; a devmig device into a
 * foreign one, and two foreign devices that differ, refused before anything
 * moves; a failure at every step leaving the source RUNNING with its state
 * and the destination RUNNING and clean; the same through the devmig binary.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices.h"
#include "devmig/client.h"
#include "devmig/compat.h"
#include "devmig/engine.h"
#include "devmig/server.h"
#include "lvu_peer.h"

extern char **environ;

#define BAR1 0x4000u
#define MEM (1u << 20)

struct fx {
	char dir[64];
	char spath[128], dpath[128];
	struct lvu_peer *src, *dst;
	uint8_t pattern[BAR1];
};

static struct lvu_peer *peer_at(const char *path, uint8_t revision)
{
	struct lvu_peer_config cfg = { .socket_path = path, .revision = revision,
				       .class_code = 0xff0000 };
	struct lvu_peer *p = lvu_peer_start(&cfg);
	assert_non_null(p);
	return p;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/devmig-lvu-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->spath, sizeof(f->spath), "%s/src.sock", f->dir);
	snprintf(f->dpath, sizeof(f->dpath), "%s/dst.sock", f->dir);
	f->src = peer_at(f->spath, 0);
	f->dst = peer_at(f->dpath, 0);
	/* The source device's state: BAR1 contents and a register. */
	for (size_t i = 0; i < BAR1; i++)
		f->pattern[i] = (uint8_t)(i * 7 + i / 4096 + 1);
	lvu_peer_bar1(f->src, 0, f->pattern, BAR1, true);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	lvu_peer_stop(f->src);
	lvu_peer_stop(f->dst);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", f->dir);
	free(f);
	return 0;
}

static struct devmig_client *connect_to(const char *path)
{
	char err[256];
	struct devmig_client *c = devmig_client_connect(path, NULL, err, sizeof(err));
	if (!c)
		fail_msg("connect %s: %s", path, err);
	return c;
}

static void set_scratch(struct devmig_client *c, uint32_t v)
{
	assert_int_equal(devmig_client_region_write(c, 0, 0, &v, 4), 0);
}

static void assert_bar1(struct lvu_peer *p, const uint8_t *want)
{
	uint8_t got[BAR1];
	lvu_peer_bar1(p, 0, got, BAR1, false);
	assert_memory_equal(got, want, BAR1);
}

/* ---- the client against the peer ---- */

static void client_survives_libvfio_user_replies(void **state)
{
	struct fx *f = *state;
	struct devmig_client *c = connect_to(f->spath);
	struct devmig_caps caps;
	uint64_t mig = 0, a, b;
	enum devmig_state st;

	/* VERSION: "migration" was not proposed, and no extension is offered. */
	devmig_client_server_caps(c, &caps);
	assert_int_equal(caps.ext, 0);
	assert_int_equal(caps.max_msg_fds, 8);
	assert_int_equal(devmig_client_mig_caps(c, &mig), 0);
	assert_int_equal(mig, DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_PRE_COPY);
	assert_int_equal(devmig_client_precopy_info(c, &a, &b), -ENOTSUP);
	assert_int_equal(devmig_client_stop_copy_size(c, &a), -EINVAL);

	struct devmig_pci_identity id;
	assert_int_equal(devmig_client_pci_identity(c, &id), 0);
	assert_int_equal(id.vendor, 0xdead);
	assert_int_equal(id.device, 0xbeef);
	assert_int_equal(id.subsystem_vendor, 0xcafe);
	assert_int_equal(id.subsystem_device, 0xbabe);
	assert_int_equal(id.class_code, 0xff0000);

	/* An error reply with a payload: the errno, and the connection goes on. */
	struct lvu_peer_stats s0, s1;
	lvu_peer_stats(f->src, &s0);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RUNNING_P2P), -EINVAL);
	lvu_peer_stats(f->src, &s1);
	assert_true(s1.error_payloads > s0.error_payloads);
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_RUNNING);

	/* Its reset rules: refused in STOP, state kept; RESUMING stays RESUMING. */
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_STOP), 0);
	assert_int_equal(devmig_client_reset(c), -EINVAL);
	assert_int_equal(lvu_peer_state(f->src), DEVMIG_STATE_STOP);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_reset(c), 0);
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_RESUMING);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RUNNING), 0);

	/* Padded MIG_DATA_READ replies read as exactly their data. */
	lvu_peer_bar1(f->src, 0, f->pattern, BAR1, true);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_STOP_COPY), 0);
	uint8_t *stream = malloc(4 * BAR1);
	size_t total = 0;
	for (;;) {
		ssize_t n = devmig_client_mig_read(c, stream + total, 5000);
		assert_true(n >= 0);
		total += (size_t)n;
		if (n < 5000)
			break;
		assert_true(total + 5000 <= 4 * BAR1);
	}
	lvu_peer_stats(f->src, &s1);
	assert_true(s1.padded_replies > 0);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RUNNING), 0);

	/* ... and load whole into the other peer. */
	struct devmig_client *d = connect_to(f->dpath);
	assert_int_equal(devmig_client_set_state(d, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(d, stream, total), 0);
	assert_int_equal(devmig_client_set_state(d, DEVMIG_STATE_RUNNING), 0);
	assert_bar1(f->dst, f->pattern);
	lvu_peer_stats(f->dst, &s1);
	assert_int_equal(s1.loads, 1);
	free(stream);
	devmig_client_close(d);
	devmig_client_close(c);
}

static int discard(void *opaque, const void *data, size_t len)
{
	(void)opaque;
	(void)data;
	(void)len;
	return 0;
}

/* A reply the codec refuses in the middle of a pipeline: the client drops the
 * replies still due and the next command gets its own. */
static void client_keeps_pairing_after_a_refused_reply_in_a_pipeline(void **state)
{
	struct fx *f = *state;
	struct devmig_client *c = connect_to(f->spath);
	enum devmig_state st;
	bool ended;

	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_STOP_COPY), 0);
	lvu_peer_fault(f->src, LVU_FAULT_BAD_READ_REPLY, 1);
	ssize_t n = devmig_client_mig_read_stream(c, 1024, 4, 0, &ended, discard, NULL);
	assert_int_equal(n, -EPROTO);
	assert_false(devmig_client_broken(c));
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_STOP_COPY);
	uint32_t v = 0;
	assert_int_equal(devmig_client_region_read(c, 0, 0, &v, 4), 0);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RUNNING), 0);

	/* Unframeable bytes: broken until reconnected; the device kept its state. */
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_STOP_COPY), 0);
	lvu_peer_fault(f->src, LVU_FAULT_GARBAGE_ON_READ, 1);
	uint8_t buf[64];
	assert_true(devmig_client_mig_read(c, buf, sizeof(buf)) < 0);
	assert_true(devmig_client_broken(c));
	assert_int_equal(devmig_client_get_state(c, &st), -ENOTCONN);
	char err[256];
	assert_true(lvu_peer_wait_idle(f->src, 5000));
	assert_int_equal(devmig_client_reconnect(c, err, sizeof(err)), 0);
	assert_false(devmig_client_broken(c));
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_STOP_COPY);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RUNNING), 0);
	devmig_client_close(c);
}

/* ---- the engine between two peers ---- */

/* precopy: pre-copy the peer although it reports no progress (--precopy-all). */
static int migrate(struct fx *f, bool precopy, struct devmig_migration_report *rep)
{
	struct devmig_client *s = connect_to(f->spath), *d = connect_to(f->dpath);
	struct devmig_engine_config cfg = { .no_precopy = !precopy,
					    .precopy_without_progress = precopy };
	set_scratch(s, 0x5c5c);
	int rc = devmig_migrate_local(&cfg, &s, &d, 1, NULL, NULL, rep);
	devmig_client_close(s);
	devmig_client_close(d);
	return rc;
}

static void assert_moved(struct fx *f, const struct devmig_migration_report *rep)
{
	assert_true(rep->completed);
	assert_bar1(f->dst, f->pattern);
	assert_int_equal(lvu_peer_scratch(f->dst), 0x5c5c);
	assert_int_equal(lvu_peer_state(f->dst), DEVMIG_STATE_RUNNING);
	assert_int_equal(lvu_peer_state(f->src), DEVMIG_STATE_STOP);
	assert_int_equal(rep->src_state[0], DEVMIG_STATE_STOP);
	assert_int_equal(rep->dst_state[0], DEVMIG_STATE_RUNNING);
	struct lvu_peer_stats st;
	lvu_peer_stats(f->src, &st);
	assert_true(st.padded_replies > 0);
	lvu_peer_stats(f->dst, &st);
	assert_int_equal(st.loads, 1);
}

static void migrate_with_precopy_moves_the_state(void **state)
{
	struct fx *f = *state;
	struct devmig_migration_report rep;
	int rc = migrate(f, true, &rep);
	if (rc)
		fail_msg("migrate: %s", rep.error);
	assert_true(rep.precopy);
	assert_moved(f, &rep);
	/* The pre-copied BAR1 and the stop-copy records: more than BAR1 moved. */
	assert_true(rep.device_bytes > BAR1);
}

/*
 * A downtime budget held to with a peer that has no devmig extension: no
 * deadline, estimate or cap is ever asked of it, and it migrates as before.
 */
static void a_held_budget_asks_nothing_of_a_standard_peer(void **state)
{
	struct fx *f = *state;
	struct devmig_client *s = connect_to(f->spath), *d = connect_to(f->dpath);
	struct devmig_engine_config cfg = { .downtime_budget_ns = 300ull * 1000 * 1000,
					    .precopy_without_progress = true };
	struct devmig_migration_report rep;
	assert_false(devmig_client_has_ext(s, DEVMIG_EXT_DEADLINE));
	assert_false(devmig_client_has_ext(s, DEVMIG_EXT_DIRTY_RATE));
	set_scratch(s, 0x5c5c);
	int rc = devmig_migrate_local(&cfg, &s, &d, 1, NULL, NULL, &rep);
	devmig_client_close(s);
	devmig_client_close(d);
	if (rc)
		fail_msg("migrate: %s", rep.error);
	assert_false(rep.deadlines);
	assert_int_equal(rep.throttle_steps, 0);
	assert_int_equal(rep.deadline_refusals, 0);
	assert_moved(f, &rep);
	struct lvu_peer_stats st;
	lvu_peer_stats(f->src, &st);
	assert_int_equal(st.ext_features, 0);
	lvu_peer_stats(f->dst, &st);
	assert_int_equal(st.ext_features, 0);
}

/* By default a device that reports no PRE_COPY progress is stopped and copied. */
static void migrate_by_default_stop_copies_a_device_without_progress(void **state)
{
	struct fx *f = *state;
	struct devmig_client *s = connect_to(f->spath), *d = connect_to(f->dpath);
	struct devmig_engine_config cfg = { 0 };
	struct devmig_migration_report rep;
	set_scratch(s, 0x5c5c);
	int rc = devmig_migrate_local(&cfg, &s, &d, 1, NULL, NULL, &rep);
	devmig_client_close(s);
	devmig_client_close(d);
	if (rc)
		fail_msg("migrate: %s", rep.error);
	assert_false(rep.precopy);
	assert_int_equal(rep.rounds, 0);
	assert_moved(f, &rep);
}

static void migrate_without_precopy_moves_the_state(void **state)
{
	struct fx *f = *state;
	struct devmig_migration_report rep;
	int rc = migrate(f, false, &rep);
	if (rc)
		fail_msg("migrate: %s", rep.error);
	assert_false(rep.precopy);
	assert_moved(f, &rep);
}

/* Pre-copy rounds driven by what reads return: BAR1 written during PRE_COPY goes again. */
struct dirty_ctx {
	struct fx *f;
	unsigned rounds;
	struct devmig_guest_mem *mem;
};

static void on_event_dirty(void *opaque, const struct devmig_engine_event *ev)
{
	struct dirty_ctx *x = opaque;
	if (ev->type != DEVMIG_EV_ROUND && ev->type != DEVMIG_EV_SWITCHOVER)
		return;
	/* The device changes its state and writes guest memory as it runs. */
	unsigned k = x->rounds++;
	uint8_t v = (uint8_t)(0xa0 + k);
	x->f->pattern[100 + k] = v;
	lvu_peer_bar1(x->f->src, 100 + k, &v, 1, true);
	uint32_t w = 0xd0d0 + k;
	if (x->mem)
		assert_int_equal(lvu_peer_dma_write(x->f->src, 0x3000 + k * 4096, &w, 4), 0);
}

static int map_mem(struct devmig_client *c, struct devmig_guest_mem *gm, bool split)
{
	int fd = devmig_guest_mem_fd(gm);
	uint32_t prot = DEVMIG_DMA_READ | DEVMIG_DMA_WRITE;
	if (!split)
		return devmig_client_dma_map(c, 0, MEM, prot, fd, 0, NULL);
	int rc = devmig_client_dma_map(c, 0, MEM / 2, prot, fd, 0, NULL);
	return rc ? rc : devmig_client_dma_map(c, MEM / 2, MEM / 2, prot, fd, MEM / 2, NULL);
}

static void migrate_guest_memory(struct fx *f, bool split)
{
	char err[256];
	struct devmig_guest_mem *sm = devmig_guest_mem_new(MEM, err, sizeof(err));
	struct devmig_guest_mem *dm = devmig_guest_mem_new(MEM, err, sizeof(err));
	assert_non_null(sm);
	assert_non_null(dm);
	memset(devmig_guest_mem_ptr(sm), 0x11, MEM);
	struct devmig_client *s = connect_to(f->spath), *d = connect_to(f->dpath);
	assert_int_equal(map_mem(s, sm, split), 0);
	assert_int_equal(map_mem(d, dm, split), 0);
	struct dirty_ctx x = { .f = f, .mem = sm };
	struct devmig_engine_config cfg = { .event = on_event_dirty, .opaque = &x,
					    .precopy_without_progress = true };
	struct devmig_migration_report rep;
	int rc = devmig_migrate_local(&cfg, &s, &d, 1, sm, dm, &rep);
	if (rc)
		fail_msg("migrate: %s", rep.error);
	assert_true(x.rounds >= 2);
	/* Every device write reached the destination's memory, and the device state. */
	assert_memory_equal(devmig_guest_mem_ptr(dm), devmig_guest_mem_ptr(sm), MEM);
	for (unsigned k = 0; k < x.rounds; k++) {
		uint32_t w;
		memcpy(&w, (uint8_t *)devmig_guest_mem_ptr(dm) + 0x3000 + k * 4096, 4);
		assert_int_equal(w, 0xd0d0 + k);
	}
	assert_bar1(f->dst, f->pattern);
	struct lvu_peer_stats st;
	lvu_peer_stats(f->src, &st);
	if (split)
		assert_true(st.log_reports_refused > 0); /* then all memory counts as dirty */
	else
		assert_int_equal(st.log_reports_refused, 0);
	devmig_client_close(s);
	devmig_client_close(d);
	devmig_guest_mem_free(sm);
	devmig_guest_mem_free(dm);
}

static void migrate_guest_memory_logged_by_one_whole_region(void **state)
{
	migrate_guest_memory(*state, false);
}

static void migrate_guest_memory_when_reports_are_refused(void **state)
{
	migrate_guest_memory(*state, true);
}

static void save_and_restore_move_the_state(void **state)
{
	struct fx *f = *state;
	char path[160];
	snprintf(path, sizeof(path), "%s/ckpt", f->dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	struct devmig_client *s = connect_to(f->spath);
	set_scratch(s, 0x5a5a);
	struct devmig_engine_config cfg = { 0 };
	struct devmig_migration_report rep;
	int rc = devmig_save(&cfg, &s, 1, NULL, fd, &rep);
	if (rc)
		fail_msg("save: %s", rep.error);
	assert_int_equal(rep.src_state[0], DEVMIG_STATE_RUNNING);
	assert_int_equal(lvu_peer_state(f->src), DEVMIG_STATE_RUNNING);
	devmig_client_close(s);

	struct devmig_client *d = connect_to(f->dpath);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	rc = devmig_restore(&cfg, fd, &d, 1, NULL, &rep);
	if (rc)
		fail_msg("restore: %s", rep.error);
	assert_int_equal(rep.dst_state[0], DEVMIG_STATE_RUNNING);
	assert_bar1(f->dst, f->pattern);
	assert_int_equal(lvu_peer_scratch(f->dst), 0x5a5a);
	devmig_client_close(d);
	close(fd);
}

/* ---- before anything moves: a different device is refused ---- */

static void devmig_device_into_foreign_device_refused_before_anything_moves(void **state)
{
	struct fx *f = *state;
	char path[160], err[256];
	snprintf(path, sizeof(path), "%s/counter.sock", f->dir);
	struct devmig_device *dev = devmig_variant_counter.create(NULL, err, sizeof(err));
	assert_non_null(dev);
	struct devmig_server *srv = devmig_server_new(
		dev, &(struct devmig_server_config){ .socket_path = path }, err, sizeof(err));
	assert_non_null(srv);
	assert_int_equal(devmig_server_start(srv), 0);

	struct devmig_client *c = connect_to(path), *d = connect_to(f->dpath);
	uint32_t scratch = 0x77;
	assert_int_equal(devmig_client_region_write(c, 0, 0x08, &scratch, 4), 0);
	struct lvu_peer_stats before, after;
	lvu_peer_stats(f->dst, &before);
	struct devmig_engine_config cfg = { 0 };
	struct devmig_migration_report rep;

	assert_int_equal(devmig_migrate_local(&cfg, &c, &d, 1, NULL, NULL, &rep), -EINVAL);
	assert_non_null(strstr(rep.error, "different device"));
	assert_non_null(strstr(rep.error, "vendor:device 1af4:10f0 vs dead:beef"));
	/* Nothing moved: no state change asked of either, the source runs on. */
	lvu_peer_stats(f->dst, &after);
	assert_int_equal(after.state_sets, before.state_sets);
	assert_int_equal(devmig_device_state(dev), DEVMIG_STATE_RUNNING);
	assert_int_equal(lvu_peer_state(f->dst), DEVMIG_STATE_RUNNING);
	assert_int_equal(rep.src_state[0], DEVMIG_STATE_RUNNING);
	assert_int_equal(rep.dst_state[0], DEVMIG_STATE_RUNNING);
	assert_int_equal(rep.device_bytes, 0);
	scratch = 0;
	assert_int_equal(devmig_client_region_read(c, 0, 0x08, &scratch, 4), 0);
	assert_int_equal(scratch, 0x77);

	/* And the other way: the foreign device into devmig's counter. */
	struct devmig_client *s = connect_to(f->spath);
	assert_int_equal(devmig_migrate_local(&cfg, &s, &c, 1, NULL, NULL, &rep), -EINVAL);
	assert_non_null(strstr(rep.error, "different device"));
	assert_int_equal(lvu_peer_state(f->src), DEVMIG_STATE_RUNNING);
	assert_int_equal(devmig_device_state(dev), DEVMIG_STATE_RUNNING);

	devmig_client_close(s);
	devmig_client_close(c);
	devmig_client_close(d);
	devmig_server_free(srv);
	devmig_variant_counter.free(dev);
}

static void foreign_devices_that_differ_are_refused(void **state)
{
	struct fx *f = *state;
	lvu_peer_stop(f->dst);
	f->dst = peer_at(f->dpath, 1);
	struct devmig_migration_report rep;
	assert_int_equal(migrate(f, true, &rep), -EINVAL);
	assert_non_null(strstr(rep.error, "revision 00 vs 01"));
	assert_int_equal(lvu_peer_state(f->src), DEVMIG_STATE_RUNNING);
	assert_int_equal(lvu_peer_state(f->dst), DEVMIG_STATE_RUNNING);
	struct lvu_peer_stats st;
	lvu_peer_stats(f->dst, &st);
	assert_int_equal(st.state_sets, 0);
}

/* A checkpoint carries the source's PCI identity: restoring it into another device is refused. */
static void restore_into_a_different_foreign_device_is_refused(void **state)
{
	struct fx *f = *state;
	char path[160];
	snprintf(path, sizeof(path), "%s/ckpt", f->dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	struct devmig_client *s = connect_to(f->spath);
	struct devmig_engine_config cfg = { 0 };
	struct devmig_migration_report rep;
	if (devmig_save(&cfg, &s, 1, NULL, fd, &rep))
		fail_msg("save: %s", rep.error);
	devmig_client_close(s);

	lvu_peer_stop(f->dst);
	f->dst = peer_at(f->dpath, 7);
	struct devmig_client *d = connect_to(f->dpath);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(devmig_restore(&cfg, fd, &d, 1, NULL, &rep), -EINVAL);
	assert_non_null(strstr(rep.error, "revision 00 vs 07"));
	assert_int_equal(rep.dst_state[0], DEVMIG_STATE_RUNNING);
	struct lvu_peer_stats st;
	lvu_peer_stats(f->dst, &st);
	assert_int_equal(st.state_sets, 0);
	devmig_client_close(d);
	close(fd);
}

/* The source's server gone for good in the middle: its state is reported unknown. */
static void on_unwind_kill_source(void *opaque, const struct devmig_engine_event *ev)
{
	struct fx *f = opaque;
	if (ev->type == DEVMIG_EV_UNWIND && f->src) {
		lvu_peer_stop(f->src);
		f->src = NULL;
	}
}

static void a_source_that_is_gone_is_reported_unknown(void **state)
{
	struct fx *f = *state;
	struct devmig_client *s = connect_to(f->spath), *d = connect_to(f->dpath);
	struct devmig_engine_config cfg = { .event = on_unwind_kill_source, .opaque = f };
	struct devmig_migration_report rep;
	lvu_peer_fault(f->src, LVU_FAULT_DROP_ON_READ, 1);
	assert_true(devmig_migrate_local(&cfg, &s, &d, 1, NULL, NULL, &rep) < 0);
	assert_null(f->src);
	assert_non_null(strstr(rep.error, "source device 0 cannot be reached: its state is unknown"));
	assert_int_equal(rep.src_state[0], DEVMIG_STATE_UNKNOWN);
	assert_int_equal(rep.dst_state[0], DEVMIG_STATE_RUNNING);
	devmig_client_close(s);
	devmig_client_close(d);
}

/* ---- a failure at every step ---- */

struct fault_row {
	const char *name;
	bool on_dst;
	enum lvu_fault fault;
	uint32_t arg;
	bool precopy;
};

static const struct fault_row faults[] = {
	{ "destination refuses RESUMING", true, LVU_FAULT_REFUSE_STATE, DEVMIG_STATE_RESUMING, true },
	{ "source refuses PRE_COPY", false, LVU_FAULT_REFUSE_STATE, DEVMIG_STATE_PRE_COPY, true },
	{ "source hangs up in PRE_COPY", false, LVU_FAULT_DROP_ON_READ, 1, true },
	{ "source sends a bad reply in PRE_COPY", false, LVU_FAULT_BAD_READ_REPLY, 1, true },
	{ "source sends garbage in PRE_COPY", false, LVU_FAULT_GARBAGE_ON_READ, 2, true },
	{ "source refuses STOP_COPY", false, LVU_FAULT_REFUSE_STATE, DEVMIG_STATE_STOP_COPY, true },
	{ "source hangs up in STOP_COPY", false, LVU_FAULT_DROP_ON_READ, 2, false },
	{ "source sends a bad reply in STOP_COPY", false, LVU_FAULT_BAD_READ_REPLY, 1, false },
	{ "source sends garbage in STOP_COPY", false, LVU_FAULT_GARBAGE_ON_READ, 1, false },
	{ "source refuses STOP after STOP_COPY", false, LVU_FAULT_REFUSE_STATE,
	  LVU_ARC(DEVMIG_STATE_STOP_COPY, DEVMIG_STATE_STOP), true },
	{ "destination refuses a write", true, LVU_FAULT_REFUSE_WRITE, 1, true },
	{ "destination hangs up on a write", true, LVU_FAULT_DROP_ON_WRITE, 1, false },
	{ "destination hangs up on a write in PRE_COPY", true, LVU_FAULT_DROP_ON_WRITE, 1, true },
	{ "destination refuses RESUMING->STOP", true, LVU_FAULT_REFUSE_STATE,
	  LVU_ARC(DEVMIG_STATE_RESUMING, DEVMIG_STATE_STOP), true },
	{ "destination refuses RUNNING", true, LVU_FAULT_REFUSE_STATE, DEVMIG_STATE_RUNNING, true },
};

static void a_failure_at_every_step_leaves_the_source_running(void **state)
{
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		const struct fault_row *r = &faults[i];
		/* Fresh devices for each row. */
		lvu_peer_stop(f->src);
		lvu_peer_stop(f->dst);
		f->src = peer_at(f->spath, 0);
		f->dst = peer_at(f->dpath, 0);
		lvu_peer_bar1(f->src, 0, f->pattern, BAR1, true);
		/* The destination has state of its own: afterwards it must be reset, not half-loaded. */
		uint8_t junk[BAR1];
		memset(junk, 0xee, sizeof(junk));
		lvu_peer_bar1(f->dst, 0, junk, BAR1, true);
		lvu_peer_fault(r->on_dst ? f->dst : f->src, r->fault, r->arg);

		struct devmig_migration_report rep;
		int rc = migrate(f, r->precopy, &rep);
		if (!rc)
			fail_msg("%s: the migration succeeded", r->name);
		if (!rep.error[0])
			fail_msg("%s: no error text", r->name);
		if (lvu_peer_state(f->src) != DEVMIG_STATE_RUNNING)
			fail_msg("%s: source left %s (%s)", r->name,
				 devmig_state_name((uint32_t)lvu_peer_state(f->src)), rep.error);
		if (lvu_peer_state(f->dst) != DEVMIG_STATE_RUNNING)
			fail_msg("%s: destination left %s (%s)", r->name,
				 devmig_state_name((uint32_t)lvu_peer_state(f->dst)), rep.error);
		if (rep.src_state[0] != DEVMIG_STATE_RUNNING || rep.dst_state[0] != DEVMIG_STATE_RUNNING)
			fail_msg("%s: the report says source %d, destination %d", r->name,
				 rep.src_state[0], rep.dst_state[0]);
		/* The source kept its state; the destination was reset, whatever it loaded. */
		assert_bar1(f->src, f->pattern);
		assert_int_equal(lvu_peer_scratch(f->src), 0x5c5c);
		uint8_t zero[BAR1] = { 0 };
		assert_bar1(f->dst, zero);
		assert_int_equal(lvu_peer_scratch(f->dst), 0);
		print_message("# %s: %s\n", r->name, rep.error);
	}
}

/* ---- the devmig binary against the peers ---- */

struct run {
	int status;
	char out[16384], err[16384];
};

static void drain(int fd, char *buf, size_t cap, size_t *len)
{
	ssize_t n;
	while (*len + 1 < cap && (n = read(fd, buf + *len, cap - 1 - *len)) > 0)
		*len += (size_t)n;
	buf[*len] = '\0';
}

/* Run the devmig binary with args (NULL-terminated); its exit status and output. */
static void run_devmig(struct run *r, ...)
{
	const char *bin = getenv("DEVMIG_BIN");
	char *argv[32];
	int n = 0;
	va_list ap;

	assert_non_null(bin);
	argv[n++] = (char *)bin;
	va_start(ap, r);
	for (char *a; n < 31 && (a = va_arg(ap, char *));)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;

	int po[2], pe[2];
	assert_int_equal(pipe2(po, O_CLOEXEC), 0);
	assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	size_t ol = 0, el = 0;
	/* Outputs are small: read both to the end, then reap. The peers answer from
	 * their threads meanwhile. */
	drain(po[0], r->out, sizeof(r->out), &ol);
	drain(pe[0], r->err, sizeof(r->err), &el);
	close(po[0]);
	close(pe[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void expect(const struct run *r, int status, const char *in_out, const char *in_err)
{
	if (r->status != status || (in_out && !strstr(r->out, in_out)) ||
	    (in_err && !strstr(r->err, in_err)))
		fail_msg("exit %d (wanted %d)\nstdout: %s\nstderr: %s", r->status, status, r->out,
			 r->err);
}

static void cli_migrate_save_restore_compat_between_peers(void **state)
{
	struct fx *f = *state;
	struct run r;
	char ckpt[160];

	/* compat: the same device by its config space. */
	run_devmig(&r, "compat", "--source", f->spath, "--target", f->dpath, NULL);
	expect(&r, 0, "the same device (dead:beef", NULL);

	/* migrate with PRE_COPY driven by reads (the peer reports no progress). */
	lvu_peer_bar1(f->src, 0, f->pattern, BAR1, true);
	run_devmig(&r, "migrate", "--socket", f->spath, "--to-socket", f->dpath, "--precopy-all",
		   "--json", NULL);
	expect(&r, 0, "\"precopy\":true", NULL);
	assert_bar1(f->dst, f->pattern);
	assert_int_equal(lvu_peer_state(f->src), DEVMIG_STATE_STOP);

	/* The default, back the other way (the old source resumes first): stop and copy. */
	struct devmig_client *c = connect_to(f->spath);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(devmig_client_reset(c), 0);
	devmig_client_close(c);
	assert_true(lvu_peer_wait_idle(f->src, 5000));
	uint8_t other[BAR1];
	for (size_t i = 0; i < BAR1; i++)
		other[i] = (uint8_t)(0xff - f->pattern[i]);
	lvu_peer_bar1(f->dst, 0, other, BAR1, true);
	run_devmig(&r, "migrate", "--socket", f->dpath, "--to-socket", f->spath, NULL);
	expect(&r, 0, "0 pre-copy rounds", NULL);
	assert_bar1(f->src, other);

	/* save from the device now running (src), restore into dst. */
	c = connect_to(f->dpath);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(devmig_client_reset(c), 0);
	devmig_client_close(c);
	assert_true(lvu_peer_wait_idle(f->dst, 5000));
	snprintf(ckpt, sizeof(ckpt), "%s/cli.ckpt", f->dir);
	run_devmig(&r, "save", "--socket", f->spath, "--file", ckpt, NULL);
	expect(&r, 0, "the devices run on", NULL);
	assert_int_equal(lvu_peer_state(f->src), DEVMIG_STATE_RUNNING);
	run_devmig(&r, "restore", "--socket", f->dpath, "--file", ckpt, NULL);
	expect(&r, 0, "restored 1 device", NULL);
	assert_bar1(f->dst, other);
}

/* Start the devmig binary without waiting; its stdout/stderr to files in dir. */
static pid_t start_devmig(const char *out, ...)
{
	const char *bin = getenv("DEVMIG_BIN");
	char *argv[32];
	int n = 0;
	va_list ap;

	argv[n++] = (char *)bin;
	va_start(ap, out);
	for (char *a; n < 31 && (a = va_arg(ap, char *));)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

static int reap(pid_t pid)
{
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void cli_receive_and_migrate_to_between_peers(void **state)
{
	struct fx *f = *state;
	char chan[160], log[160], addr[180];
	snprintf(chan, sizeof(chan), "%s/chan.sock", f->dir);
	snprintf(log, sizeof(log), "%s/receive.log", f->dir);
	snprintf(addr, sizeof(addr), "unix:%s", chan);

	pid_t rx = start_devmig(log, "receive", "--listen", addr, "--socket", f->dpath, NULL);
	struct stat st;
	for (int i = 0; i < 500 && stat(chan, &st); i++)
		usleep(10000);
	struct run r;
	run_devmig(&r, "migrate", "--socket", f->spath, "--to", addr, NULL);
	expect(&r, 0, "migration complete", NULL);
	assert_int_equal(reap(rx), 0);
	assert_bar1(f->dst, f->pattern);

	/* Into a different foreign device: refused by the receiver before anything moves. */
	lvu_peer_stop(f->dst);
	f->dst = peer_at(f->dpath, 3);
	struct devmig_client *c = connect_to(f->spath);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RUNNING), 0);
	devmig_client_close(c);
	assert_true(lvu_peer_wait_idle(f->src, 5000));
	rx = start_devmig(log, "receive", "--listen", addr, "--socket", f->dpath, NULL);
	for (int i = 0; i < 500 && stat(chan, &st); i++)
		usleep(10000);
	run_devmig(&r, "migrate", "--socket", f->spath, "--to", addr, NULL);
	expect(&r, 1, NULL, "revision 00 vs 03");
	expect(&r, 1, NULL, "left: source device 0 (");
	assert_int_equal(reap(rx), 1);
	char buf[4096] = "";
	int lfd = open(log, O_RDONLY);
	assert_true(lfd >= 0);
	ssize_t k = read(lfd, buf, sizeof(buf) - 1);
	close(lfd);
	buf[k > 0 ? k : 0] = '\0';
	if (!strstr(buf, "left: destination device 0 (") || !strstr(buf, ") RUNNING"))
		fail_msg("receive said: %s", buf);
	assert_int_equal(lvu_peer_state(f->src), DEVMIG_STATE_RUNNING);
	struct lvu_peer_stats ps;
	lvu_peer_stats(f->dst, &ps);
	assert_int_equal(ps.state_sets, 0);
}

static void cli_failures_say_where_each_device_was_left(void **state)
{
	struct fx *f = *state;
	struct run r;
	char path[160], err[256];

	/* A devmig counter into the foreign device: refused, nothing moved. */
	snprintf(path, sizeof(path), "%s/counter.sock", f->dir);
	struct devmig_device *dev = devmig_variant_counter.create(NULL, err, sizeof(err));
	struct devmig_server *srv = devmig_server_new(
		dev, &(struct devmig_server_config){ .socket_path = path }, err, sizeof(err));
	assert_non_null(srv);
	assert_int_equal(devmig_server_start(srv), 0);
	run_devmig(&r, "migrate", "--socket", path, "--to-socket", f->dpath, NULL);
	expect(&r, 1, NULL, "different device");
	expect(&r, 1, NULL, "left: source device 0 (");
	expect(&r, 1, NULL, ") RUNNING, destination device 0 (");
	assert_int_equal(lvu_peer_state(f->dst), DEVMIG_STATE_RUNNING);
	assert_int_equal(devmig_device_state(dev), DEVMIG_STATE_RUNNING);
	run_devmig(&r, "compat", "--source", path, "--target", f->dpath, NULL);
	expect(&r, 1, "not compatible: different device", "");
	expect(&r, 1, "left: source RUNNING, target RUNNING", NULL);

	/* A failure in the middle: every device's state in the error. */
	lvu_peer_fault(f->dst, LVU_FAULT_REFUSE_WRITE, 1);
	run_devmig(&r, "migrate", "--socket", f->spath, "--to-socket", f->dpath, NULL);
	expect(&r, 1, NULL, "RUNNING, destination device 0 (");
	assert_int_equal(lvu_peer_state(f->src), DEVMIG_STATE_RUNNING);
	assert_int_equal(lvu_peer_state(f->dst), DEVMIG_STATE_RUNNING);

	/* save whose device refuses STOP_COPY: no file, the device named RUNNING. */
	char ckpt[160];
	snprintf(ckpt, sizeof(ckpt), "%s/fail.ckpt", f->dir);
	lvu_peer_fault(f->src, LVU_FAULT_REFUSE_STATE, DEVMIG_STATE_STOP_COPY);
	run_devmig(&r, "save", "--socket", f->spath, "--file", ckpt, NULL);
	expect(&r, 1, NULL, "left: source device 0 (");
	struct stat st;
	assert_int_not_equal(stat(ckpt, &st), 0);
	assert_int_equal(lvu_peer_state(f->src), DEVMIG_STATE_RUNNING);

	devmig_server_free(srv);
	devmig_variant_counter.free(dev);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		T(client_survives_libvfio_user_replies),
		T(client_keeps_pairing_after_a_refused_reply_in_a_pipeline),
		T(migrate_with_precopy_moves_the_state),
		T(migrate_by_default_stop_copies_a_device_without_progress),
		T(a_held_budget_asks_nothing_of_a_standard_peer),
		T(migrate_without_precopy_moves_the_state),
		T(migrate_guest_memory_logged_by_one_whole_region),
		T(migrate_guest_memory_when_reports_are_refused),
		T(save_and_restore_move_the_state),
		T(devmig_device_into_foreign_device_refused_before_anything_moves),
		T(foreign_devices_that_differ_are_refused),
		T(restore_into_a_different_foreign_device_is_refused),
		T(a_source_that_is_gone_is_reported_unknown),
		T(a_failure_at_every_step_leaves_the_source_running),
		T(cli_migrate_save_restore_compat_between_peers),
		T(cli_receive_and_migrate_to_between_peers),
		T(cli_failures_say_where_each_device_was_left),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
