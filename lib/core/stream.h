/* SPDX-License-Identifier: MIT */
/*
 * The migration data stream as the core frames it. Private to the library.
 *
 * Every device's stream, whatever the variant puts in it, is wrapped by the
 * core so that it is versioned and checksummed in one place:
 *
 *   "DMIGSTRM"                      8-byte magic
 *   record*                          each: u32 type, u32 len, payload[len],
 *                                    u32 crc32c(type..payload); little-endian
 *
 *   HEADER   (1) first record: u16 format version (3), u16 reserved (0),
 *                u32 flags (0), u64 migration caps, u64 config fingerprint,
 *                u8 name_len, name, u8 version_len, version (no NULs)
 *   body records, in any order, zero or more:
 *   MEM_INFO (5) a tracker's geometry: u32 tracker, u32 chunk size, u64 size,
 *                u32 flags, u32 0
 *   MEM_DATA (6) u32 tracker, u32 chunk index, the chunk's bytes
 *   MEM_ZERO (7) u32 tracker, u32 chunk index: the chunk is all zeros
 *   BAR      (8) u32 bar, u32 0, u64 offset in the BAR, bytes of its memory
 *   VARIANT  (0x10000 + t) the variant's record of type t (1..0xffff)
 *   then:
 *   CONFIG   (3) the core's config-space snapshot (exactly one), every
 *                pending interrupt in it (pci_config.h)
 *   END      (4) u64 total body payload bytes, u32 body record count, u32 0
 *
 * Format 1 (an opaque byte stream in DEVICE (2) records) is not read: its
 * device data was not in records a variant can take. Nor is format 2, whose
 * IRQ (9) records held interrupts the device raised while stopped apart
 * from the pending bits in config space: one vector could be pending in
 * both and fire twice. Types 2 and 9 are not used again.
 *
 * Pure logic: the writer pulls records through a callback, the reader is
 * fed bytes cut anywhere and buffers at most one record. Neither does I/O
 * nor applies anything: the reader hands whole checked records to callbacks.
 */
#ifndef DEVMIG_LIB_STREAM_H
#define DEVMIG_LIB_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crc32c.h"
#include "devmig/device.h"

#define DEVMIG_STREAM_MAGIC "DMIGSTRM"
#define DEVMIG_STREAM_MAGIC_LEN 8u
#define DEVMIG_STREAM_FORMAT 3u
#define DEVMIG_STREAM_REC_HDR 8u   /* type + len */
#define DEVMIG_STREAM_REC_TRAILER 4u /* crc32c */
#define DEVMIG_STREAM_REC_OVERHEAD (DEVMIG_STREAM_REC_HDR + DEVMIG_STREAM_REC_TRAILER)
_Static_assert(DEVMIG_STREAM_REC_OVERHEAD == DEVMIG_RECORD_OVERHEAD, "public overhead");
/* Largest record payload a reader accepts (bounds the one buffered record). */
#define DEVMIG_STREAM_MAX_RECORD DEVMIG_RECORD_MAX
#define DEVMIG_STREAM_NAME_MAX 64u
#define DEVMIG_STREAM_VERSION_MAX 128u
/* The fixed part of HEADER, and the whole CONFIG + END trailer's framing. */
#define DEVMIG_STREAM_HEADER_FIXED 26u
#define DEVMIG_STREAM_END_LEN 16u

enum devmig_stream_rec {
	DEVMIG_REC_HEADER = 1,
	DEVMIG_REC_CONFIG = 3,
	DEVMIG_REC_END = 4,
	DEVMIG_REC_MEM_INFO = 5,
	DEVMIG_REC_MEM_DATA = 6,
	DEVMIG_REC_MEM_ZERO = 7,
	DEVMIG_REC_BAR = 8,
	DEVMIG_REC_VARIANT = 0x10000, /* + the variant's type */
};

/* Payload sizes of the core's fixed body records. */
#define DEVMIG_MEM_INFO_LEN 24u
#define DEVMIG_MEM_PREFIX 8u   /* MEM_DATA before the bytes; all of MEM_ZERO */
#define DEVMIG_BAR_PREFIX 16u

/* A record type that may stand between HEADER and CONFIG. */
static inline bool devmig_stream_body_type(uint32_t type)
{
	return (type >= DEVMIG_REC_MEM_INFO && type <= DEVMIG_REC_BAR) ||
	       (type > DEVMIG_REC_VARIANT && type <= DEVMIG_REC_VARIANT + DEVMIG_RECORD_TYPE_MAX);
}

struct devmig_stream_header {
	uint16_t format;
	uint64_t caps;
	uint64_t config_fingerprint;
	char name[DEVMIG_STREAM_NAME_MAX + 1];
	char version[DEVMIG_STREAM_VERSION_MAX + 1];
};

/* ---- writer ---- */

