/* SPDX-License-Identifier: MIT */
/*
 * The devmig binary against people and accidents: a receive that only a
 * holder of the key or a signed certificate can feed (and that keeps waiting
 * through everyone else), private unix channels, a serve that does not take
 * another's socket, checkpoints that no planted link redirects, and the
 * commands that recover a device in one step. Counter devices in `devmig
 * serve` processes; certificates are made here, at test time.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "devmig/client.h"
#include "proc_test_util.h"
#include "tls_test_util.h"

#define REG_COUNT 0x00
#define REG_SCRATCH0 0x08

/* ---- counter registers ---- */

static void set_regs(const struct dev *d, uint32_t seed)
{
	struct devmig_client *c = pt_open_dev(d);
	uint32_t cur = 0, add;
	assert_int_equal(devmig_client_region_read(c, 0, REG_COUNT, &cur, 4), 0);
	add = seed - cur; /* COUNT adds what is written */
	assert_int_equal(devmig_client_region_write(c, 0, REG_COUNT, &add, 4), 0);
	for (uint32_t i = 0; i < 4; i++) {
		uint32_t v = seed * (i + 3) ^ 0x5a5a0000u;
		assert_int_equal(devmig_client_region_write(c, 0, REG_SCRATCH0 + 4 * i, &v, 4), 0);
	}
	devmig_client_close(c);
}

/* The device holds what set_regs(seed) wrote; its state is st. */
static void expect_regs(const struct dev *d, uint32_t seed, enum devmig_state st)
{
	struct devmig_client *c = pt_open_dev(d);
	enum devmig_state now;
	uint32_t v = 0;
	assert_int_equal(devmig_client_get_state(c, &now), 0);
	assert_int_equal(devmig_client_region_read(c, 0, REG_COUNT, &v, 4), 0);
	bool ok = v == seed;
	for (uint32_t i = 0; ok && i < 4; i++) {
		assert_int_equal(devmig_client_region_read(c, 0, REG_SCRATCH0 + 4 * i, &v, 4), 0);
		ok = v == (seed * (i + 3) ^ 0x5a5a0000u);
	}
	devmig_client_close(c);
	if (!ok)
		fail_msg("%s does not hold the registers of seed 0x%x", d->path, seed);
	if (now != st)
		fail_msg("%s is %s, not %s", d->path, devmig_state_name(now), devmig_state_name(st));
}

static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", pt_dir, name);
}

/* argv from a NULL-terminated list of strings (at most 40). */
#define ARGV(...) ((char *[]){ (char *)pt_bin(), __VA_ARGS__, NULL })

static void expect_usage_error(char **argv, const char *needle)
{
	struct proc *p = pt_run(argv);
	if (p->status != 2 || !strstr(p->ebuf, needle))
		fail_msg("wanted exit 2 saying '%s', got %d: %s", needle, p->status, p->ebuf);
	assert_int_equal(pt_lines(p->ebuf), 1);
}

/* ---- tests ---- */

static void tcp_needs_authentication_and_an_explicit_address(void **state)
{
	(void)state;
	char psk[160], open_psk[160], listen[64], to[80];
	path_in(psk, sizeof(psk), "key");
	path_in(open_psk, sizeof(open_psk), "open-key");
	assert_int_equal(tt_make_psk(psk, "devmig", 0x11, 32), 0);
	assert_int_equal(tt_make_psk(open_psk, "devmig", 0x11, 32), 0);
	chmod(open_psk, 0644);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", pt_free_port());
	snprintf(to, sizeof(to), "tcp://%s", listen);

	expect_usage_error(ARGV("receive", "--listen", listen, "--socket", "x"), "--insecure");
	expect_usage_error(ARGV("migrate", "--socket", "x", "--to", to), "--insecure");
	expect_usage_error(ARGV("receive", "--listen", ":7000", "--socket", "x", "--insecure"),
			   "names no address");
	expect_usage_error(ARGV("receive", "--listen", "*:7000", "--socket", "x", "--insecure"),
			   "names no address");
	expect_usage_error(ARGV("receive", "--listen", listen, "--socket", "x", "--psk", psk,
				"--insecure"),
			   "contradicts");
	expect_usage_error(ARGV("migrate", "--socket", "x", "--to", to, "--psk", psk, "--cert",
				psk),
			   "not both");
	/* A key others can read is no secret: refused before anything happens. */
	struct proc *p = pt_run(ARGV("receive", "--listen", listen, "--socket", "x", "--psk",
				     open_psk));
	if (p->status != 1 || !strstr(p->ebuf, "read by others"))
		fail_msg("a world-readable key was used (%d): %s", p->status, p->ebuf);
}

