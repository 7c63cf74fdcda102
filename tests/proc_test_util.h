/* SPDX-License-Identifier: MIT */
/*
 * Child processes for tests that run the devmig binary: start with captured
 * output, wait (bounded), signal, and the devices they serve. Every child
 * lives in one pool so that teardown can kill and reap whatever a failed
 * test left running. Include once per test program (static helpers).
 */
#ifndef DEVMIG_TESTS_PROC_TEST_UTIL_H
#define DEVMIG_TESTS_PROC_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "devmig/client.h"

extern char **environ;

#define PT_UNUSED __attribute__((unused))
#define PT_DEADLINE_MS 30000

struct proc {
	bool used;
	pid_t pid;
	int out, err;          /* pipes from its stdout/stderr, or -1 */
	char obuf[64 * 1024], ebuf[64 * 1024];
	size_t olen, elen;
	int status;            /* the exit code once reaped (128+N: killed by signal N) */
	bool reaped;
	bool stopped;          /* SIGSTOPped by the test: continued before it is killed */
};

#define PT_MAX_PROCS 12
static struct proc pt_pool[PT_MAX_PROCS];
static char pt_dir[64];

PT_UNUSED static uint64_t pt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

PT_UNUSED static const char *pt_bin(void)
{
	const char *b = getenv("DEVMIG_BIN");
	if (!b)
		fail_msg("DEVMIG_BIN is not set");
	return b;
}

PT_UNUSED static struct proc *pt_alloc(void)
{
	for (int i = 0; i < PT_MAX_PROCS; i++)
		if (!pt_pool[i].used ||
		    (pt_pool[i].reaped && pt_pool[i].out < 0 && pt_pool[i].err < 0)) {
			memset(&pt_pool[i], 0, sizeof(pt_pool[i]));
			pt_pool[i].used = true;
			pt_pool[i].out = pt_pool[i].err = -1;
			return &pt_pool[i];
		}
	fail_msg("too many child processes");
	return NULL;
}

/* Start argv; capture: its stdout and stderr come back through pipes. */
PT_UNUSED static struct proc *pt_start(char *const argv[], bool capture)
{
	struct proc *p = pt_alloc();
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
	/* As from a shell: default signal actions (we ignore SIGPIPE ourselves). */
	posix_spawnattr_t at;
	sigset_t dflt;
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGPIPE);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigdefault(&at, &dflt);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
	int rc = posix_spawn(&p->pid, argv[0], &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
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
PT_UNUSED static void pt_pump(struct proc *p, int timeout_ms)
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

/* Has it exited? (reaps it then) */
PT_UNUSED static bool pt_exited(struct proc *p)
{
	int st;
	if (p->reaped)
		return true;
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		p->reaped = true;
		p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
	return p->reaped;
}

/* Wait (bounded) until the process exits and its output is read; its exit code. */
PT_UNUSED static int pt_finish(struct proc *p, int timeout_ms)
{
	uint64_t end = pt_now_ms() + (uint64_t)timeout_ms;

	while (!pt_exited(p)) {
		bool quiet = p->out < 0 && p->err < 0;
		pt_pump(p, 20);
		if (pt_now_ms() > end) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
			p->reaped = true;
			p->status = 128 + SIGKILL;
			fail_msg("process %d did not exit within %d ms; stderr: %s", (int)p->pid,
				 timeout_ms, p->ebuf);
		}
		if (quiet)
			poll(NULL, 0, 5);
	}
	while (p->out >= 0 || p->err >= 0) {
		if (pt_now_ms() > end + 5000)
			fail_msg("process %d exited but its output stays open", (int)p->pid);
		pt_pump(p, 100);
	}
	return p->status;
}

/* Wait (bounded) for needle in p's stderr; false if it exited first. */
PT_UNUSED static bool pt_wait_stderr(struct proc *p, const char *needle, int timeout_ms)
{
	uint64_t end = pt_now_ms() + (uint64_t)timeout_ms;
	while (!strstr(p->ebuf, needle)) {
		if (pt_now_ms() > end)
			fail_msg("no '%s' from %d within %d ms; stderr: %s", needle, (int)p->pid,
				 timeout_ms, p->ebuf);
		if (p->err < 0)
			return false;
		pt_pump(p, 20);
	}
	return true;
}

PT_UNUSED static struct proc *pt_run(char *const argv[])
{
	struct proc *p = pt_start(argv, true);
	pt_finish(p, PT_DEADLINE_MS);
	return p;
}

