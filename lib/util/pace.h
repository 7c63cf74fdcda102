/* SPDX-License-Identifier: MIT */
/*
 * Pacing and rate measurement, pure (the caller passes the time in ns):
 * used by the device core (a device's dirty-rate cap, its transfer rate)
 * and the engine (a link rate cap).
 */
#ifndef DEVMIG_LIB_PACE_H
#define DEVMIG_LIB_PACE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A rate limit as GCRA (the generic cell rate algorithm: a token bucket
 * kept as one number, the time the next byte is due). A sender may run
 * burst_ns ahead of the rate; beyond that it waits.
 */
struct devmig_pace {
	uint64_t rate;     /* bytes/s; 0: unlimited */
	uint64_t burst_ns;
	uint64_t tat;      /* when the bytes charged so far are due at the rate */
};

void devmig_pace_init(struct devmig_pace *p, uint64_t rate, uint64_t burst_ns);
/* Charge len bytes at now: the ns to wait until they are within the rate (0: none). */
uint64_t devmig_pace_charge(struct devmig_pace *p, uint64_t now, uint64_t len);

/*
 * The rate a stream is consumed at, from the times of successive reads. A
 * read that returned all it was asked means the reader comes back for
 * more, so the time until its next read is time spent moving those bytes;
 * after a short read (nothing more for now) the reader had no reason to
 * hurry, and that gap is not counted. Recent reads weigh most: past
 * XFER_WINDOW_NS of counted time, the totals are halved.
 */
struct devmig_xfer_meter {
	uint64_t t_prev, prev_bytes;
	bool prev_full;
	uint64_t bytes, ns;  /* counted so far */
};

void devmig_xfer_meter_reset(struct devmig_xfer_meter *m);
void devmig_xfer_meter_read(struct devmig_xfer_meter *m, uint64_t now, uint64_t asked,
			    uint64_t got);
/* bytes/s; 0 until a full read was followed by another read. */
uint64_t devmig_xfer_meter_rate(const struct devmig_xfer_meter *m);

/*
 * The rate a running total grows at (bytes/s): each sample at least
 * CHANGE_WINDOW_NS after the previous one gives the rate over that span;
 * a sample sooner returns the last rate.
 */
struct devmig_change_meter {
	uint64_t t0, total0, rate;
	bool started;
};

void devmig_change_meter_reset(struct devmig_change_meter *m, uint64_t now, uint64_t total);
uint64_t devmig_change_meter_sample(struct devmig_change_meter *m, uint64_t now, uint64_t total);

#define DEVMIG_XFER_WINDOW_NS (2ull * 1000 * 1000 * 1000)
#define DEVMIG_CHANGE_WINDOW_NS (200ull * 1000 * 1000)

/* a * b / c without overflow for any a, b (c > 0); saturates at UINT64_MAX. */
uint64_t devmig_muldiv(uint64_t a, uint64_t b, uint64_t c);

#endif /* DEVMIG_LIB_PACE_H */
