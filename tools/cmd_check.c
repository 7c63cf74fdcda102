/* SPDX-License-Identifier: MIT */
/* devmig check: the migration conformance checker (devmig/check.h) on one or two devices. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_devices.h"
#include "cli_format.h"
#include "devmig/check.h"

#define MAX_WRITES 32u
#define MAX_IGNORE 32u
#define DEFAULT_TIMEOUT_S 10u

static void check_usage(FILE *f)
{
	fprintf(f,
		"usage: devmig check (--socket A | --vfio A) [--socket B | --vfio B] [--json] [--seed N]\n"
		"                    [--write REGION:OFFSET=VALUE[/WIDTH]]... [--ignore REGION:OFFSET+LENGTH]...\n"
		"                    [--only LIST] [--timeout S] [--step-timeout S] [--max-stream BYTES]\n"
		"                    [--compare-limit BYTES]\n"
		"\n"
		"Check a device's migration driver against migration protocol v2: capabilities,\n"
		"every (current, requested) state pair against the next-hop table, refused\n"
		"requests leaving the state unchanged, reset from every state, a save loaded\n"
		"with random segmentation and the registers compared, truncated and corrupted\n"
		"streams refused with nothing applied, PRE_COPY progress, the STOP_COPY size\n"
		"estimate, migration data in the wrong state, DMA logging ranges. One line per\n"
		"check: ok, FAIL or skip (the device lacks what it needs), with the evidence;\n"
		"then 'N passed, M failed, K skipped'. Exit status 0 only if none failed.\n"
		"The devices are changed (reset, loaded) and left RUNNING after a reset.\n"
		"\n"
		"  --socket A [--socket B]  the device, and a second fresh instance of the same\n"
		"                           device for the round trips (without B: A itself,\n"
		"                           after a reset)\n"
		"  --vfio A [--vfio B]      the same with kernel VFIO devices (a PCI address, an\n"
		"                           mdev UUID, a sysfs path, /dev/vfio/devices/vfioN)\n"
		"  --json                   the same results as JSON\n"
		"  --seed N                 the random segmentation and corruption points\n"
		"                           (default: from the clock; printed)\n"
		"  --write R:OFF=VAL[/W]    a register write giving the source state before each\n"
		"                           save, so that loads and refusals show in the registers;\n"
		"                           R is bar0..bar5, rom, config or an index; W 1, 2, 4 (default) or 8\n"
		"  --ignore R:OFF+LEN       leave bytes out of every comparison (free-running registers)\n"
		"  --only LIST              run only checks whose names start with one of LIST\n"
		"                           (comma-separated, e.g. fsm,load)\n"
		"  --timeout S              the longest one call may wait for the device (default %u)\n"
		"  --step-timeout S         the longest one check may take (default 60)\n"
		"  --max-stream BYTES       a longer stream fails (default 1 GiB)\n"
		"  --compare-limit BYTES    bytes compared per region (default 65536)\n",
		DEFAULT_TIMEOUT_S);
}

static bool parse_num(const char *s, uint64_t *out, char **end)
{
	if (!s || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, end, 0);
	if (errno)
		return false;
	*out = v;
	return true;
}

/* "bar0", "config", "7" ... up to the ':'. */
static bool parse_region(const char **s, uint32_t *region)
{
	static const struct {
		const char *name;
		uint32_t index;
	} names[] = {
		{ "bar0", 0 }, { "bar1", 1 }, { "bar2", 2 }, { "bar3", 3 }, { "bar4", 4 },
		{ "bar5", 5 }, { "rom", 6 }, { "config", 7 }, { "vga", 8 },
	};
	const char *colon = strchr(*s, ':');
	if (!colon)
		return false;
	size_t n = (size_t)(colon - *s);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == n && !strncasecmp(*s, names[i].name, n)) {
			*region = names[i].index;
			*s = colon + 1;
			return true;
		}
	}
	char *end;
	uint64_t v;
	if (!parse_num(*s, &v, &end) || end != colon || v > 255)
		return false;
	*region = (uint32_t)v;
	*s = colon + 1;
	return true;
}

