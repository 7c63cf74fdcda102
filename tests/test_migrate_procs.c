/* SPDX-License-Identifier: MIT */
/*
 * The counter device migrates between two `devmig serve` processes: the
 * source's registers arrive intact at the destination, which runs on.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devmig/client.h"

struct proc {
	pid_t pid;
	char path[128];
	struct devmig_client *c;
};

static char dir[64];
static struct proc src, dst;

static void spawn(struct proc *p, const char *name)
{
	const char *bin = getenv("DEVMIG_BIN");

	assert_non_null(bin);
	snprintf(p->path, sizeof(p->path), "%s/%s.sock", dir, name);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		execl(bin, bin, "serve", "--device", "counter", "--socket", p->path, (char *)NULL);
		_exit(127);
	}
	/* Connect once the server listens (bounded wait, no fixed sleep). */
	char err[256];
	struct timespec t0, now, pause = { 0, 2 * 1000 * 1000 };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		p->c = devmig_client_connect(p->path, NULL, err, sizeof(err));
		if (p->c)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 10)
			fail_msg("server %s never came up: %s", name, err);
		int status;
		if (waitpid(p->pid, &status, WNOHANG) == p->pid)
			fail_msg("server %s exited early (status %d)", name, status);
		nanosleep(&pause, NULL);
	}
}

static void reap(struct proc *p)
{
	devmig_client_close(p->c);
	p->c = NULL;
	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		int status;
		waitpid(p->pid, &status, 0);
		/* SIGTERM is a clean shutdown for devmig serve. */
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		p->pid = 0;
	}
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/devmig-procs-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (src.pid > 0)
		kill(src.pid, SIGKILL), waitpid(src.pid, NULL, 0);
	if (dst.pid > 0)
		kill(dst.pid, SIGKILL), waitpid(dst.pid, NULL, 0);
	rmdir(dir);
	return 0;
}

static uint32_t reg(struct proc *p, uint64_t off)
{
	uint32_t v = 0;
	assert_int_equal(devmig_client_region_read(p->c, 0, off, &v, 4), 0);
	return v;
}

static void set_reg(struct proc *p, uint64_t off, uint32_t v)
{
	assert_int_equal(devmig_client_region_write(p->c, 0, off, &v, 4), 0);
}

static void counter_migrates_between_server_processes(void **state)
{
	(void)state;
	spawn(&src, "src");
	spawn(&dst, "dst");

	set_reg(&src, 0x00, 41);          /* COUNT += 41 */
	set_reg(&src, 0x04, 1000);        /* THRESHOLD */
	for (int i = 0; i < 4; i++)
		set_reg(&src, 0x08 + 4 * i, 0xc0de0000u + (uint32_t)i);

	/* Source: STOP_COPY and read to the short reply. */
	assert_int_equal(devmig_client_set_state(src.c, DEVMIG_STATE_STOP_COPY), 0);
	uint8_t stream[64 * 1024];
	size_t len = 0;
	for (;;) {
		ssize_t n = devmig_client_mig_read(src.c, stream + len, 1000);
		assert_true(n >= 0);
		len += (size_t)n;
		if (n < 1000)
			break;
	}

	/* Destination: RESUMING, the stream in random pieces of 1..4096 bytes. */
	assert_int_equal(devmig_client_set_state(dst.c, DEVMIG_STATE_RESUMING), 0);
	unsigned seed = 12345;
	for (size_t off = 0; off < len;) {
		size_t k = 1 + (size_t)(rand_r(&seed) % 4096);
		if (k > len - off)
			k = len - off;
		assert_int_equal(devmig_client_mig_write(dst.c, stream + off, k), 0);
		off += k;
	}
	assert_int_equal(devmig_client_set_state(dst.c, DEVMIG_STATE_RUNNING), 0);

	assert_int_equal(reg(&dst, 0x00), 41);
	assert_int_equal(reg(&dst, 0x04), 1000);
	for (int i = 0; i < 4; i++)
		assert_int_equal(reg(&dst, 0x08 + 4 * i), 0xc0de0000u + (uint32_t)i);
	/* The destination runs on: COUNT still adds. */
	set_reg(&dst, 0x00, 1);
	assert_int_equal(reg(&dst, 0x00), 42);

	/* The source goes back to RUNNING with its state. */
	assert_int_equal(devmig_client_set_state(src.c, DEVMIG_STATE_RUNNING), 0);
	assert_int_equal(reg(&src, 0x00), 41);

	reap(&src);
	reap(&dst);
}

static void a_truncated_stream_leaves_the_destination_process_unchanged(void **state)
{
	(void)state;
	spawn(&src, "src2");
	spawn(&dst, "dst2");
	set_reg(&src, 0x08, 0x5555);
	set_reg(&dst, 0x08, 0x7777);

	assert_int_equal(devmig_client_set_state(src.c, DEVMIG_STATE_STOP_COPY), 0);
	uint8_t stream[64 * 1024];
	ssize_t n = devmig_client_mig_read(src.c, stream, sizeof(stream));
	assert_true(n > 100 && n < (ssize_t)sizeof(stream));

	assert_int_equal(devmig_client_set_state(dst.c, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(devmig_client_mig_write(dst.c, stream, (size_t)n - 1), 0);
	assert_int_equal(devmig_client_set_state(dst.c, DEVMIG_STATE_RUNNING), -EINVAL);
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(dst.c, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_RESUMING);
	assert_int_equal(reg(&dst, 0x08), 0x7777); /* nothing of the source applied */
	assert_int_equal(devmig_client_reset(dst.c), 0);
	assert_int_equal(reg(&dst, 0x08), 0); /* reset, not the source's 0x5555 */

	reap(&src);
	reap(&dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(counter_migrates_between_server_processes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_truncated_stream_leaves_the_destination_process_unchanged,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
