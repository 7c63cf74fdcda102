/* SPDX-License-Identifier: MIT */
/*
 * The Linux VFIO and iommufd uAPI as the kernel backend uses it.
 *
 * <linux/vfio.h> gives what the installed headers have; Debian 12's (Linux
 * 6.1) lack the PRE_COPY interface (6.2), MIG_DATA_SIZE (6.2), the device
 * cdev ioctls (6.6), <linux/iommufd.h> (6.2) and PRECOPY_INFO v2 (newer still).
 * Those are defined here with the kernel's values, each guarded so a newer
 * header wins. Structures the old header lacks get devmig_k_ names (a
 * struct cannot be guarded); their layouts are the kernel's, checked by
 * the static asserts below.
 */
#ifndef DEVMIG_LIB_VFIO_UAPI_H
#define DEVMIG_LIB_VFIO_UAPI_H

#include <assert.h>
#include <stdint.h>
#include <linux/ioctl.h>
#include <linux/vfio.h>

/*
 * Each value under a devmig_k name, then under the kernel's when the header
 * lacks it (tests/kernel/uapi_check.c compares the two with a newer header).
 */
#define DEVMIG_K_MIGRATION_PRE_COPY (1 << 2)
#define DEVMIG_K_MIG_GET_PRECOPY_INFO _IO(VFIO_TYPE, VFIO_BASE + 21)
#define DEVMIG_K_PRECOPY_INFO_REINIT (1 << 0) /* output: new initial data is on the stream */
#define DEVMIG_K_FEATURE_MIG_PRECOPY_INFOv2 12 /* SET, no data: flags become an output */
#define DEVMIG_K_FEATURE_MIG_DATA_SIZE 9
#define DEVMIG_K_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
#define DEVMIG_K_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)
#define DEVMIG_K_DEVICE_DETACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 20)

#define DEVMIG_K_IOMMUFD_TYPE ';'
#define DEVMIG_K_IOMMUFD_CMD(n) _IO(DEVMIG_K_IOMMUFD_TYPE, 0x80 + (n))
#define DEVMIG_K_IOMMU_DESTROY DEVMIG_K_IOMMUFD_CMD(0)
#define DEVMIG_K_IOMMU_IOAS_ALLOC DEVMIG_K_IOMMUFD_CMD(1)
#define DEVMIG_K_IOMMU_IOAS_MAP DEVMIG_K_IOMMUFD_CMD(5)
#define DEVMIG_K_IOMMU_IOAS_UNMAP DEVMIG_K_IOMMUFD_CMD(6)
#define DEVMIG_K_IOMMU_HWPT_ALLOC DEVMIG_K_IOMMUFD_CMD(9)
#define DEVMIG_K_IOMMU_HWPT_SET_DIRTY_TRACKING DEVMIG_K_IOMMUFD_CMD(11)
#define DEVMIG_K_IOMMU_HWPT_GET_DIRTY_BITMAP DEVMIG_K_IOMMUFD_CMD(12)

/* enum iommufd_ioas_map_flags */
#define DEVMIG_IOAS_MAP_FIXED_IOVA (1u << 0)
#define DEVMIG_IOAS_MAP_WRITEABLE (1u << 1)
#define DEVMIG_IOAS_MAP_READABLE (1u << 2)
/* enum iommufd_hwpt_alloc_flags */
#define DEVMIG_HWPT_ALLOC_DIRTY_TRACKING (1u << 1)
/* enum iommufd_hwpt_set_dirty_tracking_flags */
#define DEVMIG_HWPT_DIRTY_TRACKING_ENABLE 1u

