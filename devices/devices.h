/* SPDX-License-Identifier: MIT */
/* The device variants this project ships, for the CLI and the tests. */
#ifndef DEVMIG_DEVICES_H
#define DEVMIG_DEVICES_H

#include <pthread.h>
#include <stddef.h>

#include "devmig/device.h"

struct devmig_variant {
	const char *name;
	const char *summary;
	/* args: the variant's own "key=value,..." options, or NULL. */
	struct devmig_device *(*create)(const char *args, char *err, size_t errlen);
	void (*free)(struct devmig_device *dev);
};

extern const struct devmig_variant devmig_variant_counter;
extern const struct devmig_variant devmig_variant_memblk;  /* v2: "1af4:10f1-memblk-v2" */
extern const struct devmig_variant devmig_variant_memblk1; /* v1: "1af4:10f1-memblk-v1" */

/* NULL-terminated list of every variant. */
extern const struct devmig_variant *const devmig_variants[];
const struct devmig_variant *devmig_variant_find(const char *name);

#endif /* DEVMIG_DEVICES_H */
