/* SPDX-License-Identifier: MIT */
/* What the info/migrate/receive/save/restore commands share. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli_util.h"

/* ---- devices ---- */

unsigned cli_timeout_s = CLI_TIMEOUT_DEFAULT;

/* The same device under two names: one socket inode, or one sysfs device. */
static bool same_device(const char *a, const char *b)
{
	struct stat sa, sb;

	if (!strcmp(a, b))
		return true;
	if (devmig_addr_is_vfio(a) || devmig_addr_is_vfio(b)) {
		struct devmig_vfio_location la, lb;
		char err[256];
		size_t pl = strlen(DEVMIG_VFIO_PREFIX);
		return devmig_addr_is_vfio(a) && devmig_addr_is_vfio(b) &&
		       !devmig_vfio_locate(a + pl, &la, err, sizeof(err)) &&
		       !devmig_vfio_locate(b + pl, &lb, err, sizeof(err)) && !strcmp(la.sysfs, lb.sysfs);
	}
	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

const char *cli_vfio_addr(const char *spec)
{
	static char pool[3 * CLI_MAX_DEVICES][320];
	static unsigned used;

	if (used == sizeof(pool) / sizeof(pool[0]) ||
	    strlen(spec) + strlen(DEVMIG_VFIO_PREFIX) >= sizeof(pool[0]))
		return NULL;
	snprintf(pool[used], sizeof(pool[0]), "%s%s", DEVMIG_VFIO_PREFIX, spec);
	return pool[used++];
}

bool cli_add_device(const char *cmd, char **list, unsigned *n, const char *arg, bool vfio)
{
	if (*n == CLI_MAX_DEVICES) {
		fprintf(stderr, "devmig %s: at most %u devices at once\n", cmd, CLI_MAX_DEVICES);
		return false;
	}
	const char *addr = vfio ? cli_vfio_arg(cmd, arg) : arg;
	if (!addr)
		return false;
	list[(*n)++] = (char *)addr;
	return true;
}

const char *cli_vfio_arg(const char *cmd, const char *spec)
{
	struct devmig_vfio_location loc;
	char err[512];

	/* A name that cannot be a device is a usage error; a device that is not
	 * there is found when it is opened. */
	if (devmig_vfio_locate(spec, &loc, err, sizeof(err)) == -EINVAL) {
		fprintf(stderr, "devmig %s: --vfio %s\n", cmd, err);
		return NULL;
	}
	const char *addr = cli_vfio_addr(spec);
	if (!addr)
		fprintf(stderr, "devmig %s: --vfio %s: too long\n", cmd, spec);
	return addr;
}

bool cli_distinct_paths(const char *cmd, char *const *a, unsigned na, char *const *b,
			unsigned nb)
{
	unsigned n = na + nb;

	for (unsigned i = 0; i < n; i++) {
		const char *p = i < na ? a[i] : b[i - na];
		for (unsigned j = i + 1; j < n; j++) {
			const char *q = j < na ? a[j] : b[j - na];
			if (same_device(p, q)) {
				fprintf(stderr,
					"devmig %s: %s is named twice (a device serves one client "
					"at a time, so it cannot be both ends or two devices)\n",
					cmd, p);
				return false;
			}
		}
	}
	return true;
}

struct devmig_client **cli_connect_all(const char *cmd, char *const *paths, unsigned n)
{
	if (!cli_distinct_paths(cmd, paths, n, NULL, 0))
		return NULL;
	struct devmig_client **c = calloc(n ? n : 1, sizeof(*c));
	if (!c) {
		fprintf(stderr, "devmig %s: out of memory\n", cmd);
		return NULL;
	}
	struct devmig_client_config cc = { .timeout_ms = (int)(cli_timeout_s * 1000u) };
	for (unsigned i = 0; i < n; i++) {
		char err[512];
		c[i] = devmig_client_open(paths[i], &cc, err, sizeof(err));
		if (!c[i]) {
			bool busy = strstr(err, "VERSION") && (strstr(err, strerror(EBUSY)) ||
							       strstr(err, "timed out") ||
							       strstr(err, "temporarily unavailable"));
			fprintf(stderr, "devmig %s: %s%s\n", cmd, err,
				busy ? " (another client is connected to the device: a VMM, or "
				       "another devmig command)"
				     : "");
			cli_close_all(c, i);
			return NULL;
		}
	}
	return c;
}

void cli_close_all(struct devmig_client **c, unsigned n)
{
	if (!c)
		return;
	for (unsigned i = 0; i < n; i++)
		devmig_client_close(c[i]);
	free(c);
}

/* ---- numbers ---- */

bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

const char *cli_bytes(double bytes, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;

	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", bytes);
	else
		snprintf(buf, len, "%.2f %s", bytes, unit[u]);
	return buf;
}

const char *cli_duration(uint64_t ns, char *buf, size_t len)
{
	if (ns < 1000000000ull)
		snprintf(buf, len, "%.3f ms", ns / 1e6);
	else if (ns < 120000000000ull)
		snprintf(buf, len, "%.2f s", ns / 1e9);
	else
		snprintf(buf, len, "%llu min %llu s", (unsigned long long)(ns / 60000000000ull),
			 (unsigned long long)(ns / 1000000000ull % 60));
	return buf;
}

/* ---- results ---- */

/* After "source device " or "destination device " at s, the index and its end. */
static const char *device_ref(const char *s, const char *what, unsigned long *idx)
{
	size_t l = strlen(what);
	char *end;

	if (strncmp(s, what, l) || !isdigit((unsigned char)s[l]))
		return NULL;
	*idx = strtoul(s + l, &end, 10);
	return end;
}

void cli_print_error(const char *cmd, const char *error, char *const *src, unsigned nsrc,
		     char *const *dst, unsigned ndst)
{
	char out[2048];
	size_t o = 0;

	if (!error || !error[0])
		error = "failed without saying why";
	for (const char *s = error; *s && o + 1 < sizeof(out);) {
		unsigned long idx;
		const char *end;
		char *const *paths = NULL;
		unsigned np = 0;

		if ((end = device_ref(s, "source device ", &idx)))
			paths = src, np = nsrc;
		else if ((end = device_ref(s, "destination device ", &idx)))
			paths = dst, np = ndst;
		if (end && paths && idx < np) {
			int k = snprintf(out + o, sizeof(out) - o, "%.*s (%s)", (int)(end - s), s,
					 paths[idx]);
			if (k < 0 || (size_t)k >= sizeof(out) - o)
				break;
			o += (size_t)k;
			s = end;
			continue;
		}
		out[o++] = *s++;
	}
	out[o < sizeof(out) ? o : sizeof(out) - 1] = '\0';
	fprintf(stderr, "devmig %s: %s\n", cmd, out);
}

const char *cli_state_name(int state)
{
	return state == DEVMIG_STATE_UNKNOWN ? "unknown" : devmig_state_name((enum devmig_state)state);
}

void cli_note_states(struct devmig_migration_report *r, unsigned nsrc, unsigned ndst)
{
	size_t l = strlen(r->error);
	const char *sep = "; left: ";

	for (unsigned side = 0; side < 2; side++) {
		unsigned n = side ? ndst : nsrc;
		for (unsigned i = 0; i < n && i < DEVMIG_ENGINE_MAX_DEVICES; i++) {
			int st = side ? r->dst_state[i] : r->src_state[i];
			if (l < sizeof(r->error))
				l += (size_t)snprintf(r->error + l, sizeof(r->error) - l, "%s%s device %u %s",
						      sep, side ? "destination" : "source", i,
						      cli_state_name(st));
			sep = ", ";
		}
	}
}

static json_object *states_json(const int *states, unsigned n)
{
	json_object *a = json_object_new_array();
	for (unsigned i = 0; i < n && i < DEVMIG_ENGINE_MAX_DEVICES; i++)
		json_object_array_add(a, json_object_new_string(cli_state_name(states[i])));
	return a;
}

json_object *cli_report_json(const struct devmig_migration_report *r, bool ok, unsigned nsrc,
			     unsigned ndst)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	json_object_object_add(o, "error", ok || !r->error[0] ? NULL
							    : json_object_new_string(r->error));
	json_object_object_add(o, "completed", json_object_new_boolean(r->completed));
	json_object_object_add(o, "outcome_unknown", json_object_new_boolean(r->outcome_unknown));
	json_object_object_add(o, "devices", json_object_new_int64(r->devices));
	json_object_object_add(o, "rounds", json_object_new_int64(r->rounds));
	json_object_object_add(o, "precopy", json_object_new_boolean(r->precopy));
	json_object_object_add(o, "device_bytes", json_object_new_int64((int64_t)r->device_bytes));
	json_object_object_add(o, "guest_bytes", json_object_new_int64((int64_t)r->guest_bytes));
	json_object_object_add(o, "device_state_bytes",
			       json_object_new_int64((int64_t)r->device_state_bytes));
	json_object_object_add(o, "stop_copy_bytes",
			       json_object_new_int64((int64_t)r->stop_copy_bytes));
	json_object_object_add(o, "total_ns", json_object_new_int64((int64_t)r->total_ns));
	json_object_object_add(o, "downtime_ns", json_object_new_int64((int64_t)r->downtime_ns));
	json_object_object_add(o, "throughput_bytes_per_s", json_object_new_double(r->throughput));
	json_object_object_add(o, "budget_ns", json_object_new_int64((int64_t)r->budget_ns));
	json_object_object_add(o, "budget_met", json_object_new_boolean(r->budget_met));
	json_object_object_add(o, "converged", json_object_new_boolean(r->converged));
	json_object_object_add(o, "deadlines", json_object_new_boolean(r->deadlines));
	json_object_object_add(o, "deadline_refusals", json_object_new_int64(r->deadline_refusals));
	json_object_object_add(o, "refusal_estimate_ns",
			       json_object_new_int64((int64_t)r->refusal_estimate_ns));
	json_object_object_add(o, "refusal_deadline_ns",
			       json_object_new_int64((int64_t)r->refusal_deadline_ns));
	json_object_object_add(o, "overrun_ns", json_object_new_int64((int64_t)r->overrun_ns));
	json_object_object_add(o, "throttle_cap_bytes_per_s",
			       json_object_new_int64((int64_t)r->throttle_cap));
	json_object_object_add(o, "throttle_ns", json_object_new_int64((int64_t)r->throttle_ns));
	json_object_object_add(o, "throttle_steps", json_object_new_int64(r->throttle_steps));
	json_object_object_add(o, "source_states", states_json(r->src_state, nsrc));
	json_object_object_add(o, "destination_states", states_json(r->dst_state, ndst));
	return o;
}

