/* SPDX-License-Identifier: MIT */
/*
 * The operator commands of the devmig binary, run as processes against
 * `devmig serve` counter devices: info, migrate (local, TCP over loopback,
 * TCP between two network namespaces), receive, save and restore, and
 * their failures.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devmig/client.h"

extern char **environ;

#define DEADLINE_MS 30000
#define REG_COUNT 0x00
#define REG_THRESHOLD 0x04
#define REG_SCRATCH0 0x08
#define REG_ID 0x18

/* ---- processes ---- */

struct proc {
	bool used;
	pid_t pid;
	int out, err;          /* pipes from its stdout/stderr, or -1 */
	char obuf[64 * 1024], ebuf[64 * 1024];
	size_t olen, elen;
	int status;            /* the exit code once reaped (128+N: killed by signal N) */
	bool reaped;
};

/*
 * Every child lives in this pool (not on a test's stack) so that teardown
 * can kill and reap whatever a failed test left running.
 */
#define MAX_PROCS 8
static struct proc pool[MAX_PROCS];
static char dir[64];
static char ns_a[32], ns_b[32]; /* network namespaces to delete at teardown */
static char ip_bin[64];

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A pool entry whose process has been reaped and whose pipes are closed. */
static struct proc *alloc_proc(void)
{
	for (int i = 0; i < MAX_PROCS; i++)
		if (!pool[i].used || (pool[i].reaped && pool[i].out < 0 && pool[i].err < 0)) {
			memset(&pool[i], 0, sizeof(pool[i]));
			pool[i].used = true;
			pool[i].out = pool[i].err = -1;
			return &pool[i];
		}
	fail_msg("too many child processes");
	return NULL;
}

/* Start argv; capture: its stdout and stderr come back through pipes. */
static struct proc *start(char *const argv[], bool capture)
{
	struct proc *p = alloc_proc();
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;

	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (capture) {
		assert_int_equal(pipe2(po, O_CLOEXEC), 0);
		assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
		posix_spawn_file_actions_adddup2(&fa, po[1], 1);
		posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	}
	int rc = posix_spawn(&p->pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (capture) {
		close(po[1]);
		close(pe[1]);
		p->out = po[0];
		p->err = pe[0];
	}
	if (rc) {
		p->pid = 0;
		p->reaped = true;
		fail_msg("cannot start %s: %s", argv[0], strerror(rc));
	}
	return p;
}

/* Read what is there, waiting at most timeout_ms for something. */
static void pump(struct proc *p, int timeout_ms)
{
	struct pollfd pf[2] = { { p->out, POLLIN, 0 }, { p->err, POLLIN, 0 } };
	if (p->out < 0 && p->err < 0)
		return;
	if (poll(pf, 2, timeout_ms) <= 0)
		return;
	for (int i = 0; i < 2; i++) {
		int *fd = i ? &p->err : &p->out;
		char *buf = i ? p->ebuf : p->obuf;
		size_t *len = i ? &p->elen : &p->olen;
		size_t cap = sizeof(p->obuf) - 1;
		if (*fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		char tmp[4096];
		ssize_t n = read(*fd, tmp, sizeof(tmp));
		if (n <= 0) {
			close(*fd);
			*fd = -1;
			continue;
		}
		size_t k = (size_t)n < cap - *len ? (size_t)n : cap - *len;
		memcpy(buf + *len, tmp, k);
		*len += k;
		buf[*len] = '\0';
	}
}

/* Wait (bounded) until the process exits and its output is read; its exit code. */
static int finish(struct proc *p, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	while (!p->reaped) {
		bool quiet = p->out < 0 && p->err < 0;
		pump(p, 20);
		int st;
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->reaped = true;
			p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			break;
		}
		if (now_ms() > end) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
			p->reaped = true;
			p->status = 128 + SIGKILL;
			fail_msg("process %d did not exit within %d ms; stderr: %s", (int)p->pid,
				 timeout_ms, p->ebuf);
		}
		if (quiet)
			poll(NULL, 0, 5); /* no output to wait on: re-check its exit shortly */
	}
	while (p->out >= 0 || p->err >= 0) {
		if (now_ms() > end + 5000)
			fail_msg("process %d exited but its output stays open", (int)p->pid);
		pump(p, 100);
	}
	return p->status;
}

/* Wait (bounded) for needle in p's stderr. */
static void wait_stderr(struct proc *p, const char *needle)
{
	uint64_t end = now_ms() + DEADLINE_MS;
	while (!strstr(p->ebuf, needle)) {
		if (now_ms() > end)
			fail_msg("no '%s' from %d within %d ms; stderr: %s", needle, (int)p->pid,
				 DEADLINE_MS, p->ebuf);
		if (p->err < 0) {
			int st = finish(p, DEADLINE_MS);
			fail_msg("process %d exited (%d) before saying '%s'; stderr: %s", (int)p->pid,
				 st, needle, p->ebuf);
		}
		pump(p, 100);
	}
}

