/* SPDX-License-Identifier: MIT */
/*
 * PCI configuration space: the builder of <devmig/pci.h> and the core's
 * emulation of lib/pci_config.h.
 *
 * The whole 4096-byte space is kept as bytes plus four per-byte masks
 * (writable, write-1-to-clear, runtime, virtual). A guest write is applied
 * byte by byte through the masks, so any offset, length and alignment
 * behaves like the sum of its bytes; the few registers with rules a mask
 * cannot express (MSI multiple message enable, PM power state) are fixed
 * up afterwards. BAR sizing needs no special case: the writable mask of a
 * BAR holds exactly its address bits, so all-ones reads back the size mask
 * with the read-only type bits.
 *
 * Callers serialise all access (see pci_config.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pci_config.h"

#define CFG_SIZE DEVMIG_PCI_CFG_SIZE
#define STD_CAP_START PCI_STD_HEADER_SIZEOF /* 0x40 */
#define EXT_CAP_START PCI_CFG_SPACE_SIZE    /* 0x100 */
#define MAX_CAPS 64
#define MSIX_MAX 2048u
/* A version 2 PCIe capability spans 0x3c bytes (slot registers included). */
#define PCIE_CAP_SIZE 0x3c
#define SAVE_HDR 8u /* the fingerprint */
/* The saved config's interrupt state: a u32 of flags, then a u32 of MSI
 * pending bits kept here (MSI without per-vector masking). */
#define SAVE_IRQ_STATE 8u
#define IRQ_STATE_MSIX_TABLE_WRITTEN 0x1u
#define IRQ_STATE_INTX_PENDING 0x2u

#define WMASK(c) ((c)->mask[DEVMIG_PCI_MASK_WRITE])
#define W1CMASK(c) ((c)->mask[DEVMIG_PCI_MASK_W1C])
#define RTMASK(c) ((c)->mask[DEVMIG_PCI_MASK_RUNTIME])

#define STATUS_W1C                                                                   \
	(PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT | \
	 PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY)

struct cap {
	uint16_t off, size, id;
	bool ext;
};

struct bar {
	uint64_t size;
	unsigned flags; /* the BAR's low type bits */
	bool used;      /* declared (never set on the upper half of a 64-bit BAR) */
	bool upper;     /* slot taken by the upper half of the BAR below */
};

struct devmig_pci_config {
	uint8_t bytes[CFG_SIZE];
	uint8_t mask[DEVMIG_PCI_MASK_COUNT][CFG_SIZE];
	uint8_t reset[CFG_SIZE];
	struct bar bar[DEVMIG_PCI_NUM_BARS];
	struct cap caps[MAX_CAPS]; /* in chain order, both chains */
	unsigned ncaps;
	unsigned pm, msi, msix; /* capability offsets, 0 = absent */
	bool pcie;
	unsigned msix_n, table_bar, pba_bar;
	uint32_t table_off, pba_off;
	uint8_t *table; /* msix_n entries of PCI_MSIX_ENTRY_SIZE */
	uint8_t *pba;   /* bit v = vector v pending, as the guest reads it */
	/*
	 * Pending bits no register shows: MSI vectors of a function without
	 * per-vector masking (whose pending bits are otherwise the MSI
	 * capability's), and INTx.
	 */
	uint32_t msi_pending;
	bool intx_pending;
	/*
	 * A table write has reached us since reset: the client programs its
	 * vectors through this table, so the entries' mask bits apply. A
	 * client that emulates the table itself (QEMU, kernel VFIO) never
	 * writes it and masks through the function mask or SET_IRQS instead.
	 */
	bool table_written;
	bool sealed;
	devmig_pcicfg_notify_fn notify;
	void *opaque;
};

/* Writable bits of an MSI-X table entry: dword-aligned address, data, mask bit. */
static const uint8_t entry_wmask[PCI_MSIX_ENTRY_SIZE] = {
	0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, PCI_MSIX_ENTRY_CTRL_MASKBIT, 0, 0, 0,
};

/* ---- small helpers ---------------------------------------------------- */

static uint32_t rd(const uint8_t *a, unsigned off, unsigned n)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint32_t)a[off + i] << (8 * i);
	return v;
}

static void wr(uint8_t *a, unsigned off, uint32_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		a[off + i] = (uint8_t)(v >> (8 * i));
}

/* Register value and writable bits in one go (the builder's common case). */
static void reg(struct devmig_pci_config *cfg, unsigned off, unsigned n, uint32_t val,
		uint32_t wmask)
{
	wr(cfg->bytes, off, val, n);
	wr(WMASK(cfg), off, wmask, n);
}

static bool in_cfg(uint64_t off, size_t len)
{
	return off <= CFG_SIZE && len <= CFG_SIZE - off;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static unsigned ilog2(unsigned v)
{
	unsigned l = 0;

	while (v >>= 1)
		l++;
	return l;
}

static size_t pba_bytes(unsigned n)
{
	return (n + 63) / 64 * 8;
}

static uint8_t fixed_bits(const struct devmig_pci_config *cfg, unsigned o)
{
	return (uint8_t)~(WMASK(cfg)[o] | W1CMASK(cfg)[o] | RTMASK(cfg)[o]);
}

static void emit(struct devmig_pci_config *cfg, enum devmig_pcicfg_event ev, unsigned idx)
{
	cfg->notify(cfg->opaque, ev, idx);
}

/* ---- lifetime ---------------------------------------------------------- */

struct devmig_pci_config *devmig_pcicfg_create(devmig_pcicfg_notify_fn notify, void *opaque)
{
	struct devmig_pci_config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return NULL;
	cfg->notify = notify;
	cfg->opaque = opaque;
	memset(cfg->mask[DEVMIG_PCI_MASK_VIRTUAL], 0xff, CFG_SIZE);
	/* I/O and memory enable become writable when such a BAR is declared. */
	wr(WMASK(cfg), PCI_COMMAND,
	   PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE, 2);
	wr(W1CMASK(cfg), PCI_STATUS, STATUS_W1C, 2);
	wr(RTMASK(cfg), PCI_STATUS, PCI_STATUS_INTERRUPT, 2);
	/* Scratch registers owned by software (cache line size has no effect on PCIe). */
	WMASK(cfg)[PCI_CACHE_LINE_SIZE] = 0xff;
	WMASK(cfg)[PCI_INTERRUPT_LINE] = 0xff;
	return cfg;
}

void devmig_pcicfg_destroy(struct devmig_pci_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->table);
	free(cfg->pba);
	free(cfg);
}

static void msix_reset_table(struct devmig_pci_config *cfg)
{
	if (!cfg->msix_n)
		return;
	memset(cfg->table, 0, (size_t)cfg->msix_n * PCI_MSIX_ENTRY_SIZE);
	/* Vectors come out of reset masked. */
	for (unsigned v = 0; v < cfg->msix_n; v++)
		cfg->table[v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL] =
			PCI_MSIX_ENTRY_CTRL_MASKBIT;
	memset(cfg->pba, 0, pba_bytes(cfg->msix_n));
	cfg->table_written = false;
}

void devmig_pcicfg_seal(struct devmig_pci_config *cfg)
{
	cfg->sealed = true;
	memcpy(cfg->reset, cfg->bytes, CFG_SIZE);
}