/* receive in the background; returns once it listens. */
static struct proc *receive_bg(char **argv)
{
	struct proc *r = pt_start(argv, true);
	if (!pt_wait_stderr(r, "listening on", PT_DEADLINE_MS))
		fail_msg("receive exited (%d): %s", pt_finish(r, 1000), r->ebuf);
	return r;
}

static int count(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Wait until r has said needle n times. */
static void wait_count(struct proc *r, const char *needle, int n)
{
	uint64_t end = pt_now_ms() + PT_DEADLINE_MS;
	while (count(r->ebuf, needle) < n) {
		if (pt_now_ms() > end || pt_exited(r))
			fail_msg("receive said '%s' %d times, not %d: %s", needle,
				 count(r->ebuf, needle), n, r->ebuf);
		pt_pump(r, 20);
	}
}

static int connect_tcp(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void psk_receive_refuses_everyone_else_and_keeps_waiting(void **state)
{
	(void)state;
	struct dev s, d;
	char key[160], other[160], listen[64], to[80];
	path_in(key, sizeof(key), "key");
	path_in(other, sizeof(other), "other-key");
	struct proc *p = pt_run(ARGV("keygen", "--psk", key));
	if (p->status)
		fail_msg("keygen: %s", p->ebuf);
	struct stat st;
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(pt_run(ARGV("keygen", "--psk", key))->status, 1); /* never over one */
	assert_int_equal(tt_make_psk(other, "devmig", 0x42, 32), 0);

	pt_serve(&s, "src", "counter", NULL);
	pt_serve(&d, "dst", "counter", NULL);
	set_regs(&s, 0x1234);
	set_regs(&d, 0x9999);
	unsigned port = pt_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	snprintf(to, sizeof(to), "tcp://%s", listen);
	struct proc *r = receive_bg(ARGV("receive", "--listen", listen, "--socket", d.path,
					  "--psk", key, "--handshake-timeout", "1", "--timeout",
					  "5"));

	/* A bare connect-and-close. */
	close(connect_tcp(port));
	wait_count(r, "still waiting", 1);
	/* A connection that says nothing: dropped at the handshake deadline. */
	int silent = connect_tcp(port);
	wait_count(r, "still waiting", 2);
	assert_non_null(strstr(r->ebuf, "no TLS handshake within"));
	close(silent);
	/* Plain TCP, as another local user without the key would send it. */
	p = pt_run(ARGV("migrate", "--socket", s.path, "--to", to, "--insecure"));
	assert_int_equal(p->status, 1);
	wait_count(r, "still waiting", 3);
	/* The wrong key: both sides refuse. */
	p = pt_run(ARGV("migrate", "--socket", s.path, "--to", to, "--psk", other));
	if (p->status != 1 || !strstr(p->ebuf, "TLS"))
		fail_msg("a wrong key was not refused (%d): %s", p->status, p->ebuf);
	wait_count(r, "still waiting", 4);
	expect_regs(&s, 0x1234, DEVMIG_STATE_RUNNING); /* untouched by all that */
	/* (The destination is the receive's until it ends: checked below.) */

	/* The key: it goes through. */
	p = pt_run(ARGV("migrate", "--socket", s.path, "--to", to, "--psk", key));
	if (p->status)
		fail_msg("migrate with the key failed (%d): %s", p->status, p->ebuf);
	assert_int_equal(pt_finish(r, PT_DEADLINE_MS), 0);
	assert_non_null(strstr(r->obuf, "migration received"));
	expect_regs(&d, 0x1234, DEVMIG_STATE_RUNNING);
	pt_stop_dev(&s);
	pt_stop_dev(&d);
}

static void x509_both_sides_prove_who_they_are(void **state)
{
	(void)state;
	struct test_ca ca, rogue;
	char crt[6][160], listen[64], to[80];
	const char *names[6] = { "ca.crt", "dst.crt", "dst.key", "src.crt", "src.key", "rogue.crt" };
	for (int i = 0; i < 6; i++)
		path_in(crt[i], sizeof(crt[i]), names[i]);
	char rogue_key[160];
	path_in(rogue_key, sizeof(rogue_key), "evil.key");
	assert_int_equal(tt_make_ca(&ca, pt_dir, "ca"), 0);
	assert_int_equal(tt_make_cert(&ca, pt_dir, "dst", "dst.example", "127.0.0.1", 2), 0);
	assert_int_equal(tt_make_cert(&ca, pt_dir, "src", "src.example", NULL, 3), 0);
	/* Another CA's certificate, however well formed, is a stranger's, even
	 * from a CA of the same name (only the signature tells them apart). */
	char rogue_dir[160];
	path_in(rogue_dir, sizeof(rogue_dir), "rogue");
	assert_int_equal(mkdir(rogue_dir, 0700), 0);
	assert_int_equal(tt_make_ca(&rogue, rogue_dir, "ca"), 0);
	assert_int_equal(tt_make_cert(&rogue, pt_dir, "evil", "src.example", NULL, 4), 0);
	char evil_crt[160];
	path_in(evil_crt, sizeof(evil_crt), "evil.crt");
	tt_free_ca(&ca);
	tt_free_ca(&rogue);

	struct dev s, d;
	pt_serve(&s, "src", "counter", NULL);
	pt_serve(&d, "dst", "counter", NULL);
	set_regs(&s, 0xc0de);
	set_regs(&d, 0x0bad);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", pt_free_port());
	snprintf(to, sizeof(to), "tcp://%s", listen);
	struct proc *r = receive_bg(ARGV("receive", "--listen", listen, "--socket", d.path, "--cert",
					  crt[1], "--key", crt[2], "--ca", crt[0], "--verbose"));

	struct proc *p = pt_run(ARGV("migrate", "--socket", s.path, "--to", to, "--cert", evil_crt,
				     "--key", rogue_key, "--ca", crt[0]));
	assert_int_equal(p->status, 1);
	wait_count(r, "still waiting", 1);
	/* The source refuses a server whose certificate lacks the name it wants. */
	p = pt_run(ARGV("migrate", "--socket", s.path, "--to", to, "--cert", crt[3], "--key",
			crt[4], "--ca", crt[0], "--peer-name", "elsewhere.example"));
	if (p->status != 1 || !strstr(p->ebuf, "certificate"))
		fail_msg("a server with the wrong name was accepted (%d): %s", p->status, p->ebuf);
	wait_count(r, "still waiting", 2);

	p = pt_run(ARGV("migrate", "--socket", s.path, "--to", to, "--cert", crt[3], "--key",
			crt[4], "--ca", crt[0]));
	if (p->status)
		fail_msg("migrate with certificates failed (%d): %s", p->status, p->ebuf);
	assert_int_equal(pt_finish(r, PT_DEADLINE_MS), 0);
	assert_non_null(strstr(r->ebuf, "CN=src.example")); /* who it was, said */
	expect_regs(&d, 0xc0de, DEVMIG_STATE_RUNNING);
	pt_stop_dev(&s);
	pt_stop_dev(&d);
}

/* Connect to a unix socket as uid; the child's connect errno (0: connected). */
static int connect_as(const char *path, uid_t uid, bool hold_ms)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		int e = 0;
		if (setgid(uid) || setuid(uid))
			e = 255;
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (!e && connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			e = errno;
		if (write(pfd[1], &e, sizeof(e)) != sizeof(e))
			_exit(1);
		if (!e && hold_ms)
			poll(NULL, 0, 300);
		_exit(0);
	}
	close(pfd[1]);
	int e = -1;
	assert_int_equal(read(pfd[0], &e, sizeof(e)), sizeof(e));
	close(pfd[0]);
	waitpid(pid, NULL, 0);
	return e;
}

static void unix_receive_is_ours_alone(void **state)
{
	(void)state;
	struct dev s, d;
	char sock[160], at[170];
	pt_serve(&s, "src", "counter", NULL);
	pt_serve(&d, "dst", "counter", NULL);
	set_regs(&s, 0x7777);
	path_in(sock, sizeof(sock), "chan.sock");
	snprintf(at, sizeof(at), "unix:%s", sock);
	struct proc *r = receive_bg(ARGV("receive", "--listen", at, "--socket", d.path));
	struct stat st;
	assert_int_equal(stat(sock, &st), 0);
	if ((st.st_mode & 0777) != 0600)
		fail_msg("the receive socket is mode %03o, not 0600", st.st_mode & 0777);
	if (geteuid() == 0) {
		/* The socket's mode stops another user; the uid check stops even one
		 * who gets past it. (The folder is opened for the test only.) */
		assert_int_equal(chmod(pt_dir, 0711), 0);
		assert_int_equal(connect_as(sock, 65534, false), EACCES);
		chmod(sock, 0666);
		assert_int_equal(connect_as(sock, 65534, true), 0);
		wait_count(r, "not our uid", 1);
	} else {
		print_message("# not root: the check of another uid's connection is not run "
			      "here (CI runs as root)\n");
	}
	struct proc *p = pt_run(ARGV("migrate", "--socket", s.path, "--to", at));
	if (p->status)
		fail_msg("migrate over unix failed (%d): %s", p->status, p->ebuf);
	assert_int_equal(pt_finish(r, PT_DEADLINE_MS), 0);
	expect_regs(&d, 0x7777, DEVMIG_STATE_RUNNING);
	assert_int_equal(access(sock, F_OK), -1); /* removed at the end */
	pt_stop_dev(&s);
	pt_stop_dev(&d);
}

static void a_connection_that_sends_nothing_is_said_so(void **state)
{
	(void)state;
	struct dev s, d;
	char listen[64], to[80];
	pt_serve(&s, "src", "counter", NULL);
	pt_serve(&d, "dst", "counter", NULL);
	set_regs(&s, 0x4242);
	unsigned port = pt_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	snprintf(to, sizeof(to), "tcp://%s", listen);
	struct proc *r = receive_bg(ARGV("receive", "--listen", listen, "--socket", d.path,
					  "--insecure"));
	close(connect_tcp(port));
	wait_count(r, "still waiting", 1);
	assert_non_null(strstr(r->ebuf, "closed before anything was sent"));
	assert_null(strstr(r->ebuf, "middle of a frame"));
	/* Something that is not a migration: refused too. */
	int fd = connect_tcp(port);
	assert_int_equal(write(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
	close(fd);
	wait_count(r, "still waiting", 2);
	struct proc *p = pt_run(ARGV("migrate", "--socket", s.path, "--to", to, "--insecure"));
	if (p->status)
		fail_msg("migrate failed (%d): %s", p->status, p->ebuf);
	assert_int_equal(pt_finish(r, PT_DEADLINE_MS), 0);
	expect_regs(&d, 0x4242, DEVMIG_STATE_RUNNING);
	pt_stop_dev(&s);
	pt_stop_dev(&d);
}

/* The signals the process ignores, from /proc. */
static unsigned long long ignored_signals(pid_t pid)
{
	char path[64], line[256];
	unsigned long long mask = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SigIgn: %llx", &mask) == 1)
			break;
	fclose(f);
	return mask;
}

static void serve_keeps_to_its_own_socket(void **state)
{
	(void)state;
	struct dev a;
	pt_serve(&a, "a", "counter", NULL);
	/* SIGPIPE cannot kill it. */
	assert_true(ignored_signals(a.p->pid) & (1ull << (SIGPIPE - 1)));

	/* A second server on the same path: refused, the first goes on. */
	struct proc *p = pt_run(ARGV("serve", "--device", "counter", "--socket", a.path));
	if (p->status != 1 || !strstr(p->ebuf, "already answers"))
		fail_msg("a second serve took a live socket (%d): %s", p->status, p->ebuf);
	set_regs(&a, 0x55);
	/* A regular file: left alone. */
	char file[160];
	path_in(file, sizeof(file), "precious");
	assert_int_equal(tt_write(file, "data", 4, 0644), 0);
	p = pt_run(ARGV("serve", "--device", "counter", "--socket", file));
	if (p->status != 1 || !strstr(p->ebuf, "not a socket"))
		fail_msg("serve replaced a regular file (%d): %s", p->status, p->ebuf);
	struct stat st;
	assert_int_equal(lstat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode) && st.st_size == 4);
	/* Its own socket goes with it. */
	pt_stop_dev(&a);
	assert_int_equal(access(a.path, F_OK), -1);
}

/* No file in pt_dir whose name starts with prefix. */
static void no_temp_files(const char *prefix)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ls -a '%s' | grep -q '^%s'", pt_dir, prefix);
	if (!system(cmd))
		fail_msg("a temporary file %s* was left in %s", prefix, pt_dir);
}

static void save_never_writes_through_a_link(void **state)
{
	(void)state;
	struct dev s, d;
	char file[160], tmp[170], target[160];
	pt_serve(&s, "src", "counter", NULL);
	pt_serve(&d, "dst", "counter", NULL);
	set_regs(&s, 0xfeed);
	path_in(file, sizeof(file), "ckpt");
	path_in(target, sizeof(target), "victim");
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	assert_int_equal(tt_write(target, "victim", 6, 0644), 0);
	/* Links planted where a naive save would write: PATH.tmp and PATH itself. */
	assert_int_equal(symlink(target, tmp), 0);
	struct proc *p = pt_run(ARGV("save", "--socket", s.path, "--file", file, "--force"));
	if (p->status)
		fail_msg("save failed (%d): %s", p->status, p->ebuf);
	unlink(file);
	assert_int_equal(symlink(target, file), 0);
	p = pt_run(ARGV("save", "--socket", s.path, "--file", file));
	assert_int_equal(p->status, 1); /* exists: not without --force */
	p = pt_run(ARGV("save", "--socket", s.path, "--file", file, "--force"));
	if (p->status)
		fail_msg("save --force failed (%d): %s", p->status, p->ebuf);
	struct stat st;
	assert_int_equal(lstat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode)); /* the link was replaced, not followed */
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(lstat(target, &st), 0);
	assert_int_equal(st.st_size, 6); /* untouched */
	assert_int_equal(lstat(tmp, &st), 0);
	assert_true(S_ISLNK(st.st_mode)); /* left as planted */
	no_temp_files(".ckpt.");
	p = pt_run(ARGV("restore", "--socket", d.path, "--file", file));
	if (p->status)
		fail_msg("restore failed (%d): %s", p->status, p->ebuf);
	expect_regs(&d, 0xfeed, DEVMIG_STATE_RUNNING);
	pt_stop_dev(&s);
	pt_stop_dev(&d);
}

