/* SPDX-License-Identifier: MIT */
/*
 * A test peer with libvfio-user's personality, as a vfio-user server: what
 * a devmig client and engine must survive from the nearest real peer
 * (see /work/shared/reference/migration-protocol.md section 6).
 *
 * Built on devmig's codec (lib/protocol), not on libvfio-user. It serves
 * one client at a time on an AF_UNIX socket from a thread, and keeps its
 * device (and migration state) across connections, as libvfio-user does.
 * What it does as libvfio-user does:
 *   - VERSION: answers with members the client did not propose
 *     ("migration": {"pgsize": 4096}), offers no devmig extension;
 *   - MIGRATION flags STOP_COPY | PRE_COPY: no P2P states, no PRE_COPY
 *     progress, no stop-copy size (features it lacks: EINVAL);
 *   - libvfio-user's transitions: STOP<->RUNNING, STOP->STOP_COPY,
 *     STOP->RESUMING, RUNNING<->PRE_COPY, PRE_COPY->STOP_COPY,
 *     STOP_COPY->STOP, RESUMING->STOP, walked by its next-hop table;
 *   - MIG_DATA_READ replies padded to the size asked for;
 *   - error replies carry the request's payload (libvfio-user does so for a
 *     refused SET; this peer for every error, the harder case);
 *   - in STOP and STOP_COPY only REGION_READ/WRITE, DEVICE_FEATURE and
 *     MIG_DATA_READ are served: DEVICE_RESET (and the rest) is refused and
 *     the state kept; a reset in RESUMING stays RESUMING;
 *   - DMA logging: START ignores its ranges; REPORT answers only for
 *     exactly one whole DMA region;
 *   - DMA_UNMAP with VFIO_DMA_UNMAP_FLAG_ALL.
 *
 * The device: PCI ids as configured; BAR0 registers (0x0 SCRATCH, r/w and
 * migrated; 0x4 write: raise INTx; 0x8 DMA_ADDR; 0xc write: the device
 * writes the value at DMA_ADDR in guest memory); BAR1 memory, migrated and
 * pre-copied (blocks written since the last pass are sent again); INTx.
 * Its stream is records (u32 type, u32 offset, u32 length, data) ending in
 * an END record; RESUMING->STOP applies it only if whole and valid.
 */
#ifndef DEVMIG_TESTS_LVU_PEER_H
#define DEVMIG_TESTS_LVU_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lvu_peer_config {
	const char *socket_path;
	uint16_t vendor, device, subsystem_vendor, subsystem_device; /* 0: dead beef cafe babe */
	uint32_t class_code;  /* 24 bits */
	uint8_t revision;
	size_t bar1_size;     /* 0: 0x4000; a multiple of 4096 */
};

/* One-shot faults, armed by the test; each fires once, then disarms. */
enum lvu_fault {
	LVU_FAULT_NONE = 0,
	LVU_FAULT_REFUSE_STATE,      /* the next arc into state arg (or LVU_ARC) is refused (EINVAL) */
	LVU_FAULT_DROP_ON_READ,      /* at MIG_DATA_READ number arg (from 1): hang up */
	LVU_FAULT_BAD_READ_REPLY,    /* at MIG_DATA_READ number arg: a reply the codec refuses */
	LVU_FAULT_GARBAGE_ON_READ,   /* at MIG_DATA_READ number arg: unframeable bytes, hang up */
	LVU_FAULT_REFUSE_WRITE,      /* MIG_DATA_WRITE number arg: refused (EINVAL) */
	LVU_FAULT_DROP_ON_WRITE,     /* at MIG_DATA_WRITE number arg: hang up */
};

/* LVU_FAULT_REFUSE_STATE's arg for one arc only: from -> to. */
#define LVU_ARC(from, to) ((((uint32_t)(from) + 1) << 8) | (uint32_t)(to))

struct lvu_peer_stats {
	unsigned connections;
	unsigned resets;          /* DEVICE_RESETs done */
	unsigned resets_refused;  /* refused in STOP/STOP_COPY */
	unsigned state_sets;      /* SET MIG_DEVICE_STATE requests, refused ones included */
	unsigned loads;           /* RESUMING->STOP that applied a stream */
	unsigned loads_discarded; /* RESUMING->STOP with an incomplete or invalid stream */
	unsigned padded_replies;  /* MIG_DATA_READ replies with padding */
	unsigned error_payloads;  /* error replies sent with a payload */
	unsigned log_reports_refused; /* REPORTs not for exactly one whole region */
	unsigned irqs;            /* INTx signals */
	unsigned ext_features;    /* DEVICE_FEATUREs of devmig's extensions asked (refused) */
};

struct lvu_peer;

/* NULL on failure (message on stderr). */
struct lvu_peer *lvu_peer_start(const struct lvu_peer_config *cfg);
void lvu_peer_stop(struct lvu_peer *p);

void lvu_peer_fault(struct lvu_peer *p, enum lvu_fault f, uint32_t arg);
int lvu_peer_state(struct lvu_peer *p);
void lvu_peer_stats(struct lvu_peer *p, struct lvu_peer_stats *st);
/* The device's memory and registers, as the device sees them. */
void lvu_peer_bar1(struct lvu_peer *p, size_t off, void *buf, size_t len, bool write);
uint32_t lvu_peer_scratch(struct lvu_peer *p);
/* Device DMA into guest memory (a write the DMA log records); -errno. */
int lvu_peer_dma_write(struct lvu_peer *p, uint64_t iova, const void *buf, size_t len);
/* Wait until no client is connected (ms); false on timeout. */
bool lvu_peer_wait_idle(struct lvu_peer *p, int ms);

#endif
