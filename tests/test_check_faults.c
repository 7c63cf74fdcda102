/* SPDX-License-Identifier: MIT */
/*
 * The conformance checker can fail: it runs against devices that each get
 * one rule wrong, and must name the check that catches it (and stay within
 * its bounds doing so). The wrong rules come from a shim between the checker
 * and a correct devmig server (wrong next hop, reset leaving the wrong state
 * or refused, a refused load reported as accepted or leaving a register
 * changed, data moved in the wrong state, an accepted forbidden arc or ERROR
 * request, a size estimate too low or far too high, PRE_COPY progress that
 * never falls, a stream that never ends, overlapping DMA log ranges accepted, a reply that never
 * comes) and from a test device whose arc fails into ERROR. The same shim
 * with no fault passes every check, so the faults, not the shim, fail them.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices.h"
#include "devmig/check.h"
#include "devmig/client.h"
#include "devmig/device.h"
#include "devmig/server.h"
#include "fixture.h"
#include "msgio.h"

enum fault {
	F_NONE,
	F_NEXT_HOP,           /* STOP -> RUNNING is carried out as STOP -> RUNNING_P2P */
	F_RESET_STATE,        /* reset leaves the device in STOP */
	F_RESET_REFUSED_STOP, /* reset refused in STOP and STOP_COPY (as libvfio-user) */
	F_ACCEPT_BAD_STREAM,  /* a refused RESUMING -> STOP is reported as done */
	F_APPLY_ON_REFUSAL,   /* a refused RESUMING -> STOP leaves a register changed */
	F_READ_WRONG_STATE,   /* MIG_DATA_READ outside the saving states gives 0 bytes */
	F_WRITE_WRONG_STATE,  /* MIG_DATA_WRITE outside RESUMING is accepted */
	F_FORBIDDEN_ACCEPTED, /* STOP_COPY -> PRE_COPY is reported as done */
	F_ERROR_ACCEPTED,     /* a request of ERROR is reported as done */
	F_ESTIMATE_LOW,       /* MIG_DATA_SIZE says 1 byte */
	F_ESTIMATE_HIGH,      /* MIG_DATA_SIZE says 1 GiB */
	F_INITIAL_STUCK,      /* PRE_COPY progress: initial_bytes stays at 1 MiB */
	F_ENDLESS_STREAM,     /* STOP_COPY never ends: every read is full */
	F_LOG_OVERLAP,        /* DMA logging START with overlapping ranges accepted */
	F_SILENT,             /* MIG_DATA_SIZE is never answered */
};

/* counter's SCRATCH2 register, which F_APPLY_ON_REFUSAL changes */
#define COUNTER_SCRATCH2 0x10u
#define PROXY_ID_BASE 0xf000u

/* ---- the shim ---- */

struct pending {
	bool used;
	uint16_t cmd;
	uint32_t feature; /* DEVICE_FEATURE flags */
	uint32_t state;   /* SET MIG_DEVICE_STATE: the state asked for (after any rewrite) */
	uint32_t read_size;
	uint8_t *payload; /* request bytes after the header, for an echoed reply */
	size_t payload_len;
};

struct proxy {
	enum fault fault;
	char path[108];
	const char *server_path;
	int lsock, csock, ssock;
	pthread_t thread;
	bool running;
	uint32_t state; /* the device's state as the replies tell it */
	struct devmig_msg_reader crd, srd;
	struct devmig_wire_limits lim;
	struct pending pend[65536 / 64]; /* by msg_id % size: the client waits for each reply */
	uint16_t next_id;
};

static int send_raw(int sock, const void *buf, size_t len, const int *fds, unsigned nfds)
{
	struct iovec iov = { (void *)buf, len };
	return devmig_msg_send(sock, &iov, 1, fds, nfds);
}

/* A reply of our own to the client: the header and payload given. */
static void reply(struct proxy *p, const struct devmig_hdr *req, int error_no, const void *payload,
		  size_t len)
{
	uint8_t buf[4096];
	struct devmig_hdr h = { req->msg_id, req->cmd, (uint32_t)(sizeof(h) + len),
				DEVMIG_HDR_TYPE_REPLY | (error_no ? DEVMIG_HDR_ERROR : 0),
				(uint32_t)error_no };
	assert_true(sizeof(h) + len <= sizeof(buf));
	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), payload, len);
	assert_int_equal(send_raw(p->csock, buf, sizeof(h) + len, NULL, 0), 0);
}

