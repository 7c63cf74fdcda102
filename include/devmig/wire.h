/* SPDX-License-Identifier: MIT */
/*
 * devmig: the vfio-user message codec.
 *
 * Pure: no I/O, no allocation. Every field is host-endian and every struct
 * packed, as the vfio-user specification requires. Decoders validate
 * everything they can know from the bytes and the limits they are given,
 * never read outside [buf, buf+len), and return a typed error that
 * devmig_wire_errno() turns into the errno for an error reply.
 *
 * A decoded message keeps pointers into the caller's buffer for variable
 * data (region data, JSON, bitmaps, ranges): the buffer must outlive it.
 */
#ifndef DEVMIG_WIRE_H
#define DEVMIG_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libdevmig, which hides everything else. */
#pragma GCC visibility push(default)

#define DEVMIG_PACKED __attribute__((packed))

/* Protocol version spoken (the version QEMU and libvfio-user speak). */
#define DEVMIG_VFIO_USER_MAJOR 0
#define DEVMIG_VFIO_USER_MINOR 1

#define DEVMIG_HDR_SIZE 16u
#define DEVMIG_DEFAULT_MAX_MSG_FDS 1u
#define DEVMIG_DEFAULT_MAX_DATA_XFER (1u << 20)
#define DEVMIG_DEFAULT_MAX_DMA_MAPS 65535u
#define DEVMIG_DEFAULT_PGSIZES 4096ull
/* "migration" capability: dirty bitmap page size, largest bitmap in one message. */
#define DEVMIG_DEFAULT_MIG_PGSIZE 4096ull
#define DEVMIG_DEFAULT_MAX_BITMAP_SIZE (256ull << 20)
/* Largest message accepted by default: a max_data_xfer_size transfer plus headers. */
#define DEVMIG_DEFAULT_MAX_MSG_SIZE (DEVMIG_DEFAULT_MAX_DATA_XFER + 4096u)
#define DEVMIG_MULTI_DATA 8u   /* bytes of data in one REGION_WRITE_MULTI entry */
#define DEVMIG_MULTI_MAX 200u  /* entries in one REGION_WRITE_MULTI message */
#define DEVMIG_LOG_MAX_RANGES 256u /* DMA_LOGGING_START ranges, as the kernel */
#define DEVMIG_MIN_PAGE_SIZE 4096ull

enum devmig_cmd {
	DEVMIG_CMD_VERSION = 1,
	DEVMIG_CMD_DMA_MAP = 2,
	DEVMIG_CMD_DMA_UNMAP = 3,
	DEVMIG_CMD_DEVICE_GET_INFO = 4,
	DEVMIG_CMD_DEVICE_GET_REGION_INFO = 5,
	DEVMIG_CMD_DEVICE_GET_REGION_IO_FDS = 6,
	DEVMIG_CMD_DEVICE_GET_IRQ_INFO = 7,
	DEVMIG_CMD_DEVICE_SET_IRQS = 8,
	DEVMIG_CMD_REGION_READ = 9,
	DEVMIG_CMD_REGION_WRITE = 10,
	DEVMIG_CMD_DMA_READ = 11,   /* server -> client */
	DEVMIG_CMD_DMA_WRITE = 12,  /* server -> client */
	DEVMIG_CMD_DEVICE_RESET = 13,
	/* 14 was VFIO_USER_DIRTY_PAGES, withdrawn from the specification. */
	DEVMIG_CMD_REGION_WRITE_MULTI = 15,
	DEVMIG_CMD_DEVICE_FEATURE = 16,
	DEVMIG_CMD_MIG_DATA_READ = 17,
	DEVMIG_CMD_MIG_DATA_WRITE = 18,
};
#define DEVMIG_CMD_MAX 18

/* Header flags. */
#define DEVMIG_HDR_TYPE_MASK 0xfu
#define DEVMIG_HDR_TYPE_COMMAND 0x0u
#define DEVMIG_HDR_TYPE_REPLY 0x1u
#define DEVMIG_HDR_NO_REPLY (1u << 4)
#define DEVMIG_HDR_ERROR (1u << 5)

/* DMA_MAP flags. */
#define DEVMIG_DMA_READ (1u << 0)
#define DEVMIG_DMA_WRITE (1u << 1)
/* DMA_UNMAP flag (the kernel's VFIO_DMA_UNMAP_FLAG_ALL): every mapping; addr = size = 0. */
#define DEVMIG_DMA_UNMAP_ALL (1u << 1)

/* DEVICE_FEATURE flags. */
#define DEVMIG_FEATURE_MASK 0xffffu
#define DEVMIG_FEATURE_GET (1u << 16)
#define DEVMIG_FEATURE_SET (1u << 17)
#define DEVMIG_FEATURE_PROBE (1u << 18)

