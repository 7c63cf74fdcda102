/* SPDX-License-Identifier: MIT */
/* devmig receive: the destination half of a two-host migration. */
#include <errno.h>
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

static void receive_usage(FILE *f)
{
	fprintf(f,
		"usage: devmig receive (--listen ADDR:PORT | --listen unix:PATH)\n"
		"                      (--socket DST | --vfio DST) [...]\n"
		"                      (--psk FILE | --cert FILE --key FILE --ca FILE | --insecure)\n"
		"                      [--peer-name NAME] [--handshake-timeout SEC]\n"
		"                      [--allow-other-uids] [--timeout SEC] [--json] [--verbose]\n"
		"\n"
		"Wait for ONE 'devmig migrate --to' and load the devices it sends into the DST\n"
		"devices (in the order of the source's devices); they run here once it\n"
		"succeeds. Device state only: no guest memory is received.\n"
		"\n"
		"Over TCP the source must authenticate: TLS 1.3 with a pre-shared key or with\n"
		"certificates (both sides prove who they are; every byte is protected). A\n"
		"connection that fails the handshake, closes, or sends no migration is refused\n"
		"and the receive goes on waiting for the right one.\n"
		"\n"
		"  --listen ADDR:PORT  TCP on that address: an IPv4 address, [IPv6] or a host\n"
		"                      name (0.0.0.0 or [::] for every address, said out loud);\n"
		"                      PORT 0 picks a free port\n"
		"  --listen unix:PATH  a unix socket (mode 0600, removed at the end); only our\n"
		"                      own uid may connect unless --allow-other-uids\n"
		"  --socket DST        a destination device's vfio-user socket (repeat)\n"
		"  --vfio DST          a destination kernel VFIO device (PCI address, mdev UUID,\n"
		"                      sysfs path, /dev/vfio/devices/vfioN; repeat)\n"
		CLI_SECURE_USAGE
		"  --allow-other-uids  unix: accept sources run by other users\n"
		"  --timeout SEC       once a migration began, give up when a step (a frame\n"
		"                      from the source, a device's answer) takes over SEC\n"
		"                      seconds (default 30; waiting for it is not limited)\n"
		"  --json              print the report as JSON\n"
		"  --verbose           print every state change requested\n"
		"\n"
		"'listening on ADDR' goes to stderr once connections are accepted, and a line\n"
		"for each connection refused. Exit status 0 when the devices run here, 1 when\n"
		"the migration failed (the destination devices are reset then, or walked to\n"
		"RUNNING where a reset is refused, and the error ends with the state each was\n"
		"left in).\n");
}

/* What the command line asked for. */
struct receive_opts {
	char *dst[CLI_MAX_DEVICES];
	unsigned ndst;
	const char *listen_at;       /* --listen, parsed into addr */
	struct devmig_endpoint addr;
	bool json, verbose, other_uids;
	unsigned timeout_s;
	struct cli_secure sec;
};

/* 0 to run, -1 after --help, else the exit status of a usage error (said). */
static int receive_parse(int argc, char **argv, struct receive_opts *r)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "socket", required_argument, NULL, 's' },
		{ "vfio", required_argument, NULL, 'V' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "allow-other-uids", no_argument, NULL, 'u' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		CLI_SECURE_OPTIONS,
		{ 0 },
	};
	int o, rc;

	memset(r, 0, sizeof(*r));
	r->timeout_s = CLI_TIMEOUT_DEFAULT;
	while ((o = getopt_long(argc, argv, "l:s:V:T:ujvh", opts, NULL)) != -1) {
		if (cli_secure_opt(&r->sec, o, optarg, "receive", &rc)) {
			if (rc)
				return rc;
			continue;
		}
		switch (o) {
		case 'l':
			if (r->listen_at) {
				fprintf(stderr, "devmig receive: give one --listen\n");
				return 2;
			}
			r->listen_at = optarg;
			break;
		case 's':
		case 'V':
			if (!cli_add_device("receive", r->dst, &r->ndst, optarg, o == 'V'))
				return 2;
			break;
		case 'T':
			if (!cli_parse_timeout("receive", optarg, &r->timeout_s))
				return 2;
			break;
		case 'u': r->other_uids = true; break;
		case 'j': r->json = true; break;
		case 'v': r->verbose = true; break;
		case 'h': receive_usage(stdout); return -1;
		default: return 2;
		}
	}
	if (!cli_no_more_args("receive", argc, argv))
		return 2;
	if (!r->listen_at || !r->ndst) {
		fprintf(stderr, "devmig receive: --listen and --socket or --vfio are required "
				"(devmig receive --help)\n");
		return 2;
	}
	char err[512];
	if (devmig_endpoint_parse(r->listen_at, true, &r->addr, err, sizeof(err))) {
		fprintf(stderr, "devmig receive: --listen %s\n", err);
		return 2;
	}
	return 0;
}

/*
 * Connections on lfd until one brings a migration: the others are refused,
 * said, forgotten. The engine's result for that one (or the accept's error),
 * its connection in *fd.
 */
static int accept_migration(struct receive_opts *r, int lfd, const char *shown,
			    struct devmig_tls_creds *creds, struct devmig_client **dc,
			    struct cli_progress *prog, struct devmig_migration_report *rep, int *fd)
{
	struct devmig_engine_config cfg = { .event = cli_progress_event, .opaque = prog,
					    .timeout_ms = r->timeout_s * 1000u };
	char err[512], from[128];
	int rc;

