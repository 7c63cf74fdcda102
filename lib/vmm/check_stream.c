/* SPDX-License-Identifier: MIT */
/*
 * The conformance checks that move migration data: a STOP_COPY save and
 * its size estimate, the round trip into the destination with random
 * segmentation, truncated and corrupted streams, PRE_COPY progress.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_internal.h"

#define READ_PIECE_MAX (1u << 20)
/* save.estimate: an estimate above twice the real size and this much more fails. */
#define OVER_ESTIMATE_SLACK (1u << 20)

static const char *sname(uint32_t s)
{
	return devmig_state_name(s);
}

static void note_piece(size_t n, uint64_t *count, size_t *min, size_t *max)
{
	if (!(*count)++ || n < *min)
		*min = n;
	if (n > *max)
		*max = n;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 65536;
	while (c < need)
		c *= 2;
	uint8_t *p = realloc(*buf, c);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = c;
	return 0;
}

int chk_read_to_end(struct chk *ch, struct chk_dev *d, uint8_t **buf, size_t *len,
		    struct chk_read_stats *st, char *why, size_t wl)
{
	size_t cap = 0;
	bool short_seen = false;
	char b[32];

	memset(st, 0, sizeof(*st));
	*buf = NULL;
	*len = 0;
	for (;;) {
		if (chk_expired(ch)) {
			snprintf(why, wl, "no end within the deadline, after %s",
				 chk_bytes(*len, b, sizeof(b)));
			return -ETIMEDOUT;
		}
		if (*len >= ch->cfg.max_stream_bytes) {
			snprintf(why, wl, "no end after %s (the limit)", chk_bytes(*len, b, sizeof(b)));
			return -EFBIG;
		}
		size_t ask = chk_rand_len(ch, READ_PIECE_MAX);
		if (grow(buf, &cap, *len + ask)) {
			snprintf(why, wl, "out of memory at %s", chk_bytes(*len, b, sizeof(b)));
			return -ENOMEM;
		}
		ssize_t n = chk_read(d, *buf + *len, ask);
		if (n < 0) {
			snprintf(why, wl, "read refused after %s (%s)", chk_bytes(*len, b, sizeof(b)),
				 chk_errname((int)n));
			return (int)n;
		}
		if ((size_t)n > ask) {
			snprintf(why, wl, "a read returned more than asked");
			return -EPROTO;
		}
		if (!n)
			return 0;
		if (short_seen)
			st->short_before_end = true;
		note_piece((size_t)n, &st->reads, &st->min_piece, &st->max_piece);
		*len += (size_t)n;
		short_seen = (size_t)n < ask;
	}
}

int chk_write_segmented(struct chk *ch, struct chk_dev *d, const uint8_t *buf, size_t len,
			struct chk_write_stats *st)
{
	size_t off = 0;

	memset(st, 0, sizeof(*st));
	while (off < len) {
		if (chk_expired(ch)) {
			st->refused_at = off;
			st->refused_rc = -ETIMEDOUT;
			return -ETIMEDOUT;
		}
		size_t n = chk_rand_len(ch, len - off);
		int rc = chk_write(d, buf + off, n);
		if (rc) {
			st->refused_at = off;
			st->refused_rc = rc;
			return rc;
		}
		note_piece(n, &st->writes, &st->min_piece, &st->max_piece);
		off += n;
	}
	return 0;
}

static void ev_pieces(struct chk *ch, const char *verb, uint64_t count, size_t min, size_t max)
{
	char a[32], b[32];
	chk_ev(ch, "%llu %s of %s..%s", (unsigned long long)count, verb, chk_bytes(min, a, sizeof(a)),
	       chk_bytes(max, b, sizeof(b)));
}

/* One state change that must land where asked. */
static int set_expect(struct chk_dev *d, enum devmig_state s, char *why, size_t wl)
{
	enum devmig_state from = DEVMIG_STATE_ERROR, now;
	chk_get(d, &from);
	int rc = chk_set(d, s);
	if (rc) {
		snprintf(why, wl, "%s -> %s refused (%s)", sname(from), sname(s), chk_errname(rc));
		return rc;
	}
	rc = chk_get(d, &now);
	if (!rc && now != s) {
		snprintf(why, wl, "%s -> %s ended in %s", sname(from), sname(s), sname(now));
		return -EIO;
	}
	if (rc)
		snprintf(why, wl, "GET state refused (%s)", chk_errname(rc));
	return rc;
}

