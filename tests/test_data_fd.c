/* SPDX-License-Identifier: MIT */
/*
 * The data_fd extension: migration data over a file descriptor the server
 * gives with the SET MIG_DEVICE_STATE reply whose arc opens a data session.
 *
 * On the wire (a raw client on the codec): which replies carry a
 * descriptor, for every arc that opens, keeps and ends a session; what a
 * peer without the extension gets. Through the client API: a whole stream
 * read to its end and loaded in pieces of any size (1 byte included); the
 * PRE_COPY temporary end (an empty fd and progress 0/0) and new data after
 * it; a client that closes its fd early; more than a stream written; a
 * reset and a disconnect in the middle of a session.
 *
 * The device is a small variant with one register and tracked memory the
 * test writes directly (devmig_tracker_write), so it can dirty it at will.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "devmig/client.h"
#include "devmig/device.h"
#include "devmig/server.h"
#include "fixture.h"
#include "msgio.h"

#define MEM_SIZE (4u << 20)
#define CHUNK (64u << 10)
#define REC_REG 1u

/* ---- the device ---- */

struct tdev {
	struct devmig_device dev;
	struct devmig_tracker *mem;
	uint64_t size;
	uint32_t reg, loaded;
	bool have_loaded;
};

static struct tdev *to_t(struct devmig_device *dev)
{
	return devmig_container_of(dev, struct tdev, dev);
}

static int t_realize(struct devmig_device *dev, struct devmig_pci_config *cfg)
{
	int rc = devmig_pci_set_ids(cfg, 0x1af4, 0x10fd);
	if (!rc)
		rc = devmig_pci_set_bar(cfg, 0, 4096, 0);
	if (!rc && !(to_t(dev)->mem = devmig_tracker_new(dev, to_t(dev)->size, CHUNK, 0)))
		rc = -errno;
	return rc;
}

static int t_bar(struct devmig_device *dev, unsigned bar, uint64_t off, void *buf, size_t len,
		 bool is_write)
{
	(void)bar;
	if (len != 4 || off)
		return -EINVAL;
	if (is_write)
		memcpy(&to_t(dev)->reg, buf, 4);
	else
		memcpy(buf, &to_t(dev)->reg, 4);
	return 0;
}

static int t_save_state(struct devmig_device *dev, struct devmig_save *s)
{
	return devmig_save_record(s, REC_REG, &to_t(dev)->reg, 4);
}

static int t_load(struct devmig_device *dev, unsigned type, const void *data, size_t len,
		  char *why, size_t wl)
{
	if (type != REC_REG || len != 4) {
		snprintf(why, wl, "tdev: record %u of %zu bytes", type, len);
		return -EINVAL;
	}
	memcpy(&to_t(dev)->loaded, data, 4);
	to_t(dev)->have_loaded = true;
	return 0;
}

static int t_load_check(struct devmig_device *dev, char *why, size_t wl)
{
	if (to_t(dev)->have_loaded)
		return 0;
	snprintf(why, wl, "tdev: no register record");
	return -EINVAL;
}

static void t_load_apply(struct devmig_device *dev)
{
	to_t(dev)->reg = to_t(dev)->loaded;
	to_t(dev)->have_loaded = false;
}

static void t_load_abort(struct devmig_device *dev)
{
	to_t(dev)->have_loaded = false;
}

static const struct devmig_device_id t_id = { .name = "tdev", .version = "test-datafd-1" };
static const struct devmig_device_ops t_ops = { .realize = t_realize, .bar_access = t_bar };
static const struct devmig_migration_ops t_mig = {
	.caps = DEVMIG_MIG_STOP_COPY | DEVMIG_MIG_P2P | DEVMIG_MIG_PRE_COPY,
	.save_state = t_save_state,
	.load = t_load,
	.load_check = t_load_check,
	.load_apply = t_load_apply,
	.load_abort = t_load_abort,
};

/* ---- the rig: a source and a destination, served ---- */

struct rig {
	char dir[FX_PATH_MAX];
	struct tdev src, dst;
	struct fx_server ss, ds;
};

static void tdev_init(struct tdev *t, uint64_t size)
{
	memset(t, 0, sizeof(*t));
	t->size = size;
	t->dev.id = &t_id;
	t->dev.ops = &t_ops;
	t->dev.mig = &t_mig;
	assert_int_equal(devmig_device_init(&t->dev), 0);
}

/* Memory with a pattern that differs per byte and per seed. */
static void fill(struct tdev *t, uint32_t seed)
{
	uint8_t *buf = malloc(CHUNK);
	assert_non_null(buf);
	for (uint64_t off = 0; off < t->size; off += CHUNK) {
		for (uint32_t i = 0; i < CHUNK; i++)
			buf[i] = (uint8_t)((off + i) * 2654435761u >> 11 ^ seed);
		assert_int_equal(devmig_tracker_write(t->mem, off, buf, CHUNK), 0);
	}
	free(buf);
}

