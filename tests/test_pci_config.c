/* SPDX-License-Identifier: MIT */
/* The PCI config-space core: builder, access path, MSI/MSI-X, migration. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devmig/pci.h"
#include "pci_config.h"

/* ---- event recorder ------------------------------------------------------ */

struct ev {
	enum devmig_pcicfg_event ev;
	unsigned idx;
};
static struct ev evs[256];
static unsigned nevs;

static void record(void *opaque, enum devmig_pcicfg_event ev, unsigned idx)
{
	(void)opaque;
	if (nevs < 256)
		evs[nevs++] = (struct ev){ ev, idx };
}

static unsigned count_ev(enum devmig_pcicfg_event ev, unsigned idx)
{
	unsigned n = 0;

	for (unsigned i = 0; i < nevs; i++)
		n += evs[i].ev == ev && evs[i].idx == idx;
	return n;
}

/* ---- access helpers ------------------------------------------------------ */

static uint32_t rdn(struct devmig_pci_config *c, unsigned off, unsigned n)
{
	uint8_t b[4] = { 0 };
	uint32_t v = 0;

	assert_int_equal(devmig_pcicfg_read(c, off, b, n), 0);
	for (unsigned i = 0; i < n; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static void wrn(struct devmig_pci_config *c, unsigned off, uint32_t v, unsigned n)
{
	uint8_t b[4];

	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	assert_int_equal(devmig_pcicfg_write(c, off, b, n), 0);
}

#define rd8(c, o) rdn(c, o, 1)
#define rd16(c, o) rdn(c, o, 2)
#define rd32(c, o) rdn(c, o, 4)
#define wr16(c, o, v) wrn(c, o, v, 2)
#define wr32(c, o, v) wrn(c, o, v, 4)

static void snapshot(struct devmig_pci_config *c, uint8_t *out)
{
	assert_int_equal(devmig_pcicfg_read(c, 0, out, DEVMIG_PCI_CFG_SIZE), 0);
}

/* MSI-X table dword v/reg through BAR 0 (the full device's layout). */
#define TABLE_OFF 0x2000u
#define PBA_OFF 0x3000u

static uint32_t tbl_rd(struct devmig_pci_config *c, unsigned v, unsigned r)
{
	uint32_t x = 0;

	assert_int_equal(devmig_pcicfg_msix_access(c, 0, TABLE_OFF + 16 * v + r, &x, 4, false), 1);
	return x;
}

static void tbl_wr(struct devmig_pci_config *c, unsigned v, unsigned r, uint32_t x)
{
	assert_int_equal(devmig_pcicfg_msix_access(c, 0, TABLE_OFF + 16 * v + r, &x, 4, true), 1);
}

/* ---- a device with everything ------------------------------------------- */

struct layout {
	int pm, msi, msix, pcie, vndr, pasid, dsn;
};

static struct devmig_pci_config *full(uint16_t device, struct layout *l)
{
	static const uint8_t vdata[5] = { 1, 2, 3, 4, 5 };
	struct devmig_pci_config *c = devmig_pcicfg_create(record, NULL);
	struct layout tmp;

	if (!l)
		l = &tmp;
	assert_non_null(c);
	assert_int_equal(devmig_pci_set_ids(c, 0x1af4, device), 0);
	assert_int_equal(devmig_pci_set_subsystem(c, 0x1af4, 0x1100), 0);
	assert_int_equal(devmig_pci_set_class(c, 0x010802, 0x02), 0);
	assert_int_equal(devmig_pci_set_intx_pin(c, 1), 0);
	assert_int_equal(devmig_pci_set_bar(c, 0, 0x4000, PCI_BASE_ADDRESS_MEM_TYPE_64), 0);
	assert_int_equal(devmig_pci_set_bar(c, 2, 0x1000, 0), 0);
	assert_int_equal(devmig_pci_set_bar(c, 4, 32, PCI_BASE_ADDRESS_SPACE_IO), 0);
	l->pm = devmig_pci_add_pm(c, 0);
	l->msi = devmig_pci_add_msi(c, 0, 4, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT);
	l->msix = devmig_pci_add_msix(c, 0, 8, 0, TABLE_OFF, 0, PBA_OFF);
	l->pcie = devmig_pci_add_pcie(c, 0, PCI_EXP_LNKCAP_SLS_8_0GB, 4);
	l->vndr = devmig_pci_add_vendor_cap(c, 0, vdata, sizeof(vdata));
	l->pasid = devmig_pci_add_pasid(c, 0, 20, PCI_PASID_CAP_EXEC);
	l->dsn = devmig_pci_add_dsn(c, 0, 0x0123456789abcdefull);
	devmig_pcicfg_seal(c);
	nevs = 0;
	return c;
}

static struct devmig_pci_config *bare(void)
{
	struct devmig_pci_config *c = devmig_pcicfg_create(record, NULL);

	assert_non_null(c);
	nevs = 0;
	return c;
}

/* ---- identity ------------------------------------------------------------ */

static void t_ids(void **s)
{
	struct devmig_pci_config *c = full(0x10f2, NULL);

	(void)s;
	assert_int_equal(rd16(c, PCI_VENDOR_ID), 0x1af4);
	assert_int_equal(rd16(c, PCI_DEVICE_ID), 0x10f2);
	assert_int_equal(rd32(c, PCI_CLASS_REVISION), 0x01080202);
	assert_int_equal(rd16(c, PCI_SUBSYSTEM_VENDOR_ID), 0x1af4);
	assert_int_equal(rd16(c, PCI_SUBSYSTEM_ID), 0x1100);
	assert_int_equal(rd8(c, PCI_HEADER_TYPE), 0);
	assert_int_equal(rd8(c, PCI_INTERRUPT_PIN), 1);
	/* identity is read-only */
	wr32(c, PCI_VENDOR_ID, 0);
	wr32(c, PCI_CLASS_REVISION, 0);
	assert_int_equal(rd16(c, PCI_DEVICE_ID), 0x10f2);
	assert_int_equal(rd32(c, PCI_CLASS_REVISION), 0x01080202);
	/* the interrupt line is a scratch register */
	wrn(c, PCI_INTERRUPT_LINE, 0x2b, 1);
	assert_int_equal(rd8(c, PCI_INTERRUPT_LINE), 0x2b);
	/* sealed: the builder refuses */
	assert_int_equal(devmig_pci_set_ids(c, 1, 2), -EPERM);
	assert_int_equal(devmig_pci_add_dsn(c, 0, 1), -EPERM);
	devmig_pcicfg_destroy(c);
}

static void t_id_refusals(void **s)
{
	struct devmig_pci_config *c = bare();

	(void)s;
	assert_int_equal(devmig_pci_set_ids(c, 0xffff, 1), -EINVAL);
	assert_int_equal(devmig_pci_set_class(c, 0x1000000, 0), -EINVAL);
	assert_int_equal(devmig_pci_set_intx_pin(c, 5), -EINVAL);
	assert_int_equal(rd32(c, 0), 0);
	assert_int_equal(rd32(c, PCI_CLASS_REVISION), 0);
	devmig_pcicfg_destroy(c);
}

/* ---- BARs ---------------------------------------------------------------- */

static void t_bar_mem32(void **s)
{
	struct devmig_pci_config *c = full(1, NULL);

	(void)s;
	wr32(c, PCI_BASE_ADDRESS_2, 0xffffffff);
	assert_int_equal(rd32(c, PCI_BASE_ADDRESS_2), 0xfffff000);
	wr32(c, PCI_BASE_ADDRESS_2, 0xfebc1234);
	assert_int_equal(rd32(c, PCI_BASE_ADDRESS_2), 0xfebc1000);
	assert_int_equal(devmig_pcicfg_bar_address(c, 2), 0xfebc1000);
	devmig_pcicfg_destroy(c);
}

static void t_bar_mem64_prefetch(void **s)
{
	struct devmig_pci_config *c = bare();
	uint64_t size;
	unsigned flags;

	(void)s;
	assert_int_equal(devmig_pci_set_bar(c, 1, 1ull << 33,
					    PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH), 0);
	assert_int_equal(devmig_pci_set_bar(c, 2, 4096, 0), -EEXIST); /* upper half */
	assert_int_equal(devmig_pcicfg_bar_info(c, 2, NULL, NULL), -ENOENT);
	assert_int_equal(devmig_pcicfg_bar_info(c, 1, &size, &flags), 0);
	assert_int_equal(size, 1ull << 33);
	assert_int_equal(rd32(c, PCI_BASE_ADDRESS_1), 0x0000000c);
	wr32(c, PCI_BASE_ADDRESS_1, 0xffffffff);
	wr32(c, PCI_BASE_ADDRESS_2, 0xffffffff);
	/* 8 GiB: no address bits in the lower half, bit 1 of the upper is size */
	assert_int_equal(rd32(c, PCI_BASE_ADDRESS_1), 0x0000000c);
	assert_int_equal(rd32(c, PCI_BASE_ADDRESS_2), 0xfffffffe);
	wr32(c, PCI_BASE_ADDRESS_1, 0);
	wr32(c, PCI_BASE_ADDRESS_2, 0x4);
	assert_int_equal(devmig_pcicfg_bar_address(c, 1), 0x400000000ull);

	/* a small 64-bit BAR: sizing spans both halves */
	assert_int_equal(devmig_pci_set_bar(c, 3, 0x4000, PCI_BASE_ADDRESS_MEM_TYPE_64), 0);
	wr32(c, PCI_BASE_ADDRESS_3, 0xffffffff);
	wr32(c, PCI_BASE_ADDRESS_4, 0xffffffff);
	assert_int_equal(rd32(c, PCI_BASE_ADDRESS_3), 0xffffc004);
	assert_int_equal(rd32(c, PCI_BASE_ADDRESS_4), 0xffffffff);
	devmig_pcicfg_destroy(c);
}

static void t_bar_io_and_unimplemented(void **s)
{
	struct devmig_pci_config *c = full(1, NULL);

	(void)s;
	wr32(c, PCI_BASE_ADDRESS_4, 0xffffffff);
	assert_int_equal(rd32(c, PCI_BASE_ADDRESS_4), 0xffffffe1);
	wr32(c, PCI_BASE_ADDRESS_4, 0xc043);
	assert_int_equal(rd32(c, PCI_BASE_ADDRESS_4), 0xc041);
	assert_int_equal(devmig_pcicfg_bar_address(c, 4), 0xc040);
	/* BAR5 is not declared; the expansion ROM is not implemented */
	wr32(c, PCI_BASE_ADDRESS_5, 0xffffffff);
	wr32(c, PCI_ROM_ADDRESS, 0xffffffff);
	assert_int_equal(rd32(c, PCI_BASE_ADDRESS_5), 0);
	assert_int_equal(rd32(c, PCI_ROM_ADDRESS), 0);
	devmig_pcicfg_destroy(c);
}

static void t_bar_refusals(void **s)
{
	struct devmig_pci_config *c = bare();
	uint8_t before[DEVMIG_PCI_CFG_SIZE], after[DEVMIG_PCI_CFG_SIZE];

	(void)s;
	snapshot(c, before);
	assert_int_equal(devmig_pci_set_bar(c, 0, 3000, 0), -EINVAL);
	assert_int_equal(devmig_pci_set_bar(c, 0, 8, 0), -EINVAL);
	assert_int_equal(devmig_pci_set_bar(c, 0, 1ull << 32, 0), -EINVAL); /* needs 64-bit */
	assert_int_equal(devmig_pci_set_bar(c, 0, 512, PCI_BASE_ADDRESS_SPACE_IO), -EINVAL);
	assert_int_equal(devmig_pci_set_bar(c, 0, 16,
					    PCI_BASE_ADDRESS_SPACE_IO | PCI_BASE_ADDRESS_MEM_PREFETCH), -EINVAL);
	assert_int_equal(devmig_pci_set_bar(c, 5, 4096, PCI_BASE_ADDRESS_MEM_TYPE_64), -EINVAL);
	assert_int_equal(devmig_pci_set_bar(c, 6, 4096, 0), -EINVAL);
	assert_int_equal(devmig_pci_set_bar(c, 0, 4096, 0x2), -EINVAL);
	snapshot(c, after);
	assert_memory_equal(before, after, sizeof(before));
	assert_int_equal(devmig_pci_set_bar(c, 1, 4096, 0), 0);
	assert_int_equal(devmig_pci_set_bar(c, 0, 4096, PCI_BASE_ADDRESS_MEM_TYPE_64), -EEXIST);
	assert_int_equal(devmig_pci_set_bar(c, 1, 4096, 0), -EEXIST);
	devmig_pcicfg_destroy(c);
}

/* ---- command and status -------------------------------------------------- */

static void t_command_mask(void **s)
{
	struct devmig_pci_config *c = bare();

	(void)s;
	wr16(c, PCI_COMMAND, 0xffff);
	/* no BARs: neither I/O nor memory enable */
	assert_int_equal(rd16(c, PCI_COMMAND), PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |
						       PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
	assert_true(devmig_pcicfg_intx_disabled(c));
	assert_int_equal(devmig_pci_set_bar(c, 0, 4096, 0), 0);
	wr16(c, PCI_COMMAND, 0xffff);
	assert_int_equal(rd16(c, PCI_COMMAND), 0x0546);
	assert_int_equal(devmig_pci_set_bar(c, 1, 16, PCI_BASE_ADDRESS_SPACE_IO), 0);
	wr16(c, PCI_COMMAND, 0xffff);
	assert_int_equal(rd16(c, PCI_COMMAND), 0x0547);
	wr16(c, PCI_COMMAND, 0);
	assert_int_equal(rd16(c, PCI_COMMAND), 0);
	assert_false(devmig_pcicfg_intx_disabled(c));
	devmig_pcicfg_destroy(c);
}

static void t_status_w1c(void **s)
{
	struct devmig_pci_config *c = full(1, NULL);
	uint16_t err = PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_REC_MASTER_ABORT;
	uint16_t st = (uint16_t)(rd16(c, PCI_STATUS) | err);

	(void)s;
	assert_true(rd16(c, PCI_STATUS) & PCI_STATUS_CAP_LIST);
	assert_int_equal(devmig_pcicfg_poke(c, PCI_STATUS, &st, 2), 0);
	devmig_pcicfg_set_intx_status(c, true);
	wr16(c, PCI_STATUS, 0); /* zeros clear nothing */
	assert_int_equal(rd16(c, PCI_STATUS), st | PCI_STATUS_INTERRUPT);
	wr16(c, PCI_STATUS, 0xffff & ~PCI_STATUS_SIG_SYSTEM_ERROR);
	/* master abort cleared; SERR, capability list and interrupt status kept */
	assert_int_equal(rd16(c, PCI_STATUS), PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT |
					       PCI_STATUS_SIG_SYSTEM_ERROR);
	wr16(c, PCI_STATUS, PCI_STATUS_SIG_SYSTEM_ERROR);
	devmig_pcicfg_set_intx_status(c, false);
	assert_int_equal(rd16(c, PCI_STATUS), PCI_STATUS_CAP_LIST);
	devmig_pcicfg_destroy(c);
}

/* ---- capability chains --------------------------------------------------- */

static void t_cap_chain(void **s)
{
	struct layout l;
	struct devmig_pci_config *c = full(1, &l);
	const int want_std[] = { l.pm, l.msi, l.msix, l.pcie, l.vndr };
	const uint8_t ids[] = { PCI_CAP_ID_PM, PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX, PCI_CAP_ID_EXP,
				PCI_CAP_ID_VNDR };
	unsigned p = rd8(c, PCI_CAPABILITY_LIST), n = 0;

	(void)s;
	assert_int_equal(l.pm, 0x40); /* first fit, packed */
	assert_int_equal(l.msi, 0x48);
	assert_int_equal(l.msix, 0x60);
	assert_int_equal(l.pcie, 0x6c);
	assert_int_equal(l.vndr, 0xa8);
	for (; p; p = rd8(c, p + PCI_CAP_LIST_NEXT), n++) {
		assert_true(n < 5);
		assert_int_equal(p, want_std[n]);
		assert_int_equal(rd8(c, p), ids[n]);
	}
	assert_int_equal(n, 5);
	assert_int_equal(rd8(c, l.vndr + PCI_CAP_FLAGS), 8); /* length with header */
	assert_int_equal(rd8(c, l.vndr + 7), 5);

	/* extended: PASID at 0x100, then DSN */
	assert_int_equal(l.pasid, 0x100);
	assert_int_equal(l.dsn, 0x108);
	uint32_t h = rd32(c, 0x100);
	assert_int_equal(PCI_EXT_CAP_ID(h), PCI_EXT_CAP_ID_PASID);
	assert_int_equal(PCI_EXT_CAP_VER(h), 1);
	assert_int_equal(PCI_EXT_CAP_NEXT(h), 0x108);
	h = rd32(c, 0x108);
	assert_int_equal(PCI_EXT_CAP_ID(h), PCI_EXT_CAP_ID_DSN);
	assert_int_equal(PCI_EXT_CAP_NEXT(h), 0);
	assert_int_equal(rd32(c, 0x10c), 0x89abcdef);
	assert_int_equal(rd32(c, 0x110), 0x01234567);
	assert_int_equal(devmig_pcicfg_find_cap(c, PCI_CAP_ID_MSIX, false), 0x60);
	assert_int_equal(devmig_pcicfg_find_cap(c, PCI_EXT_CAP_ID_DSN, true), 0x108);
	assert_int_equal(devmig_pcicfg_find_cap(c, PCI_EXT_CAP_ID_ERR, true), 0);
	/* chain pointers are read-only */
	wrn(c, PCI_CAPABILITY_LIST, 0, 1);
	wr32(c, 0x100, 0);
	assert_int_equal(rd8(c, PCI_CAPABILITY_LIST), 0x40);
	assert_int_equal(PCI_EXT_CAP_NEXT(rd32(c, 0x100)), 0x108);
	devmig_pcicfg_destroy(c);
}

static void t_cap_explicit_offsets(void **s)
{
	struct devmig_pci_config *c = bare();
	static const uint8_t raw[8] = { 0xaa };

	(void)s;
	assert_int_equal(devmig_pci_add_msi(c, 0x80, 1, 0), 0x80);
	assert_int_equal(devmig_pci_add_pm(c, 0x50), 0x50);
	assert_int_equal(devmig_pci_add_vendor_cap(c, 0, raw, 1), 0x40); /* first fit */
	/* the chain keeps insertion order: 0x80 -> 0x50 -> 0x40 */
	assert_int_equal(rd8(c, PCI_CAPABILITY_LIST), 0x80);
	assert_int_equal(rd8(c, 0x81), 0x50);
	assert_int_equal(rd8(c, 0x51), 0x40);
	assert_int_equal(rd8(c, 0x41), 0);

	/* first extended cap away from 0x100: a null header there points to it */
	assert_int_equal(devmig_pci_add_ext_cap(c, 0x180, 0x23, 1, raw, sizeof(raw)), 0x180);
	assert_int_equal(rd32(c, 0x100), 0x180u << 20);
	assert_int_equal(rd32(c, 0x184), 0xaa);
	assert_int_equal(devmig_pci_add_dsn(c, 0, 7), 0x104);
	assert_int_equal(PCI_EXT_CAP_NEXT(rd32(c, 0x180)), 0x104);
	assert_int_equal(PCI_EXT_CAP_NEXT(rd32(c, 0x104)), 0);
	assert_int_equal(devmig_pci_add_pasid(c, 0x100, 8, 0), -EBUSY);
	devmig_pcicfg_destroy(c);
}

static void t_cap_refusals(void **s)
{
	struct devmig_pci_config *c = bare();
	uint8_t before[DEVMIG_PCI_CFG_SIZE], after[DEVMIG_PCI_CFG_SIZE];
	uint8_t big[200] = { 0 };

	(void)s;
	assert_int_equal(devmig_pci_set_bar(c, 0, 0x1000, 0), 0);
	assert_int_equal(devmig_pci_set_bar(c, 1, 32, PCI_BASE_ADDRESS_SPACE_IO), 0);
	assert_int_equal(devmig_pci_add_msi(c, 0x60, 8, PCI_MSI_FLAGS_MASKBIT), 0x60);
	snapshot(c, before);
	assert_int_equal(devmig_pci_add_pm(c, 0x42), -EINVAL);       /* alignment */
	assert_int_equal(devmig_pci_add_pm(c, 0x3c), -ERANGE);       /* in the header */
	assert_int_equal(devmig_pci_add_pm(c, 0xfc), -ERANGE);       /* past 0x100 */
	assert_int_equal(devmig_pci_add_pm(c, 0x70), -EBUSY);        /* MSI is 0x60..0x73 */
	assert_int_equal(devmig_pci_add_pm(c, 0x5c), -EBUSY);
	assert_int_equal(devmig_pci_add_msi(c, 0, 1, 0), -EEXIST);
	assert_int_equal(devmig_pci_add_dsn(c, 0xc0, 1), -ERANGE);   /* extended below 0x100 */
	assert_int_equal(devmig_pci_add_dsn(c, 0xff8, 1), -ERANGE);  /* past 4096 */
	assert_int_equal(devmig_pci_add_pcie(c, 0xd0, 3, 4), -ERANGE); /* 0x3c bytes */
	assert_int_equal(devmig_pci_add_pcie(c, 0, 7, 4), -EINVAL);
	assert_int_equal(devmig_pci_add_pcie(c, 0, 3, 3), -EINVAL);
	assert_int_equal(devmig_pci_add_vendor_cap(c, 0, big, sizeof(big)), -ENOSPC);
	assert_int_equal(devmig_pci_add_vendor_cap(c, 0, big, 253), -EINVAL);
	assert_int_equal(devmig_pci_add_ext_cap(c, 0, 0, 1, NULL, 0), -EINVAL); /* ID 0 */
	assert_int_equal(devmig_pci_add_ext_cap(c, 0, 0x23, 16, NULL, 0), -EINVAL);
	assert_int_equal(devmig_pci_add_pasid(c, 0, 21, 0), -EINVAL);
	/* MSI */
	assert_int_equal(devmig_pci_add_msi(c, 0, 3, 0), -EEXIST);
	/* MSI-X: vectors, BARs, fit, overlap, alignment */
	assert_int_equal(devmig_pci_add_msix(c, 0, 0, 0, 0, 0, 0x800), -EINVAL);
	assert_int_equal(devmig_pci_add_msix(c, 0, 2049, 0, 0, 0, 0x800), -EINVAL);
	assert_int_equal(devmig_pci_add_msix(c, 0, 8, 2, 0, 0, 0x800), -ENOENT);
	assert_int_equal(devmig_pci_add_msix(c, 0, 8, 1, 0, 0, 0x800), -EINVAL); /* I/O BAR */
	assert_int_equal(devmig_pci_add_msix(c, 0, 8, 0, 0xf90, 0, 0x800), -ERANGE);
	assert_int_equal(devmig_pci_add_msix(c, 0, 8, 0, 0, 0, 0xffc), -EINVAL);
	assert_int_equal(devmig_pci_add_msix(c, 0, 8, 0, 0, 0, 0xff8), 0x40); /* fits exactly */
	snapshot(c, after);
	assert_memory_not_equal(before, after, sizeof(before)); /* that last one succeeded */
	devmig_pcicfg_destroy(c);

	c = bare();
	assert_int_equal(devmig_pci_set_bar(c, 0, 0x1000, 0), 0);
	assert_int_equal(devmig_pci_add_msi(c, 0, 64, 0), -EINVAL);
	assert_int_equal(devmig_pci_add_msi(c, 0, 3, 0), -EINVAL);
	assert_int_equal(devmig_pci_add_msi(c, 0, 4, 0x200), -EINVAL);
	snapshot(c, before);
	assert_int_equal(devmig_pci_add_msix(c, 0, 8, 0, 0x100, 0, 0x178), -EBUSY);
	assert_int_equal(devmig_pci_add_msix(c, 0, 8, 0, 0x100, 0, 0x108), -EBUSY);
	assert_int_equal(devmig_pci_add_msix(c, 0, 2048, 0, 0, 0, 0x800), -ERANGE);
	snapshot(c, after);
	assert_memory_equal(before, after, sizeof(before));
	assert_int_equal(devmig_pci_add_msix(c, 0, 8, 0, 0x100, 0, 0xf8), 0x40); /* touching */
	devmig_pcicfg_destroy(c);
}

static void t_cap_space_exhausted(void **s)
{
	struct devmig_pci_config *c = bare();
	uint8_t d[0x3d] = { 0 };

	(void)s;
	/* 0x40 bytes each: three fill 0x40..0xff */
	for (int i = 0; i < 3; i++)
		assert_int_equal(devmig_pci_add_vendor_cap(c, 0, d, sizeof(d)), 0x40 + 0x40 * i);
	assert_int_equal(devmig_pci_add_pm(c, 0), -ENOSPC);
	devmig_pcicfg_destroy(c);
}

/* ---- access path --------------------------------------------------------- */

static void t_out_of_range(void **s)
{
	struct devmig_pci_config *c = full(1, NULL);
	uint8_t before[DEVMIG_PCI_CFG_SIZE], after[DEVMIG_PCI_CFG_SIZE];
	uint8_t buf[8] = { 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a };
	const uint8_t ones[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	(void)s;
	wr16(c, PCI_COMMAND, PCI_COMMAND_MEMORY);
	nevs = 0;
	snapshot(c, before);
	assert_int_equal(devmig_pcicfg_read(c, 4096, buf, 1), -EINVAL);
	assert_int_equal(devmig_pcicfg_read(c, 4095, buf, 2), -EINVAL);
	assert_int_equal(devmig_pcicfg_read(c, UINT64_MAX, buf, 2), -EINVAL);
	assert_int_equal(devmig_pcicfg_read(c, 1, buf, SIZE_MAX), -EINVAL);
	for (int i = 0; i < 8; i++)
		assert_int_equal(buf[i], 0x5a);
	assert_int_equal(devmig_pcicfg_write(c, 4094, ones, 4), -EINVAL);
	assert_int_equal(devmig_pcicfg_write(c, (1ull << 32) + 4, ones, 2), -EINVAL);
	assert_int_equal(devmig_pcicfg_write(c, 0, ones, 4097), -EINVAL);
	assert_int_equal(devmig_pcicfg_poke(c, 4096, ones, 1), -EINVAL);
	snapshot(c, after);
	assert_memory_equal(before, after, sizeof(before));
	assert_int_equal(nevs, 0);
	/* the last byte is in range */
	assert_int_equal(devmig_pcicfg_read(c, 4095, buf, 1), 0);
	assert_int_equal(devmig_pcicfg_write(c, 4095, ones, 1), 0);
	assert_int_equal(devmig_pcicfg_read(c, 4096, buf, 0), 0);
	devmig_pcicfg_destroy(c);
}

static void t_unaligned(void **s)
{
	struct devmig_pci_config *c = full(1, NULL);
	const uint8_t ff[3] = { 0xff, 0xff, 0xff };
	uint8_t b[7];

	(void)s;
	/* three bytes into BAR2 from offset 0x19: its upper 24 bits */
	assert_int_equal(devmig_pcicfg_write(c, PCI_BASE_ADDRESS_2 + 1, ff, 3), 0);
	assert_int_equal(rd32(c, PCI_BASE_ADDRESS_2), 0xfffff000);
	assert_int_equal(count_ev(DEVMIG_PCICFG_EV_BAR, 2), 1);
	/* high byte of command alone: only INTx disable and SERR stick */
	wrn(c, PCI_COMMAND + 1, 0xff, 1);
	assert_int_equal(rd16(c, PCI_COMMAND), PCI_COMMAND_INTX_DISABLE | PCI_COMMAND_SERR);
	/* an odd read across vendor/device/command */
	assert_int_equal(devmig_pcicfg_read(c, 1, b, 7), 0);
	assert_int_equal(b[0], 0x1a);
	assert_int_equal(b[1], 0x01);
	assert_int_equal(b[2], 0x00);
	assert_int_equal(b[4], 0x05);
	/* a write spanning command and status: command set, W1C honoured */
	uint16_t st = PCI_STATUS_DETECTED_PARITY | PCI_STATUS_CAP_LIST;
	assert_int_equal(devmig_pcicfg_poke(c, PCI_STATUS, &st, 2), 0);
	const uint8_t span[3] = { PCI_COMMAND_MASTER, 0, 0x80 };
	assert_int_equal(devmig_pcicfg_write(c, PCI_COMMAND + 1 - 1, span, 3), 0);
	assert_int_equal(rd16(c, PCI_COMMAND), PCI_COMMAND_MASTER);
	assert_int_equal(rd16(c, PCI_STATUS), PCI_STATUS_DETECTED_PARITY | PCI_STATUS_CAP_LIST);
	const uint8_t clr[1] = { 0x80 };
	assert_int_equal(devmig_pcicfg_write(c, PCI_STATUS + 1, clr, 1), 0);
	assert_int_equal(rd16(c, PCI_STATUS), PCI_STATUS_CAP_LIST);
	/* a whole-space write works and leaves identity alone */
	uint8_t *all = calloc(1, DEVMIG_PCI_CFG_SIZE);
	assert_non_null(all);
	memset(all, 0xff, DEVMIG_PCI_CFG_SIZE);
	assert_int_equal(devmig_pcicfg_write(c, 0, all, DEVMIG_PCI_CFG_SIZE), 0);
	assert_int_equal(rd16(c, PCI_DEVICE_ID), 1);
	assert_int_equal(rd32(c, PCI_BASE_ADDRESS_0), 0xffffc004);
	free(all);
	devmig_pcicfg_destroy(c);
}

/* ---- events -------------------------------------------------------------- */

static void t_callback_reasons(void **s)
{
	struct layout l;
	struct devmig_pci_config *c = full(1, &l);

	(void)s;
	wr16(c, PCI_COMMAND, PCI_COMMAND_MEMORY);
	assert_int_equal(nevs, 1);
	assert_int_equal(evs[0].ev, DEVMIG_PCICFG_EV_COMMAND);
	wr16(c, PCI_COMMAND, PCI_COMMAND_MEMORY); /* unchanged: silent */
	wr16(c, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_FAST_BACK); /* RO bit */
	assert_int_equal(nevs, 1);

	nevs = 0;
	wr32(c, PCI_BASE_ADDRESS_1, 0x1); /* upper half of BAR0 */
	assert_int_equal(nevs, 1);
	assert_int_equal(evs[0].ev, DEVMIG_PCICFG_EV_BAR);
	assert_int_equal(evs[0].idx, 0);
	wr32(c, PCI_BASE_ADDRESS_5, 0x1000); /* unimplemented */
	wr32(c, PCI_BASE_ADDRESS_2, 0x123); /* only RO bits */
	assert_int_equal(nevs, 1);

	nevs = 0;
	wr16(c, l.msi + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE);
	wr32(c, l.msi + PCI_MSI_ADDRESS_HI, 0x1);
	wr16(c, l.msi + PCI_MSI_DATA_64, 0x40);
	wr32(c, l.msi + PCI_MSI_MASK_64, 0x2);
	assert_int_equal(nevs, 4);
	assert_int_equal(evs[0].ev, DEVMIG_PCICFG_EV_MSI_CTRL);
	assert_int_equal(evs[1].ev, DEVMIG_PCICFG_EV_MSI_MESSAGE);
	assert_int_equal(evs[2].ev, DEVMIG_PCICFG_EV_MSI_MESSAGE);
	assert_int_equal(evs[3].ev, DEVMIG_PCICFG_EV_MSI_MASK);

	nevs = 0;
	wr16(c, l.msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	wr16(c, l.msix + PCI_MSIX_FLAGS, 0x07ff); /* table size is RO: clears both */
	tbl_wr(c, 3, PCI_MSIX_ENTRY_DATA, 0x55);
	tbl_wr(c, 3, PCI_MSIX_ENTRY_DATA, 0x55);
	assert_int_equal(nevs, 3);
	assert_int_equal(evs[0].ev, DEVMIG_PCICFG_EV_MSIX_CTRL);
	assert_int_equal(evs[1].ev, DEVMIG_PCICFG_EV_MSIX_CTRL);
	assert_int_equal(evs[2].ev, DEVMIG_PCICFG_EV_MSIX_ENTRY);
	assert_int_equal(evs[2].idx, 3);
	devmig_pcicfg_destroy(c);
}

/* ---- MSI ----------------------------------------------------------------- */

static void t_msi(void **s)
{
	struct layout l;
	struct devmig_pci_config *c = full(1, &l);
	unsigned m = l.msi;
	uint64_t addr;
	uint32_t data;

	(void)s;
	assert_int_equal(rd16(c, m + PCI_MSI_FLAGS),
			 PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | 2 << 1);
	assert_false(devmig_pcicfg_msi_enabled(c));
	/* ask for 32 vectors: clamped to the 4 capable */
	wr16(c, m + PCI_MSI_FLAGS, 0xffff);
	assert_int_equal(rd16(c, m + PCI_MSI_FLAGS), PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT |
						       2 << 4 | 2 << 1 | PCI_MSI_FLAGS_ENABLE);
	assert_true(devmig_pcicfg_msi_enabled(c));
	assert_int_equal(devmig_pcicfg_msi_vectors_enabled(c), 4);
	wr16(c, m + PCI_MSI_FLAGS, 1 << 4 | PCI_MSI_FLAGS_ENABLE);
	assert_int_equal(devmig_pcicfg_msi_vectors_enabled(c), 2);
	wr32(c, m + PCI_MSI_ADDRESS_LO, 0xfee00003);
	wr32(c, m + PCI_MSI_ADDRESS_HI, 0x1);
	wr32(c, m + PCI_MSI_DATA_64, 0xffff4023); /* 16-bit data, extended data RO */
	assert_int_equal(rd32(c, m + PCI_MSI_ADDRESS_LO), 0xfee00000);
	assert_int_equal(rd32(c, m + PCI_MSI_DATA_64), 0x4023);
	assert_int_equal(devmig_pcicfg_msi_message(c, 1, &addr, &data), 0);
	assert_int_equal(addr, 0x1fee00000ull);
	assert_int_equal(data, 0x4023);
	assert_int_equal(devmig_pcicfg_msi_message(c, 0, &addr, &data), 0);
	assert_int_equal(data, 0x4022);
	assert_int_equal(devmig_pcicfg_msi_message(c, 2, &addr, &data), -EINVAL);
	/* mask bits exist for the 4 capable vectors only; pending is RO */
	wr32(c, m + PCI_MSI_MASK_64, 0xffffffff);
	assert_int_equal(rd32(c, m + PCI_MSI_MASK_64), 0xf);
	assert_true(devmig_pcicfg_msi_vector_masked(c, 1));
	assert_true(devmig_pcicfg_msi_vector_masked(c, 3)); /* not allocated */
	wr32(c, m + PCI_MSI_PENDING_64, 0xffffffff);
	assert_int_equal(rd32(c, m + PCI_MSI_PENDING_64), 0);
	devmig_pcicfg_destroy(c);
}

static uint8_t *save(struct devmig_pci_config *c, size_t *len);

static void t_msi_pending(void **s)
{
	struct layout l;
	struct devmig_pci_config *c = full(1, &l);
	unsigned m = l.msi;

	(void)s;
	wr16(c, m + PCI_MSI_FLAGS, 2 << 4 | PCI_MSI_FLAGS_ENABLE);
	wr32(c, m + PCI_MSI_MASK_64, 0x6);
	assert_int_equal(devmig_pcicfg_msi_set_pending(c, 1), 0);
	assert_int_equal(devmig_pcicfg_msi_set_pending(c, 2), 0);
	assert_int_equal(devmig_pcicfg_msi_set_pending(c, 4), -EINVAL);
	assert_int_equal(rd32(c, m + PCI_MSI_PENDING_64), 0x6);
	nevs = 0;
	wr32(c, m + PCI_MSI_MASK_64, 0x4); /* unmask vector 1 */
	assert_int_equal(count_ev(DEVMIG_PCICFG_EV_MSI_FIRE, 1), 1);
	assert_int_equal(count_ev(DEVMIG_PCICFG_EV_MSI_FIRE, 2), 0);
	assert_false(devmig_pcicfg_msi_pending(c, 1));
	assert_true(devmig_pcicfg_msi_pending(c, 2));
	/* disabled: unmasking does not fire */
	wr16(c, m + PCI_MSI_FLAGS, 2 << 4);
	nevs = 0;
	wr32(c, m + PCI_MSI_MASK_64, 0);
	assert_int_equal(count_ev(DEVMIG_PCICFG_EV_MSI_FIRE, 2), 0);
	wr16(c, m + PCI_MSI_FLAGS, 2 << 4 | PCI_MSI_FLAGS_ENABLE);
	assert_int_equal(count_ev(DEVMIG_PCICFG_EV_MSI_FIRE, 2), 1);
	assert_int_equal(rd32(c, m + PCI_MSI_PENDING_64), 0);
	devmig_pcicfg_destroy(c);

	/*
	 * Without per-vector masking no register shows the pending bits: the
	 * function keeps them itself, fires them like the others and saves
	 * them with the config.
	 */
	c = bare();
	assert_int_equal(devmig_pci_add_msi(c, 0, 2, 0), 0x40);
	devmig_pcicfg_seal(c);
	uint8_t before[DEVMIG_PCI_CFG_SIZE], after[DEVMIG_PCI_CFG_SIZE];
	snapshot(c, before);
	assert_int_equal(devmig_pcicfg_msi_set_pending(c, 1), 0);
	assert_int_equal(devmig_pcicfg_msi_set_pending(c, 2), -EINVAL); /* 2 vectors */
	assert_true(devmig_pcicfg_msi_pending(c, 1));
	assert_false(devmig_pcicfg_msi_pending(c, 0));
	snapshot(c, after);
	assert_memory_equal(before, after, sizeof(before));
	size_t len;
	uint8_t *buf = save(c, &len);
	struct devmig_pci_config *d = bare();
	assert_int_equal(devmig_pci_add_msi(d, 0, 2, 0), 0x40);
	devmig_pcicfg_seal(d);
	assert_int_equal(devmig_pcicfg_load(d, buf, len, NULL, 0), 0);
	assert_true(devmig_pcicfg_msi_pending(d, 1));
	/* bits beyond its vectors are refused */
	buf[len - 4] = 0x4;
	char why[160];
	assert_int_equal(devmig_pcicfg_load(d, buf, len, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "MSI pending bits 0x00000004 beyond its 2 vectors");
	free(buf);
	nevs = 0;
	wr16(c, 0x40 + PCI_MSI_FLAGS, 1 << 4 | PCI_MSI_FLAGS_ENABLE);
	assert_false(devmig_pcicfg_msi_vector_masked(c, 1));
	assert_int_equal(count_ev(DEVMIG_PCICFG_EV_MSI_FIRE, 1), 1);
	assert_false(devmig_pcicfg_msi_pending(c, 1));
	assert_int_equal(devmig_pcicfg_reset(d), 0);
	assert_false(devmig_pcicfg_msi_pending(d, 1));
	devmig_pcicfg_destroy(d);
	devmig_pcicfg_destroy(c);
}

/* ---- MSI-X --------------------------------------------------------------- */

static void t_msix_table(void **s)
{
	struct layout l;
	struct devmig_pci_config *c = full(1, &l);
	uint64_t addr;
	uint32_t data, x = 0;
	uint8_t b[16];

	(void)s;
	assert_int_equal(rd16(c, l.msix + PCI_MSIX_FLAGS), 7);
	assert_int_equal(rd32(c, l.msix + PCI_MSIX_TABLE), TABLE_OFF | 0);
	assert_int_equal(rd32(c, l.msix + PCI_MSIX_PBA), PBA_OFF | 0);
	assert_int_equal(devmig_pcicfg_msix_vectors(c), 8);
	/* reset: every vector masked */
	for (unsigned v = 0; v < 8; v++)
		assert_int_equal(tbl_rd(c, v, PCI_MSIX_ENTRY_VECTOR_CTRL), 1);
	tbl_wr(c, 5, PCI_MSIX_ENTRY_LOWER_ADDR, 0xfee01003);
	tbl_wr(c, 5, PCI_MSIX_ENTRY_UPPER_ADDR, 0x2);
	tbl_wr(c, 5, PCI_MSIX_ENTRY_DATA, 0xdeadbeef);
	tbl_wr(c, 5, PCI_MSIX_ENTRY_VECTOR_CTRL, 0xfffffffe);
	assert_int_equal(tbl_rd(c, 5, PCI_MSIX_ENTRY_LOWER_ADDR), 0xfee01000);
	assert_int_equal(tbl_rd(c, 5, PCI_MSIX_ENTRY_VECTOR_CTRL), 0); /* reserved bits RO */
	assert_int_equal(devmig_pcicfg_msix_message(c, 5, &addr, &data), 0);
	assert_int_equal(addr, 0x2fee01000ull);
	assert_int_equal(data, 0xdeadbeef);
	assert_int_equal(devmig_pcicfg_msix_message(c, 8, &addr, &data), -EINVAL);
	/* masking: per vector, and the function mask */
	assert_false(devmig_pcicfg_msix_vector_masked(c, 5)); /* masking is not enabling */
	assert_false(devmig_pcicfg_msix_enabled(c));
	wr16(c, l.msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
	assert_true(devmig_pcicfg_msix_enabled(c));
	assert_false(devmig_pcicfg_msix_vector_masked(c, 5));
	assert_true(devmig_pcicfg_msix_vector_masked(c, 4));
	assert_true(devmig_pcicfg_msix_vector_masked(c, 8));
	wr16(c, l.msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	assert_true(devmig_pcicfg_msix_vector_masked(c, 5));
	/* a 64-bit and an odd 3-byte access inside one entry */
	uint64_t q = 0x1122334455667788ull;
	assert_int_equal(devmig_pcicfg_msix_access(c, 0, TABLE_OFF + 16, &q, 8, true), 1);
	assert_int_equal(devmig_pcicfg_msix_access(c, 0, TABLE_OFF + 17, b, 3, false), 1);
	assert_int_equal(b[0], 0x77);
	assert_int_equal(b[2], 0x55);
	assert_int_equal(tbl_rd(c, 1, 0), 0x55667788);
	/* outside: routed to the device; straddling refused; other BAR not ours */
	assert_int_equal(devmig_pcicfg_msix_access(c, 0, TABLE_OFF - 4, &x, 4, false), 0);
	assert_int_equal(devmig_pcicfg_msix_access(c, 0, TABLE_OFF + 8 * 16, &x, 4, false), 0);
	assert_int_equal(devmig_pcicfg_msix_access(c, 0, TABLE_OFF - 2, &x, 4, true), -EINVAL);
	assert_int_equal(devmig_pcicfg_msix_access(c, 0, TABLE_OFF + 8 * 16 - 2, &x, 4, false),
			 -EINVAL);
	assert_int_equal(devmig_pcicfg_msix_access(c, 2, TABLE_OFF, &x, 4, false), 0);
	assert_int_equal(devmig_pcicfg_msix_access(c, 0, UINT64_MAX - 1, &x, 4, false), 0);
	devmig_pcicfg_destroy(c);
}

static void t_msix_pending(void **s)
{
	struct layout l;
	struct devmig_pci_config *c = full(1, &l);
	uint64_t pba = 0xffffffffffffffffull;

	(void)s;
	wr16(c, l.msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(devmig_pcicfg_msix_set_pending(c, 2), 0);
	assert_int_equal(devmig_pcicfg_msix_set_pending(c, 6), 0);
	assert_int_equal(devmig_pcicfg_msix_set_pending(c, 8), -EINVAL);
	assert_int_equal(devmig_pcicfg_msix_access(c, 0, PBA_OFF, &pba, 8, false), 1);
	assert_int_equal(pba, 0x44);
	/* the PBA is read-only */
	pba = 0;
	assert_int_equal(devmig_pcicfg_msix_access(c, 0, PBA_OFF, &pba, 8, true), 1);
	assert_true(devmig_pcicfg_msix_pending(c, 2));
	/* unmask vector 2: fired, pending cleared */
	nevs = 0;
	tbl_wr(c, 2, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
	assert_int_equal(nevs, 2);
	assert_int_equal(evs[0].ev, DEVMIG_PCICFG_EV_MSIX_ENTRY);
	assert_int_equal(evs[1].ev, DEVMIG_PCICFG_EV_MSIX_FIRE);
	assert_int_equal(evs[1].idx, 2);
	assert_false(devmig_pcicfg_msix_pending(c, 2));
	/* function mask held while unmasking 6: nothing until it drops */
	wr16(c, l.msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	nevs = 0;
	tbl_wr(c, 6, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
	assert_int_equal(count_ev(DEVMIG_PCICFG_EV_MSIX_FIRE, 6), 0);
	assert_true(devmig_pcicfg_msix_pending(c, 6));
	wr16(c, l.msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(count_ev(DEVMIG_PCICFG_EV_MSIX_FIRE, 6), 1);
	assert_false(devmig_pcicfg_msix_pending(c, 6));
	/* clear_pending withdraws an interrupt */
	devmig_pcicfg_msix_set_pending(c, 7);
	assert_int_equal(devmig_pcicfg_msix_clear_pending(c, 7), 0);
	tbl_wr(c, 7, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
	assert_int_equal(count_ev(DEVMIG_PCICFG_EV_MSIX_FIRE, 7), 0);
	devmig_pcicfg_destroy(c);
}

/* ---- PM, PCIe, PASID, masks ---------------------------------------------- */

static void t_pm_pcie_pasid(void **s)
{
	struct layout l;
	struct devmig_pci_config *c = full(1, &l);
	unsigned e = l.pcie;

	(void)s;
	assert_int_equal(rd16(c, l.pm + PCI_PM_CTRL), PCI_PM_CTRL_NO_SOFT_RESET);
	wr16(c, l.pm + PCI_PM_CTRL, 3);
	assert_int_equal(rd16(c, l.pm + PCI_PM_CTRL) & 3, 3);
	wr16(c, l.pm + PCI_PM_CTRL, 1); /* D1 unsupported: ignored */
	assert_int_equal(rd16(c, l.pm + PCI_PM_CTRL) & 3, 3);
	wr16(c, l.pm + PCI_PM_CTRL, 0);
	assert_int_equal(rd16(c, l.pm + PCI_PM_CTRL), PCI_PM_CTRL_NO_SOFT_RESET);

	assert_int_equal(rd16(c, e + PCI_EXP_FLAGS), 0x0002); /* v2 endpoint */
	assert_int_equal(rd32(c, e + PCI_EXP_LNKCAP) & (PCI_EXP_LNKCAP_SLS | PCI_EXP_LNKCAP_MLW),
			 0x43);
	assert_int_equal(rd16(c, e + PCI_EXP_LNKSTA) & (PCI_EXP_LNKSTA_CLS | PCI_EXP_LNKSTA_NLW),
			 0x43);
	assert_int_equal(rd32(c, e + PCI_EXP_LNKCAP2), 0xe);
	wr16(c, e + PCI_EXP_DEVCTL, 0xffff);
	assert_int_equal(rd16(c, e + PCI_EXP_DEVCTL), 0x79ff); /* no FLR, phantom, aux */
	uint16_t err = PCI_EXP_DEVSTA_URD | PCI_EXP_DEVSTA_CED;
	devmig_pcicfg_poke(c, e + PCI_EXP_DEVSTA, &err, 2);
	wr16(c, e + PCI_EXP_DEVSTA, PCI_EXP_DEVSTA_URD);
	assert_int_equal(rd16(c, e + PCI_EXP_DEVSTA), PCI_EXP_DEVSTA_CED);

	assert_int_equal(rd16(c, l.pasid + PCI_PASID_CAP), 20 << 8 | PCI_PASID_CAP_EXEC);
	wr16(c, l.pasid + PCI_PASID_CTRL, 0xffff);
	assert_int_equal(rd16(c, l.pasid + PCI_PASID_CTRL),
			 PCI_PASID_CTRL_ENABLE | PCI_PASID_CTRL_EXEC);
	devmig_pcicfg_destroy(c);
}

static void t_masks(void **s)
{
	struct devmig_pci_config *c = bare();
	static const uint8_t vd[4] = { 0 };
	const uint8_t ff = 0xff, f0 = 0xf0, zero = 0;
	uint8_t m;

	(void)s;
	int v = devmig_pci_add_vendor_cap(c, 0, vd, sizeof(vd));
	assert_int_equal(v, 0x40);
	assert_int_equal(devmig_pci_set_mask(c, DEVMIG_PCI_MASK_WRITE, v + 4, &ff, 1), 0);
	/* a bit cannot be both writable and write-1-to-clear */
	assert_int_equal(devmig_pci_set_mask(c, DEVMIG_PCI_MASK_W1C, v + 4, &f0, 1), -EINVAL);
	assert_int_equal(devmig_pci_set_mask(c, DEVMIG_PCI_MASK_W1C, v + 5, &f0, 1), 0);
	assert_int_equal(devmig_pci_set_mask(c, DEVMIG_PCI_MASK_WRITE, v + 5, &ff, 1), -EINVAL);
	assert_int_equal(devmig_pci_set_mask(c, DEVMIG_PCI_MASK_WRITE, 4095, &ff, 2), -EINVAL);
	assert_int_equal(devmig_pci_set_mask(c, 9, 0, &ff, 1), -EINVAL);
	uint8_t raw = 0xf3;
	assert_int_equal(devmig_pci_set_bytes(c, v + 5, &raw, 1), 0);
	wrn(c, v + 4, 0xa5, 1);
	assert_int_equal(rd8(c, v + 4), 0xa5);
	wrn(c, v + 5, 0x1f, 1);
	assert_int_equal(rd8(c, v + 5), 0xe3);
	/* everything is virtual by default; the author can say otherwise */
	assert_int_equal(devmig_pci_get_mask(c, DEVMIG_PCI_MASK_VIRTUAL, 0, &m, 1), 0);
	assert_int_equal(m, 0xff);
	assert_int_equal(devmig_pci_set_mask(c, DEVMIG_PCI_MASK_VIRTUAL, 0, &zero, 1), 0);
	assert_int_equal(devmig_pcicfg_mask(c, DEVMIG_PCI_MASK_VIRTUAL)[0], 0);
	assert_int_equal(devmig_pcicfg_mask(c, DEVMIG_PCI_MASK_WRITE)[v + 4], 0xff);
	devmig_pcicfg_destroy(c);
}

/* ---- reset, migration ---------------------------------------------------- */

/* Put guest-visible state everywhere it can go. */
static void dirty(struct devmig_pci_config *c, const struct layout *l)
{
	wr16(c, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	wr32(c, PCI_BASE_ADDRESS_0, 0xfe000000);
	wr32(c, PCI_BASE_ADDRESS_1, 0x1);
	wr32(c, PCI_BASE_ADDRESS_4, 0xc000);
	wr16(c, l->msi + PCI_MSI_FLAGS, 1 << 4);
	wr32(c, l->msi + PCI_MSI_ADDRESS_LO, 0xfee00000);
	wr32(c, l->msi + PCI_MSI_MASK_64, 0x3);
	assert_int_equal(devmig_pcicfg_msi_set_pending(c, 1), 0);
	wr16(c, l->msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	for (unsigned v = 0; v < 8; v++) {
		tbl_wr(c, v, PCI_MSIX_ENTRY_LOWER_ADDR, 0xfee00000 + 0x1000 * v);
		tbl_wr(c, v, PCI_MSIX_ENTRY_DATA, 0x30 + v);
		tbl_wr(c, v, PCI_MSIX_ENTRY_VECTOR_CTRL, v & 1);
	}
	assert_int_equal(devmig_pcicfg_msix_set_pending(c, 3), 0);
	devmig_pcicfg_intx_set_pending(c, true);
	uint16_t st = PCI_STATUS_CAP_LIST | PCI_STATUS_REC_MASTER_ABORT;
	devmig_pcicfg_poke(c, PCI_STATUS, &st, 2);
	devmig_pcicfg_set_intx_status(c, true);
}

static void t_reset(void **s)
{
	struct layout l;
	struct devmig_pci_config *c = full(1, &l);
	uint8_t before[DEVMIG_PCI_CFG_SIZE], after[DEVMIG_PCI_CFG_SIZE];
	struct devmig_pci_config *u = bare();

	(void)s;
	snapshot(c, before);
	dirty(c, &l);
	assert_int_equal(devmig_pcicfg_reset(c), 0);
	snapshot(c, after);
	assert_memory_equal(before, after, sizeof(before));
	assert_int_equal(tbl_rd(c, 2, PCI_MSIX_ENTRY_VECTOR_CTRL), 1);
	assert_int_equal(tbl_rd(c, 2, PCI_MSIX_ENTRY_DATA), 0);
	assert_false(devmig_pcicfg_msix_pending(c, 3));
	assert_false(devmig_pcicfg_msi_pending(c, 1));
	assert_false(devmig_pcicfg_intx_pending(c));
	assert_int_equal(devmig_pcicfg_reset(u), -EINVAL); /* never sealed */
	devmig_pcicfg_destroy(u);
	devmig_pcicfg_destroy(c);
}

static uint8_t *save(struct devmig_pci_config *c, size_t *len)
{
	*len = devmig_pcicfg_save_size(c);
	uint8_t *b = malloc(*len);

	assert_non_null(b);
	assert_int_equal(devmig_pcicfg_save(c, b, *len - 1), -ENOSPC);
	assert_int_equal(devmig_pcicfg_save(c, b, *len), 0);
	return b;
}

static void t_save_load_roundtrip(void **s)
{
	struct layout l;
	struct devmig_pci_config *a = full(0x10f2, &l), *b = full(0x10f2, NULL);
	uint8_t ca[DEVMIG_PCI_CFG_SIZE], cb[DEVMIG_PCI_CFG_SIZE];
	uint8_t ta[8 * 16 + 8], tb[8 * 16 + 8];
	char why[160];
	size_t len;

	(void)s;
	assert_int_equal(devmig_pcicfg_save_size(a), 8 + 4096 + 8 * 16 + 8 + 8);
	dirty(a, &l);
	uint8_t *buf = save(a, &len);
	nevs = 0;
	assert_int_equal(devmig_pcicfg_load(b, buf, len, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	assert_int_equal(nevs, 0);
	snapshot(a, ca);
	snapshot(b, cb);
	assert_memory_equal(ca, cb, sizeof(ca));
	for (unsigned i = 0; i < 8 * 16; i += 4) {
		assert_int_equal(devmig_pcicfg_msix_access(a, 0, TABLE_OFF + i, ta + i, 4, false), 1);
		assert_int_equal(devmig_pcicfg_msix_access(b, 0, TABLE_OFF + i, tb + i, 4, false), 1);
	}
	assert_int_equal(devmig_pcicfg_msix_access(a, 0, PBA_OFF, ta + 128, 8, false), 1);
	assert_int_equal(devmig_pcicfg_msix_access(b, 0, PBA_OFF, tb + 128, 8, false), 1);
	assert_memory_equal(ta, tb, sizeof(ta));
	assert_true(devmig_pcicfg_msix_pending(b, 3));
	assert_true(devmig_pcicfg_msi_pending(b, 1));
	assert_true(devmig_pcicfg_intx_pending(b));
	assert_int_equal(devmig_pcicfg_bar_address(b, 0), 0x1fe000000ull);
	assert_int_equal(devmig_pcicfg_fingerprint(a), devmig_pcicfg_fingerprint(b));
	free(buf);
	devmig_pcicfg_destroy(a);
	devmig_pcicfg_destroy(b);
}

static void expect_refused(struct devmig_pci_config *dst, const uint8_t *buf, size_t len,
			   const char *reason)
{
	uint8_t before[DEVMIG_PCI_CFG_SIZE], after[DEVMIG_PCI_CFG_SIZE];
	uint32_t e0, e1;
	char why[200];

	snapshot(dst, before);
	e0 = tbl_rd(dst, 0, PCI_MSIX_ENTRY_VECTOR_CTRL);
	assert_int_equal(devmig_pcicfg_load(dst, buf, len, why, sizeof(why)), -EINVAL);
	if (!strstr(why, reason))
		fail_msg("reason \"%s\" lacks \"%s\"", why, reason);
	snapshot(dst, after);
	e1 = tbl_rd(dst, 0, PCI_MSIX_ENTRY_VECTOR_CTRL);
	assert_memory_equal(before, after, sizeof(before));
	assert_int_equal(e0, e1);
}

static void t_load_other_device(void **s)
{
	struct layout l;
	struct devmig_pci_config *a = full(0x10f1, &l), *b = full(0x10f2, NULL);
	size_t len;
	uint8_t *buf;

	(void)s;
	dirty(a, &l);
	buf = save(a, &len);
	expect_refused(b, buf, len,
		       "config offset 0x02: device id 0x10f1 in stream, 0x10f2 here");
	free(buf);
	devmig_pcicfg_destroy(a);
	devmig_pcicfg_destroy(b);
}

static void t_load_refusals(void **s)
{
	struct layout l;
	struct devmig_pci_config *a = full(1, &l), *b = full(1, NULL);
	size_t len;
	uint8_t *buf;

	(void)s;
	buf = save(a, &len);
	expect_refused(b, buf, 100, "stream has 100 bytes, expected 4248");
	expect_refused(b, buf, len - 8, "stream has 4240 bytes");
	/* unknown interrupt state flags */
	buf[len - 8] |= 0x4;
	expect_refused(b, buf, len, "interrupt state flags 0x00000004: unknown bits set");
	buf[len - 8] &= (uint8_t)~0x4;
	/* MSI pending bits apart from a capability that has its own register */
	buf[len - 4] = 0x1;
	expect_refused(b, buf, len, "MSI pending bits 0x00000001 kept apart, but MSI's own "
				    "pending register holds them");
	buf[len - 4] = 0;
	/* a read-only byte inside a capability */
	buf[8 + l.pcie + PCI_EXP_LNKCAP] ^= 0x1;
	expect_refused(b, buf, len, "config offset 0x78: PCI Express capability (ID 0x10) at 0x6c");
	buf[8 + l.pcie + PCI_EXP_LNKCAP] ^= 0x1;
	/* MSI multiple message enable beyond capable */
	buf[8 + l.msi + PCI_MSI_FLAGS] |= 0x70;
	expect_refused(b, buf, len, "enables more vectors than capable");
	buf[8 + l.msi + PCI_MSI_FLAGS] &= (uint8_t)~0x70;
	/* reserved bits of an MSI-X vector control */
	buf[8 + 4096 + 16 * 2 + 13] = 1;
	expect_refused(b, buf, len, "MSI-X table entry 2 byte 13");
	buf[8 + 4096 + 16 * 2 + 13] = 0;
	/* PBA bits beyond the table */
	buf[8 + 4096 + 128 + 1] = 1;
	expect_refused(b, buf, len, "vector 8 pending");
	buf[8 + 4096 + 128 + 1] = 0;
	/* fingerprint */
	buf[0] ^= 1;
	expect_refused(b, buf, len, "layout fingerprint");
	buf[0] ^= 1;
	assert_int_equal(devmig_pcicfg_load(b, buf, len, NULL, 0), 0);
	free(buf);
	devmig_pcicfg_destroy(a);
	devmig_pcicfg_destroy(b);
}

/*
 * The table's mask bits apply once a table write has reached us: before
 * that the client emulates the table itself (QEMU) and only the function
 * mask counts. Reset forgets it; save/load carries it.
 */
static void t_msix_table_written(void **s)
{
	struct layout l;
	struct devmig_pci_config *c = full(1, &l), *d = full(1, NULL);
	size_t len;
	uint8_t *buf;
	char why[160];

	(void)s;
	wr16(c, l.msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
	assert_false(devmig_pcicfg_msix_table_written(c));
	for (unsigned v = 0; v < 8; v++) {
		assert_int_equal(tbl_rd(c, v, PCI_MSIX_ENTRY_VECTOR_CTRL), 1); /* reads as reset */
		assert_false(devmig_pcicfg_msix_vector_masked(c, v));
	}
	assert_true(devmig_pcicfg_msix_vector_masked(c, 8)); /* no such vector */
	wr16(c, l.msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	assert_true(devmig_pcicfg_msix_vector_masked(c, 0));
	wr16(c, l.msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
	/* a table read is not a write; a PBA write is not a table write */
	uint64_t pba = 0;
	assert_int_equal(devmig_pcicfg_msix_access(c, 0, PBA_OFF, &pba, 8, true), 1);
	assert_false(devmig_pcicfg_msix_table_written(c));
	/* any table write, even of an entry's data only: every mask bit counts */
	tbl_wr(c, 3, PCI_MSIX_ENTRY_DATA, 0x33);
	assert_true(devmig_pcicfg_msix_table_written(c));
	assert_true(devmig_pcicfg_msix_vector_masked(c, 0));
	assert_true(devmig_pcicfg_msix_vector_masked(c, 3));
	tbl_wr(c, 3, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
	assert_false(devmig_pcicfg_msix_vector_masked(c, 3));
	assert_true(devmig_pcicfg_msix_vector_masked(c, 4));
	/* save/load carries it, both ways */
	buf = save(c, &len);
	assert_int_equal(devmig_pcicfg_load(d, buf, len, why, sizeof(why)), 0);
	assert_true(devmig_pcicfg_msix_table_written(d));
	assert_true(devmig_pcicfg_msix_vector_masked(d, 4));
	assert_false(devmig_pcicfg_msix_vector_masked(d, 3));
	/* a config without the interrupt state (an older layout) is refused */
	assert_int_equal(devmig_pcicfg_reset(d), 0);
	assert_int_equal(devmig_pcicfg_load(d, buf, len - 8, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "expected"));
	assert_false(devmig_pcicfg_msix_table_written(d));
	free(buf);
	/* reset forgets the writes; an unwritten table travels unwritten */
	assert_int_equal(devmig_pcicfg_reset(c), 0);
	assert_false(devmig_pcicfg_msix_table_written(c));
	wr16(c, l.msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
	assert_false(devmig_pcicfg_msix_vector_masked(c, 4));
	buf = save(c, &len);
	assert_int_equal(devmig_pcicfg_load(d, buf, len, why, sizeof(why)), 0);
	assert_false(devmig_pcicfg_msix_table_written(d));
	assert_false(devmig_pcicfg_msix_vector_masked(d, 4));
	free(buf);
	devmig_pcicfg_destroy(c);
	devmig_pcicfg_destroy(d);
}

/* Same bytes at reset, different BAR size: only the masks tell them apart. */
static void t_load_mask_difference(void **s)
{
	struct devmig_pci_config *a = bare(), *b = bare();
	size_t len;
	uint8_t *buf;
	char why[160];

	(void)s;
	assert_int_equal(devmig_pci_set_bar(a, 0, 0x1000, 0), 0);
	assert_int_equal(devmig_pci_set_bar(b, 0, 0x2000, 0), 0);
	assert_int_not_equal(devmig_pcicfg_fingerprint(a), devmig_pcicfg_fingerprint(b));
	wr32(a, PCI_BASE_ADDRESS_0, 0xfe000000);
	buf = save(a, &len);
	assert_int_equal(devmig_pcicfg_load(b, buf, len, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "layout fingerprint"));
	/* and with an address only the smaller BAR allows, the byte compare says where */
	wr32(a, PCI_BASE_ADDRESS_0, 0xfe001000);
	free(buf);
	buf = save(a, &len);
	assert_int_equal(devmig_pcicfg_load(b, buf, len, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "config offset 0x10: BAR0 0xfe001000 in stream, 0x00000000 here");
	free(buf);
	devmig_pcicfg_destroy(a);
	devmig_pcicfg_destroy(b);
}

static void t_fingerprint(void **s)
{
	struct layout l;
	struct devmig_pci_config *a = full(1, &l), *b = full(1, NULL), *c = full(2, NULL);
	uint64_t fa = devmig_pcicfg_fingerprint(a);

	(void)s;
	assert_int_equal(fa, devmig_pcicfg_fingerprint(b));
	assert_int_not_equal(fa, devmig_pcicfg_fingerprint(c));
	dirty(a, &l); /* guest and runtime state do not count */
	assert_int_equal(fa, devmig_pcicfg_fingerprint(a));
	devmig_pcicfg_destroy(a);
	devmig_pcicfg_destroy(b);
	devmig_pcicfg_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_ids),
		cmocka_unit_test(t_id_refusals),
		cmocka_unit_test(t_bar_mem32),
		cmocka_unit_test(t_bar_mem64_prefetch),
		cmocka_unit_test(t_bar_io_and_unimplemented),
		cmocka_unit_test(t_bar_refusals),
		cmocka_unit_test(t_command_mask),
		cmocka_unit_test(t_status_w1c),
		cmocka_unit_test(t_cap_chain),
		cmocka_unit_test(t_cap_explicit_offsets),
		cmocka_unit_test(t_cap_refusals),
		cmocka_unit_test(t_cap_space_exhausted),
		cmocka_unit_test(t_out_of_range),
		cmocka_unit_test(t_unaligned),
		cmocka_unit_test(t_callback_reasons),
		cmocka_unit_test(t_msi),
		cmocka_unit_test(t_msi_pending),
		cmocka_unit_test(t_msix_table),
		cmocka_unit_test(t_msix_pending),
		cmocka_unit_test(t_msix_table_written),
		cmocka_unit_test(t_pm_pcie_pasid),
		cmocka_unit_test(t_masks),
		cmocka_unit_test(t_reset),
		cmocka_unit_test(t_save_load_roundtrip),
		cmocka_unit_test(t_load_other_device),
		cmocka_unit_test(t_load_refusals),
		cmocka_unit_test(t_load_mask_difference),
		cmocka_unit_test(t_fingerprint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
