/* SPDX-License-Identifier: MIT */
/*
 * Inside the engine: the destination ("peer") the source algorithm talks
 * to, whatever it is, and the destination's own work on its devices.
 */
#ifndef DEVMIG_LIB_ENGINE_INTERNAL_H
#define DEVMIG_LIB_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datamove.h"
#include "devmig/client.h"
#include "devmig/compat.h"
#include "devmig/engine.h"

#define GUEST_PAGE 4096u

void guest_mem_take_dirty(struct devmig_guest_mem *gm, uint64_t *bitmap);
size_t guest_mem_bitmap_words(const struct devmig_guest_mem *gm);

/*
 * The destination as the source algorithm sees it: in this process
 * (direct), across a channel socket, or a checkpoint file. Every call
 * returns 0 or -errno with why filled.
 */
struct peer {
	const struct peer_ops *ops;
	/* Set by run() when RUN was sent and no answer came back. */
	bool run_unanswered;
};

/* What the source says about one of its devices before any state moves. */
struct peer_dev {
	struct devmig_compat_info compat; /* version "": no compat extension */
	struct devmig_pci_identity id;
	bool id_known;                    /* id was read from its config space */
};

struct peer_ops {
	/* Check each destination device accepts src[i] (the compat extension's
	 * version and config fingerprint when both sides have it, else the PCI
	 * identity), then all to RESUMING. */
	int (*hello)(struct peer *p, unsigned n, const struct peer_dev *src,
		     uint64_t guest_size, char *why, size_t wl);
	int (*data)(struct peer *p, unsigned dev, const void *buf, size_t len, char *why, size_t wl);
	/*
	 * Device dev's data from the source's save session on a descriptor, fd
	 * to fd (datamove.h), until its end or temporary end (res->ended).
	 * -EOPNOTSUPP with nothing moved: this destination takes data by ->data
	 * only (a device without a data session on a descriptor). May be NULL.
	 */
	int (*data_from)(struct peer *p, unsigned dev, const struct dm_src *src,
			 struct dm_result *res, char *why, size_t wl);
	int (*mem)(struct peer *p, uint64_t offset, const void *buf, size_t len, char *why,
		   size_t wl);
	int (*initial_done)(struct peer *p, unsigned dev, char *why, size_t wl);
	/* Everything sent so far has been accepted. */
	int (*sync)(struct peer *p, char *why, size_t wl);
	/* Every device RESUMING -> STOP (validate and apply). */
	int (*commit)(struct peer *p, char *why, size_t wl);
	/* Every device to RUNNING_P2P, then every one to RUNNING. */
	int (*run)(struct peer *p, char *why, size_t wl);
	/* Give up: reset the destination devices. Best effort. */
	void (*abort)(struct peer *p, const char *why);
	/* A checkpoint's last frame. */
	int (*end)(struct peer *p, char *why, size_t wl);
};

/* ---- the destination's work on its own devices (direct peer and receiver) ---- */

struct dest {
	struct peer peer;
	const struct devmig_engine_config *cfg;
	struct devmig_client *const *c;
	unsigned n;
	struct devmig_guest_mem *mem;
	uint64_t *caps;
	/* Some destination device may have left its initial state: a failure must
	 * reset every device, whichever step failed (not only while RESUMING). */
	bool touched;
	bool cleaned;    /* dest_cleanup ran: report->dst_state holds where it left each device */
	bool *unanswered; /* per device: a call on it timed out or its connection went */
	int first_error; /* a refused write, reported at the next sync */
	char first_why[256];
	struct devmig_migration_report *report;
};

int dest_init(struct dest *d, const struct devmig_engine_config *cfg,
	      struct devmig_client *const *c, unsigned n, struct devmig_guest_mem *mem,
	      struct devmig_migration_report *report);
void dest_fini(struct dest *d);

/*
 * The destination devices back to a clean state after a failure: reset; if
 * the reset was refused or left a device outside RUNNING (libvfio-user
 * refuses it in STOP and STOP_COPY, keeps RESUMING), walk it to RUNNING and
 * reset again. A broken connection is reconnected first. Records each
 * device's final state in d->report->dst_state.
 */
void dest_cleanup(struct dest *d);

/* A call failed because the device did not answer in time: further
 * questions to it would only wait the timeout again. */
bool engine_unanswered(int rc);

/* The state a device is in now, reconnecting a broken client first; UNKNOWN if unreachable. */
int engine_probe_state(struct devmig_client *c, bool *reconnected);

/* inner, with what it is sent (device data, guest memory) paced to rate bytes/s:
 * a slow link (engine config link_rate). */
struct peer *pace_peer_new(struct peer *inner, uint64_t rate);
void pace_peer_free(struct peer *p);

/* The channel (a transport: socket, TLS or file) as a peer. acks: wait for
 * the receiver's answers. */
struct devmig_transport;
struct peer *chan_peer_new(struct devmig_transport *t, bool acks);
void chan_peer_free(struct peer *p);

/* Send one frame (header, up to two payload parts, CRC) within the deadline. */
int chan_send(struct devmig_transport *t, uint32_t type, uint32_t dev, const void *a,
	      size_t alen, const void *b, size_t blen);

/* The source algorithm: migrate (or save, when checkpoint) to peer. */
int engine_run(const struct devmig_engine_config *cfg, struct devmig_client *const *src,
	       unsigned n, struct devmig_guest_mem *mem, struct peer *peer, bool checkpoint,
	       struct devmig_migration_report *report);

void engine_event(const struct devmig_engine_config *cfg, const struct devmig_engine_event *ev);
uint64_t engine_now_ns(void);
/* cfg->timeout_ms or its default: a device operation's, and a channel frame's. */
unsigned engine_timeout_ms(const struct devmig_engine_config *cfg);

#endif /* DEVMIG_LIB_ENGINE_INTERNAL_H */
