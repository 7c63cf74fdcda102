/* SPDX-License-Identifier: MIT */
/*
 * What TLS costs the migration channel: bulk throughput over TCP loopback
 *   - raw TCP (send/recv, the ceiling),
 *   - the plain transport (what --insecure uses),
 *   - TLS 1.3 with a pre-shared key (--psk),
 *   - TLS 1.3 with X.509 certificates (--cert/--key/--ca),
 * each the median of RUNS runs of BYTES in 1 MiB sends (the channel's frame
 * size), the ratio to raw TCP measured in the same run, and the handshake
 * time of each TLS mode. Certificates are made at start in a temporary
 * folder, and removed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"
#include "devmig/transport.h"
#include "tls_test_util.h"

#define RUNS 5
#define CHUNK (1u << 20)
#define BYTES (1ull << 30)

enum mode { RAW, PLAIN, PSK, X509, NMODES };
static const char *const mode_name[] = { "raw TCP (ceiling)", "plain transport",
					 "TLS 1.3, pre-shared key", "TLS 1.3, X.509" };

static char dir[64];
static struct devmig_tls_creds *creds[NMODES][2]; /* [mode][server] */
static char suite[NMODES][96];                      /* what TLS negotiated */

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench_tls: %s: %s\n", what, why);
	exit(1);
}

