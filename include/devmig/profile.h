/* SPDX-License-Identifier: MIT */
/*
 * devmig: synthesized PCI config space.
 *
 * A profile (JSON) describes a virtual config space: ids, class, revision,
 * BARs, and every capability at its offset (PM, MSI, MSI-X, PCI Express,
 * vendor-specific; extended ones such as PASID and Device Serial Number).
 * The core builds the device's config space from it, whatever the
 * variant's own layout is, so devices whose native layouts differ present
 * byte-identical config spaces and can migrate to each other. The device's
 * MMIO layout is not the profile's to change: BARs and the MSI-X table and
 * PBA placement must be the variant's own.
 *
 * Schema (numbers may be JSON integers or "0x..." strings):
 * {
 *   "vendor": "0x1af4", "device": "0x10f1",
 *   "subsystem_vendor": "0x1af4", "subsystem": "0x0001",
 *   "class": "0x018000", "revision": 1, "interrupt_pin": 0,
 *   "bars": [ { "index": 0, "size": 4096, "type": "mem32" | "mem64" | "io",
 *               "prefetchable": false } ],
 *   "capabilities": [             chained in this order
 *     { "id": "pm", "offset": "0x40" },
 *     { "id": "msi", "offset": ..., "vectors": 1, "64bit": true, "maskable": false },
 *     { "id": "msix", "offset": ..., "vectors": 4, "table_bar": 1, "table_offset": 0,
 *       "pba_bar": 1, "pba_offset": 2048 },
 *     { "id": "pcie", "offset": ..., "link_speed": 1, "link_width": 1 },
 *     { "id": "vendor", "offset": ..., "data": "0a0b0c" },
 *     { "id": 18, "offset": ..., "data": "hex bytes after the ID and next bytes" }
 *   ],
 *   "extended_capabilities": [    chained in this order, from 0x100
 *     { "id": "pasid", "offset": "0x100", "max_width": 20, "exec": false, "priv": false },
 *     { "id": "dsn", "offset": ..., "serial": "0x0123456789abcdef" },
 *     { "id": 11, "version": 1, "offset": ..., "data": "hex bytes" }
 *   ]
 * }
 * Required: vendor, device, class; a BAR's index, size and type; a
 * capability's id, offset and numeric parameters. Optional, with their
 * defaults: subsystem_vendor, subsystem, revision, interrupt_pin (0), the
 * booleans (false), "data" (none), bars and both lists (empty). A numeric
 * "id" is a raw capability, its bytes taken as given (an ID the names
 * above cover must be written by name). Unknown
 * members are mistakes: a profile is a specification and a typo must not
 * pass silently. "data" is hex bytes, whitespace allowed between bytes.
 * JSON integers above 2^64-1 read as 2^64-1 (json-c); a duplicated member
 * keeps its last value.
 */
#ifndef DEVMIG_PROFILE_H
#define DEVMIG_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "devmig/pci.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libdevmig, which hides everything else. */
#pragma GCC visibility push(default)

struct devmig_profile;

/*
 * Parse and validate a profile. NULL on any mistake, with err holding one
 * sentence per mistake (separated by "\n"), each naming the member, e.g.
 * "capabilities[2] (msix at 0x50): overlaps capabilities[1] (pm at 0x48-0x4f)".
 * Checked: types and ranges, alignment, overlaps, chain order and sizes
 * (standard capabilities in 0x40-0xff, extended in 0x100-0xfff), BAR
 * sizes and slots, MSI-X table and PBA inside their BARs: everything the
 * builder checks, so a profile that parses builds. Input is bounded to
 * 1 MiB. devmig_profile_load reads a file and parses it.
 */
struct devmig_profile *devmig_profile_parse(const char *json, size_t len, char *err,
					    size_t errlen);
struct devmig_profile *devmig_profile_load(const char *path, char *err, size_t errlen);
void devmig_profile_free(struct devmig_profile *p);

/* Describe the profile's config space into a fresh builder. 0 or -errno with err. */
int devmig_profile_build(const struct devmig_profile *p, struct devmig_pci_config *cfg,
			 char *err, size_t errlen);

/*
 * The profile of an existing config space, to start from: cfg is its 4096
 * bytes, bar_sizes[i] the size of BAR i (0 when absent; the region sizes a
 * client reads with GET_REGION_INFO). Returns malloc'd JSON text or NULL
 * (a capability chain that loops or points into the header). Known
 * capabilities are read back as their parameters (registers the builder
 * fixes itself are not carried); others become raw entries holding their
 * bytes up to the next capability, trailing zeros left out; the builder's
 * null extended header is left out. For any config the builder made from
 * a profile, dump -> parse -> build gives the same 4096 bytes.
 */
char *devmig_profile_dump(const uint8_t cfg[4096], const uint64_t bar_sizes[6], char *err,
			  size_t errlen);

struct devmig_device;
/*
 * Replace the config space the variant described with the one a profile
 * synthesizes (devmig/profile.h), before the device is served. Refused,
 * changing nothing, when the profile's BARs or MSI-X table/PBA placement
 * differ from the variant's (they are its MMIO layout, not config space).
 */
int devmig_device_set_profile(struct devmig_device *dev, const struct devmig_profile *profile,
			      char *err, size_t errlen);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_PROFILE_H */
