/* SPDX-License-Identifier: MIT */
/*
 * The kernel VFIO backend of the client (lib/client_kernel.c), without a
 * kernel: its system calls go to a fake kernel here, which serves a small
 * migratable device (a UART-like register file with a FIFO, saved and
 * loaded the way the kernel's mtty sample does it), a type1 container and
 * groups, and an iommufd with IOASes and a dirty-tracking HWPT, over a
 * sysfs and /dev tree built in a temporary directory. The fake checks the
 * ioctl arguments the way the kernel does (argsz, flags, state) and records
 * the calls, so a test can say which ioctls the backend made, in what order.
 *
 * The data-fd helpers are also run against real pipes (partial reads and
 * writes, EAGAIN and poll, the timeout), and the engine migrates, saves and
 * restores fake devices through the backend.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "client_internal.h"
#include "client_kernel.h"
#include "devmig/engine.h"
#include "vfio_uapi.h"

#define UUID_A "11111111-2222-3333-4444-555555555555"
#define UUID_B "66666666-7777-8888-9999-aaaaaaaaaaaa"
#define PCI_C "0000:01:00.0"
#define PCI_D "0000:01:00.1" /* same IOMMU group as PCI_C */
#define PCI_E "0000:02:00.0" /* cdev only: no group node */

#define NREGIONS 9u
#define NIRQS 5u
#define REGION_SHIFT 40
#define BAR0 0u
#define BAR2 2u
#define CONFIG 7u
#define BAR2_SIZE 4096u

#define MAGIC 0x6b7666616b650001ull /* the fake's stream header */
#define HDR_LEN 16u
#define STATE_LEN (8u + 1u + 16u)   /* registers, FIFO count, FIFO */
#define REINIT_LEN 20u              /* new initial data after a reinit */
#define STREAM_MAX 128u

/* ---------------------------------------------------------------- the fake */

struct fdev {
	const char *name;
	int group;      /* -1: none */
	int cdev;       /* vfioN, -1: none */
	bool present;
	/* the device */
	uint8_t regs[8];
	uint8_t fifo[16];
	unsigned fifo_n;
	uint8_t cfg[256];
	int irq_fd;
	enum devmig_state state;
	uint64_t caps;
	bool opened;
	bool bound, attached; /* cdev: bound to an iommufd, attached to a page table */
	/* migration */
	int data_fd;            /* the session's fd, -1 none */
	bool saving;
	uint8_t save[STREAM_MAX];
	size_t save_len, save_pos;
	uint8_t load[STREAM_MAX];
	size_t load_len;
	/* PRECOPY_INFO v2 */
	bool has_v2, v2_on;
	bool do_reinit, reinit_done, reinit_flag;
	unsigned zero_reports;
	bool early_stop_copy; /* STOP_COPY asked while initial data was unread */
	bool refuse_load;     /* RESUMING -> STOP fails whatever was written */
	/* DMA logging */
	bool has_logging, logging;
	uint64_t log_page;
	uint64_t dirty_iova; /* one page the device "wrote" */
};

enum fkind { K_NONE, K_CONTAINER, K_GROUP, K_DEVICE, K_DATA, K_IOMMUFD };

struct fobj {
	enum fkind kind;
	int group;          /* K_GROUP */
	struct fdev *dev;   /* K_DEVICE, K_DATA */
	bool data_write;    /* K_DATA: a load session */
	int container;      /* K_GROUP: the container fd set, -1 none */
	bool iommu_set;     /* K_CONTAINER */
};

struct fmap {
	int owner; /* container or iommufd fd */
	uint64_t iova, size, vaddr;
	uint32_t flags;
};

#define MAXFD 1024
#define MAXCALLS 256

struct fake {
	char root[64];
	char sysfs[96], dev[96];
	struct kvfio_sys sys;
	struct fobj obj[MAXFD];
	struct fdev devs[5];
	struct fmap maps[16];
	unsigned nmaps;
	/* knobs */
	size_t read_max;       /* bytes per read() of a data fd (0: any) */
	size_t write_max;      /* bytes per write() */
	bool eagain;           /* every other data read/write first says EAGAIN */
	bool enomsg;           /* PRE_COPY temporary end: ENOMSG (else 0, like mtty) */
	bool group_viable;
	bool hwpt_dirty;       /* the IOMMU can track dirty IOVAs */
	/* what happened */
	unsigned long calls[MAXCALLS];
	unsigned ncalls;
	unsigned opens_group[32];
	unsigned data_fds_open;
	unsigned polls, pwrites;
	unsigned ioas_next, hwpt_id;
	bool hwpt_tracking;
	bool tick;
};

static struct fake *F;

/* Clients a failed test left open are closed by teardown: groups are
 * shared in the process and must not outlive the fake they came from. */
static struct devmig_client *opened[8];

static struct fdev *dev_by_name(const char *n)
{
	for (unsigned i = 0; i < 5; i++)
		if (F->devs[i].name && !strcmp(F->devs[i].name, n))
			return &F->devs[i];
	return NULL;
}

static int new_obj(enum fkind k)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* a unique number */
	assert_true(fd >= 0 && fd < MAXFD);
	memset(&F->obj[fd], 0, sizeof(F->obj[fd]));
	F->obj[fd].kind = k;
	F->obj[fd].container = -1;
	return fd;
}

static int f_open(void *ctx, const char *path, int flags)
{
	(void)ctx;
	(void)flags;
	char p[PATH_MAX];
	size_t dl = strlen(F->dev);

	if (strncmp(path, F->dev, dl))
		return -ENOENT;
	snprintf(p, sizeof(p), "%s", path + dl);
	if (!strcmp(p, "/vfio/vfio"))
		return new_obj(K_CONTAINER);
	if (!strcmp(p, "/iommu"))
		return new_obj(K_IOMMUFD);
	int n;
	char tail;
	if (sscanf(p, "/vfio/devices/vfio%d%c", &n, &tail) == 1) {
		for (unsigned i = 0; i < 5; i++) {
			struct fdev *d = &F->devs[i];
			if (d->present && d->cdev == n) {
				if (d->opened)
					return -EBUSY;
				d->opened = true;
				d->bound = d->attached = false;
				int fd = new_obj(K_DEVICE);
				F->obj[fd].dev = d;
				return fd;
			}
		}
		return -ENOENT;
	}
	if (sscanf(p, "/vfio/%d%c", &n, &tail) == 1 && n >= 0 && n < 32) {
		for (int fd = 0; fd < MAXFD; fd++)
			if (F->obj[fd].kind == K_GROUP && F->obj[fd].group == n)
				return -EBUSY; /* a group opens once */
		F->opens_group[n]++;
		int fd = new_obj(K_GROUP);
		F->obj[fd].group = n;
		return fd;
	}
	return -ENOENT;
}

static void end_session(struct fdev *d)
{
	d->data_fd = -1; /* the fd stays open (the user closes it) but is dead */
}

static int f_close(void *ctx, int fd)
{
	(void)ctx;
	assert_true(fd >= 0 && fd < MAXFD && F->obj[fd].kind != K_NONE);
	struct fobj *o = &F->obj[fd];
	if (o->kind == K_DEVICE) {
		o->dev->opened = false;
		o->dev->bound = o->dev->attached = false;
		o->dev->irq_fd = -1;
	}
	if (o->kind == K_DATA)
		F->data_fds_open--;
	if (o->kind == K_CONTAINER || o->kind == K_IOMMUFD) {
		for (unsigned i = 0; i < F->nmaps;)
			if (F->maps[i].owner == fd)
				F->maps[i] = F->maps[--F->nmaps];
			else
				i++;
	}
	o->kind = K_NONE;
	close(fd);
	return 0;
}

static void record(unsigned long req)
{
	if (F->ncalls < MAXCALLS)
		F->calls[F->ncalls++] = req;
}

/* The device's save stream: the header on entering PRE_COPY or STOP_COPY,
 * the state appended in STOP_COPY. */
static void save_state(struct fdev *d)
{
	uint8_t *p = d->save + d->save_len;
	memcpy(p, d->regs, 8);
	p[8] = (uint8_t)d->fifo_n;
	memcpy(p + 9, d->fifo, 16);
	d->save_len += STATE_LEN;
}

static int new_data_fd(struct fdev *d, bool write)
{
	int fd = new_obj(K_DATA);
	F->obj[fd].dev = d;
	F->obj[fd].data_write = write;
	F->data_fds_open++;
	d->data_fd = fd;
	return fd;
}

