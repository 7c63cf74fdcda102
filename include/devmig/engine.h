/* SPDX-License-Identifier: MIT */
/*
 * devmig: the live-migration engine (the VMM side).
 *
 * Moves one or more devices, and the guest memory they DMA into, from
 * source servers to destination servers:
 *   1. destination devices go to RESUMING;
 *   2. source devices with PRE_COPY enter it while the guest runs; their data
 *      streams to the destination as it is read; guest memory is pre-copied
 *      with the devices' DMA dirty logs (plus the VMM's own CPU dirty marks);
 *      rounds go on while the estimated stop time exceeds the downtime
 *      budget, up to a round limit; switchover waits until every destination
 *      accepted the initial data. With devices that offer the "dirty_rate"
 *      extension, rounds that stop shrinking cap the devices' dirty rate,
 *      lower at each such round (QEMU's auto-converge, for devices); the
 *      caps are lifted when the migration ends, either way;
 *   3. the guest is paused; every source device reaches RUNNING_P2P or
 *      PRE_COPY_P2P before any goes to STOP or STOP_COPY; each goes to
 *      STOP_COPY and its stream is read out, then the last dirty pages are
 *      sent; every destination must pass RESUMING->STOP; then every
 *      destination goes to RUNNING_P2P, then RUNNING, and the guest
 *      resumes there. With devices that offer the "deadline" extension the
 *      downtime budget is planned with their arc estimates and passed to
 *      them as deadlines on these state changes: a device that estimates
 *      it cannot make its deadline refuses before it starts; the devices go
 *      back to PRE_COPY, the guest runs on, pre-copy goes on (and caps
 *      tighten) and the switchover is tried again, up to a few refusals
 *      within the round limit; then the migration is abandoned with the
 *      source running. Without deadlines a migration that does not
 *      converge switches over anyway, past the budget;
 *   4. on any failure the source devices return to RUNNING with their state,
 *      the destination devices are reset, the guest resumes on the source,
 *      and the error names the device and the reason. A connection that
 *      broke on the way is reconnected for this (the error says so: the
 *      server dropped that connection's DMA mappings and interrupt fds,
 *      which the VMM sets again); a destination whose reset
 *      is refused or leaves it RESUMING (libvfio-user) is walked back to
 *      RUNNING and reset again.
 * Before any state moves, each source/destination pair is checked: by the
 * compat extension when both sides offer it, else by the PCI identity in
 * their config spaces (vendor, device, subsystem ids, class, revision),
 * which must match. A peer without devmig's extensions (no P2P states, no
 * PRE_COPY progress, no stop-copy size) is stopped and copied, or with
 * precopy_without_progress pre-copied in rounds driven by what its reads
 * return: a read shorter than asked ends a pass.
 * A retry after any fault works the first time: a source device left in
 * PRE_COPY, PRE_COPY_P2P or RUNNING_P2P is put back to RUNNING (its session
 * ended); one left in STOP_COPY or STOP is migrated from STOP without running
 * again; a destination device left in RESUMING (or ERROR) is reset and gets
 * a fresh RESUMING session. Each is announced (DEVMIG_EV_RECOVER).
 * The destination can be in this process (sockets of local servers), on
 * another host (a channel socket to `devmig receive`), or a checkpoint file.
 */
#ifndef DEVMIG_ENGINE_H
#define DEVMIG_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmig/client.h"
#include "devmig/migration.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libdevmig, which hides everything else. */
#pragma GCC visibility push(default)

/* ---- guest memory the engine owns (the demo's and the tests' guest RAM) ---- */

struct devmig_guest_mem;

/* size bytes of shared memory (a memfd), mapped here and DMA-mapped into devices. */
struct devmig_guest_mem *devmig_guest_mem_new(size_t size, char *err, size_t errlen);
void devmig_guest_mem_free(struct devmig_guest_mem *gm);
void *devmig_guest_mem_ptr(struct devmig_guest_mem *gm);
size_t devmig_guest_mem_size(const struct devmig_guest_mem *gm);
int devmig_guest_mem_fd(const struct devmig_guest_mem *gm);
/*
 * The VMM's own writes to guest memory (what KVM's dirty log reports for
 * vCPUs): the engine copies these pages again. Thread-safe.
 */
void devmig_guest_mem_mark_dirty(struct devmig_guest_mem *gm, uint64_t offset, uint64_t len);

/* ---- events: progress, the arcs requested, the phases ---- */

