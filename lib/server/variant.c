/* SPDX-License-Identifier: MIT */
/* Loading an out-of-tree device variant: see devmig/variant.h. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "devmig/variant.h"

uint32_t devmig_variant_abi(void)
{
	return DEVMIG_VARIANT_ABI;
}

const struct devmig_variant *devmig_variant_open(const char *path, char *err, size_t errlen)
{
	/* RTLD_LOCAL: two variants may well use the same names for their own
	 * functions; only the entry point is looked up. */
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "cannot load %s: %s", path, dlerror());
		return NULL;
	}
	const struct devmig_variant *(*entry)(void);
	void *sym = dlsym(h, DEVMIG_VARIANT_ENTRY);
	memcpy(&entry, &sym, sizeof(entry)); /* object to function pointer, as dlsym(3) says */
	const struct devmig_variant *v = entry ? entry() : NULL;

	if (!entry)
		snprintf(err, errlen, "%s is not a devmig device variant: it has no %s()", path,
			 DEVMIG_VARIANT_ENTRY);
	else if (!v)
		snprintf(err, errlen, "%s: %s() returned no variant", path, DEVMIG_VARIANT_ENTRY);
	else if (v->abi != DEVMIG_VARIANT_ABI || v->struct_size != sizeof(struct devmig_variant))
		snprintf(err, errlen,
			 "%s was built for devmig variant ABI %u (%u-byte description), this devmig "
			 "has ABI %u (%zu bytes): rebuild it against this devmig's headers",
			 path, v->abi, v->struct_size, DEVMIG_VARIANT_ABI,
			 sizeof(struct devmig_variant));
	else if (!v->name || !v->create || !v->free)
		snprintf(err, errlen, "%s: its variant lacks a name, create or free", path);
	else
		return v;
	dlclose(h);
	return NULL;
}