/* Run argv to its end (bounded); the finished process with its output. */
static struct proc *run(char *const argv[])
{
	struct proc *p = start(argv, true);
	finish(p, DEADLINE_MS);
	return p;
}

static const char *bin(void)
{
	const char *b = getenv("DEVMIG_BIN");
	if (!b)
		fail_msg("DEVMIG_BIN is not set");
	return b;
}

/* Lines in s (a one-sentence error is exactly one). */
static int lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ---- devices ---- */

struct dev {
	struct proc *p;
	char path[128];
};

static void serve(struct dev *d, const char *name)
{
	char err[256];

	snprintf(d->path, sizeof(d->path), "%s/%s.sock", dir, name);
	char *argv[] = { (char *)bin(), "serve", "--device", "counter", "--socket", d->path, NULL };
	d->p = start(argv, false);
	/* Up once it accepts a client (bounded wait, no fixed sleep). */
	uint64_t end = now_ms() + DEADLINE_MS;
	for (;;) {
		struct devmig_client *c = devmig_client_connect(d->path, NULL, err, sizeof(err));
		if (c) {
			devmig_client_close(c);
			return;
		}
		int st;
		if (waitpid(d->p->pid, &st, WNOHANG) == d->p->pid) {
			d->p->reaped = true;
			fail_msg("devmig serve %s exited early (status 0x%x)", name, st);
		}
		if (now_ms() > end)
			fail_msg("devmig serve %s never came up: %s", name, err);
		poll(NULL, 0, 5);
	}
}

/* One short-lived client per access: the commands need the device to themselves. */
static struct devmig_client *open_dev(const struct dev *d)
{
	char err[256];
	struct devmig_client *c = devmig_client_connect(d->path, NULL, err, sizeof(err));
	if (!c)
		fail_msg("cannot connect to %s: %s", d->path, err);
	return c;
}

static void set_regs(const struct dev *d, uint32_t seed)
{
	struct devmig_client *c = open_dev(d);
	uint32_t v[6] = { seed, seed + 1000, seed ^ 0xc0de0000u, seed * 3, ~seed, seed << 8 };
	uint64_t off[6] = { REG_COUNT, REG_THRESHOLD, REG_SCRATCH0, REG_SCRATCH0 + 4,
			    REG_SCRATCH0 + 8, REG_SCRATCH0 + 12 };
	/* COUNT adds what is written: write the difference to the current value. */
	uint32_t cur = 0;
	assert_int_equal(devmig_client_region_read(c, 0, REG_COUNT, &cur, 4), 0);
	v[0] = seed - cur;
	for (int i = 0; i < 6; i++)
		assert_int_equal(devmig_client_region_write(c, 0, off[i], &v[i], 4), 0);
	devmig_client_close(c);
}

/* The device is RUNNING and holds the registers set_regs(seed) wrote. */
static void expect_regs(const struct dev *d, uint32_t seed)
{
	struct devmig_client *c = open_dev(d);
	uint32_t want[6] = { seed, seed + 1000, seed ^ 0xc0de0000u, seed * 3, ~seed, seed << 8 };
	uint64_t off[6] = { REG_COUNT, REG_THRESHOLD, REG_SCRATCH0, REG_SCRATCH0 + 4,
			    REG_SCRATCH0 + 8, REG_SCRATCH0 + 12 };
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	for (int i = 0; i < 6; i++) {
		uint32_t v = 0;
		assert_int_equal(devmig_client_region_read(c, 0, off[i], &v, 4), 0);
		if (v != want[i]) {
			devmig_client_close(c);
			fail_msg("%s: register 0x%llx is 0x%x, expected 0x%x", d->path,
				 (unsigned long long)off[i], v, want[i]);
		}
	}
	devmig_client_close(c);
	if (st != DEVMIG_STATE_RUNNING)
		fail_msg("%s is %s, not RUNNING", d->path, devmig_state_name(st));
}

static void set_state(const struct dev *d, enum devmig_state s)
{
	struct devmig_client *c = open_dev(d);
	assert_int_equal(devmig_client_set_state(c, s), 0);
	devmig_client_close(c);
}

static void stop_dev(struct dev *d)
{
	if (!d->p || d->p->reaped)
		return;
	kill(d->p->pid, SIGTERM);
	int st = finish(d->p, DEADLINE_MS);
	assert_int_equal(st, 0); /* SIGTERM is a clean shutdown for devmig serve */
}

/* A TCP port nothing listens on right now (bound to port 0, read back, closed). */
static unsigned free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static json_object *parse_json(const char *text)
{
	json_object *j = json_tokener_parse(text);
	if (!j)
		fail_msg("not JSON: %s", text);
	return j;
}

static json_object *member(json_object *j, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(j, key, &v))
		fail_msg("no \"%s\" in %s", key, json_object_to_json_string(j));
	return v;
}

/* ---- fixtures ---- */

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/devmig-cli-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static void netns_cleanup(void)
{
	char *names[2] = { ns_a, ns_b };
	for (int i = 0; i < 2; i++) {
		if (!names[i][0])
			continue;
		char name[32];
		snprintf(name, sizeof(name), "%s", names[i]);
		char *argv[] = { ip_bin, "netns", "del", name, NULL };
		names[i][0] = '\0'; /* once, even if this fails */
		struct proc *p = run(argv);
		if (p->status)
			print_message("# could not delete network namespace %s: %s\n", argv[3],
				      p->ebuf);
	}
}

