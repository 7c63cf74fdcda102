/* SPDX-License-Identifier: MIT */
/* Option values read, and values written for people or as JSON (cli_format.h). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli_format.h"

bool cli_no_more_args(const char *cmd, int argc, char **argv)
{
	if (optind >= argc)
		return true;
	fprintf(stderr, "devmig %s: unexpected argument '%s'\n", cmd, argv[optind]);
	return false;
}

static bool parse_base(const char *s, int base, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	return parse_base(s, 10, min, max, out);
}

bool cli_parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	return parse_base(s, 0, min, max, out);
}

bool cli_parse_timeout(const char *cmd, const char *arg, unsigned *seconds)
{
	uint64_t v;

	if (!cli_parse_u64(arg, 1, 86400, &v)) {
		fprintf(stderr, "devmig %s: --timeout takes seconds, 1 to 86400, not '%s'\n", cmd,
			arg);
		return false;
	}
	*seconds = (unsigned)v;
	return true;
}

const char *cli_bytes(double bytes, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;

	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", bytes);
	else
		snprintf(buf, len, "%.2f %s", bytes, unit[u]);
	return buf;
}

const char *cli_duration(uint64_t ns, char *buf, size_t len)
{
	if (ns < 1000000000ull)
		snprintf(buf, len, "%.3f ms", ns / 1e6);
	else if (ns < 120000000000ull)
		snprintf(buf, len, "%.2f s", ns / 1e9);
	else
		snprintf(buf, len, "%llu min %llu s", (unsigned long long)(ns / 60000000000ull),
			 (unsigned long long)(ns / 1000000000ull % 60));
	return buf;
}

void cli_print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(stdout);
	json_object_put(o);
}