/* The reason a devmig destination gives for a refusal, when it can say. */
static void ev_reason(struct chk *ch, struct chk_dev *d)
{
	uint64_t loaded;
	int lerr;
	char reason[DEVMIG_MIG_STATUS_REASON];

	if (d->lost || !devmig_client_has_ext(d->c, DEVMIG_EXT_MIG_STATUS))
		return;
	if (!devmig_client_mig_status(d->c, &loaded, &lerr, reason, sizeof(reason)) && reason[0])
		chk_ev(ch, " [%s says: %s]", d->label, reason);
}

/* ---- save ---- */

void chk_save(struct chk *ch)
{
	struct chk_dev *a = &ch->a;
	struct chk_read_stats st;
	char why[256], b1[32], b2[32];
	uint64_t est = 0;
	int est_rc = -ENOTSUP;

	bool shown = chk_begin(ch, "save.stop_copy");
	if (!shown)
		chk_quiet(ch, "save.stop_copy");
	if (!ch->caps_ok || a->lost) {
		if (shown && !a->lost)
			chk_skip(ch, "no valid migration capabilities");
		else if (shown)
			chk_alive(ch, a);
		goto estimate;
	}
	if (chk_to_running(ch, a, why, sizeof(why)) || chk_apply_writes(ch, a, why, sizeof(why)) ||
	    chk_walk(ch, a, DEVMIG_STATE_STOP, why, sizeof(why))) {
		chk_ev(ch, "%s", why);
		goto failed;
	}
	/* The estimate of a stopped device, whose state cannot change any more. */
	est_rc = chk_rc(a, devmig_client_stop_copy_size(a->c, &est), "MIG_DATA_SIZE");
	if (set_expect(a, DEVMIG_STATE_STOP_COPY, why, sizeof(why))) {
		chk_ev(ch, "%s", why);
		goto failed;
	}
	int rc = chk_read_to_end(ch, a, &ch->stream, &ch->stream_len, &st, why, sizeof(why));
	if (rc) {
		chk_ev(ch, "STOP_COPY: %s", why);
		free(ch->stream);
		ch->stream = NULL;
		goto failed;
	}
	chk_ev(ch, "STOP_COPY stream of %s in ", chk_bytes(ch->stream_len, b1, sizeof(b1)));
	ev_pieces(ch, "reads", st.reads, st.min_piece, st.max_piece);
	chk_ev(ch, ", ended by an empty read");
	bool ok = ch->stream_len > 0;
	if (!ch->stream_len)
		chk_ev(ch, ": the stream is empty");
	if (st.short_before_end) {
		chk_ev(ch, "; a short read was followed by more data (a client takes a short read "
			   "in STOP_COPY for the end)");
		ok = false;
	}
	if (set_expect(a, DEVMIG_STATE_STOP, why, sizeof(why)) ||
	    set_expect(a, DEVMIG_STATE_RUNNING, why, sizeof(why))) {
		chk_ev(ch, "; back to RUNNING: %s", why);
		ok = false;
	}
	if (ch->lay_ok && chk_snap_take(ch, a, &ch->src)) {
		chk_ev(ch, "; A's registers could not be read back");
		ok = false;
	}
	if (!ok) {
		free(ch->stream);
		ch->stream = NULL;
		goto failed;
	}
	chk_ev(ch, "; STOP -> RUNNING again");
	if (shown)
		chk_end(ch, DEVMIG_CHECK_PASS);
	goto estimate;
failed:
	if (shown)
		chk_end(ch, DEVMIG_CHECK_FAIL);
estimate:
	if (!chk_begin(ch, "save.estimate"))
		return;
	if (!ch->stream) {
		chk_skip(ch, "no stream (save.stop_copy failed or did not run)");
		return;
	}
	if (est_rc == -ENOTTY || est_rc == -ENOTSUP || est_rc == -ENOSYS) {
		chk_skip(ch, "MIG_DATA_SIZE not offered (%s)", chk_errname(est_rc));
		return;
	}
	if (est_rc) {
		chk_ev(ch, "MIG_DATA_SIZE in STOP refused (%s)", chk_errname(est_rc));
		chk_end(ch, DEVMIG_CHECK_FAIL);
		return;
	}
	chk_ev(ch, "MIG_DATA_SIZE in STOP said %s (%llu), the stream was %s (%zu)",
	       chk_bytes(est, b1, sizeof(b1)), (unsigned long long)est,
	       chk_bytes(ch->stream_len, b2, sizeof(b2)), ch->stream_len);
	if (est < ch->stream_len) {
		chk_ev(ch, ": an under-estimate (a VMM would plan too short a downtime)");
		chk_end(ch, DEVMIG_CHECK_FAIL);
		return;
	}
	chk_ev(ch, ": estimate/real %.2f", (double)est / (double)ch->stream_len);
	/* Generous, but an estimate many times the data is no estimate. */
	if (est > 2 * (uint64_t)ch->stream_len + OVER_ESTIMATE_SLACK) {
		chk_ev(ch, ", over twice the stream and 1 MiB more (a VMM would wait for a "
			   "downtime it never gets)");
		chk_end(ch, DEVMIG_CHECK_FAIL);
		return;
	}
	chk_end(ch, DEVMIG_CHECK_PASS);
}

