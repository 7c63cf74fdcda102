/* SPDX-License-Identifier: MIT */
/*
 * The core's migration plumbing, over a real socket, with a probe variant
 * that records every arc the core asks of it, can be told to fail one, and
 * streams a state with PRE_COPY progress.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "devmig/client.h"
#include "devmig/device.h"
#include "devmig/server.h"
#include "fixture.h"

#define STATE_BYTES (300u * 1024)
#define PIECE (32u * 1024)
#define MAX_ARCS 64
#define REC_DATA 1 /* u32 offset, then state bytes */

struct probe {
	struct devmig_device dev;
	/* the arcs the core asked for, in order, and the state published in each */
	struct { enum devmig_state from, to, published; } arcs[MAX_ARCS];
	int narcs;
	/* fail the arc from fail_from to fail_to (fail_times times, <0: always);
	 * broken puts the device in ERROR */
	int fail_from, fail_to, fail_times;
	bool fail_broken;
	/* state: STATE_BYTES of data, streamed as records; sent counts the first pass */
	uint8_t *state;
	size_t sent;
	/* loading: staged bytes, applied by load_apply */
	uint8_t *staged;
	size_t staged_len;
	int checks, applies, aborts;
};

static struct probe *to_probe(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct probe, dev);
}

static int probe_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	(void)dev;
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10fe);
	if (!rc)
		rc = devmig_pci_set_intx_pin(cfg, 1);
	return rc ? rc : devmig_pci_set_bar(cfg, 0, 4096, 0);
}

static int probe_arc(struct devmig_device *dev, enum devmig_state from, enum devmig_state to,
		     struct devmig_arc_result *res)
{
	struct probe *p = to_probe(dev);

	if ((int)from == p->fail_from && (int)to == p->fail_to && p->fail_times) {
		if (p->fail_times > 0)
			p->fail_times--;
		res->broken = p->fail_broken;
		snprintf(res->why, sizeof(res->why), "probe refuses %s->%s",
			 devmig_state_name(from), devmig_state_name(to));
		return -EIO;
	}
	if (p->narcs < MAX_ARCS) {
		p->arcs[p->narcs].from = from;
		p->arcs[p->narcs].to = to;
		p->arcs[p->narcs].published = devmig_device_state(dev);
		p->narcs++;
	}
	if (devmig_arc_session(from, to) == DEVMIG_ARC_OPEN_SAVE)
		p->sent = 0;
	return 0;
}

/* The state as records of up to PIECE bytes, while the core has room. */
static int probe_save(struct devmig_device *dev, struct devmig_save *s)
{
	struct probe *p = to_probe(dev);

	while (p->sent < STATE_BYTES && devmig_save_room(s)) {
		size_t n = STATE_BYTES - p->sent < PIECE ? STATE_BYTES - p->sent : PIECE;
		uint32_t off = (uint32_t)p->sent;
		int rc = devmig_save_record_ref(s, REC_DATA, &off, 4, p->state + p->sent, n);
		if (rc)
			return rc;
		p->sent += n;
	}
	return 0;
}

/* The core's figures plus the state not sent yet. */
static void probe_precopy_info(struct devmig_device *dev, uint64_t *initial, uint64_t *dirty)
{
	struct probe *p = to_probe(dev);

	devmig_device_default_precopy_info(dev, initial, dirty);
	*initial += STATE_BYTES - p->sent;
}

static uint64_t probe_stop_copy_size(struct devmig_device *dev)
{
	struct probe *p = to_probe(dev);
	/* Outside a save session the next one sends everything; each record
	 * carries PIECE bytes and its 4-byte offset. */
	uint64_t left = devmig_state_is_saving(devmig_device_state(dev)) ? STATE_BYTES - p->sent
									  : STATE_BYTES;
	return devmig_device_default_stop_copy_size(dev) + left +
	       (left + PIECE - 1) / PIECE * (DEVMIG_RECORD_OVERHEAD + 4);
}

static int probe_load(struct devmig_device *dev, unsigned type, const void *data, size_t len,
		      char *why, size_t whylen)
{
	struct probe *p = to_probe(dev);
	uint32_t off;

	if (type != REC_DATA || len < 4) {
		snprintf(why, whylen, "probe: record type %u of %zu bytes", type, len);
		return -EINVAL;
	}
	memcpy(&off, data, 4);
	if (off != p->staged_len || len - 4 > STATE_BYTES - p->staged_len) {
		snprintf(why, whylen, "probe: state record at %u, expected %zu", off, p->staged_len);
		return -EINVAL;
	}
	memcpy(p->staged + off, (const uint8_t *)data + 4, len - 4);
	p->staged_len += len - 4;
	return 0;
}

