/* SPDX-License-Identifier: MIT */
/*
 * The exhaustive judge of lib/fsm.c.
 *
 * Nothing here reads the next-hop table of fsm.c. The expected behaviour is
 * rebuilt from the protocol's first principles (shared reference, sections
 * 1-2): the primitive arcs, the capability each state needs, and the path
 * rules. For every capability set and every (current, requested) pair the
 * expected path is found by enumerating the arc graph of the supported
 * states, and the library's answer is compared with it state by state.
 *
 * Path rules (reference section 2, and the kernel's uAPI comment that the
 * reference summarises):
 *  1. shortest path over the primitive arcs of the supported states;
 *  2. PRE_COPY, PRE_COPY_P2P and STOP_COPY (the "saving group") may only be
 *     the first or last state of a path. The one refinement the reference
 *     table needs: a path whose states are ALL in the saving group may move
 *     through it (PRE_COPY -> PRE_COPY_P2P -> STOP_COPY with P2P), because
 *     arcs inside the group keep the one shared data session. Read
 *     literally, rule 2 would send PRE_COPY -> STOP_COPY through
 *     RUNNING, RUNNING_P2P, STOP, ending the pre-copy session and opening a
 *     new one, which contradicts the table's PRE_COPY row;
 *  3. STOP_COPY -> PRE_COPY and STOP_COPY -> PRE_COPY_P2P are forbidden
 *     outright (rules 1-2 alone would allow STOP_COPY, STOP, ... PRE_COPY).
 *
 * Shortest paths under these rules turn out to be unique for every pair and
 * every capability set (check_paths asserts it), so the table pins nothing
 * beyond the rules and the comparison is exact. The matching loop accepts
 * any one of several shortest paths; if a rule change ever creates a tie,
 * the uniqueness assertion fires first so that the tie-break is reviewed
 * against the reference table by hand rather than accepted silently.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "devmig/migration.h"

/* Short local names: the oracle must not depend on anything but the enum values. */
enum {
	ERR = 0, STOP = 1, RUN = 2, SCOPY = 3, RES = 4, P2P = 5, PRE = 6, PREP = 7,
	NSTATES = 8,
};

#define C_SC DEVMIG_MIG_STOP_COPY
#define C_P2P DEVMIG_MIG_P2P
#define C_PRE DEVMIG_MIG_PRE_COPY

/* Out-of-range state values tried alongside the 8 real ones. */
static const uint32_t bad_states[] = { 8, 9, 0x80000000u, 0xfffffffeu, 0xffffffffu };
#define NBAD (sizeof(bad_states) / sizeof(bad_states[0]))

/* Every capability value tried: the 8 combinations, then unknown bits. */
static const uint64_t all_caps[] = {
	0, C_P2P, C_PRE, C_P2P | C_PRE,                     /* no STOP_COPY: invalid */
	C_SC, C_SC | C_P2P, C_SC | C_PRE, C_SC | C_P2P | C_PRE, /* valid */
	C_SC | (1ull << 3), C_SC | C_P2P | C_PRE | (1ull << 63), ~0ull, /* unknown bits: invalid */
};
#define NCAPS (sizeof(all_caps) / sizeof(all_caps[0]))

static const uint64_t valid_caps[] = { C_SC, C_SC | C_P2P, C_SC | C_PRE, C_SC | C_P2P | C_PRE };
#define NVALID (sizeof(valid_caps) / sizeof(valid_caps[0]))

static const char *const ref_names[NSTATES] = {
	"ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY",
	"PRE_COPY_P2P",
};

static bool verbose;

/* ---------------------------------------------------------------- oracle */

static bool o_caps_valid(uint64_t caps)
{
	return (caps & C_SC) && (caps & ~(uint64_t)(C_SC | C_P2P | C_PRE)) == 0;
}

/* Reference section 1: the flags each state needs (ERROR: the mandatory one, as the kernel). */
static bool o_supported(uint32_t s, uint64_t caps)
{
	uint64_t need;

	if (!o_caps_valid(caps))
		return false;
	switch (s) {
	case ERR: case STOP: case RUN: case SCOPY: case RES:
		need = C_SC;
		break;
	case P2P:
		need = C_SC | C_P2P;
		break;
	case PRE:
		need = C_SC | C_PRE;
		break;
	case PREP:
		need = C_SC | C_P2P | C_PRE;
		break;
	default:
		return false;
	}
	return (caps & need) == need;
}