static int teardown(void **state)
{
	(void)state;
	/* Whatever a failed test left running. */
	for (int i = 0; i < MAX_PROCS; i++) {
		struct proc *p = &pool[i];
		if (!p->used)
			continue;
		if (p->pid > 0 && !p->reaped) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
		}
		if (p->out >= 0)
			close(p->out);
		if (p->err >= 0)
			close(p->err);
		memset(p, 0, sizeof(*p));
	}
	netns_cleanup();
	/* The directory's files: sockets, checkpoints. */
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		return -1;
	return 0;
}

/* ---- tests ---- */

static void info_reports_ids_caps_and_state(void **state)
{
	(void)state;
	struct dev d;
	struct proc *p;
	serve(&d, "info");

	char *argv[] = { (char *)bin(), "info", "--socket", d.path, "--json", NULL };
	assert_int_equal((p = run(argv))->status, 0);
	json_object *j = parse_json(p->obuf);
	assert_string_equal(json_object_get_string(member(j, "vendor")), "1af4");
	assert_string_equal(json_object_get_string(member(j, "device")), "10f0");
	assert_string_equal(json_object_get_string(member(j, "id")), "1af4:10f0");
	assert_true(json_object_get_boolean(member(j, "migratable")));
	json_object *caps = member(j, "caps");
	bool stop_copy = false, p2p = false, pre_copy = false;
	for (size_t i = 0; i < json_object_array_length(caps); i++) {
		const char *c = json_object_get_string(json_object_array_get_idx(caps, i));
		stop_copy |= !strcmp(c, "STOP_COPY");
		p2p |= !strcmp(c, "P2P");
		pre_copy |= !strcmp(c, "PRE_COPY");
	}
	assert_true(stop_copy && p2p && !pre_copy); /* the counter's capabilities */
	assert_int_equal(json_object_get_int64(member(j, "caps_mask")),
			 DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P);
	assert_string_equal(json_object_get_string(member(j, "state")), "RUNNING");
	assert_true(json_object_get_int64(member(j, "stop_copy_size")) > 0);
	assert_true(json_object_get_int64(member(j, "regions")) > 7); /* config space is 7 */
	assert_true(json_object_array_length(member(j, "extensions")) >= 1);
	bool deadline = false, dirty_rate = false;
	for (size_t i = 0; i < json_object_array_length(member(j, "extensions")); i++) {
		const char *e = json_object_get_string(
			json_object_array_get_idx(member(j, "extensions"), i));
		deadline |= !strcmp(e, "deadline");
		dirty_rate |= !strcmp(e, "dirty_rate");
	}
	/* Deadlines for every migratable device; a cap only where honoured (not the counter). */
	assert_true(deadline);
	assert_false(dirty_rate);
	assert_true(json_object_is_type(member(j, "dirty_rate"), json_type_null));
	json_object *est = member(j, "arc_estimates"), *arcs = member(est, "arcs");
	assert_int_equal(json_object_get_int64(member(est, "transfer_rate")), 0);
	assert_true(json_object_array_length(arcs) >= 6);
	bool r_p2p = false;
	for (size_t i = 0; i < json_object_array_length(arcs); i++) {
		json_object *a = json_object_array_get_idx(arcs, i);
		r_p2p |= !strcmp(json_object_get_string(member(a, "from")), "RUNNING") &&
			 !strcmp(json_object_get_string(member(a, "to")), "RUNNING_P2P");
	}
	assert_true(r_p2p);
	assert_true(json_object_is_type(member(est, "last_deadline"), json_type_null));
	json_object *vm = member(j, "version_migration"); /* VERSION's "migration" */
	assert_int_equal(json_object_get_int64(member(vm, "pgsize")), 4096);
	assert_int_equal(json_object_get_int64(member(vm, "max_bitmap_size")), 1 << 20);
	json_object_put(j);

	/* The text form says the same. */
	char *argv2[] = { (char *)bin(), "info", "--socket", d.path, NULL };
	assert_int_equal((p = run(argv2))->status, 0);
	assert_non_null(strstr(p->obuf, "1af4:10f0"));
	assert_non_null(strstr(p->obuf, "STOP_COPY P2P"));
	assert_non_null(strstr(p->obuf, "VERSION:      migration (pgsize 4096"));
	assert_non_null(strstr(p->obuf, "RUNNING"));
	assert_non_null(strstr(p->obuf, "deadlines:"));
	assert_non_null(strstr(p->obuf, "RUNNING -> RUNNING_P2P"));

	/* Nothing served there: one sentence, exit 1. */
	char nowhere[160];
	snprintf(nowhere, sizeof(nowhere), "%s/nothing.sock", dir);
	char *argv3[] = { (char *)bin(), "info", "--socket", nowhere, NULL };
	assert_int_equal((p = run(argv3))->status, 1);
	assert_int_equal(lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "nothing.sock"));
	stop_dev(&d);
}

