/* SPDX-License-Identifier: MIT */
/*
 * devmig: the API for device authors (the "variant driver" side).
 *
 * The split follows the kernel's vfio-pci-core and its variant drivers. The
 * core owns PCI config space, BARs, interrupts, DMA and dirty logging, the
 * migration state machine and the migration data stream (framing, version,
 * checksums). A variant embeds struct devmig_device in its own struct and
 * describes itself in three parts:
 *
 *   identity         struct devmig_device_id: name, version, accepted sources
 *   device ops       struct devmig_device_ops: realize, release, reset, BAR
 *                    accesses, config changes (all optional)
 *   migration ops    struct devmig_migration_ops: capabilities, arcs, save
 *                    and load record by record (all optional but caps; NULL
 *                    for a device that does not migrate)
 *
 * and gets back to its own struct with devmig_container_of(). An op left
 * NULL gets the core's default; the defaults a variant may want to wrap are
 * exported (devmig_device_default_*), the way vfio-pci-core exports what
 * its variants wrap.
 *
 * What the core gives a variant besides: records (it frames, checksums and
 * reassembles them: a variant emits typed records and receives whole checked
 * ones), tracked device memory (struct devmig_tracker: dirty/sent
 * bookkeeping, PRE_COPY rounds, precopy_info and the stop-copy size, staged
 * loading), memory-backed parts of BARs a client maps directly,
 * interrupts that wait while the device may not signal, deadlines on state
 * changes (arc estimates from its stop-copy size, its measured transfer
 * rate and the fixed costs it declares) and a cap on its dirty rate.
 *
 * What a variant may touch is exactly what this header declares. The core's
 * state lives behind dev->core, which is opaque.
 *
 * Threads: ops are called from the device's server thread, one at a time.
 * The devmig_device_*, devmig_tracker_write/mark and devmig_crc32c
 * functions may be called from the variant's own worker threads at any time.
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
struct devmig_device_id;
struct devmig_device_ops;
struct devmig_migration_ops;

struct devmig_device {
	/* Set by the variant before devmig_device_init. */
	const struct devmig_device_id *id;         /* required */
	const struct devmig_device_ops *ops;       /* NULL: every default */
	const struct devmig_migration_ops *mig;    /* NULL: not migratable */
	struct devmig_core *core;                  /* the core's; do not touch */
};

/* ---- part 1: identity ---- */

struct devmig_device_id {
	const char *name;    /* variant name, e.g. "memblk" (at most 64 bytes) */
	/* Opaque device version, e.g. "1af4:10f1-memblk-v2" (at most 128 bytes):
	 * the stream carries it and a destination checks it before any data. */
	const char *version;
	/* Other source versions whose state this variant loads (NULL-terminated,
	 * at most 8, DEVMIG_ACCEPTS_MAX of compat.h; NULL for none). Its own is
	 * implied. */
	const char *const *accepts;
};

/* ---- part 2: device ops ---- */

/* Why config_changed ran (bit set). */
#define DEVMIG_CFG_COMMAND (1u << 0) /* command register (memory/IO/bus master) */
#define DEVMIG_CFG_BAR (1u << 1)     /* a BAR address */
#define DEVMIG_CFG_MSI (1u << 2)     /* MSI enable/address/data/mask */
#define DEVMIG_CFG_MSIX (1u << 3)    /* MSI-X enable/function mask */

struct devmig_device_ops {
	/*
	 * Describe the device in cfg (ids, BARs, capabilities) and set up what
	 * it needs (trackers, BAR memory, workers). Called once from
	 * devmig_device_init; BAR i becomes region i. On failure (-errno) the
	 * core calls release, which must therefore cope with a half-done realize.
	 */
	int (*realize)(struct devmig_device *dev, struct devmig_pci_config *cfg);
	/* Undo realize: stop workers, free memory. Called by devmig_device_destroy
	 * and after a failed realize. Trackers and BAR memory are the core's. */
	void (*release)(struct devmig_device *dev);
	/* DEVICE_RESET or recovery from ERROR: return to power-on state. The core
	 * resets config space, interrupts and migration state itself, and has
	 * already published RUNNING: workers resumed here may DMA. */
	void (*reset)(struct devmig_device *dev);
	/*
	 * A BAR access from the client that neither the MSI-X table/PBA nor a
	 * memory part of the BAR (devmig_device_bar_memory) took; bounds are
	 * checked by the core. Return 0 or -errno. Default
	 * (devmig_device_default_bar_access): reads return zeros, writes are
	 * dropped.
	 */
	int (*bar_access)(struct devmig_device *dev, unsigned bar, uint64_t offset,
			  void *buf, size_t len, bool is_write);
	/* Config space changed (DEVMIG_CFG_* bits). Default: nothing. */
	void (*config_changed)(struct devmig_device *dev, unsigned what);
};

