/* SPDX-License-Identifier: MIT */
/* The devices a command names, and opening them (cli_devices.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_devices.h"

/* The same device under two names: one socket inode, or one sysfs device. */
static bool same_device(const char *a, const char *b)
{
	struct stat sa, sb;

	if (!strcmp(a, b))
		return true;
	if (devmig_addr_is_vfio(a) || devmig_addr_is_vfio(b)) {
		struct devmig_vfio_location la, lb;
		char err[256];
		size_t pl = strlen(DEVMIG_VFIO_PREFIX);
		return devmig_addr_is_vfio(a) && devmig_addr_is_vfio(b) &&
		       !devmig_vfio_locate(a + pl, &la, err, sizeof(err)) &&
		       !devmig_vfio_locate(b + pl, &lb, err, sizeof(err)) && !strcmp(la.sysfs, lb.sysfs);
	}
	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* "vfio:SPEC", kept until the process ends; NULL when too long. */
static const char *vfio_addr(const char *spec)
{
	static char pool[3 * CLI_MAX_DEVICES][320];
	static unsigned used;

	if (used == sizeof(pool) / sizeof(pool[0]) ||
	    strlen(spec) + strlen(DEVMIG_VFIO_PREFIX) >= sizeof(pool[0]))
		return NULL;
	snprintf(pool[used], sizeof(pool[0]), "%s%s", DEVMIG_VFIO_PREFIX, spec);
	return pool[used++];
}

const char *cli_vfio_arg(const char *cmd, const char *spec)
{
	struct devmig_vfio_location loc;
	char err[512];

	/* A name that cannot be a device is a usage error; a device that is not
	 * there is found when it is opened. */
	if (devmig_vfio_locate(spec, &loc, err, sizeof(err)) == -EINVAL) {
		fprintf(stderr, "devmig %s: --vfio %s\n", cmd, err);
		return NULL;
	}
	const char *addr = vfio_addr(spec);
	if (!addr)
		fprintf(stderr, "devmig %s: --vfio %s: too long\n", cmd, spec);
	return addr;
}

bool cli_add_device(const char *cmd, char **list, unsigned *n, const char *arg, bool vfio)
{
	if (*n == CLI_MAX_DEVICES) {
		fprintf(stderr, "devmig %s: at most %u devices at once\n", cmd, CLI_MAX_DEVICES);
		return false;
	}
	const char *addr = vfio ? cli_vfio_arg(cmd, arg) : arg;
	if (!addr)
		return false;
	list[(*n)++] = (char *)addr;
	return true;
}

bool cli_distinct_paths(const char *cmd, char *const *a, unsigned na, char *const *b,
			unsigned nb)
{
	unsigned n = na + nb;

	for (unsigned i = 0; i < n; i++) {
		const char *p = i < na ? a[i] : b[i - na];
		for (unsigned j = i + 1; j < n; j++) {
			const char *q = j < na ? a[j] : b[j - na];
			if (same_device(p, q)) {
				fprintf(stderr,
					"devmig %s: %s is named twice (a device serves one client "
					"at a time, so it cannot be both ends or two devices)\n",
					cmd, p);
				return false;
			}
		}
	}
	return true;
}

struct devmig_client **cli_connect_all(const char *cmd, char *const *paths, unsigned n,
				       unsigned timeout_s)
{
	if (!cli_distinct_paths(cmd, paths, n, NULL, 0))
		return NULL;
	struct devmig_client **c = calloc(n ? n : 1, sizeof(*c));
	if (!c) {
		fprintf(stderr, "devmig %s: out of memory\n", cmd);
		return NULL;
	}
	struct devmig_client_config cc = { .timeout_ms = (int)(timeout_s * 1000u) };
	for (unsigned i = 0; i < n; i++) {
		char err[512];
		c[i] = devmig_client_open(paths[i], &cc, err, sizeof(err));
		if (!c[i]) {
			bool busy = strstr(err, "VERSION") && (strstr(err, strerror(EBUSY)) ||
							       strstr(err, "timed out") ||
							       strstr(err, "temporarily unavailable"));
			fprintf(stderr, "devmig %s: %s%s\n", cmd, err,
				busy ? " (another client is connected to the device: a VMM, or "
				       "another devmig command)"
				     : "");
			cli_close_all(c, i);
			return NULL;
		}
	}
	return c;
}

void cli_close_all(struct devmig_client **c, unsigned n)
{
	if (!c)
		return;
	for (unsigned i = 0; i < n; i++)
		devmig_client_close(c[i]);
	free(c);
}
