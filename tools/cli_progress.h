/* SPDX-License-Identifier: MIT */
/* A migration's progress on stderr: the engine's event callback. */
#ifndef DEVMIG_TOOLS_CLI_PROGRESS_H
#define DEVMIG_TOOLS_CLI_PROGRESS_H

#include <stdbool.h>

#include "devmig/engine.h"

struct cli_progress {
	bool tty;       /* stderr is a terminal: show rounds in place */
	bool verbose;   /* every state change requested, one per line */
	bool line_open; /* a progress line is on the screen */
	char *const *src, *const *dst; /* device paths for --verbose (NULL: unknown) */
	unsigned nsrc, ndst;
};

/* src/dst: the paths of the source and destination devices (either NULL). */
void cli_progress_init(struct cli_progress *p, bool verbose, char *const *src, unsigned nsrc,
		       char *const *dst, unsigned ndst);
/* The devmig_engine_config.event callback; opaque is a struct cli_progress. */
void cli_progress_event(void *opaque, const struct devmig_engine_event *ev);
/* Clear the progress line (before printing a result). */
void cli_progress_end(struct cli_progress *p);

#endif