static int probe_load_check(struct devmig_device *dev, char *why, size_t whylen)
{
	struct probe *p = to_probe(dev);

	p->checks++;
	if (p->staged_len != STATE_BYTES) {
		snprintf(why, whylen, "probe state incomplete: %zu of %u bytes", p->staged_len,
			 STATE_BYTES);
		return -EINVAL;
	}
	return 0;
}

static void probe_load_apply(struct devmig_device *dev)
{
	struct probe *p = to_probe(dev);

	memcpy(p->state, p->staged, STATE_BYTES);
	p->staged_len = 0;
	p->applies++;
}

static void probe_load_abort(struct devmig_device *dev)
{
	struct probe *p = to_probe(dev);
	p->staged_len = 0;
	p->aborts++;
}

static const struct devmig_device_id probe_id = { .name = "probe", .version = "probe-1" };
static const struct devmig_device_ops probe_ops = { .realize = probe_realize };

static const struct devmig_migration_ops probe_mig_all = {
	.caps = DEVMIG_MIG_ALL,
	.arc = probe_arc,
	.save = probe_save,
	.precopy_info = probe_precopy_info,
	.stop_copy_size = probe_stop_copy_size,
	.load = probe_load,
	.load_check = probe_load_check,
	.load_apply = probe_load_apply,
	.load_abort = probe_load_abort,
};

static const struct devmig_migration_ops probe_mig_nop2p = {
	.caps = DEVMIG_MIG_STOP_COPY,
	.arc = probe_arc,
	.save = probe_save,
	.load = probe_load,
	.load_check = probe_load_check,
	.load_apply = probe_load_apply,
	.load_abort = probe_load_abort,
};

struct side {
	struct probe p;
	struct fx_server fx;
	struct devmig_client *c;
};

struct fx {
	char dir[FX_PATH_MAX];
	struct side src, dst;
};

static void side_up(struct fx *f, struct side *s, const char *name,
		    const struct devmig_migration_ops *mig, uint8_t fill)
{
	memset(&s->p, 0, sizeof(s->p));
	s->p.fail_from = s->p.fail_to = -1;
	s->p.fail_times = -1;
	s->p.state = malloc(STATE_BYTES);
	s->p.staged = malloc(STATE_BYTES);
	assert_non_null(s->p.state);
	for (size_t i = 0; i < STATE_BYTES; i++)
		s->p.state[i] = (uint8_t)(fill + i * 7);
	s->p.dev.id = &probe_id;
	s->p.dev.ops = &probe_ops;
	s->p.dev.mig = mig;
	assert_int_equal(devmig_device_init(&s->p.dev), 0);
	fx_serve(&s->fx, f->dir, name, &s->p.dev);
	s->c = fx_connect(&s->fx, NULL);
}

static void side_down(struct side *s)
{
	devmig_client_close(s->c);
	fx_unserve(&s->fx);
	devmig_device_destroy(&s->p.dev);
	free(s->p.state);
	free(s->p.staged);
}

static struct fx *fx_new(const struct devmig_migration_ops *mig)
{
	struct fx *f = calloc(1, sizeof(*f));
	fx_tmpdir(f->dir, "core");
	side_up(f, &f->src, "src", mig, 1);
	side_up(f, &f->dst, "dst", mig, 99);
	return f;
}

static int setup_all(void **state)
{
	*state = fx_new(&probe_mig_all);
	return 0;
}

static int setup_nop2p(void **state)
{
	*state = fx_new(&probe_mig_nop2p);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	side_down(&f->src);
	side_down(&f->dst);
	fx_rmdir(f->dir);
	free(f);
	return 0;
}

static enum devmig_state state_of(struct side *s)
{
	enum devmig_state st = DEVMIG_STATE_ERROR;
	assert_int_equal(devmig_client_get_state(s->c, &st), 0);
	return st;
}

