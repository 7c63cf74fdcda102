/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the pre-shared key file parser (devmig_tls_parse_psk). What it
 * accepts is 16 to 64 bytes of key and a NUL-terminated identity; writing
 * them back as "IDENTITY:HEX" parses to the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz check failed: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[128], id2[128], err[200];
	uint8_t key[DEVMIG_TLS_PSK_MAX], key2[DEVMIG_TLS_PSK_MAX];
	size_t kl = 0, kl2 = 0;

	memset(id, 0xa5, sizeof(id));
	if (devmig_tls_parse_psk((const char *)data, size, id, sizeof(id), key, &kl, err,
				 sizeof(err))) {
		check(memchr(err, '\0', sizeof(err)) != NULL, "error not terminated");
		return 0;
	}
	check(kl >= 16 && kl <= DEVMIG_TLS_PSK_MAX, "key length out of range");
	check(memchr(id, '\0', sizeof(id)) != NULL && id[0], "identity not terminated or empty");
	check(!strchr(id, '\n'), "identity spans lines");

	char line[512];
	int n = snprintf(line, sizeof(line), "%s:", id);
	for (size_t i = 0; i < kl; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x", key[i]);
	check(!devmig_tls_parse_psk(line, (size_t)n, id2, sizeof(id2), key2, &kl2, err,
				    sizeof(err)),
	      "the key written back does not parse");
	/* An identity holding ':' reads back differently (the last ':' splits). */
	if (!strchr(id, ':'))
		check(!strcmp(id, id2), "identity changed");
	check(kl == kl2 && !memcmp(key, key2, kl), "key changed");
	return 0;
}