/* A command of the shim's own to the server, its reply taken here. */
static int own_command(struct proxy *p, uint16_t cmd, const void *payload, size_t len)
{
	uint8_t buf[256];
	struct devmig_hdr h = { (uint16_t)(PROXY_ID_BASE + p->next_id++ % 256), cmd,
				(uint32_t)(sizeof(h) + len), DEVMIG_HDR_TYPE_COMMAND, 0 };
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, len);
	if (send_raw(p->ssock, buf, sizeof(h) + len, NULL, 0))
		return -EIO;
	struct devmig_rx rx;
	if (devmig_msg_recv(&p->srd, &p->lim, &rx) <= 0)
		return -EIO;
	devmig_rx_close_fds(&rx);
	return rx.hdr.msg_id == h.msg_id && !(rx.hdr.flags & DEVMIG_HDR_ERROR) ? 0 : -EIO;
}

static int set_state_own(struct proxy *p, uint32_t s)
{
	struct {
		struct devmig_feature f;
		struct devmig_feature_mig_state st;
	} __attribute__((packed)) m = {
		{ sizeof(m), DEVMIG_FEATURE_MIG_DEVICE_STATE | DEVMIG_FEATURE_SET }, { s, 0 } };
	return own_command(p, DEVMIG_CMD_DEVICE_FEATURE, &m, sizeof(m));
}

static bool saving(uint32_t s)
{
	return devmig_state_is_saving(s);
}

/* A command from the client: answer it here, rewrite it, or pass it on. */
static void from_client(struct proxy *p, struct devmig_rx *rx)
{
	uint8_t *msg = (uint8_t *)rx->msg;
	const struct devmig_hdr *h = &rx->hdr;
	const uint8_t *body = msg + sizeof(*h);
	size_t blen = rx->len - sizeof(*h);
	struct pending *pe = &p->pend[h->msg_id % (sizeof(p->pend) / sizeof(p->pend[0]))];

	free(pe->payload);
	memset(pe, 0, sizeof(*pe));
	pe->used = true;
	pe->cmd = h->cmd;
	pe->payload = malloc(blen ? blen : 1);
	assert_non_null(pe->payload);
	memcpy(pe->payload, body, blen);
	pe->payload_len = blen;
	if (h->cmd == DEVMIG_CMD_DEVICE_FEATURE && blen >= 8) {
		memcpy(&pe->feature, body + 4, 4);
		if ((pe->feature & 0xffff) == DEVMIG_FEATURE_MIG_DEVICE_STATE &&
		    (pe->feature & DEVMIG_FEATURE_SET) && blen >= 12) {
			memcpy(&pe->state, body + 8, 4);
			if (p->fault == F_NEXT_HOP && p->state == DEVMIG_STATE_STOP &&
			    pe->state == DEVMIG_STATE_RUNNING) {
				pe->state = DEVMIG_STATE_RUNNING_P2P;
				memcpy(msg + sizeof(*h) + 8, &pe->state, 4);
			}
		}
		if (p->fault == F_SILENT && (pe->feature & 0xffff) == DEVMIG_FEATURE_MIG_DATA_SIZE)
			return; /* never answered */
	}
	if (h->cmd == DEVMIG_CMD_MIG_DATA_READ && blen >= 8)
		memcpy(&pe->read_size, body + 4, 4);
	if (p->fault == F_READ_WRONG_STATE && h->cmd == DEVMIG_CMD_MIG_DATA_READ &&
	    !saving(p->state)) {
		struct devmig_mig_data md = { sizeof(md), 0 };
		reply(p, h, 0, &md, sizeof(md));
		return;
	}
	if (p->fault == F_WRITE_WRONG_STATE && h->cmd == DEVMIG_CMD_MIG_DATA_WRITE &&
	    p->state != DEVMIG_STATE_RESUMING) {
		reply(p, h, 0, NULL, 0);
		return;
	}
	if (p->fault == F_RESET_REFUSED_STOP && h->cmd == DEVMIG_CMD_DEVICE_RESET &&
	    (p->state == DEVMIG_STATE_STOP || p->state == DEVMIG_STATE_STOP_COPY)) {
		reply(p, h, EBUSY, NULL, 0);
		return;
	}
	assert_int_equal(send_raw(p->ssock, msg, rx->len, rx->fds, rx->nfds), 0);
}