static void commands_explain_themselves_and_refuse_bad_usage(void **state)
{
	(void)state;
	static const char *const cmds[] = { "info", "migrate", "receive", "save", "restore" };
	struct proc *p;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char usage[64];
		char *help[] = { (char *)bin(), (char *)cmds[i], "--help", NULL };
		assert_int_equal((p = run(help))->status, 0);
		snprintf(usage, sizeof(usage), "usage: devmig %s", cmds[i]);
		assert_non_null(strstr(p->obuf, usage));
		if (strcmp(cmds[i], "info"))
			assert_non_null(strstr(p->obuf, "guest memory")); /* device state only */

		char *bare[] = { (char *)bin(), (char *)cmds[i], NULL };
		assert_int_equal((p = run(bare))->status, 2);
		assert_int_equal(lines(p->ebuf), 1);
		assert_int_equal(p->olen, 0);
	}
	char *both[] = { (char *)bin(), "migrate", "--socket", "a", "--to", "tcp://h:1",
			 "--to-socket", "b", NULL };
	assert_int_equal((p = run(both))->status, 2);
	assert_int_equal(lines(p->ebuf), 1);
	char *count[] = { (char *)bin(), "migrate", "--socket", "a", "--socket", "b",
			  "--to-socket", "c", NULL };
	assert_int_equal((p = run(count))->status, 2);
	assert_int_equal(lines(p->ebuf), 1);
	char *addr[] = { (char *)bin(), "migrate", "--socket", "a", "--to", "udp://h:1", NULL };
	assert_int_equal((p = run(addr))->status, 2);
	assert_int_equal(lines(p->ebuf), 1);
	char *v6[] = { (char *)bin(), "receive", "--listen", "::1:5", "--socket", "a", NULL };
	assert_int_equal((p = run(v6))->status, 2);
	assert_non_null(strstr(p->ebuf, "brackets"));
	char *nothrottle[] = { (char *)bin(), "migrate", "--socket", "a", "--to-socket", "b",
			       "--no-throttle", NULL };
	assert_int_equal((p = run(nothrottle))->status, 2);
	assert_int_equal(lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "--downtime"));
	char *mhelp[] = { (char *)bin(), "migrate", "--help", NULL };
	assert_int_equal((p = run(mhelp))->status, 0);
	assert_non_null(strstr(p->obuf, "--no-throttle"));
	/* The demo lists its scenario, and takes no other. */
	char *dhelp[] = { (char *)bin(), "demo", "--help", NULL };
	assert_int_equal((p = run(dhelp))->status, 0);
	assert_non_null(strstr(p->obuf, "--scenario"));
	assert_non_null(strstr(p->obuf, "non-converging"));
	char *dbad[] = { (char *)bin(), "demo", "--scenario", "fast", NULL };
	assert_int_equal((p = run(dbad))->status, 2);
	assert_int_equal(lines(p->ebuf), 1);
	char *dmix[] = { (char *)bin(), "demo", "--scenario", "non-converging", "--size", "8M",
			 NULL };
	assert_int_equal((p = run(dmix))->status, 2);
	assert_int_equal(lines(p->ebuf), 1);
}

/*
 * --vfio names a kernel device wherever --socket names a vfio-user one. No
 * VFIO here: a name that cannot be a device is a usage error (2); a device
 * that is not there is a failure (1) that names it; the same one twice is
 * refused before anything is opened.
 */
static void vfio_devices_are_named_like_sockets(void **state)
{
	(void)state;
	struct proc *p;

	static const char *const cmds[] = { "info", "migrate", "receive", "save", "restore",
					    "profile" };
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char *help[] = { (char *)bin(), (char *)cmds[i], "--help", NULL };
		assert_int_equal((p = run(help))->status, 0);
		assert_non_null(strstr(p->obuf, "--vfio"));
	}
	char *bad[] = { (char *)bin(), "info", "--vfio", "not-a-device", NULL };
	assert_int_equal((p = run(bad))->status, 2);
	assert_int_equal(lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "names no VFIO device"));
	char *bad_slot[] = { (char *)bin(), "save", "--vfio", "0000:01:00.8", "--file", "x", NULL };
	assert_int_equal((p = run(bad_slot))->status, 2);
	char *absent[] = { (char *)bin(), "info", "--vfio", "0000:7e:1f.7", NULL };
	assert_int_equal((p = run(absent))->status, 1);
	assert_int_equal(lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "0000:7e:1f.7"));
	char *twice[] = { (char *)bin(), "migrate", "--vfio", "0000:7e:1f.7", "--to-vfio",
			  "0000:7e:1f.7", NULL };
	assert_int_equal((p = run(twice))->status, 2);
	assert_non_null(strstr(p->ebuf, "named twice"));
	char *mixed[] = { (char *)bin(), "migrate", "--vfio", "0000:7e:1f.7", "--to-socket", "b",
			  "--to-vfio", "0000:7e:1f.6", NULL };
	assert_int_equal((p = run(mixed))->status, 2);
	assert_non_null(strstr(p->ebuf, "1 sources but 2 destinations"));
	char *compat[] = { (char *)bin(), "compat", "--source", "vfio:0000:7e:1f.7", "--target",
			   "vfio:0000:7e:1f.6", NULL };
	assert_int_equal((p = run(compat))->status, 2);
	assert_non_null(strstr(p->ebuf, "0000:7e:1f.7"));
}

