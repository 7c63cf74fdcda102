/* SPDX-License-Identifier: MIT */
/*
 * The device core: what every variant gets without writing it. PCI config
 * space, BARs, interrupts, DMA and the migration plumbing (state machine
 * walk, data session, stream framing, validate-before-apply on load).
 *
 * Locks. cfg_lock guards config space and interrupt fds; it is held only for
 * short sections and never across a variant callback, so a variant's worker
 * raising an interrupt can never deadlock against the server thread waiting
 * for that worker inside an arc. Nor is it held while an interrupt eventfd
 * (the client's) is written: signals are queued under the lock and sent by
 * cfg_unlock() after it, each fd kept open by a reference meanwhile.
 * mig_lock serialises migration operations (state changes and the data
 * session); the state itself is an atomic that workers read without a lock.
 */
#include <errno.h>
#include <linux/vfio.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "devmig/compat.h"
#include "pci_config.h"
#include "stream.h"

/* An interrupt eventfd from the client; a signal in flight holds a reference. */
struct irq_efd {
	atomic_uint refs;
	int fd;
};

struct irq_index {
	uint32_t count;
	struct irq_efd **efd; /* count entries, NULL when unset */
	bool *masked;  /* count entries: masked by SET_IRQS (MSI, MSI-X) */
	bool *pending; /* count entries: MSI without per-vector masking has no pending bits */
	bool intx_masked;
	bool intx_pending;
};

struct devmig_core {
	struct devmig_device *dev;
	const struct devmig_device_ops *ops;
	uint64_t caps;

	pthread_mutex_t cfg_lock;
	struct devmig_pci_config *cfg;
	unsigned cfg_events;          /* DEVMIG_CFG_* gathered during a write */
	struct irq_index irq[DEVMIG_NUM_IRQS];
	/* Signals raised under cfg_lock, sent once it is released (cfg_unlock). */
	struct irq_efd **to_signal;
	unsigned nto_signal, to_signal_cap;
	struct {
		void *mem;
		int fd;
		uint64_t size;
	} bar_mem[DEVMIG_PCI_NUM_BARS];

	struct devmig_dma *dma;
	pthread_mutex_t xfer_lock;
	int (*xfer)(void *opaque, bool is_write, uint64_t iova, void *buf, size_t len);
	void *xfer_opaque;

	pthread_mutex_t mig_lock;
	_Atomic uint32_t state;
	/*
	 * The state an arc in progress is entering (== state otherwise). DMA and
	 * interrupts are allowed when either state allows them: workers still
	 * finishing in-flight work while entering a quiesced state, and workers
	 * the variant resumes inside an arc leaving one, are both in the rules.
	 */
	_Atomic uint32_t entering;
	struct devmig_stream_writer *writer;
	struct devmig_stream_reader *reader;
	/* snapshot-style devices: the saved state, or the state being loaded */
	uint8_t *snap;
	size_t snap_len, snap_pos;
	bool snap_taken;
	/* the config snapshot received in the stream, applied at commit */
	uint8_t *cfg_blob;
	size_t cfg_blob_len;
	char last_error[256];
};

static struct devmig_core *core_of(struct devmig_device *dev)
{
	return dev->core;
}

void devmig_device_log(struct devmig_device *dev, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "devmig %s: ", dev->ops && dev->ops->name ? dev->ops->name : "device");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- interrupts ---- */

static void efd_put(struct irq_efd *e)
{
	if (e && atomic_fetch_sub(&e->refs, 1) == 1) {
		close(e->fd);
		free(e);
	}
}

/*
 * Only an eventfd becomes an interrupt (as with the kernel's VFIO): a pipe
 * or socket could block the write or raise SIGPIPE. An eventfd is an anonymous
 * inode whose /proc link says so.
 */
static bool is_eventfd(int fd)
{
	struct stat st;
	char path[64], link[32];

	if (fstat(fd, &st) || (st.st_mode & S_IFMT))
		return false;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return !strcmp(link, "anon_inode:[eventfd]");
}

/*
 * Add 1 to the eventfd without ever blocking: the write would block only
 * when the counter is at its maximum, and then the interrupt is pending
 * anyway, so nothing is lost by skipping it. No lock is held here.
 */
static void signal_efd(struct irq_efd *e)
{
	struct pollfd pf = { e->fd, POLLOUT, 0 };
	uint64_t one = 1;

	if (poll(&pf, 1, 0) == 1 && (pf.revents & POLLOUT) && write(e->fd, &one, sizeof(one)) < 0) {
		/* Nothing to do: see above. */
	}
}

/* Queue a signal of e for cfg_unlock. cfg_lock held. */
static void queue_signal(struct devmig_core *c, struct irq_efd *e)
{
	if (!e)
		return;
	for (unsigned i = 0; i < c->nto_signal; i++)
		if (c->to_signal[i] == e)
			return; /* one signal per fd and section is enough */
	if (c->nto_signal == c->to_signal_cap)
		return; /* cannot happen: one slot per vector */
	atomic_fetch_add(&e->refs, 1);
	c->to_signal[c->nto_signal++] = e;
}

/* Release cfg_lock, then send the signals queued while it was held. */
static void cfg_unlock(struct devmig_core *c)
{
	for (;;) {
		struct irq_efd *batch[32];
		unsigned n = c->nto_signal < 32 ? c->nto_signal : 32;
		c->nto_signal -= n;
		memcpy(batch, c->to_signal + c->nto_signal, n * sizeof(*batch));
		bool more = c->nto_signal > 0;
		pthread_mutex_unlock(&c->cfg_lock);
		for (unsigned i = 0; i < n; i++) {
			signal_efd(batch[i]);
			efd_put(batch[i]);
		}
		if (!more)
			return;
		pthread_mutex_lock(&c->cfg_lock);
	}
}

static struct irq_efd *irq_fd(struct devmig_core *c, unsigned index, unsigned v)
{
	return v < c->irq[index].count ? c->irq[index].efd[v] : NULL;
}

/*
 * MSI and MSI-X: the interrupt rule. Raising a vector signals its eventfd
 * unless the client masked it in a way the server sees: SET_IRQS MASK, the
 * function mask or an MSI mask bit in config space, or the MSI-X table's
 * mask bit once the client writes the table (pci_config). A masked vector
 * is left pending (PBA, MSI pending bits) and sent when the last mask on
 * it goes. cfg_lock held for all of these.
 */
static bool vec_masked(struct devmig_core *c, unsigned index, unsigned v)
{
	if (c->irq[index].masked[v])
		return true;
	if (index == VFIO_PCI_MSIX_IRQ_INDEX)
		return devmig_pcicfg_msix_vector_masked(c->cfg, v);
	return devmig_pcicfg_msi_vector_masked(c->cfg, v);
}

