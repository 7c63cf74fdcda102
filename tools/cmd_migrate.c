/* SPDX-License-Identifier: MIT */
/* devmig migrate: live-migrate devices to local servers or to a `devmig receive`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_devices.h"
#include "cli_format.h"
#include "cli_progress.h"
#include "cli_report.h"
#include "cli_secure.h"
#include "cli_signals.h"

#define CONNECT_TIMEOUT_MS 10000

static void migrate_usage(FILE *f)
{
	fprintf(f,
		"usage: devmig migrate (--socket SRC | --vfio SRC) [...]\n"
		"                      (--to tcp://HOST:PORT | --to unix:PATH |\n"
		"                       (--to-socket DST | --to-vfio DST) [...])\n"
		"                      [--psk FILE | --cert FILE --key FILE --ca FILE | --insecure]\n"
		"                      [--peer-name NAME] [--handshake-timeout SEC]\n"
		"                      [--downtime MS [--no-throttle]] [--max-rounds N]\n"
		"                      [--no-precopy | --precopy-all]\n"
		"                      [--timeout SEC]\n"
		"                      [--json] [--verbose]\n"
		"\n"
		"Live-migrate the source devices. This moves device state\n"
		"only: there is no guest here, so no guest memory is copied and devices that\n"
		"DMA into a guest's memory must have it moved by their VMM.\n"
		"\n"
		"  --socket SRC       a source device's vfio-user socket (repeat for several;\n"
		"                     they stop and switch over together)\n"
		"  --vfio SRC         a source kernel VFIO device: a PCI address (0000:01:00.0),\n"
		"                     an mdev UUID or /sys/bus/mdev/devices/UUID, a sysfs path,\n"
		"                     or /dev/vfio/devices/vfioN (iommufd:SRC forces the cdev)\n"
		"  --to tcp://HOST:PORT, --to unix:PATH\n"
		"                     send to a 'devmig receive' listening there (another host)\n"
		"  --to-socket DST    a local destination device's socket, one per source, in\n"
		"                     the same order\n"
		"  --to-vfio DST      a local destination kernel VFIO device, likewise\n"
		"With --to tcp:// the channel is TLS 1.3, both sides authenticated (or plain with\n"
		"an explicit --insecure):\n"
		CLI_SECURE_USAGE
		"  --downtime MS      the longest pause allowed: the pre-copy rounds aim for it,\n"
		"                     and devices with devmig's deadline extension are given\n"
		"                     it as deadlines at the switchover: one that cannot make\n"
		"                     it refuses, the devices run on, pre-copy goes on and the\n"
		"                     switchover is tried again (a few times; then the\n"
		"                     migration is abandoned, the source running). Rounds that\n"
		"                     stop shrinking cap the dirty rate of devices with the\n"
		"                     dirty_rate extension, lower each time, until they do.\n"
		"                     Without --downtime: 300 ms is aimed for, with neither\n"
		"  --no-throttle      with --downtime: never cap a device's dirty rate\n"
		"  --max-rounds N     pre-copy rounds at most once the initial data is sent\n"
		"                     (default 30)\n"
		"  --no-precopy       stop and copy at once, even for devices offering PRE_COPY\n"
		"  --precopy-all      pre-copy also the devices that offer PRE_COPY but report no\n"
		"                     progress (servers without devmig's extensions, such as\n"
		"                     libvfio-user's, which offers PRE_COPY for every device):\n"
		"                     their rounds end when a read returns less than asked.\n"
		"                     Without it such devices are stopped and copied\n"

		"  --timeout SEC      give up when one step takes over SEC seconds: a frame to\n"
		"                     the destination, its answer, a device's answer (default\n"
		"                     30); the source then runs on\n"
		"  --json             print the migration report as JSON\n"
		"  --verbose          print every state change requested\n"
		"\n"
		"On a terminal the pre-copy rounds are shown as they go. On success the devices\n"
		"run at the destination and the exit status is 0; on failure the error names\n"
		"the device and the reason, the source devices are back in RUNNING with their\n"
		"state, the error ends with the state each device was left in, and the exit\n"
		"status is 1. If the destination was told to run but its\n"
		"answer was lost, the outcome is unknown: the source devices stay stopped (the\n"
		"guest must never run on both hosts) and the exit status is 3; check the\n"
		"destination, then resume one side ('devmig resume'). Ctrl-C stops the\n"
		"migration at the switchover and puts the source back to RUNNING. A source\n"
		"or destination left mid-migration by an earlier failure is recognised and\n"
		"its session ended first (said on stderr).\n");
}

/* What the command line asked for. */
struct migrate_opts {
	char *src[CLI_MAX_DEVICES], *dst[CLI_MAX_DEVICES];
	unsigned nsrc, ndst;
	const char *to;              /* --to, parsed into to_addr */
	struct devmig_endpoint to_addr;
	bool json, verbose;
	unsigned timeout_s;
	struct devmig_engine_config cfg;
	struct cli_secure sec;
};

