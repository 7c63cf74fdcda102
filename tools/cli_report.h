/* SPDX-License-Identifier: MIT */
/* A migration's outcome as the commands tell it: the error line, the states
 * devices were left in, the report as JSON. */
#ifndef DEVMIG_TOOLS_CLI_REPORT_H
#define DEVMIG_TOOLS_CLI_REPORT_H

#include <json-c/json.h>
#include <stdbool.h>

#include "devmig/engine.h"

/* "RUNNING", ..., or "unknown" for DEVMIG_STATE_UNKNOWN. */
const char *cli_state_name(int state);

/*
 * The engine's error with each "source device N" / "destination device N"
 * followed by its path when known (src/dst may be NULL), printed as one
 * line: "devmig CMD: <error>".
 */
void cli_print_error(const char *cmd, const char *error, char *const *src, unsigned nsrc,
		     char *const *dst, unsigned ndst);
/*
 * After a failure: append to r->error the state each device was left in,
 * "; left: source device 0 RUNNING, destination device 0 RUNNING" (nsrc
 * source and ndst destination devices of r; "unknown" when unreachable).
 */
void cli_note_states(struct devmig_migration_report *r, unsigned nsrc, unsigned ndst);
/* A timed-out step shows as ETIMEDOUT or EAGAIN: say so in r->error (rc: the
 * engine's result; seconds: --timeout). */
void cli_note_timeout(struct devmig_migration_report *r, int rc, unsigned seconds);

/* The report's fields as a JSON object (ok, error, the numbers, and
 * source_states / destination_states: nsrc and ndst names). */
json_object *cli_report_json(const struct devmig_migration_report *r, bool ok, unsigned nsrc,
			     unsigned ndst);

#endif
