/* SPDX-License-Identifier: MIT */
/*
 * Inside the client: one ops table per backend. include/devmig/client.h is
 * the only way in; each public call dispatches to the backend the client
 * was opened with (a vfio-user socket in client.c, a kernel VFIO device in
 * client_kernel.c). A backend leaves an op NULL when the device has no such
 * thing; the call then fails with -EOPNOTSUPP.
 */
#ifndef DEVMIG_LIB_CLIENT_INTERNAL_H
#define DEVMIG_LIB_CLIENT_INTERNAL_H

#include "devmig/client.h"
#include "devmig/compat.h"

struct devmig_client_ops {
	const char *name; /* "vfio-user", "kernel" */
	void (*close)(struct devmig_client *c);
	void (*server_caps)(struct devmig_client *c, struct devmig_caps *caps);
	bool (*has_ext)(struct devmig_client *c, uint32_t ext);
	int (*fd)(struct devmig_client *c);
	int (*device_info)(struct devmig_client *c, struct devmig_device_info *info);
	int (*region_info)(struct devmig_client *c, uint32_t index, struct devmig_region_info *info,
			   int *fd, struct devmig_sparse_mmap_area *areas, unsigned *nareas);
	int (*irq_info)(struct devmig_client *c, uint32_t index, struct devmig_irq_info *info);
	int (*set_irqs)(struct devmig_client *c, uint32_t index, uint32_t flags, uint32_t start,
			uint32_t count, const int *fds);
	int (*set_irqs_bool)(struct devmig_client *c, uint32_t index, uint32_t action,
			     uint32_t start, uint32_t count, const uint8_t *bools);
	int (*region_read)(struct devmig_client *c, uint32_t region, uint64_t offset, void *buf,
			   size_t len);
	int (*region_write)(struct devmig_client *c, uint32_t region, uint64_t offset,
			    const void *buf, size_t len);
	int (*reset)(struct devmig_client *c);
	int (*dma_map)(struct devmig_client *c, uint64_t iova, uint64_t size, uint32_t prot, int fd,
		       uint64_t fd_offset, void *vaddr);
	int (*dma_unmap)(struct devmig_client *c, uint64_t iova, uint64_t size);
	int (*feature_probe)(struct devmig_client *c, uint32_t index, uint32_t ops);
	int (*mig_caps)(struct devmig_client *c, uint64_t *caps);
	int (*get_state)(struct devmig_client *c, enum devmig_state *state);
	int (*set_state)(struct devmig_client *c, enum devmig_state state);
	ssize_t (*mig_read)(struct devmig_client *c, void *buf, size_t len);
	ssize_t (*mig_read_stream)(struct devmig_client *c, size_t chunk, unsigned depth,
				   uint64_t limit, bool *ended,
				   int (*sink)(void *opaque, const void *data, size_t len),
				   void *opaque);
	int (*mig_write)(struct devmig_client *c, const void *buf, size_t len);
	int (*mig_write_nowait)(struct devmig_client *c, const void *buf, size_t len);
	int (*mig_status)(struct devmig_client *c, uint64_t *bytes_loaded, int *load_error,
			  char *reason, size_t reason_len);
	int (*compat_info)(struct devmig_client *c, struct devmig_compat_info *info);
	int (*precopy_progress)(struct devmig_client *c, struct devmig_precopy_progress *p);
	int (*stop_copy_size)(struct devmig_client *c, uint64_t *bytes);
	int (*data_session)(struct devmig_client *c, struct devmig_data_session *s);
	ssize_t (*data_read)(struct devmig_client *c, void *buf, size_t len);
	ssize_t (*data_write)(struct devmig_client *c, const void *buf, size_t len);
	int (*data_wait)(struct devmig_client *c, int timeout_ms);
	int (*set_state_deadline)(struct devmig_client *c, enum devmig_state state,
				  uint64_t deadline_ns, struct devmig_deadline_result *res);
	int (*arc_estimates)(struct devmig_client *c, struct devmig_feature_arc_estimates *est);
	int (*set_dirty_rate)(struct devmig_client *c, uint64_t cap);
	int (*dirty_rate)(struct devmig_client *c, struct devmig_feature_dirty_rate *dr);
	int (*log_start)(struct devmig_client *c, uint64_t *page_size,
			 const struct devmig_dma_logging_range *ranges, uint32_t n);
	int (*log_stop)(struct devmig_client *c);
	int (*log_report)(struct devmig_client *c, uint64_t iova, uint64_t length,
			  uint64_t page_size, uint64_t *bitmap);
	int (*poll)(struct devmig_client *c);
	ssize_t (*raw)(struct devmig_client *c, const void *msg, size_t len, const int *fds,
		       unsigned nfds, void *reply, size_t cap);
	/* One line about where the device is, for `devmig info`. */
	void (*describe)(struct devmig_client *c, char *buf, size_t len);
	/* The connection was lost; connect again (NULL: the backend has no connection). */
	bool (*broken)(struct devmig_client *c);
	int (*reconnect)(struct devmig_client *c, char *err, size_t errlen);
};

/* Every backend's client starts with this. */
struct devmig_client {
	const struct devmig_client_ops *ops;
};

/* The backends' constructors (devmig_client_open picks one). */
struct devmig_client *devmig_vfio_user_connect(const char *socket_path,
					       const struct devmig_client_config *cfg, char *err,
					       size_t errlen);
struct devmig_client *devmig_kernel_open(const char *spec, const struct devmig_client_config *cfg,
					 char *err, size_t errlen);

#endif /* DEVMIG_LIB_CLIENT_INTERNAL_H */
