/* SPDX-License-Identifier: MIT */
/* libFuzzer: a whole message as a server decodes it (client->server commands, DMA replies). */
#include "fuzz_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fz_decode_one(data, size, DEVMIG_WIRE_ROLE_SERVER);
}
