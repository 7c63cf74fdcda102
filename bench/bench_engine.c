/* SPDX-License-Identifier: MIT */
/*
 * Engine benchmark: memblk devices of 64 MiB to 2 GiB live-migrated under a
 * guest workload rewriting storage at a fixed rate, with and without
 * pre-copy: downtime, total time, data-path throughput beside raw AF_UNIX
 * and TCP-loopback streams, a two-hop relay (the shape of a local migration:
 * every byte crosses the VMM) and the first write of fresh memory (where a
 * new destination puts its state), all measured in the same run, the peak RSS of
 * the migrating process less its guest memory (the engine and the guest's
 * workload; the device servers run in processes of their own), which must
 * not grow with the device size. The same over TCP loopback to a receiver
 * (devmig_receive_from_fd in a thread: the destination's half). Each goal
 * of issue 17 ends the output, its figure beside its ceiling: met or not.
 *
 * Then the non-converging scenario (memblk_scenario.h: a guest rewriting
 * its working set faster than a capped link copies it) three ways: as a
 * VMM without devmig's extensions, with deadlines, with deadlines and
 * dirty-rate limiting: rounds, downtime, the budget, the cap used and
 * whether the budget was met, every write verified each time.
 *
 *   bench_engine [--quick]     --quick: 64 MiB and 256 MiB only, no goals
 *   bench_engine --one MiB pre|stop|tcp   one migration, its rounds shown
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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

enum mode { M_PRE, M_STOP, M_TCP }; /* TCP: stop-and-copy over TCP loopback */
static const char *const mode_name[] = { "pre-copy", "stop-copy", "stop/TCP" };

struct result {
	int rc;
	double downtime_ms, total_s, gbps, guest_gap_ms;
	double drain_gbps; /* bytes moved while the guest was paused / the pause */
	uint64_t bytes, fd_bytes;
	unsigned rounds;
	double rss_mib;    /* peak RSS of the migrating process less its guest memory */
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

/* A /proc/self/status figure in KiB. */
static long status_kib(const char *key)
{
	char line[256];
	long kib = -1;
	size_t kl = strlen(key);
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl))
			kib = strtol(line + kl, NULL, 10);
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

/* --one: each round as it ends, and the switchover, with their time (stderr). */
static bool show_rounds;

static void on_event(void *opaque, const struct devmig_engine_event *ev)
{
	(void)opaque;
	if (!show_rounds)
		return;
	if (ev->type == DEVMIG_EV_ROUND)
		fprintf(stderr, "  round %u ends at %.3f s: %.1f MiB moved, %.1f MiB estimated left\n",
			ev->round, ev->elapsed_ns / 1e9, ev->bytes / 1048576.0,
			ev->remaining / 1048576.0);
	else if (ev->type == DEVMIG_EV_SWITCHOVER)
		fprintf(stderr, "  switchover at %.3f s: %.1f MiB moved\n", ev->elapsed_ns / 1e9,
			ev->bytes / 1048576.0);
	else if (ev->type == DEVMIG_EV_DONE)
		fprintf(stderr, "  done at %.3f s\n", ev->elapsed_ns / 1e9);
}

static void side(struct devmig_client *c, struct devmig_guest_mem *gm, int *efd)
{
	/* Every page resident from the start: the RSS figure takes it off exactly. */
	memset(devmig_guest_mem_ptr(gm), 0, devmig_guest_mem_size(gm));
	devmig_client_dma_map(c, 0, devmig_guest_mem_size(gm), DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
			      devmig_guest_mem_fd(gm), 0, NULL);
	*efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	mbg_client_enable_msix(c, *efd);
}

/* The destination's half over TCP: accept one connection and receive. */
struct rx {
	int listen_fd;
	struct devmig_client *dst;
	struct devmig_guest_mem *mem;
	int rc;
	struct devmig_migration_report rep;
};

