/* SPDX-License-Identifier: MIT */
/*
 * The data_fd extension, server side: see datafd.h.
 *
 * Locks: ds->lock guards the pump's bookkeeping (what it holds, whether it
 * runs); the pump holds it while it takes a batch from the core and while it
 * makes one non-blocking write, never while it waits, so a progress query
 * sees what the pump holds and what the pipe holds at one instant. Order:
 * ds->lock, then the core's migration lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "datafd.h"

/* Stream bytes taken from the core at a time, and what a pipe holds: the
 * most an unprivileged process may ask for (fs.pipe-max-size). */
#define BATCH (1u << 20)
#define PIPE_SIZE (1u << 20)

enum want { W_RUN, W_PAUSE, W_STOP };

struct devmig_datafd {
	struct devmig_device *dev;
	enum devmig_core_session kind;
	int rd, wr; /* the server's ends: a save keeps both (rd to empty the pipe), a load rd */
	int efd;    /* wakes the pump */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	enum want want;
	/* Pauses asked for and done: each is acknowledged after its own drain
	 * (a second pause right after a resume must drain again). */
	uint64_t pause_asked, pause_done;

	/* save */
	struct iovec iov[DEVMIG_CORE_MAX_IOV];
	bool ref[DEVMIG_CORE_MAX_IOV];
	int cur, niov;     /* iov[cur..niov) is still to be written */
	uint64_t in_hand;  /* bytes of it */
	uint8_t *carry;    /* the rest of a batch a pause interrupted, copied */
	size_t carry_off, carry_len;
	uint64_t produced; /* stream bytes taken from the core */
	/* Where the initial data ends in the stream: the core said initial 0
	 * after a batch (the batch counts as initial, a slight over-count). */
	uint64_t initial_end;
	bool initial_marked;
	uint64_t last_initial; /* the last initial_bytes answered (UINT64_MAX: none yet) */
	bool idle;         /* PRE_COPY: the core had nothing more; look when asked */
	bool done;         /* the stream ended: the pipe's write end is closed */

	/* load */
	uint8_t *buf;
	bool eof;          /* the client closed its end */
};

static void wake(struct devmig_datafd *ds)
{
	uint64_t one = 1;
	ssize_t n = write(ds->efd, &one, sizeof(one));
	(void)n; /* a full counter wakes the pump as well */
}

/* Wait (unlocked) for a wake, or for events on fd (-1: none). */
static void wait_io(struct devmig_datafd *ds, int fd, short events)
{
	struct pollfd p[2] = { { ds->efd, POLLIN, 0 }, { fd, events, 0 } };
	int n = poll(p, fd >= 0 ? 2 : 1, -1);

	if (n > 0 && (p[0].revents & POLLIN)) {
		uint64_t v;
		ssize_t k = read(ds->efd, &v, sizeof(v));
		(void)k;
	}
}