static void vec_set_pending(struct devmig_core *c, unsigned index, unsigned v, bool on)
{
	if (index == VFIO_PCI_MSIX_IRQ_INDEX) {
		if (on)
			devmig_pcicfg_msix_set_pending(c->cfg, v);
		else
			devmig_pcicfg_msix_clear_pending(c->cfg, v);
		return;
	}
	int rc = on ? devmig_pcicfg_msi_set_pending(c->cfg, v)
		    : devmig_pcicfg_msi_clear_pending(c->cfg, v);
	if (rc == -ENOTSUP)
		c->irq[index].pending[v] = on; /* no pending bits in config space */
}

static bool vec_pending(struct devmig_core *c, unsigned index, unsigned v)
{
	if (index == VFIO_PCI_MSIX_IRQ_INDEX)
		return devmig_pcicfg_msix_pending(c->cfg, v);
	return devmig_pcicfg_msi_pending(c->cfg, v) || c->irq[index].pending[v];
}

/* Is index the interrupt mode in use, with vector v in it? */
static bool vec_active(struct devmig_core *c, unsigned index, unsigned v)
{
	if (index == VFIO_PCI_MSIX_IRQ_INDEX)
		return devmig_pcicfg_msix_enabled(c->cfg) && v < devmig_pcicfg_msix_vectors(c->cfg);
	return index == VFIO_PCI_MSI_IRQ_INDEX && !devmig_pcicfg_msix_enabled(c->cfg) &&
	       devmig_pcicfg_msi_enabled(c->cfg) && v < devmig_pcicfg_msi_vectors_enabled(c->cfg);
}

static int raise_vec(struct devmig_core *c, unsigned index, unsigned v)
{
	if (vec_masked(c, index, v)) {
		vec_set_pending(c, index, v, true);
		return 0;
	}
	struct irq_efd *e = irq_fd(c, index, v);
	if (!e)
		return -ENOENT;
	queue_signal(c, e);
	return 0;
}

static bool irq_allowed(struct devmig_core *c);

/* A mask on v went: send it if it is pending and nothing else holds it. */
static void vec_try_fire(struct devmig_core *c, unsigned index, unsigned v)
{
	struct irq_efd *e = irq_fd(c, index, v);

	if (!vec_active(c, index, v) || !vec_pending(c, index, v) || vec_masked(c, index, v) ||
	    !e || !irq_allowed(c))
		return;
	vec_set_pending(c, index, v, false);
	queue_signal(c, e);
}

/* Running again: send what a stopped device held (or a loaded PBA carried). */
static void fire_held(struct devmig_core *c)
{
	pthread_mutex_lock(&c->cfg_lock);
	for (unsigned index = VFIO_PCI_MSI_IRQ_INDEX; index <= VFIO_PCI_MSIX_IRQ_INDEX; index++)
		for (uint32_t v = 0; v < c->irq[index].count; v++)
			vec_try_fire(c, index, v);
	cfg_unlock(c);
}

/* Deliver vector v of the enabled mode. cfg_lock held. */
static int raise_locked(struct devmig_core *c, unsigned v)
{
	struct devmig_pci_config *cfg = c->cfg;

	if (devmig_pcicfg_msix_enabled(cfg)) {
		if (v >= devmig_pcicfg_msix_vectors(cfg))
			return -EINVAL;
		return raise_vec(c, VFIO_PCI_MSIX_IRQ_INDEX, v);
	}
	if (devmig_pcicfg_msi_enabled(cfg)) {
		if (v >= devmig_pcicfg_msi_vectors_enabled(cfg))
			return -EINVAL;
		return raise_vec(c, VFIO_PCI_MSI_IRQ_INDEX, v);
	}
	if (v != 0 || !c->irq[VFIO_PCI_INTX_IRQ_INDEX].count)
		return -EINVAL;
	struct irq_index *ix = &c->irq[VFIO_PCI_INTX_IRQ_INDEX];
	devmig_pcicfg_set_intx_status(cfg, true);
	if (ix->intx_masked || devmig_pcicfg_intx_disabled(cfg)) {
		ix->intx_pending = true;
		return 0;
	}
	if (!ix->efd[0])
		return -ENOENT;
	ix->intx_masked = true; /* INTx is automasked until the client unmasks it */
	queue_signal(c, ix->efd[0]);
	return 0;
}

/* May the device initiate DMA / raise interrupts now? */
static bool dma_allowed(struct devmig_core *c)
{
	return !devmig_state_is_quiesced(atomic_load(&c->state)) ||
	       !devmig_state_is_quiesced(atomic_load(&c->entering));
}

static bool irq_allowed(struct devmig_core *c)
{
	return !devmig_state_is_stopped(atomic_load(&c->state)) ||
	       !devmig_state_is_stopped(atomic_load(&c->entering));
}

int devmig_device_irq(struct devmig_device *dev, unsigned v)
{
	struct devmig_core *c = core_of(dev);

	if (!irq_allowed(c))
		return -EBUSY;
	pthread_mutex_lock(&c->cfg_lock);
	int rc = raise_locked(c, v);
	cfg_unlock(c);
	return rc;
}

/* Config-space events, called by pci_config under cfg_lock. */
static void cfg_notify(void *opaque, enum devmig_pcicfg_event ev, unsigned index)
{
	struct devmig_core *c = opaque;

	switch (ev) {
	case DEVMIG_PCICFG_EV_COMMAND:
		c->cfg_events |= DEVMIG_CFG_COMMAND;
		break;
	case DEVMIG_PCICFG_EV_BAR:
		c->cfg_events |= DEVMIG_CFG_BAR;
		break;
	case DEVMIG_PCICFG_EV_MSI_CTRL:
	case DEVMIG_PCICFG_EV_MSI_MESSAGE:
	case DEVMIG_PCICFG_EV_MSI_MASK:
		c->cfg_events |= DEVMIG_CFG_MSI;
		break;
	case DEVMIG_PCICFG_EV_MSIX_CTRL:
	case DEVMIG_PCICFG_EV_MSIX_ENTRY:
		c->cfg_events |= DEVMIG_CFG_MSIX;
		break;
	case DEVMIG_PCICFG_EV_MSI_FIRE:
	case DEVMIG_PCICFG_EV_MSIX_FIRE: {
		/* A pending vector became deliverable in config space; SET_IRQS
		 * MASK, a missing eventfd or a stopped device still hold it. */
		unsigned ix = ev == DEVMIG_PCICFG_EV_MSI_FIRE ? VFIO_PCI_MSI_IRQ_INDEX
							       : VFIO_PCI_MSIX_IRQ_INDEX;
		struct irq_efd *e = irq_fd(c, ix, index);
		if (!irq_allowed(c) || c->irq[ix].masked[index] || !e)
			vec_set_pending(c, ix, index, true);
		else
			queue_signal(c, e);
		break;
	}
	}
}