static void *rx_main(void *p)
{
	struct rx *x = p;
	struct devmig_engine_config cfg = { 0 };
	int fd = accept(x->listen_fd, NULL, NULL);
	x->rc = fd < 0 ? -errno : devmig_receive_from_fd(&cfg, fd, &x->dst, 1, x->mem, &x->rep);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int migrate_tcp(const struct devmig_engine_config *cfg, struct devmig_client *src,
		       struct devmig_client *dst, struct devmig_guest_mem *sm,
		       struct devmig_guest_mem *dm, struct devmig_migration_report *rep)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	struct rx x = { .dst = dst, .mem = dm };
	pthread_t t;
	int one = 1;

	x.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (x.listen_fd < 0 || bind(x.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(x.listen_fd, 1) || getsockname(x.listen_fd, (struct sockaddr *)&sa, &sl))
		return -errno;
	pthread_create(&t, NULL, rx_main, &x);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!rc)
		rc = devmig_migrate_to_fd(cfg, &src, 1, sm, fd, rep);
	if (rc)
		shutdown(fd, SHUT_RDWR);
	pthread_join(t, NULL);
	close(fd);
	close(x.listen_fd);
	if (!rc && x.rc) {
		snprintf(rep->error, sizeof(rep->error), "receiver: %.480s", x.rep.error);
		rc = x.rc;
	}
	return rc;
}

static void run_child(const char *dir, uint64_t size, enum mode mode, int out)
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
	const char *ops = getenv("BENCH_OPS"); /* for profiling: another rate */
	struct mbw_config wc = {
		.io = mbg_mmio_client(src), .irq_fd = sefd, .mem = sm, .write_pct = 70,
		.write_span = size / 4096 / 8,
		.max_ops_per_sec = ops ? (unsigned)atoi(ops) : OPS_PER_SEC,
	};
	struct mbw *w = mbw_new(&wc, err, sizeof(err));
	r.rc = w ? mbw_fill(w, err, sizeof(err)) : -EIO;
	if (!r.rc)
		r.rc = mbw_start(w);
	struct mbg_mmio dio = mbg_mmio_client(dst);
	if (w)
		mbw_set_destination(w, &dio, defd, dm);
	struct devmig_engine_config cfg = {
		.no_precopy = mode != M_PRE, .pause_guest = pause_cb, .resume_guest = resume_cb,
		.opaque = w, .event = on_event,
	};
	struct devmig_migration_report rep = { 0 };
	if (!r.rc)
		r.rc = mode == M_TCP ? migrate_tcp(&cfg, src, dst, sm, dm, &rep)
				     : devmig_migrate_local(&cfg, &src, &dst, 1, sm, dm, &rep);
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
	r.fd_bytes = rep.device_fd_bytes;
	r.gbps = rep.throughput / 1e9;
	r.drain_gbps = rep.downtime_ns ? rep.stop_copy_bytes / (double)rep.downtime_ns : 0;
	r.rounds = rep.rounds;
	/* Both guest memories were resident throughout (side()): what is left is
	 * the engine's, the workload's and the libraries'. */
	r.rss_mib = (status_kib("VmHWM:") - status_kib("RssShmem:")) / 1024.0;
	if (write(out, &r, sizeof(r)) != sizeof(r))
		_exit(1);
	kill(ps, SIGKILL);
	kill(pd, SIGKILL);
	waitpid(ps, NULL, 0);
	waitpid(pd, NULL, 0);
	_exit(0);
}

/* One migration in a process group of its own: whatever happens to it, no
 * process of it outlives the call. */
