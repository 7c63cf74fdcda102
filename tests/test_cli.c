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
#include "proc_test_util.h"

extern char **environ;

#define REG_COUNT 0x00
#define REG_THRESHOLD 0x04
#define REG_SCRATCH0 0x08
#define REG_ID 0x18

static char ns_a[32], ns_b[32]; /* network namespaces to delete at teardown */
static char ip_bin[64];

/* Wait (bounded) for needle in p's stderr; it must not exit first. */
static void wait_stderr(struct proc *p, const char *needle)
{
	if (!pt_wait_stderr(p, needle, PT_DEADLINE_MS))
		fail_msg("process %d exited (%d) before saying '%s'; stderr: %s", (int)p->pid,
			 pt_finish(p, PT_DEADLINE_MS), needle, p->ebuf);
}

/* ---- devices ---- */

static void serve(struct dev *d, const char *name)
{
	pt_serve(d, name, "counter", NULL);
}

static void set_regs(const struct dev *d, uint32_t seed)
{
	struct devmig_client *c = pt_open_dev(d);
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
	struct devmig_client *c = pt_open_dev(d);
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

/* ---- fixtures ---- */

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
		struct proc *p = pt_run(argv);
		if (p->status)
			print_message("# could not delete network namespace %s: %s\n", argv[3],
				      p->ebuf);
	}
}

static int teardown(void **state)
{
	pt_reap_all(); /* whatever a failed test left running */
	netns_cleanup();
	return pt_teardown(state); /* and the folder: sockets, checkpoints */
}

/* ---- tests ---- */

static void info_reports_ids_caps_and_state(void **state)
{
	(void)state;
	struct dev d;
	struct proc *p;
	serve(&d, "info");

	char *argv[] = { (char *)pt_bin(), "info", "--socket", d.path, "--json", NULL };
	assert_int_equal((p = pt_run(argv))->status, 0);
	json_object *j = pt_json(p->obuf);
	assert_string_equal(json_object_get_string(pt_member(j, "vendor")), "1af4");
	assert_string_equal(json_object_get_string(pt_member(j, "device")), "10f0");
	assert_string_equal(json_object_get_string(pt_member(j, "id")), "1af4:10f0");
	assert_true(json_object_get_boolean(pt_member(j, "migratable")));
	json_object *caps = pt_member(j, "caps");
	bool stop_copy = false, p2p = false, pre_copy = false;
	for (size_t i = 0; i < json_object_array_length(caps); i++) {
		const char *c = json_object_get_string(json_object_array_get_idx(caps, i));
		stop_copy |= !strcmp(c, "STOP_COPY");
		p2p |= !strcmp(c, "P2P");
		pre_copy |= !strcmp(c, "PRE_COPY");
	}
	assert_true(stop_copy && p2p && !pre_copy); /* the counter's capabilities */
	assert_int_equal(json_object_get_int64(pt_member(j, "caps_mask")),
			 DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P);
	assert_string_equal(json_object_get_string(pt_member(j, "state")), "RUNNING");
	assert_true(json_object_get_int64(pt_member(j, "stop_copy_size")) > 0);
	assert_true(json_object_get_int64(pt_member(j, "regions")) > 7); /* config space is 7 */
	assert_true(json_object_array_length(pt_member(j, "extensions")) >= 1);
	bool deadline = false, dirty_rate = false;
	for (size_t i = 0; i < json_object_array_length(pt_member(j, "extensions")); i++) {
		const char *e = json_object_get_string(
			json_object_array_get_idx(pt_member(j, "extensions"), i));
		deadline |= !strcmp(e, "deadline");
		dirty_rate |= !strcmp(e, "dirty_rate");
	}
	/* Deadlines for every migratable device; a cap only where honoured (not the counter). */
	assert_true(deadline);
	assert_false(dirty_rate);
	assert_true(json_object_is_type(pt_member(j, "dirty_rate"), json_type_null));
	json_object *est = pt_member(j, "arc_estimates"), *arcs = pt_member(est, "arcs");
	assert_int_equal(json_object_get_int64(pt_member(est, "transfer_rate")), 0);
	assert_true(json_object_array_length(arcs) >= 6);
	bool r_p2p = false;
	for (size_t i = 0; i < json_object_array_length(arcs); i++) {
		json_object *a = json_object_array_get_idx(arcs, i);
		r_p2p |= !strcmp(json_object_get_string(pt_member(a, "from")), "RUNNING") &&
			 !strcmp(json_object_get_string(pt_member(a, "to")), "RUNNING_P2P");
	}
	assert_true(r_p2p);
	assert_true(json_object_is_type(pt_member(est, "last_deadline"), json_type_null));
	json_object *vm = pt_member(j, "version_migration"); /* VERSION's "migration" */
	assert_int_equal(json_object_get_int64(pt_member(vm, "pgsize")), 4096);
	assert_int_equal(json_object_get_int64(pt_member(vm, "max_bitmap_size")), 1 << 20);
	json_object_put(j);

	/* The text form says the same. */
	char *argv2[] = { (char *)pt_bin(), "info", "--socket", d.path, NULL };
	assert_int_equal((p = pt_run(argv2))->status, 0);
	assert_non_null(strstr(p->obuf, "1af4:10f0"));
	assert_non_null(strstr(p->obuf, "STOP_COPY P2P"));
	assert_non_null(strstr(p->obuf, "VERSION:      migration (pgsize 4096"));
	assert_non_null(strstr(p->obuf, "RUNNING"));
	assert_non_null(strstr(p->obuf, "deadlines:"));
	assert_non_null(strstr(p->obuf, "RUNNING -> RUNNING_P2P"));

	/* Nothing served there: one sentence, exit 1. */
	char nowhere[160];
	snprintf(nowhere, sizeof(nowhere), "%s/nothing.sock", pt_dir);
	char *argv3[] = { (char *)pt_bin(), "info", "--socket", nowhere, NULL };
	assert_int_equal((p = pt_run(argv3))->status, 1);
	assert_int_equal(pt_lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "nothing.sock"));
	pt_stop_dev(&d);
}

