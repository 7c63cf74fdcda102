/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the migration channel's address parser (devmig_endpoint_parse),
 * as `devmig receive --listen` and `migrate --to` take it. An address it
 * accepts has a path (unix) or a host and a port, each terminated within
 * its field; written back (unix:PATH, tcp://[HOST]:PORT) it parses to the
 * same. One it refuses leaves nothing behind and says why.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devmig/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz check failed: %s\n", what);
		abort();
	}
}

static int terminated(const char *field, size_t size)
{
	return memchr(field, '\0', size) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct devmig_endpoint e, again;
	char s[1024], err[300], back[1100];

	if (size >= sizeof(s) || !size)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	bool listen = data[0] & 1;
	if (devmig_endpoint_parse(s, listen, &e, err, sizeof(err))) {
		check(terminated(err, sizeof(err)) && err[0], "refused without a reason");
		check(!e.is_unix && !e.path[0] && !e.host[0] && !e.port[0], "a refusal kept fields");
		return 0;
	}
	check(terminated(e.path, sizeof(e.path)) && terminated(e.host, sizeof(e.host)) &&
		      terminated(e.port, sizeof(e.port)),
	      "a field not terminated");
	if (e.is_unix) {
		check(e.path[0] && !e.host[0] && !e.port[0], "unix: a path only");
		/* "unix://x" reads as "x": a path itself starting with "//" does
		 * not write back the same */
		if (!strncmp(e.path, "//", 2))
			return 0;
		snprintf(back, sizeof(back), "unix:%s", e.path);
	} else {
		check(e.host[0] && e.port[0] && !e.path[0], "TCP: a host and a port");
		check(strcmp(e.host, "*") != 0, "every address taken as a default");
		/* brackets hold any host but one with ']' in it */
		if (strchr(e.host, ']'))
			return 0;
		snprintf(back, sizeof(back), "tcp://[%s]:%s", e.host, e.port);
	}
	check(!devmig_endpoint_parse(back, listen, &again, err, sizeof(err)),
	      "the address written back does not parse");
	check(again.is_unix == e.is_unix && !strcmp(again.path, e.path) &&
		      !strcmp(again.host, e.host) && !strcmp(again.port, e.port),
	      "the address written back parses differently");
	return 0;
}
