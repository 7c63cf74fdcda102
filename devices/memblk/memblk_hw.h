/* SPDX-License-Identifier: MIT */
/*
 * memblk: the guest-visible interface (registers, rings, commands).
 *
 * Shared by the device (memblk.c), the guest driver library
 * (memblk_guest.c) and the stream code (memblk_stream.c). Everything is
 * little-endian; README.md in this directory documents it in prose.
 */
#ifndef DEVMIG_MEMBLK_HW_H
#define DEVMIG_MEMBLK_HW_H

#include <stdint.h>

#define MB_PCI_VENDOR 0x1af4
#define MB_PCI_DEVICE 0x10f1
#define MB_PCI_CLASS 0x018000 /* mass storage, other */

#define MB_ID 0x4b4c424du      /* "MBLK" read as a little-endian u32 */
#define MB_HW_VERSION 0x00010000u /* 1.0 */
#define MB_BLOCK_SIZE 4096u
#define MB_MAX_BLOCKS 256u     /* per command: 1 MiB */
#define MB_MAX_RING 4096u      /* entries per ring (power of two, >= 2) */
#define MB_RING_ALIGN 64u      /* ring base alignment in guest memory */
#define MB_MAX_INFLIGHT 32u    /* entries the device fetches ahead of execution */

/* BAR0: 4 KiB of 32-bit registers; only aligned 4-byte accesses. */
enum mb_reg {
	MB_REG_ID = 0x00,         /* RO  MB_ID */
	MB_REG_VERSION = 0x04,    /* RO  MB_HW_VERSION */
	MB_REG_CAP_LO = 0x08,     /* RO  capacity in blocks, low 32 bits */
	MB_REG_CAP_HI = 0x0c,     /* RO  high 32 bits */
	MB_REG_BLOCK_SIZE = 0x10, /* RO  4096 */
	MB_REG_MAX_BLOCKS = 0x14, /* RO  largest nblocks of one READ/WRITE */
	MB_REG_MAX_RING = 0x18,   /* RO  largest ring size */
	MB_REG_CHUNK_SIZE = 0x1c, /* RO  migration chunk size (informational) */
	MB_REG_CONTROL = 0x20,    /* RW  MB_CTRL_* */
	MB_REG_STATUS = 0x24,     /* RO  MB_STS_* (DBERR is write-1-to-clear) */
	MB_REG_ERR_CODE = 0x28,   /* RO  MB_ERR_* of the last ring error */
	MB_REG_SQ_BASE_LO = 0x30, /* RW while disabled: SQ guest address */
	MB_REG_SQ_BASE_HI = 0x34,
	MB_REG_SQ_SIZE = 0x38,    /* RW while disabled: SQ entries */
	MB_REG_CQ_BASE_LO = 0x40, /* RW while disabled: CQ guest address */
	MB_REG_CQ_BASE_HI = 0x44,
	MB_REG_CQ_SIZE = 0x48,    /* RW while disabled: CQ entries */
	MB_REG_SQ_TAIL = 0x50,    /* RW  doorbell: guest's SQ producer index */
	MB_REG_SQ_HEAD = 0x54,    /* RO  device's SQ consumer index */
	MB_REG_CQ_TAIL = 0x58,    /* RO  device's CQ producer index */
	MB_REG_CQ_HEAD = 0x5c,    /* RW  doorbell: guest's CQ consumer index */
	MB_REG_COMPLETED = 0x60,  /* RO  completions posted since enable (wraps) */
};
#define MB_BAR0_SIZE 4096u

#define MB_CTRL_EN 0x1u

#define MB_STS_READY 0x1u /* enabled, rings valid, requests served */
#define MB_STS_CFS 0x2u   /* ring configuration refused at enable; clear with EN=0 */
#define MB_STS_DBERR 0x4u /* a doorbell value out of range was ignored; W1C */
#define MB_STS_FATAL 0x8u /* a ring access (DMA) failed; processing stopped; EN=0 clears */
#define MB_STS_ALL (MB_STS_READY | MB_STS_CFS | MB_STS_DBERR | MB_STS_FATAL)