/* Drop the table's references; a signal in flight keeps its fd open until it is sent. */
static void close_irq_fds(struct irq_index *ix, uint32_t start, uint32_t count)
{
	for (uint32_t i = start; i < start + count && i < ix->count; i++) {
		efd_put(ix->efd[i]);
		ix->efd[i] = NULL;
	}
}

int devmig_core_irq_info(struct devmig_device *dev, uint32_t index, struct devmig_irq_info *info)
{
	struct devmig_core *c = core_of(dev);

	if (index >= DEVMIG_NUM_IRQS)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	info->index = index;
	info->count = c->irq[index].count;
	if (index == VFIO_PCI_INTX_IRQ_INDEX)
		info->flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
	else if (info->count)
		info->flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_NORESIZE;
	return 0;
}

/* SET_IRQS MASK/UNMASK of vectors [start, start+count): DATA_NONE or DATA_BOOL. */
static void set_masks(struct devmig_core *c, unsigned index, const struct devmig_irq_set *set,
		      const uint8_t *bools, bool mask)
{
	struct irq_index *ix = &c->irq[index];

	for (uint32_t i = 0; i < set->count; i++) {
		uint32_t v = set->start + i;
		if (bools && !bools[i])
			continue;
		if (index == VFIO_PCI_INTX_IRQ_INDEX) {
			ix->intx_masked = mask;
			if (!mask && ix->intx_pending && ix->efd[0] &&
			    !devmig_pcicfg_intx_disabled(c->cfg)) {
				ix->intx_pending = false;
				ix->intx_masked = true; /* automasked again */
				queue_signal(c, ix->efd[0]);
			}
			continue;
		}
		ix->masked[v] = mask;
		if (!mask)
			vec_try_fire(c, index, v);
	}
}

int devmig_core_set_irqs(struct devmig_device *dev, const struct devmig_irq_set *set,
			 const uint8_t *bools, const int *fds, unsigned nfds)
{
	struct devmig_core *c = core_of(dev);
	const uint32_t data = set->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	const uint32_t action = set->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;

	if (set->index >= DEVMIG_NUM_IRQS)
		return -EINVAL;
	struct irq_index *ix = &c->irq[set->index];
	bool disable_all = set->count == 0 && data == VFIO_IRQ_SET_DATA_NONE;
	if (disable_all ? action != VFIO_IRQ_SET_ACTION_TRIGGER
			: set->start >= ix->count || set->count > ix->count - set->start)
		return -EINVAL;
	/* Masking bound to an eventfd (the kernel's INTx resample fd) is not offered. */
	if (action != VFIO_IRQ_SET_ACTION_TRIGGER && data == VFIO_IRQ_SET_DATA_EVENTFD)
		return -EINVAL;

	/* Checked, and wrapped, before anything changes: all or none are taken. */
	struct irq_efd *efds[DEVMIG_IRQ_SET_FDS_MAX] = { NULL };
	if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
		if (nfds > DEVMIG_IRQ_SET_FDS_MAX)
			return -EINVAL;
		for (unsigned i = 0; i < nfds; i++) {
			if (fds[i] >= 0 && !is_eventfd(fds[i]))
				return -EINVAL;
		}
		for (unsigned i = 0; i < nfds; i++) {
			if (fds[i] < 0)
				continue;
			efds[i] = malloc(sizeof(*efds[i]));
			if (!efds[i]) {
				for (unsigned k = 0; k < i; k++)
					free(efds[k]);
				return -ENOMEM;
			}
			atomic_init(&efds[i]->refs, 1);
			efds[i]->fd = fds[i];
		}
	}

	pthread_mutex_lock(&c->cfg_lock);
	if (action == VFIO_IRQ_SET_ACTION_TRIGGER) {
		if (disable_all) {
			/* The index is torn down: its SET_IRQS masks go with it. */
			close_irq_fds(ix, 0, ix->count);
			for (uint32_t v = 0; v < ix->count; v++)
				ix->masked[v] = false;
			ix->intx_masked = false;
		} else if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
			close_irq_fds(ix, set->start, set->count);
			for (unsigned i = 0; i < nfds; i++)
				ix->efd[set->start + i] = efds[i];
			/* A vector held pending only for want of an eventfd goes now. */
			for (uint32_t i = 0; set->index != VFIO_PCI_INTX_IRQ_INDEX && i < nfds; i++)
				vec_try_fire(c, set->index, set->start + i);
		} else {
			/* The client triggers vectors itself (loopback testing). */
			for (uint32_t i = 0; i < set->count; i++)
				if (data == VFIO_IRQ_SET_DATA_NONE || bools[i])
					queue_signal(c, ix->efd[set->start + i]);
		}
	} else {
		set_masks(c, set->index, set, data == VFIO_IRQ_SET_DATA_BOOL ? bools : NULL,
			  action == VFIO_IRQ_SET_ACTION_MASK);
	}
	cfg_unlock(c);
	return 0;
}

/* ---- regions ---- */

static uint64_t region_size(struct devmig_core *c, uint32_t index, unsigned *bar_flags)
{
	uint64_t size = 0;
	unsigned flags = 0;

	if (index == DEVMIG_CONFIG_REGION)
		return DEVMIG_CONFIG_SIZE;
	if (index < DEVMIG_PCI_NUM_BARS && devmig_pcicfg_bar_info(c->cfg, index, &size, &flags))
		size = 0;
	if (bar_flags)
		*bar_flags = flags;
	return size;
}

/* Does the MSI-X table or PBA live in this BAR? Then it cannot be mapped whole. */
static bool bar_has_msix(struct devmig_core *c, unsigned bar)
{
	unsigned cap = devmig_pcicfg_find_cap(c->cfg, PCI_CAP_ID_MSIX, false);
	uint32_t table = 0, pba = 0;

	if (!cap)
		return false;
	devmig_pcicfg_read(c->cfg, cap + PCI_MSIX_TABLE, &table, 4);
	devmig_pcicfg_read(c->cfg, cap + PCI_MSIX_PBA, &pba, 4);
	return (table & PCI_MSIX_TABLE_BIR) == bar || (pba & PCI_MSIX_PBA_BIR) == bar;
}