int devmig_pcicfg_reset(struct devmig_pci_config *cfg)
{
	if (!cfg->sealed)
		return -EINVAL; /* no reset values yet */
	memcpy(cfg->bytes, cfg->reset, CFG_SIZE);
	msix_reset_table(cfg);
	cfg->msi_pending = 0;
	cfg->intx_pending = false;
	return 0;
}

/* ---- builder: header --------------------------------------------------- */

int devmig_pci_set_ids(struct devmig_pci_config *cfg, uint16_t vendor, uint16_t device)
{
	if (cfg->sealed)
		return -EPERM;
	if (vendor == 0xffff)
		return -EINVAL;
	wr(cfg->bytes, PCI_VENDOR_ID, vendor, 2);
	wr(cfg->bytes, PCI_DEVICE_ID, device, 2);
	return 0;
}

int devmig_pci_set_subsystem(struct devmig_pci_config *cfg, uint16_t subsys_vendor,
			     uint16_t subsys_id)
{
	if (cfg->sealed)
		return -EPERM;
	wr(cfg->bytes, PCI_SUBSYSTEM_VENDOR_ID, subsys_vendor, 2);
	wr(cfg->bytes, PCI_SUBSYSTEM_ID, subsys_id, 2);
	return 0;
}

int devmig_pci_set_class(struct devmig_pci_config *cfg, uint32_t class_code, uint8_t revision)
{
	if (cfg->sealed)
		return -EPERM;
	if (class_code > 0xffffff)
		return -EINVAL;
	wr(cfg->bytes, PCI_CLASS_REVISION, class_code << 8 | revision, 4);
	return 0;
}

int devmig_pci_set_intx_pin(struct devmig_pci_config *cfg, uint8_t pin)
{
	if (cfg->sealed)
		return -EPERM;
	if (pin > 4)
		return -EINVAL;
	cfg->bytes[PCI_INTERRUPT_PIN] = pin;
	return 0;
}

static bool bar_size_ok(uint64_t size, bool io, bool is64)
{
	if (!is_pow2(size))
		return false;
	if (io)
		return size >= 4 && size <= 256;
	return size >= 16 && (is64 || size <= (1ull << 31));
}

static bool bar_slot_taken(const struct devmig_pci_config *cfg, unsigned bar)
{
	return cfg->bar[bar].used || cfg->bar[bar].upper;
}

int devmig_pci_set_bar(struct devmig_pci_config *cfg, unsigned bar, uint64_t size, unsigned flags)
{
	const unsigned known = PCI_BASE_ADDRESS_SPACE_IO | PCI_BASE_ADDRESS_MEM_TYPE_64 |
			       PCI_BASE_ADDRESS_MEM_PREFETCH;
	bool io = flags & PCI_BASE_ADDRESS_SPACE_IO, is64 = flags & PCI_BASE_ADDRESS_MEM_TYPE_64;
	unsigned off = PCI_BASE_ADDRESS_0 + 4 * bar;
	uint64_t addr_mask;

	if (cfg->sealed)
		return -EPERM;
	if (bar >= DEVMIG_PCI_NUM_BARS || (flags & ~known) || (io && flags != PCI_BASE_ADDRESS_SPACE_IO) ||
	    !bar_size_ok(size, io, is64) || (is64 && bar == DEVMIG_PCI_NUM_BARS - 1))
		return -EINVAL;
	if (bar_slot_taken(cfg, bar) || (is64 && bar_slot_taken(cfg, bar + 1)))
		return -EEXIST;

	/* The address bits the guest may program; the type bits stay read-only. */
	addr_mask = ~(size - 1) & (io ? ~(uint64_t)3 : ~(uint64_t)0xf);
	reg(cfg, off, 4, flags, (uint32_t)addr_mask);
	if (is64) {
		reg(cfg, off + 4, 4, 0, (uint32_t)(addr_mask >> 32));
		cfg->bar[bar + 1].upper = true;
	}
	cfg->bar[bar] = (struct bar){ .size = size, .flags = flags, .used = true };
	WMASK(cfg)[PCI_COMMAND] |= io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
	return 0;
}

/* ---- builder: capability placement and chains ------------------------- */

static bool cap_overlaps(const struct devmig_pci_config *cfg, unsigned off, unsigned size)
{
	for (unsigned i = 0; i < cfg->ncaps; i++) {
		const struct cap *c = &cfg->caps[i];

		if (off < c->off + c->size && c->off < off + size)
			return true;
	}
	return false;
}

static bool has_ext_caps(const struct devmig_pci_config *cfg)
{
	for (unsigned i = 0; i < cfg->ncaps; i++)
		if (cfg->caps[i].ext)
			return true;
	return false;
}

/* The offset for a capability of size bytes: the one asked for, or first fit. */
static int cap_place(const struct devmig_pci_config *cfg, unsigned want, unsigned size, bool ext)
{
	unsigned lo = ext ? EXT_CAP_START : STD_CAP_START;
	unsigned hi = ext ? CFG_SIZE : EXT_CAP_START;

	if (want) {
		if (want & 3)
			return -EINVAL;
		if (want < lo || want > hi || size > hi - want)
			return -ERANGE;
		return cap_overlaps(cfg, want, size) ? -EBUSY : (int)want;
	}
	for (unsigned off = lo; off + size <= hi; off += 4)
		if (!cap_overlaps(cfg, off, size))
			return (int)off;
	return -ENOSPC;
}

static void set_ext_next(struct devmig_pci_config *cfg, unsigned off, unsigned next)
{
	uint32_t hdr = rd(cfg->bytes, off, 4);

	wr(cfg->bytes, off, (hdr & 0x000fffff) | (uint32_t)next << 20, 4);
}

