/* SPDX-License-Identifier: MIT */
/* Option values read, and values written for people or as JSON. */
#ifndef DEVMIG_TOOLS_CLI_FORMAT_H
#define DEVMIG_TOOLS_CLI_FORMAT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nothing left after the options (optind); false (said) otherwise. */
bool cli_no_more_args(const char *cmd, int argc, char **argv);

/* A whole decimal number within [min, max]. */
bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* The same, decimal or 0x-prefixed hex. */
bool cli_parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* --timeout SEC: 1 to 86400 seconds; false (said as CMD's usage error) otherwise. */
bool cli_parse_timeout(const char *cmd, const char *arg, unsigned *seconds);

/* "1.50 MiB", "48 B". */
const char *cli_bytes(double bytes, char *buf, size_t len);
/* "0.912 ms", "2.10 s", "3 min 5 s". */
const char *cli_duration(uint64_t ns, char *buf, size_t len);

/* Pretty-print o on stdout and drop it. */
void cli_print_json(json_object *o);

#endif
