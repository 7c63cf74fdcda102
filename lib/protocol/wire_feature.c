/* SPDX-License-Identifier: MIT */
/*
 * DEVICE_FEATURE payloads: struct vfio_device_feature (argsz, flags) and
 * the data of each migration feature, in requests and replies.
 */
#include <errno.h>
#include <string.h>

#include "devmig/migration.h"
#include "wire_internal.h"

#define E(x) DEVMIG_WIRE_E_##x
#define OK DEVMIG_WIRE_OK

#define OPS (DEVMIG_FEATURE_GET | DEVMIG_FEATURE_SET | DEVMIG_FEATURE_PROBE)

struct feat_desc {
	uint32_t index;
	uint32_t ops;      /* DEVMIG_FEATURE_GET / _SET it supports */
	uint32_t get_len;  /* GET reply data (REPORT: the fixed 24, bitmap follows) */
};

static const struct feat_desc feats[] = {
	{ DEVMIG_FEATURE_MIGRATION, DEVMIG_FEATURE_GET,
	  sizeof(struct devmig_feature_migration) },
	{ DEVMIG_FEATURE_MIG_DEVICE_STATE, DEVMIG_FEATURE_GET | DEVMIG_FEATURE_SET,
	  sizeof(struct devmig_feature_mig_state) },
	{ DEVMIG_FEATURE_DMA_LOGGING_START, DEVMIG_FEATURE_SET, 0 },
	{ DEVMIG_FEATURE_DMA_LOGGING_STOP, DEVMIG_FEATURE_SET, 0 },
	{ DEVMIG_FEATURE_DMA_LOGGING_REPORT, DEVMIG_FEATURE_GET,
	  sizeof(struct devmig_feature_dma_logging_report) },
	{ DEVMIG_FEATURE_MIG_DATA_SIZE, DEVMIG_FEATURE_GET,
	  sizeof(struct devmig_feature_mig_data_size) },
	{ DEVMIG_FEATURE_PRECOPY_INFO, DEVMIG_FEATURE_GET,
	  sizeof(struct devmig_feature_precopy_info) },
	{ DEVMIG_FEATURE_MIG_STATUS, DEVMIG_FEATURE_GET,
	  sizeof(struct devmig_feature_mig_status) },
	{ DEVMIG_FEATURE_COMPAT, DEVMIG_FEATURE_GET, sizeof(struct devmig_feature_compat) },
	{ DEVMIG_FEATURE_MIG_STATE_DEADLINE, DEVMIG_FEATURE_SET, 0 },
	{ DEVMIG_FEATURE_ARC_ESTIMATES, DEVMIG_FEATURE_GET,
	  sizeof(struct devmig_feature_arc_estimates) },
	{ DEVMIG_FEATURE_DIRTY_RATE, DEVMIG_FEATURE_GET | DEVMIG_FEATURE_SET,
	  sizeof(struct devmig_feature_dirty_rate) },
};

static const struct feat_desc *feat_lookup(uint32_t index)
{
	for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++)
		if (feats[i].index == index)
			return &feats[i];
	return NULL;
}

/* Which typed member carries the data of this (flags, direction). */
enum typed {
	T_NONE,
	T_MIGRATION,
	T_MIG_STATE,
	T_LOG_START,
	T_REPORT_REQ,
	T_REPORT_REP,
	T_DATA_SIZE,
	T_PRECOPY,
	T_MIG_STATUS,
	T_COMPAT,
	T_DEADLINE_REQ,  /* SET MIG_STATE_DEADLINE request: its first 16 bytes */
	T_DEADLINE_REP,  /* SET MIG_STATE_DEADLINE reply: the outcome */
	T_ESTIMATES,
	T_DIRTY_CAP,     /* SET DIRTY_RATE, request and echo: the cap */
	T_DIRTY_RATE,    /* GET DIRTY_RATE reply */
};

static enum typed typed_kind(uint32_t flags, bool reply)
{
	uint32_t index = flags & DEVMIG_FEATURE_MASK;

