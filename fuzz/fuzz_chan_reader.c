/* SPDX-License-Identifier: MIT */
/* The migration channel / checkpoint frame reader, fed the input in pieces sized by the input. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	unsigned seed = data[0];
	struct devmig_chan_reader *r = devmig_chan_reader_new();
	if (!r)
		return 0;
	for (size_t off = 1; off < size;) {
		seed = seed * 1103515245u + 12345u;
		size_t k = 1 + (seed >> 16) % 64;
		if (k > size - off)
			k = size - off;
		size_t used = 0;
		while (used < k) {
			struct devmig_chan_frame f;
			bool have;
			long c = devmig_chan_reader_feed(r, data + off + used, k - used, &f, &have);
			if (c < 0)
				goto out;
			if ((size_t)c > k - used)
				abort(); /* consumed more than it was given */
			used += (size_t)c;
			if (have && f.len > DEVMIG_CHAN_MAX_PAYLOAD)
				abort();
			/* A RAW piece points into the input it was fed. */
			if (have && f.raw && f.len &&
			    (f.payload < data + off + used - c || f.payload + f.len > data + off + used))
				abort();
			if (have && f.raw_end && f.len)
				abort();
			if (have && f.len) {
				/* The payload must be readable in full. */
				volatile uint8_t x = f.payload[0] ^ f.payload[f.len - 1];
				(void)x;
			}
		}
		off += k;
	}
out:
	devmig_chan_reader_free(r);
	return 0;
}