/* 0 to run, -1 after --help, else the exit status of a usage error (said). */
static int migrate_parse(int argc, char **argv, struct migrate_opts *m)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "to", required_argument, NULL, 't' },
		{ "to-socket", required_argument, NULL, 'd' },
		{ "vfio", required_argument, NULL, 'V' },
		{ "to-vfio", required_argument, NULL, 'W' },
		{ "downtime", required_argument, NULL, 'D' },
		{ "max-rounds", required_argument, NULL, 'r' },
		{ "no-precopy", no_argument, NULL, 'n' },
		{ "no-throttle", no_argument, NULL, 'N' },
		{ "precopy-all", no_argument, NULL, 'P' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		CLI_SECURE_OPTIONS,
		{ 0 },
	};
	uint64_t v;
	int o, rc;

	memset(m, 0, sizeof(*m));
	m->timeout_s = CLI_TIMEOUT_DEFAULT;
	while ((o = getopt_long(argc, argv, "s:t:d:V:W:D:r:nNPT:jvh", opts, NULL)) != -1) {
		if (cli_secure_opt(&m->sec, o, optarg, "migrate", &rc)) {
			if (rc)
				return rc;
			continue;
		}
		switch (o) {
		case 's':
		case 'V':
			if (!cli_add_device("migrate", m->src, &m->nsrc, optarg, o == 'V'))
				return 2;
			break;
		case 'd':
		case 'W':
			if (!cli_add_device("migrate", m->dst, &m->ndst, optarg, o == 'W'))
				return 2;
			break;
		case 't':
			if (m->to) {
				fprintf(stderr, "devmig migrate: give one --to\n");
				return 2;
			}
			m->to = optarg;
			break;
		case 'D':
			if (!cli_parse_u64(optarg, 1, 3600000, &v)) {
				fprintf(stderr, "devmig migrate: --downtime takes milliseconds, "
						"1 to 3600000, not '%s'\n", optarg);
				return 2;
			}
			m->cfg.downtime_budget_ns = v * 1000000ull;
			break;
		case 'r':
			if (!cli_parse_u64(optarg, 1, 100000, &v)) {
				fprintf(stderr, "devmig migrate: --max-rounds takes 1 to 100000, not "
						"'%s'\n", optarg);
				return 2;
			}
			m->cfg.max_rounds = (unsigned)v;
			break;
		case 'n': m->cfg.no_precopy = true; break;
		case 'N': m->cfg.no_throttle = true; break;
		case 'P': m->cfg.precopy_without_progress = true; break;
		case 'T':
			if (!cli_parse_timeout("migrate", optarg, &m->timeout_s))
				return 2;
			break;
		case 'j': m->json = true; break;
		case 'v': m->verbose = true; break;
		case 'h': migrate_usage(stdout); return -1;
		default: return 2;
		}
	}
	if (!cli_no_more_args("migrate", argc, argv))
		return 2;
	if (!m->nsrc) {
		fprintf(stderr, "devmig migrate: --socket or --vfio is required (devmig migrate "
				"--help)\n");
		return 2;
	}
	if (m->cfg.no_throttle && !m->cfg.downtime_budget_ns) {
		fprintf(stderr, "devmig migrate: --no-throttle goes with --downtime (without it "
				"no device is capped)\n");
		return 2;
	}
	if (m->cfg.no_precopy && m->cfg.precopy_without_progress) {
		fprintf(stderr, "devmig migrate: give --no-precopy or --precopy-all, not both\n");
		return 2;
	}
	if (!m->to == !m->ndst) {
		fprintf(stderr, "devmig migrate: give either --to or --to-socket/--to-vfio "
				"(devmig migrate --help)\n");
		return 2;
	}
	if (m->ndst && m->ndst != m->nsrc) {
		fprintf(stderr, "devmig migrate: %u sources but %u destinations: give one "
				"destination per source, in order\n", m->nsrc, m->ndst);
		return 2;
	}
	char err[512];
	if (m->to && devmig_endpoint_parse(m->to, false, &m->to_addr, err, sizeof(err))) {
		fprintf(stderr, "devmig migrate: --to %s\n", err);
		return 2;
	}
	if (!cli_distinct_paths("migrate", m->src, m->nsrc, m->dst, m->ndst))
		return 2;
	if (m->ndst && cli_secure_given(&m->sec)) {
		fprintf(stderr, "devmig migrate: --psk, --cert and --insecure are for --to: "
				"--to-socket devices are local\n");
		return 2;
	}
	return 0;
}