static bool o_saving(uint32_t s)
{
	return s == PRE || s == PREP || s == SCOPY;
}

/*
 * The primitive arcs of a device with caps. With P2P the kernel passes
 * RUNNING <-> STOP through RUNNING_P2P and PRE_COPY -> STOP_COPY through
 * PRE_COPY_P2P; without P2P those intermediate states do not exist and the
 * table's skip rule makes RUNNING <-> STOP and PRE_COPY -> STOP_COPY single
 * arcs (table[RUNNING][STOP] = RUNNING_P2P, skipped, then
 * table[RUNNING_P2P][STOP] = STOP; likewise via PRE_COPY_P2P).
 */
static bool o_arc(uint32_t from, uint32_t to, uint64_t caps)
{
	if (!o_supported(from, caps) || !o_supported(to, caps) || from == ERR || to == ERR ||
	    from == to)
		return false;
	bool p2p = caps & C_P2P;
#define A(f, t) (from == (f) && to == (t))
	if (A(RUN, P2P) || A(P2P, RUN) || A(P2P, STOP) || A(STOP, P2P))
		return true;
	if (A(STOP, SCOPY) || A(SCOPY, STOP) || A(STOP, RES) || A(RES, STOP))
		return true;
	if (A(RUN, PRE) || A(PRE, RUN) || A(P2P, PREP) || A(PREP, P2P))
		return true;
	if (A(PRE, PREP) || A(PREP, PRE) || A(PREP, SCOPY))
		return true;
	if ((A(RUN, STOP) || A(STOP, RUN) || A(PRE, SCOPY)) && !p2p)
		return true;
#undef A
	return false;
}

/* Reference section 2: what each arc does to the data session. */
static enum devmig_arc_session o_session(uint32_t from, uint32_t to)
{
	if ((from == RUN && to == PRE) || (from == P2P && to == PREP) ||
	    (from == STOP && to == SCOPY))
		return DEVMIG_ARC_OPEN_SAVE;
	if (from == STOP && to == RES)
		return DEVMIG_ARC_OPEN_LOAD;
	if ((from == SCOPY && to == STOP) || (from == PRE && to == RUN) ||
	    (from == PREP && to == P2P) || (from == RES && to == STOP))
		return DEVMIG_ARC_END;
	return DEVMIG_ARC_KEEP;
}

#define MAXP 8  /* states in an enumerated path, start included */
#define MAXSOL 16

struct solutions {
	size_t len;             /* arcs in each shortest path; SIZE_MAX when none */
	size_t n;               /* how many shortest paths */
	uint32_t p[MAXSOL][MAXP]; /* p[k][0] = cur, p[k][len] = req */
};

/* Rule 2 (with its refinement) for a complete path st[0..n]. */
static bool o_path_ok(const uint32_t *st, size_t n)
{
	bool all_saving = true;

	for (size_t i = 0; i <= n; i++)
		all_saving = all_saving && o_saving(st[i]);
	for (size_t i = 1; i < n; i++)
		if (o_saving(st[i]) && !all_saving)
			return false;
	return true;
}

static void o_dfs(uint32_t *st, size_t n, uint32_t req, uint64_t caps, unsigned seen,
		  struct solutions *sol)
{
	uint32_t at = st[n];

	if (at == req) {
		if (!o_path_ok(st, n))
			return;
		if (n < sol->len) {
			sol->len = n;
			sol->n = 0;
		}
		if (n == sol->len) {
			assert_true(sol->n < MAXSOL);
			memcpy(sol->p[sol->n++], st, (n + 1) * sizeof(*st));
		}
		return;
	}
	if (n + 1 >= MAXP)
		return;
	for (uint32_t t = 0; t < NSTATES; t++) {
		if ((seen & (1u << t)) || !o_arc(at, t, caps))
			continue;
		st[n + 1] = t;
		o_dfs(st, n + 1, req, caps, seen | (1u << t), sol);
	}
}

/* All shortest legal paths from cur to req; sol->len == SIZE_MAX when none. */
static void o_paths(uint32_t cur, uint32_t req, uint64_t caps, struct solutions *sol)
{
	uint32_t st[MAXP];

	memset(sol, 0, sizeof(*sol));
	sol->len = SIZE_MAX;
	if (cur == SCOPY && (req == PRE || req == PREP))
		return; /* rule 3 */
	st[0] = cur;
	o_dfs(st, 0, req, caps, 1u << cur, sol);
}

