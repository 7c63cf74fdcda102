/* SPDX-License-Identifier: MIT */
/*
 * devmig: describing a PCI device's configuration space.
 *
 * A variant driver calls these from its realize() to describe its device:
 * identity, BARs, INTx pin and capabilities. The core owns the config space
 * (4096 bytes, PCIe extended) and emulates every guest access to it; the
 * variant never sees config cycles.
 *
 * Conventions:
 *  - Functions return 0 (or, for the capability adders, the offset the
 *    capability was placed at) on success, or a negative errno:
 *      -EINVAL  bad argument (size not a power of two, unknown flag, ...)
 *      -EINVAL  offset not 4-byte aligned
 *      -ERANGE  offset/size outside the area (0x40..0xff standard,
 *               0x100..0xfff extended)
 *      -EBUSY   overlaps a capability already placed
 *      -ENOSPC  no free room ("next free" placement failed)
 *      -EEXIST  capability or BAR already present
 *      -ENOENT  referenced BAR not declared
 *      -EPERM   the core has sealed the description (after realize)
 *    A refused call changes nothing.
 *  - Capability offsets: pass 0 for "next free" (first fit from 0x40, or
 *    0x100 for extended ones), or an explicit offset to reproduce a given
 *    layout. Capabilities are chained in the order they are added, so a
 *    layout copied from a real device keeps its chain order. If the first
 *    extended capability is not at 0x100, a null extended capability header
 *    (ID 0) is placed at 0x100 pointing to it, as the chain must start there.
 *  - Constants are those of <linux/pci_regs.h>, re-exported here.
 *  - Not thread-safe: called from realize(), before the device is served.
 */
#ifndef DEVMIG_PCI_H
#define DEVMIG_PCI_H

#include <stddef.h>
#include <stdint.h>

#include <linux/pci_regs.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libdevmig, which hides everything else. */
#pragma GCC visibility push(default)

struct devmig_pci_config;

#define DEVMIG_PCI_CFG_SIZE PCI_CFG_SPACE_EXP_SIZE /* 4096 */
#define DEVMIG_PCI_NUM_BARS 6

/* Vendor 0xffff is refused (it reads as "no device"). */
int devmig_pci_set_ids(struct devmig_pci_config *cfg, uint16_t vendor, uint16_t device);
int devmig_pci_set_subsystem(struct devmig_pci_config *cfg, uint16_t subsys_vendor,
			     uint16_t subsys_id);
/* class_code is the 24-bit base class/subclass/prog-if, e.g. 0x010802 (NVMe). */
int devmig_pci_set_class(struct devmig_pci_config *cfg, uint32_t class_code, uint8_t revision);
/* 0 = no INTx, 1..4 = INTA#..INTD#. */
int devmig_pci_set_intx_pin(struct devmig_pci_config *cfg, uint8_t pin);

/*
 * Declare BAR bar (0..5). flags, from pci_regs.h:
 *   0                                  32-bit memory
 *   PCI_BASE_ADDRESS_MEM_TYPE_64       64-bit memory: also consumes slot bar+1
 *   | PCI_BASE_ADDRESS_MEM_PREFETCH    prefetchable (memory only)
 *   PCI_BASE_ADDRESS_SPACE_IO          I/O space, nothing else
 * size is a power of two: memory 16 B..2 GiB (32-bit) or ..2^63 (64-bit),
 * I/O 4..256 B. Declaring an I/O (memory) BAR makes the command register's
 * I/O (memory) enable bit writable.
 */
int devmig_pci_set_bar(struct devmig_pci_config *cfg, unsigned bar, uint64_t size,
		       unsigned flags);

/* Power Management: version 3, D0 and D3hot only, No_Soft_Reset set. */
int devmig_pci_add_pm(struct devmig_pci_config *cfg, unsigned offset);

/*
 * MSI: vectors is 1, 2, 4, 8, 16 or 32; flags is any of
 * PCI_MSI_FLAGS_64BIT and PCI_MSI_FLAGS_MASKBIT (per-vector masking).
 */