/* One primitive arc; the fd it returns, 0 for none, or -errno. */
static int step(struct fdev *d, enum devmig_state to)
{
	enum devmig_state from = d->state;
	switch (devmig_arc_session(from, to)) {
	case DEVMIG_ARC_OPEN_SAVE: {
		uint64_t m = MAGIC;
		memset(d->save, 0, sizeof(d->save));
		memcpy(d->save, &m, 8);
		d->save_len = HDR_LEN;
		d->save_pos = 0;
		d->saving = true;
		d->reinit_done = d->reinit_flag = false;
		d->zero_reports = 0;
		if (to == DEVMIG_STATE_STOP_COPY)
			save_state(d);
		return new_data_fd(d, false);
	}
	case DEVMIG_ARC_OPEN_LOAD:
		d->load_len = 0;
		d->saving = false;
		return new_data_fd(d, true);
	case DEVMIG_ARC_END:
		if (from == DEVMIG_STATE_RESUMING) {
			uint64_t m;
			memcpy(&m, d->load, 8);
			bool whole = d->load_len == HDR_LEN + STATE_LEN ||
				     d->load_len == HDR_LEN + REINIT_LEN + STATE_LEN;
			if (!whole || m != MAGIC || d->refuse_load)
				return -EINVAL; /* incomplete or not ours: stays RESUMING */
			const uint8_t *p = d->load + d->load_len - STATE_LEN;
			memcpy(d->regs, p, 8);
			d->fifo_n = p[8];
			memcpy(d->fifo, p + 9, 16);
		}
		end_session(d);
		return 0;
	case DEVMIG_ARC_KEEP:
		/* PRE_COPY_P2P -> STOP_COPY keeps the session: the state goes on the end. */
		if (from == DEVMIG_STATE_PRE_COPY_P2P && to == DEVMIG_STATE_STOP_COPY) {
			/* Leaving PRE_COPY with initial data unread is what the uAPI
			 * says not to do. */
			if (d->save_pos < d->save_len)
				d->early_stop_copy = true;
			save_state(d);
		}
		return 0;
	}
	return -EINVAL;
}

static int mig_set(struct fdev *d, struct vfio_device_feature_mig_state *st)
{
	enum devmig_state path[DEVMIG_FSM_MAX_PATH];
	size_t n;

	if (devmig_fsm_path(d->state, st->device_state, d->caps, path, &n))
		return -EINVAL;
	int fd = -1;
	for (size_t i = 0; i < n; i++) {
		int rc = step(d, path[i]);
		if (rc < 0)
			return rc;
		d->state = path[i];
		if (rc > 0)
			fd = rc;
	}
	st->data_fd = fd;
	return 0;
}

static void reset_dev(struct fdev *d)
{
	d->state = DEVMIG_STATE_RUNNING;
	end_session(d);
}

static int dev_feature(struct fdev *d, struct vfio_device_feature *f)
{
	uint32_t idx = f->flags & VFIO_DEVICE_FEATURE_MASK;
	bool get = f->flags & VFIO_DEVICE_FEATURE_GET, set = f->flags & VFIO_DEVICE_FEATURE_SET;
	bool probe = f->flags & VFIO_DEVICE_FEATURE_PROBE;
	size_t dl = f->argsz - sizeof(*f);

	if (f->argsz < sizeof(*f) || (get && set && !probe))
		return -EINVAL;
	switch (idx) {
	case VFIO_DEVICE_FEATURE_MIGRATION:
		if (set)
			return -EINVAL;
		if (probe)
			return 0;
		if (dl < 8)
			return -EINVAL;
		memcpy(f->data, &d->caps, 8);
		return 0;
	case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
		if (probe)
			return 0;
		if (dl < sizeof(struct vfio_device_feature_mig_state))
			return -EINVAL;
		if (get) {
			struct vfio_device_feature_mig_state st = { d->state, -1 };
			memcpy(f->data, &st, sizeof(st));
			return 0;
		} else {
			struct vfio_device_feature_mig_state st;
			memcpy(&st, f->data, sizeof(st));
			int rc = mig_set(d, &st);
			memcpy(f->data, &st, sizeof(st));
			return rc;
		}
	case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE:
		if (set)
			return -EINVAL;
		if (probe)
			return 0;
		if (dl < 8)
			return -EINVAL;
		uint64_t sz = HDR_LEN + STATE_LEN;
		memcpy(f->data, &sz, 8);
		return 0;
	case VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2:
		if (!d->has_v2 || get)
			return -ENOTTY;
		if (!probe)
			d->v2_on = true;
		return 0;
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
	case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
		if (!d->has_logging)
			return -ENOTTY;
		if (probe)
			return 0;
		if (idx == VFIO_DEVICE_FEATURE_DMA_LOGGING_START) {
			struct vfio_device_feature_dma_logging_control ctl;
			if (!set || dl < sizeof(ctl) || d->logging)
				return -EINVAL;
			memcpy(&ctl, f->data, sizeof(ctl));
			if (!ctl.num_ranges || !ctl.ranges)
				return -EINVAL;
			d->logging = true;
			d->log_page = 8192; /* the device picks its own */
			ctl.page_size = d->log_page;
			memcpy(f->data, &ctl, sizeof(ctl));
			return 0;
		}
		if (idx == VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP) {
			if (!d->logging)
				return -EINVAL;
			d->logging = false;
			return 0;
		}
		{
			struct vfio_device_feature_dma_logging_report r;
			if (!get || dl < sizeof(r) || !d->logging)
				return -EINVAL;
			memcpy(&r, f->data, sizeof(r));
			uint64_t *bm = (uint64_t *)(uintptr_t)r.bitmap;
			if (d->dirty_iova >= r.iova && d->dirty_iova < r.iova + r.length) {
				uint64_t bit = (d->dirty_iova - r.iova) / r.page_size;
				bm[bit / 64] |= 1ull << (bit % 64);
			}
			return 0;
		}
	}
	return -ENOTTY;
}