static void block_sigpipe(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* The pump, lock held: acknowledge the pause asked for, and wait until it
 * is over or another is asked for. */
static void paused(struct devmig_datafd *ds)
{
	uint64_t asked = ds->pause_asked;

	ds->pause_done = asked;
	pthread_cond_broadcast(&ds->cv);
	while (ds->want == W_PAUSE && ds->pause_asked == asked)
		pthread_cond_wait(&ds->cv, &ds->lock);
}

/* ---- save ---- */

static size_t pipe_bytes(int fd)
{
	int n = 0;
	return fd >= 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0 ? (size_t)n : 0;
}

static uint64_t unread_locked(struct devmig_datafd *ds)
{
	if (ds->kind != DEVMIG_SESSION_SAVE)
		return 0;
	return pipe_bytes(ds->rd) + ds->in_hand + (ds->carry_len - ds->carry_off);
}

/* A pause with a batch half written: its segments are only valid until the
 * core's next read or state change, so the rest is copied. The carry is
 * empty whenever a batch is in hand. */
static void keep_rest(struct devmig_datafd *ds)
{
	size_t n = 0;

	for (int i = ds->cur; i < ds->niov; i++) {
		memcpy(ds->carry + n, ds->iov[i].iov_base, ds->iov[i].iov_len);
		n += ds->iov[i].iov_len;
	}
	ds->carry_off = 0;
	ds->carry_len = n;
	ds->cur = ds->niov = 0;
	ds->in_hand = 0;
}

static void advance(struct devmig_datafd *ds, size_t k)
{
	ds->in_hand -= k;
	while (k && k >= ds->iov[ds->cur].iov_len)
		k -= ds->iov[ds->cur++].iov_len;
	if (k) {
		ds->iov[ds->cur].iov_base = (uint8_t *)ds->iov[ds->cur].iov_base + k;
		ds->iov[ds->cur].iov_len -= k;
	}
	while (ds->cur < ds->niov && !ds->iov[ds->cur].iov_len)
		ds->cur++;
}

/*
 * One non-blocking write of what is due, lock held: the bytes written, 0
 * when nothing is due, -errno. Device memory a stopped device sends from
 * where it lies goes into the pipe by reference (it stays as it is until
 * the session ends, and the pipe is emptied then); the core's scratch,
 * reused by its next read, by copy.
 */
static ssize_t save_write(struct devmig_datafd *ds)
{
	ssize_t k;

	if (ds->carry_off < ds->carry_len) {
		k = write(ds->wr, ds->carry + ds->carry_off, ds->carry_len - ds->carry_off);
		if (k > 0)
			ds->carry_off += (size_t)k;
		return k < 0 ? -errno : k;
	}
	if (ds->cur == ds->niov)
		return 0;
	bool ref = ds->ref[ds->cur];
	int end = ds->cur;
	while (end < ds->niov && ds->ref[end] == ref && end - ds->cur < IOV_MAX)
		end++;
	if (ref)
		k = vmsplice(ds->wr, ds->iov + ds->cur, (unsigned long)(end - ds->cur),
			     SPLICE_F_NONBLOCK);
	else
		k = writev(ds->wr, ds->iov + ds->cur, end - ds->cur);
	if (k < 0)
		return -errno;
	advance(ds, (size_t)k);
	return k;
}

static void *save_pump(void *arg)
{
	struct devmig_datafd *ds = arg;

	block_sigpipe();
	pthread_mutex_lock(&ds->lock);
	for (;;) {
		if (ds->want != W_RUN) {
			if (ds->cur < ds->niov)
				keep_rest(ds);
			if (ds->want == W_STOP)
				break;
			paused(ds);
			continue;
		}
		if (ds->done || ds->idle) {
			pthread_mutex_unlock(&ds->lock);
			wait_io(ds, -1, 0);
			pthread_mutex_lock(&ds->lock);
			continue;
		}
		ssize_t k = save_write(ds);
		if (k > 0)
			continue;
		if (k == -EAGAIN) {
			int fd = ds->wr;
			pthread_mutex_unlock(&ds->lock);
			wait_io(ds, fd, POLLOUT);
			pthread_mutex_lock(&ds->lock);
			continue;
		}
		if (k < 0) {
			ds->done = true; /* cannot happen while we hold the read end */
			continue;
		}
		/* Nothing due: the next batch. */
		int niov = 0;
		ssize_t n = devmig_core_mig_read(ds->dev, ds->iov, DEVMIG_CORE_MAX_IOV, &niov, BATCH,
						 ds->ref);
		if (n < 0 || (n == 0 && devmig_device_state(ds->dev) == DEVMIG_STATE_STOP_COPY)) {
			/* The end of the stream: the client reads 0. A failure ends it
			 * early; its reason is the device's last error (mig_status). */
			close(ds->wr);
			ds->wr = -1;
			ds->done = true;
			continue;
		}
		if (n == 0) {
			ds->idle = true; /* PRE_COPY: nothing more for now */
			continue;
		}
		ds->cur = 0;
		ds->niov = niov;
		ds->in_hand = (uint64_t)n;
		ds->produced += (uint64_t)n;
		uint64_t ci, cd;
		if (!ds->initial_marked && !devmig_core_precopy_info(ds->dev, &ci, &cd) && !ci) {
			ds->initial_end = ds->produced;
			ds->initial_marked = true;
		}
	}
	pthread_mutex_unlock(&ds->lock);
	return NULL;
}

/* ---- load ---- */

/* Feed the core n bytes: a refusal is kept by the core (every later write
 * fails the same, status and the commit report it), so the rest is dropped. */
static void feed(struct devmig_datafd *ds, size_t n)
{
	devmig_core_mig_write(ds->dev, ds->buf, n);
}

/* Everything in the pipe when asked (what the client wrote before its
 * command), not what comes meanwhile: bounded whatever the client does. */
static void drain_load(struct devmig_datafd *ds)
{
	size_t left = pipe_bytes(ds->rd);

	while (left && !ds->eof) {
		ssize_t k = read(ds->rd, ds->buf, left < BATCH ? left : BATCH);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			ds->eof = k == 0;
			break;
		}
		feed(ds, (size_t)k);
		left -= (size_t)k;
	}
}

