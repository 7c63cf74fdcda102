/* SPDX-License-Identifier: MIT */
/*
 * A build without TLS (-Dtls=disabled: the static guest build of make
 * check-kernel, where GnuTLS cannot be linked): every TLS call says so.
 */
#include <stdio.h>

#include "transport.h"

#define NO_TLS "this devmig was built without TLS (meson -Dtls=disabled)"

struct devmig_tls_creds *devmig_tls_creds_load(const struct devmig_tls_config *cfg, bool server,
					       char *err, size_t errlen)
{
	(void)cfg;
	(void)server;
	snprintf(err, errlen, NO_TLS);
	return NULL;
}

void devmig_tls_creds_free(struct devmig_tls_creds *c)
{
	(void)c;
}

void devmig_tls_set_host(struct devmig_tls_creds *c, const char *host)
{
	(void)c;
	(void)host;
}

struct devmig_transport *devmig_transport_tls(int fd, struct devmig_tls_creds *creds,
					      unsigned timeout_ms, char *err, size_t errlen)
{
	(void)fd;
	(void)creds;
	(void)timeout_ms;
	snprintf(err, errlen, NO_TLS);
	return NULL;
}