/* ---- load ---- */

/*
 * Load stream into d (from a reset, through RESUMING), commit, run, and
 * compare its registers with ref. 0 when all of that worked.
 */
static int load_and_compare(struct chk *ch, struct chk_dev *d, const uint8_t *stream, size_t len,
			    const struct chk_snap *ref, bool from_reset, bool show_before)
{
	struct chk_snap before = { 0 }, after = { 0 };
	struct chk_write_stats ws;
	char why[256], first[160], b[32];
	int rc = 0;

	if (from_reset) {
		if (chk_to_running(ch, d, why, sizeof(why))) {
			chk_ev(ch, "%s", why);
			return -EIO;
		}
		if (show_before && ch->lay_ok && chk_snap_take(ch, d, &before)) {
			chk_ev(ch, "%s's registers could not be read", d->label);
			return -EIO;
		}
		if (chk_walk(ch, d, DEVMIG_STATE_RESUMING, why, sizeof(why))) {
			chk_ev(ch, "%s", why);
			rc = -EIO;
			goto out;
		}
	}
	rc = chk_write_segmented(ch, d, stream, len, &ws);
	if (rc) {
		chk_ev(ch, "writing %s into %s refused at byte %zu (%s)", chk_bytes(len, b, sizeof(b)),
		       d->label, ws.refused_at, chk_errname(rc));
		ev_reason(ch, d);
		goto out;
	}
	chk_ev(ch, "%s into %s in ", chk_bytes(len, b, sizeof(b)), d->label);
	ev_pieces(ch, "writes", ws.writes, ws.min_piece, ws.max_piece);
	if ((rc = set_expect(d, DEVMIG_STATE_STOP, why, sizeof(why)))) {
		chk_ev(ch, "; %s", why);
		ev_reason(ch, d);
		goto out;
	}
	if ((rc = set_expect(d, DEVMIG_STATE_RUNNING, why, sizeof(why)))) {
		chk_ev(ch, "; %s", why);
		goto out;
	}
	chk_ev(ch, "; RESUMING -> STOP -> RUNNING");
	if (!ch->lay_ok || !ref->taken) {
		chk_ev(ch, "; registers not compared (not readable)");
		goto out;
	}
	if ((rc = chk_snap_take(ch, d, &after))) {
		chk_ev(ch, "; %s's registers could not be read (%s)", d->label, chk_errname(rc));
		goto out;
	}
	uint64_t nd = chk_snap_diff(ch, ref, &after, first, sizeof(first));
	if (nd) {
		chk_ev(ch, "; registers differ from the source's in %llu bytes, first %s (source vs "
			   "loaded)", (unsigned long long)nd, first);
		rc = -EIO;
		goto out;
	}
	chk_ev(ch, "; %s equal to the source's", ch->nlay ? ch->lay_desc : "(no readable region)");
	if (before.taken) {
		nd = chk_snap_diff(ch, ref, &before, first, sizeof(first));
		if (nd)
			chk_ev(ch, " (before the load they differed in %llu bytes)",
			       (unsigned long long)nd);
		else
			chk_ev(ch, " (and were before the load: give the source some state with "
				   "--write to make this conclusive)");
	}
out:
	chk_snap_free(&before);
	chk_snap_free(&after);
	return rc;
}

void chk_load(struct chk *ch)
{
	struct chk_dev *d = ch->dst;

	if (!chk_begin(ch, "load.roundtrip"))
		return;
	if (!ch->stream) {
		chk_skip(ch, "no stream (save.stop_copy failed or did not run)");
		return;
	}
	if (!chk_alive(ch, d))
		return;
	chk_ev(ch, "A's stream in random pieces (seed %llu), ", (unsigned long long)ch->cfg.seed);
	if (d == &ch->a)
		chk_ev(ch, "after a reset of A (no B), ");
	int rc = load_and_compare(ch, d, ch->stream, ch->stream_len, &ch->src, true, true);
	chk_end(ch, rc ? DEVMIG_CHECK_FAIL : DEVMIG_CHECK_PASS);
}

/* ---- truncated and corrupted streams ---- */