	for (;;) {
		*fd = devmig_endpoint_accept(&r->addr, lfd, r->other_uids, from, sizeof(from));
		if (*fd == -EINTR || *fd == -ECONNABORTED)
			continue;
		if (*fd == -EACCES) {
			fprintf(stderr, "devmig receive: refused %s: not our uid "
					"(--allow-other-uids); still waiting\n", from);
			continue;
		}
		if (*fd < 0) {
			rc = *fd;
			fprintf(stderr, "devmig receive: accepting a connection on %s failed: %s\n",
				shown, strerror(-rc));
			snprintf(rep->error, sizeof(rep->error), "accepting a connection failed: %s",
				 strerror(-rc));
			return rc;
		}
		struct devmig_transport *t = cli_secure_transport(*fd, creds, cfg.timeout_ms, err,
								  sizeof(err));
		if (!t) {
			fprintf(stderr, "devmig receive: refused %s: %s; still waiting\n", from, err);
			close(*fd);
			continue;
		}
		if (r->verbose && creds)
			fprintf(stderr, "devmig receive: %s authenticated as %s (%s)\n", from,
				devmig_transport_peer(t), devmig_transport_desc(t));
		rc = devmig_receive_over(&cfg, t, dc, r->ndst, NULL, rep);
		devmig_transport_free(t);
		if (rc != -ECONNABORTED)
			return rc;
		fprintf(stderr, "devmig receive: refused %s: no migration (%s); still waiting\n",
			from, rep->error);
		close(*fd);
	}
}

/*
 * Open the devices, listen, receive one migration. The engine's result;
 * rep says what happened. *started false: nothing began (said), the exit
 * status returned.
 */
static int receive_run(struct receive_opts *r, struct devmig_migration_report *rep,
		       bool *started, char *shown, size_t shownlen)
{
	struct devmig_tls_creds *creds;
	char err[512];
	int rc;

	*started = false;
	if ((rc = cli_secure_setup("receive", &r->sec, &r->addr, true, &creds)))
		return rc;
	/* The devices first: no point in accepting a migration with nowhere to put it. */
	struct devmig_client **dc = cli_connect_all("receive", r->dst, r->ndst, r->timeout_s);
	if (!dc) {
		devmig_tls_creds_free(creds);
		return 1;
	}
	int lfd = devmig_endpoint_listen(&r->addr, shown, shownlen, err, sizeof(err));
	if (lfd < 0) {
		fprintf(stderr, "devmig receive: %s\n", err);
		cli_close_all(dc, r->ndst);
		devmig_tls_creds_free(creds);
		return 1;
	}
	fprintf(stderr, "devmig receive: listening on %s (%s) for one migration of %u device%s\n",
		shown, creds ? "TLS" : r->addr.is_unix ? "unix, our uid only" : "plain, --insecure",
		r->ndst, r->ndst == 1 ? "" : "s");

	struct cli_progress prog;
	cli_progress_init(&prog, r->verbose, NULL, 0, r->dst, r->ndst);
	int fd = -1;
	memset(rep, 0, sizeof(*rep));
	rep->devices = r->ndst;
	*started = true;
	rc = accept_migration(r, lfd, shown, creds, dc, &prog, rep, &fd);
	devmig_endpoint_unlisten(&r->addr, lfd); /* one migration: nobody else gets in */
	cli_progress_end(&prog);
	if (rc && !rep->error[0])
		snprintf(rep->error, sizeof(rep->error), "the migration failed: %s", strerror(-rc));
	else if (rc)
		cli_note_timeout(rep, rc, r->timeout_s);
	if (fd >= 0)
		close(fd);
	cli_close_all(dc, r->ndst);
	devmig_tls_creds_free(creds);
	if (rc)
		cli_note_states(rep, 0, r->ndst);
	return rc;
}

static void receive_print(const struct receive_opts *r, const struct devmig_migration_report *rep,
			  int rc, const char *shown)
{
	if (rc)
		cli_print_error("receive", rep->error, NULL, 0, r->dst, r->ndst);
	if (r->json) {
		json_object *j = cli_report_json(rep, rc == 0, 0, r->ndst);
		json_object_object_add(j, "listen", json_object_new_string(shown));
		cli_print_json(j);
	} else if (!rc) {
		char b1[32], b2[32];
		printf("migration received: %u device%s now running here\n", rep->devices,
		       rep->devices == 1 ? "" : "s");
		printf("  received    %s of device state\n",
		       cli_bytes((double)(rep->device_bytes + rep->guest_bytes), b1, sizeof(b1)));
		printf("  total time  %s (from the connection)\n",
		       cli_duration(rep->total_ns, b2, sizeof(b2)));
	}
}

int devmig_cmd_receive(int argc, char **argv)
{
	struct receive_opts r;
	struct devmig_migration_report rep;
	char shown[300];
	bool started;
	int rc = receive_parse(argc, argv, &r);

	if (rc)
		return rc < 0 ? 0 : rc;
	rc = receive_run(&r, &rep, &started, shown, sizeof(shown));
	if (!started)
		return rc;
	receive_print(&r, &rep, rc, shown);
	return rc ? 1 : 0;
}
