/* SPDX-License-Identifier: MIT */
/* The vfio-user backend of the client: one connection to one device server. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "client_internal.h"
#include "data_io.h"
#include "msgio.h"

#define CLIENT_MAX_FDS 8u
/* Requests whose replies we gave up waiting for and will drop when they come. */
#define CLIENT_MAX_ABANDONED 64u
/* PRE_COPY over a data fd: an empty pipe is looked at this long before the
 * server is asked whether it is the temporary end (its pump may be busy). */
#define DATA_GRACE_MS 2
/* And asked again this often while it says data is coming. */
#define DATA_RECHECK_MS 50

/* Guest memory the server reaches through DMA_READ/DMA_WRITE messages. */
struct msg_map {
	uint64_t iova, size;
	uint8_t *vaddr;
	uint32_t prot;
};

struct vu_client {
	struct devmig_client base;
	int sock;
	/*
	 * Calls take turns in arrival order (a ticket lock): a VMM thread's
	 * register access waits for at most the one call ahead of it, even
	 * while the engine reads batch after batch on the same connection.
	 */
	pthread_mutex_t lock;
	pthread_cond_t turn_cv;
	uint64_t next_ticket, serving;
	struct devmig_msg_reader rd;
	struct devmig_wire_limits lim;
	struct devmig_caps ours, server;
	uint32_t xfer_max; /* largest data count in one message either way */
	uint16_t next_id;
	struct msg_map *maps;
	size_t nmaps;
	/*
	 * After an error with replies still due (a refused reply in a pipeline,
	 * a timeout), their ids are kept and those replies dropped on arrival,
	 * so the next command pairs with its own. When the stream itself is
	 * lost (EOF, unframeable bytes, a failed send) the client is broken:
	 * every call fails with -ENOTCONN until devmig_client_reconnect.
	 */
	uint16_t abandoned[CLIENT_MAX_ABANDONED];
	unsigned nabandoned;
	bool broken;
	/*
	 * The data_fd extension: the session's pipe (-1: none), read in a save
	 * session, written in a load; the state last asked for (PRE_COPY says
	 * an empty pipe may be the temporary end).
	 */
	int data_fd;
	bool data_save;
	enum devmig_state mig_state;
	struct devmig_client_config cfg;
	char path[108];
	uint8_t head[4096];
};

static const struct devmig_client_ops vu_ops;

static struct vu_client *to_vu(struct devmig_client *cl)
{
	return (struct vu_client *)(void *)cl;
}