static int f_ioctl(void *ctx, int fd, unsigned long req, void *arg)
{
	(void)ctx;
	if (fd < 0 || fd >= MAXFD || F->obj[fd].kind == K_NONE)
		return -EBADF;
	struct fobj *o = &F->obj[fd];
	record(req);

	switch (o->kind) {
	case K_CONTAINER:
		if (req == VFIO_GET_API_VERSION)
			return VFIO_API_VERSION;
		if (req == VFIO_CHECK_EXTENSION)
			return (uintptr_t)arg == VFIO_TYPE1v2_IOMMU || (uintptr_t)arg == VFIO_TYPE1_IOMMU;
		if (req == VFIO_SET_IOMMU) {
			bool attached = false;
			for (int g = 0; g < MAXFD; g++)
				attached |= F->obj[g].kind == K_GROUP && F->obj[g].container == fd;
			if (!attached || (uintptr_t)arg != VFIO_TYPE1v2_IOMMU || o->iommu_set)
				return -EINVAL;
			o->iommu_set = true;
			return 0;
		}
		if (req == VFIO_IOMMU_MAP_DMA) {
			struct vfio_iommu_type1_dma_map *m = arg;
			if (!o->iommu_set || m->argsz < sizeof(*m) || !m->size ||
			    !(m->flags & (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)))
				return -EINVAL;
			for (unsigned i = 0; i < F->nmaps; i++)
				if (F->maps[i].owner == fd && m->iova < F->maps[i].iova + F->maps[i].size &&
				    F->maps[i].iova < m->iova + m->size)
					return -EEXIST;
			F->maps[F->nmaps++] = (struct fmap){ fd, m->iova, m->size, m->vaddr, m->flags };
			return 0;
		}
		if (req == VFIO_IOMMU_UNMAP_DMA) {
			struct vfio_iommu_type1_dma_unmap *u = arg;
			for (unsigned i = 0; i < F->nmaps; i++)
				if (F->maps[i].owner == fd && F->maps[i].iova == u->iova &&
				    F->maps[i].size == u->size) {
					F->maps[i] = F->maps[--F->nmaps];
					return 0;
				}
			return -ENOENT;
		}
		return -ENOTTY;
	case K_GROUP:
		if (req == VFIO_GROUP_GET_STATUS) {
			struct vfio_group_status *s = arg;
			if (s->argsz < sizeof(*s))
				return -EINVAL;
			s->flags = (F->group_viable ? VFIO_GROUP_FLAGS_VIABLE : 0) |
				   (o->container >= 0 ? VFIO_GROUP_FLAGS_CONTAINER_SET : 0);
			return 0;
		}
		if (req == VFIO_GROUP_SET_CONTAINER) {
			int cfd = *(int *)arg;
			if (o->container >= 0 || cfd < 0 || F->obj[cfd].kind != K_CONTAINER)
				return -EINVAL;
			o->container = cfd;
			return 0;
		}
		if (req == VFIO_GROUP_GET_DEVICE_FD) {
			struct fdev *d = dev_by_name(arg);
			if (o->container < 0 || !F->obj[o->container].iommu_set)
				return -EINVAL;
			if (!d || d->group != o->group)
				return -ENODEV;
			if (d->opened)
				return -EBUSY;
			d->opened = true;
			d->bound = d->attached = true; /* the group path needs no binding */
			int dfd = new_obj(K_DEVICE);
			F->obj[dfd].dev = d;
			return dfd;
		}
		return -ENOTTY;
	case K_IOMMUFD:
		if (req == IOMMU_IOAS_ALLOC) {
			struct devmig_k_ioas_alloc *a = arg;
			if (a->size < sizeof(*a) || a->flags)
				return -EINVAL;
			a->out_ioas_id = ++F->ioas_next;
			return 0;
		}
		if (req == IOMMU_HWPT_ALLOC) {
			struct devmig_k_hwpt_alloc *h = arg;
			if (h->size < sizeof(*h) || h->pt_id != F->ioas_next)
				return -EINVAL;
			if ((h->flags & DEVMIG_HWPT_ALLOC_DIRTY_TRACKING) && !F->hwpt_dirty)
				return -EOPNOTSUPP;
			h->out_hwpt_id = F->hwpt_id = 100 + F->ioas_next;
			return 0;
		}
		if (req == IOMMU_IOAS_MAP) {
			struct devmig_k_ioas_map *m = arg;
			if (m->size < sizeof(*m) || m->ioas_id != F->ioas_next ||
			    !(m->flags & DEVMIG_IOAS_MAP_FIXED_IOVA) || !m->length)
				return -EINVAL;
			F->maps[F->nmaps++] = (struct fmap){ fd, m->iova, m->length, m->user_va,
							     m->flags };
			return 0;
		}
		if (req == IOMMU_IOAS_UNMAP) {
			struct devmig_k_ioas_unmap *u = arg;
			for (unsigned i = 0; i < F->nmaps; i++)
				if (F->maps[i].owner == fd && F->maps[i].iova == u->iova &&
				    F->maps[i].size == u->length) {
					F->maps[i] = F->maps[--F->nmaps];
					return 0;
				}
			return -ENOENT;
		}
		if (req == IOMMU_HWPT_SET_DIRTY_TRACKING) {
			struct devmig_k_hwpt_set_dirty *s = arg;
			if (s->hwpt_id != F->hwpt_id || !F->hwpt_dirty)
				return -EINVAL;
			F->hwpt_tracking = s->flags & DEVMIG_HWPT_DIRTY_TRACKING_ENABLE;
			return 0;
		}
		if (req == IOMMU_HWPT_GET_DIRTY_BITMAP) {
			struct devmig_k_hwpt_get_dirty *g = arg;
			if (g->hwpt_id != F->hwpt_id || !F->hwpt_tracking || !g->page_size)
				return -EINVAL;
			uint64_t *bm = (uint64_t *)(uintptr_t)g->data;
			uint64_t dirty = 3 * g->page_size + g->iova; /* the IOMMU saw page 3 written */
			if (dirty < g->iova + g->length) {
				uint64_t bit = (dirty - g->iova) / g->page_size;
				bm[bit / 64] |= 1ull << (bit % 64);
			}
			return 0;
		}
		return -ENOTTY;
	case K_DATA: {
		struct fdev *d = o->dev;
		if (req != VFIO_MIG_GET_PRECOPY_INFO)
			return -ENOTTY;
		struct devmig_k_precopy_info *pi = arg;
		if (pi->argsz < sizeof(*pi))
			return -EINVAL;
		if (d->data_fd != fd)
			return -ENODEV;
		if (d->state != DEVMIG_STATE_PRE_COPY && d->state != DEVMIG_STATE_PRE_COPY_P2P)
			return -EINVAL;
		/* A reinit: once the initial data was read and reported gone, new
		 * initial data appears (the second look after the header is out). */
		if (d->do_reinit && !d->reinit_done && d->save_pos == HDR_LEN &&
		    d->zero_reports++ == 1) {
			memset(d->save + d->save_len, 0xa5, REINIT_LEN);
			d->save_len += REINIT_LEN;
			d->reinit_done = d->reinit_flag = true;
		}
		pi->initial_bytes = d->save_len - d->save_pos;
		pi->dirty_bytes = 0;
		if (d->v2_on) {
			pi->flags = d->reinit_flag ? VFIO_PRECOPY_INFO_REINIT : 0;
			d->reinit_flag = false;
		} /* else v1: flags stay what the caller passed */
		return 0;
	}
	case K_DEVICE:
		break;
	case K_NONE:
		return -EBADF;
	}

	struct fdev *d = o->dev;
	if (req == VFIO_DEVICE_BIND_IOMMUFD) {
		struct devmig_k_bind_iommufd *b = arg;
		if (b->argsz < sizeof(*b) || b->flags || d->bound || b->iommufd < 0 ||
		    F->obj[b->iommufd].kind != K_IOMMUFD)
			return -EINVAL;
		d->bound = true;
		b->out_devid = 7;
		return 0;
	}
	if (req == VFIO_DEVICE_ATTACH_IOMMUFD_PT) {
		struct devmig_k_attach_pt *a = arg;
		if (a->argsz < sizeof(*a) || !d->bound ||
		    (a->pt_id != F->ioas_next && a->pt_id != F->hwpt_id))
			return -EINVAL;
		d->attached = true;
		return 0;
	}
	if (!d->bound || !d->attached)
		return -EINVAL; /* a cdev is usable once bound and attached */
	switch (req) {
	case VFIO_DEVICE_GET_INFO: {
		struct vfio_device_info *i = arg;
		if (i->argsz < 16)
			return -EINVAL;
		i->flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
		i->num_regions = NREGIONS;
		i->num_irqs = NIRQS;
		return 0;
	}
	case VFIO_DEVICE_GET_REGION_INFO: {
		struct vfio_region_info *r = arg;
		if (r->argsz < sizeof(*r) || r->index >= NREGIONS)
			return -EINVAL;
		uint32_t index = r->index, given = r->argsz;
		r->offset = (uint64_t)index << REGION_SHIFT;
		r->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
		r->cap_offset = 0;
		r->size = index == BAR0 ? 8 : index == CONFIG ? 256 : index == BAR2 ? BAR2_SIZE : 0;
		if (index == BAR2) {
			/* Two sparse areas: the chain needs room beyond the struct. */
			uint32_t need = sizeof(*r) + 16 + 2 * 16;
			r->flags |= VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
			r->argsz = need;
			if (given >= need) {
				uint8_t *p = (uint8_t *)r + sizeof(*r);
				struct devmig_info_cap_hdr h = { VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, 0 };
				uint32_t nr = 2, pad = 0;
				uint64_t areas[4] = { 0, 1024, 2048, 2048 };
				memcpy(p, &h, 8);
				memcpy(p + 8, &nr, 4);
				memcpy(p + 12, &pad, 4);
				memcpy(p + 16, areas, sizeof(areas));
				r->cap_offset = sizeof(*r);
			}
		}
		return 0;
	}
	case VFIO_DEVICE_GET_IRQ_INFO: {
		struct vfio_irq_info *i = arg;
		if (i->argsz < sizeof(*i) || i->index >= NIRQS)
			return -EINVAL;
		i->flags = VFIO_IRQ_INFO_EVENTFD;
		i->count = i->index <= 1 ? 1 : 0;
		return 0;
	}
	case VFIO_DEVICE_SET_IRQS: {
		struct vfio_irq_set *s = arg;
		if (s->index != 0 || s->start != 0 ||
		    (s->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) != VFIO_IRQ_SET_ACTION_TRIGGER)
			return -EINVAL;
		if (s->flags & VFIO_IRQ_SET_DATA_EVENTFD) {
			int32_t efd;
			if (s->count != 1 || s->argsz < sizeof(*s) + 4)
				return -EINVAL;
			memcpy(&efd, s->data, 4);
			d->irq_fd = efd;
			return 0;
		}
		if ((s->flags & VFIO_IRQ_SET_DATA_NONE) && s->count == 0) {
			d->irq_fd = -1;
			return 0;
		}
		return -EINVAL;
	}
	case VFIO_DEVICE_RESET:
		reset_dev(d);
		return 0;
	case VFIO_DEVICE_FEATURE:
		return dev_feature(d, arg);
	}
	return -ENOTTY;
}

static bool data_obj(int fd, struct fdev **d)
{
	if (fd < 0 || fd >= MAXFD || F->obj[fd].kind != K_DATA)
		return false;
	*d = F->obj[fd].dev;
	return true;
}

static ssize_t f_read(void *ctx, int fd, void *buf, size_t len)
{
	(void)ctx;
	struct fdev *d;
	if (!data_obj(fd, &d) || F->obj[fd].data_write)
		return -EBADF;
	if (d->data_fd != fd)
		return -ENODEV; /* the session is over */
	if (F->eagain && (F->tick = !F->tick))
		return -EAGAIN;
	size_t left = d->save_len - d->save_pos;
	if (!left) {
		bool pre = d->state == DEVMIG_STATE_PRE_COPY || d->state == DEVMIG_STATE_PRE_COPY_P2P;
		return pre && F->enomsg ? -ENOMSG : 0;
	}
	size_t n = len < left ? len : left;
	if (F->read_max && n > F->read_max)
		n = F->read_max;
	memcpy(buf, d->save + d->save_pos, n);
	d->save_pos += n;
	return (ssize_t)n;
}

static ssize_t f_write(void *ctx, int fd, const void *buf, size_t len)
{
	(void)ctx;
	struct fdev *d;
	if (!data_obj(fd, &d) || !F->obj[fd].data_write)
		return -EBADF;
	if (d->data_fd != fd)
		return -ENODEV;
	if (F->eagain && (F->tick = !F->tick))
		return -EAGAIN;
	size_t n = len;
	if (F->write_max && n > F->write_max)
		n = F->write_max;
	if (d->load_len + n > STREAM_MAX)
		return -ENOMEM;
	memcpy(d->load + d->load_len, buf, n);
	d->load_len += n;
	return (ssize_t)n;
}

