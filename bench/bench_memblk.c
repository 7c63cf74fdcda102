/* SPDX-License-Identifier: MIT */
/*
 * memblk migration benchmark, beside the memcpy bandwidth measured in the
 * same run on the same machine:
 *   - save: STOP_COPY of a 1 GiB memblk (every chunk written by the guest),
 *     read with 1 MiB MIG_DATA_READs, with the zero-copy path (save_ref)
 *     and with the copying one (zerocopy=0);
 *   - load: the same stream written into a RESUMING destination, including
 *     the commit (RESUMING->STOP): over the data fd (the data_fd extension,
 *     devmig's client's default), and with 1 MiB MIG_DATA_WRITEs waiting
 *     for each reply (a client without it); the first load into a fresh
 *     destination process apart (its memory is new: every page faults);
 *   - peak RSS (VmHWM) of the source server process while it saves, and of
 *     a fresh destination server process while it loads.
 * Each device runs in its own forked server process, like a real device
 * would; this process is the VMM (client) and the guest. Peak RSS: after
 * the guest filled the storage, /proc/PID/clear_refs is written with 5
 * (resets VmHWM to the current RSS), then VmHWM is read after the save.
 * Every throughput figure is the median of RUNS runs.
 */
#include <errno.h>
#include <linux/vfio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#include "devices.h"
#include "devmig/client.h"
#include "devmig/server.h"
#include "memblk/memblk_guest.h"

#define RUNS 5
#define CHUNK (1u << 20)
#define DEV_SIZE (1ull << 30)
#define GIOVA 0x100000000ull
#define GMEM (4u << 20)
#define TMO 30000




static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_memblk: %s: %s\n", what, rc ? strerror(rc < 0 ? -rc : rc) : "failed");
	exit(1);
}

/* ---- a device server in a child process ---- */

struct child {
	pid_t pid;
	int ctl; /* closing it tells the child to exit */
	char path[128];
	struct devmig_client *cl;
};

/* fds of earlier children (their control pipe and client socket): a later
 * child must close its copies, or an earlier child never sees its EOF. */
static int inherited[16];
static int ninherited;

static void child_start(struct child *c, const char *dir, const char *name, const char *args)
{
	int p[2], ready[2];
	snprintf(c->path, sizeof(c->path), "%s/%s.sock", dir, name);
	if (pipe(p) || pipe(ready))
		die("pipe", errno);
	c->pid = fork();
	if (c->pid < 0)
		die("fork", errno);
	if (!c->pid) {
		char err[256], ch = 0;
		for (int i = 0; i < ninherited; i++)
			close(inherited[i]);
		close(p[1]);
		close(ready[0]);
		struct devmig_device *dev = devmig_variant_memblk.create(args, err, sizeof(err));
		struct devmig_server_config cfg = { .socket_path = c->path };
		struct devmig_server *srv = dev ? devmig_server_new(dev, &cfg, err, sizeof(err)) : NULL;
		if (!srv || devmig_server_start(srv)) {
			fprintf(stderr, "bench_memblk child: %s\n", err);
			_exit(1);
		}
		if (write(ready[1], &ch, 1) != 1)
			_exit(1);
		while (read(p[0], &ch, 1) > 0)
			;
		devmig_server_free(srv);
		devmig_variant_memblk.free(dev);
		_exit(0);
	}
	close(p[0]);
	close(ready[1]);
	char ch;
	if (read(ready[0], &ch, 1) != 1)
		die("child start", 0);
	close(ready[0]);
	c->ctl = p[1];
	char err[256];
	c->cl = devmig_client_connect(c->path, NULL, err, sizeof(err));
	if (!c->cl) {
		fprintf(stderr, "bench_memblk: %s\n", err);
		exit(1);
	}
	inherited[ninherited++] = c->ctl;
	inherited[ninherited++] = devmig_client_fd(c->cl);
}

static void child_stop(struct child *c)
{
	devmig_client_close(c->cl);
	close(c->ctl);
	waitpid(c->pid, NULL, 0);
}

/* VmRSS / VmHWM of pid in MiB. */
static double proc_mib(pid_t pid, const char *key)
{
	char path[64], line[256];
	double v = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, strlen(key))) {
			v = strtod(line + strlen(key) + 1, NULL) / 1024.0;
			break;
		}
	}
	fclose(f);
	return v;
}

static int reset_hwm(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int rc = fputs("5", f) < 0;
	return fclose(f) || rc ? -1 : 0;
}

static void set_state(struct devmig_client *c, enum devmig_state s)
{
	int rc = devmig_client_set_state(c, s);
	if (rc)
		die(devmig_state_name(s), rc);
}