static void client_lock(struct vu_client *c)
{
	pthread_mutex_lock(&c->lock);
	uint64_t ticket = c->next_ticket++;
	while (c->serving != ticket)
		pthread_cond_wait(&c->turn_cv, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

static void client_unlock(struct vu_client *c)
{
	pthread_mutex_lock(&c->lock);
	c->serving++;
	pthread_cond_broadcast(&c->turn_cv);
	pthread_mutex_unlock(&c->lock);
}

/* Is another thread waiting for its turn on this client? */
static bool client_contended(struct vu_client *c)
{
	pthread_mutex_lock(&c->lock);
	bool waiting = c->next_ticket > c->serving + 1;
	pthread_mutex_unlock(&c->lock);
	return waiting;
}

static int send_msg(struct vu_client *c, const struct devmig_msg *m, const int *fds,
		    unsigned nfds)
{
	const void *tail;
	size_t tail_len;
	enum devmig_wire_err err;
	if (c->broken)
		return -ENOTCONN;
	size_t n = devmig_encode_head(c->head, sizeof(c->head), m, &tail, &tail_len, &err);
	if (!n)
		return -devmig_wire_errno(err);
	struct iovec iov[2] = { { c->head, n }, { (void *)tail, tail_len } };
	/* A deadline for the whole message: a server that stops reading (stopped,
	 * hung) costs the timeout, not forever. */
	int rc = devmig_msg_send_timed(c->sock, iov, tail_len ? 2 : 1, fds, nfds,
				       c->cfg.timeout_ms);
	if (rc)
		c->broken = true; /* part of a message may be out: nothing after it can be framed */
	return rc;
}

/* Drop the reply to msg_id when it comes; too many outstanding: give up the stream. */
static void abandon(struct vu_client *c, uint16_t msg_id)
{
	if (c->nabandoned == CLIENT_MAX_ABANDONED) {
		c->broken = true;
		return;
	}
	c->abandoned[c->nabandoned++] = msg_id;
}

/* Was msg_id abandoned? Then forget it: its reply is here. */
static bool take_abandoned(struct vu_client *c, uint16_t msg_id)
{
	for (unsigned i = 0; i < c->nabandoned; i++) {
		if (c->abandoned[i] == msg_id) {
			c->abandoned[i] = c->abandoned[--c->nabandoned];
			return true;
		}
	}
	return false;
}

static bool is_reply(const struct devmig_hdr *h)
{
	return (h->flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_REPLY;
}

static struct msg_map *find_map(struct vu_client *c, uint64_t addr, uint64_t len)
{
	for (size_t i = 0; i < c->nmaps; i++) {
		struct msg_map *m = &c->maps[i];
		if (addr >= m->iova && len <= m->size && addr - m->iova <= m->size - len)
			return m;
	}
	return NULL;
}

/* A DMA_READ/DMA_WRITE command from the server: answer from our memory. */
static int serve_dma(struct vu_client *c, const struct devmig_msg *m)
{
	const struct devmig_dma_access *a = &m->u.dma.acc;
	bool is_write = m->hdr.cmd == DEVMIG_CMD_DMA_WRITE;
	struct msg_map *map = find_map(c, a->addr, a->count);
	struct devmig_msg r;

	memset(&r, 0, sizeof(r));
	r.hdr.msg_id = m->hdr.msg_id;
	r.hdr.cmd = m->hdr.cmd;
	r.hdr.flags = DEVMIG_HDR_TYPE_REPLY;
	if (!map || !(map->prot & (is_write ? DEVMIG_DMA_WRITE : DEVMIG_DMA_READ))) {
		struct devmig_hdr h;
		devmig_encode_error_reply(&h, &m->hdr, map ? EACCES : EFAULT);
		struct iovec iov = { &h, sizeof(h) };
		int rc = devmig_msg_send_timed(c->sock, &iov, 1, NULL, 0, c->cfg.timeout_ms);
		if (rc)
			c->broken = true;
		return rc;
	}
	uint8_t *mem = map->vaddr + (a->addr - map->iova);
	r.u.dma.acc = *a;
	if (is_write)
		memcpy(mem, m->u.dma.data, a->count);
	else
		r.u.dma.data = mem;
	return send_msg(c, &r, NULL, 0);
}

/*
 * One request/reply exchange: send req, answer server commands meanwhile,
 * return the matching reply in *rep (valid until the next exchange). The
 * reply's fds are moved to rx_fds (caller closes) when given, else closed.
 */
/* Send a command; its msg_id is set here. */
static int send_cmd(struct vu_client *c, struct devmig_msg *req, const int *fds, unsigned nfds)
{
	req->hdr.msg_id = c->next_id++;
	req->hdr.flags = DEVMIG_HDR_TYPE_COMMAND | (req->hdr.flags & DEVMIG_HDR_NO_REPLY);
	return send_msg(c, req, fds, nfds);
}

/*
 * Wait for the reply to command (cmd, msg_id), answering the server's own
 * commands meanwhile. With tail, bulk data lands in tail->buf. The reply's
 * fds go to rx_fds when given, else they are closed.
 */
static int recv_reply(struct vu_client *c, uint16_t cmd, uint16_t msg_id,
		      struct devmig_msg *rep, int *rx_fds, unsigned *rx_nfds,
		      struct devmig_rx_tail *tail)
{
	struct devmig_rx rx;

	if (tail) {
		tail->cmd = cmd;
		tail->msg_id = msg_id;
	}
	if (c->broken)
		return -ENOTCONN;
	for (;;) {
		int rc = tail ? devmig_msg_recv_tail(&c->rd, &c->lim, &rx, tail)
			      : devmig_msg_recv(&c->rd, &c->lim, &rx);
		if (rc == -EAGAIN || rc == -EWOULDBLOCK) {
			abandon(c, msg_id); /* the reply may still come: drop it then */
			return -ETIMEDOUT;
		}
		if (rc <= 0) {
			c->broken = true; /* EOF, or bytes that cannot be framed */
			return rc ? rc : -ECONNRESET;
		}
		if (rx.skipped || devmig_decode_head(rx.msg, rx.len, rx.len + rx.tail_len, rx.nfds,
						     &c->lim, rep)) {
			/* A whole message we refuse: the stream is still in step. */
			const struct devmig_hdr *h = rx.skipped ? &rx.hdr : &rep->hdr;
			devmig_rx_close_fds(&rx);
			if (is_reply(h) && h->msg_id != msg_id && take_abandoned(c, h->msg_id))
				continue;
			if (!is_reply(h) || h->msg_id != msg_id)
				abandon(c, msg_id); /* ours is still to come */
			return -EPROTO;
		}
		if ((rep->hdr.flags & DEVMIG_HDR_TYPE_MASK) == DEVMIG_HDR_TYPE_COMMAND) {
			devmig_rx_close_fds(&rx);
			rc = serve_dma(c, rep);
			if (rc)
				return rc;
			continue;
		}
		if (rep->hdr.msg_id != msg_id && take_abandoned(c, rep->hdr.msg_id)) {
			devmig_rx_close_fds(&rx); /* a reply we gave up on */
			continue;
		}
		if (rep->hdr.msg_id != msg_id || rep->hdr.cmd != cmd) {
			devmig_rx_close_fds(&rx);
			if (rep->hdr.msg_id != msg_id)
				abandon(c, msg_id);
			return -EPROTO;
		}
		if (rx_fds && rx_nfds) {
			memcpy(rx_fds, rx.fds, rx.nfds * sizeof(int));
			*rx_nfds = rx.nfds;
			rx.nfds = 0;
		}
		devmig_rx_close_fds(&rx);
		if (rep->hdr.flags & DEVMIG_HDR_ERROR)
			return -(rep->hdr.error_no ? (int)rep->hdr.error_no : EIO);
		return 0;
	}
}

static int xact_tail(struct vu_client *c, struct devmig_msg *req, const int *fds,
		     unsigned nfds, struct devmig_msg *rep, int *rx_fds, unsigned *rx_nfds,
		     struct devmig_rx_tail *tail)
{
	int rc = send_cmd(c, req, fds, nfds);
	if (rc)
		return rc;
	return recv_reply(c, req->hdr.cmd, req->hdr.msg_id, rep, rx_fds, rx_nfds, tail);
}

static int xact(struct vu_client *c, struct devmig_msg *req, const int *fds, unsigned nfds,
		struct devmig_msg *rep, int *rx_fds, unsigned *rx_nfds)
{
	return xact_tail(c, req, fds, nfds, rep, rx_fds, rx_nfds, NULL);
}

static void init_cmd(struct devmig_msg *m, uint16_t cmd)
{
	memset(m, 0, sizeof(*m));
	m->hdr.cmd = cmd;
}

/* ---- connect ---- */

static void vu_close(struct devmig_client *cl);

/* Connect c->path and negotiate VERSION on a fresh socket and reader. */
static int client_open(struct vu_client *c, char *err, size_t errlen)
{
	const struct devmig_client_config *cfg = &c->cfg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	c->broken = false;
	c->nabandoned = 0;
	c->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, c->path);
	if (c->sock < 0 || connect(c->sock, (struct sockaddr *)&sa, sizeof(sa))) {
		snprintf(err, errlen, "cannot connect to %s: %s", c->path, strerror(errno));
		return -errno;
	}
	struct timeval tv = { cfg->timeout_ms / 1000, (cfg->timeout_ms % 1000) * 1000 };
	setsockopt(c->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	devmig_msg_tune_socket(c->sock);

	devmig_wire_limits_default(&c->lim);
	c->lim.role = DEVMIG_WIRE_ROLE_CLIENT;
	c->lim.max_data_xfer_size = cfg->max_data_xfer_size;
	c->lim.max_msg_size = cfg->max_data_xfer_size + 4096u;
	c->lim.max_msg_fds = CLIENT_MAX_FDS;
	if (devmig_msg_reader_init(&c->rd, c->sock, c->lim.max_msg_size + 65536u)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}

	devmig_caps_default(&c->ours);
	c->ours.max_msg_fds = CLIENT_MAX_FDS;
	c->ours.max_data_xfer_size = cfg->max_data_xfer_size;
	c->ours.ext = cfg->no_ext ? 0 : cfg->ext;
	c->ours.migration = true;
	c->ours.mig_pgsize = DEVMIG_MIN_PAGE_SIZE;
	c->ours.mig_max_bitmap_size = cfg->max_data_xfer_size; /* one REPORT reply */
	char json[512];
	size_t jl = devmig_caps_format(&c->ours, json, sizeof(json));
	struct devmig_msg req, rep;
	init_cmd(&req, DEVMIG_CMD_VERSION);
	req.u.version.v.major = DEVMIG_VFIO_USER_MAJOR;
	req.u.version.v.minor = DEVMIG_VFIO_USER_MINOR;
	req.u.version.json = json;
	req.u.version.json_len = jl;
	int rc = xact(c, &req, NULL, 0, &rep, NULL, NULL);
	if (rc) {
		snprintf(err, errlen, "VERSION refused by %s: %s", c->path, strerror(-rc));
		return rc;
	}
	struct devmig_caps offered;
	enum devmig_wire_err werr = devmig_caps_parse(rep.u.version.json, rep.u.version.json_len,
						      &offered);
	if (!werr)
		werr = devmig_version_check_reply(DEVMIG_VFIO_USER_MAJOR, DEVMIG_VFIO_USER_MINOR,
						  &c->ours, rep.u.version.v.major,
						  rep.u.version.v.minor, &offered);
	if (werr) {
		snprintf(err, errlen, "%s answered VERSION unacceptably: %s", c->path,
			 devmig_wire_strerror(werr));
		return -EPROTO;
	}
	/* Members the server added unasked are not used (its migration member is information). */
	devmig_caps_usable(&c->ours, &offered, &c->server);
	c->xfer_max = c->server.max_data_xfer_size < cfg->max_data_xfer_size
			      ? c->server.max_data_xfer_size
			      : cfg->max_data_xfer_size;
	return 0;
}

static void close_data_fd(struct vu_client *c)
{
	if (c->data_fd >= 0)
		close(c->data_fd);
	c->data_fd = -1;
}

static void client_shut(struct vu_client *c)
{
	/* The server ends the session of a connection that goes. */
	close_data_fd(c);
	if (c->sock >= 0)
		close(c->sock);
	c->sock = -1;
	devmig_msg_reader_free(&c->rd);
}

struct devmig_client *devmig_vfio_user_connect(const char *path,
					       const struct devmig_client_config *cfg_in, char *err,
					       size_t errlen)
{
	struct devmig_client_config cfg = { 0 };
	struct sockaddr_un sa;
	struct vu_client *c;

	if (cfg_in)
		cfg = *cfg_in;
	if (!cfg.max_data_xfer_size)
		cfg.max_data_xfer_size = DEVMIG_DEFAULT_MAX_DATA_XFER;
	if (!cfg.timeout_ms)
		cfg.timeout_ms = 30000;
	if (!cfg.ext && !cfg.no_ext)
		cfg.ext = DEVMIG_EXT_ALL;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base.ops = &vu_ops;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->turn_cv, NULL);
	c->sock = -1;
	c->data_fd = -1;
	c->cfg = cfg;
	strcpy(c->path, path);
	if (client_open(c, err, errlen)) {
		vu_close(&c->base);
		return NULL;
	}
	return &c->base;
}

static int vu_reconnect(struct devmig_client *cl, char *err, size_t errlen)
{
	struct vu_client *c = to_vu(cl);
	client_lock(c);
	client_shut(c);
	/* The server dropped the old connection's mappings with it. */
	free(c->maps);
	c->maps = NULL;
	c->nmaps = 0;
	int rc = client_open(c, err, errlen);
	if (rc) {
		client_shut(c);
		c->broken = true;
	}
	client_unlock(c);
	return rc;
}

static bool vu_broken(struct devmig_client *cl)
{
	struct vu_client *c = to_vu(cl);
	client_lock(c);
	bool b = c->broken;
	client_unlock(c);
	return b;
}

static void vu_close(struct devmig_client *cl)
{
	struct vu_client *c = to_vu(cl);
	if (!c)
		return;
	client_shut(c);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->turn_cv);
	free(c->maps);
	free(c);
}

static void vu_server_caps(struct devmig_client *cl, struct devmig_caps *caps)
{
	struct vu_client *c = to_vu(cl);
	*caps = c->server;
}

static bool vu_has_ext(struct devmig_client *cl, uint32_t ext)
{
	struct vu_client *c = to_vu(cl);
	return (c->server.ext & ext) == ext;
}

static int vu_fd(struct devmig_client *cl)
{
	struct vu_client *c = to_vu(cl);
	return c->sock;
}

/* ---- simple commands ---- */

#define LOCKED(c, expr)           \
	({                        \
		client_lock(c);   \
		int rc_ = (expr); \
		client_unlock(c); \
		rc_;              \
	})

static int device_info_locked(struct vu_client *c, struct devmig_device_info *info)
{
	struct devmig_msg req, rep;
	init_cmd(&req, DEVMIG_CMD_DEVICE_GET_INFO);
	req.u.device_info.argsz = sizeof(*info);
	int rc = xact(c, &req, NULL, 0, &rep, NULL, NULL);
	if (!rc)
		*info = rep.u.device_info;
	return rc;
}

static int vu_device_info(struct devmig_client *cl, struct devmig_device_info *info)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, device_info_locked(c, info));
}

