/* SPDX-License-Identifier: MIT */
/*
 * Small helpers for the data fds (private to the vmm layer): waiting on a
 * descriptor with a deadline, writing one whole, and writing a pipe whose
 * reader may be gone without the SIGPIPE that would kill the embedding VMM.
 */
#ifndef DEVMIG_LIB_DATA_IO_H
#define DEVMIG_LIB_DATA_IO_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t data_now_ms(void);

/* Wait until fd has events, up to timeout_ms (< 0: no limit): 0 ready,
 * -ETIMEDOUT, or -errno. POLLERR/POLLHUP count as ready (the call says why). */
int data_fd_wait(int fd, short events, int timeout_ms);

/*
 * SIGPIPE is raised in the thread that writes a pipe or socket whose reader
 * went away: a library must not let it reach the VMM. Block it around such
 * writes; unblock drops the one the writes raised (they said EPIPE), unless
 * one was pending before.
 */
struct data_sigpipe {
	sigset_t old;
	bool was_pending;
};
void data_sigpipe_block(struct data_sigpipe *g);
void data_sigpipe_unblock(struct data_sigpipe *g, bool epipe);

/* All of buf into the non-blocking fd, waiting while it is full, up to
 * timeout_ms in all: 0, -ETIMEDOUT, -EPIPE (the reader is gone), -errno. */
int data_write_all(int fd, const void *buf, size_t len, int timeout_ms);

#endif /* DEVMIG_LIB_DATA_IO_H */
