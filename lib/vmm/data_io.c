/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "data_io.h"

int64_t data_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int data_fd_wait(int fd, short events, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? 0 : data_now_ms() + timeout_ms;

	for (;;) {
		int left = -1;
		if (timeout_ms >= 0) {
			int64_t l = deadline - data_now_ms();
			left = l < 0 ? 0 : l > INT_MAX ? INT_MAX : (int)l;
		}
		struct pollfd p = { fd, events, 0 };
		int n = poll(&p, 1, left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

void data_sigpipe_block(struct data_sigpipe *g)
{
	sigset_t pipe_set, pending;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	g->was_pending = sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old);
}

void data_sigpipe_unblock(struct data_sigpipe *g, bool epipe)
{
	if (epipe && !g->was_pending) {
		/* The write raised it for this thread: take it, so it is never delivered. */
		sigset_t pipe_set;
		struct timespec zero = { 0, 0 };
		sigemptyset(&pipe_set);
		sigaddset(&pipe_set, SIGPIPE);
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

int data_write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	const uint8_t *p = buf;
	int64_t deadline = data_now_ms() + timeout_ms;
	struct data_sigpipe g;
	int rc = 0;

	data_sigpipe_block(&g);
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int64_t left = deadline - data_now_ms();
			rc = data_fd_wait(fd, POLLOUT, left < 0 ? 0 : (int)(left > INT_MAX ? INT_MAX : left));
			if (rc)
				break;
			continue;
		}
		rc = n < 0 ? -errno : -EIO;
		break;
	}
	data_sigpipe_unblock(&g, rc == -EPIPE);
	return rc;
}
