/* SPDX-License-Identifier: MIT */
/*
 * devmig: the API for device authors (the "variant driver" side).
 *
 * The split follows the kernel's vfio-pci-core and its variant drivers. The
 * core owns PCI config space, BARs, interrupts, DMA and dirty logging, the
 * migration state machine and the migration data stream (framing, version,
 * checksums). A variant embeds struct devmig_device in its own struct, fills
 * an ops table with what its device needs, and gets back to its own struct
 * with devmig_container_of(). Every op is optional; the core supplies a
 * default for each one not given.
 *
 * What a variant may touch is exactly what this header declares. The core's
 * state lives behind dev->core, which is opaque.
 *
 * Threads: ops are called from the device's server thread, one at a time.
 * The devmig_device_* functions below are thread-safe and may be called from
 * the variant's own worker threads at any time.
 */
#ifndef DEVMIG_DEVICE_H
#define DEVMIG_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "devmig/migration.h"
#include "devmig/pci.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libdevmig, which hides everything else. */
#pragma GCC visibility push(default)

#define devmig_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct devmig_core; /* private to the core */
struct devmig_device_ops;

struct devmig_device {
	const struct devmig_device_ops *ops; /* set by the variant before devmig_device_init */
	struct devmig_core *core;            /* the core's; do not touch */
};

/* Why devmig_device_config_changed ran (bit set). */
#define DEVMIG_CFG_COMMAND (1u << 0) /* command register (memory/IO/bus master) */
#define DEVMIG_CFG_BAR (1u << 1)     /* a BAR address */
#define DEVMIG_CFG_MSI (1u << 2)     /* MSI enable/address/data/mask */
#define DEVMIG_CFG_MSIX (1u << 3)    /* MSI-X enable/function mask */

/* Result of a failed arc: how the core should leave the device. */
struct devmig_arc_result {
	bool broken;     /* set to put the device in ERROR (only reset recovers) */
	char why[160];   /* one sentence, for the client and the logs */
};

struct devmig_device_ops {
	const char *name;    /* variant name, e.g. "memblk" */
	const char *version; /* opaque device version string, e.g. "1af4:10f1-memblk-v2" */
	/* Other source versions whose state this variant can load (NULL-terminated;
	 * at most DEVMIG_ACCEPTS_MAX). Its own version is always accepted. */
	const char *const *accepts;

	/* Describe the device in cfg (ids, BARs, capabilities). Called once from
	 * devmig_device_init. BAR i becomes region i with the BAR's size. */
	int (*realize)(struct devmig_device *dev, struct devmig_pci_config *cfg);
	/* Undo realize: stop workers, free memory. Called by devmig_device_destroy. */
	void (*release)(struct devmig_device *dev);
	/* DEVICE_RESET or recovery from ERROR: return to power-on state. The core
	 * resets config space, interrupts and migration state itself. */
	void (*reset)(struct devmig_device *dev);
	/* A BAR access from the client (the MSI-X table and PBA never reach it).
	 * Bounds are checked by the core. Return 0 or -errno. Default: reads
	 * return zeros, writes are dropped. */
	int (*bar_access)(struct devmig_device *dev, unsigned bar, uint64_t offset,
			  void *buf, size_t len, bool is_write);
	/* Config space changed (DEVMIG_CFG_* bits). */
	void (*config_changed)(struct devmig_device *dev, unsigned what);

	/* ---- migration ---- */

	/* DEVMIG_MIG_* capabilities; 0 = not migratable (no MIGRATION feature). */
	uint64_t migration_caps;

	/*
	 * One primitive arc of the state machine; the core walks multi-hop
	 * requests and calls this once per arc, in order. Entering a state in
	 * which devmig_state_is_quiesced() holds, it must return only when the
	 * variant's own threads initiate no more DMA (and, for stopped states,
	 * no interrupts): in-flight work completes first. Return 0, or -errno
	 * and fill res (the device stays at `from`, or goes to ERROR if
	 * res->broken). Default: succeed.
	 */
	int (*arc)(struct devmig_device *dev, enum devmig_state from, enum devmig_state to,
		   struct devmig_arc_result *res);

