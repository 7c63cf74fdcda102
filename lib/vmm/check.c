/* SPDX-License-Identifier: MIT */
/*
 * The migration conformance checker: the runner, the calls every check
 * shares, and the checks that need no migration data moved (capabilities,
 * the state machine, reset, data in the wrong state, DMA logging, ERROR).
 * The stream checks are in check_stream.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check_internal.h"
#include "devmig/compat.h"

#define DEFAULT_STEP_MS 60000u
#define DEFAULT_MAX_STREAM (1ull << 30)
#define DEFAULT_COMPARE (64u << 10)
#define CONFIG_REGION 7u
#define CONFIG_INTERRUPT_LINE 0x3c
#define REGION_FLAG_READ 1u /* VFIO_REGION_INFO_FLAG_READ */

const char *devmig_check_status_name(enum devmig_check_status s)
{
	switch (s) {
	case DEVMIG_CHECK_PASS: return "ok";
	case DEVMIG_CHECK_FAIL: return "FAIL";
	case DEVMIG_CHECK_SKIP: return "skip";
	}
	return "?";
}

/* ---- names and numbers ---- */

const char *chk_errname(int rc)
{
	static __thread char buf[24];
	const char *n = rc < 0 ? strerrorname_np(-rc) : NULL;

	if (n)
		return n;
	snprintf(buf, sizeof(buf), "errno %d", rc < 0 ? -rc : rc);
	return buf;
}

const char *chk_region_name(uint32_t index, char *buf, size_t len)
{
	if (index < 6)
		snprintf(buf, len, "BAR%u", index);
	else if (index == 6)
		snprintf(buf, len, "ROM");
	else if (index == CONFIG_REGION)
		snprintf(buf, len, "config");
	else if (index == 8)
		snprintf(buf, len, "VGA");
	else if (snprintf(buf, len, "region%u", index) >= (int)len && len > 1)
		buf[len - 2] = '+'; /* cut short: say so */
	return buf;
}

const char *chk_bytes(uint64_t n, char *buf, size_t len)
{
	if (n < 10 * 1024)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else if (n < 10ull << 20)
		snprintf(buf, len, "%.1f KiB", n / 1024.0);
	else
		snprintf(buf, len, "%.1f MiB", n / 1048576.0);
	return buf;
}

