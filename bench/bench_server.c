/* SPDX-License-Identifier: MIT */
/*
 * Server benchmarks, each beside the physical ceiling measured in the same
 * run on the same machine:
 *   - REGION_READ of 4 bytes, round trip, vs a raw AF_UNIX ping-pong of the
 *     same message sizes;
 *   - MIG_DATA_READ at 1 MiB chunks vs raw AF_UNIX stream throughput.
 * Every figure is the median of RUNS runs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#include "devmig/client.h"
#include "devmig/device.h"
#include "devmig/server.h"
#include "msgio.h"

#define RUNS 5
#define PINGS 20000
#define CHUNK (1u << 20)
#define STREAM_BYTES (2ull << 30)




static void xfer_all(int fd, void *buf, size_t len, bool is_send)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = is_send ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
		if (n <= 0) {
			perror("bench socket");
			exit(1);
		}
		p += n;
		len -= (size_t)n;
	}
}

/* ---- raw ceilings ---- */

struct echo_arg {
	int fd;
	size_t req, rep;
	long count;
};

static void *echo_thread(void *p)
{
	struct echo_arg *a = p;
	uint8_t buf[64] = { 0 };
	for (long i = 0; i < a->count; i++) {
		xfer_all(a->fd, buf, a->req, false);
		xfer_all(a->fd, buf, a->rep, true);
	}
	return NULL;
}

/* Round trip of a 32-byte request and a 36-byte reply: REGION_READ's sizes.
 * The echo thread lives for all runs, like the server thread it is compared with. */
static double raw_pingpong_us(int fd)
{
	uint8_t buf[64] = { 0 };
	double t0 = now();
	for (long i = 0; i < PINGS; i++) {
		xfer_all(fd, buf, 32, true);
		xfer_all(fd, buf, 36, false);
	}
	return (now() - t0) / PINGS * 1e6;
}

struct sink_arg {
	int fd;
	uint64_t bytes;
};

static void *sink_thread(void *p)
{
	struct sink_arg *a = p;
	uint8_t *buf = malloc(CHUNK);
	for (uint64_t got = 0; got < a->bytes;) {
		ssize_t n = recv(a->fd, buf, CHUNK, 0);
		if (n <= 0)
			break;
		got += (uint64_t)n;
	}
	free(buf);
	return NULL;
}

/* Stream STREAM_BYTES from a source of src_len bytes (1 MiB: in cache; 64 MiB: not). */
static double raw_stream_gbps(bool tuned, size_t src_len)
{
	int sv[2];
	pthread_t t;
	uint8_t *buf = malloc(src_len);

	memset(buf, 0x5a, src_len);
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	/* The library's socket buffers, or the kernel's defaults: the ceiling is the faster. */
	if (tuned) {
		devmig_msg_tune_socket(sv[0]);
		devmig_msg_tune_socket(sv[1]);
	}
	struct sink_arg a = { sv[1], STREAM_BYTES };
	pthread_create(&t, NULL, sink_thread, &a);
	double t0 = now();
	for (uint64_t sent = 0; sent < STREAM_BYTES; sent += CHUNK)
		xfer_all(sv[0], buf + sent % src_len, CHUNK, true);
	pthread_join(t, NULL);
	double dt = now() - t0;
	close(sv[0]);
	close(sv[1]);
	free(buf);
	return STREAM_BYTES / dt / 1e9;
}

/* ---- a bulk device: streams STREAM_BYTES of state from memory ---- */

struct bulk {
	struct devmig_device dev;
	uint8_t *src;
	size_t src_len;
	uint64_t produced;
	uint32_t reg;
};

static struct bulk *to_bulk(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct bulk, dev);
}

static int bulk_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	(void)dev;
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10ff);
	return rc ? rc : devmig_pci_set_bar(cfg, 0, 4096, 0);
}

static int bulk_bar(struct devmig_device *dev, unsigned bar, uint64_t off, void *buf, size_t len,
		    bool is_write)
{
	struct bulk *b = to_bulk(dev);
	(void)bar;
	(void)off;
	if (len != 4)
		return -EINVAL;
	if (is_write)
		memcpy(&b->reg, buf, 4);
	else
		memcpy(buf, &b->reg, 4);
	return 0;
}

/*
 * The state as records sized to the room left in the read, each body
 * referenced in place: stopped, the core sends it from there (zero-copy).
 */
static int bulk_save(struct devmig_device *dev, struct devmig_save *s)
{
	struct bulk *b = to_bulk(dev);
	size_t room;

	while (b->produced < STREAM_BYTES &&
	       (room = devmig_save_room(s)) > DEVMIG_RECORD_OVERHEAD) {
		uint64_t left = STREAM_BYTES - b->produced;
		size_t n = room - DEVMIG_RECORD_OVERHEAD;
		size_t off = (size_t)(b->produced % b->src_len);
		if (n > left)
			n = (size_t)left;
		if (n > b->src_len - off)
			n = b->src_len - off;
		if (n > DEVMIG_RECORD_MAX)
			n = DEVMIG_RECORD_MAX;
		int rc = devmig_save_record_ref(s, 1, NULL, 0, b->src + off, n);
		if (rc)
			return rc;
		b->produced += n;
	}
	return 0;
}

static int bulk_arc(struct devmig_device *dev, enum devmig_state from, enum devmig_state to,
		    struct devmig_arc_result *res)
{
	(void)from;
	(void)res;
	if (to == DEVMIG_STATE_STOP_COPY)
		to_bulk(dev)->produced = 0;
	return 0;
}

