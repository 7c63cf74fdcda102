/* SPDX-License-Identifier: MIT */
/*
 * The migration channel's sockets (devmig/transport.h): an address parsed,
 * connected to with a bound on the wait, listened on, and connections
 * accepted with who is at the other end.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "devmig/transport.h"
#include "unix_socket.h"

_Static_assert(sizeof(((struct devmig_endpoint *)0)->path) ==
	       sizeof(((struct sockaddr_un *)0)->sun_path), "a unix path fits sun_path");
_Static_assert(sizeof(((struct devmig_endpoint *)0)->listen_file) ==
	       sizeof(((struct devmig_unix_listener *)0)->file), "the socket file's identity");

static int parse_unix(const char *s, struct devmig_endpoint *e, char *err, size_t errlen)
{
	const char *p = s + 5;

	if (!strncmp(p, "//", 2))
		p += 2; /* unix://PATH too */
	if (!*p) {
		snprintf(err, errlen, "'%s' names no socket path", s);
		return -EINVAL;
	}
	if (strlen(p) >= sizeof(e->path)) {
		snprintf(err, errlen, "socket path too long (over %zu bytes): %s",
			 sizeof(e->path) - 1, p);
		return -EINVAL;
	}
	e->is_unix = true;
	strcpy(e->path, p);
	return 0;
}

static int parse_tcp(const char *s, bool listen, struct devmig_endpoint *e, char *err,
		     size_t errlen)
{
	const char *h = s;

	if (!strncmp(h, "tcp://", 6))
		h += 6;
	else if (strstr(h, "://")) {
		snprintf(err, errlen, "'%s': only tcp://HOST:PORT and unix:PATH are understood", s);
		return -EINVAL;
	}
	const char *colon, *host = h;
	size_t hlen;
	if (*h == '[') {
		const char *rb = strchr(h, ']');
		if (!rb || rb[1] != ':') {
			snprintf(err, errlen, "'%s': an IPv6 address is written [ADDR]:PORT", s);
			return -EINVAL;
		}
		host = h + 1;
		hlen = (size_t)(rb - host);
		colon = rb + 1;
	} else {
		colon = strrchr(h, ':');
		if (!colon) {
			snprintf(err, errlen, "'%s' has no port (HOST:PORT)", s);
			return -EINVAL;
		}
		hlen = (size_t)(colon - h);
		if (memchr(h, ':', hlen)) {
			snprintf(err, errlen, "'%s': put an IPv6 address in brackets, [ADDR]:PORT", s);
			return -EINVAL;
		}
	}
	if (hlen >= sizeof(e->host) || strlen(colon + 1) >= sizeof(e->port) || !colon[1]) {
		snprintf(err, errlen, "'%s' is not HOST:PORT", s);
		return -EINVAL;
	}
	memcpy(e->host, host, hlen);
	e->host[hlen] = '\0';
	strcpy(e->port, colon + 1);
	if (!e->host[0] || !strcmp(e->host, "*")) {
		/* Every address is a choice to make out loud, not a default. */
		snprintf(err, errlen, listen ? "'%s' names no address: give the one to listen on "
					       "(0.0.0.0:PORT or [::]:PORT for every address)"
					     : "'%s' names no host", s);
		return -EINVAL;
	}
	return 0;
}

int devmig_endpoint_parse(const char *s, bool listen, struct devmig_endpoint *e, char *err,
			  size_t errlen)
{
	int rc;

	memset(e, 0, sizeof(*e));
	if (!s) {
		snprintf(err, errlen, "no address");
		return -EINVAL;
	}
	rc = !strncmp(s, "unix:", 5) ? parse_unix(s, e, err, errlen)
				     : parse_tcp(s, listen, e, err, errlen);
	if (rc)
		memset(e, 0, sizeof(*e));
	return rc;
}

/* TCP_NODELAY and keepalive on a TCP socket; nothing on others. */
static void tune_socket(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int one = 1;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A peer host that vanishes is noticed in about a minute, not hours. */
	int idle = 30, intvl = 5, cnt = 6;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * connect() bounded by timeout_ms; 0 or -errno. A unix listener whose queue
 * is full says EAGAIN and connects nothing (where TCP would go on in the
 * background): it is asked again until the bound.
 */
static int connect_bounded(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		return -errno;
	int rc;
	while ((rc = connect(fd, sa, len)) && errno == EAGAIN) {
		if (now_ms() >= end)
			return -ETIMEDOUT;
		struct timespec pause = { 0, 5 * 1000 * 1000 };
		nanosleep(&pause, NULL);
	}
	if (rc && errno != EINPROGRESS)
		return -errno;
	if (rc) {
		struct pollfd pfd = { fd, POLLOUT, 0 };
		int k;
		do
			k = poll(&pfd, 1, timeout_ms);
		while (k < 0 && errno == EINTR);
		if (k < 0)
			return -errno;
		if (k == 0)
			return -ETIMEDOUT;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
			return -errno;
		if (soerr)
			return -soerr;
	}
	if (fcntl(fd, F_SETFL, fl))
		return -errno;
	return 0;
}

static void unix_sockaddr(const struct devmig_endpoint *e, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, e->path, strlen(e->path) + 1);
}