/* The refusal the library must give, in its documented order of checks. */
static enum devmig_fsm_err o_refusal(uint32_t cur, uint32_t req, uint64_t caps)
{
	if (!o_caps_valid(caps))
		return DEVMIG_FSM_E_CAPS;
	if (cur >= NSTATES || req >= NSTATES)
		return DEVMIG_FSM_E_RANGE;
	if (cur == ERR)
		return DEVMIG_FSM_E_CUR_ERROR;
	if (req == ERR)
		return DEVMIG_FSM_E_REQ_ERROR;
	if (!o_supported(cur, caps) || !o_supported(req, caps))
		return DEVMIG_FSM_E_UNSUPPORTED;
	if (cur == SCOPY && (req == PRE || req == PREP))
		return DEVMIG_FSM_E_FORBIDDEN;
	return DEVMIG_FSM_OK;
}

/* ------------------------------------------------------------- helpers */

static const char *nm(uint32_t s)
{
	return s < NSTATES ? ref_names[s] : "OUT_OF_RANGE";
}

static void fmt_path(char *buf, size_t cap, uint32_t cur, const enum devmig_state *p, size_t n)
{
	size_t off = (size_t)snprintf(buf, cap, "%s", nm(cur));
	for (size_t i = 0; i < n && off < cap; i++)
		off += (size_t)snprintf(buf + off, cap - off, "->%s", nm(p[i]));
}

/* Every state value tried: the 8 real ones and the out-of-range ones. */
static uint32_t state_value(size_t i)
{
	return i < NSTATES ? (uint32_t)i : bad_states[i - NSTATES];
}
#define NVALUES (NSTATES + NBAD)

/* Call the library through a heap buffer of exactly DEVMIG_FSM_MAX_PATH (ASan sees overruns). */
static enum devmig_fsm_err lib_path(uint32_t cur, uint32_t req, uint64_t caps,
				    enum devmig_state *out, size_t *len)
{
	enum devmig_state *p = malloc(DEVMIG_FSM_MAX_PATH * sizeof(*p));
	assert_non_null(p);
	*len = 12345;
	enum devmig_fsm_err e = devmig_fsm_path(cur, req, caps, p, len);
	if (e == DEVMIG_FSM_OK && *len <= DEVMIG_FSM_MAX_PATH)
		memcpy(out, p, *len * sizeof(*p));
	free(p);
	return e;
}

/* --------------------------------------------------------------- tests */

/* The 4 sets without STOP_COPY, and unknown bits, are refused for every pair. */
static void t_invalid_caps(void **state)
{
	(void)state;
	for (size_t c = 0; c < NCAPS; c++) {
		uint64_t caps = all_caps[c];
		if (o_caps_valid(caps)) {
			assert_true(devmig_caps_valid(caps));
			continue;
		}
		assert_false(devmig_caps_valid(caps));
		for (size_t i = 0; i < NVALUES; i++) {
			for (size_t j = 0; j < NVALUES; j++) {
				uint32_t cur = state_value(i), req = state_value(j);
				enum devmig_state next = (enum devmig_state)0x5a5a;
				enum devmig_state p[DEVMIG_FSM_MAX_PATH];
				size_t len;
				assert_int_equal(devmig_fsm_next(cur, req, caps, &next),
						 DEVMIG_FSM_E_CAPS);
				assert_int_equal(next, 0x5a5a);
				assert_int_equal(lib_path(cur, req, caps, p, &len), DEVMIG_FSM_E_CAPS);
				assert_int_equal(len, 0);
				assert_false(devmig_fsm_is_arc(cur, req, caps));
				assert_false(devmig_state_supported(cur, caps));
			}
		}
	}
}

/*
 * The heart: for one valid capability set, every (cur, req) pair of real
 * and out-of-range values, the library's refusal or path against the oracle.
 */