enum mb_err {
	MB_ERR_NONE = 0,
	MB_ERR_SQ_SIZE = 1,  /* SQ_SIZE not a power of two in 2..MAX_RING */
	MB_ERR_CQ_SIZE = 2,
	MB_ERR_SQ_ALIGN = 3, /* SQ base not MB_RING_ALIGN aligned (or wraps) */
	MB_ERR_CQ_ALIGN = 4,
	MB_ERR_SQ_TAIL = 5,  /* SQ_TAIL written >= SQ_SIZE (or while not ready) */
	MB_ERR_CQ_HEAD = 6,  /* CQ_HEAD written >= CQ_SIZE (or while not ready) */
	MB_ERR_SQ_DMA = 7,   /* fetching SQ entries failed */
	MB_ERR_CQ_DMA = 8,   /* writing a CQ entry failed */
};

/* Submission queue entry: 32 bytes. */
#define MB_SQE_SIZE 32u
struct mb_sqe {
	uint8_t opcode;   /* MB_OP_* */
	uint8_t flags;    /* 0 */
	uint16_t rsvd;    /* 0 */
	uint32_t tag;     /* echoed in the completion */
	uint64_t lba;     /* first block (READ/WRITE) */
	uint32_t nblocks; /* 1..MAX_BLOCKS (READ/WRITE) */
	uint32_t buf_len; /* bytes at buf; >= nblocks*4096, >= 64 for IDENTIFY */
	uint64_t buf;     /* guest address of the data buffer */
};
_Static_assert(sizeof(struct mb_sqe) == MB_SQE_SIZE, "SQE layout");

enum mb_op {
	MB_OP_READ = 1,     /* storage -> guest buffer */
	MB_OP_WRITE = 2,    /* guest buffer -> storage */
	MB_OP_FLUSH = 3,    /* barrier: every earlier completed write is durable */
	MB_OP_IDENTIFY = 4, /* struct mb_identify -> guest buffer */
};

/* Completion queue entry: 16 bytes. */
#define MB_CQE_SIZE 16u
struct mb_cqe {
	uint32_t tag;     /* the SQE's tag */
	uint16_t status;  /* MB_SC_* */
	uint16_t flags;   /* bit 0: phase (1 on the first pass, toggles at each wrap) */
	uint32_t result;  /* bytes transferred */
	uint32_t sq_head; /* SQ_HEAD when posted: the guest may reuse SQ slots before it */
};
_Static_assert(sizeof(struct mb_cqe) == MB_CQE_SIZE, "CQE layout");

enum mb_sc {
	MB_SC_OK = 0,
	MB_SC_BAD_OPCODE = 1,
	MB_SC_LBA_RANGE = 2,  /* lba + nblocks beyond the capacity */
	MB_SC_BAD_LENGTH = 3, /* nblocks 0 or > MAX_BLOCKS, or buf_len too small */
	MB_SC_DMA_ERROR = 4,  /* the data buffer is not mapped with the needed access */
	MB_SC_BAD_FIELD = 5,  /* flags or rsvd not zero */
};

/* IDENTIFY data: 64 bytes. */
#define MB_IDENTIFY_SIZE 64u
struct mb_identify {
	uint32_t id;              /* MB_ID */
	uint32_t version;         /* MB_HW_VERSION */
	uint64_t capacity_blocks;
	uint32_t block_size;
	uint32_t max_blocks;
	uint32_t chunk_size;
	uint32_t max_ring;
	char model[32];           /* NUL-padded */
};
_Static_assert(sizeof(struct mb_identify) == MB_IDENTIFY_SIZE, "IDENTIFY layout");

#endif /* DEVMIG_MEMBLK_HW_H */
