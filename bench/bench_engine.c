/* SPDX-License-Identifier: MIT */
/*
 * Engine benchmark: memblk devices of 64 MiB to 2 GiB live-migrated under a
 * guest workload rewriting storage at a fixed rate, with and without
 * pre-copy: downtime, total time, data-path throughput beside raw AF_UNIX
 * and TCP-loopback streams, a two-hop relay (the shape of a local migration:
 * every byte crosses the VMM) and the first write of fresh memory (where a
 * new destination puts its state), all measured in the same run, the peak RSS of
 * the migrating process (the engine and the guest; the device servers run
 * in processes of their own), which must not grow with the device size.
 *
 * Then the non-converging scenario (memblk_scenario.h: a guest rewriting
 * its working set faster than a capped link copies it) three ways: as a
 * VMM without devmig's extensions, with deadlines, with deadlines and
 * dirty-rate limiting: rounds, downtime, the budget, the cap used and
 * whether the budget was met, every write verified each time.
 *
 *   bench_engine [--quick]     --quick: 64 MiB and 256 MiB only
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#include "devices.h"
#include "devmig/client.h"
#include "devmig/engine.h"
#include "devmig/server.h"
#include "memblk/memblk_scenario.h"
#include "memblk/memblk_workload.h"

#define GUEST_MEM (64u << 20)
#define OPS_PER_SEC 2000u
#define RAW_BYTES (2ull << 30)
#define RUNS 3




/* ---- raw ceilings: one stream of RAW_BYTES through a socket pair ---- */

struct sink_arg {
	int fd;
};

static void *sink_thread(void *p)
{
	int fd = ((struct sink_arg *)p)->fd;
	char *buf = malloc(1 << 20);
	while (recv(fd, buf, 1 << 20, 0) > 0)
		;
	free(buf);
	return NULL;
}