static void check_paths(uint64_t caps)
{
	unsigned checked = 0, refused = 0, maxlen = 0;

	for (size_t i = 0; i < NVALUES; i++) {
		for (size_t j = 0; j < NVALUES; j++) {
			uint32_t cur = state_value(i), req = state_value(j);
			enum devmig_fsm_err want = o_refusal(cur, req, caps);
			enum devmig_state next = (enum devmig_state)0x5a5a;
			enum devmig_state p[DEVMIG_FSM_MAX_PATH];
			size_t len;
			char got[160];

			enum devmig_fsm_err e = devmig_fsm_next(cur, req, caps, &next);
			enum devmig_fsm_err ep = lib_path(cur, req, caps, p, &len);
			checked++;
			if (want != DEVMIG_FSM_OK) {
				if (e != want || ep != want)
					fail_msg("caps %#llx %s(%u)->%s(%u): want refusal %d, next gave %d, path gave %d",
						 (unsigned long long)caps, nm(cur), cur, nm(req), req,
						 want, e, ep);
				assert_int_equal(next, 0x5a5a);
				assert_int_equal(len, 0);
				refused++;
				continue;
			}

			struct solutions sol;
			o_paths(cur, req, caps, &sol);
			/* Valid, supported, not forbidden: the graph must have a path. */
			if (sol.len == SIZE_MAX)
				fail_msg("caps %#llx %s->%s: the oracle finds no path", (unsigned long long)caps,
					 nm(cur), nm(req));
			/* Unique shortest path: the rules pin the table (see the top comment). */
			if (sol.n != 1)
				fail_msg("caps %#llx %s->%s: %zu shortest paths", (unsigned long long)caps,
					 nm(cur), nm(req), sol.n);

			if (e != DEVMIG_FSM_OK || ep != DEVMIG_FSM_OK)
				fail_msg("caps %#llx %s->%s: refused (next %d: %s, path %d)",
					 (unsigned long long)caps, nm(cur), nm(req), e,
					 devmig_fsm_strerror(e), ep);
			assert_true(len <= DEVMIG_FSM_MAX_PATH);
			fmt_path(got, sizeof(got), cur, p, len);

			bool match = false;
			for (size_t k = 0; k < sol.n && !match; k++) {
				match = len == sol.len;
				for (size_t a = 0; match && a < len; a++)
					match = (uint32_t)p[a] == sol.p[k][a + 1];
			}
			if (!match) {
				char want_s[160];
				enum devmig_state w[MAXP];
				for (size_t a = 0; a < sol.len; a++)
					w[a] = (enum devmig_state)sol.p[0][a + 1];
				fmt_path(want_s, sizeof(want_s), cur, w, sol.len);
				fail_msg("caps %#llx: library path %s, expected %s",
					 (unsigned long long)caps, got, want_s);
			}
			/* devmig_fsm_next is the first hop (cur itself when cur == req). */
			if (cur == req) {
				assert_int_equal(len, 0);
				assert_int_equal(next, cur);
			} else if ((uint32_t)next != (uint32_t)p[0]) {
				fail_msg("caps %#llx %s->%s: next %s but path %s", (unsigned long long)caps,
					 nm(cur), nm(req), nm(next), got);
			}
			/* Every hop is a primitive arc of this device. */
			uint32_t from = cur;
			for (size_t a = 0; a < len; a++) {
				assert_true(o_arc(from, p[a], caps));
				assert_true(devmig_fsm_is_arc(from, p[a], caps));
				from = p[a];
			}
			if (len > maxlen)
				maxlen = (unsigned)len;
			if (verbose && len > 1)
				printf("# caps %#llx %s\n", (unsigned long long)caps, got);
		}
	}
	if (verbose)
		printf("# caps %#llx: %u pairs, %u refused, longest path %u arcs\n",
		       (unsigned long long)caps, checked, refused, maxlen);
}

static void t_paths_stop_copy(void **state)
{
	(void)state;
	check_paths(C_SC);
}

static void t_paths_p2p(void **state)
{
	(void)state;
	check_paths(C_SC | C_P2P);
}

static void t_paths_pre_copy(void **state)
{
	(void)state;
	check_paths(C_SC | C_PRE);
}

static void t_paths_all(void **state)
{
	(void)state;
	check_paths(C_SC | C_P2P | C_PRE);
}

