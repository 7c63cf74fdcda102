/* SPDX-License-Identifier: MIT */
/*
 * The migration channel's transports (devmig/transport.h): deadlines that
 * bound a whole frame (not each system call), refusal after a failure, and
 * TLS 1.3 with a pre-shared key or certificates, in-process over socket
 * pairs: who gets in and who does not. Certificates are made here.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fixture.h"
#include "tls_test_util.h"
#include "transport.h"

static char dir[FX_PATH_MAX];

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* ---- deadlines ---- */

struct trickle {
	int fd;
	volatile bool stop;
};

/* A peer that takes a little now and then: never stalled, never done. */
static void *trickle_main(void *arg)
{
	struct trickle *t = arg;
	static char buf[64 << 10];
	while (!t->stop) {
		if (recv(t->fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno != EAGAIN)
			break;
		struct timespec ts = { 0, 50 * 1000 * 1000 }; /* ~1.3 MB/s: 8 MiB take ~6 s */
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void a_frame_deadline_does_not_restart_on_partial_writes(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	struct trickle tr = { .fd = sv[1] };
	pthread_t th;
	pthread_create(&th, NULL, trickle_main, &tr);
	struct devmig_transport *t = devmig_transport_plain(sv[0], 1000);
	size_t len = 8u << 20;
	uint8_t *frame = calloc(1, len);
	assert_non_null(frame);

	uint64_t t0 = fx_now_ms();
	int rc = devmig_transport_send(t, frame, len);
	uint64_t took = fx_now_ms() - t0;
	assert_int_equal(rc, -ETIMEDOUT);
	/* One second for the whole frame, however many pieces went. */
	if (took < 1000 || took > 2500)
		fail_msg("the 1 s deadline ended after %llu ms", (unsigned long long)took);
	/* Part of a frame went: nothing may follow it. */
	assert_int_equal(devmig_transport_send(t, "x", 1), -EPIPE);

	tr.stop = true;
	pthread_join(th, NULL);
	devmig_transport_free(t);
	free(frame);
	close(sv[0]);
	close(sv[1]);
}

static void a_silent_peer_times_out_a_receive(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	struct devmig_transport *t = devmig_transport_plain(sv[0], 300);
	char buf[16];
	uint64_t t0 = fx_now_ms();
	assert_int_equal(devmig_transport_recv(t, buf, sizeof(buf)), -ETIMEDOUT);
	uint64_t took = fx_now_ms() - t0;
	assert_true(took >= 300 && took < 2000);
	/* Data then the end. */
	assert_int_equal(send(sv[1], "abc", 3, 0), 3);
	assert_int_equal(devmig_transport_recv(t, buf, sizeof(buf)), 3);
	close(sv[1]);
	assert_int_equal(devmig_transport_recv(t, buf, sizeof(buf)), 0);
	devmig_transport_free(t);
	close(sv[0]);
}

/* ---- TLS ---- */

struct end {
	int fd;
	struct devmig_tls_creds *creds;
	struct devmig_transport *t;
	char err[512];
	char got[64];
};

static void *tls_server_main(void *arg)
{
	struct end *e = arg;
	e->t = devmig_transport_tls(e->fd, e->creds, 5000, e->err, sizeof(e->err));
	if (e->t) {
		long n = devmig_transport_recv(e->t, e->got, sizeof(e->got) - 1);
		if (n > 0) {
			e->got[n] = '\0';
			devmig_transport_send(e->t, "pong", 4);
		}
	}
	return NULL;
}

static struct devmig_tls_creds *creds(const struct devmig_tls_config *c, bool server)
{
	char err[512];
	struct devmig_tls_creds *k = devmig_tls_creds_load(c, server, err, sizeof(err));
	if (!k)
		fail_msg("credentials: %s", err);
	return k;
}

/* A handshake between client and server credentials; true when both sides got in. */
static bool handshake(struct devmig_tls_creds *cli, struct devmig_tls_creds *srv, char *cli_err,
		      char *srv_err, char *srv_peer, char *cli_peer)
{
	int sv[2];
	pair(sv);
	struct end s = { .fd = sv[1], .creds = srv };
	pthread_t th;
	pthread_create(&th, NULL, tls_server_main, &s);
	char err[512] = "";
	struct devmig_transport *c = devmig_transport_tls(sv[0], cli, 5000, err, sizeof(err));
	bool ok = false;
	if (c && !devmig_transport_send(c, "ping", 4)) {
		char buf[8] = "";
		long n = devmig_transport_recv(c, buf, sizeof(buf) - 1);
		ok = n == 4 && !memcmp(buf, "pong", 4);
	}
	if (c && cli_peer)
		snprintf(cli_peer, 256, "%s", devmig_transport_peer(c));
	devmig_transport_free(c);
	close(sv[0]); /* the server's read then ends, if it waits */
	pthread_join(th, NULL);
	if (s.t && srv_peer)
		snprintf(srv_peer, 256, "%s", devmig_transport_peer(s.t));
	ok = ok && s.t && !strcmp(s.got, "ping");
	devmig_transport_free(s.t);
	close(sv[1]);
	if (cli_err)
		snprintf(cli_err, 512, "%s", err);
	if (srv_err)
		snprintf(srv_err, 512, "%s", s.err);
	return ok;
}

static void psk_lets_in_only_the_same_key(void **state)
{
	(void)state;
	char k1[128], k2[128], k3[128];
	snprintf(k1, sizeof(k1), "%s/k1", dir);
	snprintf(k2, sizeof(k2), "%s/k2", dir);
	snprintf(k3, sizeof(k3), "%s/k3", dir);
	assert_int_equal(tt_make_psk(k1, "alice", 1, 32), 0);
	assert_int_equal(tt_make_psk(k2, "alice", 2, 32), 0); /* same name, another key */
	assert_int_equal(tt_make_psk(k3, "bob", 1, 32), 0);   /* same key, another name */
	struct devmig_tls_config c1 = { .psk_file = k1 }, c2 = { .psk_file = k2 },
				 c3 = { .psk_file = k3 };
	struct devmig_tls_creds *s1 = creds(&c1, true), *a1 = creds(&c1, false),
				*a2 = creds(&c2, false), *a3 = creds(&c3, false);
	char speer[256] = "", cerr[512], serr[512];

	assert_true(handshake(a1, s1, cerr, serr, speer, NULL));
	assert_string_equal(speer, "psk identity alice");
	assert_false(handshake(a2, s1, cerr, serr, NULL, NULL));
	assert_true(serr[0] && cerr[0]);
	assert_false(handshake(a3, s1, cerr, serr, NULL, NULL));
	assert_true(serr[0]);
	devmig_tls_creds_free(s1);
	devmig_tls_creds_free(a1);
	devmig_tls_creds_free(a2);
	devmig_tls_creds_free(a3);
}

static void a_silent_peer_times_out_the_handshake(void **state)
{
	(void)state;
	char k[128], err[512];
	snprintf(k, sizeof(k), "%s/k", dir);
	assert_int_equal(tt_make_psk(k, "devmig", 9, 32), 0);
	struct devmig_tls_config c = { .psk_file = k, .handshake_timeout_ms = 300 };
	struct devmig_tls_creds *s = creds(&c, true);
	int sv[2];
	pair(sv);
	uint64_t t0 = fx_now_ms();
	assert_null(devmig_transport_tls(sv[0], s, 5000, err, sizeof(err)));
	uint64_t took = fx_now_ms() - t0;
	assert_non_null(strstr(err, "no TLS handshake within 300 ms"));
	assert_true(took >= 300 && took < 2000);
	close(sv[0]);
	close(sv[1]);
	devmig_tls_creds_free(s);
}

static void certificates_from_the_ca_and_with_the_name(void **state)
{
	(void)state;
	struct test_ca ca, rogue;
	char rdir[128], p[8][160];
	snprintf(rdir, sizeof(rdir), "%s/rogue", dir);
	assert_int_equal(mkdir(rdir, 0700), 0);
	assert_int_equal(tt_make_ca(&ca, dir, "ca"), 0);
	assert_int_equal(tt_make_ca(&rogue, rdir, "ca"), 0); /* same name, another key */
	assert_int_equal(tt_make_cert(&ca, dir, "srv", "srv.example", "127.0.0.1", 2), 0);
	assert_int_equal(tt_make_cert(&ca, dir, "cli", "cli.example", NULL, 3), 0);
	assert_int_equal(tt_make_cert(&rogue, dir, "evil", "cli.example", NULL, 4), 0);
	tt_free_ca(&ca);
	tt_free_ca(&rogue);
	const char *names[8] = { "ca.crt", "srv.crt", "srv.key", "cli.crt", "cli.key", "evil.crt",
				 "evil.key", "rogue/ca.crt" };
	for (int i = 0; i < 8; i++)
		snprintf(p[i], sizeof(p[i]), "%s/%s", dir, names[i]);

	struct devmig_tls_config sc = { .cert_file = p[1], .key_file = p[2], .ca_file = p[0] };
	struct devmig_tls_config cc = { .cert_file = p[3], .key_file = p[4], .ca_file = p[0],
					.peer_name = "srv.example" };
	struct devmig_tls_config ec = { .cert_file = p[5], .key_file = p[6], .ca_file = p[0],
					.peer_name = "srv.example" };
	struct devmig_tls_config wc = { .cert_file = p[3], .key_file = p[4], .ca_file = p[0],
					.peer_name = "other.example" };
	struct devmig_tls_config pinned = { .cert_file = p[1], .key_file = p[2], .ca_file = p[0],
					    .peer_name = "someone.example" };
	struct devmig_tls_creds *srv = creds(&sc, true), *cli = creds(&cc, false),
				*evil = creds(&ec, false), *wrong = creds(&wc, false),
				*pin = creds(&pinned, true);
	char speer[256] = "", cpeer[256] = "", cerr[512], serr[512];

	assert_true(handshake(cli, srv, cerr, serr, speer, cpeer));
	assert_non_null(strstr(speer, "CN=cli.example"));
	assert_non_null(strstr(cpeer, "CN=srv.example"));
	/* Signed by another key under the same CA name: refused by the server. */
	assert_false(handshake(evil, srv, cerr, serr, NULL, NULL));
	assert_non_null(strstr(serr, "certificate"));
	/* The server's certificate lacks the name the client wants. */
	assert_false(handshake(wrong, srv, cerr, serr, NULL, NULL));
	assert_non_null(strstr(cerr, "certificate"));
	/* A server that wants one client name refuses another. */
	assert_false(handshake(cli, pin, cerr, serr, NULL, NULL));
	assert_non_null(strstr(serr, "certificate"));
	/* A private key others can read is refused before any connection. */
	char err[512];
	chmod(p[2], 0640);
	assert_null(devmig_tls_creds_load(&sc, true, err, sizeof(err)));
	assert_non_null(strstr(err, "read by others"));
	devmig_tls_creds_free(srv);
	devmig_tls_creds_free(cli);
	devmig_tls_creds_free(evil);
	devmig_tls_creds_free(wrong);
	devmig_tls_creds_free(pin);
}

static void psk_files_are_read_strictly(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		bool ok;
		const char *id;
		size_t key_len;
	} cases[] = {
		{ "devmig:000102030405060708090a0b0c0d0e0f\n", true, "devmig", 16 },
		{ "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff", true, "devmig", 32 },
		{ "host-a:00112233445566778899aabbccddeeff\r\nignored", true, "host-a", 16 },
		{ "a:b:00112233445566778899aabbccddeeff", true, "a:b", 16 },
		{ "short:0011223344556677", false, NULL, 0 },   /* 8 bytes */
		{ "odd:00112233445566778899aabbccddeeff0", false, NULL, 0 },
		{ "nothex:0g112233445566778899aabbccddeeff", false, NULL, 0 },
		{ ":00112233445566778899aabbccddeeff", false, NULL, 0 },
		{ "", false, NULL, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char id[128], err[200];
		uint8_t key[DEVMIG_TLS_PSK_MAX];
		size_t kl = 0;
		int rc = devmig_tls_parse_psk(cases[i].text, strlen(cases[i].text), id, sizeof(id),
					      key, &kl, err, sizeof(err));
		if ((rc == 0) != cases[i].ok)
			fail_msg("case %zu '%s': %s", i, cases[i].text, rc ? err : "accepted");
		if (cases[i].ok) {
			assert_string_equal(id, cases[i].id);
			assert_int_equal(kl, cases[i].key_len);
		}
	}
}

static int setup(void **state)
{
	(void)state;
	fx_tmpdir(dir, "tr");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fx_rmdir(dir);
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_frame_deadline_does_not_restart_on_partial_writes),
		cmocka_unit_test(a_silent_peer_times_out_a_receive),
		cmocka_unit_test_setup_teardown(psk_lets_in_only_the_same_key, setup, teardown),
		cmocka_unit_test_setup_teardown(a_silent_peer_times_out_the_handshake, setup,
						teardown),
		cmocka_unit_test_setup_teardown(certificates_from_the_ca_and_with_the_name, setup,
						teardown),
		cmocka_unit_test(psk_files_are_read_strictly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