static void resume_and_reset_recover_in_one_step(void **state)
{
	(void)state;
	struct dev a, b;
	pt_serve(&a, "a", "counter", NULL);
	pt_serve(&b, "b", "counter", NULL);
	set_regs(&a, 0xa1);
	set_regs(&b, 0xb2);
	/* Left mid-migration: a in STOP_COPY (its session open), b in RUNNING_P2P. */
	struct devmig_client *ca = pt_open_dev(&a);
	assert_int_equal(devmig_client_set_state(ca, DEVMIG_STATE_STOP_COPY), 0);
	uint8_t some[64];
	assert_true(devmig_client_mig_read(ca, some, sizeof(some)) > 0);
	devmig_client_close(ca);
	pt_set_state(&b, DEVMIG_STATE_RUNNING_P2P);

	struct proc *p = pt_run(ARGV("resume", "--socket", a.path, "--socket", b.path, "--json"));
	if (p->status)
		fail_msg("resume failed (%d): %s", p->status, p->ebuf);
	json_object *j = pt_json(p->obuf);
	json_object *devs = pt_member(j, "devices");
	assert_string_equal(json_object_get_string(pt_member(json_object_array_get_idx(devs, 0),
							     "was")), "STOP_COPY");
	assert_string_equal(json_object_get_string(pt_member(json_object_array_get_idx(devs, 0),
							     "now")), "RUNNING");
	json_object_put(j);
	expect_regs(&a, 0xa1, DEVMIG_STATE_RUNNING);
	expect_regs(&b, 0xb2, DEVMIG_STATE_RUNNING);
	/* Nothing to do is fine. */
	assert_int_equal(pt_run(ARGV("resume", "--socket", a.path))->status, 0);

	/* A destination mid-load: resume refuses and says what does it; reset does. */
	pt_set_state(&b, DEVMIG_STATE_RESUMING);
	p = pt_run(ARGV("resume", "--socket", b.path));
	if (p->status != 1 || !strstr(p->ebuf, "devmig reset"))
		fail_msg("resume of RESUMING (%d): %s", p->status, p->ebuf);
	assert_int_equal(pt_state(&b), DEVMIG_STATE_RESUMING);
	p = pt_run(ARGV("reset", "--socket", b.path));
	if (p->status || !strstr(p->obuf, "RESUMING -> RUNNING"))
		fail_msg("reset (%d): %s %s", p->status, p->obuf, p->ebuf);
	/* RUNNING in its power-on state: the registers it had are gone. */
	struct devmig_client *cb = pt_open_dev(&b);
	uint32_t v = 1;
	enum devmig_state now;
	assert_int_equal(devmig_client_get_state(cb, &now), 0);
	assert_int_equal(now, DEVMIG_STATE_RUNNING);
	assert_int_equal(devmig_client_region_read(cb, 0, REG_SCRATCH0, &v, 4), 0);
	assert_int_equal(v, 0);
	devmig_client_close(cb);
	pt_stop_dev(&a);
	pt_stop_dev(&b);
}

