/* SPDX-License-Identifier: MIT */
/*
 * SIGINT/SIGTERM during a migration: the first one makes the switchover
 * refuse (the engine then puts the source devices back to RUNNING), the
 * second one kills the process. (SIGPIPE is ignored by main for every
 * command: a peer that goes away is an error reply, not a silent death.)
 */
#ifndef DEVMIG_TOOLS_CLI_SIGNALS_H
#define DEVMIG_TOOLS_CLI_SIGNALS_H

#include <stdbool.h>

void cli_catch_interrupts(void);
bool cli_interrupted(void);
/* The engine config's pause_guest callback: refuses once interrupted. */
int cli_pause_guest(void *opaque);

#endif
