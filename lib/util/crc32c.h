/* SPDX-License-Identifier: MIT */
/*
 * CRC32C (Castagnoli): the checksum of stream records and channel frames.
 * devmig_crc32c itself is public (devmig/device.h) for variants' own records.
 */
#ifndef DEVMIG_LIB_CRC32C_H
#define DEVMIG_LIB_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Public: devmig/device.h declares it for variants. */
__attribute__((visibility("default")))
uint32_t devmig_crc32c(uint32_t crc, const void *buf, size_t len);

/* Test hooks. devmig_crc32c_sw: the portable table-driven crc32c, whatever
 * the CPU (same result as devmig_crc32c). hw_active: true when devmig_crc32c
 * uses SSE4.2 (set DEVMIG_CRC32C_SW=1 in the environment to force the
 * portable path). */
uint32_t devmig_crc32c_sw(uint32_t crc, const void *buf, size_t len);
bool devmig_crc32c_hw_active(void);

#endif /* DEVMIG_LIB_CRC32C_H */
