/* SPDX-License-Identifier: MIT */
/* Pacing and rate measurement (pace.h). */
#include <string.h>

#include "pace.h"

#define NS 1000000000ull

uint64_t devmig_muldiv(uint64_t a, uint64_t b, uint64_t c)
{
	unsigned __int128 r = (unsigned __int128)a * b / c;
	return r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
}

void devmig_pace_init(struct devmig_pace *p, uint64_t rate, uint64_t burst_ns)
{
	p->rate = rate;
	p->burst_ns = burst_ns;
	p->tat = 0;
}

uint64_t devmig_pace_charge(struct devmig_pace *p, uint64_t now, uint64_t len)
{
	if (!p->rate)
		return 0;
	/* Idle time earns no credit beyond the burst. */
	if (p->tat < now)
		p->tat = now;
	uint64_t cost = devmig_muldiv(len, NS, p->rate);
	p->tat = cost > UINT64_MAX - p->tat ? UINT64_MAX : p->tat + cost;
	uint64_t ahead = p->tat - now;
	return ahead > p->burst_ns ? ahead - p->burst_ns : 0;
}

void devmig_xfer_meter_reset(struct devmig_xfer_meter *m)
{
	memset(m, 0, sizeof(*m));
}

void devmig_xfer_meter_read(struct devmig_xfer_meter *m, uint64_t now, uint64_t asked,
			    uint64_t got)
{
	if (m->prev_full && now > m->t_prev) {
		m->bytes += m->prev_bytes;
		m->ns += now - m->t_prev;
		if (m->ns > DEVMIG_XFER_WINDOW_NS) {
			m->bytes /= 2;
			m->ns /= 2;
		}
	}
	m->t_prev = now;
	m->prev_bytes = got;
	m->prev_full = got && got == asked;
}

uint64_t devmig_xfer_meter_rate(const struct devmig_xfer_meter *m)
{
	return m->ns ? devmig_muldiv(m->bytes, NS, m->ns) : 0;
}

void devmig_change_meter_reset(struct devmig_change_meter *m, uint64_t now, uint64_t total)
{
	m->t0 = now;
	m->total0 = total;
	m->rate = 0;
	m->started = true;
}

uint64_t devmig_change_meter_sample(struct devmig_change_meter *m, uint64_t now, uint64_t total)
{
	if (!m->started || total < m->total0 || now < m->t0) {
		devmig_change_meter_reset(m, now, total);
		return 0;
	}
	if (now - m->t0 >= DEVMIG_CHANGE_WINDOW_NS) {
		m->rate = devmig_muldiv(total - m->total0, NS, now - m->t0);
		m->t0 = now;
		m->total0 = total;
	}
	return m->rate;
}
