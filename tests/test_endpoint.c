/* SPDX-License-Identifier: MIT */
/*
 * The migration channel's sockets (devmig/transport.h): addresses parsed
 * (what `devmig receive --listen` and `migrate --to` take), connect bounded
 * in time, listen (unix: mode 0600, only a stale socket replaced, only our
 * own removed), accept with who is at the other end and the uid rule.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "devmig/transport.h"
#include "fixture.h"

static char dir[FX_PATH_MAX];

static int setup(void **state)
{
	(void)state;
	fx_tmpdir(dir, "endpoint");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fx_rmdir(dir);
	return 0;
}

static struct devmig_endpoint parsed(const char *s, bool listen)
{
	struct devmig_endpoint e;
	char err[256] = "";

	if (devmig_endpoint_parse(s, listen, &e, err, sizeof(err)))
		fail_msg("'%s' refused: %s", s, err);
	return e;
}

static void refused(const char *s, bool listen, const char *reason)
{
	struct devmig_endpoint e;
	char err[256] = "";

	memset(&e, 0x5a, sizeof(e));
	assert_int_equal(devmig_endpoint_parse(s, listen, &e, err, sizeof(err)), -EINVAL);
	if (!strstr(err, reason))
		fail_msg("'%s': reason \"%s\" lacks \"%s\"", s, err, reason);
	/* nothing of it is kept */
	assert_false(e.is_unix);
	assert_string_equal(e.path, "");
	assert_string_equal(e.host, "");
	assert_string_equal(e.port, "");
}

static void parse_takes_every_form(void **state)
{
	(void)state;
	struct devmig_endpoint e = parsed("unix:/run/a.sock", true);
	assert_true(e.is_unix);
	assert_string_equal(e.path, "/run/a.sock");
	e = parsed("unix:///run/b.sock", false);
	assert_true(e.is_unix);
	assert_string_equal(e.path, "/run/b.sock");
	e = parsed("unix:rel.sock", false);
	assert_string_equal(e.path, "rel.sock");

	e = parsed("tcp://dst-host:7000", false);
	assert_false(e.is_unix);
	assert_string_equal(e.host, "dst-host");
	assert_string_equal(e.port, "7000");
	e = parsed("192.0.2.1:4711", true);
	assert_string_equal(e.host, "192.0.2.1");
	assert_string_equal(e.port, "4711");
	e = parsed("[::1]:7000", false);
	assert_string_equal(e.host, "::1");
	assert_string_equal(e.port, "7000");
	e = parsed("tcp://[fe80::1%lo]:migrate", false);
	assert_string_equal(e.host, "fe80::1%lo");
	assert_string_equal(e.port, "migrate");
	e = parsed("0.0.0.0:0", true);
	assert_string_equal(e.host, "0.0.0.0");
	e = parsed("[::]:7000", true);
	assert_string_equal(e.host, "::");
}

static void parse_refuses_with_the_reason(void **state)
{
	(void)state;
	char longpath[200];

	refused("unix:", false, "names no socket path");
	refused("unix://", false, "names no socket path");
	memset(longpath, 'p', sizeof(longpath));
	memcpy(longpath, "unix:/", 6);
	longpath[sizeof(longpath) - 1] = '\0';
	refused(longpath, false, "socket path too long (over 107 bytes)");
	refused("http://host:80", false, "only tcp://HOST:PORT and unix:PATH are understood");
	refused("host", false, "has no port (HOST:PORT)");
	refused("tcp://host", false, "has no port");
	refused("host:", false, "is not HOST:PORT");
	refused("::1:7000", false, "put an IPv6 address in brackets");
	refused("[::1]7000", false, "an IPv6 address is written [ADDR]:PORT");
	refused("[::1", false, "an IPv6 address is written [ADDR]:PORT");
	refused(":7000", false, "names no host");
	/* every address is said out loud, never a default */
	refused(":7000", true, "names no address: give the one to listen on");
	refused("*:7000", true, "0.0.0.0:PORT or [::]:PORT for every address");
	refused("host:123456789012345678901234567890123", false, "is not HOST:PORT");
}

/* A unix listener: 0600 before anyone connects, the peer named, the file
 * removed at the end. */