/* Feature indexes (the kernel's VFIO_DEVICE_FEATURE_* numbers). */
#define DEVMIG_FEATURE_MIGRATION 1u
#define DEVMIG_FEATURE_MIG_DEVICE_STATE 2u
#define DEVMIG_FEATURE_DMA_LOGGING_START 6u
#define DEVMIG_FEATURE_DMA_LOGGING_STOP 7u
#define DEVMIG_FEATURE_DMA_LOGGING_REPORT 8u
#define DEVMIG_FEATURE_MIG_DATA_SIZE 9u
/*
 * Project extensions, offered only to a client that asked for them in the
 * VERSION JSON ("devmig" member). The indexes sit far above the kernel's.
 */
#define DEVMIG_FEATURE_EXT_BASE 0xde00u
#define DEVMIG_FEATURE_PRECOPY_INFO (DEVMIG_FEATURE_EXT_BASE + 1) /* GET */
#define DEVMIG_FEATURE_MIG_STATUS (DEVMIG_FEATURE_EXT_BASE + 2)   /* GET */
#define DEVMIG_FEATURE_COMPAT (DEVMIG_FEATURE_EXT_BASE + 3)       /* GET */
/* "deadline": a state change with a deadline; the device's arc estimates. */
#define DEVMIG_FEATURE_MIG_STATE_DEADLINE (DEVMIG_FEATURE_EXT_BASE + 8) /* SET */
#define DEVMIG_FEATURE_ARC_ESTIMATES (DEVMIG_FEATURE_EXT_BASE + 9)      /* GET */
/* "dirty_rate": cap the rate the device's state changes at in PRE_COPY. */
#define DEVMIG_FEATURE_DIRTY_RATE (DEVMIG_FEATURE_EXT_BASE + 10)        /* SET, GET */

/* ---- wire structs (packed, host-endian) ---- */

struct devmig_hdr {
	uint16_t msg_id;
	uint16_t cmd;
	uint32_t msg_size; /* includes this header */
	uint32_t flags;
	uint32_t error_no;
} DEVMIG_PACKED;

struct devmig_version {
	uint16_t major;
	uint16_t minor;
	/* followed by optional NUL-terminated JSON */
} DEVMIG_PACKED;

struct devmig_dma_map {
	uint32_t argsz;
	uint32_t flags;
	uint64_t offset;
	uint64_t addr;
	uint64_t size;
} DEVMIG_PACKED;

struct devmig_dma_unmap {
	uint32_t argsz;
	uint32_t flags; /* 0, or DEVMIG_DMA_UNMAP_ALL */
	uint64_t addr;
	uint64_t size;
} DEVMIG_PACKED;

struct devmig_device_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t num_regions;
	uint32_t num_irqs;
} DEVMIG_PACKED;

struct devmig_region_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t cap_offset;
	uint64_t size;
	uint64_t offset;
} DEVMIG_PACKED;

/* struct vfio_info_cap_header */
struct devmig_info_cap_hdr {
	uint16_t id;
	uint16_t version;
	uint32_t next;
} DEVMIG_PACKED;

struct devmig_sparse_mmap_area {
	uint64_t offset;
	uint64_t size;
} DEVMIG_PACKED;

struct devmig_region_io_fds {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
} DEVMIG_PACKED;

struct devmig_sub_region_io_fd {
	uint64_t offset;
	uint64_t size;
	uint32_t fd_index;
	uint32_t type;
	uint32_t flags;
	uint32_t padding;
	uint64_t datamatch; /* or user_data for ioregionfd */
} DEVMIG_PACKED;

struct devmig_irq_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
} DEVMIG_PACKED;

struct devmig_irq_set {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t start;
	uint32_t count;
	/* DATA_BOOL: count bytes follow */
} DEVMIG_PACKED;

struct devmig_region_access {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
	/* data follows in REGION_READ replies and REGION_WRITE requests */
} DEVMIG_PACKED;

struct devmig_dma_access {
	uint64_t addr;
	uint64_t count;
	/* data follows in DMA_READ replies and DMA_WRITE requests */
} DEVMIG_PACKED;

struct devmig_write_one {
	uint64_t offset;
	uint32_t region;
	uint32_t count; /* 1..8 */
	uint8_t data[DEVMIG_MULTI_DATA];
} DEVMIG_PACKED;

struct devmig_feature {
	uint32_t argsz;
	uint32_t flags;
	/* feature data follows */
} DEVMIG_PACKED;

struct devmig_feature_migration {
	uint64_t flags; /* DEVMIG_MIG_* */
} DEVMIG_PACKED;