/* ---- part 3: migration ops ---- */

/* Result of a failed arc: how the core should leave the device. */
struct devmig_arc_result {
	bool broken;     /* set to put the device in ERROR (only reset recovers) */
	char why[160];   /* one sentence, for the client and the logs */
};

/* A variant's record types are 1..DEVMIG_RECORD_TYPE_MAX; payloads are at
 * most DEVMIG_RECORD_MAX bytes. */
#define DEVMIG_RECORD_TYPE_MAX 0xffffu
#define DEVMIG_RECORD_MAX (16u << 20)

struct devmig_save; /* where a save call emits its records (the core's) */

/*
 * A fixed cost a variant declares for one primitive arc, in ns (the time
 * its arc callback needs: quiescing work in flight, loading firmware
 * state...). See devmig_migration_ops.arc_costs.
 */
struct devmig_arc_cost {
	enum devmig_state from, to;
	uint64_t ns;
};

/*
 * The states, for a variant (the core enforces the DMA and interrupt rules;
 * devmig_device_state() tells a worker where the device is going):
 *
 *   RUNNING            everything allowed.
 *   RUNNING_P2P,       the device initiates no DMA (the core refuses it with
 *   PRE_COPY_P2P       -EBUSY) but otherwise runs: it serves BAR accesses,
 *                      may raise interrupts, and its internal state MAY
 *                      change (a register write, a doorbell recorded, work in
 *                      flight completing). Nothing is final here: save_state
 *                      runs only once the device is stopped in STOP_COPY.
 *   STOP, STOP_COPY,   no DMA, no interrupt (one raised is kept pending, see
 *   RESUMING           devmig_device_irq) and no internal change except by
 *                      client accesses to registers.
 *   PRE_COPY           RUNNING with a save session open (save is called
 *                      while the device runs).
 */
struct devmig_migration_ops {
	/* DEVMIG_MIG_* capabilities (STOP_COPY is required). */
	uint64_t caps;

	/*
	 * One primitive arc of the state machine; the core walks multi-hop
	 * requests and calls this once per arc, in order. `to` is published
	 * (devmig_device_state) before this is called, so a worker woken here
	 * already sees it. Entering a quiesced state
	 * (devmig_state_is_quiesced), return only when the variant's own
	 * threads initiate no more DMA (and, for stopped states, no interrupts):
	 * in-flight work completes first. Return 0, or -errno and fill res: the
	 * device stays at `from` (or goes to ERROR if res->broken). The core
	 * opens a save or load session before an arc that opens one and drops
	 * it if the arc fails. RESUMING->STOP: the core has checked the whole
	 * stream (load_check) and applies it (load_apply) only after this arc
	 * succeeded: a failed RESUMING->STOP applies nothing, and a retry checks
	 * and applies once. Default: succeed.
	 */
	int (*arc)(struct devmig_device *dev, enum devmig_state from, enum devmig_state to,
		   struct devmig_arc_result *res);

	/*
	 * Save, in a save session (PRE_COPY, PRE_COPY_P2P, STOP_COPY). The
	 * core's own records come first: every tracker's chunks due (PRE_COPY
	 * rounds: first pass, then chunks written since they were sent). Then
	 * save: the variant's other bulk data, called while it emits records
	 * (devmig_save_record*, stop when devmig_save_room() is 0); emitting none
	 * means no more for now (PRE_COPY) or none left (STOP_COPY). May be
	 * called while the device runs. Return 0 or -errno. Default: none.
	 */
	int (*save)(struct devmig_device *dev, struct devmig_save *s);
	/*
	 * Once per STOP_COPY, after the bulk data: the device's remaining state
	 * (registers, queues) as records. The device is stopped. Return 0 or
	 * -errno. Default: none.
	 */
	int (*save_state)(struct devmig_device *dev, struct devmig_save *s);
	/*
	 * PRE_COPY progress (kernel VFIO_MIG_GET_PRECOPY_INFO): initial data
	 * still to send and data changed since it was sent. Default
	 * (devmig_device_default_precopy_info): the trackers' numbers. A
	 * variant with bulk data of its own adds its figures to the default's.
	 * Either way the core adds the stream bytes produced but not yet read.
	 */
	void (*precopy_info)(struct devmig_device *dev, uint64_t *initial_bytes,
			     uint64_t *dirty_bytes);
	/*
	 * Stream bytes a STOP_COPY from now would still produce (MIG_DATA_SIZE).
	 * Called in ANY state, with or without a save session: a VMM asks
	 * before it starts. Without a session, estimate the whole state. Default
	 * (devmig_device_default_stop_copy_size): trackers, BAR memory, held
	 * interrupts, config space and framing; a variant adds what its save
	 * and save_state emit (framing: DEVMIG_RECORD_OVERHEAD per record).
	 */
	uint64_t (*stop_copy_size)(struct devmig_device *dev);