static void expect_arcs(struct probe *p, const enum devmig_state *want, int n)
{
	assert_int_equal(p->narcs, n);
	for (int i = 0; i < n; i++) {
		assert_int_equal(p->arcs[i].from, want[i]);
		assert_int_equal(p->arcs[i].to, want[i + 1]);
		/* the state being entered was published before the arc ran */
		assert_int_equal(p->arcs[i].published, want[i + 1]);
	}
	p->narcs = 0;
}

/* Read everything the source has now (PRE_COPY) or to the end (STOP_COPY). */
static size_t drain(struct side *s, uint8_t *buf, size_t cap, size_t piece)
{
	size_t got = 0;
	for (;;) {
		assert_true(got + piece <= cap);
		ssize_t n = devmig_client_mig_read(s->c, buf + got, piece);
		assert_true(n >= 0);
		got += (size_t)n;
		if ((size_t)n < piece)
			return got;
	}
}

/* ---- tests ---- */

static void multi_hop_calls_every_arc_in_order(void **state)
{
	struct fx *f = *state;
	static const enum devmig_state down[] = {
		DEVMIG_STATE_RUNNING, DEVMIG_STATE_RUNNING_P2P, DEVMIG_STATE_STOP,
		DEVMIG_STATE_STOP_COPY,
	};
	static const enum devmig_state up[] = {
		DEVMIG_STATE_STOP_COPY, DEVMIG_STATE_STOP, DEVMIG_STATE_RUNNING_P2P,
		DEVMIG_STATE_RUNNING,
	};

	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP_COPY), 0);
	expect_arcs(&f->src.p, down, 3);
	assert_int_equal(state_of(&f->src), DEVMIG_STATE_STOP_COPY);
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_RUNNING), 0);
	expect_arcs(&f->src.p, up, 3);
}

static void without_p2p_the_path_skips_p2p_states(void **state)
{
	struct fx *f = *state;
	static const enum devmig_state down[] = {
		DEVMIG_STATE_RUNNING, DEVMIG_STATE_STOP, DEVMIG_STATE_STOP_COPY,
	};

	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP_COPY), 0);
	expect_arcs(&f->src.p, down, 2);
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_RUNNING_P2P), -EINVAL);
	assert_int_equal(state_of(&f->src), DEVMIG_STATE_STOP_COPY);
	assert_int_equal(f->src.p.narcs, 0);
}

static void failed_arc_leaves_last_state_reached(void **state)
{
	struct fx *f = *state;

	f->src.p.fail_from = DEVMIG_STATE_STOP;
	f->src.p.fail_to = DEVMIG_STATE_STOP_COPY;
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP_COPY), -EIO);
	/* RUNNING->RUNNING_P2P->STOP happened; nothing was rolled back. */
	assert_int_equal(state_of(&f->src), DEVMIG_STATE_STOP);
	assert_int_equal(f->src.p.narcs, 2);
	/* The user unwinds. */
	f->src.p.fail_from = -1;
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(state_of(&f->src), DEVMIG_STATE_RUNNING);
}

static void broken_arc_goes_to_error_and_only_reset_recovers(void **state)
{
	struct fx *f = *state;

	f->src.p.fail_from = DEVMIG_STATE_RUNNING_P2P;
	f->src.p.fail_to = DEVMIG_STATE_STOP;
	f->src.p.fail_broken = true;
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP), -EIO);
	assert_int_equal(state_of(&f->src), DEVMIG_STATE_ERROR);
	for (int s = DEVMIG_STATE_STOP; s <= DEVMIG_STATE_PRE_COPY_P2P; s++)
		assert_int_equal(devmig_client_set_state(f->src.c, s), -EINVAL);
	assert_int_equal(state_of(&f->src), DEVMIG_STATE_ERROR);
	assert_int_equal(devmig_client_reset(f->src.c), 0);
	assert_int_equal(state_of(&f->src), DEVMIG_STATE_RUNNING);
}

static void stop_copy_to_pre_copy_is_refused_and_changes_nothing(void **state)
{
	struct fx *f = *state;

	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP_COPY), 0);
	f->src.p.narcs = 0;
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_PRE_COPY), -EINVAL);
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_PRE_COPY_P2P), -EINVAL);
	assert_int_equal(state_of(&f->src), DEVMIG_STATE_STOP_COPY);
	assert_int_equal(f->src.p.narcs, 0);
}