struct devmig_feature_mig_state {
	uint32_t device_state;
	/*
	 * Unused in vfio-user, except with the data_fd extension: in the reply to
	 * a SET, 0 (the index of the one descriptor the reply carries) when the
	 * arc opened a data session, DEVMIG_DATA_FD_NONE otherwise.
	 */
	uint32_t data_fd;
} DEVMIG_PACKED;
#define DEVMIG_DATA_FD_NONE UINT32_MAX

struct devmig_feature_dma_logging_control {
	uint64_t page_size;
	uint32_t num_ranges;
	uint32_t reserved;
	/* num_ranges x struct devmig_dma_logging_range follow */
} DEVMIG_PACKED;

struct devmig_dma_logging_range {
	uint64_t iova;
	uint64_t length;
} DEVMIG_PACKED;

struct devmig_feature_dma_logging_report {
	uint64_t iova;
	uint64_t length;
	uint64_t page_size;
	/* reply: bitmap of u64 words follows */
} DEVMIG_PACKED;

struct devmig_feature_mig_data_size {
	uint64_t stop_copy_length;
} DEVMIG_PACKED;

/* Extension: the kernel's VFIO_MIG_GET_PRECOPY_INFO, carried as a feature. */
struct devmig_feature_precopy_info {
	uint64_t initial_bytes;
	uint64_t dirty_bytes;
} DEVMIG_PACKED;

/*
 * Extension: the migration status of the device, so a client that sends
 * MIG_DATA_WRITE without waiting for replies (NO_REPLY) can learn whether
 * everything so far was accepted, and a refusal's reason in words.
 */
#define DEVMIG_MIG_STATUS_REASON 240u
struct devmig_feature_mig_status {
	uint64_t bytes_loaded; /* RESUMING: migration data accepted so far */
	int32_t load_error;    /* 0, or the -errno that stopped the load */
	uint32_t reserved;     /* 0 */
	char reason[DEVMIG_MIG_STATUS_REASON]; /* the last failed migration operation, NUL-terminated */
} DEVMIG_PACKED;

/* Extension: the device's migration identity (see devmig/compat.h). */
struct devmig_feature_compat {
	char version[128];      /* NUL-terminated */
	uint32_t naccepts;      /* <= 8 */
	uint32_t reserved;      /* 0 */
	char accepts[8][128];   /* NUL-terminated each */
	uint64_t config_fingerprint;
	uint64_t caps;
} DEVMIG_PACKED;

/*
 * Extension "deadline": SET MIG_STATE_DEADLINE changes the migration state
 * as SET MIG_DEVICE_STATE does, within deadline_ns of the request's
 * receipt. Before each arc of the path the device estimates what is left
 * of it (the arcs' fixed costs, and for the arc into STOP_COPY its
 * stop-copy data at the rate its data was read so far: that arc's estimate
 * covers reading the stream out). If it cannot finish in time the request
 * fails with ETIME and the arc is not started: refused before the first
 * arc, nothing changed. An arc started always completes, late or not.
 *
 * The request carries at least the first 16 bytes (device_state, flags 0,
 * deadline_ns); more is ignored. The reply to a SET is not an echo: it is
 * the whole struct, with the outcome. A refusal is an error reply (errno
 * ETIME) whose payload is the same: struct devmig_feature (the request's
 * flags) then this struct with DEVMIG_DEADLINE_REFUSED; other errors are
 * plain error replies.
 */
#define DEVMIG_DEADLINE_REFUSED (1u << 0) /* ETIME: an arc did not fit; not started */
#define DEVMIG_DEADLINE_OVERRUN (1u << 1) /* finished overrun_ns after the deadline */
#define DEVMIG_DEADLINE_PARTIAL (1u << 2) /* no transfer rate yet: data left out of estimate_ns */
/* ARC_ESTIMATES last_*: the STOP_COPY stream was read out (over a data fd:
 * its last bytes were put into the pipe, which holds at most its size). */
#define DEVMIG_DEADLINE_DRAINED (1u << 3)
/* data_fd extension: the reply carries the data fd of the session the
 * change opened (SCM_RIGHTS, the message's only descriptor). */
#define DEVMIG_DEADLINE_DATA_FD (1u << 4)
#define DEVMIG_DEADLINE_FLAGS 0x1fu
struct devmig_feature_mig_deadline {
	uint32_t device_state; /* request: the state asked for; reply: where the device is */
	uint32_t flags;        /* request: 0; reply: DEVMIG_DEADLINE_* */
	uint64_t deadline_ns;  /* from receipt of the request; echoed */
	uint64_t estimate_ns;  /* reply: the estimate of the path (refused: the time from receipt
				* it would have taken: elapsed at the refusal plus the estimate
				* of the arcs left, which exceeds deadline_ns) */
	uint64_t elapsed_ns;   /* reply: receipt to reply */
	uint64_t overrun_ns;   /* reply: how late it finished (0: in time) */
} DEVMIG_PACKED;
#define DEVMIG_MIG_DEADLINE_REQ_LEN 16u /* what a request must carry */