void cli_print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(stdout);
	json_object_put(o);
}

/* ---- engine callbacks ---- */

void cli_progress_init(struct cli_progress *p, bool verbose)
{
	memset(p, 0, sizeof(*p));
	p->tty = isatty(STDERR_FILENO);
	p->verbose = verbose;
}

void cli_progress_end(struct cli_progress *p)
{
	if (p->line_open)
		fputs("\r\033[K", stderr);
	p->line_open = false;
}

void cli_progress_event(void *opaque, const struct devmig_engine_event *ev)
{
	struct cli_progress *p = opaque;
	char b1[32], b2[32], b3[32], b4[32];

	switch (ev->type) {
	case DEVMIG_EV_ARC:
		if (p->verbose) {
			char *const *paths = ev->destination ? p->dst : p->src;
			unsigned np = ev->destination ? p->ndst : p->nsrc;
			if (p->line_open) /* keep the progress line, go below it */
				fputc('\n', stderr);
			p->line_open = false;
			char within[48] = "";
			if (ev->deadline_ns)
				snprintf(within, sizeof(within), " within %s",
					 cli_duration(ev->deadline_ns, b2, sizeof(b2)));
			fprintf(stderr, "  %s device %u%s%s%s: %s -> %s%s\n",
				ev->destination ? "destination" : "source", ev->dev,
				paths && ev->dev < np ? " (" : "", paths && ev->dev < np ? paths[ev->dev] : "",
				paths && ev->dev < np ? ")" : "", devmig_state_name(ev->from),
				devmig_state_name(ev->to), within);
		}
		break;
	case DEVMIG_EV_THROTTLE:
		if (!p->tty && !p->verbose)
			break;
		if (p->line_open)
			fputc('\n', stderr);
		p->line_open = false;
		if (ev->cap)
			fprintf(stderr, "  source device %u: dirty rate capped at %s/s (rounds were "
					"not shrinking)\n", ev->dev, cli_bytes((double)ev->cap, b1, sizeof(b1)));
		else
			fprintf(stderr, "  source device %u: dirty-rate cap lifted\n", ev->dev);
		break;
	case DEVMIG_EV_REFUSED:
		if (p->line_open)
			fputc('\n', stderr);
		p->line_open = false;
		fprintf(stderr, "  source device %u refused the switchover: it needs about %s, %s "
				"were left of the budget; it runs on, pre-copy goes on\n", ev->dev,
			cli_duration(ev->estimate_ns, b1, sizeof(b1)),
			cli_duration(ev->deadline_ns, b2, sizeof(b2)));
		break;
	case DEVMIG_EV_ROUND:
		if (!p->tty)
			break;
		if (ev->rate > 0)
			cli_duration((uint64_t)(ev->remaining / ev->rate * 1e9), b3, sizeof(b3));
		else
			snprintf(b3, sizeof(b3), "unknown");
		fprintf(stderr, "\r\033[Kpre-copy round %u: %s moved, %s/s, %s still to move (~%s)",
			ev->round, cli_bytes((double)ev->bytes, b1, sizeof(b1)),
			cli_bytes(ev->rate, b2, sizeof(b2)),
			cli_bytes((double)ev->remaining, b4, sizeof(b4)), b3);
		p->line_open = true;
		break;
	case DEVMIG_EV_SWITCHOVER:
		if (!p->tty)
			break;
		fprintf(stderr, "\r\033[Kswitchover after %u round%s: devices stopped, copying "
				"the last %s",
			ev->round, ev->round == 1 ? "" : "s",
			cli_bytes((double)ev->remaining, b1, sizeof(b1)));
		p->line_open = true;
		break;
	case DEVMIG_EV_DONE:
	case DEVMIG_EV_UNWIND:
		cli_progress_end(p);
		break;
	case DEVMIG_EV_RECOVER: {
		/* Always said: the operator should know what an earlier failure left. */
		char *const *paths = ev->destination ? p->dst : p->src;
		unsigned np = ev->destination ? p->ndst : p->nsrc;
		cli_progress_end(p);
		fprintf(stderr, "devmig: found %s%s%s\n", ev->why, paths && ev->dev < np ? " at " : "",
			paths && ev->dev < np ? paths[ev->dev] : "");
		break;
	}
	}
	fflush(stderr);
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	interrupted = sig;
	/* The next one ends the process. */
	signal(sig, SIG_DFL);
	static const char msg[] = "\ndevmig: interrupted: the migration is abandoned at the "
				  "switchover unless that has begun; the source devices then go "
				  "back to RUNNING (interrupt again to kill at once)\n";
	ssize_t k = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)k;
}

