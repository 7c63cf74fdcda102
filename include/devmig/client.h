/* SPDX-License-Identifier: MIT */
/*
 * devmig: the VMM side of one device, whatever serves it.
 *
 * Two backends sit under the same calls:
 *  - vfio-user: a connection to a server socket that follows the vfio-user
 *    specification. The project's extensions are asked for in VERSION and
 *    used only when the server offered them. Every call is one or more
 *    request/reply exchanges; calls on one client are serialised by an
 *    internal lock, so a client may be shared by threads. While waiting for
 *    a reply the client answers the server's DMA_READ/DMA_WRITE commands for
 *    mappings registered without an fd (devmig_client_dma_map with vaddr).
 *  - kernel: a Linux VFIO device (vfio-pci, a variant driver, an mdev),
 *    opened through its IOMMU group and a type1 container, or through its
 *    device cdev /dev/vfio/devices/vfioN and /dev/iommu (iommufd). Migration
 *    data moves over the data fd the kernel returns for a state change;
 *    region access is pread/pwrite on the device fd; DMA maps take a vaddr
 *    (an fd is mapped here first). What only devmig's vfio-user servers
 *    have (mig_status, compat, raw messages) fails with -EOPNOTSUPP.
 *
 * Errors are negative errnos; a server's error reply returns its errno.
 */
#ifndef DEVMIG_CLIENT_H
#define DEVMIG_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "devmig/migration.h"
#include "devmig/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libdevmig, which hides everything else. */
#pragma GCC visibility push(default)

struct devmig_client;

struct devmig_client_config {
	uint32_t max_data_xfer_size; /* 0: 1 MiB */
	uint32_t ext;                /* extensions to ask for; DEVMIG_EXT_ALL by default */
	bool no_ext;                 /* ask for none: behave as a plain vfio-user client */
	int timeout_ms;              /* per reply and per whole send; 0: 30 s. A reply
				      * that comes late is dropped when it does; a send
				      * that times out breaks the connection (-ENOTCONN
				      * until devmig_client_reconnect) */
};

/* Connect to a vfio-user socket and negotiate VERSION. cfg may be NULL.
 * NULL on failure with err. */
struct devmig_client *devmig_client_connect(const char *socket_path,
					    const struct devmig_client_config *cfg, char *err,
					    size_t errlen);

/*
 * Open a kernel VFIO device. spec names it:
 *   0000:01:00.0 or 01:00.0                  a PCI device (bound to vfio-pci or a variant)
 *   /sys/bus/mdev/devices/UUID, or the UUID  an mdev
 *   /sys/...                                 any device directory in sysfs
 *   /dev/vfio/devices/vfioN                  the device cdev (iommufd)
 *   iommufd:SPEC                             any of the above, opened through its
 *                                            cdev and /dev/iommu
 * Without "iommufd:" the device is opened through its IOMMU group and a
 * type1 container when it has one, else through its cdev.
 */
struct devmig_client *devmig_client_open_vfio(const char *spec,
					      const struct devmig_client_config *cfg, char *err,
					      size_t errlen);

/* The prefix of an address that names a kernel VFIO device. */
#define DEVMIG_VFIO_PREFIX "vfio:"
/* addr is "vfio:SPEC" (devmig_client_open_vfio) or a vfio-user socket path. */
struct devmig_client *devmig_client_open(const char *addr, const struct devmig_client_config *cfg,
					 char *err, size_t errlen);
bool devmig_addr_is_vfio(const char *addr);

void devmig_client_close(struct devmig_client *c);
/*
 * The connection was lost (EOF, a failed send, bytes that cannot be framed):
 * every call fails with -ENOTCONN until the client reconnects. A refused
 * reply or a timeout does not break it: replies still due are dropped when
 * they come, so the next command gets its own.
 */
bool devmig_client_broken(struct devmig_client *c);
/*
 * Connect to the same socket again and negotiate VERSION as before. The
 * server dropped the old connection's DMA mappings and interrupt fds (the
 * vfio-user rule) but kept the device and its migration state.
 */
int devmig_client_reconnect(struct devmig_client *c, char *err, size_t errlen);

/* "vfio-user" or "kernel". */
const char *devmig_client_backend(struct devmig_client *c);
/* One line about the device's connection (socket, group and container, cdev). */
void devmig_client_describe(struct devmig_client *c, char *buf, size_t len);