PT_UNUSED static void pt_signal(struct proc *p, int sig)
{
	if (!p || p->reaped || p->pid <= 0)
		return;
	kill(p->pid, sig);
	if (sig == SIGSTOP)
		p->stopped = true;
	if (sig == SIGCONT)
		p->stopped = false;
}

/* Kill and reap whatever is left (teardown). */
PT_UNUSED static void pt_reap_all(void)
{
	for (int i = 0; i < PT_MAX_PROCS; i++) {
		struct proc *p = &pt_pool[i];
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
}

PT_UNUSED static int pt_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

PT_UNUSED static int pt_setup(void **state)
{
	(void)state;
	snprintf(pt_dir, sizeof(pt_dir), "/tmp/devmig-pt-XXXXXX");
	return mkdtemp(pt_dir) ? 0 : -1;
}

PT_UNUSED static int pt_teardown(void **state)
{
	(void)state;
	pt_reap_all();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pt_dir);
	return system(cmd) ? -1 : 0;
}

/* ---- devices served by `devmig serve` ---- */

struct dev {
	struct proc *p;
	char path[128];
	char name[32];
	char args[64];
	const char *variant;
};

PT_UNUSED static struct devmig_client *pt_connect(const char *path, int timeout_ms, char *err,
						  size_t errlen)
{
	struct devmig_client_config cc = { .timeout_ms = timeout_ms };
	return devmig_client_connect(path, &cc, err, errlen);
}

/* A client as soon as the device lets one in (another may be leaving). */
PT_UNUSED static struct devmig_client *pt_open_dev(const struct dev *d)
{
	char err[256] = "";
	uint64_t end = pt_now_ms() + PT_DEADLINE_MS;
	for (;;) {
		struct devmig_client *c = pt_connect(d->path, 5000, err, sizeof(err));
		if (c)
			return c;
		if (pt_now_ms() > end)
			fail_msg("cannot connect to %s: %s", d->path, err);
		poll(NULL, 0, 10);
	}
}

PT_UNUSED static void pt_serve(struct dev *d, const char *name, const char *variant,
			       const char *args)
{
	char err[256];

	snprintf(d->name, sizeof(d->name), "%s", name);
	snprintf(d->args, sizeof(d->args), "%s", args ? args : "");
	d->variant = variant;
	snprintf(d->path, sizeof(d->path), "%s/%s.sock", pt_dir, name);
	char *argv[] = { (char *)pt_bin(), "serve", "--device", (char *)variant, "--socket",
			 d->path, args ? "--args" : NULL, (char *)args, NULL };
	d->p = pt_start(argv, true);
	uint64_t end = pt_now_ms() + PT_DEADLINE_MS;
	for (;;) {
		struct devmig_client *c = pt_connect(d->path, 5000, err, sizeof(err));
		if (c) {
			devmig_client_close(c);
			return;
		}
		if (pt_exited(d->p))
			fail_msg("devmig serve %s exited early (%d): %s", name, d->p->status,
				 d->p->ebuf);
		if (pt_now_ms() > end)
			fail_msg("devmig serve %s never came up: %s", name, err);
		poll(NULL, 0, 5);
	}
}

/* SIGTERM, and it must exit cleanly. */
PT_UNUSED static void pt_stop_dev(struct dev *d)
{
	if (!d->p || d->p->reaped)
		return;
	pt_signal(d->p, SIGCONT);
	kill(d->p->pid, SIGTERM);
	int st = pt_finish(d->p, PT_DEADLINE_MS);
	if (st)
		fail_msg("devmig serve %s exited %d on SIGTERM: %s", d->name, st, d->p->ebuf);
}

PT_UNUSED static enum devmig_state pt_state(const struct dev *d)
{
	struct devmig_client *c = pt_open_dev(d);
	enum devmig_state st = DEVMIG_STATE_ERROR;
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	devmig_client_close(c);
	return st;
}

PT_UNUSED static void pt_set_state(const struct dev *d, enum devmig_state s)
{
	struct devmig_client *c = pt_open_dev(d);
	int rc = devmig_client_set_state(c, s);
	devmig_client_close(c);
	if (rc)
		fail_msg("%s -> %s: %s", d->path, devmig_state_name(s), strerror(-rc));
}

/* A TCP port nothing listens on right now. */
PT_UNUSED static unsigned pt_free_port(void)
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

PT_UNUSED static json_object *pt_json(const char *text)
{
	json_object *j = json_tokener_parse(text);
	if (!j)
		fail_msg("not JSON: %s", text);
	return j;
}

PT_UNUSED static json_object *pt_member(json_object *j, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(j, key, &v))
		fail_msg("no \"%s\" in %s", key, json_object_to_json_string(j));
	return v;
}

#endif