void cli_catch_interrupts(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

bool cli_interrupted(void)
{
	return interrupted != 0;
}

int cli_pause_guest(void *opaque)
{
	(void)opaque;
	return interrupted ? -1 : 0;
}

void cli_ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

/* ---- the migration channel's addresses ---- */

bool cli_parse_addr(const char *s, bool listen, struct cli_addr *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	if (!strncmp(s, "unix:", 5)) {
		const char *p = s + 5;
		if (!strncmp(p, "//", 2))
			p += 2; /* unix://PATH too */
		if (!*p) {
			snprintf(err, errlen, "'%s' names no socket path", s);
			return false;
		}
		if (strlen(p) >= sizeof(a->path)) {
			snprintf(err, errlen, "socket path too long (over %zu bytes): %s",
				 sizeof(a->path) - 1, p);
			return false;
		}
		a->is_unix = true;
		strcpy(a->path, p);
		return true;
	}
	const char *h = s;
	if (!strncmp(h, "tcp://", 6))
		h += 6;
	else if (strstr(h, "://")) {
		snprintf(err, errlen, "'%s': only tcp://HOST:PORT and unix:PATH are understood", s);
		return false;
	}
	const char *colon, *host = h;
	size_t hlen;
	if (*h == '[') {
		const char *rb = strchr(h, ']');
		if (!rb || rb[1] != ':') {
			snprintf(err, errlen, "'%s': an IPv6 address is written [ADDR]:PORT", s);
			return false;
		}
		host = h + 1;
		hlen = (size_t)(rb - host);
		colon = rb + 1;
	} else {
		colon = strrchr(h, ':');
		if (!colon) {
			snprintf(err, errlen, "'%s' has no port (HOST:PORT)", s);
			return false;
		}
		hlen = (size_t)(colon - h);
		if (memchr(h, ':', hlen)) {
			snprintf(err, errlen, "'%s': put an IPv6 address in brackets, [ADDR]:PORT", s);
			return false;
		}
	}
	if (hlen >= sizeof(a->host) || strlen(colon + 1) >= sizeof(a->port) || !colon[1]) {
		snprintf(err, errlen, "'%s' is not HOST:PORT", s);
		return false;
	}
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	strcpy(a->port, colon + 1);
	if (!a->host[0] || !strcmp(a->host, "*")) {
		/* Every address is a choice to make out loud, not a default. */
		snprintf(err, errlen, listen ? "'%s' names no address: give the one to listen on "
					       "(0.0.0.0:PORT or [::]:PORT for every address)"
					     : "'%s' names no host", s);
		return false;
	}
	return true;
}

void cli_tune_socket(int fd)
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

void cli_note_timeout(struct devmig_migration_report *r, int rc, unsigned seconds)
{
	if (rc != -EAGAIN && rc != -EWOULDBLOCK && rc != -ETIMEDOUT)
		return;
	if (!strcmp(r->error, strerror(EAGAIN)) || !strcmp(r->error, strerror(ETIMEDOUT))) {
		snprintf(r->error, sizeof(r->error), "the peer sent nothing for %u s (--timeout)",
			 seconds);
		return;
	}
	if (strstr(r->error, "--timeout"))
		return;
	size_t l = strlen(r->error);
	snprintf(r->error + l, sizeof(r->error) - l, " (a step took over %u s: --timeout)",
		 seconds);
}

long cli_peer_uid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return -1;
	return (long)cred.uid;
}