static const struct devmig_device_id bulk_id = { .name = "bulk", .version = "bench-bulk-1" };
static const struct devmig_device_ops bulk_ops = {
	.realize = bulk_realize,
	.bar_access = bulk_bar,
};
static const struct devmig_migration_ops bulk_mig = {
	.caps = DEVMIG_MIG_STOP_COPY,
	.arc = bulk_arc,
	.save = bulk_save,
};

static int count_sink(void *opaque, const void *data, size_t len)
{
	(void)opaque;
	(void)data;
	(void)len;
	return 0;
}

int main(void)
{
	char dir[] = "/tmp/devmig-bench-XXXXXX", path[64], err[256];
	struct bulk b = { .dev = { .id = &bulk_id, .ops = &bulk_ops, .mig = &bulk_mig },
			  .src_len = 64u << 20 };
	double v[RUNS];

	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/bulk.sock", dir);
	b.src = malloc(b.src_len);
	for (size_t i = 0; i < b.src_len; i++)
		b.src[i] = (uint8_t)(i * 131);
	if (devmig_device_init(&b.dev))
		return 1;
	struct devmig_server_config cfg = { .socket_path = path };
	struct devmig_server *srv = devmig_server_new(&b.dev, &cfg, err, sizeof(err));
	if (!srv || devmig_server_start(srv)) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	struct devmig_client *c = devmig_client_connect(path, NULL, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}

	/* Latency: raw and devmig runs interleaved, so both see the same machine. */
	int sv[2];
	pthread_t echo;
	double raw[RUNS];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	struct echo_arg ea = { sv[1], 32, 36, (long)RUNS * PINGS };
	pthread_create(&echo, NULL, echo_thread, &ea);
	for (int r = 0; r < RUNS; r++) {
		raw[r] = raw_pingpong_us(sv[0]);
		uint32_t val;
		double t0 = now();
		for (int i = 0; i < PINGS; i++)
			devmig_client_region_read(c, 0, 0, &val, 4);
		v[r] = (now() - t0) / PINGS * 1e6;
	}
	pthread_join(echo, NULL);
	close(sv[0]);
	close(sv[1]);
	double raw_rtt = median(raw, RUNS);
	double rr_rtt = median(v, RUNS);
	printf("REGION_READ 4 B round trip: %.2f us median; raw AF_UNIX ping-pong %.2f us; "
	       "ratio %.2fx (target <= 1.5x)\n", rr_rtt, raw_rtt, rr_rtt / raw_rtt);

	/* Throughput, from device memory that fits in cache (1 MiB) and that does not (64 MiB). */
	uint8_t *buf = malloc(CHUNK);
	static const size_t sources[] = { CHUNK, 64u << 20 };
	for (int k = 0; k < 2; k++) {
		b.src_len = sources[k];
		for (int r = 0; r < RUNS; r++)
			v[r] = raw_stream_gbps(false, b.src_len);
		double raw_default = median(v, RUNS);
		for (int r = 0; r < RUNS; r++)
			v[r] = raw_stream_gbps(true, b.src_len);
		double raw_tuned = median(v, RUNS);
		double raw_bw = raw_default > raw_tuned ? raw_default : raw_tuned;
		for (int r = 0; r < RUNS; r++) {
			uint64_t got = 0;
			ssize_t n;
			if (devmig_client_set_state(c, DEVMIG_STATE_STOP_COPY))
				return 1;
			double t0 = now();
			while ((n = devmig_client_mig_read(c, buf, CHUNK)) > 0)
				got += (uint64_t)n;
			v[r] = got / (now() - t0) / 1e9;
			if (n < 0 || got < STREAM_BYTES || devmig_client_set_state(c, DEVMIG_STATE_RUNNING))
				return 1;
		}
		double mig_bw = median(v, RUNS);
		for (int r = 0; r < RUNS; r++) {
			if (devmig_client_set_state(c, DEVMIG_STATE_STOP_COPY))
				return 1;
			double t0 = now();
			ssize_t got = devmig_client_mig_read_stream(c, CHUNK, 2, 0, NULL, count_sink, NULL);
			v[r] = got / (now() - t0) / 1e9;
			if (got < (ssize_t)STREAM_BYTES || devmig_client_set_state(c, DEVMIG_STATE_RUNNING))
				return 1;
		}
		double pipe_bw = median(v, RUNS);
		printf("device memory %s (%zu MiB source):\n", k ? "not in cache" : "in cache",
		       b.src_len >> 20);
		printf("  raw AF_UNIX stream %.2f GB/s (default buffers %.2f, 4 MiB buffers %.2f)\n",
		       raw_bw, raw_default, raw_tuned);
		printf("  MIG_DATA_READ 1 MiB, one at a time:   %.2f GB/s, %.0f%% of raw (target >= 60%%)\n",
		       mig_bw, 100 * mig_bw / raw_bw);
		printf("  MIG_DATA_READ 1 MiB, 2 in flight:     %.2f GB/s, %.0f%% of raw (target >= 60%%)\n",
		       pipe_bw, 100 * pipe_bw / raw_bw);
	}

	devmig_client_close(c);
	devmig_server_free(srv);
	devmig_device_destroy(&b.dev);
	free(b.src);
	free(buf);
	rmdir(dir);
	return 0;
}
