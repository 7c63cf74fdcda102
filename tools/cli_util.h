/* SPDX-License-Identifier: MIT */
/* What the info/migrate/receive/save/restore commands share. */
#ifndef DEVMIG_TOOLS_CLI_UTIL_H
#define DEVMIG_TOOLS_CLI_UTIL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmig/client.h"
#include "devmig/engine.h"
#include "devmig/transport.h"

/* The engine's limit on devices in one migration. */
#define CLI_MAX_DEVICES 64u

/* ---- devices ---- */

/*
 * A device is named by --socket PATH (vfio-user) or --vfio DEVICE (a kernel
 * VFIO device: PCI address, mdev UUID, sysfs path or /dev/vfio/devices/vfioN);
 * both land in one list, in order, the kernel ones as "vfio:DEVICE"
 * (devmig_client_open). cli_add_device appends one, false (said) when full.
 */
bool cli_add_device(const char *cmd, char **list, unsigned *n, const char *arg, bool vfio);
/* "vfio:SPEC", kept until the process ends; NULL when too long. */
const char *cli_vfio_addr(const char *spec);
/* The same for a --vfio argument; NULL (said) when it cannot name a device. */
const char *cli_vfio_arg(const char *cmd, const char *spec);

/*
 * Open every device in paths (n of them). Prints "devmig CMD: ..." and
 * returns NULL when one fails or a device is named twice (vfio-user serves one
 * client at a time: a second connection would be refused as busy; a kernel
 * device opens once). Each device's answers are waited for at most
 * cli_timeout_s.
 */
extern unsigned cli_timeout_s;
struct devmig_client **cli_connect_all(const char *cmd, char *const *paths, unsigned n);
void cli_close_all(struct devmig_client **c, unsigned n);
/* Paths of both lists together must be distinct devices (same inode counts). */
bool cli_distinct_paths(const char *cmd, char *const *a, unsigned na, char *const *b,
			unsigned nb);

/* ---- numbers ---- */

bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* "1.50 MiB", "48 B". */
const char *cli_bytes(double bytes, char *buf, size_t len);
/* "0.912 ms", "2.10 s". */
const char *cli_duration(uint64_t ns, char *buf, size_t len);

/* ---- results ---- */

/*
 * The engine's error with each "source device N" / "destination device N"
 * followed by its socket path when known (src/dst may be NULL), printed as
 * one line: "devmig CMD: <error>".
 */
void cli_print_error(const char *cmd, const char *error, char *const *src, unsigned nsrc,
		     char *const *dst, unsigned ndst);
/*
 * After a failure: append to r->error the state each device was left in,
 * "; left: source device 0 RUNNING, destination device 0 RUNNING" (nsrc
 * source and ndst destination devices of r; "unknown" when unreachable).
 */
void cli_note_states(struct devmig_migration_report *r, unsigned nsrc, unsigned ndst);
/* "RUNNING", ..., or "unknown" for DEVMIG_STATE_UNKNOWN. */
const char *cli_state_name(int state);
/* The report's fields as a JSON object (ok, error, the numbers, and
 * source_states / destination_states: nsrc and ndst names). */
json_object *cli_report_json(const struct devmig_migration_report *r, bool ok, unsigned nsrc,
			     unsigned ndst);
/* Pretty-print o on stdout and drop it. */
void cli_print_json(json_object *o);

/* ---- engine callbacks ---- */

struct cli_progress {
	bool tty;       /* stderr is a terminal: show rounds in place */
	bool verbose;   /* every state change requested, one per line */
	bool line_open; /* a progress line is on the screen */
	char **src, **dst; /* socket paths for --verbose (NULL: unknown) */
	unsigned nsrc, ndst;
};

void cli_progress_init(struct cli_progress *p, bool verbose);
/* The devmig_engine_config.event callback; opaque is a struct cli_progress. */
void cli_progress_event(void *opaque, const struct devmig_engine_event *ev);
/* Clear the progress line (before printing a result). */
void cli_progress_end(struct cli_progress *p);

/*
 * SIGINT/SIGTERM during a migration: the first one makes the switchover
 * refuse (the engine then puts the source devices back to RUNNING), the
 * second one kills the process. pause_guest callback for the engine config.
 */
void cli_catch_interrupts(void);
bool cli_interrupted(void);
int cli_pause_guest(void *opaque);
/* SIGPIPE off: a peer that goes away is an error reply, not a silent death. */
void cli_ignore_sigpipe(void);