static void show_sockaddr(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen);

void cli_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &sl)) {
		snprintf(buf, len, "?");
		return;
	}
	if (ss.ss_family == AF_UNIX) {
		long uid = cli_peer_uid(fd);
		snprintf(buf, len, "a local process (uid %ld)", uid);
		return;
	}
	show_sockaddr((struct sockaddr *)&ss, sl, buf, len);
}

/* ---- the channel's security ---- */

bool cli_secure_opt(struct cli_secure *s, int o, const char *arg, const char *cmd, int *rc)
{
	uint64_t v = 0;

	*rc = 0;
	switch (o) {
	case CLI_OPT_PSK: s->tls.psk_file = arg; return true;
	case CLI_OPT_CERT: s->tls.cert_file = arg; return true;
	case CLI_OPT_KEY: s->tls.key_file = arg; return true;
	case CLI_OPT_CA: s->tls.ca_file = arg; return true;
	case CLI_OPT_PEER_NAME: s->tls.peer_name = arg; return true;
	case CLI_OPT_INSECURE: s->insecure = true; return true;
	case CLI_OPT_HANDSHAKE_TIMEOUT:
		if (!cli_parse_u64(arg, 1, 3600, &v)) {
			fprintf(stderr, "devmig %s: --handshake-timeout takes seconds, 1 to 3600, "
					"not '%s'\n", cmd, arg);
			*rc = 2;
			return true;
		}
		s->handshake_s = (unsigned)v;
		return true;
	}
	return false;
}