/* A reply from the server: pass it on, or change it. */
static void from_server(struct proxy *p, struct devmig_rx *rx)
{
	uint8_t *msg = (uint8_t *)rx->msg;
	struct devmig_hdr *h = (struct devmig_hdr *)(void *)msg;
	struct pending *pe = &p->pend[h->msg_id % (sizeof(p->pend) / sizeof(p->pend[0]))];
	bool err = h->flags & DEVMIG_HDR_ERROR;
	uint32_t index = pe->feature & 0xffff;

	if ((h->flags & DEVMIG_HDR_TYPE_MASK) != DEVMIG_HDR_TYPE_REPLY || !pe->used ||
	    pe->cmd != h->cmd) {
		assert_int_equal(send_raw(p->csock, msg, rx->len, rx->fds, rx->nfds), 0);
		return;
	}
	pe->used = false;
	if (h->cmd == DEVMIG_CMD_DEVICE_FEATURE && index == DEVMIG_FEATURE_MIG_DEVICE_STATE &&
	    (pe->feature & DEVMIG_FEATURE_SET)) {
		if (!err) {
			p->state = pe->state;
		} else if ((p->fault == F_ACCEPT_BAD_STREAM && p->state == DEVMIG_STATE_RESUMING &&
			    pe->state == DEVMIG_STATE_STOP) ||
			   (p->fault == F_FORBIDDEN_ACCEPTED && p->state == DEVMIG_STATE_STOP_COPY &&
			    pe->state == DEVMIG_STATE_PRE_COPY) ||
			   (p->fault == F_ERROR_ACCEPTED && pe->state == DEVMIG_STATE_ERROR)) {
			reply(p, h, 0, pe->payload, pe->payload_len);
			return;
		} else if (p->fault == F_APPLY_ON_REFUSAL && p->state == DEVMIG_STATE_RESUMING &&
			   pe->state == DEVMIG_STATE_STOP) {
			struct {
				struct devmig_region_access a;
				uint32_t v;
			} __attribute__((packed)) w = { { COUNTER_SCRATCH2, 0, 4 }, 0x5a5a5a5a };
			assert_int_equal(own_command(p, DEVMIG_CMD_REGION_WRITE, &w, sizeof(w)), 0);
		}
	}
	if (h->cmd == DEVMIG_CMD_DEVICE_RESET && !err) {
		p->state = DEVMIG_STATE_RUNNING;
		if (p->fault == F_RESET_STATE) {
			assert_int_equal(set_state_own(p, DEVMIG_STATE_STOP), 0);
			p->state = DEVMIG_STATE_STOP;
		}
	}
	if (h->cmd == DEVMIG_CMD_DEVICE_FEATURE && !err && rx->len >= 32) {
		uint64_t v;
		if ((p->fault == F_ESTIMATE_LOW || p->fault == F_ESTIMATE_HIGH) &&
		    index == DEVMIG_FEATURE_MIG_DATA_SIZE) {
			v = p->fault == F_ESTIMATE_LOW ? 1 : 1ull << 30;
			memcpy(msg + 24, &v, 8);
		}
		if (p->fault == F_INITIAL_STUCK && index == DEVMIG_FEATURE_PRECOPY_INFO) {
			v = 1u << 20;
			memcpy(msg + 24, &v, 8);
		}
	}
	if (h->cmd == DEVMIG_CMD_DEVICE_FEATURE && err && p->fault == F_LOG_OVERLAP &&
	    index == DEVMIG_FEATURE_DMA_LOGGING_START) {
		reply(p, h, 0, pe->payload, pe->payload_len);
		return;
	}
	if (h->cmd == DEVMIG_CMD_MIG_DATA_READ && !err && p->fault == F_ENDLESS_STREAM &&
	    p->state == DEVMIG_STATE_STOP_COPY && rx->len < 24 + (size_t)pe->read_size) {
		/* Pad every short read to full with zeros: the stream never ends. */
		size_t n = 24 + (size_t)pe->read_size;
		uint8_t *full = calloc(1, n);
		assert_non_null(full);
		memcpy(full, msg, rx->len);
		struct devmig_hdr *fh = (struct devmig_hdr *)(void *)full;
		struct devmig_mig_data md = { (uint32_t)(n - 16), pe->read_size };
		fh->msg_size = (uint32_t)n;
		memcpy(full + 16, &md, sizeof(md));
		assert_int_equal(send_raw(p->csock, full, n, NULL, 0), 0);
		free(full);
		devmig_rx_close_fds(rx);
		return;
	}
	assert_int_equal(send_raw(p->csock, msg, rx->len, rx->fds, rx->nfds), 0);
}