int devmig_core_region_info(struct devmig_device *dev, uint32_t index,
			    struct devmig_region_info *info, uint8_t *caps, size_t caps_cap,
			    size_t *caps_len, int *fd)
{
	struct devmig_core *c = core_of(dev);

	if (index >= DEVMIG_NUM_REGIONS)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	*caps_len = 0;
	*fd = -1;
	pthread_mutex_lock(&c->cfg_lock);
	info->size = region_size(c, index, NULL);
	if (info->size)
		info->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	if (index < DEVMIG_PCI_NUM_BARS && c->bar_mem[index].mem && !bar_has_msix(c, index)) {
		/* Mappable: one sparse area covering the whole BAR. */
		struct {
			struct devmig_info_cap_hdr h;
			uint32_t nr_areas;
			uint32_t reserved;
			struct devmig_sparse_mmap_area area;
		} __attribute__((packed)) cap = {
			.h = { VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, 0 },
			.nr_areas = 1,
			.area = { 0, info->size },
		};
		if (caps_cap >= sizeof(cap)) {
			memcpy(caps, &cap, sizeof(cap));
			*caps_len = sizeof(cap);
			info->flags |= VFIO_REGION_INFO_FLAG_MMAP;
			*fd = c->bar_mem[index].fd;
		}
	}
	cfg_unlock(c);
	return 0;
}

static void config_changed(struct devmig_core *c, unsigned what)
{
	if (what && c->ops->config_changed)
		c->ops->config_changed(c->dev, what);
}

int devmig_core_region_rw(struct devmig_device *dev, uint32_t region, uint64_t offset,
			  void *buf, uint32_t count, bool is_write)
{
	struct devmig_core *c = core_of(dev);
	uint64_t size = region_size(c, region, NULL);

	if (region >= DEVMIG_NUM_REGIONS || !count || offset >= size || count > size - offset)
		return -EINVAL;

	if (region == DEVMIG_CONFIG_REGION) {
		pthread_mutex_lock(&c->cfg_lock);
		c->cfg_events = 0;
		int rc = is_write ? devmig_pcicfg_write(c->cfg, offset, buf, count)
				  : devmig_pcicfg_read(c->cfg, offset, buf, count);
		unsigned what = c->cfg_events;
		cfg_unlock(c);
		config_changed(c, what);
		return rc;
	}

	/* The MSI-X table and PBA belong to the core. */
	pthread_mutex_lock(&c->cfg_lock);
	c->cfg_events = 0;
	int hit = devmig_pcicfg_msix_access(c->cfg, region, offset, buf, count, is_write);
	unsigned what = c->cfg_events;
	cfg_unlock(c);
	if (hit) {
		config_changed(c, what);
		return hit < 0 ? hit : 0;
	}

	if (c->bar_mem[region].mem) {
		uint8_t *mem = (uint8_t *)c->bar_mem[region].mem + offset;
		if (is_write)
			memcpy(mem, buf, count);
		else
			memcpy(buf, mem, count);
		return 0;
	}
	if (c->ops->bar_access)
		return c->ops->bar_access(dev, region, offset, buf, count, is_write);
	if (!is_write)
		memset(buf, 0, count);
	return 0;
}

void *devmig_device_bar_memory(struct devmig_device *dev, unsigned bar)
{
	struct devmig_core *c = core_of(dev);
	uint64_t size;
	unsigned flags;

	if (bar >= DEVMIG_PCI_NUM_BARS || devmig_pcicfg_bar_info(c->cfg, bar, &size, &flags) ||
	    (flags & PCI_BASE_ADDRESS_SPACE_IO))
		return NULL;
	if (c->bar_mem[bar].mem)
		return c->bar_mem[bar].mem;
	int fd = memfd_create("devmig-bar", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	void *mem = MAP_FAILED;
	if (!ftruncate(fd, (off_t)size))
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		close(fd);
		return NULL;
	}
	c->bar_mem[bar].mem = mem;
	c->bar_mem[bar].fd = fd;
	c->bar_mem[bar].size = size;
	return mem;
}

/* ---- DMA ---- */

static int core_dma_xfer(void *opaque, bool is_write, uint64_t iova, void *buf, size_t len)
{
	struct devmig_core *c = opaque;

	pthread_mutex_lock(&c->xfer_lock);
	int (*xfer)(void *, bool, uint64_t, void *, size_t) = c->xfer;
	void *o = c->xfer_opaque;
	pthread_mutex_unlock(&c->xfer_lock);
	return xfer ? xfer(o, is_write, iova, buf, len) : -ENOTCONN;
}

void devmig_core_set_dma_xfer(struct devmig_device *dev,
			      int (*xfer)(void *, bool, uint64_t, void *, size_t), void *opaque)
{
	struct devmig_core *c = core_of(dev);

	pthread_mutex_lock(&c->xfer_lock);
	c->xfer = xfer;
	c->xfer_opaque = opaque;
	pthread_mutex_unlock(&c->xfer_lock);
}

struct devmig_dma *devmig_core_dma(struct devmig_device *dev)
{
	return core_of(dev)->dma;
}

int devmig_device_dma_read(struct devmig_device *dev, uint64_t iova, void *buf, size_t len)
{
	struct devmig_core *c = core_of(dev);

	if (!dma_allowed(c))
		return -EBUSY;
	return devmig_dma_read(c->dma, iova, buf, len);
}

int devmig_device_dma_write(struct devmig_device *dev, uint64_t iova, const void *buf, size_t len)
{
	struct devmig_core *c = core_of(dev);

	if (!dma_allowed(c))
		return -EBUSY;
	return devmig_dma_write(c->dma, iova, buf, len);
}

void devmig_core_client_gone(struct devmig_device *dev)
{
	struct devmig_core *c = core_of(dev);

	devmig_dma_log_stop(c->dma);
	devmig_dma_unmap_all(c->dma);
	/* The client's interrupt setup (eventfds, SET_IRQS masks) goes with it;
	 * pending bits are device state and stay. */
	pthread_mutex_lock(&c->cfg_lock);
	for (unsigned i = 0; i < DEVMIG_NUM_IRQS; i++) {
		struct irq_index *ix = &c->irq[i];
		close_irq_fds(ix, 0, ix->count);
		for (uint32_t v = 0; v < ix->count; v++)
			ix->masked[v] = false;
	}
	cfg_unlock(c);
}

/* ---- migration: the data session ---- */

enum devmig_state devmig_device_state(struct devmig_device *dev)
{
	return (enum devmig_state)atomic_load(&core_of(dev)->state);
}

