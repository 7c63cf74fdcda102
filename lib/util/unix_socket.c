/* SPDX-License-Identifier: MIT */
/* A listening unix socket that is ours alone (unix_socket.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "unix_socket.h"

/*
 * May we bind the socket path? Nothing there, or a socket nobody answers
 * on (a server that died: removed). A live server's socket and any other
 * file are left alone.
 */
static int claim_path(const struct sockaddr_un *sa, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(sa->sun_path, &st)) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot use %s: %s", sa->sun_path, strerror(errno));
		return -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket: it is left alone (choose "
				      "another path or remove it)", sa->sun_path);
		return -EEXIST;
	}
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	int rc = connect(probe, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	close(probe);
	if (!rc || e == EAGAIN) {
		snprintf(err, errlen, "a server already answers at %s: it is left alone",
			 sa->sun_path);
		return -EADDRINUSE;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		snprintf(err, errlen, "cannot check %s: %s", sa->sun_path, strerror(e));
		return -e;
	}
	/* Stale. Remove it only if it is still the file we looked at. */
	struct stat again;
	if (!lstat(sa->sun_path, &again) && again.st_dev == st.st_dev && again.st_ino == st.st_ino)
		unlink(sa->sun_path);
	return 0;
}

/* Which file is at path: device, inode, birth time (0 where not kept). */
static int file_id(const char *path, uint64_t id[3])
{
	struct statx sx;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME, &sx))
		return -errno;
	id[0] = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	id[1] = sx.stx_ino;
	id[2] = (sx.stx_mask & STATX_BTIME) ? (uint64_t)sx.stx_btime.tv_sec * 1000000000ull +
						      sx.stx_btime.tv_nsec
					    : 0;
	return 0;
}

int devmig_unix_listen(const char *path, int backlog, struct devmig_unix_listener *l, char *err,
		       size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int rc;

	l->fd = -1;
	memset(l->file, 0, sizeof(l->file));
	if (!path || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path missing or longer than %zu bytes",
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	rc = claim_path(&sa, err, errlen);
	if (rc)
		goto fail;
	/* 0600 before listen(): nobody else can connect in between (connect
	 * fails until listen), and the process umask is left alone. */
	bool bound = !bind(l->fd, (struct sockaddr *)&sa, sizeof(sa));
	if (!bound || chmod(path, 0600) || file_id(path, l->file) || listen(l->fd, backlog)) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		if (bound)
			unlink(path); /* ours: made by this bind */
		goto fail;
	}
	return 0;
fail:
	close(l->fd);
	l->fd = -1;
	return rc;
}

void devmig_unix_unlisten(struct devmig_unix_listener *l, const char *path)
{
	uint64_t id[3];

	if (l->fd < 0)
		return;
	close(l->fd);
	l->fd = -1;
	if (path && !file_id(path, id) && !memcmp(id, l->file, sizeof(id)))
		unlink(path);
}