static bool parse_write(const char *arg, struct devmig_check_write *w)
{
	const char *s = arg;
	char *end;
	uint64_t v;

	w->width = 4;
	if (!parse_region(&s, &w->region) || !parse_num(s, &w->offset, &end) || *end != '=')
		return false;
	if (!parse_num(end + 1, &w->value, &end))
		return false;
	if (*end == '/') {
		if (!parse_num(end + 1, &v, &end) || (v != 1 && v != 2 && v != 4 && v != 8))
			return false;
		w->width = (uint32_t)v;
	}
	if (*end)
		return false;
	return w->width == 8 || w->value < (1ull << (8 * w->width));
}

static bool parse_ignore(const char *arg, struct devmig_check_range *r)
{
	const char *s = arg;
	char *end;

	if (!parse_region(&s, &r->region) || !parse_num(s, &r->offset, &end) || *end != '+')
		return false;
	return parse_num(end + 1, &r->length, &end) && !*end && r->length;
}

struct out {
	bool json;
	json_object *checks;
};

static void print_result(void *opaque, const struct devmig_check_result *r)
{
	struct out *o = opaque;

	if (o->json) {
		json_object *c = json_object_new_object();
		json_object_object_add(c, "name", json_object_new_string(r->name));
		json_object_object_add(c, "result",
				       json_object_new_string(r->status == DEVMIG_CHECK_PASS ? "ok"
							      : r->status == DEVMIG_CHECK_FAIL ? "fail"
											   : "skip"));
		json_object_object_add(c, "evidence", json_object_new_string(r->evidence));
		json_object_array_add(o->checks, c);
		return;
	}
	if (r->status == DEVMIG_CHECK_SKIP)
		printf("skip %-24s - %s\n", r->name, r->evidence);
	else
		printf("%-4s %-24s %s\n", devmig_check_status_name(r->status), r->name, r->evidence);
	fflush(stdout);
}

static bool parse_seconds(const char *s, unsigned *out)
{
	uint64_t v;
	if (!cli_parse_u64(s, 1, 3600, &v))
		return false;
	*out = (unsigned)v;
	return true;
}

/* What the command line asked for. */
struct check_opts {
	char *paths[2];
	unsigned npaths, timeout_s, step_s;
	struct devmig_check_write writes[MAX_WRITES];
	struct devmig_check_range ignore[MAX_IGNORE];
	struct devmig_check_config cfg;
	bool json;
};

/* 0 to run, -1 after --help, else the exit status of a usage error (said). */
static int check_parse(int argc, char **argv, struct check_opts *co)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "vfio", required_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'j' },
		{ "seed", required_argument, NULL, 'S' },
		{ "write", required_argument, NULL, 'w' },
		{ "ignore", required_argument, NULL, 'i' },
		{ "only", required_argument, NULL, 'o' },
		{ "timeout", required_argument, NULL, 't' },
		{ "step-timeout", required_argument, NULL, 'T' },
		{ "max-stream", required_argument, NULL, 'm' },
		{ "compare-limit", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct devmig_check_config *cfg = &co->cfg;
	bool have_seed = false;
	uint64_t v;
	int o;

	memset(co, 0, sizeof(*co));
	co->timeout_s = DEFAULT_TIMEOUT_S;
	co->step_s = 60;

	while ((o = getopt_long(argc, argv, "s:V:jh", opts, NULL)) != -1) {
		switch (o) {
		case 's':
		case 'V':
			if (co->npaths == 2) {
				fprintf(stderr, "devmig check: at most two devices (A and B)\n");
				return 2;
			}
			co->paths[co->npaths] = o == 'V' ? (char *)cli_vfio_arg("check", optarg)
							 : optarg;
			if (!co->paths[co->npaths++])
				return 2;
			break;
		case 'j': co->json = true; break;
		case 'S':
			if (!cli_parse_u64(optarg, 0, UINT64_MAX, &cfg->seed)) {
				fprintf(stderr, "devmig check: --seed takes a decimal number\n");
				return 2;
			}
			have_seed = true;
			break;
		case 'w':
			if (cfg->nwrites == MAX_WRITES || !parse_write(optarg, &co->writes[cfg->nwrites])) {
				fprintf(stderr, "devmig check: --write %s: want REGION:OFFSET=VALUE[/WIDTH] "
						"(e.g. bar0:0x8=0x1234/4), at most %u\n", optarg, MAX_WRITES);
				return 2;
			}
			cfg->nwrites++;
			break;
		case 'i':
			if (cfg->nignore == MAX_IGNORE || !parse_ignore(optarg, &co->ignore[cfg->nignore])) {
				fprintf(stderr, "devmig check: --ignore %s: want REGION:OFFSET+LENGTH "
						"(e.g. bar0:0x40+8), at most %u\n", optarg, MAX_IGNORE);
				return 2;
			}
			cfg->nignore++;
			break;
		case 'o': cfg->only = optarg; break;
		case 't':
			if (!parse_seconds(optarg, &co->timeout_s)) {
				fprintf(stderr, "devmig check: --timeout takes 1..3600 seconds\n");
				return 2;
			}
			break;
		case 'T':
			if (!parse_seconds(optarg, &co->step_s)) {
				fprintf(stderr, "devmig check: --step-timeout takes 1..3600 seconds\n");
				return 2;
			}
			break;
		case 'm':
			if (!cli_parse_u64(optarg, 1, UINT64_MAX, &cfg->max_stream_bytes)) {
				fprintf(stderr, "devmig check: --max-stream takes a number of bytes\n");
				return 2;
			}
			break;
		case 'c':
			if (!cli_parse_u64(optarg, 1, 1ull << 30, &v)) {
				fprintf(stderr, "devmig check: --compare-limit takes 1..1073741824 bytes\n");
				return 2;
			}
			cfg->compare_limit = v;
			break;
		case 'h': check_usage(stdout); return -1;
		default: return 2;
		}
	}
	if (!cli_no_more_args("check", argc, argv))
		return 2;
	if (!co->npaths) {
		fprintf(stderr, "devmig check: --socket or --vfio is required (devmig check --help)\n");
		return 2;
	}
	if (!cli_distinct_paths("check", co->paths, co->npaths, NULL, 0))
		return 2;
	if (!have_seed) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		cfg->seed = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
			    ((uint64_t)getpid() << 32);
	}
	cfg->writes = co->writes;
	cfg->ignore = co->ignore;
	cfg->step_timeout_ms = co->step_s * 1000;
	return 0;
}