static void *load_pump(void *arg)
{
	struct devmig_datafd *ds = arg;

	block_sigpipe();
	pthread_mutex_lock(&ds->lock);
	for (;;) {
		if (ds->want != W_RUN) {
			drain_load(ds);
			if (ds->want == W_STOP)
				break;
			paused(ds);
			continue;
		}
		pthread_mutex_unlock(&ds->lock);
		if (ds->eof) {
			wait_io(ds, -1, 0);
		} else {
			ssize_t k = read(ds->rd, ds->buf, BATCH);
			if (k > 0)
				feed(ds, (size_t)k);
			else if (k == 0)
				ds->eof = true;
			else if (errno == EAGAIN)
				wait_io(ds, ds->rd, POLLIN);
			else if (errno != EINTR)
				ds->eof = true;
		}
		pthread_mutex_lock(&ds->lock);
	}
	pthread_mutex_unlock(&ds->lock);
	return NULL;
}

/* ---- the server thread's side ---- */

struct devmig_datafd *devmig_datafd_open(struct devmig_device *dev, enum devmig_core_session kind,
					 int *client_fd, char *why, size_t whylen)
{
	struct devmig_datafd *ds = calloc(1, sizeof(*ds));
	int p[2] = { -1, -1 };

	*client_fd = -1;
	if (!ds) {
		snprintf(why, whylen, "out of memory for the data session");
		return NULL;
	}
	ds->dev = dev;
	ds->kind = kind;
	ds->rd = ds->wr = -1;
	ds->last_initial = UINT64_MAX;
	ds->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (kind == DEVMIG_SESSION_SAVE)
		ds->carry = malloc(BATCH);
	else
		ds->buf = malloc(BATCH);
	if (ds->efd < 0 || (!ds->carry && !ds->buf) || pipe2(p, O_CLOEXEC | O_NONBLOCK)) {
		snprintf(why, whylen, "cannot make the data fd: %s", strerror(errno ? errno : ENOMEM));
		goto fail;
	}
	/* Best effort: the default 64 KiB pipe wakes the reader 16 times as often. */
	fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE);
	if (kind == DEVMIG_SESSION_SAVE) {
		ds->rd = p[0];
		ds->wr = p[1];
		*client_fd = fcntl(p[0], F_DUPFD_CLOEXEC, 0);
	} else {
		ds->rd = p[0];
		*client_fd = p[1];
	}
	p[0] = p[1] = -1;
	if (*client_fd < 0) {
		snprintf(why, whylen, "cannot make the data fd: %s", strerror(errno));
		goto fail;
	}
	pthread_mutex_init(&ds->lock, NULL);
	pthread_cond_init(&ds->cv, NULL);
	int rc = pthread_create(&ds->thread, NULL,
				kind == DEVMIG_SESSION_SAVE ? save_pump : load_pump, ds);
	if (rc) {
		snprintf(why, whylen, "cannot start the data session's thread: %s", strerror(rc));
		pthread_mutex_destroy(&ds->lock);
		pthread_cond_destroy(&ds->cv);
		goto fail;
	}
	return ds;