static void *proxy_main(void *opaque)
{
	struct proxy *p = opaque;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	p->csock = accept(p->lsock, NULL, NULL);
	if (p->csock < 0)
		return NULL;
	p->ssock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p->server_path);
	if (connect(p->ssock, (struct sockaddr *)&sa, sizeof(sa)))
		return NULL;
	devmig_msg_reader_init(&p->crd, p->csock, 4u << 20);
	devmig_msg_reader_init(&p->srd, p->ssock, 4u << 20);
	for (;;) {
		struct pollfd pf[2] = { { p->csock, POLLIN, 0 }, { p->ssock, POLLIN, 0 } };
		/* Messages already buffered are handled before waiting for more. */
		bool cbuf = p->crd.end > p->crd.start, sbuf = p->srd.end > p->srd.start;
		if (!cbuf && !sbuf && poll(pf, 2, -1) < 0)
			break;
		struct devmig_rx rx;
		if (cbuf || (pf[0].revents & (POLLIN | POLLHUP))) {
			if (devmig_msg_recv(&p->crd, &p->lim, &rx) <= 0)
				break;
			from_client(p, &rx);
			devmig_rx_close_fds(&rx);
			continue;
		}
		if (sbuf || (pf[1].revents & (POLLIN | POLLHUP))) {
			if (devmig_msg_recv(&p->srd, &p->lim, &rx) <= 0)
				break;
			from_server(p, &rx);
			devmig_rx_close_fds(&rx);
		}
	}
	close(p->ssock);
	close(p->csock);
	devmig_msg_reader_free(&p->crd);
	devmig_msg_reader_free(&p->srd);
	return NULL;
}

static void proxy_start(struct proxy *p, const char *dir, const char *name, const char *server_path,
			enum fault fault)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(p, 0, sizeof(*p));
	p->fault = fault;
	p->server_path = server_path;
	p->state = DEVMIG_STATE_RUNNING;
	devmig_wire_limits_default(&p->lim);
	p->lim.max_msg_size = 4u << 20;
	p->lim.max_data_xfer_size = 2u << 20;
	p->lim.max_msg_fds = DEVMIG_MSGIO_MAX_FDS;
	if (snprintf(p->path, sizeof(p->path), "%s/%s", dir, name) >= (int)sizeof(p->path))
		fail_msg("the shim's socket path is too long: %s/%s", dir, name);
	strcpy(sa.sun_path, p->path);
	p->lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->lsock >= 0);
	assert_int_equal(bind(p->lsock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(p->lsock, 1), 0);
	assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
	p->running = true;
}

static void proxy_stop(struct proxy *p)
{
	if (!p->running)
		return;
	/* The client has closed: the shim sees EOF and ends. */
	pthread_join(p->thread, NULL);
	close(p->lsock);
	unlink(p->path);
	for (size_t i = 0; i < sizeof(p->pend) / sizeof(p->pend[0]); i++)
		free(p->pend[i].payload);
	p->running = false;
}

/* ---- a device whose RUNNING_P2P -> RUNNING arc fails into ERROR ---- */

struct errdev {
	struct devmig_device dev;
	uint8_t regs[64], staged[64];
};

static struct errdev *to_errdev(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct errdev, dev);
}

static int errdev_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	(void)dev;
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10fd);
	return rc ? rc : devmig_pci_set_bar(cfg, 0, 4096, 0);
}

static int errdev_bar(struct devmig_device *dev, unsigned bar, uint64_t off, void *buf, size_t len,
		      bool is_write)
{
	struct errdev *e = to_errdev(dev);
	if (bar || off + len > sizeof(e->regs)) {
		if (!is_write)
			memset(buf, 0, len);
		return 0;
	}
	if (is_write)
		memcpy(e->regs + off, buf, len);
	else
		memcpy(buf, e->regs + off, len);
	return 0;
}