/*
 * Extension "deadline": GET ARC_ESTIMATES, the device's estimate of every
 * primitive arc of its state machine now (narcs entries, the rest zero),
 * and the outcome of its last deadline request. A path's estimate is the
 * sum of its arcs' (devmig_fsm_path_cost).
 */
#define DEVMIG_ARC_EST_MAX 24u
struct devmig_arc_estimate {
	uint8_t from, to;  /* a primitive arc */
	uint16_t flags;    /* DEVMIG_DEADLINE_PARTIAL */
	uint32_t reserved; /* 0 */
	uint64_t ns;
} DEVMIG_PACKED;
struct devmig_feature_arc_estimates {
	uint64_t rate;            /* bytes/s its data was read at (0: not measured yet) */
	uint64_t stop_copy_bytes; /* the stop-copy size the estimates use */
	uint32_t narcs;           /* <= DEVMIG_ARC_EST_MAX */
	uint32_t reserved;        /* 0 */
	struct devmig_arc_estimate arcs[DEVMIG_ARC_EST_MAX];
	/* The last deadline request: its target, outcome (DEVMIG_DEADLINE_*,
	 * DRAINED once a STOP_COPY target was read out), and times: for a
	 * STOP_COPY target, elapsed and overrun run to the end of the stream. */
	uint32_t last_state;
	uint32_t last_flags;
	uint64_t last_deadline_ns;
	uint64_t last_estimate_ns;
	uint64_t last_elapsed_ns;
	uint64_t last_overrun_ns;
} DEVMIG_PACKED;

/*
 * The estimate of the path from -> to (the state machine's, for a device
 * with caps) from a device's ARC_ESTIMATES: the sum of its arcs'. *partial
 * when some arc's estimate is partial or missing from the table. 0, or
 * -EINVAL when the state machine has no such path.
 */
int devmig_arc_estimates_path(const struct devmig_feature_arc_estimates *est, uint32_t from,
			      uint32_t to, uint64_t caps, uint64_t *ns, bool *partial);

/*
 * Extension "dirty_rate": SET caps the rate (bytes/s) at which the device's
 * state may change while it is in PRE_COPY (0 lifts the cap; the request
 * carries at least cap, the reply echoes it). The device honours it by
 * slowing what changes its state (memblk delays its WRITE completions):
 * the guest sees slower I/O, never an error. The cap lasts until lifted,
 * the device is reset or the client disconnects. GET reports it with the
 * rate the device measures.
 */
#define DEVMIG_DIRTY_RATE_ACTIVE (1u << 0) /* a cap is set and the device is in PRE_COPY */
struct devmig_feature_dirty_rate {
	uint64_t cap;          /* bytes/s; 0: none */
	uint64_t measured;     /* GET: bytes/s of state the device changed, recently */
	uint64_t throttled_ns; /* GET: time the device has held completions back, in total */
	uint32_t flags;        /* GET: DEVMIG_DIRTY_RATE_ACTIVE */
	uint32_t reserved;     /* 0 */
} DEVMIG_PACKED;

/*
 * MIG_DATA_READ replies: argsz = 8 + size and size bytes of data. The
 * deployed practice (libvfio-user) pads the reply on the wire to the size
 * asked for (msg_size = 16 + 8 + requested); the padding follows the data
 * and means nothing. A devmig server pads unless the client negotiated
 * the exact_mig_read extension.
 */
struct devmig_mig_data {
	uint32_t argsz;
	uint32_t size;
	/* data follows in MIG_DATA_READ replies and MIG_DATA_WRITE requests */
} DEVMIG_PACKED;

/* ---- errors ---- */