static void pre_copy_progress_falls_to_zero_then_stop_copy_completes(void **state)
{
	struct fx *f = *state;
	size_t cap = 4u << 20;
	uint8_t *stream = malloc(cap);
	uint64_t initial, dirty, stop_copy;

	assert_true(devmig_client_has_ext(f->src.c, DEVMIG_EXT_PRECOPY_INFO));
	/* Progress is refused outside PRE_COPY. */
	assert_int_equal(devmig_client_precopy_info(f->src.c, &initial, &dirty), -EINVAL);
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_PRE_COPY), 0);
	assert_int_equal(devmig_client_precopy_info(f->src.c, &initial, &dirty), 0);
	/* The device's bytes plus the header framing already queued. */
	assert_true(initial >= STATE_BYTES && initial < STATE_BYTES + 256);
	assert_int_equal(dirty, 0);

	/* Read part of the initial data: initial_bytes falls by exactly the device bytes read. */
	ssize_t n = devmig_client_mig_read(f->src.c, stream, 64 * 1024);
	assert_int_equal(n, 64 * 1024);
	assert_int_equal(devmig_client_precopy_info(f->src.c, &initial, &dirty), 0);
	assert_true(initial < STATE_BYTES && initial > STATE_BYTES - 64 * 1024);
	size_t got = (size_t)n + drain(&f->src, stream + n, cap - (size_t)n, 4096);
	assert_int_equal(devmig_client_precopy_info(f->src.c, &initial, &dirty), 0);
	assert_int_equal(initial, 0);
	assert_int_equal(dirty, 0);
	/* Both zero: a read now is empty (the temporary end of stream). */
	assert_int_equal(devmig_client_mig_read(f->src.c, stream + got, 4096), 0);

	assert_int_equal(devmig_client_stop_copy_size(f->src.c, &stop_copy), 0);
	assert_true(stop_copy > 0 && stop_copy < 64 * 1024); /* only config and framing left */
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP_COPY), 0);
	got += drain(&f->src, stream + got, cap - got, 1u << 20);

	/* The destination loads it cut in odd pieces and ends up equal. */
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RESUMING), 0);
	for (size_t off = 0; off < got; off += 777) {
		size_t k = got - off < 777 ? got - off : 777;
		assert_int_equal(devmig_client_mig_write(f->dst.c, stream + off, k), 0);
	}
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RUNNING), 0);
	assert_memory_equal(f->dst.p.state, f->src.p.state, STATE_BYTES);
	assert_int_equal(f->dst.p.applies, 1);
	free(stream);
}

/*
 * MIG_DATA_SIZE in STOP bounds the STOP_COPY stream that follows, whatever
 * sizes it is read in (the framing: magic, header, records, config, end),
 * and is no gross over-estimate.
 */
static void stop_copy_size_bounds_the_stream_whatever_the_reads(void **state)
{
	struct fx *f = *state;
	static const size_t pieces[] = { 1, 100, 1035, 1500, 4096, 64 * 1024, 1u << 20 };
	size_t cap = STATE_BYTES + (64u << 10) + (1u << 20);
	uint8_t *stream = malloc(cap);

	assert_non_null(stream);
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP), 0);
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		uint64_t est;
		assert_int_equal(devmig_client_stop_copy_size(f->src.c, &est), 0);
		assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP_COPY), 0);
		size_t got = drain(&f->src, stream, cap, pieces[i]);
		assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP), 0);
		print_message("# reads of %zu B: stream %zu B, estimate %llu B\n", pieces[i], got,
			      (unsigned long long)est);
		assert_true(got > STATE_BYTES);
		assert_true(est >= got);
		assert_true(est - got <= got / 64 + 4096);
	}
	free(stream);
}