struct bad_stream {
	char what[64];
	uint8_t *buf;
	size_t len;
};

/* Units the snapshot could read before but not after (a device that refuses reads now). */
static bool newly_unreadable(const struct chk *ch, const struct chk_snap *before,
			     const struct chk_snap *after)
{
	for (unsigned i = 0; i < ch->nlay; i++)
		for (uint64_t o = 0; o < ch->lay[i].len; o++)
			if (after->bad[i][o] && !before->bad[i][o])
				return true;
	return false;
}

struct bad_result {
	unsigned n, bad;           /* streams tried, wrongly handled */
	unsigned again_ok, again_bad, again_reset;
	bool inconclusive;         /* the destination already read as the source */
	bool unreadable;           /* registers not readable in the state after refusal */
	char states[64];           /* states seen after the refusals */
};

/* One bad stream into the destination: refused at RESUMING -> STOP, nothing applied. */
static void try_bad(struct chk *ch, const struct bad_stream *bs, struct bad_result *res,
		    char *again, size_t al)
{
	struct chk_dev *d = ch->dst;
	struct chk_snap before = { 0 }, after = { 0 };
	struct chk_write_stats ws;
	enum devmig_state now;
	char why[256], first[160];

	res->n++;
	if (chk_to_running(ch, d, why, sizeof(why)) ||
	    (ch->lay_ok && chk_snap_take(ch, d, &before)) ||
	    chk_walk(ch, d, DEVMIG_STATE_RESUMING, why, sizeof(why))) {
		chk_ev(ch, "%s%s: %s", ch->evlen ? "; " : "", bs->what,
		       d->lost ? "connection lost" : why);
		res->bad++;
		goto out;
	}
	if (before.taken && ch->src.taken && !chk_snap_diff(ch, &ch->src, &before, NULL, 0))
		res->inconclusive = true;
	int wrc = chk_write_segmented(ch, d, bs->buf, bs->len, &ws);
	int rc = chk_set(d, DEVMIG_STATE_STOP);
	int grc = chk_get(d, &now);
	chk_ev(ch, "%s%s", ch->evlen ? "; " : "", bs->what);
	if (wrc)
		chk_ev(ch, " (write refused at byte %zu: %s)", ws.refused_at, chk_errname(wrc));
	if (!rc) {
		chk_ev(ch, ": ACCEPTED at RESUMING -> STOP, state %s", grc ? "?" : sname(now));
		res->bad++;
		goto out;
	}
	chk_ev(ch, ": %s", chk_errname(rc));
	if (grc) {
		chk_ev(ch, ", then GET state refused (%s)", chk_errname(grc));
		res->bad++;
		goto out;
	}
	if (!strstr(res->states, sname(now)))
		snprintf(res->states + strlen(res->states), sizeof(res->states) - strlen(res->states),
			 "%s%s", res->states[0] ? ", " : "", sname(now));
	if (now != DEVMIG_STATE_RESUMING && now != DEVMIG_STATE_ERROR) {
		chk_ev(ch, ", but the device went on to %s", sname(now));
		res->bad++;
		goto out;
	}
	/* Nothing applied: the registers read as before. */
	if (before.taken && now == DEVMIG_STATE_RESUMING) {
		if (chk_snap_take(ch, d, &after)) {
			chk_ev(ch, ", registers then unreadable");
			res->bad++;
			goto out;
		}
		if (newly_unreadable(ch, &before, &after)) {
			res->unreadable = true;
		} else {
			uint64_t nd = chk_snap_diff(ch, &before, &after, first, sizeof(first));
			if (nd) {
				chk_ev(ch, ", but registers changed in %llu bytes, first %s (before vs "
					   "after)", (unsigned long long)nd, first);
				res->bad++;
				goto out;
			}
		}
	}
	/* The destination still takes a good stream: in the same session, else after a reset. */
	size_t al0 = strlen(again);
	int lrc = -EIO;
	if (now == DEVMIG_STATE_RESUMING) {
		size_t mark = ch->evlen;
		lrc = load_and_compare(ch, d, ch->stream, ch->stream_len, &ch->src, false, false);
		ch->evlen = mark; /* the details belong to load.after_refusal */
		ch->ev[mark] = 0;
	}
	if (lrc && !d->lost) {
		size_t mark = ch->evlen;
		lrc = load_and_compare(ch, d, ch->stream, ch->stream_len, &ch->src, true, false);
		if (lrc)
			snprintf(again + al0, al - al0, "%safter %s: %s", al0 ? "; " : "", bs->what,
				 ch->ev + mark);
		ch->evlen = mark;
		ch->ev[mark] = 0;
		if (lrc)
			res->again_bad++;
		else
			res->again_reset++;
	} else if (!lrc) {
		res->again_ok++;
	} else {
		res->again_bad++;
	}
out:
	chk_snap_free(&before);
	chk_snap_free(&after);
}

