/* SPDX-License-Identifier: MIT */
/*
 * The client API: opening a device by address, and every call dispatched
 * to the backend's ops table (client_internal.h). An op a backend lacks
 * fails with -EOPNOTSUPP, here, the same way for every call.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client_internal.h"

#define OP(c, op, ...) ((c)->ops->op ? (c)->ops->op((c), __VA_ARGS__) : -EOPNOTSUPP)

/* Callers (the engine among them) test for -ENOTSUP: one value on Linux. */
_Static_assert(ENOTSUP == EOPNOTSUPP, "ENOTSUP and EOPNOTSUPP differ");

bool devmig_addr_is_vfio(const char *addr)
{
	return addr && !strncmp(addr, DEVMIG_VFIO_PREFIX, strlen(DEVMIG_VFIO_PREFIX));
}

struct devmig_client *devmig_client_connect(const char *socket_path,
					    const struct devmig_client_config *cfg, char *err,
					    size_t errlen)
{
	return devmig_vfio_user_connect(socket_path, cfg, err, errlen);
}

struct devmig_client *devmig_client_open_vfio(const char *spec,
					      const struct devmig_client_config *cfg, char *err,
					      size_t errlen)
{
	return devmig_kernel_open(spec, cfg, err, errlen);
}

struct devmig_client *devmig_client_open(const char *addr, const struct devmig_client_config *cfg,
					 char *err, size_t errlen)
{
	if (!addr || !*addr) {
		snprintf(err, errlen, "no device address given");
		return NULL;
	}
	if (devmig_addr_is_vfio(addr))
		return devmig_kernel_open(addr + strlen(DEVMIG_VFIO_PREFIX), cfg, err, errlen);
	return devmig_vfio_user_connect(addr, cfg, err, errlen);
}

void devmig_client_close(struct devmig_client *c)
{
	if (c)
		c->ops->close(c);
}

const char *devmig_client_backend(struct devmig_client *c)
{
	return c->ops->name;
}

void devmig_client_describe(struct devmig_client *c, char *buf, size_t len)
{
	if (c->ops->describe)
		c->ops->describe(c, buf, len);
	else
		snprintf(buf, len, "%s", c->ops->name);
}

void devmig_client_server_caps(struct devmig_client *c, struct devmig_caps *caps)
{
	if (c->ops->server_caps)
		c->ops->server_caps(c, caps);
	else
		devmig_caps_default(caps);
}

bool devmig_client_has_ext(struct devmig_client *c, uint32_t ext)
{
	return c->ops->has_ext && c->ops->has_ext(c, ext);
}

bool devmig_client_broken(struct devmig_client *c)
{
	return c->ops->broken && c->ops->broken(c);
}

int devmig_client_reconnect(struct devmig_client *c, char *err, size_t errlen)
{
	if (!c->ops->reconnect) {
		snprintf(err, errlen, "a %s device has no connection to make again", c->ops->name);
		return -EOPNOTSUPP;
	}
	return c->ops->reconnect(c, err, errlen);
}

#define PCI_CONFIG_REGION 7u /* VFIO_PCI_CONFIG_REGION_INDEX, in both backends */

int devmig_client_pci_identity(struct devmig_client *c, struct devmig_pci_identity *id)
{
	uint8_t cfg[0x30];
	int rc = devmig_client_region_read(c, PCI_CONFIG_REGION, 0, cfg, sizeof(cfg));
	if (rc)
		return rc;
	/* All ones: no function answers there (as a PCI bus says). */
	if (cfg[0] == 0xff && cfg[1] == 0xff)
		return -ENODEV;
	devmig_pci_identity_parse(cfg, id);
	return 0;
}

int devmig_client_fd(struct devmig_client *c)
{
	return c->ops->fd ? c->ops->fd(c) : -1;
}

int devmig_client_device_info(struct devmig_client *c, struct devmig_device_info *info)
{
	return OP(c, device_info, info);
}

int devmig_client_region_info(struct devmig_client *c, uint32_t index,
			      struct devmig_region_info *info, int *fd,
			      struct devmig_sparse_mmap_area *areas, unsigned *nareas)
{
	return OP(c, region_info, index, info, fd, areas, nareas);
}

int devmig_client_irq_info(struct devmig_client *c, uint32_t index, struct devmig_irq_info *info)
{
	return OP(c, irq_info, index, info);
}

int devmig_client_set_irqs(struct devmig_client *c, uint32_t index, uint32_t flags,
			   uint32_t start, uint32_t count, const int *fds)
{
	return OP(c, set_irqs, index, flags, start, count, fds);
}

int devmig_client_set_irqs_bool(struct devmig_client *c, uint32_t index, uint32_t action,
				uint32_t start, uint32_t count, const uint8_t *bools)
{
	return OP(c, set_irqs_bool, index, action, start, count, bools);
}

int devmig_client_region_read(struct devmig_client *c, uint32_t region, uint64_t offset,
			      void *buf, size_t len)
{
	return OP(c, region_read, region, offset, buf, len);
}

int devmig_client_region_write(struct devmig_client *c, uint32_t region, uint64_t offset,
			       const void *buf, size_t len)
{
	return OP(c, region_write, region, offset, buf, len);
}