static void commands_explain_themselves_and_refuse_bad_usage(void **state)
{
	(void)state;
	static const char *const cmds[] = { "info", "migrate", "receive", "save", "restore" };
	struct proc *p;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char usage[64];
		char *help[] = { (char *)pt_bin(), (char *)cmds[i], "--help", NULL };
		assert_int_equal((p = pt_run(help))->status, 0);
		snprintf(usage, sizeof(usage), "usage: devmig %s", cmds[i]);
		assert_non_null(strstr(p->obuf, usage));
		if (strcmp(cmds[i], "info"))
			assert_non_null(strstr(p->obuf, "guest memory")); /* device state only */

		char *bare[] = { (char *)pt_bin(), (char *)cmds[i], NULL };
		assert_int_equal((p = pt_run(bare))->status, 2);
		assert_int_equal(pt_lines(p->ebuf), 1);
		assert_int_equal(p->olen, 0);
	}
	char *both[] = { (char *)pt_bin(), "migrate", "--socket", "a", "--to", "tcp://h:1",
			 "--to-socket", "b", NULL };
	assert_int_equal((p = pt_run(both))->status, 2);
	assert_int_equal(pt_lines(p->ebuf), 1);
	char *count[] = { (char *)pt_bin(), "migrate", "--socket", "a", "--socket", "b",
			  "--to-socket", "c", NULL };
	assert_int_equal((p = pt_run(count))->status, 2);
	assert_int_equal(pt_lines(p->ebuf), 1);
	char *addr[] = { (char *)pt_bin(), "migrate", "--socket", "a", "--to", "udp://h:1", NULL };
	assert_int_equal((p = pt_run(addr))->status, 2);
	assert_int_equal(pt_lines(p->ebuf), 1);
	char *v6[] = { (char *)pt_bin(), "receive", "--listen", "::1:5", "--socket", "a", NULL };
	assert_int_equal((p = pt_run(v6))->status, 2);
	assert_non_null(strstr(p->ebuf, "brackets"));
	char *nothrottle[] = { (char *)pt_bin(), "migrate", "--socket", "a", "--to-socket", "b",
			       "--no-throttle", NULL };
	assert_int_equal((p = pt_run(nothrottle))->status, 2);
	assert_int_equal(pt_lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "--downtime"));
	char *mhelp[] = { (char *)pt_bin(), "migrate", "--help", NULL };
	assert_int_equal((p = pt_run(mhelp))->status, 0);
	assert_non_null(strstr(p->obuf, "--no-throttle"));
	/* The demo lists its scenario, and takes no other. */
	char *dhelp[] = { (char *)pt_bin(), "demo", "--help", NULL };
	assert_int_equal((p = pt_run(dhelp))->status, 0);
	assert_non_null(strstr(p->obuf, "--scenario"));
	assert_non_null(strstr(p->obuf, "non-converging"));
	char *dbad[] = { (char *)pt_bin(), "demo", "--scenario", "fast", NULL };
	assert_int_equal((p = pt_run(dbad))->status, 2);
	assert_int_equal(pt_lines(p->ebuf), 1);
	char *dmix[] = { (char *)pt_bin(), "demo", "--scenario", "non-converging", "--size", "8M",
			 NULL };
	assert_int_equal((p = pt_run(dmix))->status, 2);
	assert_int_equal(pt_lines(p->ebuf), 1);
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
		char *help[] = { (char *)pt_bin(), (char *)cmds[i], "--help", NULL };
		assert_int_equal((p = pt_run(help))->status, 0);
		assert_non_null(strstr(p->obuf, "--vfio"));
	}
	char *bad[] = { (char *)pt_bin(), "info", "--vfio", "not-a-device", NULL };
	assert_int_equal((p = pt_run(bad))->status, 2);
	assert_int_equal(pt_lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "names no VFIO device"));
	char *bad_slot[] = { (char *)pt_bin(), "save", "--vfio", "0000:01:00.8", "--file", "x", NULL };
	assert_int_equal((p = pt_run(bad_slot))->status, 2);
	char *absent[] = { (char *)pt_bin(), "info", "--vfio", "0000:7e:1f.7", NULL };
	assert_int_equal((p = pt_run(absent))->status, 1);
	assert_int_equal(pt_lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "0000:7e:1f.7"));
	char *twice[] = { (char *)pt_bin(), "migrate", "--vfio", "0000:7e:1f.7", "--to-vfio",
			  "0000:7e:1f.7", NULL };
	assert_int_equal((p = pt_run(twice))->status, 2);
	assert_non_null(strstr(p->ebuf, "named twice"));
	char *mixed[] = { (char *)pt_bin(), "migrate", "--vfio", "0000:7e:1f.7", "--to-socket", "b",
			  "--to-vfio", "0000:7e:1f.6", NULL };
	assert_int_equal((p = pt_run(mixed))->status, 2);
	assert_non_null(strstr(p->ebuf, "1 sources but 2 destinations"));
	char *compat[] = { (char *)pt_bin(), "compat", "--source", "vfio:0000:7e:1f.7", "--target",
			   "vfio:0000:7e:1f.6", NULL };
	assert_int_equal((p = pt_run(compat))->status, 2);
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

	char *argv[] = { (char *)pt_bin(), "migrate", "--socket", s.path, "--to-socket", d.path,
			 "--json", NULL };
	int st = (p = pt_run(argv))->status;
	if (st)
		fail_msg("migrate exited %d: %s", st, p->ebuf);
	json_object *j = pt_json(p->obuf);
	assert_true(json_object_get_boolean(pt_member(j, "ok")));
	assert_true(json_object_get_boolean(pt_member(j, "completed")));
	assert_int_equal(json_object_get_int64(pt_member(j, "devices")), 1);
	assert_true(json_object_get_int64(pt_member(j, "device_bytes")) > 0);
	assert_int_equal(json_object_get_int64(pt_member(j, "guest_bytes")), 0);
	assert_true(json_object_is_type(pt_member(j, "error"), json_type_null));
	json_object_put(j);
	expect_regs(&d, 0x1234);

	/* And back again, in text: the summary names the numbers. */
	set_regs(&d, 0x4321);
	char *back[] = { (char *)pt_bin(), "migrate", "--socket", d.path, "--to-socket", s.path,
			 NULL };
	assert_int_equal((p = pt_run(back))->status, 0);
	assert_non_null(strstr(p->obuf, "downtime"));
	assert_non_null(strstr(p->obuf, "throughput"));
	expect_regs(&s, 0x4321);

	/* With a budget: the devices are held to it (a generous one: the
	 * machine may be busy), and the source saw the deadline. */
	set_regs(&s, 0x7777);
	char *held[] = { (char *)pt_bin(), "migrate", "--socket", s.path, "--to-socket", d.path,
			 "--downtime", "20000", "--json", NULL };
	if ((st = (p = pt_run(held))->status))
		fail_msg("migrate --downtime exited %d: %s", st, p->ebuf);
	j = pt_json(p->obuf);
	assert_true(json_object_get_boolean(pt_member(j, "deadlines")));
	assert_int_equal(json_object_get_int64(pt_member(j, "budget_ns")), 20000ll * 1000 * 1000);
	assert_true(json_object_get_boolean(pt_member(j, "budget_met")));
	assert_int_equal(json_object_get_int64(pt_member(j, "deadline_refusals")), 0);
	assert_int_equal(json_object_get_int64(pt_member(j, "throttle_steps")), 0);
	json_object_put(j);
	expect_regs(&d, 0x7777);
	char *info[] = { (char *)pt_bin(), "info", "--socket", s.path, "--json", NULL };
	assert_int_equal((p = pt_run(info))->status, 0);
	j = pt_json(p->obuf);
	json_object *last = pt_member(pt_member(j, "arc_estimates"), "last_deadline");
	assert_string_equal(json_object_get_string(pt_member(last, "state")), "STOP_COPY");
	assert_true(json_object_get_boolean(pt_member(last, "drained")));
	assert_false(json_object_get_boolean(pt_member(last, "refused")));
	assert_true(json_object_get_int64(pt_member(last, "deadline_ns")) > 0);
	json_object_put(j);
	pt_stop_dev(&s);
	pt_stop_dev(&d);
}