static int region_info_locked(struct vu_client *c, uint32_t index,
			      struct devmig_region_info *info, int *fd,
			      struct devmig_sparse_mmap_area *areas, unsigned *nareas)
{
	struct devmig_msg req, rep;
	int fds[CLIENT_MAX_FDS];
	unsigned nfds = 0;
	unsigned max_areas = nareas ? *nareas : 0;

	*fd = -1;
	if (nareas)
		*nareas = 0;
	init_cmd(&req, DEVMIG_CMD_DEVICE_GET_REGION_INFO);
	req.u.region_info.info.argsz = 1024;
	req.u.region_info.info.index = index;
	int rc = xact(c, &req, NULL, 0, &rep, fds, &nfds);
	if (rc)
		return rc;
	*info = rep.u.region_info.info;
	if (nfds)
		*fd = fds[0];
	for (unsigned i = 1; i < nfds; i++)
		close(fds[i]);
	/* Walk the capability chain for the sparse-mmap areas. */
	const uint8_t *caps = rep.u.region_info.caps;
	size_t caps_len = rep.u.region_info.caps_len;
	uint32_t off = info->cap_offset;
	while (caps && off >= sizeof(*info) && off - sizeof(*info) + 8 <= caps_len) {
		struct devmig_info_cap_hdr h;
		const uint8_t *p = caps + (off - sizeof(*info));
		memcpy(&h, p, sizeof(h));
		if (h.id == 1 /* VFIO_REGION_INFO_CAP_SPARSE_MMAP */ && areas && nareas) {
			uint32_t n;
			memcpy(&n, p + 8, 4);
			for (uint32_t i = 0; i < n && *nareas < max_areas; i++)
				memcpy(&areas[(*nareas)++], p + 16 + 16 * i, sizeof(*areas));
		}
		if (h.next <= off)
			break;
		off = h.next;
	}
	return 0;
}

static int vu_region_info(struct devmig_client *cl, uint32_t index,
			      struct devmig_region_info *info, int *fd,
			      struct devmig_sparse_mmap_area *areas, unsigned *nareas)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, region_info_locked(c, index, info, fd, areas, nareas));
}

static int irq_info_locked(struct vu_client *c, uint32_t index, struct devmig_irq_info *info)
{
	struct devmig_msg req, rep;
	init_cmd(&req, DEVMIG_CMD_DEVICE_GET_IRQ_INFO);
	req.u.irq_info.argsz = sizeof(*info);
	req.u.irq_info.index = index;
	int rc = xact(c, &req, NULL, 0, &rep, NULL, NULL);
	if (!rc)
		*info = rep.u.irq_info;
	return rc;
}

static int vu_irq_info(struct devmig_client *cl, uint32_t index, struct devmig_irq_info *info)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, irq_info_locked(c, index, info));
}

static int set_irqs_locked(struct vu_client *c, uint32_t index, uint32_t flags,
			   uint32_t start, uint32_t count, const int *fds)
{
	struct devmig_msg req, rep;
	init_cmd(&req, DEVMIG_CMD_DEVICE_SET_IRQS);
	req.u.irq_set.set.argsz = sizeof(struct devmig_irq_set);
	req.u.irq_set.set.flags = flags;
	req.u.irq_set.set.index = index;
	req.u.irq_set.set.start = start;
	req.u.irq_set.set.count = count;
	return xact(c, &req, fds, fds ? count : 0, &rep, NULL, NULL);
}

static int vu_set_irqs(struct devmig_client *cl, uint32_t index, uint32_t flags,
			   uint32_t start, uint32_t count, const int *fds)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, set_irqs_locked(c, index, flags, start, count, fds));
}

static int set_irqs_bool_locked(struct vu_client *c, uint32_t index, uint32_t action,
				uint32_t start, uint32_t count, const uint8_t *bools)
{
	struct devmig_msg req, rep;
	init_cmd(&req, DEVMIG_CMD_DEVICE_SET_IRQS);
	req.u.irq_set.set.argsz = (uint32_t)sizeof(struct devmig_irq_set) + count;
	req.u.irq_set.set.flags = VFIO_IRQ_SET_DATA_BOOL | action;
	req.u.irq_set.set.index = index;
	req.u.irq_set.set.start = start;
	req.u.irq_set.set.count = count;
	req.u.irq_set.bools = bools;
	return xact(c, &req, NULL, 0, &rep, NULL, NULL);
}

static int vu_set_irqs_bool(struct devmig_client *cl, uint32_t index, uint32_t action,
			    uint32_t start, uint32_t count, const uint8_t *bools)
{
	struct vu_client *c = to_vu(cl);
	if (action & ~VFIO_IRQ_SET_ACTION_TYPE_MASK || count > c->xfer_max)
		return -EINVAL;
	return LOCKED(c, set_irqs_bool_locked(c, index, action, start, count, bools));
}