/*
 * Open the devices and run every check, each result printed as it comes
 * (out). 0 with sum filled, or 1 (said) when the checker could not run.
 */
static int check_run(struct check_opts *co, struct out *out, struct devmig_check_summary *sum)
{
	struct devmig_client **c = cli_connect_all("check", co->paths, co->npaths, co->timeout_s);

	if (!c)
		return 1;
	co->cfg.result = print_result;
	co->cfg.opaque = out;
	out->json = co->json;
	if (out->json)
		out->checks = json_object_new_array();
	else
		printf("devmig check: A %s, B %s, seed %" PRIu64 "\n", co->paths[0],
		       co->npaths > 1 ? co->paths[1] : "(none: round trips into A)", co->cfg.seed);
	int rc = devmig_check_run(c[0], co->npaths > 1 ? c[1] : NULL, &co->cfg, sum);
	cli_close_all(c, co->npaths);
	if (rc) {
		fprintf(stderr, "devmig check: %s\n", strerror(-rc));
		json_object_put(out->checks);
		return 1;
	}
	return 0;
}

static void check_print(const struct check_opts *co, struct out *out,
			const struct devmig_check_summary *sum)
{
	if (!co->json) {
		printf("%u passed, %u failed, %u skipped\n", sum->passed, sum->failed, sum->skipped);
		return;
	}
	json_object *j = json_object_new_object();
	json_object_object_add(j, "a", json_object_new_string(co->paths[0]));
	json_object_object_add(j, "b", co->npaths > 1 ? json_object_new_string(co->paths[1]) : NULL);
	json_object_object_add(j, "seed", json_object_new_uint64(co->cfg.seed));
	json_object_object_add(j, "checks", out->checks);
	json_object_object_add(j, "passed", json_object_new_int((int)sum->passed));
	json_object_object_add(j, "failed", json_object_new_int((int)sum->failed));
	json_object_object_add(j, "skipped", json_object_new_int((int)sum->skipped));
	cli_print_json(j);
}

int devmig_cmd_check(int argc, char **argv)
{
	struct check_opts co;
	struct out out = { 0 };
	struct devmig_check_summary sum;
	int rc = check_parse(argc, argv, &co);

	if (rc)
		return rc < 0 ? 0 : rc;
	rc = check_run(&co, &out, &sum);
	if (rc)
		return rc;
	check_print(&co, &out, &sum);
	return sum.failed ? 1 : 0;
}