static void bad_stream_is_refused_at_resuming_to_stop_and_nothing_applied(void **state)
{
	struct fx *f = *state;
	size_t cap = 4u << 20;
	uint8_t *stream = malloc(cap);
	uint8_t *before = malloc(STATE_BYTES);

	memcpy(before, f->dst.p.state, STATE_BYTES);
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP_COPY), 0);
	size_t got = drain(&f->src, stream, cap, 1u << 20);

	/* Truncated: every write accepted, the commit refused. */
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(f->dst.c, stream, got - 100), 0);
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_STOP), -EINVAL);
	/* Still RESUMING with a fresh load session; nothing applied. */
	assert_int_equal(state_of(&f->dst), DEVMIG_STATE_RESUMING);
	assert_memory_equal(f->dst.p.state, before, STATE_BYTES);
	assert_int_equal(f->dst.p.applies, 0);
	assert_true(f->dst.p.aborts >= 1);

	/* Corrupted: refused at the write and again at the commit. */
	stream[got / 2] ^= 0x40;
	int rc = devmig_client_mig_write(f->dst.c, stream, got);
	assert_int_equal(rc, -EINVAL);
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_STOP), -EINVAL);
	assert_memory_equal(f->dst.p.state, before, STATE_BYTES);
	stream[got / 2] ^= 0x40;

	/* The whole good stream now loads. */
	assert_int_equal(devmig_client_mig_write(f->dst.c, stream, got), 0);
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_STOP), 0);
	assert_memory_equal(f->dst.p.state, f->src.p.state, STATE_BYTES);
	free(stream);
	free(before);
}

static void stream_from_another_device_model_is_refused(void **state)
{
	struct fx *f = *state;
	uint8_t stream[8192];

	/* A counter-like header: patch the device name in the HEADER record. */
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP_COPY), 0);
	ssize_t n = devmig_client_mig_read(f->src.c, stream, 200);
	assert_int_equal(n, 200);
	uint8_t *name = memmem(stream, (size_t)n, "probe", 5);
	assert_non_null(name);
	name[0] = 'P';
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RESUMING), 0);
	/* The CRC catches the edit first: the header never reaches the check. */
	assert_int_equal(devmig_client_mig_write(f->dst.c, stream, (size_t)n), -EINVAL);
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_STOP), -EINVAL);
	assert_int_equal(f->dst.p.applies, 0);
}

static void reset_mid_load_aborts_and_returns_to_running(void **state)
{
	struct fx *f = *state;
	uint8_t chunk[4096] = { 0 };

	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RESUMING), 0);
	memcpy(chunk, "DMIGSTRM", 8);
	assert_int_equal(devmig_client_mig_write(f->dst.c, chunk, 8), 0);
	assert_int_equal(devmig_client_reset(f->dst.c), 0);
	assert_int_equal(state_of(&f->dst), DEVMIG_STATE_RUNNING);
	assert_int_equal(f->dst.p.aborts, 1);
	assert_int_equal(devmig_client_mig_write(f->dst.c, chunk, 8), -EINVAL);
}

static void client_reconnect_keeps_the_migration_state(void **state)
{
	struct fx *f = *state;
	char err[256];

	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP), 0);
	devmig_client_close(f->src.c);
	f->src.c = devmig_client_connect(f->src.fx.path, NULL, err, sizeof(err));
	assert_non_null(f->src.c);
	assert_int_equal(state_of(&f->src), DEVMIG_STATE_STOP);
}

struct acc {
	uint8_t *buf;
	size_t len;
};

static int append_sink(void *opaque, const void *data, size_t len)
{
	struct acc *acc = opaque;
	memcpy(acc->buf + acc->len, data, len);
	acc->len += len;
	return 0;
}

static void pipelined_stream_read_equals_plain_reads(void **state)
{
	struct fx *f = *state;
	struct acc acc = { malloc(2 * STATE_BYTES), 0 };
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP_COPY), 0);
	ssize_t n = devmig_client_mig_read_stream(f->src.c, 64 * 1024, 4, 0, NULL, append_sink, &acc);
	assert_true(n > (ssize_t)STATE_BYTES);
	assert_int_equal((size_t)n, acc.len);
	/* A read after the end is empty, and the stream loads. */
	assert_int_equal(devmig_client_mig_read(f->src.c, acc.buf, 16), 0);
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(f->dst.c, acc.buf, acc.len), 0);
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RUNNING), 0);
	assert_memory_equal(f->dst.p.state, f->src.p.state, STATE_BYTES);
	free(acc.buf);
}