/* The channel to a 'devmig receive': connected, TLS when creds. NULL (said). */
static struct devmig_transport *connect_receiver(const struct migrate_opts *m,
						 struct devmig_tls_creds *creds, int *fd)
{
	char err[512];
	struct devmig_transport *t = NULL;

	*fd = devmig_endpoint_connect(&m->to_addr, CONNECT_TIMEOUT_MS, err, sizeof(err));
	if (*fd < 0) {
		fprintf(stderr, "devmig migrate: %s\n", err);
		return NULL;
	}
	t = cli_secure_transport(*fd, creds, m->cfg.timeout_ms, err, sizeof(err));
	if (!t) {
		fprintf(stderr, "devmig migrate: TLS with %s failed: %s\n", m->to, err);
		close(*fd);
		*fd = -1;
	}
	return t;
}

/*
 * Connect, migrate, disconnect. The engine's result; rep says what happened
 * (its error ends with where each device was left). 1 when nothing could
 * start (said), with rep untouched.
 */
static int migrate_run(struct migrate_opts *m, struct devmig_migration_report *rep,
		       bool *started)
{
	struct devmig_tls_creds *creds = NULL;
	int rc;

	*started = false;
	if (m->to && (rc = cli_secure_setup("migrate", &m->sec, &m->to_addr, false, &creds)))
		return rc;
	m->cfg.timeout_ms = m->timeout_s * 1000u;
	struct devmig_client **sc = cli_connect_all("migrate", m->src, m->nsrc, m->timeout_s);
	struct devmig_client **dc = NULL;
	struct devmig_transport *t = NULL;
	int fd = -1;
	if (sc && m->ndst)
		dc = cli_connect_all("migrate", m->dst, m->ndst, m->timeout_s);
	else if (sc)
		t = connect_receiver(m, creds, &fd);
	devmig_tls_creds_free(creds);
	if (!sc || (!dc && !t)) {
		cli_close_all(sc, m->nsrc);
		return 1;
	}

	struct cli_progress prog;
	cli_progress_init(&prog, m->verbose, m->src, m->nsrc, m->dst, m->ndst);
	m->cfg.event = cli_progress_event;
	m->cfg.pause_guest = cli_pause_guest;
	m->cfg.opaque = &prog;
	cli_catch_interrupts();
	*started = true;
	rc = dc ? devmig_migrate_local(&m->cfg, sc, dc, m->nsrc, NULL, NULL, rep)
		: devmig_migrate_over(&m->cfg, sc, m->nsrc, NULL, t, rep);
	cli_progress_end(&prog);
	if (rc && cli_interrupted() && strstr(rep->error, "could not be paused"))
		snprintf(rep->error, sizeof(rep->error),
			 "interrupted: the migration was abandoned before the switchover");
	else if (rc && !rep->error[0])
		snprintf(rep->error, sizeof(rep->error), "the migration failed: %s", strerror(-rc));
	else if (rc)
		cli_note_timeout(rep, rc, m->timeout_s);
	if (rc) {
		cli_note_states(rep, m->nsrc, m->ndst);
		if (m->to) {
			size_t l = strlen(rep->error);
			snprintf(rep->error + l, sizeof(rep->error) - l,
				 "; the destination's devices are reported by 'devmig receive' there");
		}
	}
	devmig_transport_free(t);
	if (fd >= 0)
		close(fd);
	cli_close_all(dc, m->ndst);
	cli_close_all(sc, m->nsrc);
	return rc;
}