enum devmig_wire_err {
	DEVMIG_WIRE_OK = 0,
	DEVMIG_WIRE_E_SHORT,       /* fewer bytes than the layout needs          -> EINVAL */
	DEVMIG_WIRE_E_MSG_SIZE,    /* msg_size < 16, or not the bytes present    -> EINVAL */
	DEVMIG_WIRE_E_TOO_BIG,     /* msg_size above the configured maximum      -> E2BIG */
	DEVMIG_WIRE_E_HDR_FLAGS,   /* unknown type, reserved bits, reply flags on a command -> EINVAL */
	DEVMIG_WIRE_E_UNKNOWN_CMD, /* command number not in the table          -> ENOSYS */
	DEVMIG_WIRE_E_DIRECTION,   /* a server->client command sent to a server or vice versa -> EINVAL */
	DEVMIG_WIRE_E_ARGSZ,       /* argsz inconsistent with the payload        -> EINVAL */
	DEVMIG_WIRE_E_FIELD,       /* a flags/reserved/must-be-zero field is wrong -> EINVAL */
	DEVMIG_WIRE_E_INDEX,       /* region or IRQ index out of range           -> EINVAL */
	DEVMIG_WIRE_E_COUNT,       /* count 0, or above max_data_xfer_size       -> EINVAL */
	DEVMIG_WIRE_E_OVERFLOW,    /* offset+count or iova+length wraps          -> EOVERFLOW */
	DEVMIG_WIRE_E_ALIGN,       /* address/length not aligned to the page size -> EINVAL */
	DEVMIG_WIRE_E_OVERLAP,     /* DMA logging ranges overlap                 -> EINVAL */
	DEVMIG_WIRE_E_PAGE_SIZE,   /* page size not a power of two >= 4096       -> EINVAL */
	DEVMIG_WIRE_E_TOO_MANY,    /* too many ranges / entries                  -> E2BIG */
	DEVMIG_WIRE_E_FEATURE,     /* unknown device feature index               -> ENOTTY */
	DEVMIG_WIRE_E_FEATURE_OP,  /* GET/SET/PROBE combination not valid for it -> EINVAL */
	DEVMIG_WIRE_E_FDS,         /* missing or surplus file descriptors        -> EINVAL */
	DEVMIG_WIRE_E_JSON,        /* VERSION JSON malformed or mistyped         -> EINVAL */
	DEVMIG_WIRE_E_VERSION,     /* version/capability negotiation failed      -> ENOTSUP */
	DEVMIG_WIRE_E_NOSPC,       /* encode: output buffer too small            -> ENOSPC */
	DEVMIG_WIRE_E_STATE,       /* device_state value out of range            -> EINVAL */
};

/* The errno for an error reply (positive, e.g. EINVAL). */
int devmig_wire_errno(enum devmig_wire_err err);
/* One short sentence naming the problem. */
const char *devmig_wire_strerror(enum devmig_wire_err err);
/* "REGION_READ" for 9; "UNKNOWN" otherwise. */
const char *devmig_cmd_name(uint32_t cmd);

/* ---- limits a decoder validates against ---- */

/* Which side decodes: a server accepts only client->server commands, a client the reverse. */
enum devmig_wire_role {
	DEVMIG_WIRE_ROLE_ANY = 0,
	DEVMIG_WIRE_ROLE_SERVER,
	DEVMIG_WIRE_ROLE_CLIENT,
};

struct devmig_wire_limits {
	enum devmig_wire_role role;
	uint32_t max_msg_size;       /* whole message, header included */
	uint32_t max_data_xfer_size; /* REGION/DMA/MIG_DATA counts */
	uint32_t max_msg_fds;        /* fds accepted with one message */
	uint32_t num_regions;        /* region indexes must be below this */
	uint32_t num_irqs;           /* IRQ indexes must be below this */
	uint64_t dma_pgsize;         /* DMA_MAP alignment (a power of two >= 4096) */
};

/* Defaults of the specification, role ANY; num_regions/num_irqs are set to 9 and 5 (PCI). */
void devmig_wire_limits_default(struct devmig_wire_limits *lim);

/* ---- decoded messages ---- */

/*
 * One message, command or reply. The union member used is the one named
 * after hdr.cmd; its fields are the request's or the reply's according to
 * hdr.flags & DEVMIG_HDR_TYPE_MASK. An error reply (DEVMIG_HDR_ERROR) uses
 * no member: its errno is hdr.error_no, and a payload some peers send with
 * it (libvfio-user echoes the request) is ignored; but a DEVICE_FEATURE
 * error reply whose payload is a valid MIG_STATE_DEADLINE SET reply (the
 * "deadline" extension's refusal) has it decoded into u.feature.
 */