static int region_rw_locked(struct vu_client *c, uint32_t region, uint64_t offset,
			    void *buf, size_t len, bool is_write)
{
	struct devmig_msg req, rep;

	while (len) {
		uint32_t n = len < c->xfer_max ? (uint32_t)len : c->xfer_max;
		init_cmd(&req, is_write ? DEVMIG_CMD_REGION_WRITE : DEVMIG_CMD_REGION_READ);
		req.u.region.acc.offset = offset;
		req.u.region.acc.region = region;
		req.u.region.acc.count = n;
		req.u.region.data = is_write ? buf : NULL;
		int rc = xact(c, &req, NULL, 0, &rep, NULL, NULL);
		if (rc)
			return rc;
		if (rep.u.region.acc.count != n)
			return -EPROTO;
		if (!is_write)
			memcpy(buf, rep.u.region.data, n);
		offset += n;
		buf = (uint8_t *)buf + n;
		len -= n;
	}
	return 0;
}

static int vu_region_read(struct devmig_client *cl, uint32_t region, uint64_t offset,
			      void *buf, size_t len)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, region_rw_locked(c, region, offset, buf, len, false));
}

static int vu_region_write(struct devmig_client *cl, uint32_t region, uint64_t offset,
			       const void *buf, size_t len)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, region_rw_locked(c, region, offset, (void *)buf, len, true));
}

static int simple_locked(struct vu_client *c, uint16_t cmd)
{
	struct devmig_msg req, rep;
	init_cmd(&req, cmd);
	return xact(c, &req, NULL, 0, &rep, NULL, NULL);
}

static int vu_reset(struct devmig_client *cl)
{
	struct vu_client *c = to_vu(cl);
	client_lock(c);
	int rc = simple_locked(c, DEVMIG_CMD_DEVICE_RESET);
	if (!rc) {
		/* A reset ends any data session (RUNNING again). */
		close_data_fd(c);
		c->mig_state = DEVMIG_STATE_RUNNING;
	}
	client_unlock(c);
	return rc;
}

static int dma_map_locked(struct vu_client *c, uint64_t iova, uint64_t size, uint32_t prot,
			  int fd, uint64_t fd_offset, void *vaddr)
{
	struct devmig_msg req, rep;

	if (fd < 0 && !vaddr)
		return -EINVAL;
	init_cmd(&req, DEVMIG_CMD_DMA_MAP);
	req.u.dma_map.argsz = sizeof(struct devmig_dma_map);
	req.u.dma_map.flags = prot;
	req.u.dma_map.offset = fd >= 0 ? fd_offset : 0;
	req.u.dma_map.addr = iova;
	req.u.dma_map.size = size;
	int rc = xact(c, &req, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0, &rep, NULL, NULL);
	if (rc || fd >= 0)
		return rc;
	struct msg_map *maps = realloc(c->maps, (c->nmaps + 1) * sizeof(*maps));
	if (!maps)
		return -ENOMEM;
	c->maps = maps;
	c->maps[c->nmaps++] = (struct msg_map){ iova, size, vaddr, prot };
	return 0;
}

static int vu_dma_map(struct devmig_client *cl, uint64_t iova, uint64_t size, uint32_t prot,
			  int fd, uint64_t fd_offset, void *vaddr)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, dma_map_locked(c, iova, size, prot, fd, fd_offset, vaddr));
}

static int dma_unmap_locked(struct vu_client *c, uint64_t iova, uint64_t size)
{
	struct devmig_msg req, rep;
	init_cmd(&req, DEVMIG_CMD_DMA_UNMAP);
	req.u.dma_unmap.argsz = sizeof(struct devmig_dma_unmap);
	req.u.dma_unmap.addr = iova;
	req.u.dma_unmap.size = size;
	int rc = xact(c, &req, NULL, 0, &rep, NULL, NULL);
	if (rc)
		return rc;
	for (size_t i = 0; i < c->nmaps; i++) {
		if (c->maps[i].iova == iova && c->maps[i].size == size) {
			c->maps[i] = c->maps[--c->nmaps];
			break;
		}
	}
	return 0;
}

static int vu_dma_unmap(struct devmig_client *cl, uint64_t iova, uint64_t size)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, dma_unmap_locked(c, iova, size));
}

/* ---- features ---- */

/* One DEVICE_FEATURE exchange; GET data is copied to out (out_len bytes). */
static int feature_locked(struct vu_client *c, uint32_t flags, const void *data,
			  size_t data_len, void *out, size_t out_len)
{
	struct devmig_msg req, rep;
	init_cmd(&req, DEVMIG_CMD_DEVICE_FEATURE);
	req.u.feature.f.flags = flags;
	req.u.feature.f.argsz = (uint32_t)(sizeof(struct devmig_feature) +
					   (out_len > data_len ? out_len : data_len));
	req.u.feature.index = flags & DEVMIG_FEATURE_MASK;
	req.u.feature.data = data;
	req.u.feature.data_len = data_len;
	int rc = xact(c, &req, NULL, 0, &rep, NULL, NULL);
	if (rc)
		return rc;
	if (out_len) {
		if (rep.u.feature.data_len < out_len)
			return -EPROTO;
		memcpy(out, rep.u.feature.data, out_len);
	}
	return 0;
}

static int vu_feature_probe(struct devmig_client *cl, uint32_t index, uint32_t ops)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, feature_locked(c, index | ops | DEVMIG_FEATURE_PROBE, NULL, 0, NULL, 0));
}

static int vu_mig_caps(struct devmig_client *cl, uint64_t *caps)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, feature_locked(c, DEVMIG_FEATURE_MIGRATION | DEVMIG_FEATURE_GET, NULL, 0,
					caps, sizeof(*caps)));
}

static int vu_get_state(struct devmig_client *cl, enum devmig_state *state)
{
	struct vu_client *c = to_vu(cl);
	struct devmig_feature_mig_state st;
	int rc = LOCKED(c, feature_locked(c, DEVMIG_FEATURE_MIG_DEVICE_STATE | DEVMIG_FEATURE_GET,
					  NULL, 0, &st, sizeof(st)));
	if (!rc)
		*state = (enum devmig_state)st.device_state;
	return rc;
}

static bool session_state(enum devmig_state s)
{
	return s == DEVMIG_STATE_PRE_COPY || s == DEVMIG_STATE_PRE_COPY_P2P ||
	       s == DEVMIG_STATE_STOP_COPY || s == DEVMIG_STATE_RESUMING;
}

static void close_fds(int *fds, unsigned n);
static void adopt_session(struct vu_client *c, int fd, enum devmig_state now);

/*
 * SET with the data_fd extension: a reply whose data_fd is 0 carries the
 * descriptor of a session the request opened (the old one, if any, is
 * over); without one, the session goes on only if the new state has one.
 */
static int set_state_fd_locked(struct vu_client *c, enum devmig_state state)
{
	/* data_fd is the server's to fill; an echo of ours says "none". */
	struct devmig_feature_mig_state st = { state, DEVMIG_DATA_FD_NONE };
	struct devmig_msg req, rep;
	int fds[CLIENT_MAX_FDS];
	unsigned nfds = 0;

	init_cmd(&req, DEVMIG_CMD_DEVICE_FEATURE);
	req.u.feature.f.flags = DEVMIG_FEATURE_MIG_DEVICE_STATE | DEVMIG_FEATURE_SET;
	req.u.feature.f.argsz = (uint32_t)(sizeof(struct devmig_feature) + sizeof(st));
	req.u.feature.index = DEVMIG_FEATURE_MIG_DEVICE_STATE;
	req.u.feature.data = (const uint8_t *)&st;
	req.u.feature.data_len = sizeof(st);
	int rc = xact(c, &req, NULL, 0, &rep, fds, &nfds);
	int fd = -1;
	if (!rc) {
		uint32_t idx = rep.u.feature.u.mig_state.data_fd;
		if (idx == 0 && nfds == 1)
			fd = fds[0];
		else if (idx != DEVMIG_DATA_FD_NONE || nfds)
			rc = -EPROTO; /* a descriptor announced and missing, or one unannounced */
		if (fd < 0)
			close_fds(fds, nfds);
	} else {
		close_fds(fds, nfds); /* an error reply brings none: a broken peer's */
	}
	enum devmig_state now = state;
	if (rc) {
		/* The device may have stopped anywhere on the path. A silent one
		 * is not asked: each question would cost the timeout again. */
		struct devmig_feature_mig_state got;
		if (fd >= 0)
			close(fd);
		fd = -1;
		if (rc == -ETIMEDOUT ||
		    feature_locked(c, DEVMIG_FEATURE_MIG_DEVICE_STATE | DEVMIG_FEATURE_GET, NULL, 0,
				   &got, sizeof(got)))
			return rc;
		now = (enum devmig_state)got.device_state;
	}
	adopt_session(c, fd, now);
	return rc;
}