static int errdev_arc(struct devmig_device *dev, enum devmig_state from, enum devmig_state to,
		      struct devmig_arc_result *res)
{
	(void)dev;
	if (from == DEVMIG_STATE_RUNNING_P2P && to == DEVMIG_STATE_RUNNING) {
		res->broken = true;
		snprintf(res->why, sizeof(res->why), "errdev cannot resume");
		return -EIO;
	}
	return 0;
}

static void errdev_reset(struct devmig_device *dev)
{
	memset(to_errdev(dev)->regs, 0, sizeof(to_errdev(dev)->regs));
}

static int errdev_save(struct devmig_device *dev, struct devmig_save *s)
{
	return devmig_save_record(s, 1, to_errdev(dev)->regs, sizeof(to_errdev(dev)->regs));
}

static uint64_t errdev_stop_copy_size(struct devmig_device *dev)
{
	return devmig_device_default_stop_copy_size(dev) + DEVMIG_RECORD_OVERHEAD +
	       sizeof(to_errdev(dev)->regs);
}

static int errdev_load(struct devmig_device *dev, unsigned type, const void *data, size_t len,
		       char *why, size_t whylen)
{
	if (type != 1 || len != sizeof(to_errdev(dev)->regs)) {
		snprintf(why, whylen, "errdev: record %u of %zu bytes", type, len);
		return -EINVAL;
	}
	memcpy(to_errdev(dev)->staged, data, len);
	return 0;
}

static void errdev_load_apply(struct devmig_device *dev)
{
	memcpy(to_errdev(dev)->regs, to_errdev(dev)->staged, sizeof(to_errdev(dev)->regs));
}

static const struct devmig_device_id errdev_id = { .name = "errdev",
						   .version = "1af4:10fd-errdev-v1" };
static const struct devmig_device_ops errdev_ops = {
	.realize = errdev_realize,
	.reset = errdev_reset,
	.bar_access = errdev_bar,
};
static const struct devmig_migration_ops errdev_mig = {
	.caps = DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P,
	.arc = errdev_arc,
	.save_state = errdev_save,
	.stop_copy_size = errdev_stop_copy_size,
	.load = errdev_load,
	.load_apply = errdev_load_apply,
};

static struct devmig_device *errdev_create(const char *args, char *err, size_t errlen)
{
	(void)args;
	struct errdev *e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->dev.id = &errdev_id;
	e->dev.ops = &errdev_ops;
	e->dev.mig = &errdev_mig;
	if (devmig_device_init(&e->dev)) {
		free(e);
		snprintf(err, errlen, "errdev init failed");
		return NULL;
	}
	return &e->dev;
}

static void errdev_free(struct devmig_device *dev)
{
	devmig_device_destroy(dev);
	free(to_errdev(dev));
}

static const struct devmig_variant errdev_variant = {
	DEVMIG_VARIANT_INIT,
	.name = "errdev",
	.create = errdev_create,
	.free = errdev_free,
};

/* ---- a run: two devices, two servers, two shims, the checker ---- */

#define MAX_RESULTS 80

struct result {
	char name[48];
	enum devmig_check_status status;
	char *evidence;
};

struct rig {
	char dir[FX_PATH_MAX];
	struct fx_server dev[2];
	struct proxy px[2];
	struct result res[MAX_RESULTS];
	unsigned nres;
	struct devmig_check_summary sum;
};

static void collect(void *opaque, const struct devmig_check_result *r)
{
	struct rig *g = opaque;

	print_message("#   %-4s %-24s %s\n", devmig_check_status_name(r->status), r->name,
		      r->evidence);
	assert_true(g->nres < MAX_RESULTS);
	struct result *x = &g->res[g->nres++];
	snprintf(x->name, sizeof(x->name), "%s", r->name);
	x->status = r->status;
	x->evidence = strdup(r->evidence);
}

static void rig_free(struct rig *g)
{
	for (unsigned i = 0; i < 2; i++) {
		proxy_stop(&g->px[i]);
		fx_unserve(&g->dev[i]);
	}
	for (unsigned i = 0; i < g->nres; i++)
		free(g->res[i].evidence);
	fx_rmdir(g->dir);
	free(g);
}

