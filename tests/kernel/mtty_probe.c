/* SPDX-License-Identifier: MIT */
/*
 * mtty-probe: drives the kernel's mtty sample device (samples/vfio-mdev/
 * mtty.c, an emulated 16550 per port) through devmig's kernel backend, for
 * make check-kernel (tests/kernel/guest-init.sh runs it inside the guest).
 *
 *   mtty-probe fill DEVICE SEED     program both ports: bytes into the FIFO,
 *                                   IER, MCR, SCR, the divisor latch (DLAB left set)
 *   mtty-probe check DEVICE SEED    read them back and compare (consumes the FIFO)
 *   mtty-probe state DEVICE         print the migration state
 *   mtty-probe selftest DEV OTHER   the backend against a live kernel device:
 *                                   info, regions, INTx, DMA map, PRE_COPY
 *                                   progress, the stream size, a 1-byte-write
 *                                   load into OTHER, a cut stream refused, reset
 *
 * One line per check: "ok - NAME: evidence" or "not ok - NAME: evidence".
 * Exit status 0 when every check passed.
 *
 * What mtty migrates (struct serial_port per port): the 8 register bytes,
 * the loopback FIFO, DLAB, the divisor, FCR and the trigger level. TX
 * writes go into the FIFO and RX reads take them out, so bytes written on
 * the source come out of the destination's RX in order.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "devmig/client.h"

/* UART registers (offsets in each port's I/O BAR). */
#define UART_RX 0  /* TX on write; DLL with DLAB */
#define UART_IER 1 /* DLM with DLAB */
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_SCR 7
#define LCR_DLAB 0x80
#define LSR_DR 0x01
#define IER_THRI 0x02
#define CONFIG_REGION 7u
#define PORTS 2u

static int failures;