/* receive (maybe through a wrapper such as `ip netns exec`) and migrate. */
static void migrate_over_channel(char *const recv_argv[], char *const mig_argv[], struct dev *d,
				 uint32_t seed)
{
	struct proc *r, *m;

	r = pt_start(recv_argv, true);
	wait_stderr(r, "listening on");
	m = pt_run(mig_argv);
	int rst = pt_finish(r, PT_DEADLINE_MS);
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
	unsigned port = pt_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	snprintf(to, sizeof(to), "tcp://127.0.0.1:%u", port);
	/* Plain TCP, said out loud (TLS: test_cli_secure). */
	char *recv_argv[] = { (char *)pt_bin(), "receive", "--listen", listen, "--socket", d.path,
			      "--insecure", NULL };
	char *mig_argv[] = { (char *)pt_bin(), "migrate", "--socket", s.path, "--to", to,
			     "--insecure", NULL };
	migrate_over_channel(recv_argv, mig_argv, &d, 0xabcd);

	/* The same over a unix socket channel, back to the first device. */
	char unix_at[160];
	snprintf(unix_at, sizeof(unix_at), "unix:%s/channel.sock", pt_dir);
	set_regs(&d, 0x5151);
	char *recv2[] = { (char *)pt_bin(), "receive", "--listen", unix_at, "--socket", s.path, NULL };
	char *mig2[] = { (char *)pt_bin(), "migrate", "--socket", d.path, "--to", unix_at, NULL };
	migrate_over_channel(recv2, mig2, &s, 0x5151);
	pt_stop_dev(&s);
	pt_stop_dev(&d);
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
	struct proc *p = pt_run(argv);
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
	if ((p = pt_run(add_a))->status) {
		print_message("# SKIP: 'ip netns add' does not work here: %s\n", p->ebuf);
		skip();
	}
	snprintf(ns_a, sizeof(ns_a), "%s", a); /* deleted at teardown, also on failure */
	char *add_b[] = { ip_bin, "netns", "add", b, NULL };
	ip("ip netns add", add_b);
	snprintf(ns_b, sizeof(ns_b), "%s", b);
	char *veth[] = { ip_bin, "link", "add", va, "netns", a, "type", "veth", "peer", "name", vb,
			 "netns", b, NULL };
	if ((p = pt_run(veth))->status) {
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
	unsigned port = pt_free_port(); /* the namespace is new: any port is free in it */
	snprintf(listen, sizeof(listen), "192.0.2.2:%u", port);
	snprintf(to, sizeof(to), "tcp://192.0.2.2:%u", port);
	/* Between "hosts" the channel is TLS with a pre-shared key. */
	char key[160];
	snprintf(key, sizeof(key), "%s/psk", pt_dir);
	char *keygen[] = { (char *)pt_bin(), "keygen", "--psk", key, NULL };
	ip("devmig keygen", keygen);
	char *recv_argv[] = { ip_bin, "netns", "exec", b, (char *)pt_bin(), "receive", "--listen",
			      listen, "--socket", d.path, "--psk", key, NULL };
	char *mig_argv[] = { ip_bin, "netns", "exec", a, (char *)pt_bin(), "migrate", "--socket",
			     s.path, "--to", to, "--psk", key, NULL };
	migrate_over_channel(recv_argv, mig_argv, &d, 0x77aa);

	netns_cleanup();
	pt_stop_dev(&s);
	pt_stop_dev(&d);
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
	snprintf(file, sizeof(file), "%s/ckpt", pt_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	snprintf(trunc, sizeof(trunc), "%s.trunc", file);
	snprintf(flip, sizeof(flip), "%s.flip", file);
	char *save[] = { (char *)pt_bin(), "save", "--socket", s.path, "--file", file, NULL };
	int st = (p = pt_run(save))->status;
	if (st)
		fail_msg("save exited %d: %s", st, p->ebuf);
	struct stat sb;
	assert_int_equal(stat(file, &sb), 0);
	assert_true(sb.st_size > 24);
	assert_int_equal(access(tmp, F_OK), -1);
	expect_regs(&s, 0x5eed); /* the source runs on */

	/* No overwriting without --force. */
	assert_int_equal((p = pt_run(save))->status, 1);
	assert_int_equal(pt_lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "exists"));

	/* Damaged copies are refused before the device is touched. */
	size_t len = (size_t)sb.st_size;
	copy_file(file, trunc, len - 7, -1);
	copy_file(file, flip, len, (long)len / 2);
	const char *bad[] = { trunc, flip };
	for (int i = 0; i < 2; i++) {
		char *restore[] = { (char *)pt_bin(), "restore", "--socket", d.path, "--file",
				    (char *)bad[i], NULL };
		assert_int_equal((p = pt_run(restore))->status, 1);
		assert_int_equal(pt_lines(p->ebuf), 1);
		assert_non_null(strstr(p->ebuf, bad[i])); /* names the file */
		if (i == 0)
			assert_true(strstr(p->ebuf, "end") || strstr(p->ebuf, "middle"));
		else
			assert_non_null(strstr(p->ebuf, "CRC"));
		expect_regs(&d, 0x0d57); /* RUNNING with its own state */
	}

	char *restore[] = { (char *)pt_bin(), "restore", "--socket", d.path, "--file", file,
			    "--json", NULL };
	st = (p = pt_run(restore))->status;
	if (st)
		fail_msg("restore exited %d: %s", st, p->ebuf);
	json_object *j = pt_json(p->obuf);
	assert_true(json_object_get_boolean(pt_member(j, "ok")));
	json_object_put(j);
	expect_regs(&d, 0x5eed);

	/* --force replaces the file with the current state. */
	set_regs(&s, 0xf00d);
	char *force[] = { (char *)pt_bin(), "save", "--socket", s.path, "--file", file, "--force",
			  NULL };
	assert_int_equal((p = pt_run(force))->status, 0);
	char *restore2[] = { (char *)pt_bin(), "restore", "--socket", d.path, "--file", file, NULL };
	assert_int_equal((p = pt_run(restore2))->status, 0);
	expect_regs(&d, 0xf00d);
	pt_stop_dev(&s);
	pt_stop_dev(&d);
}

static void a_failed_save_leaves_no_file(void **state)
{
	(void)state;
	struct dev s;
	struct proc *p;
	serve(&s, "src");
	set_regs(&s, 0x600d);
	/* A destination mid-load has no state to save: the engine refuses it. */
	pt_set_state(&s, DEVMIG_STATE_RESUMING);

	char file[160];
	snprintf(file, sizeof(file), "%s/failed", pt_dir);
	char *save[] = { (char *)pt_bin(), "save", "--socket", s.path, "--file", file, NULL };
	assert_int_equal((p = pt_run(save))->status, 1);
	assert_int_equal(pt_lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "is RESUMING"));
	assert_non_null(strstr(p->ebuf, s.path)); /* the device is named by its socket */
	assert_int_equal(access(file, F_OK), -1);
	char ls[256];
	snprintf(ls, sizeof(ls), "ls -a '%s' | grep -q '^\\.failed\\.'", pt_dir);
	assert_true(system(ls) != 0); /* no temporary file left either */
	pt_stop_dev(&s);
}