/* Each refusal class, spelled out for every valid capability set. */
static void t_refusals(void **state)
{
	(void)state;
	for (size_t c = 0; c < NVALID; c++) {
		uint64_t caps = valid_caps[c];
		enum devmig_state n = (enum devmig_state)0x77;
		for (uint32_t s = 0; s < NSTATES; s++) {
			/* ERROR as current: only reset recovers. */
			assert_int_equal(devmig_fsm_next(ERR, s, caps, &n), DEVMIG_FSM_E_CUR_ERROR);
			if (s != ERR)
				assert_int_equal(devmig_fsm_next(s, ERR, caps, &n),
						 DEVMIG_FSM_E_REQ_ERROR);
			for (size_t b = 0; b < NBAD; b++) {
				assert_int_equal(devmig_fsm_next(s, bad_states[b], caps, &n),
						 DEVMIG_FSM_E_RANGE);
				assert_int_equal(devmig_fsm_next(bad_states[b], s, caps, &n),
						 DEVMIG_FSM_E_RANGE);
			}
		}
		assert_int_equal(devmig_fsm_next(ERR, ERR, caps, &n), DEVMIG_FSM_E_CUR_ERROR);
		for (uint32_t a = 1; a < NSTATES; a++) {
			for (uint32_t b = 1; b < NSTATES; b++) {
				enum devmig_fsm_err e = devmig_fsm_next(a, b, caps, &n);
				if (!o_supported(a, caps) || !o_supported(b, caps))
					assert_int_equal(e, DEVMIG_FSM_E_UNSUPPORTED);
				else
					assert_int_not_equal(e, DEVMIG_FSM_E_UNSUPPORTED);
			}
		}
		/* Every refusal has a message. */
		for (int e = DEVMIG_FSM_OK; e <= DEVMIG_FSM_E_FORBIDDEN; e++) {
			assert_non_null(devmig_fsm_strerror((enum devmig_fsm_err)e));
			assert_true(strlen(devmig_fsm_strerror((enum devmig_fsm_err)e)) > 0);
		}
	}
	/* The unsupported optional states are each refused in both directions. */
	enum devmig_state n;
	assert_int_equal(devmig_fsm_next(STOP, P2P, C_SC, &n), DEVMIG_FSM_E_UNSUPPORTED);
	assert_int_equal(devmig_fsm_next(P2P, STOP, C_SC | C_PRE, &n), DEVMIG_FSM_E_UNSUPPORTED);
	assert_int_equal(devmig_fsm_next(RUN, PRE, C_SC | C_P2P, &n), DEVMIG_FSM_E_UNSUPPORTED);
	assert_int_equal(devmig_fsm_next(RUN, PREP, C_SC | C_PRE, &n), DEVMIG_FSM_E_UNSUPPORTED);
	assert_int_equal(devmig_fsm_next(PREP, RUN, C_SC | C_P2P, &n), DEVMIG_FSM_E_UNSUPPORTED);
}

/* Among supported cur != req, exactly STOP_COPY -> PRE_COPY[_P2P] is refused. */
static void t_forbidden(void **state)
{
	(void)state;
	for (size_t c = 0; c < NVALID; c++) {
		uint64_t caps = valid_caps[c];
		unsigned forbidden = 0;
		for (uint32_t a = 1; a < NSTATES; a++) {
			for (uint32_t b = 1; b < NSTATES; b++) {
				if (a == b || !o_supported(a, caps) || !o_supported(b, caps))
					continue;
				enum devmig_state n;
				enum devmig_state p[DEVMIG_FSM_MAX_PATH];
				size_t len;
				enum devmig_fsm_err e = devmig_fsm_next(a, b, caps, &n);
				enum devmig_fsm_err ep = lib_path(a, b, caps, p, &len);
				bool expect_forbidden = a == SCOPY && (b == PRE || b == PREP);
				if (expect_forbidden) {
					assert_int_equal(e, DEVMIG_FSM_E_FORBIDDEN);
					assert_int_equal(ep, DEVMIG_FSM_E_FORBIDDEN);
					assert_int_equal(len, 0);
					forbidden++;
				} else {
					if (e != DEVMIG_FSM_OK || ep != DEVMIG_FSM_OK)
						fail_msg("caps %#llx %s->%s refused (%d)",
							 (unsigned long long)caps, nm(a), nm(b), e);
					assert_true(len >= 1 && len <= DEVMIG_FSM_MAX_PATH);
					assert_int_equal(p[len - 1], b);
				}
			}
		}
		unsigned want = (caps & C_PRE) ? ((caps & C_P2P) ? 2 : 1) : 0;
		assert_int_equal(forbidden, want);
	}
}