/* Where a kernel VFIO device is (spec as for devmig_client_open_vfio). */
struct devmig_vfio_location {
	char sysfs[256];    /* its sysfs directory, symlinks resolved */
	char name[128];     /* what VFIO_GROUP_GET_DEVICE_FD takes (PCI address, mdev UUID) */
	int group;          /* IOMMU group number, -1 without one */
	char cdev[128];     /* /dev/vfio/devices/vfioN, "" without one */
	bool iommufd;       /* to be opened through the cdev and /dev/iommu */
};
int devmig_vfio_locate(const char *spec, struct devmig_vfio_location *loc, char *err,
		       size_t errlen);

/* What the server replied in VERSION (kernel: the defaults, and the chunk size). */
void devmig_client_server_caps(struct devmig_client *c, struct devmig_caps *caps);
/* True when the server accepted extension ext (DEVMIG_EXT_*). A kernel device
 * has PRECOPY_INFO natively when it offers PRE_COPY, and no other. */
bool devmig_client_has_ext(struct devmig_client *c, uint32_t ext);
/* The socket (for poll() in an event loop); kernel: the device fd. */
int devmig_client_fd(struct devmig_client *c);

int devmig_client_device_info(struct devmig_client *c, struct devmig_device_info *info);
/* Region info; *fd is the mappable fd (caller owns it) or -1. areas (may be
 * NULL) receives up to *nareas sparse-mmap areas; *nareas is set to the count. */
int devmig_client_region_info(struct devmig_client *c, uint32_t index,
			      struct devmig_region_info *info, int *fd,
			      struct devmig_sparse_mmap_area *areas, unsigned *nareas);
int devmig_client_irq_info(struct devmig_client *c, uint32_t index, struct devmig_irq_info *info);
/* SET_IRQS; fds (count of them) with VFIO_IRQ_SET_DATA_EVENTFD, else NULL. */
int devmig_client_set_irqs(struct devmig_client *c, uint32_t index, uint32_t flags,
			   uint32_t start, uint32_t count, const int *fds);
/* SET_IRQS with VFIO_IRQ_SET_DATA_BOOL: action (e.g. VFIO_IRQ_SET_ACTION_UNMASK)
 * applies to vector start + i where bools[i] is non-zero. */
int devmig_client_set_irqs_bool(struct devmig_client *c, uint32_t index, uint32_t action,
				uint32_t start, uint32_t count, const uint8_t *bools);

/* Region access of any length (split into max_data_xfer_size messages). */
int devmig_client_region_read(struct devmig_client *c, uint32_t region, uint64_t offset,
			      void *buf, size_t len);
int devmig_client_region_write(struct devmig_client *c, uint32_t region, uint64_t offset,
			       const void *buf, size_t len);
int devmig_client_reset(struct devmig_client *c);

/*
 * Map guest memory for the device. fd >= 0: the server mmaps it (fd is not
 * consumed). fd < 0: vaddr must point at the memory; the server reaches it
 * by DMA_READ/DMA_WRITE messages that this client answers.
 */
int devmig_client_dma_map(struct devmig_client *c, uint64_t iova, uint64_t size, uint32_t prot,
			  int fd, uint64_t fd_offset, void *vaddr);
int devmig_client_dma_unmap(struct devmig_client *c, uint64_t iova, uint64_t size);

/* DEVICE_FEATURE PROBE of index with GET/SET bits: 0 if supported. */
int devmig_client_feature_probe(struct devmig_client *c, uint32_t index, uint32_t ops);

/* Migration. */
int devmig_client_mig_caps(struct devmig_client *c, uint64_t *caps);
int devmig_client_get_state(struct devmig_client *c, enum devmig_state *state);
/* Kernel: the data fd an arc returns is kept until the session ends (the
 * device leaves the saving states or RESUMING, or is reset). */
int devmig_client_set_state(struct devmig_client *c, enum devmig_state state);
/* One MIG_DATA_READ of up to len bytes: returns the bytes read (fewer than
 * asked: no more data for now, or the end in STOP_COPY). Kernel: reads the
 * data fd until len bytes, its end (0) or its temporary end in PRE_COPY
 * (ENOMSG); a read that would block waits in poll() up to the timeout. */