/* Rewrite both chains' next pointers from the capability list. */
static void cap_link(struct devmig_pci_config *cfg)
{
	unsigned prev = PCI_CAPABILITY_LIST, prev_ext = 0;
	bool any = false;

	for (unsigned i = 0; i < cfg->ncaps; i++) {
		const struct cap *c = &cfg->caps[i];

		if (c->ext) {
			if (prev_ext)
				set_ext_next(cfg, prev_ext, c->off);
			prev_ext = c->off;
		} else {
			cfg->bytes[prev] = (uint8_t)c->off;
			prev = c->off + PCI_CAP_LIST_NEXT;
			any = true;
		}
	}
	cfg->bytes[prev] = 0;
	if (prev_ext)
		set_ext_next(cfg, prev_ext, 0);
	if (any)
		cfg->bytes[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
}

static void cap_append(struct devmig_pci_config *cfg, unsigned off, unsigned size, uint16_t id,
		       bool ext)
{
	cfg->caps[cfg->ncaps++] = (struct cap){ .off = (uint16_t)off, .size = (uint16_t)size,
						.id = id, .ext = ext };
}

/*
 * Place a capability, write its header and link it at the end of its
 * chain. Returns its offset. The extended chain must start at 0x100: when
 * the first extended capability goes elsewhere, a null header (ID 0) at
 * 0x100 points to it.
 */
/* Adders of capabilities a function has at most once: sealed first, then duplicate. */
static int cap_unique(const struct devmig_pci_config *cfg, bool present)
{
	if (cfg->sealed)
		return -EPERM;
	return present ? -EEXIST : 0;
}

static int cap_add(struct devmig_pci_config *cfg, unsigned want, size_t raw_size, uint16_t id,
		   uint8_t version, bool ext)
{
	unsigned size = (unsigned)((raw_size + 3) & ~(size_t)3);
	bool null_head;
	int off;

	if (cfg->sealed)
		return -EPERM;
	off = cap_place(cfg, want, size, ext);
	if (off < 0)
		return off;
	null_head = ext && !has_ext_caps(cfg) && off != EXT_CAP_START;
	if (cfg->ncaps + 1 + null_head > MAX_CAPS)
		return -ENOSPC;
	if (null_head)
		cap_append(cfg, EXT_CAP_START, 4, 0, true);
	cap_append(cfg, (unsigned)off, size, id, ext);
	if (ext)
		wr(cfg->bytes, (unsigned)off, id | (uint32_t)version << 16, 4);
	else
		cfg->bytes[off] = (uint8_t)id;
	cap_link(cfg);
	return off;
}

unsigned devmig_pcicfg_find_cap(const struct devmig_pci_config *cfg, uint16_t id, bool ext)
{
	for (unsigned i = 0; i < cfg->ncaps; i++)
		if (cfg->caps[i].id == id && cfg->caps[i].ext == ext)
			return cfg->caps[i].off;
	return 0;
}

/* ---- builder: capabilities --------------------------------------------- */

int devmig_pci_add_pm(struct devmig_pci_config *cfg, unsigned offset)
{
	int off;

	off = cap_unique(cfg, cfg->pm);
	if (off < 0)
		return off;
	off = cap_add(cfg, offset, PCI_PM_SIZEOF, PCI_CAP_ID_PM, 0, false);
	if (off < 0)
		return off;
	wr(cfg->bytes, off + PCI_PM_PMC, 3, 2); /* version 3: PM 1.2; no D1/D2, no PME */
	/* D3hot->D0 keeps our state, so the OS need not restore it. */
	reg(cfg, off + PCI_PM_CTRL, 2, PCI_PM_CTRL_NO_SOFT_RESET, PCI_PM_CTRL_STATE_MASK);
	cfg->pm = (unsigned)off;
	return off;
}

static uint16_t msi_ctrl(const struct devmig_pci_config *cfg)
{
	return (uint16_t)rd(cfg->bytes, cfg->msi + PCI_MSI_FLAGS, 2);
}

static bool msi_is64(const struct devmig_pci_config *cfg)
{
	return msi_ctrl(cfg) & PCI_MSI_FLAGS_64BIT;
}

static bool msi_maskable(const struct devmig_pci_config *cfg)
{
	return cfg->msi && (msi_ctrl(cfg) & PCI_MSI_FLAGS_MASKBIT);
}

static unsigned msi_capable(const struct devmig_pci_config *cfg)
{
	return 1u << ((msi_ctrl(cfg) & PCI_MSI_FLAGS_QMASK) >> 1);
}

static unsigned msi_data_reg(const struct devmig_pci_config *cfg)
{
	return cfg->msi + (msi_is64(cfg) ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32);
}

static unsigned msi_mask_reg(const struct devmig_pci_config *cfg)
{
	return cfg->msi + (msi_is64(cfg) ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32);
}

static unsigned msi_pending_reg(const struct devmig_pci_config *cfg)
{
	return cfg->msi + (msi_is64(cfg) ? PCI_MSI_PENDING_64 : PCI_MSI_PENDING_32);
}

int devmig_pci_add_msi(struct devmig_pci_config *cfg, unsigned offset, unsigned vectors,
		       unsigned flags)
{
	const unsigned known = PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT;
	bool is64 = flags & PCI_MSI_FLAGS_64BIT, maskable = flags & PCI_MSI_FLAGS_MASKBIT;
	/* Without masking the structure ends where the mask register would be. */
	unsigned size = maskable ? (is64 ? PCI_MSI_PENDING_64 : PCI_MSI_PENDING_32) + 4
				 : (is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32);
	uint32_t vec_bits;
	int off;

	off = cap_unique(cfg, cfg->msi);
	if (off < 0)
		return off;
	if (!is_pow2(vectors) || vectors > 32 || (flags & ~known))
		return -EINVAL;
	vec_bits = vectors == 32 ? 0xffffffffu : (1u << vectors) - 1;
	off = cap_add(cfg, offset, size, PCI_CAP_ID_MSI, 0, false);
	if (off < 0)
		return off;
	cfg->msi = (unsigned)off;
	reg(cfg, off + PCI_MSI_FLAGS, 2, flags | ilog2(vectors) << 1,
	    PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
	reg(cfg, off + PCI_MSI_ADDRESS_LO, 4, 0, 0xfffffffc); /* dword aligned */
	if (is64)
		reg(cfg, off + PCI_MSI_ADDRESS_HI, 4, 0, 0xffffffff);
	reg(cfg, msi_data_reg(cfg), 2, 0, 0xffff);
	if (maskable) {
		reg(cfg, msi_mask_reg(cfg), 4, 0, vec_bits);
		wr(RTMASK(cfg), msi_pending_reg(cfg), vec_bits, 4);
	}
	return off;
}

static bool is_mem_bar(const struct devmig_pci_config *cfg, unsigned bar)
{
	return cfg->bar[bar].used && !(cfg->bar[bar].flags & PCI_BASE_ADDRESS_SPACE_IO);
}

/* Table and PBA inside their BARs, not overlapping each other. */
static int msix_check_layout(const struct devmig_pci_config *cfg, unsigned n, unsigned tbar,
			     uint64_t toff, unsigned pbar, uint64_t poff)
{
	uint64_t tlen = (uint64_t)n * PCI_MSIX_ENTRY_SIZE, plen = pba_bytes(n);

	if (n < 1 || n > MSIX_MAX || tbar >= DEVMIG_PCI_NUM_BARS || pbar >= DEVMIG_PCI_NUM_BARS ||
	    (toff & ~(uint64_t)PCI_MSIX_TABLE_OFFSET) || (poff & ~(uint64_t)PCI_MSIX_PBA_OFFSET))
		return -EINVAL;
	if (!cfg->bar[tbar].used || !cfg->bar[pbar].used)
		return -ENOENT;
	if (!is_mem_bar(cfg, tbar) || !is_mem_bar(cfg, pbar))
		return -EINVAL;
	if (toff + tlen > cfg->bar[tbar].size || poff + plen > cfg->bar[pbar].size)
		return -ERANGE;
	if (tbar == pbar && toff < poff + plen && poff < toff + tlen)
		return -EBUSY;
	return 0;
}

int devmig_pci_add_msix(struct devmig_pci_config *cfg, unsigned offset, unsigned vectors,
			unsigned table_bar, uint32_t table_offset, unsigned pba_bar,
			uint32_t pba_offset)
{
	uint8_t *table, *pba;
	int off;

	off = cap_unique(cfg, cfg->msix);
	if (off < 0)
		return off;
	off = msix_check_layout(cfg, vectors, table_bar, table_offset, pba_bar, pba_offset);
	if (off < 0)
		return off;
	table = calloc(vectors, PCI_MSIX_ENTRY_SIZE);
	pba = calloc(1, pba_bytes(vectors));
	off = table && pba ? cap_add(cfg, offset, PCI_CAP_MSIX_SIZEOF, PCI_CAP_ID_MSIX, 0, false)
			   : -ENOMEM;
	if (off < 0) {
		free(table);
		free(pba);
		return off;
	}
	reg(cfg, off + PCI_MSIX_FLAGS, 2, vectors - 1, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	wr(cfg->bytes, off + PCI_MSIX_TABLE, table_offset | table_bar, 4);
	wr(cfg->bytes, off + PCI_MSIX_PBA, pba_offset | pba_bar, 4);
	cfg->msix = (unsigned)off;
	cfg->msix_n = vectors;
	cfg->table_bar = table_bar;
	cfg->table_off = table_offset;
	cfg->pba_bar = pba_bar;
	cfg->pba_off = pba_offset;
	cfg->table = table;
	cfg->pba = pba;
	msix_reset_table(cfg);
	return off;
}

static bool link_width_ok(unsigned w)
{
	return w == 1 || w == 2 || w == 4 || w == 8 || w == 12 || w == 16 || w == 32;
}

int devmig_pci_add_pcie(struct devmig_pci_config *cfg, unsigned offset, unsigned link_speed,
			unsigned link_width)
{
	const uint32_t devctl_wmask = PCI_EXP_DEVCTL_CERE | PCI_EXP_DEVCTL_NFERE |
		PCI_EXP_DEVCTL_FERE | PCI_EXP_DEVCTL_URRE | PCI_EXP_DEVCTL_RELAX_EN |
		PCI_EXP_DEVCTL_PAYLOAD | PCI_EXP_DEVCTL_EXT_TAG | PCI_EXP_DEVCTL_NOSNOOP_EN |
		PCI_EXP_DEVCTL_READRQ;
	/* Same layout in link capabilities and link status: speed, then width. */
	uint32_t link = link_speed | link_width << PCI_EXP_LNKSTA_NLW_SHIFT;
	int off;

	off = cap_unique(cfg, cfg->pcie);
	if (off < 0)
		return off;
	if (link_speed < PCI_EXP_LNKCAP_SLS_2_5GB || link_speed > PCI_EXP_LNKCAP_SLS_64_0GB ||
	    !link_width_ok(link_width))
		return -EINVAL;
	off = cap_add(cfg, offset, PCIE_CAP_SIZE, PCI_CAP_ID_EXP, 0, false);
	if (off < 0)
		return off;
	reg(cfg, off + PCI_EXP_FLAGS, 2, 2 | PCI_EXP_TYPE_ENDPOINT << 4, 0); /* version 2 */
	reg(cfg, off + PCI_EXP_DEVCAP, 4,
	    1 /* 256-byte payload */ | PCI_EXP_DEVCAP_EXT_TAG | PCI_EXP_DEVCAP_RBER, 0);
	reg(cfg, off + PCI_EXP_DEVCTL, 2,
	    PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_NOSNOOP_EN | PCI_EXP_DEVCTL_READRQ_512B,
	    devctl_wmask);
	wr(W1CMASK(cfg), off + PCI_EXP_DEVSTA,
	   PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_NFED | PCI_EXP_DEVSTA_FED | PCI_EXP_DEVSTA_URD, 2);
	wr(RTMASK(cfg), off + PCI_EXP_DEVSTA, PCI_EXP_DEVSTA_AUXPD | PCI_EXP_DEVSTA_TRPND, 2);
	reg(cfg, off + PCI_EXP_LNKCAP, 4, link, 0);
	reg(cfg, off + PCI_EXP_LNKCTL, 2, 0,
	    PCI_EXP_LNKCTL_ASPMC | PCI_EXP_LNKCTL_RCB | PCI_EXP_LNKCTL_CCC | PCI_EXP_LNKCTL_ES);
	reg(cfg, off + PCI_EXP_LNKSTA, 2, link, 0);
	reg(cfg, off + PCI_EXP_DEVCAP2, 4, PCI_EXP_DEVCAP2_COMP_TMOUT_DIS, 0);
	reg(cfg, off + PCI_EXP_DEVCTL2, 2, 0, PCI_EXP_DEVCTL2_COMP_TMOUT_DIS);
	/* Supported speeds vector: bit s for every speed up to the maximum. */
	reg(cfg, off + PCI_EXP_LNKCAP2, 4, ((1u << link_speed) - 1) << 1, 0);
	reg(cfg, off + PCI_EXP_LNKCTL2, 2, link_speed, 0);
	cfg->pcie = true;
	return off;
}

int devmig_pci_add_vendor_cap(struct devmig_pci_config *cfg, unsigned offset, const void *data,
			      size_t len)
{
	int off;

	if (len > 0xff - 3 || (len && !data))
		return -EINVAL;
	off = cap_add(cfg, offset, 3 + len, PCI_CAP_ID_VNDR, 0, false);
	if (off < 0)
		return off;
	cfg->bytes[off + PCI_CAP_FLAGS] = (uint8_t)(3 + len); /* length, header included */
	if (len)
		memcpy(cfg->bytes + off + 3, data, len);
	return off;
}

int devmig_pci_add_pasid(struct devmig_pci_config *cfg, unsigned offset, unsigned max_width,
			 unsigned flags)
{
	const unsigned known = PCI_PASID_CAP_EXEC | PCI_PASID_CAP_PRIV;
	uint32_t ctrl_wmask = PCI_PASID_CTRL_ENABLE;
	int off;

	off = cap_unique(cfg, devmig_pcicfg_find_cap(cfg, PCI_EXT_CAP_ID_PASID, true));
	if (off < 0)
		return off;
	if (max_width < 1 || max_width > 20 || (flags & ~known))
		return -EINVAL;
	off = cap_add(cfg, offset, PCI_EXT_CAP_PASID_SIZEOF, PCI_EXT_CAP_ID_PASID, 1, true);
	if (off < 0)
		return off;
	if (flags & PCI_PASID_CAP_EXEC)
		ctrl_wmask |= PCI_PASID_CTRL_EXEC;
	if (flags & PCI_PASID_CAP_PRIV)
		ctrl_wmask |= PCI_PASID_CTRL_PRIV;
	reg(cfg, off + PCI_PASID_CAP, 2, flags | max_width << 8, 0);
	reg(cfg, off + PCI_PASID_CTRL, 2, 0, ctrl_wmask);
	return off;
}

int devmig_pci_add_dsn(struct devmig_pci_config *cfg, unsigned offset, uint64_t serial)
{
	int off;

	off = cap_unique(cfg, devmig_pcicfg_find_cap(cfg, PCI_EXT_CAP_ID_DSN, true));
	if (off < 0)
		return off;
	off = cap_add(cfg, offset, PCI_EXT_CAP_DSN_SIZEOF, PCI_EXT_CAP_ID_DSN, 1, true);
	if (off < 0)
		return off;
	wr(cfg->bytes, off + 4, (uint32_t)serial, 4);
	wr(cfg->bytes, off + 8, (uint32_t)(serial >> 32), 4);
	return off;
}

int devmig_pci_add_ext_cap(struct devmig_pci_config *cfg, unsigned offset, uint16_t id,
			   uint8_t version, const void *data, size_t len)
{
	int off;

	/* ID 0 is the null capability this builder uses to start a chain. */
	if (!id || version > 15 || len > CFG_SIZE - EXT_CAP_START - 4 || (len && !data))
		return -EINVAL;
	off = cap_add(cfg, offset, 4 + len, id, version, true);
	if (off < 0)
		return off;
	if (len)
		memcpy(cfg->bytes + off + 4, data, len);
	return off;
}

/* ---- builder: raw bytes and masks ------------------------------------- */

int devmig_pci_set_bytes(struct devmig_pci_config *cfg, unsigned offset, const void *data,
			 size_t len)
{
	if (cfg->sealed)
		return -EPERM;
	if (!in_cfg(offset, len) || (len && !data))
		return -EINVAL;
	if (len)
		memcpy(cfg->bytes + offset, data, len);
	return 0;
}

int devmig_pci_set_mask(struct devmig_pci_config *cfg, enum devmig_pci_mask kind, unsigned offset,
			const void *mask, size_t len)
{
	const uint8_t *m = mask;

	if (cfg->sealed)
		return -EPERM;
	if ((unsigned)kind >= DEVMIG_PCI_MASK_COUNT || !in_cfg(offset, len) || (len && !m))
		return -EINVAL;
	/* A bit is either written or cleared by a write of one, not both. */
	if (kind == DEVMIG_PCI_MASK_WRITE || kind == DEVMIG_PCI_MASK_W1C) {
		const uint8_t *other = kind == DEVMIG_PCI_MASK_WRITE ? W1CMASK(cfg) : WMASK(cfg);

		for (size_t i = 0; i < len; i++)
			if (m[i] & other[offset + i])
				return -EINVAL;
	}
	if (len)
		memcpy(cfg->mask[kind] + offset, m, len);
	return 0;
}

int devmig_pci_get_mask(const struct devmig_pci_config *cfg, enum devmig_pci_mask kind,
			unsigned offset, void *mask, size_t len)
{
	if ((unsigned)kind >= DEVMIG_PCI_MASK_COUNT || !in_cfg(offset, len) || (len && !mask))
		return -EINVAL;
	if (len)
		memcpy(mask, cfg->mask[kind] + offset, len);
	return 0;
}

const uint8_t *devmig_pcicfg_mask(const struct devmig_pci_config *cfg, enum devmig_pci_mask kind)
{
	return (unsigned)kind < DEVMIG_PCI_MASK_COUNT ? cfg->mask[kind] : NULL;
}

/* ---- MSI queries -------------------------------------------------------- */

bool devmig_pcicfg_msi_enabled(const struct devmig_pci_config *cfg)
{
	return cfg->msi && (msi_ctrl(cfg) & PCI_MSI_FLAGS_ENABLE);
}

unsigned devmig_pcicfg_msi_vectors_enabled(const struct devmig_pci_config *cfg)
{
	return cfg->msi ? 1u << ((msi_ctrl(cfg) & PCI_MSI_FLAGS_QSIZE) >> 4) : 0;
}

bool devmig_pcicfg_msi_vector_masked(const struct devmig_pci_config *cfg, unsigned v)
{
	if (!cfg->msi || v >= devmig_pcicfg_msi_vectors_enabled(cfg))
		return true;
	return msi_maskable(cfg) && (rd(cfg->bytes, msi_mask_reg(cfg), 4) >> v & 1);
}

/*
 * Vector v's pending bit: the MSI capability's pending register with
 * per-vector masking, else kept here (no register shows it). set: 1 sets,
 * 0 clears, -1 only reads. The bit's old value, or -EINVAL for a vector
 * MSI lacks.
 */
static int msi_pending_bit(struct devmig_pci_config *cfg, unsigned v, int set)
{
	if (!cfg->msi || v >= msi_capable(cfg))
		return -EINVAL;
	uint32_t bits = msi_maskable(cfg) ? rd(cfg->bytes, msi_pending_reg(cfg), 4) : cfg->msi_pending;
	int old = bits >> v & 1;
	if (set < 0)
		return old;
	bits = set ? bits | 1u << v : bits & ~(1u << v);
	if (msi_maskable(cfg))
		wr(cfg->bytes, msi_pending_reg(cfg), bits, 4);
	else
		cfg->msi_pending = bits;
	return old;
}

int devmig_pcicfg_msi_set_pending(struct devmig_pci_config *cfg, unsigned v)
{
	int rc = msi_pending_bit(cfg, v, 1);
	return rc < 0 ? rc : 0;
}

int devmig_pcicfg_msi_clear_pending(struct devmig_pci_config *cfg, unsigned v)
{
	int rc = msi_pending_bit(cfg, v, 0);
	return rc < 0 ? rc : 0;
}

bool devmig_pcicfg_msi_pending(const struct devmig_pci_config *cfg, unsigned v)
{
	return msi_pending_bit((struct devmig_pci_config *)cfg, v, -1) == 1;
}

int devmig_pcicfg_msi_message(const struct devmig_pci_config *cfg, unsigned v, uint64_t *addr,
			      uint32_t *data)
{
	unsigned n = devmig_pcicfg_msi_vectors_enabled(cfg);

	if (v >= n)
		return -EINVAL;
	*addr = rd(cfg->bytes, cfg->msi + PCI_MSI_ADDRESS_LO, 4);
	if (msi_is64(cfg))
		*addr |= (uint64_t)rd(cfg->bytes, cfg->msi + PCI_MSI_ADDRESS_HI, 4) << 32;
	/* Multiple message: the function puts the vector number in the low data bits. */
	*data = (rd(cfg->bytes, msi_data_reg(cfg), 2) & ~(n - 1)) | v;
	return 0;
}

/* Send, through the callback, every pending vector that is now deliverable. */
static void msi_fire_pending(struct devmig_pci_config *cfg)
{
	if (!devmig_pcicfg_msi_enabled(cfg))
		return;
	for (unsigned v = 0; v < devmig_pcicfg_msi_vectors_enabled(cfg); v++) {
		if (devmig_pcicfg_msi_pending(cfg, v) && !devmig_pcicfg_msi_vector_masked(cfg, v)) {
			devmig_pcicfg_msi_clear_pending(cfg, v);
			emit(cfg, DEVMIG_PCICFG_EV_MSI_FIRE, v);
		}
	}
}

/* ---- MSI-X ------------------------------------------------------------- */

static uint16_t msix_ctrl(const struct devmig_pci_config *cfg)
{
	return cfg->msix ? (uint16_t)rd(cfg->bytes, cfg->msix + PCI_MSIX_FLAGS, 2) : 0;
}

unsigned devmig_pcicfg_msix_vectors(const struct devmig_pci_config *cfg)
{
	return cfg->msix_n;
}

bool devmig_pcicfg_msix_enabled(const struct devmig_pci_config *cfg)
{
	return msix_ctrl(cfg) & PCI_MSIX_FLAGS_ENABLE;
}

bool devmig_pcicfg_msix_vector_masked(const struct devmig_pci_config *cfg, unsigned v)
{
	if (v >= cfg->msix_n || (msix_ctrl(cfg) & PCI_MSIX_FLAGS_MASKALL))
		return true;
	return cfg->table_written &&
	       (cfg->table[v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL] &
		PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

bool devmig_pcicfg_msix_table_written(const struct devmig_pci_config *cfg)
{
	return cfg->table_written;
}

int devmig_pcicfg_msix_set_pending(struct devmig_pci_config *cfg, unsigned v)
{
	if (v >= cfg->msix_n)
		return -EINVAL;
	cfg->pba[v / 8] |= (uint8_t)(1u << (v % 8));
	return 0;
}

int devmig_pcicfg_msix_clear_pending(struct devmig_pci_config *cfg, unsigned v)
{
	if (v >= cfg->msix_n)
		return -EINVAL;
	cfg->pba[v / 8] &= (uint8_t)~(1u << (v % 8));
	return 0;
}

bool devmig_pcicfg_msix_pending(const struct devmig_pci_config *cfg, unsigned v)
{
	return v < cfg->msix_n && (cfg->pba[v / 8] >> (v % 8) & 1);
}

int devmig_pcicfg_msix_message(const struct devmig_pci_config *cfg, unsigned v, uint64_t *addr,
			       uint32_t *data)
{
	const uint8_t *e;

	if (v >= cfg->msix_n)
		return -EINVAL;
	e = cfg->table + (size_t)v * PCI_MSIX_ENTRY_SIZE;
	*addr = rd(e, PCI_MSIX_ENTRY_LOWER_ADDR, 4) |
		(uint64_t)rd(e, PCI_MSIX_ENTRY_UPPER_ADDR, 4) << 32;
	*data = rd(e, PCI_MSIX_ENTRY_DATA, 4);
	return 0;
}

static void msix_fire_one(struct devmig_pci_config *cfg, unsigned v)
{
	if (devmig_pcicfg_msix_pending(cfg, v) && devmig_pcicfg_msix_enabled(cfg) &&
	    !devmig_pcicfg_msix_vector_masked(cfg, v)) {
		devmig_pcicfg_msix_clear_pending(cfg, v);
		emit(cfg, DEVMIG_PCICFG_EV_MSIX_FIRE, v);
	}
}

static void msix_fire_pending(struct devmig_pci_config *cfg)
{
	for (unsigned v = 0; v < cfg->msix_n; v++)
		msix_fire_one(cfg, v);
}

/* Apply a write at table offset rel, then report changed entries. */
static void msix_table_write(struct devmig_pci_config *cfg, size_t rel, const uint8_t *src,
			     size_t len)
{
	uint64_t dirty[MSIX_MAX / 64] = { 0 };
	size_t first = rel / PCI_MSIX_ENTRY_SIZE, last = (rel + len - 1) / PCI_MSIX_ENTRY_SIZE;

	for (size_t i = 0; i < len; i++) {
		size_t o = rel + i, e = o / PCI_MSIX_ENTRY_SIZE;
		uint8_t m = entry_wmask[o % PCI_MSIX_ENTRY_SIZE];
		uint8_t v = (uint8_t)((cfg->table[o] & ~m) | (src[i] & m));

		if (v != cfg->table[o])
			dirty[e / 64] |= 1ull << (e % 64);
		cfg->table[o] = v;
	}
	if (!cfg->notify)
		return;
	for (size_t e = first; e <= last; e++) {
		if (dirty[e / 64] >> (e % 64) & 1) {
			emit(cfg, DEVMIG_PCICFG_EV_MSIX_ENTRY, (unsigned)e);
			msix_fire_one(cfg, (unsigned)e);
		}
	}
}

/* 1: [off, off+len) inside [start, start+size); 0: disjoint; -EINVAL: straddles. */
static int window(uint64_t off, size_t len, uint64_t start, uint64_t size)
{
	uint64_t end = start + size; /* both below 2^33: no overflow */

	if (off >= end)
		return 0;
	if (off < start)
		return len <= start - off ? 0 : -EINVAL;
	return len <= end - off ? 1 : -EINVAL;
}

int devmig_pcicfg_msix_access(struct devmig_pci_config *cfg, unsigned bar, uint64_t offset,
			      void *buf, size_t len, bool is_write)
{
	int t = 0, p = 0;

	if (!cfg->msix || !len)
		return 0;
	if (bar == cfg->table_bar)
		t = window(offset, len, cfg->table_off,
			   (uint64_t)cfg->msix_n * PCI_MSIX_ENTRY_SIZE);
	if (bar == cfg->pba_bar)
		p = window(offset, len, cfg->pba_off, pba_bytes(cfg->msix_n));
	if (t < 0 || p < 0)
		return -EINVAL;
	if (t) {
		size_t rel = (size_t)(offset - cfg->table_off);

		if (is_write) {
			cfg->table_written = true;
			msix_table_write(cfg, rel, buf, len);
		}
		else
			memcpy(buf, cfg->table + rel, len);
	} else if (p && !is_write) {
		memcpy(buf, cfg->pba + (offset - cfg->pba_off), len);
	}
	/* PBA writes are ignored: only the function sets or clears pending bits. */
	return t || p;
}

/* ---- the config access path ------------------------------------------- */

int devmig_pcicfg_read(const struct devmig_pci_config *cfg, uint64_t offset, void *buf,
		       size_t len)
{
	if (!in_cfg(offset, len))
		return -EINVAL;
	if (len)
		memcpy(buf, cfg->bytes + offset, len);
	return 0;
}

int devmig_pcicfg_poke(struct devmig_pci_config *cfg, uint64_t offset, const void *buf,
		       size_t len)
{
	if (!in_cfg(offset, len))
		return -EINVAL;
	if (len)
		memcpy(cfg->bytes + offset, buf, len);
	return 0;
}

/* The range a write touched and the bytes it held before. */
struct wctx {
	const uint8_t *old;
	unsigned off, len;
};

/* Did the write change any byte of register [reg, reg+n)? */
static bool changed(const struct devmig_pci_config *cfg, const struct wctx *w, unsigned reg_off,
		    unsigned n)
{
	unsigned lo = reg_off > w->off ? reg_off : w->off;
	unsigned hi = reg_off + n < w->off + w->len ? reg_off + n : w->off + w->len;

	return lo < hi && memcmp(cfg->bytes + lo, w->old + (lo - w->off), hi - lo) != 0;
}

/* Only D0 and D3hot exist: selecting D1 or D2 is discarded, as PM 1.2 requires. */
static void pm_fixup(struct devmig_pci_config *cfg, const struct wctx *w)
{
	unsigned r = cfg->pm + PCI_PM_CTRL;
	unsigned st;

	if (!cfg->pm || !changed(cfg, w, r, 1))
		return;
	st = cfg->bytes[r] & PCI_PM_CTRL_STATE_MASK;
	if (st == 1 || st == 2)
		cfg->bytes[r] = (uint8_t)((cfg->bytes[r] & ~PCI_PM_CTRL_STATE_MASK) |
					  (w->old[r - w->off] & PCI_PM_CTRL_STATE_MASK));
}

/* Multiple message enable above multiple message capable reads back as capable. */
static void msi_fixup(struct devmig_pci_config *cfg)
{
	uint16_t ctrl;
	unsigned cap, en;

	if (!cfg->msi)
		return;
	ctrl = msi_ctrl(cfg);
	cap = (ctrl & PCI_MSI_FLAGS_QMASK) >> 1;
	en = (ctrl & PCI_MSI_FLAGS_QSIZE) >> 4;
	if (en > cap)
		wr(cfg->bytes, cfg->msi + PCI_MSI_FLAGS, (ctrl & ~PCI_MSI_FLAGS_QSIZE) | cap << 4, 2);
}

static void notify_bars(struct devmig_pci_config *cfg, const struct wctx *w)
{
	for (unsigned b = 0; b < DEVMIG_PCI_NUM_BARS; b++) {
		unsigned n = cfg->bar[b].flags & PCI_BASE_ADDRESS_MEM_TYPE_64 ? 8 : 4;

		if (cfg->bar[b].used && changed(cfg, w, PCI_BASE_ADDRESS_0 + 4 * b, n))
			emit(cfg, DEVMIG_PCICFG_EV_BAR, b);
	}
}

static void notify_msi(struct devmig_pci_config *cfg, const struct wctx *w)
{
	unsigned addr = cfg->msi + PCI_MSI_ADDRESS_LO;
	bool ctl = changed(cfg, w, cfg->msi + PCI_MSI_FLAGS, 2);
	bool msg = changed(cfg, w, addr, msi_data_reg(cfg) + 2 - addr);
	bool mask = msi_maskable(cfg) && changed(cfg, w, msi_mask_reg(cfg), 4);

	if (ctl)
		emit(cfg, DEVMIG_PCICFG_EV_MSI_CTRL, 0);
	if (msg)
		emit(cfg, DEVMIG_PCICFG_EV_MSI_MESSAGE, 0);
	if (mask)
		emit(cfg, DEVMIG_PCICFG_EV_MSI_MASK, 0);
	if (ctl || mask)
		msi_fire_pending(cfg);
}

static void notify_write(struct devmig_pci_config *cfg, const struct wctx *w)
{
	if (!cfg->notify)
		return;
	if (changed(cfg, w, PCI_COMMAND, 2))
		emit(cfg, DEVMIG_PCICFG_EV_COMMAND, 0);
	notify_bars(cfg, w);
	if (cfg->msi)
		notify_msi(cfg, w);
	if (cfg->msix && changed(cfg, w, cfg->msix + PCI_MSIX_FLAGS, 2)) {
		emit(cfg, DEVMIG_PCICFG_EV_MSIX_CTRL, 0);
		msix_fire_pending(cfg);
	}
}

int devmig_pcicfg_write(struct devmig_pci_config *cfg, uint64_t offset, const void *buf,
			size_t len)
{
	uint8_t old[CFG_SIZE];
	struct wctx w = { .old = old, .off = (unsigned)offset, .len = (unsigned)len };
	const uint8_t *src = buf;

	if (!in_cfg(offset, len))
		return -EINVAL;
	if (!len)
		return 0;
	memcpy(old, cfg->bytes + offset, len);
	for (size_t i = 0; i < len; i++) {
		size_t o = offset + i;
		uint8_t wm = WMASK(cfg)[o];
		uint8_t v = (uint8_t)((cfg->bytes[o] & ~wm) | (src[i] & wm));

		cfg->bytes[o] = (uint8_t)(v & ~(src[i] & W1CMASK(cfg)[o]));
	}
	pm_fixup(cfg, &w);
	msi_fixup(cfg);
	notify_write(cfg, &w);
	return 0;
}

/* ---- other queries ------------------------------------------------------ */

int devmig_pcicfg_bar_info(const struct devmig_pci_config *cfg, unsigned bar, uint64_t *size,
			   unsigned *flags)
{
	if (bar >= DEVMIG_PCI_NUM_BARS || !cfg->bar[bar].used)
		return -ENOENT;
	if (size)
		*size = cfg->bar[bar].size;
	if (flags)
		*flags = cfg->bar[bar].flags;
	return 0;
}

uint64_t devmig_pcicfg_bar_address(const struct devmig_pci_config *cfg, unsigned bar)
{
	unsigned off = PCI_BASE_ADDRESS_0 + 4 * bar;
	uint64_t a;

	if (bar >= DEVMIG_PCI_NUM_BARS || !cfg->bar[bar].used)
		return 0;
	a = rd(cfg->bytes, off, 4);
	if (cfg->bar[bar].flags & PCI_BASE_ADDRESS_MEM_TYPE_64)
		a |= (uint64_t)rd(cfg->bytes, off + 4, 4) << 32;
	return a & (cfg->bar[bar].flags & PCI_BASE_ADDRESS_SPACE_IO ? ~(uint64_t)3 : ~(uint64_t)0xf);
}

bool devmig_pcicfg_intx_disabled(const struct devmig_pci_config *cfg)
{
	return rd(cfg->bytes, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE;
}

void devmig_pcicfg_set_intx_status(struct devmig_pci_config *cfg, bool asserted)
{
	if (asserted)
		cfg->bytes[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
	else
		cfg->bytes[PCI_STATUS] &= (uint8_t)~PCI_STATUS_INTERRUPT;
}

void devmig_pcicfg_intx_set_pending(struct devmig_pci_config *cfg, bool pending)
{
	cfg->intx_pending = pending;
}

bool devmig_pcicfg_intx_pending(const struct devmig_pci_config *cfg)
{
	return cfg->intx_pending;
}

/* ---- migration ---------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, uint8_t b)
{
	return (h ^ b) * 0x100000001b3ull;
}

uint64_t devmig_pcicfg_fingerprint(const struct devmig_pci_config *cfg)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (unsigned o = 0; o < CFG_SIZE; o++) {
		uint8_t m = fixed_bits(cfg, o);

		h = fnv1a(h, m);
		h = fnv1a(h, cfg->bytes[o] & m);
	}
	return h;
}

/* Where the interrupt state starts in a saved config. */
static size_t save_irq_offset(const struct devmig_pci_config *cfg)
{
	return SAVE_HDR + CFG_SIZE + (size_t)cfg->msix_n * PCI_MSIX_ENTRY_SIZE +
	       (cfg->msix_n ? pba_bytes(cfg->msix_n) : 0);
}

size_t devmig_pcicfg_save_size(const struct devmig_pci_config *cfg)
{
	return save_irq_offset(cfg) + SAVE_IRQ_STATE;
}

int devmig_pcicfg_save(const struct devmig_pci_config *cfg, void *buf, size_t len)
{
	uint8_t *out = buf;
	uint64_t fp = devmig_pcicfg_fingerprint(cfg);
	size_t tlen = (size_t)cfg->msix_n * PCI_MSIX_ENTRY_SIZE;
	unsigned irq = (unsigned)save_irq_offset(cfg);

	if (len < devmig_pcicfg_save_size(cfg))
		return -ENOSPC;
	wr(out, 0, (uint32_t)fp, 4);
	wr(out, 4, (uint32_t)(fp >> 32), 4);
	memcpy(out + SAVE_HDR, cfg->bytes, CFG_SIZE);
	if (cfg->msix_n) {
		memcpy(out + SAVE_HDR + CFG_SIZE, cfg->table, tlen);
		memcpy(out + SAVE_HDR + CFG_SIZE + tlen, cfg->pba, pba_bytes(cfg->msix_n));
	}
	wr(out, irq, (cfg->table_written ? IRQ_STATE_MSIX_TABLE_WRITTEN : 0) |
			     (cfg->intx_pending ? IRQ_STATE_INTX_PENDING : 0), 4);
	wr(out, irq + 4, cfg->msi_pending, 4);
	return 0;
}

__attribute__((format(printf, 3, 4)))
static int refuse(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

struct field {
	uint8_t off, len;
	const char *name;
};

static const struct field header_fields[] = {
	{ 0x00, 2, "vendor id" }, { 0x02, 2, "device id" },
	{ 0x04, 2, "command" }, { 0x06, 2, "status" },
	{ 0x08, 1, "revision" }, { 0x09, 3, "class code" },
	{ 0x0c, 1, "cache line size" }, { 0x0d, 1, "latency timer" },
	{ 0x0e, 1, "header type" }, { 0x0f, 1, "BIST" },
	{ 0x10, 4, "BAR0" }, { 0x14, 4, "BAR1" }, { 0x18, 4, "BAR2" },
	{ 0x1c, 4, "BAR3" }, { 0x20, 4, "BAR4" }, { 0x24, 4, "BAR5" },
	{ 0x28, 4, "CardBus CIS pointer" }, { 0x2c, 2, "subsystem vendor id" },
	{ 0x2e, 2, "subsystem id" }, { 0x30, 4, "expansion ROM" },
	{ 0x34, 1, "capabilities pointer" }, { 0x3c, 1, "interrupt line" },
	{ 0x3d, 1, "interrupt pin" }, { 0x3e, 1, "min grant" }, { 0x3f, 1, "max latency" },
};

static const char *cap_name(const struct cap *c)
{
	if (c->ext) {
		switch (c->id) {
		case 0: return "null extended";
		case PCI_EXT_CAP_ID_DSN: return "device serial number";
		case PCI_EXT_CAP_ID_PASID: return "PASID";
		default: return "extended";
		}
	}
	switch (c->id) {
	case PCI_CAP_ID_PM: return "power management";
	case PCI_CAP_ID_MSI: return "MSI";
	case PCI_CAP_ID_MSIX: return "MSI-X";
	case PCI_CAP_ID_EXP: return "PCI Express";
	case PCI_CAP_ID_VNDR: return "vendor-specific";
	default: return "standard";
	}
}

/* Name the field at offset o and show both values of it. */
static int refuse_mismatch(const struct devmig_pci_config *cfg, const uint8_t *img, unsigned o,
			   char *why, size_t whylen)
{
	for (size_t i = 0; i < sizeof(header_fields) / sizeof(header_fields[0]); i++) {
		const struct field *f = &header_fields[i];

		if (o >= f->off && o < f->off + f->len)
			return refuse(why, whylen, "config offset 0x%02x: %s 0x%0*x in stream, 0x%0*x here",
				      f->off, f->name, 2 * f->len, (unsigned)rd(img, f->off, f->len),
				      2 * f->len, (unsigned)rd(cfg->bytes, f->off, f->len));
	}
	for (unsigned i = 0; i < cfg->ncaps; i++) {
		const struct cap *c = &cfg->caps[i];

		if (o >= c->off && o < c->off + c->size)
			return refuse(why, whylen,
				      "config offset 0x%02x: %s capability (ID 0x%02x) at 0x%02x, "
				      "byte 0x%02x in stream, 0x%02x here",
				      o, cap_name(c), c->id, c->off, img[o], cfg->bytes[o]);
	}
	return refuse(why, whylen, "config offset 0x%02x: byte 0x%02x in stream, 0x%02x here", o,
		      img[o], cfg->bytes[o]);
}

/* Values a guest write could never have produced. */
static int check_state(const struct devmig_pci_config *cfg, const uint8_t *img,
		       const uint8_t *table, const uint8_t *pba, char *why, size_t whylen)
{
	if (cfg->msi) {
		uint16_t ctrl = (uint16_t)rd(img, cfg->msi + PCI_MSI_FLAGS, 2);

		if ((ctrl & PCI_MSI_FLAGS_QSIZE) >> 4 > (ctrl & PCI_MSI_FLAGS_QMASK) >> 1)
			return refuse(why, whylen, "config offset 0x%02x: MSI control 0x%04x enables more vectors than capable",
				      cfg->msi + PCI_MSI_FLAGS, ctrl);
	}
	if (cfg->pm) {
		unsigned st = img[cfg->pm + PCI_PM_CTRL] & PCI_PM_CTRL_STATE_MASK;

		if (st == 1 || st == 2)
			return refuse(why, whylen, "config offset 0x%02x: power state D%u not supported",
				      cfg->pm + PCI_PM_CTRL, st);
	}
	for (size_t o = 0; o < (size_t)cfg->msix_n * PCI_MSIX_ENTRY_SIZE; o++)
		if (table[o] & ~entry_wmask[o % PCI_MSIX_ENTRY_SIZE])
			return refuse(why, whylen, "MSI-X table entry %zu byte %zu: reserved bits set (0x%02x)",
				      o / PCI_MSIX_ENTRY_SIZE, o % PCI_MSIX_ENTRY_SIZE, table[o]);
	for (size_t v = cfg->msix_n; v < pba_bytes(cfg->msix_n) * 8; v++)
		if (pba[v / 8] >> (v % 8) & 1)
			return refuse(why, whylen, "MSI-X PBA: vector %zu pending, only %u vectors",
				      v, cfg->msix_n);
	return 0;
}

/* The interrupt state's flags and MSI pending bits: values a save makes. */
static int check_irq_state(const struct devmig_pci_config *cfg, uint32_t flags,
			   uint32_t msi_pending, char *why, size_t whylen)
{
	uint32_t known = IRQ_STATE_INTX_PENDING | (cfg->msix_n ? IRQ_STATE_MSIX_TABLE_WRITTEN : 0);

	if (flags & ~known)
		return refuse(why, whylen, "interrupt state flags 0x%08x: unknown bits set", flags);
	if (!msi_pending)
		return 0;
	if (!cfg->msi)
		return refuse(why, whylen, "MSI pending bits 0x%08x, and the device has no MSI",
			      msi_pending);
	if (msi_maskable(cfg))
		return refuse(why, whylen, "MSI pending bits 0x%08x kept apart, but MSI's own "
				      "pending register holds them", msi_pending);
	if (msi_capable(cfg) < 32 && msi_pending >> msi_capable(cfg))
		return refuse(why, whylen, "MSI pending bits 0x%08x beyond its %u vectors",
			      msi_pending, msi_capable(cfg));
	return 0;
}

int devmig_pcicfg_load(struct devmig_pci_config *cfg, const void *buf, size_t len, char *why,
		       size_t whylen)
{
	const uint8_t *in = buf, *img, *table;
	size_t want = devmig_pcicfg_save_size(cfg), tlen = (size_t)cfg->msix_n * PCI_MSIX_ENTRY_SIZE;
	unsigned irq = (unsigned)save_irq_offset(cfg);
	uint32_t flags, msi_pending;
	uint64_t fp, ours;
	int rc;

	if (why && whylen)
		why[0] = '\0';
	if (len < SAVE_HDR + CFG_SIZE)
		return refuse(why, whylen, "stream has %zu bytes, expected %zu", len, want);
	img = in + SAVE_HDR;
	table = img + CFG_SIZE;
	/* The layout first: it names the difference best. */
	for (unsigned o = 0; o < CFG_SIZE; o++)
		if ((img[o] ^ cfg->bytes[o]) & fixed_bits(cfg, o))
			return refuse_mismatch(cfg, img, o, why, whylen);
	if (len != want)
		return refuse(why, whylen, "stream has %zu bytes, expected %zu", len, want);
	flags = rd(in, irq, 4);
	msi_pending = rd(in, irq + 4, 4);
	fp = rd(in, 0, 4) | (uint64_t)rd(in, 4, 4) << 32;
	ours = devmig_pcicfg_fingerprint(cfg);
	if (fp != ours)
		return refuse(why, whylen,
			      "layout fingerprint 0x%016" PRIx64 " in stream, 0x%016" PRIx64
			      " here (register masks differ)", fp, ours);
	rc = check_state(cfg, img, table, table + tlen, why, whylen);
	if (!rc)
		rc = check_irq_state(cfg, flags, msi_pending, why, whylen);
	if (rc)
		return rc;
	memcpy(cfg->bytes, img, CFG_SIZE);
	if (cfg->msix_n) {
		memcpy(cfg->table, table, tlen);
		memcpy(cfg->pba, table + tlen, pba_bytes(cfg->msix_n));
	}
	cfg->table_written = flags & IRQ_STATE_MSIX_TABLE_WRITTEN;
	cfg->intx_pending = flags & IRQ_STATE_INTX_PENDING;
	cfg->msi_pending = msi_pending;
	return 0;
}