static double stream_gbps(int tx, int rx)
{
	pthread_t t;
	struct sink_arg a = { rx };
	char *buf = calloc(1, 1 << 20);
	pthread_create(&t, NULL, sink_thread, &a);
	double t0 = now();
	for (uint64_t sent = 0; sent < RAW_BYTES;) {
		ssize_t n = send(tx, buf, 1 << 20, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		sent += (uint64_t)n;
	}
	shutdown(tx, SHUT_WR);
	pthread_join(t, NULL);
	double dt = now() - t0;
	free(buf);
	return RAW_BYTES / dt / 1e9;
}

static double raw_unix_gbps(void)
{
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	double r = stream_gbps(sv[0], sv[1]);
	close(sv[0]);
	close(sv[1]);
	return r;
}

/* The shape of a local migration without devmig: A -> relay -> C over two socket pairs. */
struct relay_arg {
	int in, out;
};

static void *relay_thread(void *p)
{
	struct relay_arg *a = p;
	char *buf = malloc(1 << 20);
	ssize_t n;
	while ((n = recv(a->in, buf, 1 << 20, 0)) > 0)
		for (ssize_t off = 0; off < n;) {
			ssize_t k = send(a->out, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
			if (k <= 0)
				goto out;
			off += k;
		}
out:
	shutdown(a->out, SHUT_WR);
	free(buf);
	return NULL;
}

static double raw_relay_gbps(void)
{
	int a[2], b[2];
	pthread_t t;
	socketpair(AF_UNIX, SOCK_STREAM, 0, a);
	socketpair(AF_UNIX, SOCK_STREAM, 0, b);
	struct relay_arg ra = { a[1], b[0] };
	pthread_create(&t, NULL, relay_thread, &ra);
	double r = stream_gbps(a[0], b[1]);
	pthread_join(t, NULL);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	return r;
}

static double raw_tcp_gbps(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	bind(l, (struct sockaddr *)&sa, sizeof(sa));
	listen(l, 1);
	getsockname(l, (struct sockaddr *)&sa, &sl);
	int tx = socket(AF_INET, SOCK_STREAM, 0);
	connect(tx, (struct sockaddr *)&sa, sizeof(sa));
	int rx = accept(l, NULL, NULL);
	setsockopt(tx, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	double r = stream_gbps(tx, rx);
	close(tx);
	close(rx);
	close(l);
	return r;
}

/*
 * A fresh destination writes its state into memory it has never touched, as
 * a new process: the first write of each page costs a fault (on a VM, often
 * the host's too). Measured in a child, like the destination servers.
 */
static double fresh_memory_gbps(void)
{
	const size_t len = 1ull << 30;
	int p[2];
	double r = 0;
	if (pipe(p))
		return 0;
	pid_t pid = fork();
	if (pid == 0) {
		uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		double g = 0;
		if (m != MAP_FAILED) {
			madvise(m, len, MADV_HUGEPAGE); /* as memblk's storage */
			double t0 = now();
			memset(m, 0x5a, len);
			g = len / (now() - t0) / 1e9;
		}
		_exit(write(p[1], &g, sizeof(g)) == sizeof(g) ? 0 : 1);
	}
	close(p[1]);
	if (read(p[0], &r, sizeof(r)) != sizeof(r))
		r = 0;
	close(p[0]);
	waitpid(pid, NULL, 0);
	return r;
}

/* ---- one migration, in a child process ---- */

struct result {
	int rc;
	double downtime_ms, total_s, gbps, guest_gap_ms;
	double drain_gbps; /* bytes moved while the guest was paused / the pause */
	uint64_t bytes;
	unsigned rounds;
	long rss_kib;
	char error[512];
};

static pid_t serve(const char *path, const char *args)
{
	pid_t pid = fork();
	if (pid == 0) {
		char err[256];
		struct devmig_device *dev = devmig_variant_memblk.create(args, err, sizeof(err));
		struct devmig_server_config cfg = { .socket_path = path };
		struct devmig_server *s = dev ? devmig_server_new(dev, &cfg, err, sizeof(err)) : NULL;
		if (!s) {
			fprintf(stderr, "bench: %s\n", err);
			_exit(1);
		}
		devmig_server_run(s);
		_exit(0);
	}
	return pid;
}

static struct devmig_client *connect_retry(const char *path)
{
	char err[256];
	for (int i = 0; i < 2000; i++) {
		struct devmig_client *c = devmig_client_connect(path, NULL, err, sizeof(err));
		if (c)
			return c;
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "bench: %s\n", err);
	return NULL;
}

static long peak_rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6))
			kib = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

static int pause_cb(void *o)
{
	return mbw_pause(o, 10000);
}

static int resume_cb(void *o, bool dst)
{
	mbw_resume(o, dst);
	return 0;
}

static void side(struct devmig_client *c, struct devmig_guest_mem *gm, int *efd)
{
	devmig_client_dma_map(c, 0, GUEST_MEM, DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
			      devmig_guest_mem_fd(gm), 0, NULL);
	*efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	mbg_client_enable_msix(c, *efd);
}

static void run_child(const char *dir, uint64_t size, bool precopy, int out)
{
	struct result r = { 0 };
	char sp[128], dp[128], args[64], err[256];
	snprintf(sp, sizeof(sp), "%s/src.sock", dir);
	snprintf(dp, sizeof(dp), "%s/dst.sock", dir);
	snprintf(args, sizeof(args), "size=%llu", (unsigned long long)size);
	pid_t ps = serve(sp, args), pd = serve(dp, args);
	struct devmig_client *src = connect_retry(sp), *dst = connect_retry(dp);
	struct devmig_guest_mem *sm = devmig_guest_mem_new(GUEST_MEM, err, sizeof(err));
	struct devmig_guest_mem *dm = devmig_guest_mem_new(GUEST_MEM, err, sizeof(err));
	int sefd, defd;
	side(src, sm, &sefd);
	side(dst, dm, &defd);
	struct mbw_config wc = {
		.io = mbg_mmio_client(src), .irq_fd = sefd, .mem = sm, .write_pct = 70,
		.write_span = size / 4096 / 8, .max_ops_per_sec = OPS_PER_SEC,
	};
	struct mbw *w = mbw_new(&wc, err, sizeof(err));
	r.rc = w ? mbw_fill(w, err, sizeof(err)) : -EIO;
	if (!r.rc)
		r.rc = mbw_start(w);
	struct mbg_mmio dio = mbg_mmio_client(dst);
	if (w)
		mbw_set_destination(w, &dio, defd, dm);
	struct devmig_engine_config cfg = {
		.no_precopy = !precopy, .pause_guest = pause_cb, .resume_guest = resume_cb, .opaque = w,
	};
	struct devmig_migration_report rep;
	if (!r.rc)
		r.rc = devmig_migrate_local(&cfg, &src, &dst, 1, sm, dm, &rep);
	if (!r.rc) {
		/* The guest runs on at the destination: it checks the memory it
		 * was moved with, and its gap across the switch is counted. */
		struct timespec ts = { 0, 300 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (w) {
		struct mbw_stats st;
		int wrc = mbw_stop(w);
		mbw_get_stats(w, &st);
		r.guest_gap_ms = st.max_gap_ns / 1e6;
		if (!r.rc && (wrc || st.mismatches || !st.on_destination)) {
			r.rc = -EIO;
			snprintf(r.error, sizeof(r.error), "the guest: %s",
				 st.error[0] ? st.error : "did not run on at the destination");
		}
	}
	if (r.rc && !r.error[0])
		snprintf(r.error, sizeof(r.error), "%.500s", w ? rep.error : err);
	r.downtime_ms = rep.downtime_ns / 1e6;
	r.total_s = rep.total_ns / 1e9;
	r.bytes = rep.device_bytes + rep.guest_bytes;
	r.gbps = rep.throughput / 1e9;
	r.drain_gbps = rep.downtime_ns ? rep.stop_copy_bytes / (double)rep.downtime_ns : 0;
	r.rounds = rep.rounds;
	r.rss_kib = peak_rss_kib();
	if (write(out, &r, sizeof(r)) != sizeof(r))
		_exit(1);
	kill(ps, SIGKILL);
	kill(pd, SIGKILL);
	waitpid(ps, NULL, 0);
	waitpid(pd, NULL, 0);
	_exit(0);
}

static int run(uint64_t size, bool precopy, struct result *r)
{
	char dir[] = "/tmp/devmig-bench-engine-XXXXXX";
	int p[2];
	if (!mkdtemp(dir) || pipe(p))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		run_child(dir, size, precopy, p[1]);
	}
	close(p[1]);
	ssize_t n = read(p[0], r, sizeof(*r));
	close(p[0]);
	waitpid(pid, NULL, 0);
	char path[128];
	snprintf(path, sizeof(path), "%s/src.sock", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/dst.sock", dir);
	unlink(path);
	rmdir(dir);
	return n == sizeof(*r) ? 0 : -1;
}

/* ---- the non-converging scenario, one case in a child process ---- */

struct nc_result {
	int rc;           /* 0: the case ran and every write was verified */
	int mrc;          /* the migration's */
	bool completed, budget_met, verified_on_source;
	unsigned rounds, refusals;
	double downtime_ms, budget_ms, cap_mib, capped_s, refusal_est_ms, refusal_left_ms;
	char error[512];
};

static void nc_child(const char *dir, bool deadline, bool throttle, int out)
{
	struct nc_result r = { 0 };
	char sp[128], dp[128], args[64], err[256] = "";
	snprintf(sp, sizeof(sp), "%s/src.sock", dir);
	snprintf(dp, sizeof(dp), "%s/dst.sock", dir);
	snprintf(args, sizeof(args), "size=%llu", (unsigned long long)MB_NC_SIZE);
	pid_t ps = serve(sp, args), pd = serve(dp, args);
	struct devmig_client *src = connect_retry(sp), *dst = connect_retry(dp);
	struct devmig_guest_mem *sm = devmig_guest_mem_new(MB_NC_GUEST_MEM, err, sizeof(err));
	struct devmig_guest_mem *dm = devmig_guest_mem_new(MB_NC_GUEST_MEM, err, sizeof(err));
	int sefd, defd;
	devmig_client_dma_map(src, 0, MB_NC_GUEST_MEM, DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
			      devmig_guest_mem_fd(sm), 0, NULL);
	devmig_client_dma_map(dst, 0, MB_NC_GUEST_MEM, DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
			      devmig_guest_mem_fd(dm), 0, NULL);
	sefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	defd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	mbg_client_enable_msix(src, sefd);
	mbg_client_enable_msix(dst, defd);
	struct mbw_config wc = {
		.io = mbg_mmio_client(src), .irq_fd = sefd, .mem = sm,
		.write_pct = MB_NC_WRITE_PCT, .write_span = MB_NC_WORKING_SET / MB_BLOCK_SIZE,
		.max_ops_per_sec = MB_NC_OPS,
	};
	struct mbw *w = mbw_new(&wc, err, sizeof(err));
	r.rc = w ? mbw_fill(w, err, sizeof(err)) : -EIO;
	if (!r.rc)
		r.rc = mbw_start(w);
	struct mbg_mmio dio = mbg_mmio_client(dst);
	if (w)
		mbw_set_destination(w, &dio, defd, dm);
	struct devmig_engine_config cfg = {
		.downtime_budget_ns = MB_NC_BUDGET_NS, .link_rate = MB_NC_LINK_RATE,
		.no_deadline = !deadline, .no_throttle = !throttle,
		.pause_guest = pause_cb, .resume_guest = resume_cb, .opaque = w,
	};
	struct devmig_migration_report rep;
	memset(&rep, 0, sizeof(rep));
	if (!r.rc) {
		struct timespec ts = { 0, 200 * 1000 * 1000 };
		nanosleep(&ts, NULL); /* the guest is under way */
		r.mrc = devmig_migrate_local(&cfg, &src, &dst, 1, sm, dm, &rep);
		struct timespec after = { 0, 300 * 1000 * 1000 };
		nanosleep(&after, NULL); /* it runs on, wherever it is */
	}
	if (w && !r.rc) {
		struct mbw_stats st;
		struct mbw_verify_result vr;
		int wrc = mbw_stop(w);
		mbw_get_stats(w, &st);
		if (wrc || st.mismatches) {
			r.rc = -EIO;
			snprintf(r.error, sizeof(r.error), "the guest: %s", st.error);
		} else if (mbw_verify(w, &vr, err, sizeof(err))) {
			r.rc = -EIO;
			snprintf(r.error, sizeof(r.error), "verifying on the %s: %s",
				 st.on_destination ? "destination" : "source", err);
		}
		r.verified_on_source = !st.on_destination;
	}
	if (r.rc && !r.error[0])
		snprintf(r.error, sizeof(r.error), "%.500s", err);
	r.completed = rep.completed;
	r.budget_met = rep.budget_met;
	r.rounds = rep.rounds;
	r.refusals = rep.deadline_refusals;
	r.downtime_ms = rep.downtime_ns / 1e6;
	r.budget_ms = rep.budget_ns / 1e6;
	r.cap_mib = rep.throttle_cap / (1024.0 * 1024.0);
	r.capped_s = rep.throttle_ns / 1e9;
	r.refusal_est_ms = rep.refusal_estimate_ns / 1e6;
	r.refusal_left_ms = rep.refusal_deadline_ns / 1e6;
	if (r.mrc && !r.refusals && !r.rc) {
		r.rc = r.mrc;
		snprintf(r.error, sizeof(r.error), "%.500s", rep.error);
	}
	if (write(out, &r, sizeof(r)) != sizeof(r))
		_exit(1);
	kill(ps, SIGKILL);
	kill(pd, SIGKILL);
	waitpid(ps, NULL, 0);
	waitpid(pd, NULL, 0);
	_exit(0);
}

static int nc_run(bool deadline, bool throttle, struct nc_result *r)
{
	char dir[] = "/tmp/devmig-bench-nc-XXXXXX";
	int p[2];
	if (!mkdtemp(dir) || pipe(p))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		nc_child(dir, deadline, throttle, p[1]);
	}
	close(p[1]);
	ssize_t n = read(p[0], r, sizeof(*r));
	close(p[0]);
	waitpid(pid, NULL, 0);
	char path[128];
	snprintf(path, sizeof(path), "%s/src.sock", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/dst.sock", dir);
	unlink(path);
	rmdir(dir);
	return n == sizeof(*r) ? 0 : -1;
}

static int non_converging(void)
{
	static const struct {
		const char *label;
		bool deadline, throttle;
	} cases[] = {
		{ "no limiting, no deadlines", false, false },
		{ "deadlines, no limiting", true, false },
		{ "deadlines and limiting", true, true },
	};
	int rc = 0;

	printf("\nnon-converging: a guest rewrites %llu MiB of a %llu MiB memblk (%u%% writes of up "
	       "to %u I/O/s), the link carries %llu MiB/s (devices/memblk/memblk_scenario.h)\n",
	       MB_NC_WORKING_SET >> 20, MB_NC_SIZE >> 20, MB_NC_WRITE_PCT, MB_NC_OPS,
	       MB_NC_LINK_RATE >> 20);
	printf("%-26s %7s %12s %10s %10s %9s %11s  %s\n", "case", "rounds", "downtime_ms",
	       "budget_ms", "cap_MiB/s", "capped_s", "budget_met", "outcome");
	for (unsigned k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct nc_result r;
		if (nc_run(cases[k].deadline, cases[k].throttle, &r) || r.rc) {
			printf("%-26s FAILED %s\n", cases[k].label, r.error);
			rc = 1;
			continue;
		}
		char dt[32] = "-", cap[32] = "-", capped[32] = "-", out[160];
		if (r.completed)
			snprintf(dt, sizeof(dt), "%.1f", r.downtime_ms);
		if (r.cap_mib > 0) {
			snprintf(cap, sizeof(cap), "%.1f", r.cap_mib);
			snprintf(capped, sizeof(capped), "%.1f", r.capped_s);
		}
		if (r.completed)
			snprintf(out, sizeof(out), "switched over; every write verified on the "
				 "destination");
		else
			snprintf(out, sizeof(out), "refused %ux (needs ~%.0f ms, %.0f left): the guest "
				 "ran on at the source; every write verified there", r.refusals,
				 r.refusal_est_ms, r.refusal_left_ms);
		printf("%-26s %7u %12s %10.0f %10s %9s %11s  %s\n", cases[k].label, r.rounds, dt,
		       r.budget_ms, cap, capped, r.completed ? (r.budget_met ? "yes" : "no") : "-",
		       out);
	}
	return rc;
}

int main(int argc, char **argv)
{
	static const uint64_t sizes[] = { 64ull << 20, 256ull << 20, 1ull << 30, 2ull << 30 };
	unsigned nsizes = argc > 1 && !strcmp(argv[1], "--quick") ? 2 : 4;
	double v[RUNS], raw_unix, raw_tcp, raw_relay, fresh;

	for (int i = 0; i < RUNS; i++)
		v[i] = raw_unix_gbps();
	raw_unix = median(v, RUNS);
	for (int i = 0; i < RUNS; i++)
		v[i] = raw_tcp_gbps();
	raw_tcp = median(v, RUNS);
	for (int i = 0; i < RUNS; i++)
		v[i] = raw_relay_gbps();
	raw_relay = median(v, RUNS);
	for (int i = 0; i < RUNS; i++)
		v[i] = fresh_memory_gbps();
	fresh = median(v, RUNS);
	printf("raw AF_UNIX stream %.2f GB/s, raw TCP loopback %.2f GB/s, raw two-hop AF_UNIX relay "
	       "%.2f GB/s, first write of fresh memory (1 GiB, huge pages, new process) %.2f GB/s "
	       "(median of %d)\n", raw_unix, raw_tcp, raw_relay, fresh, RUNS);
	printf("workload: %u ops/s, 70%% writes of 1-8 blocks to a working set of 1/8 of the device; "
	       "guest memory %u MiB\n", OPS_PER_SEC, GUEST_MEM >> 20);
	printf("%-8s %-9s %12s %9s %7s %9s %11s %7s %8s %8s %12s %8s\n", "size", "mode",
	       "downtime_ms", "total_s", "rounds", "avg_GB/s", "drain_GB/s", "%unix", "%relay",
	       "%fresh", "guest_gap_ms", "rss_MiB");
	for (unsigned s = 0; s < nsizes; s++) {
		double dt[2] = { 0, 0 };
		for (int mode = 1; mode >= 0; mode--) {
			struct result r;
			if (run(sizes[s], mode, &r) || r.rc) {
				printf("%-8llu %s: FAILED %s\n", (unsigned long long)(sizes[s] >> 20),
				       mode ? "pre-copy" : "stop-copy", r.error);
				return 1;
			}
			dt[mode] = r.downtime_ms;
			printf("%4lluMiB %-9s %12.1f %9.2f %7u %9.2f %11.2f %6.0f%% %7.0f%% %7.0f%% "
			       "%12.1f %8.1f\n",
			       (unsigned long long)(sizes[s] >> 20), mode ? "pre-copy" : "stop-copy",
			       r.downtime_ms, r.total_s, r.rounds, r.gbps, r.drain_gbps,
			       100 * r.drain_gbps / raw_unix, 100 * r.drain_gbps / raw_relay,
			       100 * r.drain_gbps / fresh, r.guest_gap_ms, r.rss_kib / 1024.0);
		}
		printf("%4lluMiB downtime without pre-copy / with: %.1fx%s\n",
		       (unsigned long long)(sizes[s] >> 20), dt[0] / dt[1],
		       sizes[s] == (1ull << 30) ? " (target >= 5x)" : "");
	}
	return non_converging();
}