static void emit_bad(struct chk *ch, const char *name, struct bad_stream *v, unsigned nv,
		     const char *kind, char *again, size_t al, struct bad_result *total)
{
	struct bad_result res = { 0 };

	if (!chk_begin(ch, name))
		return;
	if (!ch->stream) {
		chk_skip(ch, "no stream (save.stop_copy failed or did not run)");
		return;
	}
	if (!chk_alive(ch, ch->dst))
		return;
	for (unsigned i = 0; i < nv && !ch->dst->lost; i++) {
		if (chk_expired(ch)) {
			chk_ev(ch, "; deadline passed");
			res.bad++;
			break;
		}
		try_bad(ch, &v[i], &res, again, al);
	}
	if (!res.bad) {
		char head[CHK_EV_MAX];
		snprintf(head, sizeof(head), "%u %s streams into %s refused at RESUMING -> STOP; "
			 "state after: %s; ", res.n, kind, ch->dst->label, res.states);
		size_t hl = strlen(head);
		if (hl + ch->evlen < sizeof(ch->ev)) {
			memmove(ch->ev + hl, ch->ev, ch->evlen + 1);
			memcpy(ch->ev, head, hl);
			ch->evlen += hl;
		}
		if (res.unreadable)
			chk_ev(ch, "; registers not compared in RESUMING (the device refuses reads "
				   "there)");
		else if (!ch->lay_ok || !ch->nlay)
			chk_ev(ch, "; no readable registers to compare");
		else if (res.inconclusive)
			chk_ev(ch, "; registers unchanged, but they already read as the source's "
				   "(give the source state with --write)");
		else
			chk_ev(ch, "; registers unchanged each time (they differ from the source's)");
	}
	total->n += res.n;
	total->again_ok += res.again_ok;
	total->again_bad += res.again_bad;
	total->again_reset += res.again_reset;
	chk_end(ch, res.bad ? DEVMIG_CHECK_FAIL : DEVMIG_CHECK_PASS);
}

void chk_bad_streams(struct chk *ch)
{
	struct bad_stream tr[4], co[4];
	unsigned ntr = 0, nco = 0;
	struct bad_result total = { 0 };
	char again[CHK_EV_MAX] = "";
	size_t len = ch->stream_len;

	if (ch->stream && len >= 4) {
		/* Cuts: nothing, one byte, a random point, all but the last byte. */
		size_t cuts[4] = { 0, 1, 2 + (size_t)(chk_rand(ch) % (len - 3)), len - 1 };
		for (unsigned i = 0; i < 4; i++) {
			tr[ntr].buf = ch->stream;
			tr[ntr].len = cuts[i];
			if (!cuts[i])
				snprintf(tr[ntr].what, sizeof(tr[ntr].what), "empty");
			else
				snprintf(tr[ntr].what, sizeof(tr[ntr].what), "first %zu of %zu B",
					 cuts[i], len);
			ntr++;
		}
		/* Corruptions: the first, a random and the last byte changed; one byte more. */
		size_t at[3] = { 0, 1 + (size_t)(chk_rand(ch) % (len - 2)), len - 1 };
		for (unsigned i = 0; i < 4; i++) {
			co[nco].len = i < 3 ? len : len + 1;
			co[nco].buf = malloc(co[nco].len);
			if (!co[nco].buf)
				break;
			memcpy(co[nco].buf, ch->stream, len);
			if (i < 3) {
				uint8_t x = (uint8_t)(1 + chk_rand(ch) % 255);
				co[nco].buf[at[i]] ^= x;
				snprintf(co[nco].what, sizeof(co[nco].what), "byte %zu of %zu xor %#x",
					 at[i], len, x);
			} else {
				co[nco].buf[len] = (uint8_t)chk_rand(ch);
				snprintf(co[nco].what, sizeof(co[nco].what), "one byte appended");
			}
			nco++;
		}
	} else if (ch->stream) {
		/* Too short to cut in four places: the checks below say so. */
		if (chk_begin(ch, "load.truncated"))
			chk_skip(ch, "the stream is only %zu bytes", len);
		if (chk_begin(ch, "load.corrupted"))
			chk_skip(ch, "the stream is only %zu bytes", len);
		if (chk_begin(ch, "load.after_refusal"))
			chk_skip(ch, "the stream is only %zu bytes", len);
		return;
	}
	emit_bad(ch, "load.truncated", tr, ntr, "truncated", again, sizeof(again), &total);
	emit_bad(ch, "load.corrupted", co, nco, "corrupted", again, sizeof(again), &total);
	for (unsigned i = 0; i < nco; i++)
		free(co[i].buf);

	if (!chk_begin(ch, "load.after_refusal"))
		return;
	if (!ch->stream) {
		chk_skip(ch, "no stream (save.stop_copy failed or did not run)");
		return;
	}
	if (!total.n) {
		chk_skip(ch, "load.truncated and load.corrupted did not run");
		return;
	}
	if (!total.again_bad) {
		chk_ev(ch, "after %u refusals %s took A's whole stream and then read as A: ",
		       total.again_ok + total.again_reset, ch->dst->label);
		chk_ev(ch, "%u times in the same RESUMING session", total.again_ok);
		if (total.again_reset)
			chk_ev(ch, ", %u times only after a reset", total.again_reset);
		chk_end(ch, DEVMIG_CHECK_PASS);
	} else {
		chk_ev(ch, "%u of %u times %s could not take A's stream after a refusal: %s",
		       total.again_bad, total.again_ok + total.again_reset + total.again_bad,
		       ch->dst->label, again);
		chk_end(ch, DEVMIG_CHECK_FAIL);
	}
}