	if (flags & DEVMIG_FEATURE_PROBE)
		return T_NONE;
	if (flags & DEVMIG_FEATURE_GET) {
		switch (index) {
		case DEVMIG_FEATURE_DMA_LOGGING_REPORT:
			return reply ? T_REPORT_REP : T_REPORT_REQ;
		case DEVMIG_FEATURE_MIGRATION:
			return reply ? T_MIGRATION : T_NONE;
		case DEVMIG_FEATURE_MIG_DEVICE_STATE:
			return reply ? T_MIG_STATE : T_NONE;
		case DEVMIG_FEATURE_MIG_DATA_SIZE:
			return reply ? T_DATA_SIZE : T_NONE;
		case DEVMIG_FEATURE_PRECOPY_INFO:
			return reply ? T_PRECOPY : T_NONE;
		case DEVMIG_FEATURE_MIG_STATUS:
			return reply ? T_MIG_STATUS : T_NONE;
		case DEVMIG_FEATURE_COMPAT:
			return reply ? T_COMPAT : T_NONE;
		case DEVMIG_FEATURE_ARC_ESTIMATES:
			return reply ? T_ESTIMATES : T_NONE;
		case DEVMIG_FEATURE_DIRTY_RATE:
			return reply ? T_DIRTY_RATE : T_NONE;
		}
		return T_NONE;
	}
	if (flags & DEVMIG_FEATURE_SET) {
		switch (index) {
		case DEVMIG_FEATURE_MIG_DEVICE_STATE:
			return T_MIG_STATE;
		case DEVMIG_FEATURE_DMA_LOGGING_START:
			return T_LOG_START;
		case DEVMIG_FEATURE_MIG_STATE_DEADLINE:
			return reply ? T_DEADLINE_REP : T_DEADLINE_REQ;
		case DEVMIG_FEATURE_DIRTY_RATE:
			return T_DIRTY_CAP;
		}
	}
	return T_NONE;
}

/*
 * The kernel's rule for every feature (vfio_check_feature): the data must
 * hold what the feature needs; anything beyond is ignored.
 */
static enum devmig_wire_err at_least(uint64_t have, uint64_t need)
{
	return have < need ? E(SHORT) : OK;
}

/* The REPORT fields, request or reply. */
static enum devmig_wire_err check_report(const struct devmig_feature_dma_logging_report *r)
{
	if (!devmig__page_size_ok(r->page_size))
		return E(PAGE_SIZE);
	if (r->length == 0)
		return E(FIELD);
	if (devmig__wraps64(r->iova, r->length))
		return E(OVERFLOW);
	if ((r->iova | r->length) & (r->page_size - 1))
		return E(ALIGN);
	return OK;
}

/*
 * DMA_LOGGING_START data: the request is checked in full; the reply echo
 * only for shape and page size (the device may have chosen another page
 * size, to which the client's ranges need not be aligned).
 */
static enum devmig_wire_err dec_log_start(const uint8_t *d, size_t dlen, bool reply,
					  struct devmig_msg *out)
{
	struct devmig_feature_dma_logging_control *c = &out->u.feature.u.log_start.ctl;
	struct devmig_dma_logging_range r[DEVMIG_LOG_MAX_RANGES];
	enum devmig_wire_err err;

	if (dlen < sizeof(*c))
		return E(SHORT);
	memcpy(c, d, sizeof(*c));
	if (c->reserved != 0)
		return E(FIELD);
	if (c->num_ranges > DEVMIG_LOG_MAX_RANGES)
		return E(TOO_MANY);
	if ((err = at_least(dlen, sizeof(*c) + (uint64_t)c->num_ranges * sizeof(r[0]))))
		return err;
	if (!devmig__page_size_ok(c->page_size))
		return E(PAGE_SIZE);
	if (c->num_ranges)
		out->u.feature.u.log_start.ranges = d + sizeof(*c);
	if (reply)
		return OK;
	if (c->num_ranges)
		memcpy(r, d + sizeof(*c), c->num_ranges * sizeof(r[0]));
	for (uint32_t i = 0; i < c->num_ranges; i++) {
		if (r[i].length == 0)
			return E(FIELD);
		if (devmig__wraps64(r[i].iova, r[i].length))
			return E(OVERFLOW);
		if ((r[i].iova | r[i].length) & (c->page_size - 1))
			return E(ALIGN);
	}
	for (uint32_t i = 0; i < c->num_ranges; i++)
		for (uint32_t j = i + 1; j < c->num_ranges; j++)
			if (r[i].iova < r[j].iova + r[j].length &&
			    r[j].iova < r[i].iova + r[i].length)
				return E(OVERLAP);
	return OK;
}