fail:
	if (*client_fd >= 0)
		close(*client_fd);
	*client_fd = -1;
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	if (ds->rd >= 0)
		close(ds->rd);
	if (ds->wr >= 0)
		close(ds->wr);
	if (ds->efd >= 0)
		close(ds->efd);
	free(ds->carry);
	free(ds->buf);
	free(ds);
	return NULL;
}

enum devmig_core_session devmig_datafd_kind(const struct devmig_datafd *ds)
{
	return ds->kind;
}

void devmig_datafd_pause(struct devmig_datafd *ds)
{
	pthread_mutex_lock(&ds->lock);
	ds->want = W_PAUSE;
	uint64_t asked = ++ds->pause_asked;
	pthread_cond_broadcast(&ds->cv);
	pthread_mutex_unlock(&ds->lock);
	wake(ds);
	pthread_mutex_lock(&ds->lock);
	while (ds->pause_done != asked)
		pthread_cond_wait(&ds->cv, &ds->lock);
	pthread_mutex_unlock(&ds->lock);
}

void devmig_datafd_resume(struct devmig_datafd *ds)
{
	pthread_mutex_lock(&ds->lock);
	ds->want = W_RUN;
	ds->idle = false; /* the state may have changed: look again */
	pthread_cond_broadcast(&ds->cv);
	pthread_mutex_unlock(&ds->lock);
	wake(ds);
}

void devmig_datafd_sync(struct devmig_datafd *ds)
{
	devmig_datafd_pause(ds);
	devmig_datafd_resume(ds);
}

void devmig_datafd_close(struct devmig_datafd *ds)
{
	if (!ds)
		return;
	pthread_mutex_lock(&ds->lock);
	ds->want = W_STOP;
	pthread_cond_broadcast(&ds->cv);
	pthread_mutex_unlock(&ds->lock);
	wake(ds);
	pthread_join(ds->thread, NULL);
	if (ds->wr >= 0)
		close(ds->wr);
	if (ds->kind == DEVMIG_SESSION_SAVE) {
		/*
		 * The session is over: what the client left unread goes, so no
		 * page of device memory stays referenced by the pipe once the
		 * device runs again. The client holds only the read end, so with
		 * ours closed the pipe ends (read returns 0) once empty.
		 */
		uint8_t sink[4096];
		ssize_t k;
		while ((k = read(ds->rd, sink, sizeof(sink))) > 0 || (k < 0 && errno == EINTR))
			;
	}
	close(ds->rd);
	close(ds->efd);
	pthread_mutex_destroy(&ds->lock);
	pthread_cond_destroy(&ds->cv);
	free(ds->carry);
	free(ds->buf);
	free(ds);
}

int devmig_datafd_precopy_info(struct devmig_datafd *ds, uint64_t *initial, uint64_t *dirty)
{
	pthread_mutex_lock(&ds->lock);
	int rc = devmig_core_precopy_info(ds->dev, initial, dirty);
	if (!rc) {
		/* What the pump took from the core and the client did not read is
		 * still to come: initial data as long as it lies before the end of
		 * the initial data in the stream. */
		uint64_t u = unread_locked(ds), ui = u;
		if (ds->initial_marked) {
			uint64_t consumed = ds->produced - u;
			ui = ds->initial_end > consumed ? ds->initial_end - consumed : 0;
		}
		*initial += ui;
		*dirty += u - ui;
		/* The core counts a record's payload, the pipe its framing too: a
		 * batch taken from the one to the other would seem to raise
		 * initial_bytes by its headers. It only falls (the kernel's rule);
		 * the difference is still to come, so it counts as dirty. */
		if (*initial > ds->last_initial) {
			*dirty += *initial - ds->last_initial;
			*initial = ds->last_initial;
		}
		ds->last_initial = *initial;
	}
	ds->idle = false;
	pthread_mutex_unlock(&ds->lock);
	wake(ds);
	return rc;
}

uint64_t devmig_datafd_unread(struct devmig_datafd *ds)
{
	pthread_mutex_lock(&ds->lock);
	uint64_t u = unread_locked(ds);
	pthread_mutex_unlock(&ds->lock);
	return u;
}