	/*
	 * Load, in RESUMING: one whole record, exactly as the source emitted it
	 * (its type and payload), already checked by the core (length, CRC,
	 * order). The client's writes may be cut anywhere; the core reassembles
	 * them, so a record never arrives in pieces. Stage it; do not apply it.
	 * Return 0 or -errno with a sentence in why. Default: refuse every
	 * record.
	 */
	int (*load)(struct devmig_device *dev, unsigned type, const void *data, size_t len,
		    char *why, size_t whylen);
	/* RESUMING->STOP, the stream complete: is everything staged whole and
	 * valid? Return 0 or -errno with why; change nothing either way. May be
	 * called again when the arc is retried. Default: accept. */
	int (*load_check)(struct devmig_device *dev, char *why, size_t whylen);
	/* RESUMING->STOP after load_check and arc succeeded: apply the staged
	 * state. Cannot fail. Default: nothing. */
	void (*load_apply)(struct devmig_device *dev);
	/* The load was abandoned (reset, a refused stream, ERROR): drop staged
	 * data. Default: nothing. */
	void (*load_abort)(struct devmig_device *dev);

	/*
	 * Deadlines (a VMM's state change may carry one: before each arc the
	 * core asks for the estimate of what is left of the path and refuses
	 * with ETIME, changing nothing more, if it does not fit). arc_costs:
	 * the arcs' fixed costs, an array ended by an entry whose ns is 0
	 * (arcs not listed cost 0); NULL: none.
	 */
	const struct devmig_arc_cost *arc_costs;
	/*
	 * The estimate of one primitive arc, in ns; set *partial when part of
	 * it cannot be known yet. Also what a VMM reads to plan (its arc
	 * estimates). Called from the server thread in any state. Default
	 * (devmig_device_default_arc_estimate): the arc's fixed cost, and for
	 * an arc into STOP_COPY the stop-copy size at the rate the device's
	 * data has been read at (devmig_device_transfer_rate), which is the
	 * time to read its stream out; no rate yet: partial.
	 */
	uint64_t (*arc_estimate)(struct devmig_device *dev, enum devmig_state from,
				 enum devmig_state to, bool *partial);
	/*
	 * The variant honours a VMM's cap on the rate its state changes at in
	 * PRE_COPY: whatever changes its state (a guest's write) completes
	 * only after devmig_device_throttle. Only then is the cap offered.
	 */
	bool dirty_rate_limit;
};

/* ---- lifecycle (called by whoever hosts the device, e.g. devmig serve) ---- */

/* Initialise the core part of dev (dev->id must be set) and call realize. */
int devmig_device_init(struct devmig_device *dev);
/* Call release and free the core part. The device must not be served. */
void devmig_device_destroy(struct devmig_device *dev);

/* ---- for the variant, from any thread ---- */