static void close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

/*
 * After a state change that left the device in now: fd (>= 0) is a session
 * the change opened, replacing any other; without one, the session goes on
 * only if now has one.
 */
static void adopt_session(struct vu_client *c, int fd, enum devmig_state now)
{
	if (fd >= 0) {
		close_data_fd(c);
		c->data_fd = fd;
		c->data_save = now != DEVMIG_STATE_RESUMING;
		/* The server made it so; a file status flag, shared with its end. */
		int fl = fcntl(fd, F_GETFL);
		if (fl >= 0 && !(fl & O_NONBLOCK))
			fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	} else if (!session_state(now)) {
		close_data_fd(c);
	}
	c->mig_state = now;
}

static int vu_set_state(struct devmig_client *cl, enum devmig_state state)
{
	struct vu_client *c = to_vu(cl);
	struct devmig_feature_mig_state st = { state, 0 };
	if (vu_has_ext(cl, DEVMIG_EXT_DATA_FD))
		return LOCKED(c, set_state_fd_locked(c, state));
	return LOCKED(c, feature_locked(c, DEVMIG_FEATURE_MIG_DEVICE_STATE | DEVMIG_FEATURE_SET,
					&st, sizeof(st), NULL, 0));
}

static int vu_precopy_progress(struct devmig_client *cl, struct devmig_precopy_progress *p)
{
	struct vu_client *c = to_vu(cl);
	struct devmig_feature_precopy_info pi;

	if (!vu_has_ext(cl, DEVMIG_EXT_PRECOPY_INFO))
		return -ENOTSUP;
	int rc = LOCKED(c, feature_locked(c, DEVMIG_FEATURE_PRECOPY_INFO | DEVMIG_FEATURE_GET, NULL,
					  0, &pi, sizeof(pi)));
	if (!rc) {
		p->initial_bytes = pi.initial_bytes;
		p->dirty_bytes = pi.dirty_bytes;
		p->reinit = false; /* the extension has no such flag */
	}
	return rc;
}

static int vu_compat_info(struct devmig_client *cl, struct devmig_compat_info *info)
{
	struct vu_client *c = to_vu(cl);
	struct devmig_feature_compat fc;

	if (!vu_has_ext(cl, DEVMIG_EXT_COMPAT))
		return -ENOTSUP;
	int rc = LOCKED(c, feature_locked(c, DEVMIG_FEATURE_COMPAT | DEVMIG_FEATURE_GET, NULL, 0, &fc,
					  sizeof(fc)));
	if (rc)
		return rc;
	memset(info, 0, sizeof(*info));
	memcpy(info->version, fc.version, sizeof(info->version));
	info->naccepts = fc.naccepts;
	memcpy(info->accepts, fc.accepts, sizeof(info->accepts));
	info->config_fingerprint = fc.config_fingerprint;
	info->caps = fc.caps;
	return 0;
}

static int vu_stop_copy_size(struct devmig_client *cl, uint64_t *bytes)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, feature_locked(c, DEVMIG_FEATURE_MIG_DATA_SIZE | DEVMIG_FEATURE_GET, NULL,
					0, bytes, sizeof(*bytes)));
}

static int deadline_locked(struct vu_client *c, enum devmig_state state, uint64_t deadline_ns,
			   struct devmig_deadline_result *res)
{
	struct devmig_feature_mig_deadline dl = { .device_state = state, .deadline_ns = deadline_ns };
	struct devmig_msg req, rep;

	init_cmd(&req, DEVMIG_CMD_DEVICE_FEATURE);
	req.u.feature.f.flags = DEVMIG_FEATURE_MIG_STATE_DEADLINE | DEVMIG_FEATURE_SET;
	/* Room for the outcome, which comes back instead of an echo. */
	req.u.feature.f.argsz = (uint32_t)(sizeof(struct devmig_feature) + sizeof(dl));
	req.u.feature.index = DEVMIG_FEATURE_MIG_STATE_DEADLINE;
	req.u.feature.u.deadline = dl;
	/* With data_fd, a session the change opened comes with the reply. */
	const bool datafd = c->server.ext & DEVMIG_EXT_DATA_FD;
	int fds[CLIENT_MAX_FDS];
	unsigned nfds = 0;
	int rc = xact(c, &req, NULL, 0, &rep, datafd ? fds : NULL, datafd ? &nfds : NULL);
	if (rc && rc != -ETIME) {
		close_fds(fds, nfds);
		if (datafd && rc != -ETIMEDOUT) {
			/* The device may have stopped anywhere on the path. */
			struct devmig_feature_mig_state got;
			if (!feature_locked(c, DEVMIG_FEATURE_MIG_DEVICE_STATE | DEVMIG_FEATURE_GET,
					    NULL, 0, &got, sizeof(got)))
				adopt_session(c, -1, (enum devmig_state)got.device_state);
		}
		return rc;
	}
	/* Success and a refusal both carry the outcome (the decoder checked it). */
	if (rep.u.feature.index != DEVMIG_FEATURE_MIG_STATE_DEADLINE ||
	    rep.u.feature.data_len < sizeof(dl)) {
		close_fds(fds, nfds);
		return rc ? rc : -EPROTO;
	}
	const struct devmig_feature_mig_deadline *o = &rep.u.feature.u.deadline;
	res->state = (enum devmig_state)o->device_state;
	res->flags = o->flags;
	res->estimate_ns = o->estimate_ns;
	res->elapsed_ns = o->elapsed_ns;
	res->overrun_ns = o->overrun_ns;
	res->flags &= ~DEVMIG_DEADLINE_DATA_FD; /* the transport's business, not the caller's */
	if (datafd) {
		/* A descriptor announced and missing, or one unannounced. */
		if (nfds != ((o->flags & DEVMIG_DEADLINE_DATA_FD) ? 1u : 0u)) {
			close_fds(fds, nfds);
			nfds = 0;
			rc = rc ? rc : -EPROTO;
		}
		adopt_session(c, nfds ? fds[0] : -1, res->state);
	}
	return rc;
}

static int vu_set_state_deadline(struct devmig_client *cl, enum devmig_state state,
				 uint64_t deadline_ns, struct devmig_deadline_result *res)
{
	struct vu_client *c = to_vu(cl);

	memset(res, 0, sizeof(*res));
	if (!vu_has_ext(cl, DEVMIG_EXT_DEADLINE))
		return -ENOTSUP;
	return LOCKED(c, deadline_locked(c, state, deadline_ns, res));
}

static int vu_arc_estimates(struct devmig_client *cl, struct devmig_feature_arc_estimates *est)
{
	struct vu_client *c = to_vu(cl);

	if (!vu_has_ext(cl, DEVMIG_EXT_DEADLINE))
		return -ENOTSUP;
	return LOCKED(c, feature_locked(c, DEVMIG_FEATURE_ARC_ESTIMATES | DEVMIG_FEATURE_GET, NULL,
					0, est, sizeof(*est)));
}