static int rig_setup(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	fx_tmpdir(r->dir, "datafd");
	tdev_init(&r->src, MEM_SIZE);
	tdev_init(&r->dst, MEM_SIZE);
	fill(&r->src, 0x11);
	fill(&r->dst, 0x77);
	r->src.reg = 0x5eed;
	r->dst.reg = 0xdead;
	fx_serve(&r->ss, r->dir, "src", &r->src.dev);
	fx_serve(&r->ds, r->dir, "dst", &r->dst.dev);
	*state = r;
	return 0;
}

static int rig_teardown(void **state)
{
	struct rig *r = *state;
	fx_unserve(&r->ss);
	fx_unserve(&r->ds);
	devmig_device_destroy(&r->src.dev);
	devmig_device_destroy(&r->dst.dev);
	fx_rmdir(r->dir);
	free(r);
	return 0;
}

static bool same_memory(struct tdev *a, struct tdev *b)
{
	return a->size == b->size &&
	       !memcmp(devmig_tracker_mem(a->mem), devmig_tracker_mem(b->mem), a->size);
}

static void set(struct devmig_client *c, enum devmig_state s)
{
	int rc = devmig_client_set_state(c, s);
	if (rc)
		fail_msg("SET %s: %s", devmig_state_name(s), strerror(-rc));
}

/* ---- a raw client on the codec: what the wire carries ---- */

struct raw {
	int sock;
	struct devmig_msg_reader rd;
	struct devmig_wire_limits lim;
	uint16_t id;
};

/* One exchange: the reply's errno (0), its data_fd field, and its descriptors. */
static int raw_xact(struct raw *r, struct devmig_msg *req, struct devmig_msg *rep, int *fds,
		    unsigned *nfds)
{
	uint8_t buf[4096];
	enum devmig_wire_err err;
	req->hdr.msg_id = r->id++;
	req->hdr.flags = DEVMIG_HDR_TYPE_COMMAND;
	size_t n = devmig_encode(buf, sizeof(buf), req, &err);
	assert_int_equal(err, DEVMIG_WIRE_OK);
	struct iovec iov = { buf, n };
	assert_int_equal(devmig_msg_send(r->sock, &iov, 1, NULL, 0), 0);
	struct devmig_rx rx;
	assert_int_equal(devmig_msg_recv(&r->rd, &r->lim, &rx), 1);
	assert_false(rx.skipped);
	assert_int_equal(devmig_decode(rx.msg, rx.len, rx.nfds, &r->lim, rep), DEVMIG_WIRE_OK);
	assert_int_equal(rep->hdr.msg_id, req->hdr.msg_id);
	*nfds = rx.nfds;
	memcpy(fds, rx.fds, rx.nfds * sizeof(int));
	rx.nfds = 0;
	return rep->hdr.flags & DEVMIG_HDR_ERROR ? (int)rep->hdr.error_no : 0;
}

static void raw_open(struct raw *r, const char *path, const char *devmig_json)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memset(r, 0, sizeof(*r));
	devmig_wire_limits_default(&r->lim);
	r->lim.role = DEVMIG_WIRE_ROLE_CLIENT;
	r->lim.max_msg_fds = 8;
	r->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(r->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(devmig_msg_reader_init(&r->rd, r->sock, 2u << 20), 0);
	char json[256];
	snprintf(json, sizeof(json), "{\"capabilities\":{%s}}", devmig_json);
	struct devmig_msg req = { .hdr.cmd = DEVMIG_CMD_VERSION }, rep;
	req.u.version.v.major = DEVMIG_VFIO_USER_MAJOR;
	req.u.version.v.minor = DEVMIG_VFIO_USER_MINOR;
	req.u.version.json = json;
	req.u.version.json_len = strlen(json);
	int fds[8];
	unsigned nfds;
	assert_int_equal(raw_xact(r, &req, &rep, fds, &nfds), 0);
	assert_int_equal(nfds, 0);
}

static void raw_close(struct raw *r)
{
	close(r->sock);
	devmig_msg_reader_free(&r->rd);
}

/* SET state: errno, the reply's data_fd field, and the descriptor (-1: none). */
static int raw_set(struct raw *r, enum devmig_state s, uint32_t *data_fd, int *fd)
{
	struct devmig_msg req = { .hdr.cmd = DEVMIG_CMD_DEVICE_FEATURE }, rep;
	struct devmig_feature_mig_state st = { s, 0 };
	req.u.feature.f.argsz = sizeof(struct devmig_feature) + sizeof(st);
	req.u.feature.f.flags = DEVMIG_FEATURE_SET | DEVMIG_FEATURE_MIG_DEVICE_STATE;
	req.u.feature.u.mig_state = st;
	int fds[8];
	unsigned nfds = 0;
	int rc = raw_xact(r, &req, &rep, fds, &nfds);
	assert_true(nfds <= 1);
	*fd = nfds ? fds[0] : -1;
	*data_fd = rc ? 0 : rep.u.feature.u.mig_state.data_fd;
	return rc;
}

