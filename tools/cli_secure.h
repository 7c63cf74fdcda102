/* SPDX-License-Identifier: MIT */
/* The channel's security options: TLS with a pre-shared key or certificates,
 * or plain on purpose (--insecure). */
#ifndef DEVMIG_TOOLS_CLI_SECURE_H
#define DEVMIG_TOOLS_CLI_SECURE_H

#include <getopt.h>
#include <stdbool.h>

#include "devmig/transport.h"

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
/* Any of them given? */
bool cli_secure_given(const struct cli_secure *s);
/*
 * After parsing: TCP needs TLS or an explicit --insecure; a unix socket may
 * have TLS. *creds: NULL for plain. Prints "devmig CMD: ..." and returns 2
 * (usage) or 1 (a key or certificate that cannot be used), else 0.
 */
int cli_secure_setup(const char *cmd, const struct cli_secure *s, const struct devmig_endpoint *e,
		     bool server, struct devmig_tls_creds **creds);
/* The transport over connected fd: TLS with creds, or plain without. NULL
 * with the reason in err. */
struct devmig_transport *cli_secure_transport(int fd, struct devmig_tls_creds *creds,
					      unsigned timeout_ms, char *err, size_t errlen);

#endif
