/* SPDX-License-Identifier: MIT */
/*
 * lib/vfio_uapi.h defines what Debian 12's <linux/vfio.h> lacks. Built
 * against a newer kernel's uAPI headers (make check-kernel puts Linux
 * 6.12's first on the include path), every value and layout devmig uses
 * must equal the kernel's: this file compiles only if they do.
 * (VFIO_PRECOPY_INFO_REINIT and MIG_PRECOPY_INFOv2 are newer than 6.12.)
 */
#include <stddef.h>
#include <stdio.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "vfio_uapi.h"

#define SAME(a, b) _Static_assert((a) == (b), #a " != " #b)
#define SAME_FIELD(ours, theirs, f)                                                  \
	_Static_assert(offsetof(struct ours, f) == offsetof(struct theirs, f) &&     \
			       sizeof(((struct ours *)0)->f) == sizeof(((struct theirs *)0)->f), \
		       #ours "." #f)

SAME(DEVMIG_K_MIGRATION_PRE_COPY, VFIO_MIGRATION_PRE_COPY);
SAME(DEVMIG_K_MIG_GET_PRECOPY_INFO, VFIO_MIG_GET_PRECOPY_INFO);
SAME(DEVMIG_K_FEATURE_MIG_DATA_SIZE, VFIO_DEVICE_FEATURE_MIG_DATA_SIZE);
SAME(DEVMIG_K_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_BIND_IOMMUFD);
SAME(DEVMIG_K_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_ATTACH_IOMMUFD_PT);
SAME(DEVMIG_K_DEVICE_DETACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_IOMMUFD_PT);
SAME(DEVMIG_K_IOMMU_DESTROY, IOMMU_DESTROY);
SAME(DEVMIG_K_IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOC);
SAME(DEVMIG_K_IOMMU_IOAS_MAP, IOMMU_IOAS_MAP);
SAME(DEVMIG_K_IOMMU_IOAS_UNMAP, IOMMU_IOAS_UNMAP);
SAME(DEVMIG_K_IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC);
SAME(DEVMIG_K_IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_HWPT_SET_DIRTY_TRACKING);
SAME(DEVMIG_K_IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_GET_DIRTY_BITMAP);
SAME(DEVMIG_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_FIXED_IOVA);
SAME(DEVMIG_IOAS_MAP_WRITEABLE, IOMMU_IOAS_MAP_WRITEABLE);
SAME(DEVMIG_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_READABLE);
SAME(DEVMIG_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
SAME(DEVMIG_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_DIRTY_TRACKING_ENABLE);

SAME(sizeof(struct devmig_k_precopy_info), sizeof(struct vfio_precopy_info));
SAME_FIELD(devmig_k_precopy_info, vfio_precopy_info, argsz);
SAME_FIELD(devmig_k_precopy_info, vfio_precopy_info, flags);
SAME_FIELD(devmig_k_precopy_info, vfio_precopy_info, initial_bytes);
SAME_FIELD(devmig_k_precopy_info, vfio_precopy_info, dirty_bytes);
SAME_FIELD(devmig_k_bind_iommufd, vfio_device_bind_iommufd, argsz);
SAME_FIELD(devmig_k_bind_iommufd, vfio_device_bind_iommufd, flags);
SAME_FIELD(devmig_k_bind_iommufd, vfio_device_bind_iommufd, iommufd);
SAME_FIELD(devmig_k_bind_iommufd, vfio_device_bind_iommufd, out_devid);
SAME_FIELD(devmig_k_attach_pt, vfio_device_attach_iommufd_pt, argsz);
SAME_FIELD(devmig_k_attach_pt, vfio_device_attach_iommufd_pt, flags);
SAME_FIELD(devmig_k_attach_pt, vfio_device_attach_iommufd_pt, pt_id);
SAME(sizeof(struct devmig_k_ioas_alloc), sizeof(struct iommu_ioas_alloc));
SAME_FIELD(devmig_k_ioas_alloc, iommu_ioas_alloc, out_ioas_id);
SAME(sizeof(struct devmig_k_ioas_map), sizeof(struct iommu_ioas_map));
SAME_FIELD(devmig_k_ioas_map, iommu_ioas_map, flags);
SAME_FIELD(devmig_k_ioas_map, iommu_ioas_map, ioas_id);
SAME_FIELD(devmig_k_ioas_map, iommu_ioas_map, user_va);
SAME_FIELD(devmig_k_ioas_map, iommu_ioas_map, length);
SAME_FIELD(devmig_k_ioas_map, iommu_ioas_map, iova);
SAME(sizeof(struct devmig_k_ioas_unmap), sizeof(struct iommu_ioas_unmap));
SAME_FIELD(devmig_k_ioas_unmap, iommu_ioas_unmap, ioas_id);
SAME_FIELD(devmig_k_ioas_unmap, iommu_ioas_unmap, iova);
SAME_FIELD(devmig_k_ioas_unmap, iommu_ioas_unmap, length);
/* The kernel takes a shorter struct than its own (later members are zero). */
_Static_assert(sizeof(struct devmig_k_hwpt_alloc) <= sizeof(struct iommu_hwpt_alloc), "hwpt_alloc");
SAME_FIELD(devmig_k_hwpt_alloc, iommu_hwpt_alloc, flags);
SAME_FIELD(devmig_k_hwpt_alloc, iommu_hwpt_alloc, dev_id);
SAME_FIELD(devmig_k_hwpt_alloc, iommu_hwpt_alloc, pt_id);
SAME_FIELD(devmig_k_hwpt_alloc, iommu_hwpt_alloc, out_hwpt_id);
SAME_FIELD(devmig_k_hwpt_alloc, iommu_hwpt_alloc, data_type);
SAME_FIELD(devmig_k_hwpt_alloc, iommu_hwpt_alloc, data_len);
SAME_FIELD(devmig_k_hwpt_alloc, iommu_hwpt_alloc, data_uptr);
SAME(sizeof(struct devmig_k_hwpt_set_dirty), sizeof(struct iommu_hwpt_set_dirty_tracking));
SAME_FIELD(devmig_k_hwpt_set_dirty, iommu_hwpt_set_dirty_tracking, flags);
SAME_FIELD(devmig_k_hwpt_set_dirty, iommu_hwpt_set_dirty_tracking, hwpt_id);
SAME(sizeof(struct devmig_k_hwpt_get_dirty), sizeof(struct iommu_hwpt_get_dirty_bitmap));
SAME_FIELD(devmig_k_hwpt_get_dirty, iommu_hwpt_get_dirty_bitmap, hwpt_id);
SAME_FIELD(devmig_k_hwpt_get_dirty, iommu_hwpt_get_dirty_bitmap, flags);
SAME_FIELD(devmig_k_hwpt_get_dirty, iommu_hwpt_get_dirty_bitmap, iova);
SAME_FIELD(devmig_k_hwpt_get_dirty, iommu_hwpt_get_dirty_bitmap, length);
SAME_FIELD(devmig_k_hwpt_get_dirty, iommu_hwpt_get_dirty_bitmap, page_size);
SAME_FIELD(devmig_k_hwpt_get_dirty, iommu_hwpt_get_dirty_bitmap, data);

int main(void)
{
	puts("devmig's uAPI definitions match these kernel headers");
	return 0;
}