#ifndef VFIO_MIGRATION_PRE_COPY
#define VFIO_MIGRATION_PRE_COPY DEVMIG_K_MIGRATION_PRE_COPY
#endif
#ifndef VFIO_MIG_GET_PRECOPY_INFO
#define VFIO_MIG_GET_PRECOPY_INFO DEVMIG_K_MIG_GET_PRECOPY_INFO
#endif
#ifndef VFIO_PRECOPY_INFO_REINIT
#define VFIO_PRECOPY_INFO_REINIT DEVMIG_K_PRECOPY_INFO_REINIT
#endif
#ifndef VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2
#define VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 DEVMIG_K_FEATURE_MIG_PRECOPY_INFOv2
#endif
#ifndef VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
#define VFIO_DEVICE_FEATURE_MIG_DATA_SIZE DEVMIG_K_FEATURE_MIG_DATA_SIZE
#endif
#ifndef VFIO_DEVICE_BIND_IOMMUFD
#define VFIO_DEVICE_BIND_IOMMUFD DEVMIG_K_DEVICE_BIND_IOMMUFD
#endif
#ifndef VFIO_DEVICE_ATTACH_IOMMUFD_PT
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT DEVMIG_K_DEVICE_ATTACH_IOMMUFD_PT
#endif
#ifndef VFIO_DEVICE_DETACH_IOMMUFD_PT
#define VFIO_DEVICE_DETACH_IOMMUFD_PT DEVMIG_K_DEVICE_DETACH_IOMMUFD_PT
#endif
#ifndef IOMMU_DESTROY
#define IOMMU_DESTROY DEVMIG_K_IOMMU_DESTROY
#endif
#ifndef IOMMU_IOAS_ALLOC
#define IOMMU_IOAS_ALLOC DEVMIG_K_IOMMU_IOAS_ALLOC
#endif
#ifndef IOMMU_IOAS_MAP
#define IOMMU_IOAS_MAP DEVMIG_K_IOMMU_IOAS_MAP
#endif
#ifndef IOMMU_IOAS_UNMAP
#define IOMMU_IOAS_UNMAP DEVMIG_K_IOMMU_IOAS_UNMAP
#endif
#ifndef IOMMU_HWPT_ALLOC
#define IOMMU_HWPT_ALLOC DEVMIG_K_IOMMU_HWPT_ALLOC
#endif
#ifndef IOMMU_HWPT_SET_DIRTY_TRACKING
#define IOMMU_HWPT_SET_DIRTY_TRACKING DEVMIG_K_IOMMU_HWPT_SET_DIRTY_TRACKING
#endif
#ifndef IOMMU_HWPT_GET_DIRTY_BITMAP
#define IOMMU_HWPT_GET_DIRTY_BITMAP DEVMIG_K_IOMMU_HWPT_GET_DIRTY_BITMAP
#endif

/* struct vfio_precopy_info (ioctl on the data fd) */
struct devmig_k_precopy_info {
	uint32_t argsz;
	uint32_t flags;
	uint64_t initial_bytes;
	uint64_t dirty_bytes;
};

/* struct vfio_device_bind_iommufd as first defined (no token) */
struct devmig_k_bind_iommufd {
	uint32_t argsz;
	uint32_t flags;
	int32_t iommufd;
	uint32_t out_devid;
};

/* struct vfio_device_attach_iommufd_pt without the later pasid member */
struct devmig_k_attach_pt {
	uint32_t argsz;
	uint32_t flags;
	uint32_t pt_id;
};

struct devmig_k_destroy {
	uint32_t size;
	uint32_t id;
};

struct devmig_k_ioas_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t out_ioas_id;
};

struct devmig_k_ioas_map {
	uint32_t size;
	uint32_t flags;
	uint32_t ioas_id;
	uint32_t reserved;
	uint64_t user_va;
	uint64_t length;
	uint64_t iova;
};

struct devmig_k_ioas_unmap {
	uint32_t size;
	uint32_t ioas_id;
	uint64_t iova;
	uint64_t length;
};

struct devmig_k_hwpt_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t dev_id;
	uint32_t pt_id;
	uint32_t out_hwpt_id;
	uint32_t reserved;
	uint32_t data_type; /* IOMMU_HWPT_DATA_NONE: 0 */
	uint32_t data_len;
	uint64_t data_uptr;
};

struct devmig_k_hwpt_set_dirty {
	uint32_t size;
	uint32_t flags;
	uint32_t hwpt_id;
	uint32_t reserved;
};

struct devmig_k_hwpt_get_dirty {
	uint32_t size;
	uint32_t hwpt_id;
	uint32_t flags;
	uint32_t reserved;
	uint64_t iova;
	uint64_t length;
	uint64_t page_size;
	uint64_t data; /* bitmap pointer; bit n = the page at iova + n * page_size */
};

static_assert(sizeof(struct devmig_k_precopy_info) == 24, "vfio_precopy_info");
static_assert(sizeof(struct devmig_k_bind_iommufd) == 16, "vfio_device_bind_iommufd");
static_assert(sizeof(struct devmig_k_attach_pt) == 12, "vfio_device_attach_iommufd_pt");
static_assert(sizeof(struct devmig_k_ioas_alloc) == 12, "iommu_ioas_alloc");
static_assert(sizeof(struct devmig_k_ioas_map) == 40, "iommu_ioas_map");
static_assert(sizeof(struct devmig_k_ioas_unmap) == 24, "iommu_ioas_unmap");
static_assert(sizeof(struct devmig_k_hwpt_alloc) == 40, "iommu_hwpt_alloc");
static_assert(sizeof(struct devmig_k_hwpt_set_dirty) == 16, "iommu_hwpt_set_dirty_tracking");
static_assert(sizeof(struct devmig_k_hwpt_get_dirty) == 48, "iommu_hwpt_get_dirty_bitmap");

#endif /* DEVMIG_LIB_VFIO_UAPI_H */