static int run(uint64_t size, enum mode mode, struct result *r)
{
	char dir[] = "/tmp/devmig-bench-engine-XXXXXX";
	int p[2];
	memset(r, 0, sizeof(*r));
	if (!mkdtemp(dir) || pipe(p))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		close(p[0]);
		run_child(dir, size, mode, p[1]);
	}
	pid_t pg = pid;
	setpgid(pid, pid);
	close(p[1]);
	ssize_t n = 0;
	for (;;) {
		struct pollfd pf = { p[0], POLLIN, 0 };
		if (poll(&pf, 1, 1000) > 0) {
			n = read(p[0], r, sizeof(*r));
			break;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			snprintf(r->error, sizeof(r->error), "the migrating process died");
			pid = -1;
			break;
		}
	}
	close(p[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	else
		kill(-pg, SIGKILL); /* its device servers, orphaned */
	char path[128];
	snprintf(path, sizeof(path), "%s/src.sock", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/dst.sock", dir);
	unlink(path);
	rmdir(dir);
	return n == sizeof(*r) ? 0 : -1;
}
#define REPEAT 3 /* runs of each size that goals are measured on */

/* Runs of size in mode: the median of each figure, the largest RSS. */
static int runs(uint64_t size, enum mode mode, int n, struct result *med)
{
	double dt[REPEAT], tot[REPEAT], gap[REPEAT], drain[REPEAT], gbps[REPEAT];
	double rss = 0;
	struct result r;
	for (int i = 0; i < n; i++) {
		if (run(size, mode, &r) || r.rc) {
			printf("%4lluMiB %s: FAILED %s\n", (unsigned long long)(size >> 20),
			       mode_name[mode], r.error);
			return -1;
		}
		dt[i] = r.downtime_ms;
		tot[i] = r.total_s;
		gap[i] = r.guest_gap_ms;
		drain[i] = r.drain_gbps;
		gbps[i] = r.gbps;
		if (r.rss_mib > rss)
			rss = r.rss_mib;
	}
	*med = r;
	med->downtime_ms = median(dt, n);
	med->total_s = median(tot, n);
	med->guest_gap_ms = median(gap, n);
	med->drain_gbps = median(drain, n);
	med->gbps = median(gbps, n);
	med->rss_mib = rss;
	return 0;
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
	side(src, sm, &sefd);
	side(dst, dm, &defd);
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
	bool quick = argc > 1 && !strcmp(argv[1], "--quick");
	unsigned nsizes = quick ? 2 : 4;
	double v[RUNS], raw_unix, raw_tcp, raw_relay, fresh;

	if (argc > 2 && !strcmp(argv[1], "--one")) {
		/* One migration (for a profiler): --one MiB pre|stop|tcp */
		struct result r;
		uint64_t sz = strtoull(argv[2], NULL, 0) << 20;
		enum mode m = argc > 3 && !strcmp(argv[3], "pre") ? M_PRE
			      : argc > 3 && !strcmp(argv[3], "tcp") ? M_TCP : M_STOP;
		show_rounds = true;
		if (run(sz, m, &r) || r.rc) {
			printf("FAILED %s\n", r.error);
			return 1;
		}
		printf("%llu MiB %s: downtime %.1f ms, total %.2f s, rounds %u, drain %.2f GB/s, "
		       "gap %.1f ms, engine rss %.1f MiB\n", (unsigned long long)(sz >> 20),
		       mode_name[m], r.downtime_ms, r.total_s, r.rounds, r.drain_gbps,
		       r.guest_gap_ms, r.rss_mib);
		return 0;
	}

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
	printf("ceilings (median of %d): raw AF_UNIX stream %.2f GB/s, raw TCP loopback %.2f GB/s, "
	       "raw two-hop AF_UNIX relay %.2f GB/s, first write of fresh memory (1 GiB, huge "
	       "pages, new process) %.2f GB/s\n", RUNS, raw_unix, raw_tcp, raw_relay, fresh);
	printf("workload: %u ops/s, 70%% writes of 1-8 blocks to a working set of 1/8 of the device; "
	       "guest memory %u MiB; 1 GiB and 2 GiB: median of %d runs\n", OPS_PER_SEC,
	       GUEST_MEM >> 20, REPEAT);
	printf("%-8s %-9s %12s %9s %7s %9s %11s %7s %8s %8s %12s %10s\n", "size", "mode",
	       "downtime_ms", "total_s", "rounds", "avg_GB/s", "drain_GB/s", "%unix", "%relay",
	       "%fresh", "guest_gap_ms", "engine_MiB");
	struct result res[4][3];
	double rss_max = 0, rss_min = 1e9;
	for (unsigned s = 0; s < nsizes; s++) {
		int n = sizes[s] >= (1ull << 30) ? REPEAT : 1;
		for (int m = M_PRE; m <= M_TCP; m++) {
			if (m == M_TCP && sizes[s] != (1ull << 30))
				continue;
			struct result *r = &res[s][m];
			if (runs(sizes[s], (enum mode)m, n, r))
				return 1;
			double ceil = m == M_TCP ? raw_tcp : raw_unix;
			printf("%4lluMiB %-9s %12.1f %9.2f %7u %9.2f %11.2f %6.0f%% %7.0f%% %7.0f%% "
			       "%12.1f %10.1f\n",
			       (unsigned long long)(sizes[s] >> 20), mode_name[m], r->downtime_ms,
			       r->total_s, r->rounds, r->gbps, r->drain_gbps,
			       100 * r->drain_gbps / ceil, 100 * r->drain_gbps / raw_relay,
			       100 * r->drain_gbps / fresh, r->guest_gap_ms, r->rss_mib);
			if (r->rss_mib > rss_max)
				rss_max = r->rss_mib;
			if (r->rss_mib < rss_min)
				rss_min = r->rss_mib;
		}
	}
	printf("(%%unix: of raw AF_UNIX, or of raw TCP for stop/TCP)\n");
	if (quick)
		return non_converging();
	/* The largest state: for the engine's memory only (it must not grow). */
	struct result big;
	if (runs(4ull << 30, M_STOP, 1, &big))
		return 1;
	printf("4096MiB stop-copy: downtime %.1f ms, drain %.2f GB/s, engine %.1f MiB\n",
	       big.downtime_ms, big.drain_gbps, big.rss_mib);
	if (big.rss_mib > rss_max)
		rss_max = big.rss_mib;
	if (big.rss_mib < rss_min)
		rss_min = big.rss_mib;

	printf("\n");
	int nc = non_converging();

	printf("\ngoals (issue 17), each figure beside its ceiling from this run:\n");
	double local_ceil = raw_unix < fresh ? raw_unix : fresh;
	for (unsigned s = 2; s < 4; s++) {
		char what[96];
		snprintf(what, sizeof(what), "local stop-copy drain, %llu GiB",
			 (unsigned long long)(sizes[s] >> 30));
		goal_at_least(what, res[s][M_STOP].drain_gbps, local_ceil,
			      raw_unix < fresh ? "raw AF_UNIX" : "fresh memory", "GB/s", 90);
	}
	goal_at_least("stop-copy drain over TCP loopback, 1 GiB", res[2][M_TCP].drain_gbps, raw_tcp,
		      "raw TCP", "GB/s", 80);
	goal_at_most("engine peak RSS (less guest memory), 64 MiB..4 GiB", rss_max, 64, "MiB");
	printf("     (smallest %.1f MiB, largest %.1f MiB: %s)\n", rss_min, rss_max,
	       rss_max - rss_min <= 8 ? "flat" : "grows");
	goal_at_most("pre-copy total / stop-copy total, 1 GiB",
		     res[2][M_PRE].total_s / res[2][M_STOP].total_s, 1.5, "x");
	goal_at_most("guest's longest I/O gap during pre-copy, 1 GiB", res[2][M_PRE].guest_gap_ms,
		     20, "ms");
	/* "No worse than today": pre-copy downtime at 1 GiB was 0.5-0.9 ms before
	 * the data fd (commit 8047517, this machine); 1 ms is that, rounded up. */
	goal_at_most("pre-copy downtime, 1 GiB (before: 0.5-0.9 ms)", res[2][M_PRE].downtime_ms, 1.0,
		     "ms");
	return nc;
}