static struct fdev *dev_fd(int fd)
{
	if (fd < 0 || fd >= MAXFD || F->obj[fd].kind != K_DEVICE)
		return NULL;
	return F->obj[fd].dev;
}

static ssize_t f_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
	(void)ctx;
	struct fdev *d = dev_fd(fd);
	if (!d || !d->attached)
		return -EINVAL;
	uint32_t region = (uint32_t)(off >> REGION_SHIFT);
	uint64_t o = off & ((1ull << REGION_SHIFT) - 1);
	uint8_t *out = buf;
	if (region == CONFIG) {
		if (o + len > 256)
			return -EINVAL;
		memcpy(out, d->cfg + o, len);
		return (ssize_t)len;
	}
	if (region != BAR0 || o + len > 8)
		return -EINVAL;
	/* One register per access, like a UART: count 1 byte. */
	if (o == 0) {
		out[0] = d->fifo_n ? d->fifo[0] : 0;
		if (d->fifo_n)
			memmove(d->fifo, d->fifo + 1, --d->fifo_n);
	} else {
		out[0] = d->regs[o];
	}
	return 1;
}

static ssize_t f_pwrite(void *ctx, int fd, const void *buf, size_t len, uint64_t off)
{
	(void)ctx;
	(void)len;
	struct fdev *d = dev_fd(fd);
	F->pwrites++;
	if (!d || !d->attached)
		return -EINVAL;
	uint32_t region = (uint32_t)(off >> REGION_SHIFT);
	uint64_t o = off & ((1ull << REGION_SHIFT) - 1);
	const uint8_t *in = buf;
	if (region != BAR0 || o >= 8)
		return -EINVAL;
	if (o == 0) {
		if (d->fifo_n < 16)
			d->fifo[d->fifo_n++] = in[0];
	} else {
		d->regs[o] = in[0];
		/* IER with THRE and nothing queued raises the interrupt. */
		if (o == 1 && (in[0] & 2) && !d->fifo_n && d->irq_fd >= 0) {
			uint64_t one = 1;
			assert_int_equal(write(d->irq_fd, &one, 8), 8);
		}
	}
	return 1;
}

static int f_poll(void *ctx, int fd, short events, int timeout_ms)
{
	(void)ctx;
	(void)fd;
	(void)events;
	(void)timeout_ms;
	F->polls++;
	return 1; /* ready: the next try succeeds */
}

static int f_set_nonblock(void *ctx, int fd)
{
	(void)ctx;
	struct fdev *d;
	return data_obj(fd, &d) ? 0 : -EBADF;
}

/* ---------------------------------------------------------------- sysfs */

