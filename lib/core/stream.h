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
 *   HEADER  (1) first record: u16 format version, u16 reserved (0), u32 flags (0),
 *               u64 migration caps, u64 config fingerprint,
 *               u8 name_len, name, u8 version_len, version (no NULs)
 *   DEVICE  (2) a piece of the variant's data (zero or more records)
 *   CONFIG  (3) the core's config-space snapshot (exactly one, after all DEVICE)
 *   END     (4) u64 total DEVICE payload bytes, u32 DEVICE record count, u32 0
 *
 * Pure logic: the writer pulls device bytes through a callback, the reader
 * is fed bytes cut anywhere and buffers at most one record. Neither does
 * I/O nor applies anything: the reader hands checked payloads to callbacks.
 */
#ifndef DEVMIG_LIB_STREAM_H
#define DEVMIG_LIB_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crc32c.h"

#define DEVMIG_STREAM_MAGIC "DMIGSTRM"
#define DEVMIG_STREAM_MAGIC_LEN 8u
#define DEVMIG_STREAM_FORMAT 1u
#define DEVMIG_STREAM_REC_HDR 8u   /* type + len */
#define DEVMIG_STREAM_REC_TRAILER 4u /* crc32c */
#define DEVMIG_STREAM_REC_OVERHEAD (DEVMIG_STREAM_REC_HDR + DEVMIG_STREAM_REC_TRAILER)
/* Largest record payload a reader accepts (bounds the one buffered record). */
#define DEVMIG_STREAM_MAX_RECORD (16u << 20)
#define DEVMIG_STREAM_NAME_MAX 64u
#define DEVMIG_STREAM_VERSION_MAX 128u

enum devmig_stream_rec {
	DEVMIG_REC_HEADER = 1,
	DEVMIG_REC_DEVICE = 2,
	DEVMIG_REC_CONFIG = 3,
	DEVMIG_REC_END = 4,
};

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
	/* Next device bytes into buf (<= cap). 0: none now / end; -errno on failure. */
	ssize_t (*device_data)(void *opaque, void *buf, size_t cap);
	/* The config snapshot, once, after the device data ended. Returns its
	 * length (<= cap), or -errno. config_size gives the bound. */
	ssize_t (*config_data)(void *opaque, void *buf, size_t cap);
	size_t config_size;
	/* Optional, for devmig_stream_writer_read_iov: copy the next device
	 * bytes into buf (*data = buf) or point *data at memory that stays
	 * unchanged until the writer is freed. Same returns as device_data. */
	ssize_t (*device_ref)(void *opaque, void *buf, size_t cap, const void **data);
};

struct devmig_stream_writer;

struct devmig_stream_writer *devmig_stream_writer_new(const struct devmig_stream_header *hdr,
						      const struct devmig_stream_source *src);
void devmig_stream_writer_free(struct devmig_stream_writer *w);

/*
 * Produce up to cap bytes of stream into out. final=false (PRE_COPY): when
 * the device has no more data now, return what there is (possibly 0).
 * final=true (STOP_COPY): when the device data ends, append CONFIG and END;
 * after END the stream is over and every further call returns 0.
 * Records are built directly in out when they fit, so the device copies its
 * data once. Returns bytes written or -errno (the source's error).
 */
ssize_t devmig_stream_writer_read(struct devmig_stream_writer *w, void *out, size_t cap,
				  bool final);

/*
 * Zero-copy form of devmig_stream_writer_read for a stopped device: the
 * same stream, returned as up to max_iov segments totalling at most cap
 * bytes. Framing and small pieces lie in the writer's own scratch memory,
 * device memory referenced by device_ref is pointed at, not copied. The
 * segments stay valid until the next call on w. As with _read, the result
 * is shorter than cap only when the device data ended (final) or has no
 * more for now. *niov is set to the segments used.
 */
struct iovec;
ssize_t devmig_stream_writer_read_iov(struct devmig_stream_writer *w, struct iovec *iov,
				      int max_iov, int *niov, size_t cap, bool final);

/*
 * How long the whole stream of a device with dev_bytes of data will be, at
 * most: the magic, HEADER (its name and version from hdr), the DEVICE
 * records, CONFIG of config_size and END. How many DEVICE records carry the
 * data depends on the readers' sizes and on the pieces the device hands
 * out; this assumes each record carries at least 1 KiB on average, as when
 * the device fills the room it is given (a referenced piece and its copied
 * framing count as one), whatever the reads.
 */
uint64_t devmig_stream_size_bound(const struct devmig_stream_header *hdr, uint64_t dev_bytes,
				  size_t config_size);

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
	/* One checked DEVICE payload, in order. */
	int (*device_data)(void *opaque, const void *buf, size_t len, char *why, size_t whylen);
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
