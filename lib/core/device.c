/* SPDX-License-Identifier: MIT */
/*
 * The device core: what every variant gets without writing it. PCI config
 * space, BARs (memory parts a client maps included), interrupts, DMA and the
 * migration plumbing (state machine walk, data session, records, tracked
 * memory, check-then-apply on load).
 *
 * Locks. cfg_lock guards config space (pending interrupts included) and
 * interrupt fds; it
 * is held only for short sections and never across a variant callback, so
 * a variant's worker raising an interrupt can never deadlock against the
 * server thread waiting for that worker inside an arc. Nor is it held while
 * an interrupt eventfd (the client's) is written: signals are queued under
 * the lock and sent by cfg_unlock() after it, each fd kept open by a
 * reference meanwhile. mig_lock serialises migration operations (state
 * changes and the data session); the state itself is an atomic that workers
 * read without a lock.
 */
#include <errno.h>
#include <inttypes.h>
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
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "deadline.h"
#include "devmig/compat.h"
#include "le.h"
#include "pace.h"
#include "pci_config.h"
#include "stream.h"
#include "tracker.h"

/* BAR memory travels in records of at most this many bytes. */
#define BAR_PIECE (1u << 20)
/* Dirty-rate limiting: how far ahead of the cap a device may run, and the
 * longest one completion is held. */
#define THROTTLE_BURST_NS (20ull * 1000 * 1000)
#define THROTTLE_MAX_WAIT_NS (1000ull * 1000 * 1000)

/* An interrupt eventfd from the client; a signal in flight holds a reference. */
struct irq_efd {
	atomic_uint refs;
	int fd;
};

/* The client's interrupt setup of one VFIO index (its pending bits are
 * the device's, in config space). */
struct irq_index {
	uint32_t count;
	struct irq_efd **efd; /* count entries, NULL when unset */
	bool *masked;  /* count entries: masked by SET_IRQS (MSI, MSI-X) */
	bool intx_masked; /* SET_IRQS MASK, or automasked after a signal */
};

/* The memory part of a BAR (devmig_device_bar_memory). */
struct bar_mem {
	uint8_t *mem;      /* [off, off + size) of the BAR */
	int fd;            /* memfd covering the BAR up to off + size */
	uint64_t off, size;
	uint8_t *stage;    /* loading: the incoming bytes */
	uint64_t next;     /* loading: the BAR offset the next record must start at */
};

enum save_phase {
	SAVE_BULK,  /* trackers, then the variant's save */
	SAVE_DONE,  /* save_state and BAR memory emitted */
};

struct devmig_core {
	struct devmig_device *dev;
	const struct devmig_device_id *id;
	const struct devmig_device_ops *ops;
	const struct devmig_migration_ops *mig; /* never NULL: an empty one if none */
	uint64_t caps;

	pthread_mutex_t cfg_lock;
	struct devmig_pci_config *cfg;
	unsigned cfg_events;          /* DEVMIG_CFG_* gathered during a write */
	struct irq_index irq[DEVMIG_NUM_IRQS];
	/* Signals raised under cfg_lock, sent once it is released (cfg_unlock). */
	struct irq_efd **to_signal;
	unsigned nto_signal, to_signal_cap;
	struct bar_mem bar[DEVMIG_PCI_NUM_BARS];

	struct devmig_dma *dma;
	pthread_mutex_t xfer_lock;
	int (*xfer)(void *opaque, bool is_write, uint64_t iova, void *buf, size_t len);
	void *xfer_opaque;

	struct devmig_tracker *trackers[DEVMIG_TRACKERS_MAX];
	unsigned ntrackers, save_next;

	pthread_mutex_t mig_lock;
	_Atomic uint32_t state;
	/*
	 * The state an arc in progress is entering (== state otherwise), which
	 * devmig_device_state() publishes. DMA and interrupts are allowed when
	 * either state allows them: workers still finishing in-flight work
	 * while entering a quiesced state, and workers the variant resumes
	 * inside an arc leaving one, are both in the rules.
	 */
	_Atomic uint32_t entering;
	struct devmig_stream_writer *writer;
	uint64_t session_gen;         /* bumped by every arc that opens a session */
	enum save_phase save_phase;
	struct devmig_stream_reader *reader;
	/* loading: the config snapshot (pending interrupts in it), applied at commit */
	uint8_t *cfg_blob;
	size_t cfg_blob_len;
	char last_error[256];

	/* The last deadline request (mig_lock): its outcome, and while its
	 * STOP_COPY stream is read out, the deadline the drain counts against. */
	struct devmig_feature_arc_estimates last_dl;
	bool dl_armed;
	uint64_t dl_start, dl_deadline;

	/*
	 * Rates (rl_lock, a leaf lock: never held across a callback or with
	 * another lock taken after it). The transfer rate of migration reads;
	 * the dirty-rate cap, the workers it holds back (rl_cv, woken and
	 * rl_gen bumped whenever the cap or the state changes) and the
	 * measured change rate.
	 */
	pthread_mutex_t rl_lock;
	pthread_cond_t rl_cv;
	struct devmig_xfer_meter xfer_rate;
	uint64_t rl_cap, rl_gen, rl_throttled_ns;
	bool rl_dying;
	struct devmig_pace rl_pace;
	struct devmig_change_meter rl_meter;
};

static void set_cap(struct devmig_core *c, uint64_t cap);

static const struct devmig_device_ops no_ops;
static const struct devmig_migration_ops no_mig;

static struct devmig_core *core_of(struct devmig_device *dev)
{
	return dev->core;
}

static const char *dev_name(const struct devmig_device *dev)
{
	return dev->id && dev->id->name ? dev->id->name : "device";
}

void devmig_device_log(struct devmig_device *dev, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "devmig %s: ", dev_name(dev));
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
 * The interrupt rule, one for every mode. A vector the device raises is
 * signalled at once when it can be: the device may signal (it is not
 * stopped), nothing masks the vector in a way the server sees (SET_IRQS
 * MASK; the MSI-X function mask or, once the client writes the table, the
 * vector's table mask bit; an MSI mask bit; INTx's automask and the command
 * register's INTx disable) and the client gave it an eventfd (else -ENOENT,
 * nothing kept: the client did not ask for it). When it cannot be, it is
 * pending: one bit per vector in config space (the PBA, the MSI pending
 * bits, pci_config's own for MSI without mask bits and for INTx), the one
 * record of it, which migrates with config space. A pending vector is
 * signalled once, its bit cleared, at the first moment all of the above
 * hold (and it has an eventfd): tried whenever one of them changes.
 * cfg_lock held for all of these.
 */
static bool irq_allowed(struct devmig_core *c)
{
	return !devmig_state_is_stopped(atomic_load(&c->state)) ||
	       !devmig_state_is_stopped(atomic_load(&c->entering));
}

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
	} else if (on) {
		devmig_pcicfg_msi_set_pending(c->cfg, v);
	} else {
		devmig_pcicfg_msi_clear_pending(c->cfg, v);
	}
}

