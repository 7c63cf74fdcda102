/* SPDX-License-Identifier: MIT */
/* Test set-up shared by the integration tests: see fixture.h. */
#include <ftw.h>
#include <linux/vfio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"

uint64_t fx_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void fx_deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

uint64_t fx_rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

size_t fx_rnd_size(uint64_t *s, size_t max)
{
	unsigned bits = 0;
	while (((size_t)1 << bits) < max)
		bits++;
	size_t lim = (size_t)1 << (fx_rnd(s) % (bits + 1));
	if (lim > max)
		lim = max;
	return 1 + (size_t)(fx_rnd(s) % lim);
}

void fx_tmpdir(char dir[FX_PATH_MAX], const char *prefix)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, FX_PATH_MAX, "%s/devmig-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
	if (!mkdtemp(dir))
		fail_msg("mkdtemp %s: %m", dir);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void fx_rmdir(const char *dir)
{
	if (dir && dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void fx_serve_cfg(struct fx_server *s, const char *dir, const char *name, struct devmig_device *dev,
		  const struct devmig_server_config *cfg)
{
	struct devmig_server_config sc = { 0 };
	char err[256];

	memset(s, 0, sizeof(*s));
	if (cfg)
		sc = *cfg;
	s->dev = dev;
	if (snprintf(s->path, sizeof(s->path), "%s/%s.sock", dir, name) >= (int)sizeof(s->path))
		fail_msg("socket path too long: %s/%s.sock", dir, name);
	sc.socket_path = s->path;
	s->srv = devmig_server_new(dev, &sc, err, sizeof(err));
	if (!s->srv)
		fail_msg("serving %s: %s", name, err);
	if (devmig_server_start(s->srv))
		fail_msg("starting the server of %s", name);
}

void fx_serve(struct fx_server *s, const char *dir, const char *name, struct devmig_device *dev)
{
	fx_serve_cfg(s, dir, name, dev, NULL);
}

void fx_serve_variant_cfg(struct fx_server *s, const char *dir, const char *name,
			  const struct devmig_variant *v, const char *args,
			  const struct devmig_server_config *cfg)
{
	char err[256];
	struct devmig_device *dev = v->create(args, err, sizeof(err));

	if (!dev)
		fail_msg("%s %s: %s", v->name, args ? args : "", err);
	fx_serve_cfg(s, dir, name, dev, cfg);
	s->variant = v;
}

void fx_serve_variant(struct fx_server *s, const char *dir, const char *name,
		      const struct devmig_variant *v, const char *args)
{
	fx_serve_variant_cfg(s, dir, name, v, args, NULL);
}

void fx_unserve(struct fx_server *s)
{
	devmig_server_free(s->srv);
	s->srv = NULL;
	if (s->variant && s->dev)
		s->variant->free(s->dev);
	s->dev = NULL;
	s->variant = NULL;
}

void fx_kill(struct fx_server *s)
{
	devmig_server_free(s->srv);
	s->srv = NULL;
}

struct devmig_client *fx_connect(const struct fx_server *s, const struct devmig_client_config *cfg)
{
	char err[256];
	struct devmig_client *c = devmig_client_connect(s->path, cfg, err, sizeof(err));

	if (!c)
		fail_msg("connecting to %s: %s", s->path, err);
	return c;
}

/* Room for n more bytes. */
static void buf_reserve(struct fx_buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		fail_msg("out of memory for a %zu-byte buffer", cap);
	b->p = p;
	b->cap = cap;
}

void fx_buf_add(struct fx_buf *b, const void *data, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

void fx_buf_free(struct fx_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void fx_buf_read_stream(struct fx_buf *b, struct devmig_client *c, size_t piece)
{
	for (;;) {
		buf_reserve(b, piece);
		ssize_t n = devmig_client_mig_read(c, b->p + b->len, piece);
		if (n < 0)
			fail_msg("MIG_DATA_READ after %zu bytes: %s", b->len, strerror((int)-n));
		b->len += (size_t)n;
		if ((size_t)n < piece)
			return;
		if (b->len > (1ull << 32))
			fail_msg("a stream of over 4 GiB: it does not end");
	}
}

void fx_guest_new(struct fx_guest *g, uint64_t size)
{
	g->size = size;
	g->fd = memfd_create("guest-ram", MFD_CLOEXEC);
	if (g->fd < 0 || ftruncate(g->fd, (off_t)size))
		fail_msg("guest memory of %llu bytes: %m", (unsigned long long)size);
	g->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
	if (g->mem == MAP_FAILED)
		fail_msg("mapping guest memory: %m");
}

void fx_guest_map(const struct fx_guest *g, struct devmig_client *c, uint64_t iova)
{
	int rc = devmig_client_dma_map(c, iova, g->size, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
				       g->fd, 0, NULL);
	if (rc)
		fail_msg("DMA_MAP of guest memory: %s", strerror(-rc));
}

void fx_guest_free(struct fx_guest *g)
{
	if (g->mem && g->mem != MAP_FAILED)
		munmap(g->mem, g->size);
	if (g->fd >= 0)
		close(g->fd);
	g->mem = NULL;
	g->fd = -1;
}