int devmig_pci_add_msi(struct devmig_pci_config *cfg, unsigned offset, unsigned vectors,
		       unsigned flags);

/*
 * MSI-X with 1..2048 vectors. The table (16 bytes per vector) and the PBA
 * (8 bytes per 64 vectors) live in already declared memory BARs at 8-byte
 * aligned offsets; both must fit in their BAR and must not overlap.
 */
int devmig_pci_add_msix(struct devmig_pci_config *cfg, unsigned offset, unsigned vectors,
			unsigned table_bar, uint32_t table_offset,
			unsigned pba_bar, uint32_t pba_offset);

/*
 * PCI Express capability, version 2, endpoint. link_speed is a
 * PCI_EXP_LNKCAP_SLS_* value (2.5..64 GT/s); link_width is 1, 2, 4, 8, 12,
 * 16 or 32 lanes. The link reports itself trained at that speed and width.
 * 256-byte max payload, extended tags, no FLR, no ASPM.
 */
int devmig_pci_add_pcie(struct devmig_pci_config *cfg, unsigned offset, unsigned link_speed,
			unsigned link_width);

/* Vendor-specific capability: data follows the 3-byte header (ID, next, length). */
int devmig_pci_add_vendor_cap(struct devmig_pci_config *cfg, unsigned offset, const void *data,
			      size_t len);

/*
 * PASID: max_width 1..20 bits; flags any of PCI_PASID_CAP_EXEC and
 * PCI_PASID_CAP_PRIV. The matching control bits become writable.
 */
int devmig_pci_add_pasid(struct devmig_pci_config *cfg, unsigned offset, unsigned max_width,
			 unsigned flags);

/* Device Serial Number. */
int devmig_pci_add_dsn(struct devmig_pci_config *cfg, unsigned offset, uint64_t serial);

/*
 * Any other extended capability: id 1..0xffff, version 0..15, data follows
 * the 4-byte header. Its bytes are read-only until made writable below.
 */
int devmig_pci_add_ext_cap(struct devmig_pci_config *cfg, unsigned offset, uint16_t id,
			   uint8_t version, const void *data, size_t len);

/*
 * Raw reset values: store len bytes at offset, ignoring every mask. For
 * fields the adders above do not cover (e.g. vendor-specific registers);
 * the caller must not disturb the capability headers and next pointers.
 */
int devmig_pci_set_bytes(struct devmig_pci_config *cfg, unsigned offset, const void *data,
			 size_t len);

/*
 * Per-byte bit masks, one byte of mask per config byte. The adders set
 * sensible values; a device author may adjust them.
 *   WRITE    guest writes change these bits
 *   W1C      guest writes of 1 clear these bits (never also WRITE)
 *   RUNTIME  read-only to the guest but changed by the device at run time
 *            (interrupt status, MSI pending...): migrated, not compared
 *   VIRTUAL  synthesized by the core rather than taken from the device.
 *            All bits are virtual by default (this core emulates the whole
 *            space); the distinction matters when configs of different
 *            devices are compared: bits neither writable nor virtual must
 *            match.
 * A load compares every bit that is not WRITE, W1C or RUNTIME.
 */
enum devmig_pci_mask {
	DEVMIG_PCI_MASK_WRITE,
	DEVMIG_PCI_MASK_W1C,
	DEVMIG_PCI_MASK_RUNTIME,
	DEVMIG_PCI_MASK_VIRTUAL,
};
#define DEVMIG_PCI_MASK_COUNT 4

/* Replace mask bytes [offset, offset+len). */
int devmig_pci_set_mask(struct devmig_pci_config *cfg, enum devmig_pci_mask kind,
			unsigned offset, const void *mask, size_t len);
/* Copy mask bytes [offset, offset+len) out (allowed after sealing). */
int devmig_pci_get_mask(const struct devmig_pci_config *cfg, enum devmig_pci_mask kind,
			unsigned offset, void *mask, size_t len);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* DEVMIG_PCI_H */
