/* SPDX-License-Identifier: MIT */
/* Placeholder: profiles are being written (see devmig/profile.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "devmig/profile.h"

struct devmig_profile *devmig_profile_parse(const char *json, size_t len, char *err, size_t errlen)
{
	(void)json;
	(void)len;
	snprintf(err, errlen, "profiles are not supported yet");
	return NULL;
}

struct devmig_profile *devmig_profile_load(const char *path, char *err, size_t errlen)
{
	(void)path;
	snprintf(err, errlen, "profiles are not supported yet");
	return NULL;
}

void devmig_profile_free(struct devmig_profile *p)
{
	free(p);
}

int devmig_profile_build(const struct devmig_profile *p, struct devmig_pci_config *cfg, char *err,
			 size_t errlen)
{
	(void)p;
	(void)cfg;
	snprintf(err, errlen, "profiles are not supported yet");
	return -ENOSYS;
}

char *devmig_profile_dump(const uint8_t cfg[4096], const uint64_t bar_sizes[6], char *err,
			  size_t errlen)
{
	(void)cfg;
	(void)bar_sizes;
	snprintf(err, errlen, "profiles are not supported yet");
	return NULL;
}
