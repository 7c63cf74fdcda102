/* SPDX-License-Identifier: MIT */
/*
 * The migration channel's HELLO payload (what each device is): whatever
 * parses re-encodes and parses back to the same devices, every version
 * string ends within its buffer, and a refusal always says why.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct devmig_chan_hello_dev a[DEVMIG_CHAN_MAX_DEVICES], b[DEVMIG_CHAN_MAX_DEVICES];
static uint8_t out[DEVMIG_CHAN_HELLO_FIXED +
		   DEVMIG_CHAN_MAX_DEVICES * DEVMIG_CHAN_HELLO_DEV(DEVMIG_VERSION_MAX)];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t n, n2;
	uint64_t g, g2;
	char why[200] = "";

	if (devmig_chan_parse_hello(data, size, &n, &g, a, why, sizeof(why))) {
		if (!why[0])
			abort(); /* a refusal without a reason */
		return 0;
	}
	if (n > DEVMIG_CHAN_MAX_DEVICES)
		abort();
	for (uint32_t i = 0; i < n; i++)
		if (strnlen(a[i].version, DEVMIG_VERSION_MAX) >= DEVMIG_VERSION_MAX)
			abort();
	size_t len = devmig_chan_put_hello(out, sizeof(out), n, g, a);
	if (!len || devmig_chan_parse_hello(out, len, &n2, &g2, b, why, sizeof(why)) || n2 != n ||
	    g2 != g)
		abort();
	for (uint32_t i = 0; i < n; i++)
		if (a[i].fingerprint != b[i].fingerprint || strcmp(a[i].version, b[i].version) ||
		    a[i].id_known != b[i].id_known || a[i].id.vendor != b[i].id.vendor ||
		    a[i].id.device != b[i].id.device ||
		    a[i].id.subsystem_vendor != b[i].id.subsystem_vendor ||
		    a[i].id.subsystem_device != b[i].id.subsystem_device ||
		    a[i].id.class_code != b[i].id.class_code || a[i].id.revision != b[i].id.revision)
			abort();
	return 0;
}