uint64_t devmig_core_mig_caps(struct devmig_device *dev)
{
	return core_of(dev)->caps;
}

static bool snapshot_style(const struct devmig_core *c)
{
	return !c->ops->save && c->ops->save_state;
}

static void set_error(struct devmig_core *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_error(struct devmig_core *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
	va_end(ap);
}

/* Writer source: the variant's data, or the core-held snapshot. */
static ssize_t src_device_data(void *opaque, void *buf, size_t cap)
{
	struct devmig_core *c = opaque;

	if (!snapshot_style(c))
		return c->ops->save ? c->ops->save(c->dev, buf, cap) : 0;
	/* Snapshot devices have nothing to send until they are stopped. */
	if (atomic_load(&c->state) != DEVMIG_STATE_STOP_COPY)
		return 0;
	if (!c->snap_taken) {
		size_t n = c->ops->state_size ? c->ops->state_size(c->dev) : 0;
		free(c->snap);
		c->snap = n ? malloc(n) : NULL;
		if (n && !c->snap)
			return -ENOMEM;
		int rc = n ? c->ops->save_state(c->dev, c->snap, n) : 0;
		if (rc)
			return rc;
		c->snap_len = n;
		c->snap_pos = 0;
		c->snap_taken = true;
	}
	size_t k = c->snap_len - c->snap_pos;
	if (k > cap)
		k = cap;
	memcpy(buf, c->snap + c->snap_pos, k);
	c->snap_pos += k;
	return (ssize_t)k;
}

/*
 * Zero-copy source: a stopped device with save_ref may point at its memory;
 * otherwise (and always while running) the bytes are copied into buf.
 */
static ssize_t src_device_ref(void *opaque, void *buf, size_t cap, const void **data)
{
	struct devmig_core *c = opaque;

	if (c->ops->save_ref && atomic_load(&c->state) == DEVMIG_STATE_STOP_COPY)
		return c->ops->save_ref(c->dev, buf, cap, data);
	*data = buf;
	return src_device_data(opaque, buf, cap);
}

static ssize_t src_config_data(void *opaque, void *buf, size_t cap)
{
	struct devmig_core *c = opaque;

	pthread_mutex_lock(&c->cfg_lock);
	size_t n = devmig_pcicfg_save_size(c->cfg);
	int rc = n <= cap ? devmig_pcicfg_save(c->cfg, buf, cap) : -ENOSPC;
	cfg_unlock(c);
	return rc ? rc : (ssize_t)n;
}

/* Reader sink: check the header, hand device bytes to the variant or stage them. */
void devmig_core_compat_info(struct devmig_device *dev, struct devmig_compat_info *info)
{
	struct devmig_core *c = core_of(dev);

	memset(info, 0, sizeof(*info));
	snprintf(info->version, sizeof(info->version), "%s", c->ops->version ? c->ops->version : "");
	for (unsigned i = 0; c->ops->accepts && c->ops->accepts[i] && i < DEVMIG_ACCEPTS_MAX; i++)
		snprintf(info->accepts[info->naccepts++], sizeof(info->accepts[0]), "%s",
			 c->ops->accepts[i]);
	pthread_mutex_lock(&c->cfg_lock);
	info->config_fingerprint = devmig_pcicfg_fingerprint(c->cfg);
	cfg_unlock(c);
	info->caps = c->caps;
}

/* The stream's header: is its source one this device accepts? The same rule tools check. */
static int sink_header(void *opaque, const struct devmig_stream_header *h, char *why, size_t wl)
{
	struct devmig_core *c = opaque;
	struct devmig_compat_info self;

	devmig_core_compat_info(c->dev, &self);
	return devmig_compat_check(&self, h->version, h->config_fingerprint, why, wl);
}

static int sink_device_data(void *opaque, const void *buf, size_t len, char *why, size_t wl)
{
	struct devmig_core *c = opaque;

	if (!snapshot_style(c)) {
		if (!c->ops->load) {
			snprintf(why, wl, "device takes no migration data");
			return -EINVAL;
		}
		return c->ops->load(c->dev, buf, len, why, wl);
	}
	size_t want = c->ops->state_size ? c->ops->state_size(c->dev) : 0;
	if (len > want - c->snap_len) {
		snprintf(why, wl, "device state longer than this device's %zu bytes", want);
		return -EINVAL;
	}
	if (!c->snap) {
		c->snap = malloc(want ? want : 1);
		if (!c->snap)
			return -ENOMEM;
	}
	memcpy(c->snap + c->snap_len, buf, len);
	c->snap_len += len;
	return 0;
}

static int sink_config_data(void *opaque, const void *buf, size_t len, char *why, size_t wl)
{
	struct devmig_core *c = opaque;

	free(c->cfg_blob);
	c->cfg_blob = malloc(len ? len : 1);
	if (!c->cfg_blob) {
		snprintf(why, wl, "out of memory");
		return -ENOMEM;
	}
	memcpy(c->cfg_blob, buf, len);
	c->cfg_blob_len = len;
	return 0;
}

static void drop_session(struct devmig_core *c)
{
	devmig_stream_writer_free(c->writer);
	c->writer = NULL;
	devmig_stream_reader_free(c->reader);
	c->reader = NULL;
	free(c->snap);
	c->snap = NULL;
	c->snap_len = c->snap_pos = 0;
	c->snap_taken = false;
	free(c->cfg_blob);
	c->cfg_blob = NULL;
	c->cfg_blob_len = 0;
}

static int open_load(struct devmig_core *c)
{
	static const struct devmig_stream_sink sink_ops = {
		.header = sink_header,
		.device_data = sink_device_data,
		.config_data = sink_config_data,
	};
	struct devmig_stream_sink sink = sink_ops;

	drop_session(c);
	sink.opaque = c;
	c->reader = devmig_stream_reader_new(&sink);
	return c->reader ? 0 : -ENOMEM;
}

static int open_save(struct devmig_core *c)
{
	struct devmig_stream_header h = { .format = DEVMIG_STREAM_FORMAT, .caps = c->caps };
	struct devmig_stream_source src = {
		.opaque = c,
		.device_data = src_device_data,
		.config_data = src_config_data,
		.device_ref = src_device_ref,
	};

	drop_session(c);
	snprintf(h.name, sizeof(h.name), "%s", c->ops->name ? c->ops->name : "");
	snprintf(h.version, sizeof(h.version), "%s", c->ops->version ? c->ops->version : "");
	pthread_mutex_lock(&c->cfg_lock);
	h.config_fingerprint = devmig_pcicfg_fingerprint(c->cfg);
	src.config_size = devmig_pcicfg_save_size(c->cfg);
	cfg_unlock(c);
	c->writer = devmig_stream_writer_new(&h, &src);
	return c->writer ? 0 : -ENOMEM;
}

static void abort_load(struct devmig_core *c)
{
	if (!snapshot_style(c) && c->ops->load_abort)
		c->ops->load_abort(c->dev);
}

/*
 * RESUMING->STOP: everything is checked before anything is applied; config
 * space is applied first and put back if the device then refuses its data.
 */
static int commit_load(struct devmig_core *c, struct devmig_arc_result *res)
{
	char *why = res->why;
	size_t wl = sizeof(res->why);

	if (!c->reader || devmig_stream_reader_finish(c->reader)) {
		snprintf(why, wl, "%s", c->reader ? devmig_stream_reader_error(c->reader)
						  : "no load session");
		return -EINVAL;
	}
	if (snapshot_style(c)) {
		size_t want = c->ops->state_size ? c->ops->state_size(c->dev) : 0;
		if (c->snap_len != want) {
			snprintf(why, wl, "device state is %zu bytes, this device needs %zu",
				 c->snap_len, want);
			return -EINVAL;
		}
		if (c->ops->check_state && c->ops->check_state(c->dev, c->snap, want, why, wl))
			return -EINVAL;
	}

	pthread_mutex_lock(&c->cfg_lock);
	size_t old_len = devmig_pcicfg_save_size(c->cfg);
	uint8_t *old = malloc(old_len);
	int rc = old ? devmig_pcicfg_save(c->cfg, old, old_len) : -ENOMEM;
	if (!rc)
		rc = devmig_pcicfg_load(c->cfg, c->cfg_blob, c->cfg_blob_len, why, wl);
	cfg_unlock(c);
	if (rc) {
		free(old);
		return rc;
	}

	if (snapshot_style(c)) {
		if (c->snap_len)
			c->ops->load_state(c->dev, c->snap, c->snap_len);
	} else if (c->ops->load_commit) {
		rc = c->ops->load_commit(c->dev, why, wl);
	}
	if (rc) {
		char ignore[8];
		pthread_mutex_lock(&c->cfg_lock);
		devmig_pcicfg_load(c->cfg, old, old_len, ignore, sizeof(ignore));
		cfg_unlock(c);
	}
	free(old);
	return rc;
}

/* One primitive arc: the variant's part and the session's. mig_lock held. */
static int do_arc(struct devmig_core *c, enum devmig_state from, enum devmig_state to,
		  struct devmig_arc_result *res)
{
	enum devmig_arc_session session = devmig_arc_session(from, to);
	int rc = 0;

	if (session == DEVMIG_ARC_END && from == DEVMIG_STATE_RESUMING) {
		rc = commit_load(c, res);
		if (rc) {
			/* Nothing was applied; start over with an empty load session so
			 * the user may write a whole stream again, or reset. */
			abort_load(c);
			open_load(c);
			return rc;
		}
	}
	if (c->ops->arc) {
		rc = c->ops->arc(c->dev, from, to, res);
		if (rc)
			return rc;
	}
	switch (session) {
	case DEVMIG_ARC_OPEN_SAVE:
		rc = open_save(c);
		break;
	case DEVMIG_ARC_OPEN_LOAD:
		rc = open_load(c);
		break;
	case DEVMIG_ARC_END:
		drop_session(c);
		break;
	case DEVMIG_ARC_KEEP:
		break;
	}
	if (rc)
		snprintf(res->why, sizeof(res->why), "out of memory opening the data session");
	return rc;
}

int devmig_core_set_state(struct devmig_device *dev, uint32_t req, enum devmig_state *now,
			  char *why, size_t whylen)
{
	struct devmig_core *c = core_of(dev);
	int rc = 0;

	pthread_mutex_lock(&c->mig_lock);
	enum devmig_state cur = (enum devmig_state)atomic_load(&c->state);
	while (cur != req) {
		enum devmig_state next;
		enum devmig_fsm_err ferr = devmig_fsm_next(cur, req, c->caps, &next);
		if (ferr) {
			set_error(c, "%s -> %s: %s", devmig_state_name(cur), devmig_state_name(req),
				  devmig_fsm_strerror(ferr));
			rc = -EINVAL;
			break;
		}
		struct devmig_arc_result res = { .broken = false };
		atomic_store(&c->entering, next);
		rc = do_arc(c, cur, next, &res);
		if (rc) {
			atomic_store(&c->entering, cur);
			if (res.broken) {
				drop_session(c);
				atomic_store(&c->state, DEVMIG_STATE_ERROR);
				atomic_store(&c->entering, DEVMIG_STATE_ERROR);
			}
			set_error(c, "%s -> %s failed%s: %s", devmig_state_name(cur),
				  devmig_state_name(next), res.broken ? " (device in ERROR)" : "",
				  res.why[0] ? res.why : strerror(-rc));
			break;
		}
		atomic_store(&c->state, next);
		cur = next;
	}
	atomic_store(&c->entering, atomic_load(&c->state));
	if (irq_allowed(c))
		fire_held(c);
	if (cur == req && !rc) {
		/* Validate even a no-op request: an unsupported state is refused. */
		if (!devmig_state_supported(req, c->caps) || req == DEVMIG_STATE_ERROR) {
			set_error(c, "%s is not a state this device supports", devmig_state_name(req));
			rc = -EINVAL;
		}
	}
	*now = (enum devmig_state)atomic_load(&c->state);
	if (rc)
		snprintf(why, whylen, "%s", c->last_error);
	pthread_mutex_unlock(&c->mig_lock);
	return rc;
}

ssize_t devmig_core_mig_read(struct devmig_device *dev, struct iovec *iov, int max_iov,
			     int *niov, size_t len)
{
	struct devmig_core *c = core_of(dev);
	ssize_t n;

	pthread_mutex_lock(&c->mig_lock);
	uint32_t st = atomic_load(&c->state);
	*niov = 0;
	if (!devmig_state_is_saving(st) || !c->writer) {
		set_error(c, "MIG_DATA_READ in %s: only the saving states have data",
			  devmig_state_name(st));
		n = -EINVAL;
	} else {
		n = devmig_stream_writer_read_iov(c->writer, iov, max_iov, niov, len,
						  st == DEVMIG_STATE_STOP_COPY);
		if (n < 0)
			set_error(c, "saving device data failed: %s", strerror((int)-n));
	}
	pthread_mutex_unlock(&c->mig_lock);
	return n;
}

int devmig_core_mig_write(struct devmig_device *dev, const void *buf, size_t len)
{
	struct devmig_core *c = core_of(dev);
	int rc;

	pthread_mutex_lock(&c->mig_lock);
	uint32_t st = atomic_load(&c->state);
	if (st != DEVMIG_STATE_RESUMING || !c->reader) {
		set_error(c, "MIG_DATA_WRITE in %s: only RESUMING takes data", devmig_state_name(st));
		rc = -EINVAL;
	} else {
		rc = devmig_stream_reader_write(c->reader, buf, len);
		if (rc)
			set_error(c, "%s", devmig_stream_reader_error(c->reader));
	}
	pthread_mutex_unlock(&c->mig_lock);
	return rc;
}

int devmig_core_precopy_info(struct devmig_device *dev, uint64_t *initial, uint64_t *dirty)
{
	struct devmig_core *c = core_of(dev);
	int rc = 0;

	pthread_mutex_lock(&c->mig_lock);
	uint32_t st = atomic_load(&c->state);
	*initial = *dirty = 0;
	if (st != DEVMIG_STATE_PRE_COPY && st != DEVMIG_STATE_PRE_COPY_P2P) {
		rc = -EINVAL;
	} else {
		if (c->ops->precopy_info)
			c->ops->precopy_info(c->dev, initial, dirty);
		/* Framing already produced but not yet read is data too. */
		size_t pending = c->writer ? devmig_stream_writer_pending(c->writer) : 0;
		if (*initial)
			*initial += pending;
		else
			*dirty += pending;
	}
	pthread_mutex_unlock(&c->mig_lock);
	return rc;
}

int devmig_core_stop_copy_size(struct devmig_device *dev, uint64_t *bytes)
{
	struct devmig_core *c = core_of(dev);
	struct devmig_stream_header h = { 0 };
	uint64_t dev_bytes = 0;

	pthread_mutex_lock(&c->mig_lock);
	if (snapshot_style(c))
		dev_bytes = c->ops->state_size ? c->ops->state_size(dev) : 0;
	else if (c->ops->stop_copy_size)
		dev_bytes = c->ops->stop_copy_size(dev);
	pthread_mutex_unlock(&c->mig_lock);
	pthread_mutex_lock(&c->cfg_lock);
	size_t cfg_bytes = devmig_pcicfg_save_size(c->cfg);
	cfg_unlock(c);
	/* The same name and version open_save puts in the header. */
	snprintf(h.name, sizeof(h.name), "%s", c->ops->name ? c->ops->name : "");
	snprintf(h.version, sizeof(h.version), "%s", c->ops->version ? c->ops->version : "");
	*bytes = devmig_stream_size_bound(&h, dev_bytes, cfg_bytes);
	return 0;
}

void devmig_core_mig_status(struct devmig_device *dev, uint64_t *bytes_loaded, int *load_error)
{
	struct devmig_core *c = core_of(dev);

	pthread_mutex_lock(&c->mig_lock);
	*bytes_loaded = c->reader ? devmig_stream_reader_total(c->reader) : 0;
	*load_error = c->reader && devmig_stream_reader_error(c->reader)[0] ? -EINVAL : 0;
	pthread_mutex_unlock(&c->mig_lock);
}

void devmig_core_last_error(struct devmig_device *dev, char *buf, size_t len)
{
	struct devmig_core *c = core_of(dev);

	pthread_mutex_lock(&c->mig_lock);
	snprintf(buf, len, "%s", c->last_error);
	pthread_mutex_unlock(&c->mig_lock);
}

void devmig_core_reset(struct devmig_device *dev)
{
	struct devmig_core *c = core_of(dev);

	pthread_mutex_lock(&c->mig_lock);
	if (atomic_load(&c->state) == DEVMIG_STATE_RESUMING)
		abort_load(c);
	drop_session(c);
	if (c->ops->reset)
		c->ops->reset(dev);
	atomic_store(&c->state, DEVMIG_STATE_RUNNING);
	atomic_store(&c->entering, DEVMIG_STATE_RUNNING);
	c->last_error[0] = 0;
	pthread_mutex_unlock(&c->mig_lock);

	pthread_mutex_lock(&c->cfg_lock);
	devmig_pcicfg_reset(c->cfg);
	for (unsigned i = 0; i < DEVMIG_NUM_IRQS; i++) {
		struct irq_index *ix = &c->irq[i];
		for (uint32_t v = 0; v < ix->count; v++)
			ix->masked[v] = ix->pending[v] = false;
		ix->intx_masked = ix->intx_pending = false;
	}
	cfg_unlock(c);
}

/* ---- a replacement config space (a fleet profile) ---- */

static int alloc_irqs(struct devmig_core *c);
static void free_irqs(struct devmig_core *c);

/* Does the synthesized config keep the variant's MMIO layout (BARs, MSI-X placement)? */
static int same_mmio_layout(struct devmig_pci_config *a, struct devmig_pci_config *b, char *err,
			    size_t errlen)
{
	for (unsigned bar = 0; bar < DEVMIG_PCI_NUM_BARS; bar++) {
		uint64_t sa = 0, sb = 0;
		unsigned fa = 0, fb = 0;
		int ra = devmig_pcicfg_bar_info(a, bar, &sa, &fa);
		int rb = devmig_pcicfg_bar_info(b, bar, &sb, &fb);
		if (ra != rb || sa != sb || fa != fb) {
			snprintf(err, errlen,
				 "BAR %u differs: the device has %s%llu bytes (flags %#x), the profile %s%llu bytes (flags %#x)",
				 bar, ra ? "none, " : "", (unsigned long long)sa, fa, rb ? "none, " : "",
				 (unsigned long long)sb, fb);
			return -EINVAL;
		}
	}
	unsigned xa = devmig_pcicfg_find_cap(a, PCI_CAP_ID_MSIX, false);
	unsigned xb = devmig_pcicfg_find_cap(b, PCI_CAP_ID_MSIX, false);
	uint32_t ta = 0, tb = 0, pa = 0, pb = 0;
	if (xa) {
		devmig_pcicfg_read(a, xa + PCI_MSIX_TABLE, &ta, 4);
		devmig_pcicfg_read(a, xa + PCI_MSIX_PBA, &pa, 4);
	}
	if (xb) {
		devmig_pcicfg_read(b, xb + PCI_MSIX_TABLE, &tb, 4);
		devmig_pcicfg_read(b, xb + PCI_MSIX_PBA, &pb, 4);
	}
	if (!xa != !xb || devmig_pcicfg_msix_vectors(a) != devmig_pcicfg_msix_vectors(b) ||
	    ta != tb || pa != pb) {
		snprintf(err, errlen,
			 "MSI-X differs: the device has %u vectors (table %#x, PBA %#x), the profile %u (table %#x, PBA %#x)",
			 devmig_pcicfg_msix_vectors(a), ta, pa, devmig_pcicfg_msix_vectors(b), tb, pb);
		return -EINVAL;
	}
	return 0;
}

struct devmig_pci_config *devmig_core_new_config(struct devmig_device *dev)
{
	return devmig_pcicfg_create(cfg_notify, core_of(dev));
}

int devmig_core_replace_config(struct devmig_device *dev, struct devmig_pci_config *cfg,
			       char *err, size_t errlen)
{
	struct devmig_core *c = core_of(dev);
	int rc = same_mmio_layout(c->cfg, cfg, err, errlen);

	if (rc) {
		devmig_pcicfg_destroy(cfg);
		return rc;
	}
	devmig_pcicfg_seal(cfg);
	pthread_mutex_lock(&c->cfg_lock);
	struct devmig_pci_config *old = c->cfg;
	c->cfg = cfg;
	/* Interrupt counts follow the new config (MSI and INTx may differ). */
	free_irqs(c);
	rc = alloc_irqs(c);
	cfg_unlock(c);
	devmig_pcicfg_destroy(old);
	if (rc)
		snprintf(err, errlen, "out of memory");
	return rc;
}

/* ---- lifecycle ---- */

static int alloc_irqs(struct devmig_core *c)
{
	uint8_t pin = 0;
	uint16_t msi_ctl = 0;
	unsigned msi = devmig_pcicfg_find_cap(c->cfg, PCI_CAP_ID_MSI, false);

	devmig_pcicfg_read(c->cfg, PCI_INTERRUPT_PIN, &pin, 1);
	if (msi)
		devmig_pcicfg_read(c->cfg, msi + PCI_MSI_FLAGS, &msi_ctl, 2);
	c->irq[VFIO_PCI_INTX_IRQ_INDEX].count = pin ? 1 : 0;
	c->irq[VFIO_PCI_MSI_IRQ_INDEX].count = msi ? 1u << ((msi_ctl & PCI_MSI_FLAGS_QMASK) >> 1) : 0;
	c->irq[VFIO_PCI_MSIX_IRQ_INDEX].count = devmig_pcicfg_msix_vectors(c->cfg);
	for (unsigned i = 0; i < DEVMIG_NUM_IRQS; i++) {
		struct irq_index *ix = &c->irq[i];
		if (!ix->count)
			continue;
		ix->efd = calloc(ix->count, sizeof(*ix->efd));
		ix->masked = calloc(ix->count, sizeof(bool));
		ix->pending = calloc(ix->count, sizeof(bool));
		if (!ix->efd || !ix->masked || !ix->pending)
			return -ENOMEM;
	}
	/* A section signals each vector's fd at most once: one slot per vector. */
	unsigned vectors = 0;
	for (unsigned i = 0; i < DEVMIG_NUM_IRQS; i++)
		vectors += c->irq[i].count;
	free(c->to_signal);
	c->nto_signal = 0;
	c->to_signal_cap = vectors;
	c->to_signal = calloc(vectors ? vectors : 1, sizeof(*c->to_signal));
	return c->to_signal ? 0 : -ENOMEM;
}

static void free_irqs(struct devmig_core *c)
{
	for (unsigned i = 0; i < DEVMIG_NUM_IRQS; i++) {
		struct irq_index *ix = &c->irq[i];
		if (ix->efd)
			close_irq_fds(ix, 0, ix->count);
		free(ix->efd);
		free(ix->masked);
		free(ix->pending);
		memset(ix, 0, sizeof(*ix));
	}
	free(c->to_signal);
	c->to_signal = NULL;
	c->nto_signal = c->to_signal_cap = 0;
}

static void free_core(struct devmig_core *c)
{
	drop_session(c);
	free_irqs(c);
	for (unsigned b = 0; b < DEVMIG_PCI_NUM_BARS; b++) {
		if (c->bar_mem[b].mem) {
			munmap(c->bar_mem[b].mem, c->bar_mem[b].size);
			close(c->bar_mem[b].fd);
		}
	}
	if (c->dma)
		devmig_dma_destroy(c->dma);
	if (c->cfg)
		devmig_pcicfg_destroy(c->cfg);
	pthread_mutex_destroy(&c->cfg_lock);
	pthread_mutex_destroy(&c->mig_lock);
	pthread_mutex_destroy(&c->xfer_lock);
	free(c);
}

int devmig_device_init(struct devmig_device *dev)
{
	static const struct devmig_device_ops no_ops = { .name = "device" };
	struct devmig_core *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	if (!dev->ops)
		dev->ops = &no_ops;
	c->dev = dev;
	c->ops = dev->ops;
	dev->core = c;
	pthread_mutex_init(&c->cfg_lock, NULL);
	pthread_mutex_init(&c->mig_lock, NULL);
	pthread_mutex_init(&c->xfer_lock, NULL);
	atomic_store(&c->state, DEVMIG_STATE_RUNNING);
	atomic_store(&c->entering, DEVMIG_STATE_RUNNING);

	int rc = -EINVAL;
	c->caps = c->ops->migration_caps;
	if (c->caps && !devmig_caps_valid(c->caps)) {
		devmig_device_log(dev, "invalid migration capabilities %#llx",
				  (unsigned long long)c->caps);
		goto fail;
	}
	if (c->caps && !c->ops->save && !c->ops->save_state) {
		devmig_device_log(dev, "migratable but neither save nor save_state is given");
		goto fail;
	}
	struct devmig_dma_transport t = { .xfer = core_dma_xfer, .opaque = c };
	c->cfg = devmig_pcicfg_create(cfg_notify, c);
	c->dma = devmig_dma_create(&t);
	rc = -ENOMEM;
	if (!c->cfg || !c->dma)
		goto fail;
	if (c->ops->realize) {
		rc = c->ops->realize(dev, c->cfg);
		if (rc)
			goto fail;
	}
	devmig_pcicfg_seal(c->cfg);
	rc = alloc_irqs(c);
	if (rc)
		goto fail_released;
	return 0;
fail_released:
	if (c->ops->release)
		c->ops->release(dev);
fail:
	free_core(c);
	dev->core = NULL;
	return rc;
}

void devmig_device_destroy(struct devmig_device *dev)
{
	struct devmig_core *c = core_of(dev);

	if (!c)
		return;
	if (atomic_load(&c->state) == DEVMIG_STATE_RESUMING)
		abort_load(c);
	if (c->ops->release)
		c->ops->release(dev);
	free_core(c);
	dev->core = NULL;
}