int cli_secure_setup(const char *cmd, const struct cli_secure *s, const struct cli_addr *a,
		     bool server, struct devmig_tls_creds **creds)
{
	bool psk = s->tls.psk_file, x509 = s->tls.cert_file || s->tls.key_file || s->tls.ca_file;

	*creds = NULL;
	if (psk && x509) {
		fprintf(stderr, "devmig %s: give --psk or --cert/--key/--ca, not both\n", cmd);
		return 2;
	}
	if ((psk || x509) && s->insecure) {
		fprintf(stderr, "devmig %s: --insecure contradicts --psk and --cert\n", cmd);
		return 2;
	}
	if (!psk && !x509) {
		if (!a->is_unix && !s->insecure) {
			fprintf(stderr, "devmig %s: a migration over TCP is authenticated: give --psk "
					"FILE (the same key on both hosts) or --cert/--key/--ca, or "
					"--insecure for plain TCP on a network you trust\n", cmd);
			return 2;
		}
		return 0; /* plain: unix (the peer's uid is checked) or --insecure */
	}
	struct devmig_tls_config cfg = s->tls;
	cfg.handshake_timeout_ms = s->handshake_s * 1000u;
	char err[512];
	*creds = devmig_tls_creds_load(&cfg, server, err, sizeof(err));
	if (!*creds) {
		fprintf(stderr, "devmig %s: %s\n", cmd, err);
		return 1;
	}
	if (!server && !a->is_unix)
		devmig_tls_set_host(*creds, a->host);
	return 0;
}

