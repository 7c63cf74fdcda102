/* SPDX-License-Identifier: MIT */
/*
 * The vfio-user server: accepts one client at a time on an AF_UNIX socket,
 * decodes each message with the codec and answers it through the core.
 *
 * The server thread reads and executes commands in order (the protocol's
 * model) with no hand-off on the hot path. Device worker threads may send
 * DMA_READ/DMA_WRITE commands to the client at the same time: sends are
 * serialised by send_lock and the replies, read by the server thread, are
 * handed to the waiting worker. A state change or reset, which may wait for
 * such a worker, runs in a helper thread while the server thread goes on
 * reading those replies (only when fd-less mappings make them possible).
 *
 * No client can hang the server: every send has a deadline for the whole
 * message, a message once begun must arrive within the I/O timeout, a client
 * has that long to send VERSION, and a second client is told EBUSY at once
 * instead of waiting behind the first. Only eventfds become interrupts and
 * DMA mappings are checked against their file (the core's rules).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "datafd.h"
#include "devmig/compat.h"
#include "devmig/server.h"
#include "msgio.h"
#include "unix_socket.h"

#define REPLY_HEAD_MAX 4096u
#define DMA_REPLY_TIMEOUT_S 10
#define DEFAULT_IO_TIMEOUT_MS 10000u
#define MAX_REFUSED 8          /* refused clients kept open until they read EBUSY */
#define REFUSED_LINGER_MS 1000u

/* A worker thread waiting for the client's reply to its DMA_READ/WRITE. */
struct dma_waiter {
	struct dma_waiter *next;
	uint16_t msg_id;
	bool done;
	int error;      /* errno from the reply, or ours */
	void *buf;      /* DMA_READ: where the data goes */
	size_t len;
};

struct devmig_server {
	struct devmig_device *dev;
	struct devmig_server_config cfg;
	char *path;
	struct devmig_unix_listener listener; /* only its own socket file is removed */
	pthread_t thread;
	bool thread_started;
	atomic_bool stopping;

	/* The current client (one at a time). */
	pthread_mutex_t conn_lock;   /* guards sock, peer caps, waiters */
	pthread_cond_t conn_cv;
	int sock;
	struct devmig_caps peer;     /* what the client can receive */
	uint32_t ext;                /* extensions the client asked for */
	bool negotiated;
	uint16_t next_dma_id;
	struct dma_waiter *waiters;
	pthread_mutex_t send_lock;
	/* The data_fd extension: the session's pipe and pump (server thread only). */
	struct devmig_datafd *ds;

	/* The server thread's reader, and a command that arrived while a state
	 * change ran in a helper thread: served next, before reading on. */
	struct devmig_msg_reader *rd;
	struct devmig_rx held;
	bool have_held;
	/* Clients told EBUSY, kept open a moment so their VERSION does not meet
	 * a closed socket before they read the answer. */
	struct {
		int fd;
		uint64_t until_ms;
	} refused[MAX_REFUSED];
	unsigned nrefused;

	struct devmig_wire_limits lim;
	uint8_t *data;               /* reply data: region reads, migration data, bitmaps */
	size_t data_cap;
	uint8_t *zeros;              /* padding of MIG_DATA_READ replies: max_data_xfer_size zeros */
	uint8_t head[REPLY_HEAD_MAX];

	/* Read from any thread by devmig_server_get_stats. */
	_Atomic uint64_t connections, messages, errors_replied, disconnects_bad;
};

