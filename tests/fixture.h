/* SPDX-License-Identifier: MIT */
/*
 * What the tests share to set up: a temporary directory, devices served on
 * sockets in it, clients, and guest memory. Each helper fails the running
 * cmocka test (fail_msg) when it cannot do its job, so a test reads as
 * its steps.
 */
#ifndef DEVMIG_TESTS_FIXTURE_H
#define DEVMIG_TESTS_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmig/client.h"
#include "devmig/device.h"
#include "devmig/server.h"
#include "devmig/variant.h"

#define FX_PATH_MAX 108 /* sun_path */

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t fx_now_ms(void);
/* CLOCK_REALTIME ms from now, for pthread_cond_timedwait. */
struct timespec;
void fx_deadline(struct timespec *ts, int ms);
/* splitmix64: the next number of the sequence seeded by *s. */
uint64_t fx_rnd(uint64_t *s);
/* 1 .. max, log-uniform, so that tiny and huge sizes both come up often. */
size_t fx_rnd_size(uint64_t *s, size_t max);

/* A fresh directory under $TMPDIR (or /tmp), named after prefix. */
void fx_tmpdir(char dir[FX_PATH_MAX], const char *prefix);
/* Remove dir and everything in it. */
void fx_rmdir(const char *dir);

/* A device served on dir/name.sock. */
struct fx_server {
	struct devmig_device *dev;
	const struct devmig_variant *variant; /* NULL: the caller owns dev */
	struct devmig_server *srv;
	char path[FX_PATH_MAX];
};

/* Serve dev (already initialised; the caller keeps it) in a server thread. */
void fx_serve(struct fx_server *s, const char *dir, const char *name, struct devmig_device *dev);
/* Create a device of variant v with args and serve it; fx_unserve frees it. */
void fx_serve_variant(struct fx_server *s, const char *dir, const char *name,
		      const struct devmig_variant *v, const char *args);
/* Either, with a server configuration of the caller's (NULL: the defaults);
 * its socket_path is set here. */
void fx_serve_cfg(struct fx_server *s, const char *dir, const char *name, struct devmig_device *dev,
		  const struct devmig_server_config *cfg);
void fx_serve_variant_cfg(struct fx_server *s, const char *dir, const char *name,
			  const struct devmig_variant *v, const char *args,
			  const struct devmig_server_config *cfg);
/* Stop serving, free the server, and the device when fx_serve_variant made it. */
void fx_unserve(struct fx_server *s);
/* The server dies (its clients see the connection close); the device stays
 * until fx_unserve. */
void fx_kill(struct fx_server *s);

/* A client of the device (cfg may be NULL). */
struct devmig_client *fx_connect(const struct fx_server *s, const struct devmig_client_config *cfg);

/* A growing byte buffer (a migration stream, records built by a test). */
struct fx_buf {
	uint8_t *p;
	size_t len, cap;
};
void fx_buf_add(struct fx_buf *b, const void *data, size_t n);
void fx_buf_free(struct fx_buf *b);
/*
 * Append c's migration data read in MIG_DATA_READs of piece bytes until a
 * read returns less than asked: the end of the stream in STOP_COPY, what
 * there is for now in PRE_COPY.
 */
void fx_buf_read_stream(struct fx_buf *b, struct devmig_client *c, size_t piece);

/* Guest memory: size bytes of a memfd, mapped here. */
struct fx_guest {
	int fd;
	uint8_t *mem;
	uint64_t size;
};
void fx_guest_new(struct fx_guest *g, uint64_t size);
/* DMA_MAP all of it at iova, read/write, by fd. */
void fx_guest_map(const struct fx_guest *g, struct devmig_client *c, uint64_t iova);
void fx_guest_free(struct fx_guest *g);

#endif /* DEVMIG_TESTS_FIXTURE_H */