static void mkdirs(const char *fmt, ...)
{
	char p[PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	for (char *s = p + 1; *s; s++) {
		if (*s == '/') {
			*s = '\0';
			mkdir(p, 0755);
			*s = '/';
		}
	}
	mkdir(p, 0755);
}

static void touch(const char *fmt, ...)
{
	char p[PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	int fd = open(p, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
}

static void link_to(const char *target, const char *fmt, ...)
{
	char p[PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	assert_int_equal(symlink(target, p), 0);
}

/* A device directory with its group link, cdev entry, and /dev nodes. */
static void add_device(struct fdev *d, const char *bus, const char *real_dir)
{
	const char *S = F->sysfs, *D = F->dev;
	char target[PATH_MAX];

	mkdirs("%s/%s", S, real_dir);
	mkdirs("%s/bus/%s/devices", S, bus);
	snprintf(target, sizeof(target), "%s/%s", S, real_dir);
	link_to(target, "%s/bus/%s/devices/%s", S, bus, d->name);
	if (d->group >= 0) {
		mkdirs("%s/kernel/iommu_groups/%d", S, d->group);
		snprintf(target, sizeof(target), "%s/kernel/iommu_groups/%d", S, d->group);
		link_to(target, "%s/%s/iommu_group", S, real_dir);
		touch("%s/vfio/%d", D, d->group);
	}
	if (d->cdev >= 0) {
		mkdirs("%s/%s/vfio-dev/vfio%d", S, real_dir, d->cdev);
		mkdirs("%s/class/vfio-dev/vfio%d", S, d->cdev);
		snprintf(target, sizeof(target), "%s/%s", S, real_dir);
		link_to(target, "%s/class/vfio-dev/vfio%d/device", S, d->cdev);
		touch("%s/vfio/devices/vfio%d", D, d->cdev);
	}
	d->present = true;
	d->data_fd = -1;
	d->irq_fd = -1;
	d->state = DEVMIG_STATE_RUNNING;
	d->caps = DEVMIG_MIG_ALL;
	d->cfg[0] = 0x48;
	d->cfg[1] = 0x43;
	d->cfg[2] = 0x53;
	d->cfg[3] = 0x32;
}

static int setup(void **state)
{
	F = calloc(1, sizeof(*F));
	assert_non_null(F);
	snprintf(F->root, sizeof(F->root), "/tmp/devmig-kvfio-XXXXXX");
	assert_non_null(mkdtemp(F->root));
	snprintf(F->sysfs, sizeof(F->sysfs), "%s/sys", F->root);
	snprintf(F->dev, sizeof(F->dev), "%s/dev", F->root);
	mkdirs("%s/vfio/devices", F->dev);
	F->sys = (struct kvfio_sys){
		.open = f_open, .close = f_close, .ioctl = f_ioctl, .read = f_read,
		.write = f_write, .pread = f_pread, .pwrite = f_pwrite, .poll = f_poll,
		.set_nonblock = f_set_nonblock, .sysfs = F->sysfs, .dev = F->dev,
	};
	F->group_viable = true;
	F->hwpt_dirty = true;
	F->devs[0] = (struct fdev){ .name = UUID_A, .group = 12, .cdev = 0 };
	F->devs[1] = (struct fdev){ .name = UUID_B, .group = 13, .cdev = 1 };
	F->devs[2] = (struct fdev){ .name = PCI_C, .group = 5, .cdev = 2 };
	F->devs[3] = (struct fdev){ .name = PCI_D, .group = 5, .cdev = 3 };
	F->devs[4] = (struct fdev){ .name = PCI_E, .group = 6, .cdev = 4 };
	add_device(&F->devs[0], "mdev", "devices/virtual/mtty/mtty/" UUID_A);
	add_device(&F->devs[1], "mdev", "devices/virtual/mtty/mtty/" UUID_B);
	add_device(&F->devs[2], "pci", "devices/pci0000:00/0000:00:01.0/" PCI_C);
	add_device(&F->devs[3], "pci", "devices/pci0000:00/0000:00:01.0/" PCI_D);
	add_device(&F->devs[4], "pci", "devices/pci0000:00/0000:00:02.0/" PCI_E);
	/* PCI_E's group has no /dev/vfio node: the cdev is its only way in. */
	char node[PATH_MAX];
	snprintf(node, sizeof(node), "%s/vfio/6", F->dev);
	unlink(node);
	*state = F;
	return 0;
}

static void close_dev(struct devmig_client *c);

static int teardown(void **state)
{
	(void)state;
	for (unsigned i = 0; i < 8; i++)
		if (opened[i])
			close_dev(opened[i]);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", F->root);
	assert_int_equal(system(cmd), 0);
	for (int fd = 0; fd < MAXFD; fd++)
		if (F->obj[fd].kind != K_NONE)
			close(fd);
	free(F);
	F = NULL;
	return 0;
}

/* ---------------------------------------------------------------- helpers */

static struct devmig_client *open_dev(const char *spec)
{
	char err[512] = "";
	struct devmig_client *c = kvfio_open(&F->sys, spec, NULL, err, sizeof(err));
	if (!c)
		print_error("open %s: %s\n", spec, err);
	assert_non_null(c);
	for (unsigned i = 0; i < 8; i++) {
		if (!opened[i]) {
			opened[i] = c;
			return c;
		}
	}
	fail_msg("too many clients open");
	return NULL;
}

static void close_dev(struct devmig_client *c)
{
	for (unsigned i = 0; i < 8; i++)
		if (opened[i] == c)
			opened[i] = NULL;
	devmig_client_close(c);
}

static unsigned count_calls(unsigned long req)
{
	unsigned n = 0;
	for (unsigned i = 0; i < F->ncalls; i++)
		n += F->calls[i] == req;
	return n;
}

/* The index of the first call req at or after from, or -1. */
static int call_at(unsigned long req, int from)
{
	for (unsigned i = (unsigned)from; i < F->ncalls; i++)
		if (F->calls[i] == req)
			return (int)i;
	return -1;
}

static void program(struct devmig_client *c, uint8_t seed)
{
	for (uint8_t i = 0; i < 5; i++) {
		uint8_t b = (uint8_t)(seed + i * 3);
		assert_int_equal(devmig_client_region_write(c, BAR0, 0, &b, 1), 0);
	}
	uint8_t lcr = (uint8_t)(seed ^ 0x1b), scr = (uint8_t)(seed + 0x40);
	assert_int_equal(devmig_client_region_write(c, BAR0, 3, &lcr, 1), 0);
	assert_int_equal(devmig_client_region_write(c, BAR0, 7, &scr, 1), 0);
}

static void check_programmed(struct devmig_client *c, uint8_t seed)
{
	uint8_t b;
	assert_int_equal(devmig_client_region_read(c, BAR0, 3, &b, 1), 0);
	assert_int_equal(b, (uint8_t)(seed ^ 0x1b));
	assert_int_equal(devmig_client_region_read(c, BAR0, 7, &b, 1), 0);
	assert_int_equal(b, (uint8_t)(seed + 0x40));
	for (uint8_t i = 0; i < 5; i++) {
		assert_int_equal(devmig_client_region_read(c, BAR0, 0, &b, 1), 0);
		assert_int_equal(b, (uint8_t)(seed + i * 3));
	}
}

/* ---------------------------------------------------------------- locating */

static void locate_every_spelling(void **state)
{
	(void)state;
	struct devmig_vfio_location loc;
	char err[512], want[PATH_MAX], spec[PATH_MAX];

	/* A PCI address, short or long, any case: the same directory. */
	assert_int_equal(kvfio_locate(&F->sys, "01:00.0", &loc, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/devices/pci0000:00/0000:00:01.0/" PCI_C, F->sysfs);
	assert_string_equal(loc.sysfs, want);
	assert_string_equal(loc.name, PCI_C);
	assert_int_equal(loc.group, 5);
	assert_false(loc.iommufd);
	assert_int_equal(kvfio_locate(&F->sys, "0000:01:00.0", &loc, err, sizeof(err)), 0);
	assert_string_equal(loc.sysfs, want);

	/* An mdev by UUID and by its sysfs path. */
	assert_int_equal(kvfio_locate(&F->sys, UUID_A, &loc, err, sizeof(err)), 0);
	assert_string_equal(loc.name, UUID_A);
	assert_int_equal(loc.group, 12);
	snprintf(want, sizeof(want), "%s/vfio/devices/vfio0", F->dev);
	assert_string_equal(loc.cdev, want);
	snprintf(spec, sizeof(spec), "%s/bus/mdev/devices/" UUID_A, F->sysfs);
	assert_int_equal(kvfio_locate(&F->sys, spec, &loc, err, sizeof(err)), 0);
	assert_string_equal(loc.name, UUID_A);
	assert_false(loc.iommufd);

	/* The cdev path, and iommufd: in front of any spelling: the cdev way. */
	snprintf(spec, sizeof(spec), "%s/vfio/devices/vfio1", F->dev);
	assert_int_equal(kvfio_locate(&F->sys, spec, &loc, err, sizeof(err)), 0);
	assert_string_equal(loc.name, UUID_B);
	assert_true(loc.iommufd);
	assert_int_equal(kvfio_locate(&F->sys, "iommufd:" PCI_C, &loc, err, sizeof(err)), 0);
	assert_true(loc.iommufd);
	snprintf(want, sizeof(want), "%s/vfio/devices/vfio2", F->dev);
	assert_string_equal(loc.cdev, want);

	/* No /dev/vfio/N for its group, a cdev: the cdev it is. */
	assert_int_equal(kvfio_locate(&F->sys, PCI_E, &loc, err, sizeof(err)), 0);
	assert_true(loc.iommufd);
}

static void locate_refuses_with_reasons(void **state)
{
	(void)state;
	struct devmig_vfio_location loc;
	char err[512], spec[PATH_MAX];
	static const char *const bad[] = {
		"", "nonsense", "0000:01:00", "0000:01:00.8", "01:20.0", "0000:0g:00.0",
		"11111111-2222-3333-4444-55555555555", "iommufd:",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(kvfio_locate(&F->sys, bad[i], &loc, err, sizeof(err)), -EINVAL);
		assert_true(err[0]);
	}
	snprintf(spec, sizeof(spec), "%s/vfio/devices/vfioX", F->dev);
	assert_int_equal(kvfio_locate(&F->sys, spec, &loc, err, sizeof(err)), -EINVAL);

	/* Well formed, but nothing there. */
	assert_int_equal(kvfio_locate(&F->sys, "0000:09:00.0", &loc, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no device at"));
	snprintf(spec, sizeof(spec), "%s/vfio/devices/vfio9", F->dev);
	assert_int_equal(kvfio_locate(&F->sys, spec, &loc, err, sizeof(err)), -ENOENT);

	/* A device without a VFIO driver: neither a group node nor a cdev. */
	mkdirs("%s/devices/pci0000:00/0000:00:03.0/0000:03:00.0", F->sysfs);
	char target[PATH_MAX];
	snprintf(target, sizeof(target), "%s/devices/pci0000:00/0000:00:03.0/0000:03:00.0",
		 F->sysfs);
	link_to(target, "%s/bus/pci/devices/0000:03:00.0", F->sysfs);
	mkdirs("%s/kernel/iommu_groups/7", F->sysfs);
	snprintf(target, sizeof(target), "%s/kernel/iommu_groups/7", F->sysfs);
	link_to(target, "%s/devices/pci0000:00/0000:00:03.0/0000:03:00.0/iommu_group", F->sysfs);
	assert_int_equal(kvfio_locate(&F->sys, "03:00.0", &loc, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "bind the device"));
	assert_int_equal(kvfio_locate(&F->sys, "iommufd:03:00.0", &loc, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "CONFIG_VFIO_DEVICE_CDEV"));

	/* A vfio-dev entry in sysfs without its /dev node (a kernel without
	 * VFIO_DEVICE_CDEV): the group it is; iommufd: says why not. */
	char node[PATH_MAX];
	snprintf(node, sizeof(node), "%s/vfio/devices/vfio1", F->dev);
	assert_int_equal(unlink(node), 0);
	assert_int_equal(kvfio_locate(&F->sys, UUID_B, &loc, err, sizeof(err)), 0);
	assert_false(loc.iommufd);
	assert_string_equal(loc.cdev, "");
	assert_int_equal(kvfio_locate(&F->sys, "iommufd:" UUID_B, &loc, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "no /dev/vfio/devices node"));
}

/* ---------------------------------------------------------------- opening */

static void type1_open_sequence_and_shared_group(void **state)
{
	(void)state;
	struct devmig_client *c = open_dev(PCI_C);

	/* The kernel's order: container, group, status, set container, IOMMU, device. */
	int a = call_at(VFIO_GET_API_VERSION, 0), b = call_at(VFIO_CHECK_EXTENSION, a),
	    s = call_at(VFIO_GROUP_GET_STATUS, b), sc = call_at(VFIO_GROUP_SET_CONTAINER, s),
	    io = call_at(VFIO_SET_IOMMU, sc), g = call_at(VFIO_GROUP_GET_DEVICE_FD, io);
	assert_true(a >= 0 && b > a && s > b && sc > s && io > sc && g > io);
	assert_string_equal(devmig_client_backend(c), "kernel");
	char d[300];
	devmig_client_describe(c, d, sizeof(d));
	assert_non_null(strstr(d, "group 5 in a type1v2 container"));

	/* The other function in the group: the group is not opened again. */
	struct devmig_client *c2 = open_dev(PCI_D);
	assert_int_equal(F->opens_group[5], 1);
	assert_int_equal(count_calls(VFIO_SET_IOMMU), 1);
	assert_int_equal(count_calls(VFIO_GROUP_GET_DEVICE_FD), 2);
	/* One device fd each: the same device twice is refused by the kernel. */
	char err[512];
	assert_null(kvfio_open(&F->sys, PCI_C, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "open elsewhere"));

	close_dev(c);
	close_dev(c2);
	/* The last one out closed the group: it opens again. */
	c = open_dev(PCI_C);
	assert_int_equal(F->opens_group[5], 2);
	close_dev(c);
	for (int fd = 0; fd < MAXFD; fd++)
		assert_int_equal(F->obj[fd].kind, K_NONE);
}

static void type1_refuses_a_group_that_is_not_viable(void **state)
{
	(void)state;
	char err[512];
	F->group_viable = false;
	assert_null(kvfio_open(&F->sys, UUID_A, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "not viable"));
	assert_int_equal(count_calls(VFIO_GROUP_SET_CONTAINER), 0);
	for (int fd = 0; fd < MAXFD; fd++)
		assert_int_equal(F->obj[fd].kind, K_NONE);
}

static void iommufd_open_sequence(void **state)
{
	(void)state;
	struct devmig_client *c = open_dev("iommufd:" UUID_A);
	int b = call_at(VFIO_DEVICE_BIND_IOMMUFD, 0), a = call_at(IOMMU_IOAS_ALLOC, b),
	    h = call_at(IOMMU_HWPT_ALLOC, a), at = call_at(VFIO_DEVICE_ATTACH_IOMMUFD_PT, h),
	    i = call_at(VFIO_DEVICE_GET_INFO, at);
	assert_true(b >= 0 && a > b && h > a && at > h && i > at);
	assert_int_equal(count_calls(VFIO_GET_API_VERSION), 0); /* no container */
	char d[300];
	devmig_client_describe(c, d, sizeof(d));
	assert_non_null(strstr(d, "dirty-tracking HWPT"));
	close_dev(c);

	/* An IOMMU without dirty tracking: attached to the IOAS itself. */
	F->hwpt_dirty = false;
	F->ncalls = 0;
	c = open_dev(PCI_E);
	assert_int_equal(count_calls(IOMMU_HWPT_ALLOC), 1);
	assert_int_equal(count_calls(VFIO_DEVICE_ATTACH_IOMMUFD_PT), 1);
	devmig_client_describe(c, d, sizeof(d));
	assert_null(strstr(d, "dirty-tracking"));
	uint8_t b8 = 0x5a;
	assert_int_equal(devmig_client_region_write(c, BAR0, 7, &b8, 1), 0);
	assert_int_equal(F->devs[4].regs[7], 0x5a);
	close_dev(c);
}

/* ---------------------------------------------------------------- device access */

static void regions_irqs_and_info(void **state)
{
	(void)state;
	struct devmig_client *c = open_dev(UUID_A);
	struct devmig_device_info di;
	assert_int_equal(devmig_client_device_info(c, &di), 0);
	assert_int_equal(di.num_regions, NREGIONS);
	assert_int_equal(di.num_irqs, NIRQS);

	/* The capability chain needs more room than the struct: asked twice. */
	struct devmig_region_info ri;
	struct devmig_sparse_mmap_area areas[4];
	unsigned na = 4;
	int fd = -2;
	assert_int_equal(devmig_client_region_info(c, BAR2, &ri, &fd, areas, &na), 0);
	assert_int_equal(ri.size, BAR2_SIZE);
	assert_int_equal(ri.offset, (uint64_t)BAR2 << REGION_SHIFT);
	assert_int_equal(na, 2);
	assert_int_equal(areas[0].offset, 0);
	assert_int_equal(areas[0].size, 1024);
	assert_int_equal(areas[1].offset, 2048);
	assert_int_equal(areas[1].size, 2048);
	assert_true(fd >= 0); /* mappable: the device fd, to mmap at ri.offset */
	close(fd);
	na = 4;
	assert_int_equal(devmig_client_region_info(c, BAR0, &ri, &fd, areas, &na), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(na, 0);

	/* Config space and BAR0 by offset. */
	uint32_t ids;
	assert_int_equal(devmig_client_region_read(c, CONFIG, 0, &ids, 4), 0);
	assert_int_equal(ids, 0x32534348);
	program(c, 0x21);
	assert_int_equal(F->devs[0].fifo_n, 5);
	check_programmed(c, 0x21);

	/* Outside a region: refused here, the device never sees it. */
	unsigned pw = F->pwrites;
	uint8_t b = 1;
	assert_int_equal(devmig_client_region_write(c, BAR0, 8, &b, 1), -EINVAL);
	assert_int_equal(devmig_client_region_write(c, BAR0, 7, &ids, 2), -EINVAL);
	assert_int_equal(devmig_client_region_write(c, 99, 0, &b, 1), -EINVAL);
	assert_int_equal(devmig_client_region_read(c, 4, 0, &b, 1), -EINVAL); /* size 0 */
	assert_int_equal(F->pwrites, pw);

	/* INTx to an eventfd: IER with THRE raises it. */
	struct devmig_irq_info ii;
	assert_int_equal(devmig_client_irq_info(c, 0, &ii), 0);
	assert_int_equal(ii.count, 1);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_int_equal(devmig_client_set_irqs(c, 0, VFIO_IRQ_SET_DATA_EVENTFD |
							  VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, &efd),
			 0);
	assert_int_equal(F->devs[0].irq_fd, efd);
	b = 2;
	assert_int_equal(devmig_client_region_write(c, BAR0, 1, &b, 1), 0);
	uint64_t v = 0;
	assert_int_equal(read(efd, &v, 8), 8);
	assert_int_equal(v, 1);
	assert_int_equal(devmig_client_set_irqs(c, 0, VFIO_IRQ_SET_DATA_NONE |
							  VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL),
			 0);
	assert_int_equal(F->devs[0].irq_fd, -1);
	close(efd);
	close_dev(c);
}

static void only_vfio_user_extensions_are_missing(void **state)
{
	(void)state;
	struct devmig_client *c = open_dev(UUID_A);
	struct devmig_compat_info ci;
	uint64_t b;
	int le;
	char reason[64];
	uint8_t msg[16] = { 0 }, rep[16];

	assert_int_equal(devmig_client_compat_info(c, &ci), -EOPNOTSUPP);
	assert_int_equal(devmig_client_mig_status(c, &b, &le, reason, sizeof(reason)), -EOPNOTSUPP);
	assert_int_equal(devmig_client_mig_write_nowait(c, msg, 1), -EOPNOTSUPP);
	assert_int_equal(devmig_client_raw(c, msg, sizeof(msg), NULL, 0, rep, sizeof(rep)),
			 -EOPNOTSUPP);
	assert_int_equal(devmig_client_poll(c), 0);
	assert_true(devmig_client_has_ext(c, DEVMIG_EXT_PRECOPY_INFO));
	assert_false(devmig_client_has_ext(c, DEVMIG_EXT_MIG_STATUS));
	assert_false(devmig_client_has_ext(c, DEVMIG_EXT_COMPAT));
	assert_int_equal(devmig_client_feature_probe(c, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
						     VFIO_DEVICE_FEATURE_SET),
			 0);
	assert_int_equal(devmig_client_feature_probe(c, 0x77, VFIO_DEVICE_FEATURE_GET), -ENOTTY);
	uint64_t caps, sz;
	assert_int_equal(devmig_client_mig_caps(c, &caps), 0);
	assert_int_equal(caps, DEVMIG_MIG_ALL);
	assert_int_equal(devmig_client_stop_copy_size(c, &sz), 0);
	assert_int_equal(sz, HDR_LEN + STATE_LEN);
	close_dev(c);

	/* Without PRE_COPY there is no progress to ask for. */
	F->devs[1].caps = DEVMIG_MIG_STOP_COPY;
	c = open_dev(UUID_B);
	assert_false(devmig_client_has_ext(c, DEVMIG_EXT_PRECOPY_INFO));
	close_dev(c);
}

/* ---------------------------------------------------------------- DMA */

static struct fmap *find_fmap(uint64_t iova)
{
	for (unsigned i = 0; i < F->nmaps; i++)
		if (F->maps[i].iova == iova)
			return &F->maps[i];
	return NULL;
}

static void dma_map_type1_and_iommufd(void **state)
{
	(void)state;
	const size_t sz = 2 * 4096;
	uint8_t *mem = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);

	struct devmig_client *c = open_dev(UUID_A);
	assert_int_equal(devmig_client_dma_map(c, 0x100000, sz, DEVMIG_DMA_READ | DEVMIG_DMA_WRITE,
					       -1, 0, mem), 0);
	struct fmap *m = find_fmap(0x100000);
	assert_non_null(m);
	assert_int_equal(m->vaddr, (uintptr_t)mem);
	assert_int_equal(m->size, sz);
	assert_int_equal(m->flags, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
	/* Overlapping: the kernel refuses, nothing is recorded. */
	assert_int_equal(devmig_client_dma_map(c, 0x101000, sz, DEVMIG_DMA_READ, -1, 0, mem),
			 -EEXIST);
	assert_int_equal(devmig_client_dma_map(c, 0x200000, sz, 0, -1, 0, mem), -EINVAL);

	/* From an fd: mapped here, and the device sees the fd's memory. */
	int mfd = memfd_create("guest", MFD_CLOEXEC);
	assert_int_equal(ftruncate(mfd, (off_t)sz), 0);
	assert_int_equal(devmig_client_dma_map(c, 0x300000, sz, DEVMIG_DMA_WRITE, mfd, 0, NULL), 0);
	m = find_fmap(0x300000);
	assert_non_null(m);
	assert_int_equal(m->flags, VFIO_DMA_MAP_FLAG_WRITE);
	memcpy((void *)(uintptr_t)m->vaddr + 4096, "dma!", 4); /* the device writes */
	char got[4];
	assert_int_equal(pread(mfd, got, 4, 4096), 4);
	assert_memory_equal(got, "dma!", 4);
	assert_int_equal(devmig_client_dma_unmap(c, 0x300000, sz), 0);
	assert_null(find_fmap(0x300000));
	assert_int_equal(devmig_client_dma_unmap(c, 0x300000, sz), -ENOENT);
	close_dev(c);
	/* Closing took the mapping out of the container. */
	assert_int_equal(F->nmaps, 0);

	c = open_dev("iommufd:" UUID_B);
	assert_int_equal(devmig_client_dma_map(c, 0x100000, sz, DEVMIG_DMA_READ, -1, 0, mem), 0);
	m = find_fmap(0x100000);
	assert_non_null(m);
	assert_int_equal(m->vaddr, (uintptr_t)mem);
	assert_int_equal(m->flags, DEVMIG_IOAS_MAP_FIXED_IOVA | DEVMIG_IOAS_MAP_READABLE);
	assert_int_equal(devmig_client_dma_unmap(c, 0x100000, sz), 0);
	assert_int_equal(F->nmaps, 0);
	close_dev(c);
	close(mfd);
	munmap(mem, sz);
}

static void dma_logging_device_then_iommu(void **state)
{
	(void)state;
	uint64_t bitmap[2];
	struct devmig_dma_logging_range r = { 0x100000, 100 * 4096 }; /* two bitmap words */
	uint64_t page = 4096;

	/* The device's own log: it picks 8 KiB pages; the report starts from zero. */
	F->devs[0].has_logging = true;
	F->devs[0].dirty_iova = 0x100000 + 5 * 8192;
	struct devmig_client *c = open_dev(UUID_A);
	assert_int_equal(devmig_client_log_report(c, r.iova, r.length, 8192, bitmap), -EINVAL);
	assert_int_equal(devmig_client_log_start(c, &page, &r, 1), 0);
	assert_int_equal(page, 8192);
	assert_int_equal(devmig_client_log_start(c, &page, &r, 1), -EBUSY);
	memset(bitmap, 0xff, sizeof(bitmap));
	assert_int_equal(devmig_client_log_report(c, r.iova, r.length, 8192, bitmap), 0);
	assert_int_equal(bitmap[0], 1ull << 5);
	assert_int_equal(bitmap[1], ~0ull); /* 50 pages: one word is the whole report */
	assert_int_equal(devmig_client_log_stop(c), 0);
	assert_false(F->devs[0].logging);
	assert_int_equal(devmig_client_log_stop(c), -EINVAL);
	close_dev(c);

	/* No device log over type1: refused, nothing to fall back on. */
	c = open_dev(UUID_B);
	page = 4096;
	assert_int_equal(devmig_client_log_start(c, &page, &r, 1), -ENOTTY);
	close_dev(c);

	/* No device log over iommufd with a dirty-tracking HWPT: the IOMMU's. */
	c = open_dev("iommufd:" UUID_B);
	assert_int_equal(devmig_client_log_start(c, &page, &r, 1), 0);
	assert_true(F->hwpt_tracking);
	memset(bitmap, 0xff, sizeof(bitmap));
	assert_int_equal(devmig_client_log_report(c, r.iova, r.length, 4096, bitmap), 0);
	assert_int_equal(bitmap[0], 1ull << 3);
	assert_int_equal(bitmap[1], 0);
	assert_int_equal(devmig_client_log_stop(c), 0);
	assert_false(F->hwpt_tracking);
	close_dev(c);
}

/* ---------------------------------------------------------------- migration */

struct sink_buf {
	uint8_t data[STREAM_MAX];
	size_t len;
};

static int to_buf(void *opaque, const void *data, size_t len)
{
	struct sink_buf *s = opaque;
	assert_true(s->len + len <= sizeof(s->data));
	memcpy(s->data + s->len, data, len);
	s->len += len;
	return 0;
}

static void data_fd_lifetime(void **state)
{
	(void)state;
	struct devmig_client *c = open_dev(UUID_A);
	enum devmig_state st;
	uint8_t buf[64];
	bool ended;

	F->read_max = 3;
	F->eagain = true;
	/* No session: nothing to read or write. */
	assert_int_equal(devmig_client_mig_read(c, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(devmig_client_mig_write(c, buf, 1), -EINVAL);
	assert_int_equal(devmig_client_precopy_info(c, &(uint64_t){ 0 }, &(uint64_t){ 0 }), -EINVAL);

	/* PRE_COPY: the header, then a temporary end (0 here, like mtty). */
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_PRE_COPY), 0);
	assert_int_equal(F->data_fds_open, 1);
	struct devmig_precopy_progress pp = { .reinit = true };
	assert_int_equal(devmig_client_precopy_progress(c, &pp), 0);
	assert_int_equal(pp.initial_bytes, HDR_LEN);
	assert_false(pp.reinit);
	struct sink_buf sb = { .len = 0 };
	assert_int_equal(devmig_client_mig_read_stream(c, 5, 2, 0, &ended, to_buf, &sb), HDR_LEN);
	assert_true(ended);
	assert_true(F->polls > 0); /* EAGAIN waited in poll, and was retried */
	assert_int_equal(devmig_client_precopy_info(c, &pp.initial_bytes, &pp.dirty_bytes), 0);
	assert_int_equal(pp.initial_bytes, 0);

	/* ENOMSG is the same temporary end. */
	F->enomsg = true;
	assert_int_equal(devmig_client_mig_read(c, buf, sizeof(buf)), 0);

	/* The saving group keeps the session: STOP_COPY goes on where PRE_COPY was. */
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_STOP_COPY), 0);
	assert_int_equal(F->data_fds_open, 1);
	assert_int_equal(devmig_client_mig_read_stream(c, 7, 2, 0, &ended, to_buf, &sb), STATE_LEN);
	assert_true(ended);
	assert_int_equal(sb.len, HDR_LEN + STATE_LEN);
	assert_false(F->devs[0].early_stop_copy);
	/* The end stays the end. */
	assert_int_equal(devmig_client_mig_read(c, buf, sizeof(buf)), 0);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_STOP), 0);
	assert_int_equal(F->data_fds_open, 0);

	/* A limit stops a read batch early and says it has not ended. */
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_STOP_COPY), 0);
	assert_int_equal(devmig_client_mig_read_stream(c, 3, 1, 6, &ended, to_buf,
						       &(struct sink_buf){ .len = 0 }), 6);
	assert_false(ended);

	/* RESUMING: a new session replaces it; writes go in any pieces. */
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(F->data_fds_open, 1);
	F->write_max = 2;
	for (size_t i = 0; i < sb.len - 1; i++)
		assert_int_equal(devmig_client_mig_write(c, sb.data + i, 1), 0);
	/* One byte short: RESUMING -> STOP refused, still RESUMING, the fd kept. */
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_STOP), -EINVAL);
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_RESUMING);
	assert_int_equal(F->data_fds_open, 1);
	assert_int_equal(devmig_client_mig_write(c, sb.data + sb.len - 1, 1), 0);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_STOP), 0);
	assert_int_equal(F->data_fds_open, 0);

	/* A reset ends a session too. */
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_RESUMING), 0);
	assert_int_equal(F->data_fds_open, 1);
	assert_int_equal(devmig_client_reset(c), 0);
	assert_int_equal(F->data_fds_open, 0);
	assert_int_equal(devmig_client_get_state(c, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_RUNNING);
	close_dev(c);
}