enum devmig_engine_event_type {
	DEVMIG_EV_ARC,        /* dev asked to go from -> to (side says source or destination) */
	DEVMIG_EV_ROUND,      /* a pre-copy round ended */
	DEVMIG_EV_SWITCHOVER, /* the guest is paused, the stop phase begins */
	DEVMIG_EV_DONE,       /* the guest runs on the destination */
	DEVMIG_EV_UNWIND,     /* a failure: the source is being restored */
	/* A device left mid-migration by an earlier failure was found and its
	 * session ended before this one began; why says what and how. */
	DEVMIG_EV_RECOVER,
	DEVMIG_EV_THROTTLE,   /* dev's dirty-rate cap set, lowered or lifted (cap 0) */
	DEVMIG_EV_REFUSED,    /* dev refused the switchover's deadline: the guest runs on */
};

struct devmig_engine_event {
	enum devmig_engine_event_type type;
	unsigned dev;
	bool destination;             /* DEVMIG_EV_ARC: which side */
	enum devmig_state from, to;   /* DEVMIG_EV_ARC */
	unsigned round;
	uint64_t bytes;               /* moved so far (device + guest) */
	uint64_t remaining;           /* estimated bytes still to move */
	double rate;                  /* bytes/s measured so far */
	uint64_t elapsed_ns;
	const char *why;              /* DEVMIG_EV_UNWIND, DEVMIG_EV_RECOVER */
	uint64_t cap;                 /* DEVMIG_EV_THROTTLE: bytes/s, 0 lifted */
	uint64_t estimate_ns;         /* DEVMIG_EV_REFUSED: the device's estimate */
	uint64_t deadline_ns;         /*   and the deadline it was given */
};

struct devmig_engine_config {
	/*
	 * The downtime budget. Given, it is held to: with devices that offer
	 * them, deadlines at the switchover and dirty-rate caps when rounds stop
	 * shrinking (unless no_deadline, no_throttle). 0: aim for 300 ms, with
	 * neither (a migration that does not converge then switches over past
	 * it).
	 */
	uint64_t downtime_budget_ns;
	unsigned max_rounds;          /* 0: 30 */
	size_t chunk;                 /* MIG_DATA_READ size; 0: 1 MiB */
	unsigned read_depth;          /* reads in flight per device; 0: 2 */
	bool no_precopy;              /* stop-and-copy only, even if devices offer PRE_COPY */
	/*
	 * Pre-copy devices that offer PRE_COPY but report no progress (no
	 * precopy_info: a foreign peer) too, their rounds driven by what reads
	 * return. Off by default: libvfio-user offers PRE_COPY for every device
	 * whatever its callbacks do, so the flag alone does not say its stream
	 * may be cut into a pre-copy and a stop-copy part (its own sample's
	 * may not: RESUMING takes the stop-copy part only).
	 */
	bool precopy_without_progress;
	uint64_t guest_iova;          /* where guest memory is DMA-mapped in devices */
	uint64_t timeout_ms;          /* per device operation and per channel frame
				       * (devmig_migrate_to_fd, devmig_receive_from_fd); 0: 30 s */
	/* Switch over with plain state changes even with devices that take
	 * deadlines (what a VMM without the extension does). */
	bool no_deadline;
	/* Never cap a device's dirty rate (devmig migrate --no-throttle). */
	bool no_throttle;
	/* Send at most this many bytes/s to the destination, device data and
	 * guest memory together: a slow link, reproducible anywhere (the
	 * demo, tests). 0: as fast as it goes. */
	uint64_t link_rate;
	void (*event)(void *opaque, const struct devmig_engine_event *ev);
	/* Stop and restart the guest's vCPUs (and the demo's workload). */
	int (*pause_guest)(void *opaque);
	int (*resume_guest)(void *opaque, bool on_destination);
	void *opaque;
};

/* Devices one migration moves at most. */
#define DEVMIG_ENGINE_MAX_DEVICES 64u
/* A device state the engine could not read back (its server is gone, or the
 * device is on another host): the value in src_state/dst_state. */
#define DEVMIG_STATE_UNKNOWN (-1)

