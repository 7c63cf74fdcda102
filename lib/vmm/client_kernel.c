/* SPDX-License-Identifier: MIT */
/*
 * The kernel backend of the client: a Linux VFIO device driven through its
 * ioctls, under the same calls as a vfio-user server.
 *
 * Opening: through the device's IOMMU group and a type1 container
 * (/dev/vfio/vfio, /dev/vfio/N, VFIO_GROUP_GET_DEVICE_FD), or through its
 * cdev /dev/vfio/devices/vfioN bound to an iommufd with an IOAS (and a
 * dirty-tracking HWPT when the IOMMU has one). Groups are opened once per
 * process and shared: the kernel allows one open of a group.
 *
 * Migration: VFIO_DEVICE_FEATURE MIG_DEVICE_STATE; the data fd an arc
 * returns is kept for the session (the saving states share one; RESUMING
 * has its own) and closed when the device leaves it. The fd is non-blocking
 * here: a read or write that would block waits in poll() up to the
 * client's timeout, so a stuck driver is an error, not a hang.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client_internal.h"
#include "client_kernel.h"
#include "vfio_uapi.h"

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_CHUNK (1u << 20)
#define MAX_CHUNK (64u << 20)
#define FEATURE_DATA_MAX 56u

/* ---- the real kernel ---- */

static int sys_open(void *ctx, const char *path, int flags)
{
	(void)ctx;
	int fd = open(path, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int sys_close(void *ctx, int fd)
{
	(void)ctx;
	return close(fd) ? -errno : 0;
}

static int sys_ioctl(void *ctx, int fd, unsigned long req, void *arg)
{
	(void)ctx;
	int rc = ioctl(fd, req, arg);
	return rc < 0 ? -errno : rc;
}

static ssize_t sys_read(void *ctx, int fd, void *buf, size_t len)
{
	(void)ctx;
	ssize_t n = read(fd, buf, len);
	return n < 0 ? -errno : n;
}

static ssize_t sys_write(void *ctx, int fd, const void *buf, size_t len)
{
	(void)ctx;
	ssize_t n = write(fd, buf, len);
	return n < 0 ? -errno : n;
}

static ssize_t sys_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
	(void)ctx;
	ssize_t n = pread(fd, buf, len, (off_t)off);
	return n < 0 ? -errno : n;
}

static ssize_t sys_pwrite(void *ctx, int fd, const void *buf, size_t len, uint64_t off)
{
	(void)ctx;
	ssize_t n = pwrite(fd, buf, len, (off_t)off);
	return n < 0 ? -errno : n;
}

static int sys_poll(void *ctx, int fd, short events, int timeout_ms)
{
	(void)ctx;
	struct pollfd p = { fd, events, 0 };
	int rc = poll(&p, 1, timeout_ms);
	return rc < 0 ? -errno : rc;
}

static int sys_set_nonblock(void *ctx, int fd)
{
	(void)ctx;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		return -errno;
	return 0;
}

const struct kvfio_sys kvfio_sys_linux = {
	.open = sys_open,
	.close = sys_close,
	.ioctl = sys_ioctl,
	.read = sys_read,
	.write = sys_write,
	.pread = sys_pread,
	.pwrite = sys_pwrite,
	.poll = sys_poll,
	.set_nonblock = sys_set_nonblock,
	.sysfs = "/sys",
	.dev = "/dev",
};

/* ---- the data fd ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events, or the deadline passes. */
static int wait_ready(const struct kvfio_sys *sys, int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		int rc = sys->poll(sys->ctx, fd, events, left > INT_MAX ? INT_MAX : (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && rc != -EINTR)
			return rc;
	}
}

ssize_t kvfio_data_read_some(const struct kvfio_sys *sys, int fd, void *buf, size_t len,
			     int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		ssize_t n = sys->read(sys->ctx, fd, buf, len);
		if (n >= 0 || (n != -EINTR && n != -EAGAIN && n != -EWOULDBLOCK))
			return n;
		if (n == -EINTR)
			continue;
		int rc = wait_ready(sys, fd, POLLIN, deadline);
		if (rc)
			return rc;
	}
}

int kvfio_data_write_all(const struct kvfio_sys *sys, int fd, const void *buf, size_t len,
			 int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = sys->write(sys->ctx, fd, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -EIO; /* a write that takes nothing and says nothing */
		if (n == -EINTR)
			continue;
		if (n != -EAGAIN && n != -EWOULDBLOCK)
			return (int)n;
		int rc = wait_ready(sys, fd, POLLOUT, deadline);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- where the device is ---- */

static bool is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* "dddd:bb:dd.f" or "bb:dd.f" into the canonical lower-case 12 characters. */
static bool parse_pci(const char *s, char out[13])
{
	static const char shape[] = "hhhh:hh:hh.o";
	char full[13];
	size_t l = strlen(s);

	if (l == 7)
		snprintf(full, sizeof(full), "0000:%s", s);
	else if (l == 12)
		memcpy(full, s, 13);
	else
		return false;
	for (size_t i = 0; i < 12; i++) {
		char ch = full[i];
		if (shape[i] == 'h' ? !is_hex(ch)
				    : shape[i] == 'o' ? !(ch >= '0' && ch <= '7') : ch != shape[i])
			return false;
		out[i] = (char)(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch);
	}
	out[12] = '\0';
	/* Device numbers go up to 0x1f. */
	return strtoul(out + 8, NULL, 16) <= 0x1f;
}

static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !is_hex(s[i]))
			return false;
	}
	return true;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* The number at the end of the iommu_group link, -1 without one. */
static int read_group(const char *devdir)
{
	char link[PATH_MAX], target[PATH_MAX];
	snprintf(link, sizeof(link), "%s/iommu_group", devdir);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return -1;
	target[n] = '\0';
	char *end;
	const char *b = base_name(target);
	long g = strtol(b, &end, 10);
	return *b && !*end && g >= 0 && g < INT_MAX ? (int)g : -1;
}

/*
 * The device's cdev: the vfioN under devdir/vfio-dev whose /dev node exists.
 * 1 found; 0 none; -1 a vfio-dev entry without a node (every VFIO device has
 * the sysfs entry; the char device needs CONFIG_VFIO_DEVICE_CDEV).
 */