struct devmig_stream_source {
	void *opaque;
	/*
	 * Emit the next body records into s (devmig_save_record*,
	 * devmig_save_raw), stopping when devmig_save_room(s) is 0. Emitting none
	 * means no more for now, or with final the end of the body. 0 or -errno.
	 */
	int (*records)(void *opaque, struct devmig_save *s);
	/* The config snapshot, once, after the body ended. Returns its length
	 * (<= cap), or -errno. config_size gives the bound. */
	ssize_t (*config_data)(void *opaque, void *buf, size_t cap);
	size_t config_size;
};

/*
 * A body record of wire type: head (copied) then body. may_ref: body may
 * be sent from where it lies when the writer is in segment mode and final
 * (the device is stopped); otherwise it is copied now.
 */
int devmig_save_raw(struct devmig_save *s, uint32_t type, const void *head, size_t head_len,
		    const void *body, size_t body_len, bool may_ref);
/* Records emitted into s so far. */
size_t devmig_save_emitted(const struct devmig_save *s);

struct devmig_stream_writer;

struct devmig_stream_writer *devmig_stream_writer_new(const struct devmig_stream_header *hdr,
						      const struct devmig_stream_source *src);
void devmig_stream_writer_free(struct devmig_stream_writer *w);

/*
 * Produce up to cap bytes of stream into out. final=false (PRE_COPY): when
 * the device has no more records now, return what there is (possibly 0).
 * final=true (STOP_COPY): when the body ends, append CONFIG and END; after
 * END the stream is over and every further call returns 0. Records are
 * built directly in out when they fit, so their payload is copied once; one
 * that does not fit is queued and handed out over the following reads.
 * Returns bytes written or -errno (the source's error).
 */
ssize_t devmig_stream_writer_read(struct devmig_stream_writer *w, void *out, size_t cap,
				  bool final);

/*
 * Zero-copy form of devmig_stream_writer_read: the same stream, returned as
 * up to max_iov segments totalling at most cap bytes. Framing and copied
 * payloads lie in the writer's own scratch memory; with final, bodies
 * emitted with may_ref are pointed at, not copied. The segments stay valid
 * until the next call on w. As with _read, the result is shorter than cap
 * only when the body ended (final) or has no more for now. *niov is set to
 * the segments used. ref (may be NULL, else max_iov entries): ref[i] says
 * segment i is a body pointed at where it lies (device memory), not the
 * writer's scratch.
 */
struct iovec;
ssize_t devmig_stream_writer_read_iov(struct devmig_stream_writer *w, struct iovec *iov,
				      int max_iov, int *niov, size_t cap, bool final, bool *ref);

/* True once END has been fully returned. */
bool devmig_stream_writer_done(const struct devmig_stream_writer *w);

/* Bytes produced so far, and framing bytes still queued (not yet returned). */
uint64_t devmig_stream_writer_total(const struct devmig_stream_writer *w);
size_t devmig_stream_writer_pending(const struct devmig_stream_writer *w);

/* ---- reader ---- */

struct devmig_stream_sink {
	void *opaque;
	/* HEADER arrived (checked). Return 0, or -errno with why to refuse it. */
	int (*header)(void *opaque, const struct devmig_stream_header *hdr, char *why,
		      size_t whylen);
	/* One checked body record (its wire type), in order. */
	int (*record)(void *opaque, uint32_t type, const void *buf, size_t len, char *why,
		      size_t whylen);
	/* The checked CONFIG payload. */
	int (*config_data)(void *opaque, const void *buf, size_t len, char *why, size_t whylen);
};

struct devmig_stream_reader;

struct devmig_stream_reader *devmig_stream_reader_new(const struct devmig_stream_sink *sink);
void devmig_stream_reader_free(struct devmig_stream_reader *r);

/*
 * Feed the next len bytes (any segmentation, 1 byte included). Returns 0,
 * or -EINVAL once the stream is found bad (bad magic, unknown record type,
 * oversized record, CRC mismatch, record out of order, data after END, or
 * a sink refusal); the reason is kept and every later write fails the same.
 * A record reaches the sink whole, after its CRC checked.
 */
int devmig_stream_reader_write(struct devmig_stream_reader *r, const void *buf, size_t len);

/*
 * The end of input: 0 if the stream was complete (END seen, its counts
 * match, nothing after it), else -EINVAL with the reason (e.g. truncated
 * 12 bytes into record 5).
 */
int devmig_stream_reader_finish(struct devmig_stream_reader *r);

/* The reason for the first failure ("" if none). */
const char *devmig_stream_reader_error(const struct devmig_stream_reader *r);

/* Bytes accepted so far. */
uint64_t devmig_stream_reader_total(const struct devmig_stream_reader *r);

/*
 * Test and diagnostic hook. buffer_size: bytes the reader has allocated
 * for its one buffered record (never above DEVMIG_STREAM_MAX_RECORD).
 */
size_t devmig_stream_reader_buffer_size(const struct devmig_stream_reader *r);

#endif /* DEVMIG_LIB_STREAM_H */