ssize_t devmig_client_mig_read(struct devmig_client *c, void *buf, size_t len);
/*
 * Read the migration stream in chunks of chunk bytes with up to depth
 * requests in flight (the server prepares the next while one is on the
 * wire), handing each chunk to sink in order. Stops after the first short
 * reply (*ended: the end in STOP_COPY, no more for now in PRE_COPY), or
 * once limit bytes were asked for (0: no limit) and another thread is
 * waiting for the client, when the replies already asked for are in. The
 * client is held for the call: the limit bounds how long another thread's
 * command waits, without emptying the pipeline when nobody is waiting. sink returns 0 or -errno to
 * stop. Returns the bytes read or -errno. After an error the connection
 * should be closed: replies may still be on their way. Kernel: one read()
 * at a time (depth is ignored); a short read() is not the end, only 0 or
 * ENOMSG is; stops once limit bytes were read.
 */
#define DEVMIG_CLIENT_MAX_DEPTH 8u
ssize_t devmig_client_mig_read_stream(struct devmig_client *c, size_t chunk, unsigned depth,
				      uint64_t limit, bool *ended,
				      int (*sink)(void *opaque, const void *data, size_t len),
				      void *opaque);
/* MIG_DATA_WRITE of any length (split into max_data_xfer_size messages).
 * Kernel: write() on the data fd until all of it is taken. */
int devmig_client_mig_write(struct devmig_client *c, const void *buf, size_t len);
/*
 * MIG_DATA_WRITE without waiting for replies (the NO_REPLY flag): the
 * destination loads while the caller reads the next chunk. A refusal shows
 * in devmig_client_mig_status and at RESUMING->STOP. Needs the mig_status
 * extension (-ENOTSUP otherwise: use devmig_client_mig_write).
 */
int devmig_client_mig_write_nowait(struct devmig_client *c, const void *buf, size_t len);
/*
 * The mig_status extension: bytes of migration data the device accepted
 * while RESUMING, its load error (0 or -errno), and the reason for the last
 * failed migration operation. Also waits for every command sent before.
 */
int devmig_client_mig_status(struct devmig_client *c, uint64_t *bytes_loaded, int *load_error,
			     char *reason, size_t reason_len);
/* The compat extension: the device's version, accepted sources and config
 * fingerprint (devmig/compat.h); -ENOTSUP when the server does not offer it. */
struct devmig_compat_info;
int devmig_client_compat_info(struct devmig_client *c, struct devmig_compat_info *info);
/* What config space says the device is (see devmig/compat.h): read through
 * REGION_READ, so it works with any vfio-user PCI server. */
struct devmig_pci_identity;
int devmig_client_pci_identity(struct devmig_client *c, struct devmig_pci_identity *id);
/* PRE_COPY progress; -ENOTSUP when the server did not offer the extension. */
int devmig_client_precopy_info(struct devmig_client *c, uint64_t *initial, uint64_t *dirty);
/*
 * The same with the kernel's PRECOPY_INFO v2 flag: reinit is true when the
 * device has new initial data on the stream (VFIO_PRECOPY_INFO_REINIT):
 * initial_bytes starts again and must reach 0 again before STOP_COPY.
 * Never set where the kernel does not offer v2, nor over vfio-user.
 */
struct devmig_precopy_progress {
	uint64_t initial_bytes;
	uint64_t dirty_bytes;
	bool reinit;
};
int devmig_client_precopy_progress(struct devmig_client *c, struct devmig_precopy_progress *p);
int devmig_client_stop_copy_size(struct devmig_client *c, uint64_t *bytes);

/* ---- the migration data session as a file descriptor ----
 *
 * A kernel device moves migration data over the data fd its state change
 * returns; a vfio-user server with the data_fd extension (devmig's) gives a
 * pipe the same way. Either can be had here, to be polled, read, written or
 * spliced (the engine moves data fd to data fd with it). The calls above
 * (devmig_client_mig_read, _mig_write...) use it too when there is one.
 */
struct devmig_data_session {
	int fd;          /* non-blocking; the client keeps it: valid until the session ends */
	bool save;       /* a save session (PRE_COPY, STOP_COPY): read it; else RESUMING: write it */
	bool spliceable; /* a pipe: splice(2) works; else use devmig_client_data_read/_write */
	/* The bytes are a devmig stream (its core's format): every record carries
	 * its own CRC32C, which the destination device checks before it applies
	 * anything. A kernel driver's stream is opaque: no such promise. */
	bool checked;
};
/* 0 with s filled; -ENOENT when no data session is open; -EOPNOTSUPP when
 * data does not move by fd (vfio-user without the data_fd extension). */