/* ---- the migration channel's addresses ---- */

struct cli_addr {
	bool is_unix;
	char path[108];  /* unix */
	char host[256];  /* tcp; empty: every address (listen only) */
	char port[32];
};

/* "tcp://HOST:PORT", "HOST:PORT", "[V6]:PORT" or "unix:PATH"; false with err. */
bool cli_parse_addr(const char *s, bool listen, struct cli_addr *a, char *err, size_t errlen);
/* Connected stream socket (TCP_NODELAY, keepalive) or -1 with err. */
int cli_connect_addr(const struct cli_addr *a, int timeout_ms, char *err, size_t errlen);
/* Listening socket (SO_REUSEADDR) or -1 with err; shown: the bound address. */
int cli_listen_addr(const struct cli_addr *a, char *shown, size_t shownlen, char *err,
		    size_t errlen);
/* After accept: TCP_NODELAY and keepalive on TCP sockets. */
void cli_tune_socket(int fd);
/* A timed-out step shows as ETIMEDOUT or EAGAIN: say so after the engine's error. */
void cli_note_timeout(struct devmig_migration_report *r, int rc, unsigned seconds);
/* "192.0.2.1:4711", "[::1]:7000" or "unix (uid 1000)" for a connected socket. */
void cli_peer_name(int fd, char *buf, size_t len);
/* The uid at the other end of a unix socket, or -1. */
long cli_peer_uid(int fd);

/* Default --timeout: the longest one step (a device's answer, a frame on the
 * channel) may take, in seconds. */
#define CLI_TIMEOUT_DEFAULT 30u

/* ---- the channel's security: TLS with a pre-shared key or certificates ---- */

struct cli_secure {
	struct devmig_tls_config tls;
	bool insecure;
	unsigned handshake_s;
};

enum {
	CLI_OPT_PSK = 1000, CLI_OPT_CERT, CLI_OPT_KEY, CLI_OPT_CA, CLI_OPT_PEER_NAME,
	CLI_OPT_INSECURE, CLI_OPT_HANDSHAKE_TIMEOUT,
};
#define CLI_SECURE_OPTIONS                                                        \
	{ "psk", required_argument, NULL, CLI_OPT_PSK },                          \
	{ "cert", required_argument, NULL, CLI_OPT_CERT },                        \
	{ "key", required_argument, NULL, CLI_OPT_KEY },                          \
	{ "ca", required_argument, NULL, CLI_OPT_CA },                            \
	{ "peer-name", required_argument, NULL, CLI_OPT_PEER_NAME },              \
	{ "insecure", no_argument, NULL, CLI_OPT_INSECURE },                      \
	{ "handshake-timeout", required_argument, NULL, CLI_OPT_HANDSHAKE_TIMEOUT }

/* The usage lines for those options. */
#define CLI_SECURE_USAGE                                                                   \
	"  --psk FILE         TLS 1.3 with the pre-shared key in FILE (the same on both\n"   \
	"                     hosts; 'devmig keygen --psk FILE' makes one)\n"                 \
	"  --cert FILE --key FILE --ca FILE\n"                                                \
	"                     TLS 1.3 with X.509: our certificate and key, and the CA the\n"  \
	"                     peer's certificate must be signed by (both sides show one)\n"   \
	"  --peer-name NAME   the name the peer's certificate must carry (default: the\n"     \
	"                     host connected to; a receiver accepts any the CA signed)\n"     \
	"  --insecure         plain TCP: no encryption, anyone who can connect is believed\n" \
	"  --handshake-timeout SEC\n"                                                         \
	"                     the longest a TLS handshake may take (default 10)\n"

/* One of the options above: true when o was one (0 or an exit status in *rc). */
bool cli_secure_opt(struct cli_secure *s, int o, const char *arg, const char *cmd, int *rc);
/*
 * After parsing: TCP needs TLS or an explicit --insecure; a unix socket may
 * have TLS. *creds: NULL for plain. Prints "devmig CMD: ..." and returns 2
 * (usage) or 1 (a key or certificate that cannot be used), else 0.
 */
int cli_secure_setup(const char *cmd, const struct cli_secure *s, const struct cli_addr *a,
		     bool server, struct devmig_tls_creds **creds);

#endif