static void engine_migrates_between_kernel_devices(void **state)
{
	(void)state;
	F->read_max = 5;
	F->write_max = 3;
	F->eagain = true;
	F->enomsg = true;
	/* The source through its group, the destination through iommufd. */
	struct devmig_client *src = open_dev(UUID_A), *dst = open_dev("iommufd:" UUID_B);
	program(src, 0x30);
	struct devmig_engine_config cfg = { 0 };
	struct devmig_migration_report rep;
	int rc = devmig_migrate_local(&cfg, &src, &dst, 1, NULL, NULL, &rep);
	if (rc)
		print_error("migration failed: %s\n", rep.error);
	assert_int_equal(rc, 0);
	assert_true(rep.completed);
	assert_true(rep.precopy);
	assert_int_equal(rep.device_bytes, HDR_LEN + STATE_LEN);
	assert_false(F->devs[0].early_stop_copy);
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(src, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_STOP);
	assert_int_equal(devmig_client_get_state(dst, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_RUNNING);
	check_programmed(dst, 0x30);
	assert_int_equal(F->data_fds_open, 0);
	close_dev(src);
	close_dev(dst);
}

static void engine_failure_unwinds_kernel_devices(void **state)
{
	(void)state;
	struct devmig_client *src = open_dev(UUID_A), *dst = open_dev(UUID_B);
	program(src, 0x44);
	F->devs[1].refuse_load = true;
	struct devmig_engine_config cfg = { 0 };
	struct devmig_migration_report rep;
	int rc = devmig_migrate_local(&cfg, &src, &dst, 1, NULL, NULL, &rep);
	assert_int_equal(rc, -EINVAL);
	assert_false(rep.completed);
	assert_non_null(strstr(rep.error, "destination device 0"));
	/* The source runs again with its state; the destination was reset. */
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(src, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_RUNNING);
	assert_int_equal(devmig_client_get_state(dst, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_RUNNING);
	check_programmed(src, 0x44);
	assert_int_equal(F->data_fds_open, 0);
	close_dev(src);
	close_dev(dst);
}

static void engine_waits_for_reinit_data(void **state)
{
	(void)state;
	F->devs[0].has_v2 = true;
	F->devs[0].do_reinit = true;
	F->devs[1].has_v2 = true;
	F->read_max = 4;
	struct devmig_client *src = open_dev(UUID_A), *dst = open_dev(UUID_B);
	assert_true(F->devs[0].v2_on); /* the backend opted in at open */
	program(src, 0x51);
	struct devmig_engine_config cfg = { 0 };
	struct devmig_migration_report rep;
	int rc = devmig_migrate_local(&cfg, &src, &dst, 1, NULL, NULL, &rep);
	if (rc)
		print_error("migration failed: %s\n", rep.error);
	assert_int_equal(rc, 0);
	/* The new initial data was read before STOP_COPY, and it reached the destination. */
	assert_true(F->devs[0].reinit_done);
	assert_false(F->devs[0].early_stop_copy);
	assert_int_equal(rep.device_bytes, HDR_LEN + REINIT_LEN + STATE_LEN);
	check_programmed(dst, 0x51);
	close_dev(src);
	close_dev(dst);
}

static void reinit_is_not_read_without_v2(void **state)
{
	(void)state;
	/* The kernel without v2: flags echo what was passed in (0). */
	F->devs[0].do_reinit = true;
	struct devmig_client *c = open_dev(UUID_A);
	assert_false(F->devs[0].v2_on);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_PRE_COPY), 0);
	uint8_t buf[HDR_LEN];
	assert_int_equal(devmig_client_mig_read(c, buf, sizeof(buf)), HDR_LEN);
	struct devmig_precopy_progress pp;
	assert_int_equal(devmig_client_precopy_progress(c, &pp), 0);
	assert_int_equal(pp.initial_bytes, 0);
	assert_int_equal(devmig_client_precopy_progress(c, &pp), 0);
	assert_true(F->devs[0].reinit_done);
	assert_int_equal(pp.initial_bytes, REINIT_LEN);
	assert_false(pp.reinit);
	close_dev(c);
}

