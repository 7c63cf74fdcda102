/* SPDX-License-Identifier: MIT */
/*
 * A profile applied to a device: the fleet layer synthesizes the config
 * space and the core swaps it in. Kept out of the core so that the core
 * does not depend on profiles or JSON.
 */
#include <errno.h>
#include <stdio.h>

#include "core.h"
#include "devmig/profile.h"
#include "pci_config.h"

int devmig_device_set_profile(struct devmig_device *dev, const struct devmig_profile *profile,
			      char *err, size_t errlen)
{
	struct devmig_pci_config *cfg = devmig_core_new_config(dev);

	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = devmig_profile_build(profile, cfg, err, errlen);
	if (rc) {
		devmig_pcicfg_destroy(cfg);
		return rc;
	}
	return devmig_core_replace_config(dev, cfg, err, errlen);
}
