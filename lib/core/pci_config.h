/* SPDX-License-Identifier: MIT */
/*
 * The core's PCI configuration space: the guest/VMM access path, MSI/MSI-X
 * emulation, reset and migration of the state built by <devmig/pci.h>.
 *
 * Pure logic: no I/O, no locking. The caller (the core) serialises every
 * call on one config, including the builder calls and the notify callback,
 * under its device lock.
 */
#ifndef DEVMIG_LIB_PCI_CONFIG_H
#define DEVMIG_LIB_PCI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmig/pci.h"

/* What a guest write changed; index is given where noted, else 0. */
enum devmig_pcicfg_event {
	DEVMIG_PCICFG_EV_COMMAND,      /* command register */
	DEVMIG_PCICFG_EV_BAR,          /* BAR index's register(s): address or sizing */
	DEVMIG_PCICFG_EV_MSI_CTRL,     /* MSI enable or multiple message enable */
	DEVMIG_PCICFG_EV_MSI_MESSAGE,  /* MSI address or data */
	DEVMIG_PCICFG_EV_MSI_MASK,     /* MSI per-vector mask bits */
	DEVMIG_PCICFG_EV_MSIX_CTRL,    /* MSI-X enable or function mask */
	DEVMIG_PCICFG_EV_MSIX_ENTRY,   /* MSI-X table entry index: address, data or mask */
	/*
	 * Vector index was pending and has just become deliverable (unmasked,
	 * enabled). Its pending bit is already cleared: send the message now,
	 * or set it pending again if that is not possible.
	 */
	DEVMIG_PCICFG_EV_MSI_FIRE,
	DEVMIG_PCICFG_EV_MSIX_FIRE,
};

/*
 * Called after the write that caused it has been fully applied, once per
 * thing changed (a write of an unchanged value reports nothing). It may
 * call the queries and the set/clear_pending functions below (e.g. to keep
 * a FIRE vector pending), not read/write/poke/msix_access/load/reset.
 * Pending vectors are only fired when a callback is registered.
 */
typedef void (*devmig_pcicfg_notify_fn)(void *opaque, enum devmig_pcicfg_event ev,
					unsigned index);

/* NULL on allocation failure. notify may be NULL. */
struct devmig_pci_config *devmig_pcicfg_create(devmig_pcicfg_notify_fn notify, void *opaque);
void devmig_pcicfg_destroy(struct devmig_pci_config *cfg);

/*
 * End of the description: the builder refuses further calls with -EPERM
 * and the current bytes become the reset values. Call after realize().
 */
void devmig_pcicfg_seal(struct devmig_pci_config *cfg);
/* Back to the sealed values; MSI-X vectors masked, nothing pending. No events. */
int devmig_pcicfg_reset(struct devmig_pci_config *cfg);

/*
 * Guest/VMM access, any offset/length/alignment within the 4096 bytes.
 * Out of range: -EINVAL and nothing read, written or notified.
 */
int devmig_pcicfg_read(const struct devmig_pci_config *cfg, uint64_t offset, void *buf,
		       size_t len);
int devmig_pcicfg_write(struct devmig_pci_config *cfg, uint64_t offset, const void *buf,
			size_t len);

/*
 * Device-side store: bypasses every mask and notifies nothing (the device
 * raising a status error bit, for instance). Same range rule as write.
 */
int devmig_pcicfg_poke(struct devmig_pci_config *cfg, uint64_t offset, const void *buf,
		       size_t len);

/* Offset of the first capability with this ID, 0 if none. */
unsigned devmig_pcicfg_find_cap(const struct devmig_pci_config *cfg, uint16_t id, bool ext);
/* The mask array (DEVMIG_PCI_CFG_SIZE bytes) of that kind. */
const uint8_t *devmig_pcicfg_mask(const struct devmig_pci_config *cfg, enum devmig_pci_mask kind);

/* BARs: -ENOENT for an undeclared slot (or the upper half of a 64-bit BAR). */
int devmig_pcicfg_bar_info(const struct devmig_pci_config *cfg, unsigned bar, uint64_t *size,
			   unsigned *flags);
/* The address programmed in the BAR, type bits removed (0 if undeclared). */
uint64_t devmig_pcicfg_bar_address(const struct devmig_pci_config *cfg, unsigned bar);

/*
 * INTx. Its pending flag (an interrupt raised that could not be signalled)
 * is the function's, shown by no register: it travels with the config.
 */
bool devmig_pcicfg_intx_disabled(const struct devmig_pci_config *cfg);
void devmig_pcicfg_set_intx_status(struct devmig_pci_config *cfg, bool asserted);
void devmig_pcicfg_intx_set_pending(struct devmig_pci_config *cfg, bool pending);
bool devmig_pcicfg_intx_pending(const struct devmig_pci_config *cfg);