static enum devmig_wire_err dec_get_req(const struct feat_desc *fd, uint32_t argsz,
					const uint8_t *d, size_t dlen,
					const struct devmig_wire_limits *lim,
					struct devmig_msg *out)
{
	struct devmig_feature_dma_logging_report *r = &out->u.feature.u.log_report.rep;
	enum devmig_wire_err err;
	uint64_t bm;

	if (fd->index != DEVMIG_FEATURE_DMA_LOGGING_REPORT) {
		/* Data a GET carries (room for the answer, as QEMU sends) is ignored. */
		if ((uint64_t)argsz < sizeof(struct devmig_feature) + fd->get_len)
			return E(ARGSZ);
		return OK;
	}
	if ((err = at_least(dlen, sizeof(*r))))
		return err;
	memcpy(r, d, sizeof(*r));
	if ((err = check_report(r)))
		return err;
	bm = devmig_log_bitmap_size(r->length, r->page_size);
	if (DEVMIG_HDR_SIZE + sizeof(struct devmig_feature) + sizeof(*r) + bm > lim->max_msg_size)
		return E(TOO_BIG);
	if ((uint64_t)argsz < sizeof(struct devmig_feature) + sizeof(*r) + bm)
		return E(ARGSZ);
	return OK;
}

static enum devmig_wire_err dec_get_reply(const struct feat_desc *fd, const uint8_t *d,
					  size_t dlen, struct devmig_msg *out)
{
	enum devmig_wire_err err;

	if (fd->index == DEVMIG_FEATURE_DMA_LOGGING_REPORT) {
		struct devmig_feature_dma_logging_report *r = &out->u.feature.u.log_report.rep;
		uint64_t bm;

		if (dlen < sizeof(*r))
			return E(SHORT);
		memcpy(r, d, sizeof(*r));
		if ((err = check_report(r)))
			return err;
		bm = devmig_log_bitmap_size(r->length, r->page_size);
		if ((err = at_least(dlen, sizeof(*r) + bm)))
			return err;
		out->u.feature.u.log_report.bitmap = d + sizeof(*r);
		out->u.feature.u.log_report.bitmap_len = (size_t)bm;
		return OK;
	}
	if ((err = at_least(dlen, fd->get_len)))
		return err;
	dlen = fd->get_len; /* what is used; the rest is ignored */
	switch (fd->index) {
	case DEVMIG_FEATURE_MIGRATION:
		memcpy(&out->u.feature.u.migration, d, dlen);
		break;
	case DEVMIG_FEATURE_MIG_DEVICE_STATE:
		memcpy(&out->u.feature.u.mig_state, d, dlen);
		if (out->u.feature.u.mig_state.device_state >= 8)
			return E(STATE);
		break;
	case DEVMIG_FEATURE_MIG_DATA_SIZE:
		memcpy(&out->u.feature.u.data_size, d, dlen);
		break;
	case DEVMIG_FEATURE_PRECOPY_INFO:
		memcpy(&out->u.feature.u.precopy, d, dlen);
		break;
	case DEVMIG_FEATURE_MIG_STATUS: {
		struct devmig_feature_mig_status *st = &out->u.feature.u.mig_status;
		memcpy(st, d, dlen);
		if (st->reserved || !memchr(st->reason, 0, sizeof(st->reason)))
			return E(FIELD);
		break;
	}
	case DEVMIG_FEATURE_COMPAT: {
		struct devmig_feature_compat *ci = &out->u.feature.u.compat;
		memcpy(ci, d, dlen);
		if (ci->reserved || ci->naccepts > 8 || !memchr(ci->version, 0, sizeof(ci->version)))
			return E(FIELD);
		for (uint32_t i = 0; i < ci->naccepts; i++)
			if (!memchr(ci->accepts[i], 0, sizeof(ci->accepts[i])))
				return E(FIELD);
		break;
	}
	case DEVMIG_FEATURE_ARC_ESTIMATES: {
		struct devmig_feature_arc_estimates *est = &out->u.feature.u.estimates;
		memcpy(est, d, dlen);
		if (est->reserved || est->narcs > DEVMIG_ARC_EST_MAX ||
		    est->last_state >= DEVMIG_STATE_COUNT || (est->last_flags & ~DEVMIG_DEADLINE_FLAGS))
			return E(FIELD);
		for (uint32_t i = 0; i < est->narcs; i++) {
			const struct devmig_arc_estimate *a = &est->arcs[i];
			if (a->from >= DEVMIG_STATE_COUNT || a->to >= DEVMIG_STATE_COUNT ||
			    a->reserved || (a->flags & ~DEVMIG_DEADLINE_PARTIAL))
				return E(FIELD);
		}
		break;
	}
	case DEVMIG_FEATURE_DIRTY_RATE: {
		struct devmig_feature_dirty_rate *dr = &out->u.feature.u.dirty_rate;
		memcpy(dr, d, dlen);
		if (dr->reserved || (dr->flags & ~DEVMIG_DIRTY_RATE_ACTIVE))
			return E(FIELD);
		break;
	}
	}
	return OK;
}