static void tcp_pair(int *srv, int *cli)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&sa, &len))
		die("listen", strerror(errno));
	*cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*cli < 0 || connect(*cli, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect", strerror(errno));
	*srv = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (*srv < 0)
		die("accept", strerror(errno));
	close(l);
	setsockopt(*cli, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*srv, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct side {
	enum mode mode;
	int fd;
	bool server;
	struct devmig_transport *t;
	double handshake_s;
	double done;     /* receiver: when the last byte arrived */
	uint8_t *buf;
};

static void *receiver(void *arg)
{
	struct side *s = arg;
	uint64_t left = BYTES;
	while (left) {
		long n;
		if (s->mode == RAW) {
			n = recv(s->fd, s->buf, CHUNK, 0);
		} else {
			n = devmig_transport_recv(s->t, s->buf, CHUNK);
		}
		if (n <= 0)
			die("receive", n ? strerror((int)-n) : "end of stream");
		left -= (uint64_t)n;
	}
	s->done = now();
	return NULL;
}

static void *handshake(void *arg)
{
	struct side *s = arg;
	char err[256];
	double t0 = now();
	s->t = s->mode == PLAIN ? devmig_transport_plain(s->fd, 30000)
				: devmig_transport_tls(s->fd, creds[s->mode][s->server], 30000, err,
						       sizeof(err));
	if (!s->t)
		die("handshake", s->mode == PLAIN ? "out of memory" : err);
	s->handshake_s = now() - t0;
	if (!s->server)
		snprintf(suite[s->mode], sizeof(suite[0]), "%s", devmig_transport_desc(s->t));
	return NULL;
}

/* One run: bytes per second, and the handshake time (TLS). */
static double run(enum mode m, double *hs)
{
	struct side srv = { .mode = m, .server = true }, cli = { .mode = m, .server = false };
	pthread_t th;

	tcp_pair(&srv.fd, &cli.fd);
	srv.buf = malloc(CHUNK);
	cli.buf = malloc(CHUNK);
	if (!srv.buf || !cli.buf)
		die("memory", "out of memory");
	memset(cli.buf, 0x5a, CHUNK);
	if (m != RAW) {
		pthread_create(&th, NULL, handshake, &srv);
		handshake(&cli);
		pthread_join(th, NULL);
		*hs = cli.handshake_s;
	}
	pthread_create(&th, NULL, receiver, &srv);
	double t0 = now();
	for (uint64_t sent = 0; sent < BYTES; sent += CHUNK) {
		int rc = 0;
		if (m == RAW) {
			for (size_t off = 0; off < CHUNK;) {
				ssize_t k = send(cli.fd, cli.buf + off, CHUNK - off, MSG_NOSIGNAL);
				if (k <= 0)
					die("send", strerror(errno));
				off += (size_t)k;
			}
		} else {
			rc = devmig_transport_send(cli.t, cli.buf, CHUNK);
		}
		if (rc)
			die("send", strerror(-rc));
	}
	pthread_join(th, NULL);
	double bps = BYTES / (srv.done - t0);
	devmig_transport_free(cli.t);
	devmig_transport_free(srv.t);
	close(cli.fd);
	close(srv.fd);
	free(srv.buf);
	free(cli.buf);
	return bps;
}

static void make_creds(void)
{
	char path[6][128], err[512];
	struct test_ca ca;

	snprintf(dir, sizeof(dir), "/tmp/devmig-bench-tls-XXXXXX");
	if (!mkdtemp(dir))
		die("mkdtemp", strerror(errno));
	snprintf(path[0], sizeof(path[0]), "%s/psk", dir);
	snprintf(path[1], sizeof(path[1]), "%s/ca.crt", dir);
	snprintf(path[2], sizeof(path[2]), "%s/a.crt", dir);
	snprintf(path[3], sizeof(path[3]), "%s/a.key", dir);
	snprintf(path[4], sizeof(path[4]), "%s/b.crt", dir);
	snprintf(path[5], sizeof(path[5]), "%s/b.key", dir);
	if (tt_make_psk(path[0], "bench", 0x10, 32) || tt_make_ca(&ca, dir, "ca") ||
	    tt_make_cert(&ca, dir, "a", "a.example", "127.0.0.1", 2) ||
	    tt_make_cert(&ca, dir, "b", "b.example", NULL, 3))
		die("certificates", "cannot make them");
	tt_free_ca(&ca);
	struct devmig_tls_config psk = { .psk_file = path[0] };
	struct devmig_tls_config srv = { .cert_file = path[2], .key_file = path[3],
					 .ca_file = path[1] };
	struct devmig_tls_config cli = { .cert_file = path[4], .key_file = path[5],
					 .ca_file = path[1], .peer_name = "127.0.0.1" };
	for (int s = 0; s < 2; s++) {
		creds[PSK][s] = devmig_tls_creds_load(&psk, s, err, sizeof(err));
		creds[X509][s] = devmig_tls_creds_load(s ? &srv : &cli, s, err, sizeof(err));
		if (!creds[PSK][s] || !creds[X509][s])
			die("credentials", err);
	}
}

int main(void)
{
	double v[NMODES][RUNS], hs[NMODES][RUNS], med[NMODES], hmed[NMODES];

	make_creds();
	/* Interleaved, so a change in the machine's load touches every mode alike. */
	for (int r = 0; r < RUNS; r++)
		for (int m = 0; m < NMODES; m++)
			v[m][r] = run((enum mode)m, &hs[m][r]);
	printf("migration channel over TCP loopback: %llu MiB in %u KiB sends, median of %d runs\n",
	       (unsigned long long)(BYTES >> 20), CHUNK >> 10, RUNS);
	for (int m = 0; m < NMODES; m++) {
		med[m] = median(v[m], RUNS);
		hmed[m] = m >= PSK ? median(hs[m], RUNS) : 0;
	}
	for (int m = 0; m < NMODES; m++) {
		printf("  %-26s %7.2f GiB/s  %5.1f%% of raw TCP", mode_name[m], med[m] / (1u << 30),
		       100.0 * med[m] / med[RAW]);
		if (m >= PSK)
			printf("  (handshake %.2f ms; %s)", hmed[m] * 1e3, suite[m]);
		printf("\n");
	}
	for (int m = PSK; m < NMODES; m++)
		for (int s = 0; s < 2; s++)
			devmig_tls_creds_free(creds[m][s]);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		return 1;
	return 0;
}
