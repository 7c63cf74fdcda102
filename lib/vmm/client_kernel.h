/* SPDX-License-Identifier: MIT */
/*
 * Inside the kernel backend: the system calls it makes go through a table,
 * so tests can put a fake kernel underneath (a VFIO device, a type1
 * container, an iommufd) and check what the backend does without one.
 * Every call returns -errno on failure, never -1 with errno.
 */
#ifndef DEVMIG_LIB_CLIENT_KERNEL_H
#define DEVMIG_LIB_CLIENT_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "devmig/client.h"

struct kvfio_sys {
	int (*open)(void *ctx, const char *path, int flags);
	int (*close)(void *ctx, int fd);
	/* The ioctl's non-negative result (an fd for GET_DEVICE_FD), or -errno. */
	int (*ioctl)(void *ctx, int fd, unsigned long req, void *arg);
	ssize_t (*read)(void *ctx, int fd, void *buf, size_t len);
	ssize_t (*write)(void *ctx, int fd, const void *buf, size_t len);
	ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, uint64_t off);
	ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len, uint64_t off);
	/* >0 ready, 0 timed out, -errno. */
	int (*poll)(void *ctx, int fd, short events, int timeout_ms);
	int (*set_nonblock)(void *ctx, int fd);
	void *ctx;
	const char *sysfs; /* "/sys" */
	const char *dev;   /* "/dev" */
};

/* The real kernel. */
extern const struct kvfio_sys kvfio_sys_linux;

int kvfio_locate(const struct kvfio_sys *sys, const char *spec, struct devmig_vfio_location *loc,
		 char *err, size_t errlen);
struct devmig_client *kvfio_open(const struct kvfio_sys *sys, const char *spec,
				 const struct devmig_client_config *cfg, char *err, size_t errlen);

/*
 * The data fd. read_some: one read() that waits (poll) while it would
 * block, up to timeout_ms: the bytes read, 0 at the end of the stream,
 * -ENOMSG at a temporary end (PRE_COPY), -ETIMEDOUT, or -errno.
 * write_all: every byte, in as many write()s as it takes.
 */
ssize_t kvfio_data_read_some(const struct kvfio_sys *sys, int fd, void *buf, size_t len,
			     int timeout_ms);
int kvfio_data_write_all(const struct kvfio_sys *sys, int fd, const void *buf, size_t len,
			 int timeout_ms);

#endif /* DEVMIG_LIB_CLIENT_KERNEL_H */