static int raw_simple(struct raw *r, uint16_t cmd)
{
	struct devmig_msg req = { .hdr.cmd = cmd }, rep;
	int fds[8];
	unsigned nfds;
	int rc = raw_xact(r, &req, &rep, fds, &nfds);
	assert_int_equal(nfds, 0);
	return rc;
}

static int raw_mig_read(struct raw *r)
{
	struct devmig_msg req = { .hdr.cmd = DEVMIG_CMD_MIG_DATA_READ }, rep;
	req.u.mig_data.md.argsz = 8 + 4096;
	req.u.mig_data.md.size = 4096;
	int fds[8];
	unsigned nfds;
	return raw_xact(r, &req, &rep, fds, &nfds);
}

#define EXT_DATA_FD "\"devmig\":{\"data_fd\":true,\"precopy_info\":true}"

static bool same_file(int a, int b)
{
	struct stat sa, sb;
	return !fstat(a, &sa) && !fstat(b, &sb) && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

/* Read a save fd until 0, whatever comes; the byte count. */
static size_t read_to_end(int fd)
{
	static uint8_t buf[1 << 16];
	size_t total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			total += (size_t)n;
		} else if (n == 0) {
			return total;
		} else if (errno == EAGAIN) {
			struct pollfd p = { fd, POLLIN, 0 };
			assert_true(poll(&p, 1, 10000) == 1);
		} else {
			fail_msg("read: %s", strerror(errno));
		}
	}
}

/*
 * Every arc that opens a session has a reply with one descriptor and
 * data_fd 0; every other reply none and data_fd "none". A session the
 * saving group shares keeps its pipe; one an arc ends reads 0 after.
 */