static int read_cdev(const struct kvfio_sys *sys, const char *devdir, char *out, size_t len)
{
	char dir[PATH_MAX];
	int found = 0;

	out[0] = '\0';
	snprintf(dir, sizeof(dir), "%s/vfio-dev", devdir);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strncmp(e->d_name, "vfio", 4) && e->d_name[4] >= '0' && e->d_name[4] <= '9') {
			int k = snprintf(out, len, "%s/vfio/devices/%s", sys->dev, e->d_name);
			found = k > 0 && (size_t)k < len && !access(out, F_OK) ? 1 : -1;
			if (found < 0)
				out[0] = '\0';
			break;
		}
	}
	closedir(d);
	return found;
}

int kvfio_locate(const struct kvfio_sys *sys, const char *spec, struct devmig_vfio_location *loc,
		 char *err, size_t errlen)
{
	char path[PATH_MAX], resolved[PATH_MAX], cdev_prefix[PATH_MAX], pci[13];
	const char *given = spec;
	bool cdev_given = false;

	memset(loc, 0, sizeof(*loc));
	loc->group = -1;
	if (!strncmp(spec, "iommufd:", 8)) {
		loc->iommufd = true;
		spec += 8;
	}
	snprintf(cdev_prefix, sizeof(cdev_prefix), "%s/vfio/devices/", sys->dev);
	if (!*spec) {
		snprintf(err, errlen, "no VFIO device named");
		return -EINVAL;
	}
	if (!strncmp(spec, cdev_prefix, strlen(cdev_prefix))) {
		const char *n = spec + strlen(cdev_prefix);
		if (strncmp(n, "vfio", 4) || !n[4] || strspn(n + 4, "0123456789") != strlen(n + 4)) {
			snprintf(err, errlen, "%s is not a VFIO device cdev (%svfioN)", given,
				 cdev_prefix);
			return -EINVAL;
		}
		snprintf(path, sizeof(path), "%s/class/vfio-dev/%s/device", sys->sysfs, n);
		cdev_given = true;
		loc->iommufd = true;
	} else if (spec[0] == '/') {
		snprintf(path, sizeof(path), "%s", spec);
	} else if (parse_pci(spec, pci)) {
		snprintf(path, sizeof(path), "%s/bus/pci/devices/%s", sys->sysfs, pci);
	} else if (is_uuid(spec)) {
		snprintf(path, sizeof(path), "%s/bus/mdev/devices/%s", sys->sysfs, spec);
	} else {
		snprintf(err, errlen,
			 "'%s' names no VFIO device: give a PCI address (0000:01:00.0), an mdev "
			 "UUID, a sysfs device path or %svfioN",
			 given, cdev_prefix);
		return -EINVAL;
	}
	struct stat st;
	if (!realpath(path, resolved) || stat(resolved, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "no device at %s%s", path,
			 cdev_given ? " (is the cdev's sysfs entry there?)" : "");
		return -ENOENT;
	}
	if (strlen(resolved) >= sizeof(loc->sysfs) ||
	    strlen(base_name(resolved)) >= sizeof(loc->name)) {
		snprintf(err, errlen, "device path too long: %s", resolved);
		return -ENAMETOOLONG;
	}
	strcpy(loc->sysfs, resolved);
	strcpy(loc->name, base_name(resolved));
	loc->group = read_group(resolved);
	int cdev = read_cdev(sys, resolved, loc->cdev, sizeof(loc->cdev));

	if (loc->iommufd) {
		if (!loc->cdev[0]) {
			snprintf(err, errlen,
				 "%s has no VFIO device cdev (%s): the kernel needs "
				 "CONFIG_VFIO_DEVICE_CDEV and CONFIG_IOMMUFD, and the device a VFIO "
				 "driver",
				 loc->name,
				 cdev < 0 ? "a vfio-dev entry in sysfs but no /dev/vfio/devices node"
					  : "no vfio-dev/vfioN in sysfs");
			return -ENODEV;
		}
		return 0;
	}
	char node[PATH_MAX];
	snprintf(node, sizeof(node), "%s/vfio/%d", sys->dev, loc->group);
	if (loc->group >= 0 && !access(node, F_OK))
		return 0;
	if (loc->cdev[0]) {
		loc->iommufd = true; /* no group node: the cdev is the way in */
		return 0;
	}
	if (loc->group < 0)
		snprintf(err, errlen, "%s has no IOMMU group and no VFIO device cdev: is it bound "
				      "to a VFIO driver (vfio-pci, a variant, an mdev driver)?",
			 loc->name);
	else
		snprintf(err, errlen, "%s is in IOMMU group %d but %s does not exist: bind the "
				      "device (and every device in its group) to vfio-pci",
			 loc->name, loc->group, node);
	return -ENODEV;
}

int devmig_vfio_locate(const char *spec, struct devmig_vfio_location *loc, char *err,
		       size_t errlen)
{
	return kvfio_locate(&kvfio_sys_linux, spec, loc, err, errlen);
}

/* ---- groups and containers, shared in the process ---- */

struct kvfio_group {
	struct kvfio_group *next;
	const struct kvfio_sys *sys;
	int number;
	int group_fd, container_fd;
	bool v2;
	unsigned refs;
};

static pthread_mutex_t groups_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kvfio_group *groups;

static void group_put(struct kvfio_group *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&groups_lock);
	if (--g->refs == 0) {
		for (struct kvfio_group **pp = &groups; *pp; pp = &(*pp)->next) {
			if (*pp == g) {
				*pp = g->next;
				break;
			}
		}
		if (g->group_fd >= 0)
			g->sys->close(g->sys->ctx, g->group_fd);
		if (g->container_fd >= 0)
			g->sys->close(g->sys->ctx, g->container_fd);
		free(g);
	}
	pthread_mutex_unlock(&groups_lock);
}