static void save_and_restore_kernel_devices(void **state)
{
	(void)state;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/ckpt", F->root);
	struct devmig_client *src = open_dev(UUID_A), *dst = open_dev(PCI_C);
	program(src, 0x60);
	struct devmig_engine_config cfg = { 0 };
	struct devmig_migration_report rep;

	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(devmig_save(&cfg, &src, 1, NULL, fd, &rep), 0);
	/* The source runs on, with its state. */
	enum devmig_state st;
	assert_int_equal(devmig_client_get_state(src, &st), 0);
	assert_int_equal(st, DEVMIG_STATE_RUNNING);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(devmig_restore(&cfg, fd, &dst, 1, NULL, &rep), 0);
	check_programmed(dst, 0x60);
	check_programmed(src, 0x60);
	close(fd);
	close_dev(src);
	close_dev(dst);
}

/* ---------------------------------------------------------------- the data fd, for real */

struct feeder {
	int fd;
	const uint8_t *data;
	size_t len, piece;
	int delay_ms;
	bool close_after;
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void *feed(void *arg)
{
	struct feeder *f = arg;
	for (size_t off = 0; off < f->len;) {
		sleep_ms(f->delay_ms);
		size_t n = f->len - off < f->piece ? f->len - off : f->piece;
		ssize_t k = write(f->fd, f->data + off, n);
		if (k <= 0)
			break;
		off += (size_t)k;
	}
	if (f->close_after)
		close(f->fd);
	return NULL;
}

static void *drain(void *arg)
{
	struct feeder *f = arg;
	uint8_t *out = (uint8_t *)f->data;
	size_t got = 0;
	while (got < f->len) {
		sleep_ms(f->delay_ms);
		ssize_t k = read(f->fd, out + got, f->piece);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	f->len = got;
	return NULL;
}

static void data_fd_reads_a_pipe_as_it_fills(void **state)
{
	(void)state;
	int p[2];
	uint8_t src[300], dst[300];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	struct feeder f = { p[1], src, sizeof(src), 37, 2, true };
	pthread_t t;
	pthread_create(&t, NULL, feed, &f);
	/* Empty at first: EAGAIN, poll, then what is there; 0 once closed. */
	size_t got = 0;
	for (;;) {
		ssize_t n = kvfio_data_read_some(&kvfio_sys_linux, p[0], dst + got,
						 sizeof(dst) - got, 5000);
		assert_true(n >= 0);
		if (!n)
			break;
		got += (size_t)n;
	}
	pthread_join(t, NULL);
	assert_int_equal(got, sizeof(src));
	assert_memory_equal(dst, src, sizeof(src));
	close(p[0]);
}

static void data_fd_read_times_out(void **state)
{
	(void)state;
	int p[2];
	uint8_t b;
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(kvfio_data_read_some(&kvfio_sys_linux, p[0], &b, 1, 50), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* It waited (in poll), it did not spin out at once. */
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 45);
	uint8_t full[65536 * 2];
	memset(full, 1, sizeof(full));
	/* A writer nobody reads: the pipe fills, then the write times out. */
	assert_int_equal(kvfio_data_write_all(&kvfio_sys_linux, p[1], full, sizeof(full), 50),
			 -ETIMEDOUT);
	close(p[0]);
	close(p[1]);
}

static void data_fd_writes_all_in_pieces(void **state)
{
	(void)state;
	int sv[2];
	const size_t len = 1u << 20; /* far more than a socket buffer */
	uint8_t *src = malloc(len), *dst = calloc(1, len);
	assert_non_null(src);
	assert_non_null(dst);
	for (size_t i = 0; i < len; i++)
		src[i] = (uint8_t)(i * 131 + (i >> 9));
	assert_int_equal(pipe2(sv, O_NONBLOCK | O_CLOEXEC), 0);
	int fl = fcntl(sv[0], F_GETFL);
	fcntl(sv[0], F_SETFL, fl & ~O_NONBLOCK);
	struct feeder f = { sv[0], dst, len, 4096, 0, false };
	pthread_t t;
	pthread_create(&t, NULL, drain, &f);
	assert_int_equal(kvfio_data_write_all(&kvfio_sys_linux, sv[1], src, len, 10000), 0);
	pthread_join(t, NULL);
	assert_int_equal(f.len, len);
	assert_memory_equal(dst, src, len);
	close(sv[0]);
	close(sv[1]);
	free(src);
	free(dst);
}

/* ---------------------------------------------------------------- dispatch */

static void bare_close(struct devmig_client *c)
{
	free(c);
}

static void missing_ops_fail_the_same_way(void **state)
{
	(void)state;
	static const struct devmig_client_ops bare = { .name = "bare", .close = bare_close };
	struct devmig_client *c = calloc(1, sizeof(*c));
	c->ops = &bare;
	uint8_t b[8];
	uint64_t u;
	enum devmig_state st;
	struct devmig_caps caps;

	assert_int_equal(devmig_client_region_read(c, 0, 0, b, 1), -EOPNOTSUPP);
	assert_int_equal(devmig_client_region_write(c, 0, 0, b, 1), -EOPNOTSUPP);
	assert_int_equal(devmig_client_get_state(c, &st), -EOPNOTSUPP);
	assert_int_equal(devmig_client_set_state(c, DEVMIG_STATE_STOP), -EOPNOTSUPP);
	assert_int_equal(devmig_client_mig_read(c, b, 1), -EOPNOTSUPP);
	assert_int_equal(devmig_client_mig_write(c, b, 1), -EOPNOTSUPP);
	assert_int_equal(devmig_client_stop_copy_size(c, &u), -EOPNOTSUPP);
	assert_int_equal(devmig_client_reset(c), -EOPNOTSUPP);
	assert_int_equal(devmig_client_log_stop(c), -EOPNOTSUPP);
	assert_int_equal(devmig_client_precopy_info(c, &u, &u), -EOPNOTSUPP);
	assert_int_equal(devmig_client_poll(c), 0);
	assert_int_equal(devmig_client_fd(c), -1);
	assert_false(devmig_client_has_ext(c, DEVMIG_EXT_PRECOPY_INFO));
	devmig_client_server_caps(c, &caps);
	assert_int_equal(caps.max_data_xfer_size, DEVMIG_DEFAULT_MAX_DATA_XFER);
	char d[32];
	devmig_client_describe(c, d, sizeof(d));
	assert_string_equal(d, "bare");
	assert_string_equal(devmig_client_backend(c), "bare");
	devmig_client_close(c);

	/* An address opens the backend it names. */
	char err[256];
	assert_true(devmig_addr_is_vfio("vfio:0000:01:00.0"));
	assert_false(devmig_addr_is_vfio("/tmp/vfio:x"));
	assert_null(devmig_client_open("vfio:nonsense", NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "names no VFIO device"));
	assert_null(devmig_client_open("/nonexistent/dir/sock", NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot connect"));
	assert_null(devmig_client_open("", NULL, err, sizeof(err)));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(locate_every_spelling),
		T(locate_refuses_with_reasons),
		T(type1_open_sequence_and_shared_group),
		T(type1_refuses_a_group_that_is_not_viable),
		T(iommufd_open_sequence),
		T(regions_irqs_and_info),
		T(only_vfio_user_extensions_are_missing),
		T(dma_map_type1_and_iommufd),
		T(dma_logging_device_then_iommu),
		T(data_fd_lifetime),
		T(engine_migrates_between_kernel_devices),
		T(engine_failure_unwinds_kernel_devices),
		T(engine_waits_for_reinit_data),
		T(reinit_is_not_read_without_v2),
		T(save_and_restore_kernel_devices),
		cmocka_unit_test(data_fd_reads_a_pipe_as_it_fills),
		cmocka_unit_test(data_fd_read_times_out),
		cmocka_unit_test(data_fd_writes_all_in_pieces),
		cmocka_unit_test(missing_ops_fail_the_same_way),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
