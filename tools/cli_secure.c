/* SPDX-License-Identifier: MIT */
/* The channel's security options (cli_secure.h). */
#include <stdio.h>
#include <string.h>

#include "cli_format.h"
#include "cli_secure.h"

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

bool cli_secure_given(const struct cli_secure *s)
{
	return s->tls.psk_file || s->tls.cert_file || s->insecure;
}

int cli_secure_setup(const char *cmd, const struct cli_secure *s, const struct devmig_endpoint *e,
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
		if (!e->is_unix && !s->insecure) {
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
	if (!server && !e->is_unix)
		devmig_tls_set_host(*creds, e->host);
	return 0;
}

struct devmig_transport *cli_secure_transport(int fd, struct devmig_tls_creds *creds,
					      unsigned timeout_ms, char *err, size_t errlen)
{
	struct devmig_transport *t;

	if (creds)
		return devmig_transport_tls(fd, creds, timeout_ms, err, errlen);
	t = devmig_transport_plain(fd, timeout_ms);
	if (!t)
		snprintf(err, errlen, "out of memory");
	return t;
}