/* The checker on A and B, each behind a shim with fault; writes give A state. */
static struct rig *run(const struct devmig_variant *v, const char *args, enum fault fault,
		       int timeout_ms, uint64_t max_stream, const struct devmig_check_write *writes,
		       unsigned nwrites, const char *only)
{
	struct rig *g = calloc(1, sizeof(*g));
	char err[256];

	assert_non_null(g);
	fx_tmpdir(g->dir, "checkf");
	struct devmig_client *c[2];
	for (unsigned i = 0; i < 2; i++) {
		fx_serve_variant(&g->dev[i], g->dir, i ? "s1" : "s0", v, args);
		proxy_start(&g->px[i], g->dir, i ? "pb" : "pa", g->dev[i].path, fault);
		/* The shim's faults are in the messages: data moves in them, not
		 * over a data fd (the data_fd extension is not asked for). */
		struct devmig_client_config cc = { .timeout_ms = timeout_ms,
						   .ext = DEVMIG_EXT_ALL & ~DEVMIG_EXT_DATA_FD };
		c[i] = devmig_client_connect(g->px[i].path, &cc, err, sizeof(err));
		if (!c[i])
			fail_msg("connect: %s", err);
	}
	struct devmig_check_config cfg = {
		.seed = 42,
		.step_timeout_ms = 20000,
		.max_stream_bytes = max_stream,
		.compare_limit = 256, /* the registers the writes touch; keeps the runs short */
		.writes = writes,
		.nwrites = nwrites,
		.only = only,
		.result = collect,
		.opaque = g,
	};
	print_message("# fault %d on %s\n", (int)fault, v->name);
	assert_int_equal(devmig_check_run(c[0], c[1], &cfg, &g->sum), 0);
	print_message("# %u passed, %u failed, %u skipped\n", g->sum.passed, g->sum.failed,
		      g->sum.skipped);
	devmig_client_close(c[0]);
	devmig_client_close(c[1]);
	return g;
}

static const struct result *find(const struct rig *g, const char *name)
{
	for (unsigned i = 0; i < g->nres; i++)
		if (!strcmp(g->res[i].name, name))
			return &g->res[i];
	fail_msg("check %s did not report", name);
	return NULL;
}

static void expect(const struct rig *g, const char *name, enum devmig_check_status st,
		   const char *evidence_has)
{
	const struct result *r = find(g, name);
	if (r->status != st)
		fail_msg("%s: %s, expected %s (%s)", name, devmig_check_status_name(r->status),
			 devmig_check_status_name(st), r->evidence);
	if (evidence_has && !strstr(r->evidence, evidence_has))
		fail_msg("%s: evidence lacks \"%s\": %s", name, evidence_has, r->evidence);
}

static const struct devmig_check_write counter_writes[] = {
	{ 0, 0x08, 4, 0xdeadbeef }, /* SCRATCH0 */
	{ 0, 0x00, 4, 5 },          /* COUNT */
	{ 0, 0x1c, 4, 0x41 },       /* a byte in the FIFO */
};
#define NCW (sizeof(counter_writes) / sizeof(counter_writes[0]))

static const struct devmig_check_write memblk_writes[] = {
	{ 0, 0x30, 4, 0x10000 }, /* SQ_BASE_LO */
	{ 0, 0x38, 4, 64 },      /* SQ_SIZE */
};
#define NMW (sizeof(memblk_writes) / sizeof(memblk_writes[0]))

/* only: the checks to run (NULL: all), to keep the runs short. */
static struct rig *run_counter(enum fault f, const char *only)
{
	return run(devmig_variant_find("counter"), NULL, f, 5000, 0, counter_writes, NCW, only);
}

static struct rig *run_memblk(enum fault f, const char *only)
{
	return run(devmig_variant_find("memblk"), "size=1M,chunk=64K", f, 5000, 0, memblk_writes,
		   NMW, only);
}

/* ---- the tests ---- */

/* Through shims that change nothing, both devices pass: the shim is transparent. */
static void test_no_fault_counter(void **state)
{
	(void)state;
	struct rig *g = run_counter(F_NONE, NULL);
	assert_int_equal(g->sum.failed, 0);
	assert_true(g->sum.passed >= 25);
	expect(g, "load.roundtrip", DEVMIG_CHECK_PASS, "before the load they differed");
	expect(g, "load.truncated", DEVMIG_CHECK_PASS, "registers unchanged each time (they differ");
	expect(g, "reset.from.STOP_COPY", DEVMIG_CHECK_PASS, NULL);
	expect(g, "precopy.progress", DEVMIG_CHECK_SKIP, "lacks PRE_COPY");
	expect(g, "fsm.from.PRE_COPY", DEVMIG_CHECK_SKIP, "lacks PRE_COPY");
	rig_free(g);
}