/* SET request data, or the echo of it in the reply. */
static enum devmig_wire_err dec_set(const struct feat_desc *fd, const uint8_t *d, size_t dlen,
				    bool reply, struct devmig_msg *out)
{
	enum devmig_wire_err err;

	switch (fd->index) {
	case DEVMIG_FEATURE_MIG_DEVICE_STATE:
		if ((err = at_least(dlen, sizeof(out->u.feature.u.mig_state))))
			return err;
		memcpy(&out->u.feature.u.mig_state, d, sizeof(out->u.feature.u.mig_state));
		if (out->u.feature.u.mig_state.device_state >= 8)
			return E(STATE);
		return OK;
	case DEVMIG_FEATURE_MIG_STATE_DEADLINE: {
		struct devmig_feature_mig_deadline *dl = &out->u.feature.u.deadline;
		/* A request needs its first 16 bytes, a reply the whole outcome. */
		size_t need = reply ? sizeof(*dl) : DEVMIG_MIG_DEADLINE_REQ_LEN;
		if ((err = at_least(dlen, need)))
			return err;
		memcpy(dl, d, need);
		if (dl->device_state >= DEVMIG_STATE_COUNT)
			return E(STATE);
		if (reply ? (dl->flags & ~DEVMIG_DEADLINE_FLAGS) : dl->flags)
			return E(FIELD);
		return OK;
	}
	case DEVMIG_FEATURE_DIRTY_RATE:
		if ((err = at_least(dlen, sizeof(out->u.feature.u.dirty_rate.cap))))
			return err;
		memcpy(&out->u.feature.u.dirty_rate.cap, d, sizeof(out->u.feature.u.dirty_rate.cap));
		return OK;
	case DEVMIG_FEATURE_DMA_LOGGING_START:
		return dec_log_start(d, dlen, reply, out);
	default: /* DMA_LOGGING_STOP: needs nothing; libvfio-user and QEMU send START's structure */
		return OK;
	}
}

enum devmig_wire_err devmig__decode_feature(const uint8_t *p, size_t plen, bool reply,
					    unsigned nfds,
					    const struct devmig_wire_limits *lim,
					    struct devmig_msg *out)
{
	struct devmig_feature *f = &out->u.feature.f;
	const struct feat_desc *fd;
	const uint8_t *d;
	size_t dlen;
	uint32_t fl;