static void report(bool ok, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void report(bool ok, const char *name, const char *fmt, ...)
{
	va_list ap;
	printf("%s - %s: ", ok ? "ok" : "not ok", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	failures += !ok;
}

static struct devmig_client *open_dev(const char *spec)
{
	char err[512];
	struct devmig_client *c = devmig_client_open_vfio(spec, NULL, err, sizeof(err));
	if (!c) {
		report(false, "open", "%s", err);
		exit(1);
	}
	return c;
}

static int wr(struct devmig_client *c, unsigned port, unsigned reg, uint8_t v)
{
	return devmig_client_region_write(c, port, reg, &v, 1);
}

static int rd(struct devmig_client *c, unsigned port, unsigned reg, uint8_t *v)
{
	return devmig_client_region_read(c, port, reg, v, 1);
}

/* What fill writes to port p for seed s. */
static unsigned fifo_len(unsigned p)
{
	return 5 + 4 * p;
}
static uint8_t fifo_byte(unsigned s, unsigned p, unsigned i)
{
	return (uint8_t)(s * 31 + p * 101 + i * 7 + 1);
}
static uint8_t ier_of(unsigned s, unsigned p)
{
	return (uint8_t)(((s + p) & 0x0d) | 0x01); /* never THRI: no interrupt */
}
static uint8_t mcr_of(unsigned s, unsigned p)
{
	return (uint8_t)((s + 3 * p) & 0x1f);
}
static uint8_t scr_of(unsigned s, unsigned p)
{
	return (uint8_t)(s ^ (0x5a + p));
}
static uint8_t lcr_of(unsigned s, unsigned p)
{
	return (uint8_t)(LCR_DLAB | ((s + p) & 0x3f));
}
static uint16_t divisor_of(unsigned s, unsigned p)
{
	return (uint16_t)(0x0100 * ((s + p) % 7 + 1) + (s * 13 + p) % 256);
}

static int do_fill(const char *spec, unsigned seed)
{
	struct devmig_client *c = open_dev(spec);
	int rc = 0;
	for (unsigned p = 0; p < PORTS && !rc; p++) {
		/* Empty FIFO, enabled; then bytes, IER, MCR, SCR; then the divisor
		 * latch, left open (DLAB is state too). */
		rc = wr(c, p, UART_LCR, 0x03);
		rc = rc ? rc : wr(c, p, UART_FCR, 0x07);
		for (unsigned i = 0; !rc && i < fifo_len(p); i++)
			rc = wr(c, p, UART_RX, fifo_byte(seed, p, i));
		rc = rc ? rc : wr(c, p, UART_IER, ier_of(seed, p));
		rc = rc ? rc : wr(c, p, UART_MCR, mcr_of(seed, p));
		rc = rc ? rc : wr(c, p, UART_SCR, scr_of(seed, p));
		rc = rc ? rc : wr(c, p, UART_LCR, lcr_of(seed, p));
		rc = rc ? rc : wr(c, p, UART_RX, (uint8_t)divisor_of(seed, p));
		rc = rc ? rc : wr(c, p, UART_IER, (uint8_t)(divisor_of(seed, p) >> 8));
	}
	report(!rc, "fill", "%s: %u+%u FIFO bytes, IER MCR SCR LCR and divisor on both ports "
			    "(seed %u)%s%s",
	       spec, fifo_len(0), fifo_len(1), seed, rc ? ": " : "", rc ? strerror(-rc) : "");
	devmig_client_close(c);
	return failures ? 1 : 0;
}

static int do_check(const char *spec, unsigned seed)
{
	struct devmig_client *c = open_dev(spec);
	char ev[512];
	for (unsigned p = 0; p < PORTS; p++) {
		uint8_t lcr = 0, dll = 0, dlm = 0, ier = 0, mcr = 0, scr = 0, lsr = 0, lsr_end = 0;
		uint8_t fifo[16];
		unsigned got = 0, bad = 0;
		int rc = rd(c, p, UART_LCR, &lcr);
		/* DLAB is set: offsets 0 and 1 are the divisor. Reading it changes nothing. */
		rc = rc ? rc : rd(c, p, UART_RX, &dll);
		rc = rc ? rc : rd(c, p, UART_IER, &dlm);
		/* Closing the latch keeps the divisor; then the plain registers. */
		rc = rc ? rc : wr(c, p, UART_LCR, lcr & ~LCR_DLAB);
		rc = rc ? rc : rd(c, p, UART_IER, &ier);
		rc = rc ? rc : rd(c, p, UART_MCR, &mcr);
		rc = rc ? rc : rd(c, p, UART_SCR, &scr);
		rc = rc ? rc : rd(c, p, UART_LSR, &lsr);
		for (unsigned i = 0; !rc && i < 16; i++) {
			uint8_t st;
			rc = rd(c, p, UART_LSR, &st);
			if (rc || !(st & LSR_DR))
				break;
			rc = rd(c, p, UART_RX, &fifo[got++]);
		}
		rc = rc ? rc : rd(c, p, UART_LSR, &lsr_end);
		for (unsigned i = 0; i < got && i < fifo_len(p); i++)
			bad += fifo[i] != fifo_byte(seed, p, i);
		uint16_t div = (uint16_t)(dll | dlm << 8);
		bool ok = !rc && lcr == lcr_of(seed, p) && div == divisor_of(seed, p) &&
			  ier == (ier_of(seed, p) & 0x0f) && mcr == mcr_of(seed, p) &&
			  scr == scr_of(seed, p) && (lsr & LSR_DR) && got == fifo_len(p) && !bad &&
			  !(lsr_end & LSR_DR);
		snprintf(ev, sizeof(ev),
			 "%s port %u: LCR %02x/%02x divisor %04x/%04x IER %02x/%02x MCR %02x/%02x "
			 "SCR %02x/%02x, FIFO %u/%u bytes, %u differ%s%s",
			 spec, p, lcr, lcr_of(seed, p), div, divisor_of(seed, p), ier,
			 ier_of(seed, p) & 0x0f, mcr, mcr_of(seed, p), scr, scr_of(seed, p), got,
			 fifo_len(p), bad, rc ? ": " : "", rc ? strerror(-rc) : "");
		char name[32];
		snprintf(name, sizeof(name), "registers port %u", p);
		report(ok, name, "%s (read/expected)", ev);
	}
	devmig_client_close(c);
	return failures ? 1 : 0;
}

static int do_state(const char *spec)
{
	struct devmig_client *c = open_dev(spec);
	enum devmig_state st;
	int rc = devmig_client_get_state(c, &st);
	if (rc)
		fprintf(stderr, "mtty-probe: %s: %s\n", spec, strerror(-rc));
	else
		printf("%s\n", devmig_state_name(st));
	devmig_client_close(c);
	return rc ? 1 : 0;
}

/* Read the stream until a short read (its end, or for now in PRE_COPY). */
static ssize_t read_all(struct devmig_client *c, uint8_t *buf, size_t cap)
{
	size_t got = 0;
	for (;;) {
		size_t want = cap - got;
		ssize_t n = devmig_client_mig_read(c, buf + got, want);
		if (n < 0)
			return n;
		got += (size_t)n;
		if ((size_t)n < want || got == cap)
			return (ssize_t)got;
	}
}

static int selftest(const char *spec, const char *other)
{
	struct devmig_client *c = open_dev(spec);
	char d[300];
	int rc;

	devmig_client_describe(c, d, sizeof(d));
	report(!strcmp(devmig_client_backend(c), "kernel") && strstr(d, "type1"), "opened",
	       "%s", d);

	struct devmig_device_info di;
	rc = devmig_client_device_info(c, &di);
	report(!rc && (di.flags & VFIO_DEVICE_FLAGS_PCI) && di.num_regions == VFIO_PCI_NUM_REGIONS &&
		       di.num_irqs == VFIO_PCI_NUM_IRQS,
	       "device info", "flags %#x, %u regions, %u irqs", di.flags, di.num_regions, di.num_irqs);

	struct devmig_region_info r0, r1, rc7;
	int fd;
	unsigned na = 0;
	int e0 = devmig_client_region_info(c, 0, &r0, &fd, NULL, &na);
	int e1 = devmig_client_region_info(c, 1, &r1, &fd, NULL, &na);
	int e7 = devmig_client_region_info(c, CONFIG_REGION, &rc7, &fd, NULL, &na);
	report(!e0 && !e1 && !e7 && r0.size == 8 && r1.size == 8 && rc7.size > 64 &&
		       r0.offset != r1.offset,
	       "region info", "BAR0 %llu bytes at %#llx, BAR1 %llu at %#llx, config %llu at %#llx",
	       (unsigned long long)r0.size, (unsigned long long)r0.offset,
	       (unsigned long long)r1.size, (unsigned long long)r1.offset,
	       (unsigned long long)rc7.size, (unsigned long long)rc7.offset);

	uint32_t ids = 0;
	rc = devmig_client_region_read(c, CONFIG_REGION, 0, &ids, 4);
	report(!rc && ids == 0x32534348, "config space", "vendor %04x device %04x", ids & 0xffff,
	       ids >> 16);
	uint8_t b;
	rc = devmig_client_region_read(c, 0, 8, &b, 1);
	report(rc == -EINVAL, "outside a region", "BAR0 offset 8 refused: %s", strerror(-rc));

	/* INTx through an eventfd: IER THRI with an empty FIFO raises it. */
	struct devmig_irq_info ii;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rc = devmig_client_irq_info(c, VFIO_PCI_INTX_IRQ_INDEX, &ii);
	int src = rc ? rc : devmig_client_set_irqs(c, VFIO_PCI_INTX_IRQ_INDEX,
						   VFIO_IRQ_SET_DATA_EVENTFD |
							   VFIO_IRQ_SET_ACTION_TRIGGER,
						   0, 1, &efd);
	uint8_t ier_saved = 0;
	rd(c, 0, UART_IER, &ier_saved);
	wr(c, 0, UART_LCR, 0x03);
	wr(c, 0, UART_FCR, 0x07);
	int wrc = wr(c, 0, UART_IER, IER_THRI);
	struct pollfd pfd = { efd, POLLIN, 0 };
	uint64_t count = 0;
	int pr = poll(&pfd, 1, 2000);
	if (pr == 1 && read(efd, &count, 8) != 8)
		count = 0;
	wr(c, 0, UART_IER, ier_saved);
	int off = devmig_client_set_irqs(c, VFIO_PCI_INTX_IRQ_INDEX,
					 VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0,
					 NULL);
	report(!rc && !src && !wrc && count >= 1 && !off, "INTx eventfd",
	       "irq info count %u flags %#x; set %d; signalled %llu time(s); disabled %d", ii.count,
	       ii.flags, src, (unsigned long long)count, off);
	close(efd);

	/* DMA: the type1 container pins our memory (a vaddr, and an fd mapped here). */
	size_t msz = 1u << 20;
	int mfd = memfd_create("guest", MFD_CLOEXEC);
	void *mem = mmap(NULL, msz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int m1 = ftruncate(mfd, (off_t)msz) ? -errno
					    : devmig_client_dma_map(c, 1ull << 30, msz,
								    DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
								    mfd, 0, NULL);
	int m2 = devmig_client_dma_map(c, 2ull << 30, msz, DEVMIG_DMA_READ, -1, 0, mem);
	int m3 = devmig_client_dma_map(c, 2ull << 30, msz, DEVMIG_DMA_READ, -1, 0, mem);
	int u1 = devmig_client_dma_unmap(c, 1ull << 30, msz);
	int u2 = devmig_client_dma_unmap(c, 2ull << 30, msz);
	report(!m1 && !m2 && m3 == -EEXIST && !u1 && !u2, "DMA map", "1 MiB from an fd at 1 GiB: %d, "
	       "from a vaddr at 2 GiB: %d, again: %s, unmapped: %d %d", m1, m2, strerror(-m3), u1,
	       u2);
	munmap(mem, msz);
	close(mfd);

	/* DMA logging: what this kernel does with it. */
	uint64_t pg = 4096, bm[4] = { 0 };
	struct devmig_dma_logging_range lr = { 1ull << 30, 64 * 4096 };
	int ls = devmig_client_log_start(c, &pg, &lr, 1);
	int lrp = ls ? ls : devmig_client_log_report(c, lr.iova, lr.length, 4096, bm);
	int lst = ls ? ls : devmig_client_log_stop(c);
	/* mtty has log ops that track nothing; the report needs IOMMUFD_DRIVER,
	 * which Debian's 6.12 lacks (EOPNOTSUPP then). */
	report(!ls && (!lrp || lrp == -EOPNOTSUPP) && !lst && !bm[0],
	       "DMA logging", "start %s (page %llu), report %s, stop %s", strerror(-ls),
	       (unsigned long long)pg, strerror(-lrp), strerror(-lst));

	/* Migration: capabilities, PRE_COPY progress, the stream against the estimate. */
	uint64_t caps = 0, est = 0;
	rc = devmig_client_mig_caps(c, &caps);
	int erc = devmig_client_stop_copy_size(c, &est);
	report(!rc && caps == DEVMIG_MIG_ALL && !erc && est > 0 &&
		       devmig_client_has_ext(c, DEVMIG_EXT_PRECOPY_INFO),
	       "migration caps", "%#llx (STOP_COPY P2P PRE_COPY), stop-copy estimate %llu bytes",
	       (unsigned long long)caps, (unsigned long long)est);

	uint8_t stream[4096];
	struct devmig_precopy_progress p0 = { 0 }, p1 = { 0 };
	int s1 = devmig_client_set_state(c, DEVMIG_STATE_PRE_COPY);
	int q0 = s1 ? s1 : devmig_client_precopy_progress(c, &p0);
	ssize_t n0 = q0 ? q0 : read_all(c, stream, sizeof(stream));
	int q1 = n0 < 0 ? (int)n0 : devmig_client_precopy_progress(c, &p1);
	ssize_t again = q1 ? q1 : devmig_client_mig_read(c, stream + (n0 > 0 ? n0 : 0), 64);
	report(!s1 && !q0 && !q1 && p0.initial_bytes > 0 && n0 == (ssize_t)p0.initial_bytes &&
		       p1.initial_bytes == 0 && again == 0 && !p0.reinit && !p1.reinit,
	       "PRE_COPY progress", "initial %llu bytes, read %zd, then initial %llu dirty %llu; "
	       "another read: %zd (the temporary end)", (unsigned long long)p0.initial_bytes, n0,
	       (unsigned long long)p1.initial_bytes, (unsigned long long)p1.dirty_bytes, again);

	int s2 = devmig_client_set_state(c, DEVMIG_STATE_STOP_COPY);
	ssize_t n1 = s2 ? s2 : read_all(c, stream + n0, sizeof(stream) - (size_t)n0);
	ssize_t total = n1 < 0 ? n1 : n0 + n1;
	enum devmig_state st = DEVMIG_STATE_ERROR;
	int s3 = devmig_client_set_state(c, DEVMIG_STATE_STOP);
	devmig_client_get_state(c, &st);
	report(!s2 && total == (ssize_t)est && !s3 && st == DEVMIG_STATE_STOP, "STOP_COPY stream",
	       "%zd bytes in all (%zd after PRE_COPY), the estimate said %llu; now %s", total, n1,
	       (unsigned long long)est, devmig_state_name(st));
	int s4 = devmig_client_set_state(c, DEVMIG_STATE_RUNNING);
	report(!s4, "back to RUNNING", "STOP -> RUNNING: %s", strerror(-s4));

	/* Load it into the other device one byte per write. */
	struct devmig_client *o = open_dev(other);
	int l1 = devmig_client_set_state(o, DEVMIG_STATE_RESUMING), lw = 0;
	for (ssize_t i = 0; !l1 && !lw && i < total; i++)
		lw = devmig_client_mig_write(o, stream + i, 1);
	int l2 = l1 || lw ? -EIO : devmig_client_set_state(o, DEVMIG_STATE_STOP);
	int l3 = l2 ? l2 : devmig_client_set_state(o, DEVMIG_STATE_RUNNING);
	report(!l1 && !lw && !l2 && !l3, "load in 1-byte writes",
	       "%zd writes of 1 byte into %s: RESUMING %d, writes %d, RESUMING -> STOP %d, "
	       "RUNNING %d", total, other, l1, lw, l2, l3);

	/* A stream cut short: refused at RESUMING -> STOP, still RESUMING; reset recovers. */
	int c1 = devmig_client_set_state(o, DEVMIG_STATE_RESUMING);
	int cw = c1 ? c1 : devmig_client_mig_write(o, stream, (size_t)total - 1);
	int c2 = cw ? cw : devmig_client_set_state(o, DEVMIG_STATE_STOP);
	enum devmig_state after = DEVMIG_STATE_ERROR, reset_st = DEVMIG_STATE_ERROR;
	devmig_client_get_state(o, &after);
	int rs = devmig_client_reset(o);
	devmig_client_get_state(o, &reset_st);
	report(!c1 && !cw && c2 < 0 && after == DEVMIG_STATE_RESUMING && !rs &&
		       reset_st == DEVMIG_STATE_RUNNING,
	       "cut stream refused", "%zd of %zd bytes: RESUMING -> STOP %s, left %s; reset %d -> %s",
	       total - 1, total, strerror(-c2), devmig_state_name(after), rs,
	       devmig_state_name(reset_st));
	/* Reset in a saving state ends the session too. */
	int pr1 = devmig_client_set_state(c, DEVMIG_STATE_PRE_COPY);
	int r2 = pr1 ? pr1 : devmig_client_reset(c);
	devmig_client_get_state(c, &st);
	ssize_t rr = devmig_client_mig_read(c, stream, 16);
	report(!pr1 && !r2 && st == DEVMIG_STATE_RUNNING && rr == -EINVAL, "reset in PRE_COPY",
	       "reset %d -> %s, reading after it: %s", r2, devmig_state_name(st),
	       strerror((int)-rr));
	devmig_client_close(o);
	devmig_client_close(c);
	return failures ? 1 : 0;
}

static bool parse_seed(const char *s, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);
	if (!*s || *end || v > 255)
		return false;
	*out = (unsigned)v;
	return true;
}

int main(int argc, char **argv)
{
	unsigned seed;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "fill") && parse_seed(argv[3], &seed))
		return do_fill(argv[2], seed);
	if (argc == 4 && !strcmp(argv[1], "check") && parse_seed(argv[3], &seed))
		return do_check(argv[2], seed);
	if (argc == 3 && !strcmp(argv[1], "state"))
		return do_state(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "selftest"))
		return selftest(argv[2], argv[3]);
	fprintf(stderr, "usage: mtty-probe fill|check DEVICE SEED | state DEVICE | "
			"selftest DEVICE OTHER\n");
	return 2;
}