struct devmig_msg {
	struct devmig_hdr hdr;
	union {
		struct {
			struct devmig_version v;
			const char *json; /* NUL-terminated within the buffer, or NULL */
			size_t json_len;  /* without the NUL */
		} version;
		struct devmig_dma_map dma_map;     /* request; reply has no payload */
		struct devmig_dma_unmap dma_unmap; /* request and echoed reply */
		struct devmig_device_info device_info;
		struct {
			struct devmig_region_info info;
			const uint8_t *caps; /* reply: capability chain bytes after the struct */
			size_t caps_len;
		} region_info;
		struct {
			struct devmig_region_io_fds io;
			const uint8_t *subs; /* reply: count x struct devmig_sub_region_io_fd */
			size_t subs_len;
		} io_fds;
		struct devmig_irq_info irq_info;
		struct {
			struct devmig_irq_set set;
			const uint8_t *bools; /* DATA_BOOL: set.count bytes, else NULL */
		} irq_set;
		struct {
			struct devmig_region_access acc;
			const uint8_t *data; /* REGION_READ reply / REGION_WRITE request */
		} region;
		struct {
			struct devmig_dma_access acc;
			const uint8_t *data; /* DMA_READ reply / DMA_WRITE request */
		} dma;
		struct {
			uint64_t wr_cnt;
			const uint8_t *wrs; /* request: wr_cnt x struct devmig_write_one */
		} write_multi;
		struct {
			struct devmig_feature f;
			uint32_t index; /* f.flags & DEVMIG_FEATURE_MASK */
			const uint8_t *data; /* feature data as sent; NULL when none */
			size_t data_len;
			union {
				struct devmig_feature_migration migration;
				struct devmig_feature_mig_state mig_state;
				struct {
					struct devmig_feature_dma_logging_control ctl;
					const uint8_t *ranges; /* ctl.num_ranges x range */
				} log_start;
				struct {
					struct devmig_feature_dma_logging_report rep;
					const uint8_t *bitmap; /* reply only */
					size_t bitmap_len;
				} log_report;
				struct devmig_feature_mig_data_size data_size;
				struct devmig_feature_precopy_info precopy;
				struct devmig_feature_mig_status mig_status;
				struct devmig_feature_compat compat;
				struct devmig_feature_mig_deadline deadline;
				struct devmig_feature_arc_estimates estimates;
				struct devmig_feature_dirty_rate dirty_rate;
			} u; /* filled for the features above when their data is present */
		} feature;
		struct {
			struct devmig_mig_data md;
			const uint8_t *data; /* MIG_DATA_READ reply / MIG_DATA_WRITE request */
			size_t pad;          /* MIG_DATA_READ reply: bytes of padding after the data */
		} mig_data;
	} u;
};

/*
 * Header: validates len >= 16, msg_size >= 16 and <= lim->max_msg_size,
 * the type (command or reply), that no reserved flag bit is set, and that a
 * command carries no ERROR flag. It does not need the body: a reader calls
 * it on the first 16 bytes to learn how many more to read. It also refuses
 * a reply with NO_REPLY and a command with error_no != 0. lim may be NULL
 * (devmig_wire_limits_default).
 */
enum devmig_wire_err devmig_decode_hdr(const void *buf, size_t len,
				       const struct devmig_wire_limits *lim,
				       struct devmig_hdr *out);

/*
 * A whole message, header included: len must equal msg_size. nfds is the
 * number of file descriptors that arrived with it; the decoder checks it
 * against what the command allows (DMA_MAP 0 or 1; SET_IRQS with
 * DATA_EVENTFD 0 or count; others 0). For replies the same checks apply to
 * the reply layout (REGION_INFO with MMAP: up to 1 fd, IO_FDS: >= 1).
 *
 * lim may be NULL (defaults). out is zeroed first; when the header itself
 * was valid, out->hdr holds it even if the body is refused, so a server can
 * answer with devmig_encode_error_reply(). Pointers for variable parts are
 * NULL when the part is empty. DEVMIG_FEATURE_PRECOPY_INFO is accepted here
 * whatever was negotiated: the server checks caps.ext before serving it.
 *
 * Liberal where the kernel and the specification are, strict where safety
 * is: DEVICE_FEATURE data must hold what the feature needs and anything
 * beyond is ignored (the kernel's vfio_check_feature rule; e.g.
 * DMA_LOGGING_STOP carrying the START control structure, a GET carrying
 * room for its answer); a MIG_DATA_READ reply may be padded (see struct
 * devmig_mig_data); an error reply may carry a payload. Every bound,
 * overflow and count is still checked on what is used.
 */
enum devmig_wire_err devmig_decode(const void *buf, size_t len, unsigned nfds,
				   const struct devmig_wire_limits *lim,
				   struct devmig_msg *out);

/*
 * The mirror of devmig_encode_head, for a receiver that lets bulk data land
 * where it is wanted: buf holds the first len bytes of a message of msg_len
 * bytes, exactly the header and the fixed part of a message that ends in
 * bulk data (REGION_READ/DMA_READ/MIG_DATA_READ replies, REGION_WRITE/
 * DMA_WRITE/MIG_DATA_WRITE commands); the rest is that data, delivered
 * elsewhere. Everything is validated as devmig_decode would, lengths
 * included; the data pointer is NULL. len == msg_len is devmig_decode.
 */