/* The group open in this process, or open it into a container of its own. */
static struct kvfio_group *group_get(const struct kvfio_sys *sys, int number, char *err,
				     size_t errlen)
{
	char path[PATH_MAX];
	struct kvfio_group *g;
	int rc;

	pthread_mutex_lock(&groups_lock);
	for (g = groups; g; g = g->next) {
		if (g->sys == sys && g->number == number) {
			g->refs++;
			pthread_mutex_unlock(&groups_lock);
			return g;
		}
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		pthread_mutex_unlock(&groups_lock);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	g->sys = sys;
	g->number = number;
	g->refs = 1;
	g->group_fd = g->container_fd = -1;

	snprintf(path, sizeof(path), "%s/vfio/vfio", sys->dev);
	g->container_fd = sys->open(sys->ctx, path, O_RDWR);
	if (g->container_fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(-g->container_fd));
		goto fail;
	}
	rc = sys->ioctl(sys->ctx, g->container_fd, VFIO_GET_API_VERSION, NULL);
	if (rc != VFIO_API_VERSION) {
		snprintf(err, errlen, "%s speaks VFIO API %d, not %d", path, rc, VFIO_API_VERSION);
		goto fail;
	}
	if (sys->ioctl(sys->ctx, g->container_fd, VFIO_CHECK_EXTENSION,
		       (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU) > 0)
		g->v2 = true;
	else if (sys->ioctl(sys->ctx, g->container_fd, VFIO_CHECK_EXTENSION,
			    (void *)(uintptr_t)VFIO_TYPE1_IOMMU) <= 0) {
		snprintf(err, errlen, "%s offers no type1 IOMMU (is vfio_iommu_type1 loaded?)", path);
		goto fail;
	}

	snprintf(path, sizeof(path), "%s/vfio/%d", sys->dev, number);
	g->group_fd = sys->open(sys->ctx, path, O_RDWR);
	if (g->group_fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s%s", path, strerror(-g->group_fd),
			 g->group_fd == -EBUSY ? " (another process has the group open)" : "");
		goto fail;
	}
	struct vfio_group_status status = { .argsz = sizeof(status) };
	rc = sys->ioctl(sys->ctx, g->group_fd, VFIO_GROUP_GET_STATUS, &status);
	if (rc < 0) {
		snprintf(err, errlen, "VFIO_GROUP_GET_STATUS on %s failed: %s", path, strerror(-rc));
		goto fail;
	}
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		snprintf(err, errlen, "IOMMU group %d is not viable: every device in it must be "
				      "bound to a VFIO driver (or to none)", number);
		goto fail;
	}
	rc = sys->ioctl(sys->ctx, g->group_fd, VFIO_GROUP_SET_CONTAINER, &g->container_fd);
	if (rc < 0) {
		snprintf(err, errlen, "VFIO_GROUP_SET_CONTAINER for group %d failed: %s", number,
			 strerror(-rc));
		goto fail;
	}
	rc = sys->ioctl(sys->ctx, g->container_fd, VFIO_SET_IOMMU,
			(void *)(uintptr_t)(g->v2 ? VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU));
	if (rc < 0) {
		snprintf(err, errlen, "VFIO_SET_IOMMU (type1%s) for group %d failed: %s",
			 g->v2 ? "v2" : "", number, strerror(-rc));
		goto fail;
	}
	g->next = groups;
	groups = g;
	pthread_mutex_unlock(&groups_lock);
	return g;
fail:
	if (g->group_fd >= 0)
		sys->close(sys->ctx, g->group_fd);
	if (g->container_fd >= 0)
		sys->close(sys->ctx, g->container_fd);
	free(g);
	pthread_mutex_unlock(&groups_lock);
	return NULL;
}

/* ---- the client ---- */

struct kvfio_region {
	bool present;
	uint32_t flags;
	uint64_t size, offset;
};

struct kvfio_map {
	uint64_t iova, size;
	void *mapped; /* mmapped here from the caller's fd; NULL: the caller's vaddr */
};

enum kvfio_logging { LOG_NONE, LOG_DEVICE, LOG_IOMMU };

struct kvfio_client {
	struct devmig_client base;
	const struct kvfio_sys *sys;
	struct devmig_vfio_location loc;
	int timeout_ms;
	size_t chunk;
	int dev_fd;
	struct kvfio_group *group;        /* type1 */
	int iommufd;                      /* iommufd: -1 otherwise */
	uint32_t devid, ioas, hwpt;
	bool hwpt_dirty;                  /* the HWPT can track dirty IOVAs */
	uint64_t mig_flags;
	bool precopy_v2;                  /* opted in: precopy_info.flags is an output */
	struct devmig_device_info info;
	struct kvfio_region *regions;
	pthread_mutex_t mig_lock;         /* the data fd and the logging mode */
	int data_fd;
	enum kvfio_logging logging;
	pthread_mutex_t map_lock;
	struct kvfio_map *maps;
	size_t nmaps;
};

static const struct devmig_client_ops kvfio_ops;

static struct kvfio_client *to_k(struct devmig_client *cl)
{
	return (struct kvfio_client *)(void *)cl;
}

static int kioctl(struct kvfio_client *c, int fd, unsigned long req, void *arg)
{
	return c->sys->ioctl(c->sys->ctx, fd, req, arg);
}

/*
 * One VFIO_DEVICE_FEATURE: data (len bytes) goes in after the header and
 * whatever the kernel wrote there comes back into data.
 */
static int feature(struct kvfio_client *c, uint32_t flags, void *data, size_t len)
{
	uint64_t buf[(sizeof(struct vfio_device_feature) + FEATURE_DATA_MAX) / 8];
	struct vfio_device_feature *f = (struct vfio_device_feature *)(void *)buf;

	if (len > FEATURE_DATA_MAX)
		return -EINVAL;
	memset(buf, 0, sizeof(buf));
	f->argsz = (uint32_t)(sizeof(*f) + len);
	f->flags = flags;
	if (len)
		memcpy(f->data, data, len);
	int rc = kioctl(c, c->dev_fd, VFIO_DEVICE_FEATURE, f);
	if (rc >= 0 && len)
		memcpy(data, f->data, len);
	return rc < 0 ? rc : 0;
}

static bool session_state(enum devmig_state s)
{
	return s == DEVMIG_STATE_PRE_COPY || s == DEVMIG_STATE_PRE_COPY_P2P ||
	       s == DEVMIG_STATE_STOP_COPY || s == DEVMIG_STATE_RESUMING;
}

static void close_data_fd(struct kvfio_client *c)
{
	if (c->data_fd >= 0)
		c->sys->close(c->sys->ctx, c->data_fd);
	c->data_fd = -1;
}

