/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "devices.h"

const struct devmig_variant *const devmig_variants[] = {
	&devmig_variant_counter,
	&devmig_variant_memblk,
	&devmig_variant_memblk1,
	NULL,
};

const struct devmig_variant *devmig_variant_find(const char *name)
{
	for (size_t i = 0; devmig_variants[i]; i++)
		if (name && !strcmp(devmig_variants[i]->name, name))
			return devmig_variants[i];
	return NULL;
}