enum devmig_wire_err devmig_decode_head(const void *buf, size_t len, size_t msg_len,
					unsigned nfds, const struct devmig_wire_limits *lim,
					struct devmig_msg *out);

/*
 * Number of fds a decoded message can carry (helper for servers): an upper
 * bound computed from the message, not the count received. DMA_MAP
 * request: 1 (0 was also accepted); SET_IRQS request with DATA_EVENTFD:
 * set.count (0 was also accepted: de-assign); REGION_INFO reply with MMAP:
 * 1; IO_FDS reply: the number of entries present; a SET MIG_DEVICE_STATE
 * reply: 1 (0 was also accepted); everything else 0.
 */
unsigned devmig_msg_fds_expected(const struct devmig_msg *m);

/* Entry i of a decoded REGION_WRITE_MULTI request (i < wr_cnt), copied out aligned. */
void devmig_write_multi_entry(const struct devmig_msg *m, uint64_t i, struct devmig_write_one *out);

/* Range i of a decoded DMA_LOGGING_START (i < num_ranges), copied out aligned. */
void devmig_log_range(const struct devmig_msg *m, uint32_t i, struct devmig_dma_logging_range *out);

/* Bytes of bitmap a DMA_LOGGING_REPORT of (length, page_size) returns: whole u64 words. */
uint64_t devmig_log_bitmap_size(uint64_t length, uint64_t page_size);

/* ---- encoding ---- */

/*
 * Encode m (header fields msg_id, cmd, flags, error_no are taken from m->hdr;
 * msg_size is computed). Variable parts are taken from the pointers in the
 * union member for hdr.cmd. Returns the bytes written, or 0 with *err set
 * (DEVMIG_WIRE_E_NOSPC when cap is too small).
 *
 * Fields are written as given (argsz included); only what decides the length
 * is checked: a NULL pointer with a non-zero length, IO_FDS subs_len neither 0
 * nor count * 40, a REPORT bitmap_len other than devmig_log_bitmap_size()
 * (DEVMIG_WIRE_E_FIELD); header flags the decoder refuses
 * (DEVMIG_WIRE_E_HDR_FLAGS); an unknown command; over 4 GiB (E_TOO_BIG).
 * A reply with DEVMIG_HDR_ERROR is encoded as the header alone.
 *
 * DEVICE_FEATURE data: when feature.data (or data_len) is set, those raw
 * bytes are the data. Otherwise the typed member for the operation and
 * direction is the source: SET MIG_DEVICE_STATE (request and reply):
 * u.mig_state; SET DMA_LOGGING_START (request and reply): u.log_start.ctl
 * then ctl.num_ranges ranges from u.log_start.ranges; GET DMA_LOGGING_REPORT
 * request: u.log_report.rep; GET replies: u.migration, u.mig_state,
 * u.data_size, u.precopy, u.mig_status, u.compat, u.estimates,
 * u.dirty_rate, or u.log_report.rep then bitmap/bitmap_len; SET
 * MIG_STATE_DEADLINE: u.deadline (a request its first 16 bytes, a reply
 * all of it); SET DIRTY_RATE (request and echo): u.dirty_rate.cap. Any
 * other case (PROBE, LOG_STOP, other GET requests) has no data.
 * feature.index is output only (the encoder uses f.flags). decode(encode(m))
 * reproduces every field; with a typed source it also sets data/data_len.
 */
size_t devmig_encode(void *buf, size_t cap, const struct devmig_msg *m,
		     enum devmig_wire_err *err);

/*
 * Like devmig_encode, but leaves out the trailing bulk data (region, DMA,
 * migration data, DMA log bitmap) so the caller can send it from where it
 * lies (writev) without a copy. msg_size in the written header counts it.
 * *tail and *tail_len say what to send after the returned bytes.
 * The bulk data is not read, so its pointer may be NULL (only the length
 * in the fixed part counts): a sender may gather it from several places.
 * A padded MIG_DATA_READ reply (mig_data.pad) counts its padding in
 * msg_size too: the caller sends that many zero bytes after the tail.
 */
size_t devmig_encode_head(void *buf, size_t cap, const struct devmig_msg *m,
			  const void **tail, size_t *tail_len,
			  enum devmig_wire_err *err);

/* An error reply to req_hdr: the header alone, ERROR flag and errno set. */
void devmig_encode_error_reply(struct devmig_hdr *out, const struct devmig_hdr *req_hdr,
			       int error_no);

/* ---- VERSION capabilities (JSON via json-c) ---- */