static void migrate_between_local_servers(void **state)
{
	(void)state;
	struct dev s, d;
	struct proc *p;
	serve(&s, "src");
	serve(&d, "dst");
	set_regs(&s, 0x1234);
	set_regs(&d, 0x9999); /* overwritten by the migration */

	char *argv[] = { (char *)bin(), "migrate", "--socket", s.path, "--to-socket", d.path,
			 "--json", NULL };
	int st = (p = run(argv))->status;
	if (st)
		fail_msg("migrate exited %d: %s", st, p->ebuf);
	json_object *j = parse_json(p->obuf);
	assert_true(json_object_get_boolean(member(j, "ok")));
	assert_true(json_object_get_boolean(member(j, "completed")));
	assert_int_equal(json_object_get_int64(member(j, "devices")), 1);
	assert_true(json_object_get_int64(member(j, "device_bytes")) > 0);
	assert_int_equal(json_object_get_int64(member(j, "guest_bytes")), 0);
	assert_true(json_object_is_type(member(j, "error"), json_type_null));
	json_object_put(j);
	expect_regs(&d, 0x1234);

	/* And back again, in text: the summary names the numbers. */
	set_regs(&d, 0x4321);
	char *back[] = { (char *)bin(), "migrate", "--socket", d.path, "--to-socket", s.path,
			 NULL };
	assert_int_equal((p = run(back))->status, 0);
	assert_non_null(strstr(p->obuf, "downtime"));
	assert_non_null(strstr(p->obuf, "throughput"));
	expect_regs(&s, 0x4321);

	/* With a budget: the devices are held to it (a generous one: the
	 * machine may be busy), and the source saw the deadline. */
	set_regs(&s, 0x7777);
	char *held[] = { (char *)bin(), "migrate", "--socket", s.path, "--to-socket", d.path,
			 "--downtime", "20000", "--json", NULL };
	if ((st = (p = run(held))->status))
		fail_msg("migrate --downtime exited %d: %s", st, p->ebuf);
	j = parse_json(p->obuf);
	assert_true(json_object_get_boolean(member(j, "deadlines")));
	assert_int_equal(json_object_get_int64(member(j, "budget_ns")), 20000ll * 1000 * 1000);
	assert_true(json_object_get_boolean(member(j, "budget_met")));
	assert_int_equal(json_object_get_int64(member(j, "deadline_refusals")), 0);
	assert_int_equal(json_object_get_int64(member(j, "throttle_steps")), 0);
	json_object_put(j);
	expect_regs(&d, 0x7777);
	char *info[] = { (char *)bin(), "info", "--socket", s.path, "--json", NULL };
	assert_int_equal((p = run(info))->status, 0);
	j = parse_json(p->obuf);
	json_object *last = member(member(j, "arc_estimates"), "last_deadline");
	assert_string_equal(json_object_get_string(member(last, "state")), "STOP_COPY");
	assert_true(json_object_get_boolean(member(last, "drained")));
	assert_false(json_object_get_boolean(member(last, "refused")));
	assert_true(json_object_get_int64(member(last, "deadline_ns")) > 0);
	json_object_put(j);
	stop_dev(&s);
	stop_dev(&d);
}

/* receive (maybe through a wrapper such as `ip netns exec`) and migrate. */
static void migrate_over_channel(char *const recv_argv[], char *const mig_argv[], struct dev *d,
				 uint32_t seed)
{
	struct proc *r, *m;

	r = start(recv_argv, true);
	wait_stderr(r, "listening on");
	m = run(mig_argv);
	int rst = finish(r, DEADLINE_MS);
	if (m->status || rst)
		fail_msg("migrate exited %d (%s), receive %d (%s)", m->status, m->ebuf, rst,
			 r->ebuf);
	assert_non_null(strstr(m->obuf, "migration complete"));
	assert_non_null(strstr(r->obuf, "migration received"));
	expect_regs(d, seed);
}

static void migrate_over_tcp_loopback(void **state)
{
	(void)state;
	struct dev s, d;
	serve(&s, "src");
	serve(&d, "dst");
	set_regs(&s, 0xabcd);

	char listen[64], to[64];
	unsigned port = free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	snprintf(to, sizeof(to), "tcp://127.0.0.1:%u", port);
	/* Plain TCP, said out loud (TLS: test_cli_secure). */
	char *recv_argv[] = { (char *)bin(), "receive", "--listen", listen, "--socket", d.path,
			      "--insecure", NULL };
	char *mig_argv[] = { (char *)bin(), "migrate", "--socket", s.path, "--to", to,
			     "--insecure", NULL };
	migrate_over_channel(recv_argv, mig_argv, &d, 0xabcd);

	/* The same over a unix socket channel, back to the first device. */
	char unix_at[160];
	snprintf(unix_at, sizeof(unix_at), "unix:%s/channel.sock", dir);
	set_regs(&d, 0x5151);
	char *recv2[] = { (char *)bin(), "receive", "--listen", unix_at, "--socket", s.path, NULL };
	char *mig2[] = { (char *)bin(), "migrate", "--socket", d.path, "--to", unix_at, NULL };
	migrate_over_channel(recv2, mig2, &s, 0x5151);
	stop_dev(&s);
	stop_dev(&d);
}

