/* SPDX-License-Identifier: MIT */
/* The device variants this project ships, for the CLI and the tests. They are
 * described exactly as an out-of-tree variant is (devmig/variant.h). */
#ifndef DEVMIG_DEVICES_H
#define DEVMIG_DEVICES_H

#include <pthread.h>
#include <stddef.h>

#include "devmig/device.h"
#include "devmig/variant.h"

extern const struct devmig_variant devmig_variant_counter;
extern const struct devmig_variant devmig_variant_memblk;  /* v2: "1af4:10f1-memblk-v2" */
extern const struct devmig_variant devmig_variant_memblk1; /* v1: "1af4:10f1-memblk-v1" */

/* NULL-terminated list of every in-tree variant. */
extern const struct devmig_variant *const devmig_variants[];
const struct devmig_variant *devmig_variant_find(const char *name);

#endif /* DEVMIG_DEVICES_H */
