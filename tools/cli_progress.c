/* SPDX-License-Identifier: MIT */
/* A migration's progress on stderr (cli_progress.h). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli_format.h"
#include "cli_progress.h"

void cli_progress_init(struct cli_progress *p, bool verbose, char *const *src, unsigned nsrc,
		       char *const *dst, unsigned ndst)
{
	memset(p, 0, sizeof(*p));
	p->tty = isatty(STDERR_FILENO);
	p->verbose = verbose;
	p->src = src;
	p->nsrc = src ? nsrc : 0;
	p->dst = dst;
	p->ndst = dst ? ndst : 0;
}

void cli_progress_end(struct cli_progress *p)
{
	if (p->line_open)
		fputs("\r\033[K", stderr);
	p->line_open = false;
}

/* " (PATH)" for device dev of that side when its path is known, else "". */
static const char *device_path(const struct cli_progress *p, bool destination, unsigned dev,
			       char *buf, size_t len)
{
	char *const *paths = destination ? p->dst : p->src;
	unsigned np = destination ? p->ndst : p->nsrc;

	buf[0] = '\0';
	if (paths && dev < np)
		snprintf(buf, len, " (%s)", paths[dev]);
	return buf;
}

void cli_progress_event(void *opaque, const struct devmig_engine_event *ev)
{
	struct cli_progress *p = opaque;
	char b1[32], b2[32], b3[32], b4[32], where[320];

	switch (ev->type) {
	case DEVMIG_EV_ARC:
		if (p->verbose) {
			char within[48] = "";
			if (ev->deadline_ns)
				snprintf(within, sizeof(within), " within %s",
					 cli_duration(ev->deadline_ns, b2, sizeof(b2)));
			if (p->line_open) /* keep the progress line, go below it */
				fputc('\n', stderr);
			p->line_open = false;
			fprintf(stderr, "  %s device %u%s: %s -> %s%s\n",
				ev->destination ? "destination" : "source", ev->dev,
				device_path(p, ev->destination, ev->dev, where, sizeof(where)),
				devmig_state_name(ev->from), devmig_state_name(ev->to), within);
		}
		break;
	case DEVMIG_EV_THROTTLE:
		if (!p->tty && !p->verbose)
			break;
		if (p->line_open)
			fputc('\n', stderr);
		p->line_open = false;
		if (ev->cap)
			fprintf(stderr, "  source device %u: dirty rate capped at %s/s (rounds were "
					"not shrinking)\n", ev->dev, cli_bytes((double)ev->cap, b1, sizeof(b1)));
		else
			fprintf(stderr, "  source device %u: dirty-rate cap lifted\n", ev->dev);
		break;
	case DEVMIG_EV_REFUSED:
		/* Always said: the switchover was put off. */
		if (p->line_open)
			fputc('\n', stderr);
		p->line_open = false;
		fprintf(stderr, "  source device %u refused the switchover: it needs about %s, %s "
				"were left of the budget; it runs on, pre-copy goes on\n", ev->dev,
			cli_duration(ev->estimate_ns, b1, sizeof(b1)),
			cli_duration(ev->deadline_ns, b2, sizeof(b2)));
		break;
	case DEVMIG_EV_ROUND:
		if (!p->tty)
			break;
		if (ev->rate > 0)
			cli_duration((uint64_t)(ev->remaining / ev->rate * 1e9), b3, sizeof(b3));
		else
			snprintf(b3, sizeof(b3), "unknown");
		fprintf(stderr, "\r\033[Kpre-copy round %u: %s moved, %s/s, %s still to move (~%s)",
			ev->round, cli_bytes((double)ev->bytes, b1, sizeof(b1)),
			cli_bytes(ev->rate, b2, sizeof(b2)),
			cli_bytes((double)ev->remaining, b4, sizeof(b4)), b3);
		p->line_open = true;
		break;
	case DEVMIG_EV_SWITCHOVER:
		if (!p->tty)
			break;
		fprintf(stderr, "\r\033[Kswitchover after %u round%s: devices stopped, copying "
				"the last %s",
			ev->round, ev->round == 1 ? "" : "s",
			cli_bytes((double)ev->remaining, b1, sizeof(b1)));
		p->line_open = true;
		break;
	case DEVMIG_EV_DONE:
	case DEVMIG_EV_UNWIND:
		cli_progress_end(p);
		break;
	case DEVMIG_EV_RECOVER: {
		/* Always said: the operator should know what an earlier failure left. */
		char *const *paths = ev->destination ? p->dst : p->src;
		unsigned np = ev->destination ? p->ndst : p->nsrc;
		cli_progress_end(p);
		fprintf(stderr, "devmig: found %s%s%s\n", ev->why, paths && ev->dev < np ? " at " : "",
			paths && ev->dev < np ? paths[ev->dev] : "");
		break;
	}
	}
	fflush(stderr);
}