static bool find_ip(void)
{
	const char *path = getenv("PATH");
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s:/usr/sbin:/sbin:/usr/bin:/bin", path ? path : "");
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(ip_bin, sizeof(ip_bin), "%s/ip", d);
		if (strlen(d) + 3 < sizeof(ip_bin) && !access(ip_bin, X_OK))
			return true;
	}
	ip_bin[0] = '\0';
	return false;
}

static void ip(const char *what, char *const argv[])
{
	struct proc *p = run(argv);
	if (p->status)
		fail_msg("%s: ip exited %d: %s", what, p->status, p->ebuf);
}

static void migrate_between_network_namespaces(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		print_message("# SKIP: network namespaces need root (running as uid %u)\n",
			      (unsigned)geteuid());
		skip();
	}
	if (!find_ip()) {
		print_message("# SKIP: iproute2 is not installed (no 'ip' in PATH, /usr/sbin or "
			      "/sbin): apt-get install iproute2\n");
		skip();
	}
	char a[32], b[32], va[16], vb[16];
	snprintf(a, sizeof(a), "devmig-cli-a-%d", (int)getpid());
	snprintf(b, sizeof(b), "devmig-cli-b-%d", (int)getpid());
	snprintf(va, sizeof(va), "dmca%d", (int)getpid() % 1000000);
	snprintf(vb, sizeof(vb), "dmcb%d", (int)getpid() % 1000000);
	struct proc *p;
	char *add_a[] = { ip_bin, "netns", "add", a, NULL };
	if ((p = run(add_a))->status) {
		print_message("# SKIP: 'ip netns add' does not work here: %s\n", p->ebuf);
		skip();
	}
	snprintf(ns_a, sizeof(ns_a), "%s", a); /* deleted at teardown, also on failure */
	char *add_b[] = { ip_bin, "netns", "add", b, NULL };
	ip("ip netns add", add_b);
	snprintf(ns_b, sizeof(ns_b), "%s", b);
	char *veth[] = { ip_bin, "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb,
			 "netns", b, NULL };
	if ((p = run(veth))->status) {
		print_message("# SKIP: no veth pairs here (ip link add ... type veth: %s)\n", p->ebuf);
		skip(); /* teardown deletes the namespaces */
	}
	char *cfg[][9] = {
		{ ip_bin, "-n", a, "addr", "add", "192.0.2.1/24", "dev", va, NULL },
		{ ip_bin, "-n", b, "addr", "add", "192.0.2.2/24", "dev", vb, NULL },
		{ ip_bin, "-n", a, "link", "set", va, "up", NULL },
		{ ip_bin, "-n", b, "link", "set", vb, "up", NULL },
		{ ip_bin, "-n", a, "link", "set", "lo", "up", NULL },
		{ ip_bin, "-n", b, "link", "set", "lo", "up", NULL },
	};
	for (size_t i = 0; i < sizeof(cfg) / sizeof(cfg[0]); i++)
		ip("configuring the veth pair", cfg[i]);

	/* The servers' unix sockets are paths: reachable from either namespace. */
	struct dev s, d;
	serve(&s, "src");
	serve(&d, "dst");
	set_regs(&s, 0x77aa);
	set_regs(&d, 0x1111);
	char listen[64], to[64];
	unsigned port = free_port(); /* the namespace is new: any port is free in it */
	snprintf(listen, sizeof(listen), "192.0.2.2:%u", port);
	snprintf(to, sizeof(to), "tcp://192.0.2.2:%u", port);
	/* Between "hosts" the channel is TLS with a pre-shared key. */
	char key[160];
	snprintf(key, sizeof(key), "%s/psk", dir);
	char *keygen[] = { (char *)bin(), "keygen", "--psk", key, NULL };
	ip("devmig keygen", keygen);
	char *recv_argv[] = { ip_bin, "netns", "exec", b, (char *)bin(), "receive", "--listen",
			      listen, "--socket", d.path, "--psk", key, NULL };
	char *mig_argv[] = { ip_bin, "netns", "exec", a, (char *)bin(), "migrate", "--socket",
			     s.path, "--to", to, "--psk", key, NULL };
	migrate_over_channel(recv_argv, mig_argv, &d, 0x77aa);

	netns_cleanup();
	stop_dev(&s);
	stop_dev(&d);
}

