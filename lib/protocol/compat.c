/* SPDX-License-Identifier: MIT */
/* The compatibility rule, pure: one place decides, the core and the tools ask. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "devmig/compat.h"

size_t devmig_version_common(const char *version, char *out, size_t outlen)
{
	size_t n = strcspn(version, "-");
	if (outlen)
		snprintf(out, outlen, "%.*s", (int)n, version);
	return n;
}

int devmig_compat_check(const struct devmig_compat_info *t, const char *src_version,
			uint64_t src_fingerprint, char *why, size_t whylen)
{
	char tc[DEVMIG_VERSION_MAX], sc[DEVMIG_VERSION_MAX];

	devmig_version_common(t->version, tc, sizeof(tc));
	devmig_version_common(src_version, sc, sizeof(sc));
	if (strcmp(tc, sc)) {
		snprintf(why, whylen, "different device: the source is %s, the target is %s", sc, tc);
		return -EINVAL;
	}
	bool accepted = !strcmp(t->version, src_version);
	for (unsigned i = 0; !accepted && i < t->naccepts && i < DEVMIG_ACCEPTS_MAX; i++)
		accepted = !strcmp(t->accepts[i], src_version);
	if (!accepted) {
		snprintf(why, whylen, "the target %s does not accept state from %s", t->version,
			 src_version);
		return -EINVAL;
	}
	if (src_fingerprint != t->config_fingerprint) {
		snprintf(why, whylen,
			 "config space differs (source fingerprint %016llx, target %016llx): "
			 "give both the same profile",
			 (unsigned long long)src_fingerprint, (unsigned long long)t->config_fingerprint);
		return -EINVAL;
	}
	return 0;
}
