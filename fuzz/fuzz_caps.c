/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: devmig_caps_parse on the input as VERSION JSON text. What it
 * accepts must survive devmig_caps_format and a second parse unchanged.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devmig/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what, const char *text)
{
	if (!cond) {
		fprintf(stderr, "fuzz check failed: %s\n%s\n", what, text ? text : "");
		abort();
	}
}

static bool caps_equal(const struct devmig_caps *a, const struct devmig_caps *b)
{
	return a->max_msg_fds == b->max_msg_fds && a->max_data_xfer_size == b->max_data_xfer_size &&
	       a->max_dma_maps == b->max_dma_maps && a->pgsizes == b->pgsizes &&
	       a->write_multiple == b->write_multiple && a->twin_socket == b->twin_socket &&
	       a->ext == b->ext && a->migration == b->migration &&
	       (!a->migration || (a->mig_pgsize == b->mig_pgsize &&
				  a->mig_max_bitmap_size == b->mig_max_bitmap_size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The text as it sits in a VERSION message: json_len bytes, then a NUL. */
	char *json = malloc(size + 1);
	if (!json)
		return 0;
	memcpy(json, data, size);
	json[size] = '\0';

	struct devmig_caps c1;
	memset(&c1, 0xa5, sizeof(c1));
	if (devmig_caps_parse(json, size, &c1) != DEVMIG_WIRE_OK) {
		free(json);
		return 0;
	}
	check(c1.max_data_xfer_size != 0, "max_data_xfer_size 0 accepted", json);
	check((c1.pgsizes & ~(DEVMIG_MIN_PAGE_SIZE - 1)) != 0,
	      "pgsizes without a power-of-two bit >= 4096 accepted", json);
	check((c1.ext & ~(uint32_t)DEVMIG_EXT_ALL) == 0, "unknown extension bit", json);
	check(c1.mig_pgsize >= DEVMIG_MIN_PAGE_SIZE && !(c1.mig_pgsize & (c1.mig_pgsize - 1)),
	      "migration pgsize not a power of two >= 4096", json);
	check(c1.mig_max_bitmap_size != 0, "migration max_bitmap_size 0 accepted", json);

	char out[4096];
	size_t n = devmig_caps_format(&c1, out, sizeof(out));
	check(n > 0 && n < sizeof(out), "format failed", json);
	check(strlen(out) == n, "format length is not strlen", out);

	struct devmig_caps c2;
	memset(&c2, 0x5a, sizeof(c2));
	check(devmig_caps_parse(out, n, &c2) == DEVMIG_WIRE_OK, "formatted caps do not parse", out);
	check(caps_equal(&c1, &c2), "caps changed through format + parse", out);

	/* A buffer one byte too small is refused, not overrun (ASan watches). */
	char *tight = malloc(n);
	if (tight) {
		check(devmig_caps_format(&c1, tight, n) == 0, "format into a short buffer succeeded",
		      out);
		free(tight);
	}
	free(json);
	return 0;
}