	if (plen < sizeof(*f))
		return E(SHORT);
	memcpy(f, p, sizeof(*f));
	fl = f->flags;
	out->u.feature.index = fl & DEVMIG_FEATURE_MASK;
	if (plen > sizeof(*f)) {
		out->u.feature.data = p + sizeof(*f);
		out->u.feature.data_len = plen - sizeof(*f);
	}
	d = out->u.feature.data;
	dlen = out->u.feature.data_len;

	if (f->argsz < plen)
		return E(ARGSZ);
	if (fl & ~(DEVMIG_FEATURE_MASK | OPS))
		return E(FIELD);
	if (!(fl & OPS))
		return E(FEATURE_OP);
	if ((fl & DEVMIG_FEATURE_GET) && (fl & DEVMIG_FEATURE_SET) && !(fl & DEVMIG_FEATURE_PROBE))
		return E(FEATURE_OP);
	fd = feat_lookup(fl & DEVMIG_FEATURE_MASK);
	if (!fd)
		return E(FEATURE);
	if ((fl & DEVMIG_FEATURE_GET) && !(fd->ops & DEVMIG_FEATURE_GET))
		return E(FEATURE_OP);
	if ((fl & DEVMIG_FEATURE_SET) && !(fd->ops & DEVMIG_FEATURE_SET))
		return E(FEATURE_OP);
	/* The one descriptor a message here may carry: the data fd of the
	 * data_fd extension, in the reply to a SET MIG_DEVICE_STATE or
	 * MIG_STATE_DEADLINE. */
	if (nfds && !(nfds == 1 && reply && !(fl & (DEVMIG_FEATURE_PROBE | DEVMIG_FEATURE_GET)) &&
		      (fd->index == DEVMIG_FEATURE_MIG_DEVICE_STATE ||
		       fd->index == DEVMIG_FEATURE_MIG_STATE_DEADLINE)))
		return E(FDS);
	if (fl & DEVMIG_FEATURE_PROBE)
		return OK; /* data is not used for probing */
	if (fl & DEVMIG_FEATURE_GET)
		return reply ? dec_get_reply(fd, d, dlen, out)
			     : dec_get_req(fd, f->argsz, d, dlen, lim, out);
	return dec_set(fd, d, dlen, reply, out);
}

void devmig__decode_feature_error(const uint8_t *p, size_t plen,
				  const struct devmig_wire_limits *lim, struct devmig_msg *out)
{
	struct devmig_msg m;
	struct devmig_feature f;

	if (plen < sizeof(f))
		return;
	memcpy(&f, p, sizeof(f));
	if (f.flags != (DEVMIG_FEATURE_SET | DEVMIG_FEATURE_MIG_STATE_DEADLINE))
		return;
	memset(&m, 0, sizeof(m));
	m.hdr = out->hdr;
	if (devmig__decode_feature(p, plen, true, 0, lim, &m) == OK)
		out->u.feature = m.u.feature;
}

enum devmig_wire_err devmig__plan_feature(const struct devmig_msg *m, bool reply,
					  struct devmig__plan *pl)
{
	const __typeof__(m->u.feature) *F = &m->u.feature;
	const size_t rep_len = sizeof(struct devmig_feature_dma_logging_report);

	devmig__plan_add(pl, &F->f, sizeof(F->f));

	/* Raw bytes, when given, are the source. */
	if (F->data || F->data_len) {
		if (!F->data)
			return E(FIELD);
		if (typed_kind(F->f.flags, reply) == T_REPORT_REP && F->data_len > rep_len) {
			devmig__plan_add(pl, F->data, rep_len);
			pl->tail = F->data + rep_len;
			pl->tail_len = F->data_len - rep_len;
		} else {
			/* As the tail: an echo of many ranges need not fit a head buffer. */
			pl->tail = F->data;
			pl->tail_len = F->data_len;
		}
		return OK;
	}