/* The guest fills the whole storage through 1 MiB WRITE commands. */
static void fill(struct child *c, int memfd, uint8_t *mem)
{
	struct mbg g;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int rc = devmig_client_dma_map(c->cl, GIOVA, GMEM, DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
				       memfd, 0, NULL);
	if (!rc)
		rc = mbg_client_enable_msix(c->cl, efd);
	struct mbg_mmio io = mbg_mmio_client(c->cl);
	if (!rc)
		rc = mbg_init(&g, &io, mem, GIOVA, GMEM, efd);
	if (!rc)
		rc = mbg_setup_queues(&g, GIOVA, 64, GIOVA + 4096, 64, NULL);
	if (rc)
		die("guest setup", rc);
	for (uint64_t lba = 0; lba < DEV_SIZE / MB_BLOCK_SIZE; lba += MB_MAX_BLOCKS) {
		/* vary the data a little per command */
		memcpy(mem + CHUNK, &lba, sizeof(lba));
		rc = mbg_write(&g, lba, MB_MAX_BLOCKS, GIOVA + CHUNK, TMO);
		if (rc)
			die("guest write", rc < 0 ? rc : -EIO);
	}
	mbg_destroy(&g);
	close(efd);
}

/* One STOP_COPY; returns GB/s. out (may be NULL) receives the stream. */
static double save_run(struct child *c, uint8_t *buf, uint8_t *out, size_t *out_len)
{
	uint64_t got = 0;
	ssize_t n;
	set_state(c->cl, DEVMIG_STATE_STOP_COPY);
	double t0 = now();
	while ((n = devmig_client_mig_read(c->cl, out ? out + got : buf, CHUNK)) > 0)
		got += (uint64_t)n;
	double dt = now() - t0;
	if (n < 0)
		die("MIG_DATA_READ", (int)n);
	set_state(c->cl, DEVMIG_STATE_STOP);
	set_state(c->cl, DEVMIG_STATE_RUNNING);
	if (out_len)
		*out_len = got;
	return got / dt / 1e9;
}

/* Load the stream into cl (RESUMING -> write -> STOP). Over a data fd the
 * writes do not wait for the device: the commit does. */
static double load_run_on(struct devmig_client *cl, const uint8_t *s, size_t len)
{
	set_state(cl, DEVMIG_STATE_RESUMING);
	bool fd = devmig_client_has_ext(cl, DEVMIG_EXT_DATA_FD);
	double t0 = now();
	for (size_t off = 0; off < len; off += CHUNK) {
		size_t k = len - off < CHUNK ? len - off : CHUNK;
		int rc = fd ? devmig_client_mig_write_nowait(cl, s + off, k)
			    : devmig_client_mig_write(cl, s + off, k);
		if (rc)
			die("migration data write", rc);
	}
	set_state(cl, DEVMIG_STATE_STOP); /* validate and commit */
	double dt = now() - t0;
	return len / dt / 1e9;
}

static double load_run(struct child *c, const uint8_t *s, size_t len)
{
	return load_run_on(c->cl, s, len);
}

