/* SPDX-License-Identifier: MIT */
/*
 * The migration channel between the engine's two halves (source and
 * destination, over a socket), and the checkpoint file format (the same
 * frames, written to a file). Pure logic: no I/O.
 *
 *   "DMIGCHAN"                        8-byte magic, once, at the start
 *   frame*: u32 type, u32 dev, u64 len, payload[len], u32 crc32c(all before)
 *
 * All little-endian. dev is the device's index (0 for frames about none).
 */
#ifndef DEVMIG_LIB_CHANNEL_H
#define DEVMIG_LIB_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmig/compat.h"

#define DEVMIG_CHAN_MAGIC "DMIGCHAN"
#define DEVMIG_CHAN_MAGIC_LEN 8u
#define DEVMIG_CHAN_HDR 16u
#define DEVMIG_CHAN_TRAILER 4u
#define DEVMIG_CHAN_VERSION 2u
/* Largest payload accepted: a device data chunk or a run of guest pages. */
#define DEVMIG_CHAN_MAX_PAYLOAD (8u << 20)
#define DEVMIG_CHAN_MAX_DEVICES 64u
/*
 * HELLO: u32 version, u32 n, u64 guest size, then per device: u64 config
 * fingerprint; in version 2 the PCI identity (u8 known, u8 revision, u16
 * vendor, u16 device, u16 subsystem vendor, u16 subsystem device, u32 class);
 * u8 len, the version string. Version 1 (no identity) is still read.
 */
#define DEVMIG_CHAN_HELLO_FIXED 16u
#define DEVMIG_CHAN_HELLO_ID 14u
#define DEVMIG_CHAN_HELLO_DEV_V1(len) (9u + (len))
#define DEVMIG_CHAN_HELLO_DEV(len) (9u + DEVMIG_CHAN_HELLO_ID + (len))

/* One device as HELLO describes it. */
struct devmig_chan_hello_dev {
	uint64_t fingerprint;              /* config fingerprint (compat extension), or 0 */
	char version[DEVMIG_VERSION_MAX];  /* "": the source has no compat extension */
	bool id_known;                     /* id was read from its config space */
	struct devmig_pci_identity id;
};

/*
 * HELLO's payload for n devices into out (cap bytes): its length, or 0 when
 * it does not fit or n is above DEVMIG_CHAN_MAX_DEVICES.
 */
size_t devmig_chan_put_hello(uint8_t *out, size_t cap, uint32_t n, uint64_t guest_size,
			     const struct devmig_chan_hello_dev *devs);
/*
 * Parse a HELLO payload of len bytes (version 2, or 1: identities unknown)
 * into devs (room for DEVMIG_CHAN_MAX_DEVICES). 0, or -EPROTO with why: an
 * unknown version, too many devices, a device cut short, a version string
 * of DEVMIG_VERSION_MAX bytes or more, an identity flag other than 0 or 1,
 * bytes past the last device.
 */
int devmig_chan_parse_hello(const uint8_t *p, uint64_t len, uint32_t *n, uint64_t *guest_size,
			    struct devmig_chan_hello_dev *devs, char *why, size_t wl);

enum devmig_chan_type {
	/* source -> destination */
	DEVMIG_CHAN_HELLO = 1,        /* u32 version, u32 ndevs, u64 guest size, per device
				       * (see DEVMIG_CHAN_HELLO_DEV) */
	DEVMIG_CHAN_DEV_DATA = 2,     /* migration stream bytes of device dev */
	DEVMIG_CHAN_MEM = 3,          /* u64 guest offset, then the bytes */
	DEVMIG_CHAN_INITIAL_DONE = 4, /* device dev's initial data has all been sent */
	DEVMIG_CHAN_SYNC = 5,         /* u32 what: reply when everything before is applied */
	DEVMIG_CHAN_COMMIT = 6,       /* every device: RESUMING -> STOP */
	DEVMIG_CHAN_RUN = 7,          /* every device: -> RUNNING_P2P, then all -> RUNNING */
	DEVMIG_CHAN_ABORT = 8,        /* reason text: reset the destination devices */
	DEVMIG_CHAN_END = 9,          /* u64 frames before this one: the file/stream is whole */
	/* destination -> source */
	DEVMIG_CHAN_ACK = 16,         /* u32 for-type, i32 status (0 or -errno), u32 dev, reason */
};

struct devmig_chan_frame {
	uint32_t type;
	uint32_t dev;
	uint64_t len;
	const uint8_t *payload; /* valid until the next call on the reader */
};

/* Header for a frame of len payload bytes; the trailer is the crc of header+payload. */
void devmig_chan_put_header(uint8_t hdr[DEVMIG_CHAN_HDR], uint32_t type, uint32_t dev, uint64_t len);
uint32_t devmig_chan_crc(const uint8_t hdr[DEVMIG_CHAN_HDR], const void *payload, uint64_t len);

/*
 * Incremental reader: fed bytes cut anywhere, yields whole checked frames.
 * Buffers at most one frame.
 */
struct devmig_chan_reader;
struct devmig_chan_reader *devmig_chan_reader_new(void);
void devmig_chan_reader_free(struct devmig_chan_reader *r);
/*
 * Consume bytes from buf[0..len) until one frame is complete or the bytes
 * run out. Returns the bytes consumed (>= 0) and sets *have when *f holds a
 * frame, or -EINVAL with a reason (bad magic, oversized or unknown frame,
 * CRC mismatch). After a failure every call fails the same way.
 */
long devmig_chan_reader_feed(struct devmig_chan_reader *r, const void *buf, size_t len,
			     struct devmig_chan_frame *f, bool *have);
const char *devmig_chan_reader_error(const struct devmig_chan_reader *r);
/* True when no partial frame is buffered (a clean place for the input to end). */
bool devmig_chan_reader_idle(const struct devmig_chan_reader *r);

const char *devmig_chan_type_name(uint32_t type);

#endif /* DEVMIG_LIB_CHANNEL_H */