static void unix_listen_connect_accept(void **state)
{
	(void)state;
	char at[2 * FX_PATH_MAX], shown[300], err[256], peer[128];
	snprintf(at, sizeof(at), "unix:%s/chan.sock", dir);
	struct devmig_endpoint e = parsed(at, true);

	int lfd = devmig_endpoint_listen(&e, shown, sizeof(shown), err, sizeof(err));
	if (lfd < 0)
		fail_msg("listen: %s", err);
	assert_string_equal(shown, at);
	struct stat st;
	assert_int_equal(lstat(e.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	struct devmig_endpoint c = parsed(at, false);
	int cfd = devmig_endpoint_connect(&c, 1000, err, sizeof(err));
	if (cfd < 0)
		fail_msg("connect: %s", err);
	int afd = devmig_endpoint_accept(&e, lfd, false, peer, sizeof(peer));
	assert_true(afd >= 0);
	char want[64];
	snprintf(want, sizeof(want), "a local process (uid %ld)", (long)geteuid());
	assert_string_equal(peer, want);
	assert_int_equal(write(cfd, "x", 1), 1);
	char b = 0;
	assert_int_equal(read(afd, &b, 1), 1);
	assert_int_equal(b, 'x');
	close(afd);
	close(cfd);
	/* a chmod does not make it another file: still ours to remove */
	assert_int_equal(chmod(e.path, 0666), 0);
	devmig_endpoint_unlisten(&e, lfd);
	assert_int_equal(access(e.path, F_OK), -1);

	/* nobody there now */
	cfd = devmig_endpoint_connect(&c, 1000, err, sizeof(err));
	assert_true(cfd < 0);
	assert_non_null(strstr(err, "cannot connect to unix:"));
	assert_non_null(strstr(err, "is 'devmig receive' listening there?"));
}

/* What may be at a unix path: nothing, or a stale socket (replaced); a live
 * listener and any other file are left alone. */
static void unix_listen_takes_only_a_stale_socket(void **state)
{
	(void)state;
	char at[2 * FX_PATH_MAX], shown[300], err[256];
	snprintf(at, sizeof(at), "unix:%s/busy.sock", dir);
	struct devmig_endpoint a = parsed(at, true), b = parsed(at, true);

	int la = devmig_endpoint_listen(&a, shown, sizeof(shown), err, sizeof(err));
	assert_true(la >= 0);
	assert_int_equal(devmig_endpoint_listen(&b, shown, sizeof(shown), err, sizeof(err)),
			 -EADDRINUSE);
	assert_non_null(strstr(err, "a server already answers at"));
	/* a stale socket: its listener closed without removing it */
	close(la);
	assert_int_equal(access(a.path, F_OK), 0);
	int lb = devmig_endpoint_listen(&b, shown, sizeof(shown), err, sizeof(err));
	if (lb < 0)
		fail_msg("a stale socket was not replaced: %s", err);
	/* a's unlisten must not remove b's socket, which took the path since */
	devmig_endpoint_unlisten(&a, -1);
	struct devmig_endpoint a_again = a;
	int dummy = socket(AF_UNIX, SOCK_STREAM, 0);
	devmig_endpoint_unlisten(&a_again, dummy);
	assert_int_equal(access(b.path, F_OK), 0);
	devmig_endpoint_unlisten(&b, lb);
	assert_int_equal(access(b.path, F_OK), -1);

	/* a regular file: left alone */
	char file[FX_PATH_MAX + 16];
	snprintf(file, sizeof(file), "%s/precious", dir);
	int fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "data", 4), 4);
	close(fd);
	snprintf(at, sizeof(at), "unix:%s", file);
	struct devmig_endpoint f = parsed(at, true);
	assert_true(devmig_endpoint_listen(&f, shown, sizeof(shown), err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "exists and is not a socket"));
	struct stat st;
	assert_int_equal(lstat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode) && st.st_size == 4);
}

static int nodelay(int fd)
{
	int v = 0;
	socklen_t l = sizeof(v);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l), 0);
	return v;
}

static int keepalive(int fd)
{
	int v = 0;
	socklen_t l = sizeof(v);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &l), 0);
	return v;
}

/* TCP: port 0 picks one and shown says which; both ends tuned. */
static void tcp_listen_connect_accept(void **state)
{
	(void)state;
	char shown[300], err[256], peer[128];
	struct devmig_endpoint e = parsed("127.0.0.1:0", true);

	int lfd = devmig_endpoint_listen(&e, shown, sizeof(shown), err, sizeof(err));
	if (lfd < 0)
		fail_msg("listen: %s", err);
	assert_true(!strncmp(shown, "127.0.0.1:", 10) && strcmp(shown, "127.0.0.1:0"));
	struct devmig_endpoint c = parsed(shown, false);
	int cfd = devmig_endpoint_connect(&c, 1000, err, sizeof(err));
	if (cfd < 0)
		fail_msg("connect: %s", err);
	/* another user's process cannot be told apart on TCP: no uid rule */
	int afd = devmig_endpoint_accept(&e, lfd, false, peer, sizeof(peer));
	assert_true(afd >= 0);
	assert_true(!strncmp(peer, "127.0.0.1:", 10));
	assert_true(nodelay(cfd) && keepalive(cfd));
	assert_true(nodelay(afd) && keepalive(afd));
	close(afd);
	close(cfd);
	devmig_endpoint_unlisten(&e, lfd);

	/* the port is closed now: refused, said with the address */
	cfd = devmig_endpoint_connect(&c, 1000, err, sizeof(err));
	assert_int_equal(cfd, -ECONNREFUSED);
	char want[340];
	snprintf(want, sizeof(want), "cannot connect to %s: %s", shown, strerror(ECONNREFUSED));
	if (!strstr(err, want))
		fail_msg("\"%s\" lacks \"%s\"", err, want);
}