/* "[host]:port" for an IPv6 host, "host:port" otherwise. */
static void show_host_port(const char *host, const char *port, char *buf, size_t len)
{
	bool v6 = strchr(host, ':') != NULL;
	snprintf(buf, len, "%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

static void show_sockaddr(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen)
{
	char host[NI_MAXHOST], port[NI_MAXSERV];

	if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, buflen, "?");
		return;
	}
	show_host_port(host, port, buf, buflen);
}

static int connect_unix(const struct devmig_endpoint *e, int timeout_ms, char *err,
			size_t errlen)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		int rc = -errno;
		snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
		return rc;
	}
	unix_sockaddr(e, &sun);
	int rc = connect_bounded(fd, (struct sockaddr *)&sun, sizeof(sun), timeout_ms);
	if (rc) {
		snprintf(err, errlen, "cannot connect to unix:%s: %s (is 'devmig receive' "
				      "listening there?)", e->path, strerror(-rc));
		close(fd);
		return rc;
	}
	return fd;
}

int devmig_endpoint_connect(const struct devmig_endpoint *e, int timeout_ms, char *err,
			    size_t errlen)
{
	if (e->is_unix)
		return connect_unix(e, timeout_ms, err, errlen);

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_ADDRCONFIG }, *res;
	int g = getaddrinfo(e->host, e->port, &hints, &res);
	if (g) {
		snprintf(err, errlen, "cannot resolve %s port %s: %s", e->host, e->port,
			 g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		return g == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	}
	int fd = -1, last = -ECONNREFUSED;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			last = -errno;
			continue;
		}
		int rc = connect_bounded(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms);
		if (rc) {
			last = rc;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		char where[300];
		show_host_port(e->host, e->port, where, sizeof(where));
		snprintf(err, errlen, "cannot connect to %s: %s (is 'devmig receive' listening "
				      "there?)", where, strerror(-last));
		return last;
	}
	tune_socket(fd);
	return fd;
}

static int listen_unix(struct devmig_endpoint *e, char *shown, size_t shownlen, char *err,
		       size_t errlen)
{
	struct devmig_unix_listener l;
	int rc = devmig_unix_listen(e->path, 8, &l, err, errlen);

	if (rc)
		return rc;
	memcpy(e->listen_file, l.file, sizeof(e->listen_file));
	snprintf(shown, shownlen, "unix:%s", e->path);
	return l.fd;
}

int devmig_endpoint_listen(struct devmig_endpoint *e, char *shown, size_t shownlen, char *err,
			   size_t errlen)
{
	if (e->is_unix)
		return listen_unix(e, shown, shownlen, err, errlen);

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE }, *res;
	int g = getaddrinfo(e->host[0] ? e->host : NULL, e->port, &hints, &res);
	if (g) {
		snprintf(err, errlen, "cannot resolve %s port %s: %s", e->host[0] ? e->host : "*",
			 e->port, g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		return g == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	}
	/* Every address: an IPv6 socket that takes IPv4 too, when there is one. */
	struct addrinfo *any6 = NULL;
	for (struct addrinfo *ai = res; ai && !e->host[0] && !any6; ai = ai->ai_next)
		if (ai->ai_family == AF_INET6)
			any6 = ai;
	int fd = -1, last = -EADDRNOTAVAIL;
	for (int pass = 0; pass < 2 && fd < 0; pass++) {
		for (struct addrinfo *ai = pass ? res : any6; ai && fd < 0;
		     ai = pass ? ai->ai_next : NULL) {
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd < 0) {
				last = -errno;
				continue;
			}
			int one = 1, zero = 0;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (ai->ai_family == AF_INET6 && !e->host[0])
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 8)) {
				last = -errno;
				close(fd);
				fd = -1;
			}
		}
	}
	freeaddrinfo(res);
	if (fd < 0) {
		char where[300];
		show_host_port(e->host[0] ? e->host : "*", e->port, where, sizeof(where));
		snprintf(err, errlen, "cannot listen on %s: %s", where, strerror(-last));
		return last;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl))
		snprintf(shown, shownlen, "%s:%s", e->host, e->port);
	else
		show_sockaddr((struct sockaddr *)&ss, sl, shown, shownlen);
	return fd;
}

/* The uid at the other end of a unix socket, or -1. */
static long peer_uid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return -1;
	return (long)cred.uid;
}

static void peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &sl)) {
		snprintf(buf, len, "?");
		return;
	}
	if (ss.ss_family == AF_UNIX) {
		snprintf(buf, len, "a local process (uid %ld)", peer_uid(fd));
		return;
	}
	show_sockaddr((struct sockaddr *)&ss, sl, buf, len);
}

int devmig_endpoint_accept(const struct devmig_endpoint *e, int lfd, bool allow_other_uids,
			   char *peer, size_t peerlen)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (peerlen)
		peer[0] = '\0';
	if (fd < 0)
		return -errno;
	peer_name(fd, peer, peerlen);
	if (e->is_unix && !allow_other_uids && peer_uid(fd) != (long)geteuid()) {
		close(fd);
		return -EACCES;
	}
	tune_socket(fd);
	return fd;
}

void devmig_endpoint_unlisten(const struct devmig_endpoint *e, int lfd)
{
	struct devmig_unix_listener l = { .fd = lfd };

	if (lfd < 0)
		return;
	memcpy(l.file, e->listen_file, sizeof(l.file));
	if (e->is_unix)
		devmig_unix_unlisten(&l, e->path);
	else
		close(lfd);
}