int devmig_client_reset(struct devmig_client *c)
{
	return c->ops->reset ? c->ops->reset(c) : -EOPNOTSUPP;
}

int devmig_client_dma_map(struct devmig_client *c, uint64_t iova, uint64_t size, uint32_t prot,
			  int fd, uint64_t fd_offset, void *vaddr)
{
	return OP(c, dma_map, iova, size, prot, fd, fd_offset, vaddr);
}

int devmig_client_dma_unmap(struct devmig_client *c, uint64_t iova, uint64_t size)
{
	return OP(c, dma_unmap, iova, size);
}

int devmig_client_feature_probe(struct devmig_client *c, uint32_t index, uint32_t ops)
{
	return OP(c, feature_probe, index, ops);
}

int devmig_client_mig_caps(struct devmig_client *c, uint64_t *caps)
{
	return OP(c, mig_caps, caps);
}

int devmig_client_get_state(struct devmig_client *c, enum devmig_state *state)
{
	return OP(c, get_state, state);
}

int devmig_client_set_state(struct devmig_client *c, enum devmig_state state)
{
	return OP(c, set_state, state);
}

ssize_t devmig_client_mig_read(struct devmig_client *c, void *buf, size_t len)
{
	return OP(c, mig_read, buf, len);
}

ssize_t devmig_client_mig_read_stream(struct devmig_client *c, size_t chunk, unsigned depth,
				      uint64_t limit, bool *ended,
				      int (*sink)(void *opaque, const void *data, size_t len),
				      void *opaque)
{
	return OP(c, mig_read_stream, chunk, depth, limit, ended, sink, opaque);
}

int devmig_client_mig_write(struct devmig_client *c, const void *buf, size_t len)
{
	return OP(c, mig_write, buf, len);
}

int devmig_client_mig_write_nowait(struct devmig_client *c, const void *buf, size_t len)
{
	return OP(c, mig_write_nowait, buf, len);
}

int devmig_client_mig_status(struct devmig_client *c, uint64_t *bytes_loaded, int *load_error,
			     char *reason, size_t reason_len)
{
	return OP(c, mig_status, bytes_loaded, load_error, reason, reason_len);
}

int devmig_client_compat_info(struct devmig_client *c, struct devmig_compat_info *info)
{
	return OP(c, compat_info, info);
}

int devmig_client_precopy_progress(struct devmig_client *c, struct devmig_precopy_progress *p)
{
	return OP(c, precopy_progress, p);
}

int devmig_client_precopy_info(struct devmig_client *c, uint64_t *initial, uint64_t *dirty)
{
	struct devmig_precopy_progress p;
	int rc = devmig_client_precopy_progress(c, &p);
	if (!rc) {
		*initial = p.initial_bytes;
		*dirty = p.dirty_bytes;
	}
	return rc;
}

int devmig_client_stop_copy_size(struct devmig_client *c, uint64_t *bytes)
{
	return OP(c, stop_copy_size, bytes);
}

int devmig_client_data_session(struct devmig_client *c, struct devmig_data_session *s)
{
	return OP(c, data_session, s);
}

ssize_t devmig_client_data_read(struct devmig_client *c, void *buf, size_t len)
{
	return OP(c, data_read, buf, len);
}

ssize_t devmig_client_data_write(struct devmig_client *c, const void *buf, size_t len)
{
	return OP(c, data_write, buf, len);
}

int devmig_client_data_wait(struct devmig_client *c, int timeout_ms)
{
	return OP(c, data_wait, timeout_ms);
}

int devmig_client_set_state_deadline(struct devmig_client *c, enum devmig_state state,
				     uint64_t deadline_ns, struct devmig_deadline_result *res)
{
	return OP(c, set_state_deadline, state, deadline_ns, res);
}

int devmig_client_arc_estimates(struct devmig_client *c, struct devmig_feature_arc_estimates *est)
{
	return OP(c, arc_estimates, est);
}

int devmig_client_set_dirty_rate(struct devmig_client *c, uint64_t cap)
{
	return OP(c, set_dirty_rate, cap);
}

int devmig_client_dirty_rate(struct devmig_client *c, struct devmig_feature_dirty_rate *dr)
{
	return OP(c, dirty_rate, dr);
}

int devmig_client_log_start(struct devmig_client *c, uint64_t *page_size,
			    const struct devmig_dma_logging_range *ranges, uint32_t n)
{
	return OP(c, log_start, page_size, ranges, n);
}

int devmig_client_log_stop(struct devmig_client *c)
{
	return c->ops->log_stop ? c->ops->log_stop(c) : -EOPNOTSUPP;
}

int devmig_client_log_report(struct devmig_client *c, uint64_t iova, uint64_t length,
			     uint64_t page_size, uint64_t *bitmap)
{
	return OP(c, log_report, iova, length, page_size, bitmap);
}

int devmig_client_poll(struct devmig_client *c)
{
	/* Nothing to answer is not an error: a kernel device sends no commands. */
	return c->ops->poll ? c->ops->poll(c) : 0;
}

ssize_t devmig_client_raw(struct devmig_client *c, const void *msg, size_t len, const int *fds,
			  unsigned nfds, void *reply, size_t cap)
{
	return OP(c, raw, msg, len, fds, nfds, reply, cap);
}