	/* Otherwise the typed member for this operation and direction. */
	switch (typed_kind(F->f.flags, reply)) {
	case T_NONE:
		return OK;
	case T_MIGRATION:
		devmig__plan_add(pl, &F->u.migration, sizeof(F->u.migration));
		return OK;
	case T_MIG_STATE:
		devmig__plan_add(pl, &F->u.mig_state, sizeof(F->u.mig_state));
		return OK;
	case T_DATA_SIZE:
		devmig__plan_add(pl, &F->u.data_size, sizeof(F->u.data_size));
		return OK;
	case T_PRECOPY:
		devmig__plan_add(pl, &F->u.precopy, sizeof(F->u.precopy));
		return OK;
	case T_MIG_STATUS:
		devmig__plan_add(pl, &F->u.mig_status, sizeof(F->u.mig_status));
		return OK;
	case T_COMPAT:
		devmig__plan_add(pl, &F->u.compat, sizeof(F->u.compat));
		return OK;
	case T_DEADLINE_REQ:
		devmig__plan_add(pl, &F->u.deadline, DEVMIG_MIG_DEADLINE_REQ_LEN);
		return OK;
	case T_DEADLINE_REP:
		devmig__plan_add(pl, &F->u.deadline, sizeof(F->u.deadline));
		return OK;
	case T_ESTIMATES:
		devmig__plan_add(pl, &F->u.estimates, sizeof(F->u.estimates));
		return OK;
	case T_DIRTY_CAP:
		devmig__plan_add(pl, &F->u.dirty_rate.cap, sizeof(F->u.dirty_rate.cap));
		return OK;
	case T_DIRTY_RATE:
		devmig__plan_add(pl, &F->u.dirty_rate, sizeof(F->u.dirty_rate));
		return OK;
	case T_LOG_START: {
		uint32_t n = F->u.log_start.ctl.num_ranges;

		if (n && !F->u.log_start.ranges)
			return E(FIELD);
		if (n > UINT32_MAX / sizeof(struct devmig_dma_logging_range))
			return E(TOO_BIG);
		devmig__plan_add(pl, &F->u.log_start.ctl, sizeof(F->u.log_start.ctl));
		devmig__plan_add(pl, F->u.log_start.ranges,
				 (size_t)n * sizeof(struct devmig_dma_logging_range));
		return OK;
	}
	case T_REPORT_REQ:
		devmig__plan_add(pl, &F->u.log_report.rep, rep_len);
		return OK;
	case T_REPORT_REP: {
		const struct devmig_feature_dma_logging_report *r = &F->u.log_report.rep;

		if (F->u.log_report.bitmap_len != devmig_log_bitmap_size(r->length, r->page_size))
			return E(FIELD);
		devmig__plan_add(pl, r, rep_len);
		if (!devmig__plan_tail(pl, F->u.log_report.bitmap, F->u.log_report.bitmap_len))
			return E(FIELD);
		return OK;
	}
	}
	return OK;
}

struct path_est {
	const struct devmig_feature_arc_estimates *est;
	bool partial;
};

static uint64_t table_cost(void *opaque, enum devmig_state from, enum devmig_state to)
{
	struct path_est *pe = opaque;
	uint32_t n = pe->est->narcs < DEVMIG_ARC_EST_MAX ? pe->est->narcs : DEVMIG_ARC_EST_MAX;

	for (uint32_t i = 0; i < n; i++) {
		const struct devmig_arc_estimate *a = &pe->est->arcs[i];
		if (a->from == from && a->to == to) {
			pe->partial |= (a->flags & DEVMIG_DEADLINE_PARTIAL) != 0;
			return a->ns;
		}
	}
	pe->partial = true; /* the device did not say */
	return 0;
}

int devmig_arc_estimates_path(const struct devmig_feature_arc_estimates *est, uint32_t from,
			      uint32_t to, uint64_t caps, uint64_t *ns, bool *partial)
{
	struct path_est pe = { est, false };

	if (devmig_fsm_path_cost(from, to, caps, table_cost, &pe, ns))
		return -EINVAL;
	*partial = pe.partial;
	return 0;
}