/* A path opens at most one session, only on its last arc; it ends one only on its first. */
static void t_path_sessions(void **state)
{
	(void)state;
	for (size_t c = 0; c < NVALID; c++) {
		uint64_t caps = valid_caps[c];
		for (uint32_t a = 1; a < NSTATES; a++) {
			for (uint32_t b = 1; b < NSTATES; b++) {
				enum devmig_state p[DEVMIG_FSM_MAX_PATH];
				size_t len;
				if (lib_path(a, b, caps, p, &len) != DEVMIG_FSM_OK)
					continue;
				unsigned opens = 0, ends = 0;
				uint32_t from = a;
				for (size_t i = 0; i < len; i++) {
					enum devmig_arc_session s = devmig_arc_session(from, p[i]);
					assert_int_equal(s, o_session(from, p[i]));
					if (s == DEVMIG_ARC_OPEN_SAVE || s == DEVMIG_ARC_OPEN_LOAD) {
						opens++;
						if (i != len - 1)
							fail_msg("caps %#llx %s->%s opens a session on arc %zu of %zu",
								 (unsigned long long)caps, nm(a), nm(b), i + 1, len);
					}
					if (s == DEVMIG_ARC_END) {
						ends++;
						if (i != 0)
							fail_msg("caps %#llx %s->%s ends a session on arc %zu",
								 (unsigned long long)caps, nm(a), nm(b), i + 1);
					}
					from = p[i];
				}
				assert_true(opens <= 1);
				assert_true(ends <= 1);
				/* A session is open at the end exactly when the target needs one. */
				bool open_at_start = o_saving(a) || a == RES;
				bool open_at_end = (open_at_start && ends == 0) || opens == 1;
				assert_int_equal(open_at_end, o_saving(b) || b == RES);
			}
		}
	}
}

/* devmig_arc_session for every pair, arcs and non-arcs, and out-of-range values. */
static void t_arc_session(void **state)
{
	(void)state;
	for (size_t i = 0; i < NVALUES; i++) {
		for (size_t j = 0; j < NVALUES; j++) {
			uint32_t a = state_value(i), b = state_value(j);
			enum devmig_arc_session got = devmig_arc_session(a, b);
			enum devmig_arc_session want =
				(a < NSTATES && b < NSTATES) ? o_session(a, b) : DEVMIG_ARC_KEEP;
			if (got != want)
				fail_msg("arc_session(%s(%u), %s(%u)) = %d, want %d", nm(a), a, nm(b),
					 b, got, want);
		}
	}
	/* The arcs that exist only without P2P stay inside or outside a session. */
	assert_int_equal(devmig_arc_session(RUN, STOP), DEVMIG_ARC_KEEP);
	assert_int_equal(devmig_arc_session(STOP, RUN), DEVMIG_ARC_KEEP);
	assert_int_equal(devmig_arc_session(PRE, SCOPY), DEVMIG_ARC_KEEP);
	assert_int_equal(devmig_arc_session(PRE, PREP), DEVMIG_ARC_KEEP);
	assert_int_equal(devmig_arc_session(PREP, SCOPY), DEVMIG_ARC_KEEP);
}

/* devmig_fsm_is_arc is exactly the oracle's arc set, for every caps value. */
static void t_is_arc(void **state)
{
	(void)state;
	for (size_t c = 0; c < NCAPS; c++) {
		uint64_t caps = all_caps[c];
		unsigned narcs = 0;
		for (size_t i = 0; i < NVALUES; i++) {
			for (size_t j = 0; j < NVALUES; j++) {
				uint32_t a = state_value(i), b = state_value(j);
				bool want = a < NSTATES && b < NSTATES && o_arc(a, b, caps);
				if (devmig_fsm_is_arc(a, b, caps) != want)
					fail_msg("caps %#llx is_arc(%s, %s) should be %d",
						 (unsigned long long)caps, nm(a), nm(b), want);
				narcs += want;
			}
		}
		/* Arc counts worked out by hand from the reference. */
		unsigned want_n = 0;
		if (caps == C_SC)
			want_n = 6; /* STOP<->RUNNING, STOP<->STOP_COPY, STOP<->RESUMING */
		else if (caps == (C_SC | C_P2P))
			want_n = 8; /* + RUNNING<->RUNNING_P2P<->STOP, minus STOP<->RUNNING */
		else if (caps == (C_SC | C_PRE))
			want_n = 9; /* C_SC's 6 + RUNNING<->PRE_COPY + PRE_COPY->STOP_COPY */
		else if (caps == (C_SC | C_P2P | C_PRE))
			want_n = 15; /* P2P's 8 + 2x2 pre-copy pairs + PRE_COPY_P2P->STOP_COPY */
		assert_int_equal(narcs, want_n);
	}
	/* Spot checks of the derivation in the brief. */
	assert_true(devmig_fsm_is_arc(RUN, STOP, C_SC));
	assert_false(devmig_fsm_is_arc(RUN, STOP, C_SC | C_P2P));
	assert_true(devmig_fsm_is_arc(PRE, SCOPY, C_SC | C_PRE));
	assert_false(devmig_fsm_is_arc(PRE, SCOPY, C_SC | C_P2P | C_PRE));
	assert_false(devmig_fsm_is_arc(SCOPY, PREP, C_SC | C_P2P | C_PRE));
	assert_false(devmig_fsm_is_arc(RUN, RUN, C_SC));
}

