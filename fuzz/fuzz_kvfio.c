/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the kernel backend's two parsers.
 *
 * Byte 0 even: the rest is a device name for kvfio_locate (what --vfio
 * takes), resolved against a small sysfs tree in a temporary directory.
 * It must not crash, and a name it accepts must name a device of the tree.
 *
 * Byte 0 odd: the rest is what the kernel answers VFIO_DEVICE_GET_REGION_INFO
 * with (struct vfio_region_info, then a capability chain), served by a
 * fake kernel to a client of that tree's device. The chain walk must stay
 * inside what the kernel wrote and return at most the areas asked for.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_kernel.h"
#include "vfio_uapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define UUID "11111111-2222-3333-4444-555555555555"

static char root[64], sysfs[96], devdir[96];
static const uint8_t *reply;
static size_t reply_len;

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz check failed: %s\n", what);
		abort();
	}
}

static void mkdirs(const char *path)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s == '/') {
			*s = '\0';
			mkdir(p, 0755);
			*s = '/';
		}
	}
	mkdir(p, 0755);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void remove_tree(void)
{
	nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* sys/bus/mdev/devices/UUID -> sys/devices/mtty/UUID, in IOMMU group 3; dev/vfio/3. */
static void make_tree(void)
{
	char a[PATH_MAX], b[PATH_MAX];
	snprintf(root, sizeof(root), "/tmp/devmig-fuzz-kvfio-XXXXXX");
	check(mkdtemp(root) != NULL, "mkdtemp");
	atexit(remove_tree);
	snprintf(sysfs, sizeof(sysfs), "%s/sys", root);
	snprintf(devdir, sizeof(devdir), "%s/dev", root);
	snprintf(a, sizeof(a), "%s/devices/mtty/" UUID, sysfs);
	mkdirs(a);
	snprintf(a, sizeof(a), "%s/bus/mdev/devices", sysfs);
	mkdirs(a);
	snprintf(a, sizeof(a), "%s/devices/mtty/" UUID, sysfs);
	snprintf(b, sizeof(b), "%s/bus/mdev/devices/" UUID, sysfs);
	check(!symlink(a, b), "symlink device");
	snprintf(a, sizeof(a), "%s/kernel/iommu_groups/3", sysfs);
	mkdirs(a);
	snprintf(b, sizeof(b), "%s/devices/mtty/" UUID "/iommu_group", sysfs);
	check(!symlink(a, b), "symlink group");
	snprintf(a, sizeof(a), "%s/vfio", devdir);
	mkdirs(a);
	snprintf(a, sizeof(a), "%s/vfio/3", devdir);
	int fd = open(a, O_CREAT | O_WRONLY, 0644);
	check(fd >= 0, "dev node");
	close(fd);
}

static int f_open(void *ctx, const char *path, int flags)
{
	(void)ctx;
	(void)path;
	(void)flags;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int f_close(void *ctx, int fd)
{
	(void)ctx;
	return close(fd) ? -errno : 0;
}

static int f_ioctl(void *ctx, int fd, unsigned long req, void *arg)
{
	(void)ctx;
	if (req == VFIO_GET_API_VERSION)
		return VFIO_API_VERSION;
	if (req == VFIO_CHECK_EXTENSION)
		return 1;
	if (req == VFIO_GROUP_GET_STATUS) {
		((struct vfio_group_status *)arg)->flags = VFIO_GROUP_FLAGS_VIABLE;
		return 0;
	}
	if (req == VFIO_GROUP_SET_CONTAINER || req == VFIO_SET_IOMMU)
		return 0;
	if (req == VFIO_GROUP_GET_DEVICE_FD)
		return f_open(NULL, NULL, 0);
	if (req == VFIO_DEVICE_GET_INFO) {
		struct vfio_device_info *i = arg;
		i->flags = VFIO_DEVICE_FLAGS_PCI;
		i->num_regions = 1;
		i->num_irqs = 0;
		return 0;
	}
	if (req == VFIO_DEVICE_GET_REGION_INFO) {
		/* What the kernel writes: at most argsz bytes of the reply. */
		struct vfio_region_info *r = arg;
		uint32_t room = r->argsz;
		size_t n = reply_len < room ? reply_len : room;
		memcpy(r, reply, n);
		return 0;
	}
	(void)fd;
	return -ENOTTY;
}

static int f_set_nonblock(void *ctx, int fd)
{
	(void)ctx;
	(void)fd;
	return 0;
}

static struct kvfio_sys sys = {
	.open = f_open, .close = f_close, .ioctl = f_ioctl, .set_nonblock = f_set_nonblock,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!root[0]) {
		make_tree();
		sys.sysfs = sysfs;
		sys.dev = devdir;
	}
	if (!size)
		return 0;
	char err[512];
	if (!(data[0] & 1)) {
		char *spec = malloc(size);
		if (!spec)
			return 0;
		memcpy(spec, data + 1, size - 1);
		spec[size - 1] = '\0';
		struct devmig_vfio_location loc;
		int rc = kvfio_locate(&sys, spec, &loc, err, sizeof(err));
		if (!rc)
			check(!strcmp(loc.name, UUID) && loc.group == 3, "accepted name is the device");
		else
			check(err[0] != '\0', "a refusal says why");
		free(spec);
		return 0;
	}
	reply = data + 1;
	reply_len = size - 1;
	if (reply_len < sizeof(struct vfio_region_info))
		return 0; /* the kernel always writes the struct itself */
	struct devmig_client *c = kvfio_open(&sys, UUID, NULL, err, sizeof(err));
	if (!c)
		fprintf(stderr, "%s\n", err);
	check(c != NULL, "open against the fake");
	struct devmig_region_info ri;
	struct devmig_sparse_mmap_area areas[3];
	unsigned na = 3;
	int fd = -1;
	if (!devmig_client_region_info(c, 0, &ri, &fd, areas, &na))
		check(na <= 3, "no more areas than asked for");
	if (fd >= 0)
		close(fd);
	devmig_client_close(c);
	return 0;
}
