/* SPDX-License-Identifier: MIT */
/*
 * devmig: is this target compatible with that source?
 *
 * Every device has an opaque version string with a common part (vendor and
 * device id) and a variant-specific part, e.g. "1af4:10f1-memblk-v2", the
 * list of other source versions it can load, and the fingerprint of its
 * config space (which a shared profile makes equal across variants). A
 * management tool reads these over vfio-user (the "compat" extension) or
 * from `devmig info --json` reports, and checks a pair before migrating.
 */
#ifndef DEVMIG_COMPAT_H
#define DEVMIG_COMPAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libdevmig, which hides everything else. */
#pragma GCC visibility push(default)

#define DEVMIG_VERSION_MAX 128u
#define DEVMIG_ACCEPTS_MAX 8u

struct devmig_compat_info {
	char version[DEVMIG_VERSION_MAX];
	unsigned naccepts;
	char accepts[DEVMIG_ACCEPTS_MAX][DEVMIG_VERSION_MAX];
	uint64_t config_fingerprint;
	uint64_t caps; /* DEVMIG_MIG_* */
};

/*
 * Can a device described by target load state saved by a source of
 * source_version whose config space has source_fingerprint? 0 for yes; for
 * no, -EINVAL and one sentence in why (different device, version not
 * accepted, config space differs).
 */
int devmig_compat_check(const struct devmig_compat_info *target, const char *source_version,
			uint64_t source_fingerprint, char *why, size_t whylen);

/* The "vendor:device" common part of a version string (up to the first '-'). */
size_t devmig_version_common(const char *version, char *out, size_t outlen);

/*
 * What a PCI device's config space says it is. A peer without the compat
 * extension (libvfio-user, any plain vfio-user server) says nothing else,
 * so before state moves between such devices this must match exactly.
 */
struct devmig_pci_identity {
	uint16_t vendor, device;
	uint16_t subsystem_vendor, subsystem_device;
	uint32_t class_code; /* 24 bits: base class, subclass, programming interface */
	uint8_t revision;
};

/* The identity in the first 0x30 bytes of a type 0 config header. */
void devmig_pci_identity_parse(const uint8_t cfg[0x30], struct devmig_pci_identity *id);
/* "dead:beef subsystem cafe:babe class 000000 revision 00" */
size_t devmig_pci_identity_format(const struct devmig_pci_identity *id, char *buf, size_t len);
/*
 * Are source and target the same device? 0 for yes; for no, -EINVAL and one
 * sentence in why naming every field that differs with both values.
 */
int devmig_pci_identity_check(const struct devmig_pci_identity *source,
			      const struct devmig_pci_identity *target, char *why, size_t whylen);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_COMPAT_H */
