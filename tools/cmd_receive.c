/* SPDX-License-Identifier: MIT */
/* devmig receive: the destination half of a two-host migration. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "cli_util.h"

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

int devmig_cmd_receive(int argc, char **argv)
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
	char *dst[CLI_MAX_DEVICES];
	unsigned ndst = 0;
	const char *listen_at = NULL;
	bool json = false, verbose = false, other_uids = false;
	struct cli_secure sec = { .insecure = false };
	uint64_t v;
	int o, rc;

	while ((o = getopt_long(argc, argv, "l:s:V:T:ujvh", opts, NULL)) != -1) {
		if (cli_secure_opt(&sec, o, optarg, "receive", &rc)) {
			if (rc)
				return rc;
			continue;
		}
		switch (o) {
		case 'l':
			if (listen_at) {
				fprintf(stderr, "devmig receive: give one --listen\n");
				return 2;
			}
			listen_at = optarg;
			break;
		case 's':
		case 'V':
			if (!cli_add_device("receive", dst, &ndst, optarg, o == 'V'))
				return 2;
			break;
		case 'T':
			if (!cli_parse_u64(optarg, 1, 86400, &v)) {
				fprintf(stderr, "devmig receive: --timeout takes seconds, 1 to 86400, "
						"not '%s'\n", optarg);
				return 2;
			}
			cli_timeout_s = (unsigned)v;
			break;
		case 'u': other_uids = true; break;
		case 'j': json = true; break;
		case 'v': verbose = true; break;
		case 'h': receive_usage(stdout); return 0;
		default: return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "devmig receive: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!listen_at || !ndst) {
		fprintf(stderr, "devmig receive: --listen and --socket or --vfio are required "
				"(devmig receive --help)\n");
		return 2;
	}
	struct cli_addr addr;
	char err[512];
	if (!cli_parse_addr(listen_at, true, &addr, err, sizeof(err))) {
		fprintf(stderr, "devmig receive: --listen %s\n", err);
		return 2;
	}
	struct devmig_tls_creds *creds;
	if ((rc = cli_secure_setup("receive", &sec, &addr, true, &creds)))
		return rc;

	cli_ignore_sigpipe();
	/* The devices first: no point in accepting a migration with nowhere to put it. */
	struct devmig_client **dc = cli_connect_all("receive", dst, ndst);
	if (!dc) {
		devmig_tls_creds_free(creds);
		return 1;
	}
	char shown[300];
	int lfd = cli_listen_addr(&addr, shown, sizeof(shown), err, sizeof(err));
	if (lfd < 0) {
		fprintf(stderr, "devmig receive: %s\n", err);
		cli_close_all(dc, ndst);
		devmig_tls_creds_free(creds);
		return 1;
	}
	fprintf(stderr, "devmig receive: listening on %s (%s) for one migration of %u device%s\n",
		shown, creds ? "TLS" : addr.is_unix ? "unix, our uid only" : "plain, --insecure",
		ndst, ndst == 1 ? "" : "s");

	struct cli_progress prog;
	cli_progress_init(&prog, verbose);
	prog.dst = dst;
	prog.ndst = ndst;
	struct devmig_engine_config cfg = { .event = cli_progress_event, .opaque = &prog,
					    .timeout_ms = cli_timeout_s * 1000u };
	struct devmig_migration_report rep = { .devices = ndst };
	unsigned timeout_ms = cli_timeout_s * 1000u;
	int fd = -1;
	rc = 0;
	/* Connections until one brings a migration: the others are refused, said, forgotten. */
	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "devmig receive: accepting a connection on %s failed: %s\n",
				shown, strerror(errno));
			rc = -errno;
			snprintf(rep.error, sizeof(rep.error), "accepting a connection failed: %s",
				 strerror(errno));
			break;
		}
		char from[128];
		cli_peer_name(fd, from, sizeof(from));
		if (addr.is_unix && !other_uids && cli_peer_uid(fd) != (long)geteuid()) {
			fprintf(stderr, "devmig receive: refused %s: not our uid "
					"(--allow-other-uids); still waiting\n", from);
			close(fd);
			continue;
		}
		cli_tune_socket(fd);
		struct devmig_transport *t = creds ? devmig_transport_tls(fd, creds, timeout_ms, err,
									 sizeof(err))
						   : devmig_transport_plain(fd, timeout_ms);
		if (!t) {
			fprintf(stderr, "devmig receive: refused %s: %s; still waiting\n", from,
				creds ? err : "out of memory");
			close(fd);
			continue;
		}
		if (verbose && creds)
			fprintf(stderr, "devmig receive: %s authenticated as %s (%s)\n", from,
				devmig_transport_peer(t), devmig_transport_desc(t));
		rc = devmig_receive_over(&cfg, t, dc, ndst, NULL, &rep);
		devmig_transport_free(t);
		if (rc == -ECONNABORTED) {
			fprintf(stderr, "devmig receive: refused %s: no migration (%s); still waiting\n",
				from, rep.error);
			close(fd);
			fd = -1;
			continue;
		}
		break;
	}
	close(lfd); /* one migration: nobody else gets in */
	if (addr.is_unix)
		unlink(addr.path);
	cli_progress_end(&prog);
	if (rc && !rep.error[0])
		snprintf(rep.error, sizeof(rep.error), "the migration failed: %s", strerror(-rc));
	else if (rc)
		cli_note_timeout(&rep, rc, cli_timeout_s);
	if (fd >= 0)
		close(fd);
	cli_close_all(dc, ndst);
	devmig_tls_creds_free(creds);

	if (rc) {
		cli_note_states(&rep, 0, ndst);
		cli_print_error("receive", rep.error, NULL, 0, dst, ndst);
	}
	if (json) {
		json_object *j = cli_report_json(&rep, rc == 0, 0, ndst);
		json_object_object_add(j, "listen", json_object_new_string(shown));
		cli_print_json(j);
	} else if (!rc) {
		char b1[32], b2[32];
		printf("migration received: %u device%s now running here\n", rep.devices,
		       rep.devices == 1 ? "" : "s");
		printf("  received    %s of device state\n",
		       cli_bytes((double)(rep.device_bytes + rep.guest_bytes), b1, sizeof(b1)));
		printf("  total time  %s (from the connection)\n",
		       cli_duration(rep.total_ns, b2, sizeof(b2)));
	}
	return rc ? 1 : 0;
}
