/* SPDX-License-Identifier: MIT */
/*
 * The device core's interface to the server (private to the library).
 * The server decodes messages and calls these; the core owns the device's
 * state and serialises access to it with its own lock.
 */
#ifndef DEVMIG_LIB_CORE_H
#define DEVMIG_LIB_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "devmig/device.h"
#include "devmig/wire.h"
#include "dma.h"

/* VFIO PCI region and IRQ index spaces (VFIO_PCI_NUM_REGIONS / _IRQS). */
#define DEVMIG_NUM_REGIONS 9u
#define DEVMIG_NUM_IRQS 5u
#define DEVMIG_CONFIG_REGION 7u
#define DEVMIG_CONFIG_SIZE 4096u

/* GET_REGION_INFO: fills info (size, flags, offset), the capability chain
 * (sparse mmap for mappable regions) into caps, and *fd (-1 if none; the
 * core keeps ownership). Returns 0 or -errno. */
int devmig_core_region_info(struct devmig_device *dev, uint32_t index,
			    struct devmig_region_info *info, uint8_t *caps, size_t caps_cap,
			    size_t *caps_len, int *fd);
int devmig_core_irq_info(struct devmig_device *dev, uint32_t index, struct devmig_irq_info *info);
/* SET_IRQS. On success the core owns fds; on failure the caller still does.
 * Only eventfds are taken as interrupt descriptors (-EINVAL otherwise), at
 * most DEVMIG_IRQ_SET_FDS_MAX in one call. */
#define DEVMIG_IRQ_SET_FDS_MAX 16u
int devmig_core_set_irqs(struct devmig_device *dev, const struct devmig_irq_set *set,
			 const uint8_t *bools, const int *fds, unsigned nfds);
/* REGION_READ/WRITE (bounds checked here). */
int devmig_core_region_rw(struct devmig_device *dev, uint32_t region, uint64_t offset,
			  void *buf, uint32_t count, bool is_write);
/* DEVICE_RESET: variant reset, config space, interrupts, migration to RUNNING. */
void devmig_core_reset(struct devmig_device *dev);

/* Migration (DEVICE_FEATURE MIGRATION / MIG_DEVICE_STATE / MIG_DATA_SIZE, MIG_DATA_*). */
uint64_t devmig_core_mig_caps(struct devmig_device *dev);
/* Walk to req arc by arc. On failure the device is at the last state reached
 * (or ERROR), *now says which, and why is filled. */
int devmig_core_set_state(struct devmig_device *dev, uint32_t req, enum devmig_state *now,
			  char *why, size_t whylen);
/*
 * The "deadline" extension: walk to req as devmig_core_set_state does, an
 * arc starting only if the estimate of what is left of the path fits
 * within deadline_ns of start_ns (CLOCK_MONOTONIC: when the request was
 * received). -ETIME when one did not: that arc was not started, *now says
 * where the device is (unchanged when refused before the first arc), why
 * says the estimate. out: the outcome (DEVMIG_DEADLINE_* flags, the
 * estimate of the path or of what did not fit, elapsed, overrun).
 */
struct devmig_core_deadline {
	uint32_t flags;
	uint64_t estimate_ns, elapsed_ns, overrun_ns;
};
int devmig_core_set_state_deadline(struct devmig_device *dev, uint32_t req, uint64_t start_ns,
				   uint64_t deadline_ns, enum devmig_state *now,
				   struct devmig_core_deadline *out, char *why, size_t whylen);
/* Every primitive arc's estimate, the transfer rate, the stop-copy size and
 * the last deadline request's outcome. */
void devmig_core_arc_estimates(struct devmig_device *dev, struct devmig_feature_arc_estimates *est);
/* CLOCK_MONOTONIC in ns: the time base of deadlines. */
uint64_t devmig_core_now_ns(void);

/* The "dirty_rate" extension: offered when the variant honours a cap. */
bool devmig_core_dirty_rate_supported(struct devmig_device *dev);
void devmig_core_set_dirty_rate(struct devmig_device *dev, uint64_t cap);
void devmig_core_dirty_rate(struct devmig_device *dev, struct devmig_feature_dirty_rate *dr);

/* MIG_DATA_READ: up to len bytes of stream as at most max_iov segments,
 * valid until the next read or state change on dev. Returns the byte count.
 * ref (may be NULL, else max_iov entries): ref[i] is true when segment i is
 * device memory of a stopped device sent from where it lies (it stays as it
 * is until the session ends), false for the core's own scratch bytes. */
#define DEVMIG_CORE_MAX_IOV 128
ssize_t devmig_core_mig_read(struct devmig_device *dev, struct iovec *iov, int max_iov,
			     int *niov, size_t len, bool *ref);

/* The data session the device has now, and a number that changes every
 * time an arc opens one (a server keeps one data fd per session). */
enum devmig_core_session {
	DEVMIG_SESSION_NONE,
	DEVMIG_SESSION_SAVE,
	DEVMIG_SESSION_LOAD,
};
enum devmig_core_session devmig_core_session(struct devmig_device *dev, uint64_t *gen);
int devmig_core_mig_write(struct devmig_device *dev, const void *buf, size_t len);
int devmig_core_precopy_info(struct devmig_device *dev, uint64_t *initial, uint64_t *dirty);
int devmig_core_stop_copy_size(struct devmig_device *dev, uint64_t *bytes);
/* The device's migration identity: version, accepted sources, config fingerprint. */
struct devmig_compat_info;
void devmig_core_compat_info(struct devmig_device *dev, struct devmig_compat_info *info);
/* MIG_STATUS: stream bytes loaded in RESUMING, the load's error (0 or -errno). */
void devmig_core_mig_status(struct devmig_device *dev, uint64_t *bytes_loaded, int *load_error);
/* The reason for the last failed migration operation ("" if none). */
void devmig_core_last_error(struct devmig_device *dev, char *buf, size_t len);

/* DMA table and dirty log of the device. */
struct devmig_dma *devmig_core_dma(struct devmig_device *dev);
/* How the core reaches fd-less guest memory: set by the server per client. */
void devmig_core_set_dma_xfer(struct devmig_device *dev,
			      int (*xfer)(void *opaque, bool is_write, uint64_t iova, void *buf,
					  size_t len),
			      void *opaque);
/* The client went away: drop DMA mappings, the DMA log and interrupt fds;
 * keep device state (the vfio-user rule). */
void devmig_core_client_gone(struct devmig_device *dev);

/*
 * Replacing the config space the variant described, before the device is
 * served (the fleet layer builds one from a profile): a new empty config
 * wired to the core, then the swap, refused (and cfg freed) when the BARs
 * or the MSI-X table/PBA placement differ from the variant's.
 */
struct devmig_pci_config *devmig_core_new_config(struct devmig_device *dev);
int devmig_core_replace_config(struct devmig_device *dev, struct devmig_pci_config *cfg,
			       char *err, size_t errlen);

#endif /* DEVMIG_LIB_CORE_H */
