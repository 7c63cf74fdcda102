/* SPDX-License-Identifier: MIT */
/*
 * A peer whose link is slow on purpose: what it is sent (device data and
 * guest memory) is paced to a rate before it goes to the real peer, so a
 * migration that cannot keep up with its guest reproduces on any machine.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "engine_internal.h"
#include "pace.h"

/* A sender may run this far ahead of the rate. */
#define PACE_BURST_NS (5ull * 1000 * 1000)

struct pace_peer {
	struct peer peer;
	struct peer *inner;
	struct devmig_pace pace;
};

static struct pace_peer *to_pace(struct peer *p)
{
	return (struct pace_peer *)(void *)p;
}

static void pace(struct pace_peer *p, size_t len)
{
	uint64_t wait = devmig_pace_charge(&p->pace, engine_now_ns(), len);
	struct timespec ts = { (time_t)(wait / 1000000000ull), (long)(wait % 1000000000ull) };
	while (wait && nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int p_hello(struct peer *pp, unsigned n, const struct peer_dev *src, uint64_t guest_size,
		   char *why, size_t wl)
{
	struct peer *in = to_pace(pp)->inner;
	return in->ops->hello(in, n, src, guest_size, why, wl);
}

static int p_data(struct peer *pp, unsigned dev, const void *buf, size_t len, char *why, size_t wl)
{
	struct pace_peer *p = to_pace(pp);
	pace(p, len);
	return p->inner->ops->data(p->inner, dev, buf, len, why, wl);
}

static int p_mem(struct peer *pp, uint64_t offset, const void *buf, size_t len, char *why,
		 size_t wl)
{
	struct pace_peer *p = to_pace(pp);
	pace(p, len);
	return p->inner->ops->mem(p->inner, offset, buf, len, why, wl);
}

static int p_initial_done(struct peer *pp, unsigned dev, char *why, size_t wl)
{
	struct peer *in = to_pace(pp)->inner;
	return in->ops->initial_done(in, dev, why, wl);
}

static int p_sync(struct peer *pp, char *why, size_t wl)
{
	struct peer *in = to_pace(pp)->inner;
	return in->ops->sync(in, why, wl);
}

static int p_commit(struct peer *pp, char *why, size_t wl)
{
	struct peer *in = to_pace(pp)->inner;
	return in->ops->commit(in, why, wl);
}

static int p_run(struct peer *pp, char *why, size_t wl)
{
	struct peer *in = to_pace(pp)->inner;
	return in->ops->run(in, why, wl);
}

static void p_abort(struct peer *pp, const char *why)
{
	struct peer *in = to_pace(pp)->inner;
	in->ops->abort(in, why);
}

static int p_end(struct peer *pp, char *why, size_t wl)
{
	struct peer *in = to_pace(pp)->inner;
	return in->ops->end(in, why, wl);
}

static const struct peer_ops pace_ops = {
	.hello = p_hello,
	.data = p_data,
	.mem = p_mem,
	.initial_done = p_initial_done,
	.sync = p_sync,
	.commit = p_commit,
	.run = p_run,
	.abort = p_abort,
	.end = p_end,
};

struct peer *pace_peer_new(struct peer *inner, uint64_t rate)
{
	struct pace_peer *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->peer.ops = &pace_ops;
	p->inner = inner;
	devmig_pace_init(&p->pace, rate, PACE_BURST_NS);
	return &p->peer;
}

void pace_peer_free(struct peer *p)
{
	free(p);
}