static void copy_file(const char *from, const char *to, size_t len, long flip_at)
{
	FILE *f = fopen(from, "rb");
	assert_non_null(f);
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, len, f), len);
	fclose(f);
	if (flip_at >= 0)
		buf[flip_at] ^= 0x01;
	f = fopen(to, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);
	free(buf);
}

static void save_and_restore(void **state)
{
	(void)state;
	struct dev s, d;
	struct proc *p;
	serve(&s, "src");
	serve(&d, "dst");
	set_regs(&s, 0x5eed);
	set_regs(&d, 0x0d57);

	char file[160], tmp[170], trunc[170], flip[170];
	snprintf(file, sizeof(file), "%s/ckpt", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	snprintf(trunc, sizeof(trunc), "%s.trunc", file);
	snprintf(flip, sizeof(flip), "%s.flip", file);
	char *save[] = { (char *)bin(), "save", "--socket", s.path, "--file", file, NULL };
	int st = (p = run(save))->status;
	if (st)
		fail_msg("save exited %d: %s", st, p->ebuf);
	struct stat sb;
	assert_int_equal(stat(file, &sb), 0);
	assert_true(sb.st_size > 24);
	assert_int_equal(access(tmp, F_OK), -1);
	expect_regs(&s, 0x5eed); /* the source runs on */

	/* No overwriting without --force. */
	assert_int_equal((p = run(save))->status, 1);
	assert_int_equal(lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "exists"));

	/* Damaged copies are refused before the device is touched. */
	size_t len = (size_t)sb.st_size;
	copy_file(file, trunc, len - 7, -1);
	copy_file(file, flip, len, (long)len / 2);
	const char *bad[] = { trunc, flip };
	for (int i = 0; i < 2; i++) {
		char *restore[] = { (char *)bin(), "restore", "--socket", d.path, "--file",
				    (char *)bad[i], NULL };
		assert_int_equal((p = run(restore))->status, 1);
		assert_int_equal(lines(p->ebuf), 1);
		assert_non_null(strstr(p->ebuf, bad[i])); /* names the file */
		if (i == 0)
			assert_true(strstr(p->ebuf, "end") || strstr(p->ebuf, "middle"));
		else
			assert_non_null(strstr(p->ebuf, "CRC"));
		expect_regs(&d, 0x0d57); /* RUNNING with its own state */
	}

	char *restore[] = { (char *)bin(), "restore", "--socket", d.path, "--file", file,
			    "--json", NULL };
	st = (p = run(restore))->status;
	if (st)
		fail_msg("restore exited %d: %s", st, p->ebuf);
	json_object *j = parse_json(p->obuf);
	assert_true(json_object_get_boolean(member(j, "ok")));
	json_object_put(j);
	expect_regs(&d, 0x5eed);

	/* --force replaces the file with the current state. */
	set_regs(&s, 0xf00d);
	char *force[] = { (char *)bin(), "save", "--socket", s.path, "--file", file, "--force",
			  NULL };
	assert_int_equal((p = run(force))->status, 0);
	char *restore2[] = { (char *)bin(), "restore", "--socket", d.path, "--file", file, NULL };
	assert_int_equal((p = run(restore2))->status, 0);
	expect_regs(&d, 0xf00d);
	stop_dev(&s);
	stop_dev(&d);
}

static void a_failed_save_leaves_no_file(void **state)
{
	(void)state;
	struct dev s;
	struct proc *p;
	serve(&s, "src");
	set_regs(&s, 0x600d);
	/* A destination mid-load has no state to save: the engine refuses it. */
	set_state(&s, DEVMIG_STATE_RESUMING);

	char file[160];
	snprintf(file, sizeof(file), "%s/failed", dir);
	char *save[] = { (char *)bin(), "save", "--socket", s.path, "--file", file, NULL };
	assert_int_equal((p = run(save))->status, 1);
	assert_int_equal(lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "is RESUMING"));
	assert_non_null(strstr(p->ebuf, s.path)); /* the device is named by its socket */
	assert_int_equal(access(file, F_OK), -1);
	char ls[256];
	snprintf(ls, sizeof(ls), "ls -a '%s' | grep -q '^\\.failed\\.'", dir);
	assert_true(system(ls) != 0); /* no temporary file left either */
	stop_dev(&s);
}

static void migrate_to_nothing_fails_and_the_source_runs_on(void **state)
{
	(void)state;
	struct dev s;
	struct proc *p;
	serve(&s, "src");
	set_regs(&s, 0xdead);

	char to[64];
	snprintf(to, sizeof(to), "tcp://127.0.0.1:%u", free_port());
	char *argv[] = { (char *)bin(), "migrate", "--socket", s.path, "--to", to, "--insecure",
			 NULL };
	assert_int_equal((p = run(argv))->status, 1);
	assert_int_equal(lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "cannot connect"));
	assert_int_equal(p->olen, 0);
	expect_regs(&s, 0xdead);

	/* --json: the report says why, on stdout. */
	char *js[] = { (char *)bin(), "migrate", "--socket", s.path, "--to-socket", s.path,
		       "--json", NULL };
	assert_int_equal((p = run(js))->status, 2); /* a device cannot be both ends */
	assert_int_equal(lines(p->ebuf), 1);

	/* A source that is a destination mid-load: the engine refuses, names the device,
	 * the report says so. */
	struct dev d;
	serve(&d, "dst");
	set_state(&s, DEVMIG_STATE_RESUMING);
	char *js2[] = { (char *)bin(), "migrate", "--socket", s.path, "--to-socket", d.path,
			"--json", NULL };
	assert_int_equal((p = run(js2))->status, 1);
	assert_int_equal(lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "source device 0"));
	json_object *j = parse_json(p->obuf);
	assert_false(json_object_get_boolean(member(j, "ok")));
	assert_non_null(strstr(json_object_get_string(member(j, "error")), "is RESUMING"));
	json_object_put(j);
	assert_int_equal(p->status, 1);
	stop_dev(&s);
	stop_dev(&d);
}

