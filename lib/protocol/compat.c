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

static uint16_t le16_at(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

void devmig_pci_identity_parse(const uint8_t cfg[0x30], struct devmig_pci_identity *id)
{
	id->vendor = le16_at(cfg + 0x00);
	id->device = le16_at(cfg + 0x02);
	id->revision = cfg[0x08];
	id->class_code = (uint32_t)cfg[0x09] | (uint32_t)cfg[0x0a] << 8 | (uint32_t)cfg[0x0b] << 16;
	id->subsystem_vendor = le16_at(cfg + 0x2c);
	id->subsystem_device = le16_at(cfg + 0x2e);
}

size_t devmig_pci_identity_format(const struct devmig_pci_identity *id, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%04x:%04x subsystem %04x:%04x class %06x revision %02x",
			 id->vendor, id->device, id->subsystem_vendor, id->subsystem_device,
			 id->class_code & 0xffffffu, id->revision);
	return n < 0 ? 0 : (size_t)n;
}

int devmig_pci_identity_check(const struct devmig_pci_identity *s,
			      const struct devmig_pci_identity *t, char *why, size_t whylen)
{
	char diff[256] = "";
	size_t l = 0;

#define DIFF(cond, fmt, ...)                                                               \
	do {                                                                               \
		if ((cond) && l < sizeof(diff))                                            \
			l += (size_t)snprintf(diff + l, sizeof(diff) - l, "%s" fmt,        \
					      l ? ", " : "", __VA_ARGS__);                  \
	} while (0)
	DIFF(s->vendor != t->vendor || s->device != t->device,
	     "vendor:device %04x:%04x vs %04x:%04x", s->vendor, s->device, t->vendor, t->device);
	DIFF(s->subsystem_vendor != t->subsystem_vendor || s->subsystem_device != t->subsystem_device,
	     "subsystem %04x:%04x vs %04x:%04x", s->subsystem_vendor, s->subsystem_device,
	     t->subsystem_vendor, t->subsystem_device);
	DIFF(s->class_code != t->class_code, "class %06x vs %06x", s->class_code, t->class_code);
	DIFF(s->revision != t->revision, "revision %02x vs %02x", s->revision, t->revision);
#undef DIFF
	if (!l)
		return 0;
	snprintf(why, whylen, "different device (source vs target: %s)", diff);
	return -EINVAL;
}