static void test_no_fault_memblk(void **state)
{
	(void)state;
	struct rig *g = run_memblk(F_NONE, NULL);
	assert_int_equal(g->sum.failed, 0);
	expect(g, "precopy.progress", DEVMIG_CHECK_PASS, NULL);
	expect(g, "precopy.roundtrip", DEVMIG_CHECK_PASS, NULL);
	expect(g, "fsm.forbidden", DEVMIG_CHECK_PASS, NULL);
	rig_free(g);
}

static void test_wrong_next_hop(void **state)
{
	(void)state;
	struct rig *g = run_counter(F_NEXT_HOP, "fsm.from");
	expect(g, "fsm.from.STOP", DEVMIG_CHECK_FAIL, "STOP -> RUNNING: ended in RUNNING_P2P");
	expect(g, "fsm.from.RUNNING", DEVMIG_CHECK_PASS, NULL);
	rig_free(g);
}

static void test_reset_wrong_state(void **state)
{
	(void)state;
	struct rig *g = run_counter(F_RESET_STATE, "reset");
	expect(g, "reset.from.RUNNING", DEVMIG_CHECK_FAIL, "reset left STOP");
	expect(g, "reset.from.RESUMING", DEVMIG_CHECK_FAIL, "reset left STOP");
	rig_free(g);
}

/* A peer that refuses reset in STOP and STOP_COPY: two findings, and every other check runs. */
static void test_reset_refused(void **state)
{
	(void)state;
	struct rig *g = run_counter(F_RESET_REFUSED_STOP, NULL);
	expect(g, "reset.from.STOP", DEVMIG_CHECK_FAIL, "reset refused (EBUSY), state STOP");
	expect(g, "reset.from.STOP_COPY", DEVMIG_CHECK_FAIL, "reset refused (EBUSY)");
	expect(g, "reset.from.RUNNING", DEVMIG_CHECK_PASS, NULL);
	expect(g, "fsm.from.STOP_COPY", DEVMIG_CHECK_PASS, NULL);
	expect(g, "load.roundtrip", DEVMIG_CHECK_PASS, NULL);
	assert_int_equal(g->sum.failed, 2);
	rig_free(g);
}

static void test_bad_stream_accepted(void **state)
{
	(void)state;
	struct rig *g = run_counter(F_ACCEPT_BAD_STREAM, "load");
	expect(g, "load.truncated", DEVMIG_CHECK_FAIL, "ACCEPTED at RESUMING -> STOP");
	expect(g, "load.corrupted", DEVMIG_CHECK_FAIL, "ACCEPTED at RESUMING -> STOP");
	expect(g, "load.roundtrip", DEVMIG_CHECK_PASS, NULL);
	rig_free(g);
}

static void test_refusal_applies(void **state)
{
	(void)state;
	struct rig *g = run_counter(F_APPLY_ON_REFUSAL, "load");
	expect(g, "load.truncated", DEVMIG_CHECK_FAIL, "registers changed in 4 bytes, first BAR0+0x10");
	expect(g, "load.corrupted", DEVMIG_CHECK_FAIL, "registers changed");
	rig_free(g);
}

static void test_read_wrong_state(void **state)
{
	(void)state;
	struct rig *g = run_counter(F_READ_WRONG_STATE, "data");
	expect(g, "data.read_wrong_state", DEVMIG_CHECK_FAIL, "in RUNNING: ACCEPTED (0 bytes");
	expect(g, "data.write_wrong_state", DEVMIG_CHECK_PASS, NULL);
	rig_free(g);
}

static void test_write_wrong_state(void **state)
{
	(void)state;
	struct rig *g = run_counter(F_WRITE_WRONG_STATE, "data");
	expect(g, "data.write_wrong_state", DEVMIG_CHECK_FAIL, "in STOP_COPY: 16 bytes ACCEPTED");
	expect(g, "data.read_wrong_state", DEVMIG_CHECK_PASS, NULL);
	rig_free(g);
}

static void test_forbidden_accepted(void **state)
{
	(void)state;
	struct rig *g = run_memblk(F_FORBIDDEN_ACCEPTED, "fsm.forbidden,fsm.error");
	expect(g, "fsm.forbidden", DEVMIG_CHECK_FAIL, "STOP_COPY -> PRE_COPY accepted");
	expect(g, "fsm.error_request", DEVMIG_CHECK_PASS, NULL);
	rig_free(g);
}