static void wire_a_descriptor_exactly_when_an_arc_opens_a_session(void **state)
{
	struct rig *r = *state;
	struct raw c;
	uint32_t idx;
	int fd, pre;

	raw_open(&c, r->ss.path, EXT_DATA_FD);
	/* RUNNING -> PRE_COPY opens a save session. */
	assert_int_equal(raw_set(&c, DEVMIG_STATE_PRE_COPY, &idx, &pre), 0);
	assert_true(pre >= 0);
	assert_int_equal(idx, 0);
	/* PRE_COPY -> PRE_COPY_P2P -> STOP_COPY keeps it: no descriptor. */
	assert_int_equal(raw_set(&c, DEVMIG_STATE_PRE_COPY_P2P, &idx, &fd), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(idx, DEVMIG_DATA_FD_NONE);
	assert_int_equal(raw_set(&c, DEVMIG_STATE_STOP_COPY, &idx, &fd), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(idx, DEVMIG_DATA_FD_NONE);
	/* The one pipe carried PRE_COPY's data and STOP_COPY's, to its end. */
	size_t whole = read_to_end(pre);
	assert_true(whole > MEM_SIZE);
	/* STOP_COPY -> STOP ends it; STOP -> RESUMING opens a load session. */
	assert_int_equal(raw_set(&c, DEVMIG_STATE_STOP, &idx, &fd), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(idx, DEVMIG_DATA_FD_NONE);
	close(pre);
	int load;
	assert_int_equal(raw_set(&c, DEVMIG_STATE_RESUMING, &idx, &load), 0);
	assert_true(load >= 0);
	assert_int_equal(idx, 0);
	assert_int_equal(fcntl(load, F_GETFL) & O_ACCMODE, O_WRONLY);
	/* RESUMING -> STOP with nothing written is refused: no descriptor, the
	 * session goes on (the same pipe takes a stream). */
	assert_int_equal(raw_set(&c, DEVMIG_STATE_STOP, &idx, &fd), EINVAL);
	assert_int_equal(fd, -1);
	assert_int_equal(write(load, "x", 1), 1);
	assert_int_equal(raw_simple(&c, DEVMIG_CMD_DEVICE_RESET), 0);
	close(load);
	/* RUNNING -> STOP_COPY: the last arc (STOP -> STOP_COPY) opens. */
	int sc;
	assert_int_equal(raw_set(&c, DEVMIG_STATE_STOP_COPY, &idx, &sc), 0);
	assert_true(sc >= 0);
	assert_int_equal(fcntl(sc, F_GETFL) & O_ACCMODE, O_RDONLY);
	/* STOP_COPY -> RESUMING ends it and opens a load: a new pipe. */
	assert_int_equal(raw_set(&c, DEVMIG_STATE_RESUMING, &idx, &load), 0);
	assert_true(load >= 0);
	assert_false(same_file(sc, load));
	assert_int_equal(read_to_end(sc), 0); /* ended unread: emptied by the server */
	close(sc);
	close(load);
	/* RUNNING_P2P -> PRE_COPY_P2P opens; PRE_COPY_P2P -> RUNNING_P2P ends. */
	assert_int_equal(raw_simple(&c, DEVMIG_CMD_DEVICE_RESET), 0);
	assert_int_equal(raw_set(&c, DEVMIG_STATE_RUNNING_P2P, &idx, &fd), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(raw_set(&c, DEVMIG_STATE_PRE_COPY_P2P, &idx, &pre), 0);
	assert_true(pre >= 0);
	assert_int_equal(raw_set(&c, DEVMIG_STATE_RUNNING_P2P, &idx, &fd), 0);
	assert_int_equal(fd, -1);
	read_to_end(pre); /* ends: the server closed its end */
	close(pre);
	/* PRE_COPY -> RUNNING ends. */
	assert_int_equal(raw_set(&c, DEVMIG_STATE_PRE_COPY, &idx, &pre), 0);
	assert_true(pre >= 0);
	assert_int_equal(raw_set(&c, DEVMIG_STATE_RUNNING, &idx, &fd), 0);
	assert_int_equal(fd, -1);
	read_to_end(pre);
	close(pre);
	/* With the extension the data is on the fd only: MIG_DATA_READ is refused. */
	assert_int_equal(raw_set(&c, DEVMIG_STATE_STOP_COPY, &idx, &sc), 0);
	assert_int_equal(raw_mig_read(&c), EINVAL);
	close(sc);
	assert_int_equal(raw_simple(&c, DEVMIG_CMD_DEVICE_RESET), 0);
	raw_close(&c);
}

/* A client without the extension: no descriptor ever, data_fd echoed, data by command. */
static void wire_a_peer_without_the_extension_keeps_the_commands(void **state)
{
	struct rig *r = *state;
	struct raw c;
	uint32_t idx;
	int fd;

	raw_open(&c, r->ss.path, "\"devmig\":{\"precopy_info\":true}");
	assert_int_equal(raw_set(&c, DEVMIG_STATE_PRE_COPY, &idx, &fd), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(idx, 0); /* the request's, echoed */
	assert_int_equal(raw_mig_read(&c), 0);
	assert_int_equal(raw_set(&c, DEVMIG_STATE_STOP_COPY, &idx, &fd), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(raw_mig_read(&c), 0);
	assert_int_equal(raw_simple(&c, DEVMIG_CMD_DEVICE_RESET), 0);
	raw_close(&c);

	/* devmig's client not asking for it: no session fd, data by MIG_DATA_READ. */
	struct devmig_client_config cfg = { .ext = DEVMIG_EXT_ALL & ~DEVMIG_EXT_DATA_FD };
	struct devmig_client *s = fx_connect(&r->ss, &cfg), *d = fx_connect(&r->ds, &cfg);
	struct devmig_data_session ds;
	assert_false(devmig_client_has_ext(s, DEVMIG_EXT_DATA_FD));
	set(s, DEVMIG_STATE_STOP_COPY);
	assert_int_equal(devmig_client_data_session(s, &ds), -EOPNOTSUPP);
	set(d, DEVMIG_STATE_RESUMING);
	uint8_t *buf = malloc(1u << 20);
	ssize_t n;
	while ((n = devmig_client_mig_read(s, buf, 1u << 20)) > 0)
		assert_int_equal(devmig_client_mig_write(d, buf, (size_t)n), 0);
	assert_int_equal(n, 0);
	set(d, DEVMIG_STATE_STOP);
	assert_true(same_memory(&r->src, &r->dst));
	assert_int_equal(r->dst.reg, 0x5eed);
	free(buf);
	devmig_client_close(s);
	devmig_client_close(d);
}

/* ---- through the client API ---- */

/* A save session's stream, read with data_read/data_wait to the end or the temporary end. */
static size_t api_read(struct devmig_client *c, uint8_t **out, size_t *cap, size_t len,
		       bool *temp_end)
{
	*temp_end = false;
	for (;;) {
		if (len + (1u << 20) > *cap) {
			*cap = (*cap ? *cap * 2 : 8u << 20);
			*out = realloc(*out, *cap);
			assert_non_null(*out);
		}
		ssize_t n = devmig_client_data_read(c, *out + len, 1u << 20);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0)
			return len;
		if (n == -ENOMSG) {
			*temp_end = true;
			return len;
		}
		assert_int_equal(n, -EAGAIN);
		int rc = devmig_client_data_wait(c, 10000);
		if (rc == -ENOMSG) {
			*temp_end = true;
			return len;
		}
		assert_int_equal(rc, 0);
	}
}

/* Write all of p into a load session in pieces of the sizes piece() gives. */
static void api_write(struct devmig_client *c, const uint8_t *p, size_t len,
		      size_t (*piece)(size_t at, uint64_t *seed), uint64_t seed)
{
	for (size_t at = 0; at < len;) {
		size_t k = piece(at, &seed);
		if (k > len - at)
			k = len - at;
		ssize_t n = devmig_client_data_write(c, p + at, k);
		if (n == -EAGAIN) {
			assert_int_equal(devmig_client_data_wait(c, 10000), 0);
			continue;
		}
		assert_true(n > 0);
		at += (size_t)n;
	}
}

/* A whole migration, source to destination, through their data fds; the
 * destination then holds the source's memory. */
static void migrate_whole(struct rig *r, struct devmig_client *s, struct devmig_client *d)
{
	uint8_t *st = NULL;
	size_t cap = 0;
	bool temp;
	set(s, DEVMIG_STATE_STOP_COPY);
	size_t len = api_read(s, &st, &cap, 0, &temp);
	assert_false(temp);
	set(d, DEVMIG_STATE_RESUMING);
	assert_int_equal(devmig_client_mig_write(d, st, len), 0);
	set(d, DEVMIG_STATE_STOP);
	assert_true(same_memory(&r->src, &r->dst));
	free(st);
}

static size_t piece_one(size_t at, uint64_t *seed)
{
	(void)at;
	(void)seed;
	return 1;
}

static size_t piece_random(size_t at, uint64_t *seed)
{
	*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
	/* the first bytes one at a time, then anything up to 300 KiB */
	return at < 4096 ? 1 : 1 + (size_t)(*seed >> 33) % (300u << 10);
}

static void whole_stream_read_to_its_end_and_loaded_in_pieces(void **state)
{
	struct rig *r = *state;
	struct devmig_client *s = fx_connect(&r->ss, NULL), *d = fx_connect(&r->ds, NULL);
	struct devmig_data_session ss, dd;
	uint8_t *buf = NULL;
	size_t cap = 0;
	bool temp;

	assert_true(devmig_client_has_ext(s, DEVMIG_EXT_DATA_FD));
	assert_int_equal(devmig_client_data_session(s, &ss), -ENOENT); /* RUNNING: none */
	set(s, DEVMIG_STATE_STOP_COPY);
	assert_int_equal(devmig_client_data_session(s, &ss), 0);
	assert_true(ss.save && ss.spliceable && ss.checked && ss.fd >= 0);
	assert_true(fcntl(ss.fd, F_GETFL) & O_NONBLOCK);
	size_t len = api_read(s, &buf, &cap, 0, &temp);
	assert_false(temp);
	assert_true(len > MEM_SIZE);
	/* After the end: 0 again, and the state's own query agrees. */
	assert_int_equal(devmig_client_data_read(s, buf, 16), 0);
	set(s, DEVMIG_STATE_STOP);
	assert_int_equal(devmig_client_data_session(s, &ss), -ENOENT);

	set(d, DEVMIG_STATE_RESUMING);
	assert_int_equal(devmig_client_data_session(d, &dd), 0);
	assert_false(dd.save);
	api_write(d, buf, len, piece_random, 7);
	set(d, DEVMIG_STATE_STOP);
	assert_true(same_memory(&r->src, &r->dst));
	assert_int_equal(r->dst.reg, 0x5eed);
	assert_int_equal(devmig_client_data_session(d, &dd), -ENOENT);
	free(buf);
	devmig_client_close(s);
	devmig_client_close(d);
}

/* State changes with a deadline open and end sessions as plain ones do: the
 * reply brings the fd (and says so), a refusal brings none. */
static void deadline_changes_open_sessions_with_their_fd(void **state)
{
	struct rig *r = *state;
	struct devmig_client *s = fx_connect(&r->ss, NULL), *d = fx_connect(&r->ds, NULL);
	struct devmig_deadline_result res;
	struct devmig_data_session ss, dd;
	uint8_t *buf = NULL;
	size_t cap = 0;
	bool temp;

	assert_true(devmig_client_has_ext(s, DEVMIG_EXT_DEADLINE));
	/* A deadline no arc can meet: refused before the first, no session. */
	assert_int_equal(devmig_client_set_state_deadline(s, DEVMIG_STATE_STOP_COPY, 1, &res),
			 -ETIME);
	assert_int_equal(res.state, DEVMIG_STATE_RUNNING);
	assert_int_equal(devmig_client_data_session(s, &ss), -ENOENT);
	/* RUNNING -> STOP_COPY in one request: its last arc opens the session. */
	assert_int_equal(devmig_client_set_state_deadline(s, DEVMIG_STATE_STOP_COPY,
							  60ull * 1000000000, &res), 0);
	assert_int_equal(res.state, DEVMIG_STATE_STOP_COPY);
	assert_false(res.flags & DEVMIG_DEADLINE_DATA_FD); /* the client's, not the caller's */
	assert_int_equal(devmig_client_data_session(s, &ss), 0);
	assert_true(ss.save && ss.fd >= 0);
	size_t len = api_read(s, &buf, &cap, 0, &temp);
	assert_false(temp);
	assert_true(len > MEM_SIZE);
	assert_int_equal(devmig_client_set_state_deadline(s, DEVMIG_STATE_STOP,
							  60ull * 1000000000, &res), 0);
	assert_int_equal(devmig_client_data_session(s, &ss), -ENOENT);

	assert_int_equal(devmig_client_set_state_deadline(d, DEVMIG_STATE_RESUMING,
							  60ull * 1000000000, &res), 0);
	assert_int_equal(devmig_client_data_session(d, &dd), 0);
	assert_false(dd.save);
	api_write(d, buf, len, piece_random, 11);
	assert_int_equal(devmig_client_set_state_deadline(d, DEVMIG_STATE_RUNNING,
							  60ull * 1000000000, &res), 0);
	assert_int_equal(devmig_client_data_session(d, &dd), -ENOENT);
	assert_true(same_memory(&r->src, &r->dst));
	assert_int_equal(r->dst.reg, 0x5eed);
	free(buf);
	devmig_client_close(s);
	devmig_client_close(d);
}

/* Every byte in its own write(): the server's reassembly does the rest. */
static void loaded_one_byte_at_a_time(void **state)
{
	(void)state;
	char dir[FX_PATH_MAX];
	struct tdev a, b;
	struct fx_server sa = { 0 }, sb = { 0 };
	uint8_t *buf = NULL;
	size_t cap = 0;
	bool temp;

	fx_tmpdir(dir, "datafd1");
	tdev_init(&a, CHUNK);
	tdev_init(&b, CHUNK);
	fill(&a, 3);
	a.reg = 0x1b;
	fx_serve(&sa, dir, "a", &a.dev);
	fx_serve(&sb, dir, "b", &b.dev);
	struct devmig_client *s = fx_connect(&sa, NULL), *d = fx_connect(&sb, NULL);
	set(s, DEVMIG_STATE_STOP_COPY);
	size_t len = api_read(s, &buf, &cap, 0, &temp);
	set(d, DEVMIG_STATE_RESUMING);
	api_write(d, buf, len, piece_one, 0);
	set(d, DEVMIG_STATE_STOP);
	assert_true(same_memory(&a, &b));
	assert_int_equal(b.reg, 0x1b);
	free(buf);
	devmig_client_close(s);
	devmig_client_close(d);
	fx_unserve(&sa);
	fx_unserve(&sb);
	devmig_device_destroy(&a.dev);
	devmig_device_destroy(&b.dev);
	fx_rmdir(dir);
}

/*
 * PRE_COPY: the initial data, then the temporary end: the fd is empty
 * (EAGAIN), progress says 0 and 0, data_wait says -ENOMSG. A chunk written
 * then comes as new data; STOP_COPY ends the stream; loaded, the
 * destination has the memory with that write.
 */
static void precopy_temporary_end_then_new_data(void **state)
{
	struct rig *r = *state;
	struct devmig_client *s = fx_connect(&r->ss, NULL), *d = fx_connect(&r->ds, NULL);
	struct devmig_data_session ss;
	uint64_t initial, dirty;
	uint8_t *buf = NULL, probe[16];
	size_t cap = 0, len;
	bool temp;

	set(s, DEVMIG_STATE_PRE_COPY);
	assert_int_equal(devmig_client_precopy_info(s, &initial, &dirty), 0);
	assert_true(initial >= MEM_SIZE);
	len = api_read(s, &buf, &cap, 0, &temp);
	assert_true(temp);
	assert_true(len >= MEM_SIZE);
	assert_int_equal(devmig_client_data_session(s, &ss), 0);
	assert_int_equal(read(ss.fd, probe, sizeof(probe)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(devmig_client_data_read(s, probe, sizeof(probe)), -EAGAIN);
	assert_int_equal(devmig_client_precopy_info(s, &initial, &dirty), 0);
	assert_int_equal(initial, 0);
	assert_int_equal(dirty, 0);
	assert_int_equal(devmig_client_data_wait(s, 1000), -ENOMSG);
	/* The device changes a chunk: announced, then on the fd. */
	uint8_t v[8] = "changed!";
	assert_int_equal(devmig_tracker_write(r->src.mem, 3 * CHUNK + 100, v, sizeof(v)), 0);
	assert_int_equal(devmig_client_precopy_info(s, &initial, &dirty), 0);
	assert_int_equal(initial, 0);
	assert_true(dirty >= CHUNK);
	size_t before = len;
	len = api_read(s, &buf, &cap, len, &temp);
	assert_true(temp);
	assert_true(len - before >= CHUNK);
	assert_int_equal(devmig_client_precopy_info(s, &initial, &dirty), 0);
	assert_int_equal(dirty, 0);
	/* STOP_COPY: the rest, to the end. */
	r->src.reg = 0xc0ffee;
	set(s, DEVMIG_STATE_STOP_COPY);
	len = api_read(s, &buf, &cap, len, &temp);
	assert_false(temp);
	set(s, DEVMIG_STATE_STOP);
	set(d, DEVMIG_STATE_RESUMING);
	assert_int_equal(devmig_client_mig_write(d, buf, len), 0);
	set(d, DEVMIG_STATE_STOP);
	assert_true(same_memory(&r->src, &r->dst));
	assert_int_equal(r->dst.reg, 0xc0ffee);
	free(buf);
	set(s, DEVMIG_STATE_RUNNING);
	devmig_client_close(s);
	devmig_client_close(d);
}

/*
 * A client that closes its end early: a save it stopped reading and a load
 * it stopped writing. The server ends both sessions at the next arc as
 * usual (the load refused: incomplete), and the next sessions work.
 */
static void a_client_that_closes_its_fd_early(void **state)
{
	struct rig *r = *state;
	struct raw c;
	uint32_t idx;
	int fd;
	uint8_t buf[4096];

	raw_open(&c, r->ss.path, EXT_DATA_FD);
	assert_int_equal(raw_set(&c, DEVMIG_STATE_STOP_COPY, &idx, &fd), 0);
	struct pollfd p = { fd, POLLIN, 0 };
	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_true(read(fd, buf, sizeof(buf)) > 0);
	close(fd); /* the pump is left with a full pipe nobody reads */
	assert_int_equal(raw_set(&c, DEVMIG_STATE_STOP, &idx, &fd), 0);
	assert_int_equal(fd, -1);
	raw_close(&c);

	raw_open(&c, r->ds.path, EXT_DATA_FD);
	assert_int_equal(raw_set(&c, DEVMIG_STATE_RESUMING, &idx, &fd), 0);
	assert_int_equal(write(fd, "DMIGSTRM", 8), 8);
	close(fd);
	int dummy;
	assert_int_equal(raw_set(&c, DEVMIG_STATE_STOP, &idx, &dummy), EINVAL); /* incomplete */
	assert_int_equal(raw_simple(&c, DEVMIG_CMD_DEVICE_RESET), 0);
	raw_close(&c);
	assert_int_equal(r->dst.reg, 0xdead); /* nothing applied */

	/* Both servers go on: a whole migration through them. */
	struct devmig_client *s = fx_connect(&r->ss, NULL), *d = fx_connect(&r->ds, NULL);
	migrate_whole(r, s, d);
	devmig_client_close(s);
	devmig_client_close(d);
}

/*
 * More than a stream: bytes after its END are refused, and so is the whole
 * load (nothing applied); however much comes, the writes complete (the
 * server drops what it cannot take) and the reason is in words.
 */
static void more_than_a_stream_is_refused_and_applies_nothing(void **state)
{
	struct rig *r = *state;
	struct devmig_client *s = fx_connect(&r->ss, NULL), *d = fx_connect(&r->ds, NULL);
	uint8_t *buf = NULL;
	size_t cap = 0;
	bool temp;

	set(s, DEVMIG_STATE_STOP_COPY);
	size_t len = api_read(s, &buf, &cap, 0, &temp);
	set(s, DEVMIG_STATE_RUNNING);
	set(d, DEVMIG_STATE_RESUMING);
	uint8_t *extra = calloc(1, 3u << 20); /* three pipes' worth */
	assert_non_null(extra);
	assert_int_equal(devmig_client_mig_write_nowait(d, buf, len), 0);
	assert_int_equal(devmig_client_mig_write_nowait(d, extra, 3u << 20), 0);
	uint64_t loaded;
	int lerr;
	char why[DEVMIG_MIG_STATUS_REASON];
	assert_int_equal(devmig_client_mig_status(d, &loaded, &lerr, why, sizeof(why)), 0);
	assert_int_equal(lerr, -EINVAL);
	if (!strstr(why, "after record"))
		fail_msg("reason: %s", why);
	assert_int_equal(devmig_client_set_state(d, DEVMIG_STATE_STOP), -EINVAL);
	assert_int_equal(devmig_client_mig_status(d, &loaded, &lerr, why, sizeof(why)), 0);
	if (!strstr(why, "RESUMING -> STOP failed: unexpected data after record"))
		fail_msg("reason: %s", why);
	enum devmig_state now;
	assert_int_equal(devmig_client_get_state(d, &now), 0);
	assert_int_equal(now, DEVMIG_STATE_RESUMING);
	assert_int_equal(r->dst.reg, 0xdead);
	assert_false(same_memory(&r->src, &r->dst));
	/* The same session takes a whole stream after the refusal. */
	assert_int_equal(devmig_client_mig_write(d, buf, len), 0);
	set(d, DEVMIG_STATE_STOP);
	assert_true(same_memory(&r->src, &r->dst));
	free(extra);
	free(buf);
	devmig_client_close(s);
	devmig_client_close(d);
}

/* A reset ends a session at once, whatever the pump was doing. */
static void reset_in_the_middle_of_a_session(void **state)
{
	struct rig *r = *state;
	struct devmig_client *s = fx_connect(&r->ss, NULL), *d = fx_connect(&r->ds, NULL);
	struct devmig_data_session ss, dd;
	uint8_t buf[4096];

	/* A save whose pump waits on a full pipe. */
	set(s, DEVMIG_STATE_STOP_COPY);
	assert_int_equal(devmig_client_data_session(s, &ss), 0);
	assert_int_equal(devmig_client_data_wait(s, 10000), 0);
	int keep = dup(ss.fd);
	assert_true(devmig_client_data_read(s, buf, sizeof(buf)) > 0);
	assert_int_equal(devmig_client_reset(s), 0);
	assert_int_equal(devmig_client_data_session(s, &ss), -ENOENT);
	assert_int_equal(read_to_end(keep), 0); /* emptied and closed by the server */
	close(keep);
	enum devmig_state now;
	assert_int_equal(devmig_client_get_state(s, &now), 0);
	assert_int_equal(now, DEVMIG_STATE_RUNNING);

	/* A load half written: after the reset the old fd takes nothing, and
	 * no SIGPIPE reaches this process. */
	set(d, DEVMIG_STATE_RESUMING);
	assert_int_equal(devmig_client_data_session(d, &dd), 0);
	keep = dup(dd.fd);
	assert_int_equal(devmig_client_mig_write_nowait(d, "DMIGSTRM", 8), 0);
	assert_int_equal(devmig_client_reset(d), 0);
	assert_int_equal(devmig_client_data_write(d, buf, 16), -EINVAL); /* no session */
	sigset_t blk, old;
	sigemptyset(&blk);
	sigaddset(&blk, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &blk, &old);
	assert_int_equal(write(keep, buf, 16), -1);
	assert_int_equal(errno, EPIPE);
	struct timespec zero = { 0, 0 };
	sigtimedwait(&blk, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(keep);
	assert_int_equal(r->dst.reg, 0xdead);

	/* Sessions after the resets work. */
	migrate_whole(r, s, d);
	devmig_client_close(s);
	devmig_client_close(d);
}

/* A client gone in the middle of a session: the device keeps its state,
 * the next client starts a session of its own. */
static void a_disconnect_in_the_middle_of_a_session(void **state)
{
	struct rig *r = *state;
	struct raw c;
	uint32_t idx;
	int fd;

	raw_open(&c, r->ss.path, EXT_DATA_FD);
	assert_int_equal(raw_set(&c, DEVMIG_STATE_STOP_COPY, &idx, &fd), 0);
	raw_close(&c);
	read_to_end(fd); /* returns: the server ended the session (emptied, closed) */
	close(fd);
	struct devmig_client *s = fx_connect(&r->ss, NULL);
	enum devmig_state now;
	assert_int_equal(devmig_client_get_state(s, &now), 0);
	assert_int_equal(now, DEVMIG_STATE_STOP_COPY);
	/* No session for this client until an arc opens one. */
	struct devmig_data_session ss;
	assert_int_equal(devmig_client_data_session(s, &ss), -ENOENT);
	set(s, DEVMIG_STATE_STOP);
	set(s, DEVMIG_STATE_STOP_COPY);
	assert_int_equal(devmig_client_data_session(s, &ss), 0);
	uint8_t *st = NULL;
	size_t cap = 0;
	bool temp;
	assert_true(api_read(s, &st, &cap, 0, &temp) > MEM_SIZE);
	free(st);
	set(s, DEVMIG_STATE_RUNNING);
	devmig_client_close(s);
}

int main(void)
{
	/* A SIGPIPE that escaped would end the run: the library must never raise one. */
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, rig_setup, rig_teardown)
		T(wire_a_descriptor_exactly_when_an_arc_opens_a_session),
		T(wire_a_peer_without_the_extension_keeps_the_commands),
		T(whole_stream_read_to_its_end_and_loaded_in_pieces),
		T(deadline_changes_open_sessions_with_their_fd),
		cmocka_unit_test(loaded_one_byte_at_a_time),
		T(precopy_temporary_end_then_new_data),
		T(a_client_that_closes_its_fd_early),
		T(more_than_a_stream_is_refused_and_applies_nothing),
		T(reset_in_the_middle_of_a_session),
		T(a_disconnect_in_the_middle_of_a_session),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
