/* SPDX-License-Identifier: MIT */
/* A variant shared object built for another ABI: devmig_variant_open refuses it. */
#include "devmig/variant.h"

static struct devmig_device *never(const char *args, char *err, size_t errlen)
{
	(void)args;
	(void)err;
	(void)errlen;
	return 0;
}

static void never_free(struct devmig_device *dev)
{
	(void)dev;
}

static const struct devmig_variant future = {
	.abi = DEVMIG_VARIANT_ABI + 6,
	.struct_size = sizeof(struct devmig_variant) + 16,
	.name = "future",
	.summary = "built against a later devmig",
	.create = never,
	.free = never_free,
};

const struct devmig_variant *devmig_variant_entry(void)
{
	return &future;
}