static bool vec_pending(struct devmig_core *c, unsigned index, unsigned v)
{
	if (index == VFIO_PCI_MSIX_IRQ_INDEX)
		return devmig_pcicfg_msix_pending(c->cfg, v);
	return devmig_pcicfg_msi_pending(c->cfg, v);
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
	if (!irq_allowed(c) || vec_masked(c, index, v)) {
		vec_set_pending(c, index, v, true);
		return 0;
	}
	struct irq_efd *e = irq_fd(c, index, v);
	if (!e)
		return -ENOENT;
	queue_signal(c, e);
	return 0;
}

/* A pending vector goes if nothing holds it any more. */
static void vec_try_fire(struct devmig_core *c, unsigned index, unsigned v)
{
	struct irq_efd *e = irq_fd(c, index, v);

	if (!vec_active(c, index, v) || !vec_pending(c, index, v) || vec_masked(c, index, v) ||
	    !e || !irq_allowed(c))
		return;
	vec_set_pending(c, index, v, false);
	queue_signal(c, e);
}

static bool intx_held(struct devmig_core *c)
{
	return !irq_allowed(c) || c->irq[VFIO_PCI_INTX_IRQ_INDEX].intx_masked ||
	       devmig_pcicfg_intx_disabled(c->cfg);
}

/* INTx is automasked once signalled, until the client unmasks it. */
static void intx_signal(struct devmig_core *c)
{
	struct irq_index *ix = &c->irq[VFIO_PCI_INTX_IRQ_INDEX];

	ix->intx_masked = true;
	queue_signal(c, ix->efd[0]);
}

static int raise_intx(struct devmig_core *c)
{
	struct irq_index *ix = &c->irq[VFIO_PCI_INTX_IRQ_INDEX];

	devmig_pcicfg_set_intx_status(c->cfg, true);
	if (intx_held(c)) {
		devmig_pcicfg_intx_set_pending(c->cfg, true);
		return 0;
	}
	if (!ix->efd[0])
		return -ENOENT;
	intx_signal(c);
	return 0;
}

static void intx_try_fire(struct devmig_core *c)
{
	struct irq_index *ix = &c->irq[VFIO_PCI_INTX_IRQ_INDEX];

	if (!ix->count || !devmig_pcicfg_intx_pending(c->cfg) || intx_held(c) || !ix->efd[0])
		return;
	devmig_pcicfg_intx_set_pending(c->cfg, false);
	intx_signal(c);
}

/* Whatever is pending and may go now: after the device may signal again. */
static void fire_pending(struct devmig_core *c)
{
	pthread_mutex_lock(&c->cfg_lock);
	for (unsigned index = VFIO_PCI_MSI_IRQ_INDEX; index <= VFIO_PCI_MSIX_IRQ_INDEX; index++)
		for (uint32_t v = 0; v < c->irq[index].count; v++)
			vec_try_fire(c, index, v);
	intx_try_fire(c);
	cfg_unlock(c);
}

/* Raise vector v of the enabled mode. cfg_lock held. */
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
	return raise_intx(c);
}

/* May the device initiate DMA now? */
static bool dma_allowed(struct devmig_core *c)
{
	return !devmig_state_is_quiesced(atomic_load(&c->state)) ||
	       !devmig_state_is_quiesced(atomic_load(&c->entering));
}

