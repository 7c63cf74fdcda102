/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: devmig_decode_hdr on the input. An accepted header must say
 * what the bytes say and satisfy every rule the decoder documents.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devmig/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz check failed: %s\n", what);
		abort();
	}
}

static void one(const uint8_t *data, size_t size, const struct devmig_wire_limits *lim)
{
	struct devmig_hdr h;
	if (devmig_decode_hdr(data, size, lim, &h) != DEVMIG_WIRE_OK)
		return;
	check(size >= DEVMIG_HDR_SIZE, "accepted fewer than 16 bytes");
	check(memcmp(&h, data, sizeof(h)) == 0, "decoded header differs from the bytes");
	check(h.msg_size >= DEVMIG_HDR_SIZE, "msg_size below 16 accepted");
	check(h.msg_size <= lim->max_msg_size, "msg_size above the limit accepted");
	uint32_t type = h.flags & DEVMIG_HDR_TYPE_MASK;
	check(type == DEVMIG_HDR_TYPE_COMMAND || type == DEVMIG_HDR_TYPE_REPLY,
	      "unknown message type accepted");
	check((h.flags & ~(DEVMIG_HDR_TYPE_MASK | DEVMIG_HDR_NO_REPLY | DEVMIG_HDR_ERROR)) == 0,
	      "reserved flag bits accepted");
	check(!(type == DEVMIG_HDR_TYPE_COMMAND && (h.flags & DEVMIG_HDR_ERROR)),
	      "command with the ERROR flag accepted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct devmig_wire_limits lim;

	devmig_wire_limits_default(&lim);
	one(data, size, &lim);
	/* A tight limit as well, so msg_size near the bound is exercised. */
	lim.max_msg_size = 64;
	one(data, size, &lim);
	return 0;
}