/* ---- PRE_COPY ---- */

struct precopy_run {
	bool entered, has_info, got_initial;
	uint64_t initial0, dirty0, max_dirty;
	uint64_t pass_bytes, pass_reads; /* read while initial > 0 */
	uint64_t tail_bytes, tail_reads; /* read after initial reached 0 */
	bool initial_zero;               /* reached */
	bool temp_end;                   /* an empty read came */
	uint64_t end_initial, end_dirty; /* progress just before the empty read */
	char progress_err[256];          /* precopy.progress failed */
	char end_err[256];               /* precopy.temporary_end failed */
	char dirty_err[256];             /* precopy.dirty failed */
	char err[256];                   /* the run itself failed */
};

static int progress(struct chk_dev *d, uint64_t *i, uint64_t *dt)
{
	if (d->lost)
		return -ENOTCONN;
	return chk_rc(d, devmig_client_precopy_info(d->c, i, dt), "PRE_COPY progress");
}

/* From PRE_COPY, read until the temporary end and watch the progress figures. */
static void precopy_read(struct chk *ch, struct chk_dev *a, struct precopy_run *r, uint8_t **buf,
			 size_t *len, size_t *cap)
{
	uint64_t init = 0, dirty = 0;
	char b[32];

	if (r->has_info) {
		int rc = progress(a, &r->initial0, &r->dirty0);
		if (rc) {
			snprintf(r->err, sizeof(r->err), "progress refused in PRE_COPY (%s)",
				 chk_errname(rc));
			return;
		}
		r->got_initial = true;
		init = r->initial0;
		dirty = r->max_dirty = r->dirty0;
	}
	r->initial_zero = r->has_info && !init;
	for (;;) {
		if (chk_expired(ch)) {
			snprintf(r->err, sizeof(r->err), "no temporary end within the deadline (%s read)",
				 chk_bytes(*len, b, sizeof(b)));
			return;
		}
		if (*len >= ch->cfg.max_stream_bytes) {
			snprintf(r->err, sizeof(r->err), "no temporary end after %s (the limit)",
				 chk_bytes(*len, b, sizeof(b)));
			return;
		}
		size_t ask = chk_rand_len(ch, READ_PIECE_MAX);
		if (grow(buf, cap, *len + ask)) {
			snprintf(r->err, sizeof(r->err), "out of memory");
			return;
		}
		ssize_t n = chk_read(a, *buf + *len, ask);
		if (n < 0) {
			snprintf(r->err, sizeof(r->err), "read refused in PRE_COPY after %s (%s)",
				 chk_bytes(*len, b, sizeof(b)), chk_errname((int)n));
			return;
		}
		if ((size_t)n > ask) {
			snprintf(r->err, sizeof(r->err), "a read returned more than asked");
			return;
		}
		*len += (size_t)n;
		if (!n) {
			r->temp_end = true;
			r->end_initial = init;
			r->end_dirty = dirty;
			if (r->has_info && (init || dirty))
				snprintf(r->end_err, sizeof(r->end_err),
					 "an empty read while progress said initial %llu, dirty %llu",
					 (unsigned long long)init, (unsigned long long)dirty);
			if (r->has_info && init && !r->progress_err[0])
				snprintf(r->progress_err, sizeof(r->progress_err),
					 "an empty read while initial_bytes was %llu",
					 (unsigned long long)init);
			return;
		}
		if (r->has_info && !init && !dirty && !r->dirty_err[0])
			snprintf(r->dirty_err, sizeof(r->dirty_err),
				 "a read gave %zd bytes after progress said initial 0, dirty 0", n);
		if (!r->initial_zero) {
			r->pass_bytes += (uint64_t)n;
			r->pass_reads++;
		} else {
			r->tail_bytes += (uint64_t)n;
			r->tail_reads++;
		}
		if (!r->has_info)
			continue;
		uint64_t i2, d2;
		int rc = progress(a, &i2, &d2);
		if (rc) {
			snprintf(r->err, sizeof(r->err), "progress refused after %s (%s)",
				 chk_bytes(*len, b, sizeof(b)), chk_errname(rc));
			return;
		}
		if (i2 > init && !r->progress_err[0])
			snprintf(r->progress_err, sizeof(r->progress_err),
				 "initial_bytes rose from %llu to %llu after %s read",
				 (unsigned long long)init, (unsigned long long)i2,
				 chk_bytes(*len, b, sizeof(b)));
		if (r->initial_zero && i2 && !r->progress_err[0])
			snprintf(r->progress_err, sizeof(r->progress_err),
				 "initial_bytes came back (%llu) after it had reached 0",
				 (unsigned long long)i2);
		init = i2;
		dirty = d2;
		if (d2 > r->max_dirty)
			r->max_dirty = d2;
		if (!init)
			r->initial_zero = true;
	}
}