static void vlog(struct devmig_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void vlog(struct devmig_server *s, const char *fmt, ...)
{
	if (!s->cfg.verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "devmig server %s: ", s->path);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- sending ---- */

/* A client that stops reading costs at most the I/O timeout per message. */
static int send_locked_iov(struct devmig_server *s, int sock, struct iovec *iov, int n,
			   const int *fds, unsigned nfds)
{
	pthread_mutex_lock(&s->send_lock);
	int rc = devmig_msg_send_timed(sock, iov, n, fds, nfds, (int)s->cfg.io_timeout_ms);
	pthread_mutex_unlock(&s->send_lock);
	return rc;
}

/* Encode m (head into s->head, bulk data sent from where it lies) and send. */
static int send_msg(struct devmig_server *s, int sock, const struct devmig_msg *m, const int *fds,
		    unsigned nfds)
{
	const void *tail;
	size_t tail_len;
	enum devmig_wire_err err;
	size_t n = devmig_encode_head(s->head, sizeof(s->head), m, &tail, &tail_len, &err);
	if (!n)
		return -devmig_wire_errno(err);
	struct iovec iov[2] = { { s->head, n }, { (void *)tail, tail_len } };
	return send_locked_iov(s, sock, iov, tail_len ? 2 : 1, fds, nfds);
}

static int send_error(struct devmig_server *s, int sock, const struct devmig_hdr *req, int error_no)
{
	struct devmig_hdr h;
	if (req->flags & DEVMIG_HDR_NO_REPLY)
		return 0;
	devmig_encode_error_reply(&h, req, error_no);
	atomic_fetch_add(&s->errors_replied, 1);
	struct iovec iov = { &h, sizeof(h) };
	return send_locked_iov(s, sock, &iov, 1, NULL, 0);
}

/* Handlers return 0 when replied, a positive errno to reply with, -1 when the send failed. */
static int sent(int send_rc)
{
	return send_rc ? -1 : 0;
}

static void reply_init(struct devmig_msg *r, const struct devmig_hdr *req)
{
	memset(r, 0, sizeof(*r));
	r->hdr.msg_id = req->msg_id;
	r->hdr.cmd = req->cmd;
	r->hdr.flags = DEVMIG_HDR_TYPE_REPLY;
}

/* ---- DMA through messages (fd-less mappings) ---- */

static int dma_xfer_one(struct devmig_server *s, bool is_write, uint64_t iova, void *buf,
			size_t len)
{
	struct dma_waiter w = { .buf = buf, .len = len };
	struct devmig_msg m;

	pthread_mutex_lock(&s->conn_lock);
	int sock = s->sock;
	if (sock < 0) {
		pthread_mutex_unlock(&s->conn_lock);
		return -ENOTCONN;
	}
	w.msg_id = s->next_dma_id++;
	w.next = s->waiters;
	s->waiters = &w;
	pthread_mutex_unlock(&s->conn_lock);

	memset(&m, 0, sizeof(m));
	m.hdr.msg_id = w.msg_id;
	m.hdr.cmd = is_write ? DEVMIG_CMD_DMA_WRITE : DEVMIG_CMD_DMA_READ;
	m.hdr.flags = DEVMIG_HDR_TYPE_COMMAND;
	m.u.dma.acc.addr = iova;
	m.u.dma.acc.count = len;
	m.u.dma.data = is_write ? buf : NULL;

	/* Encode into a private head: s->head belongs to the server thread. */
	uint8_t head[64];
	const void *tail;
	size_t tail_len;
	enum devmig_wire_err err;
	size_t n = devmig_encode_head(head, sizeof(head), &m, &tail, &tail_len, &err);
	int rc = n ? 0 : -devmig_wire_errno(err);
	if (!rc) {
		struct iovec iov[2] = { { head, n }, { (void *)tail, tail_len } };
		rc = send_locked_iov(s, sock, iov, tail_len ? 2 : 1, NULL, 0);
	}

	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline); /* conn_cv waits on CLOCK_MONOTONIC */
	deadline.tv_sec += DMA_REPLY_TIMEOUT_S;
	pthread_mutex_lock(&s->conn_lock);
	while (!rc && !w.done) {
		if (pthread_cond_timedwait(&s->conn_cv, &s->conn_lock, &deadline) == ETIMEDOUT)
			rc = -ETIMEDOUT;
	}
	if (!rc)
		rc = w.error ? -w.error : 0;
	/* Unlink ourselves if the reply never came. */
	for (struct dma_waiter **p = &s->waiters; *p; p = &(*p)->next) {
		if (*p == &w) {
			*p = w.next;
			break;
		}
	}
	pthread_mutex_unlock(&s->conn_lock);
	return rc;
}

static int dma_xfer(void *opaque, bool is_write, uint64_t iova, void *buf, size_t len)
{
	struct devmig_server *s = opaque;

	while (len) {
		pthread_mutex_lock(&s->conn_lock);
		size_t chunk = s->peer.max_data_xfer_size;
		pthread_mutex_unlock(&s->conn_lock);
		if (chunk > len)
			chunk = len;
		int rc = dma_xfer_one(s, is_write, iova, buf, chunk);
		if (rc)
			return rc;
		iova += chunk;
		buf = (uint8_t *)buf + chunk;
		len -= chunk;
	}
	return 0;
}

/* A reply from the client to one of our DMA commands: wake its waiter. */
static void route_reply(struct devmig_server *s, const struct devmig_msg *m)
{
	pthread_mutex_lock(&s->conn_lock);
	for (struct dma_waiter *w = s->waiters; w; w = w->next) {
		if (w->msg_id != m->hdr.msg_id || w->done)
			continue;
		if (m->hdr.flags & DEVMIG_HDR_ERROR) {
			w->error = m->hdr.error_no ? (int)m->hdr.error_no : EIO;
		} else if (m->u.dma.acc.count != w->len) {
			w->error = EIO;
		} else if (m->hdr.cmd == DEVMIG_CMD_DMA_READ) {
			memcpy(w->buf, m->u.dma.data, w->len);
		}
		w->done = true;
		pthread_cond_broadcast(&s->conn_cv);
		break;
	}
	pthread_mutex_unlock(&s->conn_lock);
}

/* Every waiting worker's DMA fails: the client is gone. */
static void fail_waiters(struct devmig_server *s, int error)
{
	pthread_mutex_lock(&s->conn_lock);
	for (struct dma_waiter *w = s->waiters; w; w = w->next) {
		if (!w->done) {
			w->done = true;
			w->error = error;
		}
	}
	pthread_cond_broadcast(&s->conn_cv);
	pthread_mutex_unlock(&s->conn_lock);
}

/* ---- state changes and resets, which may wait for device workers ---- */

struct blocking_op {
	struct devmig_server *s;
	bool reset;                  /* DEVICE_RESET, else a state change to state */
	uint32_t state;
	enum devmig_state now;
	int rc;
	int done_fd;                 /* an eventfd written when it is over */
	char why[256];
};

static void blocking_op_run(struct blocking_op *op)
{
	if (op->reset)
		devmig_core_reset(op->s->dev);
	else
		op->rc = devmig_core_set_state(op->s->dev, op->state, &op->now, op->why,
					       sizeof(op->why));
}

static void *blocking_op_thread(void *arg)
{
	struct blocking_op *op = arg;
	uint64_t one = 1;

	blocking_op_run(op);
	if (write(op->done_fd, &one, sizeof(one)) < 0) {
		/* An eventfd of ours cannot refuse one increment. */
	}
	return NULL;
}

/*
 * Run op. A worker that op waits for may itself wait for the client's reply
 * to a DMA command (fd-less mappings), and only this thread reads replies:
 * then op runs in a helper thread while this one routes replies. The first
 * command that arrives meanwhile is held and served next (the client is
 * waiting for op's answer; commands it sent after are read after it).
 * Returns -1 if the connection broke meanwhile, else 0.
 */
static int run_blocking(struct devmig_server *s, int sock, struct blocking_op *op)
{
	pthread_t t;

	op->s = s;
	if (!devmig_dma_has_fdless(devmig_core_dma(s->dev)) || s->have_held) {
		blocking_op_run(op);
		return 0;
	}
	op->done_fd = eventfd(0, EFD_CLOEXEC);
	if (op->done_fd < 0 || pthread_create(&t, NULL, blocking_op_thread, op)) {
		if (op->done_fd >= 0)
			close(op->done_fd);
		blocking_op_run(op);
		return 0;
	}
	bool alive = true;
	for (;;) {
		bool can_read = alive && !s->have_held;
		bool buffered = can_read && devmig_msg_reader_buffered(s->rd);
		struct pollfd pf[2] = { { op->done_fd, POLLIN, 0 }, { sock, POLLIN, 0 } };
		int k = poll(pf, can_read ? 2 : 1, buffered ? 0 : -1);
		if (k < 0 && errno != EINTR)
			break; /* cannot happen with valid fds; join below waits anyway */
		if (k > 0 && (pf[0].revents & POLLIN))
			break;
		if (!can_read || !(buffered || (k > 0 && pf[1].revents)))
			continue;
		struct devmig_rx rx;
		int rc = devmig_msg_recv(s->rd, &s->lim, &rx);
		if (rc <= 0) {
			alive = false;
			fail_waiters(s, ENOTCONN);
			continue;
		}
		struct devmig_msg m;
		if (!rx.skipped && !devmig_decode(rx.msg, rx.len, rx.nfds, &s->lim, &m) &&
		    (m.hdr.flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_REPLY) {
			route_reply(s, &m);
			devmig_rx_close_fds(&rx);
			continue;
		}
		s->held = rx;
		s->have_held = true;
	}
	pthread_join(t, NULL);
	close(op->done_fd);
	return alive ? 0 : -1;
}

/* ---- command handlers: each returns 0 after replying, or a positive errno ---- */

static int handle_version(struct devmig_server *s, int sock, const struct devmig_msg *m)
{
	struct devmig_caps proposed, supported, reply;
	enum devmig_wire_err err;

	if (s->negotiated)
		return EINVAL; /* VERSION is the first message, once */
	if (m->u.version.v.major != DEVMIG_VFIO_USER_MAJOR)
		return ENOTSUP;
	err = devmig_caps_parse(m->u.version.json, m->u.version.json_len, &proposed);
	if (err)
		return devmig_wire_errno(err);

	devmig_caps_default(&supported);
	supported.max_msg_fds = DEVMIG_MSGIO_MAX_FDS;
	supported.max_data_xfer_size = s->cfg.max_data_xfer_size;
	supported.write_multiple = true;
	supported.ext = DEVMIG_EXT_ALL;
	/* A cap is offered only by a device that honours it. */
	if (!devmig_core_dirty_rate_supported(s->dev))
		supported.ext &= ~DEVMIG_EXT_DIRTY_RATE;
	/* A migratable device says so; its dirty bitmaps come in our largest message. */
	supported.migration = devmig_core_mig_caps(s->dev) != 0;
	supported.mig_pgsize = DEVMIG_MIN_PAGE_SIZE;
	supported.mig_max_bitmap_size = s->data_cap < DEVMIG_DEFAULT_MAX_BITMAP_SIZE
						? s->data_cap
						: DEVMIG_DEFAULT_MAX_BITMAP_SIZE;
	err = devmig_caps_negotiate(&proposed, &supported, &reply);
	if (err)
		return devmig_wire_errno(err);

	char json[512];
	size_t jl = devmig_caps_format(&reply, json, sizeof(json));
	if (!jl)
		return EINVAL;

	struct devmig_msg r;
	reply_init(&r, &m->hdr);
	r.u.version.v.major = DEVMIG_VFIO_USER_MAJOR;
	r.u.version.v.minor = m->u.version.v.minor < DEVMIG_VFIO_USER_MINOR
				      ? m->u.version.v.minor
				      : DEVMIG_VFIO_USER_MINOR;
	r.u.version.json = json;
	r.u.version.json_len = jl;

	pthread_mutex_lock(&s->conn_lock);
	s->peer = proposed;
	s->ext = reply.ext;
	s->negotiated = true;
	pthread_mutex_unlock(&s->conn_lock);
	if (m->hdr.flags & DEVMIG_HDR_NO_REPLY)
		return 0;
	return sent(send_msg(s, sock, &r, NULL, 0));
}

static int handle_region_info(struct devmig_server *s, int sock, const struct devmig_msg *m)
{
	uint8_t caps[512];
	size_t caps_len = 0;
	int fd = -1;
	struct devmig_msg r;

	reply_init(&r, &m->hdr);
	int rc = devmig_core_region_info(s->dev, m->u.region_info.info.index, &r.u.region_info.info,
					 caps, sizeof(caps), &caps_len, &fd);
	if (rc)
		return -rc;
	struct devmig_region_info *info = &r.u.region_info.info;
	info->index = m->u.region_info.info.index;
	info->argsz = (uint32_t)(sizeof(*info) + caps_len);
	if (caps_len && m->u.region_info.info.argsz >= info->argsz) {
		info->flags |= 1u << 3; /* VFIO_REGION_INFO_FLAG_CAPS */
		info->cap_offset = sizeof(*info);
		r.u.region_info.caps = caps;
		r.u.region_info.caps_len = caps_len;
	} else if (caps_len) {
		/* The client's buffer is too small: argsz tells it the size to
		 * retry with. No CAPS flag without its offset (QEMU's vfio-user
		 * client refuses one), and the fd goes with the whole reply only. */
		fd = -1;
	}
	if (m->hdr.flags & DEVMIG_HDR_NO_REPLY)
		return 0;
	return sent(send_msg(s, sock, &r, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0));
}

/*
 * The answer to a SET or PROBE: the request's argsz, flags and data as it
 * came (extra bytes included). page_size: DMA_LOGGING_START's chosen page
 * size, written over the request's.
 */
static int send_echo(struct devmig_server *s, int sock, struct devmig_msg *r,
		     const struct devmig_msg *m, const uint64_t *page_size)
{
	size_t len = m->u.feature.data_len;

	r->u.feature.f = m->u.feature.f;
	r->u.feature.data = m->u.feature.data;
	r->u.feature.data_len = len;
	if (page_size && len >= sizeof(*page_size)) {
		if (len > s->data_cap)
			return -E2BIG;
		memcpy(s->data, m->u.feature.data, len);
		memcpy(s->data, page_size, sizeof(*page_size)); /* ctl.page_size is first */
		r->u.feature.data = s->data;
	}
	return send_msg(s, sock, r, NULL, 0);
}

/*
 * With the data_fd extension the server pumps a session's data through a
 * pipe. The pump stops while the core's session changes (a load's pipe is
 * fed to the core first: the arc sees everything written before it).
 * datafd_after: a session the request ended closes its pipe; one it opened
 * gets a new pipe, whose other end (*fd) goes with the reply; one it kept
 * (PRE_COPY -> STOP_COPY) keeps its pipe. Only a request's last arc opens a
 * session, so a refused request never has an fd to send.
 */
static void datafd_before(struct devmig_server *s, uint64_t *gen)
{
	if (s->ds)
		devmig_datafd_pause(s->ds);
	devmig_core_session(s->dev, gen);
}

static int datafd_after(struct devmig_server *s, uint64_t gen0, int *fd)
{
	uint64_t gen1;

	*fd = -1;
	enum devmig_core_session kind = devmig_core_session(s->dev, &gen1);
	if (s->ds && (kind != devmig_datafd_kind(s->ds) || gen1 != gen0)) {
		devmig_datafd_close(s->ds);
		s->ds = NULL;
	}
	if (kind != DEVMIG_SESSION_NONE && !s->ds) {
		char why[160];
		s->ds = devmig_datafd_open(s->dev, kind, fd, why, sizeof(why));
		if (!s->ds) {
			/* The device is in its new state without a way to move its data:
			 * the client sees the error and resets or leaves the state. */
			vlog(s, "%s", why);
			return ENOMEM;
		}
	} else if (s->ds) {
		devmig_datafd_resume(s->ds);
	}
	return 0;
}

/* SET MIG_DEVICE_STATE with the data_fd extension. */
static int set_state_datafd(struct devmig_server *s, int sock, struct devmig_msg *r,
			    const struct devmig_msg *m)
{
	uint64_t gen0;
	int fd = -1;

	datafd_before(s, &gen0);
	struct blocking_op op = { .state = m->u.feature.u.mig_state.device_state };
	if (run_blocking(s, sock, &op))
		return -1; /* the client left meanwhile: its session goes with it */
	int err = datafd_after(s, gen0, &fd);
	if (op.rc || err) {
		if (op.rc)
			vlog(s, "state change to %s refused: %s",
			     devmig_state_name(m->u.feature.u.mig_state.device_state), op.why);
		if (fd >= 0)
			close(fd);
		return op.rc ? -op.rc : err;
	}
	/* The request echoed, data_fd saying whether a descriptor comes with it. */
	size_t len = m->u.feature.data_len;
	if (len > s->data_cap) {
		if (fd >= 0)
			close(fd);
		return E2BIG;
	}
	struct devmig_feature_mig_state st = m->u.feature.u.mig_state;
	st.data_fd = fd >= 0 ? 0 : DEVMIG_DATA_FD_NONE;
	memcpy(s->data, m->u.feature.data, len);
	memcpy(s->data, &st, sizeof(st)); /* the decoder saw at least this much */
	r->u.feature.f = m->u.feature.f;
	r->u.feature.data = s->data;
	r->u.feature.data_len = len;
	int rc = send_msg(s, sock, r, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
	if (fd >= 0)
		close(fd); /* the client has its own now */
	return sent(rc);
}

/*
 * SET MIG_STATE_DEADLINE: the state change within the deadline. The reply
 * is the outcome; a refusal (ETIME) is an error reply carrying it too. With
 * the data_fd extension a session the change opened sends its fd with it.
 */
static int handle_deadline(struct devmig_server *s, int sock, const struct devmig_msg *m,
			   struct devmig_msg *r)
{
	const struct devmig_feature_mig_deadline *req = &m->u.feature.u.deadline;
	const bool datafd = s->ext & DEVMIG_EXT_DATA_FD;
	uint64_t start = devmig_core_now_ns();
	struct devmig_core_deadline out;
	enum devmig_state now;
	uint64_t gen0 = 0;
	int fd = -1;
	char why[256];

	if (datafd)
		datafd_before(s, &gen0);
	int rc = devmig_core_set_state_deadline(s->dev, req->device_state, start, req->deadline_ns,
						&now, &out, why, sizeof(why));
	int err = datafd ? datafd_after(s, gen0, &fd) : 0;
	if (rc && rc != -ETIME) {
		vlog(s, "state change to %s refused: %s", devmig_state_name(req->device_state), why);
		if (fd >= 0)
			close(fd);
		return -rc;
	}
	if (err) {
		if (fd >= 0)
			close(fd);
		return err;
	}
	if (rc)
		vlog(s, "%s", why);
	struct devmig_feature_mig_deadline *dl = &r->u.feature.u.deadline;
	memset(dl, 0, sizeof(*dl));
	dl->device_state = now;
	dl->flags = out.flags;
	dl->deadline_ns = req->deadline_ns;
	dl->estimate_ns = out.estimate_ns;
	dl->elapsed_ns = out.elapsed_ns;
	dl->overrun_ns = out.overrun_ns;
	if (fd >= 0)
		dl->flags |= DEVMIG_DEADLINE_DATA_FD;
	r->u.feature.data = NULL;
	r->u.feature.data_len = 0;
	r->u.feature.f.argsz = (uint32_t)(sizeof(struct devmig_feature) + sizeof(*dl));
	if (!rc) {
		int sr = send_msg(s, sock, r, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
		if (fd >= 0)
			close(fd); /* the client has its own now */
		return sent(sr);
	}
	if (fd >= 0)
		close(fd); /* never: a refused request opened no session */
	/* The refusal: the same payload under an error header. */
	if (m->hdr.flags & DEVMIG_HDR_NO_REPLY)
		return 0;
	const void *tail;
	size_t tail_len;
	enum devmig_wire_err werr;
	size_t n = devmig_encode_head(s->head, sizeof(s->head), r, &tail, &tail_len, &werr);
	if (!n || tail_len)
		return ETIME;
	struct devmig_hdr h;
	memcpy(&h, s->head, sizeof(h));
	h.flags |= DEVMIG_HDR_ERROR;
	h.error_no = ETIME;
	memcpy(s->head, &h, sizeof(h));
	atomic_fetch_add(&s->errors_replied, 1);
	struct iovec iov = { s->head, n };
	return sent(send_locked_iov(s, sock, &iov, 1, NULL, 0));
}

static int handle_feature(struct devmig_server *s, int sock, const struct devmig_msg *m)
{
	const uint32_t flags = m->u.feature.f.flags;
	const uint32_t index = m->u.feature.index;
	const bool probe = flags & DEVMIG_FEATURE_PROBE;
	const bool get = flags & DEVMIG_FEATURE_GET;
	const uint64_t caps = devmig_core_mig_caps(s->dev);
	struct devmig_dma *dma = devmig_core_dma(s->dev);
	struct devmig_msg r;
	size_t data_len = 0; /* feature data after the header, for argsz */
	size_t tail_len = 0;

	/* Which features this device answers (migration ones only if migratable). */
	bool supported;
	switch (index) {
	case DEVMIG_FEATURE_MIGRATION:
	case DEVMIG_FEATURE_MIG_DEVICE_STATE:
	case DEVMIG_FEATURE_MIG_DATA_SIZE:
		supported = caps != 0;
		break;
	case DEVMIG_FEATURE_PRECOPY_INFO:
		supported = (caps & DEVMIG_MIG_PRE_COPY) && (s->ext & DEVMIG_EXT_PRECOPY_INFO);
		break;
	case DEVMIG_FEATURE_MIG_STATUS:
		supported = caps && (s->ext & DEVMIG_EXT_MIG_STATUS);
		break;
	case DEVMIG_FEATURE_COMPAT:
		supported = caps && (s->ext & DEVMIG_EXT_COMPAT);
		break;
	case DEVMIG_FEATURE_MIG_STATE_DEADLINE:
	case DEVMIG_FEATURE_ARC_ESTIMATES:
		supported = caps && (s->ext & DEVMIG_EXT_DEADLINE);
		break;
	case DEVMIG_FEATURE_DIRTY_RATE:
		supported = (s->ext & DEVMIG_EXT_DIRTY_RATE) && devmig_core_dirty_rate_supported(s->dev);
		break;
	default:
		supported = true; /* DMA logging: the core's, for every device */
	}
	if (!supported)
		return ENOTTY;

	reply_init(&r, &m->hdr);
	r.u.feature.f = m->u.feature.f;
	r.u.feature.index = index;
	r.u.feature.u = m->u.feature.u;

	if (probe) {
		/* PROBE and SET answer with the request echoed, extra data included:
		 * libvfio-user's client reads back exactly what it sent. */
		return sent(send_echo(s, sock, &r, m, NULL));
	} else {
		switch (index) {
		case DEVMIG_FEATURE_MIGRATION: {
			r.u.feature.u.migration.flags = caps;
			data_len = 8;
			break;
		}
		case DEVMIG_FEATURE_MIG_DEVICE_STATE: {
			struct devmig_feature_mig_state st = { 0, 0 };
			if (get) {
				st.device_state = devmig_device_state(s->dev);
			} else if (s->ext & DEVMIG_EXT_DATA_FD) {
				return set_state_datafd(s, sock, &r, m);
			} else {
				struct blocking_op op = {
					.state = m->u.feature.u.mig_state.device_state,
				};
				if (run_blocking(s, sock, &op))
					return -1; /* the client left meanwhile */
				if (op.rc) {
					vlog(s, "state change to %s refused: %s",
					     devmig_state_name(op.state), op.why);
					return -op.rc;
				}
				return sent(send_echo(s, sock, &r, m, NULL));
			}
			r.u.feature.u.mig_state = st;
			data_len = sizeof(st);
			break;
		}
		case DEVMIG_FEATURE_MIG_DATA_SIZE: {
			uint64_t bytes;
			int rc = devmig_core_stop_copy_size(s->dev, &bytes);
			if (rc)
				return -rc;
			if (s->ds) /* produced, not read yet: still to come */
				bytes += devmig_datafd_unread(s->ds);
			r.u.feature.u.data_size.stop_copy_length = bytes;
			data_len = 8;
			break;
		}
		case DEVMIG_FEATURE_PRECOPY_INFO: {
			uint64_t initial, dirty;
			int rc = s->ds ? devmig_datafd_precopy_info(s->ds, &initial, &dirty)
				       : devmig_core_precopy_info(s->dev, &initial, &dirty);
			if (rc)
				return -rc;
			struct devmig_feature_precopy_info pi = { initial, dirty };
			r.u.feature.u.precopy = pi;
			data_len = sizeof(pi);
			break;
		}
		case DEVMIG_FEATURE_MIG_STATUS: {
			struct devmig_feature_mig_status *st = &r.u.feature.u.mig_status;
			uint64_t bytes;
			int load_error;
			memset(st, 0, sizeof(*st));
			if (s->ds) /* what was written so far counts */
				devmig_datafd_sync(s->ds);
			devmig_core_mig_status(s->dev, &bytes, &load_error);
			st->bytes_loaded = bytes;
			st->load_error = load_error;
			devmig_core_last_error(s->dev, st->reason, sizeof(st->reason));
			data_len = sizeof(*st);
			break;
		}
		case DEVMIG_FEATURE_COMPAT: {
			struct devmig_compat_info ci;
			struct devmig_feature_compat *fc = &r.u.feature.u.compat;
			devmig_core_compat_info(s->dev, &ci);
			memset(fc, 0, sizeof(*fc));
			memcpy(fc->version, ci.version, sizeof(fc->version));
			fc->naccepts = ci.naccepts;
			memcpy(fc->accepts, ci.accepts, sizeof(fc->accepts));
			fc->config_fingerprint = ci.config_fingerprint;
			fc->caps = ci.caps;
			data_len = sizeof(*fc);
			break;
		}
		case DEVMIG_FEATURE_MIG_STATE_DEADLINE:
			return handle_deadline(s, sock, m, &r);
		case DEVMIG_FEATURE_ARC_ESTIMATES:
			devmig_core_arc_estimates(s->dev, &r.u.feature.u.estimates);
			data_len = sizeof(r.u.feature.u.estimates);
			break;
		case DEVMIG_FEATURE_DIRTY_RATE:
			if (!get) {
				devmig_core_set_dirty_rate(s->dev, m->u.feature.u.dirty_rate.cap);
				return sent(send_echo(s, sock, &r, m, NULL));
			}
			devmig_core_dirty_rate(s->dev, &r.u.feature.u.dirty_rate);
			data_len = sizeof(r.u.feature.u.dirty_rate);
			break;
		case DEVMIG_FEATURE_DMA_LOGGING_START: {
			struct devmig_feature_dma_logging_control ctl = m->u.feature.u.log_start.ctl;
			uint32_t n = ctl.num_ranges;
			struct devmig_dma_logging_range *ranges = NULL;
			if (n) {
				ranges = calloc(n, sizeof(*ranges));
				if (!ranges)
					return ENOMEM;
				for (uint32_t i = 0; i < n; i++)
					devmig_log_range(m, i, &ranges[i]);
			}
			uint64_t page_size = ctl.page_size;
			int rc = devmig_dma_log_start(dma, &page_size, ranges, n);
			free(ranges);
			if (rc)
				return -rc;
			/* Echo the request with the page size actually chosen. */
			return sent(send_echo(s, sock, &r, m, &page_size));
		}
		case DEVMIG_FEATURE_DMA_LOGGING_STOP:
			/* Whatever data came with it (START's structure, as libvfio-user
			 * and QEMU send) is not needed. */
			devmig_dma_log_stop(dma);
			return sent(send_echo(s, sock, &r, m, NULL));
		case DEVMIG_FEATURE_DMA_LOGGING_REPORT: {
			const struct devmig_feature_dma_logging_report *rep =
				&m->u.feature.u.log_report.rep;
			uint64_t bytes = devmig_log_bitmap_size(rep->length, rep->page_size);
			if (bytes > s->data_cap)
				return E2BIG;
			int rc = devmig_dma_log_report(dma, rep->iova, rep->length, rep->page_size,
						       (uint64_t *)(void *)s->data);
			if (rc)
				return -rc;
			r.u.feature.u.log_report.rep = *rep;
			r.u.feature.u.log_report.bitmap = s->data;
			r.u.feature.u.log_report.bitmap_len = bytes;
			data_len = sizeof(*rep);
			tail_len = bytes;
			break;
		}
		default:
			return ENOTTY;
		}
	}

	/* No raw data: the encoder sends the typed member, a REPORT bitmap from where it lies. */
	r.u.feature.data = NULL;
	r.u.feature.data_len = 0;
	r.u.feature.f.argsz = (uint32_t)(sizeof(struct devmig_feature) + data_len + tail_len);
	if (m->hdr.flags & DEVMIG_HDR_NO_REPLY)
		return 0;
	int rc = send_msg(s, sock, &r, NULL, 0);
	return sent(rc);
}

static int handle_command(struct devmig_server *s, int sock, const struct devmig_msg *m,
			  int *fds, unsigned nfds)
{
	struct devmig_msg r;
	struct devmig_dma *dma = devmig_core_dma(s->dev);
	int rc;

	if (!s->negotiated && m->hdr.cmd != DEVMIG_CMD_VERSION)
		return EINVAL; /* VERSION must come first */

	reply_init(&r, &m->hdr);
	switch (m->hdr.cmd) {
	case DEVMIG_CMD_VERSION:
		return handle_version(s, sock, m);

	case DEVMIG_CMD_DMA_MAP: {
		const struct devmig_dma_map *dm = &m->u.dma_map;
		int fd = nfds ? fds[0] : -1;
		rc = devmig_dma_map(dma, dm->addr, dm->size, dm->flags, fd, dm->offset);
		if (rc)
			return -rc; /* the caller closes fds */
		if (nfds)
			fds[0] = -1; /* the table owns it now */
		break;
	}
	case DEVMIG_CMD_DMA_UNMAP:
		if (m->u.dma_unmap.flags & DEVMIG_DMA_UNMAP_ALL) {
			/* Every mapping (the decoder checked addr = size = 0). */
			devmig_dma_unmap_all(dma);
		} else {
			rc = devmig_dma_unmap(dma, m->u.dma_unmap.addr, m->u.dma_unmap.size);
			if (rc)
				return -rc;
		}
		r.u.dma_unmap = m->u.dma_unmap;
		break;

	case DEVMIG_CMD_DEVICE_GET_INFO:
		r.u.device_info.argsz = sizeof(struct devmig_device_info);
		r.u.device_info.flags = (1u << 0) | (1u << 1); /* RESET | PCI */
		r.u.device_info.num_regions = DEVMIG_NUM_REGIONS;
		r.u.device_info.num_irqs = DEVMIG_NUM_IRQS;
		break;

	case DEVMIG_CMD_DEVICE_GET_REGION_INFO:
		return handle_region_info(s, sock, m);

	case DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS:
		/* No ioeventfds are offered: an empty list is a valid answer. */
		r.u.io_fds.io.argsz = sizeof(struct devmig_region_io_fds);
		r.u.io_fds.io.index = m->u.io_fds.io.index;
		break;

	case DEVMIG_CMD_DEVICE_GET_IRQ_INFO:
		rc = devmig_core_irq_info(s->dev, m->u.irq_info.index, &r.u.irq_info);
		if (rc)
			return -rc;
		break;

	case DEVMIG_CMD_DEVICE_SET_IRQS:
		rc = devmig_core_set_irqs(s->dev, &m->u.irq_set.set, m->u.irq_set.bools, fds, nfds);
		if (rc)
			return -rc;
		for (unsigned i = 0; i < nfds; i++)
			fds[i] = -1; /* the core owns them now */
		break;

	case DEVMIG_CMD_REGION_READ:
	case DEVMIG_CMD_REGION_WRITE: {
		const struct devmig_region_access *a = &m->u.region.acc;
		bool is_write = m->hdr.cmd == DEVMIG_CMD_REGION_WRITE;
		void *buf = is_write ? (void *)m->u.region.data : s->data;
		rc = devmig_core_region_rw(s->dev, a->region, a->offset, buf, a->count, is_write);
		if (rc)
			return -rc;
		r.u.region.acc = *a;
		r.u.region.data = is_write ? NULL : s->data;
		break;
	}
	case DEVMIG_CMD_DEVICE_RESET: {
		/* A reset ends any data session, as it does in the kernel. */
		devmig_datafd_close(s->ds);
		s->ds = NULL;
		struct blocking_op op = { .reset = true };
		if (run_blocking(s, sock, &op))
			return -1;
		break;
	}

	case DEVMIG_CMD_REGION_WRITE_MULTI: {
		uint64_t done = 0;
		for (uint64_t i = 0; i < m->u.write_multi.wr_cnt; i++) {
			struct devmig_write_one w;
			devmig_write_multi_entry(m, i, &w);
			rc = devmig_core_region_rw(s->dev, w.region, w.offset, w.data, w.count, true);
			if (rc)
				return -rc;
			done++;
		}
		r.u.write_multi.wr_cnt = done;
		break;
	}
	case DEVMIG_CMD_DEVICE_FEATURE:
		return handle_feature(s, sock, m);

	case DEVMIG_CMD_MIG_DATA_READ: {
		/* With the data_fd extension the data moves over the data fd only:
		 * bytes taken here would be missing from it. */
		if (s->ext & DEVMIG_EXT_DATA_FD)
			return EINVAL;
		/* The stream comes as segments (device memory included): send
		 * them after the head, gathered by one sendmsg. */
		struct iovec iov[2 + DEVMIG_CORE_MAX_IOV];
		int niov;
		ssize_t n = devmig_core_mig_read(s->dev, iov + 1, DEVMIG_CORE_MAX_IOV, &niov,
						 m->u.mig_data.md.size, NULL);
		if (n < 0)
			return (int)-n;
		r.u.mig_data.md.argsz = (uint32_t)(sizeof(struct devmig_mig_data) + (size_t)n);
		r.u.mig_data.md.size = (uint32_t)n;
		/* A client that did not ask for exact replies gets what libvfio-user
		 * sends and its client transport insists on: the reply padded to the
		 * size asked for. */
		if (!(s->ext & DEVMIG_EXT_EXACT_MIG_READ))
			r.u.mig_data.pad = m->u.mig_data.md.size - (size_t)n;
		if (m->hdr.flags & DEVMIG_HDR_NO_REPLY)
			return 0;
		const void *tail;
		size_t tail_len;
		enum devmig_wire_err err;
		iov[0].iov_base = s->head;
		iov[0].iov_len = devmig_encode_head(s->head, sizeof(s->head), &r, &tail, &tail_len,
						    &err);
		if (!iov[0].iov_len)
			return devmig_wire_errno(err);
		if (r.u.mig_data.pad) {
			/* Zeros from a buffer as large as any request (calloc'd, never written). */
			iov[1 + niov].iov_base = s->zeros;
			iov[1 + niov].iov_len = r.u.mig_data.pad;
			niov++;
		}
		return sent(send_locked_iov(s, sock, iov, 1 + niov, NULL, 0));
	}
	case DEVMIG_CMD_MIG_DATA_WRITE:
		if (s->ext & DEVMIG_EXT_DATA_FD)
			return EINVAL;
		rc = devmig_core_mig_write(s->dev, m->u.mig_data.data, m->u.mig_data.md.size);
		if (rc)
			return -rc;
		break;

	default:
		return ENOSYS;
	}
	if (m->hdr.flags & DEVMIG_HDR_NO_REPLY)
		return 0;
	return sent(send_msg(s, sock, &r, NULL, 0));
}

/* One received message: answer it. Returns -1 when the connection must end. */
static int serve_rx(struct devmig_server *s, int sock, struct devmig_rx *rx)
{
	struct devmig_msg m;

	atomic_fetch_add(&s->messages, 1);
	if (rx->skipped) {
		/* Framed but refused (too big, bad flags, lost fds): answer it. */
		devmig_rx_close_fds(rx);
		vlog(s, "refused %s: %s", devmig_cmd_name(rx->hdr.cmd),
		     devmig_wire_strerror(rx->hdr_err));
		if ((rx->hdr.flags & DEVMIG_HDR_TYPE_MASK) != DEVMIG_HDR_TYPE_REPLY &&
		    send_error(s, sock, &rx->hdr, devmig_wire_errno(rx->hdr_err)))
			return -1;
		return 0;
	}
	enum devmig_wire_err err = devmig_decode(rx->msg, rx->len, rx->nfds, &s->lim, &m);
	if (err) {
		vlog(s, "refused %s: %s", devmig_cmd_name(rx->hdr.cmd), devmig_wire_strerror(err));
		devmig_rx_close_fds(rx);
		if ((rx->hdr.flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_COMMAND &&
		    send_error(s, sock, &rx->hdr, devmig_wire_errno(err)))
			return -1;
		return 0;
	}
	if ((m.hdr.flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_REPLY) {
		route_reply(s, &m);
		devmig_rx_close_fds(rx);
		return 0;
	}
	int error_no = handle_command(s, sock, &m, rx->fds, rx->nfds);
	devmig_rx_close_fds(rx); /* whatever the handler did not take */
	if (error_no > 0) {
		if (error_no != EPIPE && error_no != ECONNRESET)
			vlog(s, "%s failed: %s", devmig_cmd_name(m.hdr.cmd), strerror(error_no));
		if (send_error(s, sock, &m.hdr, error_no))
			return -1;
	} else if (error_no < 0) {
		return -1; /* a send failed: the client is gone */
	}
	return 0;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void drop_refused(struct devmig_server *s, unsigned i)
{
	char sink[256];
	/* What it sent is read first, so the close does not reset our answer. */
	while (recv(s->refused[i].fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	close(s->refused[i].fd);
	s->refused[i] = s->refused[--s->nrefused];
}

/* vfio-user serves one client at a time: tell a second one at once, not never. */
static void refuse_busy(struct devmig_server *s)
{
	int fd = accept4(s->listener.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	/* The error reply to the VERSION it sends first (msg_id 0). */
	struct devmig_hdr req = { .msg_id = 0, .cmd = DEVMIG_CMD_VERSION,
				  .msg_size = DEVMIG_HDR_SIZE }, h;
	devmig_encode_error_reply(&h, &req, EBUSY);
	if (send(fd, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		close(fd); /* it left already */
		return;
	}
	shutdown(fd, SHUT_WR);
	if (s->nrefused == MAX_REFUSED)
		drop_refused(s, 0);
	s->refused[s->nrefused].fd = fd;
	s->refused[s->nrefused].until_ms = mono_ms() + REFUSED_LINGER_MS;
	s->nrefused++;
	vlog(s, "refused a second client: one is connected");
}

/*
 * Wait until the client has something to read, refusing other clients
 * meanwhile. Before VERSION the client has until hello_deadline (ms):
 * returns 0 when it passed, 1 when there is input (or an end to read).
 */
static int wait_input(struct devmig_server *s, int sock, uint64_t hello_deadline)
{
	for (;;) {
		if (devmig_msg_reader_buffered(s->rd) || atomic_load(&s->stopping))
			return 1;
		uint64_t now = mono_ms(), wake = UINT64_MAX;
		if (!s->negotiated) {
			if (now >= hello_deadline)
				return 0;
			wake = hello_deadline;
		}
		struct pollfd pf[2 + MAX_REFUSED] = { { sock, POLLIN, 0 }, { s->listener.fd, POLLIN, 0 } };
		for (unsigned i = 0; i < s->nrefused; i++) {
			pf[2 + i] = (struct pollfd){ s->refused[i].fd, POLLIN, 0 };
			if (s->refused[i].until_ms < wake)
				wake = s->refused[i].until_ms;
		}
		int timeout = wake == UINT64_MAX ? -1 : wake > now ? (int)(wake - now) : 0;
		int k = poll(pf, 2 + s->nrefused, timeout);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 || (pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			return 1;
		now = mono_ms();
		for (unsigned i = s->nrefused; i-- > 0;)
			if (pf[2 + i].revents || now >= s->refused[i].until_ms)
				drop_refused(s, i);
		if (k > 0 && pf[1].revents)
			refuse_busy(s);
	}
}

/* Serve one connected client until it leaves or breaks the framing. */
static void serve_client(struct devmig_server *s, int sock)
{
	struct devmig_msg_reader rd;
	struct devmig_rx rx;

	if (devmig_msg_reader_init(&rd, sock, s->lim.max_msg_size + 65536u)) {
		close(sock);
		return;
	}
	/* A message once begun must arrive whole within the I/O timeout. */
	struct timeval tv = { s->cfg.io_timeout_ms / 1000, (s->cfg.io_timeout_ms % 1000) * 1000 };
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	pthread_mutex_lock(&s->conn_lock);
	s->sock = sock;
	s->negotiated = false;
	s->ext = 0;
	s->rd = &rd;
	s->have_held = false;
	devmig_caps_default(&s->peer);
	pthread_mutex_unlock(&s->conn_lock);
	atomic_fetch_add(&s->connections, 1);
	vlog(s, "client connected");

	uint64_t hello_deadline = mono_ms() + s->cfg.io_timeout_ms;
	for (;;) {
		if (s->have_held) {
			rx = s->held;
			s->have_held = false;
		} else {
			if (!wait_input(s, sock, hello_deadline)) {
				atomic_fetch_add(&s->disconnects_bad, 1);
				vlog(s, "dropping client: no VERSION within %u ms", s->cfg.io_timeout_ms);
				break;
			}
			int rc = devmig_msg_recv(&rd, &s->lim, &rx);
			if (rc <= 0) {
				if (rc < 0) {
					atomic_fetch_add(&s->disconnects_bad, 1);
					vlog(s, "dropping client: %s",
					     rc == -EAGAIN ? "a message stalled half-way"
							   : strerror(-rc));
				}
				break;
			}
		}
		if (serve_rx(s, sock, &rx))
			break;
	}

	/* The vfio-user rule: drop the client's mappings and fds, keep the device. */
	if (s->have_held) {
		devmig_rx_close_fds(&s->held);
		s->have_held = false;
	}
	while (s->nrefused)
		drop_refused(s, 0);
	pthread_mutex_lock(&s->conn_lock);
	s->sock = -1;
	s->rd = NULL;
	pthread_mutex_unlock(&s->conn_lock);
	fail_waiters(s, ENOTCONN);
	/* The data fd was the client's: its session's pipe goes with it (the
	 * device keeps its migration state, as with the command path). */
	devmig_datafd_close(s->ds);
	s->ds = NULL;
	devmig_core_client_gone(s->dev);
	devmig_msg_reader_free(&rd);
	close(sock);
	vlog(s, "client disconnected");
}

static bool peer_allowed(struct devmig_server *s, int sock)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (s->cfg.allow_other_uids)
		return true;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return false;
	return cred.uid == geteuid();
}

int devmig_server_run(struct devmig_server *s)
{
	while (!atomic_load(&s->stopping)) {
		int sock = accept4(s->listener.fd, NULL, NULL, SOCK_CLOEXEC);
		if (sock < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (atomic_load(&s->stopping))
				break;
			return -errno;
		}
		devmig_msg_tune_socket(sock);
		if (!peer_allowed(s, sock)) {
			vlog(s, "refused a client with another uid");
			close(sock);
			continue;
		}
		serve_client(s, sock);
	}
	return 0;
}

static void *server_thread(void *arg)
{
	devmig_server_run(arg);
	return NULL;
}

int devmig_server_start(struct devmig_server *s)
{
	int rc = pthread_create(&s->thread, NULL, server_thread, s);
	if (rc)
		return -rc;
	s->thread_started = true;
	return 0;
}

void devmig_server_stop(struct devmig_server *s)
{
	if (atomic_exchange(&s->stopping, true))
		goto join;
	/* shutdown() wakes a blocked accept() and recvmsg() without a poll on the hot path. */
	shutdown(s->listener.fd, SHUT_RDWR);
	pthread_mutex_lock(&s->conn_lock);
	if (s->sock >= 0)
		shutdown(s->sock, SHUT_RDWR);
	pthread_mutex_unlock(&s->conn_lock);
join:
	if (s->thread_started) {
		pthread_join(s->thread, NULL);
		s->thread_started = false;
	}
}

struct devmig_server *devmig_server_new(struct devmig_device *dev,
					const struct devmig_server_config *cfg, char *err,
					size_t errlen)
{
	const size_t path_max = sizeof(((struct sockaddr_un *)0)->sun_path);
	struct devmig_server *s;

	if (!cfg->socket_path || strlen(cfg->socket_path) >= path_max) {
		snprintf(err, errlen, "socket path missing or longer than %zu bytes", path_max - 1);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->dev = dev;
	s->cfg = *cfg;
	if (!s->cfg.max_data_xfer_size)
		s->cfg.max_data_xfer_size = DEVMIG_DEFAULT_MAX_DATA_XFER;
	if (!s->cfg.max_msg_size)
		s->cfg.max_msg_size = s->cfg.max_data_xfer_size + 4096u;
	if (!s->cfg.io_timeout_ms)
		s->cfg.io_timeout_ms = DEFAULT_IO_TIMEOUT_MS;
	s->path = strdup(cfg->socket_path);
	s->sock = -1;
	s->listener.fd = -1;
	pthread_mutex_init(&s->conn_lock, NULL);
	pthread_mutex_init(&s->send_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->conn_cv, &ca);
	pthread_condattr_destroy(&ca);

	devmig_wire_limits_default(&s->lim);
	s->lim.role = DEVMIG_WIRE_ROLE_SERVER;
	s->lim.max_msg_size = s->cfg.max_msg_size;
	s->lim.max_data_xfer_size = s->cfg.max_data_xfer_size;
	s->lim.max_msg_fds = DEVMIG_MSGIO_MAX_FDS;
	s->lim.num_regions = DEVMIG_NUM_REGIONS;
	s->lim.num_irqs = DEVMIG_NUM_IRQS;
	s->data_cap = s->cfg.max_msg_size;
	s->data = malloc(s->data_cap);
	s->zeros = calloc(1, s->cfg.max_data_xfer_size);
	if (!s->path || !s->data || !s->zeros) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}

	if (devmig_unix_listen(cfg->socket_path, 4, &s->listener, err, errlen))
		goto fail;
	devmig_core_set_dma_xfer(dev, dma_xfer, s);
	return s;
fail:
	free(s->zeros);
	free(s->data);
	free(s->path);
	free(s);
	return NULL;
}

void devmig_server_free(struct devmig_server *s)
{
	if (!s)
		return;
	devmig_server_stop(s);
	devmig_core_set_dma_xfer(s->dev, NULL, NULL);
	/* Only our own socket: another server may have taken the path since. */
	devmig_unix_unlisten(&s->listener, s->path);
	pthread_mutex_destroy(&s->conn_lock);
	pthread_mutex_destroy(&s->send_lock);
	pthread_cond_destroy(&s->conn_cv);
	free(s->zeros);
	free(s->data);
	free(s->path);
	free(s);
}

void devmig_server_get_stats(struct devmig_server *s, struct devmig_server_stats *st)
{
	st->connections = atomic_load(&s->connections);
	st->messages = atomic_load(&s->messages);
	st->errors_replied = atomic_load(&s->errors_replied);
	st->disconnects_bad = atomic_load(&s->disconnects_bad);
}