/* Project extensions, negotiated in the "devmig" member of the capabilities. */
#define DEVMIG_EXT_PRECOPY_INFO (1u << 0) /* "precopy_info": true */
#define DEVMIG_EXT_MIG_STATUS (1u << 1)   /* "mig_status": true */
#define DEVMIG_EXT_COMPAT (1u << 2)       /* "compat": true */
/* "exact_mig_read": true: MIG_DATA_READ replies carry only the data, unpadded. */
#define DEVMIG_EXT_EXACT_MIG_READ (1u << 3)
/*
 * "data_fd": true: migration data moves over a file descriptor, as with the
 * kernel's VFIO migration: the reply to a SET MIG_DEVICE_STATE whose arc
 * opens a data session carries one (a pipe; see README "the data fd"), and
 * MIG_DATA_READ/WRITE are refused.
 */
#define DEVMIG_EXT_DATA_FD (1u << 4)
#define DEVMIG_EXT_DEADLINE (1u << 8)     /* "deadline": true */
#define DEVMIG_EXT_DIRTY_RATE (1u << 9)   /* "dirty_rate": true */
#define DEVMIG_EXT_ALL (DEVMIG_EXT_PRECOPY_INFO | DEVMIG_EXT_MIG_STATUS | DEVMIG_EXT_COMPAT | \
			DEVMIG_EXT_EXACT_MIG_READ | DEVMIG_EXT_DATA_FD | DEVMIG_EXT_DEADLINE | \
			DEVMIG_EXT_DIRTY_RATE)

struct devmig_caps {
	uint32_t max_msg_fds;        /* default 1 */
	uint32_t max_data_xfer_size; /* default 1 MiB */
	uint32_t max_dma_maps;       /* default 65535 */
	uint64_t pgsizes;            /* default 4096 */
	bool write_multiple;         /* default false */
	bool twin_socket;            /* twin_socket.supported, default false (never enabled here) */
	uint32_t ext;                /* DEVMIG_EXT_* offered/accepted */
	/*
	 * "migration": {"pgsize": n, "max_bitmap_size": n}. Present when the
	 * sender supports migration; absent means it does not. pgsize is the
	 * dirty bitmap's page size (a power of two >= 4096, default 4096),
	 * max_bitmap_size the largest dirty bitmap in one message (bytes,
	 * default 256 MiB); both meaningful only when migration is set.
	 */
	bool migration;
	uint64_t mig_pgsize;
	uint64_t mig_max_bitmap_size;
};

/* The specification's defaults (what an absent member means). */
void devmig_caps_default(struct devmig_caps *caps);

/*
 * Parse a VERSION JSON text of json_len bytes (the NUL not counted; NULL or 0
 * means no JSON: all defaults). Unknown members are ignored at every level;
 * known members of the wrong type or out of range (max_data_xfer_size 0,
 * pgsizes without a power-of-two >= 4096 bit, negative numbers) are refused.
 */
enum devmig_wire_err devmig_caps_parse(const char *json, size_t json_len,
				       struct devmig_caps *out);

/* Serialise caps as VERSION JSON (NUL-terminated). Returns strlen, or 0 if cap too small. */
size_t devmig_caps_format(const struct devmig_caps *caps, char *buf, size_t cap);

/*
 * Server side: the capabilities to reply with, given what the client
 * proposed and what this server supports: booleans and extensions are the
 * intersection; numeric limits are the server's own (each side states what
 * it can receive); pgsizes is the intersection, refused if empty.
 * migration is in the reply when both have it, with the smaller pgsize and
 * the smaller max_bitmap_size.
 */
enum devmig_wire_err devmig_caps_negotiate(const struct devmig_caps *proposed,
					   const struct devmig_caps *supported,
					   struct devmig_caps *reply);

/*
 * Client side: is the server's reply acceptable? The reply's major must
 * equal ours, its minor must not be above ours, and its pgsizes must share
 * a size with what we proposed. Members we did not propose (a boolean, an
 * extension, a page size, an unknown member) are not an error: the client
 * uses only what both said (devmig_caps_usable). A migration member is
 * taken as information even if we did not propose it (libvfio-user servers
 * always send it).
 */
enum devmig_wire_err devmig_version_check_reply(uint16_t our_major, uint16_t our_minor,
						const struct devmig_caps *proposed,
						uint16_t reply_major, uint16_t reply_minor,
						const struct devmig_caps *reply);

/* What a client may use after an accepted reply: the reply's limits, and its
 * booleans, extensions and pgsizes where we proposed them too. */
void devmig_caps_usable(const struct devmig_caps *proposed, const struct devmig_caps *reply,
			struct devmig_caps *usable);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_WIRE_H */