static void test_error_accepted(void **state)
{
	(void)state;
	struct rig *g = run_counter(F_ERROR_ACCEPTED, "fsm.error");
	expect(g, "fsm.error_request", DEVMIG_CHECK_FAIL, "RUNNING -> ERROR accepted");
	rig_free(g);
}

static void test_estimate_low(void **state)
{
	(void)state;
	struct rig *g = run_counter(F_ESTIMATE_LOW, "save");
	expect(g, "save.estimate", DEVMIG_CHECK_FAIL, "said 1 B (1)");
	rig_free(g);
}

static void test_estimate_high(void **state)
{
	(void)state;
	struct rig *g = run_counter(F_ESTIMATE_HIGH, "save");
	expect(g, "save.estimate", DEVMIG_CHECK_FAIL, "over twice the stream");
	rig_free(g);
}

static void test_initial_stuck(void **state)
{
	(void)state;
	struct rig *g = run_memblk(F_INITIAL_STUCK, "precopy");
	expect(g, "precopy.progress", DEVMIG_CHECK_FAIL, "an empty read while initial_bytes was");
	expect(g, "precopy.temporary_end", DEVMIG_CHECK_FAIL, "an empty read while progress said");
	rig_free(g);
}

/* A stream with no end fails at the byte limit instead of reading for ever. */
static void test_endless_stream(void **state)
{
	(void)state;
	struct rig *g = run(devmig_variant_find("counter"), NULL, F_ENDLESS_STREAM, 5000, 1u << 20,
			    counter_writes, NCW, "save,load.roundtrip");
	expect(g, "save.stop_copy", DEVMIG_CHECK_FAIL, "(the limit)");
	expect(g, "load.roundtrip", DEVMIG_CHECK_SKIP, "no stream");
	rig_free(g);
}

static void test_log_overlap(void **state)
{
	(void)state;
	struct rig *g = run_counter(F_LOG_OVERLAP, "dma_log");
	expect(g, "dma_log.invalid", DEVMIG_CHECK_FAIL, "overlapping ranges: ACCEPTED");
	expect(g, "dma_log.ranges", DEVMIG_CHECK_PASS, NULL);
	rig_free(g);
}

/* A reply that never comes: the call times out, that check fails, the rest on A is skipped. */
static void test_silent_device(void **state)
{
	(void)state;
	struct rig *g = run(devmig_variant_find("counter"), NULL, F_SILENT, 1000, 0, counter_writes,
			    NCW, NULL);
	expect(g, "caps.data_size", DEVMIG_CHECK_FAIL, "connection lost");
	expect(g, "fsm.from.STOP", DEVMIG_CHECK_SKIP, "connection to A was lost in caps.data_size");
	expect(g, "reset.from.RUNNING", DEVMIG_CHECK_SKIP, "connection to A was lost");
	rig_free(g);
}

/* A device that falls into ERROR: the arc fails, reset brings it back. */
static void test_error_state(void **state)
{
	(void)state;
	struct rig *g = run(&errdev_variant, NULL, F_NONE, 5000, 0, NULL, 0, "fsm.from,error");
	expect(g, "fsm.from.STOP", DEVMIG_CHECK_FAIL, "STOP -> RUNNING: refused (EIO), ended in ERROR");
	expect(g, "error.recovery", DEVMIG_CHECK_PASS, "reset brought it back to RUNNING");
	rig_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_fault_counter),
		cmocka_unit_test(test_no_fault_memblk),
		cmocka_unit_test(test_wrong_next_hop),
		cmocka_unit_test(test_reset_wrong_state),
		cmocka_unit_test(test_reset_refused),
		cmocka_unit_test(test_bad_stream_accepted),
		cmocka_unit_test(test_refusal_applies),
		cmocka_unit_test(test_read_wrong_state),
		cmocka_unit_test(test_write_wrong_state),
		cmocka_unit_test(test_forbidden_accepted),
		cmocka_unit_test(test_error_accepted),
		cmocka_unit_test(test_estimate_low),
		cmocka_unit_test(test_estimate_high),
		cmocka_unit_test(test_initial_stuck),
		cmocka_unit_test(test_endless_stream),
		cmocka_unit_test(test_log_overlap),
		cmocka_unit_test(test_silent_device),
		cmocka_unit_test(test_error_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