static int vu_set_dirty_rate(struct devmig_client *cl, uint64_t cap)
{
	struct vu_client *c = to_vu(cl);

	if (!vu_has_ext(cl, DEVMIG_EXT_DIRTY_RATE))
		return -ENOTSUP;
	return LOCKED(c, feature_locked(c, DEVMIG_FEATURE_DIRTY_RATE | DEVMIG_FEATURE_SET, &cap,
					sizeof(cap), NULL, 0));
}

static int vu_dirty_rate(struct devmig_client *cl, struct devmig_feature_dirty_rate *dr)
{
	struct vu_client *c = to_vu(cl);

	if (!vu_has_ext(cl, DEVMIG_EXT_DIRTY_RATE))
		return -ENOTSUP;
	return LOCKED(c, feature_locked(c, DEVMIG_FEATURE_DIRTY_RATE | DEVMIG_FEATURE_GET, NULL, 0,
					dr, sizeof(*dr)));
}

static int log_start_locked(struct vu_client *c, uint64_t *page_size,
			    const struct devmig_dma_logging_range *ranges, uint32_t n)
{
	size_t len = sizeof(struct devmig_feature_dma_logging_control) + (size_t)n * sizeof(*ranges);
	uint8_t *data = malloc(len);
	if (!data)
		return -ENOMEM;
	struct devmig_feature_dma_logging_control ctl = { *page_size, n, 0 };
	memcpy(data, &ctl, sizeof(ctl));
	if (n)
		memcpy(data + sizeof(ctl), ranges, (size_t)n * sizeof(*ranges));
	struct devmig_msg req, rep;
	init_cmd(&req, DEVMIG_CMD_DEVICE_FEATURE);
	req.u.feature.f.flags = DEVMIG_FEATURE_DMA_LOGGING_START | DEVMIG_FEATURE_SET;
	req.u.feature.f.argsz = (uint32_t)(sizeof(struct devmig_feature) + len);
	req.u.feature.index = DEVMIG_FEATURE_DMA_LOGGING_START;
	req.u.feature.data = data;
	req.u.feature.data_len = len;
	req.u.feature.u.log_start.ctl = ctl;
	req.u.feature.u.log_start.ranges = data + sizeof(ctl);
	int rc = xact(c, &req, NULL, 0, &rep, NULL, NULL);
	free(data);
	if (!rc && rep.u.feature.data_len >= sizeof(ctl)) {
		memcpy(&ctl, rep.u.feature.data, sizeof(ctl));
		*page_size = ctl.page_size;
	}
	return rc;
}

static int vu_log_start(struct devmig_client *cl, uint64_t *page_size,
			    const struct devmig_dma_logging_range *ranges, uint32_t n)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, log_start_locked(c, page_size, ranges, n));
}

static int vu_log_stop(struct devmig_client *cl)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, feature_locked(c, DEVMIG_FEATURE_DMA_LOGGING_STOP | DEVMIG_FEATURE_SET,
					NULL, 0, NULL, 0));
}

static int log_report_locked(struct vu_client *c, uint64_t iova, uint64_t length,
			     uint64_t page_size, uint64_t *bitmap)
{
	struct devmig_feature_dma_logging_report rep_in = { iova, length, page_size };
	uint64_t bytes = devmig_log_bitmap_size(length, page_size);
	struct devmig_msg req, rep;

	init_cmd(&req, DEVMIG_CMD_DEVICE_FEATURE);
	req.u.feature.f.flags = DEVMIG_FEATURE_DMA_LOGGING_REPORT | DEVMIG_FEATURE_GET;
	req.u.feature.f.argsz = (uint32_t)(sizeof(struct devmig_feature) + sizeof(rep_in) + bytes);
	req.u.feature.index = DEVMIG_FEATURE_DMA_LOGGING_REPORT;
	req.u.feature.data = (const uint8_t *)&rep_in;
	req.u.feature.data_len = sizeof(rep_in);
	req.u.feature.u.log_report.rep = rep_in;
	int rc = xact(c, &req, NULL, 0, &rep, NULL, NULL);
	if (rc)
		return rc;
	if (rep.u.feature.u.log_report.bitmap_len != bytes)
		return -EPROTO;
	memcpy(bitmap, rep.u.feature.u.log_report.bitmap, bytes);
	return 0;
}

static int vu_log_report(struct devmig_client *cl, uint64_t iova, uint64_t length,
			     uint64_t page_size, uint64_t *bitmap)
{
	struct vu_client *c = to_vu(cl);
	return LOCKED(c, log_report_locked(c, iova, length, page_size, bitmap));
}

/* ---- migration data over the data fd (the data_fd extension) ---- */

static int vu_data_session(struct devmig_client *cl, struct devmig_data_session *ds)
{
	struct vu_client *c = to_vu(cl);

	if (!vu_has_ext(cl, DEVMIG_EXT_DATA_FD))
		return -EOPNOTSUPP;
	if (c->data_fd < 0)
		return -ENOENT;
	ds->fd = c->data_fd;
	ds->save = c->data_save;
	ds->spliceable = true;
	ds->checked = true; /* a devmig server's stream: records with their CRC32C */
	return 0;
}

static bool in_precopy(const struct vu_client *c)
{
	return c->mig_state == DEVMIG_STATE_PRE_COPY || c->mig_state == DEVMIG_STATE_PRE_COPY_P2P;
}

static ssize_t vu_data_read(struct devmig_client *cl, void *buf, size_t len)
{
	struct vu_client *c = to_vu(cl);

	if (c->data_fd < 0 || !c->data_save)
		return -EINVAL; /* no save session in this state */
	for (;;) {
		ssize_t n = read(c->data_fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		/* The server's pump ends a stream early only when saving failed. */
		if (n == 0 && in_precopy(c))
			return -EIO;
		return n;
	}
}

static ssize_t vu_data_write(struct devmig_client *cl, const void *buf, size_t len)
{
	struct vu_client *c = to_vu(cl);
	struct data_sigpipe g;

	if (c->data_fd < 0 || c->data_save)
		return -EINVAL; /* not RESUMING */
	data_sigpipe_block(&g);
	ssize_t n;
	do {
		n = write(c->data_fd, buf, len);
	} while (n < 0 && errno == EINTR);
	int err = n < 0 ? errno : 0;
	data_sigpipe_unblock(&g, err == EPIPE);
	return n < 0 ? -err : n;
}

static int vu_precopy_progress(struct devmig_client *cl, struct devmig_precopy_progress *p);

static int vu_data_wait(struct devmig_client *cl, int timeout_ms)
{
	struct vu_client *c = to_vu(cl);
	int64_t deadline = data_now_ms() + timeout_ms;

	if (c->data_fd < 0)
		return -EINVAL;
	if (!c->data_save)
		return data_fd_wait(c->data_fd, POLLOUT, timeout_ms);
	if (!in_precopy(c))
		return data_fd_wait(c->data_fd, POLLIN, timeout_ms); /* data or the end comes */
	/*
	 * PRE_COPY: an empty pipe is the temporary end only if the server has
	 * nothing left either. Its progress counts what the pipe holds, and the
	 * query makes its pump look for new data, so "nothing" is exact.
	 */
	int rc = data_fd_wait(c->data_fd, POLLIN, timeout_ms < DATA_GRACE_MS ? timeout_ms
									      : DATA_GRACE_MS);
	while (rc == -ETIMEDOUT) {
		struct devmig_precopy_progress p;
		rc = vu_precopy_progress(cl, &p);
		if (rc)
			return rc;
		if (!p.initial_bytes && !p.dirty_bytes)
			return data_fd_wait(c->data_fd, POLLIN, 0) ? -ENOMSG : 0;
		int64_t left = deadline - data_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		rc = data_fd_wait(c->data_fd, POLLIN,
				  left < DATA_RECHECK_MS ? (int)left : DATA_RECHECK_MS);
	}
	return rc;
}

/*
 * Up to len bytes of a save session, as one MIG_DATA_READ would give them:
 * fewer only at the end (*ended) or the temporary end.
 */
static ssize_t fd_read_full(struct vu_client *c, void *buf, size_t len, bool *ended)
{
	size_t got = 0;

	*ended = false;
	while (got < len) {
		ssize_t n = vu_data_read(&c->base, (uint8_t *)buf + got, len - got);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0) {
			*ended = true;
			break;
		}
		if (n != -EAGAIN)
			return n;
		int rc = vu_data_wait(&c->base, c->cfg.timeout_ms);
		if (rc == -ENOMSG) {
			*ended = true;
			break;
		}
		if (rc)
			return rc;
	}
	return (ssize_t)got;
}