static int open_type1(struct kvfio_client *c, char *err, size_t errlen)
{
	c->group = group_get(c->sys, c->loc.group, err, errlen);
	if (!c->group)
		return -ENODEV;
	int fd = kioctl(c, c->group->group_fd, VFIO_GROUP_GET_DEVICE_FD, c->loc.name);
	if (fd < 0) {
		snprintf(err, errlen, "VFIO_GROUP_GET_DEVICE_FD(%s) on group %d failed: %s%s",
			 c->loc.name, c->loc.group, strerror(-fd),
			 fd == -EBUSY ? " (the device is open elsewhere)" : "");
		return fd;
	}
	c->dev_fd = fd;
	return 0;
}

static int open_iommufd(struct kvfio_client *c, char *err, size_t errlen)
{
	const struct kvfio_sys *sys = c->sys;
	char path[PATH_MAX];
	int rc;

	c->dev_fd = sys->open(sys->ctx, c->loc.cdev, O_RDWR);
	if (c->dev_fd < 0) {
		rc = c->dev_fd;
		snprintf(err, errlen, "cannot open %s: %s", c->loc.cdev, strerror(-rc));
		return rc;
	}
	snprintf(path, sizeof(path), "%s/iommu", sys->dev);
	c->iommufd = sys->open(sys->ctx, path, O_RDWR);
	if (c->iommufd < 0) {
		rc = c->iommufd;
		snprintf(err, errlen, "cannot open %s: %s (is the kernel built with IOMMUFD?)", path,
			 strerror(-rc));
		return rc;
	}
	struct devmig_k_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = c->iommufd };
	rc = kioctl(c, c->dev_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind);
	if (rc < 0) {
		snprintf(err, errlen, "VFIO_DEVICE_BIND_IOMMUFD of %s failed: %s", c->loc.cdev,
			 strerror(-rc));
		return rc;
	}
	c->devid = bind.out_devid;
	struct devmig_k_ioas_alloc ioas = { .size = sizeof(ioas) };
	rc = kioctl(c, c->iommufd, IOMMU_IOAS_ALLOC, &ioas);
	if (rc < 0) {
		snprintf(err, errlen, "IOMMU_IOAS_ALLOC failed: %s", strerror(-rc));
		return rc;
	}
	c->ioas = ioas.out_ioas_id;
	/* A page table that tracks dirty IOVAs when the IOMMU can; else the IOAS
	 * itself (the kernel makes the page table). */
	struct devmig_k_hwpt_alloc hw = {
		.size = sizeof(hw), .flags = DEVMIG_HWPT_ALLOC_DIRTY_TRACKING,
		.dev_id = c->devid, .pt_id = c->ioas,
	};
	uint32_t pt = c->ioas;
	if (kioctl(c, c->iommufd, IOMMU_HWPT_ALLOC, &hw) >= 0) {
		c->hwpt = pt = hw.out_hwpt_id;
		c->hwpt_dirty = true;
	}
	struct devmig_k_attach_pt at = { .argsz = sizeof(at), .pt_id = pt };
	rc = kioctl(c, c->dev_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	if (rc < 0 && c->hwpt_dirty) {
		/* The dirty-tracking table may be what the device cannot use. */
		c->hwpt_dirty = false;
		at.pt_id = c->ioas;
		rc = kioctl(c, c->dev_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	}
	if (rc < 0) {
		snprintf(err, errlen, "VFIO_DEVICE_ATTACH_IOMMUFD_PT of %s to IOAS %u failed: %s",
			 c->loc.cdev, c->ioas, strerror(-rc));
		return rc;
	}
	return 0;
}

static void kvfio_close(struct devmig_client *cl);

static int load_info(struct kvfio_client *c, char *err, size_t errlen)
{
	struct vfio_device_info di = { .argsz = sizeof(di) };
	int rc = kioctl(c, c->dev_fd, VFIO_DEVICE_GET_INFO, &di);
	if (rc < 0) {
		snprintf(err, errlen, "VFIO_DEVICE_GET_INFO on %s failed: %s", c->loc.name,
			 strerror(-rc));
		return rc;
	}
	c->info.argsz = sizeof(c->info);
	c->info.flags = di.flags;
	c->info.num_regions = di.num_regions;
	c->info.num_irqs = di.num_irqs;
	if (di.num_regions > 4096) {
		snprintf(err, errlen, "%s claims %u regions", c->loc.name, di.num_regions);
		return -EPROTO;
	}
	c->regions = calloc(di.num_regions ? di.num_regions : 1, sizeof(*c->regions));
	if (!c->regions) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Every region's place once, so region access needs no lock. */
	for (uint32_t i = 0; i < di.num_regions; i++) {
		struct vfio_region_info ri = { .argsz = sizeof(ri), .index = i };
		if (kioctl(c, c->dev_fd, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
			continue; /* e.g. the VGA region of a device without one */
		c->regions[i] = (struct kvfio_region){ ri.size != 0, ri.flags, ri.size, ri.offset };
	}
	return 0;
}

struct devmig_client *kvfio_open(const struct kvfio_sys *sys, const char *spec,
				 const struct devmig_client_config *cfg, char *err, size_t errlen)
{
	struct kvfio_client *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base.ops = &kvfio_ops;
	c->sys = sys;
	c->dev_fd = c->iommufd = c->data_fd = -1;
	c->timeout_ms = cfg && cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->chunk = cfg && cfg->max_data_xfer_size ? cfg->max_data_xfer_size : DEFAULT_CHUNK;
	if (c->chunk > MAX_CHUNK)
		c->chunk = MAX_CHUNK;
	pthread_mutex_init(&c->mig_lock, NULL);
	pthread_mutex_init(&c->map_lock, NULL);

	if (kvfio_locate(sys, spec, &c->loc, err, errlen))
		goto fail;
	if ((c->loc.iommufd ? open_iommufd(c, err, errlen) : open_type1(c, err, errlen)) ||
	    load_info(c, err, errlen))
		goto fail;
	uint64_t flags = 0;
	if (!feature(c, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &flags,
		     sizeof(flags)))
		c->mig_flags = flags;
	/* PRECOPY_INFO v2: opt in where the kernel has it, so its flags mean something. */
	if ((c->mig_flags & VFIO_MIGRATION_PRE_COPY) &&
	    !feature(c, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
				VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, NULL, 0) &&
	    !feature(c, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, NULL, 0))
		c->precopy_v2 = true;
	return &c->base;
fail:
	kvfio_close(&c->base);
	return NULL;
}

struct devmig_client *devmig_kernel_open(const char *spec, const struct devmig_client_config *cfg,
					 char *err, size_t errlen)
{
	return kvfio_open(&kvfio_sys_linux, spec, cfg, err, errlen);
}

static int unmap_one(struct kvfio_client *c, uint64_t iova, uint64_t size)
{
	if (c->iommufd >= 0) {
		struct devmig_k_ioas_unmap um = {
			.size = sizeof(um), .ioas_id = c->ioas, .iova = iova, .length = size,
		};
		return kioctl(c, c->iommufd, IOMMU_IOAS_UNMAP, &um);
	}
	struct vfio_iommu_type1_dma_unmap um = { .argsz = sizeof(um), .iova = iova, .size = size };
	return kioctl(c, c->group->container_fd, VFIO_IOMMU_UNMAP_DMA, &um);
}

static void kvfio_close(struct devmig_client *cl)
{
	struct kvfio_client *c = to_k(cl);

	close_data_fd(c);
	/* A shared container outlives this client: take our mappings out of it. */
	for (size_t i = 0; i < c->nmaps; i++) {
		if (c->dev_fd >= 0 && (c->group || c->iommufd >= 0))
			unmap_one(c, c->maps[i].iova, c->maps[i].size);
		if (c->maps[i].mapped)
			munmap(c->maps[i].mapped, c->maps[i].size);
	}
	if (c->dev_fd >= 0)
		c->sys->close(c->sys->ctx, c->dev_fd);
	if (c->iommufd >= 0)
		c->sys->close(c->sys->ctx, c->iommufd);
	group_put(c->group);
	pthread_mutex_destroy(&c->mig_lock);
	pthread_mutex_destroy(&c->map_lock);
	free(c->maps);
	free(c->regions);
	free(c);
}

static void kvfio_server_caps(struct devmig_client *cl, struct devmig_caps *caps)
{
	struct kvfio_client *c = to_k(cl);
	devmig_caps_default(caps);
	caps->max_data_xfer_size = (uint32_t)c->chunk;
	caps->ext = (c->mig_flags & VFIO_MIGRATION_PRE_COPY) ? DEVMIG_EXT_PRECOPY_INFO : 0;
}

static bool kvfio_has_ext(struct devmig_client *cl, uint32_t ext)
{
	struct kvfio_client *c = to_k(cl);
	/* PRE_COPY progress is native (the ioctl is mandatory with PRE_COPY);
	 * mig_status and compat exist only in devmig's vfio-user servers. */
	return ext == DEVMIG_EXT_PRECOPY_INFO && (c->mig_flags & VFIO_MIGRATION_PRE_COPY);
}

static int kvfio_fd(struct devmig_client *cl)
{
	return to_k(cl)->dev_fd;
}

static void kvfio_describe(struct devmig_client *cl, char *buf, size_t len)
{
	struct kvfio_client *c = to_k(cl);
	if (c->iommufd >= 0)
		snprintf(buf, len, "kernel VFIO %s: %s bound to iommufd (IOAS %u%s)", c->loc.name,
			 c->loc.cdev, c->ioas, c->hwpt_dirty ? ", dirty-tracking HWPT" : "");
	else
		snprintf(buf, len, "kernel VFIO %s: group %d in a type1%s container", c->loc.name,
			 c->loc.group, c->group && c->group->v2 ? "v2" : "");
}

static int kvfio_device_info(struct devmig_client *cl, struct devmig_device_info *info)
{
	*info = to_k(cl)->info;
	return 0;
}

static int kvfio_region_info(struct devmig_client *cl, uint32_t index,
			     struct devmig_region_info *info, int *fd,
			     struct devmig_sparse_mmap_area *areas, unsigned *nareas)
{
	struct kvfio_client *c = to_k(cl);
	unsigned max_areas = nareas ? *nareas : 0;
	uint32_t argsz = sizeof(struct vfio_region_info);
	uint8_t *buf = NULL;
	int rc;

	*fd = -1;
	if (nareas)
		*nareas = 0;
	/* Twice at most: the kernel says how much room its capability chain needs. */
	for (int pass = 0; pass < 2; pass++) {
		uint8_t *nb = realloc(buf, argsz);
		if (!nb) {
			free(buf);
			return -ENOMEM;
		}
		buf = nb;
		memset(buf, 0, argsz);
		struct vfio_region_info *ri = (struct vfio_region_info *)(void *)buf;
		ri->argsz = argsz;
		ri->index = index;
		rc = kioctl(c, c->dev_fd, VFIO_DEVICE_GET_REGION_INFO, ri);
		if (rc < 0 || ri->argsz <= argsz)
			break;
		argsz = ri->argsz > 65536 ? 65536 : ri->argsz;
	}
	if (rc < 0) {
		free(buf);
		return rc;
	}
	struct vfio_region_info ri;
	memcpy(&ri, buf, sizeof(ri));
	info->argsz = sizeof(*info);
	info->flags = ri.flags;
	info->index = ri.index;
	info->cap_offset = (ri.flags & VFIO_REGION_INFO_FLAG_CAPS) ? ri.cap_offset : 0;
	info->size = ri.size;
	info->offset = ri.offset;
	uint32_t have = ri.argsz < argsz ? ri.argsz : argsz;
	uint32_t off = info->cap_offset;
	while (off && off >= sizeof(ri) && (uint64_t)off + 8 <= have) {
		struct devmig_info_cap_hdr h;
		memcpy(&h, buf + off, sizeof(h));
		if (h.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP && areas && nareas &&
		    (uint64_t)off + 16 <= have) {
			uint32_t n;
			memcpy(&n, buf + off + 8, 4);
			for (uint32_t i = 0; i < n && *nareas < max_areas &&
					     (uint64_t)off + 16 + 16 * (i + 1) <= have;
			     i++)
				memcpy(&areas[(*nareas)++], buf + off + 16 + 16 * i, sizeof(*areas));
		}
		if (h.next <= off)
			break;
		off = h.next;
	}
	free(buf);
	/* A mappable region is mapped from the device fd at its offset. */
	if (ri.flags & VFIO_REGION_INFO_FLAG_MMAP) {
		*fd = fcntl(c->dev_fd, F_DUPFD_CLOEXEC, 0);
		if (*fd < 0)
			*fd = -1;
	}
	return 0;
}

static int kvfio_irq_info(struct devmig_client *cl, uint32_t index, struct devmig_irq_info *info)
{
	struct kvfio_client *c = to_k(cl);
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = index };
	int rc = kioctl(c, c->dev_fd, VFIO_DEVICE_GET_IRQ_INFO, &ii);
	if (rc < 0)
		return rc;
	*info = (struct devmig_irq_info){ sizeof(*info), ii.flags, ii.index, ii.count };
	return 0;
}

static int kvfio_set_irqs(struct devmig_client *cl, uint32_t index, uint32_t flags,
			  uint32_t start, uint32_t count, const int *fds)
{
	struct kvfio_client *c = to_k(cl);
	size_t data = fds ? (size_t)count * sizeof(int32_t) : 0;

	if (count > 4096 || (fds && !(flags & VFIO_IRQ_SET_DATA_EVENTFD)))
		return -EINVAL;
	struct vfio_irq_set *s = calloc(1, sizeof(*s) + data);
	if (!s)
		return -ENOMEM;
	s->argsz = (uint32_t)(sizeof(*s) + data);
	s->flags = flags;
	s->index = index;
	s->start = start;
	s->count = count;
	for (uint32_t i = 0; fds && i < count; i++) {
		int32_t fd = fds[i];
		memcpy(s->data + i * sizeof(int32_t), &fd, sizeof(fd));
	}
	int rc = kioctl(c, c->dev_fd, VFIO_DEVICE_SET_IRQS, s);
	free(s);
	return rc < 0 ? rc : 0;
}

static int kvfio_set_irqs_bool(struct devmig_client *cl, uint32_t index, uint32_t action,
			       uint32_t start, uint32_t count, const uint8_t *bools)
{
	struct kvfio_client *c = to_k(cl);

	if (action & ~VFIO_IRQ_SET_ACTION_TYPE_MASK || count > 4096)
		return -EINVAL;
	struct vfio_irq_set *s = calloc(1, sizeof(*s) + count);
	if (!s)
		return -ENOMEM;
	s->argsz = (uint32_t)(sizeof(*s) + count);
	s->flags = VFIO_IRQ_SET_DATA_BOOL | action;
	s->index = index;
	s->start = start;
	s->count = count;
	if (count)
		memcpy(s->data, bools, count);
	int rc = kioctl(c, c->dev_fd, VFIO_DEVICE_SET_IRQS, s);
	free(s);
	return rc < 0 ? rc : 0;
}

static int region_rw(struct kvfio_client *c, uint32_t region, uint64_t offset, void *buf,
		     size_t len, bool is_write)
{
	if (region >= c->info.num_regions || !c->regions[region].present)
		return -EINVAL;
	const struct kvfio_region *r = &c->regions[region];
	if (offset > r->size || len > r->size - offset)
		return -EINVAL;
	if (!(r->flags & (is_write ? VFIO_REGION_INFO_FLAG_WRITE : VFIO_REGION_INFO_FLAG_READ)))
		return -EACCES;
	uint8_t *p = buf;
	while (len) {
		ssize_t n = is_write ? c->sys->pwrite(c->sys->ctx, c->dev_fd, p, len,
						      r->offset + offset)
				     : c->sys->pread(c->sys->ctx, c->dev_fd, p, len, r->offset + offset);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		p += n;
		offset += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int kvfio_region_read(struct devmig_client *cl, uint32_t region, uint64_t offset,
			     void *buf, size_t len)
{
	return region_rw(to_k(cl), region, offset, buf, len, false);
}

static int kvfio_region_write(struct devmig_client *cl, uint32_t region, uint64_t offset,
			      const void *buf, size_t len)
{
	return region_rw(to_k(cl), region, offset, (void *)buf, len, true);
}

static int kvfio_reset(struct devmig_client *cl)
{
	struct kvfio_client *c = to_k(cl);
	pthread_mutex_lock(&c->mig_lock);
	int rc = kioctl(c, c->dev_fd, VFIO_DEVICE_RESET, NULL);
	/* A reset ends any data session (the device is RUNNING again). */
	if (rc >= 0)
		close_data_fd(c);
	pthread_mutex_unlock(&c->mig_lock);
	return rc < 0 ? rc : 0;
}

static int kvfio_dma_map(struct devmig_client *cl, uint64_t iova, uint64_t size, uint32_t prot,
			 int fd, uint64_t fd_offset, void *vaddr)
{
	struct kvfio_client *c = to_k(cl);
	void *mapped = NULL;
	int rc;

	if (!size || (fd < 0 && !vaddr) || !(prot & (DEVMIG_DMA_READ | DEVMIG_DMA_WRITE)))
		return -EINVAL;
	if (!vaddr) {
		/* The kernel pins our memory: map the caller's fd here first. */
		mapped = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)fd_offset);
		if (mapped == MAP_FAILED)
			return -errno;
		vaddr = mapped;
	}
	pthread_mutex_lock(&c->map_lock);
	struct kvfio_map *maps = realloc(c->maps, (c->nmaps + 1) * sizeof(*maps));
	if (!maps) {
		rc = -ENOMEM;
		goto out;
	}
	c->maps = maps;
	if (c->iommufd >= 0) {
		struct devmig_k_ioas_map m = {
			.size = sizeof(m), .ioas_id = c->ioas, .user_va = (uintptr_t)vaddr,
			.length = size, .iova = iova,
			.flags = DEVMIG_IOAS_MAP_FIXED_IOVA |
				 ((prot & DEVMIG_DMA_READ) ? DEVMIG_IOAS_MAP_READABLE : 0) |
				 ((prot & DEVMIG_DMA_WRITE) ? DEVMIG_IOAS_MAP_WRITEABLE : 0),
		};
		rc = kioctl(c, c->iommufd, IOMMU_IOAS_MAP, &m);
	} else {
		struct vfio_iommu_type1_dma_map m = {
			.argsz = sizeof(m), .vaddr = (uintptr_t)vaddr, .iova = iova, .size = size,
			.flags = ((prot & DEVMIG_DMA_READ) ? VFIO_DMA_MAP_FLAG_READ : 0) |
				 ((prot & DEVMIG_DMA_WRITE) ? VFIO_DMA_MAP_FLAG_WRITE : 0),
		};
		rc = kioctl(c, c->group->container_fd, VFIO_IOMMU_MAP_DMA, &m);
	}
	if (rc >= 0) {
		c->maps[c->nmaps++] = (struct kvfio_map){ iova, size, mapped };
		rc = 0;
	}
out:
	pthread_mutex_unlock(&c->map_lock);
	if (rc && mapped)
		munmap(mapped, size);
	return rc;
}

static int kvfio_dma_unmap(struct devmig_client *cl, uint64_t iova, uint64_t size)
{
	struct kvfio_client *c = to_k(cl);

	pthread_mutex_lock(&c->map_lock);
	int rc = unmap_one(c, iova, size);
	if (rc >= 0) {
		rc = 0;
		for (size_t i = 0; i < c->nmaps; i++) {
			if (c->maps[i].iova == iova && c->maps[i].size == size) {
				if (c->maps[i].mapped)
					munmap(c->maps[i].mapped, size);
				c->maps[i] = c->maps[--c->nmaps];
				break;
			}
		}
	}
	pthread_mutex_unlock(&c->map_lock);
	return rc;
}

static int kvfio_feature_probe(struct devmig_client *cl, uint32_t index, uint32_t ops)
{
	return feature(to_k(cl), (index & VFIO_DEVICE_FEATURE_MASK) | ops | VFIO_DEVICE_FEATURE_PROBE,
		       NULL, 0);
}

static int kvfio_mig_caps(struct devmig_client *cl, uint64_t *caps)
{
	return feature(to_k(cl), VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, caps,
		       sizeof(*caps));
}

static int get_state(struct kvfio_client *c, enum devmig_state *state)
{
	struct vfio_device_feature_mig_state st = { .data_fd = -1 };
	int rc = feature(c, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st,
			 sizeof(st));
	if (!rc)
		*state = (enum devmig_state)st.device_state;
	return rc;
}

static int kvfio_get_state(struct devmig_client *cl, enum devmig_state *state)
{
	return get_state(to_k(cl), state);
}

static int kvfio_set_state(struct devmig_client *cl, enum devmig_state state)
{
	struct kvfio_client *c = to_k(cl);
	struct vfio_device_feature_mig_state st = { .device_state = state, .data_fd = -1 };

	pthread_mutex_lock(&c->mig_lock);
	int rc = feature(c, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st,
			 sizeof(st));
	if (!rc) {
		if (st.data_fd >= 0) {
			/* A new session: the old one (if any) is over. */
			close_data_fd(c);
			c->data_fd = st.data_fd;
			c->sys->set_nonblock(c->sys->ctx, c->data_fd);
		} else if (!session_state(state)) {
			close_data_fd(c);
		}
	} else {
		/* The device may have stopped anywhere on the path. */
		enum devmig_state now;
		if (!get_state(c, &now) && !session_state(now))
			close_data_fd(c);
	}
	pthread_mutex_unlock(&c->mig_lock);
	return rc;
}

/* Read up to len bytes of the stream: 0 or ENOMSG end it (for now or for good). */
static ssize_t read_locked(struct kvfio_client *c, void *buf, size_t len, bool *ended)
{
	size_t got = 0;

	*ended = false;
	if (c->data_fd < 0)
		return -EINVAL; /* no data session in this state */
	while (got < len) {
		ssize_t n = kvfio_data_read_some(c->sys, c->data_fd, (uint8_t *)buf + got, len - got,
						 c->timeout_ms);
		if (n == 0 || n == -ENOMSG) {
			*ended = true;
			break;
		}
		if (n < 0)
			return n;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static ssize_t kvfio_mig_read(struct devmig_client *cl, void *buf, size_t len)
{
	struct kvfio_client *c = to_k(cl);
	bool ended;

	if (!len)
		return 0;
	pthread_mutex_lock(&c->mig_lock);
	ssize_t n = read_locked(c, buf, len, &ended);
	pthread_mutex_unlock(&c->mig_lock);
	return n;
}

static ssize_t kvfio_mig_read_stream(struct devmig_client *cl, size_t chunk, unsigned depth,
				     uint64_t limit, bool *ended,
				     int (*sink)(void *opaque, const void *data, size_t len),
				     void *opaque)
{
	struct kvfio_client *c = to_k(cl);
	bool dummy;
	ssize_t total = 0;

	(void)depth; /* the driver prepares data as it likes; one read() at a time */
	if (!ended)
		ended = &dummy;
	*ended = false;
	if (!chunk)
		return -EINVAL;
	if (chunk > MAX_CHUNK)
		chunk = MAX_CHUNK;
	uint8_t *buf = malloc(chunk);
	if (!buf)
		return -ENOMEM;
	pthread_mutex_lock(&c->mig_lock);
	while (!*ended && (!limit || (uint64_t)total < limit)) {
		ssize_t n = read_locked(c, buf, chunk, ended);
		if (n < 0) {
			total = n;
			break;
		}
		if (n) {
			int rc = sink(opaque, buf, (size_t)n);
			if (rc) {
				total = rc;
				break;
			}
		}
		total += n;
	}
	pthread_mutex_unlock(&c->mig_lock);
	free(buf);
	return total;
}

static int kvfio_mig_write(struct devmig_client *cl, const void *buf, size_t len)
{
	struct kvfio_client *c = to_k(cl);
	int rc;

	pthread_mutex_lock(&c->mig_lock);
	if (c->data_fd < 0)
		rc = -EINVAL; /* not RESUMING */
	else
		rc = kvfio_data_write_all(c->sys, c->data_fd, buf, len, c->timeout_ms);
	pthread_mutex_unlock(&c->mig_lock);
	return rc;
}

static int kvfio_precopy_progress(struct devmig_client *cl, struct devmig_precopy_progress *p)
{
	struct kvfio_client *c = to_k(cl);
	struct devmig_k_precopy_info pi = { .argsz = sizeof(pi) };
	int rc;

	pthread_mutex_lock(&c->mig_lock);
	rc = c->data_fd < 0 ? -EINVAL : kioctl(c, c->data_fd, VFIO_MIG_GET_PRECOPY_INFO, &pi);
	pthread_mutex_unlock(&c->mig_lock);
	if (rc < 0)
		return rc;
	p->initial_bytes = pi.initial_bytes;
	p->dirty_bytes = pi.dirty_bytes;
	/* Without the v2 opt-in, flags just echo what was passed in. */
	p->reinit = c->precopy_v2 && (pi.flags & VFIO_PRECOPY_INFO_REINIT);
	return 0;
}

static int kvfio_stop_copy_size(struct devmig_client *cl, uint64_t *bytes)
{
	return feature(to_k(cl), VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, bytes,
		       sizeof(*bytes));
}

/*
 * DMA logging: the device's own (VFIO_DEVICE_FEATURE_DMA_LOGGING_*) when it
 * has it, else the IOMMU's dirty tracking of the HWPT the device is
 * attached to (iommufd), which covers every DMA of the device.
 */
static int kvfio_log_start(struct devmig_client *cl, uint64_t *page_size,
			   const struct devmig_dma_logging_range *ranges, uint32_t n)
{
	struct kvfio_client *c = to_k(cl);
	int rc;

	if (!n || n > 4096 || !*page_size)
		return -EINVAL;
	struct vfio_device_feature_dma_logging_range *r = calloc(n, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		r[i].iova = ranges[i].iova;
		r[i].length = ranges[i].length;
	}
	struct vfio_device_feature_dma_logging_control ctl = {
		.page_size = *page_size, .num_ranges = n, .ranges = (uintptr_t)r,
	};
	pthread_mutex_lock(&c->mig_lock);
	if (c->logging != LOG_NONE) {
		rc = -EBUSY;
		goto out;
	}
	rc = feature(c, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &ctl,
		     sizeof(ctl));
	if (!rc) {
		c->logging = LOG_DEVICE;
		*page_size = ctl.page_size;
	} else if (c->hwpt_dirty) {
		struct devmig_k_hwpt_set_dirty sd = {
			.size = sizeof(sd), .flags = DEVMIG_HWPT_DIRTY_TRACKING_ENABLE,
			.hwpt_id = c->hwpt,
		};
		rc = kioctl(c, c->iommufd, IOMMU_HWPT_SET_DIRTY_TRACKING, &sd);
		if (rc >= 0) {
			rc = 0;
			c->logging = LOG_IOMMU; /* any power-of-two page size can be reported */
		}
	}
out:
	pthread_mutex_unlock(&c->mig_lock);
	free(r);
	return rc;
}

static int kvfio_log_stop(struct devmig_client *cl)
{
	struct kvfio_client *c = to_k(cl);
	int rc;

	pthread_mutex_lock(&c->mig_lock);
	if (c->logging == LOG_DEVICE) {
		rc = feature(c, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL,
			     0);
	} else if (c->logging == LOG_IOMMU) {
		struct devmig_k_hwpt_set_dirty sd = { .size = sizeof(sd), .hwpt_id = c->hwpt };
		rc = kioctl(c, c->iommufd, IOMMU_HWPT_SET_DIRTY_TRACKING, &sd);
		rc = rc < 0 ? rc : 0;
	} else {
		rc = -EINVAL; /* not started */
	}
	c->logging = LOG_NONE;
	pthread_mutex_unlock(&c->mig_lock);
	return rc;
}

static int kvfio_log_report(struct devmig_client *cl, uint64_t iova, uint64_t length,
			    uint64_t page_size, uint64_t *bitmap)
{
	struct kvfio_client *c = to_k(cl);
	int rc;

	if (!page_size || (page_size & (page_size - 1)) || !length)
		return -EINVAL;
	/* The kernel only sets bits: the caller gets exactly this report. */
	memset(bitmap, 0, devmig_log_bitmap_size(length, page_size));
	pthread_mutex_lock(&c->mig_lock);
	if (c->logging == LOG_DEVICE) {
		struct vfio_device_feature_dma_logging_report rep = {
			.iova = iova, .length = length, .page_size = page_size,
			.bitmap = (uintptr_t)bitmap,
		};
		rc = feature(c, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
			     &rep, sizeof(rep));
	} else if (c->logging == LOG_IOMMU) {
		struct devmig_k_hwpt_get_dirty gd = {
			.size = sizeof(gd), .hwpt_id = c->hwpt, .iova = iova, .length = length,
			.page_size = page_size, .data = (uintptr_t)bitmap,
		};
		rc = kioctl(c, c->iommufd, IOMMU_HWPT_GET_DIRTY_BITMAP, &gd);
		rc = rc < 0 ? rc : 0;
	} else {
		rc = -EINVAL;
	}
	pthread_mutex_unlock(&c->mig_lock);
	return rc;
}

static const struct devmig_client_ops kvfio_ops = {
	.name = "kernel",
	.close = kvfio_close,
	.server_caps = kvfio_server_caps,
	.has_ext = kvfio_has_ext,
	.fd = kvfio_fd,
	.device_info = kvfio_device_info,
	.region_info = kvfio_region_info,
	.irq_info = kvfio_irq_info,
	.set_irqs = kvfio_set_irqs,
	.set_irqs_bool = kvfio_set_irqs_bool,
	.region_read = kvfio_region_read,
	.region_write = kvfio_region_write,
	.reset = kvfio_reset,
	.dma_map = kvfio_dma_map,
	.dma_unmap = kvfio_dma_unmap,
	.feature_probe = kvfio_feature_probe,
	.mig_caps = kvfio_mig_caps,
	.get_state = kvfio_get_state,
	.set_state = kvfio_set_state,
	.mig_read = kvfio_mig_read,
	.mig_read_stream = kvfio_mig_read_stream,
	.mig_write = kvfio_mig_write,
	/* Only devmig's vfio-user servers have these: -EOPNOTSUPP. */
	.mig_write_nowait = NULL,
	.mig_status = NULL,
	.compat_info = NULL,
	.raw = NULL,
	.precopy_progress = kvfio_precopy_progress,
	.stop_copy_size = kvfio_stop_copy_size,
	.log_start = kvfio_log_start,
	.log_stop = kvfio_log_stop,
	.log_report = kvfio_log_report,
	.poll = NULL, /* the kernel sends no commands */
	.describe = kvfio_describe,
};