static const char *sname(uint32_t s)
{
	return devmig_state_name(s);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64: small, seedable with any value, good enough to place cuts. */
uint64_t chk_rand(struct chk *ch)
{
	uint64_t z = (ch->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

size_t chk_rand_len(struct chk *ch, size_t max)
{
	size_t top = (size_t)1 << (chk_rand(ch) % 21); /* 1 B .. 1 MiB */
	if (top > max)
		top = max;
	return top ? 1 + (size_t)(chk_rand(ch) % top) : 0;
}

/* ---- running checks ---- */

bool chk_selected(const struct chk *ch, const char *name)
{
	const char *p = ch->cfg.only;

	if (!p || !*p)
		return true;
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n && !strncmp(name, p, n))
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

void chk_quiet(struct chk *ch, const char *name)
{
	ch->name = name;
	ch->ev[0] = 0;
	ch->evlen = 0;
	ch->deadline_ns = now_ns() + (uint64_t)ch->cfg.step_timeout_ms * 1000000ull;
}

bool chk_begin(struct chk *ch, const char *name)
{
	if (!chk_selected(ch, name))
		return false;
	chk_quiet(ch, name);
	return true;
}

void chk_ev(struct chk *ch, const char *fmt, ...)
{
	char tmp[CHK_EV_MAX];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n <= 0 || ch->evlen >= sizeof(ch->ev) - 1)
		return;
	const char *t = tmp;
	/* A note that already ended with a separator (a lost connection) takes no second one. */
	if (!strncmp(t, "; ", 2) && ch->evlen >= 2 && !strcmp(ch->ev + ch->evlen - 2, "; "))
		t += 2;
	size_t len = strlen(t), room = sizeof(ch->ev) - 1 - ch->evlen;
	if (len > room) {
		memcpy(ch->ev + ch->evlen, t, room);
		ch->evlen += room;
		memcpy(ch->ev + ch->evlen - 3, "...", 3);
	} else {
		memcpy(ch->ev + ch->evlen, t, len);
		ch->evlen += len;
	}
	ch->ev[ch->evlen] = 0;
}

void chk_end(struct chk *ch, enum devmig_check_status st)
{
	struct devmig_check_result r = { ch->name, st, ch->ev };

	while (ch->evlen && (ch->ev[ch->evlen - 1] == ' ' || ch->ev[ch->evlen - 1] == ';'))
		ch->ev[--ch->evlen] = 0;

	if (st == DEVMIG_CHECK_PASS)
		ch->sum->passed++;
	else if (st == DEVMIG_CHECK_FAIL)
		ch->sum->failed++;
	else
		ch->sum->skipped++;
	if (ch->cfg.result)
		ch->cfg.result(ch->cfg.opaque, &r);
}

void chk_skip(struct chk *ch, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ch->ev, sizeof(ch->ev), fmt, ap);
	va_end(ap);
	ch->evlen = strlen(ch->ev);
	chk_end(ch, DEVMIG_CHECK_SKIP);
}

bool chk_expired(struct chk *ch)
{
	return now_ns() > ch->deadline_ns;
}

/* A check on d can run: d is still connected. Otherwise the check is skipped. */
bool chk_alive(struct chk *ch, struct chk_dev *d)
{
	if (!d->lost)
		return true;
	chk_skip(ch, "the connection to %s was lost in %s", d->label, d->lost_at);
	return false;
}

/* ---- calls ---- */

static bool connection_error(int rc)
{
	return rc == -ETIMEDOUT || rc == -ECONNRESET || rc == -EPROTO || rc == -EPIPE ||
	       rc == -ENOTCONN;
}

int chk_rc(struct chk_dev *d, int rc, const char *what)
{
	if (rc < 0 && connection_error(rc) && !d->lost) {
		d->lost = true;
		snprintf(d->lost_at, sizeof(d->lost_at), "%s (%s: %s)",
			 d->ch->name ? d->ch->name : "setup", what, chk_errname(rc));
		chk_ev(d->ch, "%s%s: connection lost (%s: %s); ", d->ch->evlen ? "; " : "", d->label,
		       what, chk_errname(rc));
	}
	return rc;
}

int chk_get(struct chk_dev *d, enum devmig_state *s)
{
	if (d->lost)
		return -ENOTCONN;
	int rc = chk_rc(d, devmig_client_get_state(d->c, s), "GET state");
	if (!rc && *s == DEVMIG_STATE_ERROR && !d->errors_seen++)
		snprintf(d->error_first, sizeof(d->error_first), "%s",
			 d->ch->name ? d->ch->name : "setup");
	return rc;
}

int chk_set(struct chk_dev *d, enum devmig_state s)
{
	if (d->lost)
		return -ENOTCONN;
	return chk_rc(d, devmig_client_set_state(d->c, s), "SET state");
}

ssize_t chk_read(struct chk_dev *d, void *buf, size_t len)
{
	if (d->lost)
		return -ENOTCONN;
	ssize_t n = devmig_client_mig_read(d->c, buf, len);
	if (n < 0)
		chk_rc(d, (int)n, "migration data read");
	return n;
}

int chk_write(struct chk_dev *d, const void *buf, size_t len)
{
	if (d->lost)
		return -ENOTCONN;
	return chk_rc(d, devmig_client_mig_write(d->c, buf, len), "migration data write");
}

int chk_to_running(struct chk *ch, struct chk_dev *d, char *why, size_t wl)
{
	enum devmig_state before = DEVMIG_STATE_RUNNING, now = DEVMIG_STATE_ERROR;
	(void)ch;

	if (d->lost) {
		snprintf(why, wl, "connection to %s lost", d->label);
		return -ENOTCONN;
	}
	chk_get(d, &before);
	int rrc = chk_rc(d, devmig_client_reset(d->c), "reset");
	int grc = chk_get(d, &now);
	if (before == DEVMIG_STATE_ERROR) {
		if (!rrc && !grc && now == DEVMIG_STATE_RUNNING)
			d->errors_recovered++;
		else if (!d->error_unrecovered[0])
			snprintf(d->error_unrecovered, sizeof(d->error_unrecovered),
				 "reset %s, then %s", rrc ? chk_errname(rrc) : "ok",
				 grc ? chk_errname(grc) : sname(now));
	}
	if (!rrc && !grc && now == DEVMIG_STATE_RUNNING)
		return 0;
	/* A peer that refuses reset in some states: ask for RUNNING instead. */
	if (!grc && now != DEVMIG_STATE_ERROR && !d->lost) {
		int src = chk_set(d, DEVMIG_STATE_RUNNING);
		grc = chk_get(d, &now);
		if (!src && !grc && now == DEVMIG_STATE_RUNNING)
			return 0;
	}
	snprintf(why, wl, "cannot bring %s back to RUNNING: reset %s, state %s", d->label,
		 rrc ? chk_errname(rrc) : "ok", grc ? chk_errname(grc) : sname(now));
	return -EIO;
}

int chk_walk(struct chk *ch, struct chk_dev *d, enum devmig_state target, char *why, size_t wl)
{
	enum devmig_state path[DEVMIG_FSM_MAX_PATH], at = DEVMIG_STATE_RUNNING, now;
	size_t n;

	if (devmig_fsm_path(DEVMIG_STATE_RUNNING, target, ch->caps, path, &n)) {
		snprintf(why, wl, "no path from RUNNING to %s", sname(target));
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		int rc = chk_set(d, path[i]);
		if (rc) {
			snprintf(why, wl, "on the way to %s, %s -> %s refused (%s)", sname(target),
				 sname(at), sname(path[i]), chk_errname(rc));
			return rc;
		}
		rc = chk_get(d, &now);
		if (rc) {
			snprintf(why, wl, "GET state refused (%s)", chk_errname(rc));
			return rc;
		}
		if (now != path[i]) {
			snprintf(why, wl, "on the way to %s, %s -> %s ended in %s", sname(target),
				 sname(at), sname(path[i]), sname(now));
			return -EIO;
		}
		at = now;
	}
	return 0;
}

int chk_apply_writes(struct chk *ch, struct chk_dev *d, char *why, size_t wl)
{
	for (unsigned i = 0; i < ch->nwrites; i++) {
		const struct devmig_check_write *w = &ch->writes[i];
		uint8_t le[8];
		char rn[16];
		for (unsigned k = 0; k < 8; k++)
			le[k] = (uint8_t)(w->value >> (8 * k));
		int rc = d->lost ? -ENOTCONN
				 : chk_rc(d, devmig_client_region_write(d->c, w->region, w->offset, le,
									w->width),
					  "register write");
		if (rc) {
			snprintf(why, wl, "writing %s+%#llx on %s refused (%s)",
				 chk_region_name(w->region, rn, sizeof(rn)),
				 (unsigned long long)w->offset, d->label, chk_errname(rc));
			return rc;
		}
	}
	return 0;
}

/* ---- register snapshots ---- */

void chk_snap_free(struct chk_snap *s)
{
	for (unsigned i = 0; i < CHK_MAX_REGIONS; i++) {
		free(s->data[i]);
		free(s->bad[i]);
		s->data[i] = s->bad[i] = NULL;
	}
	s->taken = false;
}

int chk_snap_take(struct chk *ch, struct chk_dev *d, struct chk_snap *s)
{
	chk_snap_free(s);
	for (unsigned i = 0; i < ch->nlay; i++) {
		const struct chk_region *r = &ch->lay[i];
		s->data[i] = calloc(1, r->len);
		s->bad[i] = calloc(1, r->len);
		if (!s->data[i] || !s->bad[i]) {
			chk_snap_free(s);
			return -ENOMEM;
		}
		for (uint64_t off = 0; off < r->len; off += r->unit) {
			size_t n = r->len - off < r->unit ? (size_t)(r->len - off) : r->unit;
			if (d->lost) {
				chk_snap_free(s);
				return -ENOTCONN;
			}
			int rc = chk_rc(d, devmig_client_region_read(d->c, r->index, off,
								     s->data[i] + off, n),
					"register read");
			if (rc == -ENOTCONN || (rc && d->lost)) {
				chk_snap_free(s);
				return rc;
			}
			if (rc)
				memset(s->bad[i] + off, 1, n);
		}
	}
	s->taken = true;
	return 0;
}

static bool ignored(const struct chk *ch, uint32_t region, uint64_t off)
{
	for (unsigned i = 0; i < ch->cfg.nignore; i++) {
		const struct devmig_check_range *g = &ch->cfg.ignore[i];
		if (g->region == region && off >= g->offset && off - g->offset < g->length)
			return true;
	}
	return false;
}

uint64_t chk_snap_diff(const struct chk *ch, const struct chk_snap *x, const struct chk_snap *y,
		       char *first, size_t fl)
{
	uint64_t ndiff = 0;

	if (fl)
		first[0] = 0;
	for (unsigned i = 0; i < ch->nlay; i++) {
		const struct chk_region *r = &ch->lay[i];
		for (uint64_t off = 0; off < r->len; off++) {
			if (ignored(ch, r->index, off))
				continue;
			bool bx = x->bad[i][off], by = y->bad[i][off];
			if (bx == by && (bx || x->data[i][off] == y->data[i][off]))
				continue;
			if (!ndiff++ && fl) {
				uint64_t u = off - off % r->unit, vx = 0, vy = 0;
				unsigned w = r->unit > 8 ? 1 : r->unit;
				if (w > 1)
					off = u; /* show the whole register */
				else
					w = 1;
				for (unsigned k = 0; k < w && off + k < r->len; k++) {
					vx |= (uint64_t)x->data[i][off + k] << (8 * k);
					vy |= (uint64_t)y->data[i][off + k] << (8 * k);
				}
				char rn[16], sx[24], sy[24];
				snprintf(sx, sizeof(sx), "%#llx", (unsigned long long)vx);
				snprintf(sy, sizeof(sy), "%#llx", (unsigned long long)vy);
				snprintf(first, fl, "%s+%#llx: %s vs %s",
					 chk_region_name(r->index, rn, sizeof(rn)),
					 (unsigned long long)off, bx ? "unreadable" : sx,
					 by ? "unreadable" : sy);
				if (w > 1) {
					/* count the rest of this register from its end */
					for (unsigned k = 0; k < w && off + k < r->len; k++) {
						bool d2 = x->bad[i][off + k] != y->bad[i][off + k] ||
							  x->data[i][off + k] != y->data[i][off + k];
						if (k && d2)
							ndiff++;
					}
					off += w - 1;
				}
			}
		}
	}
	return ndiff;
}

/* ---- capabilities ---- */

static bool unsupported_rc(int rc)
{
	return rc == -ENOTTY || rc == -ENOTSUP || rc == -ENOSYS;
}

static void check_migration_caps(struct chk *ch)
{
	struct chk_dev *a = &ch->a;
	uint64_t caps = 0;

	/* Everything else depends on the capabilities: ask even when not reported. */
	bool shown = chk_begin(ch, "caps.migration");
	if (!shown)
		chk_quiet(ch, "caps.migration");
	int rc = a->lost ? -ENOTCONN : chk_rc(a, devmig_client_mig_caps(a->c, &caps), "MIGRATION");
	enum devmig_check_status st = DEVMIG_CHECK_PASS;
	if (rc) {
		chk_ev(ch, "MIGRATION feature GET refused (%s): not migratable", chk_errname(rc));
		st = DEVMIG_CHECK_FAIL;
	} else if (!devmig_caps_valid(caps)) {
		chk_ev(ch, "flags %#llx: %s", (unsigned long long)caps,
		       !(caps & DEVMIG_MIG_STOP_COPY) ? "STOP_COPY missing (mandatory)"
						       : "unknown bits set");
		st = DEVMIG_CHECK_FAIL;
	} else {
		ch->caps = caps;
		ch->caps_ok = true;
		chk_ev(ch, "flags %#llx: STOP_COPY%s%s", (unsigned long long)caps,
		       caps & DEVMIG_MIG_P2P ? " P2P" : "", caps & DEVMIG_MIG_PRE_COPY ? " PRE_COPY" : "");
		int p1 = chk_rc(a, devmig_client_feature_probe(a->c, DEVMIG_FEATURE_MIGRATION,
							       DEVMIG_FEATURE_GET),
				"PROBE");
		int p2 = chk_rc(a, devmig_client_feature_probe(a->c, DEVMIG_FEATURE_MIG_DEVICE_STATE,
							       DEVMIG_FEATURE_GET | DEVMIG_FEATURE_SET),
				"PROBE");
		if (p1 || p2) {
			chk_ev(ch, "; but PROBE of %s refused (%s)",
			       p1 ? "MIGRATION GET" : "MIG_DEVICE_STATE GET|SET", chk_errname(p1 ? p1 : p2));
			st = DEVMIG_CHECK_FAIL;
		} else {
			chk_ev(ch, "; PROBE of MIGRATION and MIG_DEVICE_STATE ok");
		}
	}
	if (shown)
		chk_end(ch, st);
}

static void check_state_and_size(struct chk *ch)
{
	struct chk_dev *a = &ch->a;
	enum devmig_state s;
	char why[256];

	if (chk_begin(ch, "caps.state")) {
		if (!chk_alive(ch, a))
			goto size;
		if (!ch->caps_ok) {
			chk_skip(ch, "no valid migration capabilities");
			goto size;
		}
		int rc = chk_get(a, &s);
		if (rc) {
			chk_ev(ch, "GET MIG_DEVICE_STATE refused (%s)", chk_errname(rc));
			chk_end(ch, DEVMIG_CHECK_FAIL);
			goto size;
		}
		chk_ev(ch, "state %s", sname(s));
		if (s > DEVMIG_STATE_PRE_COPY_P2P || !devmig_state_supported(s, ch->caps)) {
			chk_ev(ch, ": not a state of this device");
			chk_end(ch, DEVMIG_CHECK_FAIL);
			goto size;
		}
		rc = chk_to_running(ch, a, why, sizeof(why));
		if (rc)
			chk_ev(ch, "; %s", why);
		else
			chk_ev(ch, "; reset: RUNNING");
		chk_end(ch, rc ? DEVMIG_CHECK_FAIL : DEVMIG_CHECK_PASS);
	}
size:
	if (chk_begin(ch, "caps.data_size")) {
		uint64_t bytes;
		char b[32];
		if (!chk_alive(ch, a))
			return;
		if (!ch->caps_ok) {
			chk_skip(ch, "no valid migration capabilities");
			return;
		}
		int rc = chk_rc(a, devmig_client_stop_copy_size(a->c, &bytes), "MIG_DATA_SIZE");
		if (unsupported_rc(rc)) {
			chk_skip(ch, "MIG_DATA_SIZE not offered (%s)", chk_errname(rc));
			return;
		}
		if (rc) {
			chk_ev(ch, "MIG_DATA_SIZE GET refused (%s)", chk_errname(rc));
			chk_end(ch, DEVMIG_CHECK_FAIL);
			return;
		}
		chk_ev(ch, "MIG_DATA_SIZE in RUNNING: %s (compared with the real size in save.estimate)",
		       chk_bytes(bytes, b, sizeof(b)));
		chk_end(ch, DEVMIG_CHECK_PASS);
	}
}

static void check_extensions(struct chk *ch)
{
	struct chk_dev *a = &ch->a;
	bool ok = true, any = false;

	bool shown = chk_begin(ch, "caps.extensions");
	if (!shown)
		chk_quiet(ch, "caps.extensions");
	if (a->lost) {
		if (shown)
			chk_alive(ch, a);
		return;
	}
	/* Reported, never required: only an extension that is claimed and then
	 * does not answer is a failure. */
	if (devmig_client_has_ext(a->c, DEVMIG_EXT_PRECOPY_INFO)) {
		any = true;
		chk_ev(ch, "precopy_info");
		ch->precopy_info = (ch->caps & DEVMIG_MIG_PRE_COPY) != 0;
		if (!ch->precopy_info)
			chk_ev(ch, " (unused: no PRE_COPY)");
	}
	if (devmig_client_has_ext(a->c, DEVMIG_EXT_MIG_STATUS)) {
		uint64_t loaded;
		int lerr;
		char reason[DEVMIG_MIG_STATUS_REASON];
		int rc = chk_rc(a, devmig_client_mig_status(a->c, &loaded, &lerr, reason, sizeof(reason)),
				"mig_status");
		chk_ev(ch, "%smig_status", any ? ", " : "");
		any = true;
		if (rc) {
			chk_ev(ch, " (claimed, GET refused: %s)", chk_errname(rc));
			ok = false;
		}
	}
	if (devmig_client_has_ext(a->c, DEVMIG_EXT_COMPAT)) {
		struct devmig_compat_info ci;
		int rc = chk_rc(a, devmig_client_compat_info(a->c, &ci), "compat");
		chk_ev(ch, "%scompat", any ? ", " : "");
		any = true;
		if (rc) {
			chk_ev(ch, " (claimed, GET refused: %s)", chk_errname(rc));
			ok = false;
		} else {
			chk_ev(ch, " (version \"%s\")", ci.version);
			if (ch->caps_ok && ci.caps != ch->caps) {
				chk_ev(ch, " but its caps %#llx differ from MIGRATION's %#llx",
				       (unsigned long long)ci.caps, (unsigned long long)ch->caps);
				ok = false;
			}
			/* devmig's cores carry config space in the stream (and its
			 * fingerprint in compat): compare it too. */
			ch->config_migrates = true;
		}
	}
	if (!any)
		chk_ev(ch, "none (a plain vfio-user or kernel device: none is needed)");
	if (shown)
		chk_end(ch, ok ? DEVMIG_CHECK_PASS : DEVMIG_CHECK_FAIL);
}

static void check_dma_logging_caps(struct chk *ch)
{
	struct chk_dev *a = &ch->a;

	if (!chk_begin(ch, "caps.dma_logging") || !chk_alive(ch, a))
		return;
	int s = chk_rc(a, devmig_client_feature_probe(a->c, DEVMIG_FEATURE_DMA_LOGGING_START,
						      DEVMIG_FEATURE_SET), "PROBE");
	int t = chk_rc(a, devmig_client_feature_probe(a->c, DEVMIG_FEATURE_DMA_LOGGING_STOP,
						      DEVMIG_FEATURE_SET), "PROBE");
	int r = chk_rc(a, devmig_client_feature_probe(a->c, DEVMIG_FEATURE_DMA_LOGGING_REPORT,
						      DEVMIG_FEATURE_GET), "PROBE");
	if (!s && !t && !r) {
		chk_ev(ch, "offered: PROBE of START, STOP and REPORT ok");
		chk_end(ch, DEVMIG_CHECK_PASS);
	} else if (s && t && r) {
		chk_ev(ch, "not offered (PROBE: %s)", chk_errname(s));
		chk_end(ch, DEVMIG_CHECK_PASS);
	} else {
		chk_ev(ch, "only part offered: START %s, STOP %s, REPORT %s", s ? chk_errname(s) : "ok",
		       t ? chk_errname(t) : "ok", r ? chk_errname(r) : "ok");
		chk_end(ch, DEVMIG_CHECK_FAIL);
	}
}

/* Which regions are compared, and in what access width (the first that reads). */
static void check_regions(struct chk *ch)
{
	struct chk_dev *a = &ch->a;
	struct devmig_device_info di;
	char why[256];

	bool shown = chk_begin(ch, "caps.regions");
	if (!shown)
		chk_quiet(ch, "caps.regions");
	if (a->lost) {
		if (shown)
			chk_alive(ch, a);
		return;
	}
	if (ch->caps_ok && chk_to_running(ch, a, why, sizeof(why))) {
		chk_ev(ch, "%s", why);
		if (shown)
			chk_end(ch, DEVMIG_CHECK_FAIL);
		return;
	}
	int rc = chk_rc(a, devmig_client_device_info(a->c, &di), "DEVICE_GET_INFO");
	if (rc) {
		chk_ev(ch, "DEVICE_GET_INFO refused (%s)", chk_errname(rc));
		if (shown)
			chk_end(ch, DEVMIG_CHECK_FAIL);
		return;
	}
	chk_ev(ch, "%u regions", di.num_regions);
	size_t dl = 0;
	ch->lay_desc[0] = 0;
	for (uint32_t i = 0; i < di.num_regions && ch->nlay < CHK_MAX_REGIONS; i++) {
		struct devmig_region_info ri;
		int fd = -1;
		char rn[16], b[32];
		rc = chk_rc(a, devmig_client_region_info(a->c, i, &ri, &fd, NULL, NULL), "REGION_INFO");
		if (fd >= 0)
			close(fd);
		if (a->lost)
			break;
		if (rc) {
			chk_ev(ch, "; %s: info refused (%s)", chk_region_name(i, rn, sizeof(rn)),
			       chk_errname(rc));
			continue;
		}
		if (!ri.size || !(ri.flags & REGION_FLAG_READ))
			continue;
		if (i == CONFIG_REGION && !ch->config_migrates) {
			chk_ev(ch, "; config space not compared (the VMM, not this device's stream, "
				   "restores it)");
			continue;
		}
		uint64_t len = ri.size < ch->cfg.compare_limit ? ri.size : ch->cfg.compare_limit;
		static const uint32_t widths[] = { 4096, 8, 4, 2, 1 };
		uint32_t unit = 0;
		uint8_t probe[4096];
		for (unsigned k = 0; k < sizeof(widths) / sizeof(widths[0]) && !unit; k++) {
			uint32_t w = widths[k] < len ? widths[k] : (uint32_t)len;
			if (!chk_rc(a, devmig_client_region_read(a->c, i, 0, probe, w), "register read"))
				unit = w;
			if (a->lost)
				break;
		}
		if (!unit) {
			chk_ev(ch, "; %s: no read width accepted", chk_region_name(i, rn, sizeof(rn)));
			continue;
		}
		ch->lay[ch->nlay++] = (struct chk_region){ i, len, unit };
		int n = snprintf(ch->lay_desc + dl, sizeof(ch->lay_desc) - dl, "%s%s %s%s (%u-byte reads)",
				 dl ? ", " : "", chk_region_name(i, rn, sizeof(rn)),
				 chk_bytes(len, b, sizeof(b)), len < ri.size ? " (first)" : "",
				 unit);
		if (n > 0 && (size_t)n < sizeof(ch->lay_desc) - dl)
			dl += (size_t)n;
	}
	if (a->lost) {
		if (shown)
			chk_end(ch, DEVMIG_CHECK_FAIL);
		return;
	}
	ch->lay_ok = true;
	chk_ev(ch, "; compared: %s", ch->nlay ? ch->lay_desc : "nothing readable");

	/* Device state for the stream when the user gave none for config
	 * space: the interrupt line, a byte with no effect on the device. */
	bool cfg_write = false;
	for (unsigned i = 0; i < ch->nwrites; i++)
		cfg_write |= ch->writes[i].region == CONFIG_REGION;
	if (ch->config_migrates && !cfg_write && ch->nwrites < CHK_MAX_WRITES) {
		uint8_t line = 0;
		if (!chk_rc(a, devmig_client_region_read(a->c, CONFIG_REGION, CONFIG_INTERRUPT_LINE,
							  &line, 1), "register read")) {
			uint8_t v = line ^ (uint8_t)(1 + chk_rand(ch) % 255);
			ch->writes[ch->nwrites++] =
				(struct devmig_check_write){ CONFIG_REGION, CONFIG_INTERRUPT_LINE, 1, v };
		}
	}
	size_t wl = 0;
	for (unsigned i = 0; i < ch->nwrites; i++) {
		char rn[16];
		int n = snprintf(ch->writes_desc + wl, sizeof(ch->writes_desc) - wl, "%s%s+%#llx=%#llx",
				 wl ? ", " : "", chk_region_name(ch->writes[i].region, rn, sizeof(rn)),
				 (unsigned long long)ch->writes[i].offset,
				 (unsigned long long)ch->writes[i].value);
		if (n > 0 && (size_t)n < sizeof(ch->writes_desc) - wl)
			wl += (size_t)n;
	}
	chk_ev(ch, "; source state written before each save: %s",
	       ch->nwrites ? ch->writes_desc : "none (comparisons show only what a fresh device has)");
	if (shown)
		chk_end(ch, DEVMIG_CHECK_PASS);
}

/* B must be the same device as A for the round trips to mean anything. */
static void check_pair(struct chk *ch)
{
	struct chk_dev *a = &ch->a, *b = &ch->b;
	char why[256];

	if (!chk_begin(ch, "caps.pair"))
		return;
	if (!b->c) {
		chk_skip(ch, "no second instance (B): the round trips load into A itself after a reset");
		return;
	}
	if (!chk_alive(ch, a) || !chk_alive(ch, b))
		return;
	if (!ch->caps_ok) {
		chk_skip(ch, "no valid migration capabilities");
		return;
	}
	bool ok = true;
	uint64_t bcaps = 0;
	int rc = chk_rc(b, devmig_client_mig_caps(b->c, &bcaps), "MIGRATION");
	if (rc || bcaps != ch->caps) {
		chk_ev(ch, "B's MIGRATION %s%#llx, A's %#llx", rc ? "refused, " : "",
		       (unsigned long long)bcaps, (unsigned long long)ch->caps);
		ok = false;
	} else {
		chk_ev(ch, "same migration flags");
	}
	struct devmig_device_info da, db;
	if (!chk_rc(a, devmig_client_device_info(a->c, &da), "DEVICE_GET_INFO") &&
	    !chk_rc(b, devmig_client_device_info(b->c, &db), "DEVICE_GET_INFO")) {
		if (da.num_regions != db.num_regions) {
			chk_ev(ch, "; regions: A %u, B %u", da.num_regions, db.num_regions);
			ok = false;
		}
	}
	for (unsigned i = 0; i < ch->nlay && ok; i++) {
		struct devmig_region_info ri;
		int fd = -1;
		char rn[16];
		rc = chk_rc(b, devmig_client_region_info(b->c, ch->lay[i].index, &ri, &fd, NULL, NULL),
			    "REGION_INFO");
		if (fd >= 0)
			close(fd);
		if (rc || ri.size < ch->lay[i].len) {
			chk_ev(ch, "; B's %s is smaller or refused",
			       chk_region_name(ch->lay[i].index, rn, sizeof(rn)));
			ok = false;
		}
	}
	if (ok)
		chk_ev(ch, ", same regions");
	if (devmig_client_has_ext(a->c, DEVMIG_EXT_COMPAT) &&
	    devmig_client_has_ext(b->c, DEVMIG_EXT_COMPAT)) {
		struct devmig_compat_info ca, cb;
		if (!devmig_client_compat_info(a->c, &ca) && !devmig_client_compat_info(b->c, &cb)) {
			if (devmig_compat_check(&cb, ca.version, ca.config_fingerprint, why,
						sizeof(why))) {
				chk_ev(ch, "; B does not accept A's state: %s", why);
				ok = false;
			} else {
				chk_ev(ch, "; B accepts A's version \"%s\"", ca.version);
			}
		}
	}
	if (chk_to_running(ch, b, why, sizeof(why))) {
		chk_ev(ch, "; %s", why);
		ok = false;
	}
	chk_end(ch, ok ? DEVMIG_CHECK_PASS : DEVMIG_CHECK_FAIL);
}

/* ---- the state machine ---- */

static bool supported(const struct chk *ch, uint32_t s)
{
	return s != DEVMIG_STATE_ERROR && devmig_state_supported(s, ch->caps);
}

/* Bring d to cur by known arcs, ready for a request (RESUMING gets a whole stream when
 * the request leaves it). 1: ready; 0: not testable (why says so); -1: failed. */
static int reach(struct chk *ch, struct chk_dev *d, enum devmig_state cur, bool leaving,
		 char *why, size_t wl)
{
	if (chk_to_running(ch, d, why, wl))
		return -1;
	if (chk_walk(ch, d, cur, why, wl))
		return -1;
	if (cur == DEVMIG_STATE_RESUMING && leaving) {
		if (!ch->stream) {
			snprintf(why, wl, "no stream to leave RESUMING with (save.stop_copy failed)");
			return 0;
		}
		int rc = chk_write(d, ch->stream, ch->stream_len);
		if (rc) {
			snprintf(why, wl, "RESUMING refused A's own stream (%s)", chk_errname(rc));
			return -1;
		}
	}
	return 1;
}

static void check_fsm_from(struct chk *ch, enum devmig_state cur)
{
	struct chk_dev *a = &ch->a;
	char name[48], why[256];
	unsigned ok = 0, bad = 0, untested = 0;

	snprintf(name, sizeof(name), "fsm.from.%s", sname(cur));
	if (!chk_begin(ch, name) || !chk_alive(ch, a))
		return;
	char list[256] = "";
	size_t ll = 0;
	for (uint32_t req = DEVMIG_STATE_STOP; req < DEVMIG_STATE_COUNT; req++) {
		enum devmig_state path[DEVMIG_FSM_MAX_PATH], now;
		size_t n;
		if (!supported(ch, req) || devmig_fsm_path(cur, req, ch->caps, path, &n))
			continue;
		if (chk_expired(ch)) {
			chk_ev(ch, "%sdeadline passed", ch->evlen ? "; " : "");
			bad++;
			break;
		}
		int r = reach(ch, a, cur, req != cur, why, sizeof(why));
		if (r <= 0) {
			chk_ev(ch, "%s%s -> %s: %s", ch->evlen ? "; " : "", sname(cur), sname(req), why);
			r < 0 ? bad++ : untested++;
			if (a->lost)
				break;
			continue;
		}
		int rc = chk_set(a, req);
		int grc = chk_get(a, &now);
		if (rc || grc || now != req) {
			chk_ev(ch, "%s%s -> %s: ", ch->evlen ? "; " : "", sname(cur), sname(req));
			if (rc)
				chk_ev(ch, "refused (%s), ", chk_errname(rc));
			chk_ev(ch, "ended in %s (the table: %s", grc ? chk_errname(grc) : sname(now),
			       sname(req));
			for (size_t k = 0; k + 1 < n; k++)
				chk_ev(ch, "%s%s", k ? ", " : " via ", sname(path[k]));
			chk_ev(ch, ")");
			bad++;
			if (a->lost)
				break;
			continue;
		}
		ok++;
		int m = snprintf(list + ll, sizeof(list) - ll, "%s%s", ll ? ", " : "", sname(req));
		if (m > 0 && (size_t)m < sizeof(list) - ll)
			ll += (size_t)m;
	}
	if (!bad && !untested) {
		chk_ev(ch, "%u requests, each ended in the state asked for: %s", ok, list);
		chk_end(ch, DEVMIG_CHECK_PASS);
	} else if (!bad) {
		/* Not a finding about the device: what was needed to test is missing. */
		chk_ev(ch, "; %u requests untested, %u as the table: %s", untested, ok, list);
		chk_end(ch, DEVMIG_CHECK_SKIP);
	} else {
		chk_ev(ch, "; %u of %u as the table", ok, ok + bad + untested);
		chk_end(ch, DEVMIG_CHECK_FAIL);
	}
}

enum refusal_kind { REF_FORBIDDEN, REF_ERROR, REF_UNSUPPORTED, REF_RANGE };

/* Requests that must be refused with the state unchanged. */
static void check_refusals(struct chk *ch, enum refusal_kind kind)
{
	static const char *const names[] = {
		[REF_FORBIDDEN] = "fsm.forbidden",
		[REF_ERROR] = "fsm.error_request",
		[REF_UNSUPPORTED] = "fsm.unsupported",
		[REF_RANGE] = "fsm.out_of_range",
	};
	struct chk_dev *a = &ch->a;
	char why[256];
	unsigned tried = 0, bad = 0;
	int errs[4] = { 0 };
	unsigned nerrs = 0;

	if (!chk_begin(ch, names[kind]) || !chk_alive(ch, a))
		return;
	if (!ch->caps_ok) {
		chk_skip(ch, "no valid migration capabilities");
		return;
	}
	for (uint32_t cur = DEVMIG_STATE_STOP; cur < DEVMIG_STATE_COUNT && !a->lost; cur++) {
		if (!supported(ch, cur))
			continue;
		uint32_t reqs[DEVMIG_STATE_COUNT + 2];
		unsigned nreq = 0;
		for (uint32_t req = 0; req < DEVMIG_STATE_COUNT; req++) {
			enum devmig_state path[DEVMIG_FSM_MAX_PATH];
			size_t n;
			enum devmig_fsm_err e = devmig_fsm_path(cur, req, ch->caps, path, &n);
			if ((kind == REF_FORBIDDEN && e == DEVMIG_FSM_E_FORBIDDEN) ||
			    (kind == REF_ERROR && req == DEVMIG_STATE_ERROR) ||
			    (kind == REF_UNSUPPORTED && req != DEVMIG_STATE_ERROR && !supported(ch, req)))
				reqs[nreq++] = req;
		}
		if (kind == REF_RANGE) {
			reqs[nreq++] = DEVMIG_STATE_COUNT;
			reqs[nreq++] = 0xffffffffu;
		}
		for (unsigned k = 0; k < nreq && !a->lost; k++) {
			enum devmig_state now;
			if (chk_expired(ch)) {
				chk_ev(ch, "%sdeadline passed", ch->evlen ? "; " : "");
				bad++;
				goto out;
			}
			tried++;
			if (reach(ch, a, cur, false, why, sizeof(why)) <= 0) {
				chk_ev(ch, "%s%s: %s", ch->evlen ? "; " : "", sname(cur), why);
				bad++;
				continue;
			}
			int rc = chk_set(a, (enum devmig_state)reqs[k]);
			int grc = chk_get(a, &now);
			char rq[24];
			if (reqs[k] < DEVMIG_STATE_COUNT)
				snprintf(rq, sizeof(rq), "%s", sname(reqs[k]));
			else
				snprintf(rq, sizeof(rq), "%u", reqs[k]);
			if (!rc || grc || now != cur) {
				chk_ev(ch, "%s%s -> %s %s, state then %s", ch->evlen ? "; " : "",
				       sname(cur), rq, rc ? "refused" : "accepted",
				       grc ? chk_errname(grc) : sname(now));
				bad++;
				continue;
			}
			bool seen = false;
			for (unsigned e = 0; e < nerrs; e++)
				seen |= errs[e] == rc;
			if (!seen && nerrs < 4)
				errs[nerrs++] = rc;
		}
	}
out:
	if (!tried && !bad) {
		chk_skip(ch, kind == REF_FORBIDDEN ? "no forbidden arc among this device's states "
						     "(STOP_COPY -> PRE_COPY needs PRE_COPY)"
						   : "the device supports every state");
		return;
	}
	if (!bad) {
		static const char *const what[] = {
			[REF_FORBIDDEN] = "forbidden arcs (STOP_COPY -> PRE_COPY[_P2P])",
			[REF_ERROR] = "requests of ERROR",
			[REF_UNSUPPORTED] = "requests of states without their capability",
			[REF_RANGE] = "requests of state values 8 and 0xffffffff",
		};
		chk_ev(ch, "%u %s, from every state: refused (", tried, what[kind]);
		for (unsigned e = 0; e < nerrs; e++)
			chk_ev(ch, "%s%s", e ? ", " : "", chk_errname(errs[e]));
		chk_ev(ch, "), the state unchanged");
	}
	chk_end(ch, bad ? DEVMIG_CHECK_FAIL : DEVMIG_CHECK_PASS);
}

static void check_fsm(struct chk *ch)
{
	if (!ch->caps_ok) {
		if (chk_begin(ch, "fsm.from"))
			chk_skip(ch, "no valid migration capabilities");
	} else {
		for (uint32_t s = DEVMIG_STATE_STOP; s < DEVMIG_STATE_COUNT; s++) {
			char name[48];
			if (supported(ch, s)) {
				check_fsm_from(ch, (enum devmig_state)s);
			} else {
				snprintf(name, sizeof(name), "fsm.from.%s", sname(s));
				if (chk_begin(ch, name))
					chk_skip(ch, "the device lacks %s",
						 s == DEVMIG_STATE_RUNNING_P2P ? "P2P"
						 : s == DEVMIG_STATE_PRE_COPY ? "PRE_COPY"
									       : "P2P or PRE_COPY");
			}
		}
	}
	check_refusals(ch, REF_FORBIDDEN);
	check_refusals(ch, REF_ERROR);
	check_refusals(ch, REF_UNSUPPORTED);
	check_refusals(ch, REF_RANGE);
}

/* ---- reset ---- */

static void check_reset_from(struct chk *ch, enum devmig_state cur)
{
	struct chk_dev *a = &ch->a;
	char name[48], why[256];
	enum devmig_state now;
	uint8_t buf[64];

	snprintf(name, sizeof(name), "reset.from.%s", sname(cur));
	if (!chk_begin(ch, name) || !chk_alive(ch, a))
		return;
	if (chk_to_running(ch, a, why, sizeof(why)) || chk_apply_writes(ch, a, why, sizeof(why)) ||
	    chk_walk(ch, a, cur, why, sizeof(why))) {
		chk_ev(ch, "%s", why);
		chk_end(ch, DEVMIG_CHECK_FAIL);
		return;
	}
	/* An open session for the reset to drop: part of a stream read or written. */
	if (devmig_state_is_saving(cur)) {
		ssize_t n = chk_read(a, buf, sizeof(buf));
		chk_ev(ch, "%s with %zd bytes of its stream read", sname(cur), n < 0 ? (ssize_t)0 : n);
	} else if (cur == DEVMIG_STATE_RESUMING && ch->stream && ch->stream_len >= 2) {
		int rc = chk_write(a, ch->stream, ch->stream_len / 2);
		chk_ev(ch, "RESUMING with half a stream written%s", rc ? " (refused)" : "");
	} else {
		chk_ev(ch, "%s", sname(cur));
	}
	int rc = chk_rc(a, devmig_client_reset(a->c), "reset");
	int grc = chk_get(a, &now);
	if (rc) {
		chk_ev(ch, ": reset refused (%s), state %s", chk_errname(rc),
		       grc ? chk_errname(grc) : sname(now));
		if (chk_to_running(ch, a, why, sizeof(why)))
			chk_ev(ch, "; %s", why);
		chk_end(ch, DEVMIG_CHECK_FAIL);
		return;
	}
	if (grc || now != DEVMIG_STATE_RUNNING) {
		chk_ev(ch, ": reset left %s", grc ? chk_errname(grc) : sname(now));
		chk_end(ch, DEVMIG_CHECK_FAIL);
		return;
	}
	chk_ev(ch, ": reset -> RUNNING");
	/* The old session is gone and a new one works: a fresh stream starts. */
	if (chk_walk(ch, a, DEVMIG_STATE_STOP_COPY, why, sizeof(why))) {
		chk_ev(ch, "; then %s", why);
		chk_end(ch, DEVMIG_CHECK_FAIL);
		return;
	}
	ssize_t n = chk_read(a, buf, sizeof(buf));
	if (n <= 0) {
		chk_ev(ch, "; then a new STOP_COPY session gave %s",
		       n < 0 ? chk_errname((int)n) : "no data");
		chk_end(ch, DEVMIG_CHECK_FAIL);
		return;
	}
	if (ch->stream && ch->stream_len >= (size_t)n && memcmp(buf, ch->stream, (size_t)n)) {
		/* Streams of one device may differ (state, time), so this is only noted. */
		chk_ev(ch, "; a new STOP_COPY stream starts (its first bytes differ from the save's)");
	} else {
		chk_ev(ch, "; a new STOP_COPY stream starts");
	}
	if (chk_to_running(ch, a, why, sizeof(why))) {
		chk_ev(ch, "; %s", why);
		chk_end(ch, DEVMIG_CHECK_FAIL);
		return;
	}
	chk_end(ch, DEVMIG_CHECK_PASS);
}

static void check_reset(struct chk *ch)
{
	if (!ch->caps_ok) {
		if (chk_begin(ch, "reset.from"))
			chk_skip(ch, "no valid migration capabilities");
		return;
	}
	for (uint32_t s = DEVMIG_STATE_STOP; s < DEVMIG_STATE_COUNT; s++)
		if (supported(ch, s))
			check_reset_from(ch, (enum devmig_state)s);
}

/* ---- migration data in the wrong state ---- */

static void check_data_wrong_state(struct chk *ch, bool is_write)
{
	struct chk_dev *a = &ch->a;
	char why[256], okl[256] = "";
	size_t ol = 0;
	unsigned bad = 0;
	uint8_t buf[64];

	if (!chk_begin(ch, is_write ? "data.write_wrong_state" : "data.read_wrong_state") ||
	    !chk_alive(ch, a))
		return;
	if (!ch->caps_ok) {
		chk_skip(ch, "no valid migration capabilities");
		return;
	}
	/* A write carries the start of a real stream: only the state may refuse it. */
	memset(buf, 0, sizeof(buf));
	if (ch->stream)
		memcpy(buf, ch->stream, ch->stream_len < sizeof(buf) ? ch->stream_len : sizeof(buf));
	for (uint32_t s = DEVMIG_STATE_STOP; s < DEVMIG_STATE_COUNT && !a->lost; s++) {
		enum devmig_state now;
		if (!supported(ch, s) || (is_write ? s == DEVMIG_STATE_RESUMING
						   : devmig_state_is_saving(s)))
			continue;
		if (reach(ch, a, (enum devmig_state)s, false, why, sizeof(why)) <= 0) {
			chk_ev(ch, "%s%s", bad++ ? "; " : "", why);
			continue;
		}
		int rc = is_write ? chk_write(a, buf, 16) : (int)chk_read(a, buf, 16);
		int grc = chk_get(a, &now);
		if (rc >= 0 || grc || now != s) {
			chk_ev(ch, "%sin %s: ", bad++ ? "; " : "", sname(s));
			if (rc >= 0 && is_write)
				chk_ev(ch, "16 bytes ACCEPTED");
			else if (rc >= 0)
				chk_ev(ch, "ACCEPTED (%d bytes returned)", rc);
			else
				chk_ev(ch, "refused (%s)", chk_errname(rc));
			if (grc || now != s)
				chk_ev(ch, ", state then %s", grc ? chk_errname(grc) : sname(now));
			continue;
		}
		int m = snprintf(okl + ol, sizeof(okl) - ol, "%s%s (%s)", ol ? ", " : "", sname(s),
				 chk_errname(rc));
		if (m > 0 && (size_t)m < sizeof(okl) - ol)
			ol += (size_t)m;
	}
	if (!bad)
		chk_ev(ch, "%s refused in %s; the state unchanged each time",
		       is_write ? "MIG_DATA_WRITE" : "MIG_DATA_READ", okl);
	chk_end(ch, bad ? DEVMIG_CHECK_FAIL : DEVMIG_CHECK_PASS);
}

static void check_precopy_info_wrong_state(struct chk *ch)
{
	struct chk_dev *a = &ch->a;
	char why[256];
	unsigned bad = 0, n = 0;

	if (!chk_begin(ch, "precopy.info_wrong_state") || !chk_alive(ch, a))
		return;
	if (!ch->caps_ok || !(ch->caps & DEVMIG_MIG_PRE_COPY)) {
		chk_skip(ch, "the device lacks PRE_COPY");
		return;
	}
	if (!ch->precopy_info) {
		chk_skip(ch, "no PRE_COPY progress query (precopy_info extension or kernel PRECOPY_INFO)");
		return;
	}
	chk_ev(ch, "PRE_COPY progress refused in");
	for (uint32_t s = DEVMIG_STATE_STOP; s < DEVMIG_STATE_COUNT && !a->lost; s++) {
		uint64_t i, d;
		if (!supported(ch, s) || s == DEVMIG_STATE_PRE_COPY || s == DEVMIG_STATE_PRE_COPY_P2P)
			continue;
		if (reach(ch, a, (enum devmig_state)s, false, why, sizeof(why)) <= 0) {
			chk_ev(ch, "; %s", why);
			bad++;
			continue;
		}
		int rc = chk_rc(a, devmig_client_precopy_info(a->c, &i, &d), "precopy info");
		if (!rc) {
			chk_ev(ch, "; in %s ACCEPTED (initial %llu, dirty %llu)", sname(s),
			       (unsigned long long)i, (unsigned long long)d);
			bad++;
		} else {
			chk_ev(ch, "%s %s (%s)", n++ ? "," : "", sname(s), chk_errname(rc));
		}
	}
	chk_end(ch, bad ? DEVMIG_CHECK_FAIL : DEVMIG_CHECK_PASS);
}

/* ---- DMA logging ---- */

static bool bitmap_clear(const uint64_t *bm, size_t bytes)
{
	for (size_t i = 0; i < bytes / 8; i++)
		if (bm[i])
			return false;
	return true;
}

static void check_dma_log(struct chk *ch)
{
	struct chk_dev *a = &ch->a;
	char why[256];
	bool ok = true;

	bool want_ranges = chk_begin(ch, "dma_log.ranges");
	if (want_ranges && !chk_alive(ch, a))
		want_ranges = false;
	else if (!want_ranges && !chk_selected(ch, "dma_log.invalid"))
		return;
	int probe = a->lost ? -ENOTCONN
			    : chk_rc(a, devmig_client_feature_probe(a->c,
								    DEVMIG_FEATURE_DMA_LOGGING_START,
								    DEVMIG_FEATURE_SET), "PROBE");
	if (want_ranges && probe) {
		chk_skip(ch, "DMA logging not offered (PROBE: %s)", chk_errname(probe));
	} else if (want_ranges) {
		/* Three ranges at 1 MiB alignment, so any page size the device picks up
		 * to 1 MiB keeps them aligned; none is mapped: no device can write them. */
		struct devmig_dma_logging_range r[3] = {
			{ 1ull << 30, 1ull << 20 },
			{ 2ull << 30, 2ull << 20 },
			{ 4ull << 30, 1ull << 20 },
		};
		uint64_t ps = 4096;
		uint64_t bm[(2u << 20) / 4096 / 64];
		if (chk_to_running(ch, a, why, sizeof(why))) {
			chk_ev(ch, "%s", why);
			chk_end(ch, DEVMIG_CHECK_FAIL);
			return;
		}
		int rc = chk_rc(a, devmig_client_log_start(a->c, &ps, r, 3), "DMA_LOGGING_START");
		if (rc) {
			chk_ev(ch, "START with 3 ranges refused (%s)", chk_errname(rc));
			chk_end(ch, DEVMIG_CHECK_FAIL);
			return;
		}
		chk_ev(ch, "START 3 ranges: page size %llu", (unsigned long long)ps);
		if (ps < 4096 || (ps & (ps - 1)) || ps > (1u << 20)) {
			chk_ev(ch, " (not a power of two in 4 KiB..1 MiB)");
			ok = false;
		}
		/* A sub-range inside the second range, in 4 KiB pages. */
		uint64_t sub = r[1].iova + (256u << 10), sublen = 512u << 10;
		rc = chk_rc(a, devmig_client_log_report(a->c, sub, sublen, 4096, bm), "REPORT");
		if (rc) {
			chk_ev(ch, "; REPORT of a 512 KiB sub-range refused (%s)", chk_errname(rc));
			ok = false;
		} else if (!bitmap_clear(bm, devmig_log_bitmap_size(sublen, 4096))) {
			chk_ev(ch, "; REPORT of a sub-range has dirty bits, but nothing is mapped");
			ok = false;
		} else {
			chk_ev(ch, "; REPORT of a 512 KiB sub-range (4 KiB pages): clear");
		}
		rc = chk_rc(a, devmig_client_log_report(a->c, r[2].iova, r[2].length, 4096, bm),
			    "REPORT");
		if (rc) {
			chk_ev(ch, "; REPORT of the third range refused (%s)", chk_errname(rc));
			ok = false;
		} else if (!bitmap_clear(bm, devmig_log_bitmap_size(r[2].length, 4096))) {
			chk_ev(ch, "; REPORT of the third range has dirty bits");
			ok = false;
		} else {
			chk_ev(ch, "; REPORT of the third range: clear");
		}
		rc = chk_rc(a, devmig_client_log_report(a->c, 3ull << 30, 1u << 20, 4096, bm), "REPORT");
		if (rc)
			chk_ev(ch, "; REPORT outside the ranges refused (%s)", chk_errname(rc));
		else if (!bitmap_clear(bm, devmig_log_bitmap_size(1u << 20, 4096))) {
			chk_ev(ch, "; REPORT outside the ranges has dirty bits");
			ok = false;
		} else {
			chk_ev(ch, "; REPORT outside the ranges answered clear");
		}
		rc = chk_rc(a, devmig_client_log_stop(a->c), "DMA_LOGGING_STOP");
		if (rc) {
			chk_ev(ch, "; STOP refused (%s)", chk_errname(rc));
			ok = false;
		} else {
			chk_ev(ch, "; STOP ok");
			rc = chk_rc(a, devmig_client_log_report(a->c, r[0].iova, r[0].length, 4096, bm),
				    "REPORT");
			if (!rc) {
				chk_ev(ch, "; REPORT after STOP ACCEPTED");
				ok = false;
			} else {
				chk_ev(ch, "; REPORT after STOP refused (%s)", chk_errname(rc));
			}
		}
		chk_end(ch, ok ? DEVMIG_CHECK_PASS : DEVMIG_CHECK_FAIL);
	}

	if (!chk_begin(ch, "dma_log.invalid") || !chk_alive(ch, a))
		return;
	if (probe) {
		chk_skip(ch, "DMA logging not offered (PROBE: %s)", chk_errname(probe));
		return;
	}
	ok = true;
	static const struct {
		const char *what;
		struct devmig_dma_logging_range r[2];
		uint32_t n;
	} bad[] = {
		{ "overlapping ranges", { { 1ull << 30, 2u << 20 }, { (1ull << 30) + (1u << 20), 1u << 20 } }, 2 },
		{ "a range not page aligned", { { (1ull << 30) + 512, 4096 }, { 0, 0 } }, 1 },
		{ "a range of length 0", { { 1ull << 30, 0 }, { 0, 0 } }, 1 },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]) && !a->lost; i++) {
		uint64_t ps = 4096;
		int rc = chk_rc(a, devmig_client_log_start(a->c, &ps, bad[i].r, bad[i].n),
				"DMA_LOGGING_START");
		chk_ev(ch, "%sSTART with %s: %s", i ? "; " : "", bad[i].what,
		       rc ? chk_errname(rc) : "ACCEPTED");
		if (!rc) {
			ok = false;
			chk_rc(a, devmig_client_log_stop(a->c), "DMA_LOGGING_STOP");
		}
	}
	chk_end(ch, ok ? DEVMIG_CHECK_PASS : DEVMIG_CHECK_FAIL);
}