static void tcp_ipv6_shown_in_brackets(void **state)
{
	(void)state;
	char shown[300], err[256];
	struct devmig_endpoint e = parsed("[::1]:0", true);

	int lfd = devmig_endpoint_listen(&e, shown, sizeof(shown), err, sizeof(err));
	if (lfd < 0) {
		/* a host without IPv6 loopback: nothing to check here, said */
		print_message("no IPv6 loopback here (%s): the bracket form is checked by parsing only\n",
			      err);
		return;
	}
	assert_true(!strncmp(shown, "[::1]:", 6));
	struct devmig_endpoint c = parsed(shown, false);
	int cfd = devmig_endpoint_connect(&c, 1000, err, sizeof(err));
	if (cfd < 0)
		fail_msg("connect %s: %s", shown, err);
	close(cfd);
	devmig_endpoint_unlisten(&e, lfd);
}

/*
 * connect() is bounded: a listener whose queue is full drops the SYNs, so
 * a connect there would wait for minutes without the bound.
 */
static void tcp_connect_is_bounded(void **state)
{
	(void)state;
	char err[256];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 0), 0); /* never accepted: the queue fills */
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	char at[64];
	snprintf(at, sizeof(at), "127.0.0.1:%u", ntohs(sa.sin_port));
	struct devmig_endpoint c = parsed(at, false);

	int fds[16], n = 0, rc = 0;
	uint64_t took = 0;
	while (n < 16) {
		uint64_t t0 = fx_now_ms();
		rc = devmig_endpoint_connect(&c, 300, err, sizeof(err));
		took = fx_now_ms() - t0;
		if (rc < 0)
			break;
		fds[n++] = rc;
	}
	assert_int_equal(rc, -ETIMEDOUT);
	assert_true(took >= 250 && took < 3000);
	assert_non_null(strstr(err, strerror(ETIMEDOUT)));
	while (n)
		close(fds[--n]);
	close(lfd);
}

/* A unix listener whose queue is full refuses at once (EAGAIN): connect asks
 * again until its bound, and never hands back a socket that is not connected. */
static void unix_connect_is_bounded(void **state)
{
	(void)state;
	char at[2 * FX_PATH_MAX], shown[300], err[256];
	snprintf(at, sizeof(at), "unix:%s/full.sock", dir);
	struct devmig_endpoint e = parsed(at, true), c = parsed(at, false);
	int lfd = devmig_endpoint_listen(&e, shown, sizeof(shown), err, sizeof(err));
	assert_true(lfd >= 0);

	int fds[64], n = 0, rc = 0;
	uint64_t took = 0;
	while (n < 64) {
		uint64_t t0 = fx_now_ms();
		rc = devmig_endpoint_connect(&c, 300, err, sizeof(err));
		took = fx_now_ms() - t0;
		if (rc < 0)
			break;
		/* every socket handed back is connected */
		struct sockaddr_un peer;
		socklen_t pl = sizeof(peer);
		assert_int_equal(getpeername(rc, (struct sockaddr *)&peer, &pl), 0);
		fds[n++] = rc;
	}
	assert_int_equal(rc, -ETIMEDOUT);
	assert_true(took >= 250 && took < 3000);
	/* one accepted: the next connect gets in */
	int afd = devmig_endpoint_accept(&e, lfd, false, shown, sizeof(shown));
	assert_true(afd >= 0);
	rc = devmig_endpoint_connect(&c, 1000, err, sizeof(err));
	if (rc < 0)
		fail_msg("connect after an accept: %s", err);
	close(rc);
	close(afd);
	while (n)
		close(fds[--n]);
	devmig_endpoint_unlisten(&e, lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_takes_every_form),
		cmocka_unit_test(parse_refuses_with_the_reason),
		cmocka_unit_test_setup_teardown(unix_listen_connect_accept, setup, teardown),
		cmocka_unit_test_setup_teardown(unix_listen_takes_only_a_stale_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(unix_connect_is_bounded, setup, teardown),
		cmocka_unit_test(tcp_listen_connect_accept),
		cmocka_unit_test(tcp_ipv6_shown_in_brackets),
		cmocka_unit_test(tcp_connect_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
