/* SPDX-License-Identifier: MIT */
/*
 * A listening unix socket that is ours alone, shared by the server (a
 * device's vfio-user socket) and the migration channel's listener: the path
 * is claimed only when it is free or holds a stale socket, the socket is
 * mode 0600 before anyone can connect, and at the end only our own socket
 * file is removed.
 */
#ifndef DEVMIG_LIB_UNIX_SOCKET_H
#define DEVMIG_LIB_UNIX_SOCKET_H

#include <stddef.h>
#include <stdint.h>

struct devmig_unix_listener {
	int fd;
	/* The socket file we bound, the one to remove: device, inode and,
	 * where the filesystem keeps it, birth time (an inode number is reused
	 * as soon as a file is gone; a chmod does not make it another file). */
	uint64_t file[3];
};

/*
 * Listen on path with backlog. Nothing may be there but a stale socket (one
 * nobody answers on, as a killed server leaves: removed); a socket a live
 * server answers on and any other file are left alone and refused. 0, or
 * -errno with the reason in err (l->fd is then -1).
 */
int devmig_unix_listen(const char *path, int backlog, struct devmig_unix_listener *l, char *err,
		       size_t errlen);

/* Close the socket and remove path if it is still the file we bound
 * (another listener may have taken the path since). */
void devmig_unix_unlisten(struct devmig_unix_listener *l, const char *path);

#endif /* DEVMIG_LIB_UNIX_SOCKET_H */