/* ---- ERROR ---- */

static void check_error_recovery(struct chk *ch)
{
	struct chk_dev *devs[2] = { &ch->a, ch->b.c ? &ch->b : NULL };
	bool seen = false, ok = true;

	if (!chk_begin(ch, "error.recovery"))
		return;
	for (unsigned i = 0; i < 2; i++) {
		struct chk_dev *d = devs[i];
		if (!d || !d->errors_seen)
			continue;
		seen = true;
		chk_ev(ch, "%s%s was in ERROR %u times (first in %s); reset brought it back to "
			   "RUNNING %u times",
		       ch->evlen ? "; " : "", d->label, d->errors_seen, d->error_first,
		       d->errors_recovered);
		if (d->error_unrecovered[0]) {
			chk_ev(ch, ", once not: %s", d->error_unrecovered);
			ok = false;
		}
	}
	if (!seen) {
		chk_skip(ch, "no arc put the device in ERROR (it cannot be requested; a device "
			     "enters it only when an arc fails)");
		return;
	}
	chk_end(ch, ok ? DEVMIG_CHECK_PASS : DEVMIG_CHECK_FAIL);
}

/* ---- the run ---- */

int devmig_check_run(struct devmig_client *a, struct devmig_client *b,
		     const struct devmig_check_config *cfg, struct devmig_check_summary *sum)
{
	if (!a || !cfg || !sum || a == b || cfg->nwrites >= CHK_MAX_WRITES ||
	    (cfg->nwrites && !cfg->writes) || (cfg->nignore && !cfg->ignore))
		return -EINVAL;
	for (unsigned i = 0; i < cfg->nwrites; i++) {
		uint32_t w = cfg->writes[i].width;
		if (w != 1 && w != 2 && w != 4 && w != 8)
			return -EINVAL;
	}
	struct chk *ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	memset(sum, 0, sizeof(*sum));
	ch->cfg = *cfg;
	if (!ch->cfg.step_timeout_ms)
		ch->cfg.step_timeout_ms = DEFAULT_STEP_MS;
	if (!ch->cfg.max_stream_bytes)
		ch->cfg.max_stream_bytes = DEFAULT_MAX_STREAM;
	if (!ch->cfg.compare_limit)
		ch->cfg.compare_limit = DEFAULT_COMPARE;
	ch->sum = sum;
	ch->rng = cfg->seed;
	ch->a = (struct chk_dev){ .c = a, .ch = ch, .label = "A" };
	ch->b = (struct chk_dev){ .c = b, .ch = ch, .label = "B" };
	ch->dst = b ? &ch->b : &ch->a;
	if (cfg->nwrites)
		memcpy(ch->writes, cfg->writes, cfg->nwrites * sizeof(*cfg->writes));
	ch->nwrites = cfg->nwrites;

	check_migration_caps(ch);
	check_state_and_size(ch);
	check_extensions(ch);
	check_dma_logging_caps(ch);
	check_regions(ch);
	check_pair(ch);

	chk_save(ch);
	chk_load(ch);
	chk_bad_streams(ch);
	chk_precopy(ch);

	check_fsm(ch);
	check_reset(ch);
	check_data_wrong_state(ch, false);
	check_data_wrong_state(ch, true);
	check_precopy_info_wrong_state(ch);
	check_dma_log(ch);
	check_error_recovery(ch);

	/* Leave both devices RUNNING. */
	char why[256];
	ch->name = "the end";
	if (ch->caps_ok) {
		chk_to_running(ch, &ch->a, why, sizeof(why));
		if (b)
			chk_to_running(ch, &ch->b, why, sizeof(why));
	}
	chk_snap_free(&ch->src);
	free(ch->stream);
	free(ch);
	return 0;
}