int devmig_client_data_session(struct devmig_client *c, struct devmig_data_session *s);
/*
 * One non-blocking read of a save session: the bytes read (> 0); 0 at the
 * end of the stream (STOP_COPY) or, from a kernel driver that says so, at a
 * temporary end in PRE_COPY; -ENOMSG at a temporary end (PRE_COPY: no more
 * data for now); -EAGAIN when nothing is there yet (devmig_client_data_wait).
 */
ssize_t devmig_client_data_read(struct devmig_client *c, void *buf, size_t len);
/* One non-blocking write of a load session: the bytes taken (> 0), -EAGAIN
 * when it is full, -errno (-EPIPE: the session ended; no SIGPIPE is raised). */
ssize_t devmig_client_data_write(struct devmig_client *c, const void *buf, size_t len);
/*
 * After -EAGAIN: wait until the fd can be read (save) or written (load), up
 * to timeout_ms. 0: ready; -ETIMEDOUT; -ENOMSG: a PRE_COPY save is at a
 * temporary end: the fd is empty and the device reports no PRE_COPY data
 * left (vfio-user asks the server, whose answer counts what its pipe
 * holds; a kernel driver's read says so itself, so this only polls).
 */
int devmig_client_data_wait(struct devmig_client *c, int timeout_ms);
/*
 * The "deadline" extension (devmig_client_has_ext(c, DEVMIG_EXT_DEADLINE);
 * -ENOTSUP without it): change the state within deadline_ns of the
 * device's receipt of the request. 0 when done (res->overrun_ns says how
 * late, if it was); -ETIME when the device estimated that an arc of the
 * path would not finish in time and did not start it: res->state is where
 * the device is (unchanged when refused before the first arc) and
 * res->estimate_ns the time the path would have taken from receipt (the
 * time elapsed at the refusal plus the estimate of the arcs left: more
 * than deadline_ns); other -errno as for
 * devmig_client_set_state. res is filled on 0 and -ETIME.
 */
struct devmig_deadline_result {
	enum devmig_state state;
	uint32_t flags;        /* DEVMIG_DEADLINE_* */
	uint64_t estimate_ns;
	uint64_t elapsed_ns;   /* at the device: receipt to reply */
	uint64_t overrun_ns;
};
int devmig_client_set_state_deadline(struct devmig_client *c, enum devmig_state state,
				     uint64_t deadline_ns, struct devmig_deadline_result *res);
/* The device's estimate of each arc, its transfer rate and stop-copy size,
 * and its last deadline request's outcome (devmig_arc_estimates_path sums a
 * path). -ENOTSUP without the extension. */
int devmig_client_arc_estimates(struct devmig_client *c, struct devmig_feature_arc_estimates *est);

/*
 * The "dirty_rate" extension (-ENOTSUP without it): cap the rate, in
 * bytes/s, at which the device's state may change while in PRE_COPY (0
 * lifts it); read the cap, the rate the device measures and how long it
 * has held completions back.
 */
int devmig_client_set_dirty_rate(struct devmig_client *c, uint64_t cap);
int devmig_client_dirty_rate(struct devmig_client *c, struct devmig_feature_dirty_rate *dr);

/* DMA logging. */
int devmig_client_log_start(struct devmig_client *c, uint64_t *page_size,
			    const struct devmig_dma_logging_range *ranges, uint32_t n);
int devmig_client_log_stop(struct devmig_client *c);
/* bitmap: devmig_log_bitmap_size(length, page_size) bytes. */
int devmig_client_log_report(struct devmig_client *c, uint64_t iova, uint64_t length,
			     uint64_t page_size, uint64_t *bitmap);

/* Answer any server commands waiting on the socket (DMA_READ/WRITE), without blocking. */
int devmig_client_poll(struct devmig_client *c);

/*
 * Send raw bytes (a whole message or not: tests use it for malformed input)
 * with fds, then read one reply into reply (cap bytes). Returns the reply
 * length, or -errno (-ECONNRESET when the server hung up).
 */
ssize_t devmig_client_raw(struct devmig_client *c, const void *msg, size_t len, const int *fds,
			  unsigned nfds, void *reply, size_t cap);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_CLIENT_H */