int devmig_device_irq(struct devmig_device *dev, unsigned v)
{
	struct devmig_core *c = core_of(dev);

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
		intx_try_fire(c); /* INTx disable may have gone */
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
		/* A pending vector is deliverable as far as config space goes
		 * (pci_config cleared its bit): the rest of the rule decides. */
		unsigned ix = ev == DEVMIG_PCICFG_EV_MSI_FIRE ? VFIO_PCI_MSI_IRQ_INDEX
							       : VFIO_PCI_MSIX_IRQ_INDEX;
		vec_set_pending(c, ix, index, true);
		vec_try_fire(c, ix, index);
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
			intx_try_fire(c);
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
			/* A vector pending only for want of an eventfd goes now. */
			for (uint32_t i = 0; i < nfds; i++) {
				if (set->index == VFIO_PCI_INTX_IRQ_INDEX)
					intx_try_fire(c);
				else
					vec_try_fire(c, set->index, set->start + i);
			}
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
	if (index < DEVMIG_PCI_NUM_BARS && c->bar[index].mem) {
		/* The memory part as the one sparse area; the fd's offsets are the
		 * BAR's (region offset 0), the rest of the BAR traps. */
		struct {
			struct devmig_info_cap_hdr h;
			uint32_t nr_areas;
			uint32_t reserved;
			struct devmig_sparse_mmap_area area;
		} __attribute__((packed)) cap = {
			.h = { VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, 0 },
			.nr_areas = 1,
			.area = { c->bar[index].off, c->bar[index].size },
		};
		if (caps_cap >= sizeof(cap)) {
			memcpy(caps, &cap, sizeof(cap));
			*caps_len = sizeof(cap);
			info->flags |= VFIO_REGION_INFO_FLAG_MMAP;
			*fd = c->bar[index].fd;
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

/* [off, off+len) wholly inside the BAR's memory part? */
static bool in_bar_mem(const struct bar_mem *b, uint64_t off, uint64_t len)
{
	return b->mem && off >= b->off && len <= b->size && off - b->off <= b->size - len;
}

int devmig_device_default_bar_access(struct devmig_device *dev, unsigned bar, uint64_t offset,
				     void *buf, size_t len, bool is_write)
{
	struct devmig_core *c = core_of(dev);

	if (bar < DEVMIG_PCI_NUM_BARS && in_bar_mem(&c->bar[bar], offset, len)) {
		uint8_t *mem = c->bar[bar].mem + (offset - c->bar[bar].off);
		if (is_write)
			memcpy(mem, buf, len);
		else
			memcpy(buf, mem, len);
		return 0;
	}
	if (!is_write)
		memset(buf, 0, len);
	return 0;
}

/* A BAR access the MSI-X table and PBA did not take: the memory part is the
 * core's, the rest the variant's. One access may span both. */
static int bar_rw(struct devmig_core *c, unsigned bar, uint64_t off, uint8_t *buf,
		  uint32_t count, bool is_write)
{
	const struct bar_mem *b = &c->bar[bar];

	while (count) {
		uint32_t n = count;
		bool mem = false;
		if (b->mem && off >= b->off && off - b->off < b->size) {
			mem = true;
			if (b->size - (off - b->off) < n)
				n = (uint32_t)(b->size - (off - b->off));
		} else if (b->mem && off < b->off && b->off - off < n) {
			n = (uint32_t)(b->off - off);
		}
		int rc;
		if (mem || !c->ops->bar_access)
			rc = devmig_device_default_bar_access(c->dev, bar, off, buf, n, is_write);
		else
			rc = c->ops->bar_access(c->dev, bar, off, buf, n, is_write);
		if (rc)
			return rc;
		off += n;
		buf += n;
		count -= n;
	}
	return 0;
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
	return bar_rw(c, region, offset, buf, count, is_write);
}

void *devmig_device_bar_memory(struct devmig_device *dev, unsigned bar, uint64_t offset,
			       uint64_t size)
{
	struct devmig_core *c = core_of(dev);
	uint64_t bar_size;
	unsigned flags;
	long page = sysconf(_SC_PAGESIZE);

	if (bar >= DEVMIG_PCI_NUM_BARS || devmig_pcicfg_bar_info(c->cfg, bar, &bar_size, &flags) ||
	    (flags & PCI_BASE_ADDRESS_SPACE_IO) || !size || offset % (uint64_t)page ||
	    size % (uint64_t)page || offset > bar_size || size > bar_size - offset) {
		errno = EINVAL;
		return NULL;
	}
	if (c->bar[bar].mem) {
		errno = EEXIST;
		return NULL;
	}
	int fd = memfd_create("devmig-bar", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	void *mem = MAP_FAILED;
	if (!ftruncate(fd, (off_t)(offset + size)))
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
	if (mem == MAP_FAILED) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	c->bar[bar].mem = mem;
	c->bar[bar].fd = fd;
	c->bar[bar].off = offset;
	c->bar[bar].size = size;
	return mem;
}

/* Does the MSI-X table or PBA overlap a BAR's memory part? (Checked once
 * realize is done: it may place MSI-X after the memory.) */
static int bar_mem_clear_of_msix(struct devmig_core *c)
{
	unsigned cap = devmig_pcicfg_find_cap(c->cfg, PCI_CAP_ID_MSIX, false);
	uint32_t table = 0, pba = 0;
	unsigned n = devmig_pcicfg_msix_vectors(c->cfg);

	if (!cap)
		return 0;
	devmig_pcicfg_read(c->cfg, cap + PCI_MSIX_TABLE, &table, 4);
	devmig_pcicfg_read(c->cfg, cap + PCI_MSIX_PBA, &pba, 4);
	struct { unsigned bar; uint64_t off, len; const char *what; } parts[2] = {
		{ table & PCI_MSIX_TABLE_BIR, table & PCI_MSIX_TABLE_OFFSET, 16ull * n, "table" },
		{ pba & PCI_MSIX_PBA_BIR, pba & PCI_MSIX_PBA_OFFSET, 8ull * ((n + 63) / 64), "PBA" },
	};
	for (unsigned i = 0; i < 2; i++) {
		const struct bar_mem *b = parts[i].bar < DEVMIG_PCI_NUM_BARS ? &c->bar[parts[i].bar] : NULL;
		if (b && b->mem && parts[i].off < b->off + b->size && b->off < parts[i].off + parts[i].len) {
			devmig_device_log(c->dev, "the MSI-X %s overlaps the memory part of BAR %u",
					  parts[i].what, parts[i].bar);
			return -EINVAL;
		}
	}
	return 0;
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
	/* Nobody is left to lift a cap: the guest must not stay slowed. */
	set_cap(c, 0);
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
	return (enum devmig_state)atomic_load(&core_of(dev)->entering);
}

uint64_t devmig_core_mig_caps(struct devmig_device *dev)
{
	return core_of(dev)->caps;
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

struct devmig_tracker *devmig_tracker_new(struct devmig_device *dev, uint64_t size,
					  uint32_t chunk, unsigned flags)
{
	struct devmig_core *c = core_of(dev);

	if (c->ntrackers >= DEVMIG_TRACKERS_MAX) {
		errno = ENOSPC;
		return NULL;
	}
	struct devmig_tracker *t = devmig_tracker_create(c->ntrackers, size, chunk, flags);
	if (t)
		c->trackers[c->ntrackers++] = t;
	return t;
}

/* ---- saving ---- */

/* The memory parts of the BARs, whole, in pieces (the device is stopped). */
static int save_bar_memory(struct devmig_core *c, struct devmig_save *s)
{
	for (unsigned bar = 0; bar < DEVMIG_PCI_NUM_BARS; bar++) {
		const struct bar_mem *b = &c->bar[bar];
		for (uint64_t at = 0; b->mem && at < b->size; at += BAR_PIECE) {
			uint8_t head[DEVMIG_BAR_PREFIX];
			uint64_t n = b->size - at < BAR_PIECE ? b->size - at : BAR_PIECE;
			put32(head, bar);
			put32(head + 4, 0);
			put64(head + 8, b->off + at);
			int rc = devmig_save_raw(s, DEVMIG_REC_BAR, head, sizeof(head), b->mem + at,
						 (size_t)n, true);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/*
 * The body records of a save session: the trackers' due chunks and the
 * variant's bulk data while there is room; once that has nothing left in
 * STOP_COPY, the closing records: the variant's state and BAR memory
 * (pending interrupts are in the config snapshot after them).
 */
static int src_records(void *opaque, struct devmig_save *s)
{
	struct devmig_core *c = opaque;
	size_t before = devmig_save_emitted(s);
	int rc = 0;

	if (c->save_phase == SAVE_DONE)
		return 0;
	/* Each call starts at the next tracker: one always dirty starves none. */
	for (unsigned k = 0; k < c->ntrackers && devmig_save_room(s); k++) {
		rc = devmig_tracker_save(c->trackers[(c->save_next + k) % c->ntrackers], s);
		if (rc < 0)
			return rc;
	}
	if (c->ntrackers)
		c->save_next = (c->save_next + 1) % c->ntrackers;
	if (devmig_save_room(s) && c->mig->save) {
		rc = c->mig->save(c->dev, s);
		if (rc)
			return rc;
	}
	if (devmig_save_emitted(s) > before || !devmig_save_final(s))
		return 0;
	c->save_phase = SAVE_DONE;
	if (c->mig->save_state) {
		rc = c->mig->save_state(c->dev, s);
		if (rc)
			return rc;
	}
	return save_bar_memory(c, s);
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

void devmig_core_compat_info(struct devmig_device *dev, struct devmig_compat_info *info)
{
	struct devmig_core *c = core_of(dev);

	memset(info, 0, sizeof(*info));
	snprintf(info->version, sizeof(info->version), "%s", c->id->version ? c->id->version : "");
	for (unsigned i = 0; c->id->accepts && c->id->accepts[i] && i < DEVMIG_ACCEPTS_MAX; i++)
		snprintf(info->accepts[info->naccepts++], sizeof(info->accepts[0]), "%s",
			 c->id->accepts[i]);
	pthread_mutex_lock(&c->cfg_lock);
	info->config_fingerprint = devmig_pcicfg_fingerprint(c->cfg);
	cfg_unlock(c);
	info->caps = c->caps;
}

/* ---- loading ---- */

/* The stream's header: is its source one this device accepts? The same rule tools check. */
static int sink_header(void *opaque, const struct devmig_stream_header *h, char *why, size_t wl)
{
	struct devmig_core *c = opaque;
	struct devmig_compat_info self;

	devmig_core_compat_info(c->dev, &self);
	return devmig_compat_check(&self, h->version, h->config_fingerprint, why, wl);
}

static int load_bar(struct devmig_core *c, const uint8_t *p, size_t len, char *why, size_t wl)
{
	if (len < DEVMIG_BAR_PREFIX) {
		snprintf(why, wl, "format: BAR record of %zu bytes", len);
		return -EINVAL;
	}
	uint32_t bar = get32(p);
	uint64_t off = get64(p + 8);
	size_t n = len - DEVMIG_BAR_PREFIX;
	struct bar_mem *b = bar < DEVMIG_PCI_NUM_BARS ? &c->bar[bar] : NULL;

	if (!b || !b->mem) {
		snprintf(why, wl, "range: BAR %" PRIu32 " has no memory part on this device", bar);
		return -EINVAL;
	}
	if (off != b->next || !in_bar_mem(b, off, n)) {
		snprintf(why, wl,
			 "range: BAR %" PRIu32 " memory record at %#" PRIx64 " (+%zu), expected at %#"
			 PRIx64 " within %#" PRIx64 "..%#" PRIx64,
			 bar, off, n, b->next, b->off, b->off + b->size);
		return -EINVAL;
	}
	if (!b->stage && !(b->stage = malloc(b->size))) {
		snprintf(why, wl, "out of memory for BAR %" PRIu32 "'s memory", bar);
		return -ENOMEM;
	}
	memcpy(b->stage + (off - b->off), p + DEVMIG_BAR_PREFIX, n);
	b->next = off + n;
	return 0;
}

static int sink_record(void *opaque, uint32_t type, const void *buf, size_t len, char *why,
		       size_t wl)
{
	struct devmig_core *c = opaque;
	const uint8_t *p = buf;

	switch (type) {
	case DEVMIG_REC_MEM_INFO:
	case DEVMIG_REC_MEM_DATA:
	case DEVMIG_REC_MEM_ZERO: {
		uint32_t i = len >= 4 ? get32(p) : UINT32_MAX;
		if (i >= c->ntrackers) {
			snprintf(why, wl, "range: device memory %" PRIu32 ", this device has %u", i,
				 c->ntrackers);
			return -EINVAL;
		}
		return devmig_tracker_load(c->trackers[i], type, p, len, why, wl);
	}
	case DEVMIG_REC_BAR:
		return load_bar(c, p, len, why, wl);
	}
	if (!c->mig->load) {
		snprintf(why, wl, "the device takes no records of its own (type %" PRIu32 ")",
			 type - DEVMIG_REC_VARIANT);
		return -EINVAL;
	}
	return c->mig->load(c->dev, type - DEVMIG_REC_VARIANT, buf, len, why, wl);
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

/* ---- sessions ---- */

static void close_save(struct devmig_core *c)
{
	devmig_stream_writer_free(c->writer);
	c->writer = NULL;
	for (unsigned i = 0; i < c->ntrackers; i++)
		devmig_tracker_save_close(c->trackers[i]);
}

/* End the load session; abort: it was abandoned, staged data is dropped
 * everywhere (the variant's too). */
static void close_load(struct devmig_core *c, bool abort)
{
	if (!c->reader)
		return;
	devmig_stream_reader_free(c->reader);
	c->reader = NULL;
	free(c->cfg_blob);
	c->cfg_blob = NULL;
	c->cfg_blob_len = 0;
	for (unsigned b = 0; b < DEVMIG_PCI_NUM_BARS; b++) {
		free(c->bar[b].stage);
		c->bar[b].stage = NULL;
	}
	if (!abort)
		return;
	for (unsigned i = 0; i < c->ntrackers; i++)
		devmig_tracker_load_abort(c->trackers[i]);
	if (c->mig->load_abort)
		c->mig->load_abort(c->dev);
}

static void drop_session(struct devmig_core *c)
{
	close_save(c);
	close_load(c, true);
}

static int open_load(struct devmig_core *c, char *why, size_t wl)
{
	static const struct devmig_stream_sink sink_ops = {
		.header = sink_header,
		.record = sink_record,
		.config_data = sink_config_data,
	};
	struct devmig_stream_sink sink = sink_ops;

	drop_session(c);
	sink.opaque = c;
	c->reader = devmig_stream_reader_new(&sink);
	if (!c->reader) {
		snprintf(why, wl, "out of memory opening the data session");
		return -ENOMEM;
	}
	for (unsigned b = 0; b < DEVMIG_PCI_NUM_BARS; b++)
		c->bar[b].next = c->bar[b].off;
	for (unsigned i = 0; i < c->ntrackers; i++) {
		if (devmig_tracker_load_open(c->trackers[i])) {
			/* Refused now, while the source still runs, rather than later. */
			snprintf(why, wl, "out of memory for the staging area of device memory %u "
				 "(%" PRIu64 " bytes)", i, devmig_tracker_size(c->trackers[i]));
			drop_session(c);
			return -ENOMEM;
		}
	}
	return 0;
}

static int open_save(struct devmig_core *c, char *why, size_t wl)
{
	struct devmig_stream_header h = { .format = DEVMIG_STREAM_FORMAT, .caps = c->caps };
	struct devmig_stream_source src = {
		.opaque = c,
		.records = src_records,
		.config_data = src_config_data,
	};

	drop_session(c);
	snprintf(h.name, sizeof(h.name), "%s", c->id->name ? c->id->name : "");
	snprintf(h.version, sizeof(h.version), "%s", c->id->version ? c->id->version : "");
	pthread_mutex_lock(&c->cfg_lock);
	h.config_fingerprint = devmig_pcicfg_fingerprint(c->cfg);
	src.config_size = devmig_pcicfg_save_size(c->cfg);
	cfg_unlock(c);
	c->writer = devmig_stream_writer_new(&h, &src);
	pthread_mutex_lock(&c->rl_lock);
	devmig_xfer_meter_reset(&c->xfer_rate); /* a new session: its reads set the rate */
	pthread_mutex_unlock(&c->rl_lock);
	if (!c->writer) {
		snprintf(why, wl, "out of memory opening the data session");
		return -ENOMEM;
	}
	c->save_phase = SAVE_BULK;
	for (unsigned i = 0; i < c->ntrackers; i++)
		devmig_tracker_save_open(c->trackers[i]);
	return 0;
}

/*
 * RESUMING->STOP, first half: is everything that arrived complete and valid?
 * Changes nothing, so it may run again when the arc is retried.
 */
static int check_load(struct devmig_core *c, char *why, size_t wl)
{
	if (!c->reader || devmig_stream_reader_finish(c->reader)) {
		snprintf(why, wl, "%s", c->reader ? devmig_stream_reader_error(c->reader)
						  : "no load session");
		return -EINVAL;
	}
	for (unsigned i = 0; i < c->ntrackers; i++)
		if (devmig_tracker_load_check(c->trackers[i], why, wl))
			return -EINVAL;
	for (unsigned b = 0; b < DEVMIG_PCI_NUM_BARS; b++) {
		const struct bar_mem *m = &c->bar[b];
		if (m->mem && m->next != m->off + m->size) {
			snprintf(why, wl, "incomplete: BAR %u memory: %" PRIu64 " of %" PRIu64
				 " bytes arrived", b, m->next - m->off, m->size);
			return -EINVAL;
		}
	}
	/* Config space: load it (which validates before changing anything) and
	 * put ours back, under one lock hold so nobody sees the swap. */
	pthread_mutex_lock(&c->cfg_lock);
	size_t old_len = devmig_pcicfg_save_size(c->cfg);
	uint8_t *old = malloc(old_len);
	int rc = old ? devmig_pcicfg_save(c->cfg, old, old_len) : -ENOMEM;
	if (!rc) {
		rc = devmig_pcicfg_load(c->cfg, c->cfg_blob, c->cfg_blob_len, why, wl);
		if (!rc) {
			char ignore[8];
			devmig_pcicfg_load(c->cfg, old, old_len, ignore, sizeof(ignore));
		}
	} else {
		snprintf(why, wl, "out of memory");
	}
	cfg_unlock(c);
	free(old);
	if (rc)
		return rc;
	return c->mig->load_check ? c->mig->load_check(c->dev, why, wl) : 0;
}

/* RESUMING->STOP, second half, once the variant's arc succeeded: apply. */
static void apply_load(struct devmig_core *c)
{
	char why[160];

	pthread_mutex_lock(&c->cfg_lock);
	if (devmig_pcicfg_load(c->cfg, c->cfg_blob, c->cfg_blob_len, why, sizeof(why)))
		devmig_device_log(c->dev, "config space checked but not applied: %s", why);
	cfg_unlock(c);
	for (unsigned i = 0; i < c->ntrackers; i++)
		devmig_tracker_load_apply(c->trackers[i]);
	for (unsigned b = 0; b < DEVMIG_PCI_NUM_BARS; b++)
		if (c->bar[b].mem)
			memcpy(c->bar[b].mem, c->bar[b].stage, c->bar[b].size);
	if (c->mig->load_apply)
		c->mig->load_apply(c->dev);
	close_load(c, false);
}

/* One primitive arc: the session's part and the variant's. mig_lock held. */
static int do_arc(struct devmig_core *c, enum devmig_state from, enum devmig_state to,
		  struct devmig_arc_result *res)
{
	enum devmig_arc_session session = devmig_arc_session(from, to);
	bool commit = session == DEVMIG_ARC_END && from == DEVMIG_STATE_RESUMING;
	int rc = 0;

	if (session == DEVMIG_ARC_OPEN_SAVE)
		rc = open_save(c, res->why, sizeof(res->why));
	else if (session == DEVMIG_ARC_OPEN_LOAD)
		rc = open_load(c, res->why, sizeof(res->why));
	if (rc)
		return rc;
	if (session == DEVMIG_ARC_OPEN_SAVE || session == DEVMIG_ARC_OPEN_LOAD)
		c->session_gen++;
	if (commit) {
		rc = check_load(c, res->why, sizeof(res->why));
		if (rc) {
			/* Nothing was applied; start over with an empty load session so
			 * the user may write a whole stream again, or reset. */
			char ignore[160];
			open_load(c, ignore, sizeof(ignore));
			return rc;
		}
	}
	if (c->mig->arc) {
		rc = c->mig->arc(c->dev, from, to, res);
		if (rc) {
			/* A session this arc opened is dropped; a checked load stays
			 * staged, unapplied, for a retry. */
			if (session == DEVMIG_ARC_OPEN_SAVE || session == DEVMIG_ARC_OPEN_LOAD)
				drop_session(c);
			return rc;
		}
	}
	if (commit)
		apply_load(c);
	else if (session == DEVMIG_ARC_END)
		drop_session(c);
	return 0;
}

uint64_t devmig_core_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Workers held by the dirty-rate cap look again (the cap or the state changed). */
static void rl_kick(struct devmig_core *c)
{
	pthread_mutex_lock(&c->rl_lock);
	c->rl_gen++;
	pthread_cond_broadcast(&c->rl_cv);
	pthread_mutex_unlock(&c->rl_lock);
}

static uint64_t arc_estimate(void *opaque, enum devmig_state from, enum devmig_state to,
			     bool *partial)
{
	struct devmig_core *c = opaque;

	if (c->mig->arc_estimate)
		return c->mig->arc_estimate(c->dev, from, to, partial);
	return devmig_device_default_arc_estimate(c->dev, from, to, partial);
}

/*
 * Walk to req arc by arc; with a plan, each arc starts only if what is
 * left of the path fits in what is left of its deadline (-ETIME otherwise).
 * mig_lock held.
 */
static int walk_locked(struct devmig_core *c, uint32_t req, struct devmig_deadline_plan *plan)
{
	enum devmig_state cur = (enum devmig_state)atomic_load(&c->state);
	int rc = 0;

	while (cur != req) {
		enum devmig_state next;
		enum devmig_fsm_err ferr = devmig_fsm_next(cur, req, c->caps, &next);
		if (ferr) {
			set_error(c, "%s -> %s: %s", devmig_state_name(cur), devmig_state_name(req),
				  devmig_fsm_strerror(ferr));
			rc = -EINVAL;
			break;
		}
		uint64_t now = devmig_core_now_ns();
		if (plan && !devmig_deadline_plan_admit(plan, now)) {
			uint64_t end = plan->start_ns + plan->deadline_ns;
			plan->refused_ns = now;
			set_error(c, "%s -> %s refused before %s -> %s: the %s needs about %.1f ms, "
				  "%.1f ms of the %.1f ms deadline %s left%s",
				  devmig_state_name(plan->done ? plan->from[0] : cur),
				  devmig_state_name(req), devmig_state_name(cur),
				  devmig_state_name(next), plan->done ? "rest of the path" : "path",
				  devmig_deadline_plan_left(plan) / 1e6,
				  now < end ? (end - now) / 1e6 : 0.0, plan->deadline_ns / 1e6,
				  plan->done ? "were" : "are",
				  plan->partial ? " (its stop-copy data not counted: no transfer rate "
						  "measured yet)" : "");
			rc = -ETIME;
			break;
		}
		struct devmig_arc_result res = { .broken = false };
		atomic_store(&c->entering, next); /* published before the arc */
		rl_kick(c);                       /* the cap holds only in PRE_COPY */
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
		if (!devmig_state_is_stopped(next))
			fire_pending(c); /* the device may signal again */
		cur = next;
		if (plan && plan->done < plan->narcs)
			plan->done++;
	}
	atomic_store(&c->entering, atomic_load(&c->state));
	if (cur == req && !rc) {
		/* Validate even a no-op request: an unsupported state is refused. */
		if (!devmig_state_supported(req, c->caps) || req == DEVMIG_STATE_ERROR) {
			set_error(c, "%s is not a state this device supports", devmig_state_name(req));
			rc = -EINVAL;
		}
	}
	return rc;
}

int devmig_core_set_state(struct devmig_device *dev, uint32_t req, enum devmig_state *now,
			  char *why, size_t whylen)
{
	struct devmig_core *c = core_of(dev);

	pthread_mutex_lock(&c->mig_lock);
	int rc = walk_locked(c, req, NULL);
	*now = (enum devmig_state)atomic_load(&c->state);
	if (rc)
		snprintf(why, whylen, "%s", c->last_error);
	pthread_mutex_unlock(&c->mig_lock);
	return rc;
}

enum devmig_core_session devmig_core_session(struct devmig_device *dev, uint64_t *gen)
{
	struct devmig_core *c = core_of(dev);
	enum devmig_core_session kind = DEVMIG_SESSION_NONE;

	pthread_mutex_lock(&c->mig_lock);
	if (c->writer)
		kind = DEVMIG_SESSION_SAVE;
	else if (c->reader)
		kind = DEVMIG_SESSION_LOAD;
	*gen = c->session_gen;
	pthread_mutex_unlock(&c->mig_lock);
	return kind;
}

int devmig_core_set_state_deadline(struct devmig_device *dev, uint32_t req, uint64_t start_ns,
				   uint64_t deadline_ns, enum devmig_state *now,
				   struct devmig_core_deadline *out, char *why, size_t whylen)
{
	struct devmig_core *c = core_of(dev);
	struct devmig_deadline_plan plan;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&c->mig_lock);
	c->dl_armed = false;
	uint32_t cur = atomic_load(&c->state);
	/* A request the state machine refuses is refused by the walk, as without a deadline. */
	bool planned = devmig_deadline_plan_init(&plan, start_ns, deadline_ns, cur, req, c->caps,
						 arc_estimate, c) == DEVMIG_FSM_OK;
	uint64_t total = planned ? devmig_deadline_plan_left(&plan) : 0;
	int rc = walk_locked(c, req, planned ? &plan : NULL);
	uint64_t t = devmig_core_now_ns();
	*now = (enum devmig_state)atomic_load(&c->state);
	out->elapsed_ns = t > start_ns ? t - start_ns : 0;
	if (planned && plan.partial)
		out->flags |= DEVMIG_DEADLINE_PARTIAL;
	if (rc == -ETIME) {
		out->flags |= DEVMIG_DEADLINE_REFUSED;
		out->estimate_ns = devmig_deadline_plan_needed(&plan);
	} else {
		out->estimate_ns = total;
		out->overrun_ns = devmig_deadline_overrun(start_ns, deadline_ns, t);
		if (out->overrun_ns)
			out->flags |= DEVMIG_DEADLINE_OVERRUN;
	}
	if (!rc || rc == -ETIME) {
		struct devmig_feature_arc_estimates *l = &c->last_dl;
		l->last_state = req;
		l->last_flags = out->flags;
		l->last_deadline_ns = deadline_ns;
		l->last_estimate_ns = out->estimate_ns;
		l->last_elapsed_ns = out->elapsed_ns;
		l->last_overrun_ns = out->overrun_ns;
		/* Into STOP_COPY, the estimate covered reading the stream out: the
		 * drain is held to the deadline too (devmig_core_mig_read). */
		if (!rc && req == DEVMIG_STATE_STOP_COPY && cur != DEVMIG_STATE_STOP_COPY) {
			c->dl_armed = true;
			c->dl_start = start_ns;
			c->dl_deadline = deadline_ns;
		}
	}
	if (rc)
		snprintf(why, whylen, "%s", c->last_error);
	pthread_mutex_unlock(&c->mig_lock);
	return rc;
}

ssize_t devmig_core_mig_read(struct devmig_device *dev, struct iovec *iov, int max_iov,
			     int *niov, size_t len, bool *ref)
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
						  st == DEVMIG_STATE_STOP_COPY, ref);
		if (n < 0)
			set_error(c, "saving device data failed: %s", strerror((int)-n));
		uint64_t now = devmig_core_now_ns();
		if (n >= 0) {
			pthread_mutex_lock(&c->rl_lock);
			devmig_xfer_meter_read(&c->xfer_rate, now, len, (uint64_t)n);
			pthread_mutex_unlock(&c->rl_lock);
		}
		if (n >= 0 && st == DEVMIG_STATE_STOP_COPY && c->dl_armed &&
		    devmig_stream_writer_done(c->writer)) {
			/* The stream is out: how the drain did against the deadline.
			 * (Its end, not a short read: a read by reference may stop
			 * short at its segments; over a data fd the pipe still holds
			 * its last bytes, at most its size.) */
			struct devmig_feature_arc_estimates *l = &c->last_dl;
			c->dl_armed = false;
			l->last_elapsed_ns = now > c->dl_start ? now - c->dl_start : 0;
			l->last_overrun_ns = devmig_deadline_overrun(c->dl_start, c->dl_deadline, now);
			l->last_flags |= DEVMIG_DEADLINE_DRAINED;
			if (l->last_overrun_ns)
				l->last_flags |= DEVMIG_DEADLINE_OVERRUN;
		}
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

void devmig_device_default_precopy_info(struct devmig_device *dev, uint64_t *initial,
					uint64_t *dirty)
{
	struct devmig_core *c = core_of(dev);

	*initial = *dirty = 0;
	for (unsigned i = 0; i < c->ntrackers; i++) {
		uint64_t a, b;
		devmig_tracker_precopy_info(c->trackers[i], &a, &b);
		*initial += a;
		*dirty += b;
	}
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
		if (c->mig->precopy_info)
			c->mig->precopy_info(c->dev, initial, dirty);
		else
			devmig_device_default_precopy_info(c->dev, initial, dirty);
		/* Stream produced but not yet read is data too. */
		size_t pending = c->writer ? devmig_stream_writer_pending(c->writer) : 0;
		if (*initial)
			*initial += pending;
		else
			*dirty += pending;
	}
	pthread_mutex_unlock(&c->mig_lock);
	return rc;
}

uint64_t devmig_device_default_stop_copy_size(struct devmig_device *dev)
{
	struct devmig_core *c = core_of(dev);
	uint64_t bytes = 0;

	for (unsigned i = 0; i < c->ntrackers; i++)
		bytes += devmig_tracker_stop_copy_size(c->trackers[i]);
	for (unsigned b = 0; b < DEVMIG_PCI_NUM_BARS; b++)
		if (c->bar[b].mem)
			bytes += c->bar[b].size + ((c->bar[b].size + BAR_PIECE - 1) / BAR_PIECE) *
				 (DEVMIG_STREAM_REC_OVERHEAD + DEVMIG_BAR_PREFIX);
	pthread_mutex_lock(&c->cfg_lock);
	uint64_t cfg_bytes = devmig_pcicfg_save_size(c->cfg);
	cfg_unlock(c);
	/* CONFIG, END, and the magic and HEADER if no session is open yet */
	bytes += cfg_bytes + 2 * DEVMIG_STREAM_REC_OVERHEAD + DEVMIG_STREAM_END_LEN;
	if (!c->writer)
		bytes += DEVMIG_STREAM_MAGIC_LEN + DEVMIG_STREAM_REC_OVERHEAD +
			 DEVMIG_STREAM_HEADER_FIXED + DEVMIG_STREAM_NAME_MAX + DEVMIG_STREAM_VERSION_MAX;
	else
		bytes += devmig_stream_writer_pending(c->writer);
	return bytes;
}

int devmig_core_stop_copy_size(struct devmig_device *dev, uint64_t *bytes)
{
	struct devmig_core *c = core_of(dev);

	pthread_mutex_lock(&c->mig_lock);
	if (c->mig->stop_copy_size)
		*bytes = c->mig->stop_copy_size(dev);
	else
		*bytes = devmig_device_default_stop_copy_size(dev);
	pthread_mutex_unlock(&c->mig_lock);
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

/* ---- deadlines: arc estimates ---- */

/* The fixed cost the variant declared for from -> to (0 when none). */
static uint64_t arc_cost(const struct devmig_core *c, enum devmig_state from, enum devmig_state to)
{
	for (const struct devmig_arc_cost *a = c->mig->arc_costs; a && a->ns; a++)
		if (a->from == from && a->to == to)
			return a->ns;
	return 0;
}

/* The stop-copy size, as MIG_DATA_SIZE answers it. mig_lock held. */
static uint64_t stop_copy_size_locked(struct devmig_core *c)
{
	return c->mig->stop_copy_size ? c->mig->stop_copy_size(c->dev)
				      : devmig_device_default_stop_copy_size(c->dev);
}

uint64_t devmig_device_transfer_rate(struct devmig_device *dev)
{
	struct devmig_core *c = core_of(dev);

	pthread_mutex_lock(&c->rl_lock);
	uint64_t rate = devmig_xfer_meter_rate(&c->xfer_rate);
	pthread_mutex_unlock(&c->rl_lock);
	return rate;
}

uint64_t devmig_device_default_arc_estimate(struct devmig_device *dev, enum devmig_state from,
					    enum devmig_state to, bool *partial)
{
	struct devmig_core *c = core_of(dev);
	uint64_t bytes = to == DEVMIG_STATE_STOP_COPY ? stop_copy_size_locked(c) : 0;

	return devmig_arc_default_estimate(arc_cost(c, from, to), to, bytes,
					   devmig_device_transfer_rate(dev), partial);
}

void devmig_core_arc_estimates(struct devmig_device *dev, struct devmig_feature_arc_estimates *est)
{
	struct devmig_core *c = core_of(dev);

	pthread_mutex_lock(&c->mig_lock);
	*est = c->last_dl;
	est->rate = devmig_device_transfer_rate(dev);
	est->stop_copy_bytes = stop_copy_size_locked(c);
	est->narcs = 0;
	est->reserved = 0;
	memset(est->arcs, 0, sizeof(est->arcs));
	for (uint32_t from = 0; from < DEVMIG_STATE_COUNT; from++) {
		for (uint32_t to = 0; to < DEVMIG_STATE_COUNT; to++) {
			if (from == to || !devmig_state_supported(from, c->caps) ||
			    !devmig_fsm_is_arc(from, to, c->caps) || est->narcs == DEVMIG_ARC_EST_MAX)
				continue;
			struct devmig_arc_estimate *a = &est->arcs[est->narcs++];
			bool partial = false;
			a->from = (uint8_t)from;
			a->to = (uint8_t)to;
			a->ns = arc_estimate(c, (enum devmig_state)from, (enum devmig_state)to,
					     &partial);
			a->flags = partial ? DEVMIG_DEADLINE_PARTIAL : 0;
		}
	}
	pthread_mutex_unlock(&c->mig_lock);
}

/* ---- dirty-rate limiting ---- */

static uint64_t written_total(struct devmig_core *c)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < c->ntrackers; i++)
		total += devmig_tracker_written_total(c->trackers[i]);
	return total;
}

bool devmig_core_dirty_rate_supported(struct devmig_device *dev)
{
	struct devmig_core *c = core_of(dev);
	return c->mig->dirty_rate_limit && (c->caps & DEVMIG_MIG_PRE_COPY);
}

static void set_cap(struct devmig_core *c, uint64_t cap)
{
	pthread_mutex_lock(&c->rl_lock);
	c->rl_cap = cap;
	devmig_pace_init(&c->rl_pace, cap, THROTTLE_BURST_NS);
	c->rl_gen++;
	pthread_cond_broadcast(&c->rl_cv);
	pthread_mutex_unlock(&c->rl_lock);
}

void devmig_core_set_dirty_rate(struct devmig_device *dev, uint64_t cap)
{
	set_cap(core_of(dev), cap);
}

static bool throttling(struct devmig_core *c)
{
	return c->rl_cap && !c->rl_dying && atomic_load(&c->state) == DEVMIG_STATE_PRE_COPY &&
	       atomic_load(&c->entering) == DEVMIG_STATE_PRE_COPY;
}

void devmig_core_dirty_rate(struct devmig_device *dev, struct devmig_feature_dirty_rate *dr)
{
	struct devmig_core *c = core_of(dev);
	uint64_t total = written_total(c), now = devmig_core_now_ns();

	memset(dr, 0, sizeof(*dr));
	pthread_mutex_lock(&c->rl_lock);
	dr->cap = c->rl_cap;
	dr->measured = devmig_change_meter_sample(&c->rl_meter, now, total);
	dr->throttled_ns = c->rl_throttled_ns;
	dr->flags = throttling(c) ? DEVMIG_DIRTY_RATE_ACTIVE : 0;
	pthread_mutex_unlock(&c->rl_lock);
}

uint64_t devmig_device_throttle(struct devmig_device *dev, uint64_t len)
{
	struct devmig_core *c = core_of(dev);
	uint64_t t0 = devmig_core_now_ns(), waited = 0;

	pthread_mutex_lock(&c->rl_lock);
	if (throttling(c)) {
		uint64_t wait = devmig_pace_charge(&c->rl_pace, t0, len);
		if (wait > THROTTLE_MAX_WAIT_NS)
			wait = THROTTLE_MAX_WAIT_NS;
		uint64_t gen = c->rl_gen, until = t0 + wait, now = t0;
		struct timespec ts = { (time_t)(until / 1000000000ull), (long)(until % 1000000000ull) };
		/* Until due, or the cap or the state changed (rl_kick). */
		while (now < until && gen == c->rl_gen && throttling(c)) {
			pthread_cond_timedwait(&c->rl_cv, &c->rl_lock, &ts);
			now = devmig_core_now_ns();
		}
		waited = now - t0;
		c->rl_throttled_ns += waited;
	}
	pthread_mutex_unlock(&c->rl_lock);
	return waited;
}

void devmig_core_reset(struct devmig_device *dev)
{
	struct devmig_core *c = core_of(dev);

	set_cap(c, 0); /* held workers go on: the variant's reset may wait for them */
	pthread_mutex_lock(&c->mig_lock);
	drop_session(c);
	c->dl_armed = false;
	/* RUNNING is published first: workers the variant resumes may DMA. */
	atomic_store(&c->entering, DEVMIG_STATE_RUNNING);
	if (c->ops->reset)
		c->ops->reset(dev);
	atomic_store(&c->state, DEVMIG_STATE_RUNNING);
	c->last_error[0] = 0;
	pthread_mutex_unlock(&c->mig_lock);

	pthread_mutex_lock(&c->cfg_lock);
	devmig_pcicfg_reset(c->cfg);
	for (unsigned i = 0; i < DEVMIG_NUM_IRQS; i++) {
		struct irq_index *ix = &c->irq[i];
		for (uint32_t v = 0; v < ix->count; v++)
			ix->masked[v] = false;
		ix->intx_masked = false;
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
		if (!ix->efd || !ix->masked)
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
		if (c->bar[b].mem) {
			munmap(c->bar[b].mem, c->bar[b].size);
			close(c->bar[b].fd);
		}
	}
	for (unsigned i = 0; i < c->ntrackers; i++)
		devmig_tracker_destroy(c->trackers[i]);
	if (c->dma)
		devmig_dma_destroy(c->dma);
	if (c->cfg)
		devmig_pcicfg_destroy(c->cfg);
	pthread_mutex_destroy(&c->cfg_lock);
	pthread_mutex_destroy(&c->mig_lock);
	pthread_mutex_destroy(&c->xfer_lock);
	pthread_mutex_destroy(&c->rl_lock);
	pthread_cond_destroy(&c->rl_cv);
	free(c);
}

static bool id_valid(struct devmig_device *dev)
{
	const struct devmig_device_id *id = dev->id;
	size_t n = 0;

	if (!id || !id->name || strlen(id->name) > DEVMIG_STREAM_NAME_MAX || !id->version ||
	    strlen(id->version) > DEVMIG_STREAM_VERSION_MAX)
		return false;
	for (; id->accepts && id->accepts[n]; n++)
		if (strlen(id->accepts[n]) >= DEVMIG_VERSION_MAX)
			return false;
	return n <= DEVMIG_ACCEPTS_MAX;
}

int devmig_device_init(struct devmig_device *dev)
{
	if (!id_valid(dev)) {
		fprintf(stderr, "devmig: a device needs an identity: a name (at most %u bytes), a "
				"version (at most %u) and at most %u accepted versions\n",
			DEVMIG_STREAM_NAME_MAX, DEVMIG_STREAM_VERSION_MAX, DEVMIG_ACCEPTS_MAX);
		return -EINVAL;
	}
	struct devmig_core *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->dev = dev;
	c->id = dev->id;
	c->ops = dev->ops ? dev->ops : &no_ops;
	c->mig = dev->mig ? dev->mig : &no_mig;
	dev->core = c;
	pthread_mutex_init(&c->cfg_lock, NULL);
	pthread_mutex_init(&c->mig_lock, NULL);
	pthread_mutex_init(&c->xfer_lock, NULL);
	pthread_mutex_init(&c->rl_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->rl_cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_store(&c->state, DEVMIG_STATE_RUNNING);
	atomic_store(&c->entering, DEVMIG_STATE_RUNNING);
	for (unsigned b = 0; b < DEVMIG_PCI_NUM_BARS; b++)
		c->bar[b].fd = -1;

	int rc = -EINVAL;
	c->caps = dev->mig ? dev->mig->caps : 0;
	if (dev->mig && !devmig_caps_valid(c->caps)) {
		devmig_device_log(dev, "invalid migration capabilities %#llx (STOP_COPY is required)",
				  (unsigned long long)c->caps);
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
			goto fail_released;
	}
	devmig_pcicfg_seal(c->cfg);
	rc = bar_mem_clear_of_msix(c);
	if (!rc)
		rc = alloc_irqs(c);
	if (rc)
		goto fail_released;
	return 0;
fail_released:
	/* realize may have started anything: release undoes it, even half done. */
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
	/* Workers held by a cap go on, so release can stop them. */
	pthread_mutex_lock(&c->rl_lock);
	c->rl_dying = true;
	pthread_mutex_unlock(&c->rl_lock);
	rl_kick(c);
	drop_session(c);
	if (c->ops->release)
		c->ops->release(dev);
	free_core(c);
	dev->core = NULL;
}
