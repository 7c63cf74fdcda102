/* SPDX-License-Identifier: MIT */
/*
 * devmig: a device variant as something a host can create, in the tree or
 * out of it.
 *
 * In-tree variants (counter, memblk) and out-of-tree ones are described the
 * same way: a struct devmig_variant. An out-of-tree variant is a shared
 * object that defines one entry point,
 *
 *     const struct devmig_variant *devmig_variant_entry(void);
 *
 * returning its description, built with DEVMIG_VARIANT_INIT so that it
 * records the ABI it was compiled against. `devmig serve --device
 * ./libmydev.so` loads it with devmig_variant_open(), which refuses (with a
 * sentence) a file that is not a variant or was built for another ABI.
 *
 * A device can also be its own program: link the variant and libdevmig, call
 * create, and serve it with devmig_server_new()/devmig_server_run() (see
 * examples/out-of-tree/).
 */
#ifndef DEVMIG_VARIANT_H
#define DEVMIG_VARIANT_H

#include <stddef.h>
#include <stdint.h>

#include "devmig/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libdevmig, which hides everything else. */
#pragma GCC visibility push(default)

/*
 * The variant ABI: device.h, pci.h and this header as a variant sees them.
 * Bumped whenever a struct a variant fills or a function it calls changes
 * incompatibly; a variant built for another ABI is refused.
 */
#define DEVMIG_VARIANT_ABI 2u

struct devmig_variant {
	uint32_t abi;         /* DEVMIG_VARIANT_ABI when the variant was built */
	uint32_t struct_size; /* sizeof(struct devmig_variant) then */
	const char *name;     /* as `devmig devices` lists it */
	const char *summary;  /* one line, with the options args takes */
	/* A new device, initialised (devmig_device_init done). args: the
	 * variant's own "key=value,..." options, or NULL. NULL with err. */
	struct devmig_device *(*create)(const char *args, char *err, size_t errlen);
	/* devmig_device_destroy and free what create allocated. */
	void (*free)(struct devmig_device *dev);
};

#define DEVMIG_VARIANT_INIT .abi = DEVMIG_VARIANT_ABI, .struct_size = sizeof(struct devmig_variant)

/* The entry point a variant shared object defines (and the symbol's name). */
const struct devmig_variant *devmig_variant_entry(void);
#define DEVMIG_VARIANT_ENTRY "devmig_variant_entry"

/*
 * Load the variant shared object at path (dlopen; a path without '/' is
 * searched the way dlopen searches). Refuses, with one sentence in err and
 * nothing left loaded, a file that cannot be loaded, has no entry point,
 * returns no variant, or was built for another DEVMIG_VARIANT_ABI. The
 * object stays loaded for the life of the process.
 */
const struct devmig_variant *devmig_variant_open(const char *path, char *err, size_t errlen);

/* The ABI this library implements (DEVMIG_VARIANT_ABI when it was built). */
uint32_t devmig_variant_abi(void);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_VARIANT_H */