static void migrate_to_nothing_fails_and_the_source_runs_on(void **state)
{
	(void)state;
	struct dev s;
	struct proc *p;
	serve(&s, "src");
	set_regs(&s, 0xdead);

	char to[64];
	snprintf(to, sizeof(to), "tcp://127.0.0.1:%u", pt_free_port());
	char *argv[] = { (char *)pt_bin(), "migrate", "--socket", s.path, "--to", to, "--insecure",
			 NULL };
	assert_int_equal((p = pt_run(argv))->status, 1);
	assert_int_equal(pt_lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "cannot connect"));
	assert_int_equal(p->olen, 0);
	expect_regs(&s, 0xdead);

	/* --json: the report says why, on stdout. */
	char *js[] = { (char *)pt_bin(), "migrate", "--socket", s.path, "--to-socket", s.path,
		       "--json", NULL };
	assert_int_equal((p = pt_run(js))->status, 2); /* a device cannot be both ends */
	assert_int_equal(pt_lines(p->ebuf), 1);

	/* A source that is a destination mid-load: the engine refuses, names the device,
	 * the report says so. */
	struct dev d;
	serve(&d, "dst");
	pt_set_state(&s, DEVMIG_STATE_RESUMING);
	char *js2[] = { (char *)pt_bin(), "migrate", "--socket", s.path, "--to-socket", d.path,
			"--json", NULL };
	assert_int_equal((p = pt_run(js2))->status, 1);
	assert_int_equal(pt_lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "source device 0"));
	json_object *j = pt_json(p->obuf);
	assert_false(json_object_get_boolean(pt_member(j, "ok")));
	assert_non_null(strstr(json_object_get_string(pt_member(j, "error")), "is RESUMING"));
	json_object_put(j);
	assert_int_equal(p->status, 1);
	pt_stop_dev(&s);
	pt_stop_dev(&d);
}