/* Paths the reference spells out. */
static void t_reference_examples(void **state)
{
	(void)state;
	enum devmig_state p[DEVMIG_FSM_MAX_PATH];
	size_t len;

	/* "RUNNING->STOP_COPY is RUNNING->RUNNING_P2P->STOP->STOP_COPY" */
	assert_int_equal(lib_path(RUN, SCOPY, C_SC | C_P2P, p, &len), DEVMIG_FSM_OK);
	assert_int_equal(len, 3);
	assert_int_equal(p[0], P2P);
	assert_int_equal(p[1], STOP);
	assert_int_equal(p[2], SCOPY);
	/* "or RUNNING->STOP->STOP_COPY without P2P" */
	assert_int_equal(lib_path(RUN, SCOPY, C_SC | C_PRE, p, &len), DEVMIG_FSM_OK);
	assert_int_equal(len, 2);
	assert_int_equal(p[0], STOP);
	assert_int_equal(p[1], SCOPY);
	/* Inside the saving group the session is kept: PRE_COPY->PRE_COPY_P2P->STOP_COPY. */
	assert_int_equal(lib_path(PRE, SCOPY, C_SC | C_P2P | C_PRE, p, &len), DEVMIG_FSM_OK);
	assert_int_equal(len, 2);
	assert_int_equal(p[0], PREP);
	assert_int_equal(p[1], SCOPY);
	/* The longest paths have four arcs (more than the header comment's three). */
	assert_int_equal(lib_path(RES, PRE, C_SC | C_P2P | C_PRE, p, &len), DEVMIG_FSM_OK);
	assert_int_equal(len, 4);
	assert_int_equal(p[0], STOP);
	assert_int_equal(p[1], P2P);
	assert_int_equal(p[2], RUN);
	assert_int_equal(p[3], PRE);
	assert_int_equal(lib_path(PRE, RES, C_SC | C_P2P | C_PRE, p, &len), DEVMIG_FSM_OK);
	assert_int_equal(len, 4);
	assert_int_equal(p[0], RUN);
	assert_int_equal(p[1], P2P);
	assert_int_equal(p[2], STOP);
	assert_int_equal(p[3], RES);
	/* cur == req: empty path, next is cur. */
	enum devmig_state n = (enum devmig_state)0;
	assert_int_equal(devmig_fsm_next(STOP, STOP, C_SC, &n), DEVMIG_FSM_OK);
	assert_int_equal(n, STOP);
	assert_int_equal(lib_path(PREP, PREP, C_SC | C_P2P | C_PRE, p, &len), DEVMIG_FSM_OK);
	assert_int_equal(len, 0);
}

static void t_names(void **state)
{
	(void)state;
	for (uint32_t s = 0; s < NSTATES; s++) {
		const char *name = devmig_state_name(s);
		enum devmig_state back = (enum devmig_state)0x55;
		assert_non_null(name);
		assert_string_equal(name, ref_names[s]);
		assert_true(devmig_state_parse(name, &back));
		assert_int_equal(back, s);
	}
	for (size_t b = 0; b < NBAD; b++)
		assert_string_equal(devmig_state_name(bad_states[b]), "INVALID");
}

