/* SPDX-License-Identifier: MIT */
/* CHECK(c): a harness invariant; a failure aborts, which libFuzzer reports
 * as a crash with the input that caused it. */
#ifndef DEVMIG_FUZZ_CHECK_H
#define DEVMIG_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c)) {                                                              \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#c);                                                     \
			abort();                                                         \
		}                                                                        \
	} while (0)

#endif /* DEVMIG_FUZZ_CHECK_H */