static void nowait_writes_then_status_reports_the_load(void **state)
{
	struct fx *f = *state;
	uint8_t *stream = malloc(4u << 20);
	uint64_t bytes;
	int load_error;
	char reason[256];

	assert_true(devmig_client_has_ext(f->dst.c, DEVMIG_EXT_MIG_STATUS));
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP_COPY), 0);
	size_t got = drain(&f->src, stream, 4u << 20, 1u << 20);

	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RESUMING), 0);
	for (size_t off = 0; off < got; off += 65536)
		assert_int_equal(devmig_client_mig_write_nowait(f->dst.c, stream + off,
								got - off < 65536 ? got - off : 65536), 0);
	assert_int_equal(devmig_client_mig_status(f->dst.c, &bytes, &load_error, reason,
						  sizeof(reason)), 0);
	assert_int_equal(bytes, got);
	assert_int_equal(load_error, 0);
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RUNNING), 0);
	assert_memory_equal(f->dst.p.state, f->src.p.state, STATE_BYTES);

	/* A corrupted stream: the unanswered writes fail silently, the status says why. */
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RESUMING), 0);
	stream[got / 3] ^= 1;
	assert_int_equal(devmig_client_mig_write_nowait(f->dst.c, stream, got), 0);
	assert_int_equal(devmig_client_mig_status(f->dst.c, &bytes, &load_error, reason,
						  sizeof(reason)), 0);
	assert_int_equal(load_error, -EINVAL);
	assert_true(bytes < got);
	assert_non_null(strstr(reason, "CRC mismatch"));
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_STOP), -EINVAL);
	free(stream);
}

/* ---- RESUMING->STOP: check, arc, then apply ---- */

static uint16_t command_of(struct side *s)
{
	uint16_t cmd = 0xffff;
	assert_int_equal(devmig_client_region_read(s->c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
						   &cmd, 2), 0);
	return cmd;
}

/* The source's stream, whole, with its config space's COMMAND set. */
static size_t source_stream(struct fx *f, uint8_t *stream, size_t cap)
{
	uint16_t cmd = PCI_COMMAND_MEMORY;
	assert_int_equal(devmig_client_region_write(f->src.c, VFIO_PCI_CONFIG_REGION_INDEX,
						    PCI_COMMAND, &cmd, 2), 0);
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP_COPY), 0);
	return drain(&f->src, stream, cap, 1u << 20);
}

static void failed_resuming_to_stop_applies_nothing_and_a_retry_applies_once(void **state)
{
	struct fx *f = *state;
	uint8_t *stream = malloc(4u << 20), *before = malloc(STATE_BYTES);
	size_t got = source_stream(f, stream, 4u << 20);

	memcpy(before, f->dst.p.state, STATE_BYTES);
	assert_int_equal(command_of(&f->dst), 0);
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(f->dst.c, stream, got), 0);
	f->dst.p.fail_from = DEVMIG_STATE_RESUMING;
	f->dst.p.fail_to = DEVMIG_STATE_STOP;
	f->dst.p.fail_times = 1;
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_STOP), -EIO);
	/* checked, refused by the arc: nothing applied, neither state nor config */
	assert_int_equal(state_of(&f->dst), DEVMIG_STATE_RESUMING);
	assert_int_equal(f->dst.p.checks, 1);
	assert_int_equal(f->dst.p.applies, 0);
	assert_int_equal(f->dst.p.aborts, 0);
	assert_memory_equal(f->dst.p.state, before, STATE_BYTES);
	assert_int_equal(command_of(&f->dst), 0);
	/* the retry checks again and applies once */
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_STOP), 0);
	assert_int_equal(f->dst.p.checks, 2);
	assert_int_equal(f->dst.p.applies, 1);
	assert_memory_equal(f->dst.p.state, f->src.p.state, STATE_BYTES);
	assert_int_equal(command_of(&f->dst), PCI_COMMAND_MEMORY);
	free(stream);
	free(before);
}

static void broken_resuming_to_stop_drops_the_load(void **state)
{
	struct fx *f = *state;
	uint8_t *stream = malloc(4u << 20), *before = malloc(STATE_BYTES);
	size_t got = source_stream(f, stream, 4u << 20);

	memcpy(before, f->dst.p.state, STATE_BYTES);
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(f->dst.c, stream, got), 0);
	f->dst.p.fail_from = DEVMIG_STATE_RESUMING;
	f->dst.p.fail_to = DEVMIG_STATE_STOP;
	f->dst.p.fail_broken = true;
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_STOP), -EIO);
	assert_int_equal(state_of(&f->dst), DEVMIG_STATE_ERROR);
	assert_int_equal(f->dst.p.applies, 0);
	assert_int_equal(f->dst.p.aborts, 1);
	assert_memory_equal(f->dst.p.state, before, STATE_BYTES);
	assert_int_equal(command_of(&f->dst), 0);
	assert_int_equal(devmig_client_reset(f->dst.c), 0);
	assert_int_equal(state_of(&f->dst), DEVMIG_STATE_RUNNING);
	free(stream);
	free(before);
}