static ssize_t fd_read_stream(struct vu_client *c, size_t chunk, uint64_t limit, bool *ended,
			      int (*sink)(void *opaque, const void *data, size_t len),
			      void *opaque)
{
	ssize_t total = 0;

	if (!chunk)
		return -EINVAL;
	if (chunk > c->xfer_max)
		chunk = c->xfer_max;
	uint8_t *buf = malloc(chunk);
	if (!buf)
		return -ENOMEM;
	while (!*ended && (!limit || (uint64_t)total < limit)) {
		ssize_t n = fd_read_full(c, buf, chunk, ended);
		if (n < 0) {
			total = n;
			break;
		}
		int rc = n ? sink(opaque, buf, (size_t)n) : 0;
		if (rc) {
			total = rc;
			break;
		}
		total += n;
	}
	free(buf);
	return total;
}

/* All of buf into a load session; with check, what the server's status
 * says of it (a refusal comes back as MIG_DATA_WRITE's would). */
static int fd_write(struct vu_client *c, const void *buf, size_t len, bool check)
{
	if (c->data_fd < 0 || c->data_save)
		return -EINVAL; /* not RESUMING */
	int rc = data_write_all(c->data_fd, buf, len, c->cfg.timeout_ms);
	if (rc || !check || !(c->server.ext & DEVMIG_EXT_MIG_STATUS))
		return rc;
	struct devmig_feature_mig_status st;
	client_lock(c);
	rc = feature_locked(c, DEVMIG_FEATURE_MIG_STATUS | DEVMIG_FEATURE_GET, NULL, 0, &st,
			    sizeof(st));
	client_unlock(c);
	return rc ? rc : st.load_error;
}

/* ---- migration data ---- */

static ssize_t mig_read_locked(struct vu_client *c, void *buf, size_t len)
{
	struct devmig_msg req, rep;
	uint32_t n = len < c->xfer_max ? (uint32_t)len : c->xfer_max;

	/* The data lands straight in buf. */
	struct devmig_rx_tail tail = { .head_len = sizeof(struct devmig_mig_data), .buf = buf, .cap = n };
	init_cmd(&req, DEVMIG_CMD_MIG_DATA_READ);
	req.u.mig_data.md.argsz = (uint32_t)sizeof(struct devmig_mig_data) + n;
	req.u.mig_data.md.size = n;
	int rc = xact_tail(c, &req, NULL, 0, &rep, NULL, NULL, &tail);
	if (rc)
		return rc;
	/* Data and any padding together never exceed what was asked. */
	if (rep.u.mig_data.md.size > n || rep.u.mig_data.pad > n - rep.u.mig_data.md.size)
		return -EPROTO;
	if (rep.u.mig_data.data) /* small replies arrive whole */
		memcpy(buf, rep.u.mig_data.data, rep.u.mig_data.md.size);
	return rep.u.mig_data.md.size;
}

static ssize_t vu_mig_read(struct devmig_client *cl, void *buf, size_t len)
{
	struct vu_client *c = to_vu(cl);
	if (!len)
		return 0;
	if (vu_has_ext(cl, DEVMIG_EXT_DATA_FD)) {
		bool ended;
		return fd_read_full(c, buf, len, &ended);
	}
	client_lock(c);
	ssize_t n = mig_read_locked(c, buf, len);
	client_unlock(c);
	return n;
}

/*
 * Read the stream with up to depth MIG_DATA_READ requests in flight, so the
 * server prepares the next chunk while this one is on its way. Stops asking
 * after the first short reply; replies to requests already sent are still
 * delivered, in order (in PRE_COPY they may carry data).
 */
static ssize_t mig_read_stream_locked(struct vu_client *c, size_t chunk, unsigned depth,
				      uint64_t limit, bool *ended,
				      int (*sink)(void *opaque, const void *data, size_t len),
				      void *opaque)
{
	uint64_t asked = 0;

	uint32_t n = chunk < c->xfer_max ? (uint32_t)chunk : c->xfer_max;
	uint16_t ids[DEVMIG_CLIENT_MAX_DEPTH];
	uint8_t *bufs;
	unsigned head = 0, inflight = 0;
	bool more = true;
	ssize_t total = 0;
	int rc = 0;

	if (!n || !depth)
		return -EINVAL;
	if (depth > DEVMIG_CLIENT_MAX_DEPTH)
		depth = DEVMIG_CLIENT_MAX_DEPTH;
	bufs = malloc((size_t)n * depth);
	if (!bufs)
		return -ENOMEM;
	while (more || inflight) {
		/* Keep the pipe full while the stream has not come up short; past
		 * the limit only while no other thread waits for the client. */
		while (more && inflight < depth && !rc &&
		       (!limit || asked < limit || !client_contended(c))) {
			struct devmig_msg req;
			init_cmd(&req, DEVMIG_CMD_MIG_DATA_READ);
			req.u.mig_data.md.argsz = (uint32_t)sizeof(struct devmig_mig_data) + n;
			req.u.mig_data.md.size = n;
			rc = send_cmd(c, &req, NULL, 0);
			if (!rc) {
				ids[(head + inflight++) % depth] = req.hdr.msg_id;
				asked += n;
			}
		}
		if (rc || !inflight)
			break;
		uint8_t *buf = bufs + (size_t)(head % depth) * n;
		struct devmig_rx_tail tail = { .head_len = sizeof(struct devmig_mig_data), .buf = buf, .cap = n };
		struct devmig_msg rep;
		rc = recv_reply(c, DEVMIG_CMD_MIG_DATA_READ, ids[head % depth], &rep, NULL, NULL, &tail);
		head++;
		inflight--;
		if (rc)
			break;
		uint32_t got = rep.u.mig_data.md.size;
		if (got > n || rep.u.mig_data.pad > n - got) {
			rc = -EPROTO;
			break;
		}
		if (rep.u.mig_data.data)
			memcpy(buf, rep.u.mig_data.data, got);
		if (got < n) {
			more = false;
			*ended = true;
		}
		if (got && (rc = sink(opaque, buf, got)))
			break;
		total += got;
	}
	/* The replies still on their way are dropped when they come, so the
	 * next command on this client pairs with its own. */
	while (rc && inflight) {
		abandon(c, ids[head % depth]);
		head++;
		inflight--;
	}
	free(bufs);
	return rc ? rc : total;
}

static ssize_t vu_mig_read_stream(struct devmig_client *cl, size_t chunk, unsigned depth,
				      uint64_t limit, bool *ended,
				      int (*sink)(void *opaque, const void *data, size_t len),
				      void *opaque)
{
	struct vu_client *c = to_vu(cl);
	bool dummy;
	if (!ended)
		ended = &dummy;
	*ended = false;
	if (vu_has_ext(cl, DEVMIG_EXT_DATA_FD))
		return fd_read_stream(c, chunk, limit, ended, sink, opaque);
	client_lock(c);
	ssize_t n = mig_read_stream_locked(c, chunk, depth, limit, ended, sink, opaque);
	client_unlock(c);
	return n;
}