struct devmig_migration_report {
	unsigned devices;
	unsigned rounds;
	bool precopy;                 /* some device was pre-copied */
	uint64_t device_bytes;        /* migration stream bytes moved */
	/* Of those, the bytes moved from data fd to data fd (spliced, or read
	 * and written once), not through the client's message calls. */
	uint64_t device_fd_bytes;
	uint64_t guest_bytes;         /* guest memory bytes moved */
	uint64_t device_state_bytes;  /* sum of the devices' STOP_COPY estimates at the start */
	uint64_t stop_copy_bytes;     /* bytes moved while the guest was paused */
	uint64_t total_ns;
	uint64_t downtime_ns;         /* guest paused -> guest resumed */
	double throughput;            /* bytes/s over the whole migration */
	bool completed;               /* the guest runs on the destination */
	/* RUN reached the destination but its answer was lost (connection dropped
	 * or timed out): the destination may be running the guest. The source
	 * devices are left stopped, never resumed, so the guest never runs twice;
	 * the operator decides (check the destination, then resume one side). */
	bool outcome_unknown;
	char error[512];              /* set on failure: which device and why */
	/* The downtime budget, and whether it was planned and met. */
	uint64_t budget_ns;
	bool budget_met;              /* completed with downtime_ns <= budget_ns */
	bool converged;               /* pre-copy ended because the stop fit the budget, not at a limit */
	bool deadlines;               /* the budget went to the devices as deadlines */
	unsigned deadline_refusals;   /* switchovers refused by a device (the guest ran on) */
	uint64_t refusal_estimate_ns; /* the last refusal: the device's estimate, */
	uint64_t refusal_deadline_ns; /*   and the deadline it was given */
	uint64_t overrun_ns;          /* the most a device said it finished late (0: in time) */
	/* Dirty-rate limiting: the lowest cap set on a device (bytes/s, 0:
	 * none), how long caps were in force, and how many times they were
	 * set or lowered. */
	uint64_t throttle_cap;
	uint64_t throttle_ns;
	unsigned throttle_steps;
	/*
	 * The state each device was left in, read back at the end (a
	 * devmig_state, or DEVMIG_STATE_UNKNOWN). Source devices: by the
	 * migrate and save calls; destination devices: by the calls that drive
	 * them (local migrate, receive, restore); UNKNOWN otherwise.
	 */
	int src_state[DEVMIG_ENGINE_MAX_DEVICES];
	int dst_state[DEVMIG_ENGINE_MAX_DEVICES];
};

/* ---- running a migration ----
 *
 * The engine drives the VMM's own connections (vfio-user allows one client
 * per device): the caller connects, maps guest memory and sets interrupts,
 * and keeps using the clients meanwhile (the engine holds a client only
 * for bounded batches). src[i] migrates to dst[i]. Guest memory (may be
 * NULL) is what the engine copies; it must be DMA-mapped in the devices at
 * cfg->guest_iova. Each call returns 0 when the guest runs on the
 * destination, else -errno with report->error naming the device and the
 * reason, and the source devices back in RUNNING with their state.
 */

/* Both sides in this process. */
int devmig_migrate_local(const struct devmig_engine_config *cfg,
			 struct devmig_client *const *src, struct devmig_client *const *dst,
			 unsigned n, struct devmig_guest_mem *src_mem,
			 struct devmig_guest_mem *dst_mem, struct devmig_migration_report *report);

/* Source half of a two-host migration: the peer is devmig_receive_from_fd on fd. */
int devmig_migrate_to_fd(const struct devmig_engine_config *cfg,
			 struct devmig_client *const *src, unsigned n,
			 struct devmig_guest_mem *src_mem, int fd,
			 struct devmig_migration_report *report);

/* Destination half: serve one migration arriving on fd into dst. */
int devmig_receive_from_fd(const struct devmig_engine_config *cfg, int fd,
			   struct devmig_client *const *dst, unsigned n,
			   struct devmig_guest_mem *dst_mem, struct devmig_migration_report *report);

/*
 * Checkpoint: pause the guest, stop the devices, write their state and the
 * guest memory to fd, then let the source run on. Restore reads a seekable
 * checkpoint: it checks every frame of the file before any device is
 * touched, then loads with the same checks as a migration.
 */
int devmig_save(const struct devmig_engine_config *cfg, struct devmig_client *const *src,
		unsigned n, struct devmig_guest_mem *src_mem, int fd,
		struct devmig_migration_report *report);
int devmig_restore(const struct devmig_engine_config *cfg, int fd,
		   struct devmig_client *const *dst, unsigned n,
		   struct devmig_guest_mem *dst_mem, struct devmig_migration_report *report);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_ENGINE_H */