static void a_retry_after_leftovers_succeeds_the_first_time(void **state)
{
	(void)state;
	struct dev s, d;
	pt_serve(&s, "src", "counter", NULL);
	pt_serve(&d, "dst", "counter", NULL);
	set_regs(&s, 0x5151);
	set_regs(&d, 0x6262);
	/* What a killed engine leaves: the source in STOP_COPY with its stream half
	 * read, the destination in RESUMING with a stream half written. */
	struct devmig_client *c = pt_open_dev(&s);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_STOP_COPY), 0);
	uint8_t half[40];
	assert_int_equal(devmig_client_mig_read(c, half, sizeof(half)), (ssize_t)sizeof(half));
	devmig_client_close(c);
	c = pt_open_dev(&d);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(c, half, sizeof(half)), 0);
	devmig_client_close(c);

	struct proc *p = pt_run(ARGV("migrate", "--socket", s.path, "--to-socket", d.path));
	if (p->status)
		fail_msg("the first retry failed (%d): %s", p->status, p->ebuf);
	assert_non_null(strstr(p->ebuf, "found source device 0 was STOP_COPY"));
	assert_non_null(strstr(p->ebuf, "found destination device 0 was RESUMING"));
	expect_regs(&d, 0x5151, DEVMIG_STATE_RUNNING);
	assert_int_equal(pt_state(&s), DEVMIG_STATE_STOP); /* migrated: not to run again */

	/* Over a channel: the destination left RESUMING again, by a receive that died. */
	set_regs(&d, 0x7373);
	c = pt_open_dev(&d);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(c, half, sizeof(half)), 0);
	devmig_client_close(c);
	pt_set_state(&s, DEVMIG_STATE_RUNNING); /* a fresh source */
	set_regs(&s, 0x8484);
	char key[160], listen[64], to[80];
	path_in(key, sizeof(key), "key");
	assert_int_equal(tt_make_psk(key, "devmig", 7, 32), 0);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", pt_free_port());
	snprintf(to, sizeof(to), "tcp://%s", listen);
	struct proc *r = receive_bg(ARGV("receive", "--listen", listen, "--socket", d.path,
					  "--psk", key));
	p = pt_run(ARGV("migrate", "--socket", s.path, "--to", to, "--psk", key));
	if (p->status)
		fail_msg("migrate failed (%d): %s", p->status, p->ebuf);
	assert_int_equal(pt_finish(r, PT_DEADLINE_MS), 0);
	assert_non_null(strstr(r->ebuf, "found destination device 0 was RESUMING"));
	expect_regs(&d, 0x8484, DEVMIG_STATE_RUNNING);
	pt_stop_dev(&s);
	pt_stop_dev(&d);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(tcp_needs_authentication_and_an_explicit_address,
						pt_setup, pt_teardown),
		cmocka_unit_test_setup_teardown(psk_receive_refuses_everyone_else_and_keeps_waiting,
						pt_setup, pt_teardown),
		cmocka_unit_test_setup_teardown(x509_both_sides_prove_who_they_are, pt_setup,
						pt_teardown),
		cmocka_unit_test_setup_teardown(unix_receive_is_ours_alone, pt_setup, pt_teardown),
		cmocka_unit_test_setup_teardown(a_connection_that_sends_nothing_is_said_so, pt_setup,
						pt_teardown),
		cmocka_unit_test_setup_teardown(serve_keeps_to_its_own_socket, pt_setup,
						pt_teardown),
		cmocka_unit_test_setup_teardown(save_never_writes_through_a_link, pt_setup,
						pt_teardown),
		cmocka_unit_test_setup_teardown(resume_and_reset_recover_in_one_step, pt_setup,
						pt_teardown),
		cmocka_unit_test_setup_teardown(a_retry_after_leftovers_succeeds_the_first_time,
						pt_setup, pt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