/* MSI. Vector numbers are 0-based; out-of-range vectors count as masked. */
bool devmig_pcicfg_msi_enabled(const struct devmig_pci_config *cfg);
/* Vectors the guest allocated (multiple message enable), 0 without MSI. */
unsigned devmig_pcicfg_msi_vectors_enabled(const struct devmig_pci_config *cfg);
bool devmig_pcicfg_msi_vector_masked(const struct devmig_pci_config *cfg, unsigned v);
/*
 * Pending bits of the vectors MSI is capable of (-EINVAL beyond): the
 * capability's pending register with per-vector masking; without it no
 * register shows them and they are kept here (and travel with the config).
 */
int devmig_pcicfg_msi_set_pending(struct devmig_pci_config *cfg, unsigned v);
int devmig_pcicfg_msi_clear_pending(struct devmig_pci_config *cfg, unsigned v);
bool devmig_pcicfg_msi_pending(const struct devmig_pci_config *cfg, unsigned v);
/* Message for vector v: the data's low bits carry v, as multi-message MSI does. */
int devmig_pcicfg_msi_message(const struct devmig_pci_config *cfg, unsigned v, uint64_t *addr,
			      uint32_t *data);

/*
 * MSI-X table and PBA, reached through their BAR. Returns 1 when
 * [offset, offset+len) lies inside the table or the PBA of bar (handled:
 * reads filled, writes applied; PBA writes are ignored), 0 when it
 * touches neither (route it to the device), -EINVAL when it straddles a
 * boundary (nothing done).
 */
int devmig_pcicfg_msix_access(struct devmig_pci_config *cfg, unsigned bar, uint64_t offset,
			      void *buf, size_t len, bool is_write);
unsigned devmig_pcicfg_msix_vectors(const struct devmig_pci_config *cfg);
bool devmig_pcicfg_msix_enabled(const struct devmig_pci_config *cfg);
/*
 * Masked in the table the server sees: the function mask, or the vector's
 * own mask bit once a table write has reached us since reset (a client
 * that never writes the table emulates it itself and masks otherwise).
 */
bool devmig_pcicfg_msix_vector_masked(const struct devmig_pci_config *cfg, unsigned v);
/* Has a table write reached us since reset? */
bool devmig_pcicfg_msix_table_written(const struct devmig_pci_config *cfg);
int devmig_pcicfg_msix_set_pending(struct devmig_pci_config *cfg, unsigned v);
int devmig_pcicfg_msix_clear_pending(struct devmig_pci_config *cfg, unsigned v);
bool devmig_pcicfg_msix_pending(const struct devmig_pci_config *cfg, unsigned v);
int devmig_pcicfg_msix_message(const struct devmig_pci_config *cfg, unsigned v, uint64_t *addr,
			       uint32_t *data);

/*
 * Migration. The stream is, all little-endian:
 *   u64 fingerprint | 4096 config bytes | MSI-X table (16 B per vector) |
 *   PBA (8 B per 64 vectors) | u32 interrupt state flags (bit 0: the MSI-X
 *   table was written since reset, bit 1: INTx pending) | u32 MSI pending
 *   bits no register shows (MSI without per-vector masking)
 * so save_size() = 8 + 4096 + 16 * n + 8 * ceil(n / 64) + 8 for n MSI-X
 * vectors (4112 without MSI-X). Every pending bit of every interrupt mode
 * is in it, once: the PBA, the MSI pending register (config bytes), and
 * the two words.
 */
size_t devmig_pcicfg_save_size(const struct devmig_pci_config *cfg);
/* 0, or -ENOSPC when len < save_size(). */
int devmig_pcicfg_save(const struct devmig_pci_config *cfg, void *buf, size_t len);
/*
 * Validates everything before changing anything: every config bit that is
 * not WRITE, W1C or RUNTIME must equal ours (ids, class, capability layout,
 * BAR types...), then the length and the fingerprint (which also covers
 * the masks), then the values guest writes could never produce (MSI
 * multiple message enable above capable, reserved MSI-X bits, pending bits
 * of vectors the function lacks, unknown flags). On refusal
 * returns -EINVAL and puts the reason in why, e.g.
 * "config offset 0x02: device id 0x10f1 in stream, 0x10f2 here".
 * No events: the caller re-reads what it needs afterwards.
 */
int devmig_pcicfg_load(struct devmig_pci_config *cfg, const void *buf, size_t len, char *why,
		       size_t whylen);

/*
 * FNV-1a 64 over, for each of the 4096 offsets, the fixed-bit mask (not
 * WRITE, W1C or RUNTIME) and the fixed bits' values. Equal fingerprints
 * mean same identity, layout and register behaviour; guest state does not
 * change it.
 */
uint64_t devmig_pcicfg_fingerprint(const struct devmig_pci_config *cfg);

#endif /* DEVMIG_LIB_PCI_CONFIG_H */