static int mig_write_locked(struct vu_client *c, const void *buf, size_t len)
{
	struct devmig_msg req, rep;

	while (len) {
		uint32_t n = len < c->xfer_max ? (uint32_t)len : c->xfer_max;
		init_cmd(&req, DEVMIG_CMD_MIG_DATA_WRITE);
		req.u.mig_data.md.argsz = (uint32_t)sizeof(struct devmig_mig_data) + n;
		req.u.mig_data.md.size = n;
		req.u.mig_data.data = buf;
		int rc = xact(c, &req, NULL, 0, &rep, NULL, NULL);
		if (rc)
			return rc;
		buf = (const uint8_t *)buf + n;
		len -= n;
	}
	return 0;
}

static int vu_mig_write(struct devmig_client *cl, const void *buf, size_t len)
{
	struct vu_client *c = to_vu(cl);
	if (vu_has_ext(cl, DEVMIG_EXT_DATA_FD))
		return fd_write(c, buf, len, true);
	return LOCKED(c, mig_write_locked(c, buf, len));
}

static int mig_write_nowait_locked(struct vu_client *c, const void *buf, size_t len)
{
	struct devmig_msg req;

	while (len) {
		uint32_t n = len < c->xfer_max ? (uint32_t)len : c->xfer_max;
		init_cmd(&req, DEVMIG_CMD_MIG_DATA_WRITE);
		req.hdr.flags = DEVMIG_HDR_NO_REPLY;
		req.u.mig_data.md.argsz = (uint32_t)sizeof(struct devmig_mig_data) + n;
		req.u.mig_data.md.size = n;
		req.u.mig_data.data = buf;
		int rc = send_cmd(c, &req, NULL, 0);
		if (rc)
			return rc;
		buf = (const uint8_t *)buf + n;
		len -= n;
	}
	return 0;
}

static int vu_mig_write_nowait(struct devmig_client *cl, const void *buf, size_t len)
{
	struct vu_client *c = to_vu(cl);
	if (vu_has_ext(cl, DEVMIG_EXT_DATA_FD))
		return fd_write(c, buf, len, false);
	if (!vu_has_ext(cl, DEVMIG_EXT_MIG_STATUS))
		return -ENOTSUP;
	return LOCKED(c, mig_write_nowait_locked(c, buf, len));
}

static int vu_mig_status(struct devmig_client *cl, uint64_t *bytes_loaded, int *load_error,
			     char *reason, size_t reason_len)
{
	struct vu_client *c = to_vu(cl);
	struct devmig_feature_mig_status st;

	if (!vu_has_ext(cl, DEVMIG_EXT_MIG_STATUS))
		return -ENOTSUP;
	int rc = LOCKED(c, feature_locked(c, DEVMIG_FEATURE_MIG_STATUS | DEVMIG_FEATURE_GET, NULL, 0,
					  &st, sizeof(st)));
	if (rc)
		return rc;
	*bytes_loaded = st.bytes_loaded;
	*load_error = st.load_error;
	if (reason && reason_len)
		snprintf(reason, reason_len, "%s", st.reason);
	return 0;
}

/* ---- raw and polling ---- */

static int vu_poll(struct devmig_client *cl)
{
	struct vu_client *c = to_vu(cl);
	int rc = 0;
	client_lock(c);
	for (;;) {
		struct devmig_rx rx;
		struct devmig_msg m;
		if (c->broken) {
			rc = -ENOTCONN;
			break;
		}
		if (c->rd.end == c->rd.start) {
			uint8_t probe;
			ssize_t n = recv(c->sock, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
			if (n <= 0) {
				rc = n == 0 ? -ECONNRESET : (errno == EAGAIN ? 0 : -errno);
				break;
			}
		}
		rc = devmig_msg_recv(&c->rd, &c->lim, &rx);
		if (rc <= 0) {
			rc = rc ? rc : -ECONNRESET;
			c->broken = rc != -EAGAIN;
			break;
		}
		devmig_rx_close_fds(&rx);
		bool bad = rx.skipped || devmig_decode(rx.msg, rx.len, 0, &c->lim, &m);
		const struct devmig_hdr *h = rx.skipped ? &rx.hdr : &m.hdr;
		if (is_reply(h) && take_abandoned(c, h->msg_id))
			continue; /* a late reply to a request we gave up on */
		if (bad || (m.hdr.flags & DEVMIG_HDR_TYPE_MASK) != DEVMIG_HDR_TYPE_COMMAND) {
			rc = -EPROTO;
			break;
		}
		rc = serve_dma(c, &m);
		if (rc)
			break;
	}
	client_unlock(c);
	return rc;
}

static ssize_t vu_raw(struct devmig_client *cl, const void *msg, size_t len, const int *fds,
			  unsigned nfds, void *reply, size_t cap)
{
	struct vu_client *c = to_vu(cl);
	struct iovec iov = { (void *)msg, len };
	struct devmig_rx rx;
	ssize_t ret;

	client_lock(c);
	int rc = devmig_msg_send_timed(c->sock, &iov, 1, fds, nfds, c->cfg.timeout_ms);
	if (rc) {
		ret = rc;
		goto out;
	}
	rc = devmig_msg_recv(&c->rd, &c->lim, &rx);
	if (rc <= 0) {
		ret = rc ? rc : -ECONNRESET;
		goto out;
	}
	devmig_rx_close_fds(&rx);
	if (rx.skipped) {
		ret = -EPROTO;
		goto out;
	}
	ret = (ssize_t)(rx.len < cap ? rx.len : cap);
	memcpy(reply, rx.msg, (size_t)ret);
out:
	client_unlock(c);
	return ret;
}

static void vu_describe(struct devmig_client *cl, char *buf, size_t len)
{
	struct vu_client *c = to_vu(cl);
	snprintf(buf, len, "vfio-user socket %s, protocol %u.%u", c->path, DEVMIG_VFIO_USER_MAJOR,
		 DEVMIG_VFIO_USER_MINOR);
}

static const struct devmig_client_ops vu_ops = {
	.name = "vfio-user",
	.close = vu_close,
	.server_caps = vu_server_caps,
	.has_ext = vu_has_ext,
	.fd = vu_fd,
	.device_info = vu_device_info,
	.region_info = vu_region_info,
	.irq_info = vu_irq_info,
	.set_irqs = vu_set_irqs,
	.set_irqs_bool = vu_set_irqs_bool,
	.region_read = vu_region_read,
	.region_write = vu_region_write,
	.reset = vu_reset,
	.dma_map = vu_dma_map,
	.dma_unmap = vu_dma_unmap,
	.feature_probe = vu_feature_probe,
	.mig_caps = vu_mig_caps,
	.get_state = vu_get_state,
	.set_state = vu_set_state,
	.mig_read = vu_mig_read,
	.mig_read_stream = vu_mig_read_stream,
	.mig_write = vu_mig_write,
	.mig_write_nowait = vu_mig_write_nowait,
	.mig_status = vu_mig_status,
	.compat_info = vu_compat_info,
	.precopy_progress = vu_precopy_progress,
	.stop_copy_size = vu_stop_copy_size,
	.data_session = vu_data_session,
	.data_read = vu_data_read,
	.data_write = vu_data_write,
	.data_wait = vu_data_wait,
	.set_state_deadline = vu_set_state_deadline,
	.arc_estimates = vu_arc_estimates,
	.set_dirty_rate = vu_set_dirty_rate,
	.dirty_rate = vu_dirty_rate,
	.log_start = vu_log_start,
	.log_stop = vu_log_stop,
	.log_report = vu_log_report,
	.poll = vu_poll,
	.raw = vu_raw,
	.describe = vu_describe,
	.reconnect = vu_reconnect,
	.broken = vu_broken,
};
