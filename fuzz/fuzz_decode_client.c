/* SPDX-License-Identifier: MIT */
/* libFuzzer: a whole message as a client decodes it (replies, DMA_READ/DMA_WRITE commands). */
#include "fuzz_decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fz_decode_one(data, size, DEVMIG_WIRE_ROLE_CLIENT);
}