int main(void)
{
	char dir[] = "/tmp/devmig-bench-memblk-XXXXXX";
	double v[RUNS];

	if (!mkdtemp(dir))
		die("mkdtemp", errno);
	signal(SIGPIPE, SIG_IGN);

	/* The device servers first, while this process is small: a child
	 * forked later would share (and count in its RSS) our big buffers. */
	struct child src, srcc, dst, dstm;
	child_start(&src, dir, "src", "size=1G");
	child_start(&srcc, dir, "srcc", "size=1G,zerocopy=0");
	child_start(&dst, dir, "dst", "size=1G");
	child_start(&dstm, dir, "dstm", "size=1G");

	/* the ceiling: memcpy of 256 MiB */
	size_t mlen = 256u << 20;
	uint8_t *a = malloc(mlen), *b = malloc(mlen);
	memset(a, 1, mlen);
	memset(b, 2, mlen);
	for (int r = 0; r < RUNS; r++) {
		double t0 = now();
		memcpy(b, a, mlen);
		v[r] = mlen / (now() - t0) / 1e9;
		a[r] = b[mlen - 1 - r]; /* keep the copies observable */
	}
	double mc = median(v, RUNS);
	free(a);
	free(b);

	int memfd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, GMEM))
		die("memfd", errno);
	uint8_t *mem = mmap(NULL, GMEM, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED)
		die("mmap", errno);
	for (size_t i = 0; i < GMEM; i++)
		mem[i] = (uint8_t)(i * 2654435761u >> 13);

	uint8_t *buf = malloc(CHUNK);
	size_t slen = 0;
	uint8_t *stream = mmap(NULL, DEV_SIZE + (64u << 20), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!buf || stream == MAP_FAILED)
		die("memory", ENOMEM);

	/* save, zero-copy */
	fill(&src, memfd, mem);
	double rss_filled = proc_mib(src.pid, "VmRSS:");
	int hwm_ok = reset_hwm(src.pid) == 0;
	v[0] = save_run(&src, buf, stream, &slen);
	double hwm_save = proc_mib(src.pid, "VmHWM:");
	for (int r = 1; r < RUNS; r++)
		v[r] = save_run(&src, buf, NULL, NULL);
	double save_zc = median(v, RUNS);
	child_stop(&src);

	/* save, copying */
	fill(&srcc, memfd, mem);
	reset_hwm(srcc.pid);
	for (int r = 0; r < RUNS; r++)
		v[r] = save_run(&srcc, buf, NULL, NULL);
	double hwm_save_copy = proc_mib(srcc.pid, "VmHWM:");
	double save_cp = median(v, RUNS);
	child_stop(&srcc);

	/* load */
	set_state(dst.cl, DEVMIG_STATE_STOP);
	double rss_fresh = proc_mib(dst.pid, "VmRSS:");
	reset_hwm(dst.pid);
	v[0] = load_run(&dst, stream, slen);
	double hwm_load = proc_mib(dst.pid, "VmHWM:");
	for (int r = 1; r < RUNS; r++)
		v[r] = load_run(&dst, stream, slen);
	double hwm_load_again = proc_mib(dst.pid, "VmHWM:");
	double load_fresh = v[0];
	double load = median(v, RUNS);
	child_stop(&dst);

	/* load by messages: a client without the data_fd extension */
	char err[256];
	struct devmig_client_config nofd = { .ext = DEVMIG_EXT_ALL & ~DEVMIG_EXT_DATA_FD };
	devmig_client_close(dstm.cl); /* one client at a time: this one has no data fd */
	struct devmig_client *mcl = devmig_client_connect(dstm.path, &nofd, err, sizeof(err));
	if (!mcl)
		die(err, 0);
	set_state(mcl, DEVMIG_STATE_STOP);
	for (int r = 0; r < RUNS; r++)
		v[r] = load_run_on(mcl, stream, slen);
	double load_msg_fresh = v[0];
	double load_msg = median(v, RUNS);
	dstm.cl = mcl;
	child_stop(&dstm);

	printf("memblk 1 GiB, stream %.1f MiB; memcpy %.2f GB/s (median of %d)\n",
	       slen / 1048576.0, mc, RUNS);
	printf("save  (STOP_COPY, 1 MiB MIG_DATA_READ, zero-copy save_ref): %.2f GB/s median, "
	       "%.0f%% of memcpy\n", save_zc, 100 * save_zc / mc);
	printf("save  (STOP_COPY, 1 MiB MIG_DATA_READ, copying save):       %.2f GB/s median, "
	       "%.0f%% of memcpy\n", save_cp, 100 * save_cp / mc);
	printf("load  (RESUMING, data fd, incl. commit):                    %.2f GB/s median, "
	       "%.0f%% of memcpy; into a fresh process: %.2f GB/s, %.0f%%\n", load,
	       100 * load / mc, load_fresh, 100 * load_fresh / mc);
	printf("load  (RESUMING, 1 MiB MIG_DATA_WRITE, incl. commit):       %.2f GB/s median, "
	       "%.0f%% of memcpy; into a fresh process: %.2f GB/s, %.0f%%\n", load_msg,
	       100 * load_msg / mc, load_msg_fresh, 100 * load_msg_fresh / mc);
	if (hwm_ok) {
		printf("source server RSS: %.0f MiB with the storage filled; peak while saving "
		       "(zero-copy) %.0f MiB (+%.0f MiB), copying %.0f MiB\n",
		       rss_filled, hwm_save, hwm_save - rss_filled, hwm_save_copy);
		printf("destination server RSS: %.0f MiB fresh; peak while loading into it %.0f MiB; "
		       "peak over later loads (old storage + staging) %.0f MiB\n",
		       rss_fresh, hwm_load, hwm_load_again);
	} else {
		printf("peak RSS: /proc/PID/clear_refs not writable here; VmHWM since start: "
		       "source %.0f MiB\n", hwm_save);
	}
	printf("\ngoals (issue 17), each figure beside its ceiling from this run:\n");
	goal_at_least("memblk load incl. commit (data fd, median of 5)", load, mc, "memcpy", "GB/s",
		      25);
	goal_at_least("memblk load incl. commit, into a fresh process", load_fresh, mc, "memcpy",
		      "GB/s", 25);
	munmap(stream, DEV_SIZE + (64u << 20));
	munmap(mem, GMEM);
	close(memfd);
	free(buf);
	rmdir(dir);
	return 0;
}
