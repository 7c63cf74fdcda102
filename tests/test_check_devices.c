/* SPDX-License-Identifier: MIT */
/*
 * `devmig check` against every device variant this project ships, each
 * served twice by `devmig serve` (A and a fresh B): no check may fail, and
 * the checks that matter for each device must have run (not been skipped).
 * Also the command itself: its lines and summary, --json, the exit status
 * when a check fails, the round trips without B, and usage errors.
 * DEVMIG_CHECK_SEED replaces the fixed seeds (to try others).
 */
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proc_test_util.h"

/* A whole check of one device takes seconds, many under the sanitizers. */
#define DEADLINE_MS 120000

static struct dev servers[2];

/* Run the devmig binary with args (NULL-terminated), bounded: the finished
 * process, its stdout and stderr. */
static struct proc *devmig(const char *first, ...)
{
	char *argv[64];
	int n = 0;
	va_list ap;

	argv[n++] = (char *)pt_bin();
	va_start(ap, first);
	for (const char *a = first; a && n < 63; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	struct proc *p = pt_start(argv, true);
	pt_finish(p, DEADLINE_MS);
	return p;
}

/* Long output, one TAP comment line at a time. */
static void print_lines(const char *text)
{
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		print_message("# %.*s\n", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

static const char *seed(const char *fixed)
{
	const char *s = getenv("DEVMIG_CHECK_SEED");
	return s && *s ? s : fixed;
}

/* The checks as JSON; every one printed as a TAP comment for the log. */
static json_object *check_json(struct proc *o, json_object **checks)
{
	json_object *j = json_tokener_parse(o->obuf);
	if (!j)
		fail_msg("devmig check --json printed no JSON: %s / %s", o->obuf, o->ebuf);
	assert_true(json_object_object_get_ex(j, "checks", checks));
	for (size_t i = 0; i < json_object_array_length(*checks); i++) {
		json_object *c = json_object_array_get_idx(*checks, i), *n, *r, *e;
		json_object_object_get_ex(c, "name", &n);
		json_object_object_get_ex(c, "result", &r);
		json_object_object_get_ex(c, "evidence", &e);
		print_message("#   %-4s %-24s %s\n", json_object_get_string(r),
			      json_object_get_string(n), json_object_get_string(e));
	}
	return j;
}

static const char *result_of(json_object *checks, const char *name, const char **evidence)
{
	for (size_t i = 0; i < json_object_array_length(checks); i++) {
		json_object *c = json_object_array_get_idx(checks, i), *n, *r, *e;
		json_object_object_get_ex(c, "name", &n);
		if (strcmp(json_object_get_string(n), name))
			continue;
		json_object_object_get_ex(c, "result", &r);
		json_object_object_get_ex(c, "evidence", &e);
		if (evidence)
			*evidence = json_object_get_string(e);
		return json_object_get_string(r);
	}
	fail_msg("no check named %s", name);
	return NULL;
}

static int int_member(json_object *j, const char *key)
{
	json_object *v;
	assert_true(json_object_object_get_ex(j, key, &v));
	return json_object_get_int(v);
}

static const char *const common_checks[] = {
	"caps.migration", "caps.state", "caps.data_size", "caps.extensions", "caps.regions",
	"caps.pair", "save.stop_copy", "save.estimate", "load.roundtrip", "load.truncated",
	"load.corrupted", "load.after_refusal", "fsm.from.STOP", "fsm.from.RUNNING",
	"fsm.from.STOP_COPY", "fsm.from.RESUMING", "fsm.from.RUNNING_P2P", "fsm.error_request",
	"fsm.out_of_range", "reset.from.STOP", "reset.from.RUNNING", "reset.from.STOP_COPY",
	"reset.from.RESUMING", "reset.from.RUNNING_P2P", "data.read_wrong_state",
	"data.write_wrong_state", "dma_log.ranges", "dma_log.invalid", NULL,
};

static const char *const precopy_checks[] = {
	"precopy.initial", "precopy.progress", "precopy.temporary_end", "precopy.dirty",
	"precopy.roundtrip", "precopy.info_wrong_state", "fsm.from.PRE_COPY",
	"fsm.from.PRE_COPY_P2P", "fsm.forbidden", "reset.from.PRE_COPY", "reset.from.PRE_COPY_P2P",
	NULL,
};

/* Serve device twice, check it, assert no failure and that the checks it has all ran and passed. */
static void check_device(const char *device, const char *dargs, bool precopy,
			 const char *fixed_seed, const char *const *writes)
{
	pt_serve(&servers[0], "a", device, dargs);
	pt_serve(&servers[1], "b", device, dargs);
	const char *w[16] = { 0 };
	unsigned nw = 0;
	for (unsigned i = 0; writes[i] && nw < 14; i++) {
		w[nw++] = "--write";
		w[nw++] = writes[i];
	}
	struct proc *o = devmig("check", "--socket", servers[0].path, "--socket", servers[1].path,
			       "--json", "--seed", seed(fixed_seed), w[0], w[1], w[2], w[3], w[4],
			       w[5], w[6], w[7], w[8], w[9], w[10], w[11], w[12], w[13], NULL);
	json_object *checks;
	json_object *j = check_json(o, &checks);
	print_message("# %s: %d passed, %d failed, %d skipped (seed %s)\n", device,
		      int_member(j, "passed"), int_member(j, "failed"), int_member(j, "skipped"),
		      seed(fixed_seed));
	assert_int_equal(int_member(j, "failed"), 0);
	assert_int_equal(o->status, 0);
	for (unsigned k = 0; k < (precopy ? 2u : 1u); k++) {
		const char *const *ran = k ? precopy_checks : common_checks;
		for (unsigned i = 0; ran[i]; i++) {
			const char *ev;
			const char *r = result_of(checks, ran[i], &ev);
			if (strcmp(r, "ok"))
				fail_msg("%s on %s: %s (%s)", ran[i], device, r, ev);
		}
	}
	/* The registers written made the comparisons conclusive. */
	const char *ev;
	result_of(checks, "load.roundtrip", &ev);
	assert_non_null(strstr(ev, "before the load they differed"));
	result_of(checks, "load.truncated", &ev);
	assert_non_null(strstr(ev, "registers unchanged each time (they differ"));
	json_object_put(j);
	pt_stop_dev(&servers[0]);
	pt_stop_dev(&servers[1]);
}

/* counter: SCRATCH0, COUNT, THRESHOLD and a byte in the FIFO. */
static const char *const counter_writes[] = { "bar0:0x08=0xdeadbeef", "bar0:0x00=5",
					      "bar0:0x04=100", "bar0:0x1c=0x41", NULL };
/* memblk: the ring registers (written while the device is disabled). */
static const char *const memblk_writes[] = { "bar0:0x30=0x10000", "bar0:0x38=64",
					     "bar0:0x40=0x20000", "bar0:0x48=64", NULL };

static void counter_passes(void **state)
{
	(void)state;
	check_device("counter", NULL, false, "1", counter_writes);
}

static void memblk_passes(void **state)
{
	(void)state;
	check_device("memblk", "size=8M", true, "2", memblk_writes);
}

static void memblk1_passes(void **state)
{
	(void)state;
	check_device("memblk1", "size=8M", true, "3", memblk_writes);
}

/* The out-of-tree example, loaded from its shared object by devmig serve:
 * SEED and two words of its tracked buffer. */
static const char *const mydev_writes[] = { "bar0:0x04=0x2a", "bar2:0x100=0x12345678",
					    "bar2:0xfffc=0x9abcdef0", NULL };

static void out_of_tree_example_passes(void **state)
{
	(void)state;
	const char *so = getenv("DEVMIG_EXAMPLE_SO");
	if (!so || !*so)
		fail_msg("DEVMIG_EXAMPLE_SO is not set (meson sets it)");
	check_device(so, NULL, true, "4", mydev_writes);
}

/* The human output: one line per check, the seed, the summary; without B: into A. */
static void lines_summary_and_no_b(void **state)
{
	(void)state;
	pt_serve(&servers[0], "a", "counter", NULL);
	struct proc *o = devmig("check", "--socket", servers[0].path, "--seed", "9", "--write",
			       "bar0:0x8=7", "--only", "caps,load,fsm.from.STOP", NULL);
	print_lines(o->obuf);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->obuf, "devmig check: A "));
	assert_non_null(strstr(o->obuf, "seed 9\n"));
	assert_non_null(strstr(o->obuf, "\nskip caps.pair                - no second instance (B)"));
	assert_non_null(strstr(o->obuf, "\nok   load.roundtrip           A's stream"));
	assert_non_null(strstr(o->obuf, "after a reset of A (no B)"));
	assert_null(strstr(o->obuf, "fsm.from.RUNNING")); /* --only */
	assert_null(strstr(o->obuf, "reset.from"));
	/* 7 caps, 4 load, fsm.from.STOP and fsm.from.STOP_COPY ("fsm.from.STOP" prefix) */
	assert_non_null(strstr(o->obuf, "\n12 passed, 0 failed, 1 skipped\n"));
	pt_stop_dev(&servers[0]);
}

/* A failed check: exit status 1 and the summary counts it. */
static void a_failure_fails_the_command(void **state)
{
	(void)state;
	pt_serve(&servers[0], "a", "counter", NULL);
	pt_serve(&servers[1], "b", "counter", NULL);
	struct proc *o = devmig("check", "--socket", servers[0].path, "--socket", servers[1].path,
			       "--max-stream", "100", "--only", "save", NULL);
	print_lines(o->obuf);
	assert_int_equal(o->status, 1);
	assert_non_null(strstr(o->obuf, "\nFAIL save.stop_copy           STOP_COPY: no end after"));
	assert_non_null(strstr(o->obuf, "\n0 passed, 1 failed, 1 skipped\n"));
	pt_stop_dev(&servers[0]);
	pt_stop_dev(&servers[1]);
}

static void usage_errors(void **state)
{
	(void)state;
	struct proc *o = devmig("check", NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->ebuf, "--socket or --vfio is required"));
	o = devmig("check", "--socket", "/nonexistent/a", "--write", "bar9:1=2", NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->ebuf, "--write bar9:1=2"));
	o = devmig("check", "--socket", "/tmp/x", "--write", "bar0:0x8=0x100/1", NULL);
	assert_int_equal(o->status, 2); /* 0x100 does not fit one byte */
	o = devmig("check", "--socket", "/tmp/x", "--socket", "/tmp/x", NULL);
	assert_int_equal(o->status, 2);
	assert_non_null(strstr(o->ebuf, "named twice"));
	o = devmig("check", "--socket", "/nonexistent/a", NULL);
	assert_int_equal(o->status, 1);
	assert_non_null(strstr(o->ebuf, "cannot connect"));
	o = devmig("check", "--help", NULL);
	assert_int_equal(o->status, 0);
	assert_non_null(strstr(o->obuf, "usage: devmig check"));
}

/* A failed test leaves its servers running: killed here. */
static int teardown(void **state)
{
	(void)state;
	pt_reap_all();
	memset(servers, 0, sizeof(servers));
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(counter_passes, teardown),
		cmocka_unit_test_teardown(memblk_passes, teardown),
		cmocka_unit_test_teardown(memblk1_passes, teardown),
		cmocka_unit_test_teardown(out_of_tree_example_passes, teardown),
		cmocka_unit_test_teardown(lines_summary_and_no_b, teardown),
		cmocka_unit_test_teardown(a_failure_fails_the_command, teardown),
		cmocka_unit_test_teardown(usage_errors, teardown),
	};
	return cmocka_run_group_tests(tests, pt_setup, pt_teardown);
}