/* devmig region: bytes in and out as hex, through the counter's registers
 * and its BAR2 memory; bad usage is refused in one sentence. */
static void region_reads_and_writes_hex(void **state)
{
	(void)state;
	struct dev d;
	struct proc *p;
	serve(&d, "region");

	char *w1[] = { (char *)bin(), "region", "write", "--socket", d.path, "--region", "0",
		       "--offset", "0x8", "--data", "efbeadde", NULL };
	assert_int_equal((p = run(w1))->status, 0);
	assert_string_equal(p->obuf, "");
	char *r1[] = { (char *)bin(), "region", "read", "--socket", d.path, "--region", "0",
		       "--offset", "8", "--count", "4", NULL };
	assert_int_equal((p = run(r1))->status, 0);
	assert_string_equal(p->obuf, "efbeadde\n");
	/* BAR2: 8 bytes into its memory, then one read across memory and MEM_SUM */
	char *w2[] = { (char *)bin(), "region", "write", "--socket", d.path, "--region", "2",
		       "--offset", "4088", "--data", "0100000002000000", NULL };
	assert_int_equal((p = run(w2))->status, 0);
	char *r2[] = { (char *)bin(), "region", "read", "--socket", d.path, "--region", "2",
		       "--offset", "4092", "--count", "8", "--json", NULL };
	assert_int_equal((p = run(r2))->status, 0);
	json_object *j = parse_json(p->obuf);
	assert_int_equal(json_object_get_int64(member(j, "region")), 2);
	assert_int_equal(json_object_get_int64(member(j, "offset")), 4092);
	assert_string_equal(json_object_get_string(member(j, "data")), "0200000003000000");
	json_object_put(j);

	/* refused by the device: one sentence, exit 1 */
	char *r3[] = { (char *)bin(), "region", "read", "--socket", d.path, "--region", "0",
		       "--offset", "4095", "--count", "4", NULL };
	assert_int_equal((p = run(r3))->status, 1);
	assert_int_equal(lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "refused"));
	/* bad usage: exit 2, one sentence each */
	char *bad[][12] = {
		{ (char *)bin(), "region", NULL },
		{ (char *)bin(), "region", "poke", "--socket", d.path, NULL },
		{ (char *)bin(), "region", "read", "--socket", d.path, "--region", "0", NULL },
		{ (char *)bin(), "region", "read", "--socket", d.path, "--region", "9", "--offset",
		  "0", "--count", "4", NULL },
		{ (char *)bin(), "region", "read", "--socket", d.path, "--region", "0", "--offset",
		  "0", "--count", "0", NULL },
		{ (char *)bin(), "region", "write", "--socket", d.path, "--region", "0", "--offset",
		  "0", "--data", "abc", NULL },
		{ (char *)bin(), "region", "write", "--socket", d.path, "--region", "0", "--offset",
		  "0", "--data", "zz", NULL },
		{ (char *)bin(), "region", "write", "--socket", d.path, "--region", "0", "--offset",
		  "0", "--count", "4", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = run(bad[i]);
		if (p->status != 2 || lines(p->ebuf) != 1)
			fail_msg("case %zu: status %d, stderr '%s'", i, p->status, p->ebuf);
	}
	/* nothing changed by the refusals */
	assert_int_equal((p = run(r1))->status, 0);
	assert_string_equal(p->obuf, "efbeadde\n");
	stop_dev(&d);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(info_reports_ids_caps_and_state, setup, teardown),
		cmocka_unit_test_setup_teardown(commands_explain_themselves_and_refuse_bad_usage,
						setup, teardown),
		cmocka_unit_test_setup_teardown(vfio_devices_are_named_like_sockets, setup,
						teardown),
		cmocka_unit_test_setup_teardown(migrate_between_local_servers, setup, teardown),
		cmocka_unit_test_setup_teardown(migrate_over_tcp_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(migrate_between_network_namespaces, setup,
						teardown),
		cmocka_unit_test_setup_teardown(save_and_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(region_reads_and_writes_hex, setup, teardown),
		cmocka_unit_test_setup_teardown(a_failed_save_leaves_no_file, setup, teardown),
		cmocka_unit_test_setup_teardown(migrate_to_nothing_fails_and_the_source_runs_on,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
