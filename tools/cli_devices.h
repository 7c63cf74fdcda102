/* SPDX-License-Identifier: MIT */
/*
 * The devices a command names, and opening them. A device is named by
 * --socket PATH (vfio-user) or --vfio DEVICE (a kernel VFIO device: PCI
 * address, mdev UUID, sysfs path or /dev/vfio/devices/vfioN); both land in
 * one list, in order, the kernel ones as "vfio:DEVICE" (devmig_client_open).
 */
#ifndef DEVMIG_TOOLS_CLI_DEVICES_H
#define DEVMIG_TOOLS_CLI_DEVICES_H

#include <stdbool.h>

#include "devmig/client.h"

/* The engine's limit on devices in one migration. */
#define CLI_MAX_DEVICES 64u
/* Default --timeout: the longest one step (a device's answer, a frame on the
 * channel) may take, in seconds. */
#define CLI_TIMEOUT_DEFAULT 30u

/* Append one device to list (n so far); false (said) when full or not a device. */
bool cli_add_device(const char *cmd, char **list, unsigned *n, const char *arg, bool vfio);
/* "vfio:SPEC" for a --vfio argument, kept until the process ends; NULL (said)
 * when it cannot name a device or is too long. */
const char *cli_vfio_arg(const char *cmd, const char *spec);
/* Both lists together name distinct devices (one socket inode, one sysfs
 * device); false (said) otherwise. */
bool cli_distinct_paths(const char *cmd, char *const *a, unsigned na, char *const *b,
			unsigned nb);

/*
 * Open every device in paths (n of them), each answer waited for at most
 * timeout_s. Prints "devmig CMD: ..." and returns NULL when one fails or a
 * device is named twice (vfio-user serves one client at a time: a second
 * connection would be refused as busy; a kernel device opens once).
 */
struct devmig_client **cli_connect_all(const char *cmd, char *const *paths, unsigned n,
				       unsigned timeout_s);
void cli_close_all(struct devmig_client **c, unsigned n);

#endif