static void print_summary(const struct devmig_migration_report *r, const char *to,
			  const char *src_state)
{
	char b1[32], b2[32], b3[32], b4[32], b5[32];

	printf("migration complete: %u device%s now running at %s\n", r->devices,
	       r->devices == 1 ? "" : "s", to);
	printf("  moved       %s of device state (%s while stopped), %u pre-copy round%s\n",
	       cli_bytes((double)(r->device_bytes + r->guest_bytes), b1, sizeof(b1)),
	       cli_bytes((double)r->stop_copy_bytes, b2, sizeof(b2)), r->rounds,
	       r->rounds == 1 ? "" : "s");
	printf("  downtime    %s", cli_duration(r->downtime_ns, b3, sizeof(b3)));
	if (r->deadlines)
		printf(" (budget %s, %s%s)", cli_duration(r->budget_ns, b1, sizeof(b1)),
		       r->budget_met ? "met" : "exceeded",
		       r->deadline_refusals ? ", after refusals" : "");
	printf("\n");
	if (r->deadline_refusals)
		printf("  refused     %u switchover%s (the devices ran on meanwhile)\n",
		       r->deadline_refusals, r->deadline_refusals == 1 ? "" : "s");
	if (r->throttle_steps)
		printf("  dirty rate  capped at %s/s at the lowest, for %s (%u step%s)\n",
		       cli_bytes((double)r->throttle_cap, b1, sizeof(b1)),
		       cli_duration(r->throttle_ns, b2, sizeof(b2)), r->throttle_steps,
		       r->throttle_steps == 1 ? "" : "s");
	printf("  total time  %s\n", cli_duration(r->total_ns, b4, sizeof(b4)));
	printf("  throughput  %s/s\n", cli_bytes(r->throughput, b5, sizeof(b5)));
	printf("  source      %s: stopped, not to be resumed\n", src_state);
}

/* The outcome: the error (named devices), the JSON report or the summary. */
static void migrate_print(const struct migrate_opts *m, const struct devmig_migration_report *rep,
			  int rc)
{
	if (rc)
		cli_print_error("migrate", rep->error, m->src, m->nsrc, m->ndst ? m->dst : NULL,
				m->ndst);
	if (m->json) {
		json_object *j = cli_report_json(rep, rc == 0, m->nsrc, m->ndst);
		json_object *jt = json_object_new_array();
		for (unsigned i = 0; i < m->ndst; i++)
			json_object_array_add(jt, json_object_new_string(m->dst[i]));
		json_object_object_add(j, "to", m->to ? json_object_new_string(m->to) : jt);
		if (m->to)
			json_object_put(jt);
		cli_print_json(j);
		return;
	}
	if (rc)
		return;
	/* Where the sources were left (stopped after a success), as the engine
	 * read them back at the end. */
	const char *src_state = NULL;
	for (unsigned i = 0; i < m->nsrc; i++) {
		const char *name = cli_state_name(rep->src_state[i]);
		src_state = !src_state || !strcmp(src_state, name) ? name : "mixed";
	}
	print_summary(rep, m->to ? m->to : (m->ndst == 1 ? m->dst[0] : "the destination devices"),
		      src_state);
}

int devmig_cmd_migrate(int argc, char **argv)
{
	struct migrate_opts m;
	struct devmig_migration_report rep;
	bool started;
	int rc = migrate_parse(argc, argv, &m);

	if (rc)
		return rc < 0 ? 0 : rc;
	rc = migrate_run(&m, &rep, &started);
	if (!started)
		return rc;
	migrate_print(&m, &rep, rc);
	return rc ? (rep.outcome_unknown ? 3 : 1) : 0;
}