/* ---- interrupts while the device may not signal ---- */

static int intx_eventfd(struct side *s)
{
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(efd >= 0);
	assert_int_equal(devmig_client_set_irqs(s->c, VFIO_PCI_INTX_IRQ_INDEX,
						VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
						0, 1, &efd), 0);
	return efd;
}

static uint64_t fired(int efd)
{
	uint64_t n = 0;
	return read(efd, &n, sizeof(n)) == sizeof(n) ? n : 0;
}

static void interrupt_raised_while_stopped_is_held_then_delivered(void **state)
{
	struct fx *f = *state;
	int efd = intx_eventfd(&f->src);

	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP), 0);
	assert_int_equal(devmig_device_irq(&f->src.p.dev, 0), 0);
	assert_int_equal(fired(efd), 0);
	/* RUNNING_P2P may signal: it is delivered on the way */
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_RUNNING_P2P), 0);
	assert_int_equal(fired(efd), 1);
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(fired(efd), 0);
	close(efd);
}

static void held_interrupt_travels_and_fires_on_the_destination(void **state)
{
	struct fx *f = *state;
	uint8_t *stream = malloc(4u << 20);
	int dst_efd = intx_eventfd(&f->dst);

	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP), 0);
	assert_int_equal(devmig_device_irq(&f->src.p.dev, 0), 0);
	assert_int_equal(devmig_client_set_state(f->src.c, DEVMIG_STATE_STOP_COPY), 0);
	size_t got = drain(&f->src, stream, 4u << 20, 1u << 20);
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(f->dst.c, stream, got), 0);
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_STOP), 0);
	assert_int_equal(fired(dst_efd), 0);
	assert_int_equal(devmig_client_set_state(f->dst.c, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(fired(dst_efd), 1);
	close(dst_efd);
	free(stream);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(multi_hop_calls_every_arc_in_order, setup_all, teardown),
		cmocka_unit_test_setup_teardown(without_p2p_the_path_skips_p2p_states, setup_nop2p,
						teardown),
		cmocka_unit_test_setup_teardown(failed_arc_leaves_last_state_reached, setup_all, teardown),
		cmocka_unit_test_setup_teardown(broken_arc_goes_to_error_and_only_reset_recovers,
						setup_all, teardown),
		cmocka_unit_test_setup_teardown(stop_copy_to_pre_copy_is_refused_and_changes_nothing,
						setup_all, teardown),
		cmocka_unit_test_setup_teardown(pre_copy_progress_falls_to_zero_then_stop_copy_completes,
						setup_all, teardown),
		cmocka_unit_test_setup_teardown(
			bad_stream_is_refused_at_resuming_to_stop_and_nothing_applied, setup_all, teardown),
		cmocka_unit_test_setup_teardown(stop_copy_size_bounds_the_stream_whatever_the_reads,
						setup_all, teardown),
		cmocka_unit_test_setup_teardown(stream_from_another_device_model_is_refused, setup_all,
						teardown),
		cmocka_unit_test_setup_teardown(reset_mid_load_aborts_and_returns_to_running, setup_all,
						teardown),
		cmocka_unit_test_setup_teardown(client_reconnect_keeps_the_migration_state, setup_all,
						teardown),
		cmocka_unit_test_setup_teardown(pipelined_stream_read_equals_plain_reads, setup_all,
						teardown),
		cmocka_unit_test_setup_teardown(nowait_writes_then_status_reports_the_load, setup_all,
						teardown),
		cmocka_unit_test_setup_teardown(
			failed_resuming_to_stop_applies_nothing_and_a_retry_applies_once, setup_all,
			teardown),
		cmocka_unit_test_setup_teardown(broken_resuming_to_stop_drops_the_load, setup_all,
						teardown),
		cmocka_unit_test_setup_teardown(interrupt_raised_while_stopped_is_held_then_delivered,
						setup_all, teardown),
		cmocka_unit_test_setup_teardown(held_interrupt_travels_and_fires_on_the_destination,
						setup_all, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