static void unix_sockaddr(const struct cli_addr *a, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, a->path, strlen(a->path) + 1);
}

/* connect() bounded by timeout_ms; 0 or -errno. */
static int connect_bounded(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		return -errno;
	int rc = connect(fd, sa, len);
	if (rc && errno != EINPROGRESS && errno != EAGAIN)
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

int cli_connect_addr(const struct cli_addr *a, int timeout_ms, char *err, size_t errlen)
{
	if (a->is_unix) {
		struct sockaddr_un sun;
		unix_sockaddr(a, &sun);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
			return -1;
		}
		int rc = connect_bounded(fd, (struct sockaddr *)&sun, sizeof(sun), timeout_ms);
		if (rc) {
			snprintf(err, errlen, "cannot connect to unix:%s: %s (is 'devmig receive' "
					      "listening there?)",
				 a->path, strerror(-rc));
			close(fd);
			return -1;
		}
		return fd;
	}

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_ADDRCONFIG }, *res;
	int g = getaddrinfo(a->host, a->port, &hints, &res);
	if (g) {
		snprintf(err, errlen, "cannot resolve %s port %s: %s", a->host, a->port,
			 g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		return -1;
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
		bool v6 = strchr(a->host, ':') != NULL;
		snprintf(err, errlen, "cannot connect to %s%s%s:%s: %s (is 'devmig receive' "
				      "listening there?)",
			 v6 ? "[" : "", a->host, v6 ? "]" : "", a->port, strerror(-last));
		return -1;
	}
	cli_tune_socket(fd);
	return fd;
}

static void show_sockaddr(const struct sockaddr *sa, socklen_t len, char *buf, size_t buflen)
{
	char host[NI_MAXHOST], port[NI_MAXSERV];

	if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, buflen, "?");
		return;
	}
	if (sa->sa_family == AF_INET6)
		snprintf(buf, buflen, "[%s]:%s", host, port);
	else
		snprintf(buf, buflen, "%s:%s", host, port);
}

/* A unix socket path nobody listens on any more (a receiver that was killed). */
static bool stale_unix_socket(const struct sockaddr_un *sun)
{
	struct stat st;
	if (stat(sun->sun_path, &st) || !S_ISSOCK(st.st_mode))
		return false;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool stale = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) && errno == ECONNREFUSED;
	close(fd);
	return stale;
}

int cli_listen_addr(const struct cli_addr *a, char *shown, size_t shownlen, char *err,
		    size_t errlen)
{
	if (a->is_unix) {
		struct sockaddr_un sun;
		unix_sockaddr(a, &sun);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
			return -1;
		}
		int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
		if (rc && errno == EADDRINUSE && stale_unix_socket(&sun)) {
			unlink(sun.sun_path);
			rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
		}
		/* 0600 before listen(): nobody else can connect in between. */
		if (rc || chmod(sun.sun_path, 0600) || listen(fd, 8)) {
			snprintf(err, errlen, "cannot listen on unix:%s: %s", a->path,
				 strerror(errno));
			close(fd);
			return -1;
		}
		snprintf(shown, shownlen, "unix:%s", a->path);
		return fd;
	}

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE }, *res;
	int g = getaddrinfo(a->host[0] ? a->host : NULL, a->port, &hints, &res);
	if (g) {
		snprintf(err, errlen, "cannot resolve %s port %s: %s", a->host[0] ? a->host : "*",
			 a->port, g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		return -1;
	}
	/* Every address: an IPv6 socket that takes IPv4 too, when there is one. */
	struct addrinfo *any6 = NULL;
	for (struct addrinfo *ai = res; ai && !a->host[0] && !any6; ai = ai->ai_next)
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
			if (ai->ai_family == AF_INET6 && !a->host[0])
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
		bool v6 = strchr(a->host, ':') != NULL;
		snprintf(err, errlen, "cannot listen on %s%s%s:%s: %s", v6 ? "[" : "",
			 a->host[0] ? a->host : "*", v6 ? "]" : "", a->port, strerror(-last));
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl))
		snprintf(shown, shownlen, "%s:%s", a->host, a->port);
	else
		show_sockaddr((struct sockaddr *)&ss, sl, shown, shownlen);
	return fd;
}