	/*
	 * Streaming save (devices with large state). Fill buf with the next
	 * bytes of device data, up to len. Return the byte count; 0 means no
	 * more data for now (PRE_COPY) or the end of the device data
	 * (STOP_COPY); -errno on failure. The core frames, checksums and
	 * versions what it returns.
	 */
	ssize_t (*save)(struct devmig_device *dev, void *buf, size_t len);
	/*
	 * Optional zero-copy save, used instead of save while the device is
	 * stopped (STOP_COPY). Produce the next piece of the same stream save
	 * would, up to len bytes, either copied into buf (set *data = buf) or
	 * as a pointer to device memory that stays unchanged until the session
	 * ends (*data pointing elsewhere): the core checksums and sends it from
	 * there, so bulk state is never copied in user space. Same return
	 * convention as save. In PRE_COPY the device runs and its memory may
	 * change under a reference after its checksum is taken, so the core
	 * always copies through save there.
	 */
	ssize_t (*save_ref)(struct devmig_device *dev, void *buf, size_t len, const void **data);
	/* PRE_COPY progress: initial data still to read and data dirtied since. */
	void (*precopy_info)(struct devmig_device *dev, uint64_t *initial_bytes,
			     uint64_t *dirty_bytes);
	/* Estimated device bytes still to come in STOP_COPY. */
	uint64_t (*stop_copy_size)(struct devmig_device *dev);
	/*
	 * Streaming load: the device data in order, cut anywhere, already
	 * checked record by record by the core. Stage it; do not apply it.
	 * Return 0 or -errno (fill why).
	 */
	int (*load)(struct devmig_device *dev, const void *buf, size_t len,
		    char *why, size_t whylen);
	/* End of stream (RESUMING->STOP): validate all staged data and apply it,
	 * or refuse with why and change nothing. */
	int (*load_commit)(struct devmig_device *dev, char *why, size_t whylen);
	/* The load was abandoned (reset, or a failed commit): drop staged data. */
	void (*load_abort)(struct devmig_device *dev);

	/*
	 * Snapshot save (devices with small state) instead of the streaming
	 * ops: the core takes the snapshot when the device is stopped and
	 * streams, stages and validates it. state_size: the snapshot's size.
	 * save_state fills it; check_state validates one without applying it
	 * (fill why); load_state applies a checked one and cannot fail.
	 */
	size_t (*state_size)(struct devmig_device *dev);
	int (*save_state)(struct devmig_device *dev, void *buf, size_t len);
	int (*check_state)(struct devmig_device *dev, const void *buf, size_t len,
			   char *why, size_t whylen);
	void (*load_state)(struct devmig_device *dev, const void *buf, size_t len);
};

/* ---- lifecycle (called by whoever hosts the device, e.g. devmig serve) ---- */

/* Initialise the core part of dev (dev->ops must be set) and call realize. */
int devmig_device_init(struct devmig_device *dev);
/* Call release and free the core part. The device must not be served. */
void devmig_device_destroy(struct devmig_device *dev);

/* ---- for the variant, from any thread ---- */

/* Current migration state (a snapshot; it may change right after). */
enum devmig_state devmig_device_state(struct devmig_device *dev);

/*
 * Guest memory through the client's DMA mappings. The whole range must be
 * mapped with the needed permission, else -EFAULT/-EACCES and nothing is
 * copied. Writes are dirty-logged automatically. In a quiesced state the
 * core refuses (-EBUSY): a device must not initiate DMA there. During an
 * arc, DMA is allowed if the state left or the state entered allows it:
 * in-flight work completes on the way in, and workers the variant resumes
 * in arc() may start on the way out.
 */
int devmig_device_dma_read(struct devmig_device *dev, uint64_t iova, void *buf, size_t len);
int devmig_device_dma_write(struct devmig_device *dev, uint64_t iova, const void *buf,
			    size_t len);

/*
 * Raise interrupt vector v: MSI-X if enabled, else MSI, else INTx (v must
 * be 0). The vector's eventfd is signalled unless the client masked it in
 * a way the server sees: SET_IRQS MASK, the MSI-X function mask or an MSI
 * mask bit in config space, or the vector's MSI-X table mask bit once the
 * client has written the table (a client that emulates the table itself,
 * like QEMU, never writes it). A masked vector is left pending (PBA, MSI
 * pending bits) and sent when its last mask goes. Refused (-EBUSY) while
 * the device is stopped (same arc rule as DMA). 0 when delivered or left
 * pending, -ENOENT if no eventfd is set for it.
 */
int devmig_device_irq(struct devmig_device *dev, unsigned v);

/* Memory backing a whole BAR, offered to the client as a mappable fd
 * (sparse-mmap capability). Call from realize; the core owns the memory. */
void *devmig_device_bar_memory(struct devmig_device *dev, unsigned bar);

/* CRC32C (Castagnoli), the checksum of the core's stream records, for a
 * variant's own records; hardware-accelerated where the CPU has SSE4.2. */
uint32_t devmig_crc32c(uint32_t crc, const void *buf, size_t len);

/* Log a line attributed to this device (stderr unless redirected). */
void devmig_device_log(struct devmig_device *dev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_DEVICE_H */