/* devmig region: bytes in and out as hex, through the counter's registers
 * and its BAR2 memory; bad usage is refused in one sentence. */
static void region_reads_and_writes_hex(void **state)
{
	(void)state;
	struct dev d;
	struct proc *p;
	serve(&d, "region");

	char *w1[] = { (char *)pt_bin(), "region", "write", "--socket", d.path, "--region", "0",
		       "--offset", "0x8", "--data", "efbeadde", NULL };
	assert_int_equal((p = pt_run(w1))->status, 0);
	assert_string_equal(p->obuf, "");
	char *r1[] = { (char *)pt_bin(), "region", "read", "--socket", d.path, "--region", "0",
		       "--offset", "8", "--count", "4", NULL };
	assert_int_equal((p = pt_run(r1))->status, 0);
	assert_string_equal(p->obuf, "efbeadde\n");
	/* BAR2: 8 bytes into its memory, then one read across memory and MEM_SUM */
	char *w2[] = { (char *)pt_bin(), "region", "write", "--socket", d.path, "--region", "2",
		       "--offset", "4088", "--data", "0100000002000000", NULL };
	assert_int_equal((p = pt_run(w2))->status, 0);
	char *r2[] = { (char *)pt_bin(), "region", "read", "--socket", d.path, "--region", "2",
		       "--offset", "4092", "--count", "8", "--json", NULL };
	assert_int_equal((p = pt_run(r2))->status, 0);
	json_object *j = pt_json(p->obuf);
	assert_int_equal(json_object_get_int64(pt_member(j, "region")), 2);
	assert_int_equal(json_object_get_int64(pt_member(j, "offset")), 4092);
	assert_string_equal(json_object_get_string(pt_member(j, "data")), "0200000003000000");
	json_object_put(j);

	/* refused by the device: one sentence, exit 1 */
	char *r3[] = { (char *)pt_bin(), "region", "read", "--socket", d.path, "--region", "0",
		       "--offset", "4095", "--count", "4", NULL };
	assert_int_equal((p = pt_run(r3))->status, 1);
	assert_int_equal(pt_lines(p->ebuf), 1);
	assert_non_null(strstr(p->ebuf, "refused"));
	/* bad usage: exit 2, one sentence each */
	char *bad[][12] = {
		{ (char *)pt_bin(), "region", NULL },
		{ (char *)pt_bin(), "region", "poke", "--socket", d.path, NULL },
		{ (char *)pt_bin(), "region", "read", "--socket", d.path, "--region", "0", NULL },
		{ (char *)pt_bin(), "region", "read", "--socket", d.path, "--region", "9", "--offset",
		  "0", "--count", "4", NULL },
		{ (char *)pt_bin(), "region", "read", "--socket", d.path, "--region", "0", "--offset",
		  "0", "--count", "0", NULL },
		{ (char *)pt_bin(), "region", "write", "--socket", d.path, "--region", "0", "--offset",
		  "0", "--data", "abc", NULL },
		{ (char *)pt_bin(), "region", "write", "--socket", d.path, "--region", "0", "--offset",
		  "0", "--data", "zz", NULL },
		{ (char *)pt_bin(), "region", "write", "--socket", d.path, "--region", "0", "--offset",
		  "0", "--count", "4", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = pt_run(bad[i]);
		if (p->status != 2 || pt_lines(p->ebuf) != 1)
			fail_msg("case %zu: status %d, stderr '%s'", i, p->status, p->ebuf);
	}
	/* nothing changed by the refusals */
	assert_int_equal((p = pt_run(r1))->status, 0);
	assert_string_equal(p->obuf, "efbeadde\n");
	pt_stop_dev(&d);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(info_reports_ids_caps_and_state, pt_setup, teardown),
		cmocka_unit_test_setup_teardown(commands_explain_themselves_and_refuse_bad_usage,
						pt_setup, teardown),
		cmocka_unit_test_setup_teardown(vfio_devices_are_named_like_sockets, pt_setup,
						teardown),
		cmocka_unit_test_setup_teardown(migrate_between_local_servers, pt_setup, teardown),
		cmocka_unit_test_setup_teardown(migrate_over_tcp_loopback, pt_setup, teardown),
		cmocka_unit_test_setup_teardown(migrate_between_network_namespaces, pt_setup,
						teardown),
		cmocka_unit_test_setup_teardown(save_and_restore, pt_setup, teardown),
		cmocka_unit_test_setup_teardown(region_reads_and_writes_hex, pt_setup, teardown),
		cmocka_unit_test_setup_teardown(a_failed_save_leaves_no_file, pt_setup, teardown),
		cmocka_unit_test_setup_teardown(migrate_to_nothing_fails_and_the_source_runs_on,
						pt_setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