void chk_precopy(struct chk *ch)
{
	static const char *const names[] = { "precopy.initial", "precopy.progress",
					     "precopy.temporary_end", "precopy.dirty",
					     "precopy.roundtrip" };
	struct chk_dev *a = &ch->a;
	struct precopy_run r = { 0 };
	struct chk_snap src = { 0 };
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, pre_len = 0;
	char why[256], b1[32], b2[32], b3[32];
	bool any = false;

	for (unsigned i = 0; i < 5; i++)
		any |= chk_selected(ch, names[i]);
	if (!any)
		return;
	const char *skip = NULL;
	if (!ch->caps_ok)
		skip = "no valid migration capabilities";
	else if (!(ch->caps & DEVMIG_MIG_PRE_COPY))
		skip = "the device lacks PRE_COPY";
	else if (a->lost)
		skip = "the connection to A was lost";
	if (skip) {
		for (unsigned i = 0; i < 5; i++)
			if (chk_begin(ch, names[i]))
				chk_skip(ch, "%s", skip);
		return;
	}
	/* One run feeds every check; its deadline is that of one check. */
	chk_quiet(ch, "precopy");
	r.has_info = ch->precopy_info;
	if (chk_to_running(ch, a, why, sizeof(why)) || chk_apply_writes(ch, a, why, sizeof(why)) ||
	    set_expect(a, DEVMIG_STATE_PRE_COPY, why, sizeof(why))) {
		snprintf(r.err, sizeof(r.err), "%s", why);
	} else {
		r.entered = true;
		precopy_read(ch, a, &r, &buf, &len, &cap);
	}
	pre_len = len;

	/* Leave for STOP_COPY only now that initial_bytes is 0, read the rest, load it all. */
	int rt = -1;
	char rt_ev[CHK_EV_MAX] = "";
	if (r.entered && !r.err[0] && r.temp_end) {
		struct chk_read_stats st;
		uint8_t *rest = NULL;
		size_t rest_len = 0;
		size_t mark = ch->evlen;
		if (set_expect(a, DEVMIG_STATE_STOP_COPY, why, sizeof(why))) {
			chk_ev(ch, "%s", why);
		} else if (chk_read_to_end(ch, a, &rest, &rest_len, &st, why, sizeof(why))) {
			chk_ev(ch, "STOP_COPY: %s", why);
		} else if (grow(&buf, &cap, len + rest_len + 1)) {
			chk_ev(ch, "out of memory");
		} else {
			if (rest_len)
				memcpy(buf + len, rest, rest_len);
			len += rest_len;
			chk_ev(ch, "PRE_COPY gave %s, then STOP_COPY (entered with initial_bytes %s) "
				   "%s: ",
			       chk_bytes(pre_len, b1, sizeof(b1)), r.has_info ? "0" : "unknown",
			       chk_bytes(rest_len, b2, sizeof(b2)));
			if (st.short_before_end)
				chk_ev(ch, "a short STOP_COPY read was followed by more data; ");
			if (set_expect(a, DEVMIG_STATE_STOP, why, sizeof(why)) ||
			    set_expect(a, DEVMIG_STATE_RUNNING, why, sizeof(why)))
				chk_ev(ch, "A back to RUNNING: %s", why);
			else if (ch->lay_ok && chk_snap_take(ch, a, &src))
				chk_ev(ch, "A's registers could not be read");
			else
				rt = load_and_compare(ch, ch->dst, buf, len, &src, true, false);
			if (st.short_before_end)
				rt = -1;
		}
		free(rest);
		snprintf(rt_ev, sizeof(rt_ev), "%s", ch->ev + mark);
		ch->evlen = mark;
		ch->ev[mark] = 0;
	}
	chk_snap_free(&src);
	free(buf);

	const char *noinfo = "no PRE_COPY progress query (precopy_info extension, kernel "
			     "PRECOPY_INFO)";
	if (chk_begin(ch, names[0])) {
		if (!r.entered || (r.has_info && !r.got_initial)) {
			chk_ev(ch, "%s", r.err);
			chk_end(ch, DEVMIG_CHECK_FAIL);
		} else if (!r.has_info) {
			chk_skip(ch, "%s", noinfo);
		} else {
			chk_ev(ch, "entering PRE_COPY: initial_bytes %s, dirty_bytes %s",
			       chk_bytes(r.initial0, b1, sizeof(b1)), chk_bytes(r.dirty0, b2, sizeof(b2)));
			if (!r.initial0)
				chk_ev(ch, ": no initial data announced");
			chk_end(ch, r.initial0 ? DEVMIG_CHECK_PASS : DEVMIG_CHECK_FAIL);
		}
	}
	if (chk_begin(ch, names[1])) {
		if (!r.has_info && r.entered) {
			chk_skip(ch, "%s", noinfo);
		} else if (r.progress_err[0] || !r.initial_zero) {
			chk_ev(ch, "%s", r.progress_err[0] ? r.progress_err : r.err);
			if (!r.initial_zero && !r.progress_err[0] && !r.err[0])
				chk_ev(ch, "initial_bytes never reached 0");
			chk_end(ch, DEVMIG_CHECK_FAIL);
		} else {
			chk_ev(ch, "initial_bytes fell from %s to 0, never rising, over %llu reads of %s "
				   "(the figure counts what the device will send, not always bytes "
				   "on the wire)",
			       chk_bytes(r.initial0, b1, sizeof(b1)), (unsigned long long)r.pass_reads,
			       chk_bytes(r.pass_bytes, b2, sizeof(b2)));
			chk_end(ch, DEVMIG_CHECK_PASS);
		}
	}
	if (chk_begin(ch, names[2])) {
		if (r.end_err[0] || !r.temp_end) {
			chk_ev(ch, "%s", r.end_err[0] ? r.end_err : r.err);
			chk_end(ch, DEVMIG_CHECK_FAIL);
		} else {
			chk_ev(ch, "after %s in PRE_COPY, an empty read (not an error)",
			       chk_bytes(pre_len, b1, sizeof(b1)));
			if (r.has_info)
				chk_ev(ch, " with initial_bytes 0 and dirty_bytes 0 just before");
			chk_end(ch, DEVMIG_CHECK_PASS);
		}
	}
	if (chk_begin(ch, names[3])) {
		if (!r.has_info && r.entered) {
			chk_skip(ch, "%s", noinfo);
		} else if (r.dirty_err[0] || !r.temp_end) {
			chk_ev(ch, "%s", r.dirty_err[0] ? r.dirty_err : r.err);
			chk_end(ch, DEVMIG_CHECK_FAIL);
		} else {
			chk_ev(ch, "dirty_bytes %s on entry, at most %s; %s read after initial_bytes "
				   "reached 0, each read announced by initial/dirty > 0; 0 at the "
				   "temporary end (nothing drove the device meanwhile)",
			       chk_bytes(r.dirty0, b1, sizeof(b1)), chk_bytes(r.max_dirty, b2, sizeof(b2)),
			       chk_bytes(r.tail_bytes, b3, sizeof(b3)));
			chk_end(ch, DEVMIG_CHECK_PASS);
		}
	}
	if (chk_begin(ch, names[4])) {
		if (!rt_ev[0]) {
			chk_ev(ch, "not run: %s", r.err[0] ? r.err : "PRE_COPY data did not reach its "
								    "temporary end");
			chk_end(ch, DEVMIG_CHECK_FAIL);
		} else {
			chk_ev(ch, "%s", rt_ev);
			chk_end(ch, rt ? DEVMIG_CHECK_FAIL : DEVMIG_CHECK_PASS);
		}
	}
	char w[256];
	chk_to_running(ch, a, w, sizeof(w));
}