/*
 * The migration state: during an arc, the state being entered (published
 * before the arc runs), else the current one. A snapshot: it may change
 * right after.
 */
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
 * a way the server sees (SET_IRQS MASK, the MSI-X function mask or an MSI
 * mask bit in config space, the vector's MSI-X table mask bit once the
 * client has written the table (a client that emulates the table itself,
 * like QEMU, never writes it), INTx's automask or INTx disable) or the
 * device may not signal (a stopped state). Then the vector is left pending,
 * one bit however often it is raised (the PBA, the MSI pending bits, or the
 * core's own for MSI without mask bits and for INTx), which migrates with
 * config space; it is signalled once when the last of those goes (here, or
 * on the destination). 0 when signalled or left pending, -ENOENT if it
 * could be signalled but has no eventfd, -EINVAL for a vector the enabled
 * mode does not have.
 */
int devmig_device_irq(struct devmig_device *dev, unsigned v);

/*
 * Memory backing [offset, offset + size) of memory BAR bar (offset and size
 * page-aligned, size > 0): the client is offered it as a sparse-mmap area
 * with a file descriptor, so a VMM maps it and the guest's accesses to it
 * never trap; region accesses to it are served by the core; the rest of the
 * BAR traps to bar_access. It must not overlap the MSI-X table or PBA. The
 * core owns the memory (zero-filled), keeps it across reset and migrates
 * it in STOP_COPY. Call from realize after devmig_pci_set_bar, once per
 * BAR. NULL with errno set (EINVAL, EEXIST, ENOMEM) on failure.
 */
void *devmig_device_bar_memory(struct devmig_device *dev, unsigned bar, uint64_t offset,
			       uint64_t size);

/* ---- the core's defaults, for a variant's op that wraps them ---- */

int devmig_device_default_bar_access(struct devmig_device *dev, unsigned bar, uint64_t offset,
				     void *buf, size_t len, bool is_write);
void devmig_device_default_precopy_info(struct devmig_device *dev, uint64_t *initial_bytes,
					uint64_t *dirty_bytes);
uint64_t devmig_device_default_stop_copy_size(struct devmig_device *dev);
uint64_t devmig_device_default_arc_estimate(struct devmig_device *dev, enum devmig_state from,
					    enum devmig_state to, bool *partial);

/* Bytes/s the device's migration data has been read at in this save
 * session (recent reads weigh most); 0 until measured. Any thread. */
uint64_t devmig_device_transfer_rate(struct devmig_device *dev);

/*
 * Dirty-rate limiting. A variant with dirty_rate_limit calls this from
 * the thread that completes something which changed len bytes of its
 * state (tracked memory included), before the completion becomes visible.
 * While a VMM has capped the rate and the device is in PRE_COPY, it waits
 * until the changes keep to the cap; otherwise it returns at once, and it
 * returns early when the cap is lifted or changed, the device leaves
 * PRE_COPY (so an arc into a quiesced state is not held up), or is reset.
 * One call waits at most 1 s, so a guest never sees a completion stall
 * longer than that. Returns the ns waited. Never from the server thread
 * (an op): that would hold the very request that lifts the cap.
 */
uint64_t devmig_device_throttle(struct devmig_device *dev, uint64_t len);

/* ---- records: saving ---- */

/* Stream bytes a record costs besides its payload (type, length, CRC). */
#define DEVMIG_RECORD_OVERHEAD 12u

/* Emit a record of the variant's type with len payload bytes (copied).
 * 0, or -EINVAL (type), -E2BIG (len), -ENOMEM. */
int devmig_save_record(struct devmig_save *s, unsigned type, const void *data, size_t len);
/*
 * Emit a record whose payload is head (copied) then body. In STOP_COPY the
 * core may send body from where it lies instead of copying it: it must not
 * change until the save session ends (a stopped device's memory). Running,
 * body is copied now.
 */
int devmig_save_record_ref(struct devmig_save *s, unsigned type, const void *head,
			   size_t head_len, const void *body, size_t body_len);
/* Stream bytes this call still wants: stop emitting at 0 (the records
 * emitted beyond it are kept for the next read). */
size_t devmig_save_room(const struct devmig_save *s);
/* True in STOP_COPY (the device is stopped; this session ends the stream). */
bool devmig_save_final(const struct devmig_save *s);

/* ---- tracked device memory ---- */

struct devmig_tracker;

/* Chunks never written travel as small ZERO records, not as their bytes;
 * a tracker without it refuses ZERO records when loading. */
#define DEVMIG_TRACKER_ZERO (1u << 0)
/* Always copy chunks into the stream, never send them from where they lie
 * (for comparing; the zero-copy path is the default when stopped). */
#define DEVMIG_TRACKER_COPY (1u << 1)
#define DEVMIG_TRACKERS_MAX 8u

/*
 * size bytes of device memory, zero-filled (pages cost memory once written),
 * tracked in chunks of chunk bytes (a power of two, 4 KiB..1 MiB), and
 * attached to dev: the core migrates it (every chunk in the first pass, then
 * those written since they were sent; STOP_COPY sends what is left, from
 * where it lies), stages a load in a second mapping and swaps it in at
 * load_apply, and counts it in precopy_info and the stop-copy size. Call
 * from realize; freed with the device. NULL with errno set on failure.
 */
struct devmig_tracker *devmig_tracker_new(struct devmig_device *dev, uint64_t size,
					  uint32_t chunk, unsigned flags);
/* The memory. It moves only when a load is applied (RESUMING->STOP), while
 * the device is stopped: take it again after that, or at each use. */
void *devmig_tracker_mem(const struct devmig_tracker *t);
uint64_t devmig_tracker_size(const struct devmig_tracker *t);
/* Copy len bytes into the memory at off and mark them written; atomic with
 * respect to the save path copying the same chunk. Any thread. 0, or
 * -ERANGE (nothing written) for a range outside the memory. */
int devmig_tracker_write(struct devmig_tracker *t, uint64_t off, const void *src, size_t len);
/* Mark [off, off + len) written after writing it through devmig_tracker_mem:
 * a chunk saved while it was being written is sent again. Any thread. 0 or
 * -ERANGE. */
int devmig_tracker_mark(struct devmig_tracker *t, uint64_t off, uint64_t len);

/* ---- helpers ---- */

/* CRC32C (Castagnoli), the checksum of the stream's records;
 * hardware-accelerated where the CPU has SSE4.2. */
uint32_t devmig_crc32c(uint32_t crc, const void *buf, size_t len);

/* Log a line attributed to this device (stderr). */
void devmig_device_log(struct devmig_device *dev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_DEVICE_H */