static void t_parse(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int want;
	} cases[] = {
		{ "running_p2p", P2P }, { "Running_P2P", P2P }, { "stop", STOP },
		{ "StOp_CoPy", SCOPY }, { "resuming", RES }, { "pre_copy", PRE },
		{ "PRE_copy_p2p", PREP }, { "error", ERR }, { "RUNNING", RUN },
		{ "", -1 }, { "INVALID", -1 }, { "RUN", -1 }, { "RUNNING ", -1 },
		{ " RUNNING", -1 }, { "STOP_COPYX", -1 }, { "STOP-COPY", -1 },
		{ "PRE_COPY_P2", -1 }, { "running_p2p\n", -1 }, { "5", -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum devmig_state out = (enum devmig_state)0x55;
		bool ok = devmig_state_parse(cases[i].in, &out);
		if (ok != (cases[i].want >= 0))
			fail_msg("parse(\"%s\") returned %d", cases[i].in, ok);
		if (ok)
			assert_int_equal(out, cases[i].want);
	}
	enum devmig_state out;
	assert_false(devmig_state_parse(NULL, &out));
}

/* devmig_state_supported against reference section 1's flag table, all caps values. */
static void t_supported(void **state)
{
	(void)state;
	for (size_t c = 0; c < NCAPS; c++) {
		uint64_t caps = all_caps[c];
		for (size_t i = 0; i < NVALUES; i++) {
			uint32_t s = state_value(i);
			if (devmig_state_supported(s, caps) != o_supported(s, caps))
				fail_msg("supported(%s, %#llx) should be %d", nm(s),
					 (unsigned long long)caps, o_supported(s, caps));
		}
	}
	/* The reference's table, written out for the four valid sets. */
	assert_true(devmig_state_supported(STOP, C_SC));
	assert_true(devmig_state_supported(RUN, C_SC));
	assert_true(devmig_state_supported(SCOPY, C_SC));
	assert_true(devmig_state_supported(RES, C_SC));
	assert_false(devmig_state_supported(P2P, C_SC));
	assert_false(devmig_state_supported(PRE, C_SC));
	assert_false(devmig_state_supported(PREP, C_SC));
	assert_true(devmig_state_supported(P2P, C_SC | C_P2P));
	assert_false(devmig_state_supported(PREP, C_SC | C_P2P));
	assert_true(devmig_state_supported(PRE, C_SC | C_PRE));
	assert_false(devmig_state_supported(PREP, C_SC | C_PRE));
	assert_true(devmig_state_supported(PREP, C_SC | C_P2P | C_PRE));
	assert_false(devmig_state_supported(STOP, C_P2P | C_PRE));
}

/* The classification predicates, from the behaviour column of section 1. */
static void t_predicates(void **state)
{
	(void)state;
	for (uint32_t s = 0; s < NSTATES; s++) {
		assert_int_equal(devmig_state_is_saving(s), o_saving(s));
		if (s == ERR)
			continue; /* the reference says nothing of ERROR's DMA */
		bool stopped = s == STOP || s == SCOPY || s == RES;
		bool quiesced = stopped || s == P2P || s == PREP;
		assert_int_equal(devmig_state_is_stopped(s), stopped);
		assert_int_equal(devmig_state_is_quiesced(s), quiesced);
	}
	for (size_t b = 0; b < NBAD; b++) {
		assert_false(devmig_state_is_saving(bad_states[b]));
		assert_false(devmig_state_is_stopped(bad_states[b]));
		assert_false(devmig_state_is_quiesced(bad_states[b]));
	}
}

int main(void)
{
	verbose = getenv("DEVMIG_FSM_VERBOSE") != NULL;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_invalid_caps),
		cmocka_unit_test(t_paths_stop_copy),
		cmocka_unit_test(t_paths_p2p),
		cmocka_unit_test(t_paths_pre_copy),
		cmocka_unit_test(t_paths_all),
		cmocka_unit_test(t_refusals),
		cmocka_unit_test(t_forbidden),
		cmocka_unit_test(t_path_sessions),
		cmocka_unit_test(t_arc_session),
		cmocka_unit_test(t_is_arc),
		cmocka_unit_test(t_reference_examples),
		cmocka_unit_test(t_names),
		cmocka_unit_test(t_parse),
		cmocka_unit_test(t_supported),
		cmocka_unit_test(t_predicates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
